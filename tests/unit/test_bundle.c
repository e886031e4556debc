/*
 * Tests for bundles (src/ext/bundle.c).
 *
 * Packing: a project on disk with a .gitignore that uses every rule form
 * (globs, negation, directory-only, anchored, "**") and a .thawignore is
 * packed, unpacked with bundle_read, and the tree that comes out is compared
 * with the list of paths that should have gone in, file contents and modes
 * included; packing twice gives the same bytes. Links and special files are
 * followed or refused as bundle.h says.
 *
 * Reading: hostile bundles are built here with libarchive's writer (zstd,
 * pax unless said otherwise) and each must be refused with a message naming
 * the reason. Unpacking writes nothing outside the destination.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "ext/bundle.h"
#include "common/util.h"

#define MiB (1024ull * 1024ull)

/* ---- files on disk ---- */

/* snprintf that fails the test instead of truncating. */
static void pathf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= n)
		fail_msg("test path too long");
}

static char *make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/thaw-test-bundle-XXXXXX");
	assert_non_null(mkdtemp(dir));
	return dir;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_rf(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* Write root/rel (creating its directories) with content and mode. */
static void put(const char *root, const char *rel, const char *content, mode_t mode)
{
	char path[4096];
	pathf(path, sizeof(path), "%s/%s", root, rel);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	assert_int_equal(mkdir_p(path, 0755), 0);
	*slash = '/';
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void put_dir(const char *root, const char *rel)
{
	char path[4096];
	pathf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(mkdir_p(path, 0755), 0);
}

static void put_link(const char *root, const char *rel, const char *target)
{
	char path[4096];
	pathf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(symlink(target, path), 0);
}

/* Every path under root ("d/" for directories), sorted, newline-separated. */
struct listing {
	char **v;
	size_t n;
};

static void list_into(const char *root, const char *rel, struct listing *out)
{
	char path[4096];
	pathf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char child[4096], full[4096];
		pathf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		pathf(full, sizeof(full), "%s/%s", root, child);
		struct stat sb;
		assert_int_equal(lstat(full, &sb), 0);
		assert_true(S_ISDIR(sb.st_mode) || S_ISREG(sb.st_mode));
		out->v = xrealloc(out->v, (out->n + 1) * sizeof(char *));
		out->v[out->n++] = S_ISDIR(sb.st_mode) ? xasprintf("%s/", child) : xstrdup(child);
		if (S_ISDIR(sb.st_mode))
			list_into(root, child, out);
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *list_tree(const char *root)
{
	struct listing l = {0};
	list_into(root, "", &l);
	qsort(l.v, l.n, sizeof(char *), cmp_str);
	size_t len = 1;
	for (size_t i = 0; i < l.n; i++)
		len += strlen(l.v[i]) + 1;
	char *s = xmalloc(len);
	s[0] = '\0';
	for (size_t i = 0; i < l.n; i++) {
		strcat(s, l.v[i]);
		strcat(s, "\n");
		free(l.v[i]);
	}
	free(l.v);
	return s;
}

static char *slurp(const char *root, const char *rel)
{
	char path[4096];
	pathf(path, sizeof(path), "%s/%s", root, rel);
	size_t len;
	char *s = read_file(path, 1 << 20, &len);
	if (!s)
		fail_msg("%s: %s", path, strerror(errno));
	return s;
}

static mode_t mode_of(const char *root, const char *rel)
{
	char path[4096];
	struct stat sb;
	pathf(path, sizeof(path), "%s/%s", root, rel);
	assert_int_equal(lstat(path, &sb), 0);
	return sb.st_mode & 07777;
}

/* ---- bundles built in memory with libarchive ---- */

struct membuf {
	unsigned char *p;
	size_t len, cap;
};

static la_ssize_t membuf_write(struct archive *a, void *arg, const void *buf, size_t n)
{
	(void)a;
	struct membuf *m = arg;
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->p = xrealloc(m->p, m->cap);
	}
	memcpy(m->p + m->len, buf, n);
	m->len += n;
	return (la_ssize_t)n;
}

enum filter { ZSTD, NONE, GZIP };

struct builder {
	struct archive *a;
	struct membuf out;
};

static void build_begin(struct builder *b, enum filter f, int format)
{
	memset(b, 0, sizeof(*b));
	b->a = archive_write_new();
	assert_int_equal(archive_write_set_format(b->a, format), ARCHIVE_OK);
	if (f == ZSTD)
		assert_int_equal(archive_write_add_filter_zstd(b->a), ARCHIVE_OK);
	else if (f == GZIP)
		assert_int_equal(archive_write_add_filter_gzip(b->a), ARCHIVE_OK);
	archive_write_set_bytes_in_last_block(b->a, 1);
	assert_int_equal(archive_write_open(b->a, &b->out, NULL, membuf_write, NULL), ARCHIVE_OK);
}

/* Add an entry; for regular files, size bytes of data (fill repeated). */
static void build_add(struct builder *b, const char *path, mode_t type, uint64_t size, char fill,
		      const char *link)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644);
	archive_entry_set_size(e, type == AE_IFREG && !link ? (la_int64_t)size : 0);
	if (type == AE_IFLNK)
		archive_entry_copy_symlink(e, link);
	else if (link)
		archive_entry_copy_hardlink(e, link);
	if (type == AE_IFCHR)
		archive_entry_set_rdev(e, makedev(1, 3));
	int r = archive_write_header(b->a, e);
	if (r < ARCHIVE_WARN)
		fail_msg("writing header %s: %s", path, archive_error_string(b->a));
	archive_entry_free(e);
	if (type == AE_IFREG && !link && size) {
		static char chunk[1 << 20];
		memset(chunk, fill, sizeof(chunk));
		for (uint64_t left = size; left;) {
			size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
			assert_int_equal(archive_write_data(b->a, chunk, n), (la_ssize_t)n);
			left -= n;
		}
	}
}

