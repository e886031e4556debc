/*
 * Tests for the snapshot file format checks (src/snap/format.c).
 *
 * snap_parse reads a header and table from a file we must not trust: a restore
 * maps what it describes with MAP_FIXED, so every range it lets through lands
 * in the address space. The tests build a small valid image in memory (see
 * build_image: a binary's text and data, a heap, a library's text, the stack;
 * two runs of saved pages) and then break exactly one thing per case. Where
 * the thing broken is covered by a checksum, the checksums are recomputed, so
 * the case reaches the check it is about instead of stopping at the checksum;
 * where possible the case is otherwise valid, so that removing the check makes
 * the image parse and the test fail.
 *
 * Every case goes through snap_parse with the header and table each placed
 * right before an inaccessible page (a read past either faults), and, unless
 * it is about what snap_open itself hands to snap_parse, through snap_open on
 * a file, which must give the same answer. snap_parse checks its own copy of
 * the table, so a read past the strings is only seen by the ASan build
 * (build-asan, run by `make test-unit`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fenced.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap/snap.h"

#define PAGE ((uint64_t)SNAP_PAGE)
#define TABLE_OFF PAGE /* where build_image puts the table */

/* The address space of the base image (what a small Python worker looks like with ASLR off). */
#define TEXT_START 0x555555554000ull /* the binary's text, r-x, dep 0 */
#define TEXT_END 0x555555556000ull
#define DATA_START 0x555555556000ull /* its data, rw-, dep 0, one saved page */
#define DATA_END 0x555555558000ull
#define DATA_RUN 0x555555557000ull
#define HEAP_START 0x555555559000ull /* heap, rw-, no saved pages */
#define HEAP_END 0x55555557a000ull
#define LIBC_START 0x7ffff7dd0000ull /* libc text, r-x, dep 1 */
#define LIBC_END 0x7ffff7dd4000ull
#define STACK_START 0x7ffffffde000ull /* the stack, rw-, two saved pages at its top */
#define STACK_END 0x7ffffffff000ull
#define STACK_RUN 0x7fffffffd000ull
#define RIP (TEXT_START + 0x1123)
#define RSP 0x7fffffffe5c0ull

enum { R_TEXT, R_DATA, R_HEAP, R_LIBC, R_STACK, BASE_REGIONS };
enum { RUN_DATA, RUN_STACK, BASE_RUNS };

#define PYTHON_PATH "/usr/bin/python3.11"
#define LIBC_PATH "/usr/lib/x86_64-linux-gnu/libc.so.6"

/* A snapshot described field by field; build_image lays it out into a file. */
struct spec {
	struct snap_header h; /* layout fields (counts, offsets, hashes) are filled in by build */
	struct snap_region regions[8];
	uint32_t nregions;
	struct snap_run runs[8]; /* data_off is assigned by build */
	uint32_t nruns;
	struct snap_dep deps[4];
	uint32_t ndeps;
	char strings[256];
	uint32_t strings_len;
};

/* A laid-out snapshot file; the pointers alias buf. */
struct image {
	uint8_t *buf;
	size_t len; /* also the file size the header records */
	struct snap_header *h;
	struct snap_region *regions;
	struct snap_run *runs;
	struct snap_dep *deps;
	char *strings;
	uint64_t table_len; /* as laid out, at TABLE_OFF */
	uint64_t data_off, data_len;
};

/* ---- building images ---- */

/* Image buffers not yet freed, so that a test that fails midway does not leak them. */
static uint8_t *live[8];

static void track(uint8_t *buf)
{
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
		if (!live[i]) {
			live[i] = buf;
			return;
		}
	}
	fail_msg("more than %zu images alive", sizeof live / sizeof live[0]);
}

static void untrack(uint8_t *buf)
{
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		if (live[i] == buf)
			live[i] = NULL;
}

static uint32_t add_region(struct spec *s, uint64_t start, uint64_t end, uint32_t prot,
			   uint32_t kind)
{
	assert_true(s->nregions < 8);
	struct snap_region *r = &s->regions[s->nregions];
	memset(r, 0, sizeof *r);
	r->start = start;
	r->end = end;
	r->prot = prot;
	r->kind = kind;
	return s->nregions++;
}

/* Runs must be added in region order; build_image sets each region's run_first. */
static void add_run(struct spec *s, uint32_t region, uint64_t start, uint64_t npages)
{
	assert_true(s->nruns < 8);
	s->regions[region].run_count++;
	s->runs[s->nruns++] = (struct snap_run){.start = start, .npages = npages};
}

static void clear_runs(struct spec *s)
{
	for (uint32_t i = 0; i < s->nregions; i++)
		s->regions[i].run_count = 0;
	s->nruns = 0;
}

static uint32_t add_dep(struct spec *s, const char *path, uint64_t ino)
{
	size_t n = strlen(path);
	assert_true(s->ndeps < 4 && s->strings_len + n + 1 <= sizeof s->strings);
	s->deps[s->ndeps] = (struct snap_dep){.path_off = s->strings_len,
					      .path_len = (uint32_t)n,
					      .dev = 0x803,
					      .ino = ino,
					      .size = 0x1000000 + ino,
					      .mtime_sec = 1700000000,
					      .mtime_nsec = 123456789};
	memcpy(s->strings + s->strings_len, path, n + 1);
	s->strings_len += (uint32_t)n + 1;
	return s->ndeps++;
}

static void base_spec(struct spec *s)
{
	memset(s, 0, sizeof *s);
	struct snap_header *h = &s->h;
	h->created_unix_ns = 1700000000123456789ull;
	h->ctx = (struct snap_ctx){.rbx = 1, .rbp = RSP + 0x40, .r12 = 3, .r13 = 4, .r14 = 5,
				   .r15 = 6, .rsp = RSP, .rip = RIP, .mxcsr = 0x1f80,
				   .fpucw = 0x37f, .fs_base = 0x7ffff7d8a740};
	h->brk = HEAP_END;
	h->vdso_start = 0x7ffff7fc1000;
	h->rseq_addr = 0x7ffff7d8ae00;
	h->rseq_len = 32;
	h->rseq_sig = 0x53053053;
	h->tid_offset = 0x2d0;
	h->sigmask = 1ull << 13;
	h->sigs[1].handler = 0x7ffff7dd1000;
	h->base_dep = SNAP_NO_BASE;
	strcpy(h->kernel, "x86_64 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1");
	strcpy(h->cpu, "Test CPU @ 3.00GHz flags:0123456789abcdef");

	uint32_t python = add_dep(s, PYTHON_PATH, 1001);
	uint32_t libc = add_dep(s, LIBC_PATH, 2002);
	uint32_t r = add_region(s, TEXT_START, TEXT_END, 5, SNAP_R_FILE);
	s->regions[r].dep = python;
	r = add_region(s, DATA_START, DATA_END, 3, SNAP_R_FILE);
	s->regions[r].dep = python;
	s->regions[r].file_off = 0x2000;
	add_run(s, r, DATA_RUN, 1);
	add_region(s, HEAP_START, HEAP_END, 3, SNAP_R_HEAP);
	r = add_region(s, LIBC_START, LIBC_END, 5, SNAP_R_FILE);
	s->regions[r].dep = libc;
	s->regions[r].file_off = 0x26000;
	r = add_region(s, STACK_START, STACK_END, 3, SNAP_R_STACK);
	add_run(s, r, STACK_RUN, 2);
}

/* data_hash as the writer and snap_verify_data compute it. */
static uint64_t data_hash(const uint8_t *p, uint64_t len)
{
	return snap_data_hash(0, p, (size_t)len);
}

static void seal_table_and_header(struct image *im)
{
	im->h->table_hash = snap_hash(0, im->buf + TABLE_OFF, im->table_len);
	im->h->header_hash = 0;
	im->h->header_hash = snap_hash(0, im->h, sizeof *im->h);
}

/* Recompute every checksum over the bytes as laid out (whatever the header now says). */
static void seal(struct image *im)
{
	im->h->data_hash = data_hash(im->buf + im->data_off, im->data_len);
	seal_table_and_header(im);
}

