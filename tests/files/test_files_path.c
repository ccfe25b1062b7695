/* files path core: canonicalisation, joins, /proc/self rewriting, and
 * resolution against a (real, forked) task's cwd and dirfds. */
#include <criterion/criterion.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sbx_test.h"
#include "subsys/files/files_path.h"
#include "subsys/files/files_policy.h"

static void expect_canon(const char *in, const char *want)
{
    char out[SBX_FILES_PATH_MAX];
    int r = sbx_files_path_canon(in, strlen(in), out, sizeof out);
    cr_expect_eq(r, (int)strlen(want), "canon(%s) = %d, want %s", in, r, want);
    if (r >= 0)
        cr_expect_str_eq(out, want, "canon(%s)", in);
}

static void expect_canon_err(const char *in, size_t len, int err)
{
    char out[SBX_FILES_PATH_MAX];
    int r = sbx_files_path_canon(in, len, out, sizeof out);
    cr_expect_eq(r, err, "canon(%.*s) = %d, want %d", (int)(len > 60 ? 60 : len), in, r, err);
}

Test(files_path, canon_basic)
{
    expect_canon("/", "/");
    expect_canon("//", "/");
    expect_canon("///a", "/a");
    expect_canon("/a/b/c", "/a/b/c");
    expect_canon("/a//b///c", "/a/b/c");
    expect_canon("/a/./b/.", "/a/b/");
    expect_canon("/a/b/..", "/a/");
    expect_canon("/a/b/../c", "/a/c");
    expect_canon("/..", "/");
    expect_canon("/../../..", "/");
    expect_canon("/../etc/shadow", "/etc/shadow");
    expect_canon("/a/../../../etc/shadow", "/etc/shadow");
    expect_canon("/.", "/");
    expect_canon("/./", "/");
    expect_canon("/a/", "/a/");
    expect_canon("/a//", "/a/");
    expect_canon("/a/b/c/../../..", "/");
    expect_canon("/...", "/...");
    expect_canon("/.a/..b/a..", "/.a/..b/a..");
    expect_canon("/a/.../b", "/a/.../b");
}

Test(files_path, canon_rejects_hostile)
{
    expect_canon_err("", 0, -ENOENT);
    expect_canon_err("a/b", 3, -EINVAL);
    expect_canon_err("./a", 3, -EINVAL);
    /* Embedded NUL: a policy matching "/ok" must not see "/ok\0/../etc". */
    expect_canon_err("/ok\0/../etc", 11, -EINVAL);
    expect_canon_err("\0", 1, -EINVAL);

    static char big[SBX_FILES_PATH_MAX + 16];
    memset(big, 'a', sizeof big);
    big[0] = '/';
    for (size_t i = 100; i < sizeof big; i += 100)
        big[i] = '/';
    expect_canon_err(big, SBX_FILES_PATH_MAX, -ENAMETOOLONG);
}

Test(files_path, canon_length_edges)
{
    /* Exactly PATH_MAX - 1 bytes of input that stays that long fits. */
    static char p[SBX_FILES_PATH_MAX];
    memset(p, 'b', sizeof p);
    p[0] = '/';
    for (size_t i = 200; i < sizeof p; i += 200)
        p[i] = '/';
    char out[SBX_FILES_PATH_MAX];
    int r = sbx_files_path_canon(p, SBX_FILES_PATH_MAX - 1, out, sizeof out);
    cr_expect_eq(r, SBX_FILES_PATH_MAX - 1);
    /* A long input that collapses to something short is fine. */
    static char q[SBX_FILES_PATH_MAX];
    size_t n = 0;
    while (n + 3 < SBX_FILES_PATH_MAX - 3) {
        memcpy(q + n, "/./", 3);
        n += 3;
    }
    q[n++] = 'x';
    r = sbx_files_path_canon(q, n, out, sizeof out);
    cr_expect_eq(r, 2);
    cr_expect_str_eq(out, "/x");
    /* Component over NAME_MAX. */
    char comp[NAME_MAX + 3];
    comp[0] = '/';
    memset(comp + 1, 'c', NAME_MAX + 1);
    expect_canon_err(comp, NAME_MAX + 2, -ENAMETOOLONG);
    cr_expect_eq(sbx_files_path_canon(comp, NAME_MAX + 1, out, sizeof out), NAME_MAX + 1);
    /* Small output buffers never overflow. */
    char small[4];
    cr_expect_eq(sbx_files_path_canon("/abc", 4, small, sizeof small), -ENAMETOOLONG);
    cr_expect_eq(sbx_files_path_canon("/ab", 3, small, sizeof small), 3);
    cr_expect_eq(sbx_files_path_canon("/ab/", 4, small, sizeof small), -ENAMETOOLONG);
    cr_expect_eq(sbx_files_path_canon("/", 1, small, 1), -ENAMETOOLONG);
}

