/* wire.c - pure helpers of destination-shops: identities, encodings, decisions. */
/* SPDX-License-Identifier: MIT */
#include "wire.h"

#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "ab/json.h"

enum ab_status shp_label(char *out, size_t size, const char *prefix, const char *sync_ident,
                         uint64_t n, struct ab_error *err)
{
    int k = snprintf(out, size, "%s:%s:%llu", prefix, sync_ident, (unsigned long long)n);

    if (k < 0 || (size_t)k >= size || (size_t)k > SHP_LABEL_MAX) {
        return ab_error_set(err, AB_ERR_CONFIG,
                            "label_prefix '%s' is too long: the import label must fit %d "
                            "characters",
                            prefix, SHP_LABEL_MAX);
    }
    return AB_OK;
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[(p[i] >> 4) & 0xFU];
        out[2 * i + 1] = digits[p[i] & 0xFU];
    }
    out[2 * n] = '\0';
}

void shp_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];

    (void)SHA256(data, len, md);
    hex(md, sizeof(md), out);
}

void shp_idempotency_key(char out[SHP_KEY_SIZE], const char *prefix, const char *sync_ident,
                         const char *run_id, uint64_t n)
{
    char text[512];
    char digest[65];
    int k = snprintf(text, sizeof(text), "%s\n%s\n%s\n%llu", prefix, sync_ident, run_id,
                     (unsigned long long)n);
    size_t len = k < 0 ? 0 : (size_t)k;

    if (len >= sizeof(text)) {
        len = sizeof(text) - 1; /* inputs are bounded by the spec; never reached */
    }
    shp_sha256_hex(text, len, digest);
    (void)snprintf(out, SHP_KEY_SIZE, "shp-%.40s", digest);
}

enum ab_status shp_checkpoint_text(struct ab_buf *out, const char *members, size_t len,
                                   struct ab_error *err)
{
    char digest[65];

    ab_buf_reset(out);
    if (len <= SHP_CHECKPOINT_MAX) {
        return ab_buf_add(out, members, len, err);
    }
    shp_sha256_hex(members, len, digest);
    return ab_buf_printf(out, err, "sha256:%s", digest);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static enum ab_status escape(struct ab_buf *out, const char *s, bool form, struct ab_error *err)
{
    static const char digits[] = "0123456789ABCDEF";
    enum ab_status rc = AB_OK;
    const unsigned char *p;

    for (p = (const unsigned char *)s; rc == AB_OK && *p; p++) {
        if (unreserved(*p)) {
            rc = ab_buf_addc(out, (char)*p, err);
        } else if (form && *p == ' ') {
            rc = ab_buf_addc(out, '+', err);
        } else {
            char e[3];

            e[0] = '%';
            e[1] = digits[(*p >> 4) & 0xFU];
            e[2] = digits[*p & 0xFU];
            rc = ab_buf_add(out, e, sizeof(e), err);
        }
    }
    return rc;
}

enum ab_status shp_url_escape(struct ab_buf *out, const char *s, struct ab_error *err)
{
    return escape(out, s, false, err);
}

enum ab_status shp_form_add(struct ab_buf *out, const char *key, const char *value,
                            struct ab_error *err)
{
    enum ab_status rc = AB_OK;

    if (out->len > 0) {
        rc = ab_buf_addc(out, '&', err);
    }
    if (rc == AB_OK) {
        rc = escape(out, key, true, err);
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '=', err);
    }
    if (rc == AB_OK) {
        rc = escape(out, value, true, err);
    }
    return rc;
}

const char *shp_error_code(yajl_val body)
{
    yajl_val e = ab_json_get(body, "error");
    const char *code;

    if (YAJL_IS_STRING(e)) {
        return e->u.string;
    }
    code = ab_json_get_str(e, "code", NULL);
    return code ? code : "";
}

enum shp_next shp_resolve_decide(const char *status)
{
    if (!status) {
        return SHP_NEXT_FAIL;
    }
    if (strcmp(status, "committed") == 0) {
        return SHP_NEXT_FETCH_RESULT;
    }
    if (strcmp(status, "open") == 0) {
        return SHP_NEXT_COMMIT;
    }
    if (strcmp(status, "committing") == 0) {
        return SHP_NEXT_WAIT;
    }
    if (strcmp(status, "expired") == 0 || strcmp(status, "aborted") == 0) {
        return SHP_NEXT_RECREATE;
    }
    return SHP_NEXT_FAIL;
}

