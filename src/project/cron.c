/*
 * Cron expressions (cron.h): a parser that trusts nothing and a matcher for
 * one minute in UTC. Each field is a comma-separated list of items; an item
 * sets bits in the field's mask (or one of the day fields' special forms).
 */
#include "project/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum field { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, NFIELDS };

static const struct {
	const char *name;
	int lo, hi;
} fields[NFIELDS] = {
	{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31},
	{"month", 1, 12},  {"day of week", 1, 7},
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
					  "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct cursor {
	const char *p, *end; /* the item being read */
};

/* A number or (month, day of week) a three-letter name. 0, or -1. */
static int read_value(struct cursor *c, enum field f, int *out)
{
	if (c->p < c->end && isdigit((unsigned char)*c->p)) {
		int v = 0, digits = 0;
		while (c->p < c->end && isdigit((unsigned char)*c->p)) {
			if (++digits > 3)
				return -1;
			v = v * 10 + (*c->p++ - '0');
		}
		*out = v;
		return 0;
	}
	const char *const *names = f == F_MONTH ? month_names : f == F_DOW ? day_names : NULL;
	int n = f == F_MONTH ? 12 : 7;
	if (!names || c->end - c->p < 3)
		return -1;
	for (int i = 0; i < n; i++) {
		if (strncasecmp(c->p, names[i], 3) == 0) {
			c->p += 3;
			*out = i + 1;
			return 0;
		}
	}
	return -1;
}

static void set_bits(struct cron *cr, enum field f, int lo, int hi, int step)
{
	for (int v = lo; v <= hi; v += step) {
		switch (f) {
		case F_MINUTE: cr->minute |= 1ull << v; break;
		case F_HOUR: cr->hour |= 1u << v; break;
		case F_DOM: cr->dom |= 1u << v; break;
		case F_MONTH: cr->month |= (uint16_t)(1u << v); break;
		case F_DOW: cr->dow |= (uint8_t)(1u << v); break;
		default: break;
		}
	}
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(err, errlen, __VA_ARGS__);                                                \
		return -1;                                                                         \
	} while (0)

/* One item of field f, p[0..len). */
static int parse_item(struct cron *cr, enum field f, const char *p, size_t len, int *any,
		      char *err, size_t errlen)
{
	const char *fname = fields[f].name;
	int lo = fields[f].lo, hi = fields[f].hi;
	struct cursor c = {p, p + len};
	int a, b, step = 1;

	if (len == 0)
		FAIL("%s: an empty item", fname);
	/* The day fields' special forms. */
	if (f == F_DOM && len == 1 && (*p == 'L' || *p == 'l')) {
		cr->dom_last = 1;
		return 0;
	}
	if (f == F_DOM && len == 2 && strncasecmp(p, "LW", 2) == 0) {
		cr->dom_last_weekday = 1;
		return 0;
	}
	if (f == F_DOW && len == 1 && (*p == 'L' || *p == 'l')) {
		set_bits(cr, f, 7, 7, 1); /* Quartz: a lone L is Saturday */
		return 0;
	}

	if (*c.p == '*' || *c.p == '?') {
		c.p++;
		a = lo;
		b = hi;
		if (c.p == c.end) {
			*any = 1;
			set_bits(cr, f, a, b, 1);
			return 0;
		}
	} else {
		if (read_value(&c, f, &a) < 0)
			FAIL("%s: '%.*s' is not a value (%d-%d%s)", fname, (int)len, p, lo, hi,
			     f == F_MONTH ? " or JAN-DEC" : f == F_DOW ? " or SUN-SAT, 1 = Sunday" : "");
		if (a < lo || a > hi)
			FAIL("%s: %d is out of range %d-%d%s", fname, a, lo, hi,
			     f == F_DOW ? " (1 = Sunday)" : "");
		b = a;
		if (c.p < c.end && (*c.p == 'W' || *c.p == 'w') && f == F_DOM) {
			if (c.p + 1 != c.end)
				FAIL("%s: '%.*s': W must end the item (as in 15W)", fname, (int)len, p);
			cr->dom_weekday |= 1u << a;
			return 0;
		}
		if (c.p < c.end && (*c.p == 'L' || *c.p == 'l') && f == F_DOW) {
			if (c.p + 1 != c.end)
				FAIL("%s: '%.*s': L must end the item (as in 6L or FRIL)", fname,
				     (int)len, p);
			cr->dow_last |= (uint8_t)(1u << a);
			return 0;
		}
		if (c.p < c.end && *c.p == '#' && f == F_DOW) {
			c.p++;
			int n;
			if (read_value(&c, F_MINUTE, &n) < 0 || c.p != c.end || n < 1 || n > 5)
				FAIL("%s: '%.*s': # takes a week 1-5 (as in MON#2)", fname, (int)len, p);
			cr->dow_nth[a] |= (uint8_t)(1u << n);
			return 0;
		}
		if (c.p < c.end && *c.p == '-') {
			c.p++;
			if (read_value(&c, f, &b) < 0)
				FAIL("%s: '%.*s' is not a range", fname, (int)len, p);
			if (b < lo || b > hi)
				FAIL("%s: %d is out of range %d-%d", fname, b, lo, hi);
			if (b < a)
				FAIL("%s: the range '%.*s' ends before it starts", fname, (int)len, p);
		} else if (c.p < c.end && *c.p == '/') {
			b = hi; /* a/step: from a to the end */
		}
	}
	if (c.p < c.end && *c.p == '/') {
		c.p++;
		if (read_value(&c, F_MINUTE, &step) < 0 || c.p != c.end)
			FAIL("%s: '%.*s': / takes a whole number step", fname, (int)len, p);
		if (step < 1 || step > hi - lo + 1)
			FAIL("%s: step %d is out of range 1-%d", fname, step, hi - lo + 1);
	}
	if (c.p != c.end)
		FAIL("%s: '%.*s' is not understood", fname, (int)len, p);
	set_bits(cr, f, a, b, step);
	return 0;
}

