/*
 * libFuzzer target for the snapshot file checks (src/snap/format.c).
 *
 * Input: one mode byte, then a whole snapshot file. The header is the file's
 * first sizeof(struct snap_header) bytes (zero padded if the file is shorter),
 * the table the h.table_len bytes at h.table_off if they lie inside the file
 * (else an empty table, as snap_open passes), and snap_parse is called with
 * the file's size. Mode bit 0 set: before parsing, make the header agree with
 * the bytes (file_size, data_hash, table_hash, then header_hash), so mutations
 * get past the checksums and reach the structural checks behind them.
 *
 * An accepted image must satisfy everything snap.h promises (each region,
 * run and dep in bounds, runs consecutive, one stack holding rsp, rip in an
 * executable file mapping, a base mapped by a FILE region and not the
 * binary's file); a refused one must say why and leave nothing
 * allocated. The same file, written to a memfd, goes through snap_open (same
 * answer, same reason), and when accepted through snap_verify_data and
 * snap_inspect. Any broken invariant traps.
 *
 * The header and table handed to snap_parse are allocated to their exact
 * size, so with AddressSanitizer a read past either end is reported.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snap/snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define PAGE ((uint64_t)SNAP_PAGE)
#define HEADER_SIZE sizeof(struct snap_header)

static uint8_t *exact_copy(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	CHECK(p != NULL);
	if (n)
		memcpy(p, src, n);
	return p;
}

static int inside(uint64_t off, uint64_t len, uint64_t size)
{
	return off <= size && len <= size - off;
}

/* data_hash as the writer and snap_verify_data compute it. */
static uint64_t data_hash(const uint8_t *p, uint64_t len)
{
	return snap_data_hash(0, p, (size_t)len);
}

/* Make the header's size and checksums match the file; copy it into the file's first bytes. */
static void fix_up(struct snap_header *h, uint8_t *file, size_t size)
{
	h->file_size = size;
	if (inside(h->data_off, h->data_len, size))
		h->data_hash = data_hash(file + h->data_off, h->data_len);
	if (inside(h->table_off, h->table_len, size))
		h->table_hash = snap_hash(0, file + h->table_off, (size_t)h->table_len);
	h->header_hash = 0;
	h->header_hash = snap_hash(0, h, sizeof *h);
	memcpy(file, h, size < HEADER_SIZE ? size : HEADER_SIZE);
}

static void check_header(const struct snap_image *img, const uint8_t *hdr, size_t size)
{
	const struct snap_header *h = &img->h;
	CHECK(memcmp(h, hdr, HEADER_SIZE) == 0);
	CHECK(memcmp(h->magic, SNAP_MAGIC, 8) == 0);
	CHECK(h->version == SNAP_VERSION && h->header_size == HEADER_SIZE);
	CHECK(h->file_size == size);
	struct snap_header zeroed = *h;
	zeroed.header_hash = 0;
	CHECK(snap_hash(0, &zeroed, sizeof zeroed) == h->header_hash);

	CHECK(h->nregions >= 1 && h->nregions <= SNAP_MAX_REGIONS);
	CHECK(h->nruns <= SNAP_MAX_RUNS && h->ndeps <= SNAP_MAX_DEPS);
	CHECK(h->strings_len <= SNAP_MAX_STRINGS);
	uint64_t tlen = (uint64_t)h->nregions * sizeof(struct snap_region) +
			(uint64_t)h->nruns * sizeof(struct snap_run) +
			(uint64_t)h->ndeps * sizeof(struct snap_dep) + h->strings_len;
	CHECK(h->table_len == tlen);
	CHECK(h->table_off >= PAGE && inside(h->table_off, tlen, size));
	CHECK(snap_hash(0, img->table, tlen) == h->table_hash);
	CHECK(h->data_off % PAGE == 0 && h->data_off >= h->table_off + tlen);
	CHECK(inside(h->data_off, h->data_len, size));
	CHECK(memchr(h->kernel, 0, sizeof h->kernel) && memchr(h->cpu, 0, sizeof h->cpu));
	CHECK(h->rseq_len <= 4096 && h->tid_offset <= 4096 && h->tid_offset % 4 == 0);
	CHECK(h->pad3 == 0);
	CHECK(h->base_dep == SNAP_NO_BASE ? h->base_hash == 0 : h->base_dep < h->ndeps);

	/* The table is one private block, laid out in the documented order. */
	CHECK((void *)img->regions == img->table);
	CHECK((void *)img->runs == (void *)(img->regions + h->nregions));
	CHECK((void *)img->deps == (void *)(img->runs + h->nruns));
	CHECK((void *)img->strings == (void *)(img->deps + h->ndeps));
}

static void check_run(const struct snap_header *h, const struct snap_region *r,
		      const struct snap_run *u, uint64_t *at)
{
	/* In its region, after the previous run, whole pages, at least one. */
	CHECK(u->start % PAGE == 0 && u->npages >= 1);
	CHECK(u->start >= *at && u->start >= r->start && u->start < r->end);
	CHECK(u->npages <= (r->end - u->start) / PAGE);
	*at = u->start + u->npages * PAGE;
	CHECK(*at <= r->end);
	/* Its bytes inside the data section. */
	CHECK(u->data_off % PAGE == 0 && u->data_off >= h->data_off);
	uint64_t data_end = h->data_off + h->data_len;
	CHECK(u->data_off <= data_end && u->npages <= (data_end - u->data_off) / PAGE);
}

