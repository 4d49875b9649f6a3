"""The pipeline's scheduler with stand-in stages (no kernels): at most `jobs` at once, each after the stages it reads,
a failure stops what depends on it, and the summary keeps the pipeline's order and format."""
import json
import threading
import time

import pytest
from phi1_nb import pipeline as P
from phi1_nb.core import load_config, write_manifest


def fake_stages(monkeypatch, seconds=0.3, fail=()):
    "Replace `_run_one` by a stage that sleeps, writes its manifest and logs when it ran (and which threads it got)."
    spans, lock = {}, threading.Lock()

    def run_one(stage, i, cfg, run_dir, prepare_only, env, bar, stop=None):
        if bar is not None: bar.close()
        t0 = time.time(); time.sleep(seconds)
        with lock: spans[stage] = (t0, time.time(), env)
        if stage in fail:
            return dict(stage=stage, status="failed", seconds=time.time() - t0, notebook="nb", error="Boom: planted")
        write_manifest(run_dir/stage, stage=stage, shards=[], params=cfg.section(stage), seconds=0.0)
        return dict(stage=stage, status="ran", seconds=round(time.time() - t0, 2), notebook="nb")
    monkeypatch.setattr(P, "_run_one", run_one)
    return spans


def overlap(a, b): return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("jobs", [1, 3])
def test_schedule_respects_inputs_and_jobs(tmp_path, monkeypatch, jobs):
    spans = fake_stages(monkeypatch)
    over = {"run": {"runs_dir": str(tmp_path), "name": "r"}, "pipeline": {"jobs": jobs}}
    s = P.run_pipeline("tiny", over, log=lambda *a: None)
    assert [x["stage"] for x in s["stages"]] == P.STAGE_NAMES and {x["status"] for x in s["stages"]} == {"ran"}
    deps = P.stage_inputs(load_config("tiny"))
    for b, ins in deps.items():
        for a in ins: assert spans[a][1] <= spans[b][0], (a, "must finish before", b)
    at_once = max(sum(overlap(spans[a], spans[b]) for b in spans) for a in spans)   # itself included
    assert at_once == min(jobs, 2)   # the tiny DAG is two wide: the ablation beside the chain
    assert all(sp[2] == P.stage_threads(jobs) for sp in spans.values())
    assert P.stage_threads(1) == {} and P.stage_threads(2) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert P.stage_threads(1, 3)["OMP_NUM_THREADS"] == "3"
    assert s["wall_seconds"] <= s["seconds"] + 1 and json.loads((tmp_path/"r"/"summary.json").read_text()) == s
    # the same command again reuses every stage, and a changed ablation reruns the ablation and the report alone
    s = P.run_pipeline("tiny", {**over, "ablation": {"max_steps": 7}}, log=lambda *a: None)
    assert {x["stage"] for x in s["stages"] if x["status"] == "ran"} == {"ablation", "report"}


def test_failure_stops_its_dependents_and_nothing_new_starts(tmp_path, monkeypatch):
    spans = fake_stages(monkeypatch, fail={"pretrain"})
    over = {"run": {"runs_dir": str(tmp_path), "name": "r"}, "pipeline": {"jobs": 2}}
    with pytest.raises(P.StageFailed, match="stage 'pretrain' failed.*Boom: planted"):
        P.run_pipeline("tiny", over, log=lambda *a: None)
    s = json.loads((tmp_path/"r"/"summary.json").read_text())
    status = {x["stage"]: x["status"] for x in s["stages"]}
    # the ablation started beside tokenizer and finished; nothing after pretrain started
    assert status == {"corpus": "ran", "filter": "ran", "dedup": "ran", "tokenizer": "ran", "pretrain": "failed",
                      "ablation": "ran"}
    assert set(spans) == set(status)
    # fixed, the same command resumes at pretrain, reusing the rest
    fake_stages(monkeypatch)
    s = P.run_pipeline("tiny", over, log=lambda *a: None)
    status = {x["stage"]: x["status"] for x in s["stages"]}
    assert [k for k, v in status.items() if v == "reused"] == ["corpus", "filter", "dedup", "tokenizer", "ablation"]



def test_a_stage_starts_once_the_output_it_reads_is_written(tmp_path, monkeypatch):
    "The filter's last cells (plots, an embedder comparison) run beside dedup; the report waits for every stage to end."
    spans, lock, logs = {}, threading.Lock(), []

    def run_one(stage, i, cfg, run_dir, prepare_only, env, bar, stop=None):
        if bar is not None: bar.close()
        t0 = time.time(); time.sleep(0.2)
        write_manifest(run_dir/stage, stage=stage, shards=[], params=cfg.section(stage), seconds=0.0)
        wrote = time.time(); time.sleep(1.5 if stage in ("filter", "eval") else 0)   # the notebook's last cells
        with lock: spans[stage] = (t0, wrote, time.time())
        return dict(stage=stage, status="ran", seconds=round(time.time() - t0, 2), notebook="nb")
    monkeypatch.setattr(P, "_run_one", run_one)
    s = P.run_pipeline("tiny", {"run": {"runs_dir": str(tmp_path), "name": "r"}, "pipeline": {"jobs": 2}},
                       log=logs.append)
    assert {x["status"] for x in s["stages"]} == {"ran"}
    assert spans["dedup"][0] < spans["filter"][2], spans   # dedup began while the filter's notebook still ran
    assert any(line.startswith("[dedup] starts beside filter") for line in logs), logs
    for b, ins in P.stage_inputs(load_config("tiny")).items():
        for a in ins: assert spans[a][1] <= spans[b][0], (b, "started before the output of", a, "was written")
    assert all(sp[2] <= spans["report"][0] for st, sp in spans.items() if st != "report")   # it reads summary.json
    assert max(sum(sp[0] <= t < sp[2] for sp in spans.values()) for t, *_ in spans.values()) == 2   # 2 at once
