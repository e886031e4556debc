#include "host/loop.h"

#include <errno.h>
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
};

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

static void run_timers(struct loop *l)
{
	uint64_t now = now_ns();
	while (l->nheap && l->heap[0]->deadline <= now) {
		struct loop_timer *t = l->heap[0];
		loop_timer_cancel(l, t);
		t->fn(l, t);
	}
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
		for (int i = 0; i < n; i++) {
			struct loop_watch *w = evs[i].data.ptr;
			w->fn(l, w, evs[i].events);
		}
		run_timers(l);
		for (int i = 0; i < l->nhooks; i++)
			l->hooks[i].after(l, l->hooks[i].arg);
		bury(l);
	}
	bury(l);
	l->stop = 0; /* it may be run again */
	return 0;
}
