/*
 * The state executor (executor.h): a mutex-protected queue in, a list of
 * finished jobs out, an eventfd to wake the loop. The thread blocks only on
 * its condition variable and in the jobs it runs.
 */
#include "host/executor.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/host.h"

struct executor {
	struct host *h;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct exec_job *queue_head, *queue_tail; /* to run */
	struct exec_job *finished;               /* run, done() not called yet (reversed) */
	int stopping;
	struct loop_watch watch; /* the eventfd */
	unsigned pending;        /* loop thread only */
};

static void *executor_main(void *arg)
{
	struct executor *e = arg;
	pthread_mutex_lock(&e->mu);
	for (;;) {
		while (!e->queue_head && !e->stopping)
			pthread_cond_wait(&e->cv, &e->mu);
		if (!e->queue_head)
			break; /* stopping, nothing left to run */
		if (e->stopping)
			break; /* jobs not run are handed back by executor_stop */
		struct exec_job *j = e->queue_head;
		e->queue_head = j->next;
		if (!e->queue_head)
			e->queue_tail = NULL;
		pthread_mutex_unlock(&e->mu);
		j->run(j);
		pthread_mutex_lock(&e->mu);
		j->next = e->finished;
		e->finished = j;
		uint64_t one = 1;
		if (write(e->watch.fd, &one, sizeof one) < 0 && errno != EAGAIN)
			log_error("executor: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* Call done() for the finished jobs, oldest first. */
static void deliver(struct executor *e, int stopped)
{
	pthread_mutex_lock(&e->mu);
	struct exec_job *list = e->finished;
	e->finished = NULL;
	pthread_mutex_unlock(&e->mu);
	struct exec_job *in_order = NULL;
	while (list) {
		struct exec_job *j = list;
		list = j->next;
		j->next = in_order;
		in_order = j;
	}
	while (in_order) {
		struct exec_job *j = in_order;
		in_order = j->next;
		e->pending--;
		j->done(j, stopped);
	}
}

static void on_wake(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct executor *e = w->arg;
	uint64_t n;
	while (read(w->fd, &n, sizeof n) < 0 && errno == EINTR)
		;
	deliver(e, 0);
}

int executor_start(struct host *h, char *err, size_t errlen)
{
	if (h->executor)
		return 0;
	struct executor *e = xcalloc(1, sizeof *e);
	e->h = h;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->watch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	e->watch.fn = on_wake;
	e->watch.arg = e;
	if (e->watch.fd < 0 || loop_add(h->loop, &e->watch, EPOLLIN) < 0) {
		snprintf(err, errlen, "executor: eventfd: %s", strerror(errno));
		goto fail;
	}
	int rc = pthread_create(&e->thread, NULL, executor_main, e);
	if (rc != 0) {
		snprintf(err, errlen, "executor: cannot start its thread: %s", strerror(rc));
		loop_del(h->loop, &e->watch);
		goto fail;
	}
	h->executor = e;
	return 0;
fail:
	if (e->watch.fd >= 0)
		close(e->watch.fd);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return -1;
}

void executor_submit(struct host *h, struct exec_job *job)
{
	char err[256];
	if (!h->executor && executor_start(h, err, sizeof err) < 0)
		fatal("%s", err);
	struct executor *e = h->executor;
	job->next = NULL;
	e->pending++;
	pthread_mutex_lock(&e->mu);
	if (e->queue_tail)
		e->queue_tail->next = job;
	else
		e->queue_head = job;
	e->queue_tail = job;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
}

void executor_stop(struct host *h)
{
	struct executor *e = h->executor;
	if (!e)
		return;
	pthread_mutex_lock(&e->mu);
	e->stopping = 1;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	deliver(e, 0);
	/* What never ran goes back to its owner, and so does what a done()
	 * submits meanwhile (the thread is gone: nothing runs it). */
	struct exec_job *j;
	while ((j = e->queue_head)) {
		e->queue_head = j->next;
		if (!e->queue_head)
			e->queue_tail = NULL;
		e->pending--;
		j->done(j, 1);
	}
	loop_del(h->loop, &e->watch);
	close(e->watch.fd);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
	h->executor = NULL;
}

unsigned executor_pending(const struct host *h)
{
	return h->executor ? h->executor->pending : 0;
}

int executor_stopping(const struct host *h)
{
	struct executor *e = h->executor;
	if (!e)
		return 0;
	pthread_mutex_lock(&e->mu);
	int s = e->stopping;
	pthread_mutex_unlock(&e->mu);
	return s;
}
