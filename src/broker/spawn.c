/* sbx — sbx_broker_spawn: the seed's SpawnTarget / TargetProcess::Create.
 *
 * The broker clones a child (the target's pid-1 init) into new user,
 * mount, pid, net, ipc, uts and cgroup namespaces. The child blocks on the
 * sync socket ("suspended") until the broker has written its uid/gid maps,
 * put it in its cgroup and run the section hook; then it builds the native
 * view, drops its identity and capabilities, applies Landlock and the
 * baseline seccomp filter, and forks the program's process, which installs
 * its fds, its limits and the interception filter and execs. Every failure
 * is reported back as (step, errno). Everything the child needs is computed
 * here first: between clone and exec nothing allocates. */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>
#include <sbx/target.h>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/log.h"
#include "broker/broker_internal.h"
#include "broker/runtime.h"
#include "target/interception/notify.h"

extern char **environ;

/* ---- Landlock (uapi header here predates ABI 4+) ---- */
#define LL_CREATE_VERSION (1U << 0)
#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)
#define LL_FS_TRUNCATE (1ull << 14)
#define LL_FS_IOCTL_DEV (1ull << 15)
#define LL_NET_BIND_TCP (1ull << 0)
#define LL_NET_CONNECT_TCP (1ull << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ull << 0)
#define LL_SCOPE_SIGNAL (1ull << 1)
#define LL_RULE_PATH_BENEATH 1

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};
struct ll_path_beneath {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_RO (LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_RW_NOEXEC                                                                          \
    (LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | \
     LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM |     \
     LL_FS_REFER | LL_FS_TRUNCATE)

static int landlock_abi(void)
{
    long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_VERSION);
    return v < 0 ? 0 : (int)v;
}

/* ---- the child's plan ---- */

enum mkind { M_BIND, M_SYMLINK, M_PROC, M_TMPFS };

typedef struct mount_entry {
    enum mkind kind;
    const char *src;    /* host path (BIND) or link text (SYMLINK) */
    const char *dst;    /* absolute path inside the view */
    bool is_file, writable, exec, dev;
    int tree_fd;        /* the detached clone (made by the broker, or the child), or -1 */
} mount_entry;

#define MAX_MOUNTS (SBX_POLICY_MAX_VIEWS + 32)
#define MAX_FD_PAIRS (SBX_POLICY_MAX_SHARED_FDS + 6)
#define MAX_ENV 512

typedef struct fd_pair {
    int src, dst;
} fd_pair;

typedef struct rlim_entry {
    int res;
    rlim_t v;
} rlim_entry;

typedef struct plan {
    int sync_fd;
    int fs_peer_fd;                   /* init's end of the fs peer socket, or -1 */
    int exec_fd;                      /* write end of the broker's exec pipe (close-on-exec) */
    unsigned fd_base;                 /* every moved fd lands at >= fd_base */
    uid_t uid;
    gid_t gid;
    bool root_broker;
    const char *path;
    char *const *argv;
    char **envp;                      /* room for 5 more entries + NULL; entries not owned */
    size_t n_env;
    const char *cwd;
    fd_pair pairs[MAX_FD_PAIRS];
    size_t n_pairs;
    mount_entry mounts[MAX_MOUNTS];
    size_t n_mounts;
    rlim_entry rl[8];
    size_t n_rl;
    int landlock_abi;                 /* 0: none */
    bool net_lo;
    bool keep_tty;
    const sbx_bpf *baseline;
    const sbx_bpf *nochildren;        /* NULL: children allowed */
    sbx_broker_hooks hooks;
    const sbx_policy *policy;
    int devnull;
    int cg_join[2];                   /* v1 "tasks" files the child joins itself, or -1 */
    void *prog_stack;                 /* the program process's stack until it execs */
    size_t prog_stack_size;
    int prog_sfd;                     /* init's signalfd, closed in the program */
} plan;

static const char *const step_names[SBX_STEP_COUNT_] = {
    [SBX_STEP_NONE] = "none",        [SBX_STEP_OPTIONS] = "options",
    [SBX_STEP_PREPARE] = "prepare",  [SBX_STEP_CGROUP] = "cgroup",
    [SBX_STEP_CLONE] = "clone",      [SBX_STEP_UID_MAP] = "uid_map",
    [SBX_STEP_CGROUP_ATTACH] = "cgroup_attach", [SBX_STEP_SECTION] = "section",
    [SBX_STEP_SYNC] = "sync",        [SBX_STEP_MOUNT] = "mount",
    [SBX_STEP_PIVOT] = "pivot_root", [SBX_STEP_NETWORK] = "network",
    [SBX_STEP_HOSTNAME] = "hostname", [SBX_STEP_IDENTITY] = "identity",
    [SBX_STEP_CAPS] = "capabilities", [SBX_STEP_RLIMIT] = "rlimit",
    [SBX_STEP_LANDLOCK] = "landlock", [SBX_STEP_SECCOMP] = "seccomp",
    [SBX_STEP_FORK] = "fork",        [SBX_STEP_FDS] = "fds",
    [SBX_STEP_SESSION] = "session",  [SBX_STEP_CWD] = "cwd",
    [SBX_STEP_INTERCEPTION] = "interception", [SBX_STEP_EXEC] = "exec",
};

SBX_API const char *sbx_spawn_step_name(sbx_spawn_step step)
{
    if ((int)step < 0 || step >= SBX_STEP_COUNT_ || !step_names[step])
        return "?";
    return step_names[step];
}

/* ================= child side (no allocation from here) ================= */

static void send_msg(int fd, uint32_t type, uint32_t step, int err, int value)
{
    sbx_sync_msg m = { .type = type, .step = step, .err = err, .value = value };
    (void)send(fd, &m, sizeof m, MSG_NOSIGNAL);
}

__attribute__((noreturn)) static void child_fail(const plan *p, sbx_spawn_step step, int err)
{
    send_msg(p->sync_fd, SBX_SYNC_ERROR, (uint32_t)step, err > 0 ? err : EIO, 0);
    _exit(126);
}

#define CHECK(step, expr)                                  \
    do {                                                   \
        if ((expr) < 0)                                    \
            child_fail(p, (step), errno);                  \
    } while (0)

/* mkdir -p; beneath the staging root "/tmp" (which exists) its own
 * component is not made again. */
static int mkdir_p(char *path, mode_t mode)
{
    size_t skip = strncmp(path, "/tmp/", 5) == 0 ? 5 : 1;
    for (char *s = path + skip; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        int r = mkdir(path, mode);
        *s = '/';
        if (r < 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* "<staging><dst>" into buf; the staging root is /tmp of the old root. */
static char *staged(char *buf, size_t size, const char *dst)
{
    sbx_safe_format(buf, size, "/tmp%s", dst);
    return buf;
}

/* The parent of a staged path; `last` holds the parent made last (mounts
 * come sorted, so siblings in /dev or /etc share it): not made twice. */
static int make_parent(char *path, char *last, size_t last_size)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    *slash = '\0';
    int r = 0;
    if (strcmp(path, last) != 0) {
        r = mkdir_p(path, 0755);
        if (r == 0)
            sbx_safe_format(last, last_size, "%s", path);
    }
    *slash = '/';
    return r;
}

/* A detached clone of m's source with the view's mount flags, or -errno.
 * Async-signal-safe (the child's fallback uses it too). */
static int clone_tree(const mount_entry *m)
{
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, m->src,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return -errno;
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_NOSUID };
    if (!m->writable)
        attr.attr_set |= MOUNT_ATTR_RDONLY;
    if (!m->dev)
        attr.attr_set |= MOUNT_ATTR_NODEV;
    if (!m->exec)
        attr.attr_set |= MOUNT_ATTR_NOEXEC;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void build_view(plan *p)
{
    /* Trees the broker could not clone (an unprivileged broker cannot):
     * clone them here, before the staging tmpfs hides anything. */
    for (size_t i = 0; i < p->n_mounts; i++) {
        mount_entry *m = &p->mounts[i];
        if (m->kind != M_BIND || m->tree_fd >= 0)
            continue;
        m->tree_fd = clone_tree(m);
        if (m->tree_fd < 0)
            child_fail(p, SBX_STEP_MOUNT, -m->tree_fd);
    }
    CHECK(SBX_STEP_MOUNT, mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    CHECK(SBX_STEP_MOUNT, mount("sbx-root", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m"));
    char buf[PATH_MAX + 8];
    char last_parent[PATH_MAX + 8] = "/tmp";
    for (size_t i = 0; i < p->n_mounts; i++) {
        mount_entry *m = &p->mounts[i];
        char *dst = staged(buf, sizeof buf, m->dst);
        CHECK(SBX_STEP_MOUNT, make_parent(dst, last_parent, sizeof last_parent));
        switch (m->kind) {
        case M_SYMLINK:
            CHECK(SBX_STEP_MOUNT, symlink(m->src, dst));
            break;
        case M_PROC:
            CHECK(SBX_STEP_MOUNT, mkdir_p(dst, 0555));
            CHECK(SBX_STEP_MOUNT, mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL));
            break;
        case M_TMPFS:
            CHECK(SBX_STEP_MOUNT, mkdir_p(dst, 0755));
            CHECK(SBX_STEP_MOUNT, mount("sbx-tmp", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                        "mode=1777,size=64m"));
            break;
        case M_BIND:
            if (m->is_file) {
                /* A file view inside a read-only directory view (a program
                 * in the working directory) lands on the file that is
                 * already there: nothing to create. A regular file by
                 * mknod: no open file to close. */
                if (mknod(dst, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
                    child_fail(p, SBX_STEP_MOUNT, errno);
            } else {
                CHECK(SBX_STEP_MOUNT, mkdir_p(dst, 0755));
            }
            CHECK(SBX_STEP_MOUNT, syscall(SYS_move_mount, m->tree_fd, "", AT_FDCWD, dst,
                                          MOVE_MOUNT_F_EMPTY_PATH));
            /* tree_fd now names the mounted tree's root: Landlock's rule
             * takes it as is (close_view_trees). */
            break;
        }
    }
    /* pivot_root(".", ".") stacks the old root under the new one; detach it. */
    CHECK(SBX_STEP_PIVOT, chdir("/tmp"));
    CHECK(SBX_STEP_PIVOT, syscall(SYS_pivot_root, ".", "."));
    CHECK(SBX_STEP_PIVOT, umount2(".", MNT_DETACH));
    CHECK(SBX_STEP_PIVOT, chdir("/"));
    CHECK(SBX_STEP_PIVOT, mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL));
}

/* The mounted trees' fds, kept for Landlock's rules. */
static void close_view_trees(plan *p)
{
    for (size_t i = 0; i < p->n_mounts; i++)
        if (p->mounts[i].tree_fd >= 0) {
            close(p->mounts[i].tree_fd);
            p->mounts[i].tree_fd = -1;
        }
}

static void loopback_up(plan *p)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(SBX_STEP_NETWORK, s);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    CHECK(SBX_STEP_NETWORK, ioctl(s, SIOCGIFFLAGS, &ifr));
    ifr.ifr_flags |= IFF_UP;
    CHECK(SBX_STEP_NETWORK, ioctl(s, SIOCSIFFLAGS, &ifr));
    close(s);
}

#define SECBITS_LOCKED                                                         \
    ((1 << 0) | (1 << 1) | (1 << 2) | (1 << 3) | (1 << 5) | (1 << 6) | (1 << 7))
/* NOROOT(+locked), NO_SETUID_FIXUP(+locked), KEEP_CAPS_LOCKED,
 * NO_CAP_AMBIENT_RAISE(+locked). */

static void set_identity(plan *p)
{
    CHECK(SBX_STEP_CAPS, prctl(PR_SET_SECUREBITS, SECBITS_LOCKED, 0, 0, 0));
    /* Raw syscalls: glibc's set*id broadcast to "all threads", and this
     * copy of a multi-threaded broker only believes it has some. */
    if (p->root_broker)
        CHECK(SBX_STEP_IDENTITY, syscall(SYS_setgroups, 0, NULL));
    CHECK(SBX_STEP_IDENTITY, syscall(SYS_setresgid, p->gid, p->gid, p->gid));
    CHECK(SBX_STEP_IDENTITY, syscall(SYS_setresuid, p->uid, p->uid, p->uid));
}

static void drop_caps(plan *p)
{
    /* Capabilities are numbered 0..CAP_LAST_CAP: the first EINVAL is past
     * the last one this kernel knows. */
    for (int c = 0; c <= 63; c++) {
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0) {
            if (errno == EINVAL && c > 0)
                break;
            child_fail(p, SBX_STEP_CAPS, errno);
        }
    }
    CHECK(SBX_STEP_CAPS, prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    CHECK(SBX_STEP_CAPS, syscall(SYS_capset, &h, d));
}

static void apply_landlock(plan *p)
{
    int abi = p->landlock_abi;
    uint64_t fs = LL_RW_NOEXEC | LL_FS_EXECUTE | LL_FS_MAKE_CHAR | LL_FS_MAKE_BLOCK | LL_FS_IOCTL_DEV;
    if (abi < 2)
        fs &= ~LL_FS_REFER;
    if (abi < 3)
        fs &= ~LL_FS_TRUNCATE;
    if (abi < 5)
        fs &= ~LL_FS_IOCTL_DEV;
    struct ll_ruleset_attr attr = { .handled_access_fs = fs };
    size_t size = sizeof(uint64_t);
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        size = 2 * sizeof(uint64_t);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
        size = sizeof attr;
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    CHECK(SBX_STEP_LANDLOCK, rs);
    for (size_t i = 0; i < p->n_mounts; i++) {
        const mount_entry *m = &p->mounts[i];
        uint64_t acc;
        switch (m->kind) {
        case M_SYMLINK:
            continue;
        case M_PROC:
            acc = LL_RO | LL_FS_WRITE_FILE;
            break;
        case M_TMPFS:
            acc = LL_RW_NOEXEC;
            break;
        default:
            acc = m->writable ? LL_RW_NOEXEC : LL_RO;
            if (m->exec)
                acc |= LL_FS_EXECUTE;
            if (m->dev)
                acc |= LL_FS_WRITE_FILE | LL_FS_IOCTL_DEV;
            break;
        }
        if (m->is_file)
            acc &= LL_FILE_RIGHTS;
        acc &= fs;
        /* A bind's tree fd is its root already: no path walk. */
        int fd = m->tree_fd >= 0 ? m->tree_fd : open(m->dst, O_PATH | O_CLOEXEC);
        CHECK(SBX_STEP_LANDLOCK, fd);
        struct ll_path_beneath pb = { .allowed_access = acc, .parent_fd = fd };
        CHECK(SBX_STEP_LANDLOCK, syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &pb, 0));
        if (fd != m->tree_fd)
            close(fd);
    }
    /* The view's own root: its directories may be listed (READ_DIR only).
     * Everything beneath "/" here is the view itself; objects the broker
     * opened in its namespace are not beneath this root and gain nothing. */
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(SBX_STEP_LANDLOCK, rootfd);
    struct ll_path_beneath rootpb = { .allowed_access = LL_FS_READ_DIR & fs, .parent_fd = rootfd };
    CHECK(SBX_STEP_LANDLOCK, syscall(SYS_landlock_add_rule, rs, LL_RULE_PATH_BENEATH, &rootpb, 0));
    close(rootfd);
    CHECK(SBX_STEP_LANDLOCK, syscall(SYS_landlock_restrict_self, rs, 0));
    close(rs);
}

static int move_high(plan *p, int fd)
{
    int n = fcntl(fd, F_DUPFD_CLOEXEC, (int)p->fd_base);
    if (n < 0)
        child_fail(p, SBX_STEP_FDS, errno);
    return n;
}

/* Receive a GO or FDS message and its fds; returns the bitmask of the
 * extra fds present. */
static unsigned wait_go(plan *p, uint32_t type, int extra[3])
{
    sbx_sync_msg m;
    char cbuf[CMSG_SPACE(3 * sizeof(int))];
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    ssize_t r;
    do
        r = recvmsg(p->sync_fd, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof m || m.type != type)
        _exit(125); /* the broker went away or spoke nonsense: nothing to report to */
    int got[3];
    size_t ngot = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < n && ngot < 3; i++)
                memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        }
    }
    unsigned mask = (unsigned)m.value & 7u;
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        if (mask & (1u << i)) {
            if (k >= ngot)
                child_fail(p, SBX_STEP_SYNC, EBADMSG);
            extra[i] = got[k++];
        }
    }
    return mask;
}

