"""The ablation (phi1_nb.arms, phi1_nb.ablation, scripts/launch_ablation.sh): arms matched in tokens, streaming samples in
bounded memory, the interval over seeds x problems, refusals, resume, the results schema, and the launcher."""
import json, os, shlex, subprocess, sys, tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from phi1_nb.ablation import parse_seeds, run_ablation, seed_problem_bootstrap
from phi1_nb.arms import (BINS, _bin, arm_records, fair_tokenizer, parse_arms, prepare_arms, resolve_source, size_histogram, source_records,
                          take)
from phi1_nb.cli import main, stage_parser
from phi1_nb.core import load_config, parse_overrides, write_manifest, write_shard
from phi1_nb.model import PackedDataset

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT/"scripts"/"launch_ablation.sh"
GOOD = [f"def f{i}(x):\n    return x * {i}\n" for i in range(200)]
BAD = [f"x{i}=1;y={i}\n" * (1 + i % 7) for i in range(400)]
SMALL = dict(tokenizer_bytes=4000, vocab_size=400, seq_len=32, micro_batch_size=4, effective_batch=4, max_steps=2,
             warmup_steps=1, save_steps=2, logging_steps=1, limit=3, n_boot=50)


def make_stage(run, name, texts):
    d = Path(run)/name; d.mkdir(parents=True)
    extra = {"educational_value": 0.5} if name == "filter" else {}   # what every filter record holds (contract.COLUMNS)
    write_manifest(d, stage=name, shards=[write_shard(d/"part-0.jsonl", ({"id": f"{name}:{i}", "content": t, **extra} for i, t in enumerate(texts)))])
    return d


@pytest.fixture
def run(tmp_path):
    make_stage(tmp_path, "corpus", GOOD + BAD); make_stage(tmp_path, "dedup", GOOD); make_stage(tmp_path, "filter", GOOD + GOOD[:20])
    return tmp_path


class WordTokenizer:
    "A stand-in tokenizer: one id per whitespace-separated word (fast, so that big streams stay cheap)."
    eos_token_id = 0
    def __len__(self): return 1000
    def __call__(self, texts, add_special_tokens=False): return {"input_ids": [[len(w) for w in t.split()] for t in texts]}


# --- arms ---------------------------------------------------------------------------------------------------------

def test_parse_arms_and_seeds():
    assert parse_arms("raw,filtered+textbooks") == {"raw": ["corpus"], "filtered+textbooks": ["dedup", "synth/textbooks"]}
    assert parse_arms(["x=a+b"]) == {"x": ["a", "b"]}
    with pytest.raises(ValueError, match="not built in"): parse_arms("rawish")
    assert parse_seeds("1,2,3") == [1, 2, 3] and parse_seeds([4, 5]) == [4, 5] and parse_seeds(None, 9) == [9]
    with pytest.raises(ValueError): parse_seeds("1,,a")


def test_cli_seeds_list_parses():
    "`--ablation.seeds 1,2,3` and `--seeds 1,2,3` reach run_ablation as something parse_seeds reads as [1, 2, 3]."
    ns, rest = stage_parser("ablation", "tiny").parse_known_args(["--seeds", "1,2,3"])
    assert parse_seeds(ns.seeds) == [1, 2, 3] and rest == []
    cfg = load_config("tiny", parse_overrides(["--ablation.seeds", "1,2,3"]))
    assert parse_seeds(cfg.section("ablation")["seeds"]) == [1, 2, 3]
    assert parse_seeds(load_config("tiny").section("ablation")["seeds"]) == [1234, 1235]
    for one in (["--ablation.seeds", "1234"], ["--ablation.seeds=1234"]):   # a single seed is a list of one
        assert parse_seeds(load_config("tiny", parse_overrides(one)).section("ablation")["seeds"]) == [1234]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 40), min_size=1, max_size=60), st.floats(0, 1), st.integers(0, 3))
def test_take_lands_exactly_on_the_budget(words, frac, seed):
    "Any corpus, any budget up to its size: the sample holds exactly the budget, and every record of the bins below the cut."
    recs = [{"id": str(i), "content": " ".join(["w"] * n)} for i, n in enumerate(words)]
    tok = WordTokenizer()
    h = size_histogram(recs, tok, seed, bins=64)
    assert h["size"] == sum(n + 1 for n in words)   # words + the eos
    budget = int(frac * h["size"])
    got = list(take(recs, h["hist"], budget, tok, seed))
    assert sum(size for _, _, size in got) == budget
    assert all(0 < size <= len(ids) + 1 for _, ids, size in got)
    cut = int(np.searchsorted(np.cumsum(h["hist"]), budget))
    taken = {r["id"] for r, _, _ in got}
    assert {r["id"] for r in recs if _bin(r, seed, 64) < cut} <= taken
    part = size_histogram(recs, tok, seed, bins=64, upto=cut)   # measured only up to the cut's bin: the same sample
    assert list(take(recs, part["hist"], budget, tok, seed)) == got and part["records"] == h["records"]
    assert part["measured"] == sum(_bin(r, seed, 64) <= cut for r in recs)


