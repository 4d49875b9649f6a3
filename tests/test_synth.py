"""The synth stage: prompts from a seed, the name space, parsing, mining, the openai backend against the fake server
(faults, budget, SIGKILL and resume), and the transformers backend on a tiny random checkpoint."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from phi1_nb.core import Drop, read_dataset, read_json, read_shard, write_manifest, write_shard
from phi1_nb.llm import LLMCache, LLMClient, LLMUnreachable
from phi1_nb.testing import FakeOpenAIServer, fake_teacher
from phi1_nb.synth import (NameSpace, exercise_messages, exercise_spec, humaneval_entry_points, run_synth,
                           textbook_messages, textbook_spec, topic_leaves)
from phi1_nb.synth_quality import mine_exercises, parse_exercise, run_checks, split_blocks

from synth_proc import kill_when, request_key, run, start, synth_args
KW = dict(backend="openai", model="fake", per_shard=8, mine=False, progress=False, timeout=5, concurrency=4)


# ---------------------------------------------------------------- prompts and names
def test_prompts_are_a_function_of_seed_and_index():
    a = [textbook_spec(11, i) for i in range(50)] + [exercise_spec(11, i) for i in range(50)]
    assert a == [textbook_spec(11, i) for i in range(50)] + [exercise_spec(11, i) for i in range(50)]
    assert textbook_spec(11, 0) != textbook_spec(12, 0) and exercise_spec(11, 0) != exercise_spec(11, 1)
    # and the same in another process with another hash seed
    code = ("import json; from phi1_nb.synth import textbook_spec, exercise_spec; "
            "print(json.dumps([textbook_spec(11, 3), exercise_spec(11, 4)]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "987"}).stdout
    assert json.loads(out) == [textbook_spec(11, 3), exercise_spec(11, 4)]
    s = textbook_spec(11, 3, k_words=5)
    assert len(s["seed_words"]) == 5 and s["topic"] in topic_leaves()
    assert all(w in textbook_messages(s)[1]["content"] for w in s["seed_words"])
    assert exercise_spec(11, 4)["function_name"] in exercise_messages(exercise_spec(11, 4))[1]["content"]


def test_name_space_never_draws_a_humaneval_entry_point():
    import random
    he, ns = humaneval_entry_points(), NameSpace()
    reachable = {h for h in he if h in ns}
    assert {"sort_numbers", "sum_squares"} <= reachable          # the space does contain some
    rng = random.Random(0)
    drawn = [ns.draw(rng) for _ in range(50000)]
    assert not set(drawn) & he
    only = NameSpace(exclude=frozenset()); only.verbs, only.adjs, only.nouns, only.quals = ["sort"], [], ["numbers"], []
    assert only.draw(rng) == "sort_numbers"                       # without the exclusion it would be drawn
    only.exclude = he
    with pytest.raises(ValueError, match="excluded"): only.draw(rng)   # with it, never (a clear error, not a hang)
    assert all(exercise_spec(3, i)["function_name"] not in he for i in range(3000))


# ---------------------------------------------------------------- parsing and mining
def test_split_and_parse_edge_cases():
    t = "Intro\n```python\nx = 1\n```\n```text\nnot code\n```\ntail"
    assert [s["kind"] for s in split_blocks(t)] == ["prose", "code", "other", "prose"]   # issue 25: a fence is never prose
    cut = 'def f(a):\n    """Twice a."""\n    return 2 * a\nassert f(2) == 4\nassert f(3) == 6\ndef g(\n'  # cut off by max_tokens
    ex = parse_exercise(cut, "f")
    assert ex["tests"] == "assert f(2) == 4\nassert f(3) == 6" and run_checks([ex]) == [None]
    assert parse_exercise("no code at all, just words", "f") == "no_code"   # issue 16: prose only
    assert parse_exercise('async def f():\n    """Doc."""\n    return 1\nassert True\n', "f") == "trivial_tests"   # issue 16


SRC = '''from __future__ import annotations
import math
from collections import Counter

def circle_area(r: float) -> float:
    """Area of a circle of radius r."""
    return math.pi * r * r

def most_common_word(text):
    """The most frequent word of text."""
    return Counter(text.split()).most_common(1)[0][0]

def truncate_number(x):
    """A HumanEval name."""
    return x % 1.0

@staticmethod
def decorated():
    """Skipped: decorated."""
    return 1

def undocumented():
    return 2

class A:
    def method(self):
        """Skipped: not top level."""
        return 3
'''
BROKEN = 'import no_such_module_xyz\n\ndef needs_it(x):\n    """Uses a module that is not there."""\n    return no_such_module_xyz.f(x)\n'


def test_mined_exercise_extraction():
    recs = [{"id": "r1", "path": "geo.py", "repo": "stdlib", "source": "stdlib", "content": SRC, "educational_value": 0.9},
            {"id": "r2", "content": "def broken(:\n"}]
    out = list(mine_exercises(recs, exclude=humaneval_entry_points()))
    ex = [o for o in out if not isinstance(o, Drop)]
    assert sorted(o.reason for o in out if isinstance(o, Drop)) == ["humaneval_name", "mined_unparsable"]
    assert [e["function_name"] for e in ex] == ["circle_area", "most_common_word"]
    e = ex[0]
    assert e["prompt"] == ('from __future__ import annotations\nimport math\n\n\n'   # only the imports it uses
                           'def circle_area(r: float) -> float:\n    """Area of a circle of radius r."""\n')
    assert ex[1]["prompt"].startswith("from __future__ import annotations\nfrom collections import Counter\n\n\ndef most_common_word")
    assert e["solution"] == "    return math.pi * r * r\n" and e["content"] == e["prompt"] + e["solution"]
    assert (e["source"], e["tests"], e["origin_id"], e["educational_value"]) == ("mined", "", "r1", 0.9)
    assert run_checks(ex) == [None, None]                                   # prompt + solution defines and runs


def _fake_filter(run_dir, contents):
    d = Path(run_dir) / "filter"
    info = write_shard(d / "part-00000.jsonl", [{"id": f"f{i}", "content": c, "path": f"m{i}.py", "source": "stdlib",
                                                "educational_value": 0.9}
                                               for i, c in enumerate(contents)])
    write_manifest(d, stage="filter", shards=[info])


def test_mined_exercises_in_the_stage(tmp_path):
    _fake_filter(tmp_path, [SRC, BROKEN])
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "mine": True}, kinds="exercises", n_exercises=8, n_mined=10)
    mined = m["kinds"]["exercises"]["by_source"]["mined"]
    assert mined["kept"] == 2 and mined["drops"]["definition_failed"] == 1 and mined["drops"]["humaneval_name"] == 1
    recs = list(read_dataset(tmp_path / "synth" / "exercises"))
    assert {r["function_name"] for r in recs if r["source"] == "mined"} == {"circle_area", "most_common_word"}
    assert {r["source"] for r in recs} == {"mined", "synthetic"}
    dropped = [r for p in (tmp_path / "synth" / "exercises" / "dropped").glob("*") for r in read_shard(p)]
    assert any(r["drop_reason"] == "definition_failed" and r["function_name"] == "needs_it" for r in dropped)


# ---------------------------------------------------------------- openai backend against the fake server
def test_openai_backend_with_faults(tmp_path):
    faults = ["429", "500", "hang", "truncated", "empty", "disconnect"]
    with FakeOpenAIServer(handler=fake_teacher, faults=faults, retry_after=0.1) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "timeout": 1}, n_textbooks=8, n_exercises=24)
        assert srv.n_requests == 32 + len(faults)
    u = m["usage_this_run"]
    assert (u["errors_429"], u["errors_5xx"], u["errors_timeout"], u["errors_bad_response"], u["errors_connection"]) == (1, 1, 1, 2, 1)
    ex = m["kinds"]["exercises"]["by_source"]["synthetic"]
    assert ex["requested"] == 24 and ex["kept"] + sum(ex["drops"].values()) == 24 and ex["drops"].get("tests_failed", 0) > 0
    assert m["kinds"]["textbooks"]["counts"]["out"] == 8 and m["usage_paid"]["answers"] == 32
    tb = list(read_dataset(tmp_path / "synth" / "textbooks"))
    assert all(r["source"] == "synthetic_textbook" and r["topic"] in topic_leaves() and len(r["seed_words"]) == 3 for r in tb)
    d = m["kinds"]["exercises"]["diversity"]
    assert d["records"] == ex["kept"] and d["unique_function_names"] == 1.0 and d["distinct_1"] > 0
    sm = read_json(tmp_path / "synth" / "exercises" / "manifest.json")
    assert sm["diversity"] == d and sm["counts"]["out"] == ex["kept"]


def test_answer_must_use_the_requested_name(tmp_path):
    same = lambda body: ('```python\ndef f(xs: list) -> int:\n    """Count the items."""\n'
                         '    return len(xs)\n\nassert f([1, 2]) == 2\n```')
    with FakeOpenAIServer(handler=same) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url}, kinds="exercises", n_exercises=16)
    assert m["drops"] == {"no_function": 16} and m["counts"]["out"] == 0


def test_identical_answers_are_near_duplicates_rejected_before_execution(tmp_path, monkeypatch):
    import re
    import phi1_nb.synth_run as synth   # the run loop (06j) calls the gate
    executed, real = [], synth.mutation_verdicts
    monkeypatch.setattr(synth, "mutation_verdicts", lambda exs, *a: executed.extend(exs) or real(exs, *a))
    def one_body(body):   # the requested name, and always the same body: a textbook case of homogeneous data
        name = re.search(r"function `(\w+)`", body["messages"][-1]["content"]).group(1)
        return (f'```python\ndef {name}(xs: list) -> int:\n    """Count the items in the list and return how many there are '
                f'in total, ignoring nothing at all."""\n    return len(xs)\n\nassert {name}([1, 2]) == 2\nassert {name}([]) == 0\n```')
    with FakeOpenAIServer(handler=one_body) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url}, kinds="exercises", n_exercises=16)
    assert m["counts"]["out"] == 1 and m["drops"] == {"near_duplicate": 15}
    assert m["kinds"]["exercises"]["diversity"]["near_duplicate_rate"] > 0.9
    assert len(executed) == 8   # the first batch of 8 ran (nothing kept yet); the second was rejected unexecuted