static void build_file(struct builder *b, const char *path, const char *content)
{
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)strlen(content));
	assert_true(archive_write_header(b->a, e) >= ARCHIVE_WARN);
	archive_entry_free(e);
	assert_int_equal(archive_write_data(b->a, content, strlen(content)),
			 (la_ssize_t)strlen(content));
}

static struct membuf build_end(struct builder *b)
{
	assert_int_equal(archive_write_close(b->a), ARCHIVE_OK);
	archive_write_free(b->a);
	return b->out;
}

/* A zstd pax bundle holding one entry. */
static struct membuf one_entry(const char *path, mode_t type, uint64_t size, const char *link)
{
	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_add(&b, path, type, size, 'x', link);
	return build_end(&b);
}

static void expect_refused_with(struct membuf m, const struct bundle_limits *l, const char *why,
				const char *entry)
{
	char err[512] = "";
	struct bundle_stats st;
	int r = bundle_check_mem(m.p, m.len, l, &st, err, sizeof(err));
	if (r != -1)
		fail_msg("bundle accepted, want a refusal mentioning [%s]", why);
	if (!strstr(err, why))
		fail_msg("refusal [%s] does not mention [%s]", err, why);
	if (entry && !strstr(err, entry))
		fail_msg("refusal [%s] does not name the entry [%s]", err, entry);
	free(m.p);
}

static void expect_refused(struct membuf m, const char *why, const char *entry)
{
	struct bundle_limits l;
	bundle_limits_default(&l);
	expect_refused_with(m, &l, why, entry);
}

/* ---- packing ---- */

static const char gitignore[] =
	"# build output\n"
	"\n"
	"*.log\n"
	"!keep.log\n"
	"build/\n"          /* directories only: the file src/build stays */
	"/top.txt\n"        /* anchored: src/top.txt stays */
	"sub/inner.txt\n"   /* inner slash anchors too: a/sub/inner.txt stays */
	"docs/**/*.tmp\n"   /* zero or more directories in between */
	"**/cache\n"        /* at any depth */
	"secret/**\n"       /* what is inside secret/, not secret/ itself ... */
	"!secret/public.txt\n" /* ... so this comes back */
	"python_modules/\n" /* never applies: thaw install made it */
	"trailing.txt   \n" /* trailing spaces are not part of the pattern */
	"\\#hash.txt\n"
	"ba[rz].txt\n"
	"?.one\n";

