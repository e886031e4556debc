/*
 * The host's store: what `thaw serve --data DIR` keeps across restarts.
 *
 * Layout (DIR is 0700, made at open):
 *   DIR/lock        flock()ed for as long as a store is open: one host per DIR,
 *                   since opening empties DIR/tmp under any other user's feet
 *   DIR/thaw.db     SQLite, WAL, synchronous=FULL (NORMAL with the sync thread of
 *                   store_sync_start, which makes each change durable off the
 *                   loop), foreign keys on
 *   DIR/blobs/HEX   content-addressed files (bundles, snapshots); HEX is the
 *                   lowercase SHA-256 of the content, 64 characters
 *   DIR/tmp/        files being written; anything here at open is debris of a
 *                   crash and is removed (recursively, never following links)
 *   DIR/versions/   for the host's per-version working files
 *   DIR/secrets.key 32 random bytes (0600, made at first open): every secret
 *                   value is stored sealed with it (AES-256-GCM, its name as
 *                   associated data), so thaw.db, its WAL and its backups
 *                   never hold one in clear
 *
 * Schema (migration 1; PRAGMA user_version counts the migrations applied):
 *   workers(name PK, created_ms)
 *   versions(id PK = UUID v4 text, worker -> workers, number 1,2,.. per
 *            worker, created_ms, message, bundle HEX, state, error,
 *            snapshot HEX or NULL, snapshot_bytes; UNIQUE(worker, number))
 *   deployments(id INTEGER PK AUTOINCREMENT, worker -> workers, created_ms,
 *               message)
 *   deployment_versions(deployment -> deployments, slot 0|1,
 *                       version -> versions, percentage in (0,100])
 *   (migration 4: workers.last_number, the highest number given; indexes of
 *   versions by bundle and by snapshot)
 *   (migration 6: a version's disk figures, NULL until known: bundle_bytes,
 *   files_bytes (its unpacked files), image_own_pages, image_base_pages,
 *   image_base HEX (the base image's blob), ws_bytes (IMAGE.ws); a new
 *   snapshot clears the last four)
 * A worker's current deployment is its newest deployments row (highest id);
 * the previous one is the row before it. Deployments are never edited: a
 * rollback is a new deployment made of the previous one's versions, so
 * rolling back twice returns to where one started, as `git revert` would.
 * A deployment is deleted only with a version it names
 * (store_version_delete), which is never one of the current deployment.
 *
 * Blobs are counted, not owned: a blob is in use while a versions row names
 * it (bundle or snapshot), and only a caller that has seen no row name it
 * (store_blob_referenced) after the row's deletion is durable removes it.
 * A crash between the two leaves an unnamed blob, never a row naming a
 * missing one; thaw serve removes unnamed blobs at start.
 *
 * Invariants:
 * - A blob is fsynced, renamed into blobs/ and blobs/ fsynced before blob_*
 *   returns its HEX, so a row can only ever name a complete blob.
 * - Every change is one transaction (BEGIN IMMEDIATE ... COMMIT).
 * - Every HEX that comes from a caller or from the database is checked to be
 *   64 lowercase hex digits before it becomes part of a path.
 * - A migration is applied with its user_version bump in one transaction; a
 *   database newer than this binary is refused rather than guessed at.
 * - Text for JSON is valid UTF-8: messages are checked when stored, error
 *   texts are repaired when stored.
 *
 * Everything here blocks on the disk (fsync); callers on the host loop keep
 * the calls short: one row, one blob. thaw serve starts the sync thread
 * (store_sync_start): then no call waits for an fsync (one fdatasync of the
 * WAL header per checkpoint aside), and its callers wait for tickets.
 */
#include "ext/store.h"
#include "project/project.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/loop.h"

#define INTERRUPTED_ERROR "interrupted: the host stopped while it was being deployed"
#define MESSAGE_MAX 1000      /* bytes of a version's or deployment's message */
#define ERROR_MAX (16 * 1024) /* bytes of a failed version's error, truncated beyond */
#define ADOPT_CHUNK (1u << 20)

/* Each migration takes the schema from user_version i to i + 1. Append only:
 * a released migration is never edited. */
static const char *const migrations[] = {
	/* 1: workers, versions, deployments */
	"CREATE TABLE workers (\n"
	"  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) BETWEEN 1 AND 63),\n"
	"  created_ms INTEGER NOT NULL\n"
	") STRICT;\n"
	"CREATE TABLE versions (\n"
	"  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),\n"
	"  worker TEXT NOT NULL REFERENCES workers(name),\n"
	"  number INTEGER NOT NULL CHECK (number >= 1),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  message TEXT,\n"
	"  bundle TEXT NOT NULL CHECK (length(bundle) = 64 AND bundle NOT GLOB '*[^0-9a-f]*'),\n"
	"  state TEXT NOT NULL CHECK (state IN ('building', 'ready', 'failed')),\n"
	"  error TEXT,\n"
	"  snapshot TEXT CHECK (snapshot IS NULL OR\n"
	"                       (length(snapshot) = 64 AND snapshot NOT GLOB '*[^0-9a-f]*')),\n"
	"  snapshot_bytes INTEGER NOT NULL DEFAULT 0 CHECK (snapshot_bytes >= 0),\n"
	"  UNIQUE (worker, number)\n"
	") STRICT;\n"
	"CREATE TABLE deployments (\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  worker TEXT NOT NULL REFERENCES workers(name),\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  message TEXT\n"
	") STRICT;\n"
	"CREATE INDEX deployments_by_worker ON deployments (worker, id);\n"
	"CREATE TABLE deployment_versions (\n"
	"  deployment INTEGER NOT NULL REFERENCES deployments(id),\n"
	"  slot INTEGER NOT NULL CHECK (slot BETWEEN 0 AND 1),\n"
	"  version TEXT NOT NULL REFERENCES versions(id),\n"
	"  percentage REAL NOT NULL CHECK (percentage > 0 AND percentage <= 100),\n"
	"  PRIMARY KEY (deployment, slot),\n"
	"  UNIQUE (deployment, version)\n"
	") STRICT;\n"
	"CREATE INDEX deployment_versions_by_version ON deployment_versions (version);\n",
	/* 2: a version's project, as the config reader described it (JSON) */
	"ALTER TABLE versions ADD COLUMN project TEXT "
	"CHECK (project IS NULL OR (substr(project, 1, 1) = '{' AND length(project) <= "
	"8388608));\n",
	/* 3: cron trigger runs; secrets (the worker's current ones, and each
	 * version's copy, taken when the version is made) */
	"CREATE TABLE cron_runs (\n"
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  worker TEXT NOT NULL REFERENCES workers(name),\n"
	"  version TEXT NOT NULL,\n"
	"  cron TEXT NOT NULL CHECK (length(cron) BETWEEN 1 AND 256),\n"
	"  scheduled_ms INTEGER NOT NULL,\n"
	"  duration_ms REAL NOT NULL CHECK (duration_ms >= 0),\n"
	"  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'exception', 'timeout', 'error', "
	"'missed', 'skipped')),\n"
	"  error TEXT,\n"
	"  no_retry INTEGER NOT NULL DEFAULT 0\n"
	") STRICT;\n"
	"CREATE INDEX cron_runs_by_worker ON cron_runs (worker, id);\n"
	"CREATE INDEX cron_runs_by_cron ON cron_runs (worker, cron, scheduled_ms);\n"
	"CREATE TABLE secrets (\n"
	"  worker TEXT NOT NULL REFERENCES workers(name),\n"
	"  name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),\n"
	"  value TEXT NOT NULL CHECK (length(value) <= 16384),\n"
	"  PRIMARY KEY (worker, name)\n"
	") STRICT;\n"
	"CREATE TABLE version_secrets (\n"
	"  version TEXT NOT NULL REFERENCES versions(id),\n"
	"  name TEXT NOT NULL,\n"
	"  value TEXT NOT NULL,\n"
	"  PRIMARY KEY (version, name)\n"
	") STRICT;\n",
	/* 4: versions can be deleted. Blobs are counted by the versions naming
	 * them (indexes for that question); a worker remembers the highest
	 * number it gave, so a deleted version's number is never given again. */
	"CREATE INDEX versions_by_bundle ON versions (bundle);\n"
	"CREATE INDEX versions_by_snapshot ON versions (snapshot);\n"
	"ALTER TABLE workers ADD COLUMN last_number INTEGER NOT NULL DEFAULT 0 "
	"CHECK (last_number >= 0);\n"
	"UPDATE workers SET last_number = "
	"(SELECT coalesce(max(number), 0) FROM versions WHERE versions.worker = workers.name);\n",
	/* 5: the host's base images (docs/snapshots.md "The base image"), one
	 * per kind of instance (key), each a blob that counts as named. */
	"CREATE TABLE bases (\n"
	"  key TEXT PRIMARY KEY NOT NULL CHECK (length(key) BETWEEN 1 AND 256),\n"
	"  blob TEXT NOT NULL CHECK (length(blob) = 64 AND blob NOT GLOB '*[^0-9a-f]*'),\n"
	"  created_ms INTEGER NOT NULL\n"
	") STRICT;\n",
	/* 6: what a version holds on disk (docs/snapshots.md "Density"), NULL
	 * until known: set when its bundle is stored and unpacked, its image
	 * adopted or first loaded, its working set recorded. */
	"ALTER TABLE versions ADD COLUMN bundle_bytes INTEGER CHECK (bundle_bytes >= 0);\n"
	"ALTER TABLE versions ADD COLUMN files_bytes INTEGER CHECK (files_bytes >= 0);\n"
	"ALTER TABLE versions ADD COLUMN image_own_pages INTEGER CHECK (image_own_pages >= 0);\n"
	"ALTER TABLE versions ADD COLUMN image_base_pages INTEGER "
	"CHECK (image_base_pages >= 0);\n"
	"ALTER TABLE versions ADD COLUMN image_base TEXT CHECK (image_base IS NULL OR "
	"(length(image_base) = 64 AND image_base NOT GLOB '*[^0-9a-f]*'));\n"
	"ALTER TABLE versions ADD COLUMN ws_bytes INTEGER CHECK (ws_bytes >= 0);\n",
};

#define VERSION_COLUMNS                                                                            \
	"id, worker, number, created_ms, message, bundle, state, error, snapshot, "                \
	"snapshot_bytes, "                                                                         \
	"bundle_bytes, files_bytes, image_own_pages, image_base_pages, image_base, ws_bytes"

