/* json_arena.c - the strict JSON intake: one parser for every document. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ab/json.h"

/*
 * Everything that comes from outside (stdin lines, config, catalog, HTTP
 * answers, files) is parsed here, and nowhere else. The parser is iterative
 * (an explicit stack of open containers, so nesting costs no C stack) and
 * strict beyond RFC 8259:
 *
 *   - strings and member names are UTF-8 per RFC 3629 (no overlong forms,
 *     no surrogates, nothing above U+10FFFF), raw bytes and escapes alike;
 *   - an escaped NUL (\u0000) and unpaired surrogate escapes are refused;
 *   - a number that does not fit a double (1e999) is refused;
 *   - a member name twice in one object (compared after unescaping) is
 *     refused;
 *   - nesting is capped (AB_JSON_MAX_DEPTH) and so is memory
 *     (AB_JSON_BUDGET_FACTOR times the text plus AB_JSON_BUDGET_BASE).
 *
 * Memory layout. The tree is made of yajl_val nodes so that every accessor
 * works on it, but carved from 64 KiB blocks, with no per-value malloc and no
 * padding beyond what a type needs: a string node is the 8-byte header and
 * its pointer (16 bytes), an array node 24 bytes followed by its values, an
 * object 32 bytes followed by its keys and values, a number the full 40. Only
 * the members of a node's own type may be read (every accessor checks the
 * type first). null, true, false, "", [] and {} are shared static nodes, and
 * numbers of at most 3 characters are shared within a document. The text of
 * strings is packed without alignment. Children of open containers wait on
 * one stack (8 bytes per array item, 16 per member) and are copied behind
 * their container when it closes.
 *
 * Worst cases per input byte (tree plus the stack of a huge container):
 * "[1000]," 12.1, "1000," 10.6, "{\"a\":1000}," 9.4, "\"ab\"," 5.4.
 * Typical records cost 3 to 6 bytes per byte. The budget (16x + 1 MiB) is a
 * backstop that valid documents never reach; it bounds a hostile one.
 */

#define BLOCK_SIZE  ((size_t)64 * 1024)
#define INTERN_SIZE 2048 /* > the ~1,400 JSON numbers of at most 3 characters */

#define NODE_HDR  offsetof(struct yajl_val_s, u)
#define STRING_SZ (NODE_HDR + sizeof(char *))
#define ARRAY_SZ  (NODE_HDR + sizeof(((yajl_val)0)->u.array))
#define OBJECT_SZ (NODE_HDR + sizeof(((yajl_val)0)->u.object))
#define NUMBER_SZ sizeof(struct yajl_val_s)
#define PTR_ALIGN sizeof(void *)

_Static_assert(STRING_SZ % sizeof(void *) == 0, "string node alignment");
_Static_assert(ARRAY_SZ % sizeof(void *) == 0, "array node alignment");
_Static_assert(OBJECT_SZ % sizeof(void *) == 0, "object node alignment");

struct block {
    struct block *next;
    size_t used;
    size_t size;
    /* data follows, max_align_t aligned */
};

#define BLOCK_HEADER ((sizeof(struct block) + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1))

struct frame {
    yajl_type type; /* yajl_t_object or yajl_t_array */
    size_t first;   /* index of its first child slot on the stack */
    size_t start;   /* byte offset of its opening bracket */
    size_t ws;      /* whitespace bytes skipped in the document before it */
};

/* Where the containers nested at most SPAN_DEPTH deep lie in the text (the
 * first SPAN_KEEP of a document), for ab_json_arena_span(). */
#define SPAN_DEPTH 3
#define SPAN_KEEP  8

struct span {
    yajl_val node;
    size_t start;
    size_t end;
    size_t ws;
};

/* Bounds of the lazy reading; beyond them the tree path reads the object. */
#define LAZY_MEMBERS   128 /* top-level members */
#define LAZY_NAMES     512 /* names of all open objects */
#define LAZY_DEPTH     32  /* nesting within the object */
#define LAZY_OBJ_NAMES 32  /* members of one nested object */

struct lazy_name {
    size_t off;
    size_t len;
};

struct intern {
    uint32_t gen;
    uint32_t key;
    yajl_val node;
};

struct ab_json_arena {
    struct block *blocks; /* newest first; the oldest is kept on reset */
    void **stack;         /* children of open containers; members as key, value */
    size_t nstack;
    size_t cap;
    struct frame *frames;
    size_t frames_cap;
    size_t depth;
    struct intern *interns;
    uint32_t gen;
    size_t doc_bytes;             /* memory taken by the current document */
    struct ab_json_limits limits; /* as set; zeros mean the defaults */
    struct ab_json_limits cur;    /* effective for the current document */
    size_t values;                /* values in the current document */
    size_t ws;                    /* whitespace bytes skipped in it so far */
    struct span spans[SPAN_KEEP];
    size_t nspans;
    /* lazy data (ab_json_arena_set_lazy()) */
    bool lazy;
    yajl_val lazy_node; /* the object read lazily in the current document */
    struct ab_json_member *lazy_members;
    size_t lazy_n;
    struct lazy_name *lazy_names; /* names of the open objects, for duplicates */
    /* the current document */
    const unsigned char *text;
    size_t len;
    size_t pos;
    bool salvage;
    struct ab_error *content; /* first content error (salvage), else NULL */
    struct ab_error *err;
    enum ab_status failed; /* a hard failure, reported in *err */
};

/* ---- shared nodes -------------------------------------------------------- */

static struct yajl_val_s node_null = {.type = yajl_t_null};
static struct yajl_val_s node_true = {.type = yajl_t_true};
static struct yajl_val_s node_false = {.type = yajl_t_false};
static char empty_text[1] = "";
static struct yajl_val_s node_empty_string = {.type = yajl_t_string, .u.string = empty_text};
static yajl_val empty_values[1];
static const char *empty_keys[1];
static struct yajl_val_s node_empty_array = {.type = yajl_t_array,
                                             .u.array = {.values = empty_values, .len = 0}};
static struct yajl_val_s node_empty_object = {
    .type = yajl_t_object, .u.object = {.keys = empty_keys, .values = empty_values, .len = 0}};
