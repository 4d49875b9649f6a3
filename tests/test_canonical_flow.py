"The dedup compares data flow too: a consistent rename still matches, a moved name does not (issue 26, attack a26d)."
import ast, builtins, keyword, textwrap
import pytest
from hypothesis import given, settings, strategies as st
from phi1_nb.dedup import find_duplicates
from phi1_nb.minhash import code_flow, texts_shingles

d = lambda s: textwrap.dedent(s).strip("\n") + "\n"
merged = lambda a, b, t=0.8: bool(find_duplicates([a, b], shingles="ast", threshold=t)["duplicate_of"])

TRANSPOSE = d("""
    def transpose(m):
        n = len(m)
        out = [[0] * n for _ in range(n)]
        for i in range(n):
            for j in range(n):
                out[j][i] = m[i][j]
        return out
    """)
POWER = d("""
    def power(base, exp):
        result = 1
        for _ in range(exp):
            result *= base
        return result
    """)
SAVE = d("""
    def save(path, data):
        with open(path, "wb") as fh:
            blob = compress(data)
            fh.write(blob)
            fh.flush()
        return len(blob)
    """)
GETTERS = d("""
    class Config:
        host = None
        port = None
        def get_host(self, default):
            value = self.host
            if value is None:
                return default
            return value
        def get_port(self, default):
            value = self.port
            if value is None:
                return default
            return value
    """)
COLORS = "BLACK = rgb(0, 0, 0)\nWHITE = rgb(255, 255, 255)\nACCENT = rgb(255, 0, 0)\n"
FETCH = d("""
    TIMEOUT = 30
    RETRIES = 5

    def fetch(url):
        for _ in range(RETRIES):
            r = get(url, timeout=TIMEOUT)
            if r.ok:
                return r
    """)
LIMITS = d("""
    class Limits:
        SOFT = 100
        HARD = 1000
        def over_soft(self, n):
            return n > self.SOFT
        def over_hard(self, n):
            return n > self.HARD
        def describe(self):
            return str(self.SOFT)
    """)
CLAMP = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"
swap_getters = (GETTERS.replace("self.host", "self.@").replace("self.port", "self.host").replace("self.@", "self.port"))

CASES = {   # the eight programs that a26d got merged with another that behaves differently
    "transpose vs copy": (TRANSPOSE, TRANSPOSE.replace("out[j][i]", "out[i][j]")),
    "power(base, exp) vs power(exp, base)": (POWER, POWER.replace("(base, exp)", "(exp, base)")),
    "getters of swapped fields": (GETTERS, swap_getters),
    "a table of calls": (COLORS, COLORS.replace("BLACK", "BACKGROUND").replace("WHITE", "FOREGROUND")
                         .replace("ACCENT", "ERROR")),
    "module constants swapped": (FETCH, FETCH.replace("= 30", "= @").replace("= 5", "= 30").replace("= @", "= 5")),
    "class constants swapped": (LIMITS, LIMITS.replace("= 100", "= @").replace("= 1000", "= 100").replace("= @", "= 1000")),
    "clamp with its bounds swapped": (CLAMP, CLAMP.replace("max(lo, min(x, hi))", "max(hi, min(x, lo))")),
}

@pytest.mark.parametrize("name", CASES)
def test_moved_names_are_not_merged(name):
    a, b = CASES[name]
    assert a != b and not merged(a, b)                     # at the stage's threshold (configs: 0.8)

@pytest.mark.parametrize("name", CASES)
def test_a_consistent_rename_still_merges(name):
    a = CASES[name][0]
    b = a.replace("m[", "grid[").replace("(m)", "(grid)").replace("base", "b").replace("default", "fallback") \
         .replace("url", "link").replace("lo", "low").replace("value", "v")
    assert merged(a, b)

def test_another_called_helper_is_not_merged():   # a sibling: only a called helper differs (`siblings`, 07f)
    assert not merged(SAVE, SAVE.replace("compress", "decompress"))

# properties: alpha-renaming any subset of locals keeps the data-flow tokens; moving a name's use does not
TEMPLATES = [
    "def f(a, b, c):\n    d = a - b\n    e = d * c\n    return e // a + b\n",
    "def f(xs, k):\n    out = []\n    for i in range(k):\n        out.append(xs[i] ** (k - i))\n    return out\n",
    "def f(m, r, c):\n    v = m[r][c]\n    w = m[c][r]\n    return v - w\n",
    "def f(s, sep, n):\n    parts = s.split(sep)\n    head = parts[:n]\n    return sep.join(head) if n else s.replace(sep, s)\n",
    "def f(p, q):\n    t = p / q\n    if t > q:\n        return t - p\n    return divmod(q, p)\n",
]
_LOCAL = lambda src: sorted({n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)
                             and n.id not in dir(builtins)} | {a.arg for a in ast.walk(ast.parse(src)) if isinstance(a, ast.arg)})
_ident = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in dir(builtins) and s != "f")

def _rename(src, mp):
    t = ast.parse(src)
    for n in ast.walk(t):
        if isinstance(n, ast.Name) and n.id in mp: n.id = mp[n.id]
        elif isinstance(n, ast.arg) and n.arg in mp: n.arg = mp[n.arg]
    return ast.unparse(t) + "\n"

@settings(max_examples=25, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_alpha_rename_of_any_subset_matches(src, data):
    names = _LOCAL(src)
    pick = data.draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
    new = data.draw(st.lists(_ident.filter(lambda s: s not in names), min_size=len(pick), max_size=len(pick), unique=True))
    b = _rename(src, dict(zip(pick, new)))
    assert code_flow(b)[1] == code_flow(src)[1] and merged(src, b)

def _swaps(src):
    "Places where two distinct locals meet in a non-commutative spot: a `-`, `/`, `//`, `%`, `**`, a call or a subscript."
    t, out = ast.parse(src), []
    for k, n in enumerate(ast.walk(t)):
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)):
            pair = (n.left, n.right)
        elif isinstance(n, ast.Call) and len(n.args) >= 2: pair = tuple(n.args[:2])
        elif isinstance(n, ast.Subscript) and isinstance(n.value, ast.Subscript): pair = (n.value.slice, n.slice)
        else: continue
        if all(isinstance(x, ast.Name) for x in pair) and pair[0].id != pair[1].id: out.append(k)
    return out

def _swap(src, k):
    t = ast.parse(src); n = list(ast.walk(t))[k]
    x, y = (n.left, n.right) if isinstance(n, ast.BinOp) else tuple(n.args[:2]) if isinstance(n, ast.Call) \
        else (n.value.slice, n.slice)
    x.id, y.id = y.id, x.id
    return ast.unparse(t) + "\n"

@settings(max_examples=25, deadline=None)
@given(st.sampled_from(TEMPLATES), st.data())
def test_swapping_two_locals_uses_does_not_match(src, data):
    k = data.draw(st.sampled_from(_swaps(src)))
    b = _swap(src, k)
    assert code_flow(b)[1] != code_flow(src)[1]                      # the data-flow key always sees it
    (sa, _), _, _ = texts_shingles([src, b], "ast")
    assert len(sa) > 25 or not merged(src, b)      # and in a form this small it is over the tolerance (FLOW_SLACK)