Test(files_path, canon_random_is_idempotent_and_clean)
{
    /* Random strings over a hostile alphabet: the result, when accepted, is
     * canonical (re-canonicalising changes nothing) and has no "." / ".."
     * component and no "//". */
    static const char alpha[] = "/./..a\\*";
    unsigned seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        char in[64];
        size_t len = 1 + (seed % 60);
        in[0] = '/';
        for (size_t i = 1; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        seed = seed * 1103515245u + 12345u;
        char out[SBX_FILES_PATH_MAX], again[SBX_FILES_PATH_MAX];
        int r = sbx_files_path_canon(in, len, out, sizeof out);
        cr_assert_geq(r, 1);
        cr_assert_eq(sbx_files_path_canon(out, (size_t)r, again, sizeof again), r);
        cr_assert_str_eq(out, again);
        cr_assert_null(strstr(out, "//"), "%s", out);
        cr_assert_null(strstr(out, "/./"), "%s", out);
        cr_assert_null(strstr(out, "/../"), "%s", out);
        size_t ol = strlen(out);
        cr_assert(!(ol >= 2 && strcmp(out + ol - 2, "/.") == 0), "%s", out);
        cr_assert(!(ol >= 3 && strcmp(out + ol - 3, "/..") == 0), "%s", out);
    }
}

/* A model of canonicalisation, written component by component: what the
 * result must be for in[0..len) with an output buffer of cap bytes
 * (inputs here are short and NUL-free). A component that would not fit,
 * even one a later ".." removes, is ENAMETOOLONG, like the real walk. */
static int model_canon(const char *in, size_t len, char *out, size_t cap)
{
    if (len == 0)
        return -ENOENT;
    if (in[0] != '/')
        return -EINVAL;
    if (cap < 2)
        return -ENAMETOOLONG;
    size_t o = 1;
    out[0] = '/';
    bool dir = false;
    for (size_t i = 0; i < len;) {
        while (i < len && in[i] == '/')
            i++;
        if (i == len)
            break;
        size_t s = i;
        while (i < len && in[i] != '/')
            i++;
        size_t n = i - s;
        if (n > NAME_MAX)
            return -ENAMETOOLONG;
        if (n == 1 && in[s] == '.') {
            dir = true;
        } else if (n == 2 && in[s] == '.' && in[s + 1] == '.') {
            while (o > 1 && out[o - 1] != '/')
                o--;
            if (o > 1)
                o--;
            dir = true;
        } else {
            size_t sep = o > 1 ? 1 : 0;
            if (o + sep + n + 1 > cap)
                return -ENAMETOOLONG;
            if (sep)
                out[o++] = '/';
            memcpy(out + o, in + s, n);
            o += n;
            dir = i < len;
        }
    }
    if (dir && o > 1) {
        if (o + 2 > cap)
            return -ENAMETOOLONG;
        out[o++] = '/';
    }
    out[o] = '\0';
    return (int)o;
}

/* The canonical form of every input, already canonical or not (the
 * plain ones are copied without the walk), with every output size, is
 * the model's: same length, same bytes, same error. */
