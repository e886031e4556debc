/*
 * Instances' resource limits, the host's side (docs/limits.md has the user's
 * view). An instance runs with its worker's [tool.thaw.limits], else the
 * host's defaults (--limit), never above the host's caps (--max-limit):
 * project_limits_effective(). Each limit is enforced where it can be:
 *
 *   memory_mb     the instance's cgroup (v2 memory.max, v1
 *                 memory.limit_in_bytes): over it the kernel kills the
 *                 instance; and RLIMIT_DATA = memory + LIMITS_DATA_HEADROOM
 *                 in the instance itself, everywhere (the floor where there
 *                 is no cgroup): an allocation past it raises MemoryError,
 *                 after which the runtime answers 503 and exits with
 *                 THAW_EXIT_MEMORY. Either way its requests get 503 "Worker
 *                 exceeded its memory limit (N MiB)." and the log says which.
 *   cpu_ms        sampled here: while an instance holds requests, its CPU
 *                 time is read every cpu_ms/5 ms (10 to 100 ms), from the
 *                 cgroup (cpuacct.usage, cpu.stat) or, without one, from the
 *                 process's CPU clock; a request whose instance used more
 *                 than cpu_ms since the request was attached ends the
 *                 instance: 503 "Worker exceeded CPU time limit." for it and
 *                 the others the instance held. Once it has held one, the
 *                 sampling goes on while it holds none: more than cpu_ms
 *                 used in a stretch without requests (a thread or task left
 *                 running) ends it too (sampled every 100 ms).
 *   pids          the cgroup's pids.max (no cgroup: not enforced).
 *   open_files, file_size_mb   RLIMIT_NOFILE, RLIMIT_FSIZE, set by the
 *                 instance on itself from INIT (src/worker/limits.c).
 *   tmp_mb, subrequests        carried in INIT: the sandbox sizes /tmp, the
 *                 SDK counts fetch() calls.
 *
 * CPU ATTRIBUTION: a request is charged all of its instance's CPU time while
 * it is in flight. With concurrency 1 that is exactly its own; with several
 * requests in one instance each is charged the others' too (an over-count:
 * Cloudflare charges each request its own isolate time, which one process
 * running an asyncio loop cannot tell apart). So a busy loop is always
 * stopped within cpu_ms plus one sampling period, and requests that share an
 * instance with a busy one go down with it, as they would with any crash.
 *
 * LIFETIME: an instance's group is made when it is given its app
 * (inst_take) and removed when it is freed, after its process was reaped:
 * what is left in it (processes it forked) is killed first, and the removal
 * is retried from a timer while they exit. Without cgroups the instance's
 * process group is killed at reap instead (it is its own group's leader).
 *
 * BLOCKING: small cgroupfs reads and writes only (a group's creation, a CPU
 * read per sample and per loop iteration that attaches requests); opening
 * and closing the host's groups wait up to a second, before and after the
 * loop runs. Moving a process into a group is not small: the kernel waits
 * for an RCU grace period (6-16 ms measured here). A spare therefore joins
 * the group made for it itself, first thing (spawn.h, THAW_CGROUP_FD); the
 * host moves a process only when that group could not be made ahead.
 */
#include "host/pool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/cgroup.h"
#include "project/project.h"
#include "proto/frame.h"

/* RLIMIT_DATA is memory_mb plus this: it limits address space made
 * writable, which counts each thread's 8 MiB stack and memory reserved but
 * never touched, so it must sit above what the cgroup counts (pages really
 * in use). A restored instance holds about 18 MiB of it. */
#define LIMITS_DATA_HEADROOM (256ull << 20)
/* The CPU sampling period of an instance that holds no request. */
#define IDLE_SAMPLE_MS 100
#define REMOVE_RETRY_MS 20
#define REMOVE_TRIES 500 /* 10 s */

/* A group being removed: its processes are leaving. */
struct removal {
	struct cgroup *cg;
	unsigned tries;
	struct removal *next;
};

struct host_limits_state {
	struct cgroup_host *cg; /* NULL: rlimits only */
	pid_t owner;            /* the host's pid (atexit runs in forks too) */
	struct removal *removals;
	struct loop_timer remove_timer;
	struct host *h;
};

