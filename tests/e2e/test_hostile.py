"""Hostile traffic (issue 11), end to end: a malicious upstream (hostile_upstream.py), hostile
clients on raw sockets and h2c, and overload. For each attack: warden's memory stays bounded
(read from /proc), the attacker gets a provider-shaped error or a closed socket, the record says
why, and ordinary clients (the official openai SDK) served at the same time all succeed.

The wardens here run with small limits (2 MB streams, a 1 s head and write timeout) so that the
attacks end fast; every other wait is a generous liveness bound, never a speed claim.
"""

from __future__ import annotations

import gzip
import json
import select
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from helpers import (
    ANTHROPIC_JSON,
    MODEL,
    OPENAI_JSON,
    REPO,
    Warden,
    assert_anthropic_error,
    assert_openai_error,
    assert_serves_normally,
    chat_body,
    messages_body,
    sse_events,
    user,
)
from hostile_upstream import (
    H2_EMPTY_SETTINGS,
    H2_PREFACE,
    MB,
    NORMAL_REPLY,
    HostileUpstream,
    free_port,
    hostile,
    slow_h1_head,
    slow_h2c_head,
    status_kb,
)

# The limits under attack: small, so that a cut comes after a few MB, not 64.
MAX_STREAM_BYTES = 2 * MB
MAX_EVENT_BYTES = 1 * MB
HEAD_TIMEOUT_MS = 1000
WRITE_TIMEOUT_MS = 1000
H2_MAX_STREAMS = 8
# Memory an attack may add to warden's peak RSS. Each attack offers far more (300 MB of line,
# endless deltas) than this; a warden that buffers what it is sent goes past it.
RSS_BOUND_MB = 128
# Liveness bounds (generous: a debug build on a loaded 2-core machine).
CUT_WITHIN_S = 30.0
RELEASE_WITHIN_S = 5.0
CLOSE_WITHIN_S = 15.0
INJECTED_KEY = "sk-ant-e2e-injected-key-0123456789abcdef"

SMALL_LIMITS = {
    "max_stream_bytes": MAX_STREAM_BYTES,
    "max_event_bytes": MAX_EVENT_BYTES,
    "header_read_timeout_ms": HEAD_TIMEOUT_MS,
    "write_timeout_ms": WRITE_TIMEOUT_MS,
    "http2_max_concurrent_streams": H2_MAX_STREAMS,
    # Room for the oversized requests below to be read and refused on their content.
    "max_body_bytes": 4 * MB,
    "max_decompressed_bytes": 24 * MB,
    # Neither may end an attack before the limit under test does.
    "total_timeout_ms": 60000,
    "stream_idle_timeout_ms": 5000,
}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------




def tag() -> str:
    return f"t{uuid.uuid4().hex[:12]}"






class Peak:
    """Warden's peak RSS over a block: resets the kernel's high-water mark (clear_refs 5), then
    reads VmHWM. `grown_mb` is the peak above the resident size at the start."""

    def __init__(self, w: Warden):
        self.pid = w.p.pid

    def __enter__(self) -> "Peak":
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self.start_kb = status_kb(self.pid)["VmRSS"]
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak_kb = status_kb(self.pid)["VmHWM"]

    @property
    def grown_mb(self) -> float:
        return (self.peak_kb - self.start_kb) / 1024


def wait_for(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.02)


