/*
 * The KV binding (env.MY_KV): Workers KV namespaces served by the host from
 * the KV engine (src/state/kv.h), one SQLite file per namespace under the
 * worker's state directory: STATE/kv/ID.sqlite (ID: the namespace's `id`,
 * else its binding name). In thaw dev STATE is the project's .thaw/state (or
 * --persist-to); in thaw serve DATA/state/WORKER, which every version of the
 * worker shares.
 *
 * A call (binding.h) is parsed on the loop, copied into a job and run on the
 * state executor, which answers with binding_call_done:
 *   get     args key            -> 200, "found" 0|1, "metadata" (JSON text),
 *                                  "expiration" (s); body: the value
 *   put     args key, expiration, expiration_ttl, metadata; body: the value
 *   delete  args key
 *   list    args prefix, limit, cursor -> body: JSON {"keys": [{"name",
 *           "expiration"?, "metadata"?}], "list_complete", "cursor"?}
 * A refusal is Cloudflare's message: a TypeError's text prefixed with
 * "TypeError: " (the SDK raises TypeError), a request error's as it is. A
 * failure of the store is logged with its path; the worker gets a generic
 * "KV <OP> failed: 500 Internal Server Error".
 *
 * Expired keys are missing at once (the engine checks on read) and their
 * rows are swept by the namespace's next job once a minute at most.
 *
 * Ownership: struct kv_ns is the binding's ctx; its references are the
 * app's (through struct binding) and each job's (loop thread only). Its
 * store handle is used only on the executor; it is closed with the last
 * reference, when no job can be using it.
 */
#include "ext/bindings.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "host/binding.h"
#include "host/executor.h"
#include "host/host.h"
#include "state/kv.h"

#define KV_SWEEP_EVERY_MS 60000
#define KV_SWEEP_ROWS 1000

struct kv_ns {
	unsigned refs;
	char *path;
	struct kv_store *store; /* executor thread only */
	int64_t last_sweep_ms;  /* executor thread only */
	struct host *h;
};

enum kv_op { KV_OP_GET, KV_OP_PUT, KV_OP_DELETE, KV_OP_LIST };

struct kv_job {
	struct exec_job job;
	struct kv_ns *ns;
	struct host *h;
	unsigned instance;
	uint32_t stream;
	enum kv_op op;
	uint8_t *key;
	size_t key_len;
	uint8_t *value;
	size_t value_len;
	struct kv_put_options put;
	char *metadata;
	struct kv_list_options list;
	uint8_t *prefix;
	char *cursor;
	/* results */
	int rc;
	char err[KV_ERR_LEN];
	struct kv_entry entry;
	struct kv_list page;
};

static const char *const op_names[] = {"GET", "PUT", "DELETE", "LIST"};

static void ns_unref(struct kv_ns *ns)
{
	if (--ns->refs)
		return;
	kv_close(ns->store);
	free(ns->path);
	free(ns);
}

static void release(void *ctx)
{
	ns_unref(ctx);
}

/* --- the executor's side --- */

static void run(struct exec_job *job)
{
	struct kv_job *j = (struct kv_job *)job;
	struct kv_ns *ns = j->ns;
	int64_t now = wall_ms();
	if (!ns->store) {
		ns->store = kv_open(ns->path, j->err, sizeof j->err);
		if (!ns->store) {
			j->rc = KV_ERR;
			return;
		}
	}
	switch (j->op) {
	case KV_OP_GET:
		j->rc = kv_get(ns->store, j->key, j->key_len, now, &j->entry, j->err, sizeof j->err);
		break;
	case KV_OP_PUT:
		j->rc = kv_put(ns->store, j->key, j->key_len, j->value ? j->value : (uint8_t *)"",
			       j->value_len, &j->put, now, j->err, sizeof j->err);
		break;
	case KV_OP_DELETE:
		j->rc = kv_delete(ns->store, j->key, j->key_len, j->err, sizeof j->err);
		break;
	case KV_OP_LIST:
		j->rc = kv_list(ns->store, &j->list, now, &j->page, j->err, sizeof j->err);
		break;
	}
	if (now - ns->last_sweep_ms >= KV_SWEEP_EVERY_MS) {
		ns->last_sweep_ms = now;
		char err[KV_ERR_LEN];
		int deleted = 0;
		if (kv_sweep(ns->store, now, KV_SWEEP_ROWS, &deleted, err, sizeof err) < 0)
			log_warn("KV sweep: %s", err);
	}
}

