"Every exercise: its solution passes its check, its starter runs and does not, and a wrong answer fails."
import contextlib, io, json, sys
from pathlib import Path

import pytest
from phi1_nb.exercises import EXERCISES, check, judge
from phi1_nb.exercises_model import _n_params

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


def _paste(name:str):
    "The answer a student gets by pasting back what seed 0's reference gives (a constant: the hidden inputs must catch it)."
    from phi1_nb.exercises_model import _losses, _unpaired_ref, paired_diff
    raw, filt = _losses()
    ci = tuple(paired_diff(raw, filt, n_boot=4000)["diff_ci"])
    return {"ablation.paired_ci": lambda a, b: ci, "ablation.unpaired": lambda a, b: _unpaired_ref(raw, filt)[0]}[name]


import cloudpickle  # noqa: E402
cloudpickle.register_pickle_by_value(sys.modules[__name__])   # answers defined here go by value, as a notebook's do


def _printed(code):   # A10: the program replaced by a print of its output on its visible input (no disguise at all)
    import phi1_nb.exercises as E
    seen = dict(zip(E._PROGRAMS, [x for x, _ in getattr(E, "_INPUTS", [])])).get(code, "10")
    try: out = E._stdout(code, seen)
    except TypeError: out = E._stdout(code)   # (before issue 30's a30 A10, the programs read no input)
    return "import sys\nsys.stdout.write(" + repr(out) + ")\n"


def _stash(code):   # a29 j08: the original kept in the answer's process; the copy runs it from there
    import builtins, hashlib
    k = "k" + hashlib.sha1(code.encode()).hexdigest()[:12]; setattr(builtins, k, code)
    return f"import builtins as B\nexec(getattr(B, {k!r}))\n"


def _lie(code):   # a29 j07: the answer's process rebinds the printed() that ran the copies to run the original
    import sys
    m = sys.modules["__main__"]; store = m.__dict__.setdefault("_orig", {})
    fake = f"print('hello {len(store)}')\n"; store[fake] = code
    if hasattr(m, "printed") and not getattr(m, "_patched", False):
        real = m.printed; m._patched = True
        m.printed = lambda c, stdin="": real(store.get(c, c), stdin)
    return fake


def _pass_at_k_to_200(n, c, k):   # right only up to the visible cases' n = 200
    from phi1_nb.eval import pass_at_k
    return pass_at_k(n, c, k) if n <= 200 else 0.0


PADDED = "def disguise(code):\n    return code + ''.join(f'_pad{i} = {i}\\n' for i in range(300))\n"

WRONG = {  # plausible mistakes for every exercise: each must fail
    "filter.predict": ["B"], "filter.precision_recall": [lambda y, s, c: (float((s >= c).mean()), 1.0)],
    "filter.criterion": [lambda code: len(code) / 1000, lambda code: float('"' in code)],
    "synth.topics": [500], "synth.unique_names": [0.5], "synth.no_benchmark_names": [lambda names: len(names) > 0,
                                                                                      lambda names: "has_close_elements" not in names],
    "dedup.jaccard": [lambda a, b: len(a & b) / max(len(a | b), 1), lambda a, b: len(a & b) / max(len(a), 1)],
    "dedup.shingle_size": [{2: (1., 1.), 5: (1., 1.), 10: (1., 1.)}],
    "dedup.break_it": [lambda code: code.replace("\n", "\n\n"), lambda code: code.replace("print(", "print(1, "), _printed,
                       _stash, _lie],
    "decontaminate.predict_match_rate": [0.5], "decontaminate.ngram_count": [
        lambda w, n=13: w - n + 1, lambda w, n=13: max(0, w - n + 1) if w <= 40 else 0],   # the last: to 40 words
    "decontaminate.break_it": ["def f():\n    return 1\n"],
    "model.n_params": [lambda L, d, ff, V: V*d + L*(4*d*d + 2*d*ff),
                       lambda L, d, ff, V: _n_params(L, d, ff, V) + d % 32],   # right only for widths 32k
    "model.embedding_share": [0.5], "model.mfu": [1e6],
    "train.grad_accum": [128, 16.4, 16.9, "16"], "train.initial_loss": [1024], "train.tokens_seen": [(36_000 * 1024, 1.0)],
    "finetune.mask_prompt": [lambda p, s: [-100] * len(p) + [-100] * len(s), lambda p, s: {(5, 6, 7): [-100] * 3 + [8, 9], (): [1], (3,): [-100]}[tuple(p)],  # the visible cases, memorized
                             lambda p, s: [-100] * len(p) + list(s) if len(p) < 4 else list(s)],  # a29 j18: long prompts
    "finetune.lr": [lambda step, peak, warmup, total: peak,   # the first schedule only: the hidden one must catch it
                    lambda step, peak, warmup, total: 1e-4 * (step / 50 if step < 50 else (6000 - step) / 5950)],
    "finetune.tokens": [(6_000 * 256, 0.5), (6_000 * 256 * 2048, 0.05), (6_000 * 256 * 2048, 6_000 / 36_000 / 4 * 1.024)],
    "eval.pass_at_k": [lambda n, c, k: 1 - (1 - c / n) ** k, _pass_at_k_to_200],
    "eval.naive_bias": [(0.7632, 0.6513), (0.65, 0.76)],
    "eval.break_it": ["raise RuntimeError('not a real escape')", "raise MemoryError",                 # the two
                      "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "import sys\nsys.exit(-9)",
                      "import os, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nos.kill(os.getpid(), signal.SIGXFSZ)",
                      "import os; os._exit(137)", "print('MemoryError')"],   # A15: a self-SIGXFSZ, an exit code, a print
    "ablation.sign": ["-"], "ablation.paired_ci": [lambda a, b: (0.0, 0.1), lambda a, b: (0.043, 0.076), "paste"],
    "ablation.unpaired": [lambda a, b: 0.0329, lambda a, b: 0.2, "paste", lambda a, b: float("nan")],
}


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_a_wrong_answer_fails(name):
    assert name in WRONG, f"add a wrong answer for {name}"
    for w in WRONG[name]:
        w = _paste(name) if w == "paste" else w
        assert check(name, w) is False, (name, w)
    assert check(name, None) is False