def wait_admin(admin: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(f"{admin}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 15, f"the admin listener at {admin}")


def record_with(w: Warden, rid: str) -> dict:
    return w.record(rid, timeout=15)


def the_conn(upstream: HostileUpstream, t: str, timeout: float = 15.0):
    """The one upstream connection of the request tagged `t` (waiting for it to arrive)."""
    conns = wait_for(lambda: upstream.connections(tag=t), timeout, f"the request tagged {t} at the upstream")
    assert len(conns) == 1, f"{len(conns)} upstream connections for {t}"
    return conns[0]


def assert_released(upstream: HostileUpstream, t: str, within: float, since: float | None = None) -> None:
    """Warden closed its upstream connection for `t` (within `within` s of `since`), before the
    upstream had finished its answer."""
    c = the_conn(upstream, t)
    start = since if since is not None else time.monotonic()
    deadline = start + within
    while c.open and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not c.open, (
        f"warden still holds the upstream connection {within:.0f}s later "
        f"({c.bytes_sent:,} bytes sent so far)"
    )
    assert c.closed_by == "peer" and not c.completed, (
        f"the upstream's answer ran to its end ({c.bytes_sent:,} bytes, {c.closed_by} closed): "
        f"warden never cut it"
    )
    if since is not None:
        assert c.closed_at - since <= within, f"released {c.closed_at - since:.1f}s after the client left"


@dataclass
class StreamRead:
    status: int
    headers: dict
    raw: bytes
    ended: bool  # warden ended the answer (rather than the test giving up)
    why: str


def read_stream(w: Warden, path: str, body: dict, headers: dict[str, str], max_bytes: int) -> StreamRead:
    """Posts a streamed request and reads the answer until warden ends it, or until `max_bytes`
    have arrived or CUT_WITHIN_S has passed (then `ended` is False)."""
    raw = bytearray()
    deadline = time.monotonic() + CUT_WITHIN_S
    with w.client(timeout=httpx.Timeout(CUT_WITHIN_S, connect=5.0)) as c:
        with c.stream("POST", path, json=body, headers=headers) as r:

            def read(ended: bool, why: str) -> StreamRead:
                return StreamRead(r.status_code, dict(r.headers), bytes(raw), ended, why)

            try:
                for piece in r.iter_raw():
                    raw += piece
                    if len(raw) > max_bytes:
                        return read(False, f"{len(raw)} bytes and still going")
                    if time.monotonic() > deadline:
                        return read(False, f"still going after {CUT_WITHIN_S:.0f}s")
            except httpx.TimeoutException:
                return read(False, f"nothing more for {CUT_WITHIN_S:.0f}s")
            return read(True, "ended")


def assert_openai_error_doc(doc: object) -> dict:
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), f"not the OpenAI error shape: {doc}"
    err = doc["error"]
    assert isinstance(err.get("message"), str) and err["message"], doc
    assert isinstance(err.get("type"), str) and err["type"], doc
    assert "code" in err, doc
    return err


def assert_cut_openai(res: StreamRead, peak: Peak) -> dict:
    """The client got an OpenAI-shaped error: a last SSE error event (no [DONE]), or an error
    status with an error body if nothing had been sent yet."""
    assert res.ended, (
        f"the stream was not cut: {res.why} ({len(res.raw) / MB:.1f} MB received; "
        f"warden's peak RSS grew by {peak.grown_mb:.0f} MB meanwhile)"
    )
    if res.status != 200:
        assert res.status in (413, 502, 503, 504), res.status
        return assert_openai_error_doc(json.loads(res.raw))
    events = sse_events(res.raw)
    assert events, "an empty answer, without an error event"
    assert all(d != "[DONE]" for _, d in events), "a cut stream ended with [DONE], as if it were complete"
    return assert_openai_error_doc(json.loads(events[-1][1]))


def content_of(raw: bytes) -> str:
    """The text deltas in an OpenAI chat SSE body."""
    out = []
    for _, d in sse_events(raw):
        try:
            doc = json.loads(d)
        except ValueError:
            continue
        for ch in doc.get("choices") or []:
            out.append((ch.get("delta") or {}).get("content") or "")
    return "".join(out)


def assert_cut_record(w: Warden, res: StreamRead, *limits: str) -> dict:
    rec = record_with(w, res.headers["x-warden-request-id"])
    assert rec["outcome"] == "cut", rec
    assert any(name in (rec.get("error") or "") for name in limits), (
        f"the record's error does not name {' or '.join(limits)}: {rec.get('error')!r}"
    )
    return rec


class GoodClients:
    """Ordinary clients (the official openai SDK, whole and streamed answers) sending requests in
    a loop while an attack runs. `assert_all_ok` after the block: every one succeeded."""

    def __init__(self, w: Warden, threads: int = 2, reply: str = NORMAL_REPLY):
        self.w, self.reply, self.n = w, reply, threads
        self.stop = threading.Event()
        self.ok = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(threads)]

    def _run(self, k: int) -> None:
        with self.w.openai(timeout=15.0) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    messages = user(f"good client {k}, request {n}")
                    if n % 2:
                        answer = client.chat.completions.create(model=MODEL, messages=messages)
                        text = answer.choices[0].message.content
                    else:
                        stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
                        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
                    if (text or "").strip() != self.reply:
                        self.failures.append(f"client {k} request {n}: answered {text!r}")
                    else:
                        self.ok += 1
                except Exception as e:  # noqa: BLE001 - every failure is the finding
                    self.failures.append(f"client {k} request {n}: {e!r}")
                self.stop.wait(0.05)

    def __enter__(self) -> "GoodClients":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def assert_all_ok(self) -> None:
        assert not self.failures, (
            f"{len(self.failures)} good requests failed during the attack: {self.failures[:5]}"
        )
        assert self.ok >= self.n, f"only {self.ok} good requests completed during the attack"


# --------------------------------------------------------------------------------------------
# Fixtures: the hostile upstream and the wardens in front of it
# --------------------------------------------------------------------------------------------

# A plugin judges whole texts, so a plugin rule that can block holds a streamed answer to its
# end (brand-steering: an answer that recommends a competitor).
HELD_POLICY = """\
name: held
description: A rule that judges the whole answer and can block it, so a stream is held to its end.
rules:
  - id: competitor
    phases: [completion]
    action: block
    plugin:
      file: brand-steering.wasm
      config: { competitors: [Acme Cloud], action: block }
"""


@pytest.fixture(scope="module")
def upstream():
    s = HostileUpstream()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def small(start_warden, upstream):
    """The default pack in front of the hostile upstream, with small stream, head and write
    limits, and an admin listener (`small.admin`)."""
    admin = f"http://127.0.0.1:{free_port()}"
    w = start_warden(
        "warden-hostile",
        upstream=upstream.url,
        config={
            "admin_listen": admin.removeprefix("http://"),
            "limits": SMALL_LIMITS,
            # The key warden injects for Anthropic: it must go to the configured host only.
            "upstreams": {"anthropic": {"url": upstream.url, "api_key_env": "WARDEN_E2E_HOSTILE_KEY"}},
        },
        env={"WARDEN_E2E_HOSTILE_KEY": INJECTED_KEY},
    )
    wait_admin(admin)
    w.admin = admin
    return w


