"""Benchmark of the Ray engine against the local engine for the filter and dedup stages (not run by the tests).

On a local Ray cluster (this machine's cores): records per second of `run_filter` (scoring + writing, with a model
trained once beforehand on the local engine) and `run_dedup` (input stage `corpus`, AST shingles) on each engine, over
a corpus of real Python files `--scale` times the standard library's .py file count (the stdlib first, then the venv's
site-packages in sorted order); `--repeats` interleaved runs each, the fastest reported. Checks that both engines keep
exactly the same records (and, for dedup, write the same clusters). Every timed step runs in a fresh subprocess whose
peak RSS is the driver's, shown next to the corpus size and again on a `--rss-scale` corpus, to show that the driver
streams the corpus rather than holding it. Ray's workers are separate processes and are not counted in the driver.

    .venv/bin/python scripts/bench_ray.py                         # scale 4 (~7,200 files), work dir /tmp/bench_ray
    .venv/bin/python scripts/bench_ray.py --scale 1 --repeats 1 --rss-scale 0 --only filter
"""
from __future__ import annotations
import argparse, hashlib, json, os, platform, resource, shutil, subprocess, sys, sysconfig, time
from pathlib import Path

STDLIB = Path(os.__file__).parent
SITE = Path(sysconfig.get_paths()["purelib"])
MARK = "BENCH_RESULT "
FILTER_KW = dict(embedder="hashing", progress=False)          # every other run_filter setting at its default
DEDUP_KW = dict(input_stage="corpus", shingles="ast")         # every other run_dedup setting at its default


# ---- corpus -----------------------------------------------------------------------------------------------
def stdlib_files() -> list[Path]:
    "Every .py file under the standard library's folder, recursively, without site-packages (sorted)."
    return sorted((p for p in STDLIB.rglob("*.py") if "site-packages" not in p.relative_to(STDLIB).parts and p.is_file()),
                  key=lambda p: p.relative_to(STDLIB).as_posix())


def site_files() -> list[Path]:
    return sorted((p for p in SITE.rglob("*.py") if p.is_file()), key=lambda p: p.relative_to(SITE).as_posix())


def build_corpus(run_dir: Path, target: int, per_shard: int, max_bytes: int) -> dict:
    "Write `run_dir/corpus/` with `target` records `{id, content}`: stdlib files, then site-packages files."
    from phi1_nb.core import write_manifest, write_shard
    d = run_dir / "corpus"; shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    skips = {"not_utf8": 0, "empty": 0, f"over_{max_bytes // 1024}KB": 0}
    shards, batch, n, text_bytes, per_src = [], [], 0, 0, {"stdlib": 0, "site-packages": 0}
    def flush():
        shards.append(write_shard(d / f"part-{len(shards):05d}.jsonl.zst", batch)); batch.clear()
    for src, root, files in (("stdlib", STDLIB, stdlib_files()), ("site-packages", SITE, site_files())):
        for p in files:
            if n >= target: break
            if p.stat().st_size > max_bytes: skips[f"over_{max_bytes // 1024}KB"] += 1; continue
            raw = p.read_bytes()
            try: text = raw.decode("utf-8")
            except UnicodeDecodeError: skips["not_utf8"] += 1; continue
            if not text.strip(): skips["empty"] += 1; continue
            batch.append({"id": f"{src}/{p.relative_to(root).as_posix()}", "content": text})
            n += 1; text_bytes += len(raw); per_src[src] += 1
            if len(batch) >= per_shard: flush()
    if batch: flush()
    if n < target: raise SystemExit(f"only {n} usable files in the stdlib and {SITE}, {target} wanted: lower --scale")
    write_manifest(d, stage="corpus", shards=shards)
    return dict(files=n, text_mb=text_bytes / 1e6, shard_mb=sum(s["bytes"] for s in shards) / 1e6, shards=len(shards),
                skips=skips, per_source=per_src)


def link_corpus(run_dir: Path, corpus: Path):
    "A run dir whose `corpus` is the shared corpus (a symlink: no copy, the same shard checksums)."
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "corpus").is_symlink(): (run_dir / "corpus").symlink_to(corpus, target_is_directory=True)


