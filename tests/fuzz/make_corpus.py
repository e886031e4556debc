#!/usr/bin/env python3
"""Regenerate the seed corpora under tests/fuzz/corpus/ (deterministic output).

Seeds are small and cover each shape the targets should start from: valid
frames of several types, key/value lists, truncated and oversized frames,
bad types and reserved bits, garbage; JSONC with every comment and comma form;
snapshot files (a mode byte, then the file: see tests/fuzz/fuzz_snap.c), valid
and one defect away from valid.
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


# ---- snapshot files (src/snap/snap.h) ----

M64 = (1 << 64) - 1
PAGE = 4096
USER_TOP = 0x800000000000
FILE, ANON, HEAP, STACK = 1, 2, 3, 4
HEADER_SIZE = 2552  # sizeof(struct snap_header)
NO_BASE = 0xFFFFFFFF  # SNAP_NO_BASE
TABLE_OFF = PAGE


def snap_hash(h, data):
    """snap_hash() from src/snap/format.c, bit for bit."""
    m = 0x9E3779B97F4A7C15
    n = len(data)
    h = (h ^ (n * m)) & M64
    i = 0
    while n - i >= 8:
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * m) & M64
        h ^= h >> 29
        i += 8
    tail = n - i
    w = int.from_bytes(data[i:], "little")  # zero padded, as memcpy into a zeroed u64
    h = ((h ^ w ^ ((tail << 56) & M64)) * m) & M64
    return h ^ (h >> 32)


def data_hash(data):
    """snap_data_hash: snap_hash chained page by page."""
    h = 0
    for i in range(0, len(data), 4096):
        h = snap_hash(h, data[i:i + 4096])
    return h


# struct snap_header (version 2), little-endian, no padding: 2552 bytes.
HEADER_FMT = ("<8sIIQQ IIII QQQQQ"  # magic .. data_hash
              "8QIHHQ"  # ctx: rbx rbp r12 r13 r14 r15 rsp rip, mxcsr, fpucw, pad, fs_base
              "QQQ IIII Q"  # brk vdso_start rseq_addr, rseq_len rseq_sig tid_offset pad2, sigmask
              "256Q 128s128s"  # sigs[64], kernel, cpu
              "IIQ QQ")  # base_dep pad3 base_hash, table_hash, header_hash
HEADER_FIELDS = ("magic version header_size file_size created nregions nruns ndeps strings_len "
                 "table_off table_len data_off data_len data_hash "
                 "rbx rbp r12 r13 r14 r15 rsp rip mxcsr fpucw pad fs_base "
                 "brk vdso_start rseq_addr rseq_len rseq_sig tid_offset pad2 sigmask").split()
assert struct.calcsize(HEADER_FMT) == HEADER_SIZE


def pack_header(f):
    values = [f[name] for name in HEADER_FIELDS] + list(f["sigs"])
    values += [f["kernel"], f["cpu"], f["base_dep"], f["pad3"], f["base_hash"]]
    values += [f["table_hash"], f["header_hash"]]
    return struct.pack(HEADER_FMT, *values)


def region(start, end, prot, kind, file_off=0, dep=0):
    return dict(start=start, end=end, prot=prot, kind=kind, file_off=file_off, dep=dep)


def base_snapshot():
    """The shape of a small worker image: binary text + data, heap, libc text, stack."""
    return dict(
        header=dict(magic=b"THAWSNP1", version=2, header_size=HEADER_SIZE,
                    created=1700000000 * 10**9,
                    rbx=1, rbp=0x7fffffffe600, r12=3, r13=4, r14=5, r15=6, rsp=0x7fffffffe5c0,
                    rip=0x555555555123, mxcsr=0x1F80, fpucw=0x37F, pad=0, fs_base=0x7ffff7d8a740,
                    brk=0x55555557a000, vdso_start=0x7ffff7fc1000, rseq_addr=0x7ffff7d8ae00,
                    rseq_len=32, rseq_sig=0x53053053, tid_offset=0x2D0, pad2=0, sigmask=1 << 13,
                    sigs=[0] * 256, kernel=b"x86_64 6.1.0-18-amd64 #1 SMP Debian",
                    cpu=b"Test CPU @ 3.00GHz flags:0123456789abcdef",
                    base_dep=NO_BASE, pad3=0, base_hash=0),
        # runs: (region index, start, npages); build_snapshot sets run_first/run_count
        regions=[region(0x555555554000, 0x555555556000, 5, FILE, 0, 0),
                 region(0x555555556000, 0x555555558000, 3, FILE, 0x2000, 0),
                 region(0x555555559000, 0x55555557a000, 3, HEAP),
                 region(0x7ffff7dd0000, 0x7ffff7dd4000, 5, FILE, 0x26000, 1),
                 region(0x7ffffffde000, 0x7ffffffff000, 3, STACK)],
        runs=[(1, 0x555555557000, 1), (4, 0x7fffffffe000, 1)],
        deps=[b"/usr/bin/python3.11", b"/usr/lib/x86_64-linux-gnu/libc.so.6"],
    )


def build_snapshot(s, mode=0, tweak=None, hashes=True):
    """Lay a snapshot out as snap_checkpoint would; tweak(header, table_parts) may break it
    before the checksums are computed. Returns the mode byte + the file."""
    regions = [dict(r) for r in s["regions"]]
    for r in regions:
        r["run_count"] = 0
    for ri, _, _ in s["runs"]:
        regions[ri]["run_count"] += 1
    first = 0
    for r in regions:
        r["run_first"] = first
        first += r["run_count"]
    strings, deps = b"", []
    for i, path in enumerate(s["deps"]):
        deps.append(dict(path_off=len(strings), path_len=len(path), dev=0x803, ino=1000 + i,
                         size=0x100000, mtime_sec=1700000000, mtime_nsec=5))
        strings += path + b"\0"
    tlen = 48 * len(regions) + 24 * len(s["runs"]) + 48 * len(deps) + len(strings)
    data_off = (TABLE_OFF + tlen + PAGE - 1) // PAGE * PAGE
    runs, at = [], data_off
    for _, start, npages in s["runs"]:
        runs.append(dict(start=start, npages=npages, data_off=at))
        at += npages * PAGE
    h = dict(s["header"], nregions=len(regions), nruns=len(runs), ndeps=len(deps),
             strings_len=len(strings), table_off=TABLE_OFF, table_len=tlen, data_off=data_off,
             data_len=at - data_off, file_size=at, data_hash=0, table_hash=0, header_hash=0)
    parts = dict(regions=regions, runs=runs, deps=deps, strings=strings)
    if tweak:
        tweak(h, parts)

    table = b"".join(struct.pack("<QQIIQIIII", r["start"], r["end"], r["prot"], r["kind"],
                                 r["file_off"], r["dep"], r["run_first"], r["run_count"], 0)
                     for r in parts["regions"])
    table += b"".join(struct.pack("<QQQ", u["start"], u["npages"], u["data_off"])
                      for u in parts["runs"])
    table += b"".join(struct.pack("<IIQQQqQ", d["path_off"], d["path_len"], d["dev"], d["ino"],
                                  d["size"], d["mtime_sec"], d["mtime_nsec"])
                      for d in parts["deps"])
    table += parts["strings"]
    data = bytes((i * 131 + 7) & 0xFF for i in range(at - data_off))
    if hashes:
        h["data_hash"] = data_hash(data)
        h["table_hash"] = snap_hash(0, table)
        h["header_hash"] = snap_hash(0, pack_header(h))
    out = bytearray(at)
    out[:HEADER_SIZE] = pack_header(h)
    out[TABLE_OFF:TABLE_OFF + len(table)] = table
    out[data_off:] = data
    return bytes([mode]) + bytes(out)


def flip(seed, file_off):
    """The seed with one bit of the file (after the mode byte) flipped."""
    b = bytearray(seed)
    b[1 + file_off] ^= 1
    return bytes(b)


def with_header(**fields):
    return lambda h, parts: h.update(fields)


def set_in(part, index, **fields):
    return lambda h, parts: parts[part][index].update(fields)


def snap_seeds():
    base = base_snapshot()
    big = base_snapshot()
    big["regions"][2:3] = [region(0x555555559000, 0x55555557a000, 3, HEAP),
                           region(0x7ffff7a00000, 0x7ffff7a10000, 3, ANON)]
    big["runs"] = [(1, 0x555555557000, 1), (2, 0x555555559000, 2), (2, 0x555555560000, 1),
                   (3, 0x7ffff7a0f000, 1), (5, 0x7fffffffd000, 2)]
    big["deps"].append(b"/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so")
    big["regions"].insert(5, region(0x7ffff7fb0000, 0x7ffff7fb2000, 1, FILE, 0, 2))
    big["runs"][-1] = (6, 0x7fffffffd000, 2)
    no_runs = base_snapshot()
    no_runs["runs"] = []
    # A delta (snap.h, A BASE): a region mapping its base image's file (dep 2),
    # with a page of its own laid over it; the header names the base.
    delta = base_snapshot()
    delta["regions"].insert(3, region(0x7ffff7a00000, 0x7ffff7a10000, 3, FILE, 0x5000, 2))
    delta["runs"] = [(1, 0x555555557000, 1), (3, 0x7ffff7a04000, 1), (5, 0x7fffffffe000, 1)]
    delta["deps"].append(b"/var/lib/thaw/base.snap")
    delta["header"].update(base_dep=2, base_hash=0x0123456789ABCDEF)

    def orphan_run(h, parts):
        parts["regions"][4]["run_count"] = 0

    def overlapping_regions(h, parts):
        parts["regions"][2]["start"] = 0x555555557000

    def second_stack(h, parts):
        parts["regions"][2]["kind"] = STACK
        h["rsp"] = 0x555555570000

    valid = build_snapshot(base)
    seeds = {
        # Valid, checksums right (mode 0) or left to the harness (mode 1).
        "valid": valid,
        "valid_fixup": build_snapshot(base, mode=1, hashes=False),
        "valid_many_regions": build_snapshot(big),
        "valid_no_runs": build_snapshot(no_runs),
        "valid_data_corrupt": flip(valid, len(valid) - 2),  # the last data byte
        # Checksums and sizes.
        "bad_header_hash": flip(valid, 24),  # created_unix_ns
        "bad_table_hash": flip(valid, TABLE_OFF + 5 * 48 + 2 * 24 + 16),  # deps[0].ino
        "truncated": valid[:-PAGE],
        "header_only": valid[:1 + HEADER_SIZE],
        "bad_magic": build_snapshot(base, tweak=with_header(magic=b"THAWSNP2")),
        # Structural near misses (mode 1: the harness fixes the checksums).
        "table_on_header": build_snapshot(base, 1, with_header(table_off=0)),
        "table_past_end": build_snapshot(base, 1, with_header(table_off=0x100000)),
        "data_outside": build_snapshot(base, 1, with_header(data_len=0x100000)),
        "counts_over": build_snapshot(base, 1, with_header(nruns=(1 << 20) + 1)),
        "rsp_outside_stack": build_snapshot(base, 1, with_header(rsp=0x7ffffffff000)),
        "rip_not_executable": build_snapshot(base, 1, with_header(rip=0x555555557010)),
        "region_above_user_top": build_snapshot(base, 1, set_in("regions", 4, end=USER_TOP + PAGE)),
        "overlapping_regions": build_snapshot(base, 1, overlapping_regions),
        "two_stacks": build_snapshot(base, 1, second_stack),
        "bad_kind": build_snapshot(base, 1, set_in("regions", 2, kind=6)),
        # A read-only shared view of a file (kind 5, SNAP_R_SHARED): valid; writable, not.
        "shared_read_only": build_snapshot(base, 1, set_in("regions", 3, kind=5, prot=1)),
        "shared_writable": build_snapshot(base, 1, set_in("regions", 3, kind=5, prot=3)),
        "file_dep_out_of_range": build_snapshot(base, 1, set_in("regions", 3, dep=2)),
        "run_overflows_region": build_snapshot(base, 1, set_in("runs", 0, npages=2)),
        "run_npages_wraps": build_snapshot(base, 1, set_in("runs", 1, npages=1 << 52)),
        "run_data_outside": build_snapshot(base, 1, set_in("runs", 1, data_off=0xFFFFFFFFFFFFF000)),
        "orphan_run": build_snapshot(base, 1, orphan_run),
        "dep_relative": build_snapshot(base, 1, set_in("deps", 0, path_off=1, path_len=18)),
        "dep_out_of_strings": build_snapshot(base, 1, set_in("deps", 1, path_len=0xFFFFFFFF)),
        # Format version 1 (no base fields): refused, the host rebuilds.
        "version_1": build_snapshot(base, tweak=with_header(version=1)),
        # A delta over a base image, valid; and one field away from valid.
        "delta": build_snapshot(delta),
        "delta_fixup": build_snapshot(delta, mode=1, hashes=False),
        "base_dep_out_of_range": build_snapshot(delta, 1, with_header(base_dep=3)),
        "base_is_the_binary": build_snapshot(delta, 1, with_header(base_dep=0)),
        "base_not_mapped": build_snapshot(delta, 1, set_in("regions", 3, dep=1)),
        "base_shared": build_snapshot(base, 1, lambda h, parts: (
            parts["regions"][3].update(kind=5, prot=1), h.update(base_dep=1, base_hash=7))),
        "base_hash_without_base": build_snapshot(base, 1, with_header(base_hash=7)),
        "base_pad_set": build_snapshot(delta, 1, with_header(pad3=1)),
        "empty": b"",
    }
    return seeds


UV_ROOT = ('{"name": "proj", "version": "0.1.0", "source": {"virtual": "."}, '
           '"dependencies": [{"name": "a", "extra": ["x"]}, '
           '{"name": "w", "marker": "sys_platform == \'win32\'"}]}')
UV_A = ('{"name": "a", "version": "1.0", "source": {"registry": "https://pypi.org/simple"}, '
        '"dependencies": [{"name": "w"}], "optional-dependencies": {"x": [{"name": "g"}]}}')
UV_G = ('{"name": "g", "version": "1", "source": {"git": '
        '"https://example.com/g?rev=main&subdirectory=s#0123456789abcdef0123456789abcdef01234567"}}')
UV_W = '{"name": "w", "version": "2", "source": {"path": "wheels/w 2.whl"}}'
PYLOCK_PKGS = ('{"name": "a", "version": "1.0", "marker": "python_version >= \'3.8\'"}, '
               '{"name": "d", "directory": {"path": "../d"}}, '
               '{"name": "v", "vcs": {"type": "git", "url": "https://example.com/v", '
               '"commit-id": "0123456789abcdef"}}, '
               '{"name": "z", "archive": {"url": "https://example.com/z.whl"}}')

LOCKFILE_SEEDS = {
    "uv_graph": b"\0" + f'{{"version": 1, "package": [{UV_ROOT}, {UV_A}, {UV_G}, {UV_W}]}}'.encode(),
    "uv_cycle": b"\0" + b'{"version": 1, "package": [{"name": "proj", "source": {"editable": "."}, '
    b'"dependencies": [{"name": "a"}]}, {"name": "a", "version": "1", '
    b'"dependencies": [{"name": "a"}, {"name": "proj"}]}]}',
    "uv_no_root": b"\0" + f'{{"version": 1, "package": [{UV_A}, {UV_W}]}}'.encode(),
    "uv_bad_version": b"\0" + b'{"version": 1, "package": [{"name": "a", "version": "-1"}]}',
    "uv_missing_dep": b"\0" + f'{{"version": 1, "package": [{UV_ROOT}]}}'.encode(),
    "pylock": b"\1" + f'{{"lock-version": "1.0", "packages": [{PYLOCK_PKGS}]}}'.encode(),
    "pylock_no_version": b"\1" + b'{"lock-version": "1.0", "packages": [{"name": "a"}]}',
    "not_an_object": b"\0[1, 2]",
    "empty": b"",
}


def bundle_seeds():
    """Bundles (tar+zstd) for fuzz_bundle: valid ones in each tar dialect, and
    one of each kind the reader must refuse. Needs the zstd command."""
    import gzip
    import io
    import subprocess
    import tarfile

    def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link=""):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, 0, 0, 0
        ti.uname = ti.gname = ""
        ti.linkname = link
        ti.size = len(data) if kind == tarfile.REGTYPE else 0
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            ti.devmajor, ti.devminor = 1, 3
        return ti, data

    def tar(entries, fmt=tarfile.PAX_FORMAT):
        out = io.BytesIO()
        record, tarfile.RECORDSIZE = tarfile.RECORDSIZE, tarfile.BLOCKSIZE  # no record padding
        try:
            with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
                for ti, data in entries:
                    t.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
        finally:
            tarfile.RECORDSIZE = record
        return out.getvalue()

    def zst(raw):
        return subprocess.run(["zstd", "-q", "-c", "-3", "--no-progress"], input=raw,
                              stdout=subprocess.PIPE, check=True).stdout

    project = [entry("pyproject.toml", data=b'[project]\nname = "w"\n'),
               entry("src/", tarfile.DIRTYPE, mode=0o755),
               entry("src/entry.py", data=b"from workers import Response\n", mode=0o755),
               entry("python_modules/m/__init__.py", data=b"X = 1\n")]
    valid = zst(tar(project))
    seeds = {
        "valid_pax": valid,
        "valid_ustar_dot": zst(tar([entry("./", tarfile.DIRTYPE, mode=0o755),
                                    entry("./src/entry.py", data=b"x")], tarfile.USTAR_FORMAT)),
        "valid_gnu_longname": zst(tar([entry("d/" + "n" * 120, data=b"long")], tarfile.GNU_FORMAT)),
        "valid_empty_dir": zst(tar([entry("empty/", tarfile.DIRTYPE, mode=0o755)])),
        "dotdot": zst(tar([entry("../x", data=b"x")])),
        "inner_dotdot": zst(tar([entry("a/../../x", data=b"x")])),
        "absolute": zst(tar([entry("/etc/x", data=b"x")])),
        "symlink": zst(tar([entry("l", tarfile.SYMTYPE, link="/etc/passwd")])),
        "hardlink": zst(tar([entry("f", data=b"x"), entry("h", tarfile.LNKTYPE, link="f")])),
        "chardev": zst(tar([entry("dev", tarfile.CHRTYPE)])),
        "fifo": zst(tar([entry("p", tarfile.FIFOTYPE)])),
        "duplicate": zst(tar([entry("a", data=b"1"), entry("a", data=b"2")])),
        "file_as_dir": zst(tar([entry("a", data=b"1"), entry("a/b", data=b"2")])),
        "deep": zst(tar([entry("/".join("d" * 9) + "/f", data=b"x")])),
        "long_path": zst(tar([entry("p" * 200, data=b"x")])),
        "backslash": zst(tar([entry("a\\b", data=b"x")])),
        "control_char": zst(tar([entry("a\x01b", data=b"x")])),
        "empty_component": zst(tar([entry("a//b", data=b"x")])),
        "too_many": zst(tar([entry("f%03d" % i) for i in range(70)])),
        "big_file": zst(tar([entry("zeros", data=b"\0" * (70 * 1024))])),
        "over_total": zst(tar([entry("z%d" % i, data=b"\0" * (60 * 1024)) for i in range(5)])),
        "plain_tar": tar(project[:1]),
        "gzip_tar": gzip.compress(tar(project[:1]), mtime=0),
        "truncated": valid[:len(valid) // 2],
        "garbage": bytes((i * 73 + 5) & 0xFF for i in range(96)),
        "zstd_garbage": zst(bytes((i * 73 + 5) & 0xFF for i in range(600))),
        "empty": b"",
    }
    for name, data in seeds.items():
        assert len(data) < 4096, (name, len(data))
    return seeds


def write(name, seeds):
    d = os.path.join(HERE, "corpus", name)
    os.makedirs(d, exist_ok=True)
    for fname, data in seeds.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(data)


def remote_seeds():
    """fuzz_remote: a mode byte (0 deploy progress stream, 1 tail line, 2 versions answer,
    3 deployment answer and raw bytes), then what a control host sends."""
    import json

    v3, v2 = "1f2e4a5b-6c7d-4e8f-9a0b-1c2d3e4f5a6b", "2f2e2d2c-0000-4000-8000-000000000002"
    dep = {"id": "d0d0d0d0-0000-4000-8000-00000000000d", "created": 1714566896000, "message": "",
           "versions": [{"id": v3, "percentage": 10}, {"id": v2, "percentage": 90}]}

    def nd(*objs):
        return "".join(json.dumps(o) + "\n" for o in objs).encode()

    stored = {"stage": "stored", "version": v3, "number": 3, "bytes": 1234, "sha256": "ab" * 32,
              "files": 5}
    return {
        "deploy_ok": b"\x00" + nd(stored, {"stage": "building"},
                                  {"stage": "built", "snapshot_bytes": 31200000, "ms": 850.2},
                                  {"stage": "validated", "restore_ms": 1.3, "status": 200},
                                  {"stage": "live", "deployment": dep}),
        "deploy_failed": b"\x00" + nd(stored, {"stage": "failed", "error": "snapshot build failed\n"
                                       "Traceback (most recent call last):\n  x\x1b[2J"}),
        "deploy_after_end": b"\x00" + nd(stored, {"stage": "failed", "error": "x"},
                                         {"stage": "building"}),
        "deploy_bad_id": b"\x00" + nd({"stage": "stored", "version": "a\nb", "number": 3}),
        "deploy_unknown_stage": b"\x00" + nd({"stage": "warming \u009b2J"}, {"stage": 7}, [1]),
        "deploy_garbage": b"\x00" + b'{"stage": "built", "ms": 1e400}\nnot json\n',
        "tail_line": b"\x01" + json.dumps({"ts": 1714566896789, "worker": "shop", "version": v3,
                                           "request_id": "req-1", "stream": "stdout",
                                           "message": "hello\n\x1b]0;t\x07\u0085"}).encode(),
        "tail_odd": b"\x01" + json.dumps({"ts": -5, "version": 3, "request_id": None,
                                          "stream": None, "message": "a\u0000b"}).encode(),
        "tail_huge_ts": b"\x01" + b'{"ts": 1e300, "message": 5}',
        "versions": b"\x02" + json.dumps({"versions": [
            {"id": v3, "number": 3, "created": 1714566896000, "message": "third",
             "state": "ready", "error": None},
            {"id": v2, "number": 2, "created": 1714566896000, "message": "x" * 100,
             "state": "failed", "error": "first\nsecond"},
            {"id": "\u00e9" * 9, "number": "1", "created": "x", "state": "\x1b[31m"}],
            "deployment": dep}).encode(),
        "versions_empty": b"\x02" + b'{"versions": [], "deployment": null}',
        "versions_not_array": b"\x02" + b'{"versions": {}}',
        "deployment": b"\x03" + json.dumps({"deployment": dep,
                                            "versions": [{"id": v3, "number": 3}]}).encode(),
        "raw_bytes": b"\x03" + b"\xc2\x9b\xe2\x82\xac\xf0\x9f\x98\x80\xed\xa0\x80\xff\x1b[0m\xc2",
    }


def d1_seeds():
    """fuzz_d1: a byte choosing the call (0-4 d1_query modes, 5 first("a"), 6 exec,
    7 batch, 8 execute), the SQL, a NUL, then JSON (parameters or statements)."""
    import json

    def q(op, sql, extra=None):
        out = bytes([op]) + sql.encode()
        if extra is not None:
            out += b"\0" + json.dumps(extra).encode()
        return out
    return {
        "all_params": q(0, "SELECT * FROM t WHERE a = ? OR b = ?", [1, "one"]),
        "run_insert": q(1, "INSERT INTO t (b, c) VALUES (?, ?) RETURNING *",
                        ["x", {"$b": "AAEC"}]),
        "first_column": q(5, "SELECT a, b FROM t ORDER BY a DESC"),
        "raw_names": q(4, "SELECT a AS a, b AS a, c FROM t"),
        "bad_type": q(0, "SELECT ?", [[1, 2]]),
        "bad_base64": q(0, "SELECT ?", [{"$b": "=="}]),
        "bools": q(2, "SELECT ?, ?, ?", [True, False, None]),
        "count_mismatch": q(0, "SELECT ?1, ?3", [1]),
        "several": q(0, "INSERT INTO t (b) VALUES (?); SELECT count(*) FROM t WHERE b = ?",
                     ["z", "z"]),
        "attach": q(0, "ATTACH 'evil.db' AS e"),
        "attach_uri": q(6, "ATTACH 'file:evil.db?mode=rwc' AS e; CREATE TABLE e.x (a)"),
        "vacuum_into": q(6, "VACUUM INTO 'evil.db'"),
        "load_extension": q(0, "SELECT load_extension('libc.so.6')"),
        "pragma_bad": q(0, "PRAGMA writable_schema = 1"),
        "pragma_good": q(3, "PRAGMA table_info(t)"),
        "pragma_vtab": q(0, "SELECT * FROM pragma_database_list"),
        "begin": q(6, "BEGIN; INSERT INTO t (b) VALUES ('q'); COMMIT"),
        "recursive": q(0, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                          "SELECT x FROM c"),
        "big_blob": q(0, "SELECT randomblob(1999999), zeroblob(2000001)"),
        "not_utf8": bytes([0]) + b"SELECT CAST(x'ff80c0' AS TEXT) AS \xff",
        "fts5": q(8, "CREATE VIRTUAL TABLE f USING fts5(x); INSERT INTO f VALUES ('hi');"
                     "SELECT * FROM f WHERE f MATCH 'hi'"),
        "trigger": q(6, "CREATE TABLE l (m); CREATE TRIGGER tr AFTER INSERT ON t BEGIN "
                        "INSERT INTO l VALUES (new.b); END; INSERT INTO t (b) VALUES ('w')"),
        "batch": bytes([7]) + b"\0" + json.dumps([
            {"sql": "INSERT INTO t (b) VALUES (?)", "params": ["1"]},
            {"sql": "INSERT INTO nope VALUES (1)"}]).encode(),
        "batch_malformed": bytes([7]) + b"\0" + b'[{"sql": 5}, 7, {"params": {}}]',
        "empty": bytes([0]),
        "comment_only": q(6, "-- nothing\n/* at all */"),
        "exec_error": q(6, "INSERT INTO t (b) VALUES (1);\nINSERTZ INTO t VALUES ();"),
    }


def kv_seeds():
    """fuzz_kv: operations, one byte each (bit 7: a raw key follows as a length byte and
    bytes, else bits 4-6 pick k0..k7; bits 0-3 the operation: 0-2 put, 3-4 get, 5 delete,
    6-7 list, 8 clock, 9 sweep, 10 reopen, 11 raw cursor, 12+ get every key), then the
    operation's bytes (see tests/fuzz/fuzz_kv.c)."""

    def named(op, idx):
        return bytes([(idx << 4) | op])

    def raw(op, key):
        return bytes([0x80 | op, len(key)]) + key

    def put(value, how=0, *extra):
        return bytes([len(value)]) + value + bytes([how, *extra])

    return {
        "put_get_list": named(0, 0) + put(b"hello") + named(0, 1) + put(b"x", 1 | (1 << 2), 5)
        + named(3, 0) + named(3, 1) + named(6, 0) + bytes([0, 1]) + named(6, 1) + bytes([1, 0]),
        "expire_sweep": named(0, 2) + put(b"short", 1, 3) + named(0, 3) + put(b"long", 2, 4)
        + bytes([8, 255]) + named(3, 2) + bytes([9, 3]) + bytes([12]) + named(6, 0) + bytes([0, 4]),
        "raw_keys": raw(0, b"..") + put(b"v") + raw(0, b"a\0b") + put(b"\0\xff")
        + raw(3, b"a\0b") + raw(5, b"") + raw(0, b"\xed\xa0\x80") + put(b"v")
        + raw(6, b"a") + bytes([2, 0]),
        "cursor": named(0, 0) + put(b"a") + bytes([11, 5]) + b"AAAAA" + bytes([11, 0]),
        "reopen": named(0, 4) + put(b"durable", 2 | (6 << 2), 4) + bytes([10, 12]),
        "refused_options": named(0, 5) + put(b"v", 1 | (3 << 2), 1) + named(0, 5)
        + put(b"v", 2 | (5 << 2), 1) + named(0, 5) + put(b"v", 3, 0, 0) + bytes([12]),
        "empty": b"",
    }


