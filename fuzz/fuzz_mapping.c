/* fuzz_mapping.c - stream_mappings parsed or refused; any record written
 * through each parsed mapping is a JSON object whose members are what
 * ab_mapping_get() reads for them, or an error that leaves the output as it
 * was, with or without a byte limit. Input: the stream_mappings array, a
 * newline, the record. */
/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"
#include "ab/mapping.h"

#include "fuzz.h"

#define LIMIT 512

/* out.data from byte 4 on (after "keep"), parsed: an object. */
static yajl_val written(const struct ab_buf *out)
{
    struct ab_error err = {0};
    yajl_val v = ab_json_parse(out->data + 4, out->len - 4, &err);

    FUZZ_ASSERT(v != NULL && v->type == yajl_t_object);
    return v;
}

/* The member of each top-level target field is what ab_mapping_get()
 * computes for it (the written and the read paths agree). */
static void same_as_get(const struct ab_mapping *m, yajl_val rec, yajl_val obj)
{
    struct ab_error err = {0};
    struct ab_buf a;
    struct ab_buf b;

    ab_buf_init(&a, AB_BUF_UNBOUNDED);
    ab_buf_init(&b, AB_BUF_UNBOUNDED);
    for (size_t i = 0; !m->identity && i < m->nfields; i++) {
        const char *to = m->fields[i].to;
        yajl_val got = ab_json_get(obj, to);
        yajl_val want = ab_mapping_get(m, rec, to);

        if (strcmp(to, "brand") == 0) {
            continue; /* the extra member may stand in for it */
        }
        FUZZ_ASSERT((got == NULL) == (want == NULL));
        if (!got) {
            continue;
        }
        ab_buf_reset(&a);
        ab_buf_reset(&b);
        FUZZ_ASSERT(ab_json_write(&a, got, &err) == AB_OK);
        FUZZ_ASSERT(ab_json_write(&b, want, &err) == AB_OK);
        FUZZ_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    }
    ab_buf_release(&a);
    ab_buf_release(&b);
}

static void check_write(const struct ab_mapping *m, yajl_val rec)
{
    struct ab_error err = {0};
    struct ab_buf big;
    struct ab_buf small;
    enum ab_status rc;
    enum ab_status rc2;

    ab_buf_init(&big, AB_BUF_UNBOUNDED);
    ab_buf_init(&small, LIMIT);
    FUZZ_ASSERT(ab_buf_adds(&big, "keep", &err) == AB_OK);
    FUZZ_ASSERT(ab_buf_adds(&small, "keep", &err) == AB_OK);
    rc = ab_mapping_write(m, rec, "brand", "acme", &big, &err);
    rc2 = ab_mapping_write(m, rec, "brand", "acme", &small, &err);
    if (rc == AB_OK) {
        yajl_val obj = written(&big);

        same_as_get(m, rec, obj);
        ab_json_free(obj);
    } else {
        FUZZ_ASSERT(big.len == 4 && memcmp(big.data, "keep", 4) == 0);
    }
    if (rc2 == AB_OK) {
        FUZZ_ASSERT(rc == AB_OK && small.len == big.len &&
                    memcmp(small.data, big.data, big.len) == 0);
    } else {
        FUZZ_ASSERT(small.len == 4 && memcmp(small.data, "keep", 4) == 0);
        FUZZ_ASSERT(rc != AB_OK || big.len > LIMIT);
    }
    ab_buf_release(&big);
    ab_buf_release(&small);
}

static void check_annotate(const struct ab_mapping *m)
{
    static const char errors[] = "[{\"field\":\"attributes.size\"},{\"field\":\"a.b.c\"},"
                                 "{\"field\":\"sku\"},{\"field\":\"attributes\"}]";
    struct ab_error err = {0};
    struct ab_buf out;
    yajl_val v;

    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    FUZZ_ASSERT(ab_mapping_annotate_errors(m, errors, &out, &err) == AB_OK);
    v = ab_json_parse(out.data, out.len, &err);
    FUZZ_ASSERT(v != NULL && v->type == yajl_t_array && v->u.array.len == 4);
    ab_json_free(v);
    ab_buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    struct ab_error err = {0};
    struct ab_mappings ms;
    yajl_val arr;
    yajl_val rec;

    if (!nl) {
        return 0;
    }
    arr = ab_json_parse(text, (size_t)(nl - text), &err);
    if (!arr) {
        return 0;
    }
    rec = ab_json_parse(nl + 1, size - (size_t)(nl + 1 - text), &err);
    if (ab_mappings_parse(&ms, arr, NULL, &err) != AB_OK) {
        FUZZ_ASSERT(err.message[0] != '\0');
        FUZZ_ASSERT(ms.n == 0 && ms.m == NULL);
    } else {
        for (size_t i = 0; i < ms.n; i++) {
            const struct ab_mapping *m =
                ab_mappings_resolve(&ms, ms.m[i].stream, ms.m[i].ns, NULL, &err);

            FUZZ_ASSERT(m != NULL);
            check_write(m, rec);
            check_annotate(m);
        }
    }
    ab_mappings_release(&ms);
    ab_json_free(rec);
    ab_json_free(arr);
    return 0;
}
