/*
 * An instance's system-call filter and landlock scoping: the last layer of its
 * sandbox, applied once, after the namespaces, the mounts and setuid, right
 * before it restores a snapshot or boots Python. It closes what namespaces and
 * dropped privileges leave open: kernel interfaces that need no privilege but
 * have a long history of exploitable bugs, ways to reach another process, and
 * the two kinds of object landlock can fence (signals, abstract unix sockets).
 *
 * Order in sbx_filter_apply: no_new_privs (landlock_restrict_self needs it
 * without CAP_SYS_ADMIN, and it makes setuid files inert), then landlock
 * scoping, then seccomp. The filter does not refuse the landlock calls, so
 * sbx_landlock_fs and sbx_landlock_net may come before or after it; a worker
 * may add landlock layers or seccomp filters of its own (both only narrow).
 *
 * The seccomp filter
 * ------------------
 * Built with libseccomp (linked statically: a shared object in the executable
 * costs every snapshot restore; see docs/architecture.md). Default allow, and
 * a deny-list answered with EPERM, not a kill: Python and the libraries a
 * worker imports probe some of these calls harmlessly (os.* wrappers,
 * getaddrinfo's netlink socket, "is io_uring there?") and must see an
 * ordinary OSError and go on. EPERM is also what these calls answer an
 * unprivileged process on most kernels, so the fallbacks exist already.
 *
 * Refused whatever the arguments (the table `denied` below, same order):
 *   other processes:   ptrace, process_vm_readv/writev, pidfd_getfd,
 *                      process_madvise, kcmp: read or write another process's
 *                      memory, registers or files, or order its kernel
 *                      pointers (kcmp). An instance has no business with any
 *                      process but its own children, and the mount namespace
 *                      does not hide processes of the same uid.
 *   namespaces/mounts: unshare, setns, mount, umount2, pivot_root, chroot,
 *                      move_mount, open_tree, open_tree_attr, fsopen, fsconfig,
 *                      fsmount, fspick, mount_setattr: a new user namespace
 *                      gives a process every capability inside it and so opens
 *                      the large CAP_SYS_ADMIN/CAP_NET_ADMIN surface (most
 *                      unprivileged kernel exploits of the last years start
 *                      with unshare(CLONE_NEWUSER)); the rest would rearrange
 *                      the view the sandbox built. unshare is refused whole,
 *                      not only its CLONE_NEW* flags: CLONE_FILES/FS/SYSVSEM
 *                      alone are never needed by a worker.
 *   kernel surface:    bpf, perf_event_open, userfaultfd (stretches race
 *                      windows in exploits), io_uring_setup/enter/register
 *                      (large, buggy, and its requests bypass seccomp: an
 *                      io_uring connect or openat is never seen here), keyctl,
 *                      add_key, request_key (keyrings are not namespaced),
 *                      modify_ldt, uselib, fanotify_init, lookup_dcookie,
 *                      open_by_handle_at (the classic container escape: opens
 *                      any inode by handle, around every mount), and
 *                      name_to_handle_at (makes such handles; nothing a worker
 *                      does needs one).
 *   the machine:       kexec_load, kexec_file_load, init_module, finit_module,
 *                      delete_module, reboot, swapon, swapoff, acct, quotactl,
 *                      quotactl_fd, settimeofday, clock_settime, adjtimex,
 *                      clock_adjtime, syslog, vhangup, iopl, ioperm: all need
 *                      a capability of the initial namespace already; refused
 *                      here too, so that a mistake in the privilege drop is
 *                      not the only thing between a worker and the host.
 *                      adjtimex with modes 0 only reads; it goes too (the
 *                      struct cannot be inspected and no worker needs it).
 *   clone3 → ENOSYS:   its flags sit in a struct seccomp cannot read. glibc
 *                      (2.34 on) tries clone3 for threads and posix_spawn and,
 *                      on ENOSYS and only then, falls back to clone; fork()
 *                      uses clone directly. So every thread and child is made
 *                      with clone, whose flags are a register.
 *
 * Refused for some arguments (sbx_filter_conditional):
 *   clone with any CLONE_NEW* flag (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC,
 *     NEWUSER, NEWPID, NEWNET): as unshare. Threads (CLONE_VM|CLONE_THREAD|
 *     ...), fork and vfork pass.
 *   personality other than 0 (PER_LINUX) and 0xffffffff (the query): the
 *     worker queries it and sets 0 after a restore; every other value turns
 *     off address randomisation for what the worker execs (ADDR_NO_RANDOMIZE),
 *     makes data executable (READ_IMPLIES_EXEC) or selects an old ABI.
 *   socket with a family other than AF_UNIX, AF_INET, AF_INET6, AF_NETLINK:
 *     AF_PACKET (raw frames), AF_ALG, AF_VSOCK, AF_KEY, the radio and
 *     legacy families are surface no worker needs; with AF_INET/AF_INET6,
 *     type SOCK_RAW or SOCK_PACKET (raw IP, forging packets: a process that
 *     owns its network namespace may otherwise open them); AF_NETLINK with a
 *     protocol other than NETLINK_ROUTE (sock_diag lists every socket of the
 *     namespace, netfilter/xfrm/generic are large). NETLINK_ROUTE stays,
 *     SOCK_RAW included: glibc's getaddrinfo (AI_ADDRCONFIG), getifaddrs and
 *     if_nameindex read addresses through it, and changing them needs
 *     CAP_NET_ADMIN.
 *   socketpair with a family other than AF_UNIX.
 *   ioctl TIOCSTI and TIOCLINUX: push bytes into a terminal's input, the
 *     known way out of a sandbox that shares a tty with its parent.
 *
 * Arguments are compared the way the kernel reads them: an int or unsigned
 * int argument by its low 32 bits (SCMP_CMP_MASKED_EQ with 0xffffffff), so
 * garbage in the upper half of a register cannot slip a value past a rule.
 * personality matches the kernel exactly, upper half ignored: ctypes passes
 * personality(0xffffffff) as a sign-extended -1, and that query must work.
 * libseccomp allows one comparison per argument per rule, so "low half
 * neither 0 nor 0xffffffff" is written as 32 rules: for some bit i, bit i set
 * and bit i+1 (mod 32) clear, which holds exactly for the 32-bit values that
 * have both a set and a clear bit. The socket families are an allow-list
 * with a "greater than" that sees all 64 bits: a family with its upper half
 * set is refused although the kernel would read only the low half (glibc
 * never passes one; refusing too much, never too little).
 *
 * No outbound network ([tool.thaw] outbound = false, deny_outbound): a second,
 * small filter, loaded after the first, refuses socket() for AF_INET and
 * AF_INET6 whatever the type, with EACCES. It is at socket(), not connect(),
 * so that UDP (sendto needs no connect; DNS is UDP), SCTP, MPTCP and TCP Fast
 * Open (sendto with MSG_FASTOPEN connects without a connect()) are all one
 * rule. EACCES, not the deny-list's EPERM, because it is a per-worker policy
 * and because landlock answers the same: the landlock layer then also
 * handles TCP connect and bind with no port allowed (ABI 4), for an IP
 * socket the instance did not make (it has none: the spawn closes every fd
 * but its socket to the host, and a snapshot holds no open socket), so that
 * the first layer is not the only one. AF_UNIX and netlink route stay: the
 * host's socket, socketpair, asyncio's self-pipe and getaddrinfo's address
 * reads, none of which leaves the instance. Both variants are prepared
 * ahead; the second filter is a few instructions, built once per spare.
 *
 * Other ABIs: the filter is for x86_64 alone. A system call of any other
 * architecture (i386 through int $0x80 or sysenter) or of the x32 ABI (number
 * with bit 30 set; libseccomp checks it) kills the process (SIGSYS):
 * a 64-bit CPython never makes one, so only exploit code does, and a 32-bit
 * table with a deny-list of its own would be one more thing to get right.
 *
 * The kernel caches "always allowed" per system call, so calls without a
 * rule (read, write, mmap, futex...) do not run the filter at all; clone,
 * socket, socketpair, ioctl and personality run a few dozen BPF instructions
 * (a binary tree: SCMP_FLTATR_CTL_OPTIMIZE 2).
 *
 * Landlock
 * --------
 * Scoping (ABI 6, Linux 6.12): LANDLOCK_SCOPE_SIGNAL (no signal, from kill,
 * tgkill, pidfd_send_signal or SIGIO, to a process outside the instance's
 * domain: its own children are inside) and LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
 * (no connect or send to an abstract unix socket bound outside the domain:
 * abstract sockets ignore the mount namespace, and the host's or another
 * instance's would otherwise be reachable when the network namespace is
 * shared). Older kernels get what their ABI has: nothing, as no ABI before 6
 * scopes anything; the report says so. The filesystem and network rulesets
 * (sbx_landlock_fs, sbx_landlock_net) are separate calls with their own rules
 * (see the header); the raw system calls are used because there is no Debian
 * library for landlock.
 *
 * Nothing here blocks; sbx_filter_apply costs a few hundred microseconds,
 * most of it libseccomp generating the program (docs/security.md).
 */
