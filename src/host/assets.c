/*
 * Static assets (assets.h): the path rules, the lookup and the answer. No
 * HTTP library here: front.c turns a reply into a libmicrohttpd response,
 * binding.c into frames.
 */
#include "host/assets.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

struct assets {
	char *root; /* absolute path of the assets directory */
	const struct project_assets *cfg;
};

struct assets *assets_open(const char *project_dir, const struct project_assets *cfg, char *err,
			   size_t errlen)
{
	char *root = xasprintf("%s/%s", project_dir, cfg->directory);
	int fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "the assets directory %s cannot be opened: %s", root,
			 strerror(errno));
		free(root);
		return NULL;
	}
	close(fd);
	struct assets *a = xcalloc(1, sizeof *a);
	a->root = root;
	a->cfg = cfg;
	return a;
}

void assets_free(struct assets *a)
{
	if (!a)
		return;
	free(a->root);
	free(a);
}

void assets_reply_dispose(struct assets_reply *rp)
{
	if (rp->fd >= 0)
		close(rp->fd);
	rp->fd = -1;
	free(rp->location);
	rp->location = NULL;
}

/* --- pure parts --- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int assets_path_normalize(const char *target, char *out, size_t outlen)
{
	if (!target || target[0] != '/' || outlen < 2)
		return -1;
	size_t o = 0;
	unsigned depth = 0;
	const char *p = target + 1;
	out[o++] = '/';
	for (;;) {
		/* One component: decode it into out at o, then judge it. */
		size_t start = o;
		while (*p && *p != '/' && *p != '?' && *p != '#') {
			unsigned char c = (unsigned char)*p;
			if (c == '%') {
				int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
				if (lo < 0)
					return -1;
				c = (unsigned char)(hi << 4 | lo);
				p += 3;
				if (c == '/')
					return -1; /* an encoded slash is not a separator here */
			} else {
				p++;
			}
			if (c < 0x20 || c == 0x7f || c == '\\')
				return -1;
			if (o + 1 >= outlen || o + 1 > ASSETS_PATH_MAX ||
			    o - start >= ASSETS_COMPONENT_MAX)
				return -1;
			out[o++] = (char)c;
		}
		size_t len = o - start;
		int last = *p != '/';
		if (len == 2 && out[start] == '.' && out[start + 1] == '.')
			return -1;
		if (len == 1 && out[start] == '.')
			o = start, len = 0; /* "." is nothing */
		if (len > 0) {
			if (++depth > ASSETS_DEPTH_MAX)
				return -1;
			if (!last) {
				if (o + 1 >= outlen)
					return -1;
				out[o++] = '/';
			}
		}
		if (last)
			break;
		p++; /* the '/'; an empty component (a "//") collapses */
	}
	out[o] = 0;
	return 0;
}

/* Cloudflare's asset server takes the type wrangler's `mime` lookup gives a
 * file's extension, adding "; charset=utf-8" to text/ types. */
