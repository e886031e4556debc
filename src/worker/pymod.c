/*
 * _thaw: the instance's built-in module. It exposes the frame codec of
 * src/proto/ to the Python runtime, so both ends of the socket share one
 * implementation of the wire format, and does the per-request work of the
 * runtime that is plain byte shuffling (a request head into the SDK's
 * header entries, a response into its frames) in C: on the warm path that
 * work was most of an instance's time per request.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "proto/frame.h"
#include "snap/snap.h"
#include "worker/pymod.h"

static PyObject *ProtocolError;

static PyObject *thaw_encode(PyObject *self, PyObject *args)
{
	unsigned int type;
	unsigned long stream;
	Py_buffer payload = {0};
	if (!PyArg_ParseTuple(args, "Ik|y*:encode", &type, &stream, &payload))
		return NULL;
	if (!thaw_frame_type_valid(type) || stream > UINT32_MAX) {
		PyBuffer_Release(&payload);
		PyErr_SetString(PyExc_ValueError, "bad frame type or stream id");
		return NULL;
	}
	if (payload.buf && (size_t)payload.len > THAW_FRAME_MAX_PAYLOAD) {
		PyBuffer_Release(&payload);
		PyErr_Format(PyExc_ValueError, "frame payload of %zd bytes is over the %u byte limit",
			     payload.len, THAW_FRAME_MAX_PAYLOAD);
		return NULL;
	}
	size_t plen = payload.buf ? (size_t)payload.len : 0;
	PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(THAW_FRAME_HEADER + plen));
	if (out) {
		uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
		thaw_frame_header(p, (uint8_t)type, (uint32_t)stream, (uint32_t)plen);
		if (plen)
			memcpy(p + THAW_FRAME_HEADER, payload.buf, plen);
	}
	if (payload.buf)
		PyBuffer_Release(&payload);
	return out;
}

static PyObject *thaw_encode_kv(PyObject *self, PyObject *arg)
{
	PyObject *seq = PySequence_Fast(arg, "encode_kv expects a sequence of (bytes, bytes)");
	if (!seq)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if ((size_t)n > THAW_KV_MAX) {
		Py_DECREF(seq);
		PyErr_SetString(PyExc_ValueError, "too many key/value pairs");
		return NULL;
	}
	struct thaw_kv *kv = PyMem_Calloc((size_t)n + 1, sizeof *kv);
	PyObject *out = NULL;
	if (!kv) {
		Py_DECREF(seq);
		return PyErr_NoMemory();
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
		PyObject *k, *v;
		if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
		    !PyBytes_Check(k = PyTuple_GET_ITEM(pair, 0)) ||
		    !PyBytes_Check(v = PyTuple_GET_ITEM(pair, 1))) {
			PyErr_SetString(PyExc_TypeError, "encode_kv expects (bytes, bytes) tuples");
			goto out;
		}
		if ((size_t)PyBytes_GET_SIZE(k) > THAW_FRAME_MAX_PAYLOAD ||
		    (size_t)PyBytes_GET_SIZE(v) > THAW_FRAME_MAX_PAYLOAD) {
			PyErr_SetString(PyExc_ValueError, "key or value too large");
			goto out;
		}
		kv[i].key = (const uint8_t *)PyBytes_AS_STRING(k);
		kv[i].klen = (uint32_t)PyBytes_GET_SIZE(k);
		kv[i].val = (const uint8_t *)PyBytes_AS_STRING(v);
		kv[i].vlen = (uint32_t)PyBytes_GET_SIZE(v);
	}
	size_t size = thaw_kv_size(kv, (size_t)n);
	out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
	if (out)
		thaw_kv_encode((uint8_t *)PyBytes_AS_STRING(out), kv, (size_t)n);
out:
	PyMem_Free(kv);
	Py_DECREF(seq);
	return out;
}

static PyObject *thaw_decode_kv(PyObject *self, PyObject *arg)
{
	Py_buffer b;
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	const char *err = NULL;
	PyObject *list = NULL;
	if (thaw_kv_validate(b.buf, (size_t)b.len, &err) < 0) {
		PyErr_SetString(ProtocolError, err);
		goto out;
	}
	struct thaw_kv_iter it;
	struct thaw_kv kv;
	thaw_kv_begin(&it, b.buf, (size_t)b.len, &err);
	list = PyList_New(0);
	while (list && thaw_kv_next(&it, &kv, &err) == 1) {
		PyObject *t = Py_BuildValue("(y#y#)", kv.key, (Py_ssize_t)kv.klen, kv.val,
					    (Py_ssize_t)kv.vlen);
		if (!t || PyList_Append(list, t) < 0) {
			Py_XDECREF(t);
			Py_CLEAR(list);
			break;
		}
		Py_DECREF(t);
	}
out:
	PyBuffer_Release(&b);
	return list;
}

static int key_is(const struct thaw_kv *kv, const char *name)
{
	size_t n = strlen(name);
	return kv->klen == n && memcmp(kv->key, name, n) == 0;
}

/* A header's lowercased name (new reference); its bytes are a token. */
static PyObject *lower_name(const struct thaw_kv *kv)
{
	PyObject *name = PyUnicode_New((Py_ssize_t)kv->klen, 127);
	if (!name)
		return NULL;
	Py_UCS1 *d = PyUnicode_1BYTE_DATA(name);
	for (uint32_t i = 0; i < kv->klen; i++) {
		uint8_t c = kv->key[i];
		d[i] = c >= 'A' && c <= 'Z' ? (Py_UCS1)(c + 32) : c;
	}
	return name;
}

