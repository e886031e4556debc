/* Raw system calls for code that must not touch libc (snapshot restore). */
#ifndef THAW_SNAP_SYS_H
#define THAW_SNAP_SYS_H

#include <stdint.h>
#include <sys/syscall.h>

static inline long snap_sys6(long n, long a, long b, long c, long d, long e, long f)
{
	long ret;
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define SYS0(n) snap_sys6((n), 0, 0, 0, 0, 0, 0)
#define SYS1(n, a) snap_sys6((n), (long)(a), 0, 0, 0, 0, 0)
#define SYS2(n, a, b) snap_sys6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define SYS3(n, a, b, c) snap_sys6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define SYS4(n, a, b, c, d) snap_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define SYS6(n, a, b, c, d, e, f)                                                                  \
	snap_sys6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

/* Context switching (ctx.S). */
struct snap_ctx;
int snap_ctx_save(struct snap_ctx *c) __attribute__((returns_twice));
_Noreturn void snap_ctx_jump(const struct snap_ctx *c);
_Noreturn void snap_switch_stack(void *arg, void (*fn)(void *), void *stack_top);

#endif
