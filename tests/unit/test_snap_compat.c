/*
 * Tests for the "does this image fit this host" rule and for removing an
 * image (src/snap/compat.c).
 *
 * Each test starts from an image that fits: made on this kernel and CPU,
 * whose deps are this test's own executable (the "made by this very binary"
 * rule) and a library-like file in a temporary directory, with their
 * identities as stat sees them now. A copy of the executable, run as a
 * child, checks what happens when a new build is renamed over a running
 * binary. A test then changes one thing, in the
 * image or on disk, and checks that the refusal names it. The in-memory
 * image goes to snap_check_host directly; snap_check_file gets the same
 * image written out as a minimal valid file (one text region, the stack).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snap/snap.h"

#define MAX_DEPS 4

/* The image under test: a header and a table that snap_check_host reads. */
static struct fixture {
	char dir[64];
	char lib[128];  /* a dep we can touch, rewrite and remove */
	char snap[128]; /* where snap_check_file's image is written */
	char base[128]; /* a base image's file, for the deltas */
	char exe[4096]; /* /proc/self/exe's target */
	struct snap_header h;
	struct snap_dep deps[MAX_DEPS];
	char strings[8192];
	uint32_t strings_len;
	struct snap_image img; /* points into the above */
} fx;

static void add_dep(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	size_t n = strlen(path);
	assert_true(fx.h.ndeps < MAX_DEPS && fx.strings_len + n + 1 <= sizeof fx.strings);
	fx.deps[fx.h.ndeps++] = (struct snap_dep){.path_off = fx.strings_len,
						  .path_len = (uint32_t)n,
						  .dev = (uint64_t)st.st_dev,
						  .ino = (uint64_t)st.st_ino,
						  .size = (uint64_t)st.st_size,
						  .mtime_sec = (int64_t)st.st_mtim.tv_sec,
						  .mtime_nsec = (uint64_t)st.st_mtim.tv_nsec};
	memcpy(fx.strings + fx.strings_len, path, n + 1);
	fx.strings_len += (uint32_t)n + 1;
	fx.h.strings_len = fx.strings_len;
}

static void write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

/* Give path the mtime a dep recorded (to change one thing at a time). */
static void set_mtime(const char *path, int64_t sec, uint64_t nsec)
{
	struct timespec ts[2] = {{.tv_sec = 0, .tv_nsec = UTIME_OMIT},
				 {.tv_sec = (time_t)sec, .tv_nsec = (long)nsec}};
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof fx);
	strcpy(fx.dir, "/tmp/thaw-test-compat-XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.lib, sizeof fx.lib, "%s/libworker.so", fx.dir);
	snprintf(fx.snap, sizeof fx.snap, "%s/image.snap", fx.dir);
	snprintf(fx.base, sizeof fx.base, "%s/base.snap", fx.dir);
	ssize_t n = readlink("/proc/self/exe", fx.exe, sizeof fx.exe - 1);
	if (n <= 0)
		return -1;
	fx.exe[n] = 0;
	write_file(fx.lib, "ELF, more or less\n");
	/* A recorded mtime with a non-zero nanosecond part, so that a change of
	 * the nanoseconds alone can be seen. */
	set_mtime(fx.lib, 1700000000, 123456789);

	snap_kernel_id(fx.h.kernel, sizeof fx.h.kernel);
	snap_cpu_id(fx.h.cpu, sizeof fx.h.cpu);
	fx.h.base_dep = SNAP_NO_BASE;
	add_dep(fx.exe);
	add_dep(fx.lib);
	fx.img.h = fx.h;
	fx.img.deps = fx.deps;
	fx.img.strings = fx.strings;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	snap_remove(fx.snap);
	unlink(fx.lib);
	unlink(fx.base);
	static const char *const leftovers[] = {"other", "thaw", "thaw.new"};
	for (size_t i = 0; i < sizeof leftovers / sizeof leftovers[0]; i++) {
		char p[160];
		snprintf(p, sizeof p, "%s/%s", fx.dir, leftovers[i]);
		unlink(p);
	}
	return rmdir(fx.dir);
}

/* The image as the fixture holds it now (tests edit fx.h and fx.deps). */
static const struct snap_image *image(void)
{
	fx.img.h = fx.h;
	return &fx.img;
}

static void assert_mentions(const char *err, const char *what)
{
	if (!strstr(err, what))
		fail_msg("error \"%s\" does not mention \"%s\"", err, what);
}

