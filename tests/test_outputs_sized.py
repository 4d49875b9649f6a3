"Issue 28 item 4: outputs sized to their use (decontamination's hits, the embedding cache)."
import json, random
from collections import Counter
from pathlib import Path

import numpy as np

from phi1_nb.core import write_manifest, write_shard
from phi1_nb.decontaminate import load_benchmark, run_decontaminate
from phi1_nb.embed import EmbeddingCache, _caches, embed_cached, get_embedder

HE = load_benchmark("humaneval")


def nest(code, depth):
    "`code` inside `depth` nested helper functions: each enclosing function is a unit that holds the copy again."
    return "\n".join([" " * k + f"def w{k}():" for k in range(depth)] + [" " * depth + l for l in code.splitlines()]) + "\n"


def test_decontaminate_hits_once_per_record_and_problem_with_nested_units(tmp_path):
    "a28f: 40 HumanEval copies each inside 25 nested defs wrote 6.2x the input, one hits line per (unit, problem, method)."
    recs = [dict(id=f"n{i}", content=nest(p["code"], 25)) for i, p in enumerate(HE[:40])]
    src = tmp_path / "synth" / "exercises"                               # plain JSONL, as the attack wrote it
    write_manifest(src, stage="synth", shards=[write_shard(src / f"part-{k:05d}.jsonl", recs[k * 20:k * 20 + 20])
                                               for k in range(2)])
    m = run_decontaminate(tmp_path, tau=0.95)
    out = tmp_path / "decontaminate"
    inb = sum(p.stat().st_size for p in src.glob("part-*"))
    outb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert m["drops"]["contaminated"] == 40                                # every copy still found
    hits = [json.loads(l) for l in (out / "hits.jsonl").read_text().splitlines()]
    assert max(Counter((h["sample"], h["task_id"]) for h in hits).values()) == 1
    assert any(h["function"].endswith(".has_close_elements") and h["methods"].get("ast") == 1.0 for h in hits)
    assert outb <= 2 * inb, (outb, inb)


def cache_bytes(d):
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())


def test_embed_cache_at_most_the_text_for_short_records(tmp_path):
    "a28f: 2,000 one-line texts ('x1 = 5') gave a cache 7.5x their text (a 64-byte hex key and files per entry)."
    rng = random.Random(0)
    texts = list(dict.fromkeys(f"x{i} = {rng.randint(0, 99)}\n" for i in range(2000)))
    fs = [f"def f{i}(a, b):\n    \"\"\"Combine a and b, variant {i}.\"\"\"\n    return [a * {i} - b for _ in range({i % 7})]\n"
          for i in range(400)]
    code = ["\n".join(fs[i:i + 20]) for i in range(300)]                       # modules of 20 functions (2 KB)
    e = get_embedder("hashing")
    for name, ts in (("short", texts), ("code", code)):
        _caches.clear()
        got = np.concatenate([embed_cached(e, ts[a:a + 256], tmp_path / name) for a in range(0, len(ts), 256)])
        assert np.array_equal(got, e.embed(ts))                                # kept or not, the same vectors
        assert cache_bytes(tmp_path / name) <= sum(len(t.encode()) for t in ts), name
    _caches.clear()
    assert len(EmbeddingCache(tmp_path / "code", e.key)) == len(code)          # a function's vector is kept
    assert np.array_equal(embed_cached(e, code[:5] + texts[:5], tmp_path / "code"), e.embed(code[:5] + texts[:5]))


def test_filling_the_embed_cache_holds_no_chunks_in_memory(tmp_path):
    "a28f: the filter's RSS grew ~1.5 KB a record: each new chunk was read back whole and held (up to 64 chunks)."
    import tracemalloc
    fs = [f"def g{i}(a, b):\n    \"\"\"Variant {i}.\"\"\"\n    return [a * {i} - b, a + {i}, b // ({i} + 1)]\n"
          for i in range(1300)]
    texts = ["\n".join(fs[i:i + 20]) for i in range(1280)]
    e, _ = get_embedder("hashing"), _caches.clear()
    tracemalloc.start()
    try:
        for b in range(40):
            embed_cached(e, texts[b * 16:b * 16 + 16], tmp_path)
            if b == 9: at10 = tracemalloc.get_traced_memory()[0]
        grown = (tracemalloc.get_traced_memory()[0] - at10) / (30 * 16)
    finally: tracemalloc.stop()
    assert grown < 500, f"{grown:.0f} bytes a record"                   # the index only (16-byte keys)
    assert len(EmbeddingCache(tmp_path, e.key)) == 40 * 16
