/* sbx — message channel: Chrome-style IPC for application messages between
 * a broker and its targets (docs/channel.md has the wire format byte by
 * byte and an API tour).
 *
 *   sbx_message  a header {payload size, routing id, type, flags, fd count,
 *                sync id} and a Pickle payload; fds travel by SCM_RIGHTS.
 *   sbx_channel  one end of an AF_UNIX stream socket (a socketpair, an
 *                inherited fd, or a named socket); non-blocking; HELLO
 *                handshake with pid and optional 32-bit secret; driven from
 *                the caller's poll loop (sbx_channel_fd +
 *                sbx_channel_process_events).
 *   sbx_channel_proxy  a channel on its own IO thread, with message
 *                filters that run on that thread.
 *
 * The peer is untrusted: every header is validated before anything is
 * allocated for it, every count and index is bounds-checked, and fds that
 * do not belong to a well-formed message are closed. */
#ifndef SBX_CHANNEL_H
#define SBX_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sbx/export.h>
#include <sbx/pickle.h>

SBX_BEGIN_DECLS

/* ---------------------------------------------------------------- message */

#define SBX_MESSAGE_HEADER_SIZE 24u
/* Most fds one message may carry. */
#define SBX_MESSAGE_MAX_FDS 32u
/* Routing ids with a fixed meaning. */
#define SBX_ROUTING_NONE 0xFFFFFFFEu
#define SBX_ROUTING_CONTROL 0x7FFFFFFFu
/* Types from SBX_MESSAGE_TYPE_RESERVED up are the channel's own; an
 * application may not send them. */
#define SBX_MESSAGE_TYPE_RESERVED 0xFFFFFF00u
#define SBX_MESSAGE_TYPE_HELLO 0xFFFFFFF0u

typedef enum sbx_priority {
    SBX_PRIORITY_LOW = 0,
    SBX_PRIORITY_NORMAL = 1,
    SBX_PRIORITY_HIGH = 2,
} sbx_priority;

/* A message belongs to one thread at a time (its creator until it is sent,
 * the listener during a callback, the caller for a sync reply); the
 * message functions are not thread-safe on one message. */
typedef struct sbx_message sbx_message;

/* A new message with an empty payload, or NULL (out of memory or a bad
 * priority). The caller owns it until it is passed to a send function. */
SBX_API sbx_message *sbx_message_new(uint32_t routing_id, uint32_t type, sbx_priority priority);
/* The reply to a received sync message: same routing id and type, the
 * request's sync id, the REPLY flag, and the request's priority. NULL when
 * `request` is not a sync message or on allocation failure. */
SBX_API sbx_message *sbx_message_new_reply(const sbx_message *request);
/* Mark a reply as an error reply: the waiting sbx_channel_send_sync returns
 * SBX_ERROR_GENERIC (and still hands over the reply, whose payload may say
 * more). */
SBX_API void sbx_message_set_reply_error(sbx_message *reply);
/* Free a message and close the fds it still holds; NULL is a no-op. */
SBX_API void sbx_message_free(sbx_message *msg);

/* The payload, to write fields into (owned by the message). */
SBX_API sbx_pickle *sbx_message_pickle(sbx_message *msg);
/* Attach an fd and write its index into the payload. `take`: the message
 * owns fd from now on, even on failure (it is closed with the message);
 * otherwise fd is borrowed and duplicated. 0, -EBADF, -EMFILE,
 * SBX_ERROR_TOO_LARGE (more than SBX_MESSAGE_MAX_FDS) or -ENOMEM. */
SBX_API int sbx_message_write_fd(sbx_message *msg, int fd, bool take);

/* Start reading the payload (the reader borrows the message). */
SBX_API void sbx_message_reader(const sbx_message *msg, sbx_pickle_reader *r);
/* Read an fd field: the caller owns *fd afterwards. An index outside the
 * attachments, or one already taken, is SBX_ERROR_INVALID_IPC. */
SBX_API int sbx_message_read_fd(sbx_message *msg, sbx_pickle_reader *r, int *fd);

