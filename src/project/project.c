/*
 * The project model (project.h): the name and main rules, and the project as
 * JSON both ways. project_from_json reads what a child printed, so it trusts
 * nothing: every member is type-checked and the rules are applied again.
 */
#include "project/project.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "project/cron.h"

int project_name_valid(const char *s)
{
	size_t n = s ? strnlen(s, 64) : 0;
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '_'))
			return 0;
	return 1;
}

int project_main_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 4 || n > 255 || s[0] == '/' || strcmp(s + n - 3, ".py") != 0)
		return 0;
	/* No "..", "." or empty components, no backslashes or control bytes. */
	const char *p = s;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] < 32 || p[i] == '\\')
				return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}

int project_crons_check(const json_t *v, char *err, size_t errlen)
{
	if (!json_is_array(v)) {
		snprintf(err, errlen, "must be a list of cron expressions, as [\"*/5 * * * *\"]");
		return -1;
	}
	if (json_array_size(v) > PROJECT_MAX_CRONS) {
		snprintf(err, errlen, "has %zu triggers; at most %d", json_array_size(v),
			 PROJECT_MAX_CRONS);
		return -1;
	}
	size_t i, j;
	json_t *e;
	json_array_foreach(v, i, e) {
		struct cron c;
		char why[256];
		if (!json_is_string(e)) {
			snprintf(err, errlen, "[%zu] must be a string", i);
			return -1;
		}
		if (cron_parse(json_string_value(e), &c, why, sizeof why) < 0) {
			snprintf(err, errlen, "[%zu] '%.*s': %s", i, CRON_MAX_LEN,
				 json_string_value(e), why);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_array_get(v, j)), json_string_value(e))) {
				snprintf(err, errlen, "[%zu] '%s' is listed twice", i,
					 json_string_value(e));
				return -1;
			}
	}
	return 0;
}

void project_free(struct project *p)
{
	if (!p)
		return;
	free(p->dir);
	free(p->name);
	free(p->main);
	free(p->sources);
	json_decref(p->vars);
	json_decref(p->dependencies);
	json_decref(p->crons);
	free(p->env);
	project_assets_dispose(&p->assets);
	project_bindings_dispose(p);
	free(p);
}

json_t *project_to_json(const struct project *p)
{
	json_t *j = json_pack("{s:s, s:s, s:O, s:O, s:s, s:b}", "name", p->name, "main", p->main,
			      "vars", p->vars, "dependencies", p->dependencies, "sources",
			      p->sources ? p->sources : "", "allow_entropy_at_import",
			      p->allow_entropy_at_import);
	if (!j)
		fatal("cannot encode a project");
	if (p->crons && json_array_size(p->crons))
		json_object_set(j, "crons", p->crons);
	if (p->outbound_denied)
		json_object_set_new(j, "outbound", json_false());
	if (p->env)
		json_object_set_new(j, "env", json_string(p->env));
	json_t *assets = project_assets_to_json(&p->assets);
	if (assets)
		json_object_set_new(j, "assets", assets);
	project_bindings_to_json(p, j);
	json_t *limits = project_limits_to_json(&p->limits);
	if (limits)
		json_object_set_new(j, "limits", limits);
	return j;
}

