/*
 * Tests for an instance's system-call filter and landlock layers
 * (src/worker/sandbox_filter.c). Each test forks a child that applies the
 * filter to itself and then checks, call by call, the outcome of each family:
 * refused with EPERM (ENOSYS for clone3; SIGSYS for the 32-bit ABIs), or
 * working for what a restored instance and CPython do (threads, fork, vfork,
 * exec, TCP to a loopback listener, the restore's memory calls). The child
 * writes each failed expectation to a pipe and exits 1; the test prints them.
 *
 * The expectations are chosen so that an unfiltered child fails them (a
 * no-op sbx_filter_apply fails all but the tests of what must keep working,
 * of the list and of the two optional rulesets)
 * and so that an unfiltered child, even as root, harms nothing: no signal to
 * the test process but signal 0, mounts on paths that do not exist,
 * namespaces only in children that exit at once.
 */
/* cmocka.h needs these before it */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "worker/sandbox_filter.h"

extern char **environ;

/* ---- the sandboxed child and its report ---- */

static int report_fd = -1;
static int failures;

static void __attribute__((format(printf, 2, 3))) child_fail(int line, const char *fmt, ...)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "  line %d: ", line);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof msg - 2)
		n = (int)sizeof msg - 2;
	msg[n++] = '\n';
	if (write(report_fd, msg, (size_t)n) < 0)
		_exit(99);
	failures++;
}

#define EXPECT(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond))                                                                       \
			child_fail(__LINE__, __VA_ARGS__);                                         \
	} while (0)

/* expr fails with errno want. */
#define EXPECT_ERRNO(expr, want)                                                                   \
	do {                                                                                       \
		errno = 0;                                                                         \
		long rc_ = (long)(expr);                                                           \
		int e_ = errno;                                                                    \
		if (rc_ != -1 || e_ != (want))                                                     \
			child_fail(__LINE__, "%s: got %ld (%s), want -1 (%s)", #expr, rc_,         \
				   strerror(e_), strerror(want));                                  \
	} while (0)

/* expr succeeds (>= 0); its value stays in `last`. */
static long last;
#define EXPECT_OK(expr)                                                                            \
	do {                                                                                       \
		errno = 0;                                                                         \
		last = (long)(expr);                                                               \
		if (last < 0)                                                                      \
			child_fail(__LINE__, "%s: failed: %s", #expr, strerror(errno));            \
	} while (0)

enum { FILTERED = 1, NO_OUTBOUND = 2 /* FILTERED with deny_outbound */ };

/* Forks; the child applies the filter (when `filter`), runs body and exits 0
 * when every expectation held. The test fails with the child's messages
 * otherwise. */
static void run_child(void (*body)(void *), void *arg, int filter)
{
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		report_fd = p[1];
		failures = 0;
		char err[256];
		struct sbx_filter_report rep;
		struct sbx_filter_opts o = {.deny_outbound = filter == NO_OUTBOUND};
		if (filter && sbx_filter_apply(&o, &rep, err, sizeof err) < 0) {
			child_fail(__LINE__, "sbx_filter_apply: %s", err);
			_exit(1);
		}
		body(arg);
		_exit(failures ? 1 : 0);
	}
	close(p[1]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	/* A grandchild left behind may hold the pipe: read what is there. */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	char msg[8192];
	size_t n = 0;
	ssize_t r;
	while (n < sizeof msg - 1 && (r = read(p[0], msg + n, sizeof msg - 1 - n)) > 0)
		n += (size_t)r;
	msg[n] = 0;
	close(p[0]);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (WIFSIGNALED(st))
			fail_msg("sandboxed child killed by signal %d\n%s", WTERMSIG(st), msg);
		fail_msg("sandboxed child: expectations failed:\n%s", msg);
	}
}

/* Forks a grandchild that runs fn and exits with its result; returns its
 * wait status. */
static int in_grandchild(int (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn());
	int st = -1;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return st;
}

/* A raw clone(2) with flags; a child that gets made exits at once. */
static long raw_clone(unsigned long flags)
{
	long rc = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (rc == 0)
		_exit(0);
	if (rc > 0)
		waitpid((pid_t)rc, NULL, 0);
	return rc;
}

/* ---- the list ---- */

static int listed(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (strcmp(*list, name) == 0)
			return 1;
	return 0;
}

static void denied_list_holds_every_dangerous_family(void **state)
{
	(void)state;
	/* clang-format off */
	static const char *const required[] = {
		"ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2",
		"pivot_root", "chroot", "unshare", "setns", "clone3", "bpf", "perf_event_open",
		"keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "init_module",
		"finit_module", "delete_module", "userfaultfd", "io_uring_setup", "io_uring_enter",
		"io_uring_register", "open_by_handle_at", "swapon", "swapoff", "reboot",
		"settimeofday", "clock_settime", "adjtimex", "acct", "quotactl", "lookup_dcookie",
		"move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
		"mount_setattr", "syslog", "vhangup", "iopl", "ioperm", NULL};
	/* clang-format on */
	const char *const *denied = sbx_filter_denied();
	for (size_t i = 0; required[i]; i++)
		if (!listed(denied, required[i]))
			fail_msg("%s is not in sbx_filter_denied()", required[i]);
	const char *const *cond = sbx_filter_conditional();
	assert_true(listed(cond, "clone") && listed(cond, "personality") && listed(cond, "socket"));
	/* Each name is a real x86_64 system call (libseccomp 2.5.4 predates
	 * open_tree_attr). */
	for (size_t i = 0; denied[i]; i++)
		if (strcmp(denied[i], "open_tree_attr") != 0 &&
		    seccomp_syscall_resolve_name(denied[i]) < 0)
			fail_msg("%s: not a system call libseccomp knows", denied[i]);
}

