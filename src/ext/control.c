/*
 * The control API's HTTP side (docs/control-api.md): a second libmicrohttpd
 * daemon in the host's loop, on its own address. Every request must carry the
 * bearer token; bodies are JSON (up to CTL_JSON_MAX) except a deploy's, which
 * streams into a blob writer as it arrives. Answers are JSON, or an ndjson
 * stream (a deploy's progress, a tail) fed by serve.c through ctl_stream.
 *
 * A stream whose connection is suspended cannot notice its client leaving,
 * so every open stream gets an empty line every CTL_KEEPALIVE_MS.
 *
 * A request on a worker's state (.../kv/..., .../d1/...: state_api.c) takes
 * a raw body up to the engine's limit (a KV value, or D1's SQL in JSON),
 * goes to the sink whole and waits, suspended, for the sink's answer from
 * the state executor. The answer is a struct ctl_state that outlives the
 * request when the client leaves first: whoever comes second frees it.
 */
#include "ext/control.h"

#include "ext/bundle.h"
#include "ext/spool.h"
#include "ext/store.h"
#include "host/host.h"
#include "host/loop.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "project/project.h"
#include "state/d1.h"
#include "state/kv.h"

#define CTL_JSON_MAX (64u * 1024)
#define CTL_DISCARD_MAX (64ull << 20)
#define CTL_KEEPALIVE_MS 15000
#define CTL_STREAM_BUFFER (4u << 20) /* a slow tail reader loses lines past this */
/* A KV value, or D1 SQL text up to D1_MAX_FILE_BYTES in a JSON body
 * (escapes included: SQL escaped past this is refused as too large). */
#define CTL_KV_BODY_MAX ((uint64_t)KV_VALUE_MAX)
#define CTL_D1_BODY_MAX ((uint64_t)D1_MAX_FILE_BYTES + (1u << 20))
/* Bodies of state requests (KV values, D1 SQL) in memory at once, host-wide. */
#define CTL_STATE_BYTES_MAX (512ull << 20)
#define CTL_STATE_PATH_MAX 4096

struct ctl {
	const struct ctl_sink *sink;
	struct loop *loop;
	struct MHD_Daemon *mhd;
	int listen_fd;
	struct loop_watch watch;
	struct loop_timer keepalive;
	struct ctl_stream *streams; /* every open stream */
	struct creq *uploads;       /* every request with a spool */
	struct creq *waiting;       /* answers waiting for the store's disk */
	struct creq *states;        /* state requests waiting for their answer */
	int stopping;
	uint64_t state_bytes; /* K_STATE bodies in memory (CTL_STATE_BYTES_MAX) */
};

struct ctl_stream {
	struct creq *r;
	struct ctl *c;
	struct buf out;
	int decided;     /* 200 stream or a refusal chosen */
	int durable;     /* a deploy's: a line goes out once the store has it on disk */
	struct buf held; /* lines waiting for held_ticket to be durable */
	uint64_t held_ticket;
	int ended;
	int refused;
	unsigned status;
	char *msg;
	uint64_t dropped;
	struct ctl_stream *next, *prev;
};

enum creq_kind { K_NONE, K_JSON, K_UPLOAD, K_TAIL, K_STATE };

struct ctl_state {
	struct creq *r; /* NULL once the request is gone */
	int answered;
	unsigned status;
	json_t *json;
	uint8_t *value; /* a KV value's bytes */
	size_t value_len;
	int is_value;
	char *metadata;
	int64_t expiration;
};

struct creq {
	struct ctl *c;
	struct MHD_Connection *conn;
	int started, suspended, queued;
	enum creq_kind kind;
	char method[8];
	char worker[64];
	char what[64];           /* "versions", ..., or "versions/REF" (a DELETE) */
	char *state_path;        /* K_STATE: after "/v1/workers/NAME/" */
	uint64_t body_max;       /* K_STATE: the body's limit */
	uint64_t counted;        /* K_STATE: its body's bytes in c->state_bytes */
	struct ctl_state *state; /* K_STATE: sent to the sink, not yet queued */
	struct creq *st_next, *st_prev;
	struct buf body;
	struct spool *spool; /* an upload's bytes on their way to a blob */
	int spool_ended;
	struct creq *up_next, *up_prev;
	/* A change's answer, held until the store has the change on disk: */
	json_t *pend_out;
	unsigned pend_status;
	uint64_t pend_ticket;
	struct creq *wait_next, *wait_prev;
	int body_failed;
	uint64_t discarded;
	unsigned fail_status;
	char *fail_msg;
	char *message;
	double percentage;
	char env[64];
	struct ctl_stream *cs;
};

