/*
 * Tests for the control API's state paths and query integers
 * (src/ext/state_path.c): every endpoint parses to its operation, store and
 * key; anything else (traversal, empty or oversized names, unknown verbs,
 * trailing text) is refused; integers are whole and in range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the four above first. */
#include <cmocka.h>

#include <string.h>

#include "ext/state_path.h"

static void test_each_endpoint_parses(void **state)
{
	struct state_path sp;
	assert_int_equal(state_path_parse("kv/CACHE/values/a/b c", &sp), 0);
	assert_int_equal(sp.op, STATE_KV_VALUE);
	assert_string_equal(sp.store, "CACHE");
	assert_string_equal(sp.key, "a/b c");
	assert_int_equal(sp.key_len, 5);
	assert_int_equal(state_path_parse("kv/a1b2-c3.d_4/keys", &sp), 0);
	assert_int_equal(sp.op, STATE_KV_KEYS);
	assert_string_equal(sp.store, "a1b2-c3.d_4");
	assert_int_equal(state_path_parse("d1/notes-db/execute", &sp), 0);
	assert_int_equal(sp.op, STATE_D1_EXECUTE);
	assert_int_equal(state_path_parse("d1/DB/migrations", &sp), 0);
	assert_int_equal(sp.op, STATE_D1_MIGRATIONS);
	/* An empty key parses: the engine refuses it with Cloudflare's message. */
	assert_int_equal(state_path_parse("kv/CACHE/values/", &sp), 0);
	assert_int_equal(sp.key_len, 0);
}

static void test_malformed_paths_are_refused(void **state)
{
	static const char *bad[] = {
		"",
		"kv",
		"kv/",
		"kv/CACHE",
		"kv//keys",
		"kv/./keys",
		"kv/../keys",
		"kv/CA CHE/keys",
		"kv/CA%2FCHE/keys",
		"kv/CACHE/keys/",
		"kv/CACHE/keysx",
		"kv/CACHE/values",
		"kv/CACHE/execute",
		"d1/DB/values/x",
		"d1/DB/keys",
		"d1/DB/execute/",
		"d1/DB/migrations?x",
		"r2/B/keys",
		"KV/CACHE/keys",
		"kv/\xc3\xa9/keys",
		"kv/CACHE\n/keys",
	};
	struct state_path sp;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		if (state_path_parse(bad[i], &sp) != -1)
			fail_msg("accepted: '%s'", bad[i]);
	}
	char longname[600] = "kv/";
	memset(longname + 3, 'a', 256);
	strcpy(longname + 259, "/keys");
	assert_int_equal(state_path_parse(longname, &sp), -1);
	longname[258] = 0; /* 255 bytes: the longest */
	strcat(longname, "/keys");
	assert_int_equal(state_path_parse(longname, &sp), 0);
	assert_int_equal(strlen(sp.store), STATE_STORE_MAX);
}

static void test_query_integers(void **state)
{
	int64_t v = 7;
	assert_int_equal(state_query_int("1000", 1, 1000, &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(state_query_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
	static const char *bad[] = {"",     "0",   "1001",
				    "1x",   " 1",  "+1",
				    "0x10", "1e3", "99999999999999999999",
				    "1.0",  "-"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		v = 7;
		if (state_query_int(bad[i], 1, 1000, &v) != -1 || v != 7)
			fail_msg("accepted: '%s'", bad[i]);
	}
	assert_int_equal(state_query_int(NULL, 1, 2, &v), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_endpoint_parses),
		cmocka_unit_test(test_malformed_paths_are_refused),
		cmocka_unit_test(test_query_integers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
