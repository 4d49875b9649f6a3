"Training recipe, resume, DeepSpeed configs and the pretrain/finetune stages (phi1_nb.train, phi1_nb.finetune)."
import ast, inspect, json, os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from phi1_nb.core import find_configs_dir, load_config, read_manifest, write_manifest, write_shard
from phi1_nb.finetune import run_finetune
from phi1_nb.model import PackedDataset, build_model, pack, phi_config, run_tokenizer, train_tokenizer
from phi1_nb.model import load_tokenizer
from phi1_nb.memory import check_deepspeed_config
from phi1_nb.train import fit, grad_accum_steps, precision_flags, run_pretrain, training_args
import phi1_nb.train as train_mod

STDLIB = sorted(Path(os.__file__).parent.glob("*.py"))
CONFIGS = find_configs_dir()
HP = dict(micro_batch_size=8, effective_batch=8, learning_rate=3e-3, warmup_steps=2, weight_decay=0.1, logging_steps=1, seq_len=32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    tok = train_tokenizer((p.read_text() for p in STDLIB[:20]), vocab_size=400)
    pack([{"content": p.read_text()} for p in STDLIB[:8]], tok, d, seq_len=32)
    return tok, PackedDataset(d)


def _losses(s): return [h["loss"] for h in s["log_history"] if "loss" in h]


def test_steps_lower_loss_on_fixed_batch(data, tmp_path):
    tok, ds = data
    batch = torch.utils.data.Subset(ds, list(range(8)))
    torch.manual_seed(0)
    model = build_model(phi_config("tiny", tok, dropout=0.0))
    x = torch.stack([batch[i]["input_ids"] for i in range(8)])
    with torch.no_grad(): before = model.eval()(input_ids=x, labels=x).loss.item()
    s = fit(model, tok, batch, None, tmp_path, max_steps=10, save_steps=100, **HP)
    with torch.no_grad(): after = model.eval()(input_ids=x, labels=x).loss.item()
    assert after < before - 1.0, (before, after)
    assert s["steps"] == 10 and s["tokens_seen"] == 10 * 8 * 32
    logs = [h for h in s["log_history"] if "loss" in h]
    assert all(h["tokens_per_s"] > 0 and 0 < h["mfu"] for h in logs[1:])          # throughput and MFU in every log
    assert logs[-1]["learning_rate"] < logs[1]["learning_rate"]                     # linear decay after warmup
    assert (tmp_path/"final/config.json").exists() and list((tmp_path/"tb").iterdir())


class StopAt(TrainerCallback):
    def __init__(self, step): self.step = step
    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step: control.should_training_stop = True


def test_resume_continues_the_same_loss_curve(data, tmp_path):
    tok, ds = data
    hp = dict(max_steps=8, save_steps=4, **HP)
    runs = []
    for out, cbs in (("a", []), ("b", [StopAt(4)]), ("b", [])):
        torch.manual_seed(0)
        runs.append(fit(build_model(phi_config("tiny", tok, dropout=0.0)), tok, ds, None, tmp_path/out, callbacks=cbs, **hp))
    full, first, resumed = runs
    assert first["steps"] == 4 and resumed["resumed_from"] == "checkpoint-4" and resumed["steps"] == 8
    assert _losses(resumed) == _losses(full)   # bit-identical curve, steps 1-4 from the checkpoint's log_history
    assert resumed["train_loss"] == pytest.approx(full["train_loss"], rel=1e-9)   # the mean over all 8 steps, not steps 5-8
    assert resumed["train_loss"] == pytest.approx(sum(_losses(full)) / 8, rel=1e-9)


def _fresh(tok, **kw):
    torch.manual_seed(0)
    return build_model(phi_config("tiny", tok, dropout=0.0))


def test_resume_skips_half_written_checkpoints(data, tmp_path):
    "Checkpoints killed while saving are skipped with a warning; the newest complete one is resumed, the curve unchanged."
    tok, ds = data
    hp = dict(max_steps=3, save_steps=1, save_total_limit=None, **HP)
    full = fit(_fresh(tok), tok, ds, None, tmp_path/"a", **hp)
    fit(_fresh(tok), tok, ds, None, tmp_path/"b", callbacks=[StopAt(3)], **hp)
    cks = tmp_path/"b/checkpoints"
    (cks/"checkpoint-3/trainer_state.json").unlink()                      # killed before the state was written
    f = cks/"checkpoint-2/model.safetensors"
    with open(f, "r+b") as fh: fh.truncate(f.stat().st_size // 2)          # killed while writing the weights
    with pytest.warns(UserWarning, match="skipping incomplete checkpoint") as w:
        again = fit(_fresh(tok), tok, ds, None, tmp_path/"b", **hp)
    assert sum("skipping incomplete" in str(x.message) for x in w) == 2
    assert again["resumed_from"] == "checkpoint-1" and again["steps"] == 3
    assert _losses(again) == _losses(full)
    assert sorted(p.name[:23] for p in cks.iterdir() if p.name.startswith("incomplete-")) == ["incomplete-checkpoint-2", "incomplete-checkpoint-3"]


def test_resume_refuses_other_parameters_and_force_starts_afresh(data, tmp_path):
    "The stale-reuse finding: a rerun with another seed (or data) must not continue the old checkpoint."
    tok, ds = data
    hp = dict(max_steps=4, save_steps=2, **HP)
    first = fit(_fresh(tok), tok, ds, None, tmp_path, seed=1234, **hp)
    with pytest.raises(ValueError, match=r"seed: 1234 -> 7.*resume=False"):
        fit(_fresh(tok), tok, ds, None, tmp_path, seed=7, **hp)
    with pytest.raises(ValueError, match="data: "):
        fit(_fresh(tok), tok, torch.utils.data.Subset(ds, list(range(16))), None, tmp_path, seed=1234, **hp)
    fit(_fresh(tok), tok, ds, None, tmp_path, seed=1234, **{**hp, "logging_steps": 2})   # bookkeeping may change
    fresh = fit(_fresh(tok), tok, ds, None, tmp_path, seed=7, resume=False, **hp)
    assert fresh["resumed_from"] is None and fresh["steps"] == 4 and _losses(fresh) != _losses(first)


def test_finished_rerun_needs_no_trainer(data, tmp_path, monkeypatch):
    "A finished run is loaded, not trained: no Trainer (under DeepSpeed: no engine) reaches save_model."
    tok, ds = data
    hp = dict(max_steps=4, save_steps=2, **HP)
    first = fit(_fresh(tok), tok, ds, None, tmp_path, **hp)
    class NoTrainer:
        def __init__(self, *a, **kw): raise AssertionError("a finished run built a Trainer")
    monkeypatch.setattr(train_mod, "PhiTrainer", NoTrainer)
    model = _fresh(tok)
    again = fit(model, tok, ds, None, tmp_path, **hp)
    assert again["resumed_from"] == "checkpoint-4" and again["train_loss"] == first["train_loss"]
    want = AutoModelForCausalLM.from_pretrained(tmp_path/"checkpoints/checkpoint-4").state_dict()
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())      # the caller's model holds the weights
    assert (tmp_path/"final/tokenizer.json").exists() and not (tmp_path/"final.tmp").exists()


def test_checkpoints_carry_the_tokenizer(data, tmp_path):
    tok, ds = data
    fit(_fresh(tok), tok, ds, None, tmp_path, max_steps=2, save_steps=1, save_total_limit=None, **HP)
    code = "def f(x):\n    return x + 1\n"
    for ck in ("checkpoint-1", "checkpoint-2", "../final"):
        t = load_tokenizer(tmp_path/"checkpoints"/ck)
        assert t(code)["input_ids"] == tok(code)["input_ids"] != []


def test_gradient_checkpointing_same_curve(data, tmp_path):
    tok, ds = data
    hp = dict(max_steps=3, save_steps=100, **HP)
    a = fit(_fresh(tok), tok, ds, None, tmp_path/"a", **hp)
    b = fit(_fresh(tok), tok, ds, None, tmp_path/"b", gradient_checkpointing=True, **hp)
    assert _losses(b) == pytest.approx(_losses(a), rel=1e-5)


def test_batch_and_precision():
    assert grad_accum_steps(1024, 8, n_devices=8) == 16 and grad_accum_steps(256, 8, n_devices=8) == 4
    with pytest.raises(ValueError, match="not a multiple"): grad_accum_steps(100, 8, n_devices=1)
    if not torch.cuda.is_available():
        assert precision_flags("auto") == dict(fp16=False, bf16=False)
        with pytest.raises(ValueError, match="needs a GPU"): precision_flags("fp16")
    with pytest.raises(ValueError, match="auto|fp16"): precision_flags("fp8")


@pytest.mark.parametrize("name", ["ds_zero2.json", "ds_zero3.json"])
def test_deepspeed_configs(name, tmp_path):
    path = CONFIGS/name
    raw = json.loads(path.read_text())                      # valid JSON
    assert raw["zero_optimization"]["stage"] == int(name[7])
    for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "train_batch_size", "gradient_clipping"):
        assert raw[k] == "auto", k                          # decided once, by TrainingArguments
    assert raw["fp16"]["enabled"] == raw["bf16"]["enabled"] == "auto"
    assert "optimizer" not in raw and "scheduler" not in raw  # the Trainer's AdamW + linear schedule run under DeepSpeed
    args = training_args(tmp_path, max_steps=100, micro_batch_size=4, effective_batch=32, learning_rate=1e-3,
                         warmup_steps=10, weight_decay=0.1, max_grad_norm=0.5)
    c = check_deepspeed_config(path, args, hidden_size=1024, num_training_steps=100)
    assert (c["train_micro_batch_size_per_gpu"], c["gradient_accumulation_steps"], c["train_batch_size"]) == (4, 8, 32)
    assert c["gradient_clipping"] == 0.5 and c["fp16"]["enabled"] is False
    assert c["zero_optimization"]["reduce_bucket_size"] == 1024 * 1024
    for bad, msg in [({"zero_optimization": {"stage": 5}}, "stage"),
                     ({"zero_optimization": {"stage": 2}, "steps_per_print": "auto"}, "cannot fill"),
                     ({"zero_optimization": {"stage": 2}, "gradient_accumulation_steps": 3}, "mismatch")]:
        (tmp_path/"bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=msg): check_deepspeed_config(tmp_path/"bad.json", args, 1024, 100)


@pytest.mark.parametrize("stage,fn", [("pretrain", run_pretrain), ("finetune", run_finetune)])
def test_config_sections_match_stage_parameters(stage, fn):
    keys = list(inspect.signature(fn).parameters)[1:]
    assert list(load_config("tiny").section(stage)) == keys
    load_config("paper")                                   # the paper preset only overrides existing keys
    assert list(load_config("tiny").section("tokenizer")) == list(inspect.signature(run_tokenizer).parameters)[1:]


def _exercises(files):
    out = []
    for p in files:
        src = p.read_text(); lines = src.splitlines(keepends=True)
        for f in ast.parse(src).body:
            if isinstance(f, ast.FunctionDef) and ast.get_docstring(f) and len(f.body) > 1:
                e = f.body[0].end_lineno
                pr, so = "".join(lines[f.lineno-1:e]), "".join(lines[e:f.end_lineno])
                out.append(dict(id=f"{p.stem}.{f.name}", prompt=pr, solution=so, content=pr + so))
    return out


def test_pretrain_and_finetune_stages(tmp_path):
    rd = tmp_path/"run"
    recs = [{"id": p.stem, "content": p.read_text()} for p in STDLIB[:12]]
    write_manifest(rd/"dedup", stage="dedup", shards=[write_shard(rd/"dedup/part-00000.jsonl", recs)])
    write_manifest(rd/"synth/textbooks", stage="synth", shards=[write_shard(rd/"synth/textbooks/part-00000.jsonl",
                   [{"id": "tb0", "content": "# Lists\nA list holds items in order.\n\nxs = [1, 2]\n"}])])
    ex = _exercises(STDLIB[:40])
    write_manifest(rd/"synth/exercises", stage="synth", shards=[write_shard(rd/"synth/exercises/part-00000.jsonl", ex)])
    with pytest.raises(FileNotFoundError, match="tokenizer"): run_pretrain(rd)
    run_tokenizer(rd, vocab_size=400)
    common = dict(seq_len=32, micro_batch_size=8, effective_batch=8, logging_steps=2, max_eval_sequences=8)
    m = run_pretrain(rd, max_steps=6, save_steps=3, eval_steps=3, warmup_steps=1, valid_fraction=0.2, **common)
    assert m["steps"] == 6 and len(m["sources"]) == 2 and m["counts"]["valid_tokens"] > 0   # corpus + textbooks, held-out split
    assert [h["step"] for h in m["log_history"] if "eval_loss" in h] == [3, 6]
    assert AutoModelForCausalLM.from_pretrained(rd/"pretrain/final").config.resid_pdrop == 0.1
    m2 = run_pretrain(rd, max_steps=6, save_steps=3, eval_steps=3, warmup_steps=1, valid_fraction=0.2, **common)
    assert m2["resumed_from"] == "checkpoint-6" and m2["steps"] == 6   # rerun: nothing left to train, same curve
    assert m2["train_loss"] == m["train_loss"]
    assert _losses(m2) == _losses(m)

    with pytest.raises(ValueError, match="other parameters"):
        run_pretrain(rd, max_steps=6, save_steps=3, eval_steps=3, warmup_steps=1, valid_fraction=0.2, learning_rate=5e-4, **common)
    assert read_manifest(rd/"pretrain")["steps"] == 6      # a refused rerun leaves the finished stage alone

    f = run_finetune(rd, max_steps=6, save_steps=3, eval_steps=3, warmup_steps=1, valid_fraction=0.2, **common)
    assert "WITHOUT decontamination" in f["source_note"] and f["source"].endswith("synth/exercises")
    assert f["init"].endswith("pretrain/final")
    assert 0 < f["counts"]["loss_tokens"] < f["counts"]["train_tokens"] and f["best_checkpoint"] in ("checkpoint-3", "checkpoint-6")
    assert read_manifest(rd/"finetune")["stage"] == "finetune"
    assert AutoModelForCausalLM.from_pretrained(rd/"finetune/final") is not None
    with pytest.raises(ValueError, match="multiple of eval_steps"):
        run_finetune(rd, max_steps=6, save_steps=4, eval_steps=3, **common)

    # phi-1-base is a checkpoint (the paper: step 24,000 of 36,000): finetune from pretrain's checkpoint-3
    ft = dict(max_steps=2, save_steps=1, eval_steps=1, warmup_steps=1, valid_fraction=0.2, **common)
    g = run_finetune(rd, init="pretrain/checkpoints/checkpoint-3", resume=False, **ft)
    assert g["init"].endswith("pretrain/checkpoints/checkpoint-3") and g["steps"] == 2
    with pytest.raises(FileNotFoundError, match="no such model"): run_finetune(rd, init="pretrain/checkpoints/checkpoint-99", **ft)
    # a checkpoint without tokenizer files (written before they were saved in each) is refused, not read as a 1-token tokenizer
    for f_ in rd.glob("pretrain/checkpoints/checkpoint-3/*token*"): f_.unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer files"): run_finetune(rd, init="pretrain/checkpoints/checkpoint-3", **ft)
    # the same init name on other weights (pretrain run again from scratch) does not resume the old finetuning
    run_finetune(rd, resume=False, **ft)
    run_pretrain(rd, max_steps=6, save_steps=3, eval_steps=3, warmup_steps=1, valid_fraction=0.2, seed=5, resume=False, **common)
    with pytest.raises(ValueError, match="init_id"): run_finetune(rd, **ft)


# --- issue 29: refuse before touching, typed values, resume past any broken file, --init messages -------------------

def tree_hashes(d:Path) -> dict:
    "sha256 of every file under `d` (and the empty folders): what a refused rerun must leave as it was."
    import hashlib
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(d.rglob("*"))}


