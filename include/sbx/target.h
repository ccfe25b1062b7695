/* sbx — target services (the seed's TargetServices), for programs linked
 * with libsbx that run as sbx targets.
 *
 * Every target finds its broker-provided fds at fixed numbers, also named
 * by environment variables (so a program that moved them can still say
 * where they are):
 *
 *   fd 3  SBX_TARGET_FD_SECTION  env SBX_SECTION_FD   shared-memory section (memfd)
 *   fd 4  SBX_TARGET_FD_BROKER   env SBX_BROKER_FD    the target's fd socket to the broker
 *   fd 5  SBX_TARGET_FD_CHANNEL  env SBX_CHANNEL_FD   optional application channel
 *
 * An fd that the broker did not provide is absent (closed) and its
 * variable unset. Fds shared with sbx_policy_share_fd() use numbers >= 3
 * chosen by the policy; they must not collide with these three when the
 * corresponding extra fd is provided (spawn refuses the collision). */
#ifndef SBX_TARGET_H
#define SBX_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include <sbx/export.h>

SBX_BEGIN_DECLS

#define SBX_TARGET_FD_SECTION 3
#define SBX_TARGET_FD_BROKER 4
#define SBX_TARGET_FD_CHANNEL 5

#define SBX_ENV_SECTION_FD "SBX_SECTION_FD"
#define SBX_ENV_BROKER_FD "SBX_BROKER_FD"
#define SBX_ENV_CHANNEL_FD "SBX_CHANNEL_FD"

/* Find and check the target's broker fds (environment first, then the
 * fixed numbers), map the shared section read-only and open an IPC client
 * on it (include/sbx/ipc.h), which checks the section's header against the
 * file. Returns 0, SBX_ERROR_NOT_FOUND
 * (not running as an sbx target: no section fd), SBX_ERROR_BAD_SECTION
 * (the section fd is not a memfd / fails its header check), or
 * SBX_ERROR_ALREADY_INIT on a second call. Not thread-safe: call once,
 * early, before starting threads. */
SBX_API int sbx_target_init(void);

/* True once sbx_target_init() succeeded. Thread-safe. */
SBX_API bool sbx_target_is_initialized(void);

/* The fds found by sbx_target_init (-1 when absent). Thread-safe after init. */
SBX_API int sbx_target_section_fd(void);
SBX_API int sbx_target_broker_fd(void);
SBX_API int sbx_target_channel_fd(void);

/* The mapped section (NULL before init or when absent) and its size. */
SBX_API const void *sbx_target_section(size_t *size);

typedef struct sbx_channel sbx_channel;
typedef struct sbx_channel_listener sbx_channel_listener;

/* The application channel the broker created (sbx_spawn_options.channel),
 * as a connected sbx_channel (HELLO sent; the peer is trusted because the
 * broker handed us the fd: SBX_CHANNEL_PEER_UNVERIFIED, see docs/channel.md).
 * Works with or without sbx_target_init(). The fd is taken: a second call
 * returns SBX_ERROR_NOT_FOUND. `listener` may be NULL. Returns 0 and *out
 * (free with sbx_channel_free), SBX_ERROR_NOT_FOUND (no channel) or a
 * negative code. Not thread-safe. */
SBX_API int sbx_target_channel(const sbx_channel_listener *listener, sbx_channel **out);

/* Engage the lockdown phase irreversibly: install the delayed mitigations
 * and the interception filter registered by the interception engine (see
 * docs/broker.md, "seams"). Returns 0, SBX_ERROR_WRONG_STATE before
 * sbx_target_init, SBX_ERROR_ALREADY_INIT when already lowered, or a
 * negative errno from the kernel. Affects the calling thread and every
 * thread it creates afterwards (seccomp TSYNC is used, so all existing
 * threads too). */
SBX_API int sbx_target_lower_token(void);

/* True once sbx_target_lower_token() succeeded. */
SBX_API bool sbx_target_is_lowered(void);

SBX_END_DECLS

#endif
