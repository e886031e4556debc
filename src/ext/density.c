/*
 * thaw serve's density figures (issue 13, "Density guard rails";
 * docs/control-api.md "Density", docs/snapshots.md "Density"): what each
 * version holds on disk and what each worker's instances hold in memory,
 * per version, per worker and for the host; for GET /v1/density, the
 * versions list and /metrics.
 *
 * DISK, per version (the store's columns, store.h version_disk):
 *   own     its image file (header, table and own pages), its working set
 *           (IMAGE.ws), its bundle, its unpacked files;
 *   shared  the pages its image maps from the base image, which the base's
 *           file holds once for every version built on it.
 * The host's own is the sum of its versions' (a bundle or image two
 * versions name counts in each: a secret's redeploy shares its bundle), its
 * shared the size of each base image versions are built on, once.
 * The figures are taken once: the bundle's when it is stored and unpacked
 * (the unpacking child counts the files), the image's when it is adopted
 * (the adopting child reads its table) or, for an image stored before the
 * figures were kept, when its version is first loaded (its header and table,
 * as snap_check_file reads them there anyway), the working set's when an
 * instance records it. Reading them is one pass over the versions table.
 *
 * MEMORY, per worker: the PSS of its versions' serving instances as the
 * host's sampler last read them (host.h "memory.c", memstat.h): own is
 * anonymous and tmpfs pages, shared its share of file pages (the base, its
 * image, libraries). Nothing here reads /proc.
 *
 * BLOCKING: a read of the versions table and a stat per base image for an
 * answer; a header and table read for a legacy image at load.
 */
#include "ext/serve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "snap/snap.h"

#define DENSITY_MAX_BASES 16 /* distinct bases named by versions, reported */

void density_blob_of(struct serve *s, const char *path, char hex[STORE_SHA_HEX + 1])
{
	hex[0] = 0;
	char *blobs = xasprintf("%s/blobs/", store_dir(s->st));
	size_t n = strlen(blobs);
	if (path && !strncmp(path, blobs, n) && strlen(path + n) == STORE_SHA_HEX) {
		char *check = blob_path(s->st, path + n); /* NULL unless lowercase hex */
		if (check)
			snprintf(hex, STORE_SHA_HEX + 1, "%s", path + n);
		free(check);
	}
	free(blobs);
}

void density_image_adopted(struct sversion *sv, const struct image_pages *pages)
{
	struct version *v = &sv->v;
	v->image_own_pages = pages->own;
	v->image_base_pages = pages->base;
	snprintf(v->image_base, sizeof v->image_base, "%s", pages->base_hex);
	v->ws_bytes = -1; /* a new image has none yet */
	store_version_set_image_pages(sv->s->st, v->id, v->snapshot, pages->own, pages->base,
				      pages->base_hex);
}

void density_ws_recorded(struct sversion *sv, const char *image, double bytes)
{
	char hex[STORE_SHA_HEX + 1];
	density_blob_of(sv->s, image, hex);
	if (!hex[0] || strcmp(hex, sv->v.snapshot) != 0)
		return; /* not its image any more */
	sv->v.ws_bytes = (int64_t)bytes;
	store_version_set_ws(sv->s->st, sv->v.id, hex, (int64_t)bytes);
}

void density_image_loaded(struct sversion *sv, const char *path)
{
	struct version *v = &sv->v;
	if (v->image_own_pages < 0) {
		/* Stored before the figures were kept: its table, once. */
		struct snap_image img;
		char err[256];
		int fd;
		if (snap_open(path, &fd, &img, err, sizeof err) == 0) {
			close(fd);
			struct image_pages p = {.own = 0, .base = (int64_t)snap_base_pages(&img)};
			for (uint32_t i = 0; i < img.h.nruns; i++)
				p.own += (int64_t)img.runs[i].npages;
			if (img.h.base_dep != SNAP_NO_BASE)
				density_blob_of(sv->s, snap_dep_path(&img, img.h.base_dep),
						p.base_hex);
			snap_image_free(&img);
			int64_t ws = v->ws_bytes;
			density_image_adopted(sv, &p);
			v->ws_bytes = ws;
		}
	}
	if (v->ws_bytes < 0) {
		char *ws = xasprintf("%s.ws", path);
		struct stat st;
		if (stat(ws, &st) == 0) {
			v->ws_bytes = (int64_t)st.st_size;
			store_version_set_ws(sv->s->st, v->id, v->snapshot, v->ws_bytes);
		}
		free(ws);
	}
}

/* --- the figures of every version --- */