static void resume(struct creq *r);

/* The spool can take more, or has written everything: go on. */
static void spool_ready(void *arg)
{
	resume(arg);
}

static void resume(struct creq *r)
{
	if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
	}
}

static void uploads_link(struct creq *r)
{
	r->up_prev = NULL;
	r->up_next = r->c->uploads;
	if (r->up_next)
		r->up_next->up_prev = r;
	r->c->uploads = r;
}

static void uploads_unlink(struct creq *r)
{
	if (r->up_prev)
		r->up_prev->up_next = r->up_next;
	else if (r->c->uploads == r)
		r->c->uploads = r->up_next;
	if (r->up_next)
		r->up_next->up_prev = r->up_prev;
	r->up_next = r->up_prev = NULL;
}

/* The upload is given up: its thread drops what it wrote. */
static void drop_spool(struct creq *r)
{
	if (!r->spool)
		return;
	spool_abandon(r->spool);
	r->spool = NULL;
	uploads_unlink(r);
}

/* The upload fails with status and msg (taken); the rest of its body is
 * read and dropped. */
static void fail_upload(struct creq *r, unsigned status, char *msg)
{
	drop_spool(r);
	r->body_failed = 1;
	r->fail_status = status;
	free(r->fail_msg);
	r->fail_msg = msg;
}

static void suspend(struct creq *r)
{
	if (!r->suspended) {
		r->suspended = 1;
		MHD_suspend_connection(r->conn);
	}
}

/* --- streams --- */

static struct ctl_stream *stream_new(struct creq *r)
{
	struct ctl_stream *cs = xcalloc(1, sizeof *cs);
	cs->r = r;
	cs->c = r->c;
	cs->next = r->c->streams;
	if (cs->next)
		cs->next->prev = cs;
	r->c->streams = cs;
	if (!loop_timer_armed(&r->c->keepalive))
		loop_timer_arm(r->c->loop, &r->c->keepalive, CTL_KEEPALIVE_MS);
	return cs;
}

static void stream_free(struct ctl_stream *cs)
{
	struct ctl *c = cs->c;
	if (cs->prev)
		cs->prev->next = cs->next;
	else
		c->streams = cs->next;
	if (cs->next)
		cs->next->prev = cs->prev;
	c->sink->stream_gone(c->sink->arg, cs);
	buf_free(&cs->out);
	buf_free(&cs->held);
	free(cs->msg);
	free(cs);
}

/* The store could not make a change durable: the deploy's stream says so
 * and ends, whatever it held. */
static void stream_store_failed(struct ctl_stream *cs)
{
	static const char line[] =
		"{\"stage\":\"failed\",\"error\":\"the store could not make the change "
		"durable (an fsync failed): see the host's log\"}\n";
	buf_reset(&cs->held);
	if (!cs->ended)
		buf_append(&cs->out, line, sizeof line - 1);
	cs->ended = 1;
	if (cs->r)
		resume(cs->r);
}

void ctl_stream_line(struct ctl_stream *cs, json_t *line)
{
	char *text = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!text || cs->ended || cs->refused)
		goto out;
	cs->decided = 1;
	size_t n = strlen(text);
	if (buf_used(&cs->out) + buf_used(&cs->held) + n + 1 > CTL_STREAM_BUFFER) {
		cs->dropped++;
		goto out;
	}
	/* A deploy's line says what the store holds: it waits for the disk. */
	uint64_t t = store_ticket(cs->c->sink->store);
	struct buf *to = &cs->out;
	int d = cs->durable ? store_durable(cs->c->sink->store, t) : 1;
	if (d < 0) {
		stream_store_failed(cs);
		goto out;
	}
	if (cs->durable && !cs->c->stopping && (buf_used(&cs->held) || d == 0)) {
		to = &cs->held;
		cs->held_ticket = t;
	}
	if (cs->dropped) {
		char note[96];
		snprintf(note, sizeof note, "{\"dropped\":%llu}\n",
			 (unsigned long long)cs->dropped);
		buf_append(to, note, strlen(note));
		cs->dropped = 0;
	}
	buf_append(to, text, n);
	buf_append(to, "\n", 1);
	if (cs->r && to == &cs->out)
		resume(cs->r);