/* Stands for a value that failed a content check (salvage mode only). */
static char invalid_text[] = "\xef\xbf\xbd";
static struct yajl_val_s node_invalid = {.type = yajl_t_string, .u.string = invalid_text};

bool ab_json_is_invalid(yajl_val v)
{
    return v == &node_invalid;
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return (n >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
    }
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80; /* E0: no overlong forms */
        unsigned char hi = c == 0xed ? 0x9f : 0xbf; /* ED: no surrogates */

        return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80) ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80; /* F0: no overlong forms */
        unsigned char hi = c == 0xf4 ? 0x8f : 0xbf; /* F4: nothing above U+10FFFF */

        return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
                (s[3] & 0xc0) == 0x80)
                   ? 4
                   : 0;
    }
    return 0; /* continuation byte, C0/C1 (overlong), F5..FF */
}

bool ab_utf8_valid(const char *s, size_t n, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        size_t k;

        if (p[i] < 0x80) {
            i++;
            continue;
        }
        k = utf8_seq(p + i, n - i);
        if (k == 0) {
            if (bad) {
                *bad = i;
            }
            return false;
        }
        i += k;
    }
    return true;
}

/* ---- arena --------------------------------------------------------------- */

static enum ab_status fail(struct ab_json_arena *a, enum ab_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool over_budget(struct ab_json_arena *a, size_t more)
{
    if (a->doc_bytes + more > a->cur.max_bytes) {
        if (!a->failed) {
            (void)fail(a, AB_ERR_PROTOCOL,
                       "invalid JSON: a document of %zu bytes needs more than %zu bytes of "
                       "memory (at byte %zu)",
                       a->len, a->cur.max_bytes, a->pos);
        }
        return true;
    }
    a->doc_bytes += more;
    return false;
}

static void *arena_alloc(struct ab_json_arena *a, size_t n, size_t align)
{
    struct block *b = a->blocks;
    size_t at;

    if (b) {
        at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->size && b->size - at >= n) {
            b->used = at + n;
            return (char *)b + BLOCK_HEADER + at;
        }
    }
    {
        size_t size = n > BLOCK_SIZE / 4 ? n : BLOCK_SIZE;

        if (over_budget(a, BLOCK_HEADER + size)) {
            return NULL;
        }
        b = malloc(BLOCK_HEADER + size);
        if (!b) {
            (void)fail(a, AB_ERR_NOMEM, "out of memory parsing a document of %zu bytes", a->len);
            return NULL;
        }
        b->size = size;
        b->used = n;
        if (size > n && a->blocks) {
            b->next = a->blocks;
            a->blocks = b;
        } else if (a->blocks) {
            /* an exact-size block: keep filling the current one */
            b->next = a->blocks->next;
            a->blocks->next = b;
        } else {
            b->next = NULL;
            a->blocks = b;
        }
        return (char *)b + BLOCK_HEADER;
    }
}

/* Gives back the tail of the last allocation (p, of n bytes, keeps m). */
static void arena_trim(struct ab_json_arena *a, char *p, size_t n, size_t m)
{
    struct block *b = a->blocks;

    if (b && (char *)b + BLOCK_HEADER + b->used == p + n) {
        b->used -= n - m;
    }
}

struct ab_json_arena *ab_json_arena_new(struct ab_error *err)
{
    struct ab_json_arena *a = calloc(1, sizeof(*a));

    if (!a) {
        ab_error_set(err, AB_ERR_NOMEM, "out of memory");
    }
    return a;
}

void ab_json_arena_set_limits(struct ab_json_arena *a, const struct ab_json_limits *l)
{
    if (a) {
        a->limits = *l;
    }
}

void ab_json_arena_reset(struct ab_json_arena *a)
{
    struct block *b;

    if (!a) {
        return;
    }
    /* keep the oldest block (a regular 64 KiB one), free the rest */
    while (a->blocks && a->blocks->next) {
        b = a->blocks;
        a->blocks = b->next;
        free(b);
    }
    if (a->blocks) {
        a->blocks->used = 0;
        if (a->blocks->size != BLOCK_SIZE) {
            free(a->blocks);
            a->blocks = NULL;
        }
    }
    /* a huge document's stack is not kept for the next one */
    if (a->cap > 65536) {
        free(a->stack);
        a->stack = NULL;
        a->cap = 0;
    }
    a->nstack = 0;
    a->depth = 0;
    a->nspans = 0;
    a->lazy_node = NULL;
}

void ab_json_arena_free(struct ab_json_arena *a)
{
    if (!a) {
        return;
    }
    ab_json_arena_reset(a);
    free(a->blocks);
    free(a->stack);
    free(a->frames);
    free(a->interns);
    free(a->lazy_members);
    free(a->lazy_names);
    free(a);
}

size_t ab_json_arena_doc_bytes(const struct ab_json_arena *a)
{
    return a ? a->doc_bytes : 0;
}

/* ---- errors -------------------------------------------------------------- */

/* A member name as messages show it: itself when short, UTF-8 and free of
 * control characters, else a description (messages stay one clean line). */
static const char *key_for_message(const char *key, char *buf, size_t size)
{
    size_t n = strlen(key);
    size_t i;

    if (n <= 64 && ab_utf8_valid(key, n, NULL)) {
        for (i = 0; i < n && (unsigned char)key[i] >= 0x20 && key[i] != 0x7f; i++) {
        }
        if (i == n) {
            return key;
        }
    }
    (void)snprintf(buf, size, "<member name of %zu bytes>", n);
    return buf;
}

/* Appends the path of the current position ($.a.b[3]) to buf. */
static void current_path(struct ab_json_arena *a, char *buf, size_t size)
{
    size_t n = 0;
    size_t d;

    n += (size_t)snprintf(buf, size, "$");
    for (d = 0; d < a->depth && n < size; d++) {
        struct frame *f = &a->frames[d];
        size_t end = d + 1 < a->depth ? a->frames[d + 1].first : a->nstack;

        if (f->type == yajl_t_array) {
            n += (size_t)snprintf(buf + n, size - n, "[%zu]", end - f->first);
        } else if ((end - f->first) % 2 == 0) {
            break; /* reading a member name: the object itself is the place */
        } else {
            const char *key = a->stack[end - 1];
            char kb[48];

            n += (size_t)snprintf(buf + n, size - n, ".%s",
                                  key ? key_for_message(key, kb, sizeof(kb))
                                      : "<invalid member name>");
        }
    }
    if (n >= size && size > 4) {
        memcpy(buf + size - 4, "...", 4);
    }
}

