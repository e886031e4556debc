/*
 * The HTTP front: libmicrohttpd in external-epoll mode, run from our loop.
 *
 * A request's life here (struct hreq):
 *   URI log callback   -> hreq created with the raw request target;
 *   first access call  -> limits checked, head encoded, handed to the pool;
 *   upload calls       -> body handed to pool_send_body while it takes it
 *                         (the instance has credit and its queue is short);
 *                         otherwise the connection is suspended and woken by
 *                         the pool;
 *   final access call  -> pool_end_body; once the response head is in
 *                         (front_resp_head), a response whose reader streams
 *                         the body as it arrives (front_resp_data) and
 *                         suspends when there is none yet;
 *   completed callback -> detached from the pool and freed.
 * Errors found anywhere set fail_status; the next access call answers with it.
 *
 * The front owns the HTTP side of a request (struct hreq, host.h): it never
 * touches an instance or a frame; the pool tells it about the response
 * through front_resp_head/_data/_end/_abort and front_fail.
 *
 * Blocking: nothing, but a response that arrives while its upload is still
 * coming is buffered in memory, then in an unlinked temporary file
 * (bounded by SPILL_MAX).
 */
#include "host/host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/assets.h"
#include "project/project.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/frame.h"

/* Upload bytes discarded after an error before we give up on the connection. */
#define DISCARD_MAX (64u << 20)
/* Response bytes kept in memory while the upload is still arriving (MHD
 * sends nothing before the whole request is in); more go to a temp file. */
#define RESP_MEM_MAX (1u << 20)
#define SPILL_MAX (1ull << 30)
/* The part of an internal request's response body its owner gets. */
#define INTERNAL_BODY_MAX 4096u

/* An internal request (front_internal_submit) has ended: finish it at a safe
 * time, after the pool's and the instance's code that told us returned. */
static void internal_end(struct hreq *r)
{
	if (!r->internal_done)
		loop_timer_arm(r->h->loop, &r->internal_finish, 0);
}

void front_wake(struct hreq *r)
{
	if (r->internal)
		return;
	if (r->suspended) {
		r->suspended = 0;
		MHD_resume_connection(r->conn);
	}
}

static void suspend(struct hreq *r)
{
	if (!r->suspended) {
		r->suspended = 1;
		MHD_suspend_connection(r->conn);
	}
}

void front_fail(struct hreq *r, unsigned status, const char *body)
{
	if (r->fail_status || r->queued)
		return;
	r->fail_status = status;
	r->fail_body = xstrdup(body);
	loop_timer_cancel(r->h->loop, &r->timeout);
	if (r->internal)
		internal_end(r);
	front_wake(r);
}

void front_fail_retry(struct hreq *r, unsigned status, const char *body, unsigned retry_after)
{
	if (r->fail_status || r->queued)
		return;
	r->fail_retry_after = retry_after;
	front_fail(r, status, body);
}

void front_resp_head(struct hreq *r, unsigned status, const uint8_t *headers, size_t len)
{
	r->resp_status = status;
	buf_append(&r->resp_headers, headers, len);
	r->resp_head = 1;
	r->t_head = now_ns();
	loop_timer_cancel(r->h->loop, &r->timeout);
	if (r->internal && r->sink)
		r->sink->head(r, r->sink_arg, status, headers, len);
	front_wake(r);
}

void front_resp_end(struct hreq *r)
{
	r->resp_end = 1;
	if (r->internal)
		internal_end(r);
	front_wake(r);
}

int front_resp_abort(struct hreq *r, unsigned status, const char *body)
{
	if (!r->internal && !r->queued && !r->fail_status) {
		/* MHD has not been given the response (the upload is still
		 * arriving, or the head came in the read that found the end):
		 * nothing of it went out, so the client can still be told. What
		 * was buffered of it is freed with r. */
		front_fail(r, status, body);
		return 1;
	}
	r->resp_failed = 1;
	if (r->internal)
		internal_end(r);
	front_wake(r);
	return 0;
}

static void timeout_fn(struct loop *l, struct loop_timer *t)
{
	struct hreq *r = t->arg;
	if (!r->resp_head && !r->fail_status)
		pool_timeout(r);
}

static void spill_close(struct hreq *r);

static void reqs_link(struct host *h, struct hreq *r)
{
	r->all_next = h->all_reqs;
	if (h->all_reqs)
		h->all_reqs->all_prev = r;
	h->all_reqs = r;
}

