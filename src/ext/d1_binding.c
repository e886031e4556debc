/*
 * The D1 binding (env.DB): D1 databases served by the host from the D1
 * engine (src/state/d1.h), one SQLite file per database under the worker's
 * state directory: STATE/d1/NAME.sqlite (NAME: database_name). thaw's
 * `d1 execute` and `d1 migrations` use the same files.
 *
 * A call (binding.h) is parsed on the loop, copied into a job and run on the
 * state executor, which answers with binding_call_done. Values travel as
 * JSON with bytes as {"$b": BASE64} (d1.h):
 *   query   args sql, mode (all|run|first|raw|raw_names), column; body: the
 *           parameters, a JSON array -> body: the result JSON
 *   batch   body: [{"sql", "params"}...] -> body: [result...]
 *   exec    body: the SQL text -> body: {"count", "duration"}
 *   dump    -> body: the database file's bytes
 * D1's errors ("D1_ERROR: ...", "D1_TYPE_ERROR: ...") reach the worker as
 * they are; a failure to open the store is logged with its path.
 *
 * Ownership: struct d1_ref is the binding's ctx; its references are the
 * app's and each job's (loop thread only); its d1_db is used only on the
 * executor and closed with the last reference.
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
#include "state/d1.h"

#define D1_BODY_MAX (64ull << 20) /* parameters, a batch or an exec text */

struct d1_ref {
	unsigned refs;
	char *path;
	struct d1_db *db; /* executor thread only */
};

enum d1_op { D1_OP_QUERY, D1_OP_BATCH, D1_OP_EXEC, D1_OP_DUMP };

struct d1_job {
	struct exec_job job;
	struct d1_ref *ref;
	struct host *h;
	unsigned instance;
	uint32_t stream;
	enum d1_op op;
	enum d1_mode mode;
	char *sql;
	char *column;
	json_t *input;  /* params or statements, parsed on the executor from: */
	char *raw;      /* the call's body (JSON text) */
	size_t raw_len;
	/* results */
	json_t *result;
	unsigned char *dump;
	size_t dump_len;
	int failed; /* the engine refused: err holds D1's message */
	int store_failed;
	char err[1024];
};

static void ref_unref(struct d1_ref *r)
{
	if (--r->refs)
		return;
	d1_close(r->db);
	free(r->path);
	free(r);
}

static void release(void *ctx)
{
	ref_unref(ctx);
}

static void run(struct exec_job *job)
{
	struct d1_job *j = (struct d1_job *)job;
	struct d1_ref *r = j->ref;
	if (!r->db) {
		r->db = d1_open(r->path, NULL, j->err, sizeof j->err);
		if (!r->db) {
			j->store_failed = 1;
			return;
		}
	}
	long failed = -1;
	if (j->op == D1_OP_QUERY || j->op == D1_OP_BATCH) {
		/* Parsed here, not on the host's loop: a batch may be 64 MiB. */
		json_error_t je;
		j->input = j->raw_len ? json_loadb(j->raw, j->raw_len, 0, &je)
				      : (j->op == D1_OP_QUERY ? json_array() : NULL);
		if (!json_is_array(j->input)) {
			snprintf(j->err, sizeof j->err, "D1_ERROR: a malformed %s call",
				 j->op == D1_OP_QUERY ? "query" : "batch");
			j->failed = 1;
			return;
		}
	}
	switch (j->op) {
	case D1_OP_QUERY:
		j->result = d1_query(r->db, j->sql, j->input, j->mode, j->column, j->err,
				     sizeof j->err);
		break;
	case D1_OP_BATCH:
		j->result = d1_batch(r->db, j->input, &failed, j->err, sizeof j->err);
		break;
	case D1_OP_EXEC:
		j->result = d1_exec(r->db, j->sql, j->err, sizeof j->err);
		break;
	case D1_OP_DUMP:
		if (d1_dump(r->db, &j->dump, &j->dump_len, j->err, sizeof j->err) == 0)
			return;
		break;
	}
	if (!j->result)
		j->failed = 1;
}

