/*
 * `thaw serve`: a host for many deployed workers. Internal to the files that
 * implement it (serve.c: the command, workers and versions in memory, routing
 * glue, logs; deploy.c: the deploy pipeline and new images; api.c: the
 * worker API); control.c, the control API's HTTP side, reaches them only
 * through its sink (control.h).
 *
 * A deploy, from the upload to live:
 *   upload    control.c streams the body into a blob writer (size-limited);
 *   stored    a child `thaw unpack-bundle --read-project` checks and unpacks
 *             it into DIR/tmp and reads its configuration (the host parses
 *             nothing of it but that JSON); renamed to DIR/versions/ID, the
 *             version is recorded "building" with its project;
 *   building  the version's pool builds its snapshot;
 *   built     a child `thaw adopt-snapshot` checks every page, hashes and
 *             stores the image as a blob; the host records it;
 *   validated a request through the data plane (override header plus a
 *             secret probe header) is answered by an instance restored from
 *             the image with a status below 500;
 *   live      the version becomes "ready" and enters the deployment.
 * Any failure marks the version "failed" with the reason; it never serves.
 *
 * In memory: a list of workers, each with the versions this run has loaded
 * (a version is loaded, i.e. has a pool, once it is deployed, overridden to,
 * or being deployed) and its current deployment, mirrored from the store.
 * The store is the truth: every change is written there first.
 *
 * Ownership: struct serve lives as long as the process and owns the workers;
 * a worker owns its versions and tail subscriptions; a version owns its pool
 * (struct app) and its adopt child; a deploy job is owned by s->jobs and
 * points at the version it made (the version's job points back).
 */
#ifndef THAW_EXT_SERVE_H
#define THAW_EXT_SERVE_H

#include <stdint.h>
#include <jansson.h>

#include "ext/bundle.h"
#include "ext/control.h"
#include "ext/router.h"
#include "ext/store.h"
#include "host/child.h"
#include "host/host.h"

struct sworker;
struct gc_file;

/* --keep-versions by default: versions of a worker kept (besides those of its
 * current and previous deployments). */
#define SERVE_KEEP_VERSIONS 10
/* --memory-sample-seconds by default: how often instances' PSS is read. */
#define SERVE_MEMORY_SAMPLE_S 10

struct sversion {
	struct serve *s;
	struct sworker *w;
	struct version v;
	struct app app;
	char label[80];
	struct deploy_job *job; /* being deployed */
	struct child *adopter;  /* `thaw adopt-snapshot` of a new image, while it runs */
	char *adopt_tmp;        /* the image it adopts */
	int deleted;            /* its row is gone (gc.c): its files go once it is unloaded */
	struct sversion *next;
};

struct tail_sub {
	struct ctl_stream *cs;
	struct tail_sub *next;
};

struct sworker {
	char name[64];
	int has_dep;
	struct deployment dep;
	struct sversion *versions;
	struct tail_sub *tails;
	struct sworker *next;
};

enum job_stage { JOB_UNPACK, JOB_BUILD, JOB_PROBE, JOB_DONE };

struct deploy_job {
	struct serve *s;
	char worker[64];
	char hex[STORE_SHA_HEX + 1];
	char *message;
	double percentage;
	struct ctl_stream *cs; /* NULL once the client went away */
	enum job_stage stage;
	struct child *unpacker; /* `thaw unpack-bundle`, while it runs */
	char *upload;           /* the bundle's temporary file, until it is a blob (NULL:
				 * a stored bundle deployed again, deploy_start_stored) */
	char env[64];           /* the configuration's environment ("" none) */
	uint64_t upload_bytes;
	char unpack_dir[4096];
	struct sversion *sv;
	int restored; /* an instance restored from the new image */
	double restore_ms;
	/* the health probe */
	struct loop_watch probe;
	struct buf probe_in;
	struct buf probe_out;
	struct loop_timer timer;
	uint64_t t_build;
	struct deploy_job *next;
};

