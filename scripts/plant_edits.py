"""A second planted near-duplicate set, written from the edits people make when they copy code, not from the dedup's
canonical form: each copy gets one kind of edit (or a mix), made on the source text so the rest keeps its formatting.

Edit kinds: rename (every identifier: locals, arguments, the function, called helpers, globals, module aliases),
extract (an expression pulled into a new variable), reorder (two independent adjacent lines swapped), hints (type hints
added, or removed), dead (dead code added), docstring (docstring reworded, added or removed; comments added),
fstring (f-string <-> str.format / %), loop (for-loop accumulation <-> comprehension), constant (one number or string
literal changed), mixed (two or three of these).
Hard negatives, never copies of each other: enums, constant tables, template siblings (one template, other entities),
and short functions (under 5 lines).

usage: from plant_edits import edited_set; texts, group, kind = edited_set(n=600, seed=0)
"""
from __future__ import annotations
import ast, builtins, keyword, random, re, textwrap

SKIP = set(dir(builtins)) | set(keyword.kwlist) | {"self", "cls", "match", "case", "_"}
WORDS = ("item value node entry record data result buf token key count total index size name path line text part "
         "chunk block field row col obj elem acc tmp spec info opts args state ctx src dst head tail").split()


def _new_name(old, rng, taken):
    "A fresh name in the old one's case style (CamelCase stays CamelCase, CONST stays CONST)."
    while True:
        w = rng.choice(WORDS) + rng.choice(["", "s", "_" + rng.choice(WORDS), str(rng.randrange(10))])
        if old[:1].isupper() and not old.isupper(): w = "".join(p.capitalize() for p in w.split("_"))
        elif old.isupper(): w = w.upper()
        w = ("_" if old.startswith("_") and not old.startswith("__") else "") + w
        if w not in taken and w not in SKIP: taken.add(w); return w


def _spans(src):
    "Line start offsets: (line, col) -> offset."
    starts, o = [0], 0
    for l in src.splitlines(keepends=True): o += len(l); starts.append(o)
    return starts


def _edit(src, edits):
    "Apply non-overlapping (start, end, text) edits, last first."
    for s, e, t in sorted(edits, key=lambda x: -x[0]): src = src[:s] + t + src[e:]
    return src


def rename(src, rng):
    "Rename every non-builtin identifier (bound or free), adding `as` aliases to imports."
    tree = ast.parse(src); st = _spans(src); off = lambda l, c: st[l - 1] + c
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name): names.add(n.id)
        elif isinstance(n, ast.arg): names.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(n.name)
    names = {x for x in names if x not in SKIP and not x.startswith("__")}
    taken = set(names); mp = {x: _new_name(x, rng, taken) for x in sorted(names)}
    edits, fstr = [], [n for n in ast.walk(tree) if isinstance(n, ast.JoinedStr)]
    infs = {id(x) for f in fstr for x in ast.walk(f)}
    for n in ast.walk(tree):
        if id(n) in infs: continue
        if isinstance(n, ast.Name) and n.id in mp: edits.append((off(n.lineno, n.col_offset), off(n.end_lineno, n.end_col_offset), mp[n.id]))
        elif isinstance(n, ast.arg) and n.arg in mp:
            s = off(n.lineno, n.col_offset); edits.append((s, s + len(n.arg), mp[n.arg]))
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name in mp:
            s = off(n.lineno, n.col_offset); m = re.compile(r"(?:async\s+)?(?:def|class)\s+(\w+)").match(src, s)
            if m: edits.append((m.start(1), m.end(1), mp[n.name]))
        elif isinstance(n, ast.alias):
            bound = n.asname or n.name.split(".")[0]
            if bound in mp and n.name != "*":
                s = off(n.lineno, n.col_offset); e = off(n.end_lineno, n.end_col_offset)
                edits.append((s, e, f"{n.name} as {mp[bound]}"))
        elif isinstance(n, (ast.Global, ast.Nonlocal)):
            s, e = off(n.lineno, n.col_offset), off(n.end_lineno, n.end_col_offset)
            edits.append((s, e, ("global " if isinstance(n, ast.Global) else "nonlocal ") + ", ".join(mp.get(x, x) for x in n.names)))
    for f in fstr:
        s, e = off(f.lineno, f.col_offset), off(f.end_lineno, f.end_col_offset)
        pat = re.compile(r"(?<![.\w])(" + "|".join(map(re.escape, sorted(mp, key=len, reverse=True))) + r")\b") if mp else None
        seg = src[s:e]
        new = re.sub(r"\{[^{}]*\}", lambda m: pat.sub(lambda x: mp[x.group(1)], m.group()), seg) if pat else seg
        edits.append((s, e, new))
    return _edit(src, edits)


