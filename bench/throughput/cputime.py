"""CPU time (user + system, seconds) of a process and all its descendants, from /proc.

    cputime.py PID     prints one float

Each live process of the tree counts its own utime + stime (all its threads) plus cutime +
cstime (the children it has reaped), so a child that exits during a run still counts, through
its parent, once it is reaped; a live one is never counted twice. Read it just before and just
after a run: the difference is the CPU the tree spent in between (clock ticks, 10 ms each).
"""

from __future__ import annotations

import os
import sys


def _stat(pid: int) -> tuple[int, list[str]] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), fields  # ppid, fields from state on


def tree_seconds(root: int) -> float:
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        got = _stat(int(d))
        if got is None:
            continue  # gone meanwhile
        ppid, fields = got
        stats[int(d)] = fields
        children.setdefault(ppid, []).append(int(d))
    ticks = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if fields is None:
            continue
        # fields[0] is the state (field 3 of stat); utime..cstime are fields 14-17.
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
        todo.extend(children.get(pid, ()))
    return ticks / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    print(f"{tree_seconds(int(sys.argv[1])):.3f}")
