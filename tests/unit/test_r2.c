/*
 * Tests for the R2 engine (src/state/r2.c, r2_args.c) against a real
 * bucket in a fresh temporary directory per test: bodies are given as
 * files, as the host's spool gives them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/r2.h"

#define NOW 1700000000000LL

struct fixture {
	char dir[64], db[128], bucket[128];
	struct r2_store *st;
	struct r2_err err;
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
	snprintf(f->dir, sizeof f->dir, "/tmp/thaw-test-r2-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof f->db, "%s/b.sqlite", f->dir);
	snprintf(f->bucket, sizeof f->bucket, "%s/b", f->dir);
	f->st = r2_open(f->db, f->bucket, &f->err);
	if (!f->st)
		fail_msg("r2_open: %s", f->err.text);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	r2_close(f->st);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* A body file holding s (len n), as the host's spool makes one. */
static int body(const struct fixture *f, const void *s, size_t n)
{
	char path[160];
	snprintf(path, sizeof path, "%s/body-XXXXXX", f->dir);
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, s, n), (ssize_t)n);
	return fd;
}

static int put(struct fixture *f, const char *key, const char *value,
	       const struct r2_put_options *opt, struct r2_object *out)
{
	int fd = body(f, value, strlen(value));
	int rc = r2_put(f->st, (const uint8_t *)key, strlen(key), fd, strlen(value), opt, NOW, out,
			&f->err);
	close(fd);
	return rc;
}

/* fsync, wrapped (tests/CMakeLists.txt: --wrap=fsync): the paths of the
 * directories fsynced while `synced` records. */
int __real_fsync(int fd);
int __wrap_fsync(int fd);
static char synced[4096];
static int recording;

int __wrap_fsync(int fd)
{
	struct stat sb;
	if (recording && fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		char proc[64], path[1024];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(proc, path, sizeof path - 1);
		if (n > 0) {
			path[n] = 0;
			size_t used = strlen(synced);
			snprintf(synced + used, sizeof synced - used, "%s\n", path);
		}
	}
	return __real_fsync(fd);
}

/* Was dir (a path, exactly) fsynced while recording? */
static int was_synced(const char *dir)
{
	char line[1100];
	snprintf(line, sizeof line, "%s\n", dir);
	for (const char *p = synced; (p = strstr(p, line)); p++)
		if (p == synced || p[-1] == '\n')
			return 1;
	return 0;
}

static int count_blobs(const struct fixture *f)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "find %s/blobs -type f | wc -l", f->bucket);
	FILE *p = popen(cmd, "r");
	int n = -1;
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void read_range(int fd, uint64_t off, uint64_t len, char *out)
{
	assert_int_equal(pread(fd, out, len, (off_t)off), (ssize_t)len);
	out[len] = 0;
}

static void test_put_then_get_and_head_give_the_bytes_and_metadata(void **state)
{
	struct fixture *f = *state;
	struct r2_object o, g;
	struct r2_put_options opt = {.http_metadata = "{\"contentType\":\"text/plain\"}",
				     .custom_metadata = "{\"a\":\"b\"}"};
	assert_int_equal(put(f, "dir/k", "hello, world", &opt, &o), R2_OK);
	assert_string_equal(o.etag, "e4d7f1b4ed2e42d15898f4b27b019da4"); /* md5 */
	assert_int_equal(o.size, 12);
	int fd;
	uint64_t off, len;
	assert_int_equal(r2_get(f->st, (const uint8_t *)"dir/k", 5, NULL, NULL, &g, &fd, &off, &len,
				&f->err),
			 R2_OK);
	char buf[64];
	read_range(fd, off, len, buf);
	assert_string_equal(buf, "hello, world");
	assert_string_equal(g.http_metadata, "{\"contentType\":\"text/plain\"}");
	assert_string_equal(g.custom_metadata, "{\"a\":\"b\"}");
	assert_string_equal(g.version, o.version);
	close(fd);
	r2_object_dispose(&g);
	assert_int_equal(r2_head(f->st, (const uint8_t *)"nope", 4, &g, &f->err), R2_NOT_FOUND);
	r2_object_dispose(&o);
}

