/*
 * Tests for the host's event loop (src/host/loop.c): the timer heap, hooks,
 * deferred frees and fd watches.
 *
 * Nothing here asserts a duration. Deadlines come from the clock, so the
 * tests read them back from the timers (the struct is public) and assert
 * the order timers fire in against them, or sleep past every deadline
 * first so that one batch has to fire them all in heap order. The heap's
 * shape is checked through the slots the loop stores in each timer: armed
 * timers hold slots 1..n, and a timer's parent (slot / 2) is never due
 * after it.
 *
 * Every test runs under alarm(): a loop that never stops fails the test
 * instead of hanging the run. The ASan build (build-asan) is what proves
 * loop_defer_free frees neither too early nor never.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "host/loop.h"

#define NTIMERS 200

/* What fired, in order: timers by their index, hooks as 1000 + their number. */
static int fired[4 * NTIMERS];
static size_t nfired;

static void record(int what)
{
	assert_true(nfired < ARRAY_SIZE(fired));
	fired[nfired++] = what;
}

static struct loop *l;

static int setup(void **state)
{
	(void)state;
	nfired = 0;
	l = loop_new();
	alarm(20);
	return l ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	alarm(0);
	loop_free(l);
	l = NULL;
	return 0;
}

/* A deterministic generator, so that a failure replays. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state % n);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- timers ---- */

static struct loop_timer timers[NTIMERS];

/* A timer's arg is its index in timers[]. */
static void on_timer(struct loop *lp, struct loop_timer *t)
{
	(void)lp;
	assert_false(loop_timer_armed(t)); /* off the heap before its callback runs */
	record((int)(intptr_t)t->arg);
}

static void on_stop(struct loop *lp, struct loop_timer *t)
{
	(void)t;
	loop_stop(lp);
}

static void init_timers(size_t n)
{
	memset(timers, 0, sizeof timers);
	for (size_t i = 0; i < n; i++) {
		timers[i].fn = on_timer;
		timers[i].arg = (void *)(intptr_t)i;
	}
}

/* The heap's shape, through the slots: the armed timers hold 1..n once
 * each, and none is due before its parent. Returns n. */
static size_t assert_heap(const struct loop_timer *ts, size_t count)
{
	const struct loop_timer *at[NTIMERS + 1] = {0};
	size_t n = 0;
	for (size_t i = 0; i < count; i++) {
		if (!loop_timer_armed(&ts[i]))
			continue;
		size_t s = ts[i].slot;
		if (s > count || at[s])
			fail_msg("timer %zu has slot %zu, out of range or taken", i, s);
		at[s] = &ts[i];
		n++;
	}
	for (size_t s = 1; s <= n; s++) {
		if (!at[s])
			fail_msg("slot %zu of %zu is empty", s, n);
		if (s > 1 && at[s / 2]->deadline > at[s]->deadline)
			fail_msg("slot %zu is due before its parent, slot %zu", s, s / 2);
	}
	return n;
}

/* Every timer in want[] fired once, none other, in the order of their
 * deadlines (ties in either order). */
static void assert_fired_in_deadline_order(const uint64_t *deadline, const int *want, size_t nwant)
{
	assert_int_equal(nfired, nwant);
	int seen[NTIMERS] = {0};
	for (size_t k = 0; k < nfired; k++) {
		int i = fired[k];
		assert_true(i >= 0 && i < NTIMERS);
		if (seen[i]++)
			fail_msg("timer %d fired twice", i);
		if (k && deadline[fired[k - 1]] > deadline[i])
			fail_msg("timer %d (due %llu) fired after timer %d (due %llu)", i,
				 (unsigned long long)deadline[i], fired[k - 1],
				 (unsigned long long)deadline[fired[k - 1]]);
	}
	for (size_t k = 0; k < nwant; k++)
		if (!seen[want[k]])
			fail_msg("timer %d never fired", want[k]);
}

