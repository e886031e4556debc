/*
 * The D1 engine: Cloudflare D1's query semantics on one SQLite file per
 * database, with no transport. The host (or a state thread beside it) calls
 * these functions for a worker's `env.DB.prepare(sql).bind(...).all()`,
 * `batch`, `exec` and `dump`, and for `thaw d1 execute` / `thaw d1 migrations`.
 *
 * Values cross this interface as jansson JSON:
 *   SQL NULL  <-> null
 *   INTEGER   <-> integer
 *   REAL      <-> real (a non-finite REAL comes out as null, as JSON cannot
 *                 hold it and D1's JSON does the same)
 *   TEXT      <-> string (text that is not valid UTF-8 comes out with each bad
 *                 byte replaced by U+FFFD)
 *   BLOB      <-> {"$b": "<standard base64, padded>"}
 * Parameters also accept true/false (bound as 1/0, as D1 does). A row never
 * holds an object, so {"$b": ...} is unambiguous; any other parameter (an
 * array, another object, bad base64) fails with D1's type error.
 *
 * Results (all new json_t, the caller decrefs):
 *   D1_ALL, D1_RUN -> {"success": true, "results": [{column: value}...],
 *                      "meta": {duration, size_after, rows_read,
 *                               rows_written, last_row_id, changed_db,
 *                               changes}}
 *   D1_FIRST       -> the first row as an object, or with a column its value;
 *                     null when there is no row
 *   D1_RAW         -> [[value...]...]; D1_RAW_NAMES puts [column names] first
 *   D1_CURSOR      -> {"columns": [names], "rows": [[value...]...],
 *                      "rows_read": n, "rows_written": n} (a Durable
 *                      Object's sql.exec cursor)
 *
 * Errors: NULL (or -1) with err holding D1's message, prefix included
 * ("D1_ERROR: no such table: t: SQLITE_ERROR", "D1_TYPE_ERROR: ...",
 * "D1_COLUMN_NOTFOUND: ...", "D1_EXEC_ERROR: ...", "D1_DUMP_ERROR: ..."), ready
 * to become the worker's exception text.
 *
 * Threads: a struct d1_db is used by one thread at a time (the state thread
 * that owns it); nothing here has global state, so databases on different
 * threads are independent. d1_interrupt alone may be called from any thread.
 *
 * Blocking: every call runs SQL and may fsync (synchronous=FULL); a query is
 * interrupted after the database's time limit. None of it belongs on the
 * host's loop.
 */
#ifndef THAW_STATE_D1_H
#define THAW_STATE_D1_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* D1's documented limits, which thaw enforces the same way. */
#define D1_MAX_SQL_BYTES 100000    /* one statement */
#define D1_MAX_VALUE_BYTES 2000000 /* a string, a BLOB or a row */
#define D1_MAX_COLUMNS 100         /* of a table or a result */
#define D1_MAX_PARAMS 100          /* bound parameters of one statement */
#define D1_MAX_FUNCTION_ARGS 32
#define D1_MAX_LIKE_PATTERN 50      /* bytes of a LIKE or GLOB pattern */
#define D1_DEFAULT_TIMEOUT_MS 30000 /* a query, or a whole batch */
/* thaw's own bounds, where D1 names none. */
#define D1_DEFAULT_MAX_RESULT_BYTES (32u << 20) /* of one answer's values */
#define D1_DEFAULT_MAX_DUMP_BYTES (512u << 20)
#define D1_DEFAULT_BUSY_TIMEOUT_MS 5000
#define D1_MAX_FILE_BYTES (256u << 20) /* d1_execute_file, one migration */

#define D1_MIGRATIONS_TABLE "d1_migrations"

struct d1_db;

struct d1_options {
	/* A query (or a batch, or an exec) running longer is interrupted with
	 * D1's timeout error. 0: D1_DEFAULT_TIMEOUT_MS; negative: no limit
	 * (the CLI, for long imports). */
	int64_t timeout_ms;
	/* Bytes of values (strings, BLOBs, 8 per number) one answer may hold.
	 * 0: D1_DEFAULT_MAX_RESULT_BYTES. */
	size_t max_result_bytes;
	size_t max_dump_bytes; /* 0: D1_DEFAULT_MAX_DUMP_BYTES */
	int busy_timeout_ms;   /* 0: D1_DEFAULT_BUSY_TIMEOUT_MS */
	/* Tables whose names start with this (ASCII case aside) are the
	 * caller's own: SQL given to d1_query cannot read, write, create, drop,
	 * alter or index them (a Durable Object's "__cf_"); borrowed for the
	 * database's life (a string constant). NULL: none. */
	const char *reserved_prefix;
};

enum d1_mode { D1_ALL, D1_RUN, D1_FIRST, D1_RAW, D1_RAW_NAMES, D1_CURSOR };