static void make_project(const char *p)
{
	put(p, ".gitignore", gitignore, 0644);
	put(p, ".thawignore", "notes.md\n!src/app.log\n", 0644);
	put(p, "pyproject.toml", "[project]\nname = \"w\"\n", 0644);
	put(p, "src/entry.py", "from workers import Response\n", 0755);
	put(p, "src/app.log", "kept by .thawignore's negation\n", 0644);
	put(p, "src/debug.log", "excluded\n", 0644);
	put(p, "keep.log", "kept\n", 0644);
	put(p, "build/x.o", "excluded\n", 0644);
	put(p, "src/build", "a file named build stays\n", 0644);
	put(p, "top.txt", "excluded\n", 0644);
	put(p, "src/top.txt", "stays\n", 0644);
	put(p, "sub/inner.txt", "excluded\n", 0644);
	put(p, "sub/other.txt", "stays\n", 0644);
	put(p, "a/sub/inner.txt", "stays\n", 0644);
	put(p, "docs/x.tmp", "excluded\n", 0644);
	put(p, "docs/a/b/y.tmp", "excluded\n", 0644);
	put(p, "docs/readme.md", "stays\n", 0644);
	put(p, "cache/c", "excluded\n", 0644);
	put(p, "a/cache/c", "excluded\n", 0644);
	put(p, "secret/hidden.txt", "excluded\n", 0644);
	put(p, "secret/public.txt", "stays\n", 0644);
	put(p, "trailing.txt", "excluded\n", 0644);
	put(p, "#hash.txt", "excluded\n", 0644);
	put(p, "bar.txt", "excluded\n", 0644);
	put(p, "baz.txt", "excluded\n", 0644);
	put(p, "bat.txt", "stays\n", 0644);
	put(p, "x.one", "excluded\n", 0644);
	put(p, "xy.one", "stays\n", 0644);
	put(p, "notes.md", "excluded by .thawignore\n", 0644);
	put(p, "python_modules/lib/__init__.py", "VALUE = 42\n", 0644);
	put(p, "python_modules/lib/native.log", "gitignore does not apply here\n", 0644);
	put(p, "python_modules/lib/__pycache__/__init__.cpython-311.pyc", "excluded\n", 0644);
	put(p, "src/__pycache__/entry.cpython-311.pyc", "excluded\n", 0644);
	put(p, "src/stale.pyc", "excluded\n", 0644);
	put(p, ".git/HEAD", "excluded\n", 0644);
	put(p, ".thaw/state", "excluded\n", 0644);
	put_dir(p, "assets/empty");
	put_link(p, "src/alias.py", "entry.py");   /* inside: packed as a file */
	put_link(p, "linked", "docs");             /* inside: packed as a directory */
}

static const char expected_tree[] =
	".gitignore\n"
	".thawignore\n"
	"a/\n"
	"a/sub/\n"
	"a/sub/inner.txt\n"
	"assets/\n"
	"assets/empty/\n"
	"bat.txt\n"
	"docs/\n"
	"docs/a/\n"
	"docs/a/b/\n"
	"docs/readme.md\n"
	"keep.log\n"
	"linked/\n"
	"linked/a/\n"
	"linked/a/b/\n"
	"linked/a/b/y.tmp\n" /* the docs/ rule does not apply under another name */
	"linked/readme.md\n"
	"linked/x.tmp\n"
	"pyproject.toml\n"
	"python_modules/\n"
	"python_modules/lib/\n"
	"python_modules/lib/__init__.py\n"
	"python_modules/lib/native.log\n"
	"secret/\n"
	"secret/public.txt\n"
	"src/\n"
	"src/alias.py\n"
	"src/app.log\n"
	"src/build\n"
	"src/entry.py\n"
	"src/top.txt\n"
	"sub/\n"
	"sub/other.txt\n"
	"xy.one\n";

static int pack_to(const char *dir, const char *out, struct bundle_stats *st, char *err,
		   size_t errlen)
{
	int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	int r = bundle_pack(dir, fd, st, NULL, NULL, err, errlen);
	close(fd);
	return r;
}

static void progress_count(const struct bundle_stats *st, void *arg)
{
	(void)st;
	(*(int *)arg)++;
}

