/*
 * Instances: one `thaw worker` process each, spoken to in frames over a
 * socketpair (proto/frame.h). This file starts them (pre-spawned blank
 * spares, given an app on demand), sends and receives their frames, and
 * turns every way one can end into answers for what it held. Which
 * instance serves which request is pool.c's; images are snapshot.c's.
 *
 * THE INSTANCE STATE MACHINE (in->state)
 *
 *   SPARE     a blank process, exec'ed and linked, no app yet; on h->spares.
 *   STARTING  given an app (in->app, in->generation) and sent INIT: "boot",
 *             "restore" (in->restoring, in->image) or "build" (a builder:
 *             a->builder, in->is_builder). A serving one is on its app's
 *             live list and counted in a->nstarting; a builder is on
 *             neither and never serves.
 *   READY     serving: takes requests while inflight < concurrency; its
 *             idle timer runs while it holds none.
 *   DRAINING  takes no new request; closed when its last one ends.
 *   CLOSED    off every list but h->all_instances, socket closed (EOF makes
 *             the worker exit), SIGKILL if not reaped within 2 s (at once
 *             if it was stopped: a stopped process reads no EOF).
 *   (freed)   pool_reaped(): its pid was reaped; inst_free, deferred to the
 *             end of the loop's batch (its watch may still be in it).
 *
 *   from      event                                         to         where
 *   -         fewer spares than h->spares_target            SPARE      pool_fill_spares
 *   SPARE     a serving instance is needed (pool_dispatch,  STARTING   inst_spawn
 *             pool_prewarm, an adopted image's first
 *             restore); a snapshot build starts                        pool_build_snapshot
 *             (no spare waiting: a process is spawned and taken at once)
 *   STARTING  READY frame                                   READY      on_ready
 *             ... but its generation's build failed         CLOSED     on_ready
 *             ... of an older generation                    CLOSED     on_ready ("stale code",
 *                                                                      via READY)
 *             SNAP_DONE frame (a builder)                   CLOSED     snapshot_written
 *             LOAD_ERROR frame                              CLOSED     on_load_error
 *             reload                                        CLOSED     pool_reload, and
 *                                                                      snapshot_new_generation
 *                                                                      for the builder
 *             its generation's build failed                 CLOSED     snapshot_build_failed
 *   READY     holds nothing (after READY or its last        CLOSED     on_ready, pool_detach
 *             request), nothing pending, and idle_timeout
 *             is 0 or the app drains; else the idle timer
 *             is armed (on_ready always; pool_detach only
 *             when nothing is pending)
 *             idle timer, holding nothing                   CLOSED     idle_timer_fn
 *             holding nothing, evicted for room on the      CLOSED     capacity.c: evict
 *             host (least recently used first)                         (capacity_admit, tick)
 *             reload / its generation's build failed:       CLOSED     pool_reload,
 *             holding nothing                                          snapshot_build_failed
 *             ... holding requests                          DRAINING   (same)
 *             pool_drain, holding nothing, nothing pending  CLOSED     pool_drain
 *             (busy ones stay READY: the rule above closes them)
 *             one of its requests timed out                 DRAINING   pool_timeout
 *             EXITING frame (it is going)                   DRAINING   on_exiting
 *   DRAINING  its last request ends                         CLOSED     pool_detach ("drained")
 *             one of its requests timed out, holding        CLOSED     pool_timeout
 *             nothing else; holding more: SIGKILL in 1 s
 *             (its exit then makes it lost), unless it was
 *             stopped (each request then times out itself,
 *             pool_stopped's kill timer ends the rest)
 *   SPARE,    stopped (SIGSTOP...: host_reap's WUNTRACED)   CLOSED     pool_stopped
 *   STARTING  (a spare is replaced; a serving instance's
 *             requests wait for another; a builder is lost:
 *             its build fails with the reason)
 *   READY     stopped, holding nothing                      CLOSED     pool_stopped
 *             stopped, holding requests: they run to their  DRAINING   pool_stopped
 *             time limit (504), the last one closes it; it
 *             is killed once the longest limit has passed
 *             (a streamed response has none left: lost)
 *   any       lost (not CLOSED yet): its process exited     CLOSED     inst_lost
 *             (after the frames it sent before exiting are
 *             handled: inst_drain), EOF or an error on its
 *             socket, a bad frame, a frame its state does
 *             not allow (below)
 *   any       host shutdown                                 CLOSED     pool_shutdown
 *   CLOSED    waitpid reaped it                             (freed)    pool_reaped
 *
 *   Frames an instance may send: HELLO always; nothing else while SPARE;
 *   READY only STARTING and not a builder; SNAP_DONE only STARTING and a
 *   builder; LOAD_ERROR only STARTING; EXITING only READY or DRAINING;
 *   RESP_HEAD, RESP_BODY, RESP_END,
 *   RESP_ERROR, WINDOW and LOG in any other state (a stream it no longer
 *   holds, e.g. cancelled meanwhile, is ignored); CALL only READY or
 *   DRAINING, and CANCEL only on one of its call streams (binding.c).
 *   Anything else is lost.
 *
 *   Lost (inst_lost): SIGKILL; each request it held is answered 502 if none
 *   of its response went to the client yet (no head came, or MHD was not
 *   given it: front_resp_abort), else its response is cut short, and the
 *   log line counts both; then, if it was a
 *   serving instance restoring its app's current image, the image is
 *   dropped and rebuilt (snapshot_restore_died) and requests wait for a
 *   boot; a builder of the current generation lost before SNAP_DONE ends
 *   its build with APP_SNAPSHOT_FAILED (the process is gone, so is the
 *   build); else if it was a serving instance starting and none other is
 *   starting, the requests waiting for it are answered 502 (no respawn
 *   loop for code that dies at start without a LOAD_ERROR).
 *
 * INVARIANTS
 *   - An instance on its app's live list (in->linked) is STARTING, READY
 *     or DRAINING; a->nlive counts them, a->nstarting the STARTING ones.
 *   - A request is on in->streams (and counted in inflight) only while the
 *     instance is READY or DRAINING; every request is detached before its
 *     instance closes, so a CLOSED instance holds none.
 *   - Nothing is read from a CLOSED instance: inst_io returns at once, and
 *     frame handling stops as soon as a handler closed it.
 *   - in->snap_path (builder) is the instance's until snapshot_written hands
 *     it over; whatever a builder leaves behind is removed with it.
 *
 * OWNERSHIP: the host owns every instance (h->all_instances) from spawn to
 * reap; only pool_reaped frees one. A request (struct hreq) is never owned
 * here: in->streams only borrows it.
 *
 * BLOCKING: nothing. Sockets are non-blocking (frames are queued in in->out
 * and flushed on EPOLLOUT); each wake-up reads a bounded amount; spawning
 * is posix_spawn (or clone into namespaces: spawn.c) of a process that
 * then links on its own.
 */
