/*
 * Tests for the D1 engine (src/state/d1.c) against real SQLite files in a
 * fresh temporary directory per test: result shapes and meta, values both
 * ways, batch/exec atomicity, the safety rules, the time limit, durability,
 * dump, migrations and the CLI's exit statuses.
 */
/* cmocka.h needs these before it */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "state/d1.h"
#include "state/d1_cli.h"

struct fixture {
	char root[64];
	char path[128]; /* root/db.sqlite */
	char migrations[128];
	struct d1_db *db;
	char err[2048];
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->root, sizeof f->root, "/tmp/thaw-test-d1-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->path, sizeof f->path, "%s/db.sqlite", f->root);
	snprintf(f->migrations, sizeof f->migrations, "%s/migrations", f->root);
	f->db = d1_open(f->path, NULL, f->err, sizeof f->err);
	assert_non_null(f->db);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	d1_close(f->db);
	nftw(f->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- helpers --- */

static json_t *params(const char *json)
{
	json_error_t e;
	json_t *j = json_loads(json, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad test JSON %s: %s", json, e.text);
	return j;
}

/* Run sql with params (JSON text, may be NULL) in mode; asserts success. */
static json_t *ok(struct fixture *f, const char *sql, const char *p, enum d1_mode mode,
		  const char *column)
{
	json_t *pj = p ? params(p) : NULL;
	json_t *r = d1_query(f->db, sql, pj, mode, column, f->err, sizeof f->err);
	json_decref(pj);
	if (!r)
		fail_msg("%s: %s", sql, f->err);
	return r;
}

static void run(struct fixture *f, const char *sql, const char *p)
{
	json_decref(ok(f, sql, p, D1_RUN, NULL));
}

/* Run sql expecting failure; returns err. */
static const char *fails(struct fixture *f, const char *sql, const char *p)
{
	json_t *pj = p ? params(p) : NULL;
	f->err[0] = 0;
	json_t *r = d1_query(f->db, sql, pj, D1_ALL, NULL, f->err, sizeof f->err);
	json_decref(pj);
	if (r) {
		char *s = json_dumps(r, 0);
		fail_msg("%s should have failed, gave %s", sql, s);
	}
	assert_true(f->err[0] != 0);
	return f->err;
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static void assert_json(json_t *j, const char *expected)
{
	json_t *e = params(expected);
	if (!json_equal(j, e)) {
		char *got = json_dumps(j, JSON_SORT_KEYS | JSON_ENCODE_ANY);
		fail_msg("got %s, expected %s", got, expected);
	}
	json_decref(e);
}

static int64_t count_rows(struct fixture *f, const char *table)
{
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) AS n FROM %s", table);
	json_t *n = ok(f, sql, NULL, D1_FIRST, "n");
	int64_t v = json_integer_value(n);
	json_decref(n);
	return v;
}

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* --- result shapes and meta --- */

static void test_all_returns_rows_as_objects_with_success_and_meta(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", NULL);
	run(f, "INSERT INTO users (name) VALUES (?), (?)", "[\"ada\", \"bob\"]");
	json_t *r = ok(f, "SELECT id, name FROM users ORDER BY id", NULL, D1_ALL, NULL);
	assert_true(json_is_true(json_object_get(r, "success")));
	assert_json(json_object_get(r, "results"),
		    "[{\"id\": 1, \"name\": \"ada\"}, {\"id\": 2, \"name\": \"bob\"}]");
	json_t *m = json_object_get(r, "meta");
	assert_true(json_is_real(json_object_get(m, "duration")));
	assert_true(json_real_value(json_object_get(m, "duration")) >= 0);
	assert_true(json_integer_value(json_object_get(m, "size_after")) > 0);
	assert_true(json_integer_value(json_object_get(m, "rows_read")) >= 2);
	assert_int_equal(json_integer_value(json_object_get(m, "rows_written")), 0);
	assert_int_equal(json_integer_value(json_object_get(m, "changes")), 0);
	assert_true(json_is_false(json_object_get(m, "changed_db")));
	assert_true(json_is_integer(json_object_get(m, "last_row_id")));
	json_decref(r);
}

static void test_run_of_a_write_reports_changes_rowid_and_changed_db(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", NULL);
	json_t *r = ok(f, "INSERT INTO t (v) VALUES (?)", "[\"x\"]", D1_RUN, NULL);
	assert_true(json_is_true(json_object_get(r, "success")));
	assert_json(json_object_get(r, "results"), "[]");
	json_t *m = json_object_get(r, "meta");
	assert_int_equal(json_integer_value(json_object_get(m, "changes")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "rows_written")), 1);
	assert_int_equal(json_integer_value(json_object_get(m, "last_row_id")), 1);
	assert_true(json_is_true(json_object_get(m, "changed_db")));
	json_decref(r);
	/* RETURNING rows come back from run() as from all() */
	r = ok(f, "UPDATE t SET v = 'y' RETURNING id, v", NULL, D1_RUN, NULL);
	assert_json(json_object_get(r, "results"), "[{\"id\": 1, \"v\": \"y\"}]");
	json_decref(r);
}

static void test_first_gives_the_row_a_column_or_null(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a INTEGER, b TEXT)", NULL);
	json_t *r = ok(f, "SELECT * FROM t", NULL, D1_FIRST, NULL);
	assert_true(json_is_null(r));
	json_decref(r);
	r = ok(f, "SELECT * FROM t", NULL, D1_FIRST, "a");
	assert_true(json_is_null(r)); /* no row: None, even for a missing column */
	json_decref(r);
	run(f, "INSERT INTO t VALUES (1, 'one'), (2, 'two')", NULL);
	r = ok(f, "SELECT * FROM t ORDER BY a", NULL, D1_FIRST, NULL);
	assert_json(r, "{\"a\": 1, \"b\": \"one\"}");
	json_decref(r);
	r = ok(f, "SELECT * FROM t ORDER BY a DESC", NULL, D1_FIRST, "b");
	assert_json(r, "\"two\"");
	json_decref(r);
	assert_null(
		d1_query(f->db, "SELECT * FROM t", NULL, D1_FIRST, "nope", f->err, sizeof f->err));
	assert_string_equal(f->err, "D1_COLUMN_NOTFOUND: Column not found (nope)");
}

static void test_raw_gives_arrays_and_column_names_first_when_asked(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a INTEGER, b TEXT)", NULL);
	json_t *r = ok(f, "SELECT a, b FROM t", NULL, D1_RAW_NAMES, NULL);
	assert_json(r, "[[\"a\", \"b\"]]");
	json_decref(r);
	run(f, "INSERT INTO t VALUES (1, 'x'), (2, NULL)", NULL);
	r = ok(f, "SELECT a, b FROM t ORDER BY a", NULL, D1_RAW, NULL);
	assert_json(r, "[[1, \"x\"], [2, null]]");
	json_decref(r);
	r = ok(f, "SELECT a, b FROM t ORDER BY a", NULL, D1_RAW_NAMES, NULL);
	assert_json(r, "[[\"a\", \"b\"], [1, \"x\"], [2, null]]");
	json_decref(r);
}

