/* sbx internal — files subsystem: path core (broker side).
 *
 * Every path a target hands the broker goes through here before a policy
 * decision: resolved the way the target's kernel would see it (relative
 * paths against the target's cwd, *at paths against its dirfd, /proc/self
 * and /proc/thread-self as the target's), then canonicalised lexically.
 * The decision is made on the canonical string and the operation
 * (files_ops.h) is performed on the same string, so what was matched is what
 * is reached.
 *
 * Canonical form: absolute, no "." or ".." components, no "//", at most
 * SBX_FILES_PATH_MAX - 1 bytes, every component at most NAME_MAX bytes. A
 * trailing "/" is kept when the input ended in "/", "/." or "/.." (it means
 * "must be a directory"), except for "/" itself. ".." is resolved lexically
 * ("/a/link/.." is "/a"): the broker then reaches "/a", the object it
 * decided on, even though the kernel would have gone through the link.
 *
 * All functions are pure or read only /proc; none allocates. Thread-safe. */
#ifndef SBX_SUBSYS_FILES_PATH_H
#define SBX_SUBSYS_FILES_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "subsys/files/files_ops.h"

#define SBX_FILES_PATH_MAX 4096 /* bytes including the NUL, like PATH_MAX */

/* Canonicalise the absolute path in[0..len). Writes a NUL-terminated result
 * to out[0..cap) and returns its length (>= 1). Errors: -ENOENT (empty),
 * -EINVAL (not absolute, or a NUL inside in[0..len)), -ENAMETOOLONG (input
 * of SBX_FILES_PATH_MAX bytes or more, a component over NAME_MAX, or a
 * result that does not fit cap or SBX_FILES_PATH_MAX). out may not alias in. */
int sbx_files_path_canon(const char *in, size_t len, char *out, size_t cap);

/* Canonicalise rel[0..rel_len) taken relative to the canonical absolute
 * directory `base` (rel may itself be absolute: base is then ignored).
 * Same results and errors as sbx_files_path_canon; an empty rel is -ENOENT. */
int sbx_files_path_join(const char *base, const char *rel, size_t rel_len, char *out, size_t cap);

/* In a canonical path, replace a leading "/proc/self" component with
 * "/proc/<pid>" and "/proc/thread-self" with "/proc/<pid>/task/<tid>", in
 * place (path has room for cap bytes). Returns the new length, or
 * -ENAMETOOLONG. Other paths are left alone. */
int sbx_files_path_rewrite_proc_self(char *path, size_t cap, pid_t pid, pid_t tid);

/* Split a canonical path into its parent (path[0..*parent_len), "/" has
 * parent_len 1 and itself as parent) and its last component
 * (*name, *name_len; empty for "/"). *trailing_slash says whether the path
 * ended with "/" (the name excludes it). */
void sbx_files_path_split(const char *path, size_t len, size_t *parent_len, const char **name,
                          size_t *name_len, bool *trailing_slash);

/* Is `path` equal to, or below, the canonical directory `dir`? (A trailing
 * slash on either is ignored.) */
bool sbx_files_path_is_under(const char *path, const char *dir);

/* ---- resolution against a target's cwd / dirfd ---- */

/* A target task as the broker sees it. proc_fd is an O_PATH|O_DIRECTORY fd
 * of /proc/<tid> opened by the broker: every read of the target's cwd, fds
 * and root goes through it, so a pid reused after the task died cannot
 * redirect the broker to another process (the fd stays bound to the dead
 * task and its lookups fail). Borrowed by every call. */
typedef struct sbx_files_task {
    int proc_fd;
    pid_t pid; /* thread-group id, for /proc/self */
    pid_t tid; /* thread id, for /proc/thread-self */
} sbx_files_task;

#define SBX_FILES_AT_FDCWD (-100)

/* The name of the target's `dirfd` (or cwd for SBX_FILES_AT_FDCWD) under
 * its /proc/<pid>/task/<tid> directory: "cwd" or "fd/<n>". 0, or -EBADF
 * for another negative dirfd. */
#define SBX_FILES_TASK_LINK_MAX 32

/* Is the thread behind pidfd (pidfd_open(tid, PIDFD_THREAD)) still the
 * holder of its tid (alive, or a zombie not yet released)? A pidfd
 * refers to that very task, never to a later one with the same tid, so a
 * cached handle of a thread stays usable exactly while this holds.
 * -1: false (no pidfd: never reuse). One pidfd_send_signal(2) of signal
 * 0; errno is kept. */
bool sbx_files_pidfd_alive(int pidfd);
/* pidfd_open(tid, PIDFD_THREAD), or -errno. */
int sbx_files_thread_pidfd(pid_t tid);
int sbx_files_task_link(int dirfd, char link[SBX_FILES_TASK_LINK_MAX]);