def _small_run(rd):
    recs = [{"id": p.stem, "content": p.read_text()} for p in STDLIB[:10]]
    write_manifest(rd/"dedup", stage="dedup", shards=[write_shard(rd/"dedup/part-00000.jsonl", recs)])
    ex = _exercises(STDLIB[:30])
    write_manifest(rd/"synth/exercises", stage="synth", shards=[write_shard(rd/"synth/exercises/part-00000.jsonl", ex)])
    run_tokenizer(rd, vocab_size=400)
    return recs


PT = dict(seq_len=32, micro_batch_size=8, effective_batch=8, logging_steps=2, max_eval_sequences=8, max_steps=2, save_steps=2,
          eval_steps=2, warmup_steps=1, valid_fraction=0.2)


def test_changed_input_is_refused_before_anything_is_touched(tmp_path):
    "Five records dropped from the dedup shard (manifest updated to match): the finished pretrain stage is refused by name, its folder sha-identical, and finetune still runs."
    rd = tmp_path/"run"; recs = _small_run(rd)
    m = run_pretrain(rd, **PT)
    before = tree_hashes(rd/"pretrain")
    write_manifest(rd/"dedup", stage="dedup", shards=[write_shard(rd/"dedup/part-00000.jsonl", recs[5:])])
    with pytest.raises(ValueError, match=r"input dedup changed.*--resume false"):
        run_pretrain(rd, **PT)
    assert tree_hashes(rd/"pretrain") == before                       # no manifest removed, no data repacked
    f = run_finetune(rd, max_steps=2, save_steps=2, eval_steps=2, warmup_steps=1, valid_fraction=0.2,
                     **{k: PT[k] for k in ("seq_len", "micro_batch_size", "effective_batch", "logging_steps", "max_eval_sequences")})
    assert f["steps"] == 2
    fresh = run_pretrain(rd, resume=False, **PT)                      # the one spelling of a fresh start
    assert fresh["counts"]["in"] < m["counts"]["in"] and fresh["resumed_from"] is None


