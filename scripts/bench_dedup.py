"""Benchmark the dedup and decontamination stages (not run by the tests). Every race is fair: each side gets the same
input, everything is timed in full (no subsets, no extrapolation), the methods run interleaved, and the median of
`--reps` (>= 3) runs is reported.

1. MinHash signatures (word 5-gram shingles of stdlib files, num_perm=128):
   a. signatures only, every side from the same pre-hashed uint64 shingle hashes: datasketch (identity hashfunc),
      rensa's `digest_matrix_from_token_hash_sets` (digests read back with `to_rows`), phi1_nb's MinHasher on each
      backend; for reference rensa from a pre-flattened buffer (an easier input than the others get)
      (calls under 0.1 s are repeated 4-20 times inside one timing and divided, against the machine's noise);
   b. end to end, every side from the same text strings;
   c. Jaccard estimates against the exact Jaccard on sampled pairs, bound 3 sd.
   1b. the same on 5,000 short functions (<= 60 shingles), from hash arrays, the same tokens and the text;
   1c. backend 'auto' (decided per run by the median document size) against rensa's list API on both shapes,
       from hash arrays, the same tokens and the text.
2. Near-duplicate precision/recall on planted copies of stdlib functions (`phi1_nb.dedup.planted_set`: renamed,
   re-printed or re-commented, imports reordered), next to datasketch's word 5-gram MinHashLSH and the previous
   AST normalization (identifiers `ID`, literals `STR`/`NUM`, docstrings dropped).
3. AST match rate, all pairs of `--samples` samples x the 164 HumanEval problems, with and without the prefilter.
4. Decontamination per function: planted copies (`plant_copy`) of the 164 HumanEval solutions pasted at the end of
   larger stdlib files, docstring-only copies, and 2,000 clean stdlib functions, at the Table-3 taus.

usage: python scripts/bench_dedup.py [--files 300] [--functions 3000] [--samples 1000] [--reps 3] [--only 1234]
       (--only c: section 1c alone)
"""
from __future__ import annotations
import argparse, ast, os, random, re, statistics, sys, time
from pathlib import Path

import numpy as np

import phi1_nb.minhash as M
from phi1_nb.dedup import pair_scores, plant_copy, planted_set, stdlib_functions
from phi1_nb.minhash import (KEEP_NAMES, MinHasher, _STR, components, jaccard, ngram_combine, shingle_hashes, word_token_hashes,
                             word_tokens)

NUM_PERM, NGRAM = 128, 5


def stdlib_texts(n):
    root, out = Path(os.__file__).parent, []
    for f in sorted(root.glob("*.py")) + sorted(root.glob("*/*.py")):
        try: t = f.read_text(encoding="utf-8"); ast.parse(t)
        except (UnicodeDecodeError, OSError, SyntaxError): continue
        out.append((str(f.relative_to(root)), t))
        if len(out) >= n: break
    return out


def race(methods, reps, inner=None):
    "Run `methods` ({name: fn}) interleaved `reps` times, rotating who goes first; {name: median seconds a call}."
    ts, names, inner = {k: [] for k in methods}, list(methods), inner or {}
    for r in range(reps):                                  # each run starts with another method: no seat is always first
        for k in names[r % len(names):] + names[:r % len(names)]:
            n = inner.get(k, 1)                            # a fast call is repeated n times in one timing (a busy machine's noise)
            t = time.perf_counter()
            for _ in range(n): methods[k]()
            ts[k].append((time.perf_counter() - t) / n)
    return {k: statistics.median(v) for k, v in ts.items()}


def shingle_strings(toks, n=NGRAM):
    if len(toks) < n: return [" ".join(toks)] if toks else []
    return [" ".join(toks[i:i+n]) for i in range(len(toks) - n + 1)]


def table(title, res, n_sh, ref, ours=()):
    print(f"{title:64s} {'seconds':>8s} {'M shingles/s':>13s} {'vs ' + ref:>16s}")
    for k, t in res.items(): print(f"{k:64s} {t:8.3f} {n_sh/t/1e6:13.2f} {res[ref]/t:15.2f}x")
    for a, b in ours: print(f"  {a} / {b}: {res[b]/res[a]:.2f}x")


