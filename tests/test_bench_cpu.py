"""scripts/bench_ray.py's CPU measure counts processes that outlive their parent (Ray's workers; issue 28 item 2)."""
import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the command: starts a detached grandchild that burns CPU after the command itself has exited, then exits at once
ORPHAN = ("import os, time\n"
          "if os.fork() == 0:\n"
          "    os.setsid()\n"
          "    if os.fork() == 0:\n"
          "        time.sleep(0.3); t = time.process_time()\n"
          "        while time.process_time() - t < 0.6: pass\n"
          "    os._exit(0)\n")


def test_reaped_counts_an_orphaned_grandchild(tmp_path):
    "The grandchild's 0.6 s of CPU, spent after its parent and the command exited, is in the reaped CPU."
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT/'scripts')!r}); import bench_ray\n"
            f"r = bench_ray.reaped([sys.executable, '-c', {ORPHAN!r}], bench_ray.Path({str(tmp_path/'log')!r}), poll=0.05)\n"
            "print(json.dumps(r))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.splitlines()[-1])
    assert r["rc"] == 0 and r["cpu"] >= 0.55, r          # a sum over the processes alive at the end would miss it
    assert r["drain_s"] >= 0.5 and not r["killed_left"], r   # it waited for the orphan rather than killing it
