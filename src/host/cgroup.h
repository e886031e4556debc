/*
 * Control groups for instances: a group per instance, under a group of the
 * host's own, that limits its memory and its processes and counts its CPU
 * time. Both kernels' interfaces are spoken:
 *
 *   cgroup v2 (one unified hierarchy, production hosts): the host's group
 *     (/proc/self/cgroup "0::PATH") gets a child thaw-PID with the memory and
 *     pids controllers enabled below it; each instance a child iN of that:
 *     memory.max, memory.swap.max = 0, memory.oom.group = 1, pids.max;
 *     CPU time from cpu.stat usage_usec (always there); an OOM kill from
 *     memory.events oom_kill; everything killed at once with cgroup.kill.
 *   cgroup v1 (a hierarchy per controller, as on the development VM): the
 *     same names in each of the memory, pids, cpuacct and cpu hierarchies, under
 *     the host's own group of each: memory.limit_in_bytes (and
 *     memory.memsw.limit_in_bytes where swap is accounted), pids.max, CPU
 *     time from cpuacct.usage, an OOM kill from memory.oom_control's oom_kill,
 *     the CPU share in cpu.shares (v2: cpu.weight, with the cpu controller
 *     enabled below the host's group where it is offered).
 * Where the hierarchies are is read from /proc/self/mountinfo and
 * /proc/self/cgroup, never assumed. A hybrid layout (v1 controllers beside
 * an empty cgroup2 mount) is v1: v2 is used only when the host's v2 group
 * offers the memory or pids controller.
 *
 * v2's rule that a group with processes cannot hand controllers to its
 * children: if the host's own group has none enabled below it and the host
 * is the only process in it, the host moves itself into a leaf thaw-host-PID
 * beside thaw-PID (as systemd asks of services with Delegate=yes);
 * otherwise v2 is not used and the caller is told why.
 *
 * LIFETIME
 *   cgroup_host_open() makes thaw-PID (after removing the groups a crashed
 *   host left: thaw-N whose process N is gone), cgroup_host_close() kills
 *   whatever is left in it and removes it. An instance's group is made by
 *   cgroup_create() before the instance is given work, and removed with
 *   cgroup_kill() + cgroup_remove() once its process has been reaped
 *   (rmdir fails with EBUSY while a process it forked is still exiting:
 *   the caller retries).
 *
 * ERRORS: -1 and a message in err; nothing here logs. BLOCKING: small reads
 * and writes of cgroupfs files (never waits on a process), except
 * cgroup_host_open/close, which wait up to a second for killed processes
 * of a group to leave it.
 */
#ifndef THAW_HOST_CGROUP_H
#define THAW_HOST_CGROUP_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum cgroup_mode { CGROUP_NONE, CGROUP_V1, CGROUP_V2 };
/* CGROUP_CPU counts CPU time (v1 cpuacct; v2 cpu.stat, in every group);
 * CGROUP_WEIGHT shares it out (v1 cpu.shares; v2 cpu.weight). */
enum cgroup_ctl { CGROUP_MEMORY, CGROUP_PIDS, CGROUP_CPU, CGROUP_WEIGHT, CGROUP_NCTL };

/*
 * Where the host's own groups are, as read from mountinfo and
 * /proc/self/cgroup: its group in the cgroup2 hierarchy (v2, "" when none is
 * mounted) and in the v1 hierarchy of each controller ("" when it is not
 * mounted, or the host's group is outside the mount).
 */
struct cgroup_layout {
	char v2[PATH_MAX];
	char v1[CGROUP_NCTL][PATH_MAX];
};
/* From the texts of /proc/self/mountinfo and /proc/self/cgroup (borrowed,
 * NUL-terminated). 0, or -1 when neither names a usable hierarchy. */
int cgroup_layout_parse(const char *mountinfo, const char *self_cgroup, struct cgroup_layout *out);

struct cgroup_host {
	enum cgroup_mode mode;
	/* The host's thaw-PID group of each controller in use (NULL: that
	 * controller is not available; v2: the same path for all). */
	char *parent[CGROUP_NCTL];
	int memsw;      /* v1: memory.memsw.limit_in_bytes exists (swap accounted) */
	char what[512]; /* "cgroup v1 memory, pids, cpuacct under ..." for the log */
};

/* Open the host's groups (see above). Returns new, or NULL with why (no
 * cgroup filesystem, not writable: not root, ...). */
