"The corpus stage's input guards (issue 28, a28g): overlap refused, other files counted, stamps, bounded reads."
import gzip, io, json, os, tarfile, time, tracemalloc
from pathlib import Path

import pytest, zstandard

from phi1_nb import corpus_input
from phi1_nb.corpus import run_corpus
from phi1_nb.corpus_input import read_regular
from phi1_nb.shards import ShardError, read_shard, write_shard


def rec(i, k=0): return {"id": f"r{k}-{i}", "content": f"def f_{k}_{i}():\n    return {i}\n", "path": f"p{k}_{i}.py"}

def run(rd, src, **kw):
    return run_corpus(rd, str(src), kw.pop("format", "stack"), None, workers=1, progress=False, **kw)

def shas(m): return [s["sha256"] for s in m["shards"]]


def test_own_output_refused_before_anything_is_deleted(tmp_path):
    src = tmp_path/"src"; write_shard(src/"a.jsonl", [rec(i) for i in range(5)])
    m = run(tmp_path/"run", src); before = {p: p.read_bytes() for p in (tmp_path/"run"/"corpus").rglob("*.zst")}
    with pytest.raises(ValueError, match="overlap"): run(tmp_path/"run", tmp_path/"run"/"corpus")
    assert {p: p.read_bytes() for p in (tmp_path/"run"/"corpus").rglob("*.zst")} == before and m["counts"]["out"] == 5
    with pytest.raises(ValueError, match="overlap"): run(src/"run", src)   # a run folder inside the source
    os.symlink(tmp_path/"run", tmp_path/"alias")                          # through a link: the same folder
    with pytest.raises(ValueError, match="overlap"): run(tmp_path/"run", tmp_path/"alias"/"corpus")
    assert not (src/"run"/"corpus").exists()
    (tmp_path/"other").mkdir()
    os.symlink(next((tmp_path/"run"/"corpus").glob("*.zst")), tmp_path/"other"/"a.jsonl.zst")
    with pytest.raises(ValueError, match="overlap"): run(tmp_path/"run", tmp_path/"other")   # a link to its output
    assert {p: p.read_bytes() for p in (tmp_path/"run"/"corpus").rglob("*.zst")} == before


def test_other_formats_read_or_counted(tmp_path, capsys):
    src = tmp_path/"src"; write_shard(src/"a.jsonl", [rec(i, 0) for i in range(5)])
    with gzip.open(src/"b.jsonl.gz", "wt") as f: f.write("".join(json.dumps(rec(i, 1)) + "\n" for i in range(5)))
    (src/"c.json").write_text("".join(json.dumps(rec(i, 2)) + "\n" for i in range(5)))   # the-stack-smol's JSON Lines
    with tarfile.open(src/"d.tar.gz", "w:gz") as t:
        data = json.dumps(rec(0, 3)).encode(); ti = tarfile.TarInfo("in.jsonl"); ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    (src/"notes.txt").write_text("hi")
    m = run(tmp_path/"run", src)
    assert (m["counts"]["out"], m["drops"]) == (15, {"not_a_shard": 2})
    err = capsys.readouterr().err
    assert "2 file(s)" in err and "not_a_shard" in err and len(err.strip().splitlines()) == 1


def _edit_keeping_size_and_mtime(f, old, new):
    st = os.stat(f); time.sleep(0.05)   # (past the ctime's clock tick)
    data = f.read_bytes(); assert len(old) == len(new) and old in data
    f.write_bytes(data.replace(old, new, 1)); os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("fmt", ["tree", "stack"])
def test_same_size_same_mtime_edit_is_seen(tmp_path, fmt):
    src = tmp_path/"src"
    if fmt == "tree":
        src.mkdir(); f = src/"m.py"
        for i in range(3): (src/f"m{i}.py").write_text(f"def g():\n    return {i}\n")
        f.write_text("def g():\n    return 7\n")
    else: f = src/"a.jsonl"; write_shard(f, [rec(i) for i in range(3)])
    first = run(tmp_path/"run", src, format=fmt)
    _edit_keeping_size_and_mtime(f, b"return", b"yield ")
    again, fresh = run(tmp_path/"run", src, format=fmt), run(tmp_path/"fresh", src, format=fmt)
    assert shas(again) == shas(fresh) != shas(first)


