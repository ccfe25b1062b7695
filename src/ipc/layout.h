/* sbx internal — the shared section's layout, shared by client and server.
 *
 *   [ header            ]  64 bytes, written once by the broker
 *   [ control 0 .. N-1  ]  128 bytes each (atomic words, futex words, reply)
 *   [ buffer 0 .. N-1   ]  channel_size bytes each: ping, cli_cpu, request
 *   [ padding to a page ]
 *   [ policy area       ]  policy_size bytes, page-aligned
 *
 * Everything here is writable by the target at any time. The broker keeps
 * its own copy of the layout and never reads the header back; it reads a
 * control word at most once per decision and a channel buffer only by
 * copying it out. docs/ipc-protocol.md is the normative description. */
#ifndef SBX_IPC_LAYOUT_H
#define SBX_IPC_LAYOUT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_IPC_MAGIC 0x31584253u /* "SBX1" little-endian */
#define SBX_IPC_VERSION 2u
#define SBX_IPC_HEADER_SIZE 64u
#define SBX_IPC_PAGE 4096u

typedef struct sbx_ipc_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint32_t ipc_size;        /* header + controls + buffers (+ slack) */
    uint32_t policy_offset;   /* page-aligned, >= ipc_size */
    uint32_t policy_size;
    uint32_t channel_count;
    uint32_t channel_size;
    uint32_t control_offset;  /* == header_size */
    uint32_t buffers_offset;  /* control_offset + count * control size */
    uint32_t policy_used;     /* bytes of policy actually written */
    _Atomic uint32_t doorbell;    /* fallback wake word (see server.c) */
    _Atomic uint32_t free_seq;    /* bumped when a channel is freed */
    _Atomic uint32_t free_waiters;/* clients sleeping on free_seq */
    uint32_t reserved[3];
} sbx_ipc_header;
_Static_assert(sizeof(sbx_ipc_header) == SBX_IPC_HEADER_SIZE, "header is 64 bytes");

/* Channel states: the client's lock (the broker never looks at them). */
enum {
    SBX_CH_FREE = 1,      /* available */
    SBX_CH_BUSY = 2,      /* locked by a client for one call */
    /* 3 was Ack (the broker's CAS in version 1), no longer used */
    SBX_CH_ABANDONED = 4, /* the client gave up on a dead broker: never reused */
};

/* srv_sleep values. */
enum {
    SBX_SRV_AWAKE = 0,    /* broker thread running or spinning */
    SBX_SRV_WAITV = 1,    /* sleeping in futex_waitv on the ping words */
    SBX_SRV_DOORBELL = 2, /* sleeping in FUTEX_WAIT on header.doorbell */
};

/* One channel's control: two cache lines. Line A is the client's alone
 * (the broker never reads or writes it), so locking and freeing a channel
 * never moves a line between the CPUs. Line B carries the reply: the
 * broker writes it, the client reads it; the client writes cli_wait there
 * only on its way to sleep, where the broker reads it right after pong. */
#define SBX_IPC_CONTROL_SIZE 128u
typedef struct sbx_ipc_control {
    /* line A: the client's (lock and bookkeeping; never read by the broker) */
    _Atomic uint32_t state;     /* SBX_CH_*: the client's channel lock */
    _Atomic uint32_t tag;       /* request tag, informational */
    uint32_t buffer_offset;     /* informational; the broker never reads it */
    uint32_t reserved_a[13];
    /* line B: the reply (written by the broker) */
    _Atomic uint32_t pong;      /* broker bumps after writing the reply (futex) */
    _Atomic uint32_t srv_sleep; /* SBX_SRV_* */
    _Atomic uint32_t srv_cpu;   /* broker thread's CPU + 1 (0: unknown) */
    int32_t rep_outcome;        /* sbx result of the call */
    int32_t rep_status;         /* errno-style status */
    uint32_t rep_flags;         /* SBX_WIRE_RF_* */
    uint64_t rep_ext[4];        /* extended values */
    _Atomic uint32_t cli_wait;  /* client: 1 while it sleeps on pong */
    uint32_t reserved_b;
} sbx_ipc_control;
_Static_assert(sizeof(sbx_ipc_control) == SBX_IPC_CONTROL_SIZE, "control is 128 bytes");
_Static_assert(offsetof(sbx_ipc_control, pong) == 64, "line B starts at 64");

/* Every channel buffer starts with the words that publish a request, in
 * the cache line the request's head is written to: the broker's one miss
 * on ping brings a small request (PING1: 48 bytes) along with it. The
 * request itself follows at SBX_IPC_CHAN_HEAD. */
typedef struct sbx_ipc_chan_head {
    _Atomic uint32_t ping;      /* client bumps after writing a request (futex) */
    _Atomic uint32_t cli_cpu;   /* client's CPU + 1 at request time (a hint) */
} sbx_ipc_chan_head;
#define SBX_IPC_CHAN_HEAD 8u
_Static_assert(sizeof(sbx_ipc_chan_head) == SBX_IPC_CHAN_HEAD, "channel head is 8 bytes");

/* ---- channel buffer (wire format) ---- */

/* Request header at offset 0 of a request (a channel buffer's bytes from
 * SBX_IPC_CHAN_HEAD on; all request offsets count from there). */
#define SBX_WIRE_REQ_TAG 0u        /* u32 */
#define SBX_WIRE_REQ_COUNT 4u      /* u32 param count */
#define SBX_WIRE_REQ_TOTAL 8u      /* u32 bytes used from offset 0 */
#define SBX_WIRE_REQ_FLAGS 12u     /* u32 SBX_WIRE_F_* */
#define SBX_WIRE_REQ_SEQ 16u       /* u32 call sequence (echoed with an fd) */
#define SBX_WIRE_REQ_RSVD 20u      /* u32, must be 0 */
/* Parameter table at offset 24: `count` entries of {u32 type, u32 offset,
 * u32 size, u32 rsvd}; parameter bytes follow it. A small request (PING1:
 * 48 bytes) fits one cache line. */
#define SBX_WIRE_HEAD 24u
#define SBX_WIRE_PARAMS 24u
#define SBX_WIRE_PARAM_SIZE 16u
#define SBX_WIRE_DATA_AT(count) (SBX_WIRE_PARAMS + (count) * SBX_WIRE_PARAM_SIZE)
#define SBX_WIRE_MAX_HEAD SBX_WIRE_DATA_AT(9u) /* 168 */
#define SBX_WIRE_ALIGN 8u

#define SBX_WIRE_F_FD_CLOEXEC 0x1u  /* a returned fd should be close-on-exec */
#define SBX_WIRE_F_ALL 0x1u
#define SBX_WIRE_RF_FD 0x1u         /* an fd was queued on the socket */

/* The message that carries a returned fd on the socket (with SCM_RIGHTS). */
typedef struct sbx_ipc_fdmsg {
    uint32_t magic;   /* SBX_IPC_FDMSG_MAGIC */
    uint32_t channel;
    uint32_t seq;
    uint32_t flags;   /* SBX_WIRE_F_FD_CLOEXEC */
} sbx_ipc_fdmsg;
#define SBX_IPC_FDMSG_MAGIC 0x44465853u /* "SXFD" */

static inline sbx_ipc_control *sbx_ipc_controls(void *base)
{
    return (sbx_ipc_control *)((char *)base + SBX_IPC_HEADER_SIZE);
}

#endif
