"""`thaw dev` reloads the worker when a project file changes, and recovers from broken saves.

With snapshots (the default) a reload also builds a new snapshot; requests that come before it
is written boot, so these tests hold in both modes (test_snapshot.py waits for the snapshot)."""

import textwrap

VERSION = """
from workers import WorkerEntrypoint, Response
{extra}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response({answer!r})
"""

RELOAD_WITHIN = 5.0  # seconds; the contract promises about 2


def write_entry(path, answer, extra=""):
    path.write_text(textwrap.dedent(VERSION.format(answer=answer, extra=extra)))


def test_edit_is_seen_by_next_request(project, dev, start_mode):
    p = project(VERSION.format(answer="version one", extra=""))
    d = dev(p, *start_mode.flags)
    assert d.get("/").text == "version one"
    write_entry(p / "src" / "entry.py", "version two, longer")
    last, ok = d.get_until("/", lambda r: r.text == "version two, longer", timeout=RELOAD_WITHIN)
    assert ok, f"the edit was not picked up: {last}\n{d.output()}"
    assert last.status == 200


def test_edit_of_imported_module_is_seen(project, dev):
    p = project(
        """
        from workers import WorkerEntrypoint, Response
        import helper

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(helper.VALUE)
        """,
        files={"src/helper.py": 'VALUE = "helper one"\n'},
    )
    d = dev(p)
    assert d.get("/").text == "helper one"
    (p / "src" / "helper.py").write_text('VALUE = "helper two (edited)"\n')
    last, ok = d.get_until("/", lambda r: r.text == "helper two (edited)", timeout=RELOAD_WITHIN)
    assert ok, f"the edit of src/helper.py was not picked up: {last}\n{d.output()}"


def test_syntax_error_shows_500_and_traceback_then_recovers(project, dev, start_mode):
    p = project(VERSION.format(answer="good", extra=""))
    d = dev(p, *start_mode.flags)
    assert d.get("/").text == "good"
    mark = d.mark()
    (p / "src" / "entry.py").write_text(
        "from workers import Response\n\ndef broken(:\n    return Response('x')\n")
    last, ok = d.get_until("/", lambda r: r.status == 500, timeout=RELOAD_WITHIN)
    assert ok, f"a syntax error did not give a 500: {last}\n{d.output()}"
    assert "SyntaxError" in last.text, f"the 500 page does not show the error: {last.text[:2000]}"
    assert "entry.py" in last.text
    d.wait_for(r"SyntaxError", start=mark, timeout=5)
    # Still broken on a second request (not a one-off).
    assert d.get("/").status == 500
    write_entry(p / "src" / "entry.py", "fixed again")
    last, ok = d.get_until("/", lambda r: r.text == "fixed again", timeout=RELOAD_WITHIN)
    assert ok, f"no recovery after the good save: {last}\n{d.output()}"
    assert last.status == 200


def test_import_time_exception_shows_500_then_recovers(project, dev):
    p = project(VERSION.format(answer="before", extra=""))
    d = dev(p)
    assert d.get("/").text == "before"
    write_entry(p / "src" / "entry.py", "never", extra="raise RuntimeError('import-time-marker')")
    last, ok = d.get_until("/", lambda r: r.status == 500, timeout=RELOAD_WITHIN)
    assert ok, f"{last}\n{d.output()}"
    assert "import-time-marker" in last.text
    write_entry(p / "src" / "entry.py", "after")
    last, ok = d.get_until("/", lambda r: r.text == "after", timeout=RELOAD_WITHIN)
    assert ok, f"{last}\n{d.output()}"


def test_config_vars_change_is_seen(project, dev):
    entry = """
        from workers import WorkerEntrypoint, Response

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response(self.env.GREETING)
        """
    p = project(entry, vars={"GREETING": "first"})
    d = dev(p)
    assert d.get("/").text == "first"
    conf = p / "pyproject.toml"
    conf.write_text(conf.read_text().replace('GREETING = "first"', 'GREETING = "second one"'))
    last, ok = d.get_until("/", lambda r: r.text == "second one", timeout=RELOAD_WITHIN)
    assert ok, f"the new vars in pyproject.toml were not picked up: {last}\n{d.output()}"