static void test_equal_contents_share_one_blob_and_garbage_goes(void **state)
{
	struct fixture *f = *state;
	struct r2_object o;
	assert_int_equal(put(f, "a", "same", NULL, &o), R2_OK);
	r2_object_dispose(&o);
	assert_int_equal(put(f, "b", "same", NULL, &o), R2_OK);
	r2_object_dispose(&o);
	assert_int_equal(count_blobs(f), 1);
	assert_int_equal(put(f, "a", "other", NULL, &o), R2_OK); /* b still names "same" */
	r2_object_dispose(&o);
	assert_int_equal(count_blobs(f), 2);
	const uint8_t *keys[] = {(const uint8_t *)"a", (const uint8_t *)"b"};
	size_t lens[] = {1, 1};
	assert_int_equal(r2_delete(f->st, keys, lens, 2, &f->err), R2_OK);
	assert_int_equal(count_blobs(f), 0);
	/* A blob no row names (a crash between link and commit) goes at the next open. */
	char stray[256];
	snprintf(stray, sizeof stray, "%s/blobs/ab", f->bucket);
	mkdir(stray, 0700);
	snprintf(stray, sizeof stray, "%s/blobs/ab/%064d", f->bucket, 0);
	close(open(stray, O_CREAT | O_WRONLY, 0600));
	r2_close(f->st);
	f->st = r2_open(f->db, f->bucket, &f->err);
	assert_non_null(f->st);
	assert_int_equal(access(stray, F_OK), -1);
}

static void test_ranges_resolve_as_cloudflare_does(void **state)
{
	(void)state;
	struct r2_range r;
	struct r2_err err;
	uint64_t off, len;
	assert_int_equal(r2_range_parse("{\"offset\":2,\"length\":100}", 25, &r, &err), R2_OK);
	assert_int_equal(r2_range_resolve(&r, 10, &off, &len, &err), R2_OK);
	assert_int_equal(off, 2);
	assert_int_equal(len, 8); /* clamped */
	assert_int_equal(r2_range_parse("{\"suffix\":3}", 12, &r, &err), R2_OK);
	assert_int_equal(r2_range_resolve(&r, 10, &off, &len, &err), R2_OK);
	assert_int_equal(off, 7);
	assert_int_equal(len, 3);
	assert_int_equal(r2_range_parse("{\"offset\":11}", 13, &r, &err), R2_OK);
	assert_int_equal(r2_range_resolve(&r, 10, &off, &len, &err), R2_REFUSED);
	assert_int_equal(err.code, R2_E_INVALID_RANGE);
	assert_int_equal(r2_range_parse("{\"header\":\"bytes=1-2\"}", 22, &r, &err), R2_OK);
	assert_int_equal(r2_range_resolve(&r, 10, &off, &len, &err), R2_OK);
	assert_int_equal(off, 1);
	assert_int_equal(len, 2);
	/* Several ranges in a header: the whole object. */
	assert_int_equal(r2_range_parse("{\"header\":\"bytes=1-2,4-5\"}", 26, &r, &err), R2_OK);
	assert_false(r.present);
	assert_int_equal(r2_range_parse("{\"offset\":-1}", 13, &r, &err), R2_REFUSED);
	assert_int_equal(r2_range_parse("[1]", 3, &r, &err), R2_REFUSED);
}

