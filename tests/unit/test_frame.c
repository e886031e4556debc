/*
 * Tests for the host<->instance frame codec and key/value lists
 * (src/proto/frame.c). Both parse bytes from a process we do not trust, so
 * besides round trips every malformed shape is checked, and every truncated
 * input is placed right before an inaccessible page: a read one byte past the
 * end faults instead of passing unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fenced.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proto/frame.h"

static const uint8_t all_types[] = {
	THAW_F_HELLO,     THAW_F_INIT,      THAW_F_READY,     THAW_F_LOAD_ERROR, THAW_F_REQ_HEAD,
	THAW_F_REQ_BODY,  THAW_F_REQ_END,   THAW_F_CANCEL,    THAW_F_RESP_HEAD,  THAW_F_RESP_BODY,
	THAW_F_RESP_END,  THAW_F_RESP_ERROR, THAW_F_WINDOW,   THAW_F_LOG,       THAW_F_SNAP_DONE, THAW_F_WS_DONE, THAW_F_EXITING,
	THAW_F_CALL,      THAW_F_CALL_HEAD, THAW_F_CALL_BODY, THAW_F_CALL_END,  THAW_F_CALL_ERROR,
};
#define N_TYPES (sizeof(all_types) / sizeof(all_types[0]))

/* Sentinels: decode must leave its outputs alone unless it returns OK. */
#define USED_SENTINEL ((size_t)0xdeadbeef)

/*
 * A copy of some bytes that ends exactly at a PROT_NONE page, so any read
 * past the end crashes the test.
 */

/* Header + payload in one fresh heap buffer; returns its length. */
static size_t build_frame(uint8_t **out, uint8_t type, uint32_t stream, const void *payload,
			  uint32_t len)
{
	uint8_t *b = malloc(THAW_FRAME_HEADER + (size_t)len);
	assert_non_null(b);
	thaw_frame_header(b, type, stream, len);
	if (len)
		memcpy(b + THAW_FRAME_HEADER, payload, len);
	*out = b;
	return THAW_FRAME_HEADER + (size_t)len;
}

/* A payload that fits the frame type, as the peers would send it. */
static size_t sample_payload(uint8_t type, uint8_t *out, size_t cap)
{
	static const struct thaw_kv req_kv[] = {
		{(const uint8_t *)":method", 7, (const uint8_t *)"POST", 4},
		{(const uint8_t *)":url", 4, (const uint8_t *)"/x?y=1", 6},
		{(const uint8_t *)"content-type", 12, (const uint8_t *)"text/plain", 10},
	};
	static const struct thaw_kv resp_kv[] = {
		{(const uint8_t *)"x-a", 3, (const uint8_t *)"1", 1},
	};
	static const struct thaw_kv call_kv[] = {
		{(const uint8_t *)":binding", 8, (const uint8_t *)"ASSETS", 6},
		{(const uint8_t *)":call", 5, (const uint8_t *)"fetch", 5},
		{(const uint8_t *)":url", 4, (const uint8_t *)"/a.css", 6},
	};
	const char *text = NULL;
	switch (type) {
	case THAW_F_HELLO: text = "{\"pid\": 4242}"; break;
	case THAW_F_INIT: text = "{\"dir\": \"/srv/app\", \"entry\": \"main\"}"; break;
	case THAW_F_READY: text = "{\"concurrency\": 8, \"load_ms\": 12.5}"; break;
	case THAW_F_LOAD_ERROR: text = "Traceback (most recent call last):\n  ...\nImportError"; break;
	case THAW_F_RESP_ERROR: text = "Traceback: ZeroDivisionError"; break;
	case THAW_F_LOG: text = "hello from the worker"; break;
	case THAW_F_SNAP_DONE: text = "{\"bytes\": 14458880, \"ms\": 13.4}"; break;
	case THAW_F_WS_DONE: text = ""; break;
	case THAW_F_EXITING: text = "memory"; break;
	case THAW_F_REQ_BODY: text = "a=1&b=\x01\x02"; break;
	case THAW_F_RESP_BODY: text = "<html>\r\n</html>"; break;
	case THAW_F_CALL_BODY: text = "body{}"; break;
	case THAW_F_CALL_ERROR: text = "there is no binding named 'KV'"; break;
	case THAW_F_CALL_END:
	case THAW_F_REQ_END:
	case THAW_F_CANCEL:
	case THAW_F_RESP_END: return 0;
	case THAW_F_WINDOW:
		assert_true(cap >= 4);
		thaw_put_u32(out, 65536);
		return 4;
	case THAW_F_REQ_HEAD:
		assert_true(cap >= thaw_kv_size(req_kv, 3));
		return thaw_kv_encode(out, req_kv, 3);
	case THAW_F_CALL:
		assert_true(cap >= thaw_kv_size(call_kv, 3));
		return thaw_kv_encode(out, call_kv, 3);
	case THAW_F_CALL_HEAD:
	case THAW_F_RESP_HEAD:
		assert_true(cap >= 2 + thaw_kv_size(resp_kv, 1));
		thaw_put_u16(out, 404);
		return 2 + thaw_kv_encode(out + 2, resp_kv, 1);
	default: fail_msg("no sample payload for type %u", type);
	}
	size_t n = strlen(text);
	assert_true(n <= cap);
	memcpy(out, text, n);
	return n;
}

