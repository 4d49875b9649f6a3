"The corpus stage on several processes: the same bytes as one process, resume after kill -9, bad engine settings."
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
from phi1_nb.core import write_shard
from phi1_nb.corpus import run_corpus

ROOT = Path(__file__).parents[1]
TIMING = ("created", "seconds", "resumed_tasks")   # what may differ between two runs of the same input


def stack_source(d: Path, shards: int = 6, rows: int = 8) -> Path:
    "Stack-style shards with good rows and one bad row of each kind per shard."
    for k in range(shards):
        rows_ = [{"content": f"def f{k}_{i}(x):\n    return x + {i}\n", "max_stars_repo_path": f"p{k}/m{i}.py"} for i in range(rows)]
        rows_ += [{"content": "def f(:\n", "path": f"bad{k}.py"}, {"content": "  \n"}, {"path": "none.py"}]
        write_shard(d / f"train-{k:03d}.jsonl.zst", rows_)
    return d


def files(d: Path) -> dict:
    "Every file of a stage folder (shards, dropped shards, README) by relative path, with its bytes."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and "parts" not in p.parts}


def manifest(d: Path, drop=("workers",)) -> dict:
    m = json.loads((d / "manifest.json").read_text())
    for k in TIMING: m.pop(k, None)
    for k in drop: m["params"].pop(k, None)   # the engine settings it records: they change no shard
    return m


@pytest.mark.parametrize("fmt", ["stack", "tree"])
def test_two_processes_write_the_same_bytes_as_one(tmp_path, fmt):
    if fmt == "stack": kw = dict(source=str(stack_source(tmp_path / "src")), format="stack", limit=None)
    else: kw = dict(source="stdlib", format="tree", limit=120, files_per_shard=20)
    m1 = run_corpus(tmp_path / "one", workers=1, progress=False, **kw)
    m2 = run_corpus(tmp_path / "two", workers=2, progress=False, **kw)
    assert len(m1["shards"]) >= 6 and m1["counts"]["out"] > 0 and m1["drops"]
    a, b = tmp_path / "one" / "corpus", tmp_path / "two" / "corpus"
    assert files(a) == files(b)
    assert manifest(a) == manifest(b)
    assert (m1["params"]["workers"], m2["params"]["workers"]) == (1, 2)


def test_the_default_uses_every_core(tmp_path, monkeypatch):
    import phi1_nb.pool as pool
    started, real = [], pool._start
    monkeypatch.setattr(pool, "_start", lambda warm=(): started.append(1) or real(warm))
    monkeypatch.setattr(pool, "n_cores", lambda: 3)                        # a 3-core machine
    src = stack_source(tmp_path / "src", shards=4)
    m = run_corpus(tmp_path / "a", source=str(src), format="stack", limit=None, progress=False)
    assert len(started) == 2 and m["params"]["workers"] is None and m["counts"]["out"] == 32   # this process and 2
    run_corpus(tmp_path / "b", source=str(src), format="stack", limit=None, workers=1, progress=False)
    assert len(started) == 2                                                # workers 1: no worker, this process


CHILD = r"""
import os, sys, threading, time
import phi1_nb.corpus as corpus
real, log, me = corpus.stack_record, sys.argv[2], os.getpid()
def slow(*a, **k):   # each record takes a while, so that the parent is killed mid-run; the worker stalls on shard 0
    with open(log, "a") as f: f.write(f"{os.getpid()}\n")
    time.sleep(60 if os.getpid() != me else 0.02); return real(*a, **k)
corpus.stack_record = slow   # (cloudpickle sends it, with `log`, to the workers)
run = lambda: corpus.run_corpus(sys.argv[1], source=sys.argv[3], format="stack", limit=None, workers=2, progress=False)
t = threading.Thread(target=run); t.start(); t.join()   # a driver's thread starts the stage (a worker's parent thread)
"""


def _alive(pid: int) -> bool:
    try: state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError): return False
    return state not in ("Z", "X")


