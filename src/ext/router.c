/*
 * thaw serve's routing rules (router.h). Pure: no I/O, no allocation but
 * the rewritten path.
 */
#include "ext/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ext/store.h"
#include "project/project.h"

int router_add_rule(struct router *rt, const char *spec, char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	if (rt->nrules == ROUTER_MAX_RULES || !eq || eq == spec ||
	    (size_t)(eq - spec) >= sizeof rt->rules[0].host || !project_name_valid(eq + 1)) {
		snprintf(err, errlen, "--route expects HOST=NAME (at most %d), not '%s'",
			 ROUTER_MAX_RULES, spec);
		return -1;
	}
	struct route_rule *r = &rt->rules[rt->nrules++];
	size_t n = (size_t)(eq - spec);
	for (size_t i = 0; i < n; i++)
		r->host[i] = (char)(spec[i] >= 'A' && spec[i] <= 'Z' ? spec[i] + 32 : spec[i]);
	r->host[n] = 0;
	snprintf(r->worker, sizeof r->worker, "%s", eq + 1);
	return 0;
}

/* The Host header's name: lowercased, without the port; "" when absent or
 * too long. */
static void host_name(const char *host, char out[256])
{
	out[0] = 0;
	if (!host)
		return;
	size_t len = strcspn(host, ":");
	if (host[0] == '[')
		len = strcspn(host, "]") + 1;
	if (len >= 256)
		return;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] + 32 : host[i]);
	out[len] = 0;
}

static int rule_matches(const char *pat, const char *hn)
{
	if (pat[0] == '*' && pat[1] == '.') {
		size_t pl = strlen(pat + 1), hl = strlen(hn);
		return hl > pl && !strcmp(hn + hl - pl, pat + 1);
	}
	return !strcmp(pat, hn);
}

int router_worker(const struct router *rt, const char *host, const char *uri, int probe,
		  char *name, size_t namelen, char **rewritten)
{
	char hn[256];
	*rewritten = NULL;
	host_name(host, hn);
	for (int i = 0; i < rt->nrules && hn[0] && !probe; i++) {
		if (rule_matches(rt->rules[i].host, hn)) {
			snprintf(name, namelen, "%s", rt->rules[i].worker);
			return 0;
		}
	}
	static const char suffix[] = ".localhost";
	size_t hl = strlen(hn), sl = sizeof suffix - 1;
	if (hl > sl && !strcmp(hn + hl - sl, suffix) && hl - sl < namelen) {
		memcpy(name, hn, hl - sl);
		name[hl - sl] = 0;
		if (!strchr(name, '.'))
			return 0;
	}
	if (rt->path_routing && !probe && uri[0] == '/') {
		const char *p = uri + 1;
		size_t len = strcspn(p, "/?");
		if (len > 0 && len < namelen) {
			memcpy(name, p, len);
			name[len] = 0;
			/* The worker sees the path below its prefix. */
			const char *rest = p + len;
			*rewritten = xasprintf("%s%s", *rest == '/' ? "" : "/", rest);
			return 0;
		}
	}
	return -1;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

uint32_t router_bucket(const char *worker, const char *key)
{
	uint64_t h = fnv1a(fnv1a(0xcbf29ce484222325ull, worker, strlen(worker)), key, strlen(key));
	return (uint32_t)(h % ROUTER_BUCKETS);
}

int router_version(const struct deployment *d, const char *worker, const char *key,
		   uint64_t random)
{
	if (d->n < 2)
		return 0;
	uint32_t b = key && *key ? router_bucket(worker, key) : (uint32_t)(random % ROUTER_BUCKETS);
	return (double)b >= d->percentage[0] * 100 ? 1 : 0;
}

int router_override(const struct deployment *d, const int numbers[], const char *ov)
{
	if (!ov || !*ov)
		return -1;
	size_t len = strlen(ov);
	/* A number: "N" or "#N", at most 9 digits (no overflow). */
	const char *digits = ov[0] == '#' ? ov + 1 : ov;
	size_t nd = strspn(digits, "0123456789");
	long number = nd >= 1 && nd <= 9 && !digits[nd] ? strtol(digits, NULL, 10) : -1;
	/* An id or a prefix of one: ids are lowercase, compared as they are. */
	int prefix = ov[0] != '#' && len >= 4 && len <= STORE_ID_LEN;
	int found = -1;
	for (int i = 0; i < d->n && i < DEPLOY_MAX_VERSIONS; i++) {
		int match = (prefix && !strncmp(d->version[i], ov, len)) ||
			    (number >= 1 && numbers[i] == number);
		if (!match)
			continue;
		if (found >= 0)
			return -1; /* names both */
		found = i;
	}
	return found;
}
