"`phi1 pipeline`'s progress and quiet kernels: cells reported as they finish, timings kept, no TCP warning."
import io, json

import nbformat
from phi1_nb.pipeline import StageProgress, execute_stage, last_timings, save_timings


def test_stage_reports_cells_and_kernel_is_quiet(tmp_path, capfd):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("import time; time.sleep(0.2)"),
                                         nbformat.v4.new_markdown_cell("text"), nbformat.v4.new_code_cell("print(n)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, tmp_path/"in.ipynb")
    log = io.StringIO()
    p = StageProgress("demo", 2, 3, 4, last=[0.1, 0.1, 5.0, 0.1], file=log, every=0)
    execute_stage(tmp_path/"in.ipynb", tmp_path/"out.ipynb", {"n": 7}, tmp_path, p)
    lines = log.getvalue().splitlines()
    assert [l.split(" cells")[0] for l in lines] == [f"[2/3 demo] {i}/4" for i in (1, 2, 3, 4)]
    assert "ETA 5s (last run 5s)" in lines[1]                     # the last run's time of the cells still to run
    err = capfd.readouterr().err
    assert "without encryption" not in err, err                   # the kernel ran on IPC sockets
    save_timings(tmp_path, "demo", tmp_path/"out.ipynb")
    t = last_timings(tmp_path, "demo", None)
    assert len(t) == 4 and t[2] >= 0.2 and json.loads((tmp_path/"timings.json").read_text())["demo"] == t


def test_a_cell_past_the_timeout_is_a_failed_stage(tmp_path):
    from phi1_nb.pipeline import StageFailed, run_pipeline
    # the whole standard library: its reading cell takes several seconds, well past a 1 s timeout
    over = {"run": {"runs_dir": str(tmp_path), "name": "t"}, "pipeline": {"execution_timeout": 1}}
    try: run_pipeline("tiny", over, stages="corpus", log=lambda *a: None); raise AssertionError("no StageFailed")
    except StageFailed as e: assert "execution_timeout=1s" in str(e) and "resume" in str(e)
    s = json.loads((tmp_path/"t"/"summary.json").read_text())
    assert s["stages"][-1]["status"] == "failed" and "execution_timeout" in s["stages"][-1]["error"]


def test_a_long_cell_shows_its_own_counter_and_no_noise(tmp_path):
    "A bar shown only on a terminal (as run_stage's and the Trainer's) counts into the progress line; the page gets no bar."
    src = ("import logging, sys, time\nfrom tqdm.auto import tqdm\n"
           "for i in tqdm(range(6), desc='shard', unit='shard', disable=None if sys.stderr.isatty() else True): time.sleep(.5)\n"
           "bar = tqdm(total=3, disable=not sys.stderr.isatty()); bar.update(3); bar.write(str({'loss': 1.0}))\n"
           "logging.getLogger('phi1_nb.llm').warning('503: retrying')\nprint('done')")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("n = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell(src)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nbformat.write(nb, tmp_path/"in.ipynb")
    log = io.StringIO()
    p = StageProgress("demo", 1, 1, 2, file=log, every=0.2)
    execute_stage(tmp_path/"in.ipynb", tmp_path/"out.ipynb", {"n": 7}, tmp_path, p); p.close()
    assert any("(shard: " in l and "/6 shards)" in l for l in log.getvalue().splitlines()), log.getvalue()
    outs = [o for c in nbformat.read(tmp_path/"out.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert {o.get("name") for o in outs} == {"stdout"}, outs                          # no stderr block: no bar, no red log
    assert "".join(o["text"] for o in outs) == "503: retrying\ndone\n", outs         # the log record as plain output
