/* The floor under any brokered open on this machine: a minimal "broker"
 * process that does nothing but spin on one shared cache line, open the
 * file with openat2 (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, as every
 * broker that checks the object it opens must) and hand the fd over; the
 * caller spins until the answer is there, takes the fd and closes it.
 * No policy, no IPC framing, no checks: what the kernel work and the
 * hand-off alone cost, to set the trap backend's figures against.
 *
 *   FLOOR_SCM_RIGHTS   the fd travels by SCM_RIGHTS over a SOCK_SEQPACKET
 *                      pair (sendmsg in the broker, recvmsg in the
 *                      caller): the transport sbx uses (DESIGN.md)
 *   FLOOR_PIDFD_GETFD  the caller copies the fd out of the broker's table
 *                      with pidfd_getfd. Shown for comparison only: it
 *                      needs ptrace-attach rights over the process holding
 *                      the fd, which a target never has (not dumpable, no
 *                      ptrace of anything) */
#ifndef SBX_BENCH_TRANSPORT_FLOOR_H
#define SBX_BENCH_TRANSPORT_FLOOR_H

typedef enum { FLOOR_SCM_RIGHTS, FLOOR_PIDFD_GETFD } floor_kind;

typedef struct floor_broker floor_broker;

/* Forks the minimal broker for `path` (copied). NULL with errno set when
 * the kind cannot run here (pidfd_getfd refused: EPERM). Caller owns the
 * result; free with floor_stop. */
floor_broker *floor_start(floor_kind kind, const char *path);

/* One brokered open of the path: a new fd (caller closes it) or -1. */
int floor_open(floor_broker *b);

/* Between uses the broker sleeps instead of spinning, so it does not take
 * a CPU from the other cases. floor_open must not be called while paused. */
void floor_pause(floor_broker *b);
void floor_resume(floor_broker *b);

/* Stops and reaps the broker; frees b (NULL is a no-op). */
void floor_stop(floor_broker *b);

#endif
