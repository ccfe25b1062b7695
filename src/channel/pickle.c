/* sbx — Pickle (see include/sbx/pickle.h and docs/channel.md).
 *
 * Layout of one field, starting at a 4-byte aligned offset:
 *   u32 tag: low byte = sbx_pickle_type, upper 24 bits zero
 *   BOOL/INT32/UINT32/FD: u32 value
 *   INT64/UINT64/DOUBLE:  u64 value (double as its IEEE-754 bits)
 *   STRING/BYTES:         u32 length, the bytes, zero padding to 4
 * All integers little-endian. The reader trusts nothing: every length is
 * checked against the bytes left before it is used. */
#include "channel/pickle_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sbx/error.h>

#include "channel/wire.h"

static size_t pad4(size_t n)
{
    return (n + (SBX_PICKLE_ALIGN - 1)) & ~(size_t)(SBX_PICKLE_ALIGN - 1);
}

/* A tiny per-thread cache of large buffers. Big payloads are allocated and
 * freed at a high rate (one per message); without the cache glibc trims
 * and regrows its heap around each one, and page faults cost more than the
 * copy into the socket. Two slots: a thread that both sends and receives
 * large messages keeps one of each. Buffers are freed at thread exit. */
#define CACHE_MIN ((size_t)32 * 1024)
#define CACHE_MAX ((size_t)1024 * 1024)
#define CACHE_SLOTS 8

typedef struct buf_slot {
    uint8_t *buf;
    size_t cap;
} buf_slot;

static _Thread_local buf_slot tls_cache[CACHE_SLOTS];
static _Thread_local bool tls_registered;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_thread_exit(void *unused)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(tls_cache[i].buf);
        tls_cache[i].buf = NULL;
    }
}

static void cache_init(void)
{
    (void)pthread_key_create(&cache_key, cache_thread_exit);
}

/* Keep buf for reuse; false when the cache does not want it. */
static bool cache_put(uint8_t *buf, size_t cap)
{
    if (!buf || cap < CACHE_MIN || cap > CACHE_MAX)
        return false;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (!tls_cache[i].buf) {
            if (!tls_registered) {
                (void)pthread_once(&cache_once, cache_init);
                (void)pthread_setspecific(cache_key, &tls_cache); /* any non-NULL value */
                tls_registered = true;
            }
            tls_cache[i].buf = buf;
            tls_cache[i].cap = cap;
            return true;
        }
    }
    return false;
}

/* A cached buffer of at least `need` bytes (and not absurdly larger). */
static uint8_t *cache_get(size_t need, size_t *cap)
{
    if (need < CACHE_MIN / 2)
        return NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (tls_cache[i].buf && tls_cache[i].cap >= need && tls_cache[i].cap / 4 <= need) {
            uint8_t *b = tls_cache[i].buf;
            *cap = tls_cache[i].cap;
            tls_cache[i].buf = NULL;
            return b;
        }
    }
    return NULL;
}

uint8_t *sbx_pickle_buffer_alloc(size_t size, size_t *cap)
{
    uint8_t *b = cache_get(size, cap);
    if (b)
        return b;
    b = malloc(size ? size : 1);
    *cap = size;
    return b;
}

void sbx_pickle_buffer_free(uint8_t *buf, size_t cap)
{
    if (!cache_put(buf, cap))
        free(buf);
}

void sbx_pickle_init(sbx_pickle *p)
{
    p->data = NULL;
    p->size = 0;
    p->cap = 0;
}

void sbx_pickle_release(sbx_pickle *p)
{
    sbx_pickle_buffer_free(p->data, p->cap);
    sbx_pickle_init(p);
}

void sbx_pickle_adopt(sbx_pickle *p, uint8_t *buf, size_t size, size_t cap)
{
    sbx_pickle_buffer_free(p->data, p->cap);
    p->data = buf;
    p->size = size;
    p->cap = cap;
}

sbx_pickle *sbx_pickle_new(void)
{
    sbx_pickle *p = malloc(sizeof *p);
    if (p)
        sbx_pickle_init(p);
    return p;
}

void sbx_pickle_free(sbx_pickle *p)
{
    if (!p)
        return;
    sbx_pickle_release(p);
    free(p);
}

int sbx_pickle_reserve(sbx_pickle *p, size_t extra)
{
    if (extra > SBX_PICKLE_MAX_SIZE || p->size > SBX_PICKLE_MAX_SIZE - extra)
        return SBX_ERROR_TOO_LARGE;
    size_t need = p->size + extra;
    if (need <= p->cap)
        return 0;
    /* Double for runs of small fields; a large field gets exactly what it
     * needs (no 2x overshoot that would push big payloads into mmap). */
    size_t ncap = p->cap ? p->cap * 2 : 64;
    if (ncap < need)
        ncap = (need + 63) & ~(size_t)63;
    if (ncap > SBX_PICKLE_MAX_SIZE)
        ncap = SBX_PICKLE_MAX_SIZE;
    size_t ccap;
    uint8_t *c = cache_get(ncap, &ccap);
    if (c) {
        if (p->size)
            memcpy(c, p->data, p->size);
        free(p->data);
        p->data = c;
        p->cap = ccap;
        return 0;
    }
    uint8_t *n = realloc(p->data, ncap);
    if (!n)
        return -ENOMEM;
    p->data = n;
    p->cap = ncap;
    return 0;
}

