"""The exercises of every stage notebook: question, starter and solution, in one place.

`python scripts/add_exercises.py` writes them: the "## Exercises" section at the end of each stage notebook (starter cells)
and `nbs/solutions/<notebook>` (solution cells). The checks live in `phi1_nb.exercises` (nbs/16_exercises.ipynb: the data half) and
`phi1_nb.exercises_model` (nbs/16a_exercises_model.ipynb: the model half)."""

INTRO = ("Each exercise has a starter cell that runs as it is: replace the `None` (or the stub) with your answer and "
         "rerun; `check` prints *solved* or *not yet solved* and why. The section needs only its own import cell below, not the "
         "stage above: open the notebook, run that cell, and start here. Solutions: `nbs/solutions/{nb}`.")

SPEC = {
"04_filter.ipynb": [
("filter.predict", """**Predict, then run.** The heuristic judge scores snippets with `rubric`. Snippet A is a documented recursive
`gcd` with a loop; snippet B imports `tkinter` and sets constants (the paper's "boring" GUI set-up). Which scores higher?
Write `'A'` or `'B'` before you run `rubric` on `phi1_nb.exercises._A` and `_B`.""",
"answer = None  # 'A' or 'B'\ncheck(\"filter.predict\", answer);",
"from phi1_nb.exercises import _A, _B\nanswer = 'A' if rubric(_A)[0] > rubric(_B)[0] else 'B'\nassert check(\"filter.predict\", answer)"),
("filter.precision_recall", """**By hand.** The held-out metrics threshold the forest's score at `cut`. Write
`precision_recall(y_true, scores, cut)` returning `(precision, recall)` of `scores >= cut` against `y_true == 1`
with NumPy only (precision 0 when nothing is predicted positive); the check compares it with `heldout_metrics`.""",
"def precision_recall(y_true, scores, cut):\n    return None  # your code: (precision, recall)\ncheck(\"filter.precision_recall\", precision_recall);",
"""def precision_recall(y_true, scores, cut):
    import numpy as np
    t, p = np.asarray(y_true) == 1, np.asarray(scores) >= cut
    tp = (t & p).sum()
    return (tp / p.sum() if p.sum() else 0.0), (tp / t.sum() if t.sum() else 0.0)
assert check("filter.precision_recall", precision_recall)"""),
("filter.criterion", """**Add a rubric criterion and watch the forest's AUC.** Suppose the judge (GPT-4 in the paper) values type
hints, which none of the rubric's criteria measures. The check builds 120 labelled functions, trains a random forest
(`fit_forest`) on the rubric's criteria, once without and once with your criterion as an extra feature, and prints
both held-out ROC AUCs. Write `criterion(code) -> float` in [0, 1] that lifts the AUC by at least 0.1.""",
"criterion = None  # a function: code -> float in [0, 1]\ncheck(\"filter.criterion\", criterion);",
"""import ast
def criterion(code):
    "Share of functions whose arguments and return value are all annotated."
    fs = [f for f in ast.walk(ast.parse(code)) if isinstance(f, ast.FunctionDef)]
    return sum(f.returns is not None and all(a.annotation is not None for a in f.args.args) for f in fs) / len(fs) if fs else 0.0
assert check("filter.criterion", criterion)"""),
],
"06_synth.ipynb": [
("synth.topics", """**Predict, then run.** The paper's diversity comes from drawing topics and audiences at random. How many
distinct topic leaves do the first 500 textbook specs of seed 0 (`textbook_spec(0, i)`) cover? Guess from
`len(topic_leaves())`, then count.""",
"n_topics = None\ncheck(\"synth.topics\", n_topics);",
"n_topics = len({textbook_spec(0, i)[\"topic\"] for i in range(500)})\nassert check(\"synth.topics\", n_topics)"),
("synth.unique_names", """**Predict, then measure diversity.** Exercises get generated function names (`NameSpace`). What share of the
first 1000 `exercise_spec(0, i)` names is distinct? Predict first: drawn independently from a space of N names, the
birthday problem expects about 1000²/(2N) repeats; `06b_prompts` draws them through a keyed permutation instead.""",
"share = None\ncheck(\"synth.unique_names\", share);",
"ns = NameSpace()\nnames = [exercise_spec(0, i, ns)[\"function_name\"] for i in range(1000)]\nshare = len(set(names)) / len(names)\nassert check(\"synth.unique_names\", share)"),
("synth.no_benchmark_names", """**Guard the benchmark.** A synthetic exercise named like a HumanEval function invites contamination. Write
`is_clean(names) -> bool` that is True when no name is a HumanEval entry point (`humaneval_entry_points()`).""",
"def is_clean(names):\n    return None  # your code\ncheck(\"synth.no_benchmark_names\", is_clean);",
"def is_clean(names): return not (set(names) & humaneval_entry_points())\nassert check(\"synth.no_benchmark_names\", is_clean)"),
],
"07_dedup.ipynb": [
("dedup.jaccard", """**By hand.** MinHash estimates the Jaccard similarity of two shingle sets. Write `jaccard_sets(a, b)` for two
Python sets (|a ∩ b| / |a ∪ b|; two empty sets count as identical, 1.0); the check compares it with `jaccard` on
`text_shingles` of a few snippets.""",
"def jaccard_sets(a, b):\n    return None  # your code\ncheck(\"dedup.jaccard\", jaccard_sets);",
"def jaccard_sets(a, b): return len(a & b) / len(a | b) if a | b else 1.0\nassert check(\"dedup.jaccard\", jaccard_sets)"),
("dedup.shingle_size", """**Change the shingle size and watch precision and recall.** `near_dup_benchmark()` gives 48 programs in 24
true near-duplicate pairs (one constant edited). Predict how 2-, 5- and 10-word shingles trade precision against
recall at threshold 0.7, then measure: run `find_duplicates(texts, exact=False, ngram=n, threshold=0.7)`, turn its
clusters into pairs with `predicted_pairs`, and give `{n: (precision, recall)}` for n = 2, 5, 10.""",
"from phi1_nb.exercises import near_dup_benchmark, predicted_pairs\nmeasured = None  # {2: (p, r), 5: (p, r), 10: (p, r)}\ncheck(\"dedup.shingle_size\", measured);",
"""from phi1_nb.exercises import near_dup_benchmark, predicted_pairs
texts, true = near_dup_benchmark()
measured = {}
for n in (2, 5, 10):
    got = predicted_pairs(find_duplicates(texts, exact=False, ngram=n, threshold=0.7))
    measured[n] = (len(got & true) / len(got) if got else 1.0, len(got & true) / len(true))
assert check("dedup.shingle_size", measured)"""),
("dedup.break_it", """**Break it.** Write `disguise(code) -> code` that keeps what a program prints
(for whatever its `input()` reads) but makes `find_duplicates` (word shingles, threshold 0.7) stop calling it a near-duplicate of the original. The
check runs each program on its visible input and on two drawn afresh, and adds a hidden program. It also tells you how
many of your disguises the AST-normalized shingles (`shingles='ast'`) still catch, and which detectors a padded copy
defeats.""",
"disguise = None  # a function: code -> code\ncheck(\"dedup.break_it\", disguise);",
"""import builtins, io, keyword, tokenize
def disguise(code):
    "Rename every identifier that is not a keyword or builtin: every word shingle changes, the program does not."
    keep = set(keyword.kwlist) | set(dir(builtins))
    out, prev = [], None
    for t in tokenize.generate_tokens(io.StringIO(code).readline):
        own = t.type == tokenize.NAME and t.string not in keep and prev != "."   # not an attribute like str.split
        out.append((t.type, t.string + "_x" if own else t.string)); prev = t.string
    return tokenize.untokenize(out)
assert check("dedup.break_it", disguise)"""),
],
"07a_decontaminate.ipynb": [
("decontaminate.predict_match_rate", """**Predict, then run.** `phi1_nb.exercises._BENCH` stands in for a benchmark solution. Rename every
variable in it. What AST match rate (`match_rate`) does the renamed copy get against the original? Predict, then compute.""",
"rate = None\ncheck(\"decontaminate.predict_match_rate\", rate);",
"""from phi1_nb.exercises import _BENCH
renamed = _BENCH.replace("balance", "b").replace("operations", "xs").replace("op", "x")
rate = match_rate(_BENCH, renamed)
assert check("decontaminate.predict_match_rate", rate)"""),
("decontaminate.ngram_count", """**By formula.** How many distinct n-gram hashes does `ngram_hashes` give a text of `w` distinct words?
Write `n_ngrams(w, n)` (mind texts shorter than n); the check compares it for n = 5 and 13.""",
"def n_ngrams(w, n=13):\n    return None  # your code\ncheck(\"decontaminate.ngram_count\", n_ngrams);",
"def n_ngrams(w, n=13): return max(0, w - n + 1)\nassert check(\"decontaminate.ngram_count\", n_ngrams)"),
("decontaminate.break_it", """**Break it.** Rewrite `_BENCH` so that it shares no 13-gram with the original (the n-gram check misses it)
while its AST match rate stays at least 0.8 (the paper's AST check still sees the copy), and that still computes the same:
its first function must pass `below_zero`'s own tests, run in the sandbox. Your answer is the rewritten source.""",
"rewrite = None  # a string of Python source\ncheck(\"decontaminate.break_it\", rewrite);",
"""rewrite = '''def is_negative_somewhere(deltas):
    running = 0
    for d in deltas:
        running += d
        if running < 0:
            return True
    return False
'''
assert check("decontaminate.break_it", rewrite)"""),
],
"08_model.ipynb": [
("model.n_params", """**By formula.** Count a `PhiForCausalLM`'s parameters by hand: an input embedding V x d; per layer one
LayerNorm (weight and bias), q, k, v and dense projections d x d with bias, and an MLP d -> ff -> d with biases; a final
LayerNorm; an untied `lm_head` d -> V with bias. Write `n_params(L, d, ff, V)`; the check compares with `count_params`
(the model built on the meta device; the check holds its figures in a formula, so the section needs no transformers).""",
"def n_params(L, d, ff, V):\n    return None  # your code\ncheck(\"model.n_params\", n_params);",
"""def n_params(L, d, ff, V):
    layer = 2*d + 4*(d*d + d) + (d*ff + ff) + (ff*d + d)
    return V*d + L*layer + 2*d + (d*V + V)
assert check("model.n_params", n_params)"""),
("model.embedding_share", """**Predict, then run.** What share of phi-1's parameters (the paper says 1.3B; `count_params` also counts the
untied output layer) sits in its input embedding (51200 x 2048)?
Guess, then compute it with your `n_params` on phi-1's sizes, `MODEL_CONFIGS["phi-1"]` (in the notebook above,
`count_params(phi_config("phi-1", vocab_size=51200))` gives the same counts, after a slow transformers import).""",
"share = None\ncheck(\"model.embedding_share\", share);",
"""c = MODEL_CONFIGS["phi-1"]
share = 51200 * c["hidden_size"] / n_params(c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"], 51200)
assert check("model.embedding_share", share)"""),
("model.mfu", """**Size the hardware.** How many training tokens per second must phi-1-small (`MODEL_CONFIGS["phi-1-small"]`,
V = 51200, 2048-token sequences) process to reach 40% MFU on one A100 (312e12 FLOP/s)? Use `flops_per_token`'s PaLM
formula, 6N + 12·L·d·T FLOPs per token (N: the parameters without the input embedding), and `mfu`.""",
"tokens_per_s = None\ncheck(\"model.mfu\", tokens_per_s);",
"""c = MODEL_CONFIGS["phi-1-small"]; L, d = c["num_hidden_layers"], c["hidden_size"]
N = n_params(L, d, c["intermediate_size"], 51200) - 51200 * d
tokens_per_s = 0.4 * 312e12 / (6 * N + 12 * L * d * 2048)
assert check("model.mfu", tokens_per_s)"""),
],
"09_train.ipynb": [
("train.grad_accum", """**Predict, then run.** phi-1-base trains on 1024 sequences per optimizer step. With a micro batch of 8
sequences per GPU on 8 GPUs, how many gradient accumulation steps does one optimizer step take (an int)?""",
"steps = None\ncheck(\"train.grad_accum\", steps);",
"steps = 1024 // (8 * 8)  # sequences per step / (micro batch x GPUs), as train.grad_accum_steps computes\nassert check(\"train.grad_accum\", steps)"),
("train.initial_loss", """**Predict, then run.** Before training, a model spreads probability about evenly over its vocabulary. What
loss does the first step of a 1024-token vocabulary show? (Compare with the first point of the loss curve above.)""",
"loss = None\ncheck(\"train.initial_loss\", loss);",
"import math\nloss = math.log(1024)\nassert check(\"train.initial_loss\", loss)"),
("train.tokens_seen", """**The paper's budget.** phi-1-base ran 36K steps of 1024 sequences of 2048 tokens on a corpus of about
7B tokens. Give `(tokens_seen, passes_over_the_corpus)`.""",
"answer = None  # (tokens, passes)\ncheck(\"train.tokens_seen\", answer);",
"tokens = 36_000 * 1024 * 2048\nanswer = (tokens, tokens / 7e9)\nassert check(\"train.tokens_seen\", answer)"),
],
"09a_finetune.ipynb": [
("finetune.mask_prompt", """**Mask the prompt.** Finetuning on exercises learns the solution, not the question. Write
`make_labels(prompt_ids, solution_ids)`: the labels of `prompt_ids + solution_ids`, with -100 (ignored by the loss) on
every prompt token.""",
"def make_labels(prompt_ids, solution_ids):\n    return None  # your code\ncheck(\"finetune.mask_prompt\", make_labels);",
"def make_labels(prompt_ids, solution_ids): return [-100] * len(prompt_ids) + list(solution_ids)\nassert check(\"finetune.mask_prompt\", make_labels)"),
("finetune.lr", """**The schedule.** The paper finetunes at peak lr 1e-4 with 50 warmup steps over 6K steps. Write
`lr_at(step, peak, warmup, total)` for transformers' `linear` schedule (linear warmup from 0, then linear decay to 0, and 0 after the last step).""",
"def lr_at(step, peak, warmup, total):\n    return None  # your code\ncheck(\"finetune.lr\", lr_at);",
"""def lr_at(step, peak, warmup, total):
    if step < warmup: return peak * step / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))
assert check("finetune.lr", lr_at)"""),
("finetune.tokens", """**Predict, then compute.** How many tokens does finetuning see (6K steps of 256 x 2048), and what share is
that of pretraining's 36K steps of 1024 x 2048? Give `(tokens, share)`.""",
"answer = None  # (tokens, share)\ncheck(\"finetune.tokens\", answer);",
"ft, pt = 6_000 * 256 * 2048, 36_000 * 1024 * 2048\nanswer = (ft, ft / pt)\nassert check(\"finetune.tokens\", answer)"),
],
"10_eval.ipynb": [
("eval.pass_at_k", """**Implement unbiased pass@k from its formula.** With n samples of which c pass,
pass@k = 1 - C(n-c, k) / C(n, k). Write `my_pass_at_k(n, c, k)` with `math.comb` and compare it with `pass_at_k`
(which uses a product form that does not overflow).""",
"def my_pass_at_k(n, c, k):\n    return None  # your code\ncheck(\"eval.pass_at_k\", my_pass_at_k);",
"import math\ndef my_pass_at_k(n, c, k): return 1 - math.comb(n - c, k) / math.comb(n, k)\nassert check(\"eval.pass_at_k\", my_pass_at_k)"),
("eval.naive_bias", """**Predict, then run.** 20 samples, 2 pass. The naive estimate of pass@10 is 1 - (1 - c/n)^10. Is it above or
below the unbiased one? Give `(naive, unbiased)`.""",
"answer = None  # (naive, unbiased)\ncheck(\"eval.naive_bias\", answer);",
"answer = (1 - (1 - 2/20)**10, pass_at_k(20, 2, 10))\nassert check(\"eval.naive_bias\", answer)"),
("eval.break_it", """**Break it.** Generated code is untrusted. Write a program (a string) that the sandbox must
stop. The check runs it as `run_program(program, timeout=2, memory_mb=256)` does and passes only when a limit of the sandbox
stopped it, by the sandbox's own record (`SandboxResult.stopped_by`): its 2 s clock, its memory cgroup's kill (the
kernel counts it), or its CPU-time rlimit. A `SIGXFSZ` at the 64 MB file-size rlimit does not count: a program can send it
itself once its file is at the limit, and no record tells the two apart. A program that
raises (even `MemoryError`, which is how a per-process memory rlimit shows itself), exits, or sends itself a signal
ended on its own, whatever it prints or its return code says.""",
"program = None  # a string of Python source\ncheck(\"eval.break_it\", program);",
"program = \"while True:\\n    pass\\n\"\nassert check(\"eval.break_it\", program)"),
],
"13_ablation.ipynb": [
("ablation.sign", """**Predict, then run.** `paired_diff(raw, filtered)` (the ablation's `seed_problem_bootstrap` with one seed) reports `diff = mean(raw - filtered)` of per-problem
losses. If filtering helps (lower loss), is `diff` positive or negative? Answer `'+'` or `'-'`, then check on the losses
of `phi1_nb.exercises_model._losses()`.""",
"answer = None  # '+' or '-'\ncheck(\"ablation.sign\", answer);",
"from phi1_nb.exercises_model import _losses\nanswer = '+' if paired_diff(*_losses())['diff'] > 0 else '-'\nassert check(\"ablation.sign\", answer)"),
("ablation.paired_ci", """**By hand.** Write `paired_ci(a, b)`: a 95% percentile-bootstrap interval of the mean of `a[k] - b[k]` over
the problems both dicts share (resample problems with replacement, a few thousand times). It should land close to
`paired_diff`'s `diff_ci`.""",
"def paired_ci(a, b):\n    return None  # your code: (lo, hi)\ncheck(\"ablation.paired_ci\", paired_ci);",
"""import numpy as np
def paired_ci(a, b, n_boot=4000, seed=0):
    keys = sorted(set(a) & set(b)); d = np.array([a[k] - b[k] for k in keys])
    m = d[np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))].mean(1)
    return float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))
assert check("ablation.paired_ci", paired_ci)"""),
("ablation.unpaired", """**Why paired?** Write `unpaired_width(a, b)`: the width of the 95% bootstrap interval of mean(a) - mean(b)
when a's and b's values are resampled independently. Compare it with the paired width: problems differ in difficulty
far more than the arms do, and pairing cancels that.""",
"def unpaired_width(a, b):\n    return None  # your code\ncheck(\"ablation.unpaired\", unpaired_width);",
"""import numpy as np
def unpaired_width(a, b, n_boot=4000, seed=0):
    A, B = np.array(list(a.values())), np.array(list(b.values())); g = np.random.default_rng(seed)
    d = A[g.integers(0, len(A), (n_boot, len(A)))].mean(1) - B[g.integers(0, len(B), (n_boot, len(B)))].mean(1)
    return float(np.percentile(d, 97.5) - np.percentile(d, 2.5))
assert check("ablation.unpaired", unpaired_width)"""),
],
}

