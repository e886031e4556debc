/*
 * Tests for a real chain of snapshots: a base image, a delta built on it,
 * and the checks that keep the delta tied to its base (src/snap/, snap.h's
 * A BASE).
 *
 * The chain is made by this test binary itself, in children started with
 * address randomisation off (what a restore needs: the same binary at the
 * same addresses), each with its stdout on a pipe to the test:
 *   1. `--make-base DIR` fills BUF_PAGES pages of anonymous memory with a
 *      pattern and checkpoints DIR/a.snap: the base, A.
 *   2. `--restore DIR/a.snap` restores A. The restored process resumes in
 *      step 1's snap_checkpoint (SNAP_RESTORED), rewrites CHANGED of the
 *      pages, and checkpoints DIR/b.snap: the delta, B.
 *   3. `--restore DIR/b.snap` restores B; resumed in step 2's checkpoint,
 *      it reads every page back (the pattern from A's file, the changed
 *      pages from B's) and checkpoints DIR/c.snap, a delta over B.
 * Each writer reports its snap_stats on its stdout. The tests then read the
 * images (B names A, C names B, B is small), and change A on disk to see B
 * refused, by snap_check_file and by a restore (`--restore-refused`, which
 * checks that the refusal left its address space as it was).
 *
 * The snapshot engine is off in sanitizer builds (THAW_SANITIZE): the tests
 * skip there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap/snap.h"

#define BUF_PAGES 2048u /* 8 MiB of pattern in the base */
#define WORDS (SNAP_PAGE / 8)
static const uint32_t changed[] = {3, 700, 1500, BUF_PAGES - 1}; /* rewritten in the delta */
#define NCHANGED (sizeof changed / sizeof changed[0])

/* ---- the children ---- */

#ifndef THAW_SANITIZE
static uint64_t pattern(uint64_t page, uint64_t word)
{
	return 0x5a5a000000000000ull | page << 16 | word;
}

static uint64_t rewritten(uint64_t page, uint64_t word)
{
	return 0xc0ffee0000000000ull | page << 16 | word;
}

static int is_changed(uint64_t page)
{
	for (size_t k = 0; k < NCHANGED; k++)
		if (changed[k] == page)
			return 1;
	return 0;
}

/* The pattern's memory; in .bss, so every image of the chain has the pointer. */
static uint64_t *chain_buf;

static int report(const char *name, const struct snap_stats *st)
{
	dprintf(1, "%s saved=%llu base=%llu\n", name, (unsigned long long)st->saved_pages,
		(unsigned long long)st->base_pages);
	return 0;
}

/* Steps 1, 2 and 3 (see the top): one function, because each restored
 * process resumes in the checkpoint its image was made in. */