static void expect_fits(void)
{
	char err[1024] = "";
	if (snap_check_host(image(), err, sizeof err) != 0)
		fail_msg("image refused: %s", err);
}

/* Refused, with every one of the (up to two) strings in the reason. */
static void expect_refused(const char *reason, const char *detail)
{
	char err[1024] = "";
	assert_int_equal(snap_check_host(image(), err, sizeof err), -1);
	assert_mentions(err, reason);
	if (detail)
		assert_mentions(err, detail);
}

/* ---- the rule ---- */

static void test_image_made_here_by_this_binary_fits(void **state)
{
	(void)state;
	expect_fits();
}

static void test_image_from_another_kernel_is_refused_naming_both(void **state)
{
	(void)state;
	char here[128];
	snap_kernel_id(here, sizeof here);
	strcpy(fx.h.kernel, "x86_64 5.10.0-99-amd64 #1 SMP Debian 5.10.999-1");
	expect_refused("made on another kernel (x86_64 5.10.0-99-amd64", here);
}

static void test_image_from_another_cpu_model_is_refused_naming_both(void **state)
{
	(void)state;
	char here[128];
	snap_cpu_id(here, sizeof here);
	strcpy(fx.h.cpu, "Other CPU @ 1.00GHz flags:0000000000000000");
	expect_refused("made on another CPU model (Other CPU @ 1.00GHz", here);
}

static void test_cpu_flags_alone_differing_is_refused(void **state)
{
	(void)state;
	char *flags = strstr(fx.h.cpu, "flags:");
	assert_non_null(flags);
	flags[6] = flags[6] == '0' ? '1' : '0';
	expect_refused("made on another CPU model", NULL);
}

static void test_image_without_this_binary_among_its_deps_is_refused(void **state)
{
	(void)state;
	/* Only the library is left: every dep is intact, the binary is not one. */
	fx.deps[0] = fx.deps[1];
	fx.h.ndeps = 1;
	expect_refused("made by another thaw binary than", fx.exe);
}

/* Copy from to to (mode 0755), with `extra` bytes appended. */
static void copy_file(const char *from, const char *to, size_t extra)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(in >= 0 && out >= 0);
	char buf[65536];
	ssize_t n;
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	for (size_t i = 0; i < extra; i++)
		assert_int_equal(write(out, "", 1), 1);
	close(in);
	close(out);
}

static void reset_deps(void)
{
	fx.h.ndeps = 0;
	fx.strings_len = 0;
}

static void test_image_made_by_another_build_is_refused(void **state)
{
	(void)state;
	/* Another thaw binary, intact at its own path, made the image. */
	char other[160];
	snprintf(other, sizeof other, "%s/other", fx.dir);
	copy_file(fx.exe, other, 0);
	reset_deps();
	add_dep(other);
	add_dep(fx.lib);
	expect_refused("made by another thaw binary than", fx.exe);
}

static void test_this_binary_under_another_name_is_this_binary(void **state)
{
	(void)state;
	/* Device and inode decide, not the path: a hard link is the same file. */
	char other[160];
	snprintf(other, sizeof other, "%s/other", fx.dir);
	if (link(fx.exe, other) < 0)
		skip(); /* the build is on another file system than /tmp */
	reset_deps();
	add_dep(other);
	add_dep(fx.lib);
	expect_fits();
}

static void test_binary_dep_that_is_not_the_file_at_its_path_is_refused(void **state)
{
	(void)state;
	/* As after a rebuild renamed over the binary: reported as the dep that changed. */
	fx.deps[0].ino += 1;
	expect_refused("changed since the snapshot was made", fx.exe);
}

/*
 * A binary replaced on disk while it runs (a new build renamed over it).
 * The parent copies this test's executable to DIR/thaw and runs the copy
 * with --replaced-binary DIR; the copy renames a new file over itself and
 * checks, in its own cmocka run, what a host still running the old binary
 * decides. The parent asserts the copy's exit status.
 */
static const char *child_dir;

