/* main.c - destination-crm360 entry point. */
/* SPDX-License-Identifier: MIT */
#include "crm360.h"

int main(int argc, char **argv)
{
    return ab_destination_main(argc, argv, &crm_destination_ops);
}
