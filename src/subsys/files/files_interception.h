/* sbx internal — files subsystem: its TARGET face for the trap backend.
 *
 * sbx_files_trap_register() walks the one syscall table
 * (files_syscalls.h): every REFUSED entry becomes sbx_trap_refuse(nr,
 * errno) (failed in the kernel filter), every BROKERED entry a trap handler
 * that decodes the call exactly as the notify decoder reads its registers
 * (which argument is the path, the dirfd, the flags, the mode), pre-checks
 * an absolute path against the read-only local policy copy (an explicit
 * deny rule fails fast with EACCES, no IPC), and otherwise makes one cross
 * call (files_ipc.h) carrying the syscall number, the calling thread's tid,
 * the dirfd as a handle and the path as the caller wrote it: the broker
 * resolves it against that thread's cwd / dirfd and decides again. The
 * answer is the broker's fd, value or -errno; a NATIVE answer (only given
 * when Landlock confines the target) is re-issued with sbx_trap_native.
 *
 * Served over IPC: every BROKERED entry (open family, access family,
 * stat family, readlink, rename family, mkdir, unlink, rmdir, truncate,
 * chmod family, utimensat with a path, chdir: the broker's O_PATH fd is
 * fchdir()ed into) except openat2 with resolve flags and utimensat with a
 * NULL path (futimens), which are forwarded to the notify base in ranged
 * mode, else re-issued natively when allowed, else fail with ENOSYS.
 * getcwd is issued natively (else forwarded, else IPC GETCWD) and the
 * kernel's "(unreachable)" prefix for a cwd outside the root dropped.
 * Buffers the kernel would fill (struct stat, struct statx, readlink's
 * bytes) are written only from a successful reply, exactly as many bytes
 * as the kernel writes (docs/trap.md).
 *
 * Everything the handlers do is async-signal-safe (they run in SIGSYS). */
#ifndef SBX_SUBSYS_FILES_INTERCEPTION_H
#define SBX_SUBSYS_FILES_INTERCEPTION_H

#include <stdint.h>

/* Register the handlers and refusals with the trap engine (before
 * sbx_trap_install). 0 or the engine's negative code. Not thread-safe. */
int sbx_files_trap_register(void);

typedef struct sbx_files_trap_stats {
    uint64_t brokered;   /* cross calls made */
    uint64_t prechecked; /* failed fast by the local pre-check */
    uint64_t native;     /* re-issued natively */
    uint64_t hinted;     /* sent to the broker without a native attempt (a hint) */
} sbx_files_trap_stats;
void sbx_files_trap_get_stats(sbx_files_trap_stats *out);

#endif
