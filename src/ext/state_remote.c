/*
 * The remote backends of `thaw kv key` and `thaw d1` (state_remote.h): each
 * operation of kv_cli.c / d1_cli.c becomes one request to the host's state
 * endpoints, and the answer is turned back into what the engine would have
 * returned, so the output is the local commands' own.
 *
 * Everything a host sends is hostile: bodies are capped, JSON is checked
 * field by field, and an error's text is escaped (thaw_remote_put_safe)
 * before it reaches err, which the commands print.
 */
#include "ext/state_remote.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "ext/remote.h"
#include "state/d1.h"
#include "state/d1_cli.h"
#include "state/kv.h"
#include "state/kv_cli.h"

#define D1_ANSWER_MAX (64u << 20)

struct remote_store {
	struct thaw_remote_conn *conn;
	char *base; /* /v1/workers/NAME/kv/STORE or .../d1/DB */
};

/* The host's reason for a non-2xx answer, made safe, into err. */
static void answer_error(const struct thaw_remote_answer *a, char *err, size_t errlen)
{
	char why[256];
	json_t *j = thaw_remote_parse_object((const char *)buf_head(&a->body), buf_used(&a->body),
					     why, sizeof why);
	const json_t *e = json_object_get(j, "error");
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	if (!f)
		fatal("out of memory");
	if (json_is_string(e))
		thaw_remote_put_safe(f, json_string_value(e), json_string_length(e), 1024, 1);
	else
		fprintf(f, "the host answered HTTP %ld", a->status);
	if (a->status != 400 && a->status != 404 && json_is_string(e))
		fprintf(f, " (HTTP %ld)", a->status);
	if (a->status == 401)
		fprintf(f, "; check the token (--token-file or THAW_TOKEN) against the host's");
	fclose(f);
	snprintf(err, errlen, "%s", text);
	free(text);
	json_decref(j);
}

static int kv_fail(const struct thaw_remote_answer *a, char *err, size_t errlen)
{
	answer_error(a, err, errlen);
	return a->status == 400 ? KV_ERR_REQUEST : KV_ERR;
}

static char *key_path(struct remote_store *rs, const void *key, size_t key_len)
{
	char *e = thaw_remote_escape(key, key_len);
	char *p = xasprintf("%s/values/%s", rs->base, e);
	free(e);
	return p;
}

static int kv_get_remote(void *arg, const void *key, size_t key_len, int64_t now_ms,
			 struct kv_entry *out, char *err, size_t errlen)
{
	struct remote_store *rs = arg;
	memset(out, 0, sizeof *out);
	struct thaw_remote_answer a;
	char *path = key_path(rs, key, key_len);
	int rc = thaw_remote_request(rs->conn, "GET", path, NULL, 0, NULL, KV_VALUE_MAX + 1u, &a,
				     err, errlen);
	free(path);
	if (rc < 0)
		return KV_ERR;
	if (a.status == 200) {
		size_t n = buf_used(&a.body);
		out->value = xmalloc(n + 1);
		if (n)
			memcpy(out->value, buf_head(&a.body), n);
		out->value_len = n;
		if (a.kv_metadata) {
			out->metadata = xstrdup(a.kv_metadata);
			out->metadata_len = strlen(out->metadata);
		}
		out->expiration = a.kv_expiration;
		rc = KV_FOUND;
	} else if (a.status == 404 && buf_used(&a.body) &&
		   memmem(buf_head(&a.body), buf_used(&a.body), "\"missing\":true", 14)) {
		rc = KV_MISSING;
	} else {
		rc = kv_fail(&a, err, errlen);
	}
	thaw_remote_answer_dispose(&a);
	return rc;
}

/* A 2xx answer, or the error in err: 0 or -1. */
static int simple(struct remote_store *rs, const char *method, const char *path, const void *body,
		  size_t len, char *err, size_t errlen, int *engine_rc)
{
	struct thaw_remote_answer a;
	*engine_rc = KV_ERR;
	if (thaw_remote_request(rs->conn, method, path, body, len, "application/octet-stream",
				REMOTE_MAX_ANSWER, &a, err, errlen) < 0)
		return -1;
	int rc = 0;
	if (a.status < 200 || a.status >= 300) {
		*engine_rc = kv_fail(&a, err, errlen);
		rc = -1;
	}
	thaw_remote_answer_dispose(&a);
	return rc;
}

