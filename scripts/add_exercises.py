"""Write the exercises of `scripts/exercise_spec.py`: the "## Exercises" section at the end of each stage notebook
(question + starter cells) and `nbs/solutions/<stem>_solutions.ipynb` (question + solution cells).

Idempotent: a stage notebook's cells from its "## Exercises" heading to the end are replaced, nothing above is touched.
Run `nbdev-clean` afterwards."""
import sys
from pathlib import Path

import nbformat as nbf

sys.path.insert(0, str(Path(__file__).parent))
from exercise_spec import FIGURES, INTRO, IMPORTS, SPEC  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HEAD = "## Exercises"
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell


def _ids(cells:list, key:str) -> list:
    "Stable cell ids (a rerun changes no id, so diffs show only real changes)."
    import hashlib
    for i, c in enumerate(cells): c.id = hashlib.sha1(f"{key}:{i}".encode()).hexdigest()[:8]
    return cells


def imports(nb:str) -> str: return "\n".join(x for x in ["from phi1_nb.exercises import check", IMPORTS[nb]] if x)


def exercise_cells(nb:str, solution:bool) -> list:
    "Question and starter (or solution) cells of one notebook's exercises."
    out = []
    for i, (name, question, starter, sol) in enumerate(SPEC[nb], 1):
        out += [md(f"**Exercise {i}** (`{name}`). {question}"), code(sol if solution else starter)]
    return out


def append_section(path:Path):
    nb = nbf.read(path, as_version=4)
    cut = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith(HEAD)), len(nb.cells))
    fig = [code(FIGURES[path.name])] if path.name in FIGURES else []
    nb.cells = nb.cells[:cut] + _ids([md(f"{HEAD}\n{INTRO.format(nb=path.stem + '_solutions.ipynb')}"), code(imports(path.name))]
                                     + fig + exercise_cells(path.name, solution=False), path.name)
    nbf.write(nb, path)


def write_solutions(path:Path, out_dir:Path):
    title = path.stem.split("_", 1)[1]
    nb = nbf.v4.new_notebook(metadata={"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}})
    nb.cells = _ids([md(f"# Solutions: {title}\n> The exercises at the end of `nbs/{path.name}`, solved; each cell asserts that its check passes."),
                code(imports(path.name))] + exercise_cells(path.name, solution=True), "solutions/" + path.name)
    out_dir.mkdir(exist_ok=True)
    nbf.write(nb, out_dir/f"{path.stem}_solutions.ipynb")


if __name__ == "__main__":
    for name in SPEC:
        append_section(ROOT/"nbs"/name)
        write_solutions(ROOT/"nbs"/name, ROOT/"nbs"/"solutions")
    print(f"exercises written into {len(SPEC)} notebooks and nbs/solutions/")
