/*
 * The D1 engine (see d1.h for the interface and the value mapping).
 *
 * Storage: one SQLite file per database, opened once by the host and kept:
 * WAL, synchronous=FULL (a write is on disk when the call returns), foreign
 * keys enforced (as D1 enforces them), a busy timeout for the CLI writing
 * beside a running host.
 *
 * Every call is one transaction, as in D1: a query (all its statements), a
 * batch, an exec, a migration. A failure rolls the whole call back. So
 * `PRAGMA foreign_keys = off` is the no-op it is on D1, and
 * `PRAGMA defer_foreign_keys = on` is the way to reorder constraints.
 *
 * SQL and parameters come from a worker and are hostile. The rules, all on
 * the connection:
 * - An authorizer refuses ATTACH and DETACH (and so VACUUM, which attaches;
 *   VACUUM INTO 'file' would write anywhere), BEGIN/COMMIT/ROLLBACK/SAVEPOINT
 *   (the call owns the transaction), every PRAGMA but the SAFE_PRAGMAS list
 *   (D1's, plus data_version, which FTS5 reads), the functions in
 *   DENIED_FUNCTIONS, virtual table modules other than FTS5, and the
 *   introspection tables in DENIED_TABLES. Our own statements (BEGIN, the
 *   migrations table, the size) run with `trusted` set and pass.
 * - Extension loading is off (SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION and
 *   load_extension() refused), so is the two-argument fts3_tokenizer();
 *   SQLITE_DBCONFIG_DEFENSIVE forbids writing the schema or pages directly.
 * - sqlite3_limit holds D1's limits: statement length, string/BLOB/row size,
 *   columns, parameters, function arguments, LIKE pattern; no attached
 *   database at all; no worker threads.
 * - A progress handler interrupts a call past its deadline (D1's timeout
 *   error), and d1_interrupt may do so from another thread.
 * - An answer's size is bounded (max_result_bytes), counting the bytes of
 *   strings and BLOBs plus VALUE_OVERHEAD for every value.
 *
 * meta: duration (ms of SQL), changes (sqlite3_total_changes delta),
 * last_row_id, size_after (page_count * page_size), changed_db (any change,
 * a new rowid or a new size), rows_written (= changes; D1 also counts index
 * rows) and rows_read (an estimate: the most of the rows returned, the rows
 * stepped in full scans and the rows changed; D1 counts every row visited).
 *
 * Speed: a text that is one statement is prepared once and kept (the
 * CACHE_SIZE most recently used); a lone read-only statement without a
 * PRAGMA runs without a transaction of ours (SQLite's own is the same).
 *
 * Ownership: struct d1_db owns its connection and cached statements. Every
 * json_t returned is new; parameters are borrowed for the call.
 */
#include "state/d1.h"
#include "state/sqlite_wal.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define D1_TIMEOUT_ERROR                                                                           \
	"D1_ERROR: D1 DB storage operation exceeded timeout which caused object to be reset."
#define D1_PARAM_COUNT_ERROR "D1_ERROR: Wrong number of parameter bindings for SQL query."
#define D1_EMPTY_ERROR "D1_ERROR: No SQL statements detected."
#define PROGRESS_OPS 1000   /* VM instructions between two deadline checks */
#define VALUE_OVERHEAD 32   /* bytes an answer counts for every value */
#define TYPE_ERROR_VALUE 64 /* bytes of a refused value quoted in the error */
#define EXEC_ERROR_TEXT 200 /* bytes of a failing statement quoted */
#define CACHE_SIZE 16       /* single statements kept prepared, most recently used */
#define MIGRATION_NAME_MAX 100
#define MIGRATION_FILES_MAX 10000

/* D1's PRAGMA list (its "Compatible PRAGMA statements"), and data_version,
 * a read-only counter FTS5 reads for itself. */
static const char *const SAFE_PRAGMAS[] = {
	"table_list",
	"table_info",
	"table_xinfo",
	"index_list",
	"index_info",
	"index_xinfo",
	"foreign_key_list",
	"foreign_key_check",
	"quick_check",
	"foreign_keys",
	"defer_foreign_keys",
	"case_sensitive_like",
	"ignore_check_constraints",
	"legacy_alter_table",
	"recursive_triggers",
	"reverse_unordered_selects",
	"optimize",
	"data_version",
};

/* Functions that reach outside the database (load_extension, the fileio and
 * editor helpers of the sqlite3 shell, should a build ever carry them) or
 * take a raw pointer (fts3_tokenizer). */
static const char *const DENIED_FUNCTIONS[] = {
	"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "lsdir",
};

/* Eponymous virtual tables that show the connection rather than the data:
 * sqlite_stmt lists the SQL of every statement open on it. */
static const char *const DENIED_TABLES[] = {"sqlite_stmt", "sqlite_dbpage", "dbstat"};

static const char *const ALLOWED_MODULES[] = {"fts5", "fts5vocab"};

enum internal { I_BEGIN, I_BEGIN_IMMEDIATE, I_COMMIT, I_ROLLBACK, I_PAGE_COUNT, I_COUNT };

static const char *const internal_sql[I_COUNT] = {
	[I_BEGIN] = "BEGIN",       [I_BEGIN_IMMEDIATE] = "BEGIN IMMEDIATE", [I_COMMIT] = "COMMIT",
	[I_ROLLBACK] = "ROLLBACK", [I_PAGE_COUNT] = "PRAGMA page_count",
};

/* A single-statement text prepared once and kept. */
struct cached {
	char *sql;        /* the text, the key */
	sqlite3_stmt *st; /* reset and unbound between uses */
	uint64_t used;    /* d1_db.clock at the last use; 0: free */
	int alone;        /* may run outside a transaction: read-only, no PRAGMA */
};

struct d1_db {
	sqlite3 *db;
	struct d1_options opt;
	sqlite3_stmt *internal[I_COUNT]; /* prepared on first use */
	int64_t page_size;
	int trusted;          /* our own statement: the authorizer lets it pass */
	char deny[160];       /* why the authorizer refused, for the message */
	uint64_t deadline_ns; /* 0: none */
	int timed_out;        /* the progress handler stopped the call */
	size_t result_bytes;  /* counted against opt.max_result_bytes */
	int saw_pragma;       /* the authorizer saw a PRAGMA since it was cleared */
	struct cached cache[CACHE_SIZE];
	uint64_t clock;
};

/* What one statement (or a text of several) did. */
struct meta {
	double duration;
	int64_t changes;
	int64_t last_row_id;
	int64_t size_after;
	int64_t rows_read;
	int64_t rows_written;
	int changed_db;
};

/* Where a statement's rows go. */
struct rows {
	json_t *columns; /* names of the last statement run */
	json_t *rows;    /* arrays of values; NULL: rows are stepped, not kept */
	size_t keep;     /* keep at most this many rows (0: all) */
};

/* --- text --- */

static int ascii_casecmp_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(name, list[i]))
			return 1;
	return 0;
}

/* A JSON string for n bytes of text; invalid UTF-8 becomes U+FFFD. */
static json_t *text_json(const unsigned char *t, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t len = utf8_decode(t + i, n - i, NULL);
		if (!len)
			break;
		i += len;
	}
	if (i == n)
		return json_stringn_nocheck((const char *)t, n);
	char *out = xmalloc(n * 3 + 1);
	size_t o = 0;
	for (i = 0; i < n;) {
		size_t len = utf8_decode(t + i, n - i, NULL);
		if (!len) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, t + i, len);
			o += len;
			i += len;
		}
	}
	json_t *j = json_stringn_nocheck(out, o);
	free(out);
	return j;
}