/* Every listed call, with every argument all ones (no valid pointer, fd,
 * pid or flag set: harmless if the filter were missing), is refused. */
static void sweep_denied(void *arg)
{
	(void)arg;
	setsid(); /* no controlling terminal: vhangup could hang up nothing */
	const char *const *denied = sbx_filter_denied();
	for (size_t i = 0; denied[i]; i++) {
		int nr = strcmp(denied[i], "open_tree_attr") == 0
				 ? 467
				 : seccomp_syscall_resolve_name(denied[i]);
		int want = strcmp(denied[i], "clone3") == 0 ? ENOSYS : EPERM;
		errno = 0;
		long rc = syscall(nr, -1L, -1L, -1L, -1L, -1L, -1L);
		int e = errno;
		if (rc != -1 || e != want)
			child_fail(__LINE__, "%s: got %ld (%s), want -1 (%s)", denied[i], rc,
				   strerror(e), strerror(want));
	}
}

static void every_denied_call_fails_with_eperm(void **state)
{
	(void)state;
	run_child(sweep_denied, NULL, FILTERED);
}

/* ---- families ---- */

static __attribute__((noreturn)) void sleep_forever(void)
{
	for (;;)
		pause();
}

/* In a grandchild: unfiltered, it would become its parent's tracee. */
static int traceme_refused(void)
{
	errno = 0;
	return ptrace(PTRACE_TRACEME, 0, NULL, NULL) == -1 && errno == EPERM ? 0 : 1;
}

static void other_processes(void *arg)
{
	(void)arg;
	int st = in_grandchild(traceme_refused);
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ptrace(PTRACE_TRACEME) was not refused");
	pid_t child = fork();
	if (child == 0)
		sleep_forever();
	EXPECT_ERRNO(ptrace(PTRACE_ATTACH, child, NULL, NULL), EPERM);
	EXPECT_ERRNO(ptrace(PTRACE_SEIZE, child, NULL, NULL), EPERM);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);

	char src[16] = "secret", dst[16];
	struct iovec local = {dst, sizeof dst}, remote = {src, sizeof src};
	EXPECT_ERRNO(process_vm_readv(getpid(), &local, 1, &remote, 1, 0), EPERM);
	EXPECT_ERRNO(process_vm_writev(getpid(), &local, 1, &remote, 1, 0), EPERM);
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	EXPECT(pidfd >= 0, "pidfd_open: %s", strerror(errno));
	EXPECT_ERRNO(syscall(SYS_pidfd_getfd, pidfd, 0, 0), EPERM);
	EXPECT_ERRNO(syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 1), EPERM);
}

static void ptrace_and_other_processes_memory_are_refused(void **state)
{
	(void)state;
	run_child(other_processes, NULL, FILTERED);
}

/* Each unshare in a grandchild of its own, so that one that (unfiltered)
 * succeeded cannot change what the next one meets. */
static unsigned long unshare_flags;
static int unshare_refused(void)
{
	errno = 0;
	return unshare((int)unshare_flags) == -1 && errno == EPERM ? 0 : 1;
}

static void namespaces_and_mounts(void *arg)
{
	(void)arg;
	/* Paths that do not exist: unfiltered, these fail with ENOENT. */
	EXPECT_ERRNO(mount("none", "/nonexistent-thaw-sbx", "tmpfs", 0, NULL), EPERM);
	EXPECT_ERRNO(umount2("/nonexistent-thaw-sbx", MNT_DETACH), EPERM);
	EXPECT_ERRNO(syscall(SYS_pivot_root, "/nonexistent-thaw-sbx", "/nonexistent-thaw-sbx"),
		     EPERM);
	EXPECT_ERRNO(chroot("/"), EPERM);
	EXPECT_ERRNO(syscall(SYS_fsopen, "tmpfs", 0), EPERM);
	EXPECT_ERRNO(syscall(SYS_open_tree, AT_FDCWD, "/", 0), EPERM);
	int ns = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	EXPECT(ns >= 0, "open /proc/self/ns/uts: %s", strerror(errno));
	EXPECT_ERRNO(setns(ns, CLONE_NEWUTS), EPERM);
	static const unsigned long unshares[] = {CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS,
						 CLONE_FILES};
	for (size_t i = 0; i < sizeof unshares / sizeof unshares[0]; i++) {
		unshare_flags = unshares[i];
		int st = in_grandchild(unshare_refused);
		EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "unshare(0x%lx) was not refused",
		       unshares[i]);
	}

	static const unsigned long ns_flags[] = {CLONE_NEWUSER,  CLONE_NEWNS,  CLONE_NEWPID,
						 CLONE_NEWNET,   CLONE_NEWUTS, CLONE_NEWIPC,
						 CLONE_NEWCGROUP};
	for (size_t i = 0; i < sizeof ns_flags / sizeof ns_flags[0]; i++) {
		errno = 0;
		long rc = raw_clone(ns_flags[i]);
		EXPECT(rc == -1 && errno == EPERM, "clone(0x%lx): got %ld (%s), want EPERM",
		       ns_flags[i], rc, strerror(errno));
	}
	/* A thread's flags with a namespace flag among them: still refused. */
	errno = 0;
	long rc = raw_clone(CLONE_NEWUSER | CLONE_FS | CLONE_FILES);
	EXPECT(rc == -1 && errno == EPERM, "clone(NEWUSER|FS|FILES): %ld (%s)", rc,
	       strerror(errno));
	/* clone3: ENOSYS, whatever it carries. */
	struct {
		uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	} args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
	EXPECT_ERRNO(syscall(SYS_clone3, &args, sizeof args), ENOSYS);
}

