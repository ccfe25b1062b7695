/* channel_worker — a broker that hands files to a sandboxed worker over an
 * sbx message channel.
 *
 *   channel_worker FILE...      count lines and checksum each FILE in a worker
 *   channel_worker --selftest   the same on generated files, with one crash
 *                               injected; exit 0 when every answer checks
 *
 * The broker (this process) reads each file itself and sends its bytes in a
 * DATA message; the worker (the same binary re-exec'd inside an sbx target
 * with no file rules at all: it can read nothing but its own view) answers
 * with RESULT {lines, fnv1a64}. If the worker dies, the broker notices the
 * channel error and the KILLED event, spawns a new worker and resends the
 * file in flight. The worker never gets a path, only bytes. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/broker.h>
#include <sbx/channel.h>
#include <sbx/target.h>

enum { MSG_DATA = 1, MSG_RESULT = 2, MSG_CRASH = 3 };

static uint64_t fnv1a(const unsigned char *p, size_t n, uint64_t *lines)
{
    uint64_t h = 1469598103934665603ull;
    *lines = 0;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
        *lines += p[i] == '\n';
    }
    return h;
}

/* ---- the worker (inside the sandbox) ---- */

static sbx_channel *g_wch;
static bool g_wdone;

static bool worker_msg(void *ctx, sbx_message *m)
{
    (void)ctx;
    if (sbx_message_type(m) == MSG_CRASH)
        abort(); /* a parser bug, as far as the broker can tell */
    if (sbx_message_type(m) != MSG_DATA)
        return false;
    sbx_pickle_reader r;
    sbx_message_reader(m, &r);
    uint32_t id;
    const void *data;
    size_t n;
    if (sbx_pickle_read_uint32(&r, &id) < 0 || sbx_pickle_read_bytes(&r, &data, &n) < 0)
        return false;
    uint64_t lines, sum = fnv1a(data, n, &lines);
    sbx_message *rep = sbx_message_new(0, MSG_RESULT, SBX_PRIORITY_NORMAL);
    sbx_pickle *p = sbx_message_pickle(rep);
    sbx_pickle_write_uint32(p, id);
    sbx_pickle_write_uint64(p, lines);
    sbx_pickle_write_uint64(p, sum);
    sbx_channel_send(g_wch, rep);
    return true;
}

static void worker_err(void *ctx, int e)
{
    (void)ctx;
    (void)e;
    g_wdone = true;
}

static int worker_main(void)
{
    sbx_channel_listener l = { .on_message = worker_msg, .on_error = worker_err };
    if (sbx_target_channel(&l, &g_wch) != 0) {
        fprintf(stderr, "worker: no channel from the broker\n");
        return 1;
    }
    while (!g_wdone) {
        struct pollfd pf = { .fd = sbx_channel_fd(g_wch), .events = sbx_channel_poll_events(g_wch) };
        if (poll(&pf, 1, 10000) <= 0)
            break;
        if (sbx_channel_process_events(g_wch) < 0)
            break;
    }
    sbx_channel_free(g_wch);
    return 0;
}

/* ---- the broker ---- */

typedef struct job {
    const char *name;
    unsigned char *data;
    size_t size;
    bool crash_first; /* selftest: make the worker crash on this one once */
    bool done;
    uint64_t lines, sum;
} job;

typedef struct broker_state {
    sbx_broker *b;
    sbx_policy *policy;
    char self[PATH_MAX];
    sbx_channel *ch;
    uint64_t worker_id;
    bool channel_broken;
    job *cur;
    bool answered;
    unsigned crashes;
} broker_state;

static bool broker_msg(void *ctx, sbx_message *m)
{
    broker_state *s = ctx;
    if (sbx_message_type(m) != MSG_RESULT || !s->cur)
        return false;
    sbx_pickle_reader r;
    sbx_message_reader(m, &r);
    uint32_t id;
    uint64_t lines, sum;
    /* The worker is untrusted: a malformed or unexpected answer is ignored. */
    if (sbx_pickle_read_uint32(&r, &id) < 0 || sbx_pickle_read_uint64(&r, &lines) < 0 ||
        sbx_pickle_read_uint64(&r, &sum) < 0)
        return false;
    s->cur->lines = lines;
    s->cur->sum = sum;
    s->answered = true;
    return true;
}

static void broker_err(void *ctx, int e)
{
    (void)e;
    ((broker_state *)ctx)->channel_broken = true;
}

static void on_event(const sbx_event *e, void *ud)
{
    broker_state *s = ud;
    if (e->type == SBX_EVENT_KILLED && e->target_id == s->worker_id)
        fprintf(stderr, "channel_worker: worker %d killed by signal %d\n", (int)e->pid, e->signal);
}

