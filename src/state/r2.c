/*
 * The R2 engine's store: the layout, the invariants and the limits are at
 * the top of r2.h; this comment adds how the code keeps them.
 *
 * - A body arrives as an fd (a spool file, usually unnamed). r2_put reads it
 *   once, hashing (MD5 for the etag, SHA-256 for the address, any digest the
 *   caller asked to check), fsyncs it and links it into blobs/ under its
 *   SHA-256: linkat through /proc/self/fd, or a copy when the file system
 *   cannot link an unnamed file. An existing blob of the same address is
 *   the same bytes and is reused.
 * - A directory the store makes (r2_open's, a new blobs/XY) has its entry
 *   fsynced into its parent at once, before anything is linked under it and
 *   before a row names what is: otherwise a crash could keep the COMMIT and
 *   lose the directory with the blob.
 * - Every change of rows is one transaction (BEGIN IMMEDIATE ... COMMIT);
 *   blobs it stopped naming are unlinked after the COMMIT (blob_release), so
 *   a crash leaves garbage, never a dangling row; r2_open collects garbage.
 * - Statements are reset before returning: no read snapshot outlives a call.
 * - Keys are BLOBs compared with memcmp: list order is byte order, as R2's.
 */
#include "state/r2.h"
#include "state/sqlite_wal.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define R2_APPLICATION_ID 1952993842 /* "thR2" */
#define BUSY_TIMEOUT_MS 5000
#define IO_CHUNK (1u << 20)

static const char *const migrations[] = {
	"CREATE TABLE objects (\n"
	"  key BLOB PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 1024),\n"
	"  blob TEXT NOT NULL CHECK (length(blob) = 64),\n"
	"  size INTEGER NOT NULL CHECK (size >= 0),\n"
	"  etag TEXT NOT NULL,\n"
	"  version TEXT NOT NULL,\n"
	"  uploaded INTEGER NOT NULL,\n"
	"  http_metadata TEXT NOT NULL,\n"
	"  custom_metadata TEXT NOT NULL,\n"
	"  checksums TEXT NOT NULL\n"
	") STRICT, WITHOUT ROWID;\n"
	"CREATE INDEX objects_by_blob ON objects (blob);\n"
	"CREATE TABLE uploads (\n"
	"  upload_id TEXT PRIMARY KEY NOT NULL,\n"
	"  key BLOB NOT NULL,\n"
	"  http_metadata TEXT NOT NULL,\n"
	"  custom_metadata TEXT NOT NULL,\n"
	"  created INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE TABLE parts (\n"
	"  upload_id TEXT NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,\n"
	"  part_number INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),\n"
	"  blob TEXT NOT NULL CHECK (length(blob) = 64),\n"
	"  size INTEGER NOT NULL,\n"
	"  etag TEXT NOT NULL,\n"
	"  PRIMARY KEY (upload_id, part_number)\n"
	") STRICT;\n"
	"CREATE INDEX parts_by_blob ON parts (blob);\n"
	"PRAGMA application_id = 1952993842;\n",
};

struct r2_store {
	char *db_path, *dir, *tmp;
	sqlite3 *db;
};

__attribute__((format(printf, 3, 4))) static int refuse(struct r2_err *err, int code,
							const char *fmt, ...)
{
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return R2_REFUSED;
}

__attribute__((format(printf, 2, 3))) static int fail(struct r2_err *err, const char *fmt, ...)
{
	err->code = 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return R2_ERR;
}

static int db_fail(struct r2_store *st, struct r2_err *err, const char *what)
{
	return fail(err, "%s: %s: %s", st->db_path, what, sqlite3_errmsg(st->db));
}

static char *xdup(const char *s)
{
	return xstrdup(s ? s : "");
}

static void hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}

