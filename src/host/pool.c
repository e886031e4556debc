/*
 * Instance pools: spawn `thaw worker` processes, speak frames to them, pick a
 * warm instance with a free slot for each request (most recently used
 * first), start a new one only when none is free and the limit allows, evict
 * idle ones, and turn every way an instance can fail into an answer for the
 * requests it held.
 */
#include "host/host.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "project/project.h"
#include "common/log.h"
#include "host/child.h"
#include "common/util.h"
#include "proto/frame.h"
#include "snap/snap.h"

extern char **environ;

static void inst_close(struct instance *in, const char *why);
static void inst_lost(struct instance *in, const char *why);
static void pool_dispatch(struct app *a);
static struct instance *inst_spawn(struct app *a);

/* --- lists --- */

static void stream_link(struct instance *in, struct hreq *r)
{
	r->prev = NULL;
	r->next = in->streams;
	if (in->streams)
		in->streams->prev = r;
	in->streams = r;
}

static void stream_unlink(struct instance *in, struct hreq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		in->streams = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

static void pending_push(struct app *a, struct hreq *r)
{
	r->next = NULL;
	r->prev = a->pending_tail;
	if (a->pending_tail)
		a->pending_tail->next = r;
	else
		a->pending_head = r;
	a->pending_tail = r;
	a->npending++;
	r->pending = 1;
}

static void pending_remove(struct app *a, struct hreq *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		a->pending_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		a->pending_tail = r->prev;
	r->next = r->prev = NULL;
	a->npending--;
	r->pending = 0;
}

static void app_link(struct app *a, struct instance *in)
{
	in->linked = 1;
	in->prev = NULL;
	in->next = a->instances;
	if (a->instances)
		a->instances->prev = in;
	a->instances = in;
	a->nlive++;
}

static void app_unlink(struct app *a, struct instance *in)
{
	if (in->prev)
		in->prev->next = in->next;
	else
		a->instances = in->next;
	if (in->next)
		in->next->prev = in->prev;
	in->next = in->prev = NULL;
	in->linked = 0;
	a->nlive--;
}

static void spare_unlink(struct host *h, struct instance *in)
{
	if (in->prev)
		in->prev->next = in->next;
	else
		h->spares = in->next;
	if (in->next)
		in->next->prev = in->prev;
	in->next = in->prev = NULL;
	h->nspares--;
}

/* --- output --- */

static void inst_flush(struct instance *in)
{
	while (buf_used(&in->out)) {
		ssize_t n = send(in->w.fd, buf_head(&in->out), buf_used(&in->out), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			/* EPIPE and friends: the read side notices the death too. */
			buf_reset(&in->out);
			break;
		}
		buf_consume(&in->out, (size_t)n);
	}
	int want = buf_used(&in->out) > 0;
	if (want != in->want_out) {
		in->want_out = want;
		loop_mod(in->h->loop, &in->w, EPOLLIN | (want ? EPOLLOUT : 0));
	}
	if (!want) {
		buf_shrink(&in->out, 1u << 20);
		/* Uploads paused on a full queue can go on. */
		for (struct hreq *r = in->streams; r; r = r->next)
			if (!r->upload_done && r->tx_credit)
				front_wake(r);
	}
}

int inst_send2(struct instance *in, uint8_t type, uint32_t stream, const void *p1, size_t l1,
	       const void *p2, size_t l2)
{
	if (in->state == INST_CLOSED)
		return -1;
	if (l1 + l2 > THAW_FRAME_MAX_PAYLOAD)
		return -1;
	uint8_t hdr[THAW_FRAME_HEADER];
	thaw_frame_header(hdr, type, stream, (uint32_t)(l1 + l2));
	buf_append(&in->out, hdr, sizeof hdr);
	buf_append(&in->out, p1, l1);
	buf_append(&in->out, p2, l2);
	if (!in->want_out)
		inst_flush(in);
	return 0;
}

int inst_send(struct instance *in, uint8_t type, uint32_t stream, const void *p, size_t len)
{
	return inst_send2(in, type, stream, p, len, NULL, 0);
}

/* --- spawning --- */

static void inst_io(struct loop *l, struct loop_watch *w, uint32_t events);

static void kill_timer_fn(struct loop *l, struct loop_timer *t)
{
	struct instance *in = t->arg;
	if (!in->reaped && in->pid > 0) {
		log_warn("instance %u (pid %d) did not exit; killing it", in->id, (int)in->pid);
		kill(in->pid, SIGKILL);
	}
}

static void idle_timer_fn(struct loop *l, struct loop_timer *t)
{
	struct instance *in = t->arg;
	if (in->inflight == 0 && in->state == INST_READY)
		inst_close(in, "idle");
}

/* Start a blank `thaw worker`: exec'ed and linked, waiting for INIT. */
static struct instance *proc_spawn(struct host *h)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return NULL;
	}
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], THAW_WORKER_FD);
	/* Only stdio and the socket cross over, whatever the host inherited. */
	posix_spawn_file_actions_addclosefrom_np(&fa, THAW_WORKER_FD + 1);
	posix_spawnattr_init(&at);
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &deflt);
	/* Own process group: a Ctrl-C in the terminal is for the host, which
	 * then stops its instances itself. */
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	/* Same argv and environment for every instance: a snapshot's stack
	 * holds them, and restores need the same stack top. */
	char *argv[] = {(char *)self_exe(), "worker", NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, self_exe(), &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(sv[1]);
	if (rc != 0) {
		log_error("cannot start an instance: %s", strerror(rc));
		close(sv[0]);
		return NULL;
	}
	set_nonblock(sv[0]);
	struct instance *in = xcalloc(1, sizeof *in);
	in->h = h;
	in->id = ++h->next_instance_id;
	in->pid = pid;
	in->state = INST_SPARE;
	in->concurrency = h->lim.concurrency;
	in->t_spawn = now_ns();
	in->w.fd = sv[0];
	in->w.fn = inst_io;
	in->w.arg = in;
	in->idle_timer.fn = idle_timer_fn;
	in->idle_timer.arg = in;
	in->kill_timer.fn = kill_timer_fn;
	in->kill_timer.arg = in;
	loop_add(h->loop, &in->w, EPOLLIN);
	in->all_next = h->all_instances;
	if (h->all_instances)
		h->all_instances->all_prev = in;
	h->all_instances = in;
	return in;
}

