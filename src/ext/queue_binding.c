/*
 * Queues: the producer binding (env.JOBS.send / send_batch) and the
 * consumer's delivery, on the Queues engine (src/state/queue.h). A queue is
 * the host's, not a worker's: one file per queue name under h->queue_dir
 * (thaw dev: STATE/queues, thaw serve: DATA/state/_queues), so a producer
 * worker and a consumer worker deployed separately meet in it.
 *
 * THE STORES are opened on the state executor, once per queue name for the
 * life of the process (stores[] below, executor thread only); the first
 * open of a queue in a process makes every message left in flight by a
 * previous host visible again (queue_recover): at-least-once.
 *
 * A PRODUCER call (binding.h), args "n" (1..100) and per message i
 * "ct<i>" (json|text|bytes|v8), "len<i>" (bytes), "delay<i>" (s, optional);
 * the body is the messages' serialized bodies one after another. Checked
 * here again (the instance is hostile) with Cloudflare's limits, then one
 * job stores them in one transaction and wakes the queue's consumers.
 *
 * A CONSUMER (queues.consumers entry of an app: a hidden binding kind, made
 * and released with the app's bindings) polls on the executor: when
 * max_batch_size messages are visible or the oldest has waited
 * max_batch_timeout, it leases a batch and runs it on the app as an internal
 * request (host_queue_run) whose body is one JSON line
 *   [{"id","timestamp"(ms),"attempts","content_type","len"}..]\n
 * then the bodies one after another. The runtime answers with thaw-outcome
 * ok|exception and the body {"acked": [i..], "retried": [[i, delay]..]}
 * (explicit calls only). The rest follow Cloudflare's rule: acked when the
 * handler returned, retried when it raised (or the run failed). A retry of
 * a message delivered max_retries + 1 times goes to dead_letter_queue, or
 * is dropped with a log line. Batches of one consumer run at most
 * max_concurrency (default CONSUMER_CONCURRENCY) at a time. In thaw serve
 * only versions in their worker's deployment consume.
 *
 * Ownership: struct producer and struct consumer are binding ctxs with
 * references (the app's, each job's and each delivery's; loop thread).
 * A delivery owns its leased batch until its settle job is done.
 */
#include "ext/bindings.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "ext/serve.h"
#include "host/binding.h"
#include "host/executor.h"
#include "host/host.h"
#include "project/project.h"
#include "state/queue.h"

#define MESSAGE_MAX 128000u          /* Cloudflare: 128 KB, 1 KB = 1000 bytes */
#define BATCH_MESSAGES_MAX 100
#define BATCH_BYTES_MAX 256000u
#define DELAY_MAX 43200              /* 12 hours */
#define LEASE_BYTES (200u * 1024u)   /* bodies of one delivery, within HOST_QUEUE_BODY_MAX */
#define CONSUMER_CONCURRENCY 4
#define POLL_IDLE_MS 1000.0          /* look again at least this often */
#define STORES_MAX 256

/* --- the stores (executor thread only) --- */

static struct {
	char name[64];
	struct queue_store *q;
} stores[STORES_MAX];
static size_t nstores;

