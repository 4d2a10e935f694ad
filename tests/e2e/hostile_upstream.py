"""A hostile upstream for the end-to-end tests of hostile traffic (test_hostile.py): a small
HTTP/1.1 server on raw sockets, one thread per connection, on 127.0.0.1 (port 0), that plays a
poisoned or malicious provider.

The request header `x-hostile-mode` picks what a request gets (warden forwards `x-*` headers):

| mode       | answer |
| ---------- | ------ |
| (none)     | an ordinary answer: an OpenAI chat completion (streamed if the body asks), or an Anthropic message |
| `long-line`| SSE that sends `data: ` and then one line that never ends (no newline), in 1 MB writes |
| `deltas`   | an endless stream of small, valid `chat.completion.chunk` deltas, in large writes |
| `key-run`  | an endless stream of valid deltas that spell `sk-` and then letters and digits forever |
| `drip`     | valid deltas, one every `x-hostile-interval-ms` (default 50): a slow stream that stays open |
| `redirect` | `307 Temporary Redirect` to `x-hostile-location` |

Parameters (headers): `x-hostile-limit` (body bytes after which an endless answer ends, give
or take one write; default 300 MB), `x-hostile-seconds` (longest the answer may last; default
30), `x-hostile-rate` (bytes per second at most; default unlimited), `x-hostile-delta`
(characters per delta), `x-hostile-interval-ms` (drip), `x-hostile-location` (redirect),
`x-hostile-tag` (a label to find the connection again) and `x-hostile-reply` (the text of an
ordinary answer). An endless answer stops at its limit or its time: with a last
`finish_reason: stop` chunk and `[DONE]` for the delta modes, so a proxy that never cuts it
delivers a complete, well-formed answer (and a test that expected a cut fails clearly).

Every connection is recorded (`Conn`): when it opened, when it closed and who closed it (the
peer: warden released it; or the server: the answer ended or the server stopped), what
requests came in (method, path, headers, body) and how many bytes went out. Streaming answers
watch the socket for the peer's EOF or reset between writes, so `closed_at` is when warden let
go of the upstream even while it is not reading.

A second listener, the trap (`trap_url`), only records what reaches it and answers a plausible
completion: a redirect to it shows whether anything followed, with which headers.
"""

from __future__ import annotations

import json
import random
import select
import socket
import string
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Iterator

MB = 1 << 20
DEFAULT_LIMIT = 300 * MB
DEFAULT_SECONDS = 30.0
MODEL = "gpt-test"
NORMAL_REPLY = "Hello from the upstream."


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes

    def json(self) -> dict:
        try:
            doc = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}


@dataclass
class Conn:
    id: int
    listener: str  # "main" or "trap"
    opened_at: float  # time.monotonic()
    closed_at: float | None = None
    closed_by: str | None = None  # "peer" (the client, i.e. warden, went away) or "server"
    requests: list[Request] = field(default_factory=list)
    mode: str | None = None
    tag: str | None = None
    status: int | None = None
    bytes_sent: int = 0  # body bytes of the answer
    completed: bool = False  # the answer was sent to its end (limit, time or a finite answer)
    dropped: bool = False  # the test asked the server to hang up (drop())

    @property
    def open(self) -> bool:
        return self.closed_at is None

    def open_at(self, t: float) -> bool:
        """Whether the connection was open at monotonic time `t`."""
        return self.opened_at <= t and (self.closed_at is None or self.closed_at > t)


class PeerGone(Exception):
    pass


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _sse(doc: dict) -> bytes:
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def chat_chunk(delta: dict, finish_reason: str | None = None) -> bytes:
    """One OpenAI `chat.completion.chunk` SSE event."""
    return _sse(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
    )


def chat_completion(text: str) -> dict:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }


def anthropic_message(text: str) -> dict:
    return {
        "id": "msg_hostile",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 5},
    }


STREAM_END = chat_chunk({}, "stop") + b"data: [DONE]\n\n"