def test_a_file_written_while_read_is_read_again(tmp_path, monkeypatch):
    f = tmp_path/"m.py"; f.write_text("x = 1\n"); opened = os.fdopen
    def fdopen(fd, *a):   # the file grows just as the first read ends: a stale read, noticed and redone
        fo = opened(fd, *a); read = fo.read
        def grows(n=-1):
            data = read(n)
            if not grows.done: grows.done = True; time.sleep(0.05); f.open("a").write("y = 2\n")
            return data
        grows.done = False; fo.read = grows; return fo
    monkeypatch.setattr(corpus_input.os, "fdopen", fdopen)
    assert read_regular(f, 1000) == b"x = 1\ny = 2\n"


def test_a_shard_written_while_read_fails_the_run(tmp_path):
    src = tmp_path/"src"; write_shard(src/"a.jsonl", [rec(i) for i in range(3)])
    from phi1_nb.corpus import _shard_reader
    it = _shard_reader(src, "stack", 1000, False)((src/"a.jsonl", None, []))
    next(it); time.sleep(0.05); (src/"a.jsonl").open("a").write(json.dumps(rec(9)) + "\n")
    with pytest.raises(ShardError, match="changed while being read"): list(it)


def test_empty_shards_without_a_limit_say_0_records(tmp_path):
    write_shard(tmp_path/"src"/"a.jsonl", []); write_shard(tmp_path/"src"/"b.jsonl", [])
    with pytest.raises(FileNotFoundError, match="0 records in"): run(tmp_path/"run", tmp_path/"src")


def _peak(fn) -> int:
    tracemalloc.start()
    try: fn(); return tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()


def test_a_compressed_line_bomb_is_never_held(tmp_path):
    line = b'{"content": "' + b"a" * 40_000_000 + b'"}\n'
    data = zstandard.ZstdCompressor().compress(json.dumps(rec(0)).encode() + b"\n" + line)
    (tmp_path/"a.jsonl.zst").write_bytes(data)
    del line
    got = []
    peak = _peak(lambda: got.extend(corpus_input.read_input(tmp_path/"a.jsonl.zst", 1000)))
    assert peak < 20_000_000   # a 40 MB line
    assert got == [rec(0), None]                                                              # a too_large drop


def test_writing_a_shard_holds_a_bounded_group(tmp_path):
    big = lambda n: ({"id": str(i), "content": f"{i:04d}" * 1000} for i in range(n))   # 4 KB records
    one, four = (_peak(lambda: write_shard(tmp_path/f"{n}.jsonl.zst", big(n))) for n in (1000, 4000))
    assert (four - one) / 3000 < 1000   # bytes a record more: the 2,000-row batches held 8 MB and more
    assert sum(1 for _ in read_shard(tmp_path/"4000.jsonl.zst")) == 4000


def test_a_nested_lone_surrogate_is_every_stages_counted_drop(tmp_path):
    "core's check looked at top-level strings only: a surrogate in a list or an object's name crashed the writer."
    from phi1_nb.core import run_task
    bad = json.loads('"o\\ud800"')
    rows = [{"id": "a", "content": "x"}, {"id": "b", "content": "y", "meta": {"k": [bad]}},
            {"id": "c", "content": "z", "meta": {bad: 1}}]
    r = run_task(tmp_path, "t", None, lambda _: iter(rows), "jsonl", keep_dropped=True)
    assert r["shard"]["n"] == 1 and r["drops"] == {"invalid_utf8": 2}
    kept = list(read_shard(tmp_path/"dropped"/"t.jsonl"))   # the dropped rows, escaped so that a file holds them
    assert [x["meta"] for x in kept] == [{"k": ["o\\ud800"]}, {"o\\ud800": 1}]