SBX_API uint32_t sbx_message_type(const sbx_message *msg);
SBX_API uint32_t sbx_message_routing_id(const sbx_message *msg);
SBX_API sbx_priority sbx_message_priority(const sbx_message *msg);
SBX_API bool sbx_message_is_sync(const sbx_message *msg);
SBX_API bool sbx_message_is_reply(const sbx_message *msg);
SBX_API bool sbx_message_is_reply_error(const sbx_message *msg);
/* The sync id (0 for ordinary messages). */
SBX_API uint32_t sbx_message_sync_id(const sbx_message *msg);
SBX_API unsigned sbx_message_num_fds(const sbx_message *msg);
SBX_API size_t sbx_message_payload_size(const sbx_message *msg);

/* ------------------------------------------------------- message dispatch */

/* A typed handler: the payload's field types were already checked against
 * the entry's signature; `r` is positioned at the first field. Return 0 or
 * a negative code (passed back by sbx_message_dispatch). */
typedef int (*sbx_message_handler)(void *ctx, sbx_message *msg, sbx_pickle_reader *r);

#define SBX_MESSAGE_MAX_ARGS 8
typedef struct sbx_message_map_entry {
    uint32_t type;
    sbx_message_handler handler;
    /* The exact field types of the payload, 0-terminated (all zero: an
     * empty payload). A message whose payload differs is rejected before
     * the handler runs. */
    sbx_pickle_type sig[SBX_MESSAGE_MAX_ARGS + 1];
} sbx_message_map_entry;

/* The message map, in the spirit of Chrome's IPC_BEGIN_MESSAGE_MAP:
 *   SBX_MESSAGE_MAP(my_map) {
 *       SBX_MESSAGE_HANDLER(MSG_PARSE, on_parse, SBX_PICKLE_STRING, SBX_PICKLE_FD),
 *       SBX_MESSAGE_HANDLER(MSG_PING, on_ping),
 *   };
 *   sbx_message_dispatch(my_map, SBX_ARRAY_SIZE(my_map), ctx, msg); */
#define SBX_MESSAGE_MAP(name) static const sbx_message_map_entry name[] =
#define SBX_MESSAGE_HANDLER(type_, fn_, ...) { (type_), (fn_), { __VA_ARGS__ } }
#define SBX_MESSAGE_MAP_SIZE(name) (sizeof(name) / sizeof((name)[0]))

/* Route `msg` by type. Returns the handler's result; SBX_ERROR_NOT_FOUND
 * when no entry has the type (unhandled); SBX_ERROR_INVALID_IPC when the
 * payload does not match the entry's signature (the handler did not run).
 * Reentrant; the map is only read. */
SBX_API int sbx_message_dispatch(const sbx_message_map_entry *map, size_t n, void *ctx, sbx_message *msg);

/* ---------------------------------------------------------------- channel */

typedef struct sbx_channel sbx_channel;

/* Callbacks, all optional. They run on the thread that drives the channel
 * (the caller of sbx_channel_process_events, or the proxy's dispatch
 * thread). `msg` is borrowed for the call: read it, take its fds with
 * sbx_message_read_fd; the channel frees it afterwards. Return true when
 * handled; an unhandled sync message gets an error reply automatically.
 * on_connected fires once, after the peer's HELLO checked; on_error fires
 * at most once, after which the channel is closed. Do not free the channel
 * from inside a callback. */
typedef struct sbx_channel_listener {
    bool (*on_message)(void *ctx, sbx_message *msg);
    void (*on_connected)(void *ctx, pid_t peer_pid);
    void (*on_error)(void *ctx, int error);
    void *ctx;
} sbx_channel_listener;

/* How the peer's HELLO pid is checked against the kernel's account of the
 * peer (SCM_CREDENTIALS on the HELLO bytes, else SO_PEERCRED; both give the
 * pid as seen from *our* pid namespace). See docs/channel.md. */
typedef enum sbx_channel_peer_check {
    /* Same pid namespace: the HELLO pid must equal the kernel's pid. */
    SBX_CHANNEL_PEER_SAME_PID_NS = 0,
    /* The kernel's pid must equal expected_peer_pid (e.g. the host pid a
     * broker got from spawning a target in its own pid namespace); the
     * HELLO pid is recorded (sbx_channel_peer_hello_pid) but not trusted. */
    SBX_CHANNEL_PEER_EXPECT_PID = 1,
    /* No pid check (a target whose broker lies outside its pid namespace,
     * where the kernel reports pid 0); on_connected gets the HELLO pid,
     * which is the peer's claim only. */
    SBX_CHANNEL_PEER_UNVERIFIED = 2,
} sbx_channel_peer_check;

