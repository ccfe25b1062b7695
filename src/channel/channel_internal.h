/* sbx internal — hooks the proxy uses to run a channel on its IO thread. */
#ifndef SBX_CHANNEL_CHANNEL_INTERNAL_H
#define SBX_CHANNEL_CHANNEL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include <sbx/channel.h>

/* Takes ownership of msg; returns true when handled (an unhandled sync
 * message then gets an error reply from the sink's owner, not here). */
typedef void (*sbx_channel_sink_fn)(void *ctx, sbx_message *msg);

/* Threaded mode: sync waiters sleep on a condition variable (the IO
 * thread `io` reads), `wake(wake_ctx)` is called after a send leaves
 * bytes queued, and messages go to `sink` instead of the listener's
 * on_message. Set before the IO thread starts. */
void sbx_channel_set_threaded(sbx_channel *ch, pthread_t io, void (*wake)(void *), void *wake_ctx,
                              sbx_channel_sink_fn sink, void *sink_ctx);
/* Send an error reply to a sync request nobody handled. */
void sbx_channel_reply_unhandled(sbx_channel *ch, const sbx_message *request);
size_t sbx_channel_max_incoming(const sbx_channel *ch);
/* Most fds the proxy holds for the listener before reading pauses. */
#define SBX_CHANNEL_PROXY_MAX_FDS 128u

#endif
