/*
 * Bundles: a worker project packed for deployment. A bundle is a POSIX tar
 * (pax) archive compressed with zstd, written and read with libarchive.
 *
 * A bundle arriving at a host is hostile input. bundle_read() accepts only
 * tar+zstd, regular files and directories, relative paths without "..", no
 * links or device nodes, and stays under the limits below; anything else is
 * refused with a reason that names the offending entry.
 */
#ifndef THAW_EXT_BUNDLE_H
#define THAW_EXT_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

struct bundle_limits {
	uint64_t max_compressed;   /* bytes of the bundle file itself */
	uint64_t max_total;        /* sum of the files' sizes once unpacked */
	uint64_t max_file;         /* one file's size */
	uint64_t max_files;        /* entries (files + directories) */
	uint64_t max_ratio;        /* unpacked/compressed, checked once total > 16 MiB */
	unsigned max_path;         /* bytes of one entry's path */
	unsigned max_depth;        /* path components */
};

/* Defaults: 256 MiB compressed, 1 GiB unpacked, 256 MiB per file, 5,000
 * entries, ratio 100, path 1,024 bytes, depth 32. */
void bundle_limits_default(struct bundle_limits *l);

struct bundle_stats {
	uint64_t files, dirs, bytes;
	/* bundle_read: unpacking failed for want of space where it writes
	 * (ENOSPC, EDQUOT): the host's disk, not the bundle, is at fault. */
	int no_space;
};

/*
 * Pack the project in dir into out_fd (a regular file, written from its
 * current offset). Includes everything under dir except what .gitignore
 * (dir's own, gitignore syntax: globs, "**", "!" negation, trailing "/" for
 * directories, leading "/" anchoring) and .thawignore exclude, and always
 * excluding .git/, .thaw/, __pycache__/ and *.pyc. python_modules/ is always
 * included even when .gitignore names it (it is what `thaw install` made).
 * Symlinks inside the project are followed only when they resolve inside it;
 * others are refused. progress, when not NULL, is called now and then.
 * 0, or -1 with a message in err.
 */
int bundle_pack(const char *dir, int out_fd, struct bundle_stats *st,
		void (*progress)(const struct bundle_stats *st, void *arg), void *arg,
		char *err, size_t errlen);
/* The same, with keep (a directory relative to dir, or NULL) packed whatever
 * .gitignore says, as python_modules/ is: the project's static assets. */
int bundle_pack_keep(const char *dir, const char *keep, int out_fd, struct bundle_stats *st,
		     void (*progress)(const struct bundle_stats *st, void *arg), void *arg,
		     char *err, size_t errlen);

/*
 * Read the bundle in fd. With dest_dirfd >= 0, unpack it under that
 * directory (which must be empty), creating files with O_EXCL|O_NOFOLLOW
 * relative to it, modes reduced to 0644/0755. With dest_dirfd < 0, only
 * check it (what the fuzzer drives). 0, or -1 with the reason in err.
 */
int bundle_read(int fd, int dest_dirfd, const struct bundle_limits *l, struct bundle_stats *st,
		char *err, size_t errlen);

/* The same over memory, check only (for the fuzzer and unit tests). */
int bundle_check_mem(const void *p, size_t len, const struct bundle_limits *l,
		     struct bundle_stats *st, char *err, size_t errlen);

#endif
