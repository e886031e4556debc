/*
 * `thaw serve`: many deployed workers on one host. See serve.h for the
 * deploy pipeline and docs/control-api.md for the API.
 *
 * In memory: a list of workers, each with the versions this run has loaded
 * (a version is loaded, i.e. has a pool, once it is deployed, overridden to,
 * or being deployed) and its current deployment, mirrored from the store.
 * The store is the truth: every change is written there first.
 */
#include "ext/serve.h"
#include "ext/ext.h"
#include "ext/router.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "project/project.h"
#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "snap/snap.h"
#include <sys/wait.h>

extern char **environ;

#define PROBE_TIMEOUT_MS 60000
#define DEPLOY_TIMEOUT_MS (10 * 60 * 1000)
#define PROBE_MAX_BYTES (64 * 1024)
/* The unpacker's answer holds the project's configuration (vars and all). */
#define UNPACK_MAX_ANSWER (PROJECT_MAX_JSON_BYTES + 4096)
#define ADOPT_MAX_ANSWER 4096

struct sworker;

struct sversion {
	struct serve *s;
	struct sworker *w;
	struct version v;
	struct app app;
	char label[80];
	struct deploy_job *job; /* being deployed */
	struct child *adopter;  /* `thaw adopt-snapshot` of a new image, while it runs */
	char *adopt_tmp;        /* the image it adopts */
	struct sversion *next;
};

struct tail_sub {
	struct ctl_stream *cs;
	struct tail_sub *next;
};

struct sworker {
	char name[64];
	int has_dep;
	struct deployment dep;
	struct sversion *versions;
	struct tail_sub *tails;
	struct sworker *next;
};

enum job_stage { JOB_UNPACK, JOB_BUILD, JOB_PROBE, JOB_DONE };

struct deploy_job {
	struct serve *s;
	char worker[64];
	char hex[STORE_SHA_HEX + 1];
	char *message;
	double percentage;
	struct ctl_stream *cs; /* NULL once the client went away */
	enum job_stage stage;
	struct child *unpacker; /* `thaw unpack-bundle`, while it runs */
	char unpack_dir[4096];
	struct sversion *sv;
	int restored; /* an instance restored from the new image */
	double restore_ms;
	/* the health probe */
	struct loop_watch probe;
	struct buf probe_in;
	struct buf probe_out;
	struct loop_timer timer;
	uint64_t t_build;
	struct deploy_job *next;
};

struct serve {
	struct host h;
	struct store *st;
	struct ctl *ctl;
	struct bundle_limits bl;
	unsigned char token_hash[32];
	char probe_secret[33];
	struct sworker *workers;
	struct deploy_job *jobs;
	struct loop_watch sig;
	char data_ip[64];
	unsigned data_port;
	struct router router;
	uint64_t rng;
	int running; /* the loop runs: nothing may block any more */
};

static void job_fail(struct deploy_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- small things --- */

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned len = 32;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
		fatal("SHA-256 failed");
}

static uint64_t rng_next(struct serve *s)
{
	/* xorshift64*: request routing needs spread, not secrecy. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 0x2545F4914F6CDD1Dull;
}

static int64_t now_unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct store *serve_store(struct serve *s)
{
	return s->st;
}

const struct bundle_limits *serve_bundle_limits(struct serve *s)
{
	return &s->bl;
}

int serve_token_ok(struct serve *s, const char *authorization)
{
	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return 0;
	const char *t = authorization + 7;
	while (*t == ' ')
		t++;
	/* Compare digests: constant time whatever the lengths. */
	unsigned char d[32];
	sha256(t, strlen(t), d);
	return CRYPTO_memcmp(d, s->token_hash, sizeof d) == 0;
}

/* --- workers and versions in memory --- */

static struct sworker *worker_find(struct serve *s, const char *name)
{
	for (struct sworker *w = s->workers; w; w = w->next)
		if (!strcmp(w->name, name))
			return w;
	return NULL;
}

static struct sworker *worker_get(struct serve *s, const char *name)
{
	struct sworker *w = worker_find(s, name);
	if (w)
		return w;
	w = xcalloc(1, sizeof *w);
	snprintf(w->name, sizeof w->name, "%s", name);
	w->has_dep = store_deployment_current(s->st, name, &w->dep) == 0;
	w->next = s->workers;
	s->workers = w;
	return w;
}

static struct sversion *version_loaded(struct sworker *w, const char *id)
{
	for (struct sversion *sv = w->versions; sv; sv = sv->next)
		if (!strcmp(sv->v.id, id))
			return sv;
	return NULL;
}

static char *build_init(struct serve *s, struct sversion *sv)
{
	struct project *c = sv->app.cfg;
	json_t *j = json_pack("{s:s, s:s, s:s, s:O, s:b, s:i, s:s, s:b, s:b, s:b, s:s}", "name",
			      c->name, "project_dir", c->dir, "main", c->main, "vars", c->vars,
			      "dev", 0, "concurrency", (int)s->h.lim.concurrency, "sdk_dir",
			      s->h.sdk_dir, "system_site_packages", s->h.system_site_packages,
			      "allow_entropy_at_import", c->allow_entropy_at_import,
			      "capture_output", 1, "version", sv->v.id);
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		fatal("cannot encode the instance configuration");
	return text;
}

static const struct app_hooks serve_hooks;

/* The version's project directory: DIR/versions/ID. */
static char *version_dir(struct serve *s, const char *id)
{
	return xasprintf("%s/versions/%s", store_dir(s->st), id);
}

/* The project of a stored version, as recorded when its bundle was
 * unpacked. Versions stored by a thaw older than that record have none: it
 * is read (in a child) and recorded while the host starts, before its loop
 * runs; afterwards such a version cannot be loaded until it is redeployed. */
