/*
 * libFuzzer target for smaps_rollup texts (src/host/memstat.c): whatever the
 * bytes, the parser reads none past len, and either refuses them with every
 * figure zero or gives figures of at most 2^40 kB each whose Pss parts add
 * up to Pss within 64 kB when all three are there (split).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "host/memstat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memstat m;
	int rc = memstat_parse((const char *)data, size, &m);
	const uint64_t *f = (const uint64_t *)&m;
	CHECK(rc == 0 || m.split == 0);
	for (size_t i = 0; i < offsetof(struct memstat, split) / sizeof *f; i++) {
		CHECK(rc == 0 || f[i] == 0);
		CHECK(f[i] <= (1ull << 40) * 1024);
	}
	if (rc == 0) {
		CHECK(size <= MEMSTAT_MAX_TEXT);
		uint64_t parts = m.pss_anon + m.pss_file + m.pss_shmem;
		if (m.split)
			CHECK(parts <= m.pss + 64 * 1024 && m.pss <= parts + 64 * 1024);
	}
	return 0;
}
