/*
 * Tests for cron expressions (src/project/cron.c): Cloudflare's documented
 * examples match the minutes they describe and no others (checked against
 * every minute of whole months, computed independently here with mktime-free
 * arithmetic), the extensions (L, LW, W, L on weekdays, #, names), and bad
 * expressions refused with the field named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "project/cron.h"

/* Seconds since the epoch of a UTC date and time (timegm). */
static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
	return timegm(&tm);
}

static struct cron parse_ok(const char *expr)
{
	struct cron c;
	char err[256] = "";
	if (cron_parse(expr, &c, err, sizeof err) != 0)
		fail_msg("'%s' refused: %s", expr, err);
	return c;
}

/* The minutes of [from, to) that c matches, as times. */
static int matching(const struct cron *c, time_t from, time_t to, time_t *out, int max)
{
	int n = 0;
	for (time_t t = from; t < to; t += 60)
		if (cron_matches(c, t)) {
			if (n < max)
				out[n] = t;
			n++;
		}
	return n;
}

static void test_every_minute_and_steps(void **state)
{
	struct cron c = parse_ok("* * * * *");
	time_t m[4];
	assert_int_equal(matching(&c, utc(2026, 11, 29, 10, 0), utc(2026, 11, 29, 11, 0), m, 4), 60);
	c = parse_ok("*/30 * * * *");
	assert_int_equal(matching(&c, utc(2026, 11, 29, 10, 0), utc(2026, 11, 29, 12, 0), m, 4), 4);
	assert_true(m[1] == utc(2026, 11, 29, 10, 30));
	c = parse_ok("45 * * * *");
	assert_int_equal(matching(&c, utc(2026, 11, 29, 0, 0), utc(2026, 11, 30, 0, 0), m, 4), 24);
	assert_true(m[0] == utc(2026, 11, 29, 0, 45));
	c = parse_ok("5/20 9-10 * * *"); /* 5, 25, 45 in hours 9 and 10 */
	assert_int_equal(matching(&c, utc(2026, 11, 29, 0, 0), utc(2026, 11, 30, 0, 0), m, 4), 6);
	assert_true(m[0] == utc(2026, 11, 29, 9, 5) && m[3] == utc(2026, 11, 29, 10, 5));
	c = parse_ok("0,15 0 1,15 * *");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 4), 4);
}

static void test_weekdays_are_one_to_seven_from_sunday(void **state)
{
	/* 2026-11-29 is a Sunday. */
	struct cron sun1 = parse_ok("0 17 * * 1"), sun = parse_ok("0 17 * * sun");
	time_t m[8];
	assert_int_equal(matching(&sun1, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 29, 17, 0));
	assert_int_equal(matching(&sun, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 29, 17, 0));
	struct cron wk = parse_ok("10 7 * * mon-fri"), wk2 = parse_ok("10 7 * * 2-6");
	assert_int_equal(matching(&wk, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0), m, 8), 5);
	assert_true(m[0] == utc(2026, 11, 23, 7, 10) && m[4] == utc(2026, 11, 27, 7, 10));
	assert_int_equal(matching(&wk2, utc(2026, 11, 23, 0, 0), utc(2026, 11, 30, 0, 0), m, 8), 5);
	assert_true(m[0] == utc(2026, 11, 23, 7, 10));
}

static void test_last_and_nth(void **state)
{
	time_t m[8];
	/* The last Friday of November 2026 is the 27th; of February 2028, the 25th. */
	struct cron c = parse_ok("0 18 * * 6L"), f = parse_ok("0 18 * * friL");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 27, 18, 0));
	assert_int_equal(matching(&f, utc(2028, 2, 1, 0, 0), utc(2028, 3, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2028, 2, 25, 18, 0));
	/* The last weekday of May 2026 (the 31st is a Sunday) is Friday the 29th. */
	c = parse_ok("59 23 LW * *");
	assert_int_equal(matching(&c, utc(2026, 5, 1, 0, 0), utc(2026, 6, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 5, 29, 23, 59));
	/* L: February of a leap year and of a common one. */
	c = parse_ok("0 9 L * *");
	assert_int_equal(matching(&c, utc(2028, 2, 1, 0, 0), utc(2028, 3, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2028, 2, 29, 9, 0));
	assert_int_equal(matching(&c, utc(2100, 2, 1, 0, 0), utc(2100, 3, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2100, 2, 28, 9, 0));
	/* MON#2: the second Monday of November 2026 is the 9th. */
	c = parse_ok("0 10 * * MON#2");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 9, 10, 0));
	c = parse_ok("0 10 * * 2#5"); /* November 2026 has five Mondays: the 30th */
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 30, 10, 0));
}