/* Make err valid UTF-8 in place (a truncation may have cut a character;
 * SQLite quotes the SQL it was given): bad bytes become '?'. */
static void err_repair(char *err, size_t errlen)
{
	if (!err || !errlen)
		return;
	size_t n = strnlen(err, errlen);
	unsigned char *p = (unsigned char *)err;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (!len || (len == 1 && p[i] == 0)) {
			p[i++] = '?';
			continue;
		}
		i += len;
	}
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *blob_json(const unsigned char *b, size_t n)
{
	size_t olen = (n + 2) / 3 * 4;
	char *out = xmalloc(olen + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)b[i + 1] << 8;
		if (i + 2 < n)
			v |= b[i + 2];
		out[o++] = B64[(v >> 18) & 63];
		out[o++] = B64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? B64[v & 63] : '=';
	}
	out[o] = 0;
	json_t *j = json_pack("{s:s#}", "$b", out, o);
	free(out);
	if (!j)
		fatal("out of memory");
	return j;
}

static int b64_digit(unsigned char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

/* Decode padded standard base64. Returns new bytes (free) with *n, or NULL
 * when s is not base64. */
static unsigned char *b64_decode(const char *s, size_t len, size_t *n)
{
	if (len % 4)
		return NULL;
	unsigned char *out = xmalloc(len / 4 * 3 + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i += 4) {
		int pad = 0, d[4];
		for (int k = 0; k < 4; k++) {
			if (s[i + k] == '=' && i + 4 == len && k >= 2) {
				d[k] = 0;
				pad++;
			} else if (pad || (d[k] = b64_digit((unsigned char)s[i + k])) < 0) {
				free(out);
				return NULL;
			}
		}
		uint32_t v = (uint32_t)d[0] << 18 | (uint32_t)d[1] << 12 | (uint32_t)d[2] << 6 |
			     (uint32_t)d[3];
		out[o++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)v;
	}
	*n = o;
	return out;
}

/* --- errors --- */

static const char *code_name(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_ERROR:
		return "SQLITE_ERROR";
	case SQLITE_INTERNAL:
		return "SQLITE_INTERNAL";
	case SQLITE_PERM:
		return "SQLITE_PERM";
	case SQLITE_ABORT:
		return "SQLITE_ABORT";
	case SQLITE_BUSY:
		return "SQLITE_BUSY";
	case SQLITE_LOCKED:
		return "SQLITE_LOCKED";
	case SQLITE_NOMEM:
		return "SQLITE_NOMEM";
	case SQLITE_READONLY:
		return "SQLITE_READONLY";
	case SQLITE_INTERRUPT:
		return "SQLITE_INTERRUPT";
	case SQLITE_IOERR:
		return "SQLITE_IOERR";
	case SQLITE_CORRUPT:
		return "SQLITE_CORRUPT";
	case SQLITE_FULL:
		return "SQLITE_FULL";
	case SQLITE_CANTOPEN:
		return "SQLITE_CANTOPEN";
	case SQLITE_SCHEMA:
		return "SQLITE_SCHEMA";
	case SQLITE_TOOBIG:
		return "SQLITE_TOOBIG";
	case SQLITE_CONSTRAINT:
		return "SQLITE_CONSTRAINT";
	case SQLITE_MISMATCH:
		return "SQLITE_MISMATCH";
	case SQLITE_MISUSE:
		return "SQLITE_MISUSE";
	case SQLITE_AUTH:
		return "SQLITE_AUTH";
	case SQLITE_RANGE:
		return "SQLITE_RANGE";
	default:
		return "SQLITE_ERROR";
	}
}

/* The message for a failed SQLite call, in D1's shape. */
static int fail_rc(struct d1_db *d, int rc, char *err, size_t errlen)
{
	if (d->timed_out || (rc & 0xff) == SQLITE_INTERRUPT)
		return err_set(err, errlen, "%s", D1_TIMEOUT_ERROR);
	/* the authorizer said why (a refused function fails as SQLITE_ERROR) */
	if (d->deny[0])
		return err_set(err, errlen, "D1_ERROR: not authorized: %s: SQLITE_AUTH", d->deny);
	return err_set(err, errlen, "D1_ERROR: %s: %s", sqlite3_errmsg(d->db), code_name(rc));
}

/* --- the connection's guards --- */

static int deny(struct d1_db *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int deny(struct d1_db *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->deny, sizeof d->deny, fmt, ap);
	va_end(ap);
	return SQLITE_DENY;
}

/* Is name one of the caller's reserved tables (opt.reserved_prefix)? */
static int reserved(const struct d1_db *d, const char *name)
{
	const char *p = d->opt.reserved_prefix;
	return p && *p && name && !strncasecmp(name, p, strlen(p));
}

static int authorize(void *user, int action, const char *a1, const char *a2, const char *schema,
		     const char *trigger)
{
	struct d1_db *d = user;
	(void)schema;
	(void)trigger;
	if (d->trusted)
		return SQLITE_OK;
	switch (action) {
	case SQLITE_ATTACH:
	case SQLITE_DETACH:
		return deny(d, "%s is not allowed in D1 (nor VACUUM, which attaches)",
			    action == SQLITE_ATTACH ? "ATTACH" : "DETACH");
	case SQLITE_TRANSACTION:
	case SQLITE_SAVEPOINT:
		return deny(d,
			    "%s: D1 runs every query in a transaction of its own; use batch() "
			    "for several statements that must succeed or fail together",
			    action == SQLITE_TRANSACTION && a1 ? a1 : "SAVEPOINT");
	case SQLITE_PRAGMA:
		d->saw_pragma = 1;
		if (a1 && ascii_casecmp_list(a1, SAFE_PRAGMAS, ARRAY_SIZE(SAFE_PRAGMAS)))
			return SQLITE_OK;
		return deny(d, "PRAGMA %s is not one of the PRAGMA statements D1 supports",
			    a1 ? a1 : "?");
	case SQLITE_FUNCTION:
		if (a2 && ascii_casecmp_list(a2, DENIED_FUNCTIONS, ARRAY_SIZE(DENIED_FUNCTIONS)))
			return deny(d, "the function %s() is not available in D1", a2);
		return SQLITE_OK;
	case SQLITE_CREATE_VTABLE:
	case SQLITE_DROP_VTABLE:
		if (a2 && ascii_casecmp_list(a2, ALLOWED_MODULES, ARRAY_SIZE(ALLOWED_MODULES)))
			return SQLITE_OK;
		return deny(d, "the virtual table module %s is not available in D1 (FTS5 is)",
			    a2 ? a2 : "?");
	case SQLITE_READ:
	case SQLITE_INSERT:
	case SQLITE_UPDATE:
	case SQLITE_DELETE:
		if (a1 && ascii_casecmp_list(a1, DENIED_TABLES, ARRAY_SIZE(DENIED_TABLES)))
			return deny(d, "the table %s is not available in D1", a1);
		/* fall through */
	case SQLITE_CREATE_TABLE:
	case SQLITE_DROP_TABLE:
	case SQLITE_CREATE_TEMP_TABLE:
	case SQLITE_DROP_TEMP_TABLE:
		if (reserved(d, a1))
			return deny(d, "access to %s is prohibited (a table of the runtime's own)", a1);
		return SQLITE_OK;
	case SQLITE_CREATE_INDEX:
	case SQLITE_DROP_INDEX:
	case SQLITE_CREATE_TEMP_INDEX:
	case SQLITE_DROP_TEMP_INDEX:
	case SQLITE_CREATE_TRIGGER:
	case SQLITE_DROP_TRIGGER:
	case SQLITE_CREATE_TEMP_TRIGGER:
	case SQLITE_DROP_TEMP_TRIGGER:
	case SQLITE_ALTER_TABLE:
		if (reserved(d, a1) || reserved(d, a2))
			return deny(d, "access to %s is prohibited (a table of the runtime's own)",
				    reserved(d, a1) ? a1 : a2);
		return SQLITE_OK;
	default:
		return SQLITE_OK;
	}
}

