"""Issue 15's promises attacked from outside: a fault-injecting proxy (tests/fault_proxy.py) that counts what the
upstream server really billed, property tests of the rate limiter and the ledger, kill -9 at random points of a real
`phi1 synth`, and two processes on one run folder. The proxy runs in front of FakeOpenAIServer here, and once in front
of a real `transformers serve` (the `real_server` fixture)."""
import json, os, random, signal, subprocess, sys, time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from fault_proxy import FaultProxy
from phi1_nb.core import read_shard
from phi1_nb.ledger import Ledger
from phi1_nb.llm import Completion, LLMError, LLMClient, LLMUnreachable
from phi1_nb.ratelimit import RateLimiter
from phi1_nb.synth import exercise_spec, textbook_spec
from phi1_nb.testing import FakeOpenAIServer, fake_teacher

ROOT = Path(__file__).resolve().parents[1]
MSGS = [[{"role": "user", "content": f"Question number {i}: explain lists."}] for i in range(40)]


def words(body):
    "A long answer, unless the request caps it."
    return "word " * 400


# ---------------------------------------------------------------- the rate limiter, under a simulated clock
class Clock:
    t = 0.0
    def __call__(self): return self.t


@settings(max_examples=150, deadline=None)
@given(rpm=st.sampled_from([None, 6, 60, 600]), tpm=st.sampled_from([None, 500, 12_000]),
       reqs=st.lists(st.tuples(st.floats(0, 30), st.integers(1, 4000)), min_size=1, max_size=60),
       pauses=st.lists(st.tuples(st.floats(0, 30), st.floats(0, 20)), max_size=3))
def test_limiter_holds_over_every_window_whatever_the_arrivals(rpm, tpm, reqs, pauses):
    """Requests arrive at random times with random sizes, and `Retry-After` pauses fall in between: the starts, in
    RPM and in TPM, never exceed rate x window plus the one request that opens it."""
    if rpm is None and tpm is None: rpm = 60
    lim = RateLimiter(rpm, tpm, clock=Clock())
    clock = lim.clock
    events = sorted([(a, "req", n) for a, n in reqs] + [(a, "pause", s) for a, s in pauses])
    starts, paused = [], []
    for a, what, x in events:          # in arrival order, each waits as `acquire` does (the clock jumps, never sleeps)
        clock.t = max(clock.t, a)
        if what == "pause": lim.pause(x); paused.append((clock.t, clock.t + x)); continue
        while (w := lim.wait_time()) > 0: clock.t += w
        if lim.rpm: lim.rpm.charge(1)
        if lim.tpm: lim.tpm.charge(x)
        starts.append((clock.t, x))
    for per_minute, size in ((rpm, lambda n: 1), (tpm, lambda n: n)):
        if not per_minute: continue
        for i in range(len(starts)):                   # every window [s_i, s_j]: all but the last fit in rate x span
            tot = 0
            for j in range(i, len(starts)):
                assert tot <= per_minute / 60 * (starts[j][0] - starts[i][0]) + 1e-6, (i, j, tot)
                tot += size(starts[j][1])
    assert not any(p0 < t < p1 for t, _ in starts for p0, p1 in paused)   # nothing starts during a Retry-After pause


# ---------------------------------------------------------------- the ledger: random histories, kills, torn lines
OPS = st.lists(st.one_of(
    st.tuples(st.just("reserve"), st.integers(1, 300), st.integers(1, 300)),
    st.tuples(st.just("usage"), st.integers(0, 99), st.floats(0, 1)),
    st.tuples(st.just("error"), st.integers(0, 99), st.just(0.0)),
    st.tuples(st.just("unknown"), st.integers(0, 99), st.floats(0, 1)),
    st.tuples(st.just("kill"), st.integers(0, 60), st.booleans())), max_size=60)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, budget=st.integers(200, 3000))