typedef struct sbx_channel_options {
    bool has_secret;          /* send and require a 32-bit secret in HELLO */
    uint32_t secret;
    sbx_channel_peer_check peer_check;
    pid_t expected_peer_pid;  /* for SBX_CHANNEL_PEER_EXPECT_PID */
    uint32_t max_message_size;/* payload cap; 0: 16 MiB; at most SBX_PICKLE_MAX_SIZE */
    size_t max_write_queue;   /* bytes queued unsent before send fails; 0: 2 MiB */
    size_t max_incoming_queue;/* proxy: bytes waiting for the listener before reading pauses; 0: 64 MiB */
    bool abstract_socket;     /* named channels: use the abstract namespace */
} sbx_channel_options;

/* A connected AF_UNIX stream socketpair for a channel (close-on-exec, with
 * SO_PASSCRED so the HELLO sender is attested by the kernel). Hand fds[1]
 * to a child (clear FD_CLOEXEC on it there) and build each end with
 * sbx_channel_new_from_fd. The caller owns both fds. 0 or -errno. */
SBX_API int sbx_channel_socketpair(int fds[2]);

/* A channel on a connected AF_UNIX stream socket `fd` (taken: owned by the
 * channel even on failure; made non-blocking). HELLO is sent at once.
 * `opts` and `listener` may be NULL and are copied. The caller owns *out
 * and frees it with sbx_channel_free. 0 or a negative code. */
SBX_API int sbx_channel_new_from_fd(int fd, const sbx_channel_options *opts,
                                    const sbx_channel_listener *listener, sbx_channel **out);
/* Both ends of a fresh socketpair as channels, in this process. */
SBX_API int sbx_channel_new_pair(const sbx_channel_options *opts,
                                 const sbx_channel_listener *l0, const sbx_channel_listener *l1,
                                 sbx_channel **out0, sbx_channel **out1);

/* Named channels. Server: sbx_channel_listen binds `path` (a filesystem
 * socket created mode 0600, or an abstract name with opts->abstract_socket)
 * and returns the listening fd (caller owns it; the caller unlinks a
 * filesystem path when done). An existing path is -EADDRINUSE.
 * sbx_channel_accept accepts one client from a listening fd (borrowed;
 * blocks unless the fd is non-blocking). Client: sbx_channel_connect. For
 * named channels the peer pid is taken from SO_PEERCRED. */
SBX_API int sbx_channel_listen(const char *path, const sbx_channel_options *opts, int *listen_fd);
SBX_API int sbx_channel_accept(int listen_fd, const sbx_channel_options *opts,
                               const sbx_channel_listener *listener, sbx_channel **out);
SBX_API int sbx_channel_connect(const char *path, const sbx_channel_options *opts,
                                const sbx_channel_listener *listener, sbx_channel **out);

/* Close the socket, free everything queued, close held fds. No callback
 * fires. NULL is a no-op. Not concurrently with any other call on ch. */
SBX_API void sbx_channel_free(sbx_channel *ch);

/* The socket to poll (borrowed; valid until sbx_channel_free) and the poll
 * events to wait for now (POLLIN, plus POLLOUT while writes are queued). */
SBX_API int sbx_channel_fd(const sbx_channel *ch);
SBX_API short sbx_channel_poll_events(sbx_channel *ch);
/* Read what is available, deliver complete messages (highest priority
 * first, FIFO within a priority), flush queued writes. Never blocks.
 * Returns 0, or the channel's error once it is closed (on_error has then
 * fired). One thread drives a channel: a call while another thread is
 * inside it returns SBX_ERROR_WRONG_STATE. */
SBX_API int sbx_channel_process_events(sbx_channel *ch);

/* Queue `msg` (always taken, even on failure) and write as much as the
 * socket takes (nothing, if it was full at the last attempt: the queue is
 * then written by process_events or flush). Thread-safe. 0;
 * SBX_ERROR_NO_SPACE when the write queue limit (bytes, or 256 fds) is
 * reached; SBX_ERROR_CHANNEL_ERROR once closed; -EINVAL for a reserved
 * type or a reply/sync flag set by hand. */
