/*
 * `thaw kv key ...` and `thaw d1 ...` against a host (--host URL, or
 * --remote for the host every remote command finds: $THAW_HOST, else the
 * default): the same commands, arguments and output as on local state
 * (kv_cli.c, d1_cli.c), over the control API's state endpoints
 * (docs/control-api.md). Blocks: one-shot commands.
 */
#ifndef THAW_EXT_STATE_REMOTE_H
#define THAW_EXT_STATE_REMOTE_H

struct state_remote_opts {
	const char *host;       /* NULL: $THAW_HOST, else the default */
	const char *token_file; /* NULL: $THAW_TOKEN */
	const char *worker;     /* the worker whose state it is */
	int verbose;
};

/* argv[0] the verb (put, get, list, delete), as kv_cli; store the binding
 * or namespace id. Returns the exit status. */
int state_remote_kv(const struct state_remote_opts *o, const char *store, int argc, char **argv);
/* argv[0] execute or migrations, as d1_cli; db the database_name or binding;
 * migrations_dir the local directory whose files a migration sends. */
int state_remote_d1(const struct state_remote_opts *o, const char *db, int argc, char **argv,
		    const char *migrations_dir);

#endif