static struct project *version_project(struct serve *s, const struct version *v, char *err,
				       size_t errlen)
{
	char *dir = version_dir(s, v->id);
	struct project *p = NULL;
	json_t *j = store_version_project(s->st, v->id);
	if (j) {
		p = project_from_json(j, dir, err, errlen);
		json_decref(j);
	} else if (!s->running) {
		p = project_load(dir, err, errlen);
		if (p) {
			json_t *pj = project_to_json(p);
			store_version_set_project(s->st, v->id, pj);
			json_decref(pj);
		}
	} else {
		snprintf(err, errlen, "version %s has no recorded configuration: restart the host "
				      "or deploy it again", v->id);
	}
	free(dir);
	return p;
}

/* Give a stored version a pool. NULL with err when it cannot be loaded. */
static struct sversion *version_load(struct serve *s, struct sworker *w, const struct version *v,
				     char *err, size_t errlen)
{
	struct sversion *sv = version_loaded(w, v->id);
	if (sv)
		return sv;
	struct project *cfg = version_project(s, v, err, errlen);
	if (!cfg)
		return NULL;
	sv = xcalloc(1, sizeof *sv);
	sv->s = s;
	sv->w = w;
	sv->v = *v;
	sv->v.message = v->message ? xstrdup(v->message) : NULL;
	sv->v.error = v->error ? xstrdup(v->error) : NULL;
	/* The worker's name is the one it was deployed under. */
	free(cfg->name);
	cfg->name = xstrdup(w->name);
	snprintf(sv->label, sizeof sv->label, "%s@%.8s", w->name, v->id);
	struct app *a = &sv->app;
	a->h = &s->h;
	a->cfg = cfg;
	a->label = sv->label;
	a->hooks = &serve_hooks;
	a->owner = sv;
	a->keep_snapshots = 1;
	a->snap_dir = xasprintf("%s/tmp", store_dir(s->st));
#ifndef THAW_SANITIZE
	a->snapshots = 1;
#endif
	a->init_json = build_init(s, sv);
	sv->next = w->versions;
	w->versions = sv;
	return sv;
}

/* A loaded, ready version starts serving: from its stored image when it
 * still fits, else booting while a new image is built. */
static void version_start(struct serve *s, struct sversion *sv)
{
	struct app *a = &sv->app;
	a->draining = 0;
	if (a->snap_state != SNAPSHOT_NONE || a->builder || !a->snapshots)
		return;
	if (sv->v.snapshot[0]) {
		char *path = blob_path(s->st, sv->v.snapshot);
		char why[512];
		/* Checked before it is first used, so an upgraded host rebuilds
		 * instead of having every first restore refused. */
		if (snap_check_file(path, why, sizeof why) == 0) {
			pool_use_snapshot(a, path);
			free(path);
			return;
		}
		log_warn("%s: stored snapshot unusable (%s): booting while it is rebuilt",
			 sv->label, why);
		free(path);
	}
	pool_build_snapshot(a);
}

/* Make the worker's in-memory deployment follow d: versions in it start,
 * the others drain. */
static void apply_deployment(struct serve *s, struct sworker *w, const struct deployment *d)
{
	deployment_clear(&w->dep);
	w->dep = *d;
	w->dep.message = d->message ? xstrdup(d->message) : NULL;
	w->has_dep = 1;
	for (struct sversion *sv = w->versions; sv; sv = sv->next) {
		int in = 0;
		for (int i = 0; i < d->n; i++)
			in |= !strcmp(d->version[i], sv->v.id);
		if (in)
			version_start(s, sv);
		else if (!sv->job)
			pool_drain(&sv->app);
	}
}

/* Load the versions of w's deployment (at start, after a rollout). */
static int load_deployment(struct serve *s, struct sworker *w, char *err, size_t errlen)
{
	for (int i = 0; i < w->dep.n; i++) {
		struct version v = {0};
		if (store_version_get(s->st, w->dep.version[i], &v) < 0) {
			snprintf(err, errlen, "version %s is in the deployment but not in the store",
				 w->dep.version[i]);
			return -1;
		}
		struct sversion *sv = version_load(s, w, &v, err, errlen);
		version_clear(&v);
		if (!sv)
			return -1;
		version_start(s, sv);
	}
	return 0;
}

/* --- the router --- */

