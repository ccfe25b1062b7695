/* sbx test helpers — run a snippet in a child process and report how it
 * ended (the kselftest "expected to die by SIGSYS" pattern), and probe a
 * raw syscall's result (bubblewrap's try-syscall idea). */
#ifndef SBX_TEST_H
#define SBX_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sbx/broker.h>

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

/* The end events (EXITED / KILLED) of this process's targets, kept in one
 * process-wide log (a test case runs in its own process, with one broker).
 * sbx_test_on_event is an sbx_event_fn: install it as the broker's event
 * callback, or call it from one (ud is unused). */
void sbx_test_on_event(const sbx_event *e, void *ud);
/* Wait up to ms for target id's end: true and its exit code (-1 when
 * killed) and killing signal (0 when it exited) in *code / *sig (either
 * may be NULL), or false on timeout. */
bool sbx_test_wait_end(uint64_t id, int ms, int *code, int *sig);

/* Read fd until EOF or until buf is full (size - 1 bytes), retrying on
 * EINTR; NUL-terminates buf and returns the byte count. */
size_t sbx_test_read_all(int fd, char *buf, size_t size);

#endif