static void test_header_layout_is_little_endian_with_zero_reserved(void **state)
{
	(void)state;
	uint8_t hdr[THAW_FRAME_HEADER];
	memset(hdr, 0xAA, sizeof(hdr));
	thaw_frame_header(hdr, THAW_F_RESP_BODY, 0x12345678u, 0x000A0B0Cu);
	static const uint8_t want[THAW_FRAME_HEADER] = {
		0x0C, 0x0B, 0x0A, 0x00, THAW_F_RESP_BODY, 0, 0, 0, 0x78, 0x56, 0x34, 0x12,
	};
	assert_memory_equal(hdr, want, sizeof(want));

	/* All 32 bits of the length land in bytes 0-3 and nothing spills over. */
	memset(hdr, 0xAA, sizeof(hdr));
	thaw_frame_header(hdr, THAW_F_LOG, 0xFFFFFFFFu, 0xA1B2C3D4u);
	static const uint8_t want_full[THAW_FRAME_HEADER] = {
		0xD4, 0xC3, 0xB2, 0xA1, THAW_F_LOG, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
	};
	assert_memory_equal(hdr, want_full, sizeof(want_full));
}

static void test_type_valid_accepts_exactly_the_known_types(void **state)
{
	(void)state;
	for (unsigned t = 0; t < 512; t++) {
		int known = 0;
		for (size_t i = 0; i < N_TYPES; i++)
			known |= all_types[i] == t;
		assert_int_equal(thaw_frame_type_valid(t) != 0, known);
		if (known)
			assert_string_not_equal(thaw_frame_type_name(t), "?");
		else
			assert_string_equal(thaw_frame_type_name(t), "?");
	}
	assert_string_equal(thaw_frame_type_name(THAW_F_REQ_HEAD), "REQ_HEAD");
	assert_string_equal(thaw_frame_type_name(THAW_F_WINDOW), "WINDOW");
}

static void test_strerror_names_each_status(void **state)
{
	(void)state;
	const int statuses[] = {THAW_FRAME_OK, THAW_FRAME_NEED_MORE, THAW_FRAME_BAD_TYPE,
				THAW_FRAME_BAD_RESERVED, THAW_FRAME_TOO_LARGE};
	for (size_t i = 0; i < 5; i++) {
		assert_non_null(thaw_frame_strerror(statuses[i]));
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(thaw_frame_strerror(statuses[i]),
						thaw_frame_strerror(statuses[j]));
	}
	assert_non_null(thaw_frame_strerror(-99));
}

static void test_every_type_round_trips(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_TYPES; i++) {
		uint8_t payload[256];
		uint32_t plen = (uint32_t)sample_payload(all_types[i], payload, sizeof(payload));
		uint32_t stream = all_types[i] < THAW_F_REQ_HEAD ? 0 : 0x01000000u + (uint32_t)i;
		uint8_t *buf;
		size_t n = build_frame(&buf, all_types[i], stream, payload, plen);

		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, buf, n);
		struct thaw_frame f;
		size_t used = USED_SENTINEL;
		assert_int_equal(thaw_frame_decode(in, n, &f, &used), THAW_FRAME_OK);
		assert_int_equal(f.type, all_types[i]);
		assert_int_equal(f.stream, stream);
		assert_int_equal(f.len, plen);
		assert_ptr_equal(f.payload, in + THAW_FRAME_HEADER);
		assert_int_equal(used, n);
		if (plen)
			assert_memory_equal(f.payload, payload, plen);
		fenced_free(&fc);
		free(buf);
	}
}

static void test_resp_head_payload_is_status_then_kv_list(void **state)
{
	(void)state;
	uint8_t payload[256];
	size_t plen = sample_payload(THAW_F_RESP_HEAD, payload, sizeof(payload));
	uint8_t *buf;
	size_t n = build_frame(&buf, THAW_F_RESP_HEAD, 7, payload, (uint32_t)plen);
	struct thaw_frame f;
	size_t used;
	assert_int_equal(thaw_frame_decode(buf, n, &f, &used), THAW_FRAME_OK);
	assert_int_equal(thaw_get_u16(f.payload), 404);
	const char *err = NULL;
	assert_int_equal(thaw_kv_validate(f.payload + 2, f.len - 2, &err), 0);
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	assert_int_equal(thaw_kv_begin(&it, f.payload + 2, f.len - 2, &err), 0);
	assert_int_equal(thaw_kv_next(&it, &kv, &err), 1);
	assert_int_equal(kv.klen, 3);
	assert_memory_equal(kv.key, "x-a", 3);
	assert_int_equal(kv.vlen, 1);
	assert_memory_equal(kv.val, "1", 1);
	assert_int_equal(thaw_kv_next(&it, &kv, &err), 0);
	free(buf);
}

