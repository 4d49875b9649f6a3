"Running `run_synth` in a child process and killing it with SIGKILL at a chosen moment (the kill -9 tests)."
import os, signal, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def synth_args(**kw) -> list[str]:
    "`python -c` arguments running `run_synth(run_dir, base_url=url, **kw)`, with run_dir and url as argv[1:3]."
    code = ("import sys; from phi1_nb.synth import run_synth; "
            f"run_synth(sys.argv[1], backend='openai', base_url=sys.argv[2], model='fake', mine=False, progress=False, **{kw!r})")
    return [sys.executable, "-c", code]


def start(args, run_dir, url) -> subprocess.Popen:
    return subprocess.Popen([*args, str(run_dir), url], cwd=ROOT)


def run(args, run_dir, url, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*args, str(run_dir), url], cwd=ROOT, **kw)


def kill_when(p:subprocess.Popen, ready, timeout:float=120, poll:float=0.01):
    "SIGKILL `p` as soon as `ready()` holds; fail if it ended on its own first."
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and p.poll() is None: time.sleep(poll)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, "the process ended before the kill"


def request_key(body:dict) -> str:
    "The cache key of a chat request the server received (to tell which were paid twice)."
    from phi1_nb.llm import LLMClient
    return LLMClient("x", "fake").key(body["messages"], max_tokens=body["max_tokens"], temperature=body["temperature"],
                                      top_p=body["top_p"], seed=body["seed"])