static void test_pack_honours_ignore_rules_and_reads_back(void **state)
{
	(void)state;
	char *proj = make_tmpdir(), *work = make_tmpdir();
	make_project(proj);

	/* The first bundle is written inside the project: it must not pack itself. */
	char inside[4096], outside[4096], dest[4096];
	pathf(inside, sizeof(inside), "%s/out.bundle", proj);
	pathf(outside, sizeof(outside), "%s/again.bundle", work);
	pathf(dest, sizeof(dest), "%s/dest", work);
	char err[512] = "";
	struct bundle_stats st;
	int fd = open(inside, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	int calls = 0;
	if (bundle_pack(proj, fd, &st, progress_count, &calls, err, sizeof(err)) != 0)
		fail_msg("pack: %s", err);
	close(fd);
	assert_true(calls >= 1);

	struct bundle_limits l;
	bundle_limits_default(&l);
	assert_int_equal(mkdir(dest, 0755), 0);
	int dfd = open(dest, O_RDONLY | O_DIRECTORY);
	int bfd = open(inside, O_RDONLY);
	struct bundle_stats rst;
	if (bundle_read(bfd, dfd, &l, &rst, err, sizeof(err)) != 0)
		fail_msg("read: %s", err);
	close(bfd);
	close(dfd);
	assert_int_equal(rst.files, st.files);
	assert_int_equal(rst.dirs, st.dirs);
	assert_int_equal(rst.bytes, st.bytes);

	char *tree = list_tree(dest);
	if (strcmp(tree, expected_tree) != 0)
		fail_msg("unpacked tree:\n%s\nwant:\n%s", tree, expected_tree);
	free(tree);
	assert_int_equal(st.files, 20);
	assert_int_equal(st.dirs, 15);

	/* Contents equal the originals; modes are 0755 for executables and directories. */
	const char *files[] = {"src/entry.py", "src/app.log", "keep.log", "secret/public.txt",
			       "python_modules/lib/__init__.py", ".gitignore", "linked/readme.md"};
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		char *a = slurp(proj, files[i]), *b = slurp(dest, files[i]);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	char *alias = slurp(dest, "src/alias.py");
	assert_string_equal(alias, "from workers import Response\n");
	free(alias);
	assert_int_equal(mode_of(dest, "src/entry.py"), 0755);
	assert_int_equal(mode_of(dest, "src/app.log"), 0644);
	assert_int_equal(mode_of(dest, "assets/empty"), 0755);

	/* Deterministic: packing again without the first bundle in the tree (to a
	 * file outside the project) gives the same bytes. */
	size_t la, lb;
	char *a = read_file(inside, 64 * MiB, &la);
	assert_int_equal(unlink(inside), 0);
	if (pack_to(proj, outside, NULL, err, sizeof(err)) != 0)
		fail_msg("second pack: %s", err);
	char *b = read_file(outside, 64 * MiB, &lb);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(la, lb);
	assert_memory_equal(a, b, la);

	/* And the headers carry nothing from this machine. */
	struct archive *ar = archive_read_new();
	archive_read_support_filter_zstd(ar);
	archive_read_support_format_tar(ar);
	assert_int_equal(archive_read_open_memory(ar, a, la), ARCHIVE_OK);
	struct archive_entry *e;
	char prev[4096] = "";
	int n = 0;
	while (archive_read_next_header(ar, &e) == ARCHIVE_OK) {
		assert_int_equal(archive_entry_mtime(e), 0);
		assert_int_equal(archive_entry_uid(e), 0);
		assert_int_equal(archive_entry_gid(e), 0);
		const char *uname = archive_entry_uname(e), *gname = archive_entry_gname(e);
		assert_true(!uname || !*uname);
		assert_true(!gname || !*gname);
		mode_t perm = archive_entry_perm(e);
		assert_true(perm == 0644 || perm == 0755);
		/* In byte order (this tree has no name that sorts between "x" and "x/..."). */
		const char *path = archive_entry_pathname(e);
		if (strcmp(path, prev) <= 0)
			fail_msg("entry %s after %s", path, prev);
		pathf(prev, sizeof(prev), "%s", path);
		n++;
	}
	assert_int_equal(archive_filter_code(ar, 0), ARCHIVE_FILTER_ZSTD);
	assert_int_equal(n, 35);
	archive_read_free(ar);
	free(a);
	free(b);
	rm_rf(proj);
	rm_rf(work);
}

static void expect_pack_refused(const char *proj, const char *why)
{
	char out[4096], err[512] = "";
	pathf(out, sizeof(out), "%s.bundle", proj);
	int r = pack_to(proj, out, NULL, err, sizeof(err));
	unlink(out);
	if (r != -1)
		fail_msg("pack succeeded, want a refusal mentioning [%s]", why);
	if (!strstr(err, why))
		fail_msg("pack refusal [%s] does not mention [%s]", err, why);
}

/* The static assets directory is packed whatever .gitignore says (a build
 * output git ignores), as python_modules/ is; .thawignore still applies. The
 * local secrets files at the top (.dev.vars, .env*) are never packed. */
static void test_pack_keeps_the_assets_directory_and_no_local_secrets(void **state)
{
	(void)state;
	char *proj = make_tmpdir(), *work = make_tmpdir();
	put(proj, ".gitignore", "dist/\n*.map\n", 0644);
	put(proj, ".thawignore", "dist/private/\n", 0644);
	put(proj, "src/entry.py", "x = 1\n", 0644);
	put(proj, "dist/site/index.html", "<h1>hi</h1>\n", 0644);
	put(proj, "dist/site/app.js.map", "{}\n", 0644);
	put(proj, "dist/private/key.txt", "no\n", 0644);
	put(proj, "dist/other.txt", "not the assets\n", 0644);
	put(proj, ".dev.vars", "API_KEY=local\n", 0644);
	put(proj, ".env.staging", "API_KEY=local\n", 0644);
	put(proj, "src/.env", "a file of the worker's own: kept\n", 0644);
	char out[4096], dest[4096], err[512] = "";
	pathf(out, sizeof(out), "%s/b.bundle", work);
	for (int keep = 0; keep < 2; keep++) {
		int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		struct bundle_stats st;
		if (bundle_pack_keep(proj, keep ? "dist/site" : NULL, fd, &st, NULL, NULL, err,
				     sizeof(err)) != 0)
			fail_msg("pack: %s", err);
		close(fd);
		pathf(dest, sizeof(dest), "%s/dest%d", work, keep);
		assert_int_equal(mkdir(dest, 0755), 0);
		struct bundle_limits l;
		bundle_limits_default(&l);
		int dfd = open(dest, O_RDONLY | O_DIRECTORY), bfd = open(out, O_RDONLY);
		if (bundle_read(bfd, dfd, &l, NULL, err, sizeof(err)) != 0)
			fail_msg("read: %s", err);
		close(bfd);
		close(dfd);
		char *tree = list_tree(dest);
		const char *want = keep ? ".gitignore\n.thawignore\ndist/\ndist/site/\n"
					  "dist/site/app.js.map\ndist/site/index.html\nsrc/\n"
					  "src/.env\nsrc/entry.py\n"
					: ".gitignore\n.thawignore\nsrc/\nsrc/.env\nsrc/entry.py\n";
		if (strcmp(tree, want) != 0)
			print_error("keep=%d: [%s] want [%s]\n", keep, tree, want), fail();
		free(tree);
	}
	rm_rf(proj);
	rm_rf(work);
}

static void test_pack_refuses_links_out_and_special_files(void **state)
{
	(void)state;
	char *p = make_tmpdir();
	put(p, "src/entry.py", "x\n", 0644);
	put_link(p, "src/passwd", "/etc/passwd");
	expect_pack_refused(p, "src/passwd: symlink leads outside the project");

	/* Listed in .thawignore, the same link is fine. */
	put(p, ".thawignore", "src/passwd\n", 0644);
	char out[4096], err[512];
	pathf(out, sizeof(out), "%s.bundle", p);
	if (pack_to(p, out, NULL, err, sizeof(err)) != 0)
		fail_msg("pack: %s", err);
	unlink(out);

	put_link(p, "up", "..");
	expect_pack_refused(p, "up: symlink leads outside the project");
	unlink(strcat(strcpy(out, p), "/up"));

	put_link(p, "src/loop", ".");
	expect_pack_refused(p, "src/loop: symlink loop");
	unlink(strcat(strcpy(out, p), "/src/loop"));

	put_link(p, "dangling", "nowhere");
	expect_pack_refused(p, "dangling: symlink to nowhere");
	unlink(strcat(strcpy(out, p), "/dangling"));

	assert_int_equal(mkfifo(strcat(strcpy(out, p), "/pipe"), 0644), 0);
	expect_pack_refused(p, "pipe: a fifo");
	rm_rf(p);
}

/* ---- reading hostile bundles ---- */

static void test_refuses_traversal_and_absolute_paths(void **state)
{
	(void)state;
	expect_refused(one_entry("../x", AE_IFREG, 1, NULL), "\"..\" components", "../x");
	expect_refused(one_entry("a/../../x", AE_IFREG, 1, NULL), "\"..\" components", "a/../../x");
	expect_refused(one_entry("a/..", AE_IFDIR, 0, NULL), "\"..\" components", "a/..");
	expect_refused(one_entry("/etc/x", AE_IFREG, 1, NULL), "absolute paths", "/etc/x");
	expect_refused(one_entry("a//b", AE_IFREG, 1, NULL), "empty path component", "a//b");
	expect_refused(one_entry("a/./b", AE_IFREG, 1, NULL), "\".\" components", "a/./b");
	expect_refused(one_entry("a\\b", AE_IFREG, 1, NULL), "backslash", NULL);
	expect_refused(one_entry("a\nb", AE_IFREG, 1, NULL), "control characters", "a?b");
	/* libarchive reads "file/" as a directory, then the file's data as a damaged header. */
	expect_refused(one_entry("file/", AE_IFREG, 1, NULL), "corrupt bundle", "after file/");
	/* Bytes that are not UTF-8 are shown as '?', so the message can go into JSON. */
	expect_refused(one_entry("\xff\xc3/../x", AE_IFREG, 1, NULL), "\"..\" components",
		       "?\?/../x");
	expect_refused(one_entry("caf\xc3\xa9/../x", AE_IFREG, 1, NULL), "\"..\" components",
		       "caf\xc3\xa9/../x");
}

static void test_refuses_links_and_special_files(void **state)
{
	(void)state;
	expect_refused(one_entry("l", AE_IFLNK, 0, "/etc/passwd"), "links are not allowed", "l");
	expect_refused(one_entry("inside", AE_IFLNK, 0, "x"), "links are not allowed", "inside");

	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "f", "data");
	build_add(&b, "h", AE_IFREG, 0, 0, "f");
	expect_refused(build_end(&b), "links are not allowed", "h");

	expect_refused(one_entry("null", AE_IFCHR, 0, NULL), "device files are not allowed",
		       "null");
	expect_refused(one_entry("disk", AE_IFBLK, 0, NULL), "device files are not allowed",
		       "disk");
	expect_refused(one_entry("pipe", AE_IFIFO, 0, NULL), "fifos are not allowed", "pipe");
}

