/*
 * Durable Objects (durable_objects.bindings): the namespace binding a worker
 * calls (`env.ROOM.get(id).method(...)`, `stub.fetch(...)`), the host's one
 * live instance per object, the objects' storage and their alarms.
 *
 * ONE LIVE INSTANCE PER OBJECT. Every object this host knows has a record
 * (struct do_obj, keyed by the worker's state directory, the class and the
 * id) that names the instance holding it (pinned), if any:
 *   - pinned to a ready instance: the call is forwarded to that instance
 *     (binding_call_forward_pinned), whatever its load;
 *   - not pinned (never called, or its instance is gone): the first call is
 *     forwarded to the caller's app like any request (a ready instance or a
 *     cold start) and every call after it waits on the record until that one
 *     reaches an instance (on_attach), which becomes the pin;
 *   - storage calls are served only for the instance the object is pinned
 *     to: an instance that lost an object (it was evicted, the host pinned
 *     it elsewhere) cannot write its storage.
 * An object lives as long as its instance: when the instance exits (idle,
 * killed, a reload), the next call makes the object again elsewhere, from
 * its storage, as on Cloudflare after an eviction.
 *
 * THE HEAD an object's instance gets (python/_thaw_runtime.py, :event do):
 *   :method M, :url U, :event do, :do-class C, :do-id ID, :do-binding B,
 *   :do-op rpc|fetch|alarm, then :rpc-method NAME (rpc) or the request's
 *   headers (fetch). C and B are the host's (this binding's configuration),
 *   never the caller's; ID is checked to be 64 lowercase hex digits.
 *
 * STORAGE (src/state/dobj.h): STATE/do/CLASS/ID.sqlite per object, opened on
 * the state executor (a small cache of open files, executor thread only);
 * alarms in STATE/do/alarms.sqlite per worker. A storage call's answer is
 * sent when its transaction is durable.
 *
 * ALARMS: one timer per worker state directory for its earliest alarm;
 * when due, the object's alarm() is called like an RPC (routed as above);
 * an exception or a failed delivery retries it after 2, 4, 8 ... s, six
 * times, then the alarm is dropped with a log line (Cloudflare's policy).
 * Alarms are read from the file when the worker's first app loads, so they
 * survive a host restart.
 *
 * BLOCKING: none on the loop; SQLite runs on the executor.
 */
#include "ext/bindings.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "host/binding.h"
#include "host/executor.h"
#include "host/host.h"
#include "host/service.h"
#include "project/project.h"
#include "proto/frame.h"
#include "state/dobj.h"

#define DO_BUCKETS_MIN 1024
#define DO_SWEEP_MIN 4096 /* records before the first sweep of stale ones */
#define DO_ALARM_WAIT_MAX_MS (3600 * 1000.0) /* a later alarm is looked at again then */
#define DO_STORE_CACHE 64 /* open object files, executor thread only */
#define DO_ALARM_RETRIES 6
#define DO_ALARM_CONCURRENCY 8 /* alarm() deliveries in flight per worker */
#define DO_ALARM_TIMEOUT_MS (15 * 60 * 1000.0)
#define DO_STORAGE_BODY_MAX SERVICE_BODY_MAX /* a call's RPC arguments, as the SDK's */

struct do_worker; /* per state directory: its alarms */

struct do_ns { /* one binding of one app */
	unsigned refs;
	struct app *app;
	struct host *h;
	char binding[64];
	char cls[128];
	char origin[128]; /* the class's first name (before renamed_classes): ids hash it */
	struct do_worker *w;
	struct do_ns *w_next; /* on w->spaces */
};

struct do_worker {
	struct do_worker *next;
	char *state_dir;
	struct host *h;
	struct do_ns *spaces;          /* the bindings that name it (newest first) */
	struct dobj_alarms *alarms;    /* executor thread only */
	struct loop_timer timer;
	int64_t next_ms;               /* armed for; 0: none */
	int scanning, rescan;          /* a scan job runs; another is wanted after it */
	unsigned delivering;           /* alarm() deliveries in flight */
	json_t *inflight;              /* [[class, id]..] of those: scans pass them over */
};

struct do_wait; /* a call waiting for its object's pin */

struct do_obj {
	struct do_obj *next; /* hash chain */
	char *key;           /* state_dir NUL class NUL id */
	struct do_worker *w;
	char cls[128];
	char id[65];
	unsigned pinned;
	int establishing;
	struct do_wait *wait_head, *wait_tail;
	struct loop_timer flush;
	struct host *h;
	unsigned busy; /* alarm deliveries and evictions that hold a pointer to it */
	uint64_t last_ns; /* its last call (now_ns clock): idle past the timeout, it is evicted */
	int evicting;
};

struct do_wait {
	struct do_wait *next;
	struct do_ns *ns; /* a reference */
	struct binding_call bc; /* h, instance_id, stream (the rest unset) */
	unsigned depth;
	struct buf head;
	int alarm; /* an alarm delivery, not a call */
	int64_t alarm_at;
	int64_t attempt;
};

/* The records, hashed; resized as they grow, and swept of stale ones (no
 * live holder, nothing waiting, nothing in flight) whenever their number
 * doubles, so a worker calling ever new ids keeps a bounded table. */
static struct do_obj **objects;
static size_t nbuckets, nobjects, sweep_at = DO_SWEEP_MIN;
static struct do_worker *workers;

static void ns_unref(struct do_ns *ns);
static void route(struct do_obj *o, struct do_wait *wt);
static void alarm_schedule(struct do_worker *w);
static void evict_start(struct host *h);

/* --- small helpers --- */

