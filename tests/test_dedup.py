"Dedup: exact, MinHash LSH (word and AST shingles), embedding near-duplicates, the keep rule, OnlineDedup and the stage."
import json, os, random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from phi1_nb.core import read_dataset, read_manifest, read_shard, write_manifest, write_shard
from phi1_nb.dedup import (DedupIndex, MinHasher, OnlineDedup, candidate_pairs, code_tokens, components, embedding_pairs,
                           estimate_jaccard, exact_key, find_duplicates, jaccard, keep_one, lsh_params, run_dedup,
                           shingle_hashes, text_shingles, canonical_code, stdlib_functions, plant_copy, planted_set,
                           pair_scores)

ORIG = '''def moving_average(values, window):
    """Average of each window of consecutive values."""
    out = []
    total = 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out
'''
RENAMED = '''def rolling_mean(xs, k):
    res = []
    s = 0.0
    for j, x in enumerate(xs):
        s += x
        if j >= k:
            s -= xs[j - k]
        if j >= k - 1:
            res.append(s / k)
    return res
'''
UNRELATED = '''import json

def load(path):
    with open(path) as f:
        return json.load(f)
'''


def stdlib(n, lo=1000, hi=40000):
    out = []
    for f in sorted(Path(os.__file__).parent.glob("*.py")):
        t = f.read_text(encoding="utf-8", errors="replace")
        if lo < len(t) < hi: out.append((f.name, t))
        if len(out) >= n: break
    return out


@pytest.mark.parametrize("a,b,kw,same", [
    ("x = 1\n", "x  =  1", {}, True),
    ("x = 1  # one\n", "x = 1\n", {}, True),                       # comments stripped by default
    ("x = 1  # one\n", "x = 1\n", {"comments": True}, False),
    ("x = 1\n", "x  =  1\n", {"whitespace": True}, False),
    ("s = '#x'\n", "s = ''\n", {}, False),                           # a '#' inside a string is not a comment
    ("for t in ts:\n    f(t)\n    return t\n", "for t in ts:\n    f(t)\nreturn t\n", {}, False),   # a26f: depth kept
    ("if a:\n    b\nelse:\n    c\n", "if a:\n\tb\n\nelse:\n\t\tc  \n", {}, True),   # a tab or 8 spaces: one level
])
def test_exact_key(a, b, kw, same):
    assert (exact_key(a, **kw) == exact_key(b, **kw)) is same


def test_renamed_copy_caught_by_ast_missed_by_words():
    (w1, _), (w2, _) = text_shingles(ORIG, "word"), text_shingles(RENAMED, "word")
    (a1, _), (a2, _) = text_shingles(ORIG, "ast"), text_shingles(RENAMED, "ast")
    assert jaccard(w1, w2) < 0.3 and jaccard(a1, a2) >= 0.8   # RENAMED also lost its docstring
    for kind, flagged in [("word", False), ("ast", True)]:
        r = find_duplicates([ORIG, RENAMED, UNRELATED], shingles=kind, threshold=0.7)
        assert (r["reason"] == {1: "near_duplicate"}) is flagged, (kind, r["reason"])
        assert r["keep"][2]   # the unrelated file is never flagged


@pytest.mark.parametrize("shingles", ["word", "ast"])
def test_unrelated_stdlib_files_not_flagged(shingles):
    texts = [t for _, t in stdlib(30)]
    r = find_duplicates(texts, shingles=shingles, threshold=0.7)
    assert r["reason"] == {} and r["keep"].all()


def test_code_tokens_keep_literals_attributes_and_free_names():
    toks = code_tokens('def f(a):\n    """doc"""\n    # c\n    return a.upper() + "x" * 3 + len(a) + helper(a, key=a)\n')
    assert toks == ["def", "v_", "(", "v_", ")", ":", "\n>", "return", "v_", ".", "upper", "(", ")",
                    "+", "'x'", "*", "3", "+", "len", "(", "v_", ")", "+", "v_", "(", "v_", ",", "key", "=", "v_", ")"]
    assert code_tokens("def f(:\n") is None


def test_typing_special_forms_stay_apart():
    "TypeGuard and Required have one shape (the old normalization made them identical): canonical tokens keep them apart."
    import ast, typing
    src = Path(typing.__file__).read_text(); lines = src.splitlines(keepends=True)
    fn = {n.name: "".join(lines[n.decorator_list[0].lineno - 1:n.end_lineno]) for n in ast.parse(src).body
          if isinstance(n, ast.FunctionDef) and n.decorator_list}
    (a, _), (b, _) = text_shingles(fn["TypeGuard"], "ast"), text_shingles(fn["Required"], "ast")
    assert jaccard(a, b) < 0.7
    assert find_duplicates([fn["TypeGuard"], fn["Required"]], shingles="ast", threshold=0.7)["reason"] == {}


def test_planted_copies_have_the_canonical_form_of_their_original():
    rng, same, n = random.Random(5), 0, 0
    for _, src in random.Random(4).sample(stdlib_functions(), 150):
        try: v = plant_copy(src, rng)
        except SyntaxError: continue
        n += 1; same += code_tokens(v) == code_tokens(src)
    assert n >= 140 and same / n >= 0.9, (same, n)   # 0.93 measured (loop and sort rewrites see other names)