enum shp_next shp_commit_decide(int status, bool transient, const char *code)
{
    if (!code) {
        code = "";
    }
    if (status == 200) {
        return SHP_NEXT_DONE;
    }
    if (status == 0) {
        return transient ? SHP_NEXT_RESOLVE : SHP_NEXT_FAIL;
    }
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
        return SHP_NEXT_RESOLVE;
    }
    if (status == 409 && strcmp(code, "import_committing") == 0) {
        return SHP_NEXT_RESOLVE;
    }
    if (status == 409 && strcmp(code, "parts_missing") == 0) {
        return SHP_NEXT_UPLOAD_MISSING;
    }
    if (status == 410) {
        return SHP_NEXT_RECREATE;
    }
    return SHP_NEXT_FAIL;
}

const char *shp_next_name(enum shp_next n)
{
    switch (n) {
    case SHP_NEXT_DONE:
        return "done";
    case SHP_NEXT_FETCH_RESULT:
        return "fetch the stored commit result";
    case SHP_NEXT_COMMIT:
        return "commit";
    case SHP_NEXT_WAIT:
        return "wait for the running commit";
    case SHP_NEXT_RESOLVE:
        return "ask for the import's status";
    case SHP_NEXT_UPLOAD_MISSING:
        return "upload the missing parts";
    case SHP_NEXT_RECREATE:
        return "create a new import and upload again";
    case SHP_NEXT_FAIL:
        break;
    }
    return "fail";
}

long shp_wait_ms(unsigned k, long retry_after_ms)
{
    long ms = 1000;
    unsigned i;

    for (i = 1; i < k && ms < 30000; i++) {
        ms *= 2;
    }
    if (ms > 30000) {
        ms = 30000;
    }
    if (retry_after_ms > ms) {
        ms = retry_after_ms < 300000 ? retry_after_ms : 300000;
    }
    return ms;
}

enum ab_status shp_deactivate_item(bool product, const char *deleted_at, struct ab_buf *item,
                                   struct ab_error *err)
{
    const char *field = product ? "active" : "quantity";
    const char *value = product ? "false" : "0";
    yajl_val obj = ab_json_parse(item->data ? item->data : "", item->len, err);
    struct ab_buf out;
    enum ab_status rc;
    size_t i;

    if (!obj) {
        return err->code;
    }
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    rc = ab_buf_addc(&out, '{', err);
    for (i = 0; rc == AB_OK && obj->type == yajl_t_object && i < obj->u.object.len; i++) {
        const char *key = obj->u.object.keys[i];

        if (strcmp(key, field) == 0 || (deleted_at && strcmp(key, "updated_at") == 0)) {
            continue;
        }
        rc = ab_json_write_cstr(&out, key, err);
        if (rc == AB_OK) {
            rc = ab_buf_addc(&out, ':', err);
        }
        if (rc == AB_OK) {
            rc = ab_json_write(&out, obj->u.object.values[i], err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&out, ',', err);
        }
    }
    if (rc == AB_OK && deleted_at) {
        rc = ab_buf_adds(&out, "\"updated_at\":", err);
        if (rc == AB_OK) {
            rc = ab_json_write_cstr(&out, deleted_at, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_addc(&out, ',', err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_printf(&out, err, "\"%s\":%s}", field, value);
    }
    if (rc == AB_OK) {
        ab_buf_reset(item);
        rc = ab_buf_add(item, out.data, out.len, err);
    }
    ab_buf_release(&out);
    ab_json_free(obj);
    return rc;
}

bool shp_part_refused_whole(int status, bool transient, const char *code, uint32_t items)
{
    if (transient) {
        return false;
    }
    if (status == 413) {
        return items == 1;
    }
    return status == 400 && code &&
           (strcmp(code, "invalid_json") == 0 || strcmp(code, "invalid_encoding") == 0);
}
