/*
 * An app's snapshot: the image its instances restore from instead of
 * booting. This file starts a build (a builder instance), takes the image
 * the builder wrote through its owner's adoption (thaw serve checks and
 * stores it off the loop; thaw dev uses it where it lies), decides which
 * new instance restores and which records the working set, and drops the
 * image when an instance refuses it, dies restoring it, or the code
 * changes. Processes are instance.c's; requests are pool.c's.
 *
 * THE SNAPSHOT STATE MACHINE (a->snap_state)
 *
 *   NONE      no image: new instances boot. a->snap_path is NULL.
 *   BUILDING  a->builder (an instance in mode "build") is writing the image
 *             to its in->snap_path; new instances boot meanwhile.
 *   ADOPTING  the builder is done and gone; its file is with the owner's
 *             adopt_snapshot hook (thaw serve: verified and stored by a
 *             helper child), whose answer is pool_snapshot_adopted().
 *             New instances boot meanwhile.
 *   READY     a->snap_path is the image: every new serving instance
 *             restores from it (snapshot_assign).
 *
 *   event                                        from       to         where
 *   build started: snapshots on, no builder,     NONE       BUILDING   pool_build_snapshot
 *       fewer than 3 builds of this generation,
 *       a process to take (else nothing happens)
 *       (callers: pool_prewarm; thaw serve's deploy and version start;
 *       and the two rebuilds below)
 *   SNAP_DONE from the builder of the current    BUILDING   ADOPTING   snapshot_written
 *       generation (the builder closes; with no
 *       adopt_snapshot hook, pool_snapshot_adopted
 *       follows at once: thaw dev)
 *   the builder closes before SNAP_DONE:         BUILDING   NONE       snapshot_inst_closed
 *       LOAD_ERROR (a->build_failed: nothing of this generation may
 *       serve; APP_SNAPSHOT_FAILED), lost (APP_SNAPSHOT_FAILED from
 *       inst_lost; instances may still boot), reload (no event)
 *   adopted: pool_snapshot_adopted(path)         ADOPTING   READY      pool_snapshot_adopted
 *       (the previous image is dropped; APP_SNAPSHOT_BUILT; with no
 *       live instance, one is spawned to restore it: that validates it
 *       and leaves a warm instance)
 *   refused: pool_snapshot_adopted(NULL, why)    ADOPTING   NONE       pool_snapshot_adopted
 *       (APP_SNAPSHOT_FAILED)
 *   an answer in any other state (the app       (any)      (same)     pool_snapshot_adopted
 *       reloaded meanwhile): path freed, ignored
 *   restore refused: READY from an instance      READY      NONE, then snapshot_restore_refused
 *       restored from the current image says it             BUILDING
 *       booted instead (APP_RESTORE_REFUSED)
 *   restore died midway: a restoring instance    READY      NONE, then snapshot_restore_died
 *       of the current image and generation                 BUILDING  (from inst_lost)
 *       lost before READY (no event)
 *   reload (pool_reload): image dropped, an      any        NONE       snapshot_new_generation
 *       adoption's answer will be ignored, the
 *       builder closed, builds counted anew,
 *       build_failed cleared
 *   pool_use_snapshot(path): an image stored     any        READY      pool_use_snapshot
 *       earlier (thaw serve, a version starting: called in NONE)
 *   host shutdown: the image is removed unless   (any)      (same)     snapshot_shutdown
 *       a->keep_snapshots (the store owns it)
 *
 *   "Dropped" (snapshot_drop): the file is removed (snap_remove, with its
 *   .ws; instances restored from it keep their mappings) unless
 *   a->keep_snapshots (its owner removes it: APP_RESTORE_REFUSED says so),
 *   a->snap_path freed, READY becomes NONE, and the working set will be
 *   asked again.
 *
 *   The working set: the first instance restored from a READY image
 *   (snapshot_assign) is asked to record the pages it writes into
 *   IMAGE.ws, which later restores populate ahead. a->snap_ws_asked marks
 *   the ask; it is cleared when that instance closes without having served
 *   a request (in the current generation), and when the image is dropped,
 *   so the next restored instance is asked instead.
 *
 * INVARIANTS
 *   - a->builder != NULL exactly while BUILDING (a build replaces neither
 *     a READY image nor an adoption: callers build from NONE).
 *   - a->snap_path is set only while READY (in practice: pool_build_snapshot
 *     does not check the state, its callers start it from NONE).
 *   - A restoring instance keeps its own copy of the path (in->image), so
 *     "restored from the current image" (snapshot_is_current) survives a
 *     newer image replacing it.
 *
 * OWNERSHIP: the builder owns the file it writes until SNAP_DONE
 * (instance.c removes it if the builder goes first); then the owner's hook
 * owns it until it answers; a->snap_path is the app's (freed and, unless
 * keep_snapshots at shutdown, removed by this file).
 *
 * BLOCKING: little. Building is a builder instance; verifying and storing
 * the image is the owner's, off the loop; snap_remove unlinks. Once per
 * image (adopted) and per base build, snap_check_file reads its header and
 * table, stats its deps and reads /proc/cpuinfo (well under a millisecond),
 * so that no restore has to.
 */
