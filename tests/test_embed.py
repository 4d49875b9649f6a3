"Embedders (hf on a tiny saved causal LM, minilm offline, hashing) and the on-disk embedding cache."
import os
from pathlib import Path

import numpy as np
import pytest

from phi1_nb.embed import (EmbeddingCache, HashingEmbedder, HFEmbedder, _caches, content_hash, embed_cached,
                           get_embedder, make_tiny_causal_lm)

STDLIB = Path(os.__file__).parent
TEXTS = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(STDLIB.glob("*.py"))[:10]]
SHORT = ["def add(a, b):\n    return a + b\n", "def plus(x, y):\n    return x + y\n", "HOST = 'example.org'\n"]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny", TEXTS[:6], hidden=32)


@pytest.fixture(scope="module")
def embedders(tiny_lm):
    return {"hashing": get_embedder("hashing", n_features=512),
            "hf": get_embedder("hf", model=str(tiny_lm), max_length=48, batch_size=3),
            "minilm": get_embedder("minilm", max_length=64, batch_size=4)}


@pytest.mark.parametrize("name,dim", [("hashing", 512), ("hf", 32), ("minilm", 384)])
def test_each_embedder_on_a_few_samples(embedders, name, dim):
    e = embedders[name]
    v = e.embed(SHORT + TEXTS[:3])
    assert e.name == name and e.dim == dim and v.shape == (6, dim) and v.dtype == np.float32
    assert np.isfinite(v).all() and np.abs(v).sum(1).min() > 0
    assert np.array_equal(v, e.embed(SHORT + TEXTS[:3]))            # deterministic
    # batching (and so padding) does not change a text's vector
    assert np.allclose(e.embed([TEXTS[1]])[0], v[4], atol=1e-4)
    assert e.embed([]).shape == (0, dim)


@pytest.mark.parametrize("name", ["hashing", "minilm"])
def test_similar_code_is_closer(embedders, name):
    v = embedders[name].embed(SHORT)
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert cos(v[0], v[1]) > cos(v[0], v[2])


def test_hf_counts_truncation_and_pools_over_real_tokens(embedders):
    e = embedders["hf"]
    v = e.embed(["x = 1", TEXTS[0], ""])
    assert e.last_truncated.tolist() == [False, True, False]     # a whole file is longer than 48 tokens
    assert np.isfinite(v).all()
    # mean pooling ignores padding: "x = 1" alone equals "x = 1" padded next to a long file
    assert np.allclose(e.embed(["x = 1"])[0], v[0], atol=1e-4)
    # truncation really cuts: two files sharing the first 48 tokens have the same vector
    long = TEXTS[0]
    assert np.allclose(e.embed([long])[0], e.embed([long + "\ndef extra(): pass\n" * 50])[0], atol=1e-5)


def test_minilm_is_offline_and_normalised(embedders):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    v = embedders["minilm"].embed(SHORT)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-4)
    embedders["minilm"].embed([TEXTS[0], "x = 1"])
    assert embedders["minilm"].last_truncated.tolist() == [True, False]


def test_unknown_embedder_names_the_choices():
    with pytest.raises(ValueError, match="hashing"): get_embedder("codegen")
    with pytest.raises(TypeError, match="list of str"): HashingEmbedder().embed([1])


class Counting(HashingEmbedder):
    def __init__(self, **kw): super().__init__(**kw); self.seen = 0
    def _embed(self, texts): self.seen += len(texts); return super()._embed(texts)


def test_cache_hits_misses_and_reload(tmp_path):
    _caches.clear()
    e = Counting(n_features=64, max_chars=1000)
    a = embed_cached(e, TEXTS[:4] + TEXTS[:4], tmp_path)
    assert e.seen == 4 and np.array_equal(a[:4], a[4:])
    assert e.last_truncated.tolist() == [len(t) > 1000 for t in TEXTS[:4]] * 2
    b = embed_cached(e, TEXTS[2:7], tmp_path)
    assert e.seen == 7 and np.array_equal(b[:2], a[2:4])
    assert np.array_equal(b, e.embed(TEXTS[2:7]))                  # cached vectors are the computed ones
    _caches.clear()                                                  # a new process reads the folder back
    c = EmbeddingCache(tmp_path, e.key)
    assert len(c) == 7 and content_hash(TEXTS[6]) in c
    e2 = Counting(n_features=64, max_chars=1000)
    assert np.array_equal(embed_cached(e2, TEXTS[:7], tmp_path)[2:], b) and e2.seen == 0
    assert e2.last_truncated.tolist() == [len(t) > 1000 for t in TEXTS[:7]]
    # other parameters never share vectors
    e3 = Counting(n_features=128)
    assert embed_cached(e3, TEXTS[:2], tmp_path).shape == (2, 128) and e3.seen == 2
    assert not list(tmp_path.rglob(".tmp-*"))                        # writes are atomic


def test_cache_ignores_a_chunk_without_its_keys(tmp_path):
    _caches.clear()
    e = Counting(n_features=32)
    embed_cached(e, TEXTS[:3], tmp_path)
    # a crash between the vectors and the keys file leaves an orphan .npy: it is not trusted
    (tmp_path / e.key / "orphan.npy").write_bytes(b"garbage")
    _caches.clear()
    assert len(EmbeddingCache(tmp_path, e.key)) == 3
    # a keys file whose vectors are missing is ignored too
    k = next((tmp_path / e.key).glob("*.keys.npy"))
    (tmp_path / e.key / (k.name[:-len(".keys.npy")] + ".npy")).unlink()
    _caches.clear()
    assert len(EmbeddingCache(tmp_path, e.key)) == 0
    embed_cached(e, TEXTS[:3], tmp_path)
    assert e.seen == 6


def test_a_long_embedding_shows_a_progress_bar(tmp_path, capsys, monkeypatch):
    import sys
    from phi1_nb.embed import HFEmbedder, make_tiny_causal_lm
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)   # the bar shows on a terminal only (not in a papermill page)
    texts = [f"def f{i}(x):\n    return x + {i}\n" for i in range(40)]
    lm = make_tiny_causal_lm(tmp_path / "lm", texts, vocab_size=300)
    e = HFEmbedder(str(lm), max_length=32, batch_size=4, device="cpu")
    e.embed(texts)
    assert "embed (hf)" in capsys.readouterr().err
    e.progress = False; e.embed(texts)
    assert "embed (hf)" not in capsys.readouterr().err
