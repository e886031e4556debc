/*
 * Tests for the KV engine (src/state/kv.c) against a real SQLite file in a
 * fresh temporary directory per test. The clock is the tests': every call
 * gets NOW (or a later time) as now_ms. Where a test needs to bend what is
 * on disk (another database, a newer schema) it opens the file with SQLite
 * beside the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/kv.h"

#define NOW 1700000000000LL /* ms: 2023-11-14T22:13:20Z */
#define NOW_S (NOW / 1000)

struct fixture {
	char dir[64];
	char path[128];
	struct kv_store *kv;
	char err[KV_ERR_LEN];
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
	snprintf(f->dir, sizeof f->dir, "/tmp/thaw-test-kv-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/NS.sqlite", f->dir);
	f->kv = kv_open(f->path, f->err, sizeof f->err);
	if (!f->kv)
		fail_msg("kv_open: %s", f->err);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	kv_close(f->kv);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	kv_close(f->kv);
	f->kv = kv_open(f->path, f->err, sizeof f->err);
	if (!f->kv)
		fail_msg("kv_open: %s", f->err);
}

/* --- helpers --- */

static int put_opts(struct fixture *f, const char *key, const char *value,
		    const struct kv_put_options *o, int64_t now)
{
	f->err[0] = 0;
	return kv_put(f->kv, key, strlen(key), value, strlen(value), o, now, f->err, sizeof f->err);
}

static void put_ok(struct fixture *f, const char *key, const char *value)
{
	if (put_opts(f, key, value, NULL, NOW) != 0)
		fail_msg("put %s: %s", key, f->err);
}

/* Assert that key holds value (as text) at now. */
static void expect_held(struct fixture *f, const char *key, const char *value, int64_t now)
{
	struct kv_entry e;
	int r = kv_get(f->kv, key, strlen(key), now, &e, f->err, sizeof f->err);
	if (r != KV_FOUND)
		fail_msg("get %s: %d %s", key, r, r < 0 ? f->err : "missing");
	assert_int_equal(e.value_len, strlen(value));
	assert_memory_equal(e.value, value, e.value_len);
	kv_entry_dispose(&e);
}

static void expect_missing(struct fixture *f, const char *key, int64_t now)
{
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, key, strlen(key), now, &e, f->err, sizeof f->err),
			 KV_MISSING);
	assert_null(e.value);
	assert_null(e.metadata);
}

/* Assert a put is refused with code and exactly message, and changes nothing. */
static void expect_put_refused(struct fixture *f, const char *key, size_t key_len, size_t value_len,
			       const struct kv_put_options *o, int code, const char *message)
{
	struct kv_list before, after;
	assert_int_equal(kv_list(f->kv, NULL, NOW, &before, f->err, sizeof f->err), 0);
	char *value = calloc(1, value_len + 1);
	assert_non_null(value);
	f->err[0] = 0;
	assert_int_equal(kv_put(f->kv, key, key_len, value, value_len, o, NOW, f->err,
				sizeof f->err),
			 code);
	assert_string_equal(f->err, message);
	free(value);
	assert_int_equal(kv_list(f->kv, NULL, NOW, &after, f->err, sizeof f->err), 0);
	assert_int_equal(before.count, after.count);
	kv_list_dispose(&before);
	kv_list_dispose(&after);
}

/* Every key in the namespace at now, page by page with limit, checking
 * each page's shape. Returns the number of keys; names in names[] (caller
 * frees). */
