/*
 * `thaw kv key ...` and `thaw d1 ...` on the local state of a project: the
 * files `thaw dev` serves its KV namespaces and D1 databases from (the
 * project's .thaw/state, or --persist-to DIR), found through the project's
 * configuration as the bindings are. The engines' own command logic
 * (src/state/kv_cli.c, d1_cli.c) does the work; this file finds the file and
 * strips the options that found it.
 *
 * With --host URL (or --remote: the host every remote command finds,
 * $THAW_HOST or the default) the same commands work on a host's state
 * instead, for the worker --name (default: the project's name), through the
 * control API (state_remote.c); the host resolves the binding from the
 * worker's deployed configuration.
 */
#include "ext/bindings.h"
#include "ext/ext.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "project/project.h"
#include "ext/state_remote.h"
#include "state/d1_cli.h"
#include "state/kv_cli.h"

struct where {
	const char *project, *env, *persist_to;
	const char *binding, *namespace_id;
	int remote;
	const char *host, *token_file, *name;
	int verbose;
};

/* Take our options out of argv (in place); returns the new argc, or -1 with
 * a message when one lacks its value. */
static int take_options(const char *cmd, int argc, char **argv, struct where *w, int kv)
{
	int n = 0;
	for (int i = 0; i < argc; i++) {
		const char **dst = NULL;
		if (!strcmp(argv[i], "--project") || !strcmp(argv[i], "--config"))
			dst = &w->project;
		else if (!strcmp(argv[i], "--env"))
			dst = &w->env;
		else if (!strcmp(argv[i], "--persist-to"))
			dst = &w->persist_to;
		else if (kv && !strcmp(argv[i], "--binding"))
			dst = &w->binding;
		else if (kv && !strcmp(argv[i], "--namespace-id"))
			dst = &w->namespace_id;
		else if (!strcmp(argv[i], "--host"))
			dst = &w->host;
		else if (!strcmp(argv[i], "--token-file"))
			dst = &w->token_file;
		else if (!strcmp(argv[i], "--name"))
			dst = &w->name;
		else if (!strcmp(argv[i], "--local") || !strcmp(argv[i], "--preview")) {
			continue;
		} else if (!strcmp(argv[i], "--remote")) {
			w->remote = 1;
			continue;
		} else if (!strcmp(argv[i], "--verbose")) {
			w->verbose = 1;
			continue;
		}
		if (dst) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: %s needs a value\n", cmd, argv[i]);
				return -1;
			}
			*dst = argv[++i];
			if (dst == &w->host || dst == &w->token_file || dst == &w->name)
				w->remote = 1;
			continue;
		}
		argv[n++] = argv[i];
	}
	argv[n] = NULL;
	return n;
}

/* The project, its state directory (returns new) and its config as JSON. */
static struct project *open_project(const char *cmd, const struct where *w, char **state_dir,
				    json_t **pj)
{
	char err[1024];
	struct project *p = project_load_env(w->project ? w->project : ".", w->env, err, sizeof err);
	if (!p) {
		fprintf(stderr, "%s: %s\n", cmd, err);
		return NULL;
	}
	*state_dir = w->persist_to ? xstrdup(w->persist_to) : xasprintf("%s/.thaw/state", p->dir);
	*pj = project_to_json(p);
	return p;
}

/* The remote options, the worker named or the project's (*name returns new).
 * -1 with the reason printed. */
static int remote_opts(const char *cmd, const struct where *w, struct state_remote_opts *o,
		       char **name)
{
	*name = NULL;
	if (w->name) {
		if (!project_name_valid(w->name)) {
			fprintf(stderr, "%s: '%s' is not a worker name: use 1-63 lowercase letters, "
					"digits, '-' or '_'\n", cmd, w->name);
			return -1;
		}
		*name = xstrdup(w->name);
	} else {
		char err[1024];
		struct project *p =
			project_load_env(w->project ? w->project : ".", w->env, err, sizeof err);
		if (!p) {
			fprintf(stderr, "%s: which worker? give --name WORKER (no project here: "
					"%s)\n", cmd, err);
			return -1;
		}
		*name = xstrdup(p->name);
		project_free(p);
	}
	*o = (struct state_remote_opts){
		.host = w->host,
		.token_file = w->token_file,
		.worker = *name,
		.verbose = w->verbose,
	};
	return 0;
}