def r2_seeds():
    """fuzz_r2: a byte choosing the parser (0 only_if, 1 range after an 8-byte object size,
    2 HTTP metadata, 3 custom metadata, 4 complete()'s parts, 5 a key), then its input."""
    size = struct.pack("<Q", 1000)
    return {
        "cond_etags": b"\x00" + b'{"etagMatches": ["\\"abc\\"", "W/\\"d\\"", "*"]}',
        "cond_dates": b"\x00" + b'{"uploadedBefore": 1700000000000, "uploadedAfter": 1.5e12, '
        b'"secondsGranularity": true, "etagDoesNotMatch": "a, b"}',
        # Past INT64's ends once rounded to seconds: clamped, never overflowed.
        "cond_int64_min": b"\x00" + b'{"uploadedBefore": %d, "secondsGranularity": true}'
        % -2**63,
        "cond_int64_max": b"\x00" + b'{"uploadedAfter": %d, "uploadedBefore": %d, '
        b'"secondsGranularity": true}' % (2**63 - 1, 2**63 - 2),
        "range_offset": b"\x01" + size + b'{"offset": 10, "length": 2000}',
        "range_suffix": b"\x01" + size + b'{"suffix": 0}',
        "range_header": b"\x01" + size + b'{"header": "bytes=-5"}',
        "http": b"\x02" + b'{"contentType": "text/plain", "cacheExpiry": 1700000000000}',
        "custom": b"\x03" + b'{"owner": "ana", "big": "' + b"x" * 2100 + b'"}',
        "custom_past_8k": b"\x03" + b'{"owner": "ana", "big": "' + b"x" * 8190 + b'"}',
        "http_past_8k": b"\x02" + b'{"contentType": "' + b"t" * 5000 + b'", "cacheControl": "'
        + b"c" * 5000 + b'"}',
        "parts": b"\x04" + b'[{"partNumber": 1, "etag": "a"}, {"partNumber": 10001, "etag": "b"}]',
        "key": b"\x05" + "caf\u00e9/\xff".encode("latin-1"),
        "empty": b"",
    }