def test_planted_near_duplicates_precision_and_recall():
    "A small sample (the full figure: scripts/bench_dedup.py): both >= 0.95 with ast shingles at the default 0.8."
    texts, group = planted_set(400, seed=2)
    s = pair_scores(find_duplicates(texts, shingles="ast", threshold=0.8)["duplicate_of"], group)
    assert s["copies"] >= 120 and s["precision"] >= 0.95 and s["recall"] >= 0.92, s   # short renamed copies: words must agree


def test_pair_scores():
    s = pair_scores({3: 0, 2: 1}, [0, 1, 2, 0])            # 3 is 0's copy (found); 2 merged into 1 by mistake
    assert s == dict(precision=0.5, false_pairs=1, recall=1.0, copies=1)
    assert pair_scores({}, [0, 1, 0])["recall"] == 0.0


def test_no_import_cycle_between_dedup_and_the_ray_engine():
    import re
    root = Path(__file__).parent.parent/"phi1_nb"
    imports = lambda m: set(re.findall(r"(?:from\s+(?:phi1_nb|)\.?(\w+)\s+import|import\s+phi1_nb\.(\w+))", (root/f"{m}.py").read_text()))
    flat = lambda m: {a or b for a, b in imports(m)}
    assert not flat("ray_engine") & {"dedup", "minhash", "dedup_ray", "filter", "decontaminate"}, flat("ray_engine")
    assert "dedup" not in flat("dedup_ray") and "dedup" not in flat("minhash")
    for m in ("dedup", "dedup_ray", "ray_engine", "minhash", "canonical", "canonical_order", "canonical_keys",
              "signature_backend"):
        assert len((root/f"{m}.py").read_text().splitlines()) <= 400, m          # the project's module size


def test_unparsable_falls_back_to_words_and_is_counted():
    broken = "def f(:\n    return [1, 2, 3] + something_long_enough(here, there)\n"
    r = find_duplicates([broken, broken.replace("here", "hare"), ORIG], shingles="ast", ngram=3, threshold=0.5)
    assert r["ast_fallback"] == 2
    assert len(r["reason"]) == 1 and set(r["reason"].values()) == {"near_duplicate"} and r["keep"][2]
    s, fell = text_shingles(broken, "ast")
    assert fell and np.array_equal(s, text_shingles(broken, "word")[0])


@pytest.mark.parametrize("threshold,num_perm,weights", [(0.5, 128, (0.5, 0.5)), (0.7, 128, (0.5, 0.5)),
                                                        (0.85, 256, (0.5, 0.5)), (0.8, 128, (0.1, 0.9)), (0.9, 64, (0.9, 0.1))])
def test_lsh_params_match_datasketch(threshold, num_perm, weights):
    from datasketch import MinHashLSH
    l = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=weights)
    b, r = lsh_params(threshold, num_perm, weights)
    assert (b, r) == (l.b, l.r) and b * r <= num_perm
    p = lambda s: 1 - (1 - s ** r) ** b   # the S-curve: likely above the threshold, unlikely well below
    assert p(min(1, threshold + 0.15)) > 0.8 and p(threshold - 0.35) < 0.2


def test_lsh_weights_shift_the_choice():
    b_fn, r_fn = lsh_params(0.8, 128, (0.1, 0.9))   # false negatives costly: more bands, fewer rows
    b_fp, r_fp = lsh_params(0.8, 128, (0.9, 0.1))
    assert r_fn < r_fp and b_fn > b_fp
    with pytest.raises(ValueError, match="threshold"): lsh_params(0.0)


def sets_with_jaccard(J, n=2000, rng=None):
    "Two integer sets of n elements each with Jaccard similarity J (approximately)."
    rng = rng or np.random.default_rng(0)
    inter = int(round(2 * n * J / (1 + J)))
    pool = rng.choice(2**32 - 1, 2 * n, replace=False).astype(np.uint32)
    a = pool[:n]; b = np.concatenate([a[:inter], pool[n:2 * n - inter]])
    return np.unique(a), np.unique(b)


@pytest.mark.parametrize("backend", ["numpy", "rensa"])
@pytest.mark.parametrize("J", [0.1, 0.5, 0.8, 0.95])
def test_minhash_estimate_within_error_bound(J, backend):
    rng = np.random.default_rng(int(J * 100))
    mh, errs = MinHasher(128, seed=3, backend=backend), []
    for _ in range(20):
        a, b = sets_with_jaccard(J, rng=rng)
        s = mh.signatures([a, b])
        errs.append(estimate_jaccard(s[0], s[1]) - jaccard(a, b))
    sd = np.sqrt(J * (1 - J) / 128)
    assert np.abs(errs).max() < 4 * sd and abs(np.mean(errs)) < 3 * sd / np.sqrt(20) + 0.01


def test_minhash_batch_equals_one_by_one_and_threads():
    texts = [t for _, t in stdlib(8)] + [""]
    sets = [text_shingles(t)[0] for t in texts]
    mh = MinHasher(64, seed=7, backend="numpy")
    batch = mh.signatures(sets, chunk=333)
    single = np.stack([mh.signatures([s])[0] for s in sets])
    assert np.array_equal(batch, single) and np.array_equal(batch, mh.signatures(sets, chunk=1000, threads=2))
    assert (batch[-1] == 0xFFFFFFFF).all()                      # an empty set
    assert not np.array_equal(batch, MinHasher(64, seed=8).signatures(sets))


