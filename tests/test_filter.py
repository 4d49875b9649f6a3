"The filter stage: judge parsing and retries on a loopback server, labels on disk, split without leakage, forest, budget."
import json, os, socket
from pathlib import Path

import numpy as np
import pytest

from phi1_nb.core import read_dataset, read_manifest, read_shard, write_manifest, write_shard
from phi1_nb.embed import EmbeddingCache, content_hash, embed_cache_dir, get_embedder
from phi1_nb.filter import (EduFilter, HeuristicJudge, JudgeParseError, LabelStore, OpenAIJudge, apply_filter,
                            budget_mask, check_sample, fit_forest, heldout_metrics, label_samples,
                            near_duplicate_groups,
                            parse_judgement, run_filter, rubric, select_and_label)
from phi1_nb.llm import LLMUnreachable
from phi1_nb.testing import FakeOpenAIServer

STDLIB = Path(os.__file__).parent
FILES = sorted(STDLIB.glob("*.py"))
SAMPLES = [dict(id=f"stdlib/{p.name}", content=p.read_text(encoding="utf-8", errors="replace")) for p in FILES]
GOOD = '{"educational_value": "high", "reason": "Explains a loop."}'
BAD_ANSWERS = ["Yes, high.", '{"educational_value": "medium", "reason": "x"}', '{"educational_value": "high"}',
               '{"educational_value": "high", "reason": "x", "score": 3}', "", "null", '["high"]',
               'Answer: {"educational_value": "high", "reason": "x"}']


def make_corpus(run_dir, samples, per_shard=60, extra=()):
    recs = [dict(id=s["id"], content=s["content"], path=s["id"], repo="stdlib", source="stdlib",
                 size=len(s["content"]), lines=s["content"].count("\n")) for s in samples] + list(extra)
    d = Path(run_dir) / "corpus"
    shards = [write_shard(d / f"part-{i // per_shard:05d}.jsonl.zst", recs[i:i + per_shard])
              for i in range(0, len(recs), per_shard)]
    write_manifest(d, stage="corpus", shards=shards)
    return d


def answer_by_def(body):
    code = body["messages"][0]["content"]
    return json.dumps({"educational_value": "high" if code.count("def ") >= 5 else "low", "reason": "counts functions"})


# ---------------------------------------------------------------- parsing and the judges

@pytest.mark.parametrize("text,label", [(GOOD, 1), ('{"educational_value": "low", "reason": "Only constants."}', 0),
                                        ("```json\n" + GOOD + "\n```", 1), ("  " + GOOD + "\n", 1)])
def test_parse_good(text, label):
    assert parse_judgement(text)[0] == label


@pytest.mark.parametrize("text", BAD_ANSWERS)
def test_parse_rejects_garbage(text):
    with pytest.raises(JudgeParseError): parse_judgement(text)


@pytest.mark.parametrize("fault", ["429", "500", "hang", "truncated", "empty", "disconnect"])
def test_judge_retries_transport_faults(fault):
    with FakeOpenAIServer(lambda b: GOOD, faults=[fault, fault], retry_after=0) as srv:
        jd = OpenAIJudge(srv.base_url, "fake", max_retries=3, timeout=0.5, backoff=0.01, concurrency=1)
        out = jd.judge([SAMPLES[0]["content"]])
        assert out[0]["label"] == 1 and out[0]["reason"] == "Explains a loop."
        assert srv.outcomes[fault] == 2 and srv.outcomes["ok"] == 1


def test_judge_reasks_on_a_malformed_answer_then_records_unlabeled():
    def handler(body):
        msg = body["messages"][0]["content"]
        if "AAA" in msg: return GOOD if "previous answer" in msg else "It is high."   # right after one reminder
        return "never JSON"                                                            # never right
    with FakeOpenAIServer(handler) as srv:
        out = OpenAIJudge(srv.base_url, "fake", parse_retries=2).judge(["x = 'AAA'", "y = 'BBB'"])
    assert out[0]["label"] == 1 and out[0]["raw"] == GOOD
    assert out[1]["label"] is None and out[1]["raw"] == "never JSON" and "unparsable" in out[1]["reason"]
    assert srv.n_requests == 2 + 2 + 1          # both, both again (reminded), then only the still-bad one


