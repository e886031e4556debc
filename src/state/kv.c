/*
 * The KV engine: one Workers KV namespace per SQLite file. The design (the
 * schema, the limits and their messages, cursors, expiry, concurrency,
 * ownership) is written out at the top of kv.h; this comment adds how the
 * code keeps it.
 *
 * Invariants:
 * - Everything from the caller is checked before it reaches SQL, in
 *   Cloudflare's order (key, then the put's expiration, metadata, value), and
 *   every refusal writes the message Cloudflare's runtime throws; the schema
 *   repeats the limits as CHECK constraints, so a row that breaks one can
 *   only come from a file someone edited, and reading such a row is KV_ERR,
 *   never a result with an out-of-range length.
 * - Every write is one statement (its own transaction), so a put or a
 *   delete is all or nothing and a sweep deletes at most max_rows at once.
 * - Every statement is reset when the call returns: no read snapshot is
 *   held between calls (it would keep another connection's checkpoints from
 *   finishing and show this one old data).
 * - A migration is applied with its user_version bump in one transaction;
 *   a file from a newer thaw, or one that is another database, is refused.
 * - A cursor is only ever decoded from base64url into a bounded buffer and
 *   trusted once its SipHash tag matches under this namespace's key.
 *
 * Everything here blocks on the disk; see kv.h.
 */
#include "state/kv.h"
#include "state/sqlite_wal.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#define KV_APPLICATION_ID 1952995147 /* 0x7468574b, "thwK" */
#define STRINGIFY(x) #x
#define STRINGIFY_VALUE(x) STRINGIFY(x)
#define CURSOR_KEY_LEN 16
#define CURSOR_VERSION 1
#define CURSOR_TAG_LEN 8
/* 0x01 | key | tag */
#define CURSOR_RAW_MAX (1 + KV_KEY_MAX + CURSOR_TAG_LEN)
#define BUSY_TIMEOUT_MS 5000
#define JOURNAL_SIZE_LIMIT (64 * 1024 * 1024) /* bytes the WAL is cut back to */

/* Each migration takes the schema from user_version i to i + 1. Append only:
 * a released migration is never edited. */
static const char *const migrations[] = {
	/* 1: the keys, and the namespace's cursor key */
	"CREATE TABLE kv (\n"
	"  key BLOB PRIMARY KEY NOT NULL\n"
	"      CHECK (typeof(key) = 'blob' AND length(key) BETWEEN 1 AND 512),\n"
	"  expiration INTEGER CHECK (expiration IS NULL OR expiration > 0),\n"
	"  metadata TEXT CHECK (metadata IS NULL OR length(CAST(metadata AS BLOB)) <= 1024),\n"
	"  value BLOB NOT NULL CHECK (length(value) <= 26214400)\n"
	") STRICT;\n"
	"CREATE INDEX kv_by_expiration ON kv (expiration) WHERE expiration IS NOT NULL;\n"
	"CREATE TABLE kv_meta (\n"
	"  name TEXT PRIMARY KEY NOT NULL,\n"
	"  value ANY\n"
	") STRICT;\n"
	"INSERT INTO kv_meta (name, value) VALUES ('cursor_key', randomblob(16));\n"
	"PRAGMA application_id = " STRINGIFY_VALUE(KV_APPLICATION_ID) ";\n",
};

enum query {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_GET,
	Q_PUT,
	Q_DELETE,
	Q_LIST_FROM,
	Q_LIST_RANGE,
	Q_SWEEP,
	Q_CURSOR_KEY,
	Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	/* ?2: now in whole seconds; E * 1000 <= now_ms  <=>  E <= floor(now_ms / 1000) */
	[Q_GET] = "SELECT value, metadata, expiration FROM kv "
		  "WHERE key = ?1 AND (expiration IS NULL OR expiration > ?2)",
	[Q_PUT] = "INSERT INTO kv (key, expiration, metadata, value) VALUES (?1, ?2, ?3, ?4) "
		  "ON CONFLICT (key) DO UPDATE SET expiration = excluded.expiration, "
		  "metadata = excluded.metadata, value = excluded.value",
	[Q_DELETE] = "DELETE FROM kv WHERE key = ?1",
	/* keys >= ?1 (and < ?4), live at ?2, at most ?3 */
	[Q_LIST_FROM] = "SELECT key, expiration, metadata FROM kv "
			"WHERE key >= ?1 AND (expiration IS NULL OR expiration > ?2) "
			"ORDER BY key LIMIT ?3",
	[Q_LIST_RANGE] = "SELECT key, expiration, metadata FROM kv "
			 "WHERE key >= ?1 AND key < ?4 AND (expiration IS NULL OR expiration > ?2) "
			 "ORDER BY key LIMIT ?3",
	[Q_SWEEP] = "DELETE FROM kv WHERE rowid IN (SELECT rowid FROM kv WHERE expiration <= ?1 "
		    "ORDER BY expiration LIMIT ?2)",
	[Q_CURSOR_KEY] = "SELECT value FROM kv_meta WHERE name = 'cursor_key'",
};

