/*
 * Tests for the JSONC reader (src/common/jsonc.c). jsonc_strip is checked
 * byte for byte against the expected rewrite (same length, comments and
 * trailing commas turned into spaces, newlines kept), reading its input from
 * a buffer that ends at an inaccessible page, so it cannot lean on a NUL
 * terminator; jsonc_parse is checked through the jansson values it returns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fenced.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/jsonc.h"


#define CANARY '\x7f'

/* Strip in and require exactly want (which must be as long as in). */
static void check_strip(const char *in, const char *want)
{
	size_t len = strlen(in);
	if (strlen(want) != len)
		fail_msg("bad test: expectation for [%s] has a different length", in);
	struct fenced fc;
	const char *src = fenced_copy(&fc, in, len);
	char *out = malloc(len + 1);
	assert_non_null(out);
	memset(out, CANARY, len + 1);
	const char *err = NULL;
	int r = jsonc_strip(src, len, out, &err);
	if (r != 0)
		fail_msg("jsonc_strip([%s]) failed: %s", in, err ? err : "(no message)");
	if (memcmp(out, want, len) != 0) {
		out[len] = '\0';
		fail_msg("jsonc_strip([%s])\n  got  [%s]\n  want [%s]", in, out, want);
	}
	assert_int_equal(out[len], CANARY);
	free(out);
	fenced_free(&fc);
}

/* Strip in and require an error whose message contains what. */
static void check_strip_fails(const char *in, const char *what)
{
	size_t len = strlen(in);
	struct fenced fc;
	const char *src = fenced_copy(&fc, in, len);
	char *out = malloc(len + 1);
	assert_non_null(out);
	const char *err = NULL;
	if (jsonc_strip(src, len, out, &err) != -1)
		fail_msg("jsonc_strip([%s]) succeeded, want an error", in);
	assert_non_null(err);
	if (!strstr(err, what))
		fail_msg("jsonc_strip([%s]): error [%s] does not mention [%s]", in, err, what);
	free(out);
	fenced_free(&fc);
}

/* Parse text (not NUL-terminated) with jsonc_parse; returns a new reference. */
static json_t *parse(const char *text, char *errbuf, size_t errlen)
{
	size_t len = strlen(text);
	struct fenced fc;
	const char *src = fenced_copy(&fc, text, len);
	json_t *j = jsonc_parse(src, len, errbuf, errlen);
	fenced_free(&fc);
	return j;
}

static json_t *parse_ok(const char *text)
{
	char errbuf[256] = "";
	json_t *j = parse(text, errbuf, sizeof(errbuf));
	if (!j)
		fail_msg("jsonc_parse([%s]) failed: %s", text, errbuf);
	return j;
}

static void test_plain_json_is_unchanged(void **state)
{
	(void)state;
	check_strip("", "");
	check_strip("{}", "{}");
	check_strip("{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}",
		    "{\"a\": [1, 2, {\"b\": null}], \"c\": \"d\"}");
	check_strip("[1,\n 2,\r\n\t3]", "[1,\n 2,\r\n\t3]");
}

static void test_line_comments_become_spaces(void **state)
{
	(void)state;
	check_strip("// head\n{}", "       \n{}");
	check_strip("{\"a\": 1} // tail\n", "{\"a\": 1}        \n");
	check_strip("{} // no newline at the end", "{}                         ");
	check_strip("{\n  // one\n  // two\n  \"a\": 1\n}", "{\n        \n        \n  \"a\": 1\n}");
	check_strip("{}//", "{}  ");
	check_strip("[1,// c\n2]", "[1,    \n2]");
	check_strip("[1] // a /* inside a line comment\n", "[1]                              \n");
}

