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
    infos = [write_shard(tmp_path / f"part-{i}.jsonl", [{"i": i, "content": "x"}]) for i in range(3)]
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
    proc = lambda t: ({"i": i, "content": "x"} for i in t)
    run_stage(tmp_path, tasks, proc, stage="t", progress=False, fmt="jsonl")
    (tmp_path / "b.jsonl").write_text('{"i": 99}\n')
    m = run_stage(tmp_path, tasks, proc, stage="t", progress=False, fmt="jsonl")
    assert m["resumed_tasks"] == 1 and sorted(r["i"] for r in read_dataset(tmp_path)) == [1, 2, 3, 4]


# ---------------------------------------------------------------- issue 18: schema, verification, stage folders


@pytest.mark.parametrize("ext", [".jsonl", ".jsonl.zst", ".parquet"])
def test_keys_missing_in_the_first_row_and_late_non_null_columns_survive(tmp_path, ext):
    recs = [{"id": i, "content": "x"} for i in range(2500)] + [{"id": 2500, "content": "y", "judge_label": 1}]
    recs[3]["score"] = None; recs[2400]["score"] = 0.5                         # null for its first 2,000 rows
    write_shard(tmp_path / f"s{ext}", recs)
    back = list(read_shard(tmp_path / f"s{ext}"))
    assert sum(r.get("judge_label") is not None for r in back) == 1 and back[-1]["judge_label"] == 1
    assert back[2400]["score"] == 0.5


