"""Issue 16: the strict acceptance gate (right drop reasons on a served set of good and bad answers) and a prompt
space that scales to the paper's 1M textbooks and 879.5K exercises without repeating a prompt."""
import json, math, random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from phi1_nb.core import read_dataset, write_manifest, write_shard
from phi1_nb.llm import Completion
from phi1_nb.prompts import (CorpusExtracts, NameSpace, Permutation, audiences, exercise_messages, exercise_spec,
                             humaneval_entry_points, prompt_repeat_rate, styles, textbook_messages, textbook_spec,
                             topic_leaves)
from phi1_nb.synth import exercise_record, run_synth, textbook_record
from phi1_nb.synth_quality import parse_exercise, textbook_verdict
from real_server import AnswerServer, served_answers

FIXTURE = Path(__file__).parent/"fixtures"/"served_answers.json"
KW = dict(backend="openai", model="stub", per_shard=8, mine=False, progress=False, timeout=20, concurrency=4, max_retries=1)


# ---------------------------------------------------------------- the gate, finding by finding
EX = '''```python
def count_even(xs: list) -> int:
    """How many items of xs are even."""
    return sum(1 for x in xs if x % 2 == 0)

{tests}
```'''

@pytest.mark.parametrize("tests,why", [
    ("data = [1, 2]\nassert len(data) == 2\nassert sorted(data) == [1, 2]", "tests_do_not_call"),   # never calls it
    ("assert True\nassert True", "trivial_tests"),                                                   # all assert True
    ("assert isinstance(count_even([1]), int)", "too_few_checks"),                                  # no result compared
    ("assert count_even() == 0", "tests_failed"),                                                   # no arguments
    ("assert count_even([1, 2, 4]) == 2", "too_few_checks"),                                        # one value pinned
    ("assert isinstance(count_even([1]), int)\nassert count_even([2]) >= 0", "mutant_survived:constant"),
    ("assert count_even([1, 2, 4]) == 2\nassert count_even([]) == 0", None)])
def test_exercise_tests_must_call_the_function_and_compare(tests, why):
    from phi1_nb.synth_gate import mutation_verdicts
    ex = parse_exercise(EX.format(tests=tests), "count_even")
    assert (ex if isinstance(ex, str) else mutation_verdicts([ex])[0]) == why


LESSON = ("Counting with a dictionary: each new word becomes a key, and its value grows by one every time the word "
          "comes back, like a tally sheet at the front desk of a library.\n\n```python\ncounts = {}\n"
          "for w in ['tea', 'cup', 'tea']:\n    counts[w] = counts.get(w, 0) + 1\nprint(counts)\n```\n\n"
          "The method `get` returns a default for a missing key, so the first sighting needs no special case.")

def test_textbook_needs_prose_parsable_blocks_and_code():
    sp = {**textbook_spec(1, 0), "topic": "Data structures > Dictionaries > counting with a dictionary", "seed_words": ["tally"]}
    rec = textbook_record(sp, Completion(LESSON), "openai", "m")
    assert isinstance(rec, dict) and rec["code_blocks"] == 1 and rec["prose_share"] > 0.5
    code_only = "```python\n" + "def area(w, h):\n    return w * h\nprint(area(2, 3))\n" * 6 + "```"
    assert textbook_record(sp, Completion(code_only), "openai", "m") == "too_little_prose"
    broken = LESSON + "\n\nAnd the same with a Counter:\n\n```python\nfrom collections import Counter\nprint(Counter(['tea'])\n```"
    assert textbook_record(sp, Completion(broken), "openai", "m") == "code_syntax_error"
    prose = LESSON.split("```")[0] * 2 + LESSON.split("```")[-1]
    assert textbook_record(sp, Completion(prose), "openai", "m") == "no_code"            # was code_syntax_error
    assert textbook_verdict(LESSON + "\n```pycon\n>>> len('abc')\n3\n```")[0] is None   # a REPL transcript is code that parses


def test_served_good_and_bad_answers_are_kept_or_dropped_for_the_right_reason(tmp_path):
    ex, tb, answer = served_answers(77, FIXTURE)
    with AnswerServer(answer) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url}, n_textbooks=len(tb), n_exercises=len(ex), seed=77,
                      sandbox_timeout=2)
    got = Counter({**m["kinds"]["exercises"]["drops"], "kept": m["counts"]["exercises"]})
    want = Counter(v["expect"] for _, v in ex.values())
    assert got == want, (got, want)
    got = Counter({**m["kinds"]["textbooks"]["drops"], "kept": m["counts"]["textbooks"]})
    assert got == Counter(v["expect"] for _, v in tb.values())
    kept = {r["function_name"] for r in read_dataset(tmp_path/"synth"/"exercises")}
    assert kept == {n for n, (k, _) in ex.items() if k.startswith("good")}
    assert m["kinds"]["exercises"]["diversity"]["prompt_repeat_rate"] == 0.0