def dobj_seeds():
    """fuzz_dobj: a byte choosing the method (0 get, 1 put, 2 delete, 3 list, 4 write,
    5 sql, 6 size, 7 delete_all), then the arguments as JSON."""
    import json

    def c(op, args):
        return bytes([op]) + json.dumps(args).encode()
    return {
        "put": c(1, {"entries": {"a": "1", "b": '{"x": 2}', "\u00e9": "3"}}),
        "get": c(0, {"keys": ["a", "b", "missing"]}),
        "list_prefix": c(3, {"prefix": "a", "reverse": True, "limit": 5}),
        "list_range": c(3, {"start": "a", "end": "c"}),
        "delete": c(2, {"keys": ["a"]}),
        "write": c(4, {"puts": {"t": "1"}, "deletes": ["b"]}),
        "sql_create": c(5, {"query": "CREATE TABLE IF NOT EXISTS t (x)"}),
        "sql_params": c(5, {"query": "INSERT INTO t VALUES (?) RETURNING *", "params": [1]}),
        "sql_reserved": c(5, {"query": "SELECT * FROM __cf_kv"}),
        "sql_attach": c(5, {"query": "ATTACH DATABASE 'x' AS x"}),
        "size": c(6, {}),
        "bad_key": c(0, {"keys": [1, None]}),
        "not_object": c(1, [1, 2]),
    }


if __name__ == "__main__":
    write("fuzz_frame", FRAME_SEEDS)
    write("fuzz_jsonc", JSONC_SEEDS)
    write("fuzz_snap", snap_seeds())
    write("fuzz_bundle", bundle_seeds())
    write("fuzz_lockfile", LOCKFILE_SEEDS)
    write("fuzz_remote", remote_seeds())
    write("fuzz_d1", d1_seeds())
    write("fuzz_kv", kv_seeds())
    write("fuzz_r2", r2_seeds())
    write("fuzz_dobj", dobj_seeds())
