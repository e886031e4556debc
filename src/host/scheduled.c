/*
 * Scheduled events (cron triggers) as the host runs them: a run is an
 * internal request (front_internal_submit) whose head says it is a
 * scheduled event, so it waits for, starts (restoring from the snapshot) and
 * is served by an instance exactly as a request from a client is. The
 * instance's runtime calls the worker's `scheduled` handler and answers
 * 200 or 500 with `thaw-outcome` (ok | exception), `thaw-no-retry` and the
 * error's last line as the body (python/_thaw_runtime.py).
 *
 * The head: :method GET, :url http://localhost/__scheduled?cron=..., then
 * :event scheduled, :cron EXPR, :scheduled-time MS (milliseconds since the
 * epoch, UTC). Clients cannot send these: a header name has no ':'.
 *
 * Who decides when to run what (thaw dev: every trigger of its project;
 * thaw serve: every trigger of each worker's deployment, with records in the
 * store) is the caller's; this file only encodes, submits and reads back.
 */
#include "host/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/util.h"
#include "proto/frame.h"

static void kv_put(struct buf *b, const char *k, const char *v, size_t vlen)
{
	uint8_t n[4];
	size_t kl = strlen(k);
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(b, n, 4);
	buf_append(b, k, kl);
	thaw_put_u32(n, (uint32_t)vlen);
	buf_append(b, n, 4);
	buf_append(b, v, vlen);
}

void host_scheduled_pseudo(struct buf *b, const char *cron, int64_t scheduled_ms)
{
	char ms[32];
	snprintf(ms, sizeof ms, "%lld", (long long)scheduled_ms);
	size_t n = strnlen(cron, HOST_SCHEDULED_CRON_MAX);
	kv_put(b, ":event", "scheduled", 9);
	kv_put(b, ":cron", cron, n);
	kv_put(b, ":scheduled-time", ms, strlen(ms));
}

struct hreq *host_scheduled_run(struct app *a, const char *cron, int64_t scheduled_ms,
				void (*done)(struct hreq *r, void *arg), void *arg)
{
	struct buf head = {0};
	uint8_t count[4];
	thaw_put_u32(count, 5);
	buf_append(&head, count, 4);
	kv_put(&head, ":method", "GET", 3);
	const char *url = "http://localhost/__scheduled";
	kv_put(&head, ":url", url, strlen(url));
	host_scheduled_pseudo(&head, cron, scheduled_ms);
	return front_internal_submit(a, "SCHEDULED", cron, &head, NULL, HOST_SCHEDULED_TIMEOUT_MS,
				     done, arg);
}

struct hreq *host_queue_run(struct app *a, const char *queue, struct buf *body,
			    void (*done)(struct hreq *r, void *arg), void *arg)
{
	struct buf head = {0};
	uint8_t count[4];
	thaw_put_u32(count, 4);
	buf_append(&head, count, 4);
	kv_put(&head, ":method", "POST", 4);
	const char *url = "http://localhost/__queue";
	kv_put(&head, ":url", url, strlen(url));
	kv_put(&head, ":event", "queue", 5);
	kv_put(&head, ":queue", queue, strnlen(queue, 64));
	return front_internal_submit(a, "QUEUE", queue, &head, body, HOST_SCHEDULED_TIMEOUT_MS,
				     done, arg);
}

int hreq_resp_header(const struct hreq *r, const char *name, char *out, size_t outlen)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	size_t nl = strlen(name);
	if (thaw_kv_begin(&it, buf_head(&r->resp_headers), buf_used(&r->resp_headers), &err) < 0)
		return 0;
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (kv.klen == nl && strncasecmp((const char *)kv.key, name, nl) == 0) {
			size_t n = kv.vlen < outlen - 1 ? kv.vlen : outlen - 1;
			memcpy(out, kv.val, n);
			out[n] = 0;
			return 1;
		}
	}
	return 0;
}

/* Printable text of at most 300 bytes from p[0..n), one line. */
static void one_line(char *out, size_t outlen, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < outlen && o < 300; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\n' && i + 1 == n)
			break;
		out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[o] = 0;
}

const char *host_scheduled_outcome(const struct hreq *r, char *error, size_t errlen, int *no_retry)
{
	char v[32];
	error[0] = 0;
	*no_retry = hreq_resp_header(r, "thaw-no-retry", v, sizeof v) && !strcmp(v, "1");
	if (r->fail_status) {
		one_line(error, errlen, r->fail_body ? r->fail_body : "",
			 r->fail_body ? strlen(r->fail_body) : 0);
		return r->fail_status == 504 ? "timeout" : "error";
	}
	if (r->resp_failed || !r->resp_end)
		return "error";
	if (hreq_resp_header(r, "thaw-outcome", v, sizeof v) && !strcmp(v, "ok") && r->resp_status == 200)
		return "ok";
	one_line(error, errlen, (const char *)buf_head(&r->resp_body), buf_used(&r->resp_body));
	return "exception";
}

double host_ms_to_next_minute(int64_t now_wall_ms)
{
	int64_t next = (now_wall_ms / 60000 + 1) * 60000;
	return (double)(next - now_wall_ms);
}
