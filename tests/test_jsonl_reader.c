/* test_jsonl_reader.c - line splitting at every chunk boundary, caps, fd input. */
/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ab/buf.h"
#include "ab/jsonl_reader.h"

#include "ab_test.h"

/* Drains every complete line as "N:text|" into out. */
static void drain(struct ab_jsonl_reader *r, struct ab_buf *out)
{
    char *line;
    size_t len;
    uint64_t lineno;

    while (ab_jsonl_reader_next(r, &line, &len, &lineno)) {
        assert_int_equal(strlen(line), len);
        assert_int_equal(ab_buf_printf(out, NULL, "%llu:", (unsigned long long)lineno), AB_OK);
        assert_int_equal(ab_buf_add(out, line, len, NULL), AB_OK);
        assert_int_equal(ab_buf_addc(out, '|', NULL), AB_OK);
    }
}

/* Feeds input in pieces of at most chunk bytes (0: split once at split) and
 * returns the drained lines; *unterminated gets last_unterminated(). */
static char *run(const char *input, size_t n, size_t max_line, size_t chunk, size_t split,
                 bool *unterminated)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(max_line, &err);
    struct ab_buf out;
    size_t off = 0;

    assert_non_null(r);
    ab_buf_init(&out, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_buf_adds(&out, "", NULL), AB_OK);
    while (off < n) {
        size_t m;

        if (chunk > 0) {
            m = n - off < chunk ? n - off : chunk;
        } else {
            m = off < split ? split - off : n - off;
        }
        assert_int_equal(ab_jsonl_reader_feed(r, input + off, m, &err), AB_OK);
        off += m;
        drain(r, &out);
    }
    assert_int_equal(ab_jsonl_reader_bytes(r), n);
    ab_jsonl_reader_finish(r);
    drain(r, &out);
    assert_int_equal(ab_jsonl_reader_pending(r), 0);
    *unterminated = ab_jsonl_reader_last_unterminated(r);
    ab_jsonl_reader_free(r);
    return ab_buf_detach(&out, NULL);
}

struct split_case {
    const char *input;
    const char *expect;
    bool unterminated;
};

static const struct split_case split_cases[] = {
    {"{\"a\":1}\n\n  \r\n{\"b\":2}\r\nxyz\n\t\n{\"c\":3}",
     "1:{\"a\":1}|4:{\"b\":2}|5:xyz|7:{\"c\":3}|", true},
    {"a\nb\n", "1:a|2:b|", false},
    {"a\r\nb\r\n", "1:a|2:b|", false},
    {"\n\n\n{}\n", "4:{}|", false},
    {"a\rb\n", "1:a\rb|", false},
    {"\r\r\n \r\n", "", false},
    {"x\r", "1:x|", true},
    {"x\n   ", "1:x|", false},
    {"", "", false},
    {"\n", "", false},
    {"{\"s\":\"a\\nb\"}\n  {\"t\":1}  \n", "1:{\"s\":\"a\\nb\"}|2:  {\"t\":1}  |", false},
};

static void test_lines_every_chunk_boundary(void **state)
{
    size_t c;

    (void)state;
    for (c = 0; c < sizeof(split_cases) / sizeof(split_cases[0]); c++) {
        const struct split_case *sc = &split_cases[c];
        size_t n = strlen(sc->input);
        size_t k;
        bool unterm;
        char *got;

        /* every two-piece split */
        for (k = 0; k <= n; k++) {
            got = run(sc->input, n, 64, 0, k, &unterm);
            assert_string_equal(got, sc->expect);
            assert_int_equal(unterm, sc->unterminated);
            free(got);
        }
        /* chunk sizes 1..31 */
        for (k = 1; k <= 31; k++) {
            got = run(sc->input, n, 64, k, 0, &unterm);
            assert_string_equal(got, sc->expect);
            assert_int_equal(unterm, sc->unterminated);
            free(got);
        }
    }
}

static void test_max_line_accepted_at_cap(void **state)
{
    bool unterm;
    char *got;

    (void)state;
    got = run("12345678\n", 9, 8, 1, 0, &unterm);
    assert_string_equal(got, "1:12345678|");
    free(got);
    /* the "\r" of a CRLF does not count */
    got = run("12345678\r\n", 10, 8, 1, 0, &unterm);
    assert_string_equal(got, "1:12345678|");
    free(got);
    got = run("12345678\r", 9, 8, 3, 0, &unterm);
    assert_string_equal(got, "1:12345678|");
    assert_true(unterm);
    free(got);
    got = run("12345678", 8, 8, 0, 4, &unterm);
    assert_string_equal(got, "1:12345678|");
    assert_true(unterm);
    free(got);
}

