/* sbx — libsbx-preload.so: the trap backend's fast path in an unmodified
 * dynamically linked program (LD_PRELOAD, set by the broker at spawn).
 *
 * When SBX_SECTION_FD and SBX_BROKER_FD (include/sbx/ipc.h) name the
 * shared section and the socket, the constructor maps the section,
 * registers the files subsystem's trap handlers and installs the trap
 * filter in ranged mode before main() runs: only calls made from libc's
 * code trap into the SIGSYS handler (one cross call over shared memory);
 * everything else — the dynamic loader, raw syscalls, calls the handler
 * forwards, and every program this one execs (its libc lands elsewhere)
 * — meets the broker's notify filter beneath, which is complete on its
 * own. The trap is a fast path, never the wall (docs/trap.md).
 *
 * Native re-issue is enabled only when SBX_TRAP_NATIVE=1, which the
 * broker sets only when Landlock confines the target to its view and the
 * notify filter lets the re-issue pass. The local pre-check (an explicit
 * deny answered without IPC) runs only with SBX_TRAP_PRECHECK=1, which the
 * broker sets only when nothing is audited and denials answer EACCES: a
 * fast local answer must be the same answer. If the environment says we run
 * under sbx but the engine cannot start, the program is not run at all
 * (exit 127): it never runs half-intercepted. Without SBX_SECTION_FD the
 * shim does nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "base/log.h"
#include "subsys/files/files_interception.h"
#include "target/trap/preload_open.h"
#include "target/trap/trap.h"

#define SBX_TRAP_NATIVE_ENV "SBX_TRAP_NATIVE"
#define SBX_TRAP_PRECHECK_ENV "SBX_TRAP_PRECHECK"

__attribute__((constructor)) static void sbx_preload_init(void)
{
    if (!getenv(SBX_IPC_ENV_SECTION))
        return;
    sbx_ipc_client *c = NULL;
    sbx_trap_range ranges[SBX_TRAP_MAX_RANGES];
    /* libc's code: where every libc syscall wrapper runs from. */
    size_t n = sbx_trap_code_ranges((uintptr_t)&syscall, ranges);
    int r = n ? 0 : -ENOENT;
    if (r == 0)
        r = sbx_ipc_client_from_env(&c);
    if (r == 0)
        r = sbx_files_trap_register();
    if (r == 0) {
        const char *e = getenv(SBX_TRAP_NATIVE_ENV);
        const char *pc = getenv(SBX_TRAP_PRECHECK_ENV);
        sbx_trap_options o = { .ipc = c,
                               .allow_native = e && strcmp(e, "1") == 0,
                               .ranges = ranges,
                               .n_ranges = n,
                               .no_precheck = !pc || strcmp(pc, "1") != 0 };
        r = sbx_trap_install(&o);
        if (r == 0)
            sbx_preload_open_engage(ranges, n);
    }
    if (r < 0) {
        sbx_safe_log(SBX_LOG_ERROR, "preload: cannot engage the trap backend: %s",
                     sbx_strerror(r));
        _exit(127);
    }
}