def _message(name, answer) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): check(name, answer)
    return buf.getvalue()


def test_no_failure_message_prints_the_reference():
    "The issue's three: pasting the printed value back would pass, so a failure prints no reference figure."
    from phi1_nb.eval import pass_at_k
    from phi1_nb.exercises_model import _losses, _unpaired_ref, paired_diff
    raw, filt = _losses(); ci = paired_diff(raw, filt, n_boot=4000)["diff_ci"]
    for name, answer, refs in [("eval.naive_bias", (0.5, 0.5), (1 - .9**10, pass_at_k(20, 2, 10))),
                               ("ablation.paired_ci", lambda a, b: (0.0, 0.1), ci),
                               ("ablation.unpaired", lambda a, b: 1.0, _unpaired_ref(raw, filt))]:
        msg = _message(name, answer)
        assert "not yet solved" in msg
        for r in refs:
            for digits in (3, 4, 6): assert f"{r:.{digits}f}" not in msg, (name, msg)


def _function_answers() -> dict:
    "`{exercise: the solution's function}` for every exercise whose answer is a function."
    out = {}
    for nb, exs in SPEC.items():
        ns, _ = run_cells(code_cells(ROOT/"nbs"/"solutions"/f"{Path(nb).stem}_solutions.ipynb"))
        for name, _q, starter, _s in exs:
            var = starter.split("(")[0].removeprefix("def ").strip() if starter.startswith("def ") else starter.split("=")[0].strip()
            if callable(ns.get(var)): out[name] = ns[var]
    return out


def test_every_function_check_uses_three_inputs_one_drawn_afresh():
    answers = _function_answers()
    assert len(answers) >= 12, sorted(answers)
    for name, f in answers.items():
        calls = [[], []]
        for seen in calls:
            def spy(*a, f=f, seen=seen):
                seen.append(repr(a)); return f(*a)
            assert judge(name, spy)[0], name   # in this process, so the spy sees the inputs (check sends them away)
        assert len(set(calls[0])) >= 3, (name, len(set(calls[0])))
        assert set(calls[0]) != set(calls[1]), f"{name}: two checks saw the same inputs: nothing hidden is drawn afresh"


def test_break_it_names_the_detector_a_padded_copy_defeats():
    ns, _ = run_cells([PADDED])
    msg = _message("dedup.break_it", ns["disguise"])
    assert "dedup.break_it: solved" in msg and "padded" in msg and "containment" in msg, msg
    ast = int(__import__("re").search(r"AST shingles \(.*\) catch (\d) of", msg)[1])   # what it measured, said so
    assert ("word and AST shingles alike" in msg) == (ast < 4) and ("not AST shingles" in msg) == (ast == 4), msg
    assert msg.count("\n") <= 2, msg      # one verdict, no program listing