@example(ops=[("reserve", 1, 1), ("kill", 0, True), ("reserve", 1, 1), ("kill", 0, False)], budget=200)   # a torn reserve
def test_ledger_never_lets_the_server_bill_beyond_the_budget(tmp_path_factory, ops, budget):
    """Reserve, settle with usage / an error / an unknown fate, kill the process (its requests in flight are billed
    by the server at up to their bound) and tear the last line at random: what the server billed over every run
    never exceeds the budget, and the ledger never counts less than that."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    L, inflight, billed = Ledger(path, budget_tokens=budget), [], 0
    for op, a, b in ops:
        if op == "reserve":
            if (rid := L.reserve(a, b)) is not None: inflight.append((rid, a + b))
        elif op == "kill":
            billed += sum(bound for _, bound in inflight)   # the server finishes them all, billed at their bound
            os.close(L._fd); os.close(L._mutex); L._fd = None        # killed: the kernel drops its locks
            raw = path.read_bytes()
            last = raw[:-1].rfind(b"\n") + 1
            try: e = json.loads(raw[last:])
            except ValueError: e = None                         # the last line was torn already
            if b and e is not None:                             # a write torn by the kill: part of the last line is lost
                if e["op"] == "reserve":                        # it was never sent: nothing billed for it
                    billed -= next((bd for rid, bd in inflight if rid == e["rid"]), 0)
                path.write_bytes(raw[:last + 1 + a % max(1, len(raw) - last - 2)])
            L, inflight = Ledger(path, budget_tokens=budget), []
        elif inflight:
            rid, bound = inflight.pop(a % len(inflight))
            cost = {"usage": int(b * bound), "error": 0, "unknown": bound}[op]
            billed += cost
            L.settle(rid, {"prompt_tokens": cost // 2, "completion_tokens": cost - cost // 2} if op == "usage" else
                     {} if op == "error" else None)
        assert billed + sum(bd for _, bd in inflight) <= budget
        assert L.spent_tokens() + L.reserved()[0] >= billed + sum(bd for _, bd in inflight)
    L.close()
    again = Ledger(path, budget_tokens=budget)
    assert again.spent_tokens() >= billed


# ---------------------------------------------------------------- the client behind the fault proxy
def client(url, **kw):
    return LLMClient(url, "fake", **{"timeout": 1.0, "backoff": 0.01, "max_retries": 3, "concurrency": 8, **kw})


@pytest.mark.parametrize("fault", ["502", "504", "cut", "drop", "delay", "garbage"])
def test_budget_holds_in_the_upstream_count_when_answers_are_lost_after_billing(tmp_path, fault):
    """The upstream generates and bills, then the answer is lost on the way (a gateway error in its place, a cut
    body, a close, a delay past the timeout, garbage): the budget holds in what the upstream billed."""
    with FakeOpenAIServer(handler=fake_teacher) as srv, \
            FaultProxy(srv.base_url, plan=lambda i, b: fault if i % 2 == 0 else None, delay=1.5) as px:
        cl = client(px.base_url, budget_tokens=2500, ledger=tmp_path / "ledger.jsonl")
        out = cl.complete_many(MSGS, max_tokens=40); cl.close()
        assert px.quiet()
    assert px.faults[fault] > 0 and px.spent() == srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]
    assert px.spent() <= 2500, (px.spent(), Ledger(tmp_path / "ledger.jsonl").summary())
    assert any(isinstance(o, Completion) for o in out)


def test_an_answer_that_trickles_in_is_cut_at_the_timeout():
    """`timeout` is per attempt: a server that sends its answer one byte at a time cannot hold a request longer."""
    with FakeOpenAIServer() as srv, FaultProxy(srv.base_url, plan=lambda i, b: "trickle", trickle=0.05) as px:
        cl = client(px.base_url, timeout=1.0, max_retries=0, concurrency=1)
        t0 = time.monotonic()
        out = cl.complete_many(MSGS[:1], max_tokens=8)
        took = time.monotonic() - t0
    assert isinstance(out[0], LLMError) and cl.usage["errors_timeout"] == 1, (out, took)


def test_without_max_tokens_the_server_cannot_bill_beyond_the_bound(tmp_path):
    """A request without `max_tokens` under a budget: the server's own default could write far more than the bound
    that was reserved; the client sends the bound it reserved."""
    with FakeOpenAIServer(handler=words) as srv:
        cl = client(srv.base_url, budget_tokens=3000, concurrency=4)
        cl.complete_many(MSGS[:20]); cl.close()
    assert srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] <= 3000, dict(srv.billed)


@pytest.mark.parametrize("code", ["429", "503"])
def test_retry_after_as_an_http_date_is_honoured(code):
    with FakeOpenAIServer() as srv, FaultProxy(srv.base_url, plan=lambda i, b: code if i == 0 else None,
                                               retry_after=("date", 2)) as px:
        cl = client(px.base_url, backoff=0.001, concurrency=1)
        out = cl.complete_many(MSGS[:1], max_tokens=8)
    assert isinstance(out[0], Completion) and px.n == 2
    assert px.times_wall[1] >= px.not_before[0] - 0.05, (px.times_wall, px.not_before)   # not before the date it named


# ---------------------------------------------------------------- kill -9 and two processes, through the proxy
CLI = "import sys; from phi1_nb.cli import main; sys.exit(main(sys.argv[1:]))"
NT, NE, CONC = 24, 24, 8


def synth_cmd(run_dir, url, *extra):
    return [sys.executable, "-c", CLI, "synth", "--run-dir", str(run_dir), "--backend", "openai", "--model", "fake",
            "--base_url", url, "--n_textbooks", str(NT), "--n_exercises", str(NE), "--mine", "false", "--per_shard", "8",
            "--concurrency", str(CONC), "--max_retries", "1", "--sandbox_workers", "1", *extra]


def record_ids(run_dir):
    "Every id written (kept and dropped) per kind, with repeats: the shards of the kind's finished tasks."
    out = {}
    for kind in ("textbooks", "exercises"):
        d, out[kind] = Path(run_dir) / "synth" / kind, []
        for p in sorted((d / "parts").glob("synthetic-*.json")):
            r = json.loads(p.read_text())
            out[kind] += [x["id"] for x in read_shard(d / r["shard"]["path"])]
            if "dropped" in r: out[kind] += [x["id"] for x in read_shard(d / "dropped" / r["dropped"]["path"])]
    return out


def kill_trials(run_dir, px, rng, kills, extra=()):
    "Start `phi1 synth`, kill -9 it after a random number of requests, `kills` times; the new answers of each run."
    paid_again, seen = [], Counter()
    for _ in range(kills):
        n0, target = px.n, px.n + rng.randint(1, 40)
        p = subprocess.Popen(synth_cmd(run_dir, px.base_url, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None and px.n < target: time.sleep(0.005)
        time.sleep(rng.random() * 0.05)
        if p.poll() is None: os.kill(p.pid, signal.SIGKILL)
        p.wait(); assert px.quiet()                               # the server finishes (and bills) what it had
        now = Counter(px.answered)
        paid_again.append(sum(min(seen[k], now[k] - seen[k]) for k in now if now[k] > seen[k] and seen[k]))
        seen = now
    return paid_again


def test_kill_9_at_random_points_then_a_rerun_gives_every_id_once(tmp_path):
    rng = random.Random(15)
    with FakeOpenAIServer(handler=fake_teacher, latency=0.05) as srv, FaultProxy(srv.base_url) as px:
        paid_again = kill_trials(tmp_path, px, rng, kills=4)
        before = Counter(px.answered)
        r = subprocess.run(synth_cmd(tmp_path, px.base_url), cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        assert px.quiet()
        paid_again.append(sum(min(before[k], v - before[k]) for k, v in px.answered.items() if before[k] and v > before[k]))
        done = Counter(px.answered)                                # growing n: exactly the 8 new ids, each once
        r = subprocess.run(synth_cmd(tmp_path, px.base_url, "--n_textbooks", str(NT + 8)), cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0 and px.quiet(), r.stderr[-2000:]
        assert {k: v - done[k] for k, v in px.answered.items() if v != done[k]} == {k: 1 for k in px.answered if k not in done}
        assert len(px.answered) - len(done) == 8
    ids = record_ids(tmp_path)
    assert sorted(ids["textbooks"]) == sorted(textbook_spec(1234, i)["id"] for i in range(NT + 8))   # each once, none lost
    assert sorted(ids["exercises"]) == sorted(exercise_spec(1234, i)["id"] for i in range(NE))
    print(f"kill -9: {len(paid_again) - 1} kills, answers paid again after each: {paid_again[1:]}")
    assert max(paid_again) <= CONC, paid_again                     # a kill pays again at most for what was in flight
    assert sum(px.answered.values()) == len(px.answered) + sum(paid_again)
    led = Ledger(tmp_path / "synth" / "ledger.jsonl")
    assert led.spent_tokens() >= px.spent() and led.summary()["in_flight"] == 0


def test_kill_9_never_lets_the_upstream_bill_beyond_the_budget(tmp_path):
    rng, budget = random.Random(7), 5000
    with FakeOpenAIServer(handler=fake_teacher, latency=0.05) as srv, FaultProxy(srv.base_url) as px:
        kill_trials(tmp_path, px, rng, kills=3, extra=("--budget_tokens", str(budget)))
        r = subprocess.run(synth_cmd(tmp_path, px.base_url, "--budget_tokens", str(budget)), cwd=ROOT, capture_output=True, text=True)
        assert px.quiet()
    assert r.returncode == 3 and "budget" in r.stderr, r.stderr[-2000:]
    print(f"kill -9 under a budget of {budget}: the upstream billed {px.spent()}")
    assert 0 < px.spent() <= budget
    ids = record_ids(tmp_path)
    for kind, f in (("textbooks", textbook_spec), ("exercises", exercise_spec)):
        assert len(ids[kind]) == len(set(ids[kind])) and set(ids[kind]) <= {f(1234, i)["id"] for i in range(24)}


def test_two_processes_on_one_run_folder(tmp_path):
    """Two `phi1 synth` started together on one folder: one runs, the other is refused with exit 2 and a message;
    nothing is asked twice."""
    with FakeOpenAIServer(handler=fake_teacher, latency=0.3) as srv, FaultProxy(srv.base_url) as px:
        ps = [subprocess.Popen(synth_cmd(tmp_path, px.base_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
        res = sorted((p.wait(), p.stderr.read()) for p in ps)
        assert px.quiet()
    assert [rc for rc, _ in res] == [0, 2] and "another synth run" in res[1][1], res
    assert max(px.answered.values()) == 1 and len(px.answered) == NT + NE
    ids = record_ids(tmp_path)
    assert sorted(ids["textbooks"]) == sorted(textbook_spec(1234, i)["id"] for i in range(NT))


def test_a_dry_run_during_a_live_run_leaves_its_books_alone(tmp_path):
    """A dry run reads the ledger while a live run has requests in flight: it must not settle them as lost (they
    are not), or the books would charge their bound on top of what the server reports."""
    # (3 s per answer: the textbooks keep requests in flight for ~9 s, while the dry run starts under a loaded machine)
    with FakeOpenAIServer(handler=fake_teacher, latency=3.0) as srv, FaultProxy(srv.base_url) as px:
        p = subprocess.Popen(synth_cmd(tmp_path, px.base_url), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while px.upstream_in_flight < CONC and p.poll() is None: time.sleep(0.005)
        r = subprocess.run(synth_cmd(tmp_path, px.base_url, "--dry_run", "true"), cwd=ROOT, capture_output=True, text=True)
        assert p.poll() is None and px.upstream_in_flight > 0, "the dry run must open the books while the live run has requests in flight"
        assert r.returncode == 0 and p.wait() == 0, r.stderr[-2000:]
        assert px.quiet()
    led = Ledger(tmp_path / "synth" / "ledger.jsonl")
    assert led.spent.get("settled_lost", 0) == 0 and led.spent_tokens() == px.spent(), led.summary()


TWO = ("import sys; from phi1_nb.llm import LLMClient; from phi1_nb.testing import FakeOpenAIServer; "
       "cl = LLMClient(sys.argv[1], 'fake', concurrency=4, budget_tokens=int(sys.argv[3]), ledger=sys.argv[2]); "
       "cl.complete_many([[{'role': 'user', 'content': f'{sys.argv[4]} question {i}'}] for i in range(40)], max_tokens=30); cl.close()")


def test_two_processes_sharing_one_ledger_share_one_budget(tmp_path):
    """Two clients in two processes keep their books in one ledger file at the same time (no stage lock between
    them): each sees the other's reservations, and together they stay within the one budget."""
    with FakeOpenAIServer(handler=words, latency=0.05) as srv:
        ps = [subprocess.Popen([sys.executable, "-c", TWO, srv.base_url, str(tmp_path / "ledger.jsonl"), "2000", who], cwd=ROOT)
              for who in "AB"]
        assert [p.wait() for p in ps] == [0, 0]
    assert {b["messages"][0]["content"][0] for b in srv.bodies} == {"A", "B"}
    assert srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] <= 2000, dict(srv.billed)
    assert Ledger(tmp_path / "ledger.jsonl").spent_tokens() == srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]


