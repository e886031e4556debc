/*
 * Trusted proxies and forwarded headers: see proxy.h for the rules.
 *
 * Parsing goes through inet_pton on a bounded, NUL-terminated copy of each
 * entry: inet_pton's IPv4 form is the strict dotted quad (no octal, no
 * shortened forms), and its IPv6 form has no zone, so what it accepts is
 * exactly an address. Everything around it (blanks, brackets, a port) is
 * checked here byte by byte.
 */
#include "host/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/util.h"

/* Longer than any address with brackets and a port. */
#define ENTRY_MAX 64

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void set_v6(struct proxy_addr *a, const uint8_t bytes[16])
{
	memset(a, 0, sizeof *a);
	if (memcmp(bytes, v4_mapped_prefix, sizeof v4_mapped_prefix) == 0) {
		a->family = AF_INET;
		memcpy(a->bytes, bytes + 12, 4);
	} else {
		a->family = AF_INET6;
		memcpy(a->bytes, bytes, 16);
	}
}

static void set_v4(struct proxy_addr *a, const uint8_t bytes[4])
{
	memset(a, 0, sizeof *a);
	a->family = AF_INET;
	memcpy(a->bytes, bytes, 4);
}

/* A bare address (no brackets, no port) in a NUL-terminated string. */
static int parse_bare(const char *s, struct proxy_addr *out)
{
	uint8_t b[16];
	if (inet_pton(AF_INET, s, b) == 1) {
		set_v4(out, b);
		return 0;
	}
	if (inet_pton(AF_INET6, s, b) == 1) {
		set_v6(out, b);
		return 0;
	}
	return -1;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* 1 to 5 decimal digits, at most 65535. */
static int valid_port(const char *p, size_t n)
{
	if (n == 0 || n > 5)
		return 0;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v <= 65535;
}

int proxy_addr_parse(const char *p, size_t n, struct proxy_addr *out)
{
	while (n && is_blank(p[0]))
		p++, n--;
	while (n && is_blank(p[n - 1]))
		n--;
	if (n == 0 || n >= ENTRY_MAX)
		return -1;
	char s[ENTRY_MAX];
	if (p[0] == '[') {
		/* [v6] or [v6]:port */
		const char *close = memchr(p, ']', n);
		if (!close)
			return -1;
		size_t inner = (size_t)(close - p) - 1;
		size_t rest = n - (size_t)(close - p) - 1;
		if (rest && (close[1] != ':' || !valid_port(close + 2, rest - 1)))
			return -1;
		memcpy(s, p + 1, inner);
		s[inner] = 0;
		if (memchr(s, 0, inner))
			return -1;
		uint8_t b[16];
		if (inet_pton(AF_INET6, s, b) != 1)
			return -1;
		set_v6(out, b);
		return 0;
	}
	if (memchr(p, 0, n))
		return -1;
	memcpy(s, p, n);
	s[n] = 0;
	char *colon = strchr(s, ':');
	if (colon && !strchr(colon + 1, ':')) {
		/* one colon: v4:port (an IPv6 address has at least two) */
		if (!valid_port(colon + 1, strlen(colon + 1)))
			return -1;
		*colon = 0;
		uint8_t b[4];
		if (inet_pton(AF_INET, s, b) != 1)
			return -1;
		set_v4(out, b);
		return 0;
	}
	return parse_bare(s, out);
}

int proxy_addr_from_sockaddr(const struct sockaddr *sa, struct proxy_addr *out)
{
	if (!sa)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		set_v4(out, (const uint8_t *)&in->sin_addr);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		set_v6(out, (const uint8_t *)&in6->sin6_addr);
		return 0;
	}
	return -1;
}

void proxy_addr_format(const struct proxy_addr *a, char out[PROXY_ADDR_TEXT])
{
	if (!inet_ntop(a->family, a->bytes, out, PROXY_ADDR_TEXT))
		out[0] = 0;
}

