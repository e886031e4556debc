"""thaw's stand-in for the part of Pyodide that Cloudflare Python workers import.

Only ``pyodide.ffi`` exists (``to_js``, ``to_py``, ``create_proxy``,
``create_once_callable``, ``run_sync``, ``jsnull``, ``JsProxy``, ``JsException``),
implemented in plain Python: thaw runs CPython, not Pyodide, and has no JavaScript
engine. See docs/cloudflare-compat.md.
"""

IN_THAW = True
