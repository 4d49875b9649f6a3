"""Attacks on the Batch API mode (issue 32): bad server output (garbage lines, a batch the server forgot, 5xx that never
ends), a server clock behind ours while a kill left a batch created but not logged, a log line torn by a kill."""
import json, random, re
from pathlib import Path

import pytest

from phi1_nb.synth import run_synth

from test_synth_batch import IDS, KW, all_ids, assert_once, kill_at_random_steps, killed_at, server, spent


def tamper(srv, fn):
    "Serve every batch output file through `fn(lines) -> lines` (the server billed what it answered, whatever it says)."
    h = srv.batch.handle
    def handle(method, path, raw):
        code, hd, body = h(method, path, raw)
        m = re.search(r"/v1/files/([\w-]+)/content$", path.split("?")[0])
        if m and code == 200 and srv.batch.files[m.group(1)][0]["filename"].endswith("_output.jsonl"):
            body = b"".join(x + b"\n" for x in fn(body.splitlines()))
        return code, hd, body
    srv.batch.handle = handle


GARBAGE = [b"not json at all", b"\xff\xfe{", b"[1, 2]", b'"a string"', b'{"custom_id": 7}', b'{"custom_id": "x", "response": "oops"}',
           b'{"id": "r", "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "x"}}]}}}']


@pytest.mark.parametrize("seed", range(4))
def test_garbage_output_lines_are_skipped_and_their_ids_resent(tmp_path, seed):
    "Garbage lines in an output file (random kinds, at random places, some in place of real answers): counted skips."
    rng = random.Random(seed)
    def fn(lines):
        out = list(lines)
        for _ in range(rng.randint(1, 3)):
            g = rng.choice(GARBAGE)
            if out and rng.random() < 0.5: out[rng.randrange(len(out))] = g   # a real answer garbled
            else: out.insert(rng.randint(0, len(out)), g)
        return out
    with server() as srv:
        tamper(srv, fn)
        for _ in range(4):   # a file with not one readable answer is fetched again by up to 2 reruns (exit 4 each)
            m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_rounds": 10})
            if m["exit_status"] != 4 or "not JSONL" not in m["exit_message"]: break
        assert m["exit_status"] == 0, m["exit_message"]
        assert all_ids(tmp_path) == IDS
        s = spent(tmp_path)   # what the server billed is on the books (a garbled answer at its bound: more, never less)
        assert s["in_flight"] == 0 and s["spent_tokens"] >= srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


def test_usage_that_is_not_a_number_is_not_a_traceback(tmp_path):
    def fn(lines):
        xs = [json.loads(x) for x in lines]
        xs[0]["response"]["body"]["usage"] = {"prompt_tokens": "many", "completion_tokens": -5}
        return [json.dumps(x).encode() for x in xs]
    with server() as srv:
        tamper(srv, fn)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert all_ids(tmp_path) == IDS and set(srv.batch.answered.values()) == {1}
        s = spent(tmp_path)
        assert s["in_flight"] == 0 and s["spent_tokens"] >= srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


def test_duplicate_and_unknown_custom_ids_count_once(tmp_path):
    "An output line repeated and one for an id never asked: each record once, the usage of the repeat not booked twice."
    def fn(lines):
        xs = [json.loads(x) for x in lines]
        alien = json.loads(json.dumps(xs[0])); alien["custom_id"] = "textbook-1234-999"
        alien["response"]["body"]["usage"] = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        return lines + [lines[0], json.dumps(alien).encode()]
    with server() as srv:
        tamper(srv, fn)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert sorted(srv.batch.answered) == IDS and set(srv.batch.answered.values()) == {1} and all_ids(tmp_path) == IDS
        s, n = spent(tmp_path), srv.batch.calls["POST /v1/batches"]   # the alien line: billed at its usage, per batch
        assert s["in_flight"] == 0 and s["spent_tokens"] == srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] + 10 * n
        assert m["usage_this_run"]["batch_requests"] == 10


def test_a_batch_the_server_forgot_is_one_clear_outcome_not_a_loop(tmp_path):
    "The server no longer knows a logged batch (404 on it, the Batch API still served): its ids are resent, its"
    " reservation charged at its bound (its fate is unknown), and the run ends; nothing is stuck forever."
    with server() as srv:
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_wait": 0})
        assert m["exit_status"] == 4
        forgot = next(iter(srv.batch.batches)); del srv.batch.batches[forgot]
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert all_ids(tmp_path) == IDS
        s = spent(tmp_path)
        assert s["in_flight"] == 0 and s["settled_unknown"] == 1
        assert run_synth(tmp_path, base_url=srv.base_url, **KW)["exit_status"] == 0