static void reqs_unlink(struct host *h, struct hreq *r)
{
	if (r->all_prev)
		r->all_prev->all_next = r->all_next;
	else
		h->all_reqs = r->all_next;
	if (r->all_next)
		r->all_next->all_prev = r->all_prev;
	r->all_next = r->all_prev = NULL;
}

static void hreq_free(struct hreq *r)
{
	buf_free(&r->head);
	buf_free(&r->internal_body);
	buf_free(&r->resp_headers);
	buf_free(&r->resp_body);
	spill_close(r);
	free(r->fail_body);
	free(r->uri);
	free(r);
}

static void internal_finish_fn(struct loop *l, struct loop_timer *t)
{
	struct hreq *r = t->arg;
	struct host *h = r->h;
	r->internal_done = 1;
	if (r->on_attach) { /* it never reached an instance */
		void (*fn)(void *, unsigned) = r->on_attach;
		r->on_attach = NULL;
		fn(r->attach_arg, 0);
	}
	pool_forget(r);
	loop_timer_cancel(l, &r->timeout);
	reqs_unlink(h, r);
	if (r->internal_cb)
		r->internal_cb(r, r->internal_arg);
	hreq_free(r);
}

static struct hreq *internal_start(struct app *a, const char *method, const char *uri,
				   struct buf *head, struct buf *body, double timeout_ms,
				   const struct internal_sink *sink, void *sink_arg,
				   void (*done)(struct hreq *r, void *arg), void *arg, unsigned pin,
				   void (*on_attach)(void *arg, unsigned id), void *attach_arg)
{
	struct host *h = a->h;
	struct hreq *r = xcalloc(1, sizeof *r);
	r->h = h;
	r->internal = 1;
	r->sink = sink;
	r->sink_arg = sink_arg;
	r->internal_cb = done;
	r->internal_arg = arg;
	r->internal_finish.fn = internal_finish_fn;
	r->internal_finish.arg = r;
	r->uri = xstrdup(uri);
	r->method = method;
	r->t_arrive = now_ns();
	r->timeout.fn = timeout_fn;
	r->timeout.arg = r;
	r->spill_fd = -1;
	r->started = 1;
	r->upload_done = 1;
	r->head = *head;
	*head = (struct buf){0};
	if (body) {
		r->internal_body = *body;
		*body = (struct buf){0};
	}
	snprintf(r->rid, sizeof r->rid, "%016llx",
		 (unsigned long long)(h->rid_prefix ^ ++h->rid_counter));
	r->pin_instance = pin;
	r->on_attach = on_attach;
	r->attach_arg = attach_arg;
	reqs_link(h, r);
	r->internal_timeout_ms = timeout_ms;
	loop_timer_arm(h->loop, &r->timeout, timeout_ms);
	pool_submit(a, r);
	return r;
}

struct hreq *front_internal_submit(struct app *a, const char *method, const char *uri,
				   struct buf *head, struct buf *body, double timeout_ms,
				   void (*done)(struct hreq *r, void *arg), void *arg)
{
	return internal_start(a, method, uri, head, body, timeout_ms, NULL, NULL, done, arg, 0, NULL,
			      NULL);
}

struct hreq *front_internal_stream(struct app *a, const char *method, const char *uri,
				   struct buf *head, struct buf *body, double timeout_ms,
				   const struct internal_sink *sink, void *sink_arg,
				   void (*done)(struct hreq *r, void *arg), void *arg)
{
	return internal_start(a, method, uri, head, body, timeout_ms, sink, sink_arg, done, arg, 0,
			      NULL, NULL);
}

struct hreq *front_internal_stream_pinned(struct app *a, const char *method, const char *uri,
					  struct buf *head, struct buf *body, double timeout_ms,
					  const struct internal_sink *sink, void *sink_arg,
					  void (*done)(struct hreq *r, void *arg), void *arg,
					  unsigned pin_instance,
					  void (*on_attach)(void *arg, unsigned instance_id),
					  void *attach_arg)
{
	return internal_start(a, method, uri, head, body, timeout_ms, sink, sink_arg, done, arg,
			      pin_instance, on_attach, attach_arg);
}

void front_internal_grant(struct hreq *r, uint32_t n)
{
	if (r && !r->internal_done && n)
		pool_grant(r, n);
}

void front_internal_abandon(struct hreq *r)
{
	if (!r)
		return;
	/* Even while it finishes (internal_done, inside pool_forget, which may
	 * close the instance whose call owns it): its owner is gone, so it must
	 * not be told. */
	r->sink = NULL;
	r->internal_cb = NULL;
	if (!r->internal_done)
		internal_end(r); /* from the loop: pool_forget may close the instance calling us */
}

