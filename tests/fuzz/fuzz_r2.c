/*
 * libFuzzer target for the R2 engine's parsers of what a worker sends
 * (src/state/r2_args.c): the first byte picks the parser (only_if
 * conditions, a range resolved against an object size from the next 8
 * bytes, HTTP metadata, custom metadata, complete()'s part list, a key); the
 * rest is its input. Invariants:
 * - a refusal is R2_REFUSED with a v4 code and a message, never anything else;
 * - a resolved range lies inside the object (offset + length <= size);
 * - normalised metadata is a JSON object that parses back, within
 *   Cloudflare's 8 KiB of object metadata (R2_METADATA_MAX; custom: keys and
 *   values, HTTP: string values);
 * - a part list has at most 10000 parts, each numbered 1..10000;
 * - an accepted key is 1..1024 bytes;
 * - conditions evaluate (for an object and for none) without fault.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/r2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void refused(int rc, const struct r2_err *err)
{
	CHECK(rc == R2_OK || rc == R2_REFUSED);
	if (rc == R2_REFUSED)
		CHECK(err->code != 0 && err->text[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned which = data[0] % 6;
	data++;
	size--;
	struct r2_err err = {0};
	const char *text = (const char *)data;
	switch (which) {
	case 0: {
		struct r2_conditional *c = calloc(1, sizeof *c);
		int rc = r2_conditional_parse(text, size, c, &err);
		refused(rc, &err);
		if (rc == R2_OK) {
			(void)r2_conditional_holds(c, 1, "0123456789abcdef0123456789abcdef", 1700000000123);
			(void)r2_conditional_holds(c, 0, "", 0);
		}
		free(c);
		break;
	}
	case 1: {
		if (size < 8)
			return 0;
		uint64_t object = 0;
		memcpy(&object, data, 8);
		object %= (1ull << 42);
		struct r2_range r;
		int rc = r2_range_parse(text + 8, size - 8, &r, &err);
		refused(rc, &err);
		if (rc == R2_OK) {
			uint64_t off, len;
			rc = r2_range_resolve(&r, object, &off, &len, &err);
			refused(rc, &err);
			if (rc == R2_OK)
				CHECK(off <= object && len <= object - off);
		}
		break;
	}
	case 2:
	case 3: {
		char *out = NULL;
		int rc = which == 2 ? r2_http_metadata_parse(text, size, &out, &err)
				    : r2_custom_metadata_parse(text, size, &out, &err);
		refused(rc, &err);
		CHECK((rc == R2_OK) == (out != NULL));
		if (out) {
			json_t *back = json_loads(out, 0, NULL);
			CHECK(json_is_object(back));
			size_t total = 0;
			const char *k;
			json_t *v;
			json_object_foreach(back, k, v) {
				if (json_is_string(v))
					total += json_string_length(v) + (which == 3 ? strlen(k) : 0);
			}
			CHECK(total <= R2_METADATA_MAX);
			CHECK(total == (which == 2 ? r2_metadata_size(out, NULL)
						   : r2_metadata_size(NULL, out)));
			json_decref(back);
			free(out);
		}
		break;
	}
	case 4: {
		struct r2_part *parts = NULL;
		size_t n = 0;
		int rc = r2_parts_parse(text, size, &parts, &n, &err);
		refused(rc, &err);
		CHECK(n <= R2_PARTS_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK(parts[i].number >= 1 && parts[i].number <= R2_PARTS_MAX);
		free(parts);
		break;
	}
	default: {
		int rc = r2_key_check(data, size, &err);
		refused(rc, &err);
		if (rc == R2_OK)
			CHECK(size >= 1 && size <= R2_KEY_MAX);
	}
	}
	return 0;
}
