/* LeakSanitizer's exit-time check runs in a tracer task that blocks every
 * signal and opens /proc/self/task: under an installed trap filter that
 * openat is trapped, and a trap signal the task blocks kills it (the
 * kernel forces it to SIG_DFL), so the check would hang the test process.
 * Skip the leak check in processes that installed the trap (the others
 * keep it). Defined once per test binary. */
#ifndef SBX_TESTS_TRAP_LSAN_H
#define SBX_TESTS_TRAP_LSAN_H

#include "target/trap/trap.h"

__attribute__((visibility("default"), used)) int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
    return sbx_trap_installed();
}

#endif