def test_kill_9_mid_run_then_a_rerun_finishes_with_the_same_bytes(tmp_path):
    src = stack_source(tmp_path / "src", shards=10, rows=10)
    ref = tmp_path / "ref"; run_corpus(ref, source=str(src), format="stack", limit=None, workers=1, progress=False)
    run, pids = tmp_path / "run", tmp_path / "pids"
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(pids), str(src)], env=dict(os.environ, PYTHONPATH=str(ROOT)))
    parts, t0 = run / "corpus" / "parts", time.time()
    started = lambda: pids.exists() and len(set(pids.read_text().split())) == 2   # the stage and its worker at work
    while not (parts.exists() and any(parts.glob("*.json")) and started()) and time.time() - t0 < 120 and p.poll() is None:
        time.sleep(0.01)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    done = len(list(parts.glob("*.json")))
    assert 1 <= done < 10 and not (run / "corpus" / "manifest.json").exists(), done   # killed mid-run
    workers = {int(x) for x in pids.read_text().split()} - {p.pid}   # (the stage's process works too)
    assert len(workers) == 1
    t0 = time.time()
    while any(map(_alive, workers)) and time.time() - t0 < 10: time.sleep(0.05)
    assert not any(map(_alive, workers)), "a worker outlived its killed parent"   # (it sleeps 60 s in shard 0)
    m = run_corpus(run, source=str(src), format="stack", limit=None, workers=2, progress=False)
    assert 1 <= m["resumed_tasks"] < 10
    assert not [q for q in (run / "corpus").rglob("*") if q.name.startswith(".") or ".tmp" in q.name]   # no half-written file
    assert files(run / "corpus") == files(ref / "corpus")
    assert manifest(run / "corpus") == manifest(ref / "corpus")


def test_bad_engine_settings_are_one_line_errors(tmp_path):
    src = str(stack_source(tmp_path / "src", shards=1))
    with pytest.raises(ValueError, match="corpus.engine in the call 'spark': expected one of local, ray"):
        run_corpus(tmp_path / "a", source=src, format="stack", engine="spark")
    for bad in (0, -2, 1.5, True, "two"):
        with pytest.raises(ValueError, match="corpus.workers must be a whole number >= 1 or null"):
            run_corpus(tmp_path / "b", source=src, format="stack", workers=bad)
    assert not (tmp_path / "a" / "corpus").exists() and not (tmp_path / "b" / "corpus").exists()
    r = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.cli import main; sys.exit(main(sys.argv[1:]))",
                        "corpus", "--run-dir", str(tmp_path / "c"), "--source", src, "--format", "stack", "--workers", "0"],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    # the CLI checks the option against config.RANGES first: one line, before any work
    assert r.stderr.strip().splitlines()[-1] == "phi1 corpus: error: --corpus.workers 0: expected an int in [1, inf]", r.stderr


def _phi1(capsys, *args):
    "`phi1 ARGS` in this process (as the console script runs it): (exit status, stdout, stderr)."
    from phi1_nb.cli import main
    capsys.readouterr(); rc = main(list(args)); out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


