#include "rt_common.h"
#include "sbx_test.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

sbx_broker *B;

static char g_dir[PATH_MAX + 64];
static char g_probe[PATH_MAX + 64];

void rt_setup(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(g_probe, sizeof g_probe, "%s/runtime/sbx_runtime_probe", exe);
    /* Brokered test data lives outside the native view: not under /tmp,
     * which is private inside a target (a checkout under /tmp would
     * otherwise put its data where the target sees its own empty /tmp). */
    struct stat vt;
    const char *base = stat("/var/tmp", &vt) == 0 && S_ISDIR(vt.st_mode) ? "/var/tmp" : exe;
    snprintf(g_dir, sizeof g_dir, "%s/sbx-runtime-data-%d", base, (int)getpid());
    (void)sbx_test_rmtree(g_dir);
    cr_assert_eq(mkdir(g_dir, 0755), 0, "%s: %s", g_dir, strerror(errno));
    cr_assert_eq(sbx_broker_new(&B), 0);
    sbx_broker_set_event_callback(B, sbx_test_on_event, NULL);
}

void rt_teardown(void)
{
    sbx_broker_free(B);
    B = NULL;
    (void)sbx_test_rmtree(g_dir);
}

const char *rt_dir(void)
{
    return g_dir;
}

const char *rt_probe_path(void)
{
    return g_probe;
}

const char *rt_path(const char *name)
{
    static char bufs[8][2 * PATH_MAX + 128];
    static unsigned k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, name);
    return b;
}

void rt_write_file(const char *name, const char *content)
{
    FILE *f = fopen(rt_path(name), "w");
    cr_assert(f, "%s: %s", rt_path(name), strerror(errno));
    fputs(content, f);
    fclose(f);
}

bool rt_exists(const char *name)
{
    struct stat st;
    return lstat(rt_path(name), &st) == 0;
}

static char *const g_env[] = { (char *)"PATH=/usr/bin:/bin", (char *)"LANG=C",
                               (char *)"LC_ALL=C", (char *)"HOME=/tmp",
                               (char *)"ASAN_OPTIONS=detect_leaks=0", NULL };

int rt_run_prog(sbx_policy *p, char *const argv[], rt_run *r)
{
    memset(r, 0, sizeof *r);
    int pfd[2];
    cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    sbx_spawn_options o = { .path = argv[0], .argv = argv, .envp = g_env,
                            .stdin_fd = SBX_STDIO_NULL, .stdout_fd = pfd[1],
                            .stderr_fd = pfd[1] };
    sbx_target_info info;
    int rc = sbx_broker_spawn(B, p, &o, &info);
    close(pfd[1]);
    if (rc < 0) {
        snprintf(r->out, sizeof r->out, "spawn: %s", info.error);
        close(pfd[0]);
        return rc;
    }
    r->id = info.id;
    r->pid = info.pid;
    r->n = sbx_test_read_all(pfd[0], r->out, sizeof r->out);
    close(pfd[0]);
    cr_assert(sbx_test_wait_end(info.id, 10000, &r->code, &r->sig), "target did not end: %s", r->out);
    return 0;
}

int rt_sh(sbx_policy *p, const char *script, rt_run *r)
{
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, NULL };
    return rt_run_prog(p, argv, r);
}

int rt_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

int rt_count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}
