/* sbx internal — seams of the target services for the IPC and
 * interception components.
 *
 * Section check: sbx_target_init() maps the section fd, then calls the
 * registered verifier (the IPC code's header check) with the mapping;
 * without one, only "is a sealed-size memfd, non-empty" is checked.
 * Lockdown: sbx_target_lower_token() calls the registered hook (the
 * interception engine's trap filter installer) after the delayed
 * mitigations. Register both before sbx_target_init / lower_token — e.g.
 * from a constructor in the component that provides them. */
#ifndef SBX_TARGET_INTERNAL_H
#define SBX_TARGET_INTERNAL_H

#include <stddef.h>

typedef int (*sbx_target_section_verifier)(const void *base, size_t size);
typedef int (*sbx_target_lockdown_hook)(void);

void sbx_target_set_section_verifier(sbx_target_section_verifier fn);
void sbx_target_set_lockdown_hook(sbx_target_lockdown_hook fn);

/* The IPC client sbx_target_init() made (section mapped and header-checked,
 * its own dup of the broker socket), or NULL before init. Owned by the
 * target services; never freed. */
typedef struct sbx_ipc_client sbx_ipc_client;
sbx_ipc_client *sbx_target_ipc_client(void);

#endif
