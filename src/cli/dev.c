/*
 * `thaw dev`: a host for one project on this machine. Serves it, reloads it
 * when a file under it changes, stops cleanly on Ctrl-C.
 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "project/project.h"
#include "cli/install.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/frame.h"
#include "host/child.h"
#include "host/executor.h"
#include "host/host.h"
#include "project/cron.h"
#include "project/dotenv.h"

static const char dev_usage[] =
	"usage: thaw dev [DIR [SERVICE_DIR...]] [options]\n"
	"\n"
	"Serve the worker project in DIR (default: the current directory) on this machine,\n"
	"reloading it whenever a file under DIR changes. Prints \"Ready on http://IP:PORT\"\n"
	"once it accepts requests. Ctrl-C stops it.\n"
	"\n"
	"Each SERVICE_DIR is another worker project that DIR's service bindings (services:\n"
	"binding, service, entrypoint) reach by its worker name, as wrangler dev -c A -c B\n"
	"does: it runs here too, with its own state and snapshots, but takes no requests\n"
	"from the port and is loaded once (restart thaw dev after changing it). A binding\n"
	"to a worker thaw dev does not serve fails when called, naming it.\n"
	"\n"
	"Options:\n"
	"  --port N                 port to listen on (default 8787; 0 picks a free one)\n"
	"  --ip ADDR                address to listen on (default 127.0.0.1)\n"
	"  --idle-timeout SECONDS   evict an instance idle this long (default 300;\n"
	"                           0 evicts after every request)\n"
	"  --timeout SECONDS        wall-time limit for a handler to answer (default 30);\n"
	"                           over it the client gets 504 and the instance is replaced\n"
	"  --max-body-bytes N       largest request body accepted (default 104857600); 413 above\n"
	"  --max-header-bytes N     largest request head accepted (default 32768); 431 above\n"
	HOST_CAPACITY_USAGE
	"  --concurrency N          requests in flight per instance (default 64)\n"
	"  --system-site-packages   let the worker import the system's Python packages\n"
	"                           (/usr/lib/python3/dist-packages), as a venv would\n"
	"  --no-snapshot            boot every instance instead of restoring it from a\n"
	"                           memory snapshot of the initialised worker\n"
	"  --max-snapshot-mb N      refuse snapshots larger than this (default 1024)\n"
	"  --no-base-image          build every snapshot from a fresh interpreter, not on the\n"
	"                           host's base image (docs/snapshots.md, \"The base image\")\n"
	"  --env NAME               use the environment NAME of the configuration\n"
	"                           ([env.NAME] in wrangler.toml) and .dev.vars.NAME\n"
	"  --persist-to DIR         keep the bindings' state (KV, D1, ...) in DIR\n"
	"                           (default: DIR/.thaw/state of the project)\n"
	"  --test-scheduled         GET /__scheduled?cron=EXPR (or /cdn-cgi/handler/scheduled)\n"
	"                           runs the scheduled handler, as wrangler dev does; cron\n"
	"                           triggers (triggers.crons) also run on their schedule\n"
	"  --trust-proxy ADDR[/N]   believe X-Forwarded-For and X-Forwarded-Proto from this\n"
	"                           proxy address or network (repeatable)\n"
HOST_SANDBOX_USAGE
	HOST_LIMITS_HELP
	"  --no-install             do not run `thaw install` first (it runs when the project\n"
	"                           has dependencies and python_modules/ is missing or older\n"
	"                           than pyproject.toml)\n"
	"  -v, --verbose            debug logging\n"
	"  -h, --help               this help\n"
	"\n"
	"Every response carries Server-Timing: start;desc=\"warm\"|\"boot\"|\"snapshot\";dur=MS\n"
	"(time to get an instance) and handler;dur=MS. Handler errors show their traceback\n"
	"in the terminal and in the 500 page.\n";

/* Another project, reached through service bindings only (SERVICE_DIR). */
struct dev_service {
	struct app app;
	struct dev_service *next;
};

