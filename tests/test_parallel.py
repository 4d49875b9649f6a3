"Filter, dedup and decontaminate on a local worker pool: the same bytes as one process; a failing worker is one line."
import json, os, shutil
from pathlib import Path

import pytest
from phi1_nb.core import read_shard, write_manifest, write_shard
from phi1_nb.decontaminate import load_benchmark, run_decontaminate
from phi1_nb.dedup import run_dedup
from phi1_nb.filter import run_filter

STDLIB = [p for p in sorted(Path(os.__file__).parent.glob("*.py")) if 500 < p.stat().st_size < 6000]   # small: fast
TIMING = ("created", "seconds", "resumed_tasks")   # what may differ between two runs of the same input


def files(d: Path) -> dict:
    "Every file of a stage folder by relative path, with its bytes (not its manifest, receipts or working files)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name not in ("manifest.json", "params.json")
            and not {"parts", "work", "model", "labels", "scores"} & set(p.relative_to(d).parts)}


def manifest(d: Path) -> dict:
    m = json.loads((d / "manifest.json").read_text())
    for k in TIMING + ("inputs",): m.pop(k, None)   # (the input's path: another run folder)
    m["params"].pop("workers", None)                # the one setting that differs: it changes no output byte
    return m


def stage(d: Path, name: str, recs: list, per: int) -> Path:
    "`recs` as a finished stage `name` in `d`, `per` records a shard."
    out = d / name
    write_manifest(out, stage=name.split("/")[0],
                   shards=[write_shard(out / f"part-{i // per:05d}.jsonl", recs[i:i + per])
                           for i in range(0, len(recs), per)])
    return d


def dedup_input(d: Path) -> Path:
    "Stdlib files in four shards, with copies planted across shards: exact (other whitespace), renamed, edited."
    recs = [dict(id=p.name, content=p.read_text(encoding="utf-8", errors="replace"), educational_value=0.5)
            for p in STDLIB[:30]]
    a, b = recs[2]["content"], recs[5]["content"]
    recs += [dict(id="copy", content=a.replace("\n", "  \n"), educational_value=0.9),
             dict(id="renamed", content=b.replace("self", "this"), educational_value=0.1),
             dict(id="edited", content=b + "\n\ndef extra():\n    return 1\n", educational_value=0.2),
             dict(id="tie7", content=recs[7]["content"]), dict(id="tie11", content=recs[11]["content"]),  # ties:
             dict(id="tie11b", content=recs[11]["content"]),          # the first in input order stays
             dict(id="empty", content=None, educational_value=0.5),
             dict(id="broken", content="def f(:\n", educational_value=0.5)]
    for r in recs[30:33]: r["educational_value"] = 0.5
    return stage(d, "filter", recs, 9)


def test_dedup_two_workers_write_the_same_bytes_as_one(tmp_path):
    for w in (1, 2):
        m = run_dedup(dedup_input(tmp_path / f"w{w}"), workers=w, shard_format="jsonl")
        assert m["params"]["workers"] == w and len(m["shards"]) == 4
    assert m["drops"]["exact_duplicate"] >= 4 and m["drops"]["near_duplicate"] >= 1 and m["drops"]["no_content"] == 1
    a, b = tmp_path / "w1" / "dedup", tmp_path / "w2" / "dedup"
    assert files(a) == files(b) and "clusters.json" in files(a)
    assert manifest(a) == manifest(b)


def exercises(d: Path) -> Path:
    he = load_benchmark("humaneval")
    recs = [dict(id=f"ex{i}", content=f"def f{i}(a, b):\n    \"\"\"Combine a and b, variant {i}.\"\"\"\n"
                 f"    return a * {i} - b\n") for i in range(12)]
    recs[3] = dict(id="ex3", content=he[7]["code"].replace("strings", "words"))      # a renamed HumanEval/7
    recs[8] = dict(id="ex8", content=he[20]["code"] + "\n\ndef extra(x):\n    return [x, x]\n")
    recs[10] = dict(id="ex10", content="def broken(:\n")
    return stage(d, "synth/exercises", recs, 4)


def test_decontaminate_two_workers_write_the_same_bytes_as_one(tmp_path):
    for w in (1, 2):
        m = run_decontaminate(exercises(tmp_path / f"w{w}"), workers=w, batch_size=3, shard_format="jsonl")
        assert m["params"]["workers"] == w and len(m["shards"]) == 3
    assert m["drops"]["contaminated"] == 2
    a, b = tmp_path / "w1" / "decontaminate", tmp_path / "w2" / "decontaminate"
    assert files(a) == files(b) and {"hits.jsonl", "match_rates.npy", "split.json"} <= set(files(a))
    assert manifest(a) == manifest(b)


def test_dedup_runs_both_passes_on_one_pool(tmp_path, monkeypatch):
    "Two processes: this one and one worker, started once for both passes (not a pool a pass)."
    import phi1_nb.pool as pool
    started, real = [], pool._start
    monkeypatch.setattr(pool, "_start", lambda warm=(): started.append(list(warm)) or real(warm))
    m = run_dedup(dedup_input(tmp_path), workers=2, shard_format="jsonl")
    assert started == [["phi1_nb.dedup"]] and m["drops"]["exact_duplicate"] >= 4


