"""A real OpenAI-compatible server for the tests: `transformers serve` on 127.0.0.1 with a tiny random Phi checkpoint
(its own BPE tokenizer and a chat template), built in a couple of seconds on a CPU."""
import json, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]


def build_tiny_checkpoint(out:Path, seed:int=0) -> Path:
    "A tiny PhiForCausalLM (random weights) with a byte-level BPE tokenizer and a chat template, saved to `out`."
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PhiConfig, PhiForCausalLM, PreTrainedTokenizerFast
    out = Path(out); out.mkdir(parents=True, exist_ok=True)
    text = ["def add(a, b):\n    return a + b\n", "Python lists hold items; a loop visits each item in order.",
            "assert add(1, 2) == 3\n", "Binary search halves the interval until the key is found."] * 20
    tk = Tokenizer(models.BPE()); tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(text, trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                                  pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = PhiConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                    max_position_embeddings=1024, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                    pad_token_id=tok.pad_token_id)
    PhiForCausalLM(cfg).save_pretrained(out)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id).save_pretrained(out)
    return out


def free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class TransformersServer:
    "`transformers serve` in a child process, forced to one checkpoint; `base_url` ends in /v1; stopped on exit."
    def __init__(self, checkpoint:Path, startup_timeout:float=120.0, log:Path|None=None):
        self.checkpoint, self.startup_timeout, self.port = Path(checkpoint), startup_timeout, free_port()
        self.base_url, self.model, self.log = f"http://127.0.0.1:{self.port}/v1", str(checkpoint), log

    def __enter__(self):
        exe = shutil.which("transformers", path=os.path.dirname(sys.executable)) or shutil.which("transformers")
        self._log = open(self.log or os.devnull, "wb")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        self.proc = subprocess.Popen([exe, "serve", str(self.checkpoint), "--host", "127.0.0.1", "--port", str(self.port),
                                      "--device", "cpu", "--dtype", "float32", "--default-seed", "0"],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < self.startup_timeout:
            if self.proc.poll() is not None: break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200: return self
            except OSError: time.sleep(0.3)
        self.__exit__(None, None, None)
        tail = Path(self.log).read_text()[-2000:] if self.log else ""
        raise RuntimeError(f"transformers serve did not come up in {self.startup_timeout:.0f}s (exit {self.proc.returncode}): {tail}")

    def __exit__(self, *a):
        if self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(15)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait(5)
        self._log.close()