static int kv_put_remote(void *arg, const void *key, size_t key_len, const void *value,
			 size_t value_len, const struct kv_put_options *o, int64_t now_ms,
			 char *err, size_t errlen)
{
	struct remote_store *rs = arg;
	struct buf p = {0};
	char *kp = key_path(rs, key, key_len);
	buf_append(&p, kp, strlen(kp));
	free(kp);
	char sep = '?', num[64];
	if (o && o->has_expiration_ttl) {
		snprintf(num, sizeof num, "%cexpiration_ttl=%lld", sep,
			 (long long)o->expiration_ttl);
		buf_append(&p, num, strlen(num));
		sep = '&';
	}
	if (o && o->has_expiration) {
		snprintf(num, sizeof num, "%cexpiration=%lld", sep, (long long)o->expiration);
		buf_append(&p, num, strlen(num));
		sep = '&';
	}
	if (o && o->metadata) {
		char *e = thaw_remote_escape(o->metadata, o->metadata_len);
		buf_append(&p, &sep, 1);
		buf_append(&p, "metadata=", 9);
		buf_append(&p, e, strlen(e));
		free(e);
	}
	buf_append(&p, "", 1);
	int engine_rc;
	int rc = simple(rs, "PUT", (const char *)buf_head(&p), value ? value : "", value_len, err,
			errlen, &engine_rc);
	buf_free(&p);
	return rc < 0 ? engine_rc : 0;
}

static int kv_delete_remote(void *arg, const void *key, size_t key_len, char *err, size_t errlen)
{
	struct remote_store *rs = arg;
	char *path = key_path(rs, key, key_len);
	int engine_rc;
	int rc = simple(rs, "DELETE", path, NULL, 0, err, errlen, &engine_rc);
	free(path);
	return rc < 0 ? engine_rc : 0;
}

static int kv_list_remote(void *arg, const struct kv_list_options *o, int64_t now_ms,
			  struct kv_list *out, char *err, size_t errlen)
{
	struct remote_store *rs = arg;
	memset(out, 0, sizeof *out);
	char *prefix = o->prefix ? thaw_remote_escape(o->prefix, o->prefix_len) : xstrdup("");
	char *cursor = o->cursor ? thaw_remote_escape(o->cursor, o->cursor_len) : xstrdup("");
	char *path = xasprintf("%s/keys?limit=%lld&prefix=%s&cursor=%s", rs->base,
			       (long long)(o->limit > 0 ? o->limit : KV_LIST_LIMIT_MAX), prefix,
			       cursor);
	free(prefix);
	free(cursor);
	struct thaw_remote_answer a;
	int rc = thaw_remote_request(rs->conn, "GET", path, NULL, 0, NULL, REMOTE_MAX_ANSWER, &a,
				     err, errlen);
	free(path);
	if (rc < 0)
		return KV_ERR;
	if (a.status != 200) {
		rc = kv_fail(&a, err, errlen);
		thaw_remote_answer_dispose(&a);
		return rc;
	}
	char why[256];
	json_t *j = thaw_remote_parse_object((const char *)buf_head(&a.body), buf_used(&a.body),
					     why, sizeof why);
	thaw_remote_answer_dispose(&a);
	json_t *keys = json_object_get(j, "keys");
	json_t *cur = json_object_get(j, "cursor");
	if (!json_is_array(keys) || json_array_size(keys) > KV_LIST_LIMIT_MAX ||
	    (cur && !json_is_string(cur))) {
		snprintf(err, errlen, "the host's list of keys is not one: %s",
			 j ? "unexpected fields" : why);
		json_decref(j);
		return KV_ERR;
	}
	out->keys = xcalloc(json_array_size(keys) + 1, sizeof *out->keys);
	size_t i;
	json_t *k;
	json_array_foreach(keys, i, k) {
		json_t *name = json_object_get(k, "name"), *exp = json_object_get(k, "expiration");
		json_t *meta = json_object_get(k, "metadata");
		if (!json_is_string(name)) {
			snprintf(err, errlen, "the host's list of keys has a key without a name");
			kv_list_dispose(out);
			json_decref(j);
			return KV_ERR;
		}
		struct kv_list_key *lk = &out->keys[out->count++];
		lk->name_len = json_string_length(name);
		lk->name = xmalloc(lk->name_len + 1);
		memcpy(lk->name, json_string_value(name), lk->name_len + 1);
		lk->expiration = json_is_integer(exp) ? json_integer_value(exp) : 0;
		if (meta) {
			lk->metadata = json_dumps(meta, JSON_COMPACT | JSON_ENCODE_ANY);
			lk->metadata_len = lk->metadata ? strlen(lk->metadata) : 0;
		}
	}
	out->list_complete = json_is_true(json_object_get(j, "list_complete")) || !cur;
	out->cursor = !out->list_complete ? xstrdup(json_string_value(cur)) : NULL;
	json_decref(j);
	return 0;
}

