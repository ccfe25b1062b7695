/* libFuzzer target: message parsing. The input is a byte stream from a
 * hostile peer. It is parsed twice: by the pure parser (every message's
 * payload then read field by field as whatever type the tag claims), and
 * by a real channel that receives it after a valid HELLO over a
 * socketpair, so framing, handshake and dispatch code all see it. Nothing
 * may crash, leak or over-read. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>

#include "base/fd.h"
#include "channel/message_internal.h"
#include "channel/wire.h"

static void read_all_fields(sbx_message *m)
{
    sbx_pickle_reader r;
    sbx_message_reader(m, &r);
    for (int i = 0; i < 256; i++) {
        union { bool b; int32_t i; uint32_t u; int64_t l; uint64_t q; double d; } v;
        const char *s;
        const void *d;
        size_t n;
        int fd;
        int e;
        switch (sbx_pickle_reader_peek(&r)) {
        case SBX_PICKLE_BOOL: e = sbx_pickle_read_bool(&r, &v.b); break;
        case SBX_PICKLE_INT32: e = sbx_pickle_read_int32(&r, &v.i); break;
        case SBX_PICKLE_UINT32: e = sbx_pickle_read_uint32(&r, &v.u); break;
        case SBX_PICKLE_INT64: e = sbx_pickle_read_int64(&r, &v.l); break;
        case SBX_PICKLE_UINT64: e = sbx_pickle_read_uint64(&r, &v.q); break;
        case SBX_PICKLE_DOUBLE: e = sbx_pickle_read_double(&r, &v.d); break;
        case SBX_PICKLE_STRING: e = sbx_pickle_read_string(&r, &s, &n); break;
        case SBX_PICKLE_BYTES: e = sbx_pickle_read_bytes(&r, &d, &n); break;
        case SBX_PICKLE_FD:
            e = sbx_message_read_fd(m, &r, &fd);
            if (e == 0)
                close(fd);
            break;
        default: e = -1; break;
        }
        if (e < 0)
            break;
    }
}

static bool on_message(void *ctx, sbx_message *msg)
{
    read_all_fields(msg);
    return (sbx_message_type(msg) & 1) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        sbx_message *m = NULL;
        size_t used = 0;
        int r = sbx_message_parse(data + off, size - off, 1u << 20, &m, &used);
        if (r <= 0)
            break;
        read_all_fields(m);
        sbx_message_free(m);
        off += used;
    }

    int sv[2];
    if (sbx_channel_socketpair(sv) < 0)
        return 0;
    sbx_channel_listener l = { .on_message = on_message };
    sbx_channel_options o = { .max_message_size = 1u << 20 };
    sbx_channel *ch = NULL;
    if (sbx_channel_new_from_fd(sv[0], &o, &l, &ch) < 0) {
        close(sv[1]);
        return 0;
    }
    uint8_t hello[48];
    sbx_message_header h = { 24, SBX_ROUTING_NONE, SBX_MESSAGE_TYPE_HELLO, SBX_PRIORITY_NORMAL, 0, 0 };
    sbx_message_encode_header(&h, hello);
    sbx_wire_put32(hello + 24, SBX_PICKLE_INT32);
    sbx_wire_put32(hello + 28, (uint32_t)getpid());
    sbx_wire_put32(hello + 32, SBX_PICKLE_BOOL);
    sbx_wire_put32(hello + 36, 0);
    sbx_wire_put32(hello + 40, SBX_PICKLE_UINT32);
    sbx_wire_put32(hello + 44, 0);
    /* Odd inputs skip the HELLO so the pre-handshake path is fuzzed too. */
    if (!(size & 1) || size == 0)
        (void)sbx_write_full(sv[1], hello, sizeof hello);
    (void)sbx_write_full(sv[1], data, size);
    close(sv[1]);
    for (int i = 0; i < 64 && sbx_channel_process_events(ch) == 0; i++)
        ;
    sbx_channel_free(ch);
    return 0;
}

/* Valid streams to mutate: a few messages of assorted field types. */
size_t sbx_fuzz_seed(unsigned index, uint8_t *buf, size_t cap)
{
    size_t off = 0;
    for (unsigned k = 0; k < 1 + index % 5; k++) {
        sbx_message *m = sbx_message_new(1, 100 + k, (sbx_priority)((index + k) % 3));
        if (!m)
            break;
        sbx_pickle *p = sbx_message_pickle(m);
        sbx_pickle_write_uint32(p, index);
        if ((index + k) % 2)
            sbx_pickle_write_cstr(p, "some/path/to/parse");
        sbx_pickle_write_bytes(p, buf, (index * 7 + k) % 40);
        sbx_pickle_write_int64(p, -(int64_t)index);
        sbx_pickle_write_double(p, 1.5);
        sbx_pickle_write_bool(p, true);
        sbx_message_seal(m);
        size_t need = SBX_MESSAGE_HEADER_SIZE + sbx_pickle_size(p);
        if (off + need <= cap) {
            memcpy(buf + off, m->wire_hdr, SBX_MESSAGE_HEADER_SIZE);
            memcpy(buf + off + SBX_MESSAGE_HEADER_SIZE, sbx_pickle_data(p), sbx_pickle_size(p));
            off += need;
        }
        sbx_message_free(m);
    }
    return off;
}