/* --- values --- */

static void test_values_round_trip_and_bool_binds_as_integer(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE v (n, i, r, s, b, t, f)", NULL);
	run(f, "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?)",
	    "[null, 9007199254740993, 1.5, \"h\\u00e9llo\", {\"$b\": \"AAEC/w==\"}, true, false]");
	json_t *r =
		ok(f, "SELECT *, typeof(b) AS tb, typeof(t) AS tt FROM v", NULL, D1_FIRST, NULL);
	assert_json(r, "{\"n\": null, \"i\": 9007199254740993, \"r\": 1.5, \"s\": \"h\\u00e9llo\","
		       " \"b\": {\"$b\": \"AAEC/w==\"}, \"t\": 1, \"f\": 0, \"tb\": \"blob\","
		       " \"tt\": \"integer\"}");
	json_decref(r);
	/* every length of BLOB (padding) survives */
	r = ok(f, "SELECT ?1 AS a, ?2 AS b, ?3 AS c, length(?3) AS n",
	       "[{\"$b\": \"\"}, {\"$b\": \"YQ==\"}, {\"$b\": \"YWI=\"}]", D1_FIRST, NULL);
	assert_json(r, "{\"a\": {\"$b\": \"\"}, \"b\": {\"$b\": \"YQ==\"}, \"c\": {\"$b\": "
		       "\"YWI=\"}, \"n\": 2}");
	json_decref(r);
}

