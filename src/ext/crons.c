/*
 * Cron triggers in `thaw serve` (serve.h): once a minute (UTC), every trigger
 * of each worker's deployment whose expression matches that minute runs on
 * an instance of a version that lists it (chosen by the deployment's
 * percentages when both versions do), as an internal request
 * (host_scheduled_run: it waits for and cold-starts an instance like any
 * request). A trigger whose previous run is still going is not started
 * again: that minute is recorded as skipped. Each run is recorded in the
 * store (time, cron, outcome, duration, the error's last line) and told to
 * the worker's tails.
 *
 * A host that was down does not run the minutes it missed: at start, for
 * every trigger with an earlier run on record, the matching minutes since
 * that run are counted, logged and recorded as one `missed` run.
 *
 * Ownership: a run (struct scron) is owned by s->crons from its start until
 * its internal request ends (cron_done); its version cannot be freed
 * meanwhile (pool_unused sees the request).
 */
#include "ext/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "project/cron.h"
#include "project/project.h"

#define MISSED_LOOKBACK_MINUTES (31 * 24 * 60)

struct scron {
	struct serve *s;
	struct sversion *sv;
	char worker[64];
	char cron[CRON_MAX_LEN + 1];
	int64_t minute;
	struct hreq *r;
	struct scron *next;
};

static void format_minute(int64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, n, "%Y-%m-%d %H:%M UTC", &tm))
		snprintf(out, n, "?");
}

/* Record a run and tell the worker's tails. */
static void record(struct serve *s, struct sworker *w, const char *version, const char *cron,
		   int64_t minute, double ms, const char *outcome, const char *error, int no_retry,
		   const char *rid, const char *start)
{
	struct cron_run run = {.worker = w->name, .version = version, .cron = cron,
			       .scheduled_ms = minute, .duration_ms = ms, .outcome = outcome,
			       .error = error, .no_retry = no_retry};
	char err[512];
	if (store_cron_run_add(s->st, &run, err, sizeof err) < 0)
		log_error("%s: %s", w->name, err);
	char *text = xasprintf("scheduled \"%s\" %s in %.1f ms%s%s%s%s%s%s", cron, outcome, ms,
			       start ? " (instance: " : "", start ? start : "", start ? ")" : "",
			       error && *error ? ": " : "", error ? error : "",
			       no_retry ? " (no_retry)" : "");
	fprintf(stderr, "[%s@%.8s%s%s] %s\n", w->name, version, rid ? " " : "", rid ? rid : "",
		text);
	json_t *line = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s, s:s, s:I, s:s?, s:s}", "ts",
				 (json_int_t)wall_ms(), "worker", w->name, "version", version,
				 "request_id", rid, "stream", "cron", "cron", cron, "outcome", outcome,
				 "scheduled", (json_int_t)minute, "start", start, "message", text);
	free(text);
	if (!line)
		return;
	for (struct tail_sub *t = w->tails; t; t = t->next)
		ctl_stream_line(t->cs, json_incref(line));
	json_decref(line);
}

static void cron_done(struct hreq *r, void *arg)
{
	struct scron *run = arg;
	struct serve *s = run->s;
	char error[512];
	int no_retry;
	const char *outcome = host_scheduled_outcome(r, error, sizeof error, &no_retry);
	struct sworker *w = serve_worker_find(s, run->worker);
	if (w)
		record(s, w, run->sv->v.id, run->cron, run->minute, ns_to_ms(now_ns() - r->t_arrive),
		       outcome, error, no_retry, r->rid, r->start_desc);
	for (struct scron **p = &s->crons; *p; p = &(*p)->next)
		if (*p == run) {
			*p = run->next;
			break;
		}
	free(run);
	serve_sweep_soon(s);
}

/* The version of w's deployment that runs cron this time (NULL: none lists it). */
static struct sversion *pick_version(struct serve *s, struct sworker *w, const char *cron)
{
	struct sversion *cand[DEPLOY_MAX_VERSIONS];
	double pct[DEPLOY_MAX_VERSIONS], total = 0;
	int n = 0;
	for (int i = 0; i < w->dep.n; i++) {
		struct sversion *sv = serve_version_loaded(w, w->dep.version[i]);
		if (!sv || !sv->app.cfg)
			continue;
		size_t k;
		json_t *e;
		json_array_foreach(sv->app.cfg->crons, k, e) {
			if (!strcmp(json_string_value(e), cron)) {
				cand[n] = sv;
				pct[n] = w->dep.percentage[i];
				total += pct[n];
				n++;
				break;
			}
		}
	}
	if (n <= 1)
		return n ? cand[0] : NULL;
	double x = (double)(serve_rng(s) >> 11) / 9007199254740992.0 * total;
	return x < pct[0] ? cand[0] : cand[1];
}

/* Each distinct trigger of w's deployment, once: fn(s, w, cron). */
static void each_trigger(struct serve *s, struct sworker *w,
			 void (*fn)(struct serve *, struct sworker *, const char *, int64_t),
			 int64_t minute)
{
	const char *seen[DEPLOY_MAX_VERSIONS * PROJECT_MAX_CRONS];
	size_t nseen = 0;
	for (int i = 0; i < w->dep.n; i++) {
		struct sversion *sv = serve_version_loaded(w, w->dep.version[i]);
		if (!sv || !sv->app.cfg)
			continue;
		size_t k;
		json_t *e;
		json_array_foreach(sv->app.cfg->crons, k, e) {
			const char *cron = json_string_value(e);
			int dup = 0;
			for (size_t j = 0; j < nseen; j++)
				dup |= !strcmp(seen[j], cron);
			if (dup || nseen == sizeof seen / sizeof *seen)
				continue;
			seen[nseen++] = cron;
			fn(s, w, cron, minute);
		}
	}
}

