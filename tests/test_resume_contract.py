"The stage resume contract (issue 28, a28f): receipts, dropped shards, manifest last, self input, shard names, locks."
import json, os, subprocess, sys
from pathlib import Path

import pytest

from phi1_nb.core import (ConfigError, ShardError, hold_run, read_dataset, run_stage, sha256_file, task_ids,
                          write_manifest, Drop)
import phi1_nb.shards as shards_mod


def odd_out(task):
    for i in task: yield Drop("odd", {"i": i}) if i % 2 else {"i": i, "content": f"x = {i}"}

TASKS = {f"part-{k:05d}": range(k * 10, k * 10 + 10) for k in range(3)}

def stage(d, **kw): return run_stage(d, TASKS, odd_out, stage="demo", keep_dropped=True, progress=False, **kw)

def tree(d): return {str(p.relative_to(d)): sha256_file(p) for p in sorted(Path(d).rglob("*.jsonl.zst"))}


@pytest.mark.parametrize("receipt", ["list", "truncated", "other_task", "no_dropped"])
def test_a_bad_receipt_reruns_its_task(tmp_path, receipt):
    d = tmp_path / "st"; stage(d); want = tree(d)
    p = d / "parts" / "part-00001.json"
    if receipt == "list": p.write_text("[]")
    elif receipt == "truncated": p.write_text(p.read_text()[:40])
    elif receipt == "other_task": p.write_text((d / "parts" / "part-00000.json").read_text())
    else: r = json.loads(p.read_text()); r.pop("dropped"); p.write_text(json.dumps(r))
    m = stage(d)
    assert m["resumed_tasks"] == 2 and [s["path"] for s in m["shards"]] == [f"{t}.jsonl.zst" for t in TASKS]
    assert tree(d) == want and sorted(r["i"] for r in read_dataset(d)) == list(range(0, 30, 2))


def test_dropped_shards_deleted_or_truncated_are_restored(tmp_path):
    d = tmp_path / "st"; stage(d); want = tree(d)
    (d / "dropped" / "part-00001.jsonl.zst").unlink()
    p = d / "dropped" / "part-00002.jsonl.zst"; p.write_bytes(p.read_bytes()[:10])
    m = stage(d)
    assert m["resumed_tasks"] == 1 and tree(d) == want


def test_the_manifest_is_the_last_file_a_stage_writes(tmp_path, monkeypatch):
    d = tmp_path / "st"
    def boom(m): (d / "side.json").write_text("{}"); raise KeyboardInterrupt   # killed while writing side files
    with pytest.raises(KeyboardInterrupt): stage(d, finish=boom)
    assert not (d / "manifest.json").exists()
    m = stage(d, finish=lambda m: m.update(side=1))
    assert json.loads((d / "manifest.json").read_text())["side"] == 1 == m["side"]


def filter_stage(run, shards):
    "A hand-made filter stage `{relative path: [records]}` (raw JSON lines, escapes kept)."
    d = run / "filter"; entries = []
    for name, recs in shards.items():
        p = d / name; p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes("".join(json.dumps(r) + "\n" for r in recs).encode())
        entries.append(dict(path=name, n=len(recs), sha256=sha256_file(p), bytes=p.stat().st_size))
    write_manifest(d, stage="filter", shards=entries)

def recs(k, n=6):
    return [dict(id=f"r{k}_{i}", content=f"def f{k}_{i}(x):\n    return x * {i} + {k}\n", educational_value=0.5)
            for i in range(n)]