struct dev {
	struct host h;
	struct app app;
	struct dev_service *services;
	const char *env; /* --env */
	char secrets_file[96]; /* where the secrets came from ("" none) */
	struct loop_watch ino;
	struct loop_timer reload_timer;
	struct child *reader; /* the config reader of a reload in progress */
	char changed[PATH_MAX];
	/* watch descriptor -> directory path */
	char **wd_path;
	int wd_cap;
	/* The bindings' state directory (--persist-to may put it inside the
	 * project): never watched, its files change with every write. */
	dev_t state_dev;
	ino_t state_ino;
	int state_known;
	/* cron triggers */
	struct loop_timer cron_timer;
	int64_t cron_minute; /* the last minute whose triggers were looked at */
	struct dev_run *runs; /* runs in progress */
};

struct dev_run {
	struct dev *d;
	char cron[CRON_MAX_LEN + 1];
	int64_t minute;
	struct hreq *r;
	struct dev_run *next;
};

/* --- cron triggers: each runs when its minute comes, never twice at once --- */

static void run_done(struct hreq *r, void *arg)
{
	struct dev_run *run = arg;
	struct dev *d = run->d;
	char error[512];
	int no_retry;
	const char *outcome = host_scheduled_outcome(r, error, sizeof error, &no_retry);
	printf("[%s] scheduled \"%s\" %s %.1fms%s%s%s%s%s%s\n", d->app.cfg->name, run->cron, outcome,
	       ns_to_ms(now_ns() - r->t_arrive), r->start_desc ? " (instance: " : "",
	       r->start_desc ? r->start_desc : "", r->start_desc ? ")" : "",
	       error[0] ? ": " : "", error, no_retry ? " (no_retry)" : "");
	fflush(stdout);
	for (struct dev_run **p = &d->runs; *p; p = &(*p)->next)
		if (*p == run) {
			*p = run->next;
			break;
		}
	free(run);
}

static void cron_tick(struct loop *l, struct loop_timer *t)
{
	struct dev *d = t->arg;
	int64_t now = wall_ms();
	int64_t minute = now / 60000 * 60000;
	if (minute > d->cron_minute) {
		d->cron_minute = minute;
		size_t i;
		json_t *e;
		json_array_foreach(d->app.cfg->crons, i, e) {
			struct cron c;
			char err[256];
			const char *expr = json_string_value(e);
			if (cron_parse(expr, &c, err, sizeof err) < 0 ||
			    !cron_matches(&c, (time_t)(minute / 1000)))
				continue;
			int busy = 0;
			for (struct dev_run *run = d->runs; run; run = run->next)
				busy |= !strcmp(run->cron, expr);
			if (busy) {
				printf("[%s] scheduled \"%s\" skipped: its previous run is still going\n",
				       d->app.cfg->name, expr);
				fflush(stdout);
				continue;
			}
			struct dev_run *run = xcalloc(1, sizeof *run);
			run->d = d;
			snprintf(run->cron, sizeof run->cron, "%s", expr);
			run->minute = minute;
			run->next = d->runs;
			d->runs = run;
			run->r = host_scheduled_run(&d->app, run->cron, minute, run_done, run);
		}
	}
	loop_timer_arm(l, t, host_ms_to_next_minute(wall_ms()) + 1);
}

/* --- watching the project --- */

static int skip_name(const char *n)
{
	return n[0] == '.' || !strcmp(n, "__pycache__") || !strcmp(n, "node_modules");
}

static int secrets_file(const char *n)
{
	return !strcmp(n, ".dev.vars") || !strncmp(n, ".dev.vars.", 10) || !strcmp(n, ".env") ||
	       !strncmp(n, ".env.", 5);
}

static int ignored_file(const char *n)
{
	size_t l = strlen(n);
	if (secrets_file(n))
		return 0;
	if (l == 0 || n[0] == '.' || n[l - 1] == '~' || !strcmp(n, "4913"))
		return 1;
	const char *dot = strrchr(n, '.');
	return dot && (!strcmp(dot, ".pyc") || !strcmp(dot, ".swp") || !strcmp(dot, ".swx") ||
		       !strcmp(dot, ".tmp"));
}

static int is_state_dir(const struct dev *d, const char *path)
{
	struct stat st;
	return d->state_known && stat(path, &st) == 0 && st.st_dev == d->state_dev &&
	       st.st_ino == d->state_ino;
}

