/*
 * The control API's state endpoints (docs/control-api.md, "KV and D1"):
 * `thaw kv key ... --host` and `thaw d1 ... --host` read and write the KV
 * namespaces and D1 databases a worker's bindings use, in the same files
 * (DATA/state/WORKER/kv/ID.sqlite, DATA/state/WORKER/d1/NAME.sqlite).
 *
 * Which file: the binding (or namespace id, or database_name) is looked up
 * in the project configuration of the worker's deployed versions (the store
 * keeps each version's), the version with the largest share first; a worker
 * with no deployment has no state to reach.
 *
 * The loop never touches the files: every request becomes a job on the
 * host's state executor (host/executor.h), the thread the bindings' own
 * jobs run on, so a CLI write and a worker's are serialised like two
 * workers'. The job owns copies of everything it needs (the request's body
 * is moved into it) and answers through ctl_state_*, which is safe after the
 * client left. A D1 statement runs under D1's time limit
 * (D1_DEFAULT_TIMEOUT_MS), as a worker's does.
 *
 * Migrations: the client sends the migration files' names and texts (the
 * host never sees a project's migrations directory, and a migration is
 * meant to run before the version that needs it is deployed); the host
 * records them in the database's migrations_table, from the binding's
 * configuration, as `thaw d1 migrations apply` does locally.
 */
#include "ext/serve.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "ext/bindings.h"
#include "ext/control.h"
#include "ext/state_path.h"
#include "host/executor.h"
#include "state/d1.h"
#include "state/kv.h"

struct state_job {
	struct exec_job job;
	struct ctl_state *cs;
	struct state_path sp;
	char method[8];
	char *worker;
	char *path;      /* the store's file */
	char *dir;       /* its directory, made when missing */
	char *table;     /* D1: migrations_table */
	struct buf body; /* taken from the request */
	char *key;       /* KV: a copy (sp.key points into the request) */
	size_t key_len;
	struct kv_put_options put;
	char *metadata;
	char *prefix, *cursor;
	int64_t limit;
	/* results */
	unsigned status;
	json_t *out;
	struct kv_entry entry;
	int found;
};

static json_t *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_json(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *j = json_pack("{s:s}", "error", msg);
	return j ? j : json_pack("{s:s}", "error", "(the message is not UTF-8)");
}

static void job_free(struct state_job *j)
{
	free(j->worker);
	free(j->path);
	free(j->dir);
	free(j->table);
	buf_free(&j->body);
	free(j->key);
	free(j->metadata);
	free(j->prefix);
	free(j->cursor);
	json_decref(j->out);
	kv_entry_dispose(&j->entry);
	free(j);
}

/* --- the executor's side --- */

static const char *kv_op_name(const struct state_job *j)
{
	if (j->sp.op == STATE_KV_KEYS)
		return "LIST";
	return !strcmp(j->method, "PUT") ? "PUT" : !strcmp(j->method, "DELETE") ? "DELETE" : "GET";
}

static json_t *metadata_value(const char *m, size_t n)
{
	json_t *v = json_loadb(m, n, JSON_DECODE_ANY, NULL);
	return v ? v : json_stringn(m, n);
}

