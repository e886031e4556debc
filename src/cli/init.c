/* `thaw init [DIR] [--template hello|fastapi]`: write a working project. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "project/project.h"
#include "common/util.h"

static const char init_usage[] =
	"usage: thaw init [DIR] [--template hello|fastapi] [--name NAME]\n"
	"\n"
	"Create a worker project in DIR (default: the current directory):\n"
	"  pyproject.toml   [project] metadata and [tool.thaw]: name, main, vars\n"
	"  src/entry.py     the worker: class Default(WorkerEntrypoint) with fetch()\n"
	"  .gitignore\n"
	"\n"
	"Options:\n"
	"  --template T     hello (default): answers \"Hello world!\"\n"
	"                   fastapi: a FastAPI app served through asgi.fetch\n"
	"  --name NAME      the worker's name (default: from DIR)\n"
	"  -h, --help       this help\n"
	"\n"
	"Refuses to overwrite an existing pyproject.toml or src/entry.py.\n";

static const char pyproject_fmt[] =
	"[project]\n"
	"name = \"%s\"\n"
	"version = \"0.1.0\"\n"
	"requires-python = \">=3.11\"\n"
	"dependencies = [%s]\n"
	"\n"
	"[tool.thaw]\n"
	"name = \"%s\"\n"
	"main = \"src/entry.py\"\n"
	"\n"
	"[tool.thaw.vars]\n"
	"%s";

static const char hello_entry[] =
	"from workers import Response, WorkerEntrypoint\n"
	"\n"
	"\n"
	"class Default(WorkerEntrypoint):\n"
	"    async def fetch(self, request):\n"
	"        return Response(\"Hello world!\")\n";

static const char fastapi_entry[] =
	"from fastapi import FastAPI, Request\n"
	"from workers import WorkerEntrypoint\n"
	"\n"
	"import asgi\n"
	"\n"
	"app = FastAPI()\n"
	"\n"
	"\n"
	"@app.get(\"/\")\n"
	"async def root():\n"
	"    return {\"message\": \"Hello world!\"}\n"
	"\n"
	"\n"
	"@app.get(\"/items/{item_id}\")\n"
	"async def read_item(item_id: int, q: str | None = None):\n"
	"    return {\"item_id\": item_id, \"q\": q}\n"
	"\n"
	"\n"
	"@app.get(\"/env\")\n"
	"async def env(req: Request):\n"
	"    return {\"greeting\": req.scope[\"env\"].GREETING}\n"
	"\n"
	"\n"
	"class Default(WorkerEntrypoint):\n"
	"    async def fetch(self, request):\n"
	"        return await asgi.fetch(app, request.js_object, self.env)\n";

static const char gitignore[] =
	"python_modules/\n.thaw/\n__pycache__/\n*.pyc\n.venv/\n.dev.vars*\n.env\n.env.*\n";

static int write_new(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "thaw init: %s: %s\n", path,
			errno == EEXIST ? "already exists; not overwriting" : strerror(errno));
		return -1;
	}
	int r = write_all(fd, text, strlen(text));
	if (close(fd) < 0 || r < 0) {
		fprintf(stderr, "thaw init: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{"template", required_argument, NULL, 't'},
		{"name", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *tmpl = "hello", *name = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "t:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			tmpl = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			fputs(init_usage, stdout);
			return 0;
		default:
			fputs(init_usage, stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fputs(init_usage, stderr);
		return 2;
	}
	const char *dir = optind < argc ? argv[optind] : ".";
	int fastapi = !strcmp(tmpl, "fastapi");
	if (!fastapi && strcmp(tmpl, "hello") != 0) {
		fprintf(stderr, "thaw init: unknown template '%s' (choose hello or fastapi)\n", tmpl);
		return 2;
	}
	if (mkdir_p(dir, 0755) < 0) {
		fprintf(stderr, "thaw init: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char abs[PATH_MAX];
	if (!realpath(dir, abs)) {
		fprintf(stderr, "thaw init: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char derived[64];
	if (!name) {
		const char *base = strrchr(abs, '/');
		base = base && base[1] ? base + 1 : "worker";
		size_t n = 0;
		for (const char *p = base; *p && n < 63; p++) {
			char ch = *p;
			if (ch >= 'A' && ch <= 'Z')
				ch = (char)(ch - 'A' + 'a');
			derived[n++] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '-';
		}
		while (n && derived[n - 1] == '-')
			n--;
		derived[n] = 0;
		name = n && derived[0] != '-' ? derived : "worker";
	}
	if (!project_name_valid(name)) {
		fprintf(stderr,
			"thaw init: '%s' is not a valid worker name: use 1-63 lowercase letters, "
			"digits, '-' or '_' (or pass --name)\n",
			name);
		return 2;
	}
	char *pyproject = xasprintf(pyproject_fmt, name, fastapi ? "\"fastapi\"" : "", name,
				    fastapi ? "GREETING = \"Hello from thaw\"\n"
					    : "# GREETING = \"hello\"\n");
	char *src = xasprintf("%s/src", abs);
	int rc = 1;
	if (mkdir_p(src, 0755) < 0) {
		fprintf(stderr, "thaw init: cannot create %s: %s\n", src, strerror(errno));
		goto out;
	}
	/* Check before writing anything so a refusal leaves no half project. */
	struct stat st;
	char *pp = xasprintf("%s/pyproject.toml", abs), *ep = xasprintf("%s/src/entry.py", abs);
	int exists = stat(pp, &st) == 0 ? 1 : stat(ep, &st) == 0 ? 2 : 0;
	if (exists)
		fprintf(stderr, "thaw init: %s already exists; not overwriting\n",
			exists == 1 ? pp : ep);
	free(pp);
	free(ep);
	if (exists)
		goto out;
	if (write_new(abs, "pyproject.toml", pyproject) < 0 ||
	    write_new(abs, "src/entry.py", fastapi ? fastapi_entry : hello_entry) < 0)
		goto out;
	if (stat(abs, &st) == 0) {
		char *gi = xasprintf("%s/.gitignore", abs);
		if (stat(gi, &st) != 0)
			write_new(abs, ".gitignore", gitignore);
		free(gi);
	}
	printf("Created worker '%s' in %s (template %s)\n", name, abs, tmpl);
	printf("Next: thaw dev %s%s\n", dir,
	       fastapi ? "   (fastapi must be importable: run `thaw install`, or add "
			 "--system-site-packages to use the system's)"
		       : "");
	rc = 0;
out:
	free(pyproject);
	free(src);
	return rc;
}
