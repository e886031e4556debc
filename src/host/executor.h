/*
 * The host's state executor: one thread that runs jobs the loop must not
 * run itself (SQLite with fsync for the storage bindings: KV, D1, ...), and
 * hands each finished job back to the loop.
 *
 *   loop thread                     executor thread
 *   executor_submit(job) ──queue──▶ job->run(job)
 *   job->done(job, 0)    ◀─eventfd── (finished list)
 *
 * Jobs run one at a time, in submission order: every store a job touches is
 * serialised by construction, which is what the bindings need (one
 * consistent store per binding whatever the instance calling). done() runs
 * on the loop for every submitted job exactly once: with stopped = 0 after
 * run(), or with stopped = 1 (run() may not have happened) when the executor
 * stops; done() owns the job.
 *
 * Ownership: the executor belongs to its host (executor_start/_stop). A job
 * is the caller's struct embedding struct exec_job; run() must touch only
 * what the job owns or what only the executor thread touches.
 */
#ifndef THAW_HOST_EXECUTOR_H
#define THAW_HOST_EXECUTOR_H

#include <stddef.h>

struct host;
struct exec_job;

struct exec_job {
	void (*run)(struct exec_job *job);                /* executor thread */
	void (*done)(struct exec_job *job, int stopped); /* loop thread */
	struct exec_job *next;
};

/* Start h's executor (its thread and eventfd watch). 0, or -1 with err. */
int executor_start(struct host *h, char *err, size_t errlen);
/* Queue job (taken until its done() runs). Starts the executor if needed
 * (aborts when it cannot: out of threads is out of memory here). */
void executor_submit(struct host *h, struct exec_job *job);
/* Finish the job running now, then done(stopped=1) every job not run and
 * done(0) every finished one; join the thread. Safe when never started. */
void executor_stop(struct host *h);
/* Jobs submitted and not yet done (for tests and metrics). */
unsigned executor_pending(const struct host *h);
/* Has executor_stop begun (for tests)? */
int executor_stopping(const struct host *h);

#endif
