"Every exercise: its solution passes its check, its starter runs and does not, and a wrong answer fails."
import contextlib, io, json, sys
from pathlib import Path

import pytest
from phi1_nb.exercises import EXERCISES, check

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/"scripts"))
from exercise_spec import FIGURES, SPEC  # noqa: E402


def code_cells(path:Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def exercise_section(path:Path) -> list[str]:
    "The code cells after the notebook's '## Exercises' heading."
    cells, out, on = json.loads(path.read_text())["cells"], [], False
    for c in cells:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown" and src.startswith("## Exercises"): on = True
        elif on and c["cell_type"] == "code": out.append(src)
    return out


def run_cells(cells:list[str]) -> tuple[dict, str]:
    ns, buf = {"__name__": "__main__"}, io.StringIO()
    with contextlib.redirect_stdout(buf):
        for src in cells: exec(compile(src, "<cell>", "exec"), ns)
    return ns, buf.getvalue()


def test_every_exercise_is_in_a_notebook_with_a_solution():
    names = [e[0] for exs in SPEC.values() for e in exs]
    assert sorted(names) == sorted(EXERCISES) and len(names) == len(set(names))
    assert all(3 <= len(exs) <= 5 for exs in SPEC.values())
    for nb in SPEC:
        assert (ROOT/"nbs"/"solutions"/f"{Path(nb).stem}_solutions.ipynb").exists(), nb


@pytest.mark.parametrize("nb", list(SPEC))
def test_solutions_pass_and_starters_do_not(nb):
    stem = Path(nb).stem
    _, out = run_cells(code_cells(ROOT/"nbs"/"solutions"/f"{stem}_solutions.ipynb"))  # each solution cell asserts its check
    for name, *_ in SPEC[nb]: assert f"{name}: solved" in out, out
    section = exercise_section(ROOT/"nbs"/nb)
    assert len(section) == len(SPEC[nb]) + 1 + (nb in FIGURES), f"{nb}: the Exercises section is missing or out of date (scripts/add_exercises.py)"
    _, out = run_cells(section)                                      # the starters run as they are, and are not solved
    for name, *_ in SPEC[nb]: assert f"{name}: not yet solved" in out, out


WRONG = {  # a plausible mistake for every exercise
    "filter.predict": "B", "filter.precision_recall": lambda y, s, c: (float((s >= c).mean()), 1.0),
    "filter.criterion": lambda code: len(code) / 1000,
    "synth.topics": 500, "synth.unique_names": 0.5, "synth.no_benchmark_names": lambda names: len(names) > 0,
    "dedup.jaccard": lambda a, b: len(a & b) / max(len(a | b), 1), "dedup.shingle_size": {2: (1., 1.), 5: (1., 1.), 10: (1., 1.)},
    "dedup.break_it": lambda code: code.replace("\n", "\n\n"),
    "decontaminate.predict_match_rate": 0.5, "decontaminate.ngram_count": lambda w, n=13: w - n + 1,
    "decontaminate.break_it": "def f():\n    return 1\n",
    "model.n_params": lambda L, d, ff, V: V*d + L*(4*d*d + 2*d*ff), "model.embedding_share": 0.5, "model.mfu": 1e6,
    "train.grad_accum": 128, "train.initial_loss": 1024, "train.tokens_seen": (36_000 * 1024, 1.0),
    "finetune.mask_prompt": lambda p, s: [-100] * len(p) + [-100] * len(s),
    "finetune.lr": lambda step, peak, warmup, total: peak, "finetune.tokens": (6_000 * 256, 0.5),
    "eval.pass_at_k": lambda n, c, k: 1 - (1 - c / n) ** k, "eval.naive_bias": (0.7632, 0.6513),
    "eval.break_it": "raise RuntimeError('not a real escape')",
    "ablation.sign": "-", "ablation.paired_ci": lambda a, b: (0.0, 0.1), "ablation.unpaired": lambda a, b: 0.0329,
}


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_a_wrong_answer_fails(name):
    assert name in WRONG, f"add a wrong answer for {name}"
    assert check(name, WRONG[name]) is False
    assert check(name, None) is False
