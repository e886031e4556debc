/*
 * Restore, the careful half: every check that can refuse an image runs here
 * (those the host shares, through snap_check_host in compat.c), with libc,
 * before anything is replaced. Then the plan is laid out in
 * scratch memory placed where neither this process nor the image has
 * anything, and the core (restore_core.c) takes over on a stack in it.
 */
#include "snap/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "snap/sys.h"

extern const ptrdiff_t __rseq_offset;
extern const unsigned int __rseq_size;

struct snap_restored snap_restored_info;
static uint64_t asked_ns;

void snap_restore_asked(uint64_t mono_ns)
{
	asked_ns = mono_ns;
}

#define CORE_STACK (256u * 1024u)

struct cur_map {
	uint64_t lo, hi, off, ino;
	char perms[5];
	const char *path; /* into read_maps' buffer, whole: no length limit */
};

static uint64_t hex_field(const char **p, const char *end)
{
	uint64_t v = 0;
	for (; *p < end; (*p)++) {
		char c = **p;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			break;
		v = v << 4 | (uint64_t)d;
	}
	return v;
}

static uint64_t dec_field(const char **p, const char *end)
{
	uint64_t v = 0;
	for (; *p < end && **p >= '0' && **p <= '9'; (*p)++)
		v = v * 10 + (uint64_t)(**p - '0');
	return v;
}

/* One line of /proc/self/maps: "lo-hi perms off dev ino   path", ending at
 * end, where a NUL is (the line's newline replaced). */
static int parse_maps_line(const char *p, const char *end, struct cur_map *c)
{
	c->lo = hex_field(&p, end);
	if (p >= end || *p++ != '-')
		return -1;
	c->hi = hex_field(&p, end);
	if (end - p < 6 || *p++ != ' ')
		return -1;
	memcpy(c->perms, p, 4);
	c->perms[4] = 0;
	p += 4;
	if (*p++ != ' ')
		return -1;
	c->off = hex_field(&p, end);
	if (p >= end || *p++ != ' ')
		return -1;
	while (p < end && *p != ' ') /* dev */
		p++;
	if (p >= end || *p++ != ' ')
		return -1;
	c->ino = dec_field(&p, end);
	while (p < end && *p == ' ')
		p++;
	c->path = p;
	return 0;
}

/* This process's mappings, in address order: one read(2) loop and a parser
 * of our own (stdio's scanf was a third of a restore's checks). The paths
 * point into *text: free both. */
static int read_maps(struct cur_map **out, size_t *n, char **text)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (!buf)
			break;
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(buf);
			buf = NULL;
		}
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (!buf)
		return -1;
	buf[len] = 0; /* room: at least 4096 bytes were free before the last read */
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += buf[i] == '\n';
	struct cur_map *m = malloc((lines + 1) * sizeof *m);
	size_t cnt = 0;
	for (char *p = buf, *end = buf + len; m && p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		*eol = 0;
		if (cnt <= lines && parse_maps_line(p, eol, &m[cnt]) == 0)
			cnt++;
		p = nl ? nl + 1 : end;
	}
	if (!m) {
		free(buf);
		return -1;
	}
	*out = m;
	*n = cnt;
	*text = buf;
	return 0;
}

void snap_restore_prepare(void)
{
	/* Warm what every restore's checks use first, while this process
	 * waits for work: the page faults of its code and buffers are then
	 * not taken on a request's path. Nothing is kept: the mappings may
	 * change before the restore. */
	struct cur_map *cur = NULL;
	size_t ncur = 0;
	char *text = NULL;
	if (read_maps(&cur, &ncur, &text) == 0) {
		free(cur);
		free(text);
	}
}

static int special(const char *path)
{
	return !strcmp(path, "[vdso]") || !strcmp(path, "[vvar]") || !strcmp(path, "[vsyscall]") ||
	       !strcmp(path, "[vvar_vclock]");
}

