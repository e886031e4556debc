/*
 * The last layer of an instance's sandbox: no_new_privs, a seccomp deny-list
 * and landlock scoping, applied to the calling process after the namespaces,
 * the mounts and setuid, right before it restores a snapshot or boots Python.
 * What is refused and why is written out at the top of sandbox_filter.c and in
 * docs/security.md ("System calls and landlock").
 *
 * Everything here is inherited by every child and every exec and cannot be
 * undone. The functions act on the calling thread only (landlock has no way to
 * reach other threads), so they must run while the process has one thread.
 * No Python and no host code: src/worker/ calls them, the unit test
 * (tests/unit/test_sandbox_filter.c) forks and calls them directly.
 */
#ifndef THAW_WORKER_SANDBOX_FILTER_H
#define THAW_WORKER_SANDBOX_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/filter.h>

struct sbx_filter_opts {
	/* Fail rather than go on with seccomp alone when the kernel's landlock
	 * cannot scope signals and abstract unix sockets (landlock ABI < 6,
	 * before Linux 6.12, or landlock not enabled at boot). */
	bool require_landlock_scope;
	/* No network outside the instance ([tool.thaw] outbound = false): a
	 * second seccomp filter refuses socket() for AF_INET and AF_INET6,
	 * whatever the type (TCP, UDP and so DNS, SCTP, ...), and the landlock
	 * layer (ABI 4+) handles TCP connect and bind with no port allowed, for
	 * an IP socket that exists anyway. Both answer EACCES. AF_UNIX (the
	 * host's socket, socketpair, asyncio's self-pipe) and netlink route
	 * stay. For sbx_filter_apply; a prepared filter is told at enforce. */
	bool deny_outbound;
};

/* Landlock scopes, as applied (struct sbx_filter_report.landlock_scopes). */
enum {
	SBX_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0,
	SBX_SCOPE_SIGNAL = 1 << 1,
};

/* What sbx_filter_apply applied, for the instance to log once. */
struct sbx_filter_report {
	int landlock_abi;         /* 0: this kernel has no landlock (or it is off) */
	unsigned landlock_scopes; /* SBX_SCOPE_* */
	bool outbound_denied;     /* deny_outbound's seccomp filter is loaded */
	bool landlock_tcp_denied; /* ... and landlock refuses TCP connect and bind */
	/* "seccomp on, landlock ABI 7 scope signal+abstract-unix", or
	 * "seccomp on, landlock ABI 3 without scoping (needs ABI 6)", or
	 * "seccomp on, no landlock"; with deny_outbound, followed by
	 * "; outbound denied (IP sockets, landlock TCP)" (or without
	 * ", landlock TCP" below ABI 4) */
	char summary[160];
};

/* The filter, built ahead (sbx_filter_prepare: libseccomp's work, the
 * landlock ruleset) and put in force later in one go (sbx_filter_enforce:
 * three system calls). A spare prepares it before it is given work, so a
 * cold start pays only the enforcing. */
struct sbx_filter_prepared {
	struct sock_fprog prog;     /* the seccomp program (malloc'ed filter) */
	struct sock_fprog outbound; /* the second one, for deny_outbound */
	int ruleset;                /* the landlock scope ruleset, or -1 */
	int closed_ruleset;         /* scopes + TCP with no port (ABI 4+), or -1 */
	int abi;                    /* this kernel's landlock ABI */
};
/* Both variants are prepared (o's deny_outbound is not read): the spare
 * does not know yet whose code it will run. */
int sbx_filter_prepare(struct sbx_filter_prepared *p, const struct sbx_filter_opts *o, char *err,
		       size_t errlen);
/* Enforce what p holds (then discarded, whatever happens), with the outbound
 * rules when deny_outbound. 0, or -1 with err. */
int sbx_filter_enforce(struct sbx_filter_prepared *p, bool deny_outbound,
		       struct sbx_filter_report *report, char *err, size_t errlen);
/* Free what p holds, unused. */
void sbx_filter_discard(struct sbx_filter_prepared *p);

/* Apply no_new_privs, landlock scoping (as far as the kernel's ABI goes) and
 * the seccomp filter (with o->deny_outbound, its rules too) to the calling
 * process. o may be NULL (defaults); report, when not NULL, says what was
 * applied. 0, or -1 with err (then the process may be partly restricted
 * already and should exit). */
int sbx_filter_apply(const struct sbx_filter_opts *o, struct sbx_filter_report *report, char *err,
		     size_t errlen);

/* The system calls the filter refuses whatever their arguments, by name,
 * NULL-terminated: EPERM for all of them but clone3 (ENOSYS, so that glibc
 * falls back to clone, whose flags the filter can read). Those refused only
 * for some arguments (clone, personality, socket, socketpair, ioctl) are in
 * sbx_filter_conditional(). Static storage. */
const char *const *sbx_filter_denied(void);
const char *const *sbx_filter_conditional(void);

/* The landlock ABI of this kernel: 0 when there is no landlock. */
int sbx_landlock_abi(void);

/* For hosts without mount namespaces: from now on this process and its
 * children may only read and execute beneath ro_paths and do anything
 * beneath rw_paths (each NULL-terminated, NULL for none); every other path is
 * refused with EACCES. Every filesystem right of the kernel's landlock ABI is
 * handled. Each path must exist. Borrows both lists. 0, or -1 with err. */
int sbx_landlock_fs(const char *const *ro_paths, const char *const *rw_paths, char *err,
		    size_t errlen);

/* From now on this process and its children may connect TCP (v4 and v6) only
 * to the n ports in allowed_ports (none when n is 0) and may bind no TCP port
 * (an instance serves through its host, never on a port of its own); UDP and
 * unix sockets are untouched. Needs landlock ABI 4 (Linux 6.7). Each call adds
 * a layer: a second call can only narrow the first. A rule costs kernel
 * memory per process: see docs/security.md before passing thousands.
 * 0, or -1 with err. */
int sbx_landlock_net(const uint16_t *allowed_ports, size_t n, char *err, size_t errlen);

#endif