enum limit_hit { LIMIT_NONE, LIMIT_MEMORY, LIMIT_CPU };

struct inst_limits {
	struct project_limits eff; /* what it runs with */
	struct cgroup *cg;         /* its group, or NULL */
	clockid_t clock;           /* its process's CPU clock (no cgroup CPU) */
	int has_clock;
	struct loop_timer cpu_timer;
	/* CPU time when it last held no request (idle_valid): what it uses
	 * from then on without one (a thread or task left running after its
	 * response) is limited too, by the same cpu_ms. */
	uint64_t idle_start_ns;
	int idle_valid;
	/* The CPU time read for a request attached in loop iteration
	 * start_iteration (+ 1: 0 is none): the others attached in the same
	 * iteration (one front turn serves every connection that is ready)
	 * take it too, one read of the cgroup instead of one each. */
	uint64_t start_ns, start_iteration;
	enum limit_hit hit;
	unsigned weight;    /* its group's CPU weight (cgroup v2 scale) */
	int exited, status; /* reaped, with this status */
	char memory_body[96];
};

static struct host_limits_state *atexit_state;

/* --- the host --- */

/* Remove what the host made if it exits without pool_shutdown (an error on
 * the way out): instances' processes included. */
static void limits_atexit(void)
{
	struct host_limits_state *s = atexit_state;
	if (!s || s->owner != getpid() || !s->cg)
		return;
	cgroup_host_close(s->cg);
	s->cg = NULL;
}

static void describe(const struct host *h, char *out, size_t outlen)
{
	const struct host_limits_state *s = h->limits_state;
	const struct cgroup_host *ch = s->cg;
	const char *v = ch && ch->mode == CGROUP_V2 ? "cgroup v2 " : "cgroup v1 ";
	char mem[128], pids[96], cpu[96];
	if (ch && ch->parent[CGROUP_MEMORY])
		snprintf(mem, sizeof mem, "%s%s + RLIMIT_DATA", v,
			 cgroup_ctl_file(ch, CGROUP_MEMORY));
	else
		snprintf(mem, sizeof mem, "RLIMIT_DATA only (no memory cgroup)");
	if (ch && ch->parent[CGROUP_PIDS])
		snprintf(pids, sizeof pids, "%spids.max", v);
	else
		snprintf(pids, sizeof pids, "not enforced (no pids cgroup)");
	if (ch && ch->parent[CGROUP_CPU])
		snprintf(cpu, sizeof cpu, "%s%s", v, cgroup_ctl_file(ch, CGROUP_CPU));
	else
		snprintf(cpu, sizeof cpu, "the instance's process CPU clock");
	char share[96];
	if (ch && ch->parent[CGROUP_WEIGHT])
		snprintf(share, sizeof share, "%s%s", v, cgroup_ctl_file(ch, CGROUP_WEIGHT));
	else
		snprintf(share, sizeof share, "not shared by worker (no cpu cgroup)");
	snprintf(out, outlen,
		 "memory by %s; processes by %s; CPU time by %s, sampled every 10-100 ms, shared "
		 "equally between workers by %s; open files and file size by RLIMIT_NOFILE and "
		 "RLIMIT_FSIZE; subrequests by the SDK",
		 mem, pids, cpu, share);
}

int host_limits_start(struct host *h, char *err, size_t errlen)
{
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++)
		if (h->limit_defaults.v[i] > h->limit_caps.v[i])
			return err_set(err, errlen,
				       "the default %s=%llu is over its cap of %llu: raise "
				       "--max-limit %s or lower --limit %s",
				       project_limit_info[i].name,
				       (unsigned long long)h->limit_defaults.v[i],
				       (unsigned long long)h->limit_caps.v[i],
				       project_limit_info[i].name, project_limit_info[i].name);
	struct host_limits_state *s = xcalloc(1, sizeof *s);
	s->owner = getpid();
	s->h = h;
	s->remove_timer.arg = s;
	h->limits_state = s;
	char why[1024], how[768];
	s->cg = cgroup_host_open(why, sizeof why);
	/* All instances together weigh as one process per CPU against the
	 * host's own processes: as much as they did before they had a group,
	 * while the host's loop keeps a fair part of a contended machine. */
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (s->cg)
		cgroup_host_set_weight(s->cg,
				       (unsigned)(100 * (ncpu > 0 && ncpu < 100 ? ncpu : 1)));
	describe(h, how, sizeof how);
	if (s->cg)
		log_info("limits: %s (%s)", how, s->cg->what);
	else
		log_warn("limits: %s: %s", how, why);
	atexit_state = s;
	static int registered;
	if (!registered++)
		atexit(limits_atexit);
	return 0;
}

