/*
 * What the instance sandbox's last layer costs (src/worker/sandbox_filter.c).
 * Not a test; bench/sandbox/run.sh builds and runs it, docs/security.md has
 * the numbers.
 *
 *   sandbox_bench apply [N]          sbx_filter_apply in N forked children
 *                                    (default 1000): median, p10, p90 in µs
 *   sandbox_bench ports P N [MODE]   N children each restricted to P allowed
 *                                    TCP ports (P = 65534: every port but
 *                                    one), kept alive together: time per
 *                                    child and the kernel slab they add.
 *                                    MODE: own (each child builds the ruleset:
 *                                    sbx_landlock_net, as an instance would),
 *                                    shared (the parent builds it once and the
 *                                    children only enforce it), none (fork
 *                                    and wait only: the baseline)
 *   sandbox_bench calls              ns per system call before and after
 *                                    sbx_filter_apply, for a call the filter
 *                                    never looks at (getpid), calls it runs
 *                                    its program for (ioctl, socket) and one
 *                                    landlock sees (open)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "worker/sandbox_filter.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, int p)
{
	qsort(v, n, sizeof *v, cmp_u64);
	return v[(n - 1) * (size_t)p / 100];
}

/* A field of /proc/meminfo, in kB. */
static long meminfo(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			v = strtol(line + n + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static int bench_apply(size_t n)
{
	uint64_t *t = calloc(n, sizeof *t);
	int p[2];
	if (!t || pipe(p) < 0)
		die("setup");
	char summary[96] = "";
	for (size_t i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			char err[256];
			struct sbx_filter_report rep;
			uint64_t t0 = now_ns();
			int rc = sbx_filter_apply(NULL, &rep, err, sizeof err);
			uint64_t dt = now_ns() - t0;
			if (rc < 0) {
				fprintf(stderr, "sbx_filter_apply: %s\n", err);
				_exit(1);
			}
			if (write(p[1], &dt, sizeof dt) != sizeof dt ||
			    (i == 0 && write(p[1], rep.summary, sizeof rep.summary) < 0))
				_exit(1);
			_exit(0);
		}
		int st;
		if (pid < 0 || waitpid(pid, &st, 0) != pid || st != 0 ||
		    read(p[0], &t[i], sizeof t[i]) != sizeof t[i] ||
		    (i == 0 && read(p[0], summary, sizeof summary) != sizeof summary))
			die("child");
	}
	printf("sbx_filter_apply (%s), %zu forked children: median %.0f µs, p10 %.0f, p90 %.0f\n",
	       summary, n, pct(t, n, 50) / 1e3, pct(t, n, 10) / 1e3, pct(t, n, 90) / 1e3);
	return 0;
}

/* Raw landlock, for the "shared" mode only: the module has no API that hands
 * out a ruleset, since each instance builds its own. */
struct ruleset_attr {
	uint64_t handled_access_fs, handled_access_net, scoped;
};
struct net_port_attr {
	uint64_t allowed_access, port;
};

static int prebuilt_ruleset(const uint16_t *ports, size_t n)
{
	struct ruleset_attr attr = {.handled_access_net = 3};
	int fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr, 0);
	if (fd < 0)
		die("landlock_create_ruleset");
	for (size_t i = 0; i < n; i++) {
		struct net_port_attr r = {.allowed_access = 2, .port = ports[i]};
		if (syscall(SYS_landlock_add_rule, fd, 2, &r, 0) < 0)
			die("landlock_add_rule");
	}
	return fd;
}

/* Waits (up to 60 s) until the slab stops shrinking: the rulesets of an
 * earlier run are freed from a workqueue, after an RCU grace period. */
static void settle(void)
{
	long prev = meminfo("Slab");
	for (int i = 0; i < 60; i++) {
		sleep(1);
		long cur = meminfo("Slab");
		if (labs(cur - prev) < 1024)
			return;
		prev = cur;
	}
}

