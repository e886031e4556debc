/*
 * Snapshot compatibility: does an image fit this host, and removing an image
 * with the files that go with it.
 *
 * The rule (documented in snap.h at snap_check_host) lives here and only
 * here: the host asks it before it uses a stored image (snap_check_file),
 * and snap_restore asks it before it plans anything. What only the
 * restoring process can know (its vDSO address, that ASLR is off, where its
 * code and stack sit) stays in restore.c.
 *
 * Nothing here blocks for long: a stat per dep and a read of /proc/cpuinfo.
 * The host may call it from its loop.
 */
#include "snap/snap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int snap_dep_matches(const struct snap_dep *d, const struct stat *st)
{
	return (uint64_t)st->st_dev == d->dev && (uint64_t)st->st_ino == d->ino &&
	       (uint64_t)st->st_size == d->size && (int64_t)st->st_mtim.tv_sec == d->mtime_sec &&
	       (uint64_t)st->st_mtim.tv_nsec == d->mtime_nsec;
}

/* Is the running executable one of the image's deps? /proc/self/exe names
 * the file this process runs even if its path now holds another build. */
static int made_by_this_binary(const struct snap_image *img, char *err, size_t errlen)
{
	struct stat self;
	if (stat("/proc/self/exe", &self) < 0)
		return snap_fail(err, errlen, "cannot stat /proc/self/exe: %s", strerror(errno));
	for (uint32_t i = 0; i < img->h.ndeps; i++)
		if (img->deps[i].dev == (uint64_t)self.st_dev &&
		    img->deps[i].ino == (uint64_t)self.st_ino)
			return 0;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		n = snprintf(exe, sizeof exe, "this one");
	exe[n] = 0;
	return snap_fail(err, errlen, "made by another thaw binary than %s", exe);
}

int snap_check_host(const struct snap_image *img, char *err, size_t errlen)
{
	char id[128];
	snap_kernel_id(id, sizeof id);
	if (strcmp(id, img->h.kernel) != 0)
		return snap_fail(err, errlen, "made on another kernel (%s; this is %s)", img->h.kernel,
				 id);
	snap_cpu_id(id, sizeof id);
	if (strcmp(id, img->h.cpu) != 0)
		return snap_fail(err, errlen, "made on another CPU model (%s; this is %s)", img->h.cpu,
				 id);
	if (made_by_this_binary(img, err, errlen) < 0)
		return -1;
	for (uint32_t i = 0; i < img->h.ndeps; i++) {
		const char *p = snap_dep_path(img, i);
		struct stat st;
		if (stat(p, &st) < 0)
			return snap_fail(err, errlen, "%s: %s", p, strerror(errno));
		if (!snap_dep_matches(&img->deps[i], &st))
			return snap_fail(err, errlen, "%s changed since the snapshot was made", p);
	}
	return 0;
}

int snap_check_file(const char *path, char *err, size_t errlen)
{
	struct snap_image img;
	if (snap_open(path, NULL, &img, err, errlen) < 0)
		return -1;
	int rc = snap_check_host(&img, err, errlen);
	snap_image_free(&img);
	return rc;
}

void snap_remove(const char *image_path)
{
	/* The working set first: without its image it is garbage, while an
	 * image without one still restores. */
	static const char *const suffixes[] = {".ws", "", ".tmp", ".ws.tmp"};
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char p[4096];
		if (snprintf(p, sizeof p, "%s%s", image_path, suffixes[i]) < (int)sizeof p)
			unlink(p);
	}
}