def _bodies(tree):
    for n in ast.walk(tree):
        for f in ("body", "orelse", "finalbody"):
            b = getattr(n, f, None)
            if isinstance(b, list) and b and isinstance(b[0], ast.stmt): yield n, b


def _indent(src, stmt):
    line = src.splitlines()[stmt.lineno - 1]; return line[:len(line) - len(line.lstrip())]


def extract(src, rng):
    "Pull a call or arithmetic expression out of a return/assign/expression line into a new variable above it."
    tree = ast.parse(src); st = _spans(src); fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    cands = []
    for _, body in _bodies(tree):
        for s in body:
            if not isinstance(s, (ast.Return, ast.Assign, ast.Expr)) or s.lineno != s.end_lineno or s.value is None: continue
            for e in ast.walk(s.value):
                if e is not s.value or isinstance(s, ast.Return):
                    if isinstance(e, (ast.Call, ast.BinOp, ast.Subscript, ast.Compare)) and e.lineno == e.end_lineno \
                       and not any(isinstance(x, (ast.Lambda, ast.comprehension, ast.NamedExpr, ast.Yield, ast.Await)) for x in ast.walk(e)):
                        cands.append((s, e))
    if not cands: return None
    s, e = rng.choice(cands); name = rng.choice(["result", "value", "tmp", "out", "res", "computed", "val"])
    seg = ast.get_source_segment(src, e); ind = _indent(src, s)
    a, b = st[e.lineno - 1] + e.col_offset, st[e.end_lineno - 1] + e.end_col_offset
    line0 = st[s.lineno - 1]
    return _edit(src, [(a, b, name), (line0, line0, f"{ind}{name} = {seg}\n")])


def _names(node, ctx):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def reorder(src, rng):
    "Swap two adjacent one-line statements that neither read nor write what the other writes."
    tree = ast.parse(src); lines = src.splitlines(keepends=True); cands = []
    for _, body in _bodies(tree):
        for a, b in zip(body, body[1:]):
            if not all(isinstance(x, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)) and x.lineno == x.end_lineno for x in (a, b)): continue
            if b.lineno != a.lineno + 1 or isinstance(a, ast.Expr) and isinstance(a.value, ast.Constant): continue
            wa, wb = _names(a, ast.Store), _names(b, ast.Store)
            if isinstance(a, ast.AugAssign): wa |= _names(a.target, ast.Load) | {getattr(a.target, "id", "")}
            if isinstance(b, ast.AugAssign): wb |= _names(b.target, ast.Load) | {getattr(b.target, "id", "")}
            ra, rb = _names(a, ast.Load), _names(b, ast.Load)
            if wa & (rb | wb) or wb & ra: continue
            if any(isinstance(x, ast.Call) for x in ast.walk(a)) and any(isinstance(x, ast.Call) for x in ast.walk(b)): continue
            cands.append((a.lineno, b.lineno))
    if not cands: return None
    i, j = rng.choice(cands); lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
    return "".join(lines)


