/*
 * Instances' memory, sampled (host.h "memory.c"; the figures and what is
 * trusted: memstat.h). A timer on the host's loop starts a sweep every
 * period; a sweep hands the sampler thread at most MEMSTAT_BATCH serving
 * instances at a time, (id, pid) pairs, and the next batch
 * MEMSTAT_BATCH_GAP_MS after the last one's results came back, until each
 * has been read once. Nothing is read on a request or a scrape: the figures
 * are the last sweep's.
 *
 *   loop thread                          sampler thread
 *   batch_tick: jobs[] (id, pid) ──mu──▶ memstat_read each
 *   on_results: apply to (id, pid) ◀─eventfd── results[]
 *
 * INVARIANTS
 *   - An instance's sample (in->mem, in->mem_ok) is written only here, on
 *     the loop, and only for an instance with an app; pool_app_memory reads
 *     it.
 *   - in->mem_sweep == m->sweep: the instance was handed to the thread (or
 *     read) in the current sweep; a sweep ends when no serving instance is
 *     left unread and no batch is in flight.
 *   - One batch in flight at most: one is handed over by period_tick when
 *     no sweep is going, or by the batch timer, armed only once the last
 *     batch's results are applied, so jobs[] and results[] suffice; the thread
 *     sees only (id, pid) pairs, never an instance: a result is applied to
 *     the instance that still has that id and that pid and still serves
 *     (one closed or reaped meanwhile is skipped; ids are never reused).
 *   - jobs[], njobs, results[], nresults and stopping are under mu.
 *
 * OWNERSHIP: struct host_memory belongs to its host (h->memory), made by
 * host_memory_start, freed by host_memory_stop (pool_shutdown calls it),
 * which joins the thread.
 *
 * BLOCKING: nothing on the loop. The thread's read of /proc/PID/smaps_rollup
 * costs the kernel a walk of the process's page tables, which grows with
 * its resident memory (measured: 0.5 ms for a hello instance, 1.3 ms at
 * 64 MiB, 12 ms at 512 MiB, 39-48 ms at 1-2 GiB); host_memory_stop waits
 * for at most the one read in progress.
 */
#include "host/memstat.h"
#include "host/pool_internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

struct memory_job {
	unsigned id;
	pid_t pid;
};

struct memory_result {
	unsigned id;
	pid_t pid;
	int ok;
	struct memstat mem;
};

struct host_memory {
	struct host *h;
	struct loop_timer period, batch;
	double period_ms;
	uint64_t sweep; /* the current (or last) sweep's number, from 1 */
	int sweeping;
	int64_t swept_ms;
	uint64_t sweeps; /* completed */
	/* The thread and what it shares with the loop (under mu). */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct loop_watch wake; /* an eventfd: results are ready */
	struct memory_job jobs[MEMSTAT_BATCH];
	size_t njobs; /* handed over, not yet taken by the thread */
	struct memory_result results[MEMSTAT_BATCH];
	size_t nresults; /* posted, not yet applied */
	int stopping;
};

/* --- an app's figures --- */

static int serving(const struct instance *in)
{
	return in->app && in->linked && !in->is_builder && !in->reaped &&
	       (in->state == INST_READY || in->state == INST_DRAINING);
}

void pool_app_memory(const struct app *a, struct app_memory *out)
{
	memset(out, 0, sizeof *out);
	for (const struct instance *in = a->instances; in; in = in->next) {
		if (!serving(in))
			continue;
		out->instances++;
		if (!in->mem_ok)
			continue;
		out->sampled++;
		out->pss += in->mem.pss;
		if (!in->mem.split)
			continue;
		out->split++;
		out->own += in->mem.pss_anon + in->mem.pss_shmem;
		out->shared += in->mem.pss_file;
	}
}

/* --- the sampler thread --- */

/* host_memory_stop waits for the read in progress, not for the batch. */
static int stopping(struct host_memory *m)
{
	pthread_mutex_lock(&m->mu);
	int stop = m->stopping;
	pthread_mutex_unlock(&m->mu);
	return stop;
}