enum query {
	Q_BEGIN,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_FAIL_BUILDING,
	Q_WORKER_ADD,
	Q_VERSION_NEXT_NUMBER,
	Q_VERSION_ADD,
	Q_VERSION_GET,
	Q_VERSION_BY_NUMBER,
	Q_VERSION_BY_PREFIX,
	Q_VERSION_SET_STATE,
	Q_VERSION_SET_SNAPSHOT,
	Q_VERSION_SET_PROJECT,
	Q_VERSION_GET_PROJECT,
	Q_VERSIONS_WITHOUT_PROJECT,
	Q_VERSIONS_OF_WORKER,
	Q_DEPLOYMENT_ADD,
	Q_DEPLOYMENT_VERSION_ADD,
	Q_DEPLOYMENT_NTH,
	Q_DEPLOYMENT_VERSIONS,
	Q_WORKERS_DEPLOYED,
	Q_CRON_RUN_ADD,
	Q_CRON_RUNS_TRIM,
	Q_CRON_LAST,
	Q_CRON_RUNS,
	Q_SECRET_PUT,
	Q_SECRET_DELETE,
	Q_SECRET_NAMES,
	Q_VERSION_SECRETS_COPY,
	Q_VERSION_SECRETS,
	Q_WORKER_NUMBER,
	Q_WORKER_EXISTS,
	Q_VERSION_DEPLOYED,
	Q_VERSION_DEPLOYMENTS_DROP,
	Q_DEPLOYMENTS_EMPTY_DROP,
	Q_VERSION_SECRETS_DROP,
	Q_VERSION_DROP,
	Q_BLOB_REFERENCED,
	Q_BASE_GET,
	Q_BASE_PUT,
	Q_VERSIONS_BEYOND,
	Q_VERSION_EXISTS,
	Q_VERSION_SET_FILES,
	Q_VERSION_SET_IMAGE_PAGES,
	Q_VERSION_SET_WS,
	Q_VERSIONS_ALL,
	Q_IMAGE_BASES,
	Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_FAIL_BUILDING] = "UPDATE versions SET state = 'failed', error = ?1 "
			    "WHERE state = 'building'",
	[Q_WORKER_ADD] = "INSERT OR IGNORE INTO workers (name, created_ms) VALUES (?1, ?2)",
	/* Past both the newest version and any number given before (deleted) */
	[Q_VERSION_NEXT_NUMBER] = "SELECT max(coalesce((SELECT max(number) FROM versions "
				  "WHERE worker = ?1), 0), coalesce((SELECT last_number FROM "
				  "workers WHERE name = ?1), 0)) + 1",
	[Q_VERSION_ADD] = "INSERT INTO versions (id, worker, number, created_ms, message, bundle, "
			  "state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'building')",
	[Q_VERSION_GET] = "SELECT " VERSION_COLUMNS " FROM versions WHERE id = ?1",
	[Q_VERSION_BY_NUMBER] = "SELECT " VERSION_COLUMNS
				" FROM versions WHERE worker = ?1 AND number = ?2",
	/* ids in [?1, ?2): those starting with the prefix ?1; ?3 NULL for any worker */
	[Q_VERSION_BY_PREFIX] = "SELECT " VERSION_COLUMNS " FROM versions "
				"WHERE id >= ?1 AND id < ?2 AND (?3 IS NULL OR worker = ?3) "
				"ORDER BY id LIMIT 2",
	[Q_VERSION_SET_STATE] = "UPDATE versions SET state = ?2, error = ?3 WHERE id = ?1",
	[Q_VERSION_SET_SNAPSHOT] = "UPDATE versions SET snapshot = ?2, snapshot_bytes = ?3, "
				   "image_own_pages = NULL, image_base_pages = NULL, "
				   "image_base = NULL, ws_bytes = NULL WHERE id = ?1",
	[Q_VERSION_SET_PROJECT] = "UPDATE versions SET project = ?2 WHERE id = ?1",
	[Q_VERSION_GET_PROJECT] = "SELECT project FROM versions WHERE id = ?1",
	[Q_VERSIONS_WITHOUT_PROJECT] = "SELECT id FROM versions WHERE project IS NULL "
				       "AND state != 'failed' ORDER BY id",
	[Q_VERSIONS_OF_WORKER] = "SELECT " VERSION_COLUMNS
				 " FROM versions WHERE worker = ?1 ORDER BY number DESC",
	[Q_DEPLOYMENT_ADD] = "INSERT INTO deployments (worker, created_ms, message) "
			     "VALUES (?1, ?2, ?3)",
	[Q_DEPLOYMENT_VERSION_ADD] = "INSERT INTO deployment_versions (deployment, slot, version, "
				     "percentage) VALUES (?1, ?2, ?3, ?4)",
	[Q_DEPLOYMENT_NTH] = "SELECT id, created_ms, message FROM deployments WHERE worker = ?1 "
			     "ORDER BY id DESC LIMIT 1 OFFSET ?2",
	[Q_DEPLOYMENT_VERSIONS] = "SELECT version, percentage FROM deployment_versions "
				  "WHERE deployment = ?1 ORDER BY slot",
	[Q_WORKERS_DEPLOYED] = "SELECT DISTINCT worker FROM deployments ORDER BY worker",
	[Q_CRON_RUN_ADD] =
		"INSERT INTO cron_runs (worker, version, cron, scheduled_ms, duration_ms, "
		"outcome, error, no_retry) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	/* keep the newest CRON_RUNS_KEPT runs of a worker */
	[Q_CRON_RUNS_TRIM] = "DELETE FROM cron_runs WHERE worker = ?1 AND id <= (SELECT id FROM "
			     "cron_runs WHERE worker = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
	[Q_CRON_LAST] = "SELECT max(scheduled_ms) FROM cron_runs WHERE worker = ?1 AND cron = ?2",
	[Q_CRON_RUNS] = "SELECT version, cron, scheduled_ms, duration_ms, outcome, error, no_retry "
			"FROM cron_runs WHERE worker = ?1 ORDER BY id DESC LIMIT ?2",
	[Q_SECRET_PUT] = "INSERT INTO secrets (worker, name, value) VALUES (?1, ?2, ?3) "
			 "ON CONFLICT (worker, name) DO UPDATE SET value = excluded.value",
	[Q_SECRET_DELETE] = "DELETE FROM secrets WHERE worker = ?1 AND name = ?2",
	[Q_SECRET_NAMES] = "SELECT name FROM secrets WHERE worker = ?1 ORDER BY name",
	[Q_VERSION_SECRETS_COPY] = "INSERT INTO version_secrets (version, name, value) "
				   "SELECT ?1, name, value FROM secrets WHERE worker = ?2",
	[Q_VERSION_SECRETS] = "SELECT name, value FROM version_secrets WHERE version = ?1",
	[Q_WORKER_NUMBER] = "UPDATE workers SET last_number = max(last_number, ?2) WHERE name = ?1",
	[Q_WORKER_EXISTS] = "SELECT 1 FROM workers WHERE name = ?1",
	/* ?1 in the worker ?2's current deployment (?3 = 1) or in it or the
	 * one before it, the one `thaw rollback` returns to (?3 = 2) */
	[Q_VERSION_DEPLOYED] = "SELECT 1 FROM deployment_versions WHERE version = ?1 AND "
			       "deployment IN (SELECT id FROM deployments WHERE worker = ?2 "
			       "ORDER BY id DESC LIMIT ?3)",
	/* Deployments naming a version that goes: their versions, then them */
	[Q_VERSION_DEPLOYMENTS_DROP] = "DELETE FROM deployment_versions WHERE deployment IN "
				       "(SELECT deployment FROM deployment_versions "
				       "WHERE version = ?1)",
	[Q_DEPLOYMENTS_EMPTY_DROP] = "DELETE FROM deployments WHERE worker = ?1 AND NOT EXISTS "
				     "(SELECT 1 FROM deployment_versions "
				     "WHERE deployment = deployments.id)",
	[Q_VERSION_SECRETS_DROP] = "DELETE FROM version_secrets WHERE version = ?1",
	[Q_VERSION_DROP] = "DELETE FROM versions WHERE id = ?1",
	[Q_BLOB_REFERENCED] = "SELECT 1 FROM versions WHERE bundle = ?1 UNION ALL "
			      "SELECT 1 FROM versions WHERE snapshot = ?1 UNION ALL "
			      "SELECT 1 FROM bases WHERE blob = ?1 LIMIT 1",
	[Q_BASE_GET] = "SELECT blob FROM bases WHERE key = ?1",
	[Q_BASE_PUT] = "INSERT INTO bases (key, blob, created_ms) VALUES (?1, ?2, ?3) "
		       "ON CONFLICT (key) DO UPDATE SET blob = ?2, created_ms = ?3",
	/* The worker ?1's versions past its newest ?2, oldest first, but for
	 * those being deployed and those of its two newest deployments */
	[Q_VERSIONS_BEYOND] = "SELECT id FROM versions WHERE worker = ?1 AND state != 'building' "
			      "AND number <= (SELECT number FROM versions WHERE worker = ?1 "
			      "ORDER BY number DESC LIMIT 1 OFFSET ?2) "
			      "AND id NOT IN (SELECT version FROM deployment_versions WHERE "
			      "deployment IN (SELECT id FROM deployments WHERE worker = ?1 "
			      "ORDER BY id DESC LIMIT 2)) ORDER BY number LIMIT ?3",
	[Q_VERSION_EXISTS] = "SELECT 1 FROM versions WHERE id = ?1",
	[Q_VERSION_SET_FILES] =
		"UPDATE versions SET bundle_bytes = ?2, files_bytes = ?3 WHERE id = ?1",
	/* only while ?5 is still its image: an answer about an older one changes nothing */
	[Q_VERSION_SET_IMAGE_PAGES] =
		"UPDATE versions SET image_own_pages = ?2, image_base_pages = ?3, "
		"image_base = ?4 WHERE id = ?1 AND snapshot = ?5",
	[Q_VERSION_SET_WS] = "UPDATE versions SET ws_bytes = ?2 WHERE id = ?1 AND snapshot = ?3",
	[Q_VERSIONS_ALL] = "SELECT " VERSION_COLUMNS " FROM versions ORDER BY worker, number",
	[Q_IMAGE_BASES] = "SELECT image_base, count(*) FROM versions WHERE snapshot IS NOT NULL "
			  "AND snapshot <> '' AND image_base IS NOT NULL GROUP BY image_base "
			  "ORDER BY image_base",
};

struct store {
	char *dir;    /* absolute */
	int lock_fd;  /* DIR/lock, flock()ed */
	int blobs_fd; /* DIR/blobs, for renames into it and its fsync */
	int versions_fd; /* DIR/versions, for its fsync */
	sqlite3 *db;
	struct store_sync *sync; /* durability off the loop (store_sync_start) */
	uint64_t ticket;          /* changes made (commits, deferred dir fsyncs) */
	int sync_failed;          /* an fsync of the sync thread failed: sticks */
	sqlite3_stmt *stmt[Q_COUNT]; /* prepared on first use */
	unsigned char secret_key[32]; /* DIR/secrets.key: secrets are sealed with it */
};

struct blob_writer {
	struct store *s;
	int fd;
	char *path; /* DIR/tmp/blob-XXXXXX */
	EVP_MD_CTX *md;
	uint64_t size;
	int write_errno; /* the first write error; commit refuses after one */
};

/* --- small helpers --- */

static int db_fail(struct store *s, char *err, size_t errlen, const char *what)
{
	return err_set(err, errlen, "%s/thaw.db: %s: %s", s->dir, what, sqlite3_errmsg(s->db));
}

static int hex_valid(const char *h)
{
	if (!h || strnlen(h, STORE_SHA_HEX + 1) != STORE_SHA_HEX)
		return 0;
	for (int i = 0; i < STORE_SHA_HEX; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return 0;
	return 1;
}

/* A version id as we make them: 36 characters of lowercase hex and '-'.
 * Checked before an id from outside is echoed in a message. */
static int id_valid(const char *id)
{
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN)
		return 0;
	for (int i = 0; i < STORE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') ||
		      id[i] == '-'))
			return 0;
	return 1;
}


static int is_control(unsigned char c)
{
	return (c < 0x20 && c != '\t' && c != '\n') || c == 0x7f;
}

/* A message shown in terminals: valid UTF-8, no control characters except
 * tab and newline (an escape sequence could rewrite a user's screen). */
static int message_check(const char *m, char *err, size_t errlen)
{
	if (!m)
		return 0;
	size_t n = strnlen(m, MESSAGE_MAX + 1);
	if (n > MESSAGE_MAX)
		return err_set(err, errlen, "the message is longer than %d bytes", MESSAGE_MAX);
	const unsigned char *p = (const unsigned char *)m;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (!len)
			return err_set(err, errlen, "the message is not valid UTF-8");
		if (len == 1 && is_control(p[i]))
			return err_set(err, errlen, "the message contains a control character");
		i += len;
	}
	return 0;
}

/* An error text made safe to store and show: at most ERROR_MAX bytes, invalid
 * UTF-8 and control characters (but tab and newline) replaced with '?'.
 * Returns new. */
static char *error_repair(const char *e)
{
	size_t n = strnlen(e, ERROR_MAX);
	char *out = xmalloc(n + 1);
	const unsigned char *p = (const unsigned char *)e;
	size_t i = 0, o = 0;
	while (i < n) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (len == 0) {
			out[o++] = '?';
			i++;
		} else if (len == 1 && is_control(p[i])) {
			out[o++] = '?';
			i++;
		} else {
			memcpy(out + o, p + i, len);
			o += len;
			i += len;
		}
	}
	out[o] = 0;
	return out;
}