#include "worker/sandbox_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdlib.h>
#include <linux/landlock.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

/* Debian 12's kernel headers are 6.1's: the landlock ABI after 3 and the
 * newest system calls are spelt out here. The values are the kernel's ABI. */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL (1ULL << 1)
#endif
#define RULE_PATH_BENEATH 1   /* LANDLOCK_RULE_PATH_BENEATH */
#define RULE_NET_PORT 2       /* LANDLOCK_RULE_NET_PORT, ABI 4 */
#define NR_OPEN_TREE_ATTR 467 /* Linux 6.15, unknown to libseccomp 2.5.4 */

/* struct landlock_ruleset_attr as of ABI 6. The kernel takes a larger
 * struct than it knows as long as the fields it does not know are zero, so
 * this one is passed whole to every ABI with only what that ABI has set. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;             /* ABI 6 */
};

/* struct landlock_net_port_attr (ABI 4). */
struct net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

struct denied_call {
	const char *name;
	int nr;
};

/* clang-format off */
#define DENY(call) {#call, SCMP_SYS(call)}
/* Grouped and ordered as in the comment at the top of this file, which says
 * why each is here. */
static const struct denied_call denied[] = {
	/* other processes */
	DENY(ptrace), DENY(process_vm_readv), DENY(process_vm_writev), DENY(pidfd_getfd),
	DENY(process_madvise), DENY(kcmp),
	/* namespaces and mounts */
	DENY(unshare), DENY(setns), DENY(mount), DENY(umount2), DENY(pivot_root), DENY(chroot),
	DENY(move_mount), DENY(open_tree), {"open_tree_attr", NR_OPEN_TREE_ATTR}, DENY(fsopen),
	DENY(fsconfig), DENY(fsmount), DENY(fspick), DENY(mount_setattr),
	/* kernel surface */
	DENY(bpf), DENY(perf_event_open), DENY(userfaultfd), DENY(io_uring_setup),
	DENY(io_uring_enter), DENY(io_uring_register), DENY(keyctl), DENY(add_key),
	DENY(request_key), DENY(modify_ldt), DENY(uselib), DENY(fanotify_init),
	DENY(lookup_dcookie), DENY(open_by_handle_at), DENY(name_to_handle_at),
	/* the machine */
	DENY(kexec_load), DENY(kexec_file_load), DENY(init_module), DENY(finit_module),
	DENY(delete_module), DENY(reboot), DENY(swapon), DENY(swapoff), DENY(acct), DENY(quotactl),
	DENY(quotactl_fd), DENY(settimeofday), DENY(clock_settime), DENY(adjtimex),
	DENY(clock_adjtime), DENY(syslog), DENY(vhangup), DENY(iopl), DENY(ioperm),
	/* ENOSYS, not EPERM: see the top of this file */
	DENY(clone3),
};
/* clang-format on */
#undef DENY
#define NDENIED (sizeof denied / sizeof denied[0])