struct project *project_from_json(const json_t *j, const char *dir, char *err, size_t errlen)
{
	const char *name = NULL, *main = NULL, *sources = "";
	json_t *vars = NULL, *deps = NULL, *crons = NULL;
	const char *env = NULL;
	int entropy = 0, outbound = 1;
	json_error_t je;
	if (!json_is_object(j) ||
	    json_unpack_ex((json_t *)j, &je, 0, "{s:s, s:s, s:o, s:o, s?s, s?b, s?o, s?s, s?b}",
			   "name", &name, "main", &main, "vars", &vars, "dependencies", &deps,
			   "sources", &sources, "allow_entropy_at_import", &entropy, "crons",
			   &crons, "env", &env, "outbound", &outbound) < 0) {
		snprintf(err, errlen, "malformed project description: %s",
			 json_is_object(j) ? je.text : "not an object");
		return NULL;
	}
	if (!json_is_object(vars) || !json_is_array(deps)) {
		snprintf(err, errlen, "malformed project description: %s",
			 json_is_object(vars) ? "dependencies is not an array" : "vars is not an object");
		return NULL;
	}
	size_t i;
	json_t *d;
	json_array_foreach(deps, i, d) {
		if (!json_is_string(d)) {
			snprintf(err, errlen, "malformed project description: a dependency is not a string");
			return NULL;
		}
	}
	char why[512];
	if (crons && project_crons_check(crons, why, sizeof why) < 0) {
		snprintf(err, errlen, "malformed project description: crons%s", why);
		return NULL;
	}
	if (env && !project_env_name_valid(env)) {
		snprintf(err, errlen, "malformed project description: invalid env");
		return NULL;
	}
	if (!project_name_valid(name) || !project_main_valid(main)) {
		snprintf(err, errlen, "malformed project description: invalid %s",
			 project_name_valid(name) ? "main" : "name");
		return NULL;
	}
	struct project *p = xcalloc(1, sizeof *p);
	p->dir = xstrdup(dir);
	p->name = xstrdup(name);
	p->main = xstrdup(main);
	p->sources = xstrdup(sources);
	p->vars = json_deep_copy(vars);
	p->dependencies = json_deep_copy(deps);
	p->allow_entropy_at_import = entropy;
	p->outbound_denied = !outbound;
	p->crons = crons ? json_deep_copy(crons) : json_array();
	p->env = env ? xstrdup(env) : NULL;
	if (!p->vars || !p->dependencies || !p->crons)
		fatal("out of memory");
	const json_t *assets = json_object_get(j, "assets");
	if (assets && project_assets_from_json(&p->assets, assets, 0,
					       "malformed project description", err, errlen) < 0) {
		project_free(p);
		return NULL;
	}
	if (p->assets.binding && json_object_get(p->vars, p->assets.binding)) {
		snprintf(err, errlen, "malformed project description: the assets binding %s is also a var",
			 p->assets.binding);
		project_free(p);
		return NULL;
	}
	if (project_bindings_from_json(p, j, err, errlen) < 0) {
		project_free(p);
		return NULL;
	}
	const json_t *limits = json_object_get(j, "limits");
	if (limits && project_limits_from_json(&p->limits, limits, err, errlen) < 0) {
		project_free(p);
		return NULL;
	}
	return p;
}

struct project *project_parse(const char *text, size_t len, const char *dir, char *err,
			      size_t errlen)
{
	json_error_t je;
	json_t *j = len <= PROJECT_MAX_JSON_BYTES ? json_loadb(text, len, 0, &je) : NULL;
	int ok = 0;
	const char *error = NULL;
	json_t *pj = NULL;
	if (!j) {
		snprintf(err, errlen, "the configuration reader's answer is not valid: %s",
			 len > PROJECT_MAX_JSON_BYTES ? "too large" : je.text);
		return NULL;
	}
	if (json_unpack(j, "{s:b, s?s, s?o}", "ok", &ok, "error", &error, "project", &pj) < 0) {
		snprintf(err, errlen, "the configuration reader's answer is not valid: no \"ok\"");
		json_decref(j);
		return NULL;
	}
	struct project *p = NULL;
	if (!ok)
		snprintf(err, errlen, "%s", error ? error : "the configuration could not be read");
	else
		p = project_from_json(pj, dir, err, errlen);
	json_decref(j);
	return p;
}

/* --- requires-python: a PEP 440 subset --- */

#define VER_PARTS 6

/* Parse "3", "3.11", "3.11.2" (and, with star, "3.11.*") from s[0..len).
 * Returns the number of components, 0 if malformed. */
static int parse_version(const char *s, size_t len, long v[VER_PARTS], int *star)
{
	int n = 0;
	size_t i = 0;
	*star = 0;
	for (int k = 0; k < VER_PARTS; k++)
		v[k] = 0;
	for (;;) {
		if (i < len && s[i] == '*' && star && i + 1 == len && n > 0) {
			*star = 1;
			return n;
		}
		if (i >= len || s[i] < '0' || s[i] > '9' || n == VER_PARTS)
			return 0;
		long x = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (x > 100000000)
				return 0;
			x = x * 10 + (s[i++] - '0');
		}
		v[n++] = x;
		if (i == len)
			return n;
		if (s[i++] != '.')
			return 0;
	}
}

static int cmp_version(const long a[VER_PARTS], const long b[VER_PARTS])
{
	for (int k = 0; k < VER_PARTS; k++)
		if (a[k] != b[k])
			return a[k] < b[k] ? -1 : 1;
	return 0;
}

/* Does have (its first n components) start with want's first n? */
static int prefix_equal(const long have[VER_PARTS], const long want[VER_PARTS], int n)
{
	for (int k = 0; k < n; k++)
		if (have[k] != want[k])
			return 0;
	return 1;
}