static const char *const extra_env[3] = {
    SBX_ENV_SECTION_FD "=3", SBX_ENV_BROKER_FD "=4", SBX_ENV_CHANNEL_FD "=5",
};

/* The program's process: fds, cwd, limits, interception, exec. */
__attribute__((noreturn)) static void run_program(plan *p, int exec_fd)
{
    int tmp[MAX_FD_PAIRS];
    for (size_t i = 0; i < p->n_pairs; i++)
        tmp[i] = move_high(p, p->pairs[i].src);
    int keep[MAX_FD_PAIRS + 2];
    size_t nk = 0;
    for (size_t i = 0; i < p->n_pairs; i++) {
        if (dup2(tmp[i], p->pairs[i].dst) < 0)
            child_fail(p, SBX_STEP_FDS, errno);
        keep[nk++] = p->pairs[i].dst;
    }
    keep[nk++] = p->sync_fd;
    keep[nk++] = exec_fd;
    int r = sbx_close_all_except(keep, nk);
    if (r < 0)
        child_fail(p, SBX_STEP_FDS, -r);
    CHECK(SBX_STEP_CWD, chdir(p->cwd));
    for (size_t i = 0; i < p->n_rl; i++) {
        struct rlimit rl = { p->rl[i].v, p->rl[i].v };
        if (p->rl[i].res == RLIMIT_CPU)
            rl.rlim_max = p->rl[i].v + 1; /* SIGXCPU first, SIGKILL a second later */
        CHECK(SBX_STEP_RLIMIT, setrlimit(p->rl[i].res, &rl));
    }
    if (p->nochildren) {
        r = sbx_bpf_load(p->nochildren);
        if (r < 0)
            child_fail(p, SBX_STEP_SECCOMP, -r);
    }
    int lfd = 0;
    if (p->hooks.child_install_filter) {
        lfd = p->hooks.child_install_filter(p->hooks.userdata, p->policy, p->landlock_abi > 0);
        if (lfd < 0)
            child_fail(p, SBX_STEP_INTERCEPTION, -lfd);
    }
    /* Tell the broker who we are (the kernel translates the pid), with the
     * listener if there is one: one message, one wake-up of the broker. */
    {
        sbx_sync_msg m = { .type = SBX_SYNC_PID };
        union {
            char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } cbuf;
        memset(&cbuf, 0, sizeof cbuf);
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf,
                             .msg_controllen = CMSG_SPACE(sizeof(struct ucred)) +
                                               (lfd > 0 ? CMSG_SPACE(sizeof(int)) : 0) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_CREDENTIALS;
        c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
        struct ucred uc = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
        memcpy(CMSG_DATA(c), &uc, sizeof uc);
        if (lfd > 0) {
            c = CMSG_NXTHDR(&mh, c);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(c), &lfd, sizeof lfd);
        }
        ssize_t sr;
        do
            sr = sendmsg(p->sync_fd, &mh, MSG_NOSIGNAL);
        while (sr < 0 && errno == EINTR);
        /* Without its listener the target cannot be served: fail it. */
        if (sr < 0 && lfd > 0)
            child_fail(p, SBX_STEP_INTERCEPTION, errno);
        if (lfd > 0)
            close(lfd);
    }
    execve(p->path, p->argv, p->envp);
    int e = errno;
    (void)!write(exec_fd, &e, sizeof e);
    _exit(127);
}

