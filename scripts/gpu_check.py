#!/usr/bin/env python
"""One prepared check of the training machinery on a GPU; prints ONE JSON object (and nothing else on stdout).

On one GPU (< 8 minutes on an A100/H100/H200):
  small_train  phi-1-small, ~50 optimizer steps through `phi1_nb.train.fit` (the Trainer the stages use) at sequence
               2048 in bf16 with flash_attention_2 when it imports, else sdpa: tokens/s and MFU (the goal: >= 40%)
  phi1_step    one forward+backward+AdamW step of phi-1 (1.3B) at micro batch 8 x 2048, with gradient checkpointing
               and without: peak GPU memory beside `activation_memory_gib`'s prediction
  generation   HumanEval prompts, phi-1-small (random weights, bf16), batch 32, 128 new tokens each: tokens/s
  zero2        if deepspeed imports: `fit` under configs/ds_zero2.json on one GPU for 2 steps, then the same call again
               (a finished stage rerun under DeepSpeed: must load, not reach save_model without an engine)
  --cpu --tiny runs every part on the CPU with the tiny config in seconds (tests/test_launch.py does).

    python scripts/gpu_check.py              # on the GPU node
    python scripts/gpu_check.py --cpu --tiny # anywhere
"""
import argparse, contextlib, io, json, os, socket, statistics, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _section(fn, *a):
    "Run one part; a failure is recorded in the JSON instead of ending the check."
    t0 = time.time()
    try: out = fn(*a)
    except Exception as e: out = dict(error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-1500:])
    out["seconds"] = round(time.time() - t0, 1)
    return out


def _tokenizer():
    from phi1_nb.model import train_tokenizer
    return train_tokenizer((p.read_text() for p in sorted(Path(os.__file__).parent.glob("*.py"))[:20]), vocab_size=1024)


def small_train(a, tok, dev):
    import torch
    from phi1_nb.model import attn_implementation, build_model, detect_peak_flops, phi_config
    from phi1_nb.train import fit
    name, seq, mb, steps = ("tiny", 64, 4, 4) if a.tiny else ("phi-1-small", 2048, a.micro_batch, a.steps)
    attn = attn_implementation()
    cfg = phi_config(name, tok, dropout=0.0)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": x, "labels": x} for x in torch.randint(0, len(tok), (mb * 4 * (steps + 1), seq), generator=g)]
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        s = fit(build_model(cfg, attn=attn), tok, rows, None, d, seq_len=seq, max_steps=steps, micro_batch_size=mb,
                effective_batch=mb * 2, learning_rate=1e-4, warmup_steps=2, weight_decay=0.1, save_steps=10**6,
                logging_steps=max(1, steps // 5), precision="fp32" if dev == "cpu" else "bf16", torch_compile=a.compile,
                disable_tqdm=True)
    logs = [h for h in s["log_history"] if "tokens_per_s" in h][1:] or [h for h in s["log_history"] if "tokens_per_s" in h]
    tps = statistics.median(h["tokens_per_s"] for h in logs)
    mfus = [h["mfu"] for h in logs]
    return dict(model=name, attn=attn, seq_len=seq, micro_batch=mb, effective_batch=mb * 2, steps=s["steps"],
                tokens_per_s=tps, mfu=statistics.median(mfus), peak_flops=s["peak_flops_used"], compile=a.compile,
                loss_first_last=[s["log_history"][0].get("loss"), next(h["loss"] for h in reversed(s["log_history"]) if "loss" in h)])


def _peak_step(cfg, mb, seq, dev, ckpt):
    "Peak memory (GiB) of one forward+backward+AdamW step; None with the error when it does not fit."
    import torch
    from phi1_nb.model import build_model
    model = build_model(cfg).to(dev).train()
    if ckpt: model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=dev == "cuda")
    x = torch.randint(0, cfg.vocab_size, (mb, seq), device=dev)
    if dev == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    try:
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            loss = model(input_ids=x, labels=x).loss
        loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        if dev == "cuda": torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None
        return dict(peak_gib=peak and round(peak, 2), step_s=round(time.time() - t0, 2))
    except torch.OutOfMemoryError as e: return dict(peak_gib=None, error=f"out of memory: {str(e)[:200]}")
    finally:
        del model, opt
        if dev == "cuda": torch.cuda.empty_cache()


def phi1_step(a, tok, dev):
    from phi1_nb.model import phi_config
    from phi1_nb.train import activation_memory_gib
    name, seq, mb = ("tiny", 64, 2) if a.tiny else ("phi-1", 2048, 8)
    cfg = phi_config(name, tok, dropout=0.0)
    out = dict(model=name, micro_batch=mb, seq_len=seq)
    for ckpt in (True, False):
        key = "checkpointing" if ckpt else "no_checkpointing"
        out[key] = _peak_step(cfg, mb, seq, dev, ckpt)
        out[key]["predicted_activation_gib"] = round(activation_memory_gib(cfg, mb, seq, checkpointing=ckpt), 2)
    return out


