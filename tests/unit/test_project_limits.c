/*
 * Tests for a worker's resource limits (src/project/limits.c): the
 * `[tool.thaw.limits]` and wrangler `limits` tables as project_read takes
 * them (a stand-in TOML parser reads JSON), the reader's answer as the host
 * parses it (hostile: every bad value refused, naming the key and range),
 * the host flags, caps and the values an instance gets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

static json_t *json_as_toml(const char *text, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	if (!j)
		snprintf(err, errlen, "Invalid value (at line %d)", je.line);
	return j;
}

static char dir[256];

static void put(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = 0;
	mkdir_p(path, 0755);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void drop(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
}

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/thaw-test-limits-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	put("src/entry.py", "");
	return 0;
}

static int teardown(void **state)
{
	remove_tree(dir);
	return 0;
}

static struct project *read_dir(char *err, size_t errlen)
{
	err[0] = 0;
	return project_read(dir, json_as_toml, NULL, err, errlen);
}

static void expect_refused(const char *file, const char *text, const char *what)
{
	char err[512];
	put(file, text);
	struct project *p = read_dir(err, sizeof err);
	if (p)
		fail_msg("%s accepted: %s", file, text);
	if (!strstr(err, what))
		fail_msg("%s: expected '%s' in the message, got: %s", text, what, err);
	drop(file);
}

static void test_every_key_read_from_tool_thaw(void **state)
{
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"memory_mb\":256,\"cpu_ms\":50,"
			      "\"pids\":32,\"open_files\":64,\"file_size_mb\":1,\"tmp_mb\":8,"
			      "\"subrequests\":0}}}}");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	const struct project_limits *l = &p->limits;
	assert_int_equal(l->set, (1u << PROJECT_LIMIT_COUNT) - 1);
	assert_int_equal(l->v[PROJECT_LIMIT_MEMORY_MB], 256);
	assert_int_equal(l->v[PROJECT_LIMIT_CPU_MS], 50);
	assert_int_equal(l->v[PROJECT_LIMIT_PIDS], 32);
	assert_int_equal(l->v[PROJECT_LIMIT_OPEN_FILES], 64);
	assert_int_equal(l->v[PROJECT_LIMIT_FILE_SIZE_MB], 1);
	assert_int_equal(l->v[PROJECT_LIMIT_TMP_MB], 8);
	assert_int_equal(l->v[PROJECT_LIMIT_SUBREQUESTS], 0);
	/* And through the reader's answer, unchanged. */
	json_t *j = project_to_json(p);
	struct project *q = project_from_json(j, "/srv/p", err, sizeof err);
	json_decref(j);
	if (!q)
		fail_msg("%s", err);
	assert_memory_equal(&q->limits, &p->limits, sizeof p->limits);
	project_free(q);
	project_free(p);
}

static void test_wrangler_cpu_ms_and_subrequests_pyproject_wins_key_by_key(void **state)
{
	put("wrangler.toml", "{\"name\":\"w\",\"main\":\"src/entry.py\","
			     "\"limits\":{\"cpu_ms\":1000,\"subrequests\":50}}");
	put("pyproject.toml",
	    "{\"tool\":{\"thaw\":{\"limits\":{\"cpu_ms\":20,\"memory_mb\":64}}}}");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->limits.v[PROJECT_LIMIT_CPU_MS], 20);      /* pyproject's */
	assert_int_equal(p->limits.v[PROJECT_LIMIT_SUBREQUESTS], 50); /* wrangler's, kept */
	assert_int_equal(p->limits.v[PROJECT_LIMIT_MEMORY_MB], 64);
	assert_false(p->limits.set & (1u << PROJECT_LIMIT_PIDS));
	project_free(p);
	/* None set: none in the answer either. */
	drop("pyproject.toml");
	put("wrangler.toml", "{\"name\":\"w\",\"main\":\"src/entry.py\"}");
	p = read_dir(err, sizeof err);
	assert_non_null(p);
	assert_int_equal(p->limits.set, 0);
	json_t *j = project_to_json(p);
	assert_null(json_object_get(j, "limits"));
	json_decref(j);
	project_free(p);
}