/* The section hook's fds (FDS message), installed at 3/4/5 for the
 * program: the broker runs the hook while init builds the view. */
static void take_section_fds(plan *p)
{
    int extra[3] = { -1, -1, -1 };
    unsigned mask = wait_go(p, SBX_SYNC_FDS, extra);
    for (int i = 0; i < 3; i++) {
        if (!(mask & (1u << i)))
            continue;
        /* The hook's fd replaces a caller-provided one for the same slot. */
        int dst = SBX_TARGET_FD_SECTION + i;
        size_t j = 0;
        while (j < p->n_pairs && p->pairs[j].dst != dst)
            j++;
        if (j == p->n_pairs)
            p->n_pairs++;
        p->pairs[j].dst = dst;
        p->pairs[j].src = move_high(p, extra[i]);
        close(extra[i]);
    }
    for (int i = 0; i < 3; i++) {
        bool present = false;
        for (size_t j = 0; j < p->n_pairs; j++)
            present |= p->pairs[j].dst == SBX_TARGET_FD_SECTION + i;
        if (present)
            p->envp[p->n_env++] = (char *)(uintptr_t)extra_env[i];
    }
    p->envp[p->n_env] = NULL;
}

/* The program process, on its own stack in init's memory (CLONE_VM |
 * CLONE_VFORK: init is suspended until the exec or the exit). */
static int program_main(void *arg)
{
    plan *p = arg;
    close(p->prog_sfd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL); /* exec keeps the mask */
    run_program(p, p->exec_fd);
}

/* Every disposition back to the default through the raw call: glibc's
 * signal() refuses the signals it reserves (32, 33), and one of those
 * ignored by whoever started the broker would survive exec into the
 * target. */
static void reset_signals(void)
{
    struct {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
    } dfl = { SIG_DFL, 0, NULL, 0 };
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void)syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
}