int proxy_net_parse(const char *s, struct proxy_net *out, char *err, size_t errlen)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	char a[ENTRY_MAX];
	if (alen == 0 || alen >= sizeof a)
		return err_set(err, errlen, "'%s' is not an IP address or ADDRESS/PREFIX", s);
	memcpy(a, s, alen);
	a[alen] = 0;
	/* Parse the address as written: an IPv4-mapped network keeps its IPv6
	 * prefix length until it is converted below. */
	uint8_t b[16];
	int family;
	if (inet_pton(AF_INET, a, b) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, a, b) == 1)
		family = AF_INET6;
	else
		return err_set(err, errlen, "'%s' is not an IP address or ADDRESS/PREFIX", s);
	unsigned max = family == AF_INET ? 32 : 128;
	unsigned prefix = max;
	if (slash) {
		const char *d = slash + 1;
		size_t dl = strlen(d);
		if (dl == 0 || dl > 3)
			return err_set(err, errlen, "'%s': the prefix after / must be 0 to %u", s, max);
		prefix = 0;
		for (size_t i = 0; i < dl; i++) {
			if (d[i] < '0' || d[i] > '9')
				return err_set(err, errlen, "'%s': the prefix after / must be 0 to %u", s,
					       max);
			prefix = prefix * 10 + (unsigned)(d[i] - '0');
		}
		if (prefix > max)
			return err_set(err, errlen, "'%s': the prefix after / must be 0 to %u", s, max);
	}
	memset(out, 0, sizeof *out);
	if (family == AF_INET) {
		set_v4(&out->addr, b);
	} else {
		set_v6(&out->addr, b);
		if (out->addr.family == AF_INET) {
			/* ::ffff:a.b.c.d/P is the IPv4 network a.b.c.d/(P-96) */
			if (prefix < 96)
				return err_set(err, errlen,
					       "'%s': an IPv4-mapped network needs a prefix of 96 or more",
					       s);
			prefix -= 96;
		}
	}
	out->prefix = prefix;
	return 0;
}

int proxy_list_add(struct proxy_list *l, const struct proxy_net *net, char *err, size_t errlen)
{
	if (l->n >= PROXY_LIST_MAX)
		return err_set(err, errlen, "at most %d trusted proxy networks", PROXY_LIST_MAX);
	l->nets[l->n++] = *net;
	return 0;
}

static int in_net(const struct proxy_net *net, const struct proxy_addr *a)
{
	if (net->addr.family != a->family)
		return 0;
	unsigned full = net->prefix / 8, bits = net->prefix % 8;
	if (memcmp(net->addr.bytes, a->bytes, full) != 0)
		return 0;
	if (bits == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xff << (8 - bits));
	return (net->addr.bytes[full] & mask) == (a->bytes[full] & mask);
}

int proxy_trusted(const struct proxy_list *l, const struct proxy_addr *a)
{
	for (size_t i = 0; i < l->n; i++)
		if (in_net(&l->nets[i], a))
			return 1;
	return 0;
}

void proxy_client(const struct proxy_list *l, const struct proxy_addr *peer, const char *xff,
		  size_t n, struct proxy_addr *client)
{
	*client = *peer;
	if (!proxy_trusted(l, peer))
		return;
	size_t end = n;
	while (end > 0) {
		size_t start = end;
		while (start > 0 && xff[start - 1] != ',')
			start--;
		const char *p = xff + start;
		size_t len = end - start;
		end = start ? start - 1 : 0;
		size_t blank = 0;
		while (blank < len && is_blank(p[blank]))
			blank++;
		if (blank == len) {
			if (start == 0)
				break;
			continue; /* an empty list element */
		}
		struct proxy_addr a;
		if (proxy_addr_parse(p, len, &a) < 0)
			return; /* unreadable: the last address believed stands */
		*client = a;
		if (!proxy_trusted(l, &a))
			return;
		if (start == 0)
			break;
	}
}

int proxy_forwarded_https(const char *p, size_t n)
{
	size_t start = n;
	while (start > 0 && p[start - 1] != ',')
		start--;
	const char *e = p + start;
	size_t len = n - start;
	while (len && is_blank(e[0]))
		e++, len--;
	while (len && is_blank(e[len - 1]))
		len--;
	return len == 5 && strncasecmp(e, "https", 5) == 0;
}
