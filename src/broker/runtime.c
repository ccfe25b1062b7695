/* sbx — the runtime layer: the broker's default hooks.
 *
 * Per target: the compiled policy (cached per policy object: policies are
 * frozen and shared), an IPC section whose policy area holds a copy for the
 * target's pre-check, a SOCK_SEQPACKET fd socket and a server on the
 * broker-wide pool; when the policy needs it, the notify filter (built here
 * once, before any fork; installed by the child) and a thread serving the
 * listener with the files dispatcher, whose decisions come from the
 * adapter below on the broker's PRIVATE compiled copy (invariant 2). */
#include "broker/runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sbx/channel.h>
#include <sbx/error.h>
#include <sbx/ipc.h>

#include "base/cleanup.h"
#include "base/log.h"
#include "broker/baseline.h"
#include "policy/compile.h"
#include "subsys/files/files_ipc.h"
#include "subsys/files/files_policy.h"
#include "target/interception/notify.h"

/* ---- the native view, as the broker builds it (spawn.c plan_view) ---- */

typedef struct view_tree {
    const char *path;
    bool writable;
} view_tree;

/* Kept in step with spawn.c's default_exec / default_files / default_dev
 * and its /dev links, /proc and /tmp. */
static const view_tree default_trees[] = {
    { "/usr", false },          { "/bin", false },           { "/sbin", false },
    { "/lib", false },          { "/lib32", false },         { "/lib64", false },
    { "/libx32", false },       { "/etc/ld.so.cache", false }, { "/etc/ld.so.conf", false },
    { "/etc/ld.so.conf.d", false }, { "/etc/localtime", false }, { "/dev/null", true },
    { "/dev/zero", true },      { "/dev/full", true },       { "/dev/random", true },
    { "/dev/urandom", true },   { "/dev/fd", false },        { "/dev/stdin", false },
    { "/dev/stdout", false },   { "/dev/stderr", false },
};
static const view_tree always_trees[] = { { "/proc", false }, { "/tmp", true } };

/* Tree number i of `pol`'s view; false past the end. No allocation. */
static bool view_at(const sbx_policy *pol, size_t i, view_tree *out)
{
    if (i < SBX_ARRAY_SIZE(always_trees)) {
        *out = always_trees[i];
        return true;
    }
    i -= SBX_ARRAY_SIZE(always_trees);
    if (pol->default_view) {
        if (i < SBX_ARRAY_SIZE(default_trees)) {
            *out = default_trees[i];
            return true;
        }
        i -= SBX_ARRAY_SIZE(default_trees);
    }
    if (i < pol->n_views) {
        out->path = pol->views[i].path;
        out->writable = (pol->views[i].flags & SBX_VIEW_WRITABLE) != 0;
        return true;
    }
    return false;
}

/* One pattern component p[0..pe) against one name n[0..ne): `*` any run,
 * `?` one character, `\\` makes the next character literal. Iterative with
 * one backtrack point (the last `*`): O(len(p) * len(n)), whatever the
 * pattern. */
