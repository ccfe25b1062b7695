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
static inline uint8_t *sbx_ipc_client_buffer(sbx_ipc_client *c, unsigned ch)
{
    return c->base + c->layout.buffers_offset + (size_t)ch * c->layout.channel_size;
}

/* Send the request already written into channel ch's buffer (the caller
 * holds ch from get_buffer) and wait for the answer; fills the reply from
 * the channel (no in/out copy-back) and frees the channel. */
int sbx_ipc_client_transact_raw(sbx_ipc_client *c, unsigned ch, uint32_t tag, uint32_t seq,
                                sbx_ipc_reply *reply);

#endif
