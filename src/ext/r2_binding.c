/*
 * The R2 binding (env.MY_BUCKET): Cloudflare R2 buckets served by the host
 * from the R2 engine (src/state/r2.h): STATE/r2/BUCKET.sqlite and the blobs
 * under STATE/r2/BUCKET/ (BUCKET: the bucket_name; STATE as for KV:
 * .thaw/state or --persist-to in thaw dev, DATA/state/WORKER in thaw serve,
 * shared by every version of the worker).
 *
 * A call (binding.h) is copied into a job and parsed and run on the state
 * executor, which answers with binding_call_done. Request bodies (put,
 * upload_part) are spooled to a file in STATE/r2/BUCKET/tmp by the host
 * (kind.spool_dir), never held in memory; a get's body is sent from the
 * blob's file (call_result.fd, offset, length).
 *   head    key                              -> found, object (JSON)
 *   get     key, only_if?, range?            -> found, object, body 0|1; body
 *   put     key, http_metadata?, custom_metadata?, only_if?, md5? sha1?
 *           sha256? sha384? sha512?; body    -> found (0: only_if failed), object
 *   delete  keys (JSON list)
 *   list    prefix? delimiter? cursor? start_after? limit? include? -> body: JSON
 *           {objects, truncated, cursor?, delimitedPrefixes}
 *   create_multipart_upload  key, http_metadata?, custom_metadata? -> upload_id
 *   upload_part  key, upload_id, part_number; body -> etag
 *   complete_multipart_upload  key, upload_id, parts (JSON) -> object
 *   abort_multipart_upload  key, upload_id
 * An object is JSON {key, version, size, etag, httpEtag, uploaded (ms),
 * httpMetadata, customMetadata, checksums, storageClass, range?}.
 * A refusal is sent as "R2Error: ACTION: MESSAGE (CODE)" (the SDK raises
 * R2Error); a failure of the store is logged with its path and the worker
 * gets Cloudflare's internal error (10001).
 *
 * Ownership: struct r2_bucket is the binding's ctx; its references are the
 * app's and each job's (loop thread only). Its store is used only on the
 * executor and closed with the last reference.
 */
#include "ext/bindings.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/binding.h"
#include "host/executor.h"
#include "host/host.h"
#include "state/r2.h"

struct r2_bucket {
	unsigned refs;
	char *db_path, *dir, *tmp;
	struct r2_store *store; /* executor thread only */
};

enum r2_op {
	OP_HEAD,
	OP_GET,
	OP_PUT,
	OP_DELETE,
	OP_LIST,
	OP_CREATE,
	OP_PART,
	OP_COMPLETE,
	OP_ABORT,
	OP_COUNT
};

static const char *const methods[OP_COUNT] = {
	"head", "get", "put", "delete", "list", "create_multipart_upload", "upload_part",
	"complete_multipart_upload", "abort_multipart_upload",
};
/* As Cloudflare's errors name them. */
static const char *const actions[OP_COUNT] = {
	"head", "get", "put", "delete", "list", "createMultipartUpload", "uploadPart",
	"completeMultipartUpload", "abortMultipartUpload",
};

/* The argument names a job copies (raw bytes, parsed on the executor). */
enum arg {
	A_KEY,
	A_KEYS,
	A_ONLY_IF,
	A_RANGE,
	A_HTTP,
	A_CUSTOM,
	A_MD5,
	A_SHA1,
	A_SHA256,
	A_SHA384,
	A_SHA512,
	A_PREFIX,
	A_DELIMITER,
	A_CURSOR,
	A_START_AFTER,
	A_LIMIT,
	A_INCLUDE,
	A_UPLOAD_ID,
	A_PART_NUMBER,
	A_PARTS,
	A_COUNT
};

static const char *const arg_names[A_COUNT] = {
	"key",    "keys",   "only_if",     "range",  "http_metadata", "custom_metadata",
	"md5",    "sha1",   "sha256",      "sha384", "sha512",        "prefix",
	"delimiter", "cursor", "start_after", "limit", "include",     "upload_id",
	"part_number", "parts",
};

