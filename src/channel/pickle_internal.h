/* sbx internal — the pickle's layout, for the message code that embeds one
 * and hands buffers in and out without copying. */
#ifndef SBX_CHANNEL_PICKLE_INTERNAL_H
#define SBX_CHANNEL_PICKLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sbx/pickle.h>

struct sbx_pickle {
    uint8_t *data; /* owned, cap bytes */
    size_t size;   /* bytes used; always a multiple of SBX_PICKLE_ALIGN */
    size_t cap;
};

/* An embedded pickle: init to empty, release its buffer. */
void sbx_pickle_init(sbx_pickle *p);
void sbx_pickle_release(sbx_pickle *p);
/* Take ownership of a malloc'ed buffer holding `size` encoded bytes. */
void sbx_pickle_adopt(sbx_pickle *p, uint8_t *buf, size_t size, size_t cap);
/* Large payload buffers come from (and return to) a small per-thread
 * cache; *cap is the usable size, >= size. */
uint8_t *sbx_pickle_buffer_alloc(size_t size, size_t *cap);
void sbx_pickle_buffer_free(uint8_t *buf, size_t cap);
/* Make room for `extra` more bytes; 0, SBX_ERROR_TOO_LARGE or -ENOMEM. */
int sbx_pickle_reserve(sbx_pickle *p, size_t extra);

#endif