static const char *denied_names[NDENIED + 1];
static const char *const conditional_names[] = {"clone",      "personality", "socket",
						"socketpair", "ioctl",       NULL};

const char *const *sbx_filter_denied(void)
{
	if (!denied_names[0])
		for (size_t i = 0; i < NDENIED; i++)
			denied_names[i] = denied[i].name;
	return denied_names;
}

const char *const *sbx_filter_conditional(void)
{
	return conditional_names;
}

/* ---- seccomp ---- */

#define LOW32 0xffffffffULL

static int deny_if(scmp_filter_ctx ctx, int nr, unsigned n, const struct scmp_arg_cmp *cmp)
{
	return seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EPERM), nr, n, cmp);
}

static int deny_clone_namespaces(scmp_filter_ctx ctx)
{
	static const uint64_t ns_flags[] = {CLONE_NEWNS,  CLONE_NEWCGROUP, CLONE_NEWUTS,
					    CLONE_NEWIPC, CLONE_NEWUSER,   CLONE_NEWPID,
					    CLONE_NEWNET};
	int rc = 0;
	for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0] && rc == 0; i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
		rc = deny_if(ctx, SCMP_SYS(clone), 1, &c);
	}
	return rc;
}

/* A low half other than 0 and 0xffffffff: see the top of this file for the
 * proof. */
