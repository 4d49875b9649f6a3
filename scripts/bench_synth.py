"""Throughput of the shared LLM client layer (phi1_nb.llm.LLMClient) against a local OpenAI-compatible server.

FakeOpenAIServer answers every request after a fixed latency; N requests at concurrency C can go no faster than
C / latency requests per second. We print the achieved rate next to that bound, and the client's CPU time per
request. The server runs in its own process (as a real endpoint would), so the CPU time is the client's alone;
`--same-process` runs it in a thread of the client's process instead (both then share one GIL).

    .venv/bin/python scripts/bench_synth.py [--n 2000] [--concurrency 64] [--latency 0.2] [--same-process]
"""
import argparse, contextlib, os, subprocess, sys, time

from phi1_nb.llm import FakeOpenAIServer, LLMClient

SERVE = ("import sys, time; from phi1_nb.llm import FakeOpenAIServer\n"
         "with FakeOpenAIServer(latency=float(sys.argv[1])) as s:\n"
         "    print(s.base_url, flush=True); sys.stdin.read()")


@contextlib.contextmanager
def server(latency, same_process):
    if same_process:
        with FakeOpenAIServer(latency=latency) as s: yield s.base_url
        return
    p = subprocess.Popen([sys.executable, "-c", SERVE, str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try: yield p.stdout.readline().strip()
    finally: p.stdin.close(); p.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--same-process", action="store_true")
    a = ap.parse_args()
    items = [[{"role": "user", "content": f"Write a short Python exercise number {i}."}] for i in range(a.n)]
    with server(a.latency, a.same_process) as url:
        cl = LLMClient(url, "fake", concurrency=a.concurrency, timeout=30)
        cl.complete_many(items[: a.concurrency], max_tokens=64)   # warm up: imports, connections
        cl.usage.clear()
        c0, t0 = time.process_time(), time.perf_counter()
        out = cl.complete_many(items, max_tokens=64, temperature=0.7)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    errors = sum(isinstance(o, Exception) for o in out)
    bound, rate = a.concurrency / a.latency, a.n / wall
    where = "client's process (thread)" if a.same_process else "separate process"
    print(f"requests {a.n}  concurrency {a.concurrency}  server latency {a.latency*1000:.0f} ms  server in {where}  "
          f"cpus {os.cpu_count()}  load avg {os.getloadavg()[0]:.1f}")
    print(f"{'':28s}{'achieved':>12s}{'bound':>12s}{'ratio':>10s}")
    print(f"{'requests per second':28s}{rate:12.1f}{bound:12.1f}{rate/bound:10.1%}")
    print(f"{'wall seconds':28s}{wall:12.2f}{a.n/bound:12.2f}")
    print(f"CPU time per request: {cpu/a.n*1000:.2f} ms ({'client + server' if a.same_process else 'client only'})   "
          f"errors: {errors}   requests sent: {cl.usage['requests']}   tokens: {cl.usage['total_tokens']}")


if __name__ == "__main__":
    main()