struct base_use {
	char hex[STORE_SHA_HEX + 1];
	uint64_t versions;
	int64_t bytes; /* -1: gone */
	int current;
};

struct tally {
	struct serve *s;
	json_t *workers; /* [{name, versions: [...], disk, memory}] */
	json_t *worker;  /* the one being filled (borrowed from workers) */
	uint64_t w_own, w_shared;
	uint64_t own, shared_refs;
	struct base_use bases[DENSITY_MAX_BASES];
	size_t nbases;
	/* for /metrics */
	struct buf *metrics;
};

static json_t *memory_json(const struct app_memory *m)
{
	return json_pack("{s:I, s:I, s:I, s:i, s:i}", "own", (json_int_t)m->own, "shared",
			 (json_int_t)m->shared, "pss", (json_int_t)m->pss, "instances",
			 (int)m->instances, "sampled", (int)m->sampled);
}

static void memory_add(struct app_memory *sum, const struct app_memory *m)
{
	sum->instances += m->instances;
	sum->sampled += m->sampled;
	sum->pss += m->pss;
	sum->own += m->own;
	sum->shared += m->shared;
}

/* The memory of worker name's loaded versions (zero when none is). */
static void worker_memory(struct serve *s, const char *name, struct app_memory *out)
{
	memset(out, 0, sizeof *out);
	struct sworker *w = serve_worker_find(s, name);
	for (struct sversion *sv = w ? w->versions : NULL; sv; sv = sv->next) {
		struct app_memory m;
		pool_app_memory(&sv->app, &m);
		memory_add(out, &m);
	}
}

static void base_count(struct tally *t, const char *hex)
{
	for (size_t i = 0; i < t->nbases; i++)
		if (!strcmp(t->bases[i].hex, hex)) {
			t->bases[i].versions++;
			return;
		}
	if (t->nbases == DENSITY_MAX_BASES)
		return;
	struct base_use *b = &t->bases[t->nbases++];
	snprintf(b->hex, sizeof b->hex, "%s", hex);
	b->versions = 1;
	b->bytes = -1;
}

static void worker_close(struct tally *t)
{
	if (!t->worker)
		return;
	struct app_memory m;
	worker_memory(t->s, json_string_value(json_object_get(t->worker, "name")), &m);
	json_object_set_new(t->worker, "disk",
			    json_pack("{s:I, s:I}", "own", (json_int_t)t->w_own, "shared",
				      (json_int_t)t->w_shared));
	json_object_set_new(t->worker, "memory", memory_json(&m));
	t->worker = NULL;
}

static void tally_version(void *arg, const struct version *v)
{
	struct tally *t = arg;
	if (!t->worker ||
	    strcmp(json_string_value(json_object_get(t->worker, "name")), v->worker)) {
		worker_close(t);
		t->worker = json_pack("{s:s, s:[]}", "name", v->worker, "versions");
		json_array_append_new(t->workers, t->worker);
		t->w_own = t->w_shared = 0;
	}
	uint64_t own, shared;
	version_disk(v, &own, &shared);
	t->w_own += own;
	t->w_shared += shared;
	t->own += own;
	t->shared_refs += shared;
	if (v->snapshot[0] && v->image_base[0])
		base_count(t, v->image_base);
	json_t *j = json_pack("{s:s, s:i, s:s, s:o}", "id", v->id, "number", v->number, "state",
			      v->state, "disk", version_disk_json(v));
	struct sworker *w = serve_worker_find(t->s, v->worker);
	struct sversion *sv = w ? serve_version_loaded(w, v->id) : NULL;
	if (sv) {
		struct app_memory m;
		pool_app_memory(&sv->app, &m);
		json_object_set_new(j, "memory", memory_json(&m));
	} else {
		json_object_set_new(j, "memory", json_null());
	}
	json_array_append_new(json_object_get(t->worker, "versions"), j);
}

/* The current base's blob and size: 1, or 0 when the host has none ready. */
static int base_current(struct serve *s, char hex[STORE_SHA_HEX + 1], uint64_t *bytes)
{
	hex[0] = 0;
	*bytes = 0;
	if (!s->base || !s->base->snap_path)
		return 0;
	density_blob_of(s, s->base->snap_path, hex);
	if (!hex[0])
		return 0;
	if (!s->base_bytes) {
		struct stat st;
		if (stat(s->base->snap_path, &st) == 0)
			s->base_bytes = (uint64_t)st.st_size;
	}
	*bytes = s->base_bytes;
	return 1;
}