void host_limits_stop(struct host *h)
{
	struct host_limits_state *s = h->limits_state;
	if (!s)
		return;
	loop_timer_cancel(h->loop, &s->remove_timer);
	while (s->removals) {
		struct removal *r = s->removals;
		s->removals = r->next;
		cgroup_kill(r->cg);
		cgroup_remove(r->cg); /* cgroup_host_close waits for the rest */
		cgroup_free(r->cg);
		free(r);
	}
	cgroup_host_close(s->cg);
	s->cg = NULL;
	if (atexit_state == s)
		atexit_state = NULL;
	h->limits_state = NULL;
	free(s);
}

int host_limits_check(const struct host *h, const struct project *p, char *err, size_t errlen)
{
	return project_limits_check_caps(&p->limits, &h->limit_caps,
					 p->sources && p->sources[0] ? p->sources : p->name, err,
					 errlen);
}

/* --- removing an instance's group --- */

static void remove_tick(struct loop *l, struct loop_timer *t)
{
	struct host_limits_state *s = t->arg;
	for (struct removal **pp = &s->removals; *pp;) {
		struct removal *r = *pp;
		cgroup_kill(r->cg);
		int gone = cgroup_remove(r->cg) == 0;
		if (!gone && ++r->tries >= REMOVE_TRIES)
			log_warn("limits: the cgroup %s still holds processes after %d s; left for "
				 "the host's stop",
				 r->cg->dir[0] ? r->cg->dir[0] : r->cg->dir[CGROUP_CPU],
				 REMOVE_TRIES * REMOVE_RETRY_MS / 1000);
		if (gone || r->tries >= REMOVE_TRIES) {
			*pp = r->next;
			cgroup_free(r->cg);
			free(r);
			continue;
		}
		pp = &r->next;
	}
	if (s->removals)
		loop_timer_arm(l, t, REMOVE_RETRY_MS);
}

static void remove_later(struct host *h, struct cgroup *cg)
{
	struct host_limits_state *s = h->limits_state;
	cgroup_kill(cg);
	if (cgroup_remove(cg) == 0 || !s) {
		cgroup_free(cg);
		return;
	}
	struct removal *r = xcalloc(1, sizeof *r);
	r->cg = cg;
	r->next = s->removals;
	s->removals = r;
	s->remove_timer.fn = remove_tick;
	if (!loop_timer_armed(&s->remove_timer))
		loop_timer_arm(h->loop, &s->remove_timer, REMOVE_RETRY_MS);
}

/* --- an instance --- */

static void cpu_tick(struct loop *l, struct loop_timer *t);

/* The instance's CPU time so far (ns): 0, or -1 when it cannot be read. */
static int inst_cpu_ns(struct instance *in, uint64_t *ns)
{
	struct inst_limits *li = in->limits;
	if (li->cg && cgroup_cpu_ns(li->cg, ns) == 0)
		return 0;
	struct timespec ts;
	if (!li->has_clock || clock_gettime(li->clock, &ts) < 0)
		return -1;
	*ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return 0;
}

struct cgroup *inst_limits_spare_cgroup(struct host *h, unsigned id, int *fds, int *nfds)
{
	struct host_limits_state *s = h->limits_state;
	*nfds = 0;
	if (!s || !s->cg)
		return NULL;
	char name[32], err[512];
	snprintf(name, sizeof name, "i%u", id);
	struct cgroup *g = cgroup_create(s->cg, name, err, sizeof err);
	if (!g) {
		log_warn("instance %u: no control group made ahead: %s", id, err);
		return NULL;
	}
	*nfds = cgroup_procs_open(g, fds, THAW_CGROUP_MAX);
	if (*nfds < 0) {
		*nfds = 0;
		cgroup_remove(g);
		cgroup_free(g);
		return NULL;
	}
	return g;
}