static size_t list_all(struct fixture *f, const char *prefix, int64_t limit, int64_t now,
		       char ***names, size_t *pages)
{
	size_t n = 0, cap = 16;
	*names = malloc(cap * sizeof **names);
	char *cursor = NULL;
	*pages = 0;
	for (;;) {
		struct kv_list_options o = {.prefix = prefix,
					    .prefix_len = prefix ? strlen(prefix) : 0,
					    .limit = limit,
					    .cursor = cursor,
					    .cursor_len = cursor ? strlen(cursor) : 0};
		struct kv_list l;
		if (kv_list(f->kv, &o, now, &l, f->err, sizeof f->err) != 0)
			fail_msg("list: %s", f->err);
		(*pages)++;
		free(cursor);
		cursor = NULL;
		assert_true(l.count <= (size_t)(limit > 0 ? limit : KV_LIST_LIMIT_MAX));
		for (size_t i = 0; i < l.count; i++) {
			if (n == cap) {
				cap *= 2;
				*names = realloc(*names, cap * sizeof **names);
			}
			(*names)[n++] = strdup((const char *)l.keys[i].name);
		}
		if (l.list_complete) {
			assert_null(l.cursor);
			kv_list_dispose(&l);
			return n;
		}
		assert_non_null(l.cursor);
		assert_int_equal(l.count, (size_t)(limit > 0 ? limit : KV_LIST_LIMIT_MAX));
		cursor = strdup(l.cursor);
		kv_list_dispose(&l);
	}
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* --- get, put, delete --- */

static void test_put_then_get_returns_value_metadata_and_expiration(void **state)
{
	struct fixture *f = *state;
	struct kv_put_options o = {.has_expiration_ttl = 1,
				   .expiration_ttl = 3600,
				   .metadata =
					   "{\"a\":[1,2,{\"b\":null}],\"\\u00e9\":\"\\u0000\"}"};
	o.metadata_len = strlen(o.metadata);
	assert_int_equal(put_opts(f, "first-key", "This is the value", &o, NOW), 0);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "first-key", 9, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.value_len, 17);
	assert_memory_equal(e.value, "This is the value", 17);
	assert_string_equal(e.metadata, o.metadata);
	assert_int_equal(e.metadata_len, o.metadata_len);
	assert_int_equal(e.expiration, NOW_S + 3600);
	kv_entry_dispose(&e);
	kv_entry_dispose(&e); /* twice is harmless */

	/* A put replaces value, metadata and expiration together. */
	put_ok(f, "first-key", "second");
	assert_int_equal(kv_get(f->kv, "first-key", 9, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.value_len, 6);
	assert_null(e.metadata);
	assert_int_equal(e.expiration, 0);
	kv_entry_dispose(&e);
}

static void test_get_of_a_missing_key_is_missing_not_an_error(void **state)
{
	struct fixture *f = *state;
	expect_missing(f, "nothing", NOW);
}

static void test_empty_value_round_trips_as_empty_not_missing(void **state)
{
	struct fixture *f = *state;
	put_ok(f, "empty", "");
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "empty", 5, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_non_null(e.value);
	assert_int_equal(e.value_len, 0);
	kv_entry_dispose(&e);
}

static void test_binary_keys_and_values_with_nul_bytes_round_trip(void **state)
{
	struct fixture *f = *state;
	const char key[] = "a\0b\xc3\xa9\0"; /* valid UTF-8 with NULs, 6 bytes */
	const uint8_t value[] = {0, 1, 2, 0xff, 0xfe, 0, 'x', 0x80, 0};
	assert_int_equal(kv_put(f->kv, key, 6, value, sizeof value, NULL, NOW, f->err,
				sizeof f->err),
			 0);
	/* "a" and "a\0b" are other keys. */
	expect_missing(f, "a", NOW);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "a\0b", 3, NOW, &e, f->err, sizeof f->err), KV_MISSING);
	assert_int_equal(kv_get(f->kv, key, 6, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.value_len, sizeof value);
	assert_memory_equal(e.value, value, sizeof value);
	kv_entry_dispose(&e);
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, NULL, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 1);
	assert_int_equal(l.keys[0].name_len, 6);
	assert_memory_equal(l.keys[0].name, key, 6);
	assert_int_equal(l.keys[0].name[6], 0);
	kv_list_dispose(&l);
	assert_int_equal(kv_delete(f->kv, key, 6, f->err, sizeof f->err), 0);
	assert_int_equal(kv_get(f->kv, key, 6, NOW, &e, f->err, sizeof f->err), KV_MISSING);
}

static void test_delete_removes_and_a_missing_key_is_not_an_error(void **state)
{
	struct fixture *f = *state;
	put_ok(f, "k", "v");
	assert_int_equal(kv_delete(f->kv, "k", 1, f->err, sizeof f->err), 0);
	expect_missing(f, "k", NOW);
	assert_int_equal(kv_delete(f->kv, "k", 1, f->err, sizeof f->err), 0);
	assert_int_equal(kv_delete(f->kv, "never", 5, f->err, sizeof f->err), 0);
}

