/* main.c - source-postgres entry point. */
/* SPDX-License-Identifier: MIT */
#include "pg.h"

int main(int argc, char **argv)
{
    return ab_source_main(argc, argv, &pg_source_ops);
}