void inst_limits_spare_gone(struct instance *in)
{
	if (in->spare_cg && in->h->limits_state) {
		remove_later(in->h, in->spare_cg);
		in->spare_cg = NULL;
	}
}

int inst_limits_apply(struct instance *in)
{
	struct host *h = in->h;
	struct app *a = in->app;
	struct inst_limits *li = xcalloc(1, sizeof *li);
	in->limits = li;
	li->cpu_timer.fn = cpu_tick;
	li->cpu_timer.arg = in;
	li->weight = 100; /* a new group's */
	unsigned clamped = project_limits_effective(&a->cfg->limits, &h->limit_defaults,
						    &h->limit_caps, &li->eff);
	if (clamped && !a->limits_clamped_said) {
		/* A version stored before the caps were lowered: it runs, within them. */
		a->limits_clamped_said = 1;
		for (int i = 0; i < PROJECT_LIMIT_COUNT; i++)
			if (clamped & (1u << i))
				log_warn("%s: limits.%s = %llu is over this host's cap; it runs "
					 "with %llu",
					 app_label(a), project_limit_info[i].name,
					 (unsigned long long)a->cfg->limits.v[i],
					 (unsigned long long)li->eff.v[i]);
	}
	snprintf(li->memory_body, sizeof li->memory_body,
		 "Worker exceeded its memory limit (%llu MiB).\n",
		 (unsigned long long)li->eff.v[PROJECT_LIMIT_MEMORY_MB]);
	li->has_clock = clock_getcpuclockid(in->pid, &li->clock) == 0;
	struct host_limits_state *s = h->limits_state;
	if (!s || !s->cg)
		return 0;
	char name[32], err[512];
	snprintf(name, sizeof name, "i%u", in->id);
	/* A sandboxed spare joined its group itself (spawn.h); else the host
	 * moves the process, and waits for the migration on its loop. */
	int joined = in->spare_cg != NULL;
	li->cg = joined ? in->spare_cg : cgroup_create(s->cg, name, err, sizeof err);
	in->spare_cg = NULL;
	if (!li->cg ||
	    (s->cg->parent[CGROUP_MEMORY] &&
	     cgroup_limit_memory(li->cg, li->eff.v[PROJECT_LIMIT_MEMORY_MB] << 20, err,
				 sizeof err) < 0) ||
	    (s->cg->parent[CGROUP_PIDS] &&
	     cgroup_limit_pids(li->cg, li->eff.v[PROJECT_LIMIT_PIDS], err, sizeof err) < 0) ||
	    (!joined && cgroup_attach(li->cg, in->pid, err, sizeof err) < 0)) {
		log_error("%s: instance %u cannot be given its limits: %s", app_label(a), in->id,
			  err);
		return -1;
	}
	return 0;
}

json_t *inst_limits_init_json(const struct instance *in, int builder)
{
	const struct project_limits *e = &in->limits->eff;
	uint64_t memory = e->v[PROJECT_LIMIT_MEMORY_MB] << 20;
	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "memory_bytes", (json_int_t)memory,
			      "data_bytes", (json_int_t)(memory + LIMITS_DATA_HEADROOM), "nofile",
			      (json_int_t)e->v[PROJECT_LIMIT_OPEN_FILES], "tmp_bytes",
			      (json_int_t)(e->v[PROJECT_LIMIT_TMP_MB] << 20), "subrequests",
			      (json_int_t)e->v[PROJECT_LIMIT_SUBREQUESTS], "cpu_ms",
			      (json_int_t)e->v[PROJECT_LIMIT_CPU_MS]);
	if (!j)
		fatal("cannot encode the instance's limits");
	/* A builder writes its image: any file it writes may be as large as
	 * the largest image the host takes, and no larger (its directory is
	 * on the host's disk). */
	uint64_t fsize = builder ? in->h->max_snapshot_bytes
				 : e->v[PROJECT_LIMIT_FILE_SIZE_MB] << 20;
	if (in->app && in->app->is_base) {
		/* The host's own image, of the host's own code: no worker's
		 * limits on its size or files (--max-snapshot-mb and --limit are
		 * for workers). */
		fsize = (uint64_t)4 << 30;
		if (e->v[PROJECT_LIMIT_OPEN_FILES] < 1024)
			json_object_set_new(j, "nofile", json_integer(1024));
	}
	json_object_set_new(j, "fsize_bytes", json_integer((json_int_t)fsize));
	return j;
}