static struct app *route(struct host *h, struct hreq *r, unsigned *status, char *msg, size_t msglen)
{
	struct serve *s = (struct serve *)h;
	char name[64];
	const char *probe = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-probe");
	int is_probe = probe && strlen(probe) == 32 && CRYPTO_memcmp(probe, s->probe_secret, 32) == 0;
	const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
	char *rewritten = NULL;
	if (router_worker(&s->router, host, r->uri, is_probe, name, sizeof name, &rewritten) < 0) {
		*status = 404;
		snprintf(msg, msglen, "No worker matches this request (use Host: NAME.localhost%s).\n",
			 s->router.path_routing ? " or the path /NAME/" : "");
		return NULL;
	}
	if (rewritten) {
		free(r->uri);
		r->uri = rewritten;
	}
	struct sworker *w = project_name_valid(name) ? worker_find(s, name) : NULL;
	if (!w && project_name_valid(name)) {
		/* Known to the store, not yet to this run? (Unknown names make
		 * nothing: a Host header must not grow our memory.) */
		struct version v1 = {0};
		if (store_version_find(s->st, name, "1", &v1) == 0)
			w = worker_get(s, name);
		version_clear(&v1);
	}
	const char *ov = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-version-override");
	if (!w || (!w->has_dep && !(ov && *ov))) {
		*status = 404;
		snprintf(msg, msglen, "No worker named '%.63s' is deployed here.\n", name);
		return NULL;
	}
	const char *id = NULL;
	if (ov && *ov) {
		struct version v = {0};
		int rc = store_version_find(s->st, name, ov, &v);
		if (rc < 0 || (strcmp(v.state, "ready") != 0 && !is_probe)) {
			*status = 400;
			snprintf(msg, msglen, "thaw-version-override: %s version of '%s' is %.40s.\n",
				 rc == -2 ? "more than one" : "no ready", name, ov);
			version_clear(&v);
			return NULL;
		}
		char err[512];
		struct sversion *sv = version_load(s, w, &v, err, sizeof err);
		version_clear(&v);
		if (!sv) {
			*status = 500;
			snprintf(msg, msglen, "The version cannot be loaded: %s\n", err);
			return NULL;
		}
		if (!is_probe && sv->app.snap_state == SNAPSHOT_NONE && !sv->app.builder)
			version_start(s, sv);
		return &sv->app;
	}
	const struct deployment *d = &w->dep;
	const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-version-key");
	int pick = router_version(d, name, key, d->n > 1 && !(key && *key) ? rng_next(s) : 0);
	id = d->version[pick];
	struct sversion *sv = version_loaded(w, id);
	if (!sv) {
		char err[512];
		if (load_deployment(s, w, err, sizeof err) < 0 || !(sv = version_loaded(w, id))) {
			*status = 500;
			snprintf(msg, msglen, "The worker cannot be loaded: %s\n", err);
			return NULL;
		}
	}
	return &sv->app;
}

/* --- logs --- */

static void on_output(struct app *a, struct hreq *r, uint32_t stream, int channel, const char *text,
		      size_t len)
{
	struct sversion *sv = a->owner;
	char rid[17] = "";
	if (r)
		memcpy(rid, r->rid, sizeof rid);
	/* The worker's bytes reach an operator's terminal: no control codes. */
	fprintf(stderr, "[%s%s%s] ", sv->label, rid[0] ? " " : "", rid);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)text[i];
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			fprintf(stderr, "\\x%02x", ch);
		else
			fputc(ch, stderr);
	}
	fputc('\n', stderr);
	if (!sv->w->tails)
		return;
	json_t *line = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s%}", "ts", (json_int_t)now_unix_ms(),
				 "worker", sv->w->name, "version", sv->v.id, "request_id",
				 rid[0] ? rid : NULL, "stream", channel == 1 ? "stdout" : "stderr",
				 "message", text, len);
	if (!line) /* not UTF-8 */
		line = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s}", "ts", (json_int_t)now_unix_ms(),
				 "worker", sv->w->name, "version", sv->v.id, "request_id",
				 rid[0] ? rid : NULL, "stream", channel == 1 ? "stdout" : "stderr",
				 "message", "(a line that is not UTF-8)");
	for (struct tail_sub *t = sv->w->tails; t; t = t->next)
		ctl_stream_line(t->cs, json_incref(line));
	json_decref(line);
}

unsigned serve_tail(struct serve *s, const char *worker, struct ctl_stream *cs)
{
	struct version v = {0};
	int known = store_version_find(s->st, worker, "1", &v) == 0;
	version_clear(&v);
	if (!known)
		return 404;
	struct sworker *w = worker_get(s, worker);
	struct tail_sub *t = xcalloc(1, sizeof *t);
	t->cs = cs;
	t->next = w->tails;
	w->tails = t;
	log_info("tail of %s opened", worker);
	return 0;
}

/* --- the deploy pipeline --- */

static void job_line(struct deploy_job *j, json_t *line)
{
	if (j->cs)
		ctl_stream_line(j->cs, line);
	else
		json_decref(line);
}

static void job_refuse(struct deploy_job *j, unsigned status, const char *msg)
{
	if (j->cs)
		ctl_stream_refuse(j->cs, status, msg);
}

