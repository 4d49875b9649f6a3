"""Every user mistake of the issue answered in one line: Ctrl-C (mid-run and during imports), a read-only folder, a full
disk, an empty source, a busy run folder (every stage), an unknown flag (the closest valid one named). Each asserts the one
line, the exit code, and that no output folder is left."""
import os, re, resource, signal, subprocess, sys, time
from pathlib import Path

import pytest

from phi1_nb.cli import main
from phi1_nb.core import load_config, read_json
from phi1_nb.pipeline import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[1]
CLI = "import sys; from phi1_nb.cli import console; sys.exit(console())"   # what the `phi1` console script runs
ROOTUSER = os.geteuid() == 0


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def error_lines(err: str) -> list[str]:
    "stderr's lines less progress bars."
    return [l for l in re.split(r"[\r\n]", err) if l.strip() and not re.match(r"^\S+:\s+\d+%\|", l)]


def phi1(*args, pre: str = "", **kw):
    return subprocess.run([sys.executable, "-c", pre + CLI, *map(str, args)], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300, **kw)


def one_line(r, rc: int, expect: str):
    lines = error_lines(r.stderr)
    assert r.returncode == rc and len(lines) == 1 and expect in lines[0], (r.returncode, r.stderr[-3000:])
    return lines[0]


def leftovers(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.name != ".phi1.lock") if d.exists() else []


