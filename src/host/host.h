/*
 * The host: one event loop that owns the HTTP front (libmicrohttpd), the
 * instance pools and every child process. See DESIGN.md, "A request's way".
 *
 * Ownership: an hreq belongs to its MHD connection and is freed when MHD says
 * the request is complete. While it is waiting for an instance it sits on its
 * app's pending list; while an instance serves it, on that instance's stream
 * list. Which of its fields the front and the pool each own: see struct hreq.
 * A struct app belongs to whoever embeds it (thaw dev, a version in thaw
 * serve); the pool only links instances and requests to it. An instance
 * (private to the pool: pool_internal.h) belongs to the host and is freed
 * only after its process has been reaped. The instance and snapshot state
 * machines are written out at the top of instance.c and snapshot.c.
 */
#ifndef THAW_HOST_HOST_H
#define THAW_HOST_HOST_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "common/buf.h"
#include "host/loop.h"
#include "host/proxy.h"
#include "project/limits.h"

struct MHD_Daemon;
struct MHD_Connection;
struct project;

struct host_limits {
	uint64_t max_header_bytes;
	uint64_t max_body_bytes;
	double timeout_ms;      /* wall time from arrival to response head */
	double idle_timeout_ms; /* idle instances are evicted after this */
	unsigned concurrency;   /* requests in flight per instance */
	/* The host's room (capacity.c, docs/limits.md): */
	unsigned max_instances;            /* serving instances of all workers together */
	unsigned max_instances_per_worker; /* of one worker, its versions together */
	uint64_t max_memory;               /* bytes, all instances together; 0: the default */
	double queue_timeout_ms;           /* a cold start waits this long for room, then 503 */
};

struct hreq;
struct app;
struct host;
struct assets;
struct assets_reply;
struct binding_kind; /* binding.c */

/* A binding of an app: a name in the worker's env, served by the host
 * (binding.c). The first kind is the assets fetcher; issue 11's storage
 * bindings are more kinds on the same list. */
struct binding {
	char *name;
	const struct binding_kind *kind; /* binding.h */
	void *ctx;     /* the kind's state for this binding */
	unsigned refs; /* the app's, and each call's in flight (binding.c) */
	struct binding *next;
};
struct instance; /* a worker process: private to the pool (pool_internal.h) */

/* An app's image (transitions: snapshot.c). */
enum snap_state {
	SNAPSHOT_NONE,     /* no image: instances boot */
	SNAPSHOT_BUILDING, /* a builder instance is making one */
	SNAPSHOT_ADOPTING, /* written; its owner is checking and storing it (off the loop) */
	SNAPSHOT_READY,    /* snap_path is the image instances restore from */
};

/* What a pool tells its owner (thaw serve) about its app. */
enum app_event {
	APP_SNAPSHOT_BUILT,  /* detail: the image path; num: its size in bytes */
	APP_SNAPSHOT_FAILED, /* detail: the load error of the build (traceback) */
	APP_RESTORE_REFUSED, /* detail: why the image was refused */
	APP_RESTORED,        /* num: restore ms */
	APP_WS_RECORDED,     /* detail: the image whose IMAGE.ws was kept; num: its bytes */
};

struct app_hooks {
	/* A builder wrote tmp_path. The owner checks and stores it without
	 * blocking the loop, then calls pool_snapshot_adopted() with where the
	 * image now lives, or NULL and why it was refused. NULL hook: the
	 * image is used where the builder wrote it (thaw dev). */
	void (*adopt_snapshot)(struct app *a, const char *tmp_path);
	void (*event)(struct app *a, enum app_event ev, const char *detail, double num);
	/* A line the worker printed; r is the request it belongs to, or NULL. */
	void (*output)(struct app *a, struct hreq *r, uint32_t stream, int channel,
		       const char *text, size_t len);
	/* A draining app's last instance is gone (pool_unused holds): the owner
	 * may dispose of it, but not from inside this call. */
	void (*unused)(struct app *a);
};

