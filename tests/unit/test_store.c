/*
 * Tests for the host's store (src/ext/store.c), against a real SQLite
 * database and real files in a fresh temporary directory per test. Where a
 * test needs to see or bend what is on disk (the schema version, a crafted
 * id, a temporary file left by a crash) it opens DIR/thaw.db or DIR/tmp
 * itself, beside the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ext/store.h"
#include "host/loop.h"

#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define BUNDLE1 "1111111111111111111111111111111111111111111111111111111111111111"
#define BUNDLE2 "2222222222222222222222222222222222222222222222222222222222222222"
#define BASE_HEX "4444444444444444444444444444444444444444444444444444444444444444"

struct fixture {
	char root[64];  /* mkdtemp */
	char dir[128];  /* root/data: the store, made by store_open */
	struct store *s;
	char err[512];
};

/* --- helpers --- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	snprintf(f->root, sizeof f->root, "/tmp/thaw-test-store-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof f->dir, "%s/data", f->root);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->s);
	rm_rf(f->root);
	free(f);
	return 0;
}

static struct store *reopen(struct fixture *f)
{
	store_close(f->s);
	f->s = store_open(f->dir, f->err, sizeof f->err);
	if (!f->s)
		fail_msg("store_open(%s): %s", f->dir, f->err);
	return f->s;
}

static char *sub(struct fixture *f, const char *rel)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", f->dir, rel);
	return p;
}

/* Entries in a directory, "." and ".." aside; -1 if it cannot be read. */
static int count_entries(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* The whole file, malloc'ed; *n its size. */
static char *slurp(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	long len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	buf[len] = 0;
	*n = (size_t)len;
	return buf;
}

/* A second connection to DIR/thaw.db, beside the store's. */
static sqlite3 *db_side(struct fixture *f)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open_v2(sub(f, "thaw.db"), &db, SQLITE_OPEN_READWRITE, NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void db_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* What migration 6 added, taken away again (a store made before it). */
#define UNDO_6                                                                                     \
	"ALTER TABLE versions DROP COLUMN bundle_bytes; ALTER TABLE versions DROP COLUMN "         \
	"files_bytes; ALTER TABLE versions DROP COLUMN image_own_pages; ALTER TABLE versions "     \
	"DROP COLUMN image_base_pages; ALTER TABLE versions DROP COLUMN image_base; ALTER TABLE "  \
	"versions DROP COLUMN ws_bytes; "

static void add_version(struct fixture *f, const char *worker, const char *bundle,
			const char *state, struct version *v)
{
	if (store_version_add(f->s, worker, bundle, NULL, v, f->err, sizeof f->err) < 0)
		fail_msg("store_version_add(%s): %s", worker, f->err);
	const char *why = strcmp(state, "failed") ? NULL : "it broke";
	if (strcmp(state, "building") != 0)
		assert_int_equal(store_version_set_state(f->s, v->id, state, why), 0);
}

static void assert_uuid4(const char *id)
{
	assert_int_equal(strlen(id), 36);
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(id[i], '-');
		else if (!strchr("0123456789abcdef", id[i]))
			fail_msg("id %s: character %d is not lowercase hex", id, i);
	}
	assert_int_equal(id[14], '4');
	assert_non_null(strchr("89ab", id[19]));
}

/* --- opening, schema, migrations --- */

static void test_open_creates_layout_and_schema(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct stat st;
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	for (const char *d = "blobs\0tmp\0versions\0"; *d; d += strlen(d) + 1) {
		assert_int_equal(lstat(sub(f, d), &st), 0);
		assert_true(S_ISDIR(st.st_mode));
	}
	assert_int_equal(lstat(sub(f, "thaw.db"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_string_equal(store_dir(f->s), f->dir);

	sqlite3 *db = db_side(f);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 6);
	assert_int_equal(db_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
				    "name IN ('workers', 'versions', 'deployments', "
				    "'deployment_versions')"),
			 4);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	/* The schema's own checks hold even against other writers. */
	assert_int_not_equal(sqlite3_exec(db,
					  "INSERT INTO workers VALUES ('w', 0);"
					  "INSERT INTO versions (id, worker, number, created_ms, "
					  "bundle, state) VALUES ('x', 'w', 1, 0, 'zz', 'odd')",
					  NULL, NULL, NULL),
			     SQLITE_OK);
	sqlite3_close(db);
}

static void test_reopen_keeps_data(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	assert_int_equal(store_version_add(f->s, "hello", BUNDLE1, "first", &v, f->err,
					   sizeof f->err),
			 0);
	assert_int_equal(store_version_set_state(f->s, v.id, "ready", NULL), 0);
	struct deployment d = {.n = 1, .percentage = {100}, .message = strdup("go")};
	snprintf(d.version[0], sizeof d.version[0], "%s", v.id);
	assert_int_equal(store_deploy(f->s, "hello", &d, f->err, sizeof f->err), 0);

	reopen(f);
	struct version g;
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_string_equal(g.state, "ready");
	assert_string_equal(g.message, "first");
	assert_string_equal(g.bundle, BUNDLE1);
	assert_int_equal(g.created_ms, v.created_ms);
	struct deployment c;
	assert_int_equal(store_deployment_current(f->s, "hello", &c), 0);
	assert_int_equal(c.id, d.id);
	assert_int_equal(c.created_ms, d.created_ms);
	assert_string_equal(c.version[0], v.id);
	assert_string_equal(c.message, "go");
	version_clear(&v);
	version_clear(&g);
	deployment_clear(&c);
	deployment_clear(&d);
}

static void test_migrations_are_idempotent(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	add_version(f, "hello", BUNDLE1, "ready", &v);
	sqlite3 *db = db_side(f);
	int64_t objects = db_int(db, "SELECT count(*) FROM sqlite_master");
	sqlite3_close(db);
	for (int i = 0; i < 3; i++)
		reopen(f);
	db = db_side(f);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 6);
	assert_int_equal(db_int(db, "SELECT count(*) FROM sqlite_master"), objects);
	assert_int_equal(db_int(db, "SELECT count(*) FROM versions"), 1);
	sqlite3_close(db);
	version_clear(&v);
}

static void test_future_schema_is_refused(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	store_close(f->s);
	f->s = NULL;
	sqlite3 *db = db_side(f);
	db_exec(db, "PRAGMA user_version = 7");
	sqlite3_close(db);

	assert_null(store_open(f->dir, f->err, sizeof f->err));
	if (!strstr(f->err, "schema version 7, newer than this thaw knows (6)"))
		fail_msg("unexpected error: %s", f->err);
	db = db_side(f);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 7); /* left alone */
	sqlite3_close(db);
}

/* Migration 2: a store made by a thaw that knew only migration 1 keeps its
 * versions, and gains a place for each version's project. */
static void test_migration_2_adds_the_project(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	add_version(f, "hello", BUNDLE1, "ready", &v);
	assert_null(store_version_project(f->s, v.id)); /* none recorded yet */
	store_close(f->s);
	f->s = NULL;
	sqlite3 *db = db_side(f);
	db_exec(db,
		"DROP INDEX versions_by_bundle; DROP INDEX versions_by_snapshot; "
		"ALTER TABLE workers DROP COLUMN last_number; "
		"ALTER TABLE versions DROP COLUMN project; DROP TABLE cron_runs; DROP TABLE "
		"secrets; "
		"DROP TABLE version_secrets; DROP TABLE bases; " UNDO_6 "PRAGMA user_version = 1");
	sqlite3_close(db);

	reopen(f);
	struct version g = {0};
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_string_equal(g.state, "ready");
	assert_null(store_version_project(f->s, v.id));
	json_t *p = json_pack("{s:s, s:s, s:{s:i}}", "name", "hello", "main", "src/entry.py",
			      "vars", "N", 1);
	assert_int_equal(store_version_set_project(f->s, v.id, p), 0);
	json_t *back = store_version_project(f->s, v.id);
	assert_non_null(back);
	assert_true(json_equal(p, back));
	json_decref(back);
	/* Unknown versions and bad ids are refused. */
	assert_int_equal(store_version_set_project(f->s, "00000000-0000-4000-8000-000000000000", p), -1);
	assert_null(store_version_project(f->s, "nope"));
	json_decref(p);
	db = db_side(f);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 6);
	sqlite3_close(db);
	version_clear(&g);
	version_clear(&v);
}

