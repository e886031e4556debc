/*
 * Tests for the state executor (src/host/executor.c): jobs run off the loop's
 * thread, one at a time, in submission order; every job's done() runs on the
 * loop exactly once, after its run(); stopping hands back the jobs not run
 * (stopped = 1) and joins the thread. Every test runs under alarm().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "host/executor.h"
#include "host/host.h"
#include "host/loop.h"

#define NJOBS 500

struct tjob {
	struct exec_job job;
	int index;
	pthread_t ran_on;
	int ran, done, stopped;
};

static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static int order[NJOBS + 8], norder; /* executor thread only */
static int ndone;
static int entered; /* a job reached run() (atomic) */
static struct host h;
static pthread_t loop_thread;

static void *stop_executor(void *arg)
{
	(void)arg;
	executor_stop(&h);
	return NULL;
}

static void run_job(struct exec_job *j)
{
	struct tjob *t = (struct tjob *)j;
	__atomic_store_n(&entered, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&gate); /* a test may hold the executor here */
	pthread_mutex_unlock(&gate);
	t->ran_on = pthread_self();
	t->ran = 1;
	order[norder++] = t->index;
}

static void done_job(struct exec_job *j, int stopped)
{
	struct tjob *t = (struct tjob *)j;
	if (loop_thread)
		assert_true(pthread_equal(pthread_self(), loop_thread));
	t->done++;
	t->stopped = stopped;
	ndone++;
	if (ndone == NJOBS)
		loop_stop(h.loop);
}

static int setup(void **state)
{
	(void)state;
	memset(&h, 0, sizeof h);
	h.loop = loop_new();
	norder = ndone = 0;
	entered = 0;
	loop_thread = pthread_self();
	alarm(30);
	return h.loop ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	alarm(0);
	executor_stop(&h);
	loop_free(h.loop);
	return 0;
}

static void test_jobs_run_off_the_loop_in_order_and_each_is_done_once(void **state)
{
	(void)state;
	static struct tjob jobs[NJOBS];
	pthread_t me = pthread_self();
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct tjob){.job = {.run = run_job, .done = done_job}, .index = i};
		executor_submit(&h, &jobs[i].job);
	}
	assert_int_equal(loop_run(h.loop), 0);
	assert_int_equal(ndone, NJOBS);
	assert_int_equal(norder, NJOBS);
	for (int i = 0; i < NJOBS; i++) {
		assert_int_equal(order[i], i);
		assert_int_equal(jobs[i].done, 1);
		assert_int_equal(jobs[i].stopped, 0);
		assert_true(jobs[i].ran);
		assert_false(pthread_equal(jobs[i].ran_on, me));
	}
	assert_int_equal(executor_pending(&h), 0);
}

static void test_stop_hands_back_what_never_ran(void **state)
{
	(void)state;
	static struct tjob jobs[8];
	pthread_mutex_lock(&gate); /* the first job waits in run() */
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct tjob){.job = {.run = run_job, .done = done_job}, .index = i};
		executor_submit(&h, &jobs[i].job);
	}
	assert_int_equal(executor_pending(&h), 8);
	/* Stop while the first job waits in run(); open the gate once the
	 * executor knows it is stopping, so the jobs behind it never run. Its
	 * done() runs on the stopping thread, standing in for the loop. */
	loop_thread = (pthread_t)0;
	while (!__atomic_load_n(&entered, __ATOMIC_SEQ_CST))
		sched_yield(); /* the first job is in run(): it runs, whatever the timing */
	pthread_t stopper;
	assert_int_equal(pthread_create(&stopper, NULL, stop_executor, NULL), 0);
	while (!executor_stopping(&h))
		sched_yield();
	pthread_mutex_unlock(&gate);
	pthread_join(stopper, NULL);
	int ran = 0, stopped = 0;
	for (int i = 0; i < 8; i++) {
		assert_int_equal(jobs[i].done, 1);
		ran += jobs[i].ran;
		stopped += jobs[i].stopped;
		if (jobs[i].ran)
			assert_int_equal(jobs[i].stopped, 0);
		else
			assert_int_equal(jobs[i].stopped, 1);
	}
	assert_true(ran >= 1 && ran < 8);
	assert_int_equal(ran + stopped, 8);
	assert_int_equal(executor_pending(&h), 0);
}

/* A done() that submits more work while the executor stops (a queue
 * consumer settling a batch): the new job is handed back too, not lost. */
static struct tjob chained[2];

static void done_then_submit(struct exec_job *j, int stopped)
{
	done_job(j, stopped);
	executor_submit(&h, &chained[1].job);
}

static void test_a_job_submitted_while_stopping_is_handed_back(void **state)
{
	(void)state;
	loop_thread = (pthread_t)0;
	pthread_mutex_lock(&gate);
	static struct tjob first;
	first = (struct tjob){.job = {.run = run_job, .done = done_job}, .index = 0};
	chained[0] = (struct tjob){.job = {.run = run_job, .done = done_then_submit}, .index = 1};
	chained[1] = (struct tjob){.job = {.run = run_job, .done = done_job}, .index = 2};
	executor_submit(&h, &first.job);
	executor_submit(&h, &chained[0].job);
	pthread_t stopper;
	assert_int_equal(pthread_create(&stopper, NULL, stop_executor, NULL), 0);
	while (!executor_stopping(&h))
		sched_yield();
	pthread_mutex_unlock(&gate);
	pthread_join(stopper, NULL);
	assert_int_equal(chained[0].done, 1);
	assert_int_equal(chained[0].stopped, 1);
	assert_int_equal(chained[1].done, 1);
	assert_int_equal(chained[1].stopped, 1);
	assert_false(chained[1].ran);
	assert_null(h.executor);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_jobs_run_off_the_loop_in_order_and_each_is_done_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_hands_back_what_never_ran, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_job_submitted_while_stopping_is_handed_back,
						setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