static void namespaces_and_mounts_are_refused(void **state)
{
	(void)state;
	run_child(namespaces_and_mounts, NULL, FILTERED);
}

static void kernel_surface(void *arg)
{
	(void)arg;
	union bpf_attr battr;
	memset(&battr, 0, sizeof battr);
	battr.map_type = BPF_MAP_TYPE_ARRAY;
	battr.key_size = 4;
	battr.value_size = 4;
	battr.max_entries = 1;
	EXPECT_ERRNO(syscall(SYS_bpf, BPF_MAP_CREATE, &battr, sizeof battr), EPERM);

	struct perf_event_attr pattr;
	memset(&pattr, 0, sizeof pattr);
	pattr.type = PERF_TYPE_SOFTWARE;
	pattr.size = sizeof pattr;
	pattr.config = PERF_COUNT_SW_TASK_CLOCK;
	pattr.disabled = 1;
	pattr.exclude_kernel = 1;
	EXPECT_ERRNO(syscall(SYS_perf_event_open, &pattr, 0, -1, -1, 0), EPERM);

	EXPECT_ERRNO(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0),
		     EPERM);
	EXPECT_ERRNO(syscall(SYS_add_key, "user", "thaw-sbx", "x", 1, KEY_SPEC_PROCESS_KEYRING),
		     EPERM);
	EXPECT_ERRNO(syscall(SYS_request_key, "user", "thaw-sbx-none", NULL, 0), EPERM);
	EXPECT_ERRNO(syscall(SYS_userfaultfd, O_CLOEXEC), EPERM);
	struct io_uring_params up;
	memset(&up, 0, sizeof up);
	EXPECT_ERRNO(syscall(SYS_io_uring_setup, 1, &up), EPERM);
	char ldt[16];
	EXPECT_ERRNO(syscall(SYS_modify_ldt, 0, ldt, sizeof ldt), EPERM);
	EXPECT_ERRNO(fanotify_init(FAN_CLASS_NOTIF, O_RDONLY), EPERM);

	struct {
		struct file_handle h;
		unsigned char bytes[128];
	} fh = {.h.handle_bytes = 128};
	int mount_id;
	EXPECT_ERRNO(name_to_handle_at(AT_FDCWD, "/", &fh.h, &mount_id, 0), EPERM);
	EXPECT_ERRNO(open_by_handle_at(AT_FDCWD, &fh.h, O_RDONLY), EPERM);
}

static void bpf_perf_keys_userfaultfd_io_uring_are_refused(void **state)
{
	(void)state;
	run_child(kernel_surface, NULL, FILTERED);
}

static void personalities(void *arg)
{
	(void)arg;
	EXPECT_OK(personality(0xffffffff));
	long before = last;
	EXPECT_OK(personality(0));
	EXPECT(last == before, "personality(0) returned %ld, the query %ld", last, before);
	EXPECT_OK(personality(0xffffffff));
	EXPECT(last == 0, "personality is 0x%lx after personality(0)", last);
	EXPECT_OK(syscall(SYS_personality, 0xffffffffUL));

	static const unsigned long refused[] = {PER_BSD,
						ADDR_NO_RANDOMIZE,
						READ_IMPLIES_EXEC,
						PER_LINUX32,
						UNAME26,
						ADDR_COMPAT_LAYOUT,
						1,
						0x80000000UL,
						0x7fffffffUL,
						0xfffffffeUL,
						0x0040000UL | PER_LINUX};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		errno = 0;
		long rc = syscall(SYS_personality, refused[i]);
		EXPECT(rc == -1 && errno == EPERM, "personality(0x%lx): got %ld (%s), want EPERM",
		       refused[i], rc, strerror(errno));
	}
	/* The kernel reads the low 32 bits, and so does the filter: the upper
	 * half neither hides a change nor spoils the query (ctypes passes
	 * personality(0xffffffff) as a sign-extended -1). */
	EXPECT_ERRNO(syscall(SYS_personality, 0x100000000UL | PER_BSD), EPERM);
	EXPECT_ERRNO(syscall(SYS_personality, 0xffffffff00000000UL | ADDR_NO_RANDOMIZE), EPERM);
	EXPECT_OK(syscall(SYS_personality, -1L));
	EXPECT_OK(syscall(SYS_personality, 0x1ffffffffUL));
	EXPECT_OK(syscall(SYS_personality, 0x100000000UL));
	EXPECT_OK(personality(0xffffffff));
	EXPECT(last == 0, "personality changed to 0x%lx", last);
}