HINTS = ["int", "str", "list", "dict", "bool", "float", "Any", "Optional[str]", "Sequence[int]", "bytes", "object"]


def hints(src, rng):
    "Remove every type hint when there are some; add hints to arguments and the return otherwise."
    tree = ast.parse(src); st = _spans(src); off = lambda l, c: st[l - 1] + c; edits = []
    anns = [n for n in ast.walk(tree) if isinstance(n, ast.arg) and n.annotation is not None]
    rets = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None]
    if anns or rets:
        for a in anns: edits.append((off(a.lineno, a.col_offset) + len(a.arg), off(a.annotation.end_lineno, a.annotation.end_col_offset), ""))
        for f in rets:
            e = off(f.returns.end_lineno, f.returns.end_col_offset); s = src.rfind("->", 0, e)
            while s > 0 and src[s - 1] in " \t": s -= 1
            edits.append((s, e, ""))
        return _edit(src, edits)
    for f in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
        for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs:
            if a.arg not in ("self", "cls"):
                s = off(a.lineno, a.col_offset) + len(a.arg); edits.append((s, s, ": " + rng.choice(HINTS)))
        body0 = f.body[0]; colon = src.rfind(":", 0, off(body0.lineno, body0.col_offset))
        if colon > 0 and src[:colon].rstrip().endswith(")"): edits.append((colon, colon, " -> " + rng.choice(HINTS + ["None"])))
    return _edit(src, edits) if edits else None


DEAD = ["{i}_unused = 0", "{i}if False:\n{i}    print('debug')", "{i}pass", "{i}_debug = None",
        "{i}assert True", "{i}_ = len(str({a}))", "{i}if 0:\n{i}    raise RuntimeError('unreachable')"]


def dead(src, rng):
    "Insert one piece of dead code at the start of the function body, or before its last statement."
    tree = ast.parse(src); fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not fns: return None
    f = fns[0]; body = [s for s in f.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))] or f.body
    s = rng.choice([body[0], body[-1]]); ind = _indent(src, s); st = _spans(src)
    args = [a.arg for a in f.args.args] or ["0"]
    code = rng.choice(DEAD).format(i=ind, a=rng.choice(args))
    return _edit(src, [(st[s.lineno - 1], st[s.lineno - 1], code + "\n")])


def docstring(src, rng):
    "Reword, add or drop the docstring; add a comment line."
    tree = ast.parse(src); fns = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not fns: return None
    f, st = fns[0], _spans(src); b0 = f.body[0]; ind = _indent(src, b0); edits = []
    has = isinstance(b0, ast.Expr) and isinstance(b0.value, ast.Constant) and isinstance(b0.value.value, str)
    r = rng.random()
    if has and r < 0.4: edits.append((st[b0.lineno - 1], st[b0.end_lineno], ""))
    elif has: edits.append((st[b0.lineno - 1], st[b0.end_lineno], f'{ind}"""{rng.choice(["Compute", "Return", "Helper:"])} '
                            f'{f.name.replace("_", " ")}.\n\n{ind}Copied from an older module; see the tests.\n{ind}"""\n'))
    else: edits.append((st[b0.lineno - 1], st[b0.lineno - 1], f'{ind}"""{f.name.replace("_", " ").strip().capitalize()}."""\n'))
    last = f.body[-1]
    edits.append((st[last.lineno - 1], st[last.lineno - 1], f"{_indent(src, last)}# {rng.choice(['done', 'TODO: tidy up', 'note: hot path'])}\n"))
    return _edit(src, edits)


