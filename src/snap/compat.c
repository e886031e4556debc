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
 * Cost: a stat per dep, a read of /proc/cpuinfo, for a delta one header of
 * its base (a page) and, for snap_check_file, the image's header and table
 * (never its data): the host calls it from its loop, as it did its own copy
 * of the rule.
 */
#include "common/util.h"
#include "snap/snap.h"

#include <errno.h>
#include <fcntl.h>
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

static int is_dep(const struct snap_image *img, const struct stat *st)
{
	for (uint32_t i = 0; i < img->h.ndeps; i++)
		if (img->deps[i].dev == (uint64_t)st->st_dev && img->deps[i].ino == (uint64_t)st->st_ino)
			return 1;
	return 0;
}

/*
 * Was the image made by this thaw binary: is the file this process runs
 * (/proc/self/exe), or the file now at its path, one of its deps? The
 * second is what the host starts its instances from: after a new build
 * was renamed over the old one, a host still running the old one must
 * accept images its instances made with the new one (and refuse those of
 * the old one: their dep at that path changed, which is checked first).
 */
static int made_by_this_binary(const struct snap_image *img, char *err, size_t errlen)
{
	struct stat st;
	if (stat("/proc/self/exe", &st) == 0 && is_dep(img, &st))
		return 0;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return err_set(err, errlen, "cannot read /proc/self/exe: %s", strerror(errno));
	exe[n] = 0;
	static const char deleted[] = " (deleted)";
	size_t dl = sizeof deleted - 1;
	if ((size_t)n > dl && !strcmp(exe + n - dl, deleted))
		exe[n - dl] = 0;
	if (stat(exe, &st) == 0 && is_dep(img, &st))
		return 0;
	return err_set(err, errlen, "made by another thaw binary than %s", exe);
}

int snap_check_host(const struct snap_image *img, char *err, size_t errlen)
{
	char id[128];
	snap_kernel_id(id, sizeof id);
	if (strcmp(id, img->h.kernel) != 0)
		return err_set(err, errlen, "made on another kernel (%s; this is %s)", img->h.kernel,
				 id);
	snap_cpu_id(id, sizeof id);
	if (strcmp(id, img->h.cpu) != 0)
		return err_set(err, errlen, "made on another CPU model (%s; this is %s)", img->h.cpu,
				 id);
	/* The deps before the binary: a binary rebuilt in place is then
	 * reported as the file that changed. The base is named as such, so
	 * that the host can tell a delta left behind by its base (built again
	 * on the current one) from an image whose library was upgraded. */
	for (uint32_t i = 0; i < img->h.ndeps; i++) {
		const char *p = snap_dep_path(img, i);
		int base = i == img->h.base_dep;
		struct stat st;
		if (stat(p, &st) < 0) {
			if (base && errno == ENOENT)
				return err_set(err, errlen, "its base image %s is missing", p);
			if (base)
				return err_set(err, errlen, "its base image %s: %s", p,
					       strerror(errno));
			return err_set(err, errlen, "%s: %s", p, strerror(errno));
		}
		if (!snap_dep_matches(&img->deps[i], &st)) {
			if (base)
				return err_set(err, errlen,
					       "its base image %s has changed since the image was "
					       "built on it",
					       p);
			return err_set(err, errlen, "%s changed since the snapshot was made", p);
		}
	}
	if (img->h.base_dep != SNAP_NO_BASE) {
		const char *p = snap_dep_path(img, img->h.base_dep);
		int fd = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return err_set(err, errlen, "its base image %s: %s", p, strerror(errno));
		int rc = snap_check_base(img, fd, err, errlen);
		close(fd);
		if (rc < 0)
			return -1;
	}
	return made_by_this_binary(img, err, errlen);
}

int snap_check_base(const struct snap_image *img, int fd, char *err, size_t errlen)
{
	if (img->h.base_dep == SNAP_NO_BASE)
		return 0;
	const char *p = snap_dep_path(img, img->h.base_dep);
	/* The header alone: its hash covers the table's hash, and through it
	 * every region and run a delta maps from the base. */
	struct snap_header h;
	size_t got = 0;
	while (got < sizeof h) {
		ssize_t n = pread(fd, (char *)&h + got, sizeof h - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == sizeof h) {
		uint64_t claimed = h.header_hash;
		h.header_hash = 0;
		if (snap_hash(0, &h, sizeof h) == claimed && claimed == img->h.base_hash)
			return 0;
	}
	return err_set(err, errlen, "its base image %s is not the base it was built on", p);
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
