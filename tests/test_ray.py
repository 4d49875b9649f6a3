"""The Ray engine against the local one: the same kept records for filter, dedup and decontaminate, resume after a
killed job, and a clear error when no cluster answers. One local Ray cluster, `ray.init(num_cpus=2)`, for the module."""
import json, os, signal, socket, subprocess, sys, textwrap, time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from phi1_nb.core import read_dataset, read_json, read_manifest, read_shard, write_manifest, write_shard
from phi1_nb.dedup import run_dedup
from phi1_nb.decontaminate import load_benchmark, run_decontaminate
from phi1_nb.filter import run_filter
from phi1_nb.ray_engine import RayUnavailable, connect, map_tasks, ray_star_components, star_components

STDLIB = Path(os.__file__).parent


@pytest.fixture(scope="module")
def cluster():
    connect(num_cpus=2)            # a local Ray with the project's startup timeouts and Ray Data settings
    yield ray
    ray.shutdown()


def stage(run_dir, name, recs, per_shard, fmt="jsonl"):
    "Write `recs` as a finished stage `run_dir/name/` of shards of `per_shard` records."
    d = Path(run_dir) / name
    recs = [{"educational_value": 0.5, **r} for r in recs] if name == "filter" else recs   # (contract.COLUMNS)
    shards = [write_shard(d / f"part-{k:05d}.{fmt}", recs[i:i + per_shard]) for k, i in enumerate(range(0, len(recs), per_shard))]
    write_manifest(d, stage=name, shards=shards)


def stdlib_records(n, start=0):
    files = sorted(p for p in STDLIB.glob("*.py") if 200 < p.stat().st_size < 60_000)[start:start + n]
    return [{"id": p.name, "content": p.read_text(encoding="utf-8", errors="replace")} for p in files]


def kept_ids(d): return [r["id"] for r in read_dataset(d)]


def dropped(d, m):
    return {r["id"]: (r["drop_reason"], r.get("duplicate_of")) for s in m["dropped_shards"] for r in read_shard(Path(d) / "dropped" / s["path"])}


# ---------------------------------------------------------------------------------------------------------- filter
FILTER = dict(n_labels=80, pool_size=160, n_estimators=40, batch_size=16, progress=False)


@pytest.mark.parametrize("cut", [dict(threshold=0.5), dict(token_budget=40_000)])
def test_filter_engines_keep_the_same_records(cluster, tmp_path, cut):
    recs = stdlib_records(150) + [{"id": "empty", "content": "  "}, {"id": "prose", "content": "Just words here.\nNo code."}]
    for run in ("local", "ray"): stage(tmp_path / run, "corpus", recs, 20)
    m1 = run_filter(tmp_path / "local", **FILTER, **cut)
    m2 = run_filter(tmp_path / "ray", **FILTER, **cut, engine="ray", ray_actors=2)
    assert m2["engine"] == "ray" and m1["counts"] == m2["counts"] and m1["drops"] == m2["drops"]
    assert 0 < m1["counts"]["out"] < len(recs) and m1["drops"]["empty"] == 1 and m1["drops"]["not_code"] == 1
    assert kept_ids(tmp_path / "local" / "filter") == kept_ids(tmp_path / "ray" / "filter")
    assert [s["sha256"] for s in m1["shards"]] == [s["sha256"] for s in m2["shards"]]   # byte for byte
    assert m1["cutoff"] == m2["cutoff"] and m1["kept_tokens"] == m2["kept_tokens"]


def test_filter_on_ray_resumes_after_a_killed_job(cluster, tmp_path):
    recs = stdlib_records(240)
    for run in ("local", "ray"): stage(tmp_path / run, "corpus", recs, 6)      # 40 shards
    kw = dict(FILTER, embedder="minilm", batch_size=8)                            # a real model: seconds per shard
    m1 = run_filter(tmp_path / "local", **kw)
    code = textwrap.dedent(f"""
        from phi1_nb.filter import run_filter
        run_filter({str(tmp_path / 'ray')!r}, **{kw!r}, engine="ray", ray_actors=1)
    """)
    env = dict(os.environ, RAY_ADDRESS="")                                       # its own local Ray, not the fixture's
    p = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = tmp_path / "ray" / "filter" / "parts"
    t0 = time.time()
    while time.time() - t0 < 300 and len(list(parts.glob("*.json"))) < 3 and p.poll() is None: time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    done = len(list(parts.glob("*.json")))
    assert 3 <= done < 40, (done, p.stderr.read().decode()[-2000:])
    assert not (tmp_path / "ray" / "filter" / "manifest.json").exists()          # killed: no manifest
    m2 = run_filter(tmp_path / "ray", **kw, engine="ray")
    assert m2["resumed_tasks"] >= done and m2["counts"] == m1["counts"]
    assert kept_ids(tmp_path / "local" / "filter") == kept_ids(tmp_path / "ray" / "filter")


