/*
 * Tests for instances' control groups (src/host/cgroup.c).
 *   - Where the hierarchies are: cgroup_layout_parse on mountinfo and
 *     /proc/self/cgroup texts of a v2 host, a v1 host, a hybrid one, a
 *     container whose mounts start below the root, and escaped paths.
 *   - Against this machine's real cgroups (skipped, saying why, when not
 *     root or no hierarchy is usable): a group limited to 64 MiB whose
 *     process touches 256 MiB is killed with SIGKILL and the OOM kill is
 *     counted; with pids.max 8 the process that fills the group gets EAGAIN
 *     from its next fork; the CPU time read grows while a process spins;
 *     kill + remove empties and removes a group; a crashed host's groups are
 *     removed by the next host; on the cgroup2 hierarchy (which a hybrid
 *     host mounts without controllers): a group, a process moved into it,
 *     its CPU time, cgroup.kill.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "host/cgroup.h"

/* --- the layout, from texts --- */

static void test_layout_v2_host(void **state)
{
	const char *mi = "22 1 0:20 / /sys rw - sysfs sysfs rw\n"
			 "30 22 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
	const char *sc = "0::/system.slice/thaw.service\n";
	struct cgroup_layout l;
	assert_int_equal(cgroup_layout_parse(mi, sc, &l), 0);
	assert_string_equal(l.v2, "/sys/fs/cgroup/system.slice/thaw.service");
	assert_string_equal(l.v1[CGROUP_MEMORY], "");
}

static void test_layout_v1_host_per_controller(void **state)
{
	const char *mi =
		"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
		"40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n"
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	const char *sc = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/e54a\n"
			 "2:cpu,cpuacct:/a/b\n0::/\n";
	struct cgroup_layout l;
	assert_int_equal(cgroup_layout_parse(mi, sc, &l), 0);
	assert_string_equal(l.v1[CGROUP_MEMORY], "/sys/fs/cgroup/memory/process_api/e54a");
	assert_string_equal(l.v1[CGROUP_PIDS], "/sys/fs/cgroup/pids");
	assert_string_equal(l.v1[CGROUP_CPU], "/sys/fs/cgroup/cpu,cpuacct/a/b");
	/* Shares and counting in one co-mounted hierarchy: the same group. */
	assert_string_equal(l.v1[CGROUP_WEIGHT], "/sys/fs/cgroup/cpu,cpuacct/a/b");
	/* The hybrid layout's empty cgroup2 is found too; cgroup_host_open
	 * uses it only if it offers controllers. */
	assert_string_equal(l.v2, "/sys/fs/cgroup/unified");
}

static void test_layout_container_mount_root_and_escapes(void **state)
{
	/* A container sees its own group as the mount's root; a path outside
	 * the mount is not reachable. */
	const char *mi =
		"50 40 0:30 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
		"51 40 0:31 /docker/abc /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
		"52 40 0:32 / /mnt/my\\040groups rw - cgroup cgroup rw,cpuacct\n";
	const char *sc = "4:memory:/docker/abc/inner\n3:pids:/elsewhere\n2:cpuacct:/x\n";
	struct cgroup_layout l;
	assert_int_equal(cgroup_layout_parse(mi, sc, &l), 0);
	assert_string_equal(l.v1[CGROUP_MEMORY], "/sys/fs/cgroup/memory/inner");
	assert_string_equal(l.v1[CGROUP_PIDS], "");
	assert_string_equal(l.v1[CGROUP_CPU], "/mnt/my groups/x");
	assert_string_equal(l.v1[CGROUP_WEIGHT], ""); /* no cpu hierarchy */
}

static void test_layout_nothing_usable(void **state)
{
	struct cgroup_layout l;
	assert_int_equal(cgroup_layout_parse("22 1 0:20 / /sys rw - sysfs sysfs rw\n", "0::/\n",
					     &l),
			 -1);
	assert_int_equal(cgroup_layout_parse("garbage\n\n - - -\n", "nonsense", &l), -1);
	assert_int_equal(cgroup_layout_parse("", "", &l), -1);
}

/* --- against this machine's cgroups --- */

static struct cgroup_host *ch;

