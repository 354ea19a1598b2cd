/* ab_test.h - cmocka and its prerequisites, in the order cmocka needs. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_TEST_H
#define AB_TEST_H

/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#endif