static void kv_put(struct buf *b, const char *k, const void *v, size_t vl)
{
	uint8_t n[4];
	size_t kl = strlen(k);
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(b, n, 4);
	buf_append(b, k, kl);
	thaw_put_u32(n, (uint32_t)vl);
	buf_append(b, n, 4);
	buf_append(b, v, vl);
}

static int hex_id(const uint8_t *p, size_t n)
{
	if (n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/* A class name: it becomes a directory name. */
static int identifier(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 100 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static size_t key_len(const struct do_obj *o)
{
	size_t dl = strlen(o->key), cl = strlen(o->key + dl + 1);
	return dl + 1 + cl + 1 + 64;
}

static void rehash(size_t n)
{
	struct do_obj **t = xcalloc(n, sizeof *t);
	for (size_t b = 0; b < nbuckets; b++)
		for (struct do_obj *o = objects[b], *next; o; o = next) {
			next = o->next;
			size_t i = hash(o->key, key_len(o)) % n;
			o->next = t[i];
			t[i] = o;
		}
	free(objects);
	objects = t;
	nbuckets = n;
}

/* Free the records nothing refers to: no live holder, no call waiting or
 * being placed, no alarm delivery, no flush due. */
static void sweep(void)
{
	for (size_t b = 0; b < nbuckets; b++)
		for (struct do_obj **p = &objects[b]; *p;) {
			struct do_obj *o = *p;
			int live = o->pinned && host_instance_app(o->h, o->pinned);
			if (live || o->establishing || o->wait_head || o->busy ||
			    loop_timer_armed(&o->flush)) {
				p = &o->next;
				continue;
			}
			*p = o->next;
			free(o->key);
			free(o);
			nobjects--;
		}
	sweep_at = nobjects * 2 > DO_SWEEP_MIN ? nobjects * 2 : DO_SWEEP_MIN;
}

static void flush_fn(struct loop *l, struct loop_timer *t);

/* The record of (w, cls, id): found, or made when create (else NULL). */
static struct do_obj *obj_lookup(struct do_worker *w, const char *cls, const char *id, int create)
{
	size_t dl = strlen(w->state_dir), cl = strlen(cls);
	size_t kl = dl + 1 + cl + 1 + 64;
	char *key = xmalloc(kl);
	memcpy(key, w->state_dir, dl + 1);
	memcpy(key + dl + 1, cls, cl + 1);
	memcpy(key + dl + 1 + cl + 1, id, 64);
	if (!objects)
		rehash(DO_BUCKETS_MIN);
	size_t b = hash(key, kl) % nbuckets;
	for (struct do_obj *o = objects[b]; o; o = o->next)
		if (!memcmp(o->key, key, kl)) {
			free(key);
			return o;
		}
	if (!create) {
		free(key);
		return NULL;
	}
	if (nobjects + 1 >= sweep_at) {
		sweep();
		if (nobjects + 1 > nbuckets * 2)
			rehash(nbuckets * 4);
		b = hash(key, kl) % nbuckets;
	}
	struct do_obj *o = xcalloc(1, sizeof *o);
	nobjects++;
	o->key = key;
	o->w = w;
	o->h = w->h;
	snprintf(o->cls, sizeof o->cls, "%s", cls);
	memcpy(o->id, id, 64);
	o->flush.fn = flush_fn;
	o->flush.arg = o;
	o->next = objects[b];
	objects[b] = o;
	return o;
}

static struct do_obj *obj_get(struct do_worker *w, const char *cls, const char *id)
{
	return obj_lookup(w, cls, id, 1);
}

static void wait_free(struct do_wait *wt)
{
	buf_free(&wt->head);
	if (wt->ns)
		ns_unref(wt->ns);
	free(wt);
}

/* --- routing: one live instance per object --- */


static void on_attach(void *arg, unsigned instance_id)
{
	struct do_obj *o = arg;
	/* Only note it: the calls waiting go from a timer, never from inside
	 * the pool's attach. */
	if (instance_id)
		o->pinned = instance_id;
	o->establishing = 0;
	if (o->wait_head)
		loop_timer_arm(o->h->loop, &o->flush, 0);
}

static void flush_fn(struct loop *l, struct loop_timer *t)
{
	(void)l;
	struct do_obj *o = t->arg;
	while (o->wait_head && !o->establishing) {
		struct do_wait *wt = o->wait_head;
		o->wait_head = wt->next;
		if (!o->wait_head)
			o->wait_tail = NULL;
		wt->next = NULL;
		route(o, wt);
	}
}

static void alarm_done(struct hreq *r, void *arg);
static void alarm_delivered(struct do_wait *wt, struct do_obj *o, int ok);

/* An app of o's worker that still serves o's class (the newest), or NULL. */
static struct app *app_for(struct do_obj *o)
{
	for (struct do_ns *ns = o->w->spaces; ns; ns = ns->w_next)
		if (ns->app && !strcmp(ns->cls, o->cls))
			return ns->app;
	return NULL;
}

struct alarm_ctx {
	struct do_obj *o;
	struct do_wait *wt;
};

/* Send wt (taken) to the object's instance, or to its app to be pinned. */
static void route(struct do_obj *o, struct do_wait *wt)
{
	struct host *h = o->h;
	o->last_ns = now_ns();
	struct app *a = o->pinned ? host_instance_app(h, o->pinned) : NULL;
	if (!a) {
		o->pinned = 0;
		if (o->establishing) { /* wait for the first call's instance */
			if (o->wait_tail)
				o->wait_tail->next = wt;
			else
				o->wait_head = wt;
			o->wait_tail = wt;
			return;
		}
		a = wt->ns->app ? wt->ns->app : app_for(o);
		if (!a) { /* no app of the worker serves the class now */
			if (wt->alarm) {
				alarm_delivered(wt, o, 0);
			} else {
				binding_call_done(h, wt->bc.instance_id, wt->bc.stream, NULL,
						  "no version of this worker serves the Durable Object "
						  "class now");
				wait_free(wt);
			}
			return;
		}
		o->establishing = 1;
	}
	char uri[96];
	snprintf(uri, sizeof uri, "%.40s/%.16s", o->cls, o->id);
	if (wt->alarm) {
		struct alarm_ctx *ac = xcalloc(1, sizeof *ac);
		ac->o = o;
		ac->wt = wt;
		struct buf head = wt->head;
		wt->head = (struct buf){0};
		front_internal_stream_pinned(a, "ALARM", uri, &head, NULL, DO_ALARM_TIMEOUT_MS, NULL,
					     NULL, alarm_done, ac, o->pinned,
					     o->pinned ? NULL : on_attach, o);
		return;
	}
	binding_call_forward_pinned(&wt->bc, a, "DO", uri, &wt->head, wt->depth,
				    h->lim.timeout_ms, o->pinned, o->pinned ? NULL : on_attach, o);
	wait_free(wt);
}

/* --- the namespace binding's calls --- */

struct store_job {
	struct exec_job job;
	struct do_ns *ns;
	struct do_worker *w;
	struct host *h;
	unsigned instance;
	uint32_t stream;
	char cls[128];
	char id[65];
	char op[16];
	uint8_t *body; /* the call's JSON arguments, parsed on the executor */
	size_t body_len;
	json_t *args;
	json_t *answer; /* or NULL with err */
	char err[512];
	int64_t next_alarm; /* alarm ops: the worker's earliest after it (0: none) */
	int alarm_op;
};

/* Executor thread: the open object files. */
static struct {
	char *path;
	struct dobj *o;
	uint64_t used;
} cache[DO_STORE_CACHE];
static uint64_t cache_clock;

static struct dobj *store_open(const char *state_dir, const char *cls, const char *id, char *err,
			       size_t errlen)
{
	char *path = xasprintf("%s/do/%s/%s.sqlite", state_dir, cls, id);
	int victim = 0;
	for (int i = 0; i < DO_STORE_CACHE; i++) {
		if (cache[i].path && !strcmp(cache[i].path, path)) {
			cache[i].used = ++cache_clock;
			free(path);
			return cache[i].o;
		}
		if (cache[i].used < cache[victim].used)
			victim = i;
	}
	char *dir = xasprintf("%s/do/%s", state_dir, cls);
	int rc = mkdir_p(dir, 0700);
	free(dir);
	if (rc < 0) {
		err_set(err, errlen, "cannot create %s/do/%s: %s", state_dir, cls, strerror(errno));
		free(path);
		return NULL;
	}
	struct dobj *o = dobj_open(path, err, errlen);
	if (!o) {
		free(path);
		return NULL;
	}
	dobj_close(cache[victim].o);
	free(cache[victim].path);
	cache[victim].path = path;
	cache[victim].o = o;
	cache[victim].used = ++cache_clock;
	return o;
}

static struct dobj_alarms *alarms_of(struct do_worker *w, char *err, size_t errlen)
{
	if (!w->alarms) {
		char *dir = xasprintf("%s/do", w->state_dir);
		mkdir_p(dir, 0700);
		char *path = xasprintf("%s/alarms.sqlite", dir);
		w->alarms = dobj_alarms_open(path, err, errlen);
		free(path);
		free(dir);
	}
	return w->alarms;
}

static int64_t next_alarm_ms(struct do_worker *w)
{
	char err[256];
	struct dobj_alarm a;
	struct dobj_alarms *al = alarms_of(w, err, sizeof err);
	if (!al)
		return 0;
	return dobj_alarm_next(al, &a, err, sizeof err) == 1 ? (a.at_ms > 0 ? a.at_ms : 1) : 0;
}

static void store_run(struct exec_job *job)
{
	struct store_job *j = (struct store_job *)job;
	json_error_t je;
	j->args = j->body_len ? json_loadb((const char *)j->body, j->body_len, 0, &je) : json_object();
	free(j->body);
	j->body = NULL;
	if (!json_is_object(j->args)) {
		snprintf(j->err, sizeof j->err, "TypeError: storage arguments must be a JSON object");
		return;
	}
	if (!strncmp(j->op, "alarm_", 6)) {
		j->alarm_op = 1;
		struct dobj_alarms *al = alarms_of(j->w, j->err, sizeof j->err);
		if (!al)
			return;
		int64_t at = 0;
		if (!strcmp(j->op, "alarm_get")) {
			int r = dobj_alarm_get(al, j->cls, j->id, &at, j->err, sizeof j->err);
			if (r >= 0)
				j->answer = r ? json_pack("{s:I}", "at", (json_int_t)at)
					      : json_pack("{s:n}", "at");
		} else if (!strcmp(j->op, "alarm_set")) {
			json_t *v = json_object_get(j->args, "at");
			if (!json_is_integer(v)) {
				snprintf(j->err, sizeof j->err,
					 "TypeError: set_alarm() takes a time in ms since the epoch");
				return;
			}
			if (dobj_alarm_set(al, j->cls, j->id, json_integer_value(v), j->err,
					   sizeof j->err) == 0)
				j->answer = json_object();
		} else if (!strcmp(j->op, "alarm_delete")) {
			if (dobj_alarm_delete(al, j->cls, j->id, j->err, sizeof j->err) == 0)
				j->answer = json_object();
		} else {
			snprintf(j->err, sizeof j->err, "TypeError: no storage method %s", j->op);
		}
		j->next_alarm = next_alarm_ms(j->w);
		return;
	}
	struct dobj *o = store_open(j->w->state_dir, j->cls, j->id, j->err, sizeof j->err);
	if (o)
		j->answer = dobj_call(o, j->op, j->args, j->err, sizeof j->err);
}

static void store_done(struct exec_job *job, int stopped)
{
	struct store_job *j = (struct store_job *)job;
	if (stopped) {
		binding_call_done(j->h, j->instance, j->stream, NULL, "the host is stopping");
	} else if (!j->answer) {
		binding_call_done(j->h, j->instance, j->stream, NULL,
				  j->err[0] ? j->err : "Durable Object storage failed");
	} else {
		char *text = json_dumps(j->answer, JSON_COMPACT);
		struct call_result res;
		call_result_init(&res);
		res.status = 200;
		buf_append(&res.body, text, strlen(text));
		free(text);
		binding_call_done(j->h, j->instance, j->stream, &res, NULL);
	}
	if (!stopped && j->alarm_op) {
		j->w->next_ms = j->next_alarm;
		alarm_schedule(j->w);
	}
	json_decref(j->args);
	json_decref(j->answer);
	free(j->body);
	ns_unref(j->ns);
	free(j);
}

static int arg_text(const struct binding_call *c, const char *name, char *out, size_t outlen)
{
	const uint8_t *v;
	size_t n;
	if (!call_arg(&c->args, name, &v, &n) || n >= outlen)
		return -1;
	memcpy(out, v, n);
	out[n] = 0;
	return 0;
}

static int storage_call(struct do_ns *ns, const struct binding_call *c, const char *id, char *err,
			size_t errlen)
{
	char op[16];
	if (arg_text(c, ":op", op, sizeof op) < 0) {
		err_set(err, errlen, "TypeError: a storage call needs :op");
		return -1;
	}
	struct do_obj *o = obj_lookup(ns->w, ns->cls, id, 0);
	if (o)
		o->last_ns = now_ns();
	if (!o || !o->pinned || o->pinned != c->instance_id) {
		err_set(err, errlen, "this instance does not hold the Durable Object %s/%.16s… (it "
				     "was moved or evicted): its storage is refused",
			ns->cls, id);
		return -1;
	}
	struct store_job *j = xcalloc(1, sizeof *j);
	/* Parsed on the executor: a body may be 32 MiB of JSON. */
	j->body = c->body_len ? xmalloc(c->body_len) : NULL;
	if (c->body_len)
		memcpy(j->body, c->body, c->body_len);
	j->body_len = c->body_len;
	j->job.run = store_run;
	j->job.done = store_done;
	j->ns = ns;
	ns->refs++;
	j->w = ns->w;
	j->h = c->h;
	j->instance = c->instance_id;
	j->stream = c->stream;
	snprintf(j->cls, sizeof j->cls, "%s", ns->cls);
	memcpy(j->id, id, 65);
	snprintf(j->op, sizeof j->op, "%s", op);
	executor_submit(c->h, &j->job);
	return 1;
}

/* The head of an object call: rpc or fetch (from the caller's args). */
static int call_head(struct do_ns *ns, const struct binding_call *c, const char *id, int fetch,
		     struct buf *head, char *err, size_t errlen)
{
	struct buf base = {0};
	if (fetch ? service_fetch_head(&c->args, NULL, &base, err, errlen)
		  : service_rpc_head(&c->args, "do", NULL, &base, err, errlen))
		return -1;
	/* base: count, :method, :url, then (fetch) headers or (rpc) :event rpc,
	 * :entrypoint, :rpc-method. Ours: count, :method, :url, the object's
	 * five, then the headers or :rpc-method. */
	const uint8_t *p = buf_head(&base), *end = p + buf_used(&base);
	uint32_t count = thaw_get_u32(p);
	p += 4;
	const uint8_t *pairs[64 + 8];
	size_t lens[64 + 8];
	uint32_t n = 0;
	while (p < end && n < count && n < 64 + 8) {
		uint32_t kl = thaw_get_u32(p);
		uint32_t vl = thaw_get_u32(p + 4 + kl);
		pairs[n] = p;
		lens[n] = 8u + kl + vl;
		p += lens[n++];
	}
	if (n != count || n < 2) {
		buf_free(&base);
		err_set(err, errlen, "cannot build the call's head");
		return -1;
	}
	uint8_t cnt[4];
	uint32_t extra = fetch ? n - 2 : 1;
	thaw_put_u32(cnt, 2 + 5 + extra);
	buf_append(head, cnt, 4);
	buf_append(head, pairs[0], lens[0]);
	buf_append(head, pairs[1], lens[1]);
	kv_put(head, ":event", "do", 2);
	kv_put(head, ":do-class", ns->cls, strlen(ns->cls));
	kv_put(head, ":do-id", id, 64);
	kv_put(head, ":do-binding", ns->binding, strlen(ns->binding));
	kv_put(head, ":do-op", fetch ? "fetch" : "rpc", fetch ? 5 : 3);
	if (fetch)
		for (uint32_t i = 2; i < n; i++)
			buf_append(head, pairs[i], lens[i]);
	else
		buf_append(head, pairs[n - 1], lens[n - 1]); /* :rpc-method */
	buf_free(&base);
	return 0;
}

static int do_call(void *ctx, const struct binding_call *c, struct call_result *res, char *err,
		   size_t errlen)
{
	(void)res;
	struct do_ns *ns = ctx;
	const uint8_t *v;
	size_t n;
	if (!call_arg(&c->args, ":id", &v, &n) || !hex_id(v, n)) {
		err_set(err, errlen, "TypeError: Invalid Durable Object ID: must be 64 hex digits");
		return -1;
	}
	char id[65];
	memcpy(id, v, 64);
	id[64] = 0;
	if (!strcmp(c->method, "storage"))
		return storage_call(ns, c, id, err, errlen);
	int fetch = !strcmp(c->method, "fetch");
	if (!fetch && strcmp(c->method, "rpc") != 0) {
		err_set(err, errlen, "TypeError: a Durable Object namespace has no method %.40s",
			c->method);
		return -1;
	}
	if (c->depth + 1 > SERVICE_DEPTH_MAX) {
		err_set(err, errlen, "%s", SERVICE_DEPTH_ERROR);
		return -1;
	}
	struct do_wait *wt = xcalloc(1, sizeof *wt);
	if (call_head(ns, c, id, fetch, &wt->head, err, errlen) < 0) {
		free(wt);
		return -1;
	}
	wt->ns = ns;
	ns->refs++;
	wt->bc.h = c->h;
	wt->bc.instance_id = c->instance_id;
	wt->bc.stream = c->stream;
	wt->depth = c->depth + 1;
	route(obj_get(ns->w, ns->cls, id), wt);
	return 1;
}

/* --- alarms --- */

struct alarm_job {
	struct exec_job job;
	struct do_worker *w;
	char *classes; /* JSON list of the classes an app serves now: only their alarms are due */
	char *exclude; /* JSON [[class, id]..] being delivered: not due again */
	int64_t now_ms;
	int found;
	struct dobj_alarm due;
	/* a finished delivery to record first (ran): */
	int record;
	struct dobj_alarm ran;
	int ok;
	int64_t next_ms;
};

static void alarm_job_run(struct exec_job *job)
{
	struct alarm_job *j = (struct alarm_job *)job;
	char err[256];
	struct dobj_alarms *al = alarms_of(j->w, err, sizeof err);
	if (!al) {
		log_error("Durable Object alarms of %s: %s", j->w->state_dir, err);
		return;
	}
	if (j->record) {
		int64_t retry = 0;
		int ok = j->ok;
		if (!ok && j->ran.attempt >= DO_ALARM_RETRIES) { /* the first run and 6 retries */
			log_warn("Durable Object %s/%.16s…: alarm() failed %d times: the alarm is "
				 "dropped",
				 j->ran.cls, j->ran.id, DO_ALARM_RETRIES + 1);
			ok = 1;
		}
		if (!ok)
			retry = j->now_ms +
				((int64_t)2000 << (j->ran.attempt < 10 ? j->ran.attempt : 10));
		if (dobj_alarm_ran(al, j->ran.cls, j->ran.id, j->ran.at_ms, ok, retry, err,
				   sizeof err) < 0)
			log_error("Durable Object alarms: %s", err);
	}
	struct dobj_alarm a;
	if (!j->classes) /* a record only */
		return;
	int r = dobj_alarm_next_in(al, j->classes, j->exclude, &a, err, sizeof err);
	j->next_ms = 0;
	if (r == 1 && a.at_ms <= j->now_ms) {
		j->found = 1;
		j->due = a;
	} else if (r == 1) {
		j->next_ms = a.at_ms;
	}
}

static struct do_ns *space_for(struct do_worker *w, const char *cls)
{
	for (struct do_ns *ns = w->spaces; ns; ns = ns->w_next)
		if (ns->app && !strcmp(ns->cls, cls))
			return ns;
	return NULL;
}

static void alarm_scan(struct do_worker *w);

/* Start delivering the due alarm a (the object's alarm(), routed as a call). */
static void alarm_deliver(struct do_worker *w, const struct dobj_alarm *a)
{
	struct do_ns *ns = space_for(w, a->cls);
	if (!ns)
		return; /* the scan only finds classes an app serves: gone meanwhile */
	struct do_obj *o = obj_get(w, ns->cls, a->id);
	struct do_wait *wt = xcalloc(1, sizeof *wt);
	wt->alarm = 1;
	wt->alarm_at = a->at_ms;
	wt->attempt = a->attempt;
	wt->ns = ns;
	ns->refs++;
	char url[256];
	snprintf(url, sizeof url, "http://do/%.100s/%.64s/alarm", ns->cls, a->id);
	uint8_t cnt[4];
	thaw_put_u32(cnt, 8);
	buf_append(&wt->head, cnt, 4);
	kv_put(&wt->head, ":method", "POST", 4);
	kv_put(&wt->head, ":url", url, strlen(url));
	kv_put(&wt->head, ":event", "do", 2);
	kv_put(&wt->head, ":do-class", ns->cls, strlen(ns->cls));
	kv_put(&wt->head, ":do-id", a->id, strlen(a->id));
	kv_put(&wt->head, ":do-binding", ns->binding, strlen(ns->binding));
	kv_put(&wt->head, ":do-op", "alarm", 5);
	char retry[24];
	snprintf(retry, sizeof retry, "%lld", (long long)a->attempt);
	kv_put(&wt->head, ":do-retry", retry, strlen(retry));
	/* In flight: later scans pass it over; o stays while it is. */
	json_array_append_new(w->inflight, json_pack("[s, s]", ns->cls, a->id));
	w->delivering++;
	o->busy++;
	route(o, wt);
}

static void alarm_job_done(struct exec_job *job, int stopped)
{
	struct alarm_job *j = (struct alarm_job *)job;
	struct do_worker *w = j->w;
	int scan = !j->record;
	if (scan)
		w->scanning = 0;
	free(j->classes);
	free(j->exclude);
	if (stopped) {
		free(j);
		return;
	}
	if (j->record) { /* a delivery finished: room for another, and maybe one is due */
		alarm_scan(w);
		free(j);
		return;
	}
	if (j->found) {
		alarm_deliver(w, &j->due);
		free(j);
		alarm_scan(w); /* more may be due */
		return;
	}
	w->next_ms = j->next_ms;
	free(j);
	if (w->rescan) {
		w->rescan = 0;
		alarm_scan(w);
		return;
	}
	alarm_schedule(w);
}

/* The classes some app of w serves now, as a JSON list (returns new). */
static char *live_classes(struct do_worker *w)
{
	json_t *list = json_array();
	for (struct do_ns *ns = w->spaces; ns; ns = ns->w_next)
		if (ns->app)
			json_array_append_new(list, json_string(ns->cls));
	char *text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	return text ? text : xstrdup("[]");
}

/* Look for a due alarm on the executor (one scan at a time; at most
 * DO_ALARM_CONCURRENCY deliveries at once); its done() delivers it. */
static void alarm_scan(struct do_worker *w)
{
	if (w->scanning) {
		w->rescan = 1;
		return;
	}
	if (w->delivering >= DO_ALARM_CONCURRENCY || executor_stopping(w->h))
		return; /* a delivery's end scans again */
	struct alarm_job *j = xcalloc(1, sizeof *j);
	j->job.run = alarm_job_run;
	j->job.done = alarm_job_done;
	j->w = w;
	j->classes = live_classes(w);
	j->exclude = json_dumps(w->inflight, JSON_COMPACT);
	j->now_ms = wall_ms();
	w->scanning = 1;
	executor_submit(w->h, &j->job);
}

static void alarm_check(struct do_worker *w)
{
	alarm_scan(w);
}

static void alarm_timer(struct loop *l, struct loop_timer *t)
{
	(void)l;
	alarm_scan(t->arg);
}

static void alarm_schedule(struct do_worker *w)
{
	loop_timer_cancel(w->h->loop, &w->timer);
	if (!w->next_ms)
		return;
	int64_t wait = w->next_ms - wall_ms();
	double ms = wait > 0 ? (double)wait : 0;
	/* An alarm years ahead: look again in an hour (the timer's range is finite). */
	loop_timer_arm(w->h->loop, &w->timer, ms < DO_ALARM_WAIT_MAX_MS ? ms : DO_ALARM_WAIT_MAX_MS);
}

/* Forget o's delivery in w's in-flight list. */
static void inflight_drop(struct do_worker *w, const struct do_obj *o)
{
	size_t i;
	json_t *v;
	json_array_foreach(w->inflight, i, v)
	{
		const char *c = json_string_value(json_array_get(v, 0));
		const char *id = json_string_value(json_array_get(v, 1));
		if (c && id && !strcmp(c, o->cls) && !strcmp(id, o->id)) {
			json_array_remove(w->inflight, i);
			break;
		}
	}
	if (w->delivering)
		w->delivering--;
}

static void alarm_delivered(struct do_wait *wt, struct do_obj *o, int ok)
{
	struct do_worker *w = o->w;
	o->busy--;
	struct alarm_job *j = xcalloc(1, sizeof *j);
	j->job.run = alarm_job_run;
	j->job.done = alarm_job_done;
	j->w = w;
	j->now_ms = wall_ms();
	j->record = 1;
	j->ok = ok;
	snprintf(j->ran.cls, sizeof j->ran.cls, "%s", o->cls);
	snprintf(j->ran.id, sizeof j->ran.id, "%s", o->id);
	j->ran.at_ms = wt->alarm_at;
	j->ran.attempt = wt->attempt;
	/* Recorded before the in-flight mark goes: the next scan sees the row as it is now. */
	executor_submit(w->h, &j->job);
	inflight_drop(w, o);
	wait_free(wt);
}

static void alarm_done(struct hreq *r, void *arg)
{
	struct alarm_ctx *ac = arg;
	if (executor_stopping(r->h)) { /* the host stops: not a failure of alarm() */
		ac->o->busy--;
		inflight_drop(ac->o->w, ac->o);
		wait_free(ac->wt);
		free(ac);
		return;
	}
	char outcome[16] = "";
	int ok = r->resp_status == 200 &&
		 hreq_resp_header(r, "thaw-rpc", outcome, sizeof outcome) &&
		 !strcmp(outcome, "result");
	if (!ok)
		log_warn("Durable Object %s/%.16s…: alarm() %s (attempt %lld)", ac->o->cls,
			 ac->o->id, r->resp_status ? "raised an exception" : "could not run",
			 (long long)ac->wt->attempt + 1);
	alarm_delivered(ac->wt, ac->o, ok);
	free(ac);
}

/* --- migrations: renamed and deleted classes, applied to storage once --- */

struct migrate_job {
	struct exec_job job;
	struct do_worker *w;
	json_t *migrations; /* the project's list, in order */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Executor: apply the migrations whose tags STATE/do/migrations.json does not
 * list, in order, then record them. A renamed class's directory and alarms
 * move to its new name; a deleted class's are removed. */
static void migrate_run(struct exec_job *job)
{
	struct migrate_job *j = (struct migrate_job *)job;
	struct do_worker *w = j->w;
	char *dir = xasprintf("%s/do", w->state_dir);
	char *rec = xasprintf("%s/migrations.json", dir);
	mkdir_p(dir, 0700);
	json_t *applied = json_load_file(rec, 0, NULL);
	if (!json_is_array(applied)) {
		json_decref(applied);
		applied = json_array();
	}
	int changed = 0;
	char err[256];
	size_t i;
	json_t *m;
	json_array_foreach(j->migrations, i, m)
	{
		json_t *tag = json_object_get(m, "tag");
		int done = 0;
		size_t k;
		json_t *t;
		json_array_foreach(applied, k, t) done |= json_equal(t, tag);
		if (!json_is_string(tag) || done)
			continue;
		json_t *r;
		json_array_foreach(json_object_get(m, "renamed_classes"), k, r)
		{
			const char *from = json_string_value(json_object_get(r, "from"));
			const char *to = json_string_value(json_object_get(r, "to"));
			if (!from || !to || !identifier(from) || !identifier(to))
				continue;
			char *a = xasprintf("%s/%s", dir, from), *b = xasprintf("%s/%s", dir, to);
			if (rename(a, b) < 0 && errno != ENOENT)
				log_error("Durable Objects: moving %s to %s: %s", a, b, strerror(errno));
			free(a);
			free(b);
			struct dobj_alarms *al = alarms_of(w, err, sizeof err);
			if (al && dobj_alarms_rename(al, from, to, err, sizeof err) < 0)
				log_error("Durable Objects: %s", err);
		}
		json_t *d;
		json_array_foreach(json_object_get(m, "deleted_classes"), k, d)
		{
			const char *cls = json_string_value(d);
			if (!cls || !identifier(cls))
				continue;
			char *a = xasprintf("%s/%s", dir, cls);
			nftw(a, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
			free(a);
			struct dobj_alarms *al = alarms_of(w, err, sizeof err);
			if (al && dobj_alarms_rename(al, cls, NULL, err, sizeof err) < 0)
				log_error("Durable Objects: %s", err);
		}
		json_array_append(applied, tag);
		changed = 1;
	}
	if (changed) {
		char *tmp = xasprintf("%s.tmp", rec);
		if (json_dump_file(applied, tmp, JSON_COMPACT) < 0 || rename(tmp, rec) < 0)
			log_error("Durable Objects: cannot record the migrations applied in %s", rec);
		free(tmp);
	}
	json_decref(applied);
	free(rec);
	free(dir);
}

static void migrate_done(struct exec_job *job, int stopped)
{
	(void)stopped;
	struct migrate_job *j = (struct migrate_job *)job;
	json_decref(j->migrations);
	free(j);
}

static void migrate(struct do_worker *w, const struct project *p)
{
	json_t *pj = project_to_json(p);
	json_t *list = json_object_get(pj, "migrations");
	if (json_is_array(list) && json_array_size(list)) {
		struct migrate_job *j = xcalloc(1, sizeof *j);
		j->job.run = migrate_run;
		j->job.done = migrate_done;
		j->w = w;
		j->migrations = json_incref(list);
		executor_submit(w->h, &j->job); /* before any storage call of this app */
	}
	json_decref(pj);
}

/* --- the binding's life --- */

static json_t *do_describe(void *ctx)
{
	struct do_ns *ns = ctx;
	return json_pack("{s:s, s:s}", "class_name", ns->cls, "namespace", ns->origin);
}

static void ns_unref(struct do_ns *ns)
{
	if (--ns->refs)
		return;
	struct do_worker *w = ns->w;
	for (struct do_ns **p = &w->spaces; *p; p = &(*p)->w_next)
		if (*p == ns) {
			*p = ns->w_next;
			break;
		}
	free(ns);
}

static void do_release(void *ctx)
{
	struct do_ns *ns = ctx;
	/* Its app goes: calls and jobs still holding ns must not reach it. */
	ns->app = NULL;
	ns_unref(ns);
}

static const struct binding_kind do_kind = {
	.type = "durable_object",
	.max_body = DO_STORAGE_BODY_MAX,
	.call = do_call,
	.release = do_release,
	.describe = do_describe,
};

/* The worker (its state directory) of a, made on first use. */
static struct do_worker *worker_of(struct app *a)
{
	struct do_worker *w = workers;
	while (w && strcmp(w->state_dir, a->state_dir) != 0)
		w = w->next;
	if (!w) {
		w = xcalloc(1, sizeof *w);
		w->state_dir = xstrdup(a->state_dir);
		w->h = a->h;
		w->timer.fn = alarm_timer;
		w->timer.arg = w;
		w->inflight = json_array();
		w->next = workers;
		workers = w;
		alarm_check(w); /* alarms set before a restart */
	}
	return w;
}

/* "migrations" as a hidden kind: its factory runs for each entry when an app
 * loads (with or without Durable Object bindings: a deleted class has none);
 * the first entry applies the list. */
static int migrations_call(void *ctx, const struct binding_call *c, struct call_result *res,
			   char *err, size_t errlen)
{
	(void)ctx;
	(void)c;
	(void)res;
	return err_set(err, errlen, "migrations are not called");
}

static void migrations_release(void *ctx)
{
	free(ctx);
}

static const struct binding_kind migrations_kind = {
	.type = "do_migrations",
	.call = migrations_call,
	.release = migrations_release,
	.hidden = 1,
};

static void *migrations_make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	if (a->state_dir && a->cfg) {
		json_t *pj = project_to_json(a->cfg);
		json_t *first = json_array_get(json_object_get(pj, "migrations"), 0);
		if (first && json_equal(json_object_get(first, "tag"), json_object_get(entry, "tag")))
			migrate(worker_of(a), a->cfg);
		json_decref(pj);
	}
	return xcalloc(1, 1);
}

static void *do_make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(entry, "name"));
	const char *cls = json_string_value(json_object_get(entry, "class_name"));
	const char *script = json_string_value(json_object_get(entry, "script_name"));
	if (!a->state_dir) {
		err_set(err, errlen, "no state directory for this worker");
		return NULL;
	}
	if (!name || !cls || strlen(name) >= 64 || !identifier(cls)) {
		err_set(err, errlen, "a Durable Object binding needs a name and a class_name");
		return NULL;
	}
	if (script && *script && a->cfg && a->cfg->name && strcmp(script, a->cfg->name) != 0) {
		err_set(err, errlen,
			"durable_objects binding %s: script_name %s: Durable Object classes of "
			"another worker are not served in this version (define the class in this "
			"worker)",
			name, script);
		return NULL;
	}
	struct do_worker *w = worker_of(a);
	evict_start(a->h);
	struct do_ns *ns = xcalloc(1, sizeof *ns);
	ns->refs = 1;
	ns->app = a;
	ns->h = a->h;
	ns->w = w;
	snprintf(ns->binding, sizeof ns->binding, "%s", name);
	snprintf(ns->cls, sizeof ns->cls, "%s", cls);
	/* Follow renamed_classes back to the first name: an object's id stays
	 * the same when its class is renamed, as on Cloudflare. */
	snprintf(ns->origin, sizeof ns->origin, "%s", cls);
	if (a->cfg) {
		json_t *pj = project_to_json(a->cfg);
		json_t *list = json_object_get(pj, "migrations");
		for (size_t i = json_array_size(list); i-- > 0;) {
			size_t k;
			json_t *r;
			json_array_foreach(json_object_get(json_array_get(list, i), "renamed_classes"), k,
					   r)
			{
				const char *from = json_string_value(json_object_get(r, "from"));
				const char *to = json_string_value(json_object_get(r, "to"));
				if (from && to && !strcmp(to, ns->origin) && strlen(from) < sizeof ns->origin)
					snprintf(ns->origin, sizeof ns->origin, "%s", from);
			}
		}
		json_decref(pj);
	}
	ns->w_next = w->spaces;
	w->spaces = ns;
	return ns;
}

/* --- idle eviction --- */

/* An object without a call for this long is dropped by its instance and
 * unpinned: the next call makes it again (in whichever instance the host
 * picks then), from its storage, as Cloudflare evicts an idle object.
 * THAW_DO_IDLE_MS overrides it (tests). */
#define DO_IDLE_MS_DEFAULT 70000.0
static double idle_ms = DO_IDLE_MS_DEFAULT;
static struct loop_timer evict_timer;
static struct host *evict_host;

struct evict_ctx {
	struct do_obj *o;
	uint64_t started;
};

static void evict_done(struct hreq *r, void *arg)
{
	struct evict_ctx *ec = arg;
	struct do_obj *o = ec->o;
	o->busy--;
	o->evicting = 0;
	char outcome[16] = "";
	int dropped = r->resp_status == 200 &&
		      hreq_resp_header(r, "thaw-do-evicted", outcome, sizeof outcome) &&
		      !strcmp(outcome, "1");
	/* Unpinned only when the instance dropped it and no call came since. */
	if (dropped && o->last_ns <= ec->started && !o->wait_head && !o->establishing) {
		o->pinned = 0;
		log_info("Durable Object %s/%.16s… evicted (idle %.0f s)", o->cls, o->id,
			 idle_ms / 1000);
	}
	free(ec);
}

static void evict(struct do_obj *o, struct app *a)
{
	struct do_ns *ns = NULL;
	for (struct do_ns *n = o->w->spaces; n; n = n->w_next)
		if (n->app == a && !strcmp(n->cls, o->cls))
			ns = n;
	if (!ns)
		return;
	struct buf head = {0};
	char url[256];
	snprintf(url, sizeof url, "http://do/%.100s/%.64s/evict", o->cls, o->id);
	uint8_t cnt[4];
	thaw_put_u32(cnt, 7);
	buf_append(&head, cnt, 4);
	kv_put(&head, ":method", "POST", 4);
	kv_put(&head, ":url", url, strlen(url));
	kv_put(&head, ":event", "do", 2);
	kv_put(&head, ":do-class", o->cls, strlen(o->cls));
	kv_put(&head, ":do-id", o->id, 64);
	kv_put(&head, ":do-binding", ns->binding, strlen(ns->binding));
	kv_put(&head, ":do-op", "evict", 5);
	struct evict_ctx *ec = xcalloc(1, sizeof *ec);
	ec->o = o;
	ec->started = now_ns();
	o->busy++;
	o->evicting = 1;
	front_internal_stream_pinned(a, "EVICT", url, &head, NULL, 30000.0, NULL, NULL, evict_done,
				     ec, o->pinned, NULL, NULL);
}

static void evict_fn(struct loop *l, struct loop_timer *t)
{
	(void)t;
	uint64_t now = now_ns(), idle = (uint64_t)(idle_ms * 1e6);
	for (size_t b = 0; b < nbuckets; b++)
		for (struct do_obj *o = objects[b]; o; o = o->next) {
			if (!o->pinned || o->evicting || o->establishing || o->wait_head ||
			    now - o->last_ns < idle)
				continue;
			struct app *a = host_instance_app(o->h, o->pinned);
			if (!a) {
				o->pinned = 0; /* its instance is gone: nothing to drop */
				continue;
			}
			evict(o, a);
		}
	double every = idle_ms / 2 < 10000 ? idle_ms / 2 : 10000;
	loop_timer_arm(l, &evict_timer, every > 50 ? every : 50);
}

static void evict_start(struct host *h)
{
	if (evict_host)
		return;
	const char *env = getenv("THAW_DO_IDLE_MS");
	char *end;
	double v = env ? strtod(env, &end) : 0;
	if (env && end != env && v >= 100 && v <= 86400000)
		idle_ms = v;
	evict_host = h;
	evict_timer.fn = evict_fn;
	loop_timer_arm(h->loop, &evict_timer, idle_ms / 2 < 10000 ? idle_ms / 2 : 10000);
}

void do_binding_register(void)
{
	binding_kind_register("durable_objects.bindings", "name", &do_kind, do_make);
	binding_kind_register("migrations", "tag", &migrations_kind, migrations_make);
}