@pytest.fixture(scope="module")
def held(start_warden, upstream, tmp_path_factory):
    """A pack whose one rule (a plugin) judges whole answers and can block: warden holds a
    streamed answer until it ends. Small limits."""
    d = tmp_path_factory.mktemp("held-policies")
    (d / "held.yaml").write_text(HELD_POLICY)
    plugin = REPO / "plugins" / "build" / "brand-steering.wasm"
    assert plugin.is_file(), f"{plugin} is missing: run scripts/build-plugins.sh"
    shutil.copy(plugin, d / "brand-steering.wasm")
    return start_warden("warden-hostile-held", upstream=upstream.url, policies=d, config={"limits": SMALL_LIMITS})


def roomy_warden(start_warden, upstream: HostileUpstream, name: str) -> Warden:
    """The default pack with a stream limit far above what the attacks send, so that only the
    behaviour under test can end them; an admin listener (`.admin`)."""
    admin = f"http://127.0.0.1:{free_port()}"
    w = start_warden(
        name,
        upstream=upstream.url,
        config={
            "admin_listen": admin.removeprefix("http://"),
            "limits": {**SMALL_LIMITS, "max_stream_bytes": 1024 * MB, "total_timeout_ms": 120000},
        },
    )
    wait_admin(admin)
    w.admin = admin
    return w


@pytest.fixture(scope="module")
def roomy(start_warden, upstream):
    """For the client that stops reading: only the write timeout can end its stream."""
    return roomy_warden(start_warden, upstream, "warden-hostile-roomy")


@pytest.fixture(scope="module")
def cpu(start_warden, upstream):
    """For the key-like runs, alone: a warden whose CPU they pinned must not spoil another test."""
    return roomy_warden(start_warden, upstream, "warden-hostile-cpu")


# --------------------------------------------------------------------------------------------
# 1. A hostile upstream
# --------------------------------------------------------------------------------------------


def test_a_300_mb_sse_line_is_cut_and_memory_stays_bounded(small, upstream):
    """A poisoned upstream answers `data: ` and then a line that never ends (300 MB, no newline):
    a parser that buffers the partial line, or rescans it on each read, exhausts memory or CPU.
    Warden cuts the stream at max_event_bytes with the provider's error event, records why,
    lets go of the upstream, and serves the next request."""
    t = tag()
    with Peak(small) as peak:
        res = read_stream(
            small, "/v1/chat/completions", chat_body(stream=True),
            {**OPENAI_JSON, **hostile("long-line", t)}, max_bytes=16 * MB,
        )
    err = assert_cut_openai(res, peak)
    assert_released(upstream, t, within=RELEASE_WITHIN_S)
    assert "aaaa" not in json.dumps(err), "the error echoes the upstream's line"
    assert_cut_record(small, res, "max_event_bytes", "max_stream_bytes")
    conn = the_conn(upstream, t)
    assert conn.bytes_sent < 300 * MB
    assert peak.grown_mb < RSS_BOUND_MB, f"warden's peak RSS grew by {peak.grown_mb:.0f} MB"
    assert_serves_normally(small)


def test_an_endless_stream_of_deltas_is_cut_at_max_stream_bytes(small, upstream):
    """A poisoned upstream streams small, valid deltas without end: a stream without a byte cap
    runs (and is judged, and recorded) forever. Warden cuts it at max_stream_bytes with the
    provider's error event; the client got no more than about the limit."""
    t = tag()
    with Peak(small) as peak:
        res = read_stream(
            small, "/v1/chat/completions", chat_body(stream=True),
            {**OPENAI_JSON, **hostile("deltas", t)}, max_bytes=8 * MAX_STREAM_BYTES,
        )
    assert_cut_openai(res, peak)
    assert_released(upstream, t, within=RELEASE_WITHIN_S)
    assert content_of(res.raw), "nothing of the stream reached the client before the cut"
    assert len(res.raw) < 4 * MAX_STREAM_BYTES, f"{len(res.raw) / MB:.1f} MB reached the client"
    assert_cut_record(small, res, "max_stream_bytes")
    assert peak.grown_mb < RSS_BOUND_MB, f"warden's peak RSS grew by {peak.grown_mb:.0f} MB"
    assert_serves_normally(small)


def test_a_whole_text_rule_held_open_is_cut_and_nothing_held_leaks(held, upstream):
    """A rule that judges the whole answer (a plugin that can block) holds a stream until
    it ends; an upstream that never ends it would make warden keep the whole stream in memory.
    Warden cuts it at max_stream_bytes with an error event, and none of the held text, never
    judged, reaches the client."""
    t = tag()
    with Peak(held) as peak:
        res = read_stream(
            held, "/v1/chat/completions", chat_body(stream=True),
            {**OPENAI_JSON, **hostile("deltas", t)}, max_bytes=8 * MAX_STREAM_BYTES,
        )
    assert_cut_openai(res, peak)
    assert_released(upstream, t, within=RELEASE_WITHIN_S)
    if res.status == 200:
        assert content_of(res.raw) == "", "held text the rule never judged reached the client"
    assert_cut_record(held, res, "max_stream_bytes")
    assert peak.grown_mb < RSS_BOUND_MB, f"warden's peak RSS grew by {peak.grown_mb:.0f} MB"
    assert_serves_normally(held)


