/*
 * Binding kinds: what serves a binding's calls (binding.c has the registry
 * and the call streams). The assets fetcher lives in the host; the storage
 * kinds (KV, D1, ...) live in thaw-ext.so, which registers them with
 * binding_kind_register, and run their work on the state executor
 * (executor.h), answering later with binding_call_done.
 *
 * A call's life on the host (frame.h, CALL):
 *   RECEIVING  the CALL said ":body N": N bytes come as CALL_BODY frames,
 *              then CALL_END (credit returned as they arrive; the sum of the
 *              bodies an instance may have in flight is bounded);
 *   RUNNING    kind->call(...) returned 1: its answer comes later;
 *   SENDING    CALL_HEAD went out; the result's body goes as CALL_BODY
 *              within the worker's credit, then CALL_END.
 * A call holds a reference on its binding, so a reload (thaw dev) or a
 * version leaving (thaw serve) while calls run frees nothing under them.
 *
 * SPOOLED BODIES (a kind with spool_dir, R2): the request body goes to an
 * unnamed file (O_TMPFILE) in the kind's directory instead of memory, so it
 * may be as large as the kind's max_body (GiBs). The writes run on the state
 * executor, one at a time per call, never on the loop; the host returns the
 * worker's credit as each write completes, so a call holds at most
 * SPOOL_WINDOW bytes in memory whatever its size. A spooled call may say
 * ":body *" (a stream of unknown length, ended by CALL_END, cut off with the
 * kind's too-large refusal past max_body). kind->call then gets the file as
 * body_fd (borrowed: dup it to keep it), its length in body_len, body NULL.
 * The file is not fsynced: a kind that keeps it does.
 * Disk use is bounded: an instance may have at most BINDING_SPOOLS_MAX
 * spooled calls in flight (more are refused), and a write that would leave
 * the spool's file system with less free space than the floor (the larger
 * of 1 GiB and 5 % of its size; THAW_SPOOL_MIN_FREE_BYTES overrides it)
 * refuses its call; either refusal is worded by the kind (refusal).
 */
#ifndef THAW_HOST_BINDING_H
#define THAW_HOST_BINDING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct app;
struct host;

/* A call's arguments: an encoded key/value list (frame.h), borrowed. */
struct call_args {
	const uint8_t *kv;
	size_t len;
};

/* A method's answer: CALL_HEAD's status and key/value pairs (add them with
 * call_result_pair), and a body from an fd (taken), from memory (owned), or
 * a static text. */
struct call_result {
	unsigned status;
	struct buf head; /* u32 count then pairs (call_result_pair makes it) */
	uint32_t npairs;
	int fd;
	uint64_t offset, length;
	struct buf body;
	const char *text;
};

struct binding_call {
	const char *binding; /* the name in env */
	const char *method;
	struct call_args args;
	const uint8_t *body; /* the request body (":body N"), or NULL */
	size_t body_len;
	int body_fd; /* a spooled body (kind->spool_dir), borrowed, or -1 (empty body) */
	uint64_t body_fd_len;
	/* To answer later (kind->call returned 1): */
	struct host *h;
	unsigned instance_id;
	uint32_t stream;
	/* Service-binding hops the call counts from, from the host's records
	 * only: the deepest request of the named request's chain that the
	 * instance serves or served lately (binding.c: call_depth). */
	unsigned depth;
};

/* Spooled calls an instance may have in flight (each may hold a file of up
 * to its kind's max_body until the call ends). */
#define BINDING_SPOOLS_MAX 4u

/* Why the host refused a call's request body (binding_kind.refusal). */
enum binding_refusal {
	BINDING_TOO_LARGE, /* past the kind's max_body */
	BINDING_DISK_FULL, /* the spool's file system is nearly full */
	BINDING_TOO_MANY,  /* BINDING_SPOOLS_MAX spooled calls in flight already */
};

