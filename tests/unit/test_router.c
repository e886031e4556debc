/*
 * Tests for thaw serve's routing rules (src/ext/router.c): every rule that
 * picks a worker from a request, in their order of precedence, and the
 * buckets that pick a version from a deployment of two.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/router.h"
#include "ext/store.h"

static struct router *table(int path_routing, ...)
{
	static struct router rt;
	memset(&rt, 0, sizeof rt);
	rt.path_routing = path_routing;
	char err[256];
	va_list ap;
	va_start(ap, path_routing);
	for (const char *spec; (spec = va_arg(ap, const char *));)
		if (router_add_rule(&rt, spec, err, sizeof err) < 0)
			fail_msg("rule %s: %s", spec, err);
	va_end(ap);
	return &rt;
}

/* Route and expect the worker want (NULL: no match) and the rewritten path
 * (NULL: unchanged). */
static void expect(const struct router *rt, const char *host, const char *uri, int probe,
		   const char *want, const char *want_uri)
{
	char name[64] = "?";
	char *rewritten = (char *)"?";
	int rc = router_worker(rt, host, uri, probe, name, sizeof name, &rewritten);
	if (!want) {
		if (rc != -1)
			fail_msg("Host %s %s: routed to %s, expected no match", host ? host : "(none)",
				 uri, name);
		assert_null(rewritten);
		return;
	}
	if (rc != 0)
		fail_msg("Host %s %s: no match, expected %s", host ? host : "(none)", uri, want);
	assert_string_equal(name, want);
	if (want_uri) {
		assert_non_null(rewritten);
		assert_string_equal(rewritten, want_uri);
	} else {
		assert_null(rewritten);
	}
	free(rewritten);
}

static void test_localhost_names(void **state)
{
	struct router *rt = table(0, NULL);
	expect(rt, "hello.localhost", "/", 0, "hello", NULL);
	expect(rt, "hello.localhost:8787", "/x?y=1", 0, "hello", NULL);
	expect(rt, "HeLLo.LocalHost:1", "/", 0, "hello", NULL); /* case-insensitive */
	expect(rt, "a.b.localhost", "/", 0, NULL, NULL);        /* a dot in the name */
	expect(rt, ".localhost", "/", 0, NULL, NULL);           /* empty name */
	expect(rt, "localhost", "/", 0, NULL, NULL);
	expect(rt, "hello.localhost.evil", "/", 0, NULL, NULL);
	expect(rt, NULL, "/", 0, NULL, NULL);
	expect(rt, "127.0.0.1:8787", "/hello/", 0, NULL, NULL); /* no path routing */
	/* A name longer than a worker name can be is no match. */
	char big[300];
	memset(big, 'a', 200);
	strcpy(big + 200, ".localhost");
	expect(rt, big, "/", 0, NULL, NULL);
}

static void test_route_rules(void **state)
{
	struct router *rt = table(0, "API.example.com=api", "*.apps.test=apps", NULL);
	expect(rt, "api.example.com", "/", 0, "api", NULL);
	expect(rt, "Api.Example.Com:443", "/", 0, "api", NULL);
	expect(rt, "x.api.example.com", "/", 0, NULL, NULL); /* exact means exact */
	expect(rt, "one.apps.test", "/", 0, "apps", NULL);
	expect(rt, "a.b.apps.test", "/", 0, "apps", NULL);
	expect(rt, "apps.test", "/", 0, NULL, NULL); /* the wildcard needs a label */
	expect(rt, "xapps.test", "/", 0, NULL, NULL);
	/* Rules come before NAME.localhost. */
	rt = table(0, "hello.localhost=other", NULL);
	expect(rt, "hello.localhost", "/", 0, "other", NULL);
	/* ... except for the deploy check, which is always NAME.localhost. */
	expect(rt, "hello.localhost", "/", 1, "hello", NULL);
	/* First matching rule wins. */
	rt = table(0, "*.example.com=first", "a.example.com=second", NULL);
	expect(rt, "a.example.com", "/", 0, "first", NULL);
	/* IPv6 hosts keep their brackets. */
	rt = table(0, "[::1]=six", NULL);
	expect(rt, "[::1]:8787", "/", 0, "six", NULL);
}