static void test_conditions_follow_rfc_9110(void **state)
{
	(void)state;
	struct r2_conditional c;
	struct r2_err err;
	const char *j = "{\"etagMatches\":\"\\\"abc\\\"\"}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_true(r2_conditional_holds(&c, 1, "abc", NOW));
	assert_false(r2_conditional_holds(&c, 1, "abd", NOW));
	assert_false(r2_conditional_holds(&c, 0, "", 0)); /* If-Match on nothing */
	j = "{\"etagDoesNotMatch\":[\"*\"]}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_false(r2_conditional_holds(&c, 1, "abc", NOW));
	assert_true(r2_conditional_holds(&c, 0, "", 0));
	j = "{\"uploadedAfter\":1700000000500,\"secondsGranularity\":true}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_false(r2_conditional_holds(&c, 1, "abc", NOW + 900)); /* same second */
	assert_true(r2_conditional_holds(&c, 1, "abc", NOW + 1000));
	j = "{\"etagMatches\":5}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_REFUSED);
	j = "{\"nope\":1}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_REFUSED);
}

/* A new directory's entry is fsynced into its parent before anything under
 * it is committed: a crash cannot keep a row whose blob's directory is lost. */
static void test_new_directories_are_fsynced_into_their_parents(void **state)
{
	struct fixture *f = *state;
	char bucket[160], db[160], path[200];
	snprintf(bucket, sizeof bucket, "%s/fresh/bucket", f->dir);
	snprintf(db, sizeof db, "%s/fresh.sqlite", f->dir);
	synced[0] = 0;
	recording = 1;
	struct r2_store *st = r2_open(db, bucket, &f->err);
	assert_non_null(st);
	assert_true(was_synced(f->dir)); /* fresh/ went into it */
	snprintf(path, sizeof path, "%s/fresh", f->dir);
	assert_true(was_synced(path));   /* bucket/ */
	assert_true(was_synced(bucket)); /* bucket/blobs and bucket/tmp */
	synced[0] = 0;
	struct r2_object o;
	int fd = body(f, "hello", 5);
	assert_int_equal(r2_put(st, (const uint8_t *)"k", 1, fd, 5, NULL, NOW, &o, &f->err), R2_OK);
	close(fd);
	recording = 0;
	r2_object_dispose(&o);
	snprintf(path, sizeof path, "%s/blobs", bucket);
	assert_true(was_synced(path)); /* blobs/2c (sha256 of "hello") went into it */
	snprintf(path, sizeof path, "%s/blobs/2c", bucket);
	assert_true(was_synced(path)); /* the blob went into blobs/2c */
	r2_close(st);
}

static void test_conditions_on_extreme_dates_neither_overflow_nor_invert(void **state)
{
	(void)state;
	struct r2_err err;
	struct r2_conditional c;
	/* Before the earliest date: nothing was uploaded before it. */
	const char *j = "{\"uploadedBefore\": -9223372036854775808, \"secondsGranularity\": true}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_false(r2_conditional_holds(&c, 1, "abc", NOW));
	assert_false(r2_conditional_holds(&c, 1, "abc", -NOW));
	/* Before the latest: everything was. */
	j = "{\"uploadedBefore\": 9223372036854775807, \"secondsGranularity\": true}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_true(r2_conditional_holds(&c, 1, "abc", NOW));
	assert_true(r2_conditional_holds(&c, 1, "abc", INT64_MIN)); /* a corrupt row's time */
	/* Modified after the latest: nothing was; after the earliest: everything. */
	j = "{\"uploadedAfter\": 9223372036854775806}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_false(r2_conditional_holds(&c, 1, "abc", NOW));
	j = "{\"uploadedAfter\": -9223372036854775807, \"secondsGranularity\": true}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &c, &err), R2_OK);
	assert_true(r2_conditional_holds(&c, 1, "abc", NOW));
	assert_true(r2_conditional_holds(&c, 1, "abc", -NOW));
}

