"""The ablation's data preparation (`prepare_arms`) under two settings, interleaved, on one run's corpus/filter/dedup:
the tiny preset's old one (every source tokenized whole, a 4 MB tokenizer sample per arm) and its new one (a token
budget, so only the first bins of each arm's random order are tokenized; a 1 MB sample). Prints wall and CPU seconds.

usage: python scripts/bench_ablation_data.py RUN_DIR [--reps 2]   (RUN_DIR: a finished tiny run, e.g. runs/tiny)"""
import argparse, resource, shutil, statistics, tempfile, time
from pathlib import Path

from phi1_nb.arms import parse_arms, prepare_arms, resolve_source

SETTINGS = {"old (tokens: null, tokenizer_bytes: 4e6)": dict(tokenizer_bytes=4_000_000, tokens=None),
            "new (tokens: 5e5, tokenizer_bytes: 1e6)": dict(tokenizer_bytes=1_000_000, tokens=500_000)}


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("run_dir"); ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    paths = {arm: [resolve_source(a.run_dir, s, arm) for s in ss]
             for arm, ss in parse_arms("raw,filtered,filtered-nodedup").items()}
    import transformers, phi1_nb.checkpoints   # imported before the clocks start
    got = {k: [] for k in SETTINGS}
    for _ in range(a.reps):
        for name, kw in SETTINGS.items():
            out = Path(tempfile.mkdtemp(prefix="bench-arms-"))
            t0, c0 = time.time(), cpu()
            m = prepare_arms(out, paths, "fair", vocab_size=4096, seed=1234, seq_len=128, **kw)
            got[name].append((time.time() - t0, cpu() - c0, m["budget"])); shutil.rmtree(out)
    for name, xs in got.items():
        print(f"{name:<42} wall {statistics.median(x[0] for x in xs):6.1f} s  cpu {statistics.median(x[1] for x in xs):6.1f} s"
              f"  budget {xs[0][2]} tokens/arm  ({len(xs)} runs)")


if __name__ == "__main__":
    main()
