/* Shared between restore.c (planning, libc) and restore_core.c (no libc). */
#ifndef THAW_SNAP_RESTORE_H
#define THAW_SNAP_RESTORE_H

#include "snap/snap.h"

struct plan_op {
	uint64_t start, end, file_off;
	uint32_t prot, kind;
	int fd;        /* FILE: the dep's fd */
	int skip_base; /* FILE mapping already in place, nothing to lay over */
	uint32_t run_first, run_count;
};

struct plan_range {
	uint64_t lo, hi;
};

struct plan_populate {
	uint64_t start, len;
	int advice; /* MADV_POPULATE_WRITE or MADV_POPULATE_READ */
};

/* Written by the core into the binary's .bss (same address in the image),
 * read by the restored process. The image's identity outlives
 * snap_release: a later checkpoint looks for that file among its mappings to
 * name it as its base. Only 64-bit words (the core copies it word by word). */
struct snap_restored {
	uint64_t magic;
	uint64_t scratch, scratch_len;
	uint64_t carry, carry_len;
	uint64_t t0_ns, t1_ns;
	uint64_t t_asked_ns;  /* snap_restore_asked: when the caller was asked to restore */
	uint64_t t_core_ns;   /* the careful half done: the core starts */
	uint64_t t_mapped_ns; /* every region mapped; populating starts */
	uint64_t image_hash;
	uint64_t populated_pages;
	uint64_t copied_pages, mappings; /* runs read in rather than mapped; mmap calls */
	uint64_t image_dev, image_ino;   /* the image file (fstat of the fd it was mapped from) */
};
#define SNAP_RESTORED_MAGIC 0x444552524f545345ull
extern struct snap_restored snap_restored_info;

struct snap_plan {
	struct snap_ctx ctx;
	int snap_fd;
	uint64_t brk;
	uint64_t rseq_addr;
	uint32_t rseq_len, rseq_sig;
	uint32_t tid_offset;
	uint64_t sigmask;
	struct snap_sigaction sigs[64];
	struct plan_range *unmap;
	uint32_t nunmap;
	struct plan_op *ops;
	uint32_t nops;
	struct snap_run *runs;
	uint8_t *copy; /* per run: read it into place (it is in the write set) */
	struct plan_populate *pop;
	uint32_t npop;
	int *fds;
	uint32_t nfds;
	struct snap_restored info;
	struct snap_restored *info_dst;
};

_Noreturn void snap_restore_core(void *plan);

#endif