static void personality_allows_only_the_query_and_per_linux(void **state)
{
	(void)state;
	run_child(personalities, NULL, FILTERED);
}

static void sockets(void *arg)
{
	(void)arg;
	EXPECT_ERRNO(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), EPERM);
	EXPECT_ERRNO(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_RAW), EPERM);
	EXPECT_ERRNO(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6), EPERM);
	EXPECT_ERRNO(socket(AF_INET, SOCK_PACKET, htons(0x0003)), EPERM);
	EXPECT_ERRNO(socket(AF_PACKET, SOCK_RAW, htons(0x0003)), EPERM);
	EXPECT_ERRNO(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(0x0003)), EPERM);
	EXPECT_ERRNO(socket(AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG), EPERM);
	EXPECT_ERRNO(socket(AF_NETLINK, SOCK_DGRAM, NETLINK_NETFILTER), EPERM);
	EXPECT_ERRNO(socket(AF_ALG, SOCK_SEQPACKET, 0), EPERM);
	EXPECT_ERRNO(socket(AF_VSOCK, SOCK_STREAM, 0), EPERM);
	EXPECT_ERRNO(socket(AF_KEY, SOCK_RAW, 2), EPERM);
	EXPECT_ERRNO(socket(AF_UNSPEC, SOCK_STREAM, 0), EPERM);
	/* The upper half of the register does not hide a family. */
	EXPECT_ERRNO(syscall(SYS_socket, 0x100000000L | AF_PACKET, SOCK_RAW, 0), EPERM);
	int sv[2];
	EXPECT_ERRNO(socketpair(AF_INET, SOCK_STREAM, 0, sv), EPERM);
	/* On /dev/null: without the filter the kernel answers ENOTTY there,
	 * and nothing reaches a real terminal. */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	EXPECT_ERRNO(ioctl(null, TIOCSTI, "x"), EPERM);
	EXPECT_ERRNO(ioctl(null, TIOCLINUX, &(char){2}), EPERM);
	close(null);

	/* What a worker uses. */
	static const int ok[][3] = {
		{AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0},
		{AF_INET, SOCK_DGRAM, 0},
		{AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0},
		{AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
		{AF_UNIX, SOCK_STREAM, 0},
		{AF_UNIX, SOCK_DGRAM, 0},
		{AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE},
		{AF_NETLINK, SOCK_DGRAM, NETLINK_ROUTE},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int fd = socket(ok[i][0], ok[i][1], ok[i][2]);
		EXPECT(fd >= 0, "socket(%d, 0x%x, %d): %s", ok[i][0], ok[i][1], ok[i][2],
		       strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	EXPECT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* getaddrinfo with AI_ADDRCONFIG reads the addresses through netlink. */
	struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG, .ai_socktype = SOCK_STREAM}, *res;
	int g = getaddrinfo("127.0.0.1", "80", &hints, &res);
	EXPECT(g == 0, "getaddrinfo: %s", gai_strerror(g));
	if (g == 0)
		freeaddrinfo(res);
}

static void raw_packet_and_exotic_sockets_are_refused(void **state)
{
	(void)state;
	run_child(sockets, NULL, FILTERED);
}

/* ---- what must keep working ---- */

static int tcp_listener(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static int tcp_connect(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static void connect_and_talk(void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	EXPECT_OK(connect(fd, (struct sockaddr *)&a, sizeof a));
	EXPECT_OK(write(fd, "ping", 4));
	char buf[4];
	EXPECT(read(fd, buf, 4) == 4 && memcmp(buf, "pong", 4) == 0, "no pong");
	close(fd);
}

static void tcp_to_a_loopback_listener_works(void **state)
{
	(void)state;
	uint16_t port;
	int lfd = tcp_listener(&port);
	pid_t server = fork();
	if (server == 0) {
		int c = accept(lfd, NULL, NULL);
		char buf[4];
		_exit(c >= 0 && read(c, buf, 4) == 4 && write(c, "pong", 4) == 4 ? 0 : 1);
	}
	run_child(connect_and_talk, &port, FILTERED);
	int st;
	waitpid(server, &st, 0);
	close(lfd);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void *thread_main(void *arg)
{
	return arg;
}

static int grandchild_is_filtered(void)
{
	errno = 0;
	if (unshare(CLONE_NEWUSER) == 0 || errno != EPERM)
		return 1;
	if (socket(AF_PACKET, SOCK_RAW, 0) >= 0 || errno != EPERM)
		return 2;
	return 0;
}

static void threads_and_children(void *arg)
{
	(void)arg;
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		EXPECT(pthread_create(&t[i], NULL, thread_main, NULL) == 0, "pthread_create");
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);

	int st = in_grandchild(grandchild_is_filtered);
	EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork: grandchild status 0x%x", st);

	/* vfork, as CPython's _posixsubprocess uses it, then exec. */
	pid_t pid = vfork();
	if (pid == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	EXPECT(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "vfork + exec /bin/true: status 0x%x", st);

	/* posix_spawn (clone3, then clone); what it runs is still filtered and
	 * has no_new_privs. */
	char *argv[] = {"/bin/sh", "-c",
			"grep -q '^Seccomp:[[:space:]]*2' /proc/self/status && "
			"grep -q '^NoNewPrivs:[[:space:]]*1' /proc/self/status",
			NULL};
	int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
	EXPECT(rc == 0, "posix_spawn: %s", strerror(rc));
	EXPECT(rc == 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "an exec'd grandchild is not in seccomp mode 2 with no_new_privs (0x%x)", st);
}

static void threads_fork_vfork_and_exec_work_and_stay_filtered(void **state)
{
	(void)state;
	run_child(threads_and_children, NULL, FILTERED);
}

static void restore_calls(void *arg)
{
	(void)arg;
	size_t len = 1 << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT(p != MAP_FAILED, "mmap: %s", strerror(errno));
	EXPECT_OK(madvise(p, len, 23 /* MADV_POPULATE_WRITE */));
	EXPECT_OK(madvise(p, len, MADV_DONTNEED));
	EXPECT_OK(mprotect(p, len, PROT_READ));
	char *q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
	EXPECT(q != MAP_FAILED, "mremap: %s", strerror(errno));
	EXPECT_OK(munmap(q, 2 * len));
	unsigned long fs;
	EXPECT_OK(syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs));
	EXPECT_OK(syscall(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, fs));
	struct sigaction sa = {.sa_handler = SIG_IGN}, old;
	EXPECT_OK(sigaction(SIGUSR2, &sa, &old));
	EXPECT_OK(prctl(PR_SET_NAME, "thaw-sbx"));
	int *tid_addr;
	EXPECT_OK(prctl(PR_GET_TID_ADDRESS, &tid_addr));
	EXPECT(sbrk(0) != (void *)-1, "sbrk");
	/* rseq is registered by glibc already: the kernel answers EBUSY or
	 * EINVAL to a second registration, never the filter's EPERM. */
	errno = 0;
	long rc = syscall(SYS_rseq, NULL, 32, 0, 0x53053053);
	EXPECT(rc == 0 || errno != EPERM, "rseq: refused with EPERM");
	EXPECT_OK(personality(personality(0xffffffff) & ~(unsigned)ADDR_NO_RANDOMIZE));
	EXPECT(ioctl(0, FIONREAD, &(int){0}) == 0 || errno != EPERM, "ioctl(FIONREAD): EPERM");
}

static void snapshot_restore_calls_work(void **state)
{
	(void)state;
	run_child(restore_calls, NULL, FILTERED);
}

/* ---- no outbound network (deny_outbound) ---- */

struct outbound_case {
	uint16_t port; /* a loopback TCP listener of the parent's */
	int tcp;       /* a TCP socket made before the filter (as one passed in would be) */
	int udp;       /* a UDP socket of the parent's, bound on loopback */
	uint16_t udp_port;
};

static void no_outbound(void *arg)
{
	const struct outbound_case *c = arg;
	/* Every IP socket, whatever its type: EACCES from the second filter. */
	static const int refused[][3] = {
		{AF_INET, SOCK_STREAM, 0},
		{AF_INET6, SOCK_STREAM, 0},
		{AF_INET, SOCK_DGRAM, 0},
		{AF_INET6, SOCK_DGRAM, IPPROTO_UDP},
		{AF_INET, SOCK_STREAM, IPPROTO_SCTP},
		{AF_INET, SOCK_SEQPACKET, 0},
		{AF_INET, SOCK_RAW, IPPROTO_ICMP},
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		EXPECT_ERRNO(socket(refused[i][0], refused[i][1] | SOCK_CLOEXEC, refused[i][2]),
			     EACCES);
	EXPECT_ERRNO(tcp_connect(c->port), EACCES);
	/* The TCP socket it had before: landlock refuses its connect and bind. */
	if (sbx_landlock_abi() >= 4) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons(c->port),
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		EXPECT_ERRNO(connect(c->tcp, (struct sockaddr *)&a, sizeof a), EACCES);
		a.sin_port = 0;
		EXPECT_ERRNO(bind(c->tcp, (struct sockaddr *)&a, sizeof a), EACCES);
	}
	/* What stays: unix sockets (the host's, socketpair, asyncio's
	 * self-pipe) and netlink route (getaddrinfo's address reads). */
	int sv[2];
	EXPECT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	EXPECT(write(sv[0], "x", 1) == 1 && read(sv[1], (char[1]){0}, 1) == 1, "socketpair");
	close(sv[0]);
	close(sv[1]);
	EXPECT_OK(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
	close((int)last);
	EXPECT_OK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
	close((int)last);
	struct addrinfo hints = {.ai_flags = AI_ADDRCONFIG, .ai_socktype = SOCK_STREAM}, *res;
	int g = getaddrinfo("127.0.0.1", "80", &hints, &res);
	EXPECT(g == 0, "getaddrinfo: %s", gai_strerror(g));
	if (g == 0)
		freeaddrinfo(res);
}

static void outbound_denied_refuses_every_ip_socket_and_keeps_unix_ones(void **state)
{
	(void)state;
	struct outbound_case c;
	int lfd = tcp_listener(&c.port);
	c.tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.tcp >= 0);
	run_child(no_outbound, &c, NO_OUTBOUND);
	/* Nothing reached the listener. */
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	assert_int_equal(accept(lfd, NULL, NULL), -1);
	assert_int_equal(errno, EAGAIN);
	close(c.tcp);
	close(lfd);
}

/* The same process without deny_outbound (the default): the listener is
 * reached, UDP is sent. The control of the test above. */
static void outbound_allowed(void *arg)
{
	const struct outbound_case *c = arg;
	EXPECT_OK(tcp_connect(c->port));
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons(c->udp_port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	EXPECT_OK(sendto(fd, "u", 1, 0, (struct sockaddr *)&a, sizeof a));
	close(fd);
}

static void outbound_allowed_by_default(void **state)
{
	(void)state;
	struct outbound_case c = {.tcp = -1};
	int lfd = tcp_listener(&c.port);
	c.udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	assert_int_equal(bind(c.udp, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(c.udp, (struct sockaddr *)&a, &len), 0);
	c.udp_port = ntohs(a.sin_port);
	run_child(outbound_allowed, &c, FILTERED);
	char b;
	assert_int_equal(recv(c.udp, &b, 1, MSG_DONTWAIT), 1);
	int conn = accept(lfd, NULL, NULL);
	assert_true(conn >= 0);
	close(conn);
	close(c.udp);
	close(lfd);
}

/* ---- landlock scoping ---- */

static void signals(void *arg)
{
	(void)arg;
	EXPECT_ERRNO(kill(getppid(), 0), EPERM);
	int pidfd = (int)syscall(SYS_pidfd_open, getppid(), 0);
	EXPECT(pidfd >= 0, "pidfd_open(parent): %s", strerror(errno));
	EXPECT_ERRNO(syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0), EPERM);

	/* Its own child is inside its domain. */
	pid_t child = fork();
	if (child == 0)
		sleep_forever();
	EXPECT_OK(kill(child, 0));
	EXPECT_OK(kill(child, SIGTERM));
	int st = 0;
	waitpid(child, &st, 0);
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "child status 0x%x", st);
	EXPECT_OK(kill(getpid(), 0));
}

static void signals_reach_only_the_sandbox_domain(void **state)
{
	(void)state;
	if (sbx_landlock_abi() < 6)
		skip();
	run_child(signals, NULL, FILTERED);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
	memset(a, 0, sizeof *a);
	a->sun_family = AF_UNIX;
	size_t n = strlen(name);
	memcpy(a->sun_path + 1, name, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void abstract_sockets(void *arg)
{
	const char *outside = arg;
	struct sockaddr_un a;
	socklen_t len = abstract_addr(&a, outside);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_ERRNO(connect(fd, (struct sockaddr *)&a, len), EPERM);
	close(fd);

	/* One bound inside the domain works. */
	char inside[64];
	snprintf(inside, sizeof inside, "thaw-sbx-inside-%d", (int)getpid());
	len = abstract_addr(&a, inside);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_OK(bind(l, (struct sockaddr *)&a, len));
	EXPECT_OK(listen(l, 1));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	EXPECT_OK(connect(fd, (struct sockaddr *)&a, len));
	close(fd);
	close(l);
}

static void abstract_unix_sockets_outside_are_unreachable(void **state)
{
	(void)state;
	if (sbx_landlock_abi() < 6)
		skip();
	char name[64];
	snprintf(name, sizeof name, "thaw-sbx-outside-%d", (int)getpid());
	struct sockaddr_un a;
	socklen_t len = abstract_addr(&a, name);
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, len), 0);
	assert_int_equal(listen(l, 1), 0);
	run_child(abstract_sockets, name, FILTERED);
	close(l);
}

static struct sbx_filter_report applied(bool deny_outbound)
{
	int abi = sbx_landlock_abi();
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct sbx_filter_opts o = {.require_landlock_scope = abi >= 6,
					    .deny_outbound = deny_outbound};
		struct sbx_filter_report rep;
		char err[256];
		if (sbx_filter_apply(&o, &rep, err, sizeof err) < 0)
			_exit(1);
		ssize_t w = write(p[1], &rep, sizeof rep);
		_exit(w == (ssize_t)sizeof rep ? 0 : 1);
	}
	close(p[1]);
	struct sbx_filter_report rep;
	assert_int_equal(read(p[0], &rep, sizeof rep), sizeof rep);
	close(p[0]);
	waitpid(pid, NULL, 0);
	return rep;
}

static void report_names_what_was_applied(void **state)
{
	(void)state;
	int abi = sbx_landlock_abi();
	struct sbx_filter_report rep = applied(false);
	assert_int_equal(rep.landlock_abi, abi);
	assert_false(rep.outbound_denied);
	assert_false(rep.landlock_tcp_denied);
	char want[sizeof rep.summary + 64];
	if (abi >= 6) {
		assert_int_equal(rep.landlock_scopes,
				 SBX_SCOPE_SIGNAL | SBX_SCOPE_ABSTRACT_UNIX_SOCKET);
		snprintf(want, sizeof want,
			 "seccomp on, landlock ABI %d scope signal+abstract-unix", abi);
		assert_string_equal(rep.summary, want);
	} else {
		assert_int_equal(rep.landlock_scopes, 0);
		assert_true(strncmp(rep.summary, "seccomp on, ", 12) == 0);
	}

	struct sbx_filter_report closed = applied(true);
	assert_true(closed.outbound_denied);
	assert_int_equal(closed.landlock_tcp_denied, abi >= 4);
	assert_int_equal(closed.landlock_scopes, rep.landlock_scopes);
	snprintf(want, sizeof want, "%s; outbound denied (IP sockets%s)", rep.summary,
		 abi >= 4 ? ", landlock TCP" : "");
	assert_string_equal(closed.summary, want);
}

/* ---- other ABIs ---- */

static long int80_getpid(void)
{
	long rc;
	/* The 64-bit kernel clears r8-r11 on the way back from int $0x80. */
	__asm__ volatile("int $0x80"
			 : "=a"(rc)
			 : "a"(20L /* i386 getpid */)
			 : "memory", "r8", "r9", "r10", "r11");
	return rc;
}

static int int80_returns_pid(void)
{
	return int80_getpid() == getpid() ? 0 : 1;
}

static int x32_getpid(void)
{
	syscall(0x40000000 | SYS_getpid);
	return 0;
}

static void sandboxed_int80(void *arg)
{
	int ia32 = *(int *)arg, st;
	if (ia32) {
		st = in_grandchild(int80_returns_pid);
		EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
		       "int $0x80 getpid: status 0x%x, want killed by SIGSYS", st);
	}
	st = in_grandchild(x32_getpid);
	EXPECT(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
	       "x32 getpid: status 0x%x, want killed by SIGSYS", st);
}

static void i386_and_x32_system_calls_kill_the_process(void **state)
{
	(void)state;
	/* Without IA-32 emulation, int $0x80 faults (SIGSEGV) with or without
	 * the filter; then only x32 is tested. */
	int st = in_grandchild(int80_returns_pid);
	int ia32 = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ia32)
		print_message("IA-32 emulation is off here (status 0x%x): "
			      "int $0x80 faults anyway\n",
			      st);
	run_child(sandboxed_int80, &ia32, FILTERED);
}