static int make_chain(const char *dir)
{
	char a[256], b[256], c[256], err[512];
	snprintf(a, sizeof a, "%s/a.snap", dir);
	snprintf(b, sizeof b, "%s/b.snap", dir);
	snprintf(c, sizeof c, "%s/c.snap", dir);
	struct snap_checkpoint_opts o = {0};
	struct snap_stats st = {0};

	chain_buf = mmap(NULL, (size_t)BUF_PAGES * SNAP_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (chain_buf == MAP_FAILED)
		return 10;
	for (uint64_t i = 0; i < BUF_PAGES; i++)
		for (uint64_t j = 0; j < WORDS; j++)
			chain_buf[i * WORDS + j] = pattern(i, j);
	int r = snap_checkpoint(a, &o, &st, err, sizeof err);
	if (r == SNAP_WRITTEN)
		return report("A", &st);
	if (r != SNAP_RESTORED) {
		dprintf(2, "checkpoint of A: %s\n", err);
		return 11;
	}

	/* Step 2: restored from A. */
	snap_release();
	for (size_t k = 0; k < NCHANGED; k++)
		for (uint64_t j = 0; j < WORDS; j++)
			chain_buf[changed[k] * WORDS + j] = rewritten(changed[k], j);
	r = snap_checkpoint(b, &o, &st, err, sizeof err);
	if (r == SNAP_WRITTEN)
		return report("B", &st);
	if (r != SNAP_RESTORED) {
		dprintf(2, "checkpoint of B: %s\n", err);
		return 12;
	}

	/* Step 3: restored from B. */
	uint64_t restored_from = snap_image_hash();
	snap_release();
	uint64_t bad = 0;
	for (uint64_t i = 0; i < BUF_PAGES; i++)
		for (uint64_t j = 0; j < WORDS; j++)
			bad += chain_buf[i * WORDS + j] !=
			       (is_changed(i) ? rewritten(i, j) : pattern(i, j));
	dprintf(1, "restored from %016llx, %llu words wrong\n", (unsigned long long)restored_from,
		(unsigned long long)bad);
	r = snap_checkpoint(c, &o, &st, err, sizeof err);
	if (r == SNAP_WRITTEN)
		return report("C", &st);
	dprintf(2, "checkpoint of C: %s\n", err);
	return 13;
}

/* What /proc/self/maps says, less the heap's line (malloc may grow it). */
static size_t maps_without_heap(char *out, size_t n)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	static char raw[1 << 16];
	size_t len = 0;
	ssize_t got;
	while (len < sizeof raw - 1 && (got = read(fd, raw + len, sizeof raw - 1 - len)) > 0)
		len += (size_t)got;
	close(fd);
	raw[len] = 0;
	size_t o = 0;
	for (char *line = raw; *line;) {
		char *end = strchr(line, '\n');
		size_t l = end ? (size_t)(end - line) + 1 : strlen(line);
		if (!memmem(line, l, "[heap]", 6) && o + l < n) {
			memcpy(out + o, line, l);
			o += l;
		}
		line += l;
	}
	out[o] = 0;
	return o;
}

/* A restore that must be refused: say why, and check that this process is
 * as it was (its memory, its mappings, no fd left open). */
