"""The local engines of corpus, filter, dedup and decontaminate on 1 worker against 2 (or --workers): wall, CPU,
speed-up.

Each stage gets one input (built once from the standard library: Stack-style shards for corpus, files with planted
near-copies for filter and dedup, top-level functions for decontaminate); every timed run starts from a fresh copy
of it in a child process, `workers=1` and `workers=N` interleaved, `--reps` times each. The child reports the
stage's wall time and its CPU (user+sys of the child and of its reaped worker processes: `resource.getrusage`, SELF
+ CHILDREN); the table gives medians, the speed-up (wall 1 / wall N) and the CPU per record of each arm side by side
(the same per-record CPU means the pool adds no work). The filter's judge labels and its model are made once, before
the timed runs: what is timed is the stage's run that loads the model (scikit-learn and skops imports: seconds of
CPU in this process, on one core whatever the pool) and scores every shard (the part that runs on the pool). The
filter runs at two sizes (5,000 and 20,000 records), so that the share of those fixed seconds shows.

On a quiet 2-core machine (load 1.1-1.4, 2026-12-07) the default sizes with `--reps 3` took 439 s in all (the filter
at 20,000 records 200 s of it); at load 9-16 one rep of each took 21 minutes:

    PYTHONPATH=. .venv/bin/python scripts/bench_parallel.py

A quick look that it works (about a minute on a quiet machine; the figures mean little at this size):

    PYTHONPATH=. .venv/bin/python scripts/bench_parallel.py --small

The load average is printed before and after: a speed-up measured on a loaded machine is not meaningful.
"""
import argparse, ast, json, os, re, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = dict(corpus=[6000], filter=[5000, 20000], dedup=[800], decontaminate=[6000])   # records a stage
SMALL = dict(corpus=[300], filter=[300], dedup=[120], decontaminate=[150])
STAGES = ("corpus", "filter", "dedup", "decontaminate")


def stdlib_files(lo=1000, hi=20000) -> list[str]:
    "Standard-library sources of `lo`..`hi` bytes, in a fixed order."
    lib = Path(os.__file__).parent
    out = []
    for p in sorted(lib.rglob("*.py")):
        if "site-packages" in p.parts or "test" in p.parts or "tests" in p.parts: continue
        try: t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError): continue
        if lo <= len(t) <= hi: out.append(t)
    return out


def mutate(text: str, k: int) -> str:
    "A planted near-copy: identifiers renamed, a comment added (what dedup's AST shingles see through)."
    return f"# copy {k}\n" + re.sub(r"\b(self|data|value|result|name)\b", lambda m: f"{m.group(1)}_{k % 7}", text)


def records(n: int) -> list[dict]:
    "`n` records: distinct files, then near-copies of the earlier ones (about 1 in 6), a few exact copies."
    src, out = stdlib_files(), []
    for i in range(n):
        if i % 6 == 5: t = mutate(out[(i * 7919) % i]["content"], i)
        elif i % 50 == 49: t = out[(i * 104729) % i]["content"]
        else: t = src[i % len(src)] if i < len(src) else mutate(src[i % len(src)], i)
        out.append(dict(id=f"r{i}", content=t, path=f"f{i}.py", repo="stdlib", source="stdlib", size=len(t),
                        lines=t.count("\n"), educational_value=round((i * 37 % 100) / 100, 2)))
    return out


def functions(n: int) -> list[dict]:
    "`n` exercise-like records: top-level functions of the standard library, a few HumanEval solutions among them."
    from phi1_nb.decontaminate import load_benchmark
    fs = []
    for t in stdlib_files(200, 200000):
        try: tree = ast.parse(t)
        except SyntaxError: continue
        lines = t.splitlines(keepends=True)
        fs += ["".join(lines[d.lineno - 1:d.end_lineno]) for d in tree.body if isinstance(d, ast.FunctionDef)]
        if len(fs) >= n: break
    he = load_benchmark("humaneval")
    fs = [he[i % len(he)]["code"] if i % 40 == 0 else fs[i % len(fs)] for i in range(n)]
    return [dict(id=f"ex{i}", content=c, prompt="", solution=c) for i, c in enumerate(fs)]