def test_budget_stops_cleanly_and_resumes(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "exercises", "n_exercises": 48}
        m = run_synth(tmp_path, **kw, budget_tokens=2000)
        assert m["stopped"].startswith("budget") and m["usage_paid"]["total_tokens"] <= 2000
        kept1 = {r["id"] for r in read_dataset(tmp_path / "synth" / "exercises")}
        assert 0 < len(kept1) < 48 and len(kept1) == m["counts"]["out"]
        n1 = srv.n_requests
        m2 = run_synth(tmp_path, **kw, budget_tokens=None)
        assert m2["stopped"] is None and srv.n_requests == 48           # the rerun paid only for what was missing
        assert n1 + m2["usage_this_run"]["requests"] == 48
        kept2 = [r["id"] for r in read_dataset(tmp_path / "synth" / "exercises")]
        assert kept1 <= set(kept2) and len(kept2) == len(set(kept2))


def test_dry_run_prints_the_bill_and_spends_nothing(tmp_path, capsys):
    r = run_synth(tmp_path, **{**KW, "base_url": "http://127.0.0.1:9/v1"}, n_textbooks=10, n_exercises=100, dry_run=True)
    rows = {x["kind"]: x for x in r["dry_run"]}
    assert rows["exercises"]["requests"] == 100 and rows["exercises"]["completion_tokens_max"] == 100 * 96
    assert rows["exercises"]["cost_usd_max"] == pytest.approx(
        (rows["exercises"]["prompt_tokens_est"] * 0.5 + 100 * 96 * 1.5) / 1e6, abs=1e-4)
    assert "kind=exercises" in capsys.readouterr().out and not (tmp_path / "synth" / "exercises").exists()