static void test_writes_survive_close_and_reopen(void **state)
{
	struct fixture *f = *state;
	struct kv_put_options o = {.has_expiration = 1,
				   .expiration = NOW_S + 86400,
				   .metadata = "{\"v\":1}",
				   .metadata_len = 7};
	assert_int_equal(put_opts(f, "durable", "yes", &o, NOW), 0);
	put_ok(f, "gone", "x");
	assert_int_equal(kv_delete(f->kv, "gone", 4, f->err, sizeof f->err), 0);
	reopen(f);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "durable", 7, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_memory_equal(e.value, "yes", 3);
	assert_string_equal(e.metadata, "{\"v\":1}");
	assert_int_equal(e.expiration, NOW_S + 86400);
	kv_entry_dispose(&e);
	expect_missing(f, "gone", NOW);

	/* The file is a WAL database with synchronous=FULL, marked as ours. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 0x7468574b);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* --- keys --- */

static void test_key_rules_have_cloudflares_errors_for_every_operation(void **state)
{
	struct fixture *f = *state;
	char big[KV_KEY_MAX + 2];
	memset(big, 'k', sizeof big);
	struct kv_entry e;
	struct {
		const char *key;
		size_t len;
		int code;
		const char *get, *put, *del;
	} cases[] = {
		{"", 0, KV_ERR_TYPE, "Key name cannot be empty.", "Key name cannot be empty.",
		 "Key name cannot be empty."},
		{".", 1, KV_ERR_TYPE, "\".\" is not allowed as a key name.",
		 "\".\" is not allowed as a key name.", "\".\" is not allowed as a key name."},
		{"..", 2, KV_ERR_TYPE, "\"..\" is not allowed as a key name.",
		 "\"..\" is not allowed as a key name.", "\"..\" is not allowed as a key name."},
		{big, KV_KEY_MAX + 1, KV_ERR_REQUEST,
		 "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
		 "KV PUT failed: 414 UTF-8 encoded length of 513 exceeds key length limit of 512.",
		 "KV DELETE failed: 414 UTF-8 encoded length of 513 exceeds key length limit of "
		 "512."},
		{"a\xff", 2, KV_ERR_REQUEST, "KV GET failed: 400 Key name is not valid UTF-8.",
		 "KV PUT failed: 400 Key name is not valid UTF-8.",
		 "KV DELETE failed: 400 Key name is not valid UTF-8."},
		{"\xed\xa0\x80", 3, KV_ERR_REQUEST, /* a surrogate */
		 "KV GET failed: 400 Key name is not valid UTF-8.",
		 "KV PUT failed: 400 Key name is not valid UTF-8.",
		 "KV DELETE failed: 400 Key name is not valid UTF-8."},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(kv_get(f->kv, cases[i].key, cases[i].len, NOW, &e, f->err,
					sizeof f->err),
				 cases[i].code);
		assert_string_equal(f->err, cases[i].get);
		assert_null(e.value);
		expect_put_refused(f, cases[i].key, cases[i].len, 1, NULL, cases[i].code,
				   cases[i].put);
		assert_int_equal(kv_delete(f->kv, cases[i].key, cases[i].len, f->err,
					   sizeof f->err),
				 cases[i].code);
		assert_string_equal(f->err, cases[i].del);
	}
	/* 512 bytes is a key; "..." and ".a" are keys. */
	assert_int_equal(kv_put(f->kv, big, KV_KEY_MAX, "v", 1, NULL, NOW, f->err, sizeof f->err),
			 0);
	assert_int_equal(kv_get(f->kv, big, KV_KEY_MAX, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	kv_entry_dispose(&e);
	put_ok(f, "...", "three dots");
	put_ok(f, ".a", "dot a");
	expect_held(f, "...", "three dots", NOW);
}

/* --- values and metadata --- */

static void test_value_of_25_mib_is_stored_and_one_byte_more_is_refused(void **state)
{
	struct fixture *f = *state;
	size_t n = KV_VALUE_MAX;
	uint8_t *big = malloc(n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < n + 1; i++)
		big[i] = (uint8_t)(i * 2654435761u >> 13);
	assert_int_equal(kv_put(f->kv, "big", 3, big, n, NULL, NOW, f->err, sizeof f->err), 0);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "big", 3, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.value_len, n);
	assert_memory_equal(e.value, big, n);
	kv_entry_dispose(&e);

	assert_int_equal(kv_put(f->kv, "big", 3, big, n + 1, NULL, NOW, f->err, sizeof f->err),
			 KV_ERR_REQUEST);
	assert_string_equal(f->err, "KV PUT failed: 413 Value length of 26214401 exceeds limit of "
				    "26214400.");
	/* The stored value is the first one still. */
	assert_int_equal(kv_get(f->kv, "big", 3, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.value_len, n);
	kv_entry_dispose(&e);
	free(big);
}

static void test_metadata_limit_and_json_rules(void **state)
{
	struct fixture *f = *state;
	char meta[KV_METADATA_MAX + 2];
	/* "xxx...x" as a JSON string of exactly 1024 bytes */
	meta[0] = '"';
	memset(meta + 1, 'x', KV_METADATA_MAX - 2);
	meta[KV_METADATA_MAX - 1] = '"';
	meta[KV_METADATA_MAX] = 0;
	struct kv_put_options o = {.metadata = meta, .metadata_len = KV_METADATA_MAX};
	assert_int_equal(put_opts(f, "m", "v", &o, NOW), 0);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "m", 1, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.metadata_len, KV_METADATA_MAX);
	assert_memory_equal(e.metadata, meta, KV_METADATA_MAX);
	kv_entry_dispose(&e);

	memmove(meta + 2, meta + 1, KV_METADATA_MAX);
	meta[1] = 'x';
	o.metadata_len = KV_METADATA_MAX + 1;
	expect_put_refused(f, "m2", 2, 1, &o, KV_ERR_REQUEST,
			   "KV PUT failed: 413 Metadata length of 1025 exceeds limit of 1024.");

	const char *bad[] = {"{", "{\"a\":}", "NaN", "'x'", "[1,]", "\"\xff\"", "1 2", "", "{} x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct kv_put_options b = {.metadata = bad[i], .metadata_len = strlen(bad[i])};
		expect_put_refused(f, "m3", 2, 1, &b, KV_ERR_REQUEST,
				   "KV PUT failed: 400 Metadata is not valid JSON.");
	}
	/* Any JSON value is metadata, including numbers JS writes out in full. */
	const char *good[] = {"null", "0", "\"s\"", "[]", "100000000000000000000", " {\"a\" : 1} "};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		struct kv_put_options g = {.metadata = good[i], .metadata_len = strlen(good[i])};
		assert_int_equal(put_opts(f, "m4", "v", &g, NOW), 0);
		assert_int_equal(kv_get(f->kv, "m4", 2, NOW, &e, f->err, sizeof f->err), KV_FOUND);
		assert_string_equal(e.metadata, good[i]); /* as given, byte for byte */
		kv_entry_dispose(&e);
	}
}

/* --- expiration --- */

static void test_expiration_ttl_rules_have_cloudflares_errors(void **state)
{
	struct fixture *f = *state;
	struct {
		int64_t ttl;
		const char *message;
	} cases[] = {
		{0,
		 "KV PUT failed: 400 Invalid expiration_ttl of 0. Please specify integer greater "
		 "than 0."},
		{-60, "KV PUT failed: 400 Invalid expiration_ttl of -60. Please specify integer "
		      "greater than 0."},
		{30, "KV PUT failed: 400 Invalid expiration_ttl of 30. Expiration TTL must be at "
		     "least 60."},
		{59, "KV PUT failed: 400 Invalid expiration_ttl of 59. Expiration TTL must be at "
		     "least 60."},
		{INT64_MAX, "KV PUT failed: 400 Invalid expiration_ttl of 9223372036854775807. "
			    "Expiration TTL is too large."},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kv_put_options o = {.has_expiration_ttl = 1, .expiration_ttl = cases[i].ttl};
		expect_put_refused(f, "t", 1, 1, &o, KV_ERR_REQUEST, cases[i].message);
	}
	struct kv_put_options o = {.has_expiration_ttl = 1, .expiration_ttl = 60};
	assert_int_equal(put_opts(f, "t", "v", &o, NOW + 999), 0);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "t", 1, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.expiration, NOW_S + 60); /* now in whole seconds, floored */
	kv_entry_dispose(&e);
}

