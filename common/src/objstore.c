/* objstore.c - objects put into an S3-compatible bucket, signed with SigV4. */
/* SPDX-License-Identifier: MIT */
#include "ab/objstore.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "ab/assert.h"
#include "ab/buf.h"

#define OS_ATTEMPTS           4
#define OS_CONNECT_TIMEOUT_MS 10000L
#define OS_REQUEST_TIMEOUT_MS 120000L
#define OS_ANSWER_MAX         ((size_t)64 * 1024)
#define OS_LIST_MAX           ((size_t)4 * 1024 * 1024) /* a page of 1000 keys */

struct ab_objstore {
    CURL *curl;
    char *endpoint; /* without a trailing '/' */
    char *bucket;
    char *sigv4;   /* "aws:amz:<region>:s3" */
    char *userpwd; /* "<key id>:<secret>" */
    char *ca_path;
    struct ab_buf url;
    struct ab_buf answer;
    FILE *sink;        /* a GET's body goes here (ab_objstore_get_file()) */
    bool sink_failed;  /* writing to it failed */
    size_t answer_max; /* what on_answer keeps of an answer */
};

void ab_objstore_free(struct ab_objstore *os)
{
    if (!os) {
        return;
    }
    if (os->curl) {
        curl_easy_cleanup(os->curl);
    }
    if (os->userpwd) {
        /* the secret does not outlive the handle in the heap */
        memset(os->userpwd, 0, strlen(os->userpwd));
    }
    free(os->endpoint);
    free(os->bucket);
    free(os->sigv4);
    free(os->userpwd);
    free(os->ca_path);
    ab_buf_release(&os->url);
    ab_buf_release(&os->answer);
    free(os);
}

struct ab_objstore *ab_objstore_new(const struct ab_objstore_cfg *cfg, struct ab_error *err)
{
    struct ab_objstore *os;
    size_t n;

    if (!cfg->endpoint || strncmp(cfg->endpoint, "http", 4) != 0 || !cfg->region || !*cfg->region ||
        !cfg->bucket || !*cfg->bucket || !cfg->access_key_id || !cfg->secret_access_key) {
        (void)ab_error_set(err, AB_ERR_CONFIG,
                           "object storage needs endpoint (http:// or https://), region, bucket, "
                           "access_key_id and secret_access_key");
        return NULL;
    }
    os = calloc(1, sizeof(*os));
    if (!os) {
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ab_buf_init(&os->url, 16384);
    ab_buf_init(&os->answer, OS_LIST_MAX);
    os->answer_max = OS_ANSWER_MAX / 2;
    os->endpoint = strdup(cfg->endpoint);
    os->bucket = strdup(cfg->bucket);
    os->sigv4 = malloc(strlen(cfg->region) + 16);
    os->userpwd = malloc(strlen(cfg->access_key_id) + strlen(cfg->secret_access_key) + 2);
    os->ca_path = cfg->ca_path ? strdup(cfg->ca_path) : NULL;
    os->curl = curl_easy_init();
    if (!os->endpoint || !os->bucket || !os->sigv4 || !os->userpwd ||
        (cfg->ca_path && !os->ca_path) || !os->curl) {
        ab_objstore_free(os);
        (void)ab_error_set(err, AB_ERR_NOMEM, "out of memory");
        return NULL;
    }
    n = strlen(os->endpoint);
    while (n > 0 && os->endpoint[n - 1] == '/') {
        os->endpoint[--n] = '\0';
    }
    (void)snprintf(os->sigv4, strlen(cfg->region) + 16, "aws:amz:%s:s3", cfg->region);
    (void)snprintf(os->userpwd, strlen(cfg->access_key_id) + strlen(cfg->secret_access_key) + 2,
                   "%s:%s", cfg->access_key_id, cfg->secret_access_key);
    return os;
}

static size_t on_answer(char *p, size_t size, size_t nmemb, void *arg)
{
    struct ab_objstore *os = arg;
    struct ab_buf *b = &os->answer;
    size_t n = size * nmemb;
    struct ab_error ignored;
    long status = 0;

    if (os->sink) {
        (void)curl_easy_getinfo(os->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (fwrite(p, 1, n, os->sink) != n) {
                os->sink_failed = true;
                return 0;
            }
            return n;
        }
    }
    /* keep what fits: an error's Code and Message, or a listing's page */
    if (b->len < os->answer_max) {
        size_t take = n < os->answer_max - b->len ? n : os->answer_max - b->len;

        ab_error_init(&ignored);
        (void)ab_buf_add(b, p, take, &ignored);
    }
    return n;
}

/* The text of <tag>...</tag> in an S3 error document into out ("" if none). */
static void xml_member(const struct ab_buf *doc, const char *tag, char *out, size_t size)
{
    char open[32];
    char close[32];
    const char *a;
    const char *z;
    size_t n;
    size_t i;

    out[0] = '\0';
    if (!doc->data || doc->len == 0) {
        return;
    }
    (void)snprintf(open, sizeof(open), "<%s>", tag);
    (void)snprintf(close, sizeof(close), "</%s>", tag);
    a = strstr(doc->data, open);
    if (!a) {
        return;
    }
    a += strlen(open);
    z = strstr(a, close);
    if (!z) {
        return;
    }
    n = (size_t)(z - a) < size - 1 ? (size_t)(z - a) : size - 1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];

