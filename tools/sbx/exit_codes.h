/* sbx command — exit statuses (docs/sbx.1, EXIT STATUS). The only place
 * they are defined. */
#ifndef SBX_TOOL_EXIT_CODES_H
#define SBX_TOOL_EXIT_CODES_H

#define SBX_EXIT_OK 0
#define SBX_EXIT_DENIED 1           /* sbx check: the operation would be denied */
#define SBX_EXIT_FAILURE 125        /* sbx itself failed: bad option, bad policy, spawn error */
#define SBX_EXIT_CANNOT_EXECUTE 126 /* sbx run: PROGRAM exists but cannot be executed */
#define SBX_EXIT_NOT_FOUND 127      /* sbx run: PROGRAM was not found */
#define SBX_EXIT_SIGNAL_BASE 128    /* sbx run: PROGRAM killed by signal N gives 128 + N */

#endif