static int clause_satisfied(const char *c, size_t len, const long have[VER_PARTS])
{
	static const char *const ops[] = {"===", "~=", "==", "!=", "<=", ">=", "<", ">"};
	size_t i = 0;
	const char *op = NULL;
	for (size_t k = 0; k < sizeof ops / sizeof ops[0] && !op; k++)
		if (len >= strlen(ops[k]) && !strncmp(c, ops[k], strlen(ops[k])))
			op = ops[k];
	if (!op)
		return -1;
	i = strlen(op);
	while (i < len && (c[i] == ' ' || c[i] == '\t'))
		i++;
	long want[VER_PARTS];
	int star = 0;
	int n = parse_version(c + i, len - i, want, &star);
	if (n == 0)
		return -1;
	if (star && strcmp(op, "==") != 0 && strcmp(op, "!=") != 0)
		return -1;
	int cmp = cmp_version(have, want);
	if (!strcmp(op, "===") || !strcmp(op, "=="))
		return star ? prefix_equal(have, want, n) : cmp == 0;
	if (!strcmp(op, "!="))
		return star ? !prefix_equal(have, want, n) : cmp != 0;
	if (!strcmp(op, "<="))
		return cmp <= 0;
	if (!strcmp(op, ">="))
		return cmp >= 0;
	if (!strcmp(op, "<"))
		return cmp < 0;
	if (!strcmp(op, ">"))
		return cmp > 0;
	/* ~=X.Y[.Z]: >= it, and the same release up to its last component. */
	if (n < 2)
		return -1;
	return cmp >= 0 && prefix_equal(have, want, n - 1);
}

int project_python_satisfies(const char *spec, const char *version)
{
	long have[VER_PARTS];
	int star = 0;
	if (!spec || !version || parse_version(version, strlen(version), have, &star) == 0)
		return -1;
	int clauses = 0, ok = 1;
	const char *p = spec;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == 0 || ++clauses > 32)
			return -1;
		int r = clause_satisfied(p, len, have);
		if (r < 0)
			return -1;
		ok &= r;
		if (!end)
			return ok;
		p = end + 1;
	}
}

/* --- static assets --- */

static const char *const html_handling_names[] = {
	[PROJECT_HTML_AUTO_TRAILING_SLASH] = "auto-trailing-slash",
	[PROJECT_HTML_FORCE_TRAILING_SLASH] = "force-trailing-slash",
	[PROJECT_HTML_DROP_TRAILING_SLASH] = "drop-trailing-slash",
	[PROJECT_HTML_NONE] = "none",
};

static const char *const not_found_names[] = {
	[PROJECT_NOT_FOUND_NONE] = "none",
	[PROJECT_NOT_FOUND_SPA] = "single-page-application",
	[PROJECT_NOT_FOUND_404_PAGE] = "404-page",
};

int project_relative_dir_valid(const char *s)
{
	size_t n = strnlen(s, 256);
	if (n == 0 || n > 255 || s[0] == '/' || s[n - 1] == '/')
		return 0;
	const char *p = s;
	while (*p) {
		size_t len = strcspn(p, "/");
		if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)p[i] < 32 || p[i] == '\\' || p[i] == 0x7f)
				return 0;
		p += len;
		if (*p == '/')
			p++;
	}
	return 1;
}

int project_binding_name_valid(const char *s)
{
	size_t n = s ? strnlen(s, 64) : 0;
	if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

void project_assets_dispose(struct project_assets *a)
{
	free(a->directory);
	free(a->binding);
	for (size_t i = 0; i < a->nrules; i++)
		free(a->rules[i]);
	free(a->rules);
	memset(a, 0, sizeof *a);
}

static int name_index(const char *v, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return (int)i;
	return -1;
}

/* wrangler's run_worker_first rules: 0, or -1 with err. */
static int take_rules(struct project_assets *a, const json_t *list, const char *where, char *err,
		      size_t errlen)
{
	size_t n = json_array_size(list), i;
	const json_t *v;
	int positive = 0;
	if (n == 0 || n > PROJECT_ASSETS_MAX_RULES) {
		snprintf(err, errlen,
			 "%s: assets.run_worker_first must list 1 to %d route patterns (it has %zu)",
			 where, PROJECT_ASSETS_MAX_RULES, n);
		return -1;
	}
	a->rules = xcalloc(n, sizeof *a->rules);
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);
		if (!s) {
			snprintf(err, errlen, "%s: assets.run_worker_first patterns must be strings",
				 where);
			return -1;
		}
		size_t len = strlen(s);
		int neg = s[0] == '!';
		if (s[neg] != '/' || len > PROJECT_ASSETS_MAX_RULE_LEN) {
			snprintf(err, errlen,
				 "%s: assets.run_worker_first pattern '%.120s' must start with '/' "
				 "(or '!/' to exclude) and be at most %d characters",
				 where, s, PROJECT_ASSETS_MAX_RULE_LEN);
			return -1;
		}
		for (size_t k = 0; k < len; k++) {
			if ((unsigned char)s[k] < 32 || s[k] == 0x7f) {
				snprintf(err, errlen, "%s: assets.run_worker_first pattern %zu has a "
						      "control character", where, i + 1);
				return -1;
			}
		}
		for (size_t k = 0; k < a->nrules; k++) {
			if (!strcmp(a->rules[k], s)) {
				snprintf(err, errlen,
					 "%s: assets.run_worker_first pattern '%s' is listed twice", where,
					 s);
				return -1;
			}
		}
		positive |= !neg;
		a->rules[a->nrules++] = xstrdup(s);
	}
	if (!positive) {
		snprintf(err, errlen,
			 "%s: assets.run_worker_first has only '!' patterns: add at least one route "
			 "that goes to the worker (such as \"/api/*\")",
			 where);
		return -1;
	}
	return 0;
}