def test_a_redirect_to_another_host_is_not_followed_and_the_key_stays_home(small, upstream):
    """A malicious upstream answers 307 to another host: a client that follows re-sends the
    guarded body there, with the key warden injected (`api_key_env`). Warden answers a 502 in
    the provider's shape that names the redirect; nothing reaches the other host."""
    t = tag()
    headers = {**ANTHROPIC_JSON, **hostile("redirect", t, location=f"{upstream.trap_url}/v1/messages")}
    r = small.http.post("/v1/messages", json=messages_body("Say hello."), headers=headers)
    trap = upstream.connections(listener="trap")
    leaked = [c for c in trap if any(INJECTED_KEY in v for req in c.requests for v in req.headers.values())]
    assert not leaked, "the injected key was sent to the host the upstream redirected to"
    assert not trap, f"warden followed the redirect: {len(trap)} request(s) reached the other host"
    err = assert_anthropic_error(r, 502)
    assert "redirect" in err["message"].lower(), err
    # The configured upstream did get the request, with the injected key.
    sent = the_conn(upstream, t).requests[0].headers
    assert sent.get("x-api-key") == INJECTED_KEY, "the test's premise: warden injects the key"
    rec = record_with(small, r.headers["x-warden-request-id"])
    assert rec["outcome"] == "failed" and rec["status"] == 502, rec
    assert "redirect" in (rec.get("error") or "").lower(), rec
    assert_serves_normally(small)


def test_a_redirect_to_the_admin_listener_is_not_followed(small, upstream):
    """Server-side request forgery: the upstream redirects warden to its own admin listener's
    `POST /admin/reload`. Warden does not follow; the client gets a 502 naming the redirect, not
    the admin's answer."""
    t = tag()
    headers = {**OPENAI_JSON, **hostile("redirect", t, location=f"{small.admin}/admin/reload")}
    r = small.http.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert "reloaded" not in r.text and "digest" not in r.text, f"the admin listener's answer reached the client: {r.text}"
    err = assert_openai_error(r, 502)
    assert "redirect" in err["message"].lower(), err
    rec = record_with(small, r.headers["x-warden-request-id"])
    assert rec["outcome"] == "failed" and "redirect" in (rec.get("error") or "").lower(), rec
    assert_serves_normally(small)


# --------------------------------------------------------------------------------------------
# 2. CPU: two endless key-like runs
# --------------------------------------------------------------------------------------------


def hold_open(addr: tuple[str, int], request: bytes, stop: threading.Event) -> None:
    """A client that sends `request`, reads and discards the answer until `stop`, then closes."""
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(request)
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                if not s.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return