static void watch_dir(struct dev *d, const char *path, int depth)
{
	if (is_state_dir(d, path))
		return;
	const uint32_t mask = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
			      IN_ONLYDIR | IN_EXCL_UNLINK;
	int wd = inotify_add_watch(d->ino.fd, path, mask);
	if (wd < 0) {
		if (errno == ENOSPC)
			log_warn("inotify watch limit reached: changes under %s are not watched", path);
		return;
	}
	if (wd >= d->wd_cap) {
		int cap = d->wd_cap ? d->wd_cap * 2 : 64;
		while (cap <= wd)
			cap *= 2;
		d->wd_path = xrealloc(d->wd_path, (size_t)cap * sizeof *d->wd_path);
		memset(d->wd_path + d->wd_cap, 0, (size_t)(cap - d->wd_cap) * sizeof *d->wd_path);
		d->wd_cap = cap;
	}
	free(d->wd_path[wd]);
	d->wd_path[wd] = xstrdup(path);
	/* python_modules/ is watched at its top only: installs show up there. */
	const char *base = strrchr(path, '/');
	if (depth > 12 || (base && !strcmp(base + 1, "python_modules")))
		return;
	DIR *dir = opendir(path);
	if (!dir)
		return;
	struct dirent *e;
	while ((e = readdir(dir))) {
		if (e->d_type != DT_DIR || skip_name(e->d_name))
			continue;
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
			continue;
		watch_dir(d, sub, depth + 1);
	}
	closedir(dir);
}

/*
 * The local secrets, as wrangler finds them: .dev.vars (.dev.vars.ENV with
 * --env), else .env (.env.ENV). Values are secrets: withheld from the top
 * level and the snapshot, never printed. 0 (a->secrets set, NULL when there
 * is no file), or -1 with err.
 */
static int load_secrets(struct dev *d, const char *dir, char *err, size_t errlen)
{
	json_decref(d->app.secrets);
	d->secrets_file[0] = 0;
	d->app.secrets = dotenv_load_dev(dir, d->env, d->secrets_file, sizeof d->secrets_file, err,
					 errlen);
	return d->app.secrets || !err[0] ? 0 : -1;
}

static void say_secrets(struct dev *d)
{
	if (!d->app.secrets)
		return;
	fprintf(stderr, "thaw dev: %zu secret%s from %s:", json_object_size(d->app.secrets),
		json_object_size(d->app.secrets) == 1 ? "" : "s", d->secrets_file);
	const char *k;
	json_t *v;
	json_object_foreach(d->app.secrets, k, v) fprintf(stderr, " %s", k);
	fputs(" (values hidden)\n", stderr);
}

/* The storage bindings are served by thaw-ext.so (SQLite; service bindings by the host):
 * load it when the project has any. */
static int load_state_kinds(const struct project *c, char *err, size_t errlen)
{
	static const char *const keys[] = {"kv_namespaces", "d1_databases", "r2_buckets",
					   "durable_objects", "migrations", "queues", NULL};
	json_t *pj = project_to_json(c);
	int needed = 0;
	for (const char *const *k = keys; *k; k++) {
		json_t *v = json_object_get(pj, *k);
		needed |= (json_is_array(v) && json_array_size(v)) ||
			  (json_is_object(v) && json_object_size(v));
	}
	json_decref(pj);
	if (!needed)
		return 0;
	return thaw_ext_bindings(err, errlen);
}

/* The config reader answered: reload with what it read. */
static void reader_done(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct dev *d = arg;
	struct app *a = &d->app;
	char err[1024];
	d->reader = NULL;
	struct project *c = overflow ? NULL
				     : project_parse((const char *)out, len, a->cfg->dir, err, sizeof err);
	if (overflow)
		snprintf(err, sizeof err, "the configuration reader's answer is too large");
	fprintf(stderr, "\n%s changed: reloading %s\n", d->changed[0] ? d->changed : "project",
		a->cfg->name);
	if (c && (host_limits_check(&d->h, c, err, sizeof err) < 0 ||
		  load_secrets(d, c->dir, err, sizeof err) < 0)) {
		project_free(c);
		c = NULL;
	}
	if (!c) {
		fprintf(stderr, "thaw: configuration error: %s\n", err);
		pool_reload(a);
		a->load_error = xasprintf("Error: configuration: %s\n", err);
		return;
	}
	say_secrets(d);
	bindings_dispose(a);
	project_free(a->cfg);
	a->cfg = c;
	if (load_state_kinds(a->cfg, err, sizeof err) < 0 || bindings_setup(a, err, sizeof err) < 0)
		fprintf(stderr, "thaw: %s\n", err);
	pool_reload(a);
	pool_prewarm(a);
}