static int restore_refused(const char *image)
{
	static char before[1 << 16], after[1 << 16];
	static volatile uint64_t marker[512];
	for (size_t i = 0; i < 512; i++)
		marker[i] = pattern(7, i);
	maps_without_heap(before, sizeof before);
	char err[512] = "";
	if (snap_restore(image, 0, "x", 1, err, sizeof err) != -1) {
		dprintf(1, "not refused\n");
		return 20;
	}
	maps_without_heap(after, sizeof after);
	for (size_t i = 0; i < 512; i++)
		if (marker[i] != pattern(7, i))
			return 21;
	if (strcmp(before, after) != 0) {
		dprintf(2, "mappings before:\n%s\nafter:\n%s\n", before, after);
		return 22;
	}
	for (int fd = 3; fd < 256; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			return 23;
	dprintf(1, "refused: %s\n", err);
	return 0;
}
#endif

static int child_main(const char *role, const char *arg)
{
#ifdef THAW_SANITIZE
	(void)role;
	(void)arg;
	return 99;
#else
	/* Only stdin, stdout and stderr: a checkpoint refuses any other fd. */
	close_range(3, ~0u, 0);
	if (!strcmp(role, "--make-base"))
		return make_chain(arg);
	if (!strcmp(role, "--restore")) {
		char err[512];
		snap_restore(arg, 0, NULL, 0, err, sizeof err);
		dprintf(2, "restore of %s refused: %s\n", arg, err);
		return 30;
	}
	if (!strcmp(role, "--restore-refused"))
		return restore_refused(arg);
	return 98;
#endif
}

/* ---- the tests ---- */

static char dir[64], path_a[128], path_b[128], path_c[128], self[4096];
static struct {
	uint64_t saved, base;
} stats_a, stats_b, stats_c;
static uint64_t restored_from;

#define SKIP_IF_SANITIZED()                                                                        \
	do {                                                                                       \
		if (THAW_SANITIZED)                                                                \
			skip();                                                                    \
	} while (0)
#ifdef THAW_SANITIZE
#define THAW_SANITIZED 1
#else
#define THAW_SANITIZED 0
#endif

/* Run this binary as `role arg` with randomisation off; its stdout (up to
 * n - 1 bytes) in out. Returns its exit status, or -1 if it did not exit. */
static int run(const char *role, const char *arg, char *out, size_t n)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		if (personality(ADDR_NO_RANDOMIZE) < 0)
			_exit(126);
		execl(self, self, role, arg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t len = 0;
	ssize_t got;
	while (len < n - 1 && (got = read(p[0], out + len, n - 1 - len)) > 0)
		len += (size_t)got;
	out[len] = 0;
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void assert_mentions(const char *text, const char *what)
{
	if (!strstr(text, what))
		fail_msg("\"%s\" does not mention \"%s\"", text, what);
}

/* "NAME saved=N base=M" in out, into s. */
static void parse_stats(const char *out, const char *name, uint64_t *saved, uint64_t *base)
{
	char want[16];
	snprintf(want, sizeof want, "%s saved=", name);
	const char *at = strstr(out, want);
	if (!at)
		fail_msg("no stats of %s in \"%s\"", name, out);
	unsigned long long s, b;
	assert_int_equal(sscanf(at + strlen(want), "%llu base=%llu", &s, &b), 2);
	*saved = s;
	*base = b;
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/thaw-test-chain-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path_a, sizeof path_a, "%s/a.snap", dir);
	snprintf(path_b, sizeof path_b, "%s/b.snap", dir);
	snprintf(path_c, sizeof path_c, "%s/c.snap", dir);
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return -1;
	self[n] = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	static const char *const names[] = {"a.snap", "b.snap", "c.snap", "v1.snap", "a.copy"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char p[160];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		snap_remove(p);
	}
	return rmdir(dir);
}

static void open_image(const char *path, struct snap_image *img)
{
	char err[512];
	if (snap_open(path, NULL, img, err, sizeof err) != 0)
		fail_msg("%s: %s", path, err);
}

static uint64_t header_hash(const char *path)
{
	struct snap_image img;
	open_image(path, &img);
	uint64_t h = img.h.header_hash;
	snap_image_free(&img);
	return h;
}

static void test_a_base_restored_and_checkpointed_again_gives_a_delta(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	char out[4096];
	int rc = run("--make-base", dir, out, sizeof out);
	if (rc != 0)
		fail_msg("making A: exit %d, \"%s\"", rc, out);
	parse_stats(out, "A", &stats_a.saved, &stats_a.base);
	rc = run("--restore", path_a, out, sizeof out);
	if (rc != 0)
		fail_msg("restoring A and making B: exit %d, \"%s\"", rc, out);
	parse_stats(out, "B", &stats_b.saved, &stats_b.base);
	rc = run("--restore", path_b, out, sizeof out);
	if (rc != 0)
		fail_msg("restoring B and making C: exit %d, \"%s\"", rc, out);
	parse_stats(out, "C", &stats_c.saved, &stats_c.base);
	/* The third process saw the base's pattern and the delta's changes. */
	unsigned long long from, wrong;
	const char *at = strstr(out, "restored from ");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "restored from %llx, %llu words wrong", &from, &wrong), 2);
	assert_int_equal(wrong, 0);
	restored_from = from;
	print_message("A saves %llu pages; B %llu, with %llu from A; C %llu, with %llu from B\n",
		      (unsigned long long)stats_a.saved, (unsigned long long)stats_b.saved,
		      (unsigned long long)stats_b.base, (unsigned long long)stats_c.saved,
		      (unsigned long long)stats_c.base);
}

static void test_the_delta_names_its_base_and_the_base_none(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	struct snap_image a, b, c;
	open_image(path_a, &a);
	open_image(path_b, &b);
	open_image(path_c, &c);
	assert_int_equal(a.h.base_dep, SNAP_NO_BASE);
	assert_int_equal(a.h.base_hash, 0);
	assert_int_not_equal(b.h.base_dep, SNAP_NO_BASE);
	assert_string_equal(snap_dep_path(&b, b.h.base_dep), path_a);
	assert_int_equal(b.h.base_hash, a.h.header_hash);
	/* The process restored from B knew it (snap_image_hash). */
	assert_int_equal(restored_from, b.h.header_hash);
	/* A delta of a delta names the image it was restored from; the older
	 * one is a dep like any other file it maps. */
	assert_int_not_equal(c.h.base_dep, SNAP_NO_BASE);
	assert_string_equal(snap_dep_path(&c, c.h.base_dep), path_b);
	assert_int_equal(c.h.base_hash, b.h.header_hash);
	int has_a = 0;
	for (uint32_t i = 0; i < c.h.ndeps; i++)
		has_a |= !strcmp(snap_dep_path(&c, i), path_a);
	assert_true(has_a);
	snap_image_free(&a);
	snap_image_free(&b);
	snap_image_free(&c);
}

