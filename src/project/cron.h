/*
 * Cron expressions for scheduled triggers, as Cloudflare reads them: five
 * fields (minute, hour, day of month, month, day of week) in UTC, with the
 * Quartz-style extensions its docs list.
 *
 *   field         values                        characters
 *   minute        0-59                          * , - /
 *   hour          0-23                          * , - /
 *   day of month  1-31                          * , - / L W  (L, LW, 15W)
 *   month         1-12, JAN-DEC                 * , - /
 *   day of week   1-7 (1 = Sunday), SUN-SAT     * , - / L #  (6L, FRIL, MON#2)
 *
 * Names are case-insensitive. `?` is read as `*`. When both day fields are
 * restricted a day matches if either does (as in Vixie cron); when one is `*`
 * the other decides. A whole expression is at most CRON_MAX_LEN bytes.
 *
 * Expressions come from configuration files (hostile): cron_parse checks
 * everything and names the bad field in its error. Nothing here allocates.
 */
#ifndef THAW_PROJECT_CRON_H
#define THAW_PROJECT_CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CRON_MAX_LEN 256

struct cron {
	uint64_t minute;     /* bit m: minute m */
	uint32_t hour;       /* bit h */
	uint32_t dom;        /* bit d (1-31) */
	uint32_t dom_weekday; /* bit d: the weekday nearest day d (dW) */
	uint16_t month;      /* bit m (1-12) */
	uint8_t dow;         /* bit d (1-7, 1 = Sunday) */
	uint8_t dow_last;    /* bit d: the last such weekday of the month (dL) */
	uint8_t dow_nth[8];  /* [d] bit n (1-5): the n-th such weekday (d#n) */
	uint8_t dom_last;    /* L: the last day of the month */
	uint8_t dom_last_weekday; /* LW: the last weekday (Mon-Fri) of the month */
	uint8_t dom_any, dow_any; /* the field was `*` or `?` */
};

/* Parse expr into c. 0, or -1 with err naming the field and the problem. */
int cron_parse(const char *expr, struct cron *c, char *err, size_t errlen);

/* Does the minute starting at t (seconds since the epoch, UTC) match? */
int cron_matches(const struct cron *c, time_t t);

#endif
