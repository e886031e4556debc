/*
 * A worker project, as plain data: what `thaw dev`, `thaw serve`, `thaw
 * install` and `thaw deploy` know of a project directory.
 *
 * WHERE IT COMES FROM
 *   A project's configuration is pyproject.toml [tool.thaw] over
 *   wrangler.jsonc / wrangler.json / wrangler.toml (read.c). TOML is parsed by
 *   Python's tomllib, so reading happens in a child: `thaw config DIR` (the
 *   worker binary in its config mode, src/worker/py_config.c) prints the
 *   project as one JSON object, and the host only parses that (project_parse).
 *   The host process never starts an interpreter.
 *
 *   {"ok": true, "project": {"name": S, "main": S, "vars": {..},
 *                            "dependencies": [S..], "sources": S,
 *                            "allow_entropy_at_import": B, "crons": [S..],
 *                            "outbound": false (absent: true),
 *                            "env": S (absent: none),
 *                            "assets": {..} (absent: none; see below),
 *                            "kv_namespaces", "d1_databases", "r2_buckets",
 *                            "durable_objects", "migrations", "queues",
 *                            "services" (absent: none; bindings.h),
 *                            "limits": {KEY: N..} (absent: none set; limits.h)}}
 *   {"ok": false, "error": S}
 *
 *   The child's output is treated as hostile like the files it read: every
 *   member is type-checked and the name and main rules are applied again.
 *   thaw serve keeps a version's project JSON in its store, so a version's
 *   configuration is read once, when its bundle is unpacked.
 *
 * OWNERSHIP
 *   A struct project is owned by whoever got it from project_parse /
 *   project_load / project_from_json, freed with project_free (NULL is fine).
 *   Its strings and JSON values are its own.
 */
#ifndef THAW_PROJECT_PROJECT_H
#define THAW_PROJECT_PROJECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "project/bindings.h"
#include "project/limits.h"

#define PROJECT_MAX_FILE_BYTES (1u << 20) /* a configuration file, at most */
#define PROJECT_MAX_JSON_BYTES (4u << 20) /* the reader's whole answer, at most */
#define PROJECT_MAX_TOML_BYTES (16u << 20) /* a file for project_load_toml (lock files) */

/*
 * Static assets (wrangler's `assets` table, or [tool.thaw] assets = {..}):
 *   {"directory": S, "binding": S, "html_handling": S,
 *    "not_found_handling": S, "run_worker_first": B | [S..]}
 * directory is required: in a project file relative to the project (a
 * subdirectory of it, which must exist); in the reader's answer already
 * made relative and normalised ("public", "dist/client"). binding is a name
 * for env (letters, digits, '_'; not a var's name). run_worker_first rules
 * are wrangler's: each starts with "/" or "!/" (a negation), at most
 * PROJECT_ASSETS_MAX_RULES of at most PROJECT_ASSETS_MAX_RULE_LEN bytes, at
 * least one positive, no duplicates.
 */
#define PROJECT_ASSETS_MAX_RULES 100
#define PROJECT_ASSETS_MAX_RULE_LEN 100

enum project_html_handling {
	PROJECT_HTML_AUTO_TRAILING_SLASH = 0, /* the default */
	PROJECT_HTML_FORCE_TRAILING_SLASH,
	PROJECT_HTML_DROP_TRAILING_SLASH,
	PROJECT_HTML_NONE,
};

enum project_not_found_handling {
	PROJECT_NOT_FOUND_NONE = 0, /* the default: the worker (or 404) */
	PROJECT_NOT_FOUND_SPA,      /* single-page-application: /index.html, 200 */
	PROJECT_NOT_FOUND_404_PAGE, /* the nearest 404.html, status 404 */
};

struct project_assets {
	char *directory; /* relative to the project, normalised; NULL: no assets */
	char *binding;   /* env name of the binding, or NULL */
	enum project_html_handling html_handling;
	enum project_not_found_handling not_found_handling;
	int run_worker_first;  /* true: every request goes to the worker first */
	char **rules;          /* run_worker_first patterns (nrules of them), or NULL */
	size_t nrules;
};

struct project {
	char *dir;     /* absolute project directory (set by whoever loaded it) */
	char *name;    /* worker name: project_name_valid */
	char *main;    /* entry module, relative to dir: project_main_valid */
	json_t *vars;  /* object: name -> JSON value */
	json_t *dependencies; /* [project].dependencies: array of strings */
	char *sources; /* the files read, for messages ("wrangler.toml + pyproject.toml") */
	int allow_entropy_at_import; /* [tool.thaw] allow_entropy_at_import */
	/* [tool.thaw] outbound = false: no TCP or UDP outside the instance
	 * (docs/security.md, "Network"); 0, the default, allows it. */
	int outbound_denied;
	json_t *crons; /* triggers.crons: array of cron expressions (cron.h), each valid */
	char *env;     /* the environment selected ([env.NAME], --env), or NULL */
	struct project_assets assets; /* static assets (directory NULL: none) */
	struct project_limits limits; /* [tool.thaw.limits] over wrangler's limits (limits.h) */