static int progress(void *user)
{
	struct d1_db *d = user;
	if (d->deadline_ns && now_ns() > d->deadline_ns) {
		d->timed_out = 1;
		return 1;
	}
	return 0;
}

/* Start a public call: its deadline, its counters. */
static void call_begin(struct d1_db *d)
{
	d->timed_out = 0;
	d->result_bytes = 0;
	d->deny[0] = 0;
	d->deadline_ns = d->opt.timeout_ms > 0 ? now_ns() + (uint64_t)d->opt.timeout_ms * 1000000u
					       : 0;
}

static void call_end(struct d1_db *d, char *err, size_t errlen, int failed)
{
	d->deadline_ns = 0;
	if (failed)
		err_repair(err, errlen);
}

/* --- our own statements --- */

/* Run an internal statement (no rows wanted but PRAGMA page_count's, whose
 * value goes to *value when value is not NULL). 0, or -1 with err. */
static int internal_run(struct d1_db *d, enum internal q, int64_t *value, char *err, size_t errlen)
{
	int r = 0;
	d->trusted = 1;
	if (!d->internal[q]) {
		int rc = sqlite3_prepare_v3(d->db, internal_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
					    &d->internal[q], NULL);
		if (rc != SQLITE_OK) {
			d->internal[q] = NULL;
			r = fail_rc(d, rc, err, errlen);
			goto out;
		}
	}
	sqlite3_stmt *st = d->internal[q];
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (value)
			*value = sqlite3_column_int64(st, 0);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = fail_rc(d, rc, err, errlen);
	sqlite3_reset(st);
out:
	d->trusted = 0;
	return r;
}

static void rollback(struct d1_db *d)
{
	char ignored[64];
	/* The progress handler must not stop the rollback itself. */
	uint64_t deadline = d->deadline_ns;
	d->deadline_ns = 0;
	if (!sqlite3_get_autocommit(d->db))
		internal_run(d, I_ROLLBACK, NULL, ignored, sizeof ignored);
	d->deadline_ns = deadline;
}

static int begin(struct d1_db *d, int immediate, char *err, size_t errlen)
{
	return internal_run(d, immediate ? I_BEGIN_IMMEDIATE : I_BEGIN, NULL, err, errlen);
}

/* Commit, or roll back and fail. */
static int commit(struct d1_db *d, char *err, size_t errlen)
{
	if (internal_run(d, I_COMMIT, NULL, err, errlen) < 0) {
		rollback(d);
		return -1;
	}
	return 0;
}

static int64_t db_size(struct d1_db *d)
{
	int64_t pages = 0;
	char ignored[64];
	uint64_t deadline = d->deadline_ns;
	d->deadline_ns = 0;
	if (internal_run(d, I_PAGE_COUNT, &pages, ignored, sizeof ignored) < 0)
		pages = 0;
	d->deadline_ns = deadline;
	return pages * d->page_size;
}

/* Run a setup statement of ours through sqlite3_exec (open only). */
static int setup_exec(struct d1_db *d, const char *sql, char *err, size_t errlen)
{
	d->trusted = 1;
	int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);
	d->trusted = 0;
	return rc == SQLITE_OK ? 0 : fail_rc(d, rc, err, errlen);
}

/* --- open, close --- */

struct d1_db *d1_open(const char *path, const struct d1_options *opt, char *err, size_t errlen)
{
	if (!path || !path[0] || !strncmp(path, "file:", 5) || !strcmp(path, ":memory:")) {
		err_set(err, errlen, "D1: '%s' is not a database file path", path ? path : "");
		return NULL;
	}
	struct d1_db *d = xcalloc(1, sizeof *d);
	if (opt)
		d->opt = *opt;
	if (d->opt.timeout_ms == 0)
		d->opt.timeout_ms = D1_DEFAULT_TIMEOUT_MS;
	if (!d->opt.max_result_bytes)
		d->opt.max_result_bytes = D1_DEFAULT_MAX_RESULT_BYTES;
	if (!d->opt.max_dump_bytes)
		d->opt.max_dump_bytes = D1_DEFAULT_MAX_DUMP_BYTES;
	if (d->opt.busy_timeout_ms <= 0)
		d->opt.busy_timeout_ms = D1_DEFAULT_BUSY_TIMEOUT_MS;

