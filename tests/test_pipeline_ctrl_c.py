"""Ctrl-C on a pipeline whose stages run side by side (jobs 2), each in its own Jupyter kernel: the kernels are
interrupted (one that ignores SIGINT is killed), no interrupted stage writes its manifest, the command ends at once with
one line and exit 130, and the same command again reuses the stage that had finished and runs the others."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from phi1_nb.core import load_config
from test_cli_mistakes import CLI, ROOT, env, error_lines

# A stand-in stage notebook: it notes its kernel's pid, waits while `slow` exists, then writes its manifest as a stage
# does. Its config section comes from the run's config.yaml, so that a rerun can reuse it.
CELLS = ["",
         """import os, signal, time
from pathlib import Path
from phi1_nb.core import load_config, write_manifest
d = Path(run_dir); (d/"pids").mkdir(exist_ok=True)
(d/"pids"/STAGE).write_text(str(os.getpid()))
if STAGE == "eval": signal.signal(signal.SIGINT, signal.SIG_IGN)   # a cell deaf to Ctrl-C: only a kill ends it
t0 = time.time()
while (d/"slow").exists() and STAGE != "corpus" and time.time() - t0 < 40: time.sleep(0.05)""",
         "write_manifest(d/STAGE, stage=STAGE, shards=[], params=load_config(str(d/'config.yaml')).section(STAGE))"]


def stand_in_nbs(d: Path) -> Path:
    d.mkdir(); (d/"00_core.ipynb").write_text("{}")
    for stage, name in [("corpus", "01_corpus"), ("decontaminate", "07a_decontaminate"), ("eval", "10_eval")]:
        params = "".join(f"{k} = None\n" for k in ["run_dir", *load_config("tiny").section(stage)])
        head = [params, f"STAGE = {stage!r}\n", ""]
        cells = [dict(cell_type="code", id=f"c{i}", metadata=dict(tags=["parameters"] if i == 0 else []), outputs=[],
                      execution_count=None, source=head[i] + src) for i, src in enumerate(CELLS)]
        nb = dict(cells=cells, metadata=dict(kernelspec=dict(name="python3", display_name="Python 3", language="python")),
                  nbformat=4, nbformat_minor=5)
        (d/f"{name}.ipynb").write_text(json.dumps(nb))
    return d


def alive(pid: int) -> bool:
    try: os.kill(pid, 0); return True
    except ProcessLookupError: return False


@pytest.mark.slow
def test_ctrl_c_stops_stages_running_side_by_side(tmp_path):
    run = tmp_path/"runs"/"run"; run.mkdir(parents=True); (run/"slow").touch()
    cmd = [sys.executable, "-c", CLI, "pipeline", "--stages", "corpus,decontaminate,eval", "--pipeline.jobs", "2",
           "--run.runs_dir", str(tmp_path/"runs"), "--run.name", "run"]
    e = {**env(), "PHI1_NBS": str(stand_in_nbs(tmp_path/"nbs"))}
    p = subprocess.Popen(cmd, cwd=ROOT, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    t0 = time.time()
    while not all((run/"pids"/s).exists() for s in ("decontaminate", "eval")) and p.poll() is None \
            and time.time() - t0 < 120:
        time.sleep(0.05)
    assert (run/"corpus"/"manifest.json").exists() and p.poll() is None   # one stage done, two running side by side
    pids = {s: int((run/"pids"/s).read_text()) for s in ("decontaminate", "eval")}
    assert all(map(alive, pids.values()))
    t_stop = time.time()
    os.killpg(p.pid, signal.SIGINT)                   # a terminal's Ctrl-C: the driver's whole process group
    err = p.communicate(timeout=120)[1]
    lines = [l for l in error_lines(err) if not l.startswith("[")]   # less the progress lines of a slow machine
    assert p.returncode == 130 and lines == ["phi1: interrupted; rerun resumes"], err[-3000:]
    assert time.time() - t_stop < 30                  # not after the stages' own 40 s
    assert not (run/"decontaminate"/"manifest.json").exists() and not (run/"eval"/"manifest.json").exists()
    t0 = time.time()
    while any(map(alive, pids.values())) and time.time() - t0 < 10: time.sleep(0.1)
    assert not any(map(alive, pids.values())), "a stage's kernel outlived the pipeline"
    # the same command again: the finished stage is reused, the interrupted ones run to their end
    (run/"slow").unlink()
    r = subprocess.run(cmd, cwd=ROOT, env=e, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    status = {x["stage"]: x["status"] for x in json.loads((run/"summary.json").read_text())["stages"]}
    assert status == {"corpus": "reused", "decontaminate": "ran", "eval": "ran"}, status
