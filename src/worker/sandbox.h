/*
 * The instance's side of the sandbox (DESIGN.md, "The sandbox";
 * docs/security.md). The host started this process as PID 1 of new PID,
 * mount, IPC and UTS namespaces (src/host/spawn.c), still privileged there.
 * Once INIT says whose code it runs, sbx_enter finishes the job before any
 * of that code (or a snapshot of it) runs:
 *
 *   - a root of its own: a read-only tmpfs holding, at their own paths,
 *     read-only binds of /usr (the embedded Python, the system's libraries
 *     and, with --system-site-packages, its site-packages), the few /etc
 *     files a process needs (dynamic linker cache, name resolution, TLS
 *     roots, time zone), the thaw executable, the SDK, the version's files
 *     and the image to restore; the host's `hide` paths covered by empty
 *     read-only tmpfs; the host's `rw` paths (a builder's output directory)
 *     writable; /dev with null, zero, full, random, urandom; a /proc of its
 *     own PID namespace; a private size-capped /tmp and /dev/shm. Nothing
 *     else of the host's file system, so nothing of the data directory;
 *   - its worker's own uid and gid (the host allocates one per worker), no
 *     supplementary groups, no capabilities (bounding set emptied);
 *   - then the filters (no_new_privs, landlock scopes, seccomp).
 *
 * The INIT's "sandbox" object (written by the host, trusted):
 *   {"uid": N, "gid": N,            the worker's ids (root host), or
 *    "userns": {"uid": N, "gid": N}, the host's ids to map to 0 (no root)
 *    "tmp_bytes": N,                /tmp's and /dev/shm's size each (the
 *                                   worker's tmp_mb: INIT's limits.tmp_bytes)
 *    "ro": [path...],               more read-only binds (the image)
 *    "rw": [path...],               writable binds (output directories)
 *    "hide": [path...],             covered with an empty read-only tmpfs
 *    "outbound": B}                 false: no IP sockets (the worker's
 *                                   [tool.thaw] outbound: INIT's outbound)
 */
#ifndef THAW_WORKER_SANDBOX_H
#define THAW_WORKER_SANDBOX_H

#include <stddef.h>

#include <jansson.h>

struct sbx_paths {
	const char *project_dir; /* the version's files */
	const char *sdk_dir;
};

/* In a spare started sandboxed (PID 1 of its namespace, not yet in its new
 * root): build the shared part of the root, pivot into it and exec `thaw
 * worker` again from there. Returns only on failure, with err. */
int sbx_stage1(char *err, size_t errlen);
/* Join the control groups the host made for this process (their
 * cgroup.procs files at THAW_CGROUP_FD..), and close them. 0, or -1. */
int sbx_join_cgroups(char *err, size_t errlen);
/* Is this process past sbx_stage1 (in the new root, the host's at /.old)? */
int sbx_in_stage2(void);
/* In stage 2, before HELLO: build the seccomp program and the landlock
 * ruleset, so that sbx_enter (on the cold start's path) only puts them in
 * force. 0, or -1. */
int sbx_prepare(char *err, size_t errlen);
/* Is this process PID 1 of a namespace, i.e. started sandboxed? */
int sbx_started_sandboxed(void);

/* Enter the sandbox described by spec (INIT's "sandbox"). 0, or -1 with err:
 * the instance must then exit, never run unconfined. */
int sbx_enter(json_t *spec, const struct sbx_paths *p, char *err, size_t errlen);

#endif
