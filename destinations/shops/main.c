/* main.c - destination-shops entry point. */
/* SPDX-License-Identifier: MIT */
#include "shops.h"

int main(int argc, char **argv)
{
    return ab_destination_main(argc, argv, &shp_destination_ops);
}