#include "host/pool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "project/project.h"
#include "snap/snap.h"

/* Builds tried per generation before the app just boots. */
#define SNAPSHOT_MAX_BUILDS 3

int snapshot_is_current(const struct app *a, const struct instance *in)
{
	return a->snap_path && in->image && !strcmp(a->snap_path, in->image);
}

static void snapshot_drop(struct app *a)
{
	a->snap_ws_asked = 0;
	a->snap_checked = 0;
	free(a->snap_base);
	a->snap_base = NULL;
	if (a->snap_path) {
		/* Mappings of restored instances stay valid. An image the owner
		 * keeps is the owner's to remove (thaw serve: a blob another
		 * version may name). */
		if (!a->keep_snapshots)
			snap_remove(a->snap_path);
		free(a->snap_path);
		a->snap_path = NULL;
	}
	if (a->snap_state == SNAPSHOT_READY)
		a->snap_state = SNAPSHOT_NONE;
}

static void app_event(struct app *a, enum app_event ev, const char *detail, double num)
{
	if (a->hooks && a->hooks->event)
		a->hooks->event(a, ev, detail, num);
}

static void file_ident(const char *path, uint64_t id[4])
{
	struct stat st;
	memset(id, 0, 4 * sizeof *id);
	if (path && stat(path, &st) == 0) {
		id[0] = (uint64_t)st.st_dev;
		id[1] = (uint64_t)st.st_ino;
		id[2] = (uint64_t)st.st_size;
		id[3] = (uint64_t)st.st_mtim.tv_sec * 1000000000ull + (uint64_t)st.st_mtim.tv_nsec;
	}
}

/* The READY image's base, which a sandbox must show its restores at the
 * same path (one header read, when the image becomes the app's); for the
 * base itself, its file's identity (a build checks it has not changed). */
static int note_base(struct app *a)
{
	if (a->is_base)
		file_ident(a->snap_path, a->base_ident);
	char base[4096], err[256];
	free(a->snap_base);
	a->snap_base = NULL;
	int named = snap_base_of(a->snap_path, base, sizeof base, err, sizeof err);
	if (named != 1)
		return named == 0 ? 0 : -1;
	/* The header is the builder's work, and a worker's code can write it:
	 * the sandbox shows restores only the host's own base, never a path
	 * an image names. An image on another base is not used. */
	const struct app *b = a->h->base;
	if (a->is_base || !b || !b->snap_path || strcmp(base, b->snap_path) != 0) {
		log_warn("%s: its image names %s as its base, not the host's base image: not used",
			 app_label(a), base);
		return -1;
	}
	a->snap_base = xstrdup(base);
	return 0;
}

/* --- the base image --- */