int project_assets_from_json(struct project_assets *a, const json_t *j, int from_file,
			     const char *where, char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	memset(a, 0, sizeof *a);
	if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: 'assets' must be a table with at least 'directory'", where);
		return -1;
	}
	json_object_foreach((json_t *)j, key, v) {
		const char *s = json_string_value(v);
		if (!strcmp(key, "run_worker_first")) {
			if (json_is_boolean(v)) {
				a->run_worker_first = json_is_true(v);
			} else if (json_is_array(v)) {
				if (take_rules(a, v, where, err, errlen) < 0)
					goto fail;
			} else {
				snprintf(err, errlen, "%s: assets.run_worker_first must be true, false "
						      "or a list of route patterns", where);
				goto fail;
			}
			continue;
		}
		if (strcmp(key, "directory") && strcmp(key, "binding") &&
		    strcmp(key, "html_handling") && strcmp(key, "not_found_handling")) {
			snprintf(err, errlen,
				 "%s: assets.%.64s is not a key thaw knows (directory, binding, "
				 "html_handling, not_found_handling, run_worker_first)",
				 where, key);
			goto fail;
		}
		if (!s) {
			snprintf(err, errlen, "%s: assets.%s must be a string", where, key);
			goto fail;
		}
		if (!strcmp(key, "directory")) {
			if (!from_file && !project_relative_dir_valid(s)) {
				snprintf(err, errlen, "%s: assets.directory is not a relative path", where);
				goto fail;
			}
			a->directory = xstrdup(s);
		} else if (!strcmp(key, "binding")) {
			if (!project_binding_name_valid(s)) {
				snprintf(err, errlen,
					 "%s: assets.binding '%.64s' is not a valid name: use letters, "
					 "digits and '_' (such as \"ASSETS\")",
					 where, s);
				goto fail;
			}
			a->binding = xstrdup(s);
		} else if (!strcmp(key, "html_handling")) {
			int i = name_index(s, html_handling_names, 4);
			if (i < 0) {
				snprintf(err, errlen,
					 "%s: assets.html_handling '%.64s' is not one of "
					 "auto-trailing-slash, force-trailing-slash, drop-trailing-slash, "
					 "none",
					 where, s);
				goto fail;
			}
			a->html_handling = (enum project_html_handling)i;
		} else {
			int i = name_index(s, not_found_names, 3);
			if (i < 0) {
				snprintf(err, errlen,
					 "%s: assets.not_found_handling '%.64s' is not one of "
					 "single-page-application, 404-page, none",
					 where, s);
				goto fail;
			}
			a->not_found_handling = (enum project_not_found_handling)i;
		}
	}
	if (!a->directory) {
		snprintf(err, errlen, "%s: assets.directory is required (the folder of files to "
				      "serve, such as \"./public\")", where);
		goto fail;
	}
	return 0;
fail:
	project_assets_dispose(a);
	return -1;
}

json_t *project_assets_to_json(const struct project_assets *a)
{
	if (!a->directory)
		return NULL;
	json_t *j = json_pack("{s:s, s:s, s:s}", "directory", a->directory, "html_handling",
			      html_handling_names[a->html_handling], "not_found_handling",
			      not_found_names[a->not_found_handling]);
	if (!j)
		fatal("cannot encode a project");
	if (a->binding)
		json_object_set_new(j, "binding", json_string(a->binding));
	if (a->rules) {
		json_t *list = json_array();
		for (size_t i = 0; i < a->nrules; i++)
			json_array_append_new(list, json_string(a->rules[i]));
		json_object_set_new(j, "run_worker_first", list);
	} else {
		json_object_set_new(j, "run_worker_first", json_boolean(a->run_worker_first));
	}
	return j;
}
