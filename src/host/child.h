/*
 * Helper children of a host: processes that are not instances, started to
 * do work that must not run on the loop (unpack a bundle, read a project's
 * configuration, verify and store a snapshot image). A child's stdout is
 * collected (up to a limit) while it runs; when it has exited AND its stdout
 * has closed, its callback gets the exit status and everything it printed.
 * Its stderr is the host's (a child's messages reach the operator's log).
 *
 * host_reap() is the host's one SIGCHLD handler: it reaps every exited
 * process, gives instances to the pool and the rest to their child.
 *
 * Ownership: the host owns every struct child; child_cancel() (kill, forget,
 * no callback) may be called at any time before the callback, including from
 * another callback. The callback runs once, from the loop, and the child is
 * freed after it returns.
 */
#ifndef THAW_HOST_CHILD_H
#define THAW_HOST_CHILD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct host;
struct child;

/* status as from waitpid; out/len: what it printed (borrowed for the call);
 * overflow: it printed more than the limit (out holds the first max bytes). */
typedef void (*child_done_fn)(void *arg, int status, const uint8_t *out, size_t len, int overflow);

/* Start argv[0] (the thaw executable, usually) with argv; stdout collected up
 * to max_out bytes. Returns the child (owned by the host), or NULL with err. */
struct child *child_start(struct host *h, char *const argv[], size_t max_out, child_done_fn done,
			  void *arg, char *err, size_t errlen);
/* Kill it (SIGKILL) and forget it: done is never called. NULL is fine, and
 * so is a child whose callback is running. */
void child_cancel(struct child *c);
/* Kill it (SIGKILL), and call done(arg, ...) instead of its callback once it
 * has exited: for work that must wait until the child is gone (removing the
 * directory it was writing). NULL is fine. */
void child_kill(struct child *c, child_done_fn done, void *arg);
/* The child's process id. */
pid_t child_pid(const struct child *c);
/* Kill every child (host shutdown); they are reaped with the instances. */
void child_kill_all(struct host *h);

/* A helper child's answer, one JSON object with "ok" (from its callback's
 * arguments): returns it (new) when the child exited 0 and said "ok": true;
 * else NULL with why: its "error", or "the NAME was killed by signal N", or
 * "the NAME failed". */
json_t *child_answer(int status, const uint8_t *out, size_t len, int overflow, const char *name,
		     char *why, size_t whylen);

/* Reap every exited process (the SIGCHLD handler). */
void host_reap(struct host *h);

#endif