static void check_table(const struct snap_image *img)
{
	const struct snap_header *h = &img->h;
	uint64_t prev_end = 0;
	uint32_t stacks = 0, next_run = 0, rip_dep = SNAP_NO_BASE;
	int rip_in_text = 0, base_mapped = 0;
	for (uint32_t i = 0; i < h->nregions; i++) {
		const struct snap_region *r = &img->regions[i];
		CHECK(r->start % PAGE == 0 && r->end % PAGE == 0);
		CHECK(r->start < r->end && r->end <= SNAP_USER_TOP && r->start >= prev_end);
		prev_end = r->end;
		CHECK(r->prot <= 7 && r->kind >= SNAP_R_FILE && r->kind <= SNAP_R_SHARED);
		if (r->kind == SNAP_R_SHARED)
			CHECK(!(r->prot & PROT_WRITE) && r->run_count == 0);
		if (r->kind == SNAP_R_FILE || r->kind == SNAP_R_SHARED)
			CHECK(r->dep < h->ndeps && r->file_off % PAGE == 0);
		if (r->kind == SNAP_R_FILE) {
			if ((r->prot & PROT_EXEC) && h->ctx.rip >= r->start &&
			    h->ctx.rip < r->end) {
				rip_in_text = 1;
				rip_dep = r->dep;
			}
			base_mapped |= r->dep == h->base_dep;
		}
		if (r->kind == SNAP_R_STACK) {
			stacks++;
			CHECK(h->ctx.rsp >= r->start && h->ctx.rsp < r->end);
		}
		CHECK(r->run_first == next_run && r->run_count <= h->nruns - next_run);
		next_run += r->run_count;
		uint64_t at = r->start;
		for (uint32_t k = 0; k < r->run_count; k++)
			check_run(h, r, &img->runs[r->run_first + k], &at);
	}
	CHECK(next_run == h->nruns);
	CHECK(stacks == 1 && rip_in_text);
	/* A base is mapped privately somewhere, and is not the binary that resumes. */
	if (h->base_dep != SNAP_NO_BASE)
		CHECK(base_mapped && h->base_dep != rip_dep);
	for (uint32_t i = 0; i < h->ndeps; i++) {
		const struct snap_dep *d = &img->deps[i];
		CHECK(d->path_len >= 1 && d->path_off < h->strings_len);
		CHECK(d->path_len < h->strings_len - d->path_off);
		const char *path = snap_dep_path(img, i);
		CHECK(path == img->strings + d->path_off);
		CHECK(path[0] == '/' && strlen(path) == d->path_len);
	}
}

/* One memfd for the whole run, refilled with each input. */
static int file_fd = -1;
static char file_path[64];
static FILE *devnull;

static void write_memfd(const uint8_t *file, size_t size)
{
	if (file_fd < 0) {
		file_fd = memfd_create("fuzz_snap", MFD_CLOEXEC);
		CHECK(file_fd >= 0);
		snprintf(file_path, sizeof file_path, "/proc/self/fd/%d", file_fd);
		devnull = fopen("/dev/null", "w");
		CHECK(devnull != NULL);
	}
	CHECK(ftruncate(file_fd, 0) == 0);
	size_t done = 0;
	while (done < size) {
		ssize_t n = pwrite(file_fd, file + done, size - done, (off_t)done);
		CHECK(n > 0);
		done += (size_t)n;
	}
}

/* snap_open must give the answer snap_parse gave on the same bytes. */
static void check_open(const uint8_t *file, size_t size, int parsed, const char *parse_err)
{
	write_memfd(file, size);
	struct snap_image img;
	char err[256] = "";
	int fd = -1;
	int rc = snap_open(file_path, &fd, &img, err, sizeof err);
	CHECK(rc == parsed);
	if (rc != 0) {
		/* img is left as it was when snap_open fails before parsing: not checked. */
		CHECK(fd == -1);
		if (size >= HEADER_SIZE)
			CHECK(strcmp(err, parse_err) == 0);
		return;
	}
	CHECK(fd >= 0);
	const struct snap_header *h = &img.h;
	int data_ok = data_hash(file + h->data_off, h->data_len) == h->data_hash;
	char verify_err[256] = "";
	CHECK((snap_verify_data(fd, &img, verify_err, sizeof verify_err) == 0) == data_ok);
	CHECK(data_ok || strstr(verify_err, "data checksum") != NULL);
	close(fd);
	snap_image_free(&img);
	CHECK((snap_inspect(file_path, devnull, 1) == 0) == data_ok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int fix_hashes = data[0] & 1;
	data++;
	size--;

	uint8_t *file = exact_copy(data, size);
	struct snap_header h;
	memset(&h, 0, sizeof h);
	memcpy(&h, file, size < HEADER_SIZE ? size : HEADER_SIZE);
	if (fix_hashes)
		fix_up(&h, file, size);

	uint8_t *hdr = exact_copy((const uint8_t *)&h, HEADER_SIZE);
	size_t tlen = 0;
	if (inside(h.table_off, h.table_len, size))
		tlen = (size_t)h.table_len;
	uint8_t *table = exact_copy(tlen ? file + h.table_off : NULL, tlen);

	struct snap_image img;
	memset(&img, 0xA5, sizeof img);
	char err[256];
	memset(err, 0, sizeof err);
	int rc = snap_parse(hdr, HEADER_SIZE, table, tlen, size, &img, err, sizeof err);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		check_header(&img, hdr, size);
		CHECK(memcmp(img.table, table, tlen) == 0);
		check_table(&img);
		snap_image_free(&img);
		CHECK(img.table == NULL);
	} else {
		CHECK(err[0] != 0 && memchr(err, 0, sizeof err) != NULL);
		CHECK(img.table == NULL && img.regions == NULL && img.strings == NULL);
	}
	free(table);
	free(hdr);

	check_open(file, size, rc, err);
	free(file);
	return 0;
}
