"The canonical form never makes different code identical by a normalisation, and never crashes (issue 26, attack a26d)."
import ast, keyword, textwrap
import pytest
from hypothesis import given, settings, strategies as st
from phi1_nb.canonical import canonical_code
from phi1_nb.minhash import code_tokens

c = lambda s: canonical_code(textwrap.dedent(s))

def differ(a, b):
    "Both parse, and their canonical forms differ."
    ast.parse(textwrap.dedent(a)); ast.parse(textwrap.dedent(b))
    assert c(a) != c(b), c(a)

# 1. text that looks like a string slot
@pytest.mark.parametrize("src", ['x = "S_3_str"\n', "y = obj.S_0_str\n", "f(S_0_str=1)\n", "from m import S_0_str\n",
                                 'q = "S_1_str and more"\nr = "two words"\n', "S_0_str = 'a b'\n"])
def test_slot_lookalike_text(src):
    out = canonical_code(src)
    assert "\0" not in out and code_tokens(src)

_ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))

@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40), _ident.filter(lambda s: s != "k"), _ident)
def test_any_text_never_crashes(text, name, attr):
    src = (f"def {name}(a):\n    s = {text!r}\n    t = a.{attr}({name}={text!r}, k={'S_0_str ' + text!r})\n"
           f"    return s, t, {text!r}\n")
    out = canonical_code(src)
    assert "\0" not in out and code_tokens(src) is not None

def test_internal_failure_is_a_value_error(monkeypatch):
    import phi1_nb.canonical as m
    monkeypatch.setattr(m, "_sort_imports", lambda t: [][1])
    with pytest.raises(ValueError, match="canonical form failed: IndexError"): canonical_code("import os\n")
    assert code_tokens("import os\n") is None               # the record falls back to words; the stage goes on

# 2. calls, awaits, stores keep their order
@pytest.mark.parametrize("a,b", [
    ("def f(xs, y):\n    xs.append(y)\n    xs.pop(0)\n    return xs\n",
     "def f(xs, y):\n    xs.pop(0)\n    xs.append(y)\n    return xs\n"),
    ("def save(fh, rows):\n    fh.write('# head')\n    fh.write(rows)\n",
     "def save(fh, rows):\n    fh.write(rows)\n    fh.write('# head')\n"),
    ("import random\nrandom.seed(1)\nx = random.random()\n", "import random\nx = random.random()\nrandom.seed(1)\n"),
    ("print('start')\nprint('end')\n", "print('end')\nprint('start')\n"),
    ("async def g(db):\n    await db.begin()\n    await db.commit()\n",
     "async def g(db):\n    await db.commit()\n    await db.begin()\n"),
    ("def f(d, k, j):\n    d[k] = 1\n    d[j] = 2\n    return d\n",
     "def f(d, k, j):\n    d[j] = 2\n    d[k] = 1\n    return d\n"),
    ("def f(a, b):\n    a.x = 1\n    y = b.x\n    return y\n",
     "def f(a, b):\n    y = b.x\n    a.x = 1\n    return y\n"),
])
def test_effects_keep_order(a, b): differ(a, b)

@pytest.mark.parametrize("a,b", [
    ("def f(lst, v):\n    n = len(lst)\n    lst.append(v)\n    return n\n",          # read before the mutation
     "def f(lst, v):\n    lst.append(v)\n    return len(lst)\n"),
    ("def f(clock, work):\n    t = clock()\n    work()\n    return clock() - t\n",
     "def f(clock, work):\n    work()\n    t = clock()\n    return clock() - t\n"),
    ("def f(it):\n    v = next(it)\n    return lambda: v\n", "def f(it):\n    return lambda: next(it)\n"),
    ("def f(rng, n):\n    v = rng.random()\n    return [v for _ in range(n)]\n",
     "def f(rng, n):\n    return [rng.random() for _ in range(n)]\n"),
    ("def f(a, b):\n    x = a()\n    return g(b(), x)\n", "def f(a, b):\n    return g(b(), a())\n"),
    ("def f(a, c):\n    x = a.pop()\n    if c:\n        use(x)\n", "def f(a, c):\n    if c:\n        use(a.pop())\n"),
])
def test_inline_keeps_when(a, b): differ(a, b)