void front_internal_cancel(struct hreq *r)
{
	if (!r)
		return;
	r->internal_cb = NULL;
	r->sink = NULL;
	if (r->internal_done)
		return; /* finishing already (internal_finish_fn): told no one now */
	loop_timer_cancel(r->h->loop, &r->internal_finish);
	internal_finish_fn(r->h->loop, &r->internal_finish);
}

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct host *h = cls;
	struct hreq *r = xcalloc(1, sizeof *r);
	r->h = h;
	r->conn = conn;
	r->uri = xstrdup(uri);
	r->t_arrive = now_ns();
	r->timeout.fn = timeout_fn;
	r->timeout.arg = r;
	r->spill_fd = -1;
	reqs_link(h, r);
	return r;
}

static void add_header(struct MHD_Response *resp, const char *k, const char *v)
{
	if (MHD_add_response_header(resp, k, v) != MHD_YES)
		log_warn("response header %s rejected", k);
}

static void add_timing(struct hreq *r, struct MHD_Response *resp)
{
	if (r->rid[0])
		add_header(resp, "cf-ray", r->rid);
	if (!r->h->server_timing)
		return;
	char v[160];
	uint64_t now = now_ns();
	if (r->start_desc) {
		uint64_t head = r->t_head ? r->t_head : now;
		snprintf(v, sizeof v, "start;desc=\"%s\";dur=%.2f, handler;dur=%.2f", r->start_desc,
			 ns_to_ms(r->t_assigned - r->t_arrive), ns_to_ms(head - r->t_assigned));
	} else {
		snprintf(v, sizeof v, "start;desc=\"none\";dur=%.2f", ns_to_ms(now - r->t_arrive));
	}
	add_header(resp, "Server-Timing", v);
}

static enum MHD_Result queue_text(struct hreq *r, unsigned status, const char *body)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	add_header(resp, "Content-Type", "text/plain;charset=UTF-8");
	if (r->fail_retry_after && status == r->fail_status) {
		char v[16];
		snprintf(v, sizeof v, "%u", r->fail_retry_after);
		add_header(resp, "Retry-After", v);
	}
	add_timing(r, resp);
	enum MHD_Result ok = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	r->resp_status = status;
	return ok;
}

static enum MHD_Result queue_fail(struct hreq *r)
{
	if (r->fail_status == 500 && !r->h->dev)
		return queue_text(r, 500, "Internal Server Error\n");
	return queue_text(r, r->fail_status, r->fail_body ? r->fail_body : "error\n");
}

static void spill_close(struct hreq *r)
{
	if (r->spill_fd >= 0)
		close(r->spill_fd);
	r->spill_fd = -1;
	r->spill_wr = r->spill_rd = 0;
}