static bool comp_match(const char *p, const char *pe, const char *n, const char *ne)
{
    const char *star_p = NULL, *star_n = NULL;
    while (n < ne) {
        if (p < pe && *p == '*') {
            star_p = ++p;
            star_n = n;
            continue;
        }
        if (p < pe && *p == '?') {
            p++;
            n++;
            continue;
        }
        if (p < pe) {
            const char *lit = (*p == '\\' && p + 1 < pe) ? p + 1 : p;
            if (*lit == *n) {
                p = lit + 1;
                n++;
                continue;
            }
        }
        if (!star_p)
            return false;
        p = star_p;
        n = ++star_n;
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

/* Could `pat` match `tree` or anything beneath it? Component by
 * component; true whenever unsure (a `**`, a `\/`, a pattern that goes
 * on below the tree). A deny whose pattern cannot reach into any view tree
 * (`/etc/shadow*` against `/etc/ld.so.cache`) leaves CONTINUE in place. */
static bool may_reach(const char *pat, const char *tree)
{
    const char *p = pat, *t = tree;
    for (;;) {
        while (*p == '/')
            p++;
        while (*t == '/')
            t++;
        if (!*t)
            return true; /* the tree itself, or the pattern goes on beneath it */
        if (!*p)
            return false; /* the pattern stops above the tree */
        const char *pe = p;
        while (*pe && *pe != '/') {
            if (*pe == '\\' && pe[1])
                pe++;
            pe++;
        }
        if (memmem(p, (size_t)(pe - p), "**", 2) || memmem(p, (size_t)(pe - p), "\\/", 2))
            return true;
        const char *te = strchrnul(t, '/');
        if (!comp_match(p, pe, t, te))
            return false;
        p = pe;
        t = te;
    }
}

bool sbx_runtime_deny_in_view(const sbx_policy *pol)
{
    for (size_t r = 0; r < pol->n_rules; r++) {
        const sbx_policy_rule *rule = &pol->rules[r];
        if (rule->subsys != SBX_SUBSYS_FILES || rule->semantics != SBX_FILES_DENY ||
            !rule->pattern || rule->pattern[0] != '/')
            continue;
        view_tree t;
        for (size_t i = 0; view_at(pol, i, &t); i++)
            if (may_reach(rule->pattern, t.path))
                return true;
    }
    return false;
}

bool sbx_runtime_needs_interception(const sbx_policy *pol)
{
    return sbx_policy_needs_broker(pol) || pol->audit || sbx_runtime_deny_in_view(pol);
}

bool sbx_runtime_trap_native(const sbx_policy *pol, bool landlock)
{
    return pol->backend == SBX_BACKEND_TRAP && landlock && !sbx_runtime_deny_in_view(pol);
}

/* The shim: $SBX_PRELOAD (the embedder's or the test harness's choice),
 * else the installed copy. A regular file we can read, by absolute path. */
static char *find_preload(void)
{
    const char *cands[] = { getenv("SBX_PRELOAD"), SBX_PRELOAD_INSTALLED };
    for (size_t i = 0; i < SBX_ARRAY_SIZE(cands); i++) {
        const char *c = cands[i];
        struct stat st;
        if (c && c[0] == '/' && stat(c, &st) == 0 && S_ISREG(st.st_mode) && access(c, R_OK) == 0)
            return realpath(c, NULL); /* the name the loader and the view will use */
    }
    return NULL;
}

/* ---- the policy adapter ---- */

int sbx_runtime_decider_init(sbx_runtime_decider *d, const sbx_policy *policy, const void *buf,
                             size_t size, int root_fd, const char *preload)
{
    *d = (sbx_runtime_decider){ .policy = policy, .buf = buf, .size = size, .root_fd = root_fd,
                                .preload = preload, .preload_len = preload ? strlen(preload) : 0,
                                .deny_in_view = sbx_runtime_deny_in_view(policy) };
    view_tree t;
    size_t n = 0;
    while (view_at(policy, n, &t))
        n++;
    /* One block: the trees, then their second bytes, which the scans test
     * first (one cache line for the whole view). */
    d->trees = calloc(n, sizeof *d->trees + 1);
    if (!d->trees)
        return -ENOMEM;
    d->tree_second = (unsigned char *)(d->trees + n);
    for (size_t i = 0; view_at(policy, i, &t); i++) {
        d->trees[i] = (sbx_runtime_view_tree){ .path = t.path, .len = strlen(t.path),
                                               .writable = t.writable };
        d->tree_second[i] = (unsigned char)t.path[1]; /* '\0' for "/" */
    }
    d->n_trees = n;
    return 0;
}

void sbx_runtime_decider_destroy(sbx_runtime_decider *d)
{
    free(d->trees);
    d->trees = NULL;
    d->tree_second = NULL;
    d->n_trees = 0;
}

/* Could tree i hold `path` or a name beneath it (or be held by it)? Its
 * second byte must be the path's, "/" excepted: most trees differ from
 * the path there, and the bytes sit together. */
static bool tree_candidate(const sbx_runtime_decider *d, size_t i, const char *path)
{
    unsigned char k = d->tree_second[i];
    return k == (unsigned char)path[1] || k == '\0';
}

/* `path` (plen bytes) is `tree` or lies beneath it (both canonical). */
static bool beneath_tree(const char *path, size_t plen, const sbx_runtime_view_tree *t)
{
    if (t->len == 1)
        return true; /* "/" */
    return t->len <= plen && (path[t->len] == '\0' || path[t->len] == '/') &&
           memcmp(path, t->path, t->len) == 0;
}

/* Inside a native-view tree that admits this kind of call? */
static bool in_native_view(const sbx_runtime_decider *d, const char *path, size_t plen, bool write)
{
    /* The deepest tree holding the path decides: a read-only view below
     * the writable /tmp (a working directory under /tmp) is mounted on top
     * of it, so a write there is not native but the policy's call. */
    size_t best = 0;
    bool found = false, writable = false;
    for (size_t i = 0; i < d->n_trees; i++) {
        if (!tree_candidate(d, i, path))
            continue;
        const sbx_runtime_view_tree *t = &d->trees[i];
        if ((!found || t->len >= best) && beneath_tree(path, plen, t)) {
            found = true;
            best = t->len;
            writable = t->writable;
        }
    }
    return found && (writable || !write);
}

/* "/" or a directory holding a view tree ("/etc" for /etc/ld.so.cache,
 * "/dev" for /dev/null): in the target these are directories of its own
 * tmpfs root, made by the broker to hold the mounts. Reading them shows
 * only the view's own layout. */
static bool view_skeleton(const sbx_runtime_decider *d, const char *path, size_t plen)
{
    if (path[0] == '/' && path[1] == '\0')
        return true;
    for (size_t i = 0; i < d->n_trees; i++) {
        if (!tree_candidate(d, i, path))
            continue;
        const sbx_runtime_view_tree *t = &d->trees[i];
        if (t->len > plen && t->path[plen] == '/' && memcmp(t->path, path, plen) == 0)
            return true;
    }
    return false;
}

/* The object is a directory, as the broker finds it (never the target's
 * word): only DIR_ANY rules care. */
static bool broker_is_dir(int root_fd, const char *path)
{
    struct stat st;
    const char *rel = path[1] ? path + 1 : ".";
    return fstatat(root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

/* The target controls path, op and flags of `q` (the backend copied and
 * canonicalised them). Decided only from d->buf, the broker's private
 * compiled copy; the section's copy is never read. Native only for a
 * path inside a view tree that admits the call and not matched by a deny
 * rule; everything else is the policy's answer. */
int sbx_runtime_decide(void *ctx, const sbx_files_query *q, sbx_files_decision *out)
{
    const sbx_runtime_decider *d = ctx;
    memset(out, 0, sizeof *out);
    out->action = SBX_FILES_REFUSE;
    out->deny_errno = d->policy->deny_errno ? d->policy->deny_errno : EACCES;
    if (!q->path)
        return -EINVAL;
    /* A canonical path keeps a trailing '/' ("must be a directory": "."
     * of a cwd, "dir/"); the policy matches the object's name without it
     * ("/usr/" is decided as "/usr"), which names the same object. */
    char trimmed[SBX_FILES_PATH_MAX];
    const char *path = q->path;
    size_t plen = strnlen(path, sizeof trimmed);
    if (plen > 1 && plen < sizeof trimmed && path[plen - 1] == '/') {
        memcpy(trimmed, path, plen - 1);
        trimmed[--plen] = '\0';
        path = trimmed;
    }
    if (plen == 0 || plen >= sizeof trimmed)
        return -EINVAL; /* not canonical: sbx_files_policy_eval would say so too */
    sbx_files_request req;
    memset(&req, 0, sizeof req);
    req.path = path;
    bool write = (q->need & (SBX_FILES_NEED_WRITE | SBX_FILES_NEED_CREATE)) != 0;
    bool want_dir = false;
    switch (q->op) {
    case SBX_FILES_CALL_OPEN:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = q->flags;
        break;
    case SBX_FILES_CALL_STAT:
    case SBX_FILES_CALL_STATX:
        req.op = SBX_FILES_OP_STAT;
        want_dir = true;
        break;
    case SBX_FILES_CALL_ACCESS:
        req.op = SBX_FILES_OP_ACCESS;
        req.access_mode = q->flags;
        write = write || (q->flags & W_OK);
        want_dir = true;
        break;
    case SBX_FILES_CALL_READLINK:
        req.op = SBX_FILES_OP_READLINK;
        want_dir = true;
        break;
    case SBX_FILES_CALL_MKDIR:
        req.op = SBX_FILES_OP_MKDIR;
        write = true;
        break;
    case SBX_FILES_CALL_UNLINK:
        req.op = SBX_FILES_OP_UNLINK;
        write = true;
        want_dir = true;
        break;
    case SBX_FILES_CALL_RMDIR:
        req.op = SBX_FILES_OP_RMDIR;
        write = true;
        break;
    case SBX_FILES_CALL_RENAME:
        req.op = q->which ? SBX_FILES_OP_RENAME_DST : SBX_FILES_OP_RENAME_SRC;
        write = true;
        want_dir = q->which == 0;
        break;
    case SBX_FILES_CALL_CHDIR:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = O_RDONLY | O_DIRECTORY;
        break;
    case SBX_FILES_CALL_TRUNCATE:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = O_WRONLY | O_TRUNC;
        write = true;
        break;
    case SBX_FILES_CALL_UTIMENS:
    case SBX_FILES_CALL_CHMOD:
        req.op = SBX_FILES_OP_OPEN;
        req.open_flags = O_WRONLY;
        write = true;
        break;
    default:
        return -EINVAL;
    }
    /* The trap shim is bound into the view read-only (spawn); the loader
     * maps it before any handler exists, through the notify filter. */
    bool native = in_native_view(d, path, plen, write) ||
                  (!write && d->preload && plen == d->preload_len &&
                   memcmp(path, d->preload, plen) == 0);
    if (!native && want_dir && d->root_fd >= 0)
        req.is_dir = broker_is_dir(d->root_fd, path);
    sbx_files_verdict v;
    int r = sbx_files_policy_eval(d->buf, d->size, &req, &v);
    if (r < 0)
        return r;
    const sbx_policy_rule *rule = NULL;
    if (v.matched && v.rule >= 0 && (size_t)v.rule < d->policy->n_rules)
        rule = &d->policy->rules[v.rule];
    if (rule)
        out->origin = rule->origin;
    bool explicit_deny = rule && rule->semantics == SBX_FILES_DENY;
    if (native && !explicit_deny) {
        out->action = SBX_FILES_NATIVE;
        out->origin = NULL;
        return 0;
    }
    /* The view's skeleton directories ("/", "/etc" holding ld.so.cache)
     * are read natively when no rule speaks for the path: `ls /` lists the
     * view, it is not a denied host access. A rule that matches (allow or
     * deny) keeps its meaning: it names the host object. */
    if (!v.matched && !write && view_skeleton(d, path, plen)) {
        out->action = SBX_FILES_NATIVE;
        out->origin = NULL;
        return 0;
    }
    switch (v.action) {
    case SBX_ACTION_ASK_BROKER:
        out->action = SBX_FILES_BROKER;
        break;
    case SBX_ACTION_GIVE_READONLY:
        out->action = write ? SBX_FILES_REFUSE : SBX_FILES_BROKER;
        break;
    case SBX_ACTION_FAKE_SUCCESS:
        out->action = SBX_FILES_FAKE_SUCCESS;
        break;
    case SBX_ACTION_FAKE_ACCESS_DENIED:
        out->deny_errno = EACCES;
        break;
    case SBX_ACTION_SIGNAL_ALARM:
        out->alarm = true;
        break;
    case SBX_ACTION_TERMINATE_PROCESS:
        out->action = SBX_FILES_TERMINATE;
        break;
    default: /* DENY_ACCESS, no match */
        break;
    }
    return 0;
}

/* ---- per-policy compiled buffers ---- */

typedef struct compiled {
    sbx_policy *policy; /* our reference: the key */
    void *buf;
    size_t size;
    unsigned users;
    uint64_t last_used; /* idle entries: the oldest is dropped first */
    struct compiled *next;
} compiled;

/* Compiled policies kept while no target uses them: a broker spawning
 * the same few policies again and again compiles each once. */
#define CACHE_IDLE_MAX 4

/* ---- per-target state ---- */

typedef struct rt_target {
    sbx_runtime *rt;
    uint64_t id;
    pid_t pid;
    compiled *comp;
    sbx_ipc_section *section;
    sbx_ipc_server *server;
    sbx_runtime_decider decider;
    sbx_files_dispatcher files;
    sbx_files_ipc_target fipc; /* the IPC server's target ctx: the files services' view of t */
    sbx_files_ipc_memo memo;   /* fipc's memo of the target's threads */
    sbx_notify_config cfg;
    int listener;
    int fs_peer_fd;  /* the target init's fs peer socket (brokered chdir), or -1 */
    pid_t init_pid;
    pthread_t thread;
    bool thread_started;
    /* A target without interception: its listener carries only the
     * baseline's denials, served by the runtime's one denials thread. */
    bool den_listed;  /* in rt->den_epfd (under rt->lock) */
    bool den_busy;    /* the denials thread is handling it (under rt->lock) */
    /* Rate limit of DENIED events (one thread reports per target). */
    unsigned den_tokens;
    uint64_t den_stamp_ns;
    _Atomic uint64_t den_unreported;
    struct rt_target *next;
} rt_target;

struct sbx_runtime {
    sbx_broker *broker;
    pthread_mutex_t lock; /* targets, cache, pool */
    rt_target *targets;
    compiled *cache;
    uint64_t cache_clock;      /* under lock: orders the cache's idle entries */
    uint64_t compiles;         /* under lock: sbx_runtime_compiles */
    sbx_ipc_pool **pools; /* grown when the last is full (each thread waits on
                             at most ~127 channels with futex_waitv) */
    size_t n_pools;
    sbx_ipc_dispatcher *disp;
    /* The notify filters, [report][magic]: report adds the baseline's
     * denials as notifications; magic passes the trap fast path's native
     * re-issue. Built before any fork. */
    struct sock_fprog filters[2][2];
    bool filter_ok;
    /* Targets without interception, EPERM mode: the baseline as
     * notifications, nothing else; one thread serves all their listeners. */
    sbx_bpf denials_only;
    sbx_bpf denials_nochildren; /* the same with the lockdown's "no children" rules */
    bool denials_ok;
    int den_epfd, den_wake;
    pthread_t den_thread;
    bool den_started;
    pthread_cond_t den_idle; /* a den_busy flag was cleared (with lock) */
    char *preload; /* libsbx-preload.so for trap targets, or NULL (not found) */
    uint64_t ipc_calls_done; /* cross calls served for exited targets (under lock) */
    int root_fd;
    pthread_mutex_t audit_lock; /* held while the audit callback runs */
    sbx_audit_fn audit;
    void *audit_ud;
    atomic_bool audit_on; /* audit != NULL, readable without the lock (rt_audit_wanted) */
};

/* Under rt->lock. */
static int cache_get(sbx_runtime *rt, const sbx_policy *pol, compiled **out)
{
    for (compiled *c = rt->cache; c; c = c->next)
        if (c->policy == pol) {
            c->users++;
            c->last_used = ++rt->cache_clock;
            *out = c;
            return 0;
        }
    compiled *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    sbx_policy_error err;
    int r = sbx_policy_compile(pol, &c->buf, &c->size, &err);
    if (r < 0) {
        free(c);
        return r;
    }
    c->policy = sbx_policy_ref((sbx_policy *)(uintptr_t)pol);
    rt->compiles++;
    c->users = 1;
    c->last_used = ++rt->cache_clock;
    c->next = rt->cache;
    rt->cache = c;
    *out = c;
    return 0;
}

/* Under rt->lock. */
static void cache_put(sbx_runtime *rt, compiled *c)
{
    if (!c || --c->users > 0)
        return;
    /* Kept (the policy is frozen: the compiled form stays right); past
     * CACHE_IDLE_MAX idle entries the least recently used one goes. */
    unsigned idle = 0;
    compiled **oldest = NULL;
    for (compiled **pp = &rt->cache; *pp; pp = &(*pp)->next) {
        if ((*pp)->users)
            continue;
        idle++;
        if (!oldest || (*pp)->last_used < (*oldest)->last_used)
            oldest = pp;
    }
    if (idle <= CACHE_IDLE_MAX || !oldest)
        return;
    compiled *victim = *oldest;
    *oldest = victim->next;
    free(victim->buf);
    sbx_policy_unref(victim->policy);
    free(victim);
}

static sbx_audit_decision audit_kind(sbx_files_action a)
{
    switch (a) {
    case SBX_FILES_NATIVE:
        return SBX_AUDIT_NATIVE;
    case SBX_FILES_BROKER:
        return SBX_AUDIT_BROKERED;
    case SBX_FILES_FAKE_SUCCESS:
        return SBX_AUDIT_FAKED;
    case SBX_FILES_TERMINATE:
        return SBX_AUDIT_TERMINATED;
    default:
        return SBX_AUDIT_DENIED;
    }
}

/* The dispatcher prepares a record (clock, lock) only for a listener or
 * for an action that has an effect here. */
static bool rt_audit_wanted(void *ctx, sbx_files_action action, bool alarm)
{
    const rt_target *t = ctx;
    return alarm || action == SBX_FILES_TERMINATE ||
           atomic_load_explicit(&t->rt->audit_on, memory_order_relaxed);
}

static void rt_audit(void *ctx, const sbx_files_audit_record *rec)
{
    rt_target *t = ctx;
    sbx_runtime *rt = t->rt;
    /* The embedder's callbacks run as the broker, never in the identity a
     * files IPC thread keeps for its target. */
    if (rec->alarm || rec->action == SBX_FILES_TERMINATE)
        sbx_files_creds_drop();
    if (rec->alarm) {
        sbx_event ev = { .type = SBX_EVENT_ALARM, .target_id = t->id, .pid = rec->pid };
        sbx_broker_emit(rt->broker, &ev);
    }
    /* TERMINATE_PROCESS: the notify server killed the calling process; the
     * rule means the whole target (its pid namespace goes with init). */
    if (rec->action == SBX_FILES_TERMINATE)
        (void)sbx_broker_kill(rt->broker, t->id, SIGKILL);
    pthread_mutex_lock(&rt->audit_lock);
    if (rt->audit) {
        sbx_files_creds_drop();
        sbx_audit_record a = {
            .time_ns = rec->time_ns, .target_id = t->id, .pid = rec->pid,
            .syscall = rec->syscall ? rec->syscall : "?", .op = sbx_files_call_op_name(rec->op),
            .path = rec->path, .path2 = rec->path2, .flags = rec->flags,
            .decision = audit_kind(rec->action), .alarm = rec->alarm, .origin = rec->origin,
            .error = rec->result < 0 ? (int)-rec->result : 0,
        };
        rt->audit(&a, rt->audit_ud);
    }
    pthread_mutex_unlock(&rt->audit_lock);
}

SBX_API const char *sbx_audit_decision_name(sbx_audit_decision d)
{
    switch (d) {
    case SBX_AUDIT_DENIED:
        return "denied";
    case SBX_AUDIT_NATIVE:
        return "native";
    case SBX_AUDIT_BROKERED:
        return "brokered";
    case SBX_AUDIT_FAKED:
        return "faked";
    case SBX_AUDIT_TERMINATED:
        return "terminated";
    }
    return "?";
}

int sbx_runtime_set_audit(sbx_runtime *rt, sbx_audit_fn fn, void *ud)
{
    if (!rt)
        return -EINVAL;
    pthread_mutex_lock(&rt->audit_lock);
    rt->audit = fn;
    rt->audit_ud = ud;
    atomic_store(&rt->audit_on, fn != NULL);
    pthread_mutex_unlock(&rt->audit_lock);
    return 0;
}

/* Under rt->lock. */
static int ensure_ipc(sbx_runtime *rt)
{
    int r;
    if (!rt->disp) {
        if ((r = sbx_ipc_dispatcher_new(&rt->disp)) < 0)
            return r;
        if ((r = sbx_ipc_dispatcher_add_builtins(rt->disp)) < 0 ||
            (r = sbx_files_ipc_register(rt->disp)) < 0) {
            sbx_ipc_dispatcher_free(rt->disp);
            rt->disp = NULL;
            return r;
        }
    }
    return 0;
}

/* Under rt->lock: a server for t on the first pool with room. */
static int serve_section(sbx_runtime *rt, rt_target *t, int sock)
{
    for (size_t i = 0;; i++) {
        if (i == rt->n_pools) {
            sbx_ipc_pool **n = realloc(rt->pools, (i + 1) * sizeof *n);
            if (!n) {
                close(sock);
                return -ENOMEM;
            }
            rt->pools = n;
            sbx_ipc_pool_options po = { .threads = 1 };
            int r = sbx_ipc_pool_new(&po, &rt->pools[i]);
            if (r < 0) {
                close(sock);
                return r;
            }
            rt->n_pools++;
        }
        int s2 = fcntl(sock, F_DUPFD_CLOEXEC, 0); /* taken by server_new, even on failure */
        if (s2 < 0) {
            int e = sbx_neg_errno();
            close(sock);
            return e;
        }
        int r = sbx_ipc_server_new(rt->pools[i], t->section, s2, rt->disp, &t->fipc, &t->server);
        if (r != SBX_ERROR_NO_SPACE) {
            close(sock);
            return r;
        }
    }
}

static void den_unlist(sbx_runtime *rt, rt_target *t);

static void target_free(sbx_runtime *rt, rt_target *t)
{
    den_unlist(rt, t);
    if (t->thread_started) {
        /* Only after the target's init is dead (rt_on_target_exit, the
         * broker's kill loop, a failed spawn): its pid namespace, every
         * task using the filter, went with it, so sbx_notify_serve (no
         * stop fd: it waits in the listener's RECV) has returned or is
         * about to. */
        pthread_join(t->thread, NULL);
    }
    sbx_close_keep_errno(t->listener);
    sbx_close_keep_errno(t->fs_peer_fd);
    sbx_ipc_server_free(t->server);
    sbx_files_ipc_memo_destroy(&t->memo);
    sbx_runtime_decider_destroy(&t->decider);
    sbx_ipc_section_free(t->section);
    pthread_mutex_lock(&rt->lock);
    cache_put(rt, t->comp);
    pthread_mutex_unlock(&rt->lock);
    free(t);
}

/* Hook: the child is cloned and waits; nothing of it has run. */
static int rt_setup_section(void *ud, uint64_t id, pid_t init_pid, const sbx_policy *pol,
                            sbx_target_fds *fds)
{
    sbx_runtime *rt = ud;
    rt_target *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->rt = rt;
    t->id = id;
    t->listener = t->fs_peer_fd = -1;
    t->init_pid = init_pid;
    sbx_files_ipc_memo_init(&t->memo);
    pthread_mutex_lock(&rt->lock);
    int r = cache_get(rt, pol, &t->comp);
    if (r == 0)
        r = ensure_ipc(rt);
    pthread_mutex_unlock(&rt->lock);
    SBX_AUTOCLOSE int memfd = -1;
    int sp[2] = { -1, -1 };
    if (r == 0) {
        sbx_ipc_section_options so = { .policy_size = t->comp->size };
        r = sbx_ipc_section_new(&so, &t->section);
    }
    if (r == 0)
        r = sbx_ipc_section_write_policy(t->section, t->comp->buf, t->comp->size);
    if (r == 0) {
        memfd = fcntl(sbx_ipc_section_fd(t->section), F_DUPFD_CLOEXEC, 0);
        if (memfd < 0)
            r = sbx_neg_errno();
    }
    if (r == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        r = sbx_neg_errno();
    if (r == 0)
        r = sbx_runtime_decider_init(&t->decider, t->comp->policy, t->comp->buf, t->comp->size,
                                     rt->root_fd,
                                     pol->backend == SBX_BACKEND_TRAP ? rt->preload : NULL);
    if (r == 0) {
        t->files = (sbx_files_dispatcher){ .decide = sbx_runtime_decide,
                                           .decide_ctx = &t->decider, .audit = rt_audit,
                                           .audit_wanted = rt_audit_wanted, .audit_ctx = t,
                                           .broker_root_fd = rt->root_fd };
        /* Cross calls come from the target's processes; Landlock is not
         * known here, so the files services never answer NATIVE: they
         * perform native-view calls inside the target's root. */
        t->pid = init_pid;
        t->fipc = (sbx_files_ipc_target){ .files = &t->files, .pid = init_pid,
                                          .landlock = false, .target_creds = true,
                                          .memo = &t->memo };
        pthread_mutex_lock(&rt->lock);
        r = serve_section(rt, t, sp[0]);
        pthread_mutex_unlock(&rt->lock);
        sp[0] = -1; /* taken */
    }
    if (r < 0) {
        sbx_close_keep_errno(sp[1]);
        target_free(rt, t);
        return r;
    }
    fds->section_fd = sbx_steal_fd(&memfd);
    fds->broker_fd = sp[1];
    pthread_mutex_lock(&rt->lock);
    t->next = rt->targets;
    rt->targets = t;
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

/* Hook, in the child between fork and exec: async-signal-safe. The filters
 * were built before any fork (sbx_runtime_new). A trap target gets the
 * notify filter too: it is the complete base beneath the preload's fast
 * path (src/target/trap/preload.c). */
static int rt_child_install_filter(void *ud, const sbx_policy *pol, bool landlock)
{
    sbx_runtime *rt = ud;
    if (!sbx_runtime_needs_interception(pol)) {
        /* Native speed: only the baseline's denials notify (EPERM mode). */
        if ((pol->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL) || !rt->denials_ok)
            return 0;
        const sbx_bpf *f = sbx_policy_refuses_children(pol) ? &rt->denials_nochildren
                                                            : &rt->denials_only;
        struct sock_fprog prog = { .len = f->len, .filter = f->insns };
        return sbx_notify_filter_install(&prog);
    }
    if (!rt->filter_ok)
        return -ENOSYS;
    return sbx_notify_filter_install(
        &rt->filters[sbx_runtime_reports_denials(pol)][sbx_runtime_trap_native(pol, landlock)]);
}

/* The baseline's denials as notifications (a reporting target's filter). */
static int add_denials(scmp_filter_ctx ctx, void *ud)
{
    (void)ud;
    return sbx_baseline_add_rules(ctx, SCMP_ACT_NOTIFY);
}

bool sbx_runtime_reports_denials(const sbx_policy *pol)
{
    return !(pol->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL) &&
           sbx_runtime_needs_interception(pol);
}

static bool rt_reports_denials(void *ud, const sbx_policy *pol)
{
    sbx_runtime *rt = ud;
    if (pol->mitigations & SBX_MITIGATION_KILL_ON_DENIED_SYSCALL)
        return false;
    return sbx_runtime_needs_interception(pol) ? rt->filter_ok : rt->denials_ok;
}

/* The denials-only filter carries the "no children" rules too. */
static bool rt_refuses_children(void *ud, const sbx_policy *pol)
{
    return rt_reports_denials(ud, pol) && !sbx_runtime_needs_interception(pol);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A baseline denial of t (about to be answered EPERM): one DENIED event,
 * or one more unreported denial past the token bucket (burst, then a
 * steady rate). Called by the one thread serving t's listener, before it
 * answers: the event precedes the target's end event. */
static void report_denied(rt_target *t, int nr, uint32_t arch)
{
    uint64_t now = mono_ns();
    const uint64_t period = 1000000000ull / SBX_DENIED_EVENTS_PER_SEC;
    if (!t->den_stamp_ns) {
        t->den_tokens = SBX_DENIED_EVENTS_BURST;
        t->den_stamp_ns = now;
    } else if (now - t->den_stamp_ns >= period) {
        uint64_t add = (now - t->den_stamp_ns) / period;
        if (t->den_tokens + add >= SBX_DENIED_EVENTS_BURST) {
            t->den_tokens = SBX_DENIED_EVENTS_BURST;
            t->den_stamp_ns = now;
        } else {
            t->den_tokens += (unsigned)add;
            t->den_stamp_ns += add * period;
        }
    }
    if (!t->den_tokens) {
        atomic_fetch_add_explicit(&t->den_unreported, 1, memory_order_relaxed);
        return;
    }
    t->den_tokens--;
    sbx_event ev = { .type = SBX_EVENT_DENIED, .target_id = t->id, .pid = t->pid,
                     .syscall = nr, .arch = arch };
    sbx_broker_emit(t->rt->broker, &ev);
}

/* Notify server: a baseline denial of an intercepted target (answered
 * EPERM right after). */
static void rt_on_denied(void *ctx, pid_t tid, int nr, uint32_t arch)
{
    (void)tid;
    report_denied(ctx, nr, arch);
}

/* ---- the denials thread: listeners of targets without interception ----
 *
 * Their filter notifies nothing but the baseline's denials, so every
 * notification is refused: one thread serves them all from an epoll, one
 * notification per ready listener per round (a flooding target cannot
 * starve the others: each of its calls waits for our answer). The
 * notification's contents are the target's (arguments) or the kernel's
 * (pid, nr, arch); we read only nr and arch, and never its memory. */

#define DEN_WAKE_KEY UINT64_MAX

/* One ready listener (key = target id). */
static void den_serve_one(sbx_runtime *rt, uint64_t id, uint32_t events,
                          struct seccomp_notif *req, size_t req_size,
                          struct seccomp_notif_resp *resp, size_t resp_size)
{
    pthread_mutex_lock(&rt->lock);
    rt_target *t = rt->targets;
    while (t && !(t->id == id && t->den_listed))
        t = t->next;
    if (t)
        t->den_busy = true; /* target_free waits for us: t and its listener stay */
    pthread_mutex_unlock(&rt->lock);
    if (!t)
        return; /* gone since epoll_wait returned */
    if (events & EPOLLIN) {
        memset(req, 0, req_size);
        /* Readable: RECV does not block (a notification withdrawn
         * meanwhile gives ENOENT). */
        if (ioctl(t->listener, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) {
            uint64_t nid = req->id;
            /* Still pending (the caller did not die meanwhile): report. */
            if (ioctl(t->listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &nid) == 0)
                report_denied(t, req->data.nr, req->data.arch);
            memset(resp, 0, resp_size);
            resp->id = req->id;
            resp->error = -EPERM; /* never CONTINUE: this filter sends only denials */
            if (ioctl(t->listener, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0 && errno != ENOENT)
                sbx_debug("runtime: target %llu: answering a denial: %s",
                          (unsigned long long)id, strerror(errno));
        }
    } else if (events & (EPOLLHUP | EPOLLERR)) {
        /* No task uses the filter any more: stop watching (level-triggered
         * hang-ups would spin); target_free closes the fd. */
        pthread_mutex_lock(&rt->lock);
        (void)epoll_ctl(rt->den_epfd, EPOLL_CTL_DEL, t->listener, NULL);
        t->den_listed = false;
        pthread_mutex_unlock(&rt->lock);
    }
    pthread_mutex_lock(&rt->lock);
    t->den_busy = false;
    pthread_cond_broadcast(&rt->den_idle);
    pthread_mutex_unlock(&rt->lock);
}

static void *den_main(void *arg)
{
    sbx_runtime *rt = arg;
    SBX_AUTOFREE struct seccomp_notif *req = NULL;
    SBX_AUTOFREE struct seccomp_notif_resp *resp = NULL;
    size_t req_size = 0, resp_size = 0;
    int br = sbx_notify_buffers(&req, &req_size, &resp, &resp_size);
    if (br < 0) {
        sbx_error("runtime: denials thread: %s", strerror(-br));
        return NULL;
    }
    for (;;) {
        struct epoll_event evs[16];
        int n = epoll_wait(rt->den_epfd, evs, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sbx_error("runtime: denials thread: epoll_wait: %s", strerror(errno));
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == DEN_WAKE_KEY)
                return NULL;
            den_serve_one(rt, evs[i].data.u64, evs[i].events, req, req_size, resp, resp_size);
        }
    }
}

/* The denials thread's epoll and wake-up (made with the runtime, so a
 * broker's fd count does not change with its first target). */
static int den_init(sbx_runtime *rt)
{
    if ((rt->den_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (rt->den_wake = eventfd(0, EFD_CLOEXEC)) < 0)
        return sbx_neg_errno();
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = DEN_WAKE_KEY };
    return epoll_ctl(rt->den_epfd, EPOLL_CTL_ADD, rt->den_wake, &ev) < 0 ? sbx_neg_errno() : 0;
}

/* Under rt->lock: the denials thread, started on first use. */
static int den_start_locked(sbx_runtime *rt)
{
    if (rt->den_started)
        return 0;
    if (rt->den_epfd < 0 || rt->den_wake < 0)
        return -EBADF;
    int r = pthread_create(&rt->den_thread, NULL, den_main, rt);
    if (r != 0)
        return -r;
    rt->den_started = true;
    return 0;
}

/* t's listener joins the denials thread. */
static int den_list(sbx_runtime *rt, rt_target *t)
{
    pthread_mutex_lock(&rt->lock);
    int r = den_start_locked(rt);
    if (r == 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = t->id };
        if (epoll_ctl(rt->den_epfd, EPOLL_CTL_ADD, t->listener, &ev) < 0)
            r = sbx_neg_errno();
        else
            t->den_listed = true;
    }
    pthread_mutex_unlock(&rt->lock);
    return r;
}

/* t leaves the denials thread (t is off rt->targets already, or never
 * listed): wait until the thread is done with it. */
static void den_unlist(sbx_runtime *rt, rt_target *t)
{
    pthread_mutex_lock(&rt->lock);
    while (t->den_busy)
        pthread_cond_wait(&rt->den_idle, &rt->lock);
    if (t->den_listed)
        (void)epoll_ctl(rt->den_epfd, EPOLL_CTL_DEL, t->listener, NULL);
    t->den_listed = false;
    pthread_mutex_unlock(&rt->lock);
}

uint64_t sbx_runtime_denials_unreported(sbx_runtime *rt, uint64_t id)
{
    uint64_t n = 0;
    if (!rt)
        return 0;
    pthread_mutex_lock(&rt->lock);
    for (rt_target *t = rt->targets; t; t = t->next)
        if (t->id == id)
            n = atomic_load_explicit(&t->den_unreported, memory_order_relaxed);
    pthread_mutex_unlock(&rt->lock);
    return n;
}

static void *serve_main(void *arg)
{
    rt_target *t = arg;
    int r = sbx_notify_serve(&t->cfg);
    if (r < 0)
        sbx_warn("runtime: target %llu: notify: %s", (unsigned long long)t->id, strerror(-r));
    return NULL;
}

static void rt_on_listener(void *ud, uint64_t id, pid_t pid, int lfd, bool landlock)
{
    sbx_runtime *rt = ud;
    pthread_mutex_lock(&rt->lock);
    rt_target *t = rt->targets;
    while (t && t->id != id)
        t = t->next;
    pthread_mutex_unlock(&rt->lock);
    if (!t) {
        close(lfd);
        return;
    }
    t->pid = pid;
    if (!sbx_runtime_needs_interception(t->decider.policy)) {
        /* Only the baseline's denials: the shared denials thread. */
        t->listener = lfd;
        int r = den_list(rt, t);
        if (r < 0) {
            /* Nobody would answer: closing the listener makes the denied
             * calls fail (ENOSYS) instead of hanging. */
            sbx_error("runtime: target %llu: cannot serve its denials: %s",
                      (unsigned long long)id, strerror(-r));
            sbx_close_keep_errno(t->listener);
            t->listener = -1;
        }
        return;
    }
    /* Cross calls (trap targets) resolve against the program's threads;
     * NATIVE is answered exactly when the notify filter passes the trap's
     * native re-issue (rt_child_install_filter). */
    t->fipc.pid = pid;
    t->fipc.landlock = sbx_runtime_trap_native(t->decider.policy, landlock);
    t->listener = lfd;
    /* A deny rule inside the view cannot be enforced by CONTINUE (another
     * spelling, a symlink, a racing thread would reach it): such a target
     * gets no CONTINUE at all; its native calls are performed by the
     * broker inside the target's root, symlinks rechecked. */
    t->cfg = (sbx_notify_config){ .listener_fd = lfd, .files = &t->files,
                                  .landlock = landlock && !t->decider.deny_in_view,
                                  .target_creds = true, .stable_creds = true,
                                  .stop_fd = -1, /* see target_free */
                                  .on_denied = sbx_runtime_reports_denials(t->decider.policy)
                                                   ? rt_on_denied
                                                   : NULL,
                                  .denied_ctx = t, .fs_peer_fd = t->fs_peer_fd,
                                  .fs_peer_pid = t->fs_peer_fd >= 0 ? t->init_pid : 0,
                                  .fs_peer_prog = pid };
    if (pthread_create(&t->thread, NULL, serve_main, t) != 0) {
        /* Nobody will answer: the target's intercepted calls would hang.
         * Closing the listener makes them fail (ENOSYS) instead. */
        sbx_error("runtime: target %llu: cannot start its notify thread", (unsigned long long)id);
        sbx_close_keep_errno(t->listener);
        t->listener = -1;
        return;
    }
    t->thread_started = true;
}

/* Hook: the broker's end of the target init's fs peer socket, before
 * the listener: the notify thread makes brokered directories the
 * program's cwd through it. */
static void rt_on_fs_peer(void *ud, uint64_t id, pid_t init_pid, int fd)
{
    sbx_runtime *rt = ud;
    pthread_mutex_lock(&rt->lock);
    rt_target *t = rt->targets;
    while (t && t->id != id)
        t = t->next;
    pthread_mutex_unlock(&rt->lock);
    if (!t || t->fs_peer_fd >= 0) {
        close(fd);
        return;
    }
    t->fs_peer_fd = fd;
    t->init_pid = init_pid;
}

static void rt_on_target_exit(void *ud, uint64_t id)
{
    sbx_runtime *rt = ud;
    pthread_mutex_lock(&rt->lock);
    rt_target *t = NULL;
    for (rt_target **pp = &rt->targets; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            t = *pp;
            *pp = t->next;
            /* Counted as it leaves the list: never missing from the seam. */
            rt->ipc_calls_done += t->server ? sbx_ipc_server_calls(t->server) : 0;
            break;
        }
    pthread_mutex_unlock(&rt->lock);
    if (t)
        target_free(rt, t);
}

int sbx_runtime_new(sbx_broker *broker, sbx_runtime **out, sbx_broker_hooks *hooks)
{
    sbx_runtime *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->broker = broker;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->audit_lock, NULL);
    pthread_cond_init(&rt->den_idle, NULL);
    rt->den_epfd = rt->den_wake = -1;
    rt->root_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rt->root_fd < 0) {
        int e = sbx_neg_errno();
        sbx_runtime_free(rt);
        return e;
    }
    int r = 0;
    for (int i = 0; i < 4 && r == 0; i++) {
        r = sbx_notify_filter_build_ex(&rt->filters[i >> 1][i & 1], i & 1,
                                       (i >> 1) ? add_denials : NULL, NULL);
        for (int j = 0; r < 0 && j < i; j++)
            sbx_notify_filter_free(&rt->filters[j >> 1][j & 1]);
    }
    rt->filter_ok = r == 0;
    int dr = sbx_baseline_build_notify(&rt->denials_only);
    if (dr == 0)
        dr = sbx_baseline_build_notify_nochildren(&rt->denials_nochildren);
    if (dr == 0)
        dr = den_init(rt);
    rt->denials_ok = dr == 0;
    if (dr < 0)
        sbx_warn("runtime: denial-reporting filter unavailable (%s): targets without "
                 "interception get their baseline denials unreported", strerror(-dr));
    rt->preload = find_preload();
    if (r < 0)
        sbx_warn("runtime: notify filter unavailable (%s): brokered policies cannot be spawned",
                 strerror(-r));
    *hooks = (sbx_broker_hooks){ .setup_section = rt_setup_section,
                                 .child_install_filter = rt_child_install_filter,
                                 .reports_denials = rt_reports_denials,
                                 .refuses_children = rt_refuses_children,
                                 .on_listener = rt_on_listener,
                                 .on_fs_peer = rt_on_fs_peer,
                                 .on_target_exit = rt_on_target_exit,
                                 .userdata = rt };
    *out = rt;
    return 0;
}

void sbx_runtime_free(sbx_runtime *rt)
{
    if (!rt)
        return;
    if (rt->den_started) {
        uint64_t one = 1;
        (void)!write(rt->den_wake, &one, sizeof one);
        pthread_join(rt->den_thread, NULL);
    }
    while (rt->targets) {
        rt_target *t = rt->targets;
        rt->targets = t->next;
        target_free(rt, t);
    }
    for (size_t i = 0; i < rt->n_pools; i++)
        sbx_ipc_pool_free(rt->pools[i]);
    free(rt->pools);
    sbx_ipc_dispatcher_free(rt->disp);
    while (rt->cache) {
        compiled *c = rt->cache;
        rt->cache = c->next;
        free(c->buf);
        sbx_policy_unref(c->policy);
        free(c);
    }
    if (rt->filter_ok)
        for (int i = 0; i < 4; i++)
            sbx_notify_filter_free(&rt->filters[i >> 1][i & 1]);
    sbx_bpf_free(&rt->denials_only);
    sbx_bpf_free(&rt->denials_nochildren);
    sbx_close_keep_errno(rt->den_epfd);
    sbx_close_keep_errno(rt->den_wake);
    pthread_cond_destroy(&rt->den_idle);
    free(rt->preload);
    sbx_close_keep_errno(rt->root_fd);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->audit_lock);
    free(rt);
}

bool sbx_runtime_has_audit(sbx_runtime *rt)
{
    if (!rt)
        return false;
    pthread_mutex_lock(&rt->audit_lock);
    bool on = rt->audit != NULL;
    pthread_mutex_unlock(&rt->audit_lock);
    return on;
}

const char *sbx_runtime_preload(const sbx_runtime *rt)
{
    return rt ? rt->preload : NULL;
}

int sbx_runtime_section_fd(sbx_runtime *rt, uint64_t id)
{
    int fd = -1;
    pthread_mutex_lock(&rt->lock);
    for (rt_target *t = rt->targets; t; t = t->next)
        if (t->id == id)
            fd = sbx_ipc_section_fd(t->section);
    pthread_mutex_unlock(&rt->lock);
    return fd;
}

int sbx_runtime_seed_compiled(sbx_runtime *rt, sbx_policy *pol, const void *buf, size_t size)
{
    compiled *c = calloc(1, sizeof *c);
    if (!c || !(c->buf = malloc(size))) {
        free(c);
        return -ENOMEM;
    }
    memcpy(c->buf, buf, size);
    c->size = size;
    sbx_policy_freeze(pol);
    c->policy = sbx_policy_ref(pol);
    c->users = 1; /* the seed's own use: kept until sbx_runtime_free */
    pthread_mutex_lock(&rt->lock);
    c->next = rt->cache;
    rt->cache = c;
    pthread_mutex_unlock(&rt->lock);
    return 0;
}

uint64_t sbx_runtime_ipc_calls(sbx_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    uint64_t n = rt->ipc_calls_done;
    for (rt_target *t = rt->targets; t; t = t->next)
        n += t->server ? sbx_ipc_server_calls(t->server) : 0;
    pthread_mutex_unlock(&rt->lock);
    return n;
}

size_t sbx_runtime_live_targets(sbx_runtime *rt)
{
    size_t n = 0;
    pthread_mutex_lock(&rt->lock);
    for (rt_target *t = rt->targets; t; t = t->next)
        n++;
    pthread_mutex_unlock(&rt->lock);
    return n;
}

uint64_t sbx_runtime_compiles(sbx_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    uint64_t n = rt->compiles;
    pthread_mutex_unlock(&rt->lock);
    return n;
}

/* ---- public entry points ---- */

SBX_API int sbx_broker_set_audit_callback(sbx_broker *b, sbx_audit_fn fn, void *ud)
{
    if (!b || !b->runtime)
        return -EINVAL;
    return sbx_runtime_set_audit(b->runtime, fn, ud);
}

SBX_API int sbx_broker_channel_new(sbx_target_info *info, const sbx_channel_listener *listener,
                                   sbx_channel **out)
{
    if (!info || !out || info->channel_fd < 0 || info->pid <= 0)
        return -EINVAL;
    sbx_channel_options o = { .peer_check = SBX_CHANNEL_PEER_EXPECT_PID,
                              .expected_peer_pid = info->pid };
    int fd = info->channel_fd;
    info->channel_fd = -1;
    return sbx_channel_new_from_fd(fd, &o, listener, out);
}