static int bench_ports(size_t nports, size_t nchildren, const char *mode)
{
	/* 15 ports an outbound worker plausibly needs, or every port but 0
	 * and the one kept back (the control API's, say 8787). */
	static const uint16_t few[] = {53,   80,   443,  587,  993,  3306,  5432, 5672,
				       6379, 8080, 8443, 9092, 9200, 11211, 27017};
	uint16_t *ports = calloc(65536, sizeof *ports);
	size_t n = 0;
	if (nports <= sizeof few / sizeof few[0])
		for (; n < nports; n++)
			ports[n] = few[n];
	else
		for (unsigned port = 1; port <= 65535 && n < nports; port++)
			if (port != 8787)
				ports[n++] = (uint16_t)port;

	int shared = -1;
	uint64_t build_ns = 0;
	if (strcmp(mode, "shared") == 0) {
		uint64_t t0 = now_ns();
		shared = prebuilt_ruleset(ports, n);
		build_ns = now_ns() - t0;
	}
	pid_t *pids = calloc(nchildren, sizeof *pids);
	uint64_t *t = calloc(nchildren, sizeof *t);
	int p[2];
	if (pipe(p) < 0)
		die("pipe");
	settle();
	long slab0 = meminfo("Slab"), unrec0 = meminfo("SUnreclaim"),
	     avail0 = meminfo("MemAvailable");
	for (size_t i = 0; i < nchildren; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			die("fork");
		if (pids[i] == 0) {
			char err[256];
			uint64_t t0 = now_ns();
			int rc = 0;
			if (strcmp(mode, "own") == 0)
				rc = sbx_landlock_net(ports, n, err, sizeof err);
			else if (shared >= 0)
				rc = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
						     syscall(SYS_landlock_restrict_self, shared,
							     0) < 0
					     ? -1
					     : 0;
			uint64_t dt = now_ns() - t0;
			if (rc < 0) {
				fprintf(stderr, "child: %s\n",
					strcmp(mode, "own") ? strerror(errno) : err);
				_exit(1);
			}
			if (shared >= 0)
				close(shared);
			if (write(p[1], &dt, sizeof dt) != sizeof dt)
				_exit(1);
			pause();
			_exit(0);
		}
	}
	for (size_t i = 0; i < nchildren; i++)
		if (read(p[0], &t[i], sizeof t[i]) != sizeof t[i])
			die("a child failed");
	sleep(2); /* freed rulesets are put on a workqueue and RCU */
	long slab1 = meminfo("Slab"), unrec1 = meminfo("SUnreclaim"),
	     avail1 = meminfo("MemAvailable");
	for (size_t i = 0; i < nchildren; i++)
		kill(pids[i], SIGKILL);
	for (size_t i = 0; i < nchildren; i++)
		waitpid(pids[i], NULL, 0);
	struct rusage ru;
	getrusage(RUSAGE_CHILDREN, &ru);
	double sys_ms = ru.ru_stime.tv_sec * 1e3 + ru.ru_stime.tv_usec / 1e3;
	/* Run together, the children share the cores: their own clock says
	 * how long one waited, the kernel time they used says what one cost. */
	printf("ports=%zu children=%zu mode=%s: per child %.1f µs median (p90 %.1f) "
	       "between its two clock reads, %.2f ms of kernel time per child",
	       n, nchildren, mode, pct(t, nchildren, 50) / 1e3, pct(t, nchildren, 90) / 1e3,
	       sys_ms / (double)nchildren);
	if (shared >= 0)
		printf(", ruleset built once in %.1f ms", build_ns / 1e6);
	printf("\n  Slab +%ld kB (%.1f kB/child), SUnreclaim +%ld kB, MemAvailable -%ld kB "
	       "(%.1f kB/child)\n",
	       slab1 - slab0, (double)(slab1 - slab0) / (double)nchildren, unrec1 - unrec0,
	       avail0 - avail1, (double)(avail0 - avail1) / (double)nchildren);
	return 0;
}

static double per_call_once(int what, int fd)
{
	const int n = 100000;
	uint64_t t0 = now_ns();
	for (int i = 0; i < n; i++) {
		int v;
		switch (what) {
		case 0:
			syscall(SYS_getpid);
			break;
		case 1:
			ioctl(fd, FIONREAD, &v);
			break;
		case 2:
			close(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
			break;
		case 3:
			close(open("/usr/lib/os-release", O_RDONLY | O_CLOEXEC));
			break;
		}
	}
	return (double)(now_ns() - t0) / n;
}

/* The best of 7 runs: the least disturbed by the other core's work. */
static double per_call(int what, int fd)
{
	double best = per_call_once(what, fd);
	for (int i = 0; i < 6; i++) {
		double t = per_call_once(what, fd);
		if (t < best)
			best = t;
	}
	return best;
}

static int bench_calls(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		static const char *const names[] = {"getpid", "ioctl(FIONREAD)", "socket+close",
						    "open+close"};
		int p[2];
		char err[256];
		double before[4], after[4];
		if (pipe(p) < 0)
			_exit(1);
		for (int w = 0; w < 4; w++)
			before[w] = per_call(w, p[0]);
		if (sbx_filter_apply(NULL, NULL, err, sizeof err) < 0) {
			fprintf(stderr, "%s\n", err);
			_exit(1);
		}
		for (int w = 0; w < 4; w++)
			after[w] = per_call(w, p[0]);
		for (int w = 0; w < 4; w++)
			printf("%-16s %7.0f ns -> %7.0f ns\n", names[w], before[w], after[w]);
		fflush(stdout);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	return st == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "apply") == 0)
		return bench_apply(argc > 2 ? strtoul(argv[2], NULL, 10) : 1000);
	if (argc >= 4 && strcmp(argv[1], "ports") == 0)
		return bench_ports(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10),
				   argc > 4 ? argv[4] : "own");
	if (argc == 2 && strcmp(argv[1], "calls") == 0)
		return bench_calls();
	fprintf(stderr, "usage: sandbox_bench apply [N] | ports P N [own|shared|none] | calls\n");
	return 2;
}