def test_a_connection_cut_mid_answer_is_a_failed_request_not_an_unreachable_server():
    """The server answered and the connection broke on the way back: that request failed (retry, then report it);
    the endpoint is reachable, so the other requests go on."""
    with FakeOpenAIServer() as srv, FaultProxy(srv.base_url, plan=lambda i, b: "cut" if b["messages"][0]["content"] ==
                                               MSGS[3][0]["content"] else None) as px:
        out = client(px.base_url, max_retries=1, concurrency=2).complete_many(MSGS[:10], max_tokens=8)
    assert isinstance(out[3], LLMError) and not isinstance(out[3], LLMUnreachable), out[3]
    assert sum(isinstance(o, Completion) for o in out) == 9


def test_failures_after_retries_exit_4_and_the_rerun_asks_exactly_for_them(tmp_path, capsys):
    """Three records whose every attempt dies at a gateway after the upstream answered: exit 4 naming them; the
    rerun asks for those three and nothing else, and every id is written once."""
    from phi1_nb.cli import main
    from phi1_nb.synth import request_seed
    doomed, on = {request_seed(1234, textbook_spec(1234, i)["id"]) for i in (1, 5, 9)}, [True]
    with FakeOpenAIServer(handler=fake_teacher) as srv, \
            FaultProxy(srv.base_url, plan=lambda i, b: "502" if on[0] and b.get("seed") in doomed else None) as px:
        cmd = synth_cmd(tmp_path, px.base_url)[3:] + ["--n_textbooks", "12", "--n_exercises", "0"]
        assert main(cmd) == 4
        assert "3 requests failed" in capsys.readouterr().err
        on[0] = False; before = Counter(px.answered)
        assert main(cmd) == 0
        assert px.quiet()
    again = {k: v - before[k] for k, v in px.answered.items() if v > before[k]}
    assert len(again) == 3 and set(again.values()) == {1} and all(before[k] == 2 for k in again)   # billed twice (2 attempts) before
    assert sorted(record_ids(tmp_path)["textbooks"]) == sorted(textbook_spec(1234, i)["id"] for i in range(12))


