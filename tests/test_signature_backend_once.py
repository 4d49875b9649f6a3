"The tokens version is in the dedup resume key."
import pytest
from phi1_nb.core import read_json, write_shard

CFG = dict(num_perm=16, seed=1, batch_size=10, lsh=(4, 4),
           feat=dict(exact=True, comments=False, near="minhash", shingles="word", ngram=2, verify="exact"))


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