        out[i] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    out[n] = '\0';
}

static bool key_byte_plain(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-' || c == '/';
}

/* Appends s percent-encoded; '/' is kept when slash. */
static enum ab_status add_encoded(struct ab_buf *b, const char *s, bool slash, struct ab_error *err)
{
    enum ab_status rc = AB_OK;
    const unsigned char *k;

    for (k = (const unsigned char *)s; rc == AB_OK && *k; k++) {
        rc = key_byte_plain(*k) && (slash || *k != '/') ? ab_buf_addc(b, (char)*k, err)
                                                        : ab_buf_printf(b, err, "%%%02X", *k);
    }
    return rc;
}

/* key NULL: the bucket itself, query (already encoded, sorted) appended. */
static enum ab_status build_url(struct ab_objstore *os, const char *key, const char *query,
                                struct ab_error *err)
{
    enum ab_status rc;

    ab_buf_reset(&os->url);
    rc = ab_buf_printf(&os->url, err, "%s/%s%s", os->endpoint, os->bucket, key ? "/" : "");
    if (rc == AB_OK && key) {
        rc = add_encoded(&os->url, key, true, err);
    }
    if (rc == AB_OK && query) {
        rc = ab_buf_printf(&os->url, err, "?%s", query);
    }
    return rc;
}

