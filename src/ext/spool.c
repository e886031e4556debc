/* An upload written to a store blob by a thread of its own (spool.h). */
#include "ext/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/util.h"
#include "ext/store.h"
#include "host/loop.h"

#define SPOOL_PIPE (1u << 20)
#define SPOOL_CHUNK (256u << 10)

/* The loop's side of the watches, apart from the spool: an event of the
 * current batch may still name one after the spool went (and the thread
 * may free the spool at any time then), so these are freed after the
 * batch (loop_defer_free) and say the spool is gone with sp = NULL. */
struct spool_watches {
	struct loop_watch room, fin; /* fd -1: not watched */
	struct spool *sp;
};

struct spool {
	struct loop *loop;
	spool_ready_fn ready;
	void *arg;
	int wfd, rfd, efd;
	struct spool_watches *ws;
	uint64_t bytes;
	pthread_t thread;
	struct blob_writer *w;
	/* Under mu: */
	pthread_mutex_t mu;
	int finished, abandoned;
	int gone; /* abandoned, read by the thread without mu (atomic) */
	char err[256]; /* the thread's; read once finished */
};

static void spool_free_fds(struct spool *sp)
{
	if (sp->rfd >= 0)
		close(sp->rfd);
	if (sp->efd >= 0)
		close(sp->efd);
	pthread_mutex_destroy(&sp->mu);
	free(sp);
}

