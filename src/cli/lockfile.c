/*
 * Lockfile -> requirement strings (see lockfile.h).
 *
 * uv.lock is a universal lock: it holds every package any platform may need,
 * linked by [package].dependencies edges that carry environment markers
 * ("colorama ; sys_platform == 'win32'"). Installing every entry would pull in
 * other platforms' packages, some of which do not install here at all, so we
 * walk the graph from the project's own entries (editable or virtual sources)
 * and give each package the markers of the edges that reach it, joined by
 * "or"; one edge without a marker makes it unconditional. The installer then
 * evaluates the markers for this Python. A marker is not narrowed by its
 * parent's: a package reached only through a conditional parent may be
 * installed where it is not needed (never the reverse).
 *
 * pylock.toml (PEP 751) is already one environment's list with a marker per
 * package: each entry becomes one requirement.
 *
 * Every string a lockfile gives is checked (names, versions, URLs, commits)
 * and every requirement passes thaw_requirement_valid before it is returned.
 */
#include "cli/lockfile.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"

#define MAX_MARKERS_PER_PACKAGE 32

void thaw_reqs_add(struct thaw_reqs *r, const char *s)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, r->cap * sizeof *r->v);
	}
	r->v[r->n++] = xstrdup(s);
}

void thaw_reqs_dispose(struct thaw_reqs *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i]);
	free(r->v);
	memset(r, 0, sizeof *r);
}

int thaw_requirement_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > REQUIREMENT_MAX_BYTES || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

int thaw_dist_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 200 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

/* Next normalised character of a name: lower case, runs of -_. as one '-'. */
static char name_next(const char **p)
{
	const char *s = *p;
	if (!*s)
		return 0;
	if (*s == '-' || *s == '_' || *s == '.') {
		while (*s == '-' || *s == '_' || *s == '.')
			s++;
		*p = s;
		return '-';
	}
	*p = s + 1;
	return (char)tolower((unsigned char)*s);
}

int thaw_dist_name_equal(const char *a, const char *b)
{
	for (;;) {
		char x = name_next(&a), y = name_next(&b);
		if (x != y)
			return 0;
		if (!x)
			return 1;
	}
}

/* PEP 440 versions, public and local: letters, digits and .!+_- . */
static int version_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128 || !isalnum((unsigned char)s[0]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(".!+_-", s[i]))
			return 0;
	return 1;
}