def test_pure_reorder_still_folds():
    assert c("def f(p):\n    a = p.x\n    b = g(2)\n    return a, b\n") == \
           c("def f(p):\n    b = g(2)\n    a = p.x\n    return a, b\n")
    assert c("class P:\n    def __init__(s, x, y):\n        s.x = x\n        s.y = y\n") == \
           c("class P:\n    def __init__(s, x, y):\n        s.y = y\n        s.x = x\n")
    assert c("def f(xs):\n    ys = load(xs)\n    return [y * 2 for y in ys]\n") == \
           c("def f(xs):\n    return [y * 2 for y in load(xs)]\n")     # a comprehension's first iterable runs at once
    assert c("def f(x):\n    ok = check(x)\n    if ok:\n        run(x)\n") == \
           c("def f(x):\n    if check(x):\n        run(x)\n")

# 3. effects fix_body must not drop
def test_print_to_file_is_output():
    differ("def f(r, out):\n    print(r, file=out)\n    return r\n", "def f(r, out):\n    return r\n")
    assert c("import sys\ndef f(r):\n    print(r, file=sys.stderr)\n    return r\n") == c("def f(r):\n    return r\n")

def test_dead_assignment_keeps_its_call():
    differ("def f(db, k):\n    ok = db.delete(k)\n    return k\n",
           "def f(db, k):\n    ok = db.insert(k)\n    return k\n")
    assert c("def f(k):\n    unused = k + 1\n    return k\n") == c("def f(k):\n    return k\n")

def test_dead_yield_keeps_a_generator():
    differ("def f(x):\n    return x\n    yield\n", "def f(x):\n    return x\n")
    differ("def f(x):\n    if False:\n        yield x\n    return x\n", "def f(x):\n    return x\n")

# 4. tables and enums keep their names
def test_two_constants_keep_names():
    differ("TIMEOUT = 30\nRETRIES = 5\n", "TIMEOUT = 5\nRETRIES = 30\n")

def test_enum_with_methods_keeps_members():
    e = "from enum import Enum\nclass {}(Enum):\n    {} = 1\n    {} = 2\n    def a(self): return 1\n" \
        "    def b(self): return 2\n"
    differ(e.format("Color", "RED", "GREEN"), e.format("Status", "OK", "FAIL"))
    differ(e.format("Color", "RED", "GREEN").replace("(Enum)", "(enum.IntFlag)"),
           e.format("Status", "OK", "FAIL").replace("(Enum)", "(enum.IntFlag)"))


def test_a_subset_test_is_not_turned_into_its_strict_converse():
    "`not (a <= b)` is not `b < a` for sets (or NaN): an `if a <= b: X else: Y` keeps its branches."
    subset = "def ok(user, allowed):\n    if user.perms <= allowed:\n        return grant(user)\n    else:\n        return deny(user)\n"
    strict = "def ok(user, allowed):\n    if allowed < user.perms:\n        return deny(user)\n    else:\n        return grant(user)\n"
    assert canonical_code(subset) != canonical_code(strict)


def test_a_short_function_with_its_parameters_swapped_is_not_its_copy():
    "Forms must agree on their data flow too (`minhash.words_agree`): a rename keeps it, a swap of parameters not."
    from phi1_nb.dedup import find_duplicates
    a = "def check(x, t):\n    return isinstance(x, t)\n"
    swapped, renamed = "def check(t, x):\n    return isinstance(x, t)\n", "def check(obj, kind):\n    return isinstance(obj, kind)\n"
    assert find_duplicates([a, swapped], shingles="ast", threshold=0.8)["duplicate_of"] == {}
    assert len(find_duplicates([a, renamed], shingles="ast", threshold=0.8)["duplicate_of"]) == 1   # one kept
