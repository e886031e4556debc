/* Save and resume a call context (like setjmp/longjmp, without glibc's
 * pointer mangling, so a context saved in one process resumes in another). */
	.text
	.globl snap_ctx_save
	.type snap_ctx_save, @function
snap_ctx_save:
	movq %rbx, 0(%rdi)
	movq %rbp, 8(%rdi)
	movq %r12, 16(%rdi)
	movq %r13, 24(%rdi)
	movq %r14, 32(%rdi)
	movq %r15, 40(%rdi)
	leaq 8(%rsp), %rdx
	movq %rdx, 48(%rdi)
	movq (%rsp), %rdx
	movq %rdx, 56(%rdi)
	stmxcsr 64(%rdi)
	fnstcw 68(%rdi)
	xorl %eax, %eax
	ret
	.size snap_ctx_save, .-snap_ctx_save

	.globl snap_ctx_jump
	.type snap_ctx_jump, @function
snap_ctx_jump:
	movq 0(%rdi), %rbx
	movq 8(%rdi), %rbp
	movq 16(%rdi), %r12
	movq 24(%rdi), %r13
	movq 32(%rdi), %r14
	movq 40(%rdi), %r15
	ldmxcsr 64(%rdi)
	fldcw 68(%rdi)
	movq 48(%rdi), %rsp
	movl $1, %eax
	jmpq *56(%rdi)
	.size snap_ctx_jump, .-snap_ctx_jump

/* snap_switch_stack(arg, fn, stack_top): call fn(arg) on another stack. */
	.globl snap_switch_stack
	.type snap_switch_stack, @function
snap_switch_stack:
	movq %rdx, %rsp
	andq $-16, %rsp
	callq *%rsi
	ud2
	.size snap_switch_stack, .-snap_switch_stack

	.section .note.GNU-stack,"",@progbits
