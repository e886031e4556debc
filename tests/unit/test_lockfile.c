/*
 * Tests for the lockfile reader (src/cli/lockfile.c): uv.lock and pylock.toml,
 * given as the JSON that tomllib's output becomes, turned into requirement
 * strings; hostile or malformed entries refused with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cli/lockfile.h"

/* Run the reader on JSON text; returns its rc, the list in out, err filled. */
static int reqs_of(const char *json, enum thaw_lock_kind kind, const char *project,
		   struct thaw_reqs *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *lock = json_loads(json, 0, &je);
	if (!lock)
		fail_msg("bad test JSON: %s: %s", je.text, json);
	memset(out, 0, sizeof *out);
	err[0] = 0;
	int rc = thaw_lock_requirements(lock, kind, project, "/proj", out, err, errlen);
	json_decref(lock);
	return rc;
}

/* Require exactly the requirements want (NULL-terminated), in order. */
static void expect(const char *json, enum thaw_lock_kind kind, const char *project,
		   const char *const *want)
{
	struct thaw_reqs r;
	char err[512];
	if (reqs_of(json, kind, project, &r, err, sizeof err) != 0)
		fail_msg("failed: %s\non %s", err, json);
	size_t n = 0;
	while (want[n])
		n++;
	for (size_t i = 0; i < n && i < r.n; i++)
		if (strcmp(r.v[i], want[i]) != 0)
			fail_msg("requirement %zu: got [%s], want [%s]", i, r.v[i], want[i]);
	if (r.n != n)
		fail_msg("got %zu requirements, want %zu (first extra: %s)", r.n, n,
			 r.n > n ? r.v[n] : want[r.n]);
	thaw_reqs_dispose(&r);
}

/* Require a failure whose message contains what. */
static void expect_error(const char *json, enum thaw_lock_kind kind, const char *what)
{
	struct thaw_reqs r;
	char err[512];
	if (reqs_of(json, kind, "proj", &r, err, sizeof err) != -1)
		fail_msg("succeeded (%zu requirements), want an error about '%s'\non %s", r.n, what,
			 json);
	if (!strstr(err, what))
		fail_msg("error [%s] does not mention '%s'", err, what);
	thaw_reqs_dispose(&r);
}

#define UV(pkgs) "{\"version\": 1, \"package\": [" pkgs "]}"
#define ROOT(deps) "{\"name\": \"proj\", \"version\": \"0.1.0\", \"source\": {\"virtual\": \".\"}, " \
		   "\"dependencies\": [" deps "]}"
#define REG(name, ver) "{\"name\": \"" name "\", \"version\": \"" ver "\", " \
		       "\"source\": {\"registry\": \"https://pypi.org/simple\"}"

static void test_uv_pins_what_the_project_reaches(void **state)
{
	/* a -> b; c only in a dev group; d unreached; the project itself left out. */
	const char *lock = UV(ROOT("{\"name\": \"a\"}") ","
			      REG("a", "1.0") ", \"dependencies\": [{\"name\": \"B\"}]},"
			      REG("b", "2.0.post1") "},"
			      REG("c", "3") "},"
			      REG("d", "4") "}");
	const char *want[] = {"a==1.0", "b==2.0.post1", NULL};
	expect(lock, THAW_LOCK_UV, "proj", want);
}

static void test_uv_edge_markers_become_requirement_markers(void **state)
{
	const char *lock = UV(
		ROOT("{\"name\": \"win\", \"marker\": \"sys_platform == 'win32'\"},"
		     "{\"name\": \"two\", \"marker\": \"python_version < '3.12'\"},"
		     "{\"name\": \"a\"}") ","
		REG("a", "1") ", \"dependencies\": [{\"name\": \"two\", \"marker\": \"os_name == 'nt'\"},"
		"{\"name\": \"plain\", \"marker\": \"os_name == 'posix'\"}]},"
		REG("plain", "1") "},"
		REG("two", "1") "},"
		REG("win", "1") "}");
	const char *want[] = {"a==1",
			      "plain==1 ; os_name == 'posix'",
			      "two==1 ; (python_version < '3.12') or (os_name == 'nt')",
			      "win==1 ; sys_platform == 'win32'", NULL};
	expect(lock, THAW_LOCK_UV, "proj", want);
}

static void test_uv_unmarked_edge_makes_a_package_unconditional(void **state)
{
	const char *lock = UV(ROOT("{\"name\": \"x\", \"marker\": \"os_name == 'nt'\"}, {\"name\": \"a\"}") ","
			      REG("a", "1") ", \"dependencies\": [{\"name\": \"x\"}]},"
			      REG("x", "1") "}");
	const char *want[] = {"a==1", "x==1", NULL};
	expect(lock, THAW_LOCK_UV, "proj", want);
}