def bench_minhash(texts, reps):
    import datasketch, rensa
    shs = [shingle_strings(word_tokens(t)) for _, t in texts]
    pre32 = [np.unique(ngram_combine(word_token_hashes(t), NGRAM)) for _, t in texts]   # the same sets, hashed once
    assert all(len(h) == len(set(d)) for h, d in zip(pre32, shs)), "shingle sets differ"
    pre64 = [h.astype(np.uint64) for h in pre32]
    flat, off = np.concatenate(pre64), np.r_[0, np.cumsum([len(h) for h in pre64])].astype(np.uint64)
    n_sh = int(off[-1])
    print(f"\n== 1. MinHash: {len(texts)} stdlib files, {n_sh:,} distinct word {NGRAM}-gram shingles, num_perm={NUM_PERM}, "
          f"median of {reps} interleaved runs")
    ident = lambda x: int(x)
    mh_r, mh_n = MinHasher(NUM_PERM, 1, "rensa"), MinHasher(NUM_PERM, 1, "numpy")
    names = ["datasketch MinHash.update_batch (identity hashfunc)", "rensa digest_matrix_from_token_hash_sets + to_rows",
             "phi1_nb MinHasher(backend='rensa').signatures -> uint32 array", "phi1_nb MinHasher(backend='numpy').signatures -> uint32 array",
             "(ref.) rensa from a pre-flattened buffer + to_rows", "(ref.) rensa from a pre-flattened buffer, matrix only"]
    res = race(dict(zip(names, [
        lambda: [datasketch.MinHash(NUM_PERM, seed=1, hashfunc=ident).update_batch(h) for h in pre64],
        lambda: rensa.RMinHash.digest_matrix_from_token_hash_sets(pre64, NUM_PERM, 1).to_rows(),
        lambda: mh_r.signatures(pre64), lambda: mh_n.signatures(pre64),
        lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, off, NUM_PERM, 1).to_rows(),
        lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, off, NUM_PERM, 1)])), reps,
        inner={names[1]: 20, names[2]: 20, names[3]: 4, names[4]: 20, names[5]: 20})
    table("a. signatures only, same input: a list of uint64 hash arrays", res, n_sh, names[0],
          [(names[2], names[1]), (names[3], names[1]), (names[2], names[4])])
    print("  (ref.) rows: rensa handed one flat buffer and row offsets, which the others must build from the list")

    def ds_e2e():
        for _, t in texts:
            m = datasketch.MinHash(NUM_PERM, seed=1); m.update_batch([s.encode() for s in shingle_strings(word_tokens(t))])
    res = race({
        "datasketch (regex tokens, join shingles, encode, sha1 update_batch)": ds_e2e,
        "rensa digest_matrix_from_token_sets + to_rows (regex tokens, join)": lambda: rensa.RMinHash.digest_matrix_from_token_sets(
            [shingle_strings(word_tokens(t)) for _, t in texts], NUM_PERM, 1).to_rows(),
        "phi1_nb text -> signatures, backend rensa": lambda: mh_r.signatures([ngram_combine(word_token_hashes(t), NGRAM) for _, t in texts]),
        "phi1_nb text -> signatures, backend numpy": lambda: mh_n.signatures([ngram_combine(word_token_hashes(t), NGRAM) for _, t in texts]),
    }, reps)
    k = list(res)
    table("b. end to end, same text strings", res, n_sh, k[0], [(k[2], k[1]), (k[3], k[1])])

    rng = random.Random(0); names = ["phi1_nb rensa", "phi1_nb numpy", "datasketch", "rensa strings"]
    errs, within, Js = {k: [] for k in names}, {k: 0 for k in names}, []
    for _ in range(200):
        t = texts[rng.randrange(len(texts))][1]; keep = rng.uniform(0.2, 0.95)
        t2 = "\n".join(l for l in t.splitlines() if rng.random() < keep)
        a, b = shingle_strings(word_tokens(t)), shingle_strings(word_tokens(t2))
        if not a or not b: continue
        J = len(set(a) & set(b)) / len(set(a) | set(b)); Js.append(J); sd = np.sqrt(max(J * (1 - J), 1e-9) / NUM_PERM)
        sa, sb = np.unique(shingle_hashes(a, 1)), np.unique(shingle_hashes(b, 1))
        m1, m2 = datasketch.MinHash(NUM_PERM, seed=1), datasketch.MinHash(NUM_PERM, seed=1)
        m1.update_batch([s.encode() for s in a]); m2.update_batch([s.encode() for s in b])
        r1, r2 = rensa.RMinHash(NUM_PERM, 1), rensa.RMinHash(NUM_PERM, 1); r1.update(a); r2.update(b)
        ests = {"phi1_nb rensa": mh_r.signatures([sa, sb]), "phi1_nb numpy": mh_n.signatures([sa, sb])}
        ests = {k: float(np.mean(v[0] == v[1])) for k, v in ests.items()} | {"datasketch": m1.jaccard(m2), "rensa strings": r1.jaccard(r2)}
        for k, e in ests.items(): errs[k].append(abs(e - J)); within[k] += abs(e - J) <= 3 * sd
    n = len(Js)
    print(f"\nc. Jaccard estimates on {n} sampled pairs (exact J {min(Js):.2f}..{max(Js):.2f}), bound 3*sqrt(J(1-J)/{NUM_PERM}):")
    print(f"{'':16s} {'mean |err|':>11s} {'max |err|':>10s} {'within 3 sd':>12s}")
    for k in names: e = np.array(errs[k]); print(f"{k:16s} {e.mean():11.4f} {e.max():10.4f} {within[k]/n:11.1%}")