struct app {
	struct host *h;
	struct project *cfg;     /* what its instances run (INIT is made from it) */
	json_t *secrets;         /* name -> value, or NULL: given to instances that serve,
				  * never to a snapshot builder (owned by the app's owner) */
	struct assets *assets;   /* static assets served before the worker, or NULL */
	struct binding *bindings; /* by name: bindings_setup */
	char *state_dir;          /* the bindings' state (KV, D1, ...): owned by the app's owner */
	const char *version_id;  /* thaw serve: the version's id, told to instances */
	/* snapshots */
	int snapshots;           /* build and restore them */
	char *snap_dir;
	enum snap_state snap_state;
	char *snap_path;         /* valid image of the current generation */
	unsigned snap_builds;    /* builds tried for the current generation */
	int snap_ws_asked;       /* an instance was asked to record the working set */
	int snap_checked;        /* snap_path passed snap_check_file on this host */
	struct instance *builder;
	uint64_t adopt_bytes;     /* the image being adopted: its size, */
	double adopt_write_ms, adopt_build_ms; /* write and build times, for the log */
	unsigned generation;
	char *load_error; /* set when the current generation failed to load */
	int build_failed; /* its snapshot build failed: nothing of it may serve */
	struct instance *instances;
	unsigned nlive, nstarting;
	struct hreq *pending_head, *pending_tail;
	unsigned npending;
	/* thaw serve */
	const struct app_hooks *hooks; /* NULL in thaw dev */
	void *owner;
	const char *label;   /* "name" or "name@version" in logs */
	int keep_snapshots;  /* the owner (the store) removes images, never the pool */
	int draining;        /* out of the deployment: no instance kept idle */
	/* Paths under its files that its sandbox covers with an empty directory
	 * (thaw dev: the project's .thaw/); owned by the owner, may be NULL. */
	json_t *sandbox_hide;
	int limits_clamped_said; /* its limits over the host's caps were logged (limits.c) */
	/* Waiting for room on the host (capacity.c): on h's FIFO of such apps. */
	int room_waiting;
	struct app *room_next, *room_prev;
	int outbound_unenforced_said; /* outbound = false under --no-sandbox was logged */
	/* The base image (snapshot.c): is this app the host's base? Is its
	 * build waiting for the base (on h->base_waiting, by base_next)? The
	 * base its READY image was built on (the sandbox shows it), or NULL. */
	int is_base;
	uint64_t base_ident[4]; /* the base: its file's device, inode, size, mtime (ns) */
	int base_waiting;
	struct app *base_next;
	char *snap_base;
};

/*
 * One HTTP request, from its target to the end of its response. Every field
 * has one writer, the front (front.c) or the pool (pool.c, instance.c); the
 * other side reads only where noted. The front owns the request and its
 * HTTP response; the pool owns where the request waits or runs and its
 * stream to the instance (frames, credits). They speak through functions:
 * pool_submit/_send_body/_end_body/_grant/_forget/_timeout one way,
 * front_wake/_fail/_resp_head/_resp_data/_resp_end/_resp_abort the other.
 */
struct hreq {
	struct host *h;
	struct app *app; /* set by the router (thaw serve) or pool_submit */

	/* The front's. */
	struct MHD_Connection *conn;
	struct hreq *all_next, *all_prev; /* host's list of live requests */
	char *uri;          /* raw request target (the router may rewrite it); read by all */
	const char *method; /* read by the pool (logs, dev error pages) */
	struct buf head;    /* encoded REQ_HEAD payload: the pool sends and frees it */
	uint64_t t_arrive;  /* read by the pool (did it wait for a boot?) */
	uint64_t t_head;
	char rid[17]; /* request id (thaw serve), "" in dev */
	int started, suspended, queued;
	uint64_t body_bytes; /* taken by pool_send_body */
	int upload_done;     /* read by the pool: no upload waits for credit */
	int discarding;
	uint64_t discarded;
	int resp_head, resp_end, resp_failed;
	unsigned resp_status;
	struct buf resp_headers; /* kv list as received */
	struct buf resp_body;
	int spill_fd;        /* -1, or an unlinked file holding early response bytes */
	uint64_t spill_wr, spill_rd;
	uint64_t pregranted; /* bytes credited back on arrival, not yet sent */
	unsigned fail_status;
	unsigned fail_retry_after; /* seconds, for a Retry-After header; 0: none */
	char *fail_body;
	struct assets_reply *asset; /* answered from static assets (front.c), or NULL */
	int worker_only; /* set by the router for thaw serve's deploy check: never from assets,
			  * and an instance for it even on a host without room (pool.c) */
	struct loop_timer timeout; /* arrival to response head; expiry asks pool_timeout */
	/* An internal request (front_internal_submit: no connection, e.g. a
	 * scheduled event): its owner's callback, called once it has ended. */
	int internal, internal_done;
	struct buf internal_body; /* its request body, whole; sent within the credit */
	void (*internal_cb)(struct hreq *r, void *arg);
	void *internal_arg;
	struct loop_timer internal_finish;
	/* A streamed internal request (front_internal_stream): its response
	 * goes to the sink as it arrives, and credit returns only through
	 * front_internal_grant. NULL: kept up to 4 KiB, credited at once. */
	const struct internal_sink *sink;
	void *sink_arg;
	/* Service-binding hops from a client's request (0: from a client, a
	 * cron or a queue); set by the host, never by a worker (service.c). */
	unsigned depth;
	double internal_timeout_ms; /* an internal request's limit (front_internal_submit) */
	/* The chain of service calls it belongs to (binding.c: call_depth):
	 * 0 until a call names it, then its own id if it started the chain. */
	uint64_t chain;
	/* A pinned internal request (Durable Objects: one instance per object):
	 * pin_instance, when it is a ready instance of the app, takes it
	 * whatever its load; on_attach(arg, id) is called once, with the id of
	 * the instance it went to, or with 0 when it ended without one. */
	unsigned pin_instance;
	void (*on_attach)(void *arg, unsigned instance_id);
	void *attach_arg;