static int deny_personality_changes(scmp_filter_ctx ctx)
{
	int rc = 0;
	for (unsigned i = 0; i < 32 && rc == 0; i++) {
		uint64_t bit = 1ULL << i, next = 1ULL << ((i + 1) % 32);
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, bit | next, bit);
		rc = deny_if(ctx, SCMP_SYS(personality), 1, &c);
	}
	return rc;
}

static bool family_allowed(int family)
{
	return family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK;
}

static int deny_sockets(scmp_filter_ctx ctx)
{
	/* Families: everything above AF_NETLINK (16, the highest allowed), and
	 * each one below it that is not allowed. */
	struct scmp_arg_cmp c[2] = {SCMP_A0(SCMP_CMP_GT, AF_NETLINK)};
	int rc = deny_if(ctx, SCMP_SYS(socket), 1, c);
	for (int family = 0; family < AF_NETLINK && rc == 0; family++) {
		if (family_allowed(family))
			continue;
		c[0] = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)family);
		rc = deny_if(ctx, SCMP_SYS(socket), 1, c);
	}
	/* Raw and packet sockets of the IP families. The kernel reads the
	 * type's low four bits (SOCK_TYPE_MASK); the rest are flags. */
	static const int ip_families[] = {AF_INET, AF_INET6};
	static const int raw_types[] = {SOCK_RAW, SOCK_PACKET};
	for (size_t f = 0; f < 2 && rc == 0; f++)
		for (size_t t = 0; t < 2 && rc == 0; t++) {
			c[0] = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)ip_families[f]);
			c[1] = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (uint64_t)raw_types[t]);
			rc = deny_if(ctx, SCMP_SYS(socket), 2, c);
		}
	/* Netlink: route only. */
	if (rc == 0) {
		c[0] = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_NETLINK);
		c[1] = SCMP_A2(SCMP_CMP_NE, NETLINK_ROUTE);
		rc = deny_if(ctx, SCMP_SYS(socket), 2, c);
	}
	/* socketpair: AF_UNIX (1) only. */
	if (rc == 0) {
		c[0] = SCMP_A0(SCMP_CMP_GT, AF_UNIX);
		rc = deny_if(ctx, SCMP_SYS(socketpair), 1, c);
	}
	if (rc == 0) {
		c[0] = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, 0);
		rc = deny_if(ctx, SCMP_SYS(socketpair), 1, c);
	}
	return rc;
}

