/*
 * The host's room for instances: every worker's instances together hold at
 * most --max-memory of memory and --max-instances processes, and one worker
 * at most --max-instances-per-worker of them (docs/limits.md, "The host's
 * memory and its fair share"). Instances' own limits are limits.c's.
 *
 * ADMISSION. An app that needs one more instance (pool_dispatch, a prewarm,
 * a new image's first restore) asks capacity_admit(). When the host has
 * room it starts one. When it has none, idle instances (READY, holding no
 * request) are evicted, least recently used first whatever their worker,
 * until there is room. When nothing idle is left the app waits: apps wait
 * in one FIFO, and as room comes (an instance leaves its app's list, goes
 * idle, or is reaped; and every 50 ms while any waits, for memory a busy
 * instance gives back) they are dispatched in order, each evicting what it
 * needs; an app behind another never overtakes it. An app leaves the FIFO
 * as soon as it needs no more room (nothing pending, or what it has
 * starting takes what waits): a head that no longer asks holds no one up. The requests of a waiting
 * app that has no instance at all are answered 503 with Retry-After once
 * they have waited --queue-timeout: the host refuses work it cannot take
 * rather than letting memory grow into the kernel's OOM killer. (An app with
 * instances of its own queues behind them, as always, up to --timeout.)
 *
 * MEMORY is what the host's instance group holds (limits.c's cgroups: v2
 * memory.current, v1 memory.usage_in_bytes, the whole hierarchy, O(1) to
 * read) less its page cache of files: images and libraries, shared between
 * instances and reclaimable, sampled from memory.stat every second. That
 * leaves anonymous memory, tmpfs (/tmp) and kernel memory: what instances
 * cost. Without a memory cgroup it is the sum of the instances' private
 * resident pages (/proc/PID/statm), taken at most every 200 ms. (An
 * admission that finds no room samples the page cache again first.) A new
 * instance is reckoned to need the host's average per process (at least
 * 8 MiB). An evicted instance's memory (read when it is evicted) counts as
 * gone from then until its reap. Instances growing past --max-memory on
 * their own make the 1 s tick evict idle ones; as the kernel's backstop the
 * instance group is limited to --max-memory plus an eighth (past that the
 * OOM killer picks inside it, never the host).
 *
 * DEFAULTS: --max-memory 3/4 of the machine's RAM (or of the host's own
 * memory cgroup limit, when that is lower); --max-instances 1000;
 * --max-instances-per-worker 4; --queue-timeout 2 s.
 *
 * BLOCKING: small cgroupfs and /proc reads (one per admission, memory.stat
 * once a second; statm per instance without a memory cgroup).
 */
#include "host/pool_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "host/cgroup.h"
#include "project/project.h"

#define TICK_MS 1000       /* memory.stat sample, eviction of growth */
#define WAIT_TICK_MS 50    /* expiry of waiting requests */
#define STATM_MAX_AGE_NS 200000000ull
#define MIN_NEED (8ull << 20)

enum evict_cause { EVICT_MEMORY, EVICT_INSTANCES, EVICT_NCAUSE };

struct host_capacity {
	struct host *h;
	struct cgroup_host *cg; /* with a memory controller, else NULL */
	uint64_t file_cache;    /* page cache in cg, last sampled */
	uint64_t evicting;      /* memory of evicted instances not reaped yet */
	uint64_t statm_sum, statm_at; /* no cgroup: the last sum and when */
	struct app *waiters, *waiters_tail;
	struct loop_timer tick, wait_tick, kick;
	uint64_t evictions[EVICT_NCAUSE];
	uint64_t refused; /* requests answered 503 for want of room */
};

static const char *const cause_name[EVICT_NCAUSE] = {"memory", "instances"};

/* --- what the host holds --- */

static uint64_t memory_used(struct host_capacity *c)
{
	uint64_t used = 0;
	if (c->cg) {
		if (cgroup_host_memory(c->cg, &used, NULL) < 0)
			return 0;
		used = used > c->file_cache ? used - c->file_cache : 0;
	} else {
		uint64_t now = now_ns();
		if (now - c->statm_at > STATM_MAX_AGE_NS) {
			uint64_t sum = 0, b;
			for (struct instance *in = c->h->all_instances; in; in = in->all_next)
				if (!in->reaped && inst_limits_memory(in, &b) == 0)
					sum += b;
			c->statm_sum = sum;
			c->statm_at = now;
		}
		used = c->statm_sum;
	}
	return used > c->evicting ? used - c->evicting : 0;
}

static unsigned processes(const struct host *h)
{
	unsigned n = 0;
	for (const struct instance *in = h->all_instances; in; in = in->all_next)
		n += !in->reaped && !in->evict_bytes;
	return n;
}

/* What one more instance of a is reckoned to need. */
static uint64_t need_of(struct host_capacity *c, const struct app *a, uint64_t used)
{
	unsigned n = processes(c->h);
	uint64_t need = n ? used / n : 0;
	if (need < MIN_NEED)
		need = MIN_NEED;
	uint64_t cap = (uint64_t)a->cfg->limits.v[PROJECT_LIMIT_MEMORY_MB] << 20;
	if (cap && need > cap)
		need = cap;
	return need;
}

