/*
 * Tests for dotenv files (src/project/dotenv.c): the forms wrangler's
 * .dev.vars takes, and malformed files refused naming their line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "project/dotenv.h"

static json_t *parse_ok(const char *text)
{
	char err[256] = "";
	json_t *j = dotenv_parse(text, strlen(text), err, sizeof err);
	if (!j)
		fail_msg("refused: %s", err);
	return j;
}

static const char *get(json_t *j, const char *k)
{
	json_t *v = json_object_get(j, k);
	if (!v)
		fail_msg("no %s", k);
	return json_string_value(v);
}

static void test_forms(void **state)
{
	json_t *j = parse_ok("\xef\xbb\xbf# secrets for dev\n"
			     "API_KEY=abc123\n"
			     "  SPACED = padded value   \n"
			     "export EXPORTED=yes\n"
			     "COMMENTED=value # a comment\n"
			     "HASH=a#b\n"
			     "DQ=\"line1\\nline2 \\\"q\\\" \\\\ # not a comment\"\n"
			     "SQ='raw \\n $HOME'\n"
			     "MULTI=\"first\nsecond\"\n"
			     "EMPTY=\n"
			     "CRLF=windows\r\n"
			     "\n"
			     "API_KEY=later wins\n"
			     "UNICODE=caf\xc3\xa9\n"
			     "LAST=no newline");
	assert_string_equal(get(j, "API_KEY"), "later wins");
	assert_string_equal(get(j, "SPACED"), "padded value");
	assert_string_equal(get(j, "EXPORTED"), "yes");
	assert_string_equal(get(j, "COMMENTED"), "value");
	assert_string_equal(get(j, "HASH"), "a#b");
	assert_string_equal(get(j, "DQ"), "line1\nline2 \"q\" \\ # not a comment");
	assert_string_equal(get(j, "SQ"), "raw \\n $HOME");
	assert_string_equal(get(j, "MULTI"), "first\nsecond");
	assert_string_equal(get(j, "EMPTY"), "");
	assert_string_equal(get(j, "CRLF"), "windows");
	assert_string_equal(get(j, "UNICODE"), "caf\xc3\xa9");
	assert_string_equal(get(j, "LAST"), "no newline");
	assert_int_equal(json_object_size(j), 12);
	json_decref(j);
	j = parse_ok("");
	assert_int_equal(json_object_size(j), 0);
	json_decref(j);
}

static void test_malformed_files_name_the_line(void **state)
{
	static const struct {
		const char *text, *want;
	} bad[] = {
		{"A=1\nno equals here\n", "line 2: 'no' has no '='"},
		{"A=1\n\n=value\n", "line 3: expected NAME=value"},
		{"1ABC=x\n", "line 1: expected NAME=value"},
		{"A=1\nB=\"open\nstill open\n", "line 2: the double quote of B is never closed"},
		{"C='x'y\n", "line 1: text after the closing quote of C"},
		{"D=\xff\xfe\n", "line 1: the value of D is not valid UTF-8"},
		{"E-F=1\n", "line 1: 'E' has no '='"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char err[256] = "";
		json_t *j = dotenv_parse(bad[i].text, strlen(bad[i].text), err, sizeof err);
		if (j)
			fail_msg("accepted: %s", bad[i].text);
		if (!strstr(err, bad[i].want))
			fail_msg("'%s': error '%s' does not say '%s'", bad[i].text, err, bad[i].want);
	}
	char err[256];
	assert_null(dotenv_parse("A=1\0B=2", 7, err, sizeof err));
	assert_non_null(strstr(err, "NUL"));
	static char many[20000];
	size_t n = 0;
	for (int i = 0; i <= DOTENV_MAX_ENTRIES; i++)
		n += (size_t)snprintf(many + n, sizeof many - n, "K%d=v\n", i);
	assert_null(dotenv_parse(many, n, err, sizeof err));
	assert_non_null(strstr(err, "more than 1000 entries"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_malformed_files_name_the_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
