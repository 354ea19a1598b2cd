/* assert.h - checked invariants: AB_ASSERT, active in Debug and sanitizer builds. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_ASSERT_H
#define AB_ASSERT_H

#include <stdio.h>
#include <stdlib.h>

/*
 * AB_ASSERT(cond) states an invariant the code relies on (curl's
 * DEBUGASSERT, SQLite's assert): never a check of input, which gets an error
 * naming what and where. With AB_ASSERTIONS defined (CMake sets it for
 * CMAKE_BUILD_TYPE Debug and for AB_SANITIZE builds) a false cond prints
 * "file:line: assertion failed: cond" to stderr and aborts; otherwise cond
 * is compiled (so it stays valid code) but never evaluated, and costs
 * nothing. cond must have no side effects.
 */
#if defined(AB_ASSERTIONS) && AB_ASSERTIONS

static inline _Noreturn void ab_assert_fail(const char *expr, const char *file, int line)
{
    (void)fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    (void)fflush(stderr);
    abort();
}

#define AB_ASSERT(cond)  ((cond) ? (void)0 : ab_assert_fail(#cond, __FILE__, __LINE__))
#define AB_ASSERTIONS_ON 1

#else

#define AB_ASSERT(cond)  ((void)sizeof((cond) ? 1 : 0))
#define AB_ASSERTIONS_ON 0

#endif

#endif
