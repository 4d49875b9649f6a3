"""The worker pool against ap28's attack (code in hand): a float worker count, a relative `sys.path` and a `chdir`, a
Ctrl-C while the workers start, an error the parent cannot rebuild, a worker that dies, at the command line."""
import os, shutil, signal, subprocess, sys, textwrap
from pathlib import Path

import pytest
import phi1_nb
import phi1_nb.pool as pool
from phi1_nb.config import ConfigError
from phi1_nb.dedup import run_dedup
from phi1_nb.decontaminate import run_decontaminate
from phi1_nb.filter import run_filter
from phi1_nb.pool import Pool, WorkerFailed, process_map


@pytest.mark.parametrize("run", [run_dedup, run_decontaminate, run_filter])
def test_a_float_worker_count_is_refused_before_any_folder(tmp_path, run):
    "`workers=2.0` passed the check, then reached `range()` after the stage's folder was made (c01)."
    with pytest.raises(ConfigError, match="workers.*2.0.*expected an int"): run(tmp_path, workers=2.0)
    assert list(tmp_path.iterdir()) == []


def test_workers_run_the_parents_package_after_a_chdir(tmp_path):
    """A driver that imported phi1_nb through a relative `sys.path` entry, then changed folder: its workers import the
    same copy, not another one later on the path (c02: they ran the venv's other checkout)."""
    src = Path(phi1_nb.__file__).parent
    for name in ("mine", "decoy"): shutil.copytree(src, tmp_path / name / "phi1_nb")
    (tmp_path / "elsewhere").mkdir()
    prog = textwrap.dedent(f"""
        import os, sys
        sys.path[:0] = ["mine", {str(tmp_path / 'decoy')!r}]
        import phi1_nb.pool as pool
        os.chdir("elsewhere")
        def where(_):
            import phi1_nb; return phi1_nb.__file__
        print(pool.__file__); print(*pool.process_map(where, [0, 1, 2, 3], workers=2), sep="\\n")""")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", prog], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert lines[0] == str(tmp_path / "mine" / "phi1_nb" / "pool.py")
    assert set(lines[1:]) == {str(tmp_path / "mine" / "phi1_nb" / "__init__.py")}, lines


def test_ctrl_c_while_workers_start_leaves_none(monkeypatch):
    "An interrupt while the pool starts its workers (c12): the ones already started end, none waits for ever."
    started, real = [], pool._start
    def start(warm=()):
        if started: raise KeyboardInterrupt
        started.append(real(warm)); return started[-1]
    monkeypatch.setattr(pool, "_start", start)
    with pytest.raises(KeyboardInterrupt): Pool(3)
    assert started and all(p.poll() is not None for p, _ in started)


def test_ctrl_c_inside_a_workers_start_ends_it(monkeypatch):
    "An interrupt after the worker's process exists but before `_start` returns it: `_start` ends it itself."
    made, real = [], subprocess.Popen
    def popen(*a, **k): made.append(real(*a, **k)); return made[-1]
    def interrupted(): raise KeyboardInterrupt
    monkeypatch.setattr(pool.subprocess, "Popen", popen); monkeypatch.setattr(pool, "_paths", interrupted)
    with pytest.raises(KeyboardInterrupt): pool._start()
    assert len(made) == 1 and made[0].poll() is not None


def test_an_error_the_parent_cannot_rebuild_keeps_its_words(tmp_path, monkeypatch):
    "An exception whose `__init__` wants two arguments pickles but does not unpickle (c03): not 'worker died'."
    (tmp_path / "quota.py").write_text(textwrap.dedent("""
        class QuotaError(Exception):
            def __init__(self, shard, why): super().__init__(f"{shard}: {why}")
        def task(x):   # in a worker (this process runs items too)
            import os
            if str(os.getpid()) != os.environ["QUOTA_PARENT"]: raise QuotaError("train-002", "disk quota exceeded")
            return x"""))
    monkeypatch.syspath_prepend(str(tmp_path)); monkeypatch.setenv("QUOTA_PARENT", str(os.getpid()))
    import quota
    with pytest.raises(WorkerFailed) as e: process_map(quota.task, [0, 1, 2, 3], workers=2)
    assert "QuotaError: train-002: disk quota exceeded" in str(e.value) and "died" not in str(e.value)


def test_a_dead_worker_says_how_it_died():
    me = os.getpid()
    with pytest.raises(WorkerFailed, match=r"died on item 0 \(killed by SIGKILL\)"):
        process_map(lambda x: os.kill(os.getpid(), signal.SIGKILL) if os.getpid() != me else x, [0, 1, 2], 2)


