"Tokenizer, packing and model configs (phi1_nb.model)."
import math, os
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from phi1_nb.core import write_manifest, write_shard
from phi1_nb.model import (EOT, MODEL_CONFIGS, PAPER_PARAMS, WHITESPACE_TOKENS, PackedDataset, build_model, count_params,
                           detect_peak_flops, flops_per_token, is_valid, load_model, load_tokenizer, mfu, pack, phi_config, run_tokenizer,
                           token_dtype, train_tokenizer)

STDLIB = sorted(Path(os.__file__).parent.glob("*.py"))


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    "A 512-token CodeGen-style BPE trained on 30 stdlib files, saved and reloaded through AutoTokenizer."
    d = tmp_path_factory.mktemp("tok")
    train_tokenizer((p.read_text() for p in STDLIB[:30]), vocab_size=512).save_pretrained(d)
    return AutoTokenizer.from_pretrained(d)


CODE = [
    "def f(x):\n\tif x:\n\t\treturn x\n\treturn None\n",
    "class A:\n" + " " * 40 + "x = 1\n" + " " * 100 + "y = 2\n",
    "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\tdeep = 'tabs'\n  mixed \t \t spaces\n",
    "s = 'héllo wörld ✓ 日本'  # unicode, trailing spaces   \n\n\n",
    "x = f'{a!r:>10}'\r\nwindows_line = True\r\n",
    "",
]


@pytest.mark.parametrize("code", CODE)
def test_tokenizer_round_trip(tok, code):
    ids = tok(code)["input_ids"]
    assert tok.decode(ids) == code


def test_whitespace_runs_are_single_tokens(tok):
    toks = tok.convert_ids_to_tokens(tok(" " * 40 + "x")["input_ids"])
    assert toks[:2] == [" " * 31, " " * 9]
    assert tok.convert_ids_to_tokens(tok("\t\t\tx")["input_ids"])[0] == "\t\t\t"
    vocab = tok.get_vocab()
    assert all(w in vocab for w in WHITESPACE_TOKENS) and len(tok) == 512
    assert tok.eos_token == tok.bos_token == tok.pad_token == EOT


def test_tokenizer_errors(tmp_path):
    with pytest.raises(ValueError, match="too small"): train_tokenizer(["x"], vocab_size=100)
    with pytest.raises(OSError, match="train one instead"): load_tokenizer("/no/such/tokenizer")
    # a model folder without tokenizer files: AutoTokenizer would give a 1-token GPT2Tokenizer that encodes code to []
    build_model(phi_config("tiny", train_tokenizer(["def f(): pass"] * 3, vocab_size=300))).save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="no tokenizer files"): load_tokenizer(tmp_path)


@pytest.mark.parametrize("name,peak", [("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100-PCIE-40GB", 312e12),
                                       ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                       ("NVIDIA H200", 989e12), ("NVIDIA L40S", 362e12), ("Tesla V100-SXM2-16GB", 1.25e14)])
def test_detect_peak_flops(name, peak):
    assert detect_peak_flops(1.25e14, device_name=name) == peak


def test_peak_flops_measured_on_cpu_without_default():
    if torch.cuda.is_available(): pytest.skip("a GPU is present")
    assert 1e8 < detect_peak_flops(None) < 1e14 and detect_peak_flops(2e11) == 2e11


def test_run_tokenizer_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the 'dedup' stage first"): run_tokenizer(tmp_path)
    recs = [{"id": p.stem, "content": p.read_text()} for p in STDLIB[:10]]
    write_manifest(tmp_path/"dedup", stage="dedup", shards=[write_shard(tmp_path/"dedup/part-00000.jsonl", recs)])
    m = run_tokenizer(tmp_path, vocab_size=600, max_docs=5)
    assert m["counts"]["in"] == 5 and m["vocab_size"] == 600
    t = AutoTokenizer.from_pretrained(tmp_path/"tokenizer")
    assert len(t) == 600 and t.decode(t(recs[0]["content"])["input_ids"]) == recs[0]["content"]