static void test_text_that_is_not_utf8_comes_out_repaired(void **state)
{
	struct fixture *f = *state;
	json_t *r = ok(f, "SELECT CAST(x'ff41' AS TEXT) AS t, 1e999 AS inf", NULL, D1_FIRST, NULL);
	assert_json(r, "{\"t\": \"\\ufffdA\", \"inf\": null}");
	json_decref(r);
}

static void test_a_parameter_of_another_type_is_a_d1_type_error(void **state)
{
	struct fixture *f = *state;
	assert_string_equal(fails(f, "SELECT ?", "[[1, 2]]"),
			    "D1_TYPE_ERROR: Type 'object' not supported for value '[1,2]'");
	assert_string_equal(fails(f, "SELECT ?", "[{\"x\": 1}]"),
			    "D1_TYPE_ERROR: Type 'object' not supported for value '{\"x\":1}'");
	assert_contains(fails(f, "SELECT ?", "[{\"$b\": \"not base64!\"}]"),
			"D1_TYPE_ERROR: Type 'object'");
}

static void test_a_wrong_number_of_parameters_is_refused(void **state)
{
	struct fixture *f = *state;
	const char *expected = "D1_ERROR: Wrong number of parameter bindings for SQL query.";
	assert_string_equal(fails(f, "SELECT ?, ?", "[1]"), expected);
	assert_string_equal(fails(f, "SELECT ?", "[1, 2]"), expected);
	assert_string_equal(fails(f, "SELECT 1", "[1]"), expected);
	/* several statements share the parameters in order */
	run(f, "CREATE TABLE t (a)", NULL);
	json_t *r = ok(f, "INSERT INTO t VALUES (?); SELECT a, ? AS b FROM t", "[7, 8]", D1_FIRST,
		       NULL);
	assert_json(r, "{\"a\": 7, \"b\": 8}");
	json_decref(r);
}

static void test_sql_errors_carry_d1_prefix_and_code(void **state)
{
	struct fixture *f = *state;
	assert_string_equal(fails(f, "SELECT * FROM nope", NULL),
			    "D1_ERROR: no such table: nope: SQLITE_ERROR");
	assert_string_equal(fails(f, "  -- nothing\n", NULL),
			    "D1_ERROR: No SQL statements detected.");
	run(f, "CREATE TABLE u (k TEXT UNIQUE)", NULL);
	run(f, "INSERT INTO u VALUES ('a')", NULL);
	assert_contains(fails(f, "INSERT INTO u VALUES ('a')", NULL),
			"UNIQUE constraint failed: u.k: SQLITE_CONSTRAINT");
}

static void test_foreign_keys_are_enforced_as_on_d1(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE p (id INTEGER PRIMARY KEY)", NULL);
	run(f, "CREATE TABLE c (p INTEGER REFERENCES p(id))", NULL);
	assert_contains(fails(f, "INSERT INTO c VALUES (5)", NULL), "FOREIGN KEY");
	/* deferred: the child first, then the parent, in one batch */
	json_t *b = params("[{\"sql\": \"PRAGMA defer_foreign_keys = on\"},"
			   " {\"sql\": \"INSERT INTO c VALUES (6)\"},"
			   " {\"sql\": \"INSERT INTO p VALUES (6)\"}]");
	json_t *r = d1_batch(f->db, b, NULL, f->err, sizeof f->err);
	if (!r)
		fail_msg("%s", f->err);
	json_decref(r);
	json_decref(b);
	assert_int_equal(count_rows(f, "c"), 1);
}

/* --- batch and exec --- */

static void test_batch_returns_one_result_per_statement(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a)", NULL);
	json_t *b = params("[{\"sql\": \"INSERT INTO t VALUES (?)\", \"params\": [1]},"
			   " {\"sql\": \"INSERT INTO t VALUES (?)\", \"params\": [2]},"
			   " {\"sql\": \"SELECT a FROM t ORDER BY a\"}]");
	json_t *r = d1_batch(f->db, b, NULL, f->err, sizeof f->err);
	if (!r)
		fail_msg("%s", f->err);
	assert_int_equal(json_array_size(r), 3);
	assert_int_equal(json_integer_value(
				 json_object_get(json_object_get(json_array_get(r, 1), "meta"),
						 "changes")),
			 1);
	assert_json(json_object_get(json_array_get(r, 2), "results"), "[{\"a\": 1}, {\"a\": 2}]");
	json_decref(r);
	json_decref(b);
}

