"The blind attack's findings (issue 30 item 4): tampering in the student's process, and wrong answers, must not pass."
import contextlib, io, sys

import numpy as np
import pytest
import phi1_nb.exercises as E
from phi1_nb.exercises import check


def _quiet(name, answer) -> tuple[bool, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf): ok = check(name, answer)
    return ok, buf.getvalue()


# ---- 1. tampering with the kernel before calling check: the verdict is computed elsewhere
def test_swapped_reference_code_does_not_pass():
    import phi1_nb.eval as ev
    code = ev.pass_at_k.__code__
    ev.pass_at_k.__code__ = (lambda n, c, k: 0.123).__code__
    try: assert not check("eval.pass_at_k", lambda n, c, k: 0.123)
    finally: ev.pass_at_k.__code__ = code


def test_patched_helpers_do_not_pass(monkeypatch):
    import phi1_nb.sandbox as sb
    monkeypatch.setattr(E, "_close", lambda *a, **k: True)
    monkeypatch.setattr(E, "_forest_auc", lambda X, y, it=iter([.5, .95] * 10): next(it))
    monkeypatch.setattr(sb, "run_program", lambda *a, **k: sb.SandboxResult("timeout", None, "", "", 2.0))
    assert not check("dedup.jaccard", lambda a, b: 0.5)
    assert not check("filter.criterion", lambda code: 0.5)
    assert not check("eval.break_it", "pass\n")


def _labels_from_frames(code):
    "Reads the check's labels off its stack frames."
    f = sys._getframe(1)
    while f:
        if "texts" in f.f_locals and "y" in f.f_locals: return float(f.f_locals["y"][f.f_locals["texts"].index(code)])
        f = f.f_back
    return 0.0


def test_frame_walking_and_always_equal_answers_do_not_pass():
    class Liar(float):
        def __eq__(self, o): return True
        def __ne__(self, o): return False
    assert not check("filter.criterion", _labels_from_frames)
    assert not check("model.n_params", lambda L, d, ff, V: Liar(0))
    assert not check("train.grad_accum", Liar(0))


# ---- 2. wrong answers the inputs or tolerances let through
def _pr(gt=False, empty=0.0, guard=True):
    def pr(y, s, c):
        t, p = np.asarray(y) == 1, (np.asarray(s) > c) if gt else (np.asarray(s) >= c)
        tp = (t & p).sum()
        with np.errstate(all="ignore"):
            if not guard: return tp / p.sum(), tp / t.sum()
            return (tp / p.sum() if p.sum() else empty), (tp / t.sum() if t.sum() else 0.0)
    return pr


@pytest.mark.parametrize("answer", [_pr(guard=False), _pr(gt=True), _pr(empty=1.0)], ids=["nan", "gt", "empty_is_1"])
def test_precision_recall_edge_cases(answer):
    assert not check("filter.precision_recall", answer)


def test_wrong_schedules_intervals_and_types():
    no_clamp = lambda s, p, w, t: p * s / w if s < w else p * (t - s) / max(1, t - w)
    over_total = lambda s, p, w, t: p * s / w if s < w else p * max(0.0, (t - s) / t)   # off by < 1e-6 absolute
    assert not check("finetune.lr", no_clamp) and not check("finetune.lr", over_total)

    def ci90(a, b, n_boot=4000, seed=0):
        keys = sorted(set(a) & set(b)); d = np.array([a[k] - b[k] for k in keys])
        m = d[np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))].mean(1)
        return float(np.percentile(m, 5)), float(np.percentile(m, 95))
    assert not check("ablation.paired_ci", ci90)
    for steps in (16.4, 16.9, "16", 16.0): assert not check("train.grad_accum", steps), steps
    assert check("train.grad_accum", 16)


def test_criterion_must_stay_in_unit_interval():
    hinted = lambda code: 3.0 * ("-> int" in code) + 1.0     # lifts the AUC, but is no share in [0, 1]
    ok, msg = _quiet("filter.criterion", hinted)
    assert not ok and "[0, 1]" in msg, msg