@pytest.mark.parametrize("endpoint", ["POST /v1/files", "POST /v1/batches", "GET /v1/batches/{id}", "GET /v1/files/{id}/content"])
def test_5xx_that_never_ends_is_one_clear_line(tmp_path, capsys, endpoint):
    from phi1_nb.cli import main
    with server() as srv:
        h = srv.batch.handle
        def handle(method, path, raw):
            p = re.sub(r"(file|batch)_[0-9]+", "{id}", path.split("?")[0])
            if f"{method} {p}".endswith(endpoint): return 503, {}, b'{"error": {"message": "overloaded"}}'
            return h(method, path, raw)
        srv.batch.handle = handle
        argv = ["synth", "--run-dir", str(tmp_path), "--backend", "openai", "--model", "fake", "--base_url", srv.base_url,
                "--api", "batch", "--kinds", "textbooks", "--n_textbooks", "3", "--mine", "false", "--max_retries", "0",
                "--batch_poll", "0.01"]
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 4 and "503" in err[0] and not any("Traceback" in e for e in err), err   # exit 4, as a live 5xx
        srv.batch.handle = h   # the server recovers: the rerun ends the job, each id paid once
        assert main(argv) == 0 and set(srv.batch.answered.values()) == {1} and len(srv.batch.answered) == 3


@pytest.mark.parametrize("skew", [-600, -150, 3600])
def test_kill_after_create_with_a_skewed_server_clock_pays_once(tmp_path, monkeypatch, skew):
    "A kill between creating a batch and logging it, then someone else's batch on the account, on a server whose clock"
    " is off ours: the rerun still finds its own batch (never creates a second one for the same ids)."
    import time as _t
    import openai
    from phi1_nb import fake_batch
    class Clock:
        def time(self): return _t.time() + skew
        def __getattr__(self, k): return getattr(_t, k)
    monkeypatch.setattr(fake_batch, "time", Clock())
    with server() as srv:
        assert killed_at("create_returned", lambda: run_synth(tmp_path, base_url=srv.base_url, **KW))
        oc = openai.OpenAI(base_url=srv.base_url, api_key="x")   # another job on the same account
        f = oc.files.create(file=("x.jsonl", b'{"custom_id": "other", "method": "POST", "url": "/v1/chat/completions", '
                                             b'"body": {"model": "fake", "messages": []}}\n'), purpose="batch")
        oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        srv.batch.batches[max(srv.batch.batches)]["created_at"] += 1   # (created after ours)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert srv.batch.calls["POST /v1/batches"] == 4   # ours: 3, the other job's: 1
        assert_once(srv, tmp_path)


OPS = ["planned", "reserved", "uploaded", "created", "polled", "downloaded", "settled"]


@pytest.mark.parametrize("seed", range(5))
def test_log_line_torn_by_a_kill_then_rerun_pays_once(tmp_path, seed):
    "A kill after a random step whose log line is then torn at a random byte (a kill during the write): the rerun"
    " pays nothing twice."
    rng = random.Random(seed)
    op = rng.choice(OPS)
    with server() as srv:
        assert killed_at(op, lambda: run_synth(tmp_path, base_url=srv.base_url, **KW)), op
        log = tmp_path / "synth" / "batches" / "log.jsonl"
        data = log.read_bytes(); start = data.rstrip(b"\n").rfind(b"\n") + 1
        log.write_bytes(data[:rng.randint(start + 1, len(data) - 2)])   # the last line, cut short
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, (op, m["exit_message"])
        assert_once(srv, tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_answers_billed_but_missing_from_the_output_are_on_the_books(tmp_path, seed):
    "The server counts a request completed (and bills it) but its line is missing from the output file: the id is"
    " resent, and the books still hold at least what the server billed (the lost answer at its bound)."
    rng, served = random.Random(seed), []
    def fn(lines):   # (the first two output files only: the resent ids are then answered)
        out = list(lines); served.append(1)
        for _ in range(rng.randint(1, min(2, len(out))) if len(served) <= 2 else 0): out.pop(rng.randrange(len(out)))
        return out
    with server() as srv:
        tamper(srv, fn)
        m = run_synth(tmp_path, base_url=srv.base_url, **{**KW, "batch_rounds": 10})
        assert m["exit_status"] == 0, m["exit_message"]
        assert all_ids(tmp_path) == IDS
        s = spent(tmp_path)
        assert s["in_flight"] == 0 and s["spent_tokens"] >= srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


from hypothesis import given, settings, strategies as st
from phi1_nb.batch import plan_batches


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 40)), max_size=40),
       st.integers(1, 8), st.integers(1, 200), st.integers(1, 150))
def test_plan_batches_keeps_order_and_every_limit(sizes, max_requests, max_bytes, max_tokens):
    "Every line in exactly one batch, in order; each batch within every limit unless it is one line over a limit alone."
    lines = [(str(i), b"x" * nb, tok) for i, (nb, tok) in enumerate(sizes)]
    lim = dict(max_requests=max_requests, max_bytes=max_bytes, max_enqueued_tokens=max_tokens)
    plan = plan_batches(lines, lim)
    assert [i for c in plan for i in c] == list(range(len(lines))) and all(plan)
    for c in plan:
        within = (len(c) <= max_requests and sum(len(lines[i][1]) for i in c) <= max_bytes
                  and sum(lines[i][2] for i in c) <= max_tokens)
        assert within or len(c) == 1
    for a, b in zip(plan, plan[1:]):   # a batch is cut only where the next line would break a limit
        c = a + [b[0]]
        assert (len(c) > max_requests or sum(len(lines[i][1]) for i in c) > max_bytes
                or sum(lines[i][2] for i in c) > max_tokens)