# ---------------------------------------------------------------- the prompt space
def test_the_default_space_is_wide_enough_for_a_million_textbooks():
    combos = len(topic_leaves()) * len(audiences()) * len(styles())
    assert math.ceil(1_000_000 / combos) <= 6                       # was 17,856 combinations, ~56 uses each
    assert NameSpace().joint_size - len(NameSpace().excluded_positions()) > 10 * 879_500


def test_textbook_combinations_repeat_evenly_and_prompts_never(tmp_path):
    tree = tmp_path/"tree.json"; tree.write_text(json.dumps({"Loops": {"for": ["range"]}}))
    C = len(audiences()) * len(styles())                            # one topic: C combinations
    specs = [textbook_spec(5, i, topics=str(tree)) for i in range(3 * C + 7)]
    per = Counter((s["topic"], s["audience"], s["style"]) for s in specs)
    assert len(per) == C and set(per.values()) <= {3, 4}           # each combination ceil(n / C) times at most
    assert prompt_repeat_rate(textbook_messages(s) for s in specs) == 0.0   # fresh words on each repeat


def test_exercise_names_are_uniform_distinct_and_about_their_topic():
    ns = NameSpace()
    got = [exercise_spec(9, i, ns) for i in range(100_000)]
    names = [s["function_name"] for s in got]
    assert len(set(names)) == len(names) and not set(names) & humaneval_entry_points()   # old draws: ~39% repeats at 879.5K
    assert all(any(w in s["function_name"].split("_") for w in ns.topic_nouns(s["topic"])) for s in got[:5000])
    assert len({s["topic"] for s in got}) == len(topic_leaves())    # every topic gets exercises


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3_000_000), st.integers(0, 3_000_000), st.integers(0, 10))
def test_no_two_records_share_a_prompt(i, j, seed):
    if i == j: return
    assert textbook_messages(textbook_spec(seed, i)) != textbook_messages(textbook_spec(seed, j))
    assert exercise_messages(exercise_spec(seed, i)) != exercise_messages(exercise_spec(seed, j))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5000), st.text(max_size=8))
def test_permutation_is_a_bijection(n, key):
    p = Permutation(n, key)
    assert sorted(map(p, range(n))) == list(range(n))


def test_a_topic_tree_from_a_file_and_a_bad_one(tmp_path):
    tree = tmp_path/"t.json"; tree.write_text(json.dumps({"Graphs": {"Paths": ["shortest paths", "cycles"]}}))
    assert {textbook_spec(1, i, topics=str(tree))["topic"] for i in range(50)} == set(topic_leaves(str(tree)))
    (bad := tmp_path/"bad.json").write_text("{}")
    with pytest.raises(ValueError, match="a topic tree is"): topic_leaves(str(bad))


def test_prompts_seeded_from_the_corpus(tmp_path):
    d = tmp_path/"run"/"dedup"; d.mkdir(parents=True)
    recs = [{"id": f"c{j}", "content": f"def helper_{j}(x):\n    return x * {j}\n"} for j in range(7)]
    write_manifest(d, stage="dedup", shards=[write_shard(d/"part-0.jsonl", recs)], params={})
    ce = CorpusExtracts(d)
    specs = [exercise_spec(2, i, extracts=ce) for i in range(14)]
    assert Counter(s["extract_id"] for s in specs) == Counter({f"c{j}": 2 for j in range(7)})   # used evenly
    assert all(s["extract"] in exercise_messages(s)[1]["content"] for s in specs)
    with pytest.raises(FileNotFoundError, match="seed_from"): run_synth(tmp_path/"run", **KW, seed_from="filter", dry_run=True)


# ---------------------------------------------------------------- issue 25: the gate judged by execution
def test_acceptance_set():
    "Every bad answer of the gate's own acceptance set is dropped, every good one kept, for the reason it was written for."
    from phi1_nb.prompts import data_path
    from phi1_nb.synth_gate import acceptance_verdicts
    items = json.loads(data_path("synth_acceptance.json").read_text())
    got = acceptance_verdicts(items, timeout=10)
    wrong = [(x["name"], x["expect"], g) for x, g in zip(items, got) if (g == "kept") != (x["expect"] == "kept")]
    assert not wrong, wrong
    assert sum(x["expect"] == "dropped" for x in items) >= 30 and sum(x["expect"] == "kept" for x in items) >= 10
    kinds = Counter(g.split(":")[0] for g in got)
    assert kinds["mutant_survived"] >= 8 and kinds["hard_coded"] == 4 and kinds["result_not_plain"] == 3 and kinds["too_few_checks"] >= 4   # each check does work