static enum ab_status fail(struct ab_json_arena *a, enum ab_status code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!a->failed) {
        a->failed = code;
        ab_error_set(a->err, code, "%s", msg);
    }
    return code;
}

/*
 * A content error at byte at: the value is unusable but the document's
 * structure is intact. Strict: fatal. Salvage: remembered (the first one),
 * and parsing goes on. Returns false when parsing must stop.
 */
static bool content_error(struct ab_json_arena *a, size_t at, const char *what)
{
    char path[256];

    current_path(a, path, sizeof(path));
    if (!a->salvage) {
        (void)fail(a, AB_ERR_PROTOCOL, "invalid JSON: %s at byte %zu (%s)", what, at, path);
        return false;
    }
    if (a->content->code == AB_OK) {
        ab_error_set(a->content, AB_ERR_PROTOCOL, "%s at byte %zu (%s)", what, at, path);
        ab_error_internal(a->content, "%s", path);
    }
    return true;
}

static enum ab_status syntax(struct ab_json_arena *a, const char *what)
{
    if (a->pos >= a->len) {
        return fail(a, AB_ERR_PROTOCOL, "invalid JSON: unexpected end of input (%s)", what);
    }
    if (a->text[a->pos] >= 0x20 && a->text[a->pos] < 0x7f) {
        return fail(a, AB_ERR_PROTOCOL, "invalid JSON: %s at byte %zu (found '%c')", what, a->pos,
                    a->text[a->pos]);
    }
    return fail(a, AB_ERR_PROTOCOL, "invalid JSON: %s at byte %zu (found byte 0x%02x)", what,
                a->pos, a->text[a->pos]);
}

/* ---- values -------------------------------------------------------------- */

static void skip_ws(struct ab_json_arena *a)
{
    size_t from = a->pos;

    if (from < a->len && a->text[from] > ' ') {
        return; /* most tokens follow each other directly */
    }

    while (a->pos < a->len) {
        unsigned char c = a->text[a->pos];

        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            break;
        }
        a->pos++;
    }
    a->ws += a->pos - from;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static long hex4(const unsigned char *p)
{
    long v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        int h = hexval(p[i]);

        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *out, unsigned long cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Reads the string at pos (on its opening quote) into the arena. *out is the
 * text (NUL-terminated, *outlen bytes), or NULL when it failed a content
 * check (salvage goes on; strict has failed). Returns false on a hard error.
 */
#ifdef __SSE2__
/* Of the 16 bytes at p, a bit for each that ends a plain run: a control
 * character or a byte of 0x80 or more (both below 0x20 as signed bytes), a
 * backslash, and with quote a '"'. */
static int stop_mask16(const unsigned char *p, bool quote)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)),
                                _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));

    if (quote) {
        stop = _mm_or_si128(stop, _mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
    }
    return _mm_movemask_epi8(stop);
}
#endif

/* The end of the run of bytes from t[i] that need no decoding: printable
 * ASCII but the backslash (and the quote when quote is true). Eight bytes at
 * a time while none of them is a control character, a backslash, a quote
 * (when asked) or a byte of 0x80 or more (the tests have no false negatives,
 * and no false positive below the first true one). Inlined with a constant
 * quote, so each caller gets its own loop. */
static inline __attribute__((always_inline)) size_t plain_scan(const unsigned char *t, size_t i,
                                                               size_t end, bool quote)
{
    const uint64_t ones = 0x0101010101010101u;
    const uint64_t high = 0x8080808080808080u;

#ifdef __SSE2__
    while (i + 16 <= end) {
        int m = stop_mask16(t + i, quote);

        if (m != 0) {
            return i + (size_t)__builtin_ctz((unsigned)m);
        }
        i += 16;
    }
#endif
    while (i + 8 <= end) {
        uint64_t x;
        uint64_t bs;
        uint64_t hit;

        memcpy(&x, t + i, 8);
        bs = x ^ (ones * '\\');
        hit = x | ((x - ones * 0x20) & ~x) | ((bs - ones) & ~bs);
        if (quote) {
            uint64_t qt = x ^ (ones * '"');

            hit |= (qt - ones) & ~qt;
        }
        hit &= high;
        if (hit != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* the first flagged byte is the first to stop at: a borrow
             * only carries upwards from a byte that is flagged itself */
            return i + ((size_t)__builtin_ctzll(hit) >> 3);
#else
            break;
#endif
        }
        i += 8;
    }
    while (i < end && t[i] >= 0x20 && t[i] < 0x80 && t[i] != '\\' && !(quote && t[i] == '"')) {
        i++;
    }
    return i;
}

static size_t plain_run(const unsigned char *t, size_t i, size_t end)
{
    return plain_scan(t, i, end, false);
}

/* As plain_run(), also stopping at a quote. */
static size_t plain_run_q(const unsigned char *t, size_t i, size_t end)
{
    return plain_scan(t, i, end, true);
}

