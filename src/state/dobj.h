/*
 * The Durable Object storage engine: one object's `ctx.storage`, on one
 * SQLite file per object (STATE/do/CLASS/ID.sqlite), with no transport.
 * The host's state executor calls it for an instance that holds the object.
 *
 *   - The key-value API (`get`, `put`, `delete`, `list`, `delete_all`, and a
 *     transaction's writes) keeps its pairs in the table __cf_kv (key TEXT
 *     PRIMARY KEY, value TEXT), as Cloudflare's SQLite-backed objects do.
 *     A value is opaque text here: the worker's SDK encodes the Python value
 *     (python/workers/_clone.py) and decodes it; the engine stores and
 *     bounds it.
 *   - `sql.exec(query, *bindings)` runs on the same file through the D1
 *     engine (its authorizer, limits and time limit), with every table
 *     named __cf_* out of its reach; a cursor comes back whole (columns,
 *     rows, rows_read, rows_written).
 *   - Alarms are not here: they are the host's (dobj_alarms below), so it
 *     knows every object's next alarm without opening every file.
 *
 * The call interface is JSON in and out, one method per storage operation
 * (dobj_call), so the binding passes a worker's arguments through and the
 * fuzzer reaches every parser:
 *   get        {"keys": [k...]}                  -> {"values": {k: v}} (present keys only)
 *   put        {"entries": {k: v}}               -> {}
 *   delete     {"keys": [k...]}                  -> {"deleted": n}
 *   list       {"start"?, "start_after"?, "end"?, "prefix"?, "reverse"?, "limit"?}
 *                                                -> {"entries": [[k, v]...]} in key order
 *   delete_all {}                                -> {}
 *   write      {"puts": {k: v}, "deletes": [k...]} -> {} (a transaction's commit, atomic)
 *   sql        {"query": "...", "params": [...]} -> the cursor (D1_CURSOR)
 *   size       {}                                -> {"bytes": n} (sql.database_size)
 * Keys and values are strings (jansson keeps them valid UTF-8); keys order
 * by their UTF-8 bytes, as Cloudflare's do by code points. Every write is
 * one transaction, durable (WAL, synchronous=FULL) when the call returns.
 *
 * Errors: NULL with err holding the message the worker's exception gets,
 * its type first ("TypeError: ...", "RangeError: ..."; else a plain
 * message, raised as an Error).
 *
 * Threads: a struct dobj is used by one thread at a time; nothing global.
 * Everything here blocks on the disk: never on the host's loop.
 */
#ifndef THAW_STATE_DOBJ_H
#define THAW_STATE_DOBJ_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define DOBJ_MAX_KEY_BYTES 2048          /* Cloudflare's key limit */
#define DOBJ_MAX_VALUE_BYTES (2u << 20)  /* a SQLite-backed object's value limit (encoded) */
#define DOBJ_MAX_KEYS 128                /* keys of one get, put or delete */
#define DOBJ_MAX_WRITE_KEYS 8192         /* puts + deletes of one transaction */
#define DOBJ_MAX_LIST_BYTES (8u << 20)   /* keys and values of one list() answer */

struct dobj;

/* Open (creating) the object's file at path (its directory must exist).
 * NULL with err. */
struct dobj *dobj_open(const char *path, char *err, size_t errlen);
void dobj_close(struct dobj *o);

/* One storage operation (see the top). args borrowed. Returns new, or NULL
 * with err. */
json_t *dobj_call(struct dobj *o, const char *method, json_t *args, char *err, size_t errlen);

/* --- alarms: one table per worker (STATE/do/alarms.sqlite) ---
 * A row per object with an alarm: its class, its id, when (ms since the
 * epoch), and how many times its alarm() has failed in a row. */
struct dobj_alarms;

struct dobj_alarm {
	char cls[128];
	char id[72];
	int64_t at_ms;
	int64_t attempt;
};

struct dobj_alarms *dobj_alarms_open(const char *path, char *err, size_t errlen);
void dobj_alarms_close(struct dobj_alarms *a);
/* set_alarm(at): replaces the object's alarm, attempts back to 0. */
int dobj_alarm_set(struct dobj_alarms *a, const char *cls, const char *id, int64_t at_ms,
		   char *err, size_t errlen);
/* get_alarm(): 1 with *at_ms, 0 when there is none, -1 with err. */
int dobj_alarm_get(struct dobj_alarms *a, const char *cls, const char *id, int64_t *at_ms,
		   char *err, size_t errlen);
int dobj_alarm_delete(struct dobj_alarms *a, const char *cls, const char *id, char *err,
		      size_t errlen);
/* The earliest alarm: 1 with *out, 0 when there is none, -1 with err. */
int dobj_alarm_next(struct dobj_alarms *a, struct dobj_alarm *out, char *err, size_t errlen);
/* The same among the classes of classes_json (a JSON list of names; the
 * alarms of a class no version serves now wait without holding up others),
 * passing over the objects of exclude_json ([[class, id]..]: being
 * delivered; NULL: none). */
int dobj_alarm_next_in(struct dobj_alarms *a, const char *classes_json, const char *exclude_json,
		       struct dobj_alarm *out, char *err, size_t errlen);
/* The alarm that was due at at_ms ran: ok, it is removed, unless alarm()
 * set another meanwhile (a different at_ms); failed, it is due again at
 * retry_ms with attempt + 1. 0, or -1 with err. */
/* A class renamed (to) or deleted (to NULL): its alarms follow or go. */
int dobj_alarms_rename(struct dobj_alarms *a, const char *from, const char *to, char *err,
		       size_t errlen);
int dobj_alarm_ran(struct dobj_alarms *a, const char *cls, const char *id, int64_t at_ms, int ok,
		   int64_t retry_ms, char *err, size_t errlen);

#endif
