/* assert.h - checked invariants: on in Debug and sanitizer builds. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_ASSERT_H
#define AB_ASSERT_H

#ifdef AB_ASSERTS
#include <stdio.h>
#include <stdlib.h>
#define AB_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            (void)fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#else
#define AB_ASSERT(cond) ((void)0)
#endif

#endif