/* Add name: value to entries as Headers.append does (a repeated name's
 * values joined by ", " in its first entry, but set-cookie's kept apart).
 * Takes name and value. 0, or -1 with an exception. */
static int entries_append(PyObject *entries, PyObject *name, PyObject *value)
{
	int rc = -1;
	if (PyUnicode_CompareWithASCIIString(name, "set-cookie") != 0) {
		Py_ssize_t n = PyList_GET_SIZE(entries);
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *entry = PyList_GET_ITEM(entries, i); /* borrowed */
			PyObject *old = PyTuple_GET_ITEM(entry, 1);    /* borrowed */
			int eq = PyUnicode_Compare(PyTuple_GET_ITEM(entry, 0), name);
			if (eq == -1 && PyErr_Occurred())
				goto out;
			if (eq != 0)
				continue;
			PyObject *joined = PyUnicode_GET_LENGTH(old)
						   ? PyUnicode_FromFormat("%U, %U", old, value)
						   : (Py_INCREF(value), value);
			PyObject *t = joined ? PyTuple_Pack(2, name, joined) : NULL;
			Py_XDECREF(joined);
			if (!t)
				goto out;
			PyList_SetItem(entries, i, t); /* steals t, drops the old entry */
			rc = 0;
			goto out;
		}
	}
	PyObject *t = PyTuple_Pack(2, name, value);
	rc = t && PyList_Append(entries, t) == 0 ? 0 : -1;
	Py_XDECREF(t);
out:
	Py_DECREF(name);
	Py_DECREF(value);
	return rc;
}

/*
 * request_head(payload): a REQ_HEAD payload (hostile bytes: every length is
 * checked by the key/value iterator) as (method, url, entries, cf,
 * entrypoint) for an HTTP request, the headers as workers.Headers keeps
 * them; None for an event (the third pair is ":event"), which the runtime
 * decodes itself. ProtocolError for a malformed list, ValueError (the SDK's
 * messages) for a bad head, name or value.
 */
