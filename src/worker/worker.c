/*
 * `thaw worker`: one instance. Started by the host with its end of a
 * socketpair on fd 3 (THAW_WORKER_FD) and nothing in argv or environ that it
 * relies on: everything per-instance arrives in the INIT frame.
 *
 *   1. send HELLO, wait for INIT (JSON: project, entry module, vars, paths);
 *   2. initialise CPython (isolated PyConfig, explicit sys.path);
 *   3. _thaw_runtime.load(config): run the worker's top-level code and find its
 *      handler -> READY, or LOAD_ERROR with the traceback and exit;
 *   4. _thaw_runtime.serve(fd): the asyncio loop that answers requests until
 *      the host closes the socket.
 * Step 3 returns to C with no Python frame on the stack: that quiet point is
 * where a snapshot is taken.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker/limits.h"
#include "worker/pymod.h"
#include "worker/sandbox.h"
#include "worker/worker.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/frame.h"
#include "snap/snap.h"

#include <sys/personality.h>

struct wcfg {
	json_t *root;
	const char *name;
	const char *project_dir;
	const char *main;
	const char *sdk_dir;
	const char *mode;     /* "boot" (default), "build", "restore" or "base" */
	const char *snapshot; /* build, base: where to write; restore: what to map */
	const char *base;     /* build: the base image to restore and build on, or NULL */
	json_int_t max_snapshot_bytes;
	int system_site_packages;
};

static int send_frame(int fd, uint8_t type, uint32_t stream, const void *p, size_t len)
{
	uint8_t hdr[THAW_FRAME_HEADER];
	if (len > THAW_FRAME_MAX_PAYLOAD)
		len = THAW_FRAME_MAX_PAYLOAD; /* only text frames come here; truncate */
	thaw_frame_header(hdr, type, stream, (uint32_t)len);
	if (write_all(fd, hdr, sizeof hdr) < 0 || write_all(fd, p, len) < 0)
		return -1;
	return 0;
}

