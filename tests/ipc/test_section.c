/* Shared section: layout from sizes, header checks, seals, policy area. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "ipc_test_util.h"
#include "sbx_test.h"

Test(ipc_section, channel_count_from_sizes)
{
    /* (ipc - header) / (control + channel), as in the seed. */
    cr_expect_eq(sbx_ipc_channel_count_for(8192, 1024), (8192 - 64) / (SBX_IPC_CONTROL_SIZE + 1024));
    cr_expect_eq(sbx_ipc_channel_count_for(131072, 8704), (131072 - 64) / (SBX_IPC_CONTROL_SIZE + 8704));
    cr_expect_eq(sbx_ipc_channel_count_for(64 + SBX_IPC_CONTROL_SIZE + 256, 256), 1);
    cr_expect_eq(sbx_ipc_channel_count_for(64 + SBX_IPC_CONTROL_SIZE + 256 - 64, 256), 0, "not even one channel");
    cr_expect_eq(sbx_ipc_channel_count_for(8192, 1000), 0, "channel size not a multiple of 64");
    cr_expect_eq(sbx_ipc_channel_count_for(8190, 1024), 0, "ipc size not a multiple of 64");
    cr_expect_eq(sbx_ipc_channel_count_for(8192, 128), 0, "channel below the minimum");
    cr_expect_eq(sbx_ipc_channel_count_for((size_t)1 << 40, 1024), 0, "absurd size");

    sbx_ipc_section *s;
    sbx_ipc_section_options o = { .ipc_size = 8192, .channel_size = 1024 };
    cr_assert_eq(sbx_ipc_section_new(&o, &s), 0);
    cr_expect_eq(sbx_ipc_section_channel_count(s), (8192 - 64) / (SBX_IPC_CONTROL_SIZE + 1024));
    cr_expect_eq(sbx_ipc_section_channel_size(s), 1024);
    sbx_ipc_section_free(s);
    o.channel_size = 8192;
    cr_expect_eq(sbx_ipc_section_new(&o, &s), -EINVAL);
}

Test(ipc_section, default_channel_fits_a_rename_of_two_paths)
{
    cr_expect_eq(SBX_IPC_DEFAULT_CHANNEL_SIZE % 64, 0);
    static char p1[4096], p2[4096];
    memset(p1, 'a', 4095);
    memset(p2, 'b', 4095);
    sbx_arg args[] = { sbx_arg_u32(3), sbx_arg_string(p1), sbx_arg_u32(4), sbx_arg_string(p2),
                       sbx_arg_u32(0) };
    /* the request area: the channel minus its head (ping, cli_cpu) */
    static uint8_t buf[SBX_IPC_DEFAULT_CHANNEL_SIZE - SBX_IPC_CHAN_HEAD] __attribute__((aligned(8)));
    cr_expect_gt(sbx_ipc_wire_encode(buf, sizeof buf, 9, 0, 1, args, 5, NULL), 0);
}

Test(ipc_section, header_describes_layout_and_client_checks_it)
{
    broker b;
    sbx_ipc_section_options o = { .ipc_size = 16384, .channel_size = 1024, .policy_size = 5000 };
    cr_assert_eq(broker_start(&b, NULL, &o, NULL), 0);
    const sbx_ipc_header *h = b.sec->base;
    cr_expect_eq(h->magic, SBX_IPC_MAGIC);
    cr_expect_eq(h->version, SBX_IPC_VERSION);
    cr_expect_eq(h->ipc_size, 16384);
    cr_expect_eq(h->policy_size, 5000);
    cr_expect_eq(h->channel_size, 1024);
    cr_expect_eq(h->channel_count, (16384 - 64) / (SBX_IPC_CONTROL_SIZE + 1024));
    cr_expect_eq(h->buffers_offset, 64 + SBX_IPC_CONTROL_SIZE * h->channel_count);
    cr_expect_eq(h->policy_offset % 4096, 0);
    struct stat st;
    fstat(sbx_ipc_section_fd(b.sec), &st);
    cr_expect_eq((size_t)st.st_size, b.sec->layout.total_size);
    const sbx_ipc_control *ctl = sbx_ipc_controls(b.sec->base);
    for (unsigned i = 0; i < h->channel_count; i++)
        cr_expect_eq(atomic_load(&ctl[i].state), SBX_CH_FREE);
    sbx_ipc_client *c = client_for(&b);
    cr_assert_not_null(c);
    cr_expect_eq(sbx_ipc_client_channel_count(c), h->channel_count);
    sbx_ipc_client_free(c);
    broker_stop(&b, 1);
}