static int open_store(struct remote_store *rs, const struct state_remote_opts *o, const char *cmd,
		      const char *kind, const char *store)
{
	rs->conn = thaw_remote_connect(cmd, o->host, o->token_file, o->verbose);
	if (!rs->conn)
		return -1;
	char *e = thaw_remote_escape(store, strlen(store));
	char *rest = xasprintf("/%s/%s", kind, e);
	rs->base = thaw_remote_worker_path(o->worker, rest);
	free(rest);
	free(e);
	return 0;
}

static void close_store(struct remote_store *rs)
{
	thaw_remote_disconnect(rs->conn);
	free(rs->base);
}

int state_remote_kv(const struct state_remote_opts *o, const char *store, int argc, char **argv)
{
	struct remote_store rs = {0};
	if (open_store(&rs, o, "thaw kv", "kv", store) < 0)
		return 1;
	const struct kv_cli_backend b = {
		.arg = &rs,
		.get = kv_get_remote,
		.put = kv_put_remote,
		.del = kv_delete_remote,
		.list = kv_list_remote,
	};
	int rc = kv_cli_with(argc, argv, &b, wall_ms(), stdout, stderr);
	close_store(&rs);
	return rc;
}

/* --- D1 --- */

/* POST body (taken) to base + rest; the 2xx answer's object (new), or NULL
 * with err. */
static json_t *d1_post(struct remote_store *rs, const char *rest, json_t *body, char *err,
		       size_t errlen)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text) {
		snprintf(err, errlen, "the SQL is not UTF-8 text");
		return NULL;
	}
	char *path = xasprintf("%s%s", rs->base, rest);
	struct thaw_remote_answer a;
	json_t *j = NULL;
	if (thaw_remote_request(rs->conn, "POST", path, text, strlen(text), "application/json",
				D1_ANSWER_MAX, &a, err, errlen) == 0) {
		if (a.status < 200 || a.status >= 300) {
			answer_error(&a, err, errlen);
		} else {
			char why[256];
			j = thaw_remote_parse_object((const char *)buf_head(&a.body),
						     buf_used(&a.body), why, sizeof why);
			if (!j)
				snprintf(err, errlen, "the host's answer: %s", why);
		}
		thaw_remote_answer_dispose(&a);
	}
	free(path);
	free(text);
	return j;
}

