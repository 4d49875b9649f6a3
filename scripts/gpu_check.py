#!/usr/bin/env python3
"""One prepared check of the training machinery on one GPU; prints ONE JSON object (and nothing else on stdout).

Parts (each timed; a failure is recorded in the JSON and makes the exit status 1):
  preflight   the modules phi1_nb needs, torch/transformers versions, CUDA; without CUDA (a `+cpu` torch on a GPU
              machine included) it exits 2 at once unless --cpu is given
  tiny_run    the tiny config through `phi1_nb.train.fit` (the Trainer the stages use): steps, tokens/s
  small_train phi-1-small at sequence 2048 in bf16, ~30 optimizer steps, with sdpa and with flash_attention_2 where
              flash-attn imports: tokens/s and MFU for each
  memory      peak GPU memory of a full training step (fp32 weights, bf16 autocast, AdamW: 16 bytes a parameter plus
              `activation_memory_gib`'s activations) against the prediction, within 10%. Sized for ONE GPU: phi-1
              (1.3B, ~21 GiB of states) at micro batch 8 with gradient checkpointing and at micro batch 2 without
              (~38 GiB predicted: fits an 80 GB H100); phi-1-small at micro batch 8 without checkpointing
  resume      a tiny run stopped at step 2 and resumed to step 4 against an uninterrupted 4-step run, on the GPU with
              full determinism: the final weights bit-identical
  generation  the eval stage's own path, `phi1_nb.eval.generate_hf`, on a saved phi-1-small (random weights) and the
              first HumanEval prompts: completions per prompt, tokens/s
  zero2       if deepspeed imports: `fit` under configs/ds_zero2.json for 2 steps, then the finished rerun
Parts stop being started once --budget seconds (default 420: the whole check fits 8 minutes) have passed.

On the lent GPU machine's image (its own python3 3.12 with torch and transformers preinstalled, no network), from the
checkout, PYTHONPATH at the checkout; wheels for modules the image lacks (preflight names them) travel in
shared/wheels (<= 64 MiB, e.g. `pip download --only-binary :all: --python-version 3.12 -d shared/wheels accelerate`):
    [ -d shared/wheels ] && python3 -m pip install -q --no-index --find-links shared/wheels shared/wheels/*.whl; \
    PYTHONPATH=$PWD python3 scripts/gpu_check.py > $OUT/gpu_check.json; rc=$?; cat $OUT/gpu_check.json; exit $rc
Anywhere (CI runs it, tests/test_launch.py): PYTHONPATH=$PWD python3 scripts/gpu_check.py --cpu --tiny
"""
import argparse, contextlib, importlib.util, io, json, os, socket, statistics, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NEEDED = ("torch", "transformers", "accelerate", "safetensors", "tokenizers", "numpy", "yaml")   # phi1_nb's training imports
OPTIONAL = ("flash_attn", "deepspeed", "tensorboard", "pyarrow", "zstandard")


def _section(fn, *a):
    "Run one part; a failure is recorded in the JSON instead of ending the check."
    t0 = time.time()
    try: out = fn(*a)
    except Exception as e: out = dict(error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-1500:])
    out["seconds"] = round(time.time() - t0, 1)
    return out


