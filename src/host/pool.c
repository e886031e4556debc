/*
 * Instance pools: an app's requests and the instances that serve them. A
 * request waits on its app's pending queue (FIFO) until a ready instance of
 * the current code has a free slot (most recently used first); another
 * instance starts only when those starting cannot take the queue and the
 * app is under its instance limit. Once attached, a request is a stream on
 * its instance: this file owns that stream's protocol towards the instance
 * (REQ_HEAD, REQ_BODY under credit, REQ_END, CANCEL, WINDOW for response
 * credit), while the HTTP response is the front's (front_resp_*). A new
 * generation (reload) drains the old code's instances.
 *
 * Processes and the frames they send are instance.c's; images are
 * snapshot.c's (the state machines are written out there).
 *
 * INVARIANTS
 *   - A request is on at most one list: its app's pending queue
 *     (r->pending) or its instance's streams (r->inst), or on neither
 *     (answered, or not yet submitted).
 *   - A request is attached only to an instance picked READY, of its app's
 *     current generation, with a free slot; while attached, the instance
 *     counts it in inflight and is READY or DRAINING (it is detached before
 *     the instance closes).
 *   - Pending requests are answered (dispatched or failed) whenever what
 *     they wait for changes: an instance ready, a request done, a load
 *     error, an image adopted or refused.
 *
 * OWNERSHIP: requests belong to the front (their MHD connection); the pool
 * only links them. pool_forget() is the front's way to take one back.
 *
 * BLOCKING: nothing, except pool_shutdown, which waits up to 2 s for the
 * instances to exit when the host stops (the loop has stopped by then).
 */
#include "host/pool_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "project/project.h"
#include "proto/frame.h"
#include "snap/snap.h"

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

/* --- requests and instances --- */

static void attach(struct instance *in, struct hreq *r, int booted)
{
	struct host *h = in->h;
	r->inst = in;
	if (++h->next_stream >= THAW_STREAM_WORKER_BASE) /* above: the instances' calls */
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
	inst_limits_request_started(in, r);
	inst_send(in, THAW_F_REQ_HEAD, r->stream, buf_head(&r->head), buf_used(&r->head));
	buf_free(&r->head);
	if (r->internal)
		pool_internal_body(r);
	front_wake(r);
	if (r->on_attach) { /* once: it only records where it went */
		void (*fn)(void *, unsigned) = r->on_attach;
		r->on_attach = NULL;
		fn(r->attach_arg, in->id);
	}
}

/* A ready instance of a with this id (a pinned request's), whatever its load. */
static struct instance *pinned(struct app *a, unsigned id)
{
	for (struct instance *in = a->instances; in; in = in->next)
		if (in->id == id && in->state == INST_READY && !in->reaped)
			return in;
	return NULL;
}

struct app *host_instance_app(struct host *h, unsigned instance_id)
{
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (in->id == instance_id && in->state == INST_READY && !in->reaped)
			return in->app;
	return NULL;
}

void pool_internal_body(struct hreq *r)
{
	struct instance *in = r->inst;
	if (!in || !r->internal || r->req_end_sent || r->body_sending)
		return;
	r->body_sending = 1;
	/* Whole in memory: it goes as the credit and the instance's queue allow
	 * (on attach, WINDOW and a drained queue), then REQ_END. */
	while (buf_used(&r->internal_body) && r->tx_credit && buf_used(&in->out) <= INST_OUT_HIGH &&
	       in->state != INST_CLOSED) {
		size_t k = buf_used(&r->internal_body);
		if (k > THAW_FRAME_MAX_PAYLOAD)
			k = THAW_FRAME_MAX_PAYLOAD;
		if (k > r->tx_credit)
			k = r->tx_credit;
		inst_send(in, THAW_F_REQ_BODY, r->stream, buf_head(&r->internal_body), k);
		r->tx_credit -= (uint32_t)k;
		buf_consume(&r->internal_body, k);
	}
	if (!buf_used(&r->internal_body) && in->state != INST_CLOSED) {
		buf_free(&r->internal_body);
		inst_send(in, THAW_F_REQ_END, r->stream, NULL, 0);
		r->req_end_sent = 1;
	}
	r->body_sending = 0;
}

