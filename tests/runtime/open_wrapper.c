/* A caller's own LD_PRELOAD that wraps open (tests/runtime/
 * test_trap_backend.c): says so on stderr once, then calls the next
 * definition. The trap shim, preloaded before it, must keep it in the
 * path of the program's open calls. */
#undef _FILE_OFFSET_BITS
#undef _FORTIFY_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

static void said(void)
{
    static int once;
    if (!once++)
        (void)!write(2, "wrapped\n", 8);
}

#define WRAP(name)                                                                             \
    int name(const char *path, int flags, ...)                                                 \
    {                                                                                          \
        va_list ap;                                                                            \
        va_start(ap, flags);                                                                   \
        int mode = (flags & O_CREAT) ? va_arg(ap, int) : 0;                                    \
        va_end(ap);                                                                            \
        said();                                                                                \
        int (*next)(const char *, int, ...) = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #name); \
        return next(path, flags, mode);                                                        \
    }
WRAP(open)
WRAP(open64)
