/*
 * Inside the pool: what instance.c, pool.c and snapshot.c share, and nothing
 * outside src/host/ may include. The public side (what front.c, thaw dev
 * and thaw serve call) is in host.h.
 *
 *   instance.c  one process: spawn, spares, frames both ways, close, reap
 *   pool.c      an app's requests: pending queue, streams, dispatch,
 *               generations, shutdown
 *   snapshot.c  an app's image: build, adopt, use, drop, working set
 *
 * The state machines are written out at the top of instance.c (an
 * instance) and snapshot.c (an app's image).
 */
#ifndef THAW_HOST_POOL_INTERNAL_H
#define THAW_HOST_POOL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "host/host.h"
#include "host/loop.h"
#include "host/memstat.h"
#include "host/service.h"

struct thaw_frame;
struct bcall;

enum inst_state {
	INST_SPARE,    /* pre-spawned blank process, waiting for work */
	INST_STARTING, /* spawned, INIT sent, not READY yet */
	INST_READY,
	INST_DRAINING, /* takes no new request; closed once idle */
	INST_CLOSED,   /* socket closed, waiting to be reaped */
};

#define INST_ENDED_MAX 64u

/*
 * One `thaw worker` process. Owned by its host (on h->all_instances from
 * spawn to reap); freed (deferred, loop_defer_free) only after its process
 * has been reaped. in->app is NULL while it is a spare.
 */
struct instance {
	struct host *h;
	struct app *app;
	unsigned id;
	pid_t pid;
	enum inst_state state;
	unsigned generation; /* of its app's code when it was given the app */
	struct loop_watch w;
	/* Its fds 1 and 2: a pipe whose lines reach the log as the worker's
	 * (instance.c, out_io), read until EOF or its free; fd -1 when closed. */
	struct loop_watch ow;
	char *oline; /* a line being gathered (INST_LINE_MAX), allocated on first use */
	size_t oused;
	int ocut;    /* the last line went out cut at INST_LINE_MAX: a newline next ends it */
	int want_out; /* EPOLLOUT registered */
	int corked;   /* frames collect in out, written by inst_uncork (one write for several) */
	struct instance *corked_next; /* on h->corked_instances (host.h), or NULL */
	int corked_listed;
	struct buf in, out;
	unsigned inflight, concurrency;
	struct hreq *streams; /* requests it serves (doubly linked) */
	uint64_t t_spawn, t_ready, last_used;
	uint64_t t_init; /* INIT sent */
	struct loop_timer idle_timer, kill_timer;
	int linked;        /* on its app's live list */
	int is_builder;    /* builds a snapshot; never serves */
	int restoring;     /* INIT asked for a restore */
	int from_snapshot; /* READY came from a restored image */
	int records_ws;    /* asked to record the image's working set */
	int ws_done;       /* it sent WS_DONE (once only) */
	unsigned served;   /* requests it has taken */
	char *snap_path;   /* builder: the file it writes (owned until handed over) */
	char *image;       /* restoring: the image it was given (owned) */
	int image_checked; /* ...which the host has checked (INIT "image_checked") */
	char *base;        /* builder: the base image it restores first, or NULL (owned) */
	/* Sandboxed builder or working-set recorder: the only directory it may
	 * write, made for it beside its app's images, removed with it (owned). */
	char *out_dir;
	/* Sandboxed spare: the control group it joined itself at start, until
	 * inst_limits_apply takes it over (limits.c). */
	struct cgroup *spare_cg;
	struct bcall *calls; /* binding calls in flight (binding.c) */
	unsigned ncalls;
	uint64_t call_bodies; /* request body bytes its calls in flight declared */
	uint64_t call_results; /* result bytes its calls hold in memory (binding.c) */
	unsigned spooled_calls; /* its calls in flight with a spooled body (binding.c) */
	/* Requests that left it lately, for the calls of their ctx.wait_until
	 * tasks (binding.c: call_depth): the last INST_ENDED_MAX, and when one
	 * of each service depth last left. */
	struct ended_stream {
		uint64_t chain, t_end;
		uint32_t stream;
		unsigned depth;
	} ended[INST_ENDED_MAX];
	unsigned ended_next;
	uint64_t depth_ended_ns[SERVICE_DEPTH_MAX + 1];
	struct instance *next, *prev;         /* app's live list, or spares */
	struct instance *all_next, *all_prev; /* host's list of every process */
	int reaped;
	uint64_t evict_bytes; /* evicted: its memory, counted as gone until its reap (capacity.c) */
	int stopped; /* reported stopped (SIGSTOP...): takes no work, killed when closed */
	struct inst_limits *limits; /* its cgroup and CPU sampling (limits.c); NULL: none */
	/* Its memory as the last sweep read it (memstat.c): mem_ok once read. */
	struct memstat mem;
	uint64_t mem_sweep;
	int mem_ok;
};

