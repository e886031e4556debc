/*
 * Instances' memory, sampled (host.h "memory.c"; the figures and what is
 * trusted: memstat.h). A timer on the host's loop starts a sweep every
 * period; a sweep reads at most MEMSTAT_BATCH serving instances per loop
 * turn, the next batch MEMSTAT_BATCH_GAP_MS later, until each has been read
 * once. Nothing is read on a request or a scrape: the figures are the last
 * sweep's.
 *
 * INVARIANTS
 *   - An instance's sample (in->mem, in->mem_ok) is written only here and
 *     only for an instance with an app; pool_app_memory reads it.
 *   - in->mem_sweep == m->sweep: the instance was read (or tried) in the
 *     current sweep; a sweep ends when no serving instance is left unread.
 *
 * OWNERSHIP: struct host_memory belongs to its host (h->memory), made by
 * host_memory_start, freed by host_memory_stop (pool_shutdown calls it).
 *
 * BLOCKING: one /proc read of at most 4 KiB per instance per sweep (the
 * kernel walks the process's page tables: ~0.5 ms for a hello instance,
 * measured), so a turn of the loop spends at most ~4 ms on it.
 */
#include "host/memstat.h"
#include "host/pool_internal.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct host_memory {
	struct host *h;
	struct loop_timer period, batch;
	double period_ms;
	uint64_t sweep; /* the current (or last) sweep's number, from 1 */
	int sweeping;
	int64_t swept_ms;
	uint64_t sweeps; /* completed */
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
		out->own += in->mem.pss_anon + in->mem.pss_shmem;
		out->shared += in->mem.pss_file;
	}
}

/* --- the sampler --- */

static void batch_tick(struct loop *l, struct loop_timer *t)
{
	struct host_memory *m = t->arg;
	unsigned done = 0;
	struct instance *in;
	for (in = m->h->all_instances; in; in = in->all_next) {
		if (!serving(in) || in->app->is_base || in->mem_sweep == m->sweep)
			continue;
		if (done == MEMSTAT_BATCH)
			break;
		in->mem_sweep = m->sweep;
		in->mem_ok = memstat_read(in->pid, &in->mem) == 0;
		done++;
	}
	if (in) {
		loop_timer_arm(l, &m->batch, MEMSTAT_BATCH_GAP_MS);
		return;
	}
	m->sweeping = 0;
	m->swept_ms = wall_ms();
	m->sweeps++;
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
	free(m);
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