int cron_parse(const char *expr, struct cron *cr, char *err, size_t errlen)
{
	memset(cr, 0, sizeof *cr);
	if (!expr)
		FAIL("no expression");
	size_t n = strnlen(expr, CRON_MAX_LEN + 1);
	if (n > CRON_MAX_LEN)
		FAIL("longer than %d bytes", CRON_MAX_LEN);
	/* Messages quote the expression: nothing in it may drive a terminal. */
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)expr[i] < 0x20 && expr[i] != '\t') ||
		    (unsigned char)expr[i] > 0x7e)
			FAIL("a control or non-ASCII byte at position %zu", i + 1);
	const char *p = expr;
	int f = 0;
	char prefix[64];
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *start = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (f == NFIELDS)
			FAIL("'%s' has more than 5 fields (minute hour day-of-month month "
			     "day-of-week); thaw has no seconds or years field",
			     expr);
		int any = 0;
		const char *item = start;
		for (;;) {
			const char *comma = memchr(item, ',', (size_t)(p - item));
			const char *end = comma ? comma : p;
			for (const char *q = item; q < end; q++)
				if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e) {
					snprintf(prefix, sizeof prefix, "%s", fields[f].name);
					FAIL("%s: a control or non-ASCII byte", prefix);
				}
			if (parse_item(cr, (enum field)f, item, (size_t)(end - item), &any, err,
				       errlen) < 0)
				return -1;
			if (!comma)
				break;
			item = comma + 1;
		}
		if (any && f == F_DOM)
			cr->dom_any = 1;
		if (any && f == F_DOW)
			cr->dow_any = 1;
		f++;
	}
	if (f < NFIELDS)
		FAIL("'%s' has %d field%s: a cron expression has 5 (minute hour day-of-month month "
		     "day-of-week)",
		     expr, f, f == 1 ? "" : "s");
	return 0;
}

static int leap(int year)
{
	return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int days_in_month(int year, int month /* 1-12 */)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return month == 2 && leap(year) ? 29 : d[month - 1];
}

/* Day of week (0 = Sunday) of day `day` when day 1 is `first`. */
static int weekday_of(int first, int day)
{
	return (first + day - 1) % 7;
}

/* The weekday (Mon-Fri) nearest day d of a month of `last` days, never
 * leaving the month (Quartz's W). */
static int nearest_weekday(int first, int last, int d)
{
	if (d > last)
		return -1;
	int w = weekday_of(first, d);
	if (w == 6)
		return d == 1 ? 3 : d - 1; /* Saturday: Friday, or Monday the 3rd */
	if (w == 0)
		return d == last ? d - 2 : d + 1; /* Sunday: Monday, or Friday before */
	return d;
}

static int dom_matches(const struct cron *c, int first, int last, int day)
{
	if (c->dom & (1u << day))
		return 1;
	if (c->dom_last && day == last)
		return 1;
	if (c->dom_last_weekday) {
		int d = last;
		while (weekday_of(first, d) == 0 || weekday_of(first, d) == 6)
			d--;
		if (d == day)
			return 1;
	}
	for (int d = 1; d <= 31 && c->dom_weekday; d++)
		if ((c->dom_weekday & (1u << d)) && nearest_weekday(first, last, d) == day)
			return 1;
	return 0;
}

static int dow_matches(const struct cron *c, int last, int day, int wday /* 0 = Sunday */)
{
	int q = wday + 1; /* 1 = Sunday */
	if (c->dow & (1u << q))
		return 1;
	if ((c->dow_last & (1u << q)) && day + 7 > last)
		return 1;
	if (c->dow_nth[q] & (1u << ((day - 1) / 7 + 1)))
		return 1;
	return 0;
}

int cron_matches(const struct cron *c, time_t t)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm))
		return 0;
	if (!(c->minute & (1ull << tm.tm_min)) || !(c->hour & (1u << tm.tm_hour)) ||
	    !(c->month & (1u << (tm.tm_mon + 1))))
		return 0;
	int year = tm.tm_year + 1900, day = tm.tm_mday;
	int last = days_in_month(year, tm.tm_mon + 1);
	int first = ((tm.tm_wday - (day - 1)) % 7 + 7) % 7;
	int dom_ok = dom_matches(c, first, last, day);
	int dow_ok = dow_matches(c, last, day, tm.tm_wday);
	if (c->dom_any && c->dow_any)
		return 1;
	if (c->dom_any)
		return dow_ok;
	if (c->dow_any)
		return dom_ok;
	return dom_ok || dow_ok;
}
