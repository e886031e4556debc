/*
 * An instance's rlimits, set on itself from INIT's "limits" (the host's
 * side and the rest of the limits: src/host/limits.c, docs/limits.md).
 */
#ifndef THAW_WORKER_LIMITS_H
#define THAW_WORKER_LIMITS_H

#include <jansson.h>

/*
 * Apply limits (INIT's "limits" object, borrowed; NULL: none) to this
 * process, soft and hard alike so that the worker's code cannot raise them:
 *   data_bytes  -> RLIMIT_DATA     fsize_bytes -> RLIMIT_FSIZE (SIGXFSZ is
 *   nofile      -> RLIMIT_NOFILE   ignored: a write past it fails with EFBIG)
 * before_restore: this process is about to restore an image, which maps the
 * whole image and opens every file it maps at once; RLIMIT_DATA and
 * RLIMIT_NOFILE then wait for the call made after the restore. A value above
 * the current hard limit (which only root may raise) stays at the hard limit.
 * Sanitizer builds set no RLIMIT_DATA (their shadow memory is terabytes of
 * address space).
 * 0, or -1 with err (a malformed object, or setrlimit refused).
 */
int worker_apply_rlimits(const json_t *limits, int before_restore, char *err, size_t errlen);

#endif