def generation(a, tok, dev):
    import torch
    from phi1_nb.eval import load_problems
    from phi1_nb.model import attn_implementation, build_model, phi_config
    name, bs, new = ("tiny", 4, 8) if a.tiny else ("phi-1-small", 32, 128)
    probs = list(load_problems("humaneval").values())[:bs]
    model = build_model(phi_config(name, tok, dropout=0.0), attn=attn_implementation()).to(dev).eval()
    if dev == "cuda": model = model.to(torch.bfloat16)
    tok.padding_side = "left"
    enc = tok([p["prompt"] for p in probs], return_tensors="pt", padding=True).to(dev)
    kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=tok.pad_token_id, use_cache=True)
    with torch.no_grad():
        model.generate(**enc, **{**kw, "max_new_tokens": 2, "min_new_tokens": 2})       # warm-up
        if dev == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); out = model.generate(**enc, **kw)
        if dev == "cuda": torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    n = (out.shape[1] - enc["input_ids"].shape[1]) * len(probs)
    return dict(model=name, batch=len(probs), prompt_tokens_max=enc["input_ids"].shape[1], new_tokens_each=new,
                tokens_per_s=round(n / dt, 1), seconds_per_batch=round(dt, 2))


def zero2(a, tok, dev):
    import importlib.util
    if importlib.util.find_spec("deepspeed") is None: return dict(skipped="deepspeed is not installed")
    import torch
    from phi1_nb.model import build_model, phi_config
    from phi1_nb.train import fit
    if "RANK" not in os.environ:   # one process without a launcher: DeepSpeed still wants a process group
        with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    name, seq, mb = ("tiny", 64, 2) if a.tiny else ("phi-1-small", 2048, 8)
    rows = [{"input_ids": x, "labels": x} for x in torch.randint(0, len(tok), (mb * 4, seq))]
    hp = dict(seq_len=seq, max_steps=2, micro_batch_size=mb, effective_batch=mb, learning_rate=1e-4, warmup_steps=1,
              weight_decay=0.1, save_steps=2, logging_steps=1, precision="fp32" if dev == "cpu" else "bf16",
              deepspeed=str(ROOT/"configs/ds_zero2.json"), disable_tqdm=True)
    with tempfile.TemporaryDirectory() as d:
        s1 = fit(build_model(phi_config(name, tok, dropout=0.0)), tok, rows, None, d, **hp)
        s2 = fit(build_model(phi_config(name, tok, dropout=0.0)), tok, rows, None, d, **hp)   # the finished rerun
    return dict(model=name, steps=s1["steps"], loss=[h["loss"] for h in s1["log_history"] if "loss" in h],
                rerun_resumed_from=s2["resumed_from"], rerun_steps=s2["steps"], rerun_same_loss=s2["train_loss"] == s1["train_loss"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU even when a GPU is present")
    ap.add_argument("--tiny", action="store_true", help="the tiny config and a few steps everywhere (seconds on a CPU)")
    ap.add_argument("--steps", type=int, default=50, help="phi-1-small optimizer steps")
    ap.add_argument("--micro-batch", type=int, default=8, help="phi-1-small sequences per forward pass")
    ap.add_argument("--compile", action="store_true", help="torch.compile the phi-1-small model")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: small_train,phi1_step,generation,zero2")
    a = ap.parse_args(argv)
    if a.cpu: os.environ["CUDA_VISIBLE_DEVICES"] = ""
    t0 = time.time()
    with contextlib.redirect_stdout(io.StringIO()) as noise:   # the Trainer prints its logs: keep stdout for the JSON
        import torch, transformers
        dev = "cuda" if torch.cuda.is_available() else "cpu"
        if dev == "cpu" and not a.tiny: print("warning: full sizes on a CPU take hours; use --tiny", file=sys.stderr)
        tok = _tokenizer()
        res = dict(device=torch.cuda.get_device_name() if dev == "cuda" else f"cpu x{torch.get_num_threads()}",
                   torch=torch.__version__, transformers=transformers.__version__, tiny=a.tiny)
        skip = set(filter(None, a.skip.split(",")))
        for part in (small_train, phi1_step, generation, zero2):
            if part.__name__ not in skip: res[part.__name__] = _section(part, a, tok, dev)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res, default=str))
    sys.stderr.write(noise.getvalue()[-2000:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
