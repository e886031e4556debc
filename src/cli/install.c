/*
 * `thaw install`: a project's dependencies into DIR/python_modules (see
 * install.h).
 *
 * What is installed: [project].dependencies, plus the pins of the lockfile
 * when there is one (uv.lock, else pylock.toml; lockfile.c turns it into
 * requirement strings), so a lock makes the install reproducible and a
 * dependency added to pyproject.toml since the last lock still comes in.
 *
 * How: `uv pip install --target TMP --python PY` when uv is on PATH, else
 * `PY -I -m pip install --target TMP`, where PY is the interpreter thaw
 * embeds (so wheels match its version and platform). --target is outside
 * PEP 668's reach (pip and uv both check EXTERNALLY-MANAGED only when
 * installing into the interpreter's own environment), so no override is
 * passed. The installer is started with posix_spawn, no shell; every
 * requirement is one argv entry and none may start with '-'. stdin is
 * /dev/null, so it never waits for an answer; its stdout and stderr are ours,
 * so its progress and the resolver's messages reach the user as they come.
 *
 * Invariants: python_modules/ is only ever replaced whole, by a rename, after
 * the installer succeeded; TMP is DIR/.python_modules.tmp (hidden, so `thaw
 * dev` does not watch it). An flock on the project directory keeps two
 * installs of one project apart. Blocks until the installer exits.
 */
#include "cli/install.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/lockfile.h"
#include "common/util.h"

#ifndef THAW_PYTHON_EXE
#define THAW_PYTHON_EXE "/usr/bin/python3"
#endif

#define LOCKFILE_MAX_BYTES (16u << 20)
#define TMP_NAME ".python_modules.tmp"

extern char **environ;

static int value_ok(const char *name, const char *value)
{
	if (!value || !*value || value[0] == '-' || strlen(value) > 4096) {
		fprintf(stderr, "thaw install: --%s expects a URL or path, not '%s'\n", name,
			value ? value : "");
		return 0;
	}
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			fprintf(stderr, "thaw install: --%s: control characters are not allowed\n",
				name);
			return 0;
		}
	return 1;
}

int thaw_install_option(struct thaw_install_options *o, const char *name, const char *value)
{
	if (!value_ok(name, value))
		return -1;
	if (!strcmp(name, "index-url")) {
		o->index_url = value;
		return 0;
	}
	const char **list;
	int *n;
	if (!strcmp(name, "extra-index-url")) {
		list = o->extra_index_urls;
		n = &o->n_extra_index_urls;
	} else if (!strcmp(name, "find-links")) {
		list = o->find_links;
		n = &o->n_find_links;
	} else {
		fprintf(stderr, "thaw install: unknown option --%s\n", name);
		return -1;
	}
	if (*n >= INSTALL_MAX_URLS) {
		fprintf(stderr, "thaw install: at most %d --%s options\n", INSTALL_MAX_URLS, name);
		return -1;
	}
	list[(*n)++] = value;
	return 0;
}

/* dir/name's mtime in *out: 0, or -1 when it cannot be read (missing). */
static int mtime_of(const char *dir, const char *name, struct timespec *out)
{
	char path[PATH_MAX];
	struct stat st;
	if (path_join(path, sizeof path, dir, name) < 0 || stat(path, &st) < 0)
		return -1;
	*out = st.st_mtim;
	return 0;
}

static int older(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int thaw_install_needed(const struct project *c)
{
	if (json_array_size(c->dependencies) == 0)
		return 0;
	struct timespec mods, t;
	if (mtime_of(c->dir, "python_modules", &mods) < 0)
		return 1;
	static const char *const inputs[] = {"pyproject.toml", "uv.lock", "pylock.toml"};
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++)
		if (mtime_of(c->dir, inputs[i], &t) == 0 && older(&mods, &t))
			return 1;
	return 0;
}

/* --- what to install --- */

