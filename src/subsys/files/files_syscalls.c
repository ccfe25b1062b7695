/* sbx — files subsystem: the syscall table (see files_syscalls.h and the
 * published copy in docs/files.md). */
#include "subsys/files/files_syscalls.h"

#include <errno.h>
#include <sys/syscall.h>

#define Q "QUERY, READONLY, ANY"
#define R "READONLY (read), ANY"
#define W "ANY"
#define D "DIR_ANY, ANY"
#define B(nr_, name_, op_, sem_) { nr_, name_, SBX_FILES_SC_BROKERED, op_, 0, -1, sem_ }
#define X(nr_, name_, err_, null_) { nr_, name_, SBX_FILES_SC_REFUSED, 0, err_, null_, "-" }
#define N(nr_, name_, why_) { nr_, name_, SBX_FILES_SC_NATIVE, 0, 0, -1, why_ }

const sbx_files_syscall sbx_files_syscalls[] = {
    B(SYS_open, "open", SBX_FILES_CALL_OPEN, R),
    B(SYS_openat, "openat", SBX_FILES_CALL_OPEN, R),
    B(SYS_openat2, "openat2", SBX_FILES_CALL_OPEN, R),
    B(SYS_creat, "creat", SBX_FILES_CALL_OPEN, W),
    B(SYS_stat, "stat", SBX_FILES_CALL_STAT, Q),
    B(SYS_lstat, "lstat", SBX_FILES_CALL_STAT, Q),
    B(SYS_newfstatat, "newfstatat", SBX_FILES_CALL_STAT, Q),
    B(SYS_statx, "statx", SBX_FILES_CALL_STATX, Q),
    B(SYS_access, "access", SBX_FILES_CALL_ACCESS, Q),
    B(SYS_faccessat, "faccessat", SBX_FILES_CALL_ACCESS, Q),
    B(SYS_faccessat2, "faccessat2", SBX_FILES_CALL_ACCESS, Q),
    B(SYS_readlink, "readlink", SBX_FILES_CALL_READLINK, Q),
    B(SYS_readlinkat, "readlinkat", SBX_FILES_CALL_READLINK, Q),
    B(SYS_rename, "rename", SBX_FILES_CALL_RENAME, W),
    B(SYS_renameat, "renameat", SBX_FILES_CALL_RENAME, W),
    B(SYS_renameat2, "renameat2", SBX_FILES_CALL_RENAME, W),
    B(SYS_mkdir, "mkdir", SBX_FILES_CALL_MKDIR, D),
    B(SYS_mkdirat, "mkdirat", SBX_FILES_CALL_MKDIR, D),
    B(SYS_unlink, "unlink", SBX_FILES_CALL_UNLINK, W),
    B(SYS_unlinkat, "unlinkat", SBX_FILES_CALL_UNLINK, W),
    B(SYS_rmdir, "rmdir", SBX_FILES_CALL_RMDIR, D),
    B(SYS_chdir, "chdir", SBX_FILES_CALL_CHDIR, "READONLY, ANY (as opening the directory for reading)"),
    B(SYS_getcwd, "getcwd", SBX_FILES_CALL_GETCWD, "- (the caller's own cwd; no rule needed)"),
    B(SYS_truncate, "truncate", SBX_FILES_CALL_TRUNCATE, W),
    B(SYS_chmod, "chmod", SBX_FILES_CALL_CHMOD, W),
    B(SYS_fchmodat, "fchmodat", SBX_FILES_CALL_CHMOD, W),
    B(SBX_FILES_SYS_FCHMODAT2, "fchmodat2", SBX_FILES_CALL_CHMOD, W),
    { SYS_utimensat, "utimensat", SBX_FILES_SC_BROKERED, SBX_FILES_CALL_UTIMENS, 0, 1, W },
    /* The long tail: refused until a rule can sensibly grant it. */
    X(SYS_link, "link", EPERM, -1),
    X(SYS_linkat, "linkat", EPERM, -1),
    X(SYS_symlink, "symlink", EPERM, -1),
    X(SYS_symlinkat, "symlinkat", EPERM, -1),
    X(SYS_chown, "chown", EPERM, -1),
    X(SYS_lchown, "lchown", EPERM, -1),
    X(SYS_fchownat, "fchownat", EPERM, -1),
    X(SYS_utime, "utime", EPERM, -1),
    X(SYS_utimes, "utimes", EPERM, -1),
    X(SYS_futimesat, "futimesat", EPERM, -1),
    X(SYS_mknod, "mknod", EPERM, -1),
    X(SYS_mknodat, "mknodat", EPERM, -1),
    X(SYS_setxattr, "setxattr", EPERM, -1),
    X(SYS_lsetxattr, "lsetxattr", EPERM, -1),
    X(SYS_removexattr, "removexattr", EPERM, -1),
    X(SYS_lremovexattr, "lremovexattr", EPERM, -1),
    X(SYS_getxattr, "getxattr", ENOTSUP, -1),
    X(SYS_lgetxattr, "lgetxattr", ENOTSUP, -1),
    X(SYS_listxattr, "listxattr", ENOTSUP, -1),
    X(SYS_llistxattr, "llistxattr", ENOTSUP, -1),
    X(463, "setxattrat", EPERM, -1),
    X(464, "getxattrat", ENOTSUP, -1),
    X(465, "listxattrat", ENOTSUP, -1),
    X(466, "removexattrat", EPERM, -1),
    X(SYS_inotify_add_watch, "inotify_add_watch", EACCES, -1),
    X(SYS_fanotify_init, "fanotify_init", EPERM, -1),
    X(SYS_fanotify_mark, "fanotify_mark", EPERM, -1),
    X(SYS_name_to_handle_at, "name_to_handle_at", EPERM, -1),
    X(SYS_open_by_handle_at, "open_by_handle_at", EPERM, -1),
    X(SYS_statfs, "statfs", EACCES, -1),
    X(SYS_chroot, "chroot", EPERM, -1),
    X(SYS_uselib, "uselib", EPERM, -1),
    X(SYS_acct, "acct", EPERM, -1),
    X(SYS_swapon, "swapon", EPERM, -1),
    X(SYS_swapoff, "swapoff", EPERM, -1),
    X(SYS_mount, "mount", EPERM, -1),
    X(SYS_umount2, "umount2", EPERM, -1),
    X(SYS_pivot_root, "pivot_root", EPERM, -1),
    X(SYS_quotactl, "quotactl", EPERM, -1),
    X(SYS_open_tree, "open_tree", EPERM, -1),
    X(467, "open_tree_attr", EPERM, -1),
    X(SYS_move_mount, "move_mount", EPERM, -1),
    X(SYS_fsopen, "fsopen", EPERM, -1),
    X(SYS_fspick, "fspick", EPERM, -1),
    X(SYS_mount_setattr, "mount_setattr", EPERM, -1),
    /* io_uring would perform path calls outside any filter. */
    X(SYS_io_uring_setup, "io_uring_setup", EPERM, -1),
    X(SYS_io_uring_enter, "io_uring_enter", EPERM, -1),
    X(SYS_io_uring_register, "io_uring_register", EPERM, -1),
    /* Not intercepted. */
    N(SYS_execve, "execve", "native only; bounded by the view and Landlock's execute right"),
    N(SYS_execveat, "execveat", "native only; bounded by the view and Landlock's execute right"),
    N(SYS_fchdir, "fchdir", "fd only"),
    N(SYS_getdents64, "getdents64", "fd only (works on brokered directory fds)"),
    N(SYS_fstat, "fstat", "fd only"),
};

const size_t sbx_files_syscall_count = sizeof sbx_files_syscalls / sizeof sbx_files_syscalls[0];

const sbx_files_syscall *sbx_files_syscall_find(int nr)
{
    for (size_t i = 0; i < sbx_files_syscall_count; i++)
        if (sbx_files_syscalls[i].nr == nr)
            return &sbx_files_syscalls[i];
    return NULL;
}
