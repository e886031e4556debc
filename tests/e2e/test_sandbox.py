"""The sandbox (docs/security.md): a worker deployed to `thaw serve` is a stranger's code. Each
attack below is made by a worker over HTTP, on a host that serves another worker throughout,
and the test asserts the specific refusal (the errno, or what is not there), not just that
the host survived. The same attacks at the top level fail the deploy, and nothing of them is
in a stored image. `--no-sandbox` is the control: the same probes then succeed, so these tests
would fail without the sandbox.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from thawtest import (THAW_BIN, ThawServe, base_blobs, require_snapshots, snapshots_supported, start_dev,
                      write_project)

# Both attackers' libc calls: OSError with the errno, as Python's own calls raise.
LIBC = '''
libc = ctypes.CDLL(None, use_errno=True)

def c_call(fn, *args):
    ctypes.set_errno(0)
    rc = fn(*args)
    if rc == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return rc
'''

ATTACKER = '''
import ctypes, errno, json, os, signal, socket
from workers import WorkerEntrypoint, Response
''' + LIBC + '''

def outcome(fn):
    try:
        value = fn()
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno, str(e.errno))}
    return {"ok": value if isinstance(value, (int, str, list)) else repr(value)[:100]}


def read(path):
    with open(path, "rb") as f:
        return f.read(64).decode("latin-1")

def write(path):
    with open(path, "ab") as f:
        f.write(b"#")
    return "written"

def fill_tmp():
    total = 0
    chunk = b"x" * (1 << 20)
    try:
        with open("/tmp/fill", "wb") as f:
            while total < (1 << 31):
                f.write(chunk)
                f.flush()
                total += len(chunk)
    except OSError as e:
        return {"errno": errno.errorcode.get(e.errno), "written_mb": total >> 20}
    finally:
        os.unlink("/tmp/fill")
    return {"ok": total}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = dict(p.split("=", 1) for p in request.url.split("?", 1)[1].split("&")) if "?" in request.url else {}
        what = request.url.split("?")[0].rsplit("/", 1)[1]
        if what == "ids":
            status = open("/proc/self/status").read()
            caps = status.split("CapEff:")[1].split()[0]
            out = {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(),
                   "groups": os.getgroups(), "caps": caps,
                   "procs": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                   "root": sorted(os.listdir("/"))}
        elif what == "read":
            out = outcome(lambda: read(q["path"]))
        elif what == "write":
            out = outcome(lambda: write(q["path"]))
        elif what == "kill":
            out = outcome(lambda: os.kill(int(q["pid"]), int(q["sig"])))
        elif what == "tmp":
            out = fill_tmp()
        elif what == "raw":
            out = outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
        elif what == "mount":
            out = outcome(lambda: c_call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None))
        elif what == "chroot":
            out = outcome(lambda: c_call(libc.chroot, b"/tmp"))
        elif what == "env":
            out = {"ok": sorted(os.environ)}
        elif what == "connect":
            out = outcome(lambda: socket.create_connection(("127.0.0.1", int(q["port"])), timeout=5).close())
        elif what == "syscall":
            args = [int(a) for a in q.get("args", "").split(",") if a]
            out = outcome(lambda: c_call(libc.syscall, int(q["nr"]), *[ctypes.c_long(a) for a in args]))
        elif what == "setuid":
            out = outcome(lambda: c_call(libc.setuid, 0))
        else:
            out = {"error": what}
        return Response(json.dumps(out), headers={"content-type": "application/json"})
'''

VICTIM = '''
from workers import WorkerEntrypoint, Response

MARKER = "victim-code-marker-5d1c0b"  # in its files, its bundle and its image; no one else's

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        secret = getattr(self.env, "SECRET_TOKEN", None)
        return Response("victim " + (secret[:2] if secret else "--"))
'''

VICTIM_SECRET = "victim-secret-value-7f3a9"
VICTIM_MARKER = b"victim-code-marker-5d1c0b"
OPERATOR_SECRET = "aws-key-of-the-operator"


def deploy(host: ThawServe, project: Path):
    r = host.client("deploy", project, "--no-index")
    m = re.search(r"^version: (\S+)$", r.stdout, re.M)
    return r, m.group(1) if m else None


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    root = tmp_path_factory.mktemp("sandbox")
    h = ThawServe(root / "data", env={"OPERATOR_SECRET": OPERATOR_SECRET})
    try:
        yield from _deployed(h.wait_ready(), root)
    finally:
        if h.alive():
            h.stop()


def _deployed(h, root):
    victim = write_project(root / "victim", VICTIM, name="victim")
    r, vv = deploy(h, victim)
    assert vv, r.stdout + r.stderr
    r = subprocess.run([THAW_BIN, "secret", "put", "SECRET_TOKEN", "--name", "victim", "--host",
                        h.control, "--token-file", str(h.token_file)], input=VICTIM_SECRET,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    blobs = lambda: {p for p in (h.data / "blobs").rglob("*") if p.is_file()}
    before = blobs()
    attacker = write_project(root / "attacker", ATTACKER, name="attacker")
    r, va = deploy(h, attacker)
    assert va, r.stdout + r.stderr
    h.attacker_blobs = blobs() - before
    h.victim_version = vv
    h.attacker_version = va
    yield h


def attack(host, what, **q):
    qs = "&".join(f"{k}={v}" for k, v in q.items())
    r = host.worker_get("attacker", f"/{what}" + (f"?{qs}" if qs else ""), timeout=60)
    assert r.status == 200, r
    # The other worker is served all along.
    v = host.worker_get("victim")
    assert v.status == 200 and v.text == "victim " + VICTIM_SECRET[:2], v
    return r.json()


def test_identity_processes_and_capabilities(host):
    ids = attack(host, "ids")
    assert ids["pid"] == 1 and ids["procs"] == [1], ids  # its own PID namespace
    assert ids["uid"] >= 1000 and ids["uid"] == ids["gid"] and ids["groups"] == [], ids
    assert int(ids["caps"], 16) == 0, ids
    assert set(ids["root"]) <= {".roots", ".thaw", "bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc",
                                "sbin", "tmp", "usr"} | {str(host.data).split("/")[1],
                                                         THAW_BIN.split("/")[1]}, ids
    assert attack(host, "setuid") == {"errno": "EPERM"}


def test_the_hosts_data_is_not_there(host):
    data = host.data
    for path in (data / "token", host.token_file, data / "thaw.db", data / "secrets.key",
                 data / "versions" / host.victim_version / "src" / "entry.py",
                 f"/proc/{host.pid}/environ", "/etc/shadow", "/root", "/home"):
        assert attack(host, "read", path=path) == {"errno": "ENOENT"}, path
    blobs = [p for p in (data / "blobs").rglob("*") if p.is_file()]
    assert blobs
    # Of every blob (both bundles, the victim's images, the host's base image), an instance
    # sees only the image it was restored from, that image's working set, and the base that
    # image was built on (docs/snapshots.md, "The base image"): no other worker's.
    seen = {}
    for blob in blobs:
        out = attack(host, "read", path=blob)
        if out != {"errno": "ENOENT"}:
            seen[blob] = out
    ws = [str(b) for b in seen if str(b).endswith(".ws")]
    images = [b for b in seen if not str(b).endswith(".ws")]
    bases = {data / "blobs" / b for b in base_blobs(host)}
    own = [b for b in images if b not in bases]
    assert len(own) <= 1 and all(seen[b]["ok"].startswith("THAWSNP1") for b in images), seen
    assert all(w[:-3] in map(str, own) for w in ws), seen
    assert set(own) <= host.attacker_blobs, seen


def test_its_own_files_are_read_only(host):
    own = host.data / "versions" / host.attacker_version / "src" / "entry.py"
    assert "ok" in attack(host, "read", path=own)
    assert attack(host, "write", path=own)["errno"] in ("EROFS", "EACCES")


def test_its_dev_nodes_work(host):
    # Bound from the host's /dev: a nodev bind would make every open() of them EACCES
    # (subprocess.DEVNULL, logging to os.devnull, C libraries reading /dev/urandom).
    assert attack(host, "read", path="/dev/zero") == {"ok": "\x00" * 64}
    assert attack(host, "write", path="/dev/null") == {"ok": "written"}
    assert len(attack(host, "read", path="/dev/urandom")["ok"]) == 64


def test_the_hosts_environment_is_not_passed_on(host):
    names = set(attack(host, "env")["ok"])
    assert "OPERATOR_SECRET" not in names and "THAW_TOKEN" not in names
    assert names - {"ASAN_OPTIONS", "LSAN_OPTIONS", "UBSAN_OPTIONS"} <= {"PATH", "HOME", "LANG"}, names


def test_signals_reach_nothing_outside(host):
    assert attack(host, "kill", pid=-1, sig=int(signal.SIGKILL)) == {"errno": "ESRCH"}
    assert attack(host, "kill", pid=host.pid, sig=int(signal.SIGKILL)) == {"errno": "ESRCH"}
    assert host.alive()


def test_the_control_api_is_out_of_reach_the_network_is_not(host):
    # One nftables rule on the workers' uids (src/ext/netguard.c): refused at connect.
    assert attack(host, "connect", port=host.control_port) == {"errno": "ECONNREFUSED"}
    assert attack(host, "connect", port=host.port) == {"ok": "None"}
    # ...and the host still answers its operator there.
    assert host.api("GET", "/v1/workers").status == 200


def test_tmp_is_private_and_capped(host):
    out = attack(host, "tmp")
    assert out["errno"] == "ENOSPC" and 32 <= out["written_mb"] <= 64, out


def test_privileged_operations_are_refused(host):
    assert attack(host, "raw") == {"errno": "EPERM"}
    assert attack(host, "mount") == {"errno": "EPERM"}
    assert attack(host, "chroot") == {"errno": "EPERM"}


# x86_64 system call numbers and arguments that would succeed (or fail otherwise than EPERM)
# without the seccomp filter: an unprivileged process may create a user namespace, trace a
# child, make a keyring, a userfaultfd or an io_uring, and each would answer differently.
SYSCALLS = {
    "ptrace(PTRACE_TRACEME)": (101, [0, 0, 0, 0]),
    "ptrace(PTRACE_ATTACH, 2)": (101, [16, 2, 0, 0]),
    "process_vm_readv": (310, [1, 0, 0, 0, 0, 0]),
    "unshare(CLONE_NEWUSER)": (272, [0x10000000]),
    "unshare(CLONE_NEWNET)": (272, [0x40000000]),
    "setns": (308, [0, 0]),
    "bpf": (321, [0, 0, 0]),
    "perf_event_open": (298, [0, 0, -1, -1, 0]),
    "keyctl": (250, [0, 0, 0, 0, 0]),
    "add_key": (248, [0, 0, 0, 0, 0]),
    "userfaultfd": (323, [0]),
    "io_uring_setup": (425, [8, 0]),
    "kexec_load": (246, [0, 0, 0, 0]),
    "init_module": (175, [0, 0, 0]),
    "personality(ADDR_NO_RANDOMIZE)": (135, [0x0040000]),
}


@pytest.mark.parametrize("name", list(SYSCALLS))
def test_dangerous_system_calls_get_eperm(host, name):
    nr, args = SYSCALLS[name]
    assert attack(host, "syscall", nr=nr, args=",".join(map(str, args))) == {"errno": "EPERM"}


# The attacks above, made by a worker's top level: in thaw serve, the snapshot builder (PID 2
# under a waiting PID 1). What it takes is kept in a global, so that an attack the sandbox failed
# to stop would leave its loot in the image. A refusal is an OSError that ends the top level and
# so fails the deploy; the note added names the errno (Python's message gives only its number).
TOP_LEVEL = """
import ctypes, errno, os, signal, socket
from workers import WorkerEntrypoint, Response, env
""" + LIBC + """
def read(path):
    with open(path, "rb") as f:
        return f.read()

