/*
 * The host's one event loop: epoll for file descriptors, a binary heap of
 * timers, and per-iteration hooks (libmicrohttpd is run from one). Nothing
 * registered here may block.
 */
#ifndef THAW_HOST_LOOP_H
#define THAW_HOST_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct loop_watch;
struct loop_timer;

typedef void (*loop_fd_fn)(struct loop *l, struct loop_watch *w, uint32_t events);
typedef void (*loop_timer_fn)(struct loop *l, struct loop_timer *t);
typedef void (*loop_hook_fn)(struct loop *l, void *arg);

struct loop_watch {
	int fd;
	loop_fd_fn fn;
	void *arg;
};

struct loop_timer {
	uint64_t deadline; /* now_ns() clock */
	loop_timer_fn fn;
	void *arg;
	size_t slot; /* index in the heap + 1; 0 when not armed */
};

struct loop *loop_new(void);
void loop_free(struct loop *l);
int loop_add(struct loop *l, struct loop_watch *w, uint32_t events);
int loop_mod(struct loop *l, struct loop_watch *w, uint32_t events);
void loop_del(struct loop *l, struct loop_watch *w);

/* Arm (or re-arm) a timer to fire after ms milliseconds. */
void loop_timer_arm(struct loop *l, struct loop_timer *t, double ms);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);
static inline int loop_timer_armed(const struct loop_timer *t)
{
	return t->slot != 0;
}

/*
 * Hooks run after every iteration (up to LOOP_MAX_HOOKS, in the order they
 * were added); a hook's `timeout` callback may shorten the next wait
 * (returns ms, or -1 for none).
 */
#define LOOP_MAX_HOOKS 4
void loop_set_hook(struct loop *l, loop_hook_fn after, long (*timeout)(void *arg), void *arg);

/* Free p after the current batch of events (its watch may still be in it). */
void loop_defer_free(struct loop *l, void *p);

/*
 * What the loop has spent: every iteration (the handling of what one
 * epoll_wait returned, its timers and hooks) is timed on the wall clock and
 * counted in a histogram whose upper bounds are loop_stat_bounds_ms. Wall
 * time includes time the thread waited for a CPU, so on a loaded machine a
 * short iteration may count a few milliseconds more; an iteration that
 * blocks (an fsync, a hash over a big file) counts all of it. An iteration
 * over LOOP_SLOW_MS is also logged with the callback that took longest.
 */
#define LOOP_STAT_BUCKETS 14
#define LOOP_SLOW_MS 100
extern const double loop_stat_bounds_ms[LOOP_STAT_BUCKETS];
struct loop_stats {
	uint64_t iterations;
	uint64_t busy_ns;               /* the iterations' sum */
	uint64_t max_ns;                /* the longest one */
	uint64_t le[LOOP_STAT_BUCKETS]; /* not cumulative: bucket i holds
					   (bounds[i-1], bounds[i]] */
	uint64_t over;                  /* over the last bound */
};
void loop_get_stats(const struct loop *l, struct loop_stats *out);
/* The number of the iteration running (or the last one): equal for all that
 * one batch of events, its timers and hooks do. */
uint64_t loop_iteration(const struct loop *l);

/* Run until loop_stop (then it may be run again). Returns 0, or -1 on an epoll
 * failure. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

#endif