def test_unreachable_endpoint_names_the_url(tmp_path):
    import socket
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    with pytest.raises(LLMUnreachable, match=f"127.0.0.1:{port}"):
        run_synth(tmp_path, **{**KW, "base_url": f"http://127.0.0.1:{port}/v1"}, max_retries=0, n_textbooks=4, n_exercises=0)


RUN = synth_args(kinds="exercises", n_exercises=80, per_shard=8, concurrency=4)


def test_sigkill_and_resume_loses_nothing_duplicates_nothing_pays_nothing_twice(tmp_path):
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(handler=fake_teacher, latency=0.05) as srv:
        parts = run_dir / "synth" / "exercises" / "parts"
        kill_when(start(RUN, run_dir, srv.base_url), lambda: len(list(parts.glob("*.json"))) >= 3, poll=0.02)
        n_done = len(list(parts.glob("*.json")))
        assert 3 <= n_done < 10, "the kill must land mid-run"
        paid1 = set(LLMCache(run_dir / "synth" / "cache").keys())
        n1 = srv.n_requests
        run(RUN, run_dir, srv.base_url, check=True)
        second = srv.bodies[n1:]
        ref = tmp_path / "ref"                                         # a straight run into another folder, for comparison
        run(RUN, ref, srv.base_url, check=True)
    key = request_key
    assert not {key(b) for b in second} & paid1, "a request answered and cached before the kill was paid again"
    assert n1 + len(second) - 80 <= 4                                  # at most the requests in flight at the kill
    kept = [r["id"] for r in read_dataset(run_dir / "synth" / "exercises")]
    dropped = [r["id"] for f in (run_dir / "synth" / "exercises" / "dropped").glob("*") for r in read_shard(f)]
    assert len(kept) == len(set(kept)) and not set(kept) & set(dropped)
    assert sorted(kept + dropped) == sorted(exercise_spec(1234, i)["id"] for i in range(80))   # none lost, none twice
    assert kept == [r["id"] for r in read_dataset(ref / "synth" / "exercises")]            # same as a run never killed
    m = read_json(run_dir / "synth" / "manifest.json")
    assert m["usage_paid"]["answers"] == 80 and m["counts"]["out"] == len(kept)


