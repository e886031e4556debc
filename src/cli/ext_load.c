/*
 * Loading thaw-ext.so (src/ext/ext.h) into the executable: for its commands
 * (main.c) and, in `thaw dev`, for the storage bindings it serves (KV, D1,
 * ...: they need SQLite, which only the module links). An instance never
 * loads it.
 */
#include "cli/cli.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "ext/ext.h"

void *thaw_ext_open(char *err, size_t errlen)
{
	static void *handle;
	if (handle)
		return handle;
	const char *path = getenv("THAW_EXT");
	if (!path || !*path)
		path = THAW_EXT_PATH;
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		/* Installed elsewhere: the module sits beside the executable. */
		char near[4096];
		const char *slash = strrchr(self_exe(), '/');
		snprintf(near, sizeof near, "%.*s/thaw-ext.so", slash ? (int)(slash - self_exe()) : 1,
			 slash ? self_exe() : ".");
		h = dlopen(near, RTLD_NOW | RTLD_LOCAL);
	}
	if (!h) {
		snprintf(err, errlen, "%s", dlerror());
		return NULL;
	}
	handle = h;
	return h;
}

int thaw_ext_bindings(char *err, size_t errlen)
{
	void *h = thaw_ext_open(err, errlen);
	if (!h)
		return -1;
	void (*init)(void) = (void (*)(void))dlsym(h, THAW_EXT_BINDINGS_SYMBOL);
	if (!init) {
		snprintf(err, errlen, "thaw-ext.so has no %s", THAW_EXT_BINDINGS_SYMBOL);
		return -1;
	}
	init();
	return 0;
}