def test_ctrl_c_mid_run_is_one_line_and_the_rerun_resumes(tmp_path):
    run = tmp_path / "run"
    args = ["corpus", "--run-dir", run, "--limit", 400, "--files_per_shard", 50]
    p = subprocess.Popen([sys.executable, "-c", CLI, *map(str, args)], cwd=ROOT, env=env(), stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while len(list((run / "corpus" / "parts").glob("*.json"))) < 2 and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    err = p.stderr.read()
    assert p.wait() == 130 and error_lines(err) == ["phi1: interrupted; rerun resumes"], err[-3000:]
    assert not (run / "corpus" / "manifest.json").exists() and not list(run.rglob(".tmp-*"))   # no finished output
    r = phi1(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_json(run / "corpus" / "manifest.json")["resumed_tasks"] >= 2


@pytest.mark.slow
def test_ctrl_c_on_the_pipeline(tmp_path):
    "Ctrl-C signals the terminal's whole process group while a stage notebook runs: one line, exit 130, no kernel noise."
    p = subprocess.Popen([sys.executable, "-c", CLI, "pipeline", "--stages", "corpus", "--run.runs_dir", str(tmp_path),
                          "--run.name", "run"], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    t0 = time.time()
    while not list(tmp_path.glob("run/notebooks/*.kernel.log")) and p.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    time.sleep(1.0)                                   # the kernel is up and running the notebook
    os.killpg(p.pid, signal.SIGINT)
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 130 and error_lines(err) == ["phi1: interrupted; rerun resumes"], err[-3000:]
    assert not (tmp_path / "run" / "corpus" / "manifest.json").exists()


def test_ctrl_c_during_imports(tmp_path):
    "SIGINT while the stages' libraries load (here: at numpy's import) is the same one line, not an import traceback."
    hook = ("import os, signal, sys\nclass Hit:\n def find_spec(self, name, *a):\n"
            "  if name == 'numpy': os.kill(os.getpid(), signal.SIGINT)\nsys.meta_path.insert(0, Hit())\n")
    r = phi1("corpus", "--run-dir", tmp_path / "run", pre=hook)
    one_line(r, 130, "phi1: interrupted; rerun resumes")
    assert not (tmp_path / "run").exists()


@pytest.fixture
def mount(tmp_path):
    "A tmpfs mounted for the test (root only), unmounted after it."
    made = []
    def mk(name, opts):
        d = tmp_path / name; d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(d)], capture_output=True)
        if r.returncode: pytest.skip(f"cannot mount a tmpfs: {r.stderr!r}")
        made.append(d); return d
    yield mk
    for d in made: subprocess.run(["umount", str(d)])


@pytest.mark.parametrize("flag", ["--run.runs_dir", "--run-dir"])
def test_read_only_folder(tmp_path, mount, flag):
    if ROOTUSER: ro = mount("ro", "ro,size=1m")
    else: ro = tmp_path / "ro"; ro.mkdir(); ro.chmod(0o555)
    line = one_line(phi1("corpus", flag, ro / "x"), 2, f"{ro / 'x'}: ")
    assert re.search("Read-only file system|Permission denied", line), line
    assert not (ro / "x").exists()


@pytest.mark.slow
def test_full_disk(tmp_path, mount):
    "One shard larger than the disk: one line naming the file, exit 2, no stage folder, no half-written file."
    if ROOTUSER:
        full, pre = mount("full", "size=300k"), ""
        expect = "No space left on device"
    else:   # a file-size limit makes the same write fail (EFBIG) without root
        full = tmp_path / "full"; full.mkdir(); expect = "File too large"
        pre = "import resource, signal; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))\n"
    line = one_line(phi1("corpus", "--run-dir", full / "run", "--limit", 300, "--files_per_shard", 300, pre=pre), 2, expect)
    assert line.startswith(f"phi1 corpus: error: {full / 'run' / 'corpus'}/part-00000."), line
    assert not (full / "run" / "corpus").exists() and leftovers(full) == []


def test_empty_source(tmp_path):
    (tmp_path / "empty").mkdir()
    one_line(phi1("corpus", "--run-dir", tmp_path / "run", "--source", tmp_path / "empty"), 2,
             f"0 .py files in {tmp_path / 'empty'}")
    assert not (tmp_path / "run" / "corpus").exists()


@pytest.mark.parametrize("cmd", STAGE_NAMES + ["pipeline"])
def test_a_busy_run_folder_refuses_every_stage(tmp_path, capsys, cmd):
    from phi1_nb.core import hold_run
    run = tmp_path / "run"
    held = hold_run(run, "test")   # another command holds it (flock: a second open file in this process is refused too)
    try:
        args = ["--run.runs_dir", tmp_path, "--run.name", "run"] if cmd == "pipeline" else ["--run-dir", run]
        rc = main([cmd, *map(str, args)])
    finally: held.close()
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and f"run folder in use by pid {os.getpid()}" in lines[0], err[-3000:]
    assert sorted(p.name for p in run.iterdir()) == [".phi1.lock"]


def _typo(k: str) -> str: return k[:-2] + k[-1] if len(k) > 3 else k + "x"


@pytest.mark.parametrize("cmd", [s for s in STAGE_NAMES if load_config("tiny").section(s)] + ["pipeline"])
def test_an_unknown_flag_names_the_closest(tmp_path, capsys, cmd):
    "A typo of a stage's own key, of `section.key`, and `--stage` for `--stages`: the closest valid option is named."
    if cmd == "pipeline": cases = [(["--stage", "corpus"], "did you mean --stages?"),
                                   (["--filter.treshold", "0.5"], "did you mean 'filter.threshold'?")]
    else:
        k = max(load_config("tiny").section(cmd), key=len)
        cases = [([f"--{_typo(k)}", "1"], f"did you mean --{k}?"), ([f"--{cmd}.{_typo(k)}", "1"], f"did you mean '{cmd}.{k}'?")]
    for argv, expect in cases:
        rc = main([cmd, *argv, "--run.runs_dir" if cmd == "pipeline" else "--run-dir", str(tmp_path / "run")])
        lines = error_lines(capsys.readouterr().err)
        assert rc == 2 and len(lines) == 1 and expect in lines[0], (argv, lines)
        assert not (tmp_path / "run").exists()


def test_a_failed_command_releases_the_run_folder(tmp_path):
    "An error inside the pipeline lets go of the run folder at once: the same process (or the next command) may run there."
    from phi1_nb.pipeline import run_pipeline
    for _ in range(2):
        with pytest.raises(ValueError, match="unknown stage"):
            run_pipeline("tiny", {"run": {"runs_dir": str(tmp_path), "name": "run"}}, stages="nosuch")


BAD_VALUES = [   # (command, flags, the flag the one line must name): each value checked against the preset's type and range
    ("dedup", ["--threshold", "abc"], "--dedup.threshold 'abc'"), ("dedup", ["--ngram", "2.5"], "--dedup.ngram 2.5"),
    ("dedup", ["--ngram", "0"], "--dedup.ngram 0"), ("dedup", ["--batch_size", "0"], "--dedup.batch_size 0"),
    ("dedup", ["--exact", "maybe"], "--dedup.exact 'maybe'"), ("dedup", ["--fp_weight", "2"], "--dedup.fp_weight 2"),
    ("dedup", ["--dedup.threshold", "0.5", "--dedup.threshold", "abc"], "--dedup.threshold 'abc'"),
    ("tokenizer", ["--max_docs", "-1"], "--tokenizer.max_docs -1"),
    ("tokenizer", ["--model_max_length", "abc"], "--tokenizer.model_max_length 'abc'"),
    ("decontaminate", ["--taus", "x,y"], "--decontaminate.taus 'x,y'"), ("corpus", ["--limit", "abc"], "--corpus.limit 'abc'"),
    ("corpus", ["--max_bytes", "["], "--corpus.max_bytes '['"),
]


@pytest.mark.parametrize("cmd,flags,named", BAD_VALUES)
def test_a_bad_value_is_one_line_naming_its_flag(tmp_path, capsys, cmd, flags, named):
    rc = main([cmd, *flags, "--run-dir", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"phi1 {cmd}: error: {named}"), lines
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("text,expect", [("dedup:\n  threshold: abc\n", "dedup.threshold in "),
                                         ("dedup: [\n", "not valid YAML (line ")])
def test_a_bad_preset_file_is_one_line_naming_it(tmp_path, capsys, text, expect):
    (p := tmp_path / "mine.yaml").write_text(text)
    rc = main(["dedup", "--preset", str(p), "--run-dir", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and str(p) in lines[0] and expect in lines[0], lines
    assert not (tmp_path / "run").exists()


def test_a_source_of_empty_shards_is_one_line(tmp_path, capsys):
    from phi1_nb.core import write_shard
    (src := tmp_path / "src").mkdir(); write_shard(src / "a.parquet", [], schema=None)
    rc = main(["corpus", "--source", str(src), "--format", "stack", "--run-dir", str(tmp_path / "run")])
    lines = error_lines(capsys.readouterr().err)
    assert rc == 2 and len(lines) == 1 and f"0 records in {src}" in lines[0], lines
    assert not (tmp_path / "run" / "corpus").exists()