def raw_post(w: Warden, path: str, body: dict, headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    host, port = w.addr
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {len(data)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + data


def test_two_endless_key_runs_do_not_stall_other_requests(cpu, upstream):
    """Two poisoned streams spell `sk-` and then letters and digits without end: a pattern
    detector that rescans the held run on every delta, on the runtime's threads, pins the CPU so
    that nothing else is answered. While both run, a benign request is answered (5 s client
    timeout) and the admin /healthz answers (1 s timeout), three times over."""
    t = tag()
    stop = threading.Event()
    req = raw_post(
        cpu, "/v1/chat/completions", chat_body(stream=True),
        {**OPENAI_JSON, **hostile("key-run", t, rate=512 * 1024, seconds=30)},
    )
    attackers = [threading.Thread(target=hold_open, args=(cpu.addr, req, stop), daemon=True) for _ in range(2)]
    failures: list[str] = []
    try:
        for a in attackers:
            a.start()
        wait_for(lambda: len(upstream.connections(tag=t)) == 2, 15, "both key-run streams at the upstream")
        time.sleep(1.0)  # let the runs grow
        t_benign = time.monotonic()
        with cpu.openai(timeout=5.0) as client:
            for k in range(3):
                try:
                    answer = client.chat.completions.create(model=MODEL, messages=user(f"benign {k}"))
                    if answer.choices[0].message.content != NORMAL_REPLY:
                        failures.append(f"benign {k}: {answer.choices[0].message.content!r}")
                except openai.APIError as e:
                    failures.append(f"benign {k}: {e!r}")
                try:
                    h = httpx.get(f"{cpu.admin}/healthz", timeout=1.0)
                    if h.status_code != 200:
                        failures.append(f"healthz {k}: {h.status_code}")
                except httpx.HTTPError as e:
                    failures.append(f"healthz {k}: {e!r}")
                time.sleep(0.3)
        live = [c for c in upstream.connections(tag=t) if c.open_at(t_benign)]
    finally:
        stop.set()
        for a in attackers:
            a.join(timeout=10)
        upstream.drop(t)
    assert len(live) == 2, "the key-run streams had already ended when the benign requests were made"
    assert not failures, f"during two key-run streams: {failures}"
    assert_serves_normally(cpu)


# --------------------------------------------------------------------------------------------
# 3. Hostile clients
# --------------------------------------------------------------------------------------------



def h2_unfinished_headers() -> bytes:
    """A HEADERS frame on stream 1 without END_HEADERS, whose CONTINUATION never comes."""
    import hpack
    from hyperframe.frame import HeadersFrame

    block = hpack.Encoder().encode([(":method", "POST"), (":path", "/v1/chat/completions"), (":scheme", "http")])
    f = HeadersFrame(1, block)
    f.flags.add("END_STREAM")  # but not END_HEADERS
    return f.serialize()


def wait_closed(socks: dict[str, socket.socket], timeout: float) -> set[str]:
    """Reads (and discards) from each socket until the peer closes it or `timeout` passes;
    returns the names of those closed."""
    closed: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(closed) < len(socks) and time.monotonic() < deadline:
        open_ = [s for n, s in socks.items() if n not in closed]
        readable, _, _ = select.select(open_, [], [], 0.1)
        for s in readable:
            name = next(n for n, x in socks.items() if x is s)
            try:
                if not s.recv(65536):
                    closed.add(name)
            except OSError:
                closed.add(name)
    return closed


def test_silent_connections_are_closed(small):
    """A few dozen sockets that never send a byte, an h2c connection that sends only its
    preface, one that never finishes a HEADERS block, and a silent socket to the admin listener:
    held open, they exhaust file descriptors. Warden closes each once the head timeout has
    passed (1 s here); good clients are served meanwhile."""
    host, port = small.admin.removeprefix("http://").rsplit(":", 1)
    socks: dict[str, socket.socket] = {}
    try:
        with GoodClients(small) as good:
            for k in range(40):
                socks[f"silent-{k}"] = socket.create_connection(small.addr, timeout=5)
            socks["h2c-preface"] = socket.create_connection(small.addr, timeout=5)
            socks["h2c-preface"].sendall(H2_PREFACE + H2_EMPTY_SETTINGS)
            socks["h2c-unfinished-headers"] = socket.create_connection(small.addr, timeout=5)
            socks["h2c-unfinished-headers"].sendall(H2_PREFACE + H2_EMPTY_SETTINGS + h2_unfinished_headers())
            socks["admin-silent"] = socket.create_connection((host, int(port)), timeout=5)
            closed = wait_closed(socks, CLOSE_WITHIN_S)
    finally:
        for s in socks.values():
            s.close()
    still_open = sorted(set(socks) - closed)
    assert not still_open, f"still open after {CLOSE_WITHIN_S:.0f}s: {still_open[:8]}{' ...' if len(still_open) > 8 else ''}"
    good.assert_all_ok()






@pytest.mark.parametrize("protocol", ["h1", "h2c"])
def test_slowloris_heads_are_cut(small, protocol):
    """Slowloris: ten clients each send a request head one byte every 200 ms (it would take over
    a minute to finish), as HTTP/1.1 or as h2c (preface, HEADERS, CONTINUATION). Warden closes
    each within the head timeout (after a 4xx answer, for HTTP/1.1, or none); good clients are
    served meanwhile."""
    head = slow_h1_head() if protocol == "h1" else slow_h2c_head()
    assert len(head) * 0.2 > 3 * CLOSE_WITHIN_S
    socks = [socket.create_connection(small.addr, timeout=5) for _ in range(10)]
    sent = [0] * len(socks)
    received = [b""] * len(socks)
    cut: set[int] = set()
    try:
        with GoodClients(small) as good:
            deadline = time.monotonic() + CLOSE_WITHIN_S
            while len(cut) < len(socks) and time.monotonic() < deadline:
                for k, s in enumerate(socks):
                    if k in cut:
                        continue
                    try:
                        if sent[k] < len(head):
                            s.sendall(head[sent[k] : sent[k] + 1])
                            sent[k] += 1
                        while select.select([s], [], [], 0)[0]:
                            piece = s.recv(65536)
                            if not piece:
                                cut.add(k)
                                break
                            received[k] += piece
                    except OSError:
                        cut.add(k)
                time.sleep(0.2)
    finally:
        for s in socks:
            s.close()
    assert len(cut) == len(socks), f"{len(socks) - len(cut)} slowloris heads still being read after {CLOSE_WITHIN_S:.0f}s"
    assert all(n < len(head) for n in sent), "a slowloris head was sent in full"
    if protocol == "h1":
        for answer in received:
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:100]
    good.assert_all_ok()


def test_a_client_that_stops_reading_releases_the_upstream(roomy, upstream):
    """A client asks for a stream and never reads it (a small receive buffer, no recv): the
    answer's task, its upstream connection and everything held stay pinned. Warden cuts the
    client once a write has waited write_timeout_ms (1 s here) and releases the upstream."""
    t = tag()
    req = raw_post(
        roomy, "/v1/chat/completions", chat_body(stream=True),
        {**OPENAI_JSON, **hostile("deltas", t, limit=512 * MB, seconds=45)},
    )
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        s.connect(roomy.addr)
        s.sendall(req)
        the_conn(upstream, t)
        # Never read: the test only waits for the upstream to be let go.
        assert_released(upstream, t, within=CUT_WITHIN_S)
        # And warden has hung up on the client: draining the socket reaches its end.
        s.settimeout(1.0)
        drained, deadline = 0, time.monotonic() + CLOSE_WITHIN_S
        ended = False
        while time.monotonic() < deadline:
            try:
                piece = s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                ended = True
                break
            if not piece:
                ended = True
                break
            drained += len(piece)
        assert ended, f"the client's connection is still open ({drained / MB:.1f} MB drained)"
    finally:
        s.close()
        upstream.drop(t)
    assert_serves_normally(roomy)


def test_a_client_that_leaves_while_events_are_held_releases_the_upstream(held, upstream):
    """A client leaves in the middle of a stream whose events warden is holding back (a
    whole-text rule): nothing is being written to it, so nothing notices, and the upstream was
    read for minutes. Warden lets go of the upstream within RELEASE_WITHIN_S of the client's
    departure, and records the client as gone."""
    t = tag()
    req = raw_post(
        held, "/v1/chat/completions", chat_body(stream=True),
        {**OPENAI_JSON, **hostile("drip", t, interval_ms=50, seconds=45)},
    )
    s = socket.create_connection(held.addr, timeout=5)
    try:
        s.sendall(req)
        conn = the_conn(upstream, t)
        wait_for(lambda: conn.bytes_sent > 2000, 15, "the upstream to stream a few events")
        s.settimeout(1.0)
        try:
            head = s.recv(65536)
        except socket.timeout:
            head = b""
    finally:
        s.close()
        left = time.monotonic()
    try:
        assert_released(upstream, t, within=RELEASE_WITHIN_S, since=left)
    finally:
        upstream.drop(t)
    rid = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                if line.lower().startswith(b"x-warden-request-id:")), None)
    if rid:
        assert record_with(held, rid)["outcome"] == "client_gone"
    assert_serves_normally(held)


