"""Findings of a blind planted set (issue 26): what the canonical form keeps apart and what it brings together.
Every example here is written for this file; the attacker's cases are not copied."""
import pytest

from phi1_nb.canonical import canonical_code
from phi1_nb.dedup import find_duplicates

TINY = dict(shingles="ast", threshold=0.8, num_perm=128)   # configs/tiny.yaml's dedup


def merged(texts, **kw) -> bool:
    "True when dedup keeps fewer records than it is given."
    return int(find_duplicates(texts, **{**TINY, **kw})["keep"].sum()) < len(texts)


def table(prefix, names):
    return "".join(f"{prefix}_{n} = {i}\n" for i, n in enumerate(names.split()))


PARSER = table("PK", "ROOT LEAF BRANCH STEM BUD BARK KNOT RING SAP GRAIN")
PLANETS = table("PL", "MERCURY VENUS EARTH MARS JUPITER SATURN URANUS NEPTUNE PLUTO CERES")
HELPER = "\n\ndef describe(code):\n    for key, value in globals().items():\n        if value == code and key[2] == '_':\n" \
         "            return key\n    raise KeyError(code)\n"


def test_module_constant_tables_keep_their_keys():
    "Before: the names of `A = 0 ... J = 9` were placeholders, so every ten-line table of 0..9 was one (seen failing)."
    assert canonical_code(PARSER) != canonical_code(PLANETS)
    assert not merged([PARSER, PLANETS])
    assert not merged([PARSER + HELPER, PLANETS + HELPER])
    renamed = PARSER + HELPER.replace("describe", "name_of").replace("code", "c").replace("key", "k")
    assert merged([PARSER + HELPER, renamed])          # a renamed helper next to the same table is still a copy


QUERY = '''def {f}(db, {k}):
    """Fetch one row."""
    cursor = db.cursor()
    cursor.execute("{sql}", ({k},))
    found = cursor.fetchone()
    cursor.close()
    if found is None:
        raise LookupError("no such row")
    return dict(zip(("id", "value", "created"), found))
'''
Q1 = QUERY.format(f="load_order", k="order_no", sql="SELECT id, total, placed_at FROM orders WHERE order_no = %s")
Q2 = QUERY.format(f="load_invoice", k="invoice_no", sql="SELECT id, amount, due_on FROM invoices WHERE invoice_no = %s")


def test_template_siblings_with_different_strings_stay_apart():
    "Before: a string literal was one token, so a wholly new query changed 1 token of ~60 (seen failing)."
    assert not merged([Q1, Q2])
    renamed = Q1.replace("cursor = db.cursor()", "cur = db.cursor()").replace("cursor.", "cur.").replace("found", "row")
    assert merged([Q1, renamed])                                               # the same query, renamed: a copy


STUB = '''class {c}(Protocol):
    """{doc}"""
    def __call__(self, {args}) -> None: ...
'''


def test_stubs_differ_by_their_signatures():
    "Before: a stub's parameters were placeholders and its docstring dropped: every one-method Protocol was one (seen failing)."
    a = STUB.format(c="OnProgress", doc="Told how far a download got.", args="done: int, total: int")
    b = STUB.format(c="OnError", doc="Told why a job failed.", args="exc: BaseException, retry: bool")
    assert canonical_code(a) != canonical_code(b)
    assert not merged([a, b])
    assert merged([a, a.replace(": int", "").replace(" -> None", "")])          # hints dropped: still the same stub


CLASS = '''class Retry:
    attempts = 3
    backoff = 0.5

    def delay(self, n):
        return self.backoff * 2 ** n

    def should_retry(self, n, error):
        if n >= self.attempts:
            return False
        return isinstance(error, (TimeoutError, ConnectionError))
'''


def test_independent_class_lines_swapped_is_one_form():
    "Before: only a function's lines were sorted, not a class's (seen failing)."
    swapped = CLASS.replace("    attempts = 3\n    backoff = 0.5\n", "    backoff = 0.5\n    attempts = 3\n")
    assert canonical_code(swapped) == canonical_code(CLASS)


def test_unused_import_added_with_hints_does_not_count():
    "Before: `from typing import ...` added with the hints stayed in the canonical form (seen failing)."
    hinted = "from typing import Optional, Tuple\n\n" + CLASS.replace("def delay(self, n):", "def delay(self, n: int) -> float:")
    assert canonical_code(hinted) == canonical_code(CLASS)
    used = "from math import pi\n\n" + CLASS.replace("2 ** n", "pi ** n")
    assert "pi" in canonical_code(used) or "import" in canonical_code(used)   # an import that is read stays
    only = "from .retry import Retry\nfrom .jobs import Job\n"
    assert "import" in canonical_code(only)                                    # a file of only imports keeps them


def test_renamed_methods_and_class_attributes_are_a_copy():
    "Before: a copy renaming a class's methods and its config attributes kept their names in `self.x` (seen failing)."
    renamed = CLASS.replace("attempts", "max_tries").replace("backoff", "base_wait").replace("should_retry", "again") \
                   .replace("delay", "wait_for").replace("Retry", "RetryPolicy").replace("error", "err")
    assert canonical_code(renamed) == canonical_code(CLASS)
    enum_a = "class Mode(Enum):\n    READ = auto()\n    WRITE = auto()\n    APPEND = auto()\n"
    enum_b = "class Suit(Enum):\n    HEARTS = auto()\n    SPADES = auto()\n    CLUBS = auto()\n"
    assert canonical_code(enum_a) != canonical_code(enum_b)                    # a data class keeps its keys


FN = '''def median(values):
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
'''


@pytest.mark.parametrize("dead", [
    "    VERBOSE = False\n    if VERBOSE:\n        print('median of', values)\n",
    "    assert 1\n",
    "    def _unused(x):\n        return x * 2\n",
])
def test_dead_code_of_more_shapes_is_dropped(dead):
    "Before: a falsy flag only tested by `if`, `assert <true>`, a nested helper never called stayed (seen failing)."
    assert canonical_code(FN.replace("    ordered = sorted(values)\n", "    ordered = sorted(values)\n" + dead)) \
        == canonical_code(FN)


def test_temporary_inlined_past_an_independent_line():
    "Before: a temporary was inlined only into the very next line, so swapping two lines changed the form (seen failing)."
    a = "def head(data, key):\n    raw = data.get(key)\n    size = len(data)\n    return raw[:size] + [size]\n"
    b = "def head(data, key):\n    size = len(data)\n    raw = data.get(key)\n    return raw[:size] + [size]\n"
    assert canonical_code(a) == canonical_code(b)


def test_flag_tables_and_dataclass_fields_keep_their_names():
    "Before: `A = 1 << 0` was no table (not a bare literal), and `x: float` in a class was dropped as a hint (seen failing)."
    f1 = "".join(f"MODE_{n} = 1 << {i}\n" for i, n in enumerate("READ WRITE EXEC SYNC".split())) + "MODE_RW = MODE_READ | MODE_WRITE\n"
    f2 = "".join(f"PERM_{n} = 1 << {i}\n" for i, n in enumerate("OWNER GROUP OTHER STICKY".split())) + "PERM_OG = PERM_OWNER | PERM_GROUP\n"
    assert not merged([f1, f2])
    fields = lambda name, fs: f"@dataclass\nclass {name}:\n" + "".join(f"    {f}: float\n" for f in fs.split())
    assert canonical_code(fields("Box", "left top right bottom")) != canonical_code(fields("Rgba", "red green blue alpha"))
