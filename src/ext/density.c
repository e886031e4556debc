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
 * BASES: one grouped query of the versions table (store_image_bases_each)
 * and the current base, listed first even before a version is built on it;
 * the host's shared disk counts only the bases some version is built on.
 *
 * /metrics: a version's disk series only while it is loaded or in its
 * worker's current or previous deployment (however many versions are kept,
 * the series stay bounded); the totals count every version.
 *
 * BLOCKING: a read of the versions table, the bases' query and a stat per
 * base image for an answer (for /metrics, also a query per worker with a
 * deployment: its previous one); a header and table read for a legacy image
 * at load, a stat of a legacy version's bundle.
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

void density_version_loaded(struct sversion *sv)
{
	struct version *v = &sv->v;
	if (v->bundle_bytes >= 0)
		return;
	/* Stored before the figures were kept (migration 6): its blob, once. */
	char *path = blob_path(sv->s->st, v->bundle);
	struct stat st;
	if (path && stat(path, &st) == 0) {
		v->bundle_bytes = (int64_t)st.st_size;
		store_version_set_files(sv->s->st, v->id, v->bundle_bytes, v->files_bytes);
	}
	free(path);
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

/* --- memory --- */

/* own and shared are null when a sampled instance's kernel did not split
 * its Pss (memstat.h): unknown, not zero. */
static json_t *memory_json(const struct app_memory *m)
{
	int known = m->split == m->sampled;
	return json_pack("{s:o, s:o, s:I, s:i, s:i}", "own",
			 known ? json_integer((json_int_t)m->own) : json_null(), "shared",
			 known ? json_integer((json_int_t)m->shared) : json_null(), "pss",
			 (json_int_t)m->pss, "instances", (int)m->instances, "sampled",
			 (int)m->sampled);
}

static void memory_add(struct app_memory *sum, const struct app_memory *m)
{
	sum->instances += m->instances;
	sum->sampled += m->sampled;
	sum->split += m->split;
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

/* --- the base images --- */

struct base_use {
	char hex[STORE_SHA_HEX + 1];
	uint64_t versions;
	int64_t bytes; /* -1: gone */
	int current;
};

struct bases {
	struct base_use *list; /* the current one first, when the host has one */
	size_t n, cap;
};

static struct base_use *base_add(struct bases *b, const char *hex, uint64_t versions)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 8;
		b->list = xrealloc(b->list, b->cap * sizeof *b->list);
	}
	struct base_use *u = &b->list[b->n++];
	memset(u, 0, sizeof *u);
	snprintf(u->hex, sizeof u->hex, "%s", hex);
	u->versions = versions;
	u->bytes = -1;
	return u;
}

static void base_found(void *arg, const char *hex, uint64_t versions)
{
	struct bases *b = arg;
	if (b->n && b->list[0].current && !strcmp(b->list[0].hex, hex))
		b->list[0].versions = versions;
	else
		base_add(b, hex, versions);
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

/* Every base the versions' images are built on (one grouped query) and the
 * current one, first, even when no version is built on it yet; each sized.
 * 0, or -1 (logged; b empty). */
static int bases_read(struct serve *s, struct bases *b)
{
	memset(b, 0, sizeof *b);
	char cur[STORE_SHA_HEX + 1];
	uint64_t cur_bytes;
	if (base_current(s, cur, &cur_bytes)) {
		struct base_use *u = base_add(b, cur, 0);
		u->bytes = (int64_t)cur_bytes;
		u->current = 1;
	}
	if (store_image_bases_each(s->st, base_found, b) < 0) {
		free(b->list);
		memset(b, 0, sizeof *b);
		return -1;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct base_use *u = &b->list[i];
		if (u->current)
			continue;
		char *path = blob_path(s->st, u->hex);
		struct stat st;
		if (path && stat(path, &st) == 0)
			u->bytes = (int64_t)st.st_size;
		free(path);
	}
	return 0;
}

/* The bases' disk: each one some version is built on, once (the current
 * base counts only once a version is built on it). */
static uint64_t bases_bytes(const struct bases *b)
{
	uint64_t n = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->list[i].versions > 0 && b->list[i].bytes > 0)
			n += (uint64_t)b->list[i].bytes;
	return n;
}

/* Takes b's list. */
static json_t *bases_json(struct bases *b)
{
	json_t *a = json_array();
	for (size_t i = 0; i < b->n; i++) {
		const struct base_use *u = &b->list[i];
		json_array_append_new(a,
				      json_pack("{s:s, s:o, s:I, s:b}", "blob", u->hex, "bytes",
						u->bytes < 0 ? json_null()
							     : json_integer((json_int_t)u->bytes),
						"versions", (json_int_t)u->versions, "current",
						u->current));
	}
	free(b->list);
	memset(b, 0, sizeof *b);
	return a;
}

json_t *density_bases_json(struct serve *s)
{
	struct bases b;
	if (bases_read(s, &b) < 0)
		return json_array();
	return bases_json(&b);
}