def fstring(src, rng):
    "f'{a} x {b}' -> '{} x {}'.format(a, b), or '...'.format(...) / '%s' % x -> an f-string."
    tree = ast.parse(src); st = _spans(src); off = lambda l, c: st[l - 1] + c
    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr) and n.lineno == n.end_lineno:
            parts, args = [], []
            for v in n.values:
                if isinstance(v, ast.Constant): parts.append(v.value.replace("{", "{{").replace("}", "}}"))
                else:
                    spec = ast.get_source_segment(src, v.format_spec)[1:] if False else ""
                    if v.format_spec is not None:
                        if not all(isinstance(x, ast.Constant) for x in v.format_spec.values): return None
                        spec = ":" + "".join(x.value for x in v.format_spec.values)
                    conv = "!" + chr(v.conversion) if v.conversion != -1 else ""
                    parts.append("{" + conv + spec + "}"); args.append(ast.get_source_segment(src, v.value) or ast.unparse(v.value))
            if not args: continue
            t = "".join(parts)
            if "\\" in t or "\n" in t: continue
            q = '"' if "'" in t else "'"
            return _edit(src, [(off(n.lineno, n.col_offset), off(n.end_lineno, n.end_col_offset), f"{q}{t}{q}.format({', '.join(args)})")])
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "format" and isinstance(n.func.value, ast.Constant) \
           and isinstance(n.func.value.value, str) and not n.keywords and n.lineno == n.end_lineno and "\\" not in n.func.value.value:
            k, out = 0, []
            for m in re.finditer(r"\{(\d*)(![rsa])?(:[^{}]*)?\}|([^{}]+|\{\{|\}\})", n.func.value.value):
                if m.group(4) is not None: out.append(m.group(4)); continue
                i = int(m.group(1)) if m.group(1) else k; k += 1
                if i >= len(n.args) or isinstance(n.args[i], ast.Starred): return None
                a = ast.get_source_segment(src, n.args[i])
                if any(c in a for c in "'\"\\{}"): return None
                out.append("{" + a + (m.group(2) or "") + (m.group(3) or "") + "}")
            q = '"' if "'" in "".join(out) else "'"
            return _edit(src, [(off(n.lineno, n.col_offset), off(n.end_lineno, n.end_col_offset), f"f{q}{''.join(out)}{q}")])
    return None


def loop(src, rng):
    "acc = [] / for x in xs: acc.append(e)  <->  acc = [e for x in xs]."
    tree = ast.parse(src); st = _spans(src)
    for _, body in _bodies(tree):
        for a, b in zip(body, body[1:]):
            if isinstance(a, ast.Assign) and len(a.targets) == 1 and isinstance(a.targets[0], ast.Name) and isinstance(a.value, ast.List) \
               and not a.value.elts and isinstance(b, ast.For) and not b.orelse and len(b.body) == 1:
                s, cond = b.body[0], None
                if isinstance(s, ast.If) and not s.orelse and len(s.body) == 1: cond, s = s.test, s.body[0]
                if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and isinstance(s.value.func, ast.Attribute) \
                   and s.value.func.attr == "append" and getattr(s.value.func.value, "id", None) == a.targets[0].id and len(s.value.args) == 1:
                    g = lambda x: ast.get_source_segment(src, x)
                    comp = f"[{g(s.value.args[0])} for {g(b.target)} in {g(b.iter)}" + (f" if {g(cond)}" if cond else "") + "]"
                    if "\n" in comp: continue
                    return _edit(src, [(st[a.lineno - 1], st[b.end_lineno], f"{_indent(src, a)}{a.targets[0].id} = {comp}\n")])
    for _, body in _bodies(tree):
        for a in body:
            if isinstance(a, (ast.Assign, ast.Return)) and isinstance(a.value, ast.ListComp) and len(a.value.generators) == 1 \
               and not a.value.generators[0].is_async and a.lineno == a.end_lineno:
                c = a.value.generators[0]; g = lambda x: ast.get_source_segment(src, x); ind = _indent(src, a)
                acc = a.targets[0].id if isinstance(a, ast.Assign) and isinstance(a.targets[0], ast.Name) else "out"
                tail = f"{ind}return {acc}\n" if isinstance(a, ast.Return) else ""
                if isinstance(a, ast.Assign) and (acc in _names(a.value, ast.Load) or len(a.targets) > 1 or acc == "out"):
                    tail = f"{ind}{g(a.targets[0]) if len(a.targets) == 1 else ' = '.join(map(g, a.targets))} = acc\n"; acc = "acc"
                body_ = f"{ind}{acc} = []\n{ind}for {g(c.target)} in {g(c.iter)}:\n"
                inner = ind + "    "
                for cond in c.ifs: body_ += f"{inner}if {g(cond)}:\n"; inner += "    "
                body_ += f"{inner}{acc}.append({g(a.value.elt)})\n" + tail
                return _edit(src, [(st[a.lineno - 1], st[a.lineno], body_)])
    return None


