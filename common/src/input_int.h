/* input_int.h - input files of write --input and load: plain or gzip, and the
 * load checkpoint file. Internal to the driver (driver.c, write.c). */
/* SPDX-License-Identifier: MIT */
#ifndef AB_INPUT_H
#define AB_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "ab/error.h"
#include "ab/jsonl_reader.h"

/*
 * One input, read into a line reader. Plain bytes are passed through; a
 * stream starting with the gzip magic (1f 8b) is inflated with zlib on the
 * fly (concatenated members too). A path of "-" is stdin. Offsets are of
 * the bytes after decompression; raw_read counts the bytes read from the
 * descriptor (for progress against the file size).
 *
 * Corrupt or truncated gzip data is AB_ERR_PROTOCOL naming the path and the
 * byte offset in the compressed file where inflation stopped.
 */
struct ab_input {
    const char *path; /* borrowed; "-" for stdin */
    int fd;
    bool is_stdin;
    bool sniffed; /* the first bytes were looked at */
    bool gz;
    bool z_live;  /* z was initialised */
    bool z_end;   /* the last gzip member ended */
    bool corrupt; /* the compressed data is corrupt or truncated */
    z_stream z;
    unsigned char *raw; /* compressed bytes read and not yet inflated */
    unsigned char *out;
    uint64_t raw_read; /* bytes read from fd */
    uint64_t skip;     /* decompressed bytes still to drop (resuming a gzip file) */
    uint64_t size;     /* of a regular file, 0 otherwise */
};

/* Opens path ("-": stdin, not closed later). start_offset > 0 resumes a
 * file there: a plain file is seeked, a gzip one inflated and the bytes
 * before it dropped. AB_ERR_CONFIG naming the path when it cannot be opened. */
enum ab_status ab_input_open(struct ab_input *in, const char *path, uint64_t start_offset,
                             struct ab_error *err);
/* Reads once and feeds the reader; *eof at the end of the input. */
enum ab_status ab_input_fill(struct ab_input *in, struct ab_jsonl_reader *r, bool *eof,
                             struct ab_error *err);
void ab_input_close(struct ab_input *in);

/* The identity of a regular file: size, modification time and a CRC-32 of
 * its first 64 KiB. */
struct ab_file_id {
    uint64_t size;
    int64_t mtime_ns;
    uint32_t head_crc32;
};
enum ab_status ab_file_identify(const char *path, struct ab_file_id *id, struct ab_error *err);

/* Progress of one file of a load, as recorded in the checkpoint file. */
struct ab_load_file {
    const char *path; /* borrowed from argv */
    struct ab_file_id id;
    uint64_t offset; /* decompressed bytes committed (after the last committed line) */
    uint64_t line;   /* the last committed line */
    bool complete;   /* every line of the file is committed */
};

/*
 * The checkpoint file of a load: which input files it covers (path and
 * identity) and how far each is committed. Written atomically (a temporary
 * file next to it, fsync, rename, fsync of the directory). Reading it:
 * absent is a fresh start; anything else that does not parse, is not a load
 * checkpoint, was written for another connector or target, or names other
 * files or files whose identity changed is AB_ERR_CONFIG saying what.
 * target: "object customers" or "stream ns.name".
 */
enum ab_status ab_load_ckpt_read(const char *path, const char *connector, const char *target,
                                 struct ab_load_file *files, size_t nfiles, bool *found,
                                 struct ab_error *err);
enum ab_status ab_load_ckpt_write(const char *path, const char *connector, const char *target,
                                  const struct ab_load_file *files, size_t nfiles,
                                  struct ab_error *err);

#endif