static void test_bad_rules_are_refused(void **state)
{
	struct router rt;
	memset(&rt, 0, sizeof rt);
	char err[256];
	const char *bad[] = {"nohost", "=name", "host=", "host=Bad", "host=-x", "host=a b"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = 0;
		if (router_add_rule(&rt, bad[i], err, sizeof err) != -1)
			fail_msg("rule '%s' was accepted", bad[i]);
		assert_non_null(strstr(err, "HOST=NAME"));
	}
	char longhost[300];
	memset(longhost, 'h', 260);
	strcpy(longhost + 260, "=w");
	assert_int_equal(router_add_rule(&rt, longhost, err, sizeof err), -1);
	assert_int_equal(rt.nrules, 0);
	for (int i = 0; i < ROUTER_MAX_RULES; i++)
		assert_int_equal(router_add_rule(&rt, "h=w", err, sizeof err), 0);
	assert_int_equal(router_add_rule(&rt, "h=w", err, sizeof err), -1);
}

static void test_path_routing(void **state)
{
	struct router *rt = table(1, NULL);
	expect(rt, "127.0.0.1:8787", "/hello/api/items?x=1", 0, "hello", "/api/items?x=1");
	expect(rt, "127.0.0.1", "/hello", 0, "hello", "/");
	expect(rt, "127.0.0.1", "/hello?q", 0, "hello", "/?q");
	expect(rt, "127.0.0.1", "/hello/", 0, "hello", "/");
	expect(rt, "127.0.0.1", "/", 0, NULL, NULL);
	expect(rt, "127.0.0.1", "*", 0, NULL, NULL); /* OPTIONS * */
	/* Host routing comes first: the path is left alone then. */
	expect(rt, "hello.localhost", "/other/x", 0, "hello", NULL);
	/* The deploy check never routes by path. */
	expect(rt, "127.0.0.1", "/hello/", 1, NULL, NULL);
	/* A segment longer than a name cannot name a worker. */
	char uri[200] = "/";
	memset(uri + 1, 'n', 100);
	expect(rt, "127.0.0.1", uri, 0, NULL, NULL);
}

static struct deployment two(double p0)
{
	struct deployment d;
	memset(&d, 0, sizeof d);
	d.n = 2;
	strcpy(d.version[0], "new");
	strcpy(d.version[1], "old");
	d.percentage[0] = p0;
	d.percentage[1] = 100 - p0;
	return d;
}

static void test_buckets(void **state)
{
	/* FNV-1a 64 of "hello" then "user-1", modulo 10000: a fixed value, so a
	 * key's version survives a restart and an upgrade of thaw. */
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = "hello" "user-1"; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	assert_int_equal(router_bucket("hello", "user-1"), (uint32_t)(h % 10000));
	/* The worker is part of the hash: one key is not one bucket everywhere. */
	int differ = 0;
	for (int i = 0; i < 20; i++) {
		char key[16];
		snprintf(key, sizeof key, "k%d", i);
		differ |= router_bucket("a", key) != router_bucket("b", key);
		assert_true(router_bucket("a", key) < ROUTER_BUCKETS);
	}
	assert_true(differ);
}

static void test_version_choice(void **state)
{
	struct deployment one;
	memset(&one, 0, sizeof one);
	one.n = 1;
	one.percentage[0] = 100;
	assert_int_equal(router_version(&one, "w", "key", 12345), 0);
	assert_int_equal(router_version(&one, "w", NULL, 9999), 0);

	/* Without a key, the random number's bucket decides. */
	struct deployment d = two(25);
	assert_int_equal(router_version(&d, "w", NULL, 0), 0);
	assert_int_equal(router_version(&d, "w", NULL, 2499), 0);
	assert_int_equal(router_version(&d, "w", NULL, 2500), 1);
	assert_int_equal(router_version(&d, "w", "", 10000 + 2500), 1); /* "" is no key */
	assert_int_equal(router_version(&d, "w", NULL, 9999), 1);

	/* With a key: always the same version, whatever the random number. */
	char key[32];
	int seen[2] = {0, 0};
	for (int i = 0; i < 400; i++) {
		snprintf(key, sizeof key, "user-%d", i);
		int v = router_version(&d, "w", key, 0);
		for (uint64_t r = 1; r < 5; r++)
			assert_int_equal(router_version(&d, "w", key, r * 7777), v);
		assert_int_equal(v, router_bucket("w", key) < 2500 ? 0 : 1);
		seen[v]++;
	}
	/* About a quarter of the keys go to the new version. */
	assert_true(seen[0] > 50 && seen[0] < 150);

	/* Growing the new version's share keeps every key it had. */
	for (int i = 0; i < 400; i++) {
		snprintf(key, sizeof key, "user-%d", i);
		struct deployment small = two(10), big = two(60);
		if (router_version(&small, "w", key, 0) == 0)
			assert_int_equal(router_version(&big, "w", key, 0), 0);
	}
	/* Fractional percentages: 0.01 % is one bucket. */
	d = two(0.01);
	assert_int_equal(router_version(&d, "w", NULL, 0), 0);
	assert_int_equal(router_version(&d, "w", NULL, 1), 1);
}