# ---------------------------------------------------------------- the same attacks on a real server
REAL = dict(backend="openai", n_textbooks=3, n_exercises=3, per_shard=8, max_tokens_textbook=24, max_tokens_exercise=24,
            mine=False, progress=False, timeout=60, concurrency=2, max_retries=2, sandbox_timeout=2)


@pytest.mark.timeout(420)
def test_real_server_behind_the_fault_proxy_bills_within_the_budget(real_server, tmp_path, capsys):
    """`transformers serve` counts its own tokens; the proxy spoils answers after the server billed them. The budget
    holds in the server's count, the ledger never counts less, no reserved bound is exceeded by a real tokenizer,
    and once calibrated on what was spent, the dry run's estimate of the rest is within 15% of its real cost."""
    from phi1_nb.synth import run_synth
    plan = lambda i, b: {0: "cut", 2: "502", 4: "garbage", 6: "drop"}.get(i)
    with FaultProxy(real_server.base_url, plan=plan) as px:
        kw = {**REAL, "base_url": px.base_url, "model": real_server.model}
        m = run_synth(tmp_path, **kw, budget_tokens=4000)
        assert px.quiet()
        led = Ledger(tmp_path / "synth" / "ledger.jsonl").summary()
        spent1 = px.spent()
        assert m["exit_status"] in (0, 3) and 0 < spent1 <= 4000 and led["spent_tokens"] >= spent1 and not led.get("over_bound")
        est = sum(r["tokens_est"] for r in run_synth(tmp_path, **kw, dry_run=True)["dry_run"])
        m = run_synth(tmp_path, **kw)
        assert px.quiet() and m["exit_status"] == 0
    rest = px.spent() - spent1
    print(f"real server: {spent1} tokens billed under a budget of 4000 (ledger {led['spent_tokens']}), "
          f"{dict(px.faults)}; dry run {est} vs real {rest}")
    assert rest == 0 or abs(est - rest) / rest <= 0.15, (est, rest)
    ids = record_ids(tmp_path)
    assert sorted(ids["textbooks"]) == sorted(textbook_spec(1234, i)["id"] for i in range(3))
    assert sorted(ids["exercises"]) == sorted(exercise_spec(1234, i)["id"] for i in range(3))


