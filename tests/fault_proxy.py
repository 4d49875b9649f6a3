"""A fault-injecting HTTP proxy for OpenAI-compatible servers, and the upstream's own bill.

`FaultProxy(upstream_base_url, plan)` listens on 127.0.0.1 and forwards each request to the upstream server, unless
`plan(i, body)` names a fault for request `i`. Faults that answer without forwarding (nothing is generated, nothing
billed): '500', '503', '429' (with `Retry-After`, seconds or an HTTP date), 'reset' (close before forwarding).
Faults that forward first, so the upstream generates and bills, and then spoil the answer: '502' and '504' (a
gateway error in its place), 'cut' (half the body, then close), 'drop' (close without a byte), 'delay' (send it
`delay` seconds late), 'garbage' (200 with a body that is not JSON), 'trickle' (the body one byte at a time,
`trickle` seconds apart). `billed` sums the usage of every upstream answer, delivered or not: what a provider charges.
A request the upstream received keeps going when the client goes away (kill -9), as on a real server."""
import asyncio, email.utils, hashlib, json, threading, time
from collections import Counter
from urllib.parse import urlparse

from phi1_nb.testing import FakeOpenAIServer

INJECT = {"500": 500, "503": 503, "429": 429}
AFTER = {"502", "504", "cut", "drop", "delay", "garbage", "trickle"}


async def _read_head(reader):
    line = await reader.readline()
    if not line: return None, {}
    headers = {}
    while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
        k, _, v = h.decode("latin-1").partition(":"); headers[k.strip().lower()] = v.strip()
    return line.decode("latin-1").rstrip("\r\n"), headers


async def _read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while (n := int((await reader.readline()).split(b";")[0].strip() or b"0", 16)):
            out += await reader.readexactly(n); await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""): pass
        return out
    if "content-length" in headers: return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


def _response(status, body:bytes, extra:dict|None=None) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items()) + "\r\n").encode() + body


class FaultProxy:
    "A proxy in front of an OpenAI-compatible server that injects faults and counts what the upstream billed."
    def __init__(self, upstream:str, plan=None, retry_after="1", delay:float=3.0, trickle:float=0.2):
        u = urlparse(upstream)
        self.host, self.port_up = u.hostname, u.port
        assert u.path.rstrip("/") == "/v1", f"an upstream base_url ending in /v1, not {upstream}"
        self.plan, self.retry_after, self.delay, self.trickle = plan or (lambda i, b: None), retry_after, delay, trickle
        self.n, self.faults, self.billed, self.times, self.times_wall = 0, Counter(), Counter(), [], []
        self.answered, self.not_before = Counter(), []   # sha256 of a request body -> how many times the upstream answered (and billed) it
        self.upstream_in_flight, self.max_upstream_in_flight, self._lock = 0, 0, threading.Lock()

    def retry_after_value(self):
        "The `Retry-After` header: a number of seconds, or ('date', seconds) for an HTTP date that far ahead."
        ra = self.retry_after() if callable(self.retry_after) else self.retry_after
        if isinstance(ra, tuple):
            self.not_before.append(int(time.time() + ra[1]))   # the date names a whole second
            return email.utils.formatdate(self.not_before[-1], usegmt=True)
        return str(ra)

    async def _forward(self, method, path, headers, raw) -> tuple[int, bytes]:
        "Send one request upstream and read its whole answer; bill its usage (whatever happens to it next)."
        with self._lock:
            self.upstream_in_flight += 1; self.max_upstream_in_flight = max(self.max_upstream_in_flight, self.upstream_in_flight)
        try:
            r, w = await asyncio.open_connection(self.host, self.port_up)
            hs = {k: v for k, v in headers.items() if k not in ("host", "connection", "content-length", "transfer-encoding")}
            head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port_up}\r\nConnection: close\r\nContent-Length: {len(raw)}\r\n"
            w.write((head + "".join(f"{k}: {v}\r\n" for k, v in hs.items()) + "\r\n").encode() + raw); await w.drain()
            status_line, rh = await _read_head(r)
            body = await _read_body(r, rh)
            w.close()
            status = int(status_line.split(" ")[1])
            try: u = json.loads(body).get("usage") or {} if status == 200 else {}
            except ValueError: u = {}
            with self._lock:
                self.billed.update(prompt_tokens=u.get("prompt_tokens", 0), completion_tokens=u.get("completion_tokens", 0),
                                   answers=int(status == 200))
                if status == 200: self.answered[hashlib.sha256(raw).hexdigest()] += 1
            return status, body
        finally:
            with self._lock: self.upstream_in_flight -= 1

    async def _conn(self, reader, writer):
        try:
            while True:
                line, headers = await _read_head(reader)
                if line is None: break
                method, path, _ = line.split(" ", 2)
                raw = await _read_body(reader, headers)
                with self._lock: i = self.n; self.n += 1; self.times.append(time.monotonic()); self.times_wall.append(time.time())
                try: body = json.loads(raw or b"{}")
                except ValueError: body = {}
                fault = self.plan(i, body)
                self.faults[fault or "ok"] += 1
                if fault == "reset": break
                if fault in INJECT:
                    extra = {"Retry-After": self.retry_after_value()} if fault in ("429", "503") else {}
                    writer.write(_response(INJECT[fault], b'{"error": {"message": "injected"}}', extra)); await writer.drain()
                    continue
                # the upstream answers in its own task: a client that goes away does not stop what it pays for
                status, out = await asyncio.shield(asyncio.ensure_future(self._forward(method, path, headers, raw)))
                if fault in ("502", "504"):
                    writer.write(_response(int(fault), b"<html>gateway error</html>")); await writer.drain(); continue
                if fault == "drop": break
                if fault == "cut":
                    writer.write(_response(status, out)[:-(len(out) // 2 or 1)]); await writer.drain(); break
                if fault == "garbage": out, status = b'{"choices": [ {"mess', 200
                if fault == "delay": await asyncio.sleep(self.delay)
                if fault == "trickle":
                    msg = _response(status, out); cut = msg.index(b"\r\n\r\n") + 4
                    writer.write(msg[:cut]); await writer.drain()
                    for j in range(cut, len(msg)):
                        writer.write(msg[j:j + 1]); await writer.drain(); await asyncio.sleep(self.trickle)
                    continue
                writer.write(_response(status, out)); await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError): pass
        finally: writer.close()

    def quiet(self, timeout:float=60.0):
        "Wait until no request is in flight upstream (after a kill, the server finishes what it had)."
        t0 = time.monotonic()
        while self.upstream_in_flight and time.monotonic() - t0 < timeout: time.sleep(0.02)
        return self.upstream_in_flight == 0

    def spent(self) -> int:
        "Tokens the upstream billed: prompt plus completion of every answer it produced."
        return self.billed["prompt_tokens"] + self.billed["completion_tokens"]

    __enter__, __exit__ = FakeOpenAIServer.__enter__, FakeOpenAIServer.__exit__   # serve `_conn` on 127.0.0.1, in a thread