/* Feeds byte by byte; returns the index of the byte whose feed failed. */
static size_t feed_until_error(struct ab_jsonl_reader *r, const char *input, struct ab_error *err,
                               struct ab_buf *lines)
{
    size_t i;

    for (i = 0; input[i]; i++) {
        if (ab_jsonl_reader_feed(r, input + i, 1, err) != AB_OK) {
            return i;
        }
        drain(r, lines);
    }
    return i;
}

static void test_oversize_line_fails_early(void **state)
{
    const char *input = "12345678\n\n123456789abcdef\nnever\n";
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(8, &err);
    struct ab_buf lines;
    size_t at;

    (void)state;
    assert_non_null(r);
    ab_buf_init(&lines, AB_BUF_UNBOUNDED);
    at = feed_until_error(r, input, &err, &lines);
    /* the 9th content byte of line 3 (index 10 + 8), before the line ends */
    assert_int_equal(at, 18);
    assert_int_equal(err.code, AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 3: longer than the limit of 8 bytes");
    assert_string_equal(lines.data, "1:12345678|");
    /* sticky */
    ab_error_init(&err);
    assert_int_equal(ab_jsonl_reader_feed(r, "x\n", 2, &err), AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 3: longer than the limit of 8 bytes");
    /* the bad line is not handed out, even after finish */
    ab_jsonl_reader_finish(r);
    drain(r, &lines);
    assert_string_equal(lines.data, "1:12345678|");
    assert_false(ab_jsonl_reader_last_unterminated(r));
    ab_buf_release(&lines);
    ab_jsonl_reader_free(r);
}

/* space()/commit(): bytes written in place are lines as if fed; a commit of
 * fewer bytes than the room keeps the rest out; after lines were taken, an
 * oversize line is still named by its number in the whole input. */
static void test_space_commit_in_place(void **state)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(8, &err);
    struct ab_buf lines;
    char *to;
    size_t room;

    (void)state;
    assert_non_null(r);
    ab_buf_init(&lines, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_jsonl_reader_space(r, 100, &to, &room, &err), AB_OK);
    assert_true(room >= 13 && room <= 100);
    memcpy(to, "a\nbb\nccc\nXXXX", 13); /* 13 bytes written, 9 of them taken */
    assert_int_equal(ab_jsonl_reader_commit(r, 9, &err), AB_OK); /* "a\nbb\nccc\n" */
    drain(r, &lines);
    assert_string_equal(lines.data, "1:a|2:bb|3:ccc|");
    assert_int_equal(ab_jsonl_reader_offset(r), 9);
    assert_int_equal(ab_jsonl_reader_space(r, 3, &to, &room, &err), AB_OK);
    assert_int_equal(room, 3);
    memcpy(to, "d\ne", 3);
    assert_int_equal(ab_jsonl_reader_commit(r, 3, &err), AB_OK);
    /* short lines and then a long one in one span: line 8 */
    assert_int_equal(ab_jsonl_reader_feed(r, "\nf\ng\n123456789\n", 15, &err), AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 8: longer than the limit of 8 bytes");
    ab_error_init(&err);
    assert_int_equal(ab_jsonl_reader_space(r, 10, &to, &room, &err), AB_ERR_PROTOCOL);
    assert_null(to);
    ab_buf_reset(&lines);
    drain(r, &lines);
    assert_string_equal(lines.data, "4:d|5:e|6:f|7:g|");
    ab_buf_release(&lines);
    ab_jsonl_reader_free(r);
}

static void test_oversize_line_complete_in_one_feed(void **state)
{
    const char *input = "ok\n0123456789\nlater\n";
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(8, &err);
    struct ab_buf lines;

    (void)state;
    assert_non_null(r);
    ab_buf_init(&lines, AB_BUF_UNBOUNDED);
    assert_int_equal(ab_jsonl_reader_feed(r, input, strlen(input), &err), AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 2: longer than the limit of 8 bytes");
    /* lines before it are still available */
    drain(r, &lines);
    assert_string_equal(lines.data, "1:ok|");
    ab_buf_release(&lines);
    ab_jsonl_reader_free(r);
}

static void test_oversize_crlf_line(void **state)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(8, &err);

    (void)state;
    assert_non_null(r);
    /* 9 bytes then "\r": 9 content bytes */
    assert_int_equal(ab_jsonl_reader_feed(r, "123456789\r\n", 11, &err), AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 1: longer than the limit of 8 bytes");
    ab_jsonl_reader_free(r);
}

static void test_huge_feed_stays_bounded(void **state)
{
    size_t n = (size_t)4 * 1024 * 1024;
    char *big = malloc(n);
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(1000, &err);

    (void)state;
    assert_non_null(big);
    assert_non_null(r);
    memset(big, 'x', n);
    big[0] = '\n';
    assert_int_equal(ab_jsonl_reader_feed(r, big, n, &err), AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 2: longer than the limit of 1000 bytes");
    /* stopped within the first chunk, not after copying 4 MiB */
    assert_true(ab_jsonl_reader_pending(r) <= 1000 + (size_t)64 * 1024);
    assert_true(ab_jsonl_reader_bytes(r) <= (size_t)64 * 1024);
    ab_jsonl_reader_free(r);
    free(big);
}

static void test_unterminated_last_line(void **state)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(0, &err);
    char *line;
    size_t len;
    uint64_t lineno;

    (void)state;
    assert_non_null(r);
    assert_int_equal(ab_jsonl_reader_feed(r, "{\"a\":1}\n{\"b\"", 12, &err), AB_OK);
    assert_true(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_string_equal(line, "{\"a\":1}");
    assert_int_equal(lineno, 1);
    assert_false(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_int_equal(ab_jsonl_reader_pending(r), 4);
    assert_false(ab_jsonl_reader_last_unterminated(r));
    assert_int_equal(ab_jsonl_reader_feed(r, ":2}", 3, &err), AB_OK);
    assert_false(ab_jsonl_reader_next(r, &line, &len, &lineno));
    ab_jsonl_reader_finish(r);
    assert_true(ab_jsonl_reader_last_unterminated(r));
    assert_true(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_string_equal(line, "{\"b\":2}");
    assert_int_equal(len, 7);
    assert_int_equal(lineno, 2);
    assert_false(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_int_equal(ab_jsonl_reader_pending(r), 0);
    assert_int_equal(ab_jsonl_reader_bytes(r), 15);
    ab_jsonl_reader_free(r);
}

static void test_line_may_be_modified(void **state)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(0, &err);
    char *line;
    size_t len;
    uint64_t lineno;

    (void)state;
    assert_non_null(r);
    assert_int_equal(ab_jsonl_reader_feed(r, "abc\ndef\n", 8, &err), AB_OK);
    assert_true(ab_jsonl_reader_next(r, &line, &len, &lineno));
    line[0] = 'X';
    line[len] = 'Y'; /* the NUL is ours too */
    assert_true(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_string_equal(line, "def");
    ab_jsonl_reader_free(r);
}

/* Many small lines: lazy compaction keeps this linear. */
static void test_many_small_lines(void **state)
{
    const size_t nlines = 300000;
    const char *rec = "{\"type\":\"RECORD\"}\n";
    size_t rlen = strlen(rec);
    size_t total = nlines * rlen;
    char *input = malloc(total);
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(100, &err);
    size_t i;
    size_t off = 0;
    size_t count = 0;
    uint64_t last = 0;
    char *line;
    size_t len;
    uint64_t lineno;

    (void)state;
    assert_non_null(input);
    assert_non_null(r);
    for (i = 0; i < nlines; i++) {
        memcpy(input + i * rlen, rec, rlen); /* NOLINT(bugprone-not-null-terminated-result) */
    }
    while (off < total) {
        size_t m = total - off < 7919 ? total - off : 7919;

        assert_int_equal(ab_jsonl_reader_feed(r, input + off, m, &err), AB_OK);
        off += m;
        while (ab_jsonl_reader_next(r, &line, &len, &lineno)) {
            assert_int_equal(len, rlen - 1);
            assert_int_equal(lineno, last + 1);
            last = lineno;
            count++;
        }
        assert_true(ab_jsonl_reader_pending(r) < rlen);
    }
    assert_int_equal(count, nlines);
    ab_jsonl_reader_free(r);
    free(input);
}

static void test_fill_from_pipe(void **state)
{
    const size_t nlines = 20000;
    int fds[2];
    pid_t pid;
    struct ab_error err = {0};
    struct ab_jsonl_reader *r;
    bool eof = false;
    size_t count = 0;
    char *line;
    size_t len;
    uint64_t lineno;
    int status = 0;
    char expect[64];

    (void)state;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *w;
        size_t i;

        (void)close(fds[0]);
        w = fdopen(fds[1], "w");
        if (!w) {
            _exit(2);
        }
        for (i = 1; i <= nlines; i++) {
            if (fprintf(w, "{\"n\":%zu,\"pad\":\"%s\"}%s", i, i % 7 ? "x" : "yyyyyyyyyyyy",
                        i % 3 ? "\n" : "\r\n") < 0) {
                _exit(3);
            }
            if (i % 1000 == 0) {
                (void)fprintf(w, "\n");
            }
        }
        /* no final newline on purpose */
        (void)fprintf(w, "{\"last\":true}");
        _exit(fclose(w) == 0 ? 0 : 4);
    }
    (void)close(fds[1]);
    r = ab_jsonl_reader_new(0, &err);
    assert_non_null(r);
    while (!eof) {
        assert_int_equal(ab_jsonl_reader_fill(r, fds[0], &eof, &err), AB_OK);
        while (ab_jsonl_reader_next(r, &line, &len, &lineno)) {
            count++;
            (void)snprintf(expect, sizeof(expect), "{\"n\":%zu,\"pad\":\"%s\"}", count,
                           count % 7 ? "x" : "yyyyyyyyyyyy");
            assert_string_equal(line, expect);
            /* one blank line after every 1000th */
            assert_int_equal(lineno, count + (count - 1) / 1000);
        }
    }
    ab_jsonl_reader_finish(r);
    assert_true(ab_jsonl_reader_next(r, &line, &len, &lineno));
    assert_string_equal(line, "{\"last\":true}");
    assert_true(ab_jsonl_reader_last_unterminated(r));
    assert_int_equal(count, nlines);
    (void)close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    ab_jsonl_reader_free(r);
}

static void test_fill_nonblocking_empty_pipe(void **state)
{
    int fds[2];
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(0, &err);
    bool eof = true;
    int fl;

    (void)state;
    assert_non_null(r);
    assert_int_equal(pipe(fds), 0);
    fl = fcntl(fds[0], F_GETFL);
    assert_int_equal(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK), 0);
    assert_int_equal(ab_jsonl_reader_fill(r, fds[0], &eof, &err), AB_OK);
    assert_false(eof);
    assert_int_equal(ab_jsonl_reader_bytes(r), 0);
    assert_int_equal(write(fds[1], "a\n", 2), 2);
    (void)close(fds[1]);
    assert_int_equal(ab_jsonl_reader_fill(r, fds[0], &eof, &err), AB_OK);
    assert_false(eof);
    assert_int_equal(ab_jsonl_reader_bytes(r), 2);
    assert_int_equal(ab_jsonl_reader_fill(r, fds[0], &eof, &err), AB_OK);
    assert_true(eof);
    (void)close(fds[0]);
    ab_jsonl_reader_free(r);
}

static void test_fill_bad_fd(void **state)
{
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(0, &err);
    bool eof = true;

    (void)state;
    assert_non_null(r);
    assert_int_equal(ab_jsonl_reader_fill(r, -1, &eof, &err), AB_ERR_IO);
    assert_false(eof);
    assert_non_null(strstr(err.message, "cannot read the input"));
    ab_jsonl_reader_free(r);
}

static void test_fill_oversize_from_pipe(void **state)
{
    int fds[2];
    struct ab_error err = {0};
    struct ab_jsonl_reader *r = ab_jsonl_reader_new(10, &err);
    bool eof = false;
    enum ab_status rc = AB_OK;

    (void)state;
    assert_non_null(r);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "short\n0123456789ab", 18), 18);
    (void)close(fds[1]);
    while (!eof && rc == AB_OK) {
        rc = ab_jsonl_reader_fill(r, fds[0], &eof, &err);
    }
    assert_int_equal(rc, AB_ERR_PROTOCOL);
    assert_string_equal(err.message, "line 2: longer than the limit of 10 bytes");
    /* sticky for fill too */
    assert_int_equal(ab_jsonl_reader_fill(r, fds[0], &eof, &err), AB_ERR_PROTOCOL);
    (void)close(fds[0]);
    ab_jsonl_reader_free(r);
}

static void test_free_null(void **state)
{
    (void)state;
    ab_jsonl_reader_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_every_chunk_boundary),
        cmocka_unit_test(test_max_line_accepted_at_cap),
        cmocka_unit_test(test_oversize_line_fails_early),
        cmocka_unit_test(test_oversize_line_complete_in_one_feed),
        cmocka_unit_test(test_space_commit_in_place),
        cmocka_unit_test(test_oversize_crlf_line),
        cmocka_unit_test(test_huge_feed_stays_bounded),
        cmocka_unit_test(test_unterminated_last_line),
        cmocka_unit_test(test_line_may_be_modified),
        cmocka_unit_test(test_many_small_lines),
        cmocka_unit_test(test_fill_from_pipe),
        cmocka_unit_test(test_fill_nonblocking_empty_pipe),
        cmocka_unit_test(test_fill_bad_fd),
        cmocka_unit_test(test_fill_oversize_from_pipe),
        cmocka_unit_test(test_free_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
