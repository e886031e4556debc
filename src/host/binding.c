/*
 * Bindings: what worker code reaches through env (env.ASSETS, and in issue
 * 11 KV, D1, R2, Durable Objects, Queues), served by the host because an
 * instance is sandboxed and must not open the data itself.
 *
 * THE REGISTRY: each app has a list of bindings keyed by name (struct
 * binding, host.h), made from its configuration by bindings_setup. A binding
 * has a kind (struct binding_kind below: its type name, told to the worker
 * in INIT, and its methods). The assets fetcher is the first kind.
 *
 * A CALL (frame.h): the worker sends CALL on a stream id of its own space
 * (>= THAW_STREAM_WORKER_BASE) naming the binding, the method and the
 * arguments. The host answers synchronously with CALL_HEAD (or CALL_ERROR)
 * and, for a result with a body, a struct bcall keeps the file being sent:
 * CALL_BODY frames go out while the call holds credit (THAW_STREAM_WINDOW to
 * start, WINDOW from the worker as it reads), then CALL_END.
 *
 * BOUNDS: a call is one frame (<= THAW_FRAME_MAX_PAYLOAD, a valid key/value
 * list); at most THAW_CALLS_MAX calls of an instance are in flight, more are
 * refused with CALL_ERROR; a call's body is read in chunks of at most 64 KiB
 * and only as far as its credit goes and while the instance's output queue
 * holds less than CALL_QUEUE_MAX (binding_on_writable goes on when it
 * drains), so neither a large asset, a slow reader nor an instance that
 * does not read at all grows the host's memory.
 *
 * OWNERSHIP: a bcall belongs to its instance (in->calls) and ends with
 * CALL_END, CALL_ERROR, CANCEL from the worker, or the instance's close. It
 * holds an fd of its own, never the app's assets, so a reload in thaw dev
 * (which frees them) does not touch calls in flight.
 *
 * BLOCKING: one pread of at most 64 KiB per chunk, within the credit.
 */
#include "host/pool_internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/assets.h"
#include "project/project.h"
#include "proto/frame.h"

#define CALL_CHUNK (64u * 1024u)
/* Body bytes go into an instance's output queue only while it holds less
 * than this. Credit alone does not bound the host's memory: an instance can
 * grant it, or send call after call, without reading its socket, and each
 * call would otherwise queue up to a window of file. */
#define CALL_QUEUE_MAX THAW_STREAM_WINDOW

struct bcall {
	uint32_t stream;
	int fd;
	uint64_t offset, left;
	uint32_t credit;
	struct bcall *next;
};

/* The arguments of a call: its key/value pairs after ":binding" and
 * ":call" (borrowed from the frame). */
struct call_args {
	const uint8_t *kv;
	size_t len;
};

/* A method's answer: CALL_HEAD's status and key/value list (an encoded
 * list, owned), and an optional body from an fd (taken). */
struct call_result {
	unsigned status;
	struct buf head;
	int fd;
	uint64_t offset, length;
	const char *text; /* or a short static body (fd -1), or NULL */
};

struct binding_kind {
	const char *type; /* told to the worker in INIT */
	/* Run method with args: 0 with res filled, or -1 with err (sent as
	 * CALL_ERROR). */
	int (*call)(void *ctx, const char *method, const struct call_args *args,
		    struct call_result *res, char *err, size_t errlen);
};

/* --- the assets kind --- */

static void kv_add(struct buf *b, uint32_t *count, const char *k, const char *v)
{
	uint8_t n[4];
	size_t kl = strlen(k), vl = strlen(v);
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(b, n, 4);
	buf_append(b, k, kl);
	thaw_put_u32(n, (uint32_t)vl);
	buf_append(b, n, 4);
	buf_append(b, v, vl);
	(*count)++;
}

/* A header value of the call's arguments as a string (copied into out);
 * NULL when absent or unusable. */