/* Arm n timers with distinct ms values in a shuffled order; remember their deadlines. */
static void arm_shuffled(size_t n, uint64_t *deadline)
{
	int order[NTIMERS];
	for (size_t i = 0; i < n; i++)
		order[i] = (int)i;
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd((uint32_t)i + 1);
		int t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (size_t k = 0; k < n; k++) {
		loop_timer_arm(l, &timers[order[k]], (double)order[k] / 10);
		deadline[order[k]] = timers[order[k]].deadline;
	}
}

static void test_timers_armed_in_random_order_fire_in_deadline_order(void **state)
{
	(void)state;
	uint64_t deadline[NTIMERS];
	init_timers(NTIMERS);
	arm_shuffled(NTIMERS, deadline);
	assert_int_equal(assert_heap(timers, NTIMERS), NTIMERS);
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 30);
	/* Everything is due by now: one batch fires it all, in heap order. */
	sleep_ms(40);
	assert_int_equal(loop_run(l), 0);
	int want[NTIMERS];
	for (int i = 0; i < NTIMERS; i++)
		want[i] = i;
	assert_fired_in_deadline_order(deadline, want, NTIMERS);
	assert_int_equal(assert_heap(timers, NTIMERS), 0);
}

static void test_timers_spread_over_time_fire_in_deadline_order(void **state)
{
	(void)state;
	/* 1 ms apart, not all due at once: the loop waits between them. */
	enum { N = 30 };
	uint64_t deadline[NTIMERS];
	init_timers(N);
	int order[N];
	for (int i = 0; i < N; i++)
		order[i] = (i * 7) % N; /* 7 and 30 are coprime: a permutation */
	for (int k = 0; k < N; k++) {
		loop_timer_arm(l, &timers[order[k]], order[k]);
		deadline[order[k]] = timers[order[k]].deadline;
	}
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, N + 5);
	assert_int_equal(loop_run(l), 0);
	int want[N];
	for (int i = 0; i < N; i++)
		want[i] = i;
	assert_fired_in_deadline_order(deadline, want, N);
}

static void test_random_arms_and_cancels_keep_the_heap_shape(void **state)
{
	(void)state;
	enum { N = 64 };
	init_timers(N);
	for (int step = 0; step < 5000; step++) {
		struct loop_timer *t = &timers[rnd(N)];
		if (rnd(3))
			loop_timer_arm(l, t, rnd(100000) / 10.0); /* arm or re-arm */
		else
			loop_timer_cancel(l, t); /* armed or not */
		assert_heap(timers, N);
	}
	for (int i = 0; i < N; i++)
		loop_timer_cancel(l, &timers[i]);
	assert_int_equal(assert_heap(timers, N), 0);
}

/* The armed timer sitting in the given slot. */
static struct loop_timer *in_slot(size_t slot, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (timers[i].slot == slot)
			return &timers[i];
	fail_msg("no timer in slot %zu", slot);
	return NULL;
}

static void test_cancelling_armed_timers_anywhere_keeps_the_order_of_the_rest(void **state)
{
	(void)state;
	enum { N = 100 };
	uint64_t deadline[NTIMERS];
	init_timers(N);
	arm_shuffled(N, deadline);
	/* The last slot, one in the middle, the root, and a leaf's parent. */
	size_t slots[] = {N, N / 2, 1, N / 4};
	int cancelled[N] = {0};
	for (size_t k = 0; k < ARRAY_SIZE(slots); k++) {
		size_t n = assert_heap(timers, N);
		struct loop_timer *t = in_slot(slots[k] <= n ? slots[k] : n, N);
		loop_timer_cancel(l, t);
		assert_false(loop_timer_armed(t));
		cancelled[(intptr_t)t->arg] = 1;
		assert_int_equal(assert_heap(timers, N), n - 1);
	}
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 20);
	sleep_ms(25);
	assert_int_equal(loop_run(l), 0);
	int want[N];
	size_t nwant = 0;
	for (int i = 0; i < N; i++)
		if (!cancelled[i])
			want[nwant++] = i;
	assert_int_equal(nwant, N - ARRAY_SIZE(slots));
	assert_fired_in_deadline_order(deadline, want, nwant);
}