/* Read the project again in a child (TOML needs Python, which the host
 * never starts); reader_done goes on. A change while it reads restarts it. */
static void do_reload(struct dev *d)
{
	char err[512];
	child_cancel(d->reader);
	char *argv[6];
	project_reader_argv_env(d->app.cfg->dir, d->env, argv);
	d->reader = child_start(&d->h, argv, PROJECT_MAX_JSON_BYTES, reader_done, d, err, sizeof err);
	if (!d->reader) {
		fprintf(stderr, "thaw: %s\n", err);
		pool_reload(&d->app);
		d->app.load_error = xasprintf("Error: configuration: %s\n", err);
	}
}

static void reload_timer_fn(struct loop *l, struct loop_timer *t)
{
	do_reload(t->arg);
}

static void on_inotify(struct loop *l, struct loop_watch *w, uint32_t events)
{
	struct dev *d = w->arg;
	char evbuf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->fd, evbuf, sizeof evbuf);
		if (n <= 0)
			break;
		for (char *p = evbuf; p < evbuf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->wd < 0 || ev->wd >= d->wd_cap || !d->wd_path[ev->wd] || !ev->len)
				continue;
			const char *dir = d->wd_path[ev->wd];
			if (ev->mask & IN_ISDIR) {
				if (skip_name(ev->name))
					continue;
				char sub[PATH_MAX];
				snprintf(sub, sizeof sub, "%s/%s", dir, ev->name);
				if (is_state_dir(d, sub))
					continue;
				if (ev->mask & (IN_CREATE | IN_MOVED_TO))
					watch_dir(d, sub, 1);
			} else if (ignored_file(ev->name)) {
				continue;
			}
			const char *rel = dir + strlen(d->app.cfg->dir);
			snprintf(d->changed, sizeof d->changed, "%s%s%s", *rel ? rel + 1 : "",
				 *rel ? "/" : "", ev->name);
			/* Editors write in bursts: settle for a moment first. */
			loop_timer_arm(l, &d->reload_timer, 60);
		}
	}
}

/* Service bindings (host.h: service_app): the project of that worker name. */
static struct app *dev_service_app(struct host *h, const char *name, char *why, size_t whylen)
{
	struct dev *d = (struct dev *)h;
	if (!strcmp(d->app.cfg->name, name))
		return &d->app;
	for (struct dev_service *s = d->services; s; s = s->next)
		if (!strcmp(s->app.cfg->name, name))
			return &s->app;
	snprintf(why, whylen,
		 "thaw dev does not serve a worker named '%s': give its project to thaw dev "
		 "after this one's (thaw dev %s DIR_OF_%s)",
		 name, d->app.cfg->dir, name);
	return NULL;
}

static int make_snap_dir(const char *path);
static json_t *dev_hide(const char *dir, const char *state_dir);

