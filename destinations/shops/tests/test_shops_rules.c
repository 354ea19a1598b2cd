/* test_shops_rules.c - Shops' item rules (rules.c) against the table of cases. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ab/buf.h"
#include "ab/json.h"

#include "ab_test.h"
#include "rules.h"

/*
 * data/item_rules.json holds one row per case, a value on each side of every
 * limit of the product and inventory tables, with the errors Shops answers
 * ([field, code] pairs, in order). integration/test_shops_dryrun.py uploads
 * the same items to the emulator and expects the same errors there, so the
 * rules here and the emulator's agree on every row.
 */

#define CASES AB_TEST_DATA_DIR "/item_rules.json"

static bool listed(yajl_val arr, const char *key)
{
    for (size_t i = 0; arr && arr->type == yajl_t_array && i < arr->u.array.len; i++) {
        const char *s = ab_json_str(arr->u.array.values[i]);

        if (s && strcmp(s, key) == 0) {
            return true;
        }
    }
    return false;
}

/* The case's item as JSON text: the base with "set" applied, "unset"
 * removed and "repeat" added. */
static void build_item(yajl_val base, yajl_val cs, struct ab_buf *out)
{
    struct ab_error err = {0};
    yajl_val set = ab_json_get(cs, "set");
    yajl_val unset = ab_json_get(cs, "unset");
    yajl_val rep = ab_json_get(cs, "repeat");
    const char *rfield = ab_json_get_str(rep, "field", NULL);
    bool first = true;

    ab_buf_reset(out);
    assert_int_equal(ab_buf_addc(out, '{', &err), AB_OK);
    for (size_t i = 0; i < base->u.object.len; i++) {
        const char *k = base->u.object.keys[i];

        if (ab_json_get(set, k) || listed(unset, k) || (rfield && strcmp(rfield, k) == 0)) {
            continue;
        }
        assert_int_equal(ab_buf_printf(out, &err, "%s\"%s\":", first ? "" : ",", k), AB_OK);
        assert_int_equal(ab_json_write(out, base->u.object.values[i], &err), AB_OK);
        first = false;
    }
    for (size_t i = 0; set && i < set->u.object.len; i++) {
        assert_int_equal(
            ab_buf_printf(out, &err, "%s\"%s\":", first ? "" : ",", set->u.object.keys[i]), AB_OK);
        assert_int_equal(ab_json_write(out, set->u.object.values[i], &err), AB_OK);
        first = false;
    }
    if (rfield) {
        const char *text = ab_json_get_str(rep, "text", NULL);
        const char *elem = ab_json_get_str(rep, "element", NULL);
        int64_t times = ab_json_get_int(rep, "times", -1);

        assert_true(times >= 0 && (text || elem));
        assert_int_equal(
            ab_buf_printf(out, &err, "%s\"%s\":%c", first ? "" : ",", rfield, text ? '"' : '['),
            AB_OK);
        for (int64_t k = 0; k < times; k++) {
            if (text) {
                assert_int_equal(ab_buf_adds(out, text, &err), AB_OK);
            } else {
                assert_int_equal(ab_buf_printf(out, &err, "%s\"%s\"", k ? "," : "", elem), AB_OK);
            }
        }
        assert_int_equal(ab_buf_adds(out, ab_json_get_str(rep, "suffix", ""), &err), AB_OK);
        assert_int_equal(ab_buf_addc(out, text ? '"' : ']', &err), AB_OK);
    }
    assert_int_equal(ab_buf_addc(out, '}', &err), AB_OK);
}

/* "[field code] [field code]" of an errors array. */
static void pairs(yajl_val arr, bool from_rules, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; arr && i < arr->u.array.len && len < size; i++) {
        yajl_val e = arr->u.array.values[i];
        const char *field;
        const char *code;
        int k;

        if (from_rules) {
            field = ab_json_get_str(e, "field", "?");
            code = ab_json_get_str(e, "code", "?");
            assert_non_null(ab_json_get_str(e, "message", NULL));
        } else {
            field = ab_json_str(e->u.array.values[0]);
            code = ab_json_str(e->u.array.values[1]);
        }
        k = snprintf(out + len, size - len, "%s[%s %s]", i ? " " : "", field, code);
        assert_true(k > 0);
        len += (size_t)k;
    }
}

