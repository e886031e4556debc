"""An instance is untrusted code: one that writes frames of its own on its socket
(src/proto/frame.h) must not make the host hold memory out of proportion to what it sends.
These workers skip the SDK and write raw frames to fd 3 while blocking their own event loop,
so they read nothing the host answers."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

from thawtest import ThawDev, proc_status_kb

ASSET_BYTES = 240 * 1024  # under one stream window: a call sends it whole at once
CALLS = 1500

FLOOD_WORKER = '''
import os, struct, time
from workers import WorkerEntrypoint, Response

CALL, BASE = 40, 0x80000000

def kv(pairs):
    out = struct.pack("<I", len(pairs))
    for k, v in pairs:
        out += struct.pack("<I", len(k)) + k + struct.pack("<I", len(v)) + v
    return out

def frame(kind, stream, payload):
    return struct.pack("<IBBHI", len(payload), kind, 0, 0, stream) + payload

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/die"):
            # A call left open (a file larger than its credit), then the instance dies.
            os.set_blocking(3, True)
            os.write(3, frame(CALL, BASE + 7, kv([(b":binding", b"ASSETS"), (b":call", b"fetch"),
                                                  (b":method", b"GET"),
                                                  (b":url", b"http://x/huge.bin")])))
            time.sleep(1)
            os._exit(3)
        calls = int(request.url.rsplit("=", 1)[1])
        payload = kv([(b":binding", b"ASSETS"), (b":call", b"fetch"),
                      (b":method", b"GET"), (b":url", b"http://x/big.bin")])
        data = b"".join(frame(CALL, BASE + 1000 + i, payload) for i in range(calls))
        os.set_blocking(3, True)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(3, view):]
        finally:
            os.set_blocking(3, False)
        time.sleep(4)  # the event loop reads nothing meanwhile
        return Response("flooded")
'''


def project(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "public").mkdir()
    (root / "public" / "big.bin").write_bytes(b"x" * ASSET_BYTES)
    (root / "public" / "huge.bin").write_bytes(b"y" * (4 << 20))
    (root / "src" / "entry.py").write_text(textwrap.dedent(FLOOD_WORKER).lstrip())
    (root / "wrangler.jsonc").write_text(json.dumps({
        "name": "flood", "main": "src/entry.py",
        "assets": {"directory": "./public", "binding": "ASSETS"},
    }))
    return root


def test_binding_calls_unread_by_the_instance_do_not_grow_the_host(tmp_path):
    d = ThawDev(project(tmp_path / "flood"), ["--no-snapshot"]).wait_ready()
    try:
        before = proc_status_kb(d.pid, "VmRSS")
        r = d.get(f"/flood?calls={CALLS}", timeout=60)
        assert r.status == 200 and r.text == "flooded"
        peak = proc_status_kb(d.pid, "VmHWM")
        # Without a bound, each 80-byte CALL queued the whole 240 KiB file: ~350 MB.
        assert peak - before < 64 * 1024, f"host grew by {(peak - before) // 1024} MiB"
        # The host still serves.
        assert d.get("/big.bin").body == b"x" * ASSET_BYTES
    finally:
        d.stop()


def test_an_instance_dying_mid_call_leaves_no_file_open_in_the_host(tmp_path):
    d = ThawDev(project(tmp_path / "flood"), ["--no-snapshot"]).wait_ready()
    try:
        huge = str(tmp_path / "flood" / "public" / "huge.bin")
        r = d.get("/die", timeout=30)
        assert r.status == 502
        deadline = time.monotonic() + 10
        while True:
            open_files = []
            for fd in os.listdir(f"/proc/{d.pid}/fd"):
                try:
                    open_files.append(os.readlink(f"/proc/{d.pid}/fd/{fd}"))
                except FileNotFoundError:
                    pass  # closed between the listing and the look: not open
            if huge not in open_files or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert huge not in open_files
    finally:
        d.stop()
