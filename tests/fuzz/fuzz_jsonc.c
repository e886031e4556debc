/*
 * libFuzzer target for the JSONC reader (src/common/jsonc.c).
 *
 * jsonc_strip must write exactly len bytes (a canary after them stays),
 * change bytes only into spaces, never touch a newline or make one, and
 * agree with jsonc_parse on failure. Input that jansson already accepts as
 * strict JSON holds no comments or trailing commas, so stripping must leave it
 * byte for byte alone and jsonc_parse must return an equal value. Input and
 * output buffers are exactly sized, so with AddressSanitizer reading past the
 * end (say, looking for a NUL that is not there) is reported.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define CANARY '\x5c'

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *out = malloc(size + 1);
	CHECK(out != NULL);
	out[size] = CANARY;
	const char *err = NULL;
	int r = jsonc_strip(in, size, out, &err);
	CHECK(r == 0 || r == -1);
	CHECK(out[size] == CANARY);
	if (r == 0) {
		for (size_t i = 0; i < size; i++) {
			CHECK(out[i] == in[i] || out[i] == ' ');
			CHECK((in[i] == '\n') == (out[i] == '\n'));
		}
	} else {
		CHECK(err != NULL);
	}

	char errbuf[160];
	memset(errbuf, 'x', sizeof(errbuf));
	json_t *parsed = jsonc_parse(in, size, errbuf, sizeof(errbuf));
	if (r != 0)
		CHECK(parsed == NULL);
	if (!parsed)
		CHECK(memchr(errbuf, '\0', sizeof(errbuf)) != NULL);

	/* Strict JSON in, the same bytes and the same value out. jansson skips raw
	 * NUL bytes in its input, so leave those to the checks above. */
	if (!memchr(data, '\0', size)) {
		json_error_t jerr;
		json_t *strict = json_loadb(in, size, JSON_REJECT_DUPLICATES, &jerr);
		if (strict) {
			CHECK(r == 0);
			CHECK(memcmp(out, in, size) == 0);
			CHECK(parsed != NULL);
			CHECK(json_equal(strict, parsed));
			json_decref(strict);
		}
	}
	json_decref(parsed);
	free(out);
	return 0;
}