static void test_uv_extras_follow_optional_dependencies(void **state)
{
	const char *lock = UV(ROOT("{\"name\": \"a\", \"extra\": [\"fast\"]}") ","
			      REG("a", "1") ", \"optional-dependencies\": {\"fast\": [{\"name\": \"f\"}],"
			      " \"slow\": [{\"name\": \"s\"}]}},"
			      REG("f", "1") "},"
			      REG("s", "1") "}");
	const char *want[] = {"a==1", "f==1", NULL};
	expect(lock, THAW_LOCK_UV, "proj", want);
}

static void test_uv_direct_sources(void **state)
{
	const char *lock = UV(
		ROOT("{\"name\": \"g\"}, {\"name\": \"u\"}, {\"name\": \"p\"}, {\"name\": \"e\"}") ","
		"{\"name\": \"e\", \"version\": \"1\", \"source\": {\"editable\": \"../e\"}},"
		"{\"name\": \"g\", \"version\": \"1\", \"source\": {\"git\": "
		"\"https://example.com/g.git?rev=main&subdirectory=py#0123456789abcdef0123456789abcdef01234567\"}},"
		"{\"name\": \"p\", \"version\": \"1\", \"source\": {\"path\": \"wheels/p 1.whl\"}},"
		"{\"name\": \"u\", \"version\": \"1\", \"source\": {\"url\": \"https://example.com/u-1.whl\"}}");
	const char *want[] = {
		"g @ git+https://example.com/g.git@0123456789abcdef0123456789abcdef01234567#subdirectory=py",
		"p @ file:///proj/wheels/p%201.whl", "u @ https://example.com/u-1.whl", NULL};
	expect(lock, THAW_LOCK_UV, "proj", want);
}

static void test_uv_without_a_project_entry_pins_everything(void **state)
{
	const char *lock = UV(REG("a", "1") "}," REG("b", "2") "}");
	const char *want[] = {"a==1", "b==2", NULL};
	expect(lock, THAW_LOCK_UV, NULL, want);
	expect("{\"version\": 1}", THAW_LOCK_UV, "proj", (const char *[]){NULL});
}

static void test_uv_malformed_or_hostile_entries_are_refused(void **state)
{
	expect_error("{\"version\": 2, \"package\": []}", THAW_LOCK_UV, "version");
	expect_error("{\"package\": []}", THAW_LOCK_UV, "version");
	expect_error("[]", THAW_LOCK_UV, "table");
	expect_error(UV("{\"name\": \"-e\", \"version\": \"1\"}"), THAW_LOCK_UV, "name");
	expect_error(UV("{\"name\": \"a b\", \"version\": \"1\"}"), THAW_LOCK_UV, "name");
	expect_error(UV("{\"version\": \"1\"}"), THAW_LOCK_UV, "name");
	expect_error(UV("7"), THAW_LOCK_UV, "name");
	expect_error("{\"version\": 1, \"package\": {}}", THAW_LOCK_UV, "list");
	expect_error(UV(REG("a", "1 --target=/tmp") "}"), THAW_LOCK_UV, "version");
	expect_error(UV(REG("a", "") "}"), THAW_LOCK_UV, "version");
	expect_error(UV("{\"name\": \"a\"}"), THAW_LOCK_UV, "version");
	expect_error(UV(ROOT("{\"name\": \"missing\"}")), THAW_LOCK_UV, "missing");
	expect_error(UV(ROOT("{\"name\": \"a\", \"marker\": 3}") "," REG("a", "1") "}"),
		     THAW_LOCK_UV, "marker");
	expect_error(UV(ROOT("{\"name\": \"a\", \"marker\": \"x\\n--target=/\"}") "," REG("a", "1") "}"),
		     THAW_LOCK_UV, "not acceptable");
	expect_error(UV(ROOT("7")), THAW_LOCK_UV, "without a name");
	expect_error(UV(ROOT("{\"name\": \"a\"}") ",{\"name\": \"a\", \"version\": \"1\", "
				"\"source\": {\"url\": \"javascript:alert(1)\"}}"),
		     THAW_LOCK_UV, "invalid source");
	expect_error(UV(ROOT("{\"name\": \"a\"}") ",{\"name\": \"a\", \"version\": \"1\", "
				"\"source\": {\"git\": \"https://x/y#nothex\"}}"),
		     THAW_LOCK_UV, "invalid source");
	expect_error(UV(ROOT("{\"name\": \"a\"}") ",{\"name\": \"a\", \"version\": \"1\", "
				"\"source\": {\"svn\": \"x\"}}"),
		     THAW_LOCK_UV, "source");
}

