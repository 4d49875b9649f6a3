"""Scale benchmark of the data stages on a generated Stack-style corpus (not run by the tests).

The corpus: files spliced from 2-6 standard-library functions (each function dedented, some comment lines added), 10%
settings-like files (a third-party import and constants: what the heuristic judge scores low), about 12% near-copies of
an earlier file (`phi1_nb.dedup.plant_copy`: bound names renamed, re-printed or re-commented, imports reordered) and
about 3% exact copies (trailing blank lines added: the normalized text is the same). Deterministic in
`--seed`, and a prefix of itself: the first n records of any larger size are the size n's, so the largest size is
generated once and the smaller ones are its first shards (`--corpus words`: cheap records of 40 words, for 1M).

Stages (`--stages`), each on the size's corpus, in a child process:
- `corpus`: `run_corpus(format="stack")` over the generated shards (its local engine: all cores), into `<size>/pipe/`;
- `filter`: `run_filter` (heuristic judge, hashing embedder) of that corpus, in `<size>/pipe/` (disk: its embedding
  cache counted with its output);
- `dedup`: `run_dedup` of the generated stage as a `filter` stage (`--shingles`, `--verify`);
- `dedup_ray`: `dedup` on a local Ray (`engine="ray"`, in `<size>/ray/`): its CPU and RSS are summed over the driver and
  the Ray processes alive at its end (workers that exited are missed: an undercount), it prints the bytes its group-bys
  took in per record, and, with `dedup` in `--stages`, its outputs must be byte-identical to the local engine's;
- `decontaminate`: `run_decontaminate` against HumanEval of `synth/exercises` made of single standard-library functions
  (the stage reads exercises only).
Stages other than dedup run only at sizes up to `--other_max`.

Per stage and size: CPU seconds (user + sys of the child and its children), wall seconds, peak RSS (the child's own
`VmHWM` at its end, or the largest `VmHWM` sampled every 0.2 s of its descendants, e.g. the corpus stage's worker
processes; not `ru_maxrss`, which Linux keeps across fork + exec, so a child of this large parent would report the
parent's peak), the largest its output folder got while it ran,
and the load average (1 min) at its start and end. Then a least-squares cost per record (CPU s = a + b n, RSS = c + d n)
and an extrapolation to `--target` records: on one `--cores`-core node and on `--nodes` such nodes (the stage's CPU
divided over the cores, if it parallelized perfectly: the local dedup does not, so its one-process time is given too).
Each measured row is appended to `<out>/rows.jsonl`; with `--reuse`, a (stage, size) already there is not run again, so
a long table can be measured in parts (and two parts at once) and printed whole by the last command.

With `--same_as DIR` (a checkout of other code, e.g. `git archive main | tar -x -C /tmp/base`), dedup also runs with
DIR's code on the same corpus, and the outputs (kept and dropped shards, clusters) must be byte-identical.

usage: python scripts/bench_scale.py [--sizes 5000,20000,80000] [--stages dedup,dedup_ray,decontaminate] [--out DIR]
                                     [--other_max 80000] [--reuse] [--same_as /tmp/base]
"""
from __future__ import annotations
import argparse, json, os, random, shutil, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def config_file(rng) -> str:
    "A settings-like file: a third-party import and constant assignments (what the heuristic judge scores low)."
    mods = ["numpy as np", "django.conf", "requests", "torch", "flask", "yaml", "boto3"]
    rows = [f"{rng.choice(['DEBUG', 'PORT', 'NAME', 'URL', 'TIMEOUT', 'PATH'])}_{k} = {rng.randint(0, 10**6)!r}"
            for k in range(rng.randint(8, 40))]
    return f"import {rng.choice(mods)}\n\n" + "\n".join(rows) + "\n"


def _copy(job) -> str:
    "A near copy of `src` (`phi1_nb.dedup.plant_copy` with its own seed), or `src` plus a comment if it fails to parse."
    import ast, tokenize
    from phi1_nb.dedup import plant_copy
    src, seed = job
    try: text = plant_copy(src, random.Random(seed)); ast.parse(text); return text
    except (SyntaxError, ValueError, tokenize.TokenError, RecursionError): return src + "\n# copy\n"


