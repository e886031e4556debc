"""Run every case's check() in a plain interpreter (no snapshot): the answers restored instances
must give. Usage: /usr/bin/python3 plain.py OUT.json [NAME...]; prints nothing on success."""

import asyncio
import importlib.util
import inspect
import json
import os
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES  # noqa: E402


def answer(case, directory):
    path = os.path.join(directory, f"case_{case.name}.py")
    with open(path, "w") as f:
        f.write(case.source)
    spec = importlib.util.spec_from_file_location(f"case_{case.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value = module.check()
    if inspect.isawaitable(value):
        value = asyncio.run(value)
    return str(value)


def main():
    out, names = sys.argv[1], set(sys.argv[2:])
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for case in CASES:
            if names and case.name not in names:
                continue
            try:
                results[case.name] = {"ok": True, "answer": answer(case, directory)}
            except Exception:
                results[case.name] = {"ok": False, "answer": traceback.format_exc()}
    with open(out, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