out:
	free(text);
}

void ctl_stream_end(struct ctl_stream *cs)
{
	cs->decided = 1;
	cs->ended = 1;
	if (cs->r)
		resume(cs->r);
}

void ctl_stream_refuse(struct ctl_stream *cs, unsigned status, const char *msg)
{
	if (cs->decided)
		return;
	cs->decided = 1;
	cs->refused = 1;
	cs->status = status;
	cs->msg = xstrdup(msg);
	if (cs->r)
		resume(cs->r);
}

static void keepalive_fn(struct loop *l, struct loop_timer *t)
{
	struct ctl *c = t->arg;
	for (struct ctl_stream *cs = c->streams; cs; cs = cs->next) {
		if (cs->decided && !cs->ended && !cs->refused && buf_used(&cs->out) == 0 &&
		    buf_used(&cs->held) == 0) {
			buf_append(&cs->out, "\n", 1);
			if (cs->r)
				resume(cs->r);
		}
	}
	if (c->streams)
		loop_timer_arm(l, t, CTL_KEEPALIVE_MS);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct creq *r = cls;
	struct ctl_stream *cs = r->cs;
	size_t have = buf_used(&cs->out);
	if (have) {
		size_t n = have < max ? have : max;
		memcpy(out, buf_head(&cs->out), n);
		buf_consume(&cs->out, n);
		buf_shrink(&cs->out, 64 * 1024);
		return (ssize_t)n;
	}
	if (cs->ended && !buf_used(&cs->held))
		return MHD_CONTENT_READER_END_OF_STREAM;
	suspend(r);
	return 0;
}

/* Held lines whose changes are durable now go out. */
static void release_held(struct ctl_stream *cs, int all)
{
	if (!buf_used(&cs->held))
		return;
	int d = all ? 1 : store_durable(cs->c->sink->store, cs->held_ticket);
	if (d == 0)
		return;
	if (d < 0) {
		stream_store_failed(cs);
		return;
	}
	buf_append(&cs->out, buf_head(&cs->held), buf_used(&cs->held));
	buf_consume(&cs->held, buf_used(&cs->held));
	buf_shrink(&cs->held, 0);
	if (cs->r)
		resume(cs->r);
}

static void waiting_unlink(struct creq *r)
{
	if (r->wait_prev)
		r->wait_prev->wait_next = r->wait_next;
	else if (r->c->waiting == r)
		r->c->waiting = r->wait_next;
	if (r->wait_next)
		r->wait_next->wait_prev = r->wait_prev;
	r->wait_next = r->wait_prev = NULL;
}

void ctl_store_synced(void *arg)
{
	struct ctl *c = arg;
	for (struct creq *r = c->waiting; r; r = r->wait_next)
		if (store_durable(c->sink->store, r->pend_ticket))
			resume(r);
	for (struct ctl_stream *cs = c->streams; cs; cs = cs->next)
		release_held(cs, 0);
}

/* --- state requests --- */

static void states_unlink(struct creq *r)
{
	if (r->st_prev)
		r->st_prev->st_next = r->st_next;
	else if (r->c->states == r)
		r->c->states = r->st_next;
	if (r->st_next)
		r->st_next->st_prev = r->st_prev;
	r->st_next = r->st_prev = NULL;
}

static void state_free(struct ctl_state *cs)
{
	json_decref(cs->json);
	free(cs->value);
	free(cs->metadata);
	free(cs);
}

/* The sink answered: the request (if still here) goes on. */
static void state_answered(struct ctl_state *cs)
{
	cs->answered = 1;
	if (!cs->r) {
		state_free(cs);
		return;
	}
	resume(cs->r);
}

void ctl_state_json(struct ctl_state *cs, unsigned status, json_t *j)
{
	if (cs->answered) {
		json_decref(j);
		return;
	}
	cs->status = status;
	cs->json = j;
	state_answered(cs);
}

