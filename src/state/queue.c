/*
 * The Queues engine (queue.h has the design: a message's life, the file).
 *
 * Every function is one SQLite transaction on the queue's connection, so a
 * crash leaves each message either before or after a step, never between:
 * a send of a batch is all or none, a lease marks all of its messages or
 * none. Ids are 16 random bytes in hex (sqlite's randomblob: a CSPRNG
 * seeded from the OS), unique by constraint.
 */
#include "state/queue.h"
#include "state/sqlite_wal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define QUEUE_APPLICATION_ID 0x74685155 /* "thQU" */
#define STR_(x) #x
#define STR(x) STR_(x)
#define BUSY_TIMEOUT_MS 5000

struct queue_store {
	sqlite3 *db;
	char *path;
};

static const char schema[] =
	"PRAGMA application_id = " STR(QUEUE_APPLICATION_ID) ";\n"
	"CREATE TABLE IF NOT EXISTS messages (\n"
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  id TEXT NOT NULL UNIQUE,\n"
	"  body BLOB NOT NULL,\n"
	"  content_type TEXT NOT NULL,\n"
	"  timestamp_ms INTEGER NOT NULL,\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  visible_at_ms INTEGER NOT NULL,\n"
	"  leased INTEGER NOT NULL DEFAULT 0 CHECK (leased IN (0, 1))\n"
	") STRICT;\n"
	"CREATE INDEX IF NOT EXISTS messages_visible ON messages (leased, visible_at_ms, seq);\n"
	"PRAGMA user_version = 1;\n";

static int fail(struct queue_store *q, char *err, size_t errlen, const char *what)
{
	err_set(err, errlen, "%s: %s: %s", q->path, what, sqlite3_errmsg(q->db));
	return -1;
}

static int exec(struct queue_store *q, const char *sql, char *err, size_t errlen)
{
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fail(q, err, errlen, sql);
	return 0;
}

static sqlite3_stmt *prepare(struct queue_store *q, const char *sql, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
		fail(q, err, errlen, "preparing a statement");
		return NULL;
	}
	return st;
}

static int rollback(struct queue_store *q)
{
	sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

struct queue_store *queue_open(const char *path, char *err, size_t errlen)
{
	struct queue_store *q = xcalloc(1, sizeof *q);
	q->path = xstrdup(path);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW;
	if (sqlite3_open_v2(path, &q->db, flags, NULL) != SQLITE_OK) {
		fail(q, err, errlen, "cannot open");
		goto error;
	}
	sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
	sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	int wal = thaw_sqlite_wal(q->db, BUSY_TIMEOUT_MS);
	if (wal != SQLITE_OK) {
		if (wal == SQLITE_DONE)
			snprintf(err, errlen, "%s: the file system does not allow WAL mode", path);
		else
			fail(q, err, errlen, "setting the journal mode");
		goto error;
	}
	if (exec(q, "PRAGMA synchronous = FULL", err, errlen) < 0)
		goto error;
	sqlite3_stmt *st = prepare(q, "PRAGMA application_id", err, errlen);
	if (!st)
		goto error;
	int app = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (app != 0 && app != QUEUE_APPLICATION_ID) {
		err_set(err, errlen, "%s: not a thaw queue (application_id %d)", path, app);
		goto error;
	}
	if (exec(q, schema, err, errlen) < 0)
		goto error;
	return q;
error:
	queue_close(q);
	return NULL;
}

void queue_close(struct queue_store *q)
{
	if (!q)
		return;
	sqlite3_close(q->db);
	free(q->path);
	free(q);
}

int queue_send(struct queue_store *q, const struct queue_send *msgs, size_t n, int64_t now_ms,
	       char (*ids)[QUEUE_ID_LEN + 1], char *err, size_t errlen)
{
	if (exec(q, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	sqlite3_stmt *st = prepare(q,
				   "INSERT INTO messages (id, body, content_type, timestamp_ms, "
				   "visible_at_ms) VALUES (lower(hex(randomblob(16))), ?, ?, ?, ?) "
				   "RETURNING id",
				   err, errlen);
	if (!st)
		return rollback(q);
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_blob64(st, 1, msgs[i].body ? (const void *)msgs[i].body : "",
				    msgs[i].body_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, msgs[i].content_type, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, now_ms);
		sqlite3_bind_int64(st, 4, now_ms + msgs[i].delay_s * 1000);
		if (sqlite3_step(st) != SQLITE_ROW) {
			fail(q, err, errlen, "storing a message");
			sqlite3_finalize(st);
			return rollback(q);
		}
		if (ids)
			snprintf(ids[i], QUEUE_ID_LEN + 1, "%s",
				 (const char *)sqlite3_column_text(st, 0));
		sqlite3_step(st); /* finish the RETURNING statement */
	}
	sqlite3_finalize(st);
	if (exec(q, "COMMIT", err, errlen) < 0)
		return rollback(q);
	return 0;
}

int queue_ready(struct queue_store *q, int64_t now_ms, int max_batch, int64_t wait_ms,
		int64_t *next_ms, char *err, size_t errlen)
{
	*next_ms = INT64_MAX;
	/* The visible messages (up to max_batch), and when the oldest of
	 * them became visible. */
	sqlite3_stmt *st = prepare(q,
				   "SELECT count(*), min(v) FROM (SELECT max(timestamp_ms, "
				   "visible_at_ms) AS v FROM messages WHERE leased = 0 AND "
				   "visible_at_ms <= ? ORDER BY leased, visible_at_ms, seq LIMIT ?)",
				   err, errlen);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms);
	sqlite3_bind_int(st, 2, max_batch);
	if (sqlite3_step(st) != SQLITE_ROW) {
		fail(q, err, errlen, "counting messages");
		sqlite3_finalize(st);
		return -1;
	}
	int visible = sqlite3_column_int(st, 0);
	int64_t oldest = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if (visible >= max_batch || (visible > 0 && oldest + wait_ms <= now_ms))
		return 1;
	if (visible > 0)
		*next_ms = oldest + wait_ms;
	/* A message not visible yet (delayed, retried later). */
	st = prepare(q, "SELECT min(visible_at_ms) FROM messages WHERE leased = 0 AND "
			"visible_at_ms > ?",
		     err, errlen);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		int64_t t = sqlite3_column_int64(st, 0);
		if (t < *next_ms)
			*next_ms = t;
	}
	sqlite3_finalize(st);
	return 0;
}

