/*
 * The KV engine: one Workers KV namespace in one SQLite file, with
 * Cloudflare's rules, limits and error messages, and no transport. The host
 * runs these functions on a state thread when an instance's `env.KV.get(...)`
 * arrives as a frame; `thaw kv key ...` runs them in the terminal (kv_cli.h).
 *
 * What a worker may do (every byte of it is hostile)
 *   get(key)                  value, metadata, expiration; or missing
 *   put(key, value, options)  expiration | expiration_ttl, metadata
 *   delete(key)               missing is not an error
 *   list(prefix, limit, cursor)
 * and what the host does besides: sweep(now, max_rows), open, close.
 *
 * Limits (Cloudflare's, with the texts its runtime throws; see
 * docs/bindings.md). A key is 1..512 bytes, neither "." nor ".."; a value at
 * most 25 MiB (26,214,400 bytes); metadata at most 1024 bytes of JSON text;
 * expiration_ttl >= 60 s; expiration >= now + 60 s; both given: the TTL is
 * used and the expiration ignored (the documented behaviour of the KV API);
 * a list page holds at most 1000 keys, which is also its default (a limit
 * of 0 or less means "not given", as workerd does not send it).
 * thaw's own rules, which Cloudflare-compatible code cannot break: a key is
 * valid UTF-8 (a JS or Python string always is; NUL is allowed), metadata is
 * one JSON value, a cursor is one this namespace made.
 *
 * Errors: 0 or a named non-negative outcome, else one of
 *   KV_ERR          the store failed (disk, database, corrupt row): err says
 *                   where, with the path; log it, and give the worker only a
 *                   generic failure (the path is the host's business)
 *   KV_ERR_TYPE     what workerd throws as a TypeError before any request
 *                   ("Key name cannot be empty.")
 *   KV_ERR_REQUEST  what workerd throws as an Error, the text being
 *                   "KV <OP> failed: <status> <reason>", e.g.
 *                   "KV PUT failed: 413 Value length of 26214401 exceeds limit of 26214400."
 * For the two refusals err holds exactly the message a worker on Cloudflare
 * would see (without the exception's class name): pass it on as it is. An
 * err of KV_ERR_LEN bytes always holds the whole message.
 *
 * Time: every call that can see expiry takes now_ms (milliseconds since the
 * epoch) from its caller, so tests and the fuzzer control the clock. A key
 * with expiration E (seconds) is expired when E * 1000 <= now_ms; an expired
 * key is missing for get and list at once, and its row is deleted by
 * kv_sweep later (reads never write).
 *
 * Storage (one file per namespace; the caller makes its directory):
 *   PRAGMA application_id = 0x7468574b ('thwK'), user_version = migrations
 *   applied; journal_mode=WAL, synchronous=FULL (a put is on disk when it
 *   returns), busy_timeout 5 s, defensive, untrusted schema.
 *   kv(key BLOB PRIMARY KEY 1..512 bytes, expiration INTEGER seconds or NULL,
 *      metadata TEXT JSON or NULL, value BLOB <= 25 MiB)  STRICT
 *      + a partial index on expiration (for the sweep)
 *   kv_meta(name TEXT PRIMARY KEY, value)  STRICT: 'cursor_key', 16 random
 *      bytes made with the namespace
 *   Keys compare as bytes (memcmp, shorter first on a tie): list order.
 *   The value is the last column, so list and the sweep never read it.
 *
 * Cursors: base64url (no padding) of 0x01 | the page's last key | an 8-byte
 * SipHash-2-4 tag of the two under the namespace's cursor_key. The next page
 * starts after that key. A cursor another namespace made, a tampered or a
 * truncated one fails its tag: "KV GET failed: 400 Invalid cursor." It holds
 * a key the worker has already seen, nothing else; it does not expire, and a
 * cursor used with another prefix lists that prefix after its key.
 *
 * Concurrency: a struct kv_store is one SQLite connection with its prepared
 * statements: one thread at a time may use it; different stores (also on
 * the same file, in this process or another: `thaw kv` while a host runs)
 * may be used at the same time. Each write is one statement, so one
 * transaction; reads never block writers (WAL) and a writer waits up to the
 * busy timeout for another. Nothing here touches global state (no
 * sqlite3_config, no static mutable data, no logging).
 *
 * Blocking: every call does disk I/O: a put or a delete waits for an fsync,
 * a put or a get copies up to 25 MiB, a list reads up to 1001 rows. Run them
 * off the host's loop.
 *
 * Ownership: every pointer parameter is borrowed for the call. A result
 * (struct kv_entry, struct kv_list) is filled by the call in the caller's
 * memory and holds what it points to: kv_entry_dispose / kv_list_dispose
 * free that (and accept a zeroed or disposed struct). On a failure a result
 * holds nothing to free.
 */
