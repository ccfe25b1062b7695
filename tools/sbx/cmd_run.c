/* sbx command — `sbx run`: build the policy, make PROGRAM and the working
 * directory visible, spawn the target with stdio passed through and a
 * clean environment, forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to it, wait for
 * its end and exit with its status (docs/sbx.1, EXIT STATUS).
 *
 * Order matters: the scratch directory exists before the policy is built
 * (so ${SCRATCH} names it), PROGRAM is resolved before any sandbox exists
 * (126/127 are decided here), and every failure after the scratch exists
 * removes it again. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sbx/broker.h>
#include <sbx/error.h>
#include <sbx/policy.h>

#include "audit_log.h"
#include "base/cleanup.h"
#include "base/fd.h"
#include "cli_policy.h"
#include "cli_prep.h"
#include "commands.h"
#include "exit_codes.h"
#include "policy/policy_object.h"

/* The defaults of the target's environment; --env entries replace them. */
static const char *const default_env[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp",
                                           "LANG=C.UTF-8" };

/* Signals sbx forwards to the target (and then exits 128 + N). */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* How long a forwarded signal may take to end the target before SIGKILL. */
#define FORWARD_GRACE_MS 3000

/* Shared between the main thread and the broker's events thread. */
typedef struct run_state {
    pthread_mutex_t lock;
    int wake_fd; /* eventfd: the end event arrived */
    bool ended, killed, memory_limit;
    int code; /* exit status or signal */
    const char *program;
    sbx_audit_log *log;
    bool quiet;
    sbx_cli_run_hooks *hooks; /* NULL for plain `sbx run` */
} run_state;

static void on_event(const sbx_event *ev, void *ud)
{
    run_state *st = ud;
    sbx_audit_log_event(st->log, ev, st->program);
    switch (ev->type) {
    case SBX_EVENT_LIMIT:
        if (!st->quiet) {
            static const char *const names[] = { "memory", "process", "CPU time", "open files",
                                                 "file size" };
            fprintf(stderr, "sbx: run: %s hit its %s limit\n", st->program,
                    (unsigned)ev->limit < SBX_LIMIT_COUNT_ ? names[ev->limit] : "?");
        }
        break;
    case SBX_EVENT_VIOLATION:
        if (!st->quiet)
            fprintf(stderr, "sbx: run: %s made a forbidden system call and was killed\n",
                    st->program);
        break;
    case SBX_EVENT_EXITED:
    case SBX_EVENT_KILLED:
        pthread_mutex_lock(&st->lock);
        st->ended = true;
        st->killed = ev->type == SBX_EVENT_KILLED;
        st->code = st->killed ? ev->signal : ev->code;
        st->memory_limit = ev->memory_limit;
        pthread_mutex_unlock(&st->lock);
        uint64_t one = 1;
        (void)!write(st->wake_fd, &one, sizeof one);
        break;
    case SBX_EVENT_ALARM:
        if (!st->quiet)
            fprintf(stderr, "sbx: run: %s touched a file an alarm rule watches (refused)\n",
                    st->program);
        break;
    case SBX_EVENT_STARTED:
    case SBX_EVENT_DENIED: /* refused with EPERM; in the log */
        break;
    }
}

/* Every brokered or denied filesystem decision, into the log. Serialised
 * by the broker; the log has its own lock anyway (events come from
 * another thread). */
static void on_audit(const sbx_audit_record *rec, void *ud)
{
    run_state *st = ud;
    sbx_cli_audit_decision d = {
        .time_ns = rec->time_ns,
        .target_id = rec->target_id,
        .pid = rec->pid,
        .syscall = rec->syscall,
        .op = rec->op,
        .path = rec->path,
        .path2 = rec->path2,
        .flags = rec->flags,
        .decision = sbx_audit_decision_name(rec->decision),
        .alarm = rec->alarm,
        .origin = rec->origin,
        .err = rec->error,
    };
    if (st->log)
        sbx_audit_log_decision(st->log, &d);
    if (st->hooks && st->hooks->audit)
        st->hooks->audit(rec, st->hooks->audit_ud);
}

/* Everything one run holds; released by run_cleanup on every path. */
typedef struct run_ctx {
    const sbx_cli *cli;
    char scratch[PATH_MAX];
    bool have_scratch;
    sbx_policy *policy;
    sbx_broker *broker;
    char **envp;
    run_state st;
    bool st_init;
    int sig_fd;
    sigset_t old_mask;
    bool mask_set;
} run_ctx;

