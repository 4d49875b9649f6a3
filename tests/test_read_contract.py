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
    for stage in ("corpus", "filter", "dedup"):
        run_stage(root / stage, tasks, records, stage=stage, fmt=fmt, progress=False)
    return root


@pytest.fixture(scope="module", params=["parquet", "jsonl.zst"])
def template(request, tmp_path_factory):
    return request.param, make_run(tmp_path_factory.mktemp(f"tpl-{request.param.replace('.', '')}"), request.param)


def _swap(d: Path, recs: list):
    "Replace shard 0 by a valid shard of the same format holding `recs`, and update its sha256 in the manifest."
    m = read_manifest(d); s = m["shards"][0]
    (d / s["path"]).unlink(); write_shard(d / s["path"], recs)
    s["sha256"] = sha256_file(d / s["path"]); write_json(d / "manifest.json", m)
    return s["path"]


def _edit(d: Path, f) -> str:
    m = read_manifest(d); f(m); write_json(d / "manifest.json", m); return "manifest.json"


def _drop_entry_fix_counts(m):
    m["counts"]["out"] -= m["shards"][0]["n"]; m["shards"] = m["shards"][1:]


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
    "entry_removed_counts_fixed": lambda d: (_edit(d, _drop_entry_fix_counts), "README.md")[1],
    "n_changed": lambda d: (_edit(d, lambda m: (m["shards"][0].update(n=N - 2), m["counts"].update(out=2 * N - 2))),
                            read_manifest(d)["shards"][0]["path"])[1],
    "n_changed_counts_kept": lambda d: _edit(d, lambda m: m["shards"][0].update(n=N - 2)),
    "declared_content_int": lambda d: _edit(d, _int_schema),
    "stale_card": _stale_card,
    "truncated": _truncate,
    "deleted": _delete,
    "manifest_not_json": lambda d: ((d / "manifest.json").write_text('{"stage": "x", "shards": ['), "manifest.json")[1],
    "manifest_no_shards": lambda d: ((d / "manifest.json").write_text('{"stage": "x"}'), "manifest.json")[1],
}

READERS = {   # stage: (the folder it reads, extra arguments)
    "filter": ("corpus", []),
    "dedup": ("filter", []),
    "decontaminate": ("dedup", ["--input_stage", "dedup"]),
    "tokenizer": ("dedup", []),
    "ablation": ("corpus", ["--arms", "raw"]),
}


def error_lines(err: str) -> list[str]:
    "stderr's lines less progress bars."
    return [l for l in re.split(r"[\r\n]", err) if l.strip() and not re.match(r"^\S+:\s+\d+%\|", l)]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stage", list(READERS))
def test_every_tampering_case_stops_every_reader(template, tmp_path, capsys, stage, case):
    fmt, tpl = template
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