def test_a_hundred_thousand_tiny_strings_are_refused_413(small, upstream):
    """A 2.7 MB body of 100,000 one-letter text parts: each string becomes a segment that every
    rule judges and the record counts. Warden refuses it with 413 in the provider's shape before
    the upstream sees it; good clients are served meanwhile."""
    t = tag()
    body = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 100_000}]}
    with GoodClients(small) as good:
        r = small.http.post("/v1/chat/completions", json=body, headers={**OPENAI_JSON, **hostile(None, t)}, timeout=60)
    assert_openai_error(r, 413)
    assert not upstream.connections(tag=t), "the request reached the upstream"
    rec = record_with(small, r.headers["x-warden-request-id"])
    assert rec["outcome"] == "rejected" and rec["status"] == 413, rec
    good.assert_all_ok()


def test_a_16_mb_model_in_a_gzip_body_is_refused_400(small, upstream):
    """A 16 KB gzip body whose `model` is 16 MB: the model name keys warden's selection cache and
    is copied into every judge and record. Warden refuses it with 400 in the provider's shape;
    three distinct such models leave warden's memory where it was; good clients are served."""
    rss0 = status_kb(small.p.pid)["VmRSS"]
    with GoodClients(small) as good:
        for k in range(3):
            t = tag()
            body = {"model": chr(ord("a") + k) * (16 * MB), "messages": user("hello")}
            data = gzip.compress(json.dumps(body).encode())
            assert len(data) < 64 * 1024
            r = small.http.post(
                "/v1/chat/completions", content=data,
                headers={**OPENAI_JSON, "content-encoding": "gzip", **hostile(None, t)}, timeout=60,
            )
            err = assert_openai_error(r, 400)
            assert len(r.content) < 4096, "the error echoes the model"
            assert "model" in err["message"], err
            assert not upstream.connections(tag=t), "the request reached the upstream"
            rec = record_with(small, r.headers["x-warden-request-id"])
            assert len(json.dumps(rec)) < 16 * 1024, "the record carries the 16 MB model"
    grown = (status_kb(small.p.pid)["VmRSS"] - rss0) / 1024
    assert grown < 100, f"warden's RSS grew by {grown:.0f} MB after three 16 MB models"
    good.assert_all_ok()


class H2Attacker:
    """An h2c client (prior knowledge) that ignores the server's SETTINGS_MAX_CONCURRENT_STREAMS
    and opens as many streams as it likes; it reads and acknowledges what comes back."""

    def __init__(self, addr: tuple[str, int]):
        import h2.config
        import h2.connection
        import h2.events

        class Greedy(h2.connection.H2Connection):
            @property
            def open_outbound_streams(self) -> int:  # never "too many"
                return 0

        self.events = h2.events
        self.sock = socket.create_connection(addr, timeout=5)
        self.conn = Greedy(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.lock = threading.Lock()
        self.settings = threading.Event()
        self.max_streams: int | None = None
        self.responses = self.resets = 0
        self.terminated = False
        with self.lock:
            self.conn.initiate_connection()
            self.sock.sendall(self.conn.data_to_send())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        self.sock.settimeout(0.2)
        while not self.terminated:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            with self.lock:
                try:
                    for ev in self.conn.receive_data(data):
                        if isinstance(ev, self.events.RemoteSettingsChanged):
                            from h2.settings import SettingCodes

                            changed = ev.changed_settings.get(SettingCodes.MAX_CONCURRENT_STREAMS)
                            if changed is not None:
                                self.max_streams = changed.new_value
                            self.settings.set()
                        elif isinstance(ev, self.events.ResponseReceived):
                            self.responses += 1
                        elif isinstance(ev, self.events.DataReceived):
                            try:
                                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                            except Exception:  # noqa: BLE001 - the stream may have been reset
                                pass
                        elif isinstance(ev, self.events.StreamReset):
                            self.resets += 1
                        elif isinstance(ev, self.events.ConnectionTerminated):
                            self.terminated = True
                    self.sock.sendall(self.conn.data_to_send())
                except Exception:  # noqa: BLE001 - a protocol error ends the attack
                    break
        self.terminated = True

    def open_streams(self, n: int, path: str, headers: dict[str, str], body: bytes) -> int:
        opened = 0
        for _ in range(n):
            if self.terminated:
                break
            with self.lock:
                try:
                    sid = self.conn.get_next_available_stream_id()
                    hdrs = [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "warden")]
                    hdrs += [(k, v) for k, v in headers.items()]
                    self.conn.send_headers(sid, hdrs)
                    self.conn.send_data(sid, body, end_stream=True)
                    self.sock.sendall(self.conn.data_to_send())
                    opened += 1
                except Exception:  # noqa: BLE001 - the server closed the connection
                    break
        return opened

    def close(self) -> None:
        self.terminated = True
        self.sock.close()
        self.reader.join(timeout=5)


