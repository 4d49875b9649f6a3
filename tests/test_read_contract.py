"""The read contract: every tampering case against every stage that reads it.

A stage folder is written by the real writer (`run_stage`), then one thing is made wrong in a way a checksum alone does
not catch (a valid shard of another shape with its sha256 updated, a manifest that disagrees with itself, a stale card)
or does (a truncated, deleted shard; a broken manifest). Each reading stage, run through the `phi1` command line, must
answer in one line naming the file, exit 2, and leave no output folder of its own."""
import json, re, shutil
from pathlib import Path

import pytest

from phi1_nb.cli import main
from phi1_nb.core import read_json, read_manifest, run_stage, sha256_file, verify_shards, write_json, write_shard

N = 6   # records per shard


def records(task):
    for i in task: yield {"id": f"r{i}", "content": f"def f{i}(x):\n    return x + {i}\n", "path": f"f{i}.py",
                          "educational_value": 0.5 + i / 100}


def make_run(root: Path, fmt: str) -> Path:
    tasks = {f"part-{k:05d}": range(k * N, (k + 1) * N) for k in range(2)}
    for stage in ("corpus", "filter", "dedup", "synth/exercises"):
        run_stage(root / stage, tasks, records, stage=stage, fmt=fmt, progress=False)
    return root


@pytest.fixture(scope="module", params=["parquet", "jsonl.zst"])
def template(request, tmp_path_factory):
    return request.param, make_run(tmp_path_factory.mktemp(f"tpl-{request.param.replace('.', '')}"), request.param)


def _swap(d: Path, recs: list):
    "Replace shard 0 by a valid shard of the same format holding `recs`, and update its sha256 in the manifest."
    m = read_manifest(d); s = m["shards"][0]
    (d / s["path"]).unlink(); write_shard(d / s["path"], recs)
    s.update(sha256=sha256_file(d / s["path"]), bytes=(d / s["path"]).stat().st_size); write_json(d / "manifest.json", m)
    return s["path"]


def _edit(d: Path, f) -> str:
    m = read_manifest(d); f(m); write_json(d / "manifest.json", m); return "manifest.json"


def _drop_entry_fix_counts(m):
    n = m["shards"][0]["n"]; m["counts"]["out"] -= n; m["counts"]["in"] -= n; m["shards"] = m["shards"][1:]


def _copy_unlisted(d: Path) -> str:
    p = d / read_manifest(d)["shards"][0]["path"]; q = p.with_name(p.name.replace("00000", "00009"))
    shutil.copy(p, q); return q.name


def _receipt(d: Path) -> str:
    p = d / "parts" / "part-00001.json"; r = read_json(p); r["shard"]["sha256"] = "0" * 64; write_json(p, r)
    return "parts/part-00001.json"


def _emptied(m):
    m["counts"].update({"in": 0, "out": 0}); m["drops"] = {}; m["shards"] = []


def _stale_card(d: Path) -> str:
    p = d / "README.md"; p.write_text(re.sub(r"sha256 \w+", "sha256 " + "0" * 64, p.read_text())); return "README.md"


def _truncate(d: Path) -> str:
    p = d / read_manifest(d)["shards"][0]["path"]; p.write_bytes(p.read_bytes()[:-20]); return p.name


def _delete(d: Path) -> str:
    p = d / read_manifest(d)["shards"][0]["path"]; p.unlink(); return p.name


def _int_schema(m):
    import pyarrow as pa
    from phi1_nb.shards import schema_to_str
    m["schema"] = schema_to_str(pa.schema([("id", pa.string()), ("content", pa.int64())]))