static json_t *d1_execute_remote(void *arg, const char *sql, const char *file, char *err,
				 size_t errlen)
{
	char *text = NULL;
	size_t len = 0;
	if (!sql) {
		text = read_file(file, D1_MAX_FILE_BYTES, &len);
		if (!text) {
			if (errno == EFBIG)
				snprintf(err, errlen, "%s: larger than %u bytes", file,
					 D1_MAX_FILE_BYTES);
			else
				snprintf(err, errlen, "%s: %s", file, strerror(errno));
			return NULL;
		}
		if (strlen(text) != len) {
			free(text);
			snprintf(err, errlen, "%s: the file holds a NUL byte; it is not SQL text",
				 file);
			return NULL;
		}
		sql = text;
	}
	json_t *s = json_string(sql);
	free(text);
	if (!s) {
		snprintf(err, errlen, "the SQL is not UTF-8 text");
		return NULL;
	}
	json_t *j = d1_post(arg, "/execute", json_pack("{s:o}", "sql", s), err, errlen);
	json_t *results = json_object_get(j, "results");
	if (j && !json_is_array(results)) {
		snprintf(err, errlen, "the host's answer has no results");
		results = NULL;
	}
	json_incref(results);
	json_decref(j);
	return results;
}

/* The local migrations (with their texts when with_sql). */
static json_t *local_migrations(const char *dir, int with_sql, char *err, size_t errlen)
{
	json_t *list = d1_migration_files_read(dir, err, errlen);
	size_t i;
	json_t *m;
	json_array_foreach(list, i, m) {
		if (!with_sql)
			json_object_del(m, "sql");
	}
	return list;
}

static int names_array(json_t *a)
{
	size_t i;
	json_t *n;
	if (!json_is_array(a))
		return 0;
	json_array_foreach(a, i, n) {
		if (!json_is_string(n))
			return 0;
	}
	return 1;
}

static json_t *d1_list_remote(void *arg, const char *dir, const char *table, char *err,
			      size_t errlen)
{
	json_t *mine = local_migrations(dir, 0, err, errlen);
	if (!mine)
		return NULL;
	json_t *j = d1_post(arg, "/migrations",
			    json_pack("{s:o, s:b}", "migrations", mine, "apply", 0), err, errlen);
	if (j && !names_array(json_object_get(j, "pending"))) {
		snprintf(err, errlen, "the host's answer has no list of pending migrations");
		json_decref(j);
		return NULL;
	}
	return j;
}

static int d1_apply_remote(void *arg, const char *dir, const char *table, json_t **applied,
			   char *err, size_t errlen)
{
	*applied = json_array();
	json_t *mine = local_migrations(dir, 1, err, errlen);
	if (!mine)
		return -1;
	json_t *j = d1_post(arg, "/migrations",
			    json_pack("{s:o, s:b}", "migrations", mine, "apply", 1), err, errlen);
	if (!j)
		return -1;
	json_t *done = json_object_get(j, "applied"), *e = json_object_get(j, "error");
	int rc = 0;
	if (!names_array(done)) {
		snprintf(err, errlen, "the host's answer has no list of applied migrations");
		rc = -1;
	} else {
		json_array_extend(*applied, done);
		if (e) {
			char *text = NULL;
			size_t n = 0;
			FILE *f = open_memstream(&text, &n);
			if (!f)
				fatal("out of memory");
			if (json_is_string(e))
				thaw_remote_put_safe(f, json_string_value(e), json_string_length(e),
						     1024, 1);
			else
				fputs("a migration failed", f);
			fclose(f);
			snprintf(err, errlen, "%s", text);
			free(text);
			rc = -1;
		}
	}
	json_decref(j);
	return rc;
}

int state_remote_d1(const struct state_remote_opts *o, const char *db, int argc, char **argv,
		    const char *migrations_dir)
{
	if (argc >= 2 && !strcmp(argv[0], "migrations") && !strcmp(argv[1], "create"))
		return d1_cli(argc, argv, "", migrations_dir, NULL);
	struct remote_store rs = {0};
	if (open_store(&rs, o, "thaw d1", "d1", db) < 0)
		return 1;
	const struct d1_cli_backend b = {
		.arg = &rs,
		.where = "remote",
		.name = db,
		.execute = d1_execute_remote,
		.migrations_list = d1_list_remote,
		.migrations_apply = d1_apply_remote,
	};
	int rc = d1_cli_with(argc, argv, &b, migrations_dir, NULL);
	close_store(&rs);
	return rc;
}