# what each notebook's exercises import (the solutions notebook imports the same)
IMPORTS = {
    "04_filter.ipynb": "from phi1_nb.filter import rubric, heldout_metrics",
    "06_synth.ipynb": "from phi1_nb.synth import NameSpace, exercise_spec, textbook_spec, topic_leaves, humaneval_entry_points",
    "07_dedup.ipynb": "from phi1_nb.dedup import find_duplicates, jaccard, text_shingles",
    "07a_decontaminate.ipynb": "from phi1_nb.decontaminate import match_rate, ngram_hashes, NgramIndex",
    "08_model.ipynb": "from phi1_nb.model import MODEL_CONFIGS, PAPER_PARAMS, mfu",
    "09_train.ipynb": "",
    "09a_finetune.ipynb": "",
    "10_eval.ipynb": "from phi1_nb.eval import pass_at_k\nfrom phi1_nb.sandbox import run_program",
    "13_ablation.ipynb": "from phi1_nb.exercises_model import paired_diff",
}

# a figure at the top of the section, to predict from (stage notebooks only)
FIGURES = {
    "07_dedup.ipynb": """import numpy as np, matplotlib.pyplot as plt
from phi1_nb.dedup import lsh_params
b, r = lsh_params(0.7, 128); s = np.linspace(0, 1, 101)
plt.figure(figsize=(5, 3)); plt.plot(s, 1 - (1 - s**r)**b); plt.axvline(0.7, ls="--", color="gray")
plt.xlabel("Jaccard similarity of a pair"); plt.ylabel("P(pair becomes a candidate)")
plt.title(f"MinHash LSH at threshold 0.7: {b} bands x {r} rows"); plt.show()""",
    "08_model.ipynb": """import matplotlib.pyplot as plt
from phi1_nb.exercises_model import _dims, _n_params   # count_params' figures, without the slow transformers import
sizes = ["phi-1-small", "phi-1"]; dims = [_dims(n) for n in sizes]
emb = [_n_params(*x) - _n_params(*x, embeddings=False) for x in dims]; rest = [_n_params(*x) - e for x, e in zip(dims, emb)]
plt.figure(figsize=(5, 3)); plt.bar(sizes, rest, label="layers + output"); plt.bar(sizes, emb, bottom=rest, label="input embedding")
plt.scatter(sizes, [PAPER_PARAMS[n] for n in sizes], color="black", zorder=3, label="the paper's size")
plt.ylabel("parameters"); plt.title("Where the parameters are"); plt.legend(); plt.show()""",
    "13_ablation.ipynb": """import matplotlib.pyplot as plt
from phi1_nb.exercises_model import _losses
raw, filt = _losses(); keys = sorted(raw)
plt.figure(figsize=(4, 4)); plt.scatter([raw[k] for k in keys], [filt[k] for k in keys], s=8)
lo, hi = min(raw.values()), max(raw.values()); plt.plot([lo, hi], [lo, hi], "--", color="gray")
plt.xlabel("loss, raw arm"); plt.ylabel("loss, filtered arm"); plt.title("Per-problem losses of two arms (made up)"); plt.show()""",
}
