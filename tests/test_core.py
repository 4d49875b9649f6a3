"Foundation: atomic writes under a crash, resume after a kill, checksums, configs, shards in HF datasets."
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest
from phi1_nb.core import (ChecksumError, ConfigError, Drop, load_config, parse_overrides, read_dataset,
                          read_manifest, read_shard, run_stage, write_manifest, write_shard)

PY = sys.executable


def _spawn(code: str, tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout=60.0):
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout: raise TimeoutError(path)
        time.sleep(0.02)


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.zst", ".parquet"])
def test_killed_writer_leaves_no_partial_shard(tmp_path, ext):
    target = tmp_path / f"shard{ext}"
    flag = tmp_path / "started"
    p = _spawn(f"""
        import time
        from pathlib import Path
        from phi1_nb.core import write_shard
        def recs():
            for i in range(10**9):
                if i == 5000: Path({str(flag)!r}).write_text("x")
                if i >= 5000: time.sleep(0.001)
                yield {{"i": i, "content": "x" * 100}}
        write_shard({str(target)!r}, recs())
    """, tmp_path)
    _wait_for(flag)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL); p.wait()
    assert not target.exists(), "a killed writer must not leave a shard under its final name"
    leftovers = [x.name for x in tmp_path.iterdir() if x.name not in ("child.py", "started")]
    assert all(x.startswith(".tmp-") for x in leftovers), leftovers  # only the temp file, never read


def test_resume_after_kill_no_duplicate_or_missing(tmp_path):
    out = tmp_path / "stage"
    code = f"""
        import time, sys
        from phi1_nb.core import run_stage, Drop
        tasks = {{f"part-{{k:05d}}": list(range(k*100, k*100+100)) for k in range(8)}}
        def proc(task):
            for i in task:
                time.sleep(0.002)
                yield Drop("multiple_of_7", {{"i": i}}) if i % 7 == 0 else {{"i": i, "content": str(i)}}
        run_stage({str(out)!r}, tasks, proc, stage="t", progress=False, keep_dropped=True)
    """
    p = _spawn(code, tmp_path)
    _wait_for(out / "parts" / "part-00002.json")
    p.send_signal(signal.SIGKILL); p.wait()
    assert not (out / "manifest.json").exists()
    done_before = len(list((out / "parts").glob("*.json")))
    assert 3 <= done_before < 8
    p = _spawn(code, tmp_path); assert p.wait() == 0, p.stderr.read()
    m = read_manifest(out)
    assert m["resumed_tasks"] == done_before
    ids = [r["i"] for r in read_dataset(out)]
    expect = [i for i in range(800) if i % 7]
    assert sorted(ids) == expect and len(ids) == len(set(ids))
    assert m["counts"] == {"in": 800, "out": len(expect)} and m["drops"] == {"multiple_of_7": 800 - len(expect)}


def test_checksum_mismatch_is_refused_and_named(tmp_path):
    infos = [write_shard(tmp_path / f"part-{i}.jsonl", [{"i": i}]) for i in range(3)]
    write_manifest(tmp_path, stage="t", shards=infos)
    assert [r["i"] for r in read_dataset(tmp_path)] == [0, 1, 2]
    with open(tmp_path / "part-1.jsonl", "a") as f: f.write('{"i": 42}\n')
    with pytest.raises(ChecksumError, match="part-1.jsonl"): list(read_dataset(tmp_path))
    (tmp_path / "part-1.jsonl").unlink()
    with pytest.raises(ChecksumError, match="missing"): list(read_dataset(tmp_path))


def test_config_overrides_and_unknown_keys():
    cfg = load_config("tiny", ["--corpus.limit", "7", "--run.seed=9"])
    assert (cfg.corpus.limit, cfg.run.seed) == (7, 9)
    assert load_config("tiny", {"corpus": {"limit": None}}).corpus.limit is None
    paper = load_config("paper")
    assert paper.corpus.format == "stack" and set(paper.flat()) == set(load_config("tiny").flat())
    with pytest.raises(ConfigError) as e: load_config("tiny", ["--corpus.limt", "7"])
    assert "corpus.limt" in str(e.value) and "files_per_shard" in str(e.value)
    with pytest.raises(ConfigError, match="unknown section"): load_config("tiny", {"nope": {"a": 1}})
    with pytest.raises(ConfigError, match="needs a value"): parse_overrides(["--corpus.limit"])
    with pytest.raises(ConfigError, match="section.key"): parse_overrides(["--limit", "3"])


def test_bad_paper_preset_key_is_an_error(tmp_path):
    import shutil
    d = tmp_path / "configs"; d.mkdir()
    shutil.copy(Path(__file__).parents[1] / "configs" / "tiny.yaml", d / "tiny.yaml")
    (d / "bad.yaml").write_text("corpus:\n  limitt: 3\n")
    with pytest.raises(ConfigError, match="corpus.limitt"): load_config("bad", configs_dir=d)


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.zst", ".parquet"])
def test_shards_load_in_hf_datasets(tmp_path, ext):
    from datasets import load_dataset
    recs = [{"content": f"def f{i}(): return {i}\n", "id": f"x{i}", "size": i} for i in range(20)]
    write_shard(tmp_path / f"s{ext}", recs)
    kind = "parquet" if ext == ".parquet" else "json"
    ds = load_dataset(kind, data_files=str(tmp_path / f"s{ext}"), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds["content"] == [r["content"] for r in recs]


def test_run_stage_reruns_a_task_whose_shard_was_tampered(tmp_path):
    tasks = {"a": [1, 2], "b": [3, 4]}
    proc = lambda t: ({"i": i} for i in t)
    run_stage(tmp_path, tasks, proc, stage="t", progress=False, fmt="jsonl")
    (tmp_path / "b.jsonl").write_text('{"i": 99}\n')
    m = run_stage(tmp_path, tasks, proc, stage="t", progress=False, fmt="jsonl")
    assert m["resumed_tasks"] == 1 and sorted(r["i"] for r in read_dataset(tmp_path)) == [1, 2, 3, 4]