static void test_every_case_of_the_table(void **state)
{
    struct ab_error err = {0};
    struct ab_buf file;
    struct ab_buf item;
    struct ab_buf errors;
    char why[256];
    yajl_val doc;
    yajl_val cases;
    size_t valid = 0;
    size_t failed = 0;

    (void)state;
    assert_int_equal(ab_buf_read_file(CASES, 4 << 20, &file, why, sizeof(why)), AB_OK);
    doc = ab_json_parse(file.data, file.len, &err);
    assert_non_null(doc);
    cases = ab_json_get(doc, "cases");
    assert_true(cases && cases->type == yajl_t_array && cases->u.array.len > 100);
    ab_buf_init(&item, AB_BUF_UNBOUNDED);
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    for (size_t i = 0; i < cases->u.array.len; i++) {
        yajl_val cs = cases->u.array.values[i];
        const char *object = ab_json_get_str(cs, "object", "");
        unsigned obj = strcmp(object, "products") == 0 ? 0U : 1U;
        yajl_val base = ab_json_get(ab_json_get(doc, "base"), object);
        yajl_val it;
        yajl_val got = NULL;
        char want_s[512];
        char got_s[512];

        build_item(base, cs, &item);
        it = ab_json_parse(item.data, item.len, &err);
        assert_non_null(it);
        assert_int_equal(shp_check_item(obj, shp_item_field, it, &errors, &err), AB_OK);
        if (errors.len) {
            got = ab_json_parse(errors.data, errors.len, &err);
            assert_non_null(got);
        } else {
            valid++;
        }
        pairs(ab_json_get(cs, "errors"), false, want_s, sizeof(want_s));
        pairs(got, true, got_s, sizeof(got_s));
        if (strcmp(want_s, got_s) != 0) {
            print_error("%s: %s: want '%s', got '%s'\n", object, ab_json_get_str(cs, "rule", "?"),
                        want_s, got_s);
            failed++;
        }
        ab_json_free(got);
        ab_json_free(it);
    }
    assert_true(valid > 10);
    assert_int_equal(failed, 0);
    ab_buf_release(&errors);
    ab_buf_release(&item);
    ab_json_free(doc);
    ab_buf_release(&file);
}

/* The errors of item (JSON text) read from its lazily kept members, as the
 * driver hands them for a RECORD line: into lazy_errors; false when the
 * values are not plain enough (the tree decides then). */
static bool lazy_check(struct ab_json_arena *a, unsigned obj, const char *item, size_t len,
                       struct ab_buf *line, struct ab_buf *lazy_errors)
{
    struct ab_error err = {0};
    const struct ab_json_member *members = NULL;
    size_t n = 0;
    size_t off = 0;
    size_t dlen = 0;
    bool compact = false;
    struct shp_val vals[SHP_MAX_RULES];
    yajl_val root;
    yajl_val data;

    ab_buf_reset(line);
    assert_int_equal(ab_buf_printf(line, &err,
                                   "{\"type\":\"RECORD\",\"record\":{\"stream\":\"%s\","
                                   "\"emitted_at\":1,\"data\":%.*s}}",
                                   obj ? "inventory" : "products", (int)len, item),
                     AB_OK);
    ab_json_arena_reset(a);
    root = ab_json_parse_arena(a, line->data, line->len, &err);
    assert_non_null(root);
    data = ab_json_get(ab_json_get(root, "record"), "data");
    assert_non_null(data);
    if (!ab_json_arena_lazy(a, data, &members, &n)) {
        return false; /* the parser built a tree: not lazy data */
    }
    assert_true(ab_json_arena_span(a, data, &off, &dlen, &compact));
    assert_int_equal(dlen, len);
    if (!shp_vals_of_members(obj, line->data + off, members, n, vals)) {
        return false;
    }
    assert_int_equal(shp_check_vals(obj, vals, lazy_errors, &err), AB_OK);
    return true;
}

/* Every case of the table, and tricky items around it, give the same
 * errors, byte for byte, read three ways: through the field getter (the
 * mapped path), in one pass over a tree's members, and from the text of
 * lazily read data; values the text cannot give (escapes, images that are
 * not plain strings) say so, and the tree decides. */