static void base_unwait(struct app *a)
{
	struct host *h = a->h;
	if (!a->base_waiting)
		return;
	for (struct app **p = &h->base_waiting; *p; p = &(*p)->base_next)
		if (*p == a) {
			*p = a->base_next;
			break;
		}
	a->base_next = NULL;
	a->base_waiting = 0;
}

/* Is the base being made (so a build should wait for it)? */
static int base_pending(const struct host *h)
{
	const struct app *b = h->base;
	return b && !b->build_failed &&
	       (b->snap_state == SNAPSHOT_BUILDING || b->snap_state == SNAPSHOT_ADOPTING);
}

/* The base is ready, or will not be (its build failed): the builds that
 * waited for it start, on it or from a fresh interpreter. */
static void base_settled(struct host *h)
{
	/* Until the list is empty or the base is being made again (a build
	 * that finds it unusable drops it and waits anew: not a loop). */
	while (h->base_waiting && !base_pending(h) && !h->stopping) {
		struct app *a = h->base_waiting;
		base_unwait(a);
		pool_build_snapshot(a);
		/* Nothing started and nothing to wait for: a deploy waiting on
		 * this build must not wait for its timeout. */
		if (!a->builder && !a->base_waiting && a->snap_state == SNAPSHOT_NONE)
			app_event(a, APP_SNAPSHOT_FAILED, "cannot start the snapshot build", 0);
	}
}

/* The base's build ended without an image: try again (as any app does, up
 * to SNAPSHOT_MAX_BUILDS), else builds go without it for this run. */
static void base_failed(struct app *b)
{
	if (b->snap_state == SNAPSHOT_BUILDING || b->snap_state == SNAPSHOT_ADOPTING)
		b->snap_state = SNAPSHOT_NONE;
	if (!b->h->stopping && b->snap_builds < SNAPSHOT_MAX_BUILDS)
		pool_build_snapshot(b);
	if (!base_pending(b->h)) {
		if (!b->build_failed)
			log_warn("the base image could not be made (%u tries); snapshot builds "
				 "start from a fresh interpreter",
				 b->snap_builds);
		b->build_failed = 1;
	}
	base_settled(b->h);
}

struct app *pool_base_new(struct host *h, const char *snap_dir)
{
	struct app *b = xcalloc(1, sizeof *b);
	struct project *p = xcalloc(1, sizeof *p);
	/* No worker can be called so (a dot is not allowed in a worker's
	 * name): the base builder never shares a worker's sandbox uid. Its
	 * "project" is the SDK, which every sandbox shows anyway. */
	p->name = xstrdup("thaw.base");
	p->dir = xstrdup(h->sdk_dir);
	p->main = xstrdup("base.py");
	p->vars = json_object();
	b->h = h;
	b->cfg = p;
	b->label = "base";
	b->is_base = 1;
	b->snap_dir = xstrdup(snap_dir);
#ifndef THAW_SANITIZE
	b->snapshots = 1;
#endif
	return b;
}

void snapshot_app_gone(struct app *a)
{
	base_unwait(a);
	if (a->h->base == a)
		a->h->base = NULL;
}

/* A builder could not restore the base (why): drop it, so that the next
 * build makes it again first. The image that builder wrote is whole. */
static void base_refused(struct host *h, const char *base, const char *why)
{
	struct app *b = h->base;
	if (!b || !b->snap_path || strcmp(b->snap_path, base) != 0)
		return; /* an older base, already replaced */
	/* The builder's word is not taken for it (its limits, or its code,
	 * may have made the restore fail): the host checks the base itself. */
	uint64_t now[4];
	char mine[512];
	file_ident(b->snap_path, now);
	if (memcmp(now, b->base_ident, sizeof now) == 0 &&
	    snap_check_file(b->snap_path, mine, sizeof mine) == 0) {
		log_warn("a builder could not restore the base image (%s); it is fine here: kept",
			 why);
		return;
	}
	log_warn("the base image %s was refused (%s): making it again", base, why);
	snapshot_drop(b);
	b->snap_builds = 0;
}

