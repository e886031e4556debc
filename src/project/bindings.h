/*
 * The storage and service bindings of a project's configuration, as plain
 * data: wrangler's kv_namespaces, d1_databases, r2_buckets,
 * durable_objects.bindings and migrations, queues.producers and
 * queues.consumers, services. Each kind is its own array in struct project
 * (project.h); bindings.c reads them from a project file (the config reader)
 * and from the reader's JSON answer (the host), writes them as JSON, and
 * checks the rules that span kinds.
 *
 * THE JSON (the reader's answer; each member absent when there is none):
 *   "kv_namespaces":  [{"binding": S, "id"?: S, "preview_id"?: S}..]
 *   "d1_databases":   [{"binding": S, "database_name": S, "database_id"?: S,
 *                       "migrations_dir": S, "migrations_table": S}..]
 *   "r2_buckets":     [{"binding": S, "bucket_name": S, "jurisdiction"?: S}..]
 *   "durable_objects": {"bindings": [{"name": S, "class_name": S,
 *                                     "script_name"?: S}..]}
 *   "migrations":     [{"tag": S, "new_classes"?: [S..],
 *                       "new_sqlite_classes"?: [S..],
 *                       "renamed_classes"?: [{"from": S, "to": S}..],
 *                       "deleted_classes"?: [S..]}..]
 *   "queues": {"producers": [{"binding": S, "queue": S, "delivery_delay"?: N}..],
 *              "consumers": [{"queue": S, "max_batch_size": N,
 *                             "max_batch_timeout": N, "max_retries": N,
 *                             "dead_letter_queue"?: S, "retry_delay"?: N,
 *                             "max_concurrency"?: N}..]}
 *   "services":       [{"binding": S, "service": S, "entrypoint"?: S}..]
 * Defaults are filled in by the reader (migrations_dir "migrations",
 * migrations_table "d1_migrations", max_batch_size 10, max_batch_timeout 5,
 * max_retries 3), so the host never applies one. migrations_dir is relative
 * to the project and normalised ("migrations", "db/migrations").
 *
 * THE RULES (in a file and in the answer alike)
 *   - binding names (and durable_objects' "name") are identifiers
 *     ([A-Za-z_][A-Za-z0-9_]*, at most 63 bytes), unique across every kind,
 *     never a var's name nor the assets binding;
 *   - at most PROJECT_MAX_BINDINGS entries of each kind, PROJECT_MAX_MIGRATIONS
 *     migrations of at most PROJECT_MAX_MIGRATION_CLASSES classes a list;
 *   - names follow Cloudflare's rules: queues and R2 buckets lowercase
 *     letters, digits and '-' (not first or last; buckets 3-63 bytes, queues
 *     1-63), D1 databases lowercase letters, digits, '-' and '_' (starting
 *     with a letter or digit, at most 63), services and script_name worker
 *     names (project_name_valid), classes and entrypoints identifiers,
 *     ids letters, digits, '-' and '_' (1-64), jurisdiction "eu" or "fedramp";
 *   - migrations apply in their order from nothing: a tag appears once, a
 *     class is created once (new_classes or new_sqlite_classes) until it is
 *     deleted, a rename goes from a class that exists to a name that does not,
 *     a deletion deletes a class that exists;
 *   - a queue has one consumer in a worker, and is not its own dead-letter
 *     queue;
 *   - migrations_dir is a folder inside the project (symlinks included).
 * In a file an unknown key inside an entry is a note; in the answer, an error.
 *
 * OWNERSHIP: the arrays and their strings belong to the struct project;
 * project_bindings_dispose frees them. Nothing here blocks but the reader's
 * stat/realpath of migrations_dir.
 */
#ifndef THAW_PROJECT_BINDINGS_H
#define THAW_PROJECT_BINDINGS_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#define PROJECT_MAX_BINDINGS 64          /* entries of each kind */
#define PROJECT_MAX_MIGRATIONS 128       /* durable object migrations */
#define PROJECT_MAX_MIGRATION_CLASSES 64 /* classes in one list of one migration */

