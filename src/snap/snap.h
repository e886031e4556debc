/*
 * snap: checkpoint the calling process's memory to a file, and restore a
 * fresh process of the same binary from it. Knows nothing of Python or HTTP.
 * x86_64 Linux only; no privileges needed.
 *
 * THE FILE (all integers little-endian; "page" is 4096 bytes)
 *
 *   offset 0            struct snap_header (one page, zero padded)
 *   table_off           struct snap_region[nregions]   sorted by address
 *                       struct snap_run[nruns]         saved page runs
 *                       struct snap_dep[ndeps]         files the image maps
 *                       char strings[strings_len]      dep paths
 *   data_off (aligned)  the saved pages, each run page aligned, so that a
 *                       restore maps them MAP_PRIVATE straight from the file
 *
 *   header_hash covers the header (with itself zeroed), table_hash the table,
 *   data_hash every data byte (snap_data_hash: chained page by page). The
 *   first two are checked on every restore; data_hash by snap_verify_data
 *   (once per file, by whoever stores it), because reading every page at
 *   each restore would cost what mapping saves. The version is 2 (it added
 *   the base, below); a file of any other version is refused, and the host
 *   builds the image again.
 *
 * WHAT IS SAVED
 *   - every mapping from /proc/self/maps, as a region: its address range,
 *     protection, and kind:
 *       FILE  private file mapping: re-mapped from its file (a dep); pages the
 *             process wrote (pagemap: present and not a file page) are saved
 *             as runs laid over it (.data, .bss-in-file, relocated RELRO, GOT);
 *       ANON  anonymous private memory: present pages saved as runs; the rest
 *             is zero;
 *       HEAP  like ANON, and the program break is set to its end first;
 *       STACK the main stack: copied back in, because it must stay the
 *             kernel's grows-down mapping (this also brings back argv,
 *             environ and auxv of the checkpointed process);
 *       SHARED a read-only shared view of a file (MAP_SHARED without
 *             PROT_WRITE; glibc's iconv maps gconv-modules.cache so): mapped
 *             again MAP_SHARED from its dep, never with runs.
 *     [vdso]/[vvar]/[vsyscall] are not saved: the vDSO must be at the same
 *     address (checked). Other shared mappings are refused, named: writable
 *     shared file mappings, anonymous shared memory, System V segments,
 *     memfds and deleted files.
 *   - deps: every mapped file by path and identity (device, inode, size,
 *     mtime): the binary, its libraries, modules loaded by dlopen.
 *   - registers (callee-saved, stack pointer, resume address, MXCSR, x87 CW),
 *     the thread pointer (FS base), the program break, the 64 signal
 *     dispositions and the signal mask, the rseq registration, the offset of
 *     glibc's cached thread id in the TCB, the kernel release and CPU model.
 *
 * A BASE
 *   An image may be a delta over another image, its base: a process restored
 *   from the base (a blank interpreter, checkpointed once per host) runs more
 *   code and is checkpointed again. Whatever it still has from the base is a
 *   MAP_PRIVATE mapping of the base's file, so it is recorded like any
 *   library: FILE regions whose dep is the base file, mapping the base's
 *   pages copy-on-write at restore, with the pages the process wrote since
 *   saved as its own runs laid over them. Only those own pages are in the
 *   file. The header names the base: base_dep is its index in deps, and
 *   base_hash the base's own header_hash (SNAP_NO_BASE and 0 when the
 *   process was not restored from an image, or maps nothing of it any more).
 *   The checkpoint knows the base because the restore left the image's
 *   device, inode and header_hash in the process (struct snap_restored).
 *   Restoring a delta needs its base unchanged: besides the identity every
 *   dep must keep, the base's header must still hash to base_hash
 *   (snap_check_host, and snap_restore again on the fd it maps). A base is
 *   mapped by at least one FILE region and is never the image's own binary,
 *   the file the resume address lies in (snap_parse). A delta may itself be
 *   a base: each image names only the image it was restored from; older
 *   ones are among its deps like any file it maps.
 *
 * INVARIANTS
 *   - Checkpoint runs with one thread, and after the context is saved it
 *     neither allocates nor touches stdio: the heap being written must not
 *     change under the writer. Its scratch memory and the output fd are kept
 *     out of the image.
 *   - Restore happens in a process of the same binary, started with ASLR off
 *     (personality ADDR_NO_RANDOMIZE), so the binary, ld.so, libc and the
 *     stack top sit where they sat in the checkpointed process.
 *   - Everything is validated before anything is replaced: the file's
 *     structure, that the image fits this host (snap_check_host: kernel,
 *     CPU, this binary, every dep's identity, a delta's base header), the
 *     vDSO address, and that every file this process already maps is where
 *     the image expects it.
 *     A refusal leaves the process untouched (it then boots normally).
 *     The checks are structural; the hashes catch corruption, not forgery:
 *     images must be stored where only the host can write.
 *   - The core of restore runs on a private stack with raw system calls, and
 *     replaces mappings with MAP_FIXED (atomic): the page holding the rseq
 *     area is never left unmapped, and rseq is unregistered meanwhile anyway.
 *
 * RE-APPLIED AFTER THE MEMORY: program break, signal dispositions and mask,
 * FS base, rseq registration, the new thread id in glibc's TCB. Not restored:
 * file descriptors other than those the caller passes through by number,
 * timers, rlimits, cwd: per-instance state comes over the instance's socket.
 */