static void test_rearming_an_armed_timer_moves_it(void **state)
{
	(void)state;
	uint64_t deadline[NTIMERS];
	init_timers(3);
	loop_timer_arm(l, &timers[0], 5000);
	loop_timer_arm(l, &timers[1], 10);
	loop_timer_arm(l, &timers[2], 20);
	assert_int_equal(assert_heap(timers, 3), 3);
	assert_int_not_equal(timers[0].slot, 1);
	uint64_t before = timers[0].deadline;
	/* Earlier: it moves up to the root, and is still armed once. */
	loop_timer_arm(l, &timers[0], 0);
	assert_true(timers[0].deadline < before);
	assert_int_equal(timers[0].slot, 1);
	assert_int_equal(assert_heap(timers, 3), 3);
	/* Later again: it moves down, below the other two. */
	loop_timer_arm(l, &timers[0], 30);
	assert_int_not_equal(timers[0].slot, 1);
	assert_int_equal(assert_heap(timers, 3), 3);
	for (int i = 0; i < 3; i++)
		deadline[i] = timers[i].deadline;
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 40);
	assert_int_equal(loop_run(l), 0);
	/* Once each, by the new deadline: 0 fired long before its first one. */
	assert_fired_in_deadline_order(deadline, (const int[]){0, 1, 2}, 3);
	assert_int_equal(fired[2], 0);
}

static void test_cancelling_an_unarmed_timer_does_nothing(void **state)
{
	(void)state;
	init_timers(4);
	loop_timer_cancel(l, &timers[0]); /* never armed */
	for (int i = 1; i < 4; i++)
		loop_timer_arm(l, &timers[i], 10 * i);
	size_t slots[4];
	for (int i = 0; i < 4; i++)
		slots[i] = timers[i].slot;
	loop_timer_cancel(l, &timers[0]);
	loop_timer_cancel(l, &timers[3]);
	loop_timer_cancel(l, &timers[3]); /* cancelled twice */
	assert_int_equal(timers[0].slot, 0);
	assert_int_equal(timers[3].slot, 0);
	assert_int_equal(timers[1].slot, slots[1]);
	assert_int_equal(timers[2].slot, slots[2]);
	assert_int_equal(assert_heap(timers, 4), 2);
}

static void test_armed_is_true_from_arm_until_fire_or_cancel(void **state)
{
	(void)state;
	init_timers(2);
	assert_false(loop_timer_armed(&timers[0]));
	loop_timer_arm(l, &timers[0], 0);
	loop_timer_arm(l, &timers[1], 1000);
	assert_true(loop_timer_armed(&timers[0]));
	assert_true(loop_timer_armed(&timers[1]));
	loop_timer_cancel(l, &timers[1]);
	assert_false(loop_timer_armed(&timers[1]));
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 1);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 1); /* on_timer checked it was unarmed when it ran */
	assert_false(loop_timer_armed(&timers[0]));
	assert_false(loop_timer_armed(&stop));
}

static void test_negative_ms_fires_like_zero(void **state)
{
	(void)state;
	init_timers(2);
	loop_timer_arm(l, &timers[0], 20);
	loop_timer_arm(l, &timers[1], -50);
	assert_int_equal(timers[1].slot, 1);
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 25);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 2);
	assert_int_equal(fired[0], 1);
	assert_int_equal(fired[1], 0);
}

/* timers[0]: cancels 1 (due in the same batch), arms 2, re-arms itself once. */
static void on_juggler(struct loop *lp, struct loop_timer *t)
{
	record(0);
	loop_timer_cancel(lp, &timers[1]);
	loop_timer_arm(lp, &timers[2], 1);
	if (nfired == 1)
		loop_timer_arm(lp, t, 2);
}

/* timers[2]: stops the loop the second time it fires. */
static void on_last(struct loop *lp, struct loop_timer *t)
{
	record(2);
	int twos = 0;
	for (size_t k = 0; k < nfired; k++)
		twos += fired[k] == 2;
	if (twos == 2)
		loop_stop(lp);
}

