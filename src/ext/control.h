/*
 * The control API's HTTP side (control.c, docs/control-api.md): a second
 * libmicrohttpd daemon in the host's loop, on its own address. It knows
 * nothing of workers or deploys: what it asks of the host goes through a
 * sink, which thaw serve fills in (serve.c).
 */
#ifndef THAW_EXT_CONTROL_H
#define THAW_EXT_CONTROL_H

#include <jansson.h>
#include <stdint.h>

struct buf;
struct bundle_limits;
struct loop;
struct store;
struct ctl;
struct ctl_stream;
struct ctl_state;

/* A request on a worker's state (KV keys, D1 databases: `thaw kv key` and
 * `thaw d1` with --host), under /v1/workers/NAME/kv/... or .../d1/...
 * Everything here is borrowed for the sink's call only, except that the sink
 * may take the body (move the struct out and zero it). */
struct ctl_state_request {
	const char *method; /* GET, PUT, POST, DELETE */
	const char *worker;
	const char *path;   /* after "/v1/workers/NAME/" (the URL already unescaped) */
	struct buf *body;   /* at most CTL_STATE_BODY_MAX bytes (checked before) */
	/* Query parameters, NULL when absent: */
	const char *prefix, *limit, *cursor;             /* a list */
	const char *expiration, *expiration_ttl, *metadata; /* a put */
};

/* What the control API asks of its host. Borrowed by ctl_start: it must
 * outlive the ctl. */
struct ctl_sink {
	void *arg; /* passed to every call */
	struct store *store;                 /* uploads are written into its blobs */
	const struct bundle_limits *limits;  /* the largest upload */
	/* Is authorization (the header's value, may be NULL) the host's token? */
	int (*authorized)(void *arg, const char *authorization);
	/* An uploaded bundle for worker: its SHA-256 hex, bytes long, still in
	 * the temporary file upload (blob_finish: not fsynced, not in blobs/;
	 * the sink takes the file). The deploy's answer goes to cs
	 * (ctl_stream_refuse, or lines and the end). */
	void (*deploy)(void *arg, const char *worker, const char *hex, const char *upload,
		       uint64_t bytes, const char *message, double percentage, const char *env,
		       struct ctl_stream *cs);
	/* GET/POST on the worker API: the status, and *out a JSON object. */
	unsigned (*api)(void *arg, const char *method, const char *worker, const char *what,
			json_t *body, json_t **out);
	/* A state request: answered later, on the loop, exactly once, through
	 * ctl_state_json or ctl_state_value (which may come after the client
	 * left or the control API stopped: then they only free). */
	void (*state)(void *arg, const struct ctl_state_request *req, struct ctl_state *cs);
	/* Subscribe cs to worker's log lines: 0, or the status to answer (404). */
	unsigned (*tail)(void *arg, const char *worker, struct ctl_stream *cs);
	/* The client of cs went away: the sink forgets cs. */
	void (*stream_gone)(void *arg, struct ctl_stream *cs);
	/* GET /metrics: append the host's own metrics (text format) to b. */
	void (*metrics)(void *arg, struct buf *b);
};

/* An ndjson response being streamed: the deploy's progress, or a tail. */
void ctl_stream_line(struct ctl_stream *cs, json_t *line); /* takes line */
void ctl_stream_end(struct ctl_stream *cs);
/* Before any line: answer status with {"error": msg} instead of a stream. */
void ctl_stream_refuse(struct ctl_stream *cs, unsigned status, const char *msg);

/* The answer to a state request (takes j). */
void ctl_state_json(struct ctl_state *cs, unsigned status, json_t *j);
/* A KV value as the answer: 200 with the bytes (taken, malloc'd, may be
 * NULL for 0 bytes), X-Thaw-KV-Metadata (JSON text, borrowed, NULL: none)
 * and X-Thaw-KV-Expiration (seconds; 0: none). */
void ctl_state_value(struct ctl_state *cs, uint8_t *value, size_t len, const char *metadata,
		     int64_t expiration);

/* The store made more changes durable (store_sync_start's synced, arg the
 * struct ctl): answers and deploy lines held for them go out. */
void ctl_store_synced(void *arg);

/* Start the control API on ip:port (bound: the port it got). NULL with err. */
struct ctl *ctl_start(const struct ctl_sink *sink, struct loop *l, const char *ip, unsigned port,
		      unsigned *bound, char *err, size_t errlen);
void ctl_stop(struct ctl *c);

#endif