/* The target's pid-1 init. */
__attribute__((noreturn)) static void child_main(plan *p)
{
    /* A clean signal state: exec keeps ignored dispositions and the mask. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    reset_signals();

    /* Into the target's cgroups before anything else: the program is
     * forked from here, so it starts inside them. */
    for (int i = 0; i < 2; i++) {
        if (p->cg_join[i] < 0)
            continue;
        if (write(p->cg_join[i], "0", 1) != 1)
            child_fail(p, SBX_STEP_CGROUP_ATTACH, errno);
        close(p->cg_join[i]);
        p->cg_join[i] = -1;
    }

    /* Move every fd we keep above the target numbers, close the rest. */
    p->sync_fd = move_high(p, p->sync_fd);
    _Static_assert(MAX_FD_PAIRS + 3 + MAX_MOUNTS <= SBX_CLOSE_KEEP_MAX, "init's kept fds");
    int keep[MAX_FD_PAIRS + 3 + MAX_MOUNTS];
    size_t nk = 0;
    for (size_t i = 0; i < p->n_pairs; i++) {
        p->pairs[i].src = move_high(p, p->pairs[i].src);
        keep[nk++] = p->pairs[i].src;
    }
    keep[nk++] = p->sync_fd;
    if (p->fs_peer_fd >= 0) {
        p->fs_peer_fd = move_high(p, p->fs_peer_fd);
        keep[nk++] = p->fs_peer_fd;
    }
    p->exec_fd = move_high(p, p->exec_fd);
    keep[nk++] = p->exec_fd;
    /* The view's trees stay where they are: init closes them before it
     * starts the program, so they never meet the target's numbers. */
    for (size_t i = 0; i < p->n_mounts; i++)
        if (p->mounts[i].tree_fd >= 0)
            keep[nk++] = p->mounts[i].tree_fd;
    int r = sbx_close_all_except(keep, nk);
    if (r < 0)
        child_fail(p, SBX_STEP_FDS, -r);

    int extra[3] = { -1, -1, -1 };
    if (wait_go(p, SBX_SYNC_GO, extra) != 0)
        child_fail(p, SBX_STEP_SYNC, EBADMSG);

    set_identity(p);
    /* Broker death is seen on the sync socket (init watches it for the
     * target's whole life): PR_SET_PDEATHSIG would follow the spawning
     * *thread*, and a credential change clears it anyway. */
    {
        struct pollfd pf = { .fd = p->sync_fd, .events = POLLRDHUP };
        if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLRDHUP)))
            _exit(125);
    }
    build_view(p);
    if (p->net_lo)
        loopback_up(p);
    CHECK(SBX_STEP_HOSTNAME, sethostname("sbx", 3));
    if (!p->keep_tty)
        CHECK(SBX_STEP_SESSION, setsid());
    drop_caps(p);
    CHECK(SBX_STEP_CAPS, prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
    CHECK(SBX_STEP_CAPS, prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    if (p->landlock_abi > 0)
        apply_landlock(p);
    close_view_trees(p);
    /* NULL: the program's own interception filter carries the baseline
     * (reported denials, sbx_broker_hooks.reports_denials); this init is
     * our code alone and needs none. */
    if (p->baseline && (r = sbx_bpf_load(p->baseline)) < 0)
        child_fail(p, SBX_STEP_SECCOMP, -r);

    take_section_fds(p);

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    CHECK(SBX_STEP_FORK, sigprocmask(SIG_BLOCK, &chld, NULL));
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    CHECK(SBX_STEP_FORK, sfd);
    /* The program shares init's memory until it execs and init waits
     * meanwhile (posix_spawn's way): no copy of init's page tables, none
     * for execve to tear down. CLONE_FS: init shares the program's cwd
     * (and root and umask), so it can make a brokered directory the
     * program's cwd for the notify backend (sbx_notify_fs_peer_answer).
     * From here on init resolves no path and creates nothing, so the
     * program's chdir and umask cannot affect it. The program's own
     * children get their own copy. */
    p->prog_sfd = sfd;
    unsigned long fs = p->fs_peer_fd >= 0 ? CLONE_FS : 0;
#if defined(__SANITIZE_ADDRESS__)
    /* ASan cannot follow a switch to a stack of our own (it warns on
     * stderr at the first noreturn call): a plain fork there. */
    pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD | fs, 0, NULL, NULL, 0);
    if (pid == 0)
        program_main(p);
#else
    pid_t pid = (pid_t)clone(program_main, (char *)p->prog_stack + p->prog_stack_size,
                             (int)(CLONE_VM | CLONE_VFORK | SIGCHLD | fs), p);
#endif
    CHECK(SBX_STEP_FORK, pid);
    /* Init keeps nothing of the program's fds (nor the exec pipe: its
     * end-of-file tells the broker the exec happened). */
    int ikeep[3] = { p->sync_fd, sfd, p->fs_peer_fd };
    (void)sbx_close_all_except(ikeep, p->fs_peer_fd >= 0 ? 3 : 2);
    /* Reap everything; leave when the program ends (reporting its status)
     * or when the broker is gone (the socket hangs up). Init's exit takes
     * the rest of the namespace with it. Meanwhile answer the broker's
     * chdir requests (fs peer). */
    for (;;) {
        struct pollfd pf[3] = { { .fd = p->sync_fd, .events = POLLRDHUP },
                                { .fd = sfd, .events = POLLIN },
                                { .fd = p->fs_peer_fd, .events = POLLIN } };
        if (poll(pf, p->fs_peer_fd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(0);
        }
        if (pf[0].revents & (POLLHUP | POLLRDHUP | POLLERR))
            _exit(0);
        if (p->fs_peer_fd >= 0 && (pf[2].revents & (POLLIN | POLLHUP | POLLERR)) &&
            sbx_notify_fs_peer_answer(p->fs_peer_fd) < 0) {
            close(p->fs_peer_fd); /* the broker's end is gone: no more requests */
            p->fs_peer_fd = -1;
        }
        struct signalfd_siginfo ssi;
        while (read(sfd, &ssi, sizeof ssi) > 0)
            ;
        for (;;) {
            int st;
            pid_t w = waitpid(-1, &st, WNOHANG);
            if (w <= 0)
                break;
            if (w == pid) {
                send_msg(p->sync_fd, SBX_SYNC_EXIT, 0, 0, st);
                _exit(0);
            }
        }
    }
}

/* ================= broker side ================= */

static void info_fail(sbx_target_info *out, sbx_spawn_step step, int err, const char *what)
{
    out->failed_step = step;
    out->failed_errno = err;
    snprintf(out->error, sizeof out->error, "%s: %s%s%s%s", sbx_spawn_step_name(step),
             err ? strerror(err) : "failed", what ? " (" : "", what ? what : "", what ? ")" : "");
}

typedef struct spawn_res {
    plan *p;
    char **strings; /* owned strings referenced by the plan */
    size_t n_strings, cap_strings;
    int devnull;
    int sync[2];
    int execp[2];
    int pidfd;
    pid_t pid;
    sbx_cgroup cg;
    bool cg_made;
    bool section_made;
    bool pool_held;
    uint64_t id;
    sbx_broker *b;
    int listener;
    bool have_exit;
    int exit_status;
    int chan[2];    /* opts->channel: [0] broker end, [1] target end */
    int cg_join[2]; /* the plan's cgroup "tasks" fds (broker copies) */
    int oom_efd;    /* v1 OOM eventfd, or -1 */
    int fsp[2];     /* fs peer socket: [0] broker end, [1] init's */
} spawn_res;

static void close_trees(plan *p)
{
    for (size_t i = 0; i < p->n_mounts; i++) {
        sbx_close_keep_errno(p->mounts[i].tree_fd);
        p->mounts[i].tree_fd = -1;
    }
}

static void spawn_res_free(spawn_res *s)
{
    if (s->pool_held)
        sbx_pool_unhold(s->b->pool);
    if (s->pidfd >= 0) {
        syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        siginfo_t si;
        while (waitid((idtype_t)P_PIDFD, (id_t)s->pidfd, &si, WEXITED) < 0 && errno == EINTR)
            ;
        close(s->pidfd);
    }
    if (s->cg_made)
        sbx_cgroup_destroy(&s->cg);
    if (s->section_made && s->b->hooks.on_target_exit)
        s->b->hooks.on_target_exit(s->b->hooks.userdata, s->id);
    sbx_close_keep_errno(s->listener);
    sbx_close_keep_errno(s->chan[0]);
    sbx_close_keep_errno(s->chan[1]);
    sbx_close_keep_errno(s->devnull);
    sbx_close_keep_errno(s->cg_join[0]);
    sbx_close_keep_errno(s->cg_join[1]);
    sbx_close_keep_errno(s->oom_efd);
    sbx_close_keep_errno(s->sync[0]);
    sbx_close_keep_errno(s->sync[1]);
    sbx_close_keep_errno(s->fsp[0]);
    sbx_close_keep_errno(s->fsp[1]);
    sbx_close_keep_errno(s->execp[0]);
    sbx_close_keep_errno(s->execp[1]);
    for (size_t i = 0; i < s->n_strings; i++)
        free(s->strings[i]);
    free(s->strings);
    if (s->p) {
        close_trees(s->p);
        free(s->p->envp);
        if (s->p->prog_stack)
            munmap(s->p->prog_stack, s->p->prog_stack_size);
    }
    free(s->p);
}

static char *keep_str(spawn_res *s, char *str)
{
    if (!str)
        return NULL;
    if (s->n_strings == s->cap_strings) {
        size_t nc = s->cap_strings ? s->cap_strings * 2 : 32;
        char **n = realloc(s->strings, nc * sizeof *n);
        if (!n) {
            free(str);
            return NULL;
        }
        s->strings = n;
        s->cap_strings = nc;
    }
    s->strings[s->n_strings++] = str;
    return str;
}

static int add_mount(plan *p, enum mkind kind, const char *src, const char *dst, bool is_file,
                     bool writable, bool exec, bool dev)
{
    if (p->n_mounts >= MAX_MOUNTS)
        return -E2BIG;
    p->mounts[p->n_mounts++] = (mount_entry){ .kind = kind, .src = src, .dst = dst,
                                              .is_file = is_file, .writable = writable,
                                              .exec = exec, .dev = dev, .tree_fd = -1 };
    return 0;
}

/* A host path into the view: a symlink is recreated (merged-/usr systems
 * have /bin -> usr/bin), anything else bind-mounted. Missing optional
 * paths are skipped; a missing required one is an error. */
static int add_host_path(spawn_res *s, const char *path, bool optional, bool writable, bool exec,
                         bool dev)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (optional && errno == ENOENT)
            return 0;
        return sbx_neg_errno();
    }
    if (S_ISLNK(st.st_mode) && !writable) {
        char link[PATH_MAX];
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0)
            return sbx_neg_errno();
        link[n] = '\0';
        /* Only relative links inside the view make sense as links; others bind. */
        if (link[0] != '/') {
            char *t = keep_str(s, strdup(link));
            if (!t)
                return -ENOMEM;
            return add_mount(s->p, M_SYMLINK, t, path, false, false, false, false);
        }
    }
    /* lstat's answer holds unless it saw a symlink (bound as its target). */
    if (S_ISLNK(st.st_mode) && stat(path, &st) < 0) {
        if (optional && errno == ENOENT)
            return 0;
        return sbx_neg_errno();
    }
    return add_mount(s->p, M_BIND, path, path, !S_ISDIR(st.st_mode), writable, exec, dev);
}

