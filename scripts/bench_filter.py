"""Benchmark of the filter stage on CPU over the standard-library corpus.

For each embedder: the whole filter pass (read shards, check input, embed, forest, count tokens, write kept
and dropped shards; no embedding cache) next to that embedder's raw forward pass over the same texts in the
same batches; the pipeline's overhead is (whole - raw) / raw, target < 10%. Then the peak resident memory of
the whole stage (`run_filter`: pool, labels, forest, filter) on 1x and 4x the corpus, each in a fresh
subprocess: streaming over shards should keep it flat.

    .venv/bin/python scripts/bench_filter.py                      # hashing on all files, minilm/hf on a sample
    .venv/bin/python scripts/bench_filter.py --embedders hashing --files 0   # every stdlib file
    .venv/bin/python scripts/bench_filter.py --compare runs/tiny   # held-out quality of each embedder on a run's labels
    .venv/bin/python scripts/bench_filter.py --bakeoff --run runs/tiny   # the classifiers on a run's labels (04c_bakeoff)
"""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

from phi1_nb.core import read_dataset, read_manifest, read_shard, write_manifest, write_shard
from phi1_nb.embed import get_embedder, make_tiny_causal_lm
from phi1_nb.filter import EduFilter, HeuristicJudge, apply_filter, check_sample, compare_embedders, fit_forest, run_labels

STDLIB = Path(os.__file__).parent


def stdlib_records(n, max_bytes=100_000):
    "The first `n` (0: all) standard-library .py files up to `max_bytes`, as corpus records."
    out = []
    for p in sorted(STDLIB.rglob("*.py")):
        if "site-packages" in p.parts or p.stat().st_size > max_bytes: continue
        t = p.read_text(encoding="utf-8", errors="replace")
        rel = str(p.relative_to(STDLIB))
        out.append(dict(id=f"stdlib:{rel}", content=t, path=rel, repo="stdlib", source="stdlib", size=len(t), lines=t.count("\n")))
        if n and len(out) >= n: break
    return out


def write_corpus(run_dir, recs, per_shard=500):
    d = Path(run_dir) / "corpus"
    shards = [write_shard(d / f"part-{i // per_shard:05d}.jsonl.zst", recs[i:i + per_shard]) for i in range(0, len(recs), per_shard)]
    write_manifest(d, stage="corpus", shards=shards)
    return d


def bench_embedder(name, kw, recs, workdir, batch_size, repeats=2):
    "(raw seconds, whole-filter seconds, n, details) for one embedder over `recs`."
    corpus = write_corpus(workdir / f"run-{name}", recs)
    emb = get_embedder(name, **kw)
    texts = [r["content"] for r in recs if check_sample(r["content"]) is None]
    lab = texts[:200]
    y = [j["label"] for j in HeuristicJudge().judge(lab)]
    filt = EduFilter(name, kw, fit_forest(emb.embed(lab), y, "classifier", 200, seed=0))
    filt.embedder.embed(texts[:8]); emb.embed(texts[:8])                     # warm-up (threads, allocator)
    def raw_pass():
        t0 = time.perf_counter()
        for b in range(0, len(texts), batch_size): emb.embed(texts[b:b + batch_size])
        return time.perf_counter() - t0
    def whole_pass(k):
        t0 = time.perf_counter()
        m = apply_filter(filt, corpus, workdir / f"out-{name}-{k}", cache_dir=None, batch_size=batch_size, progress=False)
        return time.perf_counter() - t0, m
    raws, wholes = [], []
    for k in range(repeats):               # interleaved, best of `repeats`: a busy machine's noise only ever adds time
        raws.append(raw_pass()); w, m = whole_pass(k); wholes.append(w)
    return min(raws), min(wholes), len(texts), m


CHILD = """
import json, re, resource, sys, time
from pathlib import Path
from phi1_nb.filter import run_filter
t0 = time.perf_counter()
m = run_filter(sys.argv[1], progress=False, pool_size=1000, n_labels=300, embedder="hashing")
st = Path("/proc/self/status")
hwm = int(re.search(r"VmHWM:\\s+(\\d+)", st.read_text()).group(1)) if st.exists() else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=time.perf_counter() - t0, rss_mb=hwm / 1024, n=m["counts"]["in"], kept=m["counts"]["out"])))
"""