struct cgroup_host *cgroup_host_open(char *why, size_t whylen);
/* The same in the cgroup2 hierarchy, the host's group there being own,
 * whatever controllers it offers (a hybrid host's v2 has none, but groups,
 * cgroup.procs, cpu.stat and cgroup.kill work): for tests of the v2 side. */
struct cgroup_host *cgroup_host_open_v2(const char *own, char *why, size_t whylen);
/* Kill what is left in the host's groups, remove them, free ch (NULL ok). */
void cgroup_host_close(struct cgroup_host *ch);
/* The name of ctl's interface, for messages: "memory.max" and so on. */
const char *cgroup_ctl_file(const struct cgroup_host *ch, enum cgroup_ctl ctl);

/* One instance's group. */
struct cgroup {
	struct cgroup_host *ch;
	char *dir[CGROUP_NCTL]; /* NULL where the host has no such controller */
	int cpu_fd;             /* cpuacct.usage or cpu.stat, kept open; -1 */
};

/* Make ch's child group name (a path component). Returns new, or NULL with
 * err. */
struct cgroup *cgroup_create(struct cgroup_host *ch, const char *name, char *err, size_t errlen);
/* Memory of the group, swap included, at most bytes. 0, or -1 with err. */
int cgroup_limit_memory(struct cgroup *g, uint64_t bytes, char *err, size_t errlen);
/* Processes and threads of the group at most max. 0, or -1 with err. */
int cgroup_limit_pids(struct cgroup *g, uint64_t max, char *err, size_t errlen);
/* The group's share of contended CPU, on cgroup v2's scale (1..10000,
 * default 100; v1's cpu.shares is 1024 for 100). 0, or -1 with err (no cpu
 * controller). */
int cgroup_set_weight(struct cgroup *g, unsigned weight, char *err, size_t errlen);
/* Move process pid (all its threads) into the group. 0, or -1 with err. */
int cgroup_attach(struct cgroup *g, pid_t pid, char *err, size_t errlen);
/* The cgroup.procs files of g, opened for writing (close-on-exec), at most
 * max: a process given them joins g by writing "0" to each (spawn.h: a
 * sandboxed spare does, so that the migration's wait is its own, not the
 * host loop's). Their count, or -1. */
int cgroup_procs_open(struct cgroup *g, int *fds, int max);
/* CPU time the group's processes used, in ns (all threads, children
 * included). 0, or -1 when the host has no CPU accounting. */
int cgroup_cpu_ns(struct cgroup *g, uint64_t *ns);
/* How many times the kernel's OOM killer killed in the group. */
uint64_t cgroup_oom_kills(const struct cgroup *g);
/* Memory in use by the host's instance groups together (the hierarchy's
 * usage: memory.current, memory.usage_in_bytes; O(1) to read) and, when
 * file_cache is not NULL, how much of it is page cache of files (memory.stat:
 * reclaimable, shared between instances: images, libraries; tmpfs not
 * included). 0, or -1 without a memory controller. */
int cgroup_host_memory(const struct cgroup_host *ch, uint64_t *used, uint64_t *file_cache);
/* One group's memory less its page cache of files. 0, or -1. */
int cgroup_memory(const struct cgroup *g, uint64_t *used);
/* The memory limit of the host's own group (the parent of its instance
 * groups: a container's, a systemd service's MemoryMax=). 0, or -1 when
 * there is none (or no memory controller). */
int cgroup_host_own_memory_limit(const struct cgroup_host *ch, uint64_t *bytes);
/* The CPU weight of the host's instance groups together (cgroup_set_weight's
 * scale). 0, or -1 (no cpu controller, or not writable). */
int cgroup_host_set_weight(struct cgroup_host *ch, unsigned weight);
/* Limit the host's instance groups together (the kernel's backstop: past it
 * the OOM killer picks inside them, never the host). 0, or -1 with err. */
int cgroup_host_limit_memory(struct cgroup_host *ch, uint64_t bytes, char *err, size_t errlen);
/* SIGKILL every process in the group. The number of processes seen (0:
 * none left), or -1 when the group cannot be read. */
int cgroup_kill(struct cgroup *g);
/* Remove the group's directories. 0, or -1 with errno (EBUSY: processes
 * are still leaving it; kill and retry). */
int cgroup_remove(struct cgroup *g);
/* Free g's memory (its directories are not touched). NULL is fine. */
void cgroup_free(struct cgroup *g);

#endif
