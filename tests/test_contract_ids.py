"The read contract's duplicate-id check (`contract.SeenIds`, 8-byte hashes) against the set of ids it replaced."
import json, tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from phi1_nb.contract import SeenIds, verify_shards
from phi1_nb.core import write_manifest
from phi1_nb.shards import SchemaError, write_shard

WEAK = {None: None, "one": lambda k: 7, "three": lambda k: hash(k) % 3}   # weak hashes: collisions on purpose


def old_first_repeat(shards:list, names:list):
    "The error of the set-based check that `SeenIds` replaced (a shard told by its place in the manifest), or None."
    seen = {}
    for s, ids in enumerate(shards):
        for i, x in enumerate(ids):
            if x is None: continue
            k = x if type(x) is str else ("", json.dumps(x, sort_keys=True, default=str))
            if (was := seen.setdefault(k, (s, i + 1))) != (s, i + 1):
                return f"record {i + 1} repeats id {x!r} of record {was[1]} in {names[was[0]]}"
    return None


@pytest.fixture
def weak_hash(monkeypatch):
    def use(name): monkeypatch.setattr(SeenIds, "hash", staticmethod(WEAK[name] or hash))
    return use


ID = st.one_of(st.none(), st.sampled_from(["a", "b", "1", "true", "1.0"]), st.integers(0, 2), st.booleans(),
               st.sampled_from([1.0, 0.0, 2.5]))


@settings(max_examples=300, deadline=None)
@given(shards=st.lists(st.lists(ID, max_size=9), min_size=1, max_size=4), size=st.integers(1, 5),
       weak=st.sampled_from(list(WEAK)), buffer=st.sampled_from([1, 3, SeenIds.buffer]))
def test_seen_ids_is_the_set_of_ids(shards, size, weak, buffer):
    """Any ids, in batches of any size, any hash (one for all ids included), held in memory or in runs on disk from the
    first hash: the same first repeat as a set of ids."""
    SeenIds.hash = staticmethod(WEAK[weak] or hash)
    try:
        with tempfile.TemporaryDirectory() as d, SeenIds(d) as seen:
            names, got, seen.buffer, seen.step = [f"s{k}.jsonl" for k in range(len(shards))], None, buffer, 2
            try:
                for name, ids in zip(names, shards):   # the shard on disk: read again when a hash was noted twice
                    (Path(d)/name).write_text("".join(json.dumps({"id": x}) + "\n" for x in ids))
                    for n0 in range(0, len(ids), size):
                        seen.add(ids[n0:n0 + size], Path(d)/name, ["id"], n0, ValueError)
                seen.refuse()
            except ValueError as e: got = str(e)
    finally: SeenIds.hash = staticmethod(hash)
    assert got == old_first_repeat(shards, names)
    assert seen.rereads <= 1   # the shards are read again once at most, whatever the hash


def stage(d:Path, shards:list, fmt:str="jsonl", listed=None) -> Path:
    "A `corpus` stage of `shards` (lists of ids) in `d/corpus`; `listed`: the manifest's shard order (indices)."
    d = d/"corpus"; d.mkdir(parents=True)
    info = [write_shard(d/f"part-{k}.{fmt}", [{"id": x, "content": "x = 1"} for x in ids]) for k, ids in enumerate(shards)]
    write_manifest(d, stage="corpus", shards=[info[k] for k in (listed or range(len(shards)))])
    return d


def refusal(d:Path):
    try: verify_shards(d)
    except SchemaError as e: return str(e)
    return None


@settings(max_examples=60, deadline=None)
@given(shards=st.lists(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6), min_size=1, max_size=3),
       weak=st.sampled_from(list(WEAK)), fmt=st.sampled_from(["jsonl", "parquet"]))
def test_verify_shards_refuses_the_first_repeat(shards, weak, fmt):
    "The read contract names the same records as the set of ids did, in the same one-line error."
    SeenIds.hash = staticmethod(WEAK[weak] or hash)
    try:
        with tempfile.TemporaryDirectory() as t:
            d = stage(Path(t), shards, fmt); names = [f"part-{k}.{fmt}" for k in range(len(shards))]
            want = old_first_repeat(shards, names)
            k = None if want is None else next(k for k in range(len(shards)) if old_first_repeat(shards[:k + 1], names))
            assert refusal(d) == (None if want is None else
                                  f"{d/names[k]}: {want}; rerun the 'corpus' stage to rewrite it")
    finally: SeenIds.hash = staticmethod(hash)


@pytest.mark.parametrize("weak", list(WEAK))
def test_repeats_across_batches_and_shards(tmp_path, weak_hash, weak):
    "Shards of 2,500 records (batches of 2,000): a repeat found past a batch and a shard boundary, any hash."
    weak_hash(weak)
    a, b = [f"r{i}" for i in range(2500)], [f"s{i}" for i in range(2500)]
    assert refusal(stage(tmp_path/"ok", [a, b])) is None
    b[2300] = "r2100"                                     # shard 2, batch 2 repeats shard 1, batch 2
    d = stage(tmp_path/"bad", [a, b], "parquet")
    assert refusal(d) == f"{d}/part-1.parquet: record 2301 repeats id 'r2100' of record 2101 in part-0.parquet; " \
                         "rerun the 'corpus' stage to rewrite it"


def test_a_shard_listed_twice_repeats_its_ids(tmp_path):
    "A manifest that lists one shard twice gives each record twice: refused (the set of ids keyed by path let it pass)."
    d = stage(tmp_path, [["a", "b"]], listed=[0, 0])
    assert refusal(d) == f"{d}/part-0.jsonl: record 1 repeats id 'a' of record 1 in part-0.jsonl; " \
                         "rerun the 'corpus' stage to rewrite it"



def test_the_first_fault_is_told(tmp_path):
    "The ids are looked up at the end, yet a repeat before a later fault is the error told, and a fault before it is."
    from phi1_nb.shards import ShardError
    def told(d):
        try: verify_shards(d)
        except ShardError as e: return str(e)
    d = stage(tmp_path, [["a", "b"], ["c", "a"], ["e"]])
    with open(d/"part-2.jsonl", "a") as f: f.write("\n")   # changed after it was written
    assert told(d) == f"{d}/part-1.jsonl: record 2 repeats id 'a' of record 1 in part-0.jsonl; " \
                      "rerun the 'corpus' stage to rewrite it"
    with open(d/"part-0.jsonl", "a") as f: f.write("\n")
    assert told(d).startswith(f"{d}/part-0.jsonl: ") and "repeats" not in told(d)


@pytest.mark.parametrize("use", ["contract", "corpus"])
def test_id_check_rss_per_id_is_flat(tmp_path, use):
    """The repeated-id check of 400,000 and 1,600,000 ids, in a child (`scripts/bench_ids.py`): its peak RSS (`VmHWM`)
    grows < 2 bytes an id. Measured (2026-12-07, load 7-8): 0.03-0.22 bytes an id; before, with the hashes in memory,
    16.3-17.2 (`contract`: sorted runs, 16 bytes while two merged) and 8.4-9.1 (`corpus`: one sorted array)."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]/"scripts"))
    from bench_ids import measure
    root = Path(__file__).resolve().parents[1]
    rss = {n: measure(use, n, root, tmp_path)[0] for n in (400_000, 1_600_000)}
    per = (rss[1_600_000] - rss[400_000]) * 1024 / 1_200_000
    assert per < 2, f"peak RSS grew {per:.2f} bytes an id ({rss} KB)"
