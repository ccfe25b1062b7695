/* A libsbx target for the runtime tests.
 *   rt_probe ipc        sbx_target_init, then a PING1 cross call on the
 *                       section and a look at the policy area
 *   rt_probe channel    sbx_target_channel; answer each message (type 1,
 *                       a string) with type 2 carrying its length; exit on EOF
 * Exit code 0 means every check passed; other codes name the failed step. */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <sbx/channel.h>
#include <sbx/ipc.h>
#include <sbx/target.h>

#include "target/target_internal.h"

static sbx_channel *g_ch;
static int g_done;

static bool on_message(void *ctx, sbx_message *msg)
{
    (void)ctx;
    if (sbx_message_type(msg) != 1)
        return false;
    sbx_pickle_reader r;
    sbx_message_reader(msg, &r);
    const char *s;
    size_t n;
    if (sbx_pickle_read_string(&r, &s, &n) < 0)
        return false;
    sbx_message *rep = sbx_message_new(0, 2, SBX_PRIORITY_NORMAL);
    sbx_pickle_write_uint64(sbx_message_pickle(rep), (uint64_t)n);
    sbx_channel_send(g_ch, rep);
    return true;
}

static void on_error(void *ctx, int err)
{
    (void)ctx;
    (void)err;
    g_done = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 100;
    if (!strcmp(argv[1], "ipc")) {
        if (sbx_target_init() != 0)
            return 10;
        sbx_ipc_client *c = sbx_target_ipc_client();
        if (!c)
            return 11;
        sbx_arg a = sbx_arg_u32(21);
        sbx_ipc_reply rep;
        if (sbx_ipc_client_call(c, SBX_IPC_TAG_PING1, &a, 1, 0, &rep) != 0 || rep.ext[0] != 42)
            return 12;
        const void *pol;
        size_t size = 0;
        if (sbx_ipc_client_policy(c, &pol, &size) < 0 || size == 0)
            return 13;
        if (sbx_target_broker_fd() != SBX_TARGET_FD_BROKER)
            return 14;
        return 0;
    }
    if (!strcmp(argv[1], "channel")) {
        sbx_channel_listener l = { .on_message = on_message, .on_error = on_error };
        if (sbx_target_channel(&l, &g_ch) != 0)
            return 20;
        while (!g_done) {
            struct pollfd p = { .fd = sbx_channel_fd(g_ch), .events = sbx_channel_poll_events(g_ch) };
            if (poll(&p, 1, 5000) <= 0)
                return 21;
            if (sbx_channel_process_events(g_ch) < 0)
                break;
        }
        sbx_channel_free(g_ch);
        return 0;
    }
    return 100;
}
