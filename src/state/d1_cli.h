/*
 * `thaw d1 execute` and `thaw d1 migrations` on a database file, printed the
 * way wrangler prints them (tables, or JSON with --json), so the command that
 * wires them in only resolves which file and which migrations directory.
 */
#ifndef THAW_STATE_D1_CLI_H
#define THAW_STATE_D1_CLI_H

/* argv[0] is the subcommand:
 *   execute (--command SQL | --file F) [--json]
 *   migrations list | migrations apply | migrations create NAME
 * db_path: the database file (created when missing; its directory must
 * exist); migrations_dir: the project's migrations_dir (wrangler's default is
 * "migrations"); migrations_table: NULL for d1_migrations. No time limit on
 * queries. Returns the exit status (0, 1 on failure, 2 for a usage error),
 * having told the user on stdout/stderr. */
int d1_cli(int argc, char **argv, const char *db_path, const char *migrations_dir,
	   const char *migrations_table);

#include <jansson.h>
#include <stddef.h>

/* Where the work goes: the engine's functions (d1.h) with the same results
 * and messages, on the local file (d1_cli) or a host's control API (`--host`,
 * src/ext/state_remote.c). */
struct d1_cli_backend {
	void *arg;         /* first argument of every call */
	const char *where; /* "local", "remote": for "Executing on local database X" */
	const char *name;  /* X */
	/* sql, or else the file at path file: d1_execute's array. */
	json_t *(*execute)(void *arg, const char *sql, const char *file, char *err,
			   size_t errlen);
	json_t *(*migrations_list)(void *arg, const char *dir, const char *table, char *err,
				   size_t errlen);
	int (*migrations_apply)(void *arg, const char *dir, const char *table, json_t **applied,
				char *err, size_t errlen);
};
/* d1_cli over any backend (borrowed); `migrations create` is always local. */
int d1_cli_with(int argc, char **argv, const struct d1_cli_backend *b, const char *migrations_dir,
		const char *migrations_table);

#endif