CASES = {   # name: tamper(folder) -> the file the error must name
    "columns_a_b": lambda d: _swap(d, [{"a": i, "b": "x"} for i in range(N)]),
    "content_renamed": lambda d: _swap(d, [{"id": f"r{i}", "text": "x = 1\n"} for i in range(N)]),
    "content_int": lambda d: _swap(d, [{"id": f"r{i}", "content": i} for i in range(N)]),
    "entry_removed": lambda d: _edit(d, lambda m: m.update(shards=m["shards"][1:])),
    "entry_removed_counts_fixed": lambda d: (_edit(d, _drop_entry_fix_counts),   # its file stays: an unlisted shard
                                             read_manifest(d)["shards"][0]["path"].replace("00001", "00000"))[1],
    "n_changed": lambda d: (_edit(d, lambda m: (m["shards"][0].update(n=N - 2), m["counts"].update(out=2 * N - 2, **{"in": 2 * N - 2}))),
                            read_manifest(d)["shards"][0]["path"])[1],
    "n_changed_counts_kept": lambda d: _edit(d, lambda m: m["shards"][0].update(n=N - 2)),
    "declared_content_int": lambda d: _edit(d, _int_schema),
    "stale_card": _stale_card,
    "truncated": _truncate,
    "deleted": _delete,
    "manifest_not_json": lambda d: ((d / "manifest.json").write_text('{"stage": "x", "shards": ['), "manifest.json")[1],
    # round two: a manifest that disagrees with itself, its folder, its receipts or its stage; ids twice; no records
    "in_not_out_plus_drops": lambda d: _edit(d, lambda m: m["counts"].update({"in": m["counts"]["in"] + 5})),
    "counts_a_list": lambda d: _edit(d, lambda m: m.update(counts=[1, 2])),
    "manifest_a_list": lambda d: ((d / "manifest.json").write_text("[]"), "manifest.json")[1],
    "features_disagree": lambda d: _edit(d, lambda m: m["features"].update(content="int64")),
    "bytes_wrong": lambda d: (_edit(d, lambda m: m["shards"][0].update(bytes=m["shards"][0]["bytes"] + 1)),
                              read_manifest(d)["shards"][0]["path"])[1],
    "unlisted_shard": _copy_unlisted,
    "receipt_disagrees": _receipt,
    "id_twice_across_shards": lambda d: (_swap(d, list(records(range(N, 2 * N)))), read_manifest(d)["shards"][1]["path"])[1],
    "other_stage_name": lambda d: _edit(d, lambda m: m.update(stage="other")),
    "no_records": lambda d: (_edit(d, _emptied), "")[1],
    # (round two ends)
    "manifest_no_shards": lambda d: ((d / "manifest.json").write_text('{"stage": "x"}'), "manifest.json")[1],
}

READERS = {   # stage: (the folder it reads, extra arguments)
    "filter": ("corpus", []),
    "dedup": ("filter", []),
    "decontaminate": ("synth/exercises", []),
    "tokenizer": ("dedup", []),
    "ablation": ("corpus", ["--arms", "raw"]),
}


def error_lines(err: str) -> list[str]:
    "stderr's lines less progress bars."
    return [l for l in re.split(r"[\r\n]", err) if l.strip() and not re.match(r"^\S+:\s+\d+%\|", l)]


ROUND2 = list(CASES)[list(CASES).index("in_not_out_plus_drops"):list(CASES).index("manifest_no_shards")]
UPSTREAM_ONLY = {"other_stage_name", "no_records"}   # checked where a stage names the upstream stage it reads


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stage", list(READERS))
def test_every_tampering_case_stops_every_reader(template, tmp_path, capsys, stage, case):
    fmt, tpl = template
    if case in ROUND2 and stage not in ("dedup", "tokenizer", "ablation"):   # the same central check: two readers suffice
        pytest.skip("round-two cases run against dedup, tokenizer and ablation")
    if case in UPSTREAM_ONLY and stage == "ablation":
        pytest.skip("ablation reads arm folders by path, not an upstream stage by name")
    run = tmp_path / "run"; shutil.copytree(tpl, run)
    src, extra = READERS[stage]
    shutil.rmtree(run / stage, ignore_errors=True)   # the template holds it as another reader's input
    named = CASES[case](run / src)
    rc = main([stage, "--run-dir", str(run), *extra])
    out, err = capsys.readouterr()
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1, (rc, err[-2000:])
    assert lines[0].startswith(f"phi1 {stage}: error: {run / src / named}"), lines[0]
    assert not (run / stage).exists(), sorted(p.name for p in (run / stage).rglob("*"))


