/*
 * Control groups for instances (cgroup.h has the design): finding the
 * hierarchies, the host's thaw-PID groups and an instance's group in them,
 * for cgroup v2 and v1 alike.
 *
 * INVARIANTS
 *   - Every directory this file makes is named thaw-PID (PID the host's),
 *     thaw-host-PID (v2: the leaf the host moved itself into) or a child of
 *     thaw-PID; it removes only those, and another host's only when that
 *     host's process is gone.
 *   - In v2 every controller's parent is the same directory; a directory is
 *     made, written and removed once whatever number of controllers use it.
 */
#include "host/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

/* v1 hierarchies by controller; CPU time is cpuacct's, its share cpu's. */
static const char *const v1_names[CGROUP_NCTL] = {"memory", "pids", "cpuacct", "cpu"};

/* --- files --- */

static int put_file(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX];
	if (path_join(path, sizeof path, dir, file) < 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, value, strlen(value));
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	return 0;
}

/* A small file's text into buf (NUL-ended); its length, or -1. */
static ssize_t get_file(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	if (path_join(path, sizeof path, dir, file) < 0)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t used = 0;
	while (used + 1 < len) {
		ssize_t n = read(fd, buf + used, len - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	close(fd);
	buf[used] = 0;
	return (ssize_t)used;
}

static int file_exists(const char *dir, const char *file)
{
	char path[PATH_MAX];
	return path_join(path, sizeof path, dir, file) == 0 && access(path, F_OK) == 0;
}

/* Is word one of the words of list (separated by any of seps)? */
static int has_word(const char *list, const char *word, const char *seps)
{
	size_t wl = strlen(word);
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, seps);
		if (n == wl && !strncmp(p, word, wl))
			return 1;
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

/* "KEY N" in a flat-keyed file's text (memory.events, cpu.stat). */
static int keyed_value(const char *text, const char *key, uint64_t *out)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == ' ') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p + kl + 1, &end, 10);
			if (errno || end == p + kl + 1)
				return -1;
			*out = v;
			return 0;
		}
	}
	return -1;
}

/* --- where the hierarchies are --- */

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

struct mount {
	char root[PATH_MAX], point[PATH_MAX], fstype[32], super[256];
};