struct r2_job {
	struct exec_job job;
	struct r2_bucket *bucket;
	struct host *h;
	unsigned instance;
	uint32_t stream;
	enum r2_op op;
	char *arg[A_COUNT]; /* NUL-terminated copies, or NULL */
	size_t arg_len[A_COUNT];
	int body_fd; /* a dup of the spooled body, or -1 */
	uint64_t body_len;
	/* results */
	int rc;
	struct r2_err err;
	struct r2_object object;
	int has_object;
	int fd;
	uint64_t offset, length;
	int ranged;
	char upload_id[33], etag[48];
	char *list_json;
};

static void bucket_unref(struct r2_bucket *b)
{
	if (--b->refs)
		return;
	r2_close(b->store);
	free(b->db_path);
	free(b->dir);
	free(b->tmp);
	free(b);
}

static void release(void *ctx)
{
	bucket_unref(ctx);
}

static const char *spool_dir(void *ctx)
{
	return ((struct r2_bucket *)ctx)->tmp;
}

/* --- the executor's side --- */

static json_t *object_json(const struct r2_object *o, int http, int custom)
{
	json_t *j = json_object();
	json_object_set_new(j, "key", json_stringn((const char *)o->key, o->key_len));
	json_object_set_new(j, "version", json_string(o->version));
	json_object_set_new(j, "size", json_integer((json_int_t)o->size));
	json_object_set_new(j, "etag", json_string(o->etag));
	char quoted[64];
	snprintf(quoted, sizeof quoted, "\"%s\"", o->etag);
	json_object_set_new(j, "httpEtag", json_string(quoted));
	json_object_set_new(j, "uploaded", json_integer(o->uploaded_ms));
	if (http)
		json_object_set_new(j, "httpMetadata", json_loads(o->http_metadata, 0, NULL));
	if (custom)
		json_object_set_new(j, "customMetadata", json_loads(o->custom_metadata, 0, NULL));
	json_object_set_new(j, "checksums", json_loads(o->checksums, 0, NULL));
	json_object_set_new(j, "storageClass", json_string("Standard"));
	return j;
}

/* A decimal argument: 0 with *out, -1 malformed. */
static int arg_i64(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end)
		return -1;
	*out = v;
	return 0;
}

static void run_list(struct r2_job *j, struct r2_store *st)
{
	struct r2_list_options o = {0};
	o.prefix = (const uint8_t *)j->arg[A_PREFIX];
	o.prefix_len = j->arg_len[A_PREFIX];
	o.delimiter = (const uint8_t *)j->arg[A_DELIMITER];
	o.delimiter_len = j->arg_len[A_DELIMITER];
	o.start_after = (const uint8_t *)j->arg[A_START_AFTER];
	o.start_after_len = j->arg_len[A_START_AFTER];
	o.cursor = j->arg[A_CURSOR];
	o.cursor_len = j->arg_len[A_CURSOR];
	if (j->arg[A_LIMIT] && arg_i64(j->arg[A_LIMIT], &o.limit) < 0) {
		j->rc = R2_REFUSED;
		j->err.code = R2_E_INVALID_MAX_KEYS;
		snprintf(j->err.text, sizeof j->err.text,
			 "MaxKeys params must be positive integer <= 1000.");
		return;
	}
	if (j->arg[A_LIMIT] && o.limit == 0)
		o.limit = -1; /* 0 given is refused, as on Cloudflare */
	const char *inc = j->arg[A_INCLUDE] ? j->arg[A_INCLUDE] : "";
	int http = strstr(inc, "httpMetadata") != NULL;
	int custom = strstr(inc, "customMetadata") != NULL;
	struct r2_list page;
	j->rc = r2_list(st, &o, &page, &j->err);
	if (j->rc != R2_OK)
		return;
	json_t *objects = json_array(), *prefixes = json_array();
	for (size_t i = 0; i < page.count; i++)
		json_array_append_new(objects, object_json(&page.objects[i], http, custom));
	for (size_t i = 0; i < page.nprefixes; i++)
		json_array_append_new(prefixes, json_string(page.prefixes[i]));
	json_t *out = json_pack("{s:o, s:b, s:o}", "objects", objects, "truncated", page.truncated,
				"delimitedPrefixes", prefixes);
	if (page.cursor)
		json_object_set_new(out, "cursor", json_string(page.cursor));
	j->list_json = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	r2_list_dispose(&page);
}