/* The canonical path of the target's directory `dirfd` (or its cwd for
 * SBX_FILES_AT_FDCWD), verified: the name is reopened — in the broker's
 * own namespace, else under the target's root — and must reach the same
 * inode as the target's fd. Returns the length written to out, or
 * -EBADF (no such fd), -ENOTDIR (not a directory, or not a filesystem
 * object at all), -ENOENT (deleted or unreachable: the name does not lead
 * back to it), -ENAMETOOLONG. */
int sbx_files_task_dir_path(const sbx_files_task *task, int dirfd, char *out, size_t cap);

/* Is the target's directory `dirfd` (or its cwd) inside its own view:
 * does `name` (its canonical name, from sbx_files_task_dir_path), opened
 * under the target's root without following symlinks, reach the same
 * inode on the same mount? false for a directory the broker opened
 * outside the view (a brokered chdir, a brokered dirfd), and whenever it
 * cannot be told. A relative path against such a base must not be left
 * to the kernel in the target: it resolves physically in the broker's
 * tree, outside the view (see sbx_files_dispatch's callers). */
bool sbx_files_task_dir_in_view(const sbx_files_task *task, int dirfd, const char *name);

/* The mounts of a target's own mount namespace, as the ids its
 * /proc/<pid>/mountinfo lists (sorted): a directory on one of them is
 * inside its view, and the kernel in the target resolves a path relative
 * to it within the view's tree. A target cannot mount or unmount, so the
 * set is read once per target. */
#define SBX_FILES_VIEW_MOUNTS_MAX 512
typedef struct sbx_files_view_mounts {
    size_t n;
    uint32_t id[SBX_FILES_VIEW_MOUNTS_MAX];
} sbx_files_view_mounts;

/* Read "mountinfo" under proc_fd (an O_PATH fd of /proc/<tid> or
 * /proc/<pid>/task/<tid>). 0, -E2BIG (more mounts than fit: the caller
 * falls back to sbx_files_task_dir_in_view), -ESRCH (malformed) or the
 * -errno of the open. */
int sbx_files_view_mounts_read(int proc_fd, sbx_files_view_mounts *out);

/* The cheap form of sbx_files_task_dir_in_view: is the target's directory
 * `dirfd` (or its cwd) on one of the mounts of m? false when it cannot be
 * told. */
bool sbx_files_task_dir_on_mounts(const sbx_files_task *task, int dirfd,
                                  const sbx_files_view_mounts *m);

/* Resolve the target's path argument path[0..len) (a private copy; no NUL
 * inside) given with `dirfd` to a canonical absolute path with /proc/self
 * rewritten. An empty path is -ENOENT (callers handle AT_EMPTY_PATH
 * before). Errors as sbx_files_task_dir_path and sbx_files_path_canon. */
int sbx_files_resolve(const sbx_files_task *task, int dirfd, const char *path, size_t len, char *out,
                      size_t cap);

/* ---- /proc/<tid>/status ---- */

#define SBX_FILES_NSPID_MAX 33 /* pid namespaces nest at most 32 deep, plus the root */

/* What the broker needs from a thread's status file. */
typedef struct sbx_files_proc_status {
    pid_t tgid;          /* "Tgid:" as the reader's pid namespace sees it */
    size_t nspid_count;  /* "NSpid:": outermost (the reader's view) first */
    pid_t nspid[SBX_FILES_NSPID_MAX];
    pid_t ns_tid;        /* nspid[nspid_count - 1]: the tid the thread itself sees */
    sbx_files_creds creds; /* fsuid, fsgid (4th Uid/Gid field), groups, umask
                              (022 when the kernel has no "Umask:" line) */
} sbx_files_proc_status;

/* Parse the text of a status file, buf[0..len) (need not be
 * NUL-terminated; never written). Tgid, NSpid, Uid and Gid lines are
 * required, each once, with well-formed decimal fields; Groups and Umask
 * are optional. Returns 0, -ESRCH (malformed or incomplete: treated as a
 * task that went away) or -E2BIG (more groups than SBX_FILES_MAX_GROUPS:
 * refused rather than dropped). Pure, no allocation, async-signal-safe. */
int sbx_files_proc_status_parse(const char *buf, size_t len, sbx_files_proc_status *out);

/* Read "status" under proc_fd (an O_PATH fd of /proc/<tid> or
 * /proc/<pid>/task/<tid>) with one read into a stack buffer and parse it.
 * Errors as the parse, or -errno of the open. Thread-safe. */
int sbx_files_proc_status_read(int proc_fd, sbx_files_proc_status *out);

#endif
