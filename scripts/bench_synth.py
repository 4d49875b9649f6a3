"""Throughput of synthetic generation against a local OpenAI-compatible server: the whole stage, and the client alone.

FakeOpenAIServer (phi1_nb.testing) answers every request after a fixed latency, in its own process (as a real endpoint
would); N requests at concurrency C can go no faster than C / latency requests per second (the latency bound).

- stage: `phi1 synth` (textbooks, the stand-in teacher's answers, per_shard 16) in a fresh process and run folder,
  timed in full from the command's start to its exit (imports, prompts, parsing, near-duplicate checks, shards,
  manifests); the stage's own `seconds` from its manifest is printed beside it;
- client: `LLMClient.complete_many` on the same number of requests, after a warm-up, on the default transport (the
  openai SDK's aiohttp one when installed) and on the httpx one (`PHI1_HTTP=httpx`).

Both also print their CPU time per request, which, unlike the wall time, does not depend on how busy the machine is.

Runs are interleaved (stage, client, stage, client, ...) and the median is reported.

    python scripts/bench_synth.py [--n 3000] [--concurrency 64] [--latency 0.2] [--runs 3]
"""
import argparse, json, os, resource, statistics, subprocess, sys, tempfile, time
from pathlib import Path

from phi1_nb.llm import LLMClient

SERVE = ("import sys; from phi1_nb.testing import FakeOpenAIServer, fake_teacher\n"
         "with FakeOpenAIServer(handler=fake_teacher, latency=float(sys.argv[1])) as s:\n"
         "    print(s.base_url, flush=True); sys.stdin.read()")


def stage(url, a):
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-c", "import sys; from phi1_nb.cli import console; sys.exit(console())", "synth", "--run-dir", d, "--backend", "openai", "--model", "fake",
               "--base_url", url, "--kinds", "textbooks", "--n_textbooks", str(a.n), "--concurrency", str(a.concurrency),
               "--per_shard", "16", "--mine", "false", "--timeout", "30"]
        t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        if r.returncode: sys.exit(f"phi1 synth failed ({r.returncode}): {r.stderr[-2000:]}")
        m = json.loads((Path(d) / "synth" / "manifest.json").read_text())
        assert m["kinds"]["textbooks"]["final"] == a.n, m["kinds"]["textbooks"]
        return wall, m["seconds"], r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime


def client(url, a, transport="auto"):
    os.environ["PHI1_HTTP"] = transport   # read when the client opens its connections
    items = [[{"role": "user", "content": f"Write a short Python textbook section number {i}."}] for i in range(a.n)]
    cl = LLMClient(url, "fake", concurrency=a.concurrency, timeout=30)
    cl.complete_many(items[: a.concurrency], max_tokens=64, seed=-1)   # warm up: imports, connections
    t0, c0 = time.perf_counter(), time.process_time()
    out = cl.complete_many(items, max_tokens=64, temperature=0.7)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert not any(isinstance(o, Exception) for o in out)
    os.environ.pop("PHI1_HTTP", None)
    return wall, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    p = subprocess.Popen([sys.executable, "-c", SERVE, str(a.latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = p.stdout.readline().strip()
        st, ss, sc, cl, cc, hl, hc = [], [], [], [], [], [], []
        for _ in range(a.runs):
            w, s, c = stage(url, a); st.append(w); ss.append(s); sc.append(c)
            w, c = client(url, a); cl.append(w); cc.append(c)
            w, c = client(url, a, "httpx"); hl.append(w); hc.append(c)
    finally: p.stdin.close(); p.wait(10)
    bound = a.n * a.latency / a.concurrency
    print(f"requests {a.n}  concurrency {a.concurrency}  server latency {a.latency*1000:.0f} ms (separate process)  "
          f"cpus {os.cpu_count()}  load avg {os.getloadavg()[0]:.1f}  runs {a.runs} (interleaved, median)")
    print(f"{'':48s}{'seconds':>10s}{'req/s':>10s}{'of bound':>10s}")
    print(f"{'latency bound':48s}{bound:10.2f}{a.n/bound:10.1f}{1:10.1%}")
    for name, xs in [("stage: phi1 synth, whole command", st), ("stage: its manifest's seconds", ss), ("client only: complete_many", cl),
                     ("client only, httpx transport (PHI1_HTTP=httpx)", hl)]:
        m = statistics.median(xs)
        print(f"{name:48s}{m:10.2f}{a.n/m:10.1f}{bound/m:10.1%}   runs: {', '.join(f'{x:.2f}' for x in xs)}")
    print(f"CPU seconds per request (median): stage {statistics.median(sc)/a.n*1000:.2f} ms (whole command, imports included), "
          f"client {statistics.median(cc)/a.n*1000:.2f} ms (httpx transport {statistics.median(hc)/a.n*1000:.2f} ms); the server's CPU is not counted")


if __name__ == "__main__":
    main()