static void run_delete(struct r2_job *j, struct r2_store *st)
{
	json_t *keys = j->arg[A_KEYS] ? json_loadb(j->arg[A_KEYS], j->arg_len[A_KEYS], 0, NULL) : NULL;
	if (!json_is_array(keys) || json_array_size(keys) > R2_LIST_MAX) {
		json_decref(keys);
		j->rc = R2_REFUSED;
		j->err.code = R2_E_INVALID_ARGUMENT;
		snprintf(j->err.text, sizeof j->err.text,
			 "delete() takes a key or a list of at most 1000 keys.");
		return;
	}
	size_t n = json_array_size(keys);
	const uint8_t **ks = xcalloc(n + 1, sizeof *ks);
	size_t *ls = xcalloc(n + 1, sizeof *ls);
	size_t i;
	json_t *k;
	int ok = 1;
	json_array_foreach(keys, i, k) {
		ok &= json_is_string(k);
		ks[i] = (const uint8_t *)(ok ? json_string_value(k) : "");
		ls[i] = ok ? json_string_length(k) : 0;
	}
	if (ok) {
		j->rc = r2_delete(st, ks, ls, n, &j->err);
	} else {
		j->rc = R2_REFUSED;
		j->err.code = R2_E_INVALID_KEY;
		snprintf(j->err.text, sizeof j->err.text, "The specified object name is not valid.");
	}
	free(ks);
	free(ls);
	json_decref(keys);
}

static void run(struct exec_job *job)
{
	struct r2_job *j = (struct r2_job *)job;
	struct r2_bucket *b = j->bucket;
	if (!b->store) {
		b->store = r2_open(b->db_path, b->dir, &j->err);
		if (!b->store) {
			j->rc = R2_ERR;
			return;
		}
	}
	struct r2_store *st = b->store;
	const uint8_t *key = (const uint8_t *)(j->arg[A_KEY] ? j->arg[A_KEY] : "");
	size_t klen = j->arg_len[A_KEY];
	struct r2_conditional cond = {0};
	struct r2_range range = {0};
	char *http = NULL, *custom = NULL;
	int rc = R2_OK;
	if (j->arg[A_ONLY_IF])
		rc = r2_conditional_parse(j->arg[A_ONLY_IF], j->arg_len[A_ONLY_IF], &cond, &j->err);
	if (rc == R2_OK && j->arg[A_RANGE])
		rc = r2_range_parse(j->arg[A_RANGE], j->arg_len[A_RANGE], &range, &j->err);
	if (rc == R2_OK && (j->op == OP_PUT || j->op == OP_CREATE))
		rc = r2_custom_metadata_parse(j->arg[A_CUSTOM], j->arg_len[A_CUSTOM], &custom, &j->err);
	if (rc == R2_OK && (j->op == OP_PUT || j->op == OP_CREATE))
		rc = r2_http_metadata_parse(j->arg[A_HTTP], j->arg_len[A_HTTP], &http, &j->err);
	if (rc == R2_OK && (j->op == OP_PUT || j->op == OP_CREATE))
		rc = r2_metadata_check(http, custom, &j->err); /* one cap on the two together */
	if (rc != R2_OK) {
		j->rc = rc;
		goto out;
	}
	switch (j->op) {
	case OP_HEAD:
		j->rc = r2_head(st, key, klen, &j->object, &j->err);
		j->has_object = j->rc == R2_OK;
		break;
	case OP_GET:
		j->rc = r2_get(st, key, klen, &cond, &range, &j->object, &j->fd, &j->offset,
			       &j->length, &j->err);
		j->has_object = j->rc == R2_OK || j->rc == R2_PRECONDITION;
		j->ranged = range.present;
		break;
	case OP_PUT: {
		struct r2_put_options o = {
			.http_metadata = http,
			.custom_metadata = custom,
			.only_if = &cond,
			.md5 = j->arg[A_MD5],
			.sha1 = j->arg[A_SHA1],
			.sha256 = j->arg[A_SHA256],
			.sha384 = j->arg[A_SHA384],
			.sha512 = j->arg[A_SHA512],
		};
		j->rc = r2_put(st, key, klen, j->body_fd, j->body_len, &o, wall_ms(), &j->object,
			       &j->err);
		j->has_object = j->rc == R2_OK;
		break;
	}
	case OP_DELETE:
		run_delete(j, st);
		break;
	case OP_LIST:
		run_list(j, st);
		break;
	case OP_CREATE:
		j->rc = r2_upload_create(st, key, klen, http, custom, wall_ms(), j->upload_id,
					 &j->err);
		break;
	case OP_PART: {
		int64_t n = 0;
		if (!j->arg[A_PART_NUMBER] || arg_i64(j->arg[A_PART_NUMBER], &n) < 0)
			n = 0;
		j->rc = r2_upload_part(st, key, klen, j->arg[A_UPLOAD_ID] ? j->arg[A_UPLOAD_ID] : "",
				       n, j->body_fd, j->body_len, j->etag, &j->err);
		break;
	}
	case OP_COMPLETE: {
		struct r2_part *parts = NULL;
		size_t n = 0;
		j->rc = r2_parts_parse(j->arg[A_PARTS] ? j->arg[A_PARTS] : "", j->arg_len[A_PARTS],
				       &parts, &n, &j->err);
		if (j->rc == R2_OK)
			j->rc = r2_upload_complete(st, key, klen,
						   j->arg[A_UPLOAD_ID] ? j->arg[A_UPLOAD_ID] : "",
						   parts, n, wall_ms(), &j->object, &j->err);
		j->has_object = j->rc == R2_OK;
		free(parts);
		break;
	}
	case OP_ABORT:
		j->rc = r2_upload_abort(st, key, klen, j->arg[A_UPLOAD_ID] ? j->arg[A_UPLOAD_ID] : "",
					&j->err);
		break;
	case OP_COUNT:
		break;
	}
out:
	free(http);
	free(custom);
}