# ---------------------------------------------------------------- transformers backend
def tiny_checkpoint(d):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE()); tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["def f(x):\n    return x + 1\n", "assert f(1) == 2\n"] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    ft = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>")
    cfg = PhiConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    max_position_embeddings=256, bos_token_id=ft.eos_token_id, eos_token_id=ft.eos_token_id, pad_token_id=ft.eos_token_id)
    PhiForCausalLM(cfg).save_pretrained(d); ft.save_pretrained(d)
    return d


def test_transformers_backend_runs_and_reports_honestly(tmp_path):
    ck = tiny_checkpoint(tmp_path / "pretrain" / "final")        # where the tiny preset looks by default
    kw = dict(backend="transformers", n_textbooks=3, n_exercises=4, per_shard=4, batch_size=4, max_tokens_textbook=24,
              max_tokens_exercise=24, mine=False, progress=False)
    m = run_synth(tmp_path / "", **kw)
    for kind in ("textbooks", "exercises"):
        s = m["kinds"][kind]["by_source"]["synthetic"]
        assert s["requested"] == (3 if kind == "textbooks" else 4) and s["acceptance_rate"] is not None
    assert m["backend"] == "transformers" and m["model"] == str(ck) and m["usage_paid"]["answers"] == 7
    assert m["usage_this_run"]["requests"] == 7 and m["usage_paid"]["completion_tokens"] > 0
    m2 = run_synth(tmp_path, **kw)                                # resumed: nothing generated again
    assert m2["usage_this_run"].get("requests", 0) == 0 and m2["counts"] == m["counts"]
    mb = run_synth(tmp_path / "b", **{**kw, "model": str(ck)}, budget_tokens=100)   # less than one batch's worst case
    assert mb["stopped"].startswith("budget") and mb["counts"]["out"] == 0 and mb["usage_paid"].get("total_tokens", 0) == 0
    with pytest.raises(FileNotFoundError, match="pretrain"):
        run_synth(tmp_path / "nothing", **kw)


def test_a_kind_manifest_keeps_the_run_parameters(tmp_path):
    "synth/<kind>/manifest.json holds the run's parameters (a shadowing loop variable once put a receipt's path there)."
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url}, kinds="textbooks", n_textbooks=2)
    kind = read_json(tmp_path / "synth" / "textbooks" / "manifest.json")
    assert kind["params"] == m["params"] and kind["params"]["n_textbooks"] == 2
