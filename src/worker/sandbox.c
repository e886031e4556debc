/*
 * The instance's side of the sandbox: see sandbox.h for what it builds.
 *
 * Two stages, so that every file the process maps has, in /proc/self/maps,
 * the same path it has inside the sandbox (a snapshot records its
 * libraries by path and a restore checks them by path):
 *
 *   1. sbx_stage1, in a spare, before HELLO: the parts every worker shares
 *      (/usr, /etc files, /dev, /proc, the thaw executable) are bound into a
 *      new root, the old root is kept at /.old, the process pivots into the
 *      new root and execs itself again from there. Spares are made ahead of
 *      need, so this costs no cold start anything.
 *   2. sbx_enter, after INIT: the worker's own parts (its version, the SDK,
 *      the image) are bound from /.old, which is then detached; /tmp is
 *      mounted at its size; the root goes read-only; the uid drops.
 *
 * Paths under /.old are opened with openat2(RESOLVE_IN_ROOT), so a symbolic
 * link on the host resolves as it would on the host, not in the new root.
 */

#include "worker/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/frame.h"
#include "common/util.h"
#include "worker/sandbox_filter.h"

extern char **environ;

/* Where the new root is assembled in stage 1 (in this mount namespace
 * only), where the old root goes until it is detached, and the mark of a
 * process past stage 1. */
#define STAGE "/tmp"
#define OLD "/.old"
#define MARK "/.thaw"
#define ROOTS "/.roots"

/* The few /etc files a process needs; what is absent is skipped. Never
 * all of /etc: /etc/shadow, /etc/ssl/private and the host's configuration
 * are none of a worker's business. */
static const char *const etc_files[] = {
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/resolv.conf", "/etc/hosts",
	"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/localtime",
	"/etc/services", "/etc/protocols", "/etc/mime.types", "/etc/ssl/certs",
	"/etc/ssl/openssl.cnf", "/etc/ca-certificates.conf",
	/* Debian's alternatives: libblas.so.3 and friends are links through it
	 * (numpy's C extensions load their BLAS by that name). */
	"/etc/alternatives", NULL,
};
static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom", NULL};
/* Top-level names that merged-/usr systems make links into /usr. */
static const char *const usr_links[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
					NULL};

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
	return err_set(err, errlen, "sandbox: %s %s: %s", what, path ? path : "", strerror(errno));
}

/* mkdir -p of path's parents (0755), then path itself as a directory or an
 * empty file. */
static int make_target(const char *path, int is_dir)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	char *slash = strrchr(tmp, '/');
	if (slash && slash != tmp) {
		*slash = 0;
		if (mkdir_p(tmp, 0755) < 0)
			return -1;
	}
	if (is_dir)
		return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	return 0;
}

/* Mount flags on target and everything under it (rec), or on it alone.
 * A device node's own bind (dev) keeps devices usable: nodev there would
 * make open() of /dev/null itself EACCES. */
static int set_attr_flags(const char *target, int ro, int rec, int dev)
{
	struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID |
					   (dev ? MOUNT_ATTR_NOEXEC : MOUNT_ATTR_NODEV) |
					   (ro ? MOUNT_ATTR_RDONLY : 0)};
	if (syscall(SYS_mount_setattr, AT_FDCWD, target, rec ? AT_RECURSIVE : 0, &a, sizeof a) == 0)
		return 0;
	/* Older kernels: the top mount only. */
	unsigned long fl = MS_REMOUNT | MS_BIND | MS_NOSUID | (dev ? MS_NOEXEC : MS_NODEV) |
			   (ro ? MS_RDONLY : 0);
	return mount(NULL, target, NULL, fl, NULL);
}

static int set_attr_rec(const char *target, int ro, int rec)
{
	return set_attr_flags(target, ro, rec, 0);
}

/* Bind what fd names (an O_PATH fd) at target, read-only or not. */
static int bind_fd(int fd, const char *target, int ro, char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail(err, errlen, "stat", target);
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
		errno = EINVAL;
		return fail(err, errlen, "not a file or directory:", target);
	}
	if (make_target(target, S_ISDIR(st.st_mode)) < 0)
		return fail(err, errlen, "cannot make", target);
	char src[64];
	snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
	if (mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(err, errlen, "bind", target);
	if (set_attr_flags(target, ro, !S_ISCHR(st.st_mode), S_ISCHR(st.st_mode)) < 0)
		return fail(err, errlen, "remount", target);
	return 0;
}