/* A JSON string for s, or null for NULL. Text from the database is checked on
 * the way in; should it be invalid anyway, it is repaired rather than lost. */
static json_t *json_text(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (!j) {
		char *fixed = error_repair(s);
		j = json_string(fixed);
		free(fixed);
	}
	return j ? j : json_null();
}

static int uuid4(char out[STORE_ID_LEN + 1], char *err, size_t errlen)
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof b) {
		ssize_t r = getrandom(b + got, sizeof b - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return err_set(err, errlen, "getrandom: %s", strerror(errno));
		got += (size_t)r;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = digits[b[i] >> 4];
		out[o++] = digits[b[i] & 15];
	}
	out[o] = 0;
	return 0;
}

/* --- statements --- */

static sqlite3_stmt *query(struct store *s, enum query q, char *err, size_t errlen)
{
	if (!s->stmt[q]) {
		int rc = sqlite3_prepare_v3(s->db, query_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[q], NULL);
		if (rc != SQLITE_OK) {
			db_fail(s, err, errlen, "preparing a statement");
			s->stmt[q] = NULL;
			return NULL;
		}
	}
	return s->stmt[q];
}

/* Bind the arguments described by fmt, one letter each, to ?1, ?2, ...:
 * t text (NULL binds NULL), i int64_t, d double. SQLITE_OK or an error. */
static int bind(sqlite3_stmt *st, const char *fmt, ...)
{
	va_list ap;
	int rc = SQLITE_OK;
	va_start(ap, fmt);
	for (int i = 0; fmt[i] && rc == SQLITE_OK; i++) {
		int at = i + 1;
		switch (fmt[i]) {
		case 't': {
			const char *t = va_arg(ap, const char *);
			rc = t ? sqlite3_bind_text(st, at, t, -1, SQLITE_STATIC)
			       : sqlite3_bind_null(st, at);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int64(st, at, va_arg(ap, int64_t));
			break;
		case 'd':
			rc = sqlite3_bind_double(st, at, va_arg(ap, double));
			break;

		default:
			rc = SQLITE_MISUSE;
		}
	}
	va_end(ap);
	return rc;
}

/* Make a statement ready for its next use. sqlite3_reset() repeats the error
 * of the last step, which its caller has handled already. */
static void done(sqlite3_stmt *st)
{
	if (st) {
		(void)sqlite3_reset(st);
		(void)sqlite3_clear_bindings(st);
	}
}

/* Run a statement that returns no rows. 0 or -1 with err. */
static int exec_query(struct store *s, enum query q, char *err, size_t errlen, const char *what)
{
	sqlite3_stmt *st = query(s, q, err, errlen);
	if (!st)
		return -1;
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : db_fail(s, err, errlen, what);
	done(st);
	return r;
}

static int begin(struct store *s, char *err, size_t errlen)
{
	return exec_query(s, Q_BEGIN, err, errlen, "starting a transaction");
}

static void sync_kick(struct store *s, unsigned dirs);

static int commit(struct store *s, char *err, size_t errlen)
{
	/* With the sync thread, SQLite's WAL hook takes the ticket (every
	 * commit, a lone statement's too). */
	return exec_query(s, Q_COMMIT, err, errlen, "committing");
}

static void rollback(struct store *s)
{
	char err[256];
	if (sqlite3_get_autocommit(s->db))
		return; /* SQLite already rolled back (e.g. after SQLITE_FULL) */
	if (exec_query(s, Q_ROLLBACK, err, sizeof err, "rolling back") < 0)
		log_error("%s", err);
}

/* Copy a text column of at most cap - 1 bytes into dst ("" for NULL when
 * nullable). 0, or -1 when missing or too long. */
static int column_copy(sqlite3_stmt *st, int col, char *dst, size_t cap, int nullable)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	if (!t) {
		dst[0] = 0;
		return nullable && sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : -1;
	}
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (n >= cap || memchr(t, 0, n))
		return -1;
	memcpy(dst, t, n + 1);
	return 0;
}

static char *column_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	return t ? xstrdup((const char *)t) : NULL;
}

static int state_valid(const char *state)
{
	return state && (!strcmp(state, "building") || !strcmp(state, "ready") ||
			 !strcmp(state, "failed"));
}

/* Fill v from a row of VERSION_COLUMNS, checking what becomes a path or an
 * array index. 0, or -1 (v cleared) when the row is corrupt. */
static int version_from_row(sqlite3_stmt *st, struct version *v)
{
	memset(v, 0, sizeof *v);
	int64_t number = sqlite3_column_int64(st, 2);
	int64_t bytes = sqlite3_column_int64(st, 9);
	if (column_copy(st, 0, v->id, sizeof v->id, 0) < 0 || strlen(v->id) != STORE_ID_LEN ||
	    column_copy(st, 1, v->worker, sizeof v->worker, 0) < 0 ||
	    column_copy(st, 5, v->bundle, sizeof v->bundle, 0) < 0 || !hex_valid(v->bundle) ||
	    column_copy(st, 6, v->state, sizeof v->state, 0) < 0 || !state_valid(v->state) ||
	    column_copy(st, 8, v->snapshot, sizeof v->snapshot, 1) < 0 ||
	    (v->snapshot[0] && !hex_valid(v->snapshot)) || number < 1 || number > INT_MAX ||
	    bytes < 0) {
		const unsigned char *id = sqlite3_column_text(st, 0);
		log_error("thaw.db: the version row '%.36s' is corrupt; ignoring it",
			  id ? (const char *)id : "?");
		memset(v, 0, sizeof *v);
		return -1;
	}
	v->number = (int)number;
	v->created_ms = sqlite3_column_int64(st, 3);
	v->snapshot_bytes = (uint64_t)bytes;
	/* The disk figures: -1 when NULL (not known) or out of range (a page
	 * count over STORE_MAX_PAGES, a byte count over STORE_MAX_PAGES pages:
	 * neither is a file, and pages * 4096 summed stays within 64 bits). */
	int64_t *figures[] = {&v->bundle_bytes, &v->files_bytes, &v->image_own_pages,
			      &v->image_base_pages};
	const int64_t limits[] = {STORE_MAX_PAGES * 4096, STORE_MAX_PAGES * 4096, STORE_MAX_PAGES,
				  STORE_MAX_PAGES};
	for (int i = 0; i < 4; i++) {
		int col = 10 + i;
		*figures[i] = sqlite3_column_type(st, col) == SQLITE_INTEGER
				      ? sqlite3_column_int64(st, col)
				      : -1;
		if (*figures[i] < -1 || *figures[i] > limits[i])
			*figures[i] = -1;
	}
	if (column_copy(st, 14, v->image_base, sizeof v->image_base, 1) < 0 ||
	    (v->image_base[0] && !hex_valid(v->image_base)))
		v->image_base[0] = 0;
	v->ws_bytes = sqlite3_column_type(st, 15) == SQLITE_INTEGER ? sqlite3_column_int64(st, 15)
								    : -1;
	if (v->ws_bytes < -1 || v->ws_bytes > STORE_MAX_PAGES * 4096)
		v->ws_bytes = -1;
	v->message = column_dup(st, 4);
	v->error = column_dup(st, 7);
	return 0;
}

/* --- opening --- */

/* Remove everything inside the directory dirfd, never following a symlink
 * and at any depth (util.c's empty_dir_fd: an instance's leftovers may be
 * nested past PATH_MAX). 0 or -1 with err. */
static int empty_dir(int dirfd, const char *path, char *err, size_t errlen)
{
	if (empty_dir_fd(dirfd) < 0)
		return err_set(err, errlen, "emptying %s: %s", path, strerror(errno));
	return 0;
}

/* Make DIR/name a directory (not a symlink) and open it. fd or -1 with err. */
static int subdir_open(int dirfd, const char *dir, const char *name, char *err, size_t errlen)
{
	if (mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return err_set(err, errlen, "creating %s/%s: %s", dir, name, strerror(errno));
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errlen, "%s/%s: %s", dir, name,
			    errno == ENOTDIR || errno == ELOOP ? "not a directory"
							       : strerror(errno));
	return fd;
}

/* Read one integer from a query (a PRAGMA). 0 or -1 with err. */
static int pragma_int(struct store *s, const char *sql, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, errlen, sql);
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		r = db_fail(s, err, errlen, sql);
	sqlite3_finalize(st);
	return r;
}

static int configure(struct store *s, char *err, size_t errlen)
{
	int rc = sqlite3_extended_result_codes(s->db, 1);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(s->db, 5000);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	if (rc != SQLITE_OK)
		return db_fail(s, err, errlen, "configuring the connection");

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK)
		return db_fail(s, err, errlen, "setting the journal mode");
	rc = sqlite3_step(st);
	const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	int wal = mode && !strcmp((const char *)mode, "wal");
	if (rc != SQLITE_ROW) {
		db_fail(s, err, errlen, "setting the journal mode");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	if (!wal)
		return err_set(err, errlen, "%s/thaw.db: the file system does not allow WAL mode",
			    s->dir);

	if (sqlite3_exec(s->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL,
			 NULL) != SQLITE_OK)
		return db_fail(s, err, errlen, "setting synchronous and foreign_keys");
	int64_t fk = 0, sync = 0;
	if (pragma_int(s, "PRAGMA foreign_keys", &fk, err, errlen) < 0 ||
	    pragma_int(s, "PRAGMA synchronous", &sync, err, errlen) < 0)
		return -1;
	if (fk != 1 || sync != 2)
		return err_set(err, errlen, "%s/thaw.db: this SQLite ignores foreign_keys/synchronous",
			    s->dir);
	return 0;
}

static int migrate(struct store *s, char *err, size_t errlen)
{
	const int64_t known = (int64_t)ARRAY_SIZE(migrations);
	for (;;) {
		int64_t have;
		if (begin(s, err, errlen) < 0)
			return -1;
		if (pragma_int(s, "PRAGMA user_version", &have, err, errlen) < 0)
			goto error;
		if (have > known) {
			err_set(err, errlen,
			     "%s/thaw.db has schema version %lld, newer than this thaw knows "
			     "(%lld): run a newer thaw on it",
			     s->dir, (long long)have, (long long)known);
			goto error;
		}
		if (have < 0) {
			err_set(err, errlen, "%s/thaw.db has an invalid schema version %lld", s->dir,
			     (long long)have);
			goto error;
		}
		if (have == known)
			return commit(s, err, errlen);
		char *msg = NULL;
		if (sqlite3_exec(s->db, migrations[have], NULL, NULL, &msg) != SQLITE_OK) {
			err_set(err, errlen, "%s/thaw.db: schema migration %lld: %s", s->dir,
			     (long long)have + 1, msg ? msg : sqlite3_errmsg(s->db));
			sqlite3_free(msg);
			goto error;
		}
		char sql[64];
		snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)have + 1);
		if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			db_fail(s, err, errlen, "recording the schema version");
			goto error;
		}
		if (commit(s, err, errlen) < 0)
			goto error;
		log_debug("%s/thaw.db: schema migrated to version %lld", s->dir,
			  (long long)have + 1);
	}
error:
	rollback(s);
	return -1;
}

