/*
 * thaw serve's worker API (docs/control-api.md): workers, versions and
 * deployments as JSON, rollout, rollback, deleting a version. Every answer
 * is an HTTP status and a JSON object; every change goes to the store first
 * (serve_deploy_now, gc_version_delete).
 */
#include "ext/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"


static json_t *error_json(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_json(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return json_pack("{s:s}", "error", msg);
}

/* Make d current for w, in the store and then here. */
static unsigned deploy_now(struct serve *s, struct sworker *w, struct deployment *d, json_t **out)
{
	char err[512];
	if (serve_deploy_now(s, w, d, err, sizeof err) < 0) {
		*out = error_json("%s", err);
		return 409;
	}
	log_info("%s: deployment %lld: %s %.1f%%%s%s%s", w->name, (long long)d->id, d->version[0],
		 d->percentage[0], d->n > 1 ? ", " : "", d->n > 1 ? d->version[1] : "",
		 d->n > 1 ? " (rest)" : "");
	*out = json_pack("{s:o}", "deployment", deployment_json(d));
	return 200;
}

static unsigned find_ready(struct serve *s, const char *worker, json_t *ref, struct version *v,
			   json_t **out)
{
	char buf[64];
	const char *r = NULL;
	if (json_is_string(ref))
		r = json_string_value(ref);
	else if (json_is_integer(ref)) {
		snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(ref));
		r = buf;
	}
	if (!r || !*r) {
		*out = error_json("\"version\" must name a version (an id, a prefix of one, or a number)");
		return 400;
	}
	int rc = store_version_find(s->st, worker, r, v);
	if (rc == STORE_FIND_AMBIGUOUS) {
		*out = error_json("'%s' names more than one version of %s", r, worker);
		return 400;
	}
	if (rc < 0) {
		*out = error_json("%s has no version '%s'", worker, r);
		return 404;
	}
	if (strcmp(v->state, "ready") != 0) {
		*out = error_json("version %d of %s is %s%s%s: it cannot take traffic", v->number,
				  worker, v->state, v->error ? ": " : "", v->error ? v->error : "");
		version_clear(v);
		return 409;
	}
	return 0;
}

static unsigned api_rollout(struct serve *s, struct sworker *w, json_t *body, json_t **out)
{
	json_t *pj = body ? json_object_get(body, "percentage") : NULL;
	double p = json_is_number(pj) ? json_number_value(pj) : -1;
	if (!(p > 0 && p <= 100)) {
		*out = error_json("\"percentage\" must be a number in (0, 100]");
		return 400;
	}
	struct version v = {0};
	unsigned st = find_ready(s, w->name, body ? json_object_get(body, "version") : NULL, &v, out);
	if (st)
		return st;
	struct deployment d = {0};
	d.n = 1;
	snprintf(d.version[0], sizeof d.version[0], "%s", v.id);
	d.percentage[0] = 100;
	if (p < 100) {
		int main = -1;
		for (int i = 0; w->has_dep && i < w->dep.n; i++)
			if (strcmp(w->dep.version[i], v.id) != 0 &&
			    (main < 0 || w->dep.percentage[i] > w->dep.percentage[main]))
				main = i;
		if (main < 0) {
			version_clear(&v);
			*out = error_json("no other version is deployed to give the remaining %.1f%% to",
					  100 - p);
			return 409;
		}
		d.n = 2;
		d.percentage[0] = p;
		snprintf(d.version[1], sizeof d.version[1], "%s", w->dep.version[main]);
		d.percentage[1] = 100 - p;
	}
	json_t *mj = body ? json_object_get(body, "message") : NULL;
	d.message = json_is_string(mj) ? xstrdup(json_string_value(mj)) : NULL;
	version_clear(&v);
	st = deploy_now(s, w, &d, out);
	deployment_clear(&d);
	return st;
}

static unsigned api_rollback(struct serve *s, struct sworker *w, json_t *body, json_t **out)
{
	json_t *ref = body ? json_object_get(body, "version") : NULL;
	struct version v = {0};
	if (ref && !json_is_null(ref)) {
		unsigned st = find_ready(s, w->name, ref, &v, out);
		if (st)
			return st;
	} else {
		struct deployment prev = {0};
		if (store_deployment_previous(s->st, w->name, &prev) < 0) {
			*out = error_json("%s has no earlier deployment to roll back to", w->name);
			return 409;
		}
		int main = 0;
		for (int i = 1; i < prev.n; i++)
			if (prev.percentage[i] > prev.percentage[main])
				main = i;
		json_t *id = json_string(prev.version[main]);
		deployment_clear(&prev);
		unsigned st = find_ready(s, w->name, id, &v, out);
		json_decref(id);
		if (st)
			return st;
	}
	struct deployment d = {0};
	d.n = 1;
	snprintf(d.version[0], sizeof d.version[0], "%s", v.id);
	d.percentage[0] = 100;
	d.message = xasprintf("rollback to version %d", v.number);
	version_clear(&v);
	unsigned st = deploy_now(s, w, &d, out);
	deployment_clear(&d);
	return st;
}

