/*
 * Tests for trusted proxies and forwarded headers (src/host/proxy.c): the
 * --trust-proxy parser with malformed input, network matching (IPv4, IPv6,
 * IPv4-mapped), and the client a request names through X-Forwarded-For
 * (rightmost untrusted) and its scheme through X-Forwarded-Proto, with
 * hostile header values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "host/proxy.h"

static struct proxy_list list_of(const char *const *specs)
{
	struct proxy_list l;
	memset(&l, 0, sizeof l);
	char err[256];
	for (; *specs; specs++) {
		struct proxy_net net;
		if (proxy_net_parse(*specs, &net, err, sizeof err) < 0)
			fail_msg("--trust-proxy %s: %s", *specs, err);
		assert_int_equal(proxy_list_add(&l, &net, err, sizeof err), 0);
	}
	return l;
}

static struct proxy_addr addr(const char *text)
{
	struct proxy_addr a;
	if (proxy_addr_parse(text, strlen(text), &a) < 0)
		fail_msg("not an address: %s", text);
	return a;
}

static void expect_text(const struct proxy_addr *a, const char *want)
{
	char text[PROXY_ADDR_TEXT];
	proxy_addr_format(a, text);
	assert_string_equal(text, want);
}

static void net_parse_accepts_addresses_and_networks(void **state)
{
	(void)state;
	struct proxy_net net;
	char err[256];
	assert_int_equal(proxy_net_parse("10.0.0.0/8", &net, err, sizeof err), 0);
	assert_int_equal(net.prefix, 8);
	assert_int_equal(proxy_net_parse("127.0.0.1", &net, err, sizeof err), 0);
	assert_int_equal(net.prefix, 32);
	assert_int_equal(proxy_net_parse("fd00::/8", &net, err, sizeof err), 0);
	assert_int_equal(net.addr.family, AF_INET6);
	assert_int_equal(net.prefix, 8);
	assert_int_equal(proxy_net_parse("::1", &net, err, sizeof err), 0);
	assert_int_equal(net.prefix, 128);
	assert_int_equal(proxy_net_parse("0.0.0.0/0", &net, err, sizeof err), 0);
	assert_int_equal(net.prefix, 0);
	/* An IPv4-mapped network is the IPv4 network. */
	assert_int_equal(proxy_net_parse("::ffff:10.1.0.0/112", &net, err, sizeof err), 0);
	assert_int_equal(net.addr.family, AF_INET);
	assert_int_equal(net.prefix, 16);
}

static void net_parse_refuses_malformed_input(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",         "/8",        "10.0.0.0/",   "10.0.0.0/33", "10.0.0.0/-1",
		"10.0.0.0/8x", "10.0.0.0/0008", "::1/129", "10.0.0",  "10.0.0.256",
		"010.0.0.1x", "localhost", "10.0.0.1:80", "[::1]",   "::1%lo",
		"1.2.3.4/ 8", " 1.2.3.4", "::ffff:10.0.0.0/95", "1.2.3.4/8/8",
		"0x7f.0.0.1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct proxy_net net;
		char err[256] = "";
		if (proxy_net_parse(bad[i], &net, err, sizeof err) != -1)
			fail_msg("accepted --trust-proxy '%s'", bad[i]);
		assert_non_null(strstr(err, bad[i]));
	}
	/* Longer than any address. */
	char huge[300];
	memset(huge, '1', sizeof huge - 1);
	huge[sizeof huge - 1] = 0;
	struct proxy_net net;
	char err[512];
	assert_int_equal(proxy_net_parse(huge, &net, err, sizeof err), -1);
}

static void list_is_bounded(void **state)
{
	(void)state;
	struct proxy_list l;
	memset(&l, 0, sizeof l);
	struct proxy_net net;
	char err[256];
	assert_int_equal(proxy_net_parse("10.0.0.1", &net, err, sizeof err), 0);
	for (int i = 0; i < PROXY_LIST_MAX; i++)
		assert_int_equal(proxy_list_add(&l, &net, err, sizeof err), 0);
	assert_int_equal(proxy_list_add(&l, &net, err, sizeof err), -1);
	assert_non_null(strstr(err, "at most"));
}