/* Why one more instance of a does not fit now, or -1 if it does. */
static int short_of(struct host_capacity *c, const struct app *a)
{
	const struct host_limits *lim = &c->h->lim;
	if (c->h->ninstances >= lim->max_instances)
		return EVICT_INSTANCES;
	uint64_t used = memory_used(c);
	if (used + need_of(c, a, used) <= lim->max_memory)
		return -1;
	/* Short by the page cache sampled up to a second ago? An image restored
	 * meanwhile is cache, not instance memory: look again before evicting. */
	uint64_t all;
	if (c->cg && cgroup_host_memory(c->cg, &all, &c->file_cache) == 0) {
		used = memory_used(c);
		if (used + need_of(c, a, used) <= lim->max_memory)
			return -1;
	}
	return EVICT_MEMORY;
}

/* The idle instance used least lately, any worker's, or NULL. */
static struct instance *lru_idle(struct host *h)
{
	struct instance *best = NULL;
	for (struct instance *in = h->all_instances; in; in = in->all_next) {
		if (!in->linked || in->state != INST_READY || in->inflight || in->reaped ||
		    in->evict_bytes)
			continue;
		if (!best || in->last_used < best->last_used)
			best = in;
	}
	return best;
}

static void evict(struct host_capacity *c, struct instance *in, int cause)
{
	uint64_t b = 0;
	if (inst_limits_memory(in, &b) < 0 || b == 0)
		b = 1; /* marks it evicted all the same */
	in->evict_bytes = b;
	c->evicting += b;
	c->evictions[cause]++;
	log_info("%s: instance %u evicted (idle %.1f s, %.1f MiB) for room: host %s limit "
		 "(--max-%s)",
		 app_label(in->app), in->id, (double)(now_ns() - in->last_used) / 1e9,
		 (double)b / (1 << 20), cause_name[cause],
		 cause == EVICT_MEMORY ? "memory" : "instances");
	inst_close(in, "evicted");
}

/* --- waiting apps --- */

static void wait_unlink(struct host_capacity *c, struct app *a)
{
	if (a->room_prev)
		a->room_prev->room_next = a->room_next;
	else
		c->waiters = a->room_next;
	if (a->room_next)
		a->room_next->room_prev = a->room_prev;
	else
		c->waiters_tail = a->room_prev;
	a->room_next = a->room_prev = NULL;
	a->room_waiting = 0;
}

void capacity_unwait(struct app *a)
{
	struct host_capacity *c = a->h->capacity;
	if (!c || !a->room_waiting)
		return;
	int head = c->waiters == a;
	wait_unlink(c, a);
	/* Those behind it waited for it alone, maybe with room there for them. */
	if (head)
		capacity_kick(a->h);
}

void capacity_wait(struct app *a)
{
	struct host_capacity *c = a->h->capacity;
	if (!c || a->room_waiting)
		return;
	a->room_waiting = 1;
	a->room_next = NULL;
	a->room_prev = c->waiters_tail;
	if (c->waiters_tail)
		c->waiters_tail->room_next = a;
	else
		c->waiters = a;
	c->waiters_tail = a;
	log_debug("%s: waits for room on the host (%u instances, %.1f MiB in use)", app_label(a),
		  a->h->ninstances, (double)memory_used(c) / (1 << 20));
	if (!loop_timer_armed(&c->wait_tick))
		loop_timer_arm(a->h->loop, &c->wait_tick, WAIT_TICK_MS);
}

int capacity_admit(struct app *a)
{
	struct host_capacity *c = a->h->capacity;
	if (!c)
		return 1;
	if (c->waiters && c->waiters != a)
		return 0; /* those waiting longer go first */
	for (;;) {
		int cause = short_of(c, a);
		if (cause < 0) {
			capacity_unwait(a);
			return 1;
		}
		struct instance *in = lru_idle(a->h);
		if (!in)
			return 0;
		evict(c, in, cause);
	}
}

static void kick_fn(struct loop *l, struct loop_timer *t)
{
	struct host_capacity *c = t->arg;
	/* In order: each gets its instance or stays first. */
	while (c->waiters) {
		struct app *a = c->waiters;
		pool_dispatch(a);
		if (c->waiters == a)
			break;
	}
}

void capacity_kick(struct host *h)
{
	struct host_capacity *c = h->capacity;
	if (c && c->waiters && !loop_timer_armed(&c->kick))
		loop_timer_arm(h->loop, &c->kick, 0);
}

void capacity_reaped(struct instance *in)
{
	struct host_capacity *c = in->h->capacity;
	if (!c)
		return;
	if (in->evict_bytes) {
		c->evicting -= in->evict_bytes < c->evicting ? in->evict_bytes : c->evicting;
		in->evict_bytes = 0;
	}
	c->statm_at = 0;
	capacity_kick(in->h);
}