#include "host/cgroup.h"
#include "host/pool_internal.h"
#include "host/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "project/project.h"
#include "proto/frame.h"
#include "snap/snap.h"

extern char **environ;

static void inst_io(struct loop *l, struct loop_watch *w, uint32_t events);
static int high_fd(int fd);

/* --- lists --- */

static void app_link(struct app *a, struct instance *in)
{
	in->linked = 1;
	in->prev = NULL;
	in->next = a->instances;
	if (a->instances)
		a->instances->prev = in;
	a->instances = in;
	a->nlive++;
	a->h->ninstances++;
	inst_limits_share(a);
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
	a->h->ninstances--;
	inst_limits_share(a);
	capacity_kick(a->h); /* room for an app waiting for one */
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
		for (struct hreq *r = in->streams; r; r = r->next) {
			if (!r->upload_done && r->tx_credit)
				front_wake(r);
			else if (r->internal && !r->req_end_sent && r->tx_credit)
				pool_internal_body(r);
		}
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
	if (in->h->cork_instances && !in->corked_listed) {
		in->corked = 1;
		in->corked_listed = 1;
		in->corked_next = in->h->corked_instances;
		in->h->corked_instances = in;
	}
	if (!in->want_out && !in->corked)
		inst_flush(in);
	return 0;
}

void inst_uncork(struct instance *in)
{
	in->corked = 0;
	if (in->state != INST_CLOSED && !in->want_out)
		inst_flush(in);
}

void pool_cork(struct host *h)
{
	h->cork_instances = 1;
}

void pool_uncork(struct host *h)
{
	h->cork_instances = 0;
	/* Instances are freed only after the loop's iteration (loop_defer_free),
	 * so every one listed during it is still here. */
	while (h->corked_instances) {
		struct instance *in = h->corked_instances;
		h->corked_instances = in->corked_next;
		in->corked_next = NULL;
		in->corked_listed = 0;
		inst_uncork(in);
	}
}

int inst_send(struct instance *in, uint8_t type, uint32_t stream, const void *p, size_t len)
{
	return inst_send2(in, type, stream, p, len, NULL, 0);
}

/* --- spawning --- */

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

/* --- its raw output (fds 1 and 2) --- */

/* One line the worker's process wrote to fd 1 or 2 itself (os.write, a C
 * library, a subprocess): the worker's, as its print()s are (on_log). */
static void out_line(struct instance *in, const char *text, size_t len)
{
	struct app *a = in->app;
	if (a && a->hooks && a->hooks->output) {
		a->hooks->output(a, NULL, 0, 2, text, len);
		return;
	}
	/* A spare, or an app whose owner takes no output (not thaw serve). */
	fprintf(stderr, "%.*s\n", (int)len, text);
	fflush(stderr);
}

static void out_close(struct instance *in)
{
	if (in->ow.fd < 0)
		return;
	if (in->oused)
		out_line(in, in->oline, in->oused);
	in->oused = 0;
	loop_del(in->h->loop, &in->ow);
	close(in->ow.fd);
	in->ow.fd = -1;
}

/* Where to cut n bytes of text so that no UTF-8 sequence is split: n, or
 * the start of a sequence that p's end leaves incomplete. */
static size_t utf8_cut(const char *p, size_t n)
{
	size_t i = n, back = 0;
	while (i > 0 && back < 3 && ((unsigned char)p[i - 1] & 0xC0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0)
		return n;
	unsigned char lead = (unsigned char)p[i - 1];
	size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
	return need > 1 && n - (i - 1) < need && i > 1 ? i - 1 : n;
}

/* Read what it wrote, at most INST_OUT_BUDGET a wake-up: whole lines go out,
 * a line past INST_LINE_MAX in pieces (cut between characters). EOF (every
 * writer gone) closes it. */
static void out_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct instance *in = w->arg;
	size_t budget = INST_OUT_BUDGET;
	if (!in->oline)
		in->oline = xmalloc(INST_LINE_MAX);
	while (budget > 0 && in->ow.fd >= 0) {
		ssize_t n = read(in->ow.fd, in->oline + in->oused, INST_LINE_MAX - in->oused);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			out_close(in);
			return;
		}
		budget -= (size_t)n < budget ? (size_t)n : budget;
		in->oused += (size_t)n;
		size_t start = 0;
		if (in->ocut && in->oline[0] == '\n')
			start = 1; /* the end of a line that went out cut: no empty line */
		in->ocut = 0;
		for (size_t i = start; i < in->oused; i++) {
			if (in->oline[i] == '\n') {
				out_line(in, in->oline + start, i - start);
				start = i + 1;
			}
		}
		if (start == 0 && in->oused == INST_LINE_MAX) {
			/* No newline in a whole line's room. */
			start = utf8_cut(in->oline, in->oused);
			out_line(in, in->oline, start);
			in->ocut = 1;
		}
		memmove(in->oline, in->oline + start, in->oused - start);
		in->oused -= start;
	}
}

