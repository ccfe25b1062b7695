/* sbx — channel messages: header codec, fd attachments, dispatch map.
 *
 * Header, 24 bytes, each field a little-endian u32 written by hand:
 *   0 payload_size  4 routing_id  8 type  12 flags  16 num_fds  20 sync_id */
#include "channel/message_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "channel/wire.h"

static sbx_message *alloc_message(void)
{
    sbx_message *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    sbx_pickle_init(&m->payload);
    for (unsigned i = 0; i < SBX_MESSAGE_MAX_FDS; i++)
        m->fds[i] = -1;
    return m;
}

sbx_message *sbx_message_new(uint32_t routing_id, uint32_t type, sbx_priority priority)
{
    if ((unsigned)priority > SBX_PRIORITY_HIGH)
        return NULL;
    sbx_message *m = alloc_message();
    if (!m)
        return NULL;
    m->hdr.routing_id = routing_id;
    m->hdr.type = type;
    m->hdr.flags = (uint32_t)priority;
    return m;
}

sbx_message *sbx_message_new_reply(const sbx_message *request)
{
    if (!request || !(request->hdr.flags & SBX_MSG_FLAG_SYNC))
        return NULL;
    sbx_message *m = sbx_message_new(request->hdr.routing_id, request->hdr.type,
                                     sbx_message_priority(request));
    if (!m)
        return NULL;
    m->hdr.flags |= SBX_MSG_FLAG_REPLY;
    m->hdr.sync_id = request->hdr.sync_id;
    return m;
}

void sbx_message_set_reply_error(sbx_message *reply)
{
    if (reply && (reply->hdr.flags & SBX_MSG_FLAG_REPLY))
        reply->hdr.flags |= SBX_MSG_FLAG_REPLY_ERROR;
}

void sbx_message_close_fds(sbx_message *msg)
{
    for (unsigned i = 0; i < msg->nfds; i++) {
        sbx_close_keep_errno(msg->fds[i]);
        msg->fds[i] = -1;
    }
    msg->nfds = 0;
}

void sbx_message_free(sbx_message *msg)
{
    if (!msg)
        return;
    sbx_message_close_fds(msg);
    sbx_pickle_release(&msg->payload);
    free(msg);
}

sbx_pickle *sbx_message_pickle(sbx_message *msg)
{
    return &msg->payload;
}

int sbx_message_write_fd(sbx_message *msg, int fd, bool take)
{
    SBX_AUTOCLOSE int owned = take ? fd : -1;
    if (fd < 0)
        return -EBADF;
    if (msg->nfds >= SBX_MESSAGE_MAX_FDS)
        return SBX_ERROR_TOO_LARGE;
    if (!take) {
        owned = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (owned < 0)
            return sbx_neg_errno();
    }
    int r = sbx_pickle_write_fd_index(&msg->payload, msg->nfds);
    if (r < 0)
        return r;
    msg->fds[msg->nfds++] = sbx_steal_fd(&owned);
    return 0;
}

void sbx_message_reader(const sbx_message *msg, sbx_pickle_reader *r)
{
    sbx_pickle_reader_init(r, msg->payload.data, msg->payload.size);
}

int sbx_message_read_fd(sbx_message *msg, sbx_pickle_reader *r, int *fd)
{
    size_t save = r->pos_;
    uint32_t idx;
    int e = sbx_pickle_read_fd_index(r, &idx);
    if (e < 0)
        return e;
    /* The index is the peer's: it must name an attachment that is present
     * and not already handed out. */
    if (idx >= msg->nfds || msg->fds[idx] < 0) {
        r->pos_ = save;
        r->error_ = SBX_ERROR_INVALID_IPC;
        return r->error_;
    }
    *fd = msg->fds[idx];
    msg->fds[idx] = -1;
    return 0;
}

uint32_t sbx_message_type(const sbx_message *msg)
{
    return msg->hdr.type;
}

uint32_t sbx_message_routing_id(const sbx_message *msg)
{
    return msg->hdr.routing_id;
}