static void random_hex(char out[33])
{
	uint8_t r[16];
	size_t got = 0;
	while (got < sizeof r) {
		ssize_t n = getrandom(r + got, sizeof r - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			abort();
		got += (size_t)n;
	}
	hex(r, sizeof r, out);
}

static int exec_sql(struct r2_store *st, const char *sql, struct r2_err *err)
{
	if (sqlite3_exec(st->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(st, err, sql);
	return R2_OK;
}

static char *blob_path(const struct r2_store *st, const char *blob)
{
	return xasprintf("%s/blobs/%.2s/%s", st->dir, blob, blob);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/* --- garbage --- */

static int blob_referenced(struct r2_store *st, const char *blob)
{
	sqlite3_stmt *s = NULL;
	int used = 1; /* when in doubt, keep it */
	if (sqlite3_prepare_v2(st->db,
			       "SELECT EXISTS (SELECT 1 FROM objects WHERE blob = ?1) OR "
			       "EXISTS (SELECT 1 FROM parts WHERE blob = ?1)",
			       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, blob, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			used = sqlite3_column_int(s, 0);
	}
	sqlite3_finalize(s);
	return used;
}

/* After a COMMIT: unlink blob if no row names it any more. */
static void blob_release(struct r2_store *st, const char *blob)
{
	if (!blob[0] || blob_referenced(st, blob))
		return;
	char *path = blob_path(st, blob);
	unlink(path);
	free(path);
}

static void collect_garbage(struct r2_store *st)
{
	DIR *d = opendir(st->tmp);
	struct dirent *e;
	if (d) {
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	char *blobs = xasprintf("%s/blobs", st->dir);
	DIR *top = opendir(blobs);
	while (top && (e = readdir(top)) != NULL) {
		if (e->d_name[0] == '.' || strlen(e->d_name) != 2)
			continue;
		char *sub = xasprintf("%s/%s", blobs, e->d_name);
		DIR *sd = opendir(sub);
		struct dirent *f;
		while (sd && (f = readdir(sd)) != NULL) {
			if (f->d_name[0] == '.')
				continue;
			if (strlen(f->d_name) != 64 || !blob_referenced(st, f->d_name))
				unlinkat(dirfd(sd), f->d_name, 0);
		}
		if (sd)
			closedir(sd);
		free(sub);
	}
	if (top)
		closedir(top);
	free(blobs);
}

/* --- open / close --- */

/* Make directory p (a path of its own, edited in place and restored); a new
 * one's entry is fsynced into its parent, so a blob or a database linked
 * under it later is not lost with it in a crash. */
static int mkdir_durable(char *p)
{
	if (mkdir(p, 0700) < 0)
		return errno == EEXIST ? 0 : -1;
	char *slash = strrchr(p, '/');
	if (!slash)
		return fsync_dir(".");
	if (slash == p)
		return fsync_dir("/");
	*slash = 0;
	int rc = fsync_dir(p);
	*slash = '/';
	return rc;
}

static int mkdirs(const char *path)
{
	char *p = xdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = 0;
		if (mkdir_durable(p) < 0) {
			free(p);
			return -1;
		}
		*s = '/';
	}
	int rc = mkdir_durable(p);
	free(p);
	return rc;
}

static int migrate(struct r2_store *st, struct r2_err *err)
{
	sqlite3_stmt *s = NULL;
	int version = 0, app = 0;
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		version = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(st->db, "PRAGMA application_id", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		app = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	int n = (int)(sizeof migrations / sizeof migrations[0]);
	if (version > n)
		return fail(err, "%s: made by a newer thaw (schema %d)", st->db_path, version);
	if (version > 0 && app != R2_APPLICATION_ID)
		return fail(err, "%s: not an R2 bucket's index", st->db_path);
	for (int v = version; v < n; v++) {
		char *sql = xasprintf("BEGIN IMMEDIATE; %s PRAGMA user_version = %d; COMMIT;",
				    migrations[v], v + 1);
		int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
		free(sql);
		if (rc != SQLITE_OK) {
			int r = db_fail(st, err, "migrating");
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	return R2_OK;
}

struct r2_store *r2_open(const char *db_path, const char *dir, struct r2_err *err)
{
	struct r2_store *st = calloc(1, sizeof *st);
	if (!st)
		abort();
	st->db_path = xdup(db_path);
	st->dir = xdup(dir);
	st->tmp = xasprintf("%s/tmp", dir);
	char *blobs = xasprintf("%s/blobs", dir);
	int rc = mkdirs(st->tmp) < 0 || mkdirs(blobs) < 0 ? -1 : 0;
	free(blobs);
	if (rc < 0) {
		fail(err, "cannot create %s: %s", dir, strerror(errno));
		r2_close(st);
		return NULL;
	}
	if (sqlite3_open_v2(db_path, &st->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		fail(err, "%s: %s", db_path, st->db ? sqlite3_errmsg(st->db) : "out of memory");
		r2_close(st);
		return NULL;
	}
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	if (thaw_sqlite_wal(st->db, BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    exec_sql(st, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err) != R2_OK ||
	    migrate(st, err) != R2_OK) {
		if (!err->text[0])
			db_fail(st, err, "opening");
		r2_close(st);
		return NULL;
	}
	collect_garbage(st);
	return st;
}

void r2_close(struct r2_store *st)
{
	if (!st)
		return;
	sqlite3_close_v2(st->db);
	free(st->db_path);
	free(st->dir);
	free(st->tmp);
	free(st);
}

const char *r2_tmp_dir(const struct r2_store *st)
{
	return st->tmp;
}

void r2_object_dispose(struct r2_object *o)
{
	if (!o)
		return;
	free(o->key);
	free(o->http_metadata);
	free(o->custom_metadata);
	free(o->checksums);
	memset(o, 0, sizeof *o);
}

void r2_list_dispose(struct r2_list *l)
{
	for (size_t i = 0; i < l->count; i++)
		r2_object_dispose(&l->objects[i]);
	for (size_t i = 0; i < l->nprefixes; i++)
		free(l->prefixes[i]);
	free(l->objects);
	free(l->prefixes);
	free(l->cursor);
	memset(l, 0, sizeof *l);
}

/* --- rows --- */

#define OBJECT_COLUMNS "key, blob, size, etag, version, uploaded, http_metadata, " \
		       "custom_metadata, checksums"

static void row_object(sqlite3_stmt *s, struct r2_object *o)
{
	memset(o, 0, sizeof *o);
	o->key_len = (size_t)sqlite3_column_bytes(s, 0);
	o->key = malloc(o->key_len + 1);
	if (!o->key)
		abort();
	if (o->key_len)
		memcpy(o->key, sqlite3_column_blob(s, 0), o->key_len);
	o->key[o->key_len] = 0;
	snprintf(o->blob, sizeof o->blob, "%s", (const char *)sqlite3_column_text(s, 1));
	o->size = (uint64_t)sqlite3_column_int64(s, 2);
	snprintf(o->etag, sizeof o->etag, "%s", (const char *)sqlite3_column_text(s, 3));
	snprintf(o->version, sizeof o->version, "%s", (const char *)sqlite3_column_text(s, 4));
	o->uploaded_ms = sqlite3_column_int64(s, 5);
	o->http_metadata = xdup((const char *)sqlite3_column_text(s, 6));
	o->custom_metadata = xdup((const char *)sqlite3_column_text(s, 7));
	o->checksums = xdup((const char *)sqlite3_column_text(s, 8));
}

/* R2_OK with *o, R2_NOT_FOUND, R2_ERR. */
static int find(struct r2_store *st, const uint8_t *key, size_t klen, struct r2_object *o,
		struct r2_err *err)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT " OBJECT_COLUMNS " FROM objects WHERE key = ?1", -1,
			       &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "reading an object");
	sqlite3_bind_blob(s, 1, key, (int)klen, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	int out;
	if (rc == SQLITE_ROW) {
		row_object(s, o);
		out = R2_OK;
	} else if (rc == SQLITE_DONE) {
		out = R2_NOT_FOUND;
	} else {
		out = db_fail(st, err, "reading an object");
	}
	sqlite3_finalize(s);
	return out;
}

int r2_head(struct r2_store *st, const uint8_t *key, size_t klen, struct r2_object *out,
	    struct r2_err *err)
{
	int rc = r2_key_check(key, klen, err);
	return rc == R2_OK ? find(st, key, klen, out, err) : rc;
}

int r2_get(struct r2_store *st, const uint8_t *key, size_t klen, const struct r2_conditional *cond,
	   const struct r2_range *range, struct r2_object *out, int *fd, uint64_t *offset,
	   uint64_t *length, struct r2_err *err)
{
	*fd = -1;
	int rc = r2_head(st, key, klen, out, err);
	if (rc != R2_OK)
		return rc;
	if (!r2_conditional_holds(cond, 1, out->etag, out->uploaded_ms))
		return R2_PRECONDITION;
	rc = r2_range_resolve(range, out->size, offset, length, err);
	if (rc != R2_OK) {
		r2_object_dispose(out);
		return rc;
	}
	char *path = blob_path(st, out->blob);
	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		fail(err, "%s: %s", path, strerror(errno));
		free(path);
		r2_object_dispose(out);
		return R2_ERR;
	}
	free(path);
	return R2_OK;
}

/* --- bodies into blobs --- */

struct digests {
	EVP_MD_CTX *md5, *sha256, *extra[3];
	const EVP_MD *extra_md[3];
	const char *extra_name[3], *extra_want[3];
	int nextra;
};

static EVP_MD_CTX *md_new(const EVP_MD *md)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, md, NULL) != 1)
		abort();
	return c;
}

static void digests_free(struct digests *d)
{
	EVP_MD_CTX_free(d->md5);
	EVP_MD_CTX_free(d->sha256);
	for (int i = 0; i < d->nextra; i++)
		EVP_MD_CTX_free(d->extra[i]);
}

static void digests_update(struct digests *d, const void *p, size_t n)
{
	EVP_DigestUpdate(d->md5, p, n);
	EVP_DigestUpdate(d->sha256, p, n);
	for (int i = 0; i < d->nextra; i++)
		EVP_DigestUpdate(d->extra[i], p, n);
}

static void final_hex(EVP_MD_CTX *c, char *out, uint8_t *raw)
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_DigestFinal_ex(c, md, &n);
	if (raw)
		memcpy(raw, md, n);
	hex(md, n, out);
}

/* Read len bytes of fd from 0 through d (and copy them to out_fd when >= 0). */
static int pass(int fd, uint64_t len, struct digests *d, int out_fd, struct r2_err *err)
{
	uint8_t *buf = malloc(IO_CHUNK);
	if (!buf)
		abort();
	uint64_t at = 0;
	int rc = R2_OK;
	while (at < len) {
		size_t want = len - at < IO_CHUNK ? (size_t)(len - at) : IO_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = fail(err, "reading a body: %s", n < 0 ? strerror(errno) : "short file");
			break;
		}
		digests_update(d, buf, (size_t)n);
		if (out_fd >= 0) {
			const uint8_t *p = buf;
			size_t left = (size_t)n;
			while (left) {
				ssize_t w = write(out_fd, p, left);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0) {
					rc = fail(err, "writing a blob: %s", strerror(errno));
					break;
				}
				p += w;
				left -= (size_t)w;
			}
			if (rc != R2_OK)
				break;
		}
		at += (uint64_t)n;
	}
	free(buf);
	return rc;
}

static int tmp_file(struct r2_store *st, struct r2_err *err)
{
	int fd = open(st->tmp, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char *path = xasprintf("%s/blob-XXXXXX", st->tmp);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
		free(path);
	}
	if (fd < 0)
		fail(err, "%s: %s", st->tmp, strerror(errno));
	return fd;
}

/* Give the len bytes of fd (hashed to sha256 already) the name of blob:
 * fsync, link (or copy), fsync the directory. */
static int blob_store(struct r2_store *st, int fd, uint64_t len, const char *blob,
		      struct r2_err *err)
{
	char *path = blob_path(st, blob);
	char *dir = xasprintf("%s/blobs/%.2s", st->dir, blob);
	int rc = R2_OK;
	struct stat sb;
	if (stat(path, &sb) == 0 && (uint64_t)sb.st_size == len)
		goto out; /* the same bytes are there */
	if (mkdir_durable(dir) < 0) { /* a new blobs/XY is fsynced into blobs/ */
		rc = fail(err, "%s: %s", dir, strerror(errno));
		goto out;
	}
	int src = fd, own = -1;
	if (src < 0) {
		own = src = tmp_file(st, err);
		if (src < 0) {
			rc = R2_ERR;
			goto out;
		}
	}
	if (fsync(src) < 0) {
		rc = fail(err, "fsync of a body: %s", strerror(errno));
	} else {
		char proc[64];
		snprintf(proc, sizeof proc, "/proc/self/fd/%d", src);
		unlink(path); /* a partial file of another size (edited by hand) */
		if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0) {
			/* Not linkable (a file system without O_TMPFILE links):
			 * copy to a named temporary file, fsync, rename. */
			char *tmp = xasprintf("%s/copy-XXXXXX", st->tmp);
			int out = mkostemp(tmp, O_CLOEXEC);
			struct digests none = {0};
			none.md5 = md_new(EVP_md5());
			none.sha256 = md_new(EVP_sha256());
			if (out < 0 || pass(src, len, &none, out, err) != R2_OK || fsync(out) < 0 ||
			    rename(tmp, path) < 0) {
				if (!err->text[0])
					fail(err, "%s: %s", path, strerror(errno));
				rc = R2_ERR;
				unlink(tmp);
			}
			digests_free(&none);
			if (out >= 0)
				close(out);
			free(tmp);
		}
		if (rc == R2_OK && fsync_dir(dir) < 0)
			rc = fail(err, "fsync of %s: %s", dir, strerror(errno));
	}
	if (own >= 0)
		close(own);
out:
	free(path);
	free(dir);
	return rc;
}

static int hex_eq(const char *want, const char *got)
{
	return strlen(want) == strlen(got) && !strcasecmp(want, got);
}

/* --- put --- */

static int begin(struct r2_store *st, struct r2_err *err)
{
	return exec_sql(st, "BEGIN IMMEDIATE", err);
}

static int commit(struct r2_store *st, struct r2_err *err)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int rc = db_fail(st, err, "COMMIT");
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return R2_OK;
}