static int make_dir(const char *cmd, const char *dir, const char *sub)
{
	char *d = xasprintf("%s/%s", dir, sub);
	int rc = mkdir_p(d, 0700);
	if (rc < 0)
		fprintf(stderr, "%s: cannot create %s: %s\n", cmd, d, strerror(errno));
	free(d);
	return rc;
}

static const char kv_usage[] =
	"usage: thaw kv key put|get|list|delete ... --binding NAME [--env E] [--persist-to DIR]\n"
	"                                            [--project DIR]\n"
	"       thaw kv key put|get|list|delete ... --binding NAME (--host URL | --remote)\n"
	"                                            [--name WORKER] [--token-file FILE]\n"
	"\n"
	"Read and write a KV namespace of the project in DIR (default: here) where `thaw dev`\n"
	"keeps it (DIR/.thaw/state, or --persist-to); with --host (or --remote: $THAW_HOST),\n"
	"the one a thaw host serves to the worker WORKER (default: the project's name).\n"
	"NAME is the binding (or --namespace-id ID). The commands after `key`:\n"
	"  put KEY (VALUE | --path FILE) [--ttl S] [--expiration T] [--metadata JSON]\n"
	"  get KEY [--text | --json]     list [--prefix P] [--limit N]     delete KEY\n";

int cmd_kv(int argc, char **argv)
{
	const char *cmd = "thaw kv";
	struct where w = {0};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(kv_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "key") != 0) {
		fprintf(stderr, "%s: only `thaw kv key ...` is supported\n%s", cmd, kv_usage);
		return 2;
	}
	int n = take_options(cmd, argc - 2, argv + 2, &w, 1);
	if (n < 0)
		return 2;
	if (!w.binding && !w.namespace_id) {
		fprintf(stderr, "%s: which namespace? give --binding NAME\n", cmd);
		return 2;
	}
	if (w.remote) {
		struct state_remote_opts o;
		char *name;
		if (remote_opts(cmd, &w, &o, &name) < 0)
			return 1;
		int rc = state_remote_kv(&o, w.binding ? w.binding : w.namespace_id, n, argv + 2);
		free(name);
		return rc;
	}
	char *state_dir = NULL;
	json_t *pj = NULL;
	struct project *p = open_project(cmd, &w, &state_dir, &pj);
	if (!p)
		return 1;
	json_t *found = NULL, *e;
	size_t i;
	json_array_foreach(json_object_get(pj, "kv_namespaces"), i, e) {
		const char *b = json_string_value(json_object_get(e, "binding"));
		const char *id = json_string_value(json_object_get(e, "id"));
		if ((w.binding && b && !strcmp(b, w.binding)) ||
		    (w.namespace_id && id && !strcmp(id, w.namespace_id)))
			found = e;
	}
	int rc = 1;
	if (!found) {
		fprintf(stderr, "%s: %s has no KV namespace %s '%s' (kv_namespaces)\n", cmd,
			p->sources, w.binding ? "bound as" : "with id",
			w.binding ? w.binding : w.namespace_id);
	} else if (make_dir(cmd, state_dir, "kv") == 0) {
		char *path = kv_binding_path(state_dir, found);
		rc = kv_cli(n, argv + 2, path);
		free(path);
	}
	json_decref(pj);
	free(state_dir);
	project_free(p);
	return rc;
}

static const char d1_usage[] =
	"usage: thaw d1 execute DB (--command SQL | --file FILE) [--json]\n"
	"       thaw d1 migrations list|apply DB\n"
	"       thaw d1 migrations create DB NAME\n"
	"       (each with [--env E] [--persist-to DIR] [--project DIR], or with\n"
	"        (--host URL | --remote) [--name WORKER] [--token-file FILE])\n"
	"\n"
	"Run SQL on, or migrate, a D1 database of the project in DIR (default: here) where\n"
	"`thaw dev` keeps it (DIR/.thaw/state, or --persist-to); with --host (or --remote:\n"
	"$THAW_HOST), the one a thaw host serves to the worker WORKER (default: the project's\n"
	"name), migrated with the local migration files. DB is the database_name or\n"
	"the binding. Migrations are the NNNN_name.sql files of the database's migrations_dir,\n"
	"each applied once, in order, in a transaction, and recorded in its migrations_table.\n";