static void test_every_image_of_the_chain_verifies(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	/* What the host's adoption checks: every data byte as it was hashed
	 * (the stack included, though the writer ran on it). */
	const char *paths[] = {path_a, path_b, path_c};
	for (size_t i = 0; i < 3; i++) {
		struct snap_image img;
		char err[512];
		int fd;
		if (snap_open(paths[i], &fd, &img, err, sizeof err) != 0)
			fail_msg("%s: %s", paths[i], err);
		if (snap_verify_data(fd, &img, err, sizeof err) != 0)
			fail_msg("%s: %s", paths[i], err);
		close(fd);
		snap_image_free(&img);
		if (snap_check_file(paths[i], err, sizeof err) != 0)
			fail_msg("%s does not fit: %s", paths[i], err);
	}
}

static void test_the_delta_saves_only_the_pages_it_wrote(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	/* A holds the whole pattern; B the rewritten pages and what the
	 * process itself wrote around them (its stack, libc's data). */
	assert_true(stats_a.saved >= BUF_PAGES);
	assert_true(stats_b.saved >= NCHANGED);
	if (stats_b.saved * 8 > stats_a.saved)
		fail_msg("B saves %llu pages, A %llu", (unsigned long long)stats_b.saved,
			 (unsigned long long)stats_a.saved);
	assert_int_equal(stats_a.base, 0);
	assert_true(stats_b.base >= BUF_PAGES - NCHANGED);
	/* snap_stats counts as the reader does. */
	struct snap_image b;
	open_image(path_b, &b);
	assert_int_equal(snap_base_pages(&b), stats_b.base);
	uint64_t own = 0;
	for (uint32_t i = 0; i < b.h.nruns; i++)
		own += b.runs[i].npages;
	assert_int_equal(own, stats_b.saved);
	snap_image_free(&b);
}

static void test_base_of_gives_the_base_path(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	char base[256] = "", err[512] = "";
	assert_int_equal(snap_base_of(path_b, base, sizeof base, err, sizeof err), 1);
	assert_string_equal(base, path_a);
	assert_int_equal(snap_base_of(path_c, base, sizeof base, err, sizeof err), 1);
	assert_string_equal(base, path_b);
	assert_int_equal(snap_base_of(path_a, base, sizeof base, err, sizeof err), 0);
}

static void test_inspect_shows_the_base_and_its_pages(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	assert_int_equal(snap_inspect(path_b, f, 0), 0);
	fclose(f);
	char want[512];
	struct stat st;
	assert_int_equal(stat(path_a, &st), 0);
	snprintf(want, sizeof want, "  base        %s (header hash %016llx, %llu bytes)\n", path_a,
		 (unsigned long long)header_hash(path_a), (unsigned long long)st.st_size);
	assert_mentions(out, want);
	snprintf(want, sizeof want, "  pages       %llu own (", (unsigned long long)stats_b.saved);
	assert_mentions(out, want);
	snprintf(want, sizeof want, "%llu from the base (", (unsigned long long)stats_b.base);
	assert_mentions(out, want);
	free(out);
}

static void expect_check_file_refused(const char *image, const char *want)
{
	char err[1024] = "";
	assert_int_equal(snap_check_file(image, err, sizeof err), -1);
	assert_string_equal(err, want);
}

static void expect_check_file_fits(const char *image)
{
	char err[1024] = "";
	if (snap_check_file(image, err, sizeof err) != 0)
		fail_msg("%s refused: %s", image, err);
}

/* A restore of image is refused with exactly `want`, leaving the process as it was. */
static void expect_restore_refused(const char *image, const char *want)
{
	char out[2048], line[1100];
	int rc = run("--restore-refused", image, out, sizeof out);
	if (rc != 0)
		fail_msg("restore of %s: exit %d, \"%s\"", image, rc, out);
	snprintf(line, sizeof line, "refused: %s\n", want);
	assert_string_equal(out, line);
}