static void test_a_timer_callback_may_arm_and_cancel_timers(void **state)
{
	(void)state;
	init_timers(4);
	timers[0].fn = on_juggler;
	timers[2].fn = on_last;
	loop_timer_arm(l, &timers[0], 0);
	loop_timer_arm(l, &timers[1], 1); /* cancelled by 0 though due in its batch */
	loop_timer_arm(l, &timers[3], 2); /* due in that batch too, not touched */
	sleep_ms(5);
	assert_int_equal(loop_run(l), 0);
	/* 0 and 3 in the first batch; then 2 (armed for 1 ms by 0), 0 again
	 * (re-armed for 2 ms), which arms 2 once more. */
	const int want[] = {0, 3, 2, 0, 2};
	assert_int_equal(nfired, ARRAY_SIZE(want));
	for (size_t k = 0; k < ARRAY_SIZE(want); k++)
		assert_int_equal(fired[k], want[k]);
	for (int i = 0; i < 4; i++)
		assert_false(loop_timer_armed(&timers[i]));
}

/* ---- hooks ---- */

static int iterations_left;

static void hook_after(struct loop *lp, void *arg)
{
	record(1000 + (int)(intptr_t)arg);
	if ((intptr_t)arg == 2 && --iterations_left == 0)
		loop_stop(lp);
}

static long hook_now(void *arg)
{
	(void)arg;
	return 0;
}

static long hook_none(void *arg)
{
	(void)arg;
	return -1;
}

static void test_hooks_run_after_every_iteration_in_the_order_added(void **state)
{
	(void)state;
	/* No fd, no timer: only hook 1's zero timeout keeps the loop from
	 * waiting (up to a minute, past the alarm) in every iteration. */
	loop_set_hook(l, hook_after, hook_now, (void *)1);
	loop_set_hook(l, hook_after, NULL, (void *)2);
	loop_set_hook(l, hook_after, hook_none, (void *)3);
	iterations_left = 5;
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 15);
	for (size_t k = 0; k < nfired; k++)
		assert_int_equal(fired[k], 1001 + (int)(k % 3));
}

static long hook_soon(void *arg)
{
	(void)arg;
	return 1;
}

static void test_hook_timeout_shortens_the_wait_for_a_far_timer(void **state)
{
	(void)state;
	init_timers(1);
	loop_timer_arm(l, &timers[0], 60000); /* the alarm would go first */
	loop_set_hook(l, hook_after, hook_soon, (void *)2);
	iterations_left = 3;
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 3);
	assert_true(loop_timer_armed(&timers[0]));
}

static void test_timers_fire_before_the_hooks_of_their_iteration(void **state)
{
	(void)state;
	init_timers(1);
	loop_timer_arm(l, &timers[0], 0);
	loop_set_hook(l, hook_after, hook_now, (void *)2);
	iterations_left = 2;
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 3);
	assert_int_equal(fired[0], 0);
	assert_int_equal(fired[1], 1002);
	assert_int_equal(fired[2], 1002);
}

/* ---- fd watches and deferred frees ---- */

struct piped {
	struct loop_watch w;
	int fds[2];
	uint32_t events;
	int calls;
	char got[16];
};

static void piped_open(struct piped *p, loop_fd_fn fn)
{
	memset(p, 0, sizeof *p);
	assert_int_equal(pipe2(p->fds, O_CLOEXEC | O_NONBLOCK), 0);
	p->w.fd = p->fds[0];
	p->w.fn = fn;
	p->w.arg = p;
}

static void piped_close(struct piped *p)
{
	close(p->fds[0]);
	close(p->fds[1]);
}

static void on_readable(struct loop *lp, struct loop_watch *w, uint32_t events)
{
	struct piped *p = w->arg;
	p->events = events;
	p->calls++;
	ssize_t n = read(w->fd, p->got, sizeof p->got - 1);
	if (n > 0)
		p->got[n] = 0;
	loop_stop(lp);
}

