/*
 * Bundles: a worker project packed for `thaw deploy` and unpacked by the host.
 *
 * Format. A POSIX tar archive (pax, extended headers only where ustar cannot
 * hold a path) compressed with zstd, written and read with libarchive. The
 * packer is deterministic: entries in a fixed order (each directory's names
 * sorted bytewise, a directory before its contents), mtime 0, uid/gid 0 with
 * no user or group names, modes 0755 for directories and executables and
 * 0644 for other files. Packing the same tree twice gives the same bytes.
 *
 * Packing. What goes in is decided by a small gitignore matcher written here
 * (rules from DIR/.gitignore, then DIR/.thawignore; the last rule that
 * matches wins; a directory that is excluded is not descended into, so a
 * negation cannot bring back a file under it). .git/, .thaw/, __pycache__/,
 * *.pyc and the local secrets files (.dev.vars*, .env* at the top) are always
 * left out; the .gitignore rules do not apply under
 * python_modules/ (which `thaw install` made and the worker needs) nor under
 * the static assets directory (often a build output that git ignores), the
 * .thawignore rules do. Symlinks are followed when they resolve inside the
 * project (a loop is refused); one that escapes it, dangles, or a device,
 * fifo or socket, is refused with its path. The output file is never packed
 * into itself.
 *
 * Reading. The bundle is hostile. Only a tar archive behind the zstd filter
 * is accepted (libarchive's "none" filter would let a bare tar through, so the
 * filter is checked after the first header). Each entry must be a regular
 * file or a directory with a clean relative path (see check_path), no
 * duplicate, and no path under something that is a file. Sizes are counted
 * from the bytes actually decompressed, never from headers; the ratio of
 * unpacked bytes to compressed bytes delivered to libarchive is checked once
 * more than RATIO_FLOOR bytes have come out. Unpacking happens one path
 * component at a time relative to the destination directory's fd, with
 * O_NOFOLLOW everywhere and O_EXCL for files, so nothing can land outside
 * it even if the checks above had a hole. Every refusal names the entry.
 *
 * Nothing here blocks on anything but the files involved; callers on the
 * host's loop run the unpack in a child (`thaw unpack-bundle`).
 */
#include "ext/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

#define MiB (1024ull * 1024ull)
#define RATIO_FLOOR (16 * MiB) /* below this, any compression ratio is fine */
#define IO_CHUNK (64 * 1024)
#define MEM_CHUNK (16 * 1024)  /* what the memory reader hands libarchive at a time */
#define IGNORE_FILE_MAX MiB
#define NOT_A_BUNDLE "not a thaw bundle (tar+zstd)"

void bundle_limits_default(struct bundle_limits *l)
{
	l->max_compressed = 256 * MiB;
	l->max_total = 1024 * MiB;
	l->max_file = 256 * MiB;
	l->max_files = 5000;
	l->max_ratio = 100;
	l->max_path = 1024;
	l->max_depth = 32;
}

/* Replace every byte of s that is not part of valid UTF-8 with '?', so that a
 * message naming a hostile entry can go into JSON as it is. */
static void utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t left = strlen(s);
	while (left) {
		size_t n = utf8_decode(p, left, NULL);
		if (n == 0) {
			*p = '?';
			n = 1;
		}
		p += n;
		left -= n;
	}
}

/* An entry's name as it may appear in a message: control bytes as '?', cut
 * at 160 bytes. */
struct shown {
	char s[176];
};

static const char *show(struct shown *out, const char *name)
{
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (n == 160) {
			memcpy(out->s + n, "...", 4);
			return out->s;
		}
		out->s[n++] = (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p;
	}
	out->s[n] = '\0';
	return out->s;
}

/* ------------------------------------------------------------------------ */
/* gitignore matching                                                       */
/* ------------------------------------------------------------------------ */

/*
 * One rule: its pattern split at '/' into segments ("**" alone is a segment
 * of its own kind), whether it negates, applies only to directories, and is
 * anchored at the project root (else it matches the last path component).
 */
struct rule {
	char **segs;
	size_t nsegs;
	bool negate, dir_only, from_gitignore;
};

struct rules {
	struct rule *v;
	size_t n, cap;
	const char *keep; /* a directory (relative, '/'-separated) the .gitignore rules skip */
};

/* Where comps[0..n) stands to the directory r->keep: 2 it or under it, 1 a
 * directory above it (walked to reach it), 0 elsewhere. */
static int keep_relation(const struct rules *r, char **comps, size_t n)
{
	const char *p = r->keep;
	if (!p || !*p)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(comps[i]);
		if (strncmp(p, comps[i], len) != 0 || (p[len] != '/' && p[len] != 0))
			return 0;
		p += len;
		while (*p == '/')
			p++;
		if (!*p)
			return 2;
	}
	return 1;
}

