"""Benchmark the dedup and decontamination stages (not run by the tests).

1. MinHash signature throughput on the standard library (word 5-gram shingles, num_perm=128): phi1_nb's
   vectorized MinHasher next to datasketch's `MinHash.update_batch` and rensa's `RMinHash`, both from the
   same shingle strings (signature only) and end to end from the text; Jaccard estimates checked against the
   exact Jaccard on sampled pairs (same sets for all three).
2. Near-duplicate precision/recall on the stdlib corpus with planted near-duplicates (renamed variables,
   reordered functions, added comments), word shingles vs AST-normalized shingles.
3. AST match rate for all pairs of 1,000 samples x the 164 HumanEval problems, with and without the exact prefilter.

usage: .venv/bin/python scripts/bench_dedup.py [--files 400] [--samples 1000]
"""
from __future__ import annotations
import argparse, ast, os, random, re, sys, time
from pathlib import Path

import numpy as np

from phi1_nb.dedup import MinHasher, find_duplicates, jaccard, ngram_combine, shingle_hashes, word_token_hashes, word_tokens

NUM_PERM, NGRAM = 128, 5


def stdlib_texts(n):
    root = Path(os.__file__).parent
    files = sorted(root.glob("*.py")) + sorted(root.glob("*/*.py"))
    out = []
    for f in files:
        try: t = f.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError): continue
        try: ast.parse(t)
        except SyntaxError: continue
        out.append((str(f.relative_to(root)), t))
        if len(out) >= n: break
    return out


def best_of(fn, reps=3):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); r = fn(); ts.append(time.perf_counter() - t)
    return min(ts), r


def shingle_strings(toks, n=NGRAM):
    if len(toks) < n: return [" ".join(toks)] if toks else []
    return [" ".join(toks[i:i+n]) for i in range(len(toks) - n + 1)]