/* Start a blank `thaw worker`: exec'ed and linked, waiting for INIT. */
static struct instance *proc_spawn(struct host *h)
{
	int sv[2], op[2] = {-1, -1};
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return NULL;
	}
	/* thaw dev: the developer's own code, writing to their terminal as it
	 * would anywhere (stdout stays stdout). */
	if (!h->dev && pipe2(op, O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	op[1] = high_fd(op[1]);
	if (op[0] >= 0 && op[1] < 0) {
		/* No fd left: it would write to the host's own stdout and stderr. */
		log_error("pipe: %s", strerror(errno));
		close(op[0]);
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	/* It joins its control group itself, first thing: the migration's
	 * wait (an RCU grace period, ~10 ms) is then its own, not this loop's. */
	unsigned id = h->next_instance_id + 1;
	int cg_fds[THAW_CGROUP_MAX], ncg = 0;
	struct cgroup *cg = inst_limits_spare_cgroup(h, id, cg_fds, &ncg);
	for (int i = 0; i < ncg; i++)
		cg_fds[i] = high_fd(cg_fds[i]);
	char err[256];
	pid_t pid = spawn_worker(h, sv[1], op[1], h->sandbox, cg_fds, ncg, err, sizeof err);
	close(sv[1]);
	if (op[1] >= 0)
		close(op[1]);
	for (int i = 0; i < ncg; i++)
		if (cg_fds[i] >= 0)
			close(cg_fds[i]);
	if (pid < 0) {
		log_error("cannot start an instance: %s", err);
		close(sv[0]);
		if (op[0] >= 0)
			close(op[0]);
		if (cg) {
			cgroup_remove(cg);
			cgroup_free(cg);
		}
		return NULL;
	}
	set_nonblock(sv[0]);
	struct instance *in = xcalloc(1, sizeof *in);
	in->h = h;
	in->id = ++h->next_instance_id;
	in->spare_cg = cg;
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
	in->ow.fd = op[0];
	in->ow.fn = out_io;
	in->ow.arg = in;
	if (op[0] >= 0) {
		set_nonblock(op[0]);
		loop_add(h->loop, &in->ow, EPOLLIN);
	}
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

struct instance *inst_take(struct app *a)
{
	struct host *h = a->h;
	struct instance *in = h->spares;
	if (in)
		spare_unlink(h, in);
	else
		in = proc_spawn(h);
	if (!in)
		return NULL;
	in->app = a;
	in->state = INST_STARTING;
	in->generation = a->generation;
	in->t_spawn = now_ns();
	if (inst_limits_apply(in) < 0) { /* before INIT: it never runs unconfined */
		inst_close(in, "its limits could not be applied");
		return NULL;
	}
	return in;
}

static void host_sandbox_free_roots(struct host *h);

/* fd moved above every number a spawned spare's fds are put on (the child
 * dups the roots to SPAWN_ROOTS_FD.., which must never be one of them). */
static int high_fd(int fd)
{
	if (fd < 0 || fd >= 64)
		return fd;
	int h = fcntl(fd, F_DUPFD_CLOEXEC, 64);
	int e = errno;
	close(fd);
	errno = e;
	return h;
}

/* Its worker's uid in the sandbox: base + slot, slots by name (0: none left). */
static uint32_t sandbox_uid(struct host *h, const char *name)
{
	for (unsigned i = 0; i < h->nsandbox_names; i++)
		if (!strcmp(h->sandbox_names[i], name))
			return h->sandbox_uid_base + i + 1;
	if (h->nsandbox_names >= SANDBOX_UID_SLOTS)
		return 0;
	h->sandbox_names =
		xrealloc(h->sandbox_names, (h->nsandbox_names + 1) * sizeof *h->sandbox_names);
	h->sandbox_names[h->nsandbox_names++] = xstrdup(name);
	return h->sandbox_uid_base + h->nsandbox_names;
}

int host_sandbox_roots(struct host *h, const char *const *paths, size_t n, char *err, size_t errlen)
{
	if (n > SPAWN_ROOTS_MAX)
		return err_set(err, errlen, "more than %d sandbox roots", SPAWN_ROOTS_MAX);
	struct buf list = {0};
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (paths[i][0] != '/' || strchr(paths[i], '\n') || stat(paths[i], &st) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			buf_free(&list);
			return err_set(err, errlen, "sandbox root %s: %s", paths[i],
				       paths[i][0] != '/' ? "not an absolute path"
							  : "not a directory");
		}
		buf_append(&list, paths[i], strlen(paths[i]));
		buf_append(&list, "\n", 1);
	}
	int mfd = high_fd(memfd_create("thaw-roots", MFD_CLOEXEC | MFD_ALLOW_SEALING));
	if (mfd < 0 || write_all(mfd, buf_head(&list), buf_used(&list)) < 0 ||
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		err_set(err, errlen, "sandbox roots: memfd: %s", strerror(errno));
		if (mfd >= 0)
			close(mfd);
		buf_free(&list);
		return -1;
	}
	buf_free(&list);
	host_sandbox_free_roots(h);
	h->sandbox_roots_fd = mfd;
	h->nsandbox_roots = (unsigned)n;
	return 0;
}

static void host_sandbox_free_roots(struct host *h)
{
	h->nsandbox_roots = 0;
	if (h->sandbox_roots_fd >= 0)
		close(h->sandbox_roots_fd);
	h->sandbox_roots_fd = -1;
}

void host_sandbox_free(struct host *h)
{
	host_sandbox_free_roots(h);
	free(h->sandbox_out_base);
	h->sandbox_out_base = NULL;
	for (unsigned i = 0; i < h->nsandbox_names; i++)
		free(h->sandbox_names[i]);
	free(h->sandbox_names);
	h->sandbox_names = NULL;
	h->nsandbox_names = 0;
}

char *inst_out_dir(struct instance *in)
{
	struct app *a = in->app;
	if (in->out_dir)
		return in->out_dir;
	char *d = xasprintf("%s/sbx-%u",
			    a->h->sandbox_out_base ? a->h->sandbox_out_base : a->snap_dir, in->id);
	remove_tree(d); /* a crashed host's */
	if (mkdir(d, 0700) < 0) {
		log_warn("%s: cannot make %s: %s", app_label(a), d, strerror(errno));
		free(d);
		return NULL;
	}
	uint32_t uid = spawn_uses_userns() ? 0 : sandbox_uid(a->h, a->cfg->name);
	if (uid && chown(d, uid, uid) < 0) {
		log_warn("%s: cannot give %s to uid %u: %s", app_label(a), d, uid, strerror(errno));
		rmdir(d);
		free(d);
		return NULL;
	}
	in->out_dir = d;
	return d;
}

/* INIT's "sandbox" (src/worker/sandbox.h): whose ids, what it sees. NULL
 * when its worker has no uid left (then it must not start). */
static json_t *sandbox_json(struct instance *in, const char *mode, const char *snapshot)
{
	struct app *a = in->app;
	struct host *h = a->h;
	json_t *s = json_object();
	if (spawn_uses_userns()) {
		json_object_set_new(s, "userns",
				    json_pack("{s:I, s:I}", "uid", (json_int_t)getuid(), "gid",
					      (json_int_t)getgid()));
	} else {
		uint32_t uid = sandbox_uid(h, a->cfg->name);
		if (!uid) {
			json_decref(s);
			return NULL;
		}
		json_object_set_new(s, "uid", json_integer(uid));
		json_object_set_new(s, "gid", json_integer(uid));
	}
	json_t *ro = json_array();
	/* The base image a build restores first, or the one the image being
	 * restored was built on: shown at its own path, as the image names it. */
	if (in->is_builder && in->base)
		json_array_append_new(ro, json_string(in->base));
	else if (snapshot && !strcmp(mode, "restore") && a->snap_base && snapshot_is_current(a, in))
		json_array_append_new(ro, json_string(a->snap_base));
	if (snapshot && !strcmp(mode, "restore")) {
		json_array_append_new(ro, json_string(snapshot));
		char *ws = xasprintf("%s.ws", snapshot);
		if (access(ws, F_OK) == 0)
			json_array_append_new(ro, json_string(ws));
		free(ws);
	}
	json_object_set_new(s, "ro", ro);
	json_t *rw = json_array();
	if (in->out_dir)
		json_array_append_new(rw, json_string(in->out_dir));
	json_object_set_new(s, "rw", rw);
	if (a->sandbox_hide)
		json_object_set(s, "hide", a->sandbox_hide);
	return s;
}

void inst_send_init(struct instance *in, const char *mode, const char *snapshot, int record_ws)
{
	/* Everything the instance runs, and nothing it could find elsewhere: a
	 * restored process has the builder's argv and environment. */
	struct app *a = in->app;
	const struct project *c = a->cfg;
	struct host *h = a->h;
	json_t *j = json_pack("{s:s, s:s, s:s, s:O, s:b, s:i, s:s, s:b, s:b, s:s}", "name", c->name,
			      "project_dir", c->dir, "main", c->main, "vars", c->vars, "dev",
			      h->dev, "concurrency", (int)h->lim.concurrency, "sdk_dir", h->sdk_dir,
			      "system_site_packages", h->system_site_packages,
			      "allow_entropy_at_import", c->allow_entropy_at_import, "mode", mode);
	if (!j)
		fatal("cannot encode the instance configuration");
	if (!h->dev) /* thaw serve: lines go to the host's log and tails */
		json_object_set_new(j, "capture_output", json_true());
	/* The sandbox enforces it (worker.c passes it on to sbx_enter); the SDK's
	 * fetch() refuses with a message that names the setting. */
	json_object_set_new(j, "outbound", json_boolean(!c->outbound_denied));
	if (c->outbound_denied && !h->sandbox && !a->outbound_unenforced_said) {
		log_warn("%s: outbound = false is not enforced with --no-sandbox: its code can "
			 "open sockets (fetch() still refuses)",
			 app_label(a));
		a->outbound_unenforced_said = 1;
	}
	if (a->version_id)
		json_object_set_new(j, "version", json_string(a->version_id));
	json_object_set_new(j, "bindings", bindings_init_json(a));
	int building = !strcmp(mode, "build") || !strcmp(mode, "base");
	json_object_set_new(j, "limits", inst_limits_init_json(in, building));
	if (snapshot)
		json_object_set_new(j, "snapshot", json_string(snapshot));
	if (snapshot && !strcmp(mode, "restore") && in->image_checked)
		json_object_set_new(j, "image_checked", json_true());
	if (in->is_builder && in->base)
		json_object_set_new(j, "base", json_string(in->base));
	json_object_set_new(j, "pid", json_integer(in->pid));
	if (snapshot && record_ws) {
		/* Sandboxed, it writes into a directory of its own; WS_DONE then
		 * moves the file beside the image (snapshot_ws_recorded). */
		char *dir = h->sandbox ? inst_out_dir(in) : NULL;
		char *ws = dir ? xasprintf("%s/image.ws", dir) : xasprintf("%s.ws", snapshot);
		if (dir || !h->sandbox)
			json_object_set_new(j, "record_ws", json_string(ws));
		free(ws);
	}
	if (h->sandbox) {
		json_t *sbx = sandbox_json(in, mode, snapshot);
		if (!sbx) {
			/* It would start unconfined: it starts not at all. */
			log_error("%s: no sandbox uid left (%u workers)", app_label(a),
				  SANDBOX_UID_SLOTS);
			json_decref(j);
			inst_close(in, "no sandbox uid left");
			return;
		}
		json_object_set_new(j, "sandbox", sbx);
	}
	if (a->secrets && json_object_size(a->secrets)) {
		/* A builder learns only the names (reading one at the top level is an
		 * error that says why); the image never holds a value. */
		json_t *names = json_array();
		const char *k;
		json_t *v;
		json_object_foreach(a->secrets, k, v)
			json_array_append_new(names, json_string(k));
		json_object_set_new(j, "secret_names", names);
		if (strcmp(mode, "build") != 0)
			json_object_set(j, "secrets", a->secrets);
	}
	if (building) {
		json_object_set_new(j, "snapshot_build", json_true());
		if (!a->is_base) /* the host's own image: no worker's cap */
			json_object_set_new(j, "max_snapshot_bytes",
					    json_integer((json_int_t)a->h->max_snapshot_bytes));
	}
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		fatal("cannot encode the instance configuration");
	in->t_init = now_ns();
	inst_send(in, THAW_F_INIT, 0, s, strlen(s));
	free(s);
	/* At once, not at the front's turn's end: a spare is spawned right
	 * after (pool_fill_spares), and the restore should not wait for it
	 * (corked, INIT waited ~3.5 ms, the spawn's time). */
	if (in->corked)
		inst_uncork(in);
}

struct instance *inst_spawn(struct app *a)
{
	struct instance *in = inst_take(a);
	if (!in)
		return NULL;
	app_link(a, in);
	a->nstarting++;
	snapshot_assign(a, in);
	inst_send_init(in, in->restoring ? "restore" : "boot", in->image, in->records_ws);
	log_debug("instance %u: pid %d %s", in->id, (int)in->pid,
		  in->restoring ? "restoring" : "booting");
	pool_fill_spares(a->h);
	return in;
}

/* --- the end of an instance --- */

void inst_close(struct instance *in, const char *why)
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
	if (a)
		snapshot_inst_closed(a, in);
	binding_instance_closed(in);
	in->state = INST_CLOSED;
	loop_timer_cancel(in->h->loop, &in->idle_timer);
	loop_del(in->h->loop, &in->w);
	close(in->w.fd);
	in->w.fd = -1;
	buf_free(&in->in);
	buf_free(&in->out);
	log_debug("instance %u: closed (%s)", in->id, why);
	/* EOF on its socket makes the worker exit; make sure it does. A
	 * stopped process reads no EOF: SIGKILL ends it, stopped or not. */
	if (!in->reaped && in->stopped)
		kill(in->pid, SIGKILL);
	else if (!in->reaped)
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
	if (in->corked_listed) /* (not expected: only the front's turn lists them) */
		for (struct instance **p = &h->corked_instances; *p; p = &(*p)->corked_next)
			if (*p == in) {
				*p = in->corked_next;
				break;
			}
	if (in->snap_path) {
		/* A builder that never handed its image over: whatever it wrote,
		 * finished or not, is garbage now that it is gone. */
		snap_remove(in->snap_path);
		free(in->snap_path);
	}
	if (in->out_dir) {
		/* A recorder closed as soon as its first request ended (idle
		 * timeout 0, draining) is gone before its WS_DONE is read: its
		 * working set is taken now, from a directory nothing writes any
		 * more (its PID namespace died with it). */
		if (in->app && in->records_ws && !in->ws_done)
			snapshot_ws_recorded(in);
		remove_tree(in->out_dir); /* what it left there */
		free(in->out_dir);
	}
	free(in->image);
	free(in->base);
	if (in->ow.fd >= 0) /* what it wrote last, then the pipe goes */
		out_io(h->loop, &in->ow, EPOLLIN);
	out_close(in);
	free(in->oline);
	capacity_reaped(in);
	inst_limits_free(in);
	inst_limits_spare_gone(in);
	in->state = INST_CLOSED;
	loop_defer_free(h->loop, in); /* its watch may be in this epoll batch */
}

/* The instance is gone (crashed, killed, broke the protocol, over a limit). */
void inst_lost(struct instance *in, const char *why)
{
	struct app *a = in->app;
	int was_starting = in->state == INST_STARTING && in->linked;
	int builder_died = a && in->is_builder && a->builder == in &&
			   in->generation == a->generation && in->state != INST_CLOSED;
	int restore_died = was_starting && in->restoring && in->generation == a->generation &&
			   snapshot_is_current(a, in);
	unsigned status = 502;
	char limit[160];
	const char *over = inst_limits_lost(in, &status, limit, sizeof limit);
	const char *body =
		over ? over
		     : "The worker instance serving this request exited before it answered.\n";
	int was_open = in->state != INST_CLOSED;
	if (was_open && !in->reaped)
		kill(in->pid, SIGKILL);
	/* Each request it held is answered, or its response cut short if some of
	 * it went out already; the log line counts both, so that every failed
	 * request can be traced to an instance's end. */
	unsigned answered = 0, cut = 0;
	while (in->streams) {
		struct hreq *r = in->streams;
		pool_detach(r);
		if (!r->rx_head) {
			front_fail(r, status, body);
			answered++;
		} else if (front_resp_abort(r, status, body)) {
			answered++;
		} else {
			cut++;
		}
	}
	if (was_open) {
		char held[96] = "";
		if (answered || cut)
			snprintf(held, sizeof held,
				 "; requests it held: %u answered %u, %u cut short", answered,
				 status, cut);
		log_warn("instance %u (pid %d) %s%s%s", in->id, (int)in->pid, why, limit, held);
	}
	inst_close(in, why);
	if (!a)
		return;
	if (builder_died && a->hooks && a->hooks->event) {
		/* Nothing else would end the build: say so (a deploy waits on it). */
		char *text = xasprintf("the snapshot builder (pid %d) %s before it wrote the image",
				       (int)in->pid, why);
		a->hooks->event(a, APP_SNAPSHOT_FAILED, text, 0);
		free(text);
	}
	if (restore_died && a->snap_path) {
		snapshot_restore_died(a);
		pool_dispatch(a);
		return;
	}
	if (was_starting && a->nstarting == 0) {
		/* It died before it was ready, without saying why: do not loop
		 * on respawning for the requests that waited on it. */
		unsigned n =
			pool_fail_pending(a, status,
					  over ? over
					       : "The worker instance exited while starting.\n");
		if (n)
			log_warn("instance %u (pid %d) %s while starting: %u requests waiting for "
				 "it "
				 "answered %u",
				 in->id, (int)in->pid, why, n, status);
	}
	pool_dispatch(a);
}

static void inst_drain(struct instance *in);

int pool_reaped(struct host *h, pid_t pid, int status)
{
	struct instance *in;
	for (in = h->all_instances; in; in = in->all_next)
		if (in->pid == pid)
			break;
	if (!in)
		return 0;
	in->reaped = 1;
	inst_limits_reaped(in, status);
	if (in->state != INST_CLOSED)
		inst_drain(in);
	if (in->state != INST_CLOSED) {
		char why[96];
		if (WIFSIGNALED(status))
			snprintf(why, sizeof why, "was killed by signal %d (%s)", WTERMSIG(status),
				 strsignal(WTERMSIG(status)));
		else
			snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(status));
		inst_lost(in, why);
	}
	struct app *a = in->app;
	inst_free(in);
	if (a && a->draining && a->hooks && a->hooks->unused && pool_unused(a))
		a->hooks->unused(a);
	return 1;
}

