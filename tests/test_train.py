"Training recipe, resume, DeepSpeed configs and the pretrain/finetune stages (phi1_nb.train, phi1_nb.finetune)."
import ast, inspect, json, os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from phi1_nb.core import find_configs_dir, load_config, read_manifest, write_manifest, write_shard
from phi1_nb.finetune import run_finetune
from phi1_nb.model import PackedDataset, build_model, pack, phi_config, run_tokenizer, train_tokenizer
from phi1_nb.train import (check_deepspeed_config, fit, grad_accum_steps, precision_flags, run_pretrain, training_args)

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
    assert 0 < f["counts"]["loss_tokens"] < f["counts"]["train_tokens"] and f["best_checkpoint"] in ("checkpoint-3", "checkpoint-6")
    assert read_manifest(rd/"finetune")["stage"] == "finetune"
    assert AutoModelForCausalLM.from_pretrained(rd/"finetune/final") is not None
    with pytest.raises(ValueError, match="multiple of eval_steps"):
        run_finetune(rd, max_steps=6, save_steps=4, eval_steps=3, **common)
