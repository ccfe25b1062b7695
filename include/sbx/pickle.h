/* sbx — Pickle: a typed, bounds-checked binary buffer (the payload of a
 * channel message). See docs/channel.md for the byte layout.
 *
 * Every field is written explicitly, little-endian, at a 4-byte aligned
 * offset, and starts with a tag word naming its type, so a reader that
 * expects an int32 where the writer put a string fails instead of
 * misinterpreting bytes. A pickle never grows past SBX_PICKLE_MAX_SIZE.
 *
 * Thread-safety: a pickle or a reader is not shared between threads without
 * the caller's own locking. */
#ifndef SBX_PICKLE_H
#define SBX_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sbx/export.h>

SBX_BEGIN_DECLS

/* Hard cap on a pickle's encoded size (and so on a message payload). */
#define SBX_PICKLE_MAX_SIZE (64u * 1024u * 1024u)
/* Every field starts at a multiple of this. */
#define SBX_PICKLE_ALIGN 4u

/* Field type codes, as they appear in the low byte of each field's tag. */
typedef enum sbx_pickle_type {
    SBX_PICKLE_BOOL = 1,
    SBX_PICKLE_INT32 = 2,
    SBX_PICKLE_UINT32 = 3,
    SBX_PICKLE_INT64 = 4,
    SBX_PICKLE_UINT64 = 5,
    SBX_PICKLE_DOUBLE = 6,
    SBX_PICKLE_STRING = 7,
    SBX_PICKLE_BYTES = 8,
    SBX_PICKLE_FD = 9,
} sbx_pickle_type;

typedef struct sbx_pickle sbx_pickle;

/* A new empty pickle, or NULL on allocation failure. The caller owns it and
 * frees it with sbx_pickle_free. */
SBX_API sbx_pickle *sbx_pickle_new(void);
/* Free a pickle; NULL is a no-op. */
SBX_API void sbx_pickle_free(sbx_pickle *p);

/* Writers: append one field. 0 on success; SBX_ERROR_TOO_LARGE when the
 * pickle would pass SBX_PICKLE_MAX_SIZE, -ENOMEM, or -EINVAL for a bad
 * argument. A failed write leaves the pickle unchanged. */
SBX_API int sbx_pickle_write_bool(sbx_pickle *p, bool v);
SBX_API int sbx_pickle_write_int32(sbx_pickle *p, int32_t v);
SBX_API int sbx_pickle_write_uint32(sbx_pickle *p, uint32_t v);
SBX_API int sbx_pickle_write_int64(sbx_pickle *p, int64_t v);
SBX_API int sbx_pickle_write_uint64(sbx_pickle *p, uint64_t v);
SBX_API int sbx_pickle_write_double(sbx_pickle *p, double v);
/* A UTF-8 string of `len` bytes with no NUL inside (-EINVAL otherwise).
 * sbx_pickle_write_cstr takes a NUL-terminated string. The bytes are
 * copied. */
SBX_API int sbx_pickle_write_string(sbx_pickle *p, const char *s, size_t len);
SBX_API int sbx_pickle_write_cstr(sbx_pickle *p, const char *s);
/* Opaque bytes (copied); data may be NULL when len is 0. */
SBX_API int sbx_pickle_write_bytes(sbx_pickle *p, const void *data, size_t len);
/* An index into the message's fd attachments. Applications normally use
 * sbx_message_write_fd, which attaches the fd and writes its index. */
SBX_API int sbx_pickle_write_fd_index(sbx_pickle *p, uint32_t index);

/* The encoded bytes (owned by the pickle, valid until its next write or
 * free) and their length. */
SBX_API const uint8_t *sbx_pickle_data(const sbx_pickle *p);
SBX_API size_t sbx_pickle_size(const sbx_pickle *p);

/* A read cursor over encoded bytes. The struct is on the caller's stack for
 * speed; its fields are private. It borrows `data`, which must outlive it.
 * Errors are sticky: after one failed read every later read fails too, so
 * a handler may read all fields and check once. */
typedef struct sbx_pickle_reader {
    const uint8_t *data_;
    size_t size_;
    size_t pos_;
    int error_;
} sbx_pickle_reader;

/* Start reading `size` bytes at `data` (any alignment). */
SBX_API void sbx_pickle_reader_init(sbx_pickle_reader *r, const void *data, size_t size);
/* Readers: 0 and the value on success; SBX_ERROR_INVALID_IPC past the end,
 * on a type mismatch, or on a malformed field (a bool that is not 0/1, a
 * string with a NUL inside, non-zero padding); the output is untouched on
 * failure. */
SBX_API int sbx_pickle_read_bool(sbx_pickle_reader *r, bool *v);
SBX_API int sbx_pickle_read_int32(sbx_pickle_reader *r, int32_t *v);
SBX_API int sbx_pickle_read_uint32(sbx_pickle_reader *r, uint32_t *v);
SBX_API int sbx_pickle_read_int64(sbx_pickle_reader *r, int64_t *v);
SBX_API int sbx_pickle_read_uint64(sbx_pickle_reader *r, uint64_t *v);
SBX_API int sbx_pickle_read_double(sbx_pickle_reader *r, double *v);
/* *s points into the reader's data (not NUL-terminated; it contains no NUL)
 * and *len is its length. */
SBX_API int sbx_pickle_read_string(sbx_pickle_reader *r, const char **s, size_t *len);
/* Copy a string into buf[cap] with a terminating NUL; -ENAMETOOLONG (and a
 * sticky error) if it does not fit. */
SBX_API int sbx_pickle_read_string_copy(sbx_pickle_reader *r, char *buf, size_t cap);
/* *data points into the reader's data; *len is its length. */
SBX_API int sbx_pickle_read_bytes(sbx_pickle_reader *r, const void **data, size_t *len);
SBX_API int sbx_pickle_read_fd_index(sbx_pickle_reader *r, uint32_t *index);
/* The type of the next field without consuming it, or 0 at the end / after
 * an error. */
SBX_API sbx_pickle_type sbx_pickle_reader_peek(const sbx_pickle_reader *r);
/* True when every byte was consumed and no read failed. */
SBX_API bool sbx_pickle_reader_done(const sbx_pickle_reader *r);
/* 0, or the sticky error of the first failed read. */
SBX_API int sbx_pickle_reader_error(const sbx_pickle_reader *r);

SBX_END_DECLS

#endif