static void test_batch_with_a_failing_third_statement_undoes_the_first_two(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a)", NULL);
	json_t *b = params("[{\"sql\": \"INSERT INTO t VALUES (?)\", \"params\": [1]},"
			   " {\"sql\": \"INSERT INTO t VALUES (?)\", \"params\": [2]},"
			   " {\"sql\": \"INSERT INTO nope VALUES (3)\"},"
			   " {\"sql\": \"INSERT INTO t VALUES (4)\"}]");
	long failed = 99;
	assert_null(d1_batch(f->db, b, &failed, f->err, sizeof f->err));
	assert_int_equal(failed, 2);
	assert_string_equal(f->err, "D1_ERROR: no such table: nope: SQLITE_ERROR");
	assert_int_equal(count_rows(f, "t"), 0);
	json_decref(b);
	/* a malformed batch names no statement that ran */
	b = params("[{\"sql\": 1}]");
	assert_null(d1_batch(f->db, b, &failed, f->err, sizeof f->err));
	assert_int_equal(failed, 0);
	json_decref(b);
}

static void test_exec_runs_several_statements_and_counts_them(void **state)
{
	struct fixture *f = *state;
	json_t *r =
		d1_exec(f->db,
			"CREATE TABLE a (x);\nINSERT INTO a VALUES (1); INSERT INTO a VALUES (';')"
			";\n-- a comment\nINSERT INTO a VALUES (3)",
			f->err, sizeof f->err);
	if (!r)
		fail_msg("%s", f->err);
	assert_int_equal(json_integer_value(json_object_get(r, "count")), 4);
	assert_true(json_is_real(json_object_get(r, "duration")));
	json_decref(r);
	assert_int_equal(count_rows(f, "a"), 3);
}

static void test_exec_error_names_the_line_and_rolls_back(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE a (x)", NULL);
	assert_null(d1_exec(f->db, "INSERT INTO a VALUES (1);\nINSERTZ INTO a VALUES (2);", f->err,
			    sizeof f->err));
	assert_contains(f->err, "D1_EXEC_ERROR: Error in line 2: INSERTZ INTO a VALUES (2);"
				": near \"INSERTZ\": syntax error");
	assert_int_equal(count_rows(f, "a"), 0);
}

/* --- safety --- */

static void test_attach_and_vacuum_into_are_refused_and_no_file_appears(void **state)
{
	struct fixture *f = *state;
	char sql[256], other[160];
	snprintf(other, sizeof other, "%s/other.db", f->root);
	snprintf(sql, sizeof sql, "ATTACH '%s' AS o", other);
	assert_contains(fails(f, sql, NULL), "not authorized: ATTACH");
	snprintf(sql, sizeof sql, "ATTACH 'file:%s?mode=rwc' AS o", other);
	assert_contains(fails(f, sql, NULL), "SQLITE_AUTH");
	/* VACUUM attaches (refused); and every query runs in a transaction */
	snprintf(sql, sizeof sql, "VACUUM INTO '%s'", other);
	assert_contains(fails(f, sql, NULL), "VACUUM");
	assert_null(d1_exec(f->db, sql, f->err, sizeof f->err));
	assert_contains(f->err, "VACUUM");
	assert_int_equal(access(other, F_OK), -1);
	assert_contains(fails(f, "DETACH main", NULL), "not authorized");
}

static void test_extension_loading_and_file_functions_are_refused(void **state)
{
	struct fixture *f = *state;
	assert_contains(fails(f, "SELECT load_extension('/lib/x86_64-linux-gnu/libc.so.6')", NULL),
			"load_extension() is not available");
	assert_contains(fails(f, "SELECT fts3_tokenizer('simple')", NULL), "not available");
	fails(f, "SELECT readfile('/etc/passwd')", NULL);
	fails(f, "SELECT writefile('/tmp/thaw-d1-x', 'x')", NULL);
	assert_contains(fails(f, "SELECT sql FROM sqlite_stmt", NULL), "not authorized");
	assert_contains(fails(f, "CREATE VIRTUAL TABLE x USING fts4(a)", NULL),
			"module fts4 is not available");
}

