"""Why signature verification drops more than exact verification as the corpus grows (not run by the tests).

On the Stack-style corpus of `scripts/bench_scale.py` (the first `n` records of one generated stream, so each size is a
prefix of the next), with the dedup stage's own functions (`exact_key`, `texts_shingles`, `MinHasher`, `lsh_params`,
`candidate_pairs`, `similar`, `estimate_jaccard`, `words_agree`, `components`):

- the LSH candidate pairs among the records left after exact dedup, and per pair the exact Jaccard of the shingle sets
  and the estimate from the signatures;
- the pairs each verification accepts: exact (`similar`: the dedup stage's `verify: exact`) and signature
  (`estimate >= threshold` and `words_agree`: `verify: signature`); a *false union* is a pair the signature accepts
  whose exact Jaccard is below the threshold (and that `similar` rejects);
- the records each drops (components of the accepted pairs, `components`, one kept each), and how many of the records
  only the signature drops sit in a component that a false union joined (union-find chaining: one false pair merges
  two clusters).

Both settings: the bench_scale/tiny one (threshold 0.8, 128 permutations) and the paper preset's (0.85, 256).
Features are computed once for the largest size (cached in `--cache`), the smaller sizes are prefixes.

usage: python scripts/bench_verify.py [--sizes 5000,20000,80000] [--cache /tmp/phi1_verify] [--json out.json]
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT/"scripts"))
SETTINGS = {"tiny (0.8, 128 perm)": dict(threshold=0.8, num_perm=128), "paper (0.85, 256 perm)": dict(threshold=0.85, num_perm=256)}


def _shingle(args):
    texts, shingles, ngram = args
    from phi1_nb.minhash import texts_shingles
    s, _, w = texts_shingles(texts, shingles, ngram); return s, w


def records(n:int, stage_dir=None):
    "The first `n` records of bench_scale's stream: read from `stage_dir` (made by its `make_stage`) when given."
    if stage_dir is None:
        from bench_scale import stack_records
        yield from stack_records(n); return
    from phi1_nb.core import read_dataset
    for k, r in enumerate(read_dataset(stage_dir)):
        if k >= n: return
        yield r
    if k + 1 < n: raise SystemExit(f"{stage_dir} holds {k + 1:,} records, not {n:,}")


def features(n:int, cache:Path, shingles:str="ast", ngram:int=5, batch:int=1000, stage_dir=None, procs:int=2):
    "Exact keys, shingle sets, words, lengths, scores of the first `n` records (cached; a longer cache serves a prefix)."
    import multiprocessing as mp
    from phi1_nb.minhash import exact_key
    cache.mkdir(parents=True, exist_ok=True)
    for m, p in sorted((int(p.stem.split("_")[1]), p) for p in cache.glob(f"feat_*_{shingles}.npz")):
        if m >= n:
            z = np.load(p, allow_pickle=True)
            return {k: z[k][:n] for k in ("keys", "sets", "words", "lengths", "scores")}
    keys, lengths, scores, texts, t = [], [], [], [], time.time()
    for r in records(n, stage_dir):
        keys.append(exact_key(r["content"])); lengths.append(len(r["content"])); scores.append(r["educational_value"])
        texts.append(r["content"])
    jobs = [(texts[a:a + batch], shingles, ngram) for a in range(0, n, batch)]
    with mp.get_context("fork").Pool(procs) as pool: got = pool.map(_shingle, jobs, chunksize=1)
    sets, words = [x for s, _ in got for x in s], [x for _, w in got for x in w]
    print(f"  features of {n:,} records in {time.time() - t:.0f} s", flush=True)
    obj = lambda xs: np.array(xs + [None], object)[:-1]     # an object array of arrays (not a 2-d array)
    out = dict(keys=np.array(keys), sets=obj(sets), words=obj(words), lengths=np.array(lengths),
               scores=np.array(scores))
    tmp = cache/f"feat_{n}_{shingles}.tmp.npz"; np.savez(tmp, **out); os.replace(tmp, cache/f"feat_{n}_{shingles}.npz")
    return out


def analyse(f:dict, n:int, threshold:float, num_perm:int, sigs_all:np.ndarray, weights=(0.002, 0.998)) -> dict:
    "Candidate pairs, both verifications and their components on the first `n` records (exact duplicates dropped first)."
    from phi1_nb.dedup import keep_one
    from phi1_nb.minhash import candidate_pairs, components, jaccard, lsh_params, similar, words_agree
    keys, sets, words = f["keys"][:n], f["sets"][:n], f["words"][:n]
    alive, by = np.ones(n, bool), {}
    for i, k in enumerate(keys): by.setdefault(k, []).append(i)
    for g in by.values():
        if len(g) > 1: k = keep_one(g, f["lengths"], f["scores"]); alive[[i for i in g if i != k]] = False
    idx = np.flatnonzero(alive); sigs = sigs_all[:n][idx]; lsh = lsh_params(threshold, num_perm, weights)
    cand = candidate_pairs(sigs, *lsh)
    est = (sigs[cand[:, 0]] == sigs[cand[:, 1]]).mean(1) if len(cand) else np.zeros(0)
    A, B = idx[cand[:, 0]], idx[cand[:, 1]]
    true = np.array([jaccard(sets[a], sets[b]) for a, b in zip(A, B)])
    ex = np.array([similar(sets[a], sets[b], threshold, words[a], words[b]) for a, b in zip(A, B)], bool)
    agree = np.array([words_agree(len(sets[a]), len(sets[b]), words[a], words[b]) for a, b in zip(A, B)], bool)
    sg = (est >= threshold) & agree
    false = sg & ~ex & (true < threshold)
    ce, cs = components(n, zip(A[ex], B[ex])), components(n, zip(A[sg], B[sg]))
    drop = lambda cs: {i for g in cs for i in g[1:]}    # a component drops all but one (which one: no matter here)
    de, ds = drop(ce), drop(cs)
    root = {i: k for k, g in enumerate(cs) for i in g}
    tainted = {root[a] for a in A[false]}
    only_sig = ds - de
    sigma = np.sqrt(threshold * (1 - threshold) / num_perm)
    near = (true >= threshold - 3 * sigma) & (true < threshold)
    margin = {k: dict(false=int(((est >= threshold + k * sigma) & agree & ~ex & (true < threshold)).sum()),
                      missed=int((ex & ~((est >= threshold + k * sigma) & agree)).sum())) for k in (1, 2, 3)}
    return dict(n=n, bands_rows=lsh, margin=margin, candidates=len(cand), near_below=int(near.sum()),
                exact_pairs=int(ex.sum()), signature_pairs=int(sg.sum()), false_unions=int(false.sum()),
                false_true_jaccard=[round(float(x), 3) for x in np.quantile(true[false], [0, .5, 1])] if false.any() else [],
                missed_by_signature=int((ex & ~sg).sum()), exact_drops=len(de), signature_drops=len(ds),
                more_pct=100 * (len(ds) - len(de)) / max(len(de), 1),
                sig_only_drops=len(only_sig), sig_only_in_false_component=sum(root.get(i) in tainted for i in only_sig),
                largest_component=dict(exact=max(map(len, ce), default=0), signature=max(map(len, cs), default=0)),
                sigma=round(float(sigma), 4))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000,80000"); ap.add_argument("--cache", default="/tmp/phi1_verify")
    ap.add_argument("--shingles", default="ast"); ap.add_argument("--json", default=None)
    ap.add_argument("--stage_dir", default=None, help="read the records from this bench_scale corpus (`n<N>/filter`)")
    ap.add_argument("--procs", type=int, default=2, help="processes shingling")
    a = ap.parse_args(argv)
    from phi1_nb.minhash import MinHasher
    sizes = sorted(int(x) for x in a.sizes.split(",")); t = time.time()
    f = features(sizes[-1], Path(a.cache), a.shingles, stage_dir=a.stage_dir, procs=a.procs)
    print(f"# features of {sizes[-1]:,} records ({a.shingles} shingles) in {time.time() - t:.0f} s; load {os.getloadavg()[0]:.1f}")
    sb = np.mean([4 * len(x) + 4 * (len(w) if w is not None else 0) for x, w in zip(f["sets"], f["words"])])
    print(f"# spilled features per record besides the fixed row: exact verification {sb / 1024:.2f} KB (shingle set and "
          f"words); signature verification {', '.join(str(4 * s['num_perm'] / 1024) + ' KB' for s in SETTINGS.values())} "
          f"(signature, {' / '.join(str(s['num_perm']) for s in SETTINGS.values())} perm)")
    rows = []
    for name, s in SETTINGS.items():
        sigs = MinHasher(s["num_perm"], 1, "auto").signatures(list(f["sets"]))
        for n in sizes: rows.append(dict(setting=name, **analyse(f, n, s["threshold"], s["num_perm"], sigs)))
    print("\n| setting | records | candidate pairs (per 1K records) | pairs with J in [t-3σ, t) | exact-verified | "
          "signature-verified | false unions (their exact J: min/median/max) | exact drops | signature drops (more) | "
          "signature-only drops in a falsely joined component | largest component exact / signature |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setting']} | {r['n']:,} | {r['candidates']:,} ({1000 * r['candidates'] / r['n']:.1f}) | "
              f"{r['near_below']:,} | {r['exact_pairs']:,} | {r['signature_pairs']:,} | {r['false_unions']:,} "
              f"({'/'.join(map(str, r['false_true_jaccard']))}) | {r['exact_drops']:,} | {r['signature_drops']:,} "
              f"(+{r['more_pct']:.1f}%) | {r['sig_only_in_false_component']:,} of {r['sig_only_drops']:,} | "
              f"{r['largest_component']['exact']} / {r['largest_component']['signature']} |", flush=True)
    print("\nA stricter estimate (accept when estimate >= t + k·σ, σ = sqrt(t(1-t)/num_perm)): false unions / "
          "exact-verified pairs it misses")
    for r in rows:
        print(f"  {r['setting']:24s} {r['n']:>7,}: " + "; ".join(f"k={k}: {m['false']} false / {m['missed']} missed"
                                                          for k, m in r["margin"].items()))
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