/* One line of mountinfo: 0, or -1 when it is not one. */
static int parse_mount(const char *line, size_t len, struct mount *m)
{
	char buf[3 * PATH_MAX];
	if (len >= sizeof buf)
		return -1;
	memcpy(buf, line, len);
	buf[len] = 0;
	char *save = NULL, *tok[64];
	int n = 0;
	for (char *t = strtok_r(buf, " ", &save); t && n < 64; t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	int dash = -1;
	for (int i = 6; i < n; i++)
		if (!strcmp(tok[i], "-")) {
			dash = i;
			break;
		}
	if (dash < 0 || dash + 3 >= n)
		return -1;
	if (strlen(tok[3]) >= sizeof m->root || strlen(tok[4]) >= sizeof m->point ||
	    strlen(tok[dash + 1]) >= sizeof m->fstype || strlen(tok[dash + 3]) >= sizeof m->super)
		return -1;
	strcpy(m->root, tok[3]);
	strcpy(m->point, tok[4]);
	strcpy(m->fstype, tok[dash + 1]);
	strcpy(m->super, tok[dash + 3]);
	unescape(m->root);
	unescape(m->point);
	return 0;
}

/* The directory of group path in mount m, or -1 when it is outside m. */
static int group_dir(const struct mount *m, const char *path, char *out, size_t outlen)
{
	const char *rel = path;
	if (strcmp(m->root, "/") != 0) {
		size_t rl = strlen(m->root);
		if (strncmp(path, m->root, rl) != 0 || (path[rl] != '/' && path[rl] != 0))
			return -1;
		rel = path + rl;
	}
	while (*rel == '/')
		rel++;
	int n = *rel ? snprintf(out, outlen, "%s/%s", m->point, rel)
		     : snprintf(out, outlen, "%s", m->point);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* The host's path in the hierarchy whose /proc/self/cgroup controller list
 * is ctrls ("" for v2), or NULL. */
static const char *self_path(const char *self_cgroup, const char *ctrl, char *out, size_t outlen)
{
	for (const char *p = self_cgroup; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *c1 = memchr(p, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (size_t)(c1 + 1 - p)) : NULL;
		if (c2) {
			char ctrls[256];
			size_t cl = (size_t)(c2 - c1 - 1);
			size_t pl = len - (size_t)(c2 + 1 - p);
			if (cl < sizeof ctrls && pl < outlen) {
				memcpy(ctrls, c1 + 1, cl);
				ctrls[cl] = 0;
				int match = ctrl[0] ? has_word(ctrls, ctrl, ",") : cl == 0;
				if (match) {
					memcpy(out, c2 + 1, pl);
					out[pl] = 0;
					return out;
				}
			}
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

int cgroup_layout_parse(const char *mountinfo, const char *self_cgroup, struct cgroup_layout *out)
{
	memset(out, 0, sizeof *out);
	struct mount *m = xmalloc(sizeof *m);
	char *path = xmalloc(PATH_MAX);
	int found = 0;
	for (const char *p = mountinfo; *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int ok = parse_mount(p, len, m) == 0;
		p += len + (end ? 1 : 0);
		if (!ok)
			continue;
		if (!strcmp(m->fstype, "cgroup2")) {
			if (!out->v2[0] && self_path(self_cgroup, "", path, PATH_MAX) &&
			    group_dir(m, path, out->v2, sizeof out->v2) == 0)
				found = 1;
			continue;
		}
		if (strcmp(m->fstype, "cgroup") != 0)
			continue;
		for (int c = 0; c < CGROUP_NCTL; c++) {
			if (out->v1[c][0] || !has_word(m->super, v1_names[c], ","))
				continue;
			if (self_path(self_cgroup, v1_names[c], path, PATH_MAX) &&
			    group_dir(m, path, out->v1[c], sizeof out->v1[c]) == 0)
				found = 1;
		}
	}
	free(m);
	free(path);
	return found ? 0 : -1;
}

/* --- removing groups --- */

/* SIGKILL the processes listed in dir's cgroup.procs: how many, or -1. */
static int kill_listed(const char *dir)
{
	char path[PATH_MAX];
	if (path_join(path, sizeof path, dir, "cgroup.procs") < 0)
		return -1;
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int n = 0;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1) {
		if (pid > 0 && pid != getpid())
			kill((pid_t)pid, SIGKILL);
		n++;
	}
	fclose(f);
	return n;
}

/* Kill everything in dir and the groups under it, remove them; -1 with errno
 * when some group is still busy. depth bounds the walk. */
static int remove_tree_once(const char *dir, int depth)
{
	DIR *d = depth < 4 ? opendir(dir) : NULL;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_type != DT_DIR || e->d_name[0] == '.')
				continue;
			char sub[PATH_MAX];
			if (path_join(sub, sizeof sub, dir, e->d_name) == 0)
				remove_tree_once(sub, depth + 1);
		}
		closedir(d);
	}
	if (put_file(dir, "cgroup.kill", "1") < 0)
		kill_listed(dir);
	if (rmdir(dir) == 0 || errno == ENOENT)
		return 0;
	return -1;
}

/* The same, retried for up to a second while killed processes leave. */
static int remove_tree_wait(const char *dir)
{
	for (int i = 0; i < 100; i++) {
		if (remove_tree_once(dir, 0) == 0)
			return 0;
		if (errno != EBUSY)
			return -1;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	errno = EBUSY;
	return -1;
}

/* Groups of hosts that are gone, under dir: thaw-N and thaw-host-N. */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		int pid = 0, used = 0;
		if (sscanf(e->d_name, "thaw-host-%d%n", &pid, &used) != 1 &&
		    sscanf(e->d_name, "thaw-%d%n", &pid, &used) != 1)
			continue;
		if (e->d_name[used] != 0 || pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue; /* that host still runs (or we may not ask) */
		char sub[PATH_MAX];
		if (path_join(sub, sizeof sub, dir, e->d_name) == 0)
			remove_tree_wait(sub);
	}
	closedir(d);
}

/* --- the host's groups --- */

/* Is the host the only process in dir? */
static int alone_in(const char *dir)
{
	char buf[4096];
	if (get_file(dir, "cgroup.procs", buf, sizeof buf) < 0)
		return 0;
	for (char *p = buf, *end; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid != getpid())
			return 0;
		while (*end == '\n')
			end++;
	}
	return 1;
}