class HostileUpstream:
    """The server. `url` is the main listener, `trap_url` the trap; `stop()` closes everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: list[Conn] = []
        self._socks: list[socket.socket] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._main = self._listen("main")
        self._trap = self._listen("trap")
        self.port = self._main.getsockname()[1]
        self.trap_port = self._trap.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # Another host name and another port: a cross-host redirect target.
        self.trap_url = f"http://localhost:{self.trap_port}"

    # ---------------------------------------------------------------------------------------
    # Inspection
    # ---------------------------------------------------------------------------------------

    def connections(self, tag: str | None = None, listener: str | None = None) -> list[Conn]:
        with self._lock:
            out = list(self._conns)
        if tag is not None:
            out = [c for c in out if c.tag == tag]
        if listener is not None:
            out = [c for c in out if c.listener == listener]
        return out

    def wait_for(self, cond: Callable[[], object], timeout: float, what: str) -> object:
        """Polls `cond` until it is truthy; raises AssertionError naming `what` after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.02)

    def max_concurrent(self, tag: str) -> int:
        """The most connections carrying `tag` that were open at the same moment."""
        events: list[tuple[float, int]] = []
        for c in self.connections(tag=tag):
            events.append((c.opened_at, 1))
            events.append((c.closed_at if c.closed_at is not None else float("inf"), -1))
        # At equal times, count the close first: a connection that replaced another is not a second.
        events.sort(key=lambda e: (e[0], e[1]))
        cur = peak = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        return peak

    def drop(self, tag: str) -> None:
        """Hangs up the streams carrying `tag` (clean-up after a test, whatever warden did)."""
        for c in self.connections(tag=tag):
            c.dropped = True

    # ---------------------------------------------------------------------------------------
    # Lifecycle
    # ---------------------------------------------------------------------------------------

    def _listen(self, name: str) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        s.settimeout(0.2)
        t = threading.Thread(target=self._accept_loop, args=(s, name), name=f"hostile-{name}-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return s

    def stop(self) -> None:
        self._stopping.set()
        for t in self._threads:
            t.join(timeout=5)
        for s in (self._main, self._trap):
            s.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def _accept_loop(self, listener: socket.socket, name: str) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                conn = Conn(id=len(self._conns), listener=name, opened_at=time.monotonic())
                self._conns.append(conn)
                self._socks.append(sock)
            threading.Thread(
                target=self._serve, args=(sock, conn), name=f"hostile-conn-{conn.id}", daemon=True
            ).start()

    def _close(self, sock: socket.socket, conn: Conn, by: str) -> None:
        if conn.closed_at is None:
            conn.closed_at = time.monotonic()
            conn.closed_by = by
        try:
            sock.close()
        except OSError:
            pass
        with self._lock:
            if sock in self._socks:
                self._socks.remove(sock)

    # ---------------------------------------------------------------------------------------
    # One connection: one request, one answer, then close (`Connection: close`)
    # ---------------------------------------------------------------------------------------

    def _serve(self, sock: socket.socket, conn: Conn) -> None:
        try:
            req = self._read_request(sock)
            if req is None:
                self._close(sock, conn, "peer")
                return
            conn.requests.append(req)
            conn.mode = req.headers.get("x-hostile-mode")
            conn.tag = req.headers.get("x-hostile-tag")
            if conn.listener == "trap":
                self._answer_normal(sock, conn, req)
            else:
                self._answer(sock, conn, req)
            self._close(sock, conn, "server")
        except PeerGone:
            self._close(sock, conn, "peer")
        except OSError:
            # Reset by the peer, or closed by stop().
            self._close(sock, conn, "server" if self._stopping.is_set() else "peer")

    def _read_request(self, sock: socket.socket) -> Request | None:
        sock.settimeout(10)
        buf = b""
        while b"\r\n\r\n" not in buf:
            piece = sock.recv(65536)
            if not piece:
                return None
            buf += piece
            if len(buf) > 1 * MB:
                return None
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = (lines[0].split(" ", 2) + ["", ""])[:3]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                piece = sock.recv(min(n - len(rest), 1 * MB))
                if not piece:
                    return None
                rest += piece
            body = rest[:n]
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in rest:
                    piece = sock.recv(65536)
                    if not piece:
                        return None
                    rest += piece
                size_line, _, rest = rest.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(rest) < size + 2:
                    piece = sock.recv(65536)
                    if not piece:
                        return None
                    rest += piece
                body += rest[:size]
                rest = rest[size + 2 :]
                if size == 0:
                    break
        else:
            body = b""
        return Request(method, path, headers, body)

    def _send_whole(self, sock: socket.socket, conn: Conn, status: str, headers: dict[str, str], body: bytes) -> None:
        conn.status = int(status.split()[0])
        head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)
        conn.bytes_sent += len(body)
        conn.completed = True

    def _answer_normal(self, sock: socket.socket, conn: Conn, req: Request) -> None:
        text = NORMAL_REPLY if conn.listener == "main" else "Answered by the redirect target."
        text = req.headers.get("x-hostile-reply", text)
        if req.path.startswith("/v1/messages"):
            body = json.dumps(anthropic_message(text)).encode()
        elif req.json().get("stream"):
            events = chat_chunk({"role": "assistant", "content": ""})
            for word in text.split(" "):
                events += chat_chunk({"content": word + " "})
            events += STREAM_END
            self._send_whole(sock, conn, "200 OK", {"Content-Type": "text/event-stream"}, events)
            return
        else:
            body = json.dumps(chat_completion(text)).encode()
        self._send_whole(sock, conn, "200 OK", {"Content-Type": "application/json"}, body)

    def _answer(self, sock: socket.socket, conn: Conn, req: Request) -> None:
        h = req.headers
        mode = conn.mode
        limit = int(h.get("x-hostile-limit", DEFAULT_LIMIT))
        seconds = float(h.get("x-hostile-seconds", DEFAULT_SECONDS))
        rate = float(h.get("x-hostile-rate", 0)) or None
        delta = int(h.get("x-hostile-delta", 0)) or None
        if mode is None:
            self._answer_normal(sock, conn, req)
        elif mode == "redirect":
            location = h["x-hostile-location"]
            body = json.dumps({"error": {"message": "moved", "type": "redirect"}}).encode()
            self._send_whole(
                sock, conn, "307 Temporary Redirect", {"Location": location, "Content-Type": "application/json"}, body
            )
        elif mode == "long-line":
            self._stream(sock, conn, long_line(), limit, seconds, rate, interval=None, end=b"")
        elif mode == "deltas":
            self._stream(sock, conn, deltas(delta or 16), limit, seconds, rate, interval=None, end=STREAM_END)
        elif mode == "key-run":
            self._stream(sock, conn, key_run(delta or 300), limit, seconds, rate, interval=None, end=STREAM_END)
        elif mode == "drip":
            interval = float(h.get("x-hostile-interval-ms", 50)) / 1000
            self._stream(sock, conn, drip(delta or 8), limit, seconds, rate, interval=interval, end=STREAM_END)
        else:
            self._send_whole(sock, conn, "400 Bad Request", {"Content-Type": "text/plain"}, f"unknown mode {mode}".encode())

    def _stream(
        self,
        sock: socket.socket,
        conn: Conn,
        pieces: Iterator[bytes],
        limit: int,
        seconds: float,
        rate: float | None,
        interval: float | None,
        end: bytes,
    ) -> None:
        """Sends an SSE answer, chunked, piece by piece, until `limit` bytes or `seconds` (then
        `end`), watching for the peer's EOF or reset between writes (PeerGone)."""
        conn.status = 200
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        sock.setblocking(False)
        started = time.monotonic()
        deadline = started + seconds
        pending = memoryview(b"")
        next_at = started
        body_sent = 0
        ending = False
        while True:
            if self._stopping.is_set() or conn.dropped:
                return
            now = time.monotonic()
            if not pending:
                if ending:
                    break
                if now >= deadline or body_sent >= limit:
                    pending = memoryview(_chunk(end) + b"0\r\n\r\n" if end else b"0\r\n\r\n")
                    ending = True
                elif (interval is None or now >= next_at) and (rate is None or body_sent <= rate * (now - started)):
                    piece = next(pieces)
                    body_sent += len(piece)
                    pending = memoryview(_chunk(piece))
                    if interval is not None:
                        next_at = now + interval
            want_write = bool(pending)
            readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 0.02)
            if readable:
                try:
                    data = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    raise PeerGone() from None
                except BlockingIOError:
                    data = None
                if data == b"":
                    raise PeerGone()
            if writable and pending:
                try:
                    n = sock.send(pending)
                except (ConnectionResetError, BrokenPipeError):
                    raise PeerGone() from None
                except BlockingIOError:
                    n = 0
                pending = pending[n:]
                conn.bytes_sent += n
        conn.completed = True