/* ---- landlock filesystem and network rulesets ---- */

static char tmpdir[64];

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int can_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static void files(void *arg)
{
	(void)arg;
	char ro[128], rw[128], out[128], path[256], path2[256], err[256];
	snprintf(ro, sizeof ro, "%s/ro", tmpdir);
	snprintf(rw, sizeof rw, "%s/rw", tmpdir);
	snprintf(out, sizeof out, "%s/out", tmpdir);

	const char *const missing[] = {"/nonexistent-thaw-sbx", NULL};
	EXPECT(sbx_landlock_fs(missing, NULL, err, sizeof err) == -1 &&
		       strstr(err, "/nonexistent-thaw-sbx"),
	       "a missing path: %s", err);

	/* A network layer between the filter's and this one: neither may stop
	 * renames beneath rw (see allow_reparenting in sandbox_filter.c). */
	const uint16_t port = 443;
	if (sbx_landlock_abi() >= 4)
		EXPECT_OK(sbx_landlock_net(&port, 1, err, sizeof err));

	const char *const ro_paths[] = {ro, "/usr", "/bin", NULL};
	const char *const rw_paths[] = {rw, "/dev/null", NULL};
	if (sbx_landlock_fs(ro_paths, rw_paths, err, sizeof err) < 0) {
		child_fail(__LINE__, "sbx_landlock_fs: %s", err);
		return;
	}
	snprintf(path, sizeof path, "%s/f", ro);
	EXPECT(can_open(path, O_RDONLY) == 0, "read beneath ro");
	EXPECT(can_open(path, O_WRONLY) == -EACCES, "write beneath ro");
	EXPECT(can_open(ro, O_RDONLY | O_DIRECTORY) == 0, "list ro");
	snprintf(path, sizeof path, "%s/new", ro);
	EXPECT(can_open(path, O_WRONLY | O_CREAT) == -EACCES, "create beneath ro");

	snprintf(path, sizeof path, "%s/f", rw);
	EXPECT(can_open(path, O_RDWR | O_TRUNC) == 0, "write beneath rw");
	snprintf(path, sizeof path, "%s/sub", rw);
	EXPECT_OK(mkdir(path, 0755));
	snprintf(path, sizeof path, "%s/sub/new", rw);
	EXPECT(can_open(path, O_WRONLY | O_CREAT) == 0, "create beneath rw");
	snprintf(path2, sizeof path2, "%s/moved", rw);
	EXPECT_OK(rename(path, path2)); /* to another directory */
	snprintf(path, sizeof path, "%s/sub/linked", rw);
	EXPECT_OK(link(path2, path));
	EXPECT_OK(unlink(path2));
	EXPECT_OK(unlink(path));
	EXPECT(can_open("/dev/null", O_WRONLY) == 0, "write /dev/null (an rw file)");

	snprintf(path, sizeof path, "%s/f", out);
	EXPECT(can_open(path, O_RDONLY) == -EACCES, "read outside");
	EXPECT(can_open("/etc/passwd", O_RDONLY) == -EACCES, "read /etc/passwd");
	EXPECT(can_open(tmpdir, O_RDONLY | O_DIRECTORY) == -EACCES, "list the parent");

	pid_t pid;
	char *argv[] = {"true", NULL};
	int st, rc = posix_spawn(&pid, "/usr/bin/true", NULL, NULL, argv, environ);
	EXPECT(rc == 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "exec /usr/bin/true beneath ro: %s, status 0x%x", strerror(rc), st);
	snprintf(path, sizeof path, "%s/f", out);
	char *cat[] = {"cat", path, NULL};
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, devnull, 2);
	rc = posix_spawn(&pid, "/bin/cat", &fa, NULL, cat, environ);
	posix_spawn_file_actions_destroy(&fa);
	EXPECT(rc == 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	       "a child reads outside: status 0x%x", st);
}

