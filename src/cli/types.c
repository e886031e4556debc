/*
 * `thaw types`: a typing stub for a worker's env, from its configuration, as
 * `pywrangler types` gives one: every var with the Python type of its value,
 * every secret the local secrets file names (.dev.vars / .env: names only,
 * never values), every binding with its class. Editors and mypy then see
 * `self.env.NAME` as what it is:
 *
 *     from typing import TYPE_CHECKING
 *     if TYPE_CHECKING:
 *         from worker_env import Env
 *
 *     class Default(WorkerEntrypoint):
 *         env: "Env"
 *
 * The stub is written next to the entry module (worker_env.pyi), or to -o
 * FILE; it is replaced atomically and says it is generated.
 *
 * A binding's class (KVNamespace, D1Database, R2Bucket,
 * DurableObjectNamespace, Queue, Fetcher) is imported from the SDK's
 * workers._bindings only when that module defines it (its source is read
 * from the SDK directory, THAW_SDK_DIR); otherwise the member is `Any` with a
 * comment naming the kind, so the stub always passes mypy. A service binding
 * is a Fetcher whose other attributes are the RPC methods of the worker it
 * names: the stub declares it as a Fetcher subclass with __getattr__.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"
#include "project/dotenv.h"
#include "project/project.h"

static const char types_usage[] =
	"usage: thaw types [DIR] [--env NAME] [-o FILE]\n"
	"\n"
	"Write a typing stub for the worker's env (class Env) from its configuration: vars\n"
	"with the types of their values, secrets named in .dev.vars / .env (names only),\n"
	"and bindings (assets, KV, D1, R2, Durable Objects, queues, services). Default\n"
	"FILE: worker_env.pyi next to the\n"
	"entry module, so `from worker_env import Env` works under TYPE_CHECKING.\n"
	"\n"
	"Options:\n"
	"  --env NAME    the configuration's environment NAME ([env.NAME])\n"
	"  -o FILE       where to write the stub (-: standard output)\n"
	"  -h, --help    this help\n";

/* Is s a Python identifier (ASCII) that is not a keyword? */
static int identifier(const char *s)
{
	static const char *const keywords[] = {
		"False", "None", "True", "and", "as", "assert", "async", "await", "break", "class",
		"continue", "def", "del", "elif", "else", "except", "finally", "for", "from", "global",
		"if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise",
		"return", "try", "while", "with", "yield", NULL};
	if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		      (*p >= '0' && *p <= '9')))
			return 0;
	for (const char *const *k = keywords; *k; k++)
		if (!strcmp(*k, s))
			return 0;
	return 1;
}

/* The Python type of a var's JSON value. */
static const char *python_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: return "str";
	case JSON_INTEGER: return "int";
	case JSON_REAL: return "float";
	case JSON_TRUE:
	case JSON_FALSE: return "bool";
	case JSON_NULL: return "None";
	case JSON_ARRAY: return "list[Any]";
	default: return "dict[str, Any]";
	}
}

/* A comment-safe, one-line rendering of s (at most 60 bytes, never cut inside
 * a UTF-8 character: a stub mypy cannot decode is refused whole). */
static void comment_text(struct buf *b, const char *s)
{
	size_t len = strlen(s), n = len > 60 ? 60 : len;
	while (n < len && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--; /* s[n] continues a character: cut before that character */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch = c < 0x20 || c == 0x7f ? ' ' : (char)c;
		buf_append(b, &ch, 1);
	}
	if (n < len)
		buf_append(b, "...", 3);
}

