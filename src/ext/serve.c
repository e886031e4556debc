/*
 * `thaw serve`: many deployed workers on one host (serve.h). This file: the
 * command (options, token, start and stop), the workers and versions in
 * memory, the glue between the router's pure rules and the store, and the
 * workers' log lines (the host's log and `thaw tail`).
 */
#include "ext/serve.h"
#include "ext/netguard.h"
#include "ext/ext.h"
#include "ext/router.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "project/project.h"
#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "host/executor.h"
#include "snap/snap.h"

extern char **environ;

/* --- small things --- */

static void sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned len = 32;
	if (!EVP_Digest(p, n, out, &len, EVP_sha256(), NULL))
		fatal("SHA-256 failed");
}

uint64_t serve_rng(struct serve *s)
{
	/* xorshift64*: request routing needs spread, not secrecy. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 0x2545F4914F6CDD1Dull;
}

static int token_ok(void *arg, const char *authorization)
{
	struct serve *s = arg;
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

struct sworker *serve_worker_find(struct serve *s, const char *name)
{
	for (struct sworker *w = s->workers; w; w = w->next)
		if (!strcmp(w->name, name))
			return w;
	return NULL;
}

struct sworker *serve_worker_get(struct serve *s, const char *name)
{
	struct sworker *w = serve_worker_find(s, name);
	if (w)
		return w;
	w = xcalloc(1, sizeof *w);
	snprintf(w->name, sizeof w->name, "%s", name);
	w->has_dep = store_deployment_current(s->st, name, &w->dep) == 0;
	w->next = s->workers;
	s->workers = w;
	return w;
}

struct sversion *serve_version_loaded(struct sworker *w, const char *id)
{
	for (struct sversion *sv = w->versions; sv; sv = sv->next)
		if (!strcmp(sv->v.id, id))
			return sv;
	return NULL;
}

static const struct app_hooks serve_hooks;

/* The version's project directory: DIR/versions/ID. */
char *serve_version_dir(struct serve *s, const char *id)
{
	return xasprintf("%s/versions/%s", store_dir(s->st), id);
}

/* The project of a stored version, as recorded when its bundle was
 * unpacked (versions stored by an older thaw get theirs recorded at start). */
static struct project *version_project(struct serve *s, const struct version *v, char *err,
				       size_t errlen)
{
	json_t *j = store_version_project(s->st, v->id);
	if (!j) {
		snprintf(err, errlen, "version %s has no recorded configuration: deploy it again",
			 v->id);
		return NULL;
	}
	char *dir = serve_version_dir(s, v->id);
	struct project *p = project_from_json(j, dir, err, errlen);
	json_decref(j);
	free(dir);
	return p;
}

/* Give a stored version a pool. NULL with err when it cannot be loaded. */
struct sversion *serve_version_load(struct serve *s, struct sworker *w, const struct version *v,
				     char *err, size_t errlen)
{
	struct sversion *sv = serve_version_loaded(w, v->id);
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
	a->version_id = sv->v.id;
	/* The worker's state (KV, D1, ...) is the worker's, not the version's:
	 * a deploy, a rollout and a rollback keep it. */
	a->state_dir = xasprintf("%s/state/%s", store_dir(s->st), w->name);
	/* The version's own assets, from its unpacked bundle: a rollout
	 * switches them with the code. */
	char berr[512];
	if (bindings_setup(a, berr, sizeof berr) < 0)
		log_warn("%s: its static assets are not served: %s", sv->label, berr);
	/* Its secrets, as they were when it was made: given to serving
	 * instances only (never to its snapshot's builder). */
	a->secrets = store_version_secrets(s->st, v->id);
	sv->next = w->versions;
	w->versions = sv;
	density_version_loaded(sv);
	return sv;
}

/* A loaded, ready version starts serving: from its stored image when it
 * still fits, else booting while a new image is built. */
void serve_version_start(struct serve *s, struct sversion *sv)
{
	struct app *a = &sv->app;
	a->draining = 0;
	if (a->snap_state != SNAPSHOT_NONE || a->builder || a->base_waiting || !a->snapshots)
		return;
	if (sv->v.snapshot[0]) {
		char *path = blob_path(s->st, sv->v.snapshot);
		char why[512];
		/* Checked before it is first used, so an upgraded host rebuilds
		 * instead of having every first restore refused. */
		if (snap_check_file(path, why, sizeof why) == 0) {
			density_image_loaded(sv, path);
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
			serve_version_start(s, sv);
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
		struct sversion *sv = serve_version_load(s, w, &v, err, errlen);
		version_clear(&v);
		if (!sv)
			return -1;
		serve_version_start(s, sv);
	}
	return 0;
}

int serve_deploy_now(struct serve *s, struct sworker *w, struct deployment *d, char *err,
		     size_t errlen)
{
	if (store_deploy(s->st, w->name, d, err, errlen) < 0)
		return -1;
	apply_deployment(s, w, d);
	char why[512];
	if (load_deployment(s, w, why, sizeof why) < 0)
		log_warn("%s: %s", w->name, why);
	return 0;
}

/* --- the router --- */

/* The worker named name, known to this run or to the store (unknown names
 * make nothing: a Host header must not grow our memory); NULL if neither. */
static struct sworker *worker_known(struct serve *s, const char *name)
{
	if (!project_name_valid(name))
		return NULL;
	struct sworker *w = serve_worker_find(s, name);
	if (!w && store_worker_exists(s->st, name))
		w = serve_worker_get(s, name);
	return w;
}

/* The version of w's deployment that takes a request with version key key
 * and version override ov (NULL: none of either), loaded; NULL with err.
 * An override that names no version of the deployment is not applied. */
static struct sversion *deployed_version(struct serve *s, struct sworker *w, const char *key,
					 const char *ov, char *err, size_t errlen)
{
	const struct deployment *d = &w->dep;
	struct sversion *loaded[DEPLOY_MAX_VERSIONS] = {NULL};
	int numbers[DEPLOY_MAX_VERSIONS] = {0};
	for (int i = 0; i < d->n; i++) {
		loaded[i] = serve_version_loaded(w, d->version[i]);
		if (!loaded[i] && (load_deployment(s, w, err, errlen) < 0 ||
				   !(loaded[i] = serve_version_loaded(w, d->version[i])))) {
			if (!err[0])
				snprintf(err, errlen, "version %s cannot be loaded", d->version[i]);
			return NULL;
		}
		numbers[i] = loaded[i]->v.number;
	}
	int pick = router_override(d, numbers, ov);
	if (pick < 0)
		pick = router_version(d, w->name, key,
				      d->n > 1 && !(key && *key) ? serve_rng(s) : 0);
	return loaded[pick];
}

/* Service bindings (host.h: service_app): the worker's live deployment,
 * split like a request without a version key. */
static struct app *service_app(struct host *h, const char *service, char *why, size_t whylen)
{
	struct serve *s = (struct serve *)h;
	struct sworker *w = worker_known(s, service);
	if (!w || !w->has_dep) {
		snprintf(why, whylen, "no worker named '%s' is deployed on this host", service);
		return NULL;
	}
	char err[512] = "";
	struct sversion *sv = deployed_version(s, w, NULL, NULL, err, sizeof err);
	if (!sv) {
		snprintf(why, whylen, "the worker cannot be loaded: %s", err);
		return NULL;
	}
	return &sv->app;
}

static struct app *route(struct host *h, struct hreq *r, unsigned *status, char *msg, size_t msglen)
{
	struct serve *s = (struct serve *)h;
	char name[64];
	const char *probe = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-probe");
	int is_probe = probe && strlen(probe) == 32 && CRYPTO_memcmp(probe, s->probe_secret, 32) == 0;
	r->worker_only = is_probe; /* the deploy check is for an instance, not the assets */
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
	struct sworker *w = worker_known(s, name);
	const char *ov = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-version-override");
	if (!w || (!w->has_dep && !is_probe)) {
		*status = 404;
		snprintf(msg, msglen, "No worker named '%.63s' is deployed here.\n", name);
		return NULL;
	}
	if (is_probe) {
		/* The deploy check's own path: the version being deployed, which
		 * no deployment holds yet (any state: it is still building). */
		struct version v = {0};
		int rc = ov && *ov ? store_version_find(s->st, name, ov, &v) : STORE_FIND_NONE;
		if (rc < 0) {
			*status = 400;
			snprintf(msg, msglen, "the deploy check names no version of '%s'.\n", name);
			version_clear(&v);
			return NULL;
		}
		char err[512];
		struct sversion *sv = serve_version_load(s, w, &v, err, sizeof err);
		version_clear(&v);
		if (!sv) {
			*status = 500;
			snprintf(msg, msglen, "The version cannot be loaded: %s\n", err);
			return NULL;
		}
		return &sv->app;
	}
	/* Anyone can send an override: it reaches the deployment's versions
	 * only (router.h), else the request is split like any other. */
	const char *key = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "thaw-version-key");
	char err[512] = "";
	struct sversion *sv = deployed_version(s, w, key, ov, err, sizeof err);
	if (!sv) {
		*status = 500;
		snprintf(msg, msglen, "The worker cannot be loaded: %s\n", err);
		return NULL;
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
	json_t *line = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s%}", "ts", (json_int_t)wall_ms(),
				 "worker", sv->w->name, "version", sv->v.id, "request_id",
				 rid[0] ? rid : NULL, "stream", channel == 1 ? "stdout" : "stderr",
				 "message", text, len);
	if (!line) /* not UTF-8 */
		line = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s}", "ts", (json_int_t)wall_ms(),
				 "worker", sv->w->name, "version", sv->v.id, "request_id",
				 rid[0] ? rid : NULL, "stream", channel == 1 ? "stdout" : "stderr",
				 "message", "(a line that is not UTF-8)");
	for (struct tail_sub *t = sv->w->tails; t; t = t->next)
		ctl_stream_line(t->cs, json_incref(line));
	json_decref(line);
}

