/*
 * Tests for the readers of a thaw host's control-API answers
 * (src/ext/remote_fmt.c): the exact lines `thaw deploy`, `thaw tail` and
 * `thaw versions list` print for well-formed answers, the escaping of
 * whatever a hostile host puts in its strings, and the refusal of answers
 * that are not what the contract says.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ext/remote.h"

#define V3 "1f2e4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b"
#define V2 "2f2e2d2c-0000-4000-8000-000000000002"

struct capture {
	char *text;
	size_t len;
	FILE *f;
};

static void cap_open(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->f = open_memstream(&c->text, &c->len);
	assert_non_null(c->f);
}

/* Close and return the text (owned by c until cap_free). */
static const char *cap_text(struct capture *c)
{
	fclose(c->f);
	c->f = NULL;
	return c->text;
}

static void cap_free(struct capture *c)
{
	free(c->text);
}

static void check_safe(const char *in, size_t n, size_t max, int one_line, const char *want)
{
	struct capture c;
	cap_open(&c);
	thaw_remote_put_safe(c.f, in, n, max, one_line);
	assert_string_equal(cap_text(&c), want);
	cap_free(&c);
}

static void test_put_safe_escapes_terminal_controls(void **state)
{
	check_safe("plain text", 10, 0, 1, "plain text");
	check_safe("a\tb\nc", 5, 0, 0, "a\tb\nc");
	check_safe("a\tb\nc", 5, 0, 1, "a\tb\\x0ac");
	check_safe("\x1b[2J\x07\x7f", 6, 0, 0, "\\x1b[2J\\x07\\x7f");
	check_safe("a\0b", 3, 0, 0, "a\\x00b");
	/* U+009B (CSI) is a control; U+00E9 and U+20AC are not. */
	check_safe("\xc2\x9b" "2J \xc3\xa9\xe2\x82\xac", 10, 0, 0, "\\x9b2J \xc3\xa9\xe2\x82\xac");
	/* Bytes that are not UTF-8 show as bytes. */
	check_safe("\xff\x9b\xc2", 3, 0, 0, "\\xff\\x9b\\xc2");
	check_safe("\xed\xa0\x80", 3, 0, 0, "\\xed\\xa0\\x80"); /* a surrogate */
	/* Cut at max bytes, never inside a character. */
	check_safe("abcdef", 6, 4, 1, "abcd...");
	check_safe("ab\xc3\xa9\xc3\xa9", 6, 3, 1, "ab...");
	check_safe("abc", 3, 3, 1, "abc");
}

static void test_stage_lines_print_each_stage(void **state)
{
	static const char *lines[] = {
		"{\"stage\": \"stored\", \"version\": \"" V3 "\", \"number\": 3, \"bytes\": 1234567, "
		"\"sha256\": \"ab\", \"files\": 12}",
		"{\"stage\": \"building\"}",
		"{\"stage\": \"built\", \"snapshot_bytes\": 31200000, \"ms\": 850.4}",
		"{\"stage\": \"validated\", \"restore_ms\": 1.34, \"status\": 200}",
		"{\"stage\": \"warming\"}",
		"{\"stage\": \"live\", \"deployment\": {\"id\": \"d\", \"versions\": [{\"id\": \"" V3
		"\", \"percentage\": 10}, {\"id\": \"" V2 "\", \"percentage\": 90}]}}",
	};
	struct thaw_deploy_progress p = {0};
	struct capture c;
	char err[256];
	cap_open(&c);
	for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
		if (thaw_remote_stage_line(&p, lines[i], strlen(lines[i]), c.f, err, sizeof err) < 0)
			fail_msg("line %zu refused: %s", i, err);
	assert_string_equal(cap_text(&c), "stored version 3 (1f2e4a5b, 12 files, 1.2 MB)\n"
					  "building snapshot...\n"
					  "snapshot built: 31.2 MB in 850 ms\n"
					  "validated: restored in 1.3 ms, health check 200\n"
					  "warming\n");
	cap_free(&c);
	assert_int_equal(p.done, 1);
	assert_string_equal(p.version, V3);
	assert_int_equal(p.number, 3);

	json_t *versions = json_pack("[{s:s, s:i}]", "id", V2, "number", 2);
	cap_open(&c);
	thaw_remote_put_deployment(c.f, p.deployment, versions);
	assert_string_equal(cap_text(&c), "1f2e4a5b at 10%, 2 at 90%");
	cap_free(&c);
	json_decref(versions);

	/* Nothing may follow the end. */
	const char *more = "{\"stage\": \"building\"}";
	assert_int_equal(thaw_remote_stage_line(&p, more, strlen(more), stdout, err, sizeof err), -1);
	assert_non_null(strstr(err, "after the deployment ended"));
	thaw_remote_progress_dispose(&p);
}

