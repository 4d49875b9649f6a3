"""Synth through the OpenAI Batch API (issue 32): a kill -9 at each step of a batch's life then a rerun pays nothing twice
and answers every id once; expired and half-failed batches resubmit exactly the missing ids; a budget across batches
holds on the fake server's own count; request bodies match the openai SDK's types; every record's lineage."""
import json, os, random, signal, subprocess, time
from pathlib import Path

import pytest

from phi1_nb.batch import BatchLog, plan_batches, progress
from phi1_nb.core import read_dataset, read_shard
from phi1_nb.ledger import Ledger
from phi1_nb.lineage import cut, explain
from phi1_nb.synth import run_synth, textbook_spec
from phi1_nb.testing import FakeOpenAIServer, fake_teacher

from synth_proc import ROOT, kill_when, run, start, synth_args
KW = dict(backend="openai", model="fake", kinds="textbooks", n_textbooks=10, per_shard=8, mine=False, progress=False,
          api="batch", batch_poll=0.01, batch_max_requests=4, max_retries=1, timeout=10)
IDS = [textbook_spec(1234, i)["id"] for i in range(10)]


def server(step=3, handler=lambda body: "Too short to keep."):
    "The fake server; by default every answer is dropped at once (too_short): these tests are about paying, not the gate."
    srv = FakeOpenAIServer(handler=handler); srv.batch.step = step; return srv


def spent(run_dir):
    L = Ledger(Path(run_dir) / "synth" / "ledger.jsonl"); s = L.summary(); L.close(); return s


def all_ids(run_dir):
    d = Path(run_dir) / "synth" / "textbooks"
    return sorted([r["id"] for r in read_dataset(d)] + [r["id"] for f in (d / "dropped").glob("*") for r in read_shard(f)])


def assert_once(srv, run_dir):
    "The server's own books: each id answered (billed) exactly once, and the ledger charged exactly what it billed."
    assert sorted(srv.batch.answered) == IDS and set(srv.batch.answered.values()) == {1}
    s = spent(run_dir)
    assert s["in_flight"] == 0 and s["spent_tokens"] == srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]
    assert all_ids(run_dir) == IDS


KILL_POINTS = ["planned", "reserve_returned", "reserved", "upload_returned", "uploaded", "create_returned", "created", "polled", "downloaded",
               "mid_settle", "settled"]


def killed_at(op, fn) -> bool:
    "Run `fn` in a forked child with `PHI1_BATCH_KILL=op` (it kills itself with SIGKILL right after that step): killed?"
    pid = os.fork()
    if pid == 0:   # (the child has everything imported already: a kill test costs a run, not an interpreter start)
        try:
            os.environ["PHI1_BATCH_KILL"] = op; fn()
        finally: os._exit(0)
    _, st = os.waitpid(pid, 0)
    return os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL


@pytest.mark.parametrize("op", KILL_POINTS)
def test_kill_at_each_step_then_rerun_pays_nothing_twice(tmp_path, op):
    with server() as srv:
        assert killed_at(op, lambda: run_synth(tmp_path, base_url=srv.base_url, **KW)), f"never reached {op}"
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert_once(srv, tmp_path)
        if op in ("create_returned", "created", "polled"):   # the batch the killed run created was polled, not sent again
            assert srv.batch.calls["POST /v1/batches"] == 3
        n = srv.n_requests
        assert run_synth(tmp_path, base_url=srv.base_url, **KW)["exit_status"] == 0 and srv.n_requests == n


def test_kills_in_a_row_each_at_another_step(tmp_path):
    "One job killed again and again, each time at a later step, then run to the end (each rerun resumes the last)."
    with server(step=1) as srv:
        for op in ["reserved", "create_returned", "polled", "downloaded", "mid_settle", "upload_returned", "settled"]:
            killed_at(op, lambda: run_synth(tmp_path, base_url=srv.base_url, **KW))
        assert run_synth(tmp_path, base_url=srv.base_url, **KW)["exit_status"] == 0
        assert_once(srv, tmp_path)


def kill_at_random_steps(run_dir, srv, rng, times:int, most:int):
    "`times` runs of the CLI in a subprocess, each killed -9 after a random number (1..`most`) of new log lines."
    args = synth_args(**{k: v for k, v in KW.items() if k not in ("backend", "model", "mine", "progress")})
    log = run_dir / "synth" / "batches" / "log.jsonl"
    for _ in range(times):
        n0, k = (log.read_text().count("\n{") if log.exists() else 0), rng.randint(1, most)
        p = start(args, run_dir, srv.base_url)
        try: kill_when(p, lambda: log.exists() and log.read_text().count("\n{") >= n0 + k, timeout=60, poll=0.002)
        except AssertionError: pass   # it finished first: fine


