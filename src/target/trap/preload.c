/* sbx — libsbx-preload.so: engages the trap backend in an unmodified
 * dynamically linked program (LD_PRELOAD).
 *
 * When SBX_SECTION_FD and SBX_BROKER_FD (include/sbx/ipc.h, set by the broker at spawn) name
 * the shared section and the socket, the constructor maps the section,
 * registers the trap subsystems' handlers and installs the filter before
 * main() runs. Native re-issue is enabled only when SBX_TRAP_NATIVE=1,
 * which the broker sets only when Landlock confines the target to its
 * view (docs/trap.md); by default every intercepted call is brokered or
 * refused. Without SBX_SECTION_FD the shim does nothing. If the environment
 * says we run under sbx but the engine cannot start, the program is not
 * run at all (exit 127): a sandboxed program never runs half-intercepted.
 * Everything the dynamic loader opened before this constructor was opened
 * natively (inside the target's view). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/ipc.h>

#include "base/log.h"
#include "target/trap/trap.h"
#include "target/trap/trap_open.h"

#define SBX_TRAP_NATIVE_ENV "SBX_TRAP_NATIVE"

__attribute__((constructor)) static void sbx_preload_init(void)
{
    if (!getenv(SBX_IPC_ENV_SECTION))
        return;
    sbx_ipc_client *c = NULL;
    int r = sbx_ipc_client_from_env(&c);
    if (r == 0)
        r = sbx_trap_open_register();
    if (r == 0) {
        const char *n = getenv(SBX_TRAP_NATIVE_ENV);
        sbx_trap_options o = { .ipc = c, .allow_native = n && strcmp(n, "1") == 0 };
        r = sbx_trap_install(&o);
    }
    if (r < 0) {
        sbx_safe_log(SBX_LOG_ERROR, "preload: cannot engage the trap backend: %s",
                     sbx_strerror(r));
        _exit(127);
    }
}