Test(files_path, canon_matches_the_model)
{
    static const char alpha[] = "//..ab";
    unsigned seed = 777;
    static char in[NAME_MAX + 8];
    for (int iter = 0; iter < 200000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + ((seed >> 16) % 40); /* across several 8-byte words */
        if (iter % 1000 == 0)
            len = NAME_MAX - 2 + (size_t)(iter / 1000) % 6; /* components around NAME_MAX */
        in[0] = '/';
        for (size_t i = 1; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = iter % 1000 == 0 ? 'n' : alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        seed = seed * 1103515245u + 12345u;
        size_t cap = iter % 3 ? SBX_FILES_PATH_MAX : 1 + (seed >> 16) % 30;
        char got[SBX_FILES_PATH_MAX], want[SBX_FILES_PATH_MAX];
        int r = sbx_files_path_canon(in, len, got, cap);
        int m = model_canon(in, len, want, cap);
        cr_assert_eq(r, m, "canon(%.*s) cap %zu = %d, model %d", (int)len, in, cap, r, m);
        if (m >= 0)
            cr_assert_str_eq(got, want, "canon(%.*s)", (int)len, in);
    }
}

/* Past NAME_MAX + 1 bytes the plain check walks component by component
 * (memchr): long paths made of names of 1..3 bytes, 255 and 256 bytes,
 * ".", "..", ".x", empty ones, bytes >= 0x80, with or without a trailing
 * '/', up to PATH_MAX, through canon and through join (whose input may
 * pass PATH_MAX), with output sizes at and around the result: the
 * model's answer every time. */
static size_t long_random_path(char *buf, size_t max, unsigned *seed)
{
    static char n255[NAME_MAX + 1], n256[NAME_MAX + 2];
    if (!n255[0]) {
        memset(n255, 'L', NAME_MAX);
        memset(n256, 'M', NAME_MAX + 1);
    }
    static const char *const names[] = { "a", "bc", "def", ".", "..", ".x", "", "\x80\xff", "..y" };
    size_t len = 0;
    size_t target = 258 + (*seed >> 8) % (max - 258);
    while (len < target) {
        *seed = *seed * 1103515245u + 12345u;
        unsigned k = (*seed >> 16) % 12;
        const char *nm = k < 9 ? names[k] : k == 9 ? n256 : n255;
        size_t nl = strlen(nm);
        if (len + 1 + nl > max)
            break;
        buf[len++] = '/';
        memcpy(buf + len, nm, nl);
        len += nl;
    }
    if (len == 0)
        buf[len++] = '/';
    *seed = *seed * 1103515245u + 12345u;
    if ((*seed >> 16) % 4 == 0 && len < max)
        buf[len++] = '/';
    return len;
}

Test(files_path, canon_of_long_paths_matches_the_model)
{
    static char in[SBX_FILES_PATH_MAX + 600];
    static char got[SBX_FILES_PATH_MAX], want[SBX_FILES_PATH_MAX];
    unsigned seed = 4242;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = long_random_path(in, SBX_FILES_PATH_MAX - 1, &seed);
        int m = model_canon(in, len, want, SBX_FILES_PATH_MAX);
        size_t caps[] = { SBX_FILES_PATH_MAX, m > 0 ? (size_t)m + 1 : 2, m > 1 ? (size_t)m : 2,
                          len, len + 1 };
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            size_t cap = caps[k] > SBX_FILES_PATH_MAX ? SBX_FILES_PATH_MAX : caps[k];
            int r = sbx_files_path_canon(in, len, got, cap);
            int mm = model_canon(in, len, want, cap);
            cr_assert_eq(r, mm, "canon(len %zu) cap %zu = %d, model %d", len, cap, r, mm);
            if (mm >= 0)
                cr_assert_eq(memcmp(got, want, (size_t)mm + 1), 0, "canon(len %zu)", len);
        }
        /* join: "/b" + '/' + a relative tail, the joined input up to
         * PATH_MAX + 600 bytes; the result bounded as canon's */
        size_t rl = len - 1;
        const char *rel = in + 1;
        if (rl == 0)
            continue;
        static char joined[SBX_FILES_PATH_MAX + 600];
        /* a tail starting with '/' is absolute: join canonicalises it alone */
        size_t base = rel[0] == '/' ? 0 : 3;
        memcpy(joined, "/b/", base);
        memcpy(joined + base, rel, rl);
        int jm = model_canon(joined, rl + base, want, SBX_FILES_PATH_MAX);
        int jr = sbx_files_path_join("/b", rel, rl, got, SBX_FILES_PATH_MAX);
        cr_assert_eq(jr, jm, "join(len %zu) = %d, model %d", rl, jr, jm);
        if (jm >= 0)
            cr_assert_str_eq(got, want);
    }
}

/* The evaluator's guard (files_policy) against the model: a path is
 * canonical exactly when it is absolute, NUL-free, its own canonical form
 * and, past "/", has no trailing '/'. Random strings with NULs, dots and
 * slashes at every offset of the word-at-a-time scan. */