static void build_image(struct image *im, const struct spec *s)
{
	uint64_t tlen = (uint64_t)s->nregions * sizeof(struct snap_region) +
			(uint64_t)s->nruns * sizeof(struct snap_run) +
			(uint64_t)s->ndeps * sizeof(struct snap_dep) + s->strings_len;
	uint64_t data_off = (TABLE_OFF + tlen + PAGE - 1) / PAGE * PAGE;
	uint64_t pages = 0;
	for (uint32_t i = 0; i < s->nruns; i++)
		pages += s->runs[i].npages;
	memset(im, 0, sizeof *im);
	im->len = data_off + pages * PAGE;
	im->buf = calloc(1, im->len);
	assert_non_null(im->buf);
	track(im->buf);
	im->table_len = tlen;
	im->data_off = data_off;
	im->data_len = pages * PAGE;

	im->h = (struct snap_header *)im->buf;
	*im->h = s->h;
	memcpy(im->h->magic, SNAP_MAGIC, 8);
	im->h->version = SNAP_VERSION;
	im->h->header_size = sizeof(struct snap_header);
	im->h->file_size = im->len;
	im->h->nregions = s->nregions;
	im->h->nruns = s->nruns;
	im->h->ndeps = s->ndeps;
	im->h->strings_len = s->strings_len;
	im->h->table_off = TABLE_OFF;
	im->h->table_len = tlen;
	im->h->data_off = data_off;
	im->h->data_len = pages * PAGE;

	im->regions = (struct snap_region *)(im->buf + TABLE_OFF);
	im->runs = (struct snap_run *)(im->regions + s->nregions);
	im->deps = (struct snap_dep *)(im->runs + s->nruns);
	im->strings = (char *)(im->deps + s->ndeps);
	memcpy(im->regions, s->regions, s->nregions * sizeof(struct snap_region));
	memcpy(im->runs, s->runs, s->nruns * sizeof(struct snap_run));
	memcpy(im->deps, s->deps, s->ndeps * sizeof(struct snap_dep));
	memcpy(im->strings, s->strings, s->strings_len);

	uint32_t next_run = 0;
	for (uint32_t i = 0; i < s->nregions; i++) {
		im->regions[i].run_first = next_run;
		next_run += s->regions[i].run_count;
	}

	uint64_t at = data_off;
	for (uint32_t i = 0; i < s->nruns; i++) {
		im->runs[i].data_off = at;
		at += s->runs[i].npages * PAGE;
	}
	for (uint64_t i = data_off; i < im->len; i++)
		im->buf[i] = (uint8_t)(i * 131 + 7);
	seal(im);
}

static void build_base(struct image *im)
{
	struct spec s;
	base_spec(&s);
	build_image(im, &s);
}

/*
 * A delta (snap.h, A BASE): the same process as base_spec's, restored from a
 * base image and checkpointed again. A region between the heap and libc maps
 * the base's file (dep 2) copy-on-write, with two pages of its own laid over
 * it; the header names the base. Regions: text, data, heap, the base's,
 * libc, stack; runs: data, the base region's, stack.
 */
#define BASE_PATH "/var/lib/thaw/base.snap"
#define BASE_DEP 2u
#define BASE_HASH 0x0123456789abcdefull
#define BASEMAP_START 0x7ffff7a00000ull /* 64 pages, rw-, file offset 0x5000 */
#define BASEMAP_END 0x7ffff7a40000ull
#define BASEMAP_RUN 0x7ffff7a10000ull /* two pages of its own */
enum { D_TEXT, D_DATA, D_HEAP, D_BASEMAP, D_LIBC, D_STACK, DELTA_REGIONS };

static void delta_spec(struct spec *s)
{
	base_spec(s);
	clear_runs(s);
	struct snap_region libc = s->regions[R_LIBC], stack = s->regions[R_STACK];
	s->nregions = R_LIBC;
	add_run(s, D_DATA, DATA_RUN, 1);
	uint32_t dep = add_dep(s, BASE_PATH, 3003);
	uint32_t r = add_region(s, BASEMAP_START, BASEMAP_END, 3, SNAP_R_FILE);
	s->regions[r].dep = dep;
	s->regions[r].file_off = 0x5000;
	add_run(s, r, BASEMAP_RUN, 2);
	s->regions[s->nregions++] = libc;
	s->regions[s->nregions++] = stack;
	add_run(s, D_STACK, STACK_RUN, 2);
	s->h.base_dep = dep;
	s->h.base_hash = BASE_HASH;
}

static void build_delta(struct image *im)
{
	struct spec s;
	delta_spec(&s);
	build_image(im, &s);
}

static void image_free(struct image *im)
{
	untrack(im->buf);
	free(im->buf);
	memset(im, 0, sizeof *im);
}

/* After each test: the images a failed assertion jumped past. */
static int free_live_images(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
		free(live[i]);
		live[i] = NULL;
	}
	return 0;
}

/* ---- parsing them ---- */

/* A copy of some bytes that ends exactly at a PROT_NONE page. */

/* snap_parse on the image's header and laid-out table, for a file of file_size bytes. */
static int parse_sized(const struct image *im, uint64_t file_size, struct snap_image *img,
		       char *err, size_t errlen)
{
	struct fenced fh, ft;
	const void *hdr = fenced_copy(&fh, im->buf, sizeof(struct snap_header));
	const void *table = fenced_copy(&ft, im->buf + TABLE_OFF, im->table_len);
	memset(img, 0xA5, sizeof *img); /* a refusal must not leave this behind */
	err[0] = 0;
	int rc = snap_parse(hdr, sizeof(struct snap_header), table, im->table_len, file_size, img,
			    err, errlen);
	fenced_free(&ft);
	fenced_free(&fh);
	return rc;
}

static int parse(const struct image *im, struct snap_image *img, char *err, size_t errlen)
{
	return parse_sized(im, im->len, img, err, errlen);
}

static char tmp_dir[64];
static char tmp_path[128];

static int make_tmp_dir(void **state)
{
	(void)state;
	strcpy(tmp_dir, "/tmp/thaw-test-snap-XXXXXX");
	if (!mkdtemp(tmp_dir))
		return -1;
	snprintf(tmp_path, sizeof tmp_path, "%s/image.snap", tmp_dir);
	return 0;
}

static int remove_tmp_dir(void **state)
{
	(void)state;
	char ws[160];
	snprintf(ws, sizeof ws, "%s.ws", tmp_path);
	unlink(ws);
	unlink(tmp_path);
	return rmdir(tmp_dir);
}

/* Write the first len bytes of the image (zero-extended past its end) to tmp_path. */
static const char *write_file(const struct image *im, size_t len)
{
	int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	size_t n = len < im->len ? len : im->len;
	assert_int_equal(write(fd, im->buf, n), (ssize_t)n);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	close(fd);
	return tmp_path;
}

static void assert_image_cleared(const struct snap_image *img)
{
	assert_null(img->table);
	assert_null(img->regions);
	assert_null(img->runs);
	assert_null(img->deps);
	assert_null(img->strings);
}

static void assert_mentions(const char *err, const char *reason)
{
	if (!strstr(err, reason))
		fail_msg("error \"%s\" does not mention \"%s\"", err, reason);
}

static void expect_parse_rejected_sized(const struct image *im, uint64_t file_size,
					const char *reason)
{
	struct snap_image img;
	char err[256];
	int rc = parse_sized(im, file_size, &img, err, sizeof err);
	if (rc == 0) {
		snap_image_free(&img);
		fail_msg("image accepted; expected a refusal mentioning \"%s\"", reason);
	}
	assert_int_equal(rc, -1);
	assert_mentions(err, reason);
	assert_image_cleared(&img);
}

static void expect_parse_rejected(const struct image *im, const char *reason)
{
	expect_parse_rejected_sized(im, im->len, reason);
}

/* snap_open on the image written to a file of file_len bytes: refused for reason, fd untouched. */
static void expect_open_rejected(const struct image *im, size_t file_len, const char *reason)
{
	struct snap_image img;
	char err[256] = "";
	int fd = -7;
	memset(&img, 0xA5, sizeof img);
	int rc = snap_open(write_file(im, file_len), &fd, &img, err, sizeof err);
	if (rc == 0) {
		close(fd);
		snap_image_free(&img);
		fail_msg("file accepted by snap_open; expected a refusal mentioning \"%s\"", reason);
	}
	assert_int_equal(rc, -1);
	assert_int_equal(fd, -7);
	assert_mentions(err, reason);
}

/* Refused by snap_parse and by snap_open on the same bytes, both for `reason`. */
static void expect_rejected(const struct image *im, const char *reason)
{
	expect_parse_rejected(im, reason);
	expect_open_rejected(im, im->len, reason);
}

static void expect_accepted(const struct image *im)
{
	struct snap_image img;
	char err[256];
	if (parse(im, &img, err, sizeof err) != 0)
		fail_msg("valid image refused: %s", err);
	snap_image_free(&img);
}

/* ---- the valid image ---- */

static void test_valid_image_parses_into_a_private_copy(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_image img;
	char err[256];
	if (parse(&im, &img, err, sizeof err) != 0)
		fail_msg("valid image refused: %s", err);

	assert_memory_equal(&img.h, im.h, sizeof img.h);
	assert_int_equal(img.h.nregions, BASE_REGIONS);
	assert_int_equal(img.h.nruns, BASE_RUNS);
	assert_int_equal(img.h.ndeps, 2);
	assert_non_null(img.table);
	assert_ptr_equal(img.regions, img.table);
	assert_memory_equal(img.regions, im.regions, im.table_len);
	assert_ptr_equal(img.runs, (void *)(img.regions + BASE_REGIONS));
	assert_ptr_equal(img.deps, (void *)(img.runs + BASE_RUNS));
	assert_ptr_equal(img.strings, (void *)(img.deps + 2));
	assert_int_equal(img.regions[R_STACK].kind, SNAP_R_STACK);
	assert_int_equal(img.runs[RUN_STACK].start, STACK_RUN);
	assert_int_equal(img.runs[RUN_STACK].data_off, im.data_off + PAGE);
	assert_string_equal(snap_dep_path(&img, 0), PYTHON_PATH);
	assert_string_equal(snap_dep_path(&img, 1), LIBC_PATH);
	assert_int_equal(img.deps[1].ino, 2002);

	/* The table is a copy: the caller's buffer may go away. */
	im.regions[R_TEXT].start = 0;
	assert_int_equal(img.regions[R_TEXT].start, TEXT_START);
	snap_image_free(&img);
	assert_image_cleared(&img);
	snap_image_free(&img); /* freeing twice is harmless: the image was cleared */
	image_free(&im);
}