@pytest.mark.timeout(420)
def test_real_server_a_fresh_folder_is_priced_by_a_pilot_within_15_percent(real_server, tmp_path):
    """On a fresh folder the dry run pays a pilot (4 requests per kind here), in the server's own count; the run it
    prices then costs within 15% of the estimate, pays nothing twice, and a budget of the estimate plus 15% holds."""
    from phi1_nb.synth import run_synth
    with FaultProxy(real_server.base_url) as px:
        kw = {**REAL, "base_url": px.base_url, "model": real_server.model, "n_textbooks": 10, "n_exercises": 10}
        rows = run_synth(tmp_path, **kw, dry_run=True, dry_run_pilot=4)["dry_run"]
        pilot, est = px.spent(), sum(r["tokens_est"] for r in rows)
        assert pilot == sum(r["pilot_tokens"] for r in rows) > 0 and px.billed["answers"] == 8
        budget = pilot + int(est * 1.15)
        m = run_synth(tmp_path, **kw, budget_tokens=budget)
        assert px.quiet()
    real = px.spent() - pilot
    print(f"real server, fresh folder: pilot {pilot} tokens, estimate {est} vs real {real} ({(est - real) / real:+.1%}); "
          f"budget {budget}, billed in all {px.spent()}")
    assert m["exit_status"] == 0 and px.billed["answers"] == 20 and px.spent() <= budget   # the pilot's 8 answers came from the cache
    assert abs(est - real) / real <= 0.15, (est, real)