def test_judge_gives_up_on_persistent_server_errors_without_guessing():
    with FakeOpenAIServer(lambda b: GOOD, faults=lambda i, b: "500") as srv:
        out = OpenAIJudge(srv.base_url, "fake", max_retries=1, backoff=0.01).judge(["x = 1"])
    assert out[0]["label"] is None and "request failed" in out[0]["reason"]


def test_unreachable_judge_names_the_url_and_loses_no_label(tmp_path):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()   # nothing listens here
    url = f"http://127.0.0.1:{port}/v1"
    with FakeOpenAIServer(answer_by_def) as srv:
        label_samples(OpenAIJudge(srv.base_url, "fake", cache_dir=tmp_path / "llm"), SAMPLES[:20], LabelStore(tmp_path / "lab"), 10)
    with pytest.raises(LLMUnreachable, match=f"127.0.0.1:{port}"):
        label_samples(OpenAIJudge(url, "fake", max_retries=1, backoff=0.01, cache_dir=tmp_path / "llm"),
                      SAMPLES[:40], LabelStore(tmp_path / "lab"), 10)
    assert len(LabelStore(tmp_path / "lab")) == 20                    # what was labelled is still there
    with FakeOpenAIServer(answer_by_def) as srv:
        labs = label_samples(OpenAIJudge(srv.base_url, "fake", cache_dir=tmp_path / "llm"), SAMPLES[:40], LabelStore(tmp_path / "lab"), 10)
        assert srv.n_requests == 20                                    # only the missing ones are asked
    assert [l["id"] for l in labs] == [s["id"] for s in SAMPLES[:40]] and {l["label"] for l in labs} == {0, 1}


def test_heuristic_rubric_is_deterministic_and_explains_itself():
    algo = 'def fact(n):\n    """n! recursively."""\n    # base case first\n    return 1 if n < 2 else n * fact(n - 1)\n' * 3
    boring = "import numpy\nA = 1\nB = 2\nC = 'x'\nD = [1, 2]\n"
    s1, c1, why1 = rubric(algo)
    s2, c2, why2 = rubric(boring)
    assert s1 > 0.5 > s2 and c1["algorithmic"] == 1 and c2["self_contained"] < 1
    assert any("recursive" in w for w in why1) and any("numpy" in w for w in why2)
    assert HeuristicJudge().judge([algo, boring]) == HeuristicJudge().judge([algo, boring])
    assert [j["label"] for j in HeuristicJudge().judge([algo, boring, "def (:"])] == [1, 0, 0]


def test_bad_input_is_named():
    assert (check_sample(""), check_sample(None), check_sample("   \n"), check_sample("Thanks, that helped a lot!")) == \
        ("empty", "empty", "empty", "not_code")
    assert check_sample(SAMPLES[0]["content"]) is None
    assert check_sample("How do I sort a dict?\n\nsorted(d.items(), key=lambda kv: kv[1])\nx = [1, 2]") is None


# ---------------------------------------------------------------- split, forest, active learning

def _renamed(code: str, tag: str) -> str:
    "The same program with every local name renamed: word shingles differ, AST shingles (dedup's) do not."
    import ast
    tree = ast.parse(code)   # rename only the names the program binds (a real renamed copy: builtins and imports keep their names)
    bound = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)} | \
            {n.arg for n in ast.walk(tree) if isinstance(n, ast.arg)}
    class R(ast.NodeTransformer):
        def visit_Name(self, n):
            if n.id in bound: n.id = f"{n.id}_{tag}"
            return n
        def visit_arg(self, n): n.arg = f"{n.arg}_{tag}"; return n
    return ast.unparse(R().visit(tree))


