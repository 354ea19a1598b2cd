/* fuzz_json.c - the JSON intake: strict, salvage, round trip, free. */
/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ab/json.h"

#include "fuzz.h"

static struct ab_json_arena *arena;

/* Every string and member name of an accepted tree is valid UTF-8 without
 * NUL; numbers are finite. Iterative walk over an explicit stack. */
static void check_tree(yajl_val root)
{
    yajl_val *stack = malloc(sizeof(*stack) * 4096);
    size_t n = 0;

    FUZZ_ASSERT(stack != NULL);
    stack[n++] = root;
    while (n) {
        yajl_val v = stack[--n];
        size_t i;

        FUZZ_ASSERT(v != NULL);
        switch (v->type) {
        case yajl_t_string:
            FUZZ_ASSERT(ab_utf8_valid(v->u.string, strlen(v->u.string), NULL));
            break;
        case yajl_t_number: {
            double d;

            FUZZ_ASSERT(ab_json_double(v, &d));
            FUZZ_ASSERT(d - d == 0.0);
            break;
        }
        case yajl_t_object:
            for (i = 0; i < v->u.object.len; i++) {
                const char *k = v->u.object.keys[i];
                size_t j;

                FUZZ_ASSERT(ab_utf8_valid(k, strlen(k), NULL));
                for (j = 0; j < i; j++) {
                    FUZZ_ASSERT(strcmp(k, v->u.object.keys[j]) != 0);
                }
            }
            for (i = 0; i < v->u.object.len && n < 4096; i++) {
                stack[n++] = v->u.object.values[i];
            }
            break;
        case yajl_t_array:
            for (i = 0; i < v->u.array.len && n < 4096; i++) {
                stack[n++] = v->u.array.values[i];
            }
            break;
        default:
            break;
        }
    }
    free(stack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_error err = {0};
    struct ab_error content;
    yajl_val t;
    yajl_val v;

    if (!arena) {
        arena = ab_json_arena_new(NULL);
    }
    t = ab_json_parse((const char *)data, size, &err);
    ab_json_arena_reset(arena);
    v = ab_json_parse_ex(arena, (const char *)data, size, true, &content, &err);
    /* strict accepts exactly what salvage accepts without a content error */
    FUZZ_ASSERT((t != NULL) == (v != NULL && content.code == AB_OK));
    if (t) {
        struct ab_buf a;
        struct ab_buf b;
        yajl_val again;

        check_tree(t);
        ab_buf_init(&a, AB_BUF_UNBOUNDED);
        ab_buf_init(&b, AB_BUF_UNBOUNDED);
        FUZZ_ASSERT(ab_json_write(&a, t, NULL) == AB_OK);
        FUZZ_ASSERT(ab_json_write(&b, v, NULL) == AB_OK);
        FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        /* what we write, we read back to the same text */
        again = ab_json_parse(a.data, a.len, &err);
        FUZZ_ASSERT(again != NULL);
        ab_buf_reset(&b);
        FUZZ_ASSERT(ab_json_write(&b, again, NULL) == AB_OK);
        FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
        ab_json_free(again);
        ab_buf_release(&a);
        ab_buf_release(&b);
        ab_json_free(t);
    } else {
        FUZZ_ASSERT(v == NULL || content.code != AB_OK);
        FUZZ_ASSERT(strchr(err.message, '\n') == NULL);
    }
    return 0;
}