@pytest.mark.timeout(420)
def test_real_server_completions_api_through_a_503_with_an_http_date(real_server, tmp_path):
    from phi1_nb.synth import run_synth
    with FaultProxy(real_server.base_url, plan=lambda i, b: "503" if i < 2 else None, retry_after=("date", 1)) as px:
        m = run_synth(tmp_path, **{**REAL, "n_textbooks": 2, "n_exercises": 2}, base_url=px.base_url, model=real_server.model,
                      api="completions", budget_tokens=3000)
        assert px.quiet()
    assert m["exit_status"] == 0 and px.billed["answers"] == 4 and 0 < px.spent() <= 3000
    assert len(px.not_before) == 2 and min(px.times_wall[2:]) >= max(px.not_before) - 0.05   # no retry before the date
    assert m["kinds"]["textbooks"]["final"] == 2 and m["kinds"]["exercises"]["final"] == 2


@pytest.mark.timeout(420)
def test_real_server_kill_9_under_a_budget(real_server, tmp_path):
    with FaultProxy(real_server.base_url) as px:
        extra = ("--model", real_server.model, "--max_tokens_textbook", "24", "--max_tokens_exercise", "24",
                 "--budget_tokens", "3000", "--concurrency", "2", "--n_textbooks", "3", "--n_exercises", "3")
        cmd = lambda: synth_cmd(tmp_path, px.base_url, *extra)            # (the later options win)
        p = subprocess.Popen(cmd(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None and px.n < 3: time.sleep(0.005)
        os.kill(p.pid, signal.SIGKILL); p.wait(); assert px.quiet()
        r = subprocess.run(cmd(), cwd=ROOT, capture_output=True, text=True)
        assert px.quiet()
    assert r.returncode in (0, 3), r.stderr[-2000:]
    assert 0 < px.spent() <= 3000, dict(px.billed)


PACED = ("import sys; from phi1_nb.llm import LLMClient; "
         "cl = LLMClient(sys.argv[1], 'fake', tpm=12000, concurrency=2, ledger=sys.argv[2]); "
         "cl.complete_many([[{'role': 'user', 'content': f'{sys.argv[3]} question {i}'}] for i in range(3)], max_tokens=250); cl.close()")


def test_tpm_holds_across_a_kill_and_an_immediate_rerun(tmp_path):
    """TPM 12,000 (200 tokens a second) and requests of a 300-token bound: a run killed right after its first request
    and restarted at once must not send its next one before the first one's tokens are paced out."""
    with FakeOpenAIServer(handler=words) as srv:
        a = subprocess.Popen([sys.executable, "-c", PACED, srv.base_url, str(tmp_path / "ledger.jsonl"), "A"], cwd=ROOT)
        while srv.n_requests < 1 and a.poll() is None: time.sleep(0.005)
        os.kill(a.pid, signal.SIGKILL); a.wait()
        b = subprocess.run([sys.executable, "-c", PACED, srv.base_url, str(tmp_path / "ledger.jsonl"), "B"], cwd=ROOT, timeout=60)
        assert b.returncode == 0
    from phi1_nb.ledger import prompt_bound
    starts = [(t, prompt_bound(body["messages"]) + body["max_tokens"]) for t, body in zip(srv.times, srv.bodies)]
    assert len(starts) >= 4
    for i in range(len(starts)):
        tot = 0
        for j in range(i, len(starts)):
            span = starts[j][0] - starts[i][0] + 0.1                 # 100 ms for the way from the client to the server
            assert tot <= 200 * span, (i, j, tot, [round(t - starts[0][0], 2) for t, _ in starts])
            tot += starts[j][1]


def test_a_dry_run_on_a_fresh_folder_is_within_15_percent(tmp_path):
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        from phi1_nb.synth import run_synth
        kw = dict(backend="openai", base_url=srv.base_url, model="fake", mine=False, progress=False, n_textbooks=32, n_exercises=32)
        rows = run_synth(tmp_path, **kw, dry_run=True)["dry_run"]   # a paid, cached pilot of 8 per kind calibrates it
        est, pilot = sum(r["tokens_est"] for r in rows), srv.billed["prompt_tokens"] + srv.billed["completion_tokens"]
        assert pilot == sum(r["pilot_tokens"] for r in rows) and srv.n_requests == 16
        run_synth(tmp_path, **kw)
        real = srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] - pilot   # what the run itself paid
        assert srv.n_requests == 64                                                    # the pilot was not paid twice
    assert abs(est - real) / real <= 0.15, (est, real)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from("AB"), st.sampled_from(["reserve", "usage", "error", "unknown", "kill"]),
                              st.integers(1, 400), st.floats(0, 1)), max_size=50), budget=st.integers(300, 2000))