void front_resp_data(struct hreq *r, const uint8_t *p, size_t n)
{
	/* Until MHD can send (the request is still arriving) the instance gets
	 * its credit back at once, so a handler that streams the request body
	 * into the response keeps going; the bytes wait here, spilling to an
	 * unlinked file past RESP_MEM_MAX. Afterwards credit returns only as
	 * the client takes bytes, which bounds what is held. */
	int early = !r->queued;
	if (r->resp_failed)
		return;
	if (r->internal && r->sink) {
		/* The owner returns the credit as it passes the bytes on. */
		r->sink->data(r, r->sink_arg, p, n);
		return;
	}
	if (r->internal) {
		/* Kept up to a bound for its owner; credit goes back at once. */
		size_t room = INTERNAL_BODY_MAX - buf_used(&r->resp_body);
		buf_append(&r->resp_body, p, n < room ? n : room);
		pool_grant(r, (uint32_t)n);
		return;
	}
	if (r->spill_fd < 0 && early && buf_used(&r->resp_body) + n > RESP_MEM_MAX) {
		const char *tmp = getenv("TMPDIR");
		r->spill_fd = open(tmp && *tmp ? tmp : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (r->spill_fd < 0) {
			log_warn("cannot buffer a response body: %s", strerror(errno));
			r->resp_failed = 1;
			front_wake(r);
			return;
		}
	}
	if (r->spill_fd >= 0) {
		if (r->spill_wr + n > SPILL_MAX) {
			log_warn("%s %s: response buffered before the upload ended is over %llu bytes",
				 r->method, r->uri, (unsigned long long)SPILL_MAX);
			r->resp_failed = 1;
			front_wake(r);
			return;
		}
		size_t done = 0;
		while (done < n) {
			ssize_t w = pwrite(r->spill_fd, p + done, n - done, (off_t)(r->spill_wr + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				log_warn("cannot buffer a response body: %s", strerror(errno));
				r->resp_failed = 1;
				front_wake(r);
				return;
			}
			done += (size_t)w;
		}
		r->spill_wr += n;
	} else {
		buf_append(&r->resp_body, p, n);
	}
	if (early) {
		r->pregranted += n;
		pool_grant(r, (uint32_t)n);
	}
	front_wake(r);
}

/* Streams the response body as the instance sends it. */
static ssize_t body_reader(void *cls, uint64_t pos, char *out, size_t max)
{
	struct hreq *r = cls;
	size_t n = 0;
	size_t have = buf_used(&r->resp_body);
	if (have) {
		n = have < max ? have : max;
		memcpy(out, buf_head(&r->resp_body), n);
		buf_consume(&r->resp_body, n);
		buf_shrink(&r->resp_body, THAW_STREAM_WINDOW);
	} else if (r->spill_fd >= 0 && r->spill_rd < r->spill_wr) {
		uint64_t left = r->spill_wr - r->spill_rd;
		ssize_t got = pread(r->spill_fd, out, left < max ? (size_t)left : max,
				    (off_t)r->spill_rd);
		if (got <= 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		n = (size_t)got;
		r->spill_rd += n;
		if (r->spill_rd == r->spill_wr)
			spill_close(r);
	}
	if (n) {
		uint64_t pre = n < r->pregranted ? n : r->pregranted;
		r->pregranted -= pre;
		if (n > pre)
			pool_grant(r, (uint32_t)(n - pre));
		return (ssize_t)n;
	}
	if (r->resp_failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (r->resp_end)
		return MHD_CONTENT_READER_END_OF_STREAM;
	suspend(r);
	return 0;
}

static int token_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

static enum MHD_Result queue_stream(struct hreq *r)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	uint64_t size = MHD_SIZE_UNKNOWN;
	if (thaw_kv_begin(&it, buf_head(&r->resp_headers), buf_used(&r->resp_headers), &err) < 0)
		return queue_text(r, 502, "The worker sent a malformed response.\n");
	/* First pass: a Content-Length the worker set lets MHD frame the body. */
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (kv.klen == 14 && strncasecmp((const char *)kv.key, "content-length", 14) == 0 &&
		    kv.vlen > 0 && kv.vlen < 20) {
			char v[24];
			uint64_t n;
			memcpy(v, kv.val, kv.vlen);
			v[kv.vlen] = 0;
			if (parse_u64(v, UINT64_MAX - 1, &n) == 0)
				size = n;
		}
	}
	/* The whole response is here already (the common case: a handler that
	 * returns a body): one buffer, so MHD states its length and writes the
	 * head and the body in one send, where a streamed response costs a
	 * 64 KiB block and a send per chunk. Only when the worker stated no
	 * other length: a wrong Content-Length stays the worker's error. */
	size_t have = buf_used(&r->resp_body);
	int whole = r->resp_end && !r->resp_failed && r->spill_fd < 0 &&
		    (size == MHD_SIZE_UNKNOWN || size == have);
	/* HEAD: no body goes out, and libmicrohttpd 0.9.75 would still send a
	 * chunked terminator for an unknown size, corrupting the connection's
	 * next response. Give it an empty buffer instead (the worker's own
	 * Content-Length, if any, is lost: MHD states 0). */
	int head = !strcmp(r->method, "HEAD");
	/* 204 and 304 have no body either (RFC 9110 6.4.1): never chunked, and
	 * whatever the worker sent after the head is not sent. */
	int bodiless = r->resp_status == 204 || r->resp_status == 304;
	struct MHD_Response *resp;
	if ((head && size == MHD_SIZE_UNKNOWN) || bodiless)
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	else if (whole && !head)
		resp = MHD_create_response_from_buffer(have, (void *)buf_head(&r->resp_body),
						       MHD_RESPMEM_MUST_COPY);
	else
		resp = MHD_create_response_from_callback(size, 64 * 1024, body_reader, r, NULL);
	if (!resp)
		return MHD_NO;
	if ((whole && !head) || bodiless)
		buf_free(&r->resp_body);
	thaw_kv_begin(&it, buf_head(&r->resp_headers), buf_used(&r->resp_headers), &err);
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		char name[256], value[8192];
		if (kv.klen == 0 || kv.klen >= sizeof name || kv.vlen >= sizeof value)
			continue;
		int ok = 1;
		for (uint32_t i = 0; i < kv.klen; i++)
			ok &= token_char(kv.key[i]);
		for (uint32_t i = 0; i < kv.vlen; i++)
			ok &= kv.val[i] != '\r' && kv.val[i] != '\n' && kv.val[i] != 0;
		if (!ok) {
			log_warn("%s: dropped an invalid response header", app_label(r->app));
			continue;
		}
		memcpy(name, kv.key, kv.klen);
		name[kv.klen] = 0;
		memcpy(value, kv.val, kv.vlen);
		value[kv.vlen] = 0;
		/* Framing is MHD's business. */
		if (!strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
		    !strcasecmp(name, "connection") || !strcasecmp(name, "keep-alive"))
			continue;
		add_header(resp, name, value);
	}
	add_timing(r, resp);
	enum MHD_Result ok = MHD_queue_response(r->conn, r->resp_status, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	return ok;
}

struct head_ctx {
	struct buf *b;
	uint32_t count;
	uint64_t bytes;
	int trusted;     /* the peer is a trusted proxy: keep what it forwards */
	struct buf xff;  /* every X-Forwarded-For line, joined by commas */
	struct buf xfp;  /* likewise X-Forwarded-Proto */
};

static void join_value(struct buf *b, const char *value, size_t vlen)
{
	if (buf_used(b))
		buf_append(b, ",", 1);
	buf_append(b, value ? value : "", vlen);
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
				     size_t klen, const char *value, size_t vlen)
{
	struct head_ctx *c = cls;
	uint8_t n[4];
	if (klen == 16 && strncasecmp(key, "cf-connecting-ip", 16) == 0)
		return MHD_YES; /* set by us below, never taken from the client */
	if (klen == 6 && strncasecmp(key, "cf-ray", 6) == 0)
		return MHD_YES; /* likewise */
	if (klen == 10 && strncasecmp(key, "thaw-probe", 10) == 0)
		return MHD_YES; /* thaw serve's deploy check secret: never shown to a worker */
	if (klen == 17 && strncasecmp(key, "x-forwarded-proto", 17) == 0) {
		/* Replaced by the scheme we believe (below). */
		if (c->trusted)
			join_value(&c->xfp, value, vlen);
		return MHD_YES;
	}
	if (c->trusted && klen == 15 && strncasecmp(key, "x-forwarded-for", 15) == 0)
		join_value(&c->xff, value, vlen);
	c->count++;
	c->bytes += klen + vlen + 4;
	thaw_put_u32(n, (uint32_t)klen);
	buf_append(c->b, n, 4);
	buf_append(c->b, key, klen);
	thaw_put_u32(n, (uint32_t)vlen);
	buf_append(c->b, n, 4);
	buf_append(c->b, value ? value : "", vlen);
	return MHD_YES;
}

static void kv_put(struct buf *b, const char *k, const char *v)
{
	uint8_t n[4];
	size_t kl = strlen(k), vl = strlen(v);
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(b, n, 4);
	buf_append(b, k, kl);
	thaw_put_u32(n, (uint32_t)vl);
	buf_append(b, n, 4);
	buf_append(b, v, vl);
}

/* /__scheduled or /cdn-cgi/handler/scheduled, with or without a query. */
static int test_scheduled_path(const char *uri)
{
	static const char *const paths[] = {"/__scheduled", "/cdn-cgi/handler/scheduled"};
	for (size_t i = 0; i < 2; i++) {
		size_t n = strlen(paths[i]);
		if (!strncmp(uri, paths[i], n) && (uri[n] == 0 || uri[n] == '?'))
			return 1;
	}
	return 0;
}

/* A libmicrohttpd response for an assets reply (its fd is taken). */
static struct MHD_Response *asset_response(struct assets_reply *rp)
{
	struct MHD_Response *resp;
	if (rp->fd >= 0) {
		resp = MHD_create_response_from_fd_at_offset64(rp->length, rp->fd,
							      (uint64_t)rp->offset);
		if (resp)
			rp->fd = -1; /* MHD closes it */
	} else {
		const char *t = rp->text ? rp->text : "";
		resp = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return NULL;
	if (rp->content_type)
		add_header(resp, "Content-Type", rp->content_type);
	if (rp->etag[0])
		add_header(resp, "ETag", rp->etag);
	if (rp->cache_control && (rp->etag[0] || rp->status == 304))
		add_header(resp, "Cache-Control", "public, max-age=0, must-revalidate");
	if (rp->accept_ranges)
		add_header(resp, "Accept-Ranges", "bytes");
	if (rp->content_range[0])
		add_header(resp, "Content-Range", rp->content_range);
	if (rp->location)
		add_header(resp, "Location", rp->location);
	return resp;
}

/* Static assets first (assets.h): 1 when the request is for them (the
 * reply waits in r->asset for the final access call, when libmicrohttpd
 * can answer and keep the connection), 0 when it goes to the worker. No
 * instance is involved in an asset answer. */
static int take_asset(struct hreq *r, struct app *app)
{
	struct assets_request rq = {
		.method = r->method,
		.target = r->uri,
		.if_none_match = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							     "If-None-Match"),
		.range = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Range"),
		.sec_fetch_mode = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							      "Sec-Fetch-Mode"),
		.has_authorization =
			MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization") != NULL,
	};
	struct assets_reply *rp = xmalloc(sizeof *rp);
	if (assets_answer(app->assets, &rq, rp) != ASSETS_ANSWER) {
		free(rp);
		return 0;
	}
	r->app = app;
	r->asset = rp;
	return 1;
}

static enum MHD_Result queue_asset(struct hreq *r)
{
	struct assets_reply *rp = r->asset;
	struct MHD_Response *resp = asset_response(rp);
	if (!resp)
		return queue_text(r, 500, "The asset cannot be sent.\n");
	add_timing(r, resp);
	enum MHD_Result ok = MHD_queue_response(r->conn, rp->status, resp);
	MHD_destroy_response(resp);
	r->queued = 1;
	r->resp_status = rp->status;
	return ok;
}

static void asset_free(struct hreq *r)
{
	if (!r->asset)
		return;
	assets_reply_dispose(r->asset);
	free(r->asset);
	r->asset = NULL;
}

/* First call for a request: limits, head, routing. */
static enum MHD_Result first_call(struct hreq *r, const char *method, const char *version)
{
	struct host *h = r->h;
	r->started = 1;
	r->method = method;
	struct app *app = h->app;
	if (h->route) {
		char msg[512];
		unsigned status = 404;
		app = h->route(h, r, &status, msg, sizeof msg);
		if (!app)
			return queue_text(r, status, msg);
		r->app = app;
		snprintf(r->rid, sizeof r->rid, "%016llx",
			 (unsigned long long)(h->rid_prefix ^ ++h->rid_counter));
	}
	int scheduled = h->test_scheduled && test_scheduled_path(r->uri);
	if (app && app->assets && !r->worker_only && !scheduled && take_asset(r, app))
		return MHD_YES; /* answered by the final call */

	/* Who is asking: the TCP peer, or the client a trusted proxy names. */
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct proxy_addr peer;
	int have_peer = ci && proxy_addr_from_sockaddr(ci->client_addr, &peer) == 0;
	struct buf hdrs = {0};
	struct head_ctx c = {.b = &hdrs, .count = 0, .bytes = strlen(method) + strlen(r->uri)};
	c.trusted = have_peer && proxy_trusted(&h->trusted_proxies, &peer);
	MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, collect_header, &c);

	/* The head: :method, :url, the request's facts as ":cf-NAME" (request.cf),
	 * the headers as sent, then ours. */
	uint8_t n4[4] = {0};
	buf_append(&r->head, n4, 4); /* count, patched below */
	int https = c.trusted && proxy_forwarded_https((const char *)buf_head(&c.xfp),
						       buf_used(&c.xfp));
	const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
	char *url = xasprintf("%s://%s%s%s", https ? "https" : "http",
			      host && *host ? host : "localhost", r->uri[0] == '/' ? "" : "/",
			      r->uri);
	kv_put(&r->head, ":method", method);
	kv_put(&r->head, ":url", url);
	free(url);
	if (scheduled) {
		/* thaw dev --test-scheduled: this request fires the scheduled
		 * handler, as wrangler's /__scheduled does (pseudo-headers right
		 * after :url, where the runtime looks for them). */
		const char *cron =
			MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "cron");
		const char *time = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "time");
		char expr[HOST_SCHEDULED_CRON_MAX + 1];
		snprintf(expr, sizeof expr, "%s", cron ? cron : "");
		for (char *p = expr; *p; p++)
			if (*p == '+')
				*p = ' ';
		uint64_t ms;
		if (!time || parse_u64(time, (uint64_t)INT64_MAX, &ms) < 0)
			ms = (uint64_t)wall_ms();
		host_scheduled_pseudo(&r->head, expr, (int64_t)ms);
		c.count += 3;
	}
	kv_put(&r->head, ":cf-httpProtocol", version && *version ? version : "HTTP/1.1");
	c.count += 3;
	buf_append(&r->head, buf_head(&hdrs), buf_used(&hdrs));
	buf_free(&hdrs);
	kv_put(&r->head, "x-forwarded-proto", https ? "https" : "http");
	c.count++;
	if (have_peer) {
		struct proxy_addr client;
		char ipbuf[PROXY_ADDR_TEXT];
		proxy_client(&h->trusted_proxies, &peer, (const char *)buf_head(&c.xff),
			     buf_used(&c.xff), &client);
		proxy_addr_format(&client, ipbuf);
		if (ipbuf[0]) {
			kv_put(&r->head, "cf-connecting-ip", ipbuf);
			c.count++;
		}
	}
	buf_free(&c.xff);
	buf_free(&c.xfp);
	if (r->rid[0]) {
		kv_put(&r->head, "cf-ray", r->rid);
		c.count++;
	}
	if (c.bytes > h->lim.max_header_bytes || c.count > THAW_KV_MAX ||
	    buf_used(&r->head) > THAW_FRAME_MAX_PAYLOAD) {
		buf_free(&r->head);
		return queue_text(r, 431, "Request header fields too large.\n");
	}
	thaw_put_u32(buf_head(&r->head), c.count);

	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Content-Length");
	uint64_t len;
	if (cl && parse_u64(cl, UINT64_MAX, &len) == 0 && len > h->lim.max_body_bytes) {
		buf_free(&r->head);
		return queue_text(r, 413, "Request body too large.\n");
	}

	loop_timer_arm(h->loop, &r->timeout, h->lim.timeout_ms);
	pool_submit(app, r);
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct hreq *r = *req_cls;
	if (!r)
		return MHD_NO; /* cannot happen: the URI log callback made it */
	if (!r->started)
		return first_call(r, method, version);

	if (*upload_size) {
		if (r->fail_status || r->discarding || r->resp_end || r->asset) {
			/* Answer known already: drop the rest of the body. */
			r->discarded += *upload_size;
			*upload_size = 0;
			return r->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
		}
		if (r->body_bytes + *upload_size > r->h->lim.max_body_bytes) {
			/* MHD cannot answer mid-upload: read and drop the rest
			 * (up to DISCARD_MAX), then answer 413. */
			r->discarding = 1;
			pool_forget(r);
			front_fail(r, 413, "Request body too large.\n");
			r->discarded += *upload_size;
			*upload_size = 0;
			return MHD_YES;
		}
		size_t n = pool_send_body(r, upload, *upload_size);
		if (n == 0) {
			suspend(r); /* woken by attach, WINDOW or a drained queue */
			return MHD_YES;
		}
		r->body_bytes += n;
		*upload_size -= n;
		return MHD_YES;
	}

	/* The whole request has arrived. */
	r->upload_done = 1;
	if (r->fail_status)
		return queue_fail(r);
	if (r->asset)
		return queue_asset(r);
	pool_end_body(r);
	if (r->resp_head)
		return queue_stream(r);
	suspend(r); /* until the response head, a failure or the time limit */
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct host *h = cls;
	struct hreq *r = *req_cls;
	if (!r)
		return;
	*req_cls = NULL;
	if (r->started && !r->asset)
		pool_forget(r);
	loop_timer_cancel(h->loop, &r->timeout);
	if (h->dev && r->started) {
		double ms = ns_to_ms(now_ns() - r->t_arrive);
		const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
				  : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? " (client went away)"
									       : " (aborted)";
		fprintf(stdout, "[%s] %s %s %u %.1fms%s%s\n", app_label(r->app ? r->app : h->app), r->method, r->uri,
			r->resp_status, ms, r->start_desc && strcmp(r->start_desc, "boot") == 0
						   ? " (cold start)" : "",
			how);
		h->log_pending = 1; /* flushed after MHD's turn (front_after) */
	}
	asset_free(r);
	reqs_unlink(h, r);
	hreq_free(r);
}