def stack_records(n:int, seed:int=0, near:float=0.12, exact:float=0.03, boring:float=0.1, pool:int=2000,
                  block:int=500, workers:int|None=None):
    """`n` Stack-style records `{id, content, educational_value}` (a generator). Made `block` records at a time: copies
    come from `pool` records of the earlier blocks, and a block's near copies (each with its own seed, the slow part)
    are made by `workers` processes (default: all cores; 1: in this process). The records depend on `seed` only."""
    from concurrent.futures import ProcessPoolExecutor
    from phi1_nb.dedup import stdlib_functions
    rng, fs, recent = random.Random(seed), stdlib_functions(), []
    notes = ["# helper", "# TODO: tidy up", "# see the docs", "# fast path", "# copied from upstream"]
    ex = ProcessPoolExecutor(workers or os.cpu_count() or 1) if workers != 1 and n > block else None
    try:
        for b0 in range(0, n, block):
            rows, jobs = [], []
            for i in range(b0, min(n, b0 + block)):
                r, text = rng.random(), None
                if recent and r < exact: text = rng.choice(recent) + "\n\n"              # same normalized text
                elif recent and r < exact + near: jobs.append((len(rows), rng.choice(recent), rng.getrandbits(64)))
                elif r < exact + near + boring: text = config_file(rng)
                else:
                    parts = [s for _, s in rng.sample(fs, rng.randint(2, 6))]
                    text = "\n\n".join((rng.choice(notes) + "\n" if rng.random() < 0.3 else "") + p for p in parts)
                rows.append(dict(id=f"f{i:08d}", content=text, educational_value=round(rng.random(), 3)))
            made = (ex.map(_copy, [j[1:] for j in jobs], chunksize=4) if ex else map(_copy, [j[1:] for j in jobs]))
            for (k, _, _), text in zip(jobs, made): rows[k]["content"] = text
            for x in rows:
                recent.append(x["content"])
                if len(recent) > pool: recent.pop(rng.randrange(len(recent)))
            yield from rows
    finally:
        if ex: ex.shutdown(cancel_futures=True)


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


def exercise_records(n:int, seed:int=0):
    "`n` exercise-sized records `{id, content}`: one standard-library function each (what decontamination reads)."
    from phi1_nb.dedup import stdlib_functions
    rng, fs = random.Random(seed), stdlib_functions()
    for i in range(n): yield dict(id=f"e{i:08d}", content=rng.choice(fs)[1])


GENERATORS = dict(stack=stack_records, words=word_records, exercises=exercise_records)


def find_prefix(out, n:int, stage:str, gen:dict):
    "A generated `stage` folder under `out/n*/` with the generator settings `gen` and at least `n` records, or None."
    for m in sorted(Path(out).glob(f"n*/{stage}/manifest.json")):
        try: man = json.loads(m.read_text())
        except ValueError: continue
        if man.get("params") == gen and man["counts"]["out"] >= n: return m.parent
    return None