static void *sampler_main(void *arg)
{
	struct host_memory *m = arg;
	struct memory_job jobs[MEMSTAT_BATCH];
	struct memory_result results[MEMSTAT_BATCH];
	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (!m->njobs && !m->stopping)
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->stopping)
			break;
		size_t n = m->njobs;
		memcpy(jobs, m->jobs, n * sizeof jobs[0]);
		m->njobs = 0;
		pthread_mutex_unlock(&m->mu);
		for (size_t i = 0; i < n && !stopping(m); i++) {
			results[i].id = jobs[i].id;
			results[i].pid = jobs[i].pid;
			results[i].ok = memstat_read(jobs[i].pid, &results[i].mem) == 0;
		}
		pthread_mutex_lock(&m->mu);
		if (m->stopping)
			break;
		memcpy(m->results, results, n * sizeof results[0]);
		m->nresults = n;
		uint64_t one = 1;
		if (write(m->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_error("memory sampler: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* --- the sweep, on the loop --- */

static int unread(const struct host_memory *m, const struct instance *in)
{
	return serving(in) && !in->app->is_base && in->mem_sweep != m->sweep;
}

static void sweep_end(struct host_memory *m)
{
	m->sweeping = 0;
	m->swept_ms = wall_ms();
	m->sweeps++;
}

static void batch_tick(struct loop *l, struct loop_timer *t)
{
	struct host_memory *m = t->arg;
	struct memory_job jobs[MEMSTAT_BATCH];
	size_t n = 0;
	for (struct instance *in = m->h->all_instances; in && n < MEMSTAT_BATCH;
	     in = in->all_next) {
		if (!unread(m, in))
			continue;
		in->mem_sweep = m->sweep;
		jobs[n].id = in->id;
		jobs[n].pid = in->pid;
		n++;
	}
	if (!n) {
		sweep_end(m);
		return;
	}
	pthread_mutex_lock(&m->mu);
	memcpy(m->jobs, jobs, n * sizeof jobs[0]);
	m->njobs = n;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

static struct instance *find(struct host *h, unsigned id, pid_t pid)
{
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (in->id == id)
			return in->pid == pid ? in : NULL;
	return NULL;
}

static void on_results(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct host_memory *m = w->arg;
	uint64_t count;
	while (read(w->fd, &count, sizeof count) < 0 && errno == EINTR)
		;
	struct memory_result results[MEMSTAT_BATCH];
	pthread_mutex_lock(&m->mu);
	size_t n = m->nresults;
	memcpy(results, m->results, n * sizeof results[0]);
	m->nresults = 0;
	pthread_mutex_unlock(&m->mu);
	if (!n)
		return;
	for (size_t i = 0; i < n; i++) {
		struct instance *in = find(m->h, results[i].id, results[i].pid);
		if (!in || !serving(in) || in->mem_sweep != m->sweep)
			continue; /* closed (or reaped) since it was handed over */
		in->mem = results[i].mem;
		in->mem_ok = results[i].ok;
	}
	for (struct instance *in = m->h->all_instances; in; in = in->all_next)
		if (unread(m, in)) {
			loop_timer_arm(l, &m->batch, MEMSTAT_BATCH_GAP_MS);
			return;
		}
	sweep_end(m);
}

static void period_tick(struct loop *l, struct loop_timer *t)
{
	struct host_memory *m = t->arg;
	loop_timer_arm(l, &m->period, m->period_ms);
	if (m->sweeping)
		return; /* the last one is still going (a very full host): it goes on */
	m->sweep++;
	m->sweeping = 1;
	batch_tick(l, &m->batch);
}

void host_memory_start(struct host *h, double period_ms)
{
	host_memory_stop(h);
	if (!(period_ms > 0))
		return;
	struct host_memory *m = xcalloc(1, sizeof *m);
	m->h = h;
	m->period_ms = period_ms;
	m->period.fn = period_tick;
	m->period.arg = m;
	m->batch.fn = batch_tick;
	m->batch.arg = m;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	m->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->wake.fn = on_results;
	m->wake.arg = m;
	if (m->wake.fd < 0 || loop_add(h->loop, &m->wake, EPOLLIN) < 0)
		fatal("memory sampler: eventfd: %s", strerror(errno));
	/* The thread takes no signal: the loop's signalfd must see every one
	 * (a SIGCHLD taken by this thread would go unread: no child reaped). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&m->thread, NULL, sampler_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) /* out of threads is out of memory here */
		fatal("memory sampler: cannot start its thread: %s", strerror(rc));
	h->memory = m;
	/* The first sweep soon, so that a host just started has figures. */
	loop_timer_arm(h->loop, &m->period, period_ms < 1000 ? period_ms : 1000);
}

void host_memory_stop(struct host *h)
{
	struct host_memory *m = h->memory;
	if (!m)
		return;
	loop_timer_cancel(h->loop, &m->period);
	loop_timer_cancel(h->loop, &m->batch);
	pthread_mutex_lock(&m->mu);
	m->stopping = 1;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thread, NULL);
	loop_del(h->loop, &m->wake);
	close(m->wake.fd);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	/* The loop may still hold the eventfd's event of this iteration. */
	loop_defer_free(h->loop, m);
	h->memory = NULL;
}

int64_t host_memory_swept_ms(const struct host *h)
{
	return h->memory ? h->memory->swept_ms : 0;
}

uint64_t host_memory_sweeps(const struct host *h)
{
	return h->memory ? h->memory->sweeps : 0;
}
