/* sbx — the preload shim's open/openat entry points (libsbx-preload.so
 * only): the program's calls of libc's exported open family run the files
 * handler directly (sbx_trap_enter) instead of trapping. */
#ifndef SBX_TARGET_TRAP_PRELOAD_OPEN_H
#define SBX_TARGET_TRAP_PRELOAD_OPEN_H

#include <stddef.h>

#include "target/trap/trap.h"

/* After sbx_trap_install succeeded: take the direct entry if the next
 * definitions of the open family are libc's own (libc: its code ranges). */
void sbx_preload_open_engage(const sbx_trap_range *libc, size_t n);

#endif
