/* Test inputs placed right before an inaccessible page: a read one byte past
 * the end faults, sanitizer or not. Include after cmocka.h. */
#ifndef THAW_TESTS_FENCED_H
#define THAW_TESTS_FENCED_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct fenced {
	uint8_t *map;
	size_t map_len;
	uint8_t *data;
};

static inline void *fenced_copy(struct fenced *fc, const void *src, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (n + page - 1) / page * page;
	if (body == 0)
		body = page;
	fc->map_len = body + page;
	fc->map = mmap(NULL, fc->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(fc->map != MAP_FAILED);
	assert_int_equal(mprotect(fc->map + body, page, PROT_NONE), 0);
	fc->data = fc->map + body - n;
	if (n)
		memcpy(fc->data, src, n);
	return fc->data;
}

static inline void fenced_free(struct fenced *fc)
{
	munmap(fc->map, fc->map_len);
}

#endif