/* DIR/secrets.key: read it, or make it (random, 0600, fsynced) on first open. */
static int secret_key_load(struct store *s, int dirfd, char *err, size_t errlen)
{
	int fd = openat(dirfd, "secrets.key", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		unsigned char k[32];
		if (getrandom(k, sizeof k, 0) != (ssize_t)sizeof k)
			return err_set(err, errlen, "getrandom: %s", strerror(errno));
		int w = openat(dirfd, "secrets.key.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
							    O_CLOEXEC, 0600);
		if (w < 0 || write_all(w, k, sizeof k) < 0 || fsync(w) < 0 ||
		    renameat(dirfd, "secrets.key.tmp", dirfd, "secrets.key") < 0 || fsync(dirfd) < 0) {
			int e = errno;
			if (w >= 0)
				close(w);
			return err_set(err, errlen, "%s/secrets.key: %s", s->dir, strerror(e));
		}
		close(w);
		fd = openat(dirfd, "secrets.key", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return err_set(err, errlen, "%s/secrets.key: %s", s->dir, strerror(errno));
	ssize_t n = read(fd, s->secret_key, sizeof s->secret_key);
	char extra;
	ssize_t more = read(fd, &extra, 1);
	close(fd);
	if (n != (ssize_t)sizeof s->secret_key || more != 0)
		return err_set(err, errlen, "%s/secrets.key is not 32 bytes: restore it from a backup "
			       "(without it the stored secrets cannot be read)", s->dir);
	return 0;
}

static int fail_interrupted(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = query(s, Q_FAIL_BUILDING, err, errlen);
	if (!st)
		return -1;
	int rc = bind(st, "t", INTERRUPTED_ERROR);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : db_fail(s, err, errlen, "failing interrupted versions");
	int n = sqlite3_changes(s->db);
	done(st);
	if (r == 0 && n > 0)
		log_warn("%s: %d version%s left building by the previous run marked failed", s->dir,
			 n, n == 1 ? "" : "s");
	return r;
}

struct store *store_open(const char *dir, char *err, size_t errlen)
{
	if (!dir || !*dir) {
		err_set(err, errlen, "no data directory given");
		return NULL;
	}
	if (mkdir_p(dir, 0700) < 0) {
		err_set(err, errlen, "creating %s: %s", dir, strerror(errno));
		return NULL;
	}
	struct store *s = xcalloc(1, sizeof *s);
	s->lock_fd = s->blobs_fd = s->versions_fd = -1;
	int dirfd = -1, tmp_fd = -1, versions_fd = -1;

	s->dir = realpath(dir, NULL);
	if (!s->dir) {
		err_set(err, errlen, "%s: %s", dir, strerror(errno));
		goto error;
	}
	dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		err_set(err, errlen, "%s: %s", s->dir, strerror(errno));
		goto error;
	}
	s->lock_fd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		err_set(err, errlen, "%s/lock: %s", s->dir, strerror(errno));
		goto error;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		err_set(err, errlen, "%s is in use by another thaw process (%s/lock is locked)",
		     s->dir, s->dir);
		goto error;
	}
	s->blobs_fd = subdir_open(dirfd, s->dir, "blobs", err, errlen);
	if (s->blobs_fd < 0)
		goto error;
	if ((tmp_fd = subdir_open(dirfd, s->dir, "tmp", err, errlen)) < 0 ||
	    (versions_fd = subdir_open(dirfd, s->dir, "versions", err, errlen)) < 0)
		goto error;
	char tmp_path[PATH_MAX];
	snprintf(tmp_path, sizeof tmp_path, "%s/tmp", s->dir);
	if (empty_dir(tmp_fd, tmp_path, err, errlen) < 0)
		goto error;
	/* The subdirectories' entries are durable before any blob lands in them. */
	if (fsync(dirfd) < 0) {
		err_set(err, errlen, "fsync %s: %s", s->dir, strerror(errno));
		goto error;
	}

	char db_path[PATH_MAX];
	if (path_join(db_path, sizeof db_path, s->dir, "thaw.db") < 0) {
		err_set(err, errlen, "%s: path too long", s->dir);
		goto error;
	}
	int rc = sqlite3_open_v2(db_path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW,
				 NULL);
	if (rc != SQLITE_OK) {
		err_set(err, errlen, "%s: %s", db_path,
		     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		goto error;
	}
	if (configure(s, err, errlen) < 0 || migrate(s, err, errlen) < 0 ||
	    fail_interrupted(s, err, errlen) < 0 || secret_key_load(s, dirfd, err, errlen) < 0)
		goto error;

	s->versions_fd = versions_fd;
	close(tmp_fd);
	close(dirfd);
	return s;

error:
	if (versions_fd >= 0)
		close(versions_fd);
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (dirfd >= 0)
		close(dirfd);
	store_close(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	store_sync_stop(s);
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db) {
		int rc = sqlite3_close(s->db);
		if (rc != SQLITE_OK)
			log_error("%s/thaw.db: closing: %s", s->dir, sqlite3_errstr(rc));
	}
	if (s->blobs_fd >= 0)
		close(s->blobs_fd);
	if (s->versions_fd >= 0)
		close(s->versions_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s->dir);
	free(s);
}

const char *store_dir(const struct store *s)
{
	return s->dir;
}

/* --- durability off the loop (store.h: store_sync_start) --- */

#define SYNC_BLOBS 1u
#define SYNC_VERSIONS 2u
#define SYNC_CHECKPOINT_FRAMES 1000 /* the thread checkpoints a WAL of this many pages */

struct sync_watch {
	struct loop_watch w;
	struct store_sync *y; /* NULL once stopped (an event may still come) */
};

struct store_sync {
	struct store *s;
	struct loop *loop;
	void (*synced)(void *arg);
	void *arg;
	int efd;
	struct sync_watch *watch;
	pthread_t thread;
	char *db_path, *wal_path;
	int blobs_fd, versions_fd; /* the store's, used by the thread for fsync */
	/* Under mu: */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t want, done; /* tickets asked for, made durable */
	int64_t wal_frames;  /* in the WAL since its last restart (the WAL hook's) */
	unsigned dirs;       /* directories to fsync in the next round */
	int failed, stop;
};

static int sync_round(struct store_sync *y, sqlite3 *ckpt, unsigned dirs, int64_t frames)
{
	int ok = 1;
	if ((dirs & SYNC_BLOBS) && fsync(y->blobs_fd) < 0) {
		log_error("%s/blobs: fsync: %s", y->s->dir, strerror(errno));
		ok = 0;
	}
	if ((dirs & SYNC_VERSIONS) && fsync(y->versions_fd) < 0) {
		log_error("%s/versions: fsync: %s", y->s->dir, strerror(errno));
		ok = 0;
	}
	int fd = open(y->wal_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT) {
		log_error("%s: %s", y->wal_path, strerror(errno));
		ok = 0;
	}
	if (fd >= 0) {
		if (fdatasync(fd) < 0) {
			log_error("%s: fdatasync: %s", y->wal_path, strerror(errno));
			ok = 0;
		}
		/* By the frames the WAL holds since it restarted, not its file's
		 * size: SQLite reuses the file from the start and never shrinks it. */
		if (ok && ckpt && frames >= SYNC_CHECKPOINT_FRAMES) {
			/* PASSIVE: copies what no reader needs, never waits for the
			 * loop's connection nor holds it up. */
			int rc = sqlite3_wal_checkpoint_v2(ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
							   NULL);
			if (rc != SQLITE_OK && rc != SQLITE_BUSY)
				log_warn("%s: checkpoint: %s", y->db_path, sqlite3_errstr(rc));
		}
		close(fd);
	}
	return ok;
}

static void *sync_main(void *arg)
{
	struct store_sync *y = arg;
	sqlite3 *ckpt = NULL;
	if (sqlite3_open_v2(y->db_path, &ckpt, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL) !=
	    SQLITE_OK) {
		log_warn("%s: the sync thread cannot open it to checkpoint: %s", y->db_path,
			 ckpt ? sqlite3_errmsg(ckpt) : "out of memory");
		sqlite3_close(ckpt);
		ckpt = NULL;
	} else {
		sqlite3_busy_timeout(ckpt, 1000);
		/* A connection that never read has not opened the WAL: its
		 * checkpoint would do nothing and say SQLITE_OK. */
		sqlite3_exec(ckpt, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL);
	}
	pthread_mutex_lock(&y->mu);
	for (;;) {
		while (!y->stop && y->want == y->done && !y->dirs)
			pthread_cond_wait(&y->cv, &y->mu);
		if (y->want == y->done && !y->dirs)
			break; /* stopping, and nothing left */
		uint64_t g = y->want;
		unsigned dirs = y->dirs;
		int64_t frames = y->wal_frames;
		y->dirs = 0;
		pthread_mutex_unlock(&y->mu);
		int ok = sync_round(y, ckpt, dirs, frames);
		pthread_mutex_lock(&y->mu);
		if (!ok && !y->failed) {
			y->failed = 1;
			log_error("%s: changes could not be made durable: thaw serve reports every "
				  "change from now on as failed; stop the host and check the disk",
				  y->s->dir);
		}
		y->done = g;
		uint64_t one = 1;
		if (write(y->efd, &one, sizeof one) < 0) {
			/* Only fails when the counter is at its maximum: already woken. */
		}
	}
	pthread_mutex_unlock(&y->mu);
	sqlite3_close(ckpt);
	return NULL;
}

static void sync_woken(struct loop *l, struct loop_watch *w, uint32_t events)
{
	(void)l;
	(void)events;
	struct store_sync *y = ((struct sync_watch *)w)->y;
	if (!y)
		return;
	uint64_t v;
	if (read(y->efd, &v, sizeof v) < 0) {
		/* Spurious wakeup. */
	}
	if (y->synced)
		y->synced(y->arg);
}

static void sync_kick_frames(struct store *s, unsigned dirs, int64_t frames)
{
	s->ticket++;
	struct store_sync *y = s->sync;
	if (!y)
		return;
	pthread_mutex_lock(&y->mu);
	y->want = s->ticket;
	y->dirs |= dirs;
	if (frames >= 0)
		y->wal_frames = frames;
	pthread_cond_signal(&y->cv);
	pthread_mutex_unlock(&y->mu);
}

static void sync_kick(struct store *s, unsigned dirs)
{
	sync_kick_frames(s, dirs, -1);
}

/* SQLite calls this after every commit to the WAL (the loop's thread). */
static int wal_committed(void *arg, sqlite3 *db, const char *name, int frames)
{
	(void)db;
	(void)name;
	sync_kick_frames(arg, 0, frames);
	return SQLITE_OK;
}

int store_sync_start(struct store *s, struct loop *l, void (*synced)(void *arg), void *arg,
		     char *err, size_t errlen)
{
	if (s->sync)
		return 0;
	/* The loop's connection neither syncs nor checkpoints (the thread
	 * does both); NORMAL keeps the one fsync of a WAL restarting after a
	 * checkpoint, once per SYNC_CHECKPOINT_BYTES of changes. */
	if (sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0", NULL,
			 NULL, NULL) != SQLITE_OK)
		return db_fail(s, err, errlen, "setting synchronous = NORMAL");
	struct store_sync *y = xcalloc(1, sizeof *y);
	y->s = s;
	y->loop = l;
	y->synced = synced;
	y->arg = arg;
	y->blobs_fd = s->blobs_fd;
	y->versions_fd = s->versions_fd;
	y->db_path = xasprintf("%s/thaw.db", s->dir);
	y->wal_path = xasprintf("%s/thaw.db-wal", s->dir);
	y->want = y->done = s->ticket;
	pthread_mutex_init(&y->mu, NULL);
	pthread_cond_init(&y->cv, NULL);
	y->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int e = y->efd < 0 ? errno : pthread_create(&y->thread, NULL, sync_main, y);
	if (e) {
		if (y->efd >= 0)
			close(y->efd);
		free(y->db_path);
		free(y->wal_path);
		pthread_cond_destroy(&y->cv);
		pthread_mutex_destroy(&y->mu);
		free(y);
		sqlite3_exec(s->db, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000",
			     NULL, NULL, NULL);
		return err_set(err, errlen, "cannot start the store's sync thread: %s", strerror(e));
	}
	sqlite3_wal_hook(s->db, wal_committed, s);
	y->watch = xcalloc(1, sizeof *y->watch);
	y->watch->y = y;
	y->watch->w.fd = y->efd;
	y->watch->w.fn = sync_woken;
	if (loop_add(l, &y->watch->w, EPOLLIN) < 0)
		fatal("cannot watch the store's sync thread: %s", strerror(errno));
	s->sync = y;
	return 0;
}