def plant(path):
    with open(path, "ab") as f:
        f.write("-".join(["planted", "by", "the", "top", "level", "91c2"]).encode())

ATTACKS = {
    "read": lambda: read(env.TARGET),
    "plant": lambda: plant(os.path.join(os.path.dirname(__file__), env.TARGET)),
    "kill": lambda: os.kill(int(env.TARGET), signal.SIGKILL),
    "ptrace": lambda: c_call(libc.ptrace, 16, 1, None, None),  # PTRACE_ATTACH to its PID 1
    "mount": lambda: c_call(libc.mount, b"none", b"/tmp", b"tmpfs", 0, None),
    "unshare": lambda: c_call(libc.unshare, 0x10000000),  # CLONE_NEWUSER
    "raw": lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP),
    "connect": lambda: socket.create_connection(("127.0.0.1", int(env.TARGET)), timeout=5),
}

# Attacks that are no error when contained: the top level checks the contained result itself
# and raises only if it does not hold, so the deploy fails only when containment fails.
def processes():
    seen = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if seen != [int(p) for p in env.TARGET.split(",")]:
        raise RuntimeError(f"the top level sees other processes: {seen}")
    return seen

def environment():
    leaked = sorted(set(os.environ) - {"PATH", "HOME", "LANG", "ASAN_OPTIONS", "LSAN_OPTIONS",
                                       "UBSAN_OPTIONS"})
    if leaked:
        raise RuntimeError(f"the top level was given the host's environment: {leaked}")
    return dict(os.environ)

