#!/usr/bin/env python3
"""Regenerate the seed corpora under tests/fuzz/corpus/ (deterministic output).

Seeds are small and cover each shape the targets should start from: valid
frames of several types, key/value lists, truncated and oversized frames,
bad types and reserved bits, garbage; JSONC with every comment and comma form.
Usage: python3 tests/fuzz/make_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_PAYLOAD = 1 << 20

T = dict(HELLO=1, INIT=2, READY=3, LOAD_ERROR=4, REQ_HEAD=16, REQ_BODY=17, REQ_END=18,
         CANCEL=19, RESP_HEAD=20, RESP_BODY=21, RESP_END=22, RESP_ERROR=23, WINDOW=24, LOG=32)


def header(ftype, stream, length, flags=0, reserved=0):
    return struct.pack("<IBBHI", length, ftype, flags, reserved, stream)


def frame(ftype, stream, payload=b""):
    return header(ftype, stream, len(payload)) + payload


def kv(pairs):
    out = struct.pack("<I", len(pairs))
    for k, v in pairs:
        out += struct.pack("<I", len(k)) + k + struct.pack("<I", len(v)) + v
    return out


REQ = kv([(b":method", b"POST"), (b":url", b"/api?q=1"), (b"content-type", b"application/json")])
RESP = struct.pack("<H", 200) + kv([(b"content-type", b"text/plain"), (b"x-empty", b"")])

FRAME_SEEDS = {
    "hello": frame(T["HELLO"], 0, b'{"pid": 1234}'),
    "ready": frame(T["READY"], 0, b'{"concurrency": 4, "load_ms": 3.5}'),
    "req_head": frame(T["REQ_HEAD"], 1, REQ),
    "resp_head": frame(T["RESP_HEAD"], 1, RESP),
    "request_stream": frame(T["REQ_HEAD"], 7, REQ) + frame(T["REQ_BODY"], 7, b'{"a": 1}')
    + frame(T["REQ_END"], 7) + frame(T["WINDOW"], 7, struct.pack("<I", 4096)),
    "response_stream": frame(T["RESP_HEAD"], 7, RESP) + frame(T["RESP_BODY"], 7, b"hello\0world")
    + frame(T["RESP_END"], 7) + frame(T["LOG"], 0, b"done"),
    "kv_list_raw": kv([(b"", b""), (b"k\0ey", b"\xff\xfe"), (b"a", b"b")]),
    "kv_huge_length": frame(T["REQ_HEAD"], 2, struct.pack("<II", 1, 0xFFFFFFFF) + b"\0" * 4),
    "kv_trailing": frame(T["REQ_HEAD"], 2, kv([(b"a", b"b")]) + b"\0"),
    "truncated": frame(T["RESP_BODY"], 3, b"0123456789")[:17],
    "oversized": header(T["REQ_BODY"], 1, MAX_PAYLOAD + 1),
    "max_length_header": header(T["REQ_BODY"], 1, MAX_PAYLOAD) + b"x" * 16,
    "bad_type": frame(5, 1, b"??"),
    "bad_reserved": header(T["LOG"], 0, 2, reserved=0x100) + b"hi",
    "garbage": bytes((i * 37 + 11) & 0xFF for i in range(64)),
    "empty": b"",
}

JSONC_SEEDS = {
    "plain.json": b'{"a": [1, 2.5, true, false, null], "b": {"c": "d"}}',
    "line_comments.jsonc": b'// head\n{\n  "a": 1, // tail\n  "b": 2\n}\n',
    "block_comments.jsonc": b'/* one\n two */{"a": /* inline */ [1, 2]}\n/* end */',
    "trailing_commas.jsonc": b'{"a": [1, 2,], "b": {"c": 3,},}',
    "comma_then_comment.jsonc": b'[1, // c\n /* d */ ]',
    "strings.jsonc": b'{"url": "http://x/*y*/", "q": "a\\"//b", "c": ",]", "e": "\\\\"}',
    "unterminated_string.jsonc": b'{"a": "b',
    "unterminated_comment.jsonc": b'{"a": 1} /* never',
    "escape_at_end.jsonc": b'["a\\',
    "wrangler.jsonc": b"""/**
 * Wrangler configuration
 */
{
\t"$schema": "node_modules/wrangler/config-schema.json",
\t"name": "hello-python",
\t"main": "src/entry.py",
\t"compatibility_date": "2025-04-10",
\t"compatibility_flags": ["python_workers",], // Python
\t"vars": { "GREETING": "hi // there", },
\t"kv_namespaces": [ { "binding": "CACHE", "id": "abc" }, /* prod */ ],
}
""",
    "duplicate_keys.json": b'{"a": 1, "a": 2}',
    "empty": b"",
}


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for fname, data in seeds.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("fuzz_frame", FRAME_SEEDS)
    write("fuzz_jsonc", JSONC_SEEDS)