static const struct {
	const char *ext;
	const char *type;
} content_types[] = {
	{"html", "text/html; charset=utf-8"},
	{"htm", "text/html; charset=utf-8"},
	{"shtml", "text/html; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"cjs", "application/node"},
	{"json", "application/json"},
	{"map", "application/json"},
	{"jsonld", "application/ld+json"},
	{"webmanifest", "application/manifest+json"},
	{"xml", "application/xml"},
	{"xsl", "application/xml"},
	{"rss", "application/rss+xml"},
	{"atom", "application/atom+xml"},
	{"txt", "text/plain; charset=utf-8"},
	{"text", "text/plain; charset=utf-8"},
	{"md", "text/markdown; charset=utf-8"},
	{"markdown", "text/markdown; charset=utf-8"},
	{"csv", "text/csv; charset=utf-8"},
	{"ics", "text/calendar; charset=utf-8"},
	{"vtt", "text/vtt; charset=utf-8"},
	{"yaml", "text/yaml; charset=utf-8"},
	{"yml", "text/yaml; charset=utf-8"},
	{"ico", "image/vnd.microsoft.icon"},
	{"png", "image/png"},
	{"apng", "image/apng"},
	{"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"},
	{"jpe", "image/jpeg"},
	{"gif", "image/gif"},
	{"webp", "image/webp"},
	{"avif", "image/avif"},
	{"svg", "image/svg+xml"},
	{"svgz", "image/svg+xml"},
	{"bmp", "image/bmp"},
	{"tif", "image/tiff"},
	{"tiff", "image/tiff"},
	{"heic", "image/heic"},
	{"heif", "image/heif"},
	{"jxl", "image/jxl"},
	{"woff", "font/woff"},
	{"woff2", "font/woff2"},
	{"ttf", "font/ttf"},
	{"otf", "font/otf"},
	{"eot", "application/vnd.ms-fontobject"},
	{"wasm", "application/wasm"},
	{"pdf", "application/pdf"},
	{"zip", "application/zip"},
	{"gz", "application/gzip"},
	{"tar", "application/x-tar"},
	{"wav", "audio/wav"},
	{"mp3", "audio/mpeg"},
	{"m4a", "audio/mp4"},
	{"aac", "audio/aac"},
	{"ogg", "audio/ogg"},
	{"oga", "audio/ogg"},
	{"opus", "audio/ogg"},
	{"flac", "audio/flac"},
	{"weba", "audio/webm"},
	{"mp4", "video/mp4"},
	{"m4v", "video/mp4"},
	{"webm", "video/webm"},
	{"ogv", "video/ogg"},
	{"mov", "video/quicktime"},
	{"mpeg", "video/mpeg"},
	{"mpg", "video/mpeg"},
	{"avi", "video/x-msvideo"},
	{"glb", "model/gltf-binary"},
	{"gltf", "model/gltf+json"},
	{"epub", "application/epub+zip"},
	{"rtf", "application/rtf"},
	{"doc", "application/msword"},
	{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	{"xls", "application/vnd.ms-excel"},
	{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	{"ppt", "application/vnd.ms-powerpoint"},
	{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
	{"bin", "application/octet-stream"},
};

const char *assets_content_type(const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	const char *dot = strrchr(base, '.');
	if (dot && dot[1]) {
		for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
			if (!strcasecmp(dot + 1, content_types[i].ext))
				return content_types[i].type;
	}
	return "application/octet-stream";
}

/* A decimal number of at most 19 digits at *p, advancing it; -1 if none. */
static int range_number(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;
	int n = 0;
	while (*s >= '0' && *s <= '9') {
		if (++n > 19)
			return -1;
		x = x * 10 + (uint64_t)(*s++ - '0');
	}
	if (n == 0)
		return -1;
	*v = x;
	*p = s;
	return 0;
}

int assets_range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len)
{
	if (!header)
		return ASSETS_RANGE_NONE;
	const char *p = header;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, "bytes", 5) != 0)
		return ASSETS_RANGE_NONE;
	p += 5;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p++ != '=')
		return ASSETS_RANGE_NONE;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strchr(p, ','))
		return ASSETS_RANGE_NONE; /* several ranges: the whole file */
	uint64_t first = 0, last = 0;
	int suffix = *p == '-';
	if (suffix) {
		p++;
		if (range_number(&p, &last) < 0)
			return ASSETS_RANGE_NONE;
	} else {
		if (range_number(&p, &first) < 0 || *p++ != '-')
			return ASSETS_RANGE_NONE;
		if (*p >= '0' && *p <= '9') {
			if (range_number(&p, &last) < 0 || last < first)
				return ASSETS_RANGE_NONE;
		} else {
			last = UINT64_MAX;
		}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return ASSETS_RANGE_NONE;
	if (suffix) {
		if (last == 0 || size == 0)
			return ASSETS_RANGE_UNSATISFIABLE;
		uint64_t n = last < size ? last : size;
		*start = size - n;
		*len = n;
		return ASSETS_RANGE_OK;
	}
	if (first >= size)
		return ASSETS_RANGE_UNSATISFIABLE;
	if (last >= size)
		last = size - 1;
	*start = first;
	*len = last - first + 1;
	return ASSETS_RANGE_OK;
}

int assets_etag_matches(const char *if_none_match, const char *etag)
{
	if (!if_none_match || !etag || !etag[0])
		return 0;
	size_t elen = strlen(etag);
	const char *p = if_none_match;
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			return 0;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return 0; /* malformed: no match */
		const char *end = strchr(p + 1, '"');
		if (!end)
			return 0;
		size_t n = (size_t)(end - p) + 1;
		if (n == elen && !memcmp(p, etag, n))
			return 1;
		p = end + 1;
	}
}

