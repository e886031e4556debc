/*
 * thaw serve's garbage collection: versions nobody wants any more, and the
 * files (blobs/HEX, versions/ID) that nothing names.
 *
 * WHICH VERSIONS GO
 *   - one named by `thaw versions delete` (api.c), unless it is in the
 *     worker's current deployment or being deployed;
 *   - by the --keep-versions N policy, after every deploy of the worker
 *     and at start: the versions beyond the newest N (by number, whatever
 *     their state), except those being deployed and those of the current
 *     deployment and of the one before it (where `thaw rollback` returns).
 *
 * HOW, crash-safe: two steps, in this order.
 *   1. The rows (store_version_delete, one transaction). A version that is
 *      still loaded (draining: requests in flight) is marked deleted; it
 *      takes no new traffic, since no deployment can name it any more.
 *   2. Once that transaction is durable (its store ticket), each file the
 *      version had: a blob only when no row names it (store_blob_referenced)
 *      and nothing in memory uses it (a loaded version, a deploy in
 *      progress, a pool's image); versions/ID only when its row is gone and
 *      the version is not loaded (a draining version's files wait until it
 *      is unloaded: gc_version_unloaded).
 *   A crash between the two leaves files that no row names, never a row
 *   naming a missing file; gc_start removes such files at the next start.
 *   Blobs are reference-counted by that query, not by a counter that a crash
 *   could leave wrong: a refused or failed deploy releases its bundle the
 *   same way (gc_release_blob), so it removes the blob only when it was the
 *   one that brought it, never one an earlier version uses.
 *
 * Removing is a rename into DATA/tmp/gc-N/ (O(1), on the loop), then
 * `rm -rf` of that directory in a child: deleting big files is work
 * proportional to them, which the loop never does; DATA/tmp is emptied at
 * start if the child dies. The check and the rename happen in one callback,
 * as do installing a blob and recording the row that names it (deploy.c),
 * so no row can come to name a blob between its check and its rename.
 *
 * Ownership: struct serve holds the list of files waiting for their ticket
 * (s->gc_files); each entry is the list's.
 */
#include "ext/serve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/child.h"

/* Versions one pass of the policy deletes at most (the rest at the next). */
#define GC_BATCH 64

struct gc_file {
	uint64_t ticket; /* removable once the store's changes up to it are durable */
	int is_dir;      /* versions/NAME, else blobs/NAME */
	char name[STORE_SHA_HEX + 1];
	struct gc_file *next;
};

/* A round's removals: renamed into dir, removed by a child at the end. */
struct gc_round {
	struct serve *s;
	char dir[4096];
	int made;
	unsigned files;
};

