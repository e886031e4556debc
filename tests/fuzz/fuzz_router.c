/*
 * libFuzzer target for thaw serve's routing inputs (src/ext/router.c): the
 * Host header, the request target and the thaw-version-override header come
 * from anyone who can reach the data plane. The input is split at its first
 * two NULs into those three. Whatever they are: router_worker returns 0 or
 * -1, a name fits its buffer and a rewritten target starts with '/';
 * router_override names -1 or a version of the deployment that its value
 * really names (the id's prefix or the number).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ext/router.h"
#include "ext/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	char *in = malloc(size + 3);
	memcpy(in, data, size);
	in[size] = in[size + 1] = in[size + 2] = 0;
	const char *host = in;
	const char *uri = host + strlen(host) + 1;
	const char *ov = uri + strlen(uri) + 1;
	if (ov > in + size)
		ov = in + size + 2;

	static struct router rt;
	if (!rt.nrules) {
		char err[256];
		router_add_rule(&rt, "api.example.com=api", err, sizeof err);
		router_add_rule(&rt, "*.shop.test=shop", err, sizeof err);
		rt.path_routing = 1;
	}
	for (int probe = 0; probe < 2; probe++) {
		char name[64];
		char *rewritten = NULL;
		int rc = router_worker(&rt, host, uri, probe, name, sizeof name, &rewritten);
		CHECK(rc == 0 || rc == -1);
		if (rc == 0) {
			CHECK(strlen(name) < sizeof name);
			CHECK(!rewritten || rewritten[0] == '/');
		} else {
			CHECK(!rewritten);
		}
		free(rewritten);
	}

	struct deployment d;
	memset(&d, 0, sizeof d);
	d.n = 2;
	strcpy(d.version[0], "0a1b2c3d-0000-4000-8000-000000000007");
	strcpy(d.version[1], "1234abcd-0000-4000-8000-000000000003");
	d.percentage[0] = d.percentage[1] = 50;
	const int numbers[2] = {7, 1234};
	int i = router_override(&d, numbers, ov);
	CHECK(i >= -1 && i <= 1);
	if (i >= 0) {
		size_t n = strlen(ov);
		const char *digits = ov[0] == '#' ? ov + 1 : ov;
		int by_prefix = n >= 4 && !strncmp(d.version[i], ov, n);
		int by_number = digits[0] && strtol(digits, NULL, 10) == numbers[i];
		CHECK(by_prefix || by_number);
	}
	free(in);
	return 0;
}