static const char *arg_value(const struct call_args *args, const char *name, char *out,
			     size_t outlen)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	if (thaw_kv_begin(&it, args->kv, args->len, &err) < 0)
		return NULL;
	size_t nl = strlen(name);
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (kv.klen == nl && !strncasecmp((const char *)kv.key, name, nl)) {
			if (kv.vlen >= outlen || memchr(kv.val, 0, kv.vlen))
				return NULL;
			memcpy(out, kv.val, kv.vlen);
			out[kv.vlen] = 0;
			return out;
		}
	}
	return NULL;
}

/* The request target of a URL ("https://host/a?b" -> "/a?b"; "/a" stays). */
static const char *url_target(const char *url)
{
	const char *scheme = strstr(url, "://");
	if (!scheme || strcspn(url, "/?#") < (size_t)(scheme - url))
		return url;
	const char *p = scheme + 3;
	p += strcspn(p, "/?#");
	return *p == '/' ? p : NULL;
}

static int assets_call(void *ctx, const char *method, const struct call_args *args,
		       struct call_result *res, char *err, size_t errlen)
{
	struct assets *a = ctx;
	if (strcmp(method, "fetch") != 0) {
		snprintf(err, errlen, "the assets binding has no method '%.64s' (it has fetch)", method);
		return -1;
	}
	char m[32], url[ASSETS_PATH_MAX * 3 + 512], inm[1024], range[256], mode[64], auth[8];
	const char *u = arg_value(args, ":url", url, sizeof url);
	const char *target = u ? url_target(u) : NULL;
	if (!arg_value(args, ":method", m, sizeof m) || !target) {
		snprintf(err, errlen, "fetch() needs a request or an absolute URL (with a path)");
		return -1;
	}
	struct assets_request rq = {
		.method = m,
		.target = target,
		.if_none_match = arg_value(args, "if-none-match", inm, sizeof inm),
		.range = arg_value(args, "range", range, sizeof range),
		.sec_fetch_mode = arg_value(args, "sec-fetch-mode", mode, sizeof mode),
		.has_authorization = arg_value(args, "authorization", auth, sizeof auth) != NULL,
		.binding = 1,
	};
	/* An Authorization header longer than auth[] is still one. */
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *e;
	if (thaw_kv_begin(&it, args->kv, args->len, &e) == 0)
		while (thaw_kv_next(&it, &kv, &e) == 1)
			if (kv.klen == 13 && !strncasecmp((const char *)kv.key, "authorization", 13))
				rq.has_authorization = 1;
	struct assets_reply rp;
	assets_answer(a, &rq, &rp);
	res->status = rp.status;
	uint32_t count = 0;
	uint8_t zero[4] = {0};
	buf_append(&res->head, zero, 4);
	if (rp.content_type)
		kv_add(&res->head, &count, "content-type", rp.content_type);
	if (rp.etag[0])
		kv_add(&res->head, &count, "etag", rp.etag);
	if (rp.cache_control && (rp.etag[0] || rp.status == 304))
		kv_add(&res->head, &count, "cache-control", "public, max-age=0, must-revalidate");
	if (rp.accept_ranges)
		kv_add(&res->head, &count, "accept-ranges", "bytes");
	if (rp.content_range[0])
		kv_add(&res->head, &count, "content-range", rp.content_range);
	if (rp.location)
		kv_add(&res->head, &count, "location", rp.location);
	char len[24];
	uint64_t body = rp.fd >= 0 ? rp.length : rp.text ? strlen(rp.text) : 0;
	snprintf(len, sizeof len, "%llu", (unsigned long long)body);
	if (rp.status != 304)
		kv_add(&res->head, &count, "content-length", len);
	thaw_put_u32(buf_head(&res->head), count);
	if (!strcmp(m, "HEAD")) {
		/* Headers only. */
	} else if (rp.fd >= 0) {
		res->fd = rp.fd;
		rp.fd = -1;
		res->offset = rp.offset;
		res->length = rp.length;
	} else {
		res->text = rp.text;
	}
	assets_reply_dispose(&rp);
	return 0;
}