static void job_free(struct deploy_job *j)
{
	struct serve *s = j->s;
	child_cancel(j->unpacker);
	j->unpacker = NULL;
	for (struct deploy_job **p = &s->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	if (j->sv)
		j->sv->job = NULL;
	loop_timer_cancel(s->h.loop, &j->timer);
	if (j->probe.fd >= 0) {
		loop_del(s->h.loop, &j->probe);
		close(j->probe.fd);
	}
	if (j->unpack_dir[0])
		remove_tree(j->unpack_dir);
	buf_free(&j->probe_in);
	buf_free(&j->probe_out);
	free(j->message);
	loop_defer_free(s->h.loop, j);
}

static void job_finish(struct deploy_job *j)
{
	j->stage = JOB_DONE;
	if (j->cs)
		ctl_stream_end(j->cs);
	j->cs = NULL;
	job_free(j);
}

static void job_fail(struct deploy_job *j, const char *fmt, ...)
{
	char msg[16384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct serve *s = j->s;
	if (j->sv) {
		store_version_set_state(s->st, j->sv->v.id, "failed", msg);
		snprintf(j->sv->v.state, sizeof j->sv->v.state, "failed");
		log_warn("%s: deploy failed: %s", j->sv->label, msg);
		/* Nothing of it serves: close what it started. */
		j->sv->app.build_failed = 1;
		pool_drain(&j->sv->app);
	} else {
		log_warn("deploy of %s failed: %s", j->worker, msg);
	}
	job_line(j, json_pack("{s:s, s:s}", "stage", "failed", "error", msg));
	job_finish(j);
}

static void job_timeout(struct loop *l, struct loop_timer *t)
{
	struct deploy_job *j = t->arg;
	if (j->stage == JOB_PROBE)
		job_fail(j, "the health request through a restored instance did not answer in %d s",
			 PROBE_TIMEOUT_MS / 1000);
	else
		job_fail(j, "the deployment did not finish in %d minutes", DEPLOY_TIMEOUT_MS / 60000);
}

/* The new deployment once the version is validated: it alone, or at P %
 * beside the current main version. */
static int job_go_live(struct deploy_job *j)
{
	struct serve *s = j->s;
	struct sversion *sv = j->sv;
	struct sworker *w = sv->w;
	char err[512];
	if (store_version_set_state(s->st, sv->v.id, "ready", NULL) < 0) {
		job_fail(j, "cannot record the version as ready");
		return -1;
	}
	snprintf(sv->v.state, sizeof sv->v.state, "ready");
	struct deployment d = {0};
	d.n = 1;
	snprintf(d.version[0], sizeof d.version[0], "%s", sv->v.id);
	d.percentage[0] = 100;
	if (j->percentage < 100 && w->has_dep) {
		int main = 0;
		for (int i = 1; i < w->dep.n; i++)
			if (w->dep.percentage[i] > w->dep.percentage[main])
				main = i;
		if (strcmp(w->dep.version[main], sv->v.id) != 0) {
			d.n = 2;
			d.percentage[0] = j->percentage;
			snprintf(d.version[1], sizeof d.version[1], "%s", w->dep.version[main]);
			d.percentage[1] = 100 - j->percentage;
		}
	}
	d.message = j->message ? xstrdup(j->message) : NULL;
	if (store_deploy(s->st, w->name, &d, err, sizeof err) < 0) {
		deployment_clear(&d);
		job_fail(j, "cannot record the deployment: %s", err);
		return -1;
	}
	sv->job = NULL;
	apply_deployment(s, w, &d);
	if (load_deployment(s, w, err, sizeof err) < 0)
		log_warn("%s: %s", w->name, err);
	log_info("%s: live (%s)", sv->label, d.n == 1 ? "100%" : "gradual");
	job_line(j, json_pack("{s:s, s:o}", "stage", "live", "deployment", deployment_json(&d)));
	deployment_clear(&d);
	job_finish(j);
	return 0;
}

/* The health probe: one request through our own data plane, forced to the
 * new version, answered by an instance restored from its image. */
static void probe_io(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct deploy_job *j = w->arg;
	if (buf_used(&j->probe_out)) {
		ssize_t n = send(w->fd, buf_head(&j->probe_out), buf_used(&j->probe_out), MSG_NOSIGNAL);
		if (n > 0)
			buf_consume(&j->probe_out, (size_t)n);
		else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			job_fail(j, "health request: %s", strerror(errno));
			return;
		}
		if (!buf_used(&j->probe_out))
			loop_mod(l, w, EPOLLIN);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	for (;;) {
		uint8_t *p = buf_reserve(&j->probe_in, 16384);
		ssize_t n = recv(w->fd, p, 16384, 0);
		if (n > 0) {
			j->probe_in.len += (size_t)n;
			if (buf_used(&j->probe_in) > PROBE_MAX_BYTES)
				break;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break; /* EOF or error: the answer is complete (Connection: close) */
	}
	loop_del(l, w);
	close(w->fd);
	w->fd = -1;
	unsigned status = 0;
	const char *text = (const char *)buf_head(&j->probe_in);
	size_t len = buf_used(&j->probe_in);
	if (len >= 12 && !memcmp(text, "HTTP/1.", 7))
		status = (unsigned)atoi(text + 9);
	if (status == 0) {
		job_fail(j, "the health request got no answer");
		return;
	}
	if (status >= 500) {
		const char *body = memmem(text, len, "\r\n\r\n", 4);
		int blen = body ? (int)(len - (size_t)(body + 4 - text)) : 0;
		job_fail(j, "the health request (GET /) answered %u%s%.*s", status,
			 blen ? ": " : "", blen > 4000 ? 4000 : blen, body ? body + 4 : "");
		return;
	}
	if (!j->restored && j->sv->app.snapshots) {
		job_fail(j, "the health request was answered, but not by an instance restored from "
			    "the snapshot");
		return;
	}
	job_line(j, json_pack("{s:s, s:f, s:i}", "stage", "validated", "restore_ms", j->restore_ms,
			      "status", (int)status));
	job_go_live(j);
}

static void probe_start(struct deploy_job *j)
{
	struct serve *s = j->s;
	j->stage = JOB_PROBE;
	loop_timer_arm(s->h.loop, &j->timer, PROBE_TIMEOUT_MS);
	const char *ip = s->data_ip;
	int v6 = strchr(ip, ':') != NULL;
	if (!strcmp(ip, "0.0.0.0"))
		ip = "127.0.0.1";
	else if (!strcmp(ip, "::"))
		ip = "::1";
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)s->data_port);
		inet_pton(AF_INET6, ip, &a6->sin6_addr);
		sl = sizeof *a6;
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)s->data_port);
		inet_pton(AF_INET, ip, &a4->sin_addr);
		sl = sizeof *a4;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)) {
		if (fd >= 0)
			close(fd);
		job_fail(j, "cannot connect to this host's data plane: %s", strerror(errno));
		return;
	}
	char *req = xasprintf("GET / HTTP/1.1\r\nHost: %s.localhost\r\n"
			      "thaw-version-override: %s\r\nthaw-probe: %s\r\n"
			      "User-Agent: thaw-deploy-check\r\nConnection: close\r\n\r\n",
			      j->worker, j->sv->v.id, s->probe_secret);
	buf_append(&j->probe_out, req, strlen(req));
	free(req);
	j->probe.fd = fd;
	j->probe.fn = probe_io;
	j->probe.arg = j;
	loop_add(s->h.loop, &j->probe, EPOLLIN | EPOLLOUT);
}