Test(files_path, is_canonical_matches_the_model)
{
    static const char alpha[] = "//..ab\0c";
    unsigned seed = 4242;
    for (int iter = 0; iter < 300000; iter++) {
        char in[80];
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + ((seed >> 16) % 70);
        in[0] = '/';
        for (size_t i = 1; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        if (iter % 7 == 0)
            in[0] = 'a'; /* relative */
        char want_buf[SBX_FILES_PATH_MAX];
        bool has_nul = memchr(in, '\0', len) != NULL;
        int m = has_nul ? -1 : model_canon(in, len, want_buf, sizeof want_buf);
        bool want = m == (int)len && memcmp(want_buf, in, len) == 0 &&
                    (len == 1 || in[len - 1] != '/');
        cr_assert_eq(sbx_files_path_is_canonical(in, len), want, "is_canonical(%.*s)", (int)len,
                     in);
    }
    cr_expect(sbx_files_path_is_canonical("/a/.b/c..", 9));
    cr_expect(!sbx_files_path_is_canonical("/a/./b", 6));
    cr_expect(!sbx_files_path_is_canonical("/abcdefgh//i", 12));
    cr_expect(!sbx_files_path_is_canonical("/abcdefg/..", 11));
    cr_expect(!sbx_files_path_is_canonical("/abcdefg\0", 9));
}

/* The word-at-a-time scan reads eight bytes and their followers: with
 * each input at the very end of its own allocation (ASan's redzone right
 * after it), lengths 1..80 and every byte class at the last offsets, no
 * check reads past len. */
Test(files_path, scans_never_read_past_the_buffer)
{
    static const char alpha[] = "//..ab\0c\x80";
    unsigned seed = 99;
    char out[SBX_FILES_PATH_MAX];
    for (int iter = 0; iter < 40000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t len = 1 + ((seed >> 16) % 80);
        char *in = malloc(len);
        cr_assert_not_null(in);
        in[0] = '/';
        for (size_t i = 1; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            in[i] = alpha[(seed >> 16) % (sizeof alpha - 1)];
        }
        bool canonical = sbx_files_path_is_canonical(in, len);
        int r = sbx_files_path_canon(in, len, out, sizeof out);
        /* a canonical path is its own canonical form */
        if (canonical)
            cr_assert(r == (int)len && memcmp(out, in, len) == 0, "canon(%.*s)", (int)len, in);
        free(in);
    }
}

Test(files_path, join)
{
    char out[SBX_FILES_PATH_MAX];
    cr_expect_eq(sbx_files_path_join("/a/b", "c", 1, out, sizeof out), 6);
    cr_expect_str_eq(out, "/a/b/c");
    cr_expect_gt(sbx_files_path_join("/a/b", "../../../etc/shadow", 19, out, sizeof out), 0);
    cr_expect_str_eq(out, "/etc/shadow");
    cr_expect_gt(sbx_files_path_join("/", "x/", 2, out, sizeof out), 0);
    cr_expect_str_eq(out, "/x/");
    cr_expect_gt(sbx_files_path_join("/a", "/abs/../q", 9, out, sizeof out), 0);
    cr_expect_str_eq(out, "/q");
    cr_expect_gt(sbx_files_path_join("/a", ".", 1, out, sizeof out), 0);
    cr_expect_str_eq(out, "/a/");
    cr_expect_eq(sbx_files_path_join("/a", "", 0, out, sizeof out), -ENOENT);
    cr_expect_eq(sbx_files_path_join("/a", "x\0y", 3, out, sizeof out), -EINVAL);
    cr_expect_eq(sbx_files_path_join("rel", "x", 1, out, sizeof out), -EINVAL);
    /* A long base plus a long relative part that climbs back out fits. */
    static char base[3000], rel[3000];
    memset(base, 'd', sizeof base);
    base[0] = '/';
    for (size_t i = 10; i < sizeof base - 1; i += 10)
        base[i] = '/';
    base[sizeof base - 1] = '\0';
    size_t n = 0;
    while (n + 3 < sizeof rel - 8) {
        memcpy(rel + n, "../", 3);
        n += 3;
    }
    memcpy(rel + n, "zz", 2);
    n += 2;
    cr_expect_eq(sbx_files_path_join(base, rel, n, out, sizeof out), 3);
    cr_expect_str_eq(out, "/zz");
}

Test(files_path, proc_self_rewrite)
{
    char p[SBX_FILES_PATH_MAX];
    strcpy(p, "/proc/self/fd/3");
    cr_expect_gt(sbx_files_path_rewrite_proc_self(p, sizeof p, 42, 43), 0);
    cr_expect_str_eq(p, "/proc/42/fd/3");
    strcpy(p, "/proc/self");
    sbx_files_path_rewrite_proc_self(p, sizeof p, 42, 43);
    cr_expect_str_eq(p, "/proc/42");
    strcpy(p, "/proc/thread-self/cwd");
    sbx_files_path_rewrite_proc_self(p, sizeof p, 42, 43);
    cr_expect_str_eq(p, "/proc/42/task/43/cwd");
    strcpy(p, "/proc/selfish");
    sbx_files_path_rewrite_proc_self(p, sizeof p, 42, 43);
    cr_expect_str_eq(p, "/proc/selfish");
    strcpy(p, "/x/proc/self");
    sbx_files_path_rewrite_proc_self(p, sizeof p, 42, 43);
    cr_expect_str_eq(p, "/x/proc/self");
    /* No room: refused, buffer not overrun. */
    char small[16] = "/proc/self/abc";
    cr_expect_eq(sbx_files_path_rewrite_proc_self(small, sizeof small, 1234567, 1), -ENAMETOOLONG);
}

Test(files_path, split_and_under)
{
    size_t pl, nl;
    const char *name;
    bool tr;
    const char *p = "/a/b/c";
    sbx_files_path_split(p, strlen(p), &pl, &name, &nl, &tr);
    cr_expect_eq(pl, 4);
    cr_expect_eq(nl, 1);
    cr_expect_eq(*name, 'c');
    cr_expect_not(tr);
    p = "/a/";
    sbx_files_path_split(p, strlen(p), &pl, &name, &nl, &tr);
    cr_expect_eq(pl, 1);
    cr_expect_eq(nl, 1);
    cr_expect_eq(*name, 'a');
    cr_expect(tr);
    p = "/";
    sbx_files_path_split(p, 1, &pl, &name, &nl, &tr);
    cr_expect_eq(pl, 1);
    cr_expect_eq(nl, 0);
    cr_expect_not(tr);
    cr_expect(sbx_files_path_is_under("/a/b", "/a"));
    cr_expect(sbx_files_path_is_under("/a", "/a/"));
    cr_expect(sbx_files_path_is_under("/a/", "/a"));
    cr_expect_not(sbx_files_path_is_under("/ab", "/a"));
    cr_expect(sbx_files_path_is_under("/x", "/"));
}

/* ---- resolution against a real task ---- */

typedef struct child {
    pid_t pid;
    int ctl[2]; /* parent writes a byte to let it exit */
    sbx_files_task task;
} child;

/* Fork a child that chdirs to `cwd`, opens `dirs` at fds 100, 101, ... and
 * waits. The parent opens /proc/<pid> as the broker would. */
static void spawn(child *c, const char *cwd, const char *const *dirs, void (*extra)(void))
{
    int ready[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(c->ctl), 0);
    c->pid = fork();
    cr_assert_geq(c->pid, 0);
    if (c->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (cwd && chdir(cwd) < 0)
            _exit(1);
        for (int i = 0; dirs && dirs[i]; i++) {
            int fd = open(dirs[i], O_RDONLY | O_DIRECTORY);
            if (fd < 0 || dup2(fd, 100 + i) < 0)
                _exit(2);
            close(fd);
        }
        if (extra)
            extra();
        char b = 1;
        if (write(ready[1], &b, 1) != 1)
            _exit(3);
        if (read(c->ctl[0], &b, 1) < 0)
            _exit(5);
        _exit(0);
    }
    close(ready[1]);
    char b;
    cr_assert_eq(read(ready[0], &b, 1), 1);
    close(ready[0]);
    char pp[64];
    snprintf(pp, sizeof pp, "/proc/%d", (int)c->pid);
    c->task.proc_fd = open(pp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(c->task.proc_fd, 0);
    c->task.pid = c->pid;
    c->task.tid = c->pid;
}

static void reap(child *c)
{
    char b = 0;
    cr_expect_eq(write(c->ctl[1], &b, 1), 1);
    int st;
    waitpid(c->pid, &st, 0);
    close(c->task.proc_fd);
    close(c->ctl[0]);
    close(c->ctl[1]);
}

static char *tree(void)
{
    char *d = sbx_test_mkdtemp("fpath");
    cr_assert_not_null(d);
    char p[512];
    snprintf(p, sizeof p, "%s/a", d);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/a/b", d);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/gone", d);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof p, "%s/file", d);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    return d;
}