static const struct binding_kind assets_kind = {.type = "assets", .call = assets_call};

/* --- the registry --- */

static void registry_add(struct app *a, const char *name, const struct binding_kind *kind,
			 void *ctx)
{
	struct binding *b = xcalloc(1, sizeof *b);
	b->name = xstrdup(name);
	b->kind = kind;
	b->ctx = ctx;
	b->next = a->bindings;
	a->bindings = b;
}

static struct binding *registry_find(struct app *a, const char *name)
{
	for (struct binding *b = a->bindings; b; b = b->next)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

int bindings_setup(struct app *a, char *err, size_t errlen)
{
	const struct project *c = a->cfg;
	if (!c->assets.directory)
		return 0;
	a->assets = assets_open(c->dir, &c->assets, err, errlen);
	if (!a->assets)
		return -1;
	if (c->assets.binding)
		registry_add(a, c->assets.binding, &assets_kind, a->assets);
	return 0;
}

void bindings_dispose(struct app *a)
{
	while (a->bindings) {
		struct binding *b = a->bindings;
		a->bindings = b->next;
		free(b->name);
		free(b);
	}
	assets_free(a->assets);
	a->assets = NULL;
}

json_t *bindings_init_json(const struct app *a)
{
	json_t *list = json_array();
	for (const struct binding *b = a->bindings; b; b = b->next)
		json_array_append_new(list, json_pack("{s:s, s:s}", "name", b->name, "type",
						      b->kind->type));
	return list;
}

/* --- calls --- */

static struct bcall *call_find(struct instance *in, uint32_t stream)
{
	for (struct bcall *c = in->calls; c; c = c->next)
		if (c->stream == stream)
			return c;
	return NULL;
}

static void call_end(struct instance *in, struct bcall *c)
{
	for (struct bcall **p = &in->calls; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			break;
		}
	}
	in->ncalls--;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void call_error(struct instance *in, uint32_t stream, const char *text)
{
	inst_send(in, THAW_F_CALL_ERROR, stream, text, strlen(text));
}

/* Send what the credit and the instance's queue allow; CALL_END (and the
 * call's end) when done. A call held back by a full queue goes on from
 * binding_on_writable. */
static void call_pump(struct instance *in, struct bcall *c)
{
	static uint8_t chunk[CALL_CHUNK];
	while (c->left && c->credit && in->state != INST_CLOSED &&
	       buf_used(&in->out) < CALL_QUEUE_MAX) {
		size_t want = c->left < CALL_CHUNK ? (size_t)c->left : CALL_CHUNK;
		if (want > c->credit)
			want = c->credit;
		ssize_t n = pread(c->fd, chunk, want, (off_t)c->offset);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Truncated under us (thaw dev) or unreadable: end it short. */
			log_warn("an asset read for a binding call failed: %s",
				 n < 0 ? strerror(errno) : "the file became shorter");
			call_error(in, c->stream, "the asset could not be read to its end");
			call_end(in, c);
			return;
		}
		inst_send(in, THAW_F_CALL_BODY, c->stream, chunk, (size_t)n);
		c->offset += (uint64_t)n;
		c->left -= (uint64_t)n;
		c->credit -= (uint32_t)n;
	}
	if (c->left == 0 && in->state != INST_CLOSED) {
		inst_send(in, THAW_F_CALL_END, c->stream, NULL, 0);
		call_end(in, c);
	}
}