static void test_a_readable_pipe_fires_its_watch_with_epollin(void **state)
{
	(void)state;
	struct piped p;
	piped_open(&p, on_readable);
	assert_int_equal(loop_add(l, &p.w, EPOLLIN), 0);
	assert_int_equal(write(p.fds[1], "ping", 4), 4);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(p.calls, 1);
	assert_true(p.events & EPOLLIN);
	assert_string_equal(p.got, "ping");
	loop_del(l, &p.w);
	piped_close(&p);
}

static void on_count(struct loop *lp, struct loop_watch *w, uint32_t events)
{
	(void)lp;
	struct piped *p = w->arg;
	p->events = events;
	p->calls++;
	char c[16];
	while (read(w->fd, c, sizeof c) > 0)
		;
}

static void test_only_watches_asking_for_input_fire(void **state)
{
	(void)state;
	struct piped none, removed, modded;
	piped_open(&none, on_count);
	piped_open(&removed, on_count);
	piped_open(&modded, on_count);
	assert_int_equal(loop_add(l, &none.w, 0), 0);
	assert_int_equal(loop_add(l, &removed.w, EPOLLIN), 0);
	loop_del(l, &removed.w);
	assert_int_equal(loop_add(l, &modded.w, 0), 0);
	assert_int_equal(loop_mod(l, &modded.w, EPOLLIN), 0);
	struct piped *all[] = {&none, &removed, &modded};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		assert_int_equal(write(all[i]->fds[1], "x", 1), 1);
	struct loop_timer stop = {.fn = on_stop};
	loop_timer_arm(l, &stop, 20);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(none.calls, 0);
	assert_int_equal(removed.calls, 0);
	assert_int_equal(modded.calls, 1); /* read dry: level-triggered, not again */
	assert_true(modded.events & EPOLLIN);
	/* Adding an fd twice, or one that is not open, is refused. */
	assert_int_equal(loop_add(l, &modded.w, EPOLLIN), -1);
	struct loop_watch bad = {.fd = 1000000, .fn = on_count};
	assert_int_equal(loop_add(l, &bad, EPOLLIN), -1);
	loop_del(l, &none.w);
	loop_del(l, &modded.w);
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		piped_close(all[i]);
}

/* Two watches due in the same batch; whichever runs first removes the other
 * and frees it through loop_defer_free. The other's callback still runs on
 * its memory (its event is in the batch), and so does the hook after the
 * batch: neither may find it freed (ASan), and it must be freed after
 * (LSan). */
struct doomed {
	struct loop_watch w;
	int calls;
	struct doomed *other;
};

static struct doomed *freed_one;
static int doomed_calls;

static void on_doomed(struct loop *lp, struct loop_watch *w, uint32_t events)
{
	struct doomed *d = w->arg;
	d->calls++;
	doomed_calls++;
	char c;
	assert_int_equal(read(w->fd, &c, 1), 1);
	if (!freed_one) {
		freed_one = d->other;
		loop_del(lp, &d->other->w);
		loop_defer_free(lp, d->other);
	}
}

static void hook_touch_freed(struct loop *lp, void *arg)
{
	(void)arg;
	assert_non_null(freed_one);
	freed_one->calls += 100; /* still this batch: alive */
	loop_stop(lp);
}