def test_a_dead_worker_is_one_line_at_the_command_line(monkeypatch, capsys):
    "At the command line a dead worker was a 33-line traceback with exit status 1 (c16)."
    import phi1_nb.cli as cli
    me = os.getpid()
    def run(cmd, rest): process_map(lambda x: os._exit(3) if os.getpid() != me else x, [0, 1, 2], 2)
    monkeypatch.setattr(cli, "_run", run)
    assert cli.main(["corpus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "died on item 0 (exit status 3)" in err[0], err


@pytest.mark.parametrize("stage", ["corpus", "filter", "dedup", "decontaminate"])
@pytest.mark.parametrize("value", ["[2]", "[]", "[1, 2]"])
def test_a_list_of_workers_is_refused_at_the_command_line(tmp_path, stage, value, capsys):
    "bp28 c11: `--workers '[2]'` passed the check (a key ending in s took lists), made the folder, then crashed."
    import phi1_nb.cli as cli
    from phi1_nb.core import write_manifest, write_shard
    recs = [dict(id=f"r{i}", content=f"def f{i}(x):\n    return x + {i}\n") for i in range(40)]
    if stage != "corpus":   # a finished input: the stage would start
        write_manifest(tmp_path / "run" / "corpus", stage="corpus", shards=[
            write_shard(tmp_path / "run" / "corpus" / f"part-{i:05d}.jsonl", recs[i * 10:i * 10 + 10]) for i in range(4)])
    more = [] if stage in ("corpus", "filter") else ["--input_stage", "corpus"]
    assert cli.main([stage, "--run-dir", str(tmp_path / "run"), "--workers", value, *more]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "workers" in err[0], err
    assert not (tmp_path / "run" / stage).exists()


def test_the_list_keys_are_the_presets_lists():
    "`config.LISTS` names every key a preset gives a list, and no other (a list elsewhere is refused)."
    import yaml
    from phi1_nb.config import LISTS
    found = {f"{s}.{k}" for f in Path(phi1_nb.__file__).parents[1].glob("configs/*.yaml")
             for s, d in yaml.safe_load(f.read_text()).items() if isinstance(d, dict)
             for k, v in d.items() if isinstance(v, list)}
    assert found == LISTS
    with pytest.raises(ConfigError, match="expected"): __import__("phi1_nb.config").config.check_params(
        "dedup", {"workers": [2]})


def test_a_sigterm_while_a_worker_exits_prints_nothing(tmp_path, monkeypatch, capfd):
    """ap28 c04's rerun: a worker ended by the pool's SIGTERM while it was already exiting printed 'Exception ignored ...
    SystemExit' under the stage's one error line. A slow exit (an atexit handler) opens that window here."""
    import time
    mark = tmp_path / "exiting"
    (tmp_path / "slow_exit.py").write_text(
        f"import atexit, pathlib, time\natexit.register(lambda: pathlib.Path({str(mark)!r}).touch() or time.sleep(30))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    p, c = pool._start(["slow_exit"])
    c.send(None)
    for _ in range(600):   # until it is inside its exit
        if mark.exists(): break
        time.sleep(0.1)
    assert mark.exists()
    p.terminate(); p.wait(20); c.close()
    assert "Exception ignored" not in capfd.readouterr().err


def test_sigterm_stops_a_stage_command_as_ctrl_c_does(tmp_path):
    "bp28 c10: SIGTERM to `phi1 <stage>` ended it silently (exit -15); `phi1 pipeline` already took it as Ctrl-C."
    import time
    prog = textwrap.dedent("""
        import sys, time
        import phi1_nb.cli as cli
        def run(cmd, rest): print("ready", flush=True); time.sleep(60)
        cli._run = run
        sys.argv = ["phi1", "dedup"]; sys.exit(cli.console())""")
    p = subprocess.Popen([sys.executable, "-c", prog], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err.strip() == "phi1: interrupted; rerun resumes", (p.returncode, err)


def test_a_task_that_does_not_pickle_runs_here():
    "ap30 c14: a task closing over a lock (decontaminate with an embedder object) failed on 2 workers, not on 1."
    import threading
    lock = threading.Lock()
    def task(x):
        with lock: return x * 2
    assert process_map(task, [1, 2, 3, 4], 2) == [2, 4, 6, 8]


def test_an_item_that_does_not_pickle_is_an_error_not_a_lost_result():
    "ap30 c01: an item a worker could not be sent killed the feeder thread, and the map returned None in its place."
    me = os.getpid()
    items = [lambda: "A", "B", "C"]   # item 0 goes to the worker: a lambda does not pickle
    with pytest.raises(WorkerFailed, match="item 0 does not pickle"):
        process_map(lambda x: x() if callable(x) else x, items, 2)
    assert os.getpid() == me


def test_systemexit_in_this_processs_item_waits_for_an_earlier_error():
    "ap30 c02: SystemExit in the caller's own item 1 was raised before the worker's item 0 error, unlike one process."
    import time
    me = os.getpid()
    def task(x):
        if x == 0 and os.getpid() != me: time.sleep(1); raise ValueError("item 0")
        if x == 1 and os.getpid() == me: raise SystemExit(3)
        return x
    with pytest.raises(ValueError, match="item 0"): process_map(task, [0, 1, 2], 2)


def test_a_worker_that_dies_with_a_forked_child_alive_is_seen_at_once(tmp_path):
    "ap30 c11: a worker died while a process it forked kept its pipe open: the error came only when that child ended."
    import time
    me, pidfile = os.getpid(), tmp_path / "child"
    def task(x):
        if os.getpid() != me:
            if os.fork() == 0:   # holds the pipe open for 30 s, then says it ended
                pidfile.write_text(str(os.getpid())); time.sleep(30); pidfile.unlink(); os._exit(0)
            while not pidfile.exists(): time.sleep(0.01)
            os._exit(3)
        return x
    with pytest.raises(WorkerFailed, match="died on item 0"): process_map(task, [0, 1, 2], 2)
    child = int(pidfile.read_text())   # (still there: the error did not wait for the child's end)
    os.kill(child, signal.SIGKILL)