/* Block until one whole frame has arrived; returns its payload (malloc'd). */
static uint8_t *recv_frame(int fd, uint8_t *type, size_t *len)
{
	struct buf in = {0};
	for (;;) {
		struct thaw_frame f;
		size_t used;
		int r = thaw_frame_decode(buf_head(&in), buf_used(&in), &f, &used);
		if (r == THAW_FRAME_OK) {
			uint8_t *p = xmalloc(f.len + 1);
			memcpy(p, f.payload, f.len);
			p[f.len] = 0;
			*type = f.type;
			*len = f.len;
			buf_free(&in);
			return p;
		}
		if (r != THAW_FRAME_NEED_MORE) {
			log_error("bad frame from host: %s", thaw_frame_strerror(r));
			break;
		}
		uint8_t *dst = buf_reserve(&in, 65536);
		ssize_t n = read(fd, dst, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* host went away */
		in.len += (size_t)n;
	}
	buf_free(&in);
	return NULL;
}

static int append_path(PyConfig *pc, const char *path)
{
	wchar_t *w = Py_DecodeLocale(path, NULL);
	if (!w)
		return -1;
	PyStatus st = PyWideStringList_Append(&pc->module_search_paths, w);
	PyMem_RawFree(w);
	return PyStatus_Exception(st) ? -1 : 0;
}

static int dir_exists(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int python_init(const struct wcfg *c)
{
	PyConfig pc;
	PyConfig_InitIsolatedConfig(&pc);
	pc.site_import = 0;
	pc.buffered_stdio = 0;
	pc.install_signal_handlers = 0;
	pc.parse_argv = 0;
	pc.pathconfig_warnings = 0;
	pc.module_search_paths_set = 1;
	PyStatus st = PyConfig_SetBytesString(&pc, &pc.home, THAW_PY_PREFIX);
	if (PyStatus_Exception(st))
		goto fail;
	st = PyConfig_SetBytesString(&pc, &pc.program_name, "thaw-worker");
	if (PyStatus_Exception(st))
		goto fail;

	/* sys.path: the entry module's directory, src/, the SDK, python_modules/,
	 * the standard library, and Debian's site-packages only if asked. The SDK
	 * goes before the project's dependencies: Cloudflare's own `workers`
	 * package (workers-runtime-sdk), installed as a dependency, must not
	 * replace thaw's. */
	/* A base image has no project: a build on it adds the project's
	 * entries where they would be (_thaw_runtime._add_project_paths). */
	int base = !strcmp(c->mode, "base");
	char *main_path = xasprintf("%s/%s", c->project_dir, c->main);
	char *slash = strrchr(main_path, '/');
	*slash = 0;
	char *src = xasprintf("%s/src", c->project_dir);
	char *mods = xasprintf("%s/python_modules", c->project_dir);
	int bad = base ? 0 : append_path(&pc, main_path);
	if (!base && strcmp(main_path, src) != 0 && dir_exists(src))
		bad |= append_path(&pc, src);
	bad |= append_path(&pc, c->sdk_dir);
	if (!base)
		bad |= append_path(&pc, mods);
	bad |= append_path(&pc, THAW_PY_STDLIB);
	bad |= append_path(&pc, THAW_PY_DYNLOAD);
	if (c->system_site_packages) {
		char *site = xstrdup(THAW_PY_SITE), *save = NULL;
		for (char *p = strtok_r(site, ":", &save); p; p = strtok_r(NULL, ":", &save))
			if (dir_exists(p))
				bad |= append_path(&pc, p);
		free(site);
	}
	free(main_path);
	free(src);
	free(mods);
	if (bad) {
		PyConfig_Clear(&pc);
		log_error("cannot build sys.path");
		return -1;
	}
	if (PyImport_AppendInittab("_thaw", thaw_pymod_init) < 0) {
		PyConfig_Clear(&pc);
		return -1;
	}
	st = Py_InitializeFromConfig(&pc);
	PyConfig_Clear(&pc);
	if (PyStatus_Exception(st))
		goto fail_noclear;
	return 0;
fail:
	PyConfig_Clear(&pc);
fail_noclear:
	log_error("cannot initialise Python: %s", st.err_msg ? st.err_msg : "unknown error");
	return -1;
}

/*
 * The pending Python exception as text. A LoadError from the runtime is a
 * message meant for the user as it is; anything else gets its traceback.
 */
static char *exception_text(void)
{
	PyObject *type, *value, *tb;
	PyErr_Fetch(&type, &value, &tb);
	PyErr_NormalizeException(&type, &value, &tb);
	if (tb && value)
		PyException_SetTraceback(value, tb);
	char *out = NULL;
	PyObject *s = NULL;
	if (type && PyType_Check(type) &&
	    strcmp(((PyTypeObject *)type)->tp_name, "LoadError") == 0) {
		s = PyObject_Str(value);
	} else {
		PyObject *mod = PyImport_ImportModule("traceback");
		PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception", "OOO", type,
							    value ? value : Py_None,
							    tb ? tb : Py_None)
				      : NULL;
		if (lines) {
			PyObject *empty = PyUnicode_FromString("");
			s = empty ? PyUnicode_Join(empty, lines) : NULL;
			Py_XDECREF(empty);
		}
		Py_XDECREF(lines);
		Py_XDECREF(mod);
	}
	const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
	out = xstrdup(u ? u : "unknown error (the exception could not be formatted)");
	PyErr_Clear();
	Py_XDECREF(s);
	Py_XDECREF(type);
	Py_XDECREF(value);
	Py_XDECREF(tb);
	return out;
}

/* The READY JSON (a str) with the members of the object `more` added, in
 * one decode and encode; takes both references. */
static PyObject *ready_with(PyObject *ready, json_t *more)
{
	json_t *rj = json_loads(PyUnicode_AsUTF8(ready), 0, NULL);
	if (!rj || !more) {
		json_decref(rj);
		json_decref(more);
		return ready;
	}
	json_object_update(rj, more);
	json_decref(more);
	char *rs = json_dumps(rj, JSON_COMPACT);
	json_decref(rj);
	PyObject *out = PyUnicode_FromString(rs ? rs : "{}");
	free(rs);
	if (!out)
		return ready;
	Py_DECREF(ready);
	return out;
}

/* The pid the host knows this instance by (INIT's "pid": inside a sandbox
 * getpid() is 1), for log lines. */
static int host_pid(const void *init, size_t len)
{
	json_t *j = json_loadb(init, len, 0, NULL);
	json_int_t pid = json_integer_value(json_object_get(j, "pid"));
	json_decref(j);
	return pid > 0 && pid < (1 << 30) ? (int)pid : (int)getpid();
}

static _Noreturn void worker_exit(int code);

/*
 * A sandboxed builder runs as PID 2 under a PID 1 that only waits for it.
 * Every instance restored from its image is PID 1, so each one's process id
 * differs from the builder's, and libraries that notice a fork by a change
 * of process id (OpenSSL's random generators, for one) reseed in each
 * restored instance as they would in the child of a fork.
 */
static void builder_not_pid1(void)
{
	pid_t child = fork();
	if (child < 0) {
		log_error("cannot fork the snapshot builder: %s", strerror(errno));
		worker_exit(1);
	}
	if (child == 0)
		return;
	close(THAW_WORKER_FD); /* the builder's alone: its end is the host's EOF */
	for (;;) {
		int st;
		pid_t p = waitpid(-1, &st, 0);
		if (p < 0 && errno == EINTR)
			continue;
		if (p < 0)
			_exit(1);
		if (p == child) /* PID 1 cannot die of a signal it sends itself: say it */
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
}

static _Noreturn void worker_exit(int code)
{
	fflush(stdout);
	fflush(stderr);
	_exit(code);
}

/* ready (a new reference, or NULL with a Python exception set) must be the
 * READY JSON text that what returned: else LOAD_ERROR says why, and exit. */
static PyObject *ready_or_exit(int fd, PyObject *ready, const char *what)
{
	if (ready && PyUnicode_Check(ready))
		return ready;
	char *text = ready ? xasprintf("%s did not return a string", what) : exception_text();
	send_frame(fd, THAW_F_LOAD_ERROR, 0, text, strlen(text));
	free(text);
	worker_exit(3);
}

#ifndef THAW_SANITIZE
/*
 * The builder's end: checkpoint this process to path. In the builder it
 * sends SNAP_DONE (with base_refused, when a base was refused on the way)
 * or LOAD_ERROR saying why, and exits; it returns only in a process
 * restored from the image. what names the code for messages.
 */
static void checkpoint_or_exit(int fd, const char *path, uint64_t max_bytes, const char *what,
			       const char *base_refused)
{
	/* The quiet point: one thread, no Python frame on the stack. */
	fflush(stdout);
	fflush(stderr);
	int keep[] = {fd};
	struct snap_checkpoint_opts o = {.keep_fds = keep, .nkeep = 1, .max_bytes = max_bytes};
	struct snap_stats sst = {0};
	char err[512];
	/* As around a fork: the before-fork hooks run and the import lock is
	 * taken, so that a restored process (the "child") finds them as
	 * PyOS_AfterFork_Child expects; the builder (the "parent") lets them go
	 * if it stays. */
	PyOS_BeforeFork();
	int r = snap_checkpoint(path, &o, &sst, err, sizeof err);
	if (r == SNAP_RESTORED)
		return;
	PyOS_AfterFork_Parent();
	if (r == SNAP_WRITTEN) {
		json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "bytes",
				      (json_int_t)sst.file_bytes, "saved_pages",
				      (json_int_t)sst.saved_pages, "base_pages",
				      (json_int_t)sst.base_pages, "regions",
				      (json_int_t)sst.regions, "deps", (json_int_t)sst.deps, "ms",
				      sst.ms);
		if (j && base_refused && base_refused[0])
			json_object_set_new(j, "base_refused", json_string(base_refused));
		char *msg = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!msg)
			worker_exit(1);
		send_frame(fd, THAW_F_SNAP_DONE, 0, msg, strlen(msg));
		free(msg);
		worker_exit(0);
	}
	char msg[1024];
	if (r == SNAP_ERR_THREADS)
		snprintf(msg, sizeof msg,
			 "cannot snapshot %s: top-level code started a thread (%s): start it in an "
			 "after_restore hook",
			 what, err);
	else if (r == SNAP_ERR_FD)
		snprintf(msg, sizeof msg,
			 "cannot snapshot %s: top-level code left a file or socket open: %s: open "
			 "it "
			 "in the handler or an after_restore hook",
			 what, err);
	else if (r == SNAP_ERR_TOO_BIG)
		snprintf(msg, sizeof msg,
			 "cannot snapshot %s: %s (raise --max-snapshot-mb or import less at top "
			 "level)",
			 what, err);
	else
		snprintf(msg, sizeof msg, "cannot snapshot %s: %s", what, err);
	send_frame(fd, THAW_F_LOAD_ERROR, 0, msg, strlen(msg));
	worker_exit(3);
}