static void test_failed_stage_keeps_the_whole_error(void **state)
{
	struct thaw_deploy_progress p = {0};
	char err[256];
	const char *line = "{\"stage\": \"failed\", \"error\": \"build failed\\nTraceback:\\n  x\"}";
	assert_int_equal(thaw_remote_stage_line(&p, line, strlen(line), stdout, err, sizeof err), 0);
	assert_int_equal(p.done, -1);
	assert_string_equal(p.error, "build failed\nTraceback:\n  x");
	thaw_remote_progress_dispose(&p);
}

static void check_stage_refused(const char *line, const char *what)
{
	struct thaw_deploy_progress p = {0};
	char err[256] = "";
	struct capture c;
	cap_open(&c);
	int r = thaw_remote_stage_line(&p, line, strlen(line), c.f, err, sizeof err);
	cap_text(&c);
	cap_free(&c);
	if (r != -1)
		fail_msg("[%s] was accepted", line);
	if (!strstr(err, what))
		fail_msg("[%s]: error '%s' does not say '%s'", line, err, what);
	thaw_remote_progress_dispose(&p);
}

static void test_stage_lines_that_break_the_contract_are_refused(void **state)
{
	check_stage_refused("not json", "not valid JSON");
	check_stage_refused("[1, 2]", "not a JSON object");
	check_stage_refused("{\"stage\": 3}", "without a stage");
	check_stage_refused("{\"stage\": \"stored\", \"version\": \"a\\nversion: x\", \"number\": 3}",
			    "invalid id");
	check_stage_refused("{\"stage\": \"stored\", \"version\": \"abc\", \"number\": -1}",
			    "invalid id");
	check_stage_refused("{\"stage\": \"stored\", \"version\": \"abc\", \"number\": 1, "
			    "\"number\": 2}", "not valid JSON");
	check_stage_refused("{\"stage\": \"live\"}", "without a deployment");
}

static void test_tail_line_format(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const char *line = "{\"ts\": 1714566896789, \"worker\": \"shop\", \"version\": \"" V3
			   "\", \"request_id\": \"req-1\", \"stream\": \"stdout\", "
			   "\"message\": \"hi \\u001b[2J\"}";
	const char *noreq = "{\"ts\": 1714566896001, \"version\": \"" V2
			    "\", \"request_id\": null, \"stream\": \"stderr\", \"message\": \"a\\nb\"}";
	struct capture c;
	char err[256];
	cap_open(&c);
	assert_int_equal(thaw_remote_tail_line(line, strlen(line), c.f, err, sizeof err), 0);
	assert_int_equal(thaw_remote_tail_line(noreq, strlen(noreq), c.f, err, sizeof err), 0);
	assert_string_equal(cap_text(&c), "12:34:56.789 1f2e4a5b req-1 stdout: hi \\x1b[2J\n"
					  "12:34:56.001 2f2e2d2c - stderr: a\nb\n");
	cap_free(&c);
	assert_int_equal(thaw_remote_tail_line("{", 1, stdout, err, sizeof err), -1);
}

static void test_versions_table(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const char *body =
		"{\"versions\": ["
		"{\"id\": \"" V2
		"\", \"number\": 2, \"created\": 1714566896000, \"message\": \"two\", "
		"\"state\": \"ready\", \"error\": null, \"snapshot\": \"abcd\", \"disk\": "
		"{\"own\": 2400000, "
		"\"shared\": 15982592, \"image\": 2310144, \"image_own_pages\": 558, "
		"\"image_base_pages\": 3902, \"working_set\": 11744}},"
		"{\"id\": \"" V3
		"\", \"number\": 3, \"created\": 1714566896000, \"message\": \"three\", "
		"\"state\": \"failed\", \"error\": \"entropy at import\\nTraceback\"}],"
		"\"deployment\": {\"id\": \"d\", \"versions\": [{\"id\": \"" V2
		"\", \"percentage\": 100}]},"
		"\"bases\": [{\"blob\": \"a142f707616a4033\", \"bytes\": 18288640, \"versions\": "
		"2, "
		"\"current\": true}, {\"blob\": \"\\u001b[2J\", \"bytes\": null, \"versions\": 1, "
		"\"current\": false}]}";
	struct capture c;
	char err[256];
	cap_open(&c);
	assert_int_equal(thaw_remote_versions_table(body, strlen(body), c.f, err, sizeof err), 0);
	assert_string_equal(cap_text(&c),
			    "    #  ID        CREATED              STATE      TRAFFIC     IMAGE    "
			    "  BASE        WS  MESSAGE\n"
			    "    2  2f2e2d2c  2024-05-01 12:34:56  ready         100%    2.3 MB   "
			    "16.0 MB   11.7 KB  two\n"
			    "    3  1f2e4a5b  2024-05-01 12:34:56  failed           -         -    "
			    "     -         -  three\n"
			    "       error: entropy at import\n"
			    "base image a142f707 (current): 18.3 MB on disk, shared by 2 versions "
			    "of this host\n"
			    "base image \\x1b[2J: - on disk, shared by 1 version of this host\n");
	cap_free(&c);
	assert_int_equal(thaw_remote_versions_table("{\"versions\": 1}", 15, stdout, err, sizeof err), -1);
	assert_non_null(strstr(err, "no versions list"));
}