static PyObject *thaw_request_head(PyObject *self, PyObject *arg)
{
	Py_buffer b;
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	const char *err = NULL;
	PyObject *out = NULL, *method = NULL, *url = NULL, *entries = NULL, *cf = NULL;
	PyObject *entrypoint = NULL;
	struct thaw_kv_iter it;
	struct thaw_kv m, u, kv;
	if (thaw_kv_validate(b.buf, (size_t)b.len, &err) < 0 ||
	    thaw_kv_begin(&it, b.buf, (size_t)b.len, &err) < 0) {
		PyErr_SetString(ProtocolError, err ? err : "malformed key/value list");
		goto out;
	}
	if (thaw_kv_next(&it, &m, &err) != 1 || thaw_kv_next(&it, &u, &err) != 1 ||
	    !key_is(&m, ":method") || !key_is(&u, ":url")) {
		PyErr_SetString(PyExc_ValueError, "REQ_HEAD must start with :method and :url");
		goto out;
	}
	struct thaw_kv_iter peek = it;
	if (thaw_kv_next(&peek, &kv, &err) == 1 && key_is(&kv, ":event")) {
		out = Py_NewRef(Py_None);
		goto out;
	}
	method = PyUnicode_DecodeLatin1((const char *)m.val, (Py_ssize_t)m.vlen, NULL);
	url = method ? PyUnicode_DecodeUTF8((const char *)u.val, (Py_ssize_t)u.vlen,
					    "surrogateescape")
		     : NULL;
	entries = url ? PyList_New(0) : NULL;
	cf = entries ? PyDict_New() : NULL;
	entrypoint = cf ? PyUnicode_New(0, 127) : NULL;
	if (!entrypoint)
		goto out;
	int r;
	while ((r = thaw_kv_next(&it, &kv, &err)) == 1) {
		if (kv.klen >= 4 && memcmp(kv.key, ":cf-", 4) == 0) {
			/* The host's facts: request.cf. */
			PyObject *k = PyUnicode_DecodeLatin1((const char *)kv.key + 4,
							     (Py_ssize_t)kv.klen - 4, NULL);
			PyObject *v = k ? PyUnicode_DecodeLatin1((const char *)kv.val,
								 (Py_ssize_t)kv.vlen, NULL)
					: NULL;
			int bad = !v || PyDict_SetItem(cf, k, v) < 0;
			Py_XDECREF(k);
			Py_XDECREF(v);
			if (bad)
				goto out;
			continue;
		}
		if (key_is(&kv, ":entrypoint")) { /* a service binding to a named entrypoint */
			Py_SETREF(entrypoint, PyUnicode_DecodeUTF8((const char *)kv.val,
								   (Py_ssize_t)kv.vlen, "replace"));
			if (!entrypoint)
				goto out;
			continue;
		}
		if (!thaw_http_token(kv.key, kv.klen)) {
			PyObject *k = PyUnicode_DecodeLatin1((const char *)kv.key,
							     (Py_ssize_t)kv.klen, NULL);
			if (k)
				PyErr_Format(PyExc_ValueError, "invalid header name: %R", k);
			Py_XDECREF(k);
			goto out;
		}
		const uint8_t *vp = kv.val;
		size_t vn = kv.vlen;
		int forbidden = thaw_http_value(&vp, &vn) < 0;
		PyObject *v = PyUnicode_DecodeLatin1((const char *)vp, (Py_ssize_t)vn, NULL);
		if (!v)
			goto out;
		if (forbidden) {
			PyErr_Format(PyExc_ValueError,
				     "invalid header value (contains CR, LF or NUL): %R", v);
			Py_DECREF(v);
			goto out;
		}
		PyObject *k = lower_name(&kv);
		if (!k) {
			Py_DECREF(v);
			goto out;
		}
		if (entries_append(entries, k, v) < 0)
			goto out;
	}
	if (r < 0) { /* (validated above: cannot happen) */
		PyErr_SetString(ProtocolError, err ? err : "malformed key/value list");
		goto out;
	}
	Py_ssize_t n = PyList_GET_SIZE(entries);
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *entry = PyList_GET_ITEM(entries, i);
		if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(entry, 0),
						     "accept-encoding") == 0) {
			if (PyDict_SetItemString(cf, "clientAcceptEncoding",
						 PyTuple_GET_ITEM(entry, 1)) < 0)
				goto out;
			break;
		}
	}
	out = PyTuple_Pack(5, method, url, entries, cf, entrypoint);
