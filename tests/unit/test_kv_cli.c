/*
 * Tests for `thaw kv key put|get|list|delete` (src/state/kv_cli.c): the
 * command runs against a namespace file in a fresh temporary directory with
 * a fixed clock, its output and errors captured in memory streams.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/kv.h"
#include "state/kv_cli.h"

#define NOW 1700000000000LL
#define NOW_S (NOW / 1000)

struct fixture {
	char dir[64];
	char path[128];
	char *out, *errout; /* of the last run */
	size_t out_len, errout_len;
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
	snprintf(f->dir, sizeof f->dir, "/tmp/thaw-test-kvcli-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/KV.sqlite", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	free(f->out);
	free(f->errout);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Run the command (arguments up to NULL) at now; returns its status. */
static int run_at(struct fixture *f, int64_t now, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	va_start(ap, now);
	const char *a;
	while ((a = va_arg(ap, const char *)) && argc < 15)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	free(f->out);
	free(f->errout);
	FILE *out = open_memstream(&f->out, &f->out_len);
	FILE *errout = open_memstream(&f->errout, &f->errout_len);
	assert_non_null(out);
	assert_non_null(errout);
	int status = kv_cli_run(argc, argv, f->path, now, out, errout);
	fclose(out);
	fclose(errout);
	return status;
}

#define run(f, ...) run_at(f, NOW, __VA_ARGS__, (const char *)NULL)

static void test_put_then_get_writes_the_bytes_as_they_are(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(run(f, "put", "greeting", "hello world"), 0);
	assert_int_equal(f->out_len, 0);
	assert_int_equal(f->errout_len, 0);
	assert_int_equal(run(f, "get", "greeting"), 0);
	assert_int_equal(f->out_len, 11);
	assert_memory_equal(f->out, "hello world", 11);
	assert_int_equal(run(f, "get", "greeting", "--text"), 0);
	assert_string_equal(f->out, "hello world");
}

static void test_put_from_a_file_keeps_binary_bytes(void **state)
{
	struct fixture *f = *state;
	char file[160];
	snprintf(file, sizeof file, "%s/value.bin", f->dir);
	const uint8_t bytes[] = {0, 0xff, 'a', 0, 0x80, '\n'};
	FILE *fp = fopen(file, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(bytes, 1, sizeof bytes, fp), sizeof bytes);
	fclose(fp);
	assert_int_equal(run(f, "put", "bin", "--path", file), 0);
	assert_int_equal(run(f, "get", "bin"), 0);
	assert_int_equal(f->out_len, sizeof bytes);
	assert_memory_equal(f->out, bytes, sizeof bytes);
	/* --text refuses what is not UTF-8; --json gives it in base64. */
	assert_int_equal(run(f, "get", "bin", "--text"), 1);
	assert_string_equal(f->errout, "thaw kv key get: the value is not UTF-8 text; leave out "
				       "--text for its bytes\n");
	assert_int_equal(run(f, "get", "bin", "--json"), 0);
	assert_string_equal(f->out, "{\"key\":\"bin\",\"value_base64\":\"AP9hAIAK\","
				    "\"metadata\":null,\"expiration\":null}\n");
}

static void test_put_with_ttl_and_metadata_shows_in_get_json_and_list(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(run(f, "put", "k", "v\xc3\xa9", "--ttl", "120", "--metadata",
			     "{\"n\":1,\"s\":\"\xe2\x82\xac\"}"),
			 0);
	assert_int_equal(run(f, "get", "k", "--json"), 0);
	assert_string_equal(f->out, "{\"key\":\"k\",\"value\":\"v\\u00E9\",\"metadata\":{\"n\":1,"
				    "\"s\":\"\\u20AC\"},\"expiration\":1700000120}\n");
	assert_int_equal(run(f, "put", "plain", "x"), 0);
	assert_int_equal(run(f, "list"), 0);
	assert_string_equal(f->out, "{\"name\":\"k\",\"expiration\":1700000120,\"metadata\":"
				    "{\"n\":1,\"s\":\"\\u20AC\"}}\n"
				    "{\"name\":\"plain\"}\n");
	/* The key expires: get says so, list leaves it out. */
	assert_int_equal(run_at(f, (NOW_S + 120) * 1000, "get", "k", (const char *)NULL), 1);
	assert_string_equal(f->errout, "thaw kv key get: not found\n");
	assert_int_equal(run_at(f, (NOW_S + 120) * 1000, "list", (const char *)NULL), 0);
	assert_string_equal(f->out, "{\"name\":\"plain\"}\n");
}

static void test_put_with_expiration(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(run(f, "put", "k", "v", "--expiration", "1700000600"), 0);
	assert_int_equal(run(f, "list"), 0);
	assert_string_equal(f->out, "{\"name\":\"k\",\"expiration\":1700000600}\n");
}

static void test_engine_refusals_are_cloudflares_messages(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(run(f, "put", "k", "v", "--ttl", "30"), 1);
	assert_string_equal(f->errout, "thaw kv key put: KV PUT failed: 400 Invalid expiration_ttl "
				       "of 30. Expiration TTL must be at least 60.\n");
	assert_int_equal(run(f, "put", ".", "v"), 1);
	assert_string_equal(f->errout, "thaw kv key put: \".\" is not allowed as a key name.\n");
	assert_int_equal(run(f, "put", "k", "v", "--metadata", "{nope"), 1);
	assert_string_equal(f->errout,
			    "thaw kv key put: KV PUT failed: 400 Metadata is not valid JSON.\n");
	assert_int_equal(run(f, "list", "--limit", "5"), 0); /* nothing was stored */
	assert_int_equal(f->out_len, 0);
}

static void test_a_file_over_25_mib_is_refused_with_its_size(void **state)
{
	struct fixture *f = *state;
	char file[160];
	snprintf(file, sizeof file, "%s/big", f->dir);
	FILE *fp = fopen(file, "wb");
	assert_non_null(fp);
	assert_int_equal(ftruncate(fileno(fp), KV_VALUE_MAX + 5), 0);
	fclose(fp);
	assert_int_equal(run(f, "put", "big", "--path", file), 1);
	assert_string_equal(f->errout, "thaw kv key put: KV PUT failed: 413 Value length of "
				       "26214405 exceeds limit of 26214400.\n");
	assert_int_equal(run(f, "put", "big", "--path", f->dir), 1);
	assert_non_null(strstr(f->errout, "not a regular file"));
}

static void test_list_follows_cursors_and_honours_prefix_and_limit(void **state)
{
	struct fixture *f = *state;
	/* More than one engine page. */
	struct kv_store *kv;
	char err[KV_ERR_LEN];
	assert_non_null(kv = kv_open(f->path, err, sizeof err));
	for (int i = 0; i < 1205; i++) {
		char key[16];
		snprintf(key, sizeof key, "%c%04d", i % 2 ? 'b' : 'a', i);
		assert_int_equal(kv_put(kv, key, strlen(key), "v", 1, NULL, NOW, err, sizeof err),
				 0);
	}
	kv_close(kv);
	assert_int_equal(run(f, "list"), 0);
	size_t lines = 0;
	for (size_t i = 0; i < f->out_len; i++)
		lines += f->out[i] == '\n';
	assert_int_equal(lines, 1205);
	assert_int_equal(run(f, "list", "--prefix", "b"), 0);
	lines = 0;
	for (size_t i = 0; i < f->out_len; i++)
		lines += f->out[i] == '\n';
	assert_int_equal(lines, 602);
	assert_int_equal(strncmp(f->out, "{\"name\":\"b0001\"}\n", 17), 0);
	assert_int_equal(run(f, "list", "--prefix", "a", "--limit", "1001"), 0);
	lines = 0;
	for (size_t i = 0; i < f->out_len; i++)
		lines += f->out[i] == '\n';
	assert_int_equal(lines, 603); /* fewer than the limit: all of them */
	assert_int_equal(run(f, "list", "--limit", "1001"), 0);
	lines = 0;
	for (size_t i = 0; i < f->out_len; i++)
		lines += f->out[i] == '\n';
	assert_int_equal(lines, 1001);
	assert_int_equal(run(f, "list", "--limit", "2"), 0);
	assert_string_equal(f->out, "{\"name\":\"a0000\"}\n{\"name\":\"a0002\"}\n");
}

static void test_list_escapes_what_a_worker_chose(void **state)
{
	struct fixture *f = *state;
	char err[KV_ERR_LEN];
	struct kv_store *kv = kv_open(f->path, err, sizeof err);
	assert_non_null(kv);
	const char key[] = "\x1b[2J\xc2\x9b\0x"; /* ESC, C1 CSI, NUL */
	assert_int_equal(kv_put(kv, key, sizeof key - 1, "v", 1, NULL, NOW, err, sizeof err), 0);
	kv_close(kv);
	assert_int_equal(run(f, "list"), 0);
	assert_string_equal(f->out, "{\"name\":\"\\u001B[2J\\u009B\\u0000x\"}\n");
}

static void test_delete_removes_and_a_missing_key_is_fine(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(run(f, "put", "k", "v"), 0);
	assert_int_equal(run(f, "delete", "k"), 0);
	assert_int_equal(run(f, "get", "k"), 1);
	assert_int_equal(run(f, "delete", "k"), 0);
}

static void test_usage_errors_exit_2_and_make_no_file(void **state)
{
	struct fixture *f = *state;
	const char *cases[][6] = {
		{"put", "k", NULL},
		{"put", "k", "v", "--path", "x", NULL},
		{"put", "k", "v", "--ttl", "soon", NULL},
		{"put", "k", "v", "--ttl", NULL},
		{"put", "k", "v", "extra", NULL},
		{"put", "k", "v", "--bogus", NULL},
		{"get", NULL},
		{"get", "k", "--text", "--json", NULL},
		{"list", "--limit", "0", NULL},
		{"list", "--limit", "x", NULL},
		{"list", "extra", NULL},
		{"delete", NULL},
		{"delete", "a", "b", NULL},
		{"frobnicate", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[8];
		int argc = 0;
		while (cases[i][argc])
			argv[argc] = (char *)cases[i][argc], argc++;
		argv[argc] = NULL;
		FILE *out = open_memstream(&f->out, &f->out_len);
		FILE *errout = open_memstream(&f->errout, &f->errout_len);
		int status = kv_cli_run(argc, argv, f->path, NOW, out, errout);
		fclose(out);
		fclose(errout);
		if (status != 2)
			fail_msg("case %zu: status %d (%s)", i, status, f->errout);
		assert_non_null(strstr(f->errout, "usage: thaw kv key put"));
		free(f->out);
		free(f->errout);
		f->out = f->errout = NULL;
	}
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(run_at(f, NOW, (const char *)NULL), 2);
}

static void test_an_unopenable_store_is_an_error(void **state)
{
	struct fixture *f = *state;
	snprintf(f->path, sizeof f->path, "%s/missing-dir/KV.sqlite", f->dir);
	assert_int_equal(run(f, "get", "k"), 1);
	assert_non_null(strstr(f->errout, "thaw kv key get: "));
	assert_non_null(strstr(f->errout, "cannot open"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_put_then_get_writes_the_bytes_as_they_are),
		T(test_put_from_a_file_keeps_binary_bytes),
		T(test_put_with_ttl_and_metadata_shows_in_get_json_and_list),
		T(test_put_with_expiration),
		T(test_engine_refusals_are_cloudflares_messages),
		T(test_a_file_over_25_mib_is_refused_with_its_size),
		T(test_list_follows_cursors_and_honours_prefix_and_limit),
		T(test_list_escapes_what_a_worker_chose),
		T(test_delete_removes_and_a_missing_key_is_fine),
		T(test_usage_errors_exit_2_and_make_no_file),
		T(test_an_unopenable_store_is_an_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