static void test_valid_image_file_opens_and_its_data_verifies(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_image img;
	char err[256];
	int fd = -1;
	if (snap_open(write_file(&im, im.len), &fd, &img, err, sizeof err) != 0)
		fail_msg("valid image file refused: %s", err);
	assert_true(fd >= 0);
	assert_int_equal(img.h.file_size, im.len);
	assert_string_equal(snap_dep_path(&img, 1), LIBC_PATH);
	if (snap_verify_data(fd, &img, err, sizeof err) != 0)
		fail_msg("data of a valid image refused: %s", err);
	close(fd);
	snap_image_free(&img);

	/* Without fd_out the file is closed and the image still returned. */
	assert_int_equal(snap_open(tmp_path, NULL, &img, err, sizeof err), 0);
	assert_int_equal(img.h.nregions, BASE_REGIONS);
	snap_image_free(&img);
	image_free(&im);
}

static char *inspect(const char *path, int verify_data, int *rc)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	*rc = snap_inspect(path, f, verify_data);
	fclose(f);
	return out;
}

static void test_inspect_prints_regions_deps_and_data_check(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	int rc;
	char *out = inspect(write_file(&im, im.len), 1, &rc);
	assert_int_equal(rc, 0);
	assert_mentions(out, "5 regions, 2 runs");
	assert_mentions(out, "555555554000-555555556000 r-x file");
	assert_mentions(out, "555555556000-555555558000 rw- file");
	assert_mentions(out, "555555559000-55555557a000 rw- heap");
	assert_mentions(out, "7ffff7dd0000-7ffff7dd4000 r-x file");
	assert_mentions(out, "7ffffffde000-7ffffffff000 rw- stack");
	assert_mentions(out, "KiB saved      8 KiB"); /* the stack's two pages */
	assert_mentions(out, "KiB " PYTHON_PATH);
	assert_mentions(out, "  " LIBC_PATH " (dev 803 inode 2002");
	assert_mentions(out, "rip 0x555555555123 rsp 0x7fffffffe5c0");
	assert_mentions(out, "data: checksum ok");
	free(out);

	out = inspect(tmp_path, 0, &rc);
	assert_int_equal(rc, 0);
	assert_null(strstr(out, "data:"));
	free(out);
	image_free(&im);
}

static void test_inspect_says_why_an_image_is_invalid(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.h->ctx.rsp = STACK_END;
	seal(&im);
	int rc;
	char *out = inspect(write_file(&im, im.len), 1, &rc);
	assert_int_equal(rc, -1);
	assert_mentions(out, "invalid snapshot: saved stack pointer outside the stack");
	free(out);
	image_free(&im);
}

/* Every range check is inclusive where it should be: each edge, taken alone, is valid. */
static void test_ranges_touching_their_limits_are_accepted(void **state)
{
	(void)state;
	struct spec s;
	struct image im;

	/* The stack ends exactly at the top of user space; rsp at its lowest byte. */
	base_spec(&s);
	s.regions[R_STACK].start = SNAP_USER_TOP - 0x21000;
	s.regions[R_STACK].end = SNAP_USER_TOP;
	s.runs[RUN_STACK].start = SNAP_USER_TOP - 2 * PAGE;
	s.h.ctx.rsp = SNAP_USER_TOP - 0x21000;
	build_image(&im, &s);
	expect_accepted(&im);
	image_free(&im);

	/* rip on the last byte of the text; rsp on the last byte of the stack. */
	build_base(&im);
	im.h->ctx.rip = TEXT_END - 1;
	im.h->ctx.rsp = STACK_END - 1;
	seal(&im);
	expect_accepted(&im);
	image_free(&im);

	/* A run filling its region, regions back to back, a region at address 0,
	 * a dep index on a region that is not a file (ignored). */
	base_spec(&s);
	clear_runs(&s);
	s.regions[R_TEXT].start = 0;
	add_run(&s, R_DATA, DATA_START, (DATA_END - DATA_START) / PAGE);
	add_run(&s, R_STACK, STACK_RUN, 2);
	s.regions[R_HEAP].start = DATA_END;
	s.regions[R_HEAP].dep = 99;
	build_image(&im, &s);
	expect_accepted(&im);
	image_free(&im);

	/* Thread state at its limits. */
	build_base(&im);
	im.h->rseq_len = 4096;
	im.h->tid_offset = 4096;
	seal(&im);
	expect_accepted(&im);
	image_free(&im);

	/* An empty data section (no runs) and strings that only hold the deps. */
	base_spec(&s);
	clear_runs(&s);
	build_image(&im, &s);
	assert_int_equal(im.h->data_len, 0);
	assert_int_equal(im.h->data_off, im.len);
	expect_accepted(&im);
	image_free(&im);
}

/* ---- header ---- */

static void test_bad_magic_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.h->magic[7] = '2';
	seal(&im);
	expect_rejected(&im, "bad magic");
	image_free(&im);
}

static void test_other_format_version_is_rejected(void **state)
{
	(void)state;
	assert_int_equal(SNAP_VERSION, 2);
	struct image im;
	build_base(&im);
	/* Version 1 had no base fields: the host rebuilds such an image. */
	const uint32_t versions[] = {1, 3, 0, UINT32_MAX};
	for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
		im.h->version = versions[i];
		seal(&im);
		char want[64];
		snprintf(want, sizeof want, "snapshot format version %u, this thaw reads 2",
			 versions[i]);
		expect_rejected(&im, want);
	}
	image_free(&im);
}

static void test_wrong_header_size_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	const uint32_t sizes[] = {sizeof(struct snap_header) - 8, sizeof(struct snap_header) + 8,
				  SNAP_PAGE, 0, UINT32_MAX};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		im.h->header_size = sizes[i];
		seal(&im);
		expect_rejected(&im, "header size");
	}
	image_free(&im);
}

static void test_header_shorter_than_its_struct_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_image img;
	char err[256];
	struct fenced fh;
	size_t short_len = sizeof(struct snap_header) - 1;
	const void *hdr = fenced_copy(&fh, im.buf, short_len);
	assert_int_equal(snap_parse(hdr, short_len, im.buf + TABLE_OFF, im.table_len, im.len, &img,
				    err, sizeof err),
			 -1);
	assert_mentions(err, "too short");
	assert_image_cleared(&img);
	fenced_free(&fh);

	expect_open_rejected(&im, short_len, "too short");
	expect_open_rejected(&im, 0, "too short");
	image_free(&im);
}

static void test_header_checksum_mismatch_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.h->created_unix_ns ^= 1; /* nothing else looks at this field */
	expect_rejected(&im, "header checksum");
	seal(&im);
	expect_accepted(&im);
	im.h->header_hash ^= 1ull << 63;
	expect_rejected(&im, "header checksum");
	image_free(&im);
}

static void test_table_checksum_mismatch_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.deps[0].ino ^= 1; /* nothing else looks at this field */
	expect_rejected(&im, "table checksum");
	im.strings[im.h->strings_len - 2] ^= 0x20; /* a path byte, last of the table */
	seal(&im);
	expect_accepted(&im);
	im.strings[im.h->strings_len - 2] ^= 0x20;
	expect_rejected(&im, "table checksum");
	image_free(&im);
}

/* data_hash is not read at restore (it would cost reading every page), only by snap_verify_data. */
static void test_data_checksum_mismatch_is_found_by_verify_data_only(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.buf[im.len - 1] ^= 1; /* the last data byte */
	expect_accepted(&im);

	struct snap_image img;
	char err[256] = "";
	int fd = -1;
	assert_int_equal(snap_open(write_file(&im, im.len), &fd, &img, err, sizeof err), 0);
	assert_int_equal(snap_verify_data(fd, &img, err, sizeof err), -1);
	assert_mentions(err, "data checksum");
	close(fd);
	snap_image_free(&img);

	int rc;
	char *out = inspect(tmp_path, 1, &rc);
	assert_int_equal(rc, -1);
	assert_mentions(out, "data: INVALID: data checksum");
	free(out);
	out = inspect(tmp_path, 0, &rc);
	assert_int_equal(rc, 0);
	free(out);

	/* The first data byte is covered too, and a byte before the data section is not data. */
	im.buf[im.len - 1] ^= 1;
	im.buf[im.data_off] ^= 1;
	assert_int_equal(snap_open(write_file(&im, im.len), &fd, &img, err, sizeof err), 0);
	assert_int_equal(snap_verify_data(fd, &img, err, sizeof err), -1);
	close(fd);
	snap_image_free(&img);
	im.buf[im.data_off] ^= 1;
	im.buf[im.data_off - 1] ^= 1; /* padding after the table */
	assert_int_equal(snap_open(write_file(&im, im.len), &fd, &img, err, sizeof err), 0);
	assert_int_equal(snap_verify_data(fd, &img, err, sizeof err), 0);
	close(fd);
	snap_image_free(&img);
	image_free(&im);
}