static void count_version(void *arg, const struct version *v)
{
	json_array_append_new(arg,
			      json_pack("{s:s, s:i}", "worker", v->worker, "number", v->number));
}

/* Migration 6: what a version holds on disk, NULL (-1) until known; a new
 * image forgets its old image's figures, and a late answer about an old
 * image changes nothing. */
static void test_disk_figures_are_kept_per_version_and_cleared_with_its_image(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v, g;
	add_version(f, "hello", BUNDLE1, "ready", &v);
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_int_equal(g.bundle_bytes, -1);
	assert_int_equal(g.files_bytes, -1);
	assert_int_equal(g.image_own_pages, -1);
	assert_int_equal(g.image_base_pages, -1);
	assert_int_equal(g.ws_bytes, -1);
	assert_string_equal(g.image_base, "");
	uint64_t own, shared;
	version_disk(&g, &own, &shared);
	assert_int_equal(own, 0);
	assert_int_equal(shared, 0);
	version_clear(&g);

	assert_int_equal(store_version_set_files(f->s, v.id, 4000, 16000), 0);
	assert_int_equal(store_version_set_snapshot(f->s, v.id, SHA_ABC, 2100000), 0);
	assert_int_equal(store_version_set_image_pages(f->s, v.id, SHA_ABC, 500, 3300, BASE_HEX),
			 0);
	assert_int_equal(store_version_set_ws(f->s, v.id, SHA_ABC, 12000), 0);
	/* About another image than the version's: nothing changes. */
	assert_int_equal(store_version_set_image_pages(f->s, v.id, BUNDLE2, 1, 1, NULL), 0);
	assert_int_equal(store_version_set_ws(f->s, v.id, BUNDLE2, 1), 0);
	/* Not a hash: refused. */
	assert_int_equal(store_version_set_image_pages(f->s, v.id, SHA_ABC, 1, 1, "../x"), -1);
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_int_equal(g.bundle_bytes, 4000);
	assert_int_equal(g.files_bytes, 16000);
	assert_int_equal(g.image_own_pages, 500);
	assert_int_equal(g.image_base_pages, 3300);
	assert_string_equal(g.image_base, BASE_HEX);
	assert_int_equal(g.ws_bytes, 12000);
	version_disk(&g, &own, &shared);
	assert_int_equal(own, 2100000 + 12000 + 4000 + 16000);
	assert_int_equal(shared, 3300 * 4096);
	json_t *j = version_json(&g);
	json_t *d = json_object_get(j, "disk");
	assert_int_equal(json_integer_value(json_object_get(d, "own")), own);
	assert_int_equal(json_integer_value(json_object_get(d, "shared")), shared);
	assert_int_equal(json_integer_value(json_object_get(d, "image")), 2100000);
	assert_int_equal(json_integer_value(json_object_get(d, "image_own_pages")), 500);
	assert_int_equal(json_integer_value(json_object_get(d, "image_base_pages")), 3300);
	assert_string_equal(json_string_value(json_object_get(d, "base")), BASE_HEX);
	assert_int_equal(json_integer_value(json_object_get(d, "working_set")), 12000);
	assert_int_equal(json_integer_value(json_object_get(d, "bundle")), 4000);
	assert_int_equal(json_integer_value(json_object_get(d, "files")), 16000);
	json_decref(j);
	version_clear(&g);

	/* A new image: its figures are not known yet; the files' stay. */
	assert_int_equal(store_version_set_snapshot(f->s, v.id, BASE_HEX, 9000), 0);
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_int_equal(g.image_own_pages, -1);
	assert_int_equal(g.image_base_pages, -1);
	assert_int_equal(g.ws_bytes, -1);
	assert_string_equal(g.image_base, "");
	assert_int_equal(g.bundle_bytes, 4000);
	version_clear(&g);

	/* Every version, by worker then number. */
	struct version w2;
	add_version(f, "another", BUNDLE2, "ready", &w2);
	json_t *all = json_array();
	assert_int_equal(store_versions_each(f->s, count_version, all), 0);
	assert_int_equal(json_array_size(all), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "worker")),
			    "another");
	json_decref(all);
	version_clear(&w2);
	version_clear(&v);
}

static void count_base(void *arg, const char *hex, uint64_t versions)
{
	json_object_set_new(arg, hex, json_integer((json_int_t)versions));
}

static void test_bases_are_listed_once_with_their_versions_by_one_query(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, c, d;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE2, "ready", &b);
	add_version(f, "other", BUNDLE1, "ready", &c);
	add_version(f, "other", BUNDLE2, "ready", &d);
	assert_int_equal(store_version_set_snapshot(f->s, a.id, SHA_ABC, 1), 0);
	assert_int_equal(store_version_set_snapshot(f->s, b.id, BUNDLE1, 1), 0);
	assert_int_equal(store_version_set_snapshot(f->s, c.id, BUNDLE2, 1), 0);
	assert_int_equal(store_version_set_image_pages(f->s, a.id, SHA_ABC, 1, 2, BASE_HEX), 0);
	assert_int_equal(store_version_set_image_pages(f->s, b.id, BUNDLE1, 1, 2, BASE_HEX), 0);
	assert_int_equal(store_version_set_image_pages(f->s, c.id, BUNDLE2, 1, 2, SHA_ABC), 0);
	/* d has no image: it names no base. */
	json_t *bases = json_object();
	assert_int_equal(store_image_bases_each(f->s, count_base, bases), 0);
	assert_int_equal(json_object_size(bases), 2);
	assert_int_equal(json_integer_value(json_object_get(bases, BASE_HEX)), 2);
	assert_int_equal(json_integer_value(json_object_get(bases, SHA_ABC)), 1);
	json_decref(bases);
	version_clear(&a);
	version_clear(&b);
	version_clear(&c);
	version_clear(&d);
}

static void test_absurd_figures_in_the_store_are_taken_as_not_known(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v, g;
	add_version(f, "hello", BUNDLE1, "ready", &v);
	assert_int_equal(store_version_set_snapshot(f->s, v.id, SHA_ABC, 2100000), 0);
	sqlite3 *db = db_side(f);
	/* 2^40 pages is the most taken; 2^62 pages would make pages * 4096 wrap. */
	db_exec(db, "UPDATE versions SET image_own_pages = 1099511627776, "
		    "image_base_pages = 4611686018427387904, bundle_bytes = 9223372036854775807, "
		    "files_bytes = 4503599627370497, ws_bytes = 9223372036854775807");
	sqlite3_close(db);
	assert_int_equal(store_version_get(f->s, v.id, &g), 0);
	assert_int_equal(g.image_own_pages, (int64_t)1 << 40);
	assert_int_equal(g.image_base_pages, -1);
	assert_int_equal(g.bundle_bytes, -1);
	assert_int_equal(g.files_bytes, -1);
	assert_int_equal(g.ws_bytes, -1);
	uint64_t own, shared;
	version_disk(&g, &own, &shared);
	assert_int_equal(own, 2100000);
	assert_int_equal(shared, 0);
	version_clear(&g);
	version_clear(&v);
}

static void test_second_open_of_a_dir_is_refused(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	char err[512];
	assert_null(store_open(f->dir, err, sizeof err));
	assert_non_null(strstr(err, "in use"));
	reopen(f); /* once closed, it opens again */
}

/* --- versions --- */