/* One signed request; retried on connection failures and 5xx. */
static enum ab_status request(struct ab_objstore *os, const char *method, const char *key,
                              const char *query, const void *data, size_t len,
                              const char *content_type, struct ab_error *err)
{
    struct curl_slist *hdrs = NULL;
    struct curl_slist *h;
    char ctype[200];
    char sha[128];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    unsigned int i;
    enum ab_status rc = build_url(os, key, query, err);
    const char *what = key ? key : "";
    long status = 0;
    int attempt;

    if (rc != AB_OK) {
        return rc;
    }
    (void)snprintf(ctype, sizeof(ctype), "Content-Type: %s",
                   content_type ? content_type : "application/octet-stream");
    /* S3 wants the payload's hash in a signed header */
    if (EVP_Digest(len ? data : "", len, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return ab_error_set(err, AB_ERR_INTERNAL, "cannot hash the object");
    }
    i = (unsigned)snprintf(sha, sizeof(sha), "x-amz-content-sha256: ");
    for (unsigned k = 0; k < mdlen && i + 3 < sizeof(sha); k++) {
        i += (unsigned)snprintf(sha + i, sizeof(sha) - i, "%02x", md[k]);
    }
    h = curl_slist_append(hdrs, ctype);
    hdrs = h ? h : hdrs;
    h = h ? curl_slist_append(hdrs, sha) : NULL;
    if (!h) {
        curl_slist_free_all(hdrs);
        return ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    hdrs = h;
    for (attempt = 1; attempt <= OS_ATTEMPTS; attempt++) {
        CURL *c = os->curl;
        CURLcode cc;
        char code[128];
        char msg[400];

        curl_easy_reset(c);
        ab_buf_reset(&os->answer);
        if (os->sink) {
            /* a retried GET starts its file again */
            os->sink_failed = fflush(os->sink) != 0 || ftruncate(fileno(os->sink), 0) != 0;
            rewind(os->sink);
            if (os->sink_failed) {
                rc = ab_error_set(err, AB_ERR_IO, "object storage: cannot write GET %s to a file",
                                  what);
                break;
            }
        }
        (void)curl_easy_setopt(c, CURLOPT_URL, os->url.data);
        (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        if (strcmp(method, "PUT") == 0) {
            (void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
            (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, len ? data : "");
        }
        (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        (void)curl_easy_setopt(c, CURLOPT_AWS_SIGV4, os->sigv4);
        (void)curl_easy_setopt(c, CURLOPT_USERPWD, os->userpwd);
        (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, OS_CONNECT_TIMEOUT_MS);
        (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, OS_REQUEST_TIMEOUT_MS);
        (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_answer);
        (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, os);
        (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        if (os->ca_path) {
            (void)curl_easy_setopt(c, CURLOPT_CAINFO, os->ca_path);
        }
        cc = curl_easy_perform(c);
        if (os->sink_failed) {
            rc =
                ab_error_set(err, AB_ERR_IO, "object storage: cannot write GET %s to a file", what);
            break;
        }
        if (cc != CURLE_OK) {
            rc = ab_error_set(err, AB_ERR_TRANSIENT, "object storage: %s %s/%s/%s failed: %s",
                              method, os->endpoint, os->bucket, what, curl_easy_strerror(cc));
        } else {
            (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            if ((status >= 200 && status < 300) ||
                (strcmp(method, "DELETE") == 0 && status == 404)) {
                rc = AB_OK;
                break;
            }
            xml_member(&os->answer, "Code", code, sizeof(code));
            xml_member(&os->answer, "Message", msg, sizeof(msg));
            rc = ab_error_set(
                err, status >= 500 || status == 429 ? AB_ERR_TRANSIENT : AB_ERR_CONFIG,
                "object storage refused %s s3://%s/%s: HTTP %ld %s%s%s", method, os->bucket, what,
                status, code[0] ? code : "(no code)", msg[0] ? ": " : "", msg);
            if (rc == AB_ERR_CONFIG) {
                break;
            }
        }
        if (attempt < OS_ATTEMPTS) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 250000000L * attempt};

            (void)nanosleep(&ts, NULL);
        }
    }
    curl_easy_reset(os->curl);
    curl_slist_free_all(hdrs);
    return rc;
}

enum ab_status ab_objstore_put(struct ab_objstore *os, const char *key, const void *data,
                               size_t len, const char *content_type, struct ab_error *err)
{
    AB_ASSERT(os && key);
    return request(os, "PUT", key, NULL, data, len, content_type, err);
}

enum ab_status ab_objstore_delete(struct ab_objstore *os, const char *key, struct ab_error *err)
{
    AB_ASSERT(os && key);
    return request(os, "DELETE", key, NULL, NULL, 0, NULL, err);
}

enum ab_status ab_objstore_get_file(struct ab_objstore *os, const char *key, FILE *fp,
                                    struct ab_error *err)
{
    enum ab_status rc;

    AB_ASSERT(os && key && fp);
    os->sink = fp;
    os->sink_failed = false;
    rc = request(os, "GET", key, NULL, NULL, 0, NULL, err);
    os->sink = NULL;
    if (rc == AB_OK && fflush(fp) != 0) {
        rc = ab_error_set(err, AB_ERR_IO, "object storage: cannot write GET %s to a file", key);
    }
    return rc;
}

/* Decodes the XML entities S3 writes (&amp; &lt; &gt; &quot; &apos; &#N;)
 * of doc[a..z) into out. */
static enum ab_status xml_text(const char *a, const char *z, struct ab_buf *out,
                               struct ab_error *err)
{
    static const struct {
        const char *name;
        char ch;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    enum ab_status rc = AB_OK;

    ab_buf_reset(out);
    while (a < z && rc == AB_OK) {
        size_t i;
        bool done = false;

        if (*a != '&') {
            rc = ab_buf_addc(out, *a++, err);
            continue;
        }
        for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t n = strlen(ents[i].name);

            if ((size_t)(z - a) >= n && memcmp(a, ents[i].name, n) == 0) {
                rc = ab_buf_addc(out, ents[i].ch, err);
                a += n;
                done = true;
                break;
            }
        }
        if (!done && z - a > 3 && a[1] == '#') {
            char *end = NULL;
            long v = a[2] == 'x' ? strtol(a + 3, &end, 16) : strtol(a + 2, &end, 10);

            if (end && end < z && *end == ';' && v > 0 && v < 128) {
                rc = ab_buf_addc(out, (char)v, err);
                a = end + 1;
                done = true;
            }
        }
        if (!done) {
            rc = ab_buf_addc(out, *a++, err);
        }
    }
    if (rc == AB_OK) {
        rc = ab_buf_addc(out, '\0', err);
        out->len--;
    }
    return rc;
}

/* The next <tag>text</tag> at or after *pos within [*pos, end), or NULL. */
static const char *xml_next(const char **pos, const char *end, const char *tag,
                            const char **text_end)
{
    char open[48];
    char close[48];
    const char *a;
    const char *z;

    (void)snprintf(open, sizeof(open), "<%s>", tag);
    (void)snprintf(close, sizeof(close), "</%s>", tag);
    a = strstr(*pos, open);
    if (!a || a >= end) {
        return NULL;
    }
    a += strlen(open);
    z = strstr(a, close);
    if (!z || z > end) {
        return NULL;
    }
    *text_end = z;
    *pos = z + strlen(close);
    return a;
}

enum ab_status ab_objstore_list(struct ab_objstore *os, const char *prefix, ab_objstore_list_fn fn,
                                void *arg, struct ab_error *err)
{
    struct ab_buf query;
    struct ab_buf token;
    struct ab_buf name;
    enum ab_status rc = AB_OK;
    bool more = true;

    AB_ASSERT(os && prefix && fn);
    ab_buf_init(&query, AB_BUF_UNBOUNDED);
    ab_buf_init(&token, AB_BUF_UNBOUNDED);
    ab_buf_init(&name, AB_BUF_UNBOUNDED);
    os->answer_max = OS_LIST_MAX - 1;
    while (rc == AB_OK && more) {
        const char *doc;
        const char *end;
        const char *pos;
        const char *a;
        const char *z = NULL;

        /* the query's parameters sorted by name, as SigV4 signs them */
        ab_buf_reset(&query);
        rc = token.len ? ab_buf_adds(&query, "continuation-token=", err) : AB_OK;
        if (rc == AB_OK && token.len) {
            rc = add_encoded(&query, token.data, false, err);
        }
        if (rc == AB_OK) {
            rc = ab_buf_printf(&query, err,
                               "%slist-type=2&max-keys=1000&prefix=", token.len ? "&" : "");
        }
        if (rc == AB_OK) {
            rc = add_encoded(&query, prefix, false, err);
        }
        if (rc == AB_OK) {
            rc = request(os, "GET", NULL, query.data, NULL, 0, NULL, err);
        }
        if (rc != AB_OK) {
            break;
        }
        if (os->answer.len >= OS_LIST_MAX - 1) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL,
                              "object storage answered a listing of s3://%s/%s with a page "
                              "over %zu bytes",
                              os->bucket, prefix, OS_LIST_MAX - 1);
            break;
        }
        rc = ab_buf_addc(&os->answer, '\0', err);
        if (rc != AB_OK) {
            break;
        }
        doc = os->answer.data;
        end = doc + os->answer.len - 1;
        if (!strstr(doc, "<ListBucketResult")) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL,
                              "object storage answered a listing of s3://%s/%s without a "
                              "ListBucketResult (no ListObjectsV2 support?)",
                              os->bucket, prefix);
            break;
        }
        pos = doc;
        while (rc == AB_OK && (a = xml_next(&pos, end, "Key", &z)) != NULL) {
            rc = xml_text(a, z, &name, err);
            if (rc == AB_OK) {
                rc = fn(arg, name.data, err);
            }
        }
        if (rc != AB_OK) {
            break;
        }
        pos = doc;
        a = xml_next(&pos, end, "IsTruncated", &z);
        more = a && z - a == 4 && memcmp(a, "true", 4) == 0;
        pos = doc;
        a = more ? xml_next(&pos, end, "NextContinuationToken", &z) : NULL;
        if (more && !a) {
            rc = ab_error_set(err, AB_ERR_PROTOCOL,
                              "object storage answered a truncated listing of s3://%s/%s "
                              "without a NextContinuationToken",
                              os->bucket, prefix);
            break;
        }
        if (more) {
            rc = xml_text(a, z, &token, err);
        }
    }
    os->answer_max = OS_ANSWER_MAX / 2;
    ab_buf_release(&query);
    ab_buf_release(&token);
    ab_buf_release(&name);
    return rc;
}