/* A URL for a direct reference: a known scheme, no spaces or control bytes. */
static int url_valid(const char *s)
{
	static const char *const schemes[] = {"https://", "http://", "file://", "git+https://",
					      "git+ssh://", "git+file://", "ssh://", "git://"};
	size_t n = strlen(s);
	int known = 0;
	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		known |= !strncmp(s, schemes[i], strlen(schemes[i]));
	if (!known || n > 2048)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int commit_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 7 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* "file://" + the absolute path of rel under dir, percent-encoded. Returns
 * new, or NULL when rel has a byte no path should (control bytes). */
static char *file_url(const char *dir, const char *rel)
{
	struct buf b = {0};
	buf_append(&b, "file://", 7);
	const char *parts[2] = {rel[0] == '/' ? "" : dir, rel};
	for (int k = 0; k < 2; k++) {
		if (k == 1 && rel[0] != '/')
			buf_append(&b, "/", 1);
		for (const char *p = parts[k]; *p; p++) {
			unsigned char c = (unsigned char)*p;
			if (c < 0x20 || c == 0x7f) {
				buf_free(&b);
				return NULL;
			}
			if (isalnum(c) || strchr("-._~/", c)) {
				buf_append(&b, &c, 1);
			} else {
				char esc[4];
				snprintf(esc, sizeof esc, "%%%02X", c);
				buf_append(&b, esc, 3);
			}
		}
	}
	buf_append(&b, "", 1);
	return (char *)b.data;
}

/* "git+URL@COMMIT[#subdirectory=S]" from uv.lock's
 * "URL?rev=..&subdirectory=S#COMMIT". Returns new, or NULL. */
static char *uv_git_url(const char *s)
{
	const char *hash = strrchr(s, '#');
	if (!hash || !commit_valid(hash + 1))
		return NULL;
	const char *q = memchr(s, '?', (size_t)(hash - s));
	size_t base_len = (size_t)((q ? q : hash) - s);
	char *base = xasprintf("git+%.*s", (int)base_len, s);
	const char *sub = NULL;
	size_t sub_len = 0;
	for (const char *p = q; p && p < hash; p = memchr(p + 1, '&', (size_t)(hash - p - 1))) {
		if (!strncmp(p + 1, "subdirectory=", 13)) {
			sub = p + 14;
			const char *e = memchr(sub, '&', (size_t)(hash - sub));
			sub_len = (size_t)((e ? e : hash) - sub);
		}
	}
	char *out = sub ? xasprintf("%s@%s#subdirectory=%.*s", base, hash + 1, (int)sub_len, sub)
			: xasprintf("%s@%s", base, hash + 1);
	free(base);
	if (!url_valid(out)) {
		free(out);
		return NULL;
	}
	return out;
}

/* --- uv.lock --- */

struct uv_pkg {
	json_t *obj; /* borrowed */
	const char *name;
	int local;   /* editable or virtual: the project or a workspace member */
	int reached;
	int uncond;
	json_t *markers;     /* array of strings, new */
	json_t *extras_done; /* object: extra -> true, new */
};

static const char *str_field(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Add the edge marker m (NULL: none) to p. */
static void add_marker(struct uv_pkg *p, const char *m)
{
	if (!m || !*m) {
		p->uncond = 1;
		return;
	}
	size_t i;
	json_t *v;
	json_array_foreach(p->markers, i, v)
		if (!strcmp(json_string_value(v), m))
			return;
	if (json_array_size(p->markers) >= MAX_MARKERS_PER_PACKAGE)
		p->uncond = 1; /* more cases than we keep: install it */
	else
		json_array_append_new(p->markers, json_string(m));
}

struct uv_walk {
	struct uv_pkg *pkgs;
	size_t n;
	size_t *queue;
	size_t qlen;
	char *err;
	size_t errlen;
};

static int uv_follow(struct uv_walk *w, const char *from, const json_t *edges);

/* Follow one dependency edge from package `from`. */
static int uv_edge(struct uv_walk *w, const char *from, const json_t *dep)
{
	const char *name = str_field(dep, "name");
	const char *version = str_field(dep, "version");
	const char *marker = str_field(dep, "marker");
	if (!json_is_object(dep) || !name) {
		err_set(w->err, w->errlen, "package %s: a dependency without a name", from);
		return -1;
	}
	if (json_object_get(dep, "marker") && !marker) {
		err_set(w->err, w->errlen, "package %s: the marker of %.100s must be a string", from,
		     name);
		return -1;
	}
	json_t *extras = json_object_get(dep, "extra");
	if (extras && !json_is_array(extras)) {
		err_set(w->err, w->errlen, "package %s: the extras of %s must be a list", from, name);
		return -1;
	}
	int found = 0;
	for (size_t i = 0; i < w->n; i++) {
		struct uv_pkg *t = &w->pkgs[i];
		const char *tv = str_field(t->obj, "version");
		if (!thaw_dist_name_equal(t->name, name))
			continue;
		if (version && strcmp(version, tv ? tv : "") != 0)
			continue;
		found = 1;
		add_marker(t, marker);
		if (!t->reached) {
			t->reached = 1;
			w->queue[w->qlen++] = i;
		}
		size_t k;
		json_t *x;
		json_array_foreach(extras, k, x) {
			const char *extra = json_string_value(x);
			if (!extra) {
				err_set(w->err, w->errlen, "package %s: an extra of %.100s is not "
				     "a string", from, name);
				return -1;
			}
			if (json_object_get(t->extras_done, extra))
				continue;
			json_object_set_new(t->extras_done, extra, json_true());
			json_t *optional = json_object_get(t->obj, "optional-dependencies");
			json_t *opt = json_object_get(optional, extra);
			if (opt && uv_follow(w, t->name, opt) < 0)
				return -1;
		}
	}
	if (!found) {
		err_set(w->err, w->errlen, "package %s depends on %.100s%s%.100s, which the lock does "
		     "not hold", from, name, version ? " " : "", version ? version : "");
		return -1;
	}
	return 0;
}

static int uv_follow(struct uv_walk *w, const char *from, const json_t *edges)
{
	if (!edges)
		return 0;
	if (!json_is_array(edges)) {
		err_set(w->err, w->errlen, "package %s: dependencies must be a list", from);
		return -1;
	}
	size_t i;
	json_t *dep;
	json_array_foreach(edges, i, dep)
		if (uv_edge(w, from, dep) < 0)
			return -1;
	return 0;
}

/* The requirement that installs uv.lock package p. Returns new, or NULL with err. */
static char *uv_spec(const struct uv_pkg *p, const char *project_dir, char *err, size_t errlen)
{
	const json_t *src = json_object_get(p->obj, "source");
	const char *version = str_field(p->obj, "version");
	const char *v;
	char *ref = NULL;
	if (!src || json_object_get(src, "registry")) {
		if (!version || !version_valid(version)) {
			err_set(err, errlen, "package %s: missing or invalid version", p->name);
			return NULL;
		}
		return xasprintf("%s==%s", p->name, version);
	}
	if ((v = str_field(src, "url"))) {
		if (url_valid(v))
			ref = xstrdup(v);
	} else if ((v = str_field(src, "path")) || (v = str_field(src, "directory"))) {
		ref = file_url(project_dir, v);
	} else if ((v = str_field(src, "git"))) {
		ref = uv_git_url(v);
	} else {
		err_set(err, errlen, "package %s: a source thaw does not know", p->name);
		return NULL;
	}
	if (!ref) {
		err_set(err, errlen, "package %s: invalid source '%s'", p->name, v);
		return NULL;
	}
	char *out = xasprintf("%s @ %s", p->name, ref);
	free(ref);
	return out;
}

static int uv_requirements(const json_t *lock, const char *project_name, const char *project_dir,
			   struct thaw_reqs *out, char *err, size_t errlen)
{
	json_t *ver = json_object_get(lock, "version");
	if (!json_is_integer(ver) || json_integer_value(ver) != 1) {
		err_set(err, errlen, "lock format version %s is not supported (thaw reads version 1)",
		     json_is_integer(ver) ? "other than 1" : "missing");
		return -1;
	}
	const json_t *list = json_object_get(lock, "package");
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > LOCK_MAX_PACKAGES) {
		err_set(err, errlen, "[[package]] must be a list of at most %d tables",
		     LOCK_MAX_PACKAGES);
		return -1;
	}
	struct uv_walk w = {.n = json_array_size(list), .err = err, .errlen = errlen};
	w.pkgs = xcalloc(w.n + 1, sizeof *w.pkgs);
	w.queue = xcalloc(w.n + 1, sizeof *w.queue);
	int rc = -1, have_root = 0, named_root = 0;
	for (size_t i = 0; i < w.n; i++) {
		struct uv_pkg *p = &w.pkgs[i];
		p->obj = json_array_get(list, i);
		p->markers = json_array();
		p->extras_done = json_object();
		p->name = str_field(p->obj, "name");
		if (!json_is_object(p->obj) || !p->name || !thaw_dist_name_valid(p->name)) {
			err_set(err, errlen, "package %zu: missing or invalid name", i + 1);
			goto out;
		}
		const json_t *src = json_object_get(p->obj, "source");
		if (src && !json_is_object(src)) {
			err_set(err, errlen, "package %s: source must be a table", p->name);
			goto out;
		}
		p->local = json_object_get(src, "editable") || json_object_get(src, "virtual");
		have_root |= p->local;
		named_root |= p->local && project_name &&
			      thaw_dist_name_equal(p->name, project_name);
	}
	/* Start from the project (or, not finding it, every local package). */
	for (size_t i = 0; i < w.n; i++) {
		struct uv_pkg *p = &w.pkgs[i];
		int is_project = project_name && thaw_dist_name_equal(p->name, project_name);
		int root = !have_root || (p->local && (!named_root || is_project));
		if (root) {
			p->reached = 1;
			p->uncond = 1;
			w.queue[w.qlen++] = i;
		}
	}
	if (have_root) {
		/* Each package is queued once, when first reached. */
		for (size_t qi = 0; qi < w.qlen; qi++) {
			struct uv_pkg *p = &w.pkgs[w.queue[qi]];
			if (uv_follow(&w, p->name, json_object_get(p->obj, "dependencies")) < 0)
				goto out;
		}
	}
	for (size_t i = 0; i < w.n; i++) {
		struct uv_pkg *p = &w.pkgs[i];
		if (!p->reached || p->local ||
		    (project_name && thaw_dist_name_equal(p->name, project_name)))
			continue;
		char *spec = uv_spec(p, project_dir, err, errlen);
		if (!spec)
			goto out;
		struct buf b = {0};
		buf_append(&b, spec, strlen(spec));
		free(spec);
		size_t nm = json_array_size(p->markers);
		for (size_t k = 0; !p->uncond && k < nm; k++) {
			const char *m = json_string_value(json_array_get(p->markers, k));
			const char *pre = k == 0 ? " ; " : " or ";
			buf_append(&b, pre, strlen(pre));
			if (nm > 1)
				buf_append(&b, "(", 1);
			buf_append(&b, m, strlen(m));
			if (nm > 1)
				buf_append(&b, ")", 1);
		}
		buf_append(&b, "", 1);
		int ok = thaw_requirement_valid((char *)b.data);
		if (ok)
			thaw_reqs_add(out, (char *)b.data);
		else
			err_set(err, errlen, "package %s: its requirement is not acceptable: %.200s",
			     p->name, (char *)b.data);
		buf_free(&b);
		if (!ok)
			goto out;
	}
	rc = 0;
out:
	for (size_t i = 0; i < w.n; i++) {
		json_decref(w.pkgs[i].markers);
		json_decref(w.pkgs[i].extras_done);
	}
	free(w.pkgs);
	free(w.queue);
	return rc;
}

/* --- pylock.toml (PEP 751) --- */

/* The requirement for one [[packages]] entry; *skip set for the project
 * itself. Returns new, or NULL (with err unless *skip). */
static char *pylock_spec(const json_t *p, const char *name, const char *project_dir, int *skip,
			 char *err, size_t errlen)
{
	const char *version = str_field(p, "version");
	const json_t *vcs = json_object_get(p, "vcs");
	const json_t *dir = json_object_get(p, "directory");
	const json_t *archive = json_object_get(p, "archive");
	char *ref = NULL;
	*skip = 0;
	if (version && !version_valid(version)) {
		err_set(err, errlen, "package %s: invalid version", name);
		return NULL;
	}
	if (dir) {
		const char *path = str_field(dir, "path");
		if (!path) {
			err_set(err, errlen, "package %s: directory without a path", name);
			return NULL;
		}
		if (json_is_true(json_object_get(dir, "editable")) || !strcmp(path, ".")) {
			*skip = 1;
			return NULL;
		}
		ref = file_url(project_dir, path);
	} else if (vcs) {
		const char *type = str_field(vcs, "type"), *url = str_field(vcs, "url");
		const char *commit = str_field(vcs, "commit-id");
		if (!type || strcmp(type, "git") || !url || !commit || !commit_valid(commit)) {
			err_set(err, errlen, "package %s: only git sources with a url and a commit-id "
			     "are supported", name);
			return NULL;
		}
		ref = xasprintf("git+%s@%s", url, commit);
		if (!url_valid(ref)) {
			free(ref);
			ref = NULL;
		}
	} else if (archive) {
		const char *url = str_field(archive, "url"), *path = str_field(archive, "path");
		if (url)
			ref = url_valid(url) ? xstrdup(url) : NULL;
		else if (path)
			ref = file_url(project_dir, path);
	} else {
		if (!version) {
			err_set(err, errlen,
			     "package %s: no version and no vcs/directory/archive source", name);
			return NULL;
		}
		return xasprintf("%s==%s", name, version);
	}
	if (!ref) {
		err_set(err, errlen, "package %s: invalid source", name);
		return NULL;
	}
	char *out = xasprintf("%s @ %s", name, ref);
	free(ref);
	return out;
}

static int pylock_requirements(const json_t *lock, const char *project_name,
			       const char *project_dir, struct thaw_reqs *out, char *err,
			       size_t errlen)
{
	const char *lv = str_field(lock, "lock-version");
	if (!lv || strncmp(lv, "1.", 2) != 0) {
		err_set(err, errlen, "lock-version %s is not supported (thaw reads 1.x)",
		     lv ? lv : "(missing)");
		return -1;
	}
	const json_t *list = json_object_get(lock, "packages");
	if (!list)
		return 0;
	if (!json_is_array(list) || json_array_size(list) > LOCK_MAX_PACKAGES) {
		err_set(err, errlen, "[[packages]] must be a list of at most %d tables",
		     LOCK_MAX_PACKAGES);
		return -1;
	}
	size_t i;
	json_t *p;
	json_array_foreach(list, i, p) {
		const char *name = str_field(p, "name");
		if (!json_is_object(p) || !name || !thaw_dist_name_valid(name)) {
			err_set(err, errlen, "package %zu: missing or invalid name", i + 1);
			return -1;
		}
		if (project_name && thaw_dist_name_equal(name, project_name))
			continue;
		json_t *mj = json_object_get(p, "marker");
		const char *marker = json_string_value(mj);
		if (mj && !marker) {
			err_set(err, errlen, "package %s: marker must be a string", name);
			return -1;
		}
		int skip;
		char *spec = pylock_spec(p, name, project_dir, &skip, err, errlen);
		if (!spec) {
			if (skip)
				continue;
			return -1;
		}
		char *req = marker && *marker ? xasprintf("%s ; %s", spec, marker) : xstrdup(spec);
		free(spec);
		int ok = thaw_requirement_valid(req);
		if (ok)
			thaw_reqs_add(out, req);
		else
			err_set(err, errlen, "package %s: its requirement is not acceptable: %.200s",
			     name, req);
		free(req);
		if (!ok)
			return -1;
	}
	return 0;
}

int thaw_lock_requirements(const json_t *lock, enum thaw_lock_kind kind, const char *project_name,
			   const char *project_dir, struct thaw_reqs *out, char *err, size_t errlen)
{
	if (!json_is_object(lock)) {
		err_set(err, errlen, "the top level must be a table");
		return -1;
	}
	return kind == THAW_LOCK_UV
		       ? uv_requirements(lock, project_name, project_dir, out, err, errlen)
		       : pylock_requirements(lock, project_name, project_dir, out, err, errlen);
}