static void test_version_add_and_get(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, o, g;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_int_equal(store_version_add(f->s, "hello", BUNDLE1, "fix: tabs\nand more", &a,
					   f->err, sizeof f->err),
			 0);
	assert_int_equal(store_version_add(f->s, "hello", BUNDLE2, NULL, &b, f->err, sizeof f->err),
			 0);
	assert_int_equal(store_version_add(f->s, "other", BUNDLE1, NULL, &o, f->err, sizeof f->err),
			 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;

	assert_uuid4(a.id);
	assert_uuid4(b.id);
	assert_string_not_equal(a.id, b.id);
	assert_int_equal(a.number, 1);
	assert_int_equal(b.number, 2);
	assert_int_equal(o.number, 1); /* numbered per worker */
	assert_string_equal(a.state, "building");
	assert_string_equal(a.worker, "hello");
	assert_true(a.created_ms >= before && a.created_ms <= after);

	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.id, a.id);
	assert_string_equal(g.worker, "hello");
	assert_int_equal(g.number, 1);
	assert_string_equal(g.message, "fix: tabs\nand more");
	assert_string_equal(g.bundle, BUNDLE1);
	assert_string_equal(g.state, "building");
	assert_null(g.error);
	assert_string_equal(g.snapshot, "");
	assert_int_equal(g.snapshot_bytes, 0);
	version_clear(&g);
	assert_int_equal(store_version_get(f->s, b.id, &g), 0);
	assert_null(g.message);
	version_clear(&g);
	assert_int_equal(store_version_get(f->s, "00000000-0000-4000-8000-000000000000", &g), -1);
	assert_int_equal(store_version_get(f->s, "short", &g), -1);

	/* Newest first. */
	json_t *list = store_versions_json(f->s, "hello");
	assert_non_null(list);
	assert_int_equal(json_array_size(list), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "number")), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "number")), 1);
	json_decref(list);
	list = store_versions_json(f->s, "nobody");
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);

	version_clear(&a);
	version_clear(&b);
	version_clear(&o);
}

static void test_version_add_refuses_bad_input(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	static const struct {
		const char *worker, *bundle, *message, *why;
	} cases[] = {
		{"Hello", BUNDLE1, NULL, "worker name"},
		{"-x", BUNDLE1, NULL, "worker name"},
		{"", BUNDLE1, NULL, "worker name"},
		{"a234567890123456789012345678901234567890123456789012345678901234", BUNDLE1, NULL,
		 "worker name"},
		{"hello", "ABC", NULL, "SHA-256"},
		{"hello", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", NULL,
		 "SHA-256"},
		{"hello", "../../../../../../../../../../../../../../../../../../../etc/pass", NULL,
		 "SHA-256"},
		{"hello", BUNDLE1, "colour \x1b[31m", "control character"},
		{"hello", BUNDLE1, "bad \xff utf-8", "UTF-8"},
		{"hello", BUNDLE1, "overlong \xc0\xaf", "UTF-8"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		f->err[0] = 0;
		if (store_version_add(f->s, cases[i].worker, cases[i].bundle, cases[i].message, &v,
				      f->err, sizeof f->err) != -1)
			fail_msg("case %zu accepted", i);
		if (!strstr(f->err, cases[i].why))
			fail_msg("case %zu: error '%s' does not mention '%s'", i, f->err,
				 cases[i].why);
	}
	char *long_message = malloc(2000);
	memset(long_message, 'm', 1999);
	long_message[1999] = 0;
	assert_int_equal(store_version_add(f->s, "hello", BUNDLE1, long_message, &v, f->err,
					   sizeof f->err),
			 -1);
	assert_non_null(strstr(f->err, "longer than"));
	free(long_message);
	json_t *list = store_versions_json(f->s, "hello");
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
}

static void test_version_find(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, c, o, v;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE1, "ready", &b);
	add_version(f, "hello", BUNDLE1, "ready", &c);
	add_version(f, "other", BUNDLE1, "ready", &o);

	assert_int_equal(store_version_find(f->s, "hello", a.id, &v), 0);
	assert_string_equal(v.id, a.id);
	version_clear(&v);
	char prefix[9];
	snprintf(prefix, sizeof prefix, "%.8s", b.id);
	assert_int_equal(store_version_find(f->s, "hello", prefix, &v), 0);
	assert_string_equal(v.id, b.id);
	version_clear(&v);
	for (int i = 0; prefix[i]; i++)
		prefix[i] = (char)toupper((unsigned char)prefix[i]);
	assert_int_equal(store_version_find(f->s, "hello", prefix, &v), 0);
	assert_string_equal(v.id, b.id);
	version_clear(&v);

	assert_int_equal(store_version_find(f->s, "hello", "2", &v), 0);
	assert_string_equal(v.id, b.id);
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "hello", "#3", &v), 0);
	assert_string_equal(v.id, c.id);
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "other", "1", &v), 0);
	assert_string_equal(v.id, o.id);
	version_clear(&v);

	/* Unknown, too short, another worker's. */
	assert_int_equal(store_version_find(f->s, "hello", "#4", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "4", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "#0", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "#", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "zzzz", &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", "%", &v), -1);
	snprintf(prefix, sizeof prefix, "%.3s", a.id);
	assert_int_equal(store_version_find(f->s, "hello", prefix, &v), -1);
	assert_int_equal(store_version_find(f->s, "hello", o.id, &v), -1);
	assert_int_equal(store_version_find(f->s, NULL, o.id, &v), 0);
	assert_string_equal(v.id, o.id);
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "nobody", "1", &v), -1);

	/* Ambiguous: two ids sharing a prefix; digits that are a number and a prefix. */
	sqlite3 *db = db_side(f);
#define ROW(id, number) "('" id "', 'hello', " number ", 0, '" BUNDLE1 "', 'ready')"
	db_exec(db, "INSERT INTO versions (id, worker, number, created_ms, bundle, state) VALUES "
		    ROW("abcd0000-0000-4000-8000-000000000000", "10") ","
		    ROW("abcd1111-0000-4000-8000-000000000000", "11") ","
		    ROW("0001ffff-0000-4000-8000-000000000000", "12"));
#undef ROW
	sqlite3_close(db);
	assert_int_equal(store_version_find(f->s, "hello", "abcd", &v), -2);
	assert_int_equal(store_version_find(f->s, "hello", "abcd1", &v), 0);
	assert_string_equal(v.id, "abcd1111-0000-4000-8000-000000000000");
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "hello", "0001", &v), -2); /* #1 or 0001ffff */
	assert_int_equal(store_version_find(f->s, "hello", "#1", &v), 0);
	assert_string_equal(v.id, a.id);
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "hello", "0001f", &v), 0);
	assert_int_equal(v.number, 12);
	version_clear(&v);
	assert_int_equal(store_version_find(f->s, "hello", "12", &v), 0);
	assert_string_equal(v.id, "0001ffff-0000-4000-8000-000000000000");
	version_clear(&v);

	version_clear(&a);
	version_clear(&b);
	version_clear(&c);
	version_clear(&o);
}

