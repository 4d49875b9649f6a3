"""The whole pipeline, end to end, on the smaller-than-tiny `smoke` preset, two stages at a time; a failing stage,
then resume: every stage runs once."""
import json
from pathlib import Path

import pytest
from phi1_nb.core import read_manifest
from phi1_nb.pipeline import STAGE_NAMES, StageFailed, available_stages, run_pipeline


def test_pipeline_end_to_end_with_failure_and_resume(tmp_path):
    missing = [s for s in STAGE_NAMES if s not in available_stages()]
    assert not missing, f"stages not built: {missing}"
    run = {"runs_dir": str(tmp_path), "name": "smoke"}
    bad = {"run": run, "pipeline": {"jobs": 2}, "decontaminate": {"benchmarks": str(tmp_path / "no-such-benchmark.jsonl")}}
    with pytest.raises(StageFailed) as e:
        run_pipeline("smoke", bad, log=lambda *a: None)
    assert "decontaminate" in str(e.value) and "notebooks" in str(e.value)
    rd = tmp_path / "smoke"
    s = json.loads((rd / "summary.json").read_text())
    assert [x["stage"] for x in s["stages"] if x["status"] == "failed"] == ["decontaminate"]
    done = [x["stage"] for x in s["stages"] if x["status"] == "ran"]   # the ablation ran beside the chain, unstopped
    assert done == ["corpus", "filter", "dedup", "tokenizer", "pretrain", "synth", "ablation"]
    before = {st: read_manifest(rd / st)["created"] for st in done}

    s = run_pipeline("smoke", {"run": run, "pipeline": {"jobs": 2}}, log=lambda *a: None)  # fixed: resumes there
    status = {x["stage"]: x["status"] for x in s["stages"]}
    assert status == {**{st: "reused" for st in done}, "decontaminate": "ran", "finetune": "ran", "eval": "ran",
                      "report": "ran"}
    assert {st: read_manifest(rd / st)["created"] for st in done} == before  # reused outputs were not rewritten
    for st in STAGE_NAMES:
        assert (rd / st / "manifest.json").exists(), st
    nbs = sorted(p.name for p in (rd / "notebooks").glob("*.ipynb"))
    assert len(nbs) == len(STAGE_NAMES)
    assert (rd / "pretrain" / "final" / "config.json").exists() and (rd / "finetune" / "final" / "config.json").exists()
    rep = json.loads((rd / "report" / "report.json").read_text())
    assert rep["eval"] is not None and rep["ablation"] is not None

    # the same run as a site: every stage page, opened in headless Chromium, shows its title, a figure and no error
    import shutil
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        from phi1_nb.site import build_site, check_site
        site = build_site(rd, tmp_path / "_site")
        problems = check_site(site, rd, screenshots=1)
        assert len(problems) == len(STAGE_NAMES) + 1, sorted(problems)   # + the index (one report entry: a stage page)
        assert not any(problems.values()), problems   # no stderr block, warning, cut table or outside request on any page
        assert (rd / "site_screenshots" / "index.png").exists()
    # the progress ETA of a next run comes from this run's timings: one duration per code cell of every stage
    timings = json.loads((rd / "timings.json").read_text())
    assert set(timings) == set(STAGE_NAMES) and all(len(v) > 1 for v in timings.values())

    # the ablation ran beside pretraining (papermill's clocks in the executed notebooks); what each kernel got to compute
    # with (stage_threads: the same thread count as one alone) is tests/test_pipeline_schedule.py's
    def span(name):
        pm = json.loads(next((rd / "notebooks").glob(f"*_{name}.ipynb")).read_text())["metadata"]["papermill"]
        return pm["start_time"], pm["end_time"]
    assert span("ablation")[0] < span("pretrain")[1] and span("pretrain")[0] < span("ablation")[1]
