"""Rewrite code lines over 120 characters in notebook code cells, with the least change (issue 30, item 6).

For each code cell holding a line over the limit, only the statements with such a line are reformatted: black (as its
`--line-ranges` would, but one statement at a time: black 26's ranges break on `if x: y` one-liners) at line length 120, no string normalization, no magic trailing comma. A comment that
still overflows is wrapped (a whole-line comment) or moved onto its own line above its code (a trailing comment; not a parameter's docments comment in a `def` header).
Cells with IPython magics or shell escapes, and the papermill `parameters` cell (one line per key, comment included),
are left alone. nbdev's `#|` directives are comments: black keeps them, the comment wrapping never touches them.

Semantics are checked, not assumed: every rewritten cell must compile to the same `ast.dump` as before, else the cell
is kept as it was and reported. Lines that stay long (a long string, a URL) are listed, not forced.

usage: python scripts/wrap_lines.py [--check] nbs/x.ipynb ...
  --check       change nothing; exit 1 when a cell would change (prints what)
  --no-exports  leave `#| export` cells alone (wrapping grows a module by ~10-15%: one near 400 lines needs a split first)"""
from __future__ import annotations
import argparse, ast, io, json, sys, textwrap, tokenize
from pathlib import Path

import black

LIMIT = 120
MODE = black.Mode(line_length=LIMIT, string_normalization=False, magic_trailing_comma=False)


def _skip(cell:dict) -> str|None:
    "Why a code cell is left alone, or None."
    src = "".join(cell["source"])
    if "parameters" in cell.get("metadata", {}).get("tags", []): return "parameters cell"
    if any(l.lstrip().startswith(("%", "!")) for l in src.splitlines()): return "magic"
    try: ast.parse(src)
    except SyntaxError: return "does not parse"
    return None


def _long(src:str) -> list[int]:
    "1-based numbers of the lines over the limit."
    return [i for i, l in enumerate(src.splitlines(), 1) if len(l) > LIMIT]


def _stmt(tree:ast.AST, lines:list[str], n:int) -> ast.stmt|None:
    "The innermost statement covering line `n` that starts its own line (so it can be cut out and put back)."
    best = None
    for s in ast.walk(tree):
        if not isinstance(s, ast.stmt) or not (s.lineno <= n <= s.end_lineno): continue
        first = lines[s.lineno - 1]
        if s.col_offset != len(first) - len(first.lstrip()): continue
        if best is None or (s.lineno, -s.end_lineno) > (best.lineno, -best.end_lineno): best = s
    return best


def _black_snippet(code:str, indent:int) -> str:
    "black on `code` (every line indented by `indent` spaces), nested under `if 1:` headers so the indent survives."
    k = indent // 4
    head = "".join("    " * j + "if 1:\n" for j in range(k))
    out = black.format_str(head + code + "\n", mode=MODE)
    return "\n".join(out.rstrip("\n").split("\n")[k:])


def _black(src:str) -> str:
    "black on the statements holding a line over the limit, one at a time (a compound statement: its header only)."
    done = set()
    while True:
        lines = src.split("\n")
        try: tree = ast.parse(src)
        except SyntaxError: return src
        com = _comments(src)                # a line long only by its comment is the comment pass's (docments stay)
        todo = [(n, s) for n in _long(src) if (n not in com or len(lines[n - 1][:com[n].start[1]].rstrip()) > LIMIT)
                and (s := _stmt(tree, lines, n)) is not None and s.lineno not in done]
        if not todo: return src
        n, s = todo[0]; done.add(s.lineno)
        a, b = s.lineno, s.end_lineno
        body = getattr(s, "body", None)
        if body and body[0].lineno > s.lineno:                      # a def/if/for/with header: format the header alone
            b = body[0].lineno - 1
            if n > b: continue
        first = lines[a - 1]; indent = len(first) - len(first.lstrip())
        if indent % 4: continue
        chunk = "\n".join(lines[a - 1:b])
        if b < s.end_lineno or (body and body[0].lineno > s.lineno):
            chunk += "\n" + " " * (indent + 4) + "..."
        try: new = _black_snippet(chunk, indent)
        except Exception: continue                                   # black cannot: the line is reported as left
        if b < s.end_lineno or (body and body[0].lineno > s.lineno): new = new.rsplit("\n", 1)[0]
        cand = "\n".join(lines[:a - 1] + new.split("\n") + lines[b:])
        if same_code(src, cand): src = cand


def _breaks(src:str) -> dict[int, list[tuple[int, int]]]:
    "`{line: [(column after which a break may go, column to align the next line to)]}`: commas inside brackets, by tokenize."
    out, stack = {}, []
    try:
        for t in tokenize.generate_tokens(io.StringIO(src).readline):
            if t.type == tokenize.OP and t.string in "([{": stack.append(t.end[1])
            elif t.type == tokenize.OP and t.string in ")]}": stack and stack.pop()
            elif t.type == tokenize.OP and t.string == "," and stack: out.setdefault(t.start[0], []).append((t.end[1], stack[-1]))
            elif t.type == tokenize.NAME and t.string == "for" and stack:
                out.setdefault(t.start[0], []).append((t.start[1] - 1, stack[-1]))   # break before a comprehension's part
    except (tokenize.TokenError, IndentationError, SyntaxError): return {}
    return out