#ifndef THAW_STATE_KV_H
#define THAW_STATE_KV_H

#include <stddef.h>
#include <stdint.h>

#define KV_KEY_MAX 512                  /* bytes of a key (and of a list prefix) */
#define KV_VALUE_MAX (25 * 1024 * 1024) /* bytes of a value */
#define KV_METADATA_MAX 1024            /* bytes of metadata's JSON text */
#define KV_EXPIRATION_TTL_MIN 60        /* seconds */
#define KV_LIST_LIMIT_MAX 1000          /* keys per list page, and the default */
#define KV_CURSOR_MAX 1024              /* characters of a cursor we accept */
#define KV_ERR_LEN 512                  /* an err this size holds any message */

/* Outcomes of kv_get besides an error. */
enum { KV_FOUND = 0, KV_MISSING = 1 };
/* Failures: see the opening comment. */
enum { KV_ERR = -1, KV_ERR_TYPE = -2, KV_ERR_REQUEST = -3 };

struct kv_store;

/* Open (creating) the namespace stored at path; its directory must exist.
 * Migrates the schema; refuses a file that is another SQLite database or
 * from a newer thaw. Returns new (kv_close), or NULL with err. */
struct kv_store *kv_open(const char *path, char *err, size_t errlen);
void kv_close(struct kv_store *kv); /* accepts NULL */

/* A value as kv_get returns it. */
struct kv_entry {
	uint8_t *value; /* value_len bytes (never NULL when found, even for 0) */
	size_t value_len;
	char *metadata; /* JSON text, NUL-terminated; NULL when none */
	size_t metadata_len;
	int64_t expiration; /* seconds since the epoch; 0 when none */
};
void kv_entry_dispose(struct kv_entry *e);

/* Look key up at now_ms. KV_FOUND (out filled), KV_MISSING (out zeroed;
 * also for an expired key), or an error with err (out zeroed). */
int kv_get(struct kv_store *kv, const void *key, size_t key_len, int64_t now_ms,
	   struct kv_entry *out, char *err, size_t errlen);

/* Options of kv_put; a zeroed struct (or NULL) is "none". */
struct kv_put_options {
	int has_expiration;     /* expiration was given (0 is a given value) */
	int64_t expiration;     /* seconds since the epoch */
	int has_expiration_ttl; /* expiration_ttl was given */
	int64_t expiration_ttl; /* seconds from now_ms */
	const char *metadata;   /* JSON text (the transport serialises it as
				 * JSON.stringify does: its length is what is
				 * limited); NULL: none */
	size_t metadata_len;
};

/* Store value under key (replacing value, metadata and expiration), checked
 * in Cloudflare's order: key, expiration, metadata, value size. Durable when
 * it returns 0; else an error with err and nothing changed. */
int kv_put(struct kv_store *kv, const void *key, size_t key_len, const void *value,
	   size_t value_len, const struct kv_put_options *options, int64_t now_ms, char *err,
	   size_t errlen);

/* Delete key (a missing key is not an error). 0, or an error with err. */
int kv_delete(struct kv_store *kv, const void *key, size_t key_len, char *err, size_t errlen);

/* Options of kv_list; a zeroed struct (or NULL) lists from the start. */
struct kv_list_options {
	const void *prefix; /* NULL or prefix_len 0: every key */
	size_t prefix_len;
	int64_t limit;      /* 1..1000; 0 or less: 1000 */
	const char *cursor; /* from a previous page; NULL or "": the start */
	size_t cursor_len;
};

struct kv_list_key {
	uint8_t *name; /* name_len bytes, NUL-terminated besides */
	size_t name_len;
	int64_t expiration; /* 0 when none */
	char *metadata;     /* JSON text, NUL-terminated; NULL when none */
	size_t metadata_len;
};

/* A page of keys in byte order. */
struct kv_list {
	struct kv_list_key *keys;
	size_t count;
	int list_complete; /* 1: no key after this page */
	char *cursor;      /* NUL-terminated; NULL when list_complete */
};
void kv_list_dispose(struct kv_list *l);

/* One page of the keys that start with the prefix and are not expired at
 * now_ms, after the cursor's key. 0 (out filled), or an error with err. */
int kv_list(struct kv_store *kv, const struct kv_list_options *options, int64_t now_ms,
	    struct kv_list *out, char *err, size_t errlen);

/* Delete at most max_rows (1 or more) keys expired at now_ms, the longest
 * expired first, in one transaction; *deleted says how many. Call again
 * while *deleted == max_rows. 0, or KV_ERR with err. */
int kv_sweep(struct kv_store *kv, int64_t now_ms, int max_rows, int *deleted, char *err,
	     size_t errlen);

#endif