void store_sync_stop(struct store *s)
{
	struct store_sync *y = s ? s->sync : NULL;
	if (!y)
		return;
	pthread_mutex_lock(&y->mu);
	y->stop = 1;
	pthread_cond_signal(&y->cv);
	pthread_mutex_unlock(&y->mu);
	pthread_join(y->thread, NULL); /* the last round made everything durable */
	if (y->failed)
		s->sync_failed = 1; /* held answers must not go out as success */
	loop_del(y->loop, &y->watch->w);
	y->watch->y = NULL;
	loop_defer_free(y->loop, y->watch);
	close(y->efd);
	free(y->db_path);
	free(y->wal_path);
	pthread_cond_destroy(&y->cv);
	pthread_mutex_destroy(&y->mu);
	free(y);
	s->sync = NULL;
	/* Also replaces the WAL hook with SQLite's own checkpointing one. */
	sqlite3_exec(s->db, "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 1000", NULL,
		     NULL, NULL);
}

uint64_t store_ticket(const struct store *s)
{
	return s->ticket;
}

int store_durable(const struct store *s, uint64_t ticket)
{
	struct store_sync *y = s->sync;
	if (s->sync_failed)
		return -1;
	if (!y)
		return 1;
	pthread_mutex_lock(&y->mu);
	int r = y->failed ? -1 : y->done >= ticket;
	pthread_mutex_unlock(&y->mu);
	return r;
}

void store_versions_dir_sync(struct store *s)
{
	if (s->sync) {
		sync_kick(s, SYNC_VERSIONS);
		return;
	}
	if (fsync(s->versions_fd) < 0)
		log_warn("%s/versions: fsync: %s", s->dir, strerror(errno));
}

/* --- blobs --- */

static void hex_encode(const unsigned char *md, char hex[STORE_SHA_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < STORE_SHA_HEX / 2; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[STORE_SHA_HEX] = 0;
}

static int digest_final(EVP_MD_CTX *md, char hex[STORE_SHA_HEX + 1], char *err, size_t errlen)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != STORE_SHA_HEX / 2)
		return err_set(err, errlen, "SHA-256 failed");
	hex_encode(out, hex);
	return 0;
}

/* Move the complete, fsynced file at path to blobs/hex, keeping an existing
 * blob of the same name and size (same hash: same content) and dropping
 * path then; fsync blobs/. 0 or -1 with err (path left in place). */
static int blob_install(struct store *s, const char *path, const char *hex, uint64_t size,
			char *err, size_t errlen)
{
	int r = renameat2(AT_FDCWD, path, s->blobs_fd, hex, RENAME_NOREPLACE);
	if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
		/* A file system without RENAME_NOREPLACE: check, then rename. */
		struct stat st;
		if (fstatat(s->blobs_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			errno = EEXIST;
		} else {
			r = renameat(AT_FDCWD, path, s->blobs_fd, hex);
		}
	}
	if (r < 0 && errno == EEXIST) {
		struct stat st;
		if (fstatat(s->blobs_fd, hex, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && (uint64_t)st.st_size == size) {
			if (unlink(path) < 0)
				log_warn("removing %s: %s", path, strerror(errno));
			r = 0;
		} else {
			/* Not what it should be (a damaged file): replace it. */
			log_warn("%s/blobs/%s: replacing a damaged copy", s->dir, hex);
			r = renameat(AT_FDCWD, path, s->blobs_fd, hex);
		}
	}
	if (r < 0)
		return err_set(err, errlen, "moving %s to %s/blobs/%s: %s", path, s->dir, hex,
			    strerror(errno));
	/* Even when the blob existed: its rename may not be durable yet. With
	 * the sync thread the fsync is a later round's: a row naming the blob
	 * committed while a round runs can reach the disk (that round's WAL
	 * fdatasync) before blobs/ does, so after a power loss at that moment
	 * a version may name a blob that is not there (its deploy's answer
	 * never went out: tickets hold it). */
	if (s->sync) {
		sync_kick(s, SYNC_BLOBS);
		return 0;
	}
	if (fsync(s->blobs_fd) < 0)
		return err_set(err, errlen, "fsync %s/blobs: %s", s->dir, strerror(errno));
	return 0;
}

struct blob_writer *blob_begin(struct store *s, char *err, size_t errlen)
{
	struct blob_writer *w = xcalloc(1, sizeof *w);
	w->s = s;
	w->path = xasprintf("%s/tmp/blob-XXXXXX", s->dir);
	w->fd = mkostemp(w->path, O_CLOEXEC);
	if (w->fd < 0) {
		err_set(err, errlen, "creating a file in %s/tmp: %s", s->dir, strerror(errno));
		free(w->path);
		free(w);
		return NULL;
	}
	w->md = EVP_MD_CTX_new();
	if (!w->md)
		fatal("out of memory (EVP_MD_CTX_new)");
	if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
		err_set(err, errlen, "SHA-256 is not available");
		blob_abort(w);
		return NULL;
	}
	return w;
}

int blob_write(struct blob_writer *w, const void *p, size_t n, char *err, size_t errlen)
{
	if (w->write_errno)
		return err_set(err, errlen, "an earlier write failed: %s", strerror(w->write_errno));
	if (EVP_DigestUpdate(w->md, p, n) != 1) {
		w->write_errno = EIO;
		return err_set(err, errlen, "SHA-256 failed");
	}
	if (write_all(w->fd, p, n) < 0) {
		w->write_errno = errno ? errno : EIO;
		return err_set(err, errlen, "writing %s: %s", w->path, strerror(w->write_errno));
	}
	w->size += n;
	return 0;
}

uint64_t blob_size(const struct blob_writer *w)
{
	return w->size;
}

static void blob_writer_free(struct blob_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	EVP_MD_CTX_free(w->md);
	free(w->path);
	free(w);
}

int blob_commit(struct blob_writer *w, char hex[STORE_SHA_HEX + 1], char *err, size_t errlen)
{
	struct store *s = w->s;
	int r = -1;
	if (w->write_errno) {
		err_set(err, errlen, "writing %s: %s", w->path, strerror(w->write_errno));
		goto out;
	}
	if (digest_final(w->md, hex, err, errlen) < 0)
		goto out;
	if (fsync(w->fd) < 0) {
		err_set(err, errlen, "fsync %s: %s", w->path, strerror(errno));
		goto out;
	}
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) < 0) {
		err_set(err, errlen, "closing %s: %s", w->path, strerror(errno));
		goto out;
	}
	r = blob_install(s, w->path, hex, w->size, err, errlen);
out:
	if (r < 0) {
		unlink(w->path);
		hex[0] = 0;
	}
	blob_writer_free(w);
	return r;
}

int blob_finish(struct blob_writer *w, char hex[STORE_SHA_HEX + 1], char **tmp_path,
		uint64_t *bytes, char *err, size_t errlen)
{
	int r = -1;
	*tmp_path = NULL;
	if (w->write_errno) {
		err_set(err, errlen, "writing %s: %s", w->path, strerror(w->write_errno));
		goto out;
	}
	if (digest_final(w->md, hex, err, errlen) < 0)
		goto out;
	int fd = w->fd;
	w->fd = -1;
	if (close(fd) < 0) {
		err_set(err, errlen, "closing %s: %s", w->path, strerror(errno));
		goto out;
	}
	*bytes = w->size;
	*tmp_path = w->path;
	w->path = NULL;
	r = 0;
out:
	if (r < 0) {
		unlink(w->path);
		hex[0] = 0;
	}
	blob_writer_free(w);
	return r;
}

void blob_abort(struct blob_writer *w)
{
	if (!w)
		return;
	if (unlink(w->path) < 0)
		log_warn("removing %s: %s", w->path, strerror(errno));
	blob_writer_free(w);
}

/* On failure the file stays where it is, for the caller to remove (or for
 * the next open, when it is in DIR/tmp). */
int blob_hash_file(const char *tmp_path, char hex[STORE_SHA_HEX + 1], uint64_t *bytes, char *err,
		   size_t errlen)
{
	hex[0] = 0;
	int fd = open(tmp_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errlen, "%s: %s", tmp_path, strerror(errno));
	int r = -1;
	unsigned char *buf = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		fatal("out of memory (EVP_MD_CTX_new)");
	struct stat st;
	if (fstat(fd, &st) < 0) {
		err_set(err, errlen, "%s: %s", tmp_path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, errlen, "%s: not a regular file", tmp_path);
		goto out;
	}
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		err_set(err, errlen, "SHA-256 is not available");
		goto out;
	}
	buf = xmalloc(ADOPT_CHUNK);
	uint64_t size = 0;
	for (;;) {
		ssize_t n = read(fd, buf, ADOPT_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err_set(err, errlen, "reading %s: %s", tmp_path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			err_set(err, errlen, "SHA-256 failed");
			goto out;
		}
		size += (uint64_t)n;
	}
	if (digest_final(md, hex, err, errlen) < 0)
		goto out;
	if (fsync(fd) < 0) {
		err_set(err, errlen, "fsync %s: %s", tmp_path, strerror(errno));
		goto out;
	}
	*bytes = size;
	r = 0;
out:
	if (r < 0)
		hex[0] = 0;
	free(buf);
	EVP_MD_CTX_free(md);
	close(fd);
	return r;
}

int blob_install_file(struct store *s, const char *tmp_path, const char *hex, uint64_t bytes,
		      char *err, size_t errlen)
{
	if (!hex_valid(hex))
		return err_set(err, errlen, "not a SHA-256: %.80s", hex);
	return blob_install(s, tmp_path, hex, bytes, err, errlen);
}

int blob_adopt(struct store *s, const char *tmp_path, char hex[STORE_SHA_HEX + 1], char *err,
	       size_t errlen)
{
	uint64_t bytes;
	if (blob_hash_file(tmp_path, hex, &bytes, err, errlen) < 0)
		return -1;
	if (blob_install(s, tmp_path, hex, bytes, err, errlen) < 0) {
		hex[0] = 0;
		return -1;
	}
	return 0;
}

char *blob_path(const struct store *s, const char *hex)
{
	if (!hex_valid(hex))
		return NULL;
	return xasprintf("%s/blobs/%s", s->dir, hex);
}

/* --- versions --- */

void version_clear(struct version *v)
{
	if (!v)
		return;
	free(v->message);
	free(v->error);
	v->message = v->error = NULL;
}

int store_version_add(struct store *s, const char *worker, const char *bundle_hex,
		      const char *message, struct version *v, char *err, size_t errlen)
{
	memset(v, 0, sizeof *v);
	if (!project_name_valid(worker))
		return err_set(err, errlen,
			    "the worker name is not valid: use 1-63 lowercase letters, digits, "
			    "'-' and '_', not starting or ending with '-'");
	if (!hex_valid(bundle_hex))
		return err_set(err, errlen, "the bundle's SHA-256 is not 64 lowercase hex digits");
	if (message_check(message, err, errlen) < 0)
		return -1;

	struct version nv = {0};
	if (uuid4(nv.id, err, errlen) < 0)
		return -1;
	snprintf(nv.worker, sizeof nv.worker, "%s", worker);
	memcpy(nv.bundle, bundle_hex, STORE_SHA_HEX + 1);
	snprintf(nv.state, sizeof nv.state, "building");
	nv.created_ms = wall_ms();

	sqlite3_stmt *st;
	int rc;
	if (begin(s, err, errlen) < 0)
		return -1;
	if (!(st = query(s, Q_WORKER_ADD, err, errlen)))
		goto error;
	rc = bind(st, "ti", worker, nv.created_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "adding the worker");
		goto error;
	}

	if (!(st = query(s, Q_VERSION_NEXT_NUMBER, err, errlen)))
		goto error;
	rc = bind(st, "t", worker);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int64_t number = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	done(st);
	if (rc != SQLITE_ROW) {
		db_fail(s, err, errlen, "numbering the version");
		goto error;
	}
	if (number < 1 || number > INT_MAX) {
		err_set(err, errlen, "worker %s has too many versions", worker);
		goto error;
	}
	nv.number = (int)number;

	if (!(st = query(s, Q_VERSION_ADD, err, errlen)))
		goto error;
	rc = bind(st, "ttiitt", nv.id, worker, (int64_t)nv.number, nv.created_ms, message,
		  bundle_hex);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "adding the version");
		goto error;
	}
	if (!(st = query(s, Q_WORKER_NUMBER, err, errlen)))
		goto error;
	rc = bind(st, "ti", worker, (int64_t)nv.number);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "numbering the version");
		goto error;
	}
	/* The version keeps the worker's secrets as they are now. */
	if (!(st = query(s, Q_VERSION_SECRETS_COPY, err, errlen)))
		goto error;
	rc = bind(st, "tt", nv.id, worker);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "copying the secrets");
		goto error;
	}
	if (commit(s, err, errlen) < 0)
		goto error;
	nv.message = message ? xstrdup(message) : NULL;
	*v = nv;
	return 0;