void pool_detach(struct hreq *r)
{
	struct instance *in = r->inst;
	if (!in)
		return;
	stream_unlink(in, r);
	binding_stream_ended(in, r);
	r->inst = NULL;
	in->inflight--;
	in->last_used = now_ns();
	if (in->inflight == 0)
		capacity_kick(in->h); /* one more idle instance: room for those waiting */
	if (in->inflight == 0 && in->state == INST_DRAINING)
		inst_close(in, "drained");
	else if (in->inflight == 0 && in->state == INST_READY) {
		if (in->app->npending == 0) {
			if (in->h->lim.idle_timeout_ms <= 0 || in->app->draining)
				inst_close(in, "idle timeout 0");
			else
				loop_timer_arm(in->h->loop, &in->idle_timer,
					       in->h->lim.idle_timeout_ms);
		}
	}
}

/* Most recently used ready instance with a free slot, of the current code,
 * whose process is alive (a reaped one is READY only while pool_reaped
 * handles the frames it sent before it died). */
static struct instance *pick(struct app *a)
{
	struct instance *best = NULL;
	for (struct instance *in = a->instances; in; in = in->next) {
		if (in->state != INST_READY || in->generation != a->generation ||
		    in->inflight >= in->concurrency || in->reaped)
			continue;
		if (!best || in->last_used > best->last_used)
			best = in;
	}
	return best;
}

unsigned pool_fail_pending(struct app *a, unsigned status, const char *body)
{
	unsigned n = 0;
	while (a->pending_head) {
		struct hreq *r = a->pending_head;
		pending_remove(a, r);
		r->start_desc = "boot";
		r->t_assigned = now_ns();
		front_fail(r, status, body);
		n++;
	}
	return n;
}

unsigned pool_fail_waited(struct app *a, uint64_t t, unsigned status, const char *body,
			  unsigned retry_after)
{
	unsigned n = 0;
	for (struct hreq *r = a->pending_head, *next; r; r = next) {
		next = r->next;
		if (r->t_arrive >= t)
			continue;
		pending_remove(a, r);
		r->start_desc = "boot";
		r->t_assigned = now_ns();
		front_fail_retry(r, status, body, retry_after);
		n++;
	}
	return n;
}

/* The least loaded ready instance of the current code, full or not: for a
 * Durable Object's call, which must not wait behind the requests that wait
 * for it (they may fill every instance's slots). */
static struct instance *pick_any(struct app *a)
{
	struct instance *best = NULL;
	for (struct instance *in = a->instances; in; in = in->next) {
		if (in->state != INST_READY || in->generation != a->generation || in->reaped)
			continue;
		if (!best || in->inflight < best->inflight)
			best = in;
	}
	return best;
}

/* May a worker have one more instance of a? Its versions together hold at
 * most max_instances_per_worker; a version with none may always start one
 * (a rollout's new version never starves behind the old). */
static int worker_may_grow(const struct app *a)
{
	const struct host *h = a->h;
	unsigned cap = h->lim.max_instances_per_worker;
	if (a->nlive == 0)
		return 1;
	if (a->nlive >= cap)
		return 0;
	unsigned n = 0;
	for (const struct instance *in = h->all_instances; in; in = in->all_next)
		if (in->linked && (in->app == a || !strcmp(in->app->cfg->name, a->cfg->name)))
			n++;
	return n < cap;
}

/* Does r go to an instance whatever its load (a Durable Object's call)? */
static int unlimited(const struct hreq *r)
{
	return r->pin_instance || r->on_attach;
}

/* May a start an instance past the host's room? For the deploy check of
 * its version (thaw serve's probe: the operator's, as the snapshot build
 * before it), and, when a has no instance at all, for a call from another
 * worker (a service binding, a Durable Object): its caller holds an
 * instance while it waits, so on a host full of busy callers the callee
 * could never start. One instance over, which the next cold start may
 * evict once it is idle. */