static void rules_free(struct rules *r)
{
	for (size_t i = 0; i < r->n; i++) {
		for (size_t j = 0; j < r->v[i].nsegs; j++)
			free(r->v[i].segs[j]);
		free(r->v[i].segs);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

/* One [...] class at p (just after '['); sets *end past the ']' and returns
 * whether c is in it, or returns -1 when the class is not terminated (the
 * '[' is then a literal). */
static int match_class(const char *p, unsigned char c, const char **end)
{
	bool negate = false, hit = false;
	if (*p == '!' || *p == '^') {
		negate = true;
		p++;
	}
	bool first = true;
	while (*p && (first || *p != ']')) {
		first = false;
		unsigned char lo = (unsigned char)*p;
		if (lo == '\\' && p[1])
			lo = (unsigned char)*++p;
		p++;
		unsigned char hi = lo;
		if (p[0] == '-' && p[1] && p[1] != ']') {
			p++;
			hi = (unsigned char)*p;
			if (hi == '\\' && p[1])
				hi = (unsigned char)*++p;
			p++;
		}
		if (lo <= c && c <= hi)
			hit = true;
	}
	if (*p != ']')
		return -1;
	*end = p + 1;
	return hit != negate;
}

/* fnmatch-like match of one path component: '*', '?', '[...]', '\' escape.
 * Linear backtracking to the last '*' only, so it is O(len(p) * len(s)). */
static bool match_component(const char *p, const char *s)
{
	const char *star_p = NULL, *star_s = NULL;
	for (;;) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		if (*s == '\0') {
			if (*p == '\0')
				return true;
			goto backtrack;
		}
		if (*p == '?') {
			p++;
			s++;
			continue;
		}
		if (*p == '[') {
			const char *end;
			int r = match_class(p + 1, (unsigned char)*s, &end);
			if (r == 1) {
				p = end;
				s++;
				continue;
			}
			if (r == 0)
				goto backtrack;
			/* unterminated: a literal '[' */
		}
		if (*p == '\\' && p[1])
			p++;
		if (*p != '\0' && *p == *s) {
			p++;
			s++;
			continue;
		}
	backtrack:
		if (!star_p || *star_s == '\0')
			return false;
		p = star_p;
		s = ++star_s;
	}
}

/*
 * Does rule r's pattern match the path made of comps[0..n)? Dynamic
 * programming over (segment, component): "**" takes any number of
 * components, except at the end of a pattern, where it takes at least one
 * (a pattern ending in "dir" then "**" is what is inside dir, not dir itself).
 */
static bool match_rule(const struct rule *r, char **comps, size_t n)
{
	size_t m = r->nsegs;
	/* ok[j] for the current segment i: segments [i, m) match comps [j, n). */
	bool *next = xcalloc(n + 1, sizeof(bool));
	bool *cur = xcalloc(n + 1, sizeof(bool));
	next[n] = true; /* i == m: only the empty rest matches */
	for (size_t i = m; i-- > 0;) {
		const char *seg = r->segs[i];
		bool globstar = !strcmp(seg, "**");
		for (size_t j = n + 1; j-- > 0;) {
			bool ok;
			if (globstar) {
				/* zero components (not at the end), or one more then again */
				ok = (i + 1 < m && next[j]) ||
				     (j < n && (next[j + 1] || cur[j + 1]));
			} else {
				ok = j < n && next[j + 1] && match_component(seg, comps[j]);
			}
			cur[j] = ok;
		}
		bool *t = next;
		next = cur;
		cur = t;
	}
	bool result = next[0];
	free(next);
	free(cur);
	return result;
}

/* Split a cleaned pattern at '/' and add it as a rule. */
static void rules_add(struct rules *r, const char *pat, bool negate, bool dir_only, bool anchored,
		      bool from_gitignore)
{
	struct rule rule = {.negate = negate, .dir_only = dir_only, .from_gitignore = from_gitignore};
	size_t cap = 4;
	rule.segs = xmalloc(cap * sizeof(char *));
	if (!anchored)
		rule.segs[rule.nsegs++] = xstrdup("**");
	const char *p = pat;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > 0) { /* "a//b" is "a/b" */
			if (rule.nsegs == cap) {
				cap *= 2;
				rule.segs = xrealloc(rule.segs, cap * sizeof(char *));
			}
			char *seg = xmalloc(len + 1);
			memcpy(seg, p, len);
			seg[len] = '\0';
			rule.segs[rule.nsegs++] = seg;
		}
		if (!slash)
			break;
		p = slash + 1;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 16;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n++] = rule;
}

/* Parse one line of an ignore file (modified in place). */
static void rules_parse_line(struct rules *r, char *line, bool from_gitignore)
{
	size_t len = strlen(line);
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	/* Trailing spaces go, unless escaped with a backslash. */
	while (len && line[len - 1] == ' ' && !(len >= 2 && line[len - 2] == '\\'))
		line[--len] = '\0';
	if (len == 0 || line[0] == '#')
		return;
	bool negate = false;
	if (line[0] == '!') {
		negate = true;
		line++;
		len--;
	} else if (line[0] == '\\' && (line[1] == '#' || line[1] == '!')) {
		line++;
		len--;
	}
	bool dir_only = false;
	if (len && line[len - 1] == '/') {
		dir_only = true;
		while (len && line[len - 1] == '/')
			line[--len] = '\0';
	}
	if (len == 0)
		return;
	/* A slash at the start or in the middle anchors the pattern. */
	bool anchored = strchr(line, '/') != NULL;
	while (*line == '/')
		line++;
	if (*line == '\0')
		return;
	rules_add(r, line, negate, dir_only, anchored, from_gitignore);
}

