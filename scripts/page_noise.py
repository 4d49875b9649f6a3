"""Count what the site would show as log noise in a run's executed notebooks: stderr stream outputs and Python warnings.

usage: python scripts/page_noise.py runs/tiny/notebooks   (the issue's "page noise counts"; `make site` checks the same in a browser)"""
import json, sys
from pathlib import Path

from phi1_nb.site import warnings_in   # Python warnings and WARNING-level log records, as the site's check counts them


def noise(nb:Path) -> tuple[int, int]:
    "(stderr blocks, warnings) in one executed notebook's outputs."
    se = w = 0
    for c in json.loads(nb.read_text())["cells"]:
        for o in c.get("outputs", []):
            stream = o.get("output_type") == "stream"
            t = "".join(o.get("text", "")) if stream else "".join((o.get("data") or {}).get("text/plain", ""))
            se += stream and o.get("name") == "stderr"
            w += warnings_in(t)
    return se, w


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tiny/notebooks")
    if not folder.is_dir(): sys.exit(f"page_noise: error: {folder} is not a folder of executed notebooks")
    tot = [0, 0]
    for p in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        se, w = noise(p); tot[0] += se; tot[1] += w
        print(f"{p.stem:<18} stderr blocks {se:3d}  warnings {w:3d}")
    print(f"{'total':<18} stderr blocks {tot[0]:3d}  warnings {tot[1]:3d}")