#ifndef THAW_SNAP_SNAP_H
#define THAW_SNAP_SNAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SNAP_MAGIC "THAWSNP1"
#define SNAP_VERSION 2u
#define SNAP_PAGE 4096u
#define SNAP_MAX_REGIONS 65536u
#define SNAP_MAX_RUNS (1u << 20)
#define SNAP_MAX_DEPS 4096u
#define SNAP_MAX_STRINGS (1u << 20)
#define SNAP_USER_TOP 0x800000000000ull
#define SNAP_NO_BASE 0xffffffffu /* base_dep of an image that is no delta */

enum snap_kind {
	SNAP_R_FILE = 1,
	SNAP_R_ANON = 2,
	SNAP_R_HEAP = 3,
	SNAP_R_STACK = 4,
	SNAP_R_SHARED = 5,
};

struct snap_ctx {
	uint64_t rbx, rbp, r12, r13, r14, r15, rsp, rip;
	uint32_t mxcsr;
	uint16_t fpucw;
	uint16_t pad;
	uint64_t fs_base;
};

struct snap_sigaction { /* the kernel's struct sigaction for rt_sigaction */
	uint64_t handler, flags, restorer, mask;
};

struct snap_header {
	char magic[8];
	uint32_t version, header_size;
	uint64_t file_size;
	uint64_t created_unix_ns;
	uint32_t nregions, nruns, ndeps, strings_len;
	uint64_t table_off, table_len;
	uint64_t data_off, data_len;
	uint64_t data_hash;
	struct snap_ctx ctx;
	uint64_t brk;
	uint64_t vdso_start;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint32_t tid_offset, pad2;
	uint64_t sigmask;
	struct snap_sigaction sigs[64];
	char kernel[128];
	char cpu[128];
	uint32_t base_dep;  /* index into deps of the base image, or SNAP_NO_BASE */
	uint32_t pad3;      /* zero */
	uint64_t base_hash; /* the base image's header_hash; 0 without a base */
	uint64_t table_hash;
	uint64_t header_hash;
};

struct snap_region {
	uint64_t start, end;
	uint32_t prot, kind;
	uint64_t file_off; /* FILE: offset of start in the dep's file */
	uint32_t dep;      /* FILE: index into deps */
	uint32_t run_first, run_count;
	uint32_t pad;
};

struct snap_run {
	uint64_t start; /* address */
	uint64_t npages;
	uint64_t data_off; /* offset in the snapshot file */
};

struct snap_dep {
	uint32_t path_off, path_len;
	uint64_t dev, ino, size;
	int64_t mtime_sec;
	uint64_t mtime_nsec;
};

/* A parsed, structurally valid snapshot (the table is a private copy). */
struct snap_image {
	struct snap_header h;
	struct snap_region *regions;
	struct snap_run *runs;
	struct snap_dep *deps;
	char *strings;
	void *table; /* owns regions..strings */
};

uint64_t snap_hash(uint64_t h, const void *p, size_t len);
/* The data section's hash: snap_hash chained over each page, so any
 * page-aligned split of the data (runs, 1 MiB reads) gives the same value. */
uint64_t snap_data_hash(uint64_t h, const void *p, size_t len);

/*
 * Check a header and table read from an untrusted file of file_size bytes.
 * table must be the h->table_len bytes at h->table_off. On success fills img
 * (copies the table) and returns 0; else -1 with a reason in err.
 */
int snap_parse(const void *header, size_t header_len, const void *table, size_t table_len,
	       uint64_t file_size, struct snap_image *img, char *err, size_t errlen);