def make_stage(run_dir, n:int, seed:int=0, stage:str="filter", per_shard:int=5000, corpus:str="stack",
               prefix_of=None):
    """Write `n` generated records as `run_dir/<stage>/` shards with a manifest (the input of dedup); kept when there.
    `prefix_of`: a folder this function wrote with the same settings and more records: its first shards are copied."""
    import itertools
    from phi1_nb.core import write_manifest
    from phi1_nb.shards import write_shard
    d, gen = Path(run_dir)/stage, dict(generator=corpus, seed=seed, per_shard=per_shard)
    if (d/"manifest.json").exists(): return d
    shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    if prefix_of is not None and n % per_shard == 0:   # the generators are prefixes of themselves
        m = json.loads((Path(prefix_of)/"manifest.json").read_text()); shards = m["shards"][:n // per_shard]
        if m["params"] == gen and sum(s["n"] for s in shards) == n:
            for s in shards: shutil.copyfile(Path(prefix_of)/s["path"], d/s["path"])
            write_manifest(d, stage=stage, params=gen, shards=[dict(s, schema=m["schema"]) for s in shards]); return d
    it, shards, k = GENERATORS[corpus](n, seed), [], 0
    while chunk := list(itertools.islice(it, per_shard)):
        shards.append(write_shard(d/f"part-{k:05d}.jsonl.zst", chunk)); k += 1
    write_manifest(d, stage=stage, params=gen, shards=shards)
    return d


CHILD = r"""
import importlib, json, os, re, resource, sys, threading, time
from pathlib import Path
import psutil
fn, run_dir, kw = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
outs, src, peak, kid_kb = json.loads(sys.argv[4]), Path(sys.argv[5]), [0], [0]
def hwm_kb(pid="self"):                            # a process's own peak RSS since its exec (not ru_maxrss: inherited)
    try: return int(re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
    except (OSError, AttributeError): return 0     # (gone, or a zombie: no VmHWM)
def kids():                                        # the largest peak of a descendant (the corpus stage's workers)
    while True:
        for c in psutil.Process().children(recursive=True): kid_kb[0] = max(kid_kb[0], hwm_kb(c.pid))
        time.sleep(0.2)
def du(p):
    try: return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file()) if Path(p).exists() else 0
    except OSError: return 0                       # (a file removed while it was summed)
def size(): return sum(du(run_dir/o) for o in outs)
def watch():                                       # the largest the stage's folders got while it ran (spills included)
    while True: peak[0] = max(peak[0], size()); time.sleep(1)
threading.Thread(target=watch, daemon=True).start(); threading.Thread(target=kids, daemon=True).start()
mod, name = fn.rsplit(".", 1); f = getattr(importlib.import_module(mod), name)
load0, t = os.getloadavg()[0], time.time()
f(run_dir, **kw)
wall = time.time() - t
me, ch = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu, rss, extra = me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime, max(hwm_kb(), kid_kb[0]) / 1024, {}
if kw.get("engine") == "ray":    # Ray's processes (raylet, workers) still run: their CPU and RSS, summed, are its
    import psutil
    procs = psutil.Process().children(recursive=True); cpu += sum(sum(p.cpu_times()[:2]) for p in procs)
    rss = psutil.Process().memory_info().rss / 2**20 + sum(p.memory_info().rss for p in procs) / 2**20
    done = json.loads((run_dir/outs[0]/"work"/"done.json").read_text())
    extra = dict(shuffled_bytes=done["shuffled_bytes"])
print("RESULT " + json.dumps(dict(cpu=cpu, wall=wall, **extra, rss_mb=rss, out_mb=size() / 2**20, in_mb=du(src) / 2**20,
                                  peak_disk_mb=max(peak[0], size()) / 2**20, load=[load0, os.getloadavg()[0]])))
"""

ORDER = ("corpus", "filter", "dedup", "dedup_ray", "decontaminate")


def stage_job(st:str, rd, shingles:str="ast", verify:str="exact") -> tuple:
    "`(function, run folder, keywords, output folders, input folder)` of stage `st` on the generated corpus in `rd`."
    rd = Path(rd); dd = dict(input_stage="filter", shingles=shingles, threshold=0.8, verify=verify)
    if st == "corpus":
        return ("phi1_nb.corpus.run_corpus", rd/"pipe", dict(source=str(rd/"filter"), format="stack", limit=None,
                                                             progress=False), ["corpus"], rd/"filter")
    if st == "filter":
        return ("phi1_nb.filter.run_filter", rd/"pipe", dict(judge="heuristic", embedder="hashing", progress=False),
                ["filter", "cache"], rd/"pipe"/"corpus")
    if st == "dedup": return ("phi1_nb.dedup.run_dedup", rd, dd, ["dedup"], rd/"filter")
    if st == "dedup_ray":
        return ("phi1_nb.dedup.run_dedup", side_run(rd, "ray"), dict(dd, engine="ray"), ["dedup"], rd/"filter")
    if st == "decontaminate":
        return ("phi1_nb.decontaminate.run_decontaminate", rd,
                dict(input_stage="synth/exercises", benchmarks="humaneval"), ["decontaminate"], rd/"synth"/"exercises")
    raise SystemExit(f"unknown stage {st!r}: one of {', '.join(ORDER)}")


def run_stage(job:tuple, code=ROOT) -> dict:
    "Run a `stage_job` in a child process (`code`'s package): CPU (user + sys, with its children), wall, RSS, disk."
    fn, run_dir, kw, outs, src = job
    for o in outs: shutil.rmtree(Path(run_dir)/o, ignore_errors=True)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-c", CHILD, fn, str(run_dir), json.dumps(kw), json.dumps(outs), str(src)],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(code)), cwd=code)
    line = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode or not line: raise RuntimeError(f"{fn} failed ({r.returncode}): {r.stderr[-2000:]}")
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
    if a != b:
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise SystemExit(f"dedup at {n:,} differs from {what}: {diff}")
    print(f"  dedup at {n:,}: the {len(a)} output files are byte-identical to {what}'s", flush=True)


def same_as(run_dir, n:int, code, shingles:str, verify:str) -> dict:
    "Dedup of `run_dir`'s corpus with `code`'s package, in `run_dir/base`; raises unless the outputs are identical."
    base = side_run(run_dir, "base"); r = run_stage(stage_job("dedup", base, shingles, verify), code)
    print(f"{'  base code':14s} {n:>9,} cpu {r['cpu']:8.1f} s  rss {r['rss_mb']:7.1f} MB", flush=True)
    check_same(run_dir, base, n, str(code)); return r


def fit(ns, ys):
    "Least squares `y = a + b n`: (a, b)."
    import numpy as np
    if len(ns) < 2: return 0.0, ys[0] / ns[0]
    b, a = np.polyfit(np.array(ns, float), np.array(ys, float), 1); return float(a), float(b)


def prepare(a, rd:Path, n:int, stages):
    "Generate the size's inputs that `stages` read (the smaller sizes copied from a larger one); returns seconds spent."
    t = time.time(); gen = dict(seed=a.seed, per_shard=5000)
    if {"dedup", "dedup_ray", "corpus", "filter"} & set(stages):
        make_stage(rd, n, a.seed, corpus=a.corpus,
                   prefix_of=find_prefix(a.out, n, "filter", dict(generator=a.corpus, **gen)))
    if "decontaminate" in stages:
        make_stage(rd, n, a.seed, stage="synth/exercises", corpus="exercises",
                   prefix_of=find_prefix(a.out, n, "synth/exercises", dict(generator="exercises", **gen)))
    if "filter" in stages and "corpus" not in stages and not (rd/"pipe"/"corpus"/"manifest.json").exists():
        raise SystemExit(f"{rd}: the filter stage reads the corpus stage's output: add corpus to --stages")
    return time.time() - t


def report(rows, target:float, cores:int, nodes:int):
    "The table, the RSS growth between sizes and the fitted cost per record with its extrapolation to `target` records."
    print("\n| stage | records | CPU s | wall s | peak RSS MB | output MB | peak disk MB | ms/record | load |"
          "\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['n']:,} | {r['cpu']:.1f} | {r['wall']:.1f} | {r['rss_mb']:.0f} | "
              f"{r['out_mb']:.1f} | "
              f"{r['peak_disk_mb']:.1f} | {1000 * r['cpu'] / r['n']:.2f} | {r['load'][0]:.1f}-{r['load'][1]:.1f} |")
    print(f"\nfit (least squares over the sizes) and extrapolation to {target:,.0f} records "
          f"(on {cores}-core nodes: if the stage used every core):")
    for st in dict.fromkeys(r["stage"] for r in rows):
        R = [r for r in rows if r["stage"] == st]; ns = [r["n"] for r in R]
        _, b = fit(ns, [r["cpu"] for r in R]); c, d = fit(ns, [r["rss_mb"] for r in R])
        _, e = fit(ns, [r["peak_disk_mb"] for r in R])
        hours = b * target / 3600
        rss = "RSS per record: needs two sizes" if len(set(ns)) < 2 else \
              f"RSS {c:.0f} MB + {1024 * d:.3f} KB/record -> {(c + d * target) / 1024:,.1f} GB" if d > 0 else \
              f"RSS does not grow (at most {max(r['rss_mb'] for r in R):.0f} MB)"
        for r0, r1 in zip(R, R[1:]):
            print(f"  {st}: peak RSS {r0['rss_mb']:.0f} -> {r1['rss_mb']:.0f} MB from {r0['n']:,} to {r1['n']:,} "
                  f"records: "
                  f"{1024 * (r1['rss_mb'] - r0['rss_mb']) / (r1['n'] - r0['n']):.3f} KB/record")
        spread = (f"{hours / cores:,.1f} h on one node, {hours / cores / nodes:,.2f} h on {nodes} nodes"
                  if st != "dedup" else f"{hours:,.0f} h: the local engine is one process (dedup_ray spreads it)")
        print(f"  {st}: {1000 * b:.2f} ms CPU/record -> {hours:,.0f} CPU-hours; {spread}; {rss}; "
              f"peak disk {1024 * e:.2f} KB/record -> {e * target / 2**20:,.2f} TB")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="5000,20000,80000"); ap.add_argument("--stages", default="dedup")
    ap.add_argument("--out", default="/tmp/phi1_scale"); ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shingles", default="ast", help="dedup shingles: ast (the presets) | word (cheaper, same design)")
    ap.add_argument("--verify", default="exact"); ap.add_argument("--target", type=float, default=35e6)
    ap.add_argument("--cores", type=int, default=16); ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--corpus", default="stack", help="stack (mutated stdlib files) | words (cheap to make: 1M)")
    ap.add_argument("--other_max", type=int, default=None, help="stages other than dedup: only sizes up to this")
    ap.add_argument("--reuse", action="store_true", help="keep the rows of <out>/rows.jsonl of these settings")
    ap.add_argument("--same_as", default=None, help="a checkout whose dedup output must be byte-identical (and timed)")
    a = ap.parse_args(argv)
    sizes, stages = sorted(int(x) for x in a.sizes.split(",")), [s for s in ORDER if s in a.stages.split(",")]
    if bad := set(a.stages.split(",")) - set(ORDER):
        raise SystemExit(f"unknown stages {sorted(bad)}: {', '.join(ORDER)}")
    Path(a.out).mkdir(parents=True, exist_ok=True); log = Path(a.out)/"rows.jsonl"
    how = dict(corpus=a.corpus, seed=a.seed, shingles=a.shingles, verify=a.verify)
    def at(n): return [s for s in stages if s.startswith("dedup") or a.other_max is None or n <= a.other_max]
    old = {(r["stage"], r["n"]): r for r in map(json.loads, log.read_text().splitlines() if log.exists() else [])
           if r.get("how") == how} if a.reuse else {}
    todo = {n: [s for s in at(n) if (s, n) not in old or (s == "dedup" and a.same_as)] for n in sizes}
    for n in sorted(sizes, reverse=True):     # the largest first: the smaller corpora are its first shards
        if todo[n]:
            t = prepare(a, Path(a.out)/f"n{n}", n, todo[n])
            print(f"# inputs of {n:,} records ready ({t:.0f} s, {1000 * t / n:.2f} ms/record)", flush=True)
    for n in sizes:
        rd = Path(a.out)/f"n{n}"
        for st in todo[n]:
            r = dict(stage=st, n=n, how=how, **run_stage(stage_job(st, rd, a.shingles, a.verify))); old[(st, n)] = r
            with open(log, "a") as f: f.write(json.dumps(r) + "\n")
            print(f"{st:14s} {n:>9,} cpu {r['cpu']:8.1f} s  wall {r['wall']:8.1f} s  rss {r['rss_mb']:7.1f} MB  "
                  f"out {r['out_mb']:8.1f} MB ({r['out_mb'] / r['in_mb']:.2f}x the input)  "
                  f"peak disk {r['peak_disk_mb']:8.1f} MB  load {r['load'][0]:.1f}-{r['load'][1]:.1f}", flush=True)
            if st == "dedup" and a.same_as: r["base"] = same_as(rd, n, a.same_as, a.shingles, a.verify)
            if st == "dedup_ray":
                print(f"  shuffled {r['shuffled_bytes'] / n:,.0f} bytes a record", flush=True)
                if "dedup" in stages: check_same(rd, rd/"ray", n, "the local engine")
    rows = [old[(s, n)] for s in stages for n in sizes if (s, n) in old]
    report(rows, a.target, a.cores, a.nodes)
    return rows


if __name__ == "__main__":
    main()