struct binding_kind {
	const char *type;  /* told to the worker in INIT ("assets", "kv", ...) */
	uint64_t max_body; /* the largest request body one call may carry (0: none) */
	/* Non-NULL: request bodies are spooled to a file in this directory (of
	 * ctx; it exists and outlives ctx's calls) instead of memory. */
	const char *(*spool_dir)(void *ctx);
	/* Words the host's refusal of method's request body (why) as the
	 * kind's own errors read, into out (NULL: the host's own words). */
	void (*refusal)(const char *method, enum binding_refusal why, char *out, size_t outlen);
	/* 0: res is the answer now; 1: the kind answers later with
	 * binding_call_done (it copied what it needs from c); -1: err is sent
	 * as CALL_ERROR. */
	int (*call)(void *ctx, const struct binding_call *c, struct call_result *res, char *err,
		    size_t errlen);
	/* The last reference to ctx went (the app's and every call's); NULL:
	 * the app owns ctx. A job a kind runs on the executor must hold a
	 * reference of its own on what it uses (the call that started it may
	 * be cancelled, and its binding released, while the job runs). */
	void (*release)(void *ctx);
	/* Not a name in env: something the app runs because its configuration
	 * says so (a queue consumer). Never told to the worker, never found by
	 * a call; made and released with the app's bindings. */
	int hidden;
	/* More of the binding for the worker's INIT, beside its name and type
	 * (a Durable Object namespace's class_name); NULL: none. Returns new. */
	json_t *(*describe)(void *ctx);
};

void call_result_init(struct call_result *res);
void call_result_dispose(struct call_result *res);
/* Add a pair to res's head (k and v of lengths kl and vl, borrowed). */
void call_result_pair(struct call_result *res, const void *k, size_t kl, const void *v, size_t vl);
/* The same for C strings. */
void call_result_pairs(struct call_result *res, const char *k, const char *v);

/* The value of argument name (exact bytes) in args: 1 with *v and *vlen pointing
 * into args, 0 when absent. */
int call_arg(const struct call_args *args, const char *name, const uint8_t **v, size_t *vlen);

/* A pending call's answer (res taken; or error, a message, when res is
 * NULL). Ignored when the instance or the call has gone meanwhile. */
void binding_call_done(struct host *h, unsigned instance_id, uint32_t stream,
		       struct call_result *res, const char *error);

/*
 * Answer call c (kind->call then returns 1) with the response of an internal
 * request to app a (head taken; the call's own request body, if any, is its
 * body; method static and uri borrowed, for logs; depth its hops, see struct
 * hreq). Its status and headers become CALL_HEAD as soon as they arrive and
 * its body streams on as CALL_BODY: the instance serving it gets its credit
 * back only as the bytes go to the caller, so the host holds at most one
 * stream window of them. A failure before the head (no instance, a load
 * error, the time limit) is answered as that status with its text; one
 * after it is CALL_ERROR. The caller's CANCEL or death cancels the request.
 */
void binding_call_forward(const struct binding_call *c, struct app *a, const char *method,
			  const char *uri, struct buf *head, unsigned depth, double timeout_ms);
/* The same, to the instance pin when it is a ready one of a (a Durable
 * Object's), and on_attach(arg, id) once with the instance it reached (0:
 * none; also when the call had gone already). */
void binding_call_forward_pinned(const struct binding_call *c, struct app *a,
				 const char *method, const char *uri, struct buf *head,
				 unsigned depth, double timeout_ms, unsigned pin,
				 void (*on_attach)(void *arg, unsigned instance_id), void *attach_arg);

/* The factory of a kind configured by the project's JSON (project_to_json)
 * under config_key ("kv_namespaces"; "queues.producers": a member of an
 * object), one binding per entry, named by the
 * entry's name_field ("binding"): ctx for that entry, or NULL with err. */
typedef void *(*binding_factory)(struct app *a, const json_t *entry, char *err, size_t errlen);
/* Register a kind served by the module that calls it (thaw-ext.so at load). */
void binding_kind_register(const char *config_key, const char *name_field,
			   const struct binding_kind *kind, binding_factory make);
/* Is a kind registered for config_key? */
int binding_kind_registered(const char *config_key);

#endif