static int deny_tty_injection(scmp_filter_ctx ctx)
{
	struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, TIOCSTI);
	int rc = deny_if(ctx, SCMP_SYS(ioctl), 1, &c);
	if (rc == 0) {
		c = SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, TIOCLINUX);
		rc = deny_if(ctx, SCMP_SYS(ioctl), 1, &c);
	}
	return rc;
}

/* Export ctx's program into prog (its filter malloc'ed): exported, not
 * loaded, since loading is a single system call later (the instance's cold
 * start pays only that). A program is a few KiB: a pipe holds it whole.
 * 0, or -errno. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *prog)
{
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	int rc = seccomp_export_bpf(ctx, pfd[1]);
	close(pfd[1]);
	size_t cap = 65536, got = 0;
	uint8_t *buf = rc < 0 ? NULL : malloc(cap);
	while (buf && got < cap) {
		ssize_t n = read(pfd[0], buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(pfd[0]);
	if (rc == 0 && (!buf || got == 0 || got == cap || got % sizeof(struct sock_filter)))
		rc = -EINVAL;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	prog->filter = (struct sock_filter *)buf;
	prog->len = (unsigned short)(got / sizeof(struct sock_filter));
	return 0;
}

/* The filter as a BPF program (libseccomp builds it, the kernel's format):
 * *prog's filter is malloc'ed. 0, or -1 with err. */
static int seccomp_build(struct sock_fprog *prog, char *err, size_t errlen)
{
	const char *what = "seccomp_init";
	int rc = -ENOMEM;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		goto error;

	what = "seccomp_attr_set";
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	if (rc < 0)
		goto error;

	what = "seccomp_rule_add";
	for (size_t i = 0; i < NDENIED && rc == 0; i++) {
		int e = denied[i].nr == SCMP_SYS(clone3) ? ENOSYS : EPERM;
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(e), denied[i].nr, 0);
		if (rc < 0)
			what = denied[i].name;
	}
	if (rc == 0 && (rc = deny_clone_namespaces(ctx)) < 0)
		what = "clone";
	if (rc == 0 && (rc = deny_personality_changes(ctx)) < 0)
		what = "personality";
	if (rc == 0 && (rc = deny_sockets(ctx)) < 0)
		what = "socket";
	if (rc == 0 && (rc = deny_tty_injection(ctx)) < 0)
		what = "ioctl";
	if (rc < 0)
		goto error;

	what = "seccomp_export_bpf";
	if ((rc = export_program(ctx, prog)) < 0)
		goto error;
	seccomp_release(ctx);
	return 0;

error:
	err_set(err, errlen, "seccomp filter: %s: %s", what, strerror(-rc));
	seccomp_release(ctx);
	return -1;
}

/* deny_outbound's filter: socket(AF_INET or AF_INET6, any type) -> EACCES
 * (see the top of this file). A second program rather than a second build
 * of the whole first one: a spare prepares it without knowing whether its
 * worker will want it, and this one costs little. 0, or -1 with err. */
static int outbound_build(struct sock_fprog *prog, char *err, size_t errlen)
{
	const char *what = "seccomp_init";
	int rc = -ENOMEM;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		goto error;
	what = "seccomp_attr_set";
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (rc == 0)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	what = "socket";
	static const int ip_families[] = {AF_INET, AF_INET6};
	for (size_t f = 0; f < 2 && rc == 0; f++) {
		struct scmp_arg_cmp c =
			SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (uint64_t)ip_families[f]);
		rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socket), 1, &c);
	}
	if (rc == 0) {
		what = "seccomp_export_bpf";
		rc = export_program(ctx, prog);
	}
	if (rc < 0)
		goto error;
	seccomp_release(ctx);
	return 0;

error:
	err_set(err, errlen, "seccomp outbound filter: %s: %s", what, strerror(-rc));
	seccomp_release(ctx);
	return -1;
}

/* ---- landlock ---- */