def test_a_second_process_on_the_same_run_folder_is_refused(tmp_path):
    "While one batch run polls, a second on the same folder is one clear refusal; the first then ends paying each id once."
    from synth_proc import start, synth_args
    import time
    with server(step=1) as srv:
        args = synth_args(**{**{k: v for k, v in KW.items() if k not in ("backend", "model", "mine", "progress")},
                             "batch_poll": 0.3})
        p = start(args, tmp_path, srv.base_url)
        log = tmp_path / "synth" / "batches" / "log.jsonl"
        deadline = time.time() + 60
        while not (log.exists() and b'"created"' in log.read_bytes()) and time.time() < deadline: time.sleep(0.01)
        with pytest.raises(ValueError, match="another synth run"):
            run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert p.wait(timeout=120) == 0
        assert_once(srv, tmp_path)


@pytest.mark.parametrize("seed", range(2))
def test_kills_at_random_moments_while_the_output_is_garbled(tmp_path, seed):
    "Garbage and repeated lines added to every output file, kill -9 from outside at random moments (the cleaning and its"
    " charge included), then a run to the end: every id answered (billed) once, the books at least the bill."
    rng = random.Random(seed)
    with server(step=1) as srv:
        tamper(srv, lambda lines: [b"garbage{", *lines, *lines[:1], b"[]"])
        kill_at_random_steps(tmp_path, srv, rng, times=3, most=14)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert sorted(srv.batch.answered) == IDS and set(srv.batch.answered.values()) == {1} and all_ids(tmp_path) == IDS
        s = spent(tmp_path)
        assert s["in_flight"] == 0 and s["spent_tokens"] >= srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


def test_usage_over_max_tokens_is_booked_and_counted(tmp_path):
    "An answer whose reported completion tokens exceed its max_tokens: booked as the server reports it, and counted."
    def fn(lines):
        xs = [json.loads(x) for x in lines]
        xs[0]["response"]["body"]["usage"]["completion_tokens"] += 10_000
        return [json.dumps(x).encode() for x in xs]
    with server() as srv:
        tamper(srv, fn)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        n = srv.batch.calls["POST /v1/batches"]
        assert m["usage_this_run"]["batch_usage_over_max_tokens"] == n and m["usage_this_run"].get("batch_skipped_lines", 0) == 0
        assert sorted(srv.batch.answered) == IDS and set(srv.batch.answered.values()) == {1}
        assert spent(tmp_path)["spent_tokens"] == srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] + 10_000 * n


def test_a_passing_404_on_a_listed_batch_does_not_resend_it(tmp_path):
    "One 404 on a batch the server still lists (a glitch, not a forgotten batch): it is polled again, never resent."
    with server() as srv:
        h, hit = srv.batch.handle, []
        def handle(method, path, raw):
            if method == "GET" and re.search(r"/v1/batches/batch_[0-9]+$", path) and not hit:
                hit.append(path); return 404, {}, b'{"error": {"message": "No such Batch object"}}'
            return h(method, path, raw)
        srv.batch.handle = handle
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert hit and m["exit_status"] == 0, m["exit_message"]
        assert_once(srv, tmp_path)


def test_a_batch_forgotten_at_its_first_poll_is_resent_not_called_a_budget_stop(tmp_path):
    with server() as srv:
        h, once = srv.batch.handle, []
        def handle(method, path, raw):
            code, hd, body = h(method, path, raw)
            if method == "POST" and path.split("?")[0].endswith("/v1/batches") and not once:
                once.append(1); srv.batch.batches.clear()   # the server forgets the first batch at once
            return code, hd, body
        srv.batch.handle = handle
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert all_ids(tmp_path) == IDS and spent(tmp_path)["settled_unknown"] == 1 and spent(tmp_path)["in_flight"] == 0


def test_a_malformed_line_before_an_ids_answer_does_not_hide_the_answer(tmp_path):
    "Each id's answer preceded by a malformed line for the same id (no text): the answer is used, nothing is resent."
    def fn(lines):
        bad = lambda x: json.dumps({"custom_id": json.loads(x)["custom_id"],
                                    "response": {"status_code": 200, "body": {"choices": {"a": 1}}}}).encode()
        return [y for x in lines for y in (bad(x), x)]
    with server() as srv:
        tamper(srv, fn)
        m = run_synth(tmp_path, base_url=srv.base_url, **KW)
        assert m["exit_status"] == 0, m["exit_message"]
        assert sorted(srv.batch.answered) == IDS and set(srv.batch.answered.values()) == {1} and all_ids(tmp_path) == IDS
        assert m["usage_this_run"]["batch_skipped_lines"] == 10   # the malformed lines, each counted once