/* Largest-gap search over two sorted interval lists. */
static uint64_t find_gap(const struct snap_image *img, const struct cur_map *cur, size_t ncur,
			 uint64_t size)
{
	uint64_t best = 0, best_len = 0;
	uint64_t lo_bound = 0x10000000ull;
	size_t i = 0, j = 0;
	uint64_t at = lo_bound;
	for (;;) {
		uint64_t next_lo, next_hi;
		if (i < img->h.nregions && (j >= ncur || img->regions[i].start <= cur[j].lo)) {
			next_lo = img->regions[i].start;
			next_hi = img->regions[i].end;
			i++;
		} else if (j < ncur && cur[j].lo < SNAP_USER_TOP) {
			next_lo = cur[j].lo;
			next_hi = cur[j].hi;
			j++;
		} else {
			break;
		}
		if (next_lo > at && next_lo - at > best_len) {
			best = at;
			best_len = next_lo - at;
		}
		if (next_hi > at)
			at = next_hi;
	}
	if (best_len < size + 2 * SNAP_PAGE)
		return 0;
	/* Sit in the middle of the gap, clear of both neighbours. */
	return (best + (best_len - size) / 2) & ~(uint64_t)(SNAP_PAGE - 1);
}

/* The first of the image's regions (sorted, disjoint: snap_parse) that ends
 * above addr. */