static void test_verify_data_fails_when_the_file_shrank_after_open(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_image img;
	char err[256];
	int fd = -1;
	assert_int_equal(snap_open(write_file(&im, im.len), &fd, &img, err, sizeof err), 0);
	assert_int_equal(truncate(tmp_path, (off_t)(im.len - 1)), 0);
	assert_int_equal(snap_verify_data(fd, &img, err, sizeof err), -1);
	assert_mentions(err, "cannot read");
	close(fd);
	snap_image_free(&img);
	image_free(&im);
}

static void test_file_shorter_or_longer_than_header_says_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	expect_parse_rejected_sized(&im, im.len - 1, "truncated");
	expect_parse_rejected_sized(&im, im.len - PAGE, "truncated");
	expect_parse_rejected_sized(&im, im.len + 1, "truncated");
	expect_parse_rejected_sized(&im, UINT64_MAX, "truncated");
	expect_open_rejected(&im, im.len - 1, "truncated");
	expect_open_rejected(&im, im.data_off, "truncated");
	expect_open_rejected(&im, im.len + PAGE, "truncated");
	image_free(&im);
}

/* Counts over the limits, with table_len agreeing with them (so only the limits are wrong). */
static void test_counts_over_the_limits_are_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_header orig = *im.h;
	for (int c = 0; c < 5; c++) {
		*im.h = orig;
		switch (c) {
		case 0: im.h->nregions = 0; break;
		case 1: im.h->nregions = SNAP_MAX_REGIONS + 1; break;
		case 2: im.h->nruns = SNAP_MAX_RUNS + 1; break;
		case 3: im.h->ndeps = SNAP_MAX_DEPS + 1; break;
		case 4: im.h->strings_len = SNAP_MAX_STRINGS + 1; break;
		}
		im.h->table_len = (uint64_t)im.h->nregions * sizeof(struct snap_region) +
				  (uint64_t)im.h->nruns * sizeof(struct snap_run) +
				  (uint64_t)im.h->ndeps * sizeof(struct snap_dep) + im.h->strings_len;
		seal_table_and_header(&im);
		expect_parse_rejected(&im, "counts out of range");
		expect_open_rejected(&im, im.len, "counts out of range");
	}
	/* Exactly at the limits the counts pass, and the table's length is what is wrong. */
	*im.h = orig;
	im.h->nregions = SNAP_MAX_REGIONS;
	im.h->nruns = SNAP_MAX_RUNS;
	im.h->ndeps = SNAP_MAX_DEPS;
	im.h->strings_len = SNAP_MAX_STRINGS;
	seal_table_and_header(&im);
	expect_parse_rejected(&im, "table length does not match");
	image_free(&im);
}

static void test_table_len_not_matching_counts_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	/* The header's table_len. */
	im.h->table_len = im.table_len + 8;
	seal_table_and_header(&im);
	expect_rejected(&im, "table length does not match");
	im.h->table_len = im.table_len - 1;
	seal_table_and_header(&im);
	expect_rejected(&im, "table length does not match");
	im.h->table_len = im.table_len + (1ull << 32) * sizeof(struct snap_run);
	seal_table_and_header(&im);
	expect_rejected(&im, "table length does not match");
	/* A count (the table bytes stay as laid out). */
	im.h->table_len = im.table_len;
	im.h->strings_len -= 1;
	seal_table_and_header(&im);
	expect_rejected(&im, "table length does not match");
	image_free(&im);

	/* The length the caller read must be the one the header claims. */
	build_base(&im);
	struct snap_image img;
	char err[256];
	uint8_t *longer = calloc(1, im.table_len + 8);
	assert_non_null(longer);
	memcpy(longer, im.buf + TABLE_OFF, im.table_len);
	assert_int_equal(snap_parse(im.buf, sizeof(struct snap_header), longer, im.table_len + 8,
				    im.len, &img, err, sizeof err),
			 -1);
	assert_mentions(err, "table length does not match");
	struct fenced ft;
	const void *shorter = fenced_copy(&ft, im.buf + TABLE_OFF, im.table_len - 1);
	assert_int_equal(snap_parse(im.buf, sizeof(struct snap_header), shorter, im.table_len - 1,
				    im.len, &img, err, sizeof err),
			 -1);
	assert_mentions(err, "table length does not match");
	fenced_free(&ft);
	free(longer);
	image_free(&im);
}

/* The table bytes handed over are the right ones; only where the header says they lie is wrong. */
static void test_table_outside_the_file_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	const uint64_t offs[] = {
		0,                               /* on the header */
		PAGE - 1,                        /* overlapping the header's page */
		im.len - im.table_len + 1,       /* its last byte past the end */
		im.len + PAGE,                   /* past the end */
		UINT64_MAX - im.table_len + 1,   /* table_off + table_len wraps to 0 */
		UINT64_MAX - 100,                /* wraps to a small number */
	};
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		im.h->table_off = offs[i];
		seal(&im);
		expect_parse_rejected(&im, "table lies outside the file");
	}
	/* snap_open cannot read such a table and says so through the length. */
	im.h->table_off = im.len - im.table_len + 1;
	seal(&im);
	expect_open_rejected(&im, im.len, "table");
	image_free(&im);
}

static void test_data_section_outside_the_file_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_header orig = *im.h;
	for (int c = 0; c < 8; c++) {
		*im.h = orig;
		switch (c) {
		case 0: /* unaligned, though the runs would still fit in it */
			im.h->data_off -= 8;
			im.h->data_len += 8;
			break;
		case 1: /* over the table; long enough to hold the runs */
			im.h->data_off = TABLE_OFF;
			im.h->data_len = im.len - TABLE_OFF;
			break;
		case 2: /* before the table */
			im.h->data_off = 0;
			im.h->data_len = im.len;
			break;
		case 3: /* one byte too long */
			im.h->data_len += 1;
			break;
		case 4: /* starting past the end, empty */
			im.h->data_off = im.len + PAGE;
			im.h->data_len = 0;
			break;
		case 5: /* data_off + data_len wraps to inside the file */
			im.h->data_off = UINT64_MAX - PAGE + 1;
			im.h->data_len = 2 * PAGE;
			break;
		case 6:
			im.h->data_len = UINT64_MAX;
			break;
		case 7: /* data_len wraps data_off back onto the header */
			im.h->data_len = UINT64_MAX - im.h->data_off + 1;
			break;
		}
		seal_table_and_header(&im);
		expect_rejected(&im, "data section lies outside the file");
	}
	image_free(&im);
}

static void test_unterminated_identity_strings_are_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	char kernel[sizeof im.h->kernel];
	memcpy(kernel, im.h->kernel, sizeof kernel);
	memset(im.h->kernel, 'k', sizeof im.h->kernel);
	seal(&im);
	expect_rejected(&im, "unterminated identity string");
	memcpy(im.h->kernel, kernel, sizeof kernel);
	memset(im.h->cpu, 'c', sizeof im.h->cpu);
	seal(&im);
	expect_rejected(&im, "unterminated identity string");
	im.h->cpu[sizeof im.h->cpu - 1] = 0; /* a full-length string is fine */
	seal(&im);
	expect_accepted(&im);
	image_free(&im);
}

static void test_thread_state_out_of_range_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	struct snap_header orig = *im.h;
	for (int c = 0; c < 4; c++) {
		*im.h = orig;
		switch (c) {
		case 0: im.h->rseq_len = 4097; break;
		case 1: im.h->tid_offset = 4100; break;
		case 2: im.h->tid_offset = 0x2d2; break; /* not int aligned */
		case 3: im.h->rseq_len = UINT32_MAX; break;
		}
		seal(&im);
		expect_rejected(&im, "thread state out of range");
	}
	image_free(&im);
}

/* ---- regions ---- */

static void expect_region_mutation_rejected(void (*mutate)(struct image *), const char *reason)
{
	struct image im;
	build_base(&im);
	mutate(&im);
	seal(&im);
	expect_rejected(&im, reason);
	image_free(&im);
}

static void heap_start_unaligned(struct image *im) { im->regions[R_HEAP].start += 8; }
static void heap_end_unaligned(struct image *im) { im->regions[R_HEAP].end -= 1; }
static void heap_empty(struct image *im) { im->regions[R_HEAP].start = HEAP_END; }
static void heap_inverted(struct image *im)
{
	im->regions[R_HEAP].start = HEAP_END;
	im->regions[R_HEAP].end = HEAP_START;
}
static void heap_overlaps_data(struct image *im) { im->regions[R_HEAP].start = DATA_END - PAGE; }
static void heap_and_libc_swapped(struct image *im)
{
	struct snap_region heap = im->regions[R_HEAP];
	heap.run_first = im->regions[R_LIBC].run_first;
	im->regions[R_LIBC].run_first = im->regions[R_HEAP].run_first;
	im->regions[R_HEAP] = im->regions[R_LIBC];
	im->regions[R_LIBC] = heap;
}
static void heap_above_user_space(struct image *im)
{
	im->regions[R_HEAP].start = HEAP_START;
	im->regions[R_HEAP].end = 0xfffffffffffff000ull;
}