static void test_refuses_too_many_files(void **state)
{
	(void)state;
	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	for (int i = 0; i < 10000; i++) {
		char name[32];
		pathf(name, sizeof(name), "f%05d", i);
		build_file(&b, name, "");
	}
	struct bundle_stats st;
	char err[256];
	struct membuf m = build_end(&b);
	struct bundle_limits l;
	bundle_limits_default(&l);
	assert_int_equal(bundle_check_mem(m.p, m.len, &l, &st, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many files"));
	assert_non_null(strstr(err, "f05000"));
	assert_int_equal(st.files, 5000);
	free(m.p);

	/* Directories implied by deep paths count too. */
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "a/b/c/d/e", "x");
	l.max_files = 4;
	expect_refused_with(build_end(&b), &l, "too many files", NULL);
}

static void test_refuses_decompression_bomb_early(void **state)
{
	(void)state;
	/* 1 GiB of zeros compresses to a few KiB. */
	struct membuf m = one_entry("zeros", AE_IFREG, 1024 * MiB, NULL);
	assert_true(m.len < MiB);
	struct bundle_limits l;
	bundle_limits_default(&l);
	l.max_file = l.max_total = 4096 * MiB; /* only the ratio may stop it */
	struct bundle_stats st;
	char err[256];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(bundle_check_mem(m.p, m.len, &l, &st, err, sizeof(err)), -1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!strstr(err, "compression ratio over 100: refused as a decompression bomb") ||
	    !strstr(err, "zeros"))
		fail_msg("refusal: %s", err);
	/* It stopped soon after the 16 MiB floor, not after decompressing 1 GiB. */
	assert_true(st.bytes > 16 * MiB);
	assert_true(st.bytes < 32 * MiB);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 5.0);
	free(m.p);

	/* Below the floor the same ratio is fine (a small file of zeros). */
	m = one_entry("zeros", AE_IFREG, 8 * MiB, NULL);
	assert_int_equal(bundle_check_mem(m.p, m.len, &l, &st, err, sizeof(err)), 0);
	assert_int_equal(st.bytes, 8 * MiB);
	free(m.p);
}