static void test_pragmas_outside_the_safe_list_are_refused(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)", NULL);
	json_t *r = ok(f, "PRAGMA table_info(t)", NULL, D1_ALL, NULL);
	assert_int_equal(json_array_size(json_object_get(r, "results")), 2);
	json_decref(r);
	r = ok(f, "SELECT name FROM pragma_table_info('t')", NULL, D1_RAW, NULL);
	assert_json(r, "[[\"a\"], [\"b\"]]");
	json_decref(r);
	run(f, "PRAGMA foreign_key_check", NULL);
	run(f, "PRAGMA optimize", NULL);
	assert_contains(fails(f, "PRAGMA writable_schema = 1", NULL),
			"PRAGMA writable_schema is not one of the PRAGMA statements D1");
	assert_contains(fails(f, "PRAGMA database_list", NULL), "not authorized");
	assert_contains(fails(f, "SELECT * FROM pragma_database_list", NULL), "not authorized");
	assert_contains(fails(f, "PRAGMA journal_mode = DELETE", NULL), "not authorized");
	assert_contains(fails(f, "PRAGMA temp_store_directory = '/tmp'", NULL), "not authorized");
}

static void test_transaction_statements_are_refused(void **state)
{
	struct fixture *f = *state;
	assert_contains(fails(f, "BEGIN", NULL), "use batch()");
	assert_contains(fails(f, "SAVEPOINT a", NULL), "not authorized");
	/* and the connection is not left inside one */
	run(f, "CREATE TABLE t (a)", NULL);
}

static void test_fts5_is_available(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE VIRTUAL TABLE docs USING fts5(body)", NULL);
	run(f, "INSERT INTO docs (body) VALUES ('hello world'), ('goodbye')", NULL);
	json_t *r = ok(f, "SELECT body FROM docs WHERE docs MATCH ?", "[\"hello\"]", D1_RAW, NULL);
	assert_json(r, "[[\"hello world\"]]");
	json_decref(r);
	run(f, "DROP TABLE docs", NULL);
}

static void test_d1_limits_are_enforced(void **state)
{
	struct fixture *f = *state;
	/* a statement over 100,000 bytes */
	size_t n = D1_MAX_SQL_BYTES + 100;
	char *sql = malloc(n + 1);
	assert_non_null(sql);
	memcpy(sql, "SELECT '", 8);
	memset(sql + 8, 'x', n - 10);
	memcpy(sql + n - 2, "'", 2);
	assert_contains(fails(f, sql, NULL), "SQLITE_TOOBIG");
	free(sql);
	/* a LIKE pattern over 50 bytes */
	assert_contains(fails(f, "SELECT 'a' LIKE ?",
			      "[\"%%%%%%%%%%%%%%%%%%%%%%%%%%%%"
			      "%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\"]"),
			"LIKE or GLOB pattern too complex");
	/* a string over 2,000,000 bytes */
	assert_contains(fails(f, "SELECT zeroblob(2000001)", NULL), "SQLITE_TOOBIG");
	/* 101 parameters */
	char many[512] = "SELECT ?1";
	strcat(many, ", ?101");
	assert_contains(fails(f, many, NULL), "variable number must be between");
	/* 101 columns in a table */
	char table[2048] = "CREATE TABLE wide (c0";
	for (int i = 1; i <= 100; i++)
		snprintf(table + strlen(table), sizeof table - strlen(table), ", c%d", i);
	strcat(table, ")");
	assert_contains(fails(f, table, NULL), "too many columns");
}

static void test_a_long_query_is_interrupted_with_d1_timeout_error(void **state)
{
	struct fixture *f = *state;
	d1_close(f->db);
	struct d1_options opt = {.timeout_ms = 200};
	f->db = d1_open(f->path, &opt, f->err, sizeof f->err);
	assert_non_null(f->db);
	uint64_t t0 = now_ns();
	assert_string_equal(fails(f,
				  "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
				  "SELECT count(*) FROM c",
				  NULL),
			    "D1_ERROR: D1 DB storage operation exceeded timeout which caused "
			    "object to be reset.");
	double ms = ns_to_ms(now_ns() - t0);
	assert_true(ms >= 150 && ms < 5000);
	/* the database still answers */
	json_t *r = ok(f, "SELECT 1 AS one", NULL, D1_FIRST, "one");
	assert_int_equal(json_integer_value(r), 1);
	json_decref(r);
}