def prepare(stage: str, n: int, shards: int, d: Path) -> Path:
    "The input run folder of `stage` (for filter: labels and model made once, outputs cleared)."
    from phi1_nb.core import write_manifest, write_shard
    recs = functions(n) if stage == "decontaminate" else records(n)
    if stage == "corpus":   # Stack-style source shards (what `phi1 corpus --format stack` reads)
        per = -(-n // shards)
        for i in range(0, n, per):
            write_shard(d / "src" / f"train-{i // per:05d}.jsonl.zst",
                        [dict(content=r["content"], max_stars_repo_path=r["path"]) for r in recs[i:i + per]])
        return d
    name = dict(filter="corpus", dedup="filter", decontaminate="synth/exercises")[stage]
    if stage == "filter":
        for r in recs: r.pop("educational_value")
    per = -(-len(recs) // shards)
    write_manifest(d / name, stage=name.split("/")[0],
                   shards=[write_shard(d / name / f"part-{i // per:05d}.jsonl.zst", recs[i:i + per])
                           for i in range(0, len(recs), per)])
    if stage == "filter":
        child(stage, 1, d)
        out = d / "filter"
        for p in ("parts", "scores", "dropped"): shutil.rmtree(out / p, ignore_errors=True)
        for p in list(out.glob("part-*")) + [out / "manifest.json"]: p.unlink(missing_ok=True)
        shutil.rmtree(d / "cache", ignore_errors=True)
    return d


KW = dict(corpus=dict(format="stack", limit=None, progress=False),
          filter=dict(n_labels=200, pool_size=400, embedder_params={"n_features": 1024}, classifier="logreg",
                      progress=False),
          dedup=dict(shingles="ast", batch_size=200), decontaminate=dict(batch_size=200))

CHILD = r"""
import json, resource, sys, time
stage, workers, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kw = json.loads(sys.argv[4])
if stage == "corpus": kw["source"] = f"{run}/src"
import importlib
fn = getattr(importlib.import_module(f"phi1_nb.{stage}"), f"run_{stage}")
cpu = lambda: sum(getattr(resource.getrusage(w), f) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  for f in ("ru_utime", "ru_stime"))
c0, t0 = cpu(), time.perf_counter()
m = fn(run, workers=workers, **kw)
print(json.dumps(dict(wall=time.perf_counter() - t0, cpu=cpu() - c0, n=m["counts"]["in"])))
"""


PYCACHE = None   # --pycache: a folder for compiled bytecode (the children and their workers write and read it there)


def child(stage: str, workers: int, run: Path) -> dict:
    "Run the stage in a child process: its wall and CPU (the child's and its workers'), and the records read."
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if PYCACHE: env.pop("PYTHONDONTWRITEBYTECODE", None); env["PYTHONPYCACHEPREFIX"] = PYCACHE
    r = subprocess.run([sys.executable, "-c", CHILD, stage, str(workers), str(run), json.dumps(KW[stage])],
                       capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(f"{stage} workers={workers} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated: " + ",".join(STAGES))
    ap.add_argument("--workers", type=int, default=2, help="the pool's size, against 1 (default 2)")
    ap.add_argument("--reps", type=int, default=3, help="timed runs of each arm (median reported; default 3)")
    ap.add_argument("--shards", type=int, default=8, help="input shards a stage (the pool's unit; default 8)")
    ap.add_argument("--small", action="store_true", help=f"tiny inputs {SMALL}: shows it works, in seconds")
    ap.add_argument("--records", default="", help=f"records a stage, e.g. dedup=3000,filter=5000+20000 "
                                                   f"(default {SIZES})")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    ap.add_argument("--pycache", default=None, help="cache compiled bytecode in this folder (PYTHONPYCACHEPREFIX), as "
                    "an installed venv has it: without, every fresh worker compiles what it imports")
    a = ap.parse_args(argv)
    global PYCACHE; PYCACHE = a.pycache
    more = {k: [int(n) for n in v.split("+")] for k, v in (x.split("=") for x in a.records.split(",") if x)}
    sizes = dict(SMALL if a.small else SIZES, **more)
    print(f"cores (affinity): {len(os.sched_getaffinity(0))}; load average before: {os.getloadavg()}; "
          f"bytecode cache: {a.pycache or ('off (PYTHONDONTWRITEBYTECODE)' if sys.dont_write_bytecode else 'on')}",
          flush=True)
    rows, t_all = [], time.time()
    for stage, size in [(st, k) for st in a.stages.split(",") for k in sizes[st]]:
        base = Path(tempfile.mkdtemp(prefix=f"bench_parallel_{stage}_"))
        try:
            prepare(stage, size, a.shards, base / "input")
            res = {1: [], a.workers: []}
            for _ in range(a.reps):
                for w in res:                                            # interleaved: 1, N, 1, N, ...
                    run = base / f"run{w}"; shutil.rmtree(run, ignore_errors=True)
                    shutil.copytree(base / "input", run)
                    res[w].append(child(stage, w, run))
        finally: shutil.rmtree(base, ignore_errors=True)
        med = {w: {k: statistics.median(x[k] for x in v) for k in ("wall", "cpu")} for w, v in res.items()}
        n = res[1][0]["n"]
        rows.append(dict(stage=stage, records=n, workers=a.workers, wall_1=med[1]["wall"],
                         wall_n=med[a.workers]["wall"],
                         speedup=med[1]["wall"] / med[a.workers]["wall"], cpu_ms_rec_1=1e3 * med[1]["cpu"] / n,
                         cpu_ms_rec_n=1e3 * med[a.workers]["cpu"] / n, runs=res))
        print(f"{stage} ({n} records): done ({time.time() - t_all:.0f} s so far; load {os.getloadavg()[0]:.1f})",
              flush=True)
    n = a.workers
    print(f"\n| stage | records | wall 1 (s) | wall {n} (s) | speed-up | CPU ms/record 1 | CPU ms/record {n} "
          f"| CPU {n}/1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['records']} | {r['wall_1']:.2f} | {r['wall_n']:.2f} | {r['speedup']:.2f}x | "
              f"{r['cpu_ms_rec_1']:.2f} | {r['cpu_ms_rec_n']:.2f} | {r['cpu_ms_rec_n'] / r['cpu_ms_rec_1']:.2f} |")
    print(f"\nmedians of {a.reps} interleaved runs a stage; total {time.time() - t_all:.0f} s; "
          f"load average after: {os.getloadavg()}")
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