/* A version's new image is checked and stored by a child (`thaw
 * adopt-snapshot`): then it is recorded and the pool told. */
static void adopt_done(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct sversion *sv = arg;
	struct serve *s = sv->s;
	char *tmp = sv->adopt_tmp;
	sv->adopter = NULL;
	sv->adopt_tmp = NULL;
	json_t *res = overflow ? NULL : json_loadb((const char *)out, len, JSON_DISABLE_EOF_CHECK, NULL);
	int ok = 0;
	const char *error = NULL, *hex = NULL;
	json_int_t bytes = 0;
	if (res)
		json_unpack(res, "{s?b, s?s, s?s, s?I}", "ok", &ok, "error", &error, "sha256", &hex,
			    "bytes", &bytes);
	char why[1100];
	char *path = NULL;
	if (!ok || !hex || !(path = blob_path(s->st, hex))) {
		if (error)
			snprintf(why, sizeof why, "%s", error);
		else if (WIFSIGNALED(status))
			snprintf(why, sizeof why, "the image check was killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(why, sizeof why, "the image check failed");
		unlink(tmp);
	} else if (store_version_set_snapshot(s->st, sv->v.id, hex, (uint64_t)bytes) < 0) {
		snprintf(why, sizeof why, "cannot record the snapshot in the store");
		free(path);
		path = NULL;
	} else {
		/* The image it replaces goes (restored instances keep their mappings). */
		if (sv->v.snapshot[0] && strcmp(sv->v.snapshot, hex) != 0) {
			char *old = blob_path(s->st, sv->v.snapshot);
			snap_remove(old);
			free(old);
		}
		snprintf(sv->v.snapshot, sizeof sv->v.snapshot, "%s", hex);
		sv->v.snapshot_bytes = (uint64_t)bytes;
	}
	json_decref(res);
	free(tmp);
	pool_snapshot_adopted(&sv->app, path, path ? NULL : why);
}

static void adopt_snapshot(struct app *a, const char *tmp)
{
	struct sversion *sv = a->owner;
	struct serve *s = sv->s;
	char err[512];
	char *argv[] = {(char *)self_exe(), "adopt-snapshot", (char *)tmp, (char *)store_dir(s->st),
			NULL};
	child_cancel(sv->adopter);
	free(sv->adopt_tmp);
	sv->adopt_tmp = xstrdup(tmp);
	sv->adopter = child_start(&s->h, argv, ADOPT_MAX_ANSWER, adopt_done, sv, err, sizeof err);
	if (!sv->adopter) {
		unlink(tmp);
		free(sv->adopt_tmp);
		sv->adopt_tmp = NULL;
		pool_snapshot_adopted(a, NULL, err);
	}
}

static void on_event(struct app *a, enum app_event ev, const char *detail, double num)
{
	struct sversion *sv = a->owner;
	struct deploy_job *j = sv->job;
	switch (ev) {
	case APP_SNAPSHOT_BUILT:
		if (j && j->stage == JOB_BUILD) {
			job_line(j, json_pack("{s:s, s:I, s:f}", "stage", "built", "snapshot_bytes",
					      (json_int_t)num, "ms", ns_to_ms(now_ns() - j->t_build)));
			probe_start(j);
		}
		break;
	case APP_SNAPSHOT_FAILED:
		if (j)
			job_fail(j, "the snapshot build failed:\n%s", detail ? detail : "");
		else
			log_warn("%s: rebuilding its snapshot failed: %s", sv->label, detail);
		break;
	case APP_RESTORE_REFUSED:
		if (j)
			job_fail(j, "the new snapshot was refused at restore: %s", detail);
		else
			store_version_set_snapshot(sv->s->st, sv->v.id, "", 0);
		break;
	case APP_RESTORED:
		if (j) {
			j->restored = 1;
			j->restore_ms = num;
		}
		break;
	}
}

static const struct app_hooks serve_hooks = {
	.adopt_snapshot = adopt_snapshot,
	.event = on_event,
	.output = on_output,
};

/* The unpacked bundle is in: record the version and build its snapshot. */
static void job_unpacked(struct deploy_job *j, json_t *res)
{
	struct serve *s = j->s;
	char err[1024];
	json_int_t files = 0, bytes = 0;
	json_unpack(res, "{s?I, s?I}", "files", &files, "bytes", &bytes);
	/* The project must load before it is recorded: the unpacker read it. */
	const char *perr = NULL;
	json_t *pj = NULL;
	json_unpack(res, "{s?s, s?o}", "project_error", &perr, "project", &pj);
	struct project *cfg = pj ? project_from_json(pj, j->unpack_dir, err, sizeof err) : NULL;
	if (!cfg) {
		job_refuse(j, 422, perr ? perr : pj ? err : "the bundle's configuration was not read");
		job_free(j);
		return;
	}
	project_free(cfg);
	struct version v = {0};
	if (store_version_add(s->st, j->worker, j->hex, j->message, &v, err, sizeof err) < 0) {
		job_refuse(j, 500, err);
		job_free(j);
		return;
	}
	char *dir = version_dir(s, v.id);
	if (rename(j->unpack_dir, dir) < 0) {
		snprintf(err, sizeof err, "cannot move the bundle into place: %s", strerror(errno));
		store_version_set_state(s->st, v.id, "failed", err);
		job_refuse(j, 500, err);
		free(dir);
		version_clear(&v);
		job_free(j);
		return;
	}
	j->unpack_dir[0] = 0;
	free(dir);
	store_version_set_project(s->st, v.id, pj);
	char *vdir = xasprintf("%s/versions", store_dir(s->st));
	int dfd = open(vdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(vdir);
	struct sworker *w = worker_get(s, j->worker);
	json_t *line = json_pack("{s:s, s:s, s:i, s:s, s:I, s:I}", "stage", "stored", "version",
				 v.id, "number", v.number, "sha256", j->hex, "files", files, "bytes",
				 bytes);
	job_line(j, line);
	struct sversion *sv = version_load(s, w, &v, err, sizeof err);
	version_clear(&v);
	if (!sv) {
		job_fail(j, "%s", err);
		return;
	}
	j->sv = sv;
	sv->job = j;
	log_info("%s: stored (%lld files), building its snapshot", sv->label, (long long)files);
	if (!sv->app.snapshots) {
		/* A sanitizer build: validate with a booted instance instead. */
		probe_start(j);
		return;
	}
	j->stage = JOB_BUILD;
	j->t_build = now_ns();
	job_line(j, json_pack("{s:s}", "stage", "building"));
	pool_build_snapshot(&sv->app);
	if (!sv->app.builder && j->stage == JOB_BUILD)
		job_fail(j, "cannot start the snapshot build");
}

static void unpack_done(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct deploy_job *j = arg;
	j->unpacker = NULL;
	json_error_t je;
	json_t *res = overflow ? NULL
			       : json_loadb((const char *)out, len, JSON_DISABLE_EOF_CHECK, &je);
	int ok = 0;
	const char *error = NULL;
	if (res)
		json_unpack(res, "{s?b, s?s}", "ok", &ok, "error", &error);
	if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char msg[1200];
		if (error)
			snprintf(msg, sizeof msg, "bundle refused: %s", error);
		else if (WIFSIGNALED(status))
			snprintf(msg, sizeof msg, "bundle refused: the unpacker was killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(msg, sizeof msg, "bundle refused: the unpacker failed");
		log_warn("deploy of %s: %s", j->worker, msg);
		/* A refused bundle is not kept. */
		char *bp = blob_path(j->s->st, j->hex);
		unlink(bp);
		free(bp);
		job_refuse(j, 422, msg);
		json_decref(res);
		job_free(j);
		return;
	}
	job_unpacked(j, res);
	json_decref(res);
}

void serve_deploy(struct serve *s, const char *worker, const char *hex, const char *message,
		  double percentage, struct ctl_stream *cs)
{
	struct deploy_job *j = xcalloc(1, sizeof *j);
	j->s = s;
	snprintf(j->worker, sizeof j->worker, "%s", worker);
	snprintf(j->hex, sizeof j->hex, "%s", hex);
	j->message = message ? xstrdup(message) : NULL;
	j->percentage = percentage;
	j->cs = cs;
	j->probe.fd = -1;
	j->timer.fn = job_timeout;
	j->timer.arg = j;
	j->next = s->jobs;
	s->jobs = j;
	loop_timer_arm(s->h.loop, &j->timer, DEPLOY_TIMEOUT_MS);

	/* Unpack in a child: the bundle is hostile, and big ones take a while. */
	snprintf(j->unpack_dir, sizeof j->unpack_dir, "%s/tmp/unpack-%s-%llx", store_dir(s->st), hex,
		 (unsigned long long)rng_next(s));
	char *blob = blob_path(s->st, hex);
	char files[32], total[32], compressed[32];
	snprintf(files, sizeof files, "%llu", (unsigned long long)s->bl.max_files);
	snprintf(total, sizeof total, "%llu", (unsigned long long)s->bl.max_total);
	snprintf(compressed, sizeof compressed, "%llu", (unsigned long long)s->bl.max_compressed);
	char *argv[] = {(char *)self_exe(), "unpack-bundle", blob, j->unpack_dir, "--max-files",
			files, "--max-total", total, "--max-compressed", compressed, "--read-project",
			NULL};
	char err[512];
	j->unpacker = child_start(&s->h, argv, UNPACK_MAX_ANSWER, unpack_done, j, err, sizeof err);
	free(blob);
	if (!j->unpacker) {
		log_error("deploy of %s: %s", worker, err);
		ctl_stream_refuse(cs, 500, "cannot start the unpacker");
		job_free(j);
	}
}

void serve_stream_gone(struct serve *s, struct ctl_stream *cs)
{
	for (struct deploy_job *j = s->jobs; j; j = j->next)
		if (j->cs == cs)
			j->cs = NULL; /* the deploy goes on without its client */
	for (struct sworker *w = s->workers; w; w = w->next) {
		for (struct tail_sub **p = &w->tails; *p;) {
			if ((*p)->cs == cs) {
				struct tail_sub *t = *p;
				*p = t->next;
				free(t);
			} else {
				p = &(*p)->next;
			}
		}
	}
}

/* --- the worker API --- */

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
	if (store_deploy(s->st, w->name, d, err, sizeof err) < 0) {
		*out = error_json("%s", err);
		return 409;
	}
	apply_deployment(s, w, d);
	if (load_deployment(s, w, err, sizeof err) < 0)
		log_warn("%s: %s", w->name, err);
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
	if (rc == -2) {
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

unsigned serve_api(struct serve *s, const char *method, const char *worker, const char *what,
		   json_t *body, json_t **out)
{
	int get = !strcmp(method, "GET");
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
	struct sworker *w = worker_get(s, worker);
	if (get && !strcmp(what, "versions")) {
		json_t *versions = store_versions_json(s->st, worker);
		if (!versions || json_array_size(versions) == 0) {
			json_decref(versions);
			*out = error_json("no worker named '%s' was deployed here", worker);
			return 404;
		}
		*out = json_pack("{s:o, s:o}", "versions", versions, "deployment",
				 w->has_dep ? deployment_json(&w->dep) : json_null());
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
	if (!get && !strcmp(what, "rollout"))
		return api_rollout(s, w, body, out);
	if (!get && !strcmp(what, "rollback"))
		return api_rollback(s, w, body, out);
	*out = error_json("no such endpoint: %s /v1/workers/%s/%s", method, worker, what);
	return 404;
}

/* --- the command --- */

static const char serve_usage[] =
	"usage: thaw serve --data DIR [options]\n"
	"\n"
	"Host every worker deployed to DIR (with `thaw deploy`). The data plane serves a\n"
	"request to the worker named by its Host header (NAME.localhost), by a --route,\n"
	"or, with --path-routing, by its first path segment (/NAME/...; the worker sees\n"
	"the rest of the path). The control API (deploy, versions, rollout, rollback,\n"
	"tail; see docs/control-api.md) listens on its own address and needs a token.\n"
	"\n"
	"Options:\n"
	"  --data DIR               state: DIR/thaw.db, DIR/blobs, DIR/versions (required)\n"
	"  --port N                 data plane port (default 8787; 0 picks a free one)\n"
	"  --ip ADDR                data plane address (default 127.0.0.1)\n"
	"  --control ADDR:PORT      control API address (default 127.0.0.1:8788)\n"
	"  --token-file FILE        the control API's token (else $THAW_TOKEN, else DIR/token,\n"
	"                           created with a random token on first start)\n"
	"  --route HOST=NAME        send requests for HOST (or *.DOMAIN) to worker NAME;\n"
	"                           repeatable\n"
	"  --path-routing           route /NAME/... to worker NAME\n"
	"  --idle-timeout SECONDS   evict an idle instance after this long (default 300)\n"
	"  --timeout SECONDS        wall-time limit for a handler to answer (default 30)\n"
	"  --max-body-bytes N       largest request body (default 104857600); 413 above\n"
	"  --max-header-bytes N     largest request head (default 32768); 431 above\n"
	"  --max-instances N        instances per version at most (default 4)\n"
	"  --concurrency N          requests in flight per instance (default 64)\n"
	"  --max-bundle-mb N        largest bundle accepted (default 256)\n"
	"  --max-bundle-files N     most files in a bundle (default 5000)\n"
	"  --max-snapshot-mb N      refuse snapshots larger than this (default 1024)\n"
	"  --system-site-packages   let workers import the system's Python packages\n"
	"  -v, --verbose            debug logging\n"
	"  -h, --help               this help\n";

static void on_signal(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct serve *s = w->arg;
	struct signalfd_siginfo si;
	while (read(w->fd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGCHLD)
			host_reap(&s->h);
		else
			loop_stop(l);
	}
}

/* The token: --token-file, else $THAW_TOKEN, else DIR/token (made once). */
static int load_token(struct serve *s, const char *file, char *err, size_t errlen)
{
	char *tok = NULL;
	size_t len = 0;
	const char *env = getenv("THAW_TOKEN");
	if (file) {
		tok = read_file(file, 4096, &len);
		if (!tok) {
			snprintf(err, errlen, "cannot read the token file %s: %s", file, strerror(errno));
			return -1;
		}
	} else if (env && *env) {
		tok = xstrdup(env);
		len = strlen(tok);
	} else {
		char *path = xasprintf("%s/token", store_dir(s->st));
		tok = read_file(path, 4096, &len);
		if (!tok) {
			unsigned char raw[24];
			if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
				fatal("getrandom: %s", strerror(errno));
			tok = xmalloc(sizeof raw * 2 + 2);
			for (size_t i = 0; i < sizeof raw; i++)
				sprintf(tok + 2 * i, "%02x", raw[i]);
			len = sizeof raw * 2;
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (fd < 0 || write_all(fd, tok, len) < 0 || write_all(fd, "\n", 1) < 0 ||
			    fsync(fd) < 0) {
				snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
				if (fd >= 0)
					close(fd);
				free(path);
				free(tok);
				return -1;
			}
			close(fd);
			fprintf(stderr, "thaw serve: wrote a new control token to %s\n", path);
		}
		free(path);
	}
	/* The environment crosses into instances: the token must not. */
	unsetenv("THAW_TOKEN");
	while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' ' ||
		       tok[len - 1] == '\t'))
		tok[--len] = 0;
	if (len < 16) {
		snprintf(err, errlen, "the control token must be at least 16 characters");
		free(tok);
		return -1;
	}
	sha256(tok, len, s->token_hash);
	OPENSSL_cleanse(tok, len);
	free(tok);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{"data", required_argument, NULL, 'd'},
		{"port", required_argument, NULL, 'p'},
		{"ip", required_argument, NULL, 'i'},
		{"control", required_argument, NULL, 'c'},
		{"token-file", required_argument, NULL, 't'},
		{"route", required_argument, NULL, 'r'},
		{"path-routing", no_argument, NULL, 'P'},
		{"max-bundle-mb", required_argument, NULL, 'b'},
		{"max-bundle-files", required_argument, NULL, 'F'},
		HOST_LONG_OPTIONS,
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct serve sv; /* lives as long as the process */
	struct serve *s = &sv;
	struct host *h = &s->h;
	host_defaults(h);
	bundle_limits_default(&s->bl);
	const char *data = NULL, *ip = "127.0.0.1", *control = "127.0.0.1:8788", *token_file = NULL;
	uint64_t port = 8787, v;
	char err[1024];
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		int done = host_option(h, "thaw serve", c, optarg);
		if (done < 0)
			return 2;
		if (done)
			continue;
		switch (c) {
		case 'd':
			data = optarg;
			break;
		case 'p':
			if (host_opt_u64("thaw serve", "--port", optarg, 65535, &port) < 0)
				return 2;
			break;
		case 'i':
			ip = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'r':
			if (router_add_rule(&s->router, optarg, err, sizeof err) < 0) {
				fprintf(stderr, "thaw serve: %s\n", err);
				return 2;
			}
			break;
		case 'P':
			s->router.path_routing = 1;
			break;
		case 'b':
			if (host_opt_u64("thaw serve", "--max-bundle-mb", optarg, 64 * 1024, &v) < 0)
				return 2;
			if (v == 0) {
				fprintf(stderr, "thaw serve: --max-bundle-mb must be at least 1\n");
				return 2;
			}
			s->bl.max_compressed = v << 20;
			break;
		case 'F':
			if (host_opt_u64("thaw serve", "--max-bundle-files", optarg, 1000000, &v) < 0)
				return 2;
			if (v == 0) {
				fprintf(stderr, "thaw serve: --max-bundle-files must be at least 1\n");
				return 2;
			}
			s->bl.max_files = v;
			break;
		case 'v':
			thaw_log_level = LOG_DEBUG;
			break;
		case 'h':
			fputs(serve_usage, stdout);
			return 0;
		default:
			fputs(serve_usage, stderr);
			return 2;
		}
	}
	if (optind != argc || !data) {
		fprintf(stderr, "thaw serve: %s\n\n", data ? "unexpected arguments" : "--data DIR is required");
		fputs(serve_usage, stderr);
		return 2;
	}
	char cip[64];
	unsigned cport;
	{
		const char *colon = strrchr(control, ':');
		uint64_t p;
		size_t n = colon ? (size_t)(colon - control) : 0;
		if (!colon || n == 0 || n >= sizeof cip || parse_u64(colon + 1, 65535, &p) < 0) {
			fprintf(stderr, "thaw serve: --control expects ADDR:PORT, not '%s'\n", control);
			return 2;
		}
		const char *a = control;
		if (a[0] == '[' && colon[-1] == ']') {
			a++;
			n -= 2;
		}
		memcpy(cip, a, n);
		cip[n] = 0;
		cport = (unsigned)p;
	}
	snprintf(s->data_ip, sizeof s->data_ip, "%s", ip);

	s->st = store_open(data, err, sizeof err);
	if (!s->st) {
		fprintf(stderr, "thaw serve: %s\n", err);
		return 1;
	}
	if (load_token(s, token_file, err, sizeof err) < 0) {
		fprintf(stderr, "thaw serve: %s\n", err);
		return 1;
	}
	unsigned char rnd[24];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		fatal("getrandom: %s", strerror(errno));
	for (int i = 0; i < 16; i++)
		sprintf(s->probe_secret + 2 * i, "%02x", rnd[i]);
	memcpy(&s->rng, rnd + 16, 8);
	s->rng |= 1;
	memcpy(&h->rid_prefix, rnd + 8, 8);
	const char *sdk = getenv("THAW_SDK_DIR");
	h->sdk_dir = sdk && *sdk ? sdk : THAW_SDK_DIR;
	h->route = route;
	h->spares_target = 2;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	h->loop = loop_new();
	if (!h->loop)
		fatal("epoll: %s", strerror(errno));
	s->sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->sig.fn = on_signal;
	s->sig.arg = s;
	loop_add(h->loop, &s->sig, EPOLLIN);

	unsigned bound;
	if (front_start(h, ip, (unsigned)port, &bound, err, sizeof err) < 0) {
		fprintf(stderr, "thaw serve: %s\n", err);
		return 1;
	}
	s->data_port = bound;
	unsigned cbound;
	s->ctl = ctl_start(s, h->loop, cip, cport, &cbound, err, sizeof err);
	if (!s->ctl) {
		fprintf(stderr, "thaw serve: control API: %s\n", err);
		return 1;
	}
#ifdef THAW_SANITIZE
	fprintf(stderr, "thaw serve: snapshots are off in this sanitizer build: instances boot\n");
#endif

	/* Every deployed worker serves again, from its stored images. */
	pool_fill_spares(h);
	json_t *names = store_workers_json(s->st);
	size_t i;
	json_t *n;
	unsigned nworkers = 0;
	json_array_foreach(names, i, n) {
		struct sworker *w = worker_get(s, json_string_value(n));
		if (!w->has_dep)
			continue;
		if (load_deployment(s, w, err, sizeof err) < 0)
			log_error("%s: cannot load its deployment: %s", w->name, err);
		else
			nworkers++;
	}
	json_decref(names);
	fprintf(stderr, "thaw serve: %u worker%s deployed in %s\n", nworkers, nworkers == 1 ? "" : "s",
		store_dir(s->st));
	int v6 = strchr(ip, ':') != NULL, c6 = strchr(cip, ':') != NULL;
	printf("Control API on http://%s%s%s:%u\n", c6 ? "[" : "", cip, c6 ? "]" : "", cbound);
	printf("Ready on http://%s%s%s:%u\n", v6 ? "[" : "", ip, v6 ? "]" : "", bound);
	fflush(stdout);

	s->running = 1;
	int rc = loop_run(h->loop) < 0 ? 1 : 0;

	fprintf(stderr, "thaw serve: stopping\n");
	child_kill_all(h);
	ctl_stop(s->ctl);
	front_stop(h);
	pool_shutdown(h);
	store_close(s->st);
	loop_free(h->loop);
	return rc;
}
