"""Live vs batch on the same tiny synth job against the fake server (issue 32): HTTP requests and tokens per mode, as the
server counted them, and the dry run's priced difference for the same job.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench_batch.py [--n 24]

Both modes send the same prompts with the same seeds, so the fake (deterministic) bills the same tokens; what differs is
the number of HTTP calls and the price table (batch: half). Prices are the stage's defaults (gpt-3.5-turbo)."""
import argparse, json, tempfile
from pathlib import Path

from phi1_nb.synth import run_synth
from phi1_nb.testing import FakeOpenAIServer, fake_teacher


def job(mode:str, n:int) -> dict:
    kw = dict(backend="openai", model="fake", kinds="textbooks,exercises", n_textbooks=n, n_exercises=n, per_shard=8,
              mine=False, progress=False, api=mode, batch_poll=0.01, batch_max_requests=max(1, n // 2))
    with tempfile.TemporaryDirectory() as d, FakeOpenAIServer(handler=fake_teacher) as srv:
        srv.batch.step = 8
        m = run_synth(Path(d), base_url=srv.base_url, **kw)
        dry = run_synth(Path(d) / "dry", **{**kw, "base_url": "http://127.0.0.1:9/v1", "dry_run": True, "dry_run_pilot": 0})
        http = sum(srv.batch.calls.values()) + (srv.n_requests if mode == "chat" else 0)
        return {"mode": "live" if mode == "chat" else "batch", "records_kept": m["counts"]["out"],
                "http_calls": http, "calls_by_endpoint": dict(srv.batch.calls) or {"POST /v1/chat/completions": srv.n_requests},
                "answers_billed": srv.billed["answers"], "prompt_tokens": srv.billed["prompt_tokens"],
                "completion_tokens": srv.billed["completion_tokens"], "ledger_usd": m["ledger"]["spent_usd"],
                "dry_run_usd_live": round(sum(r["cost_usd_est"] for r in dry["dry_run"]), 6),
                "dry_run_usd_batch": round(sum(r["cost_usd_est_batch"] for r in dry["dry_run"]), 6)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--n", type=int, default=24); a = ap.parse_args()
    rows = [job("chat", a.n), job("batch", a.n)]
    for r in rows: print(json.dumps(r))
    live, batch = rows
    print(f"same job ({a.n} textbooks + {a.n} exercises): tokens billed live {live['prompt_tokens'] + live['completion_tokens']}, "
          f"batch {batch['prompt_tokens'] + batch['completion_tokens']}; HTTP calls live {live['http_calls']}, batch {batch['http_calls']}; "
          f"spent live ${live['ledger_usd']:.6f}, batch ${batch['ledger_usd']:.6f}; "
          f"dry run for the job: live ${live['dry_run_usd_live']:.6f} vs batch ${live['dry_run_usd_batch']:.6f}")
