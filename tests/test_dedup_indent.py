"Code moved one level deeper (into a class, under an `if`) is still a near-duplicate of itself (blind set a26e: 0/36 before)."
import inspect, json, shutil, textwrap

import pytest
from phi1_nb.minhash import code_tokens, relative_indents
from phi1_nb.dedup import find_duplicates


def _indent(src:str, head:str) -> str: return head + "\n" + textwrap.indent(src, "    ")


@pytest.mark.parametrize("fn", [json.dumps, shutil.copytree, inspect.getdoc])
@pytest.mark.parametrize("head", ["class Box:", "if True:", "class Box(object):\n    'a box'"])
def test_nesting_a_function_keeps_its_tokens(fn, head):
    src = inspect.getsource(fn)
    a, b = code_tokens(src), code_tokens(_indent(src, head))
    assert a is not None and b is not None
    i = b.index("def")
    assert b[i:] == a   # the same tokens after the new header, to the last one


def test_relative_indents_say_the_change_not_the_depth():
    toks = ["if", "x", ":", "\n    ", "if", "y", ":", "\n        ", "a", "\n", "\n", "b"]
    assert relative_indents(toks) == ["if", "x", ":", "\n>", "if", "y", ":", "\n>", "a", "\n", "\n<<", "b"]
    # the same block one level deeper: the same tokens
    deeper = [t + "    " if t.startswith("\n") and t != "\n" else t for t in toks]
    deeper[deeper.index("\n")] = "\n    "; deeper[deeper.index("\n")] = "\n    "
    assert relative_indents(["class", "K", ":", "\n    "] + deeper)[4:] == relative_indents(toks)


def test_a_function_moved_into_a_class_is_found_by_the_stage_detector():
    src = inspect.getsource(shutil.copytree)
    others = [inspect.getsource(f) for f in (json.loads, inspect.getfile, shutil.rmtree)]
    texts = [src, *others, _indent(src, "class Tree:")]
    dups = find_duplicates(texts, threshold=0.8, shingles="ast")
    assert dups["clusters"]["near_duplicate"] == [[4, 0]] or dups["clusters"]["near_duplicate"] == [[0, 4]], dups
    assert set(dups["reason"]) in ({0}, {4}), dups   # one of the two kept; the other stdlib functions untouched
