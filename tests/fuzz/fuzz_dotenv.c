/*
 * libFuzzer target for dotenv files (src/project/dotenv.c): .dev.vars and
 * .env. Whatever the bytes, the parser returns an object of strings with
 * valid names, or NULL with a message that names a line.
 */
#include <stdint.h>
#include <string.h>

#include "project/dotenv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256] = "";
	json_t *j = dotenv_parse((const char *)data, size, err, sizeof err);
	if (!j) {
		CHECK(err[0] != 0);
		return 0;
	}
	CHECK(json_is_object(j) && json_object_size(j) <= DOTENV_MAX_ENTRIES);
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		CHECK(json_is_string(v));
		size_t n = strlen(k);
		CHECK(n >= 1 && n <= 255);
		for (size_t i = 0; i < n; i++)
			CHECK(k[i] == '_' || (k[i] >= '0' && k[i] <= '9') || ((k[i] | 32) >= 'a' && (k[i] | 32) <= 'z'));
		CHECK(!(k[0] >= '0' && k[0] <= '9'));
	}
	json_decref(j);
	return 0;
}