static void test_stream_of_frames_decodes_back_to_back(void **state)
{
	(void)state;
	struct {
		uint8_t type;
		uint32_t stream;
		const char *payload;
	} frames[] = {
		{THAW_F_REQ_END, 3, ""},
		{THAW_F_REQ_BODY, 3, "first"},
		{THAW_F_CANCEL, 0xFFFFFFFFu, ""},
		{THAW_F_LOG, 0, "x"},
		{THAW_F_RESP_BODY, 9, "a longer body of thirty bytes."},
		{THAW_F_RESP_END, 9, ""},
	};
	size_t nframes = sizeof(frames) / sizeof(frames[0]);
	uint8_t stream[512];
	size_t total = 0;
	for (size_t i = 0; i < nframes; i++) {
		uint32_t len = (uint32_t)strlen(frames[i].payload);
		thaw_frame_header(stream + total, frames[i].type, frames[i].stream, len);
		memcpy(stream + total + THAW_FRAME_HEADER, frames[i].payload, len);
		total += THAW_FRAME_HEADER + len;
	}

	struct fenced fc;
	const uint8_t *in = fenced_copy(&fc, stream, total);
	size_t off = 0;
	for (size_t i = 0; i < nframes; i++) {
		struct thaw_frame f;
		size_t used = USED_SENTINEL;
		assert_int_equal(thaw_frame_decode(in + off, total - off, &f, &used), THAW_FRAME_OK);
		uint32_t len = (uint32_t)strlen(frames[i].payload);
		assert_int_equal(f.type, frames[i].type);
		assert_int_equal(f.stream, frames[i].stream);
		assert_int_equal(f.len, len);
		assert_ptr_equal(f.payload, in + off + THAW_FRAME_HEADER);
		assert_memory_equal(f.payload, frames[i].payload, len);
		assert_int_equal(used, THAW_FRAME_HEADER + len);
		off += used;
	}
	assert_int_equal(off, total);
	struct thaw_frame f;
	size_t used = USED_SENTINEL;
	assert_int_equal(thaw_frame_decode(in + off, 0, &f, &used), THAW_FRAME_NEED_MORE);
	assert_int_equal(used, USED_SENTINEL);
	fenced_free(&fc);

	/* A partial frame after complete ones waits; the complete ones still decode. */
	in = fenced_copy(&fc, stream, total - 3);
	off = 0;
	for (size_t i = 0; i + 1 < nframes; i++) {
		assert_int_equal(thaw_frame_decode(in + off, total - 3 - off, &f, &used), THAW_FRAME_OK);
		off += used;
	}
	/* The last frame has an empty payload: 3 bytes short is 9 bytes of header. */
	used = USED_SENTINEL;
	assert_int_equal(thaw_frame_decode(in + off, total - 3 - off, &f, &used),
			 THAW_FRAME_NEED_MORE);
	assert_int_equal(used, USED_SENTINEL);
	fenced_free(&fc);
}

static void check_every_prefix_needs_more(const uint8_t *frame, size_t n)
{
	for (size_t cut = 0; cut < n; cut++) {
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, frame, cut);
		struct thaw_frame f;
		memset(&f, 0x5A, sizeof(f));
		struct thaw_frame untouched = f;
		size_t used = USED_SENTINEL;
		int r = thaw_frame_decode(in, cut, &f, &used);
		if (r != THAW_FRAME_NEED_MORE)
			fail_msg("prefix of %zu/%zu bytes: got %d, want NEED_MORE", cut, n, r);
		assert_int_equal(used, USED_SENTINEL);
		assert_memory_equal(&f, &untouched, sizeof(f));
		fenced_free(&fc);
	}
	struct fenced fc;
	const uint8_t *in = fenced_copy(&fc, frame, n);
	struct thaw_frame f;
	size_t used = USED_SENTINEL;
	assert_int_equal(thaw_frame_decode(in, n, &f, &used), THAW_FRAME_OK);
	assert_int_equal(used, n);
	fenced_free(&fc);
}

static void test_every_truncation_needs_more(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_TYPES; i++) {
		uint8_t payload[256];
		uint32_t plen = (uint32_t)sample_payload(all_types[i], payload, sizeof(payload));
		uint8_t *buf;
		size_t n = build_frame(&buf, all_types[i], 5, payload, plen);
		check_every_prefix_needs_more(buf, n);
		free(buf);
	}
	/* A one-byte payload: the header alone is one short. */
	uint8_t *buf;
	size_t n = build_frame(&buf, THAW_F_LOG, 1, "z", 1);
	check_every_prefix_needs_more(buf, n);
	free(buf);
}