static struct d1_db *interrupt_db;
static volatile int interrupt_done;

/* Interrupt every 50 ms until the query has failed: one interrupt that came
 * before the query started would be a no-op. */
static void *interrupt_later(void *unused)
{
	(void)unused;
	while (!__atomic_load_n(&interrupt_done, __ATOMIC_SEQ_CST)) {
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
		d1_interrupt(interrupt_db);
	}
	return NULL;
}

static void test_another_thread_can_interrupt_a_query_without_time_limit(void **state)
{
	struct fixture *f = *state;
	d1_close(f->db);
	struct d1_options opt = {.timeout_ms = -1};
	f->db = d1_open(f->path, &opt, f->err, sizeof f->err);
	assert_non_null(f->db);
	pthread_t t;
	interrupt_db = f->db;
	__atomic_store_n(&interrupt_done, 0, __ATOMIC_SEQ_CST);
	assert_int_equal(pthread_create(&t, NULL, interrupt_later, NULL), 0);
	const char *e = fails(f,
			      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
			      "SELECT count(*) FROM c",
			      NULL);
	__atomic_store_n(&interrupt_done, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	assert_contains(e, "exceeded timeout");
	json_t *r = ok(f, "SELECT 2 AS two", NULL, D1_FIRST, "two");
	assert_int_equal(json_integer_value(r), 2);
	json_decref(r);
}

static void test_a_result_over_the_size_bound_is_refused(void **state)
{
	struct fixture *f = *state;
	d1_close(f->db);
	struct d1_options opt = {.max_result_bytes = 64 * 1024};
	f->db = d1_open(f->path, &opt, f->err, sizeof f->err);
	assert_non_null(f->db);
	assert_contains(fails(f,
			      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
			      "SELECT x, printf('%0500d', x) FROM c",
			      NULL),
			"the result is larger than 65536 bytes");
}

/* --- storage --- */

static void test_writes_survive_a_reopen(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a)", NULL);
	run(f, "INSERT INTO t VALUES (?)", "[\"kept\"]");
	d1_close(f->db);
	f->db = d1_open(f->path, NULL, f->err, sizeof f->err);
	assert_non_null(f->db);
	json_t *r = ok(f, "SELECT a FROM t", NULL, D1_FIRST, "a");
	assert_json(r, "\"kept\"");
	json_decref(r);
	/* WAL and synchronous=FULL, as documented */
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(raw);
}

static void test_dump_gives_a_database_file_with_the_data(void **state)
{
	struct fixture *f = *state;
	run(f, "CREATE TABLE t (a)", NULL);
	run(f, "INSERT INTO t VALUES ('dumped')", NULL);
	unsigned char *bytes = NULL;
	size_t len = 0;
	assert_int_equal(d1_dump(f->db, &bytes, &len, f->err, sizeof f->err), 0);
	assert_true(len >= 512);
	assert_memory_equal(bytes, "SQLite format 3", 16);
	char copy[192];
	snprintf(copy, sizeof copy, "%s/copy.db", f->root);
	int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, bytes, len), 0);
	close(fd);
	free(bytes);
	struct d1_db *c = d1_open(copy, NULL, f->err, sizeof f->err);
	assert_non_null(c);
	json_t *r = d1_query(c, "SELECT a FROM t", NULL, D1_FIRST, "a", f->err, sizeof f->err);
	assert_json(r, "\"dumped\"");
	json_decref(r);
	d1_close(c);
}

/* --- migrations --- */