	int rc = sqlite3_open_v2(path, &d->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		err_set(err, errlen, "D1: %s: %s", path,
			d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(d->db, 1);
	int off = 0, on = 1;
	if (sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, &off) != SQLITE_OK ||
	    sqlite3_db_config(d->db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, &off) != SQLITE_OK ||
	    sqlite3_db_config(d->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on) != SQLITE_OK ||
	    sqlite3_enable_load_extension(d->db, 0) != SQLITE_OK) {
		err_set(err, errlen, "D1: %s: configuring SQLite: %s", path, sqlite3_errmsg(d->db));
		goto fail;
	}
	sqlite3_limit(d->db, SQLITE_LIMIT_LENGTH, D1_MAX_VALUE_BYTES);
	sqlite3_limit(d->db, SQLITE_LIMIT_SQL_LENGTH, D1_MAX_SQL_BYTES);
	sqlite3_limit(d->db, SQLITE_LIMIT_COLUMN, D1_MAX_COLUMNS);
	sqlite3_limit(d->db, SQLITE_LIMIT_VARIABLE_NUMBER, D1_MAX_PARAMS);
	sqlite3_limit(d->db, SQLITE_LIMIT_FUNCTION_ARG, D1_MAX_FUNCTION_ARGS);
	sqlite3_limit(d->db, SQLITE_LIMIT_LIKE_PATTERN_LENGTH, D1_MAX_LIKE_PATTERN);
	sqlite3_limit(d->db, SQLITE_LIMIT_ATTACHED, 0);
	sqlite3_limit(d->db, SQLITE_LIMIT_WORKER_THREADS, 0);
	sqlite3_busy_timeout(d->db, d->opt.busy_timeout_ms);
	sqlite3_set_authorizer(d->db, authorize, d);
	sqlite3_progress_handler(d->db, PROGRESS_OPS, progress, d);

	d->trusted = 1;
	int wal = thaw_sqlite_wal(d->db, d->opt.busy_timeout_ms);
	d->trusted = 0;
	if ((wal != SQLITE_OK && wal != SQLITE_DONE && fail_rc(d, wal, err, errlen) < 0) ||
	    setup_exec(d, "PRAGMA synchronous = FULL", err, errlen) < 0 ||
	    setup_exec(d, "PRAGMA foreign_keys = ON", err, errlen) < 0) {
		char why[512];
		snprintf(why, sizeof why, "%s", err ? err : "");
		err_set(err, errlen, "D1: %s: %s", path, why);
		goto fail;
	}
	/* WAL needs a file system with shared memory; refuse a silent fallback. */
	{
		sqlite3_stmt *st = NULL;
		d->trusted = 1;
		int ok = sqlite3_prepare_v2(d->db, "PRAGMA journal_mode", -1, &st, NULL) ==
				 SQLITE_OK &&
			 sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) &&
			 !strcasecmp((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		st = NULL;
		if (ok &&
		    sqlite3_prepare_v2(d->db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			d->page_size = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		d->trusted = 0;
		if (!ok) {
			err_set(err, errlen, "D1: %s: the database could not be put in WAL mode",
				path);
			goto fail;
		}
	}
	return d;
fail:
	d1_close(d);
	return NULL;
}

void d1_close(struct d1_db *d)
{
	if (!d)
		return;
	for (int i = 0; i < I_COUNT; i++)
		sqlite3_finalize(d->internal[i]);
	for (int i = 0; i < CACHE_SIZE; i++) {
		sqlite3_finalize(d->cache[i].st);
		free(d->cache[i].sql);
	}
	sqlite3_close_v2(d->db);
	free(d);
}

void d1_interrupt(struct d1_db *d)
{
	if (d)
		sqlite3_interrupt(d->db);
}

/* --- values --- */

static int type_error(json_t *v, char *err, size_t errlen)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	const char *type = json_is_array(v) ? "object" : json_is_object(v) ? "object" : "unknown";
	int r = err_set(err, errlen, "D1_TYPE_ERROR: Type '%s' not supported for value '%.*s%s'",
			type, TYPE_ERROR_VALUE, text ? text : "?",
			text && strlen(text) > TYPE_ERROR_VALUE ? "..." : "");
	free(text);
	return r;
}

static int bind_value(struct d1_db *d, sqlite3_stmt *st, int at, json_t *v, char *err,
		      size_t errlen)
{
	int rc;
	switch (json_typeof(v)) {
	case JSON_NULL:
		rc = sqlite3_bind_null(st, at);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		rc = sqlite3_bind_int(st, at, json_is_true(v));
		break;
	case JSON_INTEGER:
		rc = sqlite3_bind_int64(st, at, json_integer_value(v));
		break;
	case JSON_REAL:
		rc = sqlite3_bind_double(st, at, json_real_value(v));
		break;
	case JSON_STRING:
		rc = sqlite3_bind_text64(st, at, json_string_value(v), json_string_length(v),
					 SQLITE_STATIC, SQLITE_UTF8);
		break;
	case JSON_OBJECT: {
		json_t *b = json_object_get(v, "$b");
		size_t n = 0;
		unsigned char *bytes = NULL;
		if (json_object_size(v) != 1 || !json_is_string(b) ||
		    !(bytes = b64_decode(json_string_value(b), json_string_length(b), &n)))
			return type_error(v, err, errlen);
		rc = sqlite3_bind_blob64(st, at, bytes, n, free);
		break;
	}
	default:
		return type_error(v, err, errlen);
	}
	return rc == SQLITE_OK ? 0 : fail_rc(d, rc, err, errlen);
}

static json_t *column_json(struct d1_db *d, sqlite3_stmt *st, int i)
{
	d->result_bytes += VALUE_OVERHEAD;
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_FLOAT: {
		double v = sqlite3_column_double(st, i);
		return isfinite(v) ? json_real(v) : json_null();
	}
	case SQLITE_TEXT: {
		const unsigned char *t = sqlite3_column_text(st, i);
		size_t n = (size_t)sqlite3_column_bytes(st, i);
		d->result_bytes += n;
		return text_json(t ? t : (const unsigned char *)"", t ? n : 0);
	}
	case SQLITE_BLOB: {
		const unsigned char *b = sqlite3_column_blob(st, i);
		size_t n = (size_t)sqlite3_column_bytes(st, i);
		d->result_bytes += n * 4 / 3;
		return blob_json(b ? b : (const unsigned char *)"", b ? n : 0);
	}
	default:
		return json_null();
	}
}

static json_t *column_names(sqlite3_stmt *st)
{
	json_t *names = json_array();
	int n = sqlite3_column_count(st);
	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_column_name(st, i);
		if (!name)
			name = "";
		json_array_append_new(names, text_json((const unsigned char *)name, strlen(name)));
	}
	return names;
}

/* --- running statements --- */

static void meta_add(struct meta *total, const struct meta *m)
{
	total->duration += m->duration;
	total->changes += m->changes;
	total->rows_read += m->rows_read;
	total->rows_written += m->rows_written;
	total->last_row_id = m->last_row_id;
	total->size_after = m->size_after;
	total->changed_db |= m->changed_db;
}

static json_t *meta_json(const struct meta *m)
{
	json_t *j = json_pack("{s:f, s:I, s:I, s:I, s:I, s:b, s:I}", "duration", m->duration,
			      "size_after", (json_int_t)m->size_after, "rows_read",
			      (json_int_t)m->rows_read, "rows_written", (json_int_t)m->rows_written,
			      "last_row_id", (json_int_t)m->last_row_id, "changed_db",
			      m->changed_db, "changes", (json_int_t)m->changes);
	if (!j)
		fatal("out of memory");
	return j;
}

/* Bind, step to the end, measure. Parameters are taken from params starting
 * at *next. 0, or -1 with err. */
static int run_statement(struct d1_db *d, sqlite3_stmt *st, json_t *params, size_t *next,
			 struct rows *out, struct meta *m, char *err, size_t errlen)
{
	int nparams = sqlite3_bind_parameter_count(st);
	size_t have = params ? json_array_size(params) : 0;
	if (have - *next < (size_t)nparams)
		return err_set(err, errlen, "%s", D1_PARAM_COUNT_ERROR);
	for (int i = 0; i < nparams; i++)
		if (bind_value(d, st, i + 1, json_array_get(params, *next + (size_t)i), err,
			       errlen) < 0)
			return -1;
	*next += (size_t)nparams;

	int64_t changes0 = sqlite3_total_changes64(d->db);
	int64_t rowid0 = sqlite3_last_insert_rowid(d->db);
	int readonly = sqlite3_stmt_readonly(st);
	int64_t size0 = readonly ? 0 : db_size(d); /* a read cannot change it */
	sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
	uint64_t t0 = now_ns();
	int64_t returned = 0;

	if (out) {
		json_decref(out->columns);
		out->columns = column_names(st);
		if (out->rows)
			json_array_clear(out->rows);
	}
	int ncol = sqlite3_column_count(st);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		returned++;
		if (!out || !out->rows || (out->keep && json_array_size(out->rows) >= out->keep))
			continue;
		json_t *row = json_array();
		for (int i = 0; i < ncol; i++)
			json_array_append_new(row, column_json(d, st, i));
		json_array_append_new(out->rows, row);
		if (d->result_bytes > d->opt.max_result_bytes) {
			sqlite3_reset(st);
			return err_set(err, errlen,
				       "D1_ERROR: the result is larger than %zu bytes, the most "
				       "one "
				       "query may return here; select fewer rows or columns "
				       "(LIMIT/OFFSET)",
				       d->opt.max_result_bytes);
		}
	}
	if (rc != SQLITE_DONE) {
		int r = fail_rc(d, rc, err, errlen);
		sqlite3_reset(st);
		return r;
	}
	m->duration = ns_to_ms(now_ns() - t0);
	m->changes = sqlite3_total_changes64(d->db) - changes0;
	m->last_row_id = sqlite3_last_insert_rowid(d->db);
	m->size_after = db_size(d);
	m->changed_db = m->changes != 0 || m->last_row_id != rowid0 ||
			(!readonly && m->size_after != size0);
	m->rows_written = m->changes;
	int64_t scanned = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
	m->rows_read = returned;
	if (scanned > m->rows_read)
		m->rows_read = scanned;
	if (m->changes > m->rows_read)
		m->rows_read = m->changes;
	return 0;
}