static int open_host(void **state)
{
	char why[512];
	if (geteuid() != 0) {
		fprintf(stderr, "test_cgroup: not root: the tests on real cgroups are skipped\n");
		return 0;
	}
	ch = cgroup_host_open(why, sizeof why);
	if (!ch)
		fprintf(stderr, "test_cgroup: no usable cgroups (%s): skipped\n", why);
	else
		fprintf(stderr, "test_cgroup: %s\n", ch->what);
	return 0;
}

static int close_host(void **state)
{
	cgroup_host_close(ch);
	ch = NULL;
	return 0;
}

/* A child that waits until the parent has moved it into g, then runs fn. */
static pid_t spawn_in(struct cgroup *g, void (*fn)(void))
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(90);
		fn();
		_exit(0);
	}
	close(p[0]);
	char err[256];
	if (cgroup_attach(g, pid, err, sizeof err) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("%s", err);
	}
	assert_int_equal(write(p[1], "g", 1), 1);
	close(p[1]);
	return pid;
}

static void remove_group(struct cgroup *g)
{
	for (int i = 0; i < 500; i++) {
		cgroup_kill(g);
		if (cgroup_remove(g) == 0) {
			for (int c = 0; c < CGROUP_NCTL; c++)
				if (g->dir[c])
					assert_int_equal(access(g->dir[c], F_OK), -1);
			cgroup_free(g);
			return;
		}
		usleep(10000);
	}
	fail_msg("the group %s could not be removed: %s", g->dir[0] ? g->dir[0] : "?",
		 strerror(errno));
}

static void touch_256_mib(void)
{
	size_t n = 256u << 20;
	char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(91);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1;
	_exit(0); /* not killed: the test fails */
}