/* Load SERVICE_DIR dir as another app of this host: 0, or -1 with err. */
static int add_service(struct dev *d, const char *dir, const char *persist_to, int snapshots,
		       int no_install, char *err, size_t errlen)
{
	struct project *cfg = project_load_env(dir, NULL, err, errlen);
	if (!cfg)
		return -1;
	if (host_limits_check(&d->h, cfg, err, errlen) < 0) {
		project_free(cfg);
		return -1;
	}
	int clash = !strcmp(cfg->name, d->app.cfg->name);
	for (struct dev_service *s = d->services; s; s = s->next)
		clash |= !strcmp(cfg->name, s->app.cfg->name);
	if (clash) {
		snprintf(err, errlen, "%s: another project given to thaw dev is also named '%s'",
			 dir, cfg->name);
		project_free(cfg);
		return -1;
	}
	if (!no_install && thaw_install_needed(cfg)) {
		struct thaw_install_options io = {.stdout_to_stderr = 1};
		if (thaw_install_run(cfg, &io) < 0)
			fprintf(stderr, "thaw dev: the install for %s failed (see above)\n", cfg->name);
	}
	struct dev_service *s = xcalloc(1, sizeof *s);
	struct app *a = &s->app;
	a->h = &d->h;
	a->cfg = cfg;
	char secrets_from[96];
	a->secrets = dotenv_load_dev(cfg->dir, NULL, secrets_from, sizeof secrets_from, err, errlen);
	if (!a->secrets && err[0])
		goto fail;
	/* Under services/: DIR/NAME could be the first project's kv/, d1/, ... */
	a->state_dir = persist_to ? xasprintf("%s/services/%s", persist_to, cfg->name)
				  : xasprintf("%s/.thaw/state", cfg->dir);
	if (load_state_kinds(cfg, err, errlen) < 0 || bindings_setup(a, err, errlen) < 0)
		goto fail;
	if (snapshots) {
		a->snap_dir = xasprintf("%s/.thaw/snapshots", cfg->dir);
		if (make_snap_dir(a->snap_dir) < 0) {
			snprintf(err, errlen, "cannot create %s: %s", a->snap_dir, strerror(errno));
			goto fail;
		}
		a->snapshots = 1;
	}
	a->sandbox_hide = dev_hide(cfg->dir, a->state_dir);
	s->next = d->services;
	d->services = s;
	fprintf(stderr, "thaw dev: serving %s (%s) from %s to service bindings\n", cfg->name,
		cfg->main, cfg->dir);
	return 0;
fail:
	bindings_dispose(a);
	json_decref(a->secrets);
	free(a->state_dir);
	free(a->snap_dir);
	project_free(cfg);
	free(s);
	return -1;
}

/* What an app's sandbox covers under its project: .thaw/ (snapshots, state)
 * and its state directory if that is elsewhere under the project. */
static json_t *dev_hide(const char *dir, const char *state_dir)
{
	/* Made now if missing: a directory made after an instance started
	 * would be in its view. */
	json_t *hide = json_array();
	char *thaw_dir = xasprintf("%s/.thaw", dir);
	mkdir_p(thaw_dir, 0755);
	json_array_append_new(hide, json_string(thaw_dir));
	size_t n = strlen(dir), t = strlen(thaw_dir);
	/* Compared by its real path, as dir is one: a relative --persist-to
	 * (`--persist-to state`) or one through a link names a directory under
	 * the project differently, and was left in view. */
	char real[PATH_MAX];
	if (state_dir && mkdir_p(state_dir, 0700) == 0 && realpath(state_dir, real) &&
	    !strncmp(real, dir, n) && real[n] == '/' &&
	    !(strncmp(real, thaw_dir, t) == 0 && (real[t] == '/' || !real[t])))
		json_array_append_new(hide, json_string(real));
	free(thaw_dir);
	return hide;
}

/* .thaw/snapshots, emptied of what an earlier run left. */
static int make_snap_dir(const char *path)
{
	if (mkdir_p(path, 0755) < 0)
		return -1;
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if ((n > 5 && !strcmp(e->d_name + n - 5, ".snap")) ||
		    (n > 9 && !strcmp(e->d_name + n - 9, ".snap.tmp")) ||
		    (n > 3 && !strcmp(e->d_name + n - 3, ".ws")) ||
		    (n > 7 && !strcmp(e->d_name + n - 7, ".ws.tmp")))
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
	return 0;
}

