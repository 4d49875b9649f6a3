"scripts/wrap_lines.py: long lines get shorter, the code's AST never changes, docments comments and magics stay."
import ast, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/"scripts"))
import wrap_lines as w  # noqa: E402

SRC = '''#| export
def f(a:int, # the first argument's docments comment, which must stay on its line however long the line gets to be, yes indeed
      b=2):
    "A docstring."
    res = dict(precision=float(a), recall=float(b), f1=float(a * b), accuracy=float(a + b), balanced_accuracy=float(a - b))
    if a > 1: raise ValueError(f"a={a} is too large for this function, which takes only small numbers, as the docs say {b}")
    xs = [dict(id=i, content=str(i) * 3, other=i ** 2, more=[j for j in range(i)]) for i in range(a) if i % 2 and i > 3]
    return res, xs  # a trailing comment that makes the line long: it should move onto its own line above the code it is on
'''


def test_rewrite_shortens_and_keeps_the_ast():
    new, why = w.rewrite(SRC)
    assert why is None and w.same_code(SRC, new)
    assert ast.dump(ast.parse(SRC)) == ast.dump(ast.parse(new))
    long = [l for l in new.splitlines() if len(l) > w.LIMIT]
    assert long == [SRC.splitlines()[1]], long                      # only the docments line is left, untouched
    assert new.startswith("#| export\n")


def test_a_change_of_meaning_is_refused(monkeypatch):
    monkeypatch.setattr(w, "_wrap_comments", lambda s: s.replace("a * b", "a + b"))
    new, why = w.rewrite(SRC)
    assert new == SRC and "AST" in why


def test_magics_and_parameters_are_left(tmp_path):
    long = "x = [" + ", ".join(str(i) for i in range(60)) + "]\n"
    cells = [dict(cell_type="code", source="%time " + long, metadata={}, outputs=[], execution_count=None),
             dict(cell_type="code", source=long, metadata=dict(tags=["parameters"]), outputs=[], execution_count=None),
             dict(cell_type="code", source=long, metadata={}, outputs=[], execution_count=None)]
    p = tmp_path/"x.ipynb"; p.write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=5)))
    rep = w.process(p)
    got = json.loads(p.read_text())["cells"]
    assert "".join(got[0]["source"]) == "%time " + long and "".join(got[1]["source"]) == long
    assert max(map(len, "".join(got[2]["source"]).splitlines())) <= w.LIMIT
    assert [r[1] for r in rep["skipped"]] == ["magic", "parameters cell"] and len(rep["changed"]) == 1


def test_a_comment_inside_a_backslash_continuation_never_crashes_it():
    src = ('for t in toks:\n'
           '    if t.type == tokenize.NAME and t.string in mp and getattr(prv.get(k), "string", "") != "." \\\n'
           '       and not (getattr(nxt.get(k), "string", "") == "=" and depth > 0 and not in_def):'
           '    # a keyword argument keeps its name\n'
           '        t = t._replace(string=mp[t.string])\n')
    assert max(map(len, src.splitlines())) > w.LIMIT
    new, why = w.rewrite(src)
    assert w.same_code(src, new)                                    # rewritten or kept as it was, never broken