static void test_put_only_if_and_digests(void **state)
{
	struct fixture *f = *state;
	struct r2_object o;
	struct r2_conditional none_match;
	const char *j = "{\"etagDoesNotMatch\":\"*\"}";
	assert_int_equal(r2_conditional_parse(j, strlen(j), &none_match, &f->err), R2_OK);
	struct r2_put_options opt = {.only_if = &none_match};
	assert_int_equal(put(f, "k", "v1", &opt, &o), R2_OK);
	r2_object_dispose(&o);
	assert_int_equal(put(f, "k", "v2", &opt, &o), R2_PRECONDITION);
	struct r2_put_options bad = {.sha256 = "00"};
	assert_int_equal(put(f, "k", "v3", &bad, &o), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_BAD_DIGEST);
	struct r2_put_options good = {
		.md5 = "E4D7F1B4ED2E42D15898F4B27B019DA4"}; /* hex in either case */
	assert_int_equal(put(f, "k", "hello, world", &good, &o), R2_OK);
	r2_object_dispose(&o);
	assert_int_equal(count_blobs(f), 1); /* v1's blob went with its row */
}

static void test_keys_and_metadata_are_bounded(void **state)
{
	struct fixture *f = *state;
	struct r2_object o;
	char key[R2_KEY_MAX + 2];
	memset(key, 'k', sizeof key - 1);
	key[sizeof key - 1] = 0;
	assert_int_equal(put(f, key, "x", NULL, &o), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_INVALID_KEY);
	key[R2_KEY_MAX] = 0;
	assert_int_equal(put(f, key, "x", NULL, &o), R2_OK);
	r2_object_dispose(&o);
	assert_int_equal(r2_key_check((const uint8_t *)"\xff", 1, &f->err), R2_REFUSED);
	char *out = NULL;
	assert_int_equal(r2_custom_metadata_parse("{\"a\":1}", 7, &out, &f->err), R2_REFUSED);
	assert_int_equal(r2_http_metadata_parse("{\"contentType\":\"a\\nb\"}", 22, &out, &f->err),
			 R2_REFUSED);
	assert_int_equal(r2_http_metadata_parse("{\"contentType\":\"text/x\"}", 24, &out, &f->err),
			 R2_OK);
	assert_string_equal(out, "{\"contentType\":\"text/x\"}");
	free(out);
}

/* Cloudflare's one limit: 8,192 bytes of metadata, custom and HTTP together. */
static void test_metadata_is_capped_at_8_kib_custom_and_http_together(void **state)
{
	struct fixture *f = *state;
	char big[2 * R2_METADATA_MAX];
	char *custom = NULL, *http = NULL;
	/* Custom alone: 8192 bytes of key and value fit, one more does not. */
	snprintf(big, sizeof big, "{\"a\":\"%*d\"}", R2_METADATA_MAX - 1, 1);
	assert_int_equal(r2_custom_metadata_parse(big, strlen(big), &custom, &f->err), R2_OK);
	free(custom);
	snprintf(big, sizeof big, "{\"ab\":\"%*d\"}", R2_METADATA_MAX - 1, 1);
	assert_int_equal(r2_custom_metadata_parse(big, strlen(big), &custom, &f->err), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_METADATA_TOO_LARGE);
	/* HTTP alone: five fields of 2000 are past it (each was allowed 8192). */
	snprintf(big, sizeof big,
		 "{\"contentType\":\"%2000d\",\"contentLanguage\":\"%2000d\","
		 "\"contentDisposition\":\"%2000d\",\"contentEncoding\":\"%2000d\","
		 "\"cacheControl\":\"%2000d\"}",
		 1, 2, 3, 4, 5);
	assert_int_equal(r2_http_metadata_parse(big, strlen(big), &http, &f->err), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_METADATA_TOO_LARGE);
	/* Each within the cap, the two together past it. */
	snprintf(big, sizeof big, "{\"contentType\":\"%5000d\",\"cacheExpiry\":1}", 1);
	assert_int_equal(r2_http_metadata_parse(big, strlen(big), &http, &f->err), R2_OK);
	snprintf(big, sizeof big, "{\"k\":\"%3191d\"}", 1);
	assert_int_equal(r2_custom_metadata_parse(big, strlen(big), &custom, &f->err), R2_OK);
	assert_int_equal(r2_metadata_size(http, custom), R2_METADATA_MAX);
	assert_int_equal(r2_metadata_check(http, custom, &f->err), R2_OK);
	free(custom);
	snprintf(big, sizeof big, "{\"k\":\"%3192d\"}", 1);
	assert_int_equal(r2_custom_metadata_parse(big, strlen(big), &custom, &f->err), R2_OK);
	assert_int_equal(r2_metadata_check(http, custom, &f->err), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_METADATA_TOO_LARGE);
	free(custom);
	free(http);
}