def test_h2c_with_many_streams_is_limited_and_good_clients_succeed(small, upstream):
    """Two h2c connections each open 64 slow streams at once, ignoring the server's stream
    limit: without a cap each stream holds an upstream connection, and a few such clients
    exhaust them. Warden advertises at most http2_max_concurrent_streams (8 here) and never
    carries more than that per connection to the upstream; good clients succeed meanwhile."""
    t = tag()
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer sk-test",
        **hostile("drip", t, interval_ms=200, seconds=20),
    }
    body = json.dumps(chat_body(stream=True)).encode()
    attackers: list[H2Attacker] = []
    try:
        with GoodClients(small) as good:
            attackers = [H2Attacker(small.addr) for _ in range(2)]
            for a in attackers:
                assert a.settings.wait(10), "no SETTINGS from warden over h2c"
            for a in attackers:
                a.open_streams(64, "/v1/chat/completions", headers, body)
            wait_for(lambda: len(upstream.connections(tag=t)) >= H2_MAX_STREAMS, 15, "the h2c streams at the upstream")
            time.sleep(2.0)  # room for streams past the limit to arrive, if they will
            peak = upstream.max_concurrent(t)
            advertised = [a.max_streams for a in attackers]
    finally:
        for a in attackers:
            a.close()
        upstream.drop(t)
    assert all(m is not None and m <= H2_MAX_STREAMS for m in advertised), f"SETTINGS_MAX_CONCURRENT_STREAMS: {advertised}"
    assert peak <= 2 * H2_MAX_STREAMS, f"{peak} upstream streams at once from two h2c connections"
    good.assert_all_ok()
    assert_serves_normally(small)


# --------------------------------------------------------------------------------------------
# 4. Overload
# --------------------------------------------------------------------------------------------

CLASSIFIER_POLICY = """\
name: injection-classifier
rules:
  - id: injection-model
    phases: [prompt]
    roles: [user, tool]
    action: block
    classifier: { model: guard.onnx, labels: { injection: 0.9 } }
"""
# About 300 KB of an ordinary question: a few tens of milliseconds of classifier time each
# (results are cached per text, so every request gets its own).
BENIGN = "Who wrote the novel War and Peace, and when was it first published in full? " * 4000
LOAD_THREADS = 32
LOAD_SECONDS = 4.0  # each client sends requests back to back for this long ...
LOAD_PER_THREAD = 40  # ... and at most this many


def benign(k: int) -> dict:
    return chat_body(f"Question {k}. {BENIGN}")


@pytest.fixture(scope="module")
def overload(start_warden, tmp_path_factory):
    """The classifier pack in front of mock-llm, with one detector worker, a queue of two and at
    most eight requests in flight; the detector budget is short, so that time spent queueing
    for it would turn into refusals."""
    d = tmp_path_factory.mktemp("classifier-policies")
    (d / "classifier.yaml").write_text(CLASSIFIER_POLICY)
    shutil.copy(REPO / "policies" / "models" / "guard-classifier.onnx", d / "guard.onnx")
    admin = f"http://127.0.0.1:{free_port()}"
    w = start_warden(
        "warden-overload",
        policies=d,
        config={
            "admin_listen": admin.removeprefix("http://"),
            "limits": {
                "detector_workers": 1,
                "detector_queue": 2,
                "max_in_flight": 8,
                "detector_budget_ms": 600,
                "max_body_bytes": 1 * MB,
                "max_decompressed_bytes": 4 * MB,
                "total_timeout_ms": 60000,
            },
        },
    )
    wait_admin(admin)
    w.admin = admin
    return w


