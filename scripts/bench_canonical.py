#!/usr/bin/env python3
"""Records/s of the dedup stage's two shingle kinds on the same input: word 5-grams (BigCode's The Stack recipe) and
canonical-code ('ast') 5-grams. Interleaved rounds, medians. The input: the Python standard library's files (a Stack
record is a file), and its top-level functions.

usage: PYTHONPATH=. .venv/bin/python scripts/bench_canonical.py [--files 600] [--rounds 3]"""
import argparse, ast, glob, os, statistics, sysconfig, time

from phi1_nb.minhash import texts_shingles


def inputs(n_files: int):
    paths = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    files, funcs = [], []
    for p in paths:
        try: src = open(p, encoding="utf-8").read(); tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError): continue
        if len(files) < n_files and len(src) < 200_000: files.append(src)
        funcs += [ast.get_source_segment(src, f) for f in tree.body if isinstance(f, ast.FunctionDef)]
        if len(files) >= n_files and len(funcs) >= 5 * n_files: break
    return {"files": files, "functions": funcs[:5 * n_files]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f}")
    for name, texts in inputs(a.files).items():
        secs = {"word": [], "ast": []}
        for _ in range(a.rounds):
            for kind in secs:                                   # interleaved: one round of each kind in turn
                t = time.perf_counter(); texts_shingles(texts, kind); secs[kind].append(time.perf_counter() - t)
        mb = sum(map(len, texts)) / 1e6
        for kind, s in secs.items():
            m = statistics.median(s)
            print(f"{name:9s} n={len(texts):5d} ({mb:.1f} MB)  {kind:4s}: {len(texts) / m:8.0f} records/s  {mb / m:6.2f} MB/s")


if __name__ == "__main__":
    main()