#define PYLOCK(pkgs) "{\"lock-version\": \"1.0\", \"packages\": [" pkgs "]}"

static void test_pylock_entries(void **state)
{
	const char *lock = PYLOCK(
		"{\"name\": \"proj\", \"version\": \"0.1\"},"
		"{\"name\": \"a\", \"version\": \"1.0\", \"wheels\": []},"
		"{\"name\": \"w\", \"version\": \"2\", \"marker\": \"sys_platform == 'win32'\"},"
		"{\"name\": \"self\", \"directory\": {\"path\": \".\", \"editable\": true}},"
		"{\"name\": \"lib\", \"directory\": {\"path\": \"../lib\"}},"
		"{\"name\": \"v\", \"vcs\": {\"type\": \"git\", \"url\": \"https://example.com/v.git\","
		" \"commit-id\": \"0123456789abcdef0123456789abcdef01234567\"}},"
		"{\"name\": \"z\", \"version\": \"3\", \"archive\": {\"url\": \"https://example.com/z.tar.gz\"}}");
	const char *want[] = {"a==1.0",
			      "w==2 ; sys_platform == 'win32'",
			      "lib @ file:///proj/../lib",
			      "v @ git+https://example.com/v.git@0123456789abcdef0123456789abcdef01234567",
			      "z @ https://example.com/z.tar.gz",
			      NULL};
	expect(lock, THAW_LOCK_PYLOCK, "proj", want);
}

static void test_pylock_malformed_or_hostile_entries_are_refused(void **state)
{
	expect_error("{\"lock-version\": \"2.0\"}", THAW_LOCK_PYLOCK, "lock-version");
	expect_error("{}", THAW_LOCK_PYLOCK, "lock-version");
	expect_error(PYLOCK("{\"name\": \"a\"}"), THAW_LOCK_PYLOCK, "no version");
	expect_error(PYLOCK("{\"name\": \"--a\", \"version\": \"1\"}"), THAW_LOCK_PYLOCK, "name");
	expect_error(PYLOCK("{\"name\": \"a\", \"version\": \"1;x\"}"), THAW_LOCK_PYLOCK, "version");
	expect_error(PYLOCK("{\"name\": \"a\", \"version\": \"1\", \"marker\": []}"),
		     THAW_LOCK_PYLOCK, "marker");
	expect_error(PYLOCK("{\"name\": \"a\", \"vcs\": {\"type\": \"hg\", \"url\": \"https://x\","
			    " \"commit-id\": \"0123456\"}}"),
		     THAW_LOCK_PYLOCK, "git");
	expect_error(PYLOCK("{\"name\": \"a\", \"directory\": {}}"), THAW_LOCK_PYLOCK, "path");
	expect_error(PYLOCK("{\"name\": \"a\", \"archive\": {\"url\": \"ftp://x\"}}"),
		     THAW_LOCK_PYLOCK, "invalid source");
}

static void test_requirement_and_name_checks(void **state)
{
	assert_true(thaw_requirement_valid("requests>=2"));
	assert_true(thaw_requirement_valid("a @ https://x/y.whl ; python_version >= '3.8'"));
	assert_false(thaw_requirement_valid(""));
	assert_false(thaw_requirement_valid("-e ."));
	assert_false(thaw_requirement_valid("--index-url=http://x"));
	assert_false(thaw_requirement_valid("a\nb"));
	char big[REQUIREMENT_MAX_BYTES + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	assert_false(thaw_requirement_valid(big));
	big[REQUIREMENT_MAX_BYTES] = 0;
	assert_true(thaw_requirement_valid(big));

	assert_true(thaw_dist_name_valid("zope.interface"));
	assert_false(thaw_dist_name_valid("_a"));
	assert_false(thaw_dist_name_valid("a-"));
	assert_true(thaw_dist_name_equal("Zope.Interface", "zope-interface"));
	assert_true(thaw_dist_name_equal("a__b", "A-b"));
	assert_false(thaw_dist_name_equal("ab", "a-b"));
	assert_false(thaw_dist_name_equal("a", "ab"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uv_pins_what_the_project_reaches),
		cmocka_unit_test(test_uv_edge_markers_become_requirement_markers),
		cmocka_unit_test(test_uv_unmarked_edge_makes_a_package_unconditional),
		cmocka_unit_test(test_uv_extras_follow_optional_dependencies),
		cmocka_unit_test(test_uv_direct_sources),
		cmocka_unit_test(test_uv_without_a_project_entry_pins_everything),
		cmocka_unit_test(test_uv_malformed_or_hostile_entries_are_refused),
		cmocka_unit_test(test_pylock_entries),
		cmocka_unit_test(test_pylock_malformed_or_hostile_entries_are_refused),
		cmocka_unit_test(test_requirement_and_name_checks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