static void test_migrations_are_created_listed_and_applied_once(void **state)
{
	struct fixture *f = *state;
	char p1[512], p2[512], p3[512];
	json_t *l = d1_migrations_list(f->db, f->migrations, NULL, f->err, sizeof f->err);
	assert_non_null(l);
	assert_json(l, "{\"applied\": [], \"pending\": []}");
	json_decref(l);

	assert_int_equal(d1_migrations_create(f->migrations, "create users", p1, sizeof p1, f->err,
					      sizeof f->err),
			 0);
	assert_contains(p1, "/0001_create_users.sql");
	assert_int_equal(d1_migrations_create(f->migrations, "add-email", p2, sizeof p2, f->err,
					      sizeof f->err),
			 0);
	assert_contains(p2, "/0002_add-email.sql");
	assert_int_equal(d1_migrations_create(f->migrations, "../x", p3, sizeof p3, f->err,
					      sizeof f->err),
			 -1);
	size_t hlen;
	char *header = read_file(p1, 4096, &hlen);
	assert_non_null(header);
	assert_true(!strncmp(header, "-- Migration number: 0001 \t ", 28));
	free(header);
	write_text(p1, "-- Migration number: 0001\nCREATE TABLE users (id INTEGER PRIMARY KEY);\n");
	write_text(p2, "ALTER TABLE users ADD COLUMN email TEXT;\nINSERT INTO users (email) "
		       "VALUES ('a@b');\n");

	l = d1_migrations_list(f->db, f->migrations, NULL, f->err, sizeof f->err);
	assert_json(json_object_get(l, "pending"),
		    "[\"0001_create_users.sql\", \"0002_add-email.sql\"]");
	json_decref(l);

	json_t *applied = NULL;
	assert_int_equal(d1_migrations_apply(f->db, f->migrations, NULL, &applied, f->err,
					     sizeof f->err),
			 0);
	assert_json(applied, "[\"0001_create_users.sql\", \"0002_add-email.sql\"]");
	json_decref(applied);
	assert_int_equal(count_rows(f, "users"), 1);

	/* applied once: a second apply does nothing */
	assert_int_equal(d1_migrations_apply(f->db, f->migrations, NULL, &applied, f->err,
					     sizeof f->err),
			 0);
	assert_json(applied, "[]");
	json_decref(applied);
	assert_int_equal(count_rows(f, "users"), 1);

	l = d1_migrations_list(f->db, f->migrations, NULL, f->err, sizeof f->err);
	json_t *rows = json_object_get(l, "applied");
	assert_int_equal(json_array_size(rows), 2);
	assert_json(json_object_get(json_array_get(rows, 1), "name"), "\"0002_add-email.sql\"");
	assert_true(json_is_string(json_object_get(json_array_get(rows, 1), "applied_at")));
	assert_true(json_is_integer(json_object_get(json_array_get(rows, 1), "id")));
	assert_json(json_object_get(l, "pending"), "[]");
	json_decref(l);

	/* a failing migration is rolled back and not recorded */
	assert_int_equal(d1_migrations_create(f->migrations, "broken", p3, sizeof p3, f->err,
					      sizeof f->err),
			 0);
	write_text(p3, "INSERT INTO users (email) VALUES ('c@d');\nINSERT INTO nope VALUES (1);\n");
	assert_int_equal(d1_migrations_apply(f->db, f->migrations, NULL, &applied, f->err,
					     sizeof f->err),
			 -1);
	assert_contains(f->err, "0003_broken.sql");
	assert_contains(f->err, "no such table: nope");
	json_decref(applied);
	assert_int_equal(count_rows(f, "users"), 1);
	assert_int_equal(count_rows(f, "d1_migrations"), 2);
}

static void test_migrations_use_the_configured_table(void **state)
{
	struct fixture *f = *state;
	char p[512];
	assert_int_equal(d1_migrations_create(f->migrations, "one", p, sizeof p, f->err,
					      sizeof f->err),
			 0);
	write_text(p, "CREATE TABLE one (a);");
	json_t *applied = NULL;
	assert_int_equal(d1_migrations_apply(f->db, f->migrations, "my_migrations", &applied,
					     f->err, sizeof f->err),
			 0);
	json_decref(applied);
	assert_int_equal(count_rows(f, "my_migrations"), 1);
	assert_int_equal(d1_migrations_apply(f->db, f->migrations, "bad\"name", &applied, f->err,
					     sizeof f->err),
			 -1);
	json_decref(applied);
}

