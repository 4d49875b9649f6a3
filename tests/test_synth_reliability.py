"""Synth reliability (issue 15): each requested record generated once through outages and reruns, per-request seeds,
a hard budget across runs, rate limits from the first second, requests in flight across shards, both APIs, exit
statuses. Every test runs against phi1_nb.testing.FakeOpenAIServer, which counts its own tokens and fails on demand."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest

from phi1_nb.cli import main
from phi1_nb.core import read_dataset, read_json, read_shard
from phi1_nb.ledger import Ledger
from phi1_nb.llm import LLMCache, LLMClient
from phi1_nb.synth import ShapingChanged, exercise_spec, request_seed, run_synth, textbook_spec
from phi1_nb.testing import FakeOpenAIServer, fake_teacher

from synth_proc import kill_when, request_key, run, start, synth_args
KW = dict(backend="openai", model="fake", per_shard=8, mine=False, progress=False, timeout=5, concurrency=4, max_retries=1)


def billed(srv): return srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


def ids_of(d):
    kept = [r["id"] for r in read_dataset(d)]
    dropped = [r["id"] for f in (Path(d) / "dropped").glob("*") for r in read_shard(f)]
    return kept, dropped


# ---------------------------------------------------------------- exactly once
def test_failed_requests_are_not_final_and_the_rerun_asks_again(tmp_path):
    """An outage mid-run: the run exits 4 saying how many failed and why; the rerun asks for exactly those."""
    outage = lambda i, b: "500" if 6 <= i < 30 else None
    with FakeOpenAIServer(handler=fake_teacher, faults=outage) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "textbooks", "n_textbooks": 24}
        m = run_synth(tmp_path, **kw)
        assert m["exit_status"] == 4 and not m["complete"]
        k = m["kinds"]["textbooks"]
        n_failed = sum(m["failed"].values())
        assert n_failed > 0 and k["missing"] == n_failed and k["final"] == 24 - n_failed
        assert f"{n_failed} requests failed" in m["exit_message"] and "5xx" in m["exit_message"]
        assert "llm_error" not in m["drops"]
        n1 = srv.n_requests
        m2 = run_synth(tmp_path, **kw)
        assert m2["exit_status"] == 0 and m2["kinds"]["textbooks"]["final"] == 24
        assert srv.n_requests - n1 == n_failed                     # exactly the failed ones, nothing else
    kept, dropped = ids_of(tmp_path / "synth" / "textbooks")
    assert sorted(kept + dropped) == sorted(textbook_spec(1234, i)["id"] for i in range(24))


def test_growing_n_generates_the_missing_ids(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "textbooks", "per_shard": 16}
        run_synth(tmp_path, **kw, n_textbooks=10)
        m = run_synth(tmp_path, **kw, n_textbooks=20)
        assert srv.n_requests == 20 and m["kinds"]["textbooks"]["final"] == 20
        kept, dropped = ids_of(tmp_path / "synth" / "textbooks")
        assert sorted(kept + dropped) == [textbook_spec(1234, i)["id"] for i in range(20)]
        m = run_synth(tmp_path, **kw, n_textbooks=12)              # shrinking: the 20 stay on disk, the manifest holds 12
        kept, dropped = ids_of(tmp_path / "synth" / "textbooks")
        assert sorted(kept + dropped) == [textbook_spec(1234, i)["id"] for i in range(12)] and srv.n_requests == 20
        run_synth(tmp_path, **kw, n_textbooks=20)                  # and growing back reuses them: no overlap, no request
        kept, dropped = ids_of(tmp_path / "synth" / "textbooks")
        assert sorted(kept + dropped) == [textbook_spec(1234, i)["id"] for i in range(20)] and srv.n_requests == 20


def test_a_changed_shaping_parameter_is_refused_unless_forced(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "exercises", "n_exercises": 8}
        run_synth(tmp_path, **kw)
        with pytest.raises(ShapingChanged, match=r"temperature: 1\.0 -> 0\.5.*force"):
            run_synth(tmp_path, **kw, temperature=0.5)
        with pytest.raises(ShapingChanged, match="max_tokens"):
            run_synth(tmp_path, **kw, max_tokens_exercise=50)
        n = srv.n_requests
        m = run_synth(tmp_path, **kw, temperature=0.5, force=True)
        assert m["exit_status"] == 0 and srv.n_requests == n + 8
        assert {b["temperature"] for b in srv.bodies[n:]} == {0.5}
        assert run_synth(tmp_path, **kw, temperature=0.5)["exit_status"] == 0 and srv.n_requests == n + 8


# ---------------------------------------------------------------- per-request seeds
def test_each_request_has_its_own_seed_from_run_seed_and_record_id(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        run_synth(tmp_path, **{**KW, "base_url": srv.base_url}, n_textbooks=8, n_exercises=24, seed=7)
        seeds = {b["messages"][-1]["content"]: b["seed"] for b in srv.bodies}
    assert len(srv.bodies) == 32 and len(set(seeds.values())) == 32
    want = {request_seed(7, s["id"]) for s in [textbook_spec(7, i) for i in range(8)] + [exercise_spec(7, i) for i in range(24)]}
    assert set(seeds.values()) == want
    assert request_seed(7, "exercise-7-0000001") != request_seed(8, "exercise-7-0000001")


# ---------------------------------------------------------------- a hard budget
def test_the_budget_holds_across_runs_and_in_the_servers_own_count(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "exercises", "n_exercises": 64, "concurrency": 8}
        ms = [run_synth(tmp_path, **kw, budget_tokens=3000) for _ in range(3)]
        assert all(m["exit_status"] == 3 and m["stopped"].startswith("budget") for m in ms)
        assert billed(srv) <= 3000 < billed(srv) + 600               # spent up to the budget, never beyond
        led = ms[-1]["ledger"]
        assert led["spent_tokens"] == billed(srv) and not led.get("over_bound")   # the ledger agrees with the server
        assert ms[-1]["kinds"]["exercises"]["final"] == srv.billed["answers"]
        m = run_synth(tmp_path, **kw, budget_tokens=None)            # lifted: the rest, and nothing twice
        assert m["exit_status"] == 0 and srv.billed["answers"] == 64


def test_unknown_fates_are_charged_at_their_bound(tmp_path):
    """A request that timed out may have been billed: the ledger charges its whole reservation."""
    with FakeOpenAIServer(faults=["hang"], hang=5) as srv:
        cl = LLMClient(srv.base_url, "fake", timeout=0.3, backoff=0.01, ledger=tmp_path / "l.jsonl", concurrency=1)
        out = cl.complete_many([[{"role": "user", "content": "abc"}]], max_tokens=10); cl.close()
    assert out[0].text == "echo: abc"
    L = Ledger(tmp_path / "l.jsonl")
    assert L.spent["settled_unknown"] == 1 and L.spent["bound_tokens"] == (3 + 4 + 8 + 32) + 10
    assert L.spent_tokens() == L.spent["bound_tokens"] + billed(srv)


def test_dry_run_estimate_is_within_15_percent_of_the_real_spend(tmp_path, capsys):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "concurrency": 8}
        run_synth(tmp_path, **kw, n_textbooks=8, n_exercises=16)           # a pilot
        rows = {r["kind"]: r for r in run_synth(tmp_path, **kw, n_textbooks=64, n_exercises=128, dry_run=True)["dry_run"]}
        assert "calibrated_on=16" in capsys.readouterr().out
        b0 = billed(srv)
        run_synth(tmp_path, **kw, n_textbooks=64, n_exercises=128)
        real = billed(srv) - b0
    est = rows["textbooks"]["tokens_est"] + rows["exercises"]["tokens_est"]
    assert rows["exercises"]["calibrated_on"] == 16 and abs(est - real) / real <= 0.15, (est, real)
    assert rows["textbooks"]["tokens_bound"] + rows["exercises"]["tokens_bound"] >= real


def test_a_dry_run_on_a_fresh_folder_calibrates_on_a_pilot_that_is_paid_once(tmp_path):
    "A fresh folder: the dry run pays a pilot of 8 requests per kind (cached), estimates the rest within 15%, and the run never pays the pilot again."
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "n_textbooks": 48, "n_exercises": 48}
        rows = {r["kind"]: r for r in run_synth(tmp_path, **kw, dry_run=True)["dry_run"]}
        assert [(r["pilot_requests"], r["cached"], r["calibrated_on"]) for r in rows.values()] == [(8, 8, 8)] * 2
        b0 = billed(srv); assert b0 == sum(r["pilot_tokens"] for r in rows.values()) > 0 and srv.n_requests == 16
        m = run_synth(tmp_path, **kw)
        real = billed(srv) - b0
        assert m["exit_status"] == 0 and srv.n_requests == 96              # each request once: the pilot's answers came from the cache
    est = sum(r["tokens_est"] for r in rows.values())
    assert abs(est - real) / real <= 0.15, (est, real)
    with FakeOpenAIServer(handler=fake_teacher) as srv:                    # dry_run_pilot 0: nothing is sent
        run_synth(tmp_path / "b", **{**KW, "base_url": srv.base_url}, dry_run=True, dry_run_pilot=0)
        assert srv.n_requests == 0


# ---------------------------------------------------------------- rate limits
def _max_over_windows(times, weights):
    "max over windows [t_i, t_j] of (sum of weights in it) - rate-free: returns [(span, total)]."
    return [(times[j] - times[i], sum(weights[i:j + 1])) for i in range(len(times)) for j in range(i, len(times))]


def test_rpm_holds_over_every_window_from_the_first_second():
    with FakeOpenAIServer() as srv:
        cl = LLMClient(srv.base_url, "fake", rpm=120, concurrency=8)     # 2 per second
        cl.complete_many([[{"role": "user", "content": f"q{i}"}] for i in range(6)], max_tokens=4)
    t = sorted(srv.times)
    for span, n in _max_over_windows(t, [1] * len(t)):
        assert n <= 2 * (span + 0.15) + 1, (span, n)                    # never a burst beyond one request (150 ms jitter)
    assert t[-1] - t[0] >= 5 / 2 - 0.15


def test_tpm_holds_over_every_window_in_the_servers_own_count():
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        cl = LLMClient(srv.base_url, "fake", tpm=60_000, concurrency=8)  # 1,000 tokens per second
        msgs = [[{"role": "user", "content": f"Write about topic {i}."}] for i in range(8)]
        cl.complete_many(msgs, max_tokens=60)
    log = sorted(srv.log, key=lambda e: e["t"])
    t, tok = [e["t"] for e in log], [e["total_tokens"] for e in log]
    biggest = max(tok)
    for span, n in _max_over_windows(t, tok):
        assert n <= 1000 * span + biggest + 1e-6, (span, n)


@pytest.mark.parametrize("code", ["429", "503"])
def test_retry_after_is_honoured_on_429_and_503(code):
    with FakeOpenAIServer(faults=[code], retry_after=0.6) as srv:
        cl = LLMClient(srv.base_url, "fake", backoff=0.001, concurrency=1, max_retries=2)
        out = cl.complete_many([[{"role": "user", "content": "q"}]], max_tokens=4)
    assert out[0].text == "echo: q" and srv.n_requests == 2
    assert srv.times[1] - srv.times[0] >= 0.55                          # waited as told, not the 1 ms backoff


# ---------------------------------------------------------------- throughput and APIs
def test_concurrency_is_kept_in_flight_across_shards(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher, latency=0.1) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "kinds": "textbooks", "per_shard": 4, "concurrency": 12},
                      n_textbooks=48)
    assert m["exit_status"] == 0 and srv.max_in_flight == 12            # three times per_shard in flight at once


def test_completions_api_for_a_base_model_and_a_clear_error_when_every_request_is_rejected(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher, chat_template=False) as srv:   # a checkpoint without a chat template
        kw = {**KW, "base_url": srv.base_url, "n_textbooks": 8, "n_exercises": 8, "max_retries": 0}
        m = run_synth(tmp_path / "chat", **kw)
        assert m["exit_status"] == 4 and "chat template" in m["exit_message"] and m["counts"]["out"] == 0   # a 500 (issue 25)
        assert srv.n_requests < 16 + 4                                 # it stopped asking (reject_after / all failed)
        m = run_synth(tmp_path / "base", **kw, api="completions")
        assert m["exit_status"] == 0 and m["kinds"]["exercises"]["final"] == 8 and m["counts"]["textbooks"] > 0
        assert all("prompt" in b and "messages" not in b for b in srv.bodies[-16:])
    recs = list(read_dataset(tmp_path / "base" / "synth" / "exercises"))
    assert recs and all(r["content"].lstrip().startswith(("#", "def")) for r in recs)


def test_the_command_line_exit_statuses(tmp_path, capsys):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        base = ["synth", "--backend", "openai", "--model", "fake", "--base_url", srv.base_url, "--kinds", "exercises",
                "--mine", "false", "--max_retries", "0", "--n_exercises", "16", "--per_shard", "8"]
        assert main(base + ["--run-dir", str(tmp_path / "a"), "--budget_tokens", "1500"]) == 3
        assert "budget" in capsys.readouterr().err
        srv.fail("401")
        assert main(base + ["--run-dir", str(tmp_path / "b")]) == 5
        assert "rejected" in capsys.readouterr().err
        srv.fail("500", n=3)
        assert main(base + ["--run-dir", str(tmp_path / "c")]) == 4
        assert "3 requests failed" in capsys.readouterr().err
        assert main(base + ["--run-dir", str(tmp_path / "c")]) == 0
        assert main(base + ["--run-dir", str(tmp_path / "c"), "--temperature", "0.3"]) == 2
        assert "force" in capsys.readouterr().err


# ---------------------------------------------------------------- kill -9
RUN = synth_args(kinds="textbooks", n_textbooks=96, per_shard=8, concurrency=8)


def test_kill_9_pays_again_at_most_the_requests_in_flight(tmp_path):
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(handler=fake_teacher, latency=0.1) as srv:
        kill_when(start(RUN, run_dir, srv.base_url), lambda: srv.n_requests >= 40)
        time.sleep(0.3)                                                # let the server finish what it had
        n1, received = srv.n_requests, list(srv.bodies)
        cached = set(LLMCache(run_dir / "synth" / "cache").keys())
        assert 40 <= n1 < 96, "the kill must land mid-run"
        assert run(RUN, run_dir, srv.base_url).returncode == 0
        second = srv.bodies[n1:]
    key = request_key
    before = {key(b) for b in received}
    paid_again = {key(b) for b in second} & before
    assert paid_again == before - cached                               # exactly the ones whose answer never reached the cache
    assert len(paid_again) <= 8                                        # at most the requests in flight (concurrency)
    assert len(second) == 96 - len(cached)                             # the rerun asked for every missing one, once
    kept, dropped = ids_of(run_dir / "synth" / "textbooks")
    assert sorted(kept + dropped) == [textbook_spec(1234, i)["id"] for i in range(96)]
    led = Ledger(run_dir / "synth" / "ledger.jsonl")
    assert led.spent["settled_lost"] <= 8                                # reservations of the killed run: counted as spent
    assert n1 + len(second) <= led.spent["requests"] <= n1 + len(second) + 8   # (some were reserved, never sent)


def test_two_runs_on_one_folder_are_refused(tmp_path):
    import fcntl
    (tmp_path / "synth").mkdir()
    with open(tmp_path / "synth" / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)                  # another run holds the folder
        with pytest.raises(ValueError, match="another synth run"):
            run_synth(tmp_path, **{**KW, "base_url": "http://127.0.0.1:9/v1"}, n_textbooks=2, n_exercises=0)


def test_the_console_script_exit_loses_no_write(tmp_path):
    "`phi1` (cli.console) freezes the GC before the interpreter exits: every answer, ledger entry and shard is on disk after it."
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        r = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.cli import console; sys.exit(console())", "synth",
                            "--run-dir", str(tmp_path), "--backend", "openai", "--model", "fake", "--base_url", srv.base_url,
                            "--kinds", "textbooks", "--n_textbooks", "40", "--per_shard", "8", "--mine", "false"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert srv.n_requests == 40
    assert len(LLMCache(tmp_path / "synth" / "cache")) == 40
    led = Ledger(tmp_path / "synth" / "ledger.jsonl")
    assert led.spent["requests"] == 40 and not led.open and led.torn == 0 and led.spent_tokens() == billed(srv)
    kept, dropped = ids_of(tmp_path / "synth" / "textbooks")
    assert sorted(kept + dropped) == [textbook_spec(1234, i)["id"] for i in range(40)]
    assert read_json(tmp_path / "synth" / "manifest.json")["exit_status"] == 0


# ---------------------------------------------------------------- issue 25: what a server bills, and what a failure is
OVER = lambda body: " ".join(["w"] * 5 * int(body.get("max_tokens") or 16))   # bills 5x max_tokens


@pytest.mark.parametrize("conc,budget", [(32, 20_000), (8, 5_000)])
def test_a_server_billing_5x_max_tokens_stays_within_the_budget_in_its_own_count(conc, budget):
    "The first wave went out at the bound before any answer showed the overrun: 28,098 and 6,690 billed (+40%, +34%)."
    with FakeOpenAIServer(handler=OVER, max_tokens_cap=False, latency=0.05) as srv:
        cl = LLMClient(srv.base_url, "fake", concurrency=conc, budget_tokens=budget, max_retries=0)
        out = cl.complete_many([[{"role": "user", "content": f"question {i} " + "x " * 20}] for i in range(400)], max_tokens=128)
        cl.close()
    assert billed(srv) <= budget and billed(srv) > 0.8 * budget, (billed(srv), budget)
    assert sum(not isinstance(o, Exception) for o in out) == srv.billed["answers"]


def test_tpm_holds_when_the_server_bills_past_max_tokens():
    "Requests charged at the bound before the overrun was seen, and never charged the difference, broke --tpm."
    tpm = 120_000   # 2,000 tokens a second: each answer bills ~670, so ~3 a second
    with FakeOpenAIServer(handler=OVER, max_tokens_cap=False, latency=0.02) as srv:
        cl = LLMClient(srv.base_url, "fake", concurrency=32, tpm=tpm, max_retries=0)
        cl.complete_many([[{"role": "user", "content": f"q {i} " + "x " * 20}] for i in range(24)], max_tokens=128); cl.close()
    log = [(e["t"], e.get("prompt_tokens", 0) + e.get("completion_tokens", 0)) for e in srv.log]
    one = max(b for _, b in log)
    for w in (2.0, 5.0):   # every window of w seconds holds at most its share, plus the burst of one request
        worst = max(sum(b for u, b in log if t <= u < t + w) for t, _ in log)
        assert worst <= tpm / 60 * w + one + 50, (w, worst)


def test_timeouts_exit_4_and_count_what_was_paid_again(tmp_path):
    "A server slower than --timeout: every retry may pay again (billed_again), and it is no rejected key (was exit 5)."
    with FakeOpenAIServer(handler=fake_teacher, faults=lambda i, b: "slow", slow=1.5) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "kinds": "exercises", "n_exercises": 4, "timeout": 0.5,
                                   "max_retries": 1})
    assert m["exit_status"] == 4 and "check the API key" not in m["exit_message"], m["exit_message"]
    assert m["billed_again"] >= 1 and "billed twice" in m["exit_message"]


def test_a_500_outage_from_the_first_request_exits_4(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        srv.fail("500")
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "kinds": "exercises", "n_exercises": 8, "max_retries": 0})
    assert m["exit_status"] == 4 and "check the API key" not in m["exit_message"], m["exit_message"]


def test_a_budget_stop_counts_the_missing_records_of_every_kind(tmp_path):
    "A kind the stop never reached was left out of the count (30 missing said, 130 missing)."
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        m = run_synth(tmp_path, **{**KW, "base_url": srv.base_url, "n_textbooks": 16, "n_exercises": 24}, budget_tokens=1500)
    assert m["stopped"] and "exercises" not in m["kinds"] and m["not_started"] == {"exercises": 24}
    assert m["missing"] == 24 + m["kinds"]["textbooks"]["missing"] and f"{m['missing']} records missing" in m["exit_message"]


def test_shrinking_n_removes_the_shards_of_ids_no_longer_requested(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "textbooks"}
        run_synth(tmp_path, **kw, n_textbooks=24)
        m = run_synth(tmp_path, **kw, n_textbooks=12)
        d = tmp_path / "synth" / "textbooks"
        on_disk = sum(1 for f in (d / "shards").glob("*") for _ in read_shard(f)) if (d / "shards").exists() else None
        listed = {s["path"] for s in m["kinds"] and read_json(d / "manifest.json")["shards"]}
        assert {str(p.relative_to(d)) for p in d.rglob("*.jsonl*") if "dropped" not in str(p)} == listed
        assert len({p.stem for p in (d / "parts").glob("synthetic-*.json")}) == len(read_json(d / "manifest.json")["tasks"])


def test_the_dry_run_grows_its_pilot_until_the_interval_is_tight_and_the_run_falls_inside(tmp_path):
    "Bimodal answer lengths: an 8-request pilot missed by +20.8% and carried no error bar."
    import hashlib
    def bimodal(body):
        h = hashlib.sha256(json.dumps(body["messages"]).encode()).digest()[0]
        return " ".join(["w"] * (4 if h % 2 else 120))
    with FakeOpenAIServer(handler=bimodal) as srv:
        kw = {**KW, "base_url": srv.base_url, "kinds": "textbooks", "n_textbooks": 1200, "max_tokens_textbook": 128}
        row = run_synth(tmp_path, **kw, dry_run=True, dry_run_pilot=8)["dry_run"][0]
        before = billed(srv)
        assert row["pilot_requests"] > 8 and row["pilot_half_width"] <= 0.10, row   # it grew the pilot
        run_synth(tmp_path, **kw)
        spent = billed(srv) - before
    lo, hi = row["tokens_est_95"]
    assert lo <= spent <= hi and abs(row["tokens_est"] - spent) / spent <= 0.15, (row, spent)
