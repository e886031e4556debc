/*
 * pagecmp: what would a worker image cost as a delta against a base image?
 * (issue 13: a shared base snapshot with per-worker deltas.)
 *
 * USAGE
 *   cmake --build build --target pagecmp      (bench target, not built by default)
 *   build/pagecmp [-v] BASE.snap IMAGE.snap...
 *
 * Reads the images with the project's own reader (snap_open, src/snap/format.c)
 * and maps their files read-only. Each IMAGE is compared with BASE, page by
 * page, over the pages each image saved (its runs; pages an image did not save
 * are zero or its file's and cost nothing today). For every IMAGE it prints:
 *   - per region kind (heap, anon, file = written pages of private file
 *     mappings, stack), the IMAGE's saved pages and of those: saved at the
 *     same address in BASE too ("both"), byte-identical there ("ident"),
 *     different ("differ"), saved only in IMAGE ("only"), all-zero ("zero"),
 *     and present anywhere in BASE with the same bytes at any address
 *     ("any": the upper bound of content dedup, zero pages excluded);
 *   - the identical pages grouped into runs a delta restore would map from
 *     the base file: consecutive addresses, one region of IMAGE, consecutive
 *     offsets in BASE's file; their number and length distribution;
 *   - the mappings a restore would make: today (regions + runs) against a
 *     delta in two models. A: identical runs of at least k pages mapped from
 *     the base file, everything else own (regions + own runs + base runs).
 *     B, overlay: each region mapped whole from the base, own runs laid over
 *     it, identical gaps shorter than k between own pages stored as own to
 *     save mappings, plus "holes" (pages the base saved that the image has
 *     zero or file there); a region whose file is a .snap (an image
 *     checkpointed from a restored process) counts as base-backed already;
 *   - for pages found elsewhere in BASE, the most common address shifts
 *     (IMAGE address - BASE address): how far a layout slid.
 * -v adds one line per IMAGE region.
 */
#include "snap/snap.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG SNAP_PAGE
#define NKIND 6

struct page {
	uint64_t addr, off; /* address; offset in the image file */
	uint32_t region, run;
};

struct img {
	const char *path;
	struct snap_image im;
	const uint8_t *map;
	size_t map_len;
	struct page *pages;
	size_t npages;
};

static const char *kind_name(uint32_t k)
{
	static const char *n[NKIND] = {"?", "file", "anon", "heap", "stack", "shared"};
	return k < NKIND ? n[k] : "?";
}

static void die(const char *what)
{
	fprintf(stderr, "pagecmp: %s\n", what);
	exit(1);
}

