/*
 * Service bindings (service.c): `env.OTHER.fetch(request)` and
 * `await env.OTHER.method(args)` run another worker of this host, as an
 * internal request (front_internal_stream) whose response streams back
 * into the calling worker's CALL (binding_call_forward), without a network
 * hop. The head builders are pure, so their rules have unit tests and a
 * fuzz target (the arguments are a worker's bytes).
 *
 * A CALL to a service binding (frame.h), from the SDK (workers/_service.py):
 *   fetch  ":call" fetch, ":stream" S, ":method" M, ":url" U, the request's
 *          headers, and its body as the call's body;
 *   rpc    ":call" rpc, ":stream" S, ":rpc-method" NAME, and the encoded
 *          arguments (workers/_rpc.py) as the call's body.
 * ":stream" names the request the call is made for; the host does not
 * trust it alone: hops count from the deepest request of its chain that
 * the instance serves or served lately (binding.h: binding_call.depth).
 *
 * THE HEAD the callee's runtime gets (python/_thaw_runtime.py):
 *   fetch  :method M, :url U, [:entrypoint E], then the headers (a name
 *          starting with ':' is dropped: a worker cannot forge the host's
 *          pseudo-headers);
 *   rpc    :method POST, :url http://SERVICE/__rpc, :event rpc,
 *          :entrypoint E ("" for the default one), :rpc-method NAME.
 * E is the binding's configured entrypoint, never the caller's choice.
 *
 * DEPTH: a request from a client, a cron trigger or a queue is at depth 0;
 * each service call adds one; a call that would go past SERVICE_DEPTH_MAX
 * fails in the caller with SERVICE_DEPTH_ERROR.
 */
#ifndef THAW_HOST_SERVICE_H
#define THAW_HOST_SERVICE_H

#include <stddef.h>

#include "common/buf.h"
#include "host/binding.h"

#define SERVICE_DEPTH_MAX 32u
#define SERVICE_DEPTH_ERROR                                                                        \
	"Subrequest depth limit exceeded. This request recursed through Workers too many times. "  \
	"This can happen e.g. if you have a Worker or Durable Object that calls other Workers or " \
	"objects recursively."
/* The largest request body (fetch) or encoded arguments (rpc) of one call. */
#define SERVICE_BODY_MAX (32ull << 20)
#define SERVICE_URL_MAX 16384u
#define SERVICE_HEADER_VALUE_MAX 16384u

/* The head of a fetch through a binding to entrypoint (NULL: the default
 * one) from the call's args: appended to head (an empty buffer). 0, or -1
 * with err (a missing or malformed :method or :url, a bad header). */
int service_fetch_head(const struct call_args *args, const char *entrypoint, struct buf *head,
		       char *err, size_t errlen);
/* The head of an RPC to service's entrypoint (NULL: the default one). 0, or
 * -1 with err (no :rpc-method, or a name that is not a public method: an
 * identifier not starting with '_'). err starts "TypeError: " when the
 * worker should raise a TypeError. */
int service_rpc_head(const struct call_args *args, const char *service, const char *entrypoint,
		     struct buf *head, char *err, size_t errlen);

/* Register the "services" kind (idempotent): bindings_setup calls it. */
void service_register(void);

#endif