/* --- the loop's side --- */

static void job_free(struct r2_job *j)
{
	r2_object_dispose(&j->object);
	if (j->fd >= 0)
		close(j->fd);
	if (j->body_fd >= 0)
		close(j->body_fd);
	for (int i = 0; i < A_COUNT; i++)
		free(j->arg[i]);
	free(j->list_json);
	bucket_unref(j->bucket);
	free(j);
}

static void done(struct exec_job *job, int stopped)
{
	struct r2_job *j = (struct r2_job *)job;
	const char *action = actions[j->op];
	char msg[sizeof j->err.text + 128];
	if (stopped) {
		binding_call_done(j->h, j->instance, j->stream, NULL, "the host is stopping");
		job_free(j);
		return;
	}
	if (j->rc == R2_ERR) {
		log_error("R2 %s: %s", action, j->err.text);
		snprintf(msg, sizeof msg,
			 "R2Error: %s: We encountered an internal error. Please try again. (%d)",
			 action, R2_E_INTERNAL);
		binding_call_done(j->h, j->instance, j->stream, NULL, msg);
		job_free(j);
		return;
	}
	if (j->rc == R2_REFUSED) {
		snprintf(msg, sizeof msg, "R2Error: %s: %s (%d)", action, j->err.text, j->err.code);
		binding_call_done(j->h, j->instance, j->stream, NULL, msg);
		job_free(j);
		return;
	}
	struct call_result res;
	call_result_init(&res);
	res.status = 200;
	call_result_pairs(&res, "found", j->has_object ? "1" : "0");
	if (j->has_object) {
		json_t *o = object_json(&j->object, 1, 1);
		if (j->op == OP_GET && j->rc == R2_OK && j->ranged)
			json_object_set_new(o, "range", json_pack("{s:I, s:I}", "offset",
								  (json_int_t)j->offset, "length",
								  (json_int_t)j->length));
		char *text = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		call_result_pairs(&res, "object", text ? text : "{}");
		free(text);
	}
	if (j->op == OP_GET) {
		int body = j->rc == R2_OK;
		call_result_pairs(&res, "body", body ? "1" : "0");
		if (body) {
			res.fd = j->fd;
			j->fd = -1;
			res.offset = j->offset;
			res.length = j->length;
		}
	} else if (j->op == OP_LIST && j->list_json) {
		buf_append(&res.body, j->list_json, strlen(j->list_json));
	} else if (j->op == OP_CREATE) {
		call_result_pairs(&res, "upload_id", j->upload_id);
	} else if (j->op == OP_PART) {
		call_result_pairs(&res, "etag", j->etag);
	}
	binding_call_done(j->h, j->instance, j->stream, &res, NULL);
	call_result_dispose(&res);
	job_free(j);
}