/* v2: let own's children use memory and pids (what own offers of them). */
static int v2_enable_below(const char *own, char *why, size_t whylen)
{
	char offered[512], enabled[512];
	if (get_file(own, "cgroup.controllers", offered, sizeof offered) < 0)
		return err_set(why, whylen, "cgroup v2: cannot read %s/cgroup.controllers: %s", own,
			       strerror(errno));
	static const char *const want[] = {"memory", "pids", "cpu"};
	int moved = 0;
	for (size_t i = 0; i < 3; i++) {
		if (!has_word(offered, want[i], " \n"))
			continue;
		if (get_file(own, "cgroup.subtree_control", enabled, sizeof enabled) >= 0 &&
		    has_word(enabled, want[i], " \n"))
			continue;
		char plus[16];
		snprintf(plus, sizeof plus, "+%s", want[i]);
		if (put_file(own, "cgroup.subtree_control", plus) == 0)
			continue;
		if (errno == EBUSY && !moved && alone_in(own)) {
			/* Processes in own forbid controllers below it: the host, alone
			 * there, moves into a leaf of its own. */
			char leaf[PATH_MAX], pid[24];
			snprintf(pid, sizeof pid, "%d", (int)getpid());
			if (snprintf(leaf, sizeof leaf, "%s/thaw-host-%d", own, (int)getpid()) <
				    (int)sizeof leaf &&
			    (mkdir(leaf, 0755) == 0 || errno == EEXIST) &&
			    put_file(leaf, "cgroup.procs", pid) == 0) {
				moved = 1;
				i--;
				continue;
			}
		}
		if (!strcmp(want[i], "cpu"))
			continue; /* shares are a nicety: counting CPU needs no controller */
		return err_set(why, whylen,
			       "cgroup v2: cannot enable the %s controller below %s (%s): run thaw "
			       "in a cgroup of its own (systemd: Delegate=yes)",
			       want[i], own, strerror(errno));
	}
	return 0;
}

static int open_v2(struct cgroup_host *ch, const char *own, char *why, size_t whylen)
{
	char parent[PATH_MAX];
	if (snprintf(parent, sizeof parent, "%s/thaw-%d", own, (int)getpid()) >= (int)sizeof parent)
		return err_set(why, whylen, "cgroup v2: %s: path too long", own);
	remove_stale(own);
	if (v2_enable_below(own, why, whylen) < 0)
		return -1;
	if (mkdir(parent, 0755) < 0 && errno != EEXIST)
		return err_set(why, whylen, "cgroup v2: cannot create %s: %s", parent,
			       strerror(errno));
	char offered[512];
	get_file(parent, "cgroup.controllers", offered, sizeof offered);
	int memory = has_word(offered, "memory", " \n") &&
		     put_file(parent, "cgroup.subtree_control", "+memory") == 0;
	int pids = has_word(offered, "pids", " \n") &&
		   put_file(parent, "cgroup.subtree_control", "+pids") == 0;
	int cpu = has_word(offered, "cpu", " \n") &&
		  put_file(parent, "cgroup.subtree_control", "+cpu") == 0;
	ch->mode = CGROUP_V2;
	ch->parent[CGROUP_CPU] = xstrdup(parent); /* cpu.stat is in every group */
	if (memory)
		ch->parent[CGROUP_MEMORY] = xstrdup(parent);
	if (pids)
		ch->parent[CGROUP_PIDS] = xstrdup(parent);
	if (cpu)
		ch->parent[CGROUP_WEIGHT] = xstrdup(parent);
	snprintf(ch->what, sizeof ch->what, "cgroup v2 group %.400s (%s%s%scpu.stat)", parent,
		 memory ? "memory, " : "", pids ? "pids, " : "", cpu ? "cpu.weight, " : "");
	return 0;
}

