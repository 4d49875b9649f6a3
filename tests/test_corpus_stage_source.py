"""A phi1 stage folder used as a corpus source goes through the read contract (contract.verify_shards): a shard changed
after its stage wrote it is a one-line error naming the file, before any work (issue 30 review: stage_listed read
the manifest to pick the shards but never checked their checksums)."""
import subprocess, sys
from pathlib import Path

import pytest
from phi1_nb.core import ChecksumError, read_dataset, read_shard, write_shard
from phi1_nb.corpus import run_corpus

ROOT = Path(__file__).parents[1]


def corpus_stage(tmp_path) -> Path:
    "A real corpus stage folder (zstd JSON Lines shards, manifest, card, receipts) from a small Stack-style source."
    src = tmp_path / "src"
    for k in range(2):
        write_shard(src / f"train-{k}.jsonl", [{"content": f"def f{k}_{i}(x):\n    return x + {i}\n",
                                                "max_stars_repo_path": f"p{k}/m{i}.py"} for i in range(4)])
    run_corpus(tmp_path / "one", source=str(src), format="stack", limit=None, workers=1, progress=False)
    return tmp_path / "one" / "corpus"


def test_a_stage_folder_reads_as_a_source_and_a_changed_shard_is_refused(tmp_path):
    st = corpus_stage(tmp_path)
    m = run_corpus(tmp_path / "two", source=str(st), format="stack", limit=None, workers=1, progress=False)
    assert m["counts"]["out"] == 8 and sorted(r["content"] for r in read_dataset(tmp_path / "two" / "corpus")) == \
        sorted(r["content"] for r in read_dataset(st))                     # its manifest, params, card: not records
    shard = st / next(p.name for p in sorted(st.iterdir()) if p.name.startswith("part-"))
    recs = list(read_shard(shard)); recs[0]["content"] = recs[0]["content"].replace("x +", "x -")
    write_shard(shard, recs)                                                # a valid shard, edited after its stage
    with pytest.raises(ChecksumError) as e:      # (its size or its sha256)
        run_corpus(tmp_path / "three", source=str(st), format="stack", limit=None, workers=1, progress=False)
    assert str(shard) in str(e.value) and "manifest" in str(e.value) and "\n" not in str(e.value), e.value
    assert not (tmp_path / "three" / "corpus" / "manifest.json").exists()
    r = subprocess.run([sys.executable, "-c", "import sys; from phi1_nb.cli import main; sys.exit(main(sys.argv[1:]))",
                        "corpus", "--run-dir", str(tmp_path / "four"), "--source", str(st), "--format", "stack"],
                       capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and str(shard) in err[0] and "Traceback" not in r.stderr, r.stderr
