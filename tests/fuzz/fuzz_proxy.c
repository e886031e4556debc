/*
 * libFuzzer target for what the host believes of forwarded headers
 * (src/host/proxy.c): X-Forwarded-For and X-Forwarded-Proto values are bytes
 * from the network.
 *
 * The input is the header value. It is read as an X-Forwarded-For list from
 * a trusted peer (with 10.0.0.0/8 and ::1 trusted too), as an
 * X-Forwarded-Proto value, and as one address.
 * Invariants: no crash, no read outside the value; the client is the peer or
 * an address that appears in the value (its text form parses back to
 * itself); an untrusted peer is always its own client; X-Forwarded-Proto
 * says yes only for a value that ends in "https".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "host/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static struct proxy_list trusted;
static int ready;

static void setup(void)
{
	static const char *const specs[] = {"127.0.0.1", "10.0.0.0/8", "::1"};
	char err[128];
	for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		struct proxy_net net;
		CHECK(proxy_net_parse(specs[i], &net, err, sizeof err) == 0);
		CHECK(proxy_list_add(&trusted, &net, err, sizeof err) == 0);
	}
	ready = 1;
}

static int same(const struct proxy_addr *a, const struct proxy_addr *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready)
		setup();
	/* An exactly sized copy, so that a read past the end is caught. */
	char *value = malloc(size ? size : 1);
	memcpy(value, data, size);

	struct proxy_addr peer, client, untrusted;
	CHECK(proxy_addr_parse("127.0.0.1", 9, &peer) == 0);
	CHECK(proxy_addr_parse("198.51.100.1", 12, &untrusted) == 0);

	proxy_client(&trusted, &peer, value, size, &client);
	CHECK(client.family == AF_INET || client.family == AF_INET6);
	if (!same(&client, &peer)) {
		char text[PROXY_ADDR_TEXT];
		proxy_addr_format(&client, text);
		struct proxy_addr back;
		CHECK(text[0] != 0);
		CHECK(proxy_addr_parse(text, strlen(text), &back) == 0);
		CHECK(same(&back, &client));
	}

	proxy_client(&trusted, &untrusted, value, size, &client);
	CHECK(same(&client, &untrusted));

	int https = proxy_forwarded_https(value, size);
	CHECK(https == 0 || https == 1);
	if (https) {
		size_t n = size;
		while (n && (value[n - 1] == ' ' || value[n - 1] == '\t'))
			n--;
		CHECK(n >= 5 && strncasecmp(value + n - 5, "https", 5) == 0);
	}

	struct proxy_addr one;
	if (proxy_addr_parse(value, size, &one) == 0) {
		char text[PROXY_ADDR_TEXT];
		proxy_addr_format(&one, text);
		CHECK(text[0] != 0);
	}
	free(value);
	return 0;
}