static uint32_t first_region_above(const struct snap_image *img, uint64_t addr)
{
	uint32_t lo = 0, hi = img->h.nregions;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (img->regions[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The mapping of this process that starts at addr, or NULL (cur is sorted). */
static const struct cur_map *cur_at(const struct cur_map *cur, size_t ncur, uint64_t addr)
{
	size_t lo = 0, hi = ncur;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cur[mid].lo < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ncur && cur[lo].lo == addr ? &cur[lo] : NULL;
}

/*
 * Which saved runs to read into place rather than map from the image: short
 * ones the write set covers whole. Their pages are copied by populating
 * anyway (a copy of what lies beneath, then the run's bytes over it), so
 * reading them costs no memory a mapping would have spared, and saves a
 * mapping each: an own run of a delta splits the base's mapping it lies in
 * (~4 us a mapping here, where a hello image has ~290 such runs, nearly all
 * of 1-4 pages). A run partly outside the write set stays mapped (its other
 * pages would become private), and so does a long one (a mapping is cheaper
 * than copying each page twice). Runs in regions that are not writable, and
 * the stack's (read in anyway), are mapped. The ranges must be sorted and
 * disjoint (as snap_record_ws writes them); otherwise nothing is read in.
 */
#define COPY_MAX_PAGES 4
static void mark_copies(const struct snap_image *img, struct snap_plan *p,
			const struct snap_ws_range *ws, size_t nwrite)
{
	memset(p->copy, 0, img->h.nruns);
	for (size_t k = 1; k < nwrite; k++)
		if (ws[k].start < ws[k - 1].start + ws[k - 1].npages * SNAP_PAGE)
			return;
	size_t w = 0;
	for (uint32_t i = 0; i < img->h.nregions; i++) {
		const struct snap_region *r = &img->regions[i];
		if (r->kind == SNAP_R_STACK || r->kind == SNAP_R_SHARED ||
		    !(r->prot & PROT_WRITE) || !(r->prot & PROT_READ))
			continue;
		for (uint32_t k = r->run_first; k < r->run_first + r->run_count; k++) {
			const struct snap_run *u = &img->runs[k];
			uint64_t lo = u->start, hi = u->start + u->npages * SNAP_PAGE, in = 0;
			while (w < nwrite && ws[w].start + ws[w].npages * SNAP_PAGE <= lo)
				w++;
			for (size_t j = w; j < nwrite && ws[j].start < hi; j++) {
				uint64_t a = ws[j].start > lo ? ws[j].start : lo;
				uint64_t e = ws[j].start + ws[j].npages * SNAP_PAGE;
				in += ((e < hi ? e : hi) - a) / SNAP_PAGE;
			}
			if (in == u->npages && u->npages <= COPY_MAX_PAGES) {
				p->copy[k] = 1;
				p->info.copied_pages += u->npages;
			}
		}
	}
}

/* Read IMAGE.ws if present and made for this image; anything odd: ignore it. */
static void load_ws(const char *image, uint64_t image_hash, struct snap_ws_range **out, size_t *n,
		    size_t *nwrite)
{
	char path[4096];
	*out = NULL;
	*n = *nwrite = 0;
	if (snprintf(path, sizeof path, "%s.ws", image) >= (int)sizeof path)
		return;
	/* Not a FIFO or a device left in its place: a restore must not block. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return;
	struct snap_ws_header wh;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    read(fd, &wh, sizeof wh) != (ssize_t)sizeof wh ||
	    memcmp(wh.magic, SNAP_WS_MAGIC, 8) != 0 || wh.image_hash != image_hash ||
	    wh.nwrite > SNAP_WS_MAX_RANGES || wh.nread > SNAP_WS_MAX_RANGES ||
	    (uint64_t)st.st_size !=
		    sizeof wh + ((uint64_t)wh.nwrite + wh.nread) * sizeof(struct snap_ws_range)) {
		close(fd);
		return;
	}
	size_t cnt = (size_t)wh.nwrite + wh.nread;
	struct snap_ws_range *r = malloc(cnt ? cnt * sizeof *r : 1);
	if (!r || (cnt && read(fd, r, cnt * sizeof *r) != (ssize_t)(cnt * sizeof *r)) ||
	    snap_hash(0, r, cnt * sizeof *r) != wh.ranges_hash) {
		free(r);
		close(fd);
		return;
	}
	close(fd);
	for (size_t i = 0; i < cnt; i++) {
		if ((r[i].start & (SNAP_PAGE - 1)) || r[i].npages == 0 ||
		    r[i].start >= SNAP_USER_TOP ||
		    r[i].npages > (SNAP_USER_TOP - r[i].start) / SNAP_PAGE) {
			free(r);
			return;
		}
	}
	*out = r;
	*n = cnt;
	*nwrite = wh.nwrite;
}

int snap_restore(const char *path, unsigned flags, const void *carry, size_t carry_len, char *err,
		 size_t errlen)
{
	struct timespec ts0;
	clock_gettime(CLOCK_MONOTONIC, &ts0);
	struct snap_image img;
	int fd = -1, rc = -1;
	int *fds = NULL;
	struct cur_map *cur = NULL;
	char *maps_text = NULL;
	size_t ncur = 0;
	if (snap_open(path, &fd, &img, err, errlen) < 0)
		return -1;
	const struct snap_header *h = &img.h;

	/* The machine, the binary and the deps must be the ones the image
	 * expects (the same rule the host applies to a stored image, once:
	 * SNAP_RESTORE_CHECKED)... */
	if (!(flags & SNAP_RESTORE_CHECKED) && snap_check_host(&img, err, errlen) < 0)
		goto out;
	/* ...and so must this process. */
	int pers = personality(0xffffffff);
	if (pers < 0 || !(pers & ADDR_NO_RANDOMIZE)) {
		err_set(err, errlen, "this process was started with address randomisation on");
		goto out;
	}
	if (getauxval(AT_SYSINFO_EHDR) != h->vdso_start) {
		err_set(err, errlen, "the vDSO is at 0x%lx, the image expects 0x%llx",
			getauxval(AT_SYSINFO_EHDR), (unsigned long long)h->vdso_start);
		goto out;
	}
	fds = calloc(h->ndeps ? h->ndeps : 1, sizeof *fds);
	if (!fds) {
		err_set(err, errlen, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < h->ndeps; i++)
		fds[i] = -1;
	for (uint32_t i = 0; i < h->ndeps; i++) {
		const char *p = snap_dep_path(&img, i);
		struct stat st;
		fds[i] = open(p, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang us */
		if (fds[i] < 0 || fstat(fds[i], &st) < 0) {
			/* Worded as snap_check_host words it (the host tells a
			 * delta whose base went from a broken image by it). */
			if (i == h->base_dep && errno == ENOENT)
				err_set(err, errlen, "its base image %s is missing", p);
			else if (i == h->base_dep)
				err_set(err, errlen, "its base image %s: %s", p, strerror(errno));
			else
				err_set(err, errlen, "%s: %s", p, strerror(errno));
			goto out;
		}
		/* Again on the fd that will be mapped: the file may have been
		 * replaced since snap_check_host looked at its path. */
		if (!snap_dep_matches(&img.deps[i], &st)) {
			if (i == h->base_dep)
				err_set(err, errlen,
					"its base image %s has changed since the image was "
					"built on it",
					p);
			else
				err_set(err, errlen, "%s changed since the snapshot was made", p);
			goto out;
		}
	}
	if (h->base_dep != SNAP_NO_BASE && snap_check_base(&img, fds[h->base_dep], err, errlen) < 0)
		goto out;
	/* Who we are restored from, for a checkpoint that will name it as its
	 * base: the identity of the file being mapped, not of its path. */
	struct stat image_st;
	if (fstat(fd, &image_st) < 0) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}

	/* This process's own layout must agree with the image where it matters:
	 * the code running now, and the stack's top. */
	if (read_maps(&cur, &ncur, &maps_text) < 0) {
		err_set(err, errlen, "cannot read /proc/self/maps");
		goto out;
	}
	uint64_t self_code = (uint64_t)(uintptr_t)&snap_restore_core;
	int code_ok = 0, stack_ok = 0;
	const char *replaced = NULL; /* our own code's file, gone from its path */
	for (size_t c = 0; c < ncur; c++) {
		const struct cur_map *m = &cur[c];
		size_t ml = strlen(m->path);
		if (self_code >= m->lo && self_code < m->hi && ml > 10 &&
		    !strcmp(m->path + ml - 10, " (deleted)"))
			replaced = m->path;
		for (uint32_t i = 0; i < h->nregions; i++) {
			const struct snap_region *r = &img.regions[i];
			if (r->kind == SNAP_R_STACK && !strcmp(m->path, "[stack]") &&
			    r->end == m->hi)
				stack_ok = 1;
			if (self_code >= m->lo && self_code < m->hi && r->kind == SNAP_R_FILE &&
			    r->start == m->lo && r->end == m->hi && r->file_off == m->off &&
			    img.deps[r->dep].ino == m->ino &&
			    !strcmp(snap_dep_path(&img, r->dep), m->path))
				code_ok = 1;
		}
	}
	if (!code_ok && replaced) {
		/* In a sandbox the old file stays bound at its path, so the checks
		 * above passed: the binary was replaced on disk after this process
		 * started. New processes run the new one: the image must go. */
		err_set(err, errlen, "%.*s changed since the snapshot was made (replaced on disk)",
			(int)(strlen(replaced) - 10), replaced);
		goto out;
	}
	if (!code_ok) {
		err_set(err, errlen,
			"this binary's code is not where the image has it (another build?)");
		goto out;
	}
	if (!stack_ok) {
		err_set(err, errlen, "the stack's top differs from the image's");
		goto out;
	}

	/* The recorded working set, if a first restore left one. */
	struct snap_ws_range *ws = NULL;
	size_t nws = 0, nwrite = 0;
	if (!(flags & SNAP_RESTORE_NO_WS))
		load_ws(path, h->header_hash, &ws, &nws, &nwrite);

	/* Lay the plan out in scratch memory free in both layouts. */
	size_t unmap_max = ncur * 4 + 4;
	size_t pop_max = nws + (size_t)h->nregions * 2 + 4;
	size_t sz = CORE_STACK + sizeof(struct snap_plan) + unmap_max * sizeof(struct plan_range) +
		    (size_t)h->nregions * sizeof(struct plan_op) +
		    (size_t)h->nruns * (sizeof(struct snap_run) + 1) +
		    (size_t)h->ndeps * sizeof(int) + pop_max * sizeof(struct plan_populate) +
		    carry_len + 64 * 8;
	sz = (sz + SNAP_PAGE - 1) & ~(size_t)(SNAP_PAGE - 1);
	uint64_t where = find_gap(&img, cur, ncur, sz);
	if (!where) {
		err_set(err, errlen, "no room for the restore's scratch memory");
		goto out;
	}
	uint8_t *scr = mmap((void *)where, sz, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (scr == MAP_FAILED || (uint64_t)scr != where) {
		err_set(err, errlen,
			"cannot map the restore's scratch memory at 0x%llx (%zu bytes): %s",
			(unsigned long long)where, sz, strerror(errno));
		goto out;
	}
	uint8_t *at = scr + CORE_STACK;
#define TAKE(type, count)                                                                          \
	({                                                                                         \
		type *p_ = (type *)at;                                                             \
		at += (((size_t)(count) * sizeof(type)) + 63) & ~(size_t)63;                       \
		p_;                                                                                \
	})
	struct snap_plan *p = TAKE(struct snap_plan, 1);
	p->unmap = TAKE(struct plan_range, unmap_max);
	p->ops = TAKE(struct plan_op, h->nregions);
	p->runs = TAKE(struct snap_run, h->nruns);
	p->copy = TAKE(uint8_t, h->nruns);
	p->fds = TAKE(int, h->ndeps);
	p->pop = TAKE(struct plan_populate, pop_max);
	uint8_t *carry_copy = TAKE(uint8_t, carry_len);
#undef TAKE
	memcpy(p->runs, img.runs, (size_t)h->nruns * sizeof(struct snap_run));
	memcpy(p->fds, fds, (size_t)h->ndeps * sizeof(int));
	p->nfds = h->ndeps;
	if (carry_len)
		memcpy(carry_copy, carry, carry_len);
	p->ctx = h->ctx;
	p->snap_fd = fd;
	p->brk = h->brk;
	p->tid_offset = h->tid_offset;
	p->sigmask = h->sigmask;
	memcpy(p->sigs, h->sigs, sizeof p->sigs);
	p->info = (struct snap_restored){
		.magic = SNAP_RESTORED_MAGIC,
		.scratch = where,
		.scratch_len = sz,
		.carry = (uint64_t)(uintptr_t)carry_copy,
		.carry_len = carry_len,
		.t0_ns = (uint64_t)ts0.tv_sec * 1000000000ull + (uint64_t)ts0.tv_nsec,
		.t_asked_ns = asked_ns,
	};
	p->info.image_hash = h->header_hash;
	p->info.image_dev = (uint64_t)image_st.st_dev;
	p->info.image_ino = (uint64_t)image_st.st_ino;
	p->info_dst = &snap_restored_info;
	/* Clip each recorded range to the image's regions that allow it. */
	for (size_t k = 0; k < nws; k++) {
		int write = k < nwrite;
		uint64_t lo = ws[k].start, hi = ws[k].start + ws[k].npages * SNAP_PAGE;
		for (uint32_t i = first_region_above(&img, lo);
		     i < h->nregions && img.regions[i].start < hi && p->npop < pop_max; i++) {
			const struct snap_region *r = &img.regions[i];
			if (r->kind == SNAP_R_STACK)
				continue;
			if (!(r->prot & PROT_READ) || (write && !(r->prot & PROT_WRITE)))
				continue;
			uint64_t a = lo > r->start ? lo : r->start, b = hi < r->end ? hi : r->end;
			p->pop[p->npop++] = (struct plan_populate){
				a, b - a, write ? 23 /* MADV_POPULATE_WRITE */ : 22 /* _READ */};
			p->info.populated_pages += (b - a) / SNAP_PAGE;
		}
	}
	mark_copies(&img, p, ws, nwrite);
	free(ws);

	/* What this process maps that the image does not: unmapped first. */
	for (size_t c = 0; c < ncur; c++) {
		const struct cur_map *m = &cur[c];
		if (special(m->path) || !strcmp(m->path, "[stack]") || m->lo == where)
			continue;
		uint64_t lo = m->lo;
		for (uint32_t i = first_region_above(&img, lo);
		     i < h->nregions && lo < m->hi && img.regions[i].start < m->hi; i++) {
			const struct snap_region *r = &img.regions[i];
			if (r->start > lo && p->nunmap < unmap_max)
				p->unmap[p->nunmap++] = (struct plan_range){lo, r->start};
			lo = r->end;
		}
		if (lo < m->hi && p->nunmap < unmap_max)
			p->unmap[p->nunmap++] = (struct plan_range){lo, m->hi};
	}
	for (uint32_t i = 0; i < h->nregions; i++) {
		const struct snap_region *r = &img.regions[i];
		struct plan_op *o = &p->ops[p->nops++];
		*o = (struct plan_op){.start = r->start,
				      .end = r->end,
				      .file_off = r->file_off,
				      .prot = r->prot,
				      .kind = r->kind,
				      .fd = -1,
				      .run_first = r->run_first,
				      .run_count = r->run_count};
		if (r->kind == SNAP_R_FILE || r->kind == SNAP_R_SHARED) {
			char want_share = r->kind == SNAP_R_SHARED ? 's' : 'p';
			o->fd = fds[r->dep];
			/* Already mapped, same file, same place, same rights, and
			 * nothing to lay over: leave it (this is how the code now
			 * running stays put). */
			const struct cur_map *m = r->run_count ? NULL : cur_at(cur, ncur, r->start);
			if (m) {
				int prot = (m->perms[0] == 'r' ? PROT_READ : 0) |
					   (m->perms[1] == 'w' ? PROT_WRITE : 0) |
					   (m->perms[2] == 'x' ? PROT_EXEC : 0);
				if (m->lo == r->start && m->hi == r->end && m->off == r->file_off &&
				    m->ino == img.deps[r->dep].ino && (uint32_t)prot == r->prot &&
				    m->perms[3] == want_share &&
				    !strcmp(m->path, snap_dep_path(&img, r->dep)))
					o->skip_base = 1;
			}
		}
	}

	/* rseq: the kernel writes into the registered area on preemption; it
	 * must not point into memory being replaced. Unregister now (the
	 * registered length is glibc's; try the two it may have used). */
	if (__rseq_size) {
		uint64_t tp;
		__asm__ volatile("mov %%fs:0, %0" : "=r"(tp));
		uint64_t cur_area = tp + (uint64_t)__rseq_offset;
		uint32_t lens[2] = {32, __rseq_size};
		for (int k = 0; k < 2 && !p->rseq_len; k++)
			if (SYS4(SYS_rseq, cur_area, lens[k], 1, 0x53053053) == 0)
				p->rseq_len = lens[k];
		if (p->rseq_len && h->rseq_len) {
			p->rseq_addr = h->rseq_addr;
			p->rseq_sig = h->rseq_sig;
		} else {
			p->rseq_len = 0;
		}
	}
	free(cur);
	free(maps_text);
	free(fds);
	snap_image_free(&img);
	snap_switch_stack(p, snap_restore_core, scr + CORE_STACK);

out:
	if (fds) {
		for (uint32_t i = 0; i < h->ndeps; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
	}
	free(cur);
	free(maps_text);
	if (fd >= 0)
		close(fd);
	snap_image_free(&img);
	return rc;
}

const void *snap_carried(size_t *len)
{
	if (snap_restored_info.magic != SNAP_RESTORED_MAGIC)
		return NULL;
	*len = snap_restored_info.carry_len;
	return (const void *)(uintptr_t)snap_restored_info.carry;
}

int snap_restore_times(struct snap_restore_times *t)
{
	if (snap_restored_info.magic != SNAP_RESTORED_MAGIC)
		return -1;
	const struct snap_restored *i = &snap_restored_info;
	*t = (struct snap_restore_times){i->t_asked_ns,   i->t0_ns,   i->t_core_ns,
					 i->t_mapped_ns,  i->t1_ns,   i->populated_pages,
					 i->copied_pages, i->mappings};
	return 0;
}

double snap_restore_ms(void)
{
	if (snap_restored_info.magic != SNAP_RESTORED_MAGIC)
		return 0;
	return (double)(snap_restored_info.t1_ns - snap_restored_info.t0_ns) / 1e6;
}

void snap_release(void)
{
	if (snap_restored_info.magic != SNAP_RESTORED_MAGIC)
		return;
	munmap((void *)(uintptr_t)snap_restored_info.scratch, snap_restored_info.scratch_len);
	snap_restored_info.magic = 0;
	snap_restored_info.carry = 0;
	snap_restored_info.carry_len = 0;
}

uint64_t snap_image_hash(void)
{
	return snap_restored_info.image_hash;
}

/* Append the runs of pages matching `want` to a growable range list. */
static int ws_scan(int pm_fd, uint64_t lo, uint64_t hi, int want_write, struct snap_ws_range **v,
		   size_t *n, size_t *cap)
{
	uint64_t buf[4096];
	uint64_t pages = (hi - lo) / SNAP_PAGE, run_start = 0, run_len = 0;
	for (uint64_t base = 0; base < pages; base += 4096) {
		uint64_t cnt = pages - base < 4096 ? pages - base : 4096;
		if (pread(pm_fd, buf, cnt * 8, (off_t)((lo / SNAP_PAGE + base) * 8)) !=
		    (ssize_t)(cnt * 8))
			return -1;
		for (uint64_t i = 0; i <= cnt; i++) {
			int hit = 0;
			if (i < cnt && (buf[i] & (1ull << 63)))
				hit = want_write ? !(buf[i] & (1ull << 61))
						 : !!(buf[i] & (1ull << 61));
			uint64_t addr = lo + (base + i) * SNAP_PAGE;
			if (hit) {
				if (!run_len)
					run_start = addr;
				run_len++;
				continue;
			}
			if (!run_len || (i == cnt && base + cnt < pages))
				continue; /* a run may go on in the next chunk */
			if (*n == *cap) {
				*cap = *cap ? *cap * 2 : 1024;
				struct snap_ws_range *nv = realloc(*v, *cap * sizeof **v);
				if (!nv)
					return -1;
				*v = nv;
			}
			(*v)[(*n)++] = (struct snap_ws_range){run_start, run_len};
			run_len = 0;
		}
	}
	return 0;
}

int snap_record_ws(const char *ws_path, char *err, size_t errlen)
{
	uint64_t image = snap_image_hash();
	if (!image)
		return err_set(err, errlen, "this process was not restored from a snapshot");
	struct cur_map *cur = NULL;
	size_t ncur = 0;
	char *maps_text = NULL;
	if (read_maps(&cur, &ncur, &maps_text) < 0)
		return err_set(err, errlen, "cannot read /proc/self/maps");
	int pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0) {
		free(cur);
		free(maps_text);
		return err_set(err, errlen, "cannot open /proc/self/pagemap: %s", strerror(errno));
	}
	struct snap_ws_range *w = NULL, *r = NULL;
	size_t nw = 0, capw = 0, nr = 0;
	int bad = 0;
	for (size_t c = 0; c < ncur && !bad; c++) {
		const struct cur_map *m = &cur[c];
		if (special(m->path) || !strcmp(m->path, "[stack]") || m->perms[0] != 'r' ||
		    m->lo >= SNAP_USER_TOP)
			continue;
		/* Written pages only. Populating the read set too was measured
		 * slower (fastapi worker: +2.2 ms for 6,700 pages, of which the
		 * first request needed ~400): it holds every page the recording
		 * process had resident, library text from its own start-up
		 * included. The format keeps room for reads (nread). */
		bad |= ws_scan(pm_fd, m->lo, m->hi, 1, &w, &nw, &capw) < 0;
	}
	close(pm_fd);
	free(cur);
	free(maps_text);
	if (bad || nw > SNAP_WS_MAX_RANGES || nr > SNAP_WS_MAX_RANGES) {
		free(w);
		free(r);
		return err_set(err, errlen, "cannot read the page map");
	}
	struct snap_ws_header wh = {.nwrite = (uint32_t)nw,
				    .nread = (uint32_t)nr,
				    .image_hash = image};
	memcpy(wh.magic, SNAP_WS_MAGIC, 8);
	uint64_t hsh;
	/* The hash covers write ranges then read ranges, as one buffer. */
	struct snap_ws_range *all = malloc((nw + nr + 1) * sizeof *all);
	if (!all) {
		free(w);
		free(r);
		return err_set(err, errlen, "out of memory");
	}
	if (nw)
		memcpy(all, w, nw * sizeof *all);
	if (nr)
		memcpy(all + nw, r, nr * sizeof *all);
	free(w);
	free(r);
	hsh = snap_hash(0, all, (nw + nr) * sizeof *all);
	wh.ranges_hash = hsh;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", ws_path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int ok = fd >= 0 && write(fd, &wh, sizeof wh) == (ssize_t)sizeof wh &&
		 write(fd, all, (nw + nr) * sizeof *all) == (ssize_t)((nw + nr) * sizeof *all);
	free(all);
	if (fd >= 0)
		close(fd);
	if (!ok || rename(tmp, ws_path) < 0) {
		unlink(tmp);
		return err_set(err, errlen, "cannot write %s: %s", ws_path, strerror(errno));
	}
	return 0;
}