def test_overrides_are_typed_before_anything_is_removed(tmp_path):
    from phi1_nb.cli import main
    from phi1_nb.core import ConfigError, parse_overrides
    o = parse_overrides(["--pretrain.learning_rate", "5e-4", "--pretrain.max_steps", "1e3", "--run.name", "1e3"])
    assert o == {"pretrain": {"learning_rate": 5e-4, "max_steps": 1000}, "run": {"name": "1e3"}}
    assert type(o["pretrain"]["learning_rate"]) is float and type(o["pretrain"]["max_steps"]) is int
    with pytest.raises(ConfigError, match=r"^--pretrain.max_steps '2.5': expected a int"): parse_overrides(["--pretrain.max_steps", "2.5"])
    assert load_config("tiny", ["--pretrain.learning_rate", "1e-4"]).pretrain.learning_rate == 1e-4   # the launchers' path
    rd = tmp_path/"run"; _small_run(rd)
    run_pretrain(rd, **PT)
    before = tree_hashes(rd/"pretrain")
    with pytest.raises(ValueError, match=r"^run_pretrain: learning_rate='fast' is not a float$"):
        run_pretrain(rd, **{**PT, "learning_rate": "fast"}, resume=False)
    assert main(["pretrain", "--run-dir", str(rd), "--learning_rate", "fast", "--resume", "false"]) == 2
    assert tree_hashes(rd/"pretrain") == before                       # refused before the checkpoints were removed
    m = run_pretrain(rd, **{**PT, "learning_rate": "5e-4", "max_steps": "2"}, resume=False)   # YAML 1.1 strings: coerced
    assert m["params"]["learning_rate"] == 5e-4 and m["steps"] == 2