static void child_replaced_binary(void **state)
{
	(void)state;
	char self[160], next[160];
	snprintf(self, sizeof self, "%s/thaw", child_dir);
	snprintf(next, sizeof next, "%s/thaw.new", child_dir);
	snprintf(fx.lib, sizeof fx.lib, "%s/libworker.so", child_dir);
	snap_kernel_id(fx.h.kernel, sizeof fx.h.kernel);
	snap_cpu_id(fx.h.cpu, sizeof fx.h.cpu);
	fx.h.base_dep = SNAP_NO_BASE;
	fx.img.deps = fx.deps;
	fx.img.strings = fx.strings;
	reset_deps();
	add_dep(self);
	add_dep(fx.lib);
	expect_fits(); /* made by the binary that runs, still at its path */
	struct snap_dep old = fx.deps[0];

	copy_file(self, next, 1);
	assert_int_equal(rename(next, self), 0);
	/* Made by the old binary: its file at that path changed. */
	expect_refused("changed since the snapshot was made", self);
	/* Made by the new one (by the instances the host starts now): fits. */
	reset_deps();
	add_dep(self);
	add_dep(fx.lib);
	expect_fits();
	assert_int_not_equal(fx.deps[0].ino, old.ino);
	/* Made by neither: refused, naming the path without " (deleted)". */
	reset_deps();
	add_dep(fx.lib);
	char err[1024] = "";
	assert_int_equal(snap_check_host(image(), err, sizeof err), -1);
	char want[256];
	snprintf(want, sizeof want, "made by another thaw binary than %s", self);
	assert_string_equal(err, want);
}

static void test_host_running_a_replaced_binary_accepts_images_of_the_new_one(void **state)
{
	(void)state;
	char copy[160];
	snprintf(copy, sizeof copy, "%s/thaw", fx.dir);
	copy_file(fx.exe, copy, 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl(copy, copy, "--replaced-binary", fx.dir, (char *)NULL);
		_exit(127);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the replaced-binary check failed in the child (status 0x%x)", status);
	unlink(copy);
}

static void test_dep_with_another_mtime_is_refused_naming_it(void **state)
{
	(void)state;
	set_mtime(fx.lib, 1700000001, 123456789);
	expect_refused("changed since the snapshot was made", fx.lib);
}

static void test_dep_with_another_mtime_nanosecond_is_refused(void **state)
{
	(void)state;
	set_mtime(fx.lib, 1700000000, 123456790);
	struct stat st;
	assert_int_equal(stat(fx.lib, &st), 0);
	if (st.st_mtim.tv_nsec != 123456790)
		skip(); /* a file system without nanosecond timestamps */
	expect_refused("changed since the snapshot was made", fx.lib);
}

static void test_dep_rewritten_in_place_with_another_size_is_refused(void **state)
{
	(void)state;
	write_file(fx.lib, "ELF, more or less, and then some\n");
	set_mtime(fx.lib, fx.deps[1].mtime_sec, fx.deps[1].mtime_nsec); /* only the size differs */
	struct stat st;
	assert_int_equal(stat(fx.lib, &st), 0);
	assert_int_equal(st.st_ino, fx.deps[1].ino);
	expect_refused("changed since the snapshot was made", fx.lib);
}

static void test_dep_replaced_by_another_file_is_refused(void **state)
{
	(void)state;
	/* Same content, size and mtime, renamed over it: only the inode differs. */
	char other[160];
	snprintf(other, sizeof other, "%s/other", fx.dir);
	write_file(other, "ELF, more or less\n");
	set_mtime(other, fx.deps[1].mtime_sec, fx.deps[1].mtime_nsec);
	assert_int_equal(rename(other, fx.lib), 0);
	struct stat st;
	assert_int_equal(stat(fx.lib, &st), 0);
	assert_int_not_equal(st.st_ino, fx.deps[1].ino);
	assert_int_equal(st.st_size, fx.deps[1].size);
	expect_refused("changed since the snapshot was made", fx.lib);
}

static void test_dep_on_another_device_is_refused(void **state)
{
	(void)state;
	fx.deps[1].dev ^= 1;
	expect_refused("changed since the snapshot was made", fx.lib);
}

static void test_dep_that_no_longer_exists_is_refused_naming_it(void **state)
{
	(void)state;
	assert_int_equal(unlink(fx.lib), 0);
	expect_refused(fx.lib, "No such file or directory");
}

static void test_the_first_refusal_is_the_one_reported(void **state)
{
	(void)state;
	/* Another kernel and a missing dep: the kernel is checked first. */
	strcpy(fx.h.kernel, "another kernel");
	assert_int_equal(unlink(fx.lib), 0);
	expect_refused("made on another kernel", NULL);
}

static void test_dep_matches_compares_every_identity_field(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(fx.lib, &st), 0);
	const struct snap_dep d = fx.deps[1];
	assert_true(snap_dep_matches(&d, &st));
	struct stat changed[5];
	for (int i = 0; i < 5; i++)
		changed[i] = st;
	changed[0].st_dev ^= 1;
	changed[1].st_ino ^= 1;
	changed[2].st_size += 1;
	changed[3].st_mtim.tv_sec += 1;
	changed[4].st_mtim.tv_nsec ^= 1;
	for (int i = 0; i < 5; i++)
		if (snap_dep_matches(&d, &changed[i]))
			fail_msg("a change of identity field %d went unseen", i);
	/* What is not identity does not count. */
	struct stat same = st;
	same.st_atim.tv_sec += 100;
	same.st_mode ^= 0111;
	assert_true(snap_dep_matches(&d, &same));
}