int pool_stopped(struct host *h, pid_t pid, int sig)
{
	struct instance *in;
	for (in = h->all_instances; in; in = in->all_next)
		if (in->pid == pid)
			break;
	if (!in || in->reaped)
		return 0;
	if (in->stopped)
		return 1;
	in->stopped = 1;
	struct app *a = in->app;
	log_warn("instance %u (pid %d) was stopped by signal %d (%s): it takes no more requests%s",
		 in->id, (int)in->pid, sig, strsignal(sig),
		 in->inflight ? " and is killed once those it holds have timed out" : "");
	switch (in->state) {
	case INST_CLOSED:
		kill(in->pid, SIGKILL); /* closed but not gone: EOF does not wake it */
		break;
	case INST_SPARE:
		inst_close(in, "stopped");
		pool_fill_spares(h);
		break;
	case INST_STARTING:
		if (in->is_builder) {
			/* Its build fails with the reason (a deploy waits on it). */
			char why[96];
			snprintf(why, sizeof why, "was stopped by signal %d (%s)", sig,
				 strsignal(sig));
			inst_lost(in, why);
			break;
		}
		/* Not lost: nothing is wrong with its code or image. Its
		 * requests wait for another instance. */
		inst_close(in, "stopped while starting");
		pool_dispatch(a);
		break;
	case INST_READY:
	case INST_DRAINING:
		/* What it holds runs to its time limit (pool_timeout): a stopped
		 * process burns no CPU, and a SIGCONT may still let it answer.
		 * A request whose response head came has no time limit left
		 * (front_resp_head): the process is killed once the longest
		 * limit of what it holds has passed (its end then answers or
		 * cuts short what is left), so that a stopped process never
		 * holds a streamed response, and its memory, for ever. */
		in->state = INST_DRAINING;
		if (in->inflight == 0) {
			inst_close(in, "stopped");
		} else if (!in->kill_timer.slot) { /* armed: by pool_timeout, sooner */
			double ms = h->lim.timeout_ms;
			for (struct hreq *r = in->streams; r; r = r->next)
				if (r->internal && r->internal_timeout_ms > ms)
					ms = r->internal_timeout_ms;
			loop_timer_arm(h->loop, &in->kill_timer, ms + 1000);
		}
		pool_dispatch(a);
		break;
	}
	return 1;
}

