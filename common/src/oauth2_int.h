/* oauth2_int.h - internals of oauth2.c shared with its tests and fuzzers. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_OAUTH2_INT_H
#define AB_OAUTH2_INT_H

#include <yajl/yajl_tree.h>

#include "ab/error.h"

/* Reads a token endpoint's answer (body may be NULL). On AB_OK *tok is a
 * usable access token (no control characters), *life its lifetime in
 * seconds, clamped to (0, one day], and *rt the refresh_token member or NULL
 * (not yet checked). All three point into body. On an error err says why
 * and never quotes a token. No threads, no allocation. */
enum ab_status ab_oauth2_answer_parse(yajl_val body, const char **tok, const char **rt,
                                      double *life, struct ab_error *err);

#endif
