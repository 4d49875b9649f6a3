"Hostile programs against phi1_nb.sandbox: each verdict a failure, the harness and the host unaffected."
import os, socket, threading, time

import psutil
import pytest

from phi1_nb.sandbox import detect_isolation, run_many, run_program

ISOLATION = os.environ.get("PHI1_SANDBOX") or detect_isolation()   # what run_program will use
HAVE_BWRAP = ISOLATION == "bwrap"
needs_bwrap = pytest.mark.skipif(not HAVE_BWRAP, reason="bubblewrap (bwrap) is not usable here: apt-get install bubblewrap")
FALLBACKS = [i for i in ("unshare", "none") if i != "unshare" or detect_isolation() in ("bwrap", "unshare")]


def _ok_after():
    "The harness still works after a hostile program."
    r = run_program("assert sum(range(4)) == 6", timeout=5)
    assert r.passed, r


def _procs_matching(tag):
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if tag in " ".join(p.info["cmdline"] or []): out.append(p)
        except psutil.Error: pass
    return out


def test_pass_and_early_exits():
    rs = run_many(["print(1)", "import sys; sys.exit(0)\nassert False", "import os; os._exit(0)",
                   "raise SystemExit", "assert False"], timeout=3)
    assert [r.status for r in rs] == ["passed", "failed", "failed", "failed", "failed"]
    assert rs[0].stdout == "1\n" and rs[1].returncode == 0 and rs[2].returncode == 0


def test_sentinel_not_in_output_and_output_kept():
    r = run_program("import sys\nprint('a'); print('b', file=sys.stderr)", timeout=3)
    assert r.passed and r.stdout == "a\n" and r.stderr == "b\n"


def test_unknown_limit_is_an_error():
    with pytest.raises(TypeError, match="memory_mb"): run_program("pass", memory=3)


def test_infinite_loop():
    t0 = time.time(); r = run_program("while True: pass", timeout=0.5)
    assert r.status == "timeout" and not r.passed and time.time() - t0 < 5
    _ok_after()


def test_ignores_sigalrm_and_sigterm():
    code = "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True: pass"
    t0 = time.time(); r = run_program(code, timeout=0.7)
    assert r.status == "timeout" and time.time() - t0 < 5
    _ok_after()


@pytest.mark.skipif(ISOLATION == "none" and os.geteuid() == 0,
                    reason="real root ignores RLIMIT_NPROC and there is no user namespace to contain a fork bomb")
def test_fork_bomb():
    n0 = len(psutil.pids())
    code = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    r = run_program(code, timeout=1, nproc=32)
    assert not r.passed
    time.sleep(0.2)
    assert len(psutil.pids()) < n0 + 10, "fork bomb left processes behind"
    _ok_after()


def test_memory_bomb():
    r = run_program("a = []\nwhile True: a.append(bytearray(50 << 20))", timeout=5, memory_mb=256)
    assert r.status == "failed" and "MemoryError" in r.stderr, r
    r = run_program("x = bytearray(8 << 30)", timeout=5, memory_mb=256)
    assert r.status == "failed" and "MemoryError" in r.stderr
    _ok_after()


def test_memory_budget_is_over_start_size():
    # a program that allocates less than its budget is fine, however large the harness process is
    r = run_program("x = bytearray(100 << 20); x[-1] = 1", timeout=5, memory_mb=256)
    assert r.passed, r


def test_huge_file():
    code = "f = open('big.bin', 'wb')\nfor _ in range(10_000): f.write(b'x' * (1 << 20))\nf.close()"
    r = run_program(code, timeout=5, fsize_mb=8)
    assert r.status == "failed" and "File too large" in r.stderr, r
    _ok_after()


@needs_bwrap
def test_cannot_delete_or_write_outside(tmp_path):
    keep = tmp_path/"keep.txt"; keep.write_text("precious")
    here = os.path.abspath(__file__)
    code = f"import os, shutil\nos.remove({str(keep)!r})"
    r = run_program(code, timeout=3)
    assert not r.passed and keep.read_text() == "precious"
    r = run_program(f"import shutil\nshutil.rmtree({str(tmp_path)!r})", timeout=3)
    assert not r.passed and keep.exists()
    before = open(here).read()
    r = run_program(f"open({here!r}, 'a').write('#')\n", timeout=3)
    # read-only where the host file is visible; invisible when the checkout lives under the private /tmp
    assert not r.passed and any(m in r.stderr for m in ("Read-only", "Permission", "No such file")), r.stderr
    assert open(here).read() == before
    assert open(here).read().endswith("\n")
    r = run_program(f"open('/etc/phi1_sandbox_probe', 'w')", timeout=3)
    assert not r.passed and not os.path.exists("/etc/phi1_sandbox_probe")


@needs_bwrap
def test_private_tmp_wiped_between_programs():
    rs = run_many(["import os; open('/tmp/left.txt', 'w').write('x'); open('mine.txt', 'w').write('y')",
                   "import os, glob; assert not os.path.exists('/tmp/left.txt'); assert glob.glob('/tmp/*/mine.txt') == []"],
                  workers=1, timeout=3)
    assert [r.status for r in rs] == ["passed", "passed"], rs


