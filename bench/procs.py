"""What the benchmarks read of a host's processes in /proc (shared by bench/*/measure.py)."""

from __future__ import annotations

import os


def worker_children(host_pid: int) -> list[dict]:
    """The host's live children running `thaw worker` (instances and blank spares), each with
    its pid, comm, whether it is a blank spare, and its smaps_rollup figures in kB."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != host_pid or fields[0] == "Z":
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if b"worker" not in argv[1:]:
                continue
            with open(f"/proc/{d}/comm") as f:
                comm = f.read().strip()
            roll = {}
            with open(f"/proc/{d}/smaps_rollup") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if v.strip().endswith("kB"):
                        roll[k] = int(v.split()[0])
            out.append({"pid": int(d), "comm": comm, "spare": comm == "thaw-spare",
                        "rss_kb": roll.get("Rss", 0), "pss_kb": roll.get("Pss", 0),
                        "pss_anon_kb": roll.get("Pss_Anon", 0),
                        "pss_file_kb": roll.get("Pss_File", 0)})
        except (OSError, ValueError, IndexError):
            pass  # gone meanwhile
    return out
