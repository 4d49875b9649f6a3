"One MinHash backend a dedup run: a per-shard entry point refuses 'auto'; the tokens version is in the resume key."
import pytest
from phi1_nb.core import read_json, write_shard

CFG = dict(num_perm=16, seed=1, batch_size=10, lsh=(4, 4),
           feat=dict(exact=True, comments=False, near="minhash", shingles="word", ngram=2, verify="exact"))


def test_auto_can_pick_two_backends_whose_signatures_differ():
    "Why: 'auto' decides on a first batch (short documents: NumPy, long ones: rensa), and the two sign differently."
    pytest.importorskip("rensa")
    import numpy as np
    from phi1_nb.minhash import MinHasher
    short, long_ = [np.arange(5, dtype=np.uint64)], [np.arange(5000, dtype=np.uint64)]
    a, b = MinHasher(16, 1, "auto"), MinHasher(16, 1, "auto")
    a.signatures(short); b.signatures(long_)
    assert (a.backend, b.backend) == ("numpy", "rensa")
    assert (a.signatures(short) != b.signatures(short)).any()   # one set, two signatures: they would not meet in LSH


def test_shard_features_refuses_auto(tmp_path):
    pytest.importorskip("pyarrow")
    from phi1_nb.dedup_ray import shard_features
    write_shard(tmp_path / "s.jsonl", [{"id": "a", "content": "def f(a):\n    return a + 1\n"}])
    task, cfg = dict(path=str(tmp_path / "s.jsonl"), offset=0, k=0), dict(CFG, spill=str(tmp_path / "spill"))
    for bad in ("auto", None):
        with pytest.raises(ValueError, match=r"'rensa' or 'numpy', not .*: resolve it once per run \(signature_backend"):
            shard_features(task, dict(cfg, backend=bad))
    assert not (tmp_path / "spill").exists()                       # refused before any work
    assert shard_features(task, dict(cfg, backend="numpy")).num_rows == 1


def test_the_tokens_version_is_in_the_dedup_resume_key(tmp_path, monkeypatch):
    "A new TOKENS_VERSION (code_tokens or the shingling changed) makes a finished dedup start over, not resume."
    import phi1_nb.dedup as dedup
    from phi1_nb.corpus import run_corpus
    run_corpus(tmp_path, limit=12, files_per_shard=6, workers=1, progress=False)
    kw = dict(input_stage="corpus", num_perm=16, backend="numpy")
    dedup.run_dedup(tmp_path, **kw)
    done = tmp_path / "dedup" / "work" / "done.json"
    assert read_json(done)["key"]["tokens"] == dedup.TOKENS_VERSION
    monkeypatch.setattr(dedup, "TOKENS_VERSION", dedup.TOKENS_VERSION + 1)
    dedup.run_dedup(tmp_path, **kw)
    assert read_json(done)["key"]["tokens"] == dedup.TOKENS_VERSION   # recomputed under the new version