/* Rows (arrays) to objects keyed by column: a later column of the same name
 * wins, as in D1's Object.fromEntries. Returns new. */
static json_t *rows_to_objects(json_t *columns, json_t *rows)
{
	json_t *objs = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		json_t *o = json_object();
		size_t k;
		json_t *v;
		json_array_foreach(row, k, v) {
			json_object_set(o, json_string_value(json_array_get(columns, k)), v);
		}
		json_array_append_new(objs, o);
	}
	return objs;
}

static json_t *d1_result(json_t *columns, json_t *rows, const struct meta *m)
{
	json_t *j = json_pack("{s:b, s:o, s:o}", "success", 1, "meta", meta_json(m), "results",
			      rows_to_objects(columns, rows));
	if (!j)
		fatal("out of memory");
	return j;
}

/* The 1-based line of p in text. */
static long line_of(const char *text, const char *p)
{
	long line = 1;
	for (const char *c = text; c < p; c++)
		line += *c == '\n';
	return line;
}

static const char *skip_space(const char *p)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	return p;
}

/* Where run_text failed: the failing statement's start in the text, or
 * NULL when the failure is the text's as a whole. */
struct failure {
	const char *at;
};

/* The statement when sql is exactly one statement, prepared once and kept.
 * 0 with *st (borrowed: the cache owns it; reset it after use) and *alone;
 * 1 when sql is not one statement (several, a trailing comment, none): the
 * caller prepares it statement by statement; -1 with err. */
static int statement_cached(struct d1_db *d, const char *sql, sqlite3_stmt **st, int *alone,
			    char *err, size_t errlen)
{
	size_t victim = 0;
	*st = NULL;
	for (size_t i = 0; i < CACHE_SIZE; i++) {
		struct cached *c = &d->cache[i];
		if (c->sql && !strcmp(c->sql, sql)) {
			c->used = ++d->clock;
			*st = c->st;
			*alone = c->alone;
			return 0;
		}
		if (c->used < d->cache[victim].used)
			victim = i;
	}
	sqlite3_stmt *s = NULL;
	const char *tail = NULL;
	d->deny[0] = 0;
	d->saw_pragma = 0;
	int rc = sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, &tail);
	if (rc != SQLITE_OK)
		return fail_rc(d, rc, err, errlen);
	if (!s || *skip_space(tail)) {
		sqlite3_finalize(s);
		return 1;
	}
	struct cached *c = &d->cache[victim];
	sqlite3_finalize(c->st);
	free(c->sql);
	c->sql = xstrdup(sql);
	c->st = s;
	c->used = ++d->clock;
	c->alone = sqlite3_stmt_readonly(s) && !d->saw_pragma;
	*st = s;
	*alone = c->alone;
	return 0;
}

/* Run every statement of sql. params are bound across them in order (NULL:
 * none); out (may be NULL) gets the last statement's rows; each (may be
 * NULL) gets one D1_ALL result per statement; *count the statements run.
 * 0, or -1 with err and fail->at set. No transaction of its own. */
static int run_text(struct d1_db *d, const char *sql, json_t *params, struct rows *out,
		    json_t *each, struct meta *total, long *count, struct failure *fail, char *err,
		    size_t errlen)
{
	const char *tail = sql;
	size_t next = 0;
	long n = 0;
	memset(total, 0, sizeof *total);
	while (*(tail = skip_space(tail))) {
		sqlite3_stmt *st = NULL;
		const char *start = tail;
		int cached = 0, alone;
		fail->at = start;
		if (start == sql) {
			cached = statement_cached(d, sql, &st, &alone, err, errlen);
			if (cached < 0)
				return -1;
			cached = !cached;
		}
		if (cached) {
			tail = start + strlen(start);
		} else {
			d->deny[0] = 0;
			int rc = sqlite3_prepare_v3(d->db, start, -1, 0, &st, &tail);
			if (rc != SQLITE_OK)
				return fail_rc(d, rc, err, errlen);
		}
		if (!st) {
			if (tail == start)
				break; /* nothing parsed: only comments were left */
			continue;
		}
		struct meta m = {0};
		struct rows mine = {.rows = json_array()};
		struct rows *dest = each ? &mine : out;
		int r = run_statement(d, st, params, &next, dest, &m, err, errlen);
		if (cached) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
		} else {
			sqlite3_finalize(st);
		}
		if (r == 0 && each)
			json_array_append_new(each, d1_result(mine.columns, mine.rows, &m));
		json_decref(mine.columns);
		json_decref(mine.rows);
		if (r < 0)
			return -1;
		meta_add(total, &m);
		n++;
	}
	fail->at = NULL;
	if (n == 0)
		return err_set(err, errlen, "%s", D1_EMPTY_ERROR);
	if (next != (params ? json_array_size(params) : 0))
		return err_set(err, errlen, "%s", D1_PARAM_COUNT_ERROR);
	if (count)
		*count = n;
	return 0;
}

/* --- the API --- */

static json_t *query(struct d1_db *d, const char *sql, json_t *params, enum d1_mode mode,
		     const char *column, char *err, size_t errlen)
{
	if (!sql)
		return err_set(err, errlen, "%s", D1_EMPTY_ERROR), NULL;
	if (params && !json_is_array(params))
		return type_error(params, err, errlen), NULL;
	struct rows out = {.rows = json_array(), .keep = mode == D1_FIRST ? 1 : 0};
	struct meta m;
	struct failure where;
	json_t *answer = NULL;
	/* A lone read-only statement needs no transaction of ours (the common
	 * point query); anything else runs in one, as on D1. */
	sqlite3_stmt *st;
	int alone = 0;
	int single = statement_cached(d, sql, &st, &alone, err, errlen);
	if (single < 0)
		goto done;
	int own = !(single == 0 && alone);
	if (own && begin(d, 0, err, errlen) < 0)
		goto done;
	if (run_text(d, sql, params, &out, NULL, &m, NULL, &where, err, errlen) < 0) {
		if (own)
			rollback(d);
		goto done;
	}
	if (own && commit(d, err, errlen) < 0)
		goto done;
	switch (mode) {
	case D1_ALL:
	case D1_RUN:
		answer = d1_result(out.columns, out.rows, &m);
		break;
	case D1_FIRST: {
		json_t *row = json_array_get(out.rows, 0);
		if (!row) {
			answer = json_null();
			break;
		}
		if (!column) {
			json_t *objs = rows_to_objects(out.columns, out.rows);
			answer = json_incref(json_array_get(objs, 0));
			json_decref(objs);
			break;
		}
		/* the last column of that name, as the row object would hold */
		for (size_t k = json_array_size(out.columns); k-- > 0;) {
			const char *name = json_string_value(json_array_get(out.columns, k));
			if (name && !strcmp(name, column)) {
				answer = json_incref(json_array_get(row, k));
				break;
			}
		}
		if (!answer)
			err_set(err, errlen, "D1_COLUMN_NOTFOUND: Column not found (%s)", column);
		break;
	}
	case D1_CURSOR:
		answer = json_pack("{s:O, s:O, s:I, s:I}", "columns", out.columns, "rows", out.rows,
				   "rows_read", (json_int_t)m.rows_read, "rows_written",
				   (json_int_t)m.rows_written);
		break;
	case D1_RAW:
	case D1_RAW_NAMES:
		answer = json_array();
		if (mode == D1_RAW_NAMES)
			json_array_append(answer, out.columns);
		json_array_extend(answer, out.rows);
		break;
	default:
		err_set(err, errlen, "D1_ERROR: unknown query mode %d", (int)mode);
	}
done:
	json_decref(out.columns);
	json_decref(out.rows);
	return answer;
}