static void test_oversized_length_rejected_from_header_alone(void **state)
{
	(void)state;
	const uint32_t lens[] = {THAW_FRAME_MAX_PAYLOAD + 1, THAW_FRAME_MAX_PAYLOAD * 2, 0x7FFFFFFFu,
				 0x80000000u, 0xFFFFFFFFu};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t hdr[THAW_FRAME_HEADER];
		thaw_frame_header(hdr, THAW_F_REQ_BODY, 1, lens[i]);
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, hdr, sizeof(hdr));
		struct thaw_frame f;
		size_t used = USED_SENTINEL;
		assert_int_equal(thaw_frame_decode(in, sizeof(hdr), &f, &used), THAW_FRAME_TOO_LARGE);
		assert_int_equal(used, USED_SENTINEL);
		fenced_free(&fc);
	}
	/* Exactly the limit is legal: with only the header, the reader waits. */
	uint8_t hdr[THAW_FRAME_HEADER];
	thaw_frame_header(hdr, THAW_F_REQ_BODY, 1, THAW_FRAME_MAX_PAYLOAD);
	struct thaw_frame f;
	size_t used;
	assert_int_equal(thaw_frame_decode(hdr, sizeof(hdr), &f, &used), THAW_FRAME_NEED_MORE);
}

static void test_max_size_payload_decodes_exactly(void **state)
{
	(void)state;
	size_t n = THAW_FRAME_HEADER + THAW_FRAME_MAX_PAYLOAD;
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	thaw_frame_header(buf, THAW_F_RESP_BODY, 0xCAFEF00Du, THAW_FRAME_MAX_PAYLOAD);
	for (size_t i = 0; i < THAW_FRAME_MAX_PAYLOAD; i++)
		buf[THAW_FRAME_HEADER + i] = (uint8_t)(i * 31 + (i >> 8));

	struct fenced fc;
	const uint8_t *in = fenced_copy(&fc, buf, n);
	struct thaw_frame f;
	size_t used = USED_SENTINEL;
	assert_int_equal(thaw_frame_decode(in, n, &f, &used), THAW_FRAME_OK);
	assert_int_equal(f.type, THAW_F_RESP_BODY);
	assert_int_equal(f.stream, 0xCAFEF00Du);
	assert_int_equal(f.len, THAW_FRAME_MAX_PAYLOAD);
	assert_int_equal(used, n);
	assert_ptr_equal(f.payload, in + THAW_FRAME_HEADER);
	assert_memory_equal(f.payload, buf + THAW_FRAME_HEADER, THAW_FRAME_MAX_PAYLOAD);

	used = USED_SENTINEL;
	assert_int_equal(thaw_frame_decode(in, n - 1, &f, &used), THAW_FRAME_NEED_MORE);
	assert_int_equal(used, USED_SENTINEL);
	fenced_free(&fc);
	free(buf);
}

static void test_extra_bytes_after_a_frame_are_not_consumed(void **state)
{
	(void)state;
	uint8_t buf[THAW_FRAME_HEADER + 4 + 7];
	thaw_frame_header(buf, THAW_F_WINDOW, 2, 4);
	thaw_put_u32(buf + THAW_FRAME_HEADER, 1000);
	memset(buf + THAW_FRAME_HEADER + 4, 0xEE, 7);
	struct thaw_frame f;
	size_t used;
	assert_int_equal(thaw_frame_decode(buf, sizeof(buf), &f, &used), THAW_FRAME_OK);
	assert_int_equal(used, THAW_FRAME_HEADER + 4);
	assert_int_equal(f.len, 4);
	assert_int_equal(thaw_get_u32(f.payload), 1000);
}

static void test_unknown_type_rejected(void **state)
{
	(void)state;
	for (unsigned t = 0; t < 256; t++) {
		if (thaw_frame_type_valid(t))
			continue;
		uint8_t buf[THAW_FRAME_HEADER + 2];
		thaw_frame_header(buf, (uint8_t)t, 1, 2);
		buf[THAW_FRAME_HEADER] = 'o';
		buf[THAW_FRAME_HEADER + 1] = 'k';
		struct thaw_frame f;
		size_t used = USED_SENTINEL;
		assert_int_equal(thaw_frame_decode(buf, sizeof(buf), &f, &used), THAW_FRAME_BAD_TYPE);
		assert_int_equal(used, USED_SENTINEL);
		/* Judged from the header: no need to wait for the payload. */
		assert_int_equal(thaw_frame_decode(buf, THAW_FRAME_HEADER, &f, &used),
				 THAW_FRAME_BAD_TYPE);
	}
}