static void test_unaligned_regions_are_rejected(void **state)
{
	(void)state;
	expect_region_mutation_rejected(heap_start_unaligned, "region 2: bad or overlapping address");
	expect_region_mutation_rejected(heap_end_unaligned, "region 2: bad or overlapping address");
}

static void test_empty_or_inverted_regions_are_rejected(void **state)
{
	(void)state;
	expect_region_mutation_rejected(heap_empty, "region 2: bad or overlapping address");
	expect_region_mutation_rejected(heap_inverted, "region 2: bad or overlapping address");
}

static void test_overlapping_or_unsorted_regions_are_rejected(void **state)
{
	(void)state;
	expect_region_mutation_rejected(heap_overlaps_data, "region 2: bad or overlapping address");
	expect_region_mutation_rejected(heap_and_libc_swapped, "region 3: bad or overlapping address");
}

static void test_regions_above_user_space_are_rejected(void **state)
{
	(void)state;
	/* The stack moved one page up, with its run and rsp: the rest is consistent. */
	struct spec s;
	struct image im;
	base_spec(&s);
	s.regions[R_STACK].start = SNAP_USER_TOP - 0x20000;
	s.regions[R_STACK].end = SNAP_USER_TOP + PAGE;
	s.runs[RUN_STACK].start = SNAP_USER_TOP - PAGE;
	s.h.ctx.rsp = SNAP_USER_TOP - 0x800;
	build_image(&im, &s);
	expect_rejected(&im, "region 4: bad or overlapping address");
	image_free(&im);

	/* A region entirely above it. */
	base_spec(&s);
	add_region(&s, SNAP_USER_TOP, SNAP_USER_TOP + PAGE, 3, SNAP_R_ANON);
	build_image(&im, &s);
	expect_rejected(&im, "region 5: bad or overlapping address");
	image_free(&im);

	expect_region_mutation_rejected(heap_above_user_space, "region 2: bad or overlapping address");
}

static void test_bad_protection_bits_are_rejected(void **state)
{
	(void)state;
	const uint32_t prots[] = {8, 0x10, 1u << 31, UINT32_MAX};
	for (size_t i = 0; i < sizeof prots / sizeof prots[0]; i++) {
		struct image im;
		build_base(&im);
		im.regions[R_HEAP].prot = prots[i];
		seal(&im);
		expect_rejected(&im, "region 2: bad protection or kind");
		image_free(&im);
	}
}

static void test_bad_kinds_are_rejected(void **state)
{
	(void)state;
	const uint32_t kinds[] = {0, SNAP_R_SHARED + 1, UINT32_MAX};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		struct image im;
		build_base(&im);
		im.regions[R_HEAP].kind = kinds[i];
		seal(&im);
		expect_rejected(&im, "region 2: bad protection or kind");
		image_free(&im);
	}
}

/* A read-only shared view of a file (glibc's gconv-modules.cache): mapped from its dep. */
static void libc_shared(struct image *im)
{
	im->regions[R_LIBC].kind = SNAP_R_SHARED;
	im->regions[R_LIBC].prot = 1;
}
static void libc_shared_writable(struct image *im)
{
	libc_shared(im);
	im->regions[R_LIBC].prot = 3;
}
static void libc_shared_without_its_file(struct image *im)
{
	libc_shared(im);
	im->regions[R_LIBC].dep = 2;
}
static void libc_shared_off_a_page(struct image *im)
{
	libc_shared(im);
	im->regions[R_LIBC].file_off = 0x26001;
}
static void data_shared_with_saved_pages(struct image *im) /* the data region has a run */
{
	im->regions[R_DATA].kind = SNAP_R_SHARED;
	im->regions[R_DATA].prot = 1;
}

static void test_read_only_shared_region_is_accepted(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	libc_shared(&im);
	seal(&im);
	expect_accepted(&im);
	image_free(&im);
}

static void test_shared_region_writable_with_pages_or_without_its_file_is_rejected(void **state)
{
	(void)state;
	const char *shared = "a shared region must be read-only, without saved pages";
	char why[96];
	snprintf(why, sizeof why, "region 3: %s", shared);
	expect_region_mutation_rejected(libc_shared_writable, why);
	snprintf(why, sizeof why, "region 1: %s", shared);
	expect_region_mutation_rejected(data_shared_with_saved_pages, why);
	expect_region_mutation_rejected(libc_shared_without_its_file, "region 3: bad file reference");
	expect_region_mutation_rejected(libc_shared_off_a_page, "region 3: bad file reference");
}

static void test_file_region_with_bad_dep_or_offset_is_rejected(void **state)
{
	(void)state;
	const uint32_t deps[] = {2, 3, UINT32_MAX};
	for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++) {
		struct image im;
		build_base(&im);
		im.regions[R_LIBC].dep = deps[i];
		seal(&im);
		expect_rejected(&im, "region 3: bad file reference");
		image_free(&im);
	}
	struct image im;
	build_base(&im);
	im.regions[R_LIBC].file_off += 0x800;
	seal(&im);
	expect_rejected(&im, "region 3: bad file reference");
	image_free(&im);

	/* With no deps at all, a file region has nothing to refer to. */
	struct spec s;
	base_spec(&s);
	s.ndeps = 0;
	s.strings_len = 0;
	build_image(&im, &s);
	expect_rejected(&im, "region 0: bad file reference");
	image_free(&im);
}

static void test_two_stack_regions_are_rejected(void **state)
{
	(void)state;
	/* The heap becomes the first stack and holds rsp; the real stack is the second. */
	struct image im;
	build_base(&im);
	im.regions[R_HEAP].kind = SNAP_R_STACK;
	im.h->ctx.rsp = HEAP_END - 0x100;
	seal(&im);
	expect_rejected(&im, "more than one stack region");
	image_free(&im);
}

static void test_missing_stack_region_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.regions[R_STACK].kind = SNAP_R_ANON;
	seal(&im);
	expect_rejected(&im, "no stack region");
	image_free(&im);
}

static void test_stack_pointer_outside_the_stack_is_rejected(void **state)
{
	(void)state;
	const uint64_t rsps[] = {STACK_END, STACK_START - 8, STACK_START - 1, 0, UINT64_MAX,
				 HEAP_START + 0x100};
	for (size_t i = 0; i < sizeof rsps / sizeof rsps[0]; i++) {
		struct image im;
		build_base(&im);
		im.h->ctx.rsp = rsps[i];
		seal(&im);
		expect_rejected(&im, "saved stack pointer outside the stack");
		image_free(&im);
	}
}

static void test_resume_address_outside_executable_file_mappings_is_rejected(void **state)
{
	(void)state;
	struct image im;
	const uint64_t rips[] = {TEXT_END, TEXT_START - 1, DATA_RUN + 0x10, 0, UINT64_MAX};
	for (size_t i = 0; i < sizeof rips / sizeof rips[0]; i++) {
		build_base(&im);
		im.h->ctx.rip = rips[i];
		seal(&im);
		expect_rejected(&im, "resume address outside executable file mappings");
		image_free(&im);
	}
	/* Executable but anonymous (JIT memory): not a place to resume. */
	build_base(&im);
	im.regions[R_HEAP].prot = 7;
	im.h->ctx.rip = HEAP_START + 0x40;
	seal(&im);
	expect_rejected(&im, "resume address outside executable file mappings");
	image_free(&im);
	/* A file mapping, readable but not executable. */
	build_base(&im);
	im.regions[R_TEXT].prot = 1;
	seal(&im);
	expect_rejected(&im, "resume address outside executable file mappings");
	image_free(&im);
	/* In the second executable file mapping is fine. */
	build_base(&im);
	im.h->ctx.rip = LIBC_START + 0x3000;
	seal(&im);
	expect_accepted(&im);
	image_free(&im);
}

/* ---- runs ---- */

static void expect_run_rejected(uint32_t run, uint64_t start, uint64_t npages, const char *reason)
{
	struct image im;
	build_base(&im);
	im.runs[run].start = start;
	im.runs[run].npages = npages;
	seal(&im);
	expect_rejected(&im, reason);
	image_free(&im);
}

static void test_runs_outside_their_region_are_rejected(void **state)
{
	(void)state;
	const char *data = "region 1 run 0: outside its region";
	const char *stack = "region 4 run 0: outside its region";
	expect_run_rejected(RUN_DATA, DATA_START - PAGE, 1, data);  /* before it */
	expect_run_rejected(RUN_DATA, DATA_RUN, 2, data);           /* running past its end */
	expect_run_rejected(RUN_DATA, DATA_END, 1, data);           /* starting at its end */
	expect_run_rejected(RUN_DATA, DATA_START + 8, 1, data);     /* unaligned, though it fits */
	expect_run_rejected(RUN_STACK, STACK_RUN + PAGE, 2, stack); /* past the top of the stack */
	expect_run_rejected(RUN_STACK, STACK_START - PAGE, 1, stack);
}