def test_candidate_pairs_find_planted_pairs():
    rng = np.random.default_rng(1)
    sets = []
    for k in range(20):
        a, b = sets_with_jaccard(0.95, n=500, rng=rng)   # P(candidate) > 0.999 at (b, r) for 0.7
        sets += [a, b]
    sig = MinHasher(128).signatures(sets)
    pairs = {tuple(p) for p in candidate_pairs(sig, *lsh_params(0.7, 128)).tolist()}
    planted = {(2 * k, 2 * k + 1) for k in range(20)}
    assert planted <= pairs and len(pairs - planted) <= 2


@pytest.mark.parametrize("lengths,scores,kept", [
    ([10, 30, 20], None, 1),                 # no scores: the longest
    ([10, 30, 20], [0.9, 0.1, 0.5], 0),      # scores: the highest educational_value
    ([10, 30, 30], [None, None, None], 1),   # ties: the first
    ([10, 30, 20], [0.5, None, 0.5], 2),     # equal scores: the longer
])
def test_keep_rule(lengths, scores, kept):
    assert keep_one([0, 1, 2], lengths, scores) == kept


def test_keep_rule_in_clusters_uses_educational_value():
    r = find_duplicates([ORIG, ORIG + "\n# trailing note\n", RENAMED], scores=[0.9, 0.1, 0.2], shingles="ast")
    assert r["keep"].tolist() == [True, False, False]
    assert r["duplicate_of"] == {1: 0, 2: 0} and r["clusters"]["exact_duplicate"] == [[0, 1]]


def test_components():
    assert components(7, [(0, 1), (2, 3), (3, 1), (5, 6)]) == [[0, 1, 2, 3], [5, 6]]
    assert components(3, []) == []


class ToyEmbedder:
    "Bag of character bigrams, unit-normalized: near-identical texts land close."
    name, dim = "toy", 256
    def embed(self, texts):
        X = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for a, b in zip(t, t[1:]): X[i, (ord(a) * 31 + ord(b)) % self.dim] += 1
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


@pytest.mark.parametrize("metric,threshold", [("cosine", 0.02), ("l2", 0.2)])
def test_embedding_near_duplicates(metric, threshold):
    texts = [ORIG, ORIG.replace("window", "windo"), UNRELATED]
    r = find_duplicates(texts, exact=False, near="none", embedder=ToyEmbedder(), embed_metric=metric, embed_threshold=threshold)
    assert r["reason"] == {1: "embedding_duplicate"} and r["keep"][2]
    with pytest.raises(ValueError, match="metric"): embedding_pairs(np.eye(3), 0.1, "manhattan")


def test_embedding_pairs_agree_with_brute_force():
    X = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    got = {(int(i), int(j)) for i, j, _ in embedding_pairs(X, 2.0, "l2")}
    D = np.linalg.norm(X[:, None] - X[None], axis=-1)
    want = {(i, j) for i in range(60) for j in range(i + 1, 60) if D[i, j] <= 2.0}
    assert got == want and len(want) > 0


def test_embedding_by_name_uses_phi1_embed():
    pytest.importorskip("phi1_nb.embed")
    r = find_duplicates([ORIG, ORIG + " ", UNRELATED], exact=False, near="none", embedder="hashing", embed_threshold=0.01)
    assert list(r["reason"].values()) == ["embedding_duplicate"] and 2 not in r["reason"]


def test_online_dedup():
    od = OnlineDedup(threshold=0.7, num_perm=128, ngram=5)
    base = [t for _, t in stdlib(5)]
    assert all(od.add(f"k{i}", t) is None for i, t in enumerate(base))
    assert od.add("dup", base[2] + "\n# generated again\n") == "k2"
    assert od.query(base[3]) == "k3" and od.query(UNRELATED) is None
    assert len(od) == 5
    with pytest.raises(KeyError): od.add("k0", UNRELATED)
    ast_od = OnlineDedup(threshold=0.8, shingles="ast")
    assert ast_od.add("a", ORIG) is None and ast_od.add("b", RENAMED) == "a"