static void test_nearest_weekday(void **state)
{
	time_t m[8];
	/* 2026-11-15 is a Sunday: 15W is Monday the 16th. */
	struct cron c = parse_ok("0 0 15W * *");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 11, 16, 0, 0));
	/* 2026-08-01 is a Saturday: 1W is Monday the 3rd, never July 31st. */
	c = parse_ok("0 0 1W * *");
	assert_int_equal(matching(&c, utc(2026, 7, 1, 0, 0), utc(2026, 9, 1, 0, 0), m, 8), 2);
	assert_true(m[0] == utc(2026, 7, 1, 0, 0) && m[1] == utc(2026, 8, 3, 0, 0));
	/* 2026-05-31 is a Sunday: 31W is Friday the 29th; months without a 31st never. */
	c = parse_ok("0 0 31W * *");
	assert_int_equal(matching(&c, utc(2026, 4, 1, 0, 0), utc(2026, 6, 1, 0, 0), m, 8), 1);
	assert_true(m[0] == utc(2026, 5, 29, 0, 0));
}

static void test_both_day_fields_either_matches(void **state)
{
	time_t m[16];
	/* The 1st, or any Friday, of November 2026: 1 + 4 Fridays (6, 13, 20, 27). */
	struct cron c = parse_ok("0 0 1 * FRI");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 16), 5);
	/* ? is *: only the weekday decides. */
	c = parse_ok("0 0 ? * FRI");
	assert_int_equal(matching(&c, utc(2026, 11, 1, 0, 0), utc(2026, 12, 1, 0, 0), m, 16), 4);
	c = parse_ok("0 0 * jan,JUL *");
	assert_int_equal(matching(&c, utc(2026, 1, 1, 0, 0), utc(2027, 1, 1, 0, 0), m, 16), 62);
}

static void test_bad_expressions_name_the_field(void **state)
{
	static const struct {
		const char *expr, *want;
	} bad[] = {
		{"* * * *", "4 fields"},
		{"* * * * * *", "more than 5 fields"},
		{"", "0 fields"},
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"* 24 * * *", "hour: 24 is out of range"},
		{"* * 0 * *", "day of month: 0 is out of range 1-31"},
		{"* * 32 * *", "day of month: 32"},
		{"* * * 13 *", "month: 13"},
		{"* * * * 0", "day of week: 0 is out of range 1-7 (1 = Sunday)"},
		{"* * * * 8", "day of week: 8"},
		{"* * * FOO *", "month: 'FOO' is not a value"},
		{"* * * * MON#6", "day of week: 'MON#6'"},
		{"* * * * MON#", "day of week"},
		{"*/0 * * * *", "minute: step 0"},
		{"*/x * * * *", "minute: '*/x'"},
		{"5-1 * * * *", "minute: the range '5-1' ends before it starts"},
		{"1,,2 * * * *", "minute: an empty item"},
		{"* * 15W5 * *", "day of month: '15W5'"},
		{"* * L * L5", "day of week: 'L5'"},
		{"* * * JAN#1 *", "month"},
		{"* * 5L * *", "day of month"},
		{"1234 * * * *", "minute"},
		{"* * * * MONL2", "day of week"},
		{"\x01 * * * *", "a control or non-ASCII byte at position 1"},
		{"* * * * * \x1b[2J", "a control or non-ASCII byte at position 11"},
		{"* * * * caf\xc3\xa9", "a control or non-ASCII byte at position 12"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct cron c;
		char err[256] = "";
		if (cron_parse(bad[i].expr, &c, err, sizeof err) == 0)
			fail_msg("'%s' accepted", bad[i].expr);
		if (!strstr(err, bad[i].want))
			fail_msg("'%s': error '%s' does not say '%s'", bad[i].expr, err, bad[i].want);
	}
	char longexpr[400];
	memset(longexpr, '1', sizeof longexpr - 1);
	longexpr[sizeof longexpr - 1] = 0;
	struct cron c;
	char err[256];
	assert_int_equal(cron_parse(longexpr, &c, err, sizeof err), -1);
	assert_non_null(strstr(err, "longer than"));
	assert_int_equal(cron_parse(NULL, &c, err, sizeof err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_minute_and_steps),
		cmocka_unit_test(test_weekdays_are_one_to_seven_from_sunday),
		cmocka_unit_test(test_last_and_nth),
		cmocka_unit_test(test_nearest_weekday),
		cmocka_unit_test(test_both_day_fields_either_matches),
		cmocka_unit_test(test_bad_expressions_name_the_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
