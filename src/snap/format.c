/* Snapshot file format: hashing, parsing and validating untrusted images. */
#include "common/util.h"
#include "snap/snap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct snap_header) <= SNAP_PAGE, "header must fit its page");
_Static_assert(sizeof(struct snap_region) == 48, "region layout");
_Static_assert(sizeof(struct snap_run) == 24, "run layout");
_Static_assert(sizeof(struct snap_dep) == 48, "dep layout");

/* A fast 64-bit hash for integrity against corruption (not an adversary:
 * stored blobs are addressed by SHA-256 one level up). */
uint64_t snap_hash(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	const uint64_t m = 0x9E3779B97F4A7C15ull;
	h ^= len * m;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		h = (h ^ w) * m;
		h ^= h >> 29;
		b += 8;
		len -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, b, len);
	h = (h ^ w ^ ((uint64_t)len << 56)) * m;
	h ^= h >> 32;
	return h;
}

uint64_t snap_data_hash(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len) {
		size_t n = len < SNAP_PAGE ? len : SNAP_PAGE;
		h = snap_hash(h, b, n);
		b += n;
		len -= n;
	}
	return h;
}

static int aligned(uint64_t v)
{
	return (v & (SNAP_PAGE - 1)) == 0;
}

static int terminated(const char *s, size_t n)
{
	return memchr(s, 0, n) != NULL;
}