static bool read_string(struct ab_json_arena *a, char **out, size_t *outlen)
{
    const unsigned char *t = a->text;
    size_t start = ++a->pos;
    size_t end = start;
    size_t bad_at = 0;
    const char *bad = NULL;
    char *buf;
    size_t n = 0;

    *out = NULL;
    /* the common case: plain ASCII up to the closing quote, copied at once */
    end = plain_run_q(t, start, a->len);
    if (end < a->len && t[end] == '"' && end > start) {
        buf = arena_alloc(a, end - start + 1, 1);
        if (!buf) {
            return false;
        }
        memcpy(buf, t + start, end - start);
        buf[end - start] = '\0';
        a->pos = end + 1;
        *out = buf;
        *outlen = end - start;
        return true;
    }
    end = start;
    /* find the closing quote first: the text is at most that long */
    for (;;) {
        const unsigned char *q;

        if (end >= a->len) {
            a->pos = a->len;
            syntax(a, "unterminated string");
            return false;
        }
        q = memchr(t + end, '"', a->len - end);
        if (!q) {
            a->pos = a->len;
            syntax(a, "unterminated string");
            return false;
        }
        end = (size_t)(q - t);
        {
            size_t bs = 0;

            while (end - bs > start && t[end - bs - 1] == '\\') {
                bs++;
            }
            if (bs % 2 == 0) {
                break;
            }
        }
        end++;
    }
    if (end == start) {
        a->pos = end + 1;
        *out = empty_text;
        *outlen = 0;
        return true;
    }
    buf = arena_alloc(a, end - start + 1, 1);
    if (!buf) {
        return false;
    }
    a->pos = start;
    while (a->pos < end) {
        size_t run = a->pos;
        unsigned char c;

        /* a run of plain ASCII is copied at once (a local index: stores into
         * buf could alias a->pos) */
        run = plain_run(t, run, end);
        if (run > a->pos) {
            memcpy(buf + n, t + a->pos, run - a->pos);
            n += run - a->pos;
            a->pos = run;
            continue;
        }
        c = t[a->pos];
        if (c < 0x20) {
            syntax(a, "control character in a string");
            return false;
        } else if (c >= 0x80) {
            size_t k = utf8_seq(t + a->pos, end - a->pos);

            if (k == 0) {
                if (!bad) {
                    bad = "invalid UTF-8";
                    bad_at = a->pos;
                }
                k = 1;
            }
            memcpy(buf + n, t + a->pos, k);
            n += k;
            a->pos += k;
        } else {
            unsigned char e = a->pos + 1 < end ? t[a->pos + 1] : 0;
            char ch = 0;

            switch (e) {
            case '"':
            case '\\':
            case '/':
                ch = (char)e;
                break;
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case 'n':
                ch = '\n';
                break;
            case 'r':
                ch = '\r';
                break;
            case 't':
                ch = '\t';
                break;
            case 'u': {
                long cp = a->pos + 6 <= end ? hex4(t + a->pos + 2) : -1;
                size_t at = a->pos;

                if (cp < 0) {
                    a->pos++;
                    syntax(a, "invalid \\u escape");
                    return false;
                }
                a->pos += 6;
                if (cp == 0) {
                    if (!bad) {
                        bad = "escaped NUL (\\u0000)";
                        bad_at = at;
                    }
                    continue;
                }
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    if (!bad) {
                        bad = "unpaired surrogate escape (low half)";
                        bad_at = at;
                    }
                    continue;
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    long lo = -1;

                    if (a->pos + 6 <= end && t[a->pos] == '\\' && t[a->pos + 1] == 'u') {
                        lo = hex4(t + a->pos + 2);
                    }
                    if (lo < 0xdc00 || lo > 0xdfff) {
                        if (!bad) {
                            bad = "unpaired surrogate escape (high half)";
                            bad_at = at;
                        }
                        continue;
                    }
                    a->pos += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                n += put_utf8(buf + n, (unsigned long)cp);
                continue;
            }
            default:
                a->pos++;
                syntax(a, "invalid escape");
                return false;
            }
            buf[n++] = ch;
            a->pos += 2;
        }
    }
    a->pos = end + 1;
    buf[n] = '\0';
    arena_trim(a, buf, end - start + 1, n + 1);
    if (bad) {
        char what[64];

        (void)snprintf(what, sizeof(what), "%s", bad);
        return content_error(a, bad_at, what);
    }
    *out = buf;
    *outlen = n;
    return true;
}

static yajl_val new_string(struct ab_json_arena *a, char *s, size_t n)
{
    yajl_val v;

    if (n == 0) {
        return &node_empty_string;
    }
    v = arena_alloc(a, STRING_SZ, PTR_ALIGN);
    if (v) {
        v->type = yajl_t_string;
        v->u.string = s;
    }
    return v;
}

static bool intern_get(struct ab_json_arena *a, const unsigned char *s, size_t n, yajl_val **slot)
{
    uint32_t key = (uint32_t)n << 24;
    uint32_t h;
    size_t i;

    *slot = NULL;
    if (n > 3) {
        return false;
    }
    if (!a->interns) {
        if (over_budget(a, INTERN_SIZE * sizeof(*a->interns))) {
            return false;
        }
        a->interns = calloc(INTERN_SIZE, sizeof(*a->interns));
        if (!a->interns) {
            return false;
        }
    }
    for (i = 0; i < n; i++) {
        key |= (uint32_t)s[i] << (8 * i);
    }
    h = (key * 2654435761u) >> 20;
    for (i = 0; i < INTERN_SIZE; i++) {
        struct intern *e = &a->interns[(h + i) % INTERN_SIZE];

        if (e->gen != a->gen) {
            e->gen = a->gen;
            e->key = key;
            e->node = NULL;
            *slot = &e->node;
            return false;
        }
        if (e->key == key) {
            *slot = &e->node;
            return e->node != NULL;
        }
    }
    return false;
}

