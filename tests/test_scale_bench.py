"scripts/bench_scale.py measures a stage child's own peak RSS, not the peak it inherits from a large parent (issue 28)."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARENT = r"""
import json, sys
sys.path.insert(0, sys.argv[1] + "/scripts")
from bench_scale import run_stage
ballast = bytearray(400 * 2**20); ballast[::4096] = b"\1" * (len(ballast) // 4096)   # 400 MB resident in the parent
r = run_stage(("os.listdir", sys.argv[2], {}, [], sys.argv[2]), code=sys.argv[1])
print(json.dumps(r))
"""


def test_child_peak_is_its_own_not_the_parents(tmp_path):
    """The bench's child is a fork + exec of a parent holding 400 MB: `ru_maxrss` would read >= 400 MB (Linux keeps it
    across exec); the child's own `VmHWM` is that of a Python that listed a folder."""
    p = subprocess.run([sys.executable, "-c", PARENT, str(ROOT), str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    rss = json.loads(p.stdout.splitlines()[-1])["rss_mb"]
    assert 5 < rss < 300, rss


def test_stack_generator_is_the_same_with_any_workers():
    """The generator's near copies are made in a worker pool, a block at a time: the records depend on the seed only
    (not on the workers), a smaller size is a prefix of a larger one, and copies are planted."""
    sys.path.insert(0, str(ROOT/"scripts"))
    from bench_scale import stack_records
    one = list(stack_records(1300, seed=3, block=400, workers=1))
    two = list(stack_records(1300, seed=3, block=400, workers=2))
    assert one == two and list(stack_records(700, seed=3, block=400, workers=2)) == one[:700]
    assert sum(r["content"].endswith("\n\n") for r in one) > 10                                  # exact copies
    assert one != list(stack_records(1300, seed=4, block=400, workers=1))