static void test_nonzero_reserved_bits_rejected(void **state)
{
	(void)state;
	for (size_t byte = 5; byte <= 7; byte++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			uint8_t buf[THAW_FRAME_HEADER + 1];
			thaw_frame_header(buf, THAW_F_LOG, 0, 1);
			buf[THAW_FRAME_HEADER] = '!';
			buf[byte] = (uint8_t)(1u << bit);
			struct thaw_frame f;
			size_t used = USED_SENTINEL;
			assert_int_equal(thaw_frame_decode(buf, sizeof(buf), &f, &used),
					 THAW_FRAME_BAD_RESERVED);
			assert_int_equal(used, USED_SENTINEL);
			assert_int_equal(thaw_frame_decode(buf, THAW_FRAME_HEADER, &f, &used),
					 THAW_FRAME_BAD_RESERVED);
		}
	}
}

static void test_stream_id_round_trips_exactly(void **state)
{
	(void)state;
	const uint32_t ids[] = {0, 1, 0xFF, 0x100, 0x01020304u, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFEu,
				0xFFFFFFFFu};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint8_t buf[THAW_FRAME_HEADER];
		thaw_frame_header(buf, THAW_F_REQ_END, ids[i], 0);
		assert_int_equal(buf[8], ids[i] & 0xFF);
		assert_int_equal(buf[11], ids[i] >> 24);
		struct thaw_frame f;
		size_t used;
		assert_int_equal(thaw_frame_decode(buf, sizeof(buf), &f, &used), THAW_FRAME_OK);
		assert_int_equal(f.stream, ids[i]);
		assert_int_equal(f.len, 0);
		assert_int_equal(used, THAW_FRAME_HEADER);
	}
}

static void test_int_helpers_round_trip(void **state)
{
	(void)state;
	uint8_t b[4];
	thaw_put_u32(b, 0xA1B2C3D4u);
	assert_int_equal(b[0], 0xD4);
	assert_int_equal(b[3], 0xA1);
	assert_int_equal(thaw_get_u32(b), 0xA1B2C3D4u);
	thaw_put_u16(b, 0xBEEF);
	assert_int_equal(b[0], 0xEF);
	assert_int_equal(b[1], 0xBE);
	assert_int_equal(thaw_get_u16(b), 0xBEEF);
}

/* ---- key/value lists ---- */

static uint8_t *encode_kv(const struct thaw_kv *kv, size_t n, size_t *len)
{
	size_t size = thaw_kv_size(kv, n);
	uint8_t *buf = malloc(size + 1);
	assert_non_null(buf);
	buf[size] = 0xC5; /* canary: encode must write exactly size bytes */
	assert_int_equal(thaw_kv_encode(buf, kv, n), size);
	assert_int_equal(buf[size], 0xC5);
	*len = size;
	return buf;
}

/* Decode buf[0..len) (fenced) and compare pair by pair with want. */
static void check_kv_decodes_to(const uint8_t *buf, size_t len, const struct thaw_kv *want,
				size_t n)
{
	struct fenced fc;
	const uint8_t *in = fenced_copy(&fc, buf, len);
	const char *err = NULL;
	assert_int_equal(thaw_kv_validate(in, len, &err), 0);

	struct thaw_kv_iter it;
	assert_int_equal(thaw_kv_begin(&it, in, len, &err), 0);
	assert_int_equal(it.count, n);
	for (size_t i = 0; i < n; i++) {
		struct thaw_kv kv;
		assert_int_equal(thaw_kv_next(&it, &kv, &err), 1);
		assert_int_equal(kv.klen, want[i].klen);
		assert_int_equal(kv.vlen, want[i].vlen);
		assert_true(kv.key >= in && kv.key + kv.klen <= in + len);
		assert_true(kv.val >= in && kv.val + kv.vlen <= in + len);
		if (kv.klen)
			assert_memory_equal(kv.key, want[i].key, kv.klen);
		if (kv.vlen)
			assert_memory_equal(kv.val, want[i].val, kv.vlen);
	}
	struct thaw_kv kv;
	assert_int_equal(thaw_kv_next(&it, &kv, &err), 0);
	assert_int_equal(thaw_kv_next(&it, &kv, &err), 0);
	assert_int_equal(it.left, 0);
	fenced_free(&fc);
}

static void test_kv_empty_list_round_trips(void **state)
{
	(void)state;
	size_t len;
	uint8_t *buf = encode_kv(NULL, 0, &len);
	assert_int_equal(len, 4);
	static const uint8_t want[4] = {0, 0, 0, 0};
	assert_memory_equal(buf, want, 4);
	check_kv_decodes_to(buf, len, NULL, 0);
	free(buf);
}

static void test_kv_one_pair_has_the_documented_layout(void **state)
{
	(void)state;
	const struct thaw_kv kv = {(const uint8_t *)":method", 7, (const uint8_t *)"GET", 3};
	size_t len;
	uint8_t *buf = encode_kv(&kv, 1, &len);
	static const uint8_t want[] = {1, 0, 0, 0, 7, 0, 0, 0, ':', 'm', 'e', 't', 'h',
				       'o', 'd', 3, 0, 0, 0, 'G', 'E', 'T'};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	check_kv_decodes_to(buf, len, &kv, 1);
	free(buf);
}

