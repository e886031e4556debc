/*
 * What a process holds in memory (issue 13, "Density guard rails";
 * docs/snapshots.md "Density", docs/control-api.md "Density"): its
 * proportional set size, read from /proc/PID/smaps_rollup (by the sampler of
 * serving instances, memory.c), and split in two:
 *
 *   own     Pss_Anon + Pss_Shmem: pages the instance wrote (anonymous,
 *           including the copy-on-write copies of its image's and the
 *           base's pages) and its tmpfs pages; no other worker shares them
 *   shared  Pss_File: its share of file pages (the base image, its own
 *           image, libraries), each page divided among the processes that
 *           map it
 *
 * own + shared is Pss (the kernel sums the three from the same pages; the
 * parser checks it within a few kB of rounding). A kernel older than 5.8
 * has Pss but not the three: its own and shared are unknown (split = 0),
 * not zero.
 *
 * SAMPLING (memory.c): every period (10 s in thaw serve) a sweep reads
 * every serving instance once, on a thread of its own, MEMSTAT_BATCH at a
 * time, MEMSTAT_BATCH_GAP_MS between batches. Spares, builders and the
 * base's app are not read (they are no worker's).
 *
 * UNTRUSTED INPUT. smaps_rollup of a worker's process is the kernel's text,
 * but the parser takes it as any outside bytes: at most MEMSTAT_MAX_TEXT
 * bytes, lines "Name: <digits> kB" only, each number bounded, a missing Pss
 * refused; unknown lines are skipped.
 *
 * BLOCKING: memstat_read is one small /proc read, whose cost to the kernel
 * grows with the process's resident memory (~40 ms at 1-2 GiB): never on
 * the host's loop.
 */
#ifndef THAW_HOST_MEMSTAT_H
#define THAW_HOST_MEMSTAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MEMSTAT_MAX_TEXT 4096u
#define MEMSTAT_BATCH 8u
#define MEMSTAT_BATCH_GAP_MS 20.0

/* One process's figures, in bytes; split: Pss_Anon, Pss_File and Pss_Shmem
 * were all there (else own and shared are unknown). */
struct memstat {
	uint64_t rss, pss, pss_anon, pss_file, pss_shmem, pss_dirty, swap_pss;
	int split;
};

/* Parse smaps_rollup text (len bytes, need not be NUL-ended). 0, or -1
 * when it is not such a text: no Pss line, a number over 2^40 kB, a line
 * without its " kB", Pss_Anon + Pss_File + Pss_Shmem more than 64 kB from
 * Pss, text longer than MEMSTAT_MAX_TEXT. Fields it lacks are 0; split
 * is 1 when the three Pss parts are there. */
int memstat_parse(const char *text, size_t len, struct memstat *out);
/* Read and parse /proc/PID/smaps_rollup. 0, or -1 (gone, unreadable). */
int memstat_read(pid_t pid, struct memstat *out);

#endif
