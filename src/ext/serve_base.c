/*
 * thaw serve's base image (docs/snapshots.md, "The base image"): the app
 * that makes it (pool_base_new), where it is kept, and how a new one is
 * taken in.
 *
 * The image is a blob like any other (DATA/blobs/HEX, checked and stored by
 * a helper child, `thaw adopt-snapshot`), named by a row of the store's
 * `bases` table under a key for the kind of instance it holds: the SDK's
 * files and whether Debian's site-packages are on sys.path. What else makes
 * an image unusable (another thaw binary, a changed library, kernel or CPU)
 * is checked on the image itself (snap_check_file) at start: a stored base
 * that fails it, or whose key no longer matches, is made again before the
 * first snapshot build needs it, and the new one replaces the row. A blob
 * named by a `bases` row is in use for the garbage collector (gc.c).
 *
 * Images built on a replaced base name it (snap.h, "A BASE"); they are
 * refused at their next check or restore, boot, and are built again on the
 * new one, as images of another binary are.
 */
#include "ext/serve.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "host/child.h"
#include "snap/snap.h"

#define SDK_WALK_DEPTH 8

/* The SDK's files by name, size and modification time, folded into h (a
 * rebuilt SDK changes the key; its content is in the base image). */
static uint64_t fold_dir(uint64_t h, const char *dir, int depth)
{
	DIR *d = depth < SDK_WALK_DEPTH ? opendir(dir) : NULL;
	if (!d)
		return h;
	/* In name order: readdir's order is the filesystem's. */
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	closedir(d);
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		if (name[0] == '.' || !strcmp(name, "__pycache__")) {
			free(names[i]);
			continue;
		}
		char *path = xasprintf("%s/%s", dir, name);
		struct stat st;
		if (lstat(path, &st) == 0) {
			h = snap_hash(h, name, strlen(name) + 1);
			uint64_t id[3] = {(uint64_t)st.st_size, (uint64_t)st.st_mtim.tv_sec,
					  (uint64_t)st.st_mtim.tv_nsec};
			h = snap_hash(h, id, sizeof id);
			if (S_ISDIR(st.st_mode))
				h = fold_dir(h, path, depth + 1);
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return h;
}

static void base_key(const struct host *h, char *out, size_t n)
{
	snprintf(out, n, "python-sdk-%016llx-site-%d",
		 (unsigned long long)fold_dir(0x7468617762617365ull, h->sdk_dir, 0),
		 h->system_site_packages ? 1 : 0);
}

static void base_adopt_done(void *arg, int status, const uint8_t *out, size_t len, int overflow)
{
	struct serve *s = arg;
	struct app *b = s->base;
	char *tmp = s->base_adopt_tmp;
	s->base_adopter = NULL;
	s->base_adopt_tmp = NULL;
	char why[1100], mine[STORE_SHA_HEX + 1], old[STORE_SHA_HEX + 1] = "";
	uint64_t bytes;
	char *path = adopt_answer(s, tmp, status, out, len, overflow, mine, &bytes, NULL, why,
				  sizeof why);
	if (path) {
		store_base_get(s->st, s->base_key, old);
		if (store_base_put(s->st, s->base_key, mine) < 0) {
			snprintf(why, sizeof why, "cannot record the base image in the store");
			snprintf(old, sizeof old, "%s", mine); /* unnamed: released below */
			mine[0] = 0;
			free(path);
			path = NULL;
		}
	}
	free(tmp);
	if (path) {
		log_info("the base image is %s (%.1f MB)", mine, (double)bytes / 1e6);
		s->base_bytes = bytes;
	}
	pool_snapshot_adopted(b, path, path ? NULL : why);
	/* The base it replaces (images built on it are refused from now on,
	 * and built again on this one). */
	if (old[0] && strcmp(old, mine) != 0)
		gc_release_blob(s, old);
}

static void base_adopt(struct app *b, const char *tmp)
{
	struct serve *s = b->owner;
	char err[512];
	child_cancel(s->base_adopter);
	free(s->base_adopt_tmp);
	s->base_adopt_tmp = xstrdup(tmp);
	s->base_adopter = adopt_start(s, tmp, base_adopt_done, s, err, sizeof err);
	if (!s->base_adopter) {
		free(s->base_adopt_tmp);
		s->base_adopt_tmp = NULL;
		pool_snapshot_adopted(b, NULL, err);
	}
}

static const struct app_hooks base_hooks = {.adopt_snapshot = base_adopt};

/* Every page of the stored base against its data hash, once at start
 * (~16 MB, before the loop runs): every image built here restores it, so
 * a base damaged in place must not be built on. 1, or 0 with why. */
static int verified(const char *path, char *why, size_t n)
{
	struct snap_image img;
	int fd = -1;
	if (snap_open(path, &fd, &img, why, n) < 0)
		return 0;
	int ok = snap_verify_data(fd, &img, why, n) == 0;
	snap_image_free(&img);
	close(fd);
	return ok;
}

void serve_base_start(struct serve *s, int enabled)
{
	struct host *h = &s->h;
	if (!enabled)
		return;
	char *tmp = xasprintf("%s/tmp", store_dir(s->st));
	struct app *b = pool_base_new(h, tmp);
	free(tmp);
	if (!b->snapshots) { /* a sanitizer build: no snapshots at all */
		pool_app_dispose(b);
		free(b);
		return;
	}
	b->hooks = &base_hooks;
	b->owner = s;
	b->keep_snapshots = 1;
	s->base = b;
	h->base = b;
	base_key(h, s->base_key, sizeof s->base_key);
	char hex[STORE_SHA_HEX + 1];
	if (store_base_get(s->st, s->base_key, hex) != 1)
		return; /* made before the first build needs it */
	char *path = blob_path(s->st, hex), why[512];
	if (path && snap_check_file(path, why, sizeof why) == 0 && verified(path, why, sizeof why))
		pool_use_snapshot(b, path);
	else
		log_warn("the stored base image is unusable (%s): it is made again before the next "
			 "snapshot build",
			 path ? why : "bad name");
	free(path);
}

void serve_base_stop(struct serve *s)
{
	struct app *b = s->base;
	if (!b)
		return;
	/* Its adopter, if any, went with child_kill_all. */
	s->base_adopter = NULL;
	if (s->base_adopt_tmp)
		unlink(s->base_adopt_tmp);
	free(s->base_adopt_tmp);
	s->base_adopt_tmp = NULL;
	pool_app_dispose(b);
	free(b);
	s->base = NULL;
}

int serve_base_blob(const struct serve *s, const char *hex)
{
	const struct app *b = s->base;
	if (!b || !b->snap_path)
		return 0;
	char *path = blob_path(s->st, hex);
	int same = path && !strcmp(path, b->snap_path);
	free(path);
	return same;
}
