/*
 * The host: one event loop that owns the HTTP front (libmicrohttpd), the
 * instance pools and every child process. See DESIGN.md, "A request's way".
 *
 * Ownership: an hreq belongs to its MHD connection and is freed when MHD says
 * the request is complete. While it is waiting for an instance it sits on its
 * app's pending list; while an instance serves it, on that instance's stream
 * list. An instance is freed only after its process has been reaped.
 */
#ifndef THAW_HOST_HOST_H
#define THAW_HOST_HOST_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "host/loop.h"

struct MHD_Daemon;
struct MHD_Connection;
struct project;

struct host_limits {
	uint64_t max_header_bytes;
	uint64_t max_body_bytes;
	double timeout_ms;      /* wall time from arrival to response head */
	double idle_timeout_ms; /* idle instances are evicted after this */
	unsigned max_instances; /* per app */
	unsigned concurrency;   /* requests in flight per instance */
};

enum inst_state {
	INST_SPARE,    /* pre-spawned blank process, waiting for work */
	INST_STARTING, /* spawned, INIT sent, not READY yet */
	INST_READY,
	INST_DRAINING, /* takes no new request; closed once idle */
	INST_CLOSED,   /* socket closed, waiting to be reaped */
};

struct hreq;
struct app;
struct host;

struct instance {
	struct host *h;
	struct app *app;
	unsigned id;
	pid_t pid;
	enum inst_state state;
	unsigned generation;
	struct loop_watch w;
	int want_out; /* EPOLLOUT registered */
	struct buf in, out;
	unsigned inflight, concurrency;
	struct hreq *streams; /* requests it serves (doubly linked) */
	uint64_t t_spawn, t_ready, last_used;
	struct loop_timer idle_timer, kill_timer;
	int linked;       /* on its app's live list */
	int is_builder;   /* builds a snapshot; never serves */
	int restoring;    /* INIT asked for a restore */
	int from_snapshot; /* READY came from a restored image */
	int records_ws;    /* asked to record the image's working set */
	unsigned served;   /* requests it has taken */
	char *snap_path;  /* builder: the file it writes */
	char *image;      /* restoring: the image it was given */
	struct instance *next, *prev;           /* app's live list, or spares */
	struct instance *all_next, *all_prev;   /* host's list of every process */
	int reaped;
};

enum snap_state {
	SNAPSHOT_NONE,     /* no image: instances boot */
	SNAPSHOT_BUILDING, /* a builder instance is making one */
	SNAPSHOT_ADOPTING, /* written; its owner is checking and storing it (off the loop) */
	SNAPSHOT_READY,    /* snap_path is the image instances restore from */
};

/* What a pool tells its owner (thaw serve) about its app. */
enum app_event {
	APP_SNAPSHOT_BUILT,    /* detail: the image path; num: its size in bytes */
	APP_SNAPSHOT_FAILED,   /* detail: the load error of the build (traceback) */
	APP_RESTORE_REFUSED,   /* detail: why the image was refused */
	APP_RESTORED,          /* num: restore ms */
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
};

struct app {
	struct host *h;
	struct project *cfg;
	char *init_json; /* INIT payload for new instances (mode added per spawn) */
	/* snapshots */
	int snapshots;           /* build and restore them */
	char *snap_dir;
	enum snap_state snap_state;
	char *snap_path;         /* valid image of the current generation */
	unsigned snap_builds;    /* builds tried for the current generation */
	int snap_ws_asked;       /* an instance was asked to record the working set */
	struct instance *builder;
	double snap_restore_ms;
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
	int keep_snapshots;  /* images outlive the process (the store owns them) */
	int draining;        /* out of the deployment: no instance kept idle */
};

