from __future__ import annotations
import builtins, json, os, struct, traceback, types
# Imported by the runner inside every sandbox, which forks once per program: nothing here imports threading,
# logging or random at import time (see 05_sandbox).

# %% cell
MAX_DEPTH, MAX_DATA = 64, 16 << 20   # nesting of one value; bytes of one message across the pipe

class Broken(BaseException):
    "The candidate broke the call protocol (died, sent garbage, returned something that is not plain data)."

_SCALARS = (type(None), bool, int, float, str)
_SEQ = {list: "l", tuple: "t", set: "s", frozenset: "f"}
_UNSEQ = {"l": list, "t": tuple, "s": set, "f": frozenset}

def encode(v, handles:dict|None=None, depth:int=0):
    "`v` as a JSON-able tree: scalars as they are, every container a list led by its tag; TypeError otherwise."
    t = type(v)
    if t in _SCALARS: return v
    if depth >= MAX_DEPTH: raise TypeError("nested too deeply")
    if t in _SEQ: return [_SEQ[t], *(encode(x, handles, depth + 1) for x in v)]
    if t is dict: return ["d", *(y for k, x in v.items() for y in (encode(k, handles, depth + 1), encode(x, handles, depth + 1)))]
    if t is bytes: return ["b", v.hex()]
    if t is complex: return ["c", v.real, v.imag]
    if t is range: return ["r", v.start, v.stop, v.step]
    if handles is not None and id(v) in handles: return ["h", handles[id(v)]]
    raise TypeError(f"{t.__module__}.{t.__qualname__} is not plain data")

# %% cell
class Handle:
    "In the judge: an object that lives in the candidate (an instance of a class the tests build); equal only to itself."
    __slots__ = ("n",)
    def __init__(self, n:int): self.n = n
    def __repr__(self): return f"<candidate object {self.n}>"

def decode(tree, handles=None, depth:int=0):
    "The value a tree stands for; ValueError for anything that is not a tree `encode` makes."
    t = type(tree)
    if t in _SCALARS: return tree
    if t is not list or not tree or type(tree[0]) is not str or depth >= MAX_DEPTH: raise ValueError("not a value")
    tag, items = tree[0], tree[1:]
    if tag in _UNSEQ: return _UNSEQ[tag](decode(x, handles, depth + 1) for x in items)
    if tag == "d":
        if len(items) % 2: raise ValueError("odd dict")
        return {decode(k, handles, depth + 1): decode(x, handles, depth + 1) for k, x in zip(items[::2], items[1::2])}
    if tag == "b" and len(items) == 1 and type(items[0]) is str: return bytes.fromhex(items[0])
    if tag == "c" and len(items) == 2 and all(type(x) in (int, float) for x in items): return complex(*items)
    if tag == "r" and len(items) == 3 and all(type(x) is int for x in items): return range(*items)
    if tag == "i": return iter([decode(x, handles, depth + 1) for x in items])
    if tag == "h" and len(items) == 1 and type(items[0]) is int and handles is not None: return handles(items[0])
    raise ValueError(f"unknown tag {tag!r}")

# %% cell
def send(fd:int, msg:dict):
    "One message: 4-byte length, then JSON."
    data = json.dumps(msg, separators=(",", ":")).encode()
    if len(data) > MAX_DATA: raise TypeError(f"a message of {len(data)} bytes (the cap is {MAX_DATA})")
    data = struct.pack(">I", len(data)) + data
    while data: data = data[os.write(fd, data):]

