/* The syscall table: the published copy in docs/files.md matches the code,
 * and the notify filter built from it refuses every refused call with its
 * errno (in a process that installs it). */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sbx/error.h>

#include "sbx_test.h"
#include "subsys/files/files_ipc.h"
#include "subsys/files/files_syscalls.h"
#include "target/interception/notify.h"

static const char *kind_name(sbx_files_sc_kind k)
{
    switch (k) {
    case SBX_FILES_SC_BROKERED:
        return "brokered";
    case SBX_FILES_SC_REFUSED:
        return "refused";
    case SBX_FILES_SC_NATIVE:
        return "native";
    }
    return "?";
}

/* docs/files.md of the source tree: $SBX_SOURCE_ROOT (set by meson test),
 * else beside the build directory (<root>/<build>/tests/test_x). */
static FILE *open_doc(void)
{
    const char *root = getenv("SBX_SOURCE_ROOT");
    if (root && *root) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/docs/files.md", root);
        FILE *f = fopen(p, "r");
        cr_assert_not_null(f, "cannot open %s", p);
        return f;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    for (int up = 0; up < 3; up++) {
        char *s = strrchr(exe, '/');
        cr_assert_not_null(s);
        *s = '\0';
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/docs/files.md", exe);
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    return f;
}

Test(files_syscalls, docs_table_matches_code)
{
    FILE *f = open_doc();
    char line[1024];
    unsigned seen[256] = { 0 };
    cr_assert_lt(sbx_files_syscall_count, 256);
    unsigned rows = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64], kind[32], err[32];
        /* | `name` | kind | errno | ... */
        if (sscanf(line, "| `%63[a-z0-9_]` | %31[a-z] | %31[A-Z ]|", name, kind, err) < 2)
            continue;
        if (strcmp(kind, "brokered") && strcmp(kind, "refused") && strcmp(kind, "native"))
            continue;
        rows++;
        const sbx_files_syscall *s = NULL;
        for (size_t i = 0; i < sbx_files_syscall_count; i++)
            if (strcmp(sbx_files_syscalls[i].name, name) == 0)
                s = &sbx_files_syscalls[i];
        cr_expect_not_null(s, "docs list %s, the code does not", name);
        if (!s)
            continue;
        seen[s - sbx_files_syscalls]++;
        cr_expect_str_eq(kind, kind_name(s->kind), "%s: docs say %s", name, kind);
        if (s->kind == SBX_FILES_SC_REFUSED) {
            char *e = err;
            while (*e == ' ')
                e++;
            char *end = e + strlen(e);
            while (end > e && end[-1] == ' ')
                *--end = '\0';
            cr_expect_str_eq(e, sbx_error_name(-s->refuse_errno), "%s errno", name);
        }
    }
    fclose(f);
    cr_expect_eq(rows, sbx_files_syscall_count);
    for (size_t i = 0; i < sbx_files_syscall_count; i++)
        cr_expect_eq(seen[i], 1, "%s appears %u times in docs/files.md", sbx_files_syscalls[i].name,
                     seen[i]);
}

/* The trap backend column: the IPC tag named for each brokered call is
 * the one the broker serves it with, and "not served" means no tag. */
Test(files_syscalls, docs_trap_column_matches_code)
{
    FILE *f = open_doc();
    char line[1024];
    unsigned rows = 0;
    while (fgets(line, sizeof line, f)) {
        char name[64];
        if (sscanf(line, "| `%63[a-z0-9_]` | brokered |", name) != 1 ||
            !strstr(line, "| brokered |"))
            continue;
        const sbx_files_syscall *s = NULL;
        for (size_t i = 0; i < sbx_files_syscall_count; i++)
            if (strcmp(sbx_files_syscalls[i].name, name) == 0)
                s = &sbx_files_syscalls[i];
        cr_assert_not_null(s, "%s", name);
        /* The last column. */
        char *end = strrchr(line, '|');
        cr_assert_not_null(end);
        *end = '\0';
        char *col = strrchr(line, '|');
        cr_assert_not_null(col);
        static const struct { const char *word; uint32_t tag; } tags[] = {
            { "IPC `OPEN`", SBX_FILES_IPC_TAG_OPEN }, { "IPC `PATH`", SBX_FILES_IPC_TAG_PATH },
            { "IPC `ATTR`", SBX_FILES_IPC_TAG_ATTR }, { "IPC `RENAME`", SBX_FILES_IPC_TAG_RENAME },
            { "IPC `CHDIR`", SBX_FILES_IPC_TAG_CHDIR }, { "IPC `GETCWD`", SBX_FILES_IPC_TAG_GETCWD },
        };
        uint32_t want = 0;
        for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
            if (strstr(col, tags[i].word))
                want = tags[i].tag;
        if (!want)
            cr_expect_not_null(strstr(col, "not served"), "%s: no trap column", name);
        cr_expect_eq(sbx_files_ipc_tag_for(s->nr), want, "%s: docs say tag %#x", name, want);
        rows++;
    }
    fclose(f);
    unsigned brokered = 0;
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        brokered += sbx_files_syscalls[i].kind == SBX_FILES_SC_BROKERED;
        if (sbx_files_syscalls[i].kind != SBX_FILES_SC_BROKERED)
            cr_expect_eq(sbx_files_ipc_tag_for(sbx_files_syscalls[i].nr), 0, "%s",
                         sbx_files_syscalls[i].name);
    }
    cr_expect_eq(rows, brokered);
}

Test(files_syscalls, table_is_sane)
{
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *s = &sbx_files_syscalls[i];
        cr_expect_eq(sbx_files_syscall_find(s->nr), s, "%s: duplicate number", s->name);
        if (s->kind == SBX_FILES_SC_BROKERED)
            cr_expect(s->op > 0 && s->op < SBX_FILES_CALL_COUNT_, "%s", s->name);
        if (s->kind == SBX_FILES_SC_REFUSED)
            cr_expect_gt(s->refuse_errno, 0, "%s", s->name);
    }
    cr_expect_null(sbx_files_syscall_find(0)); /* read */
}

static void refused_in_kernel(void *arg)
{
    (void)arg;
    struct sock_fprog prog;
    if (sbx_notify_filter_build(&prog) < 0)
        _exit(10);
    int l = sbx_notify_filter_install(&prog);
    if (l < 0)
        _exit(11);
    static char junk[4096];
    const char *p = "/nonexistent/sbx";
    for (size_t i = 0; i < sbx_files_syscall_count; i++) {
        const sbx_files_syscall *s = &sbx_files_syscalls[i];
        if (s->kind != SBX_FILES_SC_REFUSED)
            continue;
        /* Plausible non-NULL pointers everywhere: the filter answers before
         * the kernel looks at them. */
        long r = sbx_test_try_syscall(s->nr, (long)p, (long)p, (long)junk, (long)p, 0, 0);
        if (r != -s->refuse_errno) {
            dprintf(2, "%s returned %ld, want %d\n", s->name, r, -s->refuse_errno);
            _exit(12);
        }
    }
    _exit(0);
}

Test(files_syscalls, filter_refuses_long_tail)
{
    sbx_test_status st = sbx_test_run_child(refused_in_kernel, NULL, 10000);
    char b[64];
    cr_expect(st.exited && st.code == 0, "%s", sbx_test_status_str(&st, b, sizeof b));
}
