/* sbx internal — client pieces tests need: raw access to a locked
 * channel's buffer and a call on a request written there by hand. */
#ifndef SBX_IPC_CLIENT_H
#define SBX_IPC_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sbx/ipc.h>

#include "ipc/layout.h"
#include "ipc/section.h"

struct sbx_ipc_client {
    uint8_t *base;           /* IPC area mapping (read-write) */
    size_t map_size;
    void *policy;            /* policy area mapping (PROT_READ) or NULL */
    size_t policy_map_size;
    sbx_ipc_layout layout;
    size_t policy_used;
    int sock;
    unsigned timeout_ms;
    atomic_uint rr;          /* rotating start for the free-channel scan */
    atomic_bool dead;        /* the broker was found gone */
    _Atomic uint64_t *mailbox; /* per channel: (seq << 32) | (fd + 1) */
};

static inline sbx_ipc_control *sbx_ipc_client_control(sbx_ipc_client *c, unsigned ch)
{
    return &sbx_ipc_controls(c->base)[ch];
}
static inline sbx_ipc_chan_head *sbx_ipc_client_head(sbx_ipc_client *c, unsigned ch)
{
    return (sbx_ipc_chan_head *)(c->base + c->layout.buffers_offset +
                                 (size_t)ch * c->layout.channel_size);
}
/* Where channel ch's request is written: sbx_ipc_client_request_cap bytes. */
static inline uint8_t *sbx_ipc_client_buffer(sbx_ipc_client *c, unsigned ch)
{
    return (uint8_t *)sbx_ipc_client_head(c, ch) + SBX_IPC_CHAN_HEAD;
}
static inline size_t sbx_ipc_client_request_cap(const sbx_ipc_client *c)
{
    return c->layout.channel_size - SBX_IPC_CHAN_HEAD;
}

/* Send the request already written into channel ch's buffer (the caller
 * holds ch from get_buffer; seq is the head's ping + 1, also written as the
 * request's seq) and wait for the answer; fills the reply from
 * the channel (no in/out copy-back) and frees the channel. */
int sbx_ipc_client_transact_raw(sbx_ipc_client *c, unsigned ch, uint32_t tag, uint32_t seq,
                                sbx_ipc_reply *reply);

#endif
