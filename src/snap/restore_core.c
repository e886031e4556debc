/*
 * The core of restore. It runs on a private stack in scratch memory, while
 * the memory it came from is being replaced: no libc, no globals, no stack
 * protector, no sanitizers, no calls the compiler might turn into memcpy
 * (built with -ffreestanding -fno-tree-loop-distribute-patterns). A failure
 * here cannot be undone: the process says why on stderr and exits 97.
 */
#include <signal.h>
#include <sys/mman.h>

#include "snap/restore.h"
#include "snap/sys.h"

#define ARCH_SET_FS 0x1002

static void say(const char *msg)
{
	long n = 0;
	while (msg[n])
		n++;
	SYS3(SYS_write, 2, msg, n);
}

static _Noreturn void die(const char *msg)
{
	say("thaw: snapshot restore failed midway: ");
	say(msg);
	say("\n");
	for (;;)
		SYS1(SYS_exit_group, 97);
}

static uint64_t mono_ns(void)
{
	struct {
		long sec, nsec;
	} ts;
	SYS2(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, &ts);
	return (uint64_t)ts.sec * 1000000000ull + (uint64_t)ts.nsec;
}

/* A run's saved bytes, read into the memory mapped at its address. */
static void read_run(const struct snap_plan *p, const struct snap_run *u, const char *why)
{
	uint64_t n = u->npages * SNAP_PAGE, done = 0;
	while (done < n) {
		long r = SYS4(SYS_pread64, p->snap_fd, u->start + done, n - done,
			      u->data_off + done);
		if (r == -4 /* EINTR: every signal is blocked, but be safe */)
			continue;
		if (r <= 0)
			die(why);
		done += (uint64_t)r;
	}
}

void snap_restore_core(void *arg)
{
	struct snap_plan *p = arg;
	p->info.t_core_ns = mono_ns();
	uint64_t all = ~0ull;
	SYS4(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, 8);

	for (uint32_t i = 0; i < p->nunmap; i++)
		SYS2(SYS_munmap, p->unmap[i].lo, p->unmap[i].hi - p->unmap[i].lo);

	/* The kernel's program break first; the heap's bytes are laid over it. */
	SYS1(SYS_brk, p->brk);

	for (uint32_t i = 0; i < p->nops; i++) {
		const struct plan_op *o = &p->ops[i];
		uint64_t len = o->end - o->start;
		if (o->kind == SNAP_R_STACK) {
			/* Grow the grows-down stack mapping page by page, top down,
			 * then copy the saved bytes in. */
			for (uint64_t a = o->end - SNAP_PAGE;; a -= SNAP_PAGE) {
				(void)*(volatile char *)a;
				if (a == o->start)
					break;
			}
			for (uint32_t k = 0; k < o->run_count; k++)
				read_run(p, &p->runs[o->run_first + k],
					 "cannot read the saved stack");
			continue;
		}
		if (!o->skip_base) {
			long r;
			if (o->kind == SNAP_R_FILE)
				r = SYS6(SYS_mmap, o->start, len, o->prot, MAP_PRIVATE | MAP_FIXED,
					 o->fd, o->file_off);
			else if (o->kind == SNAP_R_SHARED) /* read-only: the fd is O_RDONLY */
				r = SYS6(SYS_mmap, o->start, len, o->prot, MAP_SHARED | MAP_FIXED,
					 o->fd, o->file_off);
			else
				r = SYS6(SYS_mmap, o->start, len, o->prot,
					 MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
			if ((uint64_t)r != o->start)
				die("cannot map a region");
		}
		if (!o->skip_base)
			p->info.mappings++;
		for (uint32_t k = 0; k < o->run_count; k++) {
			const struct snap_run *u = &p->runs[o->run_first + k];
			if (p->copy[o->run_first + k])
				continue; /* read in below */
			long r = SYS6(SYS_mmap, u->start, u->npages * SNAP_PAGE, o->prot,
				      MAP_PRIVATE | MAP_FIXED, p->snap_fd, u->data_off);
			if ((uint64_t)r != u->start)
				die("cannot map saved pages");
			p->info.mappings++;
		}
	}

	p->info.t_mapped_ns = mono_ns();
	/* Fault in, in bulk, the pages the first restored instance touched. */
	for (uint32_t i = 0; i < p->npop; i++)
		SYS3(SYS_madvise, p->pop[i].start, p->pop[i].len, p->pop[i].advice);
	/* The runs in the write set: read in (over the copies just made, in
	 * bulk, of what lay beneath) instead of one more mapping each. */
	for (uint32_t i = 0; i < p->nops; i++) {
		const struct plan_op *o = &p->ops[i];
		if (o->kind == SNAP_R_STACK)
			continue;
		for (uint32_t k = 0; k < o->run_count; k++)
			if (p->copy[o->run_first + k])
				read_run(p, &p->runs[o->run_first + k], "cannot read saved pages");
	}

	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		SYS4(SYS_rt_sigaction, sig, &p->sigs[sig - 1], 0, 8);
	}
	SYS2(SYS_arch_prctl, ARCH_SET_FS, p->ctx.fs_base);
	if (p->rseq_len)
		SYS4(SYS_rseq, p->rseq_addr, p->rseq_len, 0, p->rseq_sig);
	*(volatile int *)(p->ctx.fs_base + p->tid_offset) = (int)SYS0(SYS_gettid);

	for (uint32_t i = 0; i < p->nfds; i++)
		SYS1(SYS_close, p->fds[i]);
	SYS1(SYS_close, p->snap_fd);

	p->info.t1_ns = mono_ns();
	volatile uint64_t *dst = (volatile uint64_t *)p->info_dst;
	const uint64_t *src = (const uint64_t *)&p->info;
	for (unsigned i = 0; i < sizeof p->info / 8; i++)
		dst[i] = src[i];

	SYS4(SYS_rt_sigprocmask, SIG_SETMASK, &p->sigmask, 0, 8);
	snap_ctx_jump(&p->ctx);
}