static double sample_ms(const struct inst_limits *li)
{
	double ms = (double)li->eff.v[PROJECT_LIMIT_CPU_MS] / 5;
	return ms < 10 ? 10 : ms > 100 ? 100 : ms;
}

void inst_limits_request_started(struct instance *in, struct hreq *r)
{
	struct inst_limits *li = in->limits;
	if (!li)
		return;
	uint64_t now = 0, iteration = loop_iteration(in->h->loop) + 1;
	if (li->start_iteration == iteration) {
		now = li->start_ns;
	} else {
		if (inst_cpu_ns(in, &now) < 0)
			return; /* cannot be measured: not limited */
		li->start_ns = now;
		li->start_iteration = iteration;
	}
	r->cpu_start_ns = now;
	if (!loop_timer_armed(&li->cpu_timer) || li->idle_valid) {
		/* (from the idle period to the request's, once: re-arming at every
		 * request would put the sample off for as long as they come) */
		li->idle_valid = 0;
		loop_timer_arm(in->h->loop, &li->cpu_timer, sample_ms(li));
	}
}

static void cpu_tick(struct loop *l, struct loop_timer *t)
{
	struct instance *in = t->arg;
	struct inst_limits *li = in->limits;
	uint64_t now;
	if (in->state == INST_CLOSED || in->reaped || inst_cpu_ns(in, &now) < 0)
		return; /* the next request arms it again */
	uint64_t limit = li->eff.v[PROJECT_LIMIT_CPU_MS] * 1000000ull;
	if (!in->streams) {
		/* Holding no request, it may still run what one left behind: at
		 * most cpu_ms of CPU per stretch without requests. */
		if (!li->idle_valid) {
			li->idle_valid = 1;
			li->idle_start_ns = now;
		} else if (now > li->idle_start_ns && now - li->idle_start_ns > limit) {
			li->hit = LIMIT_CPU;
			log_warn("%s: instance %u used %.0f ms of CPU time while it held no "
				 "request "
				 "(threads or tasks left running), over its limit of %llu ms "
				 "(cpu_ms); "
				 "replacing it",
				 app_label(in->app), in->id,
				 (double)(now - li->idle_start_ns) / 1e6,
				 (unsigned long long)li->eff.v[PROJECT_LIMIT_CPU_MS]);
			inst_lost(in, "exceeded its CPU time limit");
			return;
		}
		loop_timer_arm(l, t, IDLE_SAMPLE_MS);
		return;
	}
	li->idle_valid = 0;
	for (struct hreq *r = in->streams; r; r = r->next) {
		uint64_t used = now > r->cpu_start_ns ? now - r->cpu_start_ns : 0;
		if (used <= limit)
			continue;
		li->hit = LIMIT_CPU;
		log_warn("%s: %s %s used %.0f ms of CPU time, over its limit of %llu ms (cpu_ms); "
			 "replacing instance %u",
			 app_label(in->app), r->method ? r->method : "", r->uri ? r->uri : "",
			 (double)used / 1e6, (unsigned long long)li->eff.v[PROJECT_LIMIT_CPU_MS],
			 in->id);
		inst_lost(in, "exceeded its CPU time limit");
		return;
	}
	loop_timer_arm(l, t, sample_ms(li));
}

void inst_limits_reaped(struct instance *in, int status)
{
	struct inst_limits *li = in->limits;
	if (!li)
		return;
	li->exited = 1;
	li->status = status;
	if (!li->cg)
		kill(-in->pid, SIGKILL); /* what it forked, in its process group */
	if (in->state == INST_CLOSED && WIFEXITED(status) &&
	    WEXITSTATUS(status) == THAW_EXIT_MEMORY)
		/* It answered its requests itself before it went. */
		log_warn("%s: instance %u (pid %d) exceeded its memory limit (%llu MiB, "
			 "RLIMIT_DATA: a MemoryError it did not survive); replaced",
			 app_label(in->app), in->id, (int)in->pid,
			 (unsigned long long)li->eff.v[PROJECT_LIMIT_MEMORY_MB]);
}