int cmd_dev(int argc, char **argv)
{
	static const struct option opts[] = {
		{"port", required_argument, NULL, 'p'},
		{"ip", required_argument, NULL, 'i'},
		{"no-snapshot", no_argument, NULL, 'N'},
		{"no-install", no_argument, NULL, 'U'},
		{"test-scheduled", no_argument, NULL, 'S' + 0x200},
		{"env", required_argument, NULL, 'E' + 0x200},
		{"persist-to", required_argument, NULL, 'P' + 0x200},
		HOST_LONG_OPTIONS,
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct dev d; /* lives as long as the process */
	struct host *h = &d.h;
	h->dev = 1;
	h->server_timing = 1;
	host_defaults(h);
	const char *ip = "127.0.0.1";
	int no_snapshot = 0, no_install = 0;
	const char *persist_to = NULL;
	uint64_t port = 8787;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		int done = host_option(h, "thaw dev", c, optarg);
		if (done < 0)
			return 2;
		if (done)
			continue;
		switch (c) {
		case 'p':
			if (host_opt_u64("thaw dev", "--port", optarg, 65535, &port) < 0)
				return 2;
			break;
		case 'i':
			ip = optarg;
			break;
		case 'N':
			no_snapshot = 1;
			break;
		case 'U':
			no_install = 1;
			break;
		case 'S' + 0x200:
			h->test_scheduled = 1;
			break;
		case 'E' + 0x200:
			d.env = optarg;
			break;
		case 'P' + 0x200:
			persist_to = optarg;
			break;
		case 'v':
			thaw_log_level = LOG_DEBUG;
			break;
		case 'h':
			fputs(dev_usage, stdout);
			return 0;
		default:
			fputs(dev_usage, stderr);
			return 2;
		}
	}
	const char *dir = optind < argc ? argv[optind] : ".";

	char err[1024];
	struct project *cfg = project_load_env(dir, d.env, err, sizeof err);
	if (!cfg || host_limits_check(h, cfg, err, sizeof err) < 0 ||
	    load_secrets(&d, cfg->dir, err, sizeof err) < 0) {
		fprintf(stderr, "thaw dev: %s\n", err);
		project_free(cfg);
		return 1;
	}
	if (!no_install && thaw_install_needed(cfg)) {
		fprintf(stderr, "thaw dev: python_modules/ is missing or older than the project's "
				"configuration: running thaw install\n");
		struct thaw_install_options io = {.stdout_to_stderr = 1};
		/* Offline with a stale python_modules/ is still worth serving. */
		if (thaw_install_run(cfg, &io) < 0)
			fprintf(stderr, "thaw dev: the install failed (see above): serving with "
					"python_modules/ as it was (--no-install skips the install)\n");
	}
	const char *sdk = getenv("THAW_SDK_DIR");
	h->sdk_dir = sdk && *sdk ? sdk : THAW_SDK_DIR;

	/* Signals arrive through the loop, not as interruptions. */
	if (host_loop_start(h, err, sizeof err) < 0)
		fatal("%s", err);

	d.app.h = h;
	d.app.cfg = cfg;
	h->app = &d.app;
	d.app.state_dir = persist_to ? xstrdup(persist_to) : xasprintf("%s/.thaw/state", cfg->dir);
	h->queue_dir = xasprintf("%s/queues", d.app.state_dir);
	/* Made now (the default one, under .thaw/, is left out by its name). */
	struct stat state_st;
	if (persist_to && mkdir_p(d.app.state_dir, 0700) == 0 &&
	    stat(d.app.state_dir, &state_st) == 0) {
		d.state_dev = state_st.st_dev;
		d.state_ino = state_st.st_ino;
		d.state_known = 1;
	}
	if (load_state_kinds(cfg, err, sizeof err) < 0 || bindings_setup(&d.app, err, sizeof err) < 0) {
		fprintf(stderr, "thaw dev: %s\n", err);
		return 1;
	}
	d.app.sandbox_hide = dev_hide(cfg->dir, d.app.state_dir);
	h->spares_target = 2;
#ifdef THAW_SANITIZE
	if (!no_snapshot)
		fprintf(stderr, "thaw dev: snapshots are off in this sanitizer build\n");
	no_snapshot = 1;
#endif
	if (!no_snapshot) {
		d.app.snap_dir = xasprintf("%s/.thaw/snapshots", cfg->dir);
		if (make_snap_dir(d.app.snap_dir) < 0) {
			fprintf(stderr, "thaw dev: cannot create %s: %s\n", d.app.snap_dir,
				strerror(errno));
			return 1;
		}
		d.app.snapshots = 1;
		/* Every build (this project's, its services') restores the base
		 * first: made once per thaw dev, beside this project's images. */
		char *base_dir = xasprintf("%s/base", d.app.snap_dir);
		if (!h->no_base && make_snap_dir(base_dir) == 0)
			h->base = pool_base_new(h, base_dir);
		else if (!h->no_base)
			fprintf(stderr, "thaw dev: cannot create %s (%s): no base image\n", base_dir,
				strerror(errno));
		free(base_dir);
	}

	h->service_app = dev_service_app;
	for (int i = optind + 1; i < argc; i++) {
		if (add_service(&d, argv[i], persist_to, d.app.snapshots, no_install, err,
				sizeof err) < 0) {
			fprintf(stderr, "thaw dev: %s: %s\n", argv[i], err);
			return 1;
		}
	}
	if (h->sandbox) {
		/* What instances may be shown parts of: each project (its images
		 * are under its .thaw/) and the SDK. */
		const char *roots[THAW_ROOTS_MAX];
		size_t n = 0;
		roots[n++] = h->sdk_dir;
		roots[n++] = cfg->dir;
		struct dev_service *s;
		for (s = d.services; s && n < THAW_ROOTS_MAX; s = s->next)
			roots[n++] = s->app.cfg->dir;
		if (s) {
			fprintf(stderr, "thaw dev: at most %d projects run sandboxed at once\n",
				THAW_ROOTS_MAX - 1);
			return 1;
		}
		if (host_sandbox_roots(h, roots, n, err, sizeof err) < 0) {
			fprintf(stderr, "thaw dev: %s\n", err);
			return 1;
		}
	}

	unsigned bound;
	if (front_start(h, ip, (unsigned)port, &bound, err, sizeof err) < 0) {
		fprintf(stderr, "thaw dev: %s\n", err);
		return 1;
	}

	d.ino.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	d.ino.fn = on_inotify;
	d.ino.arg = &d;
	d.reload_timer.fn = reload_timer_fn;
	d.reload_timer.arg = &d;
	if (d.ino.fd >= 0) {
		watch_dir(&d, cfg->dir, 0);
		loop_add(h->loop, &d.ino, EPOLLIN);
	} else {
		log_warn("inotify unavailable (%s): no reload on change", strerror(errno));
	}

	fprintf(stderr, "thaw dev: serving %s (%s) from %s%s%s%s\n", cfg->name, cfg->main,
		cfg->sources, cfg->env ? ", environment " : "", cfg->env ? cfg->env : "",
		d.app.snapshots ? "" : " (snapshots off)");
	say_secrets(&d);
	d.cron_timer.fn = cron_tick;
	d.cron_timer.arg = &d;
	d.cron_minute = wall_ms() / 60000 * 60000; /* the minute under way is not run */
	loop_timer_arm(h->loop, &d.cron_timer, host_ms_to_next_minute(wall_ms()) + 1);
	if (json_array_size(cfg->crons))
		fprintf(stderr, "thaw dev: %zu cron trigger%s (UTC)%s\n", json_array_size(cfg->crons),
			json_array_size(cfg->crons) == 1 ? "" : "s",
			h->test_scheduled ? "; /__scheduled?cron=EXPR runs one now" : "");
	pool_fill_spares(h);
	pool_prewarm(&d.app);
	for (struct dev_service *s = d.services; s; s = s->next)
		pool_prewarm(&s->app);
	int v6 = strchr(ip, ':') != NULL;
	printf("Ready on http://%s%s%s:%u\n", v6 ? "[" : "", ip, v6 ? "]" : "", bound);
	fflush(stdout);

	int rc = loop_run(h->loop) < 0 ? 1 : 0;

	fprintf(stderr, "thaw dev: stopping\n");
	child_kill_all(h);
	front_stop(h); /* ends the runs in progress (run_done) */
	pool_shutdown(h);
	executor_stop(h); /* the bindings' jobs in flight finish or are handed back */
	loop_free(h->loop); /* frees the instances reaped since the loop stopped */
	if (h->base) {
		struct app *b = h->base;
		pool_app_dispose(b); /* its image too */
		free(b);
	}
	json_decref(d.app.secrets);
	free(d.app.state_dir);
	while (d.services) {
		struct dev_service *s = d.services;
		d.services = s->next;
		pool_app_dispose(&s->app);
		json_decref(s->app.secrets);
		json_decref(s->app.sandbox_hide);
		free(s->app.state_dir);
		free(s);
	}
	json_decref(d.app.sandbox_hide);
	host_sandbox_free(h);
	free(h->queue_dir);
	return rc;
}
