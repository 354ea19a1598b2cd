/* main.c - source-bling entry point. */
/* SPDX-License-Identifier: MIT */
#include "bling.h"

int main(int argc, char **argv)
{
    return ab_source_main(argc, argv, &bl_source_ops);
}