static void test_refuses_sizes_over_limits(void **state)
{
	(void)state;
	struct bundle_limits l;
	bundle_limits_default(&l);
	l.max_file = 1000;
	expect_refused_with(one_entry("big", AE_IFREG, 2000, NULL), &l, "file larger than 1000 bytes",
			    "big");

	bundle_limits_default(&l);
	l.max_total = 3000;
	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_add(&b, "one", AE_IFREG, 2000, 'a', NULL);
	build_add(&b, "two", AE_IFREG, 2000, 'b', NULL);
	expect_refused_with(build_end(&b), &l, "total unpacked size over 3000 bytes", "two");

	bundle_limits_default(&l);
	struct membuf m = one_entry("f", AE_IFREG, 10, NULL);
	l.max_compressed = m.len - 1;
	expect_refused_with(m, &l, "bundle larger than", NULL);
}

static void test_refuses_long_and_deep_paths(void **state)
{
	(void)state;
	char path[2048];
	memset(path, 'p', 1100);
	path[1100] = '\0';
	expect_refused(one_entry(path, AE_IFREG, 1, NULL), "path longer than 1024 bytes", "ppp");

	path[0] = '\0';
	for (int i = 0; i < 33; i++)
		strcat(path, i ? "/d" : "d");
	expect_refused(one_entry(path, AE_IFREG, 1, NULL), "path deeper than 32 components",
		       "d/d/d");
	/* 32 is fine. */
	path[strlen(path) - 2] = '\0';
	struct membuf m = one_entry(path, AE_IFREG, 1, NULL);
	struct bundle_limits l;
	bundle_limits_default(&l);
	char err[256];
	struct bundle_stats st;
	if (bundle_check_mem(m.p, m.len, &l, &st, err, sizeof(err)) != 0)
		fail_msg("32 deep refused: %s", err);
	assert_int_equal(st.dirs, 31);
	free(m.p);
}

