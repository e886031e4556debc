/*
 * libFuzzer target for the heads of service-binding calls
 * (src/host/service.c): a worker's call arguments are bytes the host turns
 * into the head another worker's runtime believes.
 *
 * The input is the arguments as the host hands them over (a key/value list,
 * possibly malformed: the builders must not trust it even though
 * binding_on_call validated the whole CALL first).
 * Invariants: no crash, no read outside the input; on success the head is
 * a valid list that starts with the host's pseudo-headers (fetch: :method,
 * :url, then :entrypoint when given; rpc: :method, :url, :event rpc,
 * :entrypoint, :rpc-method) and holds no other name starting with ':'; on
 * failure the head is empty and err says why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/service.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* The fuzz build compiles service.c alone: the host's registry and call
 * forwarding are not reached from the head builders; call_arg is the same
 * lookup as binding.c's (the replay build links that one). */
__attribute__((weak)) void binding_kind_register(const char *config_key, const char *name_field,
						   const struct binding_kind *kind,
						   binding_factory make)
{
}
__attribute__((weak)) void binding_call_forward(const struct binding_call *c, struct app *a,
						  const char *method, const char *uri,
						  struct buf *head, unsigned depth, double timeout_ms)
{
}
__attribute__((weak)) int call_arg(const struct call_args *args, const char *name,
				   const uint8_t **v, size_t *vlen)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	size_t nl = strlen(name);
	if (thaw_kv_begin(&it, args->kv, args->len, &err) < 0)
		return 0;
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (kv.klen == nl && !memcmp(kv.key, name, nl)) {
			*v = kv.val;
			*vlen = kv.vlen;
			return 1;
		}
	}
	return 0;
}

/* The head is valid and its pseudo-headers are exactly want[0..n), first. */
static void check_head(const struct buf *head, const char *const *want, size_t n)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	CHECK(thaw_kv_validate(buf_head(head), buf_used(head), &err) == 0);
	CHECK(thaw_kv_begin(&it, buf_head(head), buf_used(head), &err) == 0);
	size_t i = 0;
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		if (i < n) {
			CHECK(kv.klen == strlen(want[i]) && !memcmp(kv.key, want[i], kv.klen));
		} else {
			CHECK(kv.klen > 0 && kv.key[0] != ':');
			for (uint32_t j = 0; j < kv.vlen; j++)
				CHECK(kv.val[j] != '\r' && kv.val[j] != '\n' && kv.val[j] != 0);
		}
		i++;
	}
	CHECK(i >= n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct call_args args = {data, size};
	char err[256];
	struct buf head = {0};
	static const char *const fetch_named[] = {":method", ":url", ":entrypoint"};
	static const char *const rpc[] = {":method", ":url", ":event", ":entrypoint", ":rpc-method"};
	for (int named = 0; named < 2; named++) {
		err[0] = 0;
		if (service_fetch_head(&args, named ? "Admin" : NULL, &head, err, sizeof err) == 0)
			check_head(&head, fetch_named, named ? 3 : 2);
		else
			CHECK(buf_used(&head) == 0 && err[0]);
		buf_free(&head);
	}
	err[0] = 0;
	if (service_rpc_head(&args, "auth", NULL, &head, err, sizeof err) == 0)
		check_head(&head, rpc, 5);
	else
		CHECK(buf_used(&head) == 0 && err[0]);
	buf_free(&head);
	return 0;
}
