/*
 * The host's state: DIR/thaw.db (SQLite, WAL, numbered schema migrations) for
 * workers, versions and deployments, and DIR/blobs/ for content-addressed
 * files (bundles and snapshots) named by their SHA-256.
 *
 * Crash safety: every change is one short transaction; a blob is written to
 * DIR/tmp/, fsynced, renamed into blobs/, and the directory fsynced before
 * any row names it. DIR/tmp/ is emptied at open. A version is recorded when
 * its bundle is stored; it becomes part of a deployment only once validated,
 * so a host killed at any moment never serves half of one.
 *
 * Version states: "building" (stored, snapshot being built and validated),
 * "ready" (validated, may take traffic), "failed" (error says why). At open,
 * versions left "building" by a previous run become "failed" with
 * "interrupted: the host stopped while it was being deployed".
 *
 * Ownership: the caller owns the struct store (store_close). struct version
 * and struct deployment are filled in by the store and embedded in the
 * caller's memory; what they point to (message, error) is theirs, released
 * by version_clear / deployment_clear. Every json_t * returned is new (the
 * caller decrefs it); every string parameter is borrowed for the call. A
 * blob_writer belongs to the caller until blob_commit or blob_abort, which
 * free it. Nothing here keeps a pointer the caller passed.
 *
 * Blocking: every call is a short transaction or a small file operation,
 * except blob_adopt / blob_hash_file (hash and fsync a whole file: helper
 * children and tests only) and blob_commit (fsyncs the blob written so far;
 * the host's loop uses blob_finish instead).
 */
#ifndef THAW_EXT_STORE_H
#define THAW_EXT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct loop;
struct store;

#define STORE_ID_LEN 36 /* a version id is a UUID v4 in text */
#define STORE_SHA_HEX 64

/* Open (creating) the store in dir: makes dir, blobs/, tmp/, versions/;
 * migrates the schema; fails versions left building. NULL with err. Holds
 * an flock on DIR/lock until store_close: a second open of the same DIR
 * (from any process) fails with "in use". A thaw.db newer than this binary's
 * schema is refused. */
struct store *store_open(const char *dir, char *err, size_t errlen);
void store_close(struct store *s);
const char *store_dir(const struct store *s);

/* Durability off the host's loop (thaw serve). From store_sync_start on, a
 * commit and a blob's move into blobs/ return before they reach the disk
 * (SQLite synchronous=NORMAL in WAL mode: atomic, and safe if thaw itself
 * dies, since the WAL is in the page cache); the store's own thread then
 * makes them durable in order, each round the directories it was told of
 * first, then the WAL (fdatasync), checkpoints the WAL itself when it
 * grows, and calls synced(arg) on l after each round. The loop never waits
 * for the disk, however slow an fsync is under other writers (ext4 makes
 * one wait for a journal commit holding another file's data), and a caller
 * that must not say "done" before the disk has it waits for its ticket:
 *   t = store_ticket(s) after the change; store_durable(s, t) is 1 once it
 *   is on disk, 0 before, -1 when an fsync failed (the store says so in
 *   the log and every later ticket fails too).
 * Without store_sync_start every change is durable when it returns
 * (synchronous=FULL) and every ticket is 1. store_sync_stop makes what is
 * left durable and stops the thread (store_close does it too). */
int store_sync_start(struct store *s, struct loop *l, void (*synced)(void *arg), void *arg,
		     char *err, size_t errlen);
void store_sync_stop(struct store *s);
uint64_t store_ticket(const struct store *s);
int store_durable(const struct store *s, uint64_t ticket);
/* DATA/versions gained or lost an entry: fsync it (now, or in the next
 * round with store_sync_start). */
void store_versions_dir_sync(struct store *s);

/* --- blobs --- */