/* Read dir/name into r if it exists. 0, or -1 with err. */
static int rules_load(struct rules *r, const char *dir, const char *name, bool from_gitignore,
		      char *err, size_t errlen)
{
	char path[PATH_MAX];
	if (path_join(path, sizeof(path), dir, name) != 0) {
		err_set(err, errlen, "%s/%s: path too long", dir, name);
		return -1;
	}
	size_t len;
	char *text = read_file(path, IGNORE_FILE_MAX, &len);
	if (!text) {
		if (errno == ENOENT)
			return 0;
		err_set(err, errlen, "%s: %s", path,
			errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return -1;
	}
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		rules_parse_line(r, line, from_gitignore);
	free(text);
	return 0;
}

static bool rules_match(const struct rules *r, char **comps, size_t n, bool is_dir,
			bool in_modules);

/* Is the relative path comps[0..n) excluded? */
static bool rules_excluded(const struct rules *r, char **comps, size_t n, bool is_dir)
{
	const char *last = comps[n - 1];
	if (is_dir && (!strcmp(last, ".git") || !strcmp(last, ".thaw") ||
		       !strcmp(last, "__pycache__")))
		return true;
	/* `thaw install` at work, and what it leaves while swapping. */
	if (n == 1 && is_dir && !strncmp(last, ".python_modules.", 16))
		return true;
	size_t ll = strlen(last);
	if (!is_dir && ll >= 4 && !strcmp(last + ll - 4, ".pyc"))
		return true;
	/* Local secrets (thaw dev's .dev.vars / .env) never leave the machine. */
	if (!is_dir && n == 1 &&
	    (!strcmp(last, ".dev.vars") || !strncmp(last, ".dev.vars.", 10) ||
	     !strcmp(last, ".env") || !strncmp(last, ".env.", 5)))
		return true;
	int keep = keep_relation(r, comps, n);
	if (keep == 1 && is_dir)
		return rules_match(r, comps, n, is_dir, true); /* on the way to the assets */
	if (keep == 0 && r->keep && keep_relation(r, comps, 1) == 1) {
		/* Beside the way to the assets: a directory that .gitignore
		 * excludes (walked only to reach them) excludes what is under it. */
		for (size_t j = 1; j < n; j++)
			if (rules_match(r, comps, j, true, false))
				return true;
	}
	return rules_match(r, comps, n, is_dir,
			   !strcmp(comps[0], "python_modules") || keep == 2);
}

/* The last rule matching comps[0..n) decides; with in_modules, the
 * .gitignore rules are skipped. */
static bool rules_match(const struct rules *r, char **comps, size_t n, bool is_dir,
			bool in_modules)
{
	bool excluded = false;
	for (size_t i = r->n; i-- > 0;) {
		const struct rule *rule = &r->v[i];
		if (rule->dir_only && !is_dir)
			continue;
		if (rule->from_gitignore && in_modules)
			continue;
		if (match_rule(rule, comps, n)) {
			excluded = !rule->negate;
			break;
		}
	}
	return excluded;
}

/* ------------------------------------------------------------------------ */
/* packing                                                                  */
/* ------------------------------------------------------------------------ */

struct packer {
	struct archive *a;
	struct rules rules;
	struct bundle_limits limits;
	char root[PATH_MAX];      /* dir as given */
	char root_real[PATH_MAX]; /* its realpath */
	dev_t out_dev;
	ino_t out_ino;
	struct {
		dev_t dev;
		ino_t ino;
	} stack[64]; /* directories being walked, to refuse symlink loops */
	size_t depth;
	char *comps[64];
	struct bundle_stats *st;
	uint64_t last_progress;
	void (*progress)(const struct bundle_stats *st, void *arg);
	void *progress_arg;
	char *err;
	size_t errlen;
};

static void pack_progress(struct packer *pk, bool force)
{
	if (!pk->progress)
		return;
	uint64_t n = pk->st->files + pk->st->dirs;
	if (force || n - pk->last_progress >= 64) {
		pk->last_progress = n;
		pk->progress(pk->st, pk->progress_arg);
	}
}

static int pack_header(struct packer *pk, const char *rel, bool is_dir, mode_t mode, int64_t size)
{
	struct archive_entry *e = archive_entry_new();
	if (!e)
		fatal("out of memory");
	archive_entry_copy_pathname(e, rel);
	archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
	archive_entry_set_perm(e, is_dir || (mode & 0111) ? 0755 : 0644);
	archive_entry_set_size(e, is_dir ? 0 : size);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	int r = archive_write_header(pk->a, e);
	archive_entry_free(e);
	if (r < ARCHIVE_WARN) {
		err_set(pk->err, pk->errlen, "%s: %s", rel, archive_error_string(pk->a));
		return -1;
	}
	return 0;
}

static int pack_file(struct packer *pk, const char *full, const char *rel, bool follow)
{
	int fd = open(full, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
	if (fd < 0) {
		err_set(pk->err, pk->errlen, "%s: %s", rel, strerror(errno));
		return -1;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		err_set(pk->err, pk->errlen, "%s: changed while packing", rel);
		close(fd);
		return -1;
	}
	if ((uint64_t)sb.st_size > pk->limits.max_file) {
		err_set(pk->err, pk->errlen,
			"%s: %lld bytes, larger than the %" PRIu64 " bytes a host accepts for one file",
			rel, (long long)sb.st_size, pk->limits.max_file);
		close(fd);
		return -1;
	}
	if (pack_header(pk, rel, false, sb.st_mode, sb.st_size) != 0) {
		close(fd);
		return -1;
	}
	char *buf = xmalloc(IO_CHUNK);
	int64_t left = sb.st_size;
	int rc = 0;
	while (left > 0) {
		size_t want = left < IO_CHUNK ? (size_t)left : IO_CHUNK;
		ssize_t n = read(fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err_set(pk->err, pk->errlen, "%s: %s", rel,
				n < 0 ? strerror(errno) : "file shrank while packing");
			rc = -1;
			break;
		}
		la_ssize_t w = archive_write_data(pk->a, buf, (size_t)n);
		if (w != n) {
			err_set(pk->err, pk->errlen, "%s: writing the bundle: %s", rel,
				archive_error_string(pk->a) ? archive_error_string(pk->a)
							    : "short write");
			rc = -1;
			break;
		}
		left -= n;
		pk->st->bytes += (uint64_t)n;
	}
	free(buf);
	close(fd);
	if (rc == 0) {
		pk->st->files++;
		pack_progress(pk, false);
	}
	return rc;
}

static int pack_dir(struct packer *pk, const char *full, const char *rel);

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One directory entry: decide, then add it (recursing into directories). */
static int pack_entry(struct packer *pk, const char *full, const char *rel)
{
	struct stat lst, sb;
	if (lstat(full, &lst) != 0) {
		err_set(pk->err, pk->errlen, "%s: %s", rel, strerror(errno));
		return -1;
	}
	bool is_link = S_ISLNK(lst.st_mode);
	sb = lst;
	if (is_link && stat(full, &sb) != 0) {
		/* A dangling link: refused unless excluded, so decide on its name. */
		if (rules_excluded(&pk->rules, pk->comps, pk->depth, false))
			return 0;
		err_set(pk->err, pk->errlen, "%s: symlink to nowhere (%s); remove it or list it in .thawignore",
			rel, strerror(errno));
		return -1;
	}
	bool is_dir = S_ISDIR(sb.st_mode);
	if (rules_excluded(&pk->rules, pk->comps, pk->depth, is_dir))
		return 0;
	if (sb.st_dev == pk->out_dev && sb.st_ino == pk->out_ino)
		return 0; /* the bundle being written */
	if (!is_dir && !S_ISREG(sb.st_mode)) {
		const char *what = S_ISFIFO(sb.st_mode)   ? "a fifo"
				   : S_ISSOCK(sb.st_mode) ? "a socket"
							  : "a device file";
		err_set(pk->err, pk->errlen,
			"%s: %s cannot go in a bundle; remove it or list it in .thawignore", rel, what);
		return -1;
	}
	if (is_link) {
		char real[PATH_MAX];
		if (!realpath(full, real)) {
			err_set(pk->err, pk->errlen, "%s: %s", rel, strerror(errno));
			return -1;
		}
		size_t rl = strlen(pk->root_real);
		bool root_is_slash = !strcmp(pk->root_real, "/");
		bool inside = root_is_slash ||
			      (!strncmp(real, pk->root_real, rl) && (real[rl] == '/' || real[rl] == '\0'));
		if (!inside) {
			err_set(pk->err, pk->errlen,
				"%s: symlink leads outside the project (to %s); remove it or list it in .thawignore",
				rel, real);
			return -1;
		}
	}
	if (!is_dir)
		return pack_file(pk, full, rel, is_link);
	for (size_t i = 0; i < pk->depth; i++) {
		if (pk->stack[i].dev == sb.st_dev && pk->stack[i].ino == sb.st_ino) {
			err_set(pk->err, pk->errlen, "%s: symlink loop (leads back to a directory containing it)",
				rel);
			return -1;
		}
	}
	return pack_dir(pk, full, rel);
}

/* Add the directory full (rel inside the project, "" for the root). */
static int pack_dir(struct packer *pk, const char *full, const char *rel)
{
	struct stat sb;
	if (stat(full, &sb) != 0) {
		err_set(pk->err, pk->errlen, "%s: %s", *rel ? rel : full, strerror(errno));
		return -1;
	}
	if (*rel) {
		if (pack_header(pk, rel, true, 0755, 0) != 0)
			return -1;
		pk->st->dirs++;
		pack_progress(pk, false);
	}
	DIR *d = opendir(full);
	if (!d) {
		err_set(pk->err, pk->errlen, "%s: %s", *rel ? rel : full, strerror(errno));
		return -1;
	}
	size_t n = 0, cap = 16;
	char **names = xmalloc(cap * sizeof(char *));
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap *= 2;
			names = xrealloc(names, cap * sizeof(char *));
		}
		names[n++] = xstrdup(de->d_name);
	}
	int rc = 0;
	if (errno != 0) {
		err_set(pk->err, pk->errlen, "%s: %s", *rel ? rel : full, strerror(errno));
		rc = -1;
	}
	closedir(d);
	qsort(names, n, sizeof(char *), cmp_names);

	size_t depth = pk->depth;
	pk->stack[depth].dev = sb.st_dev;
	pk->stack[depth].ino = sb.st_ino;
	for (size_t i = 0; i < n && rc == 0; i++) {
		char child_full[PATH_MAX], child_rel[PATH_MAX];
		if (path_join(child_full, sizeof(child_full), full, names[i]) != 0 ||
		    (*rel ? path_join(child_rel, sizeof(child_rel), rel, names[i])
			  : snprintf(child_rel, sizeof(child_rel), "%s", names[i]) < 0)) {
			err_set(pk->err, pk->errlen, "%s/%s: path too long", rel, names[i]);
			rc = -1;
			break;
		}
		if (strlen(child_rel) > pk->limits.max_path || depth + 1 > pk->limits.max_depth ||
		    depth + 1 >= ARRAY_SIZE(pk->comps)) {
			err_set(pk->err, pk->errlen,
				"%s: path longer than %u bytes or deeper than %u directories: a host would refuse the bundle",
				child_rel, pk->limits.max_path, pk->limits.max_depth);
			rc = -1;
			break;
		}
		pk->comps[depth] = names[i];
		pk->depth = depth + 1;
		rc = pack_entry(pk, child_full, child_rel);
		pk->depth = depth;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

int bundle_pack(const char *dir, int out_fd, struct bundle_stats *st,
		void (*progress)(const struct bundle_stats *st, void *arg), void *arg,
		char *err, size_t errlen)
{
	return bundle_pack_keep(dir, NULL, out_fd, st, progress, arg, err, errlen);
}

int bundle_pack_keep(const char *dir, const char *keep, int out_fd, struct bundle_stats *st,
		     void (*progress)(const struct bundle_stats *st, void *arg), void *arg,
		     char *err, size_t errlen)
{
	struct bundle_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct packer *pk = xcalloc(1, sizeof(*pk));
	pk->st = st;
	pk->progress = progress;
	pk->progress_arg = arg;
	pk->err = err;
	pk->errlen = errlen;
	bundle_limits_default(&pk->limits);
	pk->rules.keep = keep;
	int rc = -1;

	struct stat out;
	if (fstat(out_fd, &out) != 0 || !S_ISREG(out.st_mode)) {
		err_set(err, errlen, "the bundle must be written to a regular file");
		goto done;
	}
	pk->out_dev = out.st_dev;
	pk->out_ino = out.st_ino;
	if (snprintf(pk->root, sizeof(pk->root), "%s", dir) >= (int)sizeof(pk->root) ||
	    !realpath(dir, pk->root_real)) {
		err_set(err, errlen, "%s: %s", dir, strerror(errno ? errno : ENAMETOOLONG));
		goto done;
	}
	if (rules_load(&pk->rules, dir, ".gitignore", true, err, errlen) != 0 ||
	    rules_load(&pk->rules, dir, ".thawignore", false, err, errlen) != 0)
		goto done;

	pk->a = archive_write_new();
	if (!pk->a)
		fatal("out of memory");
	if (archive_write_set_format_pax_restricted(pk->a) != ARCHIVE_OK ||
	    archive_write_add_filter_zstd(pk->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(pk->a, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(pk->a, out_fd) != ARCHIVE_OK) {
		err_set(err, errlen, "creating the bundle: %s", archive_error_string(pk->a));
		goto done;
	}
	if (pack_dir(pk, dir, "") != 0)
		goto done;
	if (archive_write_close(pk->a) != ARCHIVE_OK) {
		err_set(err, errlen, "writing the bundle: %s", archive_error_string(pk->a));
		goto done;
	}
	pack_progress(pk, true);
	rc = 0;
done:
	if (rc != 0 && err && errlen)
		utf8_clean(err);
	if (pk->a)
		archive_write_free(pk->a);
	rules_free(&pk->rules);
	free(pk);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                  */
/* ------------------------------------------------------------------------ */

/* Paths seen so far, to refuse duplicates and files used as directories. */
enum seen_kind { SEEN_FILE = 1, SEEN_DIR, SEEN_IMPLIED_DIR };

struct seen {
	char **keys;
	unsigned char *kinds;
	size_t cap, n;
};

static uint64_t hash_str(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

/* The slot for s[0..len): where it is, or the empty slot where it would go. */
static size_t seen_slot(const struct seen *t, const char *s, size_t len)
{
	size_t i = (size_t)hash_str(s, len) & (t->cap - 1);
	while (t->keys[i] && !(strlen(t->keys[i]) == len && !memcmp(t->keys[i], s, len)))
		i = (i + 1) & (t->cap - 1);
	return i;
}

static void seen_grow(struct seen *t)
{
	struct seen old = *t;
	t->cap = old.cap ? old.cap * 2 : 256;
	t->keys = xcalloc(t->cap, sizeof(char *));
	t->kinds = xcalloc(t->cap, 1);
	for (size_t i = 0; i < old.cap; i++) {
		if (!old.keys[i])
			continue;
		size_t j = seen_slot(t, old.keys[i], strlen(old.keys[i]));
		t->keys[j] = old.keys[i];
		t->kinds[j] = old.kinds[i];
	}
	free(old.keys);
	free(old.kinds);
}

static int seen_get(struct seen *t, const char *s, size_t len)
{
	if (!t->cap)
		return 0;
	size_t i = seen_slot(t, s, len);
	return t->keys[i] ? t->kinds[i] : 0;
}

static void seen_put(struct seen *t, const char *s, size_t len, int kind)
{
	if ((t->n + 1) * 2 > t->cap)
		seen_grow(t);
	size_t i = seen_slot(t, s, len);
	if (!t->keys[i]) {
		t->keys[i] = xmalloc(len + 1);
		memcpy(t->keys[i], s, len);
		t->keys[i][len] = '\0';
		t->n++;
	}
	t->kinds[i] = (unsigned char)kind;
}

static void seen_free(struct seen *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->kinds);
}

/* Where libarchive's input comes from: an fd or memory, counted. */
struct source {
	int fd;
	const unsigned char *mem;
	size_t mem_len, mem_off;
	unsigned char *buf;
	uint64_t delivered; /* compressed bytes handed to libarchive so far */
	uint64_t max_compressed;
	bool too_big;
};

static la_ssize_t source_read(struct archive *a, void *arg, const void **out)
{
	struct source *src = arg;
	ssize_t n;
	if (src->mem) {
		size_t left = src->mem_len - src->mem_off;
		n = (ssize_t)(left < MEM_CHUNK ? left : MEM_CHUNK);
		*out = src->mem + src->mem_off;
		src->mem_off += (size_t)n;
	} else {
		do
			n = read(src->fd, src->buf, IO_CHUNK);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			archive_set_error(a, errno, "reading the bundle: %s", strerror(errno));
			return -1;
		}
		*out = src->buf;
	}
	src->delivered += (uint64_t)n;
	if (src->delivered > src->max_compressed) {
		src->too_big = true;
		archive_set_error(a, EFBIG, "bundle over the size limit");
		return -1;
	}
	return n;
}

struct reader {
	struct archive *a;
	struct source src;
	const struct bundle_limits *l;
	struct bundle_stats *st;
	int dest;
	struct seen seen;
	unsigned char *buf;
	char *err;
	size_t errlen;
};

/*
 * Normalise the entry's path into out (without a leading "./" or a trailing
 * '/'), or refuse it. Returns 1 for the root itself (".", "./"), 0 for a
 * path, -1 refused.
 */
static int check_path(struct reader *rd, const char *raw, bool is_dir, char *out, size_t outlen,
		      size_t *depth)
{
	struct shown sh;
	const char *name = show(&sh, raw);
	size_t len = strlen(raw);
	if (len > rd->l->max_path) {
		err_set(rd->err, rd->errlen, "%s: path longer than %u bytes", name, rd->l->max_path);
		return -1;
	}
	if (raw[0] == '/') {
		err_set(rd->err, rd->errlen, "%s: absolute paths are not allowed", name);
		return -1;
	}
	for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			err_set(rd->err, rd->errlen, "%s: control characters are not allowed in paths",
				name);
			return -1;
		}
		if (*p == '\\') {
			err_set(rd->err, rd->errlen, "%s: backslashes are not allowed in paths", name);
			return -1;
		}
	}
	const char *p = raw;
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	len = strlen(p);
	if (len > 0 && p[len - 1] == '/') {
		if (!is_dir) {
			err_set(rd->err, rd->errlen, "%s: a file's path cannot end with '/'", name);
			return -1;
		}
		len--;
	}
	if (len == 0 || (len == 1 && p[0] == '.')) {
		if (is_dir)
			return 1;
		err_set(rd->err, rd->errlen, "%s: empty path", name);
		return -1;
	}
	if (len >= outlen) {
		err_set(rd->err, rd->errlen, "%s: path longer than %u bytes", name, rd->l->max_path);
		return -1;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	size_t n = 0;
	for (const char *c = out;;) {
		const char *slash = strchr(c, '/');
		size_t cl = slash ? (size_t)(slash - c) : strlen(c);
		if (cl == 0) {
			err_set(rd->err, rd->errlen, "%s: empty path component", name);
			return -1;
		}
		if (cl == 2 && c[0] == '.' && c[1] == '.') {
			err_set(rd->err, rd->errlen, "%s: \"..\" components are not allowed", name);
			return -1;
		}
		if (cl == 1 && c[0] == '.') {
			err_set(rd->err, rd->errlen, "%s: \".\" components are not allowed", name);
			return -1;
		}
		n++;
		if (!slash)
			break;
		c = slash + 1;
	}
	if (n > rd->l->max_depth) {
		err_set(rd->err, rd->errlen, "%s: path deeper than %u components", name,
			rd->l->max_depth);
		return -1;
	}
	*depth = n;
	return 0;
}

/* Count one more entry (file or directory) against max_files. */
static int count_entry(struct reader *rd, const char *name)
{
	if (rd->st->files + rd->st->dirs + 1 > rd->l->max_files) {
		struct shown sh;
		err_set(rd->err, rd->errlen, "%s: too many files (more than %" PRIu64 " entries)",
			show(&sh, name), rd->l->max_files);
		return -1;
	}
	return 0;
}

/*
 * Record path (normalised) as a file or a directory, with its parents as
 * directories: refuses duplicates and paths under a file. Counts new
 * directories, implied ones included (they use inodes as well).
 */
static int record_path(struct reader *rd, const char *path, bool is_dir)
{
	struct shown sh;
	size_t len = strlen(path);
	for (const char *slash = strchr(path, '/'); slash; slash = strchr(slash + 1, '/')) {
		size_t pl = (size_t)(slash - path);
		int kind = seen_get(&rd->seen, path, pl);
		if (kind == SEEN_FILE) {
			err_set(rd->err, rd->errlen, "%s: a parent directory is a file in this bundle",
				show(&sh, path));
			return -1;
		}
		if (kind == 0) {
			if (count_entry(rd, path) != 0)
				return -1;
			seen_put(&rd->seen, path, pl, SEEN_IMPLIED_DIR);
			rd->st->dirs++;
		}
	}
	int kind = seen_get(&rd->seen, path, len);
	if (kind == SEEN_IMPLIED_DIR && is_dir) {
		seen_put(&rd->seen, path, len, SEEN_DIR);
		return 0;
	}
	if (kind != 0) {
		err_set(rd->err, rd->errlen, "%s: duplicate entry", show(&sh, path));
		return -1;
	}
	if (count_entry(rd, path) != 0)
		return -1;
	seen_put(&rd->seen, path, len, is_dir ? SEEN_DIR : SEEN_FILE);
	if (is_dir)
		rd->st->dirs++;
	else
		rd->st->files++;
	return 0;
}

/*
 * Open (creating when create_last) the directories of path[0..len) under
 * rd->dest, one component at a time, never following a link. Returns an fd
 * or -1 with errno.
 */
static int open_dirs(int base, const char *path, size_t len)
{
	int cur = dup(base);
	if (cur < 0)
		return -1;
	const char *c = path, *end = path + len;
	while (c < end) {
		const char *slash = memchr(c, '/', (size_t)(end - c));
		size_t cl = slash ? (size_t)(slash - c) : (size_t)(end - c);
		char comp[NAME_MAX + 1];
		if (cl > NAME_MAX) {
			close(cur);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, c, cl);
		comp[cl] = '\0';
		if (mkdirat(cur, comp, 0755) != 0 && errno != EEXIST) {
			int e = errno;
			close(cur);
			errno = e;
			return -1;
		}
		int next = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(cur);
		if (next < 0) {
			errno = e;
			return -1;
		}
		cur = next;
		c = slash ? slash + 1 : end;
	}
	return cur;
}

/* Refuse once the unpacked bytes say this is a decompression bomb. */
static int check_totals(struct reader *rd, const char *name, uint64_t file_bytes)
{
	struct shown sh;
	if (file_bytes > rd->l->max_file) {
		err_set(rd->err, rd->errlen, "%s: file larger than %" PRIu64 " bytes",
			show(&sh, name), rd->l->max_file);
		return -1;
	}
	if (rd->st->bytes > rd->l->max_total) {
		err_set(rd->err, rd->errlen, "%s: total unpacked size over %" PRIu64 " bytes",
			show(&sh, name), rd->l->max_total);
		return -1;
	}
	uint64_t allowed;
	if (rd->st->bytes > RATIO_FLOOR &&
	    (__builtin_mul_overflow(rd->src.delivered, rd->l->max_ratio, &allowed) ? false
										: rd->st->bytes > allowed)) {
		err_set(rd->err, rd->errlen,
			"%s: compression ratio over %" PRIu64 ": refused as a decompression bomb",
			show(&sh, name), rd->l->max_ratio);
		return -1;
	}
	return 0;
}

/* A libarchive failure while reading entry name (NULL before the first). */
static void archive_failed(struct reader *rd, const char *name)
{
	struct shown sh;
	const char *why = archive_error_string(rd->a);
	if (rd->src.too_big)
		err_set(rd->err, rd->errlen, "%s%sbundle larger than %" PRIu64 " bytes",
			name ? show(&sh, name) : "", name ? ": " : "", rd->l->max_compressed);
	else
		err_set(rd->err, rd->errlen, "%s%struncated or corrupt bundle: %s",
			name ? show(&sh, name) : "", name ? ": " : "", why ? why : "read error");
}

/* A write into the destination failed with e: note a full disk (the
 * host's fault, not the bundle's); e is returned. */
static int dest_error(struct reader *rd, int e)
{
	if (e == ENOSPC || e == EDQUOT)
		rd->st->no_space = 1;
	return e;
}

/* Read (and with a destination, write) one regular file's data. */
static int read_file_data(struct reader *rd, const char *path, mode_t mode)
{
	struct shown sh;
	int fd = -1;
	if (rd->dest >= 0) {
		const char *slash = strrchr(path, '/');
		int dirfd = slash ? open_dirs(rd->dest, path, (size_t)(slash - path)) : dup(rd->dest);
		if (dirfd < 0) {
			err_set(rd->err, rd->errlen, "%s: %s", show(&sh, path),
				strerror(dest_error(rd, errno)));
			return -1;
		}
		fd = openat(dirfd, slash ? slash + 1 : path,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		int e = errno;
		close(dirfd);
		if (fd < 0) {
			err_set(rd->err, rd->errlen, "%s: %s", show(&sh, path),
				strerror(dest_error(rd, e)));
			return -1;
		}
	}
	uint64_t file_bytes = 0;
	int rc = 0;
	for (;;) {
		la_ssize_t n = archive_read_data(rd->a, rd->buf, IO_CHUNK);
		if (n == 0)
			break;
		if (n < 0) {
			archive_failed(rd, path);
			rc = -1;
			break;
		}
		file_bytes += (uint64_t)n;
		rd->st->bytes += (uint64_t)n;
		if (check_totals(rd, path, file_bytes) != 0) {
			rc = -1;
			break;
		}
		if (fd >= 0 && write_all(fd, rd->buf, (size_t)n) != 0) {
			err_set(rd->err, rd->errlen, "%s: writing: %s", show(&sh, path),
				strerror(dest_error(rd, errno)));
			rc = -1;
			break;
		}
	}
	if (fd >= 0) {
		if (rc == 0 && fchmod(fd, mode & 0111 ? 0755 : 0644) != 0) {
			err_set(rd->err, rd->errlen, "%s: %s", show(&sh, path), strerror(errno));
			rc = -1;
		}
		if (close(fd) != 0 && rc == 0) {
			err_set(rd->err, rd->errlen, "%s: writing: %s", show(&sh, path),
				strerror(dest_error(rd, errno)));
			rc = -1;
		}
	}
	return rc;
}

static int make_dir(struct reader *rd, const char *path)
{
	if (rd->dest < 0)
		return 0;
	int fd = open_dirs(rd->dest, path, strlen(path));
	if (fd < 0) {
		struct shown sh;
		err_set(rd->err, rd->errlen, "%s: %s", show(&sh, path),
			strerror(dest_error(rd, errno)));
		return -1;
	}
	int rc = fchmod(fd, 0755);
	if (rc != 0) {
		struct shown sh;
		err_set(rd->err, rd->errlen, "%s: %s", show(&sh, path), strerror(errno));
	}
	close(fd);
	return rc == 0 ? 0 : -1;
}

/* Check (and unpack) one entry whose header was just read. */
static int read_entry(struct reader *rd, struct archive_entry *e, char *path, size_t pathlen)
{
	struct shown sh;
	const char *raw = archive_entry_pathname(e);
	if (!raw)
		raw = archive_entry_pathname_utf8(e);
	if (!raw) {
		err_set(rd->err, rd->errlen, "an entry has no readable path");
		return -1;
	}
	mode_t type = archive_entry_filetype(e);
	if (archive_entry_hardlink(e) || type == AE_IFLNK) {
		err_set(rd->err, rd->errlen, "%s: links are not allowed", show(&sh, raw));
		return -1;
	}
	if (type != AE_IFREG && type != AE_IFDIR) {
		const char *what = type == AE_IFCHR || type == AE_IFBLK ? "device files"
				   : type == AE_IFIFO			 ? "fifos"
				   : type == AE_IFSOCK			 ? "sockets"
									 : "entries of this type";
		err_set(rd->err, rd->errlen, "%s: %s are not allowed (only files and directories)",
			show(&sh, raw), what);
		return -1;
	}
	bool is_dir = type == AE_IFDIR;
	if (!is_dir && archive_entry_sparse_count(e) > 0) {
		err_set(rd->err, rd->errlen, "%s: sparse files are not allowed", show(&sh, raw));
		return -1;
	}
	size_t depth;
	int r = check_path(rd, raw, is_dir, path, pathlen, &depth);
	if (r < 0)
		return -1;
	if (r == 1)
		return 0; /* the root directory itself */
	if (!is_dir && archive_entry_size_is_set(e) && archive_entry_size(e) >= 0 &&
	    (uint64_t)archive_entry_size(e) > rd->l->max_file) {
		/* Refused early; the counted bytes below are what is trusted. */
		err_set(rd->err, rd->errlen, "%s: file larger than %" PRIu64 " bytes", show(&sh, path),
			rd->l->max_file);
		return -1;
	}
	if (record_path(rd, path, is_dir) != 0)
		return -1;
	if (is_dir)
		return make_dir(rd, path);
	return read_file_data(rd, path, archive_entry_perm(e));
}

static int dir_is_empty(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	int empty = 1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

/*
 * libarchive failed before the first entry: zstd that does not decompress is
 * a broken bundle, anything else (zstd around something that is not tar, or
 * no zstd) is not a bundle at all. libarchive reports an unrecognised format
 * as EILSEQ on Linux. When archive_read_open itself fails, the filter chain
 * is already gone, but only the zstd filter can fail there (the "none"
 * filter takes anything).
 */
static void refuse_start(struct reader *rd, bool at_open)
{
	bool zstd = at_open || (archive_filter_count(rd->a) >= 2 &&
				archive_filter_code(rd->a, 0) == ARCHIVE_FILTER_ZSTD);
	if (rd->src.too_big || (zstd && archive_errno(rd->a) != EILSEQ))
		archive_failed(rd, NULL);
	else
		err_set(rd->err, rd->errlen, NOT_A_BUNDLE);
}

static int read_bundle(struct reader *rd)
{
	int rc = -1;
	char *path = xmalloc((size_t)rd->l->max_path + 1);
	char *last = xcalloc(1, (size_t)rd->l->max_path + 1); /* the last good entry */
	rd->a = archive_read_new();
	if (!rd->a)
		fatal("out of memory");
	if (archive_read_support_filter_zstd(rd->a) != ARCHIVE_OK ||
	    archive_read_support_format_tar(rd->a) != ARCHIVE_OK) {
		err_set(rd->err, rd->errlen, "libarchive without zstd: %s",
			archive_error_string(rd->a));
		goto done;
	}
	if (archive_read_open(rd->a, &rd->src, NULL, source_read, NULL) != ARCHIVE_OK) {
		refuse_start(rd, true);
		goto done;
	}
	for (bool first = true;; first = false) {
		struct archive_entry *e;
		int r = archive_read_next_header(rd->a, &e);
		if (first) {
			/* libarchive always offers the "none" filter: insist on zstd. */
			bool zstd = archive_filter_count(rd->a) >= 2 &&
				    archive_filter_code(rd->a, 0) == ARCHIVE_FILTER_ZSTD;
			bool tar = (archive_format(rd->a) & ARCHIVE_FORMAT_BASE_MASK) ==
				   ARCHIVE_FORMAT_TAR;
			if (rd->src.too_big) {
				archive_failed(rd, NULL);
				goto done;
			}
			if (r < ARCHIVE_WARN) {
				refuse_start(rd, false);
				goto done;
			}
			if (!zstd || !tar) {
				err_set(rd->err, rd->errlen, NOT_A_BUNDLE);
				goto done;
			}
		}
		if (r == ARCHIVE_EOF)
			break;
		/* A damaged header can come back as a warning with no path at all. */
		if (r < ARCHIVE_WARN ||
		    (!archive_entry_pathname(e) && !archive_entry_pathname_utf8(e))) {
			if (*last) {
				char after[240];
				struct shown sh;
				snprintf(after, sizeof(after), "after %s", show(&sh, last));
				archive_failed(rd, after);
			} else {
				archive_failed(rd, NULL);
			}
			goto done;
		}
		if (read_entry(rd, e, path, (size_t)rd->l->max_path + 1) != 0)
			goto done;
		snprintf(last, (size_t)rd->l->max_path + 1, "%s", archive_entry_pathname(e) ? archive_entry_pathname(e) : "");
	}
	rc = 0;
done:
	archive_read_free(rd->a);
	free(path);
	free(last);
	return rc;
}

static int read_common(struct reader *rd, const struct bundle_limits *l, struct bundle_stats *st)
{
	rd->l = l;
	rd->st = st;
	rd->src.max_compressed = l->max_compressed;
	rd->buf = xmalloc(IO_CHUNK);
	int rc = read_bundle(rd);
	if (rc != 0 && rd->err && rd->errlen)
		utf8_clean(rd->err);
	free(rd->buf);
	seen_free(&rd->seen);
	return rc;
}

int bundle_read(int fd, int dest_dirfd, const struct bundle_limits *l, struct bundle_stats *st,
		char *err, size_t errlen)
{
	struct bundle_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		err_set(err, errlen, "reading the bundle: %s", strerror(errno));
		return -1;
	}
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > l->max_compressed) {
		err_set(err, errlen, "bundle larger than %" PRIu64 " bytes (it is %lld)",
			l->max_compressed, (long long)sb.st_size);
		return -1;
	}
	if (dest_dirfd >= 0) {
		int empty = dir_is_empty(dest_dirfd);
		if (empty != 1) {
			err_set(err, errlen, "the destination directory %s",
				empty < 0 ? strerror(errno) : "is not empty");
			return -1;
		}
	}
	struct reader rd = {.dest = dest_dirfd, .err = err, .errlen = errlen};
	rd.src.fd = fd;
	rd.src.buf = xmalloc(IO_CHUNK);
	int rc = read_common(&rd, l, st);
	free(rd.src.buf);
	return rc;
}

int bundle_check_mem(const void *p, size_t len, const struct bundle_limits *l,
		     struct bundle_stats *st, char *err, size_t errlen)
{
	struct bundle_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if ((uint64_t)len > l->max_compressed) {
		err_set(err, errlen, "bundle larger than %" PRIu64 " bytes (it is %zu)",
			l->max_compressed, len);
		return -1;
	}
	static const unsigned char empty;
	struct reader rd = {.dest = -1, .err = err, .errlen = errlen};
	rd.src.fd = -1;
	rd.src.mem = len ? p : &empty;
	rd.src.mem_len = len;
	return read_common(&rd, l, st);
}