@needs_bwrap
def test_no_network():
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(5); srv.settimeout(0.1)
    port, hits, stop = srv.getsockname()[1], [], threading.Event()
    def accept():
        while not stop.is_set():
            try: c, _ = srv.accept(); hits.append(c); c.close()
            except OSError: pass
    t = threading.Thread(target=accept, daemon=True); t.start()
    try:
        # the harness's own connection works, so the listener is real
        socket.create_connection(("127.0.0.1", port), timeout=2).close(); time.sleep(0.3)
        assert len(hits) == 1
        r = run_program(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)", timeout=5)
        assert r.status == "failed" and "Error" in r.stderr, r
        r = run_program("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)", timeout=5)
        assert r.status == "failed"
        time.sleep(0.3); assert len(hits) == 1, "the sandboxed program reached the host's listener"
    finally: stop.set(); t.join(); srv.close()


@pytest.mark.parametrize("kill", ["os.kill(os.getppid(), 9)", "os.killpg(os.getpgid(os.getppid()), 9)"])
def test_kill_parent(kill):
    rs = run_many([f"import os\n{kill}\nimport time; time.sleep(2)", "print('next')"], workers=1, timeout=3)
    assert rs[0].status in ("failed", "timeout") and rs[1].passed and rs[1].stdout == "next\n"
    assert psutil.pid_exists(os.getpid())
    _ok_after()


def test_prints_gigabytes():
    code = "import sys\nchunk = 'x' * (1 << 20)\nwhile True: sys.stdout.write(chunk)"
    rss0 = psutil.Process().memory_info().rss
    r = run_program(code, timeout=1.5, max_output=1 << 16)
    assert r.status == "timeout" and r.truncated and len(r.stdout) == 1 << 16
    assert psutil.Process().memory_info().rss - rss0 < 200 << 20
    _ok_after()


def test_background_child_is_killed():
    tag = f"3.{os.getpid() % 1000:03d}7"   # a short sleep: without a PID namespace it may escape (see the warning)
    code = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0: os.execv('/bin/sleep', ['sleep', '{tag}'])\n"
            f"    os._exit(0)\ntime.sleep(0.3)")
    check = f"import os\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n        try: assert '{tag}' not in open(f'/proc/{{p}}/cmdline').read()\n        except OSError: pass"
    rs = run_many([code, check] if HAVE_BWRAP else [code], workers=1, timeout=3)
    assert rs[0].passed   # it ran to its end; what matters is what it left behind
    if HAVE_BWRAP: assert rs[1].passed, rs[1]   # the next program in the same sandbox sees no leftover
    time.sleep(0.2)
    left = _procs_matching(tag)
    for p in left: p.kill()
    if HAVE_BWRAP: assert not left, "a background child outlived its program"


@pytest.mark.parametrize("isolation", FALLBACKS)
def test_fallback(isolation):
    progs = ["print('ok')", "import sys; sys.exit(0)\nassert 0", "while True: pass"]
    if isolation != "none" or os.geteuid() != 0:   # real root ignores RLIMIT_NPROC: no fork bomb without a user namespace
        progs.append("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass")
    rs = run_many(progs, workers=2, timeout=1, isolation=isolation, nproc=32)
    assert [r.status for r in rs[:3]] == ["passed", "failed", "timeout"] and not any(r.passed for r in rs[3:])
    time.sleep(0.2)
    assert psutil.pid_exists(os.getpid())


def test_fallback_warns_what_is_not_isolated(caplog):
    import logging
    from phi1_nb import sandbox
    sandbox._warned.discard("none")
    with caplog.at_level(logging.WARNING, logger="phi1_nb.sandbox"):
        assert run_program("print(1)", timeout=3, isolation="none").passed
    assert "NOT isolated" in caplog.text and "apt-get install bubblewrap" in caplog.text
    with pytest.raises(ValueError, match="isolation"): run_program("pass", isolation="docker")


@needs_bwrap
def test_many_files_fill_only_the_capped_tmpfs():
    code = "for i in range(64):\n    with open(f'f{i}', 'wb') as f: f.write(bytes(8 << 20))"   # 512 MiB in files of 8 MiB
    r = run_program(code, timeout=10, fsize_mb=16)
    assert r.status == "failed" and "No space left" in r.stderr, r
    _ok_after()


def test_stopped_runner_is_killed_from_outside():
    # the program freezes its runner (SIGSTOP): the harness's own clock kills the whole sandbox
    t0 = time.time()
    rs = run_many(["import os, signal, time\nos.kill(os.getppid(), signal.SIGSTOP)\ntime.sleep(60)", "print('next')"],
                  workers=1, timeout=0.5, grace=1.0)
    assert rs[0].status == "timeout" and rs[1].passed and time.time() - t0 < 10