struct serve {
	struct host h;
	struct store *st;
	struct ctl *ctl;
	struct bundle_limits bl;
	unsigned char token_hash[32];
	char probe_secret[33];
	struct sworker *workers;
	struct deploy_job *jobs;
	struct ctl_sink sink; /* what the control API calls */
	struct loop_timer sweep; /* frees versions nothing uses (serve_sweep_soon) */
	int keep_versions;         /* --keep-versions: versions kept per worker (-1: all) */
	struct gc_file *gc_files;  /* files to remove once their change is durable (gc.c) */
	char data_ip[64];
	unsigned data_port;
	struct router router;
	uint64_t rng;
	/* cron triggers (crons.c) */
	struct loop_timer cron_timer;
	int64_t cron_minute;  /* the last minute whose triggers were looked at */
	struct scron *crons;  /* runs in progress */
	/* the base image (serve_base.c) */
	struct app *base;            /* NULL: builds start from a fresh interpreter */
	struct child *base_adopter;  /* checking and storing a new one */
	char *base_adopt_tmp;
	char base_key[96];
	uint64_t base_bytes; /* the current base image's size (0 while none) */
};

/* deploy.c: a new image (at tmp) is checked and stored by a child, `thaw
 * adopt-snapshot` (tmp is removed if it cannot start); then adopt_answer
 * reads its answer: the blob's path (new) with hex and bytes, or NULL with
 * why (tmp removed). pages (may be NULL) receives its pages: own and from
 * the base (-1 when the child did not say), and the base's blob when the
 * base is one of the store's. */
struct image_pages {
	int64_t own, base;
	char base_hex[STORE_SHA_HEX + 1];
};
struct child *adopt_start(struct serve *s, const char *tmp, child_done_fn done, void *arg,
			  char *err, size_t errlen);
char *adopt_answer(struct serve *s, const char *tmp, int status, const uint8_t *out, size_t len,
		   int overflow, char hex[STORE_SHA_HEX + 1], uint64_t *bytes,
		   struct image_pages *pages, char *why, size_t whylen);
/* density.c: what versions hold on disk and workers in memory (the rules
 * are at the top of density.c). The blob HEX of a path DATA/blobs/HEX of
 * s's store into hex ("" when it is not one). */
void density_blob_of(struct serve *s, const char *path, char hex[STORE_SHA_HEX + 1]);
/* sv's new image was adopted (sv->v.snapshot is it): its pages recorded. */
void density_image_adopted(struct sversion *sv, const struct image_pages *pages);
/* An instance kept IMAGE.ws (bytes) for image (a path): recorded if it is
 * still sv's image. */
void density_ws_recorded(struct sversion *sv, const char *image, double bytes);
/* sv was loaded: a figure not known yet that needs no child (the bundle's
 * size of a version stored before migration 6: a stat) is taken now. */
void density_version_loaded(struct sversion *sv);
/* sv starts from its stored image at path: the figures not known yet (an
 * image stored before they were kept, a working set recorded by an earlier
 * run) are taken now. */
void density_image_loaded(struct sversion *sv, const char *path);
/* GET /v1/density (returns new; NULL on a database error, logged). */
json_t *density_json(struct serve *s);
/* The base images versions are built on, and the current one: [{"blob",
 * "bytes", "versions", "current"}] (returns new). */
json_t *density_bases_json(struct serve *s);
/* The density gauges for /metrics, appended to b. */
struct buf;
void density_metrics(struct serve *s, struct buf *b);

/* serve_base.c: the host's base image. Start: made the app, the stored
 * image taken when it still fits (enabled 0: no base). Stop: after
 * pool_shutdown and child_kill_all. Blob: is hex the base's image? */
void serve_base_start(struct serve *s, int enabled);
void serve_base_stop(struct serve *s);
int serve_base_blob(const struct serve *s, const char *hex);

/* serve.c */
uint64_t serve_rng(struct serve *s); /* spread, not secrecy */
struct sworker *serve_worker_find(struct serve *s, const char *name);
/* The worker named name, made (with its deployment from the store) if new. */
struct sworker *serve_worker_get(struct serve *s, const char *name);
struct sversion *serve_version_loaded(struct sworker *w, const char *id);
/* Give a stored version a pool. NULL with err when it cannot be loaded. */
struct sversion *serve_version_load(struct serve *s, struct sworker *w, const struct version *v,
				    char *err, size_t errlen);