/*
 * In a process just restored from the base image: build the worker that
 * init (the builder's INIT, carried across the restore; taken) names, as a
 * builder started afresh would: load it, then checkpoint. Returns only in a
 * process restored from the worker's image, with the worker's name in name.
 */
static void become_builder(int fd, PyObject *rt, char *init, char *name, size_t namelen)
{
	json_t *j = init ? json_loads(init, 0, NULL) : NULL;
	const char *wname = NULL, *main = NULL, *snapshot = NULL;
	json_int_t max = 0;
	if (!j || json_unpack(j, "{s:s, s:s, s:s, s?I}", "name", &wname, "main", &main, "snapshot",
			      &snapshot, "max_snapshot_bytes", &max) < 0) {
		const char *msg = "the base image was restored without a builder's INIT";
		send_frame(fd, THAW_F_LOAD_ERROR, 0, msg, strlen(msg));
		worker_exit(1);
	}
	snprintf(name, namelen, "%s", wname);
	char prefix[96], comm[16];
	snprintf(prefix, sizeof prefix, "%s[%d]", wname, host_pid(init, strlen(init)));
	log_set_prefix(prefix);
	snprintf(comm, sizeof comm, "thaw:%s", wname);
	prctl(PR_SET_NAME, comm);
	char lerr[256];
	if (worker_apply_rlimits(json_object_get(j, "limits"), 0, lerr, sizeof lerr) < 0) {
		send_frame(fd, THAW_F_LOAD_ERROR, 0, lerr, strlen(lerr));
		worker_exit(1);
	}
	Py_DECREF(ready_or_exit(fd, PyObject_CallMethod(rt, "load", "s", init),
				"_thaw_runtime.load"));
	char *path = xstrdup(snapshot), *what = xstrdup(main);
	json_decref(j);
	free(init);
	checkpoint_or_exit(fd, path, (uint64_t)max, what, NULL);
	free(path);
	free(what);
}
#endif