# ---- children: one timed step each, in a fresh process (its peak RSS is the driver's) ------------------------
def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024      # KB on Linux


def child(a) -> dict:
    t0 = time.perf_counter()
    import phi1_nb.filter, phi1_nb.dedup                                 # noqa: F401 (what every child imports)
    out = dict(step=a.child, engine=a.engine, import_s=time.perf_counter() - t0, ray_start_s=None)
    if a.engine == "ray":
        import ray
        from phi1_nb.ray_engine import connect
        t = time.perf_counter(); connect(num_cpus=a.ray_cpus); out["ray_start_s"] = time.perf_counter() - t
        out["ray_cpus"] = ray.cluster_resources().get("CPU")
    run_dir = Path(a.run_dir) if a.run_dir else None
    if a.child == "baseline": pass
    elif a.child in ("train", "filter"):
        from phi1_nb.filter import run_filter
        model = run_dir / "filter" / "model" / "filter.json"
        before = model.stat().st_mtime_ns if model.exists() else None
        t = time.perf_counter(); m = run_filter(run_dir, engine=a.engine, **FILTER_KW); out["seconds"] = time.perf_counter() - t
        if a.child == "filter" and model.stat().st_mtime_ns != before:
            raise RuntimeError(f"{run_dir}: run_filter trained a new model instead of reusing the copied one")
        out.update(records=m["counts"]["in"], kept=m["counts"]["out"], drops=m["drops"], resumed_tasks=m["resumed_tasks"],
                   stage_seconds=m["seconds"], metrics={k: m["metrics"].get(k) for k in ("n", "precision", "recall", "f1", "roc_auc")})
    elif a.child == "dedup":
        from phi1_nb.dedup import run_dedup
        t = time.perf_counter(); m = run_dedup(run_dir, engine=a.engine, **DEDUP_KW); out["seconds"] = time.perf_counter() - t
        out.update(records=m["counts"]["in"], kept=m["counts"]["out"], drops=m["drops"], resumed_tasks=m["resumed_tasks"],
                   clusters=m["counts"]["clusters"], ast_fallback=m["counts"]["ast_fallback"], stage_seconds=m["seconds"])
    out["rss_mb"] = peak_rss_mb()                                        # before shutdown: the stage's peak
    if a.engine == "ray":
        import ray; ray.shutdown()
    return out