/* A blob being written: a temporary file in DIR/tmp with a running SHA-256. */
struct blob_writer;
struct blob_writer *blob_begin(struct store *s, char *err, size_t errlen);
/* 0, or -1 with err; after a failure every later write fails too. */
int blob_write(struct blob_writer *w, const void *p, size_t n, char *err, size_t errlen);
uint64_t blob_size(const struct blob_writer *w);
/* fsync, rename to blobs/HEX (keeping an existing identical one), fsync the
 * directory. hex receives the SHA-256. 0, or -1 with err. Frees w. */
int blob_commit(struct blob_writer *w, char hex[STORE_SHA_HEX + 1], char *err, size_t errlen);
void blob_abort(struct blob_writer *w); /* unlink the temporary file, free w */
/* blob_commit without its work proportional to the blob, for the host's
 * loop: the hash is finished (hex) and the file closed but neither fsynced
 * nor moved. *tmp_path (returns new) and *bytes say where it is; a helper
 * child fsyncs it (blob_hash_file) and the host then moves it in
 * (blob_install_file). 0, or -1 with err (the file removed). Frees w. */
int blob_finish(struct blob_writer *w, char hex[STORE_SHA_HEX + 1], char **tmp_path,
		uint64_t *bytes, char *err, size_t errlen);
/* Store an existing file (e.g. a snapshot written in DIR/tmp): hash it,
 * fsync it, rename it to blobs/HEX. 0, or -1 with err. */
int blob_adopt(struct store *s, const char *tmp_path, char hex[STORE_SHA_HEX + 1], char *err,
	       size_t errlen);
/* blob_adopt in two steps, for a file too big to hash on the host's loop:
 * blob_hash_file (a helper child: SHA-256 and fsync of the file, left where
 * it is; hex and *bytes filled) and blob_install_file (the host: rename to
 * blobs/HEX, fsync blobs/). 0, or -1 with err. */
int blob_hash_file(const char *tmp_path, char hex[STORE_SHA_HEX + 1], uint64_t *bytes, char *err,
		   size_t errlen);
int blob_install_file(struct store *s, const char *tmp_path, const char *hex, uint64_t bytes,
		      char *err, size_t errlen);
/* DIR/blobs/HEX (malloc'ed), or NULL when hex is not 64 lowercase hex digits. */
char *blob_path(const struct store *s, const char *hex);

/* --- workers, versions, deployments --- */

struct version {
	char id[STORE_ID_LEN + 1];
	char worker[64];
	int number;            /* 1, 2, ... per worker */
	int64_t created_ms;    /* unix time */
	char *message;         /* may be NULL */
	char bundle[STORE_SHA_HEX + 1];
	char state[16];        /* building | ready | failed */
	char *error;           /* failed: why; else NULL */
	char snapshot[STORE_SHA_HEX + 1]; /* "" when none */
	uint64_t snapshot_bytes;
	/* On disk (docs/snapshots.md "Density"); -1 while not known. */
	int64_t bundle_bytes;               /* its bundle blob */
	int64_t files_bytes;                /* its unpacked files, DATA/versions/ID */
	int64_t image_own_pages;            /* pages its image holds itself */
	int64_t image_base_pages;           /* pages its image maps from the base */
	char image_base[STORE_SHA_HEX + 1]; /* the base's blob, "" when none or not known */
	int64_t ws_bytes;                   /* IMAGE.ws, its working set */
};
/* The most pages (and, times 4096, bytes) a figure read back from the
 * store may be: larger is a corrupt row, taken as not known. */
#define STORE_MAX_PAGES ((int64_t)1 << 40)
void version_clear(struct version *v); /* frees message/error */

/* Record a new version of worker (creating the worker) in state building.
 * Fills v (id, number, created). 0 or -1 with err. */
int store_version_add(struct store *s, const char *worker, const char *bundle_hex,
		      const char *message, struct version *v, char *err, size_t errlen);