void ctl_state_value(struct ctl_state *cs, uint8_t *value, size_t len, const char *metadata,
		     int64_t expiration)
{
	if (cs->answered) {
		free(value);
		return;
	}
	cs->status = 200;
	cs->is_value = 1;
	cs->value = value;
	cs->value_len = len;
	cs->metadata = metadata ? xstrdup(metadata) : NULL;
	cs->expiration = expiration;
	state_answered(cs);
}

/* --- answers --- */

/* A whole answer of n bytes (text: taken, malloc'ed) of type. */
static enum MHD_Result queue_body(struct creq *r, unsigned status, char *text, size_t n,
				  const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type", type);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == 401)
		MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"thaw\"");
	enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	return ok;
}

static enum MHD_Result queue_json(struct creq *r, unsigned status, json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return MHD_NO;
	return queue_body(r, status, text, strlen(text), "application/json");
}

static enum MHD_Result queue_error(struct creq *r, unsigned status, const char *msg)
{
	return queue_json(r, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result queue_value(struct creq *r, struct ctl_state *cs)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(cs->value_len, cs->value ? cs->value : (void *)"",
						cs->value ? MHD_RESPMEM_MUST_FREE
							  : MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	cs->value = NULL;
	MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (cs->metadata)
		MHD_add_response_header(resp, "X-Thaw-KV-Metadata", cs->metadata);
	if (cs->expiration) {
		char e[32];
		snprintf(e, sizeof e, "%lld", (long long)cs->expiration);
		MHD_add_response_header(resp, "X-Thaw-KV-Expiration", e);
	}
	enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	return ok;
}

static enum MHD_Result queue_stream(struct creq *r)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
								      stream_reader, r, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Content-Type", "application/x-ndjson");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	enum MHD_Result ok = MHD_queue_response(r->conn, 200, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	return ok;
}

/* GET /metrics: the Prometheus text format (version 0.0.4). The host's
 * first metrics: its loop's iteration times; docs/control-api.md lists
 * them. */
static void metrics_loop(struct buf *b, const struct loop *l)
{
	struct loop_stats st;
	loop_get_stats(l, &st);
	buf_printf(b,
		   "# HELP thaw_loop_iteration_seconds Wall time of each iteration of the host's "
		   "event loop (the handling of one epoll_wait's events, timers and hooks).\n"
		   "# TYPE thaw_loop_iteration_seconds histogram\n");
	uint64_t cum = 0;
	for (size_t i = 0; i < LOOP_STAT_BUCKETS; i++) {
		cum += st.le[i];
		buf_printf(b, "thaw_loop_iteration_seconds_bucket{le=\"%g\"} %llu\n",
			   loop_stat_bounds_ms[i] / 1000, (unsigned long long)cum);
	}
	buf_printf(b,
		   "thaw_loop_iteration_seconds_bucket{le=\"+Inf\"} %llu\n"
		   "thaw_loop_iteration_seconds_sum %.9f\n"
		   "thaw_loop_iteration_seconds_count %llu\n"
		   "# HELP thaw_loop_iteration_max_seconds The longest iteration of the host's "
		   "event "
		   "loop since it started.\n"
		   "# TYPE thaw_loop_iteration_max_seconds gauge\n"
		   "thaw_loop_iteration_max_seconds %.9f\n",
		   (unsigned long long)st.iterations, (double)st.busy_ns / 1e9,
		   (unsigned long long)st.iterations, (double)st.max_ns / 1e9);
}

static enum MHD_Result queue_metrics(struct creq *r)
{
	struct buf b = {0};
	buf_printf(&b, "# HELP thaw_build_info The thaw binary serving.\n"
		       "# TYPE thaw_build_info gauge\n"
		       "thaw_build_info{version=\"" THAW_VERSION "\"} 1\n");
	metrics_loop(&b, r->c->loop);
	if (r->c->sink->metrics)
		r->c->sink->metrics(r->c->sink->arg, &b);
	/* The buffer's bytes start at data (nothing consumed): taken as they are. */
	return queue_body(r, 200, (char *)b.data, b.len,
			  "text/plain; version=0.0.4; charset=utf-8");
}

/* --- requests --- */

/* "/v1/workers[/NAME[/WHAT]]" → 0 with worker/what filled (empty when absent;
 * WHAT may be "versions/REF", one version, whose REF api.c checks);
 * "/v1/workers/NAME/kv/..." or ".../d1/..." → 0 with what "kv" or "d1" and
 * *state the rest after NAME/ (returns new; state_api.c parses it). */
static int parse_path(const char *url, char *worker, size_t wn, char *what, size_t whn,
		      char **state)
{
	*state = NULL;
	static const char root[] = "/v1/workers";
	worker[0] = what[0] = 0;
	if (strncmp(url, root, sizeof root - 1) != 0)
		return -1;
	const char *p = url + sizeof root - 1;
	if (*p == 0 || !strcmp(p, "/"))
		return 0;
	if (*p != '/')
		return -1;
	p++;
	const char *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p);
	if (n == 0 || n >= wn)
		return -1;
	memcpy(worker, p, n);
	worker[n] = 0;
	if (!slash)
		return 0;
	p = slash + 1;
	n = strlen(p);
	if ((!strncmp(p, "kv/", 3) || !strncmp(p, "d1/", 3)) && n < CTL_STATE_PATH_MAX) {
		memcpy(what, p, 2);
		what[2] = 0;
		*state = xstrdup(p);
		return 0;
	}
	const char *sl = strchr(p, '/');
	if (n == 0 || n >= whn ||
	    (sl && (strncmp(p, "versions/", 9) != 0 || !sl[1] || strchr(sl + 1, '/'))))
		return -1;
	memcpy(what, p, n + 1);
	return 0;
}