def _parity_stage(tmp_path, fmt):
    tasks = {"part-00000": range(0, 6), "part-00001": range(6, 12)}   # the second task's records carry a key the first never has
    def proc(t):
        for i in t:
            if i % 5 == 0: yield Drop("fives", {"i": i})
            else: yield {"i": i, "content": f"c{i}", **({"judge_label": i % 2} if i >= 6 else {})}
    return run_stage(tmp_path / "st", tasks, proc, stage="t", fmt=fmt, keep_dropped=True, progress=False)


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.zst", "parquet"])
def test_a_stage_folder_loads_as_exactly_its_kept_records(tmp_path, fmt):
    import datasets, pandas as pd, pyarrow.dataset as pads
    m = _parity_stage(tmp_path, fmt)
    st = tmp_path / "st"
    kept = list(read_dataset(st))
    assert (st / "dropped").is_dir() and len(kept) == m["counts"]["out"] == 9
    ds = datasets.load_dataset(str(st), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.to_list() == [{"i": r["i"], "content": r["content"], "judge_label": r.get("judge_label")} for r in kept]
    assert list(m["features"]) == ["i", "content", "judge_label"]
    files = [str(st / s["path"]) for s in m["shards"]]
    if fmt == "parquet":
        import pyarrow.parquet as pq
        assert len({pq.read_schema(f) for f in files}) == 1           # one schema across shards
        assert pads.dataset(files, format="parquet").to_table().num_rows == 9
        assert len(pd.concat(pd.read_parquet(f) for f in files)) == 9
        # and the rewrite is in the receipts: a rerun resumes every task
        assert _parity_stage(tmp_path, fmt)["resumed_tasks"] == 2
    else:
        assert len(pd.concat(pd.read_json(f, lines=True) for f in files)) == 9


def test_a_rerun_stage_folder_never_loads_stale_records(tmp_path):
    "`datasets` caches a folder by its name and card: two runs' `filter` folders (or one rerun) must not share a cache entry."
    import datasets
    cache = str(tmp_path / "cache")   # one cache for both, as ~/.cache/huggingface is for a user
    for run, n in (("a", 5), ("b", 7)):
        st = tmp_path / run / "filter"
        run_stage(st, {"t0": range(n)}, lambda t: ({"id": f"{run}{i}", "content": "x" * i} for i in t), stage="filter",
                  fmt="jsonl.zst", progress=False)
        assert datasets.load_dataset(str(st), split="train", cache_dir=cache)["id"] == [f"{run}{i}" for i in range(n)]
    st = tmp_path / "a" / "filter"   # the same folder rewritten with other records of the same count and size
    for p in st.iterdir(): p.unlink() if p.is_file() else None
    run_stage(st, {"t0": range(5)}, lambda t: ({"id": f"z{i}", "content": "y" * i} for i in t), stage="filter",
              fmt="jsonl.zst", progress=False)
    assert datasets.load_dataset(str(st), split="train", cache_dir=cache)["id"] == [f"z{i}" for i in range(5)]


def test_every_cut_of_a_zstd_shard_is_refused(tmp_path):
    from phi1_nb.core import ShardError
    p = tmp_path / "s.jsonl.zst"
    write_shard(p, [{"i": i, "content": "def f():\n    return %d\n" % i} for i in range(8)])
    whole = p.read_bytes()
    for cut in range(len(whole)):
        (tmp_path / "cut.jsonl.zst").write_bytes(whole[:cut])
        with pytest.raises(ShardError, match="cut.jsonl.zst"): list(read_shard(tmp_path / "cut.jsonl.zst"))


@pytest.mark.parametrize("cut", [0, 4, 100, -8, -1])
def test_a_cut_parquet_shard_is_refused_by_name(tmp_path, cut):
    from phi1_nb.core import ShardError
    p = tmp_path / "s.parquet"
    write_shard(p, [{"i": i, "content": "x" * i} for i in range(50)])
    (tmp_path / "cut.parquet").write_bytes(p.read_bytes()[:cut])
    with pytest.raises(ShardError, match=r"cut.parquet: not a complete Parquet file.*rerun"): list(read_shard(tmp_path / "cut.parquet"))


def test_read_errors_are_one_line_and_say_what_to_do(tmp_path):
    from phi1_nb.core import ShardError
    infos = [write_shard(tmp_path / "part-0.jsonl", [{"i": 0, "content": "x"}])]
    write_manifest(tmp_path, stage="t", shards=infos)
    (tmp_path / "part-0.jsonl").write_text('{"i": 1}\n')
    with pytest.raises(ChecksumError) as e: list(read_dataset(tmp_path))
    assert "\n" not in str(e.value) and "part-0.jsonl" in str(e.value) and "rerun the 't' stage" in str(e.value)
    assert isinstance(e.value, ValueError)                          # the CLI's exit-2 errors
    (tmp_path / "bad.jsonl").write_text('{"i": 1}\n{"i": \n')
    with pytest.raises(ShardError, match=r"bad.jsonl:2: not a JSON line"): list(read_shard(tmp_path / "bad.jsonl"))


def test_the_next_run_removes_stale_temp_files(tmp_path):
    st = tmp_path / "st"; (st / "dropped").mkdir(parents=True)
    for p in (st / ".tmp-part-00000.jsonl.zst.k1", st / "dropped" / ".tmp-part-00000.jsonl.zst.k2"): p.touch()
    run_stage(st, {"part-00000": [1]}, lambda t: ({"i": i, "content": "x"} for i in t), stage="t", keep_dropped=True, progress=False)
    assert not list(st.rglob(".tmp-*"))


def test_killed_run_stage_leaves_temps_that_the_next_run_removes(tmp_path):
    out = tmp_path / "stage"
    code = f"""
        import time
        from phi1_nb.core import run_stage
        def proc(task):
            for i in task:
                time.sleep(0.01); yield {{"i": i, "content": "x"}}
        run_stage({str(out)!r}, {{"part-00000": range(10**6)}}, proc, stage="t", progress=False)
    """
    p = _spawn(code, tmp_path)
    t0 = time.time()
    while not list(out.glob(".tmp-*")) and time.time() - t0 < 60: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert list(out.glob(".tmp-part-*"))
    run_stage(out, {"part-00000": range(3)}, lambda t: ({"i": i, "content": "x"} for i in t), stage="t", progress=False)
    assert not list(out.rglob(".tmp-*")) and [r["i"] for r in read_dataset(out)] == [0, 1, 2]


@pytest.mark.parametrize("value", [2**70, (1, "x"), {1: 2}, [1, "x"]])
def test_json_lines_take_values_no_arrow_type_fits(tmp_path, value):
    "JSON Lines never refused a JSON-able record; no schema is declared for such a shard rather than failing the write."
    from phi1_nb.core import SchemaError
    info = write_shard(tmp_path / "s.jsonl.zst", [{"a": value}, {"a": None}])
    assert info["n"] == 2 and info["schema"] is None and len(list(read_shard(tmp_path / "s.jsonl.zst"))) == 2
    with pytest.raises(SchemaError, match=r"s.parquet: key 'a'"): write_shard(tmp_path / "s.parquet", [{"a": value}, {"a": 1}])
    assert not (tmp_path / "s.parquet").exists()


from hypothesis import given, settings, strategies as hst

_FIELDS = {"a": hst.integers(-2**62, 2**62), "b": hst.text(max_size=6), "c": hst.floats(allow_nan=False),
           "d": hst.lists(hst.integers(0, 9), max_size=3), "e": hst.fixed_dictionaries({"x": hst.booleans()})}
_RECORD = hst.fixed_dictionaries({"id": hst.integers(0, 10**6), "content": hst.text(max_size=5)}, optional={k: hst.one_of(hst.none(), v) for k, v in _FIELDS.items()})


@settings(max_examples=60, deadline=None)
@given(hst.lists(_RECORD, max_size=40), hst.integers(1, 4))
def test_any_records_round_trip_with_one_schema_per_stage(recs, n_tasks):
    "Keys present in any row of any task, null anywhere: every format reads back what was written, Parquet under one schema."
    import tempfile, pyarrow.parquet as pq
    from phi1_nb.core import ShardError
    seen = set()   # ids are unique in a stage (the read contract): a repeated one is dropped from its record
    recs = [r if r.get("id") is None or (k := json.dumps(r["id"], sort_keys=True, default=str)) not in seen and not seen.add(k)
            else {x: v for x, v in r.items() if x != "id"} for r in recs]
    keys = list(dict.fromkeys(k for r in recs for k in r))
    tasks = {f"part-{t:05d}": recs[t::n_tasks] for t in range(n_tasks)}
    with tempfile.TemporaryDirectory() as d:
        for fmt in ("jsonl.zst", "parquet"):
            m = run_stage(Path(d) / fmt, tasks, lambda t: iter(t), stage="t", fmt=fmt, progress=False)
            back = [r for t in tasks for r in read_shard(Path(d) / fmt / f"{t}.{fmt}")]
            want = [r for t in tasks.values() for r in t]
            if want and not any(isinstance(r.get("content"), str) and r["content"].strip() for r in want):
                with pytest.raises(ShardError, match="null or blank 'content': no data"): list(read_dataset(Path(d) / fmt))
                continue   # a stage without a single text is refused by every reader (contract.verify_shards)
            assert len(list(read_dataset(Path(d) / fmt))) == len(want) == m["counts"]["out"]
            if fmt == "parquet":
                assert [{k: r.get(k) for k in keys} for r in back] == [{k: r.get(k) for k in keys} for r in want]
                assert len({pq.read_schema(Path(d) / fmt / s["path"]) for s in m["shards"]}) == 1
            else: assert back == want


def test_torch_is_seeded_on_its_first_import_as_if_it_had_been_imported_first():
    "seed_everything before `import torch` (a stage that may never need it) draws what it draws after; a reseed wins."
    def draw(code):
        r = subprocess.run([sys.executable, "-c", "import random; from phi1_nb.core import seed_everything\n" + code +
                            "\nprint(torch.rand(3).tolist(), torch.initial_seed(), random.random())"],
                           capture_output=True, text=True, timeout=120, check=True)
        return r.stdout.strip()
    after = draw("import torch; seed_everything(7)")
    assert draw("seed_everything(7); import torch") == after
    assert draw("seed_everything(3); seed_everything(7); import torch") == after   # the last seed counts
    assert draw("seed_everything(8); import torch") != after
    r = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.core import seed_everything; seed_everything(1); "
                        "print('torch' in sys.modules)"], capture_output=True, text=True, timeout=60, check=True)
    assert r.stdout.strip() == "False"   # seeding alone does not import torch