static void run_kv(struct state_job *j)
{
	char err[KV_ERR_LEN];
	int64_t now = wall_ms();
	struct kv_store *kv = kv_open(j->path, err, sizeof err);
	int rc = KV_ERR;
	if (!kv)
		goto out;
	if (j->sp.op == STATE_KV_KEYS) {
		struct kv_list_options o = {
			.prefix = j->prefix,
			.prefix_len = j->prefix ? strlen(j->prefix) : 0,
			.limit = j->limit,
			.cursor = j->cursor,
			.cursor_len = j->cursor ? strlen(j->cursor) : 0,
		};
		struct kv_list page;
		rc = kv_list(kv, &o, now, &page, err, sizeof err);
		if (rc == 0) {
			json_t *keys = json_array();
			for (size_t i = 0; i < page.count; i++) {
				const struct kv_list_key *k = &page.keys[i];
				json_t *e = json_pack("{s:s%}", "name", (const char *)k->name,
						      k->name_len);
				if (!e)
					e = json_pack("{s:s}", "name", "");
				if (k->expiration)
					json_object_set_new(e, "expiration",
							    json_integer(k->expiration));
				if (k->metadata)
					json_object_set_new(e, "metadata",
							    metadata_value(k->metadata,
									   k->metadata_len));
				json_array_append_new(keys, e);
			}
			j->out = json_pack("{s:o, s:b}", "keys", keys, "list_complete",
					   page.list_complete);
			if (page.cursor)
				json_object_set_new(j->out, "cursor", json_string(page.cursor));
			kv_list_dispose(&page);
		}
	} else if (!strcmp(j->method, "GET")) {
		rc = kv_get(kv, j->key, j->key_len, now, &j->entry, err, sizeof err);
		j->found = rc == KV_FOUND;
		if (rc == KV_MISSING)
			j->out = json_pack("{s:s, s:b}", "error", "not found", "missing", 1);
	} else if (!strcmp(j->method, "PUT")) {
		const uint8_t *v = buf_used(&j->body) ? buf_head(&j->body) : (const uint8_t *)"";
		rc = kv_put(kv, j->key, j->key_len, v, buf_used(&j->body), &j->put, now, err,
			    sizeof err);
		if (rc == 0)
			j->out = json_pack("{s:b}", "success", 1);
	} else {
		rc = kv_delete(kv, j->key, j->key_len, err, sizeof err);
		if (rc == 0)
			j->out = json_pack("{s:b}", "success", 1);
	}
out:
	kv_close(kv);
	if (rc >= 0) {
		j->status = rc == KV_MISSING ? 404 : 200;
		return;
	}
	if (rc == KV_ERR) {
		log_error("%s: KV %s from the control API: %s", j->worker, kv_op_name(j), err);
		j->status = 500;
		j->out = error_json("KV %s failed: 500 Internal Server Error (see the host's log)",
				    kv_op_name(j));
		return;
	}
	j->status = 400;
	j->out = error_json("%s", err);
}

static void run_d1(struct state_job *j)
{
	char err[2048];
	json_error_t je;
	json_t *body = NULL;
	struct d1_db *d = NULL;
	j->status = 400;
	if (buf_used(&j->body)) {
		body = json_loadb((const char *)buf_head(&j->body), buf_used(&j->body), 0, &je);
		buf_free(&j->body);
		if (!json_is_object(body)) {
			j->out = error_json("the body must be a JSON object");
			goto out;
		}
	}
	struct d1_options opt = {0}; /* D1's time limit, as a worker's query has */
	if (j->sp.op == STATE_D1_EXECUTE) {
		json_t *sql = json_object_get(body, "sql");
		if (!json_is_string(sql)) {
			j->out = error_json("the body is {\"sql\": TEXT}");
			goto out;
		}
		if (json_string_length(sql) > D1_MAX_FILE_BYTES) {
			j->out = error_json("the SQL is %zu bytes, over the limit of %u",
					    json_string_length(sql), D1_MAX_FILE_BYTES);
			goto out;
		}
		if (strlen(json_string_value(sql)) != json_string_length(sql)) {
			j->out = error_json("the SQL holds a NUL character");
			goto out;
		}
	}
	d = d1_open(j->path, &opt, err, sizeof err);
	if (!d) {
		log_error("%s: D1 from the control API: %s", j->worker, err);
		j->status = 500;
		j->out = error_json("%s", err);
		goto out;
	}
	if (j->sp.op == STATE_D1_EXECUTE) {
		json_t *r = d1_execute(d, json_string_value(json_object_get(body, "sql")), err,
				       sizeof err);
		if (r) {
			j->status = 200;
			j->out = json_pack("{s:o}", "results", r);
		} else {
			j->out = error_json("%s", err);
		}
		goto out;
	}
	json_t *given = body ? json_object_get(body, "migrations") : NULL;
	json_t *none = json_array();
	int apply = body && json_is_true(json_object_get(body, "apply"));
	if (!apply) {
		json_t *st = d1_migrations_list_given(d, given ? given : none, j->table, err,
						      sizeof err);
		if (st) {
			j->status = 200;
			j->out = st;
		} else {
			j->out = error_json("%s", err);
		}
	} else {
		json_t *applied = NULL;
		int r = d1_migrations_apply_given(d, given ? given : none, j->table, &applied, err,
						  sizeof err);
		j->status = 200;
		j->out = json_pack("{s:o}", "applied", applied);
		if (r < 0)
			json_object_set_new(j->out, "error", json_string(err));
	}
	json_decref(none);
out:
	d1_close(d);
	json_decref(body);
}