	/* The pool's. */
	struct instance *inst;    /* serving it, or NULL */
	uint32_t stream;
	struct hreq *next, *prev; /* pending list or instance streams */
	int pending;              /* on its app's pending list */
	const char *start_desc;   /* read by the front (Server-Timing, dev log) */
	uint64_t t_assigned;      /* likewise */
	uint32_t tx_credit;       /* request body bytes the instance may still take */
	int req_end_sent;
	int body_sending;         /* in pool_internal_body (sending may flush, which calls it) */
	int rx_head;              /* the instance sent RESP_HEAD */
	uint32_t rx_credit;       /* response credit the instance still holds */
	uint32_t rx_unacked;      /* bytes sent to the client, not yet credited back */
	uint64_t cpu_start_ns;    /* its instance's CPU time when it was attached (limits.c) */
};

struct host {
	struct loop *loop;
	struct loop_watch signals; /* SIGINT, SIGTERM (stop), SIGCHLD (host_reap) */
	struct host_limits lim;
	int dev;
	struct MHD_Daemon *mhd;
	struct loop_watch mhd_watch;
	int listen_fd;
	struct app *app; /* thaw dev serves one app */
	/* thaw serve: pick the app for a request (NULL: answered with status
	 * and msg). May rewrite r->uri (a path prefix stripped). */
	struct app *(*route)(struct host *h, struct hreq *r, unsigned *status, char *msg,
			     size_t msglen);
	uint64_t rid_prefix, rid_counter;
	struct child *children; /* helper children (child.h) */
	struct instance *all_instances;
	struct hreq *all_reqs;
	uint32_t next_stream;
	unsigned next_instance_id;
	const char *sdk_dir;
	int system_site_packages;
	int server_timing; /* Server-Timing on every response (thaw dev; serve --server-timing) */
	int test_scheduled; /* thaw dev --test-scheduled: /__scheduled fires the scheduled handler */
	uint64_t max_snapshot_bytes;
	/* Service bindings (service.c): the app that serves a request for the
	 * worker named service now (thaw dev: the projects it was given;
	 * thaw serve: the worker's deployment, picked like a request), or
	 * NULL with why. NULL hook: no service is reachable. */
	struct app *(*service_app)(struct host *h, const char *service, char *why, size_t whylen);
	/* --trust-proxy: peers whose X-Forwarded-For/-Proto are believed (proxy.h) */
	struct proxy_list trusted_proxies;
	struct instance *spares;
	unsigned nspares, spares_target;
	unsigned snap_counter;
	/* The base image (snapshot.c, docs/snapshots.md "The base image"): an
	 * app of its own, set up by the owner (thaw dev, thaw serve), whose
	 * READY image every other app's snapshot build restores first. NULL:
	 * builds start from a fresh interpreter. Apps whose build waits for it
	 * are on base_waiting. */
	struct app *base;
	struct app *base_waiting;
	int no_base; /* --no-base-image: every build boots its own interpreter */
	int stopping; /* pool_shutdown has begun: nothing new is built */
	struct executor *executor; /* the state executor (executor.h), started on first use */
	/* Queues' files (one per queue name): host-wide, because a queue is
	 * shared by the workers of a host (thaw dev: STATE/queues; thaw serve:
	 * DATA/state/_queues). Owned by the host's owner; NULL: no queues. */
	char *queue_dir;
	/* The sandbox (spawn.h, src/worker/sandbox.h, docs/security.md): on
	 * unless --no-sandbox. Each worker's instances run as its own uid,
	 * sandbox_uid_base + its slot (slots given out by name, per host run). */
	int sandbox;
	uint32_t sandbox_uid_base;
	char **sandbox_names;       /* slot i + 1 is sandbox_names[i]'s */
	unsigned nsandbox_names;
	/* The directories whose trees instances may be shown parts of (their
	 * versions, images, output directories, the SDK): every spare gets a
	 * clone of each before it drops the host's root (spawn.h). */
	/* Where sandboxed builders and working-set recorders get their
	 * directory (NULL: beside their app's images, in its snap_dir). */
	char *sandbox_out_base;
	int sandbox_roots_fd;       /* memfd: the paths, one per line; -1 until set */
	unsigned nsandbox_roots;
	/* Instances' resource limits (limits.c): the values of workers that set
	 * none, the most a worker may set (--limit, --max-limit), and how they
	 * are enforced (the host's cgroups; NULL before host_loop_start). */
	struct project_limits limit_defaults, limit_caps;
	struct host_limits_state *limits_state;
	/* The host's room for instances (capacity.c); NULL before host_loop_start. */
	struct host_capacity *capacity;
	unsigned ninstances; /* serving instances (on an app's live list), all apps */
	/* The instances' memory sampler (memstat.h); NULL when not started. */
	struct host_memory *memory;
	/* While set (pool_cork: the front's MHD turn), frames for instances
	 * collect in their buffers; the instances are on corked_instances until
	 * pool_uncork writes each one's in one send (instance.c). */
	int cork_instances;
	struct instance *corked_instances;
	int log_pending; /* the dev log has lines in stdout's buffer (front.c) */
};