/* Open (creating) the database file at path (its directory must exist):
 * WAL, synchronous=FULL, the busy timeout, the limits and the authorizer.
 * opt may be NULL for the defaults. Returns new (d1_close), or NULL with err. */
struct d1_db *d1_open(const char *path, const struct d1_options *opt, char *err, size_t errlen);
void d1_close(struct d1_db *db);

/* Interrupt what db is running now (from any thread): it fails with D1's
 * timeout error. A no-op when it is idle. */
void d1_interrupt(struct d1_db *db);

/* prepare(sql).bind(*params) then all()/run()/first(column)/raw(): params
 * (borrowed; NULL or a JSON array) are bound in order. sql may hold several
 * statements: each takes as many parameters as it has placeholders, the
 * total must match, and the results are the last statement's. column is
 * D1_FIRST's column name, or NULL for the whole row. Returns new (see the
 * top), or NULL with err. */
json_t *d1_query(struct d1_db *db, const char *sql, json_t *params, enum d1_mode mode,
		 const char *column, char *err, size_t errlen);

/* batch([...]): statements (borrowed) is an array of {"sql": "...",
 * "params": [...]} run in one transaction, the whole batch under one time
 * limit. Returns a new array of D1_ALL results, one per statement; or NULL
 * with err, everything rolled back, and *failed (may be NULL) the index of
 * the statement that failed (or -1 when the batch itself is malformed). */
json_t *d1_batch(struct d1_db *db, json_t *statements, long *failed, char *err, size_t errlen);

/* exec(sql): every statement of sql, without parameters, in one transaction.
 * Returns new {"count": statements, "duration": ms}, or NULL with err
 * ("D1_EXEC_ERROR: Error in line N: <statement>: <reason>"). */
json_t *d1_exec(struct d1_db *db, const char *sql, char *err, size_t errlen);

/* Like d1_exec, but returns a new array with one D1_ALL result per
 * statement: `thaw d1 execute --command`. Errors are D1_ERROR's. */
json_t *d1_execute(struct d1_db *db, const char *sql, char *err, size_t errlen);
/* d1_execute on the text of the file at path (at most D1_MAX_FILE_BYTES). */
json_t *d1_execute_file(struct d1_db *db, const char *path, char *err, size_t errlen);

/* dump(): the database file's bytes, a consistent copy taken with SQLite's
 * backup API into memory (no file is written). *bytes is new (free()).
 * 0, or -1 with err ("D1_DUMP_ERROR: ..."). */
int d1_dump(struct d1_db *db, unsigned char **bytes, size_t *len, char *err, size_t errlen);

/* --- migrations (wrangler's layout: DIR/NNNN_name.sql, applied once each,
 * recorded in a table of id, name, applied_at) ---
 * table NULL means D1_MIGRATIONS_TABLE. */

/* Returns new {"applied": [{"id", "name", "applied_at"}...],
 * "pending": ["0002_x.sql"...]} (both sorted by name), or NULL with err. A
 * missing directory has no migrations. */
json_t *d1_migrations_list(struct d1_db *db, const char *dir, const char *table, char *err,
			   size_t errlen);
/* Apply the pending migrations in order, each in its own transaction with its
 * row. Stops at the first failure (that one rolled back). *applied (returns
 * new, also on failure) lists the names applied by this call. 0, or -1 with
 * err naming the file. */
int d1_migrations_apply(struct d1_db *db, const char *dir, const char *table, json_t **applied,
			char *err, size_t errlen);
/* The same two, for migrations the caller holds (a host given them by `thaw
 * d1 migrations --remote`): migrations is an array of {"name": "NNNN_x.sql",
 * "sql": TEXT} (borrowed; list needs only the names). Names are checked
 * (d1_migration_name_valid); a text is at most D1_MAX_FILE_BYTES. */
json_t *d1_migrations_list_given(struct d1_db *db, json_t *migrations, const char *table,
				 char *err, size_t errlen);
int d1_migrations_apply_given(struct d1_db *db, json_t *migrations, const char *table,
			      json_t **applied, char *err, size_t errlen);
/* The migrations of dir as such an array, sorted by name (returns new), or
 * NULL with err. A missing directory has none. */
json_t *d1_migration_files_read(const char *dir, char *err, size_t errlen);
/* Is name a migration file's name: NAME.sql, printable UTF-8, no '/', not
 * starting with '.', at most 255 bytes? */
int d1_migration_name_valid(const char *name);
/* Create DIR (if needed) and DIR/NNNN_name.sql, NNNN one past the highest
 * number there (0001 first), with wrangler's header comment. name: letters,
 * digits, '_', '-', '.', spaces (made '_'). path receives the new file's path.
 * 0, or -1 with err. */
int d1_migrations_create(const char *dir, const char *name, char *path, size_t pathlen, char *err,
			 size_t errlen);

#endif