json_t *d1_query(struct d1_db *d, const char *sql, json_t *params, enum d1_mode mode,
		 const char *column, char *err, size_t errlen)
{
	call_begin(d);
	json_t *r = query(d, sql, params, mode, column, err, errlen);
	call_end(d, err, errlen, !r);
	return r;
}

static json_t *batch(struct d1_db *d, json_t *statements, long *failed, char *err, size_t errlen)
{
	*failed = -1;
	if (!json_is_array(statements))
		return err_set(err, errlen, "D1_ERROR: batch() takes a list of statements"), NULL;
	size_t i;
	json_t *s;
	json_array_foreach(statements, i, s) {
		json_t *params = json_object_get(s, "params");
		if (!json_is_object(s) || !json_is_string(json_object_get(s, "sql")) ||
		    (params && !json_is_null(params) && !json_is_array(params))) {
			*failed = (long)i;
			return err_set(err, errlen,
				       "D1_ERROR: batch() statement %zu is not a prepared "
				       "statement",
				       i),
			       NULL;
		}
	}
	if (json_array_size(statements) == 0)
		return err_set(err, errlen, "%s", D1_EMPTY_ERROR), NULL;
	if (begin(d, 1, err, errlen) < 0)
		return NULL;
	json_t *results = json_array();
	json_array_foreach(statements, i, s) {
		json_t *params = json_object_get(s, "params");
		struct rows out = {.rows = json_array()};
		struct meta m;
		struct failure where;
		int r = run_text(d, json_string_value(json_object_get(s, "sql")),
				 json_is_array(params) ? params : NULL, &out, NULL, &m, NULL,
				 &where, err, errlen);
		if (r == 0)
			json_array_append_new(results, d1_result(out.columns, out.rows, &m));
		json_decref(out.columns);
		json_decref(out.rows);
		if (r < 0) {
			*failed = (long)i;
			rollback(d);
			json_decref(results);
			return NULL;
		}
	}
	if (commit(d, err, errlen) < 0) {
		*failed = (long)json_array_size(statements) - 1;
		json_decref(results);
		return NULL;
	}
	return results;
}

json_t *d1_batch(struct d1_db *d, json_t *statements, long *failed, char *err, size_t errlen)
{
	long ignored;
	call_begin(d);
	json_t *r = batch(d, statements, failed ? failed : &ignored, err, errlen);
	call_end(d, err, errlen, !r);
	return r;
}

/* exec and execute: every statement of sql in one transaction. each (may be
 * NULL) collects one D1_ALL result per statement. */
static int exec_text(struct d1_db *d, const char *sql, json_t *each, long *count,
		     struct meta *total, char *err, size_t errlen)
{
	char why[1024];
	struct failure where = {0};
	if (begin(d, 1, err, errlen) < 0)
		return -1;
	if (run_text(d, sql, NULL, NULL, each, total, count, &where, why, sizeof why) < 0) {
		rollback(d);
		if (each) /* execute's errors are D1_ERROR's */
			return err_set(err, errlen, "%s", why);
		const char *reason = strncmp(why, "D1_ERROR: ", 10) ? why : why + 10;
		if (!where.at)
			return err_set(err, errlen, "D1_EXEC_ERROR: Error in line 1: : %s", reason);
		size_t n = strcspn(where.at, "\n");
		return err_set(err, errlen, "D1_EXEC_ERROR: Error in line %ld: %.*s%s: %s",
			       line_of(sql, where.at),
			       (int)(n > EXEC_ERROR_TEXT ? EXEC_ERROR_TEXT : n), where.at,
			       n > EXEC_ERROR_TEXT ? "..." : "", reason);
	}
	return commit(d, err, errlen);
}

json_t *d1_exec(struct d1_db *d, const char *sql, char *err, size_t errlen)
{
	long count = 0;
	struct meta total;
	call_begin(d);
	json_t *r = NULL;
	if (!sql)
		err_set(err, errlen, "D1_EXEC_ERROR: Error in line 1: : %s", &D1_EMPTY_ERROR[10]);
	else if (exec_text(d, sql, NULL, &count, &total, err, errlen) == 0)
		r = json_pack("{s:I, s:f}", "count", (json_int_t)count, "duration", total.duration);
	call_end(d, err, errlen, !r);
	return r;
}

json_t *d1_execute(struct d1_db *d, const char *sql, char *err, size_t errlen)
{
	struct meta total;
	call_begin(d);
	json_t *each = json_array();
	if (!sql || exec_text(d, sql, each, NULL, &total, err, errlen) < 0) {
		if (!sql)
			err_set(err, errlen, "%s", D1_EMPTY_ERROR);
		json_decref(each);
		each = NULL;
	}
	call_end(d, err, errlen, !each);
	return each;
}

/* Read a SQL file: at most D1_MAX_FILE_BYTES, no NUL byte. Returns new. */
static char *sql_file_read(const char *path, char *err, size_t errlen)
{
	size_t len = 0;
	char *text = read_file(path, D1_MAX_FILE_BYTES, &len);
	if (!text) {
		if (errno == EFBIG)
			err_set(err, errlen, "%s: larger than %u bytes", path, D1_MAX_FILE_BYTES);
		else
			err_set(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (strlen(text) != len) {
		free(text);
		err_set(err, errlen, "%s: the file holds a NUL byte; it is not SQL text", path);
		return NULL;
	}
	return text;
}

json_t *d1_execute_file(struct d1_db *d, const char *path, char *err, size_t errlen)
{
	char *text = sql_file_read(path, err, errlen);
	if (!text)
		return NULL;
	json_t *r = d1_execute(d, text, err, errlen);
	free(text);
	return r;
}

int d1_dump(struct d1_db *d, unsigned char **bytes, size_t *len, char *err, size_t errlen)
{
	*bytes = NULL;
	*len = 0;
	sqlite3 *mem = NULL;
	sqlite3_backup *b = NULL;
	unsigned char *image = NULL;
	int r = -1;
	int64_t size = db_size(d);
	if (size < 0 || (uint64_t)size > d->opt.max_dump_bytes) {
		err_set(err, errlen,
			"D1_DUMP_ERROR: the database (%lld bytes) is larger than %zu "
			"bytes, the most dump() returns",
			(long long)size, d->opt.max_dump_bytes);
		goto out;
	}
	if (sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		err_set(err, errlen, "D1_DUMP_ERROR: %s", mem ? sqlite3_errmsg(mem) : "no memory");
		goto out;
	}
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA page_size = %lld", (long long)d->page_size);
	sqlite3_exec(mem, pragma, NULL, NULL, NULL);
	d->trusted = 1;
	b = sqlite3_backup_init(mem, "main", d->db, "main");
	int rc = b ? sqlite3_backup_step(b, -1) : SQLITE_ERROR;
	int finish = b ? sqlite3_backup_finish(b) : SQLITE_ERROR;
	d->trusted = 0;
	if (rc != SQLITE_DONE || finish != SQLITE_OK) {
		err_set(err, errlen, "D1_DUMP_ERROR: %s", sqlite3_errmsg(mem));
		goto out;
	}
	sqlite3_int64 n = 0;
	image = sqlite3_serialize(mem, "main", &n, 0);
	if (!image || n < 0) {
		err_set(err, errlen, "D1_DUMP_ERROR: the copy could not be serialized");
		goto out;
	}
	*bytes = xmalloc((size_t)n ? (size_t)n : 1);
	memcpy(*bytes, image, (size_t)n);
	*len = (size_t)n;
	r = 0;
out:
	sqlite3_free(image);
	sqlite3_close(mem);
	err_repair(err, errlen);
	return r;
}

/* --- migrations --- */

/* A migrations table name we quote: [A-Za-z0-9_], 1..64. */
static int table_check(const char *table, char *err, size_t errlen)
{
	size_t n = strlen(table);
	if (n == 0 || n > 64)
		return err_set(err, errlen, "migrations table name must be 1 to 64 characters");
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)table[i]) && table[i] != '_')
			return err_set(err, errlen,
				       "migrations table name '%s' may hold only letters, digits "
				       "and '_'",
				       table);
	return 0;
}