/* "name", or "name@version" in thaw serve: how logs name an app. */
const char *app_label(const struct app *a);

/* options.c: the options thaw dev and thaw serve share. */
enum {
	HOST_OPT_IDLE_TIMEOUT = 'I',
	HOST_OPT_TIMEOUT = 'T',
	HOST_OPT_MAX_BODY = 'B',
	HOST_OPT_MAX_HEADER = 'H',
	HOST_OPT_MAX_INSTANCES = 'M',
	HOST_OPT_CONCURRENCY = 'C',
	HOST_OPT_SYSTEM_SITE = 'S',
	HOST_OPT_MAX_SNAPSHOT = 'X',
	HOST_OPT_SERVER_TIMING = 0x100,
	HOST_OPT_TRUST_PROXY = 0x101,
	HOST_OPT_NO_SANDBOX = 0x102,
	HOST_OPT_SANDBOX_UID_BASE = 0x103,
	HOST_OPT_LIMIT = 0x104,
	HOST_OPT_MAX_LIMIT = 0x105,
	HOST_OPT_MAX_PER_WORKER = 0x106,
	HOST_OPT_MAX_MEMORY = 0x107,
	HOST_OPT_QUEUE_TIMEOUT = 0x108,
	HOST_OPT_NO_BASE = 0x109,
};
#define HOST_LONG_OPTIONS                                                                          \
	{"idle-timeout", required_argument, NULL, HOST_OPT_IDLE_TIMEOUT},                           \
	{"timeout", required_argument, NULL, HOST_OPT_TIMEOUT},                                     \
	{"max-body-bytes", required_argument, NULL, HOST_OPT_MAX_BODY},                             \
	{"max-header-bytes", required_argument, NULL, HOST_OPT_MAX_HEADER},                         \
	{"max-instances", required_argument, NULL, HOST_OPT_MAX_INSTANCES},                         \
	{"concurrency", required_argument, NULL, HOST_OPT_CONCURRENCY},                             \
	{"system-site-packages", no_argument, NULL, HOST_OPT_SYSTEM_SITE},                          \
	{"max-snapshot-mb", required_argument, NULL, HOST_OPT_MAX_SNAPSHOT},                        \
	{"server-timing", no_argument, NULL, HOST_OPT_SERVER_TIMING},                               \
	{"trust-proxy", required_argument, NULL, HOST_OPT_TRUST_PROXY},                             \
	{"no-sandbox", no_argument, NULL, HOST_OPT_NO_SANDBOX},                                     \
	{"sandbox-uid-base", required_argument, NULL, HOST_OPT_SANDBOX_UID_BASE},                   \
	{"limit", required_argument, NULL, HOST_OPT_LIMIT},                                         \
	{"max-limit", required_argument, NULL, HOST_OPT_MAX_LIMIT},                                 \
	{"max-instances-per-worker", required_argument, NULL, HOST_OPT_MAX_PER_WORKER},             \
	{"max-memory", required_argument, NULL, HOST_OPT_MAX_MEMORY},                               \
	{"queue-timeout", required_argument, NULL, HOST_OPT_QUEUE_TIMEOUT},                         \
	{"no-base-image", no_argument, NULL, HOST_OPT_NO_BASE}