static void line(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct buf *b, const char *fmt, ...)
{
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	buf_append(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* The SDK's workers/_bindings.py (NULL when it cannot be read), to see which
 * binding classes it defines. */
static char *sdk_bindings_source(void)
{
	const char *sdk = getenv("THAW_SDK_DIR");
	char path[PATH_MAX];
	size_t len;
	if (!sdk || !*sdk)
		sdk = THAW_SDK_DIR;
	if ((size_t)snprintf(path, sizeof path, "%s/workers/_bindings.py", sdk) >= sizeof path)
		return NULL;
	return read_file(path, 1u << 20, &len);
}

/* Does source (may be NULL) define class name at the top level? */
static int defines_class(const char *source, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = source; p && (p = strstr(p, "class ")) != NULL; p += 6) {
		if (p != source && p[-1] != '\n')
			continue;
		if (!strncmp(p + 6, name, n) && (p[6 + n] == '(' || p[6 + n] == ':'))
			return 1;
	}
	return 0;
}

/* The binding classes a stub uses: which the SDK has, which p needs. */
enum binding_class { KV_CLASS, D1_CLASS, R2_CLASS, DO_CLASS, QUEUE_CLASS, FETCHER_CLASS, NCLASSES };
static const char *const class_names[NCLASSES] = {
	"KVNamespace", "D1Database", "R2Bucket", "DurableObjectNamespace", "Queue", "Fetcher",
};

/* One binding's line: `NAME: TYPE  # what`, TYPE the class when the SDK has
 * it, else Any (and the comment says which class it will be). 1, or 0 when
 * NAME cannot be a member (a keyword, or shadowed by a method of env). */
static int binding_line(struct buf *b, const char *name, enum binding_class k, const char *type,
			const int have[NCLASSES], const char *what)
{
	if (!identifier(name) || !strcmp(name, "get") || !strcmp(name, "keys")) {
		fprintf(stderr,
			"thaw types: binding '%s' is a Python keyword or a method of env: only "
			"env[\"...\"] reaches it (left out)\n",
			name);
		return 0;
	}
	if (have[k])
		line(b, "    %s: %s  # %s\n", name, type, what);
	else
		line(b, "    %s: Any  # %s (%s: not in this thaw's workers._bindings yet)\n", name,
		     what, class_names[k]);
	return 1;
}

/* The members of Env for p's storage and service bindings; returns how many. */
static int binding_members(struct buf *b, const struct project *p, const int have[NCLASSES])
{
	char what[256];
	int members = 0;
	for (size_t i = 0; i < p->nkv_namespaces; i++) {
		const struct project_kv *kv = &p->kv_namespaces[i];
		snprintf(what, sizeof what, "KV namespace%s%s%s", kv->id ? " (id " : "",
			 kv->id ? kv->id : "", kv->id ? ")" : "");
		members += binding_line(b, kv->binding, KV_CLASS, "KVNamespace", have, what);
	}
	for (size_t i = 0; i < p->nd1_databases; i++) {
		snprintf(what, sizeof what, "D1 database %s", p->d1_databases[i].database_name);
		members += binding_line(b, p->d1_databases[i].binding, D1_CLASS, "D1Database", have,
					what);
	}
	for (size_t i = 0; i < p->nr2_buckets; i++) {
		snprintf(what, sizeof what, "R2 bucket %s", p->r2_buckets[i].bucket_name);
		members +=
			binding_line(b, p->r2_buckets[i].binding, R2_CLASS, "R2Bucket", have, what);
	}
	for (size_t i = 0; i < p->ndurable_objects; i++) {
		const struct project_durable_object *d = &p->durable_objects[i];
		snprintf(what, sizeof what, "Durable Object namespace: class %s%s%s", d->class_name,
			 d->script_name ? " of worker " : "", d->script_name ? d->script_name : "");
		members += binding_line(b, d->name, DO_CLASS, "DurableObjectNamespace", have, what);
	}
	for (size_t i = 0; i < p->nqueue_producers; i++) {
		snprintf(what, sizeof what, "queue %s (producer)", p->queue_producers[i].queue);
		members += binding_line(b, p->queue_producers[i].binding, QUEUE_CLASS, "Queue",
					have, what);
	}
	for (size_t i = 0; i < p->nservices; i++) {
		const struct project_service *s = &p->services[i];
		snprintf(what, sizeof what, "service binding (Fetcher + RPC): worker %s%s%s",
			 s->service, s->entrypoint ? ", entrypoint " : "",
			 s->entrypoint ? s->entrypoint : "");
		members +=
			binding_line(b, s->binding, FETCHER_CLASS, "_ServiceBinding", have, what);
	}
	return members;
}

int cmd_types(int argc, char **argv)
{
	static const struct option opts[] = {
		{"env", required_argument, NULL, 'E'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *env = NULL, *out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'E':
			env = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			fputs(types_usage, stdout);
			return 0;
		default:
			fputs(types_usage, stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fputs(types_usage, stderr);
		return 2;
	}
	const char *dir = optind < argc ? argv[optind] : ".";
	char err[1024], which[64] = "";
	struct project *p = project_load_env(dir, env, err, sizeof err);
	if (!p) {
		fprintf(stderr, "thaw types: %s\n", err);
		return 1;
	}
	json_t *secrets = dotenv_load_dev(p->dir, env, which, sizeof which, err, sizeof err);
	if (!secrets && err[0]) {
		fprintf(stderr, "thaw types: %s\n", err);
		project_free(p);
		return 1;
	}

	struct buf b = {0};
	line(&b, "# Generated by `thaw types` from %s%s%s%s. Do not edit: run it again.\n",
	     p->sources, which[0] ? " and " : "", which, "");
	line(&b, "# Use: `if TYPE_CHECKING: from worker_env import Env`, then annotate `env: Env`.\n");
	/* Which binding classes the stub needs, and which of them the SDK has. */
	char *sdk = sdk_bindings_source();
	int have[NCLASSES] = {0}, need[NCLASSES] = {0};
	need[KV_CLASS] = p->nkv_namespaces > 0;
	need[D1_CLASS] = p->nd1_databases > 0;
	need[R2_CLASS] = p->nr2_buckets > 0;
	need[DO_CLASS] = p->ndurable_objects > 0;
	need[QUEUE_CLASS] = p->nqueue_producers > 0;
	need[FETCHER_CLASS] = p->nservices > 0 || p->assets.binding;
	line(&b, "from typing import Any\n");
	for (int k = 0, n = 0; k < NCLASSES; k++) {
		have[k] = need[k] && defines_class(sdk, class_names[k]);
		if (have[k])
			line(&b, "%s%s", n++ ? ", " : "\nfrom workers._bindings import ",
			     class_names[k]);
		if (k == NCLASSES - 1 && n)
			line(&b, "\n");
	}
	free(sdk);
	if (p->nservices && have[FETCHER_CLASS])
		line(&b, "\n\nclass _ServiceBinding(Fetcher):\n"
			 "    \"\"\"A service binding: fetch() and the RPC methods of its worker's "
			 "entrypoint.\"\"\"\n"
			 "    def __getattr__(self, name: str) -> Any: ...\n");
	line(&b, "\n\nclass Env:\n");
	int members = 0;
	const char *k;
	json_t *v;
	json_object_foreach(p->vars, k, v) {
		if (json_object_get(secrets, k))
			continue; /* the secret replaces it */
		if (!identifier(k) || !strcmp(k, "get") || !strcmp(k, "keys")) {
			/* env.get and env.keys are Env's methods: the var is env["get"]. */
			fprintf(stderr, "thaw types: var '%s' is not a Python name or is a method of env: "
					"only env[\"...\"] reaches it (left out)\n", k);
			continue;
		}
		line(&b, "    %s: %s", k, python_type(v));
		if (json_is_string(v)) {
			buf_append(&b, "  # var: ", 9);
			comment_text(&b, json_string_value(v));
		} else {
			buf_append(&b, "  # var", 7);
		}
		buf_append(&b, "\n", 1);
		members++;
	}
	json_object_foreach(secrets, k, v) {
		if (!identifier(k) || !strcmp(k, "get") || !strcmp(k, "keys"))
			continue;
		line(&b, "    %s: str  # secret (%s)\n", k, which);
		members++;
	}
	if (p->assets.binding) {
		char what[300];
		snprintf(what, sizeof what, "static assets: %s/", p->assets.directory);
		members +=
			binding_line(&b, p->assets.binding, FETCHER_CLASS, "Fetcher", have, what);
	}
	members += binding_members(&b, p, have);
	if (!members)
		line(&b, "    pass\n");
	line(&b, "\n    def __getitem__(self, name: str) -> Any: ...\n");
	line(&b, "    def __contains__(self, name: object) -> bool: ...\n");
	line(&b, "    def get(self, name: str, default: Any = None) -> Any: ...\n");

	char path[PATH_MAX];
	if (out) {
		snprintf(path, sizeof path, "%s", out);
	} else {
		char main_dir[PATH_MAX];
		snprintf(main_dir, sizeof main_dir, "%s", p->main);
		char *slash = strrchr(main_dir, '/');
		if (slash)
			*slash = 0;
		else
			snprintf(main_dir, sizeof main_dir, ".");
		if ((size_t)snprintf(path, sizeof path, "%.2000s/%.2000s/worker_env.pyi", p->dir,
				     main_dir) >= sizeof path) {
			fprintf(stderr, "thaw types: path too long\n");
			buf_free(&b);
			json_decref(secrets);
			project_free(p);
			return 1;
		}
	}
	int rc = 1;
	if (out && !strcmp(out, "-")) { /* -o -: the stub on standard output */
		rc = fwrite(buf_head(&b), 1, buf_used(&b), stdout) == buf_used(&b) &&
				     fflush(stdout) == 0
			     ? 0
			     : 1;
		buf_free(&b);
		json_decref(secrets);
		project_free(p);
		return rc;
	}
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fwrite(buf_head(&b), 1, buf_used(&b), f) != buf_used(&b) || fclose(f) != 0) {
		fprintf(stderr, "thaw types: cannot write %s: %s\n", tmp, strerror(errno));
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		fprintf(stderr, "thaw types: cannot write %s: %s\n", path, strerror(errno));
		unlink(tmp);
	} else {
		printf("Wrote %s (%d member%s of Env)\n", path, members, members == 1 ? "" : "s");
		rc = 0;
	}
	buf_free(&b);
	json_decref(secrets);
	project_free(p);
	return rc;
}
