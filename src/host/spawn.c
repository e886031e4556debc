/*
 * Starting instance processes (spawn.h).
 *
 * The sandboxed way is clone(CLONE_VM | CLONE_VFORK | namespaces) with a
 * small stack of its own, which is what posix_spawn does without the
 * namespaces: the host (a big process) is never copied, and it waits only
 * until the child has exec'ed. Until then the child shares the host's
 * memory, so it runs raw system calls only (no libc state, no sanitizer
 * interceptors), with every signal blocked until each one that has a
 * handler here is back at its default.
 */

#include "host/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef THAW_SANITIZE
#include <sanitizer/asan_interface.h>
#endif

#include "common/util.h"
#include "host/host.h"
#include "proto/frame.h"

extern char **environ;

#define SANDBOX_NS (CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS)
#define CHILD_STACK (64u * 1024)

/* The kernel's struct sigaction for rt_sigaction (x86_64 layout). */
struct ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

struct spawn_args {
	const char *path;
	char *const *argv;
	char *const *envp;
	int sock;
	int out;               /* onto fds 1 and 2, or -1 */
	int roots_fd;          /* -1: none */
	const int *cg_fds;     /* cgroup.procs files, to THAW_CGROUP_FD.. */
	int ncg;
	/* CLONE_NEWUSER: the child's maps ("0 ID 1\n"), written by the child
	 * itself before it execs. A process whose uid has no mapping in its
	 * user namespace is not root there, so execve would drop every
	 * capability it has in it and stage 1 could mount nothing. */
	char uid_map[32], gid_map[32];
	volatile int err; /* errno of the step that failed in the child, 0 if none */
};

/* The child shares the host's memory, sanitizer shadow included: its frames
 * must not poison (and never unpoison) the shadow of a stack it leaves
 * behind. */
#define CHILD_CODE __attribute__((no_sanitize("address", "undefined")))

CHILD_CODE static int child_fail(struct spawn_args *a, long rc)
{
	a->err = (int)-rc;
	syscall(SYS_exit, 127);
	return 127;
}

/* Raw: write text to /proc/self/NAME. 0 or -errno. */
CHILD_CODE static long write_self(const char *path, const char *text)
{
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fd;
	size_t n = 0;
	while (text[n])
		n++;
	long rc = syscall(SYS_write, fd, text, n);
	syscall(SYS_close, fd);
	return rc < 0 ? rc : (size_t)rc == n ? 0 : -EIO;
}

/* Raw system calls only: see the top of this file. */
CHILD_CODE static int spawn_child(void *p)
{
	struct spawn_args *a = p;
	for (int s = 1; s <= 64; s++) {
		struct ksigaction old, dfl = {.handler = SIG_DFL};
		if (syscall(SYS_rt_sigaction, s, NULL, &old, 8) != 0)
			continue;
		int reset = old.handler != SIG_DFL && old.handler != SIG_IGN;
		/* What the host ignores that an instance must not. */
		reset |= s == SIGPIPE || s == SIGINT || s == SIGTERM || s == SIGCHLD;
		if (reset)
			syscall(SYS_rt_sigaction, s, &dfl, NULL, 8);
	}
	/* Own process group: a Ctrl-C in the terminal is for the host, which
	 * then stops its instances itself. */
	long rc = syscall(SYS_setpgid, 0, 0);
	if (rc < 0)
		return child_fail(a, rc);
	if (a->uid_map[0]) {
		/* setgroups first: an unprivileged gid_map needs it denied. */
		if ((rc = write_self("/proc/self/setgroups", "deny")) < 0 ||
		    (rc = write_self("/proc/self/uid_map", a->uid_map)) < 0 ||
		    (rc = write_self("/proc/self/gid_map", a->gid_map)) < 0)
			return child_fail(a, rc);
	}
#ifndef THAW_SANITIZE
	/* Deterministic address space for snapshots (else main.c re-execs). */
	long pers = syscall(SYS_personality, 0xffffffffUL);
	if (pers >= 0 && !(pers & ADDR_NO_RANDOMIZE))
		syscall(SYS_personality, (unsigned long)pers | ADDR_NO_RANDOMIZE);
#endif
	for (int fd = 1; a->out >= 0 && fd <= 2; fd++)
		if ((rc = syscall(SYS_dup3, a->out, fd, 0)) < 0)
			return child_fail(a, rc);
	if (a->sock == THAW_WORKER_FD)
		rc = syscall(SYS_fcntl, a->sock, F_SETFD, 0);
	else
		rc = syscall(SYS_dup3, a->sock, THAW_WORKER_FD, 0);
	if (rc < 0)
		return child_fail(a, rc);
	/* Only stdio, the socket and the roots cross over, whatever the host
	 * inherited. The host's fds are close-on-exec, their copies here not. */
	unsigned last = THAW_WORKER_FD;
	if (a->roots_fd >= 0) {
		rc = syscall(SYS_dup3, a->roots_fd, SPAWN_ROOTS_FD, 0);
		if (rc < 0)
			return child_fail(a, rc);
		last = SPAWN_ROOTS_FD;
	}
	for (int i = 0; i < a->ncg; i++) {
		rc = syscall(SYS_dup3, a->cg_fds[i], THAW_CGROUP_FD + i, 0);
		if (rc < 0)
			return child_fail(a, rc);
		last = (unsigned)(THAW_CGROUP_FD + i);
	}
	/* No exec if that fails: the host's database, its listening sockets... */
	rc = syscall(SYS_close_range, last + 1, ~0U, 0);
	if (rc < 0)
		return child_fail(a, rc);
	uint64_t none = 0;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, 8);
	rc = syscall(SYS_execve, a->path, a->argv, a->envp);
	return child_fail(a, rc);
}