void host_mhd_log(void *cls, const char *fmt, va_list ap)
{
	if (thaw_log_level < LOG_DEBUG)
		return;
	char line[512];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	log_debug("%s: %s", (const char *)cls, line);
}

static void mhd_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	/* The after-iteration hook runs MHD. */
}

static void mhd_after(struct loop *l, void *arg)
{
	MHD_run(arg);
}

static long mhd_timeout(void *arg)
{
	MHD_UNSIGNED_LONG_LONG t;
	if (MHD_get_timeout(arg, &t) == MHD_YES)
		return t > 60000 ? 60000 : (long)t;
	return -1;
}

/* The front's turn: MHD reads requests and writes responses. The frames it
 * makes for instances (a request's head and end, for every connection it
 * served) collect and go out in one write per instance after it, and the
 * dev log's lines in one write: a write to a socket wakes its reader, and
 * on this path the wake-ups are the cost (docs/architecture.md). */
static void front_after(struct loop *l, void *arg)
{
	struct host *h = arg;
	pool_cork(h);
	MHD_run(h->mhd);
	pool_uncork(h);
	if (h->log_pending) {
		h->log_pending = 0;
		fflush(stdout);
	}
}

static long front_timeout(void *arg)
{
	return mhd_timeout(((struct host *)arg)->mhd);
}