static int open_v1(struct cgroup_host *ch, const struct cgroup_layout *lay, char *why,
		   size_t whylen)
{
	char failed[512] = "";
	size_t used = 0, wused = (size_t)snprintf(ch->what, sizeof ch->what, "cgroup v1 groups");
	int any = 0;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!lay->v1[c][0])
			continue;
		char parent[PATH_MAX];
		if (snprintf(parent, sizeof parent, "%s/thaw-%d", lay->v1[c], (int)getpid()) >=
		    (int)sizeof parent)
			continue;
		remove_stale(lay->v1[c]);
		if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
			int n = snprintf(failed + used, sizeof failed - used, "%s%s: %s",
					 used ? "; " : "", parent, strerror(errno));
			if (n > 0 && (size_t)n < sizeof failed - used)
				used += (size_t)n;
			continue;
		}
		ch->parent[c] = xstrdup(parent);
		int n = snprintf(ch->what + wused, sizeof ch->what - wused, "%s %s", any ? "," : "",
				 parent);
		any = 1;
		if (n > 0 && (size_t)n < sizeof ch->what - wused)
			wused += (size_t)n;
	}
	if (!ch->parent[CGROUP_MEMORY] && !ch->parent[CGROUP_PIDS] && !ch->parent[CGROUP_CPU])
		return err_set(why, whylen, "cgroup v1: cannot create the host's groups (%s)",
			       failed[0] ? failed : "no memory, pids or cpuacct hierarchy");
	ch->mode = CGROUP_V1;
	ch->memsw = ch->parent[CGROUP_MEMORY] &&
		    file_exists(ch->parent[CGROUP_MEMORY], "memory.memsw.limit_in_bytes");
	return 0;
}

struct cgroup_host *cgroup_host_open(char *why, size_t whylen)
{
	size_t n;
	char *mi = read_file("/proc/self/mountinfo", 4u << 20, &n);
	char *sc = read_file("/proc/self/cgroup", 1u << 20, &n);
	struct cgroup_layout *lay = xmalloc(sizeof *lay);
	struct cgroup_host *ch = xcalloc(1, sizeof *ch);
	int ok = -1;
	if (!mi || !sc || cgroup_layout_parse(mi, sc, lay) < 0) {
		err_set(why, whylen, "no cgroup hierarchy is mounted");
	} else {
		char offered[512] = "";
		if (lay->v2[0] &&
		    get_file(lay->v2, "cgroup.controllers", offered, sizeof offered) >= 0 &&
		    (has_word(offered, "memory", " \n") || has_word(offered, "pids", " \n")))
			ok = open_v2(ch, lay->v2, why, whylen);
		else if (lay->v1[CGROUP_MEMORY][0] || lay->v1[CGROUP_PIDS][0] ||
			 lay->v1[CGROUP_CPU][0])
			ok = open_v1(ch, lay, why, whylen);
		else
			err_set(why, whylen, "no cgroup hierarchy offers memory, pids or cpuacct");
	}
	free(mi);
	free(sc);
	free(lay);
	if (ok < 0) {
		cgroup_host_close(ch);
		return NULL;
	}
	return ch;
}

struct cgroup_host *cgroup_host_open_v2(const char *own, char *why, size_t whylen)
{
	struct cgroup_host *ch = xcalloc(1, sizeof *ch);
	if (open_v2(ch, own, why, whylen) < 0) {
		cgroup_host_close(ch);
		return NULL;
	}
	return ch;
}