/* Run one SQL statement of ours; rows go to each_row (may be NULL). */
static int trusted_sql(struct d1_db *d, const char *sql, const char *text_param, json_t *rows,
		       char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	d->trusted = 1;
	int rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && text_param)
		rc = sqlite3_bind_text(st, 1, text_param, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (!rows)
				continue;
			json_t *row = json_pack("{s:I, s:o, s:o}", "id",
						(json_int_t)sqlite3_column_int64(st, 0), "name",
						column_json(d, st, 1), "applied_at",
						column_json(d, st, 2));
			json_array_append_new(rows, row);
		}
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	int r = rc == SQLITE_OK ? 0 : fail_rc(d, rc, err, errlen);
	sqlite3_finalize(st);
	d->trusted = 0;
	return r;
}

static int migrations_table(struct d1_db *d, const char *table, char *err, size_t errlen)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "CREATE TABLE IF NOT EXISTS \"%s\" (\n"
		 "  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
		 "  name TEXT UNIQUE,\n"
		 "  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n)",
		 table);
	return trusted_sql(d, sql, NULL, NULL, err, errlen);
}

static int name_compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.sql files of dir, sorted (returns new, names too). A missing
 * directory has none. */
static int migration_files(const char *dir, char ***names, size_t *count, char *err, size_t errlen)
{
	*names = NULL;
	*count = 0;
	DIR *dh = opendir(dir);
	if (!dh) {
		if (errno == ENOENT)
			return 0;
		return err_set(err, errlen, "%s: %s", dir, strerror(errno));
	}
	struct dirent *e;
	size_t cap = 0;
	int r = 0;
	while ((e = readdir(dh))) {
		size_t n = strlen(e->d_name);
		if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".sql"))
			continue;
		struct stat st;
		if (fstatat(dirfd(dh), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		const unsigned char *p = (const unsigned char *)e->d_name;
		for (size_t i = 0; i < n;) {
			size_t len = utf8_decode(p + i, n - i, NULL);
			if (!len || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
				r = err_set(err, errlen,
					    "%s: a migration file name is not printable UTF-8; "
					    "rename "
					    "it",
					    dir);
				goto out;
			}
			i += len;
		}
		if (*count >= MIGRATION_FILES_MAX) {
			r = err_set(err, errlen, "%s: more than %d migration files", dir,
				    MIGRATION_FILES_MAX);
			goto out;
		}
		if (*count == cap) {
			cap = cap ? cap * 2 : 16;
			*names = xrealloc(*names, cap * sizeof **names);
		}
		(*names)[(*count)++] = xstrdup(e->d_name);
	}
	if (*count)
		qsort(*names, *count, sizeof **names, name_compare);
out:
	closedir(dh);
	if (r < 0) {
		for (size_t i = 0; i < *count; i++)
			free((*names)[i]);
		free(*names);
		*names = NULL;
		*count = 0;
	}
	return r;
}

static void names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* {"applied": [...], "pending": [...]} for the migrations named (sorted);
 * NULL with err. */
static json_t *migrations_state(struct d1_db *d, char *const *names, size_t count,
				const char *table, char *err, size_t errlen)
{
	if (table_check(table, err, errlen) < 0 || migrations_table(d, table, err, errlen) < 0)
		return NULL;
	json_t *applied = json_array();
	char sql[160];
	snprintf(sql, sizeof sql, "SELECT id, name, applied_at FROM \"%s\" ORDER BY name", table);
	if (trusted_sql(d, sql, NULL, applied, err, errlen) < 0) {
		json_decref(applied);
		return NULL;
	}
	json_t *pending = json_array();
	for (size_t i = 0; i < count; i++) {
		int done = 0;
		size_t k;
		json_t *row;
		json_array_foreach(applied, k, row) {
			const char *name = json_string_value(json_object_get(row, "name"));
			if (name && !strcmp(name, names[i]))
				done = 1;
		}
		if (!done)
			json_array_append_new(pending, json_string(names[i]));
	}
	json_t *j = json_pack("{s:o, s:o}", "applied", applied, "pending", pending);
	if (!j)
		fatal("out of memory");
	return j;
}

static json_t *migrations_state_dir(struct d1_db *d, const char *dir, const char *table,
				    char *err, size_t errlen)
{
	char **names;
	size_t count;
	if (migration_files(dir, &names, &count, err, errlen) < 0)
		return NULL;
	json_t *j = migrations_state(d, names, count, table, err, errlen);
	names_free(names, count);
	return j;
}

int d1_migration_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n < 5 || n > 255 || strcmp(name + n - 4, ".sql") || name[0] == '.' || strchr(name, '/'))
		return 0;
	const unsigned char *p = (const unsigned char *)name;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (!len || (len == 1 && (p[i] < 0x20 || p[i] == 0x7f)))
			return 0;
		i += len;
	}
	return 1;
}

json_t *d1_migration_files_read(const char *dir, char *err, size_t errlen)
{
	char **names;
	size_t count;
	if (migration_files(dir, &names, &count, err, errlen) < 0)
		return NULL;
	json_t *list = json_array();
	for (size_t i = 0; i < count; i++) {
		char path[4096];
		char *text = NULL;
		if (path_join(path, sizeof path, dir, names[i]) < 0)
			err_set(err, errlen, "%s/%s: path too long", dir, names[i]);
		else
			text = sql_file_read(path, err, errlen);
		if (!text) {
			json_decref(list);
			list = NULL;
			break;
		}
		json_array_append_new(list, json_pack("{s:s, s:s}", "name", names[i], "sql", text));
		free(text);
	}
	names_free(names, count);
	return list;
}

