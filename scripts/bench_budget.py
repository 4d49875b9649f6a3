"""Issue 25's budget figures against the fake server's own count: a server that bills 5x max_tokens under a hard budget
(and, with --tpm, the most tokens it billed in any 60 s window), and a dry run's interval against the run's spend.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench_budget.py                  # budgets 20,000 @32 and 5,000 @8
    PYTHONPATH=$PWD .venv/bin/python scripts/bench_budget.py --tpm 6000       # + TPM 6,000 (about 2 minutes)
    PYTHONPATH=$PWD .venv/bin/python scripts/bench_budget.py --dry-run        # + bimodal lengths: estimate vs spend"""
import argparse, hashlib, json, sys, tempfile, time
from phi1_nb.llm import LLMClient
from phi1_nb.synth import run_synth
from phi1_nb.testing import FakeOpenAIServer

OVER = lambda body: " ".join(["w"] * 5 * int(body.get("max_tokens") or 16))


def overbill(conc, budget=None, tpm=None, n=400, max_tokens=128):
    with FakeOpenAIServer(handler=OVER, max_tokens_cap=False, latency=0.05) as srv:
        cl = LLMClient(srv.base_url, "fake", concurrency=conc, budget_tokens=budget, tpm=tpm, max_retries=0)
        t0 = time.time(); cl.complete_many([[{"role": "user", "content": f"question {i} " + "x " * 20}] for i in range(n)],
                                           max_tokens=max_tokens); cl.close()
        log = [(e["t"], e.get("prompt_tokens", 0) + e.get("completion_tokens", 0)) for e in srv.log]
    return {"concurrency": conc, "budget": budget, "tpm": tpm, "server_billed": sum(b for _, b in log), "answers": len(log),
            "worst_60s_window": max((sum(b for u, b in log if t <= u < t + 60) for t, _ in log), default=0),
            "seconds": round(time.time() - t0, 1)}


def dry_run_vs_spend(n=1200):
    def bimodal(body):
        return " ".join(["w"] * (4 if hashlib.sha256(json.dumps(body["messages"]).encode()).digest()[0] % 2 else 120))
    with FakeOpenAIServer(handler=bimodal) as srv, tempfile.TemporaryDirectory() as d:
        kw = dict(backend="openai", model="fake", base_url=srv.base_url, kinds="textbooks", n_textbooks=n, max_tokens_textbook=128,
                  mine=False, progress=False, concurrency=8)
        row = run_synth(d, **kw, dry_run=True, dry_run_pilot=8)["dry_run"][0]
        before = srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]
        run_synth(d, **kw)
        spent = srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] - before
    return {k: row[k] for k in ("pilot_requests", "pilot_half_width", "tokens_est", "tokens_est_95")} | {
        "run_spent": spent, "error": round(row["tokens_est"] / spent - 1, 4)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--tpm", type=float); ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()
    for conc, budget in ((32, 20_000), (8, 5_000)): print(json.dumps(overbill(conc, budget)))
    if a.tpm: print(json.dumps(overbill(32, tpm=a.tpm, n=16)))
    if a.dry_run: print(json.dumps(dry_run_vs_spend()), file=sys.stdout)
