/*
 * libFuzzer target for the D1 engine (src/state/d1.c): hostile SQL and
 * parameters against a fresh temporary database per input.
 *
 * Input: one byte choosing the call (d1_query in each mode, d1_exec,
 * d1_batch, d1_execute), then the SQL, a NUL, and JSON (the parameters, or
 * for a batch the statements). Whatever the bytes: no crash, every answer is
 * JSON that serialises, every failure has a message that starts with "D1_",
 * and no file appears outside the database's own three (no ATTACH, no
 * VACUUM INTO, nothing in the working directory).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/d1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static char dir[64];
static char path[128];
static long cwd_entries = -1;

static long count_entries(const char *d)
{
	DIR *dh = opendir(d);
	if (!dh)
		return -1;
	long n = 0;
	struct dirent *e;
	while ((e = readdir(dh)))
		n++;
	closedir(dh);
	return n;
}

/* Only the database, its WAL and its shared memory may be in dir. */
static int only_db_files(void)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return 0;
	int ok = 1;
	struct dirent *e;
	while ((e = readdir(dh)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "db") &&
		    strcmp(e->d_name, "db-wal") && strcmp(e->d_name, "db-shm"))
			ok = 0;
	closedir(dh);
	return ok;
}

static void remove_db(void)
{
	char p[160];
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
}

static void check_answer(json_t *r, const char *err)
{
	if (!r) {
		CHECK(!strncmp(err, "D1_", 3));
		return;
	}
	char *s = json_dumps(r, JSON_ENCODE_ANY | JSON_COMPACT);
	CHECK(s != NULL);
	free(s);
	json_decref(r);
}

static void cleanup(void)
{
	remove_db();
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/thaw-fuzz-d1-XXXXXX");
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof path, "%s/db", dir);
		cwd_entries = count_entries(".");
		atexit(cleanup);
	}
	if (size < 1)
		return 0;
	int op = data[0] % 9;
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	const char *nul = memchr(body, 0, len);
	size_t sql_len = nul ? (size_t)(nul - body) : len;
	char *sql = malloc(sql_len + 1);
	CHECK(sql != NULL);
	memcpy(sql, body, sql_len);
	sql[sql_len] = 0;
	json_t *extra = nul ? json_loadb(nul + 1, len - sql_len - 1, JSON_DECODE_ANY, NULL) : NULL;

	remove_db();
	char err[1024] = "";
	struct d1_options opt = {.timeout_ms = 200, .max_result_bytes = 1 << 20};
	struct d1_db *db = d1_open(path, &opt, err, sizeof err);
	CHECK(db != NULL);
	json_t *seed = d1_exec(db,
			       "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c BLOB);"
			       "INSERT INTO t VALUES (1, 'one', x'00ff'), (2, NULL, NULL);",
			       err, sizeof err);
	CHECK(seed != NULL);
	json_decref(seed);

	err[0] = 0;
	switch (op) {
	case 0:
	case 1:
	case 2:
	case 3:
	case 4:
		check_answer(d1_query(db, sql, extra, (enum d1_mode)op, NULL, err, sizeof err),
			     err);
		break;
	case 5:
		check_answer(d1_query(db, sql, extra, D1_FIRST, "a", err, sizeof err), err);
		break;
	case 6:
		check_answer(d1_exec(db, sql, err, sizeof err), err);
		break;
	case 7: {
		long failed = 0;
		json_t *statements = extra;
		json_t *made = NULL;
		if (!statements)
			statements = made = json_pack("[{s:s},{s:s}]", "sql", sql, "sql", sql);
		json_t *r = d1_batch(db, statements, &failed, err, sizeof err);
		if (!r)
			CHECK(failed >= -1);
		check_answer(r, err);
		json_decref(made);
		break;
	}
	default:
		check_answer(d1_execute(db, sql, err, sizeof err), err);
		break;
	}
	/* the database still answers after whatever happened */
	err[0] = 0;
	json_t *one = d1_query(db, "SELECT 1 AS x", NULL, D1_FIRST, "x", err, sizeof err);
	CHECK(one && json_integer_value(one) == 1);
	json_decref(one);
	d1_close(db);
	CHECK(only_db_files());
	CHECK(count_entries(".") == cwd_entries);
	json_decref(extra);
	free(sql);
	return 0;
}