static void test_refuses_duplicates(void **state)
{
	(void)state;
	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "src/a.py", "1");
	build_file(&b, "./src/a.py", "2");
	expect_refused(build_end(&b), "duplicate entry", "src/a.py");

	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "a", "1");
	build_file(&b, "a/b", "2");
	expect_refused(build_end(&b), "a parent directory is a file", "a/b");

	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "a/b", "1");
	build_file(&b, "a", "2");
	expect_refused(build_end(&b), "duplicate entry", "a");
}

static void test_refuses_what_is_not_tar_zstd(void **state)
{
	(void)state;
	struct builder b;
	build_begin(&b, NONE, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "a", "plain tar");
	expect_refused(build_end(&b), "not a thaw bundle (tar+zstd)", NULL);

	build_begin(&b, GZIP, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_file(&b, "a", "gzip tar");
	expect_refused(build_end(&b), "not a thaw bundle (tar+zstd)", NULL);

	build_begin(&b, ZSTD, ARCHIVE_FORMAT_ZIP);
	build_file(&b, "a", "zip in zstd");
	expect_refused(build_end(&b), "not a thaw bundle (tar+zstd)", NULL);

	struct membuf m = {.p = xmalloc(300), .len = 300};
	for (size_t i = 0; i < m.len; i++)
		m.p[i] = (unsigned char)(i * 73 + 5);
	expect_refused(m, "not a thaw bundle (tar+zstd)", NULL);

	m = (struct membuf){.p = xmalloc(1), .len = 0};
	expect_refused(m, "not a thaw bundle (tar+zstd)", NULL);

	/* A bundle cut short: at several points, refused as truncated, never accepted. */
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	for (int i = 0; i < 20; i++) {
		char name[32], data[4096];
		pathf(name, sizeof(name), "file%02d", i);
		for (size_t j = 0; j < sizeof(data) - 1; j++)
			data[j] = (char)('a' + (j * 7 + (size_t)i * 13) % 26 + (j % 97 == 0));
		data[sizeof(data) - 1] = '\0';
		build_file(&b, name, data);
	}
	struct membuf whole = build_end(&b);
	struct bundle_limits l;
	bundle_limits_default(&l);
	char err[512];
	assert_int_equal(bundle_check_mem(whole.p, whole.len, &l, NULL, err, sizeof(err)), 0);
	for (size_t cut = 16; cut < whole.len; cut += whole.len / 7) {
		struct bundle_stats st;
		if (bundle_check_mem(whole.p, cut, &l, &st, err, sizeof(err)) != -1)
			fail_msg("bundle cut to %zu of %zu bytes accepted", cut, whole.len);
		if (!strstr(err, "truncated"))
			fail_msg("cut to %zu: [%s] does not say truncated", cut, err);
	}
	free(whole.p);
}

static void test_accepts_ustar_and_gnu_tar_with_dot_prefix(void **state)
{
	(void)state;
	int formats[] = {ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FORMAT_TAR_GNUTAR,
			 ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE};
	for (size_t i = 0; i < ARRAY_SIZE(formats); i++) {
		struct builder b;
		build_begin(&b, ZSTD, formats[i]);
		build_add(&b, "./", AE_IFDIR, 0, 0, NULL);
		build_add(&b, "./src/", AE_IFDIR, 0, 0, NULL);
		build_file(&b, "./src/entry.py", "x = 1\n");
		struct membuf m = build_end(&b);
		struct bundle_limits l;
		bundle_limits_default(&l);
		struct bundle_stats st;
		char err[256];
		if (bundle_check_mem(m.p, m.len, &l, &st, err, sizeof(err)) != 0)
			fail_msg("format %d refused: %s", formats[i], err);
		assert_int_equal(st.files, 1);
		assert_int_equal(st.dirs, 1);
		assert_int_equal(st.bytes, 6);
		free(m.p);
	}
}

/* ---- unpacking ---- */

static int unpack_mem(struct membuf m, const char *dest, char *err, size_t errlen)
{
	char path[4096];
	pathf(path, sizeof(path), "%s.bundle", dest);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, m.p, m.len), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(mkdir(dest, 0755), 0);
	int dfd = open(dest, O_RDONLY | O_DIRECTORY);
	struct bundle_limits l;
	bundle_limits_default(&l);
	int r = bundle_read(fd, dfd, &l, NULL, err, errlen);
	close(dfd);
	close(fd);
	unlink(path);
	free(m.p);
	return r;
}

