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

#endif
