/*
 * Starting instance processes (`thaw worker`), sandboxed or not.
 *
 * A sandboxed instance is created by clone() directly into new PID, mount,
 * IPC and UTS namespaces (and a user namespace when the host is not root):
 * it is PID 1 of a namespace of its own from its first instruction, so it
 * never sees the host's processes, and every process it starts dies with
 * it. It execs `thaw worker` there still privileged inside those
 * namespaces; the worker finishes the sandbox itself once INIT says whose
 * code it runs (src/worker/sandbox.c): its root, its uid, its filters.
 * Unsandboxed (--no-sandbox), it is a plain posix_spawn as before.
 */
#ifndef THAW_HOST_SPAWN_H
#define THAW_HOST_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "proto/frame.h"

/*
 * Start `self_exe() worker` with sock as fd THAW_WORKER_FD and nothing else
 * but stdio open, every signal unblocked and at its default, in a process
 * group of its own. out: its stdout and stderr (a pipe the host reads: what
 * worker code writes to fds 1 and 2 directly reaches the host's log as the
 * worker's, never as the host's own lines), or -1 for the host's. sandbox:
 * in new namespaces (see above). Returns the pid, or -1 with err.
 */
struct host;
pid_t spawn_worker(const struct host *h, int sock, int out, int sandbox, const int *cg_fds,
		   int ncg, char *err, size_t errlen);
/* A sandboxed spare's roots: THAW_ROOTS_FD (proto/frame.h). */
#define SPAWN_ROOTS_FD THAW_ROOTS_FD
#define SPAWN_ROOTS_MAX THAW_ROOTS_MAX

/*
 * Can this host make sandboxed instances? Tried once at host start by
 * spawning a child into the namespaces: 0, or -1 with err saying why not
 * (the host then refuses to start unless --no-sandbox).
 */
int spawn_sandbox_probe(const struct host *h, char *err, size_t errlen);

/* Does spawn_worker(…, 1, …) add a user namespace (the host is not root)? */
int spawn_uses_userns(void);

#endif
