/*
 * A worker's resource limits, as plain data: `[tool.thaw.limits]` in
 * pyproject.toml and wrangler's `limits` table (issue 12). The host turns
 * them into cgroup settings, rlimits and the INIT's "limits" (src/host/limits.c);
 * this file only reads, checks and writes them.
 *
 * THE KEYS (whole numbers; each is absent when the worker does not set it):
 *   memory_mb     memory of one instance (MiB)                  32 .. 1048576
 *   cpu_ms        CPU time of one request (ms)                   1 .. 86400000
 *   pids          processes and threads of one instance          8 .. 1048576
 *   open_files    file descriptors of one instance              16 .. 1048576
 *   file_size_mb  largest file an instance may write (MiB)       1 .. 1048576
 *   tmp_mb        size of an instance's /tmp (MiB)                1 .. 1048576
 *   subrequests   outbound fetch() calls of one request          0 .. 10000000
 * The ranges are what a project file may say at all; a host narrows them
 * with its caps (PROJECT_LIMIT_DEFAULTS and the --max-limit flag).
 *
 * WHERE THEY COME FROM
 *   wrangler's `limits` holds cpu_ms and subrequests (Cloudflare's two keys);
 *   thaw's own keys there are refused with a pointer to [tool.thaw.limits],
 *   which holds all seven and wins key by key. The config reader's JSON
 *   answer carries them as "limits": {KEY: N..} (absent: none set), checked
 *   again on the host's side like everything the reader prints.
 */
#ifndef THAW_PROJECT_LIMITS_H
#define THAW_PROJECT_LIMITS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum project_limit {
	PROJECT_LIMIT_MEMORY_MB,
	PROJECT_LIMIT_CPU_MS,
	PROJECT_LIMIT_PIDS,
	PROJECT_LIMIT_OPEN_FILES,
	PROJECT_LIMIT_FILE_SIZE_MB,
	PROJECT_LIMIT_TMP_MB,
	PROJECT_LIMIT_SUBREQUESTS,
	PROJECT_LIMIT_COUNT,
};

/* Values by enum project_limit; a bit of `set` per value given. */
struct project_limits {
	uint64_t v[PROJECT_LIMIT_COUNT];
	unsigned set;
};

/* One key's description: its name in files and flags, its range, and the
 * host's default value and default cap (both within the range). */
struct project_limit_info {
	const char *name;
	const char *what; /* for messages and help: "memory of one instance (MiB)" */
	uint64_t min, max;
	uint64_t host_default, host_cap;
	int wrangler; /* a key of wrangler's own `limits` table */
};
extern const struct project_limit_info project_limit_info[PROJECT_LIMIT_COUNT];

/* The key named name (a config key, as "memory_mb"), or -1. */
int project_limit_find(const char *name);

/*
 * Take a `limits` table j (borrowed) of a project file into l, over what l
 * holds (key by key). wrangler: the table is wrangler's (only its keys).
 * where names the file for messages. 0, or -1 with err naming the key.
 */
int project_limits_take(struct project_limits *l, const json_t *j, int wrangler, const char *where,
			char *err, size_t errlen);
/* The limits as JSON {KEY: N..} (returns new), or NULL when none is set. */
json_t *project_limits_to_json(const struct project_limits *l);
/* From the reader's answer: like project_limits_take with every key
 * allowed, into a zeroed l. */
int project_limits_from_json(struct project_limits *l, const json_t *j, char *err, size_t errlen);

/*
 * "NAME=N" of a host flag (--limit, --max-limit) into l: 0, or -1 with err.
 */
int project_limits_parse_flag(struct project_limits *l, const char *arg, char *err, size_t errlen);
/* Every key at the host's default value (defaults), or its default cap (caps). */
void project_limits_host_defaults(struct project_limits *defaults, struct project_limits *caps);
/*
 * Is every value of want (a worker's) within caps? 0, or -1 with err naming
 * the first key over its cap (where names the worker's configuration).
 */
int project_limits_check_caps(const struct project_limits *want, const struct project_limits *caps,
			      const char *where, char *err, size_t errlen);
/*
 * What an instance runs with: want's value where it sets one, else the
 * default, each at most the cap. Returns a mask of the keys that were
 * clamped to their cap (0: none).
 */
unsigned project_limits_effective(const struct project_limits *want,
				  const struct project_limits *defaults,
				  const struct project_limits *caps, struct project_limits *out);

#endif
