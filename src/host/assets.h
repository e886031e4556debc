/*
 * Static assets: the files of a project's `assets.directory`, served by the
 * host without an instance (the front, before a request reaches the pool)
 * and to the worker through its assets binding (binding.c). The rules
 * follow Cloudflare's Workers static assets; docs/cloudflare-compat.md says
 * what a user sees.
 *
 * A REQUEST'S WAY (assets_answer)
 *   1. Which side first (front only): a method other than GET or HEAD, or a
 *      path that run_worker_first claims (true, or a pattern that matches and
 *      no "!" pattern that matches), goes to the worker.
 *   2. The path: the request target's path, percent-decoded and normalised
 *      by assets_path_normalize. A path it refuses ("..", an encoded '/',
 *      '\\' or NUL, a control byte, over the limits) is never looked up: the
 *      worker gets it (the front) or it is 404 (the binding).
 *   3. The lookup, by html_handling: the exact file, "P.html", "P/index.html",
 *      or a 307 to the canonical form of the path (the query kept).
 *   4. Not found: the front hands the request to the worker unless it is a
 *      navigation (Sec-Fetch-Mode: navigate) and not_found_handling gives a
 *      page (/index.html with 200, or the nearest 404.html with 404). The
 *      binding applies not_found_handling to any request, else answers 404.
 *   5. Found: If-None-Match with the file's ETag -> 304; a single satisfiable
 *      Range -> 206 (unsatisfiable: 416; several ranges: the whole file).
 *
 * CONFINEMENT
 *   Files are opened relative to the assets directory with openat2's
 *   RESOLVE_BENEATH (symlinks may not lead out of it; without openat2, each
 *   component is opened with O_NOFOLLOW), O_NONBLOCK (a FIFO must not block
 *   the loop) and must be regular files. The directory itself is opened again
 *   for every lookup, so `thaw dev` sees a rebuilt directory at once.
 *
 * ETAGS are strong: a hash of the file's device, inode, size and
 * modification time (in nanoseconds), so no byte of a file is read to make
 * one. An unchanged file keeps its ETag while its host runs; a new version
 * (serve) or a rewritten file (dev) gets a new one.
 *
 * BLOCKING: a few openat/fstat calls per request; no file content is read
 * (the front sends from the fd; the binding reads it in bounded chunks).
 *
 * OWNERSHIP: struct assets is owned by its app (created by thaw dev or thaw
 * serve with assets_open, freed with assets_free). A reply owns its fd and
 * location until assets_reply_dispose.
 */
#ifndef THAW_HOST_ASSETS_H
#define THAW_HOST_ASSETS_H

#include <stddef.h>
#include <stdint.h>

struct project_assets;

#define ASSETS_PATH_MAX 2048 /* a decoded path, at most */
#define ASSETS_COMPONENT_MAX 255
#define ASSETS_DEPTH_MAX 64

struct assets;

/* The assets of a project in project_dir (its cfg->directory, borrowed).
 * Returns new, or NULL with err when the directory cannot be opened. */
struct assets *assets_open(const char *project_dir, const struct project_assets *cfg, char *err,
			   size_t errlen);
void assets_free(struct assets *a);

/* What a request brings (all borrowed; NULL when absent). */
struct assets_request {
	const char *method;
	const char *target; /* the request target: path and query, as sent */
	const char *if_none_match;
	const char *range;
	const char *sec_fetch_mode;
	int has_authorization;
	int binding; /* from env.ASSETS.fetch: no run_worker_first, no worker */
};

enum assets_outcome {
	ASSETS_TO_WORKER = 0, /* not for the assets (front only) */
	ASSETS_ANSWER = 1,    /* the reply is the answer */
};

struct assets_reply {
	unsigned status;          /* 200, 206, 304, 307, 404, 405, 416 */
	int fd;                   /* the file to send, or -1 (text or no body) */
	uint64_t offset, length;  /* of the file to send */
	uint64_t size;            /* the whole file's size */
	const char *content_type; /* static, or NULL */
	const char *text;         /* static body when fd is -1 (NULL: none) */
	char etag[24];            /* "" when none */
	char content_range[80];   /* "" when none */
	char *location;           /* a redirect's target (owned), or NULL */
	int cache_control;        /* send Cache-Control: public, max-age=0, must-revalidate */
	int accept_ranges;
};

/* Decide and prepare the answer to rq. ASSETS_ANSWER with *rp filled (the
 * caller disposes of it), or ASSETS_TO_WORKER. */
int assets_answer(struct assets *a, const struct assets_request *rq, struct assets_reply *rp);
void assets_reply_dispose(struct assets_reply *rp);

/* --- pure parts (unit-tested, fuzzed) --- */

/* The path of a request target (the query and fragment dropped) decoded and
 * normalised into out: starts with '/', no "." or empty components (a
 * trailing '/' is kept), no "..", no decoded '/', '\\', NUL or control
 * byte, at most ASSETS_PATH_MAX bytes, components of at most
 * ASSETS_COMPONENT_MAX bytes, at most ASSETS_DEPTH_MAX of them. 0, or -1
 * when the target is refused. */
int assets_path_normalize(const char *target, char *out, size_t outlen);
/* Cloudflare's content type for a file name (by its extension, case
 * insensitive); "application/octet-stream" when unknown. */
const char *assets_content_type(const char *name);
/* A Range header against a file of size bytes. */
enum { ASSETS_RANGE_NONE, ASSETS_RANGE_OK, ASSETS_RANGE_UNSATISFIABLE };
int assets_range_parse(const char *header, uint64_t size, uint64_t *start, uint64_t *len);
/* Does an If-None-Match header match etag (a quoted strong tag)? Weak
 * comparison, as for GET: W/"x" matches "x"; "*" matches any. */
int assets_etag_matches(const char *if_none_match, const char *etag);
/* Does a run_worker_first pattern (without its '!') match path? '*'
 * matches any run of bytes, '/' included; everything else is literal. */
int assets_rule_matches(const char *pattern, const char *path);
/* run_worker_first for a path: 1 when the worker goes first. */
int assets_worker_first(const struct project_assets *cfg, const char *path);

#endif
