/*
 * libFuzzer target for the frame codec and key/value lists (src/proto/frame.c).
 *
 * The input is read as a host or an instance would read its socket: the bytes
 * arrive in two chunks, split at a point derived from the input, and after
 * each chunk complete frames are decoded from a reassembly buffer until the
 * decoder asks for more or reports a protocol error (which ends the stream).
 * The frames seen that way must be exactly those seen by decoding the whole
 * input at once. REQ_HEAD and RESP_HEAD payloads, and the raw input, go
 * through the key/value iterator and validator, and a valid list must encode
 * back to the same bytes; each pair goes through the header-field checks
 * (thaw_http_token, thaw_http_value). Any broken invariant traps.
 *
 * Every buffer handed to the codec is allocated to its exact size, so with
 * AddressSanitizer a read past the end is reported.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* What one pass over the stream saw: frames (by offset in the input) and how it ended. */
struct seen {
	size_t offsets[64];
	size_t count; /* may exceed 64; only the first 64 offsets are kept */
	int end_status;
	size_t consumed;
};

static void check_kv_list(const uint8_t *buf, size_t len)
{
	const char *err = NULL;
	int valid = thaw_kv_validate(buf, len, &err) == 0;
	CHECK(valid || err != NULL);

	struct thaw_kv_iter it;
	const char *iter_err = NULL;
	if (thaw_kv_begin(&it, buf, len, &iter_err) != 0) {
		CHECK(!valid && iter_err != NULL);
		return;
	}
	CHECK(it.count <= THAW_KV_MAX);
	CHECK((size_t)it.count * 8 <= len - 4);

	struct thaw_kv *pairs = malloc(sizeof(*pairs) * (it.count ? it.count : 1));
	CHECK(pairs != NULL);
	const uint8_t *end = buf + len;
	const uint8_t *expect_next = buf + 4;
	size_t n = 0;
	int r;
	while ((r = thaw_kv_next(&it, &pairs[n], &iter_err)) == 1) {
		struct thaw_kv *kv = &pairs[n];
		CHECK(n < it.count);
		/* Pairs are contiguous: length, key, length, value, in order. */
		CHECK(kv->key == expect_next + 4);
		CHECK(kv->klen <= (size_t)(end - kv->key));
		CHECK(kv->val == kv->key + kv->klen + 4);
		CHECK(kv->vlen <= (size_t)(end - kv->val));
		CHECK(it.p == kv->val + kv->vlen);
		CHECK(it.left == (size_t)(end - it.p));
		expect_next = it.p;
		/* Each pair as the instance reads a request head's header
		 * (pymod.c): a name is a token or not, a value trims within its
		 * bytes and holds no CR, LF or NUL once accepted. */
		if (thaw_http_token(kv->key, kv->klen))
			for (uint32_t i = 0; i < kv->klen; i++)
				CHECK(kv->key[i] > 32 && kv->key[i] < 127 && kv->key[i] != ':');
		const uint8_t *vp = kv->val;
		size_t vn = kv->vlen;
		int vr = thaw_http_value(&vp, &vn);
		CHECK(vp >= kv->val && vp + vn <= kv->val + kv->vlen);
		CHECK(vn == 0 ||
		      (vp[0] != ' ' && vp[0] != '\t' && vp[vn - 1] != ' ' && vp[vn - 1] != '\t'));
		if (vr == 0)
			for (size_t i = 0; i < vn; i++)
				CHECK(vp[i] != '\r' && vp[i] != '\n' && vp[i] != 0);
		n++;
	}
	CHECK(r == 0 || r == -1);
	CHECK(r == 0 || iter_err != NULL);
	/* Reaching the end: count pairs read; and the end is sticky. */
	if (r == 0) {
		CHECK(n == it.count);
		struct thaw_kv extra;
		CHECK(thaw_kv_next(&it, &extra, &iter_err) == 0);
	}
	CHECK(valid == (r == 0 && it.left == 0));

	if (valid) {
		size_t size = thaw_kv_size(pairs, n);
		CHECK(size == len);
		uint8_t *again = malloc(size);
		CHECK(again != NULL);
		CHECK(thaw_kv_encode(again, pairs, n) == size);
		CHECK(memcmp(again, buf, size) == 0);
		free(again);
	}
	free(pairs);
}