def test_the_untampered_run_passes_the_contract_and_loads(template, tmp_path):
    "The control: the same folders, untouched, pass `verify_shards`, and `datasets` loads each through its card."
    import datasets
    fmt, tpl = template
    for stage in ("corpus", "filter", "dedup"):
        m = verify_shards(tpl / stage)
        assert m["counts"]["out"] == 2 * N and m["features"]["content"] == "string"
        ds = datasets.load_dataset(str(tpl / stage), split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == 2 * N and ds.features["content"].dtype == "string"


def test_a_folder_of_kinds_loads_each_kind_by_name(tmp_path):
    "synth/: no shards of its own, one dataset per kind; the card names a config per kind (and not cache/)."
    import datasets
    from phi1_nb.core import write_manifest
    syn = tmp_path / "synth"
    for k, kind in enumerate(("textbooks", "exercises")):
        run_stage(syn / kind, {"part-00000": range(k * 10, k * 10 + 3 + k)}, records, stage=f"synth/{kind}", progress=False)
    (syn / "cache").mkdir(); (syn / "cache" / "completions.jsonl").write_text('{"not": "a record"}\n')
    write_manifest(syn, stage="synth", shards=[], counts={"out": 7})
    for kind, n in (("textbooks", 3), ("exercises", 4)):
        ds = datasets.load_dataset(str(syn), kind, split="train", cache_dir=str(tmp_path / "hf"))
        assert len(ds) == n and set(ds["id"]) == {r["id"] for r in read_json_lines(syn / kind)}


def read_json_lines(d):
    from phi1_nb.core import read_dataset
    return list(read_dataset(d))


# ---------------------------------------------------------------- round three: valid shards, wrong values or wrong stage
def _stage(root: Path, stage: str, recs: list, fmt: str = "jsonl", params: dict | None = None):
    tasks = {"part-00000": recs[: len(recs) // 2], "part-00001": recs[len(recs) // 2:]}
    return run_stage(root / stage, tasks, iter, stage=stage, fmt=fmt, params=params, progress=False)


def _code(i): return f"def f{i}(x):\n    return x + {i}\n"


def make_chain(root: Path, fmt: str) -> Path:
    "corpus -> filter -> dedup as the real writers shape them: filter adds `educational_value`, dedup carries filter's."
    corpus = [{"id": f"r{i}", "content": _code(i), "path": f"f{i}.py", "size": 30, "lines": 2} for i in range(2 * N)]
    _stage(root, "corpus", corpus, fmt)
    filt = [dict(r, educational_value=0.5 + i / 100) for i, r in enumerate(corpus)]
    _stage(root, "filter", filt, fmt)
    _stage(root, "dedup", filt, fmt, params={"input_stage": "filter"})
    return root


def _replace(d: Path, k: int, recs: list):
    "Rewrite shard `k` of `d` with `recs` (same format), and every checksum, count and card that depends on it."
    from phi1_nb.shards import card_fingerprint, dataset_card
    m = read_manifest(d); s = m["shards"][k]
    (d / s["path"]).unlink(); write_shard(d / s["path"], recs)
    s.update(sha256=sha256_file(d / s["path"]), bytes=(d / s["path"]).stat().st_size, n=len(recs))
    m["counts"]["out"] = sum(x["n"] for x in m["shards"]); m["counts"]["in"] = m["counts"]["out"] + sum(m["drops"].values())
    write_json(d / "manifest.json", m)
    for p in (d / "parts").glob("*.json"): p.unlink()
    import pyarrow as pa
    from phi1_nb.shards import schema_from_str
    (d / "README.md").write_text(dataset_card(m["stage"], [x["path"] for x in m["shards"]], schema_from_str(m["schema"]),
                                              m["counts"], card_fingerprint(m["shards"])))
    return s["path"]


def _cli(run: Path, stage: str, capsys, *extra):
    rc = main([stage, "--run-dir", str(run), *extra])
    return rc, error_lines(capsys.readouterr().err)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1.5, -0.01, None])
def test_a_declared_column_out_of_its_range_is_refused(tmp_path, capsys, fmt, value):
    "filter's `educational_value` is a probability: NaN, inf, outside [0, 1] or null in a kept record is not filter output."
    run = make_chain(tmp_path / "run", fmt)
    recs = list(read_shard_all(run / "filter", 0)); recs[1] = dict(recs[1], educational_value=value)
    named = _replace(run / "filter", 0, recs)
    shutil.rmtree(run / "dedup")
    rc, lines = _cli(run, "dedup", capsys)
    assert rc == 2 and len(lines) == 1 and "educational_value" in lines[0], (rc, lines)
    assert lines[0].startswith(f"phi1 dedup: error: {run / 'filter' / named}"), lines[0]
    assert not (run / "dedup").exists()


def read_shard_all(d: Path, k: int):
    from phi1_nb.core import read_shard
    return read_shard(d / read_manifest(d)["shards"][k]["path"])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_a_shard_of_an_earlier_stage_swapped_in_is_refused(tmp_path, capsys, fmt):
    "A corpus shard in dedup's folder, every checksum, count and the card updated: it lacks filter's `educational_value`."
    run = make_chain(tmp_path / "run", fmt)
    named = _replace(run / "dedup", 0, list(read_shard_all(run / "corpus", 0)))
    rc, lines = _cli(run, "tokenizer", capsys)
    assert rc == 2 and len(lines) == 1 and "educational_value" in lines[0], (rc, lines)
    assert lines[0].startswith(f"phi1 tokenizer: error: {run / 'dedup' / named}"), lines[0]
    assert not (run / "tokenizer").exists()


@pytest.mark.parametrize("blank", ["", "   \n\t"])
def test_a_stage_whose_every_content_is_blank_is_refused(tmp_path, capsys, blank):
    "One blank `content` is the reader's counted drop; a stage where every record is blank holds no data."
    run = make_chain(tmp_path / "run", "jsonl")
    for k in (0, 1): _replace(run / "dedup", k, [dict(r, content=blank) for r in read_shard_all(run / "dedup", k)])
    rc, lines = _cli(run, "tokenizer", capsys)
    assert rc == 2 and len(lines) == 1 and "blank" in lines[0], (rc, lines)
    assert lines[0].startswith(f"phi1 tokenizer: error: {run / 'dedup'}"), lines[0]


def test_decontaminate_refuses_whole_code_files_before_any_work(tmp_path, capsys):
    "decontaminate compares one exercise with one benchmark function: dedup of filter (whole files) is refused in one line."
    run = make_chain(tmp_path / "run", "jsonl")
    rc, lines = _cli(run, "decontaminate", capsys, "--input_stage", "dedup")
    assert rc == 2 and len(lines) == 1, (rc, lines)
    assert lines[0].startswith(f"phi1 decontaminate: error: {run / 'dedup'}: holds filter records (through dedup)"), lines[0]
    assert "--input_stage synth/exercises" in lines[0] and not (run / "decontaminate").exists()


def test_decontaminate_reads_dedup_of_exercises(tmp_path, capsys):
    "The same flag on a dedup that ran over synth/exercises: exercises, so decontaminated (a HumanEval solution goes)."
    from phi1_nb.decontaminate import load_benchmark
    run = tmp_path / "run"
    ex = [{"id": f"e{i}", "content": _code(i), "prompt": f"def f{i}(x):\n", "solution": f"    return x + {i}\n"} for i in range(2 * N)]
    ex[0] = dict(ex[0], content=load_benchmark("humaneval")[3]["code"])
    _stage(run, "synth/exercises", ex); _stage(run, "dedup", ex, params={"input_stage": "synth/exercises"})
    rc, lines = _cli(run, "decontaminate", capsys, "--input_stage", "dedup")
    assert rc == 0, lines
    m = read_manifest(run / "decontaminate")
    assert m["drops"].get("contaminated") == 1 and m["counts"]["out"] == 2 * N - 1, m["drops"]



def test_a_forged_input_stage_does_not_free_a_score(tmp_path, capsys):
    "dedup's params.input_stage edited to 'corpus' (which requires no score): a NaN `educational_value` is still refused."
    run = make_chain(tmp_path / "run", "jsonl")
    recs = list(read_shard_all(run / "dedup", 0)); recs[0] = dict(recs[0], educational_value=float("nan"))
    named = _replace(run / "dedup", 0, recs)
    _edit(run / "dedup", lambda m: m["params"].update(input_stage="corpus"))
    rc, lines = _cli(run, "tokenizer", capsys)
    assert rc == 2 and len(lines) == 1 and "'educational_value' is nan" in lines[0], (rc, lines)
    assert lines[0].startswith(f"phi1 tokenizer: error: {run / 'dedup' / named}"), lines[0]


def test_a_stage_folder_holding_another_stages_manifest_is_refused_on_every_read(tmp_path):
    "dedup/ whose manifest says 'corpus' (a corpus shard swapped in, its stage renamed to match): read_dataset refuses it too."
    from phi1_nb.core import ShardError, read_dataset
    run = make_chain(tmp_path / "run", "jsonl")
    _replace(run / "dedup", 0, list(read_shard_all(run / "corpus", 0)))
    _edit(run / "dedup", lambda m: m.update(stage="corpus"))
    with pytest.raises(ShardError, match=r"dedup/manifest.json: written by the 'corpus' stage, in the 'dedup' folder"):
        next(read_dataset(run / "dedup"))

# ---------------------------------------------------------------- the contract against a model of it, on any records
from hypothesis import HealthCheck, assume, given, settings, strategies as hst

_SCORE = hst.one_of(hst.floats(allow_nan=True, allow_infinity=True), hst.integers(-2, 2), hst.none(), hst.just("high"),
                    hst.booleans())
_FILTER_REC = hst.fixed_dictionaries(
    {"content": hst.one_of(hst.none(), hst.sampled_from(["", " \n", "x = 1\n", "def f(): pass\n"]))},
    optional={"educational_value": _SCORE, "size": hst.one_of(hst.none(), hst.integers(-3, 50)),
              "path": hst.one_of(hst.none(), hst.text(max_size=3)), "extra": hst.integers(0, 3)})


def _model_accepts(recs, k) -> bool:
    "The contract restated independently: what a filter folder of `k` shards may hold."
    def score_ok(v): return type(v) in (int, float) and v == v and 0 <= v <= 1   # (NaN != NaN; inf > 1)
    return (all(score_ok(r.get("educational_value")) and (r.get("size") is None or r["size"] >= 0) for r in recs)
            and any(isinstance(r["content"], str) and r["content"].strip() for r in recs)
            and all(any(r["content"] is not None for r in recs[t::k]) for t in range(k) if recs[t::k]))   # (a renamed column)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=hst.lists(_FILTER_REC, min_size=1, max_size=8), fmt=hst.sampled_from(["jsonl", "parquet"]),
       k=hst.integers(1, 3))