def test_kill_at_random_moments(tmp_path):
    "Two kills -9 from outside at random moments of one job (whatever step each lands on), then a run to the end."
    rng = random.Random(32)
    with server(step=1) as srv:
        kill_at_random_steps(tmp_path, srv, rng, times=2, most=12)
        assert run_synth(tmp_path, base_url=srv.base_url, **KW)["exit_status"] == 0
        assert_once(srv, tmp_path)


@pytest.mark.parametrize("fault", ["expire_half", "fail_half", "fail"])
def test_a_broken_batch_resubmits_exactly_the_missing_ids(tmp_path, fault):
    with server() as srv:
        srv.batch.faults = [fault]
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_rounds": 1})   # one try per id in this run
        assert m["exit_status"] == 4 and "batch_" in m["exit_message"] or fault == "fail"
        first = dict(srv.batch.answered)
        log = BatchLog(tmp_path / "synth" / "batches" / "log.jsonl"); subs = list(log.subs.values()); log.close()
        broken = subs[0]
        assert broken["status"] == {"expire_half": "expired", "fail_half": "failed", "fail": "failed"}[fault]
        missing = sorted(set(broken["ids"]) - set(first))
        assert len(missing) == (len(broken["ids"]) if fault == "fail" else len(broken["ids"]) - len(broken["ids"]) // 2)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0
        log = BatchLog(tmp_path / "synth" / "batches" / "log.jsonl"); new = list(log.subs.values())[len(subs):]; log.close()
        assert sorted(i for s in new for i in s["ids"]) == missing           # exactly the missing ids, nothing else
        assert_once(srv, tmp_path)


def test_same_run_resubmits_errors_inside_a_completed_batch(tmp_path):
    with server() as srv:
        srv.faults = lambda i, b: "500" if i in (1, 5) else None   # two requests fail inside completed batches
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0 and srv.outcomes["500"] == 2
        assert_once(srv, tmp_path)


def test_a_cancelled_batch_is_collected_and_its_rest_resubmitted(tmp_path):
    import openai
    with server(step=2) as srv:
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_wait": 0})   # submits, does not wait
        assert m["exit_status"] == 4 and "rerun to collect" in m["exit_message"]
        oc = openai.OpenAI(base_url=srv.base_url, api_key="x")
        bid = next(iter(srv.batch.batches))
        oc.batches.retrieve(bid)   # in progress: 2 of its 4 answered
        assert oc.batches.cancel(bid).status == "cancelling"
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0 and srv.batch.batches[bid]["status"] == "cancelled"
        assert_once(srv, tmp_path)


@pytest.mark.parametrize("budget", [dict(budget_tokens=1200), dict(budget_usd=0.0003)])
def test_budget_across_batches_holds_on_the_servers_count(tmp_path, budget):
    with server() as srv:
        for _ in range(2):   # a rerun under the same budget spends nothing more than the budget either
            m = run_synth(tmp_path, base_url=srv.base_url, **KW, **budget)
            assert m["exit_status"] == 3 and m["missing"] > 0
            if "budget_tokens" in budget:
                assert srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] <= budget["budget_tokens"]
            else:
                usd = (srv.billed["prompt_tokens"] * 0.25 + srv.billed["completion_tokens"] * 0.75) / 1e6   # the batch price
                assert usd <= budget["budget_usd"]
        assert 0 < len(srv.batch.answered) < 10 and set(srv.batch.answered.values()) == {1}
        assert srv.batch.calls["POST /v1/batches"] >= 2                      # the budget spans batches


def test_requests_match_the_openai_sdks_types(tmp_path):
    pydantic = pytest.importorskip("pydantic")
    from openai.types import BatchCreateParams
    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
    with server() as srv:
        run_synth(tmp_path, base_url=srv.base_url, **KW)
        for b in srv.batch.batches.values():
            pydantic.TypeAdapter(BatchCreateParams).validate_python(b["_body"])
        bodies = [json.loads(x) for f in (tmp_path / "synth" / "batches").glob("textbooks-*[0-9].jsonl")
                  for x in f.read_text().splitlines()]
        assert len(bodies) == 10 and {x["url"] for x in bodies} == {"/v1/chat/completions"}
        for x in bodies:
            pydantic.TypeAdapter(CompletionCreateParamsNonStreaming).validate_python(x["body"])
            assert set(x) == {"custom_id", "method", "url", "body"}


