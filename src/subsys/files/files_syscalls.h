/* sbx internal — files subsystem: which syscalls it intercepts (the seed's
 * SetupService), x86_64. One table, read by the interception backends to
 * build their filters, by the notify backend to decode calls, and checked
 * against docs/files.md by the tests, so the published table cannot drift
 * from the code. */
#ifndef SBX_SUBSYS_FILES_SYSCALLS_H
#define SBX_SUBSYS_FILES_SYSCALLS_H

#include <stddef.h>

#include "subsys/files/files_dispatcher.h"

/* Newer than some libc headers' SYS_ names. */
#define SBX_FILES_SYS_FCHMODAT2 452

typedef enum sbx_files_sc_kind {
    SBX_FILES_SC_BROKERED = 1, /* decoded and decided per call (native, brokered or denied) */
    SBX_FILES_SC_REFUSED = 2,  /* always fails with refuse_errno */
    SBX_FILES_SC_NATIVE = 3,   /* never intercepted (documented for completeness) */
} sbx_files_sc_kind;

typedef struct sbx_files_syscall {
    int nr;
    const char *name;
    sbx_files_sc_kind kind;
    sbx_files_call_op op;       /* BROKERED: the operation it becomes */
    int refuse_errno;      /* REFUSED: the answer */
    int native_if_null;    /* >= 0: arg index; a NULL there means an fd-only call, not refused */
    const char *semantics; /* which rule semantics can grant it (docs) */
} sbx_files_syscall;

extern const sbx_files_syscall sbx_files_syscalls[];
extern const size_t sbx_files_syscall_count;

/* The entry for nr, or NULL (not a files syscall). */
const sbx_files_syscall *sbx_files_syscall_find(int nr);

#endif
