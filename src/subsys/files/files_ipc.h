/* sbx internal — files subsystem: its broker-side IPC services (the trap
 * backend's way in; the notify backend decodes syscalls itself).
 *
 * A target's trap handler decodes an intercepted path call into typed
 * arguments and makes one cross call; the handler here rebuilds a private
 * sbx_files_call from them — the path resolved against the CALLING
 * thread's cwd / dirfd through files_path, exactly as notify does — and
 * runs the same sbx_files_dispatch (same decisions, same audit records).
 * The target's own pre-check is never trusted: every call is decided again
 * from the broker's private policy copy.
 *
 * Wire (every tag starts with u32 nr, u32 tid, handle dirfd, string path):
 *   OPEN, PATH  (nr, tid, dirfd, path, u32 flags, u32 mode)
 *   ATTR        (nr, tid, dirfd, path, u32 flags, u32 mode, u64 value, inout buf)
 *   RENAME      (nr, tid, olddirfd, oldpath, handle newdirfd, string newpath, u32 flags)
 *   CHDIR       (nr, tid, dirfd, path, u32 flags = 0, u32 mode = 0) -> an O_PATH fd of
 *               the directory, which the target's handler makes its cwd (fchdir)
 *   GETCWD      (nr, tid, inout buf) -> the calling thread's cwd and its NUL in
 *               buf (1..PATH_MAX bytes), ext[1] its length with the NUL
 * nr: the syscall (a BROKERED entry of sbx_files_syscalls that the tag
 * serves; another tag's call is EINVAL, an unserved one ENOSYS); tid: the
 * calling thread's id as the target sees it (gettid()); dirfd: the
 * target's dirfd (AT_FDCWD = -100 sign-extended; ignored for calls that
 * have none). PATH: flags = open flags / access mode / AT_REMOVEDIR /
 * fchmodat2's AT flags, mode = mode (faccessat2: its AT flags). ATTR:
 * flags = the AT_* word, mode = statx's mask, value = truncate's length,
 * buf = the result (struct stat, struct statx, readlink's bytes: the size
 * the target can take, 1..PATH_MAX) or utimensat's two timespecs (size 0:
 * NULL, now). "" with AT_EMPTY_PATH stats the fd itself.
 * Reply: outcome 0; ext[0] = SBX_FILES_IPC_RES_*; status = errno when the
 * answer is an error; ext[1] the value (readlink: bytes written to buf);
 * a returned fd for RES_FD. */
#ifndef SBX_SUBSYS_FILES_IPC_H
#define SBX_SUBSYS_FILES_IPC_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include <sbx/ipc.h>

#include "subsys/files/files_dispatcher.h"

/* In the sbx-reserved range (below SBX_IPC_TAG_USER), clear of the builtins. */
#define SBX_FILES_IPC_TAG_OPEN 0x0100u /* open, openat, creat, openat2 (no resolve flags) -> fd */
#define SBX_FILES_IPC_TAG_PATH 0x0101u /* access*, mkdir*, unlink*, rmdir, chmod* -> value */
#define SBX_FILES_IPC_TAG_ATTR 0x0102u /* stat family, readlink*, truncate, utimensat -> value + buf */
#define SBX_FILES_IPC_TAG_RENAME 0x0103u /* rename, renameat, renameat2 -> value */
#define SBX_FILES_IPC_TAG_CHDIR 0x0104u  /* chdir -> O_PATH directory fd (the handler fchdir()s) */
#define SBX_FILES_IPC_TAG_GETCWD 0x0105u /* getcwd (no native re-issue) -> length + buf */

/* ext[0] of a reply. */
#define SBX_FILES_IPC_RES_ERROR 0u  /* status holds the errno */
#define SBX_FILES_IPC_RES_VALUE 1u  /* ext[1] holds the (non-negative) result */
#define SBX_FILES_IPC_RES_FD 2u     /* the reply carries the fd */
#define SBX_FILES_IPC_RES_NATIVE 3u /* run it natively (only when the broker said Landlock holds) */

/* A memo of the target's threads last found (ns tid -> the broker's
 * /proc/<pid>/task/<tid> and its credentials): finding a thread means
 * scanning /proc and parsing status, which costs more than the call it
 * serves. An entry is used only while its task is alive (its thread pidfd
 * says so, as for the notify server's cache: a pidfd never refers to a
 * later thread with the same tid), and never for a call that creates
 * something (those need the umask of the moment: a fresh scan). The
 * credentials are stable for a live task: in its user namespace the
 * target holds one mapped uid and gid and no capability to change ids or
 * groups. */
#define SBX_FILES_IPC_MEMO_SIZE 8
typedef struct sbx_files_ipc_memo_entry {
    pid_t ns_tid; /* 0: empty */
    pid_t pid, tid;
    int task_fd;
    int pidfd; /* of the thread (sbx_files_thread_pidfd) */
    int root_fd; /* its root (O_PATH), opened by the first call that needs it; -1 */
    sbx_files_creds creds;
} sbx_files_ipc_memo_entry;
typedef struct sbx_files_ipc_memo {
    pthread_mutex_t lock;
    unsigned next; /* round-robin victim */
    sbx_files_ipc_memo_entry e[SBX_FILES_IPC_MEMO_SIZE];
    /* The target's own mounts, read once (it cannot mount): 0 not yet,
     * 1 `mounts` is valid (and no longer written), -1 unavailable. */
    int mounts_state;
    sbx_files_view_mounts mounts;
} sbx_files_ipc_memo;
void sbx_files_ipc_memo_init(sbx_files_ipc_memo *m);
/* Close the memo's fds. */
void sbx_files_ipc_memo_destroy(sbx_files_ipc_memo *m);

/* What a handler needs to know about the target it serves: the server's
 * target ctx (sbx_ipc_info_target_ctx) must point at one of these. */
typedef struct sbx_files_ipc_target {
    const sbx_files_dispatcher *files; /* borrowed */
    pid_t pid;         /* the target's process as the broker sees it */
    bool landlock;     /* confined to its view by Landlock: NATIVE may be answered */
    bool target_creds; /* act with the target's fsuid/fsgid/groups */
    sbx_files_ipc_memo *memo; /* borrowed, may be NULL (every call scans) */
} sbx_files_ipc_target;

/* The tag that serves syscall nr, or 0 (every entry that is not
 * BROKERED). Pure. */
uint32_t sbx_files_ipc_tag_for(int nr);

/* Register the files services in `d` (before any server uses it).
 * 0 or a negative code (sbx_ipc_dispatcher_register's). */
int sbx_files_ipc_register(sbx_ipc_dispatcher *d);

#endif