def test_limits_split_files_and_progress_has_an_eta():
    lines = [(str(i), b"x" * 100, 10) for i in range(10)]
    assert [len(c) for c in plan_batches(lines, dict(max_requests=4, max_bytes=10**9, max_enqueued_tokens=10**9))] == [4, 4, 2]
    assert [len(c) for c in plan_batches(lines, dict(max_requests=99, max_bytes=350, max_enqueued_tokens=10**9))] == [3, 3, 3, 1]
    assert [len(c) for c in plan_batches(lines, dict(max_requests=99, max_bytes=10**9, max_enqueued_tokens=50))] == [5, 5]
    subs = [{"ops": ["created", "polled"], "n": 10, "status": "in_progress", "counts": {"completed": 4, "failed": 1}, "t_created": 100.0},
            {"ops": ["settled"], "n": 10, "t_created": 100.0}]
    p = progress(subs, now=130.0)
    assert p["answered_or_failed"] == 15 and p["requests"] == 20 and p["eta_s"] == 10   # 15 in 30 s: 5 more in 10 s


def test_explain_a_kept_and_a_dropped_record(tmp_path, capsys):
    from phi1_nb.cli import main
    with server(handler=fake_teacher) as srv:
        run_synth(tmp_path, base_url=srv.base_url, **{**KW, "n_textbooks": 6})
    with FakeOpenAIServer(handler=lambda b: "Too short to teach anything.") as bad:   # every answer dropped (too_short)
        run_synth(tmp_path / "live", base_url=bad.base_url, **{**KW, "n_textbooks": 3, "api": "chat"})
    kept = next(iter(read_dataset(tmp_path / "synth" / "textbooks")))
    c = explain(tmp_path, kept["id"], echo=False)
    assert c["verdict"] == "kept" and c["mode"] == "batch" and c["batch_id"].startswith("batch_") and c["answer_chars"] > 0
    assert c["spec"]["topic"] == kept["topic"] and c["params"]["seed"] > 0 and c["shard"].endswith(".jsonl.zst")
    srv2 = tmp_path / "live"
    dropped = [r for f in (srv2 / "synth" / "textbooks" / "dropped").glob("*") for r in read_shard(f)]
    assert len(dropped) == 3
    d = explain(srv2, dropped[0]["id"], echo=False)
    assert d["verdict"] == dropped[0]["drop_reason"] and d["mode"] == "live" and d["batch_id"] is None
    assert main(["synth", "--run-dir", str(tmp_path), "--explain", kept["id"]]) == 0
    assert "via batch batch_" in capsys.readouterr().out
    assert main(["synth", "--run-dir", str(tmp_path), "--explain", "textbook-1-9999999"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no synthetic record 'textbook-1-9999999'" in err[0]
    by = cut(tmp_path, "mode")
    assert set(by) == {"batch"} and by["batch"]["kept"] + by["batch"]["dropped"] == 6
    assert by["batch"]["diversity"]["records"] == by["batch"]["kept"] > 0          # the diversity report, per value
    assert sum(v["kept"] + v["dropped"] for v in cut(tmp_path, "topic").values()) == 6


def test_dry_run_prices_both_modes_and_its_pilot_goes_live(tmp_path):
    with server(handler=fake_teacher) as srv:
        rows = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "dry_run": True, "dry_run_pilot": 2})["dry_run"]
        assert srv.n_requests == 2 and not srv.batch.calls            # two live requests, no batch submitted
    r = rows[0]
    assert r["pilot_requests"] == 2 and 0 < r["cost_usd_est_batch"] < r["cost_usd_est"]
    assert r["saving_usd_est"] == pytest.approx(r["cost_usd_est"] - r["cost_usd_est_batch"], abs=1e-4)


def test_a_server_without_the_batch_api_is_one_clear_line(tmp_path, capsys):
    from phi1_nb.cli import main
    with server() as srv:
        srv.batch.handle = lambda method, path, raw: (404, {}, b'{"error": {"message": "Not Found"}}')   # e.g. vLLM
        rc = main(["synth", "--run-dir", str(tmp_path), "--backend", "openai", "--model", "fake", "--base_url", srv.base_url,
                   "--api", "batch", "--kinds", "textbooks", "--n_textbooks", "3", "--mine", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 5 and len(err) == 1 and "/v1/batches" in err[0] and "api: chat" in err[0]
