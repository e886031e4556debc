/*
 * `thaw kv key put|get|list|delete` on one namespace file: the work of the
 * command, given the path of the store (the integrator resolves `--binding
 * NAME`, `--persist-to` or a host's data directory to it and wires the
 * command). Usage, with argv[0] the verb:
 *
 *   put KEY (VALUE | --path FILE) [--ttl S] [--expiration T] [--metadata JSON]
 *   get KEY [--text | --json]
 *   list [--prefix P] [--limit N]
 *   delete KEY
 *
 * get writes the value's bytes as they are; --text refuses a value that is
 * not UTF-8; --json writes one object {"key", "value" (or "value_base64"
 * when the bytes are not UTF-8), "metadata", "expiration"}. list writes one
 * JSON object per key ({"name", and "expiration", "metadata" when set}, as
 * Cloudflare's list shows them), following cursors until the end or N keys.
 * JSON output is ASCII (every other character escaped), so a key a worker
 * chose cannot send escape sequences to the terminal.
 *
 * Returns the exit status (0; 1 when the operation failed or the key is
 * missing; 2 for a usage error) after saying why on errout, prefixed with
 * "thaw kv key VERB: ". The put's rules and messages are the engine's (kv.h).
 * Blocks on the store like the engine; for the terminal only.
 */
#ifndef THAW_STATE_KV_CLI_H
#define THAW_STATE_KV_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "state/kv.h"

/* With the wall clock, stdout and stderr. */
int kv_cli(int argc, char **argv, const char *store_path);
/* With a given clock and streams (borrowed), for tests. */
int kv_cli_run(int argc, char **argv, const char *store_path, int64_t now_ms, FILE *out,
	       FILE *errout);

/* Where the operations go: the engine's signatures (kv.h), with the same
 * outcomes and messages, on a local file (kv_cli_run) or a host's control
 * API (`--host`, src/ext/state_remote.c). Results are freed with
 * kv_entry_dispose / kv_list_dispose, so they must be malloc'd the same way. */
struct kv_cli_backend {
	void *arg; /* first argument of every call */
	int (*get)(void *arg, const void *key, size_t key_len, int64_t now_ms,
		   struct kv_entry *out, char *err, size_t errlen);
	int (*put)(void *arg, const void *key, size_t key_len, const void *value,
		   size_t value_len, const struct kv_put_options *options, int64_t now_ms,
		   char *err, size_t errlen);
	int (*del)(void *arg, const void *key, size_t key_len, char *err, size_t errlen);
	int (*list)(void *arg, const struct kv_list_options *options, int64_t now_ms,
		    struct kv_list *out, char *err, size_t errlen);
};
/* The command over any backend (borrowed). */
int kv_cli_with(int argc, char **argv, const struct kv_cli_backend *b, int64_t now_ms, FILE *out,
		FILE *errout);

#endif