static void landlock_fs_confines_files_to_the_listed_trees(void **state)
{
	(void)state;
	if (sbx_landlock_abi() < 1)
		skip();
	char dir[128];
	strcpy(tmpdir, "/tmp/thaw-sbx-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	static const char *const sub[] = {"ro", "rw", "out"};
	for (int i = 0; i < 3; i++) {
		snprintf(dir, sizeof dir, "%s/%s", tmpdir, sub[i]);
		assert_int_equal(mkdir(dir, 0755), 0);
		write_text(dir, "f", "data");
	}
	run_child(files, NULL, FILTERED);
	assert_int_equal(remove_tree(tmpdir), 0);
}

static void network(void *arg)
{
	const uint16_t *ports = arg; /* allowed, refused */
	char err[256];
	if (sbx_landlock_net(ports, 1, err, sizeof err) < 0) {
		child_fail(__LINE__, "sbx_landlock_net: %s", err);
		return;
	}
	EXPECT_OK(tcp_connect(ports[0]));
	EXPECT_ERRNO(tcp_connect(ports[1]), EACCES);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	EXPECT_ERRNO(bind(fd, (struct sockaddr *)&a, sizeof a), EACCES);
	close(fd);
	/* UDP is not landlock's. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	EXPECT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
	close(fd);
	/* A second call narrows: nothing at all. */
	EXPECT_OK(sbx_landlock_net(NULL, 0, err, sizeof err));
	EXPECT_ERRNO(tcp_connect(ports[0]), EACCES);
}

static void landlock_net_allows_connect_to_listed_ports_only(void **state)
{
	(void)state;
	if (sbx_landlock_abi() < 4)
		skip();
	uint16_t ports[2];
	int a = tcp_listener(&ports[0]), b = tcp_listener(&ports[1]);
	run_child(network, ports, FILTERED);
	close(a);
	close(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(denied_list_holds_every_dangerous_family),
		cmocka_unit_test(every_denied_call_fails_with_eperm),
		cmocka_unit_test(ptrace_and_other_processes_memory_are_refused),
		cmocka_unit_test(namespaces_and_mounts_are_refused),
		cmocka_unit_test(bpf_perf_keys_userfaultfd_io_uring_are_refused),
		cmocka_unit_test(personality_allows_only_the_query_and_per_linux),
		cmocka_unit_test(raw_packet_and_exotic_sockets_are_refused),
		cmocka_unit_test(tcp_to_a_loopback_listener_works),
		cmocka_unit_test(outbound_denied_refuses_every_ip_socket_and_keeps_unix_ones),
		cmocka_unit_test(outbound_allowed_by_default),
		cmocka_unit_test(threads_fork_vfork_and_exec_work_and_stay_filtered),
		cmocka_unit_test(snapshot_restore_calls_work),
		cmocka_unit_test(signals_reach_only_the_sandbox_domain),
		cmocka_unit_test(abstract_unix_sockets_outside_are_unreachable),
		cmocka_unit_test(report_names_what_was_applied),
		cmocka_unit_test(i386_and_x32_system_calls_kill_the_process),
		cmocka_unit_test(landlock_fs_confines_files_to_the_listed_trees),
		cmocka_unit_test(landlock_net_allows_connect_to_listed_ports_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