Test(files_path, resolve_relative_to_cwd_and_dirfd)
{
    char *d = tree();
    char ab[512], a[512];
    snprintf(ab, sizeof ab, "%s/a/b", d);
    snprintf(a, sizeof a, "%s/a", d);
    const char *dirs[] = { a, NULL };
    child c;
    spawn(&c, ab, dirs, NULL);
    char out[SBX_FILES_PATH_MAX], want[600];

    cr_expect_gt(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "x", 1, out, sizeof out), 0);
    snprintf(want, sizeof want, "%s/a/b/x", d);
    cr_expect_str_eq(out, want);

    cr_expect_gt(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "../../file", 10, out, sizeof out), 0);
    snprintf(want, sizeof want, "%s/file", d);
    cr_expect_str_eq(out, want);

    /* openat(dirfd_of_allowed_dir, "../../etc/shadow") resolves lexically to
     * a path the policy then judges: it never stays "under a". */
    char rel[700];
    int n = snprintf(rel, sizeof rel, "../../../../../../../../../../../../etc/shadow");
    cr_expect_gt(sbx_files_resolve(&c.task, 100, rel, (size_t)n, out, sizeof out), 0);
    cr_expect_str_eq(out, "/etc/shadow");

    cr_expect_gt(sbx_files_resolve(&c.task, 100, "b/", 2, out, sizeof out), 0);
    snprintf(want, sizeof want, "%s/a/b/", d);
    cr_expect_str_eq(out, want);

    /* Absolute paths ignore dirfd, even a bad one. */
    cr_expect_gt(sbx_files_resolve(&c.task, 999, "/etc//passwd", 12, out, sizeof out), 0);
    cr_expect_str_eq(out, "/etc/passwd");

    /* /proc/self is the target's, not the broker's. */
    cr_expect_gt(sbx_files_resolve(&c.task, 999, "/proc/self/status", 17, out, sizeof out), 0);
    snprintf(want, sizeof want, "/proc/%d/status", (int)c.pid);
    cr_expect_str_eq(out, want);

    /* Bad dirfds. */
    cr_expect_eq(sbx_files_resolve(&c.task, 999, "x", 1, out, sizeof out), -EBADF);
    cr_expect_eq(sbx_files_resolve(&c.task, -5, "x", 1, out, sizeof out), -EBADF);
    cr_expect_eq(sbx_files_resolve(&c.task, 0, "x", 1, out, sizeof out), -ENOTDIR); /* stdin */
    cr_expect_eq(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "", 0, out, sizeof out), -ENOENT);
    cr_expect_eq(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "a\0b", 3, out, sizeof out), -EINVAL);
    reap(&c);
    sbx_test_rmtree(d);
    free(d);
}

static int g_pipe_fd = -1;
static void open_pipe_at_12(void)
{
    int p[2];
    if (pipe(p) < 0 || dup2(p[0], 102) < 0)
        _exit(4);
    g_pipe_fd = 102;
}