# ----------------------------------------------------------------------------------------------------------- dedup
def dedup_corpus():
    base = stdlib_records(60, start=30)
    recs = [dict(r, educational_value=round(0.1 + 0.8 * (i % 7) / 6, 4)) for i, r in enumerate(base)]
    src = recs[3]["content"]
    recs += [{"id": "exact-copy", "content": src.replace("\n", "  \n"), "educational_value": recs[3]["educational_value"]},
             {"id": "exact-tie", "content": src, "educational_value": recs[3]["educational_value"]},
             {"id": "renamed", "content": src.replace("self", "this").replace("def ", "def x_"), "educational_value": 0.99},
             {"id": "no-score", "content": recs[5]["content"] + "\n\nvalue = 1\n"},
             {"id": "no-content"}]                                # an int `content` is refused on read (test_read_contract)
    tmpl = ("def area(width, height):\n    \"\"\"Area of a rectangle.\"\"\"\n    if width < 0 or height < 0:\n"
            "        raise ValueError('negative side')\n    result = width * height\n    scale = max(width, height)\n"
            "    ratio = result / (scale * scale) if scale else 0.0\n    parts = [width, height, result, ratio]\n"
            "    return result, ratio, sum(parts)\n")   # long enough not to be a short form: siblings differ in one call
    recs += [{"id": f"t{i:03d}", "content": tmpl + f"\nprint(area({i}, {i + 1}))\n", "educational_value": 0.5}
             for i in range(110)]                           # one LSH bucket past max_bucket: the star and chain rule
    chain = recs[10]["content"].splitlines()
    for k in range(1, 6):                                   # a chain of small edits: one component, several hops
        chain = chain[:-3] + [f"step_{k} = {k}"] + chain[-3:]
        recs.append({"id": f"chain{k}", "content": "\n".join(chain), "educational_value": 0.3})
    return recs


@pytest.mark.parametrize("kw", [dict(shingles="ast", threshold=0.7), dict(shingles="word", verify="signature", exact=False, threshold=0.8)])
def test_dedup_engines_keep_the_same_records(cluster, tmp_path, kw):
    recs = dedup_corpus()
    for run in ("local", "ray"): stage(tmp_path / run, "filter", recs, 23)
    m1 = run_dedup(tmp_path / "local", **kw)
    m2 = run_dedup(tmp_path / "ray", **kw, engine="ray")
    assert m1["drops"] == m2["drops"] and m1["counts"] == m2["counts"] and m1["drops"]["no_content"] == 1
    assert m1["drops"]["near_duplicate"] >= 50
    assert kept_ids(tmp_path / "local" / "dedup") == kept_ids(tmp_path / "ray" / "dedup")
    assert dropped(tmp_path / "local" / "dedup", m1) == dropped(tmp_path / "ray" / "dedup", m2)
    assert [s["sha256"] for s in m1["shards"]] == [s["sha256"] for s in m2["shards"]]
    assert read_json(tmp_path / "local" / "dedup" / "clusters.json") == read_json(tmp_path / "ray" / "dedup" / "clusters.json")
    for k in ("cluster_sizes", "example_clusters", "lsh_bands_rows"): assert m1[k] == m2[k], k
    done = read_json(tmp_path / "ray" / "dedup" / "work" / "done.json")       # issue 28: ids and keys cross the shuffle
    assert 0 < done["shuffled_bytes"] - done["pair_bytes"] < 1024 * done["records"], done   # (pairs: one bucket of 110)
    assert not (tmp_path / "ray" / "dedup" / "work" / "spill_ray").exists()  # the spilled features are removed


class _Rows:
    "The two methods of a Ray dataset that `_near_clusters` calls, on one in-memory table."
    def __init__(self, t): self.t = t
    def map_batches(self, fn, fn_kwargs=None, batch_format=None): return _Rows(fn(self.t, **(fn_kwargs or {})))
    def iter_batches(self, batch_format=None): yield self.t


def _by(t, col, P):
    import pyarrow as pa
    v = t[col].to_numpy(); return [t.filter(pa.array(v == p)) for p in range(P)]