def peak_rss(run_dir):
    "Peak RSS (MB) and time of `run_filter` on `run_dir` in a fresh subprocess."
    r = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def compare(run_dir, embedders, seeds=(1234,), n_estimators=200):
    "Held-out metrics of each embedder on the labels of a finished filter run: same labels, group splits and forest."
    from phi1_nb.embed import embed_cache_dir
    texts, y = run_labels(run_dir)
    print(f"{len(texts)} labels of {run_dir} ({int(np.sum(y))} high); GroupShuffleSplit over near-duplicate groups, "
          f"seeds {list(seeds)}; mean (min-max) over the seeds")
    setups = {"hashing": ("hashing", {}), "minilm": ("minilm", {"max_length": 256})}
    res = [compare_embedders(texts, y, {e: setups[e] for e in embedders}, n_estimators=n_estimators, seed=s,
                             cache_dir=embed_cache_dir(run_dir)) for s in seeds]
    rows = {e: [r[e] for r in res] for e in embedders}
    rows[f"baseline (majority)"] = [r[embedders[0]]["baseline"] for r in res]
    keys = ("roc_auc", "average_precision", "f1", "balanced_accuracy", "accuracy")
    print(f"{'embedder':20} {'n_val':>5} " + " ".join(f"{k:>22}" for k in keys))
    for e, ms in rows.items():
        cell = lambda k: "" if ms[0].get(k) is None else f"{np.mean([m[k] for m in ms]):.3f} ({min(m[k] for m in ms):.3f}-{max(m[k] for m in ms):.3f})"
        print(f"{e:20} {res[0][embedders[0]]['n']:5d} " + " ".join(f"{cell(k):>22}" for k in keys))
    return res