static void test_expiration_rules_have_cloudflares_errors(void **state)
{
	struct fixture *f = *state;
	struct {
		int64_t expiration;
		const char *message;
	} cases[] = {
		{0,
		 "KV PUT failed: 400 Invalid expiration of 0. Please specify integer greater than "
		 "the current number of seconds since the UNIX epoch."},
		{NOW_S,
		 "KV PUT failed: 400 Invalid expiration of 1700000000. Please specify integer "
		 "greater than the current number of seconds since the UNIX epoch."},
		{NOW_S + 1, "KV PUT failed: 400 Invalid expiration of 1700000001. Expiration times "
			    "must be at least 60 seconds in the future."},
		{NOW_S + 59,
		 "KV PUT failed: 400 Invalid expiration of 1700000059. Expiration times "
		 "must be at least 60 seconds in the future."},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct kv_put_options o = {.has_expiration = 1, .expiration = cases[i].expiration};
		expect_put_refused(f, "x", 1, 1, &o, KV_ERR_REQUEST, cases[i].message);
	}
	struct kv_put_options o = {.has_expiration = 1, .expiration = NOW_S + 60};
	assert_int_equal(put_opts(f, "x", "v", &o, NOW), 0);
	expect_held(f, "x", "v", NOW);
}

static void test_expiration_ttl_wins_when_both_are_given(void **state)
{
	struct fixture *f = *state;
	/* The expiration is ignored, even one that alone would be refused. */
	struct kv_put_options o = {.has_expiration = 1,
				   .expiration = 5,
				   .has_expiration_ttl = 1,
				   .expiration_ttl = 120};
	assert_int_equal(put_opts(f, "both", "v", &o, NOW), 0);
	struct kv_entry e;
	assert_int_equal(kv_get(f->kv, "both", 4, NOW, &e, f->err, sizeof f->err), KV_FOUND);
	assert_int_equal(e.expiration, NOW_S + 120);
	kv_entry_dispose(&e);
	/* ...but a bad TTL is refused whatever the expiration. */
	o.expiration = NOW_S + 1000;
	o.expiration_ttl = 10;
	expect_put_refused(f, "both2", 5, 1, &o, KV_ERR_REQUEST,
			   "KV PUT failed: 400 Invalid expiration_ttl of 10. Expiration TTL must "
			   "be at least 60.");
}

