/* A growable byte buffer with a read offset: bytes live in data[off..len). */
#ifndef THAW_COMMON_BUF_H
#define THAW_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t off;
	size_t len;
	size_t cap;
};

static inline size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}
static inline uint8_t *buf_head(const struct buf *b)
{
	return b->data + b->off;
}

/* Make room for at least n more bytes at the tail; aborts on OOM. */
uint8_t *buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
/* Append formatted text (no terminating NUL); aborts on OOM. */
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Give back memory above `keep` bytes of capacity when the buffer is empty. */
void buf_shrink(struct buf *b, size_t keep);

#endif