static void test_metadata_parsers_normalise(void **state)
{
	struct fixture *f = *state;
	char *out = NULL;
	assert_int_equal(r2_custom_metadata_parse("{\"a\":1}", 7, &out, &f->err), R2_REFUSED);
	assert_int_equal(r2_http_metadata_parse("{\"contentType\":\"a\\nb\"}", 22, &out, &f->err),
			 R2_REFUSED);
	assert_int_equal(r2_http_metadata_parse("{\"contentType\":\"text/x\"}", 24, &out, &f->err),
			 R2_OK);
	assert_string_equal(out, "{\"contentType\":\"text/x\"}");
	free(out);
}

static void test_list_delimits_pages_and_starts_after(void **state)
{
	struct fixture *f = *state;
	static const char *const keys[] = {"a/1", "a/2", "a/b/3", "b", "c/x/y", "d"};
	for (size_t i = 0; i < 6; i++) {
		struct r2_object o;
		assert_int_equal(put(f, keys[i], keys[i], NULL, &o), R2_OK);
		r2_object_dispose(&o);
	}
	struct r2_list l;
	struct r2_list_options opt = {.delimiter = (const uint8_t *)"/", .delimiter_len = 1};
	assert_int_equal(r2_list(f->st, &opt, &l, &f->err), R2_OK);
	assert_int_equal(l.count, 2);
	assert_int_equal(l.nprefixes, 2);
	assert_string_equal(l.prefixes[0], "a/");
	assert_string_equal(l.prefixes[1], "c/");
	assert_false(l.truncated);
	r2_list_dispose(&l);
	/* Pages of 2 with a delimiter: a prefix counts as one, and its keys never return. */
	opt.limit = 2;
	char *cursor = NULL;
	int seen = 0;
	for (int page = 0; page < 5; page++) {
		opt.cursor = cursor;
		opt.cursor_len = cursor ? strlen(cursor) : 0;
		assert_int_equal(r2_list(f->st, &opt, &l, &f->err), R2_OK);
		seen += (int)(l.count + l.nprefixes);
		free(cursor);
		cursor = l.truncated ? strdup(l.cursor) : NULL;
		r2_list_dispose(&l);
		if (!cursor)
			break;
	}
	assert_int_equal(seen, 4);
	struct r2_list_options after = {.start_after = (const uint8_t *)"a/b/3",
					.start_after_len = 5,
					.prefix = (const uint8_t *)"a",
					.prefix_len = 1};
	assert_int_equal(r2_list(f->st, &after, &l, &f->err), R2_OK);
	assert_int_equal(l.count, 0);
	r2_list_dispose(&l);
	struct r2_list_options bad = {.limit = 1001};
	assert_int_equal(r2_list(f->st, &bad, &l, &f->err), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_INVALID_MAX_KEYS);
	struct r2_list_options hostile = {.cursor = "o0g", .cursor_len = 3};
	assert_int_equal(r2_list(f->st, &hostile, &l, &f->err), R2_REFUSED);
}

