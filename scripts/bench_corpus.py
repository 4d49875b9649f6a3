"""The corpus stage on 1 process against N (the local engine), on the same Stack-style shards (not run by the tests).

Input: `--n` records from `bench_scale.stack_records` (stdlib functions spliced, with near and exact copies), written
once as `--shards` Stack-style shards (a shard is the corpus stage's unit of work). Runs interleave (1, N, 1, N, ...),
each `phi1_nb.corpus.run_corpus` in a child process, and report medians:
- wall seconds and CPU seconds (user + sys of the child and its workers) of `run_corpus` alone (imports excluded),
  and CPU ms per record;
- cores busy = CPU / wall, and the 1-minute load average before each run (other jobs on the machine take cores);
- speed-up = wall(1) / wall(N), and the CPU-time-limited speed-up = CPU(1) / critical path(N), where the critical
  path is the driver's CPU plus the busiest worker's (each task's CPU logged by worker). The first is what the
  machine gave; the second what the engine gives when each process has a core. On a loaded machine whose scheduler
  shares the CPU per session (autogroup), N processes get one session's share: the wall speed-up then stays near 1.
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
import json, os, resource, sys, time
import phi1_nb.corpus as corpus
def cpu(who):
    r = resource.getrusage(who); return r.ru_utime + r.ru_stime
import phi1_nb.core as core
log, real, driver = sys.argv[4], core._run_item, os.getpid()
def timed(*a):   # each task's CPU, by worker: the critical path of the run (cloudpickle sends it to the workers)
    t = time.process_time(); out = real(*a)
    if os.getpid() != driver:
        with open(log, "a") as f: f.write(f"{os.getpid()} {time.process_time() - t}\n")
    return out
core._run_item = timed
s, c, t = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.time()
m = corpus.run_corpus(sys.argv[1], source=sys.argv[2], format="stack", limit=None, workers=int(sys.argv[3]),
                      progress=False, shard_format="jsonl.zst")
wall, s, c = time.time() - t, cpu(resource.RUSAGE_SELF) - s, cpu(resource.RUSAGE_CHILDREN) - c
per = {}
for line in open(log) if os.path.exists(log) else []:
    pid, x = line.split(); per[pid] = per.get(pid, 0.0) + float(x)
crit = s + (max(per.values()) + (c - sum(per.values())) / len(per) if per else 0.0)
print("RESULT " + json.dumps(dict(wall=wall, cpu=s + c, crit=crit, n=m["counts"]["in"], out=m["counts"]["out"],
                                  sha=[x["sha256"] for x in m["shards"]], bytes=sum(x["bytes"] for x in m["shards"]),
                                  rss_mb=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                             resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)))
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
    log = run_dir.with_suffix(".tasks"); log.unlink(missing_ok=True)
    p = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), str(src), str(workers), str(log)], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line: raise RuntimeError(f"corpus run failed ({p.returncode}): {p.stderr[-2000:]}")
    return dict(json.loads(line[-1][7:]), load=load, workers=workers)


def summary(runs:list[dict]) -> dict:
    med = lambda k: statistics.median(r[k] for r in runs)
    n = runs[0]["n"]
    return dict(wall=med("wall"), cpu=med("cpu"), crit=med("crit"), ms=1000 * med("cpu") / n, busy=med("cpu") / med("wall"),
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
    speed, bound = s1["wall"] / sn["wall"], s1["cpu"] / sn["crit"]
    rows = [("wall s (median)", "wall", "{:.2f}"), ("CPU s (user+sys)", "cpu", "{:.2f}"), ("CPU ms / record", "ms", "{:.3f}"),
            ("cores busy (CPU/wall)", "busy", "{:.2f}"),
            ("critical path CPU s", "crit", "{:.2f}"), ("load avg before runs", "load", "{}"), ("peak RSS MB (one process)", "rss", "{:.0f}")]
    print(f"\n| corpus stage, {a.n:,} records, {a.shards} shards | 1 process | {a.workers} processes |\n|---|---|---|")
    for name, k, f in rows: print(f"| {name} | {f.format(s1[k])} | {f.format(sn[k])} |")
    print(f"\nspeed-up: wall {speed:.2f}x (what this machine's load gave); CPU-time-limited {bound:.2f}x (if each process "
          f"had a core); CPU per record {sn['ms'] / s1['ms']:.2f}x the one-process run's; shards identical: yes")
    if a.json:
        costs = {"corpus": dict(cpu_ms=round(s1["ms"], 4), rss_mb=round(sn["rss"], 1), disk_kb=round(s1["disk_kb"], 3),
                                parallel=True, source=f"scripts/bench_corpus.py --n {a.n} (load {s1['load']})")}
        Path(a.json).write_text(json.dumps(costs, indent=1) + "\n"); print(f"costs -> {a.json}")
    return s1, sn


if __name__ == "__main__":
    main()