def test_two_ledgers_on_one_file_share_the_budget(tmp_path_factory, ops, budget):
    """Two processes' books on one file (two `Ledger` objects: each holds its own locks), reserving, settling and
    being killed at random: together they never let the server bill beyond the budget."""
    path = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    L, inflight, billed = {w: Ledger(path, budget_tokens=budget) for w in "AB"}, {"A": [], "B": []}, 0
    for who, op, a, b in ops:
        if op == "reserve":
            if (rid := L[who].reserve(a, 10)) is not None: inflight[who].append((rid, a + 10))
        elif op == "kill":
            billed += sum(bd for _, bd in inflight[who]); inflight[who] = []
            os.close(L[who]._fd); os.close(L[who]._mutex); L[who]._fd = None
            L[who] = Ledger(path, budget_tokens=budget)
        elif inflight[who]:
            rid, bound = inflight[who].pop(a % len(inflight[who]))
            cost = {"usage": int(b * bound), "error": 0, "unknown": bound}[op]
            billed += cost
            L[who].settle(rid, {"prompt_tokens": cost, "completion_tokens": 0} if op == "usage" else {} if op == "error" else None)
        assert billed + sum(bd for w in "AB" for _, bd in inflight[w]) <= budget
    for w in "AB": L[w].close()
    assert Ledger(path).spent_tokens() >= billed


PAUSED = ("import sys; from phi1_nb.llm import LLMClient; "
          "cl = LLMClient(sys.argv[1], 'fake', concurrency=1, backoff=0.001, ledger=sys.argv[2]); "
          "cl.complete_many([[{'role': 'user', 'content': f'{sys.argv[3]} question'}]], max_tokens=8); cl.close()")


def test_retry_after_holds_across_a_kill_and_an_immediate_rerun(tmp_path):
    """A 429 says 'come back in 3 s'; the run is killed while it waits, and restarted at once: the new process does
    not knock before the 3 s are up either."""
    with FakeOpenAIServer(faults=["429"], retry_after=3) as srv:
        a = subprocess.Popen([sys.executable, "-c", PAUSED, srv.base_url, str(tmp_path / "ledger.jsonl"), "A"], cwd=ROOT)
        while srv.n_requests < 1 and a.poll() is None: time.sleep(0.005)
        time.sleep(0.3); os.kill(a.pid, signal.SIGKILL); a.wait()
        b = subprocess.run([sys.executable, "-c", PAUSED, srv.base_url, str(tmp_path / "ledger.jsonl"), "B"], cwd=ROOT, timeout=60)
        assert b.returncode == 0 and srv.n_requests == 2
    assert srv.times[1] - srv.times[0] >= 2.9, srv.times


def test_a_server_that_ignores_max_tokens_cannot_overrun_the_budget(tmp_path):
    """A server that writes 400 tokens whatever `max_tokens` says: after its first answers the ledger knows its
    bounds are too small and scales the next reservations, so the budget still holds in the server's count."""
    with FakeOpenAIServer(handler=words, max_tokens_cap=False, latency=0.02) as srv:
        cl = client(srv.base_url, budget_tokens=5000, concurrency=4, ledger=tmp_path / "ledger.jsonl")
        out = cl.complete_many(MSGS, max_tokens=30); cl.close()
    assert sum(isinstance(o, Completion) for o in out) >= 4
    assert srv.billed["prompt_tokens"] + srv.billed["completion_tokens"] <= 5000, dict(srv.billed)