def print_bakeoff(res):
    "The bake-off's tables, from `run_bakeoff`'s result (or `runs/<name>/bakeoff/bakeoff.json`)."
    f = lambda t, d=3: f"{t[0]:.{d}f} [{t[1]:.{d}f}, {t[2]:.{d}f}]"
    print(f"{res['labels']} labels of {res['run']} ({res['high']} high); {res['n_splits']} group splits, "
          f"{min(res['n_val'])}-{max(res['n_val'])} held out each; mean [2.5-97.5 percentile over splits]")
    keys = ("f1", "balanced_accuracy", "roc_auc", "average_precision", "f1_gain", "auc_gain")
    print(f"{'classifier':11}" + "".join(f"{k:>24}" for k in keys) + f"{'fit s':>8}")
    for n, s in res["summary"].items():
        print(f"{n:11}" + "".join(f"{f(s[k]) if k in s else '':>24}" for k in keys) + f"{s['fit_seconds'][0]:8.2f}")
    print(f"\nscoring cost (read + embed + predict, no cache, this CPU): measured, and extrapolated linearly to 1M files")
    print(f"{'classifier':11}{'files':>6}{'seconds':>9}{'files/s':>9}{'CPU-h per 1M':>14}{'fit s':>8}")
    for n, c in res["cost"].items():
        print(f"{n:11}{c['files']:6d}{c['seconds']:9.2f}{c['files'] / c['seconds']:9.1f}{c['hours_per_1m']:14.2f}{c['fit_seconds']:8.2f}")
    print("\nlabels vs quality (mean over splits; held-out side fixed per split): F1 / ROC AUC, random vs active sampler")
    import pandas as pd
    cv = pd.DataFrame(res["curve"]).groupby(["classifier", "labels", "sampler"])[["f1", "roc_auc"]].mean().unstack("sampler")
    print(cv.round(3).to_string())
    if "agreement" in res:
        print("\nkept sets (threshold of the run) and their pairwise agreement:", res["kept"])
        for a in res["agreement"]:
            print(f"  {a['a']:>8} vs {a['b']:<8} Jaccard {a['jaccard']:.3f}  same decision {a['same']:.3f}  kappa {a['kappa']:.3f}")
        print("as ablation arms: phi1 ablation --arms raw," + ",".join(f"{n}=filter-{n}" for n in res["kept"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="--compare: group splits (seeds 0..n-1) to average over")
    ap.add_argument("--compare", default=None, help="a run folder with a finished filter: compare embedders' held-out AUC on its labels")
    ap.add_argument("--embedders", default="hashing,minilm,hf")
    ap.add_argument("--bakeoff", action="store_true", help="compare the classifiers on the labels of --run (04c_bakeoff)")
    ap.add_argument("--run", default=None, help="--bakeoff: a run folder with a finished filter stage")
    ap.add_argument("--classifiers", default="rf,logreg,fasttext,head", help="--bakeoff: which classifiers")
    ap.add_argument("--splits", type=int, default=10, help="--bakeoff: repeated group splits")
    ap.add_argument("--sizes", default="100,200,400", help="--bakeoff: label counts of the labels-vs-quality curve")
    ap.add_argument("--no-arms", action="store_true", help="--bakeoff: do not write each kept set as run/filter-<name>")
    ap.add_argument("--show", action="store_true", help="--bakeoff: print the saved run/bakeoff/bakeoff.json, compute nothing")
    ap.add_argument("--files", type=int, default=2000, help="stdlib files in the corpus (0: all), the tiny preset's size")
    ap.add_argument("--sample", type=int, default=120, help="files used for the slow embedders (minilm, hf)")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats of each measurement; the best is reported")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    if a.bakeoff:
        if not a.run: ap.error("--bakeoff needs --run <run folder>")
        from phi1_nb.bakeoff import run_bakeoff
        from phi1_nb.core import read_json
        from phi1_nb.classifiers import CLASSIFIERS
        if a.show:
            if not (Path(a.run) / "bakeoff" / "bakeoff.json").exists(): ap.error(f"no bake-off in {a.run}: run --bakeoff without --show")
            return print_bakeoff(read_json(Path(a.run) / "bakeoff" / "bakeoff.json"))
        names = [n.strip() for n in a.classifiers.split(",") if n.strip()]
        if bad := [n for n in names if n not in CLASSIFIERS] or not names:
            ap.error(f"--classifiers: unknown {bad or 'empty'}; choose among {','.join(CLASSIFIERS)} (as phi1 filter --classifier)")
        from phi1_nb.core import ShardError
        try: res = run_bakeoff(a.run, names, a.splits, [int(x) for x in a.sizes.split(",")], arms=not a.no_arms)
        except (FileNotFoundError, ShardError) as e: ap.exit(2, f"bench_filter.py: error: {e}\n")
        return print_bakeoff(res)
    if a.compare: return compare(a.compare, [e for e in a.embedders.split(",") if e != "hf"], range(a.seeds))
    import torch
    print(f"CPU threads: torch {torch.get_num_threads()}, cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_filter-"))
    recs = stdlib_records(a.files)
    print(f"corpus: {len(recs)} standard-library files, {sum(r['size'] for r in recs) / 1e6:.1f} MB, in {work}")
    lm = make_tiny_causal_lm(work / "lm", [r["content"] for r in recs[:50]], vocab_size=4000, hidden=256, layers=4,
                             max_positions=512)
    setups = {"hashing": ({}, recs),
              "minilm": ({"max_length": 256}, recs[:a.sample]),
              "hf": ({"model": str(lm), "max_length": 512, "batch_size": 16}, recs[:a.sample])}
    print(f"hf: a random 4-layer, 256-wide PhiForCausalLM (CodeGen-350M-mono is not available offline), window 512")
    print(f"\nbest of {a.repeats} interleaved runs each")
    print(f"{'embedder':9} {'files':>6} {'raw embed s':>12} {'whole filter s':>15} {'raw files/s':>12} "
          f"{'filter files/s':>15} {'overhead':>9}")
    for name in a.embedders.split(","):
        kw, rs = setups[name]
        raw, whole, n, m = bench_embedder(name, kw, rs, work, a.batch_size, a.repeats)
        print(f"{name:9} {n:6d} {raw:12.2f} {whole:15.2f} {n / raw:12.1f} {n / whole:15.1f} {(whole - raw) / raw:9.1%}"
              f"   (kept {m['counts']['out']}, truncated {m['truncated']})", flush=True)
    print("\npeak resident memory of the whole stage (run_filter, hashing embedder, pool 1000, 300 labels), fresh process each:")
    print(f"{'corpus':8} {'files':>6} {'seconds':>8} {'peak RSS MB':>12}")
    for k in (1, 4):
        rk = [dict(r, id=f"{r['id']}#{i}") for i in range(k) for r in recs]
        write_corpus(work / f"rss-{k}x", rk)
        s = peak_rss(work / f"rss-{k}x")
        print(f"{k}x{'':6} {s['n']:6d} {s['seconds']:8.1f} {s['rss_mb']:12.0f}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f} (timings on a shared machine are noisy)")


if __name__ == "__main__":
    main()
