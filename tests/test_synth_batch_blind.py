"""Synth --api batch against the blind tester's breaks (issue 32): a budget over-billed by the server, bad CLI values,
garbage output lines, silent skips, ids resubmitted forever, a stray line after --explain."""
import json, os, signal, subprocess, sys
from pathlib import Path

import pytest

from phi1_nb.core import ConfigError, check_value
from phi1_nb.synth import run_synth, textbook_spec
from phi1_nb.testing import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
KW = dict(backend="openai", model="fake", kinds="textbooks", n_textbooks=6, per_shard=8, mine=False, progress=False,
          api="batch", batch_poll=0.01, max_retries=0, timeout=10)


def server(step=8):
    srv = FakeOpenAIServer(handler=lambda body: "Too short to keep."); srv.batch.step = step; return srv


def over_bill(srv, extra):
    "The server bills `extra` completion tokens more than it answered (an over-billing the ledger cannot foresee)."
    orig = srv._answer
    def answer(ep, body):
        a = orig(ep, body); a["usage"]["completion_tokens"] += extra; a["usage"]["total_tokens"] += extra; return a
    srv._answer = answer


def garble_output(srv, junk=b"this is not json\n"):
    "Every output file the server writes gets `junk` lines and one line without a custom_id."
    orig = srv.batch._finish
    def finish(b, status, rest_code=None):
        orig(b, status, rest_code)
        if fid := b.get("output_file_id"):
            f, data = srv.batch.files[fid]; first = data.splitlines(True)[0]
            unknown = json.dumps({**json.loads(first), "custom_id": "nope"}).encode() + b"\n"
            srv.batch.files[fid] = (f, junk + data + first + unknown + b'{"response": 3}\n')
    srv.batch._finish = finish


def test_budget_holds_when_the_server_over_bills(tmp_path):
    with server() as srv:
        over_bill(srv, 900)
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "budget_tokens": 2500})
        billed = srv.batch.billed["prompt_tokens"] + srv.batch.billed["completion_tokens"]
        assert billed <= 2500, billed
        assert m["exit_status"] == 3 and "budget" in m["exit_message"]
        assert 0 < srv.batch.billed["answers"] < 6


def test_without_a_budget_batches_stay_whole(tmp_path):
    with server() as srv:
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0 and srv.batch.calls["POST /v1/batches"] == 1


@pytest.mark.parametrize("k,v", [("budget_tokens", "abc"), ("batch_wait", float("nan")), ("n_textbooks", -1),
                                 ("batch_max_requests", 0), ("batch_rounds", 0), ("budget_usd", -1.0)])
def test_bad_synth_values_are_one_line_errors(k, v):
    with pytest.raises(ConfigError, match=f"synth.{k}"): check_value("synth", k, v, None)


def test_cli_bad_budget_is_one_line(tmp_path):
    p = subprocess.run([str(ROOT / ".venv" / "bin" / "phi1"), "synth", "--run-dir", str(tmp_path), "--budget_tokens", "abc",
                        "--backend", "openai", "--api", "batch", "--base_url", "http://127.0.0.1:9/v1"],
                       capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode != 0 and "Traceback" not in p.stderr and "budget_tokens" in p.stderr, p.stderr[-800:]


def test_garbage_output_lines_are_counted_and_skipped(tmp_path, capsys):
    with server() as srv:
        garble_output(srv)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m.get("exit_message")
        assert srv.batch.billed["answers"] == 6   # nothing paid twice: every good line was kept
        u = m["usage_this_run"]   # each skipped line counted once, with its reason (no second count of the same lines)
        assert u["batch_skipped_lines"] == 4 and "batch_bad_lines" not in u, u
        log = [json.loads(x) for x in (tmp_path / "synth" / "batches" / "log.jsonl").read_text().splitlines() if x.strip()]
        assert [e["skips"] for e in log if "skips" in e] == [{"garbage": 2, "duplicate_id": 1, "unknown_id": 1}], log
        err = capsys.readouterr().err   # and said where the user looks
        assert "'garbage': 2" in err and "'duplicate_id': 1" in err and "'unknown_id': 1" in err, err


def killed_at(op, fn) -> bool:
    "Run `fn` in a forked child that SIGKILLs itself right after logging step `op`: was it killed?"
    pid = os.fork()
    if pid == 0:
        try: os.environ["PHI1_BATCH_KILL"] = op; fn()
        finally: os._exit(0)
    _, st = os.waitpid(pid, 0)
    return os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL


def test_a_cached_bad_download_never_blocks_a_rerun(tmp_path):
    with server() as srv:
        assert killed_at("downloaded", lambda: run_synth(tmp_path, base_url=srv.base_url, **KW))
        outs = list((tmp_path / "synth" / "batches").glob("*.output.jsonl")); assert outs
        for p in outs: p.write_bytes(b"garbage\n" + p.read_bytes()[:-40])   # (a download stored before validation)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m.get("exit_message")
        assert sorted(srv.batch.answered) == sorted(textbook_spec(1234, i)["id"] for i in range(6))


def test_explain_prints_no_stray_counts_line(monkeypatch, capsys):
    from phi1_nb import cli
    monkeypatch.setattr(cli, "run_stage_cli", lambda cmd, rest: {"explain": {"id": "x"}})
    assert not cli._run("synth", ["--explain", "x"])
    assert "dropped None" not in capsys.readouterr().out


def test_no_second_batch_in_flight_before_the_first_calibrates(tmp_path):
    "Two runs that do not wait (two batches at once): the second sends nothing until the first's cost is known."
    with server(step=1) as srv:
        over_bill(srv, 900)
        for _ in range(2): run_synth(tmp_path, base_url=srv.base_url, **{**KW, "budget_tokens": 2500, "batch_wait": 0})
        assert srv.batch.calls["POST /v1/batches"] == 1
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "budget_tokens": 2500})
        assert srv.batch.billed["prompt_tokens"] + srv.batch.billed["completion_tokens"] <= 2500 and m["exit_status"] == 3