void cgroup_host_close(struct cgroup_host *ch)
{
	if (!ch)
		return;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		int seen = 0;
		for (int k = 0; k < c; k++)
			seen |= ch->parent[k] && ch->parent[c] &&
				!strcmp(ch->parent[k], ch->parent[c]);
		if (ch->parent[c] && !seen)
			remove_tree_wait(ch->parent[c]);
	}
	for (int c = 0; c < CGROUP_NCTL; c++)
		free(ch->parent[c]);
	free(ch);
}

const char *cgroup_ctl_file(const struct cgroup_host *ch, enum cgroup_ctl ctl)
{
	static const char *const v2[CGROUP_NCTL] = {"memory.max", "pids.max", "cpu.stat",
						    "cpu.weight"};
	static const char *const v1[CGROUP_NCTL] = {"memory.limit_in_bytes", "pids.max",
						    "cpuacct.usage", "cpu.shares"};
	return ch && ch->mode == CGROUP_V2 ? v2[ctl] : v1[ctl];
}

/* --- an instance's group --- */

/* Is g->dir[c] the same directory as an earlier controller's (v2)? */
static int dir_seen(const struct cgroup *g, int c)
{
	for (int k = 0; k < c; k++)
		if (g->dir[k] && !strcmp(g->dir[k], g->dir[c]))
			return 1;
	return 0;
}

struct cgroup *cgroup_create(struct cgroup_host *ch, const char *name, char *err, size_t errlen)
{
	struct cgroup *g = xcalloc(1, sizeof *g);
	g->ch = ch;
	g->cpu_fd = -1;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!ch->parent[c])
			continue;
		g->dir[c] = xasprintf("%s/%s", ch->parent[c], name);
		if (dir_seen(g, c))
			continue;
		if (mkdir(g->dir[c], 0755) < 0 && errno != EEXIST) {
			err_set(err, errlen, "cannot create the cgroup %s: %s", g->dir[c],
				strerror(errno));
			cgroup_remove(g);
			cgroup_free(g);
			return NULL;
		}
	}
	if (g->dir[CGROUP_CPU]) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", g->dir[CGROUP_CPU],
			 cgroup_ctl_file(ch, CGROUP_CPU));
		g->cpu_fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	/* v2: an OOM kill takes the whole group, what the instance forked too. */
	if (ch->mode == CGROUP_V2 && g->dir[CGROUP_MEMORY])
		put_file(g->dir[CGROUP_MEMORY], "memory.oom.group", "1");
	return g;
}

int cgroup_limit_memory(struct cgroup *g, uint64_t bytes, char *err, size_t errlen)
{
	const char *dir = g->dir[CGROUP_MEMORY];
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)bytes);
	if (!dir)
		return err_set(err, errlen, "no memory controller");
	if (put_file(dir, cgroup_ctl_file(g->ch, CGROUP_MEMORY), v) < 0)
		return err_set(err, errlen, "cannot write %s/%s: %s", dir,
			       cgroup_ctl_file(g->ch, CGROUP_MEMORY), strerror(errno));
	if (g->ch->mode == CGROUP_V2) {
		/* No swap: memory past the limit is an OOM kill, not a slow death. */
		if (put_file(dir, "memory.swap.max", "0") < 0 && errno != ENOENT)
			return err_set(err, errlen, "cannot write %s/memory.swap.max: %s", dir,
				       strerror(errno));
	} else if (g->ch->memsw) {
		if (put_file(dir, "memory.memsw.limit_in_bytes", v) < 0)
			return err_set(err, errlen,
				       "cannot write %s/memory.memsw.limit_in_bytes: %s", dir,
				       strerror(errno));
	} else {
		put_file(dir, "memory.swappiness", "0"); /* best effort without swap accounting */
	}
	return 0;
}