static int write_word(sbx_pickle *p, sbx_pickle_type t, uint32_t v)
{
    int r = sbx_pickle_reserve(p, 8);
    if (r < 0)
        return r;
    sbx_wire_put32(p->data + p->size, (uint32_t)t);
    sbx_wire_put32(p->data + p->size + 4, v);
    p->size += 8;
    return 0;
}

static int write_quad(sbx_pickle *p, sbx_pickle_type t, uint64_t v)
{
    int r = sbx_pickle_reserve(p, 12);
    if (r < 0)
        return r;
    sbx_wire_put32(p->data + p->size, (uint32_t)t);
    sbx_wire_put64(p->data + p->size + 4, v);
    p->size += 12;
    return 0;
}

static int write_blob(sbx_pickle *p, sbx_pickle_type t, const void *data, size_t len)
{
    if (len > SBX_PICKLE_MAX_SIZE)
        return SBX_ERROR_TOO_LARGE;
    if (len && !data)
        return -EINVAL;
    size_t total = 8 + pad4(len);
    int r = sbx_pickle_reserve(p, total);
    if (r < 0)
        return r;
    uint8_t *o = p->data + p->size;
    sbx_wire_put32(o, (uint32_t)t);
    sbx_wire_put32(o + 4, (uint32_t)len);
    if (len)
        memcpy(o + 8, data, len);
    memset(o + 8 + len, 0, pad4(len) - len);
    p->size += total;
    return 0;
}

int sbx_pickle_write_bool(sbx_pickle *p, bool v)
{
    return write_word(p, SBX_PICKLE_BOOL, v ? 1u : 0u);
}

int sbx_pickle_write_int32(sbx_pickle *p, int32_t v)
{
    return write_word(p, SBX_PICKLE_INT32, (uint32_t)v);
}

int sbx_pickle_write_uint32(sbx_pickle *p, uint32_t v)
{
    return write_word(p, SBX_PICKLE_UINT32, v);
}

int sbx_pickle_write_int64(sbx_pickle *p, int64_t v)
{
    return write_quad(p, SBX_PICKLE_INT64, (uint64_t)v);
}

int sbx_pickle_write_uint64(sbx_pickle *p, uint64_t v)
{
    return write_quad(p, SBX_PICKLE_UINT64, v);
}

int sbx_pickle_write_double(sbx_pickle *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits); /* the value's bits, not a struct */
    return write_quad(p, SBX_PICKLE_DOUBLE, bits);
}

int sbx_pickle_write_string(sbx_pickle *p, const char *s, size_t len)
{
    if (len && (!s || memchr(s, '\0', len)))
        return -EINVAL;
    return write_blob(p, SBX_PICKLE_STRING, s, len);
}

int sbx_pickle_write_cstr(sbx_pickle *p, const char *s)
{
    if (!s)
        return -EINVAL;
    return write_blob(p, SBX_PICKLE_STRING, s, strlen(s));
}

int sbx_pickle_write_bytes(sbx_pickle *p, const void *data, size_t len)
{
    return write_blob(p, SBX_PICKLE_BYTES, data, len);
}

int sbx_pickle_write_fd_index(sbx_pickle *p, uint32_t index)
{
    return write_word(p, SBX_PICKLE_FD, index);
}

const uint8_t *sbx_pickle_data(const sbx_pickle *p)
{
    return p->data;
}

size_t sbx_pickle_size(const sbx_pickle *p)
{
    return p->size;
}

/* ---- reading ---- */

void sbx_pickle_reader_init(sbx_pickle_reader *r, const void *data, size_t size)
{
    r->data_ = data;
    r->size_ = data ? size : 0;
    r->pos_ = 0;
    /* A buffer that is not a whole number of fields is still readable up to
     * the point where it goes wrong; the reader fails there. */
    r->error_ = 0;
}

static int fail(sbx_pickle_reader *r)
{
    if (!r->error_)
        r->error_ = SBX_ERROR_INVALID_IPC;
    return r->error_;
}

static size_t left(const sbx_pickle_reader *r)
{
    return r->size_ - r->pos_;
}

/* Check the tag of the next field and that `body` more bytes follow it.
 * Returns a pointer to the body, or NULL (error set). */
static const uint8_t *take(sbx_pickle_reader *r, sbx_pickle_type t, size_t body)
{
    if (r->error_ || left(r) < 4 || body > left(r) - 4)
        return fail(r), NULL;
    if (sbx_wire_get32(r->data_ + r->pos_) != (uint32_t)t)
        return fail(r), NULL;
    const uint8_t *b = r->data_ + r->pos_ + 4;
    r->pos_ += 4 + body;
    return b;
}