/* Limits and snapshot size at their defaults. */
void host_defaults(struct host *h);
/* Apply one of HOST_LONG_OPTIONS: 1 done, 0 not one of them, -1 bad value
 * (the message, prefixed with cmd, is on stderr). */
int host_option(struct host *h, const char *cmd, int c, const char *arg);
/* Block SIGINT, SIGTERM and SIGCHLD (they arrive in the loop through a
 * signalfd: SIGCHLD reaps, the others stop the loop), ignore SIGPIPE, and
 * make h->loop. 0, or -1 with err. */
int host_loop_start(struct host *h, char *err, size_t errlen);
/* The help text of the sandbox's options, for thaw dev's and thaw serve's usage. */
#define HOST_SANDBOX_USAGE                                                                         \
	"  --no-sandbox             run instances unconfined, as this user, seeing this\n"          \
	"                           machine (for debugging only: worker code is then\n"              \
	"                           trusted with everything this host can reach)\n"                 \
	"  --sandbox-uid-base N     worker uids are N+1, N+2, ... (default 2000000000)\n"
/* The help text of the host's room (capacity.c), for both commands' usage. */
#define HOST_CAPACITY_USAGE                                                                        \
	"  --max-instances N        instances of all workers together at most (default 1000)\n"    \
	"  --max-instances-per-worker N\n"                                                           \
	"                           instances of one worker (its versions together) at most\n"     \
	"                           (default 4)\n"                                                  \
	"  --max-memory MB          memory of all instances together at most (default 3/4 of\n"    \
	"                           RAM); past it idle instances are evicted, least recently\n"    \
	"                           used first, then cold starts wait\n"                            \
	"  --queue-timeout SECONDS  how long a cold start waits for room before 503 with\n"        \
	"                           Retry-After (default 2)\n"
/* Workers that can have a sandbox uid of their own, per host run. */
#define SANDBOX_UID_SLOTS 65536u
/* The sandbox's teardown: the uid table and the roots (instance.c). */
void host_sandbox_free(struct host *h);
/* Set the sandbox's roots (see struct host), before the first spare: 0, or
 * -1 with err (not an absolute path to a directory, too many). */
int host_sandbox_roots(struct host *h, const char *const *paths, size_t n, char *err,
		       size_t errlen);
/* Parse a whole number option up to max; -1 with a message. */
int host_opt_u64(const char *cmd, const char *opt, const char *v, uint64_t max, uint64_t *out);
/* What --limit and --max-limit say, for the commands' --help. */
#define HOST_LIMITS_HELP                                                                           \
	"  --limit NAME=N           an instance's limit for workers that set none\n"                \
	"                           ([tool.thaw.limits] names: memory_mb 128, cpu_ms 30000,\n"       \
	"                           pids 64, open_files 1024, file_size_mb 1024, tmp_mb 64,\n"      \
	"                           subrequests 10000 by default; repeatable)\n"                     \
	"  --max-limit NAME=N       the most a worker may set (memory_mb 4096, cpu_ms 300000,\n"     \
	"                           pids 4096, open_files 65536, file_size_mb 65536,\n"              \
	"                           tmp_mb 16384, subrequests 10000000 by default); a worker\n"    \
	"                           over it is refused (docs/limits.md)\n"