/* An override reaches the current deployment's versions only: by id, by a
 * prefix of 4+ characters, or by number; anything else (another version,
 * garbage, a value naming both) is not applied. */
static void test_override_names_a_deployed_version_only(void **state)
{
	struct deployment d;
	memset(&d, 0, sizeof d);
	d.n = 2;
	strcpy(d.version[0], "0a1b2c3d-0000-4000-8000-000000000007");
	strcpy(d.version[1], "0a1b9999-0000-4000-8000-000000000003");
	d.percentage[0] = 10;
	d.percentage[1] = 90;
	const int numbers[2] = {7, 3};

	assert_int_equal(router_override(&d, numbers, "0a1b2c3d-0000-4000-8000-000000000007"), 0);
	assert_int_equal(router_override(&d, numbers, "0a1b2c"), 0);
	assert_int_equal(router_override(&d, numbers, "0a1b9"), 1);
	assert_int_equal(router_override(&d, numbers, "7"), 0);
	assert_int_equal(router_override(&d, numbers, "#3"), 1);
	/* Versions that exist but are not deployed, and numbers of none. */
	assert_int_equal(router_override(&d, numbers, "1"), -1);
	assert_int_equal(router_override(&d, numbers, "#5"), -1);
	assert_int_equal(router_override(&d, numbers, "ffffffff"), -1);
	/* A prefix of both, or too short to be a prefix. */
	assert_int_equal(router_override(&d, numbers, "0a1b"), -1);
	assert_int_equal(router_override(&d, numbers, "0a1"), -1);
	/* Malformed: empty, longer than an id, signs, spaces, huge numbers,
	 * "#" before an id, upper case, bytes past a NUL never read. */
	assert_int_equal(router_override(&d, numbers, NULL), -1);
	assert_int_equal(router_override(&d, numbers, ""), -1);
	assert_int_equal(router_override(&d, numbers, "#"), -1);
	assert_int_equal(router_override(&d, numbers, "-3"), -1);
	assert_int_equal(router_override(&d, numbers, "+3"), -1);
	assert_int_equal(router_override(&d, numbers, " 3"), -1);
	assert_int_equal(router_override(&d, numbers, "3 "), -1);
	assert_int_equal(router_override(&d, numbers, "0000000003"), -1); /* 10 digits */
	assert_int_equal(router_override(&d, numbers, "000000003"), 1);
	assert_int_equal(router_override(&d, numbers, "99999999999999999999999"), -1);
	assert_int_equal(router_override(&d, numbers, "#0a1b2c3d"), -1);
	assert_int_equal(router_override(&d, numbers, "0A1B2C3D"), -1);
	assert_int_equal(router_override(&d, numbers, "0a1b2c3d-0000-4000-8000-0000000000070"), -1);
	char big[5000];
	memset(big, '7', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_int_equal(router_override(&d, numbers, big), -1);

	/* A 4+-digit value is both a number and a prefix: naming two is none. */
	struct deployment n;
	memset(&n, 0, sizeof n);
	n.n = 2;
	strcpy(n.version[0], "1234abcd-0000-4000-8000-000000000000");
	strcpy(n.version[1], "ffff0000-0000-4000-8000-000000000000");
	const int nums[2] = {5, 1234};
	assert_int_equal(router_override(&n, nums, "1234"), -1);
	assert_int_equal(router_override(&n, nums, "12345"), -1);
	assert_int_equal(router_override(&n, nums, "1234a"), 0);
	/* No deployment: nothing to name. */
	n.n = 0;
	assert_int_equal(router_override(&n, nums, "5"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_localhost_names),
		cmocka_unit_test(test_route_rules),
		cmocka_unit_test(test_bad_rules_are_refused),
		cmocka_unit_test(test_path_routing),
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_version_choice),
		cmocka_unit_test(test_override_names_a_deployed_version_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