static unsigned path_depth(const char *path)
{
    unsigned d = 0;
    for (; *path; path++)
        d += *path == '/';
    return d;
}

/* Parents before children (stable otherwise): a view below /tmp (a scratch
 * or working directory) goes on top of the private /tmp, and a view below
 * another view on top of it, instead of being hidden by it. */
static void sort_by_depth(plan *p)
{
    for (size_t i = 1; i < p->n_mounts; i++) {
        mount_entry m = p->mounts[i];
        unsigned d = path_depth(m.dst);
        size_t j = i;
        while (j > 0 && path_depth(p->mounts[j - 1].dst) > d) {
            p->mounts[j] = p->mounts[j - 1];
            j--;
        }
        p->mounts[j] = m;
    }
}

static const char *const default_exec[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                                            "/libx32" };
static const char *const default_files[] = { "/etc/ld.so.cache", "/etc/ld.so.conf",
                                             "/etc/ld.so.conf.d", "/etc/localtime" };
static const char *const default_dev[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                           "/dev/urandom" };

static int plan_view(spawn_res *s, const sbx_policy *pol, sbx_target_info *out)
{
    plan *p = s->p;
    int r;
    if (pol->default_view) {
        for (size_t i = 0; i < SBX_ARRAY_SIZE(default_exec); i++)
            if ((r = add_host_path(s, default_exec[i], true, false, true, false)) < 0)
                return r;
        for (size_t i = 0; i < SBX_ARRAY_SIZE(default_files); i++)
            if ((r = add_host_path(s, default_files[i], true, false, false, false)) < 0)
                return r;
        for (size_t i = 0; i < SBX_ARRAY_SIZE(default_dev); i++)
            if ((r = add_host_path(s, default_dev[i], true, true, false, true)) < 0)
                return r;
        static const char *const devlinks[][2] = { { "/proc/self/fd", "/dev/fd" },
                                                   { "/proc/self/fd/0", "/dev/stdin" },
                                                   { "/proc/self/fd/1", "/dev/stdout" },
                                                   { "/proc/self/fd/2", "/dev/stderr" } };
        for (size_t i = 0; i < SBX_ARRAY_SIZE(devlinks); i++)
            if ((r = add_mount(p, M_SYMLINK, devlinks[i][0], devlinks[i][1], false, false, false,
                               false)) < 0)
                return r;
    }
    /* The private /tmp first: a policy view beneath /tmp (a checkout under
     * /tmp, a CI clone) is then bound on top of it instead of hidden. */
    if ((r = add_mount(p, M_TMPFS, NULL, "/tmp", false, true, false, false)) < 0)
        return r;
    for (size_t i = 0; i < pol->n_views; i++) {
        const sbx_policy_view *v = &pol->views[i];
        r = add_host_path(s, v->path, (v->flags & SBX_VIEW_OPTIONAL) != 0,
                          (v->flags & SBX_VIEW_WRITABLE) != 0, (v->flags & SBX_VIEW_EXEC) != 0,
                          false);
        if (r < 0) {
            info_fail(out, SBX_STEP_MOUNT, -r, v->path);
            return r;
        }
    }
    if ((r = add_mount(p, M_PROC, NULL, "/proc", false, false, false, false)) < 0)
        return r;
    sort_by_depth(p);
    return 0;
}

static int plan_env(spawn_res *s, const sbx_spawn_options *o)
{
    plan *p = s->p;
    p->envp = calloc(MAX_ENV + 6, sizeof *p->envp);
    if (!p->envp)
        return -ENOMEM;
    if (o->envp) {
        for (size_t i = 0; o->envp[i]; i++) {
            if (p->n_env >= MAX_ENV)
                return -E2BIG;
            p->envp[p->n_env++] = o->envp[i];
        }
        return 0;
    }
    static const char *const defaults[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                            "LANG=C.UTF-8" };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(defaults); i++)
        p->envp[p->n_env++] = (char *)(uintptr_t)defaults[i];
    for (size_t i = 0; o->env_allow && o->env_allow[i]; i++) {
        const char *v = getenv(o->env_allow[i]);
        if (!v || strchr(o->env_allow[i], '='))
            continue;
        if (p->n_env >= MAX_ENV)
            return -E2BIG;
        char *e = NULL;
        if (asprintf(&e, "%s=%s", o->env_allow[i], v) < 0)
            return -ENOMEM;
        if (!keep_str(s, e))
            return -ENOMEM;
        p->envp[p->n_env++] = e;
    }
    return 0;
}

/* An ELF executable without PT_INTERP: the dynamic loader never runs, so
 * LD_PRELOAD cannot engage. Scripts and unreadable files: false. */
static bool is_static_elf(const char *path)
{
    SBX_AUTOCLOSE int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) ||
        eh.e_phnum > 256)
        return false;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
            return false;
        if (ph.p_type == PT_INTERP)
            return false;
    }
    return true;
}

/* Put `entry` ("NAME=...") in the environment, replacing NAME's value. */
static void set_env(plan *p, char *entry)
{
    size_t n = strcspn(entry, "=") + 1;
    for (size_t i = 0; i < p->n_env; i++)
        if (strncmp(p->envp[i], entry, n) == 0) {
            p->envp[i] = entry;
            return;
        }
    p->envp[p->n_env++] = entry;
}

/* Backend trap: the runtime's notify filter stays the complete base (the
 * hook installs it); the preload shim is bound read-only into the view and
 * preloaded, and engages the fast path in every dynamic program. */
static int plan_trap(spawn_res *s, const sbx_policy *pol, sbx_target_info *out)
{
    plan *p = s->p;
    const char *shim = sbx_runtime_preload(s->b->runtime);
    if (!shim) {
        info_fail(out, SBX_STEP_INTERCEPTION, ENOENT,
                  "backend trap: libsbx-preload.so not found (set SBX_PRELOAD)");
        return SBX_ERROR_SPAWN;
    }
    if (is_static_elf(p->path))
        sbx_warn_append(out->warnings, sizeof out->warnings, &out->n_warnings,
                        "backend trap: %s is statically linked; its calls are served by notify",
                        p->path);
    int r;
    /* Its own bind, executable (it is mapped PROT_EXEC), even inside a
     * directory view: those are noexec unless they are system trees. */
    if ((r = add_host_path(s, shim, false, false, true, false)) < 0) {
        info_fail(out, SBX_STEP_MOUNT, -r, shim);
        return SBX_ERROR_SPAWN;
    }
    sort_by_depth(p);
    const char *old = NULL;
    for (size_t i = 0; i < p->n_env; i++)
        if (strncmp(p->envp[i], "LD_PRELOAD=", 11) == 0 && p->envp[i][11])
            old = p->envp[i] + 11;
    char *e = NULL;
    if (asprintf(&e, "LD_PRELOAD=%s%s%s", shim, old ? ":" : "", old ? old : "") < 0)
        return -ENOMEM;
    if (!keep_str(s, e))
        return -ENOMEM;
    set_env(p, e);
    set_env(p, (char *)(uintptr_t)(sbx_runtime_trap_native(pol, p->landlock_abi > 0)
                                       ? "SBX_TRAP_NATIVE=1"
                                       : "SBX_TRAP_NATIVE=0"));
    /* The shim's local deny answer skips the broker: only when it is the
     * broker's answer too (EACCES) and no decision is to be audited. */
    bool precheck = !pol->audit && !sbx_runtime_has_audit(s->b->runtime) &&
                    (pol->deny_errno == 0 || pol->deny_errno == EACCES);
    set_env(p, (char *)(uintptr_t)(precheck ? "SBX_TRAP_PRECHECK=1" : "SBX_TRAP_PRECHECK=0"));
    return 0;
}

static int add_pair(plan *p, int src, int dst)
{
    for (size_t i = 0; i < p->n_pairs; i++)
        if (p->pairs[i].dst == dst)
            return -EINVAL;
    if (p->n_pairs >= MAX_FD_PAIRS)
        return -E2BIG;
    if (fcntl(src, F_GETFD) < 0)
        return -EBADF;
    p->pairs[p->n_pairs++] = (fd_pair){ src, dst };
    return 0;
}