/* limits.c: instances' resource limits (docs/limits.md). */
/* Open the host's cgroups and log, in one line, how each limit is enforced.
 * -1 with err when a --limit default is over its --max-limit. (Called by
 * host_loop_start.) */
int host_limits_start(struct host *h, char *err, size_t errlen);
/* Remove the host's cgroups (pool_shutdown, once every instance is reaped). */
void host_limits_stop(struct host *h);
/* capacity.c: the host's room for instances. Start: the defaults filled in
 * (--max-memory: 3/4 of RAM), the instances' group limited, one log line.
 * (Called by host_loop_start, after host_limits_start.) */
int host_capacity_start(struct host *h, char *err, size_t errlen);
void host_capacity_stop(struct host *h);
/* Are p's limits within the host's caps? 0, or -1 with err naming the key
 * (a deploy or thaw dev refuses such a project). */
int host_limits_check(const struct host *h, const struct project *p, char *err, size_t errlen);

/* front.c */
/* Run a libmicrohttpd daemon (started with MHD_USE_EPOLL) from loop l: its
 * epoll fd is watched through w, and MHD_run goes in an after-hook. */
int host_mhd_attach(struct loop *l, struct MHD_Daemon *d, struct loop_watch *w);
/* MHD_OPTION_EXTERNAL_LOGGER for our daemons; cls is the log prefix. */
void host_mhd_log(void *cls, const char *fmt, va_list ap);
/* A listening TCP socket on ip:port (non-blocking); -1 with err (flag names
 * the option that chooses the port, for the message). */
int host_listen(const char *ip, unsigned port, const char *flag, unsigned *bound_port, char *err,
		size_t errlen);
int front_start(struct host *h, const char *ip, unsigned port, unsigned *bound_port, char *err,
		size_t errlen);
void front_stop(struct host *h);
/*
 * An internal request: the encoded head (taken), run by an instance of a like
 * a request from a client, with no connection; body (taken, may be NULL) is
 * its whole request body, sent within the stream's credit. method and uri
 * (borrowed, static for method) name it in logs. When it has ended (answered,
 * failed, timed out after timeout_ms, or the front stopping), done(r, arg) is
 * called once from the loop: r->resp_status or r->fail_status says how, the
 * first 4 KiB of the body are in r->resp_body and the headers in
 * r->resp_headers; r is freed when done returns. Returns r, which the owner
 * may cancel (no callback) with front_internal_cancel until then.
 */
struct hreq *front_internal_submit(struct app *a, const char *method, const char *uri,
				   struct buf *head, struct buf *body, double timeout_ms,
				   void (*done)(struct hreq *r, void *arg), void *arg);
void front_internal_cancel(struct hreq *r);
/* What a streamed internal request's owner is told as the response arrives,
 * from the loop, before done: its head (kv borrowed), then body bytes
 * (borrowed: the owner copies them and returns the credit with
 * front_internal_grant once it has passed them on, so at most one stream
 * window of them is ever held). */
struct internal_sink {
	void (*head)(struct hreq *r, void *arg, unsigned status, const uint8_t *kv, size_t len);
	void (*data)(struct hreq *r, void *arg, const uint8_t *p, size_t n);
};
/* front_internal_submit whose response streams to sink (borrowed, static)
 * with arg; body (taken) may be of any size: it goes to the instance
 * within the stream's credit. done is called as for front_internal_submit,
 * after every byte went to the sink. */
/* front_internal_stream, pinned (hreq: pin_instance, on_attach). */
struct hreq *front_internal_stream_pinned(struct app *a, const char *method, const char *uri,
					  struct buf *head, struct buf *body, double timeout_ms,
					  const struct internal_sink *sink, void *sink_arg,
					  void (*done)(struct hreq *r, void *arg), void *arg,
					  unsigned pin_instance,
					  void (*on_attach)(void *arg, unsigned instance_id),
					  void *attach_arg);
/* A response header of r (case-insensitive name) into out (at most
 * outlen - 1 bytes, NUL-ended): 1, or 0 when absent. */