def spawn(step: str, engine: str, run_dir: Path | None, ray_cpus: int) -> dict:
    cmd = [sys.executable, __file__, "--child", step, "--engine", engine, "--ray-cpus", str(ray_cpus)]
    if run_dir: cmd += ["--run-dir", str(run_dir)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    res = [l for l in r.stdout.splitlines() if l.startswith(MARK)]
    if r.returncode or not res:
        sys.stderr.write(f"\n$ {' '.join(cmd)}\nexit {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-8000:]}\n")
        raise SystemExit(f"child {step}/{engine} failed (exit {r.returncode}): see its output above")
    return json.loads(res[-1][len(MARK):])


# ---- reading the outputs back ------------------------------------------------------------------------------
def kept(stage_dir: Path) -> tuple[list, str]:
    "The kept ids in order, and a sha256 over the kept records (their JSON, keys sorted)."
    from phi1_nb.core import read_dataset
    ids, h = [], hashlib.sha256()
    for r in read_dataset(stage_dir):
        ids.append(r["id"]); h.update(json.dumps(r, sort_keys=True).encode())
    return ids, h.hexdigest()


def fresh_filter_dir(run_dir: Path, trained: Path, corpus: Path):
    "A run dir with the trained model, labels and params but nothing scored and no embedding cache."
    shutil.rmtree(run_dir, ignore_errors=True); link_corpus(run_dir, corpus)
    for d in ("model", "labels"): shutil.copytree(trained / "filter" / d, run_dir / "filter" / d)
    shutil.copy2(trained / "filter" / "params.json", run_dir / "filter" / "params.json")


def make_corpus(work: Path, scale: float, a) -> dict:
    n_std = len(stdlib_files()); t = time.perf_counter()
    c = build_corpus(work, int(round(scale * n_std)), a.per_shard, a.max_kb * 1024)
    print(f"corpus: {c['files']:,} files ({scale:g} x the stdlib's {n_std:,} .py files; {c['per_source']['stdlib']:,} stdlib + "
          f"{c['per_source']['site-packages']:,} from {SITE}), {c['text_mb']:.1f} MB of text, {c['shard_mb']:.1f} MB in "
          f"{c['shards']} jsonl.zst shards of {a.per_shard}; built in {time.perf_counter() - t:.1f} s")
    print(f"skipped files: {', '.join(f'{k} {v}' for k, v in c['skips'].items())}")
    return dict(c, stdlib_py_files=n_std, scale=scale)


def bench_stages(work: Path, only: set, repeats: int, ray_cpus: int, verbose: bool = True) -> dict:
    "Train once, then `repeats` interleaved runs per engine of filter and dedup on `work/corpus`: runs and identity checks."
    corpus_dir, runs, checks, out = work / "corpus", [], {}, {}
    say = print if verbose else (lambda *a, **k: None)
    if "filter" in only:
        train = work / "filter-train"; link_corpus(train, corpus_dir)
        say("\nfilter: training the model once (local engine; hashing embedder, defaults otherwise) ...", flush=True)
        tr = spawn("train", "local", train, ray_cpus); out["filter_train"] = tr
        say(f"  trained and scored in {tr['seconds']:.1f} s (not one of the timed runs), held-out "
            + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in tr["metrics"].items()))
        ref_ids, _ = kept(train / "filter")
        ids, hashes = {}, {}
        for rep in range(repeats):                                     # interleaved: local, ray, local, ray, ...
            for e in ("local", "ray"):
                rd = work / f"filter-{e}"; fresh_filter_dir(rd, train, corpus_dir)
                say(f"  scoring + writing, {e} engine (run {rep + 1}/{repeats}) ...", flush=True)
                r = spawn("filter", e, rd, ray_cpus)
                assert r["resumed_tasks"] == 0, f"filter/{e}: {r['resumed_tasks']} resumed tasks: not a full pass"
                i, r["kept_sha256"] = kept(rd / "filter")
                ids.setdefault(e, i); hashes.setdefault(e, set()).add(r["kept_sha256"])
                if i != ids[e]: print(f"  !! {e} kept other records than on its first run")
                runs.append(dict(stage="filter", run=rep + 1, **r))
        checks["filter"] = dict(same_kept_ids=ids["local"] == ids["ray"], same_kept_records=len(hashes["local"] | hashes["ray"]) == 1,
                                n_kept=len(ids["local"]), same_as_training_pass=ids["local"] == ref_ids)
    if "dedup" in only:
        ids, clusters, hashes = {}, {}, {}
        say("\ndedup (input stage corpus, AST shingles, defaults otherwise; fresh output each time):", flush=True)
        for rep in range(repeats):
            for e in ("local", "ray"):
                rd = work / f"dedup-{e}"; link_corpus(rd, corpus_dir); shutil.rmtree(rd / "dedup", ignore_errors=True)
                say(f"  {e} engine (run {rep + 1}/{repeats}) ...", flush=True)
                r = spawn("dedup", e, rd, ray_cpus)
                assert r["resumed_tasks"] == 0, f"dedup/{e}: {r['resumed_tasks']} resumed tasks: not a full pass"
                i, r["kept_sha256"] = kept(rd / "dedup")
                r["clusters_sha256"] = hashlib.sha256((rd / "dedup" / "clusters.json").read_bytes()).hexdigest()
                ids.setdefault(e, i); clusters.setdefault(e, json.loads((rd / "dedup" / "clusters.json").read_text()))
                hashes.setdefault(e, set()).add((r["kept_sha256"], r["clusters_sha256"]))
                if i != ids[e]: print(f"  !! {e} kept other records than on its first run")
                runs.append(dict(stage="dedup", run=rep + 1, **r))
        checks["dedup"] = dict(same_kept_ids=ids["local"] == ids["ray"], n_kept=len(ids["local"]),
                               same_clusters_json=clusters["local"] == clusters["ray"],
                               same_kept_records_and_clusters_bytes=len(hashes["local"] | hashes["ray"]) == 1)
    summary = []                               # per stage and engine: the fastest run, the highest driver peak RSS
    for stage in ("filter", "dedup"):
        for e in ("local", "ray"):
            rs = [r for r in runs if r["stage"] == stage and r["engine"] == e]
            if not rs: continue
            best = min(rs, key=lambda r: r["seconds"])
            summary.append(dict(best, records_per_s=best["records"] / best["seconds"], rss_mb=max(r["rss_mb"] for r in rs),
                                all_seconds=[round(r["seconds"], 2) for r in rs]))
    return dict(out, runs=runs, checks=checks, summary=summary)


