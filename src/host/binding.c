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
 * SPOOLS (binding.h, SPOOLED BODIES): a call whose kind spools keeps a
 * struct spool. Bytes from the worker collect in sp->pending (loop); one
 * write job at a time takes them (sp->writing) to the file on the executor;
 * its done() returns their credit and starts the next. The call may end
 * (CANCEL, the instance's close) while a write runs: the spool is then
 * detached and freed by that job's done(), which is what owns it then.
 * Disk use (binding.h): at most BINDING_SPOOLS_MAX spooled calls per
 * instance (in->spooled_calls, from the CALL to call_end), and each write
 * first checks, on the executor, that the file system keeps its floor of
 * free space after it (sp->min_free, read from the environment on the loop
 * when the spool is made).
 *
 * FORWARDED CALLS (service bindings, service.c): binding_call_forward
 * answers a call with an internal request to another app; its response
 * head becomes CALL_HEAD when it arrives, its body waits in the call's mem
 * for the worker's credit and the queue's room, and is credited back to the
 * request only as it leaves (at most one stream window held). The call
 * and its request find each other through a proxy_link (instance id and
 * stream, checked against c->proxy); a call that ends for any reason
 * abandons its request (front_internal_abandon: no more callbacks, the
 * callee told CANCEL from the loop, never from inside an instance's code).
 *
 * BLOCKING: one pread of at most 64 KiB per chunk, within the credit. Spool
 * files are opened and written on the executor only.
 */
#include "host/pool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/assets.h"
#include "host/binding.h"
#include "host/executor.h"
#include "host/service.h"
#include "project/project.h"
#include "proto/frame.h"

#define CALL_CHUNK (64u * 1024u)
/* Body bytes go into an instance's output queue only while it holds less
 * than this. Credit alone does not bound the host's memory: an instance can
 * grant it, or send call after call, without reading its socket, and each
 * call would otherwise queue up to a window of file. */
#define CALL_QUEUE_MAX THAW_STREAM_WINDOW

enum call_phase { CALL_RECEIVING, CALL_RUNNING, CALL_SENDING };

/* The credit a spooled call's sender holds: the most a call keeps in memory. */
#define SPOOL_WINDOW (1u << 20)
/* ":body *": a spooled body of unknown length. */
#define BODY_UNKNOWN UINT64_MAX
/* The free space a spool must leave on its file system: the larger of
 * these, unless THAW_SPOOL_MIN_FREE_BYTES says otherwise. */
#define SPOOL_FLOOR_BYTES (1ull << 30)
#define SPOOL_FLOOR_PERCENT 5u

struct bcall;

struct spool {
	struct exec_job job; /* the write in flight (busy) */
	struct bcall *call;  /* NULL once detached */
	char *dir;
	int fd;              /* opened by the first write (executor) */
	struct buf pending;  /* loop: received, not yet written */
	struct buf writing;  /* the job's while busy */
	uint64_t received, written;
	uint64_t limit; /* kind->max_body */
	uint64_t min_free; /* the floor of free space, when min_free_set */
	int min_free_set;  /* else the default (SPOOL_FLOOR_*) */
	int known; /* limit is the body's length (":body N") */
	int busy, ended;
	int error; /* errno of a failed open or write */
	int disk_full; /* a write was refused: it would have gone under the floor */
	uint64_t free_bytes, floor_bytes; /* what the refusal saw, for the log */
};

struct bcall {
	uint32_t stream;
	enum call_phase phase;
	struct binding *b;   /* a reference, while receiving or running */
	char method[64];
	struct buf args;     /* the argument pairs (receiving) */
	struct buf body;     /* the request body as it arrives */
	uint64_t body_expected;
	uint64_t result_held; /* bytes of its result in memory, counted in in->call_results */
	struct spool *sp;    /* a spooled body (kind->spool_dir) */
	struct instance *in;
	int fd;              /* sending: the body from a file, or */
	uint64_t offset, left;
	struct buf mem;      /* from memory */
	uint32_t credit;
	int cancelled; /* the worker gave up while its job runs: kept until the job is
			* done, so the stream id cannot be reused under it */
	unsigned depth;      /* binding_call's */
	uint64_t chain;      /* of the request it counts from: its forwarded request's */
	/* Forwarded (binding_call_forward): the internal request answering it,
	 * until its done; the result's body waits in mem for the worker's
	 * credit, and is credited to the request as it leaves. */
	int forwarded;
	struct hreq *proxy;
	struct proxy_link *link;
	int proxy_end; /* the response is complete: CALL_END once mem is sent */
	struct bcall *next;
};

/* How a forwarded call's internal request finds its call again: by
 * instance and stream, checked against the call's proxy (a stream id may be
 * reused once the call is gone). Owned by the call. */
struct proxy_link {
	struct host *h;
	unsigned instance_id;
	uint32_t stream;
};

/* Request bodies an instance may have in flight, in all, before more calls
 * carrying one are refused. */
#define CALL_BODIES_MAX (64ull << 20)
#define CALL_RESULTS_MAX (256ull << 20) /* result bytes of one instance's calls in memory */

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

static int assets_call(void *ctx, const struct binding_call *c, struct call_result *res,
		       char *err, size_t errlen)
{
	struct assets *a = ctx;
	const char *method = c->method;
	const struct call_args *args = &c->args;
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

/* --- results --- */

void call_result_init(struct call_result *res)
{
	memset(res, 0, sizeof *res);
	res->fd = -1;
}

void call_result_dispose(struct call_result *res)
{
	buf_free(&res->head);
	buf_free(&res->body);
	if (res->fd >= 0)
		close(res->fd);
	res->fd = -1;
}

void call_result_pair(struct call_result *res, const void *k, size_t kl, const void *v, size_t vl)
{
	uint8_t n[4];
	if (!buf_used(&res->head)) {
		uint8_t zero[4] = {0};
		buf_append(&res->head, zero, 4);
	}
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(&res->head, n, 4);
	buf_append(&res->head, k, kl);
	thaw_put_u32(n, (uint32_t)vl);
	buf_append(&res->head, n, 4);
	buf_append(&res->head, v, vl);
	thaw_put_u32(buf_head(&res->head), ++res->npairs);
}

void call_result_pairs(struct call_result *res, const char *k, const char *v)
{
	call_result_pair(res, k, strlen(k), v, strlen(v));
}

int call_arg(const struct call_args *args, const char *name, const uint8_t **v, size_t *vlen)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	size_t nl = strlen(name);
	if (thaw_kv_begin(&it, args->kv, args->len, &err) < 0)
		return 0;
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (kv.klen == nl && !memcmp(kv.key, name, nl)) {
			*v = kv.val;
			*vlen = kv.vlen;
			return 1;
		}
	}
	return 0;
}

/* --- kinds from thaw-ext.so --- */

#define KINDS_MAX 16

static struct {
	const char *config_key, *name_field;
	const struct binding_kind *kind;
	binding_factory make;
} kinds[KINDS_MAX];
static size_t nkinds;

void binding_kind_register(const char *config_key, const char *name_field,
			   const struct binding_kind *kind, binding_factory make)
{
	for (size_t i = 0; i < nkinds; i++)
		if (!strcmp(kinds[i].config_key, config_key))
			return; /* registered already (the module loads once) */
	if (nkinds == KINDS_MAX)
		fatal("too many binding kinds");
	kinds[nkinds].config_key = config_key;
	kinds[nkinds].name_field = name_field;
	kinds[nkinds].kind = kind;
	kinds[nkinds].make = make;
	nkinds++;
}

int binding_kind_registered(const char *config_key)
{
	for (size_t i = 0; i < nkinds; i++)
		if (!strcmp(kinds[i].config_key, config_key))
			return 1;
	return 0;
}

/* --- the registry --- */

static void registry_add(struct app *a, const char *name, const struct binding_kind *kind,
			 void *ctx)
{
	struct binding *b = xcalloc(1, sizeof *b);
	b->name = xstrdup(name);
	b->kind = kind;
	b->ctx = ctx;
	b->refs = 1; /* the app's */
	b->next = a->bindings;
	a->bindings = b;
}

static void binding_unref(struct binding *b)
{
	if (--b->refs)
		return;
	if (b->kind->release)
		b->kind->release(b->ctx);
	free(b->name);
	free(b);
}

static struct binding *registry_find(struct app *a, const char *name)
{
	for (struct binding *b = a->bindings; b; b = b->next)
		if (!b->kind->hidden && !strcmp(b->name, name))
			return b;
	return NULL;
}

/* The storage and service bindings of a's configuration, by the kinds
 * thaw-ext.so registered. */
static int setup_registered(struct app *a, char *err, size_t errlen)
{
	json_t *pj = project_to_json(a->cfg);
	int rc = 0;
	for (size_t k = 0; k < nkinds && rc == 0; k++) {
		/* "a.b": member b of the object a */
		const char *key = kinds[k].config_key, *dot = strchr(key, '.');
		json_t *list;
		if (dot) {
			char outer[64];
			snprintf(outer, sizeof outer, "%.*s", (int)(dot - key), key);
			list = json_object_get(json_object_get(pj, outer), dot + 1);
		} else {
			list = json_object_get(pj, key);
		}
		size_t i;
		json_t *entry;
		json_array_foreach(list, i, entry) {
			const char *name =
				json_string_value(json_object_get(entry, kinds[k].name_field));
			char why[512];
			void *ctx = name ? kinds[k].make(a, entry, why, sizeof why) : NULL;
			if (!ctx) {
				snprintf(err, errlen, "%s[%zu]%s%s: %s", kinds[k].config_key, i,
					 name ? " " : "", name ? name : "", name ? why : "no name");
				rc = -1;
				break;
			}
			registry_add(a, name, kinds[k].kind, ctx);
		}
	}
	json_decref(pj);
	return rc;
}

int bindings_setup(struct app *a, char *err, size_t errlen)
{
	const struct project *c = a->cfg;
	service_register(); /* the host's own kinds besides assets */
	if (c->assets.directory) {
		a->assets = assets_open(c->dir, &c->assets, err, errlen);
		if (!a->assets)
			return -1;
		if (c->assets.binding)
			registry_add(a, c->assets.binding, &assets_kind, a->assets);
	}
	if (setup_registered(a, err, errlen) < 0) {
		bindings_dispose(a);
		return -1;
	}
	return 0;
}

void bindings_dispose(struct app *a)
{
	while (a->bindings) {
		struct binding *b = a->bindings;
		a->bindings = b->next;
		binding_unref(b);
	}
	assets_free(a->assets);
	a->assets = NULL;
}

json_t *bindings_init_json(const struct app *a)
{
	json_t *list = json_array();
	for (const struct binding *b = a->bindings; b; b = b->next)
		if (!b->kind->hidden) {
			json_t *e = json_pack("{s:s, s:s}", "name", b->name, "type", b->kind->type);
			if (b->kind->describe) {
				json_t *more = b->kind->describe(b->ctx);
				json_object_update_missing(e, more);
				json_decref(more);
			}
			json_array_append_new(list, e);
		}
	return list;
}

/* --- spools --- */

static void call_end(struct instance *in, struct bcall *c);
static void call_error(struct instance *in, uint32_t stream, const char *text);

/* The words of a refusal of a call's body: the kind's, or the host's. */
static void refusal_text(const struct binding *b, const char *method, enum binding_refusal why,
			 uint64_t limit, char *out, size_t outlen)
{
	if (b->kind->refusal) {
		b->kind->refusal(method, why, out, outlen);
		return;
	}
	switch (why) {
	case BINDING_TOO_LARGE:
		snprintf(out, outlen, "the value is too large for %s.%s (at most %llu bytes)",
			 b->name, method, (unsigned long long)limit);
		break;
	case BINDING_DISK_FULL:
		snprintf(out, outlen, "%s.%s refused: the host's disk is nearly full", b->name,
			 method);
		break;
	case BINDING_TOO_MANY:
		snprintf(out, outlen, "too many uploads in flight (at most %u per instance)",
			 BINDING_SPOOLS_MAX);
		break;
	}
}

/* The floor of free space THAW_SPOOL_MIN_FREE_BYTES sets: 1 with *bytes, or
 * 0 for the default (unset; an unusable value is logged and ignored). */
static int spool_floor_override(uint64_t *bytes)
{
	const char *v = getenv("THAW_SPOOL_MIN_FREE_BYTES");
	if (!v || !*v)
		return 0;
	if (parse_u64(v, UINT64_MAX, bytes) == 0)
		return 1;
	static int warned;
	if (!warned++)
		log_warn("THAW_SPOOL_MIN_FREE_BYTES=%s is not a number of bytes; using the default "
			 "floor (the larger of 1 GiB and 5%% of the disk)",
			 v);
	return 0;
}

/* Executor: would writing n more bytes to sp's file leave its file system
 * under the floor? (A file system that cannot say is trusted.) */
static int spool_over_floor(struct spool *sp, uint64_t n)
{
	struct statvfs st;
	if (fstatvfs(sp->fd, &st) < 0)
		return 0;
	uint64_t unit = st.f_frsize ? st.f_frsize : st.f_bsize;
	uint64_t avail = (uint64_t)st.f_bavail * unit;
	uint64_t floor = sp->min_free;
	if (!sp->min_free_set) {
		uint64_t share = (uint64_t)st.f_blocks / 100 * SPOOL_FLOOR_PERCENT * unit;
		floor = share > SPOOL_FLOOR_BYTES ? share : SPOOL_FLOOR_BYTES;
	}
	if (avail >= floor && avail - floor >= n)
		return 0;
	sp->free_bytes = avail;
	sp->floor_bytes = floor;
	return 1;
}

static void spool_free(struct spool *sp)
{
	if (sp->fd >= 0)
		close(sp->fd);
	buf_free(&sp->pending);
	buf_free(&sp->writing);
	free(sp->dir);
	free(sp);
}

/* The call ended: free sp now, or let its write's done() do it. */
static void spool_detach(struct spool *sp)
{
	if (!sp)
		return;
	sp->call = NULL;
	if (!sp->busy)
		spool_free(sp);
}

/* Executor: write what the job holds, opening the file first. */
static void spool_run(struct exec_job *job)
{
	struct spool *sp = (struct spool *)job;
	if (sp->error)
		return;
	if (sp->fd < 0) {
		sp->fd = open(sp->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (sp->fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
			/* No O_TMPFILE here: a named file, unlinked at once. */
			char *path = xasprintf("%s/spool-XXXXXX", sp->dir);
			sp->fd = mkostemp(path, O_CLOEXEC);
			if (sp->fd >= 0)
				unlink(path);
			free(path);
		}
		if (sp->fd < 0) {
			sp->error = errno;
			return;
		}
	}
	if (spool_over_floor(sp, buf_used(&sp->writing))) {
		sp->disk_full = 1;
		return;
	}
	if (write_all(sp->fd, buf_head(&sp->writing), buf_used(&sp->writing)) < 0)
		sp->error = errno ? errno : EIO;
}

static void call_run(struct instance *in, struct bcall *c);
static void spool_next(struct spool *sp);

/* Loop: a write finished. Return its credit; write more, or run the call. */
static void spool_done(struct exec_job *job, int stopped)
{
	struct spool *sp = (struct spool *)job;
	sp->busy = 0;
	struct bcall *c = sp->call;
	if (!c) {
		spool_free(sp);
		return;
	}
	struct instance *in = c->in;
	if (!stopped && sp->disk_full) {
		char msg[256];
		log_warn("refused a call to %s.%s: its body would leave %s with less than %llu MiB "
			 "free (%llu MiB now); free some space, or set THAW_SPOOL_MIN_FREE_BYTES",
			 c->b->name, c->method, sp->dir,
			 (unsigned long long)(sp->floor_bytes >> 20),
			 (unsigned long long)(sp->free_bytes >> 20));
		refusal_text(c->b, c->method, BINDING_DISK_FULL, 0, msg, sizeof msg);
		call_error(in, c->stream, msg);
		call_end(in, c);
		return;
	}
	if (stopped || sp->error) {
		if (sp->error)
			log_error("a binding call's body could not be written to %s: %s", sp->dir,
				  strerror(sp->error));
		call_error(in, c->stream,
			   stopped ? "the host is stopping" : "the value could not be stored");
		call_end(in, c);
		return;
	}
	uint32_t n = (uint32_t)buf_used(&sp->writing);
	sp->written += n;
	buf_reset(&sp->writing);
	if (n && in->state != INST_CLOSED) {
		uint8_t p[4];
		thaw_put_u32(p, n);
		inst_send(in, THAW_F_WINDOW, c->stream, p, 4);
	}
	spool_next(sp);
}

/* Start the next write, or, with everything in and written, the call. */
static void spool_next(struct spool *sp)
{
	struct bcall *c = sp->call;
	if (sp->busy)
		return;
	if (buf_used(&sp->pending)) {
		struct buf t = sp->writing;
		sp->writing = sp->pending;
		sp->pending = t;
		buf_reset(&sp->pending);
		sp->busy = 1;
		sp->job.run = spool_run;
		sp->job.done = spool_done;
		executor_submit(c->in->h, &sp->job);
		return;
	}
	if (sp->ended && sp->written == sp->received)
		call_run(c->in, c);
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
	in->call_bodies -= c->body_expected;
	in->call_results -= c->result_held;
	if (c->sp)
		in->spooled_calls--;
	spool_detach(c->sp);
	if (c->proxy)
		front_internal_abandon(c->proxy); /* no more sink calls, no done */
	free(c->link);
	if (c->fd >= 0)
		close(c->fd);
	if (c->b)
		binding_unref(c->b);
	buf_free(&c->args);
	buf_free(&c->body);
	buf_free(&c->mem);
	free(c);
}

static void call_error(struct instance *in, uint32_t stream, const char *text)
{
	inst_send(in, THAW_F_CALL_ERROR, stream, text, strlen(text));
}

static void proxy_pump(struct instance *in, struct bcall *c);

/* Send what the credit and the instance's queue allow; CALL_END (and the
 * call's end) when done. A call held back by a full queue goes on from
 * binding_on_writable. */
static void call_pump(struct instance *in, struct bcall *c)
{
	static uint8_t chunk[CALL_CHUNK];
	if (c->forwarded) {
		proxy_pump(in, c);
		return;
	}
	while (c->left && c->credit && in->state != INST_CLOSED &&
	       buf_used(&in->out) < CALL_QUEUE_MAX) {
		size_t want = c->left < CALL_CHUNK ? (size_t)c->left : CALL_CHUNK;
		if (want > c->credit)
			want = c->credit;
		const uint8_t *p = chunk;
		if (c->fd >= 0) {
			ssize_t n = pread(c->fd, chunk, want, (off_t)c->offset);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Truncated under us (thaw dev) or unreadable: end it short. */
				log_warn("a file read for a binding call failed: %s",
					 n < 0 ? strerror(errno) : "the file became shorter");
				call_error(in, c->stream, "the result could not be read to its end");
				call_end(in, c);
				return;
			}
			want = (size_t)n;
		} else {
			p = buf_head(&c->mem) + c->offset;
		}
		inst_send(in, THAW_F_CALL_BODY, c->stream, p, want);
		c->offset += (uint64_t)want;
		c->left -= (uint64_t)want;
		c->credit -= (uint32_t)want;
	}
	if (c->left == 0 && in->state != INST_CLOSED) {
		inst_send(in, THAW_F_CALL_END, c->stream, NULL, 0);
		call_end(in, c);
	}
}

/* Answer call c with res (taken): CALL_HEAD, then its body. */
static void call_answer_frames(struct instance *in, struct bcall *c, struct call_result *res);

static void call_answer(struct instance *in, struct bcall *c, struct call_result *res)
{
	/* Results wait in memory for the worker's credit: an instance that
	 * reads none must not make the host hold its calls' results without
	 * bound (32 MiB of D1 rows, a KV value, ... per call). */
	uint64_t held = res->fd < 0 ? buf_used(&res->body) : 0;
	if (held && in->call_results + held > CALL_RESULTS_MAX) {
		call_result_dispose(res);
		call_error(in, c->stream,
			   "the results of this instance's binding calls not yet read are over the "
			   "limit of 256 MiB: read (or drop) them before calling more");
		call_end(in, c);
		return;
	}
	in->call_results += held;
	c->result_held = held;
	/* CALL_HEAD, a small result's body and CALL_END go in one write: the
	 * worker wakes once for them, not three times. */
	in->corked = 1;
	call_answer_frames(in, c, res);
	inst_uncork(in);
}

static void call_answer_frames(struct instance *in, struct bcall *c, struct call_result *res)
{
	uint8_t st[2];
	thaw_put_u16(st, (uint16_t)res->status);
	if (!buf_used(&res->head)) {
		uint8_t zero[4] = {0};
		buf_append(&res->head, zero, 4);
	}
	if (inst_send2(in, THAW_F_CALL_HEAD, c->stream, st, 2, buf_head(&res->head),
		       buf_used(&res->head)) < 0) {
		call_result_dispose(res);
		call_error(in, c->stream, "the call's result is too large for one frame");
		call_end(in, c);
		return;
	}
	buf_free(&res->head);
	if (c->b) {
		binding_unref(c->b); /* nothing of the binding is needed to send */
		c->b = NULL;
	}
	buf_free(&c->args);
	buf_free(&c->body);
	c->phase = CALL_SENDING;
	c->credit = THAW_STREAM_WINDOW;
	if (res->text && res->text[0]) {
		buf_append(&c->mem, res->text, strlen(res->text));
	} else if (res->fd >= 0 && res->length) {
		c->fd = res->fd;
		res->fd = -1;
		c->offset = res->offset;
		c->left = res->length;
	} else if (buf_used(&res->body)) {
		c->mem = res->body;
		res->body = (struct buf){0};
	}
	if (c->fd < 0) {
		c->offset = 0;
		c->left = buf_used(&c->mem);
	}
	call_result_dispose(res);
	call_pump(in, c);
}

/* The call's arguments and body are in: run its method. */
static void call_run(struct instance *in, struct bcall *c)
{
	struct binding_call bc = {
		.binding = c->b->name,
		.method = c->method,
		.args = {buf_head(&c->args), buf_used(&c->args)},
		.body = c->body_expected ? buf_head(&c->body) : NULL,
		.body_len = c->sp ? (size_t)c->sp->written : buf_used(&c->body),
		.body_fd = c->sp ? c->sp->fd : -1,
		.body_fd_len = c->sp ? c->sp->written : 0,
		.h = in->h,
		.instance_id = in->id,
		.stream = c->stream,
		.depth = c->depth,
	};
	struct call_result res;
	call_result_init(&res);
	char err[512];
	c->phase = CALL_RUNNING;
	int rc = c->b->kind->call(c->b->ctx, &bc, &res, err, sizeof err);
	if (rc < 0) {
		call_result_dispose(&res);
		call_error(in, c->stream, err);
		call_end(in, c);
		return;
	}
	if (rc == 1) {
		call_result_dispose(&res);
		return; /* binding_call_done answers */
	}
	call_answer(in, c, &res);
}

/* How long a request's depth still counts once it left its instance: the
 * ctx.wait_until tasks it started may call after its response (10 s of grace
 * when the instance closes, python/_thaw_runtime.py), with a margin. */
#define DEPTH_MEMORY_NS (15ull * 1000000000ull)

static uint64_t chain_new(void)
{
	static uint64_t chains; /* the host loop's thread only */
	return ++chains;
}

/* r's chain: its own new one if no call named it before. */
static uint64_t chain_of(struct hreq *r)
{
	if (!r->chain)
		r->chain = chain_new();
	return r->chain;
}

void binding_stream_ended(struct instance *in, struct hreq *r)
{
	uint64_t now = now_ns();
	struct ended_stream *e = &in->ended[in->ended_next++ % INST_ENDED_MAX];
	*e = (struct ended_stream){
		.chain = chain_of(r), .t_end = now, .stream = r->stream, .depth = r->depth};
	if (r->depth > 0)
		in->depth_ended_ns[r->depth > SERVICE_DEPTH_MAX ? SERVICE_DEPTH_MAX : r->depth] = now;
}

static int ended_fresh(const struct ended_stream *e, uint64_t now)
{
	return e->t_end && now - e->t_end < DEPTH_MEMORY_NS;
}

/* The deepest request of chain (0: of any) the instance serves or served
 * lately. */
static unsigned chain_depth(struct instance *in, uint64_t chain, uint64_t now, int with_ended)
{
	unsigned deepest = 0;
	for (struct hreq *r = in->streams; r; r = r->next)
		if ((!chain || r->chain == chain) && r->depth > deepest)
			deepest = r->depth;
	for (unsigned i = 0; i < INST_ENDED_MAX && with_ended; i++) {
		const struct ended_stream *e = &in->ended[i];
		if (ended_fresh(e, now) && (!chain || e->chain == chain) && e->depth > deepest)
			deepest = e->depth;
	}
	if (!chain) /* what the record above may have lost too */
		for (unsigned d = SERVICE_DEPTH_MAX; d > deepest; d--)
			if (in->depth_ended_ns[d] && now - in->depth_ended_ns[d] < DEPTH_MEMORY_NS)
				return d;
	return deepest;
}

/*
 * The hops a call counts from (binding.h: binding_call.depth), and the chain
 * its request joins, from the host's records only. The worker names the
 * request a call is for (":stream"), and may name any: so the call counts
 * from the deepest request of that request's whole chain (the requests
 * forwarded from it, and from them) that the instance serves or served
 * lately, never from the named one alone: naming the chain's first request
 * from deep in it (a ping-pong back to the same instance) or calling from a
 * ctx.wait_until task after the response counts on. A name the host does
 * not know counts from the deepest request of any chain. A worker can still
 * move a call to another chain it serves at once, which bounds the hops by
 * 32 per such chain, not by nothing.
 */
static unsigned call_depth(struct instance *in, const struct call_args *args, uint64_t *chain)
{
	const uint8_t *v;
	size_t vl;
	char num[16];
	uint64_t id, now = now_ns(), latest = 0;
	int live_named = 0;
	*chain = 0;
	if (call_arg(args, ":stream", &v, &vl) && vl > 0 && vl < sizeof num) {
		memcpy(num, v, vl);
		num[vl] = 0;
		if (parse_u64(num, THAW_STREAM_WORKER_BASE - 1, &id) == 0) {
			for (struct hreq *r = in->streams; r && !*chain; r = r->next)
				if (r->stream == (uint32_t)id)
					*chain = chain_of(r);
			uint64_t live = *chain;
			live_named = live != 0;
			for (unsigned i = 0; i < INST_ENDED_MAX && !live; i++) {
				const struct ended_stream *e = &in->ended[i];
				if (ended_fresh(e, now) && e->stream == (uint32_t)id &&
				    e->t_end > latest) {
					latest = e->t_end;
					*chain = e->chain;
				}
			}
		}
	}
	/* A live request: its chain's live requests (a nested call's ancestors
	 * are live; calls made one after another left only ended ones, which
	 * must not add up). An ended one (a wait_until task's): those ended
	 * lately too. */
	if (*chain)
		return chain_depth(in, *chain, now, !live_named);
	*chain = chain_new(); /* a chain of its own, from that depth on */
	return chain_depth(in, 0, now, 1);
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
	/* The remaining pairs, as a list of their own. */
	struct buf rest = {0};
	uint8_t cnt[4];
	thaw_put_u32(cnt, it.count - it.index);
	buf_append(&rest, cnt, 4);
	buf_append(&rest, it.p, it.left);
	struct call_args args = {buf_head(&rest), buf_used(&rest)};
	/* A request body follows when the call says ":body N". */
	const uint8_t *bv;
	size_t bl;
	uint64_t body = 0;
	int has_body = call_arg(&args, ":body", &bv, &bl);
	if (has_body && bl == 1 && bv[0] == '*') {
		body = BODY_UNKNOWN;
	} else if (has_body) {
		char num[24];
		if (bl == 0 || bl >= sizeof num) {
			buf_free(&rest);
			return -1;
		}
		memcpy(num, bv, bl);
		num[bl] = 0;
		if (parse_u64(num, UINT64_MAX - 1, &body) < 0) {
			buf_free(&rest);
			return -1;
		}
	}
	uint64_t chain;
	unsigned depth = call_depth(in, &args, &chain);
	char msg[256];
	struct binding *b = registry_find(a, name);
	int spooled = b && b->kind->spool_dir && has_body;
	if (in->ncalls >= THAW_CALLS_MAX)
		snprintf(msg, sizeof msg, "too many binding calls in flight (at most %u per instance)",
			 THAW_CALLS_MAX);
	else if (!b)
		snprintf(msg, sizeof msg,
			 "there is no binding named '%s' in this worker's configuration", name);
	else if (body == BODY_UNKNOWN && !spooled)
		snprintf(msg, sizeof msg, "%s.%s needs a value of known length", name, method);
	else if (body > b->kind->max_body && body != BODY_UNKNOWN)
		refusal_text(b, method, BINDING_TOO_LARGE, b->kind->max_body, msg, sizeof msg);
	else if (spooled && in->spooled_calls >= BINDING_SPOOLS_MAX)
		refusal_text(b, method, BINDING_TOO_MANY, 0, msg, sizeof msg);
	else if (!spooled && in->call_bodies + body > CALL_BODIES_MAX)
		snprintf(msg, sizeof msg, "too much call data in flight (at most %llu MiB per instance)",
			 (unsigned long long)(CALL_BODIES_MAX >> 20));
	else
		msg[0] = 0;
	if (msg[0]) {
		buf_free(&rest);
		call_error(in, f->stream, msg);
		/* The body the worker sends anyway is dropped: no call is kept,
		 * and frames of an unknown call stream are ignored. */
		return 0;
	}
	struct bcall *c = xcalloc(1, sizeof *c);
	c->stream = f->stream;
	c->fd = -1;
	c->b = b;
	b->refs++;
	snprintf(c->method, sizeof c->method, "%s", method);
	c->args = rest;
	c->in = in;
	c->depth = depth;
	c->chain = chain;
	c->next = in->calls;
	in->calls = c;
	in->ncalls++;
	if (spooled) {
		struct spool *sp = xcalloc(1, sizeof *sp);
		sp->call = c;
		sp->fd = -1;
		sp->dir = xstrdup(b->kind->spool_dir(b->ctx));
		sp->limit = body == BODY_UNKNOWN ? b->kind->max_body : body;
		sp->known = body != BODY_UNKNOWN;
		sp->ended = body == 0;
		sp->min_free_set = spool_floor_override(&sp->min_free);
		c->sp = sp;
		in->spooled_calls++;
		c->phase = CALL_RECEIVING;
		if (body == 0) {
			call_run(in, c);
			return 0;
		}
		/* More credit than a stream starts with: fewer round trips per GiB. */
		uint8_t p[4];
		thaw_put_u32(p, SPOOL_WINDOW - THAW_STREAM_WINDOW);
		inst_send(in, THAW_F_WINDOW, c->stream, p, 4);
		return 0;
	}
	c->body_expected = body;
	in->call_bodies += body;
	if (body == 0) {
		call_run(in, c);
		return 0;
	}
	c->phase = CALL_RECEIVING;
	return 0;
}

/* A spooled call's CALL_BODY or CALL_END. */
static int spool_on_body(struct instance *in, struct bcall *c, const struct thaw_frame *f,
			 int end)
{
	struct spool *sp = c->sp;
	if (sp->ended)
		return -1;
	if (end) {
		if (f->len != 0 || (sp->known && sp->received != sp->limit))
			return -1;
		sp->ended = 1;
		spool_next(sp);
		return 0;
	}
	if (buf_used(&sp->pending) + buf_used(&sp->writing) + f->len > SPOOL_WINDOW)
		return -1; /* past the credit it was given */
	if (sp->received + f->len > sp->limit) {
		char msg[256];
		refusal_text(c->b, c->method, BINDING_TOO_LARGE, sp->limit, msg, sizeof msg);
		call_error(in, c->stream, msg);
		call_end(in, c); /* what else comes is dropped: an unknown stream */
		return 0;
	}
	buf_append(&sp->pending, f->payload, f->len);
	sp->received += f->len;
	spool_next(sp);
	return 0;
}

/* CALL_BODY / CALL_END from the worker: a call's request body. */
int binding_on_call_body(struct instance *in, const struct thaw_frame *f, int end)
{
	struct bcall *c = call_find(in, f->stream);
	if (!c)
		return f->stream >= THAW_STREAM_WORKER_BASE ? 0 : -1; /* refused or cancelled */
	if (c->phase != CALL_RECEIVING)
		return -1;
	if (c->sp)
		return spool_on_body(in, c, f, end);
	if (end) {
		if (f->len != 0 || buf_used(&c->body) != c->body_expected)
			return -1;
		call_run(in, c);
		return 0;
	}
	if (buf_used(&c->body) + f->len > c->body_expected)
		return -1;
	buf_append(&c->body, f->payload, f->len);
	if (f->len) {
		uint8_t p[4];
		thaw_put_u32(p, f->len); /* bounded by body_expected: no more credit needed */
		inst_send(in, THAW_F_WINDOW, c->stream, p, 4);
	}
	return 0;
}

void binding_call_done(struct host *h, unsigned instance_id, uint32_t stream,
		       struct call_result *res, const char *error)
{
	struct instance *in = NULL;
	for (struct instance *i = h->all_instances; i; i = i->all_next)
		if (i->id == instance_id) {
			in = i;
			break;
		}
	struct bcall *c = in && in->state != INST_CLOSED ? call_find(in, stream) : NULL;
	if (!c || c->phase != CALL_RUNNING) {
		if (res)
			call_result_dispose(res);
		return; /* the instance or the call went meanwhile */
	}
	if (c->cancelled) {
		if (res)
			call_result_dispose(res);
		call_end(in, c);
		return;
	}
	if (!res) {
		call_error(in, stream, error ? error : "the call failed");
		call_end(in, c);
		return;
	}
	call_answer(in, c, res);
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
	if (c->phase == CALL_SENDING)
		call_pump(in, c);
	return 0;
}

void binding_on_writable(struct instance *in)
{
	for (struct bcall *c = in->calls, *next; c; c = next) {
		next = c->next; /* call_pump may end c, never another call */
		if (in->state == INST_CLOSED || buf_used(&in->out) >= CALL_QUEUE_MAX)
			return;
		if (c->phase == CALL_SENDING)
			call_pump(in, c);
	}
}

int binding_on_cancel(struct instance *in, const struct thaw_frame *f)
{
	if (f->len != 0)
		return -1;
	struct bcall *c = call_find(in, f->stream);
	if (c && c->phase == CALL_RUNNING && !c->forwarded)
		c->cancelled = 1; /* ended when its job is done (binding_call_done) */
	else if (c)
		call_end(in, c);
	return 0;
}

void binding_instance_closed(struct instance *in)
{
	while (in->calls)
		call_end(in, in->calls);
}

/* --- forwarded calls (service bindings) --- */

static struct bcall *proxy_call(struct hreq *r, struct proxy_link *l, struct instance **inp)
{
	for (struct instance *in = l->h->all_instances; in; in = in->all_next) {
		if (in->id != l->instance_id)
			continue;
		struct bcall *c = in->state != INST_CLOSED ? call_find(in, l->stream) : NULL;
		if (!c || c->proxy != r)
			return NULL;
		*inp = in;
		return c;
	}
	return NULL;
}

/* Send the waiting body within the worker's credit and the queue's room,
 * crediting it to the internal request as it goes; CALL_END after the
 * response's last byte. */
static void proxy_pump(struct instance *in, struct bcall *c)
{
	while (buf_used(&c->mem) && c->credit && in->state != INST_CLOSED &&
	       buf_used(&in->out) < CALL_QUEUE_MAX) {
		size_t k = buf_used(&c->mem);
		if (k > CALL_CHUNK)
			k = CALL_CHUNK;
		if (k > c->credit)
			k = c->credit;
		inst_send(in, THAW_F_CALL_BODY, c->stream, buf_head(&c->mem), k);
		buf_consume(&c->mem, k);
		c->credit -= (uint32_t)k;
		front_internal_grant(c->proxy, (uint32_t)k);
	}
	if (!buf_used(&c->mem) && c->proxy_end && in->state != INST_CLOSED) {
		inst_send(in, THAW_F_CALL_END, c->stream, NULL, 0);
		call_end(in, c);
	}
}

static void proxy_head(struct hreq *r, void *arg, unsigned status, const uint8_t *kv, size_t len)
{
	struct instance *in;
	struct bcall *c = proxy_call(r, arg, &in);
	if (!c || c->phase != CALL_RUNNING)
		return;
	uint8_t st[2];
	thaw_put_u16(st, (uint16_t)status);
	if (inst_send2(in, THAW_F_CALL_HEAD, c->stream, st, 2, kv, len) < 0) {
		call_error(in, c->stream, "the service's response head is too large");
		call_end(in, c);
		return;
	}
	if (c->b) {
		binding_unref(c->b);
		c->b = NULL;
	}
	buf_free(&c->args);
	buf_free(&c->body);
	c->phase = CALL_SENDING;
	c->credit = THAW_STREAM_WINDOW;
}

static void proxy_data(struct hreq *r, void *arg, const uint8_t *p, size_t n)
{
	struct instance *in;
	struct bcall *c = proxy_call(r, arg, &in);
	if (!c || c->phase != CALL_SENDING) {
		front_internal_grant(r, (uint32_t)n); /* nobody to hold them for */
		return;
	}
	buf_append(&c->mem, p, n); /* within r's credit: at most a window */
	proxy_pump(in, c);
}

static const struct internal_sink proxy_sink = {.head = proxy_head, .data = proxy_data};

static void proxy_done(struct hreq *r, void *arg)
{
	struct instance *in;
	struct bcall *c = proxy_call(r, arg, &in);
	if (!c)
		return; /* cannot be: a call that ends abandons its request */
	c->proxy = NULL;
	if (c->phase == CALL_RUNNING) {
		/* No head came: the failure as a response, as a client would see it. */
		struct call_result res;
		call_result_init(&res);
		res.status = r->fail_status ? r->fail_status : 502;
		call_result_pairs(&res, "content-type", "text/plain;charset=UTF-8");
		/* The callee's error text (a load error, a traceback) only in thaw
		 * dev, as queue_fail shows it to a client. */
		const char *text = res.status == 500 && !r->h->dev ? "Internal Server Error\n"
				   : r->fail_body			 ? r->fail_body
								 : "The service did not answer.\n";
		buf_append(&res.body, text, strlen(text));
		c->forwarded = 0;
		call_answer(in, c, &res);
		return;
	}
	if (r->resp_end && !r->resp_failed && !r->fail_status) {
		c->proxy_end = 1;
		proxy_pump(in, c);
		return;
	}
	call_error(in, c->stream, "the service's response broke off before its end");
	call_end(in, c);
}

void binding_call_forward(const struct binding_call *bc, struct app *a, const char *method,
			  const char *uri, struct buf *head, unsigned depth, double timeout_ms)
{
	binding_call_forward_pinned(bc, a, method, uri, head, depth, timeout_ms, 0, NULL, NULL);
}

void binding_call_forward_pinned(const struct binding_call *bc, struct app *a,
				 const char *method, const char *uri, struct buf *head,
				 unsigned depth, double timeout_ms, unsigned pin,
				 void (*on_attach)(void *arg, unsigned instance_id), void *attach_arg)
{
	struct instance *in = NULL;
	for (struct instance *i = bc->h->all_instances; i; i = i->all_next)
		if (i->id == bc->instance_id)
			in = i;
	struct bcall *c = in && in->state != INST_CLOSED ? call_find(in, bc->stream) : NULL;
	if (!c || c->phase != CALL_RUNNING || c->proxy) {
		buf_free(head);
		if (on_attach)
			on_attach(attach_arg, 0);
		return;
	}
	struct proxy_link *l = xcalloc(1, sizeof *l);
	l->h = bc->h;
	l->instance_id = bc->instance_id;
	l->stream = bc->stream;
	c->link = l;
	c->forwarded = 1;
	struct buf body = c->body; /* the request body goes with the request */
	c->body = (struct buf){0};
	c->proxy = front_internal_stream_pinned(a, method, uri, head, &body, timeout_ms,
						&proxy_sink, l, proxy_done, l, pin, on_attach,
						attach_arg);
	c->proxy->depth = depth;
	c->proxy->chain = c->chain;
}
