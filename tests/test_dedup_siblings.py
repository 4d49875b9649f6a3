"Short forms one operator, builtin, helper or argument order apart are siblings, not copies (a26f `operation`, a26e templates)."
import pytest
from phi1_nb.dedup import find_duplicates

STATS = '''def clipped_steps(xs, lo, hi):
    steps = []
    prev = xs[0]
    for k in range(1, len(xs)):
        d = xs[k] - prev
        if d >= hi:
            d -= hi
        steps.append(min(max(d, lo), hi) / k)
        prev = xs[k]
    return steps
'''
BACKUP = '''import os, shutil

def backup(paths, src, dst):
    done = []
    for p in paths:
        a, b = os.path.join(src, p), os.path.join(dst, p)
        if os.path.exists(a):
            shutil.copy2(a, b)
            done.append(b)
    return done
'''
PACK = '''from zlib import compress

def pack(records, level=6):
    blobs = []
    for r in records:
        data = r.to_bytes()
        blobs.append(compress(data, level))
    return b"".join(blobs)
'''

def _merged(a:str, b:str) -> bool:
    return bool(find_duplicates([a, b], threshold=0.8, shingles="ast")["duplicate_of"])


@pytest.mark.parametrize("old,new", [("min(max(", "max(max("), (") / k", ") * k"), ("d -= hi", "d += hi"),
                                     ("in range(1, len(xs))", "in reversed(range(1, len(xs)))")])
def test_one_operation_apart_is_a_sibling(old, new):
    assert _merged(STATS, STATS)
    assert not _merged(STATS, STATS.replace(old, new))


@pytest.mark.parametrize("old,new", [("shutil.copy2(a, b)", "shutil.copy2(b, a)"), ("compress", "decompress")])
def test_swapped_arguments_or_another_helper_is_a_sibling(old, new):
    src = BACKUP if old in BACKUP else PACK
    assert not _merged(src, src.replace(old, new))


@pytest.mark.parametrize("edit", [
    lambda s: s.replace("steps", "out").replace("prev", "last"),                # renamed locals
    lambda s: s.replace("range(1,", "range(2,"),                                # a constant changed
    lambda s: s.replace("    steps = []\n    prev = xs[0]\n", "    prev = xs[0]\n    steps = []\n"),  # reordered
])
def test_copies_stay_copies(edit):
    assert _merged(STATS, edit(STATS))


def test_reordered_alike_lines_are_not_siblings():
    a = '''def ask(self, result):
    if result:
        path, file = os.path.split(result)
        self.options["initialdir"] = path
        self.options["initialfile"] = file
    self.filename = result
    return result
'''
    b = a.replace('        self.options["initialdir"] = path\n        self.options["initialfile"] = file\n',
                  '        self.options["initialfile"] = file\n        self.options["initialdir"] = path\n')
    assert _merged(a, b)


def test_a_tag_character_inside_a_string_stays():
    from phi1_nb.minhash import code_tokens
    a = 'def f(x):\n    log("code \u01c21\u01c2 x", x)\n    return x\n'
    assert "'\u01c21\u01c2'" in code_tokens(a)                     # the tag is stripped from names only (a26f)
    assert code_tokens(a) != code_tokens(a.replace("1", "2"))


SCREEN = '''def Screen():
    """Return the singleton screen object."""
    if Turtle._screen is None:
        Turtle._screen = _Screen()
    return Turtle._screen
'''
READ = '''def read_docstrings(lang):
    modname = "turtle_docstringdict_%(language)s" % {'language': lang.lower()}
    module = __import__(modname)
    docsdict = module.docsdict
    for key in docsdict:
        try:
            eval(key).__doc__ = docsdict[key]
        except Exception:
            print("Bad docstring-entry: %s" % key)
'''

@pytest.mark.parametrize("a,b", [   # copies of blind set a26e that the sibling check took for siblings at first
    (SCREEN, SCREEN.replace("def Screen():", "def result() -> Any:")),     # the def's name changed case style
    (READ, READ.replace('            print("Bad', '            if False:  # old\n                raise E()\n'
                                              '            print("Bad')),        # a dead `if False:` beside a print
])
def test_copies_that_change_a_def_name_or_add_dead_code_stay_copies(a, b):
    assert _merged(a, b)