static void run_cleanup(run_ctx *c)
{
    /* The broker first: it kills what is still alive and no callback runs
     * afterwards, so the log can be closed safely. */
    sbx_broker_free(c->broker);
    c->broker = NULL;
    sbx_policy_unref(c->policy);
    c->policy = NULL;
    sbx_cli_env_free(c->envp);
    c->envp = NULL;
    if (c->st_init) {
        int r = sbx_audit_log_close(c->st.log);
        if (r < 0)
            fprintf(stderr, "sbx: run: --log %s: %s\n", c->cli->log_path, strerror(-r));
        if (c->st.wake_fd >= 0)
            close(c->st.wake_fd);
        pthread_mutex_destroy(&c->st.lock);
        c->st_init = false;
    }
    if (c->sig_fd >= 0)
        close(c->sig_fd);
    c->sig_fd = -1;
    if (c->mask_set)
        pthread_sigmask(SIG_SETMASK, &c->old_mask, NULL);
    c->mask_set = false;
    if (c->have_scratch) {
        if (c->cli->keep_scratch) {
            if (!c->cli->quiet)
                fprintf(stderr, "sbx: run: scratch directory kept: %s\n", c->scratch);
        } else {
            int r = sbx_cli_scratch_remove(c->scratch);
            if (r < 0)
                fprintf(stderr, "sbx: run: cannot remove the scratch directory %s: %s\n",
                        c->scratch, strerror(-r));
        }
        c->have_scratch = false;
    }
}

static void print_verbose(const sbx_policy *p, const char *path, const char *cwd,
                          const char *scratch)
{
    static const char *const backends[] = { "auto", "notify", "trap" };
    static const char *const lockdowns[] = { "?", "interactive", "limited", "lockdown" };
    static const char *const limit_names[] = { "memory", "processes", "cpu", "files",
                                               "filesize" };
    size_t brokered = 0, denied = 0;
    for (size_t i = 0; i < p->n_rules; i++) {
        if (p->rules[i].semantics == SBX_FILES_DENY)
            denied++;
        else
            brokered++;
    }
    fprintf(stderr, "sbx: run: program %s, cwd %s, scratch %s\n", path, cwd, scratch);
    fprintf(stderr, "sbx: run: %zu rules (%zu allow, %zu deny), backend %s, lockdown %s, net %s\n",
            p->n_rules, brokered, denied, backends[p->backend % 3],
            lockdowns[(unsigned)p->lockdown < 4 ? p->lockdown : 0],
            p->net == SBX_NET_LOOPBACK ? "loopback" : "none");
    fprintf(stderr, "sbx: run: views: default %s", p->default_view ? "on" : "off");
    for (size_t i = 0; i < p->n_views; i++) {
        unsigned f = p->views[i].flags;
        fprintf(stderr, ", %s%s%s%s", p->views[i].path, f & SBX_VIEW_WRITABLE ? " (rw)" : "",
                f & SBX_VIEW_EXEC ? " (exec)" : "", f & SBX_VIEW_OPTIONAL ? " (optional)" : "");
    }
    fprintf(stderr, "\nsbx: run: limits:");
    for (int l = 0; l < SBX_LIMIT_COUNT_; l++) {
        uint64_t v = sbx_policy_effective_limit(p, (sbx_limit)l);
        char val[32];
        if (v == SBX_LIMIT_UNSET)
            snprintf(val, sizeof val, "unlimited");
        else if (l == SBX_LIMIT_MEMORY || l == SBX_LIMIT_FILE_SIZE)
            sbx_cli_format_size(val, sizeof val, v);
        else
            snprintf(val, sizeof val, "%" PRIu64 "%s", v, l == SBX_LIMIT_CPU_SECONDS ? "s" : "");
        fprintf(stderr, " %s %s%s", limit_names[l], val, l + 1 < SBX_LIMIT_COUNT_ ? "," : "\n");
    }
}