/* Requests of waiting apps with no instance of their own that waited too long;
 * and room looked for again (the waiters kicked). */
static void wait_tick_fn(struct loop *l, struct loop_timer *t)
{
	struct host_capacity *c = t->arg;
	struct host *h = c->h;
	uint64_t now = now_ns(), limit = (uint64_t)(h->lim.queue_timeout_ms * 1e6);
	for (struct app *a = c->waiters, *next; a; a = next) {
		next = a->room_next;
		if (!a->pending_head) {
			capacity_unwait(a);
			continue;
		}
		if (a->nlive)
			continue;
		unsigned n = pool_fail_waited(a, now > limit ? now - limit : 0, 503,
					      "The host is at capacity: no room for another worker "
					      "instance now. Retry shortly.\n",
					      1);
		if (n) {
			c->refused += n;
			log_warn("%s: %u request%s refused (503): no room on the host for %.1f s "
				 "(%u instances, %.1f MiB of %.1f MiB in use)",
				 app_label(a), n, n == 1 ? "" : "s", h->lim.queue_timeout_ms / 1000,
				 h->ninstances, (double)memory_used(c) / (1 << 20),
				 (double)h->lim.max_memory / (1 << 20));
		}
		if (!a->pending_head)
			capacity_unwait(a);
	}
	if (c->waiters) {
		/* Room also comes without an event: a busy instance gives memory back. */
		capacity_kick(h);
		loop_timer_arm(l, t, WAIT_TICK_MS);
	}
}

/* Once a second: the page cache's share, and instances grown past the limit. */
static void tick_fn(struct loop *l, struct loop_timer *t)
{
	struct host_capacity *c = t->arg;
	uint64_t used;
	if (c->cg)
		cgroup_host_memory(c->cg, &used, &c->file_cache);
	while (memory_used(c) > c->h->lim.max_memory) {
		struct instance *in = lru_idle(c->h);
		if (!in)
			break;
		evict(c, in, EVICT_MEMORY);
	}
	loop_timer_arm(l, t, TICK_MS);
}

/* --- the host --- */

static uint64_t ram_bytes(void)
{
	size_t n;
	char *mi = read_file("/proc/meminfo", 1u << 20, &n);
	unsigned long long kb = 0;
	const char *p = mi ? strstr(mi, "MemTotal:") : NULL;
	if (!p || sscanf(p, "MemTotal: %llu kB", &kb) != 1)
		kb = 0;
	free(mi);
	return (uint64_t)kb << 10;
}

int host_capacity_start(struct host *h, char *err, size_t errlen)
{
	struct host_limits *lim = &h->lim;
	struct cgroup_host *cg = host_limits_cgroups(h);
	if (!lim->max_memory) {
		/* 3/4 of what the host may use: the machine's RAM, or less when
		 * its own group (a container, a systemd MemoryMax=) is limited. */
		uint64_t ram = ram_bytes(), own;
		if (cg && cgroup_host_own_memory_limit(cg, &own) == 0 && (!ram || own < ram))
			ram = own;
		lim->max_memory = ram ? ram / 4 * 3 : 4ull << 30;
	}
	if (lim->max_instances_per_worker > lim->max_instances)
		lim->max_instances_per_worker = lim->max_instances;
	struct host_capacity *c = xcalloc(1, sizeof *c);
	c->h = h;
	uint64_t used;
	if (cg && cgroup_host_memory(cg, &used, &c->file_cache) == 0)
		c->cg = cg;
	c->tick.fn = tick_fn;
	c->tick.arg = c;
	c->wait_tick.fn = wait_tick_fn;
	c->wait_tick.arg = c;
	c->kick.fn = kick_fn;
	c->kick.arg = c;
	h->capacity = c;
	char why[512] = "";
	if (c->cg && cgroup_host_limit_memory(c->cg, lim->max_memory + lim->max_memory / 8, why,
					      sizeof why) < 0)
		log_warn("capacity: the instances' group has no memory limit of its own: %s", why);
	log_info("capacity: %u instances at most (%u per worker), %.0f MiB of memory for all "
		 "of them (measured by %s), a cold start waits %.1f s for room",
		 lim->max_instances, lim->max_instances_per_worker,
		 (double)lim->max_memory / (1 << 20),
		 c->cg ? "the instances' cgroup less page cache" : "their private resident pages",
		 lim->queue_timeout_ms / 1000);
	loop_timer_arm(h->loop, &c->tick, TICK_MS);
	(void)err;
	(void)errlen;
	return 0;
}

void host_capacity_stop(struct host *h)
{
	struct host_capacity *c = h->capacity;
	if (!c)
		return;
	loop_timer_cancel(h->loop, &c->tick);
	loop_timer_cancel(h->loop, &c->wait_tick);
	loop_timer_cancel(h->loop, &c->kick);
	while (c->waiters)
		wait_unlink(c, c->waiters);
	h->capacity = NULL;
	free(c);
}