sbx_priority sbx_message_priority(const sbx_message *msg)
{
    return (sbx_priority)(msg->hdr.flags & SBX_MSG_FLAG_PRIORITY_MASK);
}

bool sbx_message_is_sync(const sbx_message *msg)
{
    return (msg->hdr.flags & SBX_MSG_FLAG_SYNC) != 0;
}

bool sbx_message_is_reply(const sbx_message *msg)
{
    return (msg->hdr.flags & SBX_MSG_FLAG_REPLY) != 0;
}

bool sbx_message_is_reply_error(const sbx_message *msg)
{
    return (msg->hdr.flags & SBX_MSG_FLAG_REPLY_ERROR) != 0;
}

uint32_t sbx_message_sync_id(const sbx_message *msg)
{
    return msg->hdr.sync_id;
}

unsigned sbx_message_num_fds(const sbx_message *msg)
{
    return msg->nfds;
}

size_t sbx_message_payload_size(const sbx_message *msg)
{
    return msg->payload.size;
}

/* ---- wire ---- */

void sbx_message_encode_header(const sbx_message_header *h, uint8_t out[SBX_MESSAGE_HEADER_SIZE])
{
    sbx_wire_put32(out + 0, h->payload_size);
    sbx_wire_put32(out + 4, h->routing_id);
    sbx_wire_put32(out + 8, h->type);
    sbx_wire_put32(out + 12, h->flags);
    sbx_wire_put32(out + 16, h->num_fds);
    sbx_wire_put32(out + 20, h->sync_id);
}

int sbx_message_decode_header(const uint8_t in[SBX_MESSAGE_HEADER_SIZE], uint32_t max_payload,
                              sbx_message_header *h)
{
    h->payload_size = sbx_wire_get32(in + 0);
    h->routing_id = sbx_wire_get32(in + 4);
    h->type = sbx_wire_get32(in + 8);
    h->flags = sbx_wire_get32(in + 12);
    h->num_fds = sbx_wire_get32(in + 16);
    h->sync_id = sbx_wire_get32(in + 20);
    /* Size first: nothing is allocated from a header that fails here. */
    if (h->payload_size > max_payload)
        return SBX_ERROR_TOO_LARGE;
    if (h->payload_size % SBX_PICKLE_ALIGN)
        return SBX_ERROR_PROTOCOL;
    if (h->flags & ~SBX_MSG_FLAGS_KNOWN)
        return SBX_ERROR_PROTOCOL;
    if ((h->flags & SBX_MSG_FLAG_PRIORITY_MASK) > SBX_PRIORITY_HIGH)
        return SBX_ERROR_PROTOCOL;
    bool sync = h->flags & SBX_MSG_FLAG_SYNC, reply = h->flags & SBX_MSG_FLAG_REPLY;
    if (sync && reply)
        return SBX_ERROR_PROTOCOL;
    if ((h->flags & SBX_MSG_FLAG_REPLY_ERROR) && !reply)
        return SBX_ERROR_PROTOCOL;
    if ((sync || reply) != (h->sync_id != 0))
        return SBX_ERROR_PROTOCOL;
    if (h->num_fds > SBX_MESSAGE_MAX_FDS)
        return SBX_ERROR_PROTOCOL;
    return 0;
}

sbx_message *sbx_message_from_wire(const sbx_message_header *h, uint8_t *payload, size_t cap, int *fds,
                                   unsigned nfds)
{
    sbx_message *m = alloc_message();
    if (!m || nfds > SBX_MESSAGE_MAX_FDS) {
        for (unsigned i = 0; i < nfds; i++)
            sbx_close_keep_errno(fds[i]);
        sbx_pickle_buffer_free(payload, cap);
        free(m);
        return NULL;
    }
    m->hdr = *h;
    sbx_pickle_adopt(&m->payload, payload, h->payload_size, payload ? cap : 0);
    for (unsigned i = 0; i < nfds; i++)
        m->fds[i] = fds[i];
    m->nfds = nfds;
    return m;
}

