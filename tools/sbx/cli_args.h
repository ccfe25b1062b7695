/* sbx command — the argument parser. Pure: it reads argv and fills an
 * sbx_cli; it opens no file and touches no environment, so it is unit
 * tested directly (tests/cli/test_cli_args.c). What it accepts is
 * documented in docs/sbx.1 and `sbx help COMMAND`. */
#ifndef SBX_TOOL_CLI_ARGS_H
#define SBX_TOOL_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sbx_cli_command {
    SBX_CMD_NONE = 0,
    SBX_CMD_HELP,           /* sbx --help, sbx help [TOPIC], sbx CMD --help */
    SBX_CMD_VERSION,        /* sbx --version */
    SBX_CMD_RUN,            /* sbx run [OPTIONS] -- PROGRAM [ARGS...] */
    SBX_CMD_CHECK,          /* sbx check [POLICY OPTIONS] OPERATION PATH [PATH2] [FLAGS] */
    SBX_CMD_POLICY_SHOW,    /* sbx policy show NAME */
    SBX_CMD_POLICY_LIST,    /* sbx policy list */
    SBX_CMD_POLICY_COMPILE, /* sbx policy compile FILE */
    SBX_CMD_POLICY_DUMP,    /* sbx policy dump FILE */
    SBX_CMD_LEARN,          /* sbx learn [-o OUT] [RUN OPTIONS] -- PROGRAM [ARGS...] */
} sbx_cli_command;

/* Where rules come from, in command-line order (later add to earlier). */
typedef enum sbx_cli_source_kind {
    SBX_SRC_POLICY_FILE, /* --policy FILE */
    SBX_SRC_PROFILE,     /* --profile NAME */
    SBX_SRC_ALLOW_READ,  /* --allow-read PATTERN */
    SBX_SRC_ALLOW_WRITE, /* --allow-write PATTERN */
    SBX_SRC_ALLOW_QUERY, /* --allow-query PATTERN */
    SBX_SRC_DENY,        /* --deny PATTERN */
} sbx_cli_source_kind;

typedef struct sbx_cli_source {
    sbx_cli_source_kind kind;
    const char *value; /* borrowed from argv */
} sbx_cli_source;

typedef enum sbx_cli_check_op {
    SBX_CHECK_READ = 1,
    SBX_CHECK_WRITE,
    SBX_CHECK_CREATE,
    SBX_CHECK_STAT,
    SBX_CHECK_RENAME,
    SBX_CHECK_UNLINK,
    SBX_CHECK_MKDIR,
    SBX_CHECK_EXEC,
} sbx_cli_check_op;

/* check FLAGS */
#define SBX_CHECK_FLAG_DIR (1u << 0)    /* the object is a directory */
#define SBX_CHECK_FLAG_TRUNC (1u << 1)  /* write/create with O_TRUNC */
#define SBX_CHECK_FLAG_APPEND (1u << 2) /* write with O_APPEND */
#define SBX_CHECK_FLAG_RDWR (1u << 3)   /* read/write: O_RDWR */

#define SBX_CLI_UNSET UINT64_MAX

typedef struct sbx_cli {
    sbx_cli_command command;
    const char *help_topic; /* for SBX_CMD_HELP: NULL (overview) or a command name */

    /* policy sources (run, check) */
    sbx_cli_source *sources; /* owned array (sbx_cli_free); values borrowed */
    size_t n_sources;

    /* run and learn (learn: all but the policy sources and --backend) */
    uint64_t memory, processes, cpu_seconds, files; /* SBX_CLI_UNSET when not given */
    int net;     /* sbx_net_mode, -1 when not given */
    int backend; /* sbx_backend, -1 when not given */
    const char *cwd; /* --cwd DIR or "scratch"; NULL when not given */
    const char **env; /* owned array of borrowed "NAME" or "NAME=VALUE" */
    size_t n_env;
    const char *log_path;
    bool quiet, verbose, tty, keep_scratch;
    char **program_argv; /* borrowed slice of argv, NULL-terminated (argv's own NULL) */
    int program_argc;

    /* learn: -o FILE (NULL: stdout) */
    const char *learn_output;

    /* check */
    sbx_cli_check_op check_op;
    const char *check_path, *check_path2;
    unsigned check_flags;

    /* policy show/compile/dump: the NAME or FILE */
    const char *policy_target;
} sbx_cli;

/* Parse argv (argv[0] is the program name; argv[argc] must be NULL). On
 * success returns 0 with *cli filled (release with sbx_cli_free). On bad
 * input returns SBX_EXIT_FAILURE (125) and writes one line to err[errlen]
 * naming the problem and how to get help, without the "sbx: " prefix or a
 * newline; *cli is then still safe to sbx_cli_free. Strings in *cli are
 * borrowed from argv. */
int sbx_cli_parse(int argc, char **argv, sbx_cli *cli, char *err, size_t errlen);

/* Free what sbx_cli_parse allocated; NULL is a no-op. */
void sbx_cli_free(sbx_cli *cli);

/* The options `command` (SBX_CMD_RUN, SBX_CMD_LEARN or SBX_CMD_CHECK)
 * accepts, in table order, for help and completion tests: the i-th long
 * name without "--" (static storage), its short letter (0: none) in
 * *short_name when not NULL; NULL past the last. */
const char *sbx_cli_option(sbx_cli_command command, size_t i, char *short_name);

/* The names of the check operations, for help and completion. */
const char *sbx_cli_check_op_name(sbx_cli_check_op op);

#endif
