/*
 * thaw host <-> instance protocol.
 *
 * One instance talks to its host over one SOCK_STREAM socketpair and nothing
 * else. The byte stream is a sequence of frames:
 *
 *   offset  size  field
 *   0       4     payload length, little-endian, <= THAW_FRAME_MAX_PAYLOAD
 *   4       1     type (enum thaw_frame_type)
 *   5       1     flags, must be 0 (reserved)
 *   6       2     reserved, must be 0
 *   8       4     stream id, little-endian (0: the instance itself; a request
 *                 below THAW_STREAM_WORKER_BASE, chosen by the host; a binding
 *                 call from THAW_STREAM_WORKER_BASE up, chosen by the
 *                 instance; neither reused while live)
 *   12      len   payload
 *
 * A frame with an unknown type, non-zero reserved bits or an oversized length
 * is a protocol error: the reader stops and the peer is dropped. Nothing is
 * trusted: every length is checked against what is left of the payload.
 *
 * Types and payloads (direction in brackets):
 *   HELLO      [inst->host] JSON object: {"pid": N}. First frame of a process.
 *   INIT       [host->inst] JSON object: what the instance runs (project dir,
 *                           entry module, vars, limits). Per-instance state
 *                           always arrives this way, never via environ/argv.
 *   READY      [inst->host] JSON object: {"concurrency": N, "load_ms": F}.
 *   LOAD_ERROR [inst->host] UTF-8 text: why the worker could not be loaded,
 *                           with the Python traceback. The instance then exits.
 *   SNAP_DONE  [inst->host] JSON object: a builder wrote its snapshot
 *                           ({"bytes", "saved_pages", "regions", "deps", "ms"})
 *                           and exits.
 *   REQ_HEAD   [host->inst] key/value list: ":method", ":url", then facts about
 *                           the request as ":cf-NAME" (request.cf), then headers.
 *   REQ_BODY   [host->inst] raw bytes of the request body.
 *   REQ_END    [host->inst] empty: the request body is complete.
 *   CANCEL     [host->inst] empty: the client went away or timed out.
 *   RESP_HEAD  [inst->host] u16 LE status, then a key/value list of headers.
 *   RESP_BODY  [inst->host] raw bytes of the response body.
 *   RESP_END   [inst->host] empty: the response is complete.
 *   RESP_ERROR [inst->host] UTF-8 text: the handler raised (traceback).
 *   WINDOW     [both]       u32 LE increment: flow-control credit for body
 *                           bytes on that stream, sent by the receiver of the
 *                           body as it consumes it.
 *   LOG        [inst->host] one line the worker printed: a channel byte (1 stdout,
 *                           2 stderr) then UTF-8 text without the newline. The
 *                           stream id is the request being handled when it was
 *                           printed, or 0.
 *   CALL       [inst->host] a call of a binding's method by worker code
 *                           (env.ASSETS.fetch(...)), on a new stream id of the
 *                           instance's space (>= THAW_STREAM_WORKER_BASE). Key/
 *                           value list: ":binding" (its name in env), ":call"
 *                           (the method), then the method's arguments as pairs
 *                           (for an assets fetch: ":method", ":url", then the
 *                           request's headers). At most THAW_CALLS_MAX calls
 *                           of one instance are in flight; one more is
 *                           answered with CALL_ERROR.
 *                           A call may carry a request body: the pair
 *                           ":body" N (decimal bytes, at most the binding
 *                           kind's limit) among the arguments, and the body
 *                           follows as CALL_BODY [inst->host] frames (within
 *                           the call's credit, returned by the host's WINDOW)
 *                           and a CALL_END [inst->host]. The host may answer
 *                           at once or later (a storage binding's work runs
 *                           off its loop), and may refuse a call before its
 *                           body is in (CALL_ERROR; the rest is ignored).
 *   CALL_HEAD  [host->inst] the call's result: u16 LE status, then a key/value
 *                           list (for a fetch: HTTP status and headers).
 *   CALL_BODY  [host->inst] raw bytes of the result's body, within the call
 *                           stream's credit (WINDOW from the instance).
 *   CALL_END   [host->inst] empty: the result is complete; the stream is over.
 *   CALL_ERROR [host->inst] UTF-8 text: the call failed (no such binding or
 *                           method, bad arguments, too many calls in flight);
 *                           the worker raises it. The stream is over.
 *   CANCEL     [inst->host] on a call stream: the worker no longer wants the
 *                           result (the host stops sending; frames already on
 *                           their way are ignored by the instance).
 *
 * Flow control: each stream starts with THAW_STREAM_WINDOW bytes of credit in
 * each direction. A sender of REQ_BODY/RESP_BODY must not send more body bytes
 * than the credit it holds; the receiver returns credit with WINDOW as it
 * hands bytes on. This bounds what either side buffers per stream, so a 50 MB
 * body streams through the host in constant memory.
 *
 * Key/value list: u32 LE count (<= THAW_KV_MAX), then count times:
 *   u32 LE key length, key bytes, u32 LE value length, value bytes.
 */
#ifndef THAW_PROTO_FRAME_H
#define THAW_PROTO_FRAME_H

/* The fd on which an instance (`thaw worker`) finds its end of the
 * socketpair: the host dup2s it there before exec. */
#define THAW_WORKER_FD 3
/* A sandboxed spare's roots (src/worker/sandbox.c): the directories whose
 * trees it may show parts of, one path per line in a sealed memfd on this fd;
 * at most THAW_ROOTS_MAX. It clones each into THAW_ROOTS_FD + 1 + i. */