int hreq_resp_header(const struct hreq *r, const char *name, char *out, size_t outlen);
/* The app whose ready instance has this id, or NULL (gone, not ready). */
struct app *host_instance_app(struct host *h, unsigned instance_id);
struct hreq *front_internal_stream(struct app *a, const char *method, const char *uri,
				   struct buf *head, struct buf *body, double timeout_ms,
				   const struct internal_sink *sink, void *sink_arg,
				   void (*done)(struct hreq *r, void *arg), void *arg);
/* n bytes the sink was given have been passed on: the instance may send more. */
void front_internal_grant(struct hreq *r, uint32_t n);
/* The owner no longer wants r (its caller went away): no more sink calls,
 * no done; r ends from the loop soon (the instance is told CANCEL). Safe
 * from inside the code of any instance, the one serving r included. */
void front_internal_abandon(struct hreq *r);
/* scheduled.c: cron triggers' runs as internal requests. */
#define HOST_SCHEDULED_TIMEOUT_MS (15.0 * 60 * 1000) /* a run's wall-time limit */
#define HOST_SCHEDULED_CRON_MAX 256
/* Append the scheduled-event pseudo-headers (:event, :cron, :scheduled-time)
 * to an encoded head whose count the caller adds 3 to. */
void host_scheduled_pseudo(struct buf *b, const char *cron, int64_t scheduled_ms);
/* Run a's scheduled handler for cron (borrowed) due at scheduled_ms: an
 * internal request (see front_internal_submit for done and the result). */
struct hreq *host_scheduled_run(struct app *a, const char *cron, int64_t scheduled_ms,
				void (*done)(struct hreq *r, void *arg), void *arg);
/* How an ended run went: "ok", "exception" (the handler raised: error holds
 * its last line), "timeout" or "error" (no answer: the instance failed or
 * the worker could not load). *no_retry: the handler called no_retry(). */
const char *host_scheduled_outcome(const struct hreq *r, char *error, size_t errlen,
				   int *no_retry);
/* A batch of queue messages for a's queue handler: an internal request
 * whose head says `:event queue`, `:queue NAME`, with body (taken; the batch
 * as JSON, at most HOST_QUEUE_BODY_MAX bytes) as its request body. The
 * runtime answers 200 with thaw-outcome ok|exception and a JSON body saying
 * which messages were acked or retried (see _thaw_runtime.py). */
#define HOST_QUEUE_BODY_MAX (240u * 1024u)
struct hreq *host_queue_run(struct app *a, const char *queue, struct buf *body,
			    void (*done)(struct hreq *r, void *arg), void *arg);
/* Milliseconds from now_wall_ms to the start of the next minute. */
double host_ms_to_next_minute(int64_t now_wall_ms);

/* The pool's calls into the front, for a request r (nothing here calls
 * back into the pool before returning, except front_resp_data: pool_grant). */
/* Wake r's connection so MHD calls back into it (more credit, an instance). */
void front_wake(struct hreq *r);
/* Answer r, which has no response head yet, with status and a text body
 * (borrowed). Ignored once r is answered. */
void front_fail(struct hreq *r, unsigned status, const char *body);
/* The same with a Retry-After of retry_after seconds (a host at capacity). */
void front_fail_retry(struct hreq *r, unsigned status, const char *body, unsigned retry_after);
/* The response head: status, and the headers as a kv list (borrowed). */
void front_resp_head(struct hreq *r, unsigned status, const uint8_t *headers, size_t len);
/* Response body bytes (borrowed). */
void front_resp_data(struct hreq *r, const uint8_t *p, size_t n);
/* The response is complete. */
void front_resp_end(struct hreq *r);
/* The response broke after its head (the instance died or raised). If none
 * of it has gone out yet (MHD was not given it: its upload is still arriving,
 * or the head came in the same read as the instance's end), r is answered
 * status with a text body (borrowed) instead, as front_fail, and 1 is
 * returned; else the connection is cut short, 0. An internal request is
 * always cut short (its owner may have seen the head). */
int front_resp_abort(struct hreq *r, unsigned status, const char *body);

/* binding.c: an app's assets and bindings, made from a->cfg (after every
 * change of cfg: bindings_dispose first). 0, or -1 with err. */
int bindings_setup(struct app *a, char *err, size_t errlen);
void bindings_dispose(struct app *a);