void queue_batch_dispose(struct queue_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->count; i++)
		free(b->messages[i].body);
	free(b->messages);
	memset(b, 0, sizeof *b);
}

int queue_lease(struct queue_store *q, int64_t now_ms, int max, size_t max_bytes,
		struct queue_batch *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (max <= 0)
		return 0;
	if (exec(q, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	sqlite3_stmt *sel = prepare(q,
				    "SELECT seq, id, body, content_type, timestamp_ms, attempts "
				    "FROM messages WHERE leased = 0 AND visible_at_ms <= ? "
				    "ORDER BY leased, visible_at_ms, seq LIMIT ?",
				    err, errlen);
	sqlite3_stmt *upd = sel ? prepare(q,
					  "UPDATE messages SET leased = 1, attempts = attempts + 1 "
					  "WHERE seq = ?",
					  err, errlen)
				: NULL;
	if (!upd) {
		sqlite3_finalize(sel);
		return rollback(q);
	}
	sqlite3_bind_int64(sel, 1, now_ms);
	sqlite3_bind_int(sel, 2, max);
	out->messages = xcalloc((size_t)max, sizeof *out->messages);
	size_t bytes = 0;
	int rc;
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(sel, 2);
		if (out->count > 0 && bytes + len > max_bytes)
			break;
		struct queue_message *m = &out->messages[out->count];
		m->seq = sqlite3_column_int64(sel, 0);
		snprintf(m->id, sizeof m->id, "%s", (const char *)sqlite3_column_text(sel, 1));
		m->body = xmalloc(len + 1);
		if (len)
			memcpy(m->body, sqlite3_column_blob(sel, 2), len);
		m->body_len = len;
		snprintf(m->content_type, sizeof m->content_type, "%s",
			 (const char *)sqlite3_column_text(sel, 3));
		m->timestamp_ms = sqlite3_column_int64(sel, 4);
		m->attempts = sqlite3_column_int(sel, 5) + 1;
		out->count++;
		bytes += len;
		sqlite3_reset(upd);
		sqlite3_bind_int64(upd, 1, m->seq);
		if (sqlite3_step(upd) != SQLITE_DONE) {
			rc = SQLITE_ERROR;
			break;
		}
	}
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	if ((rc != SQLITE_DONE && rc != SQLITE_ROW) || exec(q, "COMMIT", err, errlen) < 0) {
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			fail(q, err, errlen, "leasing messages");
		queue_batch_dispose(out);
		return rollback(q);
	}
	return (int)out->count;
}

int queue_ack(struct queue_store *q, const int64_t *seqs, size_t n, char *err, size_t errlen)
{
	if (n == 0)
		return 0;
	if (exec(q, "BEGIN IMMEDIATE", err, errlen) < 0)
		return -1;
	sqlite3_stmt *st = prepare(q, "DELETE FROM messages WHERE seq = ?", err, errlen);
	if (!st)
		return rollback(q);
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, seqs[i]);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fail(q, err, errlen, "deleting a message");
			sqlite3_finalize(st);
			return rollback(q);
		}
	}
	sqlite3_finalize(st);
	if (exec(q, "COMMIT", err, errlen) < 0)
		return rollback(q);
	return 0;
}

int queue_retry(struct queue_store *q, int64_t seq, int64_t now_ms, int64_t delay_s, char *err,
		size_t errlen)
{
	sqlite3_stmt *st = prepare(q, "UPDATE messages SET leased = 0, visible_at_ms = ? WHERE seq = ?",
				   err, errlen);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms + delay_s * 1000);
	sqlite3_bind_int64(st, 2, seq);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : fail(q, err, errlen, "retrying a message");
}

int queue_recover(struct queue_store *q, int64_t now_ms, char *err, size_t errlen)
{
	sqlite3_stmt *st = prepare(q,
				   "UPDATE messages SET leased = 0, visible_at_ms = min(visible_at_ms, ?) "
				   "WHERE leased = 1",
				   err, errlen);
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail(q, err, errlen, "recovering messages in flight");
	return sqlite3_changes(q->db);
}

int64_t queue_count(struct queue_store *q, char *err, size_t errlen)
{
	sqlite3_stmt *st = prepare(q, "SELECT count(*) FROM messages", err, errlen);
	if (!st)
		return -1;
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (n < 0)
		fail(q, err, errlen, "counting messages");
	return n;
}