def _fill(src:str) -> str:
    "Break each long line at its last comma inside brackets that fits, aligned under its bracket (the code's own style)."
    lines, brk, com, out = src.split("\n"), _breaks(src), _comments(src), []
    one_liners = set()                      # `if x: y` and kin: black moves the body down, better than a break inside x
    for s in ast.walk(ast.parse(src)):
        if isinstance(getattr(s, "body", None), list) and s.body and isinstance(s, ast.stmt) and s.body[0].lineno == s.lineno:
            one_liners |= set(range(s.lineno, s.end_lineno + 1))
    for n, l in enumerate(lines, 1):
        code = l[:com[n].start[1]].rstrip() if n in com else l      # a trailing comment stays with its code
        if len(code) <= LIMIT or n not in brk or n in one_liners: out.append(l); continue
        segs = [(0, 0)]                     # (original column where a segment's text starts, its new column)
        def new_col(c):                     # an original column's place in the new layout
            s0, p0 = max(x for x in segs if x[0] <= c)
            return p0 + c - s0
        while new_col(len(l)) > LIMIT:
            start = segs[-1][0]
            fit = [(c, a) for c, a in brk[n] if c > start and new_col(c) <= LIMIT and a < c and new_col(a) <= 72]
            if not fit: break
            c, a = min(fit, key=lambda x: (x[1], -x[0]))      # the outermost bracket first, as far along as fits
            nxt = c + len(l[c:]) - len(l[c:].lstrip())
            segs.append((nxt, new_col(a)))
        if len(segs) == 1: out.append(l); continue
        ends = [s for s, _ in segs[1:]] + [len(l)]
        out += [" " * p + l[s:e].rstrip() if i else l[s:e].rstrip() for i, ((s, p), e) in enumerate(zip(segs, ends))]
    return "\n".join(out)


def _comments(src:str) -> dict[int, tokenize.TokenInfo]:
    "`{line: its COMMENT token}` (tokenize: a '#' inside a string is no comment)."
    try: return {t.start[0]: t for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT}
    except (tokenize.TokenError, IndentationError, SyntaxError): return {}


def _wrap_comments(src:str) -> str:
    "Wrap whole-line comments over the limit; move an overflowing trailing comment onto its own line(s) above its code."
    lines, com, out = src.split("\n"), _comments(src), []
    sig = set()                              # def headers: a parameter's trailing comment is its docments doc, kept there
    for s in ast.walk(ast.parse(src)):
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): sig |= set(range(s.lineno, s.body[0].lineno))
    for n, l in enumerate(lines, 1):
        t = com.get(n)
        if len(l) <= LIMIT or t is None or t.string.startswith("#|") or (n in sig and l[:t.start[1]].strip()):
            out.append(l); continue
        code, text = l[:t.start[1]].rstrip(), t.string.lstrip("#").strip()
        indent = l[:len(l) - len(l.lstrip())]
        if code.strip() and len(code) > LIMIT: out.append(l); continue      # the code itself is long: black's job
        body = textwrap.wrap(text, LIMIT - len(indent) - 2, break_long_words=False, break_on_hyphens=False)
        out += [f"{indent}# {b}" for b in body]
        if code.strip(): out.append(code)
    return "\n".join(out)


def same_code(a:str, b:str) -> bool:
    "Both parse, to the same AST (comments and layout aside)."
    try: return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError: return False


def rewrite(src:str) -> tuple[str, str|None]:
    "`(new source, None)`, or `(src, why not)` when the rewrite would change the code or black fails."
    if not _long(src): return src, None
    try: filled = _fill(_wrap_comments(src))                     # a comment moves up first: its code may then fit
    except SyntaxError: filled = src                             # (a comment inside a backslash continuation)
    if not same_code(src, filled): filled = src                  # a break it should not have made: leave it to black
    try: new = _wrap_comments(_black(filled))
    except Exception as e: return src, f"black failed: {type(e).__name__}: {str(e)[:80]}"
    try: same = same_code(src, new)
    except SyntaxError: same = False
    if not same: return src, "the rewrite changed the AST: kept as it was"
    return new, None


def process(nb_path:Path, write:bool=True, exports:bool=True) -> dict:
    "Rewrite one notebook's cells; `{changed, skipped, left}` with (cell index, detail) rows."
    nb = json.loads(nb_path.read_text())
    rep = dict(changed=[], skipped=[], left=[])
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code" or not _long(src := "".join(c["source"])): continue
        if (why := _skip(c)) or (not exports and src.lstrip().startswith("#| export") and "exported cell"):
            rep["skipped"].append((i, why or "exported cell (--no-exports)")); continue
        new, why = rewrite(src)
        if why: rep["skipped"].append((i, why))
        if new != src:
            rep["changed"].append((i, f"{len(_long(src))} -> {len(_long(new))} long lines"))
            c["source"] = new.splitlines(keepends=True)
        for n in _long(new):
            l = new.splitlines()[n - 1]
            rep["left"].append((i, f"line {n} ({len(l)} chars): {l.strip()[:70]}"))
    if write and rep["changed"]:
        tmp = nb_path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n"); tmp.replace(nb_path)
    return rep


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 when a cell would change")
    ap.add_argument("--no-exports", action="store_true", help="leave `#| export` cells alone (a module near 400 lines: split it first)")
    a = ap.parse_args()
    changed = left = 0
    for p in a.notebooks:
        r = process(p, write=not a.check, exports=not a.no_exports)
        changed += len(r["changed"]); left += len(r["left"])
        for kind in ("changed", "skipped", "left"):
            for i, d in r[kind]: print(f"{p.name} cell {i}: {kind}: {d}")
    print(f"{len(a.notebooks)} notebooks: {changed} cells {'would change' if a.check else 'rewritten'}, {left} long lines left")
    sys.exit(1 if a.check and changed else 0)