/* Add the pins of the project's lockfile, if it has one. 0 or -1 (printed). */
static int add_lock_pins(const struct project *c, const char *project_name,
			 struct thaw_reqs *reqs, FILE *out)
{
	static const struct {
		const char *file;
		enum thaw_lock_kind kind;
	} locks[] = {{"uv.lock", THAW_LOCK_UV}, {"pylock.toml", THAW_LOCK_PYLOCK}};
	char path[PATH_MAX];
	struct stat st;
	int which = -1;
	for (int i = 0; i < 2; i++) {
		if (path_join(path, sizeof path, c->dir, locks[i].file) < 0 || stat(path, &st) < 0)
			continue;
		if (which >= 0)
			fprintf(stderr, "thaw install: note: %s is ignored: %s is read instead\n",
				locks[i].file, locks[which].file);
		else
			which = i;
	}
	if (which < 0)
		return 0;
	path_join(path, sizeof path, c->dir, locks[which].file);
	size_t len;
	char *text = read_file(path, LOCKFILE_MAX_BYTES, &len);
	if (!text) {
		fprintf(stderr, "thaw install: %s: %s\n", locks[which].file,
			errno == EFBIG ? "larger than 16 MiB" : strerror(errno));
		return -1;
	}
	char err[512];
	free(text);
	json_t *lock = project_load_toml(path, err, sizeof err);
	size_t before = reqs->n;
	int rc = lock ? thaw_lock_requirements(lock, locks[which].kind, project_name, c->dir, reqs,
					       err, sizeof err)
		      : -1;
	json_decref(lock);
	if (rc < 0) {
		fprintf(stderr, "thaw install: %s: %s\n", locks[which].file, err);
		return -1;
	}
	fprintf(out, "thaw install: %s pins %zu package%s\n", locks[which].file, reqs->n - before,
		reqs->n - before == 1 ? "" : "s");
	return 0;
}

/* The project's name as [project].name says, for leaving it out of a lock. */
static char *project_name(const struct project *c)
{
	char path[PATH_MAX];
	size_t len;
	if (path_join(path, sizeof path, c->dir, "pyproject.toml") < 0)
		return NULL;
	char *text = read_file(path, PROJECT_MAX_FILE_BYTES, &len);
	if (!text)
		return NULL;
	free(text);
	char err[256];
	json_t *p = project_load_toml(path, err, sizeof err);
	const char *n = json_string_value(json_object_get(json_object_get(p, "project"), "name"));
	char *out = n ? xstrdup(n) : NULL;
	json_decref(p);
	return out;
}

/* Cloudflare's packages of the Python Workers SDK: thaw provides the modules
 * they hold (workers, js, pyodide) itself, and theirs would need Cloudflare's
 * runtime (`import js`). Installing them is skipped; should one arrive as
 * another package's dependency, the worker's sys.path puts thaw's SDK before
 * python_modules/ anyway. */
static const char *const SDK_DISTS[] = {"workers-runtime-sdk", "workers-py", "pyodide-py"};

/* The SDK distribution requirement req names, or NULL. */
static const char *sdk_dist(const char *req)
{
	char name[128];
	size_t k = 0;
	while (req[k] && k + 1 < sizeof name &&
	       (isalnum((unsigned char)req[k]) || req[k] == '-' || req[k] == '_' || req[k] == '.'))
		name[k] = req[k], k++;
	name[k] = 0;
	for (size_t i = 0; i < sizeof SDK_DISTS / sizeof SDK_DISTS[0]; i++)
		if (thaw_dist_name_equal(name, SDK_DISTS[i]))
			return SDK_DISTS[i];
	return NULL;
}