def test_a_kill_during_a_forced_restart_never_mixes_two_configurations(tmp_path, monkeypatch):
    """A forced restart killed after each of its deletions in turn, in a directory order that lists shaping.json first
    (any order is a filesystem's right): a rerun with the new configuration is refused or keeps none of the old
    records, and a forced rerun then ends with the new configuration's records only."""
    import shutil
    import phi1_nb.synth as S
    from phi1_nb.synth import ShapingChanged, run_synth
    real_iterdir, real_unlink, real_rmtree = Path.iterdir, Path.unlink, shutil.rmtree
    with FakeOpenAIServer(handler=fake_teacher) as srv:
        kw = dict(backend="openai", base_url=srv.base_url, model="fake", mine=False, progress=False, kinds="textbooks", n_textbooks=8)
        run_synth(tmp_path / "base", **kw)
        n_entries = len(list((tmp_path / "base" / "synth" / "textbooks").iterdir()))
        for k in range(n_entries + 1):
            run = tmp_path / f"k{k}"; shutil.copytree(tmp_path / "base", run)
            receipts = lambda: sorted((run / "synth" / "textbooks" / "parts").glob("*.json"))
            for p in receipts():   # mark the old configuration's receipts (a receipt is reused on its shard's checksum alone)
                p.write_text(json.dumps({**json.loads(p.read_text()), "old_configuration": True}))
            n0, done = len(srv.bodies), [0]
            def gone(fn):
                def f(p, *a, **kw):
                    fn(p, *a, **kw); done[0] += 1
                    if done[0] > k: raise KeyboardInterrupt("kill -9")
                return f
            monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(real_iterdir(self), key=lambda p: p.name != "shaping.json")))
            monkeypatch.setattr(Path, "unlink", gone(real_unlink)); monkeypatch.setattr(shutil, "rmtree", gone(real_rmtree))
            try: run_synth(run, **kw, temperature=0.5, force=True)
            except KeyboardInterrupt: pass
            monkeypatch.undo()
            try: run_synth(run, **kw, temperature=0.5)                  # the rerun, with the new configuration
            except ShapingChanged: run_synth(run, **kw, temperature=0.5, force=True)   # refused: the old shaping still guards its records
            assert not any("old_configuration" in json.loads(p.read_text()) for p in receipts()), (k, "an old configuration's receipt survived as final")
            assert sum(b.get("temperature") == 0.5 for b in srv.bodies[n0:]) == 8, k   # each record asked once, newly
            shaping = json.loads((run / "synth" / "textbooks" / "shaping.json").read_text())
            assert shaping["temperature"] == 0.5 and len(read_shard_ids(run)) == 8, k


def read_shard_ids(run):
    kd = run / "synth" / "textbooks"
    return [r["id"] for p in sorted(kd.glob("synthetic-*.jsonl.zst")) for r in read_shard(p)]


def test_chaos_kills_and_faults_under_a_budget(tmp_path):
    """kill -9 at random points while the proxy spoils one request in five at random (before or after the upstream
    billed it): the upstream never bills beyond the budget, and no id is written twice."""
    rng, budget, on = random.Random(11), 9000, [True]
    faults = ["500", "503", "429", "502", "504", "cut", "drop", "delay", "garbage", "reset"]
    plan = lambda i, b: rng.choice(faults) if on[0] and rng.random() < 0.2 else None
    with FakeOpenAIServer(handler=fake_teacher, latency=0.02) as srv, FaultProxy(srv.base_url, plan=plan, retry_after="0.2",
                                                                                 delay=1.2) as px:
        extra = ("--budget_tokens", str(budget), "--timeout", "1")
        kill_trials(tmp_path, px, random.Random(5), kills=2, extra=extra)
        on[0] = False
        r = subprocess.run(synth_cmd(tmp_path, px.base_url, *extra), cwd=ROOT, capture_output=True, text=True)
        assert px.quiet()
    print(f"chaos: {dict(px.faults)}; the upstream billed {px.spent()} of a budget of {budget}; exit {r.returncode}")
    assert r.returncode in (0, 3), r.stderr[-2000:]
    assert 0 < px.spent() <= budget
    ids = record_ids(tmp_path)
    for kind, f in (("textbooks", textbook_spec), ("exercises", exercise_spec)):
        assert len(ids[kind]) == len(set(ids[kind])) and set(ids[kind]) <= {f(1234, i)["id"] for i in range(24)}


def test_tpm_holds_in_the_servers_count_once_it_showed_it_ignores_max_tokens():
    """TPM 60,000 (1,000 tokens a second) against a server that writes 400 tokens whatever `max_tokens` says: once
    its first answer showed it, requests are paced by what it really bills."""
    with FakeOpenAIServer(handler=words, max_tokens_cap=False) as srv:
        client(srv.base_url, tpm=60_000, concurrency=1).complete_many(MSGS[:5], max_tokens=30)
    log = sorted(srv.log, key=lambda e: e["t"])
    t, tok = [e["t"] for e in log], [e["total_tokens"] for e in log]
    for i in range(1, len(t)):                                   # every window after the first answer
        for j in range(i + 1, len(t)):
            assert sum(tok[i:j]) <= 1000 * (t[j] - t[i] + 0.1), (i, j, [round(x - t[0], 2) for x in t])   # 100 ms of jitter