static void test_rules_are_checked_in_cloudflares_order(void **state)
{
	struct fixture *f = *state;
	/* key before expiration before metadata before value size */
	struct kv_put_options o = {.has_expiration_ttl = 1,
				   .expiration_ttl = 1,
				   .metadata = "{",
				   .metadata_len = 1};
	expect_put_refused(f, "", 0, KV_VALUE_MAX + 1, &o, KV_ERR_TYPE,
			   "Key name cannot be empty.");
	expect_put_refused(f, "k", 1, KV_VALUE_MAX + 1, &o, KV_ERR_REQUEST,
			   "KV PUT failed: 400 Invalid expiration_ttl of 1. Expiration TTL must be "
			   "at least 60.");
	o.expiration_ttl = 60;
	expect_put_refused(f, "k", 1, KV_VALUE_MAX + 1, &o, KV_ERR_REQUEST,
			   "KV PUT failed: 400 Metadata is not valid JSON.");
}

static void test_expired_keys_are_missing_on_read_and_list(void **state)
{
	struct fixture *f = *state;
	struct kv_put_options o = {.has_expiration_ttl = 1, .expiration_ttl = 60};
	assert_int_equal(put_opts(f, "short", "v", &o, NOW), 0);
	put_ok(f, "forever", "v");
	int64_t at = (NOW_S + 60) * 1000; /* the expiration, in ms */
	expect_held(f, "short", "v", at - 1);
	expect_missing(f, "short", at);
	expect_missing(f, "short", at + 1000000);
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, NULL, at - 1, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.keys[1].expiration, NOW_S + 60);
	assert_int_equal(l.keys[0].expiration, 0);
	kv_list_dispose(&l);
	assert_int_equal(kv_list(f->kv, NULL, at, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 1);
	assert_string_equal((const char *)l.keys[0].name, "forever");
	kv_list_dispose(&l);
	/* A new put revives the key. */
	assert_int_equal(put_opts(f, "short", "again", NULL, at), 0);
	expect_held(f, "short", "again", at + 1000000);
}

static void test_sweep_deletes_expired_keys_in_bounded_batches(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 10; i++) {
		char key[16];
		snprintf(key, sizeof key, "e%d", i);
		struct kv_put_options o = {.has_expiration_ttl = 1, .expiration_ttl = 60 + i};
		assert_int_equal(put_opts(f, key, "v", &o, NOW), 0);
	}
	put_ok(f, "keep", "v");
	int deleted = -1;
	/* Nothing has expired yet. */
	assert_int_equal(kv_sweep(f->kv, NOW, 3, &deleted, f->err, sizeof f->err), 0);
	assert_int_equal(deleted, 0);
	int64_t later = (NOW_S + 100) * 1000;
	int batches[] = {3, 3, 3, 1, 0};
	for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
		assert_int_equal(kv_sweep(f->kv, later, 3, &deleted, f->err, sizeof f->err), 0);
		assert_int_equal(deleted, batches[i]);
	}
	/* The rows are gone (not just hidden): a clock turned back shows none. */
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, NULL, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 1);
	assert_string_equal((const char *)l.keys[0].name, "keep");
	kv_list_dispose(&l);
	/* The longest expired go first. */
	for (int i = 0; i < 4; i++) {
		char key[16];
		snprintf(key, sizeof key, "s%d", i);
		struct kv_put_options o = {.has_expiration_ttl = 1, .expiration_ttl = 100 - i};
		assert_int_equal(put_opts(f, key, "v", &o, NOW), 0);
	}
	assert_int_equal(kv_sweep(f->kv, later, 2, &deleted, f->err, sizeof f->err), 0);
	assert_int_equal(deleted, 2);
	expect_missing(f, "s3", NOW);
	expect_missing(f, "s2", NOW);
	expect_held(f, "s1", "v", NOW);
	assert_int_equal(kv_sweep(f->kv, later, 0, &deleted, f->err, sizeof f->err), KV_ERR);
}

/* --- list --- */

static void test_list_pages_through_2500_keys_each_once_in_order(void **state)
{
	struct fixture *f = *state;
	/* Inserted in a scrambled order. */
	for (int i = 0; i < 2500; i++) {
		int k = (i * 7919) % 2500;
		char key[32], value[32];
		snprintf(key, sizeof key, "key-%05d", k);
		snprintf(value, sizeof value, "%d", k);
		put_ok(f, key, value);
	}
	int64_t limits[] = {0, 1000, 999, 7};
	size_t expect_pages[] = {3, 3, 3, 358};
	for (size_t t = 0; t < sizeof limits / sizeof limits[0]; t++) {
		char **names;
		size_t pages;
		size_t n = list_all(f, NULL, limits[t], NOW, &names, &pages);
		assert_int_equal(n, 2500);
		assert_int_equal(pages, expect_pages[t]);
		for (size_t i = 0; i < n; i++) {
			char key[32];
			snprintf(key, sizeof key, "key-%05zu", i);
			assert_string_equal(names[i], key);
		}
		free_names(names, n);
	}
}

