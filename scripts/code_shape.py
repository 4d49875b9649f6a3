"""How readable the code is, per notebook: code lines over 120 characters, exported cells over 40 lines (and whether a
cell that shows them working follows), and generated modules over 400 lines (issue 30's item 6).

usage: python scripts/code_shape.py [nbs/x.ipynb ...]   (default: every notebook in nbs/ and nbs/solutions/)
Exits 1 when any notebook or module is over a limit, so it can gate a change (`python scripts/code_shape.py nbs/16_exercises.ipynb`)."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE, CELL, MODULE = 120, 40, 400


def shape(nb:Path) -> dict:
    "`{long_lines, long_cells, untested_exports}` of one notebook: what is over the limits, as (cell index, detail)."
    cells = json.loads(nb.read_text())["cells"]
    out = dict(long_lines=[], long_cells=[], untested_exports=[])
    for i, c in enumerate(cells):
        if c["cell_type"] != "code": continue
        lines = "".join(c["source"]).splitlines()
        out["long_lines"] += [(i, len(l)) for l in lines if len(l) > LINE]
        if lines and lines[0].startswith("#| export"):
            if len(lines) > CELL: out["long_cells"].append((i, len(lines)))
            nxt = next((d for d in cells[i + 1:] if d["cell_type"] == "code"), None)
            if nxt is None or "".join(nxt["source"]).lstrip().startswith(("#| export", "#| exporti")):
                out["untested_exports"].append((i, len(lines)))
    return out


def long_modules() -> list[tuple[str, int]]:
    return sorted((p.name, n) for p in (ROOT/"phi1_nb").glob("*.py") if p.name != "_modidx.py"
                  and (n := len(p.read_text().splitlines())) > MODULE)


if __name__ == "__main__":
    nbs = [Path(a) for a in sys.argv[1:]] or sorted((ROOT/"nbs").glob("*.ipynb")) + sorted((ROOT/"nbs"/"solutions").glob("*.ipynb"))
    tot, bad = [0, 0, 0], False
    print(f"{'notebook':<34} lines>{LINE}  cells>{CELL}  exports without a next cell")
    for nb in nbs:
        s = shape(nb); n = [len(s["long_lines"]), len(s["long_cells"]), len(s["untested_exports"])]
        tot = [a + b for a, b in zip(tot, n)]; bad |= any(n)
        if any(n): print(f"{nb.name:<34} {n[0]:>9}  {n[1]:>8}  {n[2]:>5}")
    print(f"{'total':<34} {tot[0]:>9}  {tot[1]:>8}  {tot[2]:>5}")
    mods = long_modules() if not sys.argv[1:] else []
    for m, n in mods: print(f"module over {MODULE} lines: {m} {n}")
    sys.exit(1 if bad or mods else 0)
