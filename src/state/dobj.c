/* The Durable Object storage engine (dobj.h). */
#include "state/dobj.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "state/d1.h"
#include "state/sqlite_wal.h"

#define DOBJ_BUSY_MS 5000

struct dobj {
	sqlite3 *db;      /* the key-value table's connection */
	struct d1_db *sql; /* sql.exec's, opened on first use */
	char *path;
};

/* --- small helpers --- */

static int db_err(sqlite3 *db, char *err, size_t errlen, const char *what)
{
	return err_set(err, errlen, "Durable Object storage: %s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		err_set(err, errlen, "Durable Object storage: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static sqlite3 *open_db(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		err_set(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, DOBJ_BUSY_MS);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	rc = thaw_sqlite_wal(db, DOBJ_BUSY_MS);
	if (rc != SQLITE_OK) {
		err_set(err, errlen, "%s: cannot use WAL mode: %s", path,
			rc == SQLITE_DONE ? "the file system refuses it" : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	if (exec(db, "PRAGMA synchronous = FULL", err, errlen) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	return db;
}

struct dobj *dobj_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = open_db(path, err, errlen);
	if (!db)
		return NULL;
	if (exec(db, "CREATE TABLE IF NOT EXISTS __cf_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
		     " WITHOUT ROWID",
		 err, errlen) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	struct dobj *o = xcalloc(1, sizeof *o);
	o->db = db;
	o->path = xstrdup(path);
	return o;
}

void dobj_close(struct dobj *o)
{
	if (!o)
		return;
	d1_close(o->sql);
	sqlite3_close(o->db);
	free(o->path);
	free(o);
}

/* A key from the worker: a string within the limit. */
static const char *key_of(json_t *k, size_t *len, char *err, size_t errlen)
{
	if (!json_is_string(k)) {
		err_set(err, errlen, "TypeError: a key must be a string");
		return NULL;
	}
	*len = json_string_length(k);
	if (*len > DOBJ_MAX_KEY_BYTES) {
		err_set(err, errlen, "RangeError: Keys cannot be larger than %d bytes (this one is %zu)",
			DOBJ_MAX_KEY_BYTES, *len);
		return NULL;
	}
	return json_string_value(k);
}

static const char *value_of(json_t *v, size_t *len, char *err, size_t errlen)
{
	if (!json_is_string(v)) {
		err_set(err, errlen, "TypeError: a stored value must come encoded as a string");
		return NULL;
	}
	*len = json_string_length(v);
	if (*len > DOBJ_MAX_VALUE_BYTES) {
		err_set(err, errlen,
			"RangeError: Values cannot be larger than %u bytes (this one is %zu encoded)",
			DOBJ_MAX_VALUE_BYTES, *len);
		return NULL;
	}
	return json_string_value(v);
}

static json_t *keys_arg(json_t *args, const char *name, size_t max, char *err, size_t errlen)
{
	json_t *keys = json_object_get(args, name);
	if (!json_is_array(keys)) {
		err_set(err, errlen, "TypeError: %s must be a list of strings", name);
		return NULL;
	}
	if (json_array_size(keys) > max) {
		err_set(err, errlen, "RangeError: at most %zu keys at once (%zu given)", max,
			json_array_size(keys));
		return NULL;
	}
	size_t i, len;
	json_t *k;
	json_array_foreach(keys, i, k) if (!key_of(k, &len, err, errlen)) return NULL;
	return keys;
}

/* --- the key-value methods --- */

static json_t *do_get(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	json_t *keys = keys_arg(args, "keys", DOBJ_MAX_KEYS, err, errlen);
	if (!keys)
		return NULL;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(o->db, "SELECT value FROM __cf_kv WHERE key = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		return db_err(o->db, err, errlen, "get"), NULL;
	json_t *values = json_object();
	size_t i;
	json_t *k;
	int failed = 0;
	/* One read transaction: the values come from one moment. */
	if (exec(o->db, "BEGIN", err, errlen) < 0) {
		sqlite3_finalize(st);
		json_decref(values);
		return NULL;
	}
	json_array_foreach(keys, i, k)
	{
		sqlite3_bind_text(st, 1, json_string_value(k), (int)json_string_length(k),
				  SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			json_t *v = json_stringn((const char *)sqlite3_column_text(st, 0),
						 (size_t)sqlite3_column_bytes(st, 0));
			if (v)
				json_object_setn_new(values, json_string_value(k), json_string_length(k),
						     v);
		} else if (rc != SQLITE_DONE) {
			db_err(o->db, err, errlen, "get");
			failed = 1;
		}
		sqlite3_reset(st);
		if (failed)
			break;
	}
	sqlite3_finalize(st);
	exec(o->db, "COMMIT", err, errlen);
	if (failed) {
		json_decref(values);
		return NULL;
	}
	return json_pack("{s:o}", "values", values);
}

/* Puts then deletes, in the transaction the caller began. */
static int write_pairs(struct dobj *o, json_t *puts, json_t *deletes, int64_t *deleted, char *err,
		       size_t errlen)
{
	int r = 0;
	sqlite3_stmt *put = NULL, *del = NULL;
	if (puts && json_object_size(puts)) {
		if (sqlite3_prepare_v2(o->db,
				       "INSERT INTO __cf_kv (key, value) VALUES (?, ?) "
				       "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
				       -1, &put, NULL) != SQLITE_OK)
			return db_err(o->db, err, errlen, "put");
		const char *k;
		size_t kl;
		json_t *v;
		json_object_keylen_foreach(puts, k, kl, v)
		{
			size_t vl;
			const char *vt = value_of(v, &vl, err, errlen);
			if (!vt || kl > DOBJ_MAX_KEY_BYTES) {
				if (vt)
					err_set(err, errlen,
						"RangeError: Keys cannot be larger than %d bytes (this one "
						"is %zu)",
						DOBJ_MAX_KEY_BYTES, kl);
				r = -1;
				break;
			}
			sqlite3_bind_text(put, 1, k, (int)kl, SQLITE_STATIC);
			sqlite3_bind_text(put, 2, vt, (int)vl, SQLITE_STATIC);
			if (sqlite3_step(put) != SQLITE_DONE) {
				r = db_err(o->db, err, errlen, "put");
				break;
			}
			sqlite3_reset(put);
		}
	}
	if (r == 0 && deletes && json_array_size(deletes)) {
		if (sqlite3_prepare_v2(o->db, "DELETE FROM __cf_kv WHERE key = ?", -1, &del, NULL) !=
		    SQLITE_OK) {
			r = db_err(o->db, err, errlen, "delete");
		} else {
			size_t i;
			json_t *k;
			json_array_foreach(deletes, i, k)
			{
				sqlite3_bind_text(del, 1, json_string_value(k),
						  (int)json_string_length(k), SQLITE_STATIC);
				if (sqlite3_step(del) != SQLITE_DONE) {
					r = db_err(o->db, err, errlen, "delete");
					break;
				}
				if (deleted)
					*deleted += sqlite3_changes(o->db);
				sqlite3_reset(del);
			}
		}
	}
	sqlite3_finalize(put);
	sqlite3_finalize(del);
	return r;
}

static json_t *in_transaction(struct dobj *o, json_t *puts, json_t *deletes, int64_t *deleted,
			      char *err, size_t errlen)
{
	if (exec(o->db, "BEGIN IMMEDIATE", err, errlen) < 0)
		return NULL;
	if (write_pairs(o, puts, deletes, deleted, err, errlen) < 0) {
		char ignore[64];
		exec(o->db, "ROLLBACK", ignore, sizeof ignore);
		return NULL;
	}
	if (exec(o->db, "COMMIT", err, errlen) < 0) {
		char ignore[64];
		exec(o->db, "ROLLBACK", ignore, sizeof ignore);
		return NULL;
	}
	return json_object();
}

static json_t *do_put(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	json_t *entries = json_object_get(args, "entries");
	if (!json_is_object(entries))
		return err_set(err, errlen, "TypeError: put() takes a key and a value, or a dict"),
		       NULL;
	if (json_object_size(entries) > DOBJ_MAX_KEYS)
		return err_set(err, errlen, "RangeError: at most %d keys at once (%zu given)",
			       DOBJ_MAX_KEYS, json_object_size(entries)),
		       NULL;
	return in_transaction(o, entries, NULL, NULL, err, errlen);
}

static json_t *do_delete(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	json_t *keys = keys_arg(args, "keys", DOBJ_MAX_KEYS, err, errlen);
	if (!keys)
		return NULL;
	int64_t n = 0;
	json_t *r = in_transaction(o, NULL, keys, &n, err, errlen);
	if (!r)
		return NULL;
	json_decref(r);
	return json_pack("{s:I}", "deleted", (json_int_t)n);
}

static json_t *do_write(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	json_t *puts = json_object_get(args, "puts");
	json_t *deletes = json_object_get(args, "deletes");
	if (puts && !json_is_object(puts))
		return err_set(err, errlen, "TypeError: puts must be a dict"), NULL;
	if (!deletes)
		deletes = NULL;
	else if (!keys_arg(args, "deletes", DOBJ_MAX_WRITE_KEYS, err, errlen))
		return NULL;
	if ((puts ? json_object_size(puts) : 0) + (deletes ? json_array_size(deletes) : 0) >
	    DOBJ_MAX_WRITE_KEYS)
		return err_set(err, errlen, "RangeError: a transaction may write at most %d keys",
			       DOBJ_MAX_WRITE_KEYS),
		       NULL;
	/* Deletes first, then puts: the transaction's last word on a key is
	 * what it holds, and the SDK sends each key in one of the two only. */
	if (exec(o->db, "BEGIN IMMEDIATE", err, errlen) < 0)
		return NULL;
	if (write_pairs(o, NULL, deletes, NULL, err, errlen) < 0 ||
	    write_pairs(o, puts, NULL, NULL, err, errlen) < 0 ||
	    exec(o->db, "COMMIT", err, errlen) < 0) {
		char ignore[64];
		exec(o->db, "ROLLBACK", ignore, sizeof ignore);
		return NULL;
	}
	return json_object();
}

static const char *opt_string(json_t *args, const char *name, int *bad)
{
	json_t *v = json_object_get(args, name);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || json_string_length(v) > DOBJ_MAX_KEY_BYTES ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = 1;
		return NULL;
	}
	return json_string_value(v);
}

static json_t *do_list(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	if (args && !json_is_object(args))
		return err_set(err, errlen, "TypeError: list() options must be a dict"), NULL;
	int bad = 0;
	const char *start = opt_string(args, "start", &bad);
	const char *after = opt_string(args, "start_after", &bad);
	const char *end = opt_string(args, "end", &bad);
	const char *prefix = opt_string(args, "prefix", &bad);
	if (bad)
		return err_set(err, errlen,
			       "TypeError: start, start_after, end and prefix must be strings of at "
			       "most %d bytes",
			       DOBJ_MAX_KEY_BYTES),
		       NULL;
	if (start && after)
		return err_set(err, errlen,
			       "TypeError: list() cannot take both start and start_after"),
		       NULL;
	json_t *rv = json_object_get(args, "reverse");
	if (rv && !json_is_boolean(rv) && !json_is_null(rv))
		return err_set(err, errlen, "TypeError: reverse must be a bool"), NULL;
	int reverse = json_is_true(rv);
	json_t *lv = json_object_get(args, "limit");
	int64_t limit = -1;
	if (lv && !json_is_null(lv)) {
		if (!json_is_integer(lv) || json_integer_value(lv) <= 0)
			return err_set(err, errlen, "RangeError: limit must be a positive integer"),
			       NULL;
		limit = json_integer_value(lv);
	}
	char sql[320];
	snprintf(sql, sizeof sql,
		 "SELECT key, value FROM __cf_kv WHERE (?1 IS NULL OR key >= ?1) AND "
		 "(?2 IS NULL OR key > ?2) AND (?3 IS NULL OR key < ?3) AND "
		 "(?4 IS NULL OR (key >= ?4 AND substr(key, 1, length(?4)) = ?4)) "
		 "ORDER BY key %s LIMIT ?5",
		 reverse ? "DESC" : "ASC");
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(o->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(o->db, err, errlen, "list"), NULL;
	const char *b[4] = {start, after, end, prefix};
	for (int i = 0; i < 4; i++)
		if (b[i])
			sqlite3_bind_text(st, i + 1, b[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, limit);
	json_t *entries = json_array();
	size_t bytes = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t kl = (size_t)sqlite3_column_bytes(st, 0);
		const char *k = (const char *)sqlite3_column_text(st, 0);
		size_t vl = (size_t)sqlite3_column_bytes(st, 1);
		const char *v = (const char *)sqlite3_column_text(st, 1);
		bytes += kl + vl;
		if (bytes > DOBJ_MAX_LIST_BYTES) {
			sqlite3_finalize(st);
			json_decref(entries);
			return err_set(err, errlen,
				       "RangeError: list() would return over %u MiB: pass a limit",
				       DOBJ_MAX_LIST_BYTES >> 20),
			       NULL;
		}
		json_array_append_new(entries,
				      json_pack("[s%, s%]", k ? k : "", kl, v ? v : "", vl));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		json_decref(entries);
		return db_err(o->db, err, errlen, "list"), NULL;
	}
	return json_pack("{s:o}", "entries", entries);
}

/* deleteAll(): a SQLite-backed object's whole storage, its SQL tables too,
 * in one transaction (virtual tables first: they drop their shadow tables). */
static json_t *do_delete_all(struct dobj *o, char *err, size_t errlen)
{
	if (exec(o->db, "BEGIN IMMEDIATE", err, errlen) < 0)
		return NULL;
	int failed = exec(o->db, "DELETE FROM __cf_kv", err, errlen) < 0;
	for (int round = 0; !failed && round < 10000; round++) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(o->db,
				       "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE "
				       "'sqlite\\_%' ESCAPE '\\' AND name <> '__cf_kv' AND type IN "
				       "('table', 'view', 'trigger') ORDER BY (sql LIKE 'CREATE VIRTUAL%') "
				       "DESC, type = 'table' LIMIT 1",
				       -1, &st, NULL) != SQLITE_OK) {
			failed = db_err(o->db, err, errlen, "deleteAll") < 0;
			break;
		}
		if (sqlite3_step(st) != SQLITE_ROW) {
			sqlite3_finalize(st);
			break;
		}
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		char *sql = sqlite3_mprintf("DROP %s \"%w\"",
					    !strcmp(type, "view")      ? "VIEW"
					    : !strcmp(type, "trigger") ? "TRIGGER"
								       : "TABLE",
					    name);
		sqlite3_finalize(st);
		failed = exec(o->db, sql, err, errlen) < 0;
		sqlite3_free(sql);
	}
	if (failed || exec(o->db, "COMMIT", err, errlen) < 0) {
		char ignore[64];
		exec(o->db, "ROLLBACK", ignore, sizeof ignore);
		return NULL;
	}
	return json_object();
}

static json_t *do_sql(struct dobj *o, json_t *args, char *err, size_t errlen)
{
	json_t *q = json_object_get(args, "query");
	json_t *params = json_object_get(args, "params");
	if (!json_is_string(q))
		return err_set(err, errlen, "TypeError: exec() takes the query as a string"), NULL;
	if (params && !json_is_array(params) && !json_is_null(params))
		return err_set(err, errlen, "TypeError: the bindings must be a list"), NULL;
	if (strlen(json_string_value(q)) != json_string_length(q))
		return err_set(err, errlen, "TypeError: the query holds a NUL character"), NULL;
	if (!o->sql) {
		struct d1_options opt = {.reserved_prefix = "__cf_"};
		o->sql = d1_open(o->path, &opt, err, errlen);
		if (!o->sql)
			return NULL;
	}
	return d1_query(o->sql, json_string_value(q), json_is_array(params) ? params : NULL,
			D1_CURSOR, NULL, err, errlen);
}

static json_t *do_size(struct dobj *o, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(o->db,
			       "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(o->db, err, errlen, "size"), NULL;
	int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return json_pack("{s:I}", "bytes", (json_int_t)n);
}

json_t *dobj_call(struct dobj *o, const char *method, json_t *args, char *err, size_t errlen)
{
	if (args && !json_is_object(args))
		return err_set(err, errlen, "TypeError: the arguments must be an object"), NULL;
	if (!strcmp(method, "get"))
		return do_get(o, args, err, errlen);
	if (!strcmp(method, "put"))
		return do_put(o, args, err, errlen);
	if (!strcmp(method, "delete"))
		return do_delete(o, args, err, errlen);
	if (!strcmp(method, "list"))
		return do_list(o, args, err, errlen);
	if (!strcmp(method, "delete_all"))
		return do_delete_all(o, err, errlen);
	if (!strcmp(method, "write"))
		return do_write(o, args, err, errlen);
	if (!strcmp(method, "sql"))
		return do_sql(o, args, err, errlen);
	if (!strcmp(method, "size"))
		return do_size(o, err, errlen);
	return err_set(err, errlen, "TypeError: no storage method %.40s", method), NULL;
}

/* --- alarms --- */

struct dobj_alarms {
	sqlite3 *db;
};

struct dobj_alarms *dobj_alarms_open(const char *path, char *err, size_t errlen)
{
	sqlite3 *db = open_db(path, err, errlen);
	if (!db)
		return NULL;
	if (exec(db,
		 "CREATE TABLE IF NOT EXISTS alarms (class TEXT NOT NULL, id TEXT NOT NULL, "
		 "at_ms INTEGER NOT NULL, attempt INTEGER NOT NULL DEFAULT 0, "
		 "PRIMARY KEY (class, id)) WITHOUT ROWID; "
		 "CREATE INDEX IF NOT EXISTS alarms_at ON alarms (at_ms)",
		 err, errlen) < 0) {
		sqlite3_close(db);
		return NULL;
	}
	struct dobj_alarms *a = xcalloc(1, sizeof *a);
	a->db = db;
	return a;
}

void dobj_alarms_close(struct dobj_alarms *a)
{
	if (!a)
		return;
	sqlite3_close(a->db);
	free(a);
}

static int alarm_run(struct dobj_alarms *a, const char *sql, const char *cls, const char *id,
		     int64_t x, int64_t y, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(a->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(a->db, err, errlen, "alarm");
	sqlite3_bind_text(st, 1, cls, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	int n = sqlite3_bind_parameter_count(st);
	if (n >= 3)
		sqlite3_bind_int64(st, 3, x);
	if (n >= 4)
		sqlite3_bind_int64(st, 4, y);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : db_err(a->db, err, errlen, "alarm");
}

int dobj_alarm_set(struct dobj_alarms *a, const char *cls, const char *id, int64_t at_ms,
		   char *err, size_t errlen)
{
	return alarm_run(a,
			 "INSERT INTO alarms (class, id, at_ms, attempt) VALUES (?1, ?2, ?3, 0) "
			 "ON CONFLICT (class, id) DO UPDATE SET at_ms = ?3, attempt = 0",
			 cls, id, at_ms, 0, err, errlen);
}

int dobj_alarm_delete(struct dobj_alarms *a, const char *cls, const char *id, char *err,
		      size_t errlen)
{
	return alarm_run(a, "DELETE FROM alarms WHERE class = ?1 AND id = ?2", cls, id, 0, 0, err,
			 errlen);
}

int dobj_alarm_get(struct dobj_alarms *a, const char *cls, const char *id, int64_t *at_ms,
		   char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(a->db, "SELECT at_ms FROM alarms WHERE class = ? AND id = ?", -1,
			       &st, NULL) != SQLITE_OK)
		return db_err(a->db, err, errlen, "get_alarm");
	sqlite3_bind_text(st, 1, cls, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		*at_ms = sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_DONE) {
		r = db_err(a->db, err, errlen, "get_alarm");
	}
	sqlite3_finalize(st);
	return r;
}

static int alarm_next(struct dobj_alarms *a, const char *classes, const char *exclude,
		      struct dobj_alarm *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(a->db,
			       classes ? "SELECT class, id, at_ms, attempt FROM alarms WHERE class IN "
					 "(SELECT value FROM json_each(?1)) AND NOT EXISTS (SELECT 1 "
					 "FROM json_each(?2) AS x WHERE x.value ->> 0 = alarms.class AND "
					 "x.value ->> 1 = alarms.id) ORDER BY at_ms LIMIT 1"
				       : "SELECT class, id, at_ms, attempt FROM alarms ORDER BY at_ms "
					 "LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(a->db, err, errlen, "alarms");
	if (classes) {
		sqlite3_bind_text(st, 1, classes, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, exclude ? exclude : "[]", -1, SQLITE_STATIC);
	}
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW) {
		const char *c = (const char *)sqlite3_column_text(st, 0);
		const char *i = (const char *)sqlite3_column_text(st, 1);
		snprintf(out->cls, sizeof out->cls, "%s", c ? c : "");
		snprintf(out->id, sizeof out->id, "%s", i ? i : "");
		out->at_ms = sqlite3_column_int64(st, 2);
		out->attempt = sqlite3_column_int64(st, 3);
		r = 1;
	} else if (rc != SQLITE_DONE) {
		r = db_err(a->db, err, errlen, "alarms");
	}
	sqlite3_finalize(st);
	return r;
}

int dobj_alarm_next(struct dobj_alarms *a, struct dobj_alarm *out, char *err, size_t errlen)
{
	return alarm_next(a, NULL, NULL, out, err, errlen);
}

int dobj_alarm_next_in(struct dobj_alarms *a, const char *classes_json, const char *exclude_json,
		       struct dobj_alarm *out, char *err, size_t errlen)
{
	return alarm_next(a, classes_json ? classes_json : "[]", exclude_json, out, err, errlen);
}

int dobj_alarm_ran(struct dobj_alarms *a, const char *cls, const char *id, int64_t at_ms, int ok,
		   int64_t retry_ms, char *err, size_t errlen)
{
	if (ok)
		return alarm_run(a, "DELETE FROM alarms WHERE class = ?1 AND id = ?2 AND at_ms = ?3",
				 cls, id, at_ms, 0, err, errlen);
	return alarm_run(a,
			 "UPDATE alarms SET at_ms = ?4, attempt = attempt + 1 "
			 "WHERE class = ?1 AND id = ?2 AND at_ms = ?3",
			 cls, id, at_ms, retry_ms, err, errlen);
}

int dobj_alarms_rename(struct dobj_alarms *a, const char *from, const char *to, char *err,
		       size_t errlen)
{
	if (!to)
		return alarm_run(a, "DELETE FROM alarms WHERE class = ?1 AND ?2 IS NOT NULL", from, "",
				 0, 0, err, errlen);
	/* The old name's alarm replaces one the new name may have (INSERT OR REPLACE). */
	if (alarm_run(a,
		      "INSERT OR REPLACE INTO alarms (class, id, at_ms, attempt) "
		      "SELECT ?2, id, at_ms, attempt FROM alarms WHERE class = ?1",
		      from, to, 0, 0, err, errlen) < 0)
		return -1;
	return alarm_run(a, "DELETE FROM alarms WHERE class = ?1 AND ?2 IS NOT NULL", from, to, 0,
			 0, err, errlen);
}