static void rollback(struct r2_store *st)
{
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Insert or replace o's row (in a transaction); *old the blob it replaced. */
static int upsert(struct r2_store *st, const struct r2_object *o, char old[65], struct r2_err *err)
{
	old[0] = 0;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "SELECT blob FROM objects WHERE key = ?1", -1, &s, NULL) !=
	    SQLITE_OK)
		return db_fail(st, err, "reading an object");
	sqlite3_bind_blob(s, 1, o->key, (int)o->key_len, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(old, 65, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	if (sqlite3_prepare_v2(st->db,
			       "INSERT OR REPLACE INTO objects (" OBJECT_COLUMNS
			       ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
			       -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "writing an object");
	sqlite3_bind_blob(s, 1, o->key, (int)o->key_len, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, o->blob, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)o->size);
	sqlite3_bind_text(s, 4, o->etag, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, o->version, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, o->uploaded_ms);
	sqlite3_bind_text(s, 7, o->http_metadata, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, o->custom_metadata, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 9, o->checksums, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s) == SQLITE_DONE ? R2_OK : db_fail(st, err, "writing an object");
	sqlite3_finalize(s);
	return rc;
}

/* The current object's condition check (R2_OK: holds). */
static int check_condition(struct r2_store *st, const uint8_t *key, size_t klen,
			   const struct r2_conditional *cond, struct r2_err *err)
{
	if (!cond || !cond->present)
		return R2_OK;
	struct r2_object cur;
	int rc = find(st, key, klen, &cur, err);
	if (rc == R2_ERR)
		return rc;
	int holds = r2_conditional_holds(cond, rc == R2_OK, cur.etag, cur.uploaded_ms);
	if (rc == R2_OK)
		r2_object_dispose(&cur);
	return holds ? R2_OK : R2_PRECONDITION;
}

int r2_put(struct r2_store *st, const uint8_t *key, size_t klen, int fd, uint64_t len,
	   const struct r2_put_options *opt, int64_t now_ms, struct r2_object *out,
	   struct r2_err *err)
{
	memset(out, 0, sizeof *out);
	int rc = r2_key_check(key, klen, err);
	if (rc != R2_OK)
		return rc;
	if (len > R2_VALUE_MAX)
		return refuse(err, R2_E_TOO_LARGE,
			      "Your proposed upload exceeds the maximum allowed object size.");
	rc = check_condition(st, key, klen, opt ? opt->only_if : NULL, err);
	if (rc != R2_OK)
		return rc;
	struct digests d = {0};
	d.md5 = md_new(EVP_md5());
	d.sha256 = md_new(EVP_sha256());
	const struct {
		const char *name, *want;
		const EVP_MD *md;
	} extra[] = {
		{"sha1", opt ? opt->sha1 : NULL, EVP_sha1()},
		{"sha384", opt ? opt->sha384 : NULL, EVP_sha384()},
		{"sha512", opt ? opt->sha512 : NULL, EVP_sha512()},
	};
	for (int i = 0; i < 3; i++)
		if (extra[i].want) {
			d.extra[d.nextra] = md_new(extra[i].md);
			d.extra_name[d.nextra] = extra[i].name;
			d.extra_want[d.nextra++] = extra[i].want;
		}
	rc = fd >= 0 ? pass(fd, len, &d, -1, err) : R2_OK;
	char md5[33], sha256[65], extra_hex[3][129];
	final_hex(d.md5, md5, NULL);
	final_hex(d.sha256, sha256, NULL);
	for (int i = 0; i < d.nextra; i++)
		final_hex(d.extra[i], extra_hex[i], NULL);
	if (rc != R2_OK)
		goto out;
	static const char *const names[] = {"MD5", "SHA-256"};
	const char *wants[] = {opt ? opt->md5 : NULL, opt ? opt->sha256 : NULL};
	const char *gots[] = {md5, sha256};
	for (int i = 0; i < 2; i++)
		if (wants[i] && !hex_eq(wants[i], gots[i])) {
			rc = refuse(err, R2_E_BAD_DIGEST,
				    "The %s checksum you specified did not match what we received.",
				    names[i]);
			goto out;
		}
	for (int i = 0; i < d.nextra; i++)
		if (!hex_eq(d.extra_want[i], extra_hex[i])) {
			rc = refuse(err, R2_E_BAD_DIGEST,
				    "The %s checksum you specified did not match what we received.",
				    !strcmp(d.extra_name[i], "sha1") ? "SHA-1" :
				    !strcmp(d.extra_name[i], "sha384") ? "SHA-384" : "SHA-512");
			goto out;
		}
	rc = blob_store(st, fd, len, sha256, err);
	if (rc != R2_OK)
		goto out;
	json_t *sums = json_pack("{s:s}", "md5", md5);
	if (opt && opt->sha256)
		json_object_set_new(sums, "sha256", json_string(sha256));
	for (int i = 0; i < d.nextra; i++)
		json_object_set_new(sums, d.extra_name[i], json_string(extra_hex[i]));
	out->key = malloc(klen + 1);
	if (!out->key)
		abort();
	memcpy(out->key, key, klen);
	out->key[klen] = 0;
	out->key_len = klen;
	random_hex(out->version);
	out->size = len;
	snprintf(out->etag, sizeof out->etag, "%s", md5);
	out->uploaded_ms = now_ms;
	out->http_metadata = xdup(opt && opt->http_metadata ? opt->http_metadata : "{}");
	out->custom_metadata = xdup(opt && opt->custom_metadata ? opt->custom_metadata : "{}");
	out->checksums = json_dumps(sums, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(sums);
	snprintf(out->blob, sizeof out->blob, "%s", sha256);
	char old[65];
	rc = begin(st, err);
	if (rc == R2_OK) {
		/* The condition again, under the write lock: another process may have
		 * written meanwhile (thaw kv-style tools, a second host). */
		rc = check_condition(st, key, klen, opt ? opt->only_if : NULL, err);
		if (rc == R2_OK)
			rc = upsert(st, out, old, err);
		if (rc == R2_OK)
			rc = commit(st, err);
		else
			rollback(st);
	}
	if (rc == R2_OK) {
		if (strcmp(old, sha256))
			blob_release(st, old);
	} else {
		blob_release(st, sha256);
		r2_object_dispose(out);
	}
out:
	digests_free(&d);
	return rc;
}

int r2_delete(struct r2_store *st, const uint8_t *const *keys, const size_t *klens, size_t n,
	      struct r2_err *err)
{
	for (size_t i = 0; i < n; i++) {
		int rc = r2_key_check(keys[i], klens[i], err);
		if (rc != R2_OK)
			return rc;
	}
	char(*old)[65] = calloc(n + 1, 65);
	if (!old)
		abort();
	int rc = begin(st, err);
	for (size_t i = 0; rc == R2_OK && i < n; i++) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(st->db, "DELETE FROM objects WHERE key = ?1 RETURNING blob", -1,
				       &s, NULL) != SQLITE_OK) {
			rc = db_fail(st, err, "deleting");
			break;
		}
		sqlite3_bind_blob(s, 1, keys[i], (int)klens[i], SQLITE_STATIC);
		int step = sqlite3_step(s);
		if (step == SQLITE_ROW)
			snprintf(old[i], 65, "%s", (const char *)sqlite3_column_text(s, 0));
		else if (step != SQLITE_DONE)
			rc = db_fail(st, err, "deleting");
		sqlite3_finalize(s);
	}
	if (rc == R2_OK)
		rc = commit(st, err);
	else if (rc == R2_ERR && sqlite3_get_autocommit(st->db) == 0)
		rollback(st);
	if (rc == R2_OK)
		for (size_t i = 0; i < n; i++)
			blob_release(st, old[i]);
	free(old);
	return rc;
}