/* The longest line of an instance's raw output: longer ones are cut in lines
 * of this size. And what one wake-up reads of it (then the others' turn). */
#define INST_LINE_MAX 4096u
#define INST_OUT_BUDGET (64u * 1024)

/* Bytes queued towards an instance above which uploads pause. */
#define INST_OUT_HIGH (1u << 20)

/* --- instance.c --- */

/* Queue a frame for the instance and try to send it: 0, or -1 if it is
 * closed or the payload too large (nothing queued). Borrows p, p1, p2. */
int inst_send(struct instance *in, uint8_t type, uint32_t stream, const void *p, size_t len);
int inst_send2(struct instance *in, uint8_t type, uint32_t stream, const void *p1, size_t l1,
	       const void *p2, size_t l2);
/* Write what in->corked collected (several frames, one write). */
void inst_uncork(struct instance *in);
/* A blank process (a spare if one waits, else a new one) given to app a,
 * STARTING, of a's current generation, not linked anywhere yet; NULL if no
 * process could be started. The caller sends INIT (inst_send_init). */
struct instance *inst_take(struct app *a);
/* INIT: a's configuration plus mode ("boot", "restore", "build"), the
 * image to restore or write (borrowed; NULL to boot), and whether to
 * record the working set. */
void inst_send_init(struct instance *in, const char *mode, const char *snapshot, int record_ws);
/* A sandboxed instance's only writable directory (its app's snap_dir/sbx-ID,
 * given to its worker's uid), made on first use and removed with it; NULL
 * (logged) if it cannot be made. */
char *inst_out_dir(struct instance *in);
/* A new serving instance for a: restores a's image if it has one ready,
 * else boots. Linked on a's live list, counted in nstarting. */
struct instance *inst_spawn(struct app *a);
/* Stop giving it work and let the process go: leaves every list, closes
 * its socket (EOF makes the worker exit), SIGKILL in 2 s if not reaped
 * (at once if it was stopped: EOF does not wake it).
 * Its requests must have been detached already. Idempotent. */
void inst_close(struct instance *in, const char *why);
/* The instance is gone or must go now (crashed, killed, broke the
 * protocol, over a limit): SIGKILL, its requests answered (502, or 503
 * when a limit was the cause), closed; see the state machine. */
void inst_lost(struct instance *in, const char *why);

/* --- limits.c: an instance's resource limits (docs/limits.md) --- */

/* in was just given its app (inst_take): its cgroup is made, limited and
 * joined before it sees INIT. 0, or -1 (logged): it must not run. */
int inst_limits_apply(struct instance *in);
/* INIT's "limits" for in (returns new); a builder gets no file size limit
 * (it writes the image). */
json_t *inst_limits_init_json(const struct instance *in, int builder);
/* r was just attached to in: its CPU time counts from now. */
void inst_limits_request_started(struct instance *in, struct hreq *r);
/* in's process was reaped with status (before what it held is answered). */
void inst_limits_reaped(struct instance *in, int status);
/* in is lost: when one of its limits was why, the body to answer its
 * requests with, *status (503), and what to add to the log line in why;
 * else NULL. */
const char *inst_limits_lost(struct instance *in, unsigned *status, char *why, size_t whylen);
/* in said EXITING with why (not NUL-terminated): "memory" makes its
 * requests' answers, should it die holding some, the memory limit's. */
void inst_limits_exiting(struct instance *in, const char *why, size_t len);
/* in is being freed: its group is emptied and removed (retried while its
 * processes leave). */
void inst_limits_free(struct instance *in);
/* A control group made for a spare about to be spawned (its id), with its
 * cgroup.procs files opened into fds (*nfds of them, at most
 * THAW_CGROUP_MAX), or NULL (no cgroups: limits.c attaches at take, or
 * not at all). */
struct cgroup *inst_limits_spare_cgroup(struct host *h, unsigned id, int *fds, int *nfds);
/* A spare that never got work is gone: its group goes (after its reap). */
void inst_limits_spare_gone(struct instance *in);
/* The number of a's worker's live instances changed: each now weighs 100/n
 * in the contest for CPU, so that every worker weighs the same. */
void inst_limits_share(struct app *a);
/* The host's instance groups, or NULL (no cgroups). */
struct cgroup_host *host_limits_cgroups(const struct host *h);
/* What in holds of memory that is its own: its group's memory less page
 * cache, or without a memory cgroup its private resident pages. 0, or -1. */