struct project_kv {
	char *binding;
	char *id;         /* or NULL */
	char *preview_id; /* or NULL */
};

struct project_d1 {
	char *binding;
	char *database_name;
	char *database_id;      /* or NULL */
	char *migrations_dir;   /* relative to the project, normalised */
	char *migrations_table; /* an SQL identifier */
};

struct project_r2 {
	char *binding;
	char *bucket_name;
	char *jurisdiction; /* "eu", "fedramp" or NULL */
};

struct project_durable_object {
	char *name; /* the binding */
	char *class_name;
	char *script_name; /* the worker that defines the class; NULL: this one */
};

struct project_class_rename {
	char *from, *to;
};

struct project_migration {
	char *tag;
	char **new_classes;
	size_t nnew_classes;
	char **new_sqlite_classes;
	size_t nnew_sqlite_classes;
	struct project_class_rename *renamed_classes;
	size_t nrenamed_classes;
	char **deleted_classes;
	size_t ndeleted_classes;
};

struct project_queue_producer {
	char *binding;
	char *queue;
	int delivery_delay; /* seconds 0..86400; -1: not set */
};

struct project_queue_consumer {
	char *queue;
	int max_batch_size;      /* 1..100 */
	int max_batch_timeout;   /* seconds, 0..60 */
	int max_retries;         /* 0..100 */
	char *dead_letter_queue; /* or NULL */
	int retry_delay;         /* seconds 0..86400; -1: not set */
	int max_concurrency;     /* 1..250; -1: not set (as many as needed) */
};

struct project_service {
	char *binding;
	char *service;    /* the worker's name */
	char *entrypoint; /* its WorkerEntrypoint class; NULL: the default export */
};

/* Each array of struct project, for the file each came from. */
enum project_section {
	PROJECT_SECTION_KV,
	PROJECT_SECTION_D1,
	PROJECT_SECTION_R2,
	PROJECT_SECTION_DURABLE_OBJECTS,
	PROJECT_SECTION_MIGRATIONS,
	PROJECT_SECTION_QUEUE_PRODUCERS,
	PROJECT_SECTION_QUEUE_CONSUMERS,
	PROJECT_SECTION_SERVICES,
	PROJECT_SECTIONS
};

struct project;

/*
 * Take the top-level key `key` with value v (borrowed) of one configuration
 * table, when it is a binding key (kv_namespaces, d1_databases, r2_buckets,
 * durable_objects, migrations, queues, services): what it gives replaces what
 * an earlier file gave, list by list (queues.producers and queues.consumers,
 * durable_objects.bindings separately). where names the table for messages
 * and must be static storage (it is kept for later messages). from_file: v
 * comes from a project file (unknown keys are notes to `notes`, which may be
 * NULL; migrations_dir is resolved against p->dir); else from the reader's
 * answer (unknown keys are errors). 1 when taken, 0 when key is not a binding
 * key, -1 with err (p keeps what it had).
 */
int project_bindings_take(struct project *p, const char *key, const json_t *v, const char *where,
			  int from_file, FILE *notes, char *err, size_t errlen);
/* The rules across kinds (see above), once every file is taken; notes (may
 * be NULL) gets advice that is not an error (a Durable Object class no
 * migration creates). 0, or -1 with err. */
int project_bindings_check(const struct project *p, FILE *notes, char *err, size_t errlen);
/* Add the bindings p has to the project JSON object j (borrowed). */
void project_bindings_to_json(const struct project *p, json_t *j);
/* Read every binding member of the project JSON object j (borrowed) into p,
 * which has none yet, and check them (project_bindings_check). 0, or -1 with
 * err (p then holds what must still be disposed). */
int project_bindings_from_json(struct project *p, const json_t *j, char *err, size_t errlen);
/* Free every binding array of p and leave it without bindings. */
void project_bindings_dispose(struct project *p);
/* How many bindings of every kind p has (not counting migrations and
 * consumers, which put nothing in env). */
size_t project_bindings_count(const struct project *p);

#endif
