/* sbx internal — shared section: creation (broker), layout computation and
 * header checking (target). */
#ifndef SBX_IPC_SECTION_H
#define SBX_IPC_SECTION_H

#include <stddef.h>
#include <stdint.h>

#include <sbx/ipc.h>

#include "ipc/layout.h"

#define SBX_IPC_MIN_CHANNEL_SIZE 256u
#define SBX_IPC_MAX_AREA (1u << 30)

/* A layout computed from sizes (the broker's private truth). */
typedef struct sbx_ipc_layout {
    uint32_t ipc_size;
    uint32_t policy_offset;
    uint32_t policy_size;
    uint32_t channel_count;
    uint32_t channel_size;
    uint32_t buffers_offset;
    size_t total_size; /* file size */
} sbx_ipc_layout;

/* Compute the layout for the given sizes; 0 or -EINVAL. Pure. */
int sbx_ipc_layout_compute(size_t ipc_size, size_t policy_size, size_t channel_size,
                           sbx_ipc_layout *out);
/* Check a header (as read from a mapping of a file of file_size bytes) and
 * fill *out with the layout it describes. 0 or -SBX_ERROR_BAD_SECTION. */
int sbx_ipc_layout_check(const sbx_ipc_header *h, size_t file_size, sbx_ipc_layout *out);

struct sbx_ipc_section {
    int fd;
    void *base;
    sbx_ipc_layout layout;
};

#endif
