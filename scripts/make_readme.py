"""Render README.md from nbs/index.ipynb (nbdev-readme needs Quarto, which a fresh offline machine lacks).

`python scripts/make_readme.py` writes README.md; `--check` exits 1 when README.md is out of date."""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def render(nb_path=ROOT / "nbs" / "index.ipynb") -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = ["<!-- generated from nbs/index.ipynb by scripts/make_readme.py: edit the notebook, not this file -->"]
    for c in nb["cells"]:
        src = "".join(c["source"]).strip()
        if not src or src.startswith("#|"): continue
        parts.append(src if c["cell_type"] == "markdown" else f"```python\n{src}\n```")
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text, out = render(), ROOT / "README.md"
    if "--check" in sys.argv:
        if not out.exists() or out.read_text() != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python scripts/make_readme.py`")
        print("README.md in sync with nbs/index.ipynb")
    else:
        tmp = out.with_suffix(".md.tmp"); tmp.write_text(text); tmp.replace(out); print(f"wrote {out}")