static void done(struct exec_job *job, int stopped)
{
	struct d1_job *j = (struct d1_job *)job;
	if (stopped) {
		binding_call_done(j->h, j->instance, j->stream, NULL, "the host is stopping");
	} else if (j->store_failed) {
		log_error("D1: %s", j->err);
		binding_call_done(j->h, j->instance, j->stream, NULL,
				  "D1_ERROR: the database could not be opened (see the host's log)");
	} else if (j->failed) {
		binding_call_done(j->h, j->instance, j->stream, NULL, j->err);
	} else {
		struct call_result res;
		call_result_init(&res);
		res.status = 200;
		if (j->op == D1_OP_DUMP) {
			buf_append(&res.body, j->dump, j->dump_len);
		} else {
			char *text = json_dumps(j->result, JSON_COMPACT | JSON_ENCODE_ANY);
			if (text)
				buf_append(&res.body, text, strlen(text));
			free(text);
		}
		binding_call_done(j->h, j->instance, j->stream, &res, NULL);
		call_result_dispose(&res);
	}
	json_decref(j->result);
	json_decref(j->input);
	free(j->raw);
	free(j->dump);
	free(j->sql);
	free(j->column);
	ref_unref(j->ref);
	free(j);
}

static char *arg_string(const struct call_args *args, const char *name)
{
	const uint8_t *v;
	size_t n;
	if (!call_arg(args, name, &v, &n) || memchr(v, 0, n))
		return NULL;
	char *s = xmalloc(n + 1);
	memcpy(s, v, n);
	s[n] = 0;
	return s;
}

static int call(void *ctx, const struct binding_call *c, struct call_result *res, char *err,
		size_t errlen)
{
	(void)res;
	struct d1_job *j = xcalloc(1, sizeof *j);
	j->job.run = run;
	j->job.done = done;
	j->h = c->h;
	j->instance = c->instance_id;
	j->stream = c->stream;
	if (!strcmp(c->method, "query")) {
		j->op = D1_OP_QUERY;
		j->sql = arg_string(&c->args, "sql");
		char *mode = arg_string(&c->args, "mode");
		static const char *const modes[] = {"all", "run", "first", "raw", "raw_names"};
		int m = -1;
		for (int i = 0; mode && i < 5; i++)
			if (!strcmp(mode, modes[i]))
				m = i;
		free(mode);
		j->mode = (enum d1_mode)m;
		j->column = arg_string(&c->args, "column");
		if (!j->sql || m < 0) {
			snprintf(err, errlen, "D1_ERROR: a malformed query call");
			goto refuse;
		}
	} else if (!strcmp(c->method, "batch")) {
		j->op = D1_OP_BATCH;
	} else if (!strcmp(c->method, "exec")) {
		j->op = D1_OP_EXEC;
		if (!c->body_len || memchr(c->body, 0, c->body_len)) {
			snprintf(err, errlen, "D1_EXEC_ERROR: Error in line 1: : No SQL statements "
					      "detected.");
			goto refuse;
		}
		j->sql = xmalloc(c->body_len + 1);
		memcpy(j->sql, c->body, c->body_len);
		j->sql[c->body_len] = 0;
	} else if (!strcmp(c->method, "dump")) {
		j->op = D1_OP_DUMP;
	} else {
		snprintf(err, errlen, "TypeError: D1 databases have no method '%.64s'", c->method);
		goto refuse;
	}
	if ((j->op == D1_OP_QUERY || j->op == D1_OP_BATCH) && c->body_len) {
		j->raw = xmalloc(c->body_len);
		memcpy(j->raw, c->body, c->body_len);
		j->raw_len = c->body_len;
	}
	j->ref = ctx;
	j->ref->refs++;
	executor_submit(c->h, &j->job);
	return 1;
refuse:
	json_decref(j->input);
	free(j->sql);
	free(j->column);
	free(j);
	return -1;
}

static const struct binding_kind d1_kind = {
	.type = "d1",
	.max_body = D1_BODY_MAX,
	.call = call,
	.release = release,
};

char *d1_binding_path(const char *state_dir, const json_t *entry)
{
	const char *name = json_string_value(json_object_get(entry, "database_name"));
	char safe[128];
	size_t n = 0;
	for (const char *p = name ? name : "db"; *p && n < sizeof safe - 1; p++)
		safe[n++] = ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')
				    ? *p
				    : '_';
	safe[n] = 0;
	return xasprintf("%s/d1/%s.sqlite", state_dir, safe);
}

static void *make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	if (!a->state_dir) {
		snprintf(err, errlen, "no state directory for this worker");
		return NULL;
	}
	char *dir = xasprintf("%s/d1", a->state_dir);
	int rc = mkdir_p(dir, 0700);
	free(dir);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create %s/d1: %s", a->state_dir, strerror(errno));
		return NULL;
	}
	struct d1_ref *r = xcalloc(1, sizeof *r);
	r->refs = 1;
	r->path = d1_binding_path(a->state_dir, entry);
	return r;
}

void d1_binding_register(void)
{
	binding_kind_register("d1_databases", "binding", &d1_kind, make);
}
