/* A program the broker tests run as a target: argv[1] names a check, the
 * exit status is the verdict (0 = what the test expects held). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <sbx/target.h>

static int eperm(long r)
{
    if (r == -1 && errno == EPERM)
        return 0;
    fprintf(stderr, "probe: expected EPERM, got %ld errno %d\n", r, errno);
    return 1;
}

static int caps_zero(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 2;
    char line[256];
    int ok = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "CapInh: %llx", &v) == 1 || sscanf(line, "CapPrm: %llx", &v) == 1 ||
            sscanf(line, "CapEff: %llx", &v) == 1 || sscanf(line, "CapBnd: %llx", &v) == 1 ||
            sscanf(line, "CapAmb: %llx", &v) == 1) {
            if (v)
                return 3;
            ok++;
        }
        int n;
        if (sscanf(line, "NoNewPrivs: %d", &n) == 1 && n != 1)
            return 4;
    }
    fclose(f);
    return ok == 5 ? 0 : 5;
}

static int sys_test(const char *name)
{
    /* Where the kernel itself would also say EPERM, a second spelling that
     * it would answer differently shows that the filter is what refused. */
    if (!strcmp(name, "ptrace"))
        return eperm(ptrace(PTRACE_ATTACH, getppid(), 0, 0)) | eperm(ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(name, "io_uring_setup")) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        return eperm(syscall(SYS_io_uring_setup, 4, &p));
    }
    if (!strcmp(name, "unshare_user"))
        return eperm(unshare(CLONE_NEWUSER));
    if (!strcmp(name, "mount")) /* natively EFAULT: the path is looked up first */
        return eperm(mount("none", "/tmp", "tmpfs", 0, NULL)) | eperm(mount(NULL, NULL, NULL, 0, NULL));
    if (!strcmp(name, "bpf"))
        return eperm(syscall(SYS_bpf, 0, NULL, 0));
    if (!strcmp(name, "process_vm_readv"))
        return eperm(syscall(SYS_process_vm_readv, getppid(), NULL, 0, NULL, 0, 0));
    if (!strcmp(name, "perf_event_open"))
        return eperm(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    if (!strcmp(name, "userfaultfd"))
        return eperm(syscall(SYS_userfaultfd, 0));
    if (!strcmp(name, "keyctl"))
        return eperm(syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (!strcmp(name, "add_key"))
        return eperm(syscall(SYS_add_key, "user", "x", "y", 1, 0));
    if (!strcmp(name, "kexec_load"))
        return eperm(syscall(SYS_kexec_load, 0, 0, NULL, 0));
    if (!strcmp(name, "init_module"))
        return eperm(syscall(SYS_init_module, NULL, 0, ""));
    if (!strcmp(name, "pivot_root"))
        return eperm(syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(name, "chroot"))
        return eperm(chroot("/tmp"));
    if (!strcmp(name, "setns"))
        return eperm(setns(0, 0));
    if (!strcmp(name, "fsopen"))
        return eperm(syscall(SYS_fsopen, "tmpfs", 0));
    if (!strcmp(name, "clone_newnet"))
        return eperm(syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    if (!strcmp(name, "clone3")) {
        long r = syscall(SYS_clone3, NULL, 0);
        return r == -1 && errno == ENOSYS ? 0 : 1;
    }
    if (!strcmp(name, "personality"))
        return eperm(personality(ADDR_NO_RANDOMIZE));
    if (!strcmp(name, "tiocsti")) { /* on /dev/null the kernel says ENOTTY */
        char c = 'x';
        int nul = open("/dev/null", O_RDWR);
        return eperm(ioctl(0, TIOCSTI, &c)) | eperm(ioctl(nul, TIOCSTI, &c)) |
               eperm(ioctl(nul, TIOCLINUX, &c));
    }
    if (!strcmp(name, "int80")) {
        /* open("/etc/ld.so.cache", O_RDONLY) through the 32-bit ABI. */
        static const char path[] = "/etc/ld.so.cache";
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(5L), "b"(path), "c"(0L) : "memory");
        if (ret == -EPERM)
            return 0;
        fprintf(stderr, "probe: int80 open returned %ld\n", ret);
        return 1;
    }
    if (!strcmp(name, "fork"))
        return eperm(fork());
    if (!strcmp(name, "vfork"))
        return eperm(syscall(SYS_vfork));
    if (!strcmp(name, "clone_thread_newns")) /* a thread's flags, and a namespace */
        return eperm(syscall(SYS_clone, CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND |
                                            CLONE_THREAD | CLONE_NEWNS, 0, 0, 0, 0));
    if (!strcmp(name, "clone_process")) /* a child process by clone: no CLONE_THREAD */
        return eperm(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0)) |
               eperm(syscall(SYS_clone, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0));
    return 99;
}

