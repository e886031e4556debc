/*
 * Parsing the state endpoints' paths and integer query parameters (see
 * state_path.h). Pure functions of their input: no allocation, no I/O.
 */
#include "ext/state_path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int store_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-' || ch == '.';
}

int state_path_parse(const char *path, struct state_path *out)
{
	memset(out, 0, sizeof *out);
	int kv;
	if (!strncmp(path, "kv/", 3))
		kv = 1;
	else if (!strncmp(path, "d1/", 3))
		kv = 0;
	else
		return -1;
	const char *p = path + 3, *slash = strchr(p, '/');
	if (!slash)
		return -1;
	size_t n = (size_t)(slash - p);
	if (n == 0 || n > STATE_STORE_MAX || (n == 1 && p[0] == '.') ||
	    (n == 2 && p[0] == '.' && p[1] == '.'))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!store_char(p[i]))
			return -1;
	memcpy(out->store, p, n);
	out->store[n] = 0;
	const char *rest = slash + 1;
	if (kv && !strncmp(rest, "values/", 7)) {
		out->op = STATE_KV_VALUE;
		out->key = rest + 7;
		out->key_len = strlen(out->key);
		return 0;
	}
	if (kv && !strcmp(rest, "keys"))
		out->op = STATE_KV_KEYS;
	else if (!kv && !strcmp(rest, "execute"))
		out->op = STATE_D1_EXECUTE;
	else if (!kv && !strcmp(rest, "migrations"))
		out->op = STATE_D1_MIGRATIONS;
	else
		return -1;
	return 0;
}

int state_query_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}
