/*
 * Tests for the Durable Object storage engine (src/state/dobj.c) against
 * real SQLite files in a fresh temporary directory per test: the key-value
 * methods and their limits, list's ranges and order, a transaction's
 * atomicity, sql.exec's cursor and its reserved tables, durability across a
 * reopen, and the alarms table.
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/dobj.h"

struct fixture {
	char root[64];
	char path[128];
	struct dobj *o;
	char err[1024];
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
	snprintf(f->root, sizeof f->root, "/tmp/thaw-test-dobj-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->path, sizeof f->path, "%s/obj.sqlite", f->root);
	f->o = dobj_open(f->path, f->err, sizeof f->err);
	assert_non_null(f->o);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	dobj_close(f->o);
	nftw(f->root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Call method with args given as JSON text; the answer, or NULL (f->err). */
static json_t *call(struct fixture *f, const char *method, const char *args)
{
	json_error_t je;
	json_t *a = json_loads(args, 0, &je);
	if (!a)
		fail_msg("bad test JSON %s: %s", args, je.text);
	f->err[0] = 0;
	json_t *r = dobj_call(f->o, method, a, f->err, sizeof f->err);
	json_decref(a);
	return r;
}

static void assert_json(json_t *got, const char *want)
{
	assert_non_null(got);
	json_t *w = json_loads(want, 0, NULL);
	assert_non_null(w);
	if (!json_equal(got, w)) {
		char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("got %s, want %s", g, want);
	}
	json_decref(w);
	json_decref(got);
}

static void test_put_get_delete(void **state)
{
	struct fixture *f = *state;
	assert_json(call(f, "put", "{\"entries\": {\"a\": \"1\", \"b\": \"[2]\"}}"), "{}");
	assert_json(call(f, "get", "{\"keys\": [\"a\", \"b\", \"missing\"]}"),
		    "{\"values\": {\"a\": \"1\", \"b\": \"[2]\"}}");
	assert_json(call(f, "put", "{\"entries\": {\"a\": \"3\"}}"), "{}"); /* overwrite */
	assert_json(call(f, "get", "{\"keys\": [\"a\"]}"), "{\"values\": {\"a\": \"3\"}}");
	assert_json(call(f, "delete", "{\"keys\": [\"a\", \"nope\"]}"), "{\"deleted\": 1}");
	assert_json(call(f, "get", "{\"keys\": [\"a\"]}"), "{\"values\": {}}");
	/* Durable: a new connection to the file sees what was written. */
	dobj_close(f->o);
	f->o = dobj_open(f->path, f->err, sizeof f->err);
	assert_non_null(f->o);
	assert_json(call(f, "get", "{\"keys\": [\"b\"]}"), "{\"values\": {\"b\": \"[2]\"}}");
	assert_json(call(f, "delete_all", "{}"), "{}");
	assert_json(call(f, "list", "{}"), "{\"entries\": []}");
}

static void test_limits_and_bad_arguments(void **state)
{
	struct fixture *f = *state;
	char *big = malloc(DOBJ_MAX_KEY_BYTES + 64);
	memset(big, 'k', DOBJ_MAX_KEY_BYTES + 1);
	big[DOBJ_MAX_KEY_BYTES + 1] = 0;
	json_t *a = json_pack("{s:[s]}", "keys", big);
	assert_null(dobj_call(f->o, "get", a, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "RangeError: Keys cannot be larger than 2048 bytes"));
	json_decref(a);
	a = json_pack("{s:{s:s}}", "entries", big, "v");
	assert_null(dobj_call(f->o, "put", a, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "RangeError"));
	json_decref(a);
	big[DOBJ_MAX_KEY_BYTES] = 0; /* exactly the limit: allowed */
	a = json_pack("{s:{s:s}}", "entries", big, "v");
	json_t *r = dobj_call(f->o, "put", a, f->err, sizeof f->err);
	assert_non_null(r);
	json_decref(r);
	json_decref(a);
	free(big);

	char *value = malloc(DOBJ_MAX_VALUE_BYTES + 2);
	memset(value, 'v', DOBJ_MAX_VALUE_BYTES + 1);
	value[DOBJ_MAX_VALUE_BYTES + 1] = 0;
	a = json_pack("{s:{s:s}}", "entries", "k", value);
	assert_null(dobj_call(f->o, "put", a, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "RangeError: Values cannot be larger than"));
	json_decref(a);
	free(value);

	/* 129 keys in one get */
	json_t *keys = json_array();
	for (int i = 0; i <= DOBJ_MAX_KEYS; i++)
		json_array_append_new(keys, json_sprintf("k%d", i));
	a = json_pack("{s:o}", "keys", keys);
	assert_null(dobj_call(f->o, "get", a, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "RangeError: at most 128 keys"));
	json_decref(a);

	assert_null(call(f, "get", "{\"keys\": [1]}"));
	assert_non_null(strstr(f->err, "TypeError"));
	assert_null(call(f, "get", "{}"));
	assert_null(call(f, "put", "{\"entries\": {\"k\": 5}}"));
	assert_null(call(f, "list", "{\"limit\": 0}"));
	assert_null(call(f, "list", "{\"start\": \"a\", \"start_after\": \"b\"}"));
	assert_null(call(f, "nonsense", "{}"));
	assert_non_null(strstr(f->err, "no storage method"));
	/* A failed put wrote nothing. */
	assert_json(call(f, "get", "{\"keys\": [\"k\"]}"), "{\"values\": {}}");
}

