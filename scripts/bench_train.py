#!/usr/bin/env python
"""Training throughput and MFU (PaLM formula 6N + 12*L*d*T FLOPs per token) for the named phi-1 configs.

CPU: tokens/s of the `tiny` config through our Trainer setup (`phi1_nb.train.fit`) beside a bare PyTorch loop
(forward, backward, AdamW step) on the same model and batch; and the time per optimizer step of `phi-1-small`
at a short sequence. GPU (when one is present): tokens/s and MFU of `phi-1-small` and `phi-1` in bf16 with
flash attention (sdpa when flash-attn is absent) at sequence 2048, beside the paper's implied ~50% MFU.

    .venv/bin/python scripts/bench_train.py [--steps 20] [--peak-flops 1e11]
"""
import argparse, os, tempfile, time
from pathlib import Path

import torch

from phi1_nb.model import (PackedDataset, attn_implementation, build_model, count_params, detect_peak_flops, flops_per_token,
                           mfu, pack, phi_config, train_tokenizer)
from phi1_nb.train import fit


def bare_loop(model, x, steps, amp_dtype=None):
    "Seconds per optimizer step of forward + backward + AdamW on batch `x` (after 2 warm-up steps)."
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=x.is_cuda)
    model.train()
    for i in range(steps + 2):
        if i == 2:
            if x.is_cuda: torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = model(input_ids=x, labels=x).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True)
    if x.is_cuda: torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def row(name, tok_s, fpt, peak, extra=""):
    print(f"{name:<44} {tok_s:>12,.0f} tok/s  {fpt/1e9:>8.3f} GFLOP/tok  {tok_s*fpt/1e12:>8.3f} TFLOP/s  MFU {mfu(tok_s, fpt, peak):>6.1%}  {extra}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--peak-flops", type=float, default=None, help="device peak FLOP/s (default: detect_peak_flops: A100 312e12, H100/H200 989e12, L40S 362e12; 2e11 on CPU)")
    ap.add_argument("--small-seq", type=int, default=128)
    a = ap.parse_args()
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else f"CPU x{torch.get_num_threads()} threads"
    peak = a.peak_flops or detect_peak_flops(312e12 if cuda else 2e11)
    print(f"device: {name}; peak {peak:.3g} FLOP/s; attention: {attn_implementation()}")

    # tiny: our Trainer setup vs a bare loop, on real packed stdlib code
    files = sorted(Path(os.__file__).parent.glob("*.py"))[:40]
    tok = train_tokenizer((p.read_text() for p in files), vocab_size=4096)
    seq, mb = 128, 16
    with tempfile.TemporaryDirectory() as d:
        pack([{"content": p.read_text()} for p in files], tok, Path(d)/"data", seq_len=seq)
        ds = PackedDataset(Path(d)/"data")
        cfg = phi_config("tiny", tok)
        fpt = flops_per_token(cfg, seq)
        print(f"\n== tiny ({count_params(cfg)/1e6:.2f}M params), seq {seq}, micro batch {mb}, fp32 ==")
        x = torch.stack([ds[i]["input_ids"] for i in range(mb)])
        dt = bare_loop(build_model(cfg), x, a.steps)
        row("bare PyTorch loop (fwd+bwd+AdamW)", mb * seq / dt, fpt, peak, f"{dt*1e3:.0f} ms/step")
        s = fit(build_model(cfg), tok, ds, None, Path(d)/"run", seq_len=seq, max_steps=a.steps + 5, micro_batch_size=mb,
                effective_batch=mb, learning_rate=1e-3, warmup_steps=2, weight_decay=0.1, save_steps=10**6,
                logging_steps=5, peak_flops=peak)
        tps = [h["tokens_per_s"] for h in s["log_history"] if "tokens_per_s" in h][1:]  # skip the first (warm-up) log
        t = sum(tps) / len(tps)
        row("phi1_nb.train.fit (HF Trainer)", t, fpt, peak, f"{mb*seq/t*1e3:.0f} ms/step")

    # phi-1-small at a short sequence (CPU) or both paper models at 2048 (GPU)
    runs = [("phi-1-small", 2048, 8), ("phi-1", 2048, 4)] if cuda else [("phi-1-small", a.small_seq, 1)]
    for mname, T, b in runs:
        cfg = phi_config(mname)
        fpt = flops_per_token(cfg, T)
        print(f"\n== {mname} ({count_params(cfg)/1e6:,.1f}M params), seq {T}, batch {b}, "
              f"{'bf16 autocast' if cuda else 'fp32'}: 6N + 12LdT = {fpt/1e9:.3f} GFLOP/token ==")
        dev = "cuda" if cuda else "cpu"
        model = build_model(cfg).to(dev)
        x = torch.randint(0, cfg.vocab_size, (b, T), device=dev)
        steps = a.steps if cuda else 3
        dt = bare_loop(model, x, steps, amp_dtype=torch.bfloat16 if cuda else None)
        row(f"{mname} fwd+bwd+AdamW", b * T / dt, fpt, peak, f"{dt:.3f} s/step")
        if cuda: print(f"{'paper (8 A100, 770 GPU-h, 51B tokens)':<44} {51e9/(770*3600):>12,.0f} tok/s  {9.1:>8.3f} GFLOP/tok  "
                       f"{51e9/(770*3600)*9.1e9/1e12:>8.3f} TFLOP/s  MFU {mfu(51e9/(770*3600), 9.1e9, 312e12):>6.1%}  (target >= 40%)")
        del model; torch.cuda.empty_cache() if cuda else None


if __name__ == "__main__":
    main()