static void test_execute_file_runs_a_schema_and_returns_each_result(void **state)
{
	struct fixture *f = *state;
	char path[192];
	snprintf(path, sizeof path, "%s/schema.sql", f->root);
	write_text(path,
		   "DROP TABLE IF EXISTS c;\nCREATE TABLE c (id INTEGER PRIMARY KEY, n TEXT);\n"
		   "INSERT INTO c (n) VALUES ('x'), ('y');\nSELECT n FROM c ORDER BY id;\n");
	json_t *r = d1_execute_file(f->db, path, f->err, sizeof f->err);
	if (!r)
		fail_msg("%s", f->err);
	assert_int_equal(json_array_size(r), 4);
	assert_json(json_object_get(json_array_get(r, 3), "results"),
		    "[{\"n\": \"x\"}, {\"n\": \"y\"}]");
	json_decref(r);
	snprintf(path, sizeof path, "%s/missing.sql", f->root);
	assert_null(d1_execute_file(f->db, path, f->err, sizeof f->err));
	assert_contains(f->err, "missing.sql");
}

static void test_cli_exit_statuses(void **state)
{
	struct fixture *f = *state;
	char path[192];
	snprintf(path, sizeof path, "%s/cli.db", f->root);
	char *ok_cmd[] = {"execute", "--command",
			  "CREATE TABLE t (a); INSERT INTO t VALUES (1); "
			  "SELECT a FROM t",
			  NULL};
	assert_int_equal(d1_cli(3, ok_cmd, path, f->migrations, NULL), 0);
	char *json_cmd[] = {"execute", "--command", "SELECT a FROM t", "--json", NULL};
	assert_int_equal(d1_cli(4, json_cmd, path, f->migrations, NULL), 0);
	char *bad_sql[] = {"execute", "--command", "SELECT * FROM nope", NULL};
	assert_int_equal(d1_cli(3, bad_sql, path, f->migrations, NULL), 1);
	char *both[] = {"execute", NULL};
	assert_int_equal(d1_cli(1, both, path, f->migrations, NULL), 2);
	char *create[] = {"migrations", "create", "init", NULL};
	assert_int_equal(d1_cli(3, create, path, f->migrations, NULL), 0);
	char *list[] = {"migrations", "list", NULL};
	assert_int_equal(d1_cli(2, list, path, f->migrations, NULL), 0);
	char *apply[] = {"migrations", "apply", NULL};
	assert_int_equal(d1_cli(2, apply, path, f->migrations, NULL), 0);
	char *unknown[] = {"nonsense", NULL};
	assert_int_equal(d1_cli(1, unknown, path, f->migrations, NULL), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_all_returns_rows_as_objects_with_success_and_meta),
		T(test_run_of_a_write_reports_changes_rowid_and_changed_db),
		T(test_first_gives_the_row_a_column_or_null),
		T(test_raw_gives_arrays_and_column_names_first_when_asked),
		T(test_values_round_trip_and_bool_binds_as_integer),
		T(test_text_that_is_not_utf8_comes_out_repaired),
		T(test_a_parameter_of_another_type_is_a_d1_type_error),
		T(test_a_wrong_number_of_parameters_is_refused),
		T(test_sql_errors_carry_d1_prefix_and_code),
		T(test_foreign_keys_are_enforced_as_on_d1),
		T(test_batch_returns_one_result_per_statement),
		T(test_batch_with_a_failing_third_statement_undoes_the_first_two),
		T(test_exec_runs_several_statements_and_counts_them),
		T(test_exec_error_names_the_line_and_rolls_back),
		T(test_attach_and_vacuum_into_are_refused_and_no_file_appears),
		T(test_extension_loading_and_file_functions_are_refused),
		T(test_pragmas_outside_the_safe_list_are_refused),
		T(test_transaction_statements_are_refused),
		T(test_fts5_is_available),
		T(test_d1_limits_are_enforced),
		T(test_a_long_query_is_interrupted_with_d1_timeout_error),
		T(test_another_thread_can_interrupt_a_query_without_time_limit),
		T(test_a_result_over_the_size_bound_is_refused),
		T(test_writes_survive_a_reopen),
		T(test_dump_gives_a_database_file_with_the_data),
		T(test_migrations_are_created_listed_and_applied_once),
		T(test_migrations_use_the_configured_table),
		T(test_execute_file_runs_a_schema_and_returns_each_result),
		T(test_cli_exit_statuses),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