static int past_the_room(const struct app *a)
{
	for (const struct hreq *r = a->pending_head; r; r = r->next)
		if (r->worker_only || (a->nlive == 0 && (r->depth > 0 || unlimited(r))))
			return 1;
	return 0;
}

void pool_dispatch(struct app *a)
{
	/* Objects' calls first: they need a ready instance, not a free slot. */
	for (struct hreq *r = a->pending_head, *next; r; r = next) {
		next = r->next;
		if (!unlimited(r))
			continue;
		struct instance *in = pick_any(a);
		if (!in)
			break;
		pending_remove(a, r);
		attach(in, r, in->t_ready >= r->t_arrive);
	}
	while (a->pending_head) {
		struct instance *in = pick(a);
		if (!in)
			break;
		struct hreq *r = a->pending_head;
		pending_remove(a, r);
		/* It waited: for a boot if this instance never served before. */
		attach(in, r, in->t_ready >= r->t_arrive);
	}
	if (!a->pending_head) {
		capacity_unwait(a);
		return;
	}
	if (a->load_error) {
		capacity_unwait(a);
		pool_fail_pending(a, 500, a->load_error);
		return;
	}
	/* Start another instance if the ones starting cannot take them all,
	 * the worker is under its share and the host has room (or waits). */
	unsigned capacity = a->nstarting * a->h->lim.concurrency;
	if (a->npending > capacity && worker_may_grow(a)) {
		if (capacity_admit(a) || past_the_room(a))
			inst_spawn(a);
		else
			capacity_wait(a);
	} else {
		/* What it has (starting) takes what waits, or it is at its share:
		 * it needs no room on the host, and must not hold up those behind. */
		capacity_unwait(a);
	}
}

/* --- what the front asks --- */

void pool_submit(struct app *a, struct hreq *r)
{
	r->app = a;
	struct instance *in = r->pin_instance ? pinned(a, r->pin_instance) : NULL;
	/* A new object: an instance with a free slot if there is one, else any. */
	if (!in && unlimited(r) && !(in = pick(a)))
		in = pick_any(a);
	if (in) {
		attach(in, r, 0);
		return;
	}
	in = pick(a);
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
		if (r->app->room_waiting)
			capacity_kick(r->h); /* it may need no room now (pool_dispatch says) */
		return;
	}
	struct instance *in = r->inst;
	if (!in)
		return;
	/* The client is gone or the request timed out: tell the instance. */
	inst_send(in, THAW_F_CANCEL, r->stream, NULL, 0);
	struct app *a = in->app;
	pool_detach(r);
	pool_dispatch(a);
}

size_t pool_send_body(struct hreq *r, const void *p, size_t n)
{
	struct instance *in = r->inst;
	if (!in || r->tx_credit == 0 || buf_used(&in->out) > INST_OUT_HIGH)
		return 0; /* the front suspends: attach, WINDOW or a drained queue wakes it */
	if (n > r->tx_credit)
		n = r->tx_credit;
	if (n > THAW_FRAME_MAX_PAYLOAD)
		n = THAW_FRAME_MAX_PAYLOAD;
	inst_send(in, THAW_F_REQ_BODY, r->stream, p, n);
	r->tx_credit -= (uint32_t)n;
	return n;
}