/* Reads the number at pos. NULL: content error (salvage) or hard error. */
static yajl_val read_number(struct ab_json_arena *a, bool *ok)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const unsigned char *t = a->text;
    size_t start = a->pos;
    size_t p = start;
    bool is_int = true;
    bool neg = false;
    uint64_t m = 0;    /* the digits, while there are at most 19 */
    size_t digits = 0; /* of the integer part and the fraction */
    size_t frac = 0;   /* of the fraction */
    long exp10 = 0;    /* the exponent as written, capped */
    bool exp_neg = false;
    yajl_val v;
    yajl_val *slot;
    char *end;

    *ok = false;
    if (p < a->len && t[p] == '-') {
        neg = true;
        p++;
    }
    if (p < a->len && t[p] == '0') {
        p++;
        digits++;
    } else if (p < a->len && t[p] >= '1' && t[p] <= '9') {
        while (p < a->len && t[p] >= '0' && t[p] <= '9') {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(t[p] - '0');
            }
            digits++;
            p++;
        }
    } else {
        a->pos = p;
        syntax(a, "invalid number");
        return NULL;
    }
    if (p < a->len && t[p] == '.') {
        is_int = false;
        p++;
        if (p >= a->len || t[p] < '0' || t[p] > '9') {
            a->pos = p;
            syntax(a, "invalid number (digit expected after '.')");
            return NULL;
        }
        while (p < a->len && t[p] >= '0' && t[p] <= '9') {
            if (digits < 19) {
                m = m * 10 + (uint64_t)(t[p] - '0');
            }
            digits++;
            frac++;
            p++;
        }
    }
    if (p < a->len && (t[p] == 'e' || t[p] == 'E')) {
        is_int = false;
        p++;
        if (p < a->len && (t[p] == '+' || t[p] == '-')) {
            exp_neg = t[p] == '-';
            p++;
        }
        if (p >= a->len || t[p] < '0' || t[p] > '9') {
            a->pos = p;
            syntax(a, "invalid number (digit expected in the exponent)");
            return NULL;
        }
        while (p < a->len && t[p] >= '0' && t[p] <= '9') {
            if (exp10 < 100000) {
                exp10 = exp10 * 10 + (t[p] - '0');
            }
            p++;
        }
    }
    a->pos = p;
    if (intern_get(a, t + start, p - start, &slot)) {
        *ok = true;
        return *slot;
    }
    if (a->failed) {
        return NULL;
    }
    v = arena_alloc(a, NUMBER_SZ + p - start + 1, PTR_ALIGN);
    if (!v) {
        return NULL;
    }
    memset(v, 0, NUMBER_SZ);
    v->type = yajl_t_number;
    v->u.number.r = (char *)v + NUMBER_SZ;
    memcpy(v->u.number.r, t + start, p - start);
    v->u.number.r[p - start] = '\0';
    if (is_int && digits <= 18) {
        /* fits int64 as it was read */
        v->u.number.i = neg ? -(long long)m : (long long)m;
        v->u.number.flags |= YAJL_NUMBER_INT_VALID;
    } else if (is_int) {
        errno = 0;
        v->u.number.i = strtoll(v->u.number.r, &end, 10);
        if (errno == 0 && *end == '\0') {
            v->u.number.flags |= YAJL_NUMBER_INT_VALID;
        }
    }
    exp10 = (exp_neg ? -exp10 : exp10) - (long)frac;
    if (digits <= 15 && exp10 >= -22 && exp10 <= 22) {
        /* Clinger's fast path: the digits and the power of ten are exact
         * doubles, so one multiplication or division rounds as strtod
         * does */
        double d = (double)m;

        d = exp10 < 0 ? d / pow10[-exp10] : d * pow10[exp10];
        v->u.number.d = neg ? -d : d;
        v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
        if (slot) {
            *slot = v;
        }
        *ok = true;
        return v;
    }
    errno = 0;
    v->u.number.d = strtod(v->u.number.r, &end);
    if (!isfinite(v->u.number.d) || (errno == ERANGE && fabs(v->u.number.d) > 1.0)) {
        *ok = content_error(a, start, "number out of range");
        return NULL;
    }
    v->u.number.flags |= YAJL_NUMBER_DOUBLE_VALID;
    if (slot) {
        *slot = v;
    }
    *ok = true;
    return v;
}

static bool stack_push(struct ab_json_arena *a, void *p)
{
    if (a->nstack == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        void **s;

        if (over_budget(a, (cap - a->cap) * sizeof(*s))) {
            return false;
        }
        s = realloc(a->stack, cap * sizeof(*s));
        if (!s) {
            (void)fail(a, AB_ERR_NOMEM, "out of memory parsing a document of %zu bytes", a->len);
            return false;
        }
        a->stack = s;
        a->cap = cap;
    }
    a->stack[a->nstack++] = p;
    return true;
}

/* The member name just read duplicates one of the open object's: salvage
 * marks the first one's value invalid. Large objects are checked on close. */
static bool check_key(struct ab_json_arena *a, const char *key, size_t at)
{
    struct frame *f = &a->frames[a->depth - 1];
    size_t i;

    if (a->nstack - f->first > 64) {
        return true;
    }
    for (i = f->first; i < a->nstack; i += 2) {
        const char *k = a->stack[i];

        /* the first byte inline: most names differ there */
        if (k && k[0] == key[0] && strcmp(k, key) == 0) {
            char what[128];
            char kb[48];

            (void)snprintf(what, sizeof(what), "member '%s' appears twice",
                           key_for_message(key, kb, sizeof(kb)));
            a->stack[i + 1] = &node_invalid;
            return content_error(a, at, what);
        }
    }
    return true;
}

static size_t hash_str(const char *s)
{
    size_t h = 14695981039346656037u;

    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211u;
    }
    return h;
}

/* Duplicate names in an object of n members (keys at stack[first], stride 2). */
static bool check_keys_large(struct ab_json_arena *a, size_t first, size_t n)
{
    size_t size = 64;
    size_t *tab;
    size_t i;
    bool ok = true;

    while (size < 2 * n) {
        size *= 2;
    }
    if (over_budget(a, size * sizeof(*tab))) {
        return false;
    }
    tab = calloc(size, sizeof(*tab));
    if (!tab) {
        (void)fail(a, AB_ERR_NOMEM, "out of memory parsing a document of %zu bytes", a->len);
        return false;
    }
    for (i = 0; ok && i < n; i++) {
        const char *key = a->stack[first + 2 * i];
        size_t h;

        if (!key) {
            continue;
        }
        for (h = hash_str(key) & (size - 1); tab[h]; h = (h + 1) & (size - 1)) {
            size_t j = tab[h] - 1;

            if (strcmp(a->stack[first + 2 * j], key) == 0) {
                char what[128];
                char kb[48];

                (void)snprintf(what, sizeof(what), "member '%s' appears twice",
                               key_for_message(key, kb, sizeof(kb)));
                a->stack[first + 2 * j + 1] = &node_invalid;
                ok = content_error(a, a->pos, what);
                break;
            }
        }
        if (!tab[h]) {
            tab[h] = i + 1;
        }
    }
    a->doc_bytes -= size * sizeof(*tab);
    free(tab);
    return ok;
}

