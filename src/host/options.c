/*
 * What the commands that run a host (thaw dev, thaw serve) share: the
 * command-line options (limits, instance counts, snapshot size, port
 * numbers) and the loop's start with its signals.
 */
#include "host/host.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "host/spawn.h"

void host_defaults(struct host *h)
{
	h->lim = (struct host_limits){
		.max_header_bytes = 32 * 1024,
		.max_body_bytes = 100u << 20,
		.timeout_ms = 30000,
		.idle_timeout_ms = 300000,
		.concurrency = 64,
		.max_instances = 1000,
		.max_instances_per_worker = 4,
		.queue_timeout_ms = 2000,
	};
	h->max_snapshot_bytes = 1024ull << 20;
	h->sandbox = 1;
	h->sandbox_uid_base = 2000000000u;
	h->sandbox_roots_fd = -1;
	project_limits_host_defaults(&h->limit_defaults, &h->limit_caps);
#ifdef THAW_SANITIZE
	/* An instance under ASan holds its shadow and quarantine too (60 MiB
	 * resident at rest, up to 256 MiB of quarantine). */
	h->limit_defaults.v[PROJECT_LIMIT_MEMORY_MB] = 512;
#endif
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
	case HOST_OPT_MAX_PER_WORKER:
	case HOST_OPT_CONCURRENCY: {
		const char *name = c == HOST_OPT_MAX_INSTANCES	 ? "--max-instances"
				   : c == HOST_OPT_MAX_PER_WORKER ? "--max-instances-per-worker"
								  : "--concurrency";
		if (host_opt_u64(cmd, name, arg, 100000, &v) < 0)
			return -1;
		if (v == 0) {
			fprintf(stderr, "%s: %s must be at least 1\n", cmd, name);
			return -1;
		}
		if (c == HOST_OPT_MAX_INSTANCES)
			h->lim.max_instances = (unsigned)v;
		else if (c == HOST_OPT_MAX_PER_WORKER)
			h->lim.max_instances_per_worker = (unsigned)v;
		else
			h->lim.concurrency = (unsigned)v;
		return 1;
	}
	case HOST_OPT_MAX_MEMORY:
		/* MiB, as --limit memory_mb. */
		if (host_opt_u64(cmd, "--max-memory", arg, 1ull << 30, &v) < 0)
			return -1;
		if (v < 16) {
			fprintf(stderr, "%s: --max-memory is in MiB and must be at least 16\n", cmd);
			return -1;
		}
		h->lim.max_memory = v << 20;
		return 1;
	case HOST_OPT_QUEUE_TIMEOUT:
		if (parse_seconds(arg, &secs) < 0) {
			fprintf(stderr, "%s: --queue-timeout expects seconds, not '%s'\n", cmd, arg);
			return -1;
		}
		h->lim.queue_timeout_ms = secs * 1000;
		return 1;
	case HOST_OPT_SYSTEM_SITE:
		h->system_site_packages = 1;
		return 1;
	case HOST_OPT_SERVER_TIMING:
		h->server_timing = 1;
		return 1;
	case HOST_OPT_TRUST_PROXY: {
		struct proxy_net net;
		char err[256];
		if (proxy_net_parse(arg, &net, err, sizeof err) < 0 ||
		    proxy_list_add(&h->trusted_proxies, &net, err, sizeof err) < 0) {
			fprintf(stderr, "%s: --trust-proxy: %s\n", cmd, err);
			return -1;
		}
		return 1;
	}
	case HOST_OPT_NO_SANDBOX:
		h->sandbox = 0;
		return 1;
	case HOST_OPT_NO_BASE:
		h->no_base = 1;
		return 1;
	case HOST_OPT_SANDBOX_UID_BASE:
		/* Room for every slot below 2^31 (ids above are trouble for tools). */
		if (host_opt_u64(cmd, "--sandbox-uid-base", arg, 0x7fffffffu - SANDBOX_UID_SLOTS,
				 &v) < 0)
			return -1;
		if (v < 1000) {
			fprintf(stderr, "%s: --sandbox-uid-base must be at least 1000 (system ids are below)\n",
				cmd);
			return -1;
		}
		h->sandbox_uid_base = (uint32_t)v;
		return 1;
	case HOST_OPT_LIMIT:
	case HOST_OPT_MAX_LIMIT: {
		char err[256];
		int cap = c == HOST_OPT_MAX_LIMIT;
		if (project_limits_parse_flag(cap ? &h->limit_caps : &h->limit_defaults, arg, err,
					      sizeof err) < 0) {
			fprintf(stderr, "%s: %s: %s\n", cmd, cap ? "--max-limit" : "--limit", err);
			return -1;
		}
		return 1;
	}
	case HOST_OPT_MAX_SNAPSHOT:
		if (host_opt_u64(cmd, "--max-snapshot-mb", arg, 1u << 20, &v) < 0)
			return -1;
		h->max_snapshot_bytes = v << 20;
		return 1;
	default:
		return 0;
	}
}

static void on_signal(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct host *h = w->arg;
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			host_reap(h);
		else
			loop_stop(l);
	}
}

int host_loop_start(struct host *h, char *err, size_t errlen)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Every request allocates and frees a few small buffers: by default
	 * glibc gives the heap's top back to the kernel and faults it in again
	 * request after request (brk and page faults were a tenth of the host's
	 * CPU per request in bench/throughput). Keep up to 16 MiB of it. */
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	h->loop = loop_new();
	if (!h->loop) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return -1;
	}
	h->signals.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (h->signals.fd < 0) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		return -1;
	}
	h->signals.fn = on_signal;
	h->signals.arg = h;
	loop_add(h->loop, &h->signals, EPOLLIN);
	if (!h->sandbox) {
		fprintf(stderr, "thaw: WARNING: --no-sandbox: instances run unconfined, as uid %u, "
				"with this host's view of files, processes and network: worker "
				"code can read the host's data and token. For debugging only.\n",
			(unsigned)geteuid());
	} else {
		char why[512];
		if (spawn_sandbox_probe(h, why, sizeof why) < 0) {
			snprintf(err, errlen,
				 "the sandbox cannot be made on this machine: %s (--no-sandbox runs "
				 "instances unconfined, for debugging only)",
				 why);
			return -1;
		}
	}
	/* Each instance holds about four of the host's fds (its socket, its
	 * output pipe, its cgroup's CPU file, a spare's cgroup.procs): take
	 * what the hard limit allows, and say so when --max-instances cannot
	 * fit in it. Instances get their own limit (open_files) from INIT. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
			getrlimit(RLIMIT_NOFILE, &rl);
		}
		uint64_t want = 4ull * h->lim.max_instances + 256;
		if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
			log_warn("open files: the host may hold %llu, and %u instances want about %llu: "
				 "raise its limit (ulimit -n, systemd LimitNOFILE=) or lower "
				 "--max-instances",
				 (unsigned long long)rl.rlim_cur, h->lim.max_instances,
				 (unsigned long long)want);
	}
	if (host_limits_start(h, err, errlen) < 0)
		return -1;
	return host_capacity_start(h, err, errlen);
}