static void test_list_ranges_and_order(void **state)
{
	struct fixture *f = *state;
	assert_json(call(f, "put",
			 "{\"entries\": {\"a\": \"1\", \"ab\": \"2\", \"abc\": \"3\", \"b\": \"4\", "
			 "\"c\": \"5\", \"\u00e9\": \"6\"}}"),
		    "{}");
	assert_json(call(f, "list", "{}"),
		    "{\"entries\": [[\"a\",\"1\"],[\"ab\",\"2\"],[\"abc\",\"3\"],[\"b\",\"4\"],"
		    "[\"c\",\"5\"],[\"\u00e9\",\"6\"]]}");
	assert_json(call(f, "list", "{\"prefix\": \"ab\"}"),
		    "{\"entries\": [[\"ab\",\"2\"],[\"abc\",\"3\"]]}");
	assert_json(call(f, "list", "{\"start\": \"ab\", \"end\": \"c\"}"),
		    "{\"entries\": [[\"ab\",\"2\"],[\"abc\",\"3\"],[\"b\",\"4\"]]}");
	assert_json(call(f, "list", "{\"start_after\": \"ab\", \"limit\": 2}"),
		    "{\"entries\": [[\"abc\",\"3\"],[\"b\",\"4\"]]}");
	assert_json(call(f, "list", "{\"reverse\": true, \"limit\": 2}"),
		    "{\"entries\": [[\"\u00e9\",\"6\"],[\"c\",\"5\"]]}");
	assert_json(call(f, "list", "{\"prefix\": \"%\"}"), "{\"entries\": []}"); /* no LIKE */
}

static void test_write_is_atomic(void **state)
{
	struct fixture *f = *state;
	assert_json(call(f, "put", "{\"entries\": {\"x\": \"1\", \"y\": \"2\"}}"), "{}");
	assert_json(call(f, "write", "{\"puts\": {\"z\": \"3\"}, \"deletes\": [\"x\"]}"), "{}");
	assert_json(call(f, "get", "{\"keys\": [\"x\", \"y\", \"z\"]}"),
		    "{\"values\": {\"y\": \"2\", \"z\": \"3\"}}");
	/* One bad value: nothing of the transaction is written. */
	assert_null(call(f, "write", "{\"puts\": {\"q\": \"ok\", \"r\": 7}, \"deletes\": [\"y\"]}"));
	assert_json(call(f, "get", "{\"keys\": [\"q\", \"y\"]}"), "{\"values\": {\"y\": \"2\"}}");
}

static void test_sql_cursor_and_reserved_tables(void **state)
{
	struct fixture *f = *state;
	json_t *r = call(f, "sql", "{\"query\": \"CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)\"}");
	assert_non_null(r);
	json_decref(r);
	r = call(f, "sql", "{\"query\": \"INSERT INTO t (name) VALUES (?), (?)\", \"params\": [\"a\", "
			   "\"b\"]}");
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(r, "rows_written")), 2);
	json_decref(r);
	assert_json(call(f, "sql", "{\"query\": \"SELECT id, name FROM t ORDER BY id\"}"),
		    "{\"columns\": [\"id\", \"name\"], \"rows\": [[1, \"a\"], [2, \"b\"]], "
		    "\"rows_read\": 2, \"rows_written\": 0}");
	/* The key-value table is not SQL's. */
	assert_json(call(f, "put", "{\"entries\": {\"secret\": \"1\"}}"), "{}");
	assert_null(call(f, "sql", "{\"query\": \"SELECT * FROM __cf_kv\"}"));
	assert_non_null(strstr(f->err, "__cf_kv"));
	assert_null(call(f, "sql", "{\"query\": \"DROP TABLE __cf_kv\"}"));
	assert_null(call(f, "sql", "{\"query\": \"DELETE FROM __CF_KV\"}"));
	assert_null(call(f, "sql", "{\"query\": \"CREATE TABLE __cf_mine (x)\"}"));
	assert_null(call(f, "sql", "{\"query\": \"ATTACH DATABASE '/tmp/x' AS x\"}"));
	assert_json(call(f, "get", "{\"keys\": [\"secret\"]}"), "{\"values\": {\"secret\": \"1\"}}");
	r = call(f, "size", "{}");
	assert_non_null(r);
	assert_true(json_integer_value(json_object_get(r, "bytes")) > 0);
	json_decref(r);
	/* deleteAll(): the pairs and every SQL table, view and trigger go; the
	 * key-value table stays usable. */
	r = call(f, "sql", "{\"query\": \"CREATE VIEW v AS SELECT * FROM t\"}");
	assert_non_null(r);
	json_decref(r);
	r = call(f, "sql", "{\"query\": \"CREATE VIRTUAL TABLE docs USING fts5(body)\"}");
	assert_non_null(r);
	json_decref(r);
	assert_json(call(f, "delete_all", "{}"), "{}");
	assert_null(call(f, "sql", "{\"query\": \"SELECT * FROM t\"}"));
	assert_non_null(strstr(f->err, "no such table"));
	assert_json(call(f, "sql", "{\"query\": \"SELECT count(*) AS n FROM sqlite_schema\"}"),
		    "{\"columns\": [\"n\"], \"rows\": [[1]], \"rows_read\": 1, "
		    "\"rows_written\": 0}");
	assert_json(call(f, "get", "{\"keys\": [\"secret\"]}"), "{\"values\": {}}");
	assert_json(call(f, "put", "{\"entries\": {\"again\": \"1\"}}"), "{}");
}