void pool_fill_spares(struct host *h)
{
	while (h->nspares < h->spares_target) {
		struct instance *in = proc_spawn(h);
		if (!in)
			return;
		in->next = h->spares;
		in->prev = NULL;
		if (h->spares)
			h->spares->prev = in;
		h->spares = in;
		h->nspares++;
	}
}

/* A blank process: a spare if one is waiting, else a new one. */
static struct instance *take_process(struct host *h)
{
	struct instance *in = h->spares;
	if (in)
		spare_unlink(h, in);
	else
		in = proc_spawn(h);
	return in;
}

static void send_init(struct instance *in, const char *mode, const char *snapshot, int record_ws)
{
	struct app *a = in->app;
	json_error_t je;
	json_t *j = json_loads(a->init_json, 0, &je);
	if (!j)
		fatal("bad instance configuration: %s", je.text);
	json_object_set_new(j, "mode", json_string(mode));
	if (snapshot)
		json_object_set_new(j, "snapshot", json_string(snapshot));
	if (snapshot && record_ws) {
		char *ws = xasprintf("%s.ws", snapshot);
		json_object_set_new(j, "record_ws", json_string(ws));
		free(ws);
	}
	if (!strcmp(mode, "build")) {
		json_object_set_new(j, "snapshot_build", json_true());
		json_object_set_new(j, "max_snapshot_bytes",
				    json_integer((json_int_t)a->h->max_snapshot_bytes));
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		fatal("cannot encode the instance configuration");
	inst_send(in, THAW_F_INIT, 0, s, strlen(s));
	free(s);
}

static struct instance *inst_spawn(struct app *a)
{
	struct host *h = a->h;
	struct instance *in = take_process(h);
	if (!in)
		return NULL;
	in->app = a;
	in->state = INST_STARTING;
	in->generation = a->generation;
	in->t_spawn = now_ns();
	app_link(a, in);
	a->nstarting++;
	in->restoring = a->snap_state == SNAPSHOT_READY;
	/* The first instance restored from an image records its working set. */
	int record = in->restoring && !a->snap_ws_asked;
	if (record)
		a->snap_ws_asked = 1;
	in->records_ws = record;
	if (in->restoring)
		in->image = xstrdup(a->snap_path);
	send_init(in, in->restoring ? "restore" : "boot", in->restoring ? a->snap_path : NULL,
		  record);
	log_debug("instance %u: pid %d %s", in->id, (int)in->pid,
		  in->restoring ? "restoring" : "booting");
	pool_fill_spares(h);
	return in;
}

void pool_build_snapshot(struct app *a)
{
	struct host *h = a->h;
	if (!a->snapshots || a->builder || a->snap_builds >= 3)
		return;
	struct instance *in = take_process(h);
	if (!in)
		return;
	in->app = a;
	in->state = INST_STARTING;
	in->is_builder = 1;
	in->generation = a->generation;
	in->t_spawn = now_ns();
	in->snap_path = xasprintf("%s/%s-%u-%u.snap", a->snap_dir, app_label(a), a->generation,
				  ++h->snap_counter);
	a->builder = in;
	a->snap_state = SNAPSHOT_BUILDING;
	a->snap_builds++;
	send_init(in, "build", in->snap_path, 0);
	pool_fill_spares(h);
}

/* Was in restored from the image the app uses now (not an older one)? */
static int current_image(const struct app *a, const struct instance *in)
{
	return a->snap_path && in->image && !strcmp(a->snap_path, in->image);
}

static void snapshot_drop(struct app *a)
{
	a->snap_ws_asked = 0;
	if (a->snap_path) {
		snap_remove(a->snap_path); /* mappings of restored instances stay valid */
		free(a->snap_path);
		a->snap_path = NULL;
	}
	if (a->snap_state == SNAPSHOT_READY)
		a->snap_state = SNAPSHOT_NONE;
}

void pool_snapshot_adopted(struct app *a, char *path, const char *why)
{
	if (a->snap_state != SNAPSHOT_ADOPTING) {
		/* The app moved on meanwhile (a reload): not its image any more. */
		free(path);
		return;
	}
	if (path) {
		snapshot_drop(a);
		a->snap_path = path;
		a->snap_state = SNAPSHOT_READY;
		fprintf(stderr, "thaw: snapshot of %s: %.1f MB, written in %.0f ms (built in %.0f ms)\n",
			app_label(a), (double)a->adopt_bytes / 1e6, a->adopt_write_ms,
			a->adopt_build_ms);
		fflush(stderr);
		if (a->hooks && a->hooks->event)
			a->hooks->event(a, APP_SNAPSHOT_BUILT, path, (double)a->adopt_bytes);
		/* Validate it with a restore, which also leaves a warm instance. */
		if (a->snap_state == SNAPSHOT_READY && a->nlive == 0)
			inst_spawn(a);
	} else {
		a->snap_state = SNAPSHOT_NONE;
		log_warn("%s: the snapshot could not be stored: %s", app_label(a), why ? why : "?");
		if (a->hooks && a->hooks->event)
			a->hooks->event(a, APP_SNAPSHOT_FAILED, why, 0);
	}
	pool_dispatch(a);
}

/* --- lifecycle --- */

/* Stop giving work to an instance and let its process go. */
static void inst_close(struct instance *in, const char *why)
{
	if (in->state == INST_CLOSED)
		return;
	struct app *a = in->app;
	if (in->state == INST_SPARE) {
		spare_unlink(in->h, in);
	} else if (in->linked) {
		if (in->state == INST_STARTING)
			a->nstarting--;
		app_unlink(a, in);
	}
	/* It was to record the working set but never served: ask the next. */
	if (a && in->records_ws && !in->served && in->generation == a->generation)
		a->snap_ws_asked = 0;
	if (a && a->builder == in) {
		a->builder = NULL;
		if (a->snap_state == SNAPSHOT_BUILDING)
			a->snap_state = SNAPSHOT_NONE;
		if (in->snap_path)
			snap_remove(in->snap_path); /* whatever it left behind */
	}
	in->state = INST_CLOSED;
	loop_timer_cancel(in->h->loop, &in->idle_timer);
	loop_del(in->h->loop, &in->w);
	close(in->w.fd);
	in->w.fd = -1;
	buf_free(&in->in);
	buf_free(&in->out);
	log_debug("instance %u: closed (%s)", in->id, why);
	/* EOF on its socket makes the worker exit; make sure it does. */
	if (!in->reaped)
		loop_timer_arm(in->h->loop, &in->kill_timer, 2000);
}

static void inst_free(struct instance *in)
{
	struct host *h = in->h;
	loop_timer_cancel(h->loop, &in->kill_timer);
	loop_timer_cancel(h->loop, &in->idle_timer);
	if (in->all_prev)
		in->all_prev->all_next = in->all_next;
	else
		h->all_instances = in->all_next;
	if (in->all_next)
		in->all_next->all_prev = in->all_prev;
	if (in->snap_path) {
		/* A builder that never handed its image over: whatever it wrote,
		 * finished or not, is garbage now that it is gone. */
		snap_remove(in->snap_path);
		free(in->snap_path);
	}
	free(in->image);
	in->state = INST_CLOSED;
	loop_defer_free(h->loop, in); /* its watch may be in this epoll batch */
}

static void detach(struct hreq *r)
{
	struct instance *in = r->inst;
	if (!in)
		return;
	stream_unlink(in, r);
	r->inst = NULL;
	in->inflight--;
	in->last_used = now_ns();
	if (in->inflight == 0 && in->state == INST_DRAINING)
		inst_close(in, "drained");
	else if (in->inflight == 0 && in->state == INST_READY) {
		if (in->app->npending == 0) {
			if (in->h->lim.idle_timeout_ms <= 0 || in->app->draining)
				inst_close(in, "idle timeout 0");
			else
				loop_timer_arm(in->h->loop, &in->idle_timer, in->h->lim.idle_timeout_ms);
		}
	}
}

/* The instance is gone (crashed, killed, broke the protocol). */
static void inst_lost(struct instance *in, const char *why)
{
	struct app *a = in->app;
	int was_starting = in->state == INST_STARTING && in->linked;
	int restore_died = was_starting && in->restoring && in->generation == a->generation &&
			   current_image(a, in);
	if (in->state != INST_CLOSED) {
		log_warn("instance %u (pid %d) %s", in->id, (int)in->pid, why);
		if (!in->reaped)
			kill(in->pid, SIGKILL);
	}
	while (in->streams) {
		struct hreq *r = in->streams;
		detach(r);
		if (!r->resp_head)
			front_fail(r, 502, "The worker instance serving this request exited before it "
					   "answered.\n");
		else {
			r->resp_failed = 1;
			front_wake(r);
		}
	}
	inst_close(in, why);
	if (!a)
		return;
	if (restore_died && a->snap_path) {
		/* The image passed validation but the restore failed midway: stop
		 * using it, serve the waiting requests by booting, build anew. */
		log_warn("%s: restoring from the snapshot failed; booting instead and rebuilding it",
			 app_label(a));
		snapshot_drop(a);
		pool_build_snapshot(a);
		pool_dispatch(a);
		return;
	}
	if (was_starting && a->nstarting == 0) {
		/* It died before it was ready, without saying why: do not loop
		 * on respawning for the requests that waited on it. */
		while (a->pending_head) {
			struct hreq *r = a->pending_head;
			pending_remove(a, r);
			r->start_desc = "boot";
			r->t_assigned = now_ns();
			front_fail(r, 502, "The worker instance exited while starting.\n");
		}
	}
	pool_dispatch(a);
}

int pool_reaped(struct host *h, pid_t pid, int status)
{
	struct instance *in;
	for (in = h->all_instances; in; in = in->all_next)
		if (in->pid == pid)
			break;
	if (!in)
		return 0;
	in->reaped = 1;
	if (in->state != INST_CLOSED) {
		char why[96];
		if (WIFSIGNALED(status))
			snprintf(why, sizeof why, "was killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
		else
			snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
		inst_lost(in, why);
	}
	inst_free(in);
	return 1;
}

/* --- requests --- */

static void attach(struct instance *in, struct hreq *r, int booted)
{
	struct host *h = in->h;
	r->inst = in;
	if (++h->next_stream == 0)
		h->next_stream = 1;
	r->stream = h->next_stream;
	stream_link(in, r);
	in->inflight++;
	in->served++;
	in->last_used = now_ns();
	loop_timer_cancel(h->loop, &in->idle_timer);
	r->t_assigned = now_ns();
	r->start_desc = !booted ? "warm" : in->from_snapshot ? "snapshot" : "boot";
	r->tx_credit = THAW_STREAM_WINDOW;
	r->rx_credit = THAW_STREAM_WINDOW;
	inst_send(in, THAW_F_REQ_HEAD, r->stream, buf_head(&r->head), buf_used(&r->head));
	buf_free(&r->head);
	front_wake(r);
}

/* Most recently used ready instance with a free slot, of the current code. */
static struct instance *pick(struct app *a)
{
	struct instance *best = NULL;
	for (struct instance *in = a->instances; in; in = in->next) {
		if (in->state != INST_READY || in->generation != a->generation ||
		    in->inflight >= in->concurrency)
			continue;
		if (!best || in->last_used > best->last_used)
			best = in;
	}
	return best;
}

static void pool_dispatch(struct app *a)
{
	while (a->pending_head) {
		struct instance *in = pick(a);
		if (!in)
			break;
		struct hreq *r = a->pending_head;
		pending_remove(a, r);
		/* It waited: for a boot if this instance never served before. */
		attach(in, r, in->t_ready >= r->t_arrive);
	}
	if (!a->pending_head)
		return;
	if (a->load_error) {
		while (a->pending_head) {
			struct hreq *r = a->pending_head;
			pending_remove(a, r);
			r->start_desc = "boot";
			r->t_assigned = now_ns();
			front_fail(r, 500, a->load_error);
		}
		return;
	}
	/* Start another instance if the ones starting cannot take them all. */
	unsigned capacity = a->nstarting * a->h->lim.concurrency;
	if (a->npending > capacity && a->nlive < a->h->lim.max_instances)
		inst_spawn(a);
}

void pool_submit(struct app *a, struct hreq *r)
{
	r->app = a;
	struct instance *in = pick(a);
	if (in && !a->pending_head) {
		attach(in, r, 0);
		return;
	}
	pending_push(a, r);
	pool_dispatch(a);
}

void pool_forget(struct hreq *r)
{
	if (r->pending) {
		pending_remove(r->app, r);
		return;
	}
	struct instance *in = r->inst;
	if (!in)
		return;
	/* The client is gone or the request timed out: tell the instance. */
	inst_send(in, THAW_F_CANCEL, r->stream, NULL, 0);
	struct app *a = in->app;
	detach(r);
	pool_dispatch(a);
}

void pool_grant(struct hreq *r, uint32_t n)
{
	r->rx_unacked += n;
	if (r->inst && r->rx_unacked >= THAW_STREAM_WINDOW / 4) {
		uint8_t p[4];
		thaw_put_u32(p, r->rx_unacked);
		r->rx_credit += r->rx_unacked;
		r->rx_unacked = 0;
		inst_send(r->inst, THAW_F_WINDOW, r->stream, p, 4);
	}
}

void pool_timeout(struct hreq *r)
{
	struct instance *in = r->inst;
	if (r->pending) {
		pending_remove(r->app, r);
		r->start_desc = "boot";
		r->t_assigned = now_ns();
		front_fail(r, 504, "The worker did not start within the time limit.\n");
		return;
	}
	if (!in)
		return;
	log_warn("request %s %s: handler exceeded the %.0f ms time limit; replacing instance %u",
		 r->method, r->uri, r->h->lim.timeout_ms, in->id);
	inst_send(in, THAW_F_CANCEL, r->stream, NULL, 0);
	detach(r);
	/* A handler stuck past its limit may be stuck for good (a CPU loop
	 * cannot be cancelled): this instance takes no more work and is
	 * killed if it does not finish what it holds soon. */
	if (in->state == INST_READY)
		in->state = INST_DRAINING;
	if (in->state != INST_CLOSED) {
		if (in->inflight == 0)
			inst_close(in, "timed out");
		else
			loop_timer_arm(in->h->loop, &in->kill_timer, 1000);
	}
	front_fail(r, 504, "The worker did not answer within the time limit.\n");
	pool_dispatch(r->app);
}

/* --- frames from an instance --- */

static struct hreq *find_stream(struct instance *in, uint32_t stream)
{
	for (struct hreq *r = in->streams; r; r = r->next)
		if (r->stream == stream)
			return r;
	return NULL;
}

static int on_frame(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
	struct hreq *r;
	const char *err = NULL;
	if (f->type == THAW_F_HELLO)
		return 0;
	if (in->state == INST_SPARE)
		return -1; /* a blank process speaks only HELLO */
	switch (f->type) {
	case THAW_F_SNAP_DONE: {
		if (!in->is_builder || in->state != INST_STARTING)
			return -1;
		json_t *j = json_loadb((const char *)f->payload, f->len, 0, NULL);
		json_int_t bytes = 0;
		double ms = 0;
		if (j)
			json_unpack(j, "{s?I, s?F}", "bytes", &bytes, "ms", &ms);
		json_decref(j);
		char *path = NULL;
		if (in->generation == a->generation) {
			path = in->snap_path;
			in->snap_path = NULL;
			a->builder = NULL;
			a->adopt_bytes = (uint64_t)bytes;
			a->adopt_write_ms = ms;
			a->adopt_build_ms = ns_to_ms(now_ns() - in->t_spawn);
			a->snap_state = SNAPSHOT_ADOPTING;
		}
		inst_close(in, "snapshot written");
		if (!path) {
			pool_dispatch(a);
			return 0;
		}
		if (a->hooks && a->hooks->adopt_snapshot) {
			/* Checking and storing it is the owner's, off the loop: it
			 * answers with pool_snapshot_adopted. */
			a->hooks->adopt_snapshot(a, path);
			free(path);
		} else {
			pool_snapshot_adopted(a, path, NULL);
		}
		return 0;
	}
	case THAW_F_READY: {
		if (in->state != INST_STARTING || in->is_builder)
			return -1;
		json_error_t je;
		json_t *j = json_loadb((const char *)f->payload, f->len, 0, &je);
		json_int_t conc = 0;
		const char *refused = NULL;
		double restore_ms = -1;
		if (j)
			json_unpack(j, "{s?I, s?s, s?F}", "concurrency", &conc, "restore_refused",
				    &refused, "restore_ms", &restore_ms);
		if (refused) {
			/* The image does not fit this host (new binary, library,
			 * kernel...): this instance booted instead; rebuild. */
			log_warn("%s: snapshot refused (%s); rebuilding it", app_label(a), refused);
			if (current_image(a, in)) {
				snapshot_drop(a);
				if (a->hooks && a->hooks->event)
					a->hooks->event(a, APP_RESTORE_REFUSED, refused, 0);
				pool_build_snapshot(a);
			}
		} else if (in->restoring) {
			in->from_snapshot = 1;
			a->snap_restore_ms = restore_ms;
			if (a->hooks && a->hooks->event)
				a->hooks->event(a, APP_RESTORED, NULL, restore_ms);
		}
		json_decref(j);
		if (conc > 0 && (unsigned long long)conc < in->concurrency)
			in->concurrency = (unsigned)conc;
		if (a->build_failed && in->generation == a->generation) {
			inst_close(in, "its snapshot build failed");
			pool_dispatch(a);
			return 0;
		}
		in->state = INST_READY;
		a->nstarting--;
		in->t_ready = now_ns();
		in->last_used = in->t_ready;
		log_debug("instance %u ready in %.1f ms", in->id, ns_to_ms(in->t_ready - in->t_spawn));
		if (in->generation != a->generation) {
			inst_close(in, "stale code");
		} else {
			free(a->load_error);
			a->load_error = NULL;
			pool_dispatch(a);
			if (in->inflight == 0 && in->state == INST_READY) {
				if ((in->h->lim.idle_timeout_ms <= 0 || a->draining) &&
				    a->npending == 0)
					inst_close(in, "idle timeout 0");
				else
					loop_timer_arm(in->h->loop, &in->idle_timer,
						       in->h->lim.idle_timeout_ms);
			}
		}
		return 0;
	}
	case THAW_F_LOAD_ERROR: {
		if (in->state != INST_STARTING)
			return -1;
		char *text = xmalloc(f->len + 1);
		memcpy(text, f->payload, f->len);
		text[f->len] = 0;
		fprintf(stderr, "\n%s: cannot load %s:\n%s\n", app_label(a), a->cfg->main, text);
		fflush(stderr);
		if (in->is_builder && in->generation == a->generation && a->hooks && a->hooks->event)
			a->hooks->event(a, APP_SNAPSHOT_FAILED, text, 0);
		if (in->generation == a->generation) {
			free(a->load_error);
			a->load_error = xasprintf("Error: the worker %s could not be loaded (%s).\n\n%s",
						  app_label(a), a->cfg->main, text);
			/* A failed snapshot build (entropy at import, a thread...)
			 * condemns the code, even where a boot of it succeeded. */
			if (in->is_builder) {
				a->build_failed = 1;
				for (struct instance *o = a->instances, *next; o; o = next) {
					next = o->next;
					if (o->generation != a->generation)
						continue;
					if (o->inflight == 0)
						inst_close(o, "its snapshot build failed");
					else if (o->state == INST_READY)
						o->state = INST_DRAINING;
				}
			}
		}
		free(text);
		inst_close(in, "load error");
		pool_dispatch(a);
		return 0;
	}
	case THAW_F_RESP_HEAD:
		if (!(r = find_stream(in, f->stream)))
			return 0; /* cancelled meanwhile */
		if (r->resp_head || f->len < 2)
			return -1;
		r->resp_status = thaw_get_u16(f->payload);
		if (r->resp_status < 200 || r->resp_status > 599 ||
		    thaw_kv_validate(f->payload + 2, f->len - 2, &err) < 0) {
			log_warn("instance %u sent a bad response head (%s)", in->id,
				 err ? err : "status out of range");
			detach(r);
			front_fail(r, 502, "The worker sent a malformed response.\n");
			return 0;
		}
		buf_append(&r->resp_headers, f->payload + 2, f->len - 2);
		r->resp_head = 1;
		r->t_head = now_ns();
		loop_timer_cancel(in->h->loop, &r->timeout);
		front_wake(r);
		return 0;
	case THAW_F_RESP_BODY:
		if (!(r = find_stream(in, f->stream)))
			return 0;
		if (!r->resp_head || f->len > r->rx_credit) {
			log_warn("instance %u overran its flow-control window", in->id);
			return -1;
		}
		r->rx_credit -= f->len;
		front_resp_data(r, f->payload, f->len);
		return 0;
	case THAW_F_RESP_END:
		if (!(r = find_stream(in, f->stream)))
			return 0;
		if (!r->resp_head)
			return -1;
		r->resp_end = 1;
		detach(r);
		front_wake(r);
		pool_dispatch(a);
		return 0;
	case THAW_F_RESP_ERROR: {
		if (!(r = find_stream(in, f->stream)))
			return 0;
		detach(r);
		if (r->resp_head) {
			r->resp_failed = 1;
			front_wake(r);
		} else if (in->h->dev) {
			char *body = xasprintf("Error in the worker %s while handling %s %s:\n\n%.*s",
					       app_label(a), r->method, r->uri, (int)f->len,
					       (const char *)f->payload);
			front_fail(r, 500, body);
			free(body);
		} else {
			front_fail(r, 500, "Internal Server Error\n");
		}
		pool_dispatch(a);
		return 0;
	}
	case THAW_F_WINDOW:
		if (f->len != 4)
			return -1;
		if (!(r = find_stream(in, f->stream)))
			return 0;
		r->tx_credit += thaw_get_u32(f->payload);
		if (r->tx_credit > 64u * THAW_STREAM_WINDOW)
			return -1;
		front_wake(r);
		return 0;
	case THAW_F_LOG: {
		if (f->len < 1 || (f->payload[0] != 1 && f->payload[0] != 2))
			return -1;
		int channel = f->payload[0];
		const char *text = (const char *)f->payload + 1;
		size_t len = f->len - 1;
		if (a->hooks && a->hooks->output) {
			a->hooks->output(a, f->stream ? find_stream(in, f->stream) : NULL, f->stream,
					 channel, text, len);
		} else {
			FILE *out = channel == 1 ? stdout : stderr;
			fprintf(out, "%.*s\n", (int)len, text);
			fflush(out);
		}
		return 0;
	}
	default:
		/* A host-to-instance type coming the other way. */
		return -1;
	}
}

static void inst_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct instance *in = w->arg;
	if (in->state == INST_CLOSED)
		return; /* closed earlier in this batch */
	if (events & EPOLLOUT)
		inst_flush(in);
	if (in->state == INST_CLOSED || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	/* Bounded work per wake-up so one chatty instance cannot starve others. */
	for (int round = 0; round < 16; round++) {
		uint8_t *dst = buf_reserve(&in->in, 65536);
		ssize_t n = recv(w->fd, dst, 65536, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			inst_lost(in, n == 0 ? "closed its connection" : "connection failed");
			return;
		}
		in->in.len += (size_t)n;
		for (;;) {
			struct thaw_frame f;
			size_t used;
			int rc = thaw_frame_decode(buf_head(&in->in), buf_used(&in->in), &f, &used);
			if (rc == THAW_FRAME_NEED_MORE)
				break;
			if (rc != THAW_FRAME_OK) {
				char why[96];
				snprintf(why, sizeof why, "sent a bad frame (%s)",
					 thaw_frame_strerror(rc));
				inst_lost(in, why);
				return;
			}
			if (on_frame(in, &f) < 0) {
				char why[96];
				snprintf(why, sizeof why, "broke the protocol (%s frame)",
					 thaw_frame_type_name(f.type));
				inst_lost(in, why);
				return;
			}
			if (in->state == INST_CLOSED)
				return;
			buf_consume(&in->in, used);
		}
		if ((size_t)n < 65536)
			break;
	}
}

/* --- generations --- */

void pool_reload(struct app *a)
{
	a->generation++;
	free(a->load_error);
	a->load_error = NULL;
	snapshot_drop(a);
	if (a->snap_state == SNAPSHOT_ADOPTING)
		a->snap_state = SNAPSHOT_NONE; /* its answer will be ignored */
	a->snap_builds = 0;
	a->build_failed = 0;
	if (a->builder)
		inst_close(a->builder, "stale build");
	for (struct instance *in = a->instances, *next; in; in = next) {
		next = in->next;
		if (in->state == INST_READY && in->inflight == 0)
			inst_close(in, "reload");
		else if (in->state == INST_READY)
			in->state = INST_DRAINING;
		else if (in->state == INST_STARTING)
			inst_close(in, "reload");
	}
}

void pool_prewarm(struct app *a)
{
	/* With snapshots, the build comes first: it runs the top level (so a
	 * broken worker shows at once) and its restore leaves a warm instance. */
	if (a->snapshots) {
		pool_build_snapshot(a);
		return;
	}
	if (a->nlive < a->h->lim.max_instances && a->nstarting == 0)
		inst_spawn(a);
}

const char *app_label(const struct app *a)
{
	return a->label ? a->label : a->cfg->name;
}

void pool_drain(struct app *a)
{
	a->draining = 1;
	for (struct instance *in = a->instances, *next; in; in = next) {
		next = in->next;
		if (in->state == INST_READY && in->inflight == 0 && a->npending == 0)
			inst_close(in, "version left the deployment");
	}
}

void pool_use_snapshot(struct app *a, const char *path)
{
	snapshot_drop(a);
	a->snap_path = xstrdup(path);
	a->snap_state = SNAPSHOT_READY;
}

unsigned pool_warm_count(const struct app *a)
{
	unsigned n = 0;
	for (const struct instance *in = a->instances; in; in = in->next)
		n += in->state == INST_READY;
	return n;
}

int pool_live_count(struct host *h)
{
	int n = 0;
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (!in->reaped)
			n++;
	return n;
}

void pool_shutdown(struct host *h)
{
	for (struct instance *in = h->all_instances; in; in = in->all_next) {
		if (in->state != INST_CLOSED) {
			while (in->streams)
				detach(in->streams);
			inst_close(in, "shutdown");
		}
		if (in->app && in->app->snap_path && !in->app->keep_snapshots) {
			snap_remove(in->app->snap_path);
			free(in->app->snap_path);
			in->app->snap_path = NULL;
		}
		if (!in->reaped)
			kill(in->pid, SIGTERM);
	}
	/* Give them a moment to exit, then make sure. */
	uint64_t deadline = now_ns() + 2000000000ull;
	while (pool_live_count(h) > 0 && now_ns() < deadline) {
		host_reap(h);
		usleep(5000);
	}
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (!in->reaped)
			kill(in->pid, SIGKILL);
	while (pool_live_count(h) > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid <= 0)
			break;
		pool_reaped(h, pid, status);
	}
}
