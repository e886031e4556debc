/*
 * libFuzzer target for the lockfile reader (src/cli/lockfile.c).
 *
 * The input is one mode byte (even: uv.lock, odd: pylock.toml) and then the
 * lockfile as JSON, the form tomllib's output takes. Whatever the input, the
 * reader returns 0 or -1; on -1 it says why; on 0 every requirement it gives
 * is one an installer's argv may take (thaw_requirement_valid: no leading
 * '-', no control bytes, bounded), and is not the project itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/lockfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	enum thaw_lock_kind kind = data[0] & 1 ? THAW_LOCK_PYLOCK : THAW_LOCK_UV;
	json_error_t je;
	json_t *lock = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, &je);
	if (!lock)
		return 0;
	struct thaw_reqs r = {0};
	char err[256] = "";
	int rc = thaw_lock_requirements(lock, kind, "proj", "/p", &r, err, sizeof err);
	CHECK(rc == 0 || rc == -1);
	if (rc == -1)
		CHECK(err[0] != 0);
	for (size_t i = 0; rc == 0 && i < r.n; i++) {
		CHECK(thaw_requirement_valid(r.v[i]));
		CHECK(strncmp(r.v[i], "proj=", 5) != 0 && strncmp(r.v[i], "proj @", 6) != 0);
	}
	thaw_reqs_dispose(&r);
	json_decref(lock);
	return 0;
}