static enum MHD_Result first_call(struct creq *r, const char *url, const char *method)
{
	struct ctl *c = r->c;
	r->started = 1;
	snprintf(r->method, sizeof r->method, "%s", method);
	/* ctl_stop's MHD_run may start a request on a kept-alive connection:
	 * nothing may suspend then (MHD cannot stop with a suspended one). */
	if (c->stopping)
		return queue_error(r, 503, "the host is shutting down");
	const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
	if (!c->sink->authorized(c->sink->arg, auth))
		return queue_error(r, 401,
				   auth ? "wrong token"
					: "this API needs Authorization: Bearer TOKEN");
	if (!strcmp(url, "/metrics")) {
		if (strcmp(method, "GET"))
			return queue_error(r, 405, "/metrics is read with GET");
		return queue_metrics(r);
	}
	if (!strcmp(url, "/v1/density")) {
		if (strcmp(method, "GET"))
			return queue_error(r, 405, "/v1/density is read with GET");
		snprintf(r->what, sizeof r->what, "density");
		r->kind = K_JSON;
		return MHD_YES;
	}
	if (parse_path(url, r->worker, sizeof r->worker, r->what, sizeof r->what, &r->state_path) <
	    0)
		return queue_error(r, 404, "no such endpoint (see docs/control-api.md)");
	if (r->worker[0] && !project_name_valid(r->worker))
		return queue_error(r, 400, "invalid worker name");
	int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
	if (r->state_path) {
		if (!get && !post && strcmp(method, "PUT") && strcmp(method, "DELETE"))
			return queue_error(r, 405, "only GET, PUT, POST and DELETE are used here");
		int kv = r->what[0] == 'k';
		r->body_max = kv ? CTL_KV_BODY_MAX : CTL_D1_BODY_MAX;
		const char *cl =
			MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
		uint64_t len;
		if (cl && parse_u64(cl, UINT64_MAX, &len) == 0 && len > r->body_max) {
			char m[160];
			if (kv)
				snprintf(m, sizeof m,
					 "KV PUT failed: 413 Value length of %llu exceeds "
					 "limit of %d.",
					 (unsigned long long)len, KV_VALUE_MAX);
			else
				snprintf(m, sizeof m,
					 "the request body is %llu bytes, over the limit "
					 "of %llu (SQL text: at most %u bytes)",
					 (unsigned long long)len, (unsigned long long)r->body_max,
					 D1_MAX_FILE_BYTES);
			return queue_error(r, 413, m);
		}
		r->kind = K_STATE;
		return MHD_YES;
	}
	int one_version = !strncmp(r->what, "versions/", 9);
	if (one_version && strcmp(method, "DELETE") != 0)
		return queue_error(r, 405,
				   "a version is deleted with DELETE (GET .../versions lists "
				   "them)");
	if (!one_version && !get && !post)
		return queue_error(r, 405, "only GET and POST are used here");