def test_overload_is_shed_with_429_or_503_never_refused_as_content_filter(overload):
    """32 clients for 4 s, each sending 300 KB questions the classifier must judge back to back,
    against one detector worker: about 30 times what it can serve. When waiting for the detector counts
    against its budget, `on_error: block` refuses ordinary questions as `content_filter`. Warden
    answers every request with a 200 or sheds it with 429/503 (Retry-After, the provider's error
    shape, recorded as shed); /readyz reports the saturation; afterwards it serves normally."""
    w = overload
    # Idle, these questions pass.
    for k in range(3):
        r = w.http.post("/v1/chat/completions", json=benign(-1 - k), headers=OPENAI_JSON, timeout=30)
        assert r.status_code == 200 and r.headers["x-warden-decision"] == "allow", r.text[:300]

    results: list[tuple[int, dict, str]] = []
    errors: list[str] = []
    ready: list[tuple[int, str]] = []
    start = threading.Barrier(LOAD_THREADS + 1)
    stop_ready = threading.Event()

    def load(k: int) -> None:
        with w.client(timeout=30.0) as c:
            try:
                start.wait(timeout=30)
            except threading.BrokenBarrierError:
                return
            until = time.monotonic() + LOAD_SECONDS
            for j in range(LOAD_PER_THREAD):
                if time.monotonic() > until:
                    break
                try:
                    r = c.post("/v1/chat/completions", json=benign(k * 100 + j), headers=OPENAI_JSON)
                    results.append((r.status_code, dict(r.headers), r.text[:2000]))
                except httpx.HTTPError as e:
                    errors.append(f"client {k} request {j}: {e!r}")

    def poll_ready() -> None:
        while not stop_ready.is_set():
            try:
                r = httpx.get(f"{w.admin}/readyz", timeout=2)
                ready.append((r.status_code, r.text))
            except httpx.HTTPError as e:
                ready.append((0, repr(e)))
            stop_ready.wait(0.05)

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(LOAD_THREADS)]
    poller = threading.Thread(target=poll_ready, daemon=True)
    for t in threads:
        t.start()
    start.wait(timeout=30)
    poller.start()
    for t in threads:
        t.join(timeout=120)
    stop_ready.set()
    poller.join(timeout=10)

    assert not errors, f"{len(errors)} requests got no answer: {errors[:3]}"
    assert len(results) >= LOAD_THREADS
    refused = [(s, b[:200]) for s, _, b in results if s == 400]
    assert not refused, f"{len(refused)} ordinary questions refused under load: {refused[:3]}"
    other = [(s, b[:200]) for s, _, b in results if s not in (200, 429, 503)]
    assert not other, f"answers other than 200, 429 and 503: {other[:3]}"
    served = [(h, b) for s, h, b in results if s == 200]
    shed = [(s, h, b) for s, h, b in results if s in (429, 503)]
    assert served, "nothing was served under load"
    assert shed, "nothing was shed at 30 times capacity"
    for h, b in served:
        assert h["x-warden-decision"] == "allow", b
        assert json.loads(b)["choices"][0]["message"]["content"], b
    for s, h, b in shed:
        assert h.get("retry-after", "").isdigit(), f"a {s} without Retry-After: {h}"
        assert h.get("x-warden-decision") == "error", h
        err = assert_openai_error_doc(json.loads(b))
        assert err.get("code") != "content_filter", err
    for _, h, _ in shed[:3]:
        rec = record_with(w, h["x-warden-request-id"])
        assert rec["outcome"] == "shed", rec

    assert any(s == 503 and '"ready":false' in body.replace(" ", "") for s, body in ready), (
        f"/readyz never reported saturation: {sorted(set(s for s, _ in ready))}"
    )
    wait_for(lambda: httpx.get(f"{w.admin}/readyz", timeout=2).status_code == 200, 15, "/readyz to recover")
    r = w.http.post("/v1/chat/completions", json=benign(-9), headers=OPENAI_JSON, timeout=30)
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "allow", r.text[:300]


def test_an_h2_client_that_never_opens_its_window_does_not_hold_warden(start_warden, mock):
    """An h2c client asks for two answers and leaves its flow-control window at 0, so not a byte
    of them can be sent. Without a bound the two responses stay in flight for ever and, with
    max_in_flight 2, every later client is shed. Warden closes that connection after
    write_timeout_ms, and the next client is served."""
    import h2.config
    import h2.connection
    import h2.settings

    w = start_warden(
        "warden-hostile-h2-window",
        config={"limits": {"max_in_flight": 2, "write_timeout_ms": 1000, "idle_timeout_ms": 60000}},
    )
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
    )
    sock = socket.create_connection(w.addr, timeout=5)
    try:
        conn.initiate_connection()
        body = json.dumps(chat_body("a long answer, please")).encode()
        for _ in range(2):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [
                (":method", "POST"), (":path", "/v1/chat/completions"), (":scheme", "http"),
                (":authority", "warden"), ("content-type", "application/json"),
                ("authorization", "Bearer sk-test"), ("x-mock-reply", "word " * 1500),
            ])
            conn.send_data(sid, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        # Read (and answer pings) but never open the window: the answers cannot move.
        closed_at = None
        deadline = time.monotonic() + 15
        sock.settimeout(0.2)
        while time.monotonic() < deadline and closed_at is None:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                closed_at = time.monotonic()
                break
            conn.receive_data(data)
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                closed_at = time.monotonic()
        assert closed_at is not None, "warden kept the connection of a client that never opened its window"
    finally:
        sock.close()
    # The two slots are free again: an ordinary client is served, not shed.
    r = w.http.post("/v1/chat/completions", json=chat_body("hello"), timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