def test_split_has_no_near_duplicate_across_train_and_val():
    from phi1_nb.dedup import jaccard, text_shingles
    from phi1_nb.filter import group_split
    base = [ast_ok for ast_ok in (s["content"] for s in SAMPLES[:60]) if _parses(ast_ok)][:40]
    base = [_renamed(b, "o") for b in base]                             # one spelling for originals and copies
    import ast
    from phi1_nb.canonical import _tables
    pick = [i for i in range(0, 40, 2) if not _tables(ast.parse(base[i]))]   # a constant table's names are its content
    copies = [_renamed(base[i], f"c{i}") for i in pick]                  # renamed copies
    texts = base + copies
    y = np.arange(len(texts)) % 2
    tr, va, g = group_split(texts, y, val_frac=0.25, seed=3)
    assert len(pick) >= 10 and sorted(tr.tolist() + va.tolist()) == list(range(len(texts)))   # every label used
    assert not set(g[tr]) & set(g[va]) and list(g[40:]) == [g[i] for i in pick]
    # the check that matters, with dedup's own shingles and exact Jaccard: no validation text has a near-copy in train
    sh = [text_shingles(t, "ast", 5)[0] for t in texts]
    assert max(jaccard(sh[v], sh[t]) for v in va for t in tr) < 0.7
    # the old split (word shingles, 64 permutations) missed these copies: renaming defeats word shingles
    wsh = [text_shingles(t, "word", 5)[0] for t in texts]
    assert sum(jaccard(wsh[i], wsh[40 + k]) < 0.7 for k, i in enumerate(pick)) >= len(pick) // 2


def _parses(t):
    import ast
    try: ast.parse(t); return True
    except SyntaxError: return False


def test_metrics_carry_the_majority_baseline():
    m = heldout_metrics([1, 1, 1, 1, 0, 0], [.9, .8, .7, .6, .55, .1], y_train=[1, 1, 0])
    assert m["baseline"]["predicts"] == "high" and m["baseline"]["f1"] == pytest.approx(0.8)
    assert m["baseline"]["balanced_accuracy"] == 0.5 and m["balanced_accuracy"] == 0.75 and m["average_precision"] == 1.0


def test_saved_filter_reloads_by_path(tmp_path):
    texts = [s["content"] for s in SAMPLES[:60]]
    y = [HeuristicJudge().judge([t])[0]["score"] for t in texts]
    for kind in ("classifier", "regressor"):
        f = EduFilter("hashing", {"n_features": 128}, fit_forest(get_embedder("hashing", n_features=128).embed(texts), y, kind, 20))
        f.save(tmp_path / kind)
        g = EduFilter.load(tmp_path / kind)
        assert np.array_equal(g.score(texts), f.score(texts)) and type(g.model) is type(f.model)
        assert json.loads((tmp_path / kind / "filter.json").read_text())["embedder_params"] == {"n_features": 128}


def test_a_saved_filter_with_untrusted_types_is_refused(tmp_path):
    from sklearn.preprocessing import FunctionTransformer
    f = EduFilter("hashing", {"n_features": 64}, FunctionTransformer(func=os.path.basename))   # would call os code on load
    f.save(tmp_path)
    with pytest.raises(ValueError, match="untrusted types.*posixpath.basename"): EduFilter.load(tmp_path)


def test_active_learning_spends_labels_where_the_forest_is_unsure(tmp_path):
    # 1-d "embeddings" x; the judge says high when x plus some noise > .5, so the classes overlap near .5
    rng = np.random.default_rng(0)
    xs, noise = rng.random(400), rng.normal(0, .08, 400)
    pool = [dict(id=str(i), content=f"{x:.6f} {x + n:.6f}") for i, (x, n) in enumerate(zip(xs, noise))]
    class Judge:
        name = "noisy-threshold"
        def judge(self, texts): return [dict(label=int(float(t.split()[1]) > .5), score=0., reason="", raw=None) for t in texts]
    embed = lambda ts: np.array([[float(t.split()[0])] for t in ts], np.float32)
    act = select_and_label(Judge(), pool, LabelStore(tmp_path / "a"), 80, 3, embed, n_estimators=30, seed=0)
    rnd = select_and_label(Judge(), pool, LabelStore(tmp_path / "r"), 80, 0, embed, seed=0)
    assert len(act) == len(rnd) == 80 and len({a["id"] for a in act}) == 80
    assert [a["id"] for a in act[:20]] == [r["id"] for r in rnd[:20]]    # the same random first share
    dist = lambda labs: np.mean([abs(float(l["content"].split()[0]) - .5) for l in labs[20:]])
    assert dist(act) < dist(rnd) / 2                                # later picks crowd the decision boundary