def fault(srv, pred, answer):
    "The fake server answers `answer` (status, headers, body) to the Batch API calls `pred(method, path)` picks."
    orig = srv.batch.handle
    srv.batch.handle = lambda method, path, raw: answer if pred(method, path) else orig(method, path, raw)


@pytest.mark.parametrize("answer", [(500, {}, b'{"error": {"message": "injected 500"}}'), (200, {}, b"<html>garbage</html>"),
                                    (200, {}, b'"just a string"')])
def test_a_failed_or_garbled_create_is_exit_4_one_line(tmp_path, answer):
    with server() as srv:
        fault(srv, lambda m, p: m == "POST" and p.rstrip("/").endswith("/v1/batches"), answer)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 4 and "Batch API call" in m["exit_message"] and srv.batch.billed["answers"] == 0, m["exit_message"]


def test_a_forgotten_batch_is_resubmitted_and_counted(tmp_path):
    seen = []
    def forget(m, p):   # every look at the first batch: 404 (it stays listed: polled 3 times, then given up)
        if m == "GET" and "/v1/batches/" in p and (not seen or p == seen[0]): seen[:1] = [p]; return True
    with server() as srv:
        fault(srv, forget, (404, {}, b'{"error": {"message": "No batch found"}}'))
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert srv.batch.calls["POST /v1/batches"] == 2 and m["usage_this_run"]["batch_lost"] == 1


def test_an_unusable_answer_is_tried_batch_rounds_times_over_all_runs(tmp_path):
    bad = textbook_spec(1234, 0)["id"]
    with server() as srv:
        orig = srv.batch._line
        def line(b, x):
            r = orig(b, x)
            if x["custom_id"] == bad: r["response"]["body"] = {"unexpected": True}
            return r
        srv.batch._line = line
        for _ in range(3): m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_rounds": 2})
        assert srv.batch.answered[bad] == 2 and m["exit_status"] == 4 and "gave up" in m["exit_message"] and "batch_rounds" in m["exit_message"]
        assert "raise synth.batch_rounds and rerun" in m["exit_message"]   # a rerun alone would ask no more
        assert m["usage_this_run"]["batch_gave_up"] == 1


def test_dry_run_pilot_keeps_the_budget_and_prices_what_it_was_billed(tmp_path):
    with server() as srv:
        over_bill(srv, 900)
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "dry_run": True, "dry_run_pilot": 4, "budget_tokens": 1500})
        row = m["dry_run"][0]
        assert 900 < row["pilot_tokens"] <= 1500, row   # the pilot is paid: it stops at the budget
        left = row["requests"] - row["cached"]
        assert left and row["completion_tokens_est"] >= left * 900, row   # the billed completions, not max_tokens
        assert row["tokens_est_95"][1] >= row["tokens_est"] and row["completion_tokens_max"] >= row["completion_tokens_est"]


def test_batches_lost_in_one_run_do_not_use_up_the_next_runs_tries(tmp_path):
    with server() as srv:
        orig = srv.batch.handle
        srv.batch.handle = lambda m, p, raw: ((404, {}, b'{"error": {"message": "No batch found"}}')
                                              if m == "GET" and "/v1/batches/" in p else orig(m, p, raw))
        assert run_synth(tmp_path, base_url=srv.base_url, **KW)["exit_status"] == 4   # every batch forgotten
        srv.batch.handle = orig
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]


def test_an_unreadable_download_is_fetched_again_not_paid_again(tmp_path):
    with server() as srv:
        orig = srv.batch.handle
        srv.batch.handle = lambda m, p, raw: ((200, {}, b"<html>garbage</html>") if p.rstrip("/").endswith("/content")
                                              else orig(m, p, raw))
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 4 and "rerun" in m["exit_message"], m["exit_message"]
        srv.batch.handle = orig
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0 and set(srv.batch.answered.values()) == {1}, (m["exit_message"], srv.batch.answered)


def test_a_dollar_budget_holds_when_the_server_over_bills(tmp_path):
    with server() as srv:
        over_bill(srv, 900)
        price = dict(price_batch_prompt=1.0, price_batch_completion=1.0)   # $ per 1M tokens: $0.0025 = 2500 tokens
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, **price, "budget_usd": 0.0025})
        billed = srv.batch.billed["prompt_tokens"] + srv.batch.billed["completion_tokens"]
        assert 0 < billed <= 2500 and m["exit_status"] == 3, (billed, m["exit_message"])