/* DELETE .../versions/REF: the version and, once nothing names them, its
 * files. Refused while it is in the current deployment or being deployed. */
static unsigned api_version_delete(struct serve *s, struct sworker *w, const char *ref,
				   json_t **out)
{
	size_t len = strlen(ref);
	int ok = len >= 1 && len <= STORE_ID_LEN + 1;
	for (size_t i = 0; ok && i < len; i++)
		ok = strchr("0123456789abcdefABCDEF-", ref[i]) || (i == 0 && ref[i] == '#');
	if (!ok) {
		*out = error_json("a version is named by its id, a prefix of it (4+ characters) or "
				  "its number (3 or #3)");
		return 400;
	}
	struct version v = {0};
	int rc = store_version_find(s->st, w->name, ref, &v);
	if (rc == STORE_FIND_AMBIGUOUS) {
		*out = error_json("'%s' names more than one version of %s", ref, w->name);
		return 400;
	}
	if (rc < 0) {
		*out = error_json("%s has no version '%s'", w->name, ref);
		return 404;
	}
	struct version gone;
	char err[512];
	rc = gc_version_delete(s, v.id, 1, &gone, err, sizeof err);
	unsigned st = 200;
	if (rc == STORE_DELETE_DEPLOYED) {
		*out = error_json("version %d of %s is in its current deployment: roll out or roll "
				  "back to another version before deleting it",
				  v.number, w->name);
		st = 409;
	} else if (rc == STORE_DELETE_BUILDING) {
		*out = error_json("version %d of %s is being deployed: delete it once its deploy "
				  "has ended",
				  v.number, w->name);
		st = 409;
	} else if (rc == STORE_DELETE_NONE) {
		*out = error_json("%s has no version '%s'", w->name, ref);
		st = 404;
	} else if (rc < 0) {
		log_error("%s: deleting version %s: %s", w->name, v.id, err);
		*out = error_json("cannot delete the version (see the host's log)");
		st = 500;
	} else {
		log_info("%s: version %d (%.8s) deleted", w->name, gone.number, gone.id);
		*out = json_pack("{s:o}", "deleted", version_json(&gone));
		version_clear(&gone);
	}
	version_clear(&v);
	return st;
}

/*
 * GET: the worker's secret names. POST {"name": N, "value": V} sets one,
 * {"name": N, "delete": true} removes it. A change makes a new version, as on
 * Cloudflare: the deployed bundle is deployed again (taking the secrets as
 * they are now) and goes live at 100 % once validated, like any deploy; the
 * answer comes first, with the newest version number before it ("after"), for
 * a client that waits. A value is never in an answer or a log line.
 */