static void test_kv_many_pairs_round_trip(void **state)
{
	(void)state;
	enum { N = 300 };
	static uint8_t text[N][64];
	struct thaw_kv kv[N];
	size_t expect = 4;
	for (size_t i = 0; i < N; i++) {
		for (size_t j = 0; j < sizeof(text[i]); j++)
			text[i][j] = (uint8_t)(i * 7 + j);
		kv[i].key = text[i];
		kv[i].klen = (uint32_t)(i % 17);
		kv[i].val = text[i] + 17;
		kv[i].vlen = (uint32_t)((i * 5) % 47);
		expect += 8 + kv[i].klen + kv[i].vlen;
	}
	assert_int_equal(thaw_kv_size(kv, N), expect);
	size_t len;
	uint8_t *buf = encode_kv(kv, N, &len);
	check_kv_decodes_to(buf, len, kv, N);
	free(buf);
}

static void test_kv_binary_and_empty_keys_values_round_trip(void **state)
{
	(void)state;
	static const uint8_t nul_key[] = {0, 'a', 0, 0};
	static const uint8_t nul_val[] = {0, 0, 0xFF, 0, 0x80};
	static const uint8_t len_like[] = {0xFF, 0xFF, 0xFF, 0xFF};
	const struct thaw_kv kv[] = {
		{nul_key, sizeof(nul_key), nul_val, sizeof(nul_val)},
		{(const uint8_t *)"", 0, (const uint8_t *)"empty key", 9},
		{(const uint8_t *)"empty value", 11, (const uint8_t *)"", 0},
		{NULL, 0, NULL, 0},
		{len_like, sizeof(len_like), len_like, sizeof(len_like)},
	};
	size_t n = sizeof(kv) / sizeof(kv[0]);
	size_t len;
	uint8_t *buf = encode_kv(kv, n, &len);
	check_kv_decodes_to(buf, len, kv, n);
	free(buf);
}

static void test_kv_count_up_to_the_limit_accepted_and_over_rejected(void **state)
{
	(void)state;
	/* Enough zero bytes for THAW_KV_MAX + 1 empty pairs, so only the count can fail. */
	size_t len = 4 + (size_t)(THAW_KV_MAX + 1) * 8;
	uint8_t *buf = calloc(1, len);
	assert_non_null(buf);
	const char *err = NULL;
	struct thaw_kv_iter it;

	thaw_put_u32(buf, THAW_KV_MAX + 1);
	assert_int_equal(thaw_kv_begin(&it, buf, len, &err), -1);
	assert_non_null(err);
	err = NULL;
	assert_int_equal(thaw_kv_validate(buf, len, &err), -1);
	assert_non_null(err);

	thaw_put_u32(buf, 0xFFFFFFFFu);
	assert_int_equal(thaw_kv_validate(buf, len, &err), -1);

	thaw_put_u32(buf, THAW_KV_MAX);
	err = NULL;
	assert_int_equal(thaw_kv_validate(buf, len - 8, &err), 0);
	assert_null(err);
	size_t pairs = 0;
	struct thaw_kv kv;
	assert_int_equal(thaw_kv_begin(&it, buf, len - 8, &err), 0);
	while (thaw_kv_next(&it, &kv, &err) == 1) {
		assert_int_equal(kv.klen, 0);
		assert_int_equal(kv.vlen, 0);
		pairs++;
	}
	assert_int_equal(pairs, THAW_KV_MAX);
	free(buf);
}

static void test_kv_count_larger_than_the_data_rejected(void **state)
{
	(void)state;
	uint8_t buf[4 + 16] = {0};
	const char *err;
	struct thaw_kv_iter it;

	/* Two empty pairs fill 16 bytes exactly. */
	thaw_put_u32(buf, 2);
	err = NULL;
	assert_int_equal(thaw_kv_validate(buf, sizeof(buf), &err), 0);
	/* Three cannot fit in 16: rejected before any pair is read. */
	thaw_put_u32(buf, 3);
	err = NULL;
	assert_int_equal(thaw_kv_begin(&it, buf, sizeof(buf), &err), -1);
	assert_non_null(err);
	/* Two cannot fit in 15. */
	thaw_put_u32(buf, 2);
	err = NULL;
	assert_int_equal(thaw_kv_begin(&it, buf, sizeof(buf) - 1, &err), -1);
	assert_non_null(err);
	/* A list shorter than its own count field. */
	for (size_t n = 0; n < 4; n++) {
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, buf, n);
		err = NULL;
		assert_int_equal(thaw_kv_begin(&it, in, n, &err), -1);
		assert_non_null(err);
		assert_int_equal(thaw_kv_validate(in, n, &err), -1);
		fenced_free(&fc);
	}
}