static unsigned tail(void *arg, const char *worker, struct ctl_stream *cs)
{
	struct serve *s = arg;
	if (!store_worker_exists(s->st, worker))
		return 404;
	struct sworker *w = serve_worker_get(s, worker);
	struct tail_sub *t = xcalloc(1, sizeof *t);
	t->cs = cs;
	t->next = w->tails;
	w->tails = t;
	log_info("tail of %s opened", worker);
	return 0;
}

/* The client of cs went away: forget it. */
static void stream_gone(void *arg, struct ctl_stream *cs)
{
	struct serve *s = arg;
	deploy_stream_gone(s, cs);
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

static void deploy(void *arg, const char *worker, const char *hex, const char *upload,
		   uint64_t bytes, const char *message, double percentage, const char *env,
		   struct ctl_stream *cs)
{
	deploy_start(arg, worker, hex, upload, bytes, message, percentage, env, cs);
}

static unsigned api(void *arg, const char *method, const char *worker, const char *what,
		    json_t *body, json_t **out)
{
	return api_answer(arg, method, worker, what, body, out);
}

static void metrics(void *arg, struct buf *b)
{
	density_metrics(arg, b);
}

/* Versions that left the deployment, whose last instance is gone, are freed:
 * a long-running host does not grow with every deploy. A rollout or rollback
 * to one later loads it again from the store; a deleted one's files go now. */
static void version_free(struct sversion *sv)
{
	struct serve *s = sv->s;
	log_info("%s: unloaded (not deployed, no instance left)", sv->label);
	child_cancel(sv->adopter);
	pool_app_dispose(&sv->app);
	json_decref(sv->app.secrets);
	free(sv->app.state_dir);
	free(sv->adopt_tmp);
	struct version v = sv->v; /* takes its strings */
	int deleted = sv->deleted;
	free(sv);
	if (deleted)
		gc_version_unloaded(s, &v); /* nothing uses its files now */
	version_clear(&v);
}

static void sweep(struct loop *l, struct loop_timer *t)
{
	struct serve *s = t->arg;
	for (struct sworker *w = s->workers; w; w = w->next) {
		for (struct sversion **p = &w->versions; *p;) {
			struct sversion *sv = *p;
			int deployed = 0;
			for (int i = 0; w->has_dep && i < w->dep.n; i++)
				deployed |= !strcmp(w->dep.version[i], sv->v.id);
			if (!deployed && sv->app.draining && !sv->job && !sv->adopter &&
			    pool_unused(&sv->app)) {
				*p = sv->next;
				version_free(sv);
			} else {
				p = &sv->next;
			}
		}
	}
}

void serve_sweep_soon(struct serve *s)
{
	loop_timer_arm(s->h.loop, &s->sweep, 0);
}

static void on_unused(struct app *a)
{
	struct sversion *sv = a->owner;
	serve_sweep_soon(sv->s);
}

static const struct app_hooks serve_hooks = {
	.unused = on_unused,
	.adopt_snapshot = deploy_adopt_snapshot,
	.event = deploy_on_event,
	.output = on_output,
};

/* The store made changes durable: the answers that waited for them go out,
 * and the files that waited for them go. */
static void store_synced(void *arg)
{
	struct serve *s = arg;
	ctl_store_synced(s->ctl);
	gc_synced(s);
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
	"  --max-header-bytes N     largest request head (default 32768); 431 "
	"above\n" HOST_CAPACITY_USAGE
	"  --concurrency N          requests in flight per instance (default 64)\n"
	"  --max-bundle-mb N        largest bundle accepted (default 256)\n"
	"  --max-bundle-files N     most files in a bundle (default 5000)\n"
	"  --max-snapshot-mb N      refuse snapshots larger than this (default 1024)\n"
	"  --no-base-image          build every snapshot from a fresh interpreter, not on the\n"
	"                           host's base image (docs/snapshots.md, \"The base image\")\n"
	"  --keep-versions N|all    after each deploy, delete a worker's versions beyond its\n"
	"                           newest N, except those of its current deployment and of\n"
	"                           the one before (default 10)\n"
	"  --memory-sample-seconds N\n"
	"                           read the PSS of every serving instance every N seconds\n"
	"                           (default 10; 0: never), for GET /v1/density and /metrics\n"
	"  --system-site-packages   let workers import the system's Python packages\n"
	"  --server-timing          add Server-Timing to every response: how its instance\n"
	"                           started (warm, snapshot, boot) and the handler's time\n"
	"  --trust-proxy ADDR[/N]   believe X-Forwarded-For and X-Forwarded-Proto from this\n"
	"                           proxy address or network (repeatable)\n" HOST_SANDBOX_USAGE
		HOST_LIMITS_HELP "  -v, --verbose            debug logging\n"
	"  -h, --help               this help\n";

/* Wipe the value of every NAME=VALUE entry of the environment block the
 * kernel gave this process, in place: /proc/PID/environ reads that block
 * (mm->env_start..env_end), not `environ`, so unsetenv alone leaves the
 * value there for any process of the same user to read. The entries stay
 * (NAME= and NUL bytes); `environ` still points into the block, so this
 * comes before unsetenv drops the pointers. 0, or -1 when the block was
 * not found (then the entries `environ` points at are wiped instead). */
static int environ_block_wipe(const char *name)
{
	size_t nlen = strlen(name);
	unsigned long long start = 0, end = 0;
	size_t len = 0;
	char *stat = read_file("/proc/self/stat", 4096, &len);
	const char *p = stat ? memrchr(stat, ')', len) : NULL;
	if (p) {
		/* Fields after the name, from the 3rd: env_start is the 50th,
		 * env_end the 51st (proc(5)). */
		int field = 2;
		for (p++; *p && field < 50; p++)
			if (*p == ' ')
				field++;
		if (field != 50 || sscanf(p, "%llu %llu", &start, &end) != 2)
			start = end = 0;
	}
	free(stat);
	if (!start || end <= start || end - start > (64u << 20)) {
		for (char **e = environ; e && *e; e++)
			if (!strncmp(*e, name, nlen) && (*e)[nlen] == '=')
				explicit_bzero(*e + nlen + 1, strlen(*e + nlen + 1));
		return -1;
	}
	char *block = (char *)(uintptr_t)start, *stop = (char *)(uintptr_t)end;
	for (char *e = block; e < stop;) {
		size_t n = strnlen(e, (size_t)(stop - e));
		if (n > nlen && !strncmp(e, name, nlen) && e[nlen] == '=')
			explicit_bzero(e + nlen + 1, n - nlen - 1);
		e += n + 1;
	}
	return 0;
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
	/* Neither instances (spawned with `environ`) nor anyone reading
	 * /proc/PID/environ may see the token: wipe its bytes where the kernel
	 * put them, then drop the entry. Every instance is spawned after this,
	 * so all have the same environment (a restore needs its builder's). */
	if (environ_block_wipe("THAW_TOKEN") < 0)
		log_warn("cannot find this process's environment block: THAW_TOKEN may still be "
			 "readable in /proc/%d/environ (use --token-file)", (int)getpid());
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
		{"keep-versions", required_argument, NULL, 'K'},
		{"memory-sample-seconds", required_argument, NULL, 'm'},
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
	s->keep_versions = SERVE_KEEP_VERSIONS;
	uint64_t memory_sample_s = SERVE_MEMORY_SAMPLE_S;
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
		case 'K':
			if (!strcmp(optarg, "all")) {
				s->keep_versions = -1;
			} else if (host_opt_u64("thaw serve", "--keep-versions", optarg, 1000000,
						&v) < 0) {
				return 2;
			} else {
				s->keep_versions = (int)v;
			}
			break;
		case 'm':
			if (host_opt_u64("thaw serve", "--memory-sample-seconds", optarg, 86400,
					 &memory_sample_s) < 0)
				return 2;
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
	/* Queues are the host's, shared by its workers (a producer and a
	 * consumer are often two workers): beside the workers' state. */
	h->queue_dir = xasprintf("%s/state/_queues", store_dir(s->st));
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
	h->service_app = service_app;
	thaw_ext_bindings_init();
	s->sweep.fn = sweep;
	s->sweep.arg = s;
	h->spares_target = 2;

	if (host_loop_start(h, err, sizeof err) < 0)
		fatal("%s", err);
	if (h->sandbox) {
		/* What an instance may be shown parts of: its version, its image
		 * (a blob, or a builder's output under tmp/), the SDK. */
		char *versions = xasprintf("%s/versions", store_dir(s->st));
		char *blobs = xasprintf("%s/blobs", store_dir(s->st));
		char *tmp = xasprintf("%s/tmp", store_dir(s->st));
		/* Builders' and recorders' own directories: out of tmp/, which
		 * holds nothing but unfinished writes. Left by a crash: gone. */
		h->sandbox_out_base = xasprintf("%s/sandbox", store_dir(s->st));
		remove_tree(h->sandbox_out_base);
		if (mkdir_p(h->sandbox_out_base, 0700) < 0)
			fatal("cannot make %s: %s", h->sandbox_out_base, strerror(errno));
		const char *roots[] = {h->sdk_dir, versions, blobs, tmp, h->sandbox_out_base};
		int rc = host_sandbox_roots(h, roots, 5, err, sizeof err);
		free(versions);
		free(blobs);
		free(tmp);
		if (rc < 0)
			fatal("%s", err);
	}

	unsigned bound;
	if (front_start(h, ip, (unsigned)port, &bound, err, sizeof err) < 0) {
		fprintf(stderr, "thaw serve: %s\n", err);
		return 1;
	}
	s->data_port = bound;
	unsigned cbound;
	s->sink = (struct ctl_sink){
		.arg = s,
		.store = s->st,
		.limits = &s->bl,
		.authorized = token_ok,
		.deploy = deploy,
		.api = api,
		.state = state_api_request,
		.tail = tail,
		.stream_gone = stream_gone,
		.metrics = metrics,
	};
	s->ctl = ctl_start(&s->sink, h->loop, cip, cport, &cbound, err, sizeof err);
	if (!s->ctl) {
		fprintf(stderr, "thaw serve: control API: %s\n", err);
		return 1;
	}
	int guarded = 0;
	if (h->sandbox) {
		/* Instances never reach the control API (docs/security.md). */
		if (netguard_start(h->sandbox_uid_base + 1, h->sandbox_uid_base + SANDBOX_UID_SLOTS,
				   cbound, err, sizeof err) == 0)
			guarded = 1;
		else
			fprintf(stderr,
				"thaw serve: warning: instances can connect to the control API's port "
				"(%s); its token still guards it\n",
				err);
	}
	/* From here a change's fsync is the store's thread's, not the loop's. */
	if (store_sync_start(s->st, h->loop, store_synced, s, err, sizeof err) < 0) {
		fprintf(stderr, "thaw serve: %s\n", err);
		return 1;
	}
#ifdef THAW_SANITIZE
	fprintf(stderr, "thaw serve: snapshots are off in this sanitizer build: instances boot\n");
#endif

	/* Versions stored by a thaw before the project was kept in the store:
	 * read each one's project now, once, before the loop runs. */
	json_t *old = store_versions_without_project(s->st);
	size_t oi;
	json_t *oid;
	json_array_foreach(old, oi, oid) {
		char *dir = serve_version_dir(s, json_string_value(oid));
		struct project *p = project_load(dir, err, sizeof err);
		if (p) {
			json_t *pj = project_to_json(p);
			store_version_set_project(s->st, json_string_value(oid), pj);
			json_decref(pj);
			project_free(p);
		} else {
			log_warn("version %s: its configuration cannot be read: %s",
				 json_string_value(oid), err);
		}
		free(dir);
	}
	json_decref(old);

	/* Files a crash left unnamed, versions beyond --keep-versions: before
	 * any version is loaded. */
	gc_start(s);
	/* Before any version: their builds start on it. */
	serve_base_start(s, !h->no_base);

	/* Every deployed worker serves again, from its stored images. */
	pool_fill_spares(h);
	json_t *names = store_workers_json(s->st);
	size_t i;
	json_t *n;
	unsigned nworkers = 0;
	json_array_foreach(names, i, n) {
		struct sworker *w = serve_worker_get(s, json_string_value(n));
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
	serve_crons_start(s);
	/* The instances' memory, for the density figures (density.c). */
	host_memory_start(h, (double)memory_sample_s * 1000);
	int v6 = strchr(ip, ':') != NULL, c6 = strchr(cip, ':') != NULL;
	printf("Control API on http://%s%s%s:%u\n", c6 ? "[" : "", cip, c6 ? "]" : "", cbound);
	printf("Ready on http://%s%s%s:%u\n", v6 ? "[" : "", ip, v6 ? "]" : "", bound);
	fflush(stdout);

	int rc = loop_run(h->loop) < 0 ? 1 : 0;

	fprintf(stderr, "thaw serve: stopping\n");
	if (guarded)
		netguard_stop();
	child_kill_all(h);
	store_sync_stop(s->st); /* before the answers it holds are let go */
	gc_stop(s);
	ctl_stop(s->ctl);
	front_stop(h);
	pool_shutdown(h);
	executor_stop(h);
	store_close(s->st);
	free(h->queue_dir);
	loop_free(h->loop);
	serve_base_stop(s); /* after its builder, freed with the loop */
	host_sandbox_free(h);
	return rc;
}