static void test_multipart_completes_aborts_and_refuses_small_parts(void **state)
{
	struct fixture *f = *state;
	char id[33], e1[48], e2[48];
	const uint8_t *key = (const uint8_t *)"big";
	assert_int_equal(r2_upload_create(f->st, key, 3, NULL, NULL, NOW, id, &f->err), R2_OK);
	size_t n1 = R2_PART_MIN;
	char *p1 = malloc(n1);
	memset(p1, 'a', n1);
	int fd = body(f, p1, n1);
	assert_int_equal(r2_upload_part(f->st, key, 3, id, 1, fd, n1, e1, &f->err), R2_OK);
	close(fd);
	fd = body(f, "tail", 4);
	assert_int_equal(r2_upload_part(f->st, key, 3, id, 2, fd, 4, e2, &f->err), R2_OK);
	close(fd);
	struct r2_part parts[2] = {{1, ""}, {2, ""}};
	snprintf(parts[0].etag, sizeof parts[0].etag, "%s", e1);
	snprintf(parts[1].etag, sizeof parts[1].etag, "%s", "wrong");
	struct r2_object o;
	assert_int_equal(r2_upload_complete(f->st, key, 3, id, parts, 2, NOW, &o, &f->err),
			 R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_INVALID_PART);
	snprintf(parts[1].etag, sizeof parts[1].etag, "%s", e2);
	assert_int_equal(r2_upload_complete(f->st, key, 3, id, parts, 2, NOW, &o, &f->err), R2_OK);
	assert_int_equal(o.size, n1 + 4);
	assert_non_null(strstr(o.etag, "-2"));
	r2_object_dispose(&o);
	assert_int_equal(count_blobs(f), 1); /* the parts' blobs went */
	/* The upload is over. */
	assert_int_equal(r2_upload_abort(f->st, key, 3, id, &f->err), R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_NO_SUCH_UPLOAD);
	/* Small parts before the last are refused. */
	assert_int_equal(r2_upload_create(f->st, key, 3, NULL, NULL, NOW, id, &f->err), R2_OK);
	for (int i = 1; i <= 2; i++) {
		fd = body(f, "x", 1);
		assert_int_equal(r2_upload_part(f->st, key, 3, id, i, fd, 1, i == 1 ? e1 : e2,
						&f->err),
				 R2_OK);
		close(fd);
		snprintf(parts[i - 1].etag, sizeof parts[i - 1].etag, "%s", i == 1 ? e1 : e2);
	}
	assert_int_equal(r2_upload_complete(f->st, key, 3, id, parts, 2, NOW, &o, &f->err),
			 R2_REFUSED);
	assert_int_equal(f->err.code, R2_E_TOO_SMALL);
	assert_int_equal(r2_upload_abort(f->st, key, 3, id, &f->err), R2_OK);
	assert_int_equal(count_blobs(f), 1);
	assert_int_equal(r2_upload_part(f->st, key, 3, id, 10001, -1, 0, e1, &f->err), R2_REFUSED);
	free(p1);
}

static void test_parts_parse_refuses_hostile_lists(void **state)
{
	(void)state;
	struct r2_part *parts;
	size_t n;
	struct r2_err err;
	const char *ok = "[{\"partNumber\":1,\"etag\":\"a\"}]";
	assert_int_equal(r2_parts_parse(ok, strlen(ok), &parts, &n, &err), R2_OK);
	assert_int_equal(n, 1);
	free(parts);
	static const char *const bad[] = {"{}", "[1]", "[{\"partNumber\":0,\"etag\":\"a\"}]",
					  "[{\"partNumber\":1}]", "not json"};
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(r2_parts_parse(bad[i], strlen(bad[i]), &parts, &n, &err), R2_REFUSED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_then_get_and_head_give_the_bytes_and_metadata,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_equal_contents_share_one_blob_and_garbage_goes,
						setup, teardown),
		cmocka_unit_test(test_ranges_resolve_as_cloudflare_does),
		cmocka_unit_test(test_conditions_follow_rfc_9110),
		cmocka_unit_test(test_conditions_on_extreme_dates_neither_overflow_nor_invert),
		cmocka_unit_test_setup_teardown(test_new_directories_are_fsynced_into_their_parents,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_only_if_and_digests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_and_metadata_are_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_is_capped_at_8_kib_custom_and_http_together,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_parsers_normalise, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_delimits_pages_and_starts_after, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_multipart_completes_aborts_and_refuses_small_parts,
						setup, teardown),
		cmocka_unit_test(test_parts_parse_refuses_hostile_lists),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