def bench_minhash(texts):
    import datasketch, rensa
    toks = [word_tokens(t) for _, t in texts]
    shs = [shingle_strings(t) for t in toks]
    n_sh = sum(map(len, shs)); n_docs = len(shs)
    print(f"\n== 1. MinHash signatures: {n_docs} stdlib files, {n_sh:,} word {NGRAM}-gram shingles, num_perm={NUM_PERM}")
    enc = [[s.encode() for s in d] for d in shs]
    pre = [ngram_combine(word_token_hashes(t), NGRAM) for _, t in texts]          # our 32-bit shingle hashes
    pre64 = [h.astype(np.uint64) for h in pre]
    assert all(len(np.unique(h)) == len(set(d)) for h, d in zip(pre, shs)), "shingle sets differ"
    mh, oph = MinHasher(NUM_PERM, seed=1), MinHasher(NUM_PERM, seed=1, scheme="oph")
    # datasketch is slow: time it on a quarter of the files and scale by shingle count
    sub = max(1, n_docs // 4); k = sum(map(len, shs[:sub]))
    t_ds = best_of(lambda: [datasketch.MinHash(NUM_PERM, seed=1).update_batch(d) for d in enc[:sub]], 1)[0] * n_sh / k
    def rensa_sig():
        for d in shs:
            m = rensa.RMinHash(NUM_PERM, 1); m.update(d); m.digest()
    rows = [("datasketch MinHash.update_batch (bytes; sha1 inside)", t_ds),
            ("rensa RMinHash.update (strings; hashing inside)", best_of(rensa_sig)[0]),
            ("rensa digest_matrix_from_token_sets (strings, bulk)", best_of(lambda: rensa.RMinHash.digest_matrix_from_token_sets(shs, NUM_PERM, 1))[0]),
            ("rensa digest_matrix_from_token_hash_sets (pre-hashed)", best_of(lambda: rensa.RMinHash.digest_matrix_from_token_hash_sets(pre64, NUM_PERM, 1))[0]),
            ("phi1_nb MinHasher.signatures (pre-hashed), 1 thread", best_of(lambda: mh.signatures(pre))[0]),
            ("phi1_nb MinHasher.signatures (pre-hashed), 2 threads", best_of(lambda: mh.signatures(pre, threads=2))[0]),
            ("phi1_nb MinHasher(scheme='oph') (pre-hashed)", best_of(lambda: oph.signatures(pre))[0])]
    print(f"{'signature only, same shingle sets':56s} {'seconds':>8s} {'M shingles/s':>13s} {'vs datasketch':>14s}")
    for name, t in rows: print(f"{name:56s} {t:8.3f} {n_sh/t/1e6:13.2f} {t_ds/t:13.1f}x")

    def ds_e2e(ts):
        for _, t in ts:
            m = datasketch.MinHash(NUM_PERM, seed=1); m.update_batch([s.encode() for s in shingle_strings(word_tokens(t))])
    def rensa_e2e():
        for _, t in texts:
            m = rensa.RMinHash(NUM_PERM, 1); m.update(shingle_strings(word_tokens(t))); m.digest()
    def ours_e2e(threads=1, h=mh): h.signatures([ngram_combine(word_token_hashes(t), NGRAM) for _, t in texts], threads=threads)
    t_ds_e2e = best_of(lambda: ds_e2e(texts[:sub]), 1)[0] * n_sh / k
    rows = [("datasketch (regex tokens, join shingles, encode, update_batch)", t_ds_e2e),
            ("rensa RMinHash (regex tokens, join shingles, update)", best_of(rensa_e2e)[0]),
            ("rensa bulk matrix (regex tokens, join shingles)", best_of(lambda: rensa.RMinHash.digest_matrix_from_token_sets(
                [shingle_strings(word_tokens(t)) for _, t in texts], NUM_PERM, 1))[0]),
            ("phi1_nb (vectorized token hashes, n-grams, signatures), 1 thread", best_of(ours_e2e)[0]),
            ("phi1_nb, 2 threads for the signatures", best_of(lambda: ours_e2e(2))[0]),
            ("phi1_nb, scheme='oph'", best_of(lambda: ours_e2e(1, oph))[0])]
    print(f"{'end to end, from the text':66s} {'seconds':>8s} {'M shingles/s':>13s} {'vs datasketch':>14s}")
    for name, t in rows: print(f"{name:66s} {t:8.3f} {n_sh/t/1e6:13.2f} {t_ds_e2e/t:13.1f}x")

    # Jaccard error on sampled pairs: a file vs the same file with a random fraction of its lines dropped
    rng = random.Random(0); errs = {"phi1_nb": [], "phi1_nb oph": [], "datasketch": [], "rensa": []}; within = {k: 0 for k in errs}; n_pairs = 0; Js = []
    for _ in range(200):
        _, t = texts[rng.randrange(n_docs)]
        keep = rng.uniform(0.2, 0.95)
        t2 = "\n".join(l for l in t.splitlines() if rng.random() < keep)
        a, b = shingle_strings(word_tokens(t)), shingle_strings(word_tokens(t2))
        if not a or not b: continue
        J = len(set(a) & set(b)) / len(set(a) | set(b)); Js.append(J)
        ours = mh.signatures([shingle_hashes(a, 1), shingle_hashes(b, 1)])
        ours_oph = oph.signatures([shingle_hashes(a, 1), shingle_hashes(b, 1)])
        m1, m2 = datasketch.MinHash(NUM_PERM, seed=1), datasketch.MinHash(NUM_PERM, seed=1)
        m1.update_batch([s.encode() for s in a]); m2.update_batch([s.encode() for s in b])
        r1, r2 = rensa.RMinHash(NUM_PERM, 1), rensa.RMinHash(NUM_PERM, 1); r1.update(a); r2.update(b)
        sd = np.sqrt(max(J * (1 - J), 1e-9) / NUM_PERM)
        for name, est in [("phi1_nb", float(np.mean(ours[0] == ours[1]))), ("phi1_nb oph", float(np.mean(ours_oph[0] == ours_oph[1]))),
                          ("datasketch", m1.jaccard(m2)), ("rensa", r1.jaccard(r2))]:
            errs[name].append(abs(est - J)); within[name] += abs(est - J) <= 3 * sd
        n_pairs += 1
    print(f"\nJaccard estimates on {n_pairs} sampled pairs (exact J from {min(Js):.2f} to {max(Js):.2f}), bound 3*sqrt(J(1-J)/{NUM_PERM}):")
    print(f"{'':12s} {'mean |err|':>11s} {'max |err|':>10s} {'within 3 sd':>12s}")
    for name in errs:
        e = np.array(errs[name]); print(f"{name:12s} {e.mean():11.4f} {e.max():10.4f} {within[name]/n_pairs:11.1%}")


# ---- 2. planted near-duplicates -------------------------------------------------------------------------
def rename_variables(code, rng):
    "Rename every name the module binds (functions, classes, arguments, assigned names) consistently."
    tree = ast.parse(code); names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(n.name)
        elif isinstance(n, ast.arg): names.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store): names.add(n.id)
    names -= {"self", "cls"}
    names = [n for n in names if not n.startswith("__")]
    mapping = {n: f"{n[:1]}{rng.randrange(10**6)}_{len(n)}" for n in names}
    if not mapping: return code
    pat = re.compile(r"\b(" + "|".join(map(re.escape, sorted(mapping, key=len, reverse=True))) + r")\b")
    return pat.sub(lambda m: mapping[m.group(1)], code)


def reorder_functions(code, rng):
    "Shuffle the module's top-level function and class definitions."
    tree = ast.parse(code); lines = code.splitlines(keepends=True)
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    if len(defs) < 2: return code
    spans = [((n.decorator_list[0].lineno if n.decorator_list else n.lineno) - 1, n.end_lineno) for n in defs]
    blocks = ["".join(lines[s:e]) for s, e in spans]
    rng.shuffle(blocks)
    out, prev = [], 0
    for (s, e), b in zip(spans, blocks):
        out.append("".join(lines[prev:s])); out.append(b if b.endswith("\n") else b + "\n"); prev = e
    out.append("".join(lines[prev:]))
    return "".join(out)