def print_checks(checks: dict):
    if "filter" in checks:
        f = checks["filter"]
        print(f"  filter: same kept ids in the same order: {f['same_kept_ids']} ({f['n_kept']:,} kept); byte-identical kept "
              f"records on every run: {f['same_kept_records']}; same as the training run's scoring pass: {f['same_as_training_pass']}")
    if "dedup" in checks:
        d = checks["dedup"]
        print(f"  dedup:  same kept ids in the same order: {d['same_kept_ids']} ({d['n_kept']:,} kept); same clusters.json: "
              f"{d['same_clusters_json']}; byte-identical kept records and clusters.json on every run: "
              f"{d['same_kept_records_and_clusters_bytes']}")


# ---- CPU of every process a stage starts (issue 28): a child subreaper waits all its descendants ---------------
PR_SET_CHILD_SUBREAPER = 36
CPUACCT = Path("/sys/fs/cgroup/cpuacct")      # cgroup v1 (this machine); under cgroup v2 the fallback is used


def phi1_cmd(*args) -> list:
    "The `phi1` console command with `args`, run by this Python (the worktree's package on PYTHONPATH)."
    return [sys.executable, "-c", "import sys; from phi1_nb.cli import console; sys.exit(console())", *map(str, args)]


def reaped(cmd: list, log: Path, grace: float = 120.0, poll: float = 0.5) -> dict:
    """Run `cmd` from this process made a child subreaper (`prctl`) and wait every descendant, orphans included: then
    `RUSAGE_CHILDREN` holds the CPU of every process the command started (Ray's raylet, GCS, workers; exited or not).
    Descendants still alive `grace` s after the command exits are killed (by pid) and counted. Polls the process tree
    to attribute CPU to process kinds (the last sample of each pid: a lower bound).
    RUSAGE_CHILDREN misses Ray's workers: the raylet reaps them without adding their times (measured: 75 s against
    343 s polled at 20K). Where cgroup v1's cpuacct is writable, the command runs in a cgroup of its own and `cpu` is
    its `cpuacct.usage`: every process it started, exited or not, exactly; else the larger of the two above."""
    import ctypes, psutil, signal
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0: raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    me, seen, rc, end, left = psutil.Process(), {}, None, None, []
    t = time.perf_counter()
    cg = CPUACCT/f"bench_ray_{os.getpid()}"
    try: cg.mkdir(exist_ok=True); join = lambda: (cg/"cgroup.procs").write_text(str(os.getpid()))
    except OSError: cg = join = None
    with open(log, "w") as out: p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=join)
    while True:
        try: pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError: break
        if pid == p.pid: rc, end = os.waitstatus_to_exitcode(status), time.perf_counter()
        if pid: continue
        for c in me.children(recursive=True):
            try:
                with c.oneshot(): seen[c.pid] = (_kind(c.cmdline()), sum(c.cpu_times()[:2]))
            except psutil.Error: pass
        if end is not None and time.perf_counter() - end > grace:
            for c in me.children(recursive=True):
                try: left.append(c.name()); c.send_signal(signal.SIGKILL)
                except psutil.Error: pass
            grace = float("inf")
        time.sleep(poll)
    ru, by = resource.getrusage(resource.RUSAGE_CHILDREN), {}
    for k, cpu in seen.values(): by[k] = by.get(k, 0.0) + cpu
    rusage, polled, cgroup = ru.ru_utime + ru.ru_stime, sum(by.values()), None
    if cg is not None:
        cgroup = int((cg/"cpuacct.usage").read_text()) / 1e9
        try: cg.rmdir()
        except OSError: pass
    return dict(rc=rc, cpu=cgroup if cgroup is not None else max(rusage, polled), rusage=rusage, polled=polled,
                cgroup=cgroup, user=ru.ru_utime, sys=ru.ru_stime, wall=(end or t) - t,
                drain_s=time.perf_counter() - (end or t), max_rss_mb=ru.ru_maxrss / 1024, processes=len(seen),
                by_kind={k: round(v, 1) for k, v in sorted(by.items(), key=lambda x: -x[1])}, killed_left=left)