/* flood N [THREADS]: N bpf() calls spread over THREADS threads, each
 * must fail with EPERM. */
static long flood_calls;
static void *flood_thread(void *arg)
{
    (void)arg;
    for (long i = 0; i < flood_calls; i++)
        if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
            return (void *)1;
    return NULL;
}

static int flood(long n, int threads)
{
    if (threads < 1 || threads > 16 || n % threads)
        return 2;
    flood_calls = n / threads;
    pthread_t th[16];
    for (int i = 0; i < threads; i++)
        if (pthread_create(&th[i], NULL, flood_thread, NULL) != 0)
            return 3;
    int bad = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(th[i], &r);
        bad |= r != NULL;
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 100;
    const char *cmd = argv[1];
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(cmd, "exit"))
        return atoi(arg);
    if (!strcmp(cmd, "flood"))
        return flood(atol(arg), argc > 3 ? atoi(argv[3]) : 1);
    if (!strcmp(cmd, "flood_forever")) { /* "up" on stdout, then denied calls until killed */
        if (write(1, "up\n", 3) != 3)
            return 2;
        for (;;)
            (void)syscall(SYS_bpf, 0, NULL, 0);
    }
    if (!strcmp(cmd, "kill")) {
        raise(atoi(arg));
        return 101;
    }
    if (!strcmp(cmd, "absent")) /* every named path must be absent */
        for (int i = 2; i < argc; i++) {
            struct stat st;
            if (stat(argv[i], &st) == 0 || errno != ENOENT) {
                fprintf(stderr, "probe: %s is present\n", argv[i]);
                return 1;
            }
        }
    if (!strcmp(cmd, "absent"))
        return 0;
    if (!strcmp(cmd, "present")) {
        struct stat st;
        return stat(arg, &st) == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "connect")) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0)
            return 0;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(arg)) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return connect(s, (struct sockaddr *)&a, sizeof a) == 0 ? 1 : 0;
    }
    if (!strcmp(cmd, "lo_down")) { /* lo exists, is down, and cannot be brought up */
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (s < 0)
            return 1;
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, "lo", 3);
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0 || (ifr.ifr_flags & IFF_UP))
            return 1;
        ifr.ifr_flags |= IFF_UP;
        return ioctl(s, SIOCSIFFLAGS, &ifr) == 0 ? 1 : 0;
    }
    if (!strcmp(cmd, "caps"))
        return caps_zero();
    if (!strcmp(cmd, "fds")) { /* fds 0..63 open must be exactly {0,1,2} + argv[2..] */
        for (int fd = 0; fd < 64; fd++) {
            bool want = fd < 3;
            for (int i = 2; i < argc; i++)
                want |= atoi(argv[i]) == fd;
            bool open_ = fcntl(fd, F_GETFD) >= 0;
            if (want != open_) {
                fprintf(stderr, "probe: fd %d %s\n", fd, open_ ? "open" : "closed");
                return 1;
            }
        }
        return 0;
    }
    if (!strcmp(cmd, "sys"))
        return sys_test(arg);
    if (!strcmp(cmd, "signals")) { /* nothing ignored or blocked (exec keeps both) */
        FILE *f = fopen("/proc/self/status", "r");
        if (!f)
            return 2;
        char line[256];
        int seen = 0;
        while (fgets(line, sizeof line, f)) {
            unsigned long long v;
            if (sscanf(line, "SigIgn: %llx", &v) == 1 || sscanf(line, "SigBlk: %llx", &v) == 1) {
                if (v) {
                    fprintf(stderr, "probe: %s", line);
                    return 3;
                }
                seen++;
            }
        }
        fclose(f);
        return seen == 2 ? 0 : 4;
    }
    if (!strcmp(cmd, "filters")) { /* filters N: N seccomp filters attached, threads work */
        FILE *f = fopen("/proc/self/status", "r");
        if (!f)
            return 2;
        char line[256];
        int n = -1;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Seccomp_filters: %d", &n) == 1)
                break;
        fclose(f);
        if (n != atoi(arg)) {
            fprintf(stderr, "probe: %d seccomp filters, expected %s\n", n, arg);
            return 3;
        }
        pthread_t th;
        if (pthread_create(&th, NULL, flood_thread, NULL) != 0)
            return 4;
        return pthread_join(th, NULL) == 0 ? 0 : 5;
    }
    if (!strcmp(cmd, "forkbomb")) {
        int eagain = 0;
        for (int i = 0; i < 100000 && !eagain; i++) {
            pid_t p = fork();
            if (p == 0) {
                pause();
                _exit(0);
            }
            if (p < 0)
                eagain = errno == EAGAIN;
        }
        return eagain ? 0 : 1;
    }
    if (!strcmp(cmd, "hog")) {
        size_t mb = (size_t)atoi(arg);
        for (size_t i = 0; i < mb; i++) {
            char *p = malloc(1 << 20);
            if (!p)
                return 2;
            memset(p, (int)i, 1 << 20);
        }
        return 0;
    }
    if (!strcmp(cmd, "sleep")) {
        struct timespec ts = { atoi(arg) / 1000, (atoi(arg) % 1000) * 1000000L };
        nanosleep(&ts, NULL);
        return 0;
    }
    if (!strcmp(cmd, "family")) { /* a grandchild that sleeps, then sleep; write pids to fd 1 */
        pid_t c = fork();
        if (c == 0) {
            pause();
            _exit(0);
        }
        printf("%d\n", (int)getpid());
        fflush(stdout);
        pause();
        return 0;
    }
    if (!strcmp(cmd, "nofile")) { /* nofile N: opening fails with EMFILE before fd N */
        int last = -1, fd;
        while ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd < 100000)
            last = fd;
        return errno == EMFILE && last < atoi(arg) ? 0 : 1;
    }
    if (!strcmp(cmd, "attack_init")) { /* the init holds the sync socket: it must stay out of reach */
        kill(1, SIGKILL);
        kill(1, SIGTERM);
        kill(-1, SIGKILL); /* every process we may signal: only ourselves, here */
        if (open("/proc/1/mem", O_RDWR) >= 0 || open("/proc/1/environ", O_RDONLY) >= 0)
            return 2;
        char link[64];
        if (readlink("/proc/1/fd/0", link, sizeof link) >= 0)
            return 3;
        return 0;
    }
    if (!strcmp(cmd, "spin")) { /* burn CPU for up to ARG seconds of wall time */
        time_t end = time(NULL) + atoi(arg);
        volatile unsigned long x = 0;
        while (time(NULL) < end)
            x++;
        return 0;
    }
    if (!strcmp(cmd, "env")) /* env NAME: present?  */
        return getenv(arg) ? 0 : 1;
    if (!strcmp(cmd, "envcount")) {
        extern char **environ;
        int n = 0;
        while (environ[n])
            n++;
        return n;
    }
    if (!strcmp(cmd, "hostname")) {
        char h[64] = "";
        gethostname(h, sizeof h);
        return strcmp(h, "sbx") == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "write")) { /* write ARG to stdout */
        return write(1, arg, strlen(arg)) == (ssize_t)strlen(arg) ? 0 : 1;
    }
    if (!strcmp(cmd, "target")) {
        int r = sbx_target_init();
        if (r != 0)
            return 10;
        if (sbx_target_init() == 0)
            return 11;
        if (sbx_target_section_fd() != SBX_TARGET_FD_SECTION)
            return 12;
        size_t size = 0;
        const char *base = sbx_target_section(&size);
        if (!base || size < 5 || memcmp(base, "SBX1", 4) != 0)
            return 13;
        if (sbx_target_lower_token() != 0)
            return 14;
        if (sbx_target_lower_token() == 0)
            return 15;
        return 0;
    }
    if (!strcmp(cmd, "notarget"))
        return sbx_target_init() < 0 && sbx_target_lower_token() < 0 ? 0 : 1;
    if (!strcmp(cmd, "getpid")) /* a filter test: getpid answers per the seam's filter */
        return syscall(SYS_getppid) == -1 && errno == 42 ? 0 : 1;
    return 100;
}

/* Under ASan the probe runs without ptrace (LeakSanitizer needs it) and
 * keeps the test's signals to itself. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0:handle_segv=0:handle_sigbus=0";
}
