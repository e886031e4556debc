/*
 * An instance's rlimits (limits.h). The host computed the values (its
 * defaults, the worker's [tool.thaw.limits], its caps); this file only sets
 * them, right after INIT and before the worker's code runs. The rlimits are
 * the kernel's, per process: a restore, which replaces the memory but not
 * the process, keeps them, and children the worker starts inherit them.
 */
#include "worker/limits.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common/util.h"

static int set_limit(int resource, const char *name, uint64_t value, char *err, size_t errlen)
{
	struct rlimit cur;
	if (getrlimit(resource, &cur) < 0)
		return err_set(err, errlen, "getrlimit(%s): %s", name, strerror(errno));
	rlim_t v = (rlim_t)value;
	if (cur.rlim_max != RLIM_INFINITY && v > cur.rlim_max)
		v = cur.rlim_max; /* only root raises a hard limit */
	struct rlimit next = {v, v};
	if (setrlimit(resource, &next) < 0)
		return err_set(err, errlen, "setrlimit(%s, %llu): %s", name, (unsigned long long)v,
			       strerror(errno));
	return 0;
}

int worker_apply_rlimits(const json_t *limits, int before_restore, char *err, size_t errlen)
{
	/* A write past RLIMIT_FSIZE raises SIGXFSZ, whose default kills: the
	 * worker's code gets EFBIG (OSError) instead. CPython does this itself
	 * only with its signal handlers installed, which an instance's are not. */
	signal(SIGXFSZ, SIG_IGN);
	if (!limits)
		return 0;
	if (!json_is_object(limits))
		return err_set(err, errlen, "INIT: limits is not an object");
	static const struct {
		const char *key;
		int resource;
		const char *name;
		int after_restore;
	} map[] = {
		{"fsize_bytes", RLIMIT_FSIZE, "RLIMIT_FSIZE", 0},
		{"data_bytes", RLIMIT_DATA, "RLIMIT_DATA", 1},
		{"nofile", RLIMIT_NOFILE, "RLIMIT_NOFILE", 1},
	};
	for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
		const json_t *v = json_object_get(limits, map[i].key);
		if (!v)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			return err_set(err, errlen, "INIT: limits.%s is not a positive integer",
				       map[i].key);
		if (before_restore && map[i].after_restore)
			continue;
#ifdef THAW_SANITIZE
		/* The sanitizers' shadow memory is terabytes of writable address
		 * space: any RLIMIT_DATA would refuse their next mmap. */
		if (map[i].resource == RLIMIT_DATA)
			continue;
#endif
		if (set_limit(map[i].resource, map[i].name, (uint64_t)json_integer_value(v), err,
			      errlen) < 0)
			return -1;
	}
	return 0;
}