	/* Storage and service bindings (bindings.h): each kind its own array. */
	struct project_kv *kv_namespaces;
	size_t nkv_namespaces;
	struct project_d1 *d1_databases;
	size_t nd1_databases;
	struct project_r2 *r2_buckets;
	size_t nr2_buckets;
	struct project_durable_object *durable_objects; /* durable_objects.bindings */
	size_t ndurable_objects;
	struct project_migration *migrations; /* in their order */
	size_t nmigrations;
	struct project_queue_producer *queue_producers;
	size_t nqueue_producers;
	struct project_queue_consumer *queue_consumers;
	size_t nqueue_consumers;
	struct project_service *services;
	size_t nservices;
	/* The table each array came from, for messages (static storage; NULL
	 * for an empty one). */
	const char *section_sources[PROJECT_SECTIONS];
};

#define PROJECT_MAX_CRONS 64 /* triggers per worker */

/* Is s a valid worker name (1-63 of [a-z0-9_-], not starting or ending in '-')? */
int project_name_valid(const char *s);
/* Is v a valid triggers.crons value (an array of at most PROJECT_MAX_CRONS
 * valid, distinct expressions)? 0, or -1 with err naming the bad entry. */
int project_crons_check(const json_t *v, char *err, size_t errlen);
/* Is s a safe relative path to a .py file inside a project? */
int project_main_valid(const char *s);

void project_free(struct project *p);

/* --- assets (project.c) --- */
/* Read an `assets` value j (borrowed) into a (which the caller has zeroed or
 * disposed). from_file: j comes from a project file and directory is taken
 * as written (read.c resolves it); else it must be normalised already. where
 * names the file for messages. 0, or -1 with err (a holds nothing then). */
int project_assets_from_json(struct project_assets *a, const json_t *j, int from_file,
			     const char *where, char *err, size_t errlen);
/* The assets as JSON (returns new), or NULL when there are none. */
json_t *project_assets_to_json(const struct project_assets *a);
void project_assets_dispose(struct project_assets *a);
/* Is s a normalised relative directory path (no "", ".", ".." components,
 * no leading or trailing '/', no backslash or control byte, at most 255 bytes)? */
int project_relative_dir_valid(const char *s);
/* Is s a valid binding name ([A-Za-z_][A-Za-z0-9_]*, at most 63 bytes)? */
int project_binding_name_valid(const char *s);

/* The project as a JSON object (without dir). Returns new. */
json_t *project_to_json(const struct project *p);
/* A project from a JSON object as project_to_json makes it; dir is copied.
 * Returns new, or NULL with err when a member is missing, of the wrong type
 * or breaks a rule. Borrows j. */
struct project *project_from_json(const json_t *j, const char *dir, char *err, size_t errlen);
/* The config reader's whole answer (text, len bytes): the project (returns
 * new), or NULL with its error or why the answer is malformed in err. */
struct project *project_parse(const char *text, size_t len, const char *dir, char *err,
			      size_t errlen);

/*
 * Read the project in dir in this process, the way `thaw config` does:
 * toml_parse turns TOML text into JSON (or NULL with err). Notes about keys
 * thaw ignores go to notes (NULL: none). Returns new, or NULL with err.
 */
typedef json_t *(*project_toml_fn)(const char *text, size_t len, char *err, size_t errlen);
/*
 * Does the Python version `version` ("3.11.2") satisfy the PEP 440 specifier
 * list `spec` (a project's requires-python, e.g. ">=3.10,<3.13", "~=3.12",
 * "==3.11.*")? 1 yes, 0 no, -1 when spec is not one thaw can read (an operator
 * or version it does not know: pre-releases, local versions). Bounded: at most
 * 32 clauses of at most 6 components.
 */
int project_python_satisfies(const char *spec, const char *version);

struct project *project_read(const char *dir, project_toml_fn toml_parse, FILE *notes, char *err,
			     size_t errlen);
/* The same for environment env (NULL: none): wrangler's [env.NAME] (and
 * [tool.thaw.env.NAME]) over the top level, as wrangler combines them (vars
 * and bindings are not inherited; the name is NAME's own or "TOP-ENV"). An
 * env no file defines is an error. */
struct project *project_read_env(const char *dir, const char *env, project_toml_fn toml_parse,
				 FILE *notes, char *err, size_t errlen);
int project_env_name_valid(const char *s);

/*
 * Run the config reader (`thaw config DIR`) and wait for it: for commands
 * that may block (thaw dev before its loop runs, install, deploy, the
 * unpacking child). Returns new, or NULL with err. Never on a host's loop:
 * the loop starts the reader with project_reader_argv and child.c instead.
 */
struct project *project_load(const char *dir, char *err, size_t errlen);
/* The same for environment env (NULL: none; see project_read_env). */
struct project *project_load_env(const char *dir, const char *env, char *err, size_t errlen);
/* The same for one TOML file (`thaw config --toml FILE`): its JSON (returns
 * new), or NULL with err. */
json_t *project_load_toml(const char *path, char *err, size_t errlen);
/* argv of the reader for dir (absolute): argv[0..3], NULL-terminated; the
 * strings are borrowed from the caller's dir and static storage. */
void project_reader_argv(const char *dir, char *argv[4]);
/* The same with `--env ENV` when env is not NULL: argv[0..5]. */
void project_reader_argv_env(const char *dir, const char *env, char *argv[6]);

#endif
