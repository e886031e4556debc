#include "host/loop.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

struct loop {
	int epfd;
	int stop;
	struct loop_timer **heap;
	size_t nheap, capheap;
	void **graveyard;
	size_t ndead, capdead;
	struct {
		loop_hook_fn after;
		long (*timeout)(void *arg);
		void *arg;
	} hooks[LOOP_MAX_HOOKS];
	int nhooks;
	struct loop_stats stats;
	/* This iteration's longest callback, for the slow-iteration log. */
	uint64_t worst_ns;
	const void *worst_fn;
	const char *worst_kind;
};

const double loop_stat_bounds_ms[LOOP_STAT_BUCKETS] = {0.1, 0.25, 0.5, 1,   2.5, 5,    10,
						       25,  50,   75,  100, 250, 1000, 5000};

static void bury(struct loop *l);

struct loop *loop_new(void)
{
	struct loop *l = xcalloc(1, sizeof *l);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return NULL;
	}
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	bury(l);
	free(l->graveyard);
	free(l->heap);
	free(l);
}

int loop_add(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void loop_del(struct loop *l, struct loop_watch *w)
{
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

/* --- timer heap (1-based slots stored in the timers themselves) --- */

static void heap_set(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (l->heap[parent]->deadline <= t->deadline)
			break;
		heap_set(l, i, l->heap[parent]);
		i = parent;
	}
	heap_set(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->nheap)
			break;
		if (c + 1 < l->nheap && l->heap[c + 1]->deadline < l->heap[c]->deadline)
			c++;
		if (t->deadline <= l->heap[c]->deadline)
			break;
		heap_set(l, i, l->heap[c]);
		i = c;
	}
	heap_set(l, i, t);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
	if (!t->slot)
		return;
	size_t i = t->slot - 1;
	t->slot = 0;
	l->nheap--;
	if (i == l->nheap)
		return;
	struct loop_timer *moved = l->heap[l->nheap];
	heap_set(l, i, moved);
	heap_up(l, i);
	heap_down(l, moved->slot - 1);
}

void loop_timer_arm(struct loop *l, struct loop_timer *t, double ms)
{
	loop_timer_cancel(l, t);
	if (!(ms >= 0)) /* negative, or NaN */
		ms = 0;
	if (ms > 1e12) /* ~31 years: beyond, ms * 1e6 leaves uint64_t */
		ms = 1e12;
	t->deadline = now_ns() + (uint64_t)(ms * 1e6);
	if (l->nheap == l->capheap) {
		l->capheap = l->capheap ? l->capheap * 2 : 64;
		l->heap = xrealloc(l->heap, l->capheap * sizeof *l->heap);
	}
	l->heap[l->nheap] = t;
	l->nheap++;
	heap_up(l, l->nheap - 1);
}

void loop_set_hook(struct loop *l, loop_hook_fn after, long (*timeout)(void *arg), void *arg)
{
	if (l->nhooks == LOOP_MAX_HOOKS)
		fatal("too many loop hooks");
	l->hooks[l->nhooks].after = after;
	l->hooks[l->nhooks].timeout = timeout;
	l->hooks[l->nhooks].arg = arg;
	l->nhooks++;
}

void loop_defer_free(struct loop *l, void *p)
{
	if (l->ndead == l->capdead) {
		l->capdead = l->capdead ? l->capdead * 2 : 16;
		l->graveyard = xrealloc(l->graveyard, l->capdead * sizeof *l->graveyard);
	}
	l->graveyard[l->ndead++] = p;
}

static void bury(struct loop *l)
{
	for (size_t i = 0; i < l->ndead; i++)
		free(l->graveyard[i]);
	l->ndead = 0;
}

void loop_stop(struct loop *l)
{
	l->stop = 1;
}