int assets_rule_matches(const char *pat, const char *path)
{
	/* Glob with '*' only: iterative, with one backtracking point, so a
	 * hostile path costs O(len(pat) * len(path)) at worst. */
	const char *star = NULL, *resume = NULL;
	while (*path) {
		if (*pat == '*') {
			star = pat++;
			resume = path;
		} else if (*pat == *path) {
			pat++;
			path++;
		} else if (star) {
			pat = star + 1;
			path = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == 0;
}

int assets_worker_first(const struct project_assets *cfg, const char *path)
{
	if (!cfg->rules)
		return cfg->run_worker_first;
	int positive = 0;
	for (size_t i = 0; i < cfg->nrules; i++) {
		const char *r = cfg->rules[i];
		if (r[0] == '!') {
			if (assets_rule_matches(r + 1, path))
				return 0; /* an exclusion wins */
		} else if (!positive) {
			positive = assets_rule_matches(r, path);
		}
	}
	return positive;
}

/* --- the lookup --- */

/* Files wrangler never uploads: the assets' own configuration. */
static int reserved_name(const char *rel)
{
	return !strcmp(rel, ".assetsignore") || !strcmp(rel, "_headers") ||
	       !strcmp(rel, "_redirects") || !strcmp(rel, "_routes.json") ||
	       !strcmp(rel, "_worker.js");
}

/* Open rel (relative, normalised) beneath dirfd without following a
 * symlink out of it; fd or -1. */
static int open_beneath(int dirfd, const char *rel)
{
#ifdef SYS_openat2
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
	if (fd >= 0 || errno != ENOSYS)
		return fd;
#endif
	/* No openat2: no symlink at all, one component at a time. */
	char part[ASSETS_COMPONENT_MAX + 1];
	int cur = dup(dirfd);
	const char *p = rel;
	while (cur >= 0) {
		size_t len = strcspn(p, "/");
		if (len == 0 || len > ASSETS_COMPONENT_MAX) {
			close(cur);
			return -1;
		}
		memcpy(part, p, len);
		part[len] = 0;
		int last = p[len] == 0;
		int next = openat(cur, part,
				  last ? O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW
				       : O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		close(cur);
		if (last || next < 0)
			return next;
		cur = next;
		p += len + 1;
	}
	return -1;
}

/* A regular file at path (normalised, absolute in the assets): fd with *st,
 * or -1. */
static int find_file(int dirfd, const char *path, struct stat *st)
{
	const char *rel = path[0] == '/' ? path + 1 : path;
	if (!*rel || reserved_name(rel))
		return -1;
	int fd = open_beneath(dirfd, rel);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && !strcmp(s + n - k, suffix);
}

/* What a lookup found: a file (fd), a redirect (location), or nothing. */
struct found {
	int fd;
	struct stat st;
	char file[ASSETS_PATH_MAX + 16]; /* the file's path, for its type */
	char redirect[ASSETS_PATH_MAX + 16]; /* the canonical path, "" when none */
};

/* Try path + suffix as a file; 1 when it is one (f filled). */
static int try_file(int dirfd, const char *path, size_t plen, const char *suffix, struct found *f)
{
	if (snprintf(f->file, sizeof f->file, "%.*s%s", (int)plen, path, suffix) >=
	    (int)sizeof f->file)
		return 0;
	f->fd = find_file(dirfd, f->file, &f->st);
	return f->fd >= 0;
}

/* Does path + suffix exist (as a file)? */
static int exists(int dirfd, const char *path, size_t plen, const char *suffix)
{
	struct found f;
	if (!try_file(dirfd, path, plen, suffix, &f))
		return 0;
	close(f.fd);
	return 1;
}

static int redirect(struct found *f, const char *path, size_t plen, const char *suffix)
{
	snprintf(f->redirect, sizeof f->redirect, "%.*s%s", (int)plen, path, suffix);
	return 1;
}

/* html_handling's rules for a normalised path: 1 with a file or a redirect
 * in f, 0 when nothing matches. */
static int lookup(int dirfd, enum project_html_handling mode, const char *p, struct found *f)
{
	size_t n = strlen(p);
	f->fd = -1;
	f->redirect[0] = 0;
	int slash = p[n - 1] == '/';
	if (mode == PROJECT_HTML_NONE)
		return try_file(dirfd, p, n, "", f);
	if (ends_with(p, "/index.html") || ends_with(p, "/index")) {
		/* .../index(.html): canonical is the folder, with or without
		 * its slash, when the index exists. */
		size_t dir = n - (ends_with(p, "/index") ? 5 : 10); /* keeps the '/' */
		if (!exists(dirfd, p, dir, "index.html"))
			goto plain;
		if (mode == PROJECT_HTML_DROP_TRAILING_SLASH && dir > 1)
			return redirect(f, p, dir - 1, "");
		return redirect(f, p, dir, "");
	}
	if (ends_with(p, ".html") && n > 6 && p[n - 6] != '/') {
		/* /file.html: canonical is /file (or /file/ when forced). */
		if (!exists(dirfd, p, n, ""))
			goto plain;
		return redirect(f, p, n - 5, mode == PROJECT_HTML_FORCE_TRAILING_SLASH ? "/" : "");
	}
	if (slash) {
		if (n == 1)
			return try_file(dirfd, p, n, "index.html", f);
		if (mode == PROJECT_HTML_DROP_TRAILING_SLASH) {
			if (exists(dirfd, p, n - 1, ".html") || exists(dirfd, p, n, "index.html"))
				return redirect(f, p, n - 1, "");
			return 0;
		}
		if (try_file(dirfd, p, n, "index.html", f))
			return 1;
		if (mode == PROJECT_HTML_FORCE_TRAILING_SLASH)
			return try_file(dirfd, p, n - 1, ".html", f);
		if (exists(dirfd, p, n - 1, ".html"))
			return redirect(f, p, n - 1, "");
		return 0;
	}
plain:
	if (try_file(dirfd, p, n, "", f))
		return 1;
	if (slash)
		return 0;
	if (mode == PROJECT_HTML_FORCE_TRAILING_SLASH) {
		if (exists(dirfd, p, n, ".html") || exists(dirfd, p, n, "/index.html"))
			return redirect(f, p, n, "/");
		return 0;
	}
	if (try_file(dirfd, p, n, ".html", f))
		return 1;
	if (exists(dirfd, p, n, "/index.html")) {
		if (mode == PROJECT_HTML_DROP_TRAILING_SLASH)
			return try_file(dirfd, p, n, "/index.html", f);
		return redirect(f, p, n, "/");
	}
	return 0;
}

/* The nearest 404.html from path's folder up to the root; 1 with f. */
static int find_404(int dirfd, const char *path, struct found *f)
{
	size_t n = strlen(path);
	while (n > 0) {
		while (n > 0 && path[n - 1] != '/')
			n--; /* keep the folder with its '/' */
		if (n == 0)
			break;
		if (try_file(dirfd, path, n, "404.html", f))
			return 1;
		n--; /* drop the '/' and go up */
	}
	return 0;
}

static void etag_of(const struct stat *st, char out[24])
{
	uint64_t h = 0xcbf29ce484222325ull;
	uint64_t parts[] = {(uint64_t)st->st_dev, (uint64_t)st->st_ino, (uint64_t)st->st_size,
			    (uint64_t)st->st_mtim.tv_sec, (uint64_t)st->st_mtim.tv_nsec};
	const unsigned char *b = (const unsigned char *)parts;
	for (size_t i = 0; i < sizeof parts; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

static int answer_text(struct assets_reply *rp, unsigned status, const char *text)
{
	rp->status = status;
	rp->text = text;
	rp->content_type = text ? "text/plain; charset=utf-8" : NULL;
	return ASSETS_ANSWER;
}

/* Answer with file f (taken) at status, applying conditionals and ranges. */
static int answer_file(const struct assets_request *rq, struct assets_reply *rp, struct found *f,
		       unsigned status)
{
	rp->fd = f->fd;
	f->fd = -1;
	rp->size = (uint64_t)f->st.st_size;
	rp->offset = 0;
	rp->length = rp->size;
	rp->status = status;
	rp->content_type = assets_content_type(f->file);
	etag_of(&f->st, rp->etag);
	rp->cache_control = !rq->has_authorization && !rq->range;
	if (status != 200)
		return ASSETS_ANSWER;
	rp->accept_ranges = 1;
	if (assets_etag_matches(rq->if_none_match, rp->etag)) {
		rp->status = 304;
		close(rp->fd);
		rp->fd = -1;
		rp->length = 0;
		return ASSETS_ANSWER;
	}
	uint64_t start, len;
	switch (assets_range_parse(rq->range, rp->size, &start, &len)) {
	case ASSETS_RANGE_OK:
		rp->status = 206;
		rp->offset = start;
		rp->length = len;
		snprintf(rp->content_range, sizeof rp->content_range, "bytes %llu-%llu/%llu",
			 (unsigned long long)start, (unsigned long long)(start + len - 1),
			 (unsigned long long)rp->size);
		break;
	case ASSETS_RANGE_UNSATISFIABLE:
		rp->status = 416;
		close(rp->fd);
		rp->fd = -1;
		rp->length = 0;
		rp->content_type = NULL;
		snprintf(rp->content_range, sizeof rp->content_range, "bytes */%llu",
			 (unsigned long long)rp->size);
		break;
	default:
		break;
	}
	return ASSETS_ANSWER;
}

/* A decoded path as it goes in a Location header: bytes other than
 * unreserved ones, '/' and sub-delimiters percent-encoded (returns new). */
static char *encode_path(const char *path)
{
	static const char safe[] = "-._~/!$&'()*+,;=:@";
	char *out = xmalloc(strlen(path) * 3 + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr(safe, *p))
			*o++ = (char)*p;
		else
			o += sprintf(o, "%%%02X", *p);
	}
	*o = 0;
	return out;
}

/* The target's query string ("?..." or ""), for redirects. */
static const char *query_of(const char *target)
{
	const char *q = strchr(target, '?');
	if (!q)
		return "";
	const char *hash = strchr(target, '#');
	return hash && hash < q ? "" : q;
}

int assets_answer(struct assets *a, const struct assets_request *rq, struct assets_reply *rp)
{
	const struct project_assets *cfg = a->cfg;
	memset(rp, 0, sizeof *rp);
	rp->fd = -1;
	int get = !strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD");
	if (!rq->binding && !get)
		return ASSETS_TO_WORKER;
	char path[ASSETS_PATH_MAX + 1];
	int normal = assets_path_normalize(rq->target, path, sizeof path) == 0;
	if (!rq->binding) {
		/* run_worker_first sees the decoded path, or the raw one when it
		 * cannot be decoded (that request goes to the worker anyway). */
		char raw[ASSETS_PATH_MAX + 1];
		const char *seen = path;
		if (!normal) {
			snprintf(raw, sizeof raw, "%.*s", (int)strcspn(rq->target, "?#"), rq->target);
			seen = raw;
		}
		if (assets_worker_first(cfg, seen) || !normal)
			return ASSETS_TO_WORKER;
	}
	if (!get)
		return answer_text(rp, 405, "Method Not Allowed");
	if (!normal)
		return answer_text(rp, 404, "Not Found");

	int dirfd = open(a->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return rq->binding ? answer_text(rp, 404, "Not Found") : ASSETS_TO_WORKER;
	struct found f;
	int rc = ASSETS_TO_WORKER;
	if (lookup(dirfd, cfg->html_handling, path, &f)) {
		if (f.redirect[0]) {
			rp->status = 307;
			char *enc = encode_path(f.redirect);
			rp->location = xasprintf("%s%s", enc, query_of(rq->target));
			free(enc);
			rc = ASSETS_ANSWER;
		} else {
			rc = answer_file(rq, rp, &f, 200);
		}
	} else if (rq->binding || (rq->sec_fetch_mode && !strcasecmp(rq->sec_fetch_mode, "navigate"))) {
		if (cfg->not_found_handling == PROJECT_NOT_FOUND_SPA &&
		    try_file(dirfd, "/", 1, "index.html", &f))
			rc = answer_file(rq, rp, &f, 200);
		else if (cfg->not_found_handling == PROJECT_NOT_FOUND_404_PAGE &&
			 find_404(dirfd, path, &f))
			rc = answer_file(rq, rp, &f, 404);
		else if (rq->binding)
			rc = answer_text(rp, 404, NULL);
	}
	close(dirfd);
	return rc;
}