void sbx_message_seal(sbx_message *msg)
{
    msg->hdr.payload_size = (uint32_t)msg->payload.size;
    msg->hdr.num_fds = msg->nfds;
    sbx_message_encode_header(&msg->hdr, msg->wire_hdr);
}

int sbx_message_parse(const uint8_t *buf, size_t len, uint32_t max_payload, sbx_message **out,
                      size_t *consumed)
{
    if (len < SBX_MESSAGE_HEADER_SIZE)
        return 0;
    sbx_message_header h;
    int r = sbx_message_decode_header(buf, max_payload, &h);
    if (r < 0)
        return r;
    if (len - SBX_MESSAGE_HEADER_SIZE < h.payload_size)
        return 0;
    uint8_t *p = NULL;
    if (h.payload_size) {
        p = malloc(h.payload_size);
        if (!p)
            return -ENOMEM;
        memcpy(p, buf + SBX_MESSAGE_HEADER_SIZE, h.payload_size);
    }
    sbx_message *m = sbx_message_from_wire(&h, p, h.payload_size, NULL, 0);
    if (!m)
        return -ENOMEM;
    *out = m;
    *consumed = SBX_MESSAGE_HEADER_SIZE + h.payload_size;
    return 1;
}

/* ---- dispatch ---- */

/* Walk the whole payload once, checking each field is well formed and of
 * the type the signature names, so a handler never meets a surprise. */
static int check_signature(const sbx_message *msg, const sbx_pickle_type *sig)
{
    sbx_pickle_reader r;
    sbx_message_reader(msg, &r);
    for (unsigned i = 0; i < SBX_MESSAGE_MAX_ARGS && sig[i]; i++) {
        union {
            bool b;
            int32_t i32;
            uint32_t u32;
            int64_t i64;
            uint64_t u64;
            double d;
        } v;
        const void *d;
        const char *s;
        size_t n;
        int e;
        switch (sig[i]) {
        case SBX_PICKLE_BOOL: e = sbx_pickle_read_bool(&r, &v.b); break;
        case SBX_PICKLE_INT32: e = sbx_pickle_read_int32(&r, &v.i32); break;
        case SBX_PICKLE_UINT32: e = sbx_pickle_read_uint32(&r, &v.u32); break;
        case SBX_PICKLE_INT64: e = sbx_pickle_read_int64(&r, &v.i64); break;
        case SBX_PICKLE_UINT64: e = sbx_pickle_read_uint64(&r, &v.u64); break;
        case SBX_PICKLE_DOUBLE: e = sbx_pickle_read_double(&r, &v.d); break;
        case SBX_PICKLE_STRING: e = sbx_pickle_read_string(&r, &s, &n); break;
        case SBX_PICKLE_BYTES: e = sbx_pickle_read_bytes(&r, &d, &n); break;
        case SBX_PICKLE_FD:
            e = sbx_pickle_read_fd_index(&r, &v.u32);
            if (e == 0 && (v.u32 >= msg->nfds || msg->fds[v.u32] < 0))
                e = SBX_ERROR_INVALID_IPC;
            break;
        default: e = SBX_ERROR_INVALID_IPC; break;
        }
        if (e < 0)
            return SBX_ERROR_INVALID_IPC;
    }
    return sbx_pickle_reader_done(&r) ? 0 : SBX_ERROR_INVALID_IPC;
}

int sbx_message_dispatch(const sbx_message_map_entry *map, size_t n, void *ctx, sbx_message *msg)
{
    if (!msg)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (map[i].type != msg->hdr.type)
            continue;
        if (check_signature(msg, map[i].sig) < 0) {
            sbx_debug("channel: message type %u does not match its signature", msg->hdr.type);
            return SBX_ERROR_INVALID_IPC;
        }
        sbx_pickle_reader r;
        sbx_message_reader(msg, &r);
        return map[i].handler(ctx, msg, &r);
    }
    sbx_debug("channel: unhandled message type %u", msg->hdr.type);
    return SBX_ERROR_NOT_FOUND;
}