int store_version_get(struct store *s, const char *id, struct version *v);      /* 0 / -1 */
/* store_version_find's answers besides 0. */
enum { STORE_FIND_NONE = -1, STORE_FIND_AMBIGUOUS = -2 };
/* Resolve a unique id prefix (>= 4 chars) or "#N"/"N" version number of worker. 0,
 * STORE_FIND_NONE, or STORE_FIND_AMBIGUOUS. "N" of 4+ digits may be either; both are tried, two different matches are
 * ambiguous. worker NULL: ids of any worker (no numbers). */
int store_version_find(struct store *s, const char *worker, const char *ref, struct version *v);
int store_version_set_state(struct store *s, const char *id, const char *state, const char *error);
/* hex "" or NULL clears the snapshot. */
int store_version_set_snapshot(struct store *s, const char *id, const char *hex, uint64_t bytes);
/* The host's base image for key (the kind of instance it serves): 1 with
 * its blob's HEX, 0 when none is recorded, -1 on a database error. */
int store_base_get(struct store *s, const char *key, char hex[STORE_SHA_HEX + 1]);
/* Record hex as key's base image (replacing the previous one, which the
 * caller releases: gc_release_blob). 0, or -1. */
int store_base_put(struct store *s, const char *key, const char *hex);
/* The version's project (project_to_json's object), recorded once its
 * bundle is unpacked. 0 / -1 (logged). Borrows project. */
int store_version_set_project(struct store *s, const char *id, const json_t *project);
/* It back (returns new), or NULL when none is recorded (versions stored
 * before migration 2) or on an error. */
json_t *store_version_project(struct store *s, const char *id);
/* Ids of the versions (not failed) stored before migration 2, which have no
 * project recorded: a JSON array (NULL on a database error, logged). */
json_t *store_versions_without_project(struct store *s);
/* JSON array of the worker's versions, newest first (NULL on a database error, logged). */
json_t *store_versions_json(struct store *s, const char *worker);
/* version_json has "disk": version_disk_json (docs/control-api.md). */
json_t *version_json(const struct version *v);
/* What a version holds on disk, in bytes: own (its image file, working set,
 * bundle and unpacked files, those known) and shared (the pages its image
 * maps from the base, which the base's file holds once for every version). */
void version_disk(const struct version *v, uint64_t *own, uint64_t *shared);
json_t *version_disk_json(const struct version *v);
/* Call fn for every stored version, by worker then number (v borrowed for
 * the call). 0, or -1 on a database error (logged). One read of the table. */
int store_versions_each(struct store *s, void (*fn)(void *arg, const struct version *v), void *arg);
/* Call fn for each base image that stored versions' images are built on
 * (image_base HEX), with how many versions' are, by HEX. 0, or -1 on a
 * database error (logged). One grouped query. */
int store_image_bases_each(struct store *s,
			   void (*fn)(void *arg, const char *hex, uint64_t versions), void *arg);
/* A version's disk figures (negative: not known, stored NULL). 0 / -1
 * (logged). The image's figures are taken only while snapshot (HEX) is
 * still the version's image (an answer about an older image changes
 * nothing); store_version_set_snapshot clears them. */
int store_version_set_files(struct store *s, const char *id, int64_t bundle_bytes,
			    int64_t files_bytes);
int store_version_set_image_pages(struct store *s, const char *id, const char *snapshot,
				  int64_t own_pages, int64_t base_pages, const char *base_hex);
int store_version_set_ws(struct store *s, const char *id, const char *snapshot, int64_t bytes);

/* 1 when worker has a row (a version was ever stored for it), else 0 (an
 * error is logged and answers 0). */
int store_worker_exists(struct store *s, const char *worker);

/* --- deleting versions; which blobs are still named --- */

/* store_version_delete's answers besides 0. */
enum {
	STORE_DELETE_NONE = -1,     /* no such version */
	STORE_DELETE_DEPLOYED = -2, /* in a deployment it protects */
	STORE_DELETE_BUILDING = -3, /* being deployed */
	STORE_DELETE_FAILED = -4,   /* a database error */
};
/* Delete the version id with its secrets, unless it is building or in the
 * worker's current deployment (protect 1) or in the current or the previous
 * one, which `thaw rollback` returns to (protect 2). Older deployments that
 * name it go with it (a deployment is never left half). One transaction;
 * the version's files (its blobs, DATA/versions/ID) are the caller's to
 * remove afterwards, once nothing names them: *gone receives the row
 * (version_clear it). 0, or one of the answers above with err. */