static int tmpfs_at(const char *target, const char *opts, char *err, size_t errlen)
{
	if (make_target(target, 1) < 0)
		return fail(err, errlen, "cannot make", target);
	if (mount("thaw", target, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return fail(err, errlen, "tmpfs", target);
	return 0;
}

/* A path the host gave: absolute, no "." or ".." component, not "/". */
static int path_ok(const char *p)
{
	if (!p || p[0] != '/' || !p[1] || strlen(p) >= PATH_MAX - sizeof STAGE - sizeof OLD)
		return 0;
	/* Clean paths only: the binds' order (parents first) relies on it. */
	if (strstr(p, "//") || p[strlen(p) - 1] == '/')
		return 0;
	for (const char *c = p; *c; ) {
		while (*c == '/')
			c++;
		const char *e = strchrnul(c, '/');
		size_t n = (size_t)(e - c);
		if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c = e;
	}
	return 1;
}

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, text, strlen(text));
	close(fd);
	return rc;
}

/* --- stage 1 --- */

static int stage1_bind(const char *path, int optional, char *err, size_t errlen)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (optional && (errno == ENOENT || errno == ENOTDIR))
			return 0;
		return fail(err, errlen, "open", path);
	}
	char target[PATH_MAX + sizeof STAGE];
	snprintf(target, sizeof target, STAGE "%s", path);
	int rc = bind_fd(fd, target, 1, err, errlen);
	close(fd);
	return rc;
}

static int under_usr(const char *p)
{
	return !strncmp(p, "/usr/", 5);
}

int sbx_started_sandboxed(void)
{
	return getpid() == 1;
}

/* The roots' paths (THAW_ROOTS_FD), NUL-separated in buf: their count, or
 * -1 with err. None given (the fd closed) is 0. */
static int roots_read(char *buf, size_t size, const char **paths, char *err, size_t errlen)
{
	ssize_t n = pread(THAW_ROOTS_FD, buf, size - 1, 0);
	if (n < 0 && errno == EBADF)
		return 0;
	if (n < 0 || (size_t)n == size - 1)
		return err_set(err, errlen, "sandbox: the host's list of roots is unreadable");
	buf[n] = 0;
	int count = 0;
	for (char *line = buf, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl || count == THAW_ROOTS_MAX || !path_ok(line == nl ? NULL : (*nl = 0, line)))
			return err_set(err, errlen, "sandbox: a bad root in the host's list");
		paths[count++] = line;
	}
	return count;
}

/* Join the control groups the host made for this spare (THAW_CGROUP_FD..:
 * their cgroup.procs files), before anything else it does is charged or
 * could escape them. */
int sbx_join_cgroups(char *err, size_t errlen)
{
	for (int i = 0; i < THAW_CGROUP_MAX; i++) {
		int fd = THAW_CGROUP_FD + i;
		struct stat st;
		if (fstat(fd, &st) < 0)
			break;
		ssize_t n = write(fd, "0", 1);
		close(fd);
		if (n != 1)
			return fail(err, errlen, "join its control group", NULL);
	}
	return 0;
}

