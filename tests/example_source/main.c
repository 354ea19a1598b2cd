/* main.c - source-example entry point. */
/* SPDX-License-Identifier: MIT */
#include "example.h"

int main(int argc, char **argv)
{
    return ab_source_main(argc, argv, &ex_source_ops);
}
