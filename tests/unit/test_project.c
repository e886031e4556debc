/*
 * Tests for the project model (src/project/): the name and entry-module
 * rules, the reader's JSON answer as the host parses it (hostile: every
 * malformed shape is refused with a message), and project_read's rules for
 * which files count and how they combine. project_read runs here with a
 * stand-in TOML parser that reads JSON, so the rules are tested without
 * Python; the real reader (tomllib in `thaw config`) is tested end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

static void test_name_rule(void **state)
{
	const char *good[] = {"a", "hello", "my-worker_2", "0", "a-b"};
	const char *bad[] = {"", "-a", "a-", "Hello", "a.b", "a b", "a/b", "é",
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(project_name_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (project_name_valid(bad[i]))
			fail_msg("'%s' accepted as a name", bad[i]);
	assert_false(project_name_valid(NULL));
	char max[64];
	memset(max, 'a', 63);
	max[63] = 0;
	assert_true(project_name_valid(max));
}

static void test_main_rule(void **state)
{
	const char *good[] = {"src/entry.py", "app.py", "a/b/c.py", "x..y.py"};
	const char *bad[] = {"/abs.py", "../up.py", "src/../x.py", "./x.py", "src//x.py",
			     "x.txt", ".py", "src\\x.py", "src/\x01.py", "src/"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(project_main_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (project_main_valid(bad[i]))
			fail_msg("'%s' accepted as an entry module", bad[i]);
}

static struct project *parse(const char *text, char *err, size_t errlen)
{
	err[0] = 0;
	return project_parse(text, strlen(text), "/srv/p", err, errlen);
}

static void test_answer_round_trip(void **state)
{
	char err[512];
	struct project *p = parse("{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"src/entry.py\","
				  "\"vars\":{\"A\":1,\"B\":\"x\"},\"dependencies\":[\"fastapi\"],"
				  "\"sources\":\"pyproject.toml\",\"allow_entropy_at_import\":true}}",
				  err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->dir, "/srv/p");
	assert_string_equal(p->name, "hi");
	assert_string_equal(p->main, "src/entry.py");
	assert_int_equal(json_integer_value(json_object_get(p->vars, "A")), 1);
	assert_int_equal(json_array_size(p->dependencies), 1);
	assert_true(p->allow_entropy_at_import);
	json_t *j = project_to_json(p);
	struct project *q = project_from_json(j, "/other", err, sizeof err);
	assert_non_null(q);
	json_t *k = project_to_json(q);
	assert_true(json_equal(j, k));
	assert_string_equal(q->dir, "/other");
	json_decref(j);
	json_decref(k);
	project_free(p);
	project_free(q);
	project_free(NULL);
}

static void test_malformed_answers(void **state)
{
	struct {
		const char *text, *want;
	} cases[] = {
		{"", "not valid"},
		{"not json", "not valid"},
		{"[]", "not valid"},
		{"{}", "not valid"},
		{"{\"ok\":false,\"error\":\"pyproject.toml: bad\"}", "pyproject.toml: bad"},
		{"{\"ok\":false}", "could not be read"},
		{"{\"ok\":true}", "malformed"},
		{"{\"ok\":true,\"project\":[]}", "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\"}}", "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":1,\"main\":\"a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":[],\"dependencies\":[]}}",
		 "vars"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":{}}}",
		 "dependencies"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[1]}}",
		 "dependency"},
		{"{\"ok\":true,\"project\":{\"name\":\"Bad\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "invalid name"},
		{"{\"ok\":true,\"project\":{\"name\":\"ok\",\"main\":\"../a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "invalid main"},
		{"{\"ok\":true,\"project\":{\"name\":\"ok\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[],"
		 "\"allow_entropy_at_import\":\"yes\"}}",
		 "malformed"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char err[512];
		struct project *p = parse(cases[i].text, err, sizeof err);
		if (p)
			fail_msg("accepted: %s", cases[i].text);
		if (!strstr(err, cases[i].want))
			fail_msg("%s: error '%s' does not say '%s'", cases[i].text, err, cases[i].want);
	}
	/* Larger than the reader may answer: refused before parsing. */
	char err[256];
	assert_null(project_parse("{}", PROJECT_MAX_JSON_BYTES + 1, "/", err, sizeof err));
	assert_non_null(strstr(err, "too large"));
}

/* --- project_read with a stand-in TOML parser (JSON text) --- */

