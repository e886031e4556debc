/*
 * Service bindings: the "services" binding kind (service.h has the CALL,
 * the head the callee gets and the depth rule). A call is answered by an
 * internal request to the app the host's service_app hook names (thaw dev:
 * one of its projects; thaw serve: the worker's deployment, by its split),
 * forwarded with binding_call_forward, so the callee starts, restores or
 * queues exactly as for a client's request and its response streams back
 * under flow control.
 *
 * OWNERSHIP: a binding's ctx (struct service) is the app's, freed by
 * release; nothing of it is needed once the call is forwarded.
 * BLOCKING: nothing.
 */
#include "host/service.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "host/host.h"
#include "proto/frame.h"

struct service {
	char service[64];
	char entrypoint[64]; /* "" for the default one */
};

static void kv_put(struct buf *b, const char *k, size_t kl, const void *v, size_t vl)
{
	uint8_t n[4];
	thaw_put_u32(n, (uint32_t)kl);
	buf_append(b, n, 4);
	buf_append(b, k, kl);
	thaw_put_u32(n, (uint32_t)vl);
	buf_append(b, n, 4);
	buf_append(b, v, vl);
}

static int token_char(uint8_t c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

static int identifier(const uint8_t *p, size_t n)
{
	if (n == 0 || n > 63 || (p[0] >= '0' && p[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return 0;
	return 1;
}

int service_fetch_head(const struct call_args *args, const char *entrypoint, struct buf *head,
		       char *err, size_t errlen)
{
	const uint8_t *m, *u;
	size_t ml, ul;
	if (!call_arg(args, ":method", &m, &ml) || ml == 0 || ml > 32) {
		err_set(err, errlen, "fetch() needs a request method");
		return -1;
	}
	for (size_t i = 0; i < ml; i++)
		if (!token_char(m[i])) {
			err_set(err, errlen, "TypeError: fetch(): the method is not a valid token");
			return -1;
		}
	if (!call_arg(args, ":url", &u, &ul) || ul == 0 || ul > SERVICE_URL_MAX) {
		err_set(err, errlen, "TypeError: fetch() needs a URL of at most %u bytes",
			SERVICE_URL_MAX);
		return -1;
	}
	for (size_t i = 0; i < ul; i++)
		if (u[i] <= 32 || u[i] == 127) {
			err_set(err, errlen, "TypeError: fetch(): the URL has a space or a control "
					     "character");
			return -1;
		}
	uint8_t zero[4] = {0};
	buf_append(head, zero, 4);
	uint32_t count = 2;
	kv_put(head, ":method", 7, m, ml);
	kv_put(head, ":url", 4, u, ul);
	if (entrypoint && *entrypoint) {
		kv_put(head, ":entrypoint", 11, entrypoint, strlen(entrypoint));
		count++;
	}
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *kerr;
	if (thaw_kv_begin(&it, args->kv, args->len, &kerr) < 0) {
		buf_free(head);
		err_set(err, errlen, "malformed call arguments");
		return -1;
	}
	int rc;
	while ((rc = thaw_kv_next(&it, &kv, &kerr)) == 1) {
		if (kv.klen && kv.key[0] == ':')
			continue; /* ours, or forged */
		int ok = kv.klen > 0 && kv.klen <= 256 && kv.vlen <= SERVICE_HEADER_VALUE_MAX;
		for (uint32_t i = 0; ok && i < kv.klen; i++)
			ok = token_char(kv.key[i]);
		for (uint32_t i = 0; ok && i < kv.vlen; i++)
			ok = kv.val[i] != '\r' && kv.val[i] != '\n' && kv.val[i] != 0;
		if (!ok) {
			buf_free(head);
			err_set(err, errlen, "TypeError: fetch(): a request header has an invalid "
					     "name or value");
			return -1;
		}
		kv_put(head, (const char *)kv.key, kv.klen, kv.val, kv.vlen);
		count++;
	}
	if (rc < 0 || count > THAW_KV_MAX || buf_used(head) > THAW_FRAME_MAX_PAYLOAD) {
		buf_free(head);
		err_set(err, errlen, rc < 0 ? "malformed call arguments"
					    : "fetch(): the request head is too large");
		return -1;
	}
	thaw_put_u32(buf_head(head), count);
	return 0;
}

int service_rpc_head(const struct call_args *args, const char *service, const char *entrypoint,
		     struct buf *head, char *err, size_t errlen)
{
	const uint8_t *m;
	size_t ml;
	if (!call_arg(args, ":rpc-method", &m, &ml) || !identifier(m, ml)) {
		err_set(err, errlen, "TypeError: an RPC method's name is an identifier of at most "
				     "63 characters");
		return -1;
	}
	if (m[0] == '_') {
		err_set(err, errlen, "TypeError: The RPC receiver does not implement the method "
				     "\"%.*s\" (names starting with '_' are private)",
			(int)ml, (const char *)m);
		return -1;
	}
	uint8_t count[4];
	thaw_put_u32(count, 5);
	buf_append(head, count, 4);
	char url[128];
	snprintf(url, sizeof url, "http://%.63s/__rpc", service);
	const char *e = entrypoint ? entrypoint : "";
	kv_put(head, ":method", 7, "POST", 4);
	kv_put(head, ":url", 4, url, strlen(url));
	kv_put(head, ":event", 6, "rpc", 3);
	kv_put(head, ":entrypoint", 11, e, strlen(e));
	kv_put(head, ":rpc-method", 11, m, ml);
	return 0;
}

static int service_call(void *ctx, const struct binding_call *c, struct call_result *res,
			char *err, size_t errlen)
{
	struct service *s = ctx;
	struct host *h = c->h;
	int fetch = !strcmp(c->method, "fetch");
	if (!fetch && strcmp(c->method, "rpc") != 0) {
		err_set(err, errlen, "a service binding has fetch() and RPC methods only");
		return -1;
	}
	if (c->depth + 1 > SERVICE_DEPTH_MAX) {
		err_set(err, errlen, "%s", SERVICE_DEPTH_ERROR);
		return -1;
	}
	char why[384] = "";
	struct app *target = h->service_app ? h->service_app(h, s->service, why, sizeof why) : NULL;
	if (!target) {
		err_set(err, errlen, "the service '%s' of binding %s is not available: %s", s->service,
			c->binding, why[0] ? why : "this host serves no other worker");
		return -1;
	}
	struct buf head = {0};
	const char *ep = s->entrypoint[0] ? s->entrypoint : NULL;
	if (fetch ? service_fetch_head(&c->args, ep, &head, err, errlen)
		  : service_rpc_head(&c->args, s->service, ep, &head, err, errlen))
		return -1;
	binding_call_forward(c, target, fetch ? "SERVICE" : "RPC", s->service, &head, c->depth + 1,
			     h->lim.timeout_ms);
	return 1;
}

static void service_release(void *ctx)
{
	free(ctx);
}

static const struct binding_kind service_kind = {
	.type = "service",
	.max_body = SERVICE_BODY_MAX,
	.call = service_call,
	.release = service_release,
};

static void *service_make(struct app *a, const json_t *entry, char *err, size_t errlen)
{
	const char *service = json_string_value(json_object_get(entry, "service"));
	const char *entrypoint = json_string_value(json_object_get(entry, "entrypoint"));
	/* Checked by the project's reader already; the host checks again. */
	if (!service || !*service || strlen(service) > 63 ||
	    (entrypoint && !identifier((const uint8_t *)entrypoint, strlen(entrypoint)))) {
		err_set(err, errlen, "a service binding needs a worker name and an optional "
				     "entrypoint class name");
		return NULL;
	}
	struct service *s = xcalloc(1, sizeof *s);
	snprintf(s->service, sizeof s->service, "%s", service);
	snprintf(s->entrypoint, sizeof s->entrypoint, "%s", entrypoint ? entrypoint : "");
	return s;
}

void service_register(void)
{
	binding_kind_register("services", "binding", &service_kind, service_make);
}
