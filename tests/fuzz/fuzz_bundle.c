/*
 * libFuzzer target for the bundle reader (src/ext/bundle.c): the input is
 * an uploaded bundle, checked with bundle_check_mem under small limits so one
 * run stays cheap whatever the input claims to hold.
 *
 * Invariants: the reader returns 0 or -1; a refusal always says why; what it
 * reports (accepted or not) stays within the limits it was given; and the
 * same input gives the same answer twice (no state leaks between runs).
 */
#include <stdint.h>
#include <string.h>

#include "ext/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle_limits l = {
		.max_compressed = 1 << 20,
		.max_total = 256 * 1024,
		.max_file = 64 * 1024,
		.max_files = 64,
		.max_ratio = 100,
		.max_path = 128,
		.max_depth = 8,
	};
	struct bundle_stats st;
	char err[256];
	err[0] = '\0';
	int r = bundle_check_mem(data, size, &l, &st, err, sizeof(err));
	CHECK(r == 0 || r == -1);
	if (r != 0)
		CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
	/* An entry over max_files is refused before it is counted; bytes may pass
	 * max_total by the one chunk of data that made the reader stop. */
	CHECK(st.files + st.dirs <= l.max_files);
	CHECK(st.bytes <= l.max_total + 64 * 1024);
	if (r == 0) {
		CHECK(st.files + st.dirs <= l.max_files);
		CHECK(st.bytes <= l.max_total);
	}

	struct bundle_stats again;
	char err2[256];
	err2[0] = '\0';
	CHECK(bundle_check_mem(data, size, &l, &again, err2, sizeof(err2)) == r);
	CHECK(again.files == st.files && again.dirs == st.dirs && again.bytes == st.bytes);
	CHECK(strcmp(err, err2) == 0);
	return 0;
}