/* --- the loop's side --- */

static json_t *list_json(const struct kv_list *page)
{
	json_t *keys = json_array();
	for (size_t i = 0; i < page->count; i++) {
		const struct kv_list_key *k = &page->keys[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_stringn((const char *)k->name, k->name_len));
		if (k->expiration)
			json_object_set_new(o, "expiration", json_integer(k->expiration));
		if (k->metadata) {
			json_t *m = json_loadb(k->metadata, k->metadata_len, JSON_DECODE_ANY, NULL);
			if (m)
				json_object_set_new(o, "metadata", m);
		}
		json_array_append_new(keys, o);
	}
	json_t *out = json_pack("{s:o, s:b}", "keys", keys, "list_complete", page->list_complete);
	if (page->cursor)
		json_object_set_new(out, "cursor", json_string(page->cursor));
	return out;
}

static void done(struct exec_job *job, int stopped)
{
	struct kv_job *j = (struct kv_job *)job;
	struct call_result res;
	call_result_init(&res);
	if (stopped) {
		binding_call_done(j->h, j->instance, j->stream, NULL, "the host is stopping");
	} else if (j->rc == KV_ERR) {
		log_error("KV %s: %s", op_names[j->op], j->err);
		char msg[96];
		snprintf(msg, sizeof msg, "KV %s failed: 500 Internal Server Error", op_names[j->op]);
		binding_call_done(j->h, j->instance, j->stream, NULL, msg);
	} else if (j->rc == KV_ERR_TYPE || j->rc == KV_ERR_REQUEST) {
		char msg[KV_ERR_LEN + 16];
		snprintf(msg, sizeof msg, "%s%s", j->rc == KV_ERR_TYPE ? "TypeError: " : "", j->err);
		binding_call_done(j->h, j->instance, j->stream, NULL, msg);
	} else {
		res.status = 200;
		if (j->op == KV_OP_GET) {
			call_result_pairs(&res, "found", j->rc == KV_FOUND ? "1" : "0");
			if (j->rc == KV_FOUND) {
				if (j->entry.metadata)
					call_result_pair(&res, "metadata", 8, j->entry.metadata,
							 j->entry.metadata_len);
				if (j->entry.expiration) {
					char e[24];
					snprintf(e, sizeof e, "%lld", (long long)j->entry.expiration);
					call_result_pairs(&res, "expiration", e);
				}
				buf_append(&res.body, j->entry.value, j->entry.value_len);
			}
		} else if (j->op == KV_OP_LIST) {
			json_t *o = list_json(&j->page);
			char *text = json_dumps(o, JSON_COMPACT);
			json_decref(o);
			if (text)
				buf_append(&res.body, text, strlen(text));
			free(text);
		}
		binding_call_done(j->h, j->instance, j->stream, &res, NULL);
	}
	call_result_dispose(&res);
	kv_entry_dispose(&j->entry);
	kv_list_dispose(&j->page);
	ns_unref(j->ns);
	free(j->key);
	free(j->value);
	free(j->metadata);
	free(j->prefix);
	free(j->cursor);
	free(j);
}

/* A decimal argument: 1 with *out, 0 absent, -1 malformed. */
static int arg_int(const struct call_args *args, const char *name, int64_t *out)
{
	const uint8_t *v;
	size_t n;
	if (!call_arg(args, name, &v, &n))
		return 0;
	char num[24];
	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, v, n);
	num[n] = 0;
	char *end;
	errno = 0;
	long long x = strtoll(num, &end, 10);
	if (errno || *end)
		return -1;
	*out = x;
	return 1;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = xmalloc(n + 1);
	if (n)
		memcpy(d, p, n);
	d[n] = 0;
	return d;
}

