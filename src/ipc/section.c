/* sbx — the shared section (see layout.h for the picture). */
#include "ipc/section.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cleanup.h"

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

unsigned sbx_ipc_channel_count_for(size_t ipc_size, size_t channel_size)
{
    if (channel_size < SBX_IPC_MIN_CHANNEL_SIZE || channel_size % 64 || ipc_size % 64 ||
        ipc_size > SBX_IPC_MAX_AREA || channel_size > SBX_IPC_MAX_AREA ||
        ipc_size <= SBX_IPC_HEADER_SIZE)
        return 0;
    /* As in the seed: whatever is left after the header is split into
     * (control + buffer) pairs. */
    size_t n = (ipc_size - SBX_IPC_HEADER_SIZE) / (SBX_IPC_CONTROL_SIZE + channel_size);
    return n > 0xffffu ? 0xffffu : (unsigned)n;
}

int sbx_ipc_layout_compute(size_t ipc_size, size_t policy_size, size_t channel_size,
                           sbx_ipc_layout *out)
{
    unsigned n = sbx_ipc_channel_count_for(ipc_size, channel_size);
    if (n == 0 || policy_size > SBX_IPC_MAX_AREA)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->ipc_size = (uint32_t)ipc_size;
    out->channel_count = n;
    out->channel_size = (uint32_t)channel_size;
    out->buffers_offset = (uint32_t)(SBX_IPC_HEADER_SIZE + (size_t)n * SBX_IPC_CONTROL_SIZE);
    out->policy_offset = (uint32_t)round_up(ipc_size, SBX_IPC_PAGE);
    out->policy_size = (uint32_t)policy_size;
    out->total_size = round_up((size_t)out->policy_offset + policy_size, SBX_IPC_PAGE);
    return 0;
}

int sbx_ipc_layout_check(const sbx_ipc_header *hp, size_t file_size, sbx_ipc_layout *out)
{
    /* Read the header once into a local copy: the checks and the result must
     * agree even if someone rewrites the mapping meanwhile. */
    sbx_ipc_header h;
    memcpy(&h, (const void *)hp, sizeof h);
    if (h.magic != SBX_IPC_MAGIC || h.version != SBX_IPC_VERSION ||
        h.header_size != SBX_IPC_HEADER_SIZE || h.control_offset != SBX_IPC_HEADER_SIZE)
        return SBX_ERROR_BAD_SECTION;
    sbx_ipc_layout want;
    if (sbx_ipc_layout_compute(h.ipc_size, h.policy_size, h.channel_size, &want) < 0)
        return SBX_ERROR_BAD_SECTION;
    if (want.channel_count != h.channel_count || want.buffers_offset != h.buffers_offset ||
        want.policy_offset != h.policy_offset || want.total_size != file_size ||
        h.policy_used > h.policy_size)
        return SBX_ERROR_BAD_SECTION;
    *out = want;
    return 0;
}

int sbx_ipc_section_new(const sbx_ipc_section_options *opt, sbx_ipc_section **out)
{
    size_t ipc_size = opt && opt->ipc_size ? opt->ipc_size : SBX_IPC_DEFAULT_IPC_SIZE;
    size_t chan = opt && opt->channel_size ? opt->channel_size : SBX_IPC_DEFAULT_CHANNEL_SIZE;
    size_t pol = opt ? opt->policy_size : 0;
    sbx_ipc_layout l;
    int r = sbx_ipc_layout_compute(ipc_size, pol, chan, &l);
    if (r < 0)
        return r;

    SBX_AUTOCLOSE int fd = memfd_create("sbx-ipc", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return sbx_neg_errno();
    if (ftruncate(fd, (off_t)l.total_size) < 0)
        return sbx_neg_errno();
    /* A target must not be able to truncate the file under the broker's
     * mapping (SIGBUS in the broker) nor grow it; F_SEAL_SEAL stops anyone
     * from lifting these seals. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        return sbx_neg_errno();
    void *base = mmap(NULL, l.total_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED)
        return sbx_neg_errno();

    sbx_ipc_header *h = base;
    h->magic = SBX_IPC_MAGIC;
    h->version = SBX_IPC_VERSION;
    h->header_size = SBX_IPC_HEADER_SIZE;
    h->ipc_size = l.ipc_size;
    h->policy_offset = l.policy_offset;
    h->policy_size = l.policy_size;
    h->channel_count = l.channel_count;
    h->channel_size = l.channel_size;
    h->control_offset = SBX_IPC_HEADER_SIZE;
    h->buffers_offset = l.buffers_offset;
    h->policy_used = 0;
    sbx_ipc_control *ctl = sbx_ipc_controls(base);
    for (uint32_t i = 0; i < l.channel_count; i++) {
        ctl[i].buffer_offset = l.buffers_offset + i * l.channel_size;
        atomic_store(&ctl[i].state, SBX_CH_FREE);
    }

    sbx_ipc_section *s = calloc(1, sizeof *s);
    if (!s) {
        munmap(base, l.total_size);
        return -ENOMEM;
    }
    s->fd = sbx_steal_fd(&fd);
    s->base = base;
    s->layout = l;
    *out = s;
    return 0;
}

void sbx_ipc_section_free(sbx_ipc_section *s)
{
    if (!s)
        return;
    munmap(s->base, s->layout.total_size);
    sbx_close_keep_errno(s->fd);
    free(s);
}

int sbx_ipc_section_fd(const sbx_ipc_section *s)
{
    return s->fd;
}

unsigned sbx_ipc_section_channel_count(const sbx_ipc_section *s)
{
    return s->layout.channel_count;
}

size_t sbx_ipc_section_channel_size(const sbx_ipc_section *s)
{
    return s->layout.channel_size;
}

int sbx_ipc_section_write_policy(sbx_ipc_section *s, const void *policy, size_t size)
{
    if (size > s->layout.policy_size)
        return SBX_ERROR_TOO_LARGE;
    if (size)
        memcpy((char *)s->base + s->layout.policy_offset, policy, size);
    ((sbx_ipc_header *)s->base)->policy_used = (uint32_t)size;
    return 0;
}