static void test_list_with_prefix_returns_only_matching_keys(void **state)
{
	struct fixture *f = *state;
	const char *keys[] = {"a",
			      "ab",
			      "abc",
			      "abd",
			      "ac",
			      "b",
			      "user:1",
			      "user:2",
			      "user;",
			      "\xc3\xa9",
			      "\xc3\xa9t\xc3\xa9",
			      "\xf4\x8f\xbf\xbf",
			      "\xf4\x8f\xbf\xbfz"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		put_ok(f, keys[i], "v");
	struct {
		const char *prefix;
		int64_t limit;
		size_t count;
		const char *first, *last;
	} cases[] = {
		{"ab", 0, 3, "ab", "abd"},
		{"ab", 1, 3, "ab", "abd"},
		{"user:", 0, 2, "user:1", "user:2"},
		{"\xc3\xa9", 0, 2, "\xc3\xa9", "\xc3\xa9t\xc3\xa9"},
		{"\xf4\x8f\xbf\xbf", 1, 2, "\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbfz"},
		{"zzz", 0, 0, NULL, NULL},
		{"", 0, 13, "a", "\xf4\x8f\xbf\xbfz"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char **names;
		size_t pages;
		size_t n = list_all(f, cases[i].prefix, cases[i].limit, NOW, &names, &pages);
		assert_int_equal(n, cases[i].count);
		if (n) {
			assert_string_equal(names[0], cases[i].first);
			assert_string_equal(names[n - 1], cases[i].last);
		}
		free_names(names, n);
	}
	/* The prefix "\xff" (no key can start with it) and one of 0xff bytes
	 * only: an empty page, not every key. */
	struct kv_list_options o = {.prefix = "\xff\xff", .prefix_len = 2};
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 0);
	assert_true(l.list_complete);
	kv_list_dispose(&l);
}

static void test_list_orders_keys_by_bytes(void **state)
{
	struct fixture *f = *state;
	const char *in[] = {"b", "a", "B", "aa", "a\x7f", "\xc3\xa9", "A", "a b", "0"};
	const char *order[] = {"0", "A", "B", "a", "a b", "aa", "a\x7f", "b", "\xc3\xa9"};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
		put_ok(f, in[i], "v");
	char **names;
	size_t pages;
	size_t n = list_all(f, NULL, 2, NOW, &names, &pages);
	assert_int_equal(n, sizeof order / sizeof order[0]);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(names[i], order[i]);
	free_names(names, n);
}

static void test_list_returns_metadata_and_expiration(void **state)
{
	struct fixture *f = *state;
	struct kv_put_options o = {.has_expiration = 1,
				   .expiration = NOW_S + 600,
				   .metadata = "{\"someMetadataKey\":\"someMetadataValue\"}"};
	o.metadata_len = strlen(o.metadata);
	assert_int_equal(put_opts(f, "with", "v", &o, NOW), 0);
	put_ok(f, "without", "v");
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, NULL, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 2);
	assert_true(l.list_complete);
	assert_null(l.cursor);
	assert_string_equal(l.keys[0].metadata, o.metadata);
	assert_int_equal(l.keys[0].metadata_len, o.metadata_len);
	assert_int_equal(l.keys[0].expiration, NOW_S + 600);
	assert_null(l.keys[1].metadata);
	assert_int_equal(l.keys[1].expiration, 0);
	kv_list_dispose(&l);
	kv_list_dispose(&l);
}

static void test_list_limit_and_prefix_rules_have_cloudflares_errors(void **state)
{
	struct fixture *f = *state;
	struct kv_list l;
	struct kv_list_options o = {.limit = 1001};
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), KV_ERR_REQUEST);
	assert_string_equal(f->err, "KV GET failed: 400 Invalid key_count_limit of 1001. Please "
				    "specify an integer less than 1000.");
	assert_null(l.keys);
	/* 0 and less mean "not given", as workerd does not send them. */
	for (int i = 0; i < 30; i++) {
		char key[8];
		snprintf(key, sizeof key, "k%02d", i);
		put_ok(f, key, "v");
	}
	int64_t defaults[] = {0, -1, INT64_MIN};
	for (size_t i = 0; i < 3; i++) {
		o.limit = defaults[i];
		assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
		assert_int_equal(l.count, 30);
		kv_list_dispose(&l);
	}
	char prefix[KV_KEY_MAX + 1];
	memset(prefix, 'p', sizeof prefix);
	o = (struct kv_list_options){.prefix = prefix, .prefix_len = KV_KEY_MAX + 1};
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), KV_ERR_REQUEST);
	assert_string_equal(f->err, "KV GET failed: 414 UTF-8 encoded length of 513 exceeds key "
				    "length limit of 512.");
	o.prefix_len = KV_KEY_MAX;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	kv_list_dispose(&l);
}

/* The first page's cursor of a namespace with 3 keys, listed 1 at a time. */
static char *first_cursor(struct fixture *f)
{
	struct kv_list_options o = {.limit = 1};
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	assert_false(l.list_complete);
	char *c = strdup(l.cursor);
	kv_list_dispose(&l);
	return c;
}