/* Leave the SDK's distributions out of reqs, saying so once each. */
static void drop_sdk_dists(struct thaw_reqs *reqs, FILE *out)
{
	size_t kept = 0;
	int said[sizeof SDK_DISTS / sizeof SDK_DISTS[0]] = {0};
	for (size_t i = 0; i < reqs->n; i++) {
		const char *dist = sdk_dist(reqs->v[i]);
		if (!dist) {
			reqs->v[kept++] = reqs->v[i];
			continue;
		}
		size_t which = 0;
		while (strcmp(SDK_DISTS[which], dist) != 0)
			which++;
		if (!said[which]++)
			fprintf(out,
				"thaw install: skipping %s: thaw provides the workers SDK itself (this "
				"package is Cloudflare's, for its runtime)\n",
				dist);
		free(reqs->v[i]);
	}
	reqs->n = kept;
}

static int collect(const struct project *c, struct thaw_reqs *reqs, FILE *out)
{
	size_t i;
	json_t *d;
	json_array_foreach(c->dependencies, i, d) {
		const char *s = json_string_value(d);
		if (!s || !thaw_requirement_valid(s)) {
			fprintf(stderr,
				"thaw install: pyproject.toml: [project].dependencies entry %zu "
				"is not an acceptable requirement (a string, not starting with "
				"'-', no control characters, at most %d bytes)\n",
				i + 1, REQUIREMENT_MAX_BYTES);
			return -1;
		}
		thaw_reqs_add(reqs, s);
	}
	char *name = project_name(c);
	int rc = add_lock_pins(c, name, reqs, out);
	free(name);
	if (rc == 0)
		drop_sdk_dists(reqs, out);
	return rc;
}

/* --- running the installer --- */

/* The uv on PATH, as a new absolute or PATH-relative path, or NULL. */
static char *find_uv(void)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		return NULL;
	char *copy = xstrdup(path);
	char *result = NULL, *save = NULL;
	for (char *d = strtok_r(copy, ":", &save); d && !result; d = strtok_r(NULL, ":", &save)) {
		char cand[PATH_MAX];
		struct stat st;
		if (!*d || path_join(cand, sizeof cand, d, "uv") < 0)
			continue;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			result = xstrdup(cand);
	}
	free(copy);
	return result;
}

struct argv {
	const char **v;
	size_t n, cap;
};

static void arg(struct argv *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = xrealloc(a->v, a->cap * sizeof *a->v);
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
}

static void print_command(FILE *out, const struct argv *a)
{
	fputs("$", out);
	for (size_t i = 0; i < a->n; i++) {
		const char *s = a->v[i];
		if (strpbrk(s, " \t'\"$;&|<>()*?[]!`\\") || !*s) {
			fputs(" '", out);
			for (; *s; s++) {
				if (*s == '\'')
					fputs("'\\''", out);
				else
					fputc(*s, out);
			}
			fputs("'", out);
		} else {
			fprintf(out, " %s", s);
		}
	}
	fputs("\n", out);
}

/* Run argv; its exit status, or -1 (printed) when it could not start. */
static int run(const struct argv *a, int stdout_to_stderr)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dflt;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (stdout_to_stderr)
		posix_spawn_file_actions_adddup2(&fa, 2, 1);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGCHLD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dflt);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	fflush(stdout);
	fflush(stderr);
	/* Ctrl-C reaches the installer too (one process group): let it stop
	 * it, and us clean up after it. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, saved_int;
	sigaction(SIGINT, &ign, &saved_int);
	pid_t pid;
	int e = posix_spawn(&pid, a->v[0], &fa, &at, (char *const *)a->v, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	int status = 0, rc = 0;
	if (e) {
		fprintf(stderr, "thaw install: cannot run %s: %s\n", a->v[0], strerror(e));
		rc = -1;
	}
	while (!e && waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "thaw install: waitpid: %s\n", strerror(errno));
			rc = -1;
			break;
		}
	}
	sigaction(SIGINT, &saved_int, NULL);
	if (rc < 0)
		return rc;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

/* Remove a directory we made (or the one it replaced), saying so when it stays. */
static void discard_dir(const char *path)
{
	if (remove_tree(path) < 0)
		fprintf(stderr, "thaw install: cannot remove %s: %s\n", path, strerror(errno));
}