static void test_block_comments_become_spaces_keeping_newlines(void **state)
{
	(void)state;
	check_strip("/**/{}", "    {}");
	check_strip("{/* a */}", "{       }");
	/* A carriage return inside a comment is blanked too; only \n counts lines. */
	check_strip("/* one\ntwo\r\n*/[]", "      \n    \n  []");
	check_strip("[1 /* x */, 2]", "[1        , 2]");
	check_strip("[/* ** / * */1]", "[            1]");
	check_strip("[/* // not a line comment */1]", "[                           1]");
	check_strip("[1/*a*//*b*/]", "[1          ]");
	check_strip("{}/* at the end */", "{}                ");
}

static void test_lone_slash_is_left_alone(void **state)
{
	(void)state;
	check_strip("[1 / 2]", "[1 / 2]");
	check_strip("{}/", "{}/");
	check_strip("/", "/");
}

static void test_comment_markers_inside_strings_are_kept(void **state)
{
	(void)state;
	check_strip("{\"url\": \"https://example.com/a\"}", "{\"url\": \"https://example.com/a\"}");
	check_strip("[\"/* not a comment */\"]", "[\"/* not a comment */\"]");
	check_strip("[\"*/\", \"//\", \"/*\"]", "[\"*/\", \"//\", \"/*\"]");
	check_strip("{\"//\": \"/*\"} // real", "{\"//\": \"/*\"}        ");
}

static void test_escaped_quotes_do_not_end_strings(void **state)
{
	(void)state;
	check_strip("[\"a\\\"//b\"]", "[\"a\\\"//b\"]");
	check_strip("[\"a\\\"/*b*/\", 1,]", "[\"a\\\"/*b*/\", 1 ]");
	/* An escaped backslash does end before the quote: what follows is a comment. */
	check_strip("[\"a\\\\\"//b\n]", "[\"a\\\\\"   \n]");
	check_strip("[\"\\\\\\\"\",]", "[\"\\\\\\\"\" ]");
	check_strip("[\"\\u0022,]\"]", "[\"\\u0022,]\"]");
}

static void test_trailing_commas_are_removed(void **state)
{
	(void)state;
	check_strip("{\"a\": 1,}", "{\"a\": 1 }");
	check_strip("[1, 2,]", "[1, 2 ]");
	check_strip("[1, 2, ]", "[1, 2  ]");
	check_strip("[1,\n\t\r ]", "[1 \n\t\r ]");
	check_strip("[[1,],{\"a\":[2,],},]", "[[1 ],{\"a\":[2 ] } ]");
	check_strip("{\"a\": {\"b\": 1,},\n}", "{\"a\": {\"b\": 1 } \n}");
}

static void test_trailing_comma_before_comments_is_removed(void **state)
{
	(void)state;
	check_strip("[1, // last\n]", "[1         \n]");
	check_strip("[1,/* c */]", "[1        ]");
	check_strip("{\"a\": 1, /* x */ // y\n /* z */ }", "{\"a\": 1              \n         }");
	check_strip("[1,/*\n*/\n]", "[1   \n  \n]");
}

static void test_commas_that_are_not_trailing_are_kept(void **state)
{
	(void)state;
	check_strip("[1,/* c */2]", "[1,       2]");
	check_strip("[1, // c\n 2]", "[1,     \n 2]");
	check_strip("[\"a,]\", \"b,}\",]", "[\"a,]\", \"b,}\" ]");
	check_strip("[\",\",]", "[\",\" ]");
	check_strip("{\"a\": \",}\"}", "{\"a\": \",}\"}");
	/* The comma before a string is not trailing even if the string holds a bracket. */
	check_strip("[1, \"]\"]", "[1, \"]\"]");
}

static void test_unterminated_string_is_an_error(void **state)
{
	(void)state;
	check_strip_fails("\"", "unterminated string");
	check_strip_fails("{\"a", "unterminated string");
	check_strip_fails("{\"a\": \"b}", "unterminated string");
	check_strip_fails("[\"a\\\"]", "unterminated string");
	check_strip_fails("[\"a\\", "unterminated string");
	check_strip_fails("[\"ab\\", "unterminated string");
}