	if (post && !strcmp(r->what, "versions")) {
		const struct bundle_limits *bl = c->sink->limits;
		const char *cl =
			MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
		uint64_t len;
		if (cl && parse_u64(cl, UINT64_MAX, &len) == 0 && len > bl->max_compressed) {
			char m[160];
			snprintf(m, sizeof m, "bundle refused: %llu bytes, over the limit of %llu",
				 (unsigned long long)len, (unsigned long long)bl->max_compressed);
			return queue_error(r, 413, m);
		}
		const char *pct =
			MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "percentage");
		r->percentage = 100;
		if (pct && *pct) {
			char *end;
			errno = 0;
			double p = strtod(pct, &end);
			if (errno || *end || !(p > 0 && p <= 100))
				return queue_error(r, 400,
						   "percentage must be a number in (0, 100]");
			r->percentage = p;
		}
		const char *msg =
			MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "message");
		if (msg && strlen(msg) > 4096)
			return queue_error(r, 400, "message too long (4096 bytes at most)");
		r->message = msg && *msg ? xstrdup(msg) : NULL;
		const char *env =
			MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "env");
		if (env && *env && !project_env_name_valid(env))
			return queue_error(r, 400,
					   "env must be an environment name (letters, digits, "
					   "'-' and '_')");
		snprintf(r->env, sizeof r->env, "%s", env ? env : "");
		char err[256];
		r->spool = spool_start(c->sink->store, c->loop, spool_ready, r, err, sizeof err);
		if (!r->spool)
			return queue_error(r, 500, err);
		uploads_link(r);
		r->kind = K_UPLOAD;
		return MHD_YES;
	}
	if (get && !strcmp(r->what, "tail")) {
		r->kind = K_TAIL;
		r->cs = stream_new(r);
		unsigned st = c->sink->tail(c->sink->arg, r->worker, r->cs);
		if (st)
			return queue_error(r, st, "no worker of that name is deployed here");
		r->cs->decided = 1;
		return queue_stream(r);
	}
	r->kind = K_JSON;
	return MHD_YES;
}