/* Put the finished tmp in place of final; the old one, if any, is removed. */
static int swap_in(const char *tmp, const char *final)
{
	utimensat(AT_FDCWD, tmp, NULL, 0); /* "newer than pyproject.toml" from now on */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
		discard_dir(tmp); /* now the old one */
		return 0;
	}
	if (errno == ENOENT) {
		if (rename(tmp, final) == 0)
			return 0;
	} else if (errno == EINVAL || errno == ENOSYS) {
		/* No atomic exchange on this filesystem: two renames. */
		char *old = xasprintf("%s.old", tmp);
		discard_dir(old);
		int rc = 0;
		if (rename(final, old) < 0) {
			rc = -errno;
		} else if (rename(tmp, final) < 0) {
			rc = -errno;
			rename(old, final); /* put the old one back */
		} else {
			discard_dir(old);
		}
		free(old);
		return rc;
	}
	return -errno;
}

/* "name version, ..." of what tmp holds, from its *.dist-info directories. */
static void print_installed(FILE *out, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	int n = 0;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (l <= 10 || strcmp(e->d_name + l - 10, ".dist-info") != 0)
			continue;
		const char *dash = memchr(e->d_name, '-', l - 10);
		fprintf(out, "%s%.*s", n++ ? ", " : "  installed: ",
			(int)(dash ? (size_t)(dash - e->d_name) : l - 10), e->d_name);
		if (dash)
			fprintf(out, " %.*s", (int)(e->d_name + l - 10 - dash - 1), dash + 1);
	}
	closedir(d);
	if (n)
		fputs("\n", out);
}

int thaw_install_run(const struct project *c, const struct thaw_install_options *o)
{
	FILE *out = o->stdout_to_stderr ? stderr : stdout;
	struct thaw_reqs reqs = {0};
	struct argv a = {0};
	char *uv = NULL, *tmp = NULL, *final = NULL;
	int rc = -1, dirfd = -1;

	if (collect(c, &reqs, out) < 0)
		goto done;
	tmp = xasprintf("%s/" TMP_NAME, c->dir);
	final = xasprintf("%s/python_modules", c->dir);

	dirfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -1;
		fprintf(stderr, "thaw install: %s: %s\n", c->dir, strerror(errno));
		goto done;
	}
	if (flock(dirfd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "thaw install: another install of %s is running; waiting for it\n",
			c->dir);
		if (flock(dirfd, LOCK_EX) < 0) {
			rc = -1;
			fprintf(stderr, "thaw install: flock: %s\n", strerror(errno));
			goto done;
		}
	}
	discard_dir(tmp); /* left by an install that was killed */
	if (mkdir(tmp, 0755) < 0) {
		rc = -1;
		fprintf(stderr, "thaw install: cannot create %s: %s\n", tmp, strerror(errno));
		goto done;
	}

	if (reqs.n == 0) {
		fprintf(out, "thaw install: %s has no dependencies: python_modules/ is empty\n",
			c->sources);
	} else {
		uv = find_uv();
		if (uv) {
			arg(&a, uv);
			arg(&a, "pip");
			arg(&a, "install");
			arg(&a, "--target");
			arg(&a, tmp);
			arg(&a, "--python");
			arg(&a, THAW_PYTHON_EXE);
		} else {
			arg(&a, THAW_PYTHON_EXE);
			arg(&a, "-I"); /* no PYTHONPATH, no user site, not the cwd */
			arg(&a, "-m");
			arg(&a, "pip");
			arg(&a, "install");
			arg(&a, "--target");
			arg(&a, tmp);
			arg(&a, "--no-input");
			arg(&a, "--disable-pip-version-check");
			if (geteuid() == 0) /* its warning is about the system's site-packages */
				arg(&a, "--root-user-action=ignore");
		}
		if (o->quiet)
			arg(&a, "-q");
		if (o->no_index)
			arg(&a, "--no-index");
		if (o->index_url) {
			arg(&a, "--index-url");
			arg(&a, o->index_url);
		}
		for (int i = 0; i < o->n_extra_index_urls; i++) {
			arg(&a, "--extra-index-url");
			arg(&a, o->extra_index_urls[i]);
		}
		for (int i = 0; i < o->n_find_links; i++) {
			arg(&a, "--find-links");
			arg(&a, o->find_links[i]);
		}
		for (size_t i = 0; i < reqs.n; i++)
			arg(&a, reqs.v[i]);

		fprintf(out, "thaw install: installing %zu requirement%s into %s with %s\n", reqs.n,
			reqs.n == 1 ? "" : "s", final, uv ? "uv" : "pip");
		print_command(out, &a);
		int status = run(&a, o->stdout_to_stderr);
		if (status != 0) {
			if (status > 0)
				fprintf(stderr,
					"thaw install: the installer failed (exit status %d); "
					"python_modules/ is unchanged\n",
					status);
			discard_dir(tmp);
			rc = -1;
			goto done;
		}
	}
	if ((rc = swap_in(tmp, final)) < 0) {
		fprintf(stderr, "thaw install: cannot move %s to %s: %s\n", tmp, final,
			strerror(-rc));
		discard_dir(tmp);
		rc = -1;
		goto done;
	}
	print_installed(out, final);
	fprintf(out, "thaw install: python_modules/ is ready\n");
	rc = 0;