static void test_version_state_and_snapshot(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, g;
	add_version(f, "hello", BUNDLE1, "building", &a);

	assert_int_equal(store_version_set_state(f->s, a.id, "failed",
						 "Traceback:\n\tboom \x1b[2J\xff end"),
			 0);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.state, "failed");
	assert_string_equal(g.error, "Traceback:\n\tboom ?[2J? end"); /* safe to print */
	version_clear(&g);

	assert_int_equal(store_version_set_state(f->s, a.id, "ready", NULL), 0);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.state, "ready");
	assert_null(g.error);
	version_clear(&g);

	assert_int_equal(store_version_set_state(f->s, a.id, "bogus", NULL), -1);
	assert_int_equal(store_version_set_state(f->s, "00000000-0000-4000-8000-000000000000",
						 "ready", NULL),
			 -1);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.state, "ready");
	version_clear(&g);

	assert_int_equal(store_version_set_snapshot(f->s, a.id, SHA_ABC, 12345), 0);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.snapshot, SHA_ABC);
	assert_int_equal(g.snapshot_bytes, 12345);
	version_clear(&g);
	assert_int_equal(store_version_set_snapshot(f->s, a.id, "../escape", 1), -1);
	assert_int_equal(store_version_set_snapshot(f->s, a.id, "", 0), 0);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.snapshot, "");
	assert_int_equal(g.snapshot_bytes, 0);

	json_t *j = version_json(&g);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "id")), a.id);
	assert_int_equal(json_integer_value(json_object_get(j, "number")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "created")), g.created_ms);
	assert_true(json_is_null(json_object_get(j, "message")));
	assert_string_equal(json_string_value(json_object_get(j, "state")), "ready");
	assert_true(json_is_null(json_object_get(j, "error")));
	assert_int_equal(json_integer_value(json_object_get(j, "snapshot_bytes")), 0);
	assert_string_equal(json_string_value(json_object_get(j, "bundle")), BUNDLE1);
	assert_true(json_is_null(json_object_get(j, "snapshot")));
	assert_int_equal(json_object_size(j), 10);
	json_decref(j);
	snprintf(g.snapshot, sizeof g.snapshot, "%s", SHA_ABC);
	j = version_json(&g);
	assert_string_equal(json_string_value(json_object_get(j, "snapshot")), SHA_ABC);
	json_decref(j);
	version_clear(&g);
	version_clear(&a);
}

static void test_building_version_fails_on_reopen(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, g;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE2, "building", &b);
	reopen(f);
	assert_int_equal(store_version_get(f->s, b.id, &g), 0);
	assert_string_equal(g.state, "failed");
	assert_string_equal(g.error, "interrupted: the host stopped while it was being deployed");
	version_clear(&g);
	assert_int_equal(store_version_get(f->s, a.id, &g), 0);
	assert_string_equal(g.state, "ready");
	assert_null(g.error);
	version_clear(&g);
	version_clear(&a);
	version_clear(&b);
}

/* --- deployments --- */

static struct deployment dep(const char *v0, double p0, const char *v1, double p1)
{
	struct deployment d = {0};
	if (v0) {
		snprintf(d.version[d.n], sizeof d.version[0], "%s", v0);
		d.percentage[d.n++] = p0;
	}
	if (v1) {
		snprintf(d.version[d.n], sizeof d.version[0], "%s", v1);
		d.percentage[d.n++] = p1;
	}
	return d;
}

static void test_deploy_validation(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, c, x, o;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE1, "ready", &b);
	add_version(f, "hello", BUNDLE1, "building", &c);
	add_version(f, "hello", BUNDLE1, "failed", &x);
	add_version(f, "other", BUNDLE1, "ready", &o);
	const char *unknown = "00000000-0000-4000-8000-000000000000";

	struct {
		const char *worker;
		struct deployment d;
		const char *why;
	} cases[] = {
		{"hello", dep(a.id, 60, NULL, 0), "add up to 60"},
		{"hello", dep(a.id, 60, b.id, 30), "add up to 90"},
		{"hello", dep(a.id, 60, b.id, 60), "add up to 120"},
		{"hello", dep(unknown, 100, NULL, 0), "no version"},
		{"hello", dep(c.id, 100, NULL, 0), "building, not ready"},
		{"hello", dep(x.id, 100, NULL, 0), "failed, not ready: it broke"},
		{"hello", dep(a.id, 90, c.id, 10), "building, not ready"},
		{"hello", dep(o.id, 100, NULL, 0), "belongs to worker other"},
		{"hello", dep(a.id, 50, a.id, 50), "listed twice"},
		{"hello", dep(a.id, 0, b.id, 100), "not in (0, 100]"},
		{"hello", dep(a.id, -10, b.id, 110), "not in (0, 100]"},
		{"hello", dep(a.id, NAN, b.id, 100), "not in (0, 100]"},
		{"hello", dep(a.id, INFINITY, NULL, 0), "not in (0, 100]"},
		{"hello", dep("../../../etc/passwd", 100, NULL, 0), "not a version id"},
		{"hello", dep(NULL, 0, NULL, 0), "1 or 2 versions, not 0"},
		{"Bad name", dep(a.id, 100, NULL, 0), "worker name"},
		{"nobody", dep(a.id, 100, NULL, 0), "belongs to worker hello"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		f->err[0] = 0;
		if (store_deploy(f->s, cases[i].worker, &cases[i].d, f->err, sizeof f->err) != -1)
			fail_msg("case %zu accepted", i);
		if (!strstr(f->err, cases[i].why))
			fail_msg("case %zu: error '%s' does not mention '%s'", i, f->err,
				 cases[i].why);
	}
	struct deployment three = dep(a.id, 30, b.id, 30);
	three.n = 3; /* beyond the array: refused before it is read */
	assert_int_equal(store_deploy(f->s, "hello", &three, f->err, sizeof f->err), -1);
	assert_non_null(strstr(f->err, "1 or 2 versions, not 3"));

	struct deployment d;
	assert_int_equal(store_deployment_current(f->s, "hello", &d), -1);
	sqlite3 *db = db_side(f);
	assert_int_equal(db_int(db, "SELECT count(*) FROM deployments"), 0);
	assert_int_equal(db_int(db, "SELECT count(*) FROM deployment_versions"), 0);
	sqlite3_close(db);

	/* Thirds add up to 100 within rounding. */
	struct deployment ok = dep(a.id, 100.0 / 3, b.id, 200.0 / 3);
	if (store_deploy(f->s, "hello", &ok, f->err, sizeof f->err) != 0)
		fail_msg("valid deployment refused: %s", f->err);
	assert_true(ok.id > 0);

	version_clear(&a);
	version_clear(&b);
	version_clear(&c);
	version_clear(&x);
	version_clear(&o);
}

static void test_current_and_previous_after_three_deploys(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE2, "ready", &b);
	struct deployment c, p;
	assert_int_equal(store_deployment_current(f->s, "hello", &c), -1);
	assert_int_equal(store_deployment_previous(f->s, "hello", &p), -1);
	json_t *names = store_workers_json(f->s);
	assert_int_equal(json_array_size(names), 0);
	json_decref(names);

	struct deployment d1 = dep(a.id, 100, NULL, 0);
	d1.message = strdup("first");
	assert_int_equal(store_deploy(f->s, "hello", &d1, f->err, sizeof f->err), 0);
	assert_int_equal(store_deployment_current(f->s, "hello", &c), 0);
	assert_int_equal(c.id, d1.id);
	assert_int_equal(store_deployment_previous(f->s, "hello", &p), -1);
	deployment_clear(&c);

	struct deployment d2 = dep(b.id, 10, a.id, 90);
	assert_int_equal(store_deploy(f->s, "hello", &d2, f->err, sizeof f->err), 0);
	struct deployment d3 = dep(b.id, 100, NULL, 0);
	d3.message = strdup("all in");
	assert_int_equal(store_deploy(f->s, "hello", &d3, f->err, sizeof f->err), 0);
	assert_true(d1.id < d2.id && d2.id < d3.id);

	assert_int_equal(store_deployment_current(f->s, "hello", &c), 0);
	assert_int_equal(c.id, d3.id);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.version[0], b.id);
	assert_true(c.percentage[0] == 100);
	assert_string_equal(c.message, "all in");
	assert_int_equal(store_deployment_previous(f->s, "hello", &p), 0);
	assert_int_equal(p.id, d2.id);
	assert_int_equal(p.n, 2);
	assert_string_equal(p.version[0], b.id); /* order as deployed */
	assert_true(p.percentage[0] == 10);
	assert_string_equal(p.version[1], a.id);
	assert_true(p.percentage[1] == 90);
	assert_null(p.message);

	json_t *j = deployment_json(&p);
	assert_int_equal(json_integer_value(json_object_get(j, "id")), d2.id);
	assert_int_equal(json_integer_value(json_object_get(j, "created")), d2.created_ms);
	assert_true(json_is_null(json_object_get(j, "message")));
	json_t *vs = json_object_get(j, "versions");
	assert_int_equal(json_array_size(vs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(vs, 1), "id")), a.id);
	assert_true(json_real_value(json_object_get(json_array_get(vs, 1), "percentage")) == 90);
	assert_int_equal(json_object_size(j), 4);
	json_decref(j);

	/* A rollback deploys the previous one again; then the one rolled back
	 * from is the previous. */
	struct deployment r = p;
	r.message = NULL;
	assert_int_equal(store_deploy(f->s, "hello", &r, f->err, sizeof f->err), 0);
	deployment_clear(&c);
	deployment_clear(&p);
	assert_int_equal(store_deployment_current(f->s, "hello", &c), 0);
	assert_int_equal(c.id, r.id);
	assert_string_equal(c.version[1], a.id);
	assert_int_equal(store_deployment_previous(f->s, "hello", &p), 0);
	assert_int_equal(p.id, d3.id);

	names = store_workers_json(f->s);
	assert_int_equal(json_array_size(names), 1);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "hello");
	json_decref(names);

	deployment_clear(&c);
	deployment_clear(&p);
	deployment_clear(&d1);
	deployment_clear(&d3);
	version_clear(&a);
	version_clear(&b);
}