def test_a_filter_folder_is_accepted_exactly_when_the_model_says(tmp_path_factory, recs, fmt, k):
    from phi1_nb.core import ShardError, write_manifest
    from phi1_nb.shards import SchemaError as WriteError
    recs = [dict(r, id=f"r{i}") for i, r in enumerate(recs)]
    d = tmp_path_factory.mktemp("f") / "filter"
    try: shards = [write_shard(d / f"part-{t}.{fmt}", recs[t::k]) for t in range(k) if recs[t::k]]
    except WriteError: assume(False)   # (Parquet cannot hold a str and a float in one column: not a folder anyone reads)
    try: write_manifest(d, stage="filter", shards=shards)
    except WriteError: assume(False)
    try: verify_shards(d); accepted = True
    except ShardError as e: accepted = False; assert "\n" not in str(e) and str(e).startswith(str(d)), e
    assert accepted == _model_accepts(recs, k), (accepted, recs)


def test_the_readme_table_lists_every_declared_column():
    "One place: `contract.COLUMNS`; the README (from nbs/index.ipynb) shows it, and must not drift from it."
    from phi1_nb.contract import COLUMNS
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    rows = {l.split("|")[1].strip(): l for l in readme.splitlines() if l.startswith("| `")}
    for stage, cols in COLUMNS.items():
        row = next(l for k, l in rows.items() if f"`{stage}`" in k)
        assert all(f"`{c}`" in row or stage == "filter" for c in cols), (stage, row)
        required = row.split("|")[2]
        assert all(f"`{c}`" in required for c, spec in cols.items() if spec[1] and stage != "filter"), (stage, required)
    assert "`educational_value` (a finite float in [0, 1])" in rows["`filter`"]