def test_eval_break_it_wants_the_sandbox_kill():
    assert check("eval.break_it", "import time\ntime.sleep(60)\n")
    fill = "import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nf = open('big', 'wb')\nwhile True: f.write(b'x' * 2**20)"
    assert not check("eval.break_it", fill)   # the kernel's SIGXFSZ at the limit: the same as a self-sent one (b29 e01)
    at_limit = ("import os, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nf = open('big', 'wb')\n"
                "for _ in range(64): f.write(b'x' * 2**20)\nf.close(); os.kill(os.getpid(), signal.SIGXFSZ)")
    assert not check("eval.break_it", at_limit)
    msg = _message("eval.break_it", "raise MemoryError")
    assert "not yet solved" in msg and "ended on its own" in msg, msg


def test_train_checks_agree_with_the_code_they_do_not_import():
    "The train exercises' checks skip the Trainer and torch imports (the section runs in seconds); their rule is the code's."
    import torch
    from phi1_nb.train import grad_accum_steps
    assert check("train.grad_accum", grad_accum_steps(1024, 8, 8), quiet=True)
    uniform = float(torch.nn.functional.cross_entropy(torch.zeros(4, 1024), torch.tensor([1, 2, 3, 4])))
    assert check("train.initial_loss", uniform, quiet=True)


def test_exercise_sections_import_no_trainer():
    "A section whose checks need no model loads no Trainer: importing phi1_nb.train alone takes 13-18 s on a busy 2-core box."
    for nb in SPEC:
        cells = exercise_section(ROOT/"nbs"/nb)
        assert not any("phi1_nb.train import" in c or "import torch" in c for c in cells), nb


def test_no_constant_width_passes_the_unpaired_check():
    "A constant near seed 0's width (about 0.216) passed 4 of 30 tries when both hidden pairs drew a large size."
    for c in (0.2, 0.216, 0.25, 0.3):
        assert not any(judge("ablation.unpaired", lambda a, b, c=c: c)[0] for _ in range(25)), c


def test_model_checks_formula_is_count_params():
    "The model checks count by formula (the section runs in seconds, no transformers import): it must be the meta model's count."
    import random
    from phi1_nb.exercises_model import _dims, _n_params
    from phi1_nb.model import count_params, phi_config
    rng = random.Random(0)
    for name, V, kw in [("tiny", 1024, {}), ("phi-1-small", 51200, {}), ("phi-1", 51200, {})] + [
            ("tiny", rng.randint(50, 3000), dict(num_hidden_layers=rng.randint(1, 4), hidden_size=32 * (h := rng.randint(1, 4)),
                                                 num_attention_heads=h, intermediate_size=rng.randint(16, 300))) for _ in range(3)]:
        c, dims = phi_config(name, vocab_size=V, **kw), _dims(name, V, **kw)
        assert _n_params(*dims) == count_params(c), (name, kw)
        assert _n_params(*dims, embeddings=False) == count_params(c, exclude_embeddings=True), (name, kw)


def test_finetune_lr_check_is_transformers_schedule():
    "The finetune.lr check's schedule (no torch import) is get_linear_schedule_with_warmup's, step by step."
    import torch
    from transformers import get_linear_schedule_with_warmup
    from phi1_nb.exercises_model import _linear_lr
    for peak, warm, total in ((1e-4, 50, 600), (3e-4, 1, 97), (1e-3, 0, 40), (5e-5, 30, 30)):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
        sch = get_linear_schedule_with_warmup(opt, warm, total)
        for step in range(total + 3):
            assert abs(_linear_lr(step, peak, warm, total) - sch.get_last_lr()[0]) <= 1e-12 + 1e-9 * peak, (peak, warm, total, step)
            opt.step(); sch.step()


@pytest.mark.parametrize("nb", ["08_model.ipynb", "09a_finetune.ipynb", "13_ablation.ipynb"])
def test_section_and_solutions_load_no_torch(nb):
    "These sections run in seconds after their import cell: importing torch (+ transformers) alone took 15-35 s under load."
    import subprocess
    cells = exercise_section(ROOT/"nbs"/nb) + code_cells(ROOT/"nbs"/"solutions"/f"{Path(nb).stem}_solutions.ipynb")
    prog = "import matplotlib, sys\nmatplotlib.use('Agg')\n" + "\n".join(cells) + "\nassert 'torch' not in sys.modules, 'torch'\n"
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
