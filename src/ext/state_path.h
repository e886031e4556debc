/*
 * The paths and query parameters of the control API's state endpoints
 * (docs/control-api.md, "KV and D1"), parsed without I/O so that a unit test
 * and a fuzz target can feed them anything: every byte is a client's.
 *
 *   kv/STORE/values/KEY   GET, PUT, DELETE one key (KEY: the rest, '/' kept)
 *   kv/STORE/keys         GET a page of keys
 *   d1/STORE/execute      POST SQL
 *   d1/STORE/migrations   GET the applied ones; POST list or apply
 *
 * STORE is a binding name, a KV namespace id or a D1 database_name: 1 to
 * STATE_STORE_MAX bytes of [A-Za-z0-9_.-], not "." or "..".
 */
#ifndef THAW_EXT_STATE_PATH_H
#define THAW_EXT_STATE_PATH_H

#include <stddef.h>
#include <stdint.h>

#define STATE_STORE_MAX 255

enum state_op { STATE_KV_VALUE, STATE_KV_KEYS, STATE_D1_EXECUTE, STATE_D1_MIGRATIONS };

struct state_path {
	enum state_op op;
	char store[STATE_STORE_MAX + 1];
	const char *key; /* STATE_KV_VALUE: into the parsed path (borrowed), NUL-terminated */
	size_t key_len;
};

/* Parse path (NUL-terminated, as the URL's path after "/v1/workers/NAME/").
 * 0 with out filled, or -1 when it names no state endpoint. */
int state_path_parse(const char *path, struct state_path *out);

/* A query parameter's decimal integer in [min, max]: 0 with *out, or -1
 * (empty, not a whole number, out of range). */
int state_query_int(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