# ---------------------------------------------------------------- the stage

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    bad = [dict(id="bad/empty", content="", path="e.py", repo="x", source="x", size=0, lines=0),
           dict(id="bad/prose", content="Please do the needful.\nRegards,\nA. User", path="p.py", repo="x", source="x", size=40, lines=3)]
    make_corpus(run, SAMPLES, extra=bad)
    kw = dict(n_labels=90, pool_size=170, embedder_params={"n_features": 512}, n_estimators=60)
    m = run_filter(run, progress=False, **kw)
    return run, m, kw


def test_stage_scores_every_record_and_keeps_provenance(small_run):
    run, m, _ = small_run
    kept = list(read_dataset(run / "filter"))
    dropped = [r for p in sorted((run / "filter" / "dropped").glob("*.jsonl.zst")) for r in read_shard(p)]
    assert m["counts"]["in"] == len(SAMPLES) + 2 == len(kept) + len(dropped)
    assert m["drops"]["empty"] == 1 and m["drops"]["not_code"] == 1 and m["drops"]["below_threshold"] > 0
    assert all(r["educational_value"] >= 0.5 and r["repo"] == "stdlib" for r in kept)
    assert all(r["drop_reason"] in ("empty", "not_code", "below_threshold") for r in dropped)
    assert all(r["educational_value"] < 0.5 for r in dropped if r["drop_reason"] == "below_threshold")
    metrics = json.loads((run / "filter" / "model" / "metrics.json").read_text())
    for k in ("precision", "recall", "f1", "roc_auc", "confusion", "balanced_accuracy", "average_precision", "baseline"):
        assert k in metrics
    assert metrics["baseline"]["predicts"] in ("high", "low") and "f1" in metrics["baseline"]
    assert metrics["n_train"] + metrics["n_val"] == metrics["n_labelled"] == 90
    # the saved filter, reloaded by path, reproduces the written scores
    f = EduFilter.load(run / "filter" / "model")
    some = kept[:5]
    assert np.allclose(f.score([r["content"] for r in some]), [r["educational_value"] for r in some], atol=1e-4)
    assert sum(1 for r in kept + dropped if "judge_label" in r) == 90
    # every usable record's embedding is in the run's cache, where dedup can fetch it by content hash
    cache = EmbeddingCache(embed_cache_dir(run), get_embedder("hashing", n_features=512).key)
    assert len(cache) == m["scored"] == len(SAMPLES) and content_hash(kept[0]["content"]) in cache


def test_stage_resumes_and_refilters_on_new_params(small_run):
    run, m, kw = small_run
    m2 = run_filter(run, progress=False, **kw)
    assert m2["resumed_tasks"] == len(m["shards"]) and m2["counts"] == m["counts"]
    # a lost shard receipt (a kill mid-stage) redoes just that task
    (run / "filter" / "parts" / "part-00001.json").unlink()
    m3 = run_filter(run, progress=False, **kw)
    assert m3["resumed_tasks"] == len(m["shards"]) - 1 and m3["counts"] == m["counts"]
    # a new threshold reuses the model (same labels, same forest) but refilters every shard
    m4 = run_filter(run, progress=False, **dict(kw, threshold=0.8))
    assert m4["resumed_tasks"] == 0 and m4["counts"]["out"] < m["counts"]["out"] and m4["metrics"] == m["metrics"]


