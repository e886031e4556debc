/*
 * A process's memory from /proc/PID/smaps_rollup (memstat.h has the
 * figures and what is trusted). Pure but for the one read; the sampler
 * that calls it is memory.c.
 */
#include "host/memstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A field's value is at most 2^40 kB (1 EiB): anything larger is not a
 * process's memory, and its bytes fit in 64 bits with room to sum. */
#define MEMSTAT_MAX_KB (1ull << 40)
/* The three Pss parts are rounded down to kB each: a few kB of slack. */
#define MEMSTAT_SLACK_KB 64u

static const struct {
	const char *name;
	size_t off;
} fields[] = {
	{"Rss", offsetof(struct memstat, rss)},
	{"Pss", offsetof(struct memstat, pss)},
	{"Pss_Anon", offsetof(struct memstat, pss_anon)},
	{"Pss_File", offsetof(struct memstat, pss_file)},
	{"Pss_Shmem", offsetof(struct memstat, pss_shmem)},
	{"Pss_Dirty", offsetof(struct memstat, pss_dirty)},
	{"SwapPss", offsetof(struct memstat, swap_pss)},
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* One line [p, end): a known field's "Name:<blanks><digits> kB<blanks>"
 * into out (seen marks it), an unknown line skipped. 0, or -1. */
static int parse_line(const char *p, const char *end, struct memstat *out, unsigned *seen)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	if (!colon)
		return 0;
	size_t nlen = (size_t)(colon - p);
	size_t f = 0;
	while (f < NFIELDS && (strlen(fields[f].name) != nlen || memcmp(fields[f].name, p, nlen)))
		f++;
	if (f == NFIELDS)
		return 0; /* the address line, or a field we do not use */
	if (*seen & (1u << f))
		return -1; /* twice */
	*seen |= 1u << f;
	const char *q = colon + 1;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	uint64_t kb = 0;
	const char *digits = q;
	while (q < end && *q >= '0' && *q <= '9') {
		kb = kb * 10 + (uint64_t)(*q - '0');
		if (kb > MEMSTAT_MAX_KB)
			return -1;
		q++;
	}
	if (q == digits || end - q < 3 || memcmp(q, " kB", 3) != 0)
		return -1;
	for (q += 3; q < end; q++)
		if (*q != ' ' && *q != '\t' && *q != '\r')
			return -1;
	*(uint64_t *)((char *)out + fields[f].off) = kb * 1024;
	return 0;
}

int memstat_parse(const char *text, size_t len, struct memstat *out)
{
	memset(out, 0, sizeof *out);
	if (!text || len > MEMSTAT_MAX_TEXT)
		return -1;
	unsigned seen = 0;
	const char *p = text, *end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (memchr(p, '\0', (size_t)(le - p)) || parse_line(p, le, out, &seen) < 0)
			goto bad;
		p = nl ? nl + 1 : end;
	}
	if (!(seen & 2u)) /* Pss */
		goto bad;
	uint64_t parts = out->pss_anon + out->pss_file + out->pss_shmem;
	if ((seen & (7u << 2)) == (7u << 2)) {
		out->split = 1;
		uint64_t diff = parts > out->pss ? parts - out->pss : out->pss - parts;
		if (diff > (uint64_t)MEMSTAT_SLACK_KB * 1024)
			goto bad;
	}
	return 0;
bad:
	memset(out, 0, sizeof *out);
	return -1;
}

int memstat_read(pid_t pid, struct memstat *out)
{
	char path[64], text[MEMSTAT_MAX_TEXT + 1];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, text + len, sizeof text - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof text)
			break; /* longer than any rollup: refused by the parser */
	}
	close(fd);
	return memstat_parse(text, len, out);
}