static void test_lazy_members_give_the_trees_errors(void **state)
{
    static const char *const extra[] = {
        /* strings with escapes: the tree decides */
        "{\"sku\":\"A\\/B\",\"quantity\":1,\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"sku\":\"A\",\"location\":\"a\\\"b\",\"quantity\":1,\"updated_at\":\"2026-01-01T00:00:"
        "00Z\"}",
        "{\"sku\":\"A\",\"quantity\":1,\"updated_at\":\"2026-01-01T00:00:00\\u005a\"}",
        /* whitespace inside the values and between members */
        "{ \"sku\" : \"A\" , \"quantity\" : 7 , \"updated_at\" : \"2026-01-01T00:00:00Z\" }",
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":\"1.00\",\"currency\":\"BRL\","
        "\"images\":[ \"https://a.example/x.jpg\" ,\"http://b\",  \"https://c.example\"],"
        "\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        /* images that are not all plain strings */
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":\"1.00\",\"currency\":\"BRL\","
        "\"images\":[\"https://a.example/x.jpg\",1,null,{\"u\":\"https://x\"}],"
        "\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":\"1.00\",\"currency\":\"BRL\","
        "\"images\":[\"https://a.example/\\u00e9.jpg\"],\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":\"1.00\",\"currency\":\"BRL\","
        "\"images\":[],\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":\"1.00\",\"currency\":\"BRL\","
        "\"images\":\"https://a.example/x.jpg\",\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        /* multi-byte characters, members out of the tables' order, unknown
         * members, nulls, types the rules refuse */
        "{\"updated_at\":\"2026-02-29T00:00:00+03:00\",\"title\":\"Saia ção 日本\",\"sku\":\"P1\","
        "\"x\":[1,{\"y\":2}],\"brand\":\"é\",\"price\":\"10\",\"compare_at_price\":\"9.99\","
        "\"currency\":\"BRL\",\"active\":null,\"description\":null}",
        "{\"sku\":\"P1\",\"brand\":\"b\",\"title\":\"t\",\"price\":12,\"currency\":\"brl\","
        "\"attributes\":[],\"active\":\"yes\",\"updated_at\":20260101}",
        "{\"sku\":-0,\"quantity\":-0,\"updated_at\":\"2026-01-01T00:00:00Z\"}",
        "{\"sku\":\"A\",\"quantity\":1.5,\"location\":\"\",\"updated_at\":\"2026-13-01T00:00:"
        "00Z\"}",
        "{\"sku\":\"A\",\"quantity\":12345678901234567890123,\"updated_at\":\"\"}",
        "{\"sku\":\"\",\"quantity\":true,\"updated_at\":false}",
        "{}",
    };
    struct ab_error err = {0};
    struct ab_buf file;
    struct ab_buf item;
    struct ab_buf line;
    struct ab_buf want;
    struct ab_buf once;
    struct ab_buf lazy;
    struct ab_json_arena *a = ab_json_arena_new(&err);
    char why[256];
    yajl_val doc;
    yajl_val cases;
    size_t nlazy = 0;
    size_t ntotal = 0;

    (void)state;
    assert_non_null(a);
    ab_json_arena_set_lazy(a, true);
    assert_int_equal(ab_buf_read_file(CASES, 4 << 20, &file, why, sizeof(why)), AB_OK);
    doc = ab_json_parse(file.data, file.len, &err);
    assert_non_null(doc);
    cases = ab_json_get(doc, "cases");
    ab_buf_init(&item, AB_BUF_UNBOUNDED);
    ab_buf_init(&line, AB_BUF_UNBOUNDED);
    ab_buf_init(&want, AB_BUF_UNBOUNDED);
    ab_buf_init(&once, AB_BUF_UNBOUNDED);
    ab_buf_init(&lazy, AB_BUF_UNBOUNDED);
    for (size_t i = 0; i < cases->u.array.len + 2 * (sizeof(extra) / sizeof(extra[0])); i++) {
        unsigned obj;
        yajl_val it;
        struct shp_val vals[SHP_MAX_RULES];

        if (i < cases->u.array.len) {
            yajl_val cs = cases->u.array.values[i];
            const char *object = ab_json_get_str(cs, "object", "");

            obj = strcmp(object, "products") == 0 ? 0U : 1U;
            build_item(ab_json_get(ab_json_get(doc, "base"), object), cs, &item);
        } else {
            size_t k = i - cases->u.array.len;

            obj = (unsigned)(k & 1U); /* each extra item as both objects */
            ab_buf_reset(&item);
            assert_int_equal(ab_buf_adds(&item, extra[k / 2], &err), AB_OK);
        }
        it = ab_json_parse(item.data, item.len, &err);
        assert_non_null(it);
        assert_int_equal(shp_check_item(obj, shp_item_field, it, &want, &err), AB_OK);
        shp_vals_of_object(obj, it, vals);
        assert_int_equal(shp_check_vals(obj, vals, &once, &err), AB_OK);
        assert_int_equal(once.len, want.len);
        if (want.len) {
            assert_memory_equal(once.data, want.data, want.len);
        }
        ntotal++;
        if (lazy_check(a, obj, item.data, item.len, &line, &lazy)) {
            if (lazy.len != want.len || (want.len && memcmp(lazy.data, want.data, want.len) != 0)) {
                print_error("item %s (object %u): tree %s, lazy %s\n", item.data, obj,
                            want.len ? want.data : "[]", lazy.len ? lazy.data : "[]");
                fail();
            }
            nlazy++;
        }
        ab_json_free(it);
    }
    /* only the items with escapes or odd images leave the lazy path */
    assert_true(nlazy + 12 >= ntotal);
    assert_true(nlazy > 140);
    ab_buf_release(&lazy);
    ab_buf_release(&once);
    ab_buf_release(&want);
    ab_buf_release(&line);
    ab_buf_release(&item);
    ab_json_free(doc);
    ab_buf_release(&file);
    ab_json_arena_free(a);
}