static int start_worker(broker_state *s)
{
    static char worker_arg[] = "--worker";
    static char asan_env[] = "ASAN_OPTIONS=detect_leaks=0"; /* LeakSanitizer needs ptrace */
    char *argv[] = { s->self, worker_arg, NULL };
    char *envp[] = { asan_env, NULL };
    sbx_spawn_options o = { .path = s->self, .argv = argv, .envp = envp,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = SBX_STDIO_NULL,
                            .stderr_fd = 2, .channel = true };
    sbx_target_info info;
    int r = sbx_broker_spawn(s->b, s->policy, &o, &info);
    if (r < 0) {
        fprintf(stderr, "channel_worker: spawn: %s\n", info.error);
        return r;
    }
    s->worker_id = info.id;
    sbx_channel_listener l = { .on_message = broker_msg, .on_error = broker_err, .ctx = s };
    s->channel_broken = false;
    return sbx_broker_channel_new(&info, &l, &s->ch);
}

static void stop_worker(broker_state *s)
{
    sbx_channel_free(s->ch);
    s->ch = NULL;
    sbx_broker_wait_all(s->b, 5000);
}

/* Send one job and wait for its answer; false when the worker died. */
static bool run_job(broker_state *s, job *j)
{
    s->cur = j;
    s->answered = false;
    sbx_message *m = sbx_message_new(0, j->crash_first ? MSG_CRASH : MSG_DATA, SBX_PRIORITY_NORMAL);
    j->crash_first = false;
    sbx_pickle *p = sbx_message_pickle(m);
    sbx_pickle_write_uint32(p, 0);
    sbx_pickle_write_bytes(p, j->data, j->size);
    if (sbx_channel_send(s->ch, m) < 0)
        return false;
    while (!s->answered && !s->channel_broken) {
        struct pollfd pf = { .fd = sbx_channel_fd(s->ch), .events = sbx_channel_poll_events(s->ch) };
        if (poll(&pf, 1, 10000) <= 0)
            return false;
        if (sbx_channel_process_events(s->ch) < 0)
            s->channel_broken = true;
    }
    return s->answered;
}

static int read_file(const char *path, job *j)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 4096;
    j->data = malloc(cap);
    j->size = 0;
    size_t k;
    while (j->data && (k = fread(j->data + j->size, 1, cap - j->size, f)) > 0) {
        j->size += k;
        if (j->size == cap)
            j->data = realloc(j->data, cap *= 2);
    }
    fclose(f);
    return j->data ? 0 : -ENOMEM;
}

static int broker_main(job *jobs, size_t n, bool check)
{
    broker_state s = { 0 };
    ssize_t k = readlink("/proc/self/exe", s.self, sizeof s.self - 1);
    if (k <= 0)
        return 1;
    s.self[k] = '\0';
    if (sbx_broker_new(&s.b) < 0)
        return 1;
    sbx_broker_set_event_callback(s.b, on_event, &s);
    s.policy = sbx_broker_create_policy(s.b);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", s.self);
    *strrchr(dir, '/') = '\0';
    sbx_policy_add_view(s.policy, dir, SBX_VIEW_EXEC); /* only to exec ourselves */
    int bad = 0;
    if (start_worker(&s) < 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned tries = 0;
        while (!run_job(&s, &jobs[i])) {
            s.crashes++;
            fprintf(stderr, "channel_worker: worker lost on %s; restarting\n", jobs[i].name);
            stop_worker(&s);
            if (++tries > 2 || start_worker(&s) < 0)
                return 1;
        }
        uint64_t lines, sum = fnv1a(jobs[i].data, jobs[i].size, &lines);
        bool ok = lines == jobs[i].lines && sum == jobs[i].sum;
        bad += !ok;
        printf("%s: %llu lines, fnv1a %016llx%s\n", jobs[i].name, (unsigned long long)jobs[i].lines,
               (unsigned long long)jobs[i].sum, ok ? "" : " (MISMATCH)");
    }
    stop_worker(&s);
    sbx_policy_unref(s.policy);
    sbx_broker_free(s.b);
    if (check && s.crashes != 1) {
        fprintf(stderr, "channel_worker: expected exactly one crash, saw %u\n", s.crashes);
        return 1;
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--worker"))
        return worker_main();
    if (argc == 2 && !strcmp(argv[1], "--selftest")) {
        static unsigned char a[] = "one\ntwo\nthree\n", b[] = "no newline", c[] = "\n\n\n\n";
        job jobs[3] = {
            { .name = "a", .data = a, .size = sizeof a - 1 },
            { .name = "b", .data = b, .size = sizeof b - 1, .crash_first = true },
            { .name = "c", .data = c, .size = sizeof c - 1 },
        };
        return broker_main(jobs, 3, true);
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE... | --selftest\n", argv[0]);
        return 2;
    }
    job *jobs = calloc((size_t)argc - 1, sizeof *jobs);
    for (int i = 1; i < argc; i++) {
        jobs[i - 1].name = argv[i];
        if (read_file(argv[i], &jobs[i - 1]) < 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            return 1;
        }
    }
    int r = broker_main(jobs, (size_t)argc - 1, false);
    for (int i = 0; i < argc - 1; i++)
        free(jobs[i].data);
    free(jobs);
    return r;
}