static int call(void *ctx, const struct binding_call *c, struct call_result *res, char *err,
		size_t errlen)
{
	struct kv_ns *ns = ctx;
	enum kv_op op;
	if (!strcmp(c->method, "get"))
		op = KV_OP_GET;
	else if (!strcmp(c->method, "put"))
		op = KV_OP_PUT;
	else if (!strcmp(c->method, "delete"))
		op = KV_OP_DELETE;
	else if (!strcmp(c->method, "list"))
		op = KV_OP_LIST;
	else {
		snprintf(err, errlen, "TypeError: KV namespaces have no method '%.64s'", c->method);
		return -1;
	}
	struct kv_job *j = xcalloc(1, sizeof *j);
	j->job.run = run;
	j->job.done = done;
	j->h = c->h;
	j->instance = c->instance_id;
	j->stream = c->stream;
	j->op = op;
	const uint8_t *v;
	size_t n;
	if (op != KV_OP_LIST) {
		if (!call_arg(&c->args, "key", &v, &n)) {
			free(j);
			snprintf(err, errlen, "TypeError: Key name cannot be empty.");
			return -1;
		}
		j->key = dup_bytes(v, n);
		j->key_len = n;
	}
	if (op == KV_OP_PUT) {
		j->value = dup_bytes(c->body ? c->body : (const uint8_t *)"", c->body_len);
		j->value_len = c->body_len;
		int a = arg_int(&c->args, "expiration", &j->put.expiration);
		int b = arg_int(&c->args, "expiration_ttl", &j->put.expiration_ttl);
		if (a < 0 || b < 0) {
			free(j->key);
			free(j->value);
			free(j);
			snprintf(err, errlen, "TypeError: expiration and expiration_ttl are numbers "
					      "of seconds");
			return -1;
		}
		j->put.has_expiration = a == 1;
		j->put.has_expiration_ttl = b == 1;
		if (call_arg(&c->args, "metadata", &v, &n)) {
			j->metadata = (char *)dup_bytes(v, n);
			j->put.metadata = j->metadata;
			j->put.metadata_len = n;
		}
	}
	if (op == KV_OP_LIST) {
		if (call_arg(&c->args, "prefix", &v, &n)) {
			j->prefix = dup_bytes(v, n);
			j->list.prefix = j->prefix;
			j->list.prefix_len = n;
		}
		if (arg_int(&c->args, "limit", &j->list.limit) < 0) {
			free(j->prefix);
			free(j);
			snprintf(err, errlen, "TypeError: limit must be a whole number");
			return -1;
		}
		if (call_arg(&c->args, "cursor", &v, &n)) {
			j->cursor = (char *)dup_bytes(v, n);
			j->list.cursor = j->cursor;
			j->list.cursor_len = n;
		}
	}
	(void)res;
	j->ns = ns;
	ns->refs++;
	executor_submit(c->h, &j->job);
	return 1;
}

static const struct binding_kind kv_kind = {
	.type = "kv",
	.max_body = KV_VALUE_MAX,
	.call = call,
	.release = release,
};

char *kv_binding_path(const char *state_dir, const json_t *entry)
{
	const char *id = json_string_value(json_object_get(entry, "id"));
	const char *name = id && *id ? id : json_string_value(json_object_get(entry, "binding"));
	char safe[128];
	size_t n = 0;
	for (const char *p = name ? name : "kv"; *p && n < sizeof safe - 1; p++)
		safe[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')
				    ? *p
				    : '_';
	safe[n] = 0;
	return xasprintf("%s/kv/%s.sqlite", state_dir, safe);
}

static void *make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	if (!a->state_dir) {
		snprintf(err, errlen, "no state directory for this worker");
		return NULL;
	}
	char *dir = xasprintf("%s/kv", a->state_dir);
	int rc = mkdir_p(dir, 0700);
	free(dir);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create %s/kv: %s", a->state_dir, strerror(errno));
		return NULL;
	}
	struct kv_ns *ns = xcalloc(1, sizeof *ns);
	ns->refs = 1;
	ns->h = a->h;
	ns->path = kv_binding_path(a->state_dir, entry);
	return ns;
}

void kv_binding_register(void)
{
	binding_kind_register("kv_namespaces", "binding", &kv_kind, make);
}
