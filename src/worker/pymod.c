/*
 * _thaw: the instance's built-in module. It exposes the frame codec of
 * src/proto/ to the Python runtime, so both ends of the socket share one
 * implementation of the wire format.
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