struct hreq {
	struct host *h;
	struct MHD_Connection *conn;
	struct app *app;
	struct instance *inst;
	uint32_t stream;
	struct hreq *next, *prev;         /* pending list or instance streams */
	struct hreq *all_next, *all_prev; /* host's list of live requests */
	char *uri;                        /* raw request target */
	const char *method;
	struct buf head; /* encoded REQ_HEAD payload */
	uint64_t t_arrive, t_assigned, t_head;
	char rid[17]; /* request id (thaw serve), "" in dev */
	const char *start_desc;
	int started, pending, suspended, queued;
	/* request body */
	uint64_t body_bytes;
	uint32_t tx_credit;
	int upload_done, req_end_sent, discarding;
	uint64_t discarded;
	/* response */
	int resp_head, resp_end, resp_failed;
	unsigned resp_status;
	struct buf resp_headers; /* kv list as received */
	struct buf resp_body;
	uint32_t rx_credit;  /* credit the instance still holds */
	uint32_t rx_unacked; /* bytes sent to the client, not yet credited back */
	uint64_t resp_bytes;
	int spill_fd;           /* -1, or an unlinked file holding early response bytes */
	uint64_t spill_wr, spill_rd;
	uint64_t pregranted;    /* bytes credited back on arrival, not yet sent */
	unsigned fail_status;
	char *fail_body;
	struct loop_timer timeout;
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
	void *route_arg;
	uint64_t rid_prefix, rid_counter;
	struct child *children; /* helper children (child.h) */
	struct instance *all_instances;
	struct hreq *all_reqs;
	uint32_t next_stream;
	unsigned next_instance_id;
	const char *sdk_dir;
	int system_site_packages;
	uint64_t max_snapshot_bytes;
	struct instance *spares;
	unsigned nspares, spares_target;
	unsigned snap_counter;
	int quiet_requests;
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
};
#define HOST_LONG_OPTIONS                                                                          \
	{"idle-timeout", required_argument, NULL, HOST_OPT_IDLE_TIMEOUT},                           \
	{"timeout", required_argument, NULL, HOST_OPT_TIMEOUT},                                     \
	{"max-body-bytes", required_argument, NULL, HOST_OPT_MAX_BODY},                             \
	{"max-header-bytes", required_argument, NULL, HOST_OPT_MAX_HEADER},                         \
	{"max-instances", required_argument, NULL, HOST_OPT_MAX_INSTANCES},                         \
	{"concurrency", required_argument, NULL, HOST_OPT_CONCURRENCY},                             \
	{"system-site-packages", no_argument, NULL, HOST_OPT_SYSTEM_SITE},                          \
	{"max-snapshot-mb", required_argument, NULL, HOST_OPT_MAX_SNAPSHOT}
/* Limits and snapshot size at their defaults. */
void host_defaults(struct host *h);
/* Apply one of HOST_LONG_OPTIONS: 1 done, 0 not one of them, -1 bad value
 * (the message, prefixed with cmd, is on stderr). */
int host_option(struct host *h, const char *cmd, int c, const char *arg);
/* Block SIGINT, SIGTERM and SIGCHLD (they arrive in the loop through a
 * signalfd: SIGCHLD reaps, the others stop the loop), ignore SIGPIPE, and
 * make h->loop. 0, or -1 with err. */
int host_loop_start(struct host *h, char *err, size_t errlen);
/* Parse a whole number option up to max; -1 with a message. */
int host_opt_u64(const char *cmd, const char *opt, const char *v, uint64_t max, uint64_t *out);

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
/* Wake a request's connection so MHD calls back into it. */
void front_wake(struct hreq *r);
/* Answer a request that cannot be served with status and a text body. */
void front_fail(struct hreq *r, unsigned status, const char *body);
/* Response body bytes from the instance for r. */
void front_resp_data(struct hreq *r, const uint8_t *p, size_t n);

/* pool.c */
void pool_submit(struct app *a, struct hreq *r);
void pool_forget(struct hreq *r); /* the request ended: leave pending list / instance */
int inst_send(struct instance *in, uint8_t type, uint32_t stream, const void *p, size_t len);
int inst_send2(struct instance *in, uint8_t type, uint32_t stream, const void *p1, size_t l1,
	       const void *p2, size_t l2);
/* Bytes queued towards an instance above which uploads pause. */
#define INST_OUT_HIGH (1u << 20)
void pool_grant(struct hreq *r, uint32_t n); /* return response credit */
/* pid exited with status: if it is an instance, handle it and return 1;
 * else 0 (called by host_reap, child.c). */
int pool_reaped(struct host *h, pid_t pid, int status);
void pool_timeout(struct hreq *r);
/* Start a new generation: old instances drain, the next request boots anew. */
void pool_reload(struct app *a);
/* Boot one instance now (dev start / after reload) to surface load errors. */
void pool_prewarm(struct app *a);
/* Stop every instance and reap it (SIGKILL after 2 s). */
void pool_shutdown(struct host *h);
int pool_live_count(struct host *h);
/* Build a snapshot of the app's current generation (if enabled). */
void pool_build_snapshot(struct app *a);
/* Keep the pre-spawned blank workers topped up. */
void pool_fill_spares(struct host *h);
/* The app left its deployment: idle instances stop now, busy ones when
 * their requests finish; requests routed to it later still get served. */
void pool_drain(struct app *a);
/* Start using an image stored earlier (thaw serve after a restart). */
void pool_use_snapshot(struct app *a, const char *path);
/* The owner's answer to adopt_snapshot: path (taken; NULL: refused, why
 * says why). */
void pool_snapshot_adopted(struct app *a, char *path, const char *why);
/* Ready instances (warm) of an app. */
unsigned pool_warm_count(const struct app *a);

#endif