/* --- list --- */

/* The first key after every key that starts with p (len n): p with its
 * trailing 0xff bytes cut and the last byte incremented; 0 when none. */
static size_t successor(const uint8_t *p, size_t n, uint8_t *out)
{
	while (n && p[n - 1] == 0xff)
		n--;
	if (!n)
		return 0;
	memcpy(out, p, n);
	out[n - 1]++;
	return n;
}

static char *cursor_encode(char type, const uint8_t *p, size_t n)
{
	char *c = malloc(2 * n + 2);
	if (!c)
		abort();
	c[0] = type;
	hex(p, n, c + 1);
	return c;
}

static int cursor_decode(const char *c, size_t len, char *type, uint8_t *out, size_t *n)
{
	if (len < 3 || (c[0] != 'o' && c[0] != 'p') || (len - 1) % 2 || (len - 1) / 2 > R2_KEY_MAX)
		return -1;
	*type = c[0];
	*n = (len - 1) / 2;
	for (size_t i = 0; i < *n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = c[1 + 2 * i + (size_t)k];
			int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + d;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : an < bn ? -1 : an > bn;
}

int r2_list(struct r2_store *st, const struct r2_list_options *opt, struct r2_list *out,
	    struct r2_err *err)
{
	memset(out, 0, sizeof *out);
	/* No prefix is the empty one (memcmp and memmem take no NULL). */
	const uint8_t *prefix = opt->prefix ? opt->prefix : (const uint8_t *)"";
	int64_t limit = opt->limit ? opt->limit : R2_LIST_MAX;
	if (limit < 1 || limit > R2_LIST_MAX)
		return refuse(err, R2_E_INVALID_MAX_KEYS,
			      "MaxKeys params must be positive integer <= 1000.");
	if (opt->prefix_len > R2_KEY_MAX || opt->start_after_len > R2_KEY_MAX ||
	    opt->delimiter_len > R2_KEY_MAX)
		return refuse(err, R2_E_INVALID_ARGUMENT, "The list arguments are too long.");
	/* Where to start: the prefix, after start_after, after the cursor. */
	uint8_t start[R2_KEY_MAX + 1], skip[R2_KEY_MAX + 1];
	size_t start_len = opt->prefix_len, skip_len = 0;
	int start_inclusive = 1;
	if (opt->prefix_len)
		memcpy(start, prefix, opt->prefix_len);
	if (opt->start_after_len &&
	    bytes_cmp(opt->start_after, opt->start_after_len, start, start_len) >= 0) {
		memcpy(start, opt->start_after, opt->start_after_len);
		start_len = opt->start_after_len;
		start_inclusive = 0;
	}
	if (opt->cursor_len) {
		char type;
		uint8_t ck[R2_KEY_MAX + 1];
		size_t cn;
		if (cursor_decode(opt->cursor, opt->cursor_len, &type, ck, &cn) < 0)
			return refuse(err, R2_E_INVALID_ARGUMENT, "The cursor is not valid.");
		if (bytes_cmp(ck, cn, start, start_len) >= 0) {
			memcpy(start, ck, cn);
			start_len = cn;
			start_inclusive = 0;
		}
		if (type == 'p') {
			memcpy(skip, ck, cn);
			skip_len = cn;
		}
	}
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT " OBJECT_COLUMNS " FROM objects WHERE key > ?1 OR "
			       "(?2 AND key = ?1) ORDER BY key",
			       -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "listing");
	sqlite3_bind_blob(s, 1, start, (int)start_len, SQLITE_TRANSIENT);
	sqlite3_bind_int(s, 2, start_inclusive);
	size_t cap_o = 0, cap_p = 0;
	int64_t taken = 0;
	int rc = R2_OK;
	char last_type = 0;
	uint8_t last[R2_KEY_MAX + 1];
	size_t last_len = 0;
	for (;;) {
		int step = sqlite3_step(s);
		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW) {
			rc = db_fail(st, err, "listing");
			break;
		}
		const uint8_t *key = sqlite3_column_blob(s, 0);
		size_t klen = (size_t)sqlite3_column_bytes(s, 0);
		if (klen < opt->prefix_len || memcmp(key, prefix, opt->prefix_len) != 0) {
			if (bytes_cmp(key, klen, prefix, opt->prefix_len) > 0)
				break; /* past the prefix */
			continue;
		}
		if (skip_len && klen >= skip_len && !memcmp(key, skip, skip_len))
			continue; /* under the delimited prefix listed last */
		/* A delimiter after the prefix makes a delimited prefix. */
		const uint8_t *rest = key + opt->prefix_len;
		size_t rest_len = klen - opt->prefix_len;
		const uint8_t *hit = NULL;
		if (opt->delimiter && opt->delimiter_len && rest_len >= opt->delimiter_len)
			hit = memmem(rest, rest_len, opt->delimiter, opt->delimiter_len);
		if (taken == limit) {
			out->truncated = 1;
			out->cursor = cursor_encode(last_type, last, last_len);
			break;
		}
		taken++;
		if (hit) {
			size_t plen = (size_t)(hit - key) + opt->delimiter_len;
			if (out->nprefixes == cap_p) {
				cap_p = cap_p ? 2 * cap_p : 16;
				out->prefixes = realloc(out->prefixes, cap_p * sizeof *out->prefixes);
				if (!out->prefixes)
					abort();
			}
			char *p = malloc(plen + 1);
			if (!p)
				abort();
			memcpy(p, key, plen);
			p[plen] = 0;
			out->prefixes[out->nprefixes++] = p;
			memcpy(skip, key, plen);
			skip_len = plen;
			memcpy(last, key, plen);
			last_len = plen;
			last_type = 'p';
			/* Jump past every key under it. */
			uint8_t next[R2_KEY_MAX + 1];
			size_t nn = successor(key, plen, next);
			if (!nn)
				break;
			sqlite3_reset(s);
			sqlite3_bind_blob(s, 1, next, (int)nn, SQLITE_TRANSIENT);
			sqlite3_bind_int(s, 2, 1);
			continue;
		}
		if (out->count == cap_o) {
			cap_o = cap_o ? 2 * cap_o : 16;
			out->objects = realloc(out->objects, cap_o * sizeof *out->objects);
			if (!out->objects)
				abort();
		}
		row_object(s, &out->objects[out->count++]);
		memcpy(last, key, klen);
		last_len = klen;
		last_type = 'o';
	}
	sqlite3_finalize(s);
	if (rc != R2_OK)
		r2_list_dispose(out);
	return rc;
}

