/* sbx internal — interception, notify backend (SECCOMP_RET_USER_NOTIF).
 *
 * Target side: a filter built in the broker (libseccomp, before fork) and
 * installed by the child just before exec (async-signal-safe). Every files
 * syscall the subsystem declares (files_syscalls.h) is sent to the broker;
 * the refused ones fail with their errno in the kernel; other ABIs (i386
 * via int 0x80, x32) kill the process.
 *
 * Broker side: sbx_notify_serve() answers one target's notifications: it
 * copies the path arguments out of the target with process_vm_readv
 * (bounded, NUL-terminated, page by page, partial reads rejected), resolves
 * them against the target's cwd / dirfds, re-checks that the notification
 * is still valid (so the task, and the /proc/<tid> fd used to read its
 * state, are the caller's), dispatches through files_dispatcher, and
 * answers with a value, an fd (SECCOMP_IOCTL_NOTIF_ADDFD with
 * SECCOMP_ADDFD_FLAG_SEND, O_CLOEXEC as the caller asked), or CONTINUE —
 * only for native-view calls and only when `landlock` says the target is
 * confined to its view. Works for static and dynamic binaries alike. */
#ifndef SBX_TARGET_INTERCEPTION_NOTIFY_H
#define SBX_TARGET_INTERCEPTION_NOTIFY_H

#include <linux/filter.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "subsys/files/files_dispatcher.h"

/* Build the filter program. Returns 0 and fills *prog (free with
 * sbx_notify_filter_free), or a negative errno. Not async-signal-safe:
 * call before fork. */
int sbx_notify_filter_build(struct sock_fprog *prog);
/* The same, and with pass_magic a brokered call whose 6th argument is
 * SBX_TRAP_MAGIC (the trap backend's native re-issue) is allowed without a
 * notification. Only for targets Landlock confines to their view and whose
 * policy has no deny rule inside it (the re-issue is then bounded by the
 * kernel exactly as CONTINUE is). */
int sbx_notify_filter_build_opts(struct sock_fprog *prog, bool pass_magic);
/* The same, and `extra` (if not NULL) adds more rules to the libseccomp
 * context before export: the broker adds the baseline's denials as
 * SCMP_ACT_NOTIFY for targets whose denials are reported
 * (sbx_notify_config.on_denied). With `extra`, calls of other ABIs are
 * notified as well (on_denied refuses them) instead of killing. */
int sbx_notify_filter_build_ex(struct sock_fprog *prog, bool pass_magic,
                               int (*extra)(scmp_filter_ctx ctx, void *ud), void *ud);
void sbx_notify_filter_free(struct sock_fprog *prog);

/* In the target (between fork and exec: async-signal-safe, no allocation):
 * set no_new_privs and install prog with a new listener. Returns the
 * listener fd (to hand to the broker, then close) or a negative errno. */
int sbx_notify_filter_install(const struct sock_fprog *prog);

typedef struct sbx_notify_config {
    int listener_fd;                      /* borrowed */
    const sbx_files_dispatcher *files;    /* borrowed */
    bool landlock;      /* the target is Landlock-confined to its view: CONTINUE native calls */
    bool target_creds;  /* perform calls with the target's fsuid/fsgid/groups/umask */
    bool stable_creds;  /* the target cannot change its ids or groups (its own user
                           namespace, one mapped uid/gid, no capabilities): read them
                           once per thread; the umask is still read for creating calls */
    int stop_fd;        /* readable: return early (-1: none) */
    /* Called for a notification that is not a files call (the baseline's
     * denials in a reporting filter): the call fails with EPERM. NULL:
     * such notifications fail with ENOSYS, unreported. */
    void (*on_denied)(void *ctx, pid_t tid, int nr, uint32_t arch);
    void *denied_ctx;
    /* Brokered chdir (the broker cannot change another task's cwd, but a
     * task sharing its fs_struct can): fs_peer_fd is the broker's end of a
     * SOCK_SEQPACKET pair whose other end a task of the target serves with
     * sbx_notify_fs_peer_answer (spawn: the target's init, which forks the
     * program with CLONE_FS), fs_peer_pid that task as the broker's pid
     * namespace numbers it. A chdir into a directory the kernel in the
     * target cannot reach is performed only for callers that share
     * fs_peer_pid's fs_struct (kcmp KCMP_FS), by sending the peer an O_PATH
     * fd of the directory to fchdir into. fs_peer_pid 0: no peer (the fd
     * is ignored; such a chdir is refused). Borrowed; used by the serving
     * thread only. */
    int fs_peer_fd;
    pid_t fs_peer_pid;
    /* The program the peer forked with CLONE_FS (0: none): an unprivileged
     * broker may not kcmp the peer itself (init never exec'd and is not
     * dumpable, so its mm belongs to the broker's user namespace), and
     * then compares with the program instead (see shares_fs_with_peer). */
    pid_t fs_peer_prog;
} sbx_notify_config;

/* The fs peer's protocol: a request (type SBX_NOTIFY_FS_CHDIR, seq, one
 * directory fd by SCM_RIGHTS) and its answer (type SBX_NOTIFY_FS_DONE,
 * the same seq, err = 0 or fchdir's errno). */
#define SBX_NOTIFY_FS_CHDIR 0x43484452u /* "CHDR" */
#define SBX_NOTIFY_FS_DONE 0x444f4e45u  /* "DONE" */
typedef struct sbx_notify_fs_msg {
    uint32_t type;
    uint32_t seq;
    int32_t err;
    int32_t pad;
} sbx_notify_fs_msg;

/* In the fs peer (the target's init: async-signal-safe, no allocation):
 * answer one queued request on sock — fchdir into the fd it carries and
 * report the result; anything malformed is answered EINVAL and its fds
 * closed. Returns 0, or -errno when sock failed (hung up: stop serving). */
int sbx_notify_fs_peer_answer(int sock);

/* Serve until every task using the filter is gone (returns 0), stop_fd is
 * readable (0), or the listener fails (-errno). Handles one notification at
 * a time; run one per target (or per listener) in its own thread. Without
 * a stop fd it waits in SECCOMP_IOCTL_NOTIF_RECV itself (no poll first, a
 * syscall less per notification): only the filter's last user ending, or
 * the listener failing, stops it. */
int sbx_notify_serve(const sbx_notify_config *cfg);

/* A notification and a response buffer of the sizes this kernel uses
 * (SECCOMP_GET_NOTIF_SIZES, never less than our headers'), zeroed; the
 * caller frees both. 0 or -errno (nothing allocated then). */
int sbx_notify_buffers(struct seccomp_notif **req, size_t *req_size,
                       struct seccomp_notif_resp **resp, size_t *resp_size);

#endif