json_t *d1_migrations_list(struct d1_db *d, const char *dir, const char *table, char *err,
			   size_t errlen)
{
	call_begin(d);
	json_t *r = migrations_state_dir(d, dir, table ? table : D1_MIGRATIONS_TABLE, err, errlen);
	call_end(d, err, errlen, !r);
	return r;
}

static int migration_apply(struct d1_db *d, const char *table, const char *name,
			   const char *text, char *err, size_t errlen)
{
	char why[1024];
	struct meta total;
	struct failure where;
	long count = 0;
	if (begin(d, 1, err, errlen) < 0)
		return -1;
	if (run_text(d, text, NULL, NULL, NULL, &total, &count, &where, why, sizeof why) < 0 &&
	    strcmp(why, D1_EMPTY_ERROR)) {
		rollback(d);
		return err_set(err, errlen, "Migration %s failed: %s", name, why);
	}
	char sql[160];
	snprintf(sql, sizeof sql, "INSERT INTO \"%s\" (name) VALUES (?1)", table);
	if (trusted_sql(d, sql, name, NULL, why, sizeof why) < 0) {
		rollback(d);
		return err_set(err, errlen, "Migration %s could not be recorded: %s", name, why);
	}
	if (commit(d, why, sizeof why) < 0)
		return err_set(err, errlen, "Migration %s failed: %s", name, why);
	return 0;
}

static int migration_apply_file(struct d1_db *d, const char *dir, const char *table,
				const char *name, char *err, size_t errlen)
{
	char path[4096];
	if (path_join(path, sizeof path, dir, name) < 0)
		return err_set(err, errlen, "%s/%s: path too long", dir, name);
	char *text = sql_file_read(path, err, errlen);
	if (!text)
		return -1;
	int r = migration_apply(d, table, name, text, err, errlen);
	free(text);
	return r;
}

int d1_migrations_apply(struct d1_db *d, const char *dir, const char *table, json_t **applied,
			char *err, size_t errlen)
{
	*applied = json_array();
	if (!table)
		table = D1_MIGRATIONS_TABLE;
	call_begin(d);
	json_t *state = migrations_state_dir(d, dir, table, err, errlen);
	int r = state ? 0 : -1;
	size_t i;
	json_t *name;
	json_array_foreach(json_object_get(state, "pending"), i, name) {
		/* each migration has the whole time limit */
		call_begin(d);
		if (migration_apply_file(d, dir, table, json_string_value(name), err, errlen) < 0) {
			r = -1;
			break;
		}
		json_array_append(*applied, name);
	}
	json_decref(state);
	call_end(d, err, errlen, r < 0);
	return r;
}

/* The names of migrations (an array of {"name", "sql"?}), sorted, checked. */
static int given_names(json_t *migrations, char ***names, size_t *count, char *err,
		       size_t errlen)
{
	*names = NULL;
	*count = json_array_size(migrations);
	if (!json_is_array(migrations) || *count > MIGRATION_FILES_MAX)
		return err_set(err, errlen, "the migrations are an array of at most %d "
					    "{\"name\", \"sql\"} objects", MIGRATION_FILES_MAX);
	*names = xcalloc(*count ? *count : 1, sizeof **names);
	for (size_t i = 0; i < *count; i++) {
		const char *n = json_string_value(json_object_get(json_array_get(migrations, i),
								  "name"));
		if (!n || !d1_migration_name_valid(n)) {
			names_free(*names, i);
			*names = NULL;
			return err_set(err, errlen, "migration %zu: a name is NAME.sql, printable, "
						    "without '/'", i + 1);
		}
		(*names)[i] = xstrdup(n);
	}
	if (*count)
		qsort(*names, *count, sizeof **names, name_compare);
	return 0;
}

json_t *d1_migrations_list_given(struct d1_db *d, json_t *migrations, const char *table,
				 char *err, size_t errlen)
{
	char **names;
	size_t count;
	if (given_names(migrations, &names, &count, err, errlen) < 0)
		return NULL;
	call_begin(d);
	json_t *r = migrations_state(d, names, count, table ? table : D1_MIGRATIONS_TABLE, err,
				     errlen);
	call_end(d, err, errlen, !r);
	names_free(names, count);
	return r;
}

int d1_migrations_apply_given(struct d1_db *d, json_t *migrations, const char *table,
			      json_t **applied, char *err, size_t errlen)
{
	*applied = json_array();
	if (!table)
		table = D1_MIGRATIONS_TABLE;
	char **names;
	size_t count;
	if (given_names(migrations, &names, &count, err, errlen) < 0)
		return -1;
	call_begin(d);
	json_t *state = migrations_state(d, names, count, table, err, errlen);
	names_free(names, count);
	int r = state ? 0 : -1;
	size_t i;
	json_t *name;
	json_array_foreach(json_object_get(state, "pending"), i, name) {
		const char *n = json_string_value(name), *text = NULL;
		size_t k;
		json_t *m;
		json_array_foreach(migrations, k, m) {
			if (!strcmp(json_string_value(json_object_get(m, "name")), n))
				text = json_string_value(json_object_get(m, "sql"));
		}
		if (!text) {
			r = err_set(err, errlen, "Migration %s has no \"sql\" text", n);
			break;
		}
		if (strlen(text) > D1_MAX_FILE_BYTES) {
			r = err_set(err, errlen, "Migration %s: larger than %u bytes", n,
				    D1_MAX_FILE_BYTES);
			break;
		}
		call_begin(d);
		if (migration_apply(d, table, n, text, err, errlen) < 0) {
			r = -1;
			break;
		}
		json_array_append(*applied, name);
	}
	json_decref(state);
	call_end(d, err, errlen, r < 0);
	return r;
}

int d1_migrations_create(const char *dir, const char *name, char *path, size_t pathlen, char *err,
			 size_t errlen)
{
	char clean[MIGRATION_NAME_MAX + 1];
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > MIGRATION_NAME_MAX)
		return err_set(err, errlen, "a migration name is 1 to %d characters",
			       MIGRATION_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == ' ')
			c = '_';
		else if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return err_set(err, errlen,
				       "the migration name '%.*s' may hold only letters, digits, "
				       "'_', '-', '.' and spaces",
				       (int)n, name);
		clean[i] = (char)c;
	}
	clean[n] = 0;
	if (mkdir_p(dir, 0755) < 0)
		return err_set(err, errlen, "%s: %s", dir, strerror(errno));
	char **names;
	size_t count;
	if (migration_files(dir, &names, &count, err, errlen) < 0)
		return -1;
	unsigned long highest = 0;
	for (size_t i = 0; i < count; i++) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(names[i], &end, 10);
		if (end != names[i] && *end == '_' && !errno && v > highest && v < 1000000)
			highest = v;
	}
	names_free(names, count);
	unsigned long number = highest + 1;
	char file[MIGRATION_NAME_MAX + 32];
	snprintf(file, sizeof file, "%04lu_%s.sql", number, clean);
	if (path_join(path, pathlen, dir, file) < 0)
		return err_set(err, errlen, "%s/%s: path too long", dir, file);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(err, errlen, "%s: %s", path, strerror(errno));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char header[128];
	int hn = snprintf(header, sizeof header,
			  "-- Migration number: %04lu \t %04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\n",
			  number, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			  tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	int r = 0;
	if (write_all(fd, header, (size_t)hn) < 0 || fsync(fd) < 0) {
		r = err_set(err, errlen, "%s: %s", path, strerror(errno));
		unlink(path);
	}
	close(fd);
	return r;
}