/* A loaded, ready version starts serving (from its stored image if it fits). */
void serve_version_start(struct serve *s, struct sversion *sv);
/* Free, soon and from the loop, the versions that left the deployment and
 * that nothing uses any more. */
void serve_sweep_soon(struct serve *s);
/* DIR/versions/ID (returns new). */
char *serve_version_dir(struct serve *s, const char *id);
/* Make d the worker's deployment, in the store and then in memory (versions
 * in it start, the others drain). 0, or -1 with err. */
int serve_deploy_now(struct serve *s, struct sworker *w, struct deployment *d, char *err,
		     size_t errlen);

/* deploy.c */
/* An uploaded bundle (SHA-256 hex, bytes long, in the temporary file
 * upload, which the deploy takes) for worker: fsync and unpack it (a child),
 * store it as a blob, record, build, validate, deploy. The answer goes to
 * cs: a refusal (ctl_stream_refuse) when the bundle is refused, else
 * progress lines and the end. cs may go away meanwhile
 * (deploy_stream_gone); the deploy goes on. */
void deploy_start(struct serve *s, const char *worker, const char *hex, const char *upload,
		  uint64_t bytes, const char *message, double percentage, const char *env,
		  struct ctl_stream *cs);
/* Deploy a bundle already in the store (hex) again as a new version of worker
 * at 100 % (a secret changed: the version takes the worker's secrets as they
 * are now), with nobody waiting on a stream. */
void deploy_start_stored(struct serve *s, const char *worker, const char *hex,
			 const char *message, const char *env);
void deploy_stream_gone(struct serve *s, struct ctl_stream *cs);
/* The pool hooks of a version (host.h's app_hooks). */
void deploy_adopt_snapshot(struct app *a, const char *tmp);
void deploy_on_event(struct app *a, enum app_event ev, const char *detail, double num);

/* gc.c: deleting versions and the files nothing names (the rules are at
 * the top of gc.c). */
/* Delete the stored version id (protect: store_version_delete's) and, once
 * that is durable, its files that nothing else uses; a version still
 * loaded keeps them until it is unloaded. 0, or store_version_delete's
 * answer with err; *gone is the deleted row (version_clear it). */
int gc_version_delete(struct serve *s, const char *id, int protect, struct version *gone,
		      char *err, size_t errlen);
/* Apply --keep-versions to worker: delete its versions beyond the newest N
 * that no deployment it could return to names. */
void gc_keep(struct serve *s, const char *worker);
/* A blob someone stopped using (a refused deploy's bundle, a replaced
 * image): removed, once durable, if nothing names or uses it. */
void gc_release_blob(struct serve *s, const char *hex);
/* A deleted version (sv->deleted) was unloaded: its files may go now. */
void gc_version_unloaded(struct serve *s, const struct version *v);
/* The store made more changes durable: remove what waited for them. */
void gc_synced(struct serve *s);
/* At start, before any version is loaded: remove the files a crash left
 * unnamed, then apply --keep-versions to every deployed worker. */
void gc_start(struct serve *s);
/* The host stops: forget the files still waiting (the next start removes
 * them, since nothing names them). */
void gc_stop(struct serve *s);

/* crons.c: cron triggers. Count (log, record) the runs missed while the host
 * was down, then run every deployed trigger each minute. */
void serve_crons_start(struct serve *s);
/* The worker's triggers, runs in progress and newest runs (at most limit). */
json_t *serve_crons_json(struct serve *s, struct sworker *w, int limit);

/* api.c: GET/POST on the worker API; the HTTP status, *out a JSON object. */
/* state_api.c: the sink's state (ctl_sink), arg the struct serve. */
struct ctl_state_request;
struct ctl_state;
void state_api_request(void *arg, const struct ctl_state_request *req, struct ctl_state *cs);
unsigned api_answer(struct serve *s, const char *method, const char *worker, const char *what,
		    json_t *body, json_t **out);

#endif