/* pool.c: the front's calls into the pool. */
/* r's head is complete (r->head): queue it for an instance of a. */
void pool_submit(struct app *a, struct hreq *r);
/* The request ended (answered, client gone): leave the pending list or
 * the instance (which is told CANCEL if it still serves it). */
void pool_forget(struct hreq *r);
/* Request body bytes: how many of p[0..n) were taken (borrowed, sent to
 * the instance); 0 when r has no instance yet, no credit or a full queue:
 * the front suspends, and is woken when that changes. */
size_t pool_send_body(struct hreq *r, const void *p, size_t n);
/* The request body is complete (sent once, when r has an instance; call
 * again after a wake if it had none). */
void pool_end_body(struct hreq *r);
/* n response bytes were taken by the client (or buffered): credit them back. */
void pool_grant(struct hreq *r, uint32_t n);
/* r's time limit passed before its response head: answer 504. */
void pool_timeout(struct hreq *r);
/* Between pool_cork and pool_uncork, frames for instances collect; pool_uncork
 * writes each instance's in one send. instance.c */
void pool_cork(struct host *h);
void pool_uncork(struct host *h);

/* The pool's calls from its owner (thaw dev, thaw serve) and the host. */
/* pid exited with status: if it is an instance, handle it and return 1;
 * else 0 (called by host_reap, child.c). instance.c */
int pool_reaped(struct host *h, pid_t pid, int status);
/* pid was stopped by signal sig (SIGSTOP...): if it is an instance, it takes
 * no more work and goes (at once when it holds nothing, else when what it
 * holds has timed out), and 1 is returned; else 0. instance.c */
int pool_stopped(struct host *h, pid_t pid, int sig);
/* Keep the pre-spawned blank workers topped up. instance.c */
void pool_fill_spares(struct host *h);
/* Start a new generation: old instances drain, the next request boots anew. */
void pool_reload(struct app *a);
/* Boot one instance now (dev start / after reload) to surface load errors. */
void pool_prewarm(struct app *a);
/* The app left its deployment: idle instances stop now, busy ones when
 * their requests finish; requests routed to it later still get served. */
void pool_drain(struct app *a);
/* Stop every instance and reap it (SIGKILL after 2 s). */
void pool_shutdown(struct host *h);
/* snapshot.c: build a snapshot of the app's current generation (if enabled). */
void pool_build_snapshot(struct app *a);
/* snapshot.c: the app that makes the host's base image, its images in
 * snap_dir (the owner sets hooks and keep_snapshots, then h->base; it is
 * disposed of as any app: pool_app_dispose, then free it and its cfg is
 * freed with it). */
struct app *pool_base_new(struct host *h, const char *snap_dir);
/* snapshot.c: start using an image stored earlier (thaw serve after a
 * restart), which the caller has checked with snap_check_file: restores of
 * it skip what that checked (SNAP_RESTORE_CHECKED). */
void pool_use_snapshot(struct app *a, const char *path);
/* Nothing refers to the app any more: no instance (even one not reaped
 * yet), no request, no builder, no image being adopted. */
int pool_unused(const struct app *a);
/* Free what the pool keeps for an app that is unused (its images stay on
 * disk when keep_snapshots); the struct itself is the caller's. */
void pool_app_dispose(struct app *a);
/* memory.c: instances' memory (memstat.h), sampled. */
/* An app's instances, from the last sweep. */
struct app_memory {
	unsigned instances;        /* serving now (on its live list) */
	unsigned sampled;          /* of which read by a sweep */
	unsigned split;            /* of those, with own and shared known (memstat.h) */
	uint64_t pss;              /* bytes, the sampled ones summed */
	uint64_t own, shared;      /* bytes, the split ones summed */
};
void pool_app_memory(const struct app *a, struct app_memory *out);

/* Sample every serving instance every period_ms (0: stop), reading on a
 * thread of its own; stop (pool_shutdown does) joins it. */
void host_memory_start(struct host *h, double period_ms);
void host_memory_stop(struct host *h);
/* When the last sweep ended (wall ms), 0 before the first; the sweeps so far. */
int64_t host_memory_swept_ms(const struct host *h);
uint64_t host_memory_sweeps(const struct host *h);

/* snapshot.c: the owner's answer to adopt_snapshot: path (taken; NULL:
 * refused, why says why). */
void pool_snapshot_adopted(struct app *a, char *path, const char *why);

#endif
