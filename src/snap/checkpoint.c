/*
 * Checkpoint: write an image of the calling process (see snap.h).
 *
 * Everything that needs libc (refusal checks, identity strings, signal state)
 * happens before the context is saved. After it, until the file is complete,
 * only system calls and code that writes to the scratch mapping run: the heap
 * being written out must not change under the writer.
 */
#include "common/util.h"
#include "snap/snap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "snap/restore.h"
#include "snap/sys.h"

extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

#define SCRATCH_SIZE (64ull << 20)
#define MAPS_MAX (4u << 20)
#define PAGEMAP_CHUNK 65536u /* entries per read */
#define ANON_GAP_PAGES 4     /* zero pages worth saving to spare a mapping */

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)

struct scratch {
	struct snap_ctx ctx;
	char *maps;
	size_t maps_len;
	struct snap_region *regions;
	uint32_t nregions;
	struct snap_run *runs;
	uint32_t nruns, max_runs;
	struct snap_dep *deps;
	uint32_t ndeps;
	char *strings;
	uint32_t strings_len;
	uint64_t *pm;
	uint64_t *cmp;       /* one page of a mapped file, to compare with memory */
	uint64_t same_pages; /* written pages found equal to their file's: not saved */
	/* The image this process was restored from (all 0: none), and its dep
	 * once a FILE region of that file is found: the image's base. */
	uint64_t base_dev, base_ino;
	uint32_t base_dep;
	/* The table as snap_base_pages reads it (set before the context is
	 * saved, so that counting needs no stack-sized copy of a header). */
	struct snap_image view;
	char err[256];
	int write_errno; /* why writing the image failed (ENOSPC: the disk is full) */
};

/* --- refusals, with libc --- */

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;
	struct dirent *e;
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int check_fds(const struct snap_checkpoint_opts *o, int out_fd, char *err, size_t errlen)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return err_set(err, errlen, "cannot list /proc/self/fd: %s", strerror(errno));
	struct dirent *e;
	int bad = -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == dirfd(d) || fd == out_fd || fd <= 2)
			continue;
		int ok = 0;
		for (size_t i = 0; i < o->nkeep; i++)
			ok |= o->keep_fds[i] == fd;
		if (!ok) {
			bad = fd;
			break;
		}
	}
	closedir(d);
	if (bad < 0)
		return 0;
	char link[64], target[512];
	snprintf(link, sizeof link, "/proc/self/fd/%d", bad);
	ssize_t n = readlink(link, target, sizeof target - 1);
	target[n > 0 ? n : 0] = 0;
	return err_set(err, errlen, "open file descriptor %d (%s)", bad, n > 0 ? target : "?");
}

/*
 * Shared mappings: a read-only view of a file on disk (glibc's iconv maps
 * gconv-modules.cache this way) is kept as a SHARED region and mapped again at
 * restore. Anything else shared cannot be carried: its other users (another
 * process, the file's later writers) would no longer see this process's
 * writes, or it has no file to map again. The refusal names it.
 * Returns 0, or -1 with the reason in err.
 */
static int check_shared_maps(char *err, size_t errlen)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return err_set(err, errlen, "cannot read /proc/self/maps: %s", strerror(errno));
	char line[4608];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		unsigned long lo, hi, ino;
		char perms[5];
		int path_at = 0;
		if (sscanf(line, "%lx-%lx %4s %*x %*x:%*x %lu %n", &lo, &hi, perms, &ino,
			   &path_at) < 4 ||
		    perms[3] != 's')
			continue;
		char *path = line + path_at;
		path[strcspn(path, "\n")] = 0;
		unsigned long kib = (hi - lo) / 1024;
		size_t pl = strlen(path);
		int deleted = pl > 10 && !strcmp(path + pl - 10, " (deleted)");
		if (!strncmp(path, "/SYSV", 5))
			rc = err_set(
				err, errlen,
				"a System V shared memory segment (key 0x%.8s, %lu KiB at 0x%lx) "
				"is attached: shared memory cannot be carried into a snapshot; "
				"attach it in an after_restore hook",
				path + 5, kib, lo);
		else if (!strncmp(path, "/memfd:", 7))
			rc = err_set(err, errlen,
				     "a shared mapping of memfd \"%.*s\" (%lu KiB at 0x%lx): an "
				     "in-memory file cannot be mapped again after a restore; map "
				     "it in "
				     "an after_restore hook",
				     (int)(deleted ? pl - 17 : pl - 7), path + 7, kib, lo);
		else if (ino == 0 || path[0] != '/' || !strcmp(path, "/dev/zero (deleted)"))
			rc = err_set(err, errlen,
				     "an anonymous shared mapping (MAP_SHARED|MAP_ANONYMOUS, or "
				     "mmap.mmap(-1, ...); %lu KiB at 0x%lx): shared memory cannot "
				     "be "
				     "carried into a snapshot; make it in an after_restore hook",
				     kib, lo);
		else if (deleted)
			rc = err_set(err, errlen,
				     "a shared mapping of %s (%lu KiB at 0x%lx): the file is "
				     "deleted, "
				     "so it cannot be mapped again after a restore",
				     path, kib, lo);
		else if (perms[1] == 'w')
			rc = err_set(
				err, errlen,
				"a writable shared mapping of %s (MAP_SHARED with PROT_WRITE, "
				"%lu KiB at 0x%lx): writes through it must reach the file, which "
				"a restored copy cannot do; map it in an after_restore hook, or "
				"read-only",
				path, kib, lo);
	}
	fclose(f);
	return rc;
}