static void test_bad_values_are_refused_naming_the_key_and_range(void **state)
{
	expect_refused("pyproject.toml",
		       "{\"tool\":{\"thaw\":{\"limits\":{\"memory_mb\":\"128\"}}}}",
		       "limits.memory_mb must be a whole number from 32 to 1048576");
	expect_refused("pyproject.toml",
		       "{\"tool\":{\"thaw\":{\"limits\":{\"memory_mb\":\"128\"}}}}",
		       "not a string");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"cpu_ms\":0}}}}",
		       "limits.cpu_ms must be a whole number from 1 to 86400000");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"cpu_ms\":1.5}}}}",
		       "not a fraction");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"pids\":-1}}}}",
		       "limits.pids");
	expect_refused("pyproject.toml",
		       "{\"tool\":{\"thaw\":{\"limits\":{\"open_files\":99999999999}}}}",
		       "limits.open_files");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"tmp_mb\":true}}}}",
		       "limits.tmp_mb");
	expect_refused("pyproject.toml",
		       "{\"tool\":{\"thaw\":{\"limits\":{\"subrequests\":10000001}}}}",
		       "limits.subrequests must be a whole number from 0 to 10000000");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":{\"memory\":128}}}}",
		       "limits.memory is not a limit thaw knows (memory_mb, cpu_ms");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":[1]}}}",
		       "'limits' must be a table");
	expect_refused("pyproject.toml", "{\"tool\":{\"thaw\":{\"limits\":5}}}",
		       "'limits' must be a table");
	expect_refused("wrangler.jsonc",
		       "{\"name\":\"w\",\"main\":\"src/entry.py\",\"limits\":{\"memory_mb\":64}}",
		       "limits.memory_mb is thaw's, not wrangler's: set it in pyproject.toml");
	expect_refused("wrangler.jsonc",
		       "{\"name\":\"w\",\"main\":\"src/entry.py\",\"limits\":{\"cpu\":64}}",
		       "wrangler.jsonc: limits.cpu is not a limit thaw knows (cpu_ms, "
		       "subrequests)");
}

static void test_malformed_answers_are_refused(void **state)
{
	static const char *const bad[] = {
		"{\"memory_mb\":1}",    "{\"memory_mb\":null}", "{\"x\":1}",
		"{\"pids\":1e3}",       "{\"cpu_ms\":\"5\"}",   "[]",
		"{\"subrequests\":-5}", "{\"file_size_mb\":0}", "7",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char text[512], err[512];
		snprintf(text, sizeof text,
			 "{\"ok\":true,\"project\":{\"name\":\"a\",\"main\":\"a.py\",\"vars\":{},"
			 "\"dependencies\":[],\"limits\":%s}}",
			 bad[i]);
		struct project *p = project_parse(text, strlen(text), "/srv/p", err, sizeof err);
		if (p)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(err, "malformed project description"));
	}
}

static void test_flags_caps_and_effective_values(void **state)
{
	struct project_limits def, cap, want = {0}, out;
	char err[256];
	project_limits_host_defaults(&def, &cap);
	assert_int_equal(def.v[PROJECT_LIMIT_MEMORY_MB], 128);
	assert_int_equal(def.v[PROJECT_LIMIT_CPU_MS], 30000);
	assert_int_equal(cap.v[PROJECT_LIMIT_CPU_MS], 300000);
	assert_int_equal(def.v[PROJECT_LIMIT_SUBREQUESTS], 10000);

	assert_int_equal(project_limits_parse_flag(&def, "memory_mb=256", err, sizeof err), 0);
	assert_int_equal(def.v[PROJECT_LIMIT_MEMORY_MB], 256);
	assert_int_equal(project_limits_parse_flag(&def, "memory_mb=8", err, sizeof err), -1);
	assert_non_null(strstr(err, "memory_mb must be a whole number from 32"));
	assert_int_equal(project_limits_parse_flag(&def, "memory_mb", err, sizeof err), -1);
	assert_non_null(strstr(err, "NAME=N"));
	assert_int_equal(project_limits_parse_flag(&def, "nope=3", err, sizeof err), -1);
	assert_int_equal(project_limits_parse_flag(&def, "cpu_ms=12x", err, sizeof err), -1);
	assert_int_equal(project_limits_parse_flag(&cap, "pids=100", err, sizeof err), 0);

	/* Over a cap: refused (a deploy) ... */
	want.v[PROJECT_LIMIT_PIDS] = 101;
	want.set = 1u << PROJECT_LIMIT_PIDS;
	assert_int_equal(project_limits_check_caps(&want, &cap, "w", err, sizeof err), -1);
	assert_non_null(strstr(err, "limits.pids = 101 is over this host's cap of 100"));
	want.v[PROJECT_LIMIT_PIDS] = 100;
	assert_int_equal(project_limits_check_caps(&want, &cap, "w", err, sizeof err), 0);
	/* ... or clamped (a version stored before the cap was lowered). */
	want.v[PROJECT_LIMIT_PIDS] = 500;
	unsigned clamped = project_limits_effective(&want, &def, &cap, &out);
	assert_int_equal(clamped, 1u << PROJECT_LIMIT_PIDS);
	assert_int_equal(out.v[PROJECT_LIMIT_PIDS], 100);
	assert_int_equal(out.v[PROJECT_LIMIT_MEMORY_MB], 256); /* the host's default */
	assert_int_equal(project_limits_effective(NULL, &def, &cap, &out), 0);
	assert_int_equal(out.v[PROJECT_LIMIT_PIDS], 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_key_read_from_tool_thaw, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_wrangler_cpu_ms_and_subrequests_pyproject_wins_key_by_key, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_bad_values_are_refused_naming_the_key_and_range, setup, teardown),
		cmocka_unit_test(test_malformed_answers_are_refused),
		cmocka_unit_test(test_flags_caps_and_effective_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