def test_plan_from_a_tiny_sample_run(tmp_path, capsys):
    m = run_corpus(tmp_path / "run", source=str(stack_source(tmp_path / "src", shards=2)), format="stack", limit=None,
                   workers=1, progress=False)
    r = _phi1(capsys, "plan", "--records", "7.2M", "--cores", "4", "--sample", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    row = next(l for l in r.stdout.splitlines() if l.startswith("| corpus |")).split("|")
    cpu_h = 7.2e6 * m["seconds"] / m["counts"]["in"] / 3600       # the sample's seconds per record x 7.2M
    assert float(row[2]) == pytest.approx(cpu_h, abs=0.051) and row[3].strip() == "4"
    assert row[4].strip() == "local pool" and float(row[5]) == pytest.approx(cpu_h / 4, abs=0.006)
    disk = sum(f.stat().st_size for f in (tmp_path / "run" / "corpus").rglob("*") if f.is_file())
    assert float(row[7]) == pytest.approx(7.2e6 * disk / m["counts"]["in"] / 2**30, abs=0.051)
    assert "sample run" in row[8] and "| dedup |" in r.stdout   # the stages it did not run: the measured figures


def test_plan_bad_input_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"dedup": {"cpu_ms": "fast"}}')
    for args, msg in [(["--records", "-5"], "records must be a whole count"), (["--cores", "0"], "cores must be a whole count"),
                      (["--costs", str(tmp_path / "bad.json")], "dedup.cpu_ms = 'fast' is not a valid"),
                      (["--costs", str(tmp_path / "none.json")], "No such file"),
                      (["--sample", str(tmp_path)], "holds no finished data stage")]:
        r = _phi1(capsys, "plan", *args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("phi1 plan: error: ") and msg in r.stderr, r.stderr


@pytest.mark.slow
def test_the_ray_engine_writes_the_same_bytes(tmp_path):
    "About a minute on a loaded 2-core machine (Ray starts): marked slow."
    ray = pytest.importorskip("ray")
    src = str(stack_source(tmp_path / "src"))
    run_corpus(tmp_path / "one", source=src, format="stack", limit=None, workers=1, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try: m = run_corpus(tmp_path / "ray", source=src, format="stack", limit=None, engine="ray", ray_actors=2, progress=False)
    finally: ray.shutdown()
    assert m["params"]["engine"] == "ray" and m["counts"]["out"] == 48
    a, b = tmp_path / "one" / "corpus", tmp_path / "ray" / "corpus"
    assert files(a) == files(b)
    assert manifest(a, ("workers", "engine", "ray_actors")) == manifest(b, ("workers", "engine", "ray_actors"))


CTRL_C = r"""
import sys, time
import phi1_nb.corpus as corpus
real = corpus.stack_record
corpus.stack_record = lambda *a, **k: (time.sleep(0.02), real(*a, **k))[1]
from phi1_nb.cli import console
sys.argv = ["phi1", "corpus", "--run-dir", sys.argv[1], "--source", sys.argv[2], "--format", "stack", "--limit", "null",
            "--workers", "2"]
sys.exit(console())
"""


def test_ctrl_c_is_one_line_and_ends_the_workers(tmp_path):
    src, run = stack_source(tmp_path / "src", shards=10, rows=10), tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-c", CTRL_C, str(run), str(src)], stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    parts, t0 = run / "corpus" / "parts", time.time()
    while not (parts.exists() and any(parts.glob("*.json"))) and time.time() - t0 < 120 and p.poll() is None: time.sleep(0.01)
    os.killpg(p.pid, signal.SIGINT)                     # a terminal's Ctrl-C: the whole foreground group
    err = p.communicate(timeout=60)[1]
    assert p.returncode == 130 and err == "phi1: interrupted; rerun resumes\n", err
    time.sleep(0.5)
    assert subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True).returncode == 1   # no worker left
    assert not list(run.rglob(".tmp-*")) and not (run / "corpus" / "manifest.json").exists()   # nor a half-written shard


def _recording(monkeypatch, log: Path):
    "`corpus.stack_record` that first appends its process id to `log` (in whichever process runs it)."
    import phi1_nb.corpus as corpus
    real = corpus.stack_record
    def rec(*a, **k):
        with open(log, "a") as f: f.write(f"{os.getpid()}\n")
        return real(*a, **k)
    monkeypatch.setattr(corpus, "stack_record", rec)


def test_a_stage_started_from_a_thread_runs_on_worker_processes(tmp_path, monkeypatch):
    "A driver's thread starts the stage while other threads log: this process and a worker do the work, same bytes."
    import logging, threading
    src, log = stack_source(tmp_path / "src"), tmp_path / "pids"
    run_corpus(tmp_path / "one", source=str(src), format="stack", limit=None, workers=1, progress=False)
    _recording(monkeypatch, log)
    stop, got = threading.Event(), []
    def chatter():
        while not stop.is_set(): logging.getLogger("phi1.test").info("busy")
    def drive(): got.append(run_corpus(tmp_path / "two", source=str(src), format="stack", limit=None, workers=2,
                                       progress=False))
    threads = [threading.Thread(target=chatter, daemon=True), threading.Thread(target=drive, daemon=True)]
    for t in threads: t.start()
    threads[1].join(120); stop.set()
    assert got and not threads[1].is_alive(), "the stage did not finish"
    pids = {int(x) for x in log.read_text().split()}
    assert len(pids) == 2 and os.getpid() in pids, pids                # the work ran here and in a fresh process
    assert files(tmp_path / "one" / "corpus") == files(tmp_path / "two" / "corpus")


KERNEL_CELL = """
import os, sys
sys.path.insert(0, ROOT)
import phi1_nb.corpus as corpus
real = corpus.stack_record
def rec(*a, **k):
    with open(LOG, "a") as f: f.write(f"{os.getpid()}\\n")
    return real(*a, **k)
corpus.stack_record = rec
corpus.run_corpus(RUN, source=SRC, format="stack", limit=None, workers=2, progress=False)
print("KERNEL", os.getpid())
"""


def test_in_a_jupyter_kernel_the_stage_runs_on_worker_processes(tmp_path):
    "`phi1 pipeline` runs each stage in a kernel (I/O threads): there too the work runs in 2 processes, one fresh."
    import nbformat
    from nbclient import NotebookClient
    src, log = stack_source(tmp_path / "src"), tmp_path / "pids"
    run_corpus(tmp_path / "one", source=str(src), format="stack", limit=None, workers=1, progress=False)
    code = KERNEL_CELL
    for k, v in dict(ROOT=ROOT, LOG=log, RUN=tmp_path / "two", SRC=src).items(): code = code.replace(k, repr(str(v)))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    kernel = int(nb.cells[0].outputs[-1]["text"].split()[-1])
    pids = {int(x) for x in log.read_text().split()}
    assert len(pids) == 2 and kernel in pids, (kernel, pids)          # the kernel and a fresh worker (no fork)
    assert files(tmp_path / "one" / "corpus") == files(tmp_path / "two" / "corpus")


def test_a_worker_that_dies_is_an_error_not_a_hang():
    from phi1_nb.corpus import process_map
    me = os.getpid()   # (never this process, which runs tasks too: a map run here would end the tests)
    with pytest.raises(RuntimeError, match="worker .* died on item 0"):   # the worker's first item
        process_map(lambda x: os._exit(3) if os.getpid() != me else x, list(range(6)), workers=2)


def test_an_error_ends_the_other_workers_by_sigterm_even_if_the_caller_blocked_it(monkeypatch):
    "The caller's thread blocks SIGTERM (a signal mask passes to child processes): a busy worker still takes it."
    import threading
    import phi1_nb.corpus as corpus, phi1_nb.pool as pool
    codes, real = [], pool._stop
    monkeypatch.setattr(pool, "_stop", lambda procs, ok: (real(procs, ok), codes.extend(p.returncode for p, _ in procs)))
    def task(x):   # the workers take items 0 and 1, this process item 2
        if x == 0: raise ValueError("bad item 0")
        if x == 1: time.sleep(300)                               # item 1 would take 5 minutes
        return x
    got = []
    def call():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try: corpus.process_map(task, [0, 1, 2], workers=3)
        except ValueError as e: got.append(str(e))
    t = threading.Thread(target=call); t.start(); t.join(120)
    assert got == ["bad item 0"] and len(codes) == 2, (got, codes)
    assert set(codes) <= {1, -signal.SIGTERM}, codes   # ended by SIGTERM (its handler, or before it was set): not -9