/* --- after the context is saved: syscalls and scratch memory only --- */

static int full_read(int fd, char *buf, size_t max, size_t *len)
{
	size_t n = 0;
	for (;;) {
		if (n == max)
			return -1;
		long r = SYS3(SYS_read, fd, buf + n, max - n);
		if (r == -EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*len = n;
	return 0;
}

/* 0, or the negative errno of the write that failed. */
static long full_write(int fd, const void *p, size_t len)
{
	const char *c = p;
	while (len) {
		long r = SYS3(SYS_write, fd, c, len);
		if (r == -EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? r : -EIO;
		c += r;
		len -= (size_t)r;
	}
	return 0;
}

static uint64_t hexnum(const char **p)
{
	uint64_t v = 0;
	for (;;) {
		char c = **p;
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			break;
		v = v << 4 | d;
		(*p)++;
	}
	return v;
}

static uint64_t decnum(const char **p)
{
	uint64_t v = 0;
	while (**p >= '0' && **p <= '9') {
		v = v * 10 + (uint64_t)(**p - '0');
		(*p)++;
	}
	return v;
}

static size_t slen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

static int seq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

static void copy_str(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; i + 1 < n && src[i]; i++)
		dst[i] = src[i];
	dst[i] = 0;
}

static uint32_t dep_for(struct scratch *s, const char *path, uint64_t ino, const char **why)
{
	for (uint32_t i = 0; i < s->ndeps; i++)
		if (seq(s->strings + s->deps[i].path_off, path))
			return i;
	if (s->ndeps == SNAP_MAX_DEPS) {
		*why = "too many mapped files";
		return UINT32_MAX;
	}
	struct stat st;
	if (SYS2(SYS_stat, path, &st) < 0) {
		*why = "a mapped file cannot be found on disk";
		return UINT32_MAX;
	}
	if ((uint64_t)st.st_ino != ino) {
		*why = "a mapped file was replaced on disk";
		return UINT32_MAX;
	}
	size_t len = slen(path);
	if (s->strings_len + len + 1 > SNAP_MAX_STRINGS) {
		*why = "mapped file names too long";
		return UINT32_MAX;
	}
	struct snap_dep *d = &s->deps[s->ndeps];
	d->path_off = s->strings_len;
	d->path_len = (uint32_t)len;
	for (size_t i = 0; i <= len; i++)
		s->strings[s->strings_len + i] = path[i];
	s->strings_len += (uint32_t)len + 1;
	d->dev = (uint64_t)st.st_dev;
	d->ino = (uint64_t)st.st_ino;
	d->size = (uint64_t)st.st_size;
	d->mtime_sec = (int64_t)st.st_mtim.tv_sec;
	d->mtime_nsec = (uint64_t)st.st_mtim.tv_nsec;
	return s->ndeps++;
}

static int add_run(struct scratch *s, uint64_t start, uint64_t npages)
{
	if (s->nruns &&
	    s->runs[s->nruns - 1].start + s->runs[s->nruns - 1].npages * SNAP_PAGE == start &&
	    s->nregions && s->regions[s->nregions - 1].run_count) {
		s->runs[s->nruns - 1].npages += npages;
		return 0;
	}
	if (s->nruns == s->max_runs)
		return -1;
	s->runs[s->nruns++] = (struct snap_run){.start = start, .npages = npages};
	s->regions[s->nregions - 1].run_count++;
	return 0;
}

/* Find the pages of the current region worth saving. */
/*
 * Does the page at addr hold exactly what its file holds at off? A private
 * file mapping's page that was written (so the pagemap shows it anonymous)
 * but holds its file's bytes again, or was written with the same bytes, is
 * restored as well by mapping the file: it is not saved. For an image built
 * on a base this is most of what the build wrote to the base's pages (a
 * reference count raised and lowered again): they stay the base's, shared.
 * Past the file's end (a mapping's tail) nothing is equal.
 */
static int same_as_file(struct scratch *s, int fd, uint64_t off, uint64_t addr)
{
	long got = SYS4(SYS_pread64, fd, s->cmp, SNAP_PAGE, off);
	if (got != (long)SNAP_PAGE)
		return 0;
	const volatile uint64_t *mem = (const uint64_t *)addr;
	for (unsigned i = 0; i < SNAP_PAGE / 8; i++)
		if (mem[i] != s->cmp[i])
			return 0;
	return 1;
}

static int scan_pages(struct scratch *s, int pm_fd, struct snap_region *r, int file_fd)
{
	r->run_first = s->nruns;
	r->run_count = 0;
	if (!(r->prot & PROT_READ) || r->kind == SNAP_R_SHARED)
		return 0; /* nothing readable was kept (guard pages, reservations), or
			   * the file holds it all (a read-only shared view) */
	if (r->kind == SNAP_R_STACK)
		return add_run(s, r->start, (r->end - r->start) / SNAP_PAGE);
	uint64_t pages = (r->end - r->start) / SNAP_PAGE;
	uint64_t run_start = 0, run_len = 0, gap = 0;
	for (uint64_t base = 0; base < pages; base += PAGEMAP_CHUNK) {
		uint64_t n = pages - base < PAGEMAP_CHUNK ? pages - base : PAGEMAP_CHUNK;
		uint64_t off = (r->start / SNAP_PAGE + base) * 8;
		long got = SYS4(SYS_pread64, pm_fd, s->pm, n * 8, off);
		if (got != (long)(n * 8))
			return -1;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t e = s->pm[i];
			int keep = r->kind == SNAP_R_FILE ? ((e & PM_PRESENT) && !(e & PM_FILE)) ||
								    (e & PM_SWAPPED)
							  : (e & (PM_PRESENT | PM_SWAPPED)) != 0;
			uint64_t addr = r->start + (base + i) * SNAP_PAGE;
			if (keep && file_fd >= 0 && (e & PM_PRESENT) &&
			    same_as_file(s, file_fd, r->file_off + (base + i) * SNAP_PAGE, addr)) {
				keep = 0;
				s->same_pages++;
			}
			if (keep) {
				if (run_len && gap) {
					/* A small hole of zero pages inside anonymous memory:
					 * save it rather than split the mapping. */
					run_len += gap;
					gap = 0;
				}
				if (!run_len)
					run_start = addr;
				run_len++;
			} else if (run_len) {
				if (r->kind != SNAP_R_FILE && gap < ANON_GAP_PAGES) {
					gap++;
					continue;
				}
				if (add_run(s, run_start, run_len) < 0)
					return -1;
				run_len = gap = 0;
			}
		}
	}
	if (run_len && add_run(s, run_start, run_len) < 0)
		return -1;
	return 0;
}

static int build_table(struct scratch *s, uint64_t scratch_lo, uint64_t scratch_hi, uint64_t *vdso,
		       const char **why)
{
	int pm_fd = (int)SYS2(SYS_open, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0) {
		*why = "cannot open /proc/self/pagemap";
		return -1;
	}
	const char *p = s->maps, *end = s->maps + s->maps_len;
	int rc = 0;
	while (p < end && rc == 0) {
		const char *line = p;
		uint64_t lo = hexnum(&p);
		p++; /* - */
		uint64_t hi = hexnum(&p);
		p++;
		char perms[4] = {p[0], p[1], p[2], p[3]};
		p += 5;
		uint64_t off = hexnum(&p);
		p++;
		hexnum(&p); /* dev major */
		p++;
		hexnum(&p); /* dev minor */
		p++;
		uint64_t ino = decnum(&p);
		while (*p == ' ')
			p++;
		char path[512];
		size_t k = 0;
		while (p < end && *p != '\n' && k + 1 < sizeof path)
			path[k++] = *p++;
		path[k] = 0;
		while (p < end && *p != '\n')
			p++;
		p++;
		if (p > end || line == p)
			break;
		if (lo >= scratch_lo && hi <= scratch_hi)
			continue;
		if (lo < scratch_hi && hi > scratch_lo) {
			/* The kernel merged the scratch with a neighbour: keep only
			 * the neighbour's part (scratch never touches both ends of
			 * anything we save, so one side remains). */
			if (lo < scratch_lo)
				hi = scratch_lo;
			else
				lo = scratch_hi;
		}
		if (seq(path, "[vdso]")) {
			*vdso = lo;
			continue;
		}
		if (path[0] == '[' &&
		    (seq(path, "[vvar]") || seq(path, "[vsyscall]") || seq(path, "[vvar_vclock]")))
			continue;
		int shared = perms[3] == 's';
		if (shared && (perms[1] == 'w' || path[0] != '/' || ino == 0)) {
			/* check_shared_maps named it before the context was saved */
			*why = "a writable or anonymous shared memory mapping";
			rc = -1;
			break;
		}
		if (s->nregions == SNAP_MAX_REGIONS) {
			*why = "too many mappings";
			rc = -1;
			break;
		}
		struct snap_region *r = &s->regions[s->nregions++];
		*r = (struct snap_region){.start = lo, .end = hi};
		r->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
			  (perms[2] == 'x' ? PROT_EXEC : 0);
		if (seq(path, "[stack]"))
			r->kind = SNAP_R_STACK;
		else if (seq(path, "[heap]"))
			r->kind = SNAP_R_HEAP;
		else if (path[0] == '/' && ino != 0) {
			size_t pl = slen(path);
			if (pl > 10 && seq(path + pl - 10, " (deleted)")) {
				*why = "a mapped file was deleted";
				rc = -1;
				break;
			}
			r->kind = shared ? SNAP_R_SHARED : SNAP_R_FILE;
			r->file_off = off;
			r->dep = dep_for(s, path, ino, why);
			if (r->dep == UINT32_MAX) {
				rc = -1;
				break;
			}
			/* A private mapping of the image we were restored from:
			 * what of it we have not written is the base's, and this
			 * image a delta over it. By device and inode, as the
			 * restore saw the file: its path may differ here (a
			 * sandbox binds it elsewhere). */
			const struct snap_dep *d = &s->deps[r->dep];
			if (!shared && s->base_ino && s->base_dep == SNAP_NO_BASE &&
			    d->dev == s->base_dev && d->ino == s->base_ino)
				s->base_dep = r->dep;
		} else {
			r->kind = SNAP_R_ANON;
		}
		/* A private file mapping's written pages are compared with the
		 * file's (same_as_file). */
		int file_fd = r->kind == SNAP_R_FILE && (r->prot & PROT_READ)
				      ? (int)SYS2(SYS_open, path,
						  O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
				      : -1;
		struct stat fst;
		if (file_fd >= 0 && (SYS2(SYS_fstat, file_fd, &fst) != 0 || !S_ISREG(fst.st_mode) ||
				     (uint64_t)fst.st_ino != ino)) {
			/* Not the file the mapping shows (renamed over meanwhile):
			 * nothing is compared, every written page is saved. */
			SYS1(SYS_close, file_fd);
			file_fd = -1;
		}
		int scanned = scan_pages(s, pm_fd, r, file_fd);
		if (file_fd >= 0)
			SYS1(SYS_close, file_fd);
		if (scanned < 0) {
			*why = "too many saved page runs, or pagemap unreadable";
			rc = -1;
		}
	}
	SYS1(SYS_close, pm_fd);
	return rc;
}

static uint64_t page_align(uint64_t v)
{
	return (v + SNAP_PAGE - 1) & ~(uint64_t)(SNAP_PAGE - 1);
}

int snap_checkpoint(const char *path, const struct snap_checkpoint_opts *o, struct snap_stats *st,
		    char *err, size_t errlen)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* A thread the top level joined may still be leaving the kernel (its
	 * Python state is gone before its task is): up to 200 ms for it. */
	int threads = count_threads();
	for (int i = 0; threads > 1 && i < 200; i++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
		threads = count_threads();
	}
	if (threads != 1) {
		err_set(err, errlen, "%d threads are running (a snapshot needs exactly one)",
			threads);
		return SNAP_ERR_THREADS;
	}
	char tmp[4096];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return err_set(err, errlen, "snapshot path too long");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(err, errlen, "%s: %s", tmp, strerror(errno));
	if (check_shared_maps(err, errlen) < 0) {
		close(fd);
		unlink(tmp);
		return SNAP_ERR_SHARED;
	}
	if (check_fds(o, fd, err, errlen) < 0) {
		close(fd);
		unlink(tmp);
		return SNAP_ERR_FD;
	}

	/* Scratch: excluded from the image; lazily backed. */
	uint8_t *scr = mmap(NULL, SCRATCH_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (scr == MAP_FAILED) {
		close(fd);
		unlink(tmp);
		return err_set(err, errlen, "cannot map scratch memory: %s", strerror(errno));
	}
	struct scratch *s = (struct scratch *)scr;
	memset(s, 0, sizeof *s);
	uint8_t *at = scr + page_align(sizeof *s);
	s->maps = (char *)at;
	at += MAPS_MAX;
	s->regions = (struct snap_region *)at;
	at += page_align((size_t)SNAP_MAX_REGIONS * sizeof *s->regions);
	s->deps = (struct snap_dep *)at;
	at += page_align((size_t)SNAP_MAX_DEPS * sizeof *s->deps);
	s->strings = (char *)at;
	at += SNAP_MAX_STRINGS;
	s->pm = (uint64_t *)at;
	at += PAGEMAP_CHUNK * 8;
	s->cmp = (uint64_t *)at;
	at += SNAP_PAGE;
	s->runs = (struct snap_run *)at;
	s->max_runs = (uint32_t)((scr + SCRATCH_SIZE - at) / sizeof *s->runs);
	s->view.regions = s->regions;
	s->view.runs = s->runs;
	s->base_dep = SNAP_NO_BASE;
	/* snap_release keeps the image's identity: a process that served a
	 * while and let its scratch go still names its base. */
	uint64_t base_hash = snap_restored_info.image_hash;
	s->base_dev = snap_restored_info.image_dev;
	s->base_ino = base_hash ? snap_restored_info.image_ino : 0;

	/* The header's kernel-side state, taken while libc may still be used. */
	struct snap_header *h = (struct snap_header *)(s->pm); /* reuse: filled before scans */
	struct snap_header hdr;
	memset(&hdr, 0, sizeof hdr);
	memcpy(hdr.magic, SNAP_MAGIC, 8);
	hdr.version = SNAP_VERSION;
	hdr.header_size = sizeof hdr;
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	hdr.created_unix_ns = (uint64_t)wall.tv_sec * 1000000000ull + (uint64_t)wall.tv_nsec;
	snap_kernel_id(hdr.kernel, sizeof hdr.kernel);
	snap_cpu_id(hdr.cpu, sizeof hdr.cpu);
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		SYS4(SYS_rt_sigaction, sig, NULL, &hdr.sigs[sig - 1], 8);
	}
	SYS4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &hdr.sigmask, 8);
	uint64_t tp;
	__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
	hdr.ctx.fs_base = tp;
	if (__rseq_size) {
		hdr.rseq_addr = tp + (uint64_t)__rseq_offset;
		hdr.rseq_len = __rseq_size;
		hdr.rseq_sig = 0x53053053; /* RSEQ_SIG on x86 */
	}
	/* glibc caches the thread id in its TCB; the kernel knows where
	 * (set_tid_address at thread start). A restore writes the new tid there. */
	int *tid_addr = NULL;
	hdr.tid_offset = 0;
	if (prctl(PR_GET_TID_ADDRESS, &tid_addr) == 0 && tid_addr &&
	    (uint64_t)(uintptr_t)tid_addr > tp && (uint64_t)(uintptr_t)tid_addr - tp < 4096 &&
	    *tid_addr == (int)SYS0(SYS_gettid))
		hdr.tid_offset = (uint32_t)((uint64_t)(uintptr_t)tid_addr - tp);
	if (!hdr.tid_offset) {
		munmap(scr, SCRATCH_SIZE);
		close(fd);
		unlink(tmp);
		return err_set(err, errlen,
			       "cannot find the thread id in the thread control block");
	}
	uint64_t max_bytes = o->max_bytes;
	int too_big = 0;
	(void)h;

	/* ---- from here: no malloc, no stdio ---- */
	if (snap_ctx_save(&s->ctx))
		return SNAP_RESTORED; /* we are a restored process */

	hdr.ctx = (struct snap_ctx){.rbx = s->ctx.rbx,
				    .rbp = s->ctx.rbp,
				    .r12 = s->ctx.r12,
				    .r13 = s->ctx.r13,
				    .r14 = s->ctx.r14,
				    .r15 = s->ctx.r15,
				    .rsp = s->ctx.rsp,
				    .rip = s->ctx.rip,
				    .mxcsr = s->ctx.mxcsr,
				    .fpucw = s->ctx.fpucw,
				    .fs_base = tp};
	hdr.brk = (uint64_t)SYS1(SYS_brk, 0);

	const char *why = NULL;
	int mfd = (int)SYS2(SYS_open, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (mfd < 0 || full_read(mfd, s->maps, MAPS_MAX, &s->maps_len) < 0)
		why = "cannot read /proc/self/maps";
	if (mfd >= 0)
		SYS1(SYS_close, mfd);
	uint64_t vdso = 0;
	if (!why)
		build_table(s, (uint64_t)scr, (uint64_t)scr + SCRATCH_SIZE, &vdso, &why);
	if (why)
		goto refuse;
	hdr.vdso_start = vdso;
	hdr.nregions = s->nregions;
	hdr.nruns = s->nruns;
	hdr.ndeps = s->ndeps;
	hdr.strings_len = s->strings_len;
	hdr.table_off = SNAP_PAGE;
	hdr.table_len = (uint64_t)s->nregions * sizeof(struct snap_region) +
			(uint64_t)s->nruns * sizeof(struct snap_run) +
			(uint64_t)s->ndeps * sizeof(struct snap_dep) + s->strings_len;
	hdr.data_off = page_align(hdr.table_off + hdr.table_len);
	uint64_t data = hdr.data_off, saved_pages = 0;
	for (uint32_t i = 0; i < s->nruns; i++) {
		s->runs[i].data_off = data;
		data += s->runs[i].npages * SNAP_PAGE;
		saved_pages += s->runs[i].npages;
	}
	hdr.data_len = data - hdr.data_off;
	hdr.file_size = data;
	hdr.base_dep = s->base_dep;
	hdr.base_hash = s->base_dep == SNAP_NO_BASE ? 0 : base_hash;
	s->view.h.nregions = s->nregions;
	s->view.h.base_dep = s->base_dep;
	uint64_t base_pages = snap_base_pages(&s->view);
	if (max_bytes && hdr.file_size > max_bytes) {
		why = "the image is larger than the configured maximum";
		too_big = 1;
		goto refuse;
	}

	/* Table: regions, runs, deps, strings, back to back. The runs follow
	 * the regions in scratch only by layout, so write piece by piece. */
	uint64_t th = 0;
	struct {
		const void *p;
		size_t n;
	} parts[4] = {
		{s->regions, (size_t)s->nregions * sizeof(struct snap_region)},
		{s->runs, (size_t)s->nruns * sizeof(struct snap_run)},
		{s->deps, (size_t)s->ndeps * sizeof(struct snap_dep)},
		{s->strings, s->strings_len},
	};
	/* The table hash is over the concatenation; snap_hash is not
	 * incremental across calls, so hash a contiguous copy in scratch. */
	uint8_t *tcopy = (uint8_t *)s->runs + (size_t)s->nruns * sizeof(struct snap_run);
	tcopy = (uint8_t *)page_align((uint64_t)tcopy);
	if ((uint64_t)(tcopy - scr) + hdr.table_len > SCRATCH_SIZE) {
		why = "snapshot table too large";
		goto refuse;
	}
	size_t tl = 0;
	for (int i = 0; i < 4; i++) {
		const uint8_t *src = parts[i].p;
		for (size_t k = 0; k < parts[i].n; k++)
			tcopy[tl + k] = src[k];
		tl += parts[i].n;
	}
	th = snap_hash(0, tcopy, tl);
	hdr.table_hash = th;
	/* A failed write keeps its errno in scratch, and the success path
	 * stores nothing: the stack is one of the runs, and what it holds
	 * should change as little as possible while it is written (a call made
	 * between a run's write and its hash, or a counter kept in memory, did:
	 * "data checksum mismatch" at adoption). */
	long wr = SYS3(SYS_lseek, fd, (long)hdr.table_off, SEEK_SET);
	if (wr >= 0)
		wr = full_write(fd, tcopy, tl);
	if (wr < 0) {
		s->write_errno = (int)-wr;
		why = "cannot write the image";
		goto refuse;
	}
	/*
	 * Data: straight from memory, in run order, but for the stack's run.
	 * This loop runs on that stack, and the compiler may keep its
	 * variables there (gcc -O3 keeps the running hash and a length in
	 * this very frame): written straight from memory, the stack's bytes
	 * would change between their write and their hash. So the stack is
	 * copied into scratch first, and written and hashed from the copy: the
	 * file holds what was hashed, the stack as it was at one moment after
	 * the context was saved, which is all a restore needs of it (it
	 * resumes at the saved context, above anything that changed). A stack
	 * too large for what scratch has left is written as before.
	 */
	uint64_t *stack_copy = (uint64_t *)(tcopy + page_align(tl));
	uint32_t stack_run = UINT32_MAX;
	for (uint32_t i = 0; i < s->nregions; i++)
		if (s->regions[i].kind == SNAP_R_STACK && s->regions[i].run_count)
			stack_run = s->regions[i].run_first;
	uint64_t dh = 0;
	for (uint32_t i = 0; i < s->nruns; i++) {
		const struct snap_run *u = &s->runs[i];
		size_t n = u->npages * SNAP_PAGE;
		const void *from = (const void *)u->start;
		if (i == stack_run && (uint64_t)((uint8_t *)stack_copy - scr) + n <= SCRATCH_SIZE) {
			const uint64_t *word = from;
			for (size_t k = 0; k < n / 8; k++)
				stack_copy[k] = word[k];
			from = stack_copy;
		}
		long r = SYS3(SYS_lseek, fd, (long)u->data_off, SEEK_SET);
		if (r >= 0)
			r = full_write(fd, from, n);
		if (r < 0) {
			s->write_errno = (int)-r;
			why = "cannot write the image";
			goto refuse;
		}
		dh = snap_data_hash(dh, from, n);
	}
	hdr.data_hash = dh;
	hdr.header_hash = 0;
	hdr.header_hash = snap_hash(0, &hdr, sizeof hdr);
	wr = SYS4(SYS_pwrite64, fd, &hdr, sizeof hdr, 0);
	if (wr >= 0 && wr != (long)sizeof hdr)
		wr = -EIO; /* a short write of one page's header */
	if (wr >= 0)
		wr = SYS2(SYS_ftruncate, fd, (long)hdr.file_size);
	if (wr >= 0)
		wr = SYS1(SYS_fsync, fd);
	if (wr < 0) {
		s->write_errno = (int)-wr;
		why = "cannot write the image";
		goto refuse;
	}
	/* ---- the image is complete: libc again ---- */
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		munmap(scr, SCRATCH_SIZE);
		return err_set(err, errlen, "rename %s: %s", path, strerror(e));
	}
	if (st) {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		st->file_bytes = hdr.file_size;
		st->saved_pages = saved_pages;
		st->regions = hdr.nregions;
		st->runs = hdr.nruns;
		st->deps = hdr.ndeps;
		st->base_pages = base_pages;
		st->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			 (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	}
	munmap(scr, SCRATCH_SIZE);
	return SNAP_WRITTEN;
refuse:
	copy_str(s->err, sizeof s->err, why);
	close(fd);
	unlink(tmp);
	if (too_big)
		err_set(err, errlen, "the image would be %llu bytes, over the maximum of %llu",
			(unsigned long long)hdr.file_size, (unsigned long long)max_bytes);
	else if (s->write_errno)
		err_set(err, errlen, "%s: %s", s->err, strerror(s->write_errno));
	else
		err_set(err, errlen, "%s", s->err);
	munmap(scr, SCRATCH_SIZE);
	return too_big ? SNAP_ERR_TOO_BIG : -1;
}