void pool_build_snapshot(struct app *a)
{
	struct host *h = a->h;
	if (!a->snapshots || a->builder || a->snap_builds >= SNAPSHOT_MAX_BUILDS ||
	    a->base_waiting || h->stopping)
		return;
	struct app *b = h->base;
	char why[512];
	uint64_t now[4];
	if (b && b != a && b->snap_state == SNAPSHOT_READY)
		file_ident(b->snap_path, now);
	if (b && b != a && b->snap_state == SNAPSHOT_READY &&
	    (memcmp(now, b->base_ident, sizeof now) != 0 ||
	     snap_check_file(b->snap_path, why, sizeof why) < 0)) {
		/* Gone, changed (written over in place, too), or of another
		 * binary: made again first (a header and a stat of each file it
		 * maps, once per build). */
		if (memcmp(now, b->base_ident, sizeof now) != 0)
			snprintf(why, sizeof why, "%s since it was made",
				 now[1] ? "changed" : "gone");
		log_warn("the base image %s is unusable (%s): making it again", b->snap_path, why);
		snapshot_drop(b);
		b->snap_builds = 0;
	}
	if (b && b != a && b->snap_state != SNAPSHOT_READY) {
		/* Built on the base, or not before it is known that there will
		 * be none: wait for it, making it first if nothing does. */
		if (b->snap_state == SNAPSHOT_NONE && !b->build_failed)
			pool_build_snapshot(b);
		if (base_pending(h)) {
			a->base_waiting = 1;
			a->base_next = h->base_waiting;
			h->base_waiting = a;
			return;
		}
	}
	struct instance *in = inst_take(a);
	if (!in)
		return;
	in->is_builder = 1;
	if (b && b != a && b->snap_state == SNAPSHOT_READY)
		in->base = xstrdup(b->snap_path);
	if (h->sandbox) {
		/* It can write only in a directory of its own; snapshot_written
		 * moves the image out of it. */
		if (!inst_out_dir(in)) {
			inst_close(in, "no directory to write its image in");
			return;
		}
		in->snap_path = xasprintf("%s/image.snap", in->out_dir);
	} else {
		in->snap_path = xasprintf("%s/%s-%u-%u.snap", a->snap_dir, app_label(a),
					  a->generation, ++h->snap_counter);
	}
	a->builder = in;
	a->snap_state = SNAPSHOT_BUILDING;
	a->snap_builds++;
	inst_send_init(in, a->is_base ? "base" : "build", in->snap_path, 0);
	pool_fill_spares(h);
}

void snapshot_assign(struct app *a, struct instance *in)
{
	in->restoring = a->snap_state == SNAPSHOT_READY;
	/* The first instance restored from an image records its working set. */
	int record = in->restoring && !a->snap_ws_asked;
	if (record)
		a->snap_ws_asked = 1;
	in->records_ws = record;
	if (in->restoring) {
		in->image = xstrdup(a->snap_path);
		in->image_checked = a->snap_checked;
	}
}

void snapshot_inst_closed(struct app *a, struct instance *in)
{
	/* It was to record the working set but never served: ask the next. */
	if (in->records_ws && !in->served && in->generation == a->generation)
		a->snap_ws_asked = 0;
	if (a->builder == in) {
		a->builder = NULL;
		if (a->snap_state == SNAPSHOT_BUILDING)
			a->snap_state = SNAPSHOT_NONE;
		if (in->snap_path)
			snap_remove(in->snap_path); /* whatever it left behind */
		if (a->is_base)
			base_failed(a);
	}
}

/*
 * Take the file at from, in a directory its (untrusted, possibly still
 * running) worker can write, as to, in one it cannot: exactly the regular
 * file that is at from when it is opened, never a symbolic link, directory
 * or other file a racing worker renames there meanwhile. The inode is
 * opened without following links, checked on the fd, and hard-linked from
 * the fd; nothing is done by path twice. 0, or -1 with errno.
 */