@pytest.mark.parametrize("mutant", ["none", "constant", "first_arg", "other_input", "perturb"])
def test_each_mutant_is_killed_by_good_tests_and_lives_under_a_weak_one(mutant):
    "Each mutant kind, alone, is what drops some weak test: the gate does not rely on one of them."
    from phi1_nb.sandbox import run_program
    from phi1_nb.synth_gate import gate_program
    good = parse_exercise('def f(xs):\n    """Largest item."""\n    return max(xs)\n\nassert f([1, 5]) == 5\nassert f([7]) == 7\n', "f")
    assert not run_program(gate_program(good, mutant)).passed
    weak = {"none": "assert f([1, 5]) != 4", "constant": "assert f([1, 5]) > 0\nassert f([7]) > 0",
            "first_arg": "assert f([1, 5]) != 4\nassert f([7]) is not None", "other_input": "assert f([1, 5]) > 0\nassert f([7]) > 0",
            "perturb": "assert f([1, 5]) >= 5\nassert f([7]) >= 7"}[mutant]
    ex = parse_exercise(f'def f(xs):\n    """Largest item."""\n    return max(xs)\n\n{weak}\n', "f")
    assert run_program(gate_program(ex, mutant)).passed


def test_the_whole_answer_runs_and_a_name_error_is_its_own_reason():
    "Helpers, setup lines and loops of asserts are part of the checked program (were dropped as tests_failed)."
    from phi1_nb.synth_gate import mutation_verdicts
    helper = 'def _sq(x):\n    return x * x\n\ndef f(x):\n    """Square."""\n    return _sq(x)\n\ndata = [2, 3]\nfor x in data:\n    assert f(x) == x * x\n'
    undefined = 'def f(x):\n    """Square."""\n    return x * x\n\nassert f(2) == square_of(2)\nassert f(3) == 9\n'
    exs = [parse_exercise(helper, "f"), parse_exercise(undefined, "f")]
    assert "def _sq" in exs[0]["prompt"] and "data = [2, 3]" in exs[0]["tests"]
    assert mutation_verdicts(exs) == [None, "undefined_name"]


def test_finish_reason_length_drops_a_textbook_and_an_exercise():
    from phi1_nb.synth_gate import acceptance_verdicts
    ok = json.loads(__import__("phi1_nb.prompts", fromlist=["x"]).data_path("synth_acceptance.json").read_text())
    good = [x for x in ok if x["expect"] == "kept"]
    lesson = next(x for x in good if x["kind"] == "textbook"); task = next(x for x in good if x["kind"] == "exercise")
    cut = [{**lesson, "finish_reason": "length"}, {**task, "finish_reason": "length"}]
    assert acceptance_verdicts([lesson, task] + cut) == ["kept", "kept", "truncated", "truncated"]


def test_a_base_model_lesson_file_is_judged_as_prose_too():
    "A /v1/completions lesson file: its comments and docstrings pass the language, fluency and topic checks (they were unread)."
    spec = dict(id="t-0", kind="textbook", index=0, seed=0, topic="Data structures > Lists > slicing lists", audience="a reader",
                style="a lesson", seed_words=["harbor"], difficulty="easy")
    good = ('# Slicing a list takes a part of it. The slice xs[1:3] holds the items at positions one and two, and the\n'
            '# original list is left as it was. At the harbor we slice the list of boats to see the ones that came first.\n'
            'boats = ["ark", "skiff", "dory", "junk"]\nassert boats[1:3] == ["skiff", "dory"]\n'
            '# A slice with a step takes every second item of the list, which is handy when the list alternates.\n'
            'assert boats[::2] == ["ark", "dory"]\n')
    lorem = ("# Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore.\n"
             "# Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.\n"
             'boats = ["ark", "skiff"]\nassert boats[1:] == ["skiff"]\n')
    comp = lambda t: Completion(t, {}, False, {"choices": [{"finish_reason": "stop"}]})
    assert isinstance(textbook_record(spec, comp(good), "openai", "m", min_chars=50, base=True), dict)
    assert textbook_record(spec, comp(lorem), "openai", "m", min_chars=50, base=True) == "wrong_language"
    comments = "".join(l for l in good.splitlines(keepends=True) if l.startswith("#")) + '"""And a docstring."""\n'
    assert textbook_record(spec, comp(comments), "openai", "m", min_chars=50, base=True) == "no_code"   # (JavaScript as comments)