def _stream(tok, docs):
    return sum((tok(d["content"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for d in docs), [])


@pytest.mark.parametrize("seq_len", [7, 64, None])
def test_packing_boundaries(tok, tmp_path, seq_len):
    docs = [{"id": str(i), "content": p.read_text()[:3000]} for i, p in enumerate(STDLIB[:6])]
    stream = _stream(tok, docs)
    seq_len = seq_len or len(stream) // 4  # None: a length that may divide the stream exactly
    m = pack(docs, tok, tmp_path, seq_len=seq_len, batch_size=4)  # batches smaller than the doc count
    ds = PackedDataset(tmp_path)
    assert m["n_tokens"] == len(stream) and m["seq_len"] == seq_len and m["dtype"] == "uint16"
    assert len(ds) == math.ceil(len(stream) / seq_len)
    rows = [ds[i] for i in range(len(ds))]
    assert all(r["input_ids"].shape == (seq_len,) for r in rows)
    flat = torch.cat([r["input_ids"] for r in rows]).tolist()
    labels = torch.cat([r["labels"] for r in rows]).tolist()
    assert flat[:len(stream)] == stream                  # nothing lost, nothing repeated, order kept
    assert labels[:len(stream)] == stream and all(l == -100 for l in labels[len(stream):])  # padding out of the loss
    assert flat.count(tok.eos_token_id) - (len(flat) - len(stream)) == len(docs) + sum(EOT in d["content"] for d in docs)
    with pytest.raises(IndexError): ds[len(ds)]


def test_pack_exact_multiple_has_no_padding(tok, tmp_path):
    docs = [{"content": "x = 1\n"}] * 10
    n = len(_stream(tok, docs))
    pack(docs, tok, tmp_path, seq_len=n // 5 if n % 5 == 0 else n)
    ds = PackedDataset(tmp_path)
    assert all((ds[i]["labels"] != -100).all() for i in range(len(ds)))


def test_pack_exercises_masks_prompt(tok, tmp_path):
    ex = [{"id": str(i), "prompt": f"def f{i}(a):\n    \"\"\"Return a plus {i}.\"\"\"\n", "solution": f"    return a + {i}\n"} for i in range(20)]
    pack(ex, tok, tmp_path/"m", seq_len=32)
    pack(ex, tok, tmp_path/"u", seq_len=32, mask_prompt=False)
    dm, du = PackedDataset(tmp_path/"m"), PackedDataset(tmp_path/"u")
    lab = torch.cat([dm[i]["labels"] for i in range(len(dm))])
    ids = torch.cat([dm[i]["input_ids"] for i in range(len(dm))])
    n_tok = dm.manifest["n_tokens"]
    kept = [t for t, l in zip(ids[:n_tok].tolist(), lab[:n_tok].tolist()) if l != -100]
    assert kept == _stream(tok, [{"content": e["solution"]} for e in ex])  # exactly the solutions + eos
    assert all((du[i]["labels"][:32] != -100).sum() > 0 for i in range(len(du) - 1))
    assert du.mask is not None and int(np.asarray(du.mask).sum()) == n_tok  # unmasked: every token counts
    pack([{"content": "a = 1"}], tok, tmp_path/"m", seq_len=32)   # repacking plain text removes the stale mask
    assert PackedDataset(tmp_path/"m").mask is None


def test_pack_skips_empty_and_dtype(tok, tmp_path):
    m = pack([{"content": ""}, {"content": "x"}], tok, tmp_path, seq_len=8)
    assert m["drops"] == {"empty": 1} and m["counts"]["out"] == 1
    assert token_dtype(51200) == np.uint16 and token_dtype(100_000) == np.uint32


def test_valid_split_is_stable():
    a = [is_valid({"id": f"doc{i}"}, 0.2) for i in range(2000)]
    assert a == [is_valid({"id": f"doc{i}"}, 0.2) for i in range(2000)]
    assert 0.15 < sum(a) / len(a) < 0.25 and not any(is_valid({"id": str(i)}, 0.0) for i in range(100))


def _analytic_params(c):
    "Parameters of phi's architecture from the shapes alone (untied head with bias)."
    d, L, V, m = c.hidden_size, c.num_hidden_layers, c.vocab_size, c.intermediate_size
    layer = 4 * (d * d + d) + (d * m + m) + (m * d + d) + 2 * d   # q,k,v,dense; fc1, fc2; one shared LayerNorm
    return V * d + L * layer + 2 * d + (d * V + V)


@pytest.mark.parametrize("name", list(MODEL_CONFIGS))
def test_param_counts_meta(name):
    c = phi_config(name)
    n = count_params(c)
    assert n == _analytic_params(c)
    if name in PAPER_PARAMS: assert abs(n / PAPER_PARAMS[name] - 1) < 0.1, (name, n)


def test_paper_shapes_and_flops():
    c = phi_config("phi-1")
    assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size, c.vocab_size) == (24, 2048, 32, 8192, 51200)
    assert int(c.hidden_size // c.num_attention_heads * c.rope_parameters["partial_rotary_factor"]) == 32   # rotary dim 32
    s = phi_config("phi-1-small")
    assert (s.num_hidden_layers, s.hidden_size, s.num_attention_heads, s.intermediate_size) == (20, 1024, 16, 4096)
    assert (c.resid_pdrop, c.embd_pdrop, c.attention_dropout) == (0.1, 0.1, 0.1)
    assert abs(flops_per_token(c, 2048) / 9.1e9 - 1) < 0.01        # the paper's ~9.1e9 FLOPs/token
    assert mfu(1000, 1e9, 1e12) == 1.0 and mfu(1000, 1e9, 1e12, n_devices=4) == 0.25


def test_config_from_tokenizer(tok):
    c = phi_config("tiny", tok, dropout=0.0)
    assert c.vocab_size == 512 and (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (tok.eos_token_id,) * 3
    assert c.resid_pdrop == 0.0
    with pytest.raises(ValueError, match="unknown model"): phi_config("phi-2")
    with pytest.raises(ValueError, match="vocab_size"): phi_config("tiny", tok, vocab_size=256)


def test_save_reload_identical_logits(tok, tmp_path):
    torch.manual_seed(0)
    m = build_model(phi_config("tiny", tok)).eval()
    assert m.config._attn_implementation == ("flash_attention_2" if torch.cuda.is_available() and
                                             __import__("importlib").util.find_spec("flash_attn") else "sdpa")
    m.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    x = torch.tensor([tok("def f(x):\n    return x\n")["input_ids"]])
    with torch.no_grad():
        a = m(x).logits
        assert torch.equal(a, load_model(tmp_path).eval()(x).logits)
        assert torch.equal(a, AutoModelForCausalLM.from_pretrained(tmp_path).eval()(x).logits)
    assert len(load_tokenizer(tmp_path)) == len(tok)