static int read_word(sbx_pickle_reader *r, sbx_pickle_type t, uint32_t *v)
{
    const uint8_t *b = take(r, t, 4);
    if (!b)
        return r->error_;
    *v = sbx_wire_get32(b);
    return 0;
}

static int read_quad(sbx_pickle_reader *r, sbx_pickle_type t, uint64_t *v)
{
    const uint8_t *b = take(r, t, 8);
    if (!b)
        return r->error_;
    *v = sbx_wire_get64(b);
    return 0;
}

static int read_blob(sbx_pickle_reader *r, sbx_pickle_type t, const uint8_t **data, size_t *len)
{
    size_t save = r->pos_;
    const uint8_t *b = take(r, t, 4);
    if (!b)
        return r->error_;
    size_t n = sbx_wire_get32(b);
    /* n came from the peer: compare against what is left, without letting
     * pad4(n) overflow. */
    if (n > left(r) || pad4(n) > left(r)) {
        r->pos_ = save;
        return fail(r);
    }
    const uint8_t *d = r->data_ + r->pos_;
    for (size_t i = n; i < pad4(n); i++) {
        if (d[i] != 0) {
            r->pos_ = save;
            return fail(r);
        }
    }
    r->pos_ += pad4(n);
    *data = d;
    *len = n;
    return 0;
}

int sbx_pickle_read_bool(sbx_pickle_reader *r, bool *v)
{
    size_t save = r->pos_;
    uint32_t w = 0;
    int e = read_word(r, SBX_PICKLE_BOOL, &w);
    if (e < 0)
        return e;
    if (w > 1) {
        r->pos_ = save;
        return fail(r);
    }
    *v = w == 1;
    return 0;
}

int sbx_pickle_read_int32(sbx_pickle_reader *r, int32_t *v)
{
    uint32_t w = 0;
    int e = read_word(r, SBX_PICKLE_INT32, &w);
    if (e == 0)
        *v = (int32_t)w;
    return e;
}

int sbx_pickle_read_uint32(sbx_pickle_reader *r, uint32_t *v)
{
    return read_word(r, SBX_PICKLE_UINT32, v);
}

int sbx_pickle_read_int64(sbx_pickle_reader *r, int64_t *v)
{
    uint64_t w = 0;
    int e = read_quad(r, SBX_PICKLE_INT64, &w);
    if (e == 0)
        *v = (int64_t)w;
    return e;
}

int sbx_pickle_read_uint64(sbx_pickle_reader *r, uint64_t *v)
{
    return read_quad(r, SBX_PICKLE_UINT64, v);
}

int sbx_pickle_read_double(sbx_pickle_reader *r, double *v)
{
    uint64_t w = 0;
    int e = read_quad(r, SBX_PICKLE_DOUBLE, &w);
    if (e == 0)
        memcpy(v, &w, sizeof *v);
    return e;
}

int sbx_pickle_read_string(sbx_pickle_reader *r, const char **s, size_t *len)
{
    size_t save = r->pos_;
    const uint8_t *d;
    size_t n;
    int e = read_blob(r, SBX_PICKLE_STRING, &d, &n);
    if (e < 0)
        return e;
    if (n && memchr(d, '\0', n)) {
        r->pos_ = save;
        return fail(r);
    }
    *s = (const char *)d;
    *len = n;
    return 0;
}

int sbx_pickle_read_string_copy(sbx_pickle_reader *r, char *buf, size_t cap)
{
    size_t save = r->pos_;
    const char *s;
    size_t n;
    int e = sbx_pickle_read_string(r, &s, &n);
    if (e < 0)
        return e;
    if (!buf || n >= cap) {
        r->pos_ = save;
        r->error_ = -ENAMETOOLONG;
        return r->error_;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 0;
}

int sbx_pickle_read_bytes(sbx_pickle_reader *r, const void **data, size_t *len)
{
    const uint8_t *d;
    size_t n;
    int e = read_blob(r, SBX_PICKLE_BYTES, &d, &n);
    if (e == 0) {
        *data = d;
        *len = n;
    }
    return e;
}

int sbx_pickle_read_fd_index(sbx_pickle_reader *r, uint32_t *index)
{
    return read_word(r, SBX_PICKLE_FD, index);
}

sbx_pickle_type sbx_pickle_reader_peek(const sbx_pickle_reader *r)
{
    if (r->error_ || left(r) < 4)
        return 0;
    uint32_t t = sbx_wire_get32(r->data_ + r->pos_);
    if (t < SBX_PICKLE_BOOL || t > SBX_PICKLE_FD)
        return 0;
    return (sbx_pickle_type)t;
}

bool sbx_pickle_reader_done(const sbx_pickle_reader *r)
{
    return !r->error_ && r->pos_ == r->size_;
}

int sbx_pickle_reader_error(const sbx_pickle_reader *r)
{
    return r->error_;
}