def test_threshold_by_token_budget(small_run, tmp_path):
    run, m, _ = small_run
    f = EduFilter.load(run / "filter" / "model")
    budget = m["total_tokens"] // 3
    mb = apply_filter(f, run / "corpus", tmp_path / "b", token_budget=budget, progress=False)
    kept = list(read_dataset(tmp_path / "b"))
    dropped = [r for p in (tmp_path / "b" / "dropped").glob("*") for r in read_shard(p) if r["drop_reason"] == "below_threshold"]
    assert sum(len(r["content"].split()) for r in kept) == mb["kept_tokens"] <= budget
    assert mb["kept_tokens"] > budget * 0.8                          # it fills the budget, not just stays under it
    assert min(r["educational_value"] for r in kept) >= max(r["educational_value"] for r in dropped) - 1e-4
    # a budget larger than the corpus keeps every usable record
    mall = apply_filter(f, run / "corpus", tmp_path / "all", token_budget=10**12, progress=False)
    assert mall["counts"]["out"] == len(SAMPLES)
    assert budget_mask(np.array([.3, np.nan, .9]), np.array([1, 1, 1]), 10).tolist() == [True, False, True]


def test_stage_with_the_openai_judge_on_loopback(tmp_path):
    make_corpus(tmp_path, SAMPLES[:120])
    with FakeOpenAIServer(answer_by_def, faults=lambda i, b: "429" if i % 7 == 3 else None, retry_after=0) as srv:
        m = run_filter(tmp_path, judge="openai", base_url=srv.base_url, judge_model="fake-judge", n_labels=60,
                       pool_size=120, embedder_params={"n_features": 256}, n_estimators=40, progress=False)
        assert srv.outcomes["429"] > 0
    labels = list(LabelStore(tmp_path / "filter" / "labels" / "openai-fake-judge").labels.values())
    assert len(labels) == 60 and all(l["label"] in (0, 1) and l["reason"] == "counts functions" for l in labels)
    assert m["metrics"]["n_labelled"] == 60 and m["counts"]["in"] == 120