struct kv_store {
	char *path;
	sqlite3 *db;
	sqlite3_stmt *stmt[Q_COUNT]; /* prepared on first use */
	uint8_t cursor_key[CURSOR_KEY_LEN];
};

/* --- errors --- */

static int db_fail(struct kv_store *kv, char *err, size_t errlen, const char *what)
{
	err_set(err, errlen, "%s: %s: %s", kv->path, what,
		kv->db ? sqlite3_errmsg(kv->db) : "out of memory");
	return KV_ERR;
}

/* A refusal with Cloudflare's message: returns code (KV_ERR_TYPE or
 * KV_ERR_REQUEST). */
__attribute__((format(printf, 4, 5))) static int refuse(int code, char *err, size_t errlen,
							const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* --- checks of what a worker sends --- */

static int utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

/* workerd's validateKeyName (TypeErrors, then the 414), then thaw's UTF-8
 * rule. op is "GET", "PUT" or "DELETE". 0 or a refusal. */
static int key_check(const char *op, const void *key, size_t n, char *err, size_t errlen)
{
	const uint8_t *k = key;
	if (n == 0 || !k)
		return refuse(KV_ERR_TYPE, err, errlen, "Key name cannot be empty.");
	if (n == 1 && k[0] == '.')
		return refuse(KV_ERR_TYPE, err, errlen, "\".\" is not allowed as a key name.");
	if (n == 2 && k[0] == '.' && k[1] == '.')
		return refuse(KV_ERR_TYPE, err, errlen, "\"..\" is not allowed as a key name.");
	if (n > KV_KEY_MAX)
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV %s failed: 414 UTF-8 encoded length of %zu exceeds key length "
			      "limit of %d.",
			      op, n, KV_KEY_MAX);
	if (!utf8_valid(k, n))
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV %s failed: 400 Key name is not valid UTF-8.", op);
	return 0;
}

/* now in whole seconds since the epoch (floor; a clock before 1970 is 0). */
static int64_t seconds_of(int64_t now_ms)
{
	return now_ms > 0 ? now_ms / 1000 : 0;
}

/* The expiration a put stores (0: none), by Cloudflare's rules. 0 or a
 * refusal. */
static int expiration_check(const struct kv_put_options *o, int64_t now_s, int64_t *expiration,
			    char *err, size_t errlen)
{
	*expiration = 0;
	if (o->has_expiration_ttl) { /* used when both are given; expiration is ignored */
		long long ttl = (long long)o->expiration_ttl;
		if (ttl <= 0)
			return refuse(KV_ERR_REQUEST, err, errlen,
				      "KV PUT failed: 400 Invalid expiration_ttl of %lld. Please "
				      "specify integer greater than 0.",
				      ttl);
		if (ttl < KV_EXPIRATION_TTL_MIN)
			return refuse(KV_ERR_REQUEST, err, errlen,
				      "KV PUT failed: 400 Invalid expiration_ttl of %lld. "
				      "Expiration "
				      "TTL must be at least %d.",
				      ttl, KV_EXPIRATION_TTL_MIN);
		if (__builtin_add_overflow(now_s, o->expiration_ttl, expiration))
			return refuse(KV_ERR_REQUEST, err, errlen,
				      "KV PUT failed: 400 Invalid expiration_ttl of %lld. "
				      "Expiration "
				      "TTL is too large.",
				      ttl);
		return 0;
	}
	if (o->has_expiration) {
		long long e = (long long)o->expiration;
		if (o->expiration <= now_s)
			return refuse(
				KV_ERR_REQUEST, err, errlen,
				"KV PUT failed: 400 Invalid expiration of %lld. Please specify "
				"integer greater than the current number of seconds since the "
				"UNIX epoch.",
				e);
		if (o->expiration - now_s < KV_EXPIRATION_TTL_MIN)
			return refuse(KV_ERR_REQUEST, err, errlen,
				      "KV PUT failed: 400 Invalid expiration of %lld. Expiration "
				      "times "
				      "must be at least %d seconds in the future.",
				      e, KV_EXPIRATION_TTL_MIN);
		*expiration = o->expiration;
	}
	return 0;
}