/* --- deleting versions --- */

#define SNAP1 "5555555555555555555555555555555555555555555555555555555555555555"

/* Migration 4: a store made before versions could be deleted learns the
 * highest number each worker gave. */
static void test_migration_4_remembers_the_numbers_given(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v[3];
	for (int i = 0; i < 3; i++)
		add_version(f, "hello", BUNDLE1, "failed", &v[i]);
	store_close(f->s);
	f->s = NULL;
	sqlite3 *db = db_side(f);
	db_exec(db, "DROP INDEX versions_by_bundle; DROP INDEX versions_by_snapshot; "
		    "ALTER TABLE workers DROP COLUMN last_number; DROP TABLE bases; " UNDO_6
		    "PRAGMA user_version = 3");
	sqlite3_close(db);
	reopen(f);
	db = db_side(f);
	assert_int_equal(db_int(db, "PRAGMA user_version"), 6);
	assert_int_equal(db_int(db, "SELECT last_number FROM workers WHERE name = 'hello'"), 3);
	sqlite3_close(db);
	/* The newest goes; its number is not given again. */
	struct version gone, next;
	assert_int_equal(store_version_delete(f->s, v[2].id, 2, &gone, f->err, sizeof f->err), 0);
	add_version(f, "hello", BUNDLE1, "ready", &next);
	assert_int_equal(next.number, 4);
	version_clear(&gone);
	version_clear(&next);
	for (int i = 0; i < 3; i++)
		version_clear(&v[i]);
}

static void test_version_delete_spares_deployed_and_building_versions(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version a, b, c, x, bld, gone;
	add_version(f, "hello", BUNDLE1, "ready", &a);
	add_version(f, "hello", BUNDLE2, "ready", &b);
	add_version(f, "hello", BUNDLE1, "ready", &c);
	add_version(f, "hello", BUNDLE1, "building", &bld);
	assert_int_equal(store_secret_put(f->s, "hello", "K", "v", f->err, sizeof f->err), 0);
	add_version(f, "hello", BUNDLE1, "failed", &x); /* number 5, with a secret */
	assert_int_equal(store_version_set_snapshot(f->s, b.id, SNAP1, 10), 0);
	struct deployment d1 = dep(a.id, 100, NULL, 0), d2 = dep(b.id, 50, a.id, 50),
			  d3 = dep(c.id, 100, NULL, 0);
	assert_int_equal(store_deploy(f->s, "hello", &d1, f->err, sizeof f->err), 0);
	assert_int_equal(store_deploy(f->s, "hello", &d2, f->err, sizeof f->err), 0);
	assert_int_equal(store_deploy(f->s, "hello", &d3, f->err, sizeof f->err), 0);
	assert_int_equal(store_blob_referenced(f->s, BUNDLE2), 1);
	assert_int_equal(store_blob_referenced(f->s, SNAP1), 1);

	/* The current deployment's version, the previous one's when asked,
	 * one being deployed, and nothing that is not a version id. */
	assert_int_equal(store_version_delete(f->s, c.id, 1, &gone, f->err, sizeof f->err),
			 STORE_DELETE_DEPLOYED);
	assert_non_null(strstr(f->err, "version 3 of hello is in its current deployment"));
	assert_int_equal(store_version_delete(f->s, b.id, 2, &gone, f->err, sizeof f->err),
			 STORE_DELETE_DEPLOYED);
	assert_non_null(strstr(f->err, "current or previous"));
	assert_int_equal(store_version_delete(f->s, bld.id, 2, &gone, f->err, sizeof f->err),
			 STORE_DELETE_BUILDING);
	assert_int_equal(store_version_delete(f->s, "00000000-0000-4000-8000-000000000000", 1,
					      &gone, f->err, sizeof f->err),
			 STORE_DELETE_NONE);
	assert_int_equal(store_version_delete(f->s, "../../etc/passwd", 1, &gone, f->err,
					      sizeof f->err),
			 STORE_DELETE_NONE);
	struct version g;
	assert_int_equal(store_version_get(f->s, c.id, &g), 0);
	version_clear(&g);

	/* b is only in the previous deployment: it may go when only the current
	 * one is protected, and that deployment goes with it. */
	assert_int_equal(store_version_delete(f->s, b.id, 1, &gone, f->err, sizeof f->err), 0);
	assert_string_equal(gone.id, b.id);
	assert_string_equal(gone.bundle, BUNDLE2);
	assert_string_equal(gone.snapshot, SNAP1);
	version_clear(&gone);
	assert_int_equal(store_version_get(f->s, b.id, &g), -1);
	assert_int_equal(store_blob_referenced(f->s, BUNDLE2), 0);
	assert_int_equal(store_blob_referenced(f->s, SNAP1), 0);
	assert_int_equal(store_blob_referenced(f->s, BUNDLE1), 1);
	assert_int_equal(store_blob_referenced(f->s, "not hex"), 0);
	struct deployment cur, prev;
	assert_int_equal(store_deployment_current(f->s, "hello", &cur), 0);
	assert_int_equal(cur.id, d3.id);
	assert_int_equal(store_deployment_previous(f->s, "hello", &prev), 0);
	assert_int_equal(prev.id, d1.id); /* what a rollback returns to now */
	deployment_clear(&cur);
	deployment_clear(&prev);
	sqlite3 *db = db_side(f);
	assert_int_equal(db_int(db, "SELECT count(*) FROM deployments"), 2);
	assert_int_equal(db_int(db, "SELECT count(*) FROM deployment_versions"), 2);
	sqlite3_close(db);
	/* a is in the previous deployment now. */
	assert_int_equal(store_version_delete(f->s, a.id, 2, &gone, f->err, sizeof f->err),
			 STORE_DELETE_DEPLOYED);

	/* The newest version goes with its secrets; its number is not reused. */
	json_t *sec = store_version_secrets(f->s, x.id);
	assert_int_equal(json_object_size(sec), 1);
	json_decref(sec);
	assert_int_equal(store_version_delete(f->s, x.id, 2, &gone, f->err, sizeof f->err), 0);
	version_clear(&gone);
	db = db_side(f);
	assert_int_equal(db_int(db, "SELECT count(*) FROM version_secrets"), 0); /* x alone had one */
	sqlite3_close(db);
	struct version y;
	add_version(f, "hello", BUNDLE1, "ready", &y);
	assert_int_equal(y.number, 6);
	assert_int_equal(store_version_find(f->s, "hello", "5", &g), STORE_FIND_NONE);
	assert_true(store_worker_exists(f->s, "hello"));
	assert_false(store_worker_exists(f->s, "nobody"));
	assert_false(store_worker_exists(f->s, "../x"));

	version_clear(&a);
	version_clear(&b);
	version_clear(&c);
	version_clear(&x);
	version_clear(&y);
	version_clear(&bld);
}

