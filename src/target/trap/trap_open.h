/* sbx internal — a stand-in trap subsystem for open(2)/openat(2), used by
 * the preload shim and the engine's tests until the files subsystem
 * registers its own trap handlers (it then replaces this module).
 *
 * Routing of an absolute path, by the local read-only policy copy
 * (service SBX_TRAP_OPEN_SERVICE, string parameter 0 = the path):
 *   DENY_ACCESS                    -> -EACCES at once, no IPC (fail fast)
 *   ASK_BROKER                     -> cross call SBX_TRAP_OPEN_TAG
 *                                     (string path, u32 flags) -> the fd
 *   no match, relative path, NULL  -> native re-issue (refused with EPERM
 *                                     when native re-issue is disabled)
 * The local decision only saves a round trip: the broker decides again
 * from its own copy. Relative paths and dirfds are not brokered here (the
 * files subsystem resolves them in the broker). */
#ifndef SBX_TARGET_TRAP_OPEN_H
#define SBX_TARGET_TRAP_OPEN_H

#include <stdint.h>

#include "target/trap/trap.h"

/* Placeholder tag below SBX_IPC_TAG_USER (sbx-reserved range). */
#define SBX_TRAP_OPEN_TAG 0x0700u
#define SBX_TRAP_OPEN_SERVICE 1u

/* Register the open and openat handlers. Before sbx_trap_install. */
int sbx_trap_open_register(void);

typedef struct sbx_trap_open_stats {
    uint64_t brokered, denied, native;
} sbx_trap_open_stats;
void sbx_trap_open_get_stats(sbx_trap_open_stats *out);

#endif