/* Read and parse a snapshot file's header and table. */
int snap_open(const char *path, int *fd_out, struct snap_image *img, char *err, size_t errlen);
void snap_image_free(struct snap_image *img);
const char *snap_dep_path(const struct snap_image *img, uint32_t i);
/* Check the data hash (reads every data byte). */
int snap_verify_data(int fd, const struct snap_image *img, char *err, size_t errlen);
/* Print what a snapshot holds, or why it is invalid. Returns 0 if valid. */
int snap_inspect(const char *path, FILE *out, int verify_data);

/* This machine's identity strings, as stored in a header. */
void snap_kernel_id(char *out, size_t n);
void snap_cpu_id(char *out, size_t n);

/*
 * Does this host fit the image? The one rule, for the host deciding whether
 * a stored image is still usable and for snap_restore before it plans.
 * Returns 0 when all of these hold, else -1 with the first that fails in err:
 *   - the kernel (machine, release, version) is the one it was made on;
 *   - the CPU model and flags are (glibc chose its string routines by them);
 *   - every dep still has its recorded identity at its path: device, inode,
 *     size, mtime to the nanosecond (a missing dep is refused too);
 *   - a delta's base is there, unchanged, and still the image it was built
 *     on: its header hashes to base_hash (snap_check_base). These refusals
 *     name it as the base ("its base image PATH is missing", "... has
 *     changed since the image was built on it", "... is not the base it was
 *     built on"): the host then knows to rebuild from the current base;
 *   - it was made by this very thaw binary, not another build: the file
 *     this process runs (/proc/self/exe), or the file now at that path
 *     (what the host starts instances from, should a new build have been
 *     renamed over the running one), is one of its deps by device and inode.
 * Not checked here: the file's own structure and checksums (snap_open does
 * that; the data hash is snap_verify_data's), and what only the restoring
 * process can know: ASLR off, the vDSO address, its code and stack where the
 * image has them (snap_restore checks those). A dep is stat'ed by path, so
 * it may change after this returns; snap_restore compares the fds it maps
 * from again. Borrows img; err is always written on -1.
 */
int snap_check_host(const struct snap_image *img, char *err, size_t errlen);
/* snap_open + snap_check_host: is the image file at path usable here? */
int snap_check_file(const char *path, char *err, size_t errlen);
/*
 * Is the file open on fd (img's base dep) the base img was built on? Reads
 * its header: it must be whole, hash to its own header_hash, and that must
 * be img->h.base_hash. 0 if so (or if img has no base), else -1 with err
 * naming the base. Borrows img and fd (its offset is not moved).
 */
int snap_check_base(const struct snap_image *img, int fd, char *err, size_t errlen);
/*
 * The base the image at image_path was built on, for a host that must make
 * it reachable (bind it into an instance's sandbox). Returns 1 and the
 * base's path in base_path (n bytes), 0 when the image has no base, -1 with
 * err when the image cannot be read or is invalid, or its base's path does
 * not fit in n. Reads the header and table only; checks nothing of the host.
 */
int snap_base_of(const char *image_path, char *base_path, size_t n, char *err, size_t errlen);
/* Pages a restore maps from img's base: the extent of the FILE regions whose
 * dep is the base, less the image's own runs laid over them (0 without a
 * base). Pure arithmetic on the table: checkpoint calls it after the
 * context is saved. */
uint64_t snap_base_pages(const struct snap_image *img);
/* Does st (of a dep's path or of an fd opened on it) show d's identity:
 * device, inode, size, mtime sec and nsec? 1 if so, else 0. */
struct stat;
int snap_dep_matches(const struct snap_dep *d, const struct stat *st);

/*
 * Remove the image at image_path and what goes with it: IMAGE.ws (its
 * working set, see snap_record_ws) and the temporaries a writer that did not
 * finish leaves, IMAGE.tmp (snap_checkpoint) and IMAGE.ws.tmp
 * (snap_record_ws). Missing files are fine. Processes restored from the
 * image keep their mappings; a restore that has not opened it yet fails and
 * boots.
 */
void snap_remove(const char *image_path);

struct snap_checkpoint_opts {
	const int *keep_fds; /* fds allowed to be open besides the output */
	size_t nkeep;
	uint64_t max_bytes; /* refuse an image larger than this (0: no limit) */
};

struct snap_stats {
	uint64_t file_bytes, saved_pages, regions, runs, deps;
	uint64_t base_pages; /* mapped from the base at restore (snap_base_pages) */
	double ms;
};

