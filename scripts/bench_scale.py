"""Scale benchmark of the data stages on a generated Stack-style corpus (not run by the tests).

The corpus: files spliced from 2-6 standard-library functions (each function dedented, some comment lines added), about
12% near-copies of an earlier file (`phi1_nb.dedup.plant_copy`: bound names renamed, re-printed or re-commented, imports
reordered) and about 3% exact copies (trailing blank lines added: the normalized text is the same). Deterministic in
`--seed`.

Per stage and size, each stage in a child process: CPU seconds (user + sys of the child and its children), wall
seconds, peak RSS (`ru_maxrss` of the child), and the bytes the stage wrote. Then a least-squares cost per record
(CPU s = a + b n, RSS = c + d n) and an extrapolation to `--target` records on one `--cores`-core node (the stage's
CPU divided over the cores, if it parallelized perfectly: the local dedup does not, so its single-core time is given too).

Stage `dedup_ray` is `dedup` on a local Ray (`engine="ray"`, in `<size>/ray/`): its CPU and RSS are summed over the
driver and the Ray processes alive at its end (workers that exited are missed: an undercount), it prints the bytes its group-bys took in per record, and, with `dedup` in `--stages`, its
outputs must be byte-identical to the local engine's.

With `--same_as DIR` (a checkout of other code, e.g. `git worktree add /tmp/base main`), dedup also runs with DIR's
code on the same corpus, and the outputs (kept and dropped shards, clusters) must be byte-identical.

usage: python scripts/bench_scale.py [--sizes 5000,20000,80000] [--stages dedup,dedup_ray,decontaminate] [--out /tmp/scale]
                                     [--same_as /tmp/base]
"""
from __future__ import annotations
import argparse, json, os, random, resource, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stack_records(n:int, seed:int=0, near:float=0.12, exact:float=0.03, pool:int=2000):
    "`n` Stack-style records `{id, content, educational_value}` (a generator: copies come from the last `pool` records)."
    import ast, tokenize
    from phi1_nb.dedup import plant_copy, stdlib_functions
    rng, fs, recent = random.Random(seed), stdlib_functions(), []
    notes = ["# helper", "# TODO: tidy up", "# see the docs", "# fast path", "# copied from upstream"]
    for i in range(n):
        r = rng.random()
        if recent and r < exact: text = rng.choice(recent) + "\n\n"                  # same normalized text
        elif recent and r < exact + near:
            src = rng.choice(recent)
            try: text = plant_copy(src, rng); ast.parse(text)
            except (SyntaxError, ValueError, tokenize.TokenError, RecursionError): text = src + "\n# copy\n"
        else:
            parts = [s for _, s in rng.sample(fs, rng.randint(2, 6))]
            text = "\n\n".join((rng.choice(notes) + "\n" if rng.random() < 0.3 else "") + p for p in parts)
        recent.append(text)
        if len(recent) > pool: recent.pop(rng.randrange(len(recent)))
        yield dict(id=f"f{i:08d}", content=text, educational_value=round(rng.random(), 3))


def word_records(n:int, seed:int=0, near:float=0.12, exact:float=0.03, pool:int=2000):
    "`n` cheap records of 40 words from 5,000 (12% a recent one plus a word, 3% a recent one plus blank lines)."
    rng, words, recent = random.Random(seed), [f"w{i}" for i in range(5000)], []
    for i in range(n):
        r = rng.random()
        if recent and r < exact: text = rng.choice(recent) + "\n\n"
        elif recent and r < exact + near: text = rng.choice(recent) + " extra"
        else: text = " ".join(rng.choices(words, k=40))
        recent.append(text)
        if len(recent) > pool: recent.pop(rng.randrange(len(recent)))
        yield dict(id=f"f{i:08d}", content=text, educational_value=round(rng.random(), 3))


def make_stage(run_dir, n:int, seed:int=0, stage:str="filter", per_shard:int=5000, corpus:str="stack"):
    "Write `n` generated records as `run_dir/<stage>/` shards with a manifest (the input of dedup); kept when there."
    import itertools
    from phi1_nb.core import write_manifest
    from phi1_nb.shards import write_shard
    d = Path(run_dir)/stage
    if (d/"manifest.json").exists(): return d
    shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    it, shards, k = (stack_records if corpus == "stack" else word_records)(n, seed), [], 0
    while chunk := list(itertools.islice(it, per_shard)):
        shards.append(write_shard(d/f"part-{k:05d}.jsonl.zst", chunk)); k += 1
    write_manifest(d, stage=stage, shards=shards)
    return d