/* The local project's migrations directory for db, when there is a project
 * that has it (returns new); else ./migrations. */
static char *local_migrations_dir(const struct where *w, const char *db)
{
	char err[1024];
	struct project *p = project_load_env(w->project ? w->project : ".", w->env, err, sizeof err);
	if (!p)
		return xstrdup("migrations");
	json_t *pj = project_to_json(p), *e;
	char *dir = NULL;
	size_t i;
	json_array_foreach(json_object_get(pj, "d1_databases"), i, e) {
		const char *name = json_string_value(json_object_get(e, "database_name"));
		const char *b = json_string_value(json_object_get(e, "binding"));
		const char *mdir = json_string_value(json_object_get(e, "migrations_dir"));
		if (!dir && ((name && !strcmp(name, db)) || (b && !strcmp(b, db))))
			dir = xasprintf("%s/%s", p->dir, mdir ? mdir : "migrations");
	}
	if (!dir)
		dir = xasprintf("%s/migrations", p->dir);
	json_decref(pj);
	project_free(p);
	return dir;
}

static int d1_remote(const char *cmd, const struct where *w, const char *db, int argc,
		     char **argv)
{
	struct state_remote_opts o;
	char *name;
	if (remote_opts(cmd, w, &o, &name) < 0)
		return 1;
	char *dir = local_migrations_dir(w, db);
	int rc = state_remote_d1(&o, db, argc, argv, dir);
	free(dir);
	free(name);
	return rc;
}

int cmd_d1(int argc, char **argv)
{
	const char *cmd = "thaw d1";
	struct where w = {0};
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(d1_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	int n = take_options(cmd, argc - 1, argv + 1, &w, 0);
	if (n < 0)
		return 2;
	char **a = argv + 1;
	/* The DB: after `execute`, or after `migrations VERB` (options alone: no verb). */
	int at = n < 1 ? -1 : !strcmp(a[0], "execute") ? 1 : (!strcmp(a[0], "migrations") ? 2 : -1);
	if (at < 0 || n <= at) {
		fputs(d1_usage, stderr);
		return 2;
	}
	const char *db = a[at];
	for (int i = at; i < n; i++)
		a[i] = a[i + 1];
	n--;
	if (w.remote)
		return d1_remote(cmd, &w, db, n, a);
	char *state_dir = NULL;
	json_t *pj = NULL;
	struct project *p = open_project(cmd, &w, &state_dir, &pj);
	if (!p)
		return 1;
	json_t *found = NULL, *e;
	size_t i;
	json_array_foreach(json_object_get(pj, "d1_databases"), i, e) {
		const char *name = json_string_value(json_object_get(e, "database_name"));
		const char *b = json_string_value(json_object_get(e, "binding"));
		if ((name && !strcmp(name, db)) || (b && !strcmp(b, db)))
			found = e;
	}
	int rc = 1;
	if (!found) {
		fprintf(stderr, "%s: %s has no D1 database '%s' (d1_databases: database_name or "
				"binding)\n", cmd, p->sources, db);
	} else if (make_dir(cmd, state_dir, "d1") == 0) {
		char *path = d1_binding_path(state_dir, found);
		const char *mdir = json_string_value(json_object_get(found, "migrations_dir"));
		const char *table = json_string_value(json_object_get(found, "migrations_table"));
		char *migrations = xasprintf("%s/%s", p->dir, mdir ? mdir : "migrations");
		rc = d1_cli(n, a, path, migrations, table ? table : "d1_migrations");
		free(migrations);
		free(path);
	}
	json_decref(pj);
	free(state_dir);
	project_free(p);
	return rc;
}
