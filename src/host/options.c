/*
 * Command-line options shared by the commands that run a host (thaw dev,
 * thaw serve): limits, instance counts, snapshot size, port numbers.
 */
#include "host/host.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

void host_defaults(struct host *h)
{
	h->lim = (struct host_limits){
		.max_header_bytes = 32 * 1024,
		.max_body_bytes = 100u << 20,
		.timeout_ms = 30000,
		.idle_timeout_ms = 300000,
		.max_instances = 4,
		.concurrency = 64,
	};
	h->max_snapshot_bytes = 1024ull << 20;
}

int host_opt_u64(const char *cmd, const char *opt, const char *v, uint64_t max, uint64_t *out)
{
	if (parse_u64(v, max, out) < 0) {
		fprintf(stderr, "%s: %s expects a whole number up to %llu, not '%s'\n", cmd, opt,
			(unsigned long long)max, v);
		return -1;
	}
	return 0;
}

int host_option(struct host *h, const char *cmd, int c, const char *arg)
{
	uint64_t v;
	double secs;
	switch (c) {
	case HOST_OPT_IDLE_TIMEOUT:
	case HOST_OPT_TIMEOUT:
		if (parse_seconds(arg, &secs) < 0 || (c == HOST_OPT_TIMEOUT && secs <= 0)) {
			fprintf(stderr, "%s: %s expects seconds, not '%s'\n", cmd,
				c == HOST_OPT_IDLE_TIMEOUT ? "--idle-timeout" : "--timeout", arg);
			return -1;
		}
		if (c == HOST_OPT_IDLE_TIMEOUT)
			h->lim.idle_timeout_ms = secs * 1000;
		else
			h->lim.timeout_ms = secs * 1000;
		return 1;
	case HOST_OPT_MAX_BODY:
		return host_opt_u64(cmd, "--max-body-bytes", arg, UINT64_MAX / 2,
				    &h->lim.max_body_bytes) < 0 ? -1 : 1;
	case HOST_OPT_MAX_HEADER:
		return host_opt_u64(cmd, "--max-header-bytes", arg, 512 * 1024,
				    &h->lim.max_header_bytes) < 0 ? -1 : 1;
	case HOST_OPT_MAX_INSTANCES:
	case HOST_OPT_CONCURRENCY: {
		const char *name = c == HOST_OPT_MAX_INSTANCES ? "--max-instances" : "--concurrency";
		if (host_opt_u64(cmd, name, arg, 10000, &v) < 0)
			return -1;
		if (v == 0) {
			fprintf(stderr, "%s: %s must be at least 1\n", cmd, name);
			return -1;
		}
		if (c == HOST_OPT_MAX_INSTANCES)
			h->lim.max_instances = (unsigned)v;
		else
			h->lim.concurrency = (unsigned)v;
		return 1;
	}
	case HOST_OPT_SYSTEM_SITE:
		h->system_site_packages = 1;
		return 1;
	case HOST_OPT_MAX_SNAPSHOT:
		if (host_opt_u64(cmd, "--max-snapshot-mb", arg, 1u << 20, &v) < 0)
			return -1;
		h->max_snapshot_bytes = v << 20;
		return 1;
	default:
		return 0;
	}
}
