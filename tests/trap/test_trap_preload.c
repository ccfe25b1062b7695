/* libsbx-preload.so in an unmodified program outside any sandbox: inert
 * without SBX_SECTION_FD / SBX_BROKER_FD, and it fails closed (the program
 * does not run) with broken ones. The shim serving real targets is tested
 * through sbx_broker_spawn in tests/runtime/test_trap_backend.c. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "sbx_test.h"
#include "trap_broker.h"

static char *dir;
static char okf[300], denyf[300];

static void mk(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void mkfiles(void)
{
    dir = sbx_test_mkdtemp("trappre");
    cr_assert_not_null(dir);
    char p[300];
    snprintf(p, sizeof p, "%s/ok", dir);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/deny", dir);
    mkdir(p, 0700);
    snprintf(okf, sizeof okf, "%s/ok/f", dir);
    snprintf(denyf, sizeof denyf, "%s/deny/secret", dir);
    mk(okf, "hello through the broker\n");
    mk(denyf, "secret\n");
}

static void rmfiles(void)
{
    sbx_test_rmtree(dir);
    free(dir);
}

TestSuite(trap_preload, .init = mkfiles, .fini = rmfiles);

typedef struct run {
    int code;        /* exit code, or 200 + signal */
    char out[256];
    char err[512];
} run;

/* Run /bin/cat path with the shim; env_fds: "SECTION:SOCKET" fd numbers to set
 * ("" : the real fds, NULL: unset). */
static run cat_with_shim(int secfd, int sock, const char *path, const char *env_fds)
{
    run res = { 0 };
    int po[2], pe[2];
    cr_assert_eq(pipe(po), 0);
    cr_assert_eq(pipe(pe), 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        if (secfd >= 0) {
            /* via high numbers: dup2 onto itself would keep FD_CLOEXEC */
            int a = fcntl(secfd, F_DUPFD_CLOEXEC, 100), c = fcntl(sock, F_DUPFD_CLOEXEC, 100);
            dup2(a, 10);
            dup2(c, 11);
        }
        if (env_fds) {
            /* "SECTION:SOCKET" → the broker's two variables */
            char v[32];
            snprintf(v, sizeof v, "%s", *env_fds ? env_fds : "10:11");
            char *colon = strchr(v, ':');
            if (colon)
                *colon++ = '\0';
            setenv(SBX_IPC_ENV_SECTION, v, 1);
            setenv(SBX_IPC_ENV_SOCKET, colon ? colon : "", 1);
        } else {
            unsetenv(SBX_IPC_ENV_SECTION);
            unsetenv(SBX_IPC_ENV_SOCKET);
        }
        setenv("SBX_TRAP_NATIVE", "1", 1);
        setenv("LD_PRELOAD", SBX_PRELOAD_PATH, 1);
        setenv("LC_ALL", "C", 1);
        execl("/bin/cat", "cat", path, (char *)NULL);
        _exit(126);
    }
    close(po[1]);
    close(pe[1]);
    ssize_t n = read(po[0], res.out, sizeof res.out - 1);
    res.out[n > 0 ? n : 0] = 0;
    n = read(pe[0], res.err, sizeof res.err - 1);
    res.err[n > 0 ? n : 0] = 0;
    close(po[0]);
    close(pe[0]);
    int st;
    waitpid(pid, &st, 0);
    res.code = WIFEXITED(st) ? WEXITSTATUS(st) : 200 + WTERMSIG(st);
    return res;
}

Test(trap_preload, inert_without_env_and_fails_closed_with_a_bad_one)
{
    run r = cat_with_shim(-1, -1, denyf, NULL);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "secret\n");
    r = cat_with_shim(-1, -1, denyf, "99:98");
    cr_expect_eq(r.code, 127);
    cr_expect_str_eq(r.out, "");
}