static int client_on_copy(const sbx_ipc_section *s, void (*mutate)(sbx_ipc_header *))
{
    /* Copy the section into a fresh sealed memfd, mutate its header, and
     * try to open a client on it. */
    size_t n = s->layout.total_size;
    int fd = memfd_create("t", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    if (ftruncate(fd, (off_t)n) < 0)
        abort();
    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
    void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(m, s->base, n);
    mutate(m);
    munmap(m, n);
    int sv[2];
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    sbx_ipc_client *c = NULL;
    int r = sbx_ipc_client_new(fd, sv[1], &c);
    sbx_ipc_client_free(c);
    close(sv[0]);
    close(fd);
    return r;
}

static void m_none(sbx_ipc_header *h) { (void)h; }
static void m_magic(sbx_ipc_header *h) { h->magic ^= 1; }
static void m_version(sbx_ipc_header *h) { h->version = 99; }
static void m_count(sbx_ipc_header *h) { h->channel_count += 1; }
static void m_chsize(sbx_ipc_header *h) { h->channel_size = 1088; }
static void m_bufoff(sbx_ipc_header *h) { h->buffers_offset -= 64; }
static void m_policy(sbx_ipc_header *h) { h->policy_size = 1u << 20; }
static void m_polused(sbx_ipc_header *h) { h->policy_used = h->policy_size + 1; }
static void m_ipcsize(sbx_ipc_header *h) { h->ipc_size = 0xffffffc0u; }

Test(ipc_section, client_rejects_a_header_that_does_not_check)
{
    sbx_ipc_section *s;
    sbx_ipc_section_options o = { .ipc_size = 16384, .channel_size = 1024, .policy_size = 100 };
    cr_assert_eq(sbx_ipc_section_new(&o, &s), 0);
    cr_expect_eq(client_on_copy(s, m_none), 0);
    void (*bad[])(sbx_ipc_header *) = { m_magic, m_version, m_count, m_chsize, m_bufoff,
                                         m_policy, m_polused, m_ipcsize };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(client_on_copy(s, bad[i]), SBX_ERROR_BAD_SECTION, "mutation %zu", i);
    sbx_ipc_section_free(s);
}

Test(ipc_section, client_rejects_an_unsealed_or_tiny_file)
{
    int fd = memfd_create("t", MFD_CLOEXEC);
    int sv[2];
    sbx_ipc_client *c = NULL;
    cr_assert_eq(ftruncate(fd, 65536), 0);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    cr_expect_eq(sbx_ipc_client_new(fd, sv[1], &c), SBX_ERROR_BAD_SECTION);
    cr_assert_eq(ftruncate(fd, 10), 0);
    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
    cr_expect_eq(sbx_ipc_client_new(fd, sv[1], &c), SBX_ERROR_BAD_SECTION);
    close(fd);
}

static void truncate_child(void *arg)
{
    int fd = *(int *)arg;
    struct stat st;
    fstat(fd, &st);
    if (ftruncate(fd, 0) == 0 || errno != EPERM)
        _exit(1);
    if (ftruncate(fd, st.st_size - 4096) == 0 || errno != EPERM)
        _exit(2);
    if (ftruncate(fd, st.st_size + 4096) == 0 || errno != EPERM)
        _exit(3);
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    int fd2 = open(p, O_RDWR | O_TRUNC);
    if (fd2 >= 0 || errno != EPERM)
        _exit(4);
    if (fallocate(fd, 0, st.st_size, 4096) == 0)
        _exit(5);
    /* Seals cannot be lifted or re-added by the target. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) == 0)
        _exit(6);
    fstat(fd, &st);
    _exit(0);
}

Test(ipc_section, target_cannot_truncate_or_grow_the_section)
{
    sbx_ipc_section *s;
    cr_assert_eq(sbx_ipc_section_new(NULL, &s), 0);
    int fd = sbx_ipc_section_fd(s);
    int seals = fcntl(fd, F_GET_SEALS);
    cr_expect_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                 F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    sbx_test_status st = sbx_test_run_child(truncate_child, &fd, 0);
    cr_expect(st.exited && st.code == 0, "child exit %d", st.code);
    struct stat sst;
    fstat(fd, &sst);
    cr_expect_eq((size_t)sst.st_size, s->layout.total_size);
    sbx_ipc_section_free(s);
}

Test(ipc_section, policy_area_is_carried_and_read_only_for_the_target)
{
    broker b;
    sbx_ipc_section_options o = { .policy_size = 10000 };
    cr_assert_eq(broker_start(&b, NULL, &o, NULL), 0);
    char pol[6000];
    for (size_t i = 0; i < sizeof pol; i++)
        pol[i] = (char)(i * 7);
    cr_expect_eq(sbx_ipc_section_write_policy(b.sec, pol, 20000), SBX_ERROR_TOO_LARGE);
    cr_assert_eq(sbx_ipc_section_write_policy(b.sec, pol, sizeof pol), 0);
    sbx_ipc_client *c = client_for(&b);
    cr_assert_not_null(c);
    const void *p;
    size_t n;
    cr_assert_eq(sbx_ipc_client_policy(c, &p, &n), 0);
    cr_expect_eq(n, sizeof pol);
    cr_expect_eq(memcmp(p, pol, n), 0);
    /* The view is mapped read-only: the kernel refuses to write into it. */
    int z = open("/dev/zero", O_RDONLY);
    cr_expect_eq(read(z, (void *)p, 1), -1);
    cr_expect_eq(errno, EFAULT);
    close(z);
    sbx_ipc_client_free(c);
    broker_stop(&b, 1);
}