def make_filter_stage(tmp_path, recs):
    recs = [{"educational_value": 0.5, **r} for r in recs]   # what every filter record holds (contract.COLUMNS)
    write_manifest(tmp_path / "filter", stage="filter", shards=[write_shard(tmp_path / "filter" / "part-00000.jsonl", recs[:len(recs) // 2]),
                                                                 write_shard(tmp_path / "filter" / "part-00001.jsonl", recs[len(recs) // 2:])])


def test_run_dedup_stage(tmp_path):
    recs = [{"id": n, "content": t, "educational_value": 0.5} for n, t in stdlib(20)]
    recs += [{"id": "exact", "content": recs[3]["content"] + "\n\n\n", "educational_value": 0.1},
             {"id": "renamed-a", "content": ORIG, "educational_value": 0.4},
             {"id": "renamed-b", "content": RENAMED, "educational_value": 0.8},
             {"id": "broken", "content": "def oops(:\n"}]
    make_filter_stage(tmp_path, recs)
    m = run_dedup(tmp_path, batch_size=7, shard_format="jsonl.zst", shingles="ast")
    assert m["drops"] == {"exact_duplicate": 1, "near_duplicate": 1}
    assert m["counts"]["in"] == len(recs) and m["counts"]["out"] == len(recs) - 2 and m["counts"]["ast_fallback"] == 1
    on_disk = read_manifest(tmp_path / "dedup")
    assert on_disk["cluster_sizes"] == {"exact_duplicate": {"2": 1}, "near_duplicate": {"2": 1}}
    assert on_disk["lsh_bands_rows"] == list(lsh_params(0.8, 128, (0.002, 0.998)))   # the default threshold and fp_weight
    assert on_disk["example_clusters"]["near_duplicate"] == [["renamed-b", "renamed-a"]]
    assert on_disk["signature_backend"] == ("rensa" if _has_rensa() else "numpy")     # big files: rensa
    kept = [r["id"] for r in read_dataset(tmp_path / "dedup")]
    assert "renamed-b" in kept and "renamed-a" not in kept and "exact" not in kept and recs[3]["id"] in kept
    assert len(kept) == len(set(kept)) == len(recs) - 2
    dropped = {r["id"]: r for s in m["dropped_shards"] for r in read_shard(tmp_path / "dedup" / "dropped" / s["path"])}
    assert dropped["renamed-a"]["duplicate_of"] == "renamed-b" and dropped["renamed-a"]["drop_reason"] == "near_duplicate"
    assert dropped["exact"]["duplicate_of"] == recs[3]["id"]
    m2 = run_dedup(tmp_path, shingles="word")   # a rerun replaces the output; word shingles miss the renamed copy
    assert m2["drops"] == {"exact_duplicate": 1} and len(list(read_dataset(tmp_path / "dedup"))) == len(recs) - 1


def test_run_dedup_needs_its_input_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the 'filter' stage first"): run_dedup(tmp_path)
    with pytest.raises(ValueError, match="near"): DedupIndex(near="simhash")
    with pytest.raises(ValueError, match="shingles"): text_shingles("x", "chars")


def test_run_dedup_embeddings_use_the_run_cache(tmp_path):
    pytest.importorskip("phi1_nb.embed")
    recs = [{"id": n, "content": t} for n, t in stdlib(6)] + [{"id": "near", "content": stdlib(6)[2][1] + "\n"}]
    make_filter_stage(tmp_path, recs)
    m = run_dedup(tmp_path, exact=False, near="none", embedder="hashing", embed_threshold=0.001, shard_format="jsonl")
    assert m["drops"] == {"embedding_duplicate": 1} and m["counts"]["out"] == 6
    assert any((tmp_path / "cache" / "embed").iterdir())        # vectors cached per content hash, as the filter does


def test_run_dedup_counts_records_without_content(tmp_path):
    recs = [{"id": "a", "content": ORIG}, {"id": "b", "content": None}, {"id": "c"},   # an int `content` is refused
            {"id": "e", "content": UNRELATED}]                                           # on read (test_read_contract)
    make_filter_stage(tmp_path, recs)
    m = run_dedup(tmp_path, shard_format="jsonl")
    assert m["drops"] == {"no_content": 2} and [r["id"] for r in read_dataset(tmp_path / "dedup")] == ["a", "e"]
    dropped = [r for s in m["dropped_shards"] for r in read_shard(tmp_path / "dedup" / "dropped" / s["path"])]
    assert {r["id"]: r["drop_reason"] for r in dropped} == {"b": "no_content", "c": "no_content"}


@pytest.mark.parametrize("backend", ["numpy", "rensa"])
def test_verify_by_signature_and_backends_agree_with_exact(backend):
    texts = [t for _, t in stdlib(12)] + [ORIG, RENAMED, UNRELATED]
    texts += [texts[2] + "\n# one more comment line\n", texts[5].replace("self", "this")]
    exact = find_duplicates(texts, shingles="ast", threshold=0.7)
    for kw in ({"verify": "signature"}, {"backend": backend}):
        r = find_duplicates(texts, shingles="ast", threshold=0.7, **kw)
        assert r["reason"] == exact["reason"] and len(exact["reason"]) >= 3, (kw, r["reason"], exact["reason"])
    with pytest.raises(ValueError, match="verify"): DedupIndex(verify="none")
    with pytest.raises(ValueError, match="backend"): MinHasher(backend="oph")


def test_lsh_params_choose_what_datasketch_chooses_on_a_grid():
    "The exact Gauss-Legendre areas pick datasketch's (bands, rows) on 532 settings (it would need scipy for them)."
    from datasketch.lsh import _optimal_param
    from phi1_nb.minhash import lsh_params
    grid = [(t, n, w) for n in (8, 16, 32, 64, 128, 256, 512) for t in np.round(np.arange(0.05, 0.96, 0.05), 2)
            for w in [(0.5, 0.5), (0.2, 0.8), (0.9, 0.1), (0.1, 0.9)]]
    assert len(grid) == 532
    assert [lsh_params(t, n, w) for t, n, w in grid] == [_optimal_param(t, n, *w) for t, n, w in grid]


def test_hyperloglog_is_within_four_standard_errors_over_the_whole_range():
    "Ertl's estimator holds from a handful of hashes through the classic estimator's biased middle to millions."
    from phi1_nb.minhash import HyperLogLog
    for n in (0, 1, 50, 5_000, 30_000, 45_000, 80_000, 2_000_000):
        for s in range(3):
            x = np.random.default_rng([n, s]).integers(0, 2**64, n, dtype=np.uint64)
            h = HyperLogLog(14)
            for part in np.array_split(x, 7): h.update(part); h.update(part[:10])   # repeats count once
            assert abs(h.count() - n) <= 4 * 1.04 / 128 * max(n, 1), (n, s, h.count())


def test_online_dedup_batched_features_decide_what_one_at_a_time_decides():
    "`prepare` (a shard's signatures in one batch) and the memo change no decision, also past the memo's size."
    texts = [t for _, t in stdlib(12)]
    texts += [t + "\n# again\n" for t in texts[:6]] + [texts[3]] + ["", "x = 1"]
    def run(batch):
        od, out = OnlineDedup(threshold=0.7, ngram=5), []
        for j in range(0, len(texts), 5):
            chunk = texts[j:j+5]
            if batch: od.prepare(chunk + [UNRELATED] * 3)
            out += [od.query(t) for t in chunk] + [od.add(f"k{j + i}", t) if f"k{j + i}" not in od.sets else "dup-key"
                                                   for i, t in enumerate(chunk)]
        return out
    one = run(False)
    assert one == run(True) and any(x is not None for x in one)
    od = OnlineDedup(threshold=0.7); od._memo = {str(i): None for i in range(4095)}
    od.prepare(texts[:3]); assert len(od._memo) == 3   # bounded: a full memo is dropped, not grown


# ---- issue 26: copies that survive real edits; distinct tables kept apart --------------------------------------
SEVEN = """def summarize(rows, key):
    total = 0
    count = 0
    for row in rows:
        total += row[key]
        count += 1
    return {"total": total, "mean": total / max(count, 1)}
"""
EDITED = {
    "dead assignment": SEVEN.replace("    total = 0\n", "    total = 0\n    unused = []\n"),
    "extracted variable": SEVEN.replace('    return {"total": total, "mean": total / max(count, 1)}',
                                        '    result = {"total": total, "mean": total / max(count, 1)}\n    return result'),
    "swapped assignments": SEVEN.replace("    total = 0\n    count = 0\n", "    count = 0\n    total = 0\n"),
    "free names renamed": "import numpy as xp\n" + SEVEN.replace("rows", "records").replace("summarize", "summary") + "x = xp.ones(3)\n",
    "hints and docstring": SEVEN.replace("def summarize(rows, key):", 'def summarize(rows: list, key: str) -> dict:\n    """Sum it."""'),
}


@pytest.mark.parametrize("edit", list(EDITED))
def test_one_edit_keeps_the_canonical_shingles(edit):
    "Before: one dead assignment gave Jaccard 0.248, an extracted variable 0.361, a swap 0.653 (numbered names cascade)."
    a, b = text_shingles(SEVEN, "ast")[0], text_shingles(EDITED[edit], "ast")[0]
    if edit == "free names renamed": a = text_shingles("import numpy as np\n" + SEVEN + "x = np.ones(3)\n", "ast")[0]
    assert jaccard(a, b) == 1.0, edit


def test_renamed_helper_global_and_alias_are_caught():
    src = "import json as js\nLIMIT = 3\ndef load(path):\n    with open(path) as f:\n        data = js.load(f)\n" \
          "    return [clean(r) for r in data[:LIMIT]] + helper(data)\n"
    cp = src.replace("as js", "as jz").replace("js.load", "jz.load").replace("LIMIT", "MAX_N").replace("clean", "tidy").replace("helper", "aux").replace("data", "d")
    assert cp != src and "jz.load" in cp
    assert code_tokens(src) == code_tokens(cp)


def test_distinct_enums_and_tables_are_never_merged():
    "Before: 8 of 8 distinct enums merged into one cluster (their members were numbered as bound names)."
    names = ["RED GREEN BLUE", "OK WARN ERROR", "LOW MEDIUM HIGH", "READ WRITE APPEND", "NORTH SOUTH EAST", "CAT DOG COW",
             "START STOP PAUSE", "ONE TWO THREE"]
    enums = [f"class E{k}(IntEnum):\n" + "".join(f"    {m} = {i + 1}\n" for i, m in enumerate(ns.split())) for k, ns in enumerate(names)]
    tables = [f"T{k} = {{\n" + "".join(f"    {m.lower()!r}: {i},\n" for i, m in enumerate(ns.split())) + "}\n" for k, ns in enumerate(names)]
    for texts in (enums, tables):
        assert find_duplicates(texts, shingles="ast", threshold=0.8)["reason"] == {}
        assert find_duplicates(texts, shingles="ast", threshold=0.8, verify="signature")["reason"] == {}


def test_short_forms_must_share_words():
    "With every name a placeholder, `return self._mu` is one canonical form of many classes: their words must agree too."
    a, b = "def mode(self):\n    return self._mu\n", "def username(self):\n    return self._mu\n"
    assert find_duplicates([a, b], shingles="ast", threshold=0.8)["reason"] == {}
    assert find_duplicates([a, a.replace("    ", "  ") + "# same\n"], shingles="ast", threshold=0.8)["reason"] != {}
    od = OnlineDedup(threshold=0.8, shingles="ast")
    assert od.add("a", a) is None and od.add("b", b) is None


def test_second_generator_precision_and_recall_per_edit():
    "The held-out generator (scripts/plant_edits.py, written from edits, not from the canonical form): a small sample."
    import sys
    sys.path.insert(0, str(Path(__file__).parent.parent/"scripts"))
    from plant_edits import edited_set
    texts, group, kind = edited_set(n=270, seed=3, shorts=40)
    dup = find_duplicates(texts, shingles="ast", threshold=0.8)["duplicate_of"]
    def root(i):
        while i in dup: i = dup[i]
        return i
    wrong = [(i, j) for i, j in dup.items() if group[root(i)] != group[i]]
    assert not [i for i, _ in wrong if kind[i] in ("enum", "table", "template")], wrong
    copies = [i for i in range(len(texts)) if group[i] != i]
    found = [root(i) == root(group[i]) for i in copies]
    assert len(copies) >= 120 and sum(found) / len(copies) >= 0.88 and len(wrong) <= 0.05 * len(dup), (sum(found), len(copies), wrong)


@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_ray_bucket_verification_follows_the_local_rule(tmp_path, verify):
    "The Ray engine's features and pair check (no cluster needed) apply `similar`'s short-form rule as the local one."
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    from phi1_nb.dedup_ray import _verify_part, shard_features
    texts = ["def mode(self):\n    return self._mu\n", "def username(self):\n    return self._mu\n",
             "def mode(self):\n    return self._mu\n\n# same\n", ORIG, RENAMED]
    write_shard(tmp_path / "p.jsonl", [{"id": i, "content": t} for i, t in enumerate(texts)])
    cfg = dict(spill=str(tmp_path / "spill"), num_perm=128, seed=1, backend="numpy", batch_size=10, lsh=(16, 8),
               feat=dict(exact=False, comments=False, near="minhash", shingles="ast", ngram=5, verify=verify))
    shard_features(dict(path=str(tmp_path / "p.jsonl"), offset=0, k=0), cfg)
    pairs = np.array([(a, b) for a in range(len(texts)) for b in range(a + 1, len(texts))], np.int64)   # every pair
    e = _verify_part(pa.table({"a": pairs[:, 0], "b": pairs[:, 1]}), cfg["spill"], [0], 128, 0.8, verify)
    def groups(edges):
        g = {i: {i} for i in range(len(texts))}
        for a, b in edges:
            u = g[a] | g[b]
            for x in u: g[x] = u
        return sorted({tuple(sorted(x)) for x in g.values() if len(x) > 1})
    got = groups(zip(e["a"].to_pylist(), e["b"].to_pylist()))
    local = find_duplicates(texts, shingles="ast", threshold=0.8, verify=verify, backend="numpy")["duplicate_of"]
    assert got == groups(local.items()) and (0, 2) in got and not any(0 in x and 1 in x for x in got), (got, local)


def test_code_tokens_computes_the_canonical_form_once(monkeypatch):
    import phi1_nb.minhash as M
    calls, real = [], M.canonical_code
    monkeypatch.setattr(M, "canonical_code", lambda c, **k: calls.append(c) or real(c, **k))
    assert M.code_tokens(ORIG) and len(calls) == 1


def test_batch_shingles_of_many_short_documents_equal_the_per_text_ones():
    "The one-pass path that replaced per-document hashing on short documents (0.29x rensa before) gives the same sets."
    from phi1_nb.minhash import texts_shingles
    texts = [s for _, s in stdlib_functions(min_lines=1, max_lines=6)][:300] + ["", "x", "a b c d"]
    for kind in ("word", "ast"):
        sets = texts_shingles(texts, kind)[0]
        assert all(np.array_equal(s, text_shingles(t, kind)[0]) for s, t in zip(sets, texts))


SWAPPED = [  # (original, a copy whose if/else or comparison is turned around): one canonical form each
    ("def f(a, b):\n    if a != b:\n        return g(a)\n    else:\n        return h(b)\n",
     "def f(a, b):\n    if a == b:\n        return h(b)\n    else:\n        return g(a)\n"),
    ("def f(xs, k):\n    if k in xs:\n        xs.remove(k)\n    else:\n        xs.append(k)\n    return xs\n",
     "def f(xs, k):\n    if not k in xs:\n        xs.append(k)\n    else:\n        xs.remove(k)\n    return xs\n"),
    ("def f(n, xs):\n    if n >= len(xs):\n        return n - 1\n    else:\n        return xs[n]\n",
     "def f(n, xs):\n    if len(xs) > n:\n        return xs[n]\n    else:\n        return n - 1\n"),
    ("def f(v):\n    return 'big' if v > 10 else 'small'\n", "def f(v):\n    return 'small' if not 10 < v else 'big'\n"),
    ("def f(x):\n    if len(x) == 0:\n        return None\n    return x[0]\n",
     "def f(x):\n    if 0 == len(x):\n        return None\n    return x[0]\n"),
]


@pytest.mark.parametrize("a,b", SWAPPED)
def test_swapped_branches_and_turned_comparisons_read_alike(a, b):
    assert canonical_code(a) == canonical_code(b)


def test_a_different_condition_stays_different():
    "Turning a test around swaps the branches too: a copy with only the test negated is a different function."
    a = "def sign(a):\n    if a < 0:\n        return 'negative'\n    else:\n        return 'positive'\n"
    assert canonical_code(a) != canonical_code(a.replace("a < 0", "a >= 0"))
    assert canonical_code(a) != canonical_code(a.replace("a < 0", "not a < 0"))
    assert canonical_code(a) == canonical_code(a.replace("a < 0", "a >= 0").replace("'negative'", "'x'")
                                               .replace("'positive'", "'negative'").replace("'x'", "'positive'"))


LOGGED = '''import logging
logger = logging.getLogger(__name__)

def moving_average(values, window):
    """Average of each window of consecutive values."""
    out = []
    total = 0.0
    logger.debug("window %d", window)
    for i, v in enumerate(values):
        total += v
        print("at", i, total)
        _calls = 0
        _calls += 1
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out.append(total / window)
    return out
'''


def test_logging_and_dead_lines_added_to_a_copy_are_dropped():
    assert canonical_code(LOGGED) == canonical_code(ORIG)


def test_a_function_that_only_prints_keeps_its_prints():
    a, b = "def usage():\n    print('usage: run FILE')\n", "def usage():\n    print('usage: stop PID')\n"
    assert canonical_code(a) != canonical_code(b)
    assert find_duplicates([a, b], shingles="ast", threshold=0.7)["reason"] == {}


SHORT = "def area(width, height):\n    size = width * height\n    return scale(size, UNIT)\n"


def test_a_short_function_with_its_locals_renamed_is_caught():
    "A short canonical form must share words or its non-local names (helpers, globals, its own name): a rename of locals keeps those."
    b = SHORT.replace("width", "w").replace("height", "h").replace("size", "s")
    for verify in ("exact", "signature"):
        assert find_duplicates([SHORT, b], shingles="ast", threshold=0.7, verify=verify)["reason"] == {1: "near_duplicate"}
    od = OnlineDedup(threshold=0.7, shingles="ast")
    assert od.add("a", SHORT) is None and od.add("b", b) == "a"


@pytest.mark.parametrize("other", [SHORT.replace("scale(", "clamp("), SHORT.replace("UNIT", "METER"),
                                   SHORT.replace("def area", "def volume"),
                                   "LOW = 1\nHIGH = 2\nMID = 3\n", "class Point:\n    x: int\n    y: int\n"])
def test_short_forms_apart_in_a_non_local_name_stay_apart(other):
    base = "MIN = 1\nMAX = 2\nAVG = 3\n" if other.startswith("LOW") else \
           "class Size:\n    w: int\n    h: int\n" if other.startswith("class") else SHORT
    other = other.replace("width", "w").replace("height", "h").replace("size", "s")
    assert find_duplicates([base, other], shingles="ast", threshold=0.7)["reason"] == {}


def test_locals_renamed_in_another_case_read_alike():
    "A local renamed `total` -> `Total` or `TOTAL` is still a local: its placeholder does not follow its case."
    b = ORIG.replace("total", "RunningTotal").replace("out", "OUT").replace("window", "W")
    assert canonical_code(b) == canonical_code(ORIG)
    assert canonical_code("LIMIT = 3\n") != canonical_code("limit = 3\n")     # module-level names keep their case style


def test_a_comparison_whose_sides_read_alike_keeps_its_direction():
    "`self.int > other.int` turned around would read as `self.int < other.int` once names are placeholders: __gt__ is not __lt__."
    gt = "def __gt__(self, other):\n    if isinstance(other, UUID):\n        return self.int > other.int\n    return NotImplemented\n"
    lt = gt.replace("__gt__", "__lt__").replace(">", "<")
    assert canonical_code(gt) != canonical_code(lt)
    assert find_duplicates([gt, lt], shingles="ast", threshold=0.8)["reason"] == {}



def _one_constant_changed(n=40, lo=24, hi=48):
    "Stdlib functions of `lo`..`hi` canonical shingles, each with a copy whose one number is changed (as red team a26's)."
    import ast
    from phi1_nb.minhash import texts_shingles
    rng, out, fs = random.Random(5), [], [s for _, s in stdlib_functions(min_lines=4, max_lines=20)][:500]
    for s, sh in zip(fs, texts_shingles(fs, "ast")[0]):
        if not lo <= len(sh) <= hi: continue
        lits = [c for c in ast.walk(ast.parse(s)) if isinstance(c, ast.Constant) and type(c.value) is int
                and c.lineno == c.end_lineno and s.splitlines()[c.lineno - 1].isascii()]
        if not lits: continue
        c = rng.choice(lits); L = s.splitlines(True); ln = L[c.lineno - 1]
        L[c.lineno - 1] = ln[:c.col_offset] + repr(c.value + 2) + ln[c.end_col_offset:]
        out += [s, "".join(L)]
        if len(out) >= 2 * n: break
    return out


def test_one_constant_changed_in_a_short_function_is_caught():
    "Red team a26: 44% of copies with one constant changed were kept (Jaccard under 0.8, or never an LSH candidate)."
    texts = _one_constant_changed()
    dup = find_duplicates(texts, shingles="ast", threshold=0.8)["duplicate_of"]
    def root(i):
        while i in dup: i = dup[i]
        return i
    found = sum(root(i + 1) == root(i) for i in range(0, len(texts), 2))
    assert len(texts) == 80 and found >= 0.9 * 40, found


def test_pairs_at_the_threshold_are_lsh_candidates():
    "Every candidate is verified, so the stage's bands favour recall: at J = threshold a pair is a candidate >= 95%."
    import inspect
    fp = inspect.signature(run_dedup).parameters["fp_weight"].default
    for weights in (DedupIndex().weights, (fp, 1 - fp)):
        for t in (0.7, 0.8):
            b, r = lsh_params(t, 128, tuple(weights))
            assert 1 - (1 - t ** r) ** b >= 0.95, (t, weights, b, r)


def test_a_table_or_enum_one_value_apart_is_near_but_distinct_ones_stay_apart():
    "The one-token rule (`one_edit_apart`) must not join tables whose entries all differ."
    keys = "alpha beta gamma delta eps zeta eta theta iota kappa".split()
    t1 = "LIMITS = {\n" + "".join(f"    {k!r}: {i * 3},\n" for i, k in enumerate(keys)) + "}\n"
    t2 = "LIMITS = {\n" + "".join(f"    {k!r}: {i * 7 + 1},\n" for i, k in enumerate(keys)) + "}\n"
    t3 = t1.replace("'eta': 18", "'eta': 19")
    assert find_duplicates([t1, t2], shingles="ast", threshold=0.8)["reason"] == {}
    assert find_duplicates([t1, t3], shingles="ast", threshold=0.8)["duplicate_of"] == {1: 0}


def test_find_duplicates_computes_each_canonical_form_once(monkeypatch):
    import phi1_nb.minhash as M
    calls, real = [], M.canonical_code
    monkeypatch.setattr(M, "canonical_code", lambda c, **k: calls.append(c) or real(c, **k))
    texts = [ORIG, RENAMED, "x = 1\n", "def f(:\n"]
    find_duplicates(texts, shingles="ast", threshold=0.8)
    assert sorted(calls) == sorted(texts), len(calls)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**32 - 1), max_size=80), min_size=1, max_size=12), st.integers(1, 40),
       st.sampled_from(["numpy", "rensa", "auto"]))
def test_a_signature_does_not_depend_on_its_batch(sets, chunk, backend):
    "LSH compares signatures across batches: each backend gives a set the same signature alone or in any batch."
    if backend == "rensa": pytest.importorskip("rensa")
    mh = MinHasher(64, seed=3, backend=backend)
    hs = [np.unique(np.array(s, np.uint32)) for s in sets]
    together = mh.signatures(hs, chunk=chunk)
    alone = np.vstack([mh.signatures([h]) for h in hs])
    assert np.array_equal(together, alone) and np.array_equal(together, mh.signatures(hs[::-1])[::-1])


def test_auto_backend_is_chosen_once_by_the_first_batch():
    "'auto' picks NumPy for short documents and rensa for big ones, from the first batch, and keeps it after."
    rng = np.random.default_rng(0)
    short = [np.unique(rng.integers(0, 2**32, 30, dtype=np.uint64)) for _ in range(50)]
    big = [np.unique(rng.integers(0, 2**32, 3000, dtype=np.uint64)) for _ in range(5)]
    mh = MinHasher(64, seed=3)
    assert mh.backend == "auto" and mh.signatures([np.empty(0, np.uint32)]).shape == (1, 64) and mh.backend == "auto"
    assert np.array_equal(mh.signatures(short), MinHasher(64, seed=3, backend="numpy").signatures(short))
    assert mh.backend == "numpy"
    assert np.array_equal(mh.signatures(big), MinHasher(64, seed=3, backend="numpy").signatures(big))   # kept
    mb = MinHasher(64, seed=3); mb.signatures(big + short[:4])                     # the median document is big
    assert mb.backend == ("rensa" if _has_rensa() else "numpy")


def test_run_dedup_records_one_backend_and_resumes_with_it(tmp_path):
    "The run's backend comes from its input (short functions: NumPy), lands in the manifest and the resume key."
    fs = [s for _, s in stdlib_functions(min_lines=2, max_lines=6)][:40]
    make_filter_stage(tmp_path, [{"id": i, "content": t} for i, t in enumerate(fs + fs[:3])])
    m = run_dedup(tmp_path, batch_size=16)
    done = json.loads((tmp_path/"dedup"/"work"/"done.json").read_text())
    assert m["signature_backend"] == done["key"]["signature_backend"] == "numpy" and m["drops"]["exact_duplicate"] == 3
    stamp = (tmp_path/"dedup"/"work"/"done.json").stat().st_mtime_ns
    assert run_dedup(tmp_path, batch_size=5)["signature_backend"] == "numpy"        # the same input decides the same
    assert (tmp_path/"dedup"/"work"/"done.json").stat().st_mtime_ns == stamp       # and resumes: decisions kept
    if _has_rensa():                                                               # another backend: started over
        assert run_dedup(tmp_path, backend="rensa")["signature_backend"] == "rensa"
        assert json.loads((tmp_path/"dedup"/"work"/"done.json").read_text())["key"]["signature_backend"] == "rensa"


def _has_rensa():
    try: import rensa  # noqa: F401
    except ImportError: return False
    return True


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(max_codepoint=0x1F600, blacklist_categories=()), max_size=4),
                min_size=60, max_size=150), st.integers(1, 12))
def test_token_hashes_of_a_long_token_list_are_the_per_token_hashes(toks, chunk):
    "The vectorized path of `token_hashes` (code points of all tokens at once, in chunks) gives each token's own hash."
    from phi1_nb.minhash import _joined_hashes, _token_hash, token_hashes
    want = np.array([_token_hash(t) for t in toks], np.uint64)
    assert np.array_equal(token_hashes(toks), want) and np.array_equal(_joined_hashes(toks, chunk), want)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), max_size=300), st.sampled_from([np.uint32, np.uint64]))
def test_sorted_unique_is_np_unique(xs, dtype):
    from phi1_nb.minhash import sorted_unique
    x = np.array([v % (2**32) if dtype is np.uint32 else v for v in xs], dtype)
    assert np.array_equal(sorted_unique(x), np.unique(x)) and sorted_unique(x).dtype == dtype