def constant(src, rng):
    "Change one number or one short string literal (not the docstring): a tweaked limit, a reworded message."
    tree = ast.parse(src); st = _spans(src)
    docs = {id(b[0].value) for n in ast.walk(tree) if (b := getattr(n, "body", None)) and isinstance(b, list)
            and isinstance(b[0], ast.Expr)}
    lits = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.lineno == n.end_lineno and id(n) not in docs
            and (type(n.value) in (int, float) or isinstance(n.value, str) and 2 <= len(n.value) <= 60 and "\n" not in n.value)]
    lines = src.splitlines()   # (offsets are bytes: ASCII lines only)
    lits = [n for n in lits if lines[n.lineno - 1].isascii() and ast.get_source_segment(src, n)[0] in "0123456789.'\""]
    if not lits: return None
    n = rng.choice(lits); v = n.value
    new = repr(v + rng.choice([1, 2, 10]) if type(v) is int else v * 2 if type(v) is float else rng.choice([v.upper(), v + "!", "x" + v]))
    if new == ast.get_source_segment(src, n): return None
    return _edit(src, [(st[n.lineno - 1] + n.col_offset, st[n.lineno - 1] + n.end_col_offset, new)])


EDITS = dict(rename=rename, extract=extract, reorder=reorder, hints=hints, dead=dead, docstring=docstring, fstring=fstring, loop=loop,
             constant=constant)


def apply(kind, src, rng):
    "The copy of `src` after one edit of `kind` ('mixed': two or three kinds), or None when the edit does not apply."
    if kind == "mixed":
        ks = rng.sample([k for k in EDITS if k not in ("fstring", "loop")], rng.choice([2, 3])); v = src
        for k in ks:
            w = EDITS[k](v, rng)
            if w is not None: v = w
        return v if v != src else None
    try: v = EDITS[kind](src, rng)
    except (SyntaxError, ValueError, AttributeError, IndexError, TypeError): return None
    if v is None or v == src: return None
    try: ast.parse(v)
    except SyntaxError: return None
    return v


# ---- hard negatives ----------------------------------------------------------------------------------------
ENUM_NAMES = [("Color", "RED GREEN BLUE"), ("Status", "OK WARN ERROR"), ("Level", "LOW MEDIUM HIGH"), ("Shape", "CIRCLE SQUARE TRIANGLE"),
              ("Suit", "HEARTS SPADES CLUBS"), ("Mode", "READ WRITE APPEND"), ("Phase", "INIT RUN STOP"), ("Fruit", "APPLE PEAR PLUM"),
              ("Weekday", "MON TUE WED"), ("Planet", "MERCURY VENUS EARTH"), ("Signal", "START PAUSE RESUME"), ("Grade", "PASS FAIL RETAKE")]
TABLE_KEYS = ["alpha beta gamma delta eps", "north south east west up", "red green blue cyan black", "kb mb gb tb pb",
              "get put post head patch", "low mid high max min", "cat dog cow hen pig", "jan feb mar apr may",
              "one two three four five", "tcp udp icmp igmp sctp", "utf8 ascii latin1 cp1252 utf16", "png jpg gif bmp tif"]