static void expect_invalid_cursor(struct fixture *f, const char *cursor, size_t len)
{
	struct kv_list_options o = {.cursor = cursor, .cursor_len = len};
	struct kv_list l;
	f->err[0] = 0;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), KV_ERR_REQUEST);
	assert_string_equal(f->err, "KV GET failed: 400 Invalid cursor.");
	assert_null(l.keys);
}

static void test_malformed_or_foreign_cursors_are_refused(void **state)
{
	struct fixture *f = *state;
	put_ok(f, "a", "1");
	put_ok(f, "b", "2");
	put_ok(f, "c", "3");
	char *good = first_cursor(f);
	size_t n = strlen(good);

	/* The good one continues after "a". */
	struct kv_list_options o = {.cursor = good, .cursor_len = n};
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 2);
	assert_string_equal((const char *)l.keys[0].name, "b");
	kv_list_dispose(&l);

	expect_invalid_cursor(f, "garbage!", 8);
	expect_invalid_cursor(f, "AAAA", 4);
	expect_invalid_cursor(f, "A", 1);
	expect_invalid_cursor(f, good, n - 1); /* truncated */
	char *tampered = strdup(good);
	for (size_t i = 0; i < n; i++) { /* every single-character change */
		char was = tampered[i];
		tampered[i] = was == 'A' ? 'B' : 'A';
		expect_invalid_cursor(f, tampered, n);
		tampered[i] = was;
	}
	free(tampered);
	char *longer = malloc(n + 2);
	memcpy(longer, good, n);
	memcpy(longer + n, "AA", 2);
	expect_invalid_cursor(f, longer, n + 2);
	free(longer);
	char huge[KV_CURSOR_MAX + 10];
	memset(huge, 'A', sizeof huge);
	expect_invalid_cursor(f, huge, sizeof huge);
	expect_invalid_cursor(f, "a\0b", 3);

	/* A cursor from another namespace, for the same key, is not this one's. */
	char other_path[160];
	snprintf(other_path, sizeof other_path, "%s/OTHER.sqlite", f->dir);
	struct kv_store *mine = f->kv;
	f->kv = kv_open(other_path, f->err, sizeof f->err);
	assert_non_null(f->kv);
	put_ok(f, "a", "1");
	put_ok(f, "b", "2");
	char *foreign = first_cursor(f);
	expect_invalid_cursor(f, good, n);
	kv_close(f->kv);
	f->kv = mine;
	expect_invalid_cursor(f, foreign, strlen(foreign));
	free(foreign);

	/* A cursor stays valid across a reopen. */
	reopen(f);
	o = (struct kv_list_options){.cursor = good, .cursor_len = n};
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 2);
	kv_list_dispose(&l);
	free(good);
}

static void test_cursor_survives_its_key_being_deleted(void **state)
{
	struct fixture *f = *state;
	put_ok(f, "a", "1");
	put_ok(f, "b", "2");
	put_ok(f, "c", "3");
	char *c = first_cursor(f);
	assert_int_equal(kv_delete(f->kv, "a", 1, f->err, sizeof f->err), 0);
	put_ok(f, "a0", "new, after the cursor");
	struct kv_list_options o = {.cursor = c, .cursor_len = strlen(c)};
	struct kv_list l;
	assert_int_equal(kv_list(f->kv, &o, NOW, &l, f->err, sizeof f->err), 0);
	assert_int_equal(l.count, 3);
	assert_string_equal((const char *)l.keys[0].name, "a0");
	kv_list_dispose(&l);
	free(c);
}

/* --- files --- */