/* --- GET /v1/density: every version --- */

struct tally {
	struct serve *s;
	json_t *workers; /* [{name, versions: [...], disk, memory}] */
	json_t *worker;  /* the one being filled (borrowed from workers) */
	uint64_t w_own, w_shared;
	uint64_t own, shared_refs;
	struct app_memory memory; /* the workers' summed */
};

static void worker_close(struct tally *t)
{
	if (!t->worker)
		return;
	struct app_memory m;
	worker_memory(t->s, json_string_value(json_object_get(t->worker, "name")), &m);
	memory_add(&t->memory, &m);
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

static json_t *sampling_json(struct serve *s)
{
	int64_t at = host_memory_swept_ms(&s->h);
	return json_pack("{s:o, s:I}", "sampled", at ? json_integer(at) : json_null(), "sweeps",
			 (json_int_t)host_memory_sweeps(&s->h));
}

json_t *density_json(struct serve *s)
{
	struct tally t = {.s = s, .workers = json_array()};
	struct bases b;
	if (store_versions_each(s->st, tally_version, &t) < 0 || bases_read(s, &b) < 0) {
		json_decref(t.workers);
		return NULL;
	}
	worker_close(&t);
	uint64_t shared = bases_bytes(&b);
	return json_pack("{s:o, s:o, s:o, s:{s:{s:I, s:I, s:I}, s:o}}", "memory_sampling",
			 sampling_json(s), "bases", bases_json(&b), "workers", t.workers, "total",
			 "disk", "own", (json_int_t)t.own, "shared", (json_int_t)shared,
			 "referenced", (json_int_t)t.shared_refs, "memory", memory_json(&t.memory));
}

/* --- /metrics --- */

/* A label value as the text format wants it (worker names are [a-z0-9-],
 * but nothing here relies on it). */
static void put_label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			buf_printf(b, "\\n");
		else
			buf_append(b, v, 1);
	}
}

static void put_buf(struct buf *b, const struct buf *lines)
{
	if (buf_used(lines))
		buf_append(b, buf_head(lines), buf_used(lines));
}

/* One pass over the versions table, building no JSON: the host's disk
 * summed, a disk series for each version a worker serves or may serve again
 * (loaded, or in its current or previous deployment: bounded however many
 * versions are kept; /v1/density lists them all), the memory series of each
 * worker with a version. */
struct gauges {
	struct serve *s;
	char (*deployed)[STORE_ID_LEN + 1]; /* sorted */
	size_t ndeployed, capdeployed;
	char worker[64]; /* the one whose versions the scan is in */
	struct sworker *w;
	uint64_t own;
	struct app_memory memory;
	struct buf disk, pss, instances, sampled;
};