static void test_unterminated_block_comment_is_an_error(void **state)
{
	(void)state;
	check_strip_fails("/*", "comment");
	check_strip_fails("/*/", "comment");
	check_strip_fails("{} /* never closed", "comment");
	check_strip_fails("{} /* almost *", "comment");
	check_strip_fails("{} /* a */ /* b ", "comment");
}

static void test_parse_gives_expected_values(void **state)
{
	(void)state;
	const char *text = "{\n"
			   "  // a comment\n"
			   "  \"int\": 42, /* block */\n"
			   "  \"real\": 1.5,\n"
			   "  \"url\": \"http://x/*y*/\",\n"
			   "  \"quote\": \"a\\\"//b\",\n"
			   "  \"list\": [true, false, null, \"c,]\",],\n"
			   "  \"nested\": {\"k\": [],},\n"
			   "}\n";
	json_t *j = parse_ok(text);
	assert_true(json_is_object(j));
	assert_int_equal(json_object_size(j), 6);
	assert_int_equal(json_integer_value(json_object_get(j, "int")), 42);
	assert_true(json_is_integer(json_object_get(j, "int")));
	assert_true(json_real_value(json_object_get(j, "real")) == 1.5);
	assert_string_equal(json_string_value(json_object_get(j, "url")), "http://x/*y*/");
	assert_string_equal(json_string_value(json_object_get(j, "quote")), "a\"//b");
	json_t *list = json_object_get(j, "list");
	assert_true(json_is_array(list));
	assert_int_equal(json_array_size(list), 4);
	assert_true(json_is_true(json_array_get(list, 0)));
	assert_true(json_is_false(json_array_get(list, 1)));
	assert_true(json_is_null(json_array_get(list, 2)));
	assert_string_equal(json_string_value(json_array_get(list, 3)), "c,]");
	json_t *nested = json_object_get(j, "nested");
	assert_int_equal(json_object_size(nested), 1);
	assert_int_equal(json_array_size(json_object_get(nested, "k")), 0);
	json_decref(j);
}

static void test_parse_reports_strip_errors(void **state)
{
	(void)state;
	char errbuf[128];
	strcpy(errbuf, "untouched");
	assert_null(parse("{\"a\": \"b", errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "unterminated string"));
	strcpy(errbuf, "untouched");
	assert_null(parse("{} /* x", errbuf, sizeof(errbuf)));
	assert_non_null(strstr(errbuf, "comment"));
}

static void test_parse_errors_keep_line_numbers(void **state)
{
	(void)state;
	char errbuf[256] = "";
	/* The error is on line 5: the comments before it must not eat newlines. */
	assert_null(parse("/* one\n two */\n// three\n{\"a\": 1,\n \"b\": }\n", errbuf,
			  sizeof(errbuf)));
	if (!strstr(errbuf, "line 5"))
		fail_msg("error does not point at line 5: %s", errbuf);
}

static void test_parse_rejects_what_is_not_json_after_stripping(void **state)
{
	(void)state;
	char errbuf[256];
	assert_null(parse("{\"a\": 1,, }", errbuf, sizeof(errbuf)));
	assert_null(parse("[1 2]", errbuf, sizeof(errbuf)));
	assert_null(parse("", errbuf, sizeof(errbuf)));
	assert_null(parse("// only a comment\n", errbuf, sizeof(errbuf)));
	assert_null(parse("{} trailing", errbuf, sizeof(errbuf)));
	assert_null(parse("{\"a\": 1, \"a\": 2}", errbuf, sizeof(errbuf)));
	/* A truncated error buffer still holds a terminated string. */
	char tiny[8];
	memset(tiny, 'x', sizeof(tiny));
	assert_null(parse("[1 2]", tiny, sizeof(tiny)));
	assert_true(memchr(tiny, '\0', sizeof(tiny)) != NULL);
}

