#!/usr/bin/env python
"""Where `make demo`'s time goes: CPU seconds (user + sys, the kernel and the workers it reaped) of every stage of a
`phi1 pipeline` run, split into the kernel's start (Python, ipykernel, its startup lines) and each cell, with wall seconds.

CPU seconds, unlike wall seconds, hardly change with the machine's load, so two runs on a busy machine compare fairly.
Each stage's kernel gets an IPython startup file (a private IPYTHONDIR) that appends one JSON line per cell to a log.

    PYTHONPATH=$PWD .venv/bin/python scripts/bench_demo.py --out /tmp/demo_run [--top 6] [-- --preset tiny ...]
    PYTHONPATH=$PWD .venv/bin/python scripts/bench_demo.py --log /tmp/demo_run/cpu   (print an earlier run's table)
"""
import argparse, json, os, sys, tempfile, time
from collections import defaultdict
from pathlib import Path

_STARTUP = r'''
import json, os, resource, time
def _cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
def _started():   # the process's start, from /proc (clock ticks after boot)
    ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
    boot = time.time() - float(open("/proc/uptime").read().split()[0])
    return boot + ticks / os.sysconf("SC_CLK_TCK")
_log = open(os.path.join(os.environ["PHI1_CPU_LOG"], os.environ.get("PHI1_CPU_STAGE", str(os.getpid())) + ".jsonl"),
            "a", buffering=1)
_st = dict(cpu=_cpu(), t=time.time(), first=True)
_log.write(json.dumps(dict(kind="startup_file", cpu=_st["cpu"], wall=_st["t"] - _started(), cwd=os.getcwd())) + "\n")
def _pre(info):
    if _st["first"]:   # the kernel's startup lines (exec_lines) ran between the startup file and the first cell
        _st["first"] = False; c = _cpu()
        _log.write(json.dumps(dict(kind="exec_lines", cpu=c - _st["cpu"], wall=time.time() - _st["t"])) + "\n")
    _st["cpu"], _st["t"] = _cpu(), time.time()
    _st["src"] = (info.raw_cell or "").strip().splitlines()[:1]
def _post(result):
    _log.write(json.dumps(dict(kind="cell", cpu=_cpu() - _st["cpu"], wall=time.time() - _st["t"],
                               src=(_st.get("src") or [""])[0][:70])) + "\n")
get_ipython().events.register("pre_run_cell", _pre)
get_ipython().events.register("post_run_cell", _post)
'''


def table(log_dir:Path, top:int=5):
    "Print per stage: kernel start CPU, cells CPU, total CPU, wall; and the `top` costliest cells of each."
    per = {}
    order = {s: i for i, s in enumerate(__import__("phi1_nb.pipeline").pipeline.STAGE_NAMES)}
    for f in sorted(log_dir.glob("*.jsonl"), key=lambda f: order.get(f.stem, 99)):
        recs = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
        per[f.stem] = recs
    tot = defaultdict(float)
    print(f"{'stage':<14} {'start cpu':>9} {'cells cpu':>9} {'total cpu':>9} {'cells wall':>10}")
    for name, recs in per.items():
        start = sum(r["cpu"] for r in recs if r["kind"] in ("startup_file", "exec_lines"))
        cells = [r for r in recs if r["kind"] == "cell"]
        c_cpu, c_wall = sum(r["cpu"] for r in cells), sum(r["wall"] for r in cells)
        tot["start"] += start; tot["cells"] += c_cpu
        print(f"{name:<14} {start:9.1f} {c_cpu:9.1f} {start + c_cpu:9.1f} {c_wall:10.1f}")
        for r in sorted(cells, key=lambda r: -r["cpu"])[:top]:
            print(f"{'':<16}{r['cpu']:7.1f} cpu {r['wall']:6.1f} wall  {r['src']}")
    print(f"{'total':<14} {tot['start']:9.1f} {tot['cells']:9.1f} {tot['start'] + tot['cells']:9.1f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="the run folder (runs_dir/name of the pipeline run)")
    ap.add_argument("--log", help="only print the table of an earlier run's cpu/ folder")
    ap.add_argument("--top", type=int, default=5, help="costliest cells shown per stage")
    a, rest = ap.parse_known_args(argv)
    if a.log: return table(Path(a.log), a.top)
    if not a.out: ap.error("--out or --log is required")
    out = Path(a.out).resolve(); log_dir = out/"cpu"; log_dir.mkdir(parents=True, exist_ok=True)
    for f in log_dir.glob("*.jsonl"): f.unlink()   # this run's kernels only
    ipy = Path(tempfile.mkdtemp(prefix="phi1-ipy-")); (ipy/"profile_default"/"startup").mkdir(parents=True)
    (ipy/"profile_default"/"startup"/"00_cpu.py").write_text(_STARTUP)
    os.environ.update(IPYTHONDIR=str(ipy), PHI1_CPU_LOG=str(log_dir))
    from phi1_nb import pipeline
    stage_args = pipeline._stage_args
    def named(stage, *args, **kw):   # the kernel's environment names its stage: its log is cpu/<stage>.jsonl
        a = list(stage_args(stage, *args, **kw)); a[5] = {**a[5], "PHI1_CPU_STAGE": stage}; return tuple(a)
    pipeline._stage_args = named
    rest = [x for x in rest if x != "--"]
    preset = rest[rest.index("--preset") + 1] if "--preset" in rest else "tiny"
    over = [x for i, x in enumerate(rest) if x != "--preset" and (i == 0 or rest[i - 1] != "--preset")]
    t0, t_cpu = time.time(), os.times()
    s = pipeline.run_pipeline(preset, [*over, "--run.runs_dir", str(out.parent), "--run.name", out.name])
    me = os.times(); me = me.user + me.system - t_cpu.user - t_cpu.system
    print(f"pipeline wall {time.time() - t0:.0f} s; stage seconds {s['seconds']:.0f}; the pipeline process's own cpu "
          f"{me:.0f} s; load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    table(log_dir, a.top)


if __name__ == "__main__":
    main()