def test_mfu_failure_message_gives_no_figure_to_scale():
    ok, msg = _quiet("model.mfu", 123_456)
    assert not ok and "%" not in msg and "123,456" not in msg, msg


# ---- 3. decontaminate.break_it judges the rewrite by running the problem's tests
INVERTED = "def f(ops):\n    s = 0\n    for o in ops:\n        s += o\n        if s > 0:\n            return True\n    return False\n"
CONSTANT = "def f(ops):\n    s = 0\n    for o in ops:\n        s += o\n        if s < 0:\n            return True\n    return True\n"


def test_break_it_rewrite_must_compute_the_same():
    honest = INVERTED.replace("s > 0", "s < 0")
    assert check("decontaminate.break_it", honest)
    for bad in (INVERTED, CONSTANT):
        ok, msg = _quiet("decontaminate.break_it", bad)
        assert not ok and "tests" in msg, msg


# ---- 4. eval.break_it: the memory cgroup's kill is the sandbox's kill (the sandbox's record, not the return code)
def test_memory_hog_is_stopped_by_the_sandbox():
    from phi1_nb.sandbox import run_program
    hog = "x = []\nwhile True:\n    x.append(' ' * 10**6)\n"
    r = run_program(hog, timeout=2.0, memory_mb=256)
    if r.returncode != -9 and r.status != "timeout": pytest.skip(f"no memory cgroup here ({r.status}, rc {r.returncode})")
    assert check("eval.break_it", hog)
    assert not check("eval.break_it", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")


def test_a_same_length_rename_is_not_called_padded():
    "a29 j09: a copy that only renames (nothing added) keeps >= 50% containment yet is edited, not padded."
    import re
    p = E._PROGRAMS[0]; q = re.sub(r"(?<!')\bnums\b(?!')", "NUMS", p)
    assert len(q) == len(p) and E._containment(p, q) >= .5
    assert E._padding_note([p], [q], [False]) == ""
    assert E._padding_note([p], [p + "".join(f"_pad{i} = {i}\n" for i in range(300))], [False]).startswith("1 of")


def _rogue(L, d, ff, V):   # a29 j01/j02/j04: forge the judge's reply, write into the package, leave a daemon behind
    import os, subprocess, phi1_nb
    def link(p):
        try: return os.readlink(p)
        except OSError: return ""
    pp, mine = os.getppid(), {link(f"/proc/self/fd/{f}") for f in os.listdir("/proc/self/fd")}
    for fd in os.listdir(f"/proc/{pp}/fd") if os.path.isdir(f"/proc/{pp}/fd") else []:
        if link(f"/proc/{pp}/fd/{fd}").startswith("pipe:") and fd != "0" and link(f"/proc/{pp}/fd/{fd}") not in mine:
            try: w = os.open(f"/proc/{pp}/fd/{fd}", os.O_WRONLY); os.write(w, b'[true, "forged", null]\n'); os.close(w)
            except OSError: pass
    try: open(os.path.join(os.path.dirname(phi1_nb.__file__), "_rogue_was_here.txt"), "w").write("x")
    except OSError: pass
    subprocess.Popen(["sleep", "3601.5"], start_new_session=True)
    return 0


def test_an_answer_has_no_power_over_its_judge():
    import os, cloudpickle, phi1_nb
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # _rogue goes by value, as a notebook's function
    mark = os.path.join(os.path.dirname(phi1_nb.__file__), "_rogue_was_here.txt")
    try:
        assert check("model.n_params", _rogue) is False
        assert not os.path.exists(mark)
        def cmd(p):
            try: return open(f"/proc/{p}/cmdline", "rb").read()
            except OSError: return b""
        alive = [p for p in os.listdir("/proc") if p.isdigit() and b"3601.5" in cmd(p)]
        assert not alive, alive
    finally:
        if os.path.exists(mark): os.remove(mark)


def test_a_value_cannot_run_code_through_its_class():
    "a29 j05: plain() reads type(x), never x.__class__ (a property that runs in the kernel)."
    ran = []
    class Evil:
        @property
        def __class__(self): ran.append(1); return int
        def __int__(self): return 16
    assert check("train.grad_accum", Evil()) is False and not ran