static void test_versions_beyond_keep_spare_deployments(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v[8], o;
	for (int i = 1; i <= 6; i++)
		add_version(f, "hello", BUNDLE1, i == 4 ? "failed" : "ready", &v[i]);
	add_version(f, "hello", BUNDLE1, "building", &v[7]);
	add_version(f, "other", BUNDLE1, "ready", &o);
	struct deployment d1 = dep(v[2].id, 100, NULL, 0), d2 = dep(v[5].id, 100, NULL, 0);
	assert_int_equal(store_deploy(f->s, "hello", &d1, f->err, sizeof f->err), 0);
	assert_int_equal(store_deploy(f->s, "hello", &d2, f->err, sizeof f->err), 0);

	struct {
		int keep, limit;
		int want[8]; /* version numbers, oldest first, 0-terminated */
	} cases[] = {
		{2, 100, {1, 3, 4, 0}},    /* 7 and 6 kept; 2 and 5 deployed */
		{2, 2, {1, 3, 0}},         /* at most limit */
		{0, 100, {1, 3, 4, 6, 0}}, /* 7 is building */
		{5, 100, {1, 0}},
		{7, 100, {0}},
		{100, 100, {0}},
		{-1, 100, {0}},
		{0, 0, {0}},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		json_t *ids = store_versions_beyond(f->s, "hello", cases[c].keep, cases[c].limit);
		assert_non_null(ids);
		size_t n = 0;
		while (cases[c].want[n])
			n++;
		if (json_array_size(ids) != n)
			fail_msg("keep %d: %zu versions, expected %zu", cases[c].keep,
				 json_array_size(ids), n);
		for (size_t i = 0; i < n; i++)
			assert_string_equal(json_string_value(json_array_get(ids, i)),
					    v[cases[c].want[i]].id);
		json_decref(ids);
	}
	json_t *ids = store_versions_beyond(f->s, "Not A Name", 0, 10);
	assert_int_equal(json_array_size(ids), 0);
	json_decref(ids);
	assert_int_equal(store_version_exists(f->s, v[1].id), 1);
	assert_int_equal(store_version_exists(f->s, "00000000-0000-4000-8000-000000000000"), 0);
	assert_int_equal(store_version_exists(f->s, "../versions"), 0);
	for (int i = 1; i <= 7; i++)
		version_clear(&v[i]);
	version_clear(&o);
}

/* --- blobs --- */

/* Migration 5: the host's base images, one per key; the blob a row names
 * counts as referenced (the garbage collector keeps it). */
static void test_base_images_are_recorded_by_key_and_keep_their_blob(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	char hex[STORE_SHA_HEX + 1];
	assert_int_equal(store_base_get(f->s, "python-site-0", hex), 0);
	assert_string_equal(hex, "");
	assert_int_equal(store_blob_referenced(f->s, SNAP1), 0);
	assert_int_equal(store_base_put(f->s, "python-site-0", SNAP1), 0);
	assert_int_equal(store_base_get(f->s, "python-site-0", hex), 1);
	assert_string_equal(hex, SNAP1);
	assert_int_equal(store_blob_referenced(f->s, SNAP1), 1);
	/* Another key is another row; a new base for a key replaces its old. */
	assert_int_equal(store_base_get(f->s, "python-site-1", hex), 0);
	assert_int_equal(store_base_put(f->s, "python-site-0", BUNDLE2), 0);
	assert_int_equal(store_base_get(f->s, "python-site-0", hex), 1);
	assert_string_equal(hex, BUNDLE2);
	assert_int_equal(store_blob_referenced(f->s, SNAP1), 0);
	assert_int_equal(store_blob_referenced(f->s, BUNDLE2), 1);
	/* Bad input is refused, nothing recorded. */
	assert_int_equal(store_base_put(f->s, "python-site-0", "not-a-sha"), -1);
	assert_int_equal(store_base_put(f->s, "", SNAP1), -1);
	assert_int_equal(store_base_get(f->s, "python-site-0", hex), 1);
	assert_string_equal(hex, BUNDLE2);
	/* It survives a reopen. */
	reopen(f);
	assert_int_equal(store_base_get(f->s, "python-site-0", hex), 1);
	assert_string_equal(hex, BUNDLE2);
}

static void test_blob_content_and_sha256(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct blob_writer *w = blob_begin(f->s, f->err, sizeof f->err);
	assert_non_null(w);
	assert_int_equal(count_entries(sub(f, "tmp")), 1); /* written under tmp/ */
	assert_int_equal(blob_write(w, "a", 1, f->err, sizeof f->err), 0);
	assert_int_equal(blob_write(w, "bc", 2, f->err, sizeof f->err), 0);
	assert_int_equal(blob_size(w), 3);
	char hex[STORE_SHA_HEX + 1];
	assert_int_equal(blob_commit(w, hex, f->err, sizeof f->err), 0);
	assert_string_equal(hex, SHA_ABC);
	char *path = blob_path(f->s, hex);
	assert_string_equal(path, sub(f, "blobs/" SHA_ABC));
	size_t n;
	char *data = slurp(path, &n);
	assert_int_equal(n, 3);
	assert_memory_equal(data, "abc", 3);
	free(data);
	free(path);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);

	/* NIST's million 'a's, in uneven pieces. */
	char as[1000];
	memset(as, 'a', sizeof as);
	w = blob_begin(f->s, f->err, sizeof f->err);
	for (size_t left = 1000000; left;) {
		size_t k = left < 777 ? left : 777;
		assert_int_equal(blob_write(w, as, k, f->err, sizeof f->err), 0);
		left -= k;
	}
	assert_int_equal(blob_commit(w, hex, f->err, sizeof f->err), 0);
	assert_string_equal(hex, SHA_MILLION_A);

	w = blob_begin(f->s, f->err, sizeof f->err);
	assert_int_equal(blob_commit(w, hex, f->err, sizeof f->err), 0);
	assert_string_equal(hex, SHA_EMPTY);
	assert_int_equal(count_entries(sub(f, "blobs")), 3);

	assert_null(blob_path(f->s, "ABC"));
	assert_null(blob_path(f->s, "../../../../../../../../../../../../../../../../../etc/pass"
				    "wd"));
	assert_null(blob_path(f->s, ""));
}

static void test_blob_same_content_is_stored_once(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	char hex1[STORE_SHA_HEX + 1], hex2[STORE_SHA_HEX + 1];
	struct stat first, second;
	for (int i = 0; i < 2; i++) {
		struct blob_writer *w = blob_begin(f->s, f->err, sizeof f->err);
		assert_int_equal(blob_write(w, "abc", 3, f->err, sizeof f->err), 0);
		assert_int_equal(blob_commit(w, i ? hex2 : hex1, f->err, sizeof f->err), 0);
		assert_int_equal(stat(sub(f, "blobs/" SHA_ABC), i ? &second : &first), 0);
	}
	assert_string_equal(hex1, hex2);
	assert_int_equal(first.st_ino, second.st_ino); /* the stored blob is kept, never swapped */
	assert_int_equal(count_entries(sub(f, "blobs")), 1);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);

	/* A damaged copy (wrong size) is replaced by the next commit. */
	write_file(sub(f, "blobs/" SHA_ABC), "ab", 2);
	struct blob_writer *w = blob_begin(f->s, f->err, sizeof f->err);
	assert_int_equal(blob_write(w, "abc", 3, f->err, sizeof f->err), 0);
	assert_int_equal(blob_commit(w, hex1, f->err, sizeof f->err), 0);
	size_t n;
	char *data = slurp(sub(f, "blobs/" SHA_ABC), &n);
	assert_int_equal(n, 3);
	free(data);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);
}

