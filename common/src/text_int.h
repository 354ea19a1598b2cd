/* text_int.h - small text helpers shared inside common/ (not public). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_TEXT_INT_H
#define AB_TEXT_INT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest text ab_edit_distance() takes. */
#define AB_EDIT_MAX 128

/* Levenshtein distance of a[0..la) and b[0..lb), both at most AB_EDIT_MAX
 * bytes; with fold, ASCII letters compare case-insensitively. Pure, no
 * allocation. */
size_t ab_edit_distance(const char *a, size_t la, const char *b, size_t lb, bool fold);

#endif