def _kind(argv: list) -> str:
    "A short name for a process: the Ray component it is, or the command."
    s = " ".join(argv)
    for k in ("raylet", "gcs_server", "dashboard_agent", "agent.py", "runtime_env", "log_monitor", "monitor.py",
              "default_worker", "ray::", "phi1_nb.cli"):
        if k in s: return {"agent.py": "dashboard_agent", "phi1_nb.cli": "driver (phi1)"}.get(k, k)
    return (argv[0].rsplit("/", 1)[-1] if argv else "?")[:30]


def reap_child(a) -> dict:
    "One measured command in this fresh process (its RUSAGE_CHILDREN starts at zero)."
    rd = Path(a.run_dir)
    if a.reap == "ray_idle":      # Ray started and stopped, nothing run: its fixed cost
        cmd = [sys.executable, "-c", "from phi1_nb.ray_engine import connect; r = connect(); r.shutdown()"]
    else:
        shutil.rmtree(rd / "dedup", ignore_errors=True)
        cmd = phi1_cmd("dedup", "--run-dir", rd, "--engine", a.reap, *a.dedup_args)
    r = reaped(cmd, rd / f"{a.reap}.log")
    if r["rc"]: raise SystemExit(f"{' '.join(map(str, cmd))} failed ({r['rc']}): see {rd / f'{a.reap}.log'}")
    return r