/* --- multipart --- */

int r2_upload_create(struct r2_store *st, const uint8_t *key, size_t klen, const char *http_metadata,
		     const char *custom_metadata, int64_t now_ms, char upload_id[33],
		     struct r2_err *err)
{
	int rc = r2_key_check(key, klen, err);
	if (rc != R2_OK)
		return rc;
	random_hex(upload_id);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
			       "INSERT INTO uploads (upload_id, key, http_metadata, custom_metadata, "
			       "created) VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "creating an upload");
	sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, key, (int)klen, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, http_metadata ? http_metadata : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, custom_metadata ? custom_metadata : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now_ms);
	rc = sqlite3_step(s) == SQLITE_DONE ? R2_OK : db_fail(st, err, "creating an upload");
	sqlite3_finalize(s);
	return rc;
}

/* Does upload_id exist for key? R2_OK (with its metadata when asked),
 * R2_REFUSED (NoSuchUpload), R2_ERR. */
static int upload_find(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		       char **http_metadata, char **custom_metadata, struct r2_err *err)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db,
			       "SELECT http_metadata, custom_metadata FROM uploads "
			       "WHERE upload_id = ?1 AND key = ?2",
			       -1, &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "reading an upload");
	sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, key, (int)klen, SQLITE_STATIC);
	int step = sqlite3_step(s), rc;
	if (step == SQLITE_ROW) {
		if (http_metadata)
			*http_metadata = xdup((const char *)sqlite3_column_text(s, 0));
		if (custom_metadata)
			*custom_metadata = xdup((const char *)sqlite3_column_text(s, 1));
		rc = R2_OK;
	} else if (step == SQLITE_DONE) {
		rc = refuse(err, R2_E_NO_SUCH_UPLOAD, "The specified multipart upload does not exist.");
	} else {
		rc = db_fail(st, err, "reading an upload");
	}
	sqlite3_finalize(s);
	return rc;
}