void pool_end_body(struct hreq *r)
{
	if (r->inst && !r->req_end_sent) {
		inst_send(r->inst, THAW_F_REQ_END, r->stream, NULL, 0);
		r->req_end_sent = 1;
	}
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
		if (r->app->room_waiting)
			capacity_kick(r->h); /* it may need no room now (pool_dispatch says) */
		r->start_desc = "boot";
		r->t_assigned = now_ns();
		front_fail(r, 504, "The worker did not start within the time limit.\n");
		return;
	}
	if (!in)
		return;
	log_warn("request %s %s: handler exceeded the %.0f ms time limit; replacing instance %u",
		 r->method, r->uri, r->internal ? r->internal_timeout_ms : r->h->lim.timeout_ms,
		 in->id);
	inst_send(in, THAW_F_CANCEL, r->stream, NULL, 0);
	pool_detach(r);
	/* A handler stuck past its limit may be stuck for good (a CPU loop
	 * cannot be cancelled): this instance takes no more work and is
	 * killed if it does not finish what it holds soon. */
	if (in->state == INST_READY)
		in->state = INST_DRAINING;
	if (in->state != INST_CLOSED) {
		if (in->inflight == 0)
			inst_close(in, "timed out");
		else if (!in->stopped) /* stopped: burns nothing, the others time out too */
			loop_timer_arm(in->h->loop, &in->kill_timer, 1000);
	}
	front_fail(r, 504, "The worker did not answer within the time limit.\n");
	pool_dispatch(r->app);
}

/* --- generations --- */

void pool_reload(struct app *a)
{
	a->generation++;
	free(a->load_error);
	a->load_error = NULL;
	snapshot_new_generation(a);
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
	if (a->nstarting == 0 && worker_may_grow(a) && capacity_admit(a))
		inst_spawn(a);
}

const char *app_label(const struct app *a)
{
	return a->label ? a->label : a->cfg->name;
}

void pool_drain(struct app *a)
{
	a->draining = 1;
	snapshot_app_gone(a); /* a build it waited for the base for is not wanted */
	for (struct instance *in = a->instances, *next; in; in = next) {
		next = in->next;
		if (in->state == INST_READY && in->inflight == 0 && a->npending == 0)
			inst_close(in, "version left the deployment");
	}
	if (pool_unused(a) && a->hooks && a->hooks->unused)
		a->hooks->unused(a);
}

int pool_unused(const struct app *a)
{
	if (a->npending || a->builder || a->base_waiting || a->snap_state == SNAPSHOT_ADOPTING)
		return 0;
	for (const struct instance *in = a->h->all_instances; in; in = in->all_next)
		if (in->app == a)
			return 0;
	for (const struct hreq *r = a->h->all_reqs; r; r = r->all_next)
		if (r->app == a)
			return 0;
	return 1;
}

void pool_app_dispose(struct app *a)
{
	if (!a)
		return;
	capacity_unwait(a);
	snapshot_app_gone(a);
	if (a->snap_path && !a->keep_snapshots)
		snap_remove(a->snap_path);
	free(a->snap_path);
	free(a->snap_base);
	a->snap_base = NULL;
	free(a->snap_dir);
	free(a->load_error);
	bindings_dispose(a);
	project_free(a->cfg);
	a->snap_path = a->snap_dir = a->load_error = NULL;
	a->cfg = NULL;
}

/* --- shutdown --- */

/* Instances not reaped yet. */
static int live_count(struct host *h)
{
	int n = 0;
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (!in->reaped)
			n++;
	return n;
}

void pool_shutdown(struct host *h)
{
	h->stopping = 1; /* a builder closed below starts no other build */
	for (struct instance *in = h->all_instances; in; in = in->all_next) {
		if (in->state != INST_CLOSED) {
			while (in->streams)
				pool_detach(in->streams);
			inst_close(in, "shutdown");
		}
		if (in->app)
			snapshot_shutdown(in->app);
		if (!in->reaped)
			kill(in->pid, SIGTERM);
	}
	/* Give them a moment to exit, then make sure. */
	uint64_t deadline = now_ns() + 2000000000ull;
	while (live_count(h) > 0 && now_ns() < deadline) {
		host_reap(h);
		usleep(5000);
	}
	for (struct instance *in = h->all_instances; in; in = in->all_next)
		if (!in->reaped)
			kill(in->pid, SIGKILL);
	while (live_count(h) > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid <= 0)
			break;
		pool_reaped(h, pid, status);
	}
	host_memory_stop(h);
	host_capacity_stop(h);
	host_limits_stop(h); /* the instances' groups, and what they left running */
}