def preflight(cpu:bool) -> dict:
    "Versions, missing modules and whether CUDA is usable; `ok` False ends the check."
    have = lambda m: importlib.util.find_spec(m) is not None
    out = dict(python=sys.version.split()[0], missing=[m for m in NEEDED if not have(m)],
               optional_missing=[m for m in OPTIONAL if not have(m)])
    if "torch" in out["missing"]: return dict(out, ok=False, error="torch is not importable")
    import torch
    out.update(torch=torch.__version__, torch_cuda=torch.version.cuda, cuda=torch.cuda.is_available())
    if have("transformers"):
        import transformers; out["transformers"] = transformers.__version__
    if out["missing"]: return dict(out, ok=False, error=f"missing modules {out['missing']}: carry their wheels (see --help)")
    if not out["cuda"] and not cpu:
        return dict(out, ok=False, error=f"CUDA is not available to torch {torch.__version__} (built for CUDA {torch.version.cuda}); "
                                         "pass --cpu to run on the CPU")
    if out["cuda"]: out.update(gpu=torch.cuda.get_device_name(), gpu_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    return dict(out, ok=True)


def _tokenizer():
    from phi1_nb.model import train_tokenizer
    return train_tokenizer((p.read_text() for p in sorted(Path(os.__file__).parent.glob("*.py"))[:20]), vocab_size=1024)


def _rows(tok, n, seq, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": x, "labels": x} for x in torch.randint(0, len(tok), (n, seq), generator=g)]


def _fit(tok, name, out, *, seq, mb, steps, attn=None, dev="cuda", rows=None, **kw):
    import torch
    from phi1_nb.model import build_model, phi_config
    from phi1_nb.train import fit
    torch.manual_seed(0)
    model = build_model(phi_config(name, tok, dropout=0.0), attn=attn)
    hp = dict(seq_len=seq, max_steps=steps, micro_batch_size=mb, effective_batch=mb * 2, learning_rate=1e-4, warmup_steps=1,
              weight_decay=0.1, save_steps=10**6, logging_steps=max(1, steps // 6), precision="fp32" if dev == "cpu" else "bf16",
              disable_tqdm=True)
    return fit(model, tok, rows or _rows(tok, mb * 2 * (steps + 1), seq), None, out, **{**hp, **kw})


def _throughput(s) -> dict:
    logs = [h for h in s["log_history"] if "tokens_per_s" in h]
    logs = logs[1:] or logs   # the first interval holds the warm-up
    return dict(steps=s["steps"], tokens_per_s=statistics.median(h["tokens_per_s"] for h in logs),
                mfu=statistics.median(h["mfu"] for h in logs), peak_flops=s["peak_flops_used"])


def tiny_run(a, tok, dev):
    with tempfile.TemporaryDirectory() as d:
        return dict(model="tiny", **_throughput(_fit(tok, "tiny", d, seq=64, mb=4, steps=4 if a.tiny else 20, dev=dev)))


def small_train(a, tok, dev):
    name, seq, mb, steps = ("tiny", 64, 4, 4) if a.tiny else ("phi-1-small", 2048, a.micro_batch, a.steps)
    attns = ["sdpa"] + (["flash_attention_2"] if dev == "cuda" and importlib.util.find_spec("flash_attn") else [])
    out = dict(model=name, seq_len=seq, micro_batch=mb, effective_batch=mb * 2)
    for attn in attns:
        with tempfile.TemporaryDirectory() as d:
            out[attn] = _section(lambda: _throughput(_fit(tok, name, d, seq=seq, mb=mb, steps=steps, attn=attn, dev=dev)))
    if len(attns) == 1: out["flash_attention_2"] = dict(skipped="flash_attn does not import" if dev == "cuda" else "CPU")
    return out


def _peak_step(cfg, mb, seq, dev, ckpt) -> dict:
    "Peak memory (GiB) of the second of two full training steps (AdamW's states exist by then); the prediction beside it."
    import torch
    from phi1_nb.model import build_model, count_params
    from phi1_nb.memory import activation_memory_gib
    n = count_params(cfg)
    pred = 16 * n / 2**30 + activation_memory_gib(cfg, mb, seq, checkpointing=ckpt)   # fp32 weights, grads, Adam m and v
    out = dict(micro_batch=mb, checkpointing=ckpt, predicted_gib=round(pred, 2))
    model = build_model(cfg, attn="sdpa").to(dev).train()
    if ckpt: model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev == "cuda")
    x = torch.randint(0, cfg.vocab_size, (mb, seq), device=dev)
    try:
        for step in range(2):
            if dev == "cuda" and step == 1: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
            t0 = time.time()
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
                loss = model(input_ids=x, labels=x).loss
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            if dev == "cuda": torch.cuda.synchronize()
        out["step_s"] = round(time.time() - t0, 2)
        if dev == "cuda":
            peak = torch.cuda.max_memory_allocated() / 2**30
            out.update(peak_gib=round(peak, 2), ratio=round(peak / pred, 3), within_10pct=abs(peak / pred - 1) <= 0.10)
    except torch.OutOfMemoryError as e: out.update(error=f"out of memory: {str(e)[:200]}")
    finally:
        del model, opt
        if dev == "cuda": torch.cuda.empty_cache()
    return out


def memory(a, tok, dev):
    from phi1_nb.model import phi_config
    if a.tiny: runs = [("tiny", 64, 2, True), ("tiny", 64, 2, False)]
    else: runs = [("phi-1-small", 2048, 8, False), ("phi-1", 2048, 8, True), ("phi-1", 2048, 2, False)]
    out = {}
    for name, seq, mb, ckpt in runs:
        out[f"{name}_mb{mb}_{'ckpt' if ckpt else 'nockpt'}"] = _section(_peak_step, phi_config(name, tok, dropout=0.0), mb, seq, dev, ckpt)
    checked = [v for v in out.values() if "within_10pct" in v]
    if checked: out["all_within_10pct"] = all(v["within_10pct"] for v in checked)
    return out


def resume(a, tok, dev):
    "An uninterrupted 4-step run against 2 steps, a stop, and a resume to 4: the final weights bit for bit."
    from safetensors.torch import load_file
    from transformers import TrainerCallback
    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= 2: control.should_training_stop = True
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    rows, kw = _rows(tok, 64, 64), dict(seq=64, mb=4, steps=4, dev=dev, save_steps=2, full_determinism=True)
    with tempfile.TemporaryDirectory() as d:
        full = _fit(tok, "tiny", Path(d)/"a", rows=rows, **kw)
        _fit(tok, "tiny", Path(d)/"b", rows=rows, callbacks=[StopAt()], **kw)
        again = _fit(tok, "tiny", Path(d)/"b", rows=rows, **kw)
        x, y = load_file(Path(d)/"a/final/model.safetensors"), load_file(Path(d)/"b/final/model.safetensors")
    diff = max(float((x[k].double() - y[k].double()).abs().max()) for k in x)
    return dict(resumed_from=again["resumed_from"], steps=again["steps"], max_abs_diff=diff,
                bit_identical=x.keys() == y.keys() and all(bool((x[k] == y[k]).all()) for k in x), loss=full["train_loss"])


def generation(a, tok, dev):
    "The eval stage's generation path (`generate_hf`) on a saved random phi-1-small: tokens/s over the first prompts."
    import torch
    from phi1_nb.eval import generate_hf, load_problems
    from phi1_nb.model import build_model, phi_config
    name, n, new, bs = ("tiny", 4, 8, 4) if a.tiny else ("phi-1-small", 32, 128, 32)
    probs = dict(list(load_problems("humaneval").items())[:n])
    with tempfile.TemporaryDirectory() as d:
        m = build_model(phi_config(name, tok, dropout=0.0))
        m.save_pretrained(d); tok.save_pretrained(d); del m
        if dev == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter()
        s = generate_hf(d, probs, n=1, temperature=0.0, max_new_tokens=new, batch_size=bs, device=dev)
        if dev == "cuda": torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    toks = sum(len(tok(x["completion"])["input_ids"]) for x in s)
    return dict(model=name, prompts=len(probs), samples=len(s), max_new_tokens=new, completion_tokens=toks,
                tokens_per_s=round(toks / dt, 1), seconds_per_prompt=round(dt / len(probs), 3))


def zero2(a, tok, dev):
    if importlib.util.find_spec("deepspeed") is None: return dict(skipped="deepspeed is not installed")
    if "RANK" not in os.environ:   # one process without a launcher: DeepSpeed still wants a process group
        with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    name, seq, mb = ("tiny", 64, 2) if a.tiny else ("phi-1-small", 2048, 8)
    kw = dict(seq=seq, mb=mb, steps=2, dev=dev, save_steps=2, deepspeed=str(ROOT/"configs/ds_zero2.json"), rows=_rows(tok, mb * 8, seq))
    with tempfile.TemporaryDirectory() as d:
        s1 = _fit(tok, name, d, **kw)
        s2 = _fit(tok, name, d, **kw)   # the finished rerun: loads, never reaches save_model without an engine
    return dict(model=name, steps=s1["steps"], loss=[h["loss"] for h in s1["log_history"] if "loss" in h],
                rerun_resumed_from=s2["resumed_from"], rerun_same_loss=s2["train_loss"] == s1["train_loss"])


PARTS = (tiny_run, small_train, memory, resume, generation, zero2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (without it, no CUDA is an error: exit 2)")
    ap.add_argument("--tiny", action="store_true", help="the tiny config and a few steps everywhere (seconds on a CPU)")
    ap.add_argument("--steps", type=int, default=30, help="phi-1-small optimizer steps per attention kernel")
    ap.add_argument("--micro-batch", type=int, default=8, help="phi-1-small sequences per forward pass")
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no further part is started")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: " + ",".join(p.__name__ for p in PARTS))
    a = ap.parse_args(argv)
    if a.cpu: os.environ["CUDA_VISIBLE_DEVICES"] = ""
    t0, res = time.time(), dict(tiny=a.tiny)
    with contextlib.redirect_stdout(io.StringIO()) as noise:   # the Trainer prints its logs: keep stdout for the JSON
        res["preflight"] = pre = _section(preflight, a.cpu)
        if pre.get("ok"):
            import torch
            dev = "cuda" if torch.cuda.is_available() else "cpu"
            res["device"] = pre.get("gpu") if dev == "cuda" else f"cpu x{torch.get_num_threads()}"
            tok, skip = _tokenizer(), set(filter(None, a.skip.split(",")))
            for part in PARTS:
                if part.__name__ in skip: continue
                if time.time() - t0 > a.budget: res[part.__name__] = dict(skipped=f"over the {a.budget:.0f}s budget"); continue
                res[part.__name__] = _section(part, a, tok, dev)
    res["seconds"] = round(time.time() - t0, 1)
    failed = [k for k, v in res.items() if isinstance(v, dict) and ("error" in v or any(isinstance(x, dict) and "error" in x for x in v.values()))]
    if res.get("memory", {}).get("all_within_10pct") is False: failed.append("memory: a peak more than 10% off its prediction")
    if res.get("resume", {}).get("bit_identical") is False: failed.append("resume: final weights differ from the uninterrupted run")
    res["failed"] = failed
    print(json.dumps(res, default=str))
    sys.stderr.write(noise.getvalue()[-2000:])
    return 2 if not pre.get("ok") else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