/* The target's environment: the defaults, then --env, then SBX_SCRATCH. */
static char **build_env(const sbx_cli *cli, const char *scratch)
{
    size_t n = SBX_ARRAY_SIZE(default_env) + cli->n_env;
    const char **all = calloc(n + 1, sizeof *all);
    if (!all)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < SBX_ARRAY_SIZE(default_env); i++)
        all[k++] = default_env[i];
    for (size_t i = 0; i < cli->n_env; i++)
        all[k++] = cli->env[i];
    char **envp = sbx_cli_build_env(all, k, scratch);
    free(all);
    return envp;
}

/* The target's identity outside its user namespace when sbx is root: the
 * user who ran `sudo sbx` (SUDO_UID/SUDO_GID, never 0), else 65534. Files
 * it creates, natively or brokered, then belong to that user, and brokered
 * calls are checked with that user's permissions. Not root: the broker
 * maps the target to sbx's own ids. */
static void outside_ids(uid_t *uid, gid_t *gid)
{
    *uid = 65534;
    *gid = 65534;
    const char *u = getenv("SUDO_UID"), *g = getenv("SUDO_GID");
    char *end;
    if (!u || !g)
        return;
    errno = 0;
    unsigned long uv = strtoul(u, &end, 10);
    if (errno || end == u || *end || uv == 0 || uv >= 0xfffffffful)
        return;
    unsigned long gv = strtoul(g, &end, 10);
    if (errno || end == g || *end || gv == 0 || gv >= 0xfffffffful)
        return;
    *uid = (uid_t)uv;
    *gid = (gid_t)gv;
}

/* The scratch directory belongs to the target's outside identity. */
static int chown_scratch(const char *scratch, uid_t uid, gid_t gid)
{
    if (geteuid() != 0)
        return 0;
    return chown(scratch, uid, gid) < 0 ? sbx_neg_errno() : 0;
}

/* Block the forwarded signals (in every thread: the broker's threads
 * inherit the mask) and read them from a signalfd. */
static int setup_signals(run_ctx *c)
{
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < SBX_ARRAY_SIZE(forwarded); i++)
        sigaddset(&set, forwarded[i]);
    if (pthread_sigmask(SIG_BLOCK, &set, &c->old_mask) != 0)
        return -EINVAL;
    c->mask_set = true;
    c->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return c->sig_fd < 0 ? sbx_neg_errno() : 0;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Wait for the end event; forward signals. Returns the signal that made
 * sbx give up waiting politely (0 if none). */
static int wait_end(run_ctx *c, uint64_t target_id)
{
    int got_sig = 0;
    long long deadline = -1; /* ms left after a forwarded signal */
    for (;;) {
        pthread_mutex_lock(&c->st.lock);
        bool ended = c->st.ended;
        pthread_mutex_unlock(&c->st.lock);
        if (ended)
            return got_sig;
        struct pollfd pfd[2] = { { .fd = c->st.wake_fd, .events = POLLIN },
                                 { .fd = c->sig_fd, .events = POLLIN } };
        int timeout = deadline < 0 ? -1 : (int)deadline;
        unsigned long long t0 = sbx_now_ns();
        int n = poll(pfd, 2, timeout);
        if (n < 0 && errno != EINTR)
            return got_sig;
        if (deadline >= 0) {
            deadline -= (long long)((sbx_now_ns() - t0) / 1000000u);
            if (n == 0 || deadline <= 0) {
                /* It did not end from the forwarded signal: kill it. */
                (void)sbx_broker_kill(c->broker, target_id, SIGKILL);
                deadline = -1;
            }
        }
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(c->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                int sig = (int)si.ssi_signo;
                if (!got_sig) {
                    got_sig = sig;
                    deadline = FORWARD_GRACE_MS;
                } else {
                    sig = SIGKILL; /* a second signal: no more waiting */
                    deadline = -1;
                }
                (void)sbx_broker_kill(c->broker, target_id, sig);
            }
        }
    }
}