error:
	rollback(s);
	return -1;
}

/* Run a prepared, bound query for one version row. 0 found, -1 none or an
 * error (logged). */
static int version_fetch(struct store *s, sqlite3_stmt *st, int rc, struct version *v)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = -1;
	if (rc == SQLITE_ROW)
		r = version_from_row(st, v);
	else if (rc != SQLITE_DONE)
		log_error("%s/thaw.db: reading a version: %s", s->dir, sqlite3_errmsg(s->db));
	done(st);
	return r;
}

int store_version_get(struct store *s, const char *id, struct version *v)
{
	memset(v, 0, sizeof *v);
	char err[256];
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN)
		return -1;
	sqlite3_stmt *st = query(s, Q_VERSION_GET, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	return version_fetch(s, st, bind(st, "t", id), v);
}

/* Versions whose id starts with prefix (lowercase hex and '-'), of worker or
 * of any worker when NULL: found[0..n), n <= 2. -1 on an error. */
static int versions_by_prefix(struct store *s, const char *worker, const char *prefix,
			      struct version found[2])
{
	char err[256], hi[STORE_ID_LEN + 1];
	size_t n = strlen(prefix);
	memcpy(hi, prefix, n + 1);
	hi[n - 1]++; /* '-' '9' 'f' become '.' ':' 'g': the first string past the prefix */
	sqlite3_stmt *st = query(s, Q_VERSION_BY_PREFIX, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	int rc = bind(st, "ttt", prefix, hi, worker);
	int count = 0;
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (count < 2 && version_from_row(st, &found[count]) == 0)
			count++;
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: finding a version: %s", s->dir, sqlite3_errmsg(s->db));
		done(st);
		for (int i = 0; i < count; i++)
			version_clear(&found[i]);
		return -1;
	}
	done(st);
	return count;
}

int store_version_find(struct store *s, const char *worker, const char *ref, struct version *v)
{
	memset(v, 0, sizeof *v);
	size_t len = ref ? strnlen(ref, STORE_ID_LEN + 1) : 0;
	if (len == 0 || len > STORE_ID_LEN)
		return -1;

	/* "#N" is only a number; "N" may be a number or an id prefix. */
	const char *digits = ref[0] == '#' ? ref + 1 : ref;
	uint64_t number = 0;
	int by_number = worker && parse_u64(digits, INT_MAX, &number) == 0 && number >= 1;
	char prefix[STORE_ID_LEN + 1];
	int by_prefix = ref[0] != '#' && len >= 4;
	for (size_t i = 0; by_prefix && i < len; i++) {
		char c = (char)tolower((unsigned char)ref[i]);
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-'))
			by_prefix = 0;
		prefix[i] = c;
	}
	prefix[len] = 0;

	struct version found[2];
	int n = 0;
	if (by_prefix) {
		n = versions_by_prefix(s, worker, prefix, found);
		if (n < 0)
			return -1;
	}
	if (by_number && n < 2) {
		char err[256];
		sqlite3_stmt *st = query(s, Q_VERSION_BY_NUMBER, err, sizeof err);
		if (!st) {
			log_error("%s", err);
		} else if (version_fetch(s, st, bind(st, "ti", worker, (int64_t)number),
					 &found[n]) == 0) {
			if (n == 1 && !strcmp(found[0].id, found[1].id))
				version_clear(&found[1]);
			else
				n++;
		}
	}
	if (n == 1) {
		*v = found[0];
		return 0;
	}
	for (int i = 0; i < n; i++)
		version_clear(&found[i]);
	return n == 0 ? STORE_FIND_NONE : STORE_FIND_AMBIGUOUS;
}

int store_version_set_state(struct store *s, const char *id, const char *state, const char *error)
{
	char err[256];
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN || !state_valid(state)) {
		log_error("store_version_set_state: invalid id or state '%s'",
			  state ? state : "(null)");
		return -1;
	}
	char *fixed = error && !strcmp(state, "failed") ? error_repair(error) : NULL;
	sqlite3_stmt *st = query(s, Q_VERSION_SET_STATE, err, sizeof err);
	int r = -1;
	if (st) {
		int rc = bind(st, "ttt", id, state, fixed);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			db_fail(s, err, sizeof err, "setting a version's state");
		else if (sqlite3_changes(s->db) == 1)
			r = 0;
		else
			snprintf(err, sizeof err, "no version %s", id);
		done(st);
	}
	if (r < 0)
		log_error("%s", err);
	free(fixed);
	return r;
}

int store_version_set_snapshot(struct store *s, const char *id, const char *hex, uint64_t bytes)
{
	char err[256];
	int clear = !hex || !hex[0];
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN || (!clear && !hex_valid(hex)) ||
	    bytes > INT64_MAX) {
		log_error("store_version_set_snapshot: invalid id, SHA-256 or size");
		return -1;
	}
	sqlite3_stmt *st = query(s, Q_VERSION_SET_SNAPSHOT, err, sizeof err);
	int r = -1;
	if (st) {
		int rc = bind(st, "tti", id, clear ? NULL : hex,
			      clear ? (int64_t)0 : (int64_t)bytes);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			db_fail(s, err, sizeof err, "setting a version's snapshot");
		else if (sqlite3_changes(s->db) == 1)
			r = 0;
		else
			snprintf(err, sizeof err, "no version %s", id);
		done(st);
	}
	if (r < 0)
		log_error("%s", err);
	return r;
}

/* One UPDATE of a version's disk figures (fmt and the values as bind's). */
static int set_figures(struct store *s, enum query q, const char *what, const char *fmt, ...)
{
	char err[256];
	sqlite3_stmt *st = query(s, q, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	va_list ap;
	va_start(ap, fmt);
	int rc = SQLITE_OK;
	for (int i = 0; fmt[i] && rc == SQLITE_OK; i++) {
		int at = i + 1;
		if (fmt[i] == 't') {
			const char *t = va_arg(ap, const char *);
			rc = t ? sqlite3_bind_text(st, at, t, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, at);
		} else {
			int64_t n = va_arg(ap, int64_t);
			rc = n < 0 ? sqlite3_bind_null(st, at) : sqlite3_bind_int64(st, at, n);
		}
	}
	va_end(ap);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = 0;
	if (rc != SQLITE_DONE) {
		db_fail(s, err, sizeof err, what);
		log_error("%s", err);
		r = -1;
	}
	done(st);
	return r;
}

static int id_ok(const char *id)
{
	return id && strnlen(id, STORE_ID_LEN + 1) == STORE_ID_LEN;
}

int store_version_set_files(struct store *s, const char *id, int64_t bundle_bytes,
			    int64_t files_bytes)
{
	if (!id_ok(id))
		return -1;
	return set_figures(s, Q_VERSION_SET_FILES, "setting a version's file sizes", "tnn", id,
			   bundle_bytes, files_bytes);
}

int store_version_set_image_pages(struct store *s, const char *id, const char *snapshot,
				  int64_t own_pages, int64_t base_pages, const char *base_hex)
{
	if (!id_ok(id) || !snapshot || !hex_valid(snapshot) ||
	    (base_hex && base_hex[0] && !hex_valid(base_hex)))
		return -1;
	return set_figures(s, Q_VERSION_SET_IMAGE_PAGES, "setting a version's image pages", "tnntt",
			   id, own_pages, base_pages, base_hex && base_hex[0] ? base_hex : NULL,
			   snapshot);
}

int store_version_set_ws(struct store *s, const char *id, const char *snapshot, int64_t bytes)
{
	if (!id_ok(id) || !snapshot || !hex_valid(snapshot))
		return -1;
	return set_figures(s, Q_VERSION_SET_WS, "setting a version's working set", "tnt", id, bytes,
			   snapshot);
}

int store_base_get(struct store *s, const char *key, char hex[STORE_SHA_HEX + 1])
{
	char err[256];
	hex[0] = 0;
	sqlite3_stmt *st = query(s, Q_BASE_GET, err, sizeof err);
	if (!st)
		return -1;
	int r = 0, rc = bind(st, "t", key);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		if (t && hex_valid(t)) {
			snprintf(hex, STORE_SHA_HEX + 1, "%s", t);
			r = 1;
		}
	} else if (rc != SQLITE_DONE) {
		db_fail(s, err, sizeof err, "reading a base image");
		log_error("%s", err);
		r = -1;
	}
	done(st);
	return r;
}

int store_base_put(struct store *s, const char *key, const char *hex)
{
	char err[256];
	if (!key || !*key || strlen(key) > 256 || !hex_valid(hex)) {
		log_error("store_base_put: invalid key or SHA-256");
		return -1;
	}
	sqlite3_stmt *st = query(s, Q_BASE_PUT, err, sizeof err);
	int r = -1;
	if (st) {
		int rc = bind(st, "tti", key, hex, (int64_t)wall_ms());
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			r = 0;
		else
			db_fail(s, err, sizeof err, "recording a base image");
		done(st);
	}
	if (r < 0)
		log_error("%s", err);
	return r;
}

int store_version_set_project(struct store *s, const char *id, const json_t *project)
{
	char err[256];
	char *text = project ? json_dumps(project, JSON_COMPACT) : NULL;
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN || !text) {
		log_error("store_version_set_project: invalid id or project");
		free(text);
		return -1;
	}
	sqlite3_stmt *st = query(s, Q_VERSION_SET_PROJECT, err, sizeof err);
	int r = -1;
	if (st) {
		int rc = bind(st, "tt", id, text);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			db_fail(s, err, sizeof err, "setting a version's project");
		else if (sqlite3_changes(s->db) == 1)
			r = 0;
		else
			snprintf(err, sizeof err, "no version %s", id);
		done(st);
	}
	free(text);
	if (r < 0)
		log_error("%s", err);
	return r;
}

json_t *store_version_project(struct store *s, const char *id)
{
	char err[256];
	if (!id || strnlen(id, STORE_ID_LEN + 1) != STORE_ID_LEN)
		return NULL;
	sqlite3_stmt *st = query(s, Q_VERSION_GET_PROJECT, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	json_t *j = NULL;
	int rc = bind(st, "t", id);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) == SQLITE_TEXT) {
		json_error_t je;
		j = json_loads((const char *)sqlite3_column_text(st, 0), 0, &je);
	}
	done(st);
	return j;
}

static json_t *figure(int64_t n)
{
	return n < 0 ? json_null() : json_integer((json_int_t)n);
}

void version_disk(const struct version *v, uint64_t *own, uint64_t *shared)
{
	uint64_t o = v->snapshot[0] ? v->snapshot_bytes : 0;
	const int64_t parts[] = {v->ws_bytes, v->bundle_bytes, v->files_bytes};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		if (parts[i] > 0)
			o += (uint64_t)parts[i];
	*own = o;
	*shared = v->snapshot[0] && v->image_base_pages > 0 ? (uint64_t)v->image_base_pages * 4096
							    : 0;
}

json_t *version_disk_json(const struct version *v)
{
	uint64_t own, shared;
	version_disk(v, &own, &shared);
	int imaged = v->snapshot[0] != 0;
	return json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "own", (json_int_t)own,
			 "shared", (json_int_t)shared, "image",
			 (json_int_t)(imaged ? v->snapshot_bytes : 0), "image_own_pages",
			 figure(imaged ? v->image_own_pages : -1), "image_base_pages",
			 figure(imaged ? v->image_base_pages : -1), "base",
			 imaged && v->image_base[0] ? json_string(v->image_base) : json_null(),
			 "working_set", figure(imaged ? v->ws_bytes : -1), "bundle",
			 figure(v->bundle_bytes), "files", figure(v->files_bytes));
}