Test(files_path, resolve_refuses_deleted_and_non_dirs)
{
    char *d = tree();
    char gone[512], file[512];
    snprintf(gone, sizeof gone, "%s/gone", d);
    snprintf(file, sizeof file, "%s/file", d);
    const char *dirs[] = { gone, NULL };
    child c;
    spawn(&c, gone, dirs, open_pipe_at_12);
    char out[SBX_FILES_PATH_MAX];
    cr_expect_gt(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "x", 1, out, sizeof out), 0);
    cr_assert_eq(rmdir(gone), 0);
    /* Deleted cwd and dirfd: "/…/gone (deleted)" must not be trusted. */
    cr_expect_eq(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "x", 1, out, sizeof out), -ENOENT);
    cr_expect_eq(sbx_files_resolve(&c.task, 100, "x", 1, out, sizeof out), -ENOENT);
    /* A directory named like the deleted marker must not stand in for it. */
    char fake[600];
    snprintf(fake, sizeof fake, "%s/gone (deleted)", d);
    cr_assert_eq(mkdir(fake, 0755), 0);
    cr_expect_eq(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "x", 1, out, sizeof out), -ENOENT);
    /* Replaced by another directory of the same name: not the same object. */
    cr_assert_eq(mkdir(gone, 0755), 0);
    cr_expect_eq(sbx_files_resolve(&c.task, 100, "x", 1, out, sizeof out), -ENOENT);
    /* A pipe is not a directory. */
    cr_expect_eq(sbx_files_resolve(&c.task, 102, "x", 1, out, sizeof out), -ENOTDIR);
    reap(&c);
    sbx_test_rmtree(d);
    free(d);
}

Test(files_path, resolve_through_symlinked_cwd_reports_real_path)
{
    /* The target chdir'ed through a symlink: the kernel's view of its cwd is
     * the real directory, and so is ours. */
    char *d = tree();
    char link[512], real[512];
    snprintf(real, sizeof real, "%s/a/b", d);
    snprintf(link, sizeof link, "%s/lnk", d);
    cr_assert_eq(symlink(real, link), 0);
    child c;
    spawn(&c, link, NULL, NULL);
    char out[SBX_FILES_PATH_MAX], want[600];
    cr_expect_gt(sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "..", 2, out, sizeof out), 0);
    snprintf(want, sizeof want, "%s/a/", d);
    cr_expect_str_eq(out, want);
    reap(&c);
    sbx_test_rmtree(d);
    free(d);
}

Test(files_path, dead_task_fails_cleanly)
{
    char *d = tree();
    child c;
    spawn(&c, d, NULL, NULL);
    char b = 0;
    cr_expect_eq(write(c.ctl[1], &b, 1), 1);
    int st;
    waitpid(c.pid, &st, 0);
    char out[SBX_FILES_PATH_MAX];
    int r = sbx_files_resolve(&c.task, SBX_FILES_AT_FDCWD, "x", 1, out, sizeof out);
    cr_expect_lt(r, 0);
    close(c.task.proc_fd);
    sbx_test_rmtree(d);
    free(d);
}

/* ---- /proc/<tid>/status ---- */

#define STATUS_HEAD "Name:\tcat\nUmask:\t0027\nState:\tR (running)\nTgid:\t4242\nNgid:\t0\n" \
                    "Pid:\t4243\nPPid:\t1\nTracerPid:\t0\n"
#define STATUS_IDS "Uid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\n"

static int parse(const char *text, sbx_files_proc_status *st)
{
    return sbx_files_proc_status_parse(text, strlen(text), st);
}

Test(files_path, proc_status_parses_what_the_broker_needs)
{
    sbx_files_proc_status st;
    const char *text = STATUS_HEAD STATUS_IDS "FDSize:\t64\nGroups:\t10 20 30 \n"
                       "NStgid:\t4242\t7\t1\nNSpid:\t4243\t8\t2\nNSpgid:\t1\n";
    cr_assert_eq(parse(text, &st), 0);
    cr_expect_eq(st.tgid, 4242);
    cr_expect_eq(st.nspid_count, 3);
    cr_expect_eq(st.nspid[0], 4243);
    cr_expect_eq(st.nspid[2], 2);
    cr_expect_eq(st.ns_tid, 2, "the innermost NSpid");
    cr_expect_eq(st.creds.fsuid, 1003, "the fourth Uid field");
    cr_expect_eq(st.creds.fsgid, 2003);
    cr_expect_eq(st.creds.umask, 0027);
    cr_expect_eq(st.creds.ngroups, 3);
    cr_expect_eq(st.creds.groups[2], 30);
    /* No Umask line (old kernels): 022; an empty Groups line: none. */
    cr_assert_eq(parse("Tgid:\t5\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nNSpid:\t5\n", &st), 0);
    cr_expect_eq(st.creds.umask, 022);
    cr_expect_eq(st.creds.ngroups, 0);
    cr_expect_eq(st.ns_tid, 5);
    /* The buffer need not be NUL-terminated and is read only up to len:
     * cut after "61", the "99" beyond would make it 6199. */
    char cut[] = "Tgid:\t5\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nNSpid:\t5\t6199";
    cr_assert_eq(sbx_files_proc_status_parse(cut, strlen(cut) - 2, &st), 0);
    cr_expect_eq(st.ns_tid, 61);
}