/* A run starting beyond its region's end (here in the gap before the heap) must be refused:
 * restore maps it with MAP_FIXED at that address. */
static void test_run_starting_beyond_its_region_end_is_rejected(void **state)
{
	(void)state;
	expect_run_rejected(RUN_DATA, DATA_END + PAGE, 1, "region 1 run 0: outside its region");
	expect_run_rejected(RUN_DATA, HEAP_START, 1, "region 1 run 0: outside its region");
	expect_run_rejected(RUN_STACK, 0xfffffffffffff000ull, 1,
			    "region 4 run 0: outside its region");
}

static void test_zero_page_runs_are_rejected(void **state)
{
	(void)state;
	expect_run_rejected(RUN_DATA, DATA_RUN, 0, "region 1 run 0: outside its region");
	expect_run_rejected(RUN_STACK, STACK_RUN, 0, "region 4 run 0: outside its region");
}

/* npages * 4096 must not wrap into a small size. */
static void test_page_counts_that_would_overflow_are_rejected(void **state)
{
	(void)state;
	const char *reason = "region 4 run 0: outside its region";
	expect_run_rejected(RUN_STACK, STACK_RUN, 1ull << 52, reason);           /* * 4096 == 0 */
	expect_run_rejected(RUN_STACK, STACK_RUN, (1ull << 52) + 1, reason);     /* == 4096 */
	expect_run_rejected(RUN_STACK, STACK_RUN, UINT64_MAX, reason);
	expect_run_rejected(RUN_STACK, STACK_RUN, UINT64_MAX / PAGE + 1, reason);
}

static void test_overlapping_or_unsorted_runs_in_a_region_are_rejected(void **state)
{
	(void)state;
	struct spec s;
	struct image im;
	/* Two runs on the stack: the second starts inside the first. */
	base_spec(&s);
	clear_runs(&s);
	add_run(&s, R_DATA, DATA_RUN, 1);
	add_run(&s, R_STACK, STACK_RUN - PAGE, 2);
	add_run(&s, R_STACK, STACK_RUN, 1);
	build_image(&im, &s);
	expect_rejected(&im, "region 4 run 1: outside its region");
	image_free(&im);
	/* The second lies below the first. */
	base_spec(&s);
	clear_runs(&s);
	add_run(&s, R_DATA, DATA_RUN, 1);
	add_run(&s, R_STACK, STACK_RUN, 2);
	add_run(&s, R_STACK, STACK_RUN - 2 * PAGE, 1);
	build_image(&im, &s);
	expect_rejected(&im, "region 4 run 1: outside its region");
	image_free(&im);
	/* Back to back is fine. */
	base_spec(&s);
	clear_runs(&s);
	add_run(&s, R_DATA, DATA_RUN, 1);
	add_run(&s, R_STACK, STACK_RUN - PAGE, 1);
	add_run(&s, R_STACK, STACK_RUN, 2);
	build_image(&im, &s);
	expect_accepted(&im);
	image_free(&im);
}

static void expect_run_data_rejected(uint32_t run, uint64_t data_off, const char *reason)
{
	struct image im;
	build_base(&im);
	im.runs[run].data_off = data_off;
	seal(&im);
	expect_rejected(&im, reason);
	image_free(&im);
}

/* The data section is [data_off, data_off + 3 pages): the data run's page, then the stack's two. */
static void test_run_data_outside_the_data_section_is_rejected(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	uint64_t data = im.data_off, end = im.len;
	image_free(&im);
	const char *first = "region 1 run 0: data outside the file";
	const char *stack = "region 4 run 0: data outside the file";
	expect_run_data_rejected(RUN_DATA, data + 8, first);         /* unaligned */
	expect_run_data_rejected(RUN_DATA, data - PAGE, first);      /* in the table's page */
	expect_run_data_rejected(RUN_DATA, 0, first);                /* the header */
	expect_run_data_rejected(RUN_DATA, end, first);              /* at the end, one page */
	expect_run_data_rejected(RUN_DATA, end + PAGE, first);       /* past the end */
	expect_run_data_rejected(RUN_STACK, end - PAGE, stack);      /* two pages, one in the file */
	expect_run_data_rejected(RUN_STACK, UINT64_MAX - PAGE + 1, stack);
	expect_run_data_rejected(RUN_STACK, 1ull << 63, stack);
	/* Runs may share data pages (a restore only reads them). */
	build_base(&im);
	im.runs[RUN_DATA].data_off = im.runs[RUN_STACK].data_off + PAGE;
	seal(&im);
	expect_accepted(&im);
	image_free(&im);
}

/* Offsets in a file of (claimed) 2^64 - 1 bytes: sums must not wrap. */
static void test_offsets_in_a_huge_file_do_not_wrap(void **state)
{
	(void)state;
	struct image im;
	build_base(&im);
	im.h->file_size = UINT64_MAX;
	im.h->data_off = 1ull << 63;
	im.h->data_len = UINT64_MAX - (1ull << 63); /* the data ends at the last byte of the file */
	im.runs[RUN_DATA].data_off = 1ull << 63;
	im.runs[RUN_STACK].data_off = UINT64_MAX - 3 * PAGE + 1; /* the last two whole pages */
	seal_table_and_header(&im);
	struct snap_image img;
	char err[256];
	if (parse_sized(&im, UINT64_MAX, &img, err, sizeof err) != 0)
		fail_msg("refused: %s", err);
	snap_image_free(&img);

	/* One page further, the stack's second page would end past 2^64. */
	im.runs[RUN_STACK].data_off = UINT64_MAX - 2 * PAGE + 1;
	seal_table_and_header(&im);
	expect_parse_rejected_sized(&im, UINT64_MAX, "region 4 run 0: data outside the file");
	im.runs[RUN_STACK].data_off = UINT64_MAX - PAGE + 1;
	im.runs[RUN_STACK].npages = 1;
	seal_table_and_header(&im);
	expect_parse_rejected_sized(&im, UINT64_MAX, "region 4 run 0: data outside the file");
	image_free(&im);
}

static void test_runs_not_consecutive_across_regions_are_rejected(void **state)
{
	(void)state;
	/* The stack's run listed first: each region points at its own run, out of order. */
	struct image im;
	build_base(&im);
	struct snap_run data_run = im.runs[RUN_DATA];
	im.runs[0] = im.runs[RUN_STACK];
	im.runs[1] = data_run;
	im.regions[R_DATA].run_first = 1;
	im.regions[R_STACK].run_first = 0;
	seal(&im);
	expect_rejected(&im, "region 1: bad run range");
	image_free(&im);

	/* The heap claims the data region's run as well. */
	build_base(&im);
	im.regions[R_HEAP].run_first = RUN_DATA;
	seal(&im);
	expect_rejected(&im, "region 2: bad run range");
	image_free(&im);

	/* A region skips a run. */
	build_base(&im);
	im.regions[R_STACK].run_first = RUN_STACK + 1;
	im.regions[R_STACK].run_count = 0;
	seal(&im);
	expect_rejected(&im, "region 4: bad run range");
	image_free(&im);
}

static void test_run_ranges_beyond_the_run_table_are_rejected(void **state)
{
	(void)state;
	const uint32_t counts[] = {2, 3, UINT32_MAX};
	for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
		struct image im;
		build_base(&im);
		im.regions[R_STACK].run_count = counts[i];
		seal(&im);
		expect_rejected(&im, "region 4: bad run range");
		image_free(&im);
	}
}

static void test_runs_owned_by_no_region_are_rejected(void **state)
{
	(void)state;
	/* A third run, valid in itself (another stack page), that no region lists. */
	struct spec s;
	base_spec(&s);
	s.runs[s.nruns++] = (struct snap_run){.start = STACK_RUN - PAGE, .npages = 1};
	struct image im;
	build_image(&im, &s);
	expect_rejected(&im, "runs not owned by any region");
	image_free(&im);

	build_base(&im);
	im.regions[R_STACK].run_count = 0;
	seal(&im);
	expect_rejected(&im, "runs not owned by any region");
	image_free(&im);
}

/* ---- deps ---- */

static void expect_dep_rejected(uint32_t dep, uint32_t path_off, uint32_t path_len,
				const char *reason)
{
	struct image im;
	build_base(&im);
	im.deps[dep].path_off = path_off;
	im.deps[dep].path_len = path_len;
	seal(&im);
	expect_rejected(&im, reason);
	image_free(&im);
}

/* strings: "/usr/bin/python3.11\0/usr/lib/x86_64-linux-gnu/libc.so.6\0" */
#define PY_LEN ((uint32_t)sizeof PYTHON_PATH - 1)
#define LIBC_OFF ((uint32_t)sizeof PYTHON_PATH)
#define LIBC_LEN ((uint32_t)sizeof LIBC_PATH - 1)
#define STRINGS_LEN (LIBC_OFF + LIBC_LEN + 1)

static void test_dep_path_not_absolute_is_rejected(void **state)
{
	(void)state;
	expect_dep_rejected(0, 1, PY_LEN - 1, "dependency 0: bad path"); /* "usr/bin/python3.11" */
	struct image im;
	build_base(&im);
	im.strings[LIBC_OFF] = '.';
	seal(&im);
	expect_rejected(&im, "dependency 1: bad path");
	image_free(&im);
}