const char *inst_limits_lost(struct instance *in, unsigned *status, char *why, size_t whylen)
{
	struct inst_limits *li = in->limits;
	why[0] = 0;
	if (!li)
		return NULL;
	if (li->hit == LIMIT_CPU) {
		*status = 503;
		snprintf(why, whylen, " (cpu_ms = %llu)",
			 (unsigned long long)li->eff.v[PROJECT_LIMIT_CPU_MS]);
		return "Worker exceeded CPU time limit.\n";
	}
	int memory_exit = li->exited && WIFEXITED(li->status) &&
			  WEXITSTATUS(li->status) == THAW_EXIT_MEMORY;
	uint64_t ooms = li->cg ? cgroup_oom_kills(li->cg) : 0;
	if (li->hit == LIMIT_MEMORY || ooms || memory_exit) {
		li->hit = LIMIT_MEMORY;
		*status = 503;
		int v2 = li->cg && li->cg->ch->mode == CGROUP_V2;
		snprintf(why, whylen, ": it exceeded its memory limit (%llu MiB, %s)",
			 (unsigned long long)li->eff.v[PROJECT_LIMIT_MEMORY_MB],
			 !ooms ? "RLIMIT_DATA: a MemoryError it did not survive"
			 : v2  ? "cgroup v2 memory.max: killed by the kernel"
			       : "cgroup v1 memory.limit_in_bytes: killed by the kernel");
		return li->memory_body;
	}
	return NULL;
}

void inst_limits_exiting(struct instance *in, const char *why, size_t len)
{
	struct inst_limits *li = in->limits;
	if (li && len == 6 && !memcmp(why, "memory", 6))
		li->hit = LIMIT_MEMORY;
}

void inst_limits_free(struct instance *in)
{
	struct inst_limits *li = in->limits;
	if (!li)
		return;
	loop_timer_cancel(in->h->loop, &li->cpu_timer);
	if (li->cg)
		remove_later(in->h, li->cg);
	free(li);
	in->limits = NULL;
}

/* --- memory, for the host's room (capacity.c) --- */

struct cgroup_host *host_limits_cgroups(const struct host *h)
{
	return h->limits_state ? h->limits_state->cg : NULL;
}

/* Private resident memory of pid (statm: resident less file-backed and
 * shared pages), in bytes: 0, or -1. */
static int statm_private(pid_t pid, uint64_t *bytes)
{
	char path[64], buf[128];
	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	unsigned long long size, resident, shared;
	if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
		return -1;
	*bytes = (resident > shared ? resident - shared : 0) * (uint64_t)sysconf(_SC_PAGESIZE);
	return 0;
}

int inst_limits_memory(const struct instance *in, uint64_t *bytes)
{
	const struct cgroup *g = in->limits ? in->limits->cg : in->spare_cg;
	if (g && g->dir[CGROUP_MEMORY])
		return cgroup_memory(g, bytes);
	if (in->reaped || in->pid <= 0)
		return -1;
	return statm_private(in->pid, bytes);
}

/* --- CPU shared between workers --- */

static int same_worker(const struct instance *in, const struct app *a)
{
	return in->linked && in->app &&
	       (in->app == a || !strcmp(in->app->cfg->name, a->cfg->name)) && in->limits &&
	       in->limits->cg && in->limits->cg->dir[CGROUP_WEIGHT];
}

void inst_limits_share(struct app *a)
{
	struct host *h = a->h;
	unsigned n = 0;
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		n += same_worker(in, a);
	if (!n)
		return;
	/* Each worker weighs 100 (one group's default) whatever its number of
	 * instances: a worker with four busy instances gets no more contended
	 * CPU than one with a single instance. */
	unsigned w = 100 / n ? 100 / n : 1;
	for (struct instance *in = h->all_instances; in; in = in->all_next) {
		if (!same_worker(in, a) || in->limits->weight == w)
			continue;
		char err[256];
		if (cgroup_set_weight(in->limits->cg, w, err, sizeof err) == 0)
			in->limits->weight = w;
		else
			log_debug("instance %u: %s", in->id, err);
	}
}
