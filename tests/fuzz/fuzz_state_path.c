/*
 * libFuzzer target for the control API's state paths and query integers
 * (src/ext/state_path.c), which come from any client holding the token. The
 * input, up to its first NUL, is the path; the same bytes are a query
 * integer. Whatever they are, a parse returns 0 or -1, and a parsed path's
 * store is 1..255 bytes of [A-Za-z0-9_.-] (not "." or ".."), its key inside
 * the input; an integer is in its range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ext/state_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *path = malloc(size + 1);
	memcpy(path, data, size);
	path[size] = 0;
	struct state_path sp;
	int rc = state_path_parse(path, &sp);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		size_t n = strlen(sp.store);
		CHECK(n >= 1 && n <= STATE_STORE_MAX);
		CHECK(strcmp(sp.store, ".") && strcmp(sp.store, ".."));
		for (size_t i = 0; i < n; i++)
			CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678"
				     "9_.-",
				     sp.store[i]));
		if (sp.op == STATE_KV_VALUE) {
			CHECK(sp.key >= path && sp.key + sp.key_len == path + strlen(path));
		}
	}
	int64_t v = 0;
	if (state_query_int(path, -1000, 1000, &v) == 0)
		CHECK(v >= -1000 && v <= 1000);
	free(path);
	return 0;
}
