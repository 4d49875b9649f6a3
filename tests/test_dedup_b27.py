"""Findings of the blind attack b27 (issue 26): each test failed before its change (seen failing on the tree before)."""
from phi1_nb.canonical import canonical_code
from phi1_nb.dedup import find_duplicates

BOUND = '''def {name}({xs}, {x}):
    """Binary search: the insertion point of {x} in the sorted {xs}."""
    lo, hi = 0, len({xs})
    while lo < hi:
        mid = (lo + hi) // 2
        if {xs}[mid] {op} {x}:
            lo = mid + 1
        else:
            hi = mid
    return lo
'''


def merged(a, b):
    return bool(find_duplicates([a, b], shingles="ast", threshold=0.8)["duplicate_of"])


def test_one_operator_apart_even_renamed():
    # `<` vs `<=` in copies of one template with other variable names: the sibling rule held only when the bound names
    # were the same, so lower_bound(items) ~ upper_bound(values) ~ lower_bound(values) chained every variant into one
    lo = BOUND.format(name="lower_bound", xs="items", x="item", op="<")
    up = BOUND.format(name="upper_bound", xs="values", x="v", op="<=")
    assert not merged(lo, up) and not merged(lo, BOUND.format(name="upper_bound", xs="items", x="item", op="<="))
    assert merged(lo, BOUND.format(name="lower_bound", xs="values", x="v", op="<"))      # a rename alone: a copy


def test_builtin_named_parameter_is_bound():
    a = "def pick(type, dir, xs):\n    out = [x for x in xs if isinstance(x, type)]\n    return sorted(out, reverse=dir)\n"
    b = a.replace("type", "kind").replace("dir", "desc")
    assert canonical_code(a) == canonical_code(b)
    assert "isinstance" in canonical_code(a) and canonical_code("t = type(1)") == "v_ = type(1)"   # a builtin stays


def test_instance_attribute_rename():
    a = ("class Pool:\n    def grow(self, n):\n        self._forks += n\n        if self._forks > self.limit:\n"
         "            self.flush(self._forks)\n        return self._forks\n")
    b = a.replace("_forks", "_children")
    assert canonical_code(a) == canonical_code(b)
    assert canonical_code(a) != canonical_code(a.replace("self.flush", "self.close"))   # a method called: its API


def test_function_moved_into_a_class():
    f = "def scale(xs, k):\n    out = []\n    for x in xs:\n        out.append(x * k + 1)\n    return out\n"
    body = "".join("    " + line + "\n" for line in f.splitlines())
    assert canonical_code("class Helper:\n    @staticmethod\n" + body) == canonical_code(f)
    assert canonical_code("class Utils:\n" + body.replace("(xs, k)", "(self, xs, k)")) == canonical_code(f)