static void test_blob_abort_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct blob_writer *w = blob_begin(f->s, f->err, sizeof f->err);
	assert_int_equal(blob_write(w, "half a bundle", 13, f->err, sizeof f->err), 0);
	assert_int_equal(count_entries(sub(f, "tmp")), 1);
	blob_abort(w);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);
	assert_int_equal(count_entries(sub(f, "blobs")), 0);
	blob_abort(NULL);
}

static void test_blob_adopt(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	/* 3 MiB and a bit: read in several chunks. */
	size_t n = 3 * 1024 * 1024 + 123;
	unsigned char *big = malloc(n);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	unsigned char md[32];
	unsigned int mdlen;
	assert_int_equal(EVP_Digest(big, n, md, &mdlen, EVP_sha256(), NULL), 1);
	char want[STORE_SHA_HEX + 1];
	for (int i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);

	char hex[STORE_SHA_HEX + 1];
	write_file(sub(f, "tmp/snapshot"), big, n);
	assert_int_equal(blob_adopt(f->s, sub(f, "tmp/snapshot"), hex, f->err, sizeof f->err), 0);
	assert_string_equal(hex, want);
	assert_int_equal(access(sub(f, "tmp/snapshot"), F_OK), -1);
	char *path = blob_path(f->s, hex);
	size_t got;
	char *data = slurp(path, &got);
	assert_int_equal(got, n);
	assert_memory_equal(data, big, n);
	free(data);
	free(path);

	/* The same content again: the temporary file goes, one blob stays. */
	write_file(sub(f, "tmp/again"), big, n);
	assert_int_equal(blob_adopt(f->s, sub(f, "tmp/again"), hex, f->err, sizeof f->err), 0);
	assert_string_equal(hex, want);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);
	assert_int_equal(count_entries(sub(f, "blobs")), 1);

	/* Not a regular file, or not there. */
	assert_int_equal(blob_adopt(f->s, sub(f, "tmp/missing"), hex, f->err, sizeof f->err), -1);
	assert_string_equal(hex, "");
	assert_int_equal(symlink("/etc/hostname", sub(f, "tmp/link")), 0);
	assert_int_equal(blob_adopt(f->s, sub(f, "tmp/link"), hex, f->err, sizeof f->err), -1);
	assert_int_equal(mkdir(sub(f, "tmp/dir"), 0700), 0);
	assert_int_equal(blob_adopt(f->s, sub(f, "tmp/dir"), hex, f->err, sizeof f->err), -1);
	assert_non_null(strstr(f->err, "not a regular file"));
	assert_int_equal(count_entries(sub(f, "blobs")), 1);
	free(big);
}

static void test_tmp_is_emptied_on_open(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	char outside[256], keep[300];
	snprintf(outside, sizeof outside, "%s/outside", f->root);
	snprintf(keep, sizeof keep, "%s/keep", outside);
	assert_int_equal(mkdir(outside, 0700), 0);
	write_file(keep, "precious", 8);

	write_file(sub(f, "tmp/blob-abcdef"), "partial", 7);
	assert_int_equal(mkdir(sub(f, "tmp/unpack"), 0700), 0);
	assert_int_equal(mkdir(sub(f, "tmp/unpack/src"), 0700), 0);
	assert_int_equal(mkdir(sub(f, "tmp/unpack/src/deep"), 0700), 0);
	write_file(sub(f, "tmp/unpack/src/deep/entry.py"), "x", 1);
	assert_int_equal(mkdir(sub(f, "tmp/unpack/locked"), 0000), 0);
	/* Links are removed, never followed. */
	assert_int_equal(symlink(outside, sub(f, "tmp/unpack/to-dir")), 0);
	assert_int_equal(symlink(keep, sub(f, "tmp/to-file")), 0);
	assert_int_equal(count_entries(sub(f, "tmp")), 3);

	reopen(f);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);
	size_t n;
	char *data = slurp(keep, &n);
	assert_string_equal(data, "precious");
	free(data);
	assert_int_equal(count_entries(outside), 1);
}

static void test_crash_mid_blob_leaves_nothing_after_reopen(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	store_close(f->s);
	f->s = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		struct store *s = store_open(f->dir, err, sizeof err);
		if (!s)
			_exit(2);
		struct blob_writer *w = blob_begin(s, err, sizeof err);
		if (!w || blob_write(w, "half of a bundle", 16, err, sizeof err) < 0)
			_exit(3);
		_exit(0); /* killed mid-upload: no commit, no abort, no close */
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(count_entries(sub(f, "tmp")), 1); /* the debris */

	reopen(f);
	assert_int_equal(count_entries(sub(f, "tmp")), 0);
	assert_int_equal(count_entries(sub(f, "blobs")), 0);
	json_t *names = store_workers_json(f->s);
	assert_int_equal(json_array_size(names), 0);
	json_decref(names);
}

static void test_cron_runs_recorded_listed_and_trimmed(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	add_version(f, "cronw", BUNDLE1, "ready", &v);
	assert_int_equal(store_cron_last(f->s, "cronw", "* * * * *"), -1);
	struct cron_run ok = {.worker = "cronw", .version = v.id, .cron = "* * * * *",
			      .scheduled_ms = 1800000000000, .duration_ms = 12.5, .outcome = "ok"};
	assert_int_equal(store_cron_run_add(f->s, &ok, f->err, sizeof f->err), 0);
	struct cron_run bad = ok;
	bad.scheduled_ms += 60000;
	bad.outcome = "exception";
	bad.error = "ValueError: \xff broken";
	bad.no_retry = 1;
	assert_int_equal(store_cron_run_add(f->s, &bad, f->err, sizeof f->err), 0);
	assert_int_equal(store_cron_last(f->s, "cronw", "* * * * *"), 1800000060000);
	assert_int_equal(store_cron_last(f->s, "cronw", "0 * * * *"), -1);
	json_t *runs = store_cron_runs_json(f->s, "cronw", 10);
	assert_non_null(runs);
	assert_int_equal(json_array_size(runs), 2);
	json_t *first = json_array_get(runs, 0);
	assert_string_equal(json_string_value(json_object_get(first, "outcome")), "exception");
	assert_true(json_is_true(json_object_get(first, "no_retry")));
	assert_non_null(strstr(json_string_value(json_object_get(first, "error")), "broken"));
	json_t *second = json_array_get(runs, 1);
	assert_true(json_is_null(json_object_get(second, "error")));
	assert_true(json_real_value(json_object_get(second, "duration_ms")) == 12.5);
	json_decref(runs);
	struct cron_run unknown = ok;
	unknown.outcome = "exploded";
	assert_int_equal(store_cron_run_add(f->s, &unknown, f->err, sizeof f->err), -1);
	/* Only the newest 1000 of a worker are kept. */
	for (int i = 0; i < 1005; i++) {
		ok.scheduled_ms += 60000;
		assert_int_equal(store_cron_run_add(f->s, &ok, f->err, sizeof f->err), 0);
	}
	sqlite3 *db = db_side(f);
	assert_int_equal(db_int(db, "SELECT count(*) FROM cron_runs WHERE worker = 'cronw'"), 1000);
	sqlite3_close(db);
	version_clear(&v);
}