def cpu_main(a):
    "`--cpu N`: CPU of `phi1 dedup` on each engine (every process counted), interleaved, on bench_scale's N-record corpus."
    import statistics
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_scale import check_same, make_stage, side_run
    work = Path(a.work); n = a.cpu; rd = work / f"n{n}"
    t = time.perf_counter(); make_stage(rd, n); print(f"# corpus of {n:,} records ready ({time.perf_counter() - t:.0f} s)")
    dirs, runs = {e: side_run(rd, e) for e in ("local", "ray")}, []
    print(f"# phi1 dedup {' '.join(a.dedup_args)}; load {os.getloadavg()[0]:.1f}", flush=True)
    order = (["ray_idle"] if a.idle else []) + a.engines.split(",") * a.repeats
    for k, e in enumerate(order):
        cmd = [sys.executable, __file__, "--reap", e, "--run-dir", str(dirs.get(e, dirs["ray"])), "--", *a.dedup_args]
        for attempt in range(1, 5):      # Ray's node start waits 30 s (hard-coded in ray/_private/node.py) under load
            r = subprocess.run(cmd, capture_output=True, text=True)
            res = [l for l in r.stdout.splitlines() if l.startswith(MARK)]
            log = Path(dirs.get(e, dirs["ray"])) / f"{e}.log"
            if not r.returncode and res: break
            if "timed out during startup" not in (log.read_text() if log.exists() else ""):
                raise SystemExit(f"{e} failed: {r.stderr[-3000:]}")
            print(f"{e}: Ray's node timed out during startup (load {os.getloadavg()[0]:.1f}): try {attempt + 1}", flush=True)
        else: raise SystemExit(f"{e}: Ray did not start in 4 tries")
        x = dict(engine=e, load=os.getloadavg()[0], attempts=attempt, **json.loads(res[-1][len(MARK):])); runs.append(x)
        print(f"{e:8s} cpu {x['cpu']:7.1f} s (cgroup {x['cgroup']}, rusage {x['rusage']:.1f}, polled {x['polled']:.1f})  wall {x['wall']:6.1f} s  "
              f"{x['processes']} processes, drained in {x['drain_s']:.1f} s{', killed ' + str(x['killed_left']) if x['killed_left'] else ''}"
              f"  load {x['load']:.1f}\n         by kind (polled, lower bound): {x['by_kind']}", flush=True)
        if e == "ray" and k == len(order) - 1: check_same(dirs["local"], dirs["ray"], n, "the local engine")
    med = {e: statistics.median(r["cpu"] for r in runs if r["engine"] == e) for e in ("local", "ray")
           if any(r["engine"] == e for r in runs)}
    if len(med) < 2:
        print(f"median CPU over {a.repeats} run(s): {med}"); return med
    print(f"\nmedian CPU over {a.repeats} run(s): local {med['local']:.1f} s, ray {med['ray']:.1f} s: "
          f"ray / local = {med['ray'] / med['local']:.2f}x ({1000 * med['local'] / n:.2f} and {1000 * med['ray'] / n:.2f} ms/record)")
    if a.out: Path(a.out).write_text(json.dumps(dict(n=n, args=a.dedup_args, runs=runs, median=med), indent=1))
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=4, help="corpus size in multiples of the stdlib's .py file count")
    ap.add_argument("--per-shard", type=int, default=500, help="records per corpus shard")
    ap.add_argument("--max-kb", type=int, default=200, help="skip files over this size (KiB)")
    ap.add_argument("--work", default="/tmp/bench_ray", help="work dir (wiped and rebuilt)")
    ap.add_argument("--out", default=None, help="results JSON (default <work>/bench_ray.json)")
    ap.add_argument("--only", default="filter,dedup", help="stages to benchmark")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per stage and engine: the fastest is reported")
    ap.add_argument("--rss-scale", type=float, default=1, help="also measure the driver's peak RSS on a corpus this "
                    "many times the stdlib (one run each, untimed) to show whether it grows with the corpus; 0: skip")
    ap.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--cpu", type=int, default=0, help="instead: CPU of every process of `phi1 dedup` on each engine, "
                    "on bench_scale's corpus of this many records (interleaved, --repeats each; medians)")
    ap.add_argument("--engines", default="local,ray", help="with --cpu: the engines in the order run, each --repeats "
                    "times (ray alone: compared with the local engine's output already in the work dir)")
    ap.add_argument("--idle", action="store_true", help="with --cpu: also Ray started and stopped with no work")
    ap.add_argument("--reap", choices=["local", "ray", "ray_idle"], help=argparse.SUPPRESS)
    ap.add_argument("dedup_args", nargs="*", default=None, help="with --cpu: phi1 dedup options after -- "
                    "(default: --input_stage filter --shingles ast --threshold 0.8 --verify exact)")
    ap.add_argument("--child", choices=["baseline", "train", "filter", "dedup"], help=argparse.SUPPRESS)
    ap.add_argument("--engine", choices=["local", "ray"], default="local", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(MARK + json.dumps(child(a)), flush=True); return
    a.dedup_args = a.dedup_args or ["--input_stage", "filter", "--shingles", "ast", "--threshold", "0.8", "--verify", "exact"]
    if a.reap:
        print(MARK + json.dumps(reap_child(a)), flush=True); return
    if a.cpu:
        if a.work == "/tmp/bench_ray": a.work = "/tmp/bench_ray_cpu"      # bench_scale's corpus layout, not wiped
        cpu_main(a); return

    import ray
    from phi1_nb.core import write_json
    t_all = time.perf_counter()
    work = Path(a.work).resolve(); only = set(a.only.split(","))
    out_json = Path(a.out) if a.out else work / "bench_ray.json"
    print(f"machine: {os.cpu_count()} CPU cores, Python {platform.python_version()}, ray {ray.__version__}, "
          f"local Ray with {a.ray_cpus} CPUs; load average {os.getloadavg()[0]:.1f}")
    if work.exists() and any(work.iterdir()) and not (work / ".bench_ray").exists():
        raise SystemExit(f"{work} is not empty and was not made by this script: pick another --work")
    shutil.rmtree(work, ignore_errors=True); work.mkdir(parents=True); (work / ".bench_ray").touch()
    c = make_corpus(work, a.scale, a)
    res = dict(machine=dict(cpus=os.cpu_count(), python=platform.python_version(), ray=ray.__version__, ray_cpus=a.ray_cpus),
               args=vars(a), corpus=c)

    print("\nbaselines (fresh process each): ", end="", flush=True)
    base = {e: spawn("baseline", e, None, a.ray_cpus) for e in ("local", "ray")}
    res["baselines"] = base
    print(f"import phi1_nb: {base['local']['rss_mb']:.0f} MB peak RSS; import phi1_nb + ray + connect: "
          f"{base['ray']['rss_mb']:.0f} MB, Ray start-up {base['ray']['ray_start_s']:.1f} s")

    res.update(bench_stages(work, only, a.repeats, a.ray_cpus))
    small = None
    if a.rss_scale:
        print(f"\ndriver memory on a smaller corpus ({a.rss_scale:g} x the stdlib), one run per stage and engine:")
        sw = work / "small"; sw.mkdir()
        small = dict(corpus=make_corpus(sw, a.rss_scale, a), **bench_stages(sw, only, 1, a.ray_cpus, verbose=False))
        res["small"] = small

    print(f"\n{'stage':7} {'engine':6} {'records':>8} {'seconds':>8} {'records/s':>10} {'driver peak RSS MB':>19} "
          f"{'- baseline':>11} {'Ray start s':>12}")
    for r in res["summary"]:
        print(f"{r['stage']:7} {r['engine']:6} {r['records']:8,d} {r['seconds']:8.1f} {r['records_per_s']:10.1f} "
              f"{r['rss_mb']:19.0f} {r['rss_mb'] - base[r['engine']]['rss_mb']:+11.0f} "
              f"{'' if r['ray_start_s'] is None else format(r['ray_start_s'], '.1f'):>12}"
              f"   (runs: {', '.join(f'{x:.1f}' for x in r['all_seconds'])} s)")
    for stage in ("filter", "dedup"):
        rs = {r["engine"]: r for r in res["summary"] if r["stage"] == stage}
        if len(rs) == 2: print(f"{stage}: ray / local throughput = {rs['ray']['records_per_s'] / rs['local']['records_per_s']:.2f}x")
    print(f"corpus: {c['files']:,} records, {c['text_mb']:.1f} MB of text ({c['shard_mb']:.1f} MB compressed on disk)")
    print(f"baselines: import phi1_nb {base['local']['rss_mb']:.0f} MB; import phi1_nb + ray + connect {base['ray']['rss_mb']:.0f} MB "
          f"(Ray start-up {base['ray']['ray_start_s']:.1f} s)")
    print(f"seconds: the fastest of {a.repeats} interleaved runs, fresh output and a fresh driver process each; the stage call "
          f"only (Ray start-up excluded, shown apart). RSS: the highest of those runs, of the driver process alone "
          f"(ru_maxrss); Ray's workers, raylet and object store are separate processes and are not counted.")
    if small:
        sc = small["corpus"]
        print(f"\ndriver peak RSS MB against corpus size ({sc['text_mb']:.1f} MB of text at {a.rss_scale:g}x, "
              f"{c['text_mb']:.1f} MB at {a.scale:g}x; +{c['text_mb'] - sc['text_mb']:.1f} MB of corpus):")
        print(f"{'stage':7} {'engine':6} {f'at {a.rss_scale:g}x':>9} {f'at {a.scale:g}x':>9} {'growth':>8}")
        sm = {(r["stage"], r["engine"]): r for r in small["summary"]}
        for r in res["summary"]:
            s0 = sm[(r["stage"], r["engine"])]["rss_mb"]
            print(f"{r['stage']:7} {r['engine']:6} {s0:9.0f} {r['rss_mb']:9.0f} {r['rss_mb'] - s0:+8.0f}")
    print("\nidentity checks:")
    print_checks(res["checks"])
    if small:
        print(f"  (on the {a.rss_scale:g}x corpus as well:)"); print_checks(small["checks"])
    res["total_seconds"] = time.perf_counter() - t_all
    write_json(out_json, res)
    print(f"\ntotal {res['total_seconds'] / 60:.1f} min; load average at the end {os.getloadavg()[0]:.1f}; results in {out_json}")
    bad = [k for ch in [res["checks"]] + ([small["checks"]] if small else []) for st in ch.values() for k, v in st.items()
           if k.startswith("same") and not v]
    if bad: raise SystemExit(f"identity checks failed: {bad}")


if __name__ == "__main__":
    main()