enum { SNAP_WRITTEN = 0, SNAP_RESTORED = 1 };
/* Refusals (err says more). */
enum {
	SNAP_ERR = -1,
	SNAP_ERR_THREADS = -2,
	SNAP_ERR_FD = -3,
	SNAP_ERR_TOO_BIG = -4,
	SNAP_ERR_SHARED = -5,
};

/*
 * Write an image of this process to path (through path.tmp, fsync, rename).
 * Returns SNAP_WRITTEN in this process, SNAP_RESTORED when a restored process
 * resumes here, or -1 with err (nothing written). Refusals: more than one
 * thread, an fd not in keep_fds, a shared mapping, over max_bytes.
 * A process restored from an image that it still maps (a FILE region of
 * that very file, by device and inode) writes a delta naming it as its base
 * (see A BASE above); any other process writes an image without one.
 */
int snap_checkpoint(const char *path, const struct snap_checkpoint_opts *o, struct snap_stats *st,
		    char *err, size_t errlen);

/*
 * Replace this process with the image at path. Does not return on success
 * (snap_checkpoint returns SNAP_RESTORED in the image). Returns -1 with err
 * if the image is refused; the process is then unchanged.
 * `carry`/`carry_len`: bytes handed to the restored process (snap_carried).
 */
int snap_restore(const char *path, unsigned flags, const void *carry, size_t carry_len, char *err,
		 size_t errlen);
/* flags: the host has checked this image against the machine once
 * (snap_check_file: kernel, CPU, every dep by path, the base's header), so a
 * restore skips those and keeps the checks on what it maps: each dep's
 * identity on the fd it maps, the base's header on its fd, the vDSO, the
 * code and the stack's place. */
#define SNAP_RESTORE_CHECKED 1u
#define SNAP_RESTORE_NO_WS 2u /* see Working set below */
/* In a process that may restore soon: warm the restore's own code paths. */
void snap_restore_prepare(void);

/*
 * Working set. A restored process calls snap_record_ws after its first
 * request: every page it has touched is listed in ws_path (written pages:
 * present and anonymous, read pages: present and file-backed). Restores of
 * the same image find IMAGE.ws and populate those pages in bulk
 * (MADV_POPULATE_WRITE / _READ) instead of taking a fault for each; a saved
 * run of at most 4 pages, all in the written set, is read into place over the
 * populated pages instead of mapped (a mapping each spared: a delta's own runs
 * are short and many). SNAP_RESTORE_NO_WS ignores IMAGE.ws: a restore that
 * will be checkpointed again (a build on the base) must keep every page it
 * does not write a mapping of the base's file.
 *
 * File: "THAWWS01", u32 nwrite, u32 nread, u64 image header_hash, u64 hash
 * of the ranges, then (nwrite + nread) ranges of {u64 start, u64 npages}.
 */
#define SNAP_WS_MAGIC "THAWWS01"
#define SNAP_WS_MAX_RANGES (1u << 20)
struct snap_ws_header {
	char magic[8];
	uint32_t nwrite, nread;
	uint64_t image_hash;
	uint64_t ranges_hash;
};
struct snap_ws_range {
	uint64_t start, npages;
};
int snap_record_ws(const char *ws_path, char *err, size_t errlen);
/* What a working-set file holds, for readers (thaw snapshot inspect): its
 * size, its ranges and pages written and read, the image it was made for.
 * The same checks as a restore's (magic, size, ranges' hash, each range in
 * the user address space), except that the image is not compared: 1 with
 * out filled, 0 when there is no such file, -1 with err (out->bytes set
 * when the file could be stat'ed). */
struct snap_ws_info {
	uint64_t bytes, image_hash, write_pages, read_pages;
	uint32_t nwrite, nread;
};
int snap_ws_info(const char *ws_path, struct snap_ws_info *out, char *err, size_t errlen);
/* The header_hash of the image this process was restored from (0: none). */
uint64_t snap_image_hash(void);

/* In a restored process: the carried bytes and restore timing; then free. */
const void *snap_carried(size_t *len);
double snap_restore_ms(void);
/* Where a restore's time went, CLOCK_MONOTONIC ns: asked (the caller's own
 * mark, snap_restore_asked, or 0), begun (snap_restore entered), core (the
 * checks and the plan done), mapped (every region mapped), done (populated,
 * about to resume). */
struct snap_restore_times {
	uint64_t asked, begun, core, mapped, done;
	uint64_t populated_pages, copied_pages, mappings;
};
int snap_restore_times(struct snap_restore_times *t);
/* Before snap_restore: when the restore was asked for (for the times above). */
void snap_restore_asked(uint64_t mono_ns);
void snap_release(void);

#endif