json_t *version_json(const struct version *v)
{
	return json_pack("{s:s, s:i, s:I, s:o, s:s, s:o, s:I, s:s, s:o, s:o}", "id", v->id,
			 "number", v->number, "created", (json_int_t)v->created_ms, "message",
			 json_text(v->message), "state", v->state, "error", json_text(v->error),
			 "snapshot_bytes", (json_int_t)v->snapshot_bytes, "bundle", v->bundle,
			 "snapshot", v->snapshot[0] ? json_string(v->snapshot) : json_null(),
			 "disk", version_disk_json(v));
}

int store_image_bases_each(struct store *s,
			   void (*fn)(void *arg, const char *hex, uint64_t versions), void *arg)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_IMAGE_BASES, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char hex[STORE_SHA_HEX + 1];
		if (column_copy(st, 0, hex, sizeof hex, 0) < 0 || !hex_valid(hex))
			continue; /* what version_from_row would not take either */
		int64_t n = sqlite3_column_int64(st, 1);
		fn(arg, hex, n > 0 ? (uint64_t)n : 0);
	}
	int r = 0;
	if (rc != SQLITE_DONE) {
		db_fail(s, err, sizeof err, "listing the base images");
		log_error("%s", err);
		r = -1;
	}
	done(st);
	return r;
}

int store_versions_each(struct store *s, void (*fn)(void *arg, const struct version *v), void *arg)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_VERSIONS_ALL, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct version v;
		if (version_from_row(st, &v) < 0)
			continue;
		fn(arg, &v);
		version_clear(&v);
	}
	int r = 0;
	if (rc != SQLITE_DONE) {
		db_fail(s, err, sizeof err, "listing the versions");
		log_error("%s", err);
		r = -1;
	}
	done(st);
	return r;
}

json_t *store_versions_json(struct store *s, const char *worker)
{
	char err[256];
	if (!project_name_valid(worker))
		return json_array();
	sqlite3_stmt *st = query(s, Q_VERSIONS_OF_WORKER, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	json_t *out = json_array();
	int rc = bind(st, "t", worker);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		struct version v;
		if (version_from_row(st, &v) == 0) {
			json_array_append_new(out, version_json(&v));
			version_clear(&v);
		}
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: listing versions: %s", s->dir, sqlite3_errmsg(s->db));
		json_decref(out);
		out = NULL;
	}
	done(st);
	return out;
}

int store_worker_exists(struct store *s, const char *worker)
{
	char err[256];
	if (!project_name_valid(worker))
		return 0;
	sqlite3_stmt *st = query(s, Q_WORKER_EXISTS, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return 0;
	}
	int rc = bind(st, "t", worker);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		log_error("%s/thaw.db: finding a worker: %s", s->dir, sqlite3_errmsg(s->db));
	done(st);
	return rc == SQLITE_ROW;
}

/* Run a prepared query whose answer is "a row or none": 1, 0, or -1 with err. */
static int exists_query(struct store *s, sqlite3_stmt *st, int rc, char *err, size_t errlen,
			const char *what)
{
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_fail(s, err, errlen, what);
	done(st);
	return r;
}

/* Run the statement q, which returns no rows, with its one argument arg.
 * 0, or -1 with err. */
static int drop_query(struct store *s, enum query q, const char *arg, char *err, size_t errlen,
		      const char *what)
{
	sqlite3_stmt *st = query(s, q, err, errlen);
	if (!st)
		return -1;
	int rc = bind(st, "t", arg);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE ? 0 : db_fail(s, err, errlen, what);
}

int store_version_delete(struct store *s, const char *id, int protect, struct version *gone,
			 char *err, size_t errlen)
{
	memset(gone, 0, sizeof *gone);
	if (!id_valid(id)) {
		err_set(err, errlen, "not a version id");
		return STORE_DELETE_NONE;
	}
	if (begin(s, err, errlen) < 0)
		return STORE_DELETE_FAILED;
	/* Checked inside the transaction: no deployment can slip in between. */
	struct version v;
	int r = STORE_DELETE_FAILED;
	if (store_version_get(s, id, &v) < 0) {
		err_set(err, errlen, "no version %s", id);
		r = STORE_DELETE_NONE;
		goto error;
	}
	if (!strcmp(v.state, "building")) {
		err_set(err, errlen, "version %d of %s is being deployed", v.number, v.worker);
		r = STORE_DELETE_BUILDING;
		goto error;
	}
	sqlite3_stmt *st = query(s, Q_VERSION_DEPLOYED, err, errlen);
	if (!st)
		goto error;
	int deployed = exists_query(s, st, bind(st, "tti", id, v.worker, (int64_t)(protect > 1 ? 2 : 1)),
				    err, errlen, "reading the deployments");
	if (deployed < 0)
		goto error;
	if (deployed) {
		err_set(err, errlen, "version %d of %s is in its %s deployment", v.number,
			v.worker, protect > 1 ? "current or previous" : "current");
		r = STORE_DELETE_DEPLOYED;
		goto error;
	}
	if (drop_query(s, Q_VERSION_DEPLOYMENTS_DROP, id, err, errlen,
		       "removing the deployments of the version") < 0 ||
	    drop_query(s, Q_DEPLOYMENTS_EMPTY_DROP, v.worker, err, errlen,
		       "removing the deployments of the version") < 0 ||
	    drop_query(s, Q_VERSION_SECRETS_DROP, id, err, errlen,
		       "removing the version's secrets") < 0 ||
	    drop_query(s, Q_VERSION_DROP, id, err, errlen, "removing the version") < 0)
		goto error;
	if (commit(s, err, errlen) < 0)
		goto error;
	*gone = v;
	return 0;
error:
	version_clear(&v);
	rollback(s);
	return r;
}

int store_blob_referenced(struct store *s, const char *hex)
{
	char err[256];
	if (!hex_valid(hex))
		return 0;
	sqlite3_stmt *st = query(s, Q_BLOB_REFERENCED, err, sizeof err);
	int r = st ? exists_query(s, st, bind(st, "t", hex), err, sizeof err,
				  "counting a blob's versions")
		   : -1;
	if (r < 0)
		log_error("%s", err);
	return r;
}

/* The ids one query answers (its first column), checked. NULL on an error. */
static json_t *ids_of(struct store *s, sqlite3_stmt *st, int rc, const char *what)
{
	json_t *out = json_array();
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (id && id_valid(id))
			json_array_append_new(out, json_string(id));
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: %s: %s", s->dir, what, sqlite3_errmsg(s->db));
		json_decref(out);
		out = NULL;
	}
	done(st);
	return out;
}

json_t *store_versions_beyond(struct store *s, const char *worker, int keep, int limit)
{
	char err[256];
	if (!project_name_valid(worker) || keep < 0 || limit < 1)
		return json_array();
	sqlite3_stmt *st = query(s, Q_VERSIONS_BEYOND, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	return ids_of(s, st, bind(st, "tii", worker, (int64_t)keep, (int64_t)limit),
		      "listing old versions");
}

int store_version_exists(struct store *s, const char *id)
{
	char err[256];
	if (!id_valid(id))
		return 0;
	sqlite3_stmt *st = query(s, Q_VERSION_EXISTS, err, sizeof err);
	int r = st ? exists_query(s, st, bind(st, "t", id), err, sizeof err, "finding a version")
		   : -1;
	if (r < 0)
		log_error("%s", err);
	return r;
}

/* --- deployments --- */

void deployment_clear(struct deployment *d)
{
	if (!d)
		return;
	free(d->message);
	d->message = NULL;
}

/* Check d's shape: counts, ids, percentages. 0 or -1 with err. */
static int deployment_check(const struct deployment *d, char *err, size_t errlen)
{
	if (d->n < 1 || d->n > DEPLOY_MAX_VERSIONS)
		return err_set(err, errlen, "a deployment has 1 or %d versions, not %d",
			    DEPLOY_MAX_VERSIONS, d->n);
	double sum = 0;
	for (int i = 0; i < d->n; i++) {
		if (!id_valid(d->version[i]))
			return err_set(err, errlen, "version %d of the deployment: not a version id",
				    i + 1);
		double p = d->percentage[i];
		if (!isfinite(p) || p <= 0 || p > 100)
			return err_set(err, errlen,
				    "version %.36s: percentage %g is not in (0, 100]",
				    d->version[i], p);
		sum += p;
		for (int j = 0; j < i; j++)
			if (!strncmp(d->version[i], d->version[j], sizeof d->version[i]))
				return err_set(err, errlen, "version %.36s is listed twice",
					    d->version[i]);
	}
	if (fabs(sum - 100) > 1e-9)
		return err_set(err, errlen, "the percentages add up to %g, not 100", sum);
	return message_check(d->message, err, errlen);
}

int store_deploy(struct store *s, const char *worker, struct deployment *d, char *err,
		 size_t errlen)
{
	if (!project_name_valid(worker))
		return err_set(err, errlen, "the worker name is not valid");
	if (deployment_check(d, err, errlen) < 0)
		return -1;
	int64_t created = wall_ms();
	if (begin(s, err, errlen) < 0)
		return -1;
	/* Checked inside the transaction: no state change can slip in between. */
	for (int i = 0; i < d->n; i++) {
		const char *id = d->version[i];
		struct version v;
		if (store_version_get(s, id, &v) < 0) {
			err_set(err, errlen, "no version %.36s", id);
			goto error;
		}
		int bad = 0;
		if (strcmp(v.worker, worker) != 0)
			bad = err_set(err, errlen, "version %s belongs to worker %s, not %s", id,
				   v.worker, worker);
		else if (strcmp(v.state, "ready") != 0)
			bad = err_set(err, errlen, "version #%d (%s) of %s is %s, not ready%s%s",
				   v.number, id, worker, v.state, v.error ? ": " : "",
				   v.error ? v.error : "");
		version_clear(&v);
		if (bad)
			goto error;
	}

	sqlite3_stmt *st = query(s, Q_DEPLOYMENT_ADD, err, errlen);
	if (!st)
		goto error;
	int rc = bind(st, "tit", worker, created, d->message);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "adding the deployment");
		goto error;
	}
	int64_t id = sqlite3_last_insert_rowid(s->db);
	for (int i = 0; i < d->n; i++) {
		if (!(st = query(s, Q_DEPLOYMENT_VERSION_ADD, err, errlen)))
			goto error;
		char vid[STORE_ID_LEN + 1];
		snprintf(vid, sizeof vid, "%.36s", d->version[i]);
		rc = bind(st, "iitd", id, (int64_t)i, vid, d->percentage[i]);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		done(st);
		if (rc != SQLITE_DONE) {
			db_fail(s, err, errlen, "adding the deployment's versions");
			goto error;
		}
	}
	if (commit(s, err, errlen) < 0)
		goto error;
	d->id = id;
	d->created_ms = created;
	return 0;
error:
	rollback(s);
	return -1;
}

/* The worker's nth newest deployment (0: current). 0, or -1 none/error. */
static int deployment_nth(struct store *s, const char *worker, int nth, struct deployment *d)
{
	memset(d, 0, sizeof *d);
	char err[256];
	if (!project_name_valid(worker))
		return -1;
	sqlite3_stmt *st = query(s, Q_DEPLOYMENT_NTH, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return -1;
	}
	int rc = bind(st, "ti", worker, (int64_t)nth);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		d->id = sqlite3_column_int64(st, 0);
		d->created_ms = sqlite3_column_int64(st, 1);
		d->message = column_dup(st, 2);
	} else if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: reading deployments: %s", s->dir, sqlite3_errmsg(s->db));
	}
	done(st);
	if (rc != SQLITE_ROW)
		return -1;

	if (!(st = query(s, Q_DEPLOYMENT_VERSIONS, err, sizeof err))) {
		log_error("%s", err);
		goto error;
	}
	rc = bind(st, "i", d->id);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (d->n == DEPLOY_MAX_VERSIONS ||
		    column_copy(st, 0, d->version[d->n], sizeof d->version[d->n], 0) < 0 ||
		    strlen(d->version[d->n]) != STORE_ID_LEN) {
			log_error("%s/thaw.db: deployment %lld is corrupt", s->dir,
				  (long long)d->id);
			done(st);
			goto error;
		}
		d->percentage[d->n++] = sqlite3_column_double(st, 1);
	}
	done(st);
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: reading a deployment: %s", s->dir, sqlite3_errmsg(s->db));
		goto error;
	}
	if (d->n == 0) {
		log_error("%s/thaw.db: deployment %lld has no versions", s->dir, (long long)d->id);
		goto error;
	}
	return 0;