/* --- frames from an instance ---
 *
 * One handler per frame type an instance may send. Each returns 0, or -1
 * when the frame breaks the protocol (the instance is then lost). A handler
 * may close the instance; the reader stops there. */

static struct hreq *find_stream(struct instance *in, uint32_t stream)
{
	for (struct hreq *r = in->streams; r; r = r->next)
		if (r->stream == stream)
			return r;
	return NULL;
}

static int on_snap_done(struct instance *in, const struct thaw_frame *f)
{
	if (!in->is_builder || in->state != INST_STARTING)
		return -1;
	json_t *j = json_loadb((const char *)f->payload, f->len, 0, NULL);
	json_int_t bytes = 0;
	double ms = 0;
	const char *refused = NULL;
	if (j)
		json_unpack(j, "{s?I, s?F, s?s}", "bytes", &bytes, "ms", &ms, "base_refused",
			    &refused);
	snapshot_written(in, (uint64_t)bytes, ms, refused);
	json_decref(j);
	return 0;
}

static int on_ws_done(struct instance *in, const struct thaw_frame *f)
{
	(void)f;
	if ((in->state != INST_READY && in->state != INST_DRAINING) || !in->records_ws ||
	    in->ws_done)
		return -1; /* once: a second one is a worker trying its luck */
	in->ws_done = 1;
	snapshot_ws_recorded(in);
	return 0;
}