static const char *query(struct creq *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* The whole state request is in: to the sink, then wait for its answer. */
static enum MHD_Result state_request(struct creq *r)
{
	struct ctl *c = r->c;
	struct ctl_state *cs = r->state;
	if (!cs) {
		cs = r->state = xcalloc(1, sizeof *cs);
		cs->r = r;
		r->st_prev = NULL;
		r->st_next = c->states;
		if (c->states)
			c->states->st_prev = r;
		c->states = r;
		struct ctl_state_request req = {
			.method = r->method,
			.worker = r->worker,
			.path = r->state_path,
			.body = &r->body,
			.prefix = query(r, "prefix"),
			.limit = query(r, "limit"),
			.cursor = query(r, "cursor"),
			.expiration = query(r, "expiration"),
			.expiration_ttl = query(r, "expiration_ttl"),
			.metadata = query(r, "metadata"),
		};
		c->sink->state(c->sink->arg, &req, cs);
	}
	if (!cs->answered) {
		if (c->stopping) {
			cs->r = NULL; /* the sink's answer, when it comes, frees it */
			r->state = NULL;
			states_unlink(r);
			return queue_error(r, 503, "the host is shutting down");
		}
		suspend(r); /* ctl_state_* resumes */
		return MHD_YES;
	}
	r->state = NULL;
	states_unlink(r);
	enum MHD_Result ok;
	if (cs->is_value) {
		ok = queue_value(r, cs);
	} else {
		ok = queue_json(r, cs->status, cs->json);
		cs->json = NULL;
	}
	state_free(cs);
	return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct ctl *c = cls;
	struct creq *r = *req_cls;
	if (!r) {
		r = xcalloc(1, sizeof *r);
		r->c = c;
		r->conn = conn;
		*req_cls = r;
		return first_call(r, url, method);
	}
	if (r->queued)
		return MHD_YES;
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (r->kind == K_UPLOAD && !r->body_failed) {
			const struct bundle_limits *bl = c->sink->limits;
			if (spool_bytes(r->spool) + n > bl->max_compressed) {
				fail_upload(r, 413,
					    xasprintf("bundle refused: over the limit of %llu "
						      "bytes",
						      (unsigned long long)bl->max_compressed));
				r->discarded += n;
				return MHD_YES;
			}
			/* What the pipe cannot take now comes again after resume. */
			size_t took = spool_offer(r->spool, upload, n);
			*upload_size = n - took;
			if (took < n)
				suspend(r);
			return MHD_YES;
		}
		if (r->body_failed) {
			r->discarded += n;
			return r->discarded > CTL_DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		if (r->kind == K_STATE) {
			if (buf_used(&r->body) + n > r->body_max) {
				r->body_failed = 1;
				r->fail_status = 413;
				r->fail_msg =
					r->what[0] == 'k'
						? xasprintf("KV PUT failed: 413 Value length "
							    "exceeds limit of %d.",
							    KV_VALUE_MAX)
						: xasprintf("the request body is over the limit "
							    "of %llu bytes",
							    (unsigned long long)r->body_max);
				buf_free(&r->body);
				r->discarded += n;
				return MHD_YES;
			}
			if (c->state_bytes + n > CTL_STATE_BYTES_MAX) {
				r->body_failed = 1;
				r->fail_status = 503;
				r->fail_msg =
					xasprintf("the host holds %llu MiB of other KV and D1 "
						  "requests' bodies already: retry later",
						  (unsigned long long)(CTL_STATE_BYTES_MAX >> 20));
				buf_free(&r->body);
				r->discarded += n;
				return MHD_YES;
			}
			c->state_bytes += n;
			r->counted += n;
			buf_append(&r->body, upload, n);
			return MHD_YES;
		}
		if (buf_used(&r->body) + n > CTL_JSON_MAX) {
			r->body_failed = 1;
			r->fail_status = 413;
			r->fail_msg = xstrdup("request body too large");
			return MHD_YES;
		}
		buf_append(&r->body, upload, n);
		return MHD_YES;
	}

	/* The whole request is in. */
	if (r->pend_out) {
		int d = store_durable(c->sink->store, r->pend_ticket);
		if (d == 0 && !c->stopping) {
			suspend(r); /* ctl_store_synced resumes */
			return MHD_YES;
		}
		waiting_unlink(r);
		json_t *out = r->pend_out;
		r->pend_out = NULL;
		if (d < 0) {
			json_decref(out);
			return queue_error(r, 500,
					   "the change was made but the store could not make "
					   "it durable (an fsync failed): see the host's log");
		}
		return queue_json(r, r->pend_status, out);
	}
	if (r->fail_status)
		return queue_error(r, r->fail_status, r->fail_msg);
	if (r->kind == K_STATE)
		return state_request(r);
	if (r->kind == K_UPLOAD) {
		if (r->cs) {
			if (!r->cs->decided) {
				suspend(r);
				return MHD_YES;
			}
			if (r->cs->refused)
				return queue_error(r, r->cs->status, r->cs->msg);
			return queue_stream(r);
		}
		if (spool_bytes(r->spool) == 0) {
			drop_spool(r);
			return queue_error(r, 400, "the request has no bundle in its body");
		}
		/* The spool's thread writes the last bytes; its fsync (up to the
		 * bundle limit) is the unpacking child's. */
		if (!r->spool_ended) {
			spool_end(r->spool);
			r->spool_ended = 1;
		}
		if (!spool_done(r->spool)) {
			suspend(r); /* spool_ready resumes */
			return MHD_YES;
		}
		char hex[STORE_SHA_HEX + 1], err[256], *tmp;
		uint64_t bytes;
		struct blob_writer *w = spool_take(r->spool, err, sizeof err);
		r->spool = NULL;
		uploads_unlink(r);
		if (!w) {
			char m[320];
			snprintf(m, sizeof m, "cannot store the upload: %s", err);
			return queue_error(r, 500, m);
		}
		if (blob_finish(w, hex, &tmp, &bytes, err, sizeof err) < 0)
			return queue_error(r, 500, err);
		r->cs = stream_new(r);
		r->cs->durable = 1;
		c->sink->deploy(c->sink->arg, r->worker, hex, tmp, bytes, r->message, r->percentage,
				r->env[0] ? r->env : NULL, r->cs);
		free(tmp);
		if (!r->cs->decided) {
			suspend(r);
			return MHD_YES;
		}
		if (r->cs->refused)
			return queue_error(r, r->cs->status, r->cs->msg);
		return queue_stream(r);
	}
	json_t *body = NULL;
	if (buf_used(&r->body)) {
		json_error_t je;
		body = json_loadb((const char *)buf_head(&r->body), buf_used(&r->body), 0, &je);
		if (!body || !json_is_object(body)) {
			int parsed = body != NULL;
			json_decref(body);
			/* jansson quotes the text near the error ("near '...'"): for
			 * a secret that is its value, so only the reason and where. */
			char m[256], *near = strstr(je.text, " near ");
			if (near)
				*near = 0;
			if (parsed)
				snprintf(m, sizeof m, "the body must be a JSON object");
			else
				snprintf(m, sizeof m,
					 "the body must be a JSON object (%s at line %d, "
					 "column %d)",
					 je.text, je.line, je.column);
			return queue_error(r, 400, m);
		}
	}
	json_t *out = NULL;
	unsigned st = c->sink->api(c->sink->arg, r->method, r->worker, r->what, body, &out);
	json_decref(body);
	if (!out)
		out = json_pack("{s:s}", "error", "no answer");
	/* A change is answered once the store has it on disk. */
	uint64_t t = store_ticket(c->sink->store);
	if (strcmp(r->method, "GET") && !c->stopping && store_durable(c->sink->store, t) == 0) {
		r->pend_out = out;
		r->pend_status = st;
		r->pend_ticket = t;
		r->wait_prev = NULL;
		r->wait_next = c->waiting;
		if (c->waiting)
			c->waiting->wait_prev = r;
		c->waiting = r;
		suspend(r);
		return MHD_YES;
	}
	return queue_json(r, st, out);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct creq *r = *req_cls;
	if (!r)
		return;
	*req_cls = NULL;
	drop_spool(r);
	if (r->pend_out) {
		waiting_unlink(r);
		json_decref(r->pend_out);
	}
	if (r->cs) {
		r->cs->r = NULL;
		stream_free(r->cs);
	}
	if (r->state) {
		states_unlink(r);
		if (r->state->answered)
			state_free(r->state);
		else
			r->state->r = NULL;
	}
	free(r->state_path);
	r->c->state_bytes -= r->counted;
	buf_free(&r->body);
	free(r->fail_msg);
	free(r->message);
	free(r);
}

struct ctl *ctl_start(const struct ctl_sink *sink, struct loop *l, const char *ip, unsigned port,
		      unsigned *bound, char *err, size_t errlen)
{
	int fd = host_listen(ip, port, "--control", bound, err, errlen);
	if (fd < 0)
		return NULL;
	struct ctl *c = xcalloc(1, sizeof *c);
	c->sink = sink;
	c->loop = l;
	c->listen_fd = fd;
	c->keepalive.fn = keepalive_fn;
	c->keepalive.arg = c;
	c->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
				  on_request, c, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, c,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)128 * 1024,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
				  MHD_OPTION_EXTERNAL_LOGGER, host_mhd_log, "control",
				  MHD_OPTION_END);
	if (!c->mhd || host_mhd_attach(l, c->mhd, &c->watch) < 0) {
		snprintf(err, errlen, "cannot start the control API's HTTP server");
		if (c->mhd)
			MHD_stop_daemon(c->mhd);
		close(fd);
		free(c);
		return NULL;
	}
	return c;
}

void ctl_stop(struct ctl *c)
{
	if (!c)
		return;
	/* MHD must not be stopped with suspended connections. */
	c->stopping = 1;
	for (struct creq *r = c->waiting; r; r = r->wait_next)
		resume(r);
	for (struct creq *r = c->states; r; r = r->st_next)
		resume(r);
	while (c->uploads) {
		struct creq *r = c->uploads;
		fail_upload(r, 503, xstrdup("the host is shutting down"));
		resume(r);
	}
	for (struct ctl_stream *cs = c->streams; cs; cs = cs->next) {
		release_held(cs, 1);
		cs->ended = 1;
		if (!cs->decided) {
			cs->decided = cs->refused = 1;
			cs->status = 503;
			cs->msg = xstrdup("the host is shutting down");
		}
		if (cs->r)
			resume(cs->r);
	}
	MHD_run(c->mhd);
	loop_timer_cancel(c->loop, &c->keepalive);
	loop_del(c->loop, &c->watch);
	MHD_stop_daemon(c->mhd);
	close(c->listen_fd);
	free(c);
}
