"""An instance is untrusted code: one that writes frames of its own on its socket
(src/proto/frame.h) must not make the host hold memory out of proportion to what it sends.
These workers skip the SDK and write raw frames to fd 3 while blocking their own event loop,
so they read nothing the host answers."""

from __future__ import annotations

import json
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
