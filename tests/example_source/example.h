/* example.h - source-example: the smallest real source on the connector core. */
/* SPDX-License-Identifier: MIT */
#ifndef EX_EXAMPLE_H
#define EX_EXAMPLE_H

#include "ab/source.h"

/* spec.json, embedded at build time */
extern const char ex_spec_json[];
extern const struct ab_source_ops ex_source_ops;

#endif
