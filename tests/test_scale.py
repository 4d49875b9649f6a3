"Memory at scale: the peak RSS of a child process grows by a bounded amount per record (the read contract, dedup)."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"scripts"))

DEDUP = r"""
import re, sys
from phi1_nb.dedup import run_dedup
run_dedup(sys.argv[1], input_stage="filter", shingles="word", threshold=0.8, verify="exact", batch_size=1000)
print("RSS", re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
"""
CONTRACT = r"""
import re, sys
from phi1_nb.contract import read_dataset
n = sum(1 for _ in read_dataset(sys.argv[1] + "/filter"))
print("RSS", re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
"""


def peak_rss_kb(code:str, run_dir) -> int:
    """Peak RSS (KB) of a child process that runs `code` on `run_dir` with this checkout's package: its own `VmHWM`.
    Not `ru_maxrss`: Linux keeps that across fork + exec, so a child of a large pytest process reports the parent's peak
    (in CI both sizes read 1.27 GB: a growth of 0, whatever the stage did)."""
    r = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, cwd=ROOT,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.split("RSS")[-1])


def per_record(tmp_path, code:str, small:int, big:int) -> tuple[float, dict]:
    "Bytes of peak RSS per record between `small` and `big` generated records (12% near, 3% exact copies)."
    from bench_scale import make_stage
    for n in (small, big): make_stage(tmp_path/f"n{n}", n, seed=1, per_shard=10_000, corpus="words")
    rss = {n: peak_rss_kb(code, tmp_path/f"n{n}") for n in (small, big)}
    return (rss[big] - rss[small]) * 1024 / (big - small), rss


def test_read_contract_rss_per_record_is_flat(tmp_path):
    """Reading 10,000 and 90,000 records through the read contract: peak RSS grows < 50 bytes a record (issue 28's
    goal: 0.1 KB), measured by the child's own `VmHWM`.

    Measured (2026-12-07 15:52, load 12, this test's child twice each): 32.7 bytes a record with the ids' hashes in
    sorted runs on disk (`contract.SeenIds`), as with no id check at all (33); 72.1-74.9 with them in sorted runs in
    memory; 154 with a set of the ids. (At 90K the hashes are still in its 1 MB buffer; past it, on disk, the check's
    growth is held by `tests/test_contract_ids.py::test_id_check_rss_per_id_is_flat`.) An earlier version read
    `ru_maxrss`, which a child inherits from a large pytest process: it saw 0 and claimed so (and held this test at
    < 40 bytes) when the real growth was 75."""
    per, rss = per_record(tmp_path, CONTRACT, 10_000, 90_000)
    assert per < 50, f"peak RSS grew {per:.0f} bytes per record ({rss})"


def test_dedup_rss_per_record_is_bounded(tmp_path):
    """Local dedup (word shingles, exact verification) of 20,000 and 100,000 records: peak RSS grows < 100 bytes a
    record (issue 28's goal: 0.1 KB), counting the read contract it runs first; the copies are found.

    Measured (2026-12-07, load 13): 116 -> 115 MB. With the set of ids it was 116 -> 113 MB: at these sizes the peak
    comes after the contract, which freed the set, so this test did not see it (the one above does); the set showed
    past 200K records (bench_scale: +0.111 KB a record from 80K to 320K)."""
    per, rss = per_record(tmp_path, DEDUP, 20_000, 100_000)
    m = json.loads((tmp_path/"n100000"/"dedup"/"manifest.json").read_text())
    assert m["drops"].get("exact_duplicate", 0) > 1000 and m["drops"].get("near_duplicate", 0) > 1000   # it found copies
    assert per < 100, f"peak RSS grew {per:.0f} bytes per record ({rss})"
    assert not (tmp_path/"n100000"/"dedup"/"work"/"spill").exists()     # the spilled features are removed


CACHE = r"""
import re, sys
from phi1_nb.embed import EmbeddingCache
c = EmbeddingCache(sys.argv[1], "k")
assert c.cached([f"h{i}" for i in range(0, int(sys.argv[2]), 7)]).all()
print("RSS", re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
"""


def test_embedding_cache_index_per_record_is_small(tmp_path):
    """The embedding cache's index of 10,000 and 90,000 cached vectors, loaded in a child: its peak RSS grows < 120 bytes
    a vector (25-byte entries in sorted runs, 50 while two merge; 44-60 measured, the allocator's noise on top). A dict
    of the keys (before) took ~200-237 bytes a vector: the filter's RSS grew with the corpus."""
    import numpy as np
    from phi1_nb.embed import EmbeddingCache
    rss = {}
    for n in (10_000, 90_000):
        c = EmbeddingCache(tmp_path/f"n{n}", "k")
        for a in range(0, n, 5000): c.put([f"h{i}" for i in range(a, a + 5000)], np.eye(5000, 4, dtype=np.float32),
                                          np.zeros(5000, bool))
        r = subprocess.run([sys.executable, "-c", CACHE, str(tmp_path/f"n{n}"), str(n)], capture_output=True, text=True,
                           cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        rss[n] = int(r.stdout.split("RSS")[-1])
    per = (rss[90_000] - rss[10_000]) * 1024 / 80_000
    assert per < 120, f"peak RSS grew {per:.0f} bytes per cached vector ({rss})"