int sbx_stage1(char *err, size_t errlen)
{
	if (sbx_join_cgroups(err, errlen) < 0)
		return -1;
	/* Nothing done here reaches the host's mount namespace. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(err, errlen, "make / private", NULL);
	/* Clones of the roots' trees, taken now (before anything covers
	 * them), mounted at /.roots/I in the new root below. Stage 2 binds a
	 * version, an image, the SDK out of them and then covers /.roots with
	 * an empty directory: no unmount on the cold start, which would cost
	 * an RCU grace period (0.2-4 ms measured, for the old root or for
	 * closing a detached tree alike). */
	char rbuf[THAW_ROOTS_MAX * (PATH_MAX + 1)];
	const char *roots[THAW_ROOTS_MAX];
	int nroots = roots_read(rbuf, sizeof rbuf, roots, err, errlen);
	if (nroots < 0)
		return -1;
	for (int i = 0; i < nroots; i++) {
		int t = (int)syscall(SYS_open_tree, AT_FDCWD, roots[i],
				     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		/* Read-only, no devices, no set-uid: what stage 2 binds out of
		 * them is that too unless it says otherwise (a writable out dir). */
		struct mount_attr ra = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
						    MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC};
		if (t >= 0 &&
		    syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &ra, sizeof ra) < 0) {
			close(t);
			t = -1;
		}
		if (t < 0 || (t != THAW_ROOTS_FD + 1 + i &&
			      (dup3(t, THAW_ROOTS_FD + 1 + i, O_CLOEXEC) < 0 || close(t) < 0)))
			return fail(err, errlen, "clone the tree of", roots[i]);
	}
	const char *exe = self_exe();
	char exe_path[PATH_MAX];
	snprintf(exe_path, sizeof exe_path, "%s", exe);
	size_t el = strlen(exe_path);
	if (el > 10 && !strcmp(exe_path + el - 10, " (deleted)")) {
		/* The file this spare runs was replaced since it started (a
		 * rebuild), and a deleted file cannot be bound: become the one
		 * now at its path, as a spare started now would be. */
		exe_path[el - 10] = 0;
		char *argv[] = {exe_path, "worker", NULL};
		execve(exe_path, argv, environ);
		return fail(err, errlen, "exec", exe_path);
	}
	int exe_fd = open(exe_path, O_PATH | O_CLOEXEC);
	if (exe_fd < 0)
		return fail(err, errlen, "open", exe_path);
	/* Only the mount points live in the staging tmpfs; it goes read-only
	 * in stage 2. */
	if (mount("thaw", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") <
	    0) {
		close(exe_fd);
		return fail(err, errlen, "tmpfs", STAGE);
	}
	int rc = 0;
	char target[PATH_MAX + sizeof STAGE];
	/* The private /tmp before anything: what is bound under the host's /tmp
	 * (the executable, a version) lands on top of it, in directories the
	 * worker cannot change (root's, in a sticky /tmp). Sized in stage 2. */
	if (tmpfs_at(STAGE "/tmp", "size=1m,nr_inodes=65536,mode=1777", err, errlen) < 0) {
		close(exe_fd);
		return -1;
	}
	/* /usr: the embedded Python and its standard library, the system's
	 * libraries, and its site-packages (read only when asked to). */
	rc |= stage1_bind("/usr", 0, err, errlen);
	for (int i = 0; !rc && usr_links[i]; i++) {
		char link[PATH_MAX];
		ssize_t n = readlink(usr_links[i], link, sizeof link - 1);
		snprintf(target, sizeof target, STAGE "%s", usr_links[i]);
		if (n > 0) {
			link[n] = 0;
			if (symlink(link, target) < 0)
				rc = fail(err, errlen, "symlink", target);
		} else if (errno != ENOENT) {
			rc = stage1_bind(usr_links[i], 1, err, errlen); /* not merged: a directory */
		}
	}
	for (int i = 0; !rc && etc_files[i]; i++)
		rc = stage1_bind(etc_files[i], 1, err, errlen);
	const char *py[] = {THAW_PY_PREFIX, THAW_PY_STDLIB, THAW_PY_DYNLOAD};
	for (size_t i = 0; !rc && i < sizeof py / sizeof py[0]; i++)
		if (!under_usr(py[i]) && strcmp(py[i], "/usr") != 0)
			rc = stage1_bind(py[i], 1, err, errlen);
	if (!rc) {
		/* Installed under /usr (/usr/local/bin/thaw), it is in view at its
		 * path already, in a read-only bind where no mount point can be
		 * made (and an open for writing of a running binary is ETXTBSY). */
		struct stat xs, ts;
		snprintf(target, sizeof target, STAGE "%s", exe_path);
		if (!(fstat(exe_fd, &xs) == 0 && stat(target, &ts) == 0 && xs.st_dev == ts.st_dev &&
		      xs.st_ino == ts.st_ino))
			rc = bind_fd(exe_fd, target, 1, err, errlen);
		if (rc < 0 && fstat(exe_fd, &xs) == 0 && xs.st_nlink == 0) {
			/* Replaced on disk while this ran (a deleted file cannot be
			 * bound): start over as the binary now at its path. */
			umount2(STAGE, MNT_DETACH);
			char *argv[] = {exe_path, "worker", NULL};
			execve(exe_path, argv, environ);
			rc = fail(err, errlen, "exec", exe_path);
		}
	}
	close(exe_fd);
	/* /dev: a few harmless nodes in a tmpfs of their own. */
	if (!rc)
		rc = tmpfs_at(STAGE "/dev", "size=64k,nr_inodes=64,mode=0755", err, errlen);
	for (int i = 0; !rc && dev_nodes[i]; i++) {
		char src[64];
		snprintf(src, sizeof src, "/dev/%s", dev_nodes[i]);
		rc = stage1_bind(src, 0, err, errlen);
	}
	if (!rc && (symlink("/proc/self/fd", STAGE "/dev/fd") < 0 ||
		    symlink("/proc/self/fd/0", STAGE "/dev/stdin") < 0 ||
		    symlink("/proc/self/fd/1", STAGE "/dev/stdout") < 0 ||
		    symlink("/proc/self/fd/2", STAGE "/dev/stderr") < 0))
		rc = fail(err, errlen, "cannot make", STAGE "/dev");
	if (!rc)
		rc = tmpfs_at(STAGE "/dev/shm", "size=1m,nr_inodes=65536,mode=1777", err, errlen);
	if (!rc && set_attr_rec(STAGE "/dev", 1, 0) < 0)
		rc = fail(err, errlen, "remount", STAGE "/dev");
	/* /proc of this PID namespace: this process and its own children. */
	if (!rc && (make_target(STAGE "/proc", 1) < 0 ||
		    mount("proc", STAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0))
		rc = fail(err, errlen, "mount", "/proc");
	if (!rc && (make_target(STAGE OLD, 1) < 0 || make_target(STAGE MARK, 0) < 0))
		rc = fail(err, errlen, "cannot make", STAGE OLD);
	for (int i = 0; !rc && i < nroots; i++) {
		snprintf(target, sizeof target, STAGE ROOTS "/%d", i);
		if (make_target(target, 1) < 0 ||
		    syscall(SYS_move_mount, THAW_ROOTS_FD + 1 + i, "", AT_FDCWD, target,
			    MOVE_MOUNT_F_EMPTY_PATH) < 0)
			rc = fail(err, errlen, "mount the tree of", roots[i]);
		close(THAW_ROOTS_FD + 1 + i);
	}
	if (rc)
		return -1;
	if (chdir(STAGE) < 0)
		return fail(err, errlen, "chdir", STAGE);
	if (syscall(SYS_pivot_root, ".", "." OLD) < 0)
		return fail(err, errlen, "pivot_root", NULL);
	if (chdir("/") < 0)
		return fail(err, errlen, "chdir", "/");
	/* Nothing of the host's file system is left but the roots' clones. */
	if (umount2(OLD, MNT_DETACH) < 0 || rmdir(OLD) < 0)
		return fail(err, errlen, "detach the host's root", NULL);
	/* Again, from inside: every library mapped from the new root. The
	 * same argv as the host gave (a snapshot's stack holds it). */
	char *argv[] = {exe_path, "worker", NULL};
	execve(exe_path, argv, environ);
	return fail(err, errlen, "exec", exe_path);
}

int sbx_in_stage2(void)
{
	struct statfs sf;
	struct stat st;
	return getpid() == 1 && statfs("/", &sf) == 0 && sf.f_type == 0x01021994 /* tmpfs */ &&
	       lstat(MARK, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == 0;
}

/* --- stage 2 --- */



struct entry {
	const char *path;
	enum { E_RO, E_RW, E_HIDE } kind;
	int optional; /* the host's "ro" extras: missing is fine */
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static int add_list(struct entry *e, size_t *n, size_t max, json_t *arr, int kind, char *err,
		    size_t errlen)
{
	size_t i;
	json_t *v;
	if (!arr)
		return 0;
	if (!json_is_array(arr))
		return err_set(err, errlen, "sandbox: a path list is not an array");
	json_array_foreach(arr, i, v)
	{
		const char *p = json_string_value(v);
		if (!path_ok(p))
			return err_set(err, errlen, "sandbox: bad path %s", p ? p : "(not a string)");
		if (*n == max)
			return err_set(err, errlen, "sandbox: too many paths");
		e[(*n)++] = (struct entry){p, kind, kind == E_RO};
	}
	return 0;
}

/*
 * Idmapped binds. The version's files belong to whoever made them (the host,
 * root, in thaw serve; the developer in thaw dev), often with modes that
 * keep others out (0600, 0700). Rather than loosen them, the read-only bind
 * of such a tree is idmapped: its owner's ids show as the worker's, so the
 * worker reads what its owner could, and writes nothing (read-only).
 * An idmapping is a user namespace whose uid_map says "owner -> worker": a
 * child made with CLONE_NEWUSER holds it while its maps are written and its
 * namespace file is opened.
 */
struct idmaps {
	uid_t to;     /* the worker's uid and gid */
	int usable;   /* 0 after the kernel or the file system said no */
	struct {
		uid_t uid;
		gid_t gid;
		int fd;
	} m[4];
	int n;
};

static int idmap_child(void *arg)
{
	char c;
	int *p = arg;
	/* Only its read end: another holder's write end (copied by clone), or
	 * the host's socket, held here would keep them open. */
	if (p[0] > 0)
		syscall(SYS_close_range, 0, (unsigned)p[0] - 1, 0);
	syscall(SYS_close_range, (unsigned)p[0] + 1, ~0U, 0);
	/* Wait for the parent to be done with this namespace (EOF). */
	while (read(p[0], &c, 1) < 0 && errno == EINTR)
		;
	_exit(0);
}

/* (Holders made ahead by the spare were tried: letting one go and reaping
 * it on the cold start cost as much as making one, 0.3-0.5 ms: the time
 * for it to run its exit on the other CPU. So binds are idmapped only
 * when they must be: see stage2_bind.) */
static pid_t holder_new(int *wfd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	static char stack[16384] __attribute__((aligned(16)));
	pid_t pid = clone(idmap_child, stack + sizeof stack, CLONE_NEWUSER | SIGCHLD, p);
	close(p[0]);
	if (pid < 0) {
		close(p[1]);
		return -1;
	}
	*wfd = p[1];
	return pid;
}

static int idmap_userns(struct idmaps *im, uid_t uid, gid_t gid)
{
	for (int i = 0; i < im->n; i++)
		if (im->m[i].uid == uid && im->m[i].gid == gid)
			return im->m[i].fd;
	if (im->n == (int)(sizeof im->m / sizeof im->m[0]))
		return -1;
	int wfd = -1;
	pid_t pid = holder_new(&wfd);
	int fd = -1;
	if (pid > 0) {
		char path[64], line[64];
		snprintf(line, sizeof line, "%u %u 1\n", (unsigned)uid, (unsigned)im->to);
		snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
		int ok = write_proc(path, line) == 0;
		snprintf(line, sizeof line, "%u %u 1\n", (unsigned)gid, (unsigned)im->to);
		snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
		ok = ok && write_proc(path, line) == 0;
		snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
		if (ok)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		close(wfd);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (fd >= 0)
		im->m[im->n++] = (typeof(im->m[0])){uid, gid, fd};
	return fd;
}

/* A read-only idmapped bind of what fd names at target: 1 done, 0 not
 * possible here (the caller binds plainly), -1 error. */
static int bind_idmapped(struct idmaps *im, int fd, const struct stat *st, const char *target)
{
	if (!im->usable)
		return 0;
	int ns = idmap_userns(im, st->st_uid, st->st_gid);
	if (ns < 0) {
		im->usable = 0;
		return 0;
	}
	int t = (int)syscall(SYS_open_tree, fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (t < 0)
		return -1;
	struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
					   MOUNT_ATTR_NODEV,
			       .attr_clr = MOUNT_ATTR_NOEXEC,
			       .userns_fd = (uint64_t)ns};
	if (syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH, &a, sizeof a) < 0) {
		int e = errno;
		close(t);
		if (e == EINVAL || e == ENOSYS || e == EPERM || e == EOPNOTSUPP) {
			im->usable = 0; /* this file system cannot: plain binds from now */
			return 0;
		}
		errno = e;
		return -1;
	}
	int rc = make_target(target, S_ISDIR(st->st_mode)) < 0
			 ? -1
			 : (int)syscall(SYS_move_mount, t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
	close(t);
	return rc < 0 ? -1 : 1;
}

/* Bind old-root path at the same path in the new root (idmapped when it is
 * read-only and not the worker's own). */
/* The roots (their paths; stage 1 mounted clones of them at ROOTS/I). */
struct roots {
	char buf[THAW_ROOTS_MAX * (PATH_MAX + 1)];
	const char *path[THAW_ROOTS_MAX];
	int n;
};

/* Open path in the clone of the root it lies under (the longest), resolving
 * inside that tree as the host would (RESOLVE_IN_ROOT): an O_PATH fd, or -1
 * (errno; ENOTDIR: under none of them). */
static int root_open(const struct roots *r, const char *path, int nofollow)
{
	int best = -1;
	size_t blen = 0;
	for (int i = 0; i < r->n; i++) {
		size_t l = strlen(r->path[i]);
		if (l > blen && !strncmp(path, r->path[i], l) && (path[l] == '/' || !path[l])) {
			best = i;
			blen = l;
		}
	}
	if (best < 0) {
		errno = ENOTDIR;
		return -1;
	}
	char dir[64];
	snprintf(dir, sizeof dir, ROOTS "/%d", best);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	const char *rel = path[blen] ? path + blen + 1 : ".";
	struct open_how how = {.flags = O_PATH | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0),
			       .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS};
	int fd = (int)syscall(SYS_openat2, dfd, rel, &how, sizeof how);
	int e = errno;
	close(dfd);
	errno = e;
	return fd;
}

/* A bind of what fd (in a root's clone) names at target: a clone of it,
 * flagged, then moved into place. 0, or -1 with errno. */
static int bind_clone(int fd, const struct stat *st, const char *target, int ro)
{
	int t = (int)syscall(SYS_open_tree, fd, "",
			     OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	if (t < 0)
		return -1;
	/* The roots are read-only and noexec (stage 1): a writable bind
	 * clears the one, every bind the other (extension modules are mapped
	 * executable from the version). */
	struct mount_attr a = {.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					   (ro ? MOUNT_ATTR_RDONLY : 0),
			       .attr_clr = MOUNT_ATTR_NOEXEC | (ro ? 0 : MOUNT_ATTR_RDONLY)};
	int rc = (int)syscall(SYS_mount_setattr, t, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a);
	if (rc == 0)
		rc = make_target(target, S_ISDIR(st->st_mode));
	if (rc == 0)
		rc = (int)syscall(SYS_move_mount, t, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
	int e = errno;
	close(t);
	errno = e;
	return rc;
}

static int stage2_bind(const struct roots *roots, struct idmaps *im, const char *path, int ro,
		       int optional, char *err, size_t errlen)
{
	/* The optional ones are the host's extras (an image, its working set):
	 * files the host made in directories of its own, so a link there, or
	 * anything but a regular file, is not theirs: a link planted by a
	 * worker (say IMAGE.ws -> "/") would be resolved in that root's clone
	 * and bind what it names: a whole directory of other workers' files. */
	int fd = root_open(roots, path, optional);
	if (fd < 0 && errno == ENOTDIR)
		return err_set(err, errlen, "sandbox: %s is under none of the host's roots", path);
	if (fd < 0 && errno == ENOENT && optional)
		return 0; /* an image removed meanwhile: its restore refuses, it boots */
	if (fd < 0)
		return fail(err, errlen, "open", path);
	struct stat st;
	if (optional && fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		log_warn("sandbox: %s is not a regular file: not bound", path);
		close(fd);
		return 0;
	}
	if (fstat(fd, &st) < 0 || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))) {
		close(fd);
		return err_set(err, errlen, "sandbox: %s is not a file or directory", path);
	}
	int rc = 0;
	/* Only what others may not read (a 0700 project, a 0600 image): an
	 * idmapping costs a process on the cold start's path (~0.5 ms), a
	 * plain bind tens of microseconds. thaw serve's versions are 0755/0644
	 * (bundle.c), so they never need one. */
	if (ro && im && (st.st_uid != im->to || st.st_gid != im->to) &&
	    (st.st_mode & (S_ISDIR(st.st_mode) ? 0005 : 0004)) !=
		    (S_ISDIR(st.st_mode) ? 0005u : 0004u)) {
		rc = bind_idmapped(im, fd, &st, path);
		if (rc < 0)
			rc = fail(err, errlen, "idmapped bind", path);
	}
	if (rc == 0 && bind_clone(fd, &st, path, ro) < 0)
		rc = fail(err, errlen, "bind", path);
	close(fd);
	return rc < 0 ? -1 : 0;
}

/* Empty the bounding and ambient sets (needs CAP_SETPCAP: before setuid). */
static int drop_bounding(void)
{
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return -1;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return 0;
}

static int drop_caps(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {{0}};
	return (int)syscall(SYS_capset, &h, d);
}


static struct sbx_filter_prepared filter;
static int filter_ready;

int sbx_prepare(char *err, size_t errlen)
{
	if (sbx_filter_prepare(&filter, NULL, err, errlen) < 0)
		return -1;
	filter_ready = 1;
	/* The bounding set limits only what an exec could gain: empty it
	 * now, off the cold start's path (it needs CAP_SETPCAP, held until
	 * the uid changes in sbx_enter). */
	if (drop_bounding() < 0)
		return fail(err, errlen, "drop capabilities", NULL);
	return 0;
}

int sbx_enter(json_t *spec, const struct sbx_paths *p, char *err, size_t errlen)
{
	if (!json_is_object(spec))
		return err_set(err, errlen, "sandbox: no description in INIT");
	if (!sbx_in_stage2())
		return err_set(err, errlen, "sandbox: this instance was not started in one "
					    "(the host and the instance disagree)");
	json_int_t uid = -1, gid = -1, tmp = 64 << 20, nsuid = -1, nsgid = -1;
	json_t *ro = NULL, *rw = NULL, *hide = NULL;
	int outbound = 1;
	json_error_t je;
	if (json_unpack_ex(spec, &je, 0, "{s?I, s?I, s?I, s?o, s?o, s?o, s?{s:I, s:I}, s?b}", "uid",
			   &uid, "gid", &gid, "tmp_bytes", &tmp, "ro", &ro, "rw", &rw, "hide",
			   &hide, "userns", "uid", &nsuid, "gid", &nsgid, "outbound",
			   &outbound) < 0)
		return err_set(err, errlen, "sandbox: %s", je.text);
	if (tmp < 4096 || tmp > ((json_int_t)1 << 40))
		return err_set(err, errlen, "sandbox: bad tmp_bytes");
	if (nsuid >= 0) {
		/* A host that is not root: this user namespace maps only the
		 * host's own ids, to 0 here; spawn.c wrote the maps before the
		 * first exec (they are write-once). */
		if (getuid() != 0 || getgid() != 0)
			return err_set(err, errlen, "sandbox: the user namespace is not mapped");
	} else if (uid <= 0 || gid <= 0 || uid > 0x7fffffff || gid > 0x7fffffff) {
		return err_set(err, errlen, "sandbox: no unprivileged uid and gid");
	}

	struct entry e[64];
	size_t n = 0;
	if (!path_ok(p->project_dir) || !path_ok(p->sdk_dir))
		return err_set(err, errlen, "sandbox: bad project or SDK path");
	e[n++] = (struct entry){p->project_dir, E_RO, 0};
	e[n++] = (struct entry){p->sdk_dir, E_RO, 0};
	if (add_list(e, &n, 64, ro, E_RO, err, errlen) < 0 ||
	    add_list(e, &n, 64, rw, E_RW, err, errlen) < 0 ||
	    add_list(e, &n, 64, hide, E_HIDE, err, errlen) < 0)
		return -1;
	/* Parents before what lies under them: a hidden directory is covered
	 * before the image inside it is bound back. */
	qsort(e, n, sizeof e[0], entry_cmp);

	/* The private /tmp (mounted by stage 1) at its size. */
	char opts[96];
	snprintf(opts, sizeof opts, "size=%lld,nr_inodes=65536,mode=1777", (long long)tmp);
	if (mount(NULL, "/tmp", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) < 0 ||
	    mount(NULL, "/dev/shm", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
		return fail(err, errlen, "resize", "/tmp");
	static struct roots roots;
	roots.n = roots_read(roots.buf, sizeof roots.buf, roots.path, err, errlen);
	if (roots.n < 0)
		return -1;
	/* Idmapped binds need a root host (not a user namespace of our own). */
	struct idmaps im = {.to = (uid_t)uid, .usable = nsuid < 0};
	int rc = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		struct stat st;
		if (e[i].kind == E_HIDE && lstat(e[i].path, &st) < 0 && errno == ENOENT)
			continue; /* nothing there to hide (thaw dev makes them first) */
		if (e[i].kind == E_HIDE)
			rc = tmpfs_at(e[i].path, "size=64k,nr_inodes=256,mode=0755", err, errlen);
		else
			rc = stage2_bind(&roots, &im, e[i].path, e[i].kind == E_RO, e[i].optional,
					 err, errlen);
	}
	/* The roots are covered: nothing of them but what is bound is left in
	 * reach (no fd on them remains; an unprivileged process cannot lift a
	 * mount). */
	close(THAW_ROOTS_FD);
	if (rc == 0 && roots.n > 0 &&
	    mount("thaw", ROOTS, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY,
		  "size=4k,nr_inodes=1,mode=0") < 0)
		rc = fail(err, errlen, "cover", ROOTS);
	for (int i = 0; i < im.n; i++)
		close(im.m[i].fd);
	for (size_t i = 0; !rc && i < n; i++)
		if (e[i].kind == E_HIDE && access(e[i].path, F_OK) == 0 &&
		    set_attr_rec(e[i].path, 1, 0) < 0)
			rc = fail(err, errlen, "remount", e[i].path);
	if (rc)
		return -1;
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return fail(err, errlen, "make / read-only", NULL);
	if (sethostname("thaw", 4) < 0)
		return fail(err, errlen, "sethostname", NULL);

	/* Its worker's ids, no groups, no capabilities (the bounding set is
	 * empty since sbx_prepare). */
	if (nsuid < 0) {
		if (setgroups(0, NULL) < 0 || setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) < 0)
			return fail(err, errlen, "setgid", NULL);
		if (setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0)
			return fail(err, errlen, "setuid", NULL);
	}
	if (drop_caps() < 0)
		return fail(err, errlen, "drop capabilities", NULL);
	/* Dumpable again (below) for the snapshot engine's /proc reads, but
	 * never a core file: its memory is no one's to keep. */
	struct rlimit nocore = {0, 0};
	if (setrlimit(RLIMIT_CORE, &nocore) < 0)
		return fail(err, errlen, "setrlimit(RLIMIT_CORE)", NULL);
	/* A uid change makes the process undumpable, which would make its own
	 * /proc/self files root's: the snapshot engine reads them. ptrace stays
	 * refused by the seccomp filter and the PID namespace. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return fail(err, errlen, "PR_SET_DUMPABLE", NULL);
	/* The uid change cleared the parent-death signal too: die with the
	 * host still (a host gone meanwhile: EOF on the socket ends us). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		return fail(err, errlen, "PR_SET_PDEATHSIG", NULL);
	if (chdir("/") < 0)
		return fail(err, errlen, "chdir", "/");
	/* Last: no_new_privs, landlock scopes, the seccomp filter (built ahead
	 * by sbx_prepare). */
	struct sbx_filter_report rep;
	if (!filter_ready && sbx_filter_prepare(&filter, NULL, err, errlen) < 0)
		return -1;
	filter_ready = 0;
	if (sbx_filter_enforce(&filter, outbound == 0, &rep, err, errlen) < 0)
		return -1;
	log_debug("sandbox: uid %lld, %s", (long long)uid, rep.summary);
	return 0;
}