static int run(run_ctx *c)
{
    const sbx_cli *cli = c->cli;
    int r = sbx_cli_scratch_create(c->scratch, sizeof c->scratch);
    if (r < 0) {
        fprintf(stderr, "sbx: run: cannot create the scratch directory: %s (check $TMPDIR)\n",
                strerror(-r));
        return SBX_EXIT_FAILURE;
    }
    c->have_scratch = true;
    uid_t ouid;
    gid_t ogid;
    outside_ids(&ouid, &ogid);
    if ((r = chown_scratch(c->scratch, ouid, ogid)) < 0) {
        fprintf(stderr, "sbx: run: cannot hand the scratch directory %s to the target: %s\n",
                c->scratch, strerror(-r));
        return SBX_EXIT_FAILURE;
    }
    sbx_cli_vars vars;
    sbx_cli_vars_init(&vars, c->scratch);
    if (c->st.hooks && c->st.hooks->scratch_out)
        snprintf(c->st.hooks->scratch_out, c->st.hooks->cap, "%s", c->scratch);
    if (c->st.hooks && c->st.hooks->cwd_out)
        snprintf(c->st.hooks->cwd_out, c->st.hooks->cap, "%s", vars.cwd);
    if ((r = sbx_cli_build_policy(cli, &vars.vars, true, &c->policy)))
        return r;

    /* The working directory: --cwd scratch, --cwd DIR, or where sbx runs. */
    char cwd[PATH_MAX];
    bool explicit_cwd = cli->cwd != NULL;
    if (cli->cwd && !strcmp(cli->cwd, "scratch")) {
        snprintf(cwd, sizeof cwd, "%s", c->scratch);
    } else if (cli->cwd) {
        struct stat st;
        if (stat(cli->cwd, &st) < 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "sbx: run: --cwd: '%s' is not a directory (give a directory or "
                            "'scratch')\n", cli->cwd);
            return SBX_EXIT_FAILURE;
        }
        if (!realpath(cli->cwd, cwd)) {
            fprintf(stderr, "sbx: run: --cwd: '%s': %s\n", cli->cwd, strerror(errno));
            return SBX_EXIT_FAILURE;
        }
    } else if (!getcwd(cwd, sizeof cwd)) {
        snprintf(cwd, sizeof cwd, "/");
    }

    char path[PATH_MAX];
    if ((r = sbx_cli_resolve_program(cli->program_argv[0], getenv("PATH"), path, sizeof path)))
        return r;
    /* The program is exec'd by the path sbx resolved, made absolute. */
    if (path[0] != '/') {
        char abs[PATH_MAX];
        if (sbx_cli_normalize_path(path, vars.cwd, abs, sizeof abs) < 0) {
            fprintf(stderr, "sbx: run: %s: path too long\n", cli->program_argv[0]);
            return SBX_EXIT_NOT_FOUND;
        }
        snprintf(path, sizeof path, "%s", abs);
    }
    int v = sbx_cli_add_program_views(c->policy, path, getenv("PATH"));
    if (v < 0) {
        fprintf(stderr, "sbx: run: %s: cannot make the program visible to the target: %s\n",
                cli->program_argv[0], sbx_strerror(v));
        return SBX_EXIT_FAILURE;
    }

    char why[512];
    r = sbx_cli_plan_cwd(c->policy, cwd, NULL, why, sizeof why);
    if (r < 0) {
        fprintf(stderr, "sbx: run: cannot make %s visible to the target: %s\n", cwd,
                sbx_strerror(r));
        return SBX_EXIT_FAILURE;
    }
    if (r == 1) {
        if (explicit_cwd) {
            fprintf(stderr, "sbx: run: --cwd %s: not visible to the target: %s\n", cli->cwd, why);
            return SBX_EXIT_FAILURE;
        }
        if (!cli->quiet)
            fprintf(stderr, "sbx: run: note: the current directory %s is not visible to the "
                            "target (%s); it starts in /\n", cwd, why);
        snprintf(cwd, sizeof cwd, "/");
    }

    if (!(c->envp = build_env(cli, c->scratch))) {
        fprintf(stderr, "sbx: run: out of memory\n");
        return SBX_EXIT_FAILURE;
    }

    /* The run state and the log before the broker exists, so no event is lost. */
    if (pthread_mutex_init(&c->st.lock, NULL) != 0)
        return SBX_EXIT_FAILURE;
    c->st_init = true;
    c->st.program = path;
    c->st.quiet = cli->quiet;
    c->st.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->st.wake_fd < 0) {
        fprintf(stderr, "sbx: run: eventfd: %s\n", strerror(errno));
        return SBX_EXIT_FAILURE;
    }
    if (cli->log_path) {
        r = sbx_audit_log_open(cli->log_path, &c->st.log);
        if (r < 0) {
            fprintf(stderr, "sbx: run: --log %s: %s (give a writable file)\n", cli->log_path,
                    strerror(-r));
            return SBX_EXIT_FAILURE;
        }
    }
    if ((r = setup_signals(c)) < 0) {
        fprintf(stderr, "sbx: run: cannot set up signal forwarding: %s\n", sbx_strerror(r));
        return SBX_EXIT_FAILURE;
    }
    if ((r = sbx_broker_new(&c->broker)) < 0) {
        fprintf(stderr, "sbx: run: cannot start the broker: %s\n", sbx_strerror(r));
        return SBX_EXIT_FAILURE;
    }
    (void)sbx_broker_set_event_callback(c->broker, on_event, &c->st);
    if (c->st.log || (c->st.hooks && c->st.hooks->audit))
        (void)sbx_broker_set_audit_callback(c->broker, on_audit, &c->st);
    if (cli->verbose)
        print_verbose(c->policy, path, cwd, c->scratch);

    sbx_spawn_options o = {
        .path = path,
        .argv = cli->program_argv,
        .envp = c->envp,
        .cwd = cwd,
        .stdin_fd = fd_open(0) ? 0 : SBX_STDIO_NULL,
        .stdout_fd = fd_open(1) ? 1 : SBX_STDIO_NULL,
        .stderr_fd = fd_open(2) ? 2 : SBX_STDIO_NULL,
        .outside_uid = ouid,
        .outside_gid = ogid,
    };
    sbx_target_info info;
    r = sbx_broker_spawn(c->broker, c->policy, &o, &info);
    if (r < 0 && r == SBX_ERROR_SPAWN && info.failed_step == SBX_STEP_CWD && !explicit_cwd &&
        strcmp(cwd, "/") != 0) {
        /* The directory is in the view but the target's identity cannot
         * enter it (a 0700 directory of another user): start in /. */
        if (!cli->quiet)
            fprintf(stderr, "sbx: run: note: the target cannot enter %s (%s); it starts in /\n",
                    cwd, strerror(info.failed_errno));
        o.cwd = "/";
        r = sbx_broker_spawn(c->broker, c->policy, &o, &info);
    }
    if (r < 0) {
        const char *step = sbx_spawn_step_name(info.failed_step);
        sbx_audit_log_spawn_failed(c->st.log, path, r == SBX_ERROR_SPAWN ? step : "broker",
                                   r == SBX_ERROR_SPAWN ? info.failed_errno : -r,
                                   r == SBX_ERROR_SPAWN ? info.error : sbx_strerror(r));
        if (r == SBX_ERROR_SPAWN)
            fprintf(stderr, "sbx: run: %s: cannot start the sandbox: %s\n", cli->program_argv[0],
                    info.error[0] ? info.error : step);
        else
            fprintf(stderr, "sbx: run: %s: cannot start the sandbox: %s\n", cli->program_argv[0],
                    sbx_strerror(r));
        return SBX_EXIT_FAILURE;
    }
    if (c->st.hooks) {
        c->st.hooks->started = true;
        if (c->st.hooks->workdir_out)
            snprintf(c->st.hooks->workdir_out, c->st.hooks->cap, "%s", o.cwd);
    }
    if (info.n_warnings && !cli->quiet) {
        /* One "sbx: run: warning: ..." line per limit that could not be applied. */
        char *save = NULL;
        for (char *line = strtok_r(info.warnings, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save))
            fprintf(stderr, "sbx: run: warning: %s\n", line);
    }
    int sig = wait_end(c, info.id);
    (void)sbx_broker_wait_all(c->broker, -1);
    pthread_mutex_lock(&c->st.lock);
    bool ended = c->st.ended, killed = c->st.killed;
    int code = c->st.code;
    pthread_mutex_unlock(&c->st.lock);
    if (sig)
        return SBX_EXIT_SIGNAL_BASE + sig;
    if (!ended) {
        fprintf(stderr, "sbx: run: lost track of the target\n");
        return SBX_EXIT_FAILURE;
    }
    return sbx_cli_exit_status(killed, code);
}

int sbx_cli_run_program(const sbx_cli *cli, sbx_cli_run_hooks *hooks)
{
    run_ctx c = { .cli = cli, .sig_fd = -1 };
    c.st.wake_fd = -1;
    c.st.hooks = hooks;
    int r = run(&c);
    run_cleanup(&c);
    return r;
}

int sbx_cmd_run(const sbx_cli *cli)
{
    return sbx_cli_run_program(cli, NULL);
}