static void trusted_matches_prefixes_and_families(void **state)
{
	(void)state;
	static const char *const specs[] = {"10.0.0.0/8", "192.168.1.128/25", "fd00::/8",
					    "2001:db8::1", NULL};
	struct proxy_list l = list_of(specs);
	struct proxy_addr a;
	a = addr("10.255.0.1");
	assert_true(proxy_trusted(&l, &a));
	a = addr("11.0.0.1");
	assert_false(proxy_trusted(&l, &a));
	a = addr("192.168.1.200");
	assert_true(proxy_trusted(&l, &a));
	a = addr("192.168.1.127");
	assert_false(proxy_trusted(&l, &a));
	a = addr("fd12::5");
	assert_true(proxy_trusted(&l, &a));
	a = addr("fe00::5");
	assert_false(proxy_trusted(&l, &a));
	a = addr("2001:db8::1");
	assert_true(proxy_trusted(&l, &a));
	a = addr("2001:db8::2");
	assert_false(proxy_trusted(&l, &a));
	/* The mapped form of a trusted IPv4 address is trusted. */
	a = addr("::ffff:10.1.2.3");
	assert_int_equal(a.family, AF_INET);
	assert_true(proxy_trusted(&l, &a));
	/* An empty list trusts nobody. */
	struct proxy_list none;
	memset(&none, 0, sizeof none);
	a = addr("10.0.0.1");
	assert_false(proxy_trusted(&none, &a));
}

static void addr_parse_reads_forms_with_ports_and_brackets(void **state)
{
	(void)state;
	struct proxy_addr a;
	a = addr(" 203.0.113.7 ");
	expect_text(&a, "203.0.113.7");
	a = addr("203.0.113.7:4711");
	expect_text(&a, "203.0.113.7");
	a = addr("2001:db8::7");
	expect_text(&a, "2001:db8::7");
	a = addr("[2001:db8::7]");
	expect_text(&a, "2001:db8::7");
	a = addr("\t[2001:db8::7]:443");
	expect_text(&a, "2001:db8::7");
}

static void addr_parse_refuses_hostile_values(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",           "   ",          "unknown",        "_hidden",       "example.com",
		"1.2.3.4:",   "1.2.3.4:99999", "1.2.3.4:8a",    "1.2.3.4:123456", "[::1",
		"[::1]x",     "[::1]:",       "[1.2.3.4]",      "::1%eth0",      "1.2.3.4 5.6.7.8",
		"1.2.3",      "256.1.1.1",    "01.2.3.4",       "[]",            "[[::1]]",
		"1.2.3.4\r\n", ":::",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct proxy_addr a;
		if (proxy_addr_parse(bad[i], strlen(bad[i]), &a) != -1)
			fail_msg("accepted address '%s'", bad[i]);
	}
	/* A NUL inside, and an entry too long to be an address. */
	struct proxy_addr a;
	assert_int_equal(proxy_addr_parse("1.2.3.4\0garbage", 15, &a), -1);
	assert_int_equal(proxy_addr_parse("[::1\0]", 6, &a), -1);
	char longer[200];
	memset(longer, '1', sizeof longer);
	assert_int_equal(proxy_addr_parse(longer, sizeof longer, &a), -1);
}

static void expect_client(const struct proxy_list *l, const char *peer, const char *xff,
			  const char *want)
{
	struct proxy_addr p = addr(peer), client;
	proxy_client(l, &p, xff, xff ? strlen(xff) : 0, &client);
	char text[PROXY_ADDR_TEXT];
	proxy_addr_format(&client, text);
	if (strcmp(text, want) != 0)
		fail_msg("peer %s, X-Forwarded-For '%s': client %s, expected %s", peer,
			 xff ? xff : "(none)", text, want);
}