static yajl_val close_container(struct ab_json_arena *a)
{
    struct frame *f = &a->frames[a->depth - 1];
    size_t n = a->nstack - f->first;
    yajl_val v;

    if (f->type == yajl_t_object) {
        size_t i;

        n /= 2;
        if (n == 0) {
            v = &node_empty_object;
        } else {
            if (n > 32 && !check_keys_large(a, f->first, n)) {
                return NULL;
            }
            v = arena_alloc(a, OBJECT_SZ + n * 2 * sizeof(void *), PTR_ALIGN);
            if (!v) {
                return NULL;
            }
            v->type = yajl_t_object;
            v->u.object.keys = (const char **)(void *)((char *)v + OBJECT_SZ);
            v->u.object.values = (yajl_val *)(void *)((char *)v + OBJECT_SZ + n * sizeof(void *));
            v->u.object.len = n;
            for (i = 0; i < n; i++) {
                v->u.object.keys[i] = a->stack[f->first + 2 * i];
                v->u.object.values[i] = a->stack[f->first + 2 * i + 1];
                if (!v->u.object.keys[i]) {
                    v->u.object.keys[i] = invalid_text;
                }
            }
        }
    } else if (n == 0) {
        v = &node_empty_array;
    } else {
        v = arena_alloc(a, ARRAY_SZ + n * sizeof(void *), PTR_ALIGN);
        if (!v) {
            return NULL;
        }
        v->type = yajl_t_array;
        v->u.array.values = (yajl_val *)(void *)((char *)v + ARRAY_SZ);
        v->u.array.len = n;
        memcpy(v->u.array.values, a->stack + f->first, n * sizeof(void *));
    }
    if (a->depth <= SPAN_DEPTH && a->nspans < SPAN_KEEP && n > 0) {
        struct span *sp = &a->spans[a->nspans++];

        /* pos is past the closing bracket */
        sp->node = v;
        sp->start = f->start;
        sp->end = a->pos;
        sp->ws = a->ws - f->ws;
    }
    a->nstack = f->first;
    a->depth--;
    return v;
}

static bool open_container(struct ab_json_arena *a, yajl_type t)
{
    struct frame *f;

    if (a->depth == a->cur.max_depth) {
        (void)fail(a, AB_ERR_PROTOCOL, "invalid JSON: nested deeper than %zu levels at byte %zu",
                   a->cur.max_depth, a->pos);
        return false;
    }
    if (a->depth == a->frames_cap) {
        size_t cap = a->frames_cap ? a->frames_cap * 2 : 32;
        struct frame *fr = realloc(a->frames, cap * sizeof(*fr));

        if (!fr) {
            (void)fail(a, AB_ERR_NOMEM, "out of memory parsing a document of %zu bytes", a->len);
            return false;
        }
        a->frames = fr;
        a->frames_cap = cap;
    }
    f = &a->frames[a->depth++];
    f->type = t;
    f->first = a->nstack;
    f->start = a->pos;
    f->ws = a->ws;
    a->pos++;
    return true;
}

static bool count_value(struct ab_json_arena *a)
{
    if (a->cur.max_values && ++a->values > a->cur.max_values) {
        (void)fail(a, AB_ERR_PROTOCOL, "invalid JSON: more than %zu values (at byte %zu)",
                   a->cur.max_values, a->pos);
        return false;
    }
    return true;
}

/* ---- lazy data ----------------------------------------------------------- */

/* Skips the string whose opening quote is at *pos; false (nothing said) on
 * anything the tree path would have to decode or refuse: a \u escape, a
 * control character, invalid UTF-8, the end of input; in a name, any
 * escape. *esc is set when it holds an escape (else left as it is). */
static bool lazy_string(const unsigned char *t, size_t len, size_t *pos, bool name, bool *esc)
{
    size_t i = *pos + 1;

    for (;;) {
        unsigned char c;

        i = plain_run_q(t, i, len);
        if (i >= len) {
            return false;
        }
        c = t[i];
        if (c == '"') {
            *pos = i + 1;
            return true;
        }
        if (c == '\\') {
            unsigned char e = i + 1 < len ? t[i + 1] : 0;

            if (name || !(e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' ||
                          e == 'r' || e == 't')) {
                return false;
            }
            *esc = true;
            i += 2;
        } else if (c < 0x20) {
            return false;
        } else {
            size_t k = utf8_seq(t + i, len - i);

            if (k == 0) {
                return false;
            }
            i += k;
        }
    }
}

/* Skips the number at *pos; false when it has an exponent or 300 digits or
 * more (its range is then the tree path's to check) or is no number. */
static bool lazy_number(const unsigned char *t, size_t len, size_t *pos)
{
    size_t i = *pos;

    if (i < len && t[i] == '-') {
        i++;
    }
    if (i < len && t[i] == '0') {
        i++;
    } else if (i < len && t[i] >= '1' && t[i] <= '9') {
        while (i < len && t[i] >= '0' && t[i] <= '9') {
            i++;
        }
    } else {
        return false;
    }
    if (i < len && t[i] == '.') {
        i++;
        if (i >= len || t[i] < '0' || t[i] > '9') {
            return false;
        }
        while (i < len && t[i] >= '0' && t[i] <= '9') {
            i++;
        }
    }
    if ((i < len && (t[i] == 'e' || t[i] == 'E')) || i - *pos >= 300) {
        return false;
    }
    *pos = i;
    return true;
}

static size_t lazy_ws(const unsigned char *t, size_t len, size_t *pos)
{
    size_t from = *pos;

    while (*pos < len &&
           (t[*pos] == ' ' || t[*pos] == '\n' || t[*pos] == '\r' || t[*pos] == '\t')) {
        (*pos)++;
    }
    return *pos - from;
}

/* Whether the object about to be read at pos (depth 2) is record.data. */
static bool lazy_here(const struct ab_json_arena *a)
{
    const char *key;
    const char *outer;

    if (a->frames[0].type != yajl_t_object || a->frames[1].type != yajl_t_object ||
        a->frames[1].first == 0 || a->nstack == 0) {
        return false;
    }
    key = a->stack[a->nstack - 1];
    outer = a->stack[a->frames[1].first - 1];
    return key && outer && strcmp(key, "data") == 0 && strcmp(outer, "record") == 0;
}

/* Reads the object at pos (record.data) without a tree, as the tree path
 * would accept it; its node, or NULL with pos and the value count as they
 * were when it is not plain (see ab_json_arena_set_lazy()). */
