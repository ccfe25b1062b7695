#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/cleanup.h"
#include "base/fd.h"

static int open_and_maybe_keep(bool keep, int *closed_fd)
{
    SBX_AUTOCLOSE int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    *closed_fd = fd;
    if (keep)
        return sbx_steal_fd(&fd);
    return -1;
}

Test(cleanup, autoclose_closes_on_scope_exit)
{
    int fd;
    cr_assert_eq(open_and_maybe_keep(false, &fd), -1);
    cr_expect_not(sbx_fd_is_open(fd), "fd %d still open after scope exit", fd);
}

Test(cleanup, steal_fd_transfers_ownership)
{
    int fd;
    int kept = open_and_maybe_keep(true, &fd);
    cr_assert_eq(kept, fd);
    cr_expect(sbx_fd_is_open(kept));
    close(kept);
}

Test(cleanup, steal_fd_leaves_minus_one)
{
    int fd = 7;
    cr_expect_eq(sbx_steal_fd(&fd), 7);
    cr_expect_eq(fd, -1);
}

static char *make_owned(bool keep)
{
    SBX_AUTOFREE char *p = malloc(16);
    cr_assert_not_null(p);
    p[0] = 'x';
    if (keep)
        return sbx_steal_ptr(&p);
    return NULL; /* p freed here; ASan reports a leak otherwise */
}

Test(cleanup, steal_ptr_transfers_and_autofree_frees)
{
    char *p = make_owned(true);
    cr_assert_not_null(p);
    cr_expect_eq(p[0], 'x');
    free(p);
    cr_expect_null(make_owned(false));
    char *q = malloc(1);
    char *r = sbx_steal_ptr(&q);
    cr_expect_null(q);
    free(r);
}

Test(cleanup, close_keeps_errno)
{
    errno = ENOENT;
    sbx_close_keep_errno(open("/dev/null", O_RDONLY));
    cr_expect_eq(errno, ENOENT);
    errno = EACCES;
    sbx_close_keep_errno(-1);
    cr_expect_eq(errno, EACCES);
}

struct thing { int *counter; };
static void thing_free(struct thing *t) { (*t->counter)++; free(t); }
SBX_DEFINE_CLEANUP_FUNC(struct thing, thing_free)

Test(cleanup, define_cleanup_func_runs_once_and_skips_null)
{
    int counter = 0;
    {
        SBX_CLEANUP(thing_free_cleanup_) struct thing *t = malloc(sizeof *t);
        t->counter = &counter;
        SBX_CLEANUP(thing_free_cleanup_) struct thing *none = NULL;
        (void)none;
    }
    cr_expect_eq(counter, 1);
}
