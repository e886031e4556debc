/*
 * thaw serve's deploy pipeline (serve.h has the stages): a job per upload,
 * the unpacking child, recording the version, its snapshot build, the
 * adopting child, the health probe through our own data plane, and going
 * live. Also the pool hooks of every version: a rebuilt image (the stored
 * one no longer fits this host) is adopted the same way.
 *
 * Nothing here blocks: the bundle and the image are handled by children,
 * the probe is a non-blocking socket in the loop, the store's writes are
 * short transactions.
 */
#include "ext/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "project/project.h"
#include "snap/snap.h"

#define PROBE_TIMEOUT_MS 60000
#define DEPLOY_TIMEOUT_MS (10 * 60 * 1000)
#define PROBE_MAX_BYTES (64 * 1024)
/* The unpacker's answer holds the project's configuration (vars and all). */
#define UNPACK_MAX_ANSWER (PROJECT_MAX_JSON_BYTES + 4096)
#define ADOPT_MAX_ANSWER 4096

static void job_fail(struct deploy_job *j, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

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

/* Remove a tree in DIR/tmp (an unpacked bundle) in a child: deleting a big
 * tree is work the loop does not do. If the child cannot start, DIR/tmp is
 * emptied at the next start anyway. (Blobs go through gc.c.) */
static void remove_later(struct serve *s, const char *a)
{
	char *argv[] = {"/bin/rm", "-rf", "--", (char *)a, NULL};
	char err[256];
	if (!child_start(&s->h, argv, 0, NULL, NULL, err, sizeof err))
		log_warn("cannot remove %s: %s", a, err);
}

struct remove_after {
	struct serve *s;
	char dir[4096];
};

/* The unpacker was killed and is gone: now its directory can go. */
static void remove_after_exit(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct remove_after *r = arg;
	remove_later(r->s, r->dir);
	free(r);
}

static void job_free(struct deploy_job *j)
{
	struct serve *s = j->s;
	if (j->unpacker && j->unpack_dir[0]) {
		struct remove_after *r = xcalloc(1, sizeof *r);
		r->s = s;
		snprintf(r->dir, sizeof r->dir, "%s", j->unpack_dir);
		child_kill(j->unpacker, remove_after_exit, r);
		j->unpack_dir[0] = 0;
	} else {
		child_cancel(j->unpacker);
	}
	j->unpacker = NULL;
	for (struct deploy_job **p = &s->jobs; *p; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	if (j->sv) {
		j->sv->job = NULL;
		serve_sweep_soon(s); /* a failed version may be unused already */
	}
	loop_timer_cancel(s->h.loop, &j->timer);
	if (j->probe.fd >= 0) {
		loop_del(s->h.loop, &j->probe);
		close(j->probe.fd);
	}
	if (j->unpack_dir[0])
		remove_later(s, j->unpack_dir);
	if (j->upload)
		unlink(j->upload); /* in DIR/tmp, so the next start would remove it too */
	free(j->upload);
	buf_free(&j->probe_in);
	buf_free(&j->probe_out);
	free(j->message);
	if (!j->sv) {
		/* Refused before a version named its bundle: the blob goes unless
		 * a version names it (the same bundle deployed before). */
		gc_release_blob(s, j->hex);
	} else {
		gc_keep(s, j->worker);
	}
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
		/* Nothing of it serves: close what it started, and drop an image
		 * still being adopted (nothing will record it). */
		j->sv->app.build_failed = 1;
		if (j->sv->adopter) {
			child_cancel(j->sv->adopter);
			j->sv->adopter = NULL;
			snap_remove(j->sv->adopt_tmp);
			free(j->sv->adopt_tmp);
			j->sv->adopt_tmp = NULL;
			pool_snapshot_adopted(&j->sv->app, NULL, "the deploy failed");
		}
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
		job_fail(j, "the deployment did not finish in %d minutes",
			 DEPLOY_TIMEOUT_MS / 60000);
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
	sv->job = NULL;
	if (serve_deploy_now(s, w, &d, err, sizeof err) < 0) {
		sv->job = j;
		deployment_clear(&d);
		job_fail(j, "cannot record the deployment: %s", err);
		return -1;
	}
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
		ssize_t n =
			send(w->fd, buf_head(&j->probe_out), buf_used(&j->probe_out), MSG_NOSIGNAL);
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
	/* A worker of cron triggers or queues only answers every request 500,
	 * marked by the runtime: it loaded and answered, which is what the
	 * check is for. */
	static const char mark[] = "\r\nthaw-no-fetch-handler: 1\r\n";
	const char *head_end = memmem(text, len, "\r\n\r\n", 4);
	if (status == 500 && head_end &&
	    memmem(text, (size_t)(head_end - text) + 2, mark, sizeof mark - 1))
		status = 200;
	if (status >= 500 && j->sv->app.load_error) {
		/* A booted instance (no snapshots: a sanitizer build) could not load
		 * the worker: its error, not the generic 500 page, says why. */
		job_fail(j, "%.16000s", j->sv->app.load_error);
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

struct child *adopt_start(struct serve *s, const char *tmp, child_done_fn done, void *arg,
			  char *err, size_t errlen)
{
	char *argv[] = {(char *)self_exe(), "adopt-snapshot", (char *)tmp, (char *)store_dir(s->st),
			NULL};
	struct child *c = child_start(&s->h, argv, ADOPT_MAX_ANSWER, done, arg, err, errlen);
	if (!c)
		unlink(tmp);
	return c;
}

char *adopt_answer(struct serve *s, const char *tmp, int status, const uint8_t *out, size_t len,
		   int overflow, char hex[STORE_SHA_HEX + 1], uint64_t *bytes,
		   struct image_pages *pages, char *why, size_t whylen)
{
	hex[0] = 0;
	*bytes = 0;
	json_t *res = child_answer(status, out, len, overflow, "image check", why, whylen);
	const char *h = NULL, *base = NULL;
	json_int_t n = 0, own = -1, from_base = -1;
	if (res)
		json_unpack(res, "{s?s, s?I, s?I, s?I, s?s}", "sha256", &h, "bytes", &n,
			    "own_pages", &own, "base_pages", &from_base, "base", &base);
	if (pages) {
		pages->own = own >= 0 ? own : -1;
		pages->base = from_base >= 0 ? from_base : -1;
		pages->base_hex[0] = 0;
		if (base)
			density_blob_of(s, base, pages->base_hex);
	}
	char *path = res && h ? blob_path(s->st, h) : NULL;
	if (!path) {
		if (res)
			snprintf(why, whylen, "the image check answered no valid SHA-256");
	} else if (blob_install_file(s->st, tmp, h, (uint64_t)n, why, whylen) < 0) {
		free(path);
		path = NULL;
	} else {
		snprintf(hex, STORE_SHA_HEX + 1, "%s", h);
		*bytes = (uint64_t)n;
	}
	json_decref(res);
	if (!path)
		snap_remove(tmp);
	return path;
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
	char why[1100], hex[STORE_SHA_HEX + 1];
	uint64_t bytes;
	struct image_pages pages;
	char *path = adopt_answer(s, tmp, status, out, len, overflow, hex, &bytes, &pages, why,
				  sizeof why);
	char unused[STORE_SHA_HEX + 1] = ""; /* a blob this leaves unnamed */
	if (!path) {
		/* refused: why says so */
	} else if (store_version_set_snapshot(s->st, sv->v.id, hex, (uint64_t)bytes) < 0) {
		snprintf(why, sizeof why, "cannot record the snapshot in the store");
		snprintf(unused, sizeof unused, "%s", hex); /* unless a row names it */
		free(path);
		path = NULL;
	} else {
		/* The image it replaces goes, unless another version names it
		 * (restored instances keep their mappings). */
		if (sv->v.snapshot[0] && strcmp(sv->v.snapshot, hex) != 0)
			snprintf(unused, sizeof unused, "%s", sv->v.snapshot);
		snprintf(sv->v.snapshot, sizeof sv->v.snapshot, "%s", hex);
		sv->v.snapshot_bytes = (uint64_t)bytes;
		density_image_adopted(sv, &pages);
	}
	free(tmp);
	pool_snapshot_adopted(&sv->app, path, path ? NULL : why);
	if (unused[0])
		gc_release_blob(s, unused);
}

void deploy_adopt_snapshot(struct app *a, const char *tmp)
{
	struct sversion *sv = a->owner;
	struct serve *s = sv->s;
	char err[512];
	child_cancel(sv->adopter);
	free(sv->adopt_tmp);
	sv->adopt_tmp = xstrdup(tmp);
	sv->adopter = adopt_start(s, tmp, adopt_done, sv, err, sizeof err);
	if (!sv->adopter) {
		free(sv->adopt_tmp);
		sv->adopt_tmp = NULL;
		pool_snapshot_adopted(a, NULL, err);
	}
}

void deploy_on_event(struct app *a, enum app_event ev, const char *detail, double num)
{
	struct sversion *sv = a->owner;
	struct deploy_job *j = sv->job;
	switch (ev) {
	case APP_SNAPSHOT_BUILT:
		if (j && j->stage == JOB_BUILD) {
			job_line(j,
				 json_pack("{s:s, s:I, s:f}", "stage", "built", "snapshot_bytes",
					   (json_int_t)num, "ms", ns_to_ms(now_ns() - j->t_build)));
			probe_start(j);
		}
		break;
	case APP_SNAPSHOT_FAILED:
		/* A one-line reason (a disk full: "... No space left on device")
		 * stays on the first line, the one `thaw versions list` shows; a
		 * traceback starts on the next. */
		if (j)
			job_fail(j, "the snapshot build failed:%s%s",
				 detail && strchr(detail, '\n') ? "\n" : " ", detail ? detail : "");
		else
			log_warn("%s: rebuilding its snapshot failed: %s", sv->label, detail);
		break;
	case APP_RESTORE_REFUSED:
		if (j) {
			job_fail(j, "the new snapshot was refused at restore: %s", detail);
		} else if (sv->v.snapshot[0] &&
			   store_version_set_snapshot(sv->s->st, sv->v.id, "", 0) == 0) {
			/* The pool dropped it (the store's file: not removed there). */
			char old[STORE_SHA_HEX + 1];
			snprintf(old, sizeof old, "%s", sv->v.snapshot);
			sv->v.snapshot[0] = 0;
			sv->v.snapshot_bytes = 0;
			gc_release_blob(sv->s, old);
		}
		break;
	case APP_RESTORED:
		if (j) {
			j->restored = 1;
			j->restore_ms = num;
		}
		break;
	case APP_WS_RECORDED:
		density_ws_recorded(sv, detail, num);
		break;
	}
}

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
		job_refuse(j, 422,
			   perr ? perr
			   : pj ? err
				: "the bundle's configuration was not read");
		job_free(j);
		return;
	}
	/* Limits over the host's caps: refused here, before anything is stored. */
	int over = host_limits_check(&s->h, cfg, err, sizeof err) < 0;
	project_free(cfg);
	if (over) {
		job_refuse(j, 422, err);
		job_free(j);
		return;
	}
	struct version v = {0};
	if (store_version_add(s->st, j->worker, j->hex, j->message, &v, err, sizeof err) < 0) {
		job_refuse(j, 500, err);
		job_free(j);
		return;
	}
	char *dir = serve_version_dir(s, v.id);
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
	if (store_version_set_project(s->st, v.id, pj) < 0) {
		snprintf(err, sizeof err, "cannot record the version's configuration in the store");
		store_version_set_state(s->st, v.id, "failed", err);
		job_refuse(j, 500, err);
		version_clear(&v);
		job_free(j);
		return;
	}
	store_versions_dir_sync(s->st);
	/* Its disk figures: the bundle as stored and its unpacked files. */
	store_version_set_files(s->st, v.id, (int64_t)j->upload_bytes, (int64_t)bytes);
	v.bundle_bytes = (int64_t)j->upload_bytes;
	v.files_bytes = (int64_t)bytes;
	struct sworker *w = serve_worker_get(s, j->worker);
	json_t *line = json_pack("{s:s, s:s, s:i, s:s, s:I, s:I}", "stage", "stored", "version",
				 v.id, "number", v.number, "sha256", j->hex, "files", files,
				 "bytes", bytes);
	job_line(j, line);
	struct sversion *sv = serve_version_load(s, w, &v, err, sizeof err);
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
	if (!sv->app.builder && !sv->app.base_waiting && j->stage == JOB_BUILD)
		job_fail(j, "cannot start the snapshot build");
}

static void unpack_done(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct deploy_job *j = arg;
	j->unpacker = NULL;
	char why[1100], msg[1200];
	json_t *res = child_answer(status, out, len, overflow, "unpacker", why, sizeof why);
	if (!res) {
		/* The host's disk was full: 507, and not the bundle's fault. */
		int no_space = 0;
		json_t *ans = NULL;
		if (!overflow)
			ans = json_loadb((const char *)out, len, JSON_DISABLE_EOF_CHECK, NULL);
		if (ans)
			json_unpack(ans, "{s?b}", "no_space", &no_space);
		json_decref(ans);
		snprintf(msg, sizeof msg, "%s: %s",
			 no_space ? "cannot unpack the bundle" : "bundle refused", why);
		log_warn("deploy of %s: %s", j->worker, msg);
		/* A refused bundle is not kept (it never became a blob). */
		job_refuse(j, no_space ? 507 : 422, msg);
		job_free(j);
		return;
	}
	/* The child fsynced it: it becomes a blob before any row names it. */
	if (j->upload &&
	    blob_install_file(j->s->st, j->upload, j->hex, j->upload_bytes, why, sizeof why) < 0) {
		log_warn("deploy of %s: %s", j->worker, why);
		job_refuse(j, 500, why);
		json_decref(res);
		job_free(j);
		return;
	}
	free(j->upload);
	j->upload = NULL;
	job_unpacked(j, res);
	json_decref(res);
}

static struct deploy_job *job_new(struct serve *s, const char *worker, const char *hex,
				  const char *message, double percentage, const char *env,
				  struct ctl_stream *cs)
{
	struct deploy_job *j = xcalloc(1, sizeof *j);
	j->s = s;
	snprintf(j->worker, sizeof j->worker, "%s", worker);
	snprintf(j->hex, sizeof j->hex, "%s", hex);
	snprintf(j->env, sizeof j->env, "%s", env ? env : "");
	j->message = message ? xstrdup(message) : NULL;
	j->percentage = percentage;
	j->cs = cs;
	j->probe.fd = -1;
	j->timer.fn = job_timeout;
	j->timer.arg = j;
	j->next = s->jobs;
	s->jobs = j;
	loop_timer_arm(s->h.loop, &j->timer, DEPLOY_TIMEOUT_MS);
	return j;
}

/* Unpack the bundle in file in a child: the bundle is hostile, and big ones
 * take a while. unpack_done goes on. */
static void unpack_start(struct deploy_job *j, const char *file)
{
	struct serve *s = j->s;
	snprintf(j->unpack_dir, sizeof j->unpack_dir, "%s/tmp/unpack-%s-%llx", store_dir(s->st),
		 j->hex, (unsigned long long)serve_rng(s));
	char files[32], total[32], compressed[32];
	snprintf(files, sizeof files, "%llu", (unsigned long long)s->bl.max_files);
	snprintf(total, sizeof total, "%llu", (unsigned long long)s->bl.max_total);
	snprintf(compressed, sizeof compressed, "%llu", (unsigned long long)s->bl.max_compressed);
	char *argv[] = {(char *)self_exe(),
			"unpack-bundle",
			(char *)file,
			j->unpack_dir,
			"--max-files",
			files,
			"--max-total",
			total,
			"--max-compressed",
			compressed,
			"--read-project",
			"--sync-sha256",
			j->hex,
			j->env[0] ? "--env" : NULL,
			j->env,
			NULL};
	char err[512];
	j->unpacker = child_start(&s->h, argv, UNPACK_MAX_ANSWER, unpack_done, j, err, sizeof err);
	if (!j->unpacker) {
		log_error("deploy of %s: %s", j->worker, err);
		job_refuse(j, 500, "cannot start the unpacker");
		job_free(j);
	}
}

void deploy_start(struct serve *s, const char *worker, const char *hex, const char *upload,
		  uint64_t bytes, const char *message, double percentage, const char *env,
		  struct ctl_stream *cs)
{
	struct deploy_job *j = job_new(s, worker, hex, message, percentage, env, cs);
	j->upload = xstrdup(upload);
	j->upload_bytes = bytes;
	unpack_start(j, j->upload);
}

void deploy_start_stored(struct serve *s, const char *worker, const char *hex, const char *message,
			 const char *env)
{
	struct deploy_job *j = job_new(s, worker, hex, message, 100, env, NULL);
	char *path = blob_path(s->st, hex);
	struct stat st;
	if (path && stat(path, &st) == 0)
		j->upload_bytes =
			(uint64_t)st.st_size; /* the bundle's size, for its disk figures */
	unpack_start(j, path);
	free(path);
}

void deploy_stream_gone(struct serve *s, struct ctl_stream *cs)
{
	for (struct deploy_job *j = s->jobs; j; j = j->next)
		if (j->cs == cs)
			j->cs = NULL; /* the deploy goes on without its client */
}