int r2_upload_part(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		   int64_t part_number, int fd, uint64_t len, char etag[48], struct r2_err *err)
{
	int rc = r2_key_check(key, klen, err);
	if (rc != R2_OK)
		return rc;
	if (part_number < 1 || part_number > R2_PARTS_MAX)
		return refuse(err, R2_E_INVALID_PART, "Part number must be between 1 and 10000 "
						      "(inclusive).");
	if (len > R2_VALUE_MAX)
		return refuse(err, R2_E_TOO_LARGE,
			      "Your proposed upload exceeds the maximum allowed object size.");
	rc = upload_find(st, key, klen, upload_id, NULL, NULL, err);
	if (rc != R2_OK)
		return rc;
	struct digests d = {0};
	d.md5 = md_new(EVP_md5());
	d.sha256 = md_new(EVP_sha256());
	rc = fd >= 0 ? pass(fd, len, &d, -1, err) : R2_OK;
	char md5[33], sha256[65];
	final_hex(d.md5, md5, NULL);
	final_hex(d.sha256, sha256, NULL);
	digests_free(&d);
	if (rc == R2_OK)
		rc = blob_store(st, fd, len, sha256, err);
	if (rc != R2_OK)
		return rc;
	snprintf(etag, 48, "%s", md5);
	char old[65] = "";
	rc = begin(st, err);
	if (rc != R2_OK)
		return rc;
	rc = upload_find(st, key, klen, upload_id, NULL, NULL, err); /* aborted meanwhile? */
	sqlite3_stmt *s = NULL;
	if (rc == R2_OK &&
	    sqlite3_prepare_v2(st->db,
			       "SELECT blob FROM parts WHERE upload_id = ?1 AND part_number = ?2", -1,
			       &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, part_number);
		if (sqlite3_step(s) == SQLITE_ROW)
			snprintf(old, sizeof old, "%s", (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		s = NULL;
	}
	if (rc == R2_OK) {
		if (sqlite3_prepare_v2(st->db,
				       "INSERT OR REPLACE INTO parts (upload_id, part_number, blob, "
				       "size, etag) VALUES (?1, ?2, ?3, ?4, ?5)",
				       -1, &s, NULL) != SQLITE_OK) {
			rc = db_fail(st, err, "writing a part");
		} else {
			sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, part_number);
			sqlite3_bind_text(s, 3, sha256, -1, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, (sqlite3_int64)len);
			sqlite3_bind_text(s, 5, md5, -1, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE)
				rc = db_fail(st, err, "writing a part");
			sqlite3_finalize(s);
		}
	}
	if (rc == R2_OK)
		rc = commit(st, err);
	else
		rollback(st);
	if (rc == R2_OK && strcmp(old, sha256))
		blob_release(st, old);
	if (rc != R2_OK)
		blob_release(st, sha256);
	return rc;
}

/* Drop upload_id's rows (in a transaction); its part blobs into *blobs. */
static int upload_drop(struct r2_store *st, const char *upload_id, char (**blobs)[65], size_t *n,
		       struct r2_err *err)
{
	*blobs = NULL;
	*n = 0;
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "DELETE FROM parts WHERE upload_id = ?1 RETURNING blob", -1,
			       &s, NULL) != SQLITE_OK)
		return db_fail(st, err, "dropping an upload");
	sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
	size_t cap = 0;
	int step;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*blobs = realloc(*blobs, cap * 65);
			if (!*blobs)
				abort();
		}
		snprintf((*blobs)[(*n)++], 65, "%s", (const char *)sqlite3_column_text(s, 0));
	}
	sqlite3_finalize(s);
	if (step != SQLITE_DONE)
		return db_fail(st, err, "dropping an upload");
	if (sqlite3_prepare_v2(st->db, "DELETE FROM uploads WHERE upload_id = ?1", -1, &s, NULL) !=
	    SQLITE_OK)
		return db_fail(st, err, "dropping an upload");
	sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(s) == SQLITE_DONE ? R2_OK : db_fail(st, err, "dropping an upload");
	sqlite3_finalize(s);
	return rc;
}