static int landlock_create_ruleset(const struct ruleset_attr *attr, size_t size, uint32_t flags)
{
	return (int)syscall(SYS_landlock_create_ruleset, attr, size, flags);
}

static int landlock_add_rule(int ruleset, int type, const void *attr)
{
	return (int)syscall(SYS_landlock_add_rule, ruleset, type, attr, 0);
}

/* Sets no_new_privs (needed without CAP_SYS_ADMIN), then enforces and closes
 * the ruleset. -errno. */
static int landlock_enforce(int ruleset)
{
	int rc = 0;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		rc = -errno;
	close(ruleset);
	return rc;
}

int sbx_landlock_abi(void)
{
	int abi = landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : abi;
}

/* Landlock denies moving a file to another directory (rename, link) in
 * every layer, whether or not the layer handles files, unless one of its
 * rules grants LANDLOCK_ACCESS_FS_REFER there; it only checks once some layer
 * handles files. So a layer of scopes or ports alone would, the day a
 * filesystem layer joins it (sbx_landlock_fs, or the worker's own), make
 * every such rename fail with EXDEV. Such a layer therefore handles REFER
 * and grants it beneath "/": it then leaves renames to the other layers.
 * ABI 1 has no REFER (reparenting is denied under any filesystem layer) and
 * no scopes or ports either, so nothing calls this there. -errno. */
static int allow_reparenting(int ruleset)
{
	int root = open("/", O_PATH | O_CLOEXEC);
	if (root < 0)
		return -errno;
	struct landlock_path_beneath_attr rule = {.allowed_access = LANDLOCK_ACCESS_FS_REFER,
						  .parent_fd = root};
	int rc = landlock_add_rule(ruleset, RULE_PATH_BENEATH, &rule) < 0 ? -errno : 0;
	close(root);
	return rc;
}

/* A ruleset of attr with the rule that allows reparenting under /: its fd,
 * or -2 with err (what names it in the message). */
static int ruleset_made(const struct ruleset_attr *attr, const char *what, char *err,
			size_t errlen)
{
	int fd = landlock_create_ruleset(attr, sizeof *attr, O_CLOEXEC);
	if (fd < 0)
		fd = landlock_create_ruleset(attr, sizeof *attr, 0);
	if (fd < 0) {
		err_set(err, errlen, "landlock_create_ruleset (%s): %s", what, strerror(errno));
		return -2;
	}
	int rc = allow_reparenting(fd);
	if (rc < 0) {
		close(fd);
		err_set(err, errlen, "landlock: rule for /: %s", strerror(-rc));
		return -2;
	}
	return fd;
}

/* The scope ruleset (not enforced yet): its fd, -1 when the ABI has no
 * scopes, or -2 with err. */
static int landlock_scope_ruleset(int abi, char *err, size_t errlen)
{
	if (abi < 6)
		return -1;
	struct ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_REFER,
		.scoped = LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
	};
	return ruleset_made(&attr, "scope", err, errlen);
}

/* deny_outbound's ruleset (not enforced yet): the scopes of ABI 6 plus TCP
 * connect and bind handled with no port allowed. Its fd, -1 when the ABI has
 * no network rules (before 4), or -2 with err. */
static int landlock_closed_ruleset(int abi, char *err, size_t errlen)
{
	if (abi < 4)
		return -1;
	struct ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_REFER,
		.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP |
				      LANDLOCK_ACCESS_NET_CONNECT_TCP,
		.scoped = abi >= 6 ? LANDLOCK_SCOPE_SIGNAL | LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
				   : 0,
	};
	return ruleset_made(&attr, "no outbound", err, errlen);
}

