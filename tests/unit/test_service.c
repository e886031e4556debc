/*
 * Tests for the heads of service-binding calls (src/host/service.c): what
 * the callee's runtime is told is built by the host from a worker's
 * arguments, so every rule about those bytes is here: the pseudo-headers
 * come first and only from the host, a forged one is dropped, a bad method,
 * URL, header or RPC method name is refused with the error the worker sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "host/service.h"
#include "proto/frame.h"

/* A key/value list of n pairs given as k1, v1, k2, v2, ... */
static struct buf kv_list(int n, ...)
{
	struct buf b = {0};
	uint8_t c[4];
	thaw_put_u32(c, (uint32_t)n);
	buf_append(&b, c, 4);
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < 2 * n; i++) {
		const char *s = va_arg(ap, const char *);
		thaw_put_u32(c, (uint32_t)strlen(s));
		buf_append(&b, c, 4);
		buf_append(&b, s, strlen(s));
	}
	va_end(ap);
	return b;
}

/* The head as "k=v;k=v;..." for comparing. */
static void flatten(const struct buf *head, char *out, size_t outlen)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	const char *err;
	size_t o = 0;
	out[0] = 0;
	assert_int_equal(thaw_kv_validate(buf_head(head), buf_used(head), &err), 0);
	thaw_kv_begin(&it, buf_head(head), buf_used(head), &err);
	while (thaw_kv_next(&it, &kv, &err) == 1)
		o += (size_t)snprintf(out + o, outlen - o, "%.*s=%.*s;", (int)kv.klen, kv.key,
				      (int)kv.vlen, kv.val);
}

static void fetch_head_puts_the_hosts_pseudo_headers_first_and_drops_forged_ones(void **state)
{
	struct buf args = kv_list(6, ":stream", "7", ":event", "scheduled", "x-a", "1", ":method",
				  "POST", ":url", "https://auth/x?y", "X-B", "two words");
	struct call_args a = {buf_head(&args), buf_used(&args)};
	struct buf head = {0};
	char err[256], flat[512];
	assert_int_equal(service_fetch_head(&a, "Admin", &head, err, sizeof err), 0);
	flatten(&head, flat, sizeof flat);
	assert_string_equal(flat, ":method=POST;:url=https://auth/x?y;:entrypoint=Admin;x-a=1;"
				  "X-B=two words;");
	buf_free(&head);
	assert_int_equal(service_fetch_head(&a, NULL, &head, err, sizeof err), 0);
	flatten(&head, flat, sizeof flat);
	assert_string_equal(flat, ":method=POST;:url=https://auth/x?y;x-a=1;X-B=two words;");
	buf_free(&head);
	buf_free(&args);
}

static void fetch_head_refuses_bad_methods_urls_and_headers(void **state)
{
	static const char *const bad[][4] = {
		{":method", "GE T", ":url", "http://a/"},
		{":method", "", ":url", "http://a/"},
		{":method", "GET", ":url", "http://a/ b"},
		{":method", "GET", ":url", ""},
		{":method", "GET", "x", "y"},
	};
	char err[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf args = kv_list(2, bad[i][0], bad[i][1], bad[i][2], bad[i][3]);
		struct call_args a = {buf_head(&args), buf_used(&args)};
		struct buf head = {0};
		assert_int_equal(service_fetch_head(&a, NULL, &head, err, sizeof err), -1);
		assert_int_equal(buf_used(&head), 0);
		buf_free(&args);
	}
	static const char *const headers[][2] = {{"bad name", "v"}, {"x", "a\r\nb"}, {"", "v"},
						  {"x", "nul\0"}};
	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
		struct buf args = kv_list(3, ":method", "GET", ":url", "http://a/", headers[i][0],
					  i == 3 ? "nul" : headers[i][1]);
		if (i == 3) /* a NUL inside the value */
			buf_head(&args)[buf_used(&args) - 1] = 0;
		struct call_args a = {buf_head(&args), buf_used(&args)};
		struct buf head = {0};
		assert_int_equal(service_fetch_head(&a, NULL, &head, err, sizeof err), -1);
		assert_non_null(strstr(err, "TypeError: "));
		buf_free(&args);
	}
}

static void rpc_head_names_entrypoint_and_method_after_the_event(void **state)
{
	struct buf args = kv_list(2, ":stream", "3", ":rpc-method", "verify_token");
	struct call_args a = {buf_head(&args), buf_used(&args)};
	struct buf head = {0};
	char err[256], flat[512];
	assert_int_equal(service_rpc_head(&a, "auth", NULL, &head, err, sizeof err), 0);
	flatten(&head, flat, sizeof flat);
	assert_string_equal(flat, ":method=POST;:url=http://auth/__rpc;:event=rpc;:entrypoint=;"
				  ":rpc-method=verify_token;");
	buf_free(&head);
	assert_int_equal(service_rpc_head(&a, "auth", "Admin", &head, err, sizeof err), 0);
	flatten(&head, flat, sizeof flat);
	assert_non_null(strstr(flat, ":entrypoint=Admin;"));
	buf_free(&head);
	buf_free(&args);
}

static void rpc_head_refuses_private_and_malformed_method_names(void **state)
{
	static const char *const names[] = {"_secret", "__init__", "", "9lives", "a-b", "a b",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	char err[256];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		struct buf args = kv_list(1, ":rpc-method", names[i]);
		struct call_args a = {buf_head(&args), buf_used(&args)};
		struct buf head = {0};
		assert_int_equal(service_rpc_head(&a, "auth", NULL, &head, err, sizeof err), -1);
		assert_int_equal(buf_used(&head), 0);
		assert_true(!strncmp(err, "TypeError: ", 11));
		if (names[i][0] == '_')
			assert_non_null(strstr(err, "The RPC receiver does not implement the method"));
		buf_free(&args);
	}
	struct buf none = kv_list(1, ":stream", "1");
	struct call_args a = {buf_head(&none), buf_used(&none)};
	struct buf head = {0};
	assert_int_equal(service_rpc_head(&a, "auth", NULL, &head, err, sizeof err), -1);
	buf_free(&none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fetch_head_puts_the_hosts_pseudo_headers_first_and_drops_forged_ones),
		cmocka_unit_test(fetch_head_refuses_bad_methods_urls_and_headers),
		cmocka_unit_test(rpc_head_names_entrypoint_and_method_after_the_event),
		cmocka_unit_test(rpc_head_refuses_private_and_malformed_method_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
