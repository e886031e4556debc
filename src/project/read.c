/*
 * Reading a project directory (project.h): pyproject.toml [tool.thaw] over
 * wrangler.jsonc / wrangler.json / wrangler.toml. Runs in the config reader
 * child (`thaw config`), which supplies the TOML parser; JSONC is ours. Every
 * file is untrusted: size-limited, type-checked, paths confined to the
 * project.
 */
#include "project/project.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/jsonc.h"
#include "common/util.h"

static int file_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	return path_join(path, sizeof path, dir, name) == 0 && stat(path, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

static json_t *load_file(const char *dir, const char *name, int jsonc, project_toml_fn toml_parse,
			 char *err, size_t errlen)
{
	char path[PATH_MAX];
	size_t len;
	char *text = path_join(path, sizeof path, dir, name) == 0
			     ? read_file(path, PROJECT_MAX_FILE_BYTES, &len)
			     : NULL;
	if (!text) {
		snprintf(err, errlen, "%s: %s", name,
			 errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	char perr[256];
	json_t *j = jsonc ? jsonc_parse(text, len, perr, sizeof perr)
			  : toml_parse(text, len, perr, sizeof perr);
	free(text);
	if (!j) {
		snprintf(err, errlen, "%s: %s", name, perr);
		return NULL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: the top level must be a table/object", name);
		json_decref(j);
		return NULL;
	}
	return j;
}

static void note(FILE *notes, const char *file, const char *key, const char *what)
{
	if (notes)
		fprintf(notes, "note: %s: '%s' %s\n", file, key, what);
}

/* triggers = {crons = [...]}: replaces what a file read earlier said. */
static int take_triggers(struct project *c, const char *file, json_t *t, FILE *notes, char *err,
			 size_t errlen)
{
	if (!json_is_object(t)) {
		snprintf(err, errlen, "%s: 'triggers' must be a table, as triggers = { crons = [...] }",
			 file);
		return -1;
	}
	const char *key;
	json_t *v;
	json_object_foreach(t, key, v) {
		if (strcmp(key, "crons") != 0) {
			note(notes, file, key, "(in triggers) is not supported by this version of thaw; ignored");
			continue;
		}
		char why[512];
		if (project_crons_check(v, why, sizeof why) < 0) {
			snprintf(err, errlen, "%s: triggers.crons%s%s", file, why[0] == '[' ? "" : " ",
				 why);
			return -1;
		}
		json_decref(c->crons);
		c->crons = json_deep_copy(v);
	}
	return 0;
}

/* The assets table of one file: replaces what an earlier file said. Its
 * directory is resolved (symlinks too) and must be a directory inside the
 * project; it is kept relative to the project. */
static int take_assets(struct project *c, const char *file, const json_t *v, char *err,
		       size_t errlen)
{
	struct project_assets a;
	if (project_assets_from_json(&a, v, 1, file, err, errlen) < 0)
		return -1;
	char joined[PATH_MAX], real[PATH_MAX];
	const char *d = a.directory;
	int ok = d[0] == '/' ? snprintf(joined, sizeof joined, "%s", d) < (int)sizeof joined
			     : path_join(joined, sizeof joined, c->dir, d) == 0;
	struct stat st;
	if (!ok || !realpath(joined, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: assets.directory '%.200s' is not a directory%s", file, d,
			 ok && errno == ENOENT ? " (it does not exist)" : "");
		project_assets_dispose(&a);
		return -1;
	}
	size_t n = strlen(c->dir);
	if (strncmp(real, c->dir, n) != 0 || real[n] != '/' ||
	    !project_relative_dir_valid(real + n + 1)) {
		snprintf(err, errlen,
			 "%s: assets.directory '%.200s' must be a folder inside the project (it is "
			 "%.200s)",
			 file, d, real);
		project_assets_dispose(&a);
		return -1;
	}
	free(a.directory);
	a.directory = xstrdup(real + n + 1);
	project_assets_dispose(&c->assets);
	c->assets = a;
	return 0;
}

/* Take name/main/vars from one table; complain about what we do not know. */
static int take(struct project *c, const char *file, json_t *t, const char *const *known_ignored,
		FILE *notes, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	json_object_foreach(t, key, v) {
		if (!strcmp(key, "name") || !strcmp(key, "main")) {
			if (!json_is_string(v)) {
				snprintf(err, errlen, "%s: '%s' must be a string", file, key);
				return -1;
			}
			char **dst = !strcmp(key, "name") ? &c->name : &c->main;
			free(*dst);
			*dst = xstrdup(json_string_value(v));
		} else if (!strcmp(key, "allow_entropy_at_import")) {
			if (!json_is_boolean(v)) {
				snprintf(err, errlen, "%s: '%s' must be true or false", file, key);
				return -1;
			}
			c->allow_entropy_at_import = json_is_true(v);
		} else if (!strcmp(key, "outbound")) {
			/* thaw's own: Cloudflare has no switch for a worker's outbound
			 * network, so a wrangler file that says it is refused, never
			 * ignored (the worker would keep its network). */
			if (strncmp(file, "pyproject.toml", 14) != 0) {
				snprintf(err, errlen,
					 "%s: 'outbound' is thaw's own setting, not wrangler's: "
					 "put `outbound = false` under [tool.thaw] in "
					 "pyproject.toml",
					 file);
				return -1;
			}
			if (!json_is_boolean(v)) {
				snprintf(err, errlen,
					 "%s: 'outbound' must be true (the default: the worker may "
					 "open connections) or false (no TCP or UDP outside its "
					 "instance)",
					 file);
				return -1;
			}
			c->outbound_denied = json_is_false(v);
		} else if (!strcmp(key, "triggers")) {
			if (take_triggers(c, file, v, notes, err, errlen) < 0)
				return -1;
		} else if (!strcmp(key, "vars")) {
			if (!json_is_object(v)) {
				snprintf(err, errlen, "%s: 'vars' must be a table of names to values",
					 file);
				return -1;
			}
			json_object_update(c->vars, v);
		} else if (!strcmp(key, "assets")) {
			if (take_assets(c, file, v, err, errlen) < 0)
				return -1;
		} else if (!strcmp(key, "limits")) {
			/* wrangler's table has Cloudflare's keys; [tool.thaw.limits] all. */
			int wrangler = strncmp(file, "pyproject.toml", 14) != 0;
			if (project_limits_take(&c->limits, v, wrangler, file, err, errlen) < 0)
				return -1;
		} else {
			int taken = project_bindings_take(c, key, v, file, 1, notes, err, errlen);
			if (taken < 0)
				return -1;
			if (taken)
				continue;
			int quiet = 0;
			for (const char *const *k = known_ignored; k && *k; k++)
				quiet |= !strcmp(*k, key);
			if (!quiet)
				note(notes, file, key, "is not supported by this version of thaw; ignored");
		}
	}
	return 0;
}

/* Keys an environment does not inherit from the top level (wrangler's rule:
 * bindings and vars are per environment). `migrations` is not one of them:
 * wrangler marks it inheritable (an environment's worker has the same classes
 * to migrate), so an environment without its own list has the top level's. */
static const char *const env_own_keys[] = {
	"vars", "define", "durable_objects", "kv_namespaces", "r2_buckets", "d1_databases",
	"services", "queues", "analytics_engine_datasets", "vectorize", "hyperdrive", "ai",
	"browser", "workflows", "send_email", "mtls_certificates", "tail_consumers", NULL};

/*
 * The table a file means for environment env (NULL: the top level): the top
 * level without its `env` sections, then, with env, without what an
 * environment does not inherit, and env.NAME over it; its name is NAME's own,
 * else the top level's with "-ENV" appended (as wrangler names it). Returns
 * new, or NULL with err when env has no section.
 */
static json_t *select_env(json_t *t, const char *file, const char *env, char *err, size_t errlen)
{
	json_t *out = json_deep_copy(t);
	json_t *envs = json_object_get(t, "env");
	json_object_del(out, "env");
	if (!env)
		return out;
	json_t *e = json_is_object(envs) ? json_object_get(envs, env) : NULL;
	if (!json_is_object(e)) {
		char names[256] = "";
		const char *k;
		json_t *v;
		size_t used = 0;
		if (json_is_object(envs))
			json_object_foreach(envs, k, v) {
				int n = snprintf(names + used, sizeof names - used, "%s%s",
						 used ? ", " : "", k);
				if (n < 0 || (size_t)n >= sizeof names - used)
					break;
				used += (size_t)n;
			}
		snprintf(err, errlen, "%s has no environment '%s' (%s%s)", file, env,
			 used ? "it has: " : "no [env.NAME] sections", names);
		json_decref(out);
		return NULL;
	}
	for (const char *const *k = env_own_keys; *k; k++)
		json_object_del(out, *k);
	json_t *name = json_object_get(out, "name");
	if (!json_object_get(e, "name") && json_is_string(name)) {
		char *n = xasprintf("%s-%s", json_string_value(name), env);
		json_object_set_new(out, "name", json_string(n));
		free(n);
	}
	json_object_update(out, e);
	return out;
}

struct project *project_read(const char *dir_in, project_toml_fn toml_parse, FILE *notes,
			     char *err, size_t errlen)
{
	return project_read_env(dir_in, NULL, toml_parse, notes, err, errlen);
}

int project_env_name_valid(const char *s)
{
	size_t n = s ? strnlen(s, 64) : 0;
	if (n == 0 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return 0;
	return 1;
}

struct project *project_read_env(const char *dir_in, const char *env, project_toml_fn toml_parse,
				 FILE *notes, char *err, size_t errlen)
{
	if (env && !project_env_name_valid(env)) {
		snprintf(err, errlen, "--env: '%.80s' is not an environment name (letters, digits, "
			 "'-' and '_')", env);
		return NULL;
	}
	char dir[PATH_MAX];
	if (!realpath(dir_in, dir)) {
		snprintf(err, errlen, "%s: %s", dir_in, strerror(errno));
		return NULL;
	}
	struct project *c = xcalloc(1, sizeof *c);
	c->dir = xstrdup(dir);
	c->vars = json_object();
	c->dependencies = json_array();
	c->crons = json_array();
	c->env = env ? xstrdup(env) : NULL;
	int env_found = 0;
	char sources[256] = "";

	static const char *const wrangler_quiet[] = {"compatibility_date", "compatibility_flags",
						     "observability", "$schema", NULL};
	static const char *const wrangler_files[] = {"wrangler.jsonc", "wrangler.json",
						     "wrangler.toml"};
	const char *wfile = NULL;
	for (size_t i = 0; i < 3; i++) {
		if (!file_exists(dir, wrangler_files[i]))
			continue;
		if (wfile) {
			if (notes)
				fprintf(notes, "note: %s is ignored: %s is read instead\n", wrangler_files[i],
				wfile);
			continue;
		}
		wfile = wrangler_files[i];
	}
	if (wfile) {
		json_t *w = load_file(dir, wfile, strstr(wfile, ".json") != NULL, toml_parse, err, errlen);
		json_t *sel = w ? select_env(w, wfile, env, err, errlen) : NULL;
		json_decref(w);
		if (!sel || take(c, wfile, sel, wrangler_quiet, notes, err, errlen) < 0) {
			json_decref(sel);
			goto fail;
		}
		json_decref(sel);
		env_found = env != NULL;
		snprintf(sources, sizeof sources, "%s", wfile);
	}

	if (file_exists(dir, "pyproject.toml")) {
		json_t *p = load_file(dir, "pyproject.toml", 0, toml_parse, err, errlen);
		if (!p)
			goto fail;
		json_t *project = json_object_get(p, "project");
		json_t *tool = json_object_get(json_object_get(p, "tool"), "thaw");
		if (project && json_is_object(project)) {
			json_t *deps = json_object_get(project, "dependencies");
			if (deps && json_is_array(deps))
				json_array_extend(c->dependencies, deps);
			json_t *requires = json_object_get(project, "requires-python");
			if (notes && json_is_string(requires) &&
			    project_python_satisfies(json_string_value(requires), THAW_PY_VERSION) == 0)
				fprintf(notes,
					"note: pyproject.toml: requires-python '%s' excludes the Python "
					"thaw embeds (%s); running on it anyway (Cloudflare projects often "
					"ask for a newer Python than they need)\n",
					json_string_value(requires), THAW_PY_VERSION);
			json_t *pname = json_object_get(project, "name");
			if (!c->name && json_is_string(pname) && !tool)
				c->name = xstrdup(json_string_value(pname));
		}
		if (tool && !json_is_object(tool)) {
			snprintf(err, errlen, "pyproject.toml: [tool.thaw] must be a table");
			json_decref(p);
			goto fail;
		}
		json_t *sel = NULL;
		json_t *tenv = tool ? json_object_get(json_object_get(tool, "env"), env ? env : "") : NULL;
		if (tool && (!env || tenv || !env_found)) {
			sel = select_env(tool, "pyproject.toml [tool.thaw]", env, err, errlen);
			if (!sel) {
				json_decref(p);
				goto fail;
			}
		} else if (tool) {
			/* The environment is the wrangler file's: [tool.thaw] still sets
			 * thaw's own keys, but not vars or bindings for it. */
			sel = json_deep_copy(tool);
			json_object_del(sel, "env");
			for (const char *const *k = env_own_keys; *k; k++)
				json_object_del(sel, *k);
		}
		if (sel && take(c, "pyproject.toml [tool.thaw]", sel, NULL, notes, err, errlen) < 0) {
			json_decref(sel);
			json_decref(p);
			goto fail;
		}
		json_decref(sel);
		json_decref(p);
		size_t used = strlen(sources);
		snprintf(sources + used, sizeof sources - used, "%spyproject.toml",
			 used ? " + " : "");
		if (env && !env_found && !tenv) {
			snprintf(err, errlen, "no environment '%s': add [env.%s] to %s", env, env,
				 wfile ? wfile : "wrangler.toml (or [tool.thaw.env.NAME])");
			goto fail;
		}
	} else if (!wfile) {
		snprintf(err, errlen,
			 "%s has no pyproject.toml or wrangler.toml: is it a worker project? "
			 "(`thaw init %s` makes one)",
			 dir, dir_in);
		goto fail;
	}
	c->sources = xstrdup(sources);

	if (!c->name) {
		/* The directory's name, made valid. */
		const char *base = strrchr(dir, '/');
		base = base && base[1] ? base + 1 : "worker";
		char name[64];
		size_t n = 0;
		for (const char *p = base; *p && n < 63; p++)
			name[n++] = isalnum((unsigned char)*p) ? (char)tolower((unsigned char)*p) : '-';
		name[n] = 0;
		while (n && name[n - 1] == '-')
			name[--n] = 0;
		c->name = xstrdup(n && name[0] != '-' ? name : "worker");
	}
	if (!project_name_valid(c->name)) {
		snprintf(err, errlen,
			 "%s: worker name '%s' is not valid: use 1-63 lowercase letters, digits, "
			 "'-' or '_'",
			 c->sources, c->name);
		goto fail;
	}
	if (!c->main)
		c->main = xstrdup("src/entry.py");
	if (!project_main_valid(c->main)) {
		snprintf(err, errlen,
			 "%s: main '%s' must be a relative path to a .py file inside the project",
			 c->sources, c->main);
		goto fail;
	}
	if (!file_exists(dir, c->main)) {
		snprintf(err, errlen, "%s: the entry module %s does not exist", c->sources, c->main);
		goto fail;
	}
	if (c->assets.binding && json_object_get(c->vars, c->assets.binding)) {
		snprintf(err, errlen,
			 "%s: the assets binding '%s' has the name of a var: rename one of them",
			 c->sources, c->assets.binding);
		goto fail;
	}
	if (project_bindings_check(c, notes, err, errlen) < 0)
		goto fail;
	return c;
fail:
	project_free(c);
	return NULL;
}
