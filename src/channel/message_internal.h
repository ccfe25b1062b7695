/* sbx internal — message layout, header codec and wire parsing. */
#ifndef SBX_CHANNEL_MESSAGE_INTERNAL_H
#define SBX_CHANNEL_MESSAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sbx/channel.h>

#include "channel/pickle_internal.h"

/* Header flag bits (docs/channel.md). */
#define SBX_MSG_FLAG_PRIORITY_MASK 0x3u
#define SBX_MSG_FLAG_SYNC 0x4u
#define SBX_MSG_FLAG_REPLY 0x8u
#define SBX_MSG_FLAG_REPLY_ERROR 0x10u
#define SBX_MSG_FLAGS_KNOWN 0x1Fu

typedef struct sbx_message_header {
    uint32_t payload_size;
    uint32_t routing_id;
    uint32_t type;
    uint32_t flags;
    uint32_t num_fds;
    uint32_t sync_id;
} sbx_message_header;

struct sbx_message {
    sbx_message_header hdr; /* payload_size and num_fds filled at encode */
    sbx_pickle payload;
    int fds[SBX_MESSAGE_MAX_FDS];
    unsigned nfds;
    sbx_message *next; /* queue link, owned by whichever queue holds it */
    uint8_t wire_hdr[SBX_MESSAGE_HEADER_SIZE];
};

void sbx_message_encode_header(const sbx_message_header *h, uint8_t out[SBX_MESSAGE_HEADER_SIZE]);
/* Decode and validate a header from the wire: flags known, priority valid,
 * sync/reply consistent, payload a multiple of 4 and <= max_payload, fd
 * count <= SBX_MESSAGE_MAX_FDS. 0, SBX_ERROR_TOO_LARGE or
 * SBX_ERROR_PROTOCOL. */
int sbx_message_decode_header(const uint8_t in[SBX_MESSAGE_HEADER_SIZE], uint32_t max_payload,
                              sbx_message_header *h);
/* A received message: adopts `payload` (malloc'ed, may be NULL when size
 * is 0) and the fds (taken: closed on failure). NULL on -ENOMEM. */
sbx_message *sbx_message_from_wire(const sbx_message_header *h, uint8_t *payload, size_t cap, int *fds,
                                   unsigned nfds);
/* Prepare msg for sending: fill payload size / fd count and wire_hdr. */
void sbx_message_seal(sbx_message *msg);
/* Parse one whole message from `buf` (len bytes): 1 and *out, *consumed on
 * success, 0 when more bytes are needed, negative on a bad header. No fds
 * are attached (the fuzz target and tests use this). */
int sbx_message_parse(const uint8_t *buf, size_t len, uint32_t max_payload, sbx_message **out,
                      size_t *consumed);
void sbx_message_close_fds(sbx_message *msg);

#endif