static void test_parse_realistic_wrangler_config(void **state)
{
	(void)state;
	const char *text =
		"/**\n"
		" * For more details on how to configure Wrangler, refer to:\n"
		" * https://developers.cloudflare.com/workers/wrangler/configuration/\n"
		" */\n"
		"{\n"
		"\t\"$schema\": \"node_modules/wrangler/config-schema.json\",\n"
		"\t\"name\": \"hello-python\",\n"
		"\t\"main\": \"src/entry.py\",\n"
		"\t\"compatibility_date\": \"2025-04-10\",\n"
		"\t\"compatibility_flags\": [\n"
		"\t\t\"python_workers\", // required for Python\n"
		"\t],\n"
		"\t\"observability\": {\n"
		"\t\t\"enabled\": true\n"
		"\t},\n"
		"\t/**\n"
		"\t * Environment Variables\n"
		"\t * https://developers.cloudflare.com/workers/wrangler/configuration/#environment-variables\n"
		"\t */\n"
		"\t\"vars\": { \"GREETING\": \"hi // there\", \"PATTERN\": \"/*.py\", },\n"
		"\t\"kv_namespaces\": [\n"
		"\t\t{ \"binding\": \"CACHE\", \"id\": \"abc123\" }, /* prod */\n"
		"\t],\n"
		"\t\"routes\": [{\"pattern\": \"example.com/*\", \"zone_name\": \"example.com\"},],\n"
		"\t// \"placement\": { \"mode\": \"smart\" },\n"
		"}\n";
	json_t *j = parse_ok(text);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "hello-python");
	assert_string_equal(json_string_value(json_object_get(j, "main")), "src/entry.py");
	assert_string_equal(json_string_value(json_object_get(j, "compatibility_date")),
			    "2025-04-10");
	json_t *flags = json_object_get(j, "compatibility_flags");
	assert_int_equal(json_array_size(flags), 1);
	assert_string_equal(json_string_value(json_array_get(flags, 0)), "python_workers");
	assert_true(json_is_true(json_object_get(json_object_get(j, "observability"), "enabled")));
	json_t *vars = json_object_get(j, "vars");
	assert_int_equal(json_object_size(vars), 2);
	assert_string_equal(json_string_value(json_object_get(vars, "GREETING")), "hi // there");
	assert_string_equal(json_string_value(json_object_get(vars, "PATTERN")), "/*.py");
	json_t *kv = json_object_get(j, "kv_namespaces");
	assert_int_equal(json_array_size(kv), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(kv, 0), "binding")),
			    "CACHE");
	json_t *routes = json_object_get(j, "routes");
	assert_int_equal(json_array_size(routes), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(routes, 0), "pattern")),
			    "example.com/*");
	assert_null(json_object_get(j, "placement"));
	assert_int_equal(json_object_size(j), 9);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_json_is_unchanged),
		cmocka_unit_test(test_line_comments_become_spaces),
		cmocka_unit_test(test_block_comments_become_spaces_keeping_newlines),
		cmocka_unit_test(test_lone_slash_is_left_alone),
		cmocka_unit_test(test_comment_markers_inside_strings_are_kept),
		cmocka_unit_test(test_escaped_quotes_do_not_end_strings),
		cmocka_unit_test(test_trailing_commas_are_removed),
		cmocka_unit_test(test_trailing_comma_before_comments_is_removed),
		cmocka_unit_test(test_commas_that_are_not_trailing_are_kept),
		cmocka_unit_test(test_unterminated_string_is_an_error),
		cmocka_unit_test(test_unterminated_block_comment_is_an_error),
		cmocka_unit_test(test_parse_gives_expected_values),
		cmocka_unit_test(test_parse_reports_strip_errors),
		cmocka_unit_test(test_parse_errors_keep_line_numbers),
		cmocka_unit_test(test_parse_rejects_what_is_not_json_after_stripping),
		cmocka_unit_test(test_parse_realistic_wrangler_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
