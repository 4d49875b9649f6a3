"""Peak memory of the repeated-id check at growing sizes (not run by the tests; `tests/test_scale.py` bounds it).

Two uses of `contract.SeenIds`, each in a child process per size, that prints its own `VmHWM` (peak RSS) and CPU
seconds:
- `contract`: the read contract's check, `SeenIds.add` fed ids `s<shard>-<i>` in batches of 2,000, 10,000 a shard, then
  `refuse` (none repeats, so no shard is read);
- `corpus`: `corpus_input.drop_repeats` of receipts whose id hashes (random, none repeated) are written beside them in
  `ids/<task>.u64`, 10,000 a shard (no shard is read or written again).
Then the growth per id between consecutive sizes. `--code DIR` imports `phi1_nb` from DIR instead (another checkout,
e.g. `git archive main | tar -x -C /tmp/base`), to compare with the code before.

usage: python scripts/bench_ids.py [--sizes 100000,400000,1600000] [--uses contract,corpus] [--code DIR]
"""
from __future__ import annotations
import argparse, hashlib, json, os, subprocess, sys, tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PER_SHARD = 10_000

CONTRACT = r"""
import re, resource, sys
from phi1_nb.contract import SeenIds
n, seen = int(sys.argv[1]), SeenIds()
for s in range(0, n, 10_000):
    for n0 in range(0, min(10_000, n - s), 2000):
        ids = [f"s{s}-{i}" for i in range(n0, min(n0 + 2000, n - s))]
        seen.add(ids, f"/nowhere/s{s}.jsonl", ["id"], n0, ValueError)
if hasattr(seen, "refuse"): seen.refuse()
u = resource.getrusage(resource.RUSAGE_SELF)
print("RSS", re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1), "CPU", u.ru_utime + u.ru_stime)
"""
CORPUS = r"""
import json, re, resource, sys
from phi1_nb.corpus_input import drop_repeats
rs = json.load(open(sys.argv[2] + "/receipts.json"))
assert drop_repeats(sys.argv[2], rs) == rs
u = resource.getrusage(resource.RUSAGE_SELF)
print("RSS", re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1), "CPU", u.ru_utime + u.ru_stime)
"""


def corpus_stage(d:Path, n:int, seed:int=0) -> Path:
    "Receipts of `n` records, 10,000 a shard, with their id hashes beside them (random int64: none repeated)."
    rng, rs = np.random.default_rng(seed), []
    (d/"ids").mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(range(0, n, PER_SHARD)):
        m, task = min(PER_SHARD, n - s), f"part-{k:05d}"
        sha = hashlib.sha256(task.encode()).hexdigest()
        (d/"ids"/f"{task}.u64").write_bytes(sha.encode() + rng.integers(-2**63, 2**63 - 1, m, "<i8").tobytes())
        rs.append({"task": task, "shard": {"path": f"{task}.jsonl", "n": m, "sha256": sha}, "drops": {}})
    (d/"receipts.json").write_text(json.dumps(rs))
    return d


def measure(use:str, n:int, code:Path, tmp:Path) -> tuple[int, float]:
    "Peak RSS (KB) and CPU seconds of the child that runs `use` on `n` ids with the package in `code`."
    d = corpus_stage(tmp/f"{use}{n}", n) if use == "corpus" else tmp
    r = subprocess.run([sys.executable, "-c", CONTRACT if use == "contract" else CORPUS, str(n), str(d)],
                       capture_output=True, text=True, cwd=code, timeout=1800,
                       env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr[-2000:]
    w = r.stdout.split()
    return int(w[w.index("RSS") + 1]), float(w[w.index("CPU") + 1])


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,400000,1600000")
    ap.add_argument("--uses", default="contract,corpus")
    ap.add_argument("--code", default=str(ROOT))
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    print(f"code {a.code}; load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as t:
        for use in a.uses.split(","):
            got = {n: measure(use, n, Path(a.code), Path(t)) for n in sizes}
            for i, n in enumerate(sizes):
                m = sizes[i - 1]
                per = "" if i == 0 else f"  +{(got[n][0] - got[m][0]) * 1024 / (n - m):.2f} bytes/id from {m:,}"
                print(f"{use:<9} {n:>10,} ids: peak RSS {got[n][0] / 1024:7.1f} MB, CPU {got[n][1]:6.2f} s{per}")
    print(f"load {os.getloadavg()[0]:.2f}")