static void load(struct img *g, const char *path)
{
	char err[256];
	int fd;
	g->path = path;
	if (snap_open(path, &fd, &g->im, err, sizeof err) < 0) {
		fprintf(stderr, "pagecmp: %s: %s\n", path, err);
		exit(1);
	}
	g->map_len = g->im.h.file_size;
	g->map = mmap(NULL, g->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (g->map == MAP_FAILED)
		die("mmap failed");
	size_t n = 0;
	for (uint32_t i = 0; i < g->im.h.nruns; i++)
		n += g->im.runs[i].npages;
	g->pages = calloc(n ? n : 1, sizeof *g->pages);
	if (!g->pages)
		die("out of memory");
	for (uint32_t r = 0; r < g->im.h.nregions; r++) {
		const struct snap_region *reg = &g->im.regions[r];
		for (uint32_t k = 0; k < reg->run_count; k++) {
			const struct snap_run *u = &g->im.runs[reg->run_first + k];
			for (uint64_t p = 0; p < u->npages; p++)
				g->pages[g->npages++] = (struct page){
					u->start + p * PG, u->data_off + p * PG, r, reg->run_first + k};
		}
	}
	/* regions are sorted and runs in order within them: pages are sorted */
}

static const uint8_t *data(const struct img *g, const struct page *p)
{
	return g->map + p->off;
}

static int is_zero(const uint8_t *p)
{
	static const uint8_t z[PG];
	return memcmp(p, z, PG) == 0;
}

/* Content index of the base: open addressing on snap_hash of each page. */
struct cindex {
	uint64_t *hash;
	uint32_t *idx; /* page index + 1; 0 = empty */
	size_t mask;
};

static void cindex_build(struct cindex *c, const struct img *g)
{
	size_t cap = 1024;
	while (cap < g->npages * 2)
		cap <<= 1;
	c->mask = cap - 1;
	c->hash = calloc(cap, sizeof *c->hash);
	c->idx = calloc(cap, sizeof *c->idx);
	if (!c->hash || !c->idx)
		die("out of memory");
	for (size_t i = 0; i < g->npages; i++) {
		const uint8_t *d = data(g, &g->pages[i]);
		if (is_zero(d))
			continue;
		uint64_t h = snap_hash(0, d, PG);
		size_t s = h & c->mask;
		while (c->idx[s])
			s = (s + 1) & c->mask;
		c->hash[s] = h;
		c->idx[s] = (uint32_t)i + 1;
	}
}

/* A base page with the same bytes, preferring one at want_addr; -1 if none. */
static long cindex_find(const struct cindex *c, const struct img *g, const uint8_t *d)
{
	uint64_t h = snap_hash(0, d, PG);
	for (size_t s = h & c->mask; c->idx[s]; s = (s + 1) & c->mask)
		if (c->hash[s] == h && !memcmp(data(g, &g->pages[c->idx[s] - 1]), d, PG))
			return (long)c->idx[s] - 1;
	return -1;
}

struct counts {
	uint64_t saved, both, ident, differ, only, zero, any, iruns;
};

static void add(struct counts *a, const struct counts *b)
{
	a->saved += b->saved;
	a->both += b->both;
	a->ident += b->ident;
	a->differ += b->differ;
	a->only += b->only;
	a->zero += b->zero;
	a->any += b->any;
	a->iruns += b->iruns;
}

static void row(const char *name, const struct counts *c)
{
	double s = c->saved ? (double)c->saved : 1;
	printf("  %-7s %7llu %7llu %7llu %5.1f%% %7llu %7llu %6llu %7llu %5.1f%% %6llu\n", name,
	       (unsigned long long)c->saved, (unsigned long long)c->both,
	       (unsigned long long)c->ident, 100.0 * c->ident / s, (unsigned long long)c->differ,
	       (unsigned long long)c->only, (unsigned long long)c->zero, (unsigned long long)c->any,
	       100.0 * c->any / s, (unsigned long long)c->iruns);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static void compare(const struct img *A, const struct img *B, const struct cindex *ci, int verbose)
{
	size_t n = B->npages;
	/* For each B page: the A page at the same address (or -1), identity. */
	long *same = malloc((n ? n : 1) * sizeof *same);
	uint8_t *ident = calloc(n ? n : 1, 1);
	uint64_t *runlen = calloc(n ? n : 1, sizeof *runlen); /* length of the ident run a page is in */
	int64_t *shift = malloc((n ? n : 1) * sizeof *shift);
	size_t nshift = 0;
	if (!same || !ident || !runlen || !shift)
		die("out of memory");
	struct counts kind[NKIND] = {{0}}, total = {0};
	uint32_t nreg = B->im.h.nregions;
	struct counts *reg = calloc(nreg, sizeof *reg);
	size_t j = 0;
	for (size_t i = 0; i < n; i++) {
		const struct page *p = &B->pages[i];
		struct counts *c = &reg[p->region];
		const uint8_t *d = data(B, p);
		c->saved++;
		while (j < A->npages && A->pages[j].addr < p->addr)
			j++;
		same[i] = j < A->npages && A->pages[j].addr == p->addr ? (long)j : -1;
		int z = is_zero(d);
		c->zero += z;
		if (same[i] >= 0) {
			c->both++;
			if (!memcmp(d, data(A, &A->pages[same[i]]), PG)) {
				ident[i] = 1;
				c->ident++;
			} else {
				c->differ++;
			}
		} else {
			c->only++;
		}
		if (ident[i] && !z) {
			c->any++;
		} else if (!z) {
			long k = cindex_find(ci, A, d);
			if (k >= 0) {
				c->any++;
				shift[nshift++] = (int64_t)(p->addr - A->pages[k].addr);
			}
		}
	}
	/* Identical runs: consecutive B addresses, same B region, consecutive
	 * offsets in A's file (one MAP_PRIVATE mapping of the base each). */
	uint64_t nruns = 0, hist[8] = {0}, histp[8] = {0}, longest = 0;
	uint64_t *rlen = malloc((n ? n : 1) * sizeof *rlen); /* each mapped run's length */
	size_t nrlen = 0;
	if (!rlen)
		die("out of memory");
	static const uint64_t edge[8] = {1, 2, 4, 8, 16, 64, 256, 1024};
	for (size_t i = 0; i < n;) {
		if (!ident[i]) {
			i++;
			continue;
		}
		size_t e = i + 1;
		while (e < n && ident[e] && B->pages[e].addr == B->pages[e - 1].addr + PG &&
		       B->pages[e].region == B->pages[i].region &&
		       A->pages[same[e]].off == A->pages[same[e - 1]].off + PG)
			e++;
		uint64_t len = e - i;
		for (size_t k = i; k < e; k++)
			runlen[k] = len;
		nruns++;
		reg[B->pages[i].region].iruns++;
		if (B->im.regions[B->pages[i].region].kind != SNAP_R_STACK)
			rlen[nrlen++] = len;
		longest = len > longest ? len : longest;
		int b = 7;
		while (b > 0 && len < edge[b])
			b--;
		hist[b]++;
		histp[b] += len;
		i = e;
	}
	for (uint32_t r = 0; r < nreg; r++) {
		uint32_t k = B->im.regions[r].kind;
		add(&kind[k < NKIND ? k : 0], &reg[r]);
		add(&total, &reg[r]);
	}

	printf("%s against base %s\n", B->path, A->path);
	printf("  base saves %zu pages (%.1f MiB), image %zu pages (%.1f MiB) in %u regions, %u runs\n",
	       A->npages, A->npages * 4.0 / 1024, B->npages, B->npages * 4.0 / 1024, nreg,
	       B->im.h.nruns);
	printf("  kind      saved    both   ident      %%  differ    only   zero     any      %%  iruns\n");
	for (uint32_t k = 1; k < NKIND; k++)
		if (kind[k].saved)
			row(kind_name(k), &kind[k]);
	row("total", &total);
	printf("  identical runs: %llu, longest %llu pages; by length (runs/pages):", (unsigned long long)nruns,
	       (unsigned long long)longest);
	static const char *lbl[8] = {"1", "2-3", "4-7", "8-15", "16-63", "64-255", "256-1023", "1024+"};
	for (int b = 0; b < 8; b++)
		if (hist[b])
			printf(" %s: %llu/%llu", lbl[b], (unsigned long long)hist[b],
			       (unsigned long long)histp[b]);
	printf("\n");

	/* Mappings: today a restore maps each region once and each run over it
	 * (the stack is copied, not mapped). A delta maps base runs and own runs. */
	uint64_t today = 0;
	for (uint32_t r = 0; r < nreg; r++)
		if (B->im.regions[r].kind != SNAP_R_STACK)
			today += 1 + B->im.regions[r].run_count;
	printf("  restore mappings today %llu; model A, identical runs mapped from the base, the rest own:\n",
	       (unsigned long long)today);
	static const uint64_t mins[] = {1, 2, 4, 8, 16, 64};
	for (size_t m = 0; m < sizeof mins / sizeof *mins; m++) {
		uint64_t own = 0, ownruns = 0, baseruns = 0;
		for (size_t k = 0; k < nrlen; k++)
			baseruns += rlen[k] >= mins[m];
		for (size_t i = 0; i < n; i++) {
			const struct page *p = &B->pages[i];
			if (ident[i] && runlen[i] >= mins[m])
				continue;
			own++;
			/* a new own run unless the previous page is own and adjacent */
			int prev_own = i && !(ident[i - 1] && runlen[i - 1] >= mins[m]) &&
				       p->addr == B->pages[i - 1].addr + PG && p->run == B->pages[i - 1].run;
			if (!prev_own && B->im.regions[p->region].kind != SNAP_R_STACK)
				ownruns++;
		}
		uint64_t maps = 0;
		for (uint32_t r = 0; r < nreg; r++)
			maps += B->im.regions[r].kind != SNAP_R_STACK;
		maps += ownruns + baseruns;
		printf("    min base run %3llu pages: own %6llu pages (%6.1f MiB, %5.1f%%), %5llu own runs "
		       "+ %5llu base runs -> %6llu mappings\n",
		       (unsigned long long)mins[m], (unsigned long long)own, own * 4.0 / 1024,
		       100.0 * own / (n ? n : 1), (unsigned long long)ownruns,
		       (unsigned long long)baseruns, (unsigned long long)maps);
	}

	/* Model B, overlay: each region of the image is mapped whole from the
	 * base (where the base has it), and own runs are laid over it; an
	 * identical gap shorter than k pages between own pages is stored too,
	 * to save a mapping. Holes: pages the base saved inside a region of the
	 * image that the image did not save (zero or its file's there), which
	 * must be mapped again. Regions already mapped from a .snap file (an
	 * image checkpointed from a restored process) are base-backed as is. */
	uint64_t holes = 0;
	{
		uint32_t r = 0;
		size_t bi = 0;
		uint64_t prev_hole = 0;
		for (size_t ai = 0; ai < A->npages; ai++) {
			uint64_t at = A->pages[ai].addr;
			while (r < nreg && B->im.regions[r].end <= at)
				r++;
			while (bi < n && B->pages[bi].addr < at)
				bi++;
			int hole = 0;
			if (r < nreg && B->im.regions[r].start <= at &&
			    B->im.regions[r].kind != SNAP_R_STACK && !(bi < n && B->pages[bi].addr == at)) {
				const struct snap_region *g = &B->im.regions[r];
				const char *dp = g->kind == SNAP_R_FILE ? snap_dep_path(&B->im, g->dep) : "";
				size_t dl = strlen(dp);
				hole = !(dl > 5 && !strcmp(dp + dl - 5, ".snap"));
			}
			if (hole && !(prev_hole && prev_hole + PG == at))
				holes++;
			prev_hole = hole ? at : 0;
		}
	}
	printf("  overlay (regions mapped from the base, own runs laid over, %llu hole runs):\n",
	       (unsigned long long)holes);
	for (size_t m = 0; m < sizeof mins / sizeof *mins; m++) {
		uint64_t own = 0, ownruns = 0;
		for (size_t i = 0; i < n;) {
			if (ident[i]) {
				i++;
				continue;
			}
			/* an own run: extend over identical gaps shorter than k */
			size_t e = i + 1;
			for (;;) {
				size_t g = e;
				while (g < n && ident[g] && g - e < mins[m] && B->pages[g].run == B->pages[i].run)
					g++;
				if (g < n && g - e < mins[m] && !ident[g] && B->pages[g].run == B->pages[i].run &&
				    B->pages[g].addr == B->pages[i].addr + (g - i) * PG) {
					e = g + 1;
					continue;
				}
				break;
			}
			own += e - i;
			if (B->im.regions[B->pages[i].region].kind != SNAP_R_STACK)
				ownruns++;
			i = e;
		}
		uint64_t maps = holes + ownruns;
		for (uint32_t r = 0; r < nreg; r++)
			maps += B->im.regions[r].kind != SNAP_R_STACK;
		printf("    identical gaps < %3llu pages stored: own %6llu pages (%6.1f MiB), %5llu own "
		       "runs -> %6llu mappings\n",
		       (unsigned long long)mins[m], (unsigned long long)own, own * 4.0 / 1024,
		       (unsigned long long)ownruns, (unsigned long long)maps);
	}

	if (nshift) {
		qsort(shift, nshift, sizeof *shift, cmp_i64);
		int64_t best[5] = {0};
		size_t bestn[5] = {0};
		for (size_t i = 0; i < nshift;) {
			size_t e = i;
			while (e < nshift && shift[e] == shift[i])
				e++;
			size_t c = e - i;
			for (int k = 0; k < 5; k++)
				if (c > bestn[k]) {
					memmove(&best[k + 1], &best[k], (size_t)(4 - k) * sizeof *best);
					memmove(&bestn[k + 1], &bestn[k], (size_t)(4 - k) * sizeof *bestn);
					best[k] = shift[i];
					bestn[k] = c;
					break;
				}
			i = e;
		}
		printf("  pages found at another address in the base: %zu; commonest shifts:", nshift);
		for (int k = 0; k < 5 && bestn[k]; k++)
			printf(" %+lld KiB x%zu", (long long)best[k] / 1024, bestn[k]);
		printf("\n");
	}

	if (verbose) {
		printf("  regions of the image (saved pages):\n");
		for (uint32_t r = 0; r < nreg; r++) {
			const struct snap_region *g = &B->im.regions[r];
			if (!reg[r].saved)
				continue;
			printf("    %012llx-%012llx %-5s saved %6llu ident %6llu differ %6llu only %6llu "
			       "zero %6llu any %6llu iruns %4llu %s\n",
			       (unsigned long long)g->start, (unsigned long long)g->end, kind_name(g->kind),
			       (unsigned long long)reg[r].saved, (unsigned long long)reg[r].ident,
			       (unsigned long long)reg[r].differ, (unsigned long long)reg[r].only,
			       (unsigned long long)reg[r].zero, (unsigned long long)reg[r].any,
			       (unsigned long long)reg[r].iruns,
			       g->kind == SNAP_R_FILE ? snap_dep_path(&B->im, g->dep) : "");
		}
	}
	printf("\n");
	free(same);
	free(ident);
	free(runlen);
	free(shift);
	free(reg);
	free(rlen);
}

int main(int argc, char **argv)
{
	int verbose = 0, a = 1;
	if (a < argc && !strcmp(argv[a], "-v")) {
		verbose = 1;
		a++;
	}
	if (argc - a < 2) {
		fprintf(stderr, "usage: pagecmp [-v] BASE.snap IMAGE.snap...\n");
		return 2;
	}
	struct img base;
	memset(&base, 0, sizeof base);
	load(&base, argv[a]);
	struct cindex ci;
	cindex_build(&ci, &base);
	for (int i = a + 1; i < argc; i++) {
		struct img g;
		memset(&g, 0, sizeof g);
		load(&g, argv[i]);
		compare(&base, &g, &ci, verbose);
		munmap((void *)g.map, g.map_len);
		free(g.pages);
		snap_image_free(&g.im);
	}
	return 0;
}