def _exactly(fd:int, n:int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        b = os.read(fd, min(n - len(buf), 1 << 20))
        if not b: raise EOFError("the other side closed the pipe")
        buf += b
    return bytes(buf)

def recv(fd:int) -> dict:
    "One message; ValueError for garbage, EOFError when the other side is gone."
    n = struct.unpack(">I", _exactly(fd, 4))[0]
    if n > MAX_DATA: raise ValueError(f"a message of {n} bytes (the cap is {MAX_DATA})")
    msg = json.loads(_exactly(fd, n))
    if type(msg) is not dict: raise ValueError("a message must be an object")
    return msg

# %% cell
def _builtin_base(cls) -> str:
    return next((c.__name__ for c in cls.__mro__ if getattr(builtins, c.__name__, None) is c), "Exception")

def _result(v, ids:dict):
    "What a call returned, as a tree: numpy scalars as their Python value, an iterator as the items it yields."
    if hasattr(v, "item") and type(v).__module__ == "numpy" and getattr(v, "shape", None) == (): v = v.item()
    elif isinstance(v, (types.GeneratorType, map, filter, zip, enumerate, reversed)) or type(v).__name__.endswith("iterator"):
        items = []
        for x in v:
            items.append(encode(x, ids))
            if len(items) > 1 << 20: raise TypeError("an iterator of more than 2**20 items")
        return ["i", *items]
    return encode(v, ids)

def answer_calls(g:dict, names:list, r:int, w:int):
    "In the candidate, after its program ran: say which of `names` it defines, then answer calls until the judge hangs up."
    objs, ids, kinds = {}, {}, {}
    for n in names:
        if n not in g: continue
        v = g[n]
        if callable(v): kinds[n] = ["c" if isinstance(v, type) else "f"]
        else:
            try: kinds[n] = ["v", encode(v, ids)]
            except TypeError: pass   # a value that cannot cross: undefined in the judge
    send(w, {"kinds": kinds})
    while True:
        try: msg = recv(r)
        except EOFError: return
        f, args = g.get(msg["n"]), [decode(a, objs.__getitem__) for a in msg["a"]]
        kw = {k: decode(a, objs.__getitem__) for k, a in msg["k"].items()}
        try: res = f(*args, **kw)
        except Exception as e: out = {"e": [_builtin_base(type(e)), str(e)[:2000]]}
        else:
            if isinstance(f, type) and id(res) not in ids: objs[len(objs)] = res; ids[id(res)] = len(objs) - 1
            try: out = {"r": _result(res, ids)}
            except (TypeError, RecursionError) as e: out = {"x": str(e)[:300]}
        out["m"] = {}
        for i, (a, t) in enumerate(zip(args, msg["a"])):
            if type(a) in (list, dict, set):
                try: now = encode(a, ids)
                except (TypeError, RecursionError): now = None
                if now != t: out["m"][str(i)] = now
        send(w, out)

# %% cell
def _exception(name, msg) -> BaseException:
    "A builtin exception of the type the candidate named (its nearest constructible base), never anything else."
    cls = getattr(builtins, name, None) if type(name) is str else None
    if not (isinstance(cls, type) and issubclass(cls, Exception)): cls = Exception
    for c in cls.__mro__:
        try: return c(msg if type(msg) is str else "")
        except Exception: pass

class Link:
    "The judge's end of the pipe: calls go out as plain data, answers come back as plain data or a builtin exception."
    def __init__(self, r:int, w:int): self.r, self.w, self.broken, self.handles, self.ids = r, w, "", {}, {}
    def fail(self, why:str):
        self.broken = self.broken or f"the candidate broke the call protocol: {why}"
        raise Broken(self.broken)
    def handle(self, n:int, new:bool=False) -> Handle:
        "The judge's stand-in for the candidate's object `n`: a new one only from a call of a class."
        if n not in self.handles:
            if not new: raise ValueError(f"an unknown candidate object {n}")
            h = self.handles[n] = Handle(n); self.ids[id(h)] = n
        return self.handles[n]
    def hello(self) -> dict:
        try: kinds = recv(self.r)["kinds"]
        except Exception as e: self.fail(f"its program did not run to its end ({type(e).__name__})")
        if type(kinds) is not dict: self.fail("a bad greeting")
        return kinds
    def call(self, name:str, args:tuple, kw:dict, cls:bool=False):
        if self.broken: raise Broken(self.broken)
        try: send(self.w, {"n": name, "a": [encode(a, self.ids) for a in args], "k": {k: encode(v, self.ids) for k, v in kw.items()}})
        except TypeError as e: self.fail(f"an argument that cannot cross ({e})")
        except OSError as e: self.fail(f"it is gone ({e.strerror})")
        try:
            msg = recv(self.r)
            for i, t in (msg.get("m") or {}).items():
                a, new = args[int(i)], decode(t, self.handle)
                if type(a) is not type(new): raise ValueError("a copied-back argument changed type")
                if type(a) is list: a[:] = new
                else: a.clear(); a.update(new)
            if "r" in msg: return decode(msg["r"], lambda n: self.handle(n, cls))
            err = msg["e"] if "e" in msg and type(msg["e"]) is list and len(msg["e"]) == 2 else None
        except Exception as e: self.fail(f"{type(e).__name__}: {str(e)[:200]}")
        if err is None: self.fail(str(msg.get("x", "an answer without a result"))[:300])
        raise _exception(*err)
    def proxy(self, name:str, cls:bool=False):
        def call(*args, **kw): return self.call(name, args, kw, cls)
        call.__name__ = call.__qualname__ = name
        return call

# %% cell
def judge(case:dict, r:int, w:int) -> tuple[bool, str]:
    "Run the trusted `setup` and `test` with `names` bound to the candidate's; (True, '') only if the tests returned."
    g, link = {"__name__": "__main__", "__builtins__": builtins}, Link(r, w)
    try:
        exec(compile(case["setup"], "prompt.py", "exec"), g)
        kinds = link.hello()
        for n in case["names"]:
            k = kinds.get(n)
            if type(k) is not list or not k: g.pop(n, None)
            elif k[0] == "v" and len(k) == 2: g[n] = decode(k[1])
            else: g[n] = link.proxy(n, k[0] == "c")
        exec(compile(case["test"], "test.py", "exec"), g)
    except BaseException as e:
        return False, (link.broken or traceback.format_exception_only(type(e), e)[-1].strip())[:1000]
    return (False, link.broken) if link.broken else (True, "")