def _schema_by_column(records):
    import pyarrow as pa
    return pa.schema([pa.field(k, pa.array([r.get(k) for r in records]).type) for k in dict.fromkeys(k for r in records for k in r)])


def test_infer_schema_in_one_pass_equals_typing_each_column():
    "The one-pass struct inference gives the schema that typing every column from all its values gives, or the same error."
    import pyarrow as pa
    from hypothesis import given, settings, strategies as st
    from phi1_nb.shards import SchemaError, _Mixed, _arrow_type, _plain_type, _plain_unify, infer_schema
    with pytest.raises(SchemaError, match="key 'id'"): infer_schema([{"id": False}, {"id": 0.0}])   # (found by the check below)
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False), st.text(max_size=5))
    value = st.recursive(scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.sampled_from("xyz"), c, max_size=2)), max_leaves=4)
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.dictionaries(st.sampled_from(["id", "a", "b", "c"]), value, max_size=4), min_size=1, max_size=5))
    def check(records):
        try: want = _schema_by_column(records)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            with pytest.raises(SchemaError): infer_schema(records)
            return
        assert infer_schema(records).equals(want), (records, infer_schema(records), want)
        try: plain = pa.schema(list(_arrow_type(_plain_unify(map(_plain_type, records)))))
        except (_Mixed, TypeError): return
        assert plain.equals(want), (records, plain, want)   # the pure-Python path (no pandas import) on its own
    check()
    # records whose keys keep one type family (as a stage's records do): the pure-Python path decides almost all of them
    fam = {"i": st.integers(-2**63, 2**63 - 1), "f": st.floats(allow_nan=True), "s": st.text(max_size=3), "b": st.booleans(),
           "l": st.lists(st.integers(-9, 9), max_size=3), "d": st.fixed_dictionaries({}, optional={"x": st.text(max_size=2), "y": st.none()})}
    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.fixed_dictionaries({}, optional={k: st.one_of(st.none(), v) for k, v in fam.items()}), min_size=1, max_size=6))
    def check_plain(records):
        want = _schema_by_column(records)
        assert infer_schema(records).equals(want)
        assert pa.schema(list(_arrow_type(_plain_unify(map(_plain_type, records))))).equals(want), records
    check_plain()


