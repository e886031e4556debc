/*
 * thaw serve's routing, as pure functions of the request's routing inputs
 * and the host's tables: no I/O, no store, no clock, so every rule has a
 * unit test (tests/unit/test_router.c).
 *
 * WHICH WORKER (router_worker), first match wins:
 *   1. a --route rule: HOST=NAME matches the Host header's name (lowercased,
 *      port dropped, IPv6 brackets kept) exactly; *.DOMAIN matches any name
 *      ending in .DOMAIN with at least one more character before it;
 *   2. Host: NAME.localhost, where NAME has no dot;
 *   3. with path routing, the first path segment: /NAME/rest -> NAME, and
 *      the worker sees /rest (the query string kept).
 *   The deploy check (probe) is for NAME.localhost only: rules 1 and 3 are
 *   skipped, so a route table cannot send it elsewhere.
 *
 * WHICH VERSION (router_version): a deployment of one version takes it all.
 * With two, the request falls into one of 10,000 buckets: the bucket of its
 * thaw-version-key header (FNV-1a 64 of the worker name, then the key,
 * modulo 10,000), or a random one without a key; buckets below
 * percentage[0] * 100 go to version 0, the rest to version 1. So a key
 * always lands in the same bucket, and a version whose share grows keeps
 * every key it had.
 *
 * AN OVERRIDE (router_override): a thaw-version-override header reaches a
 * version of the current deployment only, as Cloudflare's
 * Cloudflare-Workers-Version-Overrides does: one that names no version of
 * it, or names both, is not applied and the request is split as any other.
 * The deploy check reaches a version before it is deployed by its own path
 * (serve.c: the per-host probe secret), not through this rule.
 */
#ifndef THAW_EXT_ROUTER_H
#define THAW_EXT_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct deployment;

#define ROUTER_MAX_RULES 64
#define ROUTER_BUCKETS 10000u

struct route_rule {
	char host[256];  /* lowercase; exact, or "*.suffix" */
	char worker[64];
};

struct router {
	struct route_rule rules[ROUTER_MAX_RULES];
	int nrules;
	int path_routing;
};

/* Parse and add a --route HOST=NAME rule; 0, or -1 with err (full table,
 * no '=', an empty or too long host, an invalid worker name). */
int router_add_rule(struct router *rt, const char *spec, char *err, size_t errlen);

/*
 * The worker a request is for. host: the Host header (NULL when absent);
 * uri: the request target. On a match: 0, the name in name[namelen] and,
 * when the path named the worker, *rewritten = the target the worker sees
 * (returns new; else NULL). -1 when nothing matches.
 */
int router_worker(const struct router *rt, const char *host, const char *uri, int probe,
		  char *name, size_t namelen, char **rewritten);

/* The bucket (0 .. ROUTER_BUCKETS - 1) of a version key for a worker. */
uint32_t router_bucket(const char *worker, const char *key);

/* The index in d of the version that takes a request: key is the
 * thaw-version-key header (NULL or "" for none), random any random number
 * (used only without a key). */
int router_version(const struct deployment *d, const char *worker, const char *key,
		   uint64_t random);

/* The index in d of the version a thaw-version-override header's value ov
 * (a client's bytes, NUL-terminated; NULL for none) names: its id, a prefix
 * of the id of 4 or more characters, or its number ("3" or "#3", numbers[i]
 * being the number of d->version[i]). -1 when it names none of d's versions,
 * or more than one. */
int router_override(const struct deployment *d, const int numbers[], const char *ov);

#endif