ENTITIES = ["user", "order", "invoice", "product", "customer", "account", "ticket", "shipment", "payment", "review"]
TEMPLATE = '''def load_{e}s(path, limit=None):
    """Read {e}s from a JSON file, newest first."""
    with open(path) as f:
        rows = json.load(f)
    out = [{E}(**row) for row in rows if row.get("kind") == "{e}"]
    out.sort(key=lambda r: r.{e}_date, reverse=True)
    return out[:limit] if limit else out
'''
TEMPLATE2 = '''class {E}Serializer(BaseSerializer):
    model = {E}
    fields = ("id", "{e}_name", "{e}_created")

    def validate(self, data):
        if not data.get("{e}_name"):
            raise ValidationError("a {e} needs a name")
        return data
'''


def hard_negatives(rng):
    "`[(kind, text)]`: distinct records that share a shape (each one its own original)."
    out = []
    for (name, members), tp in zip(ENUM_NAMES, ["IntEnum", "Enum"] * 6):
        ms = members.split()
        body = "\n".join(f"    {m} = {i + 1}" for i, m in enumerate(ms)) if tp == "IntEnum" else "\n".join(f"    {m} = auto()" for m in ms)
        out.append(("enum", f"class {name}({tp}):\n{body}\n"))
    for j, keys in enumerate(TABLE_KEYS):
        ks = keys.split(); nm = ["TABLE", "LIMITS", "CODES", "SIZES", "WEIGHTS", "MAPPING"][j % 6] + f"_{j}"
        out.append(("table", f"{nm} = {{\n" + "".join(f"    {k!r}: {i * (j % 3 + 1)},\n" for i, k in enumerate(ks)) + "}\n"))
    for e in ENTITIES:
        out.append(("template", TEMPLATE.format(e=e, E=e.capitalize())))
        out.append(("template", TEMPLATE2.format(e=e, E=e.capitalize())))
    return out


def edited_set(n=600, seed=0, frac=0.5, kinds=tuple(EDITS) + ("mixed",), shorts=80, pool=1500):
    """`(texts, group, kind)`: `n` distinct stdlib functions (5-40 lines), `shorts` distinct short ones (2-4 lines) and the
    hard negatives, then copies: about `n * frac / len(kinds)` per edit kind, each of another original (the rarest kinds
    choose first, from a pool of `pool` functions; an original that no edit of a kind applies to is not copied)."""
    import sys, os
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from phi1_nb.dedup import stdlib_functions
    rng = random.Random(seed)
    fs = rng.sample(stdlib_functions(min_lines=5, max_lines=40), pool)
    short = [s for _, s in stdlib_functions(min_lines=2, max_lines=4)]
    short = rng.sample(short, min(shorts, len(short)))
    texts, kind, free = [s for _, s in fs[:n]], ["original"] * n, list(range(n))
    copies, per = [], int(n * frac) // len(kinds)
    for k in sorted(kinds, key=lambda k: ["loop", "fstring", "reorder", "extract"].index(k) if k in ("loop", "fstring", "reorder", "extract") else 9):
        got = 0
        for i in list(free):
            if got >= per: break
            v = apply(k, texts[i], random.Random(f"{seed}:{k}:{i}"))
            if v is not None: copies.append((v, i, k)); free.remove(i); got += 1
        if got < per and k in ("loop", "fstring"):       # rare edits: also draw originals from the rest of the pool
            for s in fs[n:]:
                if got >= per: break
                v = apply(k, s[1], random.Random(f"{seed}:{k}:{s[0]}"))
                if v is not None: texts.append(s[1]); kind.append("original"); copies.append((v, len(texts) - 1, k)); got += 1
    texts += short; kind += ["short"] * len(short)
    for k, t in hard_negatives(rng): texts.append(t); kind.append(k)
    group = list(range(len(texts)))
    for v, i, k in copies: texts.append(v); group.append(i); kind.append(k)
    return texts, group, kind