static int plan_fds(spawn_res *s, const sbx_spawn_options *o, const sbx_policy *pol)
{
    plan *p = s->p;
    const int std[3] = { o->stdin_fd, o->stdout_fd, o->stderr_fd };
    for (int i = 0; i < 3; i++) {
        int src = std[i];
        if (src == SBX_STDIO_NULL) {
            src = s->devnull;
        } else if (src < 0) {
            return -EBADF;
        }
        int r = add_pair(p, src, i);
        if (r < 0)
            return r;
    }
    if (o->extra_fds) {
        const int ex[3] = { o->extra_fds->section_fd, o->extra_fds->broker_fd,
                            o->extra_fds->channel_fd };
        for (int i = 0; i < 3; i++) {
            if (ex[i] < 0)
                continue;
            int r = add_pair(p, ex[i], SBX_TARGET_FD_SECTION + i);
            if (r < 0)
                return r;
        }
    }
    if (o->channel) {
        int r = add_pair(p, s->chan[1], SBX_TARGET_FD_CHANNEL);
        if (r < 0)
            return r;
    }
    for (size_t i = 0; i < pol->n_shared_fds; i++) {
        int r = add_pair(p, pol->shared_fds[i].broker_fd, pol->shared_fds[i].target_fd);
        if (r < 0)
            return r;
    }
    unsigned base = SBX_TARGET_FD_CHANNEL + 1;
    for (size_t i = 0; i < p->n_pairs; i++)
        if ((unsigned)p->pairs[i].dst + 1 > base)
            base = (unsigned)p->pairs[i].dst + 1;
    p->fd_base = base + 8;
    return 0;
}

static void plan_limits(plan *p, const sbx_policy *pol, const sbx_cgroup *cg,
                        sbx_target_info *out)
{
    uint64_t mem = sbx_policy_effective_limit(pol, SBX_LIMIT_MEMORY);
    uint64_t procs = sbx_policy_effective_limit(pol, SBX_LIMIT_PROCESSES);
    uint64_t cpu = sbx_policy_effective_limit(pol, SBX_LIMIT_CPU_SECONDS);
    uint64_t nofile = sbx_policy_effective_limit(pol, SBX_LIMIT_OPEN_FILES);
    uint64_t fsize = sbx_policy_effective_limit(pol, SBX_LIMIT_FILE_SIZE);
    (void)out;
    if (mem != SBX_LIMIT_UNSET && !cg->memory_limited)
        p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_AS, (rlim_t)mem };
    if (procs != SBX_LIMIT_UNSET && !cg->pids_limited)
        p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_NPROC, (rlim_t)procs };
    if (cpu != SBX_LIMIT_UNSET)
        p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_CPU, (rlim_t)cpu };
    if (nofile != SBX_LIMIT_UNSET)
        p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_NOFILE, (rlim_t)nofile };
    if (fsize != SBX_LIMIT_UNSET)
        p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_FSIZE, (rlim_t)fsize };
    p->rl[p->n_rl++] = (rlim_entry){ RLIMIT_CORE, 0 };
}

static int write_str(const char *path, const char *s)
{
    SBX_AUTOCLOSE int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return sbx_neg_errno();
    ssize_t w = write(fd, s, strlen(s));
    if (w < 0)
        return sbx_neg_errno();
    return w == (ssize_t)strlen(s) ? 0 : -EIO;
}

static int write_maps(pid_t pid, const plan *p, uid_t ouid, gid_t ogid)
{
    char path[64], line[64];
    if (!p->root_broker) {
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        int r = write_str(path, "deny");
        if (r < 0)
            return r;
    }
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(line, sizeof line, "%u %u 1\n", (unsigned)p->gid, (unsigned)ogid);
    int r = write_str(path, line);
    if (r < 0)
        return r;
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(line, sizeof line, "%u %u 1\n", (unsigned)p->uid, (unsigned)ouid);
    return write_str(path, line);
}

static int ensure_filters(sbx_broker *b, bool kill, bool nochildren)
{
    int r;
    if (!b->baseline[kill].insns && (r = sbx_baseline_build(&b->baseline[kill], kill)) < 0)
        return r;
    if (nochildren && !b->nochildren.insns && (r = sbx_nochildren_build(&b->nochildren)) < 0)
        return r;
    return 0;
}

/* One message from the child, if any is queued. Returns 1 (handled),
 * 0 (nothing queued), 2 (the child side is gone) or SBX_ERROR_SPAWN. */
static int take_msg(spawn_res *s, sbx_target_info *out, pid_t *prog_pid)
{
    sbx_sync_msg m;
    char cbuf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof cbuf };
    ssize_t n = recvmsg(s->sync[0], &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    int fd_in = -1;
    struct ucred uc = { 0 };
    bool have_uc = false;
    if (n > 0) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET)
                continue;
            if (c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                    int f;
                    memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
                    if (fd_in < 0)
                        fd_in = f;
                    else
                        close(f);
                }
            } else if (c->cmsg_type == SCM_CREDENTIALS &&
                       c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
                memcpy(&uc, CMSG_DATA(c), sizeof uc);
                have_uc = true;
            }
        }
    }
    if (n == 0) {
        sbx_close_keep_errno(fd_in);
        return 2;
    }
    if (n < 0 || (size_t)n != sizeof m) {
        sbx_close_keep_errno(fd_in);
        info_fail(out, SBX_STEP_SYNC, n < 0 ? errno : EBADMSG, "reading the child");
        return SBX_ERROR_SPAWN;
    }
    switch (m.type) {
    case SBX_SYNC_ERROR: {
        sbx_close_keep_errno(fd_in);
        sbx_spawn_step step = m.step < SBX_STEP_COUNT_ ? (sbx_spawn_step)m.step : SBX_STEP_SYNC;
        info_fail(out, step, m.err > 0 && m.err < 4096 ? m.err : EIO, NULL);
        return SBX_ERROR_SPAWN;
    }
    case SBX_SYNC_PID: /* with the interception listener, if any */
        if (fd_in >= 0) {
            sbx_close_keep_errno(s->listener);
            s->listener = fd_in;
        }
        if (have_uc)
            *prog_pid = uc.pid;
        return 1;
    case SBX_SYNC_EXIT: /* a quick program is already done: keep it for the events thread */
        sbx_close_keep_errno(fd_in);
        s->have_exit = true;
        s->exit_status = m.value;
        return 1;
    default:
        sbx_close_keep_errno(fd_in);
        info_fail(out, SBX_STEP_SYNC, EBADMSG, "unexpected message");
        return SBX_ERROR_SPAWN;
    }
}

/* Follow the child's setup: the exec pipe, whose write end init and then
 * the program hold (close-on-exec): end-of-file means execve succeeded or
 * the child side is gone, 4 bytes are execve's errno. The child queues its
 * messages (errors, the program's pid and listener) on the sync socket
 * before either, so they are read then: one wake-up, not one per message. */
static int converse(spawn_res *s, sbx_target_info *out, pid_t *prog_pid)
{
    for (;;) {
        struct pollfd pf = { .fd = s->execp[0], .events = POLLIN };
        int pr = poll(&pf, 1, 10000);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            info_fail(out, SBX_STEP_SYNC, pr == 0 ? ETIMEDOUT : errno, "child setup");
            return SBX_ERROR_SPAWN;
        }
        int r;
        if (!(pf.revents & (POLLIN | POLLHUP)))
            continue;
        int e = 0;
        ssize_t n = read(s->execp[0], &e, sizeof e);
        if (n < 0 && errno == EINTR)
            continue;
        /* Whatever the pipe says, the child queued its messages first. */
        while ((r = take_msg(s, out, prog_pid)) == 1)
            ;
        if (r < 0)
            return r;
        if (n == (ssize_t)sizeof e) {
            info_fail(out, SBX_STEP_EXEC, e > 0 && e < 4096 ? e : EIO, s->p->path);
            return SBX_ERROR_SPAWN;
        }
        if (n == 0 && *prog_pid > 0)
            return 0;
        info_fail(out, SBX_STEP_SYNC, EPIPE, "child ended during setup");
        return SBX_ERROR_SPAWN;
    }
}

static int send_go(int fd, uint32_t type, const sbx_target_fds *fds)
{
    int list[3];
    unsigned mask = 0;
    size_t n = 0;
    const int v[3] = { fds->section_fd, fds->broker_fd, fds->channel_fd };
    for (int i = 0; i < 3; i++)
        if (v[i] >= 0) {
            list[n++] = v[i];
            mask |= 1u << i;
        }
    sbx_sync_msg m = { .type = type, .value = (int32_t)mask };
    return sbx_send_fds(fd, &m, sizeof m, list, n, 0);
}