static yajl_val lazy_object(struct ab_json_arena *a)
{
    const unsigned char *t = a->text;
    size_t len = a->len;
    size_t start = a->pos;
    size_t pos = start + 1;
    size_t values = a->values;
    size_t ws = 0;
    size_t nnames = 0;
    size_t nmem = 0;
    size_t d = 0;
    size_t first[LAZY_DEPTH];
    unsigned char type[LAZY_DEPTH];
    yajl_val v;

    if (a->lazy_node || a->depth + 1 >= a->cur.max_depth || !lazy_here(a)) {
        return NULL;
    }
    type[0] = '{';
    first[0] = 0;
    ws += lazy_ws(t, len, &pos);
    if (pos >= len || t[pos] == '}') {
        return NULL; /* {} is the tree path's shared node */
    }
    for (;;) {
        unsigned char c;

        /* a member name at level d, then ':' */
        {
            size_t at = pos;
            size_t i;
            bool name_esc = false; /* (a name with an escape is not read lazily) */

            if (pos >= len || t[pos] != '"' || !lazy_string(t, len, &pos, true, &name_esc)) {
                goto bail;
            }
            if (nnames == LAZY_NAMES || nnames - first[d] == LAZY_OBJ_NAMES) {
                goto bail;
            }
            for (i = first[d]; i < nnames; i++) {
                /* the length and the first byte first: most names differ there */
                if (a->lazy_names[i].len == pos - at - 2 &&
                    (pos - at - 2 == 0 || t[a->lazy_names[i].off] == t[at + 1]) &&
                    memcmp(t + a->lazy_names[i].off, t + at + 1, pos - at - 2) == 0) {
                    goto bail; /* a duplicate: the tree path says so */
                }
            }
            a->lazy_names[nnames].off = at + 1;
            a->lazy_names[nnames].len = pos - at - 2;
            nnames++;
            ws += lazy_ws(t, len, &pos);
            if (pos >= len || t[pos] != ':') {
                goto bail;
            }
            pos++;
            ws += lazy_ws(t, len, &pos);
            if (d == 0) {
                if (nmem == LAZY_MEMBERS) {
                    goto bail;
                }
                a->lazy_members[nmem].name_off = at + 1 - start;
                a->lazy_members[nmem].name_len = a->lazy_names[nnames - 1].len;
                a->lazy_members[nmem].val_off = pos - start;
                a->lazy_members[nmem].val_len = 0; /* set where it ends */
                a->lazy_members[nmem].escaped = false;
                nmem++;
            }
        }
    value:
        if (a->cur.max_values && ++a->values > a->cur.max_values) {
            goto bail;
        }
        c = pos < len ? t[pos] : 0;
        if (c == '{' || c == '[') {
            if (d + 1 == LAZY_DEPTH || a->depth + 1 + d + 1 >= a->cur.max_depth) {
                goto bail;
            }
            d++;
            type[d] = c;
            first[d] = nnames;
            pos++;
            ws += lazy_ws(t, len, &pos);
            if (pos < len && t[pos] == (c == '{' ? '}' : ']')) {
                pos++;
                d--;
            } else if (c == '{') {
                continue; /* its first member */
            } else {
                goto value; /* its first item */
            }
        } else if (c == '"') {
            /* every value lies in the top-level member last named (nmem > 0) */
            if (!lazy_string(t, len, &pos, false, &a->lazy_members[nmem - 1].escaped)) {
                goto bail;
            }
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!lazy_number(t, len, &pos)) {
                goto bail;
            }
        } else if (len - pos >= 4 && memcmp(t + pos, "true", 4) == 0) {
            pos += 4;
        } else if (len - pos >= 5 && memcmp(t + pos, "false", 5) == 0) {
            pos += 5;
        } else if (len - pos >= 4 && memcmp(t + pos, "null", 4) == 0) {
            pos += 4;
        } else {
            goto bail;
        }
        /* a value ended at level d: the next one, or the ends of containers */
        for (;;) {
            if (d == 0) {
                struct ab_json_member *m = &a->lazy_members[nmem - 1];

                if (m->val_len == 0) {
                    m->val_len = pos - start - m->val_off;
                }
            }
            ws += lazy_ws(t, len, &pos);
            c = pos < len ? t[pos] : 0;
            if (c == ',') {
                pos++;
                ws += lazy_ws(t, len, &pos);
                break;
            }
            if (c != (type[d] == '{' ? '}' : ']')) {
                goto bail;
            }
            pos++;
            if (d == 0) {
                goto done;
            }
            if (type[d] == '{') {
                nnames = first[d];
            }
            d--;
        }
        if (type[d] == '[') {
            goto value;
        }
    }
done:
    v = arena_alloc(a, OBJECT_SZ, PTR_ALIGN);
    if (!v) {
        return NULL; /* failed: parse_document stops */
    }
    v->type = yajl_t_object;
    v->u.object.keys = NULL;
    v->u.object.values = NULL;
    v->u.object.len = 0;
    if (a->nspans < SPAN_KEEP) {
        struct span *sp = &a->spans[a->nspans++];

        sp->node = v;
        sp->start = start;
        sp->end = pos;
        sp->ws = ws;
    }
    a->ws += ws;
    a->pos = pos;
    a->lazy_node = v;
    a->lazy_n = nmem;
    return v;
bail:
    a->values = values;
    return NULL;
}

void ab_json_arena_set_lazy(struct ab_json_arena *a, bool on)
{
    if (on && (!a->lazy_members || !a->lazy_names)) {
        if (!a->lazy_members) {
            a->lazy_members = malloc(LAZY_MEMBERS * sizeof(*a->lazy_members));
        }
        if (!a->lazy_names) {
            a->lazy_names = malloc(LAZY_NAMES * sizeof(*a->lazy_names));
        }
        if (!a->lazy_members || !a->lazy_names) {
            on = false; /* out of memory: trees, as without */
        }
    }
    a->lazy = on;
}

bool ab_json_arena_lazy(const struct ab_json_arena *a, yajl_val v,
                        const struct ab_json_member **members, size_t *n)
{
    if (!v || v != a->lazy_node) {
        return false;
    }
    *members = a->lazy_members;
    *n = a->lazy_n;
    return true;
}