int r2_upload_abort(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		    struct r2_err *err)
{
	int rc = r2_key_check(key, klen, err);
	if (rc != R2_OK)
		return rc;
	rc = begin(st, err);
	if (rc != R2_OK)
		return rc;
	char(*blobs)[65] = NULL;
	size_t n = 0;
	rc = upload_find(st, key, klen, upload_id, NULL, NULL, err);
	if (rc == R2_OK)
		rc = upload_drop(st, upload_id, &blobs, &n, err);
	if (rc == R2_OK)
		rc = commit(st, err);
	else
		rollback(st);
	if (rc == R2_OK)
		for (size_t i = 0; i < n; i++)
			blob_release(st, blobs[i]);
	free(blobs);
	return rc;
}

int r2_upload_complete(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		       const struct r2_part *parts, size_t nparts, int64_t now_ms,
		       struct r2_object *out, struct r2_err *err)
{
	memset(out, 0, sizeof *out);
	char *http = NULL, *custom = NULL;
	int rc = r2_key_check(key, klen, err);
	if (rc == R2_OK)
		rc = upload_find(st, key, klen, upload_id, &http, &custom, err);
	if (rc != R2_OK)
		return rc;
	if (nparts == 0) {
		free(http);
		free(custom);
		return refuse(err, R2_E_INVALID_PART,
			      "One or more of the specified parts could not be found.");
	}
	/* Each part: it exists with that etag, once, and all but the last are
	 * at least R2_PART_MIN. */
	char(*blobs)[65] = calloc(nparts, 65);
	uint64_t *sizes = calloc(nparts, sizeof *sizes);
	if (!blobs || !sizes)
		abort();
	EVP_MD_CTX *etags = md_new(EVP_md5());
	uint64_t total = 0;
	for (size_t i = 0; i < nparts && rc == R2_OK; i++) {
		for (size_t k = 0; k < i; k++)
			if (parts[k].number == parts[i].number)
				rc = refuse(err, R2_E_INVALID_PART,
					    "One or more of the specified parts could not be found.");
		sqlite3_stmt *s = NULL;
		if (rc != R2_OK ||
		    sqlite3_prepare_v2(st->db,
				       "SELECT blob, size, etag FROM parts WHERE upload_id = ?1 AND "
				       "part_number = ?2",
				       -1, &s, NULL) != SQLITE_OK) {
			if (rc == R2_OK)
				rc = db_fail(st, err, "reading a part");
			break;
		}
		sqlite3_bind_text(s, 1, upload_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, parts[i].number);
		const char *want = parts[i].etag;
		size_t wl = strlen(want);
		if (wl >= 2 && want[0] == '"' && want[wl - 1] == '"') {
			want++;
			wl -= 2;
		}
		if (sqlite3_step(s) != SQLITE_ROW ||
		    strlen((const char *)sqlite3_column_text(s, 2)) != wl ||
		    memcmp(sqlite3_column_text(s, 2), want, wl) != 0) {
			rc = refuse(err, R2_E_INVALID_PART,
				    "One or more of the specified parts could not be found.");
		} else {
			snprintf(blobs[i], 65, "%s", (const char *)sqlite3_column_text(s, 0));
			sizes[i] = (uint64_t)sqlite3_column_int64(s, 1);
			total += sizes[i];
			uint8_t raw[16];
			const char *e = (const char *)sqlite3_column_text(s, 2);
			for (int b = 0; b < 16 && strlen(e) == 32; b++) {
				unsigned v;
				sscanf(e + 2 * b, "%2x", &v);
				raw[b] = (uint8_t)v;
			}
			EVP_DigestUpdate(etags, raw, sizeof raw);
		}
		sqlite3_finalize(s);
		if (rc == R2_OK && i + 1 < nparts && sizes[i] < R2_PART_MIN)
			rc = refuse(err, R2_E_TOO_SMALL, "Your proposed upload is smaller than the "
							 "minimum allowed object size.");
	}
	int fd = -1;
	struct digests d = {0};
	d.md5 = md_new(EVP_md5());
	d.sha256 = md_new(EVP_sha256());
	/* The object's bytes: the parts, in order, into one new blob. */
	if (rc == R2_OK) {
		fd = tmp_file(st, err);
		if (fd < 0)
			rc = R2_ERR;
	}
	for (size_t i = 0; i < nparts && rc == R2_OK; i++) {
		char *path = blob_path(st, blobs[i]);
		int pf = open(path, O_RDONLY | O_CLOEXEC);
		if (pf < 0)
			rc = fail(err, "%s: %s", path, strerror(errno));
		else
			rc = pass(pf, sizes[i], &d, fd, err);
		if (pf >= 0)
			close(pf);
		free(path);
	}
	char md5[33], sha256[65], parts_md5[33];
	final_hex(d.md5, md5, NULL);
	final_hex(d.sha256, sha256, NULL);
	final_hex(etags, parts_md5, NULL);
	EVP_MD_CTX_free(etags);
	digests_free(&d);
	if (rc == R2_OK)
		rc = blob_store(st, fd, total, sha256, err);
	if (fd >= 0)
		close(fd);
	char(*dropped)[65] = NULL;
	size_t ndropped = 0;
	char old[65] = "";
	if (rc == R2_OK) {
		out->key = malloc(klen + 1);
		if (!out->key)
			abort();
		memcpy(out->key, key, klen);
		out->key[klen] = 0;
		out->key_len = klen;
		random_hex(out->version);
		out->size = total;
		snprintf(out->etag, sizeof out->etag, "%.32s-%u", parts_md5, (unsigned)(nparts % 100000));
		out->uploaded_ms = now_ms;
		out->http_metadata = http;
		out->custom_metadata = custom;
		out->checksums = xdup("{}");
		http = custom = NULL;
		snprintf(out->blob, sizeof out->blob, "%s", sha256);
		rc = begin(st, err);
		if (rc == R2_OK) {
			rc = upload_find(st, key, klen, upload_id, NULL, NULL, err);
			if (rc == R2_OK)
				rc = upsert(st, out, old, err);
			if (rc == R2_OK)
				rc = upload_drop(st, upload_id, &dropped, &ndropped, err);
			if (rc == R2_OK)
				rc = commit(st, err);
			else
				rollback(st);
		}
		if (rc == R2_OK) {
			blob_release(st, old);
			for (size_t i = 0; i < ndropped; i++)
				blob_release(st, dropped[i]);
		} else {
			blob_release(st, sha256);
			r2_object_dispose(out);
		}
	}
	free(dropped);
	free(http);
	free(custom);
	free(blobs);
	free(sizes);
	return rc;
}