int cgroup_limit_pids(struct cgroup *g, uint64_t max, char *err, size_t errlen)
{
	const char *dir = g->dir[CGROUP_PIDS];
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)max);
	if (!dir)
		return err_set(err, errlen, "no pids controller");
	if (put_file(dir, "pids.max", v) < 0)
		return err_set(err, errlen, "cannot write %s/pids.max: %s", dir, strerror(errno));
	return 0;
}

int cgroup_set_weight(struct cgroup *g, unsigned weight, char *err, size_t errlen)
{
	const char *dir = g->dir[CGROUP_WEIGHT];
	if (!dir)
		return err_set(err, errlen, "no cpu controller");
	if (weight < 1)
		weight = 1;
	if (weight > 10000)
		weight = 10000;
	unsigned long v = g->ch->mode == CGROUP_V2 ? weight : (unsigned long)weight * 1024 / 100;
	if (v < 2)
		v = 2; /* v1's least */
	char s[24];
	snprintf(s, sizeof s, "%lu", v);
	if (put_file(dir, cgroup_ctl_file(g->ch, CGROUP_WEIGHT), s) < 0)
		return err_set(err, errlen, "cannot write %s/%s: %s", dir,
			       cgroup_ctl_file(g->ch, CGROUP_WEIGHT), strerror(errno));
	return 0;
}

int cgroup_attach(struct cgroup *g, pid_t pid, char *err, size_t errlen)
{
	char v[24];
	snprintf(v, sizeof v, "%d", (int)pid);
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!g->dir[c] || dir_seen(g, c))
			continue;
		if (put_file(g->dir[c], "cgroup.procs", v) < 0)
			return err_set(err, errlen, "cannot move process %d into %s: %s", (int)pid,
				       g->dir[c], strerror(errno));
	}
	return 0;
}

int cgroup_procs_open(struct cgroup *g, int *fds, int max)
{
	int n = 0;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!g->dir[c] || dir_seen(g, c))
			continue;
		char path[PATH_MAX];
		if (n == max || snprintf(path, sizeof path, "%s/cgroup.procs", g->dir[c]) >=
					(int)sizeof path)
			goto fail;
		fds[n] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[n] < 0)
			goto fail;
		n++;
	}
	return n;
fail:
	while (n > 0)
		close(fds[--n]);
	return -1;
}