static void test_open_refuses_another_database_and_a_newer_schema(void **state)
{
	struct fixture *f = *state;
	char path[160];
	snprintf(path, sizeof path, "%s/other.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(kv_open(path, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "is another SQLite database, not a thaw KV namespace"));

	kv_close(f->kv);
	f->kv = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(kv_open(f->path, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "newer than this thaw knows"));

	snprintf(path, sizeof path, "%s/no/such/dir/ns.sqlite", f->dir);
	assert_null(kv_open(path, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "cannot open"));
	kv_close(NULL);
}

/* --- concurrency --- */

struct writer {
	const char *path;
	int id;
	int n;
	int failures;
	char err[KV_ERR_LEN];
};

/* Open a handle of its own, put n keys and read each back at once. */
static void *writer_run(void *arg)
{
	struct writer *w = arg;
	struct kv_store *kv = kv_open(w->path, w->err, sizeof w->err);
	if (!kv) {
		w->failures = w->n;
		return NULL;
	}
	for (int i = 0; i < w->n; i++) {
		char key[32], value[32];
		snprintf(key, sizeof key, "w%d-%04d", w->id, i);
		snprintf(value, sizeof value, "value %d %d", w->id, i);
		struct kv_entry e;
		if (kv_put(kv, key, strlen(key), value, strlen(value), NULL, NOW, w->err,
			   sizeof w->err) != 0 ||
		    kv_get(kv, key, strlen(key), NOW, &e, w->err, sizeof w->err) != KV_FOUND) {
			w->failures++;
			continue;
		}
		if (e.value_len != strlen(value) || memcmp(e.value, value, e.value_len))
			w->failures++;
		kv_entry_dispose(&e);
		if (i % 50 == 0) { /* and list while the others write */
			struct kv_list l;
			if (kv_list(kv, NULL, NOW, &l, w->err, sizeof w->err) != 0)
				w->failures++;
			kv_list_dispose(&l);
		}
	}
	kv_close(kv);
	return NULL;
}

static void test_two_threads_with_two_handles_on_one_file(void **state)
{
	struct fixture *f = *state;
	struct writer w[2] = {{.path = f->path, .id = 0, .n = 200},
			      {.path = f->path, .id = 1, .n = 200}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer_run, &w[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		if (w[i].failures)
			fail_msg("writer %d: %d failures, last: %s", i, w[i].failures, w[i].err);
	}
	char **names;
	size_t pages;
	size_t n = list_all(f, NULL, 0, NOW, &names, &pages);
	assert_int_equal(n, 400);
	free_names(names, n);
}

static void test_a_second_process_writes_while_this_one_does(void **state)
{
	struct fixture *f = *state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child: its own handle, as `thaw kv` beside a host. */
		struct writer w = {.path = f->path, .id = 1, .n = 150};
		writer_run(&w);
		_exit(w.failures ? 1 : 0);
	}
	struct writer w = {.path = f->path, .id = 0, .n = 150};
	writer_run(&w);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(w.failures, 0);
	/* This process's long-open handle sees the child's writes. */
	expect_held(f, "w1-0149", "value 1 149", NOW);
	char **names;
	size_t pages;
	size_t n = list_all(f, "w", 0, NOW, &names, &pages);
	assert_int_equal(n, 300);
	free_names(names, n);
}

static void test_processes_opening_a_new_file_at_once_all_succeed(void **state)
{
	struct fixture *f = *state;
	for (int round = 0; round < 5; round++) {
		char path[160];
		snprintf(path, sizeof path, "%s/new-%d.sqlite", f->dir, round);
		pid_t pids[4];
		for (int i = 0; i < 4; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				char err[KV_ERR_LEN];
				struct kv_store *kv = kv_open(path, err, sizeof err);
				char key[8];
				snprintf(key, sizeof key, "p%d", i);
				int ok = kv && kv_put(kv, key, 2, "v", 1, NULL, NOW, err,
						      sizeof err) == 0;
				kv_close(kv);
				_exit(ok ? 0 : 1);
			}
		}
		for (int i = 0; i < 4; i++) {
			int status;
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		}
		struct kv_store *kv = kv_open(path, f->err, sizeof f->err);
		assert_non_null(kv);
		struct kv_list l;
		assert_int_equal(kv_list(kv, NULL, NOW, &l, f->err, sizeof f->err), 0);
		assert_int_equal(l.count, 4);
		kv_list_dispose(&l);
		kv_close(kv);
	}
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_put_then_get_returns_value_metadata_and_expiration),
		T(test_get_of_a_missing_key_is_missing_not_an_error),
		T(test_empty_value_round_trips_as_empty_not_missing),
		T(test_binary_keys_and_values_with_nul_bytes_round_trip),
		T(test_delete_removes_and_a_missing_key_is_not_an_error),
		T(test_writes_survive_close_and_reopen),
		T(test_key_rules_have_cloudflares_errors_for_every_operation),
		T(test_value_of_25_mib_is_stored_and_one_byte_more_is_refused),
		T(test_metadata_limit_and_json_rules),
		T(test_expiration_ttl_rules_have_cloudflares_errors),
		T(test_expiration_rules_have_cloudflares_errors),
		T(test_expiration_ttl_wins_when_both_are_given),
		T(test_rules_are_checked_in_cloudflares_order),
		T(test_expired_keys_are_missing_on_read_and_list),
		T(test_sweep_deletes_expired_keys_in_bounded_batches),
		T(test_list_pages_through_2500_keys_each_once_in_order),
		T(test_list_with_prefix_returns_only_matching_keys),
		T(test_list_orders_keys_by_bytes),
		T(test_list_returns_metadata_and_expiration),
		T(test_list_limit_and_prefix_rules_have_cloudflares_errors),
		T(test_malformed_or_foreign_cursors_are_refused),
		T(test_cursor_survives_its_key_being_deleted),
		T(test_open_refuses_another_database_and_a_newer_schema),
		T(test_two_threads_with_two_handles_on_one_file),
		T(test_a_second_process_writes_while_this_one_does),
		T(test_processes_opening_a_new_file_at_once_all_succeed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