static int call(void *ctx, const struct binding_call *c, struct call_result *res, char *err,
		size_t errlen)
{
	struct r2_bucket *b = ctx;
	int op = 0;
	while (op < OP_COUNT && strcmp(c->method, methods[op]))
		op++;
	if (op == OP_COUNT) {
		snprintf(err, errlen, "TypeError: R2 buckets have no method '%.64s'", c->method);
		return -1;
	}
	struct r2_job *j = xcalloc(1, sizeof *j);
	j->job.run = run;
	j->job.done = done;
	j->h = c->h;
	j->instance = c->instance_id;
	j->stream = c->stream;
	j->op = (enum r2_op)op;
	j->fd = -1;
	j->body_fd = -1;
	for (int i = 0; i < A_COUNT; i++) {
		const uint8_t *v;
		size_t n;
		if (call_arg(&c->args, arg_names[i], &v, &n)) {
			j->arg[i] = xmalloc(n + 1);
			memcpy(j->arg[i], v, n);
			j->arg[i][n] = 0;
			j->arg_len[i] = n;
		}
	}
	if (c->body_fd >= 0) {
		j->body_fd = dup(c->body_fd);
		if (j->body_fd < 0) {
			snprintf(err, errlen, "R2Error: %s: We encountered an internal error. Please "
					      "try again. (%d)",
				 actions[op], R2_E_INTERNAL);
			log_error("R2 %s: dup: %s", actions[op], strerror(errno));
			for (int i = 0; i < A_COUNT; i++)
				free(j->arg[i]);
			free(j);
			return -1;
		}
		j->body_len = c->body_fd_len;
	}
	(void)res;
	j->bucket = b;
	b->refs++;
	executor_submit(c->h, &j->job);
	return 1;
}

/* The host's refusals of a body, as Cloudflare words its errors, naming the
 * method's action (upload_part's is uploadPart). */
static void refusal(const char *method, enum binding_refusal why, char *out, size_t outlen)
{
	const char *action = method;
	for (int op = 0; op < OP_COUNT; op++)
		if (!strcmp(method, methods[op]))
			action = actions[op];
	switch (why) {
	case BINDING_TOO_LARGE:
		snprintf(out, outlen,
			 "R2Error: %s: Your proposed upload exceeds the maximum allowed object size. "
			 "(%d)",
			 action, R2_E_TOO_LARGE);
		break;
	case BINDING_DISK_FULL:
		snprintf(out, outlen,
			 "R2Error: %s: We encountered an internal error: the host's disk is nearly "
			 "full. Please try again later. (%d)",
			 action, R2_E_INTERNAL);
		break;
	case BINDING_TOO_MANY:
		snprintf(out, outlen,
			 "R2Error: %s: Too many uploads in flight from this worker instance (at most "
			 "%u); await one before starting another. (%d)",
			 action, BINDING_SPOOLS_MAX, R2_E_INTERNAL);
		break;
	}
}

static const struct binding_kind r2_kind = {
	.type = "r2",
	.max_body = R2_VALUE_MAX,
	.spool_dir = spool_dir,
	.refusal = refusal,
	.call = call,
	.release = release,
};

static void *make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	if (!a->state_dir) {
		snprintf(err, errlen, "no state directory for this worker");
		return NULL;
	}
	const char *name = json_string_value(json_object_get(entry, "bucket_name"));
	char safe[128];
	size_t n = 0;
	for (const char *p = name && *name ? name : "bucket"; *p && n < sizeof safe - 1; p++)
		safe[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')
				    ? *p
				    : '_';
	safe[n] = 0;
	struct r2_bucket *b = xcalloc(1, sizeof *b);
	b->refs = 1;
	b->db_path = xasprintf("%s/r2/%s.sqlite", a->state_dir, safe);
	b->dir = xasprintf("%s/r2/%s", a->state_dir, safe);
	b->tmp = xasprintf("%s/tmp", b->dir);
	/* The spool directory must exist before the first body arrives. */
	if (mkdir_p(b->tmp, 0700) < 0) {
		snprintf(err, errlen, "cannot create %s: %s", b->tmp, strerror(errno));
		bucket_unref(b);
		return NULL;
	}
	return b;
}

void r2_binding_register(void)
{
	binding_kind_register("r2_buckets", "binding", &r2_kind, make);
}