static int is_hex64(const char *p)
{
	for (int i = 0; i < STORE_SHA_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

static int is_version_id(const char *p)
{
	if (strlen(p) != STORE_ID_LEN)
		return 0;
	for (int i = 0; i < STORE_ID_LEN; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') || p[i] == '-'))
			return 0;
	return 1;
}

/* Is the blob hex in use: named by a row, by a loaded version, by a pool's
 * image or by a deploy in progress? A database error says yes. */
static int blob_in_use(struct serve *s, const char *hex)
{
	for (struct deploy_job *j = s->jobs; j; j = j->next)
		if (!strcmp(j->hex, hex))
			return 1;
	char *path = blob_path(s->st, hex);
	int used = 0;
	for (struct sworker *w = s->workers; w && !used; w = w->next)
		for (struct sversion *sv = w->versions; sv && !used; sv = sv->next)
			used = !strcmp(sv->v.bundle, hex) || !strcmp(sv->v.snapshot, hex) ||
			       (sv->app.snap_path && path && !strcmp(sv->app.snap_path, path));
	free(path);
	return used || serve_base_blob(s, hex) || store_blob_referenced(s->st, hex) != 0;
}

static int version_in_use(struct serve *s, const char *id)
{
	for (struct sworker *w = s->workers; w; w = w->next)
		if (serve_version_loaded(w, id))
			return 1;
	return store_version_exists(s->st, id) != 0;
}

/* Move DATA/SUB/NAME into the round's directory (made on first use). */
static void round_take(struct gc_round *r, const char *sub, const char *name)
{
	struct serve *s = r->s;
	if (!r->made) {
		snprintf(r->dir, sizeof r->dir, "%s/tmp/gc-%llx", store_dir(s->st),
			 (unsigned long long)serve_rng(s));
		if (mkdir(r->dir, 0700) < 0) {
			log_warn("cannot make %s: %s (files no version names stay)", r->dir,
				 strerror(errno));
			return;
		}
		r->made = 1;
	}
	char *from = xasprintf("%s/%s/%s", store_dir(s->st), sub, name);
	char *to = xasprintf("%s/%s", r->dir, name);
	if (rename(from, to) == 0)
		r->files++;
	else if (errno != ENOENT)
		log_warn("cannot remove %s: %s", from, strerror(errno));
	free(from);
	free(to);
}

static void round_take_blob(struct gc_round *r, const char *hex)
{
	/* The image's working set and what a writer of it left, with it. */
	static const char *const suffixes[] = {".ws", ".ws.tmp", ".tmp", ""};
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char name[STORE_SHA_HEX + 16];
		snprintf(name, sizeof name, "%s%s", hex, suffixes[i]);
		round_take(r, "blobs", name);
	}
}

static void round_end(struct gc_round *r)
{
	if (!r->made)
		return;
	if (!r->files) {
		rmdir(r->dir);
		return;
	}
	log_info("removing %u file%s that no version names", r->files, r->files == 1 ? "" : "s");
	char *argv[] = {"/bin/rm", "-rf", "--", r->dir, NULL};
	char err[256];
	if (!child_start(&r->s->h, argv, 0, NULL, NULL, err, sizeof err))
		log_warn("cannot remove %s: %s (the next start does)", r->dir, err);
}

/* Remove the waiting files whose ticket is durable and that nothing uses. */
static void gc_run(struct serve *s)
{
	struct gc_round r = {.s = s};
	for (struct gc_file **p = &s->gc_files; *p;) {
		struct gc_file *f = *p;
		int durable = store_durable(s->st, f->ticket);
		if (durable == 0) {
			p = &f->next;
			continue;
		}
		*p = f->next;
		if (durable < 0)
			log_warn("%s/%s/%s is kept: the store could not make its change durable",
				 store_dir(s->st), f->is_dir ? "versions" : "blobs", f->name);
		else if (f->is_dir && !version_in_use(s, f->name))
			round_take(&r, "versions", f->name);
		else if (!f->is_dir && !blob_in_use(s, f->name))
			round_take_blob(&r, f->name);
		free(f);
	}
	round_end(&r);
}

static void gc_queue(struct serve *s, int is_dir, const char *name)
{
	if (!name || !*name)
		return;
	if (is_dir ? !is_version_id(name) : (strlen(name) != STORE_SHA_HEX || !is_hex64(name)))
		return;
	struct gc_file *f = xcalloc(1, sizeof *f);
	f->ticket = store_ticket(s->st);
	f->is_dir = is_dir;
	snprintf(f->name, sizeof f->name, "%s", name);
	f->next = s->gc_files;
	s->gc_files = f;
}

void gc_release_blob(struct serve *s, const char *hex)
{
	gc_queue(s, 0, hex);
	gc_run(s);
}

/* The files of a version whose row is gone. */
static void release_version(struct serve *s, const struct version *v)
{
	gc_queue(s, 1, v->id);
	gc_queue(s, 0, v->bundle);
	gc_queue(s, 0, v->snapshot);
	gc_run(s);
}

void gc_synced(struct serve *s)
{
	if (s->gc_files)
		gc_run(s);
}

void gc_version_unloaded(struct serve *s, const struct version *v)
{
	release_version(s, v);
}

int gc_version_delete(struct serve *s, const char *id, int protect, struct version *gone, char *err,
		      size_t errlen)
{
	int rc = store_version_delete(s->st, id, protect, gone, err, errlen);
	if (rc < 0)
		return rc;
	struct sversion *loaded = NULL;
	for (struct sworker *w = s->workers; w && !loaded; w = w->next)
		loaded = serve_version_loaded(w, id);
	if (loaded) {
		/* Still draining: its files go when it is unloaded. */
		loaded->deleted = 1;
		serve_sweep_soon(s);
	} else {
		release_version(s, gone);
	}
	return 0;
}

void gc_keep(struct serve *s, const char *worker)
{
	if (s->keep_versions < 0)
		return;
	json_t *ids = store_versions_beyond(s->st, worker, s->keep_versions, GC_BATCH);
	size_t i;
	json_t *id;
	json_array_foreach(ids, i, id) {
		struct version gone;
		char err[512];
		if (gc_version_delete(s, json_string_value(id), 2, &gone, err, sizeof err) < 0) {
			log_warn("%s: cannot delete an old version: %s", worker, err);
			continue;
		}
		log_info("%s: version %d (%.8s) deleted: beyond the newest %d (--keep-versions)",
			 worker, gone.number, gone.id, s->keep_versions);
		version_clear(&gone);
	}
	json_decref(ids);
}

/* Files a crash between the two steps left: blobs no row names, version
 * directories with no row. Nothing is loaded yet. */
static void remove_orphans(struct serve *s)
{
	struct gc_round r = {.s = s};
	char *blobs = xasprintf("%s/blobs", store_dir(s->st));
	DIR *d = opendir(blobs);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		const char *n = e->d_name;
		size_t len = strlen(n);
		const char *rest = n + STORE_SHA_HEX;
		if (len < STORE_SHA_HEX || !is_hex64(n) ||
		    (*rest && strcmp(rest, ".ws") && strcmp(rest, ".ws.tmp") &&
		     strcmp(rest, ".tmp")))
			continue; /* not ours: left alone */
		char hex[STORE_SHA_HEX + 1];
		memcpy(hex, n, STORE_SHA_HEX);
		hex[STORE_SHA_HEX] = 0;
		if (!blob_in_use(s, hex))
			round_take(&r, "blobs", n);
	}
	if (d)
		closedir(d);
	free(blobs);
	char *versions = xasprintf("%s/versions", store_dir(s->st));
	d = opendir(versions);
	while (d && (e = readdir(d)))
		if (is_version_id(e->d_name) && !version_in_use(s, e->d_name))
			round_take(&r, "versions", e->d_name);
	if (d)
		closedir(d);
	free(versions);
	round_end(&r);
}

void gc_start(struct serve *s)
{
	remove_orphans(s);
	json_t *names = store_workers_json(s->st);
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n)
		gc_keep(s, json_string_value(n));
	json_decref(names);
}

void gc_stop(struct serve *s)
{
	while (s->gc_files) {
		struct gc_file *f = s->gc_files;
		s->gc_files = f->next;
		free(f);
	}
}
