"A form over 160 canonical tokens one operator apart is a sibling, not a copy (a26f stdlib_flip/stdlib_swap); its copies hold."
import pytest
from phi1_nb.dedup import find_duplicates
from phi1_nb.minhash import code_tokens

LONG = '''def window_stats(values, width, lo, hi):
    """Mean, spread and clipped count of each window of `width` values."""
    out = []
    for start in range(0, len(values) - width + 1):
        win = values[start:start + width]
        total = 0.0
        clipped = 0
        for v in win:
            if v < lo:
                v = lo
                clipped += 1
            elif v > hi:
                v = hi
                clipped += 1
            total += v
        mean = total / width
        spread = max(win) - min(win)
        var = 0.0
        for v in win:
            var += (v - mean) ** 2
        var = var / max(width - 1, 1)
        if clipped > width // 2:
            status = "mostly clipped"
        elif spread > hi - lo:
            status = "wide"
        else:
            status = "ok"
        out.append((start, mean, var, spread, clipped, status))
    return out
'''

def _merged(a:str, b:str) -> bool:
    return bool(find_duplicates([a, b], threshold=0.8, shingles="ast")["duplicate_of"])

def test_the_form_is_long():
    assert 160 < len(code_tokens(LONG)) <= 400

@pytest.mark.parametrize("a,b", [("v < lo", "v <= lo"), ("total / width", "total * width"),
                                 ("clipped += 1\n            total", "clipped -= 1\n            total")])
def test_long_siblings_one_operator_apart_stay_apart(a, b):
    assert LONG.count(a) == 1 and not _merged(LONG, LONG.replace(a, b))

@pytest.mark.parametrize("a,b", [("total", "acc"), ('"wide"', '"too wide"'), ("0.0", "0.5")])
def test_long_copies_still_merge(a, b):   # a rename, a changed string, a changed number
    assert a in LONG and _merged(LONG, LONG.replace(a, b))