def test_stage_refuses_missing_corpus_and_bad_judge(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus"): run_filter(tmp_path, progress=False)
    make_corpus(tmp_path, SAMPLES[:30])
    with pytest.raises(ValueError, match="heuristic"): run_filter(tmp_path, judge="gpt", progress=False)
    with pytest.raises(ValueError, match="base_url"): run_filter(tmp_path, judge="openai", progress=False)


def test_a_new_corpus_is_refiltered_and_the_forest_retrained(tmp_path):
    kw = dict(n_labels=40, pool_size=60, embedder_params={"n_features": 128}, n_estimators=20, progress=False)
    make_corpus(tmp_path, SAMPLES[:60])
    m1 = run_filter(tmp_path, **kw)
    make_corpus(tmp_path, SAMPLES[:90])                      # the corpus stage was rerun with more files
    m2 = run_filter(tmp_path, **kw)
    assert m1["counts"]["in"] == 60 and m2["counts"]["in"] == 90 and m2["resumed_tasks"] == 0
    assert len(list(read_dataset(tmp_path / "filter"))) == m2["counts"]["out"]
    state = json.loads((tmp_path / "filter" / "params.json").read_text())
    assert state["corpus"] == state["model_params"]["corpus"] and "corpus" not in m2["params"]
    # the regressor option learns the judge's graded score; a new model setting retrains, the labels are reused
    n_labels = len(LabelStore(tmp_path / "filter" / "labels" / "heuristic"))
    m3 = run_filter(tmp_path, **dict(kw, model="regressor"))
    f = EduFilter.load(tmp_path / "filter" / "model")
    assert type(f.model).__name__ == "RandomForestRegressor" and m3["metrics"]["roc_auc"] is not None
    assert len(LabelStore(tmp_path / "filter" / "labels" / "heuristic")) == n_labels     # no sample judged twice


def test_parquet_filter_output_loads_by_folder_and_a_rerun_verifies_its_input(tmp_path):
    import datasets
    from phi1_nb.core import ChecksumError
    recs = [dict(id=s["id"], content=s["content"], path=s["id"], repo="stdlib", source="stdlib") for s in SAMPLES[:120]]
    d = tmp_path / "corpus"
    write_manifest(d, stage="corpus", shards=[write_shard(d / f"part-{i:05d}.parquet", recs[i*40:(i+1)*40]) for i in range(3)])
    kw = dict(n_labels=60, pool_size=120, embedder_params={"n_features": 256}, n_estimators=30, progress=False)
    m = run_filter(tmp_path, **kw)
    out = tmp_path / "filter"
    kept = list(read_dataset(out))
    dropped = [r for s in m["dropped_shards"] for r in read_shard(out / "dropped" / s["path"])]
    # every labelled record keeps its judge label, whatever row of its shard it is in
    assert sum(r.get("judge_label") is not None for r in kept + dropped) == m["metrics"]["n_labelled"] == 60
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds["id"] == [r["id"] for r in kept] and len(ds) == m["counts"]["out"] > 0
    assert ds["judge_label"] == [r.get("judge_label") for r in kept]
    # a rerun that reuses the model still checks its input: one edited record is refused, naming the shard
    t = [dict(r) for r in read_shard(d / "part-00001.parquet")]; t[0]["content"] += "\nimport os; os.remove('x')\n"
    write_shard(d / "part-00001.parquet", t)
    with pytest.raises(ChecksumError, match="part-00001.parquet"): run_filter(tmp_path, **kw)


def test_cli_reports_a_tampered_input_in_one_line_with_exit_2(tmp_path):
    import subprocess, sys
    make_corpus(tmp_path, SAMPLES[:30])
    with open(tmp_path / "corpus" / "part-00000.jsonl.zst", "r+b") as f: f.seek(40); f.write(b"\0")
    p = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.cli import main; sys.exit(main(sys.argv[1:]))",
                        "filter", "--run-dir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    errors = [l for l in p.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1 and "Traceback" not in p.stderr and "part-00000.jsonl.zst" in errors[0] and "rerun" in errors[0], p.stderr


# ---------------------------------------------------------------- the bake-off's classifiers (04b_classifiers)

def planted(n=300, seed=0):
    "Texts whose label is planted in their words (teaching words vs set-up words), and those labels."
    rng = np.random.default_rng(seed)
    words = [["config", "widget", "const", "gui", "layout"], ["loop", "return", "docstring", "index", "recursion"]]
    y = rng.integers(0, 2, n)
    noise = ["x = 1", "y", "print", "self", "value", "data"]
    return [" ".join(rng.choice(words[v] * 2 + noise * 3, 40)) + f"\n# sample {i}" for i, v in enumerate(y)], y


@pytest.mark.parametrize("name", ["rf", "logreg", "fasttext", "head"])
def test_classifier_learns_a_planted_signal_and_nothing_from_shuffled_labels(name):
    from sklearn.metrics import roc_auc_score
    from phi1_nb.classifiers import make_classifier
    texts, y = planted()
    X = get_embedder("hashing", n_features=256).embed(texts)
    c0 = make_classifier(name, seed=0, n_estimators=100)
    inp = (lambda ix: [texts[i] for i in ix]) if not c0.embeds else (lambda ix: X[ix])
    tr, te = np.arange(150), np.arange(150, 300)
    s = c0.fit(inp(tr), y[tr], y[tr].astype(float)).predict(inp(te))
    assert s.shape == (150,) and 0 <= s.min() <= s.max() <= 1
    assert roc_auc_score(y[te], s) >= 0.9
    ys = np.random.default_rng(1).permutation(y)                  # shuffled labels: no signal left to learn
    s = make_classifier(name, seed=0, n_estimators=100).fit(inp(tr), ys[tr], ys[tr].astype(float)).predict(inp(te))
    assert abs(roc_auc_score(ys[te], s) - 0.5) < 0.15


@pytest.mark.parametrize("name", ["logreg", "fasttext"])
def test_stage_trains_the_named_classifier_and_records_it(small_run, tmp_path, name):
    from phi1_nb.cli import main
    run, m, kw = small_run
    assert m["classifier"] == "rf" and (run / "filter" / "model" / "forest.skops").exists()
    make_corpus(tmp_path, SAMPLES)
    argv = ["filter", "--run-dir", str(tmp_path), "--classifier", name, "--n_labels", "90", "--pool_size", "170",
            "--n_estimators", "60", "--embedder_params", "{n_features: 512}"]
    assert main(argv) == 0
    mm = json.loads((tmp_path / "filter" / "manifest.json").read_text())
    meta = json.loads((tmp_path / "filter" / "model" / "filter.json").read_text())
    assert mm["classifier"] == meta["classifier"] == mm["metrics"]["classifier"] == name
    assert json.loads((tmp_path / "filter" / "params.json").read_text())["params"]["classifier"] == name
    f = EduFilter.load(tmp_path / "filter" / "model")
    kept = list(read_dataset(tmp_path / "filter"))[:5]
    assert type(f.classifier).__name__ != "RandomForest" and f.classifier.name == name
    assert np.allclose(f.score([r["content"] for r in kept]), [r["educational_value"] for r in kept], atol=1e-4)
    # another classifier on the same run retrains (the old model goes) and is recorded
    m2 = run_filter(tmp_path, progress=False, **dict(kw, classifier="rf"))
    assert m2["classifier"] == "rf" and EduFilter.load(tmp_path / "filter" / "model").classifier.name == "rf"


def test_filter_saved_before_the_bakeoff_loads_as_a_forest(small_run, tmp_path):
    import shutil
    run, _, _ = small_run
    shutil.copytree(run / "filter" / "model", tmp_path / "old")
    meta = json.loads((tmp_path / "old" / "filter.json").read_text())
    for k in ("classifier", "classifier_params"): meta.pop(k)
    (tmp_path / "old" / "filter.json").write_text(json.dumps(meta))
    f, g = EduFilter.load(tmp_path / "old"), EduFilter.load(run / "filter" / "model")
    texts = [s["content"] for s in SAMPLES[:5]]
    assert f.classifier.name == "rf" and np.array_equal(f.score(texts), g.score(texts))


def test_unknown_classifier_is_one_clear_error(tmp_path):
    make_corpus(tmp_path, SAMPLES[:40])
    with pytest.raises(ValueError, match="unknown classifier 'svm'; choose one of rf, logreg, fasttext, head"):
        run_filter(tmp_path, progress=False, classifier="svm", n_labels=30, pool_size=40, n_estimators=10)


def test_bakeoff_script_prints_a_row_per_classifier_as_named_with_intervals(small_run, tmp_path, monkeypatch, capsys):
    "`bench_filter.py --bakeoff --run`: the table with intervals, rows named as `--classifier` names them; arms written."
    import runpy, shutil, sys
    run = tmp_path / "run"
    shutil.copytree(small_run[0], run)
    def bench(*a):                                           # the script as from a shell, in this process: (exit code, out, err)
        monkeypatch.setattr(sys, "argv", ["bench_filter.py", "--bakeoff", "--run", *a]); code = 0
        try: runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "bench_filter.py"), run_name="__main__")
        except SystemExit as e: code = e.code
        return (code, *capsys.readouterr())
    code, out, err = bench(str(run), "--classifiers", "rf,fasttext", "--splits", "3", "--sizes", "30")
    assert code == 0, err[-3000:]
    table = out.split("\n\n")[0].splitlines()                  # the held-out table: the first block
    rows = {l.split()[0]: l for l in table[2:]}
    assert set(rows) == {"majority", "random", "rf", "fasttext"}, out
    assert all(rows[n].count("[") >= 4 for n in ("rf", "fasttext"))             # each metric: mean [2.5, 97.5 percentile]
    assert "as ablation arms: phi1 ablation --arms raw,rf=filter-rf,fasttext=filter-fasttext" in out
    for n in ("rf", "fasttext"):
        assert json.loads((run / f"filter-{n}" / "manifest.json").read_text())["params"]["classifier"] == n
    assert bench(str(run), "--show")[1] == out                                  # --show reprints the saved table
    code, _, err = bench(str(run), "--classifiers", "rf,svm")
    assert code == 2 and "unknown ['svm']" in err and "Traceback" not in err
    code, _, err = bench(str(tmp_path / "empty"), "--classifiers", "rf")
    assert code == 2 and "run the 'filter' stage first" in err and "Traceback" not in err