def test_filter_two_workers_write_the_same_bytes_as_one(tmp_path, monkeypatch):
    recs = [dict(id=f"stdlib/{p.name}", content=p.read_text(encoding="utf-8", errors="replace")) for p in STDLIB]
    recs += [dict(id="empty", content=""), dict(id="prose", content="Please do the needful.\nRegards,\nA. User")]
    # fasttext: the tiny preset's, whose model does not pickle (the workers read it back from its folder)
    kw = dict(n_labels=20, pool_size=29, embedder_params={"n_features": 256}, classifier="fasttext", progress=False)
    m1 = run_filter(stage(tmp_path / "w1", "corpus", recs, 6), workers=1, **kw)
    # the same model and labels (trained once): only the scoring pass runs again, on two workers, from scratch
    shutil.copytree(tmp_path / "w1", tmp_path / "w2")
    for p in ("filter/parts", "filter/scores", "filter/dropped", "cache"): shutil.rmtree(tmp_path / "w2" / p, ignore_errors=True)
    for p in (tmp_path / "w2" / "filter").glob("part-*"): p.unlink()
    import phi1_nb.filter as F, phi1_nb.pool as pool
    seen, start, load = [], pool._start, F.EduFilter.load.__func__
    monkeypatch.setattr(pool, "_start", lambda warm=(): seen.append(("start", list(warm))) or start(warm))
    monkeypatch.setattr(F.EduFilter, "load", classmethod(lambda cls, d: seen.append("load") or load(cls, d)))
    m2 = run_filter(tmp_path / "w2", workers=2, **kw)
    assert seen == [("start", ["phi1_nb.filter", "fasttext"]), "load"]   # the worker starts first, importing fastText
    assert (m1["params"]["workers"], m2["params"]["workers"], m2["resumed_tasks"], len(m2["shards"])) == (1, 2, 0, 5)
    assert m1["counts"]["out"] > 0 and m1["drops"]["empty"] == m1["drops"]["not_code"] == 1
    a, b = tmp_path / "w1" / "filter", tmp_path / "w2" / "filter"
    assert files(a) == files(b)
    assert manifest(a) == manifest(b)
    import numpy as np
    for p in sorted((a / "scores").glob("*.npz")):   # the scores of the token-budget cut, too
        za, zb = np.load(p), np.load(b / "scores" / p.name)
        for k in za.files: np.testing.assert_array_equal(za[k], zb[k])   # (NaN: the same NaN)


def boom(*a, **k):
    raise ValueError("shard broke in a worker")


def die(*a, **k):   # a worker dies; this process (which works too, `PHI1_TEST_PARENT`) fails the plain way
    if str(os.getpid()) != os.environ["PHI1_TEST_PARENT"]: os._exit(3)
    raise ValueError("shard broke here")


@pytest.mark.parametrize("fault", [boom, die])
def test_a_failing_dedup_worker_is_one_line_and_leaves_no_output(tmp_path, monkeypatch, fault):
    import phi1_nb.dedup_disk as dd
    monkeypatch.setattr(dd, "spill_shard", fault)   # (sent to the worker, which takes the first shard)
    monkeypatch.setenv("PHI1_TEST_PARENT", str(os.getpid()))   # (what the worker's environment says)
    recs = [dict(id=f"r{i}", content=f"def f(x):\n    return x + {i % 3}\n", educational_value=0.5) for i in range(6)]
    run = stage(tmp_path, "filter", recs, 2)
    with pytest.raises(Exception) as e: run_dedup(run, workers=2, shard_format="jsonl")
    msg = str(e.value)
    assert "\n" not in msg and ("shard broke in a worker" if fault is boom else "dedup worker") in msg, msg
    out = run / "dedup"
    assert not (out / "manifest.json").exists() and not list(out.glob("part-*"))
    assert not (out / "work" / "done.json").exists()
    from phi1_nb.core import require_stage
    with pytest.raises(FileNotFoundError, match="run the 'dedup' stage first"): require_stage(run, "dedup")
    if fault is boom: return
    monkeypatch.undo()
    m = run_dedup(run, workers=2, shard_format="jsonl")            # a rerun finishes, the same as one process
    run_dedup(stage(tmp_path / "one", "filter", recs, 2), workers=1, shard_format="jsonl")
    assert m["drops"] == {"exact_duplicate": 3} and files(out) == files(tmp_path / "one" / "dedup")


def test_a_failing_decontaminate_worker_is_one_line_and_leaves_no_manifest(tmp_path, monkeypatch):
    import phi1_nb.decontaminate as dc
    monkeypatch.setattr(dc, "decontaminate_shard", boom)
    run = exercises(tmp_path)
    with pytest.raises(ValueError, match="^shard broke in a worker$"): run_decontaminate(run, workers=2)
    assert not (run / "decontaminate" / "manifest.json").exists() and not list((run / "decontaminate").glob("part-*"))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "two"])
def test_bad_workers_are_refused_before_any_work(tmp_path, bad):
    from phi1_nb.config import ConfigError
    run = stage(tmp_path, "filter", [dict(id="a", content="x = 1\n", educational_value=0.5)], 1)
    with pytest.raises(ConfigError, match="dedup.workers"): run_dedup(run, workers=bad)
    with pytest.raises(ConfigError, match="decontaminate.workers"): run_decontaminate(exercises(tmp_path), workers=bad)
    assert not (run / "dedup").exists() and not (run / "decontaminate").exists()
