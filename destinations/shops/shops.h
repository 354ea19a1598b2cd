/* shops.h - destination-shops: products and inventory into the Shops import API. */
/* SPDX-License-Identifier: MIT */
#ifndef SHP_SHOPS_H
#define SHP_SHOPS_H

#include "ab/destination.h"

/* The connector's ops table: main() is ab_destination_main(argc, argv,
 * &shp_destination_ops). */
extern const struct ab_destination_ops shp_destination_ops;

/* The connector's spec (spec.json, embedded at build time; x-ab-options
 * merged by ab_spec_build()). */
extern const char shp_spec_json[];
extern const char shp_destination_catalog_json[];

#endif