static int toml_calls;
static json_t *json_as_toml(const char *text, size_t len, char *err, size_t errlen)
{
	toml_calls++;
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

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/thaw-test-project-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	toml_calls = 0;
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

static void test_read_pyproject(void **state)
{
	put("pyproject.toml", "{\"project\":{\"name\":\"pkg\",\"dependencies\":[\"httpx\"]},"
			      "\"tool\":{\"thaw\":{\"name\":\"web\",\"vars\":{\"X\":\"1\"}}}}");
	put("src/entry.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->name, "web"); /* [tool.thaw] name over [project] */
	assert_string_equal(p->main, "src/entry.py");
	assert_string_equal(p->sources, "pyproject.toml");
	assert_string_equal(json_string_value(json_object_get(p->vars, "X")), "1");
	assert_string_equal(json_string_value(json_array_get(p->dependencies, 0)), "httpx");
	char real[512];
	assert_non_null(realpath(dir, real));
	assert_string_equal(p->dir, real);
	project_free(p);
}

static void test_read_wrangler_jsonc_without_toml(void **state)
{
	put("wrangler.jsonc", "{ // a comment\n \"name\": \"cf\", \"main\": \"app.py\",\n"
			      " \"vars\": {\"A\": 2}, \"compatibility_date\": \"2025-01-01\", }");
	put("app.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(toml_calls, 0); /* JSONC needs no TOML parser */
	assert_string_equal(p->name, "cf");
	assert_string_equal(p->main, "app.py");
	assert_string_equal(p->sources, "wrangler.jsonc");
	project_free(p);
}

static void test_read_pyproject_over_wrangler(void **state)
{
	put("wrangler.toml", "{\"name\":\"w\",\"vars\":{\"A\":\"wrangler\",\"B\":\"kept\"}}");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"vars\":{\"A\":\"pyproject\"}}}}");
	put("src/entry.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->name, "w");
	assert_string_equal(json_string_value(json_object_get(p->vars, "A")), "pyproject");
	assert_string_equal(json_string_value(json_object_get(p->vars, "B")), "kept");
	assert_string_equal(p->sources, "wrangler.toml + pyproject.toml");
	project_free(p);
}

static void test_read_refusals(void **state)
{
	char err[512];
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "has no pyproject.toml or wrangler.toml"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"name\":\"Bad Name\"}}}");
	put("src/entry.py", "");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "is not valid"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"main\":\"../escape.py\"}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "inside the project"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"main\":\"src/missing.py\"}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "does not exist"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"vars\":[1]}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "'vars' must be a table"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"allow_entropy_at_import\":1}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "true or false"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":3}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "must be a table"));

	put("pyproject.toml", "not toml");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "pyproject.toml: Invalid value"));

	put("pyproject.toml", "[1, 2]");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "top level must be a table"));
}

static void test_requires_python(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *version;
		int want;
	} cases[] = {
		{">=3.11", "3.11.2", 1},
		{">=3.12", "3.11.2", 0},
		{">=3.10,<3.13", "3.11.2", 1},
		{">=3.10, <3.11", "3.11.2", 0},
		{"~=3.11", "3.11.2", 1},
		{"~=3.12", "3.11.2", 0},
		{"~=3.11.3", "3.11.2", 0},
		{"~=3.11.1", "3.11.2", 1},
		{"~=3.10", "3.11.2", 1}, /* >=3.10, ==3.* */
		{"==3.11.*", "3.11.2", 1},
		{"==3.12.*", "3.11.2", 0},
		{"==3.11", "3.11.2", 0}, /* PEP 440: ==3.11 is 3.11.0 */
		{"==3.11.2", "3.11.2", 1},
		{"!=3.11.*", "3.11.2", 0},
		{"!=3.12", "3.11.2", 1},
		{">3.11", "3.11.2", 1},
		{"<=3.11", "3.11.2", 0},
		{">=3", "3.11.2", 1},
		{"  >=3.8  ", "3.11.2", 1},
		/* Not read: the caller says nothing. */
		{"", "3.11.2", -1},
		{">=3.12a1", "3.11.2", -1},
		{"3.11", "3.11.2", -1},
		{">=3.11,", "3.11.2", -1},
		{">=*", "3.11.2", -1},
		{">=3.11.*", "3.11.2", -1},
		{"~=3", "3.11.2", -1},
		{">=1.2.3.4.5.6.7", "3.11.2", -1},
		{">=99999999999", "3.11.2", -1},
		{"=>3.11", "3.11.2", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = project_python_satisfies(cases[i].spec, cases[i].version);
		if (got != cases[i].want)
			fail_msg("'%s' against %s: %d, expected %d", cases[i].spec, cases[i].version,
				 got, cases[i].want);
	}
	assert_int_equal(project_python_satisfies(NULL, "3.11.2"), -1);
}

static void test_read_notes_a_requires_python_that_excludes_the_embedded_one(void **state)
{
	(void)state;
	put("pyproject.toml", "{\"project\":{\"name\":\"pkg\",\"requires-python\":\">=99.0\"}}");
	put("src/entry.py", "");
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *notes = open_memstream(&text, &len);
	assert_non_null(notes);
	struct project *p = project_read(dir, json_as_toml, notes, err, sizeof err);
	fclose(notes);
	if (!p)
		fail_msg("%s", err);
	project_free(p);
	assert_non_null(strstr(text, "requires-python '>=99.0' excludes the Python thaw embeds"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_main_rule),
		cmocka_unit_test(test_answer_round_trip),
		cmocka_unit_test(test_malformed_answers),
		cmocka_unit_test_setup_teardown(test_read_pyproject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_wrangler_jsonc_without_toml, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_pyproject_over_wrangler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_refusals, setup, teardown),
		cmocka_unit_test(test_requires_python),
		cmocka_unit_test_setup_teardown(
			test_read_notes_a_requires_python_that_excludes_the_embedded_one, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