static unsigned api_secrets(struct serve *s, struct sworker *w, int get, json_t *body,
			    json_t **out)
{
	if (get) {
		json_t *names = store_secret_names(s->st, w->name);
		if (!names) {
			*out = error_json("cannot list the secrets (see the host's log)");
			return 500;
		}
		*out = json_pack("{s:o}", "secrets", names);
		return 200;
	}
	const char *name = NULL, *value = NULL;
	int del = 0;
	if (!body || json_unpack(body, "{s:s, s?s, s?b}", "name", &name, "value", &value, "delete",
				 &del) < 0 ||
	    (!value == !del)) {
		*out = error_json("the body is {\"name\": NAME, \"value\": VALUE} or "
				  "{\"name\": NAME, \"delete\": true}");
		return 400;
	}
	if (!store_secret_name_valid(name)) {
		*out = error_json("a secret's name is 1-255 letters, digits and '_', not starting "
				  "with a digit");
		return 400;
	}
	for (struct deploy_job *j = s->jobs; j; j = j->next)
		if (!strcmp(j->worker, w->name)) {
			*out = error_json("a deploy of %s is in progress: change the secret once it "
					  "has finished", w->name);
			return 409;
		}
	if (w->has_dep && w->dep.n > 1) {
		*out = error_json("%s is in a gradual rollout: finish it (thaw rollout VERSION "
				  "--percentage 100) or roll back before changing a secret",
				  w->name);
		return 409;
	}
	json_t *vars = NULL;
	struct version cur = {0};
	int have_cur = w->has_dep && store_version_get(s->st, w->dep.version[0], &cur) == 0;
	json_t *project = have_cur ? store_version_project(s->st, cur.id) : NULL;
	if (project && value) {
		vars = json_object_get(project, "vars");
		if (json_object_get(vars, name))
			log_info("%s: secret %s replaces the var of the same name", w->name, name);
	}
	char err[512];
	int rc = value ? store_secret_put(s->st, w->name, name, value, err, sizeof err)
		       : store_secret_delete(s->st, w->name, name, err, sizeof err);
	if (rc < 0 || (del && rc == 1)) {
		json_decref(project);
		version_clear(&cur);
		*out = error_json("%s", rc < 0 ? err : "no such secret");
		return rc < 0 ? 400 : 404;
	}
	json_t *versions = store_versions_json(s->st, w->name);
	json_t *newest = json_array_get(versions, 0);
	json_int_t after = json_integer_value(json_object_get(newest, "number"));
	json_decref(versions);
	log_info("%s: secret %s %s", w->name, name, value ? "set" : "deleted");
	int redeploy = have_cur;
	if (redeploy) {
		char *msg = xasprintf("secret %s %s", name, value ? "set" : "deleted");
		json_t *env = json_object_get(project, "env");
		deploy_start_stored(s, w->name, cur.bundle, msg,
				    json_is_string(env) ? json_string_value(env) : NULL);
		free(msg);
	}
	json_decref(project);
	version_clear(&cur);
	*out = json_pack("{s:s, s:s, s:b, s:I}", "secret", name, "change", value ? "set" : "deleted",
			 "deploying", redeploy, "after", after);
	return 200;
}

unsigned api_answer(struct serve *s, const char *method, const char *worker, const char *what,
		   json_t *body, json_t **out)
{
	int get = !strcmp(method, "GET");
	if (!worker[0] && !strcmp(what, "density")) {
		*out = density_json(s);
		if (!*out) {
			*out = error_json("cannot read the versions (see the host's log)");
			return 500;
		}
		return 200;
	}
	if (!worker[0]) {
		if (!get) {
			*out = error_json("use GET here");
			return 405;
		}
		json_t *names = store_workers_json(s->st);
		json_t *list = json_array();
		size_t i;
		json_t *n;
		json_array_foreach(names, i, n) {
			struct deployment d = {0};
			json_t *dj = json_null();
			if (store_deployment_current(s->st, json_string_value(n), &d) == 0) {
				dj = deployment_json(&d);
				deployment_clear(&d);
			}
			json_array_append_new(list, json_pack("{s:O, s:o}", "name", n, "deployment", dj));
		}
		json_decref(names);
		*out = json_pack("{s:o}", "workers", list);
		return 200;
	}
	struct sworker *w = serve_worker_get(s, worker);
	if (get && !strcmp(what, "versions")) {
		json_t *versions = store_versions_json(s->st, worker);
		if (!versions || json_array_size(versions) == 0) {
			json_decref(versions);
			*out = error_json("no worker named '%s' was deployed here", worker);
			return 404;
		}
		*out = json_pack("{s:o, s:o, s:o}", "versions", versions, "deployment",
				 w->has_dep ? deployment_json(&w->dep) : json_null(), "bases",
				 density_bases_json(s));
		return 200;
	}
	if (get && (!strcmp(what, "deployment") || !what[0])) {
		if (!w->has_dep) {
			*out = error_json("'%s' has no deployment here", worker);
			return 404;
		}
		*out = json_pack("{s:o}", "deployment", deployment_json(&w->dep));
		return 200;
	}
	if (!strcmp(what, "secrets"))
		return api_secrets(s, w, get, body, out);
	if (get && !strcmp(what, "crons")) {
		*out = serve_crons_json(s, w, 100);
		return 200;
	}
	if (!get && !strcmp(what, "rollout"))
		return api_rollout(s, w, body, out);
	if (!get && !strcmp(what, "rollback"))
		return api_rollback(s, w, body, out);
	if (!strncmp(what, "versions/", 9) && !strcmp(method, "DELETE"))
		return api_version_delete(s, w, what + 9, out);
	*out = error_json("no such endpoint: %s /v1/workers/%s/%s", method, worker, what);
	return 404;
}