def add_comments(code, rng):
    "Add a comment line every few lines and a header comment."
    out = ["# Copied from an internal tool; kept for reference.\n"]
    for i, l in enumerate(code.splitlines(keepends=True)):
        out.append(l)
        if i % 6 == 5 and l.strip() and not l.rstrip().endswith(("\\", ",", "(", "[", "{")):
            ind = len(l) - len(l.lstrip())
            out.append(" " * ind + f"# step {i}: see the notes above\n")
    return "".join(out)


def bench_quality(texts, n_plant=60):
    rng = random.Random(0)
    base = [t for _, t in texts if 2_000 < len(t) < 60_000]
    # the stdlib has real near-duplicates of its own (encodings/cp*.py, ...): drop every file either method
    # clusters, so that each predicted pair is either a planted one or a false positive
    for sh in ("word", "ast"):
        r = find_duplicates(base, shingles=sh, threshold=0.5, num_perm=NUM_PERM)
        clustered = {i for cs in r["clusters"].values() for c in cs for i in c}
        base = [t for i, t in enumerate(base) if i not in clustered]
    docs = list(base); truth = {}
    kinds = [("renamed variables", rename_variables), ("reordered functions", reorder_functions), ("added comments", add_comments)]
    picks = rng.sample(range(len(base)), min(n_plant * len(kinds), len(base)))
    for k, i in enumerate(picks):
        kind, fn = kinds[k % len(kinds)]
        v = fn(base[i], rng)
        try: ast.parse(v)
        except SyntaxError: continue
        truth[(i, len(docs))] = kind; docs.append(v)
    print(f"\n== 2. Planted near-duplicates: {len(base)} stdlib files + {len(truth)} variants "
          f"({', '.join(f'{sum(1 for v in truth.values() if v == k)} {k}' for k, _ in kinds)})")
    print(f"{'shingles':9s} {'threshold':>9s} {'precision':>9s} {'recall':>7s}  " + "  ".join(f"{k:>20s}" for k, _ in kinds) + f" {'seconds':>8s}")
    for sh in ("word", "ast"):
        for th in (0.5, 0.7):
            t = time.perf_counter()
            res = find_duplicates(docs, exact=True, shingles=sh, ngram=NGRAM, threshold=th, num_perm=NUM_PERM)
            dt = time.perf_counter() - t
            pred = set()
            for cs in res["clusters"].values():
                for c in cs: pred |= {(min(a, b), max(a, b)) for a in c for b in c if a < b}
            tp = pred & set(truth)
            p = len(tp) / len(pred) if pred else 1.0; r = len(tp) / len(truth)
            per = [sum(1 for x in tp if truth[x] == k) / max(1, sum(1 for v in truth.values() if v == k)) for k, _ in kinds]
            print(f"{sh:9s} {th:9.2f} {p:9.3f} {r:7.3f}  " + "  ".join(f"{x:20.3f}" for x in per) + f" {dt:8.2f}")


# ---- 3. AST match rate --------------------------------------------------------------------------------
def bench_match_rate(texts, n_samples):
    from phi1_nb.decontaminate import load_benchmark, ast_match_rates
    probs = load_benchmark("humaneval")
    funcs = []
    for _, t in texts:
        lines = t.splitlines(keepends=True)
        for n in ast.parse(t).body:
            if isinstance(n, ast.FunctionDef): funcs.append("".join(lines[n.lineno-1:n.end_lineno]))
    rng = random.Random(0)
    samples = rng.sample(funcs, min(n_samples - 20, len(funcs)))
    samples += [rename_variables(p["code"], rng) for p in rng.sample(probs, 20)]  # planted near-copies
    print(f"\n== 3. AST match rate: {len(samples)} samples (stdlib functions + 20 renamed HumanEval solutions) x {len(probs)} HumanEval problems")
    bcode = [p["code"] for p in probs]
    print(f"{'':42s} {'seconds':>8s} {'pairs scored':>13s} {'samples >= 0.8':>15s} {'us/pair (all pairs)':>20s}")
    for name, floor in [("no prefilter (all pairs, exact)", 0.0), ("prefilter (size + node-type bag bound), 0.8", 0.8)]:
        t = time.perf_counter()
        r = ast_match_rates(samples, bcode, min_match_rate=floor)
        dt = time.perf_counter() - t
        n_hi = int((r["best"] >= 0.8).sum())
        print(f"{name:42s} {dt:8.2f} {r['n_scored']:13,d} {n_hi:15d} {dt/len(samples)/len(bcode)*1e6:20.2f}")
    per_pair = dt / len(samples) / len(bcode)
    print(f"extrapolated to the paper's 879.5K x 164 with the prefilter: {per_pair*879_500*164/60:.1f} minutes on one core")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--files", type=int, default=400); ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--only", default="123")
    a = ap.parse_args()
    texts = stdlib_texts(a.files)
    if "1" in a.only: bench_minhash(texts)
    if "2" in a.only: bench_quality(texts)
    if "3" in a.only: bench_match_rate(stdlib_texts(3000), a.samples)