/* Every version tallied; the bases sized (the current one listed even when
 * no version is built on it yet). 0, or -1 (logged). */
static int tally(struct serve *s, struct tally *t)
{
	memset(t, 0, sizeof *t);
	t->s = s;
	t->workers = json_array();
	if (store_versions_each(s->st, tally_version, t) < 0) {
		json_decref(t->workers);
		return -1;
	}
	worker_close(t);
	char cur[STORE_SHA_HEX + 1];
	uint64_t cur_bytes;
	int have = base_current(s, cur, &cur_bytes);
	int listed = 0;
	for (size_t i = 0; i < t->nbases; i++) {
		struct base_use *b = &t->bases[i];
		if (have && !strcmp(b->hex, cur)) {
			b->current = 1;
			b->bytes = (int64_t)cur_bytes;
			listed = 1;
			continue;
		}
		char *path = blob_path(s->st, b->hex);
		struct stat st;
		if (path && stat(path, &st) == 0)
			b->bytes = (int64_t)st.st_size;
		free(path);
	}
	if (have && !listed && t->nbases < DENSITY_MAX_BASES) {
		struct base_use *b = &t->bases[t->nbases++];
		snprintf(b->hex, sizeof b->hex, "%s", cur);
		b->bytes = (int64_t)cur_bytes;
		b->current = 1;
	}
	return 0;
}

static uint64_t bases_bytes(const struct tally *t)
{
	uint64_t n = 0;
	for (size_t i = 0; i < t->nbases; i++)
		if (t->bases[i].bytes > 0)
			n += (uint64_t)t->bases[i].bytes;
	return n;
}

static json_t *base_json(const struct base_use *b)
{
	return json_pack("{s:s, s:o, s:I, s:b}", "blob", b->hex, "bytes",
			 b->bytes < 0 ? json_null() : json_integer((json_int_t)b->bytes),
			 "versions", (json_int_t)b->versions, "current", b->current);
}

static json_t *bases_json(const struct tally *t)
{
	json_t *a = json_array();
	for (size_t i = 0; i < t->nbases; i++)
		json_array_append_new(a, base_json(&t->bases[i]));
	return a;
}

static json_t *sampling_json(struct serve *s)
{
	int64_t at = host_memory_swept_ms(&s->h);
	return json_pack("{s:o, s:I}", "sampled", at ? json_integer(at) : json_null(), "sweeps",
			 (json_int_t)host_memory_sweeps(&s->h));
}

json_t *density_json(struct serve *s)
{
	struct tally t;
	if (tally(s, &t) < 0)
		return NULL;
	struct app_memory total = {0};
	size_t i;
	json_t *w;
	json_array_foreach(t.workers, i, w) {
		json_t *m = json_object_get(w, "memory");
		struct app_memory wm = {
			.instances = (unsigned)json_integer_value(json_object_get(m, "instances")),
			.sampled = (unsigned)json_integer_value(json_object_get(m, "sampled")),
			.pss = (uint64_t)json_integer_value(json_object_get(m, "pss")),
			.own = (uint64_t)json_integer_value(json_object_get(m, "own")),
			.shared = (uint64_t)json_integer_value(json_object_get(m, "shared")),
		};
		memory_add(&total, &wm);
	}
	return json_pack("{s:o, s:o, s:o, s:{s:{s:I, s:I, s:I}, s:o}}", "memory_sampling",
			 sampling_json(s), "bases", bases_json(&t), "workers", t.workers, "total",
			 "disk", "own", (json_int_t)t.own, "shared", (json_int_t)bases_bytes(&t),
			 "referenced", (json_int_t)t.shared_refs, "memory", memory_json(&total));
}

json_t *density_bases_json(struct serve *s)
{
	struct tally t;
	if (tally(s, &t) < 0)
		return json_array();
	json_decref(t.workers);
	return bases_json(&t);
}

/* --- /metrics --- */

static void __attribute__((format(printf, 2, 3))) put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *text = NULL;
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory");
	buf_append(b, text, (size_t)n);
	free(text);
}

/* A label value as the text format wants it (worker names are [a-z0-9-],
 * but nothing here relies on it). */
static void put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			put(b, "\\%c", *v);
		else if (*v == '\n')
			put(b, "\\n");
		else
			buf_append(b, v, 1);
	}
}