# -------------------------------------------------------------------------------------------
# The streams: endless iterators of body pieces (SSE bytes)
# -------------------------------------------------------------------------------------------


def long_line(piece: int = 1 * MB) -> Iterator[bytes]:
    """`data: {"choices":[{"delta":{"content":"aaaa...` and never a newline."""
    yield b'data: {"id":"chatcmpl-hostile","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"'
    block = b"a" * piece
    while True:
        yield block


def _blocks(first: bytes, events: list[bytes], target: int = 256 * 1024) -> Iterator[bytes]:
    """`first`, then `events` joined into blocks of about `target` bytes, forever."""
    yield first
    block, k = b"", 0
    while len(block) < target:
        block += events[k % len(events)]
        k += 1
    while True:
        yield block


def deltas(chars: int = 16) -> Iterator[bytes]:
    """Small, valid deltas of plain words, without end."""
    words = "the quick brown fox jumps over the lazy dog and keeps on running ".split(" ")
    events = []
    for k in range(64):
        text = (" ".join(words[(k + j) % len(words)] for j in range(8)) + " ")[:chars]
        events.append(chat_chunk({"content": text}))
    return _blocks(chat_chunk({"role": "assistant", "content": ""}), events)


def key_run(chars: int = 300) -> Iterator[bytes]:
    """`Your key is sk-` and then letters and digits, delta after delta, without end: a
    key-like run that a secret pattern keeps matching."""
    rng = random.Random(11)
    alnum = string.ascii_letters + string.digits
    events = [chat_chunk({"content": "".join(rng.choice(alnum) for _ in range(chars))}) for _ in range(64)]
    first = chat_chunk({"role": "assistant", "content": ""}) + chat_chunk({"content": "Your key is sk-"})
    return _blocks(first, events)