/* A callback that ran from t0 to now: the iteration's longest so far? */
static uint64_t timed(struct loop *l, uint64_t t0, const void *fn, const char *kind)
{
	uint64_t t1 = now_ns();
	if (t1 - t0 > l->worst_ns) {
		l->worst_ns = t1 - t0;
		l->worst_fn = fn;
		l->worst_kind = kind;
	}
	return t1;
}

static void run_timers(struct loop *l)
{
	uint64_t now = now_ns();
	while (l->nheap && l->heap[0]->deadline <= now) {
		struct loop_timer *t = l->heap[0];
		loop_timer_cancel(l, t);
		loop_timer_fn fn = t->fn;
		uint64_t t0 = now_ns();
		fn(l, t);
		timed(l, t0, (const void *)fn, "timer");
	}
}

/* The function's name when the executable exports it (ENABLE_EXPORTS),
 * else where it is, for addr2line. */
static void fn_name(const void *fn, char *out, size_t n)
{
	Dl_info di;
	if (dladdr(fn, &di) && di.dli_sname && di.dli_saddr == fn)
		snprintf(out, n, "%s", di.dli_sname);
	else if (dladdr(fn, &di) && di.dli_fname)
		snprintf(out, n, "%s+%#lx", di.dli_fname,
			 (unsigned long)((const char *)fn - (const char *)di.dli_fbase));
	else
		snprintf(out, n, "%p", fn);
}

static void count_iteration(struct loop *l, uint64_t ns)
{
	struct loop_stats *s = &l->stats;
	s->iterations++;
	s->busy_ns += ns;
	if (ns > s->max_ns)
		s->max_ns = ns;
	double ms = (double)ns / 1e6;
	size_t i = 0;
	while (i < LOOP_STAT_BUCKETS && ms > loop_stat_bounds_ms[i])
		i++;
	if (i < LOOP_STAT_BUCKETS)
		s->le[i]++;
	else
		s->over++;
	if (ms > LOOP_SLOW_MS) {
		char name[256];
		fn_name(l->worst_fn, name, sizeof name);
		log_warn("the host's loop was busy %.0f ms in one iteration (the longest part: "
			 "%.0f ms in the %s %s); requests waited that long",
			 ms, (double)l->worst_ns / 1e6, l->worst_kind ? l->worst_kind : "?", name);
	}
}

void loop_get_stats(const struct loop *l, struct loop_stats *out)
{
	*out = l->stats;
}

uint64_t loop_iteration(const struct loop *l)
{
	return l->stats.iterations;
}

int loop_run(struct loop *l)
{
	struct epoll_event evs[64];
	while (!l->stop) {
		long timeout = -1;
		if (l->nheap) {
			uint64_t now = now_ns(), d = l->heap[0]->deadline;
			timeout = d <= now ? 0 : (long)((d - now + 999999) / 1000000);
		}
		for (int i = 0; i < l->nhooks; i++) {
			if (!l->hooks[i].timeout)
				continue;
			long h = l->hooks[i].timeout(l->hooks[i].arg);
			if (h >= 0 && (timeout < 0 || h < timeout))
				timeout = h;
		}
		if (timeout > 60000)
			timeout = 60000;
		int n = epoll_wait(l->epfd, evs, (int)ARRAY_SIZE(evs), (int)timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return -1;
		}
		uint64_t start = now_ns(), t0 = start;
		l->worst_ns = 0;
		l->worst_fn = NULL;
		l->worst_kind = NULL;
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;
			loop_fd_fn fn = w->fn;
			fn(l, w, evs[i].events);
			t0 = timed(l, t0, (const void *)fn, "watch");
		}
		run_timers(l);
		t0 = now_ns();
		for (int i = 0; i < l->nhooks; i++) {
			loop_hook_fn fn = l->hooks[i].after;
			fn(l, l->hooks[i].arg);
			t0 = timed(l, t0, (const void *)fn, "hook");
		}
		bury(l);
		count_iteration(l, now_ns() - start);
	}
	bury(l);
	l->stop = 0; /* it may be run again */
	return 0;
}