/* EXITING: it answers what it holds and goes (a MemoryError under its
 * limit): no new request is given it, its pending ones wait for another. */
static int on_exiting(struct instance *in, const struct thaw_frame *f)
{
	if (in->state != INST_READY && in->state != INST_DRAINING)
		return -1;
	inst_limits_exiting(in, (const char *)f->payload, f->len);
	in->state = INST_DRAINING;
	if (in->inflight == 0)
		inst_close(in, "exiting");
	return 0;
}

/* Where a restore's milliseconds went, from the READY's "times" (the
 * worker's CLOCK_MONOTONIC marks; the same clock as the host's). Untrusted:
 * only marks in order, between INIT and now, are shown. */
static void log_restore_times(struct instance *in, const json_t *t)
{
	if (thaw_log_level < LOG_DEBUG || !json_is_object(t))
		return;
	static const char *const keys[] = {"asked", "begun", "core", "mapped", "done", "ready"};
	uint64_t m[7];
	m[0] = in->t_init;
	for (size_t i = 0; i < 6; i++) {
		json_t *v = json_object_get(t, keys[i]);
		m[i + 1] = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
		if (m[i + 1] < m[i])
			return;
	}
	uint64_t now = now_ns();
	if (m[6] > now)
		return;
	long long pages = json_integer_value(json_object_get(t, "pages"));
	long long copied = json_integer_value(json_object_get(t, "copied"));
	long long maps = json_integer_value(json_object_get(t, "mappings"));
	log_debug("instance %u restored in %.2f ms: INIT in transit %.2f, setup %.2f, checks %.2f, "
		  "mapping %.2f (%lld mappings, %lld pages read in), populating %.2f (%lld pages), "
		  "Python %.2f, READY in transit %.2f",
		  in->id, ns_to_ms(now - m[0]), ns_to_ms(m[1] - m[0]), ns_to_ms(m[2] - m[1]),
		  ns_to_ms(m[3] - m[2]), ns_to_ms(m[4] - m[3]), maps, copied, ns_to_ms(m[5] - m[4]),
		  pages, ns_to_ms(m[6] - m[5]), ns_to_ms(now - m[6]));
}