CHILD = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
stage, run_dir, kw = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
out = "dedup" if stage == "dedup_ray" else stage
peak = [0]
def du(p): return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file()) if Path(p).exists() else 0
def watch():                                       # the largest the stage's folder got while it ran (spills included)
    while True: peak[0] = max(peak[0], du(run_dir/out)); time.sleep(1)
threading.Thread(target=watch, daemon=True).start()
t = time.time()
if stage in ("dedup", "dedup_ray"):
    from phi1_nb.dedup import run_dedup; run_dedup(run_dir, **kw)
elif stage == "decontaminate":
    from phi1_nb.decontaminate import run_decontaminate; run_decontaminate(run_dir, **kw)
wall = time.time() - t
me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu, rss, extra = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime, max(me.ru_maxrss, ch.ru_maxrss) / 1024, {}
if kw.get("engine") == "ray":    # Ray's processes (raylet, workers) still run: their CPU and RSS, summed, are the stage's
    import psutil
    procs = psutil.Process().children(recursive=True); cpu += sum(sum(p.cpu_times()[:2]) for p in procs)
    rss = psutil.Process().memory_info().rss / 2**20 + sum(p.memory_info().rss for p in procs) / 2**20
    done = json.loads((run_dir/out/"work"/"done.json").read_text()); extra = dict(shuffled_bytes=done["shuffled_bytes"])
print("RESULT " + json.dumps(dict(cpu=cpu, wall=wall, **extra,
                                  rss_mb=rss, out_mb=du(run_dir/out) / 2**20,
                                  in_mb=du(run_dir/kw["input_stage"]) / 2**20,
                                  peak_disk_mb=max(peak[0], du(run_dir/out)) / 2**20)))
