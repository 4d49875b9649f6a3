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


class AnswerServer:
    "A minimal OpenAI-compatible chat endpoint (FastAPI + uvicorn in a thread) that answers with `answer(body) -> str`."
    def __init__(self, answer):
        import fastapi, uvicorn
        app, self.requests = fastapi.FastAPI(), []
        @app.post("/v1/chat/completions")
        async def chat(body:dict):
            self.requests.append(body)
            text = answer(body)
            n_in, n_out = sum(len(m["content"].split()) for m in body["messages"]), len(text.split())
            return {"id": f"cmpl-{len(self.requests)}", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}}
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self):
        import threading
        self.thread = threading.Thread(target=self.server.run, daemon=True); self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 30 or not self.thread.is_alive(): raise RuntimeError("the answer server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *a):
        self.server.should_exit = True; self.thread.join(10)


def served_answers(seed:int, fixture:Path) -> tuple[dict, dict, object]:
    "The hand-written answers of `fixture` assigned to the first specs of `seed`: (exercises, textbooks, answer function)."
    from phi1_nb.synth import exercise_spec, textbook_spec
    d = json.loads(Path(fixture).read_text())
    ex = {exercise_spec(seed, i)["function_name"]: (k, v) for i, (k, v) in enumerate(d["exercises"].items())}
    tb = {tuple(textbook_spec(seed, i)["seed_words"]): (k, v, textbook_spec(seed, i)["topic"].split(" > ")[-1])
          for i, (k, v) in enumerate(d["textbooks"].items())}
    def answer(body):
        msg = body["messages"][-1]["content"]
        for name, (_, v) in ex.items():
            if f"function `{name}`" in msg: return v["answer"].replace("{name}", name)
        for words, (_, v, leaf) in tb.items():   # a lesson is about the topic it was asked for (issue 25: relevance)
            if f"text: {', '.join(words)}." in msg: return v["answer"].replace("{leaf}", leaf).replace("{words}", ", ".join(words))
        raise KeyError("a prompt that no served answer was written for")
    return ex, {w: (k, v) for w, (k, v, _) in tb.items()}, answer
