/* sbx test helpers — run a snippet in a child process and report how it
 * ended (the kselftest "expected to die by SIGSYS" pattern), and probe a
 * raw syscall's result (bubblewrap's try-syscall idea). */
#ifndef SBX_TEST_H
#define SBX_TEST_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct sbx_test_status {
    bool exited;    /* the child called exit / returned */
    int code;       /* its exit code when exited */
    bool signaled;  /* the child was killed by a signal */
    int sig;        /* that signal */
    bool timed_out; /* still running after the timeout: it was SIGKILLed */
    pid_t pid;
} sbx_test_status;

/* Fork; in the child call fn(arg) and _exit(0) if it returns. The parent
 * waits up to timeout_ms (0: 10 s) and reaps the child. Never leaves a
 * zombie or a running child behind. */
sbx_test_status sbx_test_run_child(void (*fn)(void *arg), void *arg, unsigned timeout_ms);

/* "exited 3", "killed by SIGSYS", "timed out" — for assertion messages.
 * Returns buf. */
const char *sbx_test_status_str(const sbx_test_status *st, char *buf, unsigned size);

/* Issue syscall nr with up to 6 args; returns its result, or -errno. */
long sbx_test_try_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

/* Make a fresh directory under $TMPDIR (or /tmp) and return its path
 * (malloc'ed, caller frees), or NULL. */
char *sbx_test_mkdtemp(const char *tag);
/* rm -rf of a directory made by sbx_test_mkdtemp; returns 0 or -errno. */
int sbx_test_rmtree(const char *path);

#endif
