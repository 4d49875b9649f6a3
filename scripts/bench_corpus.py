"""The corpus stage on 1 process against N (the local engine), on the same Stack-style shards (not run by the tests).

Input: `--n` records from `bench_scale.stack_records` (stdlib functions spliced, with near and exact copies), written
once as `--shards` Stack-style shards (a shard is the corpus stage's unit of work). Runs interleave (1, N, 1, N, ...),
each `phi1_nb.corpus.run_corpus` in a child process, and report medians:
- wall seconds and CPU seconds (user + sys of the child and its workers) of `run_corpus` alone (imports excluded),
  and CPU ms per record;
- cores busy = CPU / wall, and the 1-minute load average before each run (other jobs on the machine take cores);
- speed-up = wall(1) / wall(N), beside what the cores it got allowed: `min(N, busy(N)) / busy(1)`. On a loaded
  machine the N workers may not get N cores; then a speed-up under N is the machine's limit, not the engine's.
The shards of the two runs must be the same bytes (checked on every run). `--json` writes the per-record costs that
`phi1 plan --costs` reads.

usage: python scripts/bench_corpus.py [--n 20000] [--shards 16] [--workers 2] [--repeats 3] [--out /tmp/phi1_bench_corpus]
"""
from __future__ import annotations
import argparse, itertools, json, os, resource, shutil, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT/"scripts")]

CHILD = r"""
import json, resource, sys, time
from phi1_nb.corpus import run_corpus
def cpu():   # this process and its reaped workers (the pool is joined when the stage returns)
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime
c, t = cpu(), time.time()
m = run_corpus(sys.argv[1], source=sys.argv[2], format="stack", limit=None, workers=int(sys.argv[3]), progress=False,
               shard_format="jsonl.zst")
print("RESULT " + json.dumps(dict(wall=time.time() - t, cpu=cpu() - c, n=m["counts"]["in"], out=m["counts"]["out"],
                                  sha=[s["sha256"] for s in m["shards"]], rss_mb=max(
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, bytes=sum(s["bytes"] for s in m["shards"]))))
"""


def make_source(d:Path, n:int, shards:int, seed:int=0) -> Path:
    "`n` generated records in `shards` Stack-style shards under `d` (kept when there)."
    from bench_scale import stack_records
    from phi1_nb.shards import write_shard
    if (d/"done").exists(): return d
    shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    it, per = stack_records(n, seed), -(-n // shards)
    for k in range(shards):
        rows = [dict(r, max_stars_repo_path=f"repo{k}/{r['id']}.py") for r in itertools.islice(it, per)]
        if rows: write_shard(d/f"train-{k:05d}.jsonl.zst", rows)
    (d/"done").touch()
    return d


def run_once(src:Path, run_dir:Path, workers:int) -> dict:
    "One corpus run in a child: wall and CPU of the stage alone (not the imports), peak RSS, load before."
    shutil.rmtree(run_dir, ignore_errors=True)
    load = os.getloadavg()[0]
    p = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(src), str(workers)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line: raise RuntimeError(f"corpus run failed ({p.returncode}): {p.stderr[-2000:]}")
    return dict(json.loads(line[-1][7:]), load=load, workers=workers)


def summary(runs:list[dict]) -> dict:
    med = lambda k: statistics.median(r[k] for r in runs)
    n = runs[0]["n"]
    return dict(wall=med("wall"), cpu=med("cpu"), ms=1000 * med("cpu") / n, busy=med("cpu") / med("wall"),
                load=f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}", rss=max(r["rss_mb"] for r in runs),
                disk_kb=runs[0]["bytes"] / 1024 / n, n=n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000); ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2); ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="/tmp/phi1_bench_corpus"); ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    out = Path(a.out); t = time.time()
    src = make_source(out/f"src-{a.n}-{a.shards}", a.n, a.shards)
    print(f"# {a.n:,} records in {a.shards} shards ready ({time.time() - t:.0f} s); {os.cpu_count()} cores; "
          f"uptime: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    runs = {1: [], a.workers: []}
    for i in range(a.repeats):
        for w in runs:
            r = run_once(src, out/f"run-{w}", w); runs[w].append(r)
            print(f"  run {i + 1} workers {w}: wall {r['wall']:6.2f} s  cpu {r['cpu']:6.2f} s  load {r['load']:.1f}", flush=True)
    ref = runs[1][0]["sha"]
    assert all(r["sha"] == ref for rs in runs.values() for r in rs), "the shards differ between runs"
    s1, sn = summary(runs[1]), summary(runs[a.workers])
    speed, bound = s1["wall"] / sn["wall"], min(a.workers, sn["busy"]) / s1["busy"]
    rows = [("wall s (median)", "wall", "{:.2f}"), ("CPU s (user+sys)", "cpu", "{:.2f}"), ("CPU ms / record", "ms", "{:.3f}"),
            ("cores busy (CPU/wall)", "busy", "{:.2f}"), ("load avg before runs", "load", "{}"), ("peak RSS MB (one process)", "rss", "{:.0f}")]
    print(f"\n| corpus stage, {a.n:,} records, {a.shards} shards | 1 process | {a.workers} processes |\n|---|---|---|")
    for name, k, f in rows: print(f"| {name} | {f.format(s1[k])} | {f.format(sn[k])} |")
    print(f"\nspeed-up (wall): {speed:.2f}x; the CPU it got allowed {bound:.2f}x; CPU per record {sn['ms'] / s1['ms']:.2f}x "
          f"the one-process run's; shards identical: yes")
    if a.json:
        costs = {"corpus": dict(cpu_ms=round(s1["ms"], 4), rss_mb=round(sn["rss"], 1), disk_kb=round(s1["disk_kb"], 3),
                                parallel=True, source=f"scripts/bench_corpus.py --n {a.n} (load {s1['load']})")}
        Path(a.json).write_text(json.dumps(costs, indent=1) + "\n"); print(f"costs -> {a.json}")
    return s1, sn


if __name__ == "__main__":
    main()
