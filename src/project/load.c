/*
 * Running the config reader child (`thaw config`, see project.h) and waiting
 * for its answer: for commands that may block. A host's loop starts the same
 * child through child.c instead and parses the answer with project_parse.
 */
#include "project/project.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"

void project_reader_argv(const char *dir, char *argv[4])
{
	argv[0] = (char *)self_exe();
	argv[1] = "config";
	argv[2] = (char *)dir;
	argv[3] = NULL;
}

void project_reader_argv_env(const char *dir, const char *env, char *argv[6])
{
	project_reader_argv(dir, argv);
	argv[4] = argv[5] = NULL;
	if (env) {
		argv[3] = "--env";
		argv[4] = (char *)env;
	}
}

/* Run argv, collect its stdout (at most max bytes) into out; 0, or -1 with err. */
static int run_reader(char *const argv[], struct buf *out, size_t max, char *err, size_t errlen)
{
	pid_t pid;
	int fd;
	if (spawn_piped(argv, &pid, &fd, err, errlen) < 0)
		return -1;
	int too_big = 0;
	for (;;) {
		uint8_t *p = buf_reserve(out, 65536);
		ssize_t n = read(fd, p, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (buf_used(out) + (size_t)n > max) {
			too_big = 1;
			break;
		}
		out->len += (size_t)n;
	}
	close(fd);
	if (too_big)
		kill(pid, SIGKILL);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (too_big) {
		snprintf(err, errlen, "the configuration reader's answer is over %zu bytes", max);
		return -1;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "the configuration reader was killed by signal %d",
			 WTERMSIG(status));
		return -1;
	}
	return 0;
}

struct project *project_load(const char *dir_in, char *err, size_t errlen)
{
	return project_load_env(dir_in, NULL, err, errlen);
}

struct project *project_load_env(const char *dir_in, const char *env, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	if (!realpath(dir_in, dir)) {
		snprintf(err, errlen, "%s: %s", dir_in, strerror(errno));
		return NULL;
	}
	/* The reader names the directory as the user did; one that looks like
	 * an option is passed as a path. */
	char *arg = dir_in[0] == '-' ? xasprintf("./%s", dir_in) : xstrdup(dir_in);
	char *argv[6];
	project_reader_argv_env(arg, env, argv);
	struct buf out = {0};
	struct project *p = NULL;
	if (run_reader(argv, &out, PROJECT_MAX_JSON_BYTES, err, errlen) == 0)
		p = project_parse((const char *)buf_head(&out), buf_used(&out), dir, err, errlen);
	buf_free(&out);
	free(arg);
	return p;
}

json_t *project_load_toml(const char *path, char *err, size_t errlen)
{
	char *argv[] = {(char *)self_exe(), "config", "--toml", (char *)path, NULL}; /* path: absolute */
	struct buf out = {0};
	json_t *value = NULL;
	if (run_reader(argv, &out, 4 * PROJECT_MAX_TOML_BYTES, err, errlen) == 0) {
		json_error_t je;
		json_t *j = json_loadb((const char *)buf_head(&out), buf_used(&out), 0, &je);
		int ok = 0;
		const char *error = NULL;
		json_t *v = NULL;
		if (!j || json_unpack(j, "{s:b, s?s, s?o}", "ok", &ok, "error", &error, "value", &v) < 0)
			snprintf(err, errlen, "the configuration reader gave no valid answer");
		else if (!ok || !v)
			snprintf(err, errlen, "%s", error ? error : "invalid TOML");
		else
			value = json_incref(v);
		json_decref(j);
	}
	buf_free(&out);
	return value;
}