static void test_kv_every_truncation_rejected_without_overread(void **state)
{
	(void)state;
	const struct thaw_kv kv[] = {
		{(const uint8_t *)":url", 4, (const uint8_t *)"/a", 2},
		{(const uint8_t *)"", 0, (const uint8_t *)"v", 1},
		{(const uint8_t *)"k", 1, (const uint8_t *)"", 0},
		{(const uint8_t *)"accept", 6, (const uint8_t *)"*/*", 3},
	};
	size_t n = sizeof(kv) / sizeof(kv[0]);
	size_t len;
	uint8_t *buf = encode_kv(kv, n, &len);
	for (size_t cut = 0; cut < len; cut++) {
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, buf, cut);
		const char *err = NULL;
		if (thaw_kv_validate(in, cut, &err) != -1)
			fail_msg("a list cut to %zu of %zu bytes validated", cut, len);
		assert_non_null(err);

		/* Iterating by hand: pairs before the cut are fine, then -1, never 0. */
		struct thaw_kv_iter it;
		struct thaw_kv got;
		err = NULL;
		if (thaw_kv_begin(&it, in, cut, &err) == 0) {
			int r;
			size_t i = 0;
			while ((r = thaw_kv_next(&it, &got, &err)) == 1) {
				assert_true(i < n);
				assert_int_equal(got.klen, kv[i].klen);
				assert_int_equal(got.vlen, kv[i].vlen);
				assert_true(got.val + got.vlen <= in + cut);
				i++;
			}
			assert_int_equal(r, -1);
		}
		assert_non_null(err);
		fenced_free(&fc);
	}
	free(buf);
}

static void test_kv_trailing_bytes_rejected_by_validate(void **state)
{
	(void)state;
	const struct thaw_kv kv = {(const uint8_t *)"a", 1, (const uint8_t *)"b", 1};
	size_t len;
	uint8_t *enc = encode_kv(&kv, 1, &len);
	for (size_t extra = 1; extra <= 9; extra++) {
		uint8_t buf[64];
		memcpy(buf, enc, len);
		memset(buf + len, 0, extra);
		const char *err = NULL;
		assert_int_equal(thaw_kv_validate(buf, len + extra, &err), -1);
		assert_non_null(err);
	}
	/* Empty list with a trailing byte. */
	uint8_t empty[5] = {0, 0, 0, 0, 0};
	const char *err = NULL;
	assert_int_equal(thaw_kv_validate(empty, 5, &err), -1);
	assert_non_null(err);
	free(enc);
}

static void test_kv_huge_lengths_do_not_overflow(void **state)
{
	(void)state;
	const uint32_t huge[] = {0xFFFFFFFFu, 0xFFFFFFFCu, 0xFFFFFFF8u, 0x80000000u, 9, 5, 4};
	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		/* Key length huge: the 4 bytes after it look like a value length of 0. */
		uint8_t a[4 + 4 + 4] = {0};
		thaw_put_u32(a, 1);
		thaw_put_u32(a + 4, huge[i]);
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, a, sizeof(a));
		const char *err = NULL;
		assert_int_equal(thaw_kv_validate(in, sizeof(a), &err), -1);
		struct thaw_kv_iter it;
		struct thaw_kv kv;
		assert_int_equal(thaw_kv_begin(&it, in, sizeof(a), &err), 0);
		assert_int_equal(thaw_kv_next(&it, &kv, &err), -1);
		fenced_free(&fc);

		/* Value length huge after a one-byte key. */
		uint8_t b[4 + 4 + 1 + 4 + 3] = {0};
		thaw_put_u32(b, 1);
		thaw_put_u32(b + 4, 1);
		b[8] = 'k';
		thaw_put_u32(b + 9, huge[i]);
		in = fenced_copy(&fc, b, sizeof(b));
		err = NULL;
		assert_int_equal(thaw_kv_validate(in, sizeof(b), &err), -1);
		assert_non_null(err);
		assert_int_equal(thaw_kv_begin(&it, in, sizeof(b), &err), 0);
		assert_int_equal(thaw_kv_next(&it, &kv, &err), -1);
		fenced_free(&fc);
	}
	/* Boundary: a value length equal to what is left is fine, one more is not. */
	uint8_t c[4 + 4 + 4 + 3] = {0};
	thaw_put_u32(c, 1);
	thaw_put_u32(c + 8, 3);
	memcpy(c + 12, "xyz", 3);
	const char *err = NULL;
	assert_int_equal(thaw_kv_validate(c, sizeof(c), &err), 0);
	thaw_put_u32(c + 8, 4);
	assert_int_equal(thaw_kv_validate(c, sizeof(c), &err), -1);
	/* A key that takes all that is left, leaving no room for the value length. */
	thaw_put_u32(c + 4, 7);
	assert_int_equal(thaw_kv_validate(c, sizeof(c), &err), -1);
	/* A three-byte key and an empty value fill the same 15 bytes exactly. */
	thaw_put_u32(c + 4, 3);
	memcpy(c + 8, "abc", 3);
	thaw_put_u32(c + 11, 0);
	assert_int_equal(thaw_kv_validate(c, sizeof(c), &err), 0);
}

