/*
 * libFuzzer target for the Durable Object storage engine (src/state/dobj.c):
 * hostile storage calls, as a worker's ctx.storage sends them, against one
 * object file kept across inputs (so keys from earlier inputs are there to
 * list and delete).
 *
 * Input: one byte choosing the method, then the arguments as JSON text.
 * Whatever the bytes: no crash, every answer is a JSON object that
 * serialises, every failure has a message, and no file appears beside the
 * object's own three (sql.exec cannot ATTACH or VACUUM INTO).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/dobj.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static const char *const methods[] = {"get",   "put", "delete", "list",
				      "write", "sql", "size",   "delete_all"};

static char dir[64];
static char path[128];
static struct dobj *obj;

static int only_object_files(void)
{
	DIR *dh = opendir(dir);
	if (!dh)
		return 0;
	int ok = 1;
	struct dirent *e;
	while ((e = readdir(dh)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "o") &&
		    strcmp(e->d_name, "o-wal") && strcmp(e->d_name, "o-shm"))
			ok = 0;
	closedir(dh);
	return ok;
}

static void cleanup(void)
{
	dobj_close(obj);
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char p[160];
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/thaw-fuzz-dobj-XXXXXX");
		CHECK(mkdtemp(dir) != NULL);
		snprintf(path, sizeof path, "%s/o", dir);
		char err[256];
		obj = dobj_open(path, err, sizeof err);
		CHECK(obj != NULL);
		atexit(cleanup);
	}
	if (size < 1)
		return 0;
	const char *method = methods[data[0] % (sizeof methods / sizeof *methods)];
	json_t *args = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	char err[1024] = "";
	json_t *r = dobj_call(obj, method, args, err, sizeof err);
	if (r) {
		CHECK(json_is_object(r));
		char *s = json_dumps(r, JSON_COMPACT);
		CHECK(s != NULL);
		free(s);
		json_decref(r);
	} else {
		CHECK(err[0] != 0);
	}
	json_decref(args);
	CHECK(only_object_files());
	return 0;
}