static int on_ready(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
	if (in->state != INST_STARTING || in->is_builder)
		return -1;
	json_error_t je;
	json_t *j = json_loadb((const char *)f->payload, f->len, 0, &je);
	json_int_t conc = 0;
	const char *refused = NULL;
	double restore_ms = -1;
	if (j)
		json_unpack(j, "{s?I, s?s, s?F}", "concurrency", &conc, "restore_refused", &refused,
			    "restore_ms", &restore_ms);
	if (refused)
		snapshot_restore_refused(in, refused);
	else if (in->restoring)
		snapshot_restored(in, restore_ms);
	log_restore_times(in, json_object_get(j, "times"));
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
		return 0;
	}
	free(a->load_error);
	a->load_error = NULL;
	pool_dispatch(a);
	if (in->inflight == 0 && in->state == INST_READY) {
		if ((in->h->lim.idle_timeout_ms <= 0 || a->draining) && a->npending == 0)
			inst_close(in, "idle timeout 0");
		else
			loop_timer_arm(in->h->loop, &in->idle_timer, in->h->lim.idle_timeout_ms);
	}
	return 0;
}

static int on_load_error(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
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
		if (in->is_builder)
			snapshot_build_failed(a);
	}
	free(text);
	inst_close(in, "load error");
	pool_dispatch(a);
	return 0;
}

static int on_resp_head(struct instance *in, const struct thaw_frame *f)
{
	struct hreq *r = find_stream(in, f->stream);
	const char *err = NULL;
	if (!r)
		return 0; /* cancelled meanwhile */
	if (r->rx_head || f->len < 2)
		return -1;
	unsigned status = thaw_get_u16(f->payload);
	if (status < 200 || status > 599 ||
	    thaw_kv_validate(f->payload + 2, f->len - 2, &err) < 0) {
		log_warn("instance %u sent a bad response head (%s)", in->id,
			 err ? err : "status out of range");
		pool_detach(r);
		front_fail(r, 502, "The worker sent a malformed response.\n");
		return 0;
	}
	r->rx_head = 1;
	front_resp_head(r, status, f->payload + 2, f->len - 2);
	return 0;
}

static int on_resp_body(struct instance *in, const struct thaw_frame *f)
{
	struct hreq *r = find_stream(in, f->stream);
	if (!r)
		return 0;
	if (!r->rx_head || f->len > r->rx_credit) {
		log_warn("instance %u overran its flow-control window", in->id);
		return -1;
	}
	r->rx_credit -= f->len;
	front_resp_data(r, f->payload, f->len);
	return 0;
}

static int on_resp_end(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
	struct hreq *r = find_stream(in, f->stream);
	if (!r)
		return 0;
	if (!r->rx_head)
		return -1;
	pool_detach(r);
	front_resp_end(r);
	pool_dispatch(a);
	return 0;
}