static void test_versions_table_sizes_of_a_gigabyte_and_more_keep_their_columns(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	/* 1.5 GB image, 2.3 GB from the base (561524 pages), a working set that
	 * would print as 1000.0 MB. */
	const char *body =
		"{\"versions\": [{\"id\": \"" V2
		"\", \"number\": 2, \"created\": 1714566896000, \"message\": \"big\", "
		"\"state\": \"ready\", \"error\": null, \"snapshot\": \"abcd\", \"disk\": "
		"{\"image\": 1500000000, \"image_base_pages\": 561524, "
		"\"working_set\": 999960000}}], \"deployment\": null, "
		"\"bases\": [{\"blob\": \"a142f707616a4033\", \"bytes\": 1234567890123, "
		"\"versions\": 1, \"current\": true}]}";
	struct capture c;
	char err[256];
	cap_open(&c);
	assert_int_equal(thaw_remote_versions_table(body, strlen(body), c.f, err, sizeof err), 0);
	assert_string_equal(cap_text(&c),
			    "    #  ID        CREATED              STATE      TRAFFIC     IMAGE    "
			    "  BASE        WS  MESSAGE\n"
			    "    2  2f2e2d2c  2024-05-01 12:34:56  ready            -    1.5 GB   "
			    " 2.3 GB    1.0 GB  big\n"
			    "base image a142f707 (current): 1.2 TB on disk, shared by 1 version "
			    "of this host\n");
	cap_free(&c);
}

static void test_crons_table(void **state)
{
	setenv("TZ", "UTC", 1);
	tzset();
	const char *body =
		"{\"triggers\": [\"* * * * *\", \"0 3 * * MON\"], \"running\": "
		"[{\"cron\": \"0 3 * * MON\", \"scheduled\": 1714566840000}], \"runs\": ["
		"{\"version\": \"" V2 "\", \"cron\": \"* * * * *\", \"scheduled\": 1714566840000, "
		"\"duration_ms\": 12.25, \"outcome\": \"exception\", \"error\": \"ValueError: \\u001b[2J\"},"
		"{\"version\": \"" V2 "\", \"cron\": \"* * * * *\", \"scheduled\": 1714566780000, "
		"\"duration_ms\": 3, \"outcome\": \"ok\", \"error\": null}]}";
	struct capture c;
	char err[256];
	cap_open(&c);
	assert_int_equal(thaw_remote_crons_table(body, strlen(body), c.f, err, sizeof err), 0);
	assert_string_equal(cap_text(&c),
			    "triggers (UTC): \"* * * * *\", \"0 3 * * MON\"\n"
			    "running: \"0 3 * * MON\" due 2024-05-01 12:34:00\n"
			    "DUE                  CRON                  OUTCOME      DURATION  VERSION   ERROR\n"
			    "2024-05-01 12:34:00  * * * * *             exception      12.2ms  2f2e2d2c  ValueError: \\x1b[2J\n"
			    "2024-05-01 12:33:00  * * * * *             ok              3.0ms  2f2e2d2c  \n");
	cap_free(&c);
	assert_int_equal(thaw_remote_crons_table("{\"runs\": 1}", 11, stdout, err, sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_safe_escapes_terminal_controls),
		cmocka_unit_test(test_stage_lines_print_each_stage),
		cmocka_unit_test(test_failed_stage_keeps_the_whole_error),
		cmocka_unit_test(test_stage_lines_that_break_the_contract_are_refused),
		cmocka_unit_test(test_tail_line_format),
		cmocka_unit_test(test_versions_table),
		cmocka_unit_test(
			test_versions_table_sizes_of_a_gigabyte_and_more_keep_their_columns),
		cmocka_unit_test(test_crons_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