static void run(struct exec_job *job)
{
	struct state_job *j = (struct state_job *)job;
	if (mkdir_p(j->dir, 0700) < 0) {
		log_error("%s: cannot create %s: %s", j->worker, j->dir, strerror(errno));
		j->status = 500;
		j->out = error_json("cannot create the worker's state directory (see the host's "
				    "log)");
		return;
	}
	if (j->sp.op == STATE_KV_VALUE || j->sp.op == STATE_KV_KEYS)
		run_kv(j);
	else
		run_d1(j);
}

/* --- the loop's side --- */

static void done(struct exec_job *job, int stopped)
{
	struct state_job *j = (struct state_job *)job;
	if (stopped) {
		ctl_state_json(j->cs, 503, error_json("the host is shutting down"));
	} else if (j->found) {
		char *meta = NULL;
		if (j->entry.metadata) {
			/* A header's value: JSON with every non-ASCII and
			 * control character escaped. */
			json_t *m = metadata_value(j->entry.metadata, j->entry.metadata_len);
			meta = json_dumps(m, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
			json_decref(m);
		}
		uint8_t *v = j->entry.value;
		j->entry.value = NULL;
		ctl_state_value(j->cs, v, j->entry.value_len, meta, j->entry.expiration);
		free(meta);
	} else {
		json_t *out = j->out ? j->out : error_json("no answer");
		j->out = NULL;
		ctl_state_json(j->cs, j->status ? j->status : 500, out);
	}
	job_free(j);
}

/* The configuration entry of store in the worker's deployed versions
 * (returns new), or NULL. */
static json_t *find_entry(struct serve *s, struct sworker *w, int kv, const char *store)
{
	int order[2] = {0, 1};
	if (w->dep.n > 1 && w->dep.percentage[1] > w->dep.percentage[0]) {
		order[0] = 1;
		order[1] = 0;
	}
	for (int k = 0; k < w->dep.n && k < 2; k++) {
		json_t *project = store_version_project(s->st, w->dep.version[order[k]]);
		json_t *e, *found = NULL;
		size_t i;
		json_array_foreach(json_object_get(project, kv ? "kv_namespaces" : "d1_databases"),
				   i, e) {
			const char *b = json_string_value(json_object_get(e, "binding"));
			const char *id =
				json_string_value(json_object_get(e, kv ? "id" : "database_name"));
			if ((b && !strcmp(b, store)) || (id && !strcmp(id, store)))
				found = e;
		}
		json_incref(found);
		json_decref(project);
		if (found)
			return found;
	}
	return NULL;
}

static int method_allowed(enum state_op op, const char *m)
{
	switch (op) {
	case STATE_KV_VALUE:
		return !strcmp(m, "GET") || !strcmp(m, "PUT") || !strcmp(m, "DELETE");
	case STATE_KV_KEYS:
		return !strcmp(m, "GET");
	case STATE_D1_EXECUTE:
		return !strcmp(m, "POST");
	case STATE_D1_MIGRATIONS:
		return !strcmp(m, "GET") || !strcmp(m, "POST");
	}
	return 0;
}

/* Checks the KV query parameters into j: 0, or an error's status with *out. */
static unsigned kv_params(struct state_job *j, const struct ctl_state_request *req, json_t **out)
{
	if (j->sp.op == STATE_KV_KEYS) {
		if (req->limit &&
		    state_query_int(req->limit, 1, KV_LIST_LIMIT_MAX, &j->limit) < 0) {
			*out = error_json("limit must be a whole number from 1 to %d",
					  KV_LIST_LIMIT_MAX);
			return 400;
		}
		if (req->prefix && strlen(req->prefix) > KV_KEY_MAX) {
			*out = error_json("prefix is longer than %d bytes", KV_KEY_MAX);
			return 400;
		}
		if (req->cursor && strlen(req->cursor) > KV_CURSOR_MAX) {
			*out = error_json("KV GET failed: 400 Invalid cursor.");
			return 400;
		}
		j->prefix = req->prefix && *req->prefix ? xstrdup(req->prefix) : NULL;
		j->cursor = req->cursor && *req->cursor ? xstrdup(req->cursor) : NULL;
		return 0;
	}
	j->key_len = j->sp.key_len;
	j->key = xmalloc(j->key_len + 1);
	memcpy(j->key, j->sp.key, j->key_len + 1);
	if (strcmp(j->method, "PUT")) {
		if (buf_used(req->body)) {
			*out = error_json("%s takes no body", j->method);
			return 400;
		}
		return 0;
	}
	if (req->expiration) {
		if (state_query_int(req->expiration, INT64_MIN / 1000, INT64_MAX / 1000,
				    &j->put.expiration) < 0) {
			*out = error_json("expiration must be whole seconds since the epoch");
			return 400;
		}
		j->put.has_expiration = 1;
	}
	if (req->expiration_ttl) {
		if (state_query_int(req->expiration_ttl, INT64_MIN / 1000, INT64_MAX / 1000,
				    &j->put.expiration_ttl) < 0) {
			*out = error_json("expiration_ttl must be a whole number of seconds");
			return 400;
		}
		j->put.has_expiration_ttl = 1;
	}
	if (req->metadata) {
		j->metadata = xstrdup(req->metadata);
		j->put.metadata = j->metadata;
		j->put.metadata_len = strlen(j->metadata);
	}
	/* The body (the value) moves into the job. */
	j->body = *req->body;
	memset(req->body, 0, sizeof *req->body);
	return 0;
}

void state_api_request(void *arg, const struct ctl_state_request *req, struct ctl_state *cs)
{
	struct serve *s = arg;
	struct state_job *j = xcalloc(1, sizeof *j);
	j->cs = cs;
	snprintf(j->method, sizeof j->method, "%s", req->method);
	json_t *out = NULL, *entry = NULL;
	unsigned st = 0;
	if (state_path_parse(req->path, &j->sp) < 0) {
		st = 404;
		out = error_json("no such endpoint (kv/BINDING/values/KEY, kv/BINDING/keys, "
				 "d1/DATABASE/execute, d1/DATABASE/migrations: see "
				 "docs/control-api.md)");
		goto refuse;
	}
	if (!method_allowed(j->sp.op, req->method)) {
		st = 405;
		out = error_json("%s is not used on this endpoint", req->method);
		goto refuse;
	}
	int kv = j->sp.op == STATE_KV_VALUE || j->sp.op == STATE_KV_KEYS;
	if (kv && (st = kv_params(j, req, &out)))
		goto refuse;
	struct sworker *w = serve_worker_find(s, req->worker);
	if (!w || !w->has_dep) {
		st = 404;
		out = error_json("no worker named '%s' is deployed here", req->worker);
		goto refuse;
	}
	entry = find_entry(s, w, kv, j->sp.store);
	if (!entry) {
		st = 404;
		out = kv ? error_json("%s has no KV namespace bound as (or with the id) '%s' "
				      "(kv_namespaces of its deployed configuration)",
				      w->name, j->sp.store)
			 : error_json("%s has no D1 database '%s' (d1_databases of its deployed "
				      "configuration: database_name or binding)",
				      w->name, j->sp.store);
		goto refuse;
	}
	char *state_dir = xasprintf("%s/state/%s", store_dir(s->st), w->name);
	j->worker = xstrdup(w->name);
	j->dir = xasprintf("%s/%s", state_dir, kv ? "kv" : "d1");
	j->path = kv ? kv_binding_path(state_dir, entry) : d1_binding_path(state_dir, entry);
	free(state_dir);
	if (!kv) {
		const char *t = json_string_value(json_object_get(entry, "migrations_table"));
		j->table = xstrdup(t ? t : D1_MIGRATIONS_TABLE);
		j->body = *req->body;
		memset(req->body, 0, sizeof *req->body);
	}
	json_decref(entry);
	j->job.run = run;
	j->job.done = done;
	executor_submit(&s->h, &j->job);
	return;
refuse:
	json_decref(entry);
	ctl_state_json(cs, st, out);
	job_free(j);
}