CONTAINED = {"processes": processes, "environment": environment}

if env.ATTACK in CONTAINED:
    LOOT = CONTAINED[env.ATTACK]()
else:
    try:
        LOOT = ATTACKS[env.ATTACK]()
    except OSError as e:
        e.add_note(f"top-level attack {env.ATTACK} refused: {errno.errorcode.get(e.errno)}")
        raise

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response(repr(LOOT)[:200])
"""


def files_holding(root: Path, secret: bytes):
    """The files under root whose bytes contain secret."""
    found = set()
    # os.walk, not Path.rglob: rglob raises when a directory goes while it is walked (an
    # instance's own directory), os.walk skips it.
    for dirpath, _, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            try:
                if p.is_file() and not p.is_symlink() and secret in p.read_bytes():
                    found.add(p)
            except OSError:
                pass  # a file that went meanwhile (a builder's, the WAL)
    return found


def victim_image(host):
    versions = host.api("GET", "/v1/workers/victim/versions").json()["versions"]
    image = versions[0]["snapshot"]
    if not image:
        pytest.skip("no image of the victim (this build does not snapshot)")
    return host.data / "blobs" / image


# Each attack at the top level: (attack, its target, the errno it must fail with, the secret it
# is after: bytes that no new file under DATA may hold afterwards).
TOP_ATTACKS = {
    "read the token": lambda h: ("read", h.token_file, "ENOENT", h.token.encode()),
    "read DATA/thaw.db": lambda h: ("read", h.data / "thaw.db", "ENOENT", b"SQLite format 3\0"),
    "read DATA/secrets.key": lambda h: ("read", h.data / "secrets.key", "ENOENT",
                                        (h.data / "secrets.key").read_bytes()),
    "read another worker's bundle": lambda h: (
        "read", h.data / "versions" / h.victim_version / "src" / "entry.py", "ENOENT",
        VICTIM_MARKER),
    "read another worker's snapshot": lambda h: ("read", victim_image(h), "ENOENT",
                                                 VICTIM_MARKER),
    "read /proc/HOSTPID/environ": lambda h: ("read", f"/proc/{h.pid}/environ", "ENOENT",
                                             OPERATOR_SECRET.encode()),
    "read /etc/shadow": lambda h: ("read", "/etc/shadow", "ENOENT",
                                   Path("/etc/shadow").read_bytes().split(b"\n")[0]),
    "kill(-1, SIGKILL)": lambda h: ("kill", -1, "ESRCH", None),
    "kill(hostpid, SIGKILL)": lambda h: ("kill", h.pid, "ESRCH", None),
    "ptrace its PID 1": lambda h: ("ptrace", "", "EPERM", None),
    "mount": lambda h: ("mount", "", "EPERM", None),
    "unshare(CLONE_NEWUSER)": lambda h: ("unshare", "", "EPERM", None),
    "raw socket": lambda h: ("raw", "", "EPERM", None),
    "write into its own version directory": lambda h: (
        # Its files are root's, bound read-only: the permission check refuses first.
        "plant", "entry.py", "EACCES", b"planted-by-the-top-level-91c2"),
    "connect to the control API": lambda h: ("connect", h.control_port, "ECONNREFUSED", None),
}


def deploy_attack(host, tmp_path, what, attack, target):
    """Deploy the top level attacking as `what` says: (the deploy, the worker's versions, the
    blobs the deploy added)."""
    name = "top-" + re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")[:40].strip("-")
    blobs_before = {p for p in (host.data / "blobs").iterdir()}
    project = write_project(tmp_path / name, TOP_LEVEL, name=name,
                            vars={"ATTACK": attack, "TARGET": str(target)})
    r, _ = deploy(host, project)
    versions = host.api("GET", f"/v1/workers/{name}/versions").json()["versions"]
    new_blobs = {p.name for p in (host.data / "blobs").iterdir()} - {p.name for p in blobs_before}
    return r, versions, new_blobs


@pytest.mark.parametrize("what", list(TOP_ATTACKS))
def test_each_attack_at_top_level_fails_the_deploy(host, tmp_path, what):
    attack, target, want, secret = TOP_ATTACKS[what](host)
    holders = files_holding(host.data, secret) if secret else set()
    r, versions, new_blobs = deploy_attack(host, tmp_path, what, attack, target)
    out = r.stdout + r.stderr
    # The deploy fails, and says why: the errno, in the output and in the failed version.
    assert r.returncode != 0, out
    assert f"top-level attack {attack} refused: {want}\n" in out, out
    assert len(versions) == 1 and versions[0]["state"] == "failed", versions
    assert f"top-level attack {attack} refused: {want}\n" in versions[0]["error"], versions
    # Nothing of it is stored: no image, no blob but its bundle...
    assert versions[0]["snapshot"] is None, versions
    assert new_blobs <= {versions[0]["bundle"]}, new_blobs
    # ...and no file under DATA holds what it was after but those that held it before (the
    # database's own files hold its header: they are the database).
    if secret:
        gained = {p for p in files_holding(host.data, secret) - holders
                  if not p.name.startswith("thaw.db")}
        assert not gained, gained
    assert host.alive()
    v = host.worker_get("victim")
    assert v.status == 200 and v.text == "victim " + VICTIM_SECRET[:2], v


def test_contained_attacks_at_top_level_deploy_and_keep_nothing_of_the_host(host, tmp_path):
    # Listing the processes and reading the environment fail nothing when contained: the top
    # level raises if it sees more than itself (PID 2) and its waiting PID 1, or a variable of
    # the host's, and the deploy then fails. Contained, it deploys, and its image holds none of
    # the host's environment.
    pids = "1,2" if snapshots_supported() else "1"  # no snapshot build: the instance's top level
    holders = files_holding(host.data, OPERATOR_SECRET.encode())
    for attack, target in (("processes", pids), ("environment", "")):
        r, versions, _ = deploy_attack(host, tmp_path, attack, attack, target)
        assert r.returncode == 0, r.stdout + r.stderr
        assert versions[0]["state"] == "ready", versions
        assert (versions[0]["snapshot"] is not None) == snapshots_supported(), versions
    assert files_holding(host.data, OPERATOR_SECRET.encode()) == holders


def test_thaw_dev_is_sandboxed_too_and_no_sandbox_is_the_control(tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    secret.chmod(0o600)
    project = write_project(tmp_path / "dev", ATTACKER, name="devattacker")
    d = start_dev(project, "--no-snapshot")
    try:
        assert d.get(f"/read?path={secret}").json() == {"errno": "ENOENT"}
        assert d.get("/ids").json()["pid"] == 1
    finally:
        d.stop()
    d = start_dev(project, "--no-snapshot", "--no-sandbox")
    try:
        d.wait_for("WARNING: --no-sandbox", stream="stderr")
        assert d.get(f"/read?path={secret}").json() == {"ok": "host secret\n"}
        assert d.get("/ids").json()["pid"] != 1
    finally:
        d.stop()


WS_RACER = r'''
import asyncio, gc, json, os, time
from workers import WorkerEntrypoint, Response
import _thaw_runtime as rt

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        what = request.url.split("?")[0].rsplit("/", 1)[1]
        if what == "read":
            out = {}
            for root, dirs, files in os.walk(os.path.dirname(os.path.dirname(__file__)) + "/.thaw"):
                for f in files:
                    try:
                        out[f] = open(os.path.join(root, f), "rb").read(64).decode("latin-1")
                    except OSError as e:
                        out[f] = str(e)
            return Response(json.dumps(out))
        if what == "exit":
            os._exit(0)
        target = request.url.split("target=", 1)[1]
        ws, rt._worker.record_ws = rt._worker.record_ws, None
        if not ws:
            return Response("not the recorder")
        conn = next(o for o in gc.get_objects() if type(o).__name__ == "_Connection")
        pid = os.fork()
        if pid == 0:  # swaps a regular file and a link to the host's file, as fast as it can
            s, r = os.path.dirname(ws) + "/s", os.path.dirname(ws) + "/r"
            while True:
                try:
                    os.symlink(target, s)
                except FileExistsError:
                    pass
                open(r, "wb").close()
                os.rename(r, ws)
                os.rename(s, ws)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:
            conn._send(conn.thaw.WS_DONE, 0)  # "the working set is there": take it
            await asyncio.sleep(0.0005)
        os.kill(pid, 9)
        return Response("raced")
'''


def test_a_recorder_cannot_make_the_host_take_a_link_as_its_working_set(tmp_path):
    require_snapshots()  # about images: the sanitizer build makes none
    # The first restored instance records the working set in its out dir and says WS_DONE;
    # the host moves the file beside the image, and every later restore binds IMAGE.ws. A
    # link swapped in between the host's check and its move would be bound, resolved on the
    # host's side, and give the next instance a host file of the attacker's choosing. The
    # race is lost as often as won, so this asserts what makes it unwinnable: a second
    # WS_DONE is a broken protocol, and what the host keeps is never a link.
    project = write_project(tmp_path / "racer", WS_RACER, name="wsracer")
    d = start_dev(project)
    try:
        d.wait_snapshot()
        # Resolved in the clone of the project's tree: its hidden .thaw/state is in reach.
        secret = project / ".thaw" / "state" / "host-secret"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("host secret\n")
        secret.chmod(0o600)
        assert d.get("/race?target=../state/host-secret", timeout=60).status == 502
        d.wait_for(r"broke the protocol \(WS_DONE frame\)", stream="stderr")
        assert not any(p.is_symlink() for p in d.snapshot_dir().glob("*.ws"))
        seen = d.get("/read").json()
        assert not any("host secret" in v for v in seen.values()), seen
    finally:
        d.stop()


def test_a_link_beside_the_image_is_not_bound(tmp_path):
    require_snapshots()  # about images: the sanitizer build makes none
    # What a won race (or any mistake on the host's side) would leave: IMAGE.ws a link to a
    # host file. Restores bind the host's extras only as the regular files the host made.
    project = write_project(tmp_path / "planted", WS_RACER, name="planted")
    d = start_dev(project)
    try:
        d.wait_snapshot()
        secret = project / ".thaw" / "state" / "host-secret"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("host secret\n")
        secret.chmod(0o600)
        image = d.snapshot_file()
        ws = Path(str(image) + ".ws")
        if ws.exists() or ws.is_symlink():
            ws.unlink()
        ws.symlink_to("../state/host-secret")  # resolved alike by the host and in the clone
        d.get("/exit")  # the next instance restores with IMAGE.ws there
        seen = d.get("/read").json()
        assert not any("host secret" in v for v in seen.values()), seen
    finally:
        d.stop()


LISTER = r'''
import json, os
from workers import WorkerEntrypoint, Response

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        what = request.url.split("?")[0].rsplit("/", 1)[1]
        if what == "exit":
            os._exit(0)
        out = {}
        for line in open("/proc/self/mountinfo"):
            point = line.split()[4]
            if "/blobs/" in point:
                out[point] = sorted(os.listdir(point)) if os.path.isdir(point) else "file"
        return Response(json.dumps(out))
'''


def test_a_link_beside_a_stored_image_does_not_show_the_blobs(tmp_path):
    require_snapshots()  # about images: the sanitizer build makes none
    # thaw serve: images and working sets are blobs; a link IMAGE.ws -> "/" (what a won race
    # on the working set's move left) was resolved in the clone of DATA/blobs and bound the
    # whole directory: every worker's bundles and images.
    h = ThawServe(tmp_path / "data").wait_ready()
    try:
        r, victim = deploy(h, write_project(tmp_path / "victim", VICTIM, name="victim"))
        assert victim, r.stdout + r.stderr
        r, lister = deploy(h, write_project(tmp_path / "lister", LISTER, name="lister"))
        assert lister, r.stdout + r.stderr
        mounts = h.worker_get("lister", "/").json()
        image = next(p for p, kind in mounts.items() if kind == "file" and not p.endswith(".ws"))
        ws = Path(image + ".ws")
        if ws.exists() or ws.is_symlink():
            ws.unlink()
        ws.symlink_to("/")
        h.worker_get("lister", "/exit")
        seen = h.worker_get("lister", "/").json()
        assert all(kind == "file" for kind in seen.values()), seen
    finally:
        h.stop()


RAW_OUTPUT = """
import os
from workers import Response, WorkerEntrypoint

