/*
 * libFuzzer target for the project configuration (src/project/), the two
 * places outside bytes enter it:
 *   - first byte even: the rest is the config reader's answer as the host
 *     parses it (project_parse): a child that read hostile files may print
 *     anything;
 *   - first byte odd: the rest is a wrangler.jsonc, read by project_read in
 *     a scratch project directory (JSONC needs no TOML parser; one that is
 *     asked for anyway fails the run).
 * Invariants: a project that comes out obeys the name and entry-module rules
 * and survives project_to_json -> project_from_json unchanged; a refusal
 * leaves a terminated message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static json_t *no_toml(const char *text, size_t len, char *err, size_t errlen)
{
	__builtin_trap(); /* only a wrangler.jsonc is there */
}

static char dir[64];

static void cleanup(void)
{
	remove_tree(dir);
}

static void check(struct project *p, const char *err, size_t errlen)
{
	if (!p) {
		CHECK(memchr(err, '\0', errlen) != NULL);
		return;
	}
	CHECK(project_name_valid(p->name));
	CHECK(project_main_valid(p->main));
	CHECK(json_is_object(p->vars) && json_is_array(p->dependencies));
	json_t *j = project_to_json(p);
	char e2[256];
	struct project *q = project_from_json(j, p->dir, e2, sizeof e2);
	CHECK(q != NULL);
	json_t *k = project_to_json(q);
	CHECK(json_equal(j, k));
	json_decref(j);
	json_decref(k);
	project_free(q);
	project_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	memset(err, 'x', sizeof err);
	if (size == 0)
		return 0;
	if (!(data[0] & 1)) {
		check(project_parse((const char *)data + 1, size - 1, "/p", err, sizeof err), err,
		      sizeof err);
		return 0;
	}
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/thaw-fuzz-project-XXXXXX");
		CHECK(mkdtemp(dir) != NULL);
		atexit(cleanup);
		char path[128];
		snprintf(path, sizeof path, "%s/src", dir);
		CHECK(mkdir(path, 0755) == 0);
		snprintf(path, sizeof path, "%s/src/entry.py", dir);
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		fclose(f);
	}
	char path[128];
	snprintf(path, sizeof path, "%s/wrangler.jsonc", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
	fclose(f);
	check(project_read(dir, no_toml, NULL, err, sizeof err), err, sizeof err);
	return 0;
}