out:
	Py_XDECREF(method);
	Py_XDECREF(url);
	Py_XDECREF(entries);
	Py_XDECREF(cf);
	Py_XDECREF(entrypoint);
	PyBuffer_Release(&b);
	return out;
}

/* s as Latin-1 bytes without a copy when it is stored so (every str of
 * code points below 256 is): 0, else -1 with the UnicodeEncodeError or
 * TypeError that str.encode("latin-1") would give. */
static int latin1_view(PyObject *s, const uint8_t **p, uint32_t *n)
{
	if (!PyUnicode_Check(s)) {
		PyErr_Format(PyExc_TypeError, "header names and values must be str, not %s",
			     Py_TYPE(s)->tp_name);
		return -1;
	}
	if (PyUnicode_READY(s) < 0)
		return -1;
	if (PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND) {
		PyObject *e = PyUnicode_AsLatin1String(s); /* raises */
		Py_XDECREF(e);
		if (e)
			PyErr_SetString(PyExc_ValueError, "header text is not Latin-1");
		return -1;
	}
	if ((size_t)PyUnicode_GET_LENGTH(s) > THAW_FRAME_MAX_PAYLOAD) {
		PyErr_SetString(PyExc_ValueError, "key or value too large");
		return -1;
	}
	*p = PyUnicode_1BYTE_DATA(s);
	*n = (uint32_t)PyUnicode_GET_LENGTH(s);
	return 0;
}

/*
 * response(stream, status, entries, body=None): the frames of a response on
 * stream: RESP_HEAD (status, then the (name, value) str pairs as Latin-1),
 * and when body (bytes-like, at most MAX_PAYLOAD bytes) is given, RESP_BODY
 * (unless it is empty) and RESP_END too, in one bytes object for one write.
 */
static PyObject *thaw_response(PyObject *self, PyObject *args)
{
	unsigned long stream;
	int status;
	PyObject *seq_arg, *body_arg = Py_None;
	if (!PyArg_ParseTuple(args, "kiO|O:response", &stream, &status, &seq_arg, &body_arg))
		return NULL;
	if (stream > UINT32_MAX || status < 0 || status > 0xffff) {
		PyErr_SetString(PyExc_ValueError, "bad stream id or status");
		return NULL;
	}
	PyObject *seq = PySequence_Fast(seq_arg, "response headers must be a sequence of pairs");
	if (!seq)
		return NULL;
	Py_buffer body = {0};
	PyObject *out = NULL;
	struct thaw_kv *kv = NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (body_arg != Py_None && PyObject_GetBuffer(body_arg, &body, PyBUF_SIMPLE) < 0)
		goto out;
	if ((size_t)n > THAW_KV_MAX) {
		PyErr_SetString(PyExc_ValueError, "too many key/value pairs");
		goto out;
	}
	if (body.buf && (size_t)body.len > THAW_FRAME_MAX_PAYLOAD) {
		PyErr_SetString(PyExc_ValueError, "response body over one frame");
		goto out;
	}
	kv = PyMem_Calloc((size_t)n + 1, sizeof *kv);
	if (!kv) {
		PyErr_NoMemory();
		goto out;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
		if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
			PyErr_SetString(PyExc_TypeError,
					"response headers must be (name, value) pairs");
			goto out;
		}
		if (latin1_view(PyTuple_GET_ITEM(pair, 0), &kv[i].key, &kv[i].klen) < 0 ||
		    latin1_view(PyTuple_GET_ITEM(pair, 1), &kv[i].val, &kv[i].vlen) < 0)
			goto out;
	}
	size_t head = 2 + thaw_kv_size(kv, (size_t)n);
	if (head > THAW_FRAME_MAX_PAYLOAD) {
		PyErr_Format(PyExc_ValueError, "response headers too large (%zu bytes encoded)",
			     head);
		goto out;
	}
	size_t blen = body.buf ? (size_t)body.len : 0;
	size_t total = THAW_FRAME_HEADER + head;
	if (body.buf)
		total += (blen ? THAW_FRAME_HEADER + blen : 0) + THAW_FRAME_HEADER;
	out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
	if (!out)
		goto out;
	uint8_t *p = (uint8_t *)PyBytes_AS_STRING(out);
	thaw_frame_header(p, THAW_F_RESP_HEAD, (uint32_t)stream, (uint32_t)head);
	p += THAW_FRAME_HEADER;
	thaw_put_u16(p, (uint16_t)status);
	p += 2 + thaw_kv_encode(p + 2, kv, (size_t)n);
	if (body.buf) {
		if (blen) {
			thaw_frame_header(p, THAW_F_RESP_BODY, (uint32_t)stream, (uint32_t)blen);
			memcpy(p + THAW_FRAME_HEADER, body.buf, blen);
			p += THAW_FRAME_HEADER + blen;
		}
		thaw_frame_header(p, THAW_F_RESP_END, (uint32_t)stream, 0);
	}