static void maybe_run(struct serve *s, struct sworker *w, const char *cron, int64_t minute)
{
	struct cron c;
	char err[256];
	if (cron_parse(cron, &c, err, sizeof err) < 0 || !cron_matches(&c, (time_t)(minute / 1000)))
		return;
	for (struct scron *run = s->crons; run; run = run->next) {
		if (!strcmp(run->worker, w->name) && !strcmp(run->cron, cron)) {
			char since[64];
			format_minute(run->minute, since, sizeof since);
			char *why = xasprintf("the run of %s is still going", since);
			record(s, w, run->sv->v.id, cron, minute, 0, "skipped", why, 0, NULL, NULL);
			free(why);
			return;
		}
	}
	struct sversion *sv = pick_version(s, w, cron);
	if (!sv)
		return;
	struct scron *run = xcalloc(1, sizeof *run);
	run->s = s;
	run->sv = sv;
	snprintf(run->worker, sizeof run->worker, "%s", w->name);
	snprintf(run->cron, sizeof run->cron, "%s", cron);
	run->minute = minute;
	run->next = s->crons;
	s->crons = run;
	run->r = host_scheduled_run(&sv->app, run->cron, minute, cron_done, run);
}

static void cron_tick(struct loop *l, struct loop_timer *t)
{
	struct serve *s = t->arg;
	int64_t minute = wall_ms() / 60000 * 60000;
	if (minute > s->cron_minute) {
		s->cron_minute = minute;
		for (struct sworker *w = s->workers; w; w = w->next)
			if (w->has_dep)
				each_trigger(s, w, maybe_run, minute);
	}
	loop_timer_arm(l, t, host_ms_to_next_minute(wall_ms()) + 1);
}

/* At start: the minutes of cron since its last recorded run, up to and
 * including the one under way, are not run; say so. */
static void count_missed(struct serve *s, struct sworker *w, const char *cron, int64_t now_minute)
{
	int64_t last = store_cron_last(s->st, w->name, cron);
	struct cron c;
	char err[256];
	if (last < 0 || last >= now_minute || cron_parse(cron, &c, err, sizeof err) < 0)
		return;
	int64_t first = -1, final = -1, n = 0;
	int64_t from = last + 60000;
	if ((now_minute - from) / 60000 > MISSED_LOOKBACK_MINUTES)
		from = now_minute - (int64_t)MISSED_LOOKBACK_MINUTES * 60000;
	for (int64_t m = from; m <= now_minute; m += 60000) {
		if (!cron_matches(&c, (time_t)(m / 1000)))
			continue;
		if (first < 0)
			first = m;
		final = m;
		n++;
	}
	if (n == 0)
		return;
	char a[64], b[64];
	format_minute(first, a, sizeof a);
	format_minute(final, b, sizeof b);
	char *why = xasprintf("%lld run%s due from %s to %s %s while the host was down: not replayed",
			      (long long)n, n == 1 ? "" : "s", a, b, n == 1 ? "was" : "were");
	log_warn("%s: cron \"%s\": %s", w->name, cron, why);
	record(s, w, w->dep.version[0], cron, final, 0, "missed", why, 0, NULL, NULL);
	free(why);
}

void serve_crons_start(struct serve *s)
{
	int64_t minute = wall_ms() / 60000 * 60000;
	for (struct sworker *w = s->workers; w; w = w->next)
		if (w->has_dep)
			each_trigger(s, w, count_missed, minute);
	s->cron_minute = minute; /* the minute under way is not run */
	s->cron_timer.fn = cron_tick;
	s->cron_timer.arg = s;
	loop_timer_arm(s->h.loop, &s->cron_timer, host_ms_to_next_minute(wall_ms()) + 1);
}

json_t *serve_crons_json(struct serve *s, struct sworker *w, int limit)
{
	json_t *triggers = json_array();
	for (int i = 0; w->has_dep && i < w->dep.n; i++) {
		struct sversion *sv = serve_version_loaded(w, w->dep.version[i]);
		size_t k;
		json_t *e;
		if (!sv || !sv->app.cfg)
			continue;
		json_array_foreach(sv->app.cfg->crons, k, e) {
			int dup = 0;
			size_t j;
			json_t *x;
			json_array_foreach(triggers, j, x) dup |= json_equal(x, e);
			if (!dup)
				json_array_append(triggers, e);
		}
	}
	json_t *running = json_array();
	for (struct scron *run = s->crons; run; run = run->next)
		if (!strcmp(run->worker, w->name))
			json_array_append_new(running,
					      json_pack("{s:s, s:s, s:I}", "cron", run->cron, "version",
							run->sv->v.id, "scheduled",
							(json_int_t)run->minute));
	json_t *runs = store_cron_runs_json(s->st, w->name, limit);
	return json_pack("{s:o, s:o, s:o}", "triggers", triggers, "running", running, "runs",
			 runs ? runs : json_array());
}
