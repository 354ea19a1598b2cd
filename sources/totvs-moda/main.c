/* main.c - source-totvs-moda entry point. */
/* SPDX-License-Identifier: MIT */
#include "totvs.h"

int main(int argc, char **argv)
{
    return ab_source_main(argc, argv, &tm_source_ops);
}
