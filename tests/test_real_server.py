"""Issue 16: the OpenAI-compatible clients of synth, the LLM judge and eval against a real server: `transformers serve`
on 127.0.0.1 with a tiny random Phi checkpoint that has a chat template (the `real_server` fixture in conftest.py).
The model is random, so what it writes is noise: these tests check the wire (requests, usage, cache, parsing of real
answers, drop reasons), not the quality of its text."""
import json
from pathlib import Path

import pytest

from phi1_nb.core import read_shard, write_manifest, write_shard
from phi1_nb.eval import generate_api
from phi1_nb.filter import OpenAIJudge
from phi1_nb.synth import run_synth

pytestmark = pytest.mark.timeout(420)   # a server start (at most 180 s) and a few tiny generations

REASONS = {"too_short", "no_code", "too_little_prose", "code_syntax_error", "syntax_error", "no_function", "no_docstring",
           "no_solution", "no_tests", "trivial_tests", "tests_do_not_call", "tests_do_not_compare", "tests_failed",
           "tests_timeout", "near_duplicate", "truncated", "not_fluent", "off_topic", "repetitive", "tests_exit_early",
           "unclosed_fence", "undefined_name", "wrong_language", "tests_change_function", "definition_failed",
           "result_not_plain", "hard_coded", "too_few_checks"}   # the gate's reasons; `mutant_survived:<mutant>` too


def _known(reasons) -> bool: return all(r in REASONS or r.startswith("mutant_survived:") for r in reasons)


def _dedup_stage(run_dir:Path):
    d = run_dir/"dedup"; d.mkdir(parents=True)
    recs = [{"id": f"c{j}", "content": f"def scale_{j}(xs):\n    return [x * {j} for x in xs]\n"} for j in range(3)]
    write_manifest(d, stage="dedup", shards=[write_shard(d/"part-0.jsonl", recs)], params={})


def test_synth_against_transformers_serve(real_server, tmp_path):
    _dedup_stage(tmp_path)
    kw = dict(backend="openai", base_url=real_server.base_url, model=real_server.model, n_textbooks=3, n_exercises=3,
              per_shard=8, max_tokens_textbook=24, max_tokens_exercise=24, mine=False, progress=False, timeout=120,
              concurrency=2, max_retries=1, seed_from="dedup", sandbox_timeout=2)
    m = run_synth(tmp_path, **kw)
    paid = m["usage_paid"]
    assert paid["answers"] == 6 and paid["completion_tokens"] > 0 and paid["prompt_tokens"] > 6 * 30   # real token counts
    for kind in ("textbooks", "exercises"):
        k = m["kinds"][kind]
        assert k["counts"]["out"] + sum(k["drops"].values()) == 3 and _known(k["drops"]), k
        assert k["diversity"]["prompt_repeat_rate"] == 0.0
        dropped = [r for p in sorted((tmp_path/"synth"/kind/"dropped").glob("*")) for r in read_shard(p)]
        assert all(r["extract_id"] in {"c0", "c1", "c2"} and isinstance(r["answer"], str) for r in dropped)   # seeded, answered
    m2 = run_synth(tmp_path, **kw)
    assert m2["usage_paid"] == paid and m2["usage_this_run"].get("requests", 0) == 0              # all from the cache


def test_llm_judge_against_transformers_serve(real_server, tmp_path):
    j = OpenAIJudge(real_server.base_url, real_server.model, concurrency=2, cache_dir=tmp_path, parse_retries=1,
                    timeout=120, max_retries=1)
    out = j.judge(["def add(a, b):\n    return a + b\n", "x = 1\n"])
    assert len(out) == 2
    for r in out:   # a random model answers, but not in the judge's format: unlabeled, with the raw answer kept
        assert isinstance(r["raw"], str) and (r["label"] in (0, 1) or r["reason"].startswith("unparsable answer")), r
    assert j.client.usage["requests"] == 4                                                             # one re-ask each


def test_eval_generate_api_against_transformers_serve(real_server, tmp_path):
    probs = {"T/0": {"prompt": 'def add(a, b):\n    """Add."""\n'}, "T/1": {"prompt": 'def neg(x):\n    """Negate."""\n'}}
    got = generate_api(real_server.base_url, real_server.model, probs, n=1, temperature=0.0, max_new_tokens=12,
                       cache_dir=tmp_path, concurrency=2)
    assert [g["task_id"] for g in got] == ["T/0", "T/1"] and all(isinstance(g["completion"], str) for g in got)
    again = generate_api(real_server.base_url, real_server.model, probs, n=1, temperature=0.0, max_new_tokens=12,
                         cache_dir=tmp_path, concurrency=2)
    assert again == got
