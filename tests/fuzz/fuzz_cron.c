/*
 * libFuzzer target for cron expressions (src/project/cron.c), which come
 * from configuration files. The input is the expression. Whatever it is,
 * cron_parse returns 0 or -1 with a message; a parsed expression only has
 * bits inside each field's range, and matching it against a spread of
 * minutes (every day of a leap-year February and of a 31-day month) is safe.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "project/cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 2 * CRON_MAX_LEN)
		return 0;
	char *expr = malloc(size + 1);
	memcpy(expr, data, size);
	expr[size] = 0;
	struct cron c;
	char err[256] = "";
	int rc = cron_parse(expr, &c, err, sizeof err);
	CHECK(rc == 0 || rc == -1);
	if (rc == -1) {
		CHECK(err[0] != 0);
	} else {
		CHECK((c.minute >> 60) == 0);
		CHECK((c.hour >> 24) == 0);
		CHECK((c.dom & 1u) == 0 && (c.dom_weekday & 1u) == 0);
		CHECK((c.month & 1u) == 0 && (c.month >> 13) == 0);
		CHECK((c.dow & 1u) == 0 && (c.dow_last & 1u) == 0);
		for (int d = 0; d < 8; d++)
			CHECK((c.dow_nth[d] & 1u) == 0 && (c.dow_nth[d] >> 6) == 0);
		/* 2028-02-01 and 2026-05-01 00:00 UTC, a day at a time, at 00:00. */
		for (int day = 0; day < 31; day++) {
			(void)cron_matches(&c, (time_t)1832976000 + day * 86400);
			(void)cron_matches(&c, (time_t)1777593600 + day * 86400 + 3599 * 60 % 86400);
		}
	}
	free(expr);
	return 0;
}