int sbx_filter_prepare(struct sbx_filter_prepared *p, const struct sbx_filter_opts *o, char *err,
		       size_t errlen)
{
	static const struct sbx_filter_opts defaults;
	if (!o)
		o = &defaults;
	memset(p, 0, sizeof *p);
	p->ruleset = p->closed_ruleset = -1;
	p->abi = sbx_landlock_abi();
	if (p->abi < 6 && o->require_landlock_scope)
		return err_set(err, errlen,
			       "landlock cannot scope signals and abstract unix sockets here "
			       "(landlock ABI %d; scoping needs ABI 6, Linux 6.12, with landlock "
			       "in the lsm= list)",
			       p->abi);
	int fd = landlock_scope_ruleset(p->abi, err, errlen);
	if (fd == -2)
		return -1;
	p->ruleset = fd;
	fd = landlock_closed_ruleset(p->abi, err, errlen);
	if (fd == -2) {
		sbx_filter_discard(p);
		return -1;
	}
	p->closed_ruleset = fd;
	if (seccomp_build(&p->prog, err, errlen) < 0 ||
	    outbound_build(&p->outbound, err, errlen) < 0) {
		sbx_filter_discard(p);
		return -1;
	}
	return 0;
}

static void close_ruleset(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void free_program(struct sock_fprog *prog)
{
	free(prog->filter);
	prog->filter = NULL;
	prog->len = 0;
}

void sbx_filter_discard(struct sbx_filter_prepared *p)
{
	close_ruleset(&p->ruleset);
	close_ruleset(&p->closed_ruleset);
	free_program(&p->prog);
	free_program(&p->outbound);
}

int sbx_filter_enforce(struct sbx_filter_prepared *p, bool deny_outbound,
		       struct sbx_filter_report *report, char *err, size_t errlen)
{
	struct sbx_filter_report local;
	if (!report)
		report = &local;
	memset(report, 0, sizeof *report);
	report->landlock_abi = p->abi;
	int rc = -1;
	if (!p->prog.filter || !p->outbound.filter) {
		err_set(err, errlen, "seccomp filter: not prepared");
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		err_set(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		goto out;
	}
	/* One landlock layer: the scopes, or the scopes and no TCP. */
	int *ruleset = deny_outbound && p->closed_ruleset >= 0 ? &p->closed_ruleset : &p->ruleset;
	if (*ruleset >= 0) {
		int lr = landlock_enforce(*ruleset); /* closes it */
		*ruleset = -1;
		if (lr < 0) {
			err_set(err, errlen, "landlock_restrict_self (%s): %s",
				deny_outbound ? "no outbound" : "scope", strerror(-lr));
			goto out;
		}
		if (p->abi >= 6)
			report->landlock_scopes = SBX_SCOPE_SIGNAL | SBX_SCOPE_ABSTRACT_UNIX_SOCKET;
		report->landlock_tcp_denied = deny_outbound;
	}
	/* One thread here (the caller's promise): no TSYNC needed. */
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p->prog) < 0) {
		err_set(err, errlen, "seccomp filter: load: %s", strerror(errno));
		goto out;
	}
	if (deny_outbound && syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &p->outbound) < 0) {
		err_set(err, errlen, "seccomp outbound filter: load: %s", strerror(errno));
		goto out;
	}
	report->outbound_denied = deny_outbound;
	rc = 0;
	int n;
	if (report->landlock_scopes)
		n = snprintf(report->summary, sizeof report->summary,
			     "seccomp on, landlock ABI %d scope signal+abstract-unix",
			     report->landlock_abi);
	else if (report->landlock_abi)
		n = snprintf(report->summary, sizeof report->summary,
			     "seccomp on, landlock ABI %d without scoping (needs ABI 6)",
			     report->landlock_abi);
	else
		n = snprintf(report->summary, sizeof report->summary, "seccomp on, no landlock");
	if (deny_outbound && n > 0 && (size_t)n < sizeof report->summary)
		snprintf(report->summary + n, sizeof report->summary - (size_t)n,
			 "; outbound denied (IP sockets%s)",
			 report->landlock_tcp_denied ? ", landlock TCP" : "");
out:
	sbx_filter_discard(p);
	return rc;
}