/* ---- snap_check_file ---- */

#define TEXT_START 0x400000ull
#define BASEMAP_START 0x10000000ull
#define STACK_START 0x7ffffffde000ull
#define STACK_END 0x7ffffffff000ull

/* Write the fixture's image as the smallest file snap_open accepts. */
static void write_image(void)
{
	/* A delta has a region of its base's besides (snap_parse wants one). */
	struct snap_region regions[3] = {
		{.start = TEXT_START,
		 .end = TEXT_START + SNAP_PAGE,
		 .prot = 5,
		 .kind = SNAP_R_FILE,
		 .dep = 0},
		{.start = BASEMAP_START,
		 .end = BASEMAP_START + SNAP_PAGE,
		 .prot = 3,
		 .kind = SNAP_R_FILE,
		 .dep = fx.h.base_dep},
		{.start = STACK_START, .end = STACK_END, .prot = 3, .kind = SNAP_R_STACK},
	};
	uint32_t nregions = 3;
	if (fx.h.base_dep == SNAP_NO_BASE) {
		regions[1] = regions[2];
		nregions = 2;
	}
	size_t regions_len = nregions * sizeof(struct snap_region);
	struct snap_header h = fx.h;
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof h;
	h.nregions = nregions;
	h.strings_len = fx.strings_len;
	h.table_off = SNAP_PAGE;
	h.table_len = regions_len + h.ndeps * sizeof(struct snap_dep) + fx.strings_len;
	h.data_off = (h.table_off + h.table_len + SNAP_PAGE - 1) / SNAP_PAGE * SNAP_PAGE;
	h.file_size = h.data_off;
	h.ctx.rip = TEXT_START + 0x100;
	h.ctx.rsp = STACK_END - 0x1000;
	uint8_t *buf = calloc(1, h.file_size);
	assert_non_null(buf);
	uint8_t *t = buf + h.table_off;
	memcpy(t, regions, regions_len);
	memcpy(t + regions_len, fx.deps, h.ndeps * sizeof(struct snap_dep));
	memcpy(t + regions_len + h.ndeps * sizeof(struct snap_dep), fx.strings, fx.strings_len);
	h.table_hash = snap_hash(0, t, h.table_len);
	h.header_hash = 0;
	h.header_hash = snap_hash(0, &h, sizeof h);
	memcpy(buf, &h, sizeof h);
	int fd = open(fx.snap, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	ssize_t w = write(fd, buf, h.file_size);
	close(fd);
	free(buf);
	assert_int_equal(w, (ssize_t)h.file_size);
}

static void test_check_file_accepts_a_fitting_image_file(void **state)
{
	(void)state;
	write_image();
	char err[1024] = "";
	if (snap_check_file(fx.snap, err, sizeof err) != 0)
		fail_msg("image file refused: %s", err);
}

static void test_check_file_applies_the_host_rule(void **state)
{
	(void)state;
	write_image();
	assert_int_equal(unlink(fx.lib), 0);
	char err[1024] = "";
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, fx.lib);

	strcpy(fx.h.cpu, "Other CPU");
	write_image();
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, "made on another CPU model");
}

static void test_check_file_refuses_what_snap_open_refuses(void **state)
{
	(void)state;
	char err[1024] = "";
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1); /* not there */
	assert_mentions(err, fx.snap);
	write_file(fx.snap, "not a snapshot, but long enough to hold a header? no.\n");
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, "too short");
	write_image();
	int fd = open(fx.snap, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 0), 1);
	close(fd);
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, "bad magic");
}

/* ---- a delta's base ---- */

/*
 * Make fx.base a base image as far as a delta's checks read it: a header
 * that hashes to its header_hash (made at `created`), then a page of
 * anything. Returns that hash.
 */