/* new_net false: the child inherits the calling thread's network
 * namespace (a fresh one from the pool, entered for this clone). */
static pid_t do_clone(int *pidfd, bool new_net)
{
    const uint64_t ns = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS |
                        CLONE_NEWCGROUP | (new_net ? CLONE_NEWNET : 0);
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = ns | CLONE_PIDFD;
    ca.pidfd = (uint64_t)(uintptr_t)pidfd;
    ca.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &ca, sizeof ca);
    if (r < 0 && errno == ENOSYS)
        r = syscall(SYS_clone, (unsigned long)(ns | CLONE_PIDFD | SIGCHLD), NULL, pidfd, NULL, 0);
    return (pid_t)r;
}

SBX_API int sbx_broker_spawn(sbx_broker *b, sbx_policy *pol, const sbx_spawn_options *o,
                             sbx_target_info *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->channel_fd = -1;
    if (!b) {
        info_fail(out, SBX_STEP_OPTIONS, EINVAL, "no broker");
        return SBX_ERROR_WRONG_STATE;
    }
    if (!pol || !o || !o->path || o->path[0] != '/' || !o->argv || !o->argv[0]) {
        info_fail(out, SBX_STEP_OPTIONS, EINVAL,
                  !pol ? "no policy" : !o ? "no options" : !o->path ? "no path"
                  : o->path[0] != '/' ? "path must be absolute" : "argv[0] required");
        return -EINVAL;
    }
    if (o->cwd && o->cwd[0] != '/') {
        info_fail(out, SBX_STEP_OPTIONS, EINVAL, "cwd must be absolute");
        return -EINVAL;
    }
    pthread_mutex_lock(&b->lock);
    bool stopping = b->stopping;
    uint64_t id = ++b->next_id;
    sbx_broker_hooks hooks = b->hooks;
    pthread_mutex_unlock(&b->lock);
    if (stopping) {
        info_fail(out, SBX_STEP_OPTIONS, ESHUTDOWN, "broker is shutting down");
        return SBX_ERROR_WRONG_STATE;
    }
    sbx_policy_freeze(pol);

    __attribute__((cleanup(spawn_res_free))) spawn_res s = {
        .devnull = -1, .sync = { -1, -1 }, .execp = { -1, -1 }, .pidfd = -1, .listener = -1, .id = id, .b = b,
        .chan = { -1, -1 }, .cg_join = { -1, -1 }, .oom_efd = -1, .fsp = { -1, -1 },
    };
    s.p = calloc(1, sizeof *s.p);
    if (!s.p)
        return -ENOMEM;
    plan *p = s.p;
    p->uid = pol->uid;
    p->gid = pol->gid;
    p->root_broker = geteuid() == 0;
    p->path = o->path;
    p->argv = o->argv;
    p->cwd = o->cwd ? o->cwd : "/";
    /* The interactive preset brings loopback up and keeps the terminal. */
    bool interactive = pol->lockdown == SBX_LOCKDOWN_INTERACTIVE;
    p->net_lo = pol->net == SBX_NET_LOOPBACK || interactive;
    p->keep_tty = (pol->mitigations & SBX_MITIGATION_ALLOW_TTY) != 0 || interactive;
    p->hooks = hooks;
    p->policy = pol;
    uid_t ouid = o->outside_uid ? o->outside_uid : 65534;
    gid_t ogid = o->outside_gid ? o->outside_gid : 65534;
    if (!p->root_broker) {
        ouid = geteuid();
        ogid = getegid();
    }

    p->prog_stack_size = 256 << 10;
    p->prog_stack = mmap(NULL, p->prog_stack_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p->prog_stack == MAP_FAILED) {
        p->prog_stack = NULL;
        return -ENOMEM;
    }
    s.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (s.devnull < 0) {
        info_fail(out, SBX_STEP_PREPARE, errno, "/dev/null");
        return SBX_ERROR_SPAWN;
    }
    int r;
    if (o->channel) {
        if (o->extra_fds && o->extra_fds->channel_fd >= 0) {
            info_fail(out, SBX_STEP_OPTIONS, EINVAL, "channel and extra_fds->channel_fd");
            return -EINVAL;
        }
        if ((r = sbx_channel_socketpair(s.chan)) < 0) {
            info_fail(out, SBX_STEP_PREPARE, -r, "channel socket");
            return SBX_ERROR_SPAWN;
        }
    }
    r = plan_fds(&s, o, pol);
    if (r < 0) {
        info_fail(out, SBX_STEP_OPTIONS, -r, "stdio, extra or shared fds");
        return r;
    }
    if ((r = plan_env(&s, o)) < 0) {
        info_fail(out, SBX_STEP_OPTIONS, -r, "environment");
        return r;
    }
    if ((r = plan_view(&s, pol, out)) < 0) {
        if (!out->failed_step)
            info_fail(out, SBX_STEP_MOUNT, -r, "native view");
        return SBX_ERROR_SPAWN;
    }
    bool want_landlock = pol->lockdown >= SBX_LOCKDOWN_LIMITED;
    if (want_landlock) {
        p->landlock_abi = landlock_abi();
        if (!p->landlock_abi)
            sbx_warn_append(out->warnings, sizeof out->warnings, &out->n_warnings,
                            "landlock: unavailable; the mount namespace alone bounds the view");
    }
    if (pol->backend == SBX_BACKEND_TRAP && sbx_runtime_needs_interception(pol) &&
        (r = plan_trap(&s, pol, out)) < 0) {
        if (!out->failed_step)
            info_fail(out, SBX_STEP_INTERCEPTION, -r, "backend trap");
        return r == -ENOMEM ? r : SBX_ERROR_SPAWN;
    }
    bool kill = (pol->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL) != 0;
    bool nochildren = sbx_policy_refuses_children(pol);
    pthread_mutex_lock(&b->spawn_lock);
    r = ensure_filters(b, kill, nochildren);
    pthread_mutex_unlock(&b->spawn_lock);
    if (r < 0) {
        info_fail(out, SBX_STEP_SECCOMP, -r, "building the baseline filter");
        return SBX_ERROR_SPAWN;
    }
    p->baseline = &b->baseline[kill];
    if (!kill && hooks.reports_denials && hooks.child_install_filter &&
        hooks.reports_denials(hooks.userdata, pol))
        p->baseline = NULL;
    p->nochildren = nochildren ? &b->nochildren : NULL;
    /* The hook's filter may refuse children itself: one attach less. */
    if (nochildren && !kill && hooks.refuses_children && hooks.child_install_filter &&
        hooks.refuses_children(hooks.userdata, pol))
        p->nochildren = NULL;

    uint64_t mem = sbx_policy_effective_limit(pol, SBX_LIMIT_MEMORY);
    uint64_t procs = sbx_policy_effective_limit(pol, SBX_LIMIT_PROCESSES);
    /* No refill of the pool until the child runs on its own (below). */
    sbx_pool_hold(b->pool);
    s.pool_held = true;
    /* A leaf the pool made ahead (same limits), else one made here. */
    bool pooled_cg = false;
    int join = 0;
    if (mem != SBX_LIMIT_UNSET || procs != SBX_LIMIT_UNSET) {
        pooled_cg = sbx_pool_take_cgroup(b->pool, mem, procs, &s.cg);
        /* Reachable from this thread? (It may live in another mount
         * namespace than the pool thread that made the leaf.) */
        if (pooled_cg && ((join = sbx_cgroup_open_self_attach(&s.cg, s.cg_join)) < 0 ||
                          (s.cg.v2 && access(s.cg.memory, W_OK) < 0))) {
            sbx_close_keep_errno(sbx_steal_fd(&s.cg_join[0]));
            sbx_close_keep_errno(sbx_steal_fd(&s.cg_join[1]));
            sbx_pool_discard_cgroup(b->pool, &s.cg);
            pooled_cg = false;
        }
        if (pooled_cg)
            sbx_cgroup_warn_unlimited(&s.cg, mem, procs, out->warnings, sizeof out->warnings,
                                      &out->n_warnings);
        else
            sbx_cgroup_create(&s.cg, id, mem, procs, out->warnings, sizeof out->warnings,
                              &out->n_warnings);
        if (!pooled_cg && (s.cg.memory[0] || s.cg.pids[0]))
            sbx_pool_want_cgroup(b->pool, mem, procs);
        s.cg_made = true;
    }
    plan_limits(p, pol, &s.cg, out);
    /* v1: the child joins by itself (see sbx_cgroup_open_self_attach). */
    bool self_join = false;
    if (s.cg_made) {
        r = pooled_cg ? join : sbx_cgroup_open_self_attach(&s.cg, s.cg_join);
        if (r < 0) {
            info_fail(out, SBX_STEP_CGROUP_ATTACH, -r, "opening the cgroup");
            return SBX_ERROR_SPAWN;
        }
        self_join = r > 0;
    }
    p->cg_join[0] = s.cg_join[0];
    p->cg_join[1] = s.cg_join[1];

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s.sync) < 0) {
        info_fail(out, SBX_STEP_PREPARE, errno, "sync socket");
        return SBX_ERROR_SPAWN;
    }
    int one = 1;
    if (setsockopt(s.sync[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
        info_fail(out, SBX_STEP_PREPARE, errno, "SO_PASSCRED");
        return SBX_ERROR_SPAWN;
    }
    p->sync_fd = s.sync[1];
    p->fs_peer_fd = -1;
    if (hooks.on_fs_peer) {
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, s.fsp) < 0) {
            info_fail(out, SBX_STEP_PREPARE, errno, "fs peer socket");
            return SBX_ERROR_SPAWN;
        }
        p->fs_peer_fd = s.fsp[1];
    }
    if (pipe2(s.execp, O_CLOEXEC) < 0) {
        info_fail(out, SBX_STEP_PREPARE, errno, "exec pipe");
        return SBX_ERROR_SPAWN;
    }
    p->exec_fd = s.execp[1];

    /* Clone the view's trees here, as the broker: the child, already in
     * its user namespace, may not reach a source (a program under a 0700
     * directory); a detached clone made here it can still attach. An
     * unprivileged broker cannot clone (EPERM): the child then does. */
    for (size_t i = 0; i < p->n_mounts; i++) {
        mount_entry *m = &p->mounts[i];
        if (m->kind != M_BIND)
            continue;
        int fd = clone_tree(m);
        if (fd == -EPERM)
            break;
        if (fd < 0) {
            info_fail(out, SBX_STEP_MOUNT, -fd, m->src);
            return SBX_ERROR_SPAWN;
        }
        m->tree_fd = fd;
    }

    /* A pre-made network namespace (root broker): this thread enters it
     * for the clone only. Loopback policies keep CLONE_NEWNET: their init
     * brings lo up, which needs a namespace its user namespace owns. */
    int home_net = -1;
    bool pooled_net = !p->net_lo && sbx_pool_enter_netns(b->pool, &home_net) == 1;
    int pidfd = -1;
    pid_t pid = do_clone(&pidfd, !pooled_net);
    int clone_errno = errno;
    if (pid == 0)
        child_main(p);
    if (pooled_net) {
        /* Back on every path, before anything else runs on this thread. */
        if ((r = sbx_pool_leave_netns(home_net)) < 0) {
            if (pid > 0) {
                s.pid = pid;
                s.pidfd = pidfd;
            }
            info_fail(out, SBX_STEP_CLONE, -r, "returning to the caller's network namespace");
            return SBX_ERROR_SPAWN;
        }
    }
    if (pid < 0) {
        info_fail(out, SBX_STEP_CLONE, clone_errno, "new namespaces");
        return SBX_ERROR_SPAWN;
    }
    s.pid = pid;
    s.pidfd = pidfd;
    close_trees(p);
    close(sbx_steal_fd(&s.sync[1]));
    sbx_close_keep_errno(sbx_steal_fd(&s.fsp[1]));
    close(sbx_steal_fd(&s.execp[1]));
    sbx_close_keep_errno(sbx_steal_fd(&s.cg_join[0]));
    sbx_close_keep_errno(sbx_steal_fd(&s.cg_join[1]));
    out->init_pid = pid;

    if ((r = write_maps(pid, p, ouid, ogid)) < 0) {
        info_fail(out, SBX_STEP_UID_MAP, -r, NULL);
        return SBX_ERROR_SPAWN;
    }
    if (s.cg_made && !self_join && (r = sbx_cgroup_attach(&s.cg, pid)) < 0) {
        info_fail(out, SBX_STEP_CGROUP_ATTACH, -r, NULL);
        return SBX_ERROR_SPAWN;
    }
    /* GO first: init builds the view while the section hook runs here;
     * the hook's fds follow (FDS) and init takes them just before it
     * forks the program. */
    sbx_target_fds hook_fds = { -1, -1, -1 };
    if ((r = send_go(s.sync[0], SBX_SYNC_GO, &hook_fds)) < 0) {
        info_fail(out, SBX_STEP_SYNC, -r, "sending go");
        return SBX_ERROR_SPAWN;
    }
    if (hooks.setup_section) {
        r = hooks.setup_section(hooks.userdata, id, pid, pol, &hook_fds);
        s.section_made = true;
        if (r < 0) {
            sbx_close_keep_errno(hook_fds.section_fd);
            sbx_close_keep_errno(hook_fds.broker_fd);
            sbx_close_keep_errno(hook_fds.channel_fd);
            info_fail(out, SBX_STEP_SECTION, -r, NULL);
            return SBX_ERROR_SPAWN;
        }
    }
    r = send_go(s.sync[0], SBX_SYNC_FDS, &hook_fds);
    sbx_close_keep_errno(hook_fds.section_fd);
    sbx_close_keep_errno(hook_fds.broker_fd);
    sbx_close_keep_errno(hook_fds.channel_fd);
    /* While the child sets up: the OOM watch (eventfd + event_control). */
    if (s.cg_made && s.cg.memory_limited && (s.oom_efd = sbx_cgroup_oom_eventfd(&s.cg)) < 0)
        s.oom_efd = -1;
    /* This thread now waits for the child: the pool makes the next
     * namespace and leaf on the CPU it leaves. */
    if (s.pool_held) {
        s.pool_held = false;
        sbx_pool_unhold(b->pool);
    }
    pid_t prog = 0;
    /* A child that failed meanwhile (its end is closed: EPIPE) said why. */
    int rc = converse(&s, out, &prog);
    if (rc < 0)
        return rc;
    if (r < 0) {
        info_fail(out, SBX_STEP_SYNC, -r, "sending the section fds");
        return SBX_ERROR_SPAWN;
    }
    if (prog <= 0) {
        info_fail(out, SBX_STEP_SYNC, EPROTO, "program pid not reported");
        return SBX_ERROR_SPAWN;
    }

    sbx_target_rec *rec = calloc(1, sizeof *rec);
    if (!rec)
        return -ENOMEM;
    rec->id = id;
    rec->init_pid = pid;
    rec->pid = prog;
    rec->pidfd = sbx_steal_fd(&s.pidfd);
    rec->sync_fd = sbx_steal_fd(&s.sync[0]);
    rec->oom_efd = sbx_steal_fd(&s.oom_efd);
    rec->mntns_fd = -1; /* taken by sbx_broker_add_target */
    rec->cg = s.cg;
    s.cg_made = false;
    s.section_made = false;
    rec->policy = sbx_policy_ref(pol);
    rec->have_exit = s.have_exit;
    rec->exit_status = s.exit_status;
    rec->landlock = p->landlock_abi > 0;
    int listener = sbx_steal_fd(&s.listener);
    out->channel_fd = sbx_steal_fd(&s.chan[0]);
    out->id = id;
    out->pid = prog;
    r = sbx_broker_add_target(b, rec);
    if (r < 0) {
        sbx_close_keep_errno(listener);
        sbx_close_keep_errno(out->channel_fd);
        out->channel_fd = -1;
        return r;
    }
    if (s.fsp[0] >= 0)
        hooks.on_fs_peer(hooks.userdata, id, pid, sbx_steal_fd(&s.fsp[0]));
    if (listener >= 0) {
        if (hooks.on_listener)
            hooks.on_listener(hooks.userdata, id, prog, listener, p->landlock_abi > 0);
        else
            close(listener);
    }
    sbx_broker_watch_target(b, rec);
    return 0;
}