static void *spool_main(void *arg)
{
	struct spool *sp = arg;
	uint8_t *chunk = xmalloc(SPOOL_CHUNK);
	int failed = 0;
	for (;;) {
		ssize_t n = read(sp->rfd, chunk, SPOOL_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (!failed)
				snprintf(sp->err, sizeof sp->err, "reading the upload's pipe: %s",
					 strerror(errno));
			failed = 1;
			break;
		}
		if (n == 0)
			break;
		/* After a failed write the rest is read and dropped: the loop
		 * never waits on a pipe nobody empties. */
		/* Given up: the rest is only drained, not hashed nor written. */
		if (__atomic_load_n(&sp->gone, __ATOMIC_ACQUIRE))
			failed = 1;
		if (!failed && blob_write(sp->w, chunk, (size_t)n, sp->err, sizeof sp->err) < 0)
			failed = 1;
	}
	free(chunk);
	pthread_mutex_lock(&sp->mu);
	sp->finished = 1;
	if (sp->abandoned) {
		pthread_mutex_unlock(&sp->mu);
		blob_abort(sp->w);
		spool_free_fds(sp);
		return NULL;
	}
	uint64_t one = 1;
	if (write(sp->efd, &one, sizeof one) < 0) {
		/* An eventfd written once cannot be full. */
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

static void unwatch(struct spool *sp, struct loop_watch *w)
{
	if (w->fd >= 0) {
		loop_del(sp->loop, w);
		w->fd = -1;
	}
}

/* The owner lets go: no watch calls it again. */
static void unwatch_all(struct spool *sp)
{
	unwatch(sp, &sp->ws->room);
	unwatch(sp, &sp->ws->fin);
	sp->ws->sp = NULL;
	loop_defer_free(sp->loop, sp->ws);
	sp->ws = NULL;
}

static void on_room(struct loop *l, struct loop_watch *w, uint32_t events)
{
	(void)l;
	(void)events;
	struct spool *sp = ((struct spool_watches *)w->arg)->sp;
	if (!sp)
		return;
	unwatch(sp, &sp->ws->room);
	sp->ready(sp->arg);
}

static void on_fin(struct loop *l, struct loop_watch *w, uint32_t events)
{
	(void)l;
	(void)events;
	struct spool *sp = ((struct spool_watches *)w->arg)->sp;
	if (!sp)
		return;
	uint64_t v;
	if (read(sp->efd, &v, sizeof v) < 0) {
		/* Spurious: nothing to take. */
	}
	unwatch(sp, &sp->ws->fin);
	sp->ready(sp->arg);
}

struct spool *spool_start(struct store *st, struct loop *l, spool_ready_fn ready, void *arg,
			  char *err, size_t errlen)
{
	struct spool *sp = xcalloc(1, sizeof *sp);
	sp->loop = l;
	sp->ready = ready;
	sp->arg = arg;
	sp->wfd = sp->rfd = sp->efd = -1;
	pthread_mutex_init(&sp->mu, NULL);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot make a pipe for the upload: %s", strerror(errno));
		spool_free_fds(sp);
		return NULL;
	}
	sp->rfd = p[0];
	sp->wfd = p[1];
	(void)fcntl(sp->wfd, F_SETPIPE_SZ, (int)SPOOL_PIPE); /* else the default 64 KiB */
	if (fcntl(sp->wfd, F_SETFL, O_NONBLOCK) < 0 ||
	    (sp->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		snprintf(err, errlen, "cannot set up the upload's pipe: %s", strerror(errno));
		close(sp->wfd);
		spool_free_fds(sp);
		return NULL;
	}
	sp->w = blob_begin(st, err, errlen);
	if (!sp->w) {
		close(sp->wfd);
		spool_free_fds(sp);
		return NULL;
	}
	int e = pthread_create(&sp->thread, NULL, spool_main, sp);
	if (e) {
		snprintf(err, errlen, "cannot start the upload's writer thread: %s", strerror(e));
		blob_abort(sp->w);
		close(sp->wfd);
		spool_free_fds(sp);
		return NULL;
	}
	sp->ws = xcalloc(1, sizeof *sp->ws);
	sp->ws->sp = sp;
	sp->ws->room.fd = sp->ws->fin.fd = -1;
	sp->ws->room.fn = on_room;
	sp->ws->fin.fn = on_fin;
	sp->ws->room.arg = sp->ws->fin.arg = sp->ws;
	return sp;
}

size_t spool_offer(struct spool *sp, const void *p, size_t n)
{
	size_t took = 0;
	while (took < n && sp->wfd >= 0) {
		ssize_t k = write(sp->wfd, (const uint8_t *)p + took, n - took);
		if (k > 0) {
			took += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		break; /* EAGAIN: full (the thread reads until EOF, so no EPIPE) */
	}
	sp->bytes += took;
	if (took < n && sp->ws->room.fd < 0) {
		sp->ws->room.fd = sp->wfd;
		if (loop_add(sp->loop, &sp->ws->room, EPOLLOUT) < 0)
			fatal("cannot watch an upload's pipe: %s", strerror(errno));
	}
	return took;
}

uint64_t spool_bytes(const struct spool *sp)
{
	return sp->bytes;
}

void spool_end(struct spool *sp)
{
	unwatch(sp, &sp->ws->room);
	if (sp->wfd >= 0) {
		close(sp->wfd); /* EOF for the thread */
		sp->wfd = -1;
	}
	if (sp->ws->fin.fd < 0) {
		sp->ws->fin.fd = sp->efd;
		if (loop_add(sp->loop, &sp->ws->fin, EPOLLIN) < 0)
			fatal("cannot watch an upload's writer: %s", strerror(errno));
	}
}

int spool_done(struct spool *sp)
{
	pthread_mutex_lock(&sp->mu);
	int f = sp->finished;
	pthread_mutex_unlock(&sp->mu);
	return f;
}

struct blob_writer *spool_take(struct spool *sp, char *err, size_t errlen)
{
	unwatch_all(sp);
	pthread_join(sp->thread, NULL); /* it has finished: only its return is left */
	struct blob_writer *w = sp->w;
	if (sp->err[0]) {
		snprintf(err, errlen, "%s", sp->err);
		blob_abort(w);
		w = NULL;
	}
	spool_free_fds(sp);
	return w;
}

void spool_abandon(struct spool *sp)
{
	if (!sp)
		return;
	unwatch_all(sp);
	if (sp->wfd >= 0) {
		close(sp->wfd);
		sp->wfd = -1;
	}
	pthread_t t = sp->thread;
	__atomic_store_n(&sp->gone, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&sp->mu);
	if (!sp->finished) {
		sp->abandoned = 1; /* the thread frees it all: sp is not ours now */
		pthread_mutex_unlock(&sp->mu);
		pthread_detach(t);
		return;
	}
	pthread_mutex_unlock(&sp->mu);
	pthread_join(sp->thread, NULL);
	blob_abort(sp->w);
	spool_free_fds(sp);
}
