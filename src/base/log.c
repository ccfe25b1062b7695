/* sbx — logging, ordinary and async-signal-safe. */
#include "base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static sbx_log_handler log_handler;
static void *log_handler_user;
/* -1 until first use, then a sbx_log_level. Atomic so that the safe logger
 * may read it from a signal handler. */
static _Atomic int log_level = -1;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static int level_from_env(void)
{
    const char *s = getenv("SBX_LOG_LEVEL");
    if (s)
        for (int i = 0; i < 4; i++)
            if (strcasecmp(s, level_names[i]) == 0)
                return i;
    return SBX_LOG_WARNING;
}

static int current_level(void)
{
    int l = atomic_load_explicit(&log_level, memory_order_relaxed);
    return l < 0 ? SBX_LOG_WARNING : l;
}

SBX_API void sbx_log_set_level(sbx_log_level level)
{
    if ((int)level < SBX_LOG_ERROR)
        level = SBX_LOG_ERROR;
    if (level > SBX_LOG_DEBUG)
        level = SBX_LOG_DEBUG;
    atomic_store(&log_level, (int)level);
}

SBX_API sbx_log_level sbx_log_get_level(void)
{
    int l = atomic_load(&log_level);
    if (l < 0) {
        int expected = -1;
        atomic_compare_exchange_strong(&log_level, &expected, level_from_env());
        l = atomic_load(&log_level);
    }
    return (sbx_log_level)l;
}

SBX_API void sbx_log_set_handler(sbx_log_handler handler, void *user)
{
    pthread_mutex_lock(&handler_lock);
    log_handler = handler;
    log_handler_user = user;
    pthread_mutex_unlock(&handler_lock);
}

int sbx_log_enabled(sbx_log_level level)
{
    return (int)level <= (int)sbx_log_get_level();
}

void sbx_vlog(sbx_log_level level, const char *fmt, va_list ap)
{
    if (!sbx_log_enabled(level))
        return;
    int saved = errno;
    char stackbuf[1024];
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(stackbuf, sizeof stackbuf, fmt, copy);
    va_end(copy);
    char *msg = stackbuf;
    char *heap = NULL;
    if (n >= (int)sizeof stackbuf) {
        heap = malloc((size_t)n + 1);
        if (heap) {
            vsnprintf(heap, (size_t)n + 1, fmt, ap);
            msg = heap;
        }
    }
    pthread_mutex_lock(&handler_lock);
    if (log_handler)
        log_handler(level, msg, log_handler_user);
    else
        fprintf(stderr, "sbx: %s: %s\n", level_names[level], msg);
    pthread_mutex_unlock(&handler_lock);
    free(heap);
    errno = saved;
}

void sbx_log(sbx_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sbx_vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- async-signal-safe formatting ---- */

struct out {
    char *buf;
    size_t size; /* capacity including the NUL */
    size_t len;
};

static void out_char(struct out *o, char c)
{
    if (o->size && o->len + 1 < o->size)
        o->buf[o->len++] = c;
}

static void out_str(struct out *o, const char *s)
{
    if (!s)
        s = "(null)";
    while (*s)
        out_char(o, *s++);
}

static void out_unsigned(struct out *o, uintmax_t v, unsigned base)
{
    char tmp[3 * sizeof v + 1];
    size_t i = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[i++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    while (i)
        out_char(o, tmp[--i]);
}

static void out_signed(struct out *o, intmax_t v)
{
    if (v < 0) {
        out_char(o, '-');
        /* -(INTMAX_MIN) overflows; go through unsigned arithmetic. */
        out_unsigned(o, (uintmax_t)0 - (uintmax_t)v, 10);
    } else {
        out_unsigned(o, (uintmax_t)v, 10);
    }
}

size_t sbx_safe_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct out o = { buf, size, 0 };
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            out_char(&o, *p);
            continue;
        }
        const char *start = p++;
        int lng = 0, sz = 0;
        while (*p == 'l') {
            lng++;
            p++;
        }
        if (*p == 'z') {
            sz = 1;
            p++;
        }
        switch (*p) {
        case '%':
            out_char(&o, '%');
            break;
        case 's':
            out_str(&o, va_arg(ap, const char *));
            break;
        case 'c':
            out_char(&o, (char)va_arg(ap, int));
            break;
        case 'd':
        case 'i':
            if (sz)
                out_signed(&o, (intmax_t)va_arg(ap, ssize_t));
            else if (lng >= 2)
                out_signed(&o, va_arg(ap, long long));
            else if (lng == 1)
                out_signed(&o, va_arg(ap, long));
            else
                out_signed(&o, va_arg(ap, int));
            break;
        case 'u':
        case 'x':
            {
                unsigned base = *p == 'x' ? 16 : 10;
                if (sz)
                    out_unsigned(&o, va_arg(ap, size_t), base);
                else if (lng >= 2)
                    out_unsigned(&o, va_arg(ap, unsigned long long), base);
                else if (lng == 1)
                    out_unsigned(&o, va_arg(ap, unsigned long), base);
                else
                    out_unsigned(&o, va_arg(ap, unsigned), base);
            }
            break;
        case 'p':
            out_str(&o, "0x");
            out_unsigned(&o, (uintptr_t)va_arg(ap, void *), 16);
            break;
        default:
            /* Unknown conversion: copy it literally and consume nothing. */
            for (const char *q = start; q <= p && *q; q++)
                out_char(&o, *q);
            if (!*p)
                p--;
            break;
        }
    }
    if (size)
        buf[o.len] = '\0';
    return o.len;
}

size_t sbx_safe_format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = sbx_safe_vformat(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

static void safe_write_line(int fd, char *buf, size_t len)
{
    buf[len++] = '\n';
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void sbx_safe_dprintf(int fd, const char *fmt, ...)
{
    int saved = errno;
    char buf[SBX_SAFE_LOG_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    size_t n = sbx_safe_vformat(buf, SBX_SAFE_LOG_MAX, fmt, ap);
    va_end(ap);
    safe_write_line(fd, buf, n);
    errno = saved;
}

void sbx_safe_log(sbx_log_level level, const char *fmt, ...)
{
    if ((int)level > current_level())
        return;
    int saved = errno;
    char buf[SBX_SAFE_LOG_MAX + 1];
    size_t n = sbx_safe_format(buf, SBX_SAFE_LOG_MAX, "sbx: %s: ", level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    n += sbx_safe_vformat(buf + n, SBX_SAFE_LOG_MAX - n, fmt, ap);
    va_end(ap);
    safe_write_line(STDERR_FILENO, buf, n);
    errno = saved;
}
