"""The corpus stage's input guarantees: only regular files, read up to a bound; one record per id whatever the worker
count; ids of one kind; a rerun with other parameters rewrites; a name that is not UTF-8 kept (a28e's findings)."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

from phi1_nb.core import read_dataset, read_shard
from phi1_nb.corpus import run_corpus

ROOT = Path(__file__).parents[1]


def _tree(d: Path, n: int = 6) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n): (d / f"ok{i}.py").write_text(f"a{i} = {i}\n")
    return d


def test_fifo_and_dev_zero_are_counted_skips(tmp_path):
    "A FIFO named .py hung every worker count; a link to /dev/zero read until MemoryError. Now: counted skips."
    src = _tree(tmp_path / "src")
    os.mkfifo(src / "fifo.py"); os.symlink("/dev/zero", src / "zero.py")
    code = textwrap.dedent(f"""
        import json, resource
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))   # a read of /dev/zero fails, not the machine
        from phi1_nb.corpus import run_corpus
        m = run_corpus({str(tmp_path / 'run')!r}, source={str(src)!r}, files_per_shard=3, workers=1, progress=False)
        print(json.dumps([m["counts"], m["drops"]]))""")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-600:]
    counts, drops = json.loads(p.stdout.splitlines()[-1])
    assert counts == {"in": 8, "out": 6} and drops == {"not_regular": 2}


def _rec(i, **kw):
    return {"id": f"r{i}", "content": f"def g{i}():\n    return {i}\n", "max_stars_repo_path": f"p/x{i}.py",
            "max_stars_repo_name": "o/r", **kw}


def _jsonl(p: Path, rows):
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _stack_source(d: Path) -> Path:
    d.mkdir()
    _jsonl(d / "a.jsonl", [_rec(i) for i in range(8)] + [_rec(3)])            # r3 twice in one shard
    _jsonl(d / "b.jsonl", [_rec(i) for i in range(6, 12)])                     # r6, r7 again, in another
    _jsonl(d / "c.jsonl", [_rec(i, id=i) for i in range(3)] + [_rec(9, id="1")] + [_rec(5, id={"a": 1})])
    no_id = [{k: v for k, v in _rec(i).items() if k != "id"} for i in range(20, 23)]
    _jsonl(d / "d.jsonl", no_id + no_id[:2])                                   # derived ids that repeat
    _jsonl(d / "e.jsonl", [{"content": "x = 1\n"}, {"content": "y = 2\n"}])    # no id, no path: none repeats
    _jsonl(d / "f.jsonl", [{"content": "z = 3\n"}])
    os.symlink("a.jsonl", d / "z_alias.jsonl")                                 # the same shard through a link
    return d


def test_repeated_ids_dropped_and_counted_for_any_worker_count(tmp_path):
    src = _stack_source(tmp_path / "src")
    ms = {w: run_corpus(tmp_path / f"w{w}", str(src), "stack", None, files_per_shard=4, shard_format="jsonl",
                        workers=w, progress=False) for w in (1, 2)}
    for w, m in ms.items():
        ids = [r["id"] for r in read_dataset(tmp_path / f"w{w}" / "corpus")]
        assert len(ids) == len(set(ids)) and all(type(i) is str for i in ids)
        assert m["drops"] == {"bad_id": 1, "duplicate_id": 6, "same_file": 1}, m["drops"]
        assert m["counts"] == {"in": 29, "out": 9 + 6 + 5 + 5 + 2 + 1 - 1 - 6}
        assert ids[:12] == [f"r{i}" for i in range(12)] and "1" in ids and "0" in ids
    snap = lambda w: [(p.name, p.read_bytes()) for p in sorted((tmp_path / f"w{w}" / "corpus").glob("part-*"))]
    assert snap(1) == snap(2)   # byte-identical shards: which copy stays does not depend on the scheduling
    m = run_corpus(tmp_path / "w1", str(src), "stack", None, files_per_shard=4, shard_format="jsonl", workers=2,
                   progress=False)   # a rerun resumes every task and drops nothing twice
    assert m["resumed_tasks"] == len(m["shards"]) and m["drops"] == ms[1]["drops"] and snap(1) == snap(2)


def test_a_repeat_in_a_parquet_shard(tmp_path):
    src = tmp_path / "src"; src.mkdir()
    _jsonl(src / "a.jsonl", [_rec(0), _rec(1)]); _jsonl(src / "b.jsonl", [_rec(1), _rec(2, extra=[1, 2])])
    m = run_corpus(tmp_path / "run", str(src), "stack", None, shard_format="parquet", workers=1, progress=False)
    assert m["drops"] == {"duplicate_id": 1}
    assert [r["id"] for r in read_dataset(tmp_path / "run" / "corpus")] == ["r0", "r1", "r2"]


def test_rerun_with_a_smaller_limit_rewrites(tmp_path):
    "60 records stayed when a rerun into the same folder asked for 5."
    src = _tree(tmp_path / "src", 60)
    run_corpus(tmp_path / "run", str(src), limit=None, files_per_shard=500, shard_format="jsonl", progress=False)
    m = run_corpus(tmp_path / "run", str(src), limit=5, files_per_shard=500, shard_format="jsonl", progress=False)
    fresh = run_corpus(tmp_path / "fresh", str(src), limit=5, files_per_shard=500, shard_format="jsonl",
                       progress=False)
    assert m["counts"] == fresh["counts"] == {"in": 5, "out": 5}
    shard = lambda d: (tmp_path / d / "corpus" / "part-00000.jsonl").read_bytes()
    assert shard("run") == shard("fresh")
    m = run_corpus(tmp_path / "run", str(src), limit=5, files_per_shard=500, shard_format="jsonl", workers=2,
                   progress=False)
    assert m["resumed_tasks"] == 1   # another worker count shapes no shard: the finished task is reused


def test_a_name_that_is_not_utf8_is_kept(tmp_path):
    "The stage stopped with \"'utf-8' codec can't encode character '\\udce9'\", naming no file."
    src = _tree(tmp_path / "src", 2)
    with open(os.path.join(bytes(src), b"caf\xe9.py"), "wb") as f: f.write(b"z = 1\n")
    os.makedirs(os.path.join(bytes(src), b"d\xff"))
    with open(os.path.join(bytes(src), b"d\xff", b"in.py"), "wb") as f: f.write(b"w = 2\n")
    m = run_corpus(tmp_path / "run", str(src), shard_format="jsonl", progress=False)
    paths = sorted(r["path"] for r in read_dataset(tmp_path / "run" / "corpus"))
    assert m["counts"]["out"] == 4 and paths == ["caf\\xe9.py", "d\\xff/in.py", "ok0.py", "ok1.py"]


def test_a_lone_surrogate_in_another_field_is_a_counted_skip(tmp_path):
    "A row whose repository name holds a lone surrogate stopped the stage (no UTF-8 file can hold it)."
    src = tmp_path / "src"; src.mkdir()
    _jsonl(src / "a.jsonl", [_rec(0), _rec(1, max_stars_repo_name="o/\ud800")])
    m = run_corpus(tmp_path / "run", str(src), "stack", None, shard_format="jsonl", workers=1, progress=False)
    assert m["counts"] == {"in": 2, "out": 1} and m["drops"] == {"invalid_utf8": 1}   # the one check of every stage


def test_hashes_that_collide_keep_distinct_ids(tmp_path, monkeypatch):
    "Only equal ids are repeats: with every hash equal, each record is compared by its id and none is lost."
    import phi1_nb.corpus_input as ci
    src = _stack_source(tmp_path / "src")
    want = run_corpus(tmp_path / "a", str(src), "stack", None, files_per_shard=4, shard_format="jsonl", workers=1,
                      progress=False)
    monkeypatch.setattr(ci, "id_hash", lambda x: 0)
    got = run_corpus(tmp_path / "b", str(src), "stack", None, files_per_shard=4, shard_format="jsonl", workers=1,
                     progress=False)
    sha = lambda m: [s["sha256"] for s in m["shards"]]
    assert got["drops"] == want["drops"] and sha(got) == sha(want)


def test_a_crash_between_a_shard_and_its_receipt_then_a_rerun(tmp_path, monkeypatch):
    "Killed after a shard lost its repeats but before its receipt, or with its hashes gone: the rerun is the same."
    import pytest
    import phi1_nb.corpus_input as ci
    from phi1_nb.shards import write_shard
    src = _stack_source(tmp_path / "src")
    go = lambda d: run_corpus(tmp_path / d, str(src), "stack", None, files_per_shard=4, shard_format="jsonl",
                              workers=1, progress=False)
    want = go("clean")
    def crash(out, r, repeats, h):
        path = out / r["shard"]["path"]
        write_shard(path, [x for j, x in enumerate(read_shard(path)) if j not in set(repeats)])
        raise KeyboardInterrupt
    with monkeypatch.context() as mp:
        mp.setattr(ci, "_without", crash)
        with pytest.raises(KeyboardInterrupt): go("run")
    ids = tmp_path / "run/corpus/ids"
    (ids / "part-00001.u64").unlink(); (ids / "part-00003.u64").write_bytes(b"junk")
    got = go("run")
    snap = lambda d: [(p.name, p.read_bytes()) for p in sorted((tmp_path / d / "corpus").glob("part-*"))]
    assert got["drops"] == want["drops"] and snap("run") == snap("clean")


def _first_occurrences(shards: list) -> list:
    "Each shard's records whose id no earlier record (in task order, then row order) holds."
    seen, out = set(), []
    for ids in shards:
        out.append([x for x in ids if not (x in seen or seen.add(x))])
    return out


WEAK = {"blake2b": None, "one": lambda x: 0, "two": lambda x: len(str(x)) % 2}   # weak: collisions on purpose

from hypothesis import given, settings, strategies as st   # noqa: E402


@settings(max_examples=80, deadline=None)
@given(shards=st.lists(st.lists(st.sampled_from(["a", "b", "c", "1", "10", "abc"]), max_size=8), min_size=1,
                       max_size=5),
       weak=st.sampled_from(list(WEAK)), buffer=st.sampled_from([1, 4, 1 << 17]))
def test_drop_repeats_keeps_each_first_occurrence(shards, weak, buffer):
    """Any ids repeated within and across shards, any hash (one for all included), hashes in memory or in runs on disk:
    the kept records are the first occurrence of each id in task order, and each shard counts what it dropped."""
    import tempfile
    import phi1_nb.corpus_input as ci
    from phi1_nb.contract import SeenIds
    from phi1_nb.core import run_task
    old = ci.id_hash, SeenIds.buffer, SeenIds.step
    ci.id_hash, SeenIds.buffer, SeenIds.step = WEAK[weak] or old[0], buffer, 3
    try:
        with tempfile.TemporaryDirectory() as t:
            o, items = Path(t), [(f"part-{k:05d}", ids) for k, ids in enumerate(shards)]
            proc = lambda ids: ({"id": i, "content": "x"} for i in ids)
            rs = ci.unique_ids(lambda fn, it: [fn(x) for x in it], o)(
                lambda item: run_task(o, *item, ci.noting_ids(proc), "jsonl"), items)
            kept = [[x["id"] for x in read_shard(o / r["shard"]["path"])] for r in rs]
            assert not list((o / "ids").glob("seen-ids-*"))   # the runs are gone with the check
    finally: ci.id_hash, SeenIds.buffer, SeenIds.step = old
    want = _first_occurrences(shards)
    assert kept == want
    assert [r["drops"].get("duplicate_id", 0) for r in rs] == [len(a) - len(b) for a, b in zip(shards, want)]


def test_a_killed_runs_id_folder_is_gone_on_resume(tmp_path):
    "A run killed while its id runs were on disk leaves a `seen-ids-*` folder in `ids/`: the next check removes it."
    import phi1_nb.corpus_input as ci
    from phi1_nb.core import run_task
    stale = tmp_path / "ids" / "seen-ids-killed"
    stale.mkdir(parents=True); (stale / "1.i8").write_bytes(b"\0" * 64)
    proc = lambda ids: ({"id": i, "content": "x"} for i in ids)
    rs = ci.unique_ids(lambda fn, it: [fn(x) for x in it], tmp_path)(
        lambda item: run_task(tmp_path, *item, ci.noting_ids(proc), "jsonl"), [("part-00000", ["a", "b", "a"])])
    assert [x["id"] for x in read_shard(tmp_path / rs[0]["shard"]["path"])] == ["a", "b"]
    assert not list((tmp_path / "ids").glob("seen-ids-*"))