static void set_mtime(const char *path, struct timespec mtime)
{
	struct timespec ts[2] = {{.tv_nsec = UTIME_OMIT}, mtime};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void copy_file(const char *from, const char *to)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(in >= 0 && out >= 0);
	static char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

static void test_the_delta_is_refused_once_its_base_changed(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	char want[1024];
	struct stat st;
	assert_int_equal(stat(path_a, &st), 0);
	expect_check_file_fits(path_b);

	/* Touched: another mtime. */
	struct timespec later = st.st_mtim;
	later.tv_sec += 1;
	set_mtime(path_a, later);
	snprintf(want, sizeof want, "its base image %s has changed since the image was built on it",
		 path_a);
	expect_check_file_refused(path_b, want);
	expect_restore_refused(path_b, want);
	set_mtime(path_a, st.st_mtim);
	expect_check_file_fits(path_b);

	/* Rewritten in place, its identity put back: another header. */
	int fd = open(path_a, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	uint8_t byte;
	const off_t created = offsetof(struct snap_header, created_unix_ns);
	assert_int_equal(pread(fd, &byte, 1, created), 1);
	byte ^= 1;
	assert_int_equal(pwrite(fd, &byte, 1, created), 1);
	set_mtime(path_a, st.st_mtim);
	snprintf(want, sizeof want, "its base image %s is not the base it was built on", path_a);
	expect_check_file_refused(path_b, want);
	expect_restore_refused(path_b, want);
	byte ^= 1;
	assert_int_equal(pwrite(fd, &byte, 1, created), 1);
	close(fd);
	set_mtime(path_a, st.st_mtim);
	expect_check_file_fits(path_b);

	/* Replaced by a copy of itself with another mtime. */
	char copy[160];
	snprintf(copy, sizeof copy, "%s/a.copy", dir);
	copy_file(path_a, copy);
	assert_int_equal(rename(copy, path_a), 0);
	snprintf(want, sizeof want, "its base image %s has changed since the image was built on it",
		 path_a);
	expect_check_file_refused(path_b, want);

	/* Gone. C, whose base is B, finds A changed as any other dep. */
	assert_int_equal(unlink(path_a), 0);
	snprintf(want, sizeof want, "its base image %s is missing", path_a);
	expect_check_file_refused(path_b, want);
	expect_restore_refused(path_b, want);
	snprintf(want, sizeof want, "%s: No such file or directory", path_a);
	expect_check_file_refused(path_c, want);
}

static void test_a_version_1_image_is_refused(void **state)
{
	(void)state;
	SKIP_IF_SANITIZED();
	/* B as a version 1 file (its header resealed): the host rebuilds it. */
	char v1[160];
	snprintf(v1, sizeof v1, "%s/v1.snap", dir);
	copy_file(path_b, v1);
	int fd = open(v1, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	struct snap_header h;
	assert_int_equal(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	h.version = 1;
	h.header_hash = 0;
	h.header_hash = snap_hash(0, &h, sizeof h);
	assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	close(fd);
	const char *want = "snapshot format version 1, this thaw reads 2";
	expect_check_file_refused(v1, want);
	expect_restore_refused(v1, want);
}

#define TEST(f) cmocka_unit_test(f)

int main(int argc, char **argv)
{
	if (argc == 3 && argv[1][0] == '-')
		return child_main(argv[1], argv[2]);
	/* In the order given: each test reads what the one before made. */
	const struct CMUnitTest tests[] = {
		TEST(test_a_base_restored_and_checkpointed_again_gives_a_delta),
		TEST(test_the_delta_names_its_base_and_the_base_none),
		TEST(test_every_image_of_the_chain_verifies),
		TEST(test_the_delta_saves_only_the_pages_it_wrote),
		TEST(test_base_of_gives_the_base_path),
		TEST(test_inspect_shows_the_base_and_its_pages),
		TEST(test_the_delta_is_refused_once_its_base_changed),
		TEST(test_a_version_1_image_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