SBX_API int sbx_channel_send(sbx_channel *ch, sbx_message *msg);
/* Send `msg` (taken) as a sync message and wait up to timeout_ms (< 0:
 * forever) for its reply, delivering other incoming messages to the
 * listener meanwhile. 0 and *reply (the caller's); SBX_ERROR_GENERIC and
 * *reply for an error reply; SBX_ERROR_TIMEOUT; SBX_ERROR_CHANNEL_ERROR if
 * the peer died or the channel failed (*reply is then NULL). Call it from the driving thread
 * (or, on a proxy, sbx_channel_proxy_send_sync from any other thread). */
SBX_API int sbx_channel_send_sync(sbx_channel *ch, sbx_message *msg, int timeout_ms, sbx_message **reply);
/* Block until the write queue is empty (0), timeout_ms passes
 * (SBX_ERROR_TIMEOUT) or the channel fails. It only writes, so any thread
 * may call it (e.g. a sender that got SBX_ERROR_NO_SPACE). When the socket
 * was full, queued data is written again only by process_events or flush,
 * not by the next send. */
SBX_API int sbx_channel_flush(sbx_channel *ch, int timeout_ms);

/* These three are safe from any thread. */
SBX_API bool sbx_channel_is_connected(const sbx_channel *ch);
/* The peer's pid as passed to on_connected (0 before), and the pid its
 * HELLO claimed (in the peer's own pid namespace). */
SBX_API pid_t sbx_channel_peer_pid(const sbx_channel *ch);
SBX_API pid_t sbx_channel_peer_hello_pid(const sbx_channel *ch);

/* ------------------------------------------------------------------ proxy */

typedef struct sbx_channel_proxy sbx_channel_proxy;

/* A filter sees every message on the IO thread before the listener. Return
 * true to consume it (the proxy frees it; take fds first if wanted). The
 * filter may send on the proxy but must not block. Callbacks optional. */
typedef struct sbx_message_filter {
    bool (*on_message)(void *ctx, sbx_channel_proxy *proxy, sbx_message *msg);
    void (*on_connected)(void *ctx, pid_t peer_pid);
    void (*on_error)(void *ctx, int error);
    void *ctx;
} sbx_message_filter;

typedef struct sbx_channel_proxy_options {
    /* Call the listener on the IO thread instead of queueing for
     * sbx_channel_proxy_dispatch. */
    bool listener_on_io_thread;
} sbx_channel_proxy_options;

/* Run a channel on `fd` (taken) on a new IO thread. Filters (copied, up to
 * 16) are installed before the thread starts. The caller owns *out. */
SBX_API int sbx_channel_proxy_new(int fd, const sbx_channel_options *opts,
                                  const sbx_channel_listener *listener,
                                  const sbx_message_filter *filters, size_t nfilters,
                                  const sbx_channel_proxy_options *popts,
                                  sbx_channel_proxy **out);
/* Stop the IO thread, close the channel, free queued messages. No callback
 * runs after it returns. NULL is a no-op. No other thread may be inside a
 * proxy call (send, send_sync, dispatch) when it is called. */
SBX_API void sbx_channel_proxy_free(sbx_channel_proxy *proxy);
/* Thread-safe sends (same contract as sbx_channel_send / _send_sync; the
 * sync form may not be called on the IO thread: SBX_ERROR_WRONG_STATE). */
SBX_API int sbx_channel_proxy_send(sbx_channel_proxy *proxy, sbx_message *msg);
SBX_API int sbx_channel_proxy_send_sync(sbx_channel_proxy *proxy, sbx_message *msg, int timeout_ms,
                                        sbx_message **reply);
/* The listener side: deliver queued events (connected, messages by
 * priority, error) to the listener, waiting up to timeout_ms (0: don't
 * wait, < 0: forever) for the first. Returns how many were delivered, or
 * the channel error once the error event was delivered. One thread. */
SBX_API int sbx_channel_proxy_dispatch(sbx_channel_proxy *proxy, int timeout_ms);
/* Readable while events wait for sbx_channel_proxy_dispatch (borrowed). */
SBX_API int sbx_channel_proxy_event_fd(const sbx_channel_proxy *proxy);
SBX_API pid_t sbx_channel_proxy_peer_pid(const sbx_channel_proxy *proxy);

SBX_END_DECLS

#endif
