/*
 * Helper children of a host (child.h). Spawned by spawn_piped (posix_spawn,
 * no fork of a big host; signals unblocked and defaulted in the child, every
 * fd but stdio closed); stdout is a non-blocking pipe watched by the loop.
 */
#include "host/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "host/host.h"

struct child {
	struct host *h;
	pid_t pid;
	struct loop_watch out_w; /* fd -1 once stdout closed */
	struct buf out;
	size_t max;
	int overflow;
	int exited, status;
	int finished;       /* its callback ran or is running: cancel is a no-op */
	child_done_fn done; /* NULL once cancelled */
	void *arg;
	struct child *next, *prev;
};

static void child_unlink(struct child *c)
{
	struct host *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->children = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

static void out_close(struct child *c)
{
	if (c->out_w.fd < 0)
		return;
	loop_del(c->h->loop, &c->out_w);
	close(c->out_w.fd);
	c->out_w.fd = -1;
}

/* Exited and said all it had to say: report, then free. */
static void maybe_finish(struct child *c)
{
	if (!c->exited || c->out_w.fd >= 0 || c->finished)
		return;
	c->finished = 1;
	child_unlink(c);
	child_done_fn done = c->done;
	c->done = NULL;
	if (done)
		done(c->arg, c->status, buf_head(&c->out), buf_used(&c->out), c->overflow);
	buf_free(&c->out);
	loop_defer_free(c->h->loop, c); /* its watch may be in this epoll batch */
}

static void out_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct child *c = w->arg;
	if (c->out_w.fd < 0)
		return;
	for (;;) {
		uint8_t tmp[16384];
		ssize_t n = read(w->fd, tmp, sizeof tmp);
		if (n > 0) {
			size_t room = c->max - buf_used(&c->out);
			if ((size_t)n > room) {
				c->overflow = 1; /* keep reading, so it never blocks on us */
				n = (ssize_t)room;
			}
			buf_append(&c->out, tmp, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* EOF or an error: nothing more will come */
	}
	out_close(c);
	maybe_finish(c);
}

struct child *child_start(struct host *h, char *const argv[], size_t max_out, child_done_fn done,
			  void *arg, char *err, size_t errlen)
{
	pid_t pid;
	int out_fd;
	if (spawn_piped(argv, &pid, &out_fd, err, errlen) < 0)
		return NULL;
	set_nonblock(out_fd);
	struct child *c = xcalloc(1, sizeof *c);
	c->h = h;
	c->pid = pid;
	c->max = max_out;
	c->done = done;
	c->arg = arg;
	c->out_w.fd = out_fd;
	c->out_w.fn = out_io;
	c->out_w.arg = c;
	loop_add(h->loop, &c->out_w, EPOLLIN);
	c->next = h->children;
	if (h->children)
		h->children->prev = c;
	h->children = c;
	log_debug("child %d: %s started", (int)pid, argv[1] ? argv[1] : argv[0]);
	return c;
}

pid_t child_pid(const struct child *c)
{
	return c->pid;
}

void child_kill(struct child *c, child_done_fn done, void *arg)
{
	if (!c || c->finished)
		return;
	c->done = done;
	c->arg = arg;
	if (!c->exited)
		kill(c->pid, SIGKILL);
}

void child_cancel(struct child *c)
{
	if (!c || c->finished)
		return;
	c->done = NULL;
	if (!c->exited)
		kill(c->pid, SIGKILL); /* reaped by host_reap, then freed */
	out_close(c);
	maybe_finish(c);
}

void child_kill_all(struct host *h)
{
	for (struct child *c = h->children, *next; c; c = next) {
		next = c->next;
		child_cancel(c);
	}
}

json_t *child_answer(int status, const uint8_t *out, size_t len, int overflow, const char *name,
		     char *why, size_t whylen)
{
	json_t *res = overflow ? NULL
			       : json_loadb((const char *)out, len, JSON_DISABLE_EOF_CHECK, NULL);
	int ok = 0;
	const char *error = NULL;
	if (res)
		json_unpack(res, "{s?b, s?s}", "ok", &ok, "error", &error);
	if (ok && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return res;
	if (error)
		snprintf(why, whylen, "%s", error);
	else if (WIFSIGNALED(status))
		snprintf(why, whylen, "the %s was killed by signal %d", name, WTERMSIG(status));
	else
		snprintf(why, whylen, "the %s failed", name);
	json_decref(res);
	return NULL;
}

void host_reap(struct host *h)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED)) > 0) {
		if (WIFSTOPPED(status)) {
			/* A stopped instance would hold what it is given until
			 * each request times out: the pool replaces it. A stopped
			 * helper child is left to its caller's time limit. */
			pool_stopped(h, pid, WSTOPSIG(status));
			continue;
		}
		if (pool_reaped(h, pid, status))
			continue;
		struct child *c;
		for (c = h->children; c; c = c->next)
			if (c->pid == pid && !c->exited)
				break;
		if (!c)
			continue; /* not ours to report (a cancelled child already finished) */
		c->exited = 1;
		c->status = status;
		if (c->out_w.fd >= 0)
			out_io(h->loop, &c->out_w, 0); /* what it wrote before exiting */
		maybe_finish(c);
	}
}