int sbx_filter_apply(const struct sbx_filter_opts *o, struct sbx_filter_report *report, char *err,
		     size_t errlen)
{
	struct sbx_filter_prepared p;
	if (sbx_filter_prepare(&p, o, err, errlen) < 0)
		return -1;
	return sbx_filter_enforce(&p, o && o->deny_outbound, report, err, errlen);
}

static uint64_t fs_rights(int abi)
{
	uint64_t r = LANDLOCK_ACCESS_FS_REFER - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

/* The rights a rule on a file (not a directory) may carry. */
#define FILE_RIGHTS                                                                                \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |                              \
	 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |                              \
	 LANDLOCK_ACCESS_FS_IOCTL_DEV)

static int add_path_rules(int ruleset, const char *const *paths, uint64_t access, char *err,
			  size_t errlen)
{
	for (size_t i = 0; paths && paths[i]; i++) {
		int fd = open(paths[i], O_PATH | O_CLOEXEC);
		if (fd < 0)
			return err_set(err, errlen, "landlock: %s: %s", paths[i], strerror(errno));
		struct stat st;
		struct landlock_path_beneath_attr rule = {.allowed_access = access,
							  .parent_fd = fd};
		if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
			rule.allowed_access &= FILE_RIGHTS;
		int rc = landlock_add_rule(ruleset, RULE_PATH_BENEATH, &rule);
		int saved = errno;
		close(fd);
		if (rc < 0)
			return err_set(err, errlen, "landlock: rule for %s: %s", paths[i],
				       strerror(saved));
	}
	return 0;
}

int sbx_landlock_fs(const char *const *ro_paths, const char *const *rw_paths, char *err,
		    size_t errlen)
{
	int abi = sbx_landlock_abi();
	if (abi < 1)
		return err_set(err, errlen, "landlock is not available in this kernel");
	struct ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
	int fd = landlock_create_ruleset(&attr, sizeof attr, 0);
	if (fd < 0)
		return err_set(err, errlen, "landlock_create_ruleset (files): %s", strerror(errno));
	const uint64_t ro = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE |
			    LANDLOCK_ACCESS_FS_READ_DIR;
	if (add_path_rules(fd, ro_paths, ro, err, errlen) < 0 ||
	    add_path_rules(fd, rw_paths, attr.handled_access_fs, err, errlen) < 0) {
		close(fd);
		return -1;
	}
	int rc = landlock_enforce(fd);
	if (rc < 0)
		return err_set(err, errlen, "landlock_restrict_self (files): %s", strerror(-rc));
	return 0;
}

int sbx_landlock_net(const uint16_t *allowed_ports, size_t n, char *err, size_t errlen)
{
	int abi = sbx_landlock_abi();
	if (abi < 4)
		return err_set(err, errlen,
			       "landlock ABI %d has no network rules (needs ABI 4, Linux 6.7)",
			       abi);
	struct ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_REFER,
		.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP |
				      LANDLOCK_ACCESS_NET_CONNECT_TCP,
	};
	int fd = landlock_create_ruleset(&attr, sizeof attr, 0);
	if (fd < 0)
		return err_set(err, errlen, "landlock_create_ruleset (network): %s",
			       strerror(errno));
	int rc = allow_reparenting(fd);
	if (rc < 0) {
		close(fd);
		return err_set(err, errlen, "landlock: rule for /: %s", strerror(-rc));
	}
	for (size_t i = 0; i < n; i++) {
		struct net_port_attr rule = {.allowed_access = LANDLOCK_ACCESS_NET_CONNECT_TCP,
					     .port = allowed_ports[i]};
		if (landlock_add_rule(fd, RULE_NET_PORT, &rule) < 0) {
			int saved = errno;
			close(fd);
			return err_set(err, errlen, "landlock: rule for TCP port %u: %s",
				       (unsigned)allowed_ports[i], strerror(saved));
		}
	}
	rc = landlock_enforce(fd);
	if (rc < 0)
		return err_set(err, errlen, "landlock_restrict_self (network): %s", strerror(-rc));
	return 0;
}