@pytest.mark.parametrize("kw", [dict(shingles="ast", threshold=0.7), dict(shingles="word", verify="signature", threshold=0.8)])
def test_dedup_ray_steps_in_one_process_match_local(tmp_path, kw, P=3):
    "Issue 28, no cluster needed: Ray's per-partition steps, partitions run one by one here, make the local clusters."
    import pyarrow as pa
    from phi1_nb import dedup_ray as R
    from phi1_nb.minhash import lsh_params
    from phi1_nb.signature_backend import run_backend
    stage(tmp_path, "filter", dedup_corpus(), 23); m = read_manifest(tmp_path / "filter")
    offs = np.cumsum([0] + [s["n"] for s in m["shards"]]).tolist(); lsh = lsh_params(kw["threshold"], 128, (0.002, 0.998))   # run_dedup's default fp_weight
    tasks = [dict(path=str(tmp_path / "filter" / s["path"]), offset=o) for s, o in zip(m["shards"], offs)]
    backend = run_backend("auto", tasks, 5)        # resolved once for every shard, as ray_dedup_decisions does
    cfg = dict(spill=str(tmp_path / "spill"), num_perm=128, seed=1, backend=backend, batch_size=50, lsh=lsh,
               feat=dict(exact=True, comments=False, near="minhash", shingles=kw["shingles"], ngram=5,
                         verify=kw.get("verify", "exact")))
    feats = pa.concat_tables([R.shard_features(dict(path=str(tmp_path / "filter" / s["path"]), offset=o, k=k), cfg)
                              for k, (s, o) in enumerate(zip(m["shards"], offs))])
    ex = pa.concat_tables([R._exact_part(x) for x in _by(R._keyed(feats, P), "p", P)])
    dead = np.array(sorted(R.name_gid(x) for ms in ex["members"].to_pylist() for x in ms), np.int64)
    B = R._band_rows(feats, lsh[0], P, dead); C = pa.concat_tables([R._bucket_part(x, 100, P) for x in _by(B, "p", P)])
    E = pa.concat_tables([R._verify_part(x, cfg["spill"], offs, 128, kw["threshold"], cfg["feat"]["verify"])
                          for x in _by(C, "q", P)])
    rows = pa.concat_tables([ex, R._near_clusters(np.stack([E["a"].to_numpy(), E["b"].to_numpy()], 1), _Rows(feats))])
    got = {}
    for r in sorted(rows.to_pylist(), key=lambda r: (r["method"], r["min_gid"])):
        got.setdefault(R.REASONS[r["method"]], []).append([R.name_id(r["kept"])] + [R.name_id(x) for x in r["members"]])
    run_dedup(tmp_path, **kw)
    assert got == read_json(tmp_path / "dedup" / "clusters.json") and len(got["near_duplicate"]) >= 3
    assert B.nbytes <= (4 + 4 + 8 + 8) * lsh[0] * feats.num_rows   # (partition, band, bucket key, index): no feature


def test_dedup_reuses_its_decisions_across_engines(cluster, tmp_path):
    stage(tmp_path, "filter", dedup_corpus(), 40)
    m1 = run_dedup(tmp_path, engine="ray")
    (tmp_path / "dedup" / "parts" / "part-00001.json").unlink()                  # as if killed in the write pass
    stamp = (tmp_path / "dedup" / "work" / "done.json").stat().st_mtime_ns
    m2 = run_dedup(tmp_path)                                                     # the local engine takes over
    assert (tmp_path / "dedup" / "work" / "done.json").stat().st_mtime_ns == stamp   # no recomputation
    assert m2["resumed_tasks"] == len(m1["shards"]) - 1 and m2["counts"] == m1["counts"]
    with pytest.raises(ValueError, match="local engine only"): run_dedup(tmp_path, engine="ray", embedder="hashing")


def test_star_components_on_ray_match_union_find(cluster):
    from phi1_nb.dedup import components
    rng = np.random.default_rng(3)
    E = [tuple(map(int, rng.integers(0, 300, 2))) for _ in range(250)] + [(i, i + 1) for i in range(300, 360)]
    E = [(a, b) for a, b in E if a != b]
    name = lambda i: i.to_bytes(8, "big")
    ds = ray.data.from_items([{"a": name(a), "b": name(b)} for a, b in E])
    got = {int.from_bytes(r["a"], "big"): int.from_bytes(r["b"], "big") for r in ray_star_components(ds).take_all()}
    want = {i: min(c) for c in components(361, E) for i in c if i != min(c)}
    assert got == want and star_components(E) == {**want, **{r: r for r in set(want.values())}}