int snap_parse(const void *header, size_t header_len, const void *table, size_t table_len,
	       uint64_t file_size, struct snap_image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img);
	struct snap_header h;
	if (header_len < sizeof h)
		return err_set(err, errlen, "file too short for a snapshot header (%zu bytes)",
			    header_len);
	memcpy(&h, header, sizeof h);
	if (memcmp(h.magic, SNAP_MAGIC, 8) != 0)
		return err_set(err, errlen, "not a thaw snapshot (bad magic)");
	if (h.version != SNAP_VERSION)
		return err_set(err, errlen, "snapshot format version %u, this thaw reads %u", h.version,
			    SNAP_VERSION);
	if (h.header_size != sizeof h)
		return err_set(err, errlen, "header size %u, expected %zu", h.header_size, sizeof h);
	uint64_t want = h.header_hash;
	h.header_hash = 0;
	if (snap_hash(0, &h, sizeof h) != want)
		return err_set(err, errlen, "header checksum mismatch (corrupt file)");
	h.header_hash = want;
	if (h.file_size != file_size)
		return err_set(err, errlen, "file is %llu bytes, header says %llu (truncated?)",
			    (unsigned long long)file_size, (unsigned long long)h.file_size);
	if (h.nregions == 0 || h.nregions > SNAP_MAX_REGIONS || h.nruns > SNAP_MAX_RUNS ||
	    h.ndeps > SNAP_MAX_DEPS || h.strings_len > SNAP_MAX_STRINGS)
		return err_set(err, errlen, "table counts out of range");
	uint64_t tlen = (uint64_t)h.nregions * sizeof(struct snap_region) +
			(uint64_t)h.nruns * sizeof(struct snap_run) +
			(uint64_t)h.ndeps * sizeof(struct snap_dep) + h.strings_len;
	if (h.table_len != tlen || table_len != tlen)
		return err_set(err, errlen, "table length does not match its counts");
	if (h.table_off < SNAP_PAGE || h.table_off > file_size || tlen > file_size - h.table_off)
		return err_set(err, errlen, "table lies outside the file");
	if (!aligned(h.data_off) || h.data_off < h.table_off + tlen || h.data_off > file_size ||
	    h.data_len > file_size - h.data_off)
		return err_set(err, errlen, "data section lies outside the file");
	if (snap_hash(0, table, tlen) != h.table_hash)
		return err_set(err, errlen, "table checksum mismatch (corrupt file)");
	if (!terminated(h.kernel, sizeof h.kernel) || !terminated(h.cpu, sizeof h.cpu))
		return err_set(err, errlen, "unterminated identity string");
	if (h.rseq_len > 4096 || h.tid_offset > 4096 || (h.tid_offset & 3))
		return err_set(err, errlen, "thread state out of range");
	/* The reserved word is zero and an image without a base has no base
	 * hash: a writer that set either meant something this reader does not
	 * know. */
	if (h.pad3 != 0 || (h.base_dep == SNAP_NO_BASE && h.base_hash != 0))
		return err_set(err, errlen, "base fields out of range");
	if (h.base_dep != SNAP_NO_BASE && h.base_dep >= h.ndeps)
		return err_set(err, errlen, "base dependency %u out of range (%u deps)", h.base_dep,
			       h.ndeps);

	void *copy = malloc(tlen ? tlen : 1);
	if (!copy)
		return err_set(err, errlen, "out of memory");
	memcpy(copy, table, tlen);
	img->h = h;
	img->table = copy;
	img->regions = copy;
	img->runs = (struct snap_run *)(img->regions + h.nregions);
	img->deps = (struct snap_dep *)(img->runs + h.nruns);
	img->strings = (char *)(img->deps + h.ndeps);

	uint64_t prev_end = 0;
	int have_stack = 0, rip_ok = 0, base_mapped = 0;
	uint32_t next_run = 0, rip_dep = SNAP_NO_BASE;
	for (uint32_t i = 0; i < h.nregions; i++) {
		const struct snap_region *r = &img->regions[i];
		if (!aligned(r->start) || !aligned(r->end) || r->start >= r->end ||
		    r->end > SNAP_USER_TOP || r->start < prev_end) {
			err_set(err, errlen, "region %u: bad or overlapping address range", i);
			goto bad;
		}
		prev_end = r->end;
		if (r->prot & ~7u || r->kind < SNAP_R_FILE || r->kind > SNAP_R_SHARED) {
			err_set(err, errlen, "region %u: bad protection or kind", i);
			goto bad;
		}
		if ((r->kind == SNAP_R_FILE || r->kind == SNAP_R_SHARED) &&
		    (r->dep >= h.ndeps || !aligned(r->file_off))) {
			err_set(err, errlen, "region %u: bad file reference", i);
			goto bad;
		}
		if (r->kind == SNAP_R_SHARED && ((r->prot & PROT_WRITE) || r->run_count)) {
			err_set(err, errlen, "region %u: a shared region must be read-only, without "
				"saved pages", i);
			goto bad;
		}
		if (r->kind == SNAP_R_STACK) {
			if (have_stack++) {
				err_set(err, errlen, "more than one stack region");
				goto bad;
			}
			if (h.ctx.rsp < r->start || h.ctx.rsp >= r->end) {
				err_set(err, errlen, "saved stack pointer outside the stack");
				goto bad;
			}
		}
		if (r->kind == SNAP_R_FILE && (r->prot & 4) && h.ctx.rip >= r->start &&
		    h.ctx.rip < r->end) {
			rip_ok = 1;
			rip_dep = r->dep;
		}
		if (r->kind == SNAP_R_FILE && r->dep == h.base_dep)
			base_mapped = 1;
		/* Runs: in order, consecutive, inside the region and the data. */
		if (r->run_first != next_run || r->run_count > h.nruns - r->run_first) {
			err_set(err, errlen, "region %u: bad run range", i);
			goto bad;
		}
		next_run += r->run_count;
		uint64_t at = r->start;
		for (uint32_t k = 0; k < r->run_count; k++) {
			const struct snap_run *u = &img->runs[r->run_first + k];
			if (!aligned(u->start) || u->start < at || u->start >= r->end || u->npages == 0 ||
			    u->npages > (r->end - u->start) / SNAP_PAGE) {
				err_set(err, errlen, "region %u run %u: outside its region", i, k);
				goto bad;
			}
			at = u->start + u->npages * SNAP_PAGE;
			if (!aligned(u->data_off) || u->data_off < h.data_off ||
			    u->data_off > h.data_off + h.data_len ||
			    u->npages > (h.data_off + h.data_len - u->data_off) / SNAP_PAGE) {
				err_set(err, errlen, "region %u run %u: data outside the file", i, k);
				goto bad;
			}
		}
	}
	if (next_run != h.nruns) {
		err_set(err, errlen, "runs not owned by any region");
		goto bad;
	}
	if (!have_stack) {
		err_set(err, errlen, "no stack region");
		goto bad;
	}
	if (!rip_ok) {
		err_set(err, errlen, "resume address outside executable file mappings");
		goto bad;
	}
	/* A base is an image the process was restored from: some of its memory
	 * comes from the base's file, and the code that resumes is the binary's,
	 * which no image can be. */
	if (h.base_dep != SNAP_NO_BASE && (!base_mapped || h.base_dep == rip_dep)) {
		err_set(err, errlen, "base dependency %u: %s", h.base_dep,
			base_mapped ? "is the binary that resumes" : "no file region maps it");
		goto bad;
	}
	for (uint32_t i = 0; i < h.ndeps; i++) {
		const struct snap_dep *d = &img->deps[i];
		if (d->path_len == 0 || d->path_off > h.strings_len ||
		    d->path_len >= h.strings_len - d->path_off ||
		    img->strings[d->path_off + d->path_len] != 0 ||
		    memchr(img->strings + d->path_off, 0, d->path_len) ||
		    img->strings[d->path_off] != '/') {
			err_set(err, errlen, "dependency %u: bad path", i);
			goto bad;
		}
	}
	return 0;