/* The parser proper: values and containers without recursion. */
static yajl_val parse_document(struct ab_json_arena *a)
{
    yajl_val v = NULL;

    skip_ws(a);
    if (a->pos >= a->len) {
        (void)fail(a, AB_ERR_PROTOCOL, "invalid JSON: empty input");
        return NULL;
    }
    for (;;) {
        /* a value is expected at pos (after a key or in an array) */
        unsigned char c;
        bool ok = true;

        skip_ws(a);
        if (!count_value(a)) {
            return NULL;
        }
        c = a->pos < a->len ? a->text[a->pos] : 0;
        v = NULL;
        if (c == '{' && a->lazy && a->depth == 2 && (v = lazy_object(a)) != NULL) {
            /* record.data, read without a tree */
        } else if (a->failed) {
            return NULL;
        } else if (c == '{' || c == '[') {
            if (!open_container(a, c == '{' ? yajl_t_object : yajl_t_array)) {
                return NULL;
            }
            skip_ws(a);
            if (a->pos < a->len && a->text[a->pos] == (c == '{' ? '}' : ']')) {
                a->pos++;
                v = close_container(a);
                if (!v) {
                    return NULL;
                }
            } else if (c == '{') {
                goto member; /* first member's name */
            } else {
                continue; /* first item */
            }
        } else if (c == '"') {
            char *s;
            size_t n;

            if (!read_string(a, &s, &n)) {
                return NULL;
            }
            v = s ? new_string(a, s, n) : &node_invalid;
            if (!v) {
                return NULL;
            }
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            v = read_number(a, &ok);
            if (!v) {
                if (!ok) {
                    return NULL;
                }
                v = &node_invalid;
            }
        } else if (a->len - a->pos >= 4 && memcmp(a->text + a->pos, "true", 4) == 0) {
            v = &node_true;
            a->pos += 4;
        } else if (a->len - a->pos >= 5 && memcmp(a->text + a->pos, "false", 5) == 0) {
            v = &node_false;
            a->pos += 5;
        } else if (a->len - a->pos >= 4 && memcmp(a->text + a->pos, "null", 4) == 0) {
            v = &node_null;
            a->pos += 4;
        } else {
            syntax(a, "value expected");
            return NULL;
        }
        /* v is complete: attach it, then close containers as they end */
        for (;;) {
            struct frame *f;

            if (a->depth == 0) {
                skip_ws(a);
                if (a->pos != a->len) {
                    syntax(a, "end of input expected after the value");
                    return NULL;
                }
                return v;
            }
            f = &a->frames[a->depth - 1];
            if (f->type == yajl_t_object && !a->stack[a->nstack - 1]) {
                v = &node_invalid; /* under an invalid name: never looked up */
            }
            if (!stack_push(a, v)) {
                return NULL;
            }
            skip_ws(a);
            c = a->pos < a->len ? a->text[a->pos] : 0;
            if (c == ',') {
                a->pos++;
                break;
            }
            if (c == (f->type == yajl_t_object ? '}' : ']')) {
                a->pos++;
                v = close_container(a);
                if (!v) {
                    return NULL;
                }
                continue;
            }
            syntax(a, f->type == yajl_t_object ? "',' or '}' expected" : "',' or ']' expected");
            return NULL;
        }
        if (a->frames[a->depth - 1].type == yajl_t_array) {
            continue;
        }
    member:
        /* a member name, then ':' */
        skip_ws(a);
        if (a->pos >= a->len || a->text[a->pos] != '"') {
            syntax(a, "member name expected");
            return NULL;
        }
        {
            char *key;
            size_t n;
            size_t at = a->pos;

            if (!read_string(a, &key, &n)) {
                return NULL;
            }
            if (key && !check_key(a, key, at)) {
                return NULL;
            }
            if (!stack_push(a, key)) {
                return NULL;
            }
        }
        skip_ws(a);
        if (a->pos >= a->len || a->text[a->pos] != ':') {
            syntax(a, "':' expected");
            return NULL;
        }
        a->pos++;
    }
}

yajl_val ab_json_parse_ex(struct ab_json_arena *a, const char *text, size_t len, bool salvage,
                          struct ab_error *content, struct ab_error *err)
{
    struct ab_error local;
    yajl_val v;

    ab_error_init(&local);
    a->text = (const unsigned char *)text;
    a->len = len;
    a->pos = 0;
    a->salvage = salvage && content != NULL;
    a->content = content;
    if (content) {
        ab_error_init(content);
    }
    a->err = err ? err : &local;
    a->failed = AB_OK;
    a->nstack = 0;
    a->depth = 0;
    a->values = 0;
    a->ws = 0;
    a->nspans = 0;
    a->lazy_node = NULL;
    a->doc_bytes = 0;
    a->gen++;
    if (a->gen == 0) {
        a->gen = 1;
        if (a->interns) {
            memset(a->interns, 0, INTERN_SIZE * sizeof(*a->interns));
        }
    }
    a->cur = a->limits;
    if (!a->cur.max_depth) {
        a->cur.max_depth = AB_JSON_MAX_DEPTH;
    }
    if (!a->cur.max_bytes) {
        a->cur.max_bytes = AB_JSON_BUDGET_BASE;
        if (len > (SIZE_MAX - AB_JSON_BUDGET_BASE) / AB_JSON_BUDGET_FACTOR) {
            a->cur.max_bytes = SIZE_MAX;
        } else {
            a->cur.max_bytes += AB_JSON_BUDGET_FACTOR * len;
        }
    }
    v = parse_document(a);
    if (!v && !a->failed) {
        (void)fail(a, AB_ERR_INTERNAL, "invalid JSON: parser stopped without a reason");
    }
    a->text = NULL;
    return a->failed ? NULL : v;
}

bool ab_json_arena_span(const struct ab_json_arena *a, yajl_val v, size_t *off, size_t *len,
                        bool *compact)
{
    size_t i;

    for (i = 0; v && i < a->nspans; i++) {
        if (a->spans[i].node == v) {
            *off = a->spans[i].start;
            *len = a->spans[i].end - a->spans[i].start;
            *compact = a->spans[i].ws == 0;
            return true;
        }
    }
    return false;
}

yajl_val ab_json_parse_arena(struct ab_json_arena *a, const char *text, size_t len,
                             struct ab_error *err)
{
    return ab_json_parse_ex(a, text, len, false, NULL, err);
}