Test(files_path, proc_status_refuses_malformed_text)
{
    sbx_files_proc_status st;
    /* Each required line missing. */
    cr_expect_eq(parse(STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "no Tgid");
    cr_expect_eq(parse("Tgid:\t1\n" STATUS_IDS, &st), -ESRCH, "no NSpid");
    cr_expect_eq(parse("Tgid:\t1\nGid:\t1\t1\t1\t1\nNSpid:\t1\n", &st), -ESRCH, "no Uid");
    cr_expect_eq(parse("Tgid:\t1\nUid:\t1\t1\t1\t1\nNSpid:\t1\n", &st), -ESRCH, "no Gid");
    cr_expect_eq(parse("", &st), -ESRCH);
    /* Short, junk, signed, overflowing or duplicated fields. */
    cr_expect_eq(parse("Tgid:\t1\nUid:\t1\t1\t1\nGid:\t1\t1\t1\t1\nNSpid:\t1\n", &st), -ESRCH,
                 "3 Uid fields");
    cr_expect_eq(parse("Tgid:\t1\nUid:\t1\t1\t1\t1\t1\nGid:\t1\t1\t1\t1\nNSpid:\t1\n", &st),
                 -ESRCH, "5 Uid fields");
    cr_expect_eq(parse("Tgid:\t1x\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "junk");
    cr_expect_eq(parse("Tgid:\t-1\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "signed");
    cr_expect_eq(parse("Tgid:\t0\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "pid 0");
    cr_expect_eq(parse("Tgid:\t4294967296\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "overflow");
    cr_expect_eq(parse("Tgid:\t3000000000\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH, "> INT_MAX");
    cr_expect_eq(parse("Tgid:\t1\n" STATUS_IDS "NSpid:\t\n", &st), -ESRCH, "empty NSpid");
    cr_expect_eq(parse("Tgid:\t1\n" STATUS_IDS "NSpid:\t1\nNSpid:\t2\n", &st), -ESRCH,
                 "NSpid twice: which tid would count?");
    cr_expect_eq(parse("Tgid:\t1\nUmask:\t0999\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH,
                 "not octal");
    cr_expect_eq(parse("Tgid:\t1\nUmask:\t01777\n" STATUS_IDS "NSpid:\t1\n", &st), -ESRCH,
                 "umask past 0777");
    /* A key must start its line (a process name cannot fake one). */
    cr_expect_eq(parse("Name:\tUid:\t0\t0\t0\t0\nTgid:\t1\nGid:\t1\t1\t1\t1\nNSpid:\t1\n", &st),
                 -ESRCH);
    /* Too many groups: refused, never silently dropped. */
    char big[2048] = "Tgid:\t1\n" STATUS_IDS "Groups:\t";
    for (int i = 0; i <= SBX_FILES_MAX_GROUPS; i++) {
        char g[16];
        snprintf(g, sizeof g, "%d ", i);
        strcat(big, g);
    }
    strcat(big, "\nNSpid:\t1\n");
    cr_expect_eq(parse(big, &st), -E2BIG);
}

Test(files_path, proc_status_reads_a_real_task)
{
    int fd = open("/proc/thread-self", O_PATH | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    sbx_files_proc_status st;
    cr_assert_eq(sbx_files_proc_status_read(fd, &st), 0);
    cr_expect_eq(st.tgid, getpid());
    cr_expect_eq(st.nspid[0], (pid_t)syscall(SYS_gettid));
    cr_expect_eq(st.creds.fsuid, geteuid());
    cr_expect_eq(st.creds.fsgid, getegid());
    mode_t um = umask(0);
    umask(um);
    cr_expect_eq(st.creds.umask, um);
    close(fd);
    cr_expect_lt(sbx_files_proc_status_read(-1, &st), 0);
}

static void own_mount_ns(void)
{
    /* The cwd moves to this namespace's copy of its mount; fds opened
     * before stay on the parent namespace's mounts. */
    if (unshare(CLONE_NEWNS) < 0)
        _exit(4);
}

/* The target's own mounts tell a view directory from one the broker
 * opened outside it (a brokered chdir / dirfd), by mount, not by name. */
Test(files_path, view_mounts_tell_own_mounts_from_foreign_ones)
{
    if (geteuid() != 0)
        cr_skip_test("needs CAP_SYS_ADMIN for a mount namespace");
    char *d = tree();
    char a[512];
    snprintf(a, sizeof a, "%s/a", d);
    const char *dirs[] = { a, NULL };
    child c;
    spawn(&c, a, dirs, own_mount_ns);
    static sbx_files_view_mounts m;
    cr_assert_eq(sbx_files_view_mounts_read(c.task.proc_fd, &m), 0);
    cr_expect_gt(m.n, 0);
    for (size_t i = 1; i < m.n; i++)
        cr_expect_lt(m.id[i - 1], m.id[i], "sorted, no duplicates");
    cr_expect(sbx_files_task_dir_on_mounts(&c.task, SBX_FILES_AT_FDCWD, &m), "the cwd is its own");
    cr_expect(!sbx_files_task_dir_on_mounts(&c.task, 100, &m), "fd 100 is on our mount");
    cr_expect(!sbx_files_task_dir_on_mounts(&c.task, 999, &m), "no such fd");
    cr_expect(sbx_files_task_dir_in_view(&c.task, SBX_FILES_AT_FDCWD, a));
    cr_expect(!sbx_files_task_dir_in_view(&c.task, 100, a), "same inode, another mount");
    cr_expect(!sbx_files_task_dir_in_view(&c.task, SBX_FILES_AT_FDCWD, "relative"));
    /* our own set does not hold the child's cwd mount */
    int self = open("/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
    static sbx_files_view_mounts mine;
    cr_assert_eq(sbx_files_view_mounts_read(self, &mine), 0);
    cr_expect(!sbx_files_task_dir_on_mounts(&c.task, SBX_FILES_AT_FDCWD, &mine));
    cr_expect(sbx_files_task_dir_on_mounts(&c.task, 100, &mine));
    close(self);
    reap(&c);
    sbx_test_rmtree(d);
    free(d);
}

/* ---- a thread pidfd never vouches for a later holder of its tid ---- */

typedef struct held_thread {
    pid_t tid;
    int release; /* read end: the thread returns when it reads EOF */
} held_thread;

static void *hold_until_released(void *arg)
{
    held_thread *h = arg;
    __atomic_store_n(&h->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
    char c;
    while (read(h->release, &c, 1) > 0)
        ;
    return NULL;
}

/* Start a thread that lives until *release_w is closed; its tid. */
static pid_t start_held(pthread_t *th, held_thread *h, int *release_w)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    *h = (held_thread){ .release = p[0] };
    *release_w = p[1];
    if (pthread_create(th, NULL, hold_until_released, h) != 0)
        return -1;
    while (!__atomic_load_n(&h->tid, __ATOMIC_SEQ_CST))
        usleep(100);
    return h->tid;
}

/* Wait (up to ~2 s) for the released thread's pidfd to read dead. */
static bool becomes_dead(int pidfd)
{
    for (int i = 0; i < 2000; i++) {
        if (!sbx_files_pidfd_alive(pidfd))
            return true;
        usleep(1000);
    }
    return false;
}

/* In a fresh pid namespace (we are its init): thread A's pidfd reads
 * alive, then dead once A is gone; thread B is then given A's very tid
 * (ns_last_pid) and A's pidfd must still read dead while B's reads
 * alive. Exit code: 0, or the step that failed. */
static int reused_tid_child(void)
{
    pthread_t ta, tb;
    held_thread ha, hb;
    int wa, wb;
    pid_t a = start_held(&ta, &ha, &wa);
    if (a <= 0)
        return 10;
    int pa = sbx_files_thread_pidfd(a);
    if (pa < 0)
        return 11;
    if (!sbx_files_pidfd_alive(pa))
        return 12;
    errno = 1234;
    (void)sbx_files_pidfd_alive(pa);
    if (errno != 1234)
        return 13;
    close(wa);
    pthread_join(ta, NULL);
    if (!becomes_dead(pa))
        return 14;
    int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return 15;
    char num[32];
    int n = snprintf(num, sizeof num, "%d", (int)a - 1);
    if (write(fd, num, (size_t)n) != n)
        return 16;
    close(fd);
    pid_t b = start_held(&tb, &hb, &wb);
    if (b != a)
        return 17; /* the namespace holds nothing else: the number must come back */
    int pb = sbx_files_thread_pidfd(b);
    if (pb < 0 || !sbx_files_pidfd_alive(pb))
        return 18;
    if (sbx_files_pidfd_alive(pa))
        return 19; /* the old pidfd vouched for the new holder of the tid */
    close(wb);
    pthread_join(tb, NULL);
    if (!becomes_dead(pb))
        return 20;
    if (sbx_files_pidfd_alive(-1))
        return 21;
    return 0;
}

Test(files_path, pidfd_alive_never_vouches_for_a_reused_tid)
{
    if (geteuid() != 0)
        cr_skip_test("needs CAP_SYS_ADMIN for a pid namespace and ns_last_pid");
    pid_t outer = fork();
    cr_assert_geq(outer, 0);
    if (outer == 0) {
        if (unshare(CLONE_NEWPID) < 0)
            _exit(errno == EPERM || errno == EINVAL ? 77 : 2);
        pid_t inner = fork();
        if (inner < 0)
            _exit(3);
        if (inner == 0)
            _exit(reused_tid_child());
        int st;
        if (waitpid(inner, &st, 0) != inner || !WIFEXITED(st))
            _exit(4);
        _exit(WEXITSTATUS(st));
    }
    int st;
    cr_assert_eq(waitpid(outer, &st, 0), outer);
    cr_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        cr_skip_test("no pid namespaces here");
    cr_expect_eq(WEXITSTATUS(st), 0, "step %d failed", WEXITSTATUS(st));
}