static int take_worker_file(const char *from, const char *to, uint64_t max_bytes)
{
	int fd = open(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	int rc = -1;
	if (fstat(fd, &st) < 0)
		goto out;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		errno = EFBIG;
		goto out;
	}
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	rc = linkat(AT_FDCWD, proc, AT_FDCWD, to, AT_SYMLINK_FOLLOW);
out:
	if (rc < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return 0;
}

void snapshot_written(struct instance *in, uint64_t bytes, double write_ms, const char *refused)
{
	struct app *a = in->app;
	char *path = NULL;
	if (refused && in->base)
		base_refused(a->h, in->base, refused);
	if (in->generation == a->generation && in->out_dir) {
		/* Out of the directory its (untrusted) builder can still write: a
		 * regular file, no link, from now on out of its reach. */
		char *to = xasprintf("%s/%s-%u-%u.snap", a->snap_dir, app_label(a), a->generation,
				     ++a->h->snap_counter);
		if (take_worker_file(in->snap_path, to, a->h->max_snapshot_bytes + (64u << 20)) ==
		    0) {
			unlink(in->snap_path);
			free(in->snap_path);
			in->snap_path = to;
		} else {
			char *why = xasprintf("the builder left no image file at %s: %s",
					      in->snap_path, strerror(errno));
			log_warn("%s: %s", app_label(a), why);
			free(to);
			a->builder = NULL;
			a->snap_state = SNAPSHOT_NONE;
			inst_close(in, "no image written");
			if (a->is_base) {
				free(why);
				base_failed(a);
				return;
			}
			/* Nothing else ends the build (a deploy waits on it). */
			app_event(a, APP_SNAPSHOT_FAILED, why, 0);
			free(why);
			pool_dispatch(a);
			return;
		}
	}
	if (in->generation == a->generation) {
		path = in->snap_path;
		in->snap_path = NULL;
		a->builder = NULL;
		a->adopt_bytes = bytes;
		a->adopt_write_ms = write_ms;
		a->adopt_build_ms = ns_to_ms(now_ns() - in->t_spawn);
		a->snap_state = SNAPSHOT_ADOPTING;
	}
	inst_close(in, "snapshot written");
	if (!path) {
		pool_dispatch(a);
		return;
	}
	if (a->hooks && a->hooks->adopt_snapshot) {
		/* Checking and storing it is the owner's, off the loop: it
		 * answers with pool_snapshot_adopted. */
		a->hooks->adopt_snapshot(a, path);
		free(path);
	} else {
		pool_snapshot_adopted(a, path, NULL);
	}
}

void snapshot_ws_recorded(struct instance *in)
{
	/* The recorder wrote OUT/image.ws; restores look for IMAGE.ws. The
	 * file is checked by every restore that reads it (snap_restore). */
	struct app *a = in->app;
	if (!in->out_dir || !in->image || in->generation != a->generation || !a->snap_path ||
	    strcmp(a->snap_path, in->image) != 0)
		return; /* its image is not the current one any more */
	char *from = xasprintf("%s/image.ws", in->out_dir);
	char *to = xasprintf("%s.ws", in->image);
	/* A working set is a few ranges per mapping: far below this. */
	struct stat st;
	if (take_worker_file(from, to, 64u << 20) < 0) {
		if (errno != EEXIST && errno != ENOENT)
			log_warn("%s: cannot keep the working set: %s", app_label(a),
				 strerror(errno));
	} else if (a->hooks && a->hooks->event && stat(to, &st) == 0) {
		/* Its owner counts it in the image's disk figures. */
		a->hooks->event(a, APP_WS_RECORDED, in->image, (double)st.st_size);
	}
	free(from);
	free(to);
}

void pool_snapshot_adopted(struct app *a, char *path, const char *why)
{
	if (a->snap_state != SNAPSHOT_ADOPTING) {
		/* The app moved on meanwhile (a reload): not its image any more. */
		free(path);
		return;
	}
	if (path) {
		snapshot_drop(a);
		a->snap_path = path;
		a->snap_state = SNAPSHOT_READY;
		if (note_base(a) < 0) {
			snapshot_drop(a);
			a->snap_state = SNAPSHOT_ADOPTING; /* refused, below */
			path = NULL;
			why = "the image names a base image other than the host's";
			goto refused;
		}
		/* Checked against this machine once here, not by every restore
		 * (a refusal is left to the first restore, which says why). */
		char why_not[512];
		a->snap_checked = snap_check_file(path, why_not, sizeof why_not) == 0;
		fprintf(stderr, "thaw: %s%s: %.1f MB, written in %.0f ms (built in %.0f ms)\n",
			a->is_base ? "base image" : "snapshot of ", a->is_base ? "" : app_label(a),
			(double)a->adopt_bytes / 1e6, a->adopt_write_ms, a->adopt_build_ms);
		fflush(stderr);
		if (a->is_base) {
			base_settled(a->h);
			return;
		}
		app_event(a, APP_SNAPSHOT_BUILT, path, (double)a->adopt_bytes);
		/* Validate it with a restore, which also leaves a warm instance. */
		if (a->snap_state == SNAPSHOT_READY && a->nlive == 0 && !a->build_failed &&
		    capacity_admit(a))
			inst_spawn(a);
	} else {
	refused:
		a->snap_state = SNAPSHOT_NONE;
		log_warn("%s: the snapshot could not be stored: %s", app_label(a), why ? why : "?");
		if (a->is_base) {
			base_failed(a);
			return;
		}
		app_event(a, APP_SNAPSHOT_FAILED, why, 0);
	}
	pool_dispatch(a);
}

void snapshot_restore_refused(struct instance *in, const char *why)
{
	struct app *a = in->app;
	/* The image does not fit this host (new binary, library, kernel...):
	 * this instance booted instead; rebuild. */
	log_warn("%s: snapshot refused (%s); rebuilding it", app_label(a), why);
	if (snapshot_is_current(a, in)) {
		snapshot_drop(a);
		app_event(a, APP_RESTORE_REFUSED, why, 0);
		pool_build_snapshot(a);
	}
}

void snapshot_restored(struct instance *in, double restore_ms)
{
	in->from_snapshot = 1;
	app_event(in->app, APP_RESTORED, NULL, restore_ms);
}

void snapshot_restore_died(struct app *a)
{
	/* The image passed validation but the restore failed midway: stop
	 * using it, serve the waiting requests by booting, build anew. */
	log_warn("%s: restoring from the snapshot failed; booting instead and rebuilding it",
		 app_label(a));
	snapshot_drop(a);
	pool_build_snapshot(a);
}

void snapshot_build_failed(struct app *a)
{
	/* A failed snapshot build (entropy at import, a thread...) condemns
	 * the code, even where a boot of it succeeded. */
	a->build_failed = 1;
	for (struct instance *o = a->instances, *next; o; o = next) {
		next = o->next;
		if (o->generation != a->generation)
			continue;
		if (o->inflight == 0)
			inst_close(o, "its snapshot build failed");
		else if (o->state == INST_READY)
			o->state = INST_DRAINING;
	}
}

void snapshot_new_generation(struct app *a)
{
	snapshot_drop(a);
	if (a->snap_state == SNAPSHOT_ADOPTING)
		a->snap_state = SNAPSHOT_NONE; /* its answer will be ignored */
	a->snap_builds = 0;
	a->build_failed = 0;
	if (a->builder)
		inst_close(a->builder, "stale build");
}

void pool_use_snapshot(struct app *a, const char *path)
{
	snapshot_drop(a);
	a->snap_path = xstrdup(path);
	a->snap_state = SNAPSHOT_READY;
	a->snap_checked = 1; /* by the caller */
	if (note_base(a) < 0) {
		/* Built on a base this host no longer has: built again. */
		snapshot_drop(a);
		pool_build_snapshot(a);
		return;
	}
	if (a->is_base)
		base_settled(a->h);
}

void snapshot_shutdown(struct app *a)
{
	if (a->snap_path && !a->keep_snapshots) {
		snap_remove(a->snap_path);
		free(a->snap_path);
		a->snap_path = NULL;
	}
}