static uint64_t write_base(uint64_t created)
{
	struct snap_header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_VERSION;
	h.header_size = sizeof h;
	h.created_unix_ns = created;
	h.base_dep = SNAP_NO_BASE;
	h.header_hash = snap_hash(0, &h, sizeof h);
	static uint8_t page[SNAP_PAGE];
	memset(page, 0x5a, sizeof page);
	int fd = open(fx.base, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, &h, sizeof h), (ssize_t)sizeof h);
	assert_int_equal(write(fd, page, sizeof page), (ssize_t)sizeof page);
	close(fd);
	return h.header_hash;
}

/* The fixture's image becomes a delta built on a fresh fx.base (dep 2). */
static void make_delta(void)
{
	uint64_t hash = write_base(1700000000000000001ull);
	set_mtime(fx.base, 1700000000, 987654321);
	add_dep(fx.base);
	fx.h.base_dep = fx.h.ndeps - 1;
	fx.h.base_hash = hash;
}

/* Refused with exactly "its base image BASE " and then `what`. */
static void expect_base_refused(const char *what)
{
	char err[1024] = "", want[1024];
	snprintf(want, sizeof want, "its base image %s %s", fx.base, what);
	assert_int_equal(snap_check_host(image(), err, sizeof err), -1);
	assert_string_equal(err, want);
}

static void test_delta_whose_base_is_intact_fits(void **state)
{
	(void)state;
	make_delta();
	expect_fits();
	write_image();
	char err[1024] = "";
	if (snap_check_file(fx.snap, err, sizeof err) != 0)
		fail_msg("delta file refused: %s", err);
}

static void test_delta_whose_base_is_missing_is_refused_naming_the_base(void **state)
{
	(void)state;
	make_delta();
	write_image();
	assert_int_equal(unlink(fx.base), 0);
	expect_base_refused("is missing");
	char err[1024] = "";
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, "its base image");
	assert_mentions(err, "is missing");
}

static void test_delta_whose_base_changed_is_refused_naming_the_base(void **state)
{
	(void)state;
	make_delta();
	/* Touched: only the mtime differs. */
	set_mtime(fx.base, 1700000001, 987654321);
	expect_base_refused("has changed since the image was built on it");
	set_mtime(fx.base, 1700000000, 987654321);
	expect_fits();
	/* Replaced by a copy, mtime and all: only the inode differs. */
	char copy[160];
	snprintf(copy, sizeof copy, "%s/other", fx.dir);
	struct stat st;
	assert_int_equal(stat(fx.base, &st), 0);
	copy_file(fx.base, copy, 0);
	set_mtime(copy, 1700000000, 987654321);
	assert_int_equal(rename(copy, fx.base), 0);
	expect_base_refused("has changed since the image was built on it");
	write_image();
	char err[1024] = "";
	assert_int_equal(snap_check_file(fx.snap, err, sizeof err), -1);
	assert_mentions(err, "has changed since the image was built on it");
}

static void test_delta_whose_base_is_another_image_is_refused(void **state)
{
	(void)state;
	make_delta();
	/* Rewritten in place as another image of the same size, its mtime put
	 * back: its identity is the recorded one, its header is not. */
	write_base(1700000000000000002ull);
	set_mtime(fx.base, 1700000000, 987654321);
	expect_base_refused("is not the base it was built on");
	write_base(1700000000000000001ull);
	set_mtime(fx.base, 1700000000, 987654321);
	expect_fits();
	/* The delta was built on another base than the one there. */
	fx.h.base_hash ^= 1;
	expect_base_refused("is not the base it was built on");
}

