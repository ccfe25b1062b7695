/* sbx internal — explicit little-endian encoding. Every wire field in the
 * channel module is written and read through these byte-by-byte helpers
 * (never a struct memcpy, never an unaligned load), so the format is the
 * same on every host and any input alignment is fine. */
#ifndef SBX_CHANNEL_WIRE_H
#define SBX_CHANNEL_WIRE_H

#include <stdint.h>

static inline void sbx_wire_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t sbx_wire_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void sbx_wire_put64(uint8_t *p, uint64_t v)
{
    sbx_wire_put32(p, (uint32_t)v);
    sbx_wire_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t sbx_wire_get64(const uint8_t *p)
{
    return (uint64_t)sbx_wire_get32(p) | (uint64_t)sbx_wire_get32(p + 4) << 32;
}

#endif