static void check_frame(const uint8_t *buf, size_t len, const struct thaw_frame *f, size_t used)
{
	CHECK(used >= THAW_FRAME_HEADER && used <= len);
	CHECK(used == THAW_FRAME_HEADER + (size_t)f->len);
	CHECK(f->len <= THAW_FRAME_MAX_PAYLOAD);
	CHECK(f->payload == buf + THAW_FRAME_HEADER);
	CHECK(thaw_frame_type_valid(f->type));

	/* The header re-encodes to the bytes it was read from. */
	uint8_t hdr[THAW_FRAME_HEADER];
	thaw_frame_header(hdr, f->type, f->stream, f->len);
	CHECK(memcmp(hdr, buf, THAW_FRAME_HEADER) == 0);

	if (f->type == THAW_F_REQ_HEAD) {
		check_kv_list(f->payload, f->len);
	} else if (f->type == THAW_F_RESP_HEAD && f->len >= 2) {
		/* A u16 status, then the headers. */
		check_kv_list(f->payload + 2, f->len - 2);
	}
}

/* Decode frames from buf[0..len) until it runs dry or fails; returns the decoder status. */
static int drain(const uint8_t *buf, size_t len, size_t base, struct seen *s, size_t *consumed)
{
	size_t off = 0;
	for (;;) {
		struct thaw_frame f;
		size_t used = (size_t)-1;
		int r = thaw_frame_decode(buf + off, len - off, &f, &used);
		if (r != THAW_FRAME_OK) {
			CHECK(r == THAW_FRAME_NEED_MORE || r == THAW_FRAME_BAD_TYPE ||
			      r == THAW_FRAME_BAD_RESERVED || r == THAW_FRAME_TOO_LARGE);
			CHECK(used == (size_t)-1);
			CHECK(thaw_frame_strerror(r) != NULL);
			if (r == THAW_FRAME_NEED_MORE && len - off >= THAW_FRAME_HEADER)
				CHECK(thaw_get_u32(buf + off) > len - off - THAW_FRAME_HEADER);
			if (r == THAW_FRAME_TOO_LARGE)
				CHECK(len - off >= THAW_FRAME_HEADER &&
				      thaw_get_u32(buf + off) > THAW_FRAME_MAX_PAYLOAD);
			*consumed = off;
			return r;
		}
		check_frame(buf + off, len - off, &f, used);
		if (s->count < 64)
			s->offsets[s->count] = base + off;
		s->count++;
		off += used;
	}
}

static uint8_t *exact_copy(const uint8_t *src, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);
	CHECK(p != NULL);
	if (n)
		memcpy(p, src, n);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* All at once. */
	struct seen whole = {0};
	whole.end_status = drain(data, size, 0, &whole, &whole.consumed);

	/* In two reads, as a socket might deliver it. */
	size_t split = 0;
	if (size) {
		uint32_t h = 2166136261u;
		for (size_t i = size > 8 ? size - 8 : 0; i < size; i++)
			h = (h ^ data[i]) * 16777619u;
		split = h % (size + 1);
	}
	struct seen parts = {0};
	uint8_t *first = exact_copy(data, split);
	size_t consumed = 0;
	int r = drain(first, split, 0, &parts, &consumed);
	free(first);
	if (r == THAW_FRAME_NEED_MORE) {
		/* Keep the unread tail and append the second read. */
		size_t pending = size - consumed;
		uint8_t *joined = exact_copy(data + consumed, pending);
		size_t more = 0;
		r = drain(joined, pending, consumed, &parts, &more);
		consumed += more;
		free(joined);
	}
	parts.end_status = r;
	parts.consumed = consumed;

	CHECK(whole.consumed <= size);
	CHECK(parts.count == whole.count);
	CHECK(parts.end_status == whole.end_status);
	CHECK(parts.consumed == whole.consumed);
	for (size_t i = 0; i < whole.count && i < 64; i++)
		CHECK(parts.offsets[i] == whole.offsets[i]);

	/* Key/value lists straight from the input, without a frame around them. */
	check_kv_list(data, size);
	return 0;
}
