"""Found by the code-in-hand attacker a26f: a huge int constant in dead code crashed the stage."""
from phi1_nb.dedup import find_duplicates


def test_a_huge_int_in_dead_code_does_not_stop_the_stage():
    big = "0x" + "f" * 4000      # > 4300 decimal digits: repr() refuses it
    a = f"def f(x):\n    unused = {big}\n    return x + 1\n"
    b = f"def g(y):\n    if False:\n        z = {big}\n    return y * 2\n"
    r = find_duplicates([a, b, a.replace("x + 1", "x + 1 ")], shingles="ast", threshold=0.8)   # no exception
    assert 2 in r["reason"] or 0 in r["reason"]