static void test_check_base_wants_a_whole_header_hashing_to_base_hash(void **state)
{
	(void)state;
	make_delta();
	char err[1024] = "";
	int fd = open(fx.base, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(snap_check_base(image(), fd, err, sizeof err), 0);
	/* The offset of the fd is left alone. */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	/* A header whose hash field is right but whose bytes are not. */
	struct snap_header h;
	assert_int_equal(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	h.created_unix_ns ^= 1;
	assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	assert_int_equal(snap_check_base(image(), fd, err, sizeof err), -1);
	assert_mentions(err, "is not the base it was built on");
	h.created_unix_ns ^= 1;
	assert_int_equal(pwrite(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	assert_int_equal(snap_check_base(image(), fd, err, sizeof err), 0);
	/* Shorter than a header. */
	assert_int_equal(ftruncate(fd, sizeof h - 1), 0);
	assert_int_equal(snap_check_base(image(), fd, err, sizeof err), -1);
	assert_mentions(err, "is not the base it was built on");
	close(fd);
	/* No base: nothing to read. */
	fx.h.base_dep = SNAP_NO_BASE;
	fx.h.base_hash = 0;
	assert_int_equal(snap_check_base(image(), -1, err, sizeof err), 0);
}

static void test_deps_other_than_the_base_are_not_called_base(void **state)
{
	(void)state;
	make_delta();
	assert_int_equal(unlink(fx.lib), 0);
	char err[1024] = "";
	assert_int_equal(snap_check_host(image(), err, sizeof err), -1);
	assert_mentions(err, fx.lib);
	assert_null(strstr(err, "base"));
}

/* ---- snap_remove ---- */

static const char *const companions[] = {"", ".ws", ".tmp", ".ws.tmp"};
#define NCOMPANIONS (sizeof companions / sizeof companions[0])

static void companion(char *out, size_t n, size_t i)
{
	snprintf(out, n, "%s%s", fx.snap, companions[i]);
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void test_remove_takes_the_image_its_working_set_and_temporaries(void **state)
{
	(void)state;
	char p[256], other[160];
	for (size_t i = 0; i < NCOMPANIONS; i++) {
		companion(p, sizeof p, i);
		write_file(p, "x");
	}
	/* A neighbour with a similar name stays. */
	snprintf(other, sizeof other, "%s/other", fx.dir);
	write_file(other, "keep");
	snap_remove(fx.snap);
	for (size_t i = 0; i < NCOMPANIONS; i++) {
		companion(p, sizeof p, i);
		if (exists(p))
			fail_msg("%s is still there", p);
	}
	assert_true(exists(other));
	assert_true(exists(fx.lib));
}

static void test_remove_is_fine_when_some_or_all_are_missing(void **state)
{
	(void)state;
	char p[256];
	snap_remove(fx.snap); /* none of them */
	for (size_t only = 0; only < NCOMPANIONS; only++) {
		companion(p, sizeof p, only);
		write_file(p, "x");
		snap_remove(fx.snap);
		assert_false(exists(p));
	}
	snap_remove(fx.snap);
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--replaced-binary")) {
		child_dir = argv[2];
		const struct CMUnitTest child[] = {cmocka_unit_test(child_replaced_binary)};
		return cmocka_run_group_tests(child, NULL, NULL);
	}
	const struct CMUnitTest tests[] = {
		TEST(test_image_made_here_by_this_binary_fits),
		TEST(test_image_from_another_kernel_is_refused_naming_both),
		TEST(test_image_from_another_cpu_model_is_refused_naming_both),
		TEST(test_cpu_flags_alone_differing_is_refused),
		TEST(test_image_without_this_binary_among_its_deps_is_refused),
		TEST(test_image_made_by_another_build_is_refused),
		TEST(test_this_binary_under_another_name_is_this_binary),
		TEST(test_binary_dep_that_is_not_the_file_at_its_path_is_refused),
		TEST(test_host_running_a_replaced_binary_accepts_images_of_the_new_one),
		TEST(test_dep_with_another_mtime_is_refused_naming_it),
		TEST(test_dep_with_another_mtime_nanosecond_is_refused),
		TEST(test_dep_rewritten_in_place_with_another_size_is_refused),
		TEST(test_dep_replaced_by_another_file_is_refused),
		TEST(test_dep_on_another_device_is_refused),
		TEST(test_dep_that_no_longer_exists_is_refused_naming_it),
		TEST(test_the_first_refusal_is_the_one_reported),
		TEST(test_dep_matches_compares_every_identity_field),
		TEST(test_check_file_accepts_a_fitting_image_file),
		TEST(test_check_file_applies_the_host_rule),
		TEST(test_check_file_refuses_what_snap_open_refuses),
		TEST(test_delta_whose_base_is_intact_fits),
		TEST(test_delta_whose_base_is_missing_is_refused_naming_the_base),
		TEST(test_delta_whose_base_changed_is_refused_naming_the_base),
		TEST(test_delta_whose_base_is_another_image_is_refused),
		TEST(test_check_base_wants_a_whole_header_hashing_to_base_hash),
		TEST(test_deps_other_than_the_base_are_not_called_base),
		TEST(test_remove_takes_the_image_its_working_set_and_temporaries),
		TEST(test_remove_is_fine_when_some_or_all_are_missing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