error:
	deployment_clear(d);
	memset(d, 0, sizeof *d);
	return -1;
}

int store_deployment_current(struct store *s, const char *worker, struct deployment *d)
{
	return deployment_nth(s, worker, 0, d);
}

int store_deployment_previous(struct store *s, const char *worker, struct deployment *d)
{
	return deployment_nth(s, worker, 1, d);
}

json_t *deployment_json(const struct deployment *d)
{
	json_t *versions = json_array();
	for (int i = 0; i < d->n && i < DEPLOY_MAX_VERSIONS; i++)
		json_array_append_new(versions, json_pack("{s:s%, s:f}", "id", d->version[i],
							  strnlen(d->version[i], STORE_ID_LEN),
							  "percentage", d->percentage[i]));
	return json_pack("{s:I, s:I, s:o, s:o}", "id", (json_int_t)d->id, "created",
			 (json_int_t)d->created_ms, "message", json_text(d->message), "versions",
			 versions);
}

json_t *store_workers_json(struct store *s)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_WORKERS_DEPLOYED, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	json_t *out = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 0);
		if (name && project_name_valid((const char *)name))
			json_array_append_new(out, json_string((const char *)name));
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: listing workers: %s", s->dir, sqlite3_errmsg(s->db));
		json_decref(out);
		out = NULL;
	}
	done(st);
	return out;
}

json_t *store_versions_without_project(struct store *s)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_VERSIONS_WITHOUT_PROJECT, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	json_t *out = json_array();
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		if (id && id_valid(id))
			json_array_append_new(out, json_string(id));
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: listing versions: %s", s->dir, sqlite3_errmsg(s->db));
		json_decref(out);
		out = NULL;
	}
	done(st);
	return out;
}

/* --- cron runs --- */

#define CRON_RUNS_KEPT 1000

static const char *const cron_outcomes[] = {"ok", "exception", "timeout", "error", "missed",
					    "skipped"};

int store_cron_run_add(struct store *s, const struct cron_run *run, char *err, size_t errlen)
{
	int known = 0;
	for (size_t i = 0; i < ARRAY_SIZE(cron_outcomes); i++)
		known |= !strcmp(run->outcome, cron_outcomes[i]);
	if (!known || !project_name_valid(run->worker) || !run->cron[0])
		return err_set(err, errlen, "a malformed cron run record");
	char *error = run->error && run->error[0] ? error_repair(run->error) : NULL;
	sqlite3_stmt *st;
	int rc;
	if (begin(s, err, errlen) < 0) {
		free(error);
		return -1;
	}
	if (!(st = query(s, Q_CRON_RUN_ADD, err, errlen)))
		goto error;
	rc = bind(st, "tttidtti", run->worker, run->version, run->cron, run->scheduled_ms,
		  run->duration_ms, run->outcome, error, (int64_t)run->no_retry);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "recording a cron run");
		goto error;
	}
	if (!(st = query(s, Q_CRON_RUNS_TRIM, err, errlen)))
		goto error;
	rc = bind(st, "ti", run->worker, (int64_t)CRON_RUNS_KEPT);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "trimming cron runs");
		goto error;
	}
	free(error);
	return commit(s, err, errlen) < 0 ? (rollback(s), -1) : 0;
error:
	free(error);
	rollback(s);
	return -1;
}

int64_t store_cron_last(struct store *s, const char *worker, const char *cron)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_CRON_LAST, err, sizeof err);
	if (!st)
		return -1;
	int64_t last = -1;
	int rc = bind(st, "tt", worker, cron);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		last = sqlite3_column_int64(st, 0);
	done(st);
	return last;
}

json_t *store_cron_runs_json(struct store *s, const char *worker, int limit)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_CRON_RUNS, err, sizeof err);
	if (!st) {
		log_error("%s", err);
		return NULL;
	}
	json_t *out = json_array();
	int rc = bind(st, "ti", worker, (int64_t)limit);
	if (rc == SQLITE_OK)
		rc = SQLITE_ROW;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *run = json_pack(
			"{s:o, s:o, s:I, s:f, s:o, s:o, s:b}", "version", json_text((const char *)sqlite3_column_text(st, 0)),
			"cron", json_text((const char *)sqlite3_column_text(st, 1)), "scheduled",
			(json_int_t)sqlite3_column_int64(st, 2), "duration_ms",
			sqlite3_column_double(st, 3), "outcome",
			json_text((const char *)sqlite3_column_text(st, 4)), "error",
			json_text((const char *)sqlite3_column_text(st, 5)), "no_retry",
			sqlite3_column_int(st, 6) != 0);
		if (run)
			json_array_append_new(out, run);
	}
	if (rc != SQLITE_DONE) {
		log_error("%s/thaw.db: listing cron runs: %s", s->dir, sqlite3_errmsg(s->db));
		json_decref(out);
		out = NULL;
	}
	done(st);
	return out;
}

/* --- secrets --- */

#define SEAL_PREFIX "aes256gcm:"

/* value sealed with the store's key, name as associated data: "aes256gcm:" + hex
 * of nonce (12) | ciphertext | tag (16). Returns new, or NULL. */
static char *secret_seal(struct store *s, const char *name, const char *value)
{
	size_t n = strlen(value);
	unsigned char *raw = xmalloc(12 + n + 16);
	char *out = NULL;
	int len = 0, fin = 0;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (getrandom(raw, 12, 0) != 12 || !c ||
	    !EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, s->secret_key, raw) ||
	    !EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)name, (int)strlen(name)) ||
	    !EVP_EncryptUpdate(c, raw + 12, &len, (const unsigned char *)value, (int)n) ||
	    !EVP_EncryptFinal_ex(c, raw + 12 + len, &fin) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, raw + 12 + n))
		goto out;
	size_t total = 12 + n + 16;
	out = xmalloc(sizeof SEAL_PREFIX + 2 * total);
	memcpy(out, SEAL_PREFIX, sizeof SEAL_PREFIX - 1);
	for (size_t i = 0; i < total; i++)
		sprintf(out + sizeof SEAL_PREFIX - 1 + 2 * i, "%02x", raw[i]);
out:
	EVP_CIPHER_CTX_free(c);
	free(raw);
	return out;
}

/* The value of a sealed secret (returns new), or NULL when it does not open
 * (another key, a damaged row). */
static char *secret_open(struct store *s, const char *name, const char *sealed)
{
	size_t pl = sizeof SEAL_PREFIX - 1, hl = sealed ? strlen(sealed) : 0;
	if (hl < pl + 2 * 28 || strncmp(sealed, SEAL_PREFIX, pl) != 0 || (hl - pl) % 2)
		return NULL;
	size_t total = (hl - pl) / 2, n = total - 28;
	unsigned char *raw = xmalloc(total);
	char *value = xmalloc(n + 1), *ok = NULL;
	for (size_t i = 0; i < total; i++) {
		unsigned x;
		if (sscanf(sealed + pl + 2 * i, "%2x", &x) != 1) {
			free(raw);
			free(value);
			return NULL;
		}
		raw[i] = (unsigned char)x;
	}
	int len = 0, fin = 0;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	if (c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, s->secret_key, raw) &&
	    EVP_DecryptUpdate(c, NULL, &len, (const unsigned char *)name, (int)strlen(name)) &&
	    EVP_DecryptUpdate(c, (unsigned char *)value, &len, raw + 12, (int)n) &&
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, raw + 12 + n) &&
	    EVP_DecryptFinal_ex(c, (unsigned char *)value + len, &fin) > 0) {
		value[n] = 0;
		ok = value;
	}
	EVP_CIPHER_CTX_free(c);
	free(raw);
	if (!ok) {
		OPENSSL_cleanse(value, n + 1);
		free(value);
	}
	return ok;
}

int store_secret_name_valid(const char *name)
{
	size_t n = name ? strnlen(name, 256) : 0;
	if (n == 0 || n > 255 || !(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(isalnum((unsigned char)name[i]) || name[i] == '_'))
			return 0;
	return 1;
}

int store_secret_put(struct store *s, const char *worker, const char *name, const char *value,
		     char *err, size_t errlen)
{
	if (!project_name_valid(worker) || !store_secret_name_valid(name))
		return err_set(err, errlen,
			       "a secret's name is 1-255 letters, digits and '_', not starting "
			       "with a digit");
	if (strlen(value) > STORE_SECRET_MAX)
		return err_set(err, errlen, "a secret's value is at most %d bytes",
			       STORE_SECRET_MAX);
	sqlite3_stmt *st;
	int rc;
	if (begin(s, err, errlen) < 0)
		return -1;
	if (!(st = query(s, Q_WORKER_ADD, err, errlen)))
		goto error;
	rc = bind(st, "ti", worker, wall_ms());
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "adding the worker");
		goto error;
	}
	char *sealed = secret_seal(s, name, value);
	if (!sealed) {
		err_set(err, errlen, "cannot seal the secret (libcrypto failed)");
		goto error;
	}
	if (!(st = query(s, Q_SECRET_PUT, err, errlen))) {
		free(sealed);
		goto error;
	}
	rc = bind(st, "ttt", worker, name, sealed);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	done(st);
	free(sealed);
	if (rc != SQLITE_DONE) {
		db_fail(s, err, errlen, "storing the secret");
		goto error;
	}
	return commit(s, err, errlen) < 0 ? (rollback(s), -1) : 0;
error:
	rollback(s);
	return -1;
}

int store_secret_delete(struct store *s, const char *worker, const char *name, char *err,
			size_t errlen)
{
	sqlite3_stmt *st = query(s, Q_SECRET_DELETE, err, errlen);
	if (!st)
		return -1;
	int rc = bind(st, "tt", worker, name);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	int changed = sqlite3_changes(s->db);
	done(st);
	if (rc != SQLITE_DONE)
		return db_fail(s, err, errlen, "deleting the secret");
	return changed > 0 ? 0 : 1;
}

json_t *store_secret_names(struct store *s, const char *worker)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_SECRET_NAMES, err, sizeof err);
	if (!st)
		return NULL;
	json_t *out = json_array();
	int rc = bind(st, "t", worker);
	if (rc == SQLITE_OK)
		rc = SQLITE_ROW;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		if (n)
			json_array_append_new(out, json_string(n));
	}
	done(st);
	if (rc != SQLITE_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}

json_t *store_version_secrets(struct store *s, const char *id)
{
	char err[256];
	sqlite3_stmt *st = query(s, Q_VERSION_SECRETS, err, sizeof err);
	if (!st)
		return NULL;
	json_t *out = json_object();
	int rc = bind(st, "t", id);
	if (rc == SQLITE_OK)
		rc = SQLITE_ROW;
	while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *n = (const char *)sqlite3_column_text(st, 0);
		char *v = n ? secret_open(s, n, (const char *)sqlite3_column_text(st, 1)) : NULL;
		json_t *jv = v ? json_string(v) : NULL;
		if (v) {
			OPENSSL_cleanse(v, strlen(v));
			free(v);
		}
		if (jv) {
			json_object_set_new(out, n, jv);
		} else if (n) {
			log_error("%s: secret %s of version %s cannot be opened (secrets.key changed?): "
				  "left out", s->dir, n, id);
		}
	}
	done(st);
	if (rc != SQLITE_DONE) {
		json_decref(out);
		return NULL;
	}
	return out;
}