void density_metrics(struct serve *s, struct buf *b)
{
	struct tally t;
	if (tally(s, &t) < 0)
		return;
	put(b, "# HELP thaw_version_disk_bytes Bytes a stored version holds on disk: own (its "
	       "image file, working set, bundle and unpacked files) and shared (the pages its "
	       "image maps from the base image, which holds them once for every version).\n"
	       "# TYPE thaw_version_disk_bytes gauge\n");
	size_t i, k;
	json_t *w, *v;
	json_array_foreach(t.workers, i, w) {
		const char *name = json_string_value(json_object_get(w, "name"));
		json_array_foreach(json_object_get(w, "versions"), k, v) {
			json_t *d = json_object_get(v, "disk");
			for (int shared = 0; shared < 2; shared++) {
				put(b, "thaw_version_disk_bytes{worker=\"");
				put_label(b, name);
				put(b, "\",version=\"%lld\",kind=\"%s\"} %lld\n",
				    (long long)json_integer_value(json_object_get(v, "number")),
				    shared ? "shared" : "own",
				    (long long)json_integer_value(
					    json_object_get(d, shared ? "shared" : "own")));
			}
		}
	}
	put(b,
	    "# HELP thaw_disk_bytes Bytes the host's versions hold on disk: own (summed over the "
	    "versions) and shared (each base image versions are built on, once).\n"
	    "# TYPE thaw_disk_bytes gauge\n"
	    "thaw_disk_bytes{kind=\"own\"} %llu\n"
	    "thaw_disk_bytes{kind=\"shared\"} %llu\n",
	    (unsigned long long)t.own, (unsigned long long)bases_bytes(&t));
	uint64_t cur_bytes = 0, cur_versions = 0;
	for (size_t j = 0; j < t.nbases; j++)
		if (t.bases[j].current) {
			cur_bytes = t.bases[j].bytes > 0 ? (uint64_t)t.bases[j].bytes : 0;
			cur_versions = t.bases[j].versions;
		}
	put(b,
	    "# HELP thaw_base_image_bytes The size of the host's current base image (0: none).\n"
	    "# TYPE thaw_base_image_bytes gauge\n"
	    "thaw_base_image_bytes %llu\n"
	    "# HELP thaw_base_image_versions Stored versions whose image is built on the current "
	    "base image.\n"
	    "# TYPE thaw_base_image_versions gauge\n"
	    "thaw_base_image_versions %llu\n",
	    (unsigned long long)cur_bytes, (unsigned long long)cur_versions);

	struct app_memory total = {0};
	put(b, "# HELP thaw_worker_pss_bytes PSS of a worker's serving instances, last sampled: "
	       "own (anonymous and tmpfs pages) and shared (its share of file pages: the base "
	       "image, its image, libraries).\n"
	       "# TYPE thaw_worker_pss_bytes gauge\n");
	struct buf inst = {0};
	put(&inst, "# HELP thaw_worker_instances A worker's serving instances, and of them those "
		   "whose memory the last samples read.\n"
		   "# TYPE thaw_worker_instances gauge\n");
	json_array_foreach(t.workers, i, w) {
		const char *name = json_string_value(json_object_get(w, "name"));
		struct app_memory m;
		worker_memory(s, name, &m);
		memory_add(&total, &m);
		for (int shared = 0; shared < 2; shared++) {
			put(b, "thaw_worker_pss_bytes{worker=\"");
			put_label(b, name);
			put(b, "\",kind=\"%s\"} %llu\n", shared ? "shared" : "own",
			    (unsigned long long)(shared ? m.shared : m.own));
		}
		for (int sampled = 0; sampled < 2; sampled++) {
			put(&inst, "thaw_worker_instances{worker=\"");
			put_label(&inst, name);
			put(&inst, "\",state=\"%s\"} %u\n", sampled ? "sampled" : "serving",
			    sampled ? m.sampled : m.instances);
		}
	}
	buf_append(b, inst.data, inst.len);
	buf_free(&inst);
	int64_t at = host_memory_swept_ms(&s->h);
	put(b,
	    "# HELP thaw_pss_bytes PSS of every worker's serving instances, last sampled.\n"
	    "# TYPE thaw_pss_bytes gauge\n"
	    "thaw_pss_bytes{kind=\"own\"} %llu\n"
	    "thaw_pss_bytes{kind=\"shared\"} %llu\n"
	    "# HELP thaw_memory_sampled_timestamp_seconds When the host last finished reading its "
	    "instances' memory (0: not yet).\n"
	    "# TYPE thaw_memory_sampled_timestamp_seconds gauge\n"
	    "thaw_memory_sampled_timestamp_seconds %.3f\n",
	    (unsigned long long)total.own, (unsigned long long)total.shared, (double)at / 1000);
	json_decref(t.workers);
}