static void test_deferred_free_waits_for_the_end_of_the_batch(void **state)
{
	(void)state;
	struct doomed *both[2];
	int fds[2][2];
	for (int i = 0; i < 2; i++) {
		both[i] = calloc(1, sizeof *both[i]);
		assert_non_null(both[i]);
		assert_int_equal(pipe2(fds[i], O_CLOEXEC | O_NONBLOCK), 0);
		both[i]->w = (struct loop_watch){.fd = fds[i][0], .fn = on_doomed, .arg = both[i]};
		assert_int_equal(loop_add(l, &both[i]->w, EPOLLIN), 0);
		assert_int_equal(write(fds[i][1], "x", 1), 1);
	}
	both[0]->other = both[1];
	both[1]->other = both[0];
	freed_one = NULL;
	doomed_calls = 0;
	loop_set_hook(l, hook_touch_freed, NULL, NULL);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(doomed_calls, 2); /* the freed one's callback ran too */
	struct doomed *survivor = freed_one == both[0] ? both[1] : both[0];
	assert_int_equal(survivor->calls, 1);
	loop_del(l, &survivor->w);
	free(survivor);
	for (int i = 0; i < 2; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
}

static void test_deferred_frees_pending_at_loop_free_are_freed(void **state)
{
	(void)state;
	/* Nothing runs the loop: loop_free must bury these (LSan checks). */
	for (int i = 0; i < 40; i++)
		loop_defer_free(l, malloc(64));
}

/* ---- what the loop spent ---- */

static long block_ms[3];

/* Each of the three timers blocks its own iteration for block_ms[i]. */
static void on_block(struct loop *lp, struct loop_timer *t)
{
	intptr_t i = (intptr_t)t->arg;
	sleep_ms(block_ms[i]);
	record((int)i);
	if (i < 2)
		loop_timer_arm(lp, &timers[i + 1], 0);
	else
		loop_stop(lp);
}

static uint64_t counted_over(const struct loop_stats *s, double ms)
{
	uint64_t n = s->over;
	for (size_t i = 0; i < LOOP_STAT_BUCKETS; i++)
		if (loop_stat_bounds_ms[i] > ms)
			n += s->le[i];
	return n;
}

static void test_every_iteration_is_counted_in_the_bucket_of_its_duration(void **state)
{
	(void)state;
	init_timers(3);
	for (int i = 0; i < 3; i++)
		timers[i].fn = on_block;
	/* One iteration each: none, one that blocks 30 ms, one past LOOP_SLOW_MS
	 * (logged). */
	block_ms[0] = 0;
	block_ms[1] = 30;
	block_ms[2] = LOOP_SLOW_MS + 10;
	loop_timer_arm(l, &timers[0], 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(nfired, 3);
	struct loop_stats s;
	loop_get_stats(l, &s);
	uint64_t sum = s.over;
	for (size_t i = 0; i < LOOP_STAT_BUCKETS; i++) {
		sum += s.le[i];
		if (i)
			assert_true(loop_stat_bounds_ms[i] > loop_stat_bounds_ms[i - 1]);
	}
	assert_int_equal(sum, s.iterations);
	assert_true(s.iterations >= 3);
	/* The blocking ones are where their durations put them, and only they
	 * are: a sleep lasts at least what it asks for. */
	assert_int_equal(counted_over(&s, 25), 2);
	assert_int_equal(counted_over(&s, LOOP_SLOW_MS), 1);
	assert_true(s.max_ns >= (uint64_t)(LOOP_SLOW_MS + 10) * 1000000);
	assert_true(s.busy_ns >= s.max_ns + 30 * 1000000ull);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_timers_armed_in_random_order_fire_in_deadline_order),
		TEST(test_timers_spread_over_time_fire_in_deadline_order),
		TEST(test_random_arms_and_cancels_keep_the_heap_shape),
		TEST(test_cancelling_armed_timers_anywhere_keeps_the_order_of_the_rest),
		TEST(test_rearming_an_armed_timer_moves_it),
		TEST(test_cancelling_an_unarmed_timer_does_nothing),
		TEST(test_armed_is_true_from_arm_until_fire_or_cancel),
		TEST(test_negative_ms_fires_like_zero),
		TEST(test_a_timer_callback_may_arm_and_cancel_timers),
		TEST(test_hooks_run_after_every_iteration_in_the_order_added),
		TEST(test_hook_timeout_shortens_the_wait_for_a_far_timer),
		TEST(test_timers_fire_before_the_hooks_of_their_iteration),
		TEST(test_a_readable_pipe_fires_its_watch_with_epollin),
		TEST(test_only_watches_asking_for_input_fire),
		TEST(test_deferred_free_waits_for_the_end_of_the_batch),
		TEST(test_deferred_frees_pending_at_loop_free_are_freed),
		TEST(test_every_iteration_is_counted_in_the_bucket_of_its_duration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