static void test_alarms(void **state)
{
	struct fixture *f = *state;
	char path[160];
	snprintf(path, sizeof path, "%s/alarms.sqlite", f->root);
	struct dobj_alarms *a = dobj_alarms_open(path, f->err, sizeof f->err);
	assert_non_null(a);
	struct dobj_alarm n;
	int64_t at;
	assert_int_equal(dobj_alarm_next(a, &n, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_set(a, "Room", "id1", 5000, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_set(a, "Room", "id2", 3000, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_get(a, "Room", "id1", &at, f->err, sizeof f->err), 1);
	assert_int_equal(at, 5000);
	assert_int_equal(dobj_alarm_next(a, &n, f->err, sizeof f->err), 1);
	assert_string_equal(n.id, "id2");
	assert_int_equal(n.at_ms, 3000);
	/* id2's alarm() fails: due again later, attempt 1. */
	assert_int_equal(dobj_alarm_ran(a, "Room", "id2", 3000, 0, 7000, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_next(a, &n, f->err, sizeof f->err), 1);
	assert_string_equal(n.id, "id1");
	/* id1's alarm() set a new alarm while it ran: the new one stays. */
	assert_int_equal(dobj_alarm_set(a, "Room", "id1", 9000, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_ran(a, "Room", "id1", 5000, 1, 0, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_get(a, "Room", "id1", &at, f->err, sizeof f->err), 1);
	assert_int_equal(at, 9000);
	/* Survives a reopen (a host restart). */
	dobj_alarms_close(a);
	a = dobj_alarms_open(path, f->err, sizeof f->err);
	assert_non_null(a);
	assert_int_equal(dobj_alarm_next(a, &n, f->err, sizeof f->err), 1);
	assert_string_equal(n.id, "id2");
	assert_int_equal(n.at_ms, 7000);
	assert_int_equal(n.attempt, 1);
	assert_int_equal(dobj_alarm_ran(a, "Room", "id2", 7000, 1, 0, f->err, sizeof f->err), 0);
	/* Among live classes only, passing over those being delivered. */
	assert_int_equal(dobj_alarm_set(a, "Other", "x", 1000, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_next_in(a, "[\"Room\"]", NULL, &n, f->err, sizeof f->err), 1);
	assert_string_equal(n.cls, "Room");
	assert_int_equal(dobj_alarm_next_in(a, "[\"Room\", \"Other\"]", "[[\"Other\", \"x\"]]", &n,
					    f->err, sizeof f->err),
			 1);
	assert_string_equal(n.cls, "Room");
	assert_int_equal(dobj_alarm_next_in(a, "[\"Room\", \"Other\"]", "[]", &n, f->err,
					    sizeof f->err),
			 1);
	assert_string_equal(n.cls, "Other");
	assert_int_equal(dobj_alarm_next_in(a, "[]", NULL, &n, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_delete(a, "Other", "x", f->err, sizeof f->err), 0);
	/* A class renamed: its alarms follow; deleted: they go. */
	assert_int_equal(dobj_alarms_rename(a, "Room", "Hall", f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_get(a, "Room", "id1", &at, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_get(a, "Hall", "id1", &at, f->err, sizeof f->err), 1);
	assert_int_equal(at, 9000);
	assert_int_equal(dobj_alarms_rename(a, "Hall", NULL, f->err, sizeof f->err), 0);
	assert_int_equal(dobj_alarm_next(a, &n, f->err, sizeof f->err), 0);
	dobj_alarms_close(a);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_put_get_delete),
		T(test_limits_and_bad_arguments),
		T(test_list_ranges_and_order),
		T(test_write_is_atomic),
		T(test_sql_cursor_and_reserved_tables),
		T(test_alarms),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