def bench_small(reps, n_docs=5000, max_shingles=60):
    "Signatures of many short documents (functions of <= max_shingles word 5-grams), same tokens and from the text."
    import rensa
    from phi1_nb.minhash import batch_shingles, texts_shingles, token_hashes
    texts = short_texts(n_docs, max_shingles)
    toks = [word_tokens(t) for t in texts]
    pre64 = [s.astype(np.uint64) for s in texts_shingles(texts)[0]]
    n_sh = sum(len(h) for h in pre64)
    mh_r, mh_n = MinHasher(NUM_PERM, 1, "rensa"), MinHasher(NUM_PERM, 1, "numpy")
    print(f"\n== 1b. MinHash on short documents: {len(texts)} stdlib functions of <= {max_shingles} word {NGRAM}-gram shingles "
          f"({n_sh:,} in all, {n_sh / len(texts):.0f} a document), num_perm={NUM_PERM}, median of {reps} interleaved runs")
    ref = "rensa list API: digest_matrix_from_token_hash_sets + to_rows"
    res = race({ref: lambda: rensa.RMinHash.digest_matrix_from_token_hash_sets(pre64, NUM_PERM, 1).to_rows(),
                "phi1_nb MinHasher('rensa') (rensa's flat-buffer API) -> uint32": lambda: mh_r.signatures(pre64),
                "phi1_nb MinHasher('numpy') -> uint32": lambda: mh_n.signatures(pre64)}, reps)
    table("a. same input: a list of uint64 shingle-hash arrays", res, n_sh, ref)
    flat_tok = [x for t in toks for x in t]; lens = [len(t) for t in toks]
    ref = "rensa list API from the words: join 5-grams, digest_matrix_from_token_sets"
    res = race({ref: lambda: rensa.RMinHash.digest_matrix_from_token_sets([shingle_strings(t) for t in toks], NUM_PERM, 1).to_rows(),
                "phi1_nb from the words: token_hashes + batch_shingles + rensa": lambda: mh_r.signatures(
                    batch_shingles(token_hashes(flat_tok), lens, NGRAM)),
                "phi1_nb from the words: token_hashes + batch_shingles + numpy": lambda: mh_n.signatures(
                    batch_shingles(token_hashes(flat_tok), lens, NGRAM))}, reps)
    table("b. same pre-tokenized words", res, n_sh, ref)
    ref = "rensa list API from the text: regex words, join 5-grams, digest_matrix_from_token_sets"
    res = race({ref: lambda: rensa.RMinHash.digest_matrix_from_token_sets([shingle_strings(word_tokens(t)) for t in texts], NUM_PERM, 1).to_rows(),
                "phi1_nb texts_shingles (one pass) + rensa": lambda: mh_r.signatures(texts_shingles(texts)[0]),
                "phi1_nb texts_shingles (one pass) + numpy": lambda: mh_n.signatures(texts_shingles(texts)[0]),
                "(before) per-text word_token_hashes + ngram_combine + rensa": lambda: mh_r.signatures(
                    [np.unique(ngram_combine(word_token_hashes(t), NGRAM)) for t in texts])}, reps)
    table("c. from the same text strings", res, n_sh, ref)