static void test_secrets_sealed_copied_per_version(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	const char *value = "hunter2-plaintext-marker";
	assert_int_equal(store_secret_put(f->s, "sec", "API_KEY", value, f->err, sizeof f->err), 0);
	assert_int_equal(store_secret_put(f->s, "sec", "OTHER", "x", f->err, sizeof f->err), 0);
	assert_int_equal(store_secret_put(f->s, "sec", "1BAD", "x", f->err, sizeof f->err), -1);
	char big[STORE_SECRET_MAX + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_int_equal(store_secret_put(f->s, "sec", "BIG", big, f->err, sizeof f->err), -1);
	json_t *names = store_secret_names(f->s, "sec");
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "API_KEY");
	json_decref(names);
	struct version v1, v2;
	add_version(f, "sec", BUNDLE1, "ready", &v1);
	assert_int_equal(store_secret_put(f->s, "sec", "API_KEY", "changed", f->err, sizeof f->err), 0);
	assert_int_equal(store_secret_delete(f->s, "sec", "OTHER", f->err, sizeof f->err), 0);
	assert_int_equal(store_secret_delete(f->s, "sec", "OTHER", f->err, sizeof f->err), 1);
	add_version(f, "sec", BUNDLE1, "ready", &v2);
	json_t *s1 = store_version_secrets(f->s, v1.id), *s2 = store_version_secrets(f->s, v2.id);
	assert_string_equal(json_string_value(json_object_get(s1, "API_KEY")), value);
	assert_string_equal(json_string_value(json_object_get(s1, "OTHER")), "x");
	assert_string_equal(json_string_value(json_object_get(s2, "API_KEY")), "changed");
	assert_null(json_object_get(s2, "OTHER"));
	json_decref(s1);
	json_decref(s2);
	/* Sealed at rest: the value is in no file of the data directory. */
	store_close(f->s);
	f->s = NULL;
	char cmd[600];
	snprintf(cmd, sizeof cmd, "grep -r -q -a '%s' '%s'", value, f->dir);
	assert_int_not_equal(system(cmd), 0);
	struct stat st;
	assert_int_equal(stat(sub(f, "secrets.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	/* Another key cannot open them: they are left out, not garbled. */
	reopen(f);
	s1 = store_version_secrets(f->s, v1.id);
	assert_int_equal(json_object_size(s1), 2);
	json_decref(s1);
	store_close(f->s);
	f->s = NULL;
	FILE *k = fopen(sub(f, "secrets.key"), "r+");
	assert_non_null(k);
	int first = fgetc(k); /* flipped, not overwritten: a random key may start with any byte */
	assert_true(first != EOF);
	rewind(k);
	fputc(first ^ 0xff, k);
	fclose(k);
	reopen(f);
	s1 = store_version_secrets(f->s, v1.id);
	assert_int_equal(json_object_size(s1), 0);
	json_decref(s1);
	version_clear(&v1);
	version_clear(&v2);
}

/* --- durability off the loop (store_sync_start) --- */

struct sync_probe {
	struct store *s;
	struct loop *l;
	uint64_t want;
	int calls, durable;
};

static void probe_synced(void *arg)
{
	struct sync_probe *p = arg;
	p->calls++;
	p->durable = store_durable(p->s, p->want);
	if (p->durable)
		loop_stop(p->l);
}

static void probe_timeout(struct loop *l, struct loop_timer *t)
{
	(void)t;
	loop_stop(l); /* the test fails below: the sync thread never said so */
}

static void test_sync_thread_makes_changes_durable_off_the_loop(void **state)
{
	struct fixture *f = *state;
	reopen(f);
	struct version v;
	/* Without the thread a change is durable when it returns. */
	assert_int_equal(store_version_add(f->s, "hello", BUNDLE1, NULL, &v, f->err, sizeof f->err), 0);
	assert_int_equal(store_durable(f->s, store_ticket(f->s)), 1);

	struct sync_probe p = {.s = f->s, .l = loop_new()};
	assert_int_equal(store_sync_start(f->s, p.l, probe_synced, &p, f->err, sizeof f->err), 0);
	uint64_t before = store_ticket(f->s);
	/* A lone statement (no BEGIN ... COMMIT of ours) is a change too. */
	assert_int_equal(store_version_set_state(f->s, v.id, "ready", NULL), 0);
	assert_true(store_ticket(f->s) > before);
	before = store_ticket(f->s);
	store_versions_dir_sync(f->s);
	p.want = store_ticket(f->s);
	assert_true(p.want > before); /* so is a directory to fsync */
	struct loop_timer t = {.fn = probe_timeout};
	loop_timer_arm(p.l, &t, 10000);
	assert_int_equal(loop_run(p.l), 0);
	loop_timer_cancel(p.l, &t);
	assert_true(p.calls >= 1);
	assert_int_equal(p.durable, 1);
	assert_int_equal(store_durable(f->s, p.want), 1);
	/* The change is in the database (another connection sees it). */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(sub(f, "thaw.db"), &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT state FROM versions WHERE id = ?", -1, &st,
					    NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, v.id, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ready");
	sqlite3_finalize(st);
	sqlite3_close(db);

	/* Thousands of changes: the sync thread checkpoints, so the WAL stays
	 * bounded (the loop's connection never checkpoints itself). */
	for (int round = 0; round < 40; round++) {
		for (int i = 0; i < 100; i++)
			assert_int_equal(store_version_set_state(f->s, v.id,
								 i % 2 ? "ready" : "building",
								 NULL),
					 0);
		p.want = store_ticket(f->s);
		p.durable = store_durable(f->s, p.want);
		if (!p.durable) {
			loop_timer_arm(p.l, &t, 10000);
			assert_int_equal(loop_run(p.l), 0);
			loop_timer_cancel(p.l, &t);
		}
		assert_int_equal(store_durable(f->s, p.want), 1);
	}
	struct stat wal;
	assert_int_equal(stat(sub(f, "thaw.db-wal"), &wal), 0);
	assert_true(wal.st_size < (8 << 20));

	/* Then stop: everything made durable, and every ticket is durable
	 * again at once after (the store is back to FULL). */
	for (int i = 0; i < 200; i++)
		assert_int_equal(store_version_set_state(f->s, v.id, i % 2 ? "ready" : "building",
							 NULL),
				 0);
	store_sync_stop(f->s);
	assert_int_equal(store_durable(f->s, store_ticket(f->s)), 1);
	assert_int_equal(store_version_set_state(f->s, v.id, "ready", NULL), 0);
	assert_int_equal(store_durable(f->s, store_ticket(f->s)), 1);
	version_clear(&v);
	loop_free(p.l);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_layout_and_schema),
		T(test_reopen_keeps_data),
		T(test_migrations_are_idempotent),
		T(test_future_schema_is_refused),
		T(test_migration_2_adds_the_project),
		T(test_disk_figures_are_kept_per_version_and_cleared_with_its_image),
		T(test_bases_are_listed_once_with_their_versions_by_one_query),
		T(test_absurd_figures_in_the_store_are_taken_as_not_known),
		T(test_second_open_of_a_dir_is_refused),
		T(test_version_add_and_get),
		T(test_version_add_refuses_bad_input),
		T(test_version_find),
		T(test_version_state_and_snapshot),
		T(test_building_version_fails_on_reopen),
		T(test_deploy_validation),
		T(test_current_and_previous_after_three_deploys),
		T(test_migration_4_remembers_the_numbers_given),
		T(test_base_images_are_recorded_by_key_and_keep_their_blob),
		T(test_version_delete_spares_deployed_and_building_versions),
		T(test_versions_beyond_keep_spare_deployments),
		T(test_blob_content_and_sha256),
		T(test_blob_same_content_is_stored_once),
		T(test_blob_abort_leaves_nothing),
		T(test_blob_adopt),
		T(test_tmp_is_emptied_on_open),
		T(test_crash_mid_blob_leaves_nothing_after_reopen),
		T(test_cron_runs_recorded_listed_and_trimmed),
		T(test_secrets_sealed_copied_per_version),
		T(test_sync_thread_makes_changes_durable_off_the_loop),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