def test_streaming_sample_memory_is_bounded():
    "A 24 MB corpus streamed through both passes: the peak Python allocation stays a small fraction of it."
    def corpus(n=24_000):
        for i in range(n): yield {"id": f"r{i}", "content": f"row {i} " + "abcdefg " * 124}
    tok = WordTokenizer()
    tracemalloc.start()
    try:
        h = size_histogram(corpus(), tok, seed=0)
        n = sum(size for _, _, size in take(corpus(), h["hist"], h["size"] // 3, tok, seed=0))
        peak = tracemalloc.get_traced_memory()[1]
    finally: tracemalloc.stop()
    assert n == h["size"] // 3 and h["records"] == 24_000
    assert peak < 4e6, f"peak {peak / 1e6:.1f} MB for a {24_000 * 1e3 / 1e6:.0f} MB corpus"


def test_sample_is_random_and_seeded(run):
    "The raw arm's sample mixes good and bad records in proportion to their tokens, and another seed draws another sample."
    from phi1_nb.model import train_tokenizer
    tok = train_tokenizer(GOOD + BAD, vocab_size=400)
    def sample(seed):
        h = size_histogram(source_records(run/"corpus"), tok, seed)
        got = list(take(source_records(run/"corpus"), h["hist"], h["size"] // 2, tok, seed))
        good = sum(s for r, _, s in got if r["content"].startswith("def"))
        return {r["id"] for r, _, _ in got}, good / (h["size"] // 2)
    ids1, share = sample(1)
    full = size_histogram(source_records(run/"dedup"), tok)["size"] / size_histogram(source_records(run/"corpus"), tok)["size"]
    assert abs(share - full) < 0.1, (share, full)
    assert sample(2)[0] != ids1


def test_arms_matched_in_tokens(run):
    make_stage(run, "synth/textbooks", [])
    paths = {a: [run/s for s in ss] for a, ss in
             {"raw": ["corpus"], "filtered": ["dedup"], "filtered-nodedup": ["filter"], "filtered+textbooks": ["dedup", "synth/textbooks"]}.items()}
    with pytest.raises(ValueError, match=r"arm 'filtered\+textbooks' is named but .*synth/textbooks holds no records"):
        prepare_arms(run/"ablation", paths, "fair", tokenizer_bytes=4000, vocab_size=400, seed=3, seq_len=32)
    assert not (run/"ablation"/"data"/"manifest.json").exists()   # a named empty arm is an error, not a quiet skip
    del paths["filtered+textbooks"]
    m = prepare_arms(run/"ablation", paths, "fair", tokenizer_bytes=4000, vocab_size=400, seed=3, seq_len=32)
    assert list(m["arms"]) == ["raw", "filtered", "filtered-nodedup"] and not m["skipped"]
    assert {a: len(PackedDataset(run/"ablation"/"data"/a).tokens) for a in m["arms"]} == dict.fromkeys(m["arms"], m["budget"])
    assert m["budget"] == m["arms"]["filtered"]["source_tokens"]   # the smallest arm, whole
    assert m["arms"]["raw"]["records"] < m["arms"]["raw"]["source_records"]
    m2 = prepare_arms(run/"ablation2", paths, "fair", tokenizer_bytes=4000, vocab_size=400, tokens=500, seed=3, seq_len=32)
    assert {a: len(PackedDataset(run/"ablation2"/"data"/a).tokens) for a in m2["arms"]} == dict.fromkeys(m2["arms"], 500)
    # a token budget tokenizes only the first bins of an arm's random order, and samples what the whole count would
    from phi1_nb.model import load_tokenizer
    tok = load_tokenizer(run/"ablation2"/"tokenizer")
    for a in m2["arms"]:
        h = size_histogram(arm_records(paths[a]), tok, 3)
        want = [t for _, ids, n in take(arm_records(paths[a]), h["hist"], 500, tok, 3) for t in (ids + [tok.eos_token_id])[:n]]
        assert PackedDataset(run/"ablation2"/"data"/a).tokens.tolist() == want, a
    assert m2["arms"]["raw"]["source_tokens"] is None and m2["arms"]["raw"]["source_records"] == len(GOOD + BAD)
    with pytest.raises(ValueError, match="fewer tokens"):
        prepare_arms(run/"ablation3", paths, "fair", tokenizer_bytes=4000, vocab_size=400, tokens=10**7, seq_len=32)


def test_other_ranks_wait_for_the_main_one(run):
    "Under a launcher, a non-main process waits for the main one's data manifest and returns the same arms."
    import threading
    paths = {"raw": [run/"corpus"], "filtered": [run/"dedup"]}
    kw = dict(tokenizer_bytes=4000, vocab_size=400, seed=3, seq_len=32)
    got = {}
    t = threading.Thread(target=lambda: got.update(prepare_arms(run/"ablation", paths, "fair", main=False, **kw)))
    t.start()
    m = prepare_arms(run/"ablation", paths, "fair", **kw)
    t.join(60)
    assert not t.is_alive() and got["budget"] == m["budget"] and got["created"] == m["created"]


def test_fair_tokenizer_takes_equal_bytes(run):
    tok, each = fair_tokenizer({"raw": [run/"corpus"], "filtered": [run/"dedup"]}, bytes_per_arm=10**9, vocab_size=400)
    assert each == size_histogram(source_records(run/"dedup"))["size"]   # the smaller arm bounds the share
    assert len(tok) == 400


def test_missing_arm_source_is_refused(run):
    with pytest.raises(FileNotFoundError, match="'filtered\\+textbooks'.*synth/textbooks.*does not exist"):
        run_ablation(run, arms="raw,filtered+textbooks", **SMALL)
    with pytest.raises(FileNotFoundError, match="does not exist"): resolve_source(run, "nowhere", "mine")
    assert not (run/"ablation"/"runs").exists() and not (run/"ablation"/"data").exists()   # refused before any work
    assert main(["ablation", "--run-dir", str(run), "--arms", "raw,mine=nowhere"]) == 2


# --- the interval over seeds x problems ---------------------------------------------------------------------------

def test_interval_without_seed_noise_is_the_problem_bootstrap():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 80)
    st_, _ = seed_problem_bootstrap({"a": np.tile(x, (4, 1))}, n_boot=4000, seed=0)
    idx = np.random.default_rng(2).integers(0, 80, (4000, 80))
    ref = np.percentile(x[idx].mean(1), [2.5, 97.5])
    assert np.allclose(st_["a"]["ci"], ref, atol=0.03)


def test_interval_covers_seeds_and_problems():
    """Simulated losses = problem effect + seed effect: the two-level interval covers the true mean about 95% of the time;
    an interval over problems alone (one training run, as before) covers it far less often."""
    rng, cov, cov_problems = np.random.default_rng(0), 0, 0
    for i in range(100):
        L = 1.0 + rng.normal(0, 0.3, (8, 1)) + rng.normal(0, 0.3, (1, 40)) + rng.normal(0, 0.1, (8, 40))
        lo, hi = seed_problem_bootstrap({"a": L}, n_boot=400, seed=i)[0]["a"]["ci"]; cov += lo <= 1.0 <= hi
        lo, hi = seed_problem_bootstrap({"a": L[:1]}, n_boot=400, seed=i)[0]["a"]["ci"]; cov_problems += lo <= 1.0 <= hi
    assert cov >= 80 and cov_problems <= 50, (cov, cov_problems)


def test_pairs_are_paired_and_count_wins():
    base = np.random.default_rng(0).normal(3, 1, (3, 50))
    stats, pairs = seed_problem_bootstrap({"a": base + 0.2, "b": base, "c": base + 0.2 * (np.arange(50) % 2)})
    ab, ac, bc = pairs
    assert (ab["a"], ab["b"]) == ("a", "b") and ab["diff_ci"][0] == pytest.approx(0.2) and ab["share_b_better"] == 1.0
    assert ac["share_b_better"] == 0.5 and bc["diff"] == pytest.approx(-0.1)


# --- the stage ----------------------------------------------------------------------------------------------------

def test_run_ablation_every_arm_every_seed_and_resume(run):
    m = run_ablation(run, arms="raw,filtered", seeds="1,2", **SMALL)
    res = json.loads((run/"ablation"/"results.json").read_text())
    assert set(res["arms"]) == {"raw", "filtered"} and res["seeds"] == [1, 2] and res["problems"] == 3
    for a, v in res["arms"].items():
        assert set(v["seeds"]) == {"1", "2"} and v["tokens"] == res["budget_tokens"] and v["bytes_per_token"] > 0
        assert v["loss_ci"][0] <= v["loss_mean"] <= v["loss_ci"][1]
        for s in v["seeds"].values():
            assert s["steps"] == 2 and s["tokens_seen"] == 2 * 4 * 32 and len(s["per_problem"]) == 3 and s["curve"]
    assert res["arms"]["raw"]["seeds"]["1"]["per_problem"] != res["arms"]["raw"]["seeds"]["2"]["per_problem"]
    assert [(p["a"], p["b"]) for p in res["pairs"]] == [("raw", "filtered")]
    assert set(res["comparison"]) >= {"raw_loss", "raw_ci", "filtered_loss", "filtered_ci", "raw_minus_filtered", "diff_ci",
                                      "share_of_problems_filtered_better", "problems"}
    assert (run/"ablation"/"ablation.png").read_bytes()[:4] == b"\x89PNG" and m["counts"]["runs"] == 4

    # one more seed: the finished runs are reused (their scores untouched), only seed 3 trains
    stamp = lambda s: (run/"ablation"/"runs"/"raw"/f"seed-{s}"/"scores.json").stat().st_mtime_ns
    before = stamp(1)
    run_ablation(run, arms="raw,filtered", seeds=[1, 2, 3], **SMALL)
    res3 = json.loads((run/"ablation"/"results.json").read_text())
    assert stamp(1) == before and set(res3["arms"]["filtered"]["seeds"]) == {"1", "2", "3"}
    assert res3["arms"]["raw"]["seeds"]["1"] == res["arms"]["raw"]["seeds"]["1"]

    # another sampling seed changes the data: the old checkpoints are refused, not resumed; resume=False starts over
    with pytest.raises(ValueError, match="other parameters"):
        run_ablation(run, arms="raw,filtered", seeds="1,2", seed=7, **SMALL)
    run_ablation(run, arms="raw,filtered", seeds="1", seed=7, resume=False, **SMALL)
    res7 = json.loads((run/"ablation"/"results.json").read_text())
    assert res7["arms"]["raw"]["seeds"]["1"]["per_problem"] != res["arms"]["raw"]["seeds"]["1"]["per_problem"]


# --- the launcher -------------------------------------------------------------------------------------------------

def launch(*args, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("PRESET", "NGPUS", "LAUNCHER", "DS_CONFIG", "HOSTFILE", "NNODES",
                                                          "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "DRY_RUN", "STAGE")}
    e.update({k: str(v) for k, v in env.items()})
    return subprocess.run(["bash", str(LAUNCH), *args], env=e, capture_output=True, text=True, timeout=600)


def test_launcher_dry_run(tmp_path):
    r = launch(str(tmp_path/"run"), "--ablation.seeds", "1,2", DRY_RUN=1, LAUNCHER="torchrun", DS_CONFIG="configs/ds_zero2.json")
    assert r.returncode == 0, r.stderr
    cmd = shlex.split(r.stdout)
    i = next(i for i, a in enumerate(cmd) if a.endswith(".launch_ablation.py"))
    assert cmd[i] == str(tmp_path/"run"/".launch_ablation.py") and cmd[i+1:i+4] == ["ablation", "paper", str(tmp_path/"run")]
    assert cmd[i+4:] == ["--ablation.deepspeed", str(ROOT/"configs"/"ds_zero2.json"), "--ablation.seeds", "1,2"]
    assert "--nproc_per_node" in cmd and "launching ablation" in r.stderr and not (tmp_path/"run").exists()
    bad = launch(DRY_RUN=1, LAUNCHER="mpirun")
    assert bad.returncode == 2 and "launch_ablation: error: unknown LAUNCHER" in bad.stderr and bad.stdout == ""


def test_launcher_runs_the_ablation(run, tmp_path):
    "One CPU process through torchrun: the entry runs run_ablation with the preset's section and the overrides."
    preset = tmp_path/"p.yaml"
    preset.write_text("ablation:\n" + "".join(f"  {k}: {v}\n" for k, v in SMALL.items()) + "  arms: raw,filtered\n  seeds: [5]\n"
                      "  tokens: null\n")
    r = launch(str(run), "--ablation.limit", "2", "--ablation.pass_at_1", "true", "--ablation.max_new_tokens", "8",
               PRESET=preset, LAUNCHER="torchrun", NGPUS=1, PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((run/"ablation"/"results.json").read_text())
    assert res["seeds"] == [5] and res["problems"] == 2 and set(res["arms"]) == {"raw", "filtered"}
    for v in res["arms"].values():   # pass@1 as well as the loss (0 for a 2-step model, but measured in the sandbox)
        assert v["pass@1"] == 0.0 and v["pass@1_ci"] == [0.0, 0.0] and v["seeds"]["5"]["pass@1"] == 0.0
    assert "pass@1_diff" in res["pairs"][0]
    assert json.loads((run/"ablation"/"runs"/"raw"/"seed-5"/"scores.json").read_text())["pass"].keys() == {"HumanEval/0", "HumanEval/1"}


# --- issue 29: content-addressed arms, refusals that touch nothing, the paper's whole arms ---------------------------

def tree_hashes(d:Path) -> dict:
    import hashlib
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(d.rglob("*"))}


def test_adding_an_arm_trains_only_the_new_arm_and_a_changed_source_is_refused_untouched(run):
    from phi1_nb.model import run_tokenizer
    run_tokenizer(run, vocab_size=400)
    kw = {**SMALL, "tokenizer": "run", "tokens": 400, "seeds": "1"}
    run_ablation(run, arms="raw,filtered", **kw)
    res = json.loads((run/"ablation"/"results.json").read_text())
    state = lambda a: (run/"ablation"/"runs"/a/"seed-1"/"checkpoints"/"checkpoint-2"/"trainer_state.json").stat().st_mtime_ns
    before = {a: state(a) for a in ("raw", "filtered")}
    m = run_ablation(run, arms="raw,filtered,filtered-nodedup", **kw)   # re-prepared arms: byte-identical tokens, same ids
    res2 = json.loads((run/"ablation"/"results.json").read_text())
    assert {a: state(a) for a in ("raw", "filtered")} == before and m["counts"]["runs"] == 3
    for a in ("raw", "filtered"): assert res2["arms"][a]["seeds"]["1"]["train_loss"] == res["arms"][a]["seeds"]["1"]["train_loss"]
    assert "filtered-nodedup" in res2["arms"]
    # the filtered corpus loses records: the finished runs on it are refused by name, and the stage folder stays as it was
    before = tree_hashes(run/"ablation")
    write_manifest(run/"dedup", stage="dedup", shards=[write_shard(run/"dedup"/"part-0.jsonl",
                   ({"id": f"dedup:{i}", "content": t} for i, t in enumerate(GOOD[5:])))])
    with pytest.raises(ValueError, match=r"runs/filtered/seed-1.*data: .*--resume false"):
        run_ablation(run, arms="raw,filtered,filtered-nodedup", **kw)
    assert tree_hashes(run/"ablation") == before


def test_whole_arms_keep_every_token_and_results_record_the_cut(run):
    run_ablation(run, arms="raw,filtered,filtered-nodedup", whole_arms="raw,filtered-nodedup", seeds="1", **SMALL)
    res = json.loads((run/"ablation"/"results.json").read_text())
    raw, f, nd = (res["arms"][a] for a in ("raw", "filtered", "filtered-nodedup"))
    assert not raw["sampled"] and raw["tokens"] == raw["source_tokens"] > f["tokens"] and raw["cut_tokens"] == 0
    assert not nd["sampled"] and nd["tokens"] == nd["source_tokens"] > f["tokens"]   # filtered+textbooks would keep all too
    assert f["sampled"] and f["tokens"] == res["budget_tokens"] and f["cut_tokens"] == f["source_tokens"] - f["tokens"] == 0
    with pytest.raises(ValueError, match="whole_arms names 'textbooks'"):
        run_ablation(run, arms="raw,filtered", whole_arms="textbooks", **SMALL)
    assert load_config("paper").ablation.whole_arms == "raw,filtered+textbooks"


def test_a_mistake_known_before_training_touches_no_finished_ablation(run):
    """A batch that does not split, a missing DeepSpeed JSON, a sequence past the context, with resume false:
    refused before the manifest or any run's checkpoints go."""
    kw = {**SMALL, "seeds": "1"}
    run_ablation(run, arms="raw,filtered", **kw)
    before = tree_hashes(run/"ablation")
    for bad, says in ((dict(effective_batch=6), "effective_batch=6"), (dict(deepspeed="nope.json"), "nope.json"),
                      (dict(seq_len=4096), "context"), (dict(max_steps=0), "max_steps=0")):
        with pytest.raises((ValueError, FileNotFoundError), match=says):
            run_ablation(run, arms="raw,filtered", **{**kw, **bad}, resume=False)
    assert tree_hashes(run/"ablation") == before