static int on_resp_error(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
	struct hreq *r = find_stream(in, f->stream);
	if (!r)
		return 0;
	pool_detach(r);
	if (r->rx_head) {
		/* A response that broke after its head: a 500 if none of it went
		 * out yet, else cut short. */
		front_resp_abort(r, 500, "Internal Server Error\n");
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

static int on_window(struct instance *in, const struct thaw_frame *f)
{
	if (f->len != 4)
		return -1;
	if (f->stream >= THAW_STREAM_WORKER_BASE)
		return binding_on_window(in, f);
	struct hreq *r = find_stream(in, f->stream);
	if (!r)
		return 0;
	r->tx_credit += thaw_get_u32(f->payload);
	if (r->tx_credit > 64u * THAW_STREAM_WINDOW)
		return -1;
	pool_internal_body(r);
	front_wake(r);
	return 0;
}

static int on_log(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
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

static int on_call(struct instance *in, const struct thaw_frame *f)
{
	if (in->state != INST_READY && in->state != INST_DRAINING)
		return -1;
	return binding_on_call(in, f);
}

static int on_call_body(struct instance *in, const struct thaw_frame *f)
{
	return binding_on_call_body(in, f, 0);
}

static int on_call_end(struct instance *in, const struct thaw_frame *f)
{
	return binding_on_call_body(in, f, 1);
}

static int on_cancel(struct instance *in, const struct thaw_frame *f)
{
	if (f->stream < THAW_STREAM_WORKER_BASE)
		return -1; /* an instance cancels only its own calls */
	return binding_on_cancel(in, f);
}

typedef int (*frame_handler)(struct instance *in, const struct thaw_frame *f);

/* Instance-to-host types; a host-to-instance type coming the other way has
 * no handler and breaks the protocol. */
static const frame_handler frame_handlers[] = {
	[THAW_F_SNAP_DONE] = on_snap_done,
	[THAW_F_READY] = on_ready,
	[THAW_F_LOAD_ERROR] = on_load_error,
	[THAW_F_RESP_HEAD] = on_resp_head,
	[THAW_F_RESP_BODY] = on_resp_body,
	[THAW_F_RESP_END] = on_resp_end,
	[THAW_F_RESP_ERROR] = on_resp_error,
	[THAW_F_WINDOW] = on_window,
	[THAW_F_LOG] = on_log,
	[THAW_F_CALL] = on_call,
	[THAW_F_CANCEL] = on_cancel,
	[THAW_F_CALL_BODY] = on_call_body,
	[THAW_F_CALL_END] = on_call_end,
	[THAW_F_WS_DONE] = on_ws_done,
	[THAW_F_EXITING] = on_exiting,
};

static int on_frame(struct instance *in, const struct thaw_frame *f)
{
	if (f->type == THAW_F_HELLO)
		return 0;
	if (in->state == INST_SPARE)
		return -1; /* a blank process speaks only HELLO */
	frame_handler fn = NULL;
	if (f->type < sizeof frame_handlers / sizeof frame_handlers[0])
		fn = frame_handlers[f->type];
	return fn ? fn(in, f) : -1;
}

/* Handle the whole frames in in->in. Returns -1 once the instance is
 * closed (by a handler) or lost (a bad frame), else 0. */
static int inst_take_frames(struct instance *in)
{
	for (;;) {
		struct thaw_frame f;
		size_t used;
		int rc = thaw_frame_decode(buf_head(&in->in), buf_used(&in->in), &f, &used);
		if (rc == THAW_FRAME_NEED_MORE)
			return 0;
		if (rc != THAW_FRAME_OK) {
			char why[96];
			snprintf(why, sizeof why, "sent a bad frame (%s)", thaw_frame_strerror(rc));
			inst_lost(in, why);
			return -1;
		}
		if (on_frame(in, &f) < 0) {
			char why[96];
			snprintf(why, sizeof why, "broke the protocol (%s frame)",
				 thaw_frame_type_name(f.type));
			inst_lost(in, why);
			return -1;
		}
		if (in->state == INST_CLOSED)
			return -1;
		buf_consume(&in->in, used);
	}
}

enum { RECV_MORE, RECV_AGAIN, RECV_EOF, RECV_FAILED, RECV_CLOSED };

/* One read from the instance's socket (at most 64 KiB, *got bytes), then its
 * whole frames handled: RECV_MORE, or why there is no more to handle now. */
static int inst_recv(struct instance *in, size_t *got)
{
	for (;;) {
		uint8_t *dst = buf_reserve(&in->in, 65536);
		ssize_t n = recv(in->w.fd, dst, 65536, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? RECV_AGAIN : RECV_FAILED;
		if (n == 0)
			return RECV_EOF;
		in->in.len += (size_t)n;
		*got = (size_t)n;
		return inst_take_frames(in) < 0 ? RECV_CLOSED : RECV_MORE;
	}
}

static void inst_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct instance *in = w->arg;
	if (in->state == INST_CLOSED)
		return; /* closed earlier in this batch */
	if (events & EPOLLOUT) {
		inst_flush(in);
		if (in->state != INST_CLOSED && in->calls)
			binding_on_writable(in);
	}
	if (in->state == INST_CLOSED || !(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	/* Bounded work per wake-up so one chatty instance cannot starve others. */
	for (int round = 0; round < 16; round++) {
		size_t got = 0;
		int r = inst_recv(in, &got);
		if (r == RECV_EOF || r == RECV_FAILED)
			inst_lost(in,
				  r == RECV_EOF ? "closed its connection" : "connection failed");
		if (r != RECV_MORE || got < 65536)
			return;
	}
}

/* Its process is gone: handle what it sent before it went (a builder's
 * SNAP_DONE, a last response) before calling it lost. The kernel holds at
 * most the socket's buffer, so this ends; EOF and errors are the caller's. */
static void inst_drain(struct instance *in)
{
	size_t got;
	while (in->state != INST_CLOSED && in->w.fd >= 0 && inst_recv(in, &got) == RECV_MORE)
		;
}