static void test_unpack_writes_files_with_modes_and_nothing_outside(void **state)
{
	(void)state;
	char *work = make_tmpdir();
	char dest[4096], err[512];
	pathf(dest, sizeof(dest), "%s/dest", work);

	struct builder b;
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_add(&b, "bin/", AE_IFDIR, 0, 0, NULL);
	struct archive_entry *e = archive_entry_new();
	archive_entry_copy_pathname(e, "bin/run");
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 04777); /* setuid and world-writable: reduced to 0755 */
	archive_entry_set_size(e, 3);
	assert_int_equal(archive_write_header(b.a, e), ARCHIVE_OK);
	archive_entry_free(e);
	assert_int_equal(archive_write_data(b.a, "#!\n", 3), 3);
	build_file(&b, "deep/er/file.txt", "contents\n");
	build_add(&b, "big.bin", AE_IFREG, 3 * 65536 + 17, 'z', NULL);
	if (unpack_mem(build_end(&b), dest, err, sizeof(err)) != 0)
		fail_msg("unpack: %s", err);
	char *tree = list_tree(dest);
	assert_string_equal(tree, "big.bin\nbin/\nbin/run\ndeep/\ndeep/er/\ndeep/er/file.txt\n");
	free(tree);
	assert_int_equal(mode_of(dest, "bin/run"), 0755);
	assert_int_equal(mode_of(dest, "deep/er/file.txt"), 0644);
	assert_int_equal(mode_of(dest, "deep/er"), 0755);
	char *s = slurp(dest, "deep/er/file.txt");
	assert_string_equal(s, "contents\n");
	free(s);
	char path[4096];
	struct stat sb;
	pathf(path, sizeof(path), "%s/big.bin", dest);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 3 * 65536 + 17);

	/* A destination that is not empty is refused. */
	struct membuf m = one_entry("x", AE_IFREG, 1, NULL);
	char path2[4096];
	pathf(path2, sizeof(path2), "%s/again", work);
	put(path2, "occupied", "", 0644);
	int fd = open(path2, O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	struct bundle_limits l;
	bundle_limits_default(&l);
	int bfd = open("/dev/null", O_RDONLY);
	assert_int_equal(bundle_read(bfd, fd, &l, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not empty"));
	close(bfd);
	close(fd);
	free(m.p);

	/* Hostile entries after good ones: what was written stays inside dest. */
	const char *hostile[] = {"../escaped", "a/../../escaped", "/tmp/escaped-thaw-test"};
	for (size_t i = 0; i < ARRAY_SIZE(hostile); i++) {
		pathf(dest, sizeof(dest), "%s/h%zu", work, i);
		build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
		build_file(&b, "ok.txt", "fine");
		build_file(&b, hostile[i], "bad");
		assert_int_equal(unpack_mem(build_end(&b), dest, err, sizeof(err)), -1);
	}
	build_begin(&b, ZSTD, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED);
	build_add(&b, "a", AE_IFLNK, 0, 0, "..");
	build_file(&b, "a/escaped", "bad");
	pathf(dest, sizeof(dest), "%s/h_link", work);
	assert_int_equal(unpack_mem(build_end(&b), dest, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "links are not allowed"));

	tree = list_tree(work);
	assert_string_equal(tree, "again/\nagain/occupied\n"
				  "dest/\ndest/big.bin\ndest/bin/\ndest/bin/run\ndest/deep/\n"
				  "dest/deep/er/\ndest/deep/er/file.txt\n"
				  "h0/\nh0/ok.txt\nh1/\nh1/ok.txt\nh2/\nh2/ok.txt\nh_link/\n");
	free(tree);
	assert_int_equal(access("/tmp/escaped-thaw-test", F_OK), -1);
	rm_rf(work);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_honours_ignore_rules_and_reads_back),
		cmocka_unit_test(test_pack_keeps_the_assets_directory_and_no_local_secrets),
		cmocka_unit_test(test_pack_refuses_links_out_and_special_files),
		cmocka_unit_test(test_refuses_traversal_and_absolute_paths),
		cmocka_unit_test(test_refuses_links_and_special_files),
		cmocka_unit_test(test_refuses_too_many_files),
		cmocka_unit_test(test_refuses_decompression_bomb_early),
		cmocka_unit_test(test_refuses_sizes_over_limits),
		cmocka_unit_test(test_refuses_long_and_deep_paths),
		cmocka_unit_test(test_refuses_duplicates),
		cmocka_unit_test(test_refuses_what_is_not_tar_zstd),
		cmocka_unit_test(test_accepts_ustar_and_gnu_tar_with_dot_prefix),
		cmocka_unit_test(test_unpack_writes_files_with_modes_and_nothing_outside),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