static void test_memory_limit_kills_and_the_oom_is_counted(void **state)
{
	if (!ch || !ch->parent[CGROUP_MEMORY])
		skip();
	char err[256];
	struct cgroup *g = cgroup_create(ch, "t-memory", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	assert_int_equal(cgroup_oom_kills(g), 0);
	if (cgroup_limit_memory(g, 64u << 20, err, sizeof err) < 0)
		fail_msg("%s", err);
	pid_t pid = spawn_in(g, touch_256_mib);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status))
		fail_msg("the child was not killed (exit status %d)", WEXITSTATUS(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(cgroup_oom_kills(g) >= 1);
	remove_group(g);
}

static int fork_result[2];

static void fork_until_refused(void)
{
	int made = 0, e = 0;
	for (int i = 0; i < 64; i++) {
		pid_t c = fork();
		if (c == 0) {
			pause();
			_exit(0);
		}
		if (c < 0) {
			e = errno;
			break;
		}
		made++;
	}
	int out[2] = {made, e};
	if (write(fork_result[1], out, sizeof out) != sizeof out)
		_exit(92);
	pause(); /* the test kills the whole group */
}

static void test_pids_limit_refuses_the_next_fork_with_eagain(void **state)
{
	if (!ch || !ch->parent[CGROUP_PIDS])
		skip();
	char err[256];
	struct cgroup *g = cgroup_create(ch, "t-pids", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	if (cgroup_limit_pids(g, 8, err, sizeof err) < 0)
		fail_msg("%s", err);
	assert_int_equal(pipe(fork_result), 0);
	pid_t pid = spawn_in(g, fork_until_refused);
	int out[2];
	assert_int_equal(read(fork_result[0], out, sizeof out), (ssize_t)sizeof out);
	close(fork_result[0]);
	close(fork_result[1]);
	/* 8 processes in the group: the first and the 7 it made; the 8th fork
	 * (the 9th process) is refused. */
	assert_int_equal(out[0], 7);
	assert_int_equal(out[1], EAGAIN);
	assert_true(cgroup_kill(g) >= 8);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	remove_group(g); /* the grandchildren were killed with it */
}

static void spin(void)
{
	for (;;)
		__asm__ volatile("" ::: "memory");
}

static void test_cpu_time_grows_while_a_process_spins(void **state)
{
	if (!ch || !ch->parent[CGROUP_CPU])
		skip();
	char err[256];
	struct cgroup *g = cgroup_create(ch, "t-cpu", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	uint64_t start = 0, now = 0;
	assert_int_equal(cgroup_cpu_ns(g, &start), 0);
	assert_true(start < 10 * 1000000ull);
	pid_t pid = spawn_in(g, spin);
	uint64_t deadline = now_ns() + 10ull * 1000000000;
	while (now_ns() < deadline) {
		assert_int_equal(cgroup_cpu_ns(g, &now), 0);
		if (now - start >= 100 * 1000000ull)
			break;
		usleep(5000);
	}
	assert_true(now - start >= 100 * 1000000ull);
	assert_int_equal(cgroup_kill(g), 1);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	remove_group(g);
}

/* A child that holds 64 MiB of its own (touched) until killed. */
static void hold_64m(void)
{
	size_t n = 64u << 20;
	volatile char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(91);
	for (size_t i = 0; i < n; i += 4096)
		p[i] = 1; /* volatile: the compiler may not drop the touch */
	for (;;)
		pause();
}

static void test_memory_in_use_is_counted_for_the_group_and_the_host(void **state)
{
	if (!ch || !ch->parent[CGROUP_MEMORY])
		skip();
	char err[256];
	struct cgroup *g = cgroup_create(ch, "t-mem", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	uint64_t host0 = 0, cache = 0, own = 0, host1 = 0;
	assert_int_equal(cgroup_host_memory(ch, &host0, &cache), 0);
	pid_t pid = spawn_in(g, hold_64m);
	/* Wait for its 64 MiB to be charged (it touches them after the move). */
	uint64_t deadline = now_ns() + 10ull * 1000000000;
	while (now_ns() < deadline) {
		assert_int_equal(cgroup_memory(g, &own), 0);
		if (own >= 64ull << 20)
			break;
		usleep(5000);
	}
	if (own < 64ull << 20 || own >= 96ull << 20)
		fail_msg("the group holds %llu bytes, not 64 MiB and a little", (unsigned long long)own);
	assert_int_equal(cgroup_host_memory(ch, &host1, NULL), 0);
	assert_true(host1 >= host0 + (60ull << 20)); /* the hierarchy counts its children */
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	remove_group(g);
}

static void test_cpu_weight_is_written_on_the_kernels_scale(void **state)
{
	if (!ch || !ch->parent[CGROUP_WEIGHT])
		skip();
	char err[256], buf[32] = "";
	struct cgroup *g = cgroup_create(ch, "t-weight", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	assert_int_equal(cgroup_set_weight(g, 25, err, sizeof err), 0);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", g->dir[CGROUP_WEIGHT],
		 cgroup_ctl_file(ch, CGROUP_WEIGHT));
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	assert_int_equal(atoi(buf), ch->mode == CGROUP_V2 ? 25 : 256);
	/* Out of range is clamped, never refused. */
	assert_int_equal(cgroup_set_weight(g, 0, err, sizeof err), 0);
	assert_int_equal(cgroup_set_weight(g, 1u << 30, err, sizeof err), 0);
	remove_group(g);
}

static void test_a_crashed_hosts_groups_are_removed_by_the_next(void **state)
{
	if (!ch)
		skip();
	/* A pid that is gone: a child reaped. */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	char stale[PATH_MAX], child[PATH_MAX + 8];
	int c = ch->parent[CGROUP_MEMORY] ? CGROUP_MEMORY
		: ch->parent[CGROUP_PIDS] ? CGROUP_PIDS
					  : CGROUP_CPU;
	snprintf(stale, sizeof stale, "%s", ch->parent[c]);
	char *slash = strrchr(stale, '/');
	snprintf(slash + 1, sizeof stale - (size_t)(slash + 1 - stale), "thaw-%d", (int)dead);
	snprintf(child, sizeof child, "%s/i7", stale);
	assert_int_equal(mkdir(stale, 0755), 0);
	assert_int_equal(mkdir(child, 0755), 0);
	/* A live host's group (ours) is left alone; the dead one's goes. */
	char why[256];
	struct cgroup_host *next = cgroup_host_open(why, sizeof why);
	if (!next)
		fail_msg("%s", why);
	int gone = access(stale, F_OK) < 0 && errno == ENOENT;
	if (!gone) {
		rmdir(child);
		rmdir(stale);
	}
	assert_true(gone);
	assert_int_equal(access(ch->parent[c], F_OK), 0);
	/* The same host opening twice shares its groups: close only one. */
	for (int k = 0; k < CGROUP_NCTL; k++) {
		free(next->parent[k]);
		next->parent[k] = NULL;
	}
	cgroup_host_close(next);
}

static void test_close_removes_the_hosts_groups_and_what_is_in_them(void **state)
{
	char why[256], err[256];
	if (geteuid() != 0)
		skip();
	struct cgroup_host *h = cgroup_host_open(why, sizeof why);
	if (!h)
		skip();
	struct cgroup *g = cgroup_create(h, "t-left", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	pid_t pid = spawn_in(g, spin);
	char parents[CGROUP_NCTL][PATH_MAX];
	for (int c = 0; c < CGROUP_NCTL; c++)
		snprintf(parents[c], PATH_MAX, "%s", h->parent[c] ? h->parent[c] : "");
	cgroup_free(g);
	/* ch (the fixture's) shares the same thaw-PID directories: give them
	 * up there first, as only one host per process exists in thaw. */
	cgroup_host_close(h);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	for (int c = 0; c < CGROUP_NCTL; c++)
		if (parents[c][0])
			assert_int_equal(access(parents[c], F_OK), -1);
}

/* The v2 interface where this host has one: on a hybrid host its cgroup2
 * offers no controller, but its groups, cgroup.procs, cpu.stat and
 * cgroup.kill are v2's own and are what a v2 host uses. */
static void test_v2_groups_attach_cpu_and_kill(void **state)
{
	if (geteuid() != 0)
		skip();
	size_t n;
	char *mi = read_file("/proc/self/mountinfo", 4u << 20, &n);
	char *sc = read_file("/proc/self/cgroup", 1u << 20, &n);
	struct cgroup_layout lay;
	int found = mi && sc && cgroup_layout_parse(mi, sc, &lay) == 0 && lay.v2[0];
	free(mi);
	free(sc);
	if (!found) {
		fprintf(stderr, "test_cgroup: no cgroup2 hierarchy: the v2 test is skipped\n");
		skip();
	}
	char why[512], err[256];
	struct cgroup_host *h = cgroup_host_open_v2(lay.v2, why, sizeof why);
	if (!h)
		fail_msg("%s", why);
	assert_int_equal(h->mode, CGROUP_V2);
	assert_non_null(h->parent[CGROUP_CPU]);
	assert_string_equal(cgroup_ctl_file(h, CGROUP_CPU), "cpu.stat");
	struct cgroup *g = cgroup_create(h, "t-v2", err, sizeof err);
	if (!g)
		fail_msg("%s", err);
	uint64_t start = 0, now = 0;
	assert_int_equal(cgroup_cpu_ns(g, &start), 0);
	pid_t pid = spawn_in(g, spin);
	uint64_t deadline = now_ns() + 10ull * 1000000000;
	while (now_ns() < deadline) {
		assert_int_equal(cgroup_cpu_ns(g, &now), 0);
		if (now - start >= 50 * 1000000ull)
			break;
		usleep(5000);
	}
	assert_true(now - start >= 50 * 1000000ull);
	assert_int_equal(cgroup_kill(g), 1); /* cgroup.kill */
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	remove_group(g);
	char parent[PATH_MAX];
	snprintf(parent, sizeof parent, "%s", h->parent[CGROUP_CPU]);
	cgroup_host_close(h);
	assert_int_equal(access(parent, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_v2_host),
		cmocka_unit_test(test_layout_v1_host_per_controller),
		cmocka_unit_test(test_layout_container_mount_root_and_escapes),
		cmocka_unit_test(test_layout_nothing_usable),
		cmocka_unit_test_setup_teardown(test_memory_limit_kills_and_the_oom_is_counted,
						open_host, close_host),
		cmocka_unit_test_setup_teardown(test_pids_limit_refuses_the_next_fork_with_eagain,
						open_host, close_host),
		cmocka_unit_test_setup_teardown(test_cpu_time_grows_while_a_process_spins,
						open_host, close_host),
		cmocka_unit_test_setup_teardown(test_memory_in_use_is_counted_for_the_group_and_the_host,
						open_host, close_host),
		cmocka_unit_test_setup_teardown(test_cpu_weight_is_written_on_the_kernels_scale,
						open_host, close_host),
		cmocka_unit_test_setup_teardown(test_a_crashed_hosts_groups_are_removed_by_the_next,
						open_host, close_host),
		cmocka_unit_test(test_close_removes_the_hosts_groups_and_what_is_in_them),
		cmocka_unit_test(test_v2_groups_attach_cpu_and_kill),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