static int mhd_attach(struct loop *l, struct MHD_Daemon *d, struct loop_watch *w,
		      loop_hook_fn after, long (*timeout)(void *arg), void *arg)
{
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di)
		return -1;
	w->fd = di->epoll_fd;
	w->fn = mhd_io;
	w->arg = d;
	loop_add(l, w, EPOLLIN);
	loop_set_hook(l, after, timeout, arg);
	return 0;
}

int host_mhd_attach(struct loop *l, struct MHD_Daemon *d, struct loop_watch *w)
{
	return mhd_attach(l, d, w, mhd_after, mhd_timeout, d);
}

int host_listen(const char *ip, unsigned port, const char *flag, unsigned *bound_port, char *err,
		size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		sl = sizeof *a4;
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		sl = sizeof *a6;
	} else {
		snprintf(err, errlen, "'%s' is not an IP address", ip);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
		int e = errno;
		close(fd);
		if (e == EADDRINUSE)
			snprintf(err, errlen,
				 "address %s port %u is already in use (another thaw dev or server "
				 "is running there): choose another with %s",
				 ip, port, flag);
		else
			snprintf(err, errlen, "cannot listen on %s port %u: %s", ip, port,
				 strerror(e));
		return -1;
	}
	if (listen(fd, 1024) < 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*bound_port = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
	return fd;
}