static void test_dep_path_not_nul_terminated_is_rejected(void **state)
{
	(void)state;
	expect_dep_rejected(0, 0, PY_LEN - 1, "dependency 0: bad path");
	expect_dep_rejected(1, LIBC_OFF, LIBC_LEN - 4, "dependency 1: bad path");
	struct image im;
	build_base(&im);
	im.strings[STRINGS_LEN - 1] = 'x'; /* the last path runs to the end of the strings */
	seal(&im);
	expect_rejected(&im, "dependency 1: bad path");
	image_free(&im);
}

static void test_dep_path_with_embedded_nul_is_rejected(void **state)
{
	(void)state;
	/* Both paths as one: "/usr/bin/python3.11\0/usr/lib/...", ending at the last NUL. */
	expect_dep_rejected(0, 0, STRINGS_LEN - 1, "dependency 0: bad path");
}

static void test_dep_path_outside_the_strings_is_rejected(void **state)
{
	(void)state;
	const char *reason = "dependency 1: bad path";
	expect_dep_rejected(1, STRINGS_LEN, 1, reason);
	expect_dep_rejected(1, STRINGS_LEN + 1, 1, reason);
	expect_dep_rejected(1, UINT32_MAX, 1, reason);
	expect_dep_rejected(1, LIBC_OFF, LIBC_LEN + 1, reason); /* its NUL would be past the end */
	expect_dep_rejected(1, LIBC_OFF, UINT32_MAX, reason);
	/* path_off + path_len wraps (in 32 bits) onto the NUL after the first path. */
	expect_dep_rejected(1, UINT32_MAX - 7, 8 + PY_LEN, reason);
	expect_dep_rejected(1, UINT32_MAX - 3, 8, reason);
}

static void test_empty_dep_path_is_rejected(void **state)
{
	(void)state;
	expect_dep_rejected(0, PY_LEN, 0, "dependency 0: bad path"); /* points at a NUL */
	expect_dep_rejected(0, 0, 0, "dependency 0: bad path");
}

/* ---- a base ---- */

static void test_delta_names_its_base_and_counts_the_pages_it_maps_from_it(void **state)
{
	(void)state;
	struct image im;
	build_delta(&im);
	struct snap_image img;
	char err[256];
	if (parse(&im, &img, err, sizeof err) != 0)
		fail_msg("delta refused: %s", err);
	assert_int_equal(img.h.base_dep, BASE_DEP);
	assert_string_equal(snap_dep_path(&img, img.h.base_dep), BASE_PATH);
	assert_int_equal(img.h.base_hash, BASE_HASH);
	/* 64 pages of the base's region, less its two own. */
	assert_int_equal(snap_base_pages(&img), 62);
	snap_image_free(&img);
	image_free(&im);

	/* Without a base nothing is mapped from one, though deps are mapped. */
	build_base(&im);
	if (parse(&im, &img, err, sizeof err) != 0)
		fail_msg("image refused: %s", err);
	assert_int_equal(img.h.base_dep, SNAP_NO_BASE);
	assert_int_equal(img.h.base_hash, 0);
	assert_int_equal(snap_base_pages(&img), 0);
	snap_image_free(&img);
	image_free(&im);

	/* Every FILE region of the base counts, and only those. */
	struct spec s;
	delta_spec(&s);
	s.regions[D_LIBC].dep = BASE_DEP; /* 4 pages, no runs */
	build_image(&im, &s);
	if (parse(&im, &img, err, sizeof err) != 0)
		fail_msg("delta refused: %s", err);
	assert_int_equal(snap_base_pages(&img), 66);
	snap_image_free(&img);
	image_free(&im);
}

static void test_inspect_shows_the_base_own_pages_base_pages_and_mappings(void **state)
{
	(void)state;
	struct image im;
	build_delta(&im);
	int rc;
	char *out = inspect(write_file(&im, im.len), 0, &rc);
	assert_int_equal(rc, 0);
	assert_mentions(out, "  base        " BASE_PATH
			     " (header hash 0123456789abcdef, 16780219 bytes)\n");
	assert_mentions(out, "  pages       5 own (0.0 MiB), 62 from the base (0.2 MiB)\n");
	assert_mentions(out, "  mappings    9 at restore (6 regions + 3 runs)\n");
	/* The lines that were there before the base are all still there. */
	assert_mentions(out, "  address     ");
	assert_mentions(out, "6 regions, 3 runs");
	assert_mentions(out, "7ffff7a00000-7ffff7a40000 rw- file       256 KiB saved      "
			     "8 KiB " BASE_PATH);
	free(out);
	image_free(&im);

	build_base(&im);
	out = inspect(write_file(&im, im.len), 0, &rc);
	assert_int_equal(rc, 0);
	assert_mentions(out, "  base        none\n");
	assert_mentions(out, "  pages       3 own (0.0 MiB), 0 from the base (0.0 MiB)\n");
	assert_mentions(out, "  mappings    7 at restore (5 regions + 2 runs)\n");
	free(out);
	image_free(&im);
}

/* Write IMAGE.ws for tmp_path: header, write ranges then read ranges; the
 * hash as snap_record_ws makes it unless bad_hash. */
static void write_ws(uint64_t image_hash, const struct snap_ws_range *r, uint32_t nw, uint32_t nr,
		     int bad_hash, size_t extra)
{
	char ws[160];
	snprintf(ws, sizeof ws, "%s.ws", tmp_path);
	struct snap_ws_header wh = {.nwrite = nw, .nread = nr, .image_hash = image_hash};
	memcpy(wh.magic, SNAP_WS_MAGIC, 8);
	wh.ranges_hash = snap_hash(0, r, (nw + nr) * sizeof *r) + (bad_hash ? 1 : 0);
	FILE *f = fopen(ws, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(&wh, sizeof wh, 1, f), 1);
	if (nw + nr)
		assert_int_equal(fwrite(r, sizeof *r, nw + nr, f), nw + nr);
	for (size_t i = 0; i < extra; i++)
		fputc(0, f);
	fclose(f);
}

