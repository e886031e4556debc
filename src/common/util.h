#ifndef THAW_COMMON_UTIL_H
#define THAW_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The house error convention in one call: format the reason into err (when
 * err is not NULL and errlen not 0) and return -1. */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Length (1-4) of the valid UTF-8 sequence at p[0..n): shortest form, no
 * surrogates, at most U+10FFFF; its code point in *cp (cp may be NULL).
 * 0 when p does not start one (or n is 0). */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* The release, as `thaw --version` and /metrics say it. */
#define THAW_VERSION "0.1.0"

char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

uint64_t now_ns(void); /* CLOCK_MONOTONIC */
int64_t wall_ms(void); /* CLOCK_REALTIME: milliseconds since 1970 */
static inline double ns_to_ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

int set_nonblock(int fd);
/* Read a whole file of at most max bytes; NUL-terminated. NULL with errno
 * set (EFBIG when larger than max). */
char *read_file(const char *path, size_t max, size_t *len);
/* Write all of buf to a blocking fd, retrying on EINTR. 0 or -1. */
int write_all(int fd, const void *buf, size_t len);
/* Parse a non-negative decimal integer in [0, max]; 0 or -1. */
int parse_u64(const char *s, uint64_t max, uint64_t *out);
/* Parse a non-negative number of seconds (decimal fraction allowed). */
int parse_seconds(const char *s, double *out);
/* out = a/b; -1 (ENAMETOOLONG) if it does not fit. */
int path_join(char *out, size_t n, const char *a, const char *b);
/* mkdir -p: 0, or -1 with errno. */
int mkdir_p(const char *path, unsigned mode);
/* The running executable's path (from /proc/self/exe). */
const char *self_exe(void);
/* Start argv[0] with argv: stdout a new pipe (its read end, close-on-exec,
 * in *out_fd), stdin and stderr inherited, every other fd closed, signals
 * unblocked, SIGPIPE and SIGCHLD at their defaults. 0, or -1 with err. */
int spawn_piped(char *const argv[], pid_t *pid, int *out_fd, char *err, size_t errlen);
/* Print j as one compact JSON line on stdout, for a helper child's answer;
 * takes j. Returns the exit status: 0 when j says "ok": true, else 1. */
int print_answer(void *j);
/* Remove path and, if it is a directory, everything under it (symlinks
 * are removed, never followed). 0, or -1 with errno. */
int remove_tree(const char *path);
/* Empty the directory dirfd (remove_tree's walk: by fd, no link followed,
 * any depth). 0, or -1 with errno. */
int empty_dir_fd(int dirfd);

#endif