static void client_is_the_rightmost_untrusted_address(void **state)
{
	(void)state;
	static const char *const specs[] = {"127.0.0.1", "10.0.0.0/8", NULL};
	struct proxy_list l = list_of(specs);
	/* An untrusted peer is the client, whatever it claims. */
	expect_client(&l, "198.51.100.9", "203.0.113.7", "198.51.100.9");
	expect_client(&l, "198.51.100.9", NULL, "198.51.100.9");
	/* A trusted peer's list, read from the right. */
	expect_client(&l, "127.0.0.1", "203.0.113.7", "203.0.113.7");
	expect_client(&l, "127.0.0.1", "203.0.113.7, 10.0.0.5", "203.0.113.7");
	/* A client that sent its own X-Forwarded-For cannot push a forged
	 * address past the one the proxy appended. */
	expect_client(&l, "127.0.0.1", "1.1.1.1, 203.0.113.7", "203.0.113.7");
	expect_client(&l, "127.0.0.1", "1.1.1.1, 203.0.113.7, 10.0.0.9", "203.0.113.7");
	/* Only trusted addresses: the leftmost stands. */
	expect_client(&l, "127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1");
	/* No header: the proxy itself. */
	expect_client(&l, "127.0.0.1", NULL, "127.0.0.1");
	expect_client(&l, "127.0.0.1", "", "127.0.0.1");
	/* Ports, brackets, empty elements. */
	expect_client(&l, "127.0.0.1", "[2001:db8::7]:1234, ", "2001:db8::7");
	expect_client(&l, "127.0.0.1", "203.0.113.7:80,,10.0.0.1", "203.0.113.7");
	/* An entry that cannot be read ends the walk at the last address read. */
	expect_client(&l, "127.0.0.1", "203.0.113.7, garbage", "127.0.0.1");
	expect_client(&l, "127.0.0.1", "203.0.113.7, unknown, 10.0.0.3", "10.0.0.3");
	expect_client(&l, "127.0.0.1", "1.2.3.4 5.6.7.8", "127.0.0.1");
}

static void forwarded_https_reads_the_last_entry(void **state)
{
	(void)state;
	static const struct {
		const char *value;
		int want;
	} cases[] = {
		{"https", 1},        {"HTTPS", 1},      {" https ", 1}, {"http, https", 1},
		{"https, http", 0},  {"http", 0},       {"", 0},        {"httpsx", 0},
		{"https,", 0},       {"ws", 0},         {"htt", 0},     {"https\r", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (proxy_forwarded_https(cases[i].value, strlen(cases[i].value)) != cases[i].want)
			fail_msg("X-Forwarded-Proto '%s': expected %d", cases[i].value, cases[i].want);
	assert_int_equal(proxy_forwarded_https(NULL, 0), 0);
}

static void sockaddr_forms(void **state)
{
	(void)state;
	struct sockaddr_in in = {.sin_family = AF_INET};
	inet_pton(AF_INET, "192.0.2.1", &in.sin_addr);
	struct proxy_addr a;
	assert_int_equal(proxy_addr_from_sockaddr((struct sockaddr *)&in, &a), 0);
	expect_text(&a, "192.0.2.1");
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &in6.sin6_addr);
	assert_int_equal(proxy_addr_from_sockaddr((struct sockaddr *)&in6, &a), 0);
	expect_text(&a, "192.0.2.1");
	struct sockaddr other = {.sa_family = AF_UNIX};
	assert_int_equal(proxy_addr_from_sockaddr(&other, &a), -1);
	assert_int_equal(proxy_addr_from_sockaddr(NULL, &a), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(net_parse_accepts_addresses_and_networks),
		cmocka_unit_test(net_parse_refuses_malformed_input),
		cmocka_unit_test(list_is_bounded),
		cmocka_unit_test(trusted_matches_prefixes_and_families),
		cmocka_unit_test(addr_parse_reads_forms_with_ports_and_brackets),
		cmocka_unit_test(addr_parse_refuses_hostile_values),
		cmocka_unit_test(client_is_the_rightmost_untrusted_address),
		cmocka_unit_test(forwarded_https_reads_the_last_entry),
		cmocka_unit_test(sockaddr_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