static struct queue_store *store_get(const char *dir, const char *name, char *err, size_t errlen)
{
	for (size_t i = 0; i < nstores; i++)
		if (!strcmp(stores[i].name, name))
			return stores[i].q;
	if (nstores == STORES_MAX) {
		err_set(err, errlen, "too many queues (at most %d)", STORES_MAX);
		return NULL;
	}
	if (mkdir_p(dir, 0700) < 0) {
		err_set(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return NULL;
	}
	char *path = xasprintf("%s/%s.sqlite", dir, name);
	struct queue_store *q = queue_open(path, err, errlen);
	free(path);
	if (!q)
		return NULL;
	int n = queue_recover(q, wall_ms(), err, errlen);
	if (n < 0) {
		queue_close(q);
		return NULL;
	}
	if (n > 0)
		log_info("queue \"%s\": %d message%s in flight when the host stopped, delivered again",
			 name, n, n == 1 ? "" : "s");
	snprintf(stores[nstores].name, sizeof stores[nstores].name, "%s", name);
	stores[nstores++].q = q;
	return q;
}

/* A queue name from configuration, checked again: it becomes a file name. */
static int name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* --- consumers (loop thread) --- */

struct consumer {
	unsigned refs;
	int stopped;
	struct app *a;
	struct host *h;
	char queue[64], dlq[64];
	int max_batch, timeout_s, max_retries, retry_delay, concurrency;
	int inflight, polling;
	struct loop_timer timer;
	struct consumer *next; /* all consumers (wake on send) */
};

static struct consumer *consumers;

static void consumer_unref(struct consumer *c)
{
	if (--c->refs)
		return;
	for (struct consumer **p = &consumers; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	free(c);
}

static void consumer_kick(struct consumer *c, double ms);

/* Does this app consume now? thaw dev: always; thaw serve: when its version
 * is in its worker's deployment. */
static int app_live(struct app *a)
{
	if (!a->hooks)
		return 1;
	if (a->draining)
		return 0;
	struct sversion *sv = a->owner;
	if (!sv || !sv->w->has_dep)
		return 0;
	for (int i = 0; i < sv->w->dep.n; i++)
		if (!strcmp(sv->w->dep.version[i], sv->v.id))
			return 1;
	return 0;
}

static void wake_consumers(const char *queue)
{
	for (struct consumer *c = consumers; c; c = c->next)
		if (!c->stopped && !strcmp(c->queue, queue))
			consumer_kick(c, 0);
}

/* The poll: lease a batch when one is due. */
struct poll_job {
	struct exec_job job;
	struct consumer *c;
	char dir[4096];
	struct queue_batch batch;
	int64_t next_ms;
	int rc;
	char err[512];
};

/* A delivery's end: ack, retry, dead-letter. */
struct settle_job {
	struct exec_job job;
	struct consumer *c;
	char dir[4096];
	struct queue_batch batch;
	int64_t *ack;
	size_t nack;
	int64_t *retry_seq, *retry_delay;
	size_t nretry;
	size_t *dead; /* indexes into batch */
	size_t ndead;
	int rc;
	char err[512];
};

static void poll_run(struct exec_job *job)
{
	struct poll_job *j = (struct poll_job *)job;
	struct consumer *c = j->c; /* only its immutable fields */
	struct queue_store *q = store_get(j->dir, c->queue, j->err, sizeof j->err);
	if (!q) {
		j->rc = -1;
		return;
	}
	int64_t now = wall_ms();
	j->rc = queue_ready(q, now, c->max_batch, (int64_t)c->timeout_s * 1000, &j->next_ms, j->err,
			    sizeof j->err);
	if (j->rc == 1) {
		j->rc = queue_lease(q, now, c->max_batch, LEASE_BYTES, &j->batch, j->err,
				    sizeof j->err);
		j->next_ms = now;
	}
}

static void delivered(struct hreq *r, void *arg);

struct delivery {
	struct consumer *c;
	struct queue_batch batch;
	uint64_t t0;
};

static void settle_run(struct exec_job *job);
static void settle_done(struct exec_job *job, int stopped);

/* A batch leased for a consumer that went meanwhile (a reload, a version
 * unloaded): visible again at once for whoever consumes the queue now. It
 * was never delivered, but its lease counted an attempt. */
static void give_back(struct consumer *c, struct queue_batch *batch)
{
	struct settle_job *s = xcalloc(1, sizeof *s);
	size_t n = batch->count;
	s->job.run = settle_run;
	s->job.done = settle_done;
	s->c = c; /* the poll's reference passes on */
	snprintf(s->dir, sizeof s->dir, "%s", c->h->queue_dir);
	s->ack = xcalloc(1, sizeof *s->ack);
	s->retry_seq = xcalloc(n + 1, sizeof *s->retry_seq);
	s->retry_delay = xcalloc(n + 1, sizeof *s->retry_delay);
	s->dead = xcalloc(1, sizeof *s->dead);
	for (size_t i = 0; i < n; i++)
		s->retry_seq[s->nretry++] = batch->messages[i].seq;
	s->batch = *batch;
	*batch = (struct queue_batch){0};
	c->inflight++; /* settle_done's */
	executor_submit(c->h, &s->job);
}

static void poll_done(struct exec_job *job, int stopped)
{
	struct poll_job *j = (struct poll_job *)job;
	struct consumer *c = j->c;
	c->polling = 0;
	if (!stopped && j->rc < 0)
		log_error("queue \"%s\": %s", c->queue, j->err);
	/* A poll that finished as the host stops (executor_stop hands it back
	 * after the front and the instances are gone) delivers nothing: its
	 * batch stays in flight and the next start delivers it again. */
	stopped = stopped || executor_stopping(c->h);
	if (!stopped && c->stopped && j->rc > 0) {
		give_back(c, &j->batch);
		free(j);
		return;
	}
	if (stopped || c->stopped || j->rc <= 0) {
		if (!stopped && !c->stopped && j->rc == 0) {
			double ms = j->next_ms == INT64_MAX ? POLL_IDLE_MS
							    : (double)(j->next_ms - wall_ms());
			consumer_kick(c, ms < 0 ? 0 : ms > POLL_IDLE_MS ? POLL_IDLE_MS : ms);
		} else if (!stopped && !c->stopped) {
			consumer_kick(c, POLL_IDLE_MS);
		}
		queue_batch_dispose(&j->batch);
		consumer_unref(c);
		free(j);
		return;
	}
	/* The body: one JSON line of the messages' facts, then their bodies. */
	json_t *list = json_array();
	for (size_t i = 0; i < j->batch.count; i++) {
		const struct queue_message *m = &j->batch.messages[i];
		json_array_append_new(list, json_pack("{s:s, s:I, s:i, s:s, s:I}", "id", m->id,
						      "timestamp", (json_int_t)m->timestamp_ms,
						      "attempts", m->attempts, "content_type",
						      m->content_type, "len", (json_int_t)m->body_len));
	}
	char *line = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	struct buf body = {0};
	buf_append(&body, line, strlen(line));
	buf_append(&body, "\n", 1);
	free(line);
	for (size_t i = 0; i < j->batch.count; i++)
		buf_append(&body, j->batch.messages[i].body, j->batch.messages[i].body_len);
	struct delivery *d = xcalloc(1, sizeof *d);
	d->c = c; /* the poll's reference passes to the delivery */
	d->batch = j->batch;
	d->t0 = now_ns();
	j->batch = (struct queue_batch){0};
	free(j);
	c->inflight++;
	host_queue_run(c->a, c->queue, &body, delivered, d);
	buf_free(&body);
	consumer_kick(c, 0); /* another batch may be due */
}

static void consumer_tick(struct loop *l, struct loop_timer *t)
{
	(void)l;
	struct consumer *c = t->arg;
	if (c->stopped || c->polling || c->inflight >= c->concurrency || !c->h->queue_dir)
		return;
	if (!app_live(c->a)) {
		consumer_kick(c, POLL_IDLE_MS);
		return;
	}
	struct poll_job *j = xcalloc(1, sizeof *j);
	j->job.run = poll_run;
	j->job.done = poll_done;
	j->c = c;
	c->refs++;
	c->polling = 1;
	snprintf(j->dir, sizeof j->dir, "%s", c->h->queue_dir);
	executor_submit(c->h, &j->job);
}

static void consumer_kick(struct consumer *c, double ms)
{
	if (c->stopped)
		return;
	if (loop_timer_armed(&c->timer) && ms > 0)
		return; /* an earlier look is due anyway */
	loop_timer_arm(c->h->loop, &c->timer, ms);
}

static void settle_run(struct exec_job *job)
{
	struct settle_job *j = (struct settle_job *)job;
	struct consumer *c = j->c;
	struct queue_store *q = store_get(j->dir, c->queue, j->err, sizeof j->err);
	if (!q) {
		j->rc = -1;
		return;
	}
	int64_t now = wall_ms();
	if (j->ndead && c->dlq[0]) {
		struct queue_store *dq = store_get(j->dir, c->dlq, j->err, sizeof j->err);
		struct queue_send *msgs = xcalloc(j->ndead, sizeof *msgs);
		for (size_t i = 0; i < j->ndead; i++) {
			const struct queue_message *m = &j->batch.messages[j->dead[i]];
			msgs[i] = (struct queue_send){m->body, m->body_len, m->content_type, 0};
		}
		int rc = dq ? queue_send(dq, msgs, j->ndead, now, NULL, j->err, sizeof j->err) : -1;
		free(msgs);
		if (rc < 0) {
			/* Not in the dead-letter queue: keep them for the next try. */
			j->rc = -1;
			for (size_t i = 0; i < j->ndead; i++)
				queue_retry(q, j->batch.messages[j->dead[i]].seq, now, 0, NULL, 0);
			j->ndead = 0;
		}
	}
	int64_t *ack = xcalloc(j->nack + j->ndead + 1, sizeof *ack);
	memcpy(ack, j->ack, j->nack * sizeof *ack);
	for (size_t i = 0; i < j->ndead; i++)
		ack[j->nack + i] = j->batch.messages[j->dead[i]].seq;
	if (queue_ack(q, ack, j->nack + j->ndead, j->err, sizeof j->err) < 0)
		j->rc = -1;
	free(ack);
	for (size_t i = 0; i < j->nretry; i++)
		if (queue_retry(q, j->retry_seq[i], now, j->retry_delay[i], j->err, sizeof j->err) < 0)
			j->rc = -1;
}

static void settle_done(struct exec_job *job, int stopped)
{
	struct settle_job *j = (struct settle_job *)job;
	struct consumer *c = j->c;
	if (!stopped && j->rc < 0)
		log_error("queue \"%s\": settling a batch: %s (its messages are delivered again)",
			  c->queue, j->err);
	c->inflight--;
	consumer_kick(c, 0);
	queue_batch_dispose(&j->batch);
	free(j->ack);
	free(j->retry_seq);
	free(j->retry_delay);
	free(j->dead);
	consumer_unref(c);
	free(j);
}

/* What the handler decided for message i: 1 ack, 2 retry (delay), 0 none. */
static int decision(const json_t *answer, size_t i, int64_t *delay)
{
	size_t k;
	json_t *v;
	json_array_foreach(json_object_get(answer, "retried"), k, v) {
		if (json_integer_value(json_array_get(v, 0)) == (json_int_t)i &&
		    json_is_integer(json_array_get(v, 0))) {
			json_int_t d = json_integer_value(json_array_get(v, 1));
			*delay = d < 0 ? 0 : d > DELAY_MAX ? DELAY_MAX : d;
			return 2;
		}
	}
	json_array_foreach(json_object_get(answer, "acked"), k, v) {
		if (json_is_integer(v) && json_integer_value(v) == (json_int_t)i)
			return 1;
	}
	return 0;
}

static void delivered(struct hreq *r, void *arg)
{
	struct delivery *d = arg;
	struct consumer *c = d->c;
	char error[512];
	int no_retry;
	const char *outcome = host_scheduled_outcome(r, error, sizeof error, &no_retry);
	int ok = !strcmp(outcome, "ok");
	json_t *answer = NULL;
	if (r->resp_end && !r->resp_failed)
		answer = json_loadb((const char *)buf_head(&r->resp_body), buf_used(&r->resp_body),
				    0, NULL);
	if (!json_is_object(answer)) {
		json_decref(answer);
		answer = NULL;
		if (ok) { /* an answer we cannot read: nothing is known to be done */
			ok = 0;
			snprintf(error, sizeof error, "the worker's answer was unreadable");
		}
	}
	struct settle_job *j = xcalloc(1, sizeof *j);
	size_t n = d->batch.count;
	j->job.run = settle_run;
	j->job.done = settle_done;
	j->c = c; /* the delivery's reference passes on */
	snprintf(j->dir, sizeof j->dir, "%s", c->h->queue_dir);
	j->ack = xcalloc(n + 1, sizeof *j->ack);
	j->retry_seq = xcalloc(n + 1, sizeof *j->retry_seq);
	j->retry_delay = xcalloc(n + 1, sizeof *j->retry_delay);
	j->dead = xcalloc(n + 1, sizeof *j->dead);
	size_t dropped = 0;
	for (size_t i = 0; i < n; i++) {
		const struct queue_message *m = &d->batch.messages[i];
		int64_t delay = c->retry_delay;
		int what = answer ? decision(answer, i, &delay) : 0;
		if (what == 0)
			what = ok ? 1 : 2;
		if (what == 1) {
			j->ack[j->nack++] = m->seq;
		} else if (m->attempts > c->max_retries) {
			j->dead[j->ndead++] = i;
			if (!c->dlq[0])
				dropped++;
		} else {
			j->retry_seq[j->nretry] = m->seq;
			j->retry_delay[j->nretry++] = delay;
		}
	}
	json_decref(answer);
	double ms = (double)(now_ns() - d->t0) / 1e6;
	char line[1024];
	snprintf(line, sizeof line,
		 "queue \"%s\" batch of %zu: %s %.1fms, %zu acked, %zu retried, %zu %s%s%s", c->queue,
		 n, outcome, ms, j->nack, j->nretry, j->ndead,
		 c->dlq[0] ? "to the dead-letter queue" : "dropped (no dead-letter queue)",
		 error[0] ? ": " : "", error);
	if (!c->a->hooks && !c->stopped) {
		printf("[%s] %s\n", c->a->cfg->name, line);
		fflush(stdout);
	} else {
		log_info("%s", line);
	}
	if (dropped)
		log_warn("queue \"%s\": %zu message%s dropped after %d retries", c->queue, dropped,
			 dropped == 1 ? "" : "s", c->max_retries);
	j->batch = d->batch;
	free(d);
	executor_submit(c->h, &j->job);
}

static void consumer_release(void *ctx)
{
	struct consumer *c = ctx;
	c->stopped = 1;
	loop_timer_cancel(c->h->loop, &c->timer);
	consumer_unref(c);
}

static int consumer_call(void *ctx, const struct binding_call *call, struct call_result *res,
			 char *err, size_t errlen)
{
	(void)ctx;
	(void)call;
	(void)res;
	snprintf(err, errlen, "not a binding");
	return -1;
}

static const struct binding_kind consumer_kind = {
	.type = "queue-consumer",
	.call = consumer_call,
	.release = consumer_release,
	.hidden = 1,
};

static int entry_int(const json_t *entry, const char *key, int dflt)
{
	json_t *v = json_object_get(entry, key);
	return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static void *consumer_make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	const char *queue = json_string_value(json_object_get(entry, "queue"));
	const char *dlq = json_string_value(json_object_get(entry, "dead_letter_queue"));
	if (!a->h->queue_dir) {
		snprintf(err, errlen, "this host has no queues");
		return NULL;
	}
	if (!name_ok(queue) || (dlq && !name_ok(dlq))) {
		snprintf(err, errlen, "not a queue name");
		return NULL;
	}
	struct consumer *c = xcalloc(1, sizeof *c);
	c->refs = 1;
	c->a = a;
	c->h = a->h;
	snprintf(c->queue, sizeof c->queue, "%s", queue);
	snprintf(c->dlq, sizeof c->dlq, "%s", dlq ? dlq : "");
	c->max_batch = entry_int(entry, "max_batch_size", 10);
	c->timeout_s = entry_int(entry, "max_batch_timeout", 5);
	c->max_retries = entry_int(entry, "max_retries", 3);
	c->retry_delay = entry_int(entry, "retry_delay", 0);
	if (c->retry_delay < 0)
		c->retry_delay = 0;
	c->concurrency = entry_int(entry, "max_concurrency", CONSUMER_CONCURRENCY);
	if (c->concurrency <= 0)
		c->concurrency = CONSUMER_CONCURRENCY;
	c->timer.fn = consumer_tick;
	c->timer.arg = c;
	c->next = consumers;
	consumers = c;
	loop_timer_arm(c->h->loop, &c->timer, 0);
	return c;
}

/* --- producers --- */

struct producer {
	unsigned refs;
	char queue[64];
	int delivery_delay; /* -1: none */
};

struct send_job {
	struct exec_job job;
	struct producer *p;
	struct host *h;
	unsigned instance;
	uint32_t stream;
	char dir[4096];
	uint8_t *bodies;
	struct queue_send msgs[BATCH_MESSAGES_MAX];
	char types[BATCH_MESSAGES_MAX][8];
	size_t n;
	int rc;
	char err[512];
};

static void producer_unref(struct producer *p)
{
	if (--p->refs == 0)
		free(p);
}

static void producer_release(void *ctx)
{
	producer_unref(ctx);
}

static void send_run(struct exec_job *job)
{
	struct send_job *j = (struct send_job *)job;
	struct queue_store *q = store_get(j->dir, j->p->queue, j->err, sizeof j->err);
	j->rc = q ? queue_send(q, j->msgs, j->n, wall_ms(), NULL, j->err, sizeof j->err) : -1;
}

static void send_done(struct exec_job *job, int stopped)
{
	struct send_job *j = (struct send_job *)job;
	if (stopped) {
		binding_call_done(j->h, j->instance, j->stream, NULL, "the host is stopping");
	} else if (j->rc < 0) {
		log_error("queue \"%s\": %s", j->p->queue, j->err);
		binding_call_done(j->h, j->instance, j->stream, NULL,
				  "Queue send failed: Internal Server Error");
	} else {
		struct call_result res;
		call_result_init(&res);
		res.status = 200;
		binding_call_done(j->h, j->instance, j->stream, &res, NULL);
		call_result_dispose(&res);
		wake_consumers(j->p->queue);
	}
	producer_unref(j->p);
	free(j->bodies);
	free(j);
}

/* A decimal argument in [lo, hi]: 1 with *out, 0 absent, -1 otherwise. */
static int arg_range(const struct call_args *args, const char *name, int64_t lo, int64_t hi,
		     int64_t *out)
{
	const uint8_t *v;
	size_t n;
	if (!call_arg(args, name, &v, &n))
		return 0;
	char num[24];
	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, v, n);
	num[n] = 0;
	char *end;
	errno = 0;
	long long x = strtoll(num, &end, 10);
	if (errno || *end || x < lo || x > hi)
		return -1;
	*out = x;
	return 1;
}

static int producer_call(void *ctx, const struct binding_call *c, struct call_result *res,
			 char *err, size_t errlen)
{
	struct producer *p = ctx;
	(void)res;
	int batch = !strcmp(c->method, "send_batch");
	if (!batch && strcmp(c->method, "send")) {
		snprintf(err, errlen, "TypeError: a queue has no method '%.64s'", c->method);
		return -1;
	}
	const char *op = batch ? "sendBatch" : "send";
	if (!c->h->queue_dir) {
		snprintf(err, errlen, "Queue %s failed: this host has no queues", op);
		return -1;
	}
	int64_t n = 0;
	if (arg_range(&c->args, "n", 1, batch ? BATCH_MESSAGES_MAX : 1, &n) != 1) {
		snprintf(err, errlen,
			 "Queue %s failed: a batch holds 1 to %d messages", op, BATCH_MESSAGES_MAX);
		return -1;
	}
	struct send_job *j = xcalloc(1, sizeof *j);
	uint64_t off = 0;
	for (int64_t i = 0; i < n; i++) {
		char key[16];
		const uint8_t *v;
		size_t vl;
		int64_t len = 0, delay = p->delivery_delay >= 0 ? p->delivery_delay : 0;
		snprintf(key, sizeof key, "ct%d", (int)i);
		if (!call_arg(&c->args, key, &v, &vl) || vl == 0 || vl >= sizeof j->types[0]) {
			snprintf(err, errlen, "TypeError: Unsupported queue message content type");
			goto refuse;
		}
		memcpy(j->types[i], v, vl);
		j->types[i][vl] = 0;
		if (strcmp(j->types[i], "json") && strcmp(j->types[i], "text") &&
		    strcmp(j->types[i], "bytes") && strcmp(j->types[i], "v8")) {
			snprintf(err, errlen, "TypeError: Unsupported queue message content type: %s",
				 j->types[i]);
			goto refuse;
		}
		snprintf(key, sizeof key, "len%d", (int)i);
		if (arg_range(&c->args, key, 0, MESSAGE_MAX, &len) != 1) {
			snprintf(err, errlen,
				 "Queue %s failed: message too large: the limit is %u bytes", op,
				 MESSAGE_MAX);
			goto refuse;
		}
		snprintf(key, sizeof key, "delay%d", (int)i);
		if (arg_range(&c->args, key, 0, DELAY_MAX, &delay) < 0) {
			snprintf(err, errlen,
				 "Queue %s failed: delaySeconds must be between 0 and %d seconds", op,
				 DELAY_MAX);
			goto refuse;
		}
		if (off + (uint64_t)len > c->body_len) {
			snprintf(err, errlen, "Queue %s failed: the messages are shorter than said", op);
			goto refuse;
		}
		j->msgs[i] = (struct queue_send){NULL, (size_t)len, j->types[i], delay};
		off += (uint64_t)len;
	}
	if (off != c->body_len) {
		snprintf(err, errlen, "Queue %s failed: the messages are longer than said", op);
		goto refuse;
	}
	if (batch && off > BATCH_BYTES_MAX) {
		snprintf(err, errlen,
			 "Queue sendBatch failed: batch too large: %llu bytes, the limit is %u bytes",
			 (unsigned long long)off, BATCH_BYTES_MAX);
		goto refuse;
	}
	j->bodies = xmalloc(off + 1);
	if (off)
		memcpy(j->bodies, c->body, off);
	off = 0;
	for (int64_t i = 0; i < n; i++) {
		j->msgs[i].body = j->bodies + off;
		off += j->msgs[i].body_len;
	}
	j->n = (size_t)n;
	j->job.run = send_run;
	j->job.done = send_done;
	j->h = c->h;
	j->instance = c->instance_id;
	j->stream = c->stream;
	snprintf(j->dir, sizeof j->dir, "%s", c->h->queue_dir);
	j->p = p;
	p->refs++;
	executor_submit(c->h, &j->job);
	return 1;
refuse:
	free(j);
	return -1;
}

static const struct binding_kind producer_kind = {
	.type = "queue",
	.max_body = BATCH_BYTES_MAX,
	.call = producer_call,
	.release = producer_release,
};

static void *producer_make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	const char *queue = json_string_value(json_object_get(entry, "queue"));
	if (!a->h->queue_dir) {
		snprintf(err, errlen, "this host has no queues");
		return NULL;
	}
	if (!name_ok(queue)) {
		snprintf(err, errlen, "not a queue name");
		return NULL;
	}
	struct producer *p = xcalloc(1, sizeof *p);
	p->refs = 1;
	snprintf(p->queue, sizeof p->queue, "%s", queue);
	p->delivery_delay = entry_int(entry, "delivery_delay", -1);
	return p;
}

void queue_binding_register(void)
{
	binding_kind_register("queues.producers", "binding", &producer_kind, producer_make);
	binding_kind_register("queues.consumers", "queue", &consumer_kind, consumer_make);
}