def test_dedup_writes_its_manifest_after_clusters_and_refuses_its_own_folder(tmp_path, monkeypatch):
    from phi1_nb.dedup import run_dedup
    filter_stage(tmp_path, {"part-00000.jsonl": recs(0), "part-00001.jsonl": recs(1)})
    seen, real = [], os.replace
    monkeypatch.setattr(shards_mod.os, "replace", lambda a, b: (seen.append(Path(b).name), real(a, b))[1])
    run_dedup(tmp_path, shingles="word")
    assert seen[-1] == "manifest.json" and "clusters.json" in seen and seen.count("manifest.json") == 1
    before = tree(tmp_path / "dedup")
    with pytest.raises(ConfigError, match="--input_stage dedup is the dedup stage's own output"):
        run_dedup(tmp_path, input_stage="dedup", shingles="word")
    assert tree(tmp_path / "dedup") == before and (tmp_path / "dedup" / "manifest.json").exists()


def test_dedup_keeps_dotted_and_subfolder_shards_apart_and_drops_lone_surrogates(tmp_path):
    from phi1_nb.dedup import run_dedup
    bad = recs(9, 3); bad[1]["content"] = "def g(x):\n    s = '\ud800'\n    return s\n"
    filter_stage(tmp_path, {"data.0.jsonl": recs(0), "data.1.jsonl": recs(1), "a/x.jsonl": recs(2), "b/x.jsonl": bad})
    m = run_dedup(tmp_path, shingles="word")
    assert [s["path"] for s in m["shards"]] == ["data.0.jsonl.zst", "data.1.jsonl.zst", "a__x.jsonl.zst",
                                                "b__x.jsonl.zst"]
    assert m["counts"]["in"] == 21 and m["drops"] == {"invalid_utf8": 1} and len(list(read_dataset(tmp_path / "dedup"))) == 20
    assert task_ids(["x.jsonl"]) == ["x"]
    with pytest.raises(ShardError, match="both write the output shard"): task_ids(["a__x.jsonl", "a/x.jsonl"])


def test_decontaminate_reruns_when_its_benchmark_file_changes(tmp_path):
    from phi1_nb.decontaminate import run_decontaminate
    from phi1_nb.core import write_shard
    from phi1_nb.dedup import stdlib_functions
    fs = stdlib_functions()[:20]
    ex = [dict(id=f"e{i}", content=c) for i, (_, c) in enumerate(fs)]
    d = tmp_path / "synth" / "exercises"
    info = [{k: v for k, v in write_shard(d / f"ex.{k}.jsonl", ex[k * 10:k * 10 + 10]).items() if k != "schema"}
            for k in range(2)]
    write_manifest(d, stage="synth/exercises", shards=info)
    bench = tmp_path / "bench.jsonl"
    p0 = dict(task_id="B/0", prompt='def add(a, b):\n    """Add two numbers."""\n', canonical_solution="    return a + b\n")
    bench.write_text(json.dumps(p0) + "\n")
    m = run_decontaminate(tmp_path, benchmarks=str(bench))
    assert m["counts"]["in"] == 20 and [s["path"] for s in m["shards"]] == ["ex.0.jsonl.zst", "ex.1.jsonl.zst"]
    bench.write_text(json.dumps(p0) + "\n" + json.dumps(dict(task_id="B/1", prompt="", canonical_solution=fs[5][1])) + "\n")
    m2 = run_decontaminate(tmp_path, benchmarks=str(bench))
    assert m2["resumed_tasks"] == 0 and m2["drops"].get("contaminated") == 1 and m2["n_problems"] == 2
    assert m2["params"]["benchmark_sha256"] != m["params"]["benchmark_sha256"]


def test_rank_exported_by_hand_is_no_launch_group(tmp_path, monkeypatch):
    for k in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RANK", "0")
    held = hold_run(tmp_path / "run", "dedup")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    go = lambda env: subprocess.run([sys.executable, "-c", f"from phi1_nb.core import hold_run; hold_run({str(tmp_path / 'run')!r})"],
                                    env=env, capture_output=True, text=True)
    r = go(env)
    assert r.returncode != 0 and "run folder in use by pid" in r.stderr
    held.close()
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "launch1"); held = hold_run(tmp_path / "run", "dedup")
    assert go({**env, "TORCHELASTIC_RUN_ID": "launch1"}).returncode == 0   # the ranks of one torchrun launch join
    held.close()