bad:
	snap_image_free(img);
	return -1;
}

void snap_image_free(struct snap_image *img)
{
	free(img->table);
	memset(img, 0, sizeof *img);
}

const char *snap_dep_path(const struct snap_image *img, uint32_t i)
{
	return img->strings + img->deps[i].path_off;
}

uint64_t snap_base_pages(const struct snap_image *img)
{
	uint64_t pages = 0;
	if (img->h.base_dep == SNAP_NO_BASE)
		return 0;
	for (uint32_t i = 0; i < img->h.nregions; i++) {
		const struct snap_region *r = &img->regions[i];
		if (r->kind != SNAP_R_FILE || r->dep != img->h.base_dep)
			continue;
		/* Runs lie inside their region without overlapping (snap_parse). */
		pages += (r->end - r->start) / SNAP_PAGE;
		for (uint32_t k = 0; k < r->run_count; k++)
			pages -= img->runs[r->run_first + k].npages;
	}
	return pages;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int snap_open(const char *path, int *fd_out, struct snap_image *img, char *err, size_t errlen)
{
	memset(img, 0, sizeof *img); /* safe to free whatever happens */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, errlen, "%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(err, errlen, "%s: not a regular file", path);
	}
	uint8_t hdr[sizeof(struct snap_header)];
	if ((uint64_t)st.st_size < sizeof hdr || read_at(fd, hdr, sizeof hdr, 0) < 0) {
		close(fd);
		return err_set(err, errlen, "file too short for a snapshot header (%lld bytes)",
			    (long long)st.st_size);
	}
	struct snap_header h;
	memcpy(&h, hdr, sizeof h);
	/* Bound the table read by the header's own limits before trusting it. */
	uint64_t tmax = (uint64_t)SNAP_MAX_REGIONS * sizeof(struct snap_region) +
			(uint64_t)SNAP_MAX_RUNS * sizeof(struct snap_run) +
			(uint64_t)SNAP_MAX_DEPS * sizeof(struct snap_dep) + SNAP_MAX_STRINGS;
	void *table = NULL;
	size_t tlen = 0;
	if (memcmp(h.magic, SNAP_MAGIC, 8) == 0 && h.table_len <= tmax &&
	    h.table_off <= (uint64_t)st.st_size && h.table_len <= (uint64_t)st.st_size - h.table_off) {
		tlen = (size_t)h.table_len;
		table = malloc(tlen ? tlen : 1);
		if (!table || read_at(fd, table, tlen, h.table_off) < 0) {
			free(table);
			close(fd);
			return err_set(err, errlen, "cannot read the snapshot table");
		}
	}
	int r = snap_parse(hdr, sizeof hdr, table ? table : "", tlen, (uint64_t)st.st_size, img, err,
			   errlen);
	free(table);
	if (r < 0) {
		close(fd);
		return -1;
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return 0;
}

int snap_base_of(const char *image_path, char *base_path, size_t n, char *err, size_t errlen)
{
	struct snap_image img;
	if (snap_open(image_path, NULL, &img, err, errlen) < 0)
		return -1;
	int rc = 0;
	if (img.h.base_dep != SNAP_NO_BASE) {
		const char *base = snap_dep_path(&img, img.h.base_dep);
		if (snprintf(base_path, n, "%s", base) >= (int)n)
			rc = err_set(err, errlen,
				     "%s: the path of its base image is longer than %zu bytes",
				     image_path, n);
		else
			rc = 1;
	}
	snap_image_free(&img);
	return rc;
}

int snap_verify_data(int fd, const struct snap_image *img, char *err, size_t errlen)
{
	uint64_t h = 0, off = img->h.data_off, left = img->h.data_len;
	size_t chunk = 1u << 20;
	uint8_t *buf = malloc(chunk);
	if (!buf)
		return err_set(err, errlen, "out of memory");
	while (left) {
		size_t n = left < chunk ? (size_t)left : chunk;
		if (read_at(fd, buf, n, off) < 0) {
			free(buf);
			return err_set(err, errlen, "cannot read snapshot data");
		}
		h = snap_data_hash(h, buf, n);
		off += n;
		left -= n;
	}
	free(buf);
	if (h != img->h.data_hash)
		return err_set(err, errlen, "data checksum mismatch (corrupt file)");
	return 0;
}

void snap_kernel_id(char *out, size_t n)
{
	struct utsname u;
	if (uname(&u) < 0) {
		snprintf(out, n, "?");
		return;
	}
	snprintf(out, n, "%s %s %.60s", u.machine, u.release, u.version);
}

void snap_cpu_id(char *out, size_t n)
{
	/* glibc picks string/memory routines by CPU features at load time, and
	 * those choices are in the image: key on the model and the flags. */
	char *buf = malloc(1 << 16);
	int fd = open("/proc/cpuinfo", O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 && buf ? read(fd, buf, (1 << 16) - 1) : -1;
	if (fd >= 0)
		close(fd);
	char model[80] = "?";
	uint64_t flags = 0;
	if (len > 0) {
		buf[len] = 0;
		char *m = strstr(buf, "model name");
		char *f = strstr(buf, "\nflags");
		if (m && (m = strchr(m, ':'))) {
			m += 2;
			size_t k = strcspn(m, "\n");
			snprintf(model, sizeof model, "%.*s", (int)(k < 79 ? k : 79), m);
		}
		if (f)
			flags = snap_hash(0, f, strcspn(f + 1, "\n") + 1);
	}
	snprintf(out, n, "%s flags:%016llx", model, (unsigned long long)flags);
	free(buf);
}

static const char *kind_name(uint32_t k)
{
	switch (k) {
	case SNAP_R_FILE: return "file";
	case SNAP_R_ANON: return "anon";
	case SNAP_R_HEAP: return "heap";
	case SNAP_R_STACK: return "stack";
	case SNAP_R_SHARED: return "shared";
	default: return "?";
	}
}

int snap_ws_info(const char *ws_path, struct snap_ws_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	/* Not blocking on a FIFO (or a device) put where the file would be, nor
	 * followed through a link: only a regular file is read. */
	int fd = open(ws_path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : err_set(err, errlen, "%s", strerror(errno));
	struct snap_ws_header wh;
	struct stat st;
	struct snap_ws_range *r = NULL;
	int rc = -1;
	if (fstat(fd, &st) < 0) {
		err_set(err, errlen, "%s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err_set(err, errlen, "not a regular file");
		goto out;
	}
	out->bytes = (uint64_t)st.st_size;
	if (read(fd, &wh, sizeof wh) != (ssize_t)sizeof wh || memcmp(wh.magic, SNAP_WS_MAGIC, 8)) {
		err_set(err, errlen, "not a working-set file");
		goto out;
	}
	if (wh.nwrite > SNAP_WS_MAX_RANGES || wh.nread > SNAP_WS_MAX_RANGES ||
	    (uint64_t)st.st_size !=
		    sizeof wh + ((uint64_t)wh.nwrite + wh.nread) * sizeof(struct snap_ws_range)) {
		err_set(err, errlen, "%u + %u ranges do not fit its %llu bytes", wh.nwrite,
			wh.nread, (unsigned long long)st.st_size);
		goto out;
	}
	size_t cnt = (size_t)wh.nwrite + wh.nread;
	r = malloc(cnt ? cnt * sizeof *r : 1);
	if (!r) {
		err_set(err, errlen, "out of memory");
		goto out;
	}
	if ((cnt && read(fd, r, cnt * sizeof *r) != (ssize_t)(cnt * sizeof *r)) ||
	    snap_hash(0, r, cnt * sizeof *r) != wh.ranges_hash) {
		err_set(err, errlen, "its ranges do not match their hash");
		goto out;
	}
	for (size_t i = 0; i < cnt; i++) {
		if ((r[i].start & (SNAP_PAGE - 1)) || r[i].npages == 0 ||
		    r[i].start >= SNAP_USER_TOP ||
		    r[i].npages > (SNAP_USER_TOP - r[i].start) / SNAP_PAGE) {
			err_set(err, errlen, "range %zu is outside the user address space", i);
			goto out;
		}
		/* At most 2^20 ranges of at most 2^35 pages each: no overflow. */
		if (i < wh.nwrite)
			out->write_pages += r[i].npages;
		else
			out->read_pages += r[i].npages;
	}
	out->nwrite = wh.nwrite;
	out->nread = wh.nread;
	out->image_hash = wh.image_hash;
	rc = 1;
out:
	free(r);
	close(fd);
	return rc;
}

/* inspect's line for IMAGE.ws, the working set restores of the image populate. */
static void inspect_ws(const char *path, const struct snap_header *h, FILE *out)
{
	char *ws = xasprintf("%s.ws", path), err[256];
	struct snap_ws_info wi;
	int rc = snap_ws_info(ws, &wi, err, sizeof err);
	if (rc == 0)
		fprintf(out, "  working set none (no %s)\n", ws);
	else if (rc < 0)
		fprintf(out, "  working set %s: invalid, restores ignore it: %s\n", ws, err);
	else if (wi.image_hash != h->header_hash)
		fprintf(out,
			"  working set %s: made for another image (header hash %016llx), "
			"restores ignore it\n",
			ws, (unsigned long long)wi.image_hash);
	else
		fprintf(out,
			"  working set %s: %llu bytes; %llu pages written (%.1f MiB, %u ranges), "
			"%llu read (%.1f MiB, %u ranges)\n",
			ws, (unsigned long long)wi.bytes, (unsigned long long)wi.write_pages,
			(double)wi.write_pages * SNAP_PAGE / (1 << 20), wi.nwrite,
			(unsigned long long)wi.read_pages,
			(double)wi.read_pages * SNAP_PAGE / (1 << 20), wi.nread);
	free(ws);
}

int snap_inspect(const char *path, FILE *out, int verify_data)
{
	char err[256];
	struct snap_image img;
	int fd;
	if (snap_open(path, &fd, &img, err, sizeof err) < 0) {
		fprintf(out, "%s: invalid snapshot: %s\n", path, err);
		return -1;
	}
	const struct snap_header *h = &img.h;
	uint64_t saved = 0, mapped = 0;
	for (uint32_t i = 0; i < h->nruns; i++)
		saved += img.runs[i].npages * SNAP_PAGE;
	for (uint32_t i = 0; i < h->nregions; i++)
		mapped += img.regions[i].end - img.regions[i].start;
	fprintf(out, "snapshot %s\n", path);
	fprintf(out, "  format      %.8s version %u\n", h->magic, h->version);
	fprintf(out, "  file        %llu bytes (%llu of saved pages)\n",
		(unsigned long long)h->file_size, (unsigned long long)saved);
	fprintf(out, "  address     %llu bytes mapped in %u regions, %u runs\n",
		(unsigned long long)mapped, h->nregions, h->nruns);
	if (h->base_dep == SNAP_NO_BASE)
		fprintf(out, "  base        none\n");
	else
		fprintf(out, "  base        %s (header hash %016llx, %llu bytes)\n",
			snap_dep_path(&img, h->base_dep), (unsigned long long)h->base_hash,
			(unsigned long long)img.deps[h->base_dep].size);
	/* What a delta costs against what it shares: the pages in this file,
	 * the pages its base provides, and the mmap calls a restore makes (one
	 * per region and one per run, roughly what it takes). */
	uint64_t own = saved / SNAP_PAGE, from_base = snap_base_pages(&img);
	fprintf(out, "  pages       %llu own (%.1f MiB), %llu from the base (%.1f MiB)\n",
		(unsigned long long)own, (double)own * SNAP_PAGE / (1 << 20),
		(unsigned long long)from_base, (double)from_base * SNAP_PAGE / (1 << 20));
	fprintf(out, "  mappings    %llu at restore (%u regions + %u runs)\n",
		(unsigned long long)h->nregions + h->nruns, h->nregions, h->nruns);
	inspect_ws(path, h, out);
	time_t made = (time_t)(h->created_unix_ns / 1000000000ull);
	struct tm tm;
	char when[64] = "?";
	if (gmtime_r(&made, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
	fprintf(out, "  created     %s\n", when);
	fprintf(out, "  kernel      %s\n  cpu         %s\n", h->kernel, h->cpu);
	fprintf(out, "  vdso        0x%llx\n  brk         0x%llx\n", (unsigned long long)h->vdso_start,
		(unsigned long long)h->brk);
	fprintf(out, "  resume      rip 0x%llx rsp 0x%llx fs 0x%llx\n", (unsigned long long)h->ctx.rip,
		(unsigned long long)h->ctx.rsp, (unsigned long long)h->ctx.fs_base);
	fprintf(out, "regions:\n");
	for (uint32_t i = 0; i < h->nregions; i++) {
		const struct snap_region *r = &img.regions[i];
		uint64_t pages = 0;
		for (uint32_t k = 0; k < r->run_count; k++)
			pages += img.runs[r->run_first + k].npages;
		fprintf(out, "  %012llx-%012llx %c%c%c %-5s %8llu KiB saved %6llu KiB%s%s\n",
			(unsigned long long)r->start, (unsigned long long)r->end,
			r->prot & 1 ? 'r' : '-', r->prot & 2 ? 'w' : '-', r->prot & 4 ? 'x' : '-',
			kind_name(r->kind), (unsigned long long)((r->end - r->start) / 1024),
			(unsigned long long)(pages * 4),
			r->kind == SNAP_R_FILE || r->kind == SNAP_R_SHARED ? " " : "",
			r->kind == SNAP_R_FILE || r->kind == SNAP_R_SHARED ? snap_dep_path(&img, r->dep)
									     : "");
	}
	fprintf(out, "dependencies:\n");
	for (uint32_t i = 0; i < h->ndeps; i++) {
		const struct snap_dep *d = &img.deps[i];
		fprintf(out, "  %s (dev %llx inode %llu, %llu bytes, mtime %lld)\n", snap_dep_path(&img, i),
			(unsigned long long)d->dev, (unsigned long long)d->ino,
			(unsigned long long)d->size, (long long)d->mtime_sec);
	}
	int rc = 0;
	if (verify_data) {
		if (snap_verify_data(fd, &img, err, sizeof err) < 0) {
			fprintf(out, "data: INVALID: %s\n", err);
			rc = -1;
		} else {
			fprintf(out, "data: checksum ok\n");
		}
	}
	close(fd);
	snap_image_free(&img);
	return rc;
}