def test_hf_features_equal_what_datasets_writes_for_random_schemas():
    "The card's features, written without `datasets`, are what `datasets` writes, on random nested Arrow schemas."
    import pyarrow as pa
    from datasets import Features
    from hypothesis import given, settings, strategies as st
    from phi1_nb.shards import hf_features
    prim = st.sampled_from([pa.null(), pa.bool_(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(),
                            pa.uint64(), pa.float16(), pa.float32(), pa.float64(), pa.string(), pa.large_string(), pa.binary(),
                            pa.large_binary(), pa.timestamp("s"), pa.date32(), pa.decimal128(10, 2)])   # the last three: via datasets
    names = st.lists(st.text("abcxyz_", min_size=1, max_size=4), min_size=0, max_size=3, unique=True)
    typ = st.recursive(prim, lambda c: st.one_of(st.builds(pa.list_, c), st.builds(pa.large_list, c),
                       names.flatmap(lambda ns: st.tuples(*[c for _ in ns]).map(lambda ts: pa.struct(list(zip(ns, ts)))))), max_leaves=6)
    @settings(max_examples=300, deadline=None)
    @given(names.filter(bool).flatmap(lambda ns: st.tuples(*[typ for _ in ns]).map(lambda ts: pa.schema(list(zip(ns, ts))))))
    def check(schema): assert hf_features(schema) == Features.from_arrow_schema(schema)._to_yaml_list(), schema
    check()