static void test_working_set_file_is_summed_and_checked(void **state)
{
	(void)state;
	struct image im;
	build_delta(&im);
	write_file(&im, im.len);
	char ws[160], err[256];
	snprintf(ws, sizeof ws, "%s.ws", tmp_path);
	struct snap_ws_info wi;
	unlink(ws);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), 0);
	int rc;
	char *out = inspect(tmp_path, 0, &rc);
	assert_mentions(out, "  working set none (no ");
	free(out);

	const struct snap_ws_range r[] = {{0x555555556000, 2},
					  {0x555555559000, 3},
					  {0x7ffff7a00000, 10}};
	write_ws(im.h->header_hash, r, 2, 1, 0, 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), 1);
	assert_int_equal(wi.nwrite, 2);
	assert_int_equal(wi.nread, 1);
	assert_int_equal(wi.write_pages, 5);
	assert_int_equal(wi.read_pages, 10);
	assert_int_equal(wi.image_hash, im.h->header_hash);
	assert_int_equal(wi.bytes, sizeof(struct snap_ws_header) + 3 * sizeof r[0]);
	out = inspect(tmp_path, 0, &rc);
	assert_int_equal(rc, 0);
	assert_mentions(out, ".ws: 80 bytes; 5 pages written (0.0 MiB, 2 ranges), 10 read "
			     "(0.0 MiB, 1 ranges)\n");
	free(out);

	/* Another image's: shown, but said to be ignored. */
	write_ws(im.h->header_hash + 1, r, 2, 1, 0, 0);
	out = inspect(tmp_path, 0, &rc);
	assert_mentions(out, "made for another image");
	free(out);

	/* What a restore would ignore is refused here, saying why. */
	write_ws(im.h->header_hash, r, 2, 1, 1, 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	assert_mentions(err, "hash");
	write_ws(im.h->header_hash, r, 2, 1, 0, 1);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	assert_mentions(err, "do not fit");
	write_ws(im.h->header_hash, r, 2, 1, 0, 0);
	assert_int_equal(truncate(ws, (off_t)(sizeof(struct snap_ws_header) + 2 * sizeof r[0])), 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1); /* one range short */
	assert_mentions(err, "do not fit");
	const struct snap_ws_range odd[] = {{0x555555556001, 1}};
	write_ws(im.h->header_hash, odd, 1, 0, 0, 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	const struct snap_ws_range huge[] = {{0x7ffffffff000, 2}};
	write_ws(im.h->header_hash, huge, 0, 1, 0, 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	out = inspect(tmp_path, 0, &rc);
	assert_int_equal(rc, 0); /* the image is fine */
	assert_mentions(out, "invalid, restores ignore it: range 0 is outside");
	free(out);
	FILE *f = fopen(ws, "w");
	fputs("THAWWS0", f);
	fclose(f);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	assert_mentions(err, "not a working-set file");
	unlink(ws);
	image_free(&im);
}

static void test_working_set_that_is_a_fifo_or_a_link_is_refused_without_blocking(void **state)
{
	(void)state;
	char ws[160], target[176], err[256];
	snprintf(ws, sizeof ws, "%s.ws", tmp_path);
	snprintf(target, sizeof target, "%s.target", ws);
	struct snap_ws_info wi;
	unlink(ws);
	assert_int_equal(mkfifo(ws, 0600), 0);
	/* Opened without O_NONBLOCK, a FIFO no one writes blocks forever:
	 * the alarm ends the test instead of hanging the suite. */
	alarm(10);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	alarm(0);
	assert_mentions(err, "not a regular file");
	unlink(ws);

	/* A link to a working-set file is not followed. */
	static const uint8_t zeros[sizeof(struct snap_ws_header)];
	FILE *f = fopen(target, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(zeros, sizeof zeros, 1, f), 1);
	fclose(f);
	assert_int_equal(symlink(target, ws), 0);
	assert_int_equal(snap_ws_info(ws, &wi, err, sizeof err), -1);
	unlink(ws);
	unlink(target);
}

static void test_base_of_gives_the_base_path_none_or_why_not(void **state)
{
	(void)state;
	struct image im;
	char base[256], err[256];
	build_delta(&im);
	write_file(&im, im.len);
	strcpy(base, "untouched");
	assert_int_equal(snap_base_of(tmp_path, base, sizeof base, err, sizeof err), 1);
	assert_string_equal(base, BASE_PATH);
	/* Exactly the path and its NUL fit; one byte less does not. */
	assert_int_equal(snap_base_of(tmp_path, base, sizeof BASE_PATH, err, sizeof err), 1);
	assert_string_equal(base, BASE_PATH);
	err[0] = 0;
	assert_int_equal(snap_base_of(tmp_path, base, sizeof BASE_PATH - 1, err, sizeof err), -1);
	assert_mentions(err, "the path of its base image is longer than");
	image_free(&im);

	build_base(&im);
	write_file(&im, im.len);
	strcpy(base, "untouched");
	assert_int_equal(snap_base_of(tmp_path, base, sizeof base, err, sizeof err), 0);
	assert_string_equal(base, "untouched");
	/* An invalid image, and no image at all: why, in err. */
	im.h->version = 1;
	seal(&im);
	write_file(&im, im.len);
	assert_int_equal(snap_base_of(tmp_path, base, sizeof base, err, sizeof err), -1);
	assert_mentions(err, "snapshot format version 1");
	unlink(tmp_path);
	assert_int_equal(snap_base_of(tmp_path, base, sizeof base, err, sizeof err), -1);
	assert_mentions(err, tmp_path);
	image_free(&im);
}

static void test_base_dep_out_of_range_is_rejected(void **state)
{
	(void)state;
	const uint32_t deps[] = {3, 4, 99, SNAP_NO_BASE - 1};
	for (size_t i = 0; i < sizeof deps / sizeof deps[0]; i++) {
		struct image im;
		build_delta(&im);
		im.h->base_dep = deps[i];
		seal(&im);
		char want[64];
		snprintf(want, sizeof want, "base dependency %u out of range (3 deps)", deps[i]);
		expect_rejected(&im, want);
		image_free(&im);
	}
}

static void test_base_that_is_the_resuming_binary_is_rejected(void **state)
{
	(void)state;
	/* Dep 0 holds the text rip is in: the binary, never an image. */
	struct image im;
	build_delta(&im);
	im.h->base_dep = 0;
	seal(&im);
	expect_rejected(&im, "base dependency 0: is the binary that resumes");
	image_free(&im);
	/* Resuming in libc instead, the binary's file may be named (snap_parse
	 * cannot tell which dep is the binary but by rip), and libc may not. */
	build_delta(&im);
	im.h->ctx.rip = LIBC_START + 0x40;
	im.h->base_dep = 0;
	seal(&im);
	expect_accepted(&im);
	im.h->base_dep = 1;
	seal(&im);
	expect_rejected(&im, "base dependency 1: is the binary that resumes");
	image_free(&im);
}

static void test_base_no_file_region_maps_is_rejected(void **state)
{
	(void)state;
	/* The base's region maps libc instead: nothing of the base is left. */
	struct image im;
	build_delta(&im);
	im.regions[D_BASEMAP].dep = 1;
	seal(&im);
	expect_rejected(&im, "base dependency 2: no file region maps it");
	image_free(&im);
	/* A read-only shared view of it is not the base's memory. */
	build_base(&im);
	im.regions[R_LIBC].kind = SNAP_R_SHARED;
	im.regions[R_LIBC].prot = 1;
	im.h->base_dep = 1;
	im.h->base_hash = BASE_HASH;
	seal(&im);
	expect_rejected(&im, "base dependency 1: no file region maps it");
	im.regions[R_LIBC].kind = SNAP_R_FILE; /* a private one is */
	seal(&im);
	expect_accepted(&im);
	image_free(&im);
}

static void test_base_fields_out_of_range_are_rejected(void **state)
{
	(void)state;
	struct image im;
	build_delta(&im);
	im.h->pad3 = 1;
	seal(&im);
	expect_rejected(&im, "base fields out of range");
	image_free(&im);
	/* No base, yet a base hash. */
	build_base(&im);
	im.h->base_hash = BASE_HASH;
	seal(&im);
	expect_rejected(&im, "base fields out of range");
	image_free(&im);
}

#define TEST(f) cmocka_unit_test_teardown(f, free_live_images)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_valid_image_parses_into_a_private_copy),
		TEST(test_valid_image_file_opens_and_its_data_verifies),
		TEST(test_inspect_prints_regions_deps_and_data_check),
		TEST(test_inspect_says_why_an_image_is_invalid),
		TEST(test_ranges_touching_their_limits_are_accepted),
		TEST(test_bad_magic_is_rejected),
		TEST(test_other_format_version_is_rejected),
		TEST(test_wrong_header_size_is_rejected),
		TEST(test_header_shorter_than_its_struct_is_rejected),
		TEST(test_header_checksum_mismatch_is_rejected),
		TEST(test_table_checksum_mismatch_is_rejected),
		TEST(test_data_checksum_mismatch_is_found_by_verify_data_only),
		TEST(test_verify_data_fails_when_the_file_shrank_after_open),
		TEST(test_file_shorter_or_longer_than_header_says_is_rejected),
		TEST(test_counts_over_the_limits_are_rejected),
		TEST(test_table_len_not_matching_counts_is_rejected),
		TEST(test_table_outside_the_file_is_rejected),
		TEST(test_data_section_outside_the_file_is_rejected),
		TEST(test_unterminated_identity_strings_are_rejected),
		TEST(test_thread_state_out_of_range_is_rejected),
		TEST(test_unaligned_regions_are_rejected),
		TEST(test_empty_or_inverted_regions_are_rejected),
		TEST(test_overlapping_or_unsorted_regions_are_rejected),
		TEST(test_regions_above_user_space_are_rejected),
		TEST(test_bad_protection_bits_are_rejected),
		TEST(test_bad_kinds_are_rejected),
		TEST(test_read_only_shared_region_is_accepted),
		TEST(test_shared_region_writable_with_pages_or_without_its_file_is_rejected),
		TEST(test_file_region_with_bad_dep_or_offset_is_rejected),
		TEST(test_two_stack_regions_are_rejected),
		TEST(test_missing_stack_region_is_rejected),
		TEST(test_stack_pointer_outside_the_stack_is_rejected),
		TEST(test_resume_address_outside_executable_file_mappings_is_rejected),
		TEST(test_runs_outside_their_region_are_rejected),
		TEST(test_run_starting_beyond_its_region_end_is_rejected),
		TEST(test_zero_page_runs_are_rejected),
		TEST(test_page_counts_that_would_overflow_are_rejected),
		TEST(test_overlapping_or_unsorted_runs_in_a_region_are_rejected),
		TEST(test_run_data_outside_the_data_section_is_rejected),
		TEST(test_offsets_in_a_huge_file_do_not_wrap),
		TEST(test_runs_not_consecutive_across_regions_are_rejected),
		TEST(test_run_ranges_beyond_the_run_table_are_rejected),
		TEST(test_runs_owned_by_no_region_are_rejected),
		TEST(test_dep_path_not_absolute_is_rejected),
		TEST(test_dep_path_not_nul_terminated_is_rejected),
		TEST(test_dep_path_with_embedded_nul_is_rejected),
		TEST(test_dep_path_outside_the_strings_is_rejected),
		TEST(test_empty_dep_path_is_rejected),
		TEST(test_delta_names_its_base_and_counts_the_pages_it_maps_from_it),
		TEST(test_inspect_shows_the_base_own_pages_base_pages_and_mappings),
		TEST(test_base_of_gives_the_base_path_none_or_why_not),
		TEST(test_working_set_file_is_summed_and_checked),
		TEST(test_working_set_that_is_a_fifo_or_a_link_is_refused_without_blocking),
		TEST(test_base_dep_out_of_range_is_rejected),
		TEST(test_base_that_is_the_resuming_binary_is_rejected),
		TEST(test_base_no_file_region_maps_is_rejected),
		TEST(test_base_fields_out_of_range_are_rejected),
	};
	return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