int binding_on_call(struct instance *in, const struct thaw_frame *f)
{
	struct app *a = in->app;
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *kerr;
	if (f->stream < THAW_STREAM_WORKER_BASE || call_find(in, f->stream))
		return -1; /* not the instance's id space, or a live id reused */
	if (thaw_kv_validate(f->payload, f->len, &kerr) < 0)
		return -1;
	char name[64] = "", method[64] = "";
	thaw_kv_begin(&it, f->payload, f->len, &kerr);
	for (int i = 0; i < 2 && thaw_kv_next(&it, &kv, &kerr) == 1; i++) {
		char *dst = i == 0 ? name : method;
		const char *want = i == 0 ? ":binding" : ":call";
		if (kv.klen != strlen(want) || memcmp(kv.key, want, kv.klen) != 0 ||
		    kv.vlen == 0 || kv.vlen >= 64 || memchr(kv.val, 0, kv.vlen))
			return -1;
		memcpy(dst, kv.val, kv.vlen);
		dst[kv.vlen] = 0;
	}
	if (!name[0] || !method[0])
		return -1;
	if (in->ncalls >= THAW_CALLS_MAX) {
		char msg[128];
		snprintf(msg, sizeof msg, "too many binding calls in flight (at most %u per instance)",
			 THAW_CALLS_MAX);
		call_error(in, f->stream, msg);
		return 0;
	}
	struct binding *b = registry_find(a, name);
	if (!b) {
		char msg[160];
		snprintf(msg, sizeof msg, "there is no binding named '%s' in this worker's configuration",
			 name);
		call_error(in, f->stream, msg);
		return 0;
	}
	/* The remaining pairs, as a list of their own. */
	struct call_args args;
	struct buf rest = {0};
	uint8_t cnt[4];
	thaw_put_u32(cnt, it.count - it.index);
	buf_append(&rest, cnt, 4);
	buf_append(&rest, it.p, it.left);
	args.kv = buf_head(&rest);
	args.len = buf_used(&rest);
	struct call_result res = {.fd = -1};
	char err[512];
	int rc = b->kind->call(b->ctx, method, &args, &res, err, sizeof err);
	buf_free(&rest);
	if (rc < 0) {
		buf_free(&res.head);
		call_error(in, f->stream, err);
		return 0;
	}
	uint8_t st[2];
	thaw_put_u16(st, (uint16_t)res.status);
	if (inst_send2(in, THAW_F_CALL_HEAD, f->stream, st, 2, buf_head(&res.head),
		       buf_used(&res.head)) < 0) {
		buf_free(&res.head);
		if (res.fd >= 0)
			close(res.fd);
		call_error(in, f->stream, "the call's result is too large for one frame");
		return 0;
	}
	buf_free(&res.head);
	if (res.text && res.text[0])
		inst_send(in, THAW_F_CALL_BODY, f->stream, res.text, strlen(res.text));
	if (res.fd < 0 || res.length == 0) {
		if (res.fd >= 0)
			close(res.fd);
		inst_send(in, THAW_F_CALL_END, f->stream, NULL, 0);
		return 0;
	}
	struct bcall *c = xcalloc(1, sizeof *c);
	c->stream = f->stream;
	c->fd = res.fd;
	c->offset = res.offset;
	c->left = res.length;
	c->credit = THAW_STREAM_WINDOW;
	c->next = in->calls;
	in->calls = c;
	in->ncalls++;
	call_pump(in, c);
	return 0;
}

int binding_on_window(struct instance *in, const struct thaw_frame *f)
{
	struct bcall *c = call_find(in, f->stream);
	if (!c)
		return 0; /* ended meanwhile */
	uint64_t credit = (uint64_t)c->credit + thaw_get_u32(f->payload);
	if (credit > 64ull * THAW_STREAM_WINDOW)
		return -1;
	c->credit = (uint32_t)credit;
	call_pump(in, c);
	return 0;
}

void binding_on_writable(struct instance *in)
{
	for (struct bcall *c = in->calls, *next; c; c = next) {
		next = c->next; /* call_pump may end c, never another call */
		if (in->state == INST_CLOSED || buf_used(&in->out) >= CALL_QUEUE_MAX)
			return;
		call_pump(in, c);
	}
}

int binding_on_cancel(struct instance *in, const struct thaw_frame *f)
{
	if (f->len != 0)
		return -1;
	struct bcall *c = call_find(in, f->stream);
	if (c)
		call_end(in, c);
	return 0;
}

void binding_instance_closed(struct instance *in)
{
	while (in->calls)
		call_end(in, in->calls);
}