static void deployed_add(struct gauges *g, const struct deployment *d)
{
	for (int i = 0; i < d->n && i < DEPLOY_MAX_VERSIONS; i++) {
		if (g->ndeployed == g->capdeployed) {
			g->capdeployed = g->capdeployed ? g->capdeployed * 2 : 16;
			g->deployed = xrealloc(g->deployed, g->capdeployed * sizeof *g->deployed);
		}
		snprintf(g->deployed[g->ndeployed++], STORE_ID_LEN + 1, "%.*s", STORE_ID_LEN,
			 d->version[i]);
	}
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The versions of every worker's current and previous deployment: a query
 * per worker with a deployment. */
static void deployed_read(struct gauges *g)
{
	for (struct sworker *w = g->s->workers; w; w = w->next) {
		if (!w->has_dep)
			continue;
		deployed_add(g, &w->dep);
		struct deployment d = {0};
		if (store_deployment_previous(g->s->st, w->name, &d) == 0)
			deployed_add(g, &d);
		deployment_clear(&d);
	}
	if (g->ndeployed)
		qsort(g->deployed, g->ndeployed, sizeof *g->deployed, id_cmp);
}

static void worker_gauges(struct gauges *g, const char *name)
{
	struct app_memory m;
	worker_memory(g->s, name, &m);
	memory_add(&g->memory, &m);
	if (m.split == m.sampled) /* else not known: no series */
		for (int shared = 0; shared < 2; shared++) {
			buf_printf(&g->pss, "thaw_worker_pss_bytes{worker=\"");
			put_label(&g->pss, name);
			buf_printf(&g->pss, "\",kind=\"%s\"} %llu\n", shared ? "shared" : "own",
				   (unsigned long long)(shared ? m.shared : m.own));
		}
	buf_printf(&g->instances, "thaw_worker_instances{worker=\"");
	put_label(&g->instances, name);
	buf_printf(&g->instances, "\"} %u\n", m.instances);
	buf_printf(&g->sampled, "thaw_worker_instances_sampled{worker=\"");
	put_label(&g->sampled, name);
	buf_printf(&g->sampled, "\"} %u\n", m.sampled);
}

static void gauge_version(void *arg, const struct version *v)
{
	struct gauges *g = arg;
	if (strcmp(g->worker, v->worker)) {
		snprintf(g->worker, sizeof g->worker, "%s", v->worker);
		g->w = serve_worker_find(g->s, v->worker);
		worker_gauges(g, v->worker);
	}
	uint64_t own, shared;
	version_disk(v, &own, &shared);
	g->own += own;
	if (!(g->w && serve_version_loaded(g->w, v->id)) &&
	    !(g->ndeployed &&
	      bsearch(v->id, g->deployed, g->ndeployed, sizeof *g->deployed, id_cmp)))
		return;
	for (int kind = 0; kind < 2; kind++) {
		buf_printf(&g->disk, "thaw_version_disk_bytes{worker=\"");
		put_label(&g->disk, v->worker);
		buf_printf(&g->disk, "\",version=\"%d\",kind=\"%s\"} %llu\n", v->number,
			   kind ? "shared" : "own", (unsigned long long)(kind ? shared : own));
	}
}

void density_metrics(struct serve *s, struct buf *b)
{
	struct gauges g = {.s = s};
	struct bases bases;
	deployed_read(&g);
	if (store_versions_each(s->st, gauge_version, &g) < 0 || bases_read(s, &bases) < 0)
		goto out;
	buf_printf(b,
		   "# HELP thaw_version_disk_bytes Bytes a version holds on disk, for each version "
		   "loaded or in its worker's current or previous deployment: own (its image file, "
		   "working set, bundle and unpacked files) and shared (the pages its image maps "
		   "from the base image, which holds them once for every version).\n"
		   "# TYPE thaw_version_disk_bytes gauge\n");
	put_buf(b, &g.disk);
	uint64_t cur_bytes = 0, cur_versions = 0;
	if (bases.n && bases.list[0].current) {
		cur_bytes = bases.list[0].bytes > 0 ? (uint64_t)bases.list[0].bytes : 0;
		cur_versions = bases.list[0].versions;
	}
	buf_printf(b,
		   "# HELP thaw_disk_bytes Bytes the host's versions hold on disk: own (summed "
		   "over the "
		   "versions) and shared (each base image versions are built on, once).\n"
		   "# TYPE thaw_disk_bytes gauge\n"
		   "thaw_disk_bytes{kind=\"own\"} %llu\n"
		   "thaw_disk_bytes{kind=\"shared\"} %llu\n",
		   (unsigned long long)g.own, (unsigned long long)bases_bytes(&bases));
	free(bases.list);
	buf_printf(b,
		   "# HELP thaw_base_image_bytes The size of the host's current base image (0: "
		   "none).\n"
		   "# TYPE thaw_base_image_bytes gauge\n"
		   "thaw_base_image_bytes %llu\n"
		   "# HELP thaw_base_image_versions Stored versions whose image is built on the "
		   "current "
		   "base image.\n"
		   "# TYPE thaw_base_image_versions gauge\n"
		   "thaw_base_image_versions %llu\n",
		   (unsigned long long)cur_bytes, (unsigned long long)cur_versions);
	buf_printf(b,
		   "# HELP thaw_worker_pss_bytes PSS of a worker's serving instances, last "
		   "sampled: "
		   "own (anonymous and tmpfs pages) and shared (its share of file pages: the base "
		   "image, its image, libraries); none when the kernel does not split PSS.\n"
		   "# TYPE thaw_worker_pss_bytes gauge\n");
	put_buf(b, &g.pss);
	buf_printf(b, "# HELP thaw_worker_instances A worker's serving instances.\n"
		      "# TYPE thaw_worker_instances gauge\n");
	put_buf(b, &g.instances);
	buf_printf(b,
		   "# HELP thaw_worker_instances_sampled A worker's serving instances whose memory "
		   "the last samples read.\n"
		   "# TYPE thaw_worker_instances_sampled gauge\n");
	put_buf(b, &g.sampled);
	buf_printf(b,
		   "# HELP thaw_pss_bytes PSS of every worker's serving instances, last sampled.\n"
		   "# TYPE thaw_pss_bytes gauge\n");
	if (g.memory.split == g.memory.sampled)
		buf_printf(b,
			   "thaw_pss_bytes{kind=\"own\"} %llu\n"
			   "thaw_pss_bytes{kind=\"shared\"} %llu\n",
			   (unsigned long long)g.memory.own, (unsigned long long)g.memory.shared);
	buf_printf(b,
		   "# HELP thaw_memory_sampled_timestamp_seconds When the host last finished "
		   "reading its "
		   "instances' memory (0: not yet).\n"
		   "# TYPE thaw_memory_sampled_timestamp_seconds gauge\n"
		   "thaw_memory_sampled_timestamp_seconds %.3f\n",
		   (double)host_memory_swept_ms(&s->h) / 1000);
out:
	free(g.deployed);
	buf_free(&g.disk);
	buf_free(&g.pss);
	buf_free(&g.instances);
	buf_free(&g.sampled);
}