@pytest.mark.parametrize("broken", ["scheduler.pt", "rng_state.pth", "optimizer.pt", "trainer_state.json", "model.safetensors"])
def test_resume_falls_back_past_any_file_it_cannot_load(data, tmp_path, broken):
    "A truncated file in the newest checkpoint: a warning, the previous complete one resumed, final weights bit-identical."
    from safetensors.torch import load_file
    tok, ds = data
    hp = dict(max_steps=3, save_steps=1, save_total_limit=None, **HP)
    fit(_fresh(tok), tok, ds, None, tmp_path/"a", **hp)
    fit(_fresh(tok), tok, ds, None, tmp_path/"b", callbacks=[StopAt(3)], **hp)
    f = tmp_path/"b/checkpoints/checkpoint-3"/broken
    with open(f, "r+b") as fh: fh.truncate(f.stat().st_size // 2)
    (tmp_path/"b/final/model.safetensors").unlink()
    with pytest.warns(UserWarning, match=f"skipping incomplete checkpoint .*checkpoint-3.*{broken.split('.')[0]}"):
        again = fit(_fresh(tok), tok, ds, None, tmp_path/"b", **hp)
    assert again["resumed_from"] == "checkpoint-2"
    a, b = load_file(tmp_path/"a/final/model.safetensors"), load_file(tmp_path/"b/final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rank_rng_states_and_deepspeed_folders_are_checked(tmp_path):
    from phi1_nb.checkpoints import deepspeed_state_problem, rng_states_problem
    d = tmp_path/"checkpoint-4"; d.mkdir()
    torch.save({"x": 1}, d/"rng_state_0.pth")
    assert rng_states_problem(d, world_size=2) == "no rng_state_1.pth (rank 1)"   # written apart from rank 0's state
    torch.save({"x": 1}, d/"rng_state_1.pth")
    assert rng_states_problem(d, world_size=2) is None
    g = d/"global_step4"; g.mkdir(); (d/"latest").write_text("global_step4")
    torch.save({"w": torch.ones(3)}, g/"mp_rank_00_model_states.pt")
    assert deepspeed_state_problem(d, [g]) is None
    (g/"mp_rank_00_model_states.pt").write_bytes((g/"mp_rank_00_model_states.pt").read_bytes()[:40])
    assert "global_step4/mp_rank_00_model_states.pt truncated" in deepspeed_state_problem(d, [g])
    (d/"latest").write_text("global_step8")
    assert "global_step8, which is missing" in deepspeed_state_problem(d, [g])


def test_every_init_mistake_is_one_line_naming_what_was_looked_for(tmp_path):
    from phi1_nb.checkpoints import resolve_init
    rd = tmp_path/"run"
    write_manifest(rd/"dedup", stage="dedup", shards=[write_shard(rd/"dedup/part-0.jsonl", [{"id": "a", "content": "x"}])])
    for init, want in [("/nonexistent", "looked for /nonexistent/config.json"),
                       ("dedup", f"the stage {rd/'dedup'} holds no model (looked for {rd/'dedup/final/config.json'})"),
                       ("pretrain", f"looked for {rd/'pretrain/config.json'}")]:
        with pytest.raises(FileNotFoundError) as e: resolve_init(rd, init)
        assert want in str(e.value) and "\n" not in str(e.value) and "stage first" not in str(e.value), str(e.value)


def test_every_precondition_is_refused_before_anything_is_touched(tmp_path):
    """Steps below one, a batch that does not split, an unknown model, a sequence past the context, a missing
    DeepSpeed JSON, with --resume false: refused, the finished stages sha-identical."""
    rd = tmp_path/"run"; _small_run(rd)
    run_pretrain(rd, **PT)
    FT = dict(PT, valid_fraction=0.2)
    run_finetune(rd, **FT)
    before = {s: tree_hashes(rd/s) for s in ("pretrain", "finetune")}
    for bad, says in ((dict(max_steps=-5), "max_steps=-5"), (dict(effective_batch=12), "effective_batch=12"),
                      (dict(seq_len=4096), "context"), (dict(deepspeed="nope.json"), "nope.json"),
                      (dict(learning_rate=0.0), "learning_rate"), (dict(save_steps=0), "save_steps=0")):
        for fn, kw in ((run_pretrain, PT), (run_finetune, FT)):
            with pytest.raises((ValueError, FileNotFoundError), match=says): fn(rd, **{**kw, **bad}, resume=False)
    with pytest.raises(ValueError, match="unknown model 'bogus'"): run_pretrain(rd, **PT, model="bogus", resume=False)
    assert {s: tree_hashes(rd/s) for s in ("pretrain", "finetune")} == before


def test_override_values_are_read_as_written():
    "YAML 1.1 leftovers: 012 is twelve (not octal 10), 0x10 and 1:20 are not numbers; nan/inf and null refused by key."
    from phi1_nb.core import ConfigError, parse_overrides
    def one(k, v): s, kk = k.split("."); return parse_overrides([f"--{k}", v])[s][kk]
    assert one("pretrain.max_steps", "012") == 12 and one("pretrain.max_steps", "1_000") == 1000
    assert one("pretrain.learning_rate", ".5") == 0.5 and one("pretrain.learning_rate", "-1e-3") == -1e-3
    assert one("run.name", "true") == "true" and one("ablation.whole_arms", "") == ""
    assert one("corpus.limit", "null") is None and one("pretrain.save_total_limit", "~") is None   # (null: ..)
    assert one("filter.embedder_params", "{a: 1}") == {"a": 1}
    for k, v in (("pretrain.max_steps", "0x10"), ("pretrain.max_steps", "1:20"), ("pretrain.learning_rate", ".nan"),
                 ("pretrain.learning_rate", ".inf"), ("pretrain.max_steps", "null"), ("pretrain.resume", "null"),
                 ("pretrain.precision", "null"), ("filter.embedder_params", "5")):
        with pytest.raises(ConfigError, match=rf"^--{k} '{v}': expected") as e: parse_overrides([f"--{k}", v])
        assert "\n" not in str(e.value)
    from phi1_nb.train import typed_params
    for kv in (dict(learning_rate="nan"), dict(learning_rate=float("inf")), dict(deepspeed=5)):
        with pytest.raises(ValueError, match=f"^run_pretrain: {next(iter(kv))}="):
            typed_params(run_pretrain.__wrapped__, kv)


@pytest.mark.parametrize("gone", ["scheduler.pt", "rng_state.pth"])
def test_resume_falls_back_past_a_deleted_file(data, tmp_path, gone):
    "A deleted scheduler or rng state (the Trainer went on without it): the previous checkpoint, bit-identical."
    from safetensors.torch import load_file
    tok, ds = data
    hp = dict(max_steps=3, save_steps=1, save_total_limit=None, **HP)
    fit(_fresh(tok), tok, ds, None, tmp_path/"a", **hp)
    fit(_fresh(tok), tok, ds, None, tmp_path/"b", callbacks=[StopAt(3)], **hp)
    (tmp_path/"b/checkpoints/checkpoint-3"/gone).unlink(); (tmp_path/"b/final/model.safetensors").unlink()
    with pytest.warns(UserWarning, match=f"skipping incomplete checkpoint .*checkpoint-3 \\(no {gone}\\)"):
        again = fit(_fresh(tok), tok, ds, None, tmp_path/"b", **hp)
    assert again["resumed_from"] == "checkpoint-2"
    a, b = load_file(tmp_path/"a/final/model.safetensors"), load_file(tmp_path/"b/final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_refusal_names_the_spelling_of_every_entry_point():
    from phi1_nb.checkpoints import START_AFRESH
    from phi1_nb.cli import main
    from phi1_nb.core import parse_overrides
    assert START_AFRESH.startswith("--resume false") and "--<stage>.resume false" in START_AFRESH
    assert "force" not in START_AFRESH
    assert parse_overrides(["--pretrain.resume", "false"]) == {"pretrain": {"resume": False}}   # phi1 pipeline
    assert main(["pretrain", "--force"]) == 2