int store_version_delete(struct store *s, const char *id, int protect, struct version *gone,
			 char *err, size_t errlen);
/* 1 when a version names hex as its bundle or its snapshot, 0 when none
 * does; -1 on an error (logged), which a caller takes as "named". */
int store_blob_referenced(struct store *s, const char *hex);
/* The ids of worker's versions beyond its newest keep (by number), oldest
 * first and at most limit, except those building and those in its current
 * or previous deployment: what a policy keeping keep versions deletes. A
 * JSON array (NULL on an error, logged). */
json_t *store_versions_beyond(struct store *s, const char *worker, int keep, int limit);
/* 1 when a version id is stored, 0 when not (or id is not one); -1 on an
 * error (logged), which a caller takes as "stored". */
int store_version_exists(struct store *s, const char *id);

/* A deployment: 1 or 2 versions whose percentages sum to 100. */
#define DEPLOY_MAX_VERSIONS 2
struct deployment {
	int64_t id;
	int64_t created_ms;
	int n;
	char version[DEPLOY_MAX_VERSIONS][STORE_ID_LEN + 1];
	double percentage[DEPLOY_MAX_VERSIONS];
	char *message;
};
void deployment_clear(struct deployment *d);
/* Make d the worker's current deployment (every version must be ready;
 * percentages in (0,100] summing to 100). Fills d->id/created. 0, -1 with err. */
int store_deploy(struct store *s, const char *worker, struct deployment *d, char *err, size_t errlen);
/* The current deployment (0), or -1 when the worker has none. */
int store_deployment_current(struct store *s, const char *worker, struct deployment *d);
/* The deployment before the current one (0), or -1. */
int store_deployment_previous(struct store *s, const char *worker, struct deployment *d);
json_t *deployment_json(const struct deployment *d);
/* --- cron runs --- */
struct cron_run {
	const char *worker, *version, *cron;
	int64_t scheduled_ms; /* the minute it was due (ms since the epoch) */
	double duration_ms;
	const char *outcome; /* ok | exception | timeout | error | missed | skipped */
	const char *error;   /* NULL, or its last line */
	int no_retry;
};
/* Record a run (the worker's newest 1000 are kept). 0, -1 with err. */
int store_cron_run_add(struct store *s, const struct cron_run *run, char *err, size_t errlen);
/* The latest scheduled_ms recorded for the worker's trigger cron, or -1. */
int64_t store_cron_last(struct store *s, const char *worker, const char *cron);
/* The worker's newest runs, newest first, at most limit (NULL on an error, logged). */
json_t *store_cron_runs_json(struct store *s, const char *worker, int limit);

/* --- secrets: a worker's current ones; a version copies them when made --- */
#define STORE_SECRET_MAX 5120 /* bytes of a value, as Cloudflare */
int store_secret_name_valid(const char *name);
/* Set (or replace) one. 0, -1 with err. */
int store_secret_put(struct store *s, const char *worker, const char *name, const char *value,
		     char *err, size_t errlen);
/* 0 deleted, 1 there was none, -1 with err. */
int store_secret_delete(struct store *s, const char *worker, const char *name, char *err,
			size_t errlen);
/* The worker's secret names, sorted (NULL on an error). */
json_t *store_secret_names(struct store *s, const char *worker);
/* A version's secrets, name -> value (NULL on an error). Never log it. */
json_t *store_version_secrets(struct store *s, const char *id);

/* Names of workers with a current deployment (JSON array of strings; NULL on a database
 * error, logged). */
json_t *store_workers_json(struct store *s);

#endif
