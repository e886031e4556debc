/* Frame codec: see frame.h for the wire format. */
#include "proto/frame.h"

#include <string.h>

int thaw_frame_type_valid(unsigned t)
{
	switch (t) {
	case THAW_F_HELLO:
	case THAW_F_INIT:
	case THAW_F_READY:
	case THAW_F_LOAD_ERROR:
	case THAW_F_SNAP_DONE:
	case THAW_F_WS_DONE:
	case THAW_F_EXITING:
	case THAW_F_REQ_HEAD:
	case THAW_F_REQ_BODY:
	case THAW_F_REQ_END:
	case THAW_F_CANCEL:
	case THAW_F_RESP_HEAD:
	case THAW_F_RESP_BODY:
	case THAW_F_RESP_END:
	case THAW_F_RESP_ERROR:
	case THAW_F_WINDOW:
	case THAW_F_LOG:
	case THAW_F_CALL:
	case THAW_F_CALL_HEAD:
	case THAW_F_CALL_BODY:
	case THAW_F_CALL_END:
	case THAW_F_CALL_ERROR:
		return 1;
	default:
		return 0;
	}
}

const char *thaw_frame_type_name(unsigned t)
{
	switch (t) {
	case THAW_F_HELLO: return "HELLO";
	case THAW_F_INIT: return "INIT";
	case THAW_F_READY: return "READY";
	case THAW_F_LOAD_ERROR: return "LOAD_ERROR";
	case THAW_F_SNAP_DONE: return "SNAP_DONE";
	case THAW_F_WS_DONE: return "WS_DONE";
	case THAW_F_EXITING: return "EXITING";
	case THAW_F_REQ_HEAD: return "REQ_HEAD";
	case THAW_F_REQ_BODY: return "REQ_BODY";
	case THAW_F_REQ_END: return "REQ_END";
	case THAW_F_CANCEL: return "CANCEL";
	case THAW_F_RESP_HEAD: return "RESP_HEAD";
	case THAW_F_RESP_BODY: return "RESP_BODY";
	case THAW_F_RESP_END: return "RESP_END";
	case THAW_F_RESP_ERROR: return "RESP_ERROR";
	case THAW_F_WINDOW: return "WINDOW";
	case THAW_F_LOG: return "LOG";
	case THAW_F_CALL: return "CALL";
	case THAW_F_CALL_HEAD: return "CALL_HEAD";
	case THAW_F_CALL_BODY: return "CALL_BODY";
	case THAW_F_CALL_END: return "CALL_END";
	case THAW_F_CALL_ERROR: return "CALL_ERROR";
	default: return "?";
	}
}

const char *thaw_frame_strerror(int status)
{
	switch (status) {
	case THAW_FRAME_OK: return "ok";
	case THAW_FRAME_NEED_MORE: return "truncated frame";
	case THAW_FRAME_BAD_TYPE: return "unknown frame type";
	case THAW_FRAME_BAD_RESERVED: return "reserved frame bits set";
	case THAW_FRAME_TOO_LARGE: return "frame payload over the limit";
	default: return "bad frame";
	}
}

int thaw_frame_decode(const uint8_t *buf, size_t len, struct thaw_frame *f, size_t *used)
{
	if (len < THAW_FRAME_HEADER)
		return THAW_FRAME_NEED_MORE;
	uint32_t plen = thaw_get_u32(buf);
	uint8_t type = buf[4];
	/* Judge the header before waiting for the payload: a hostile length must
	 * not make the reader buffer anything. */
	if (plen > THAW_FRAME_MAX_PAYLOAD)
		return THAW_FRAME_TOO_LARGE;
	if (!thaw_frame_type_valid(type))
		return THAW_FRAME_BAD_TYPE;
	if (buf[5] != 0 || buf[6] != 0 || buf[7] != 0)
		return THAW_FRAME_BAD_RESERVED;
	if (len - THAW_FRAME_HEADER < plen)
		return THAW_FRAME_NEED_MORE;
	f->type = type;
	f->len = plen;
	f->stream = thaw_get_u32(buf + 8);
	f->payload = buf + THAW_FRAME_HEADER;
	*used = THAW_FRAME_HEADER + (size_t)plen;
	return THAW_FRAME_OK;
}