# --------------------------------------------------------------------------------------------------- decontaminate
def test_decontaminate_engines_agree(cluster, tmp_path):
    he = load_benchmark("humaneval")
    ex = [{"id": f"ex{i}", "content": f"def f{i}(a, b):\n    \"\"\"Combine a and b, variant {i}.\"\"\"\n    return a * {i} - b\n"} for i in range(30)]
    ex += [{"id": "he7", "content": he[7]["code"].replace("strings", "words")}, {"id": "he20", "content": he[20]["code"] + "\n\nx = 1\n"},
           {"id": "blank", "content": "  "}]
    for run in ("local", "ray"): stage(tmp_path / run, "synth/exercises", ex, 8)
    m1 = run_decontaminate(tmp_path / "local", tau=0.9)
    m2 = run_decontaminate(tmp_path / "ray", tau=0.9, engine="ray")
    assert m1["drops"] == m2["drops"] == {"contaminated": 2, "no_text": 1}
    assert m1["tau_table"] == m2["tau_table"] and m1["counts"] == m2["counts"]
    assert kept_ids(tmp_path / "local" / "decontaminate") == kept_ids(tmp_path / "ray" / "decontaminate")
    for f in ("split.json", "hits.jsonl"):
        assert (tmp_path / "local" / "decontaminate" / f).read_text() == (tmp_path / "ray" / "decontaminate" / f).read_text()


# ------------------------------------------------------------------------------------------------------ bad address
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


def test_unreachable_ray_address_is_a_clear_error(cluster, tmp_path):
    stage(tmp_path, "filter", stdlib_records(5), 5)
    addr = f"127.0.0.1:{free_port()}"
    t0 = time.time()
    with pytest.raises(RayUnavailable, match=f"no Ray cluster answers at {addr}.*ray start --head"):
        run_dedup(tmp_path, engine="ray", ray_address=addr)
    assert time.time() - t0 < 30
    with pytest.raises(RayUnavailable, match="expected host:port"): connect("nonsense")
    with pytest.raises(ValueError, match="dedup.engine in run_dedup 'spark': expected one of local, ray"): run_dedup(tmp_path, engine="spark")
    r = subprocess.run([str(Path(sys.executable).parent / "phi1"), "dedup", "--run-dir", str(tmp_path), "--engine", "ray",
                        "--ray-address", addr], capture_output=True, text=True)
    assert r.returncode == 2 and "no Ray cluster answers" in r.stderr, r.stderr[-2000:]


def test_map_tasks_keeps_order_and_reports_failures(cluster):
    assert map_tasks(lambda x: {"sq": x * x}, list(range(7)), actors=2) == [{"sq": x * x} for x in range(7)]
    def boom(x):
        if x == 2: raise ValueError("bad shard 2")
        return x
    with pytest.raises(Exception, match="bad shard 2"): map_tasks(boom, [1, 2, 3], actors=1)


def test_map_tasks_runs_a_small_cpu_function_as_plain_tasks(cluster, monkeypatch):
    "Issue 28: dedup's write pass in a fresh actor pool cost 17 CPU s at 4,000 records (1 s locally): plain tasks now."
    from phi1_nb import ray_engine
    def no_actors(*a, **k): raise AssertionError("an actor pool (Ray Data map_batches) was started")
    monkeypatch.setattr(ray.data.Dataset, "map_batches", no_actors)
    assert map_tasks(lambda x: {"sq": x * x}, list(range(7)), num_gpus=0) == [{"sq": x * x} for x in range(7)]
    assert map_tasks(lambda x: x + 1, list(range(5)), actors=2, num_gpus=0) == [1, 2, 3, 4, 5]   # 2 at a time
    def boom(x):
        if x == 2: raise ValueError("bad shard 2")
        return x
    with pytest.raises(Exception, match="bad shard 2"): map_tasks(boom, [1, 2, 3], num_gpus=0)
    monkeypatch.setattr(ray_engine, "TASK_FN_BYTES", 0)          # a function holding state: still the actor pool
    with pytest.raises(AssertionError, match="actor pool"): map_tasks(lambda x: x, [1], num_gpus=0)


def test_connect_gives_a_loaded_machine_time_to_start_ray(monkeypatch):
    "Issue 28: at load 12-15 a local Ray died with 'The current node timed out during startup' (agent register, 30 s)."
    seen = []
    monkeypatch.setenv("RAY_agent_register_timeout_ms", "")
    monkeypatch.delenv("RAY_agent_register_timeout_ms")
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.append(os.environ.get("RAY_agent_register_timeout_ms")))
    connect()
    monkeypatch.setenv("RAY_agent_register_timeout_ms", "1234")             # the user's own setting is kept
    connect()
    assert int(seen[0]) >= 300_000 and seen[1] == "1234"


def test_a_local_ray_starts_lean(cluster):
    "Issue 28: a local Ray ran a log monitor and an autoscaler monitor, polling for nothing; connect() starts neither."
    import psutil
    cmds = []
    for p in psutil.Process().children(recursive=True):
        try: cmds.append(" ".join(p.cmdline()))
        except psutil.Error: pass
    assert [c for c in cmds if "raylet/raylet " in c]
    assert not [c for c in cmds if "log_monitor.py" in c or "autoscaler/_private/monitor.py" in c]