/* The errors are JSON Shops' own shape, one per field. */
static void test_errors_are_a_json_array(void **state)
{
    struct ab_error err = {0};
    struct ab_buf errors;
    const char *text = "{\"sku\":\"a b\",\"quantity\":\"1\"}";
    yajl_val it = ab_json_parse(text, strlen(text), &err);
    yajl_val got;

    (void)state;
    ab_buf_init(&errors, AB_BUF_UNBOUNDED);
    assert_int_equal(shp_check_item(1, shp_item_field, it, &errors, &err), AB_OK);
    got = ab_json_parse(errors.data, errors.len, &err);
    assert_non_null(got);
    assert_int_equal(got->type, yajl_t_array);
    assert_int_equal(got->u.array.len, 3);
    assert_string_equal(ab_json_get_str(got->u.array.values[2], "field", ""), "updated_at");
    assert_string_equal(ab_json_get_str(got->u.array.values[2], "code", ""), "missing_field");
    /* a valid item leaves nothing, whatever the buffer held */
    ab_json_free(it);
    text = "{\"sku\":\"A\",\"quantity\":1,\"updated_at\":\"2026-01-01T00:00:00Z\"}";
    it = ab_json_parse(text, strlen(text), &err);
    assert_int_equal(shp_check_item(1, shp_item_field, it, &errors, &err), AB_OK);
    assert_int_equal(errors.len, 0);
    assert_int_equal(shp_check_item(7, shp_item_field, it, &errors, &err), AB_ERR_INTERNAL);
    ab_json_free(got);
    ab_json_free(it);
    ab_buf_release(&errors);
}

static void test_reports_name_the_rules(void **state)
{
    char out[256];

    (void)state;
    shp_rules_local_fields(0, out, sizeof(out));
    assert_string_equal(out, "sku, parent_sku, brand, title, description, price, "
                             "compare_at_price, currency, attributes, images, active, updated_at");
    shp_rules_local_fields(1, out, sizeof(out));
    assert_string_equal(out, "sku, location, quantity, updated_at");
    shp_rules_local_fields(1, out, 8);
    assert_string_equal(out, "sku, lo");
    assert_non_null(strstr(shp_rules_target_only(), "unknown_sku"));
    assert_non_null(strstr(shp_rules_target_only(), "unknown_parent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case_of_the_table),
        cmocka_unit_test(test_lazy_members_give_the_trees_errors),
        cmocka_unit_test(test_errors_are_a_json_array),
        cmocka_unit_test(test_reports_name_the_rules),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