def short_texts(n_docs=5000, max_shingles=60):
    "Stdlib functions of <= max_shingles word 5-grams (repeated to n_docs when there are fewer)."
    fs = [s for _, s in stdlib_functions(min_lines=1, max_lines=30)]
    texts = [t for t in fs if 0 < len(set(shingle_strings(word_tokens(t)))) <= max_shingles][:n_docs]
    return texts if len(texts) >= n_docs else (texts * (n_docs // len(texts) + 1))[:n_docs]


def bench_auto(shapes, reps):
    "Backend 'auto' (decided per run by the median document size) against rensa's list API, per shape and input."
    import rensa
    from phi1_nb.minhash import batch_shingles, texts_shingles, token_hashes
    from phi1_nb.signature_backend import AUTO_NUMPY_SHINGLES
    print(f"\n== 1c. backend 'auto' (NumPy when the first batch's median document has < {AUTO_NUMPY_SHINGLES} shingles, else rensa) "
          f"against rensa's list API, same input, median of {reps} interleaved runs; x = rensa list API seconds / ours")
    print(f"{'shape':34s} {'input':12s} {'auto is':>8s} {'rensa list s':>12s} {'auto s':>8s} {'auto':>7s} {'numpy':>7s} {'rensa':>7s}")
    for label, texts in shapes:
        toks = [word_tokens(t) for t in texts]; flat_tok = [x for t in toks for x in t]; lens = [len(t) for t in toks]
        pre64 = [s.astype(np.uint64) for s in texts_shingles(texts)[0]]
        chosen = MinHasher(NUM_PERM, 1); chosen.signatures(pre64)
        ours = lambda f, be: (lambda: MinHasher(NUM_PERM, 1, be).signatures(f()))   # a fresh hasher: 'auto' decides each call
        for inp, ref, feed in [
                ("hash arrays", lambda: rensa.RMinHash.digest_matrix_from_token_hash_sets(pre64, NUM_PERM, 1).to_rows(), lambda: pre64),
                ("tokens", lambda: rensa.RMinHash.digest_matrix_from_token_sets([shingle_strings(t) for t in toks], NUM_PERM, 1).to_rows(),
                 lambda: batch_shingles(token_hashes(flat_tok), lens, NGRAM)),
                ("text", lambda: rensa.RMinHash.digest_matrix_from_token_sets([shingle_strings(word_tokens(t)) for t in texts],
                                                                              NUM_PERM, 1).to_rows(), lambda: texts_shingles(texts)[0])]:
            fns = {"ref": ref, "auto": ours(feed, "auto"), "numpy": ours(feed, "numpy"), "rensa": ours(feed, "rensa")}
            res = race(fns, reps, inner={k: 10 for k in fns} if inp == "hash arrays" else None)   # ms calls: 10 a timing
            x = {k: res["ref"] / res[k] for k in ("auto", "numpy", "rensa")}
            print(f"{label:34s} {inp:12s} {chosen.backend:>8s} {res['ref']:12.3f} {res['auto']:8.3f} "
                  + " ".join(f"{x[k]:6.2f}x" for k in ("auto", "numpy", "rensa")))


# ---- 2. planted near-duplicates ------------------------------------------------------------------------
_OLD_TOKEN = re.compile(rf"""(?P<str>{_STR})|(?P<com>\#[^\r\n]*)|(?P<cont>\\\r?\n)|(?P<nl>\r?\n[ \t]*)
    |(?P<num>0[xXoObB][\da-fA-F_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?[jJ]?)|(?P<name>[^\W\d]\w*)
    |(?P<op>\*\*=?|//=?|<<=?|>>=?|->|:=|\.\.\.|[-+*/%&|^@<>=!]=|[^\s\w])""", re.X)

def old_code_tokens(code):
    "The previous normalization (before issue 17): every identifier ID, literals STR/NUM, docstrings dropped."
    try: ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError): return None
    toks = [(m.lastgroup, m.group()) for m in _OLD_TOKEN.finditer(code) if m.lastgroup not in ("com", "cont")]
    out, indents, pending, depth, line_tok = [], [0], 0, 0, False
    for i, (kind, t) in enumerate(toks):
        if kind == "nl":
            if depth: continue
            if line_tok: out.append("NEWLINE"); line_tok = False
            pending = len(t.lstrip("\r\n")); continue
        if not line_tok:
            while pending < indents[-1]: indents.pop(); out.append("DEDENT")
            if pending > indents[-1]: indents.append(pending); out.append("INDENT")
        if kind == "str":
            nxt = toks[i+1][0] if i + 1 < len(toks) else "nl"
            if not line_tok and nxt == "nl" and not depth: continue
            out.append("STR")
        elif kind == "num": out.append("NUM")
        elif kind == "name": out.append(t if t in KEEP_NAMES else "ID")
        else: depth = max(depth + (t in "([{") - (t in ")]}"), 0); out.append(t)
        line_tok = True
    if line_tok: out.append("NEWLINE")
    return out + ["DEDENT"] * (len(indents) - 1)


def datasketch_minhashes(texts):
    from datasketch import MinHash
    out = []
    for t in texts:
        m = MinHash(NUM_PERM, seed=1); m.update_batch([s.encode() for s in set(shingle_strings(word_tokens(t)))]); out.append(m)
    return out


def datasketch_lsh(mhs, threshold):
    "datasketch's word 5-gram MinHashLSH (candidates unverified, as datasketch returns them); the earliest record of a component stays."
    from datasketch import MinHashLSH
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    for i, m in enumerate(mhs): lsh.insert(i, m)
    pairs = [(i, j) for i, m in enumerate(mhs) for j in lsh.query(m) if j < i]
    return {i: c[0] for c in components(len(mhs), pairs) for i in c[1:]}


def index(texts, shingles, tokens=None):
    "A `DedupIndex` of the texts (shingled once; `resolve()` at each threshold), with another tokenizer if given."
    from phi1_nb.dedup import DedupIndex
    keep = M.code_flow   # another tokenizer: its tokens, no data flow
    if tokens: M.code_flow = lambda c: None if (t := tokens(c)) is None else (t, None)
    try: ix = DedupIndex(shingles=shingles); ix.add_batch(texts); return ix
    finally: M.code_flow = keep


def resolve(ix, th):
    ix.threshold = th; return ix.resolve()["duplicate_of"]


def bench_quality(n_functions):
    texts, group = planted_set(n_functions, seed=0)
    copies = len(texts) - n_functions
    print(f"\n== 2. Planted near-duplicates: {n_functions} distinct stdlib functions + {copies} planted copies "
          f"(renamed p=0.8, then re-printed p=0.35 or re-commented p=0.45, imports reordered)")
    print(f"{'method':52s} {'threshold':>9s} {'precision':>9s} {'recall':>7s} {'false pairs':>11s} {'seconds':>8s}")
    print("(seconds: shingling and signatures, once per method, then each threshold's LSH, verification and clusters)")
    for name, prep, run, ths in [
            ("datasketch MinHashLSH, word 5-grams (unverified)", datasketch_minhashes, datasketch_lsh, (0.5, 0.7, 0.8)),
            ("phi1_nb word 5-grams (verified)", lambda t: index(t, "word"), resolve, (0.5, 0.7, 0.8)),
            ("previous AST normalization (ID/STR/NUM)", lambda t: index(t, "ast", old_code_tokens), resolve, (0.7, 0.8, 0.9)),
            ("phi1_nb canonical code (default 0.8)", lambda t: index(t, "ast"), resolve, (0.7, 0.8, 0.9))]:
        t = time.perf_counter(); state = prep(texts); t_prep = time.perf_counter() - t
        for th in ths:
            t = time.perf_counter(); d = run(state, th); dt = time.perf_counter() - t
            s = pair_scores(d, group)
            print(f"{name:52s} {th:9.2f} {s['precision']:9.3f} {s['recall']:7.3f} {s['false_pairs']:11d} {t_prep + dt:8.2f}")


def pair_table(dup, group, kind):
    "Pairwise precision/recall/F1 over all pairs, and per edit kind (recall: copies in their original's cluster)."
    import itertools
    from collections import defaultdict
    def root(i):
        while i in dup: i = dup[i]
        return i
    by, gb = defaultdict(list), defaultdict(list)
    for i in range(len(group)): by[root(i)].append(i); gb[group[i]].append(i)
    pred = {p for c in by.values() for p in itertools.combinations(sorted(c), 2)}
    true = {p for c in gb.values() for p in itertools.combinations(sorted(c), 2)}
    tp = len(pred & true); P, R = tp / max(len(pred), 1), tp / max(len(true), 1)
    rows = {"all pairs": (P, R, 2 * P * R / max(P + R, 1e-9), f"{tp}/{len(true)}")}
    for k in sorted(set(kind) - {"original"}):
        idx = {i for i in range(len(group)) if kind[i] == k}
        wrong = sum(1 for a, b in pred if (a in idx or b in idx) and group[a] != group[b])
        if k in ("enum", "table", "template", "short"): rows[k] = (None, None, None, f"{wrong} merges"); continue
        found = sum(root(i) == root(group[i]) for i in idx)
        p, r = found / max(found + wrong, 1), found / max(len(idx), 1)
        rows[k] = (p, r, 2 * p * r / max(p + r, 1e-9), f"{found}/{len(idx)}")
    return rows


def bench_generators(n):
    "Both planted sets, per edit kind, the stage (canonical code, 0.8) against datasketch word 5-gram MinHashLSH (0.7)."
    sys.path.insert(0, str(Path(__file__).parent))
    from plant_edits import edited_set
    from phi1_nb.dedup import find_duplicates
    t1, g1 = planted_set(n, seed=0); k1 = ["original" if g == i else "planted_copy" for i, g in enumerate(g1)]
    t2, g2, k2 = edited_set(n=n // 5 if n >= 3000 else 600, seed=0)
    for name, (texts, group, kind) in [("1 (plant_copy: bound names renamed, reprinted or recommented)", (t1, g1, k1)),
                                       ("2 (plant_edits: real edits + hard negatives, written from edits)", (t2, g2, k2))]:
        t = time.perf_counter(); ours = pair_table(find_duplicates(texts, shingles="ast", threshold=0.8)["duplicate_of"], group, kind)
        t_ours = time.perf_counter() - t
        t = time.perf_counter(); ds = pair_table(datasketch_lsh(datasketch_minhashes(texts), 0.7), group, kind); t_ds = time.perf_counter() - t
        print(f"\n== 2. Generator {name}: {len(texts)} records ({ours['all pairs'][3].split('/')[1]} true pairs)")
        print(f"{'edit kind':14s} {'found':>9s} {'P':>6s} {'R':>6s} {'F1':>6s} | {'datasketch':>10s} {'P':>6s} {'R':>6s} {'F1':>6s}")
        f = lambda x: "     -" if x is None else f"{x:6.3f}"
        for k in ours:
            a, b = ours[k], ds[k]
            print(f"{k:14s} {a[3]:>9s} {f(a[0])} {f(a[1])} {f(a[2])} | {b[3]:>10s} {f(b[0])} {f(b[1])} {f(b[2])}")
        print(f"seconds: the stage {t_ours:.1f}, datasketch {t_ds:.1f}")


# ---- 3. AST match rate --------------------------------------------------------------------------------
def bench_match_rate(n_samples):
    from phi1_nb.decontaminate import ast_match_rates, load_benchmark
    probs = load_benchmark("humaneval"); rng = random.Random(0)
    samples = [s for _, s in rng.sample(stdlib_functions(min_lines=1, max_lines=10**6), n_samples - 20)]
    samples += [p["unit"].replace("(", " (", 1) for p in rng.sample(probs, 20)]
    units = [p["unit"] for p in probs]
    print(f"\n== 3. AST match rate: {len(samples)} samples (stdlib functions + 20 HumanEval solutions) x {len(probs)} problems")
    print(f"{'':42s} {'seconds':>8s} {'pairs scored':>13s} {'samples >= 0.8':>15s} {'us/pair':>8s}")
    for name, floor in [("no prefilter (all pairs, exact)", 0.0), ("prefilter (size + node-type bag bound), 0.8", 0.8)]:
        t = time.perf_counter(); r = ast_match_rates(samples, units, min_match_rate=floor); dt = time.perf_counter() - t
        print(f"{name:42s} {dt:8.2f} {r['n_scored']:13,d} {int((r['best'] >= 0.8).sum()):15d} {dt/len(samples)/len(units)*1e6:8.2f}")


# ---- 4. decontamination per function
IDIOMS = ["def count(items):\n    return len(items)\n", "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n",
          "def join_words(words):\n    return ' '.join(words)\n", "def is_even(n):\n    return n % 2 == 0\n",
          "def first(xs):\n    return xs[0] if xs else None\n", "def square(x):\n    return x * x\n",
          "def total(xs):\n    return sum(xs)\n", "def maximum(xs):\n    return max(xs)\n",
          "def reverse(s):\n    return s[::-1]\n", "def upper(s):\n    return s.upper()\n",
          "def flatten(rows):\n    return [x for r in rows for x in r]\n", "def unique(xs):\n    return sorted(set(xs))\n",
          "def add(a, b):\n    return a + b\n", "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
          "def mean(xs):\n    return sum(xs) / len(xs)\n", "def is_empty(s):\n    return len(s) == 0\n",
          "def last(xs):\n    return xs[-1]\n", "def words(text):\n    return text.split()\n",
          "def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)\n", "def swap(a, b):\n    return b, a\n",
          "def count_char(s, c):\n    return s.count(c)\n", "def keys(d):\n    return list(d)\n",
          "def is_upper(s):\n    return s.isupper()\n", "def evens(xs):\n    return [x for x in xs if x % 2 == 0]\n",
          "def absdiff(a, b):\n    return abs(a - b)\n", "def lines(text):\n    return text.splitlines()\n",
          "def contains(xs, x):\n    return x in xs\n", "def pairs(xs):\n    return list(zip(xs, xs[1:]))\n"]

def bench_decontaminate(n_clean):
    from phi1_nb.decontaminate import Checker, load_benchmark
    probs = load_benchmark("humaneval"); rng = random.Random(0); ck = Checker(probs, floor=0.8)
    big = [t for _, t in stdlib_texts(400) if 3000 < len(t) < 60000]
    emb = [dict(id=f"e{j}", content=rng.choice(big) + "\n\n" + plant_copy(p["unit"], rng)) for j, p in enumerate(probs)]
    docs = [dict(id=f"d{j}", content=f'def solve(data, k=1):\n    """{p["docstring"]}"""\n    return sorted(data)[:k]\n')
            for j, p in enumerate(probs)]
    clean = [dict(id=n, content=s) for n, s in rng.sample(stdlib_functions(min_lines=1, max_lines=10**6), n_clean)]
    import ast as _a
    def strip(code, method=False):
        t = _a.parse(code)
        for n in _a.walk(t):
            if isinstance(n, _a.arg): n.annotation = None
            if isinstance(n, _a.FunctionDef):
                n.returns = None
                if isinstance(n.body[0], _a.Expr) and isinstance(n.body[0].value, _a.Constant): n.body = n.body[1:] or [_a.Pass()]
        if method:
            fn = [n for n in t.body if isinstance(n, _a.FunctionDef)][-1]; fn.args.args.insert(0, _a.arg("self"))
            t = _a.Module([n for n in t.body if isinstance(n, (_a.Import, _a.ImportFrom))] + [_a.ClassDef("Solver", [], [], [fn], [])], [])
        return _a.unparse(_a.fix_missing_locations(t))
    def split(code):   # the last statement of the body moved into a helper the solution calls
        t = _a.parse(strip(code)); fn = [n for n in t.body if isinstance(n, _a.FunctionDef)][-1]
        if len(fn.body) < 2: return None
        args = [a.arg for a in fn.args.args]
        helper = _a.FunctionDef("_finish", _a.arguments([], [_a.arg(a) for a in args], None, [], [], None, []),
                                fn.body[len(fn.body) // 2:], [], None)
        fn.body = fn.body[:len(fn.body) // 2] + [_a.Return(_a.Call(_a.Name("_finish"), [_a.Name(a) for a in args], []))]
        t.body.insert(t.body.index(fn), helper)
        return _a.unparse(_a.fix_missing_locations(t))
    hints = [dict(id=f"h{j}", content=strip(p["code"])) for j, p in enumerate(probs)]
    meth = [dict(id=f"m{j}", content=strip(p["code"], True)) for j, p in enumerate(probs)]
    sp = [(dict(id=f"s{j}", content=c), p) for j, p in enumerate(probs) if (c := split(p["code"]))]
    idioms = [dict(id=f"i{j}", content=c) for j, c in enumerate(IDIOMS)]
    mb = Path(__file__).parent.parent/"tests"/"fixtures"/"mbpp_sample.jsonl"
    mbpp = load_benchmark(f"mbpp:{mb}"); ck2 = Checker(probs + mbpp, floor=0.8)
    for name, recs, ps, c in [(f"{len(hints)} solutions, hints stripped, no docstring", hints, probs, ck),
                              (f"{len(meth)} solutions as methods without docstring", meth, probs, ck),
                              (f"{len(sp)} solutions split across a helper function", [r for r, _ in sp], [p for _, p in sp], ck),
                              (f"{len(mbpp)} MBPP solutions (the shipped fixture, mbpp:<path>)", [dict(id=p["task_id"], content=p["code"]) for p in mbpp], mbpp, ck2)]:
        res, _ = c.check(recs)
        right = sum(1 for (g, r), p in zip(res, ps) if g and any(m["task_id"] == p["task_id"] for m in r["matched_problems"]))
        print(f"{name:58s} caught {right}/{len(recs)} = {right/len(recs):6.1%}")
    res, _ = ck.check(idioms); gone = sum(g for g, _ in res)
    print(f"{len(idioms)} short independent idioms (not from HumanEval){'':14s} flagged {gone}/{len(idioms)} = {gone/len(idioms):6.1%}")
    print(f"\n== 4. Decontamination per function (HumanEval, default tau 0.95, docstring coverage 0.5)")
    for name, recs, want in [(f"{len(emb)} planted copies of solutions pasted into larger stdlib files", emb, True),
                             (f"{len(docs)} docstring-only copies (another body)", docs, True),
                             (f"{len(clean)} clean stdlib functions", clean, False)]:
        t = time.perf_counter(); res, info = ck.check(recs); dt = time.perf_counter() - t
        gone = sum(g for g, _ in res)
        right = sum(1 for (g, r), p in zip(res, probs) if g and any(m["task_id"] == p["task_id"] for m in r["matched_problems"])) if want else 0
        by_tau = {tau: int((np.asarray(info["best"]) >= tau).sum()) for tau in (0.95, 0.9, 0.85, 0.8)}
        print(f"{name:58s} removed {gone}/{len(recs)} = {gone/len(recs):6.1%}" + (f" (right problem: {right})" if want else "")
              + f"  AST best >= tau {by_tau}  {dt:.1f}s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300); ap.add_argument("--functions", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=1000); ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="1234")
    a = ap.parse_args()
    if a.reps < 3: sys.exit("--reps must be at least 3 (the median of 3 or more runs)")
    if "1" in a.only:
        print(f"backend 'auto' (the default) is decided per run by the input's sizes (1c); load {os.getloadavg()[0]:.1f}")
        bench_minhash(stdlib_texts(a.files), a.reps); bench_small(a.reps)
    if "1" in a.only or "c" in a.only:
        bench_auto([(f"{a.files} stdlib files", [t for _, t in stdlib_texts(a.files)]),
                    ("5,000 functions of <= 60 shingles", short_texts())], max(a.reps, 5))
    if "2" in a.only: bench_generators(a.functions)
    if "3" in a.only: bench_match_rate(a.samples)
    if "4" in a.only: bench_decontaminate(2000)