int cgroup_cpu_ns(struct cgroup *g, uint64_t *ns)
{
	char buf[1024];
	if (g->cpu_fd < 0)
		return -1;
	ssize_t n = pread(g->cpu_fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if (g->ch->mode == CGROUP_V2) {
		uint64_t us;
		if (keyed_value(buf, "usage_usec", &us) < 0)
			return -1;
		*ns = us * 1000;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -1;
	*ns = v;
	return 0;
}

uint64_t cgroup_oom_kills(const struct cgroup *g)
{
	char buf[1024];
	uint64_t v = 0;
	const char *dir = g->dir[CGROUP_MEMORY];
	if (!dir || get_file(dir, g->ch->mode == CGROUP_V2 ? "memory.events" : "memory.oom_control",
			     buf, sizeof buf) < 0)
		return 0;
	if (keyed_value(buf, "oom_kill", &v) < 0)
		return 0;
	return v;
}

/* --- memory in use --- */

/* Memory the group at dir holds, less its page cache of files when
 * with_cache_out (what reclaim would take back first: images, libraries):
 * anonymous memory, tmpfs and kernel memory. */
static int dir_memory(const struct cgroup_host *ch, const char *dir, uint64_t *used,
		      uint64_t *file_cache)
{
	char buf[64];
	if (get_file(dir, ch->mode == CGROUP_V2 ? "memory.current" : "memory.usage_in_bytes", buf,
		     sizeof buf) <= 0)
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -1;
	*used = v;
	if (!file_cache)
		return 0;
	/* memory.stat: v2 "file" (tmpfs included: "shmem"), v1 the
	 * hierarchical "total_cache" (likewise "total_shmem"). */
	char stat[8192];
	uint64_t file = 0, shmem = 0;
	if (get_file(dir, "memory.stat", stat, sizeof stat) <= 0)
		return -1;
	int v2 = ch->mode == CGROUP_V2;
	if (keyed_value(stat, v2 ? "file" : "total_cache", &file) < 0)
		return -1;
	keyed_value(stat, v2 ? "shmem" : "total_shmem", &shmem);
	*file_cache = file > shmem ? file - shmem : 0;
	return 0;
}

int cgroup_host_memory(const struct cgroup_host *ch, uint64_t *used, uint64_t *file_cache)
{
	if (!ch || !ch->parent[CGROUP_MEMORY])
		return -1;
	return dir_memory(ch, ch->parent[CGROUP_MEMORY], used, file_cache);
}

int cgroup_memory(const struct cgroup *g, uint64_t *used)
{
	uint64_t cache;
	if (!g->dir[CGROUP_MEMORY] || dir_memory(g->ch, g->dir[CGROUP_MEMORY], used, &cache) < 0)
		return -1;
	*used = *used > cache ? *used - cache : 0;
	return 0;
}

int cgroup_host_own_memory_limit(const struct cgroup_host *ch, uint64_t *bytes)
{
	const char *dir = ch ? ch->parent[CGROUP_MEMORY] : NULL;
	const char *slash = dir ? strrchr(dir, '/') : NULL;
	if (!slash || slash == dir)
		return -1;
	char own[PATH_MAX], buf[64];
	snprintf(own, sizeof own, "%.*s", (int)(slash - dir), dir);
	if (get_file(own, cgroup_ctl_file(ch, CGROUP_MEMORY), buf, sizeof buf) <= 0)
		return -1; /* the root group has no limit file */
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf || v >= (1ull << 60)) /* "max", or v1's "none" (~2^63) */
		return -1;
	*bytes = v;
	return 0;
}

int cgroup_host_set_weight(struct cgroup_host *ch, unsigned weight)
{
	const char *dir = ch ? ch->parent[CGROUP_WEIGHT] : NULL;
	if (!dir)
		return -1;
	struct cgroup g = {.ch = ch, .cpu_fd = -1};
	g.dir[CGROUP_WEIGHT] = (char *)dir;
	char err[16];
	return cgroup_set_weight(&g, weight, err, sizeof err);
}

int cgroup_host_limit_memory(struct cgroup_host *ch, uint64_t bytes, char *err, size_t errlen)
{
	const char *dir = ch ? ch->parent[CGROUP_MEMORY] : NULL;
	if (!dir)
		return err_set(err, errlen, "no memory controller");
	char v[32];
	snprintf(v, sizeof v, "%llu", (unsigned long long)bytes);
	if (put_file(dir, cgroup_ctl_file(ch, CGROUP_MEMORY), v) < 0)
		return err_set(err, errlen, "cannot write %s/%s: %s", dir,
			       cgroup_ctl_file(ch, CGROUP_MEMORY), strerror(errno));
	return 0;
}

int cgroup_kill(struct cgroup *g)
{
	int seen = -1;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!g->dir[c] || dir_seen(g, c))
			continue;
		if (g->ch->mode == CGROUP_V2)
			put_file(g->dir[c], "cgroup.kill", "1");
		int n = kill_listed(g->dir[c]); /* v1: the same processes in each */
		if (n > seen)
			seen = n;
	}
	return seen;
}

int cgroup_remove(struct cgroup *g)
{
	int rc = 0, e = 0;
	for (int c = 0; c < CGROUP_NCTL; c++) {
		if (!g->dir[c] || dir_seen(g, c))
			continue;
		if (rmdir(g->dir[c]) < 0 && errno != ENOENT) {
			rc = -1;
			e = errno;
		}
	}
	errno = e;
	return rc;
}

void cgroup_free(struct cgroup *g)
{
	if (!g)
		return;
	if (g->cpu_fd >= 0)
		close(g->cpu_fd);
	for (int c = 0; c < CGROUP_NCTL; c++)
		free(g->dir[c]);
	free(g);
}
