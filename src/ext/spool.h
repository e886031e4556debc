/*
 * A spool: the bytes of an upload written to a store blob (hashed, then
 * written to its temporary file) by a thread of their own, never by the
 * host's loop. A write to a file can sleep for as long as the kernel
 * throttles a writer of dirty pages (up to 200 ms a call on Linux), and the
 * loop must not.
 *
 *   loop                         spool thread
 *   spool_offer(bytes) ──pipe──▶ blob_write(...)
 *   ready(arg)        ◀─eventfd─ the pipe has room again / all written
 *
 * The pipe is the buffer (1 MiB where the kernel allows) and the flow
 * control: spool_offer takes what fits and, when it took less than given,
 * calls ready(arg) once on the loop when more fits. spool_end says no more
 * bytes come and calls ready(arg) once when every byte is written; then
 * spool_take hands the blob writer back (for blob_finish on the loop: no
 * disk work left in it but the close). spool_abandon, at any time, lets the
 * thread finish alone: it drops the blob and frees everything itself.
 */
#ifndef THAW_EXT_SPOOL_H
#define THAW_EXT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct store;
struct blob_writer;
struct spool;

typedef void (*spool_ready_fn)(void *arg);

/* A new spool writing a blob of st; ready(arg) is how it wakes its owner.
 * NULL with err. */
struct spool *spool_start(struct store *st, struct loop *l, spool_ready_fn ready, void *arg,
			  char *err, size_t errlen);
/* Offer n bytes: how many were taken (0..n). Fewer than n: ready(arg) will
 * be called once when more fit. */
size_t spool_offer(struct spool *sp, const void *p, size_t n);
/* Bytes taken so far. */
uint64_t spool_bytes(const struct spool *sp);
/* No more bytes. ready(arg) is called once when all are written (at once,
 * from the loop's next turn, if they are already). */
void spool_end(struct spool *sp);
/* Are all bytes written (after spool_end)? */
int spool_done(struct spool *sp);
/* After spool_done: the blob writer, owned by the caller, or NULL with err
 * (a write failed). The spool is freed. */
struct blob_writer *spool_take(struct spool *sp, char *err, size_t errlen);
/* The owner goes: ready is never called again; the thread drops the blob. */
void spool_abandon(struct spool *sp);

#endif