done:
	if (dirfd >= 0)
		close(dirfd); /* drops the lock */
	free(a.v);
	free(uv);
	free(tmp);
	free(final);
	thaw_reqs_dispose(&reqs);
	return rc;
}

/* --- the command --- */

static const char install_usage[] =
	"usage: thaw install [DIR] [options]\n"
	"\n"
	"Install the worker project's dependencies ([project].dependencies in pyproject.toml,\n"
	"pinned by uv.lock or pylock.toml when there is one) into DIR/python_modules, for the\n"
	"Python thaw runs workers with (" THAW_PYTHON_EXE "). Uses `uv pip install --target`\n"
	"when uv is on PATH, else `python3 -m pip install --target`. The new python_modules/\n"
	"replaces the old one only when the install succeeds.\n"
	"\n"
	"Options:\n"
	"  --index-url URL          the package index to use instead of PyPI\n"
	"  --extra-index-url URL    another index to look in (repeatable)\n"
	"  --find-links PATH|URL    a directory or page of wheels to look in (repeatable)\n"
	"  --no-index               use no index: only --find-links (offline installs)\n"
	"  -q, --quiet              less output from the installer\n"
	"  -h, --help               this help\n"
	"\n"
	"pip and uv also read their own configuration (PIP_INDEX_URL, UV_INDEX_URL, pip.conf,\n"
	"uv.toml); `thaw dev` installs that way when python_modules/ is missing or older than\n"
	"pyproject.toml.\n";

int cmd_install(int argc, char **argv)
{
	static const struct option opts[] = {
		{"index-url", required_argument, NULL, 'i'},
		{"extra-index-url", required_argument, NULL, 'e'},
		{"find-links", required_argument, NULL, 'f'},
		{"no-index", no_argument, NULL, 'n'},
		{"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct thaw_install_options o = {0};
	int ch, idx;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "qh", opts, &idx)) != -1) {
		switch (ch) {
		case 'i':
		case 'e':
		case 'f':
			if (thaw_install_option(&o, opts[idx].name, optarg) < 0)
				return 2;
			break;
		case 'n':
			o.no_index = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'h':
			fputs(install_usage, stdout);
			return 0;
		default:
			fputs(install_usage, stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fputs(install_usage, stderr);
		return 2;
	}
	const char *dir = optind < argc ? argv[optind] : ".";
	char err[1024];
	struct project *c = project_load(dir, err, sizeof err);
	if (!c) {
		fprintf(stderr, "thaw install: %s\n", err);
		return 1;
	}
	int rc = thaw_install_run(c, &o);
	project_free(c);
	return rc < 0 ? 1 : 0;
}
