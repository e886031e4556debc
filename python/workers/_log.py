"""Worker diagnostics on stderr, each line prefixed with the worker's name."""

from __future__ import annotations

import sys
import traceback

_worker_name = "worker"


def set_worker_name(name: str) -> None:
    global _worker_name
    _worker_name = name or "worker"


def worker_name() -> str:
    return _worker_name


def log(message: str) -> None:
    """Write ``message`` to stderr, every line prefixed with ``[name]``, and flush."""
    stream = sys.stderr
    if stream is None:
        return
    prefix = f"[{_worker_name}] "
    text = "".join(prefix + line + "\n" for line in message.rstrip("\n").split("\n"))
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        pass


def format_exception(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def log_exception(what: str, error: BaseException) -> None:
    log(f"{what}:\n{format_exception(error)}")