"""

STAGES = dict(dedup=dict(input_stage="filter", shingles="ast", threshold=0.8, verify="exact"),
              dedup_ray=dict(input_stage="filter", shingles="ast", threshold=0.8, verify="exact", engine="ray"),
              decontaminate=dict(input_stage="filter", benchmarks="humaneval"))


def run_stage(stage:str, run_dir, kw:dict, code=ROOT) -> dict:
    "Run one stage in a child process (the package of `code`); CPU (user + sys, with its children), wall, peak RSS, disk."
    shutil.rmtree(Path(run_dir)/("dedup" if stage == "dedup_ray" else stage), ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(code))
    r = subprocess.run([sys.executable, "-c", CHILD, stage, str(run_dir), json.dumps(kw)], capture_output=True, text=True,
                       env=env, cwd=code)
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode or not line: raise RuntimeError(f"{stage} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(line[-1][7:])


def output_digest(stage_dir) -> dict:
    "sha256 of a dedup stage's outputs: shards, dropped shards, clusters (not the manifest, receipts or work: timings)."
    import hashlib
    d = Path(stage_dir)
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*"))
            if p.is_file() and p.name != "manifest.json" and not {"work", "parts"} & set(p.relative_to(d).parts)}


def side_run(run_dir, name:str) -> Path:
    "`run_dir/name/`, a run folder whose `filter` stage is `run_dir`'s (a symlink)."
    d = Path(run_dir)/name; d.mkdir(exist_ok=True)
    if not (d/"filter").exists(): (d/"filter").symlink_to(Path(run_dir).resolve()/"filter")
    return d


def check_same(run_dir, other, n:int, what:str):
    "Raise unless the dedup outputs of `run_dir` and `other` are byte-identical."
    a, b = output_digest(Path(run_dir)/"dedup"), output_digest(Path(other)/"dedup")
    if a != b: raise SystemExit(f"dedup at {n:,} differs from {what}: {sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))}")
    print(f"  dedup at {n:,}: the {len(a)} output files are byte-identical to {what}'s", flush=True)


def same_as(run_dir, n:int, code) -> dict:
    "Dedup of `run_dir`'s corpus with `code`'s package, in `run_dir/base`; raises unless its outputs are byte-identical."
    base = side_run(run_dir, "base"); r = run_stage("dedup", base, STAGES["dedup"], code)
    print(f"{'  base code':14s} {n:>9,} cpu {r['cpu']:8.1f} s  rss {r['rss_mb']:7.1f} MB", flush=True)
    check_same(run_dir, base, n, str(code)); return r


def fit(ns, ys):
    "Least squares `y = a + b n`: (a, b)."
    import numpy as np
    if len(ns) < 2: return 0.0, ys[0] / ns[0]
    b, a = np.polyfit(np.array(ns, float), np.array(ys, float), 1); return float(a), float(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000,80000"); ap.add_argument("--stages", default="dedup")
    ap.add_argument("--out", default="/tmp/phi1_scale"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shingles", default="ast", help="dedup shingles: ast (the presets) | word (cheaper, same memory design)")
    ap.add_argument("--verify", default="exact"); ap.add_argument("--target", type=float, default=35e6)
    ap.add_argument("--cores", type=int, default=16)
    ap.add_argument("--corpus", default="stack", help="stack (mutated stdlib files) | words (cheap to make: 1M records)")
    ap.add_argument("--same_as", default=None, help="a checkout whose dedup output must be byte-identical (and timed)")
    a = ap.parse_args(argv)
    sizes, stages, rows = [int(x) for x in a.sizes.split(",")], a.stages.split(","), []
    for st in ("dedup", "dedup_ray"): STAGES[st].update(shingles=a.shingles, verify=a.verify)
    for n in sizes:
        rd = Path(a.out)/f"n{n}"; t = time.time(); make_stage(rd, n, a.seed, corpus=a.corpus)
        print(f"# corpus of {n:,} records ready ({time.time() - t:.0f} s)", flush=True)
        for st in stages:
            sd = side_run(rd, "ray") if st == "dedup_ray" else rd
            r = dict(stage=st, n=n, **run_stage(st, sd, STAGES[st])); rows.append(r)
            print(f"{st:14s} {n:>9,} cpu {r['cpu']:8.1f} s  wall {r['wall']:8.1f} s  rss {r['rss_mb']:7.1f} MB  "
                  f"out {r['out_mb']:8.1f} MB ({r['out_mb'] / r['in_mb']:.2f}x the input)  peak disk {r['peak_disk_mb']:8.1f} MB", flush=True)
            if st == "dedup" and a.same_as: r["base"] = same_as(rd, n, a.same_as)
            if st == "dedup_ray":
                print(f"  shuffled {r['shuffled_bytes'] / n:,.0f} bytes a record", flush=True)
                if "dedup" in stages: check_same(rd, sd, n, "the local engine")
    print(f"\n| stage | records | CPU s | wall s | peak RSS MB | output MB | peak disk MB | ms/record |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['n']:,} | {r['cpu']:.1f} | {r['wall']:.1f} | {r['rss_mb']:.0f} | {r['out_mb']:.1f} | "
              f"{r['peak_disk_mb']:.1f} | {1000 * r['cpu'] / r['n']:.2f} |")
    print(f"\nfit (least squares over the sizes) and extrapolation to {a.target:,.0f} records on one {a.cores}-core node:")
    for st in stages:
        R = [r for r in rows if r["stage"] == st]; ns = [r["n"] for r in R]
        _, b = fit(ns, [r["cpu"] for r in R]); c, d = fit(ns, [r["rss_mb"] for r in R])
        _, e = fit(ns, [r["peak_disk_mb"] for r in R])
        hours, one = b * a.target / 3600, len(set(ns)) < 2   # one size: no RSS slope to fit
        rss = "RSS per record: needs two sizes" if one else \
              f"RSS {c:.0f} MB + {1024 * d:.3f} KB/record -> {(c + d * a.target) / 1024:,.1f} GB"
        for r0, r1 in zip(R, R[1:]):
            print(f"  {st}: peak RSS {r0['rss_mb']:.0f} -> {r1['rss_mb']:.0f} MB from {r0['n']:,} to {r1['n']:,} records: "
                  f"{1024 * (r1['rss_mb'] - r0['rss_mb']) / (r1['n'] - r0['n']):.3f} KB/record")
        print(f"  {st}: {1000 * b:.2f} ms CPU/record -> {hours:,.0f} CPU-hours, {hours / a.cores:,.1f} h on {a.cores} cores "
              f"if it parallelized ({hours:,.0f} h in one process); {rss}; peak disk {1024 * e:.2f} KB/record -> {e * a.target / 2**20:,.1f} TB")
    return rows


if __name__ == "__main__":
    main()