int inst_limits_memory(const struct instance *in, uint64_t *bytes);

/* --- capacity.c: the host's room for instances (docs/limits.md) --- */

/* May a start one more instance now? Evicts idle instances (least recently
 * used first, any worker) to make room; 1 yes (a leaves the waiters), 0 no:
 * the caller makes it wait (capacity_wait). */
int capacity_admit(struct app *a);
/* a waits for room (FIFO of apps; a no-op when it already waits). */
void capacity_wait(struct app *a);
/* a no longer waits (nothing pending, or disposed). */
void capacity_unwait(struct app *a);
/* Room may have come: an instance left its app's list, went idle or was
 * reaped. Waiting apps are dispatched after the current event. */
void capacity_kick(struct host *h);
/* in's process was reaped: the memory counted as leaving with it has left. */
void capacity_reaped(struct instance *in);

/* --- binding.c: calls of bindings by worker code (frame.h: CALL) --- */

/* Frames of the call streams; 0, or -1 when the frame breaks the protocol. */
int binding_on_call(struct instance *in, const struct thaw_frame *f);
int binding_on_call_body(struct instance *in, const struct thaw_frame *f, int end);
int binding_on_window(struct instance *in, const struct thaw_frame *f);
int binding_on_cancel(struct instance *in, const struct thaw_frame *f);
/* The instance's output queue drained (some): calls held back go on. */
void binding_on_writable(struct instance *in);
/* The app's bindings as INIT's "bindings": [{"name", "type"}] (returns new). */
struct json_t;
struct json_t *bindings_init_json(const struct app *a);
/* The instance is closing: its calls end with it. */
void binding_instance_closed(struct instance *in);
/* Request r (borrowed) left the instance (pool_detach): its depth and
 * chain are kept a while, for calls made after it (binding.c). */
void binding_stream_ended(struct instance *in, struct hreq *r);

/* --- pool.c --- */

/* Hand pending requests to instances with a free slot; fail them all if
 * the code does not load; start an instance if those starting cannot take
 * them. */
void pool_dispatch(struct app *a);
/* r no longer belongs to its instance (answered, failed, cancelled): the
 * instance may go idle, drain or close. r's response is not touched. */
void pool_detach(struct hreq *r);
/* An internal request's body: send what the credit allows, REQ_END after it. */
void pool_internal_body(struct hreq *r);
/* Answer every request waiting for an instance of a with status and body;
 * how many there were. */
unsigned pool_fail_pending(struct app *a, unsigned status, const char *body);
/* Answer those that arrived before t (ns) with status, body and a
 * Retry-After of retry_after seconds: how many. */
unsigned pool_fail_waited(struct app *a, uint64_t t, unsigned status, const char *body,
			  unsigned retry_after);

/* --- snapshot.c --- */

/* Decide how a new serving instance of a starts: from a's image when one
 * is ready (sets in->restoring, in->image), and whether it is the one that
 * records the working set (in->records_ws). */
void snapshot_assign(struct app *a, struct instance *in);
/* Was in restored from the image a uses now (not an older one)? */
int snapshot_is_current(const struct app *a, const struct instance *in);
/* in is closing: what its app's image state loses with it (a builder, the
 * working-set recorder). */
void snapshot_inst_closed(struct app *a, struct instance *in);
/* A builder sent SNAP_DONE (bytes, write ms; refused: why it could not
 * restore the base it was given, or NULL): close it and hand the image to
 * the owner (SNAPSHOT_ADOPTING), or use it at once (thaw dev). */
void snapshot_written(struct instance *in, uint64_t bytes, double write_ms, const char *refused);
/* a is going away: off the base's waiting list (and no longer the base). */
void snapshot_app_gone(struct app *a);
/* WS_DONE from a sandboxed recorder: its working set goes beside its image. */
void snapshot_ws_recorded(struct instance *in);
/* READY from a restoring instance: the image was refused (why) and it
 * booted instead, or it restored in restore_ms. */
void snapshot_restore_refused(struct instance *in, const char *why);
void snapshot_restored(struct instance *in, double restore_ms);
/* An instance restoring a's current image died before READY: drop the
 * image and build anew (the caller dispatches). */
void snapshot_restore_died(struct app *a);
/* a's snapshot build of the current generation failed to load the code:
 * nothing of this generation may serve. */
void snapshot_build_failed(struct app *a);
/* A new generation (reload): the image, a build in progress and an
 * adoption under way all belong to the old code. */
void snapshot_new_generation(struct app *a);
/* Host shutdown: remove a's image unless its owner keeps images. */
void snapshot_shutdown(struct app *a);

#endif