void thaw_frame_header(uint8_t hdr[THAW_FRAME_HEADER], uint8_t type, uint32_t stream, uint32_t len)
{
	thaw_put_u32(hdr, len);
	hdr[4] = type;
	hdr[5] = 0;
	hdr[6] = 0;
	hdr[7] = 0;
	thaw_put_u32(hdr + 8, stream);
}

size_t thaw_kv_size(const struct thaw_kv *kv, size_t n)
{
	size_t total = 4;
	for (size_t i = 0; i < n; i++)
		total += 8 + (size_t)kv[i].klen + (size_t)kv[i].vlen;
	return total;
}

size_t thaw_kv_encode(uint8_t *out, const struct thaw_kv *kv, size_t n)
{
	uint8_t *p = out;
	thaw_put_u32(p, (uint32_t)n);
	p += 4;
	for (size_t i = 0; i < n; i++) {
		thaw_put_u32(p, kv[i].klen);
		p += 4;
		if (kv[i].klen)
			memcpy(p, kv[i].key, kv[i].klen);
		p += kv[i].klen;
		thaw_put_u32(p, kv[i].vlen);
		p += 4;
		if (kv[i].vlen)
			memcpy(p, kv[i].val, kv[i].vlen);
		p += kv[i].vlen;
	}
	return (size_t)(p - out);
}

int thaw_kv_begin(struct thaw_kv_iter *it, const uint8_t *buf, size_t len, const char **err)
{
	if (len < 4) {
		*err = "key/value list shorter than its count";
		return -1;
	}
	it->count = thaw_get_u32(buf);
	if (it->count > THAW_KV_MAX) {
		*err = "too many key/value pairs";
		return -1;
	}
	/* Each pair needs at least 8 bytes: reject impossible counts up front. */
	if ((size_t)it->count * 8 > len - 4) {
		*err = "key/value count larger than the list";
		return -1;
	}
	it->p = buf + 4;
	it->left = len - 4;
	it->index = 0;
	return 0;
}

int thaw_kv_next(struct thaw_kv_iter *it, struct thaw_kv *kv, const char **err)
{
	if (it->index == it->count)
		return 0;
	if (it->left < 4)
		goto trunc;
	uint32_t kl = thaw_get_u32(it->p);
	it->p += 4;
	it->left -= 4;
	if (kl > it->left)
		goto trunc;
	kv->key = it->p;
	kv->klen = kl;
	it->p += kl;
	it->left -= kl;
	if (it->left < 4)
		goto trunc;
	uint32_t vl = thaw_get_u32(it->p);
	it->p += 4;
	it->left -= 4;
	if (vl > it->left)
		goto trunc;
	kv->val = it->p;
	kv->vlen = vl;
	it->p += vl;
	it->left -= vl;
	it->index++;
	return 1;
trunc:
	*err = "key/value pair runs past the end of the list";
	return -1;
}

int thaw_kv_validate(const uint8_t *buf, size_t len, const char **err)
{
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	int r;
	if (thaw_kv_begin(&it, buf, len, err) < 0)
		return -1;
	while ((r = thaw_kv_next(&it, &kv, err)) == 1)
		;
	if (r < 0)
		return -1;
	if (it.left != 0) {
		*err = "trailing bytes after key/value list";
		return -1;
	}
	return 0;
}

int thaw_http_token(const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			 (c >= 'A' && c <= 'Z') || (c && strchr("!#$%&'*+-.^_`|~", c));
		if (!ok)
			return 0;
	}
	return 1;
}

int thaw_http_value(const uint8_t **p, size_t *n)
{
	const uint8_t *s = *p;
	size_t len = *n;
	while (len && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	*p = s;
	*n = len;
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == 0)
			return -1;
	return 0;
}
