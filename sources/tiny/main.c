/* main.c - source-tiny entry point. */
/* SPDX-License-Identifier: MIT */
#include "tiny.h"

int main(int argc, char **argv)
{
    return ab_source_main(argc, argv, &tn_source_ops);
}