int worker_main(int argc, char **argv)
{
	int fd = THAW_WORKER_FD;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr,
			"thaw worker: this mode is internal: `thaw dev` and `thaw serve` start "
			"it with a socket on fd %d\n",
			fd);
		return 2;
	}
	/* The host owns our lifetime: die with it, ignore the terminal's signals
	 * (it is in another process group), and never die of SIGPIPE. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	char prefix[64];
	if (!sbx_started_sandboxed()) {
		/* Unsandboxed (--no-sandbox): its control group, as a spare does in
		 * sbx_stage1. */
		char err[512];
		if (sbx_join_cgroups(err, sizeof err) < 0) {
			fprintf(stderr, "thaw worker: %s\n", err);
			return 1;
		}
	}
	if (sbx_started_sandboxed() && !sbx_in_stage2()) {
		/* Started sandboxed: the shared part of its root first (returns
		 * only on failure: it execs itself again from inside). */
		char err[512];
		sbx_stage1(err, sizeof err);
		fprintf(stderr, "thaw worker: %s\n", err);
		return 1;
	}
	if (sbx_started_sandboxed()) {
		char err[512];
		if (sbx_prepare(err, sizeof err) < 0) {
			fprintf(stderr, "thaw worker: %s\n", err);
			return 1;
		}
	}
	prctl(PR_SET_NAME, "thaw-spare"); /* until it is given work (ps, top) */
	signal(SIGPIPE, SIG_IGN);
	snprintf(prefix, sizeof prefix, "thaw worker %d", (int)getpid());
	log_set_prefix(prefix);

	char hello[64];
	int hn = snprintf(hello, sizeof hello, "{\"pid\": %d}", (int)getpid());
	if (send_frame(fd, THAW_F_HELLO, 0, hello, (size_t)hn) < 0)
		worker_exit(1);

	uint8_t type;
	size_t len;