os.write(2, b"top level wrote this raw\\n")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        # Lines the host could take for its own, with a terminal escape.
        os.write(2, b"\\x1b[2Jthaw info: forged by the worker\\n")
        os.write(1, b"x" * 10000 + b"\\n")  # one line over 4 KiB
        # A cut that would split a character moves before it; a newline just past a cut ends
        # the line (no empty one).
        os.write(1, b"y" * 4095 + "é".encode() + b"\\n" + b"z" * 4096 + b"\\n")
        return Response("wrote")
"""


def test_what_a_worker_writes_to_fds_1_and_2_is_logged_as_the_workers(tmp_path):
    host = ThawServe(tmp_path / "data").wait_ready()
    try:
        root = write_project(tmp_path / "raw", RAW_OUTPUT, name="raw")
        r = host.client("deploy", root, "--no-install")
        assert r.returncode == 0, r.stdout + r.stderr
        host.wait_for(r"\[raw@\S+\] top level wrote this raw")
        assert host.worker_get("raw").text == "wrote"
        host.wait_for(r"\[raw@\S+\] \\x1b\[2Jthaw info: forged by the worker")
        out = host.output()
        assert "\x1b" not in out, "a raw escape reached the host's log"
        assert not any(line.startswith("thaw info: forged") for line in out.splitlines())
        pieces = host.wait_for(r"\[raw@\S+\] (x+)$")
        assert len(pieces.group(1)) == 4096, "a long line is cut at 4 KiB"
        host.wait_for(r"\[raw@\S+\] z{4096}$")
        lines = [line.split("] ", 1)[1] for line in host.output().splitlines()
                 if line.startswith("[raw@") and "] " in line]
        assert "y" * 4095 in lines and "é" in lines, "a character split by the cut"
        z = lines.index("z" * 4096)
        assert lines[z + 1:z + 2] != [""], "an empty line after a cut"
    finally:
        host.stop()