def drip(chars: int = 8) -> Iterator[bytes]:
    """One small delta per piece (paced by the caller)."""
    yield chat_chunk({"role": "assistant", "content": ""})
    k = 0
    while True:
        yield chat_chunk({"content": f"w{k:06d} "[:chars]})
        k += 1


# --------------------------------------------------------------------------------------------
# For the attackers (the e2e tests and benches/hostile.py)
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port, for a listener the caller starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hostile(mode: str | None, tag: str, **params: object) -> dict[str, str]:
    """The headers that select what the hostile upstream answers: `mode` (none: a normal
    answer), a `tag` that groups connections, and `x-hostile-*` parameters."""
    h = {"x-hostile-tag": tag}
    if mode is not None:
        h["x-hostile-mode"] = mode
    for k, v in params.items():
        h[f"x-hostile-{k.replace('_', '-')}"] = str(v)
    return h


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0])
    return out


# The opening of an h2c connection with prior knowledge: the preface and an empty SETTINGS.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def slow_h1_head() -> bytes:
    """An HTTP/1.1 request head of twelve headers, to be sent a byte at a time."""
    return b"POST /v1/chat/completions HTTP/1.1\r\nHost: warden\r\n" + b"".join(
        b"X-Slow-%02d: %s\r\n" % (k, b"v" * 16) for k in range(12)
    )


def slow_h2c_head() -> bytes:
    """The h2c preface, SETTINGS, then a HEADERS frame continued by CONTINUATION frames."""
    import hpack
    from hyperframe.frame import ContinuationFrame, HeadersFrame

    fields = [(":method", "POST"), (":path", "/v1/chat/completions"), (":scheme", "http"), (":authority", "warden")]
    fields += [(f"x-slow-{k:02d}", "v" * 16) for k in range(12)]
    block = hpack.Encoder().encode(fields)
    pieces = [block[k : k + 24] for k in range(0, len(block), 24)]
    frames = HeadersFrame(1, pieces[0]).serialize()
    for k, piece in enumerate(pieces[1:], start=1):
        f = ContinuationFrame(1, piece)
        if k == len(pieces) - 1:
            f.flags.add("END_HEADERS")
        frames += f.serialize()
    return H2_PREFACE + H2_EMPTY_SETTINGS + frames