#define THAW_ROOTS_FD 4
#define THAW_ROOTS_MAX 16
/* A sandboxed spare's control groups: cgroup.procs files open for writing on
 * THAW_CGROUP_FD.. (at most THAW_CGROUP_MAX, one per controller hierarchy);
 * it writes "0" to each first thing, and closes them. */
#define THAW_CGROUP_FD 5
#define THAW_CGROUP_MAX 4
/* The exit status of an instance that ran out of its memory limit without
 * the kernel killing it (a MemoryError under RLIMIT_DATA): it answers its
 * requests 503 first, then exits with this (src/host/limits.c). */
#define THAW_EXIT_MEMORY 86

#include <stddef.h>
#include <stdint.h>

#define THAW_FRAME_HEADER 12u
#define THAW_FRAME_MAX_PAYLOAD (1u << 20)
#define THAW_STREAM_WINDOW (256u * 1024u)
#define THAW_KV_MAX 4096u
/* Stream ids from here up are the instance's (binding calls). */
#define THAW_STREAM_WORKER_BASE 0x80000000u
/* Binding calls of one instance in flight at once, at most. */
#define THAW_CALLS_MAX 64u /* calls of one instance in flight: above the depth limit (32) */

enum thaw_frame_type {
	THAW_F_HELLO = 1,
	THAW_F_INIT = 2,
	THAW_F_READY = 3,
	THAW_F_LOAD_ERROR = 4,
	THAW_F_SNAP_DONE = 5,
	THAW_F_WS_DONE = 6, /* a recorder wrote the working set it was asked for */
	/* The instance is going (payload: why, "memory"): it takes no new
	 * request; it still answers what it holds, then exits. */
	THAW_F_EXITING = 7,
	THAW_F_REQ_HEAD = 16,
	THAW_F_REQ_BODY = 17,
	THAW_F_REQ_END = 18,
	THAW_F_CANCEL = 19,
	THAW_F_RESP_HEAD = 20,
	THAW_F_RESP_BODY = 21,
	THAW_F_RESP_END = 22,
	THAW_F_RESP_ERROR = 23,
	THAW_F_WINDOW = 24,
	THAW_F_LOG = 32,
	THAW_F_CALL = 40,
	THAW_F_CALL_HEAD = 41,
	THAW_F_CALL_BODY = 42,
	THAW_F_CALL_END = 43,
	THAW_F_CALL_ERROR = 44,
};

struct thaw_frame {
	uint8_t type;
	uint32_t stream;
	uint32_t len;
	const uint8_t *payload; /* points into the caller's buffer */
};

enum thaw_frame_status {
	THAW_FRAME_OK = 0,        /* one frame decoded */
	THAW_FRAME_NEED_MORE = 1, /* not enough bytes yet; nothing consumed */
	THAW_FRAME_BAD_TYPE = -1,
	THAW_FRAME_BAD_RESERVED = -2,
	THAW_FRAME_TOO_LARGE = -3,
};

/* Is t a known frame type? */
int thaw_frame_type_valid(unsigned t);
const char *thaw_frame_type_name(unsigned t);
const char *thaw_frame_strerror(int status);

/*
 * Decode one frame from buf[0..len). On THAW_FRAME_OK, *f is filled (its
 * payload points into buf) and *used is the number of bytes it took.
 */
int thaw_frame_decode(const uint8_t *buf, size_t len, struct thaw_frame *f, size_t *used);

/* Write a frame header for a payload of len bytes into hdr. */
void thaw_frame_header(uint8_t hdr[THAW_FRAME_HEADER], uint8_t type, uint32_t stream, uint32_t len);

/* Key/value lists. */
struct thaw_kv {
	const uint8_t *key;
	uint32_t klen;
	const uint8_t *val;
	uint32_t vlen;
};

/* Bytes needed to encode n pairs. */
size_t thaw_kv_size(const struct thaw_kv *kv, size_t n);
/* Encode into out (must hold thaw_kv_size bytes). Returns bytes written. */
size_t thaw_kv_encode(uint8_t *out, const struct thaw_kv *kv, size_t n);

/*
 * Iterate a key/value list. thaw_kv_begin checks the count and returns 0 or
 * -1 (with *err set); thaw_kv_next returns 1 with *kv filled, 0 at the end,
 * -1 on a malformed list.
 */
struct thaw_kv_iter {
	const uint8_t *p;
	size_t left;
	uint32_t count;
	uint32_t index;
};
int thaw_kv_begin(struct thaw_kv_iter *it, const uint8_t *buf, size_t len, const char **err);
int thaw_kv_next(struct thaw_kv_iter *it, struct thaw_kv *kv, const char **err);
/* Validate a whole list: 0 if well-formed (every pair in bounds, no trailing bytes). */
int thaw_kv_validate(const uint8_t *buf, size_t len, const char **err);

/*
 * HTTP header fields as the workers SDK keeps them (python/workers/
 * _headers.py, whose rules these are; the instance builds a request's
 * headers in C with them, src/worker/pymod.c).
 * thaw_http_token: 1 when p[0..n) is a header name, an RFC 9110 token (at
 * least one of the characters !#$%&'*+-.^_`|~, digits and letters), else 0.
 * thaw_http_value: trims spaces and tabs from both ends of *p[0..*n) (moving
 * *p, shrinking *n); 0, or -1 when what is left holds a CR, LF or NUL.
 */
int thaw_http_token(const uint8_t *p, size_t n);
int thaw_http_value(const uint8_t **p, size_t *n);

static inline uint32_t thaw_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void thaw_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t thaw_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline void thaw_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

#endif