/* Header names (request heads the instance decodes in C): exactly the RFC
 * 9110 token characters, at least one, every byte read within bounds. */
static void test_http_token_accepts_exactly_token_characters(void **state)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
				    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	for (unsigned c = 0; c < 256; c++) {
		uint8_t b = (uint8_t)c;
		struct fenced fc;
		const uint8_t *in = fenced_copy(&fc, &b, 1);
		int want = c != 0 && strchr(tchar, (int)c) != NULL;
		assert_int_equal(thaw_http_token(in, 1), want);
		fenced_free(&fc);
	}
	struct fenced fc;
	const uint8_t *in = fenced_copy(&fc, "Content-Type", 12);
	assert_int_equal(thaw_http_token(in, 12), 1);
	assert_int_equal(thaw_http_token(in, 0), 0);
	fenced_free(&fc);
	/* A bad byte anywhere (first, middle, last) makes it no token. */
	const char *bad[] = {":method", "x y", "x\n", "x:", "\xe9t\xe9", "a\0b"};
	size_t lens[] = {7, 3, 2, 2, 3, 3};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		in = fenced_copy(&fc, bad[i], lens[i]);
		assert_int_equal(thaw_http_token(in, lens[i]), 0);
		fenced_free(&fc);
	}
}

/* Header values: spaces and tabs trimmed at both ends (never past either
 * end), CR, LF and NUL refused wherever they are after the trim. */
static void test_http_value_trims_and_refuses_cr_lf_nul(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		int rc;
		const char *out;
	} cases[] = {
		{"text/plain", 10, 0, "text/plain"},
		{" \t a b \t ", 9, 0, "a b"},
		{"   ", 3, 0, ""},
		{"\t", 1, 0, ""},
		{"", 0, 0, ""},
		{"caf\xe9", 4, 0, "caf\xe9"},
		{"a\r\nb", 4, -1, NULL},
		{"a\nb", 3, -1, NULL},
		{"a\0b", 3, -1, NULL},
		{" \n", 2, -1, NULL},
		{"\r ", 2, -1, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fenced fc;
		const uint8_t *p = fenced_copy(&fc, cases[i].in, cases[i].len);
		const uint8_t *start = p;
		size_t n = cases[i].len;
		assert_int_equal(thaw_http_value(&p, &n), cases[i].rc);
		assert_true(p >= start && p + n <= start + cases[i].len);
		if (cases[i].out) {
			assert_int_equal(n, strlen(cases[i].out));
			assert_memory_equal(p, cases[i].out, n);
		}
		fenced_free(&fc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_layout_is_little_endian_with_zero_reserved),
		cmocka_unit_test(test_type_valid_accepts_exactly_the_known_types),
		cmocka_unit_test(test_strerror_names_each_status),
		cmocka_unit_test(test_every_type_round_trips),
		cmocka_unit_test(test_resp_head_payload_is_status_then_kv_list),
		cmocka_unit_test(test_stream_of_frames_decodes_back_to_back),
		cmocka_unit_test(test_every_truncation_needs_more),
		cmocka_unit_test(test_oversized_length_rejected_from_header_alone),
		cmocka_unit_test(test_max_size_payload_decodes_exactly),
		cmocka_unit_test(test_extra_bytes_after_a_frame_are_not_consumed),
		cmocka_unit_test(test_unknown_type_rejected),
		cmocka_unit_test(test_nonzero_reserved_bits_rejected),
		cmocka_unit_test(test_stream_id_round_trips_exactly),
		cmocka_unit_test(test_int_helpers_round_trip),
		cmocka_unit_test(test_kv_empty_list_round_trips),
		cmocka_unit_test(test_kv_one_pair_has_the_documented_layout),
		cmocka_unit_test(test_kv_many_pairs_round_trip),
		cmocka_unit_test(test_kv_binary_and_empty_keys_values_round_trip),
		cmocka_unit_test(test_kv_count_up_to_the_limit_accepted_and_over_rejected),
		cmocka_unit_test(test_kv_count_larger_than_the_data_rejected),
		cmocka_unit_test(test_kv_every_truncation_rejected_without_overread),
		cmocka_unit_test(test_kv_trailing_bytes_rejected_by_validate),
		cmocka_unit_test(test_kv_huge_lengths_do_not_overflow),
		cmocka_unit_test(test_http_token_accepts_exactly_token_characters),
		cmocka_unit_test(test_http_value_trims_and_refuses_cr_lf_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
