/*
 * The Queues engine: one queue in one SQLite file, with no transport. The
 * host runs these functions on its state executor: a producer's
 * `env.JOBS.send(...)` arrives as a call frame and becomes queue_send; a
 * consumer's delivery is queue_ready / queue_lease, then queue_ack /
 * queue_retry with what the worker's handler decided.
 *
 * A message's life:
 *   queue_send      stored, visible at now + delay (attempts 0)
 *   queue_lease     the oldest visible messages, up to a count and a byte
 *                   budget, become in flight (leased = 1) and attempts += 1:
 *                   attempts counts deliveries
 *   queue_ack       deleted
 *   queue_retry     visible again at now + delay, not in flight
 *   queue_recover   (a host starting) every message in flight is visible
 *                   again: its delivery died with the previous host, so it
 *                   is delivered again (at-least-once)
 * Dead-lettering is the caller's: it sends the message's body to the
 * dead-letter queue's store, then acks it here (a crash in between delivers
 * it twice, never loses it).
 *
 * Storage (the caller makes the directory):
 *   PRAGMA application_id = 0x74685155 ('thQU'), user_version 1;
 *   journal_mode=WAL, synchronous=FULL (a send is on disk when it returns),
 *   busy_timeout 5 s.
 *   messages(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE (32 hex),
 *            body BLOB, content_type TEXT, timestamp_ms INTEGER,
 *            attempts INTEGER, visible_at_ms INTEGER, leased INTEGER 0|1)
 *   + an index on (leased, visible_at_ms, seq) for the lease.
 * Delivery order is seq order among visible messages (Cloudflare promises
 * none).
 *
 * Errors: 0 or a count, else -1 with err (the store failed; it names the
 * path: log it, the worker gets a generic failure). Arguments are checked
 * by the caller (the binding enforces Cloudflare's limits).
 *
 * Concurrency: one connection; one thread at a time. Blocking: disk I/O and
 * fsync on every write: never on the host's loop.
 *
 * Ownership: pointer parameters are borrowed; a struct queue_batch filled by
 * queue_lease owns its messages (queue_batch_dispose, which accepts a zeroed
 * struct).
 */
#ifndef THAW_STATE_QUEUE_H
#define THAW_STATE_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#define QUEUE_ID_LEN 32
#define QUEUE_CONTENT_TYPE_MAX 15

struct queue_store;

struct queue_send {
	const uint8_t *body;
	size_t body_len;
	const char *content_type; /* "json", "text", "bytes", "v8" */
	int64_t delay_s;          /* >= 0 */
};

struct queue_message {
	int64_t seq;
	char id[QUEUE_ID_LEN + 1];
	uint8_t *body;
	size_t body_len;
	char content_type[QUEUE_CONTENT_TYPE_MAX + 1];
	int64_t timestamp_ms; /* when it was sent */
	int attempts;         /* deliveries, this one included */
};

struct queue_batch {
	struct queue_message *messages;
	size_t count;
};

/* Open (creating) the queue file at path. NULL with err. */
struct queue_store *queue_open(const char *path, char *err, size_t errlen);
/* Close; accepts NULL. */
void queue_close(struct queue_store *q);
/* Store n messages in one transaction (all or none). The new ids go to
 * ids[i] when ids is not NULL. 0, or -1 with err. */
int queue_send(struct queue_store *q, const struct queue_send *msgs, size_t n, int64_t now_ms,
	       char (*ids)[QUEUE_ID_LEN + 1], char *err, size_t errlen);
/* Should a batch be delivered now: 1 when max_batch visible messages wait or
 * the oldest visible one has waited wait_ms; 0 otherwise, with *next_ms the
 * time to look again (INT64_MAX: nothing pending). -1 with err. */
int queue_ready(struct queue_store *q, int64_t now_ms, int max_batch, int64_t wait_ms,
		int64_t *next_ms, char *err, size_t errlen);
/* Lease up to max visible messages, oldest first, whose bodies total at most
 * max_bytes (the first always fits): they are in flight, attempts + 1. The
 * count (0: none visible), or -1 with err. */
int queue_lease(struct queue_store *q, int64_t now_ms, int max, size_t max_bytes,
		struct queue_batch *out, char *err, size_t errlen);
/* Delete the messages seqs[0..n) (missing ones are ignored). 0, or -1. */
int queue_ack(struct queue_store *q, const int64_t *seqs, size_t n, char *err, size_t errlen);
/* Make message seq visible again at now + delay_s, not in flight. 0, or -1. */
int queue_retry(struct queue_store *q, int64_t seq, int64_t now_ms, int64_t delay_s, char *err,
		size_t errlen);
/* Every message in flight is visible again now. The count, or -1. */
int queue_recover(struct queue_store *q, int64_t now_ms, char *err, size_t errlen);
/* Messages stored (in flight or not), or -1. */
int64_t queue_count(struct queue_store *q, char *err, size_t errlen);
void queue_batch_dispose(struct queue_batch *b);

#endif