int spawn_uses_userns(void)
{
	return geteuid() != 0;
}

/*
 * A sandboxed instance's whole environment: fixed, not the host's (which
 * may hold the operator's credentials), the same for every instance of the
 * host (a snapshot's stack holds it, and a restore needs the same stack
 * top). The sanitizers' settings pass, for the sanitizer build's tests.
 */
static char *const *sandbox_env(void)
{
	static char *env[16];
	if (env[0])
		return env;
	size_t n = 0;
	env[n++] = "PATH=/usr/local/bin:/usr/bin:/bin";
	env[n++] = "HOME=/tmp";
	env[n++] = "LANG=C.UTF-8";
	static const char *const pass[] = {"ASAN_OPTIONS=", "LSAN_OPTIONS=", "UBSAN_OPTIONS=",
					   "TZ=", NULL};
	for (char **e = environ; e && *e; e++)
		for (size_t i = 0; pass[i]; i++)
			if (!strncmp(*e, pass[i], strlen(pass[i])) && n < 15)
				env[n++] = *e;
	env[n] = NULL;
	return env;
}

static pid_t clone_child(struct spawn_args *a, char *err, size_t errlen)
{
	int flags = CLONE_VM | CLONE_VFORK | SANDBOX_NS | SIGCHLD;
	a->uid_map[0] = a->gid_map[0] = 0;
	if (spawn_uses_userns()) {
		flags |= CLONE_NEWUSER;
		snprintf(a->uid_map, sizeof a->uid_map, "0 %u 1\n", (unsigned)geteuid());
		snprintf(a->gid_map, sizeof a->gid_map, "0 %u 1\n", (unsigned)getegid());
	}
	void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		err_set(err, errlen, "mmap: %s", strerror(errno));
		return -1;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	a->err = 0;
	pid_t pid = clone(spawn_child, (char *)stack + CHILD_STACK, flags, a);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
#ifdef THAW_SANITIZE
	ASAN_UNPOISON_MEMORY_REGION(stack, CHILD_STACK);
#endif
	munmap(stack, CHILD_STACK);
	if (pid < 0) {
		err_set(err, errlen, "clone into new namespaces: %s", strerror(e));
		return -1;
	}
	if (a->err) {
		/* It exited before exec: reap it here, nobody else knows it. */
		int e2 = a->err, st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		err_set(err, errlen, "%s: %s", a->path, strerror(e2));
		return -1;
	}
	return pid;
}

static pid_t plain_spawn(int sock, int out, char *const argv[], const int *cg_fds, int ncg,
			 char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	if (out >= 0) {
		posix_spawn_file_actions_adddup2(&fa, out, 1);
		posix_spawn_file_actions_adddup2(&fa, out, 2);
	}
	posix_spawn_file_actions_adddup2(&fa, sock, THAW_WORKER_FD);
	for (int i = 0; i < ncg; i++) /* it joins its control group itself */
		posix_spawn_file_actions_adddup2(&fa, cg_fds[i], THAW_CGROUP_FD + i);
	posix_spawn_file_actions_addclosefrom_np(&fa, ncg ? THAW_CGROUP_FD + ncg : THAW_WORKER_FD + 1);
	posix_spawnattr_init(&at);
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	sigaddset(&deflt, SIGPIPE);
	sigaddset(&deflt, SIGINT);
	sigaddset(&deflt, SIGTERM);
	sigaddset(&deflt, SIGCHLD);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &deflt);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		err_set(err, errlen, "%s", strerror(rc));
		return -1;
	}
	return pid;
}

pid_t spawn_worker(const struct host *h, int sock, int out, int sandbox, const int *cg_fds,
		   int ncg, char *err, size_t errlen)
{
	/* Same argv and environment for every instance: a snapshot's stack
	 * holds them, and restores need the same stack top. */
	char *argv[] = {(char *)self_exe(), "worker", NULL};
	if (!sandbox)
		return plain_spawn(sock, out, argv, cg_fds, ncg, err, errlen);
	struct spawn_args a = {.path = argv[0], .argv = argv, .envp = sandbox_env(), .sock = sock,
			       .out = out, .roots_fd = h->sandbox_roots_fd, .cg_fds = cg_fds, .ncg = ncg};
	return clone_child(&a, err, errlen);
}

int spawn_sandbox_probe(const struct host *h, char *err, size_t errlen)
{
	/* A whole spare: the namespaces, then its own root (sandbox.c's first
	 * stage), then HELLO. What goes wrong in it is on stderr. */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return err_set(err, errlen, "socketpair: %s", strerror(errno));
	pid_t pid = spawn_worker(h, sv[1], -1, 1, NULL, 0, err, errlen);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -1;
	}
	struct pollfd p = {.fd = sv[0], .events = POLLIN};
	char b[64];
	int n = poll(&p, 1, 30000);
	ssize_t got = n > 0 ? read(sv[0], b, sizeof b) : -1;
	close(sv[0]); /* EOF before INIT: it exits */
	if (got <= 0)
		kill(pid, SIGKILL);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (got <= 0)
		return err_set(err, errlen, "a sandboxed instance did not start (%s)",
			       n == 0 ? "no answer in 30 s"
			       : WIFEXITED(st) ? "it exited; its message is above"
					       : "it was killed");
	return 0;
}
