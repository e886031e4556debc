/*
 * libFuzzer target for the static-asset parsers of outside bytes
 * (src/host/assets.c): the request-target normaliser, Range, If-None-Match
 * and the run_worker_first glob.
 *
 * The input is split at its first NUL: the part before is a request target
 * (and a header value), the part after a pattern. Invariants: a normalised
 * path starts with '/', fits its buffer, has no "//" and no "." or ".."
 * component, no backslash or control byte, and normalising it again gives
 * it back unchanged; an accepted Range lies inside the file; matching a
 * pattern against itself (without '*') succeeds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/assets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void check_path(const char *out)
{
	size_t n = strlen(out);
	CHECK(out[0] == '/' && n <= ASSETS_PATH_MAX);
	CHECK(!strstr(out, "//"));
	CHECK(!strstr(out, "/../") && !strstr(out, "/./"));
	CHECK(!(n >= 3 && !strcmp(out + n - 3, "/..")) && !(n >= 2 && !strcmp(out + n - 2, "/.")));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f && out[i] != '\\');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	CHECK(in != NULL);
	memcpy(in, data, size);
	in[size] = 0;
	const char *pattern = in + strlen(in) < in + size ? in + strlen(in) + 1 : "";

	char out[ASSETS_PATH_MAX + 1], again[ASSETS_PATH_MAX + 1];
	if (assets_path_normalize(in, out, sizeof out) == 0) {
		check_path(out);
		/* Idempotent, once '%' is out of the way (a decoded '%' would be
		 * decoded again). */
		if (!strchr(out, '%') && !strchr(out, '?') && !strchr(out, '#')) {
			CHECK(assets_path_normalize(out, again, sizeof again) == 0);
			CHECK(!strcmp(out, again));
		}
	}
	char small[8];
	if (assets_path_normalize(in, small, sizeof small) == 0)
		check_path(small);

	uint64_t sizes[] = {0, 1, 10, 1u << 20, UINT64_MAX - 1};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		uint64_t start = 0, len = 0;
		int r = assets_range_parse(in, sizes[i], &start, &len);
		CHECK(r == ASSETS_RANGE_NONE || r == ASSETS_RANGE_OK ||
		      r == ASSETS_RANGE_UNSATISFIABLE);
		if (r == ASSETS_RANGE_OK)
			CHECK(len > 0 && start < sizes[i] && len <= sizes[i] - start);
	}
	(void)assets_etag_matches(in, "\"0123456789abcdef\"");
	(void)assets_content_type(in);
	if (strlen(pattern) <= 200) {
		(void)assets_rule_matches(pattern, in);
		if (!strchr(pattern, '*'))
			CHECK(assets_rule_matches(pattern, pattern));
	}
	free(in);
	return 0;
}