/* Metadata: at most 1024 bytes, then one JSON value (any JSON: integers
 * beyond 64 bits are read as reals just to check the syntax; the text is
 * stored as it came). 0 or a refusal. */
static int metadata_check(const char *m, size_t n, char *err, size_t errlen)
{
	if (n > KV_METADATA_MAX)
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV PUT failed: 413 Metadata length of %zu exceeds limit of %d.", n,
			      KV_METADATA_MAX);
	json_error_t jerr;
	json_t *j =
		json_loadb(m, n, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
	if (!j)
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV PUT failed: 400 Metadata is not valid JSON.");
	json_decref(j);
	return 0;
}

/* --- cursors: SipHash-2-4 and base64url --- */

static uint64_t load_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL64(v1, 13);                                                               \
		v1 ^= v0;                                                                          \
		v0 = ROTL64(v0, 32);                                                               \
		v2 += v3;                                                                          \
		v3 = ROTL64(v3, 16);                                                               \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL64(v3, 21);                                                               \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL64(v1, 17);                                                               \
		v1 ^= v2;                                                                          \
		v2 = ROTL64(v2, 32);                                                               \
	} while (0)

/* SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit PRF for short input. */
static uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t n)
{
	uint64_t k0 = load_le64(key), k1 = load_le64(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0;
	uint64_t v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0;
	uint64_t v3 = 0x7465646279746573ULL ^ k1;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t m = load_le64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	for (size_t j = 0; i + j < n; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url of in, without padding. Returns new. */
static char *b64url_encode(const uint8_t *in, size_t n)
{
	char *out = xmalloc((n + 2) / 3 * 4 + 1);
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18];
		out[o++] = b64url[(v >> 12) & 63];
		out[o++] = b64url[(v >> 6) & 63];
	}
	out[o] = 0;
	return out;
}

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decode canonical unpadded base64url into out (cap bytes). Its length, or
 * -1 when s is not that or does not fit. */
static long b64url_decode(const char *s, size_t n, uint8_t *out, size_t cap)
{
	if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64url_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* leftover bits must be zero: one encoding per cursor */
		return -1;
	return (long)o;
}

static char *cursor_make(const struct kv_store *kv, const uint8_t *key, size_t n)
{
	uint8_t raw[CURSOR_RAW_MAX];
	raw[0] = CURSOR_VERSION;
	memcpy(raw + 1, key, n);
	uint64_t tag = siphash24(kv->cursor_key, raw, 1 + n);
	for (int i = 0; i < CURSOR_TAG_LEN; i++)
		raw[1 + n + i] = (uint8_t)(tag >> (8 * i));
	return b64url_encode(raw, 1 + n + CURSOR_TAG_LEN);
}

/* The key a cursor of this namespace holds, into key (KV_KEY_MAX bytes).
 * 0, or the "Invalid cursor" refusal. */
static int cursor_read(const struct kv_store *kv, const char *cursor, size_t cursor_len,
		       uint8_t *key, size_t *key_len, char *err, size_t errlen)
{
	uint8_t raw[CURSOR_RAW_MAX];
	long n = cursor_len <= KV_CURSOR_MAX ? b64url_decode(cursor, cursor_len, raw, sizeof raw)
					     : -1;
	if (n < 1 + 1 + CURSOR_TAG_LEN || raw[0] != CURSOR_VERSION)
		goto invalid;
	size_t body = (size_t)n - CURSOR_TAG_LEN;
	uint64_t tag = siphash24(kv->cursor_key, raw, body);
	uint8_t diff = 0;
	for (int i = 0; i < CURSOR_TAG_LEN; i++)
		diff |= (uint8_t)(raw[body + (size_t)i] ^ (uint8_t)(tag >> (8 * i)));
	if (diff)
		goto invalid;
	*key_len = body - 1;
	memcpy(key, raw + 1, *key_len);
	return 0;
invalid:
	return refuse(KV_ERR_REQUEST, err, errlen, "KV GET failed: 400 Invalid cursor.");
}

/* --- statements --- */

static sqlite3_stmt *query(struct kv_store *kv, enum query q, char *err, size_t errlen)
{
	if (!kv->stmt[q]) {
		int rc = sqlite3_prepare_v3(kv->db, query_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
					    &kv->stmt[q], NULL);
		if (rc != SQLITE_OK) {
			db_fail(kv, err, errlen, "preparing a statement");
			kv->stmt[q] = NULL;
			return NULL;
		}
	}
	return kv->stmt[q];
}

/* Bind n bytes as a BLOB; an empty one is a zero-length BLOB, not NULL. */
static int bind_bytes(sqlite3_stmt *st, int at, const void *p, size_t n)
{
	if (n == 0)
		return sqlite3_bind_zeroblob(st, at, 0);
	return sqlite3_bind_blob64(st, at, p, (sqlite3_uint64)n, SQLITE_STATIC);
}

/* Make a statement ready for its next use (and end its read). */
static void done(sqlite3_stmt *st)
{
	if (st) {
		(void)sqlite3_reset(st);
		(void)sqlite3_clear_bindings(st);
	}
}

static int exec_query(struct kv_store *kv, enum query q, char *err, size_t errlen, const char *what)
{
	sqlite3_stmt *st = query(kv, q, err, errlen);
	if (!st)
		return KV_ERR;
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : db_fail(kv, err, errlen, what);
	done(st);
	return r;
}

static void rollback(struct kv_store *kv)
{
	char ignored[64];
	if (!sqlite3_get_autocommit(kv->db))
		(void)exec_query(kv, Q_ROLLBACK, ignored, sizeof ignored, "rolling back");
}

/* Copy column col (TEXT JSON or NULL) into *out and *len. 0, or -1 when the row
 * is corrupt. */
static int metadata_column(sqlite3_stmt *st, int col, char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	int type = sqlite3_column_type(st, col);
	if (type == SQLITE_NULL)
		return 0;
	if (type != SQLITE_TEXT)
		return -1;
	const unsigned char *t = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	if (!t || n < 0 || n > KV_METADATA_MAX)
		return -1;
	*out = xmalloc((size_t)n + 1);
	memcpy(*out, t, (size_t)n);
	(*out)[n] = 0;
	*len = (size_t)n;
	return 0;
}

/* An expiration column: 0 for none, or -1 when corrupt. */
static int64_t expiration_column(sqlite3_stmt *st, int col)
{
	int type = sqlite3_column_type(st, col);
	if (type == SQLITE_NULL)
		return 0;
	int64_t e = sqlite3_column_int64(st, col);
	return type == SQLITE_INTEGER && e > 0 ? e : -1;
}

/* --- opening --- */

static int pragma_int(struct kv_store *kv, const char *sql, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(kv->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(kv, err, errlen, sql);
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		r = db_fail(kv, err, errlen, sql);
	sqlite3_finalize(st);
	return r;
}

static int configure(struct kv_store *kv, char *err, size_t errlen)
{
	int rc = sqlite3_extended_result_codes(kv->db, 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(kv->db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(kv->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(kv->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (rc != SQLITE_OK)
		return db_fail(kv, err, errlen, "configuring the connection");

	rc = thaw_sqlite_wal(kv->db, BUSY_TIMEOUT_MS);
	if (rc == SQLITE_DONE)
		return err_set(err, errlen, "%s: the file system does not allow WAL mode",
			       kv->path);
	if (rc != SQLITE_OK)
		return db_fail(kv, err, errlen, "setting the journal mode");

	char sql[96];
	snprintf(sql, sizeof sql, "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = %d",
		 JOURNAL_SIZE_LIMIT);
	if (sqlite3_exec(kv->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(kv, err, errlen, "setting synchronous");
	int64_t sync = 0;
	if (pragma_int(kv, "PRAGMA synchronous", &sync, err, errlen) < 0)
		return KV_ERR;
	if (sync != 2)
		return err_set(err, errlen, "%s: this SQLite ignores synchronous = FULL", kv->path);
	return 0;
}

static int migrate(struct kv_store *kv, char *err, size_t errlen)
{
	const int64_t known = (int64_t)ARRAY_SIZE(migrations);
	for (;;) {
		int64_t have, app, tables;
		if (exec_query(kv, Q_BEGIN, err, errlen, "starting a transaction") < 0)
			return KV_ERR;
		if (pragma_int(kv, "PRAGMA user_version", &have, err, errlen) < 0 ||
		    pragma_int(kv, "PRAGMA application_id", &app, err, errlen) < 0 ||
		    pragma_int(kv, "SELECT count(*) FROM sqlite_schema", &tables, err, errlen) < 0)
			goto error;
		if ((have == 0 && tables != 0) || (have != 0 && app != KV_APPLICATION_ID)) {
			err_set(err, errlen,
				"%s is another SQLite database, not a thaw KV namespace", kv->path);
			goto error;
		}
		if (have > known || have < 0) {
			err_set(err, errlen,
				"%s has KV schema version %lld, newer than this thaw knows (%lld): "
				"run a newer thaw on it",
				kv->path, (long long)have, (long long)known);
			goto error;
		}
		if (have == known)
			return exec_query(kv, Q_COMMIT, err, errlen, "committing");
		char *msg = NULL;
		if (sqlite3_exec(kv->db, migrations[have], NULL, NULL, &msg) != SQLITE_OK) {
			err_set(err, errlen, "%s: schema migration %lld: %s", kv->path,
				(long long)have + 1, msg ? msg : sqlite3_errmsg(kv->db));
			sqlite3_free(msg);
			goto error;
		}
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)have + 1);
		if (sqlite3_exec(kv->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			db_fail(kv, err, errlen, "recording the schema version");
			goto error;
		}
		if (exec_query(kv, Q_COMMIT, err, errlen, "committing a migration") < 0)
			goto error;
	}
error:
	rollback(kv);
	return KV_ERR;
}

static int cursor_key_load(struct kv_store *kv, char *err, size_t errlen)
{
	sqlite3_stmt *st = query(kv, Q_CURSOR_KEY, err, errlen);
	if (!st)
		return KV_ERR;
	int r = 0;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		r = rc == SQLITE_DONE
			    ? err_set(err, errlen, "%s: the cursor key is missing", kv->path)
			    : db_fail(kv, err, errlen, "reading the cursor key");
	else if (sqlite3_column_type(st, 0) != SQLITE_BLOB ||
		 sqlite3_column_bytes(st, 0) != CURSOR_KEY_LEN)
		r = err_set(err, errlen, "%s: the cursor key is corrupt", kv->path);
	else
		memcpy(kv->cursor_key, sqlite3_column_blob(st, 0), CURSOR_KEY_LEN);
	done(st);
	return r;
}

struct kv_store *kv_open(const char *path, char *err, size_t errlen)
{
	struct kv_store *kv = xcalloc(1, sizeof *kv);
	kv->path = xstrdup(path);
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_NOFOLLOW;
	if (sqlite3_open_v2(path, &kv->db, flags, NULL) != SQLITE_OK) {
		db_fail(kv, err, errlen, "cannot open");
		goto error;
	}
	if (configure(kv, err, errlen) < 0 || migrate(kv, err, errlen) < 0 ||
	    cursor_key_load(kv, err, errlen) < 0)
		goto error;
	return kv;
error:
	kv_close(kv);
	return NULL;
}

void kv_close(struct kv_store *kv)
{
	if (!kv)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(kv->stmt[i]);
	sqlite3_close(kv->db); /* every statement is finalized: this closes */
	explicit_bzero(kv->cursor_key, sizeof kv->cursor_key);
	free(kv->path);
	free(kv);
}

/* --- get, put, delete --- */

void kv_entry_dispose(struct kv_entry *e)
{
	if (!e)
		return;
	free(e->value);
	free(e->metadata);
	memset(e, 0, sizeof *e);
}

int kv_get(struct kv_store *kv, const void *key, size_t key_len, int64_t now_ms,
	   struct kv_entry *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	int r = key_check("GET", key, key_len, err, errlen);
	if (r < 0)
		return r;
	sqlite3_stmt *st = query(kv, Q_GET, err, errlen);
	if (!st)
		return KV_ERR;
	int rc = bind_bytes(st, 1, key, key_len);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, seconds_of(now_ms));
	if (rc != SQLITE_OK) {
		r = db_fail(kv, err, errlen, "reading a key");
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = KV_MISSING;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_fail(kv, err, errlen, "reading a key");
		goto out;
	}
	int type = sqlite3_column_type(st, 0);
	const void *value = sqlite3_column_blob(st, 0);
	int n = sqlite3_column_bytes(st, 0);
	int64_t expiration = expiration_column(st, 2);
	if (type != SQLITE_BLOB || n < 0 || n > KV_VALUE_MAX || expiration < 0 ||
	    metadata_column(st, 1, &out->metadata, &out->metadata_len) < 0) {
		r = err_set(err, errlen, "%s: a row is corrupt", kv->path);
		goto out;
	}
	out->value = xmalloc(n ? (size_t)n : 1);
	if (n)
		memcpy(out->value, value, (size_t)n);
	out->value_len = (size_t)n;
	out->expiration = expiration;
	r = KV_FOUND;
out:
	done(st);
	if (r != KV_FOUND)
		kv_entry_dispose(out);
	return r;
}

int kv_put(struct kv_store *kv, const void *key, size_t key_len, const void *value,
	   size_t value_len, const struct kv_put_options *options, int64_t now_ms, char *err,
	   size_t errlen)
{
	static const struct kv_put_options none;
	const struct kv_put_options *o = options ? options : &none;
	int64_t expiration = 0;
	int r = key_check("PUT", key, key_len, err, errlen);
	if (r == 0)
		r = expiration_check(o, seconds_of(now_ms), &expiration, err, errlen);
	if (r == 0 && o->metadata)
		r = metadata_check(o->metadata, o->metadata_len, err, errlen);
	if (r == 0 && value_len > KV_VALUE_MAX)
		r = refuse(KV_ERR_REQUEST, err, errlen,
			   "KV PUT failed: 413 Value length of %zu exceeds limit of %d.", value_len,
			   KV_VALUE_MAX);
	if (r == 0 && value_len && !value)
		r = err_set(err, errlen, "kv_put: no value bytes");
	if (r < 0)
		return r;

	sqlite3_stmt *st = query(kv, Q_PUT, err, errlen);
	if (!st)
		return KV_ERR;
	int rc = bind_bytes(st, 1, key, key_len);
	if (rc == SQLITE_OK)
		rc = expiration ? sqlite3_bind_int64(st, 2, expiration) : sqlite3_bind_null(st, 2);
	if (rc == SQLITE_OK)
		rc = o->metadata ? sqlite3_bind_text64(st, 3, o->metadata, o->metadata_len,
						       SQLITE_STATIC, SQLITE_UTF8)
				 : sqlite3_bind_null(st, 3);
	if (rc == SQLITE_OK)
		rc = bind_bytes(st, 4, value, value_len);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : db_fail(kv, err, errlen, "writing a key");
	done(st);
	return r;
}

int kv_delete(struct kv_store *kv, const void *key, size_t key_len, char *err, size_t errlen)
{
	int r = key_check("DELETE", key, key_len, err, errlen);
	if (r < 0)
		return r;
	sqlite3_stmt *st = query(kv, Q_DELETE, err, errlen);
	if (!st)
		return KV_ERR;
	int rc = bind_bytes(st, 1, key, key_len);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	r = rc == SQLITE_DONE ? 0 : db_fail(kv, err, errlen, "deleting a key");
	done(st);
	return r;
}

/* --- list --- */

void kv_list_dispose(struct kv_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++) {
		free(l->keys[i].name);
		free(l->keys[i].metadata);
	}
	free(l->keys);
	free(l->cursor);
	memset(l, 0, sizeof *l);
}

/* memcmp order of byte strings, the shorter first on a common prefix (as
 * SQLite compares BLOBs). */
static int bytes_compare(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

int kv_list(struct kv_store *kv, const struct kv_list_options *options, int64_t now_ms,
	    struct kv_list *out, char *err, size_t errlen)
{
	static const struct kv_list_options none;
	const struct kv_list_options *o = options ? options : &none;
	memset(out, 0, sizeof *out);

	/* Checked in miniflare's order: limit, prefix; then the cursor. */
	int64_t limit = o->limit > 0 ? o->limit : KV_LIST_LIMIT_MAX;
	if (limit > KV_LIST_LIMIT_MAX)
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV GET failed: 400 Invalid key_count_limit of %lld. Please specify "
			      "an integer less than %d.",
			      (long long)limit, KV_LIST_LIMIT_MAX);
	size_t prefix_len = o->prefix ? o->prefix_len : 0;
	if (prefix_len > KV_KEY_MAX)
		return refuse(KV_ERR_REQUEST, err, errlen,
			      "KV GET failed: 414 UTF-8 encoded length of %zu exceeds key length "
			      "limit of %d.",
			      prefix_len, KV_KEY_MAX);

	/* From: the prefix, or just after the cursor's key when that is later
	 * (key || 0x00 is the least key greater than key). */
	uint8_t from[KV_KEY_MAX + 1];
	size_t from_len = prefix_len;
	if (prefix_len)
		memcpy(from, o->prefix, prefix_len);
	if (o->cursor && o->cursor_len) {
		uint8_t after[KV_KEY_MAX + 1];
		size_t after_len = 0;
		int r = cursor_read(kv, o->cursor, o->cursor_len, after, &after_len, err, errlen);
		if (r < 0)
			return r;
		after[after_len++] = 0;
		if (bytes_compare(after, after_len, from, from_len) > 0) {
			memcpy(from, after, after_len);
			from_len = after_len;
		}
	}
	/* To (excluded): the least byte string greater than every one that
	 * starts with the prefix; none when the prefix is empty or all 0xff. */
	uint8_t to[KV_KEY_MAX];
	size_t to_len = prefix_len;
	if (prefix_len)
		memcpy(to, o->prefix, prefix_len);
	while (to_len && to[to_len - 1] == 0xff)
		to_len--;
	if (to_len)
		to[to_len - 1]++;

	sqlite3_stmt *st = query(kv, to_len ? Q_LIST_RANGE : Q_LIST_FROM, err, errlen);
	if (!st)
		return KV_ERR;
	int r = 0;
	int rc = bind_bytes(st, 1, from, from_len);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, seconds_of(now_ms));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, limit + 1); /* one more: is there a next page? */
	if (rc == SQLITE_OK && to_len)
		rc = bind_bytes(st, 4, to, to_len);
	if (rc != SQLITE_OK) {
		r = db_fail(kv, err, errlen, "listing keys");
		goto out;
	}
	out->keys = xcalloc((size_t)limit, sizeof *out->keys);
	out->list_complete = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->count == (size_t)limit) {
			out->list_complete = 0;
			break;
		}
		int type = sqlite3_column_type(st, 0);
		const void *name = sqlite3_column_blob(st, 0);
		int n = sqlite3_column_bytes(st, 0);
		int64_t expiration = expiration_column(st, 1);
		struct kv_list_key *k = &out->keys[out->count];
		if (type != SQLITE_BLOB || n < 1 || n > KV_KEY_MAX || expiration < 0 ||
		    metadata_column(st, 2, &k->metadata, &k->metadata_len) < 0) {
			free(k->metadata);
			k->metadata = NULL;
			r = err_set(err, errlen, "%s: a row is corrupt", kv->path);
			goto out;
		}
		k->name = xmalloc((size_t)n + 1);
		memcpy(k->name, name, (size_t)n);
		k->name[n] = 0;
		k->name_len = (size_t)n;
		k->expiration = expiration;
		out->count++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		r = db_fail(kv, err, errlen, "listing keys");
		goto out;
	}
	if (!out->list_complete) {
		const struct kv_list_key *last = &out->keys[out->count - 1];
		out->cursor = cursor_make(kv, last->name, last->name_len);
	}
out:
	done(st);
	if (r < 0)
		kv_list_dispose(out);
	return r;
}

/* --- sweep --- */

int kv_sweep(struct kv_store *kv, int64_t now_ms, int max_rows, int *deleted, char *err,
	     size_t errlen)
{
	*deleted = 0;
	if (max_rows < 1)
		return err_set(err, errlen, "kv_sweep: max_rows must be at least 1");
	sqlite3_stmt *st = query(kv, Q_SWEEP, err, errlen);
	if (!st)
		return KV_ERR;
	int rc = sqlite3_bind_int64(st, 1, seconds_of(now_ms));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, max_rows);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_DONE)
		*deleted = sqlite3_changes(kv->db);
	else
		r = db_fail(kv, err, errlen, "deleting expired keys");
	done(st);
	return r;
}