#ifndef THAW_SANITIZE
	snap_restore_prepare(); /* while no request waits */
#endif
	uint8_t *init = recv_frame(fd, &type, &len);
	if (!init)
		worker_exit(0);       /* the host closed before sending work */
	snap_restore_asked(now_ns()); /* for the READY's "times" */
	if (type != THAW_F_INIT) {
		log_error("expected INIT from host, got %s", thaw_frame_type_name(type));
		worker_exit(1);
	}
	json_error_t jerr;
	struct wcfg c = {0};
	c.root = json_loadb((const char *)init, len, 0, &jerr);
	if (!c.root ||
	    json_unpack_ex(c.root, &jerr, 0, "{s:s, s:s, s:s, s:s, s?b, s?s, s?s, s?I, s?s}",
			   "name", &c.name, "project_dir", &c.project_dir, "main", &c.main,
			   "sdk_dir", &c.sdk_dir, "system_site_packages", &c.system_site_packages,
			   "mode", &c.mode, "snapshot", &c.snapshot, "max_snapshot_bytes",
			   &c.max_snapshot_bytes, "base", &c.base) < 0) {
		log_error("bad INIT from host: %s", jerr.text);
		worker_exit(1);
	}
	if (!c.mode)
		c.mode = "boot";
	json_t *sbx = json_object_get(c.root, "sandbox");
	json_t *tmp_limit = json_object_get(json_object_get(c.root, "limits"), "tmp_bytes");
	if (json_is_object(sbx) && json_is_integer(tmp_limit) && !json_object_get(sbx, "tmp_bytes"))
		json_object_set(sbx, "tmp_bytes", tmp_limit); /* the worker's tmp_mb */
	json_t *outbound = json_object_get(c.root, "outbound");
	if (json_is_object(sbx) && json_is_boolean(outbound) && !json_object_get(sbx, "outbound"))
		json_object_set(sbx, "outbound", outbound); /* [tool.thaw] outbound */
	if (sbx || sbx_started_sandboxed()) {
		/* Before anything of the worker's runs, restored or imported. */
		char err[512];
		struct sbx_paths sp = {.project_dir = c.project_dir, .sdk_dir = c.sdk_dir};
		if (sbx_enter(sbx, &sp, err, sizeof err) < 0) {
			log_error("%s", err);
			send_frame(fd, THAW_F_LOAD_ERROR, 0, err, strlen(err));
			worker_exit(1);
		}
	}
	snprintf(prefix, sizeof prefix, "%s[%d]", c.name, host_pid(init, len));
	log_set_prefix(prefix);
	char comm[16];
	snprintf(comm, sizeof comm, "thaw:%s", c.name);
	prctl(PR_SET_NAME, comm);

	/* The instance's rlimits, before any of the worker's code runs (a
	 * restore's own needs put two of them after it: limits.h). */
	int restoring = !strcmp(c.mode, "restore") && c.snapshot;
	/* A build on the base restores it first: a restore's rlimits too. */
	int restore_limits = restoring || (!strcmp(c.mode, "build") && c.snapshot && c.base);
	const json_t *limits = json_object_get(c.root, "limits");
	char lerr[256];
	if (worker_apply_rlimits(limits, restore_limits, lerr, sizeof lerr) < 0) {
		send_frame(fd, THAW_F_LOAD_ERROR, 0, lerr, strlen(lerr));
		worker_exit(1);
	}

	char refused[512] = "";
	if (restoring) {
#ifdef THAW_SANITIZE
		snprintf(refused, sizeof refused, "snapshots are off in sanitizer builds");
#else
		/* Returns only if the image is refused; this process is then
		 * untouched and boots instead. On success it resumes below, in
		 * the image's snap_checkpoint, as a restored process. */
		json_t *checked = json_object_get(c.root, "image_checked");
		snap_restore(c.snapshot, json_is_true(checked) ? SNAP_RESTORE_CHECKED : 0, init,
			     len, refused, sizeof refused);
#endif
		log_warn("snapshot %s refused: %s; booting instead", c.snapshot, refused);
		if (worker_apply_rlimits(limits, 0, lerr, sizeof lerr) < 0) {
			send_frame(fd, THAW_F_LOAD_ERROR, 0, lerr, strlen(lerr));
			worker_exit(1);
		}
	}
	int build = !strcmp(c.mode, "build") && c.snapshot;
	int base = !strcmp(c.mode, "base") && c.snapshot;
	if ((build || base) && sbx_started_sandboxed())
		builder_not_pid1();
	char base_refused[512] = "";
	if (build && c.base) {
#ifdef THAW_SANITIZE
		snprintf(base_refused, sizeof base_refused,
			 "snapshots are off in sanitizer builds");
#else
		/* Build on the base: restore it (nothing of its working set is
		 * populated, so the pages this build does not write stay the
		 * base's), and go on as its builder in become_builder below.
		 * Returns only if the base is refused: this process is then
		 * untouched and builds from a fresh interpreter instead. */
		if (worker_apply_rlimits(limits, 1, lerr, sizeof lerr) == 0)
			snap_restore(c.base, SNAP_RESTORE_NO_WS, init, len, base_refused,
				     sizeof base_refused);
		else
			snprintf(base_refused, sizeof base_refused, "%s", lerr);
#endif
		log_warn("base image %s refused: %s; building from a fresh interpreter", c.base,
			 base_refused);
		if (worker_apply_rlimits(limits, 0, lerr, sizeof lerr) < 0) {
			send_frame(fd, THAW_F_LOAD_ERROR, 0, lerr, strlen(lerr));
			worker_exit(1);
		}
	}

	if (python_init(&c) < 0) {
		const char *msg = "cannot initialise the Python runtime (see the log)";
		send_frame(fd, THAW_F_LOAD_ERROR, 0, msg, strlen(msg));
		worker_exit(1);
	}

	PyObject *rt = PyImport_ImportModule("_thaw_runtime");
	PyObject *ready = NULL;
	if (rt && base)
		ready = PyObject_CallMethod(rt, "prepare_base", NULL);
	else if (rt)
		ready = PyObject_CallMethod(rt, "load", "s#", (const char *)init, (Py_ssize_t)len);
	ready = ready_or_exit(fd, ready,
			      base ? "_thaw_runtime.prepare_base" : "_thaw_runtime.load");
	free(init);
	init = NULL;

	if (build || base) {
#ifdef THAW_SANITIZE
		const char *msg = "snapshots are off in sanitizer builds";
		send_frame(fd, THAW_F_LOAD_ERROR, 0, msg, strlen(msg));
		worker_exit(3);
#else
		/* Returns only in a process restored from the image. */
		checkpoint_or_exit(fd, c.snapshot, (uint64_t)c.max_snapshot_bytes,
				   base ? "the base image" : c.main, base_refused);
		/* SNAP_RESTORED: a new process, resumed from the image. Children it
		 * starts get address randomisation back. */
		personality(personality(0xffffffff) & ~(unsigned)ADDR_NO_RANDOMIZE);
		size_t clen = 0;
		const char *carried = snap_carried(&clen);
		snprintf(prefix, sizeof prefix, "%s[%d]", c.name,
			 carried ? host_pid(carried, clen) : (int)getpid());
		log_set_prefix(prefix);
		prctl(PR_SET_NAME, comm);
		/* A restored process is, to Python, the child of a fork of the
		 * builder: reinitialise the GIL, the import lock and threading's
		 * state, and run the os.register_at_fork(after_in_child=) hooks
		 * (random reseeds, logging's locks, libraries that cache the pid). */
		PyOS_AfterFork_Child();
		double restore_ms = snap_restore_ms();
		if (base) {
			/* Restored from the base: this process is a worker's snapshot
			 * builder now (its INIT came across the restore). */
			char *mine = NULL;
			if (carried) {
				mine = xcalloc(1, clen + 1);
				memcpy(mine, carried, clen);
			}
			snap_release();
			Py_DECREF(ready);
			ready = NULL;
			char name[64];
			become_builder(fd, rt, mine, name, sizeof name);
			/* Returns in a process restored from the worker's image. */
			personality(personality(0xffffffff) & ~(unsigned)ADDR_NO_RANDOMIZE);
			carried = snap_carried(&clen);
			snprintf(prefix, sizeof prefix, "%.40s[%d]", name,
				 carried ? host_pid(carried, clen) : (int)getpid());
			log_set_prefix(prefix);
			snprintf(comm, sizeof comm, "thaw:%.10s", name);
			prctl(PR_SET_NAME, comm);
			PyOS_AfterFork_Child();
			restore_ms = snap_restore_ms();
		}
		/* This instance's own limits (its INIT came across the restore),
		 * all of them now that the image is in place. */
		json_t *mine = carried ? json_loadb(carried, clen, 0, NULL) : NULL;
		char rerr[256];
		int limited =
			worker_apply_rlimits(json_object_get(mine, "limits"), 0, rerr, sizeof rerr);
		json_decref(mine);
		if (limited < 0) {
			send_frame(fd, THAW_F_LOAD_ERROR, 0, rerr, strlen(rerr));
			worker_exit(3);
		}
		PyObject *arg = carried ? PyUnicode_DecodeUTF8(carried, (Py_ssize_t)clen, "strict")
					: NULL;
		struct snap_restore_times times;
		int timed = snap_restore_times(&times) == 0;
		snap_release();
		Py_XDECREF(ready);
		ready = arg ? PyObject_CallMethod(rt, "after_restore", "O", arg) : NULL;
		Py_XDECREF(arg);
		ready = ready_or_exit(fd, ready, "_thaw_runtime.after_restore");
		/* Tell the host how long the restore took, and where the time went
		 * (CLOCK_MONOTONIC ns, comparable with the host's). */
		json_t *more = json_pack("{s:f}", "restore_ms", restore_ms);
		if (timed && more)
			json_object_set_new(
				more, "times",
				json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "asked",
					  (json_int_t)times.asked, "begun", (json_int_t)times.begun,
					  "core", (json_int_t)times.core, "mapped",
					  (json_int_t)times.mapped, "done", (json_int_t)times.done,
					  "pages", (json_int_t)times.populated_pages, "copied",
					  (json_int_t)times.copied_pages, "mappings",
					  (json_int_t)times.mappings, "ready",
					  (json_int_t)now_ns()));
		ready = ready_with(ready, more);
#endif
	} else if (refused[0]) {
		ready = ready_with(ready, json_pack("{s:s}", "restore_refused", refused));
	}

	Py_ssize_t rlen;
	const char *rs = PyUnicode_AsUTF8AndSize(ready, &rlen);
	if (!rs || send_frame(fd, THAW_F_READY, 0, rs, (size_t)rlen) < 0)
		worker_exit(1);
	Py_DECREF(ready);

	PyObject *r = PyObject_CallMethod(rt, "serve", "i", fd);
	if (!r) {
		char *text = exception_text();
		log_error("runtime failed:\n%s", text);
		free(text);
		worker_exit(1);
	}
	Py_DECREF(r);
	worker_exit(0);
}
