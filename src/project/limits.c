/*
 * A worker's resource limits (limits.h): read from a project file's table
 * or the reader's answer, written as JSON, checked against a host's caps.
 * Everything here reads values that came from outside: each is a whole
 * number in its key's range, or it is refused with a message that names the
 * file, the key and the range.
 */
#include "project/limits.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/*
 * Defaults follow Cloudflare's Workers Paid plan where it has a number:
 * 128 MB of memory an isolate, 30 s of CPU a request (at most 5 min), 10,000
 * subrequests a request (at most 10 million). The rest are thaw's: room for
 * an asyncio loop with its default thread pool (pids), a process's usual
 * descriptor limit, and files and a /tmp that a request handler has no
 * business making large.
 */
const struct project_limit_info project_limit_info[PROJECT_LIMIT_COUNT] = {
	[PROJECT_LIMIT_MEMORY_MB] = {"memory_mb", "memory of one instance (MiB)", 32, 1u << 20, 128,
				     4096, 0},
	[PROJECT_LIMIT_CPU_MS] = {"cpu_ms", "CPU time of one request (ms)", 1, 86400000, 30000,
				  300000, 1},
	[PROJECT_LIMIT_PIDS] = {"pids", "processes and threads of one instance", 8, 1u << 20, 64,
				4096, 0},
	[PROJECT_LIMIT_OPEN_FILES] = {"open_files", "open files of one instance", 16, 1u << 20,
				      1024, 65536, 0},
	[PROJECT_LIMIT_FILE_SIZE_MB] = {"file_size_mb", "largest file an instance writes (MiB)", 1,
					1u << 20, 1024, 65536, 0},
	[PROJECT_LIMIT_TMP_MB] = {"tmp_mb", "size of an instance's /tmp (MiB)", 1, 1u << 20, 64,
				  16384, 0},
	[PROJECT_LIMIT_SUBREQUESTS] = {"subrequests", "fetch() calls of one request", 0, 10000000,
				       10000, 10000000, 1},
};

int project_limit_find(const char *name)
{
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++)
		if (!strcmp(project_limit_info[i].name, name))
			return i;
	return -1;
}

static void known_keys(char *out, size_t outlen, int wrangler)
{
	size_t used = 0;
	out[0] = 0;
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++) {
		if (wrangler && !project_limit_info[i].wrangler)
			continue;
		int n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "",
				 project_limit_info[i].name);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

/* One value: a JSON integer in the key's range. */
static int take_value(int k, const json_t *v, const char *where, uint64_t *out, char *err,
		      size_t errlen)
{
	const struct project_limit_info *li = &project_limit_info[k];
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < li->min ||
	    (uint64_t)json_integer_value(v) > li->max) {
		snprintf(err, errlen,
			 "%s: limits.%s must be a whole number from %llu to %llu (%s)%s", where,
			 li->name, (unsigned long long)li->min, (unsigned long long)li->max,
			 li->what,
			 json_is_integer(v)  ? ""
			 : json_is_real(v)   ? ", not a fraction"
			 : json_is_string(v) ? ", not a string"
					     : "");
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int project_limits_take(struct project_limits *l, const json_t *j, int wrangler, const char *where,
			char *err, size_t errlen)
{
	if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: 'limits' must be a table, as limits = { cpu_ms = 50 }",
			 where);
		return -1;
	}
	struct project_limits next = *l;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)j, key, v) {
		int k = project_limit_find(key);
		char names[160];
		if (k < 0) {
			known_keys(names, sizeof names, wrangler);
			snprintf(err, errlen, "%s: limits.%.64s is not a limit thaw knows (%s)",
				 where, key, names);
			return -1;
		}
		if (wrangler && !project_limit_info[k].wrangler) {
			snprintf(err, errlen,
				 "%s: limits.%s is thaw's, not wrangler's: set it in "
				 "pyproject.toml "
				 "under [tool.thaw.limits]",
				 where, key);
			return -1;
		}
		if (take_value(k, v, where, &next.v[k], err, errlen) < 0)
			return -1;
		next.set |= 1u << k;
	}
	*l = next;
	return 0;
}

json_t *project_limits_to_json(const struct project_limits *l)
{
	if (!l->set)
		return NULL;
	json_t *j = json_object();
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++)
		if (l->set & (1u << i))
			json_object_set_new(j, project_limit_info[i].name,
					    json_integer((json_int_t)l->v[i]));
	return j;
}

int project_limits_from_json(struct project_limits *l, const json_t *j, char *err, size_t errlen)
{
	memset(l, 0, sizeof *l);
	return project_limits_take(l, j, 0, "malformed project description", err, errlen);
}

int project_limits_parse_flag(struct project_limits *l, const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	char name[32];
	size_t n = eq ? (size_t)(eq - arg) : 0;
	int k = -1;
	if (eq && n < sizeof name) {
		memcpy(name, arg, n);
		name[n] = 0;
		k = project_limit_find(name);
	}
	if (k < 0) {
		char names[160];
		known_keys(names, sizeof names, 0);
		snprintf(err, errlen, "expects NAME=N with NAME one of %s, not '%.64s'", names,
			 arg);
		return -1;
	}
	const struct project_limit_info *li = &project_limit_info[k];
	uint64_t v;
	if (parse_u64(eq + 1, li->max, &v) < 0 || v < li->min) {
		snprintf(err, errlen,
			 "%s must be a whole number from %llu to %llu (%s), not '%.32s'", li->name,
			 (unsigned long long)li->min, (unsigned long long)li->max, li->what,
			 eq + 1);
		return -1;
	}
	l->v[k] = v;
	l->set |= 1u << k;
	return 0;
}

void project_limits_host_defaults(struct project_limits *defaults, struct project_limits *caps)
{
	memset(defaults, 0, sizeof *defaults);
	memset(caps, 0, sizeof *caps);
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++) {
		defaults->v[i] = project_limit_info[i].host_default;
		caps->v[i] = project_limit_info[i].host_cap;
	}
	defaults->set = caps->set = (1u << PROJECT_LIMIT_COUNT) - 1;
}

int project_limits_check_caps(const struct project_limits *want, const struct project_limits *caps,
			      const char *where, char *err, size_t errlen)
{
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++) {
		if (!(want->set & (1u << i)) || want->v[i] <= caps->v[i])
			continue;
		snprintf(err, errlen,
			 "%s: limits.%s = %llu is over this host's cap of %llu (%s; the host's "
			 "operator sets it with --max-limit %s=N)",
			 where, project_limit_info[i].name, (unsigned long long)want->v[i],
			 (unsigned long long)caps->v[i], project_limit_info[i].what,
			 project_limit_info[i].name);
		return -1;
	}
	return 0;
}

unsigned project_limits_effective(const struct project_limits *want,
				  const struct project_limits *defaults,
				  const struct project_limits *caps, struct project_limits *out)
{
	unsigned clamped = 0;
	memset(out, 0, sizeof *out);
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++) {
		uint64_t v = want && (want->set & (1u << i)) ? want->v[i] : defaults->v[i];
		if (v > caps->v[i]) {
			if (want && (want->set & (1u << i)))
				clamped |= 1u << i;
			v = caps->v[i];
		}
		out->v[i] = v;
	}
	out->set = (1u << PROJECT_LIMIT_COUNT) - 1;
	return clamped;
}