int front_start(struct host *h, const char *ip, unsigned port, unsigned *bound_port, char *err,
		size_t errlen)
{
	int fd = host_listen(ip, port, "--port", bound_port, err, errlen);
	if (fd < 0)
		return -1;

	/* MHD's per-connection pool must hold our header limit with room to spare;
	 * our own check in first_call answers 431 precisely. */
	size_t pool = (size_t)h->lim.max_header_bytes * 2 + 32 * 1024;
	h->listen_fd = fd;
	h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
				  on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_URI_LOG_CALLBACK, uri_log, h,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)4000,
				  MHD_OPTION_EXTERNAL_LOGGER, host_mhd_log, "http", MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "cannot start the HTTP server");
		close(fd);
		return -1;
	}
	if (mhd_attach(h->loop, h->mhd, &h->mhd_watch, front_after, front_timeout, h) < 0) {
		snprintf(err, errlen, "libmicrohttpd has no epoll support");
		MHD_stop_daemon(h->mhd);
		return -1;
	}
	return 0;
}

void front_stop(struct host *h)
{
	if (!h->mhd)
		return;
	/* Internal requests end here, unanswered (their owners are told). */
	for (struct hreq *r = h->all_reqs, *next; r; r = next) {
		next = r->all_next;
		if (r->internal && !r->internal_done) {
			/* One that ended just now (its finish timer armed) keeps its answer. */
			if (!r->fail_status && !r->resp_end && !r->resp_failed)
				r->fail_status = 503;
			loop_timer_cancel(h->loop, &r->internal_finish);
			internal_finish_fn(h->loop, &r->internal_finish);
		}
	}
	/* MHD must not be stopped with suspended connections. */
	for (struct hreq *r = h->all_reqs; r; r = r->all_next) {
		r->resp_failed = 1;
		if (!r->fail_status && !r->queued) {
			r->fail_status = 503;
			r->fail_body = xstrdup("The server is shutting down.\n");
		}
		front_wake(r);
	}
	MHD_run(h->mhd);
	loop_del(h->loop, &h->mhd_watch);
	MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
	close(h->listen_fd);
}
