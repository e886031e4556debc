/*
 * Trusted proxies (--trust-proxy ADDR[/PREFIX], repeatable) and what the
 * host believes of the headers they send: who the client is
 * (X-Forwarded-For, read right to left, the rightmost address that is not a
 * trusted proxy) and whether it spoke HTTPS (X-Forwarded-Proto). A request
 * whose TCP peer is not a trusted proxy is believed about nothing: its
 * client is the peer, its scheme is http.
 *
 * The networks come from the command line; the header values are hostile
 * bytes from the network: every function here takes them as (pointer,
 * length), bounded, never NUL-terminated, and never fails on them (an entry
 * it cannot read ends the walk, and the last address believed stands).
 * Pure functions, no allocation.
 */
#ifndef THAW_HOST_PROXY_H
#define THAW_HOST_PROXY_H

#include <stddef.h>
#include <stdint.h>

struct sockaddr;

/* An IP address; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is held as
 * the IPv4 address, so that either form matches either form of a network. */
struct proxy_addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t bytes[16];
};

struct proxy_net {
	struct proxy_addr addr;
	unsigned prefix; /* bits: up to 32 (AF_INET) or 128 (AF_INET6) */
};

#define PROXY_LIST_MAX 64

/* Embedded in struct host: no allocation, nothing to dispose of. */
struct proxy_list {
	struct proxy_net nets[PROXY_LIST_MAX];
	size_t n;
};
/* Longest text form of an address proxy_addr_format writes, with its NUL. */
#define PROXY_ADDR_TEXT 46

/* "IP" or "IP/PREFIX" (IPv4 or IPv6), as given to --trust-proxy. Host bits
 * beyond the prefix are ignored. 0, or -1 with err. */
int proxy_net_parse(const char *s, struct proxy_net *out, char *err, size_t errlen);
/* Add a network (copied); -1 with err past PROXY_LIST_MAX. */
int proxy_list_add(struct proxy_list *l, const struct proxy_net *net, char *err, size_t errlen);
/* 1 if a is inside one of l's networks. */
int proxy_trusted(const struct proxy_list *l, const struct proxy_addr *a);

/* One address from p[0..n): "1.2.3.4", "1.2.3.4:PORT", "2001:db8::1",
 * "[2001:db8::1]" or "[2001:db8::1]:PORT", blanks around it allowed. 0, or
 * -1 for anything else (a name, "unknown", an obfuscated node, a zone). */
int proxy_addr_parse(const char *p, size_t n, struct proxy_addr *out);
/* The address of an AF_INET/AF_INET6 socket address; -1 for other families. */
int proxy_addr_from_sockaddr(const struct sockaddr *sa, struct proxy_addr *out);
/* Its text form (inet_ntop) into out[PROXY_ADDR_TEXT]. */
void proxy_addr_format(const struct proxy_addr *a, char out[PROXY_ADDR_TEXT]);

/* The client of a request that came from peer, given its X-Forwarded-For
 * value xff[0..n) (every X-Forwarded-For line joined by commas; n may be
 * 0): the peer itself unless it is trusted; else the entries from right to
 * left, skipping trusted ones, until one that is not trusted (the client)
 * or one that cannot be read (the walk stops at the last address read). */
void proxy_client(const struct proxy_list *l, const struct proxy_addr *peer, const char *xff,
		  size_t n, struct proxy_addr *client);
/* 1 when the last entry of an X-Forwarded-Proto value p[0..n) is "https"
 * (any case), else 0. */
int proxy_forwarded_https(const char *p, size_t n);

#endif