out:
	PyMem_Free(kv);
	if (body.buf)
		PyBuffer_Release(&body);
	Py_DECREF(seq);
	return out;
}

/* Decoder: accumulates bytes and hands back whole frames. */
typedef struct {
	PyObject_HEAD
	uint8_t *data;
	size_t len, cap;
	int broken;
} DecoderObject;

static void decoder_dealloc(DecoderObject *self)
{
	PyMem_Free(self->data);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *decoder_feed(DecoderObject *self, PyObject *arg)
{
	Py_buffer b;
	if (self->broken) {
		PyErr_SetString(ProtocolError, "decoder already failed");
		return NULL;
	}
	if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	size_t need = self->len + (size_t)b.len;
	if (need > self->cap) {
		size_t cap = self->cap ? self->cap : 65536;
		while (cap < need)
			cap *= 2;
		uint8_t *d = PyMem_Realloc(self->data, cap);
		if (!d) {
			PyBuffer_Release(&b);
			return PyErr_NoMemory();
		}
		self->data = d;
		self->cap = cap;
	}
	memcpy(self->data + self->len, b.buf, (size_t)b.len);
	self->len += (size_t)b.len;
	PyBuffer_Release(&b);

	PyObject *list = PyList_New(0);
	if (!list)
		return NULL;
	size_t off = 0;
	for (;;) {
		struct thaw_frame f;
		size_t used;
		int r = thaw_frame_decode(self->data + off, self->len - off, &f, &used);
		if (r == THAW_FRAME_NEED_MORE)
			break;
		if (r != THAW_FRAME_OK) {
			self->broken = 1;
			Py_DECREF(list);
			PyErr_SetString(ProtocolError, thaw_frame_strerror(r));
			return NULL;
		}
		PyObject *t = Py_BuildValue("(IIy#)", (unsigned)f.type, (unsigned)f.stream, f.payload,
					    (Py_ssize_t)f.len);
		if (!t || PyList_Append(list, t) < 0) {
			Py_XDECREF(t);
			Py_DECREF(list);
			return NULL;
		}
		Py_DECREF(t);
		off += used;
	}
	if (off) {
		memmove(self->data, self->data + off, self->len - off);
		self->len -= off;
	}
	/* Give memory back after a large frame passed through. */
	if (self->len == 0 && self->cap > (1u << 21)) {
		PyMem_Free(self->data);
		self->data = NULL;
		self->cap = 0;
	}
	return list;
}

static PyMethodDef decoder_methods[] = {
	{"feed", (PyCFunction)decoder_feed, METH_O,
	 "feed(data) -> list of (type, stream, payload) for every complete frame"},
	{NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "_thaw.Decoder",
	.tp_basicsize = sizeof(DecoderObject),
	.tp_dealloc = (destructor)decoder_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Incremental frame decoder.",
	.tp_methods = decoder_methods,
	.tp_new = PyType_GenericNew,
};

static PyObject *thaw_record_ws(PyObject *self, PyObject *arg)
{
	const char *path = PyUnicode_AsUTF8(arg);
	if (!path)
		return NULL;
	char err[256];
	if (snap_record_ws(path, err, sizeof err) < 0) {
		PyErr_SetString(PyExc_OSError, err);
		return NULL;
	}
	Py_RETURN_NONE;
}

static PyMethodDef thaw_methods[] = {
	{"record_working_set", thaw_record_ws, METH_O,
	 "record_working_set(path): list the pages this restored process touched"},
	{"encode", thaw_encode, METH_VARARGS, "encode(type, stream, payload=b'') -> frame bytes"},
	{"encode_kv", thaw_encode_kv, METH_O, "encode_kv([(key, value), ...]) -> bytes"},
	{"decode_kv", thaw_decode_kv, METH_O, "decode_kv(bytes) -> [(key, value), ...]"},
	{"request_head", thaw_request_head, METH_O,
	 "request_head(payload) -> (method, url, header entries, cf, entrypoint), or None for an "
	 "event"},
	{"response", thaw_response, METH_VARARGS,
	 "response(stream, status, [(name, value), ...], body=None) -> RESP_HEAD frame bytes, "
	 "with RESP_BODY and RESP_END when body is given"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef thaw_module = {
	PyModuleDef_HEAD_INIT, "_thaw", "thaw instance internals (frame codec).", -1, thaw_methods,
	NULL, NULL, NULL, NULL,
};

PyObject *thaw_pymod_init(void)
{
	if (PyType_Ready(&DecoderType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&thaw_module);
	if (!m)
		return NULL;
	ProtocolError = PyErr_NewException("_thaw.ProtocolError", PyExc_ValueError, NULL);
	Py_INCREF(&DecoderType);
	if (!ProtocolError || PyModule_AddObject(m, "ProtocolError", ProtocolError) < 0 ||
	    PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	Py_INCREF(ProtocolError);
	static const struct {
		const char *name;
		long value;
	} consts[] = {
		{"HELLO", THAW_F_HELLO},         {"INIT", THAW_F_INIT},
		{"READY", THAW_F_READY},         {"LOAD_ERROR", THAW_F_LOAD_ERROR},
		{"SNAP_DONE", THAW_F_SNAP_DONE},
		{"WS_DONE", THAW_F_WS_DONE},     {"EXITING", THAW_F_EXITING},
		{"REQ_HEAD", THAW_F_REQ_HEAD},   {"REQ_BODY", THAW_F_REQ_BODY},
		{"REQ_END", THAW_F_REQ_END},     {"CANCEL", THAW_F_CANCEL},
		{"RESP_HEAD", THAW_F_RESP_HEAD}, {"RESP_BODY", THAW_F_RESP_BODY},
		{"RESP_END", THAW_F_RESP_END},   {"RESP_ERROR", THAW_F_RESP_ERROR},
		{"WINDOW", THAW_F_WINDOW},       {"LOG", THAW_F_LOG},
		{"CALL", THAW_F_CALL},           {"CALL_HEAD", THAW_F_CALL_HEAD},
		{"CALL_BODY", THAW_F_CALL_BODY}, {"CALL_END", THAW_F_CALL_END},
		{"CALL_ERROR", THAW_F_CALL_ERROR},
		{"STREAM_WORKER_BASE", THAW_STREAM_WORKER_BASE},
		{"CALLS_MAX", THAW_CALLS_MAX},
		{"MAX_PAYLOAD", THAW_FRAME_MAX_PAYLOAD},
		{"STREAM_WINDOW", THAW_STREAM_WINDOW},
		{"EXIT_MEMORY", THAW_EXIT_MEMORY},
	};
	for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
		if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
			Py_DECREF(m);
			return NULL;
		}
	}
	return m;
}
