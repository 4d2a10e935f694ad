#!/usr/bin/env python3
"""Hostile-traffic benchmark (issue 11): the release binaries under attack, with the DEFAULT limits.

    .venv/bin/python benches/hostile.py            # from the repository root (~3.5 min on 2 cores)

Warden is configured with nothing but its ports, its upstreams and an admin listener, and serves
the repository's policies/ (the classifier included, so ONNX Runtime is needed: ORT_DYLIB_PATH,
as the Makefile exports it). OpenAI routes go to the bundled mock-llm (the good clients); the
Azure OpenAI route (`/openai/deployments/...`, the same OpenAI chat shape) goes to the hostile
upstream of the e2e suite (tests/e2e/hostile_upstream.py), run in a process of its own.

It measures, each attack against a fresh warden (so that each peak RSS is its own):

- warden's RSS at idle, and its peak RSS (VmHWM, reset with clear_refs just before the attack)
  under each attack, with the kernel's figures from /proc/PID/status;
- good clients (4 threads of plain httpx, whole and streamed chat requests, keep-alive; in a
  process of their own so the attackers' Python does not delay them) and /healthz on the admin
  listener (a new connection every 200 ms): success rate and latency, during each attack, with
  the whole attack mix at once, and with no attack, in the same run;
- overload: the sustainable rate of the default pack (classifier on) for a costly prompt, then an
  open-loop generator at 10 times that rate: served, shed (429/503 with Retry-After), falsely
  refused (a content_filter refusal for a prompt that passes idle), other errors, p99s.

Prints markdown tables and writes every raw figure to bench-results/hostile-<UTC date>.json.
The binaries come from $WARDEN_RELEASE_DIR (default ~/.cache/warden/release-target/release);
this script does not build them (see benches/README.md). Knobs (environment): ONLY (comma-separated
phase names, e.g. `ONLY=idle,long-line,overload`), BASELINE_S (15), GOOD_THREADS (4),
OVERLOAD_PROMPT_KB (256), OVERLOAD_S (15), OVERLOAD_FACTOR (10), OVERLOAD_NICE (5).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zlib
from collections import Counter
from multiprocessing.managers import BaseManager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import httpx2 as httpx  # noqa: E402

from helpers import AZURE_API_VERSION, AZURE_DEPLOYMENT, FIXTURES, MODEL, OPENAI_JSON, POLICIES, Proc, parse_records, sse_events  # noqa: E402
from hostile_upstream import (  # noqa: E402
    MB,
    HostileUpstream,
    free_port,
    hostile,
    slow_h1_head,
    slow_h2c_head,
    status_kb,
)

RELEASE = Path(os.environ.get("WARDEN_RELEASE_DIR") or Path.home() / ".cache/warden/release-target/release")
WARDEN_CACHE = Path(os.environ.get("WARDEN_CACHE") or Path.home() / ".cache/warden")
os.environ.setdefault("ORT_DYLIB_PATH", str(WARDEN_CACHE / "onnxruntime-1.31.1" / "libonnxruntime.so.1.31.1"))

GOOD_THREADS = int(os.environ.get("GOOD_THREADS", 4))
GOOD_THINK_S = 0.05  # pause between a good client's requests
GOOD_TIMEOUT_S = 15.0  # a good request slower than this is a failure (the bar is 2 s)
HEALTHZ_EVERY_S = 0.2
HEALTHZ_TIMEOUT_S = 5.0  # the bar is 1 s; a longer timeout measures how late it was
BASELINE_S = float(os.environ.get("BASELINE_S", 15))
MIN_WINDOW_S = 5.0  # the shortest good-client window of an attack phase
GOOD_REPLY = "Paris is the capital of France."

# The bar (issue 11), with the default limits.
BAR_PEAK_MB = 400
BAR_MODEL_GROWTH_MB = 200
BAR_GOOD_S = 2.0
BAR_HEALTHZ_S = 1.0
BAR_SILENT_S = 15.0

AZURE_PATH = f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions?api-version={AZURE_API_VERSION}"
AZURE_JSON = {"content-type": "application/json", "api-key": "az-test"}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------




def new_tag() -> str:
    return f"b{uuid.uuid4().hex[:12]}"






def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.0f}"


def mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.0f}"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / MB:.1f} MB" if n >= 100 * 1024 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raw_post(addr: tuple[str, int], path: str, body: dict, headers: dict[str, str]) -> bytes:
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nContent-Length: {len(data)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode() + b"\r\n" + data


# --------------------------------------------------------------------------------------------
# The hostile upstream, in a process of its own (its threads must not take the attackers' or
# the measurers' GIL)
# --------------------------------------------------------------------------------------------


class HostileService:
    def __init__(self) -> None:
        self.s = HostileUpstream()

    def url(self) -> str:
        return self.s.url

    def conns(self, tag: str) -> list[dict]:
        return [
            {
                "open": c.open,
                "opened_at": c.opened_at,
                "closed_at": c.closed_at,
                "closed_by": c.closed_by,
                "bytes_sent": c.bytes_sent,
                "completed": c.completed,
            }
            for c in self.s.connections(tag=tag)
        ]

    def max_concurrent(self, tag: str) -> int:
        return self.s.max_concurrent(tag)

    def drop(self, tag: str) -> None:
        self.s.drop(tag)

    def stop(self) -> None:
        self.s.stop()


class HostileManager(BaseManager):
    pass


HostileManager.register("Hostile", HostileService)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


class BenchWarden(Proc):
    """A release warden with the default limits: only ports, upstreams and the admin listener."""

    def __init__(self, logdir: Path, name: str, mock_url: str, hostile_url: str, policies: Path = POLICIES, nice: int = 0):
        port = free_port()
        self.admin = f"http://127.0.0.1:{port}"
        cfg = {"admin_listen": f"127.0.0.1:{port}", "upstreams": {"azure": {"url": hostile_url}}}
        path = logdir / f"{name}.config.yaml"
        path.write_text(json.dumps(cfg, indent=2))  # JSON is YAML
        argv = ["nice", "-n", str(nice)] if nice else []
        argv += [
            str(RELEASE / "warden"), "serve",
            "--config", str(path),
            "--listen", "127.0.0.1:0",
            "--policies", str(policies),
            "--upstream-openai", mock_url,
        ]
        super().__init__(name, argv, logdir, env={"WARDEN_LOG": "info"})
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.admin}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: the admin listener never answered\n{self.stderr_text()[-3000:]}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.p.pid

    def mem(self) -> dict[str, int]:
        return status_kb(self.pid)

    def reset_peak(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def warm_up(self, n: int = 6) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            for k in range(n):
                body = {"model": MODEL, "messages": [{"role": "user", "content": f"Warm-up {k}: what is the capital of France?"}]}
                if k % 2:
                    body["stream"] = True
                r = c.post("/v1/chat/completions", json=body, headers={**OPENAI_JSON, "x-mock-reply": GOOD_REPLY})
                if r.status_code != 200:
                    raise RuntimeError(f"warm-up request failed: {r.status_code} {r.text[:300]}")

    def record(self, rid: str | None, timeout: float = 5.0) -> dict | None:
        if not rid:
            return None
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in parse_records(self.stderr_text()) if r.get("request_id") == rid]
            if found or time.monotonic() > deadline:
                return found[0] if found else None
            time.sleep(0.1)


def short_record(rec: dict | None) -> dict | None:
    if not rec:
        return None
    return {k: rec.get(k) for k in ("outcome", "status", "error") if rec.get(k) is not None}


# --------------------------------------------------------------------------------------------
# Good clients and /healthz, in a child process
# --------------------------------------------------------------------------------------------


def check_whole(r: httpx.Response) -> str | None:
    if r.status_code != 200:
        return f"status {r.status_code}: {r.text[:120]}"
    if r.headers.get("x-warden-decision") != "allow":
        return f"decision {r.headers.get('x-warden-decision')}"
    text = r.json()["choices"][0]["message"]["content"]
    return None if text == GOOD_REPLY else f"answered {text[:80]!r}"


def check_stream(r: httpx.Response, raw: bytes) -> str | None:
    if r.status_code != 200:
        return f"status {r.status_code}: {raw[:120]!r}"
    if r.headers.get("x-warden-decision") != "allow":
        return f"decision {r.headers.get('x-warden-decision')}"
    text, done = [], False
    for _, data in sse_events(raw):
        if data == "[DONE]":
            done = True
            continue
        doc = json.loads(data)
        for ch in doc.get("choices") or []:
            text.append((ch.get("delta") or {}).get("content") or "")
    if not done:
        return "no [DONE]"
    t = "".join(text)
    return None if t == GOOD_REPLY else f"streamed {t[:80]!r}"


def good_worker(url: str, admin: str, threads: int, stop, out_q) -> None:
    results: list[tuple] = []  # (kind, t0, latency, error or None)
    hz: list[tuple] = []  # (t0, latency, error or None)
    lock = threading.Lock()
    started = threading.Barrier(threads + 2)

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=GOOD_TIMEOUT_S) as c:
            started.wait()
            n = 0
            while not stop.is_set():
                n += 1
                stream = n % 2 == 0
                body = {"model": MODEL, "messages": [{"role": "user", "content": f"Good client {k}, request {n}: what is the capital of France?"}]}
                if stream:
                    body["stream"] = True
                headers = {**OPENAI_JSON, "x-mock-reply": GOOD_REPLY}
                t0 = time.monotonic()
                try:
                    if stream:
                        with c.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                            raw = r.read()
                        err = check_stream(r, raw)
                    else:
                        err = check_whole(c.post("/v1/chat/completions", json=body, headers=headers))
                except Exception as e:  # noqa: BLE001 - every failure is the finding
                    err = repr(e)[:200]
                with lock:
                    results.append(("stream" if stream else "whole", t0, time.monotonic() - t0, err))
                stop.wait(GOOD_THINK_S)

    def healthz() -> None:
        started.wait()
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                r = httpx.get(f"{admin}/healthz", timeout=HEALTHZ_TIMEOUT_S)
                err = None if r.status_code == 200 else f"status {r.status_code}"
            except Exception as e:  # noqa: BLE001
                err = repr(e)[:200]
            hz.append((t0, time.monotonic() - t0, err))
            stop.wait(HEALTHZ_EVERY_S)

    ts = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(threads)]
    ts.append(threading.Thread(target=healthz, daemon=True))
    for t in ts:
        t.start()
    started.wait()
    out_q.put("started")
    stop.wait()
    for t in ts:
        t.join(timeout=GOOD_TIMEOUT_S + 5)
    out_q.put({"good": results, "healthz": hz})


class GoodLoad:
    """Good clients and a /healthz poller against `w` while the block runs (a child process)."""

    def __init__(self, w: BenchWarden, threads: int = GOOD_THREADS):
        # fork: a spawned child would import the e2e helpers (the SDKs) again, seconds each phase.
        ctx = mp.get_context("fork")
        self.stop = ctx.Event()
        self.q = ctx.Queue()
        self.p = ctx.Process(target=good_worker, args=(w.url, w.admin, threads, self.stop, self.q), daemon=True)

    def __enter__(self) -> "GoodLoad":
        self.p.start()
        assert self.q.get(timeout=60) == "started"
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.duration = time.monotonic() - self.t0
        self.stop.set()
        self.data = self.q.get(timeout=GOOD_TIMEOUT_S + 30)
        self.p.join(timeout=10)

    def summary(self) -> dict:
        good, hz = self.data["good"], self.data["healthz"]
        lat = [g[2] for g in good]
        ok = [g for g in good if g[3] is None]
        hz_lat = [h[1] for h in hz]
        return {
            "seconds": round(self.duration, 1),
            "good_n": len(good),
            "good_ok": len(ok),
            "good_success": (len(ok) / len(good)) if good else None,
            "good_p50_s": pct(lat, 50),
            "good_p99_s": pct(lat, 99),
            "good_max_s": max(lat) if lat else None,
            "good_over_bar": sum(1 for g in good if g[3] is not None or g[2] > BAR_GOOD_S),
            "good_failures": Counter(g[3] for g in good if g[3] is not None).most_common(5),
            "whole_p99_s": pct([g[2] for g in good if g[0] == "whole"], 99),
            "stream_p99_s": pct([g[2] for g in good if g[0] == "stream"], 99),
            "healthz_n": len(hz),
            "healthz_ok": sum(1 for h in hz if h[2] is None),
            "healthz_p50_s": pct(hz_lat, 50),
            "healthz_p99_s": pct(hz_lat, 99),
            "healthz_max_s": max(hz_lat) if hz_lat else None,
            "healthz_over_bar": sum(1 for h in hz if h[2] is not None or h[1] > BAR_HEALTHZ_S),
            "healthz_failures": Counter(h[2] for h in hz if h[2] is not None).most_common(3),
        }

    def raw(self) -> dict:
        """Every request: [kind, start (s into the phase), latency (s), error or null]."""
        return {
            "good": [[g[0], round(g[1] - self.t0, 3), round(g[2], 4), g[3]] for g in self.data["good"]],
            "healthz": [[round(h[0] - self.t0, 3), round(h[1], 4), h[2]] for h in self.data["healthz"]],
        }


# --------------------------------------------------------------------------------------------
# The attacks: each takes the warden and the hostile upstream, blocks until the attack is over
# and returns what happened
# --------------------------------------------------------------------------------------------


def read_stream(w: BenchWarden, headers: dict[str, str], cap_bytes: int, cap_s: float) -> dict:
    """A streamed Azure chat request (to the hostile upstream); reads until warden ends the
    answer, or `cap_bytes` / `cap_s` (then ended is False). Keeps only the tail."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True}
    got, tail, t0 = 0, b"", time.monotonic()
    ended, status, rid = False, None, None
    try:
        with httpx.Client(base_url=w.url, timeout=httpx.Timeout(cap_s, connect=10)) as c:
            with c.stream("POST", AZURE_PATH, json=body, headers={**AZURE_JSON, **headers}) as r:
                status, rid = r.status_code, r.headers.get("x-warden-request-id")
                for piece in r.iter_raw():
                    got += len(piece)
                    tail = (tail + piece)[-65536:]
                    if got > cap_bytes or time.monotonic() - t0 > cap_s:
                        break
                else:
                    ended = True
    except httpx.HTTPError as e:
        return {"status": status, "client_bytes": got, "seconds": time.monotonic() - t0, "ended": False, "error": repr(e)[:200], "rid": rid}
    last = None
    if ended:
        events = [d for _, d in sse_events(tail[tail.find(b"data:"):] if b"data:" in tail else b"")]
        last = events[-1][:300] if events else tail[-300:].decode("utf-8", "replace")
    return {"status": status, "client_bytes": got, "seconds": round(time.monotonic() - t0, 2), "ended": ended, "last_event": last, "rid": rid}


def upstream_bytes(hs, tag: str) -> int | None:
    time.sleep(0.3)
    cs = hs.conns(tag)
    return cs[0]["bytes_sent"] if cs else None


def attack_long_line(w: BenchWarden, hs) -> dict:
    """A 300 MB SSE line (no newline) from the upstream."""
    t = new_tag()
    res = read_stream(w, hostile("long-line", t, seconds=120, limit=300 * MB), cap_bytes=400 * MB, cap_s=120)
    res["upstream_bytes"] = upstream_bytes(hs, t)
    hs.drop(t)
    res["record"] = short_record(w.record(res.pop("rid")))
    return res


def attack_deltas(w: BenchWarden, hs) -> dict:
    """An endless stream of small (16-character) deltas, until warden cuts it."""
    t = new_tag()
    res = read_stream(w, hostile("deltas", t, seconds=120, limit=1024 * MB), cap_bytes=512 * MB, cap_s=120)
    res["upstream_bytes"] = upstream_bytes(hs, t)
    hs.drop(t)
    res["record"] = short_record(w.record(res.pop("rid")))
    return res


def attack_key_runs(w: BenchWarden, hs) -> dict:
    """Two concurrent streams spelling `sk-` then letters and digits forever (60 s or a cut)."""
    tags = [new_tag(), new_tag()]
    out: list[dict] = [{}, {}]

    def one(k: int) -> None:
        out[k] = read_stream(w, hostile("key-run", tags[k], seconds=60, limit=4096 * MB), cap_bytes=4096 * MB, cap_s=65)

    ts = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    for k in range(2):
        out[k]["upstream_bytes"] = upstream_bytes(hs, tags[k])
        hs.drop(tags[k])
        out[k]["record"] = short_record(w.record(out[k].pop("rid")))
    return {"streams": out}


_MODEL_BODIES: list[bytes] = []


def model_bodies() -> list[bytes]:
    """40 gzip bodies, each with a distinct 16 MB (16,000,000-byte) `model`: under the default
    16 MiB decompression cap, so it is the model that must be refused."""
    if not _MODEL_BODIES:
        # The models differ in their last characters: the shared beginning is compressed once.
        base = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip framing
        head = base.compress(b'{"model":"' + b"m" * (16_000_000 - 3))
        for k in range(40):
            z = base.copy()
            tail = f'-{k:02d}","messages":[{{"role":"user","content":"hello"}}]}}'.encode()
            _MODEL_BODIES.append(head + z.compress(tail) + z.flush())
    return _MODEL_BODIES


def attack_models(w: BenchWarden, hs) -> dict:
    """40 distinct 16 MB `model` strings in gzip bodies, one after another."""
    bodies = model_bodies()
    rss0 = w.mem()["VmRSS"]
    statuses, lat, sizes = Counter(), [], []
    with httpx.Client(base_url=w.url, timeout=60) as c:
        for data in bodies:
            t0 = time.monotonic()
            try:
                r = c.post("/v1/chat/completions", content=data, headers={**OPENAI_JSON, "content-encoding": "gzip"})
                statuses[r.status_code] += 1
                sizes.append(len(r.content))
            except httpx.HTTPError as e:
                statuses[repr(e)[:60]] += 1
            lat.append(time.monotonic() - t0)
    time.sleep(0.5)
    rss1 = w.mem()["VmRSS"]
    return {
        "statuses": dict(statuses),
        "compressed_bytes": len(bodies[0]),
        "latency_p50_s": pct(lat, 50),
        "latency_max_s": max(lat),
        "answer_bytes_max": max(sizes) if sizes else None,
        "rss_before_kb": rss0,
        "rss_after_kb": rss1,
        "rss_growth_mb": round((rss1 - rss0) / 1024, 1),
    }


def watch_closed(socks: list[socket.socket], timeout: float, opened: list[float]) -> list[float | None]:
    """How long after it was opened the peer closed each socket, reading and discarding; None
    if still open `timeout` s after the last was opened."""
    sel = selectors.DefaultSelector()
    closed: list[float | None] = [None] * len(socks)
    for k, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, k)
    deadline = max(opened) + timeout
    left = len(socks)
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.1):
            k = key.data
            try:
                data = socks[k].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed[k] = time.monotonic() - opened[k]
                sel.unregister(socks[k])
                left -= 1
    sel.close()
    return closed


def attack_silent(w: BenchWarden, hs, n: int = 1000, n_admin: int = 20) -> dict:
    """1000 TCP connections to the proxy (and 20 to the admin listener) that never send a byte."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + n_admin + 512:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = w.admin.removeprefix("http://").rsplit(":", 1)
    t0 = time.monotonic()
    socks, opened, failed = [], [], 0
    for k in range(n + n_admin):
        try:
            socks.append(socket.create_connection(w.addr if k < n else (host, int(port)), timeout=5))
            opened.append(time.monotonic())
        except OSError:
            failed += 1
    opened_s = time.monotonic() - t0
    closed = watch_closed(socks, BAR_SILENT_S + 10, opened)
    for s in socks:
        s.close()
    main, admin = closed[: n - min(failed, n)], closed[n - min(failed, n):]

    def stats(c: list[float | None]) -> dict:
        done = [x for x in c if x is not None]
        return {
            "n": len(c),
            "closed": len(done),
            "closed_within_bar": sum(1 for x in done if x <= BAR_SILENT_S),
            "close_p50_s": pct(done, 50),
            "close_max_s": max(done) if done else None,
        }

    return {"connect_failed": failed, "open_s": round(opened_s, 2), "proxy": stats(main), "admin": stats(admin)}






def attack_slowloris(w: BenchWarden, hs, n: int = 50) -> dict:
    """50 HTTP/1.1 and 50 h2c clients each sending a request head one byte every 200 ms."""
    heads = [slow_h1_head()] * n + [slow_h2c_head()] * n
    socks, opened = [], []
    for _ in heads:
        socks.append(socket.create_connection(w.addr, timeout=5))
        opened.append(time.monotonic())
    for s in socks:
        s.setblocking(False)
    sent = [0] * len(socks)
    cut: list[float | None] = [None] * len(socks)
    answers: Counter = Counter()
    t0 = time.monotonic()
    deadline = t0 + BAR_SILENT_S + 10
    while any(c is None for c in cut) and time.monotonic() < deadline:
        for k, s in enumerate(socks):
            if cut[k] is not None:
                continue
            try:
                if sent[k] < len(heads[k]):
                    s.send(heads[k][sent[k] : sent[k] + 1])
                    sent[k] += 1
                while True:
                    piece = s.recv(65536)
                    if not piece:
                        cut[k] = time.monotonic() - opened[k]
                        break
                    if k < n:
                        answers[piece.split(b"\r\n", 1)[0].decode("latin-1")[:40]] += 1
            except BlockingIOError:
                pass
            except OSError:
                cut[k] = time.monotonic() - opened[k]
        time.sleep(0.2)
    for s in socks:
        s.close()
    done = [c for c in cut if c is not None]
    return {
        "n": len(socks),
        "cut": len(done),
        "cut_within_bar": sum(1 for c in done if c <= BAR_SILENT_S),
        "cut_max_s": max(done) if done else None,
        "head_fully_sent": sum(1 for k in range(len(socks)) if sent[k] >= len(heads[k])),
        "h1_answers": dict(answers),
    }


def attack_stop_reading(w: BenchWarden, hs) -> dict:
    """A client asks for an endless stream and never reads it (4 KB receive buffer)."""
    t = new_tag()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True}
    req = raw_post(w.addr, AZURE_PATH, body, {**AZURE_JSON, **hostile("deltas", t, seconds=120, limit=1024 * MB)})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(w.addr)
    t0 = time.monotonic()
    s.sendall(req)
    released = None
    conn = None
    while time.monotonic() - t0 < 90:
        cs = hs.conns(t)
        if cs and not cs[0]["open"]:
            conn = cs[0]
            released = conn["closed_at"] - t0
            break
        time.sleep(0.1)
    conn = conn or (hs.conns(t) or [None])[0]
    # Then drain: warden has hung up on the client if the socket reaches its end.
    s.settimeout(1.0)
    drained, ended, d0 = 0, False, time.monotonic()
    while time.monotonic() - d0 < 10:
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
    s.close()
    hs.drop(t)
    return {
        "upstream_released_after_s": None if released is None else round(released, 2),
        "released_by": conn and conn["closed_by"],
        "upstream_completed": conn and conn["completed"],
        "upstream_bytes": conn and conn["bytes_sent"],
        "client_drained_bytes": drained,
        "client_connection_ended": ended,
    }


def attack_tiny_strings(w: BenchWarden, hs, times: int = 5) -> dict:
    """A body of 100,000 one-letter text parts (2.7 MB), sent 5 times."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * 100_000}]}
    data = json.dumps(body).encode()
    statuses, lat = Counter(), []
    with httpx.Client(base_url=w.url, timeout=60) as c:
        for _ in range(times):
            t0 = time.monotonic()
            try:
                r = c.post("/v1/chat/completions", content=data, headers=OPENAI_JSON)
                statuses[r.status_code] += 1
            except httpx.HTTPError as e:
                statuses[repr(e)[:60]] += 1
            lat.append(time.monotonic() - t0)
    return {"body_bytes": len(data), "statuses": dict(statuses), "latency_p50_s": pct(lat, 50), "latency_max_s": max(lat)}


def attack_h2c(w: BenchWarden, hs, conns: int = 4, streams: int = 256) -> dict:
    """4 h2c connections each opening 256 slow streams at once (ignoring the stream limit)."""
    from test_hostile import H2Attacker

    t = new_tag()
    headers = {**AZURE_JSON, **hostile("drip", t, interval_ms=200, seconds=15)}
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi."}], "stream": True}).encode()
    attackers = []
    opened = 0
    try:
        attackers = [H2Attacker(w.addr) for _ in range(conns)]
        for a in attackers:
            a.settings.wait(10)
        for a in attackers:
            opened += a.open_streams(streams, AZURE_PATH, headers, body)
        time.sleep(10)
        peak = hs.max_concurrent(t)
        advertised = [a.max_streams for a in attackers]
        responses = sum(a.responses for a in attackers)
        resets = sum(a.resets for a in attackers)
    finally:
        for a in attackers:
            a.close()
        hs.drop(t)
    return {
        "connections": conns,
        "streams_opened": opened,
        "advertised_max_streams": advertised,
        "upstream_peak_concurrent": peak,
        "responses": responses,
        "resets": resets,
    }


ATTACKS = {
    "long-line": ("a 300 MB SSE line from the upstream", attack_long_line),
    "deltas": ("an endless stream of small deltas", attack_deltas),
    "key-runs": ("two endless key-like runs (`sk-…`), 60 s or a cut", attack_key_runs),
    "models": ("40 distinct 16 MB `model` strings, gzip bodies", attack_models),
    "silent": ("1000 silent connections (+20 to admin)", attack_silent),
    "slowloris": ("slowloris heads (50 h1 + 50 h2c, 1 byte / 200 ms)", attack_slowloris),
    "stop-reading": ("a client that stops reading a stream", attack_stop_reading),
    "tiny-strings": ("100,000 tiny strings in one body (x5)", attack_tiny_strings),
    "h2c-streams": ("h2c: 4 connections x 256 streams", attack_h2c),
}


def attack_outcome(name: str, d: dict) -> str:
    """A short 'how it ended' for the table."""
    try:
        if name in ("long-line", "deltas"):
            rec = d.get("record") or {}
            return (
                f"{'cut' if d['ended'] else 'NOT ended'} after {size(d['client_bytes'])} to the client "
                f"({size(d['upstream_bytes'])} from upstream) in {d['seconds']:.1f} s; "
                f"record {rec.get('outcome')}: {(rec.get('error') or '')[:70]}"
            )
        if name == "key-runs":
            parts = []
            for s in d["streams"]:
                rec = s.get("record") or {}
                parts.append(
                    f"{'cut' if s['ended'] else 'NOT ended'} at {size(s['client_bytes'])} / {s['seconds']:.1f} s "
                    f"({rec.get('outcome')}: {(rec.get('error') or '')[:50]})"
                )
            return "; ".join(parts)
        if name == "models":
            return f"statuses {d['statuses']}; RSS {d['rss_before_kb'] / 1024:.0f} -> {d['rss_after_kb'] / 1024:.0f} MB ({d['rss_growth_mb']:+.0f})"
        if name == "silent":
            p, a = d["proxy"], d["admin"]
            return (
                f"proxy {p['closed']}/{p['n']} closed (max {p['close_max_s'] or 0:.1f} s), "
                f"admin {a['closed']}/{a['n']} (max {a['close_max_s'] or 0:.1f} s)"
            )
        if name == "slowloris":
            return f"{d['cut']}/{d['n']} cut (max {d['cut_max_s'] or 0:.1f} s); h1 answers {d['h1_answers']}"
        if name == "stop-reading":
            return (
                f"upstream released after {d['upstream_released_after_s']} s ({d['released_by']}), "
                f"client connection ended: {d['client_connection_ended']}"
            )
        if name == "tiny-strings":
            return f"statuses {d['statuses']}, p50 {ms(d['latency_p50_s'])} ms"
        if name == "h2c-streams":
            return (
                f"advertised {sorted(set(d['advertised_max_streams']), key=str)}, "
                f"upstream peak {d['upstream_peak_concurrent']} concurrent of {d['streams_opened']} opened"
            )
    except Exception as e:  # noqa: BLE001
        return f"(unreadable: {e!r})"
    return ""


# --------------------------------------------------------------------------------------------
# Overload
# --------------------------------------------------------------------------------------------

# An ordinary question padded with ordinary text: the classifier (and every other rule of the
# default pack) judges all of it; each request carries its own number, so no cache answers.
OVERLOAD_PROMPT_KB = int(os.environ.get("OVERLOAD_PROMPT_KB", 256))
# Warden's niceness in the overload phase: on 2 cores a saturated Warden otherwise starves the
# (one-threaded, Python) load generator, which then sends late and reads answers late, and the
# latencies measured are the generator's. 5 leaves the generator the fraction of a core it needs
# (its lateness is reported); 0 turns this off.
OVERLOAD_NICE = int(os.environ.get("OVERLOAD_NICE", 5))
OVERLOAD_S = float(os.environ.get("OVERLOAD_S", 15))
OVERLOAD_FACTOR = float(os.environ.get("OVERLOAD_FACTOR", 10))
SUSTAIN_P99_S = 1.0
FILLER = (
    "The committee met on Tuesday to review the quarterly budget. Revenue grew slightly, "
    "travel costs fell, and the new office will open in the spring. "
)


_FILLER_JSON: bytes = b""


def overload_body(k: int) -> bytes:
    """The k-th prompt: OVERLOAD_PROMPT_KB of ordinary text, starting with its own number."""
    global _FILLER_JSON
    if not _FILLER_JSON:
        filler = FILLER * (OVERLOAD_PROMPT_KB * 1024 // len(FILLER) + 1)
        _FILLER_JSON = json.dumps(filler[: OVERLOAD_PROMPT_KB * 1024 - 80])[1:-1].encode()
    return (
        b'{"model":"' + MODEL.encode() + b'","messages":[{"role":"user","content":"Question '
        + str(k).encode() + b': please summarise these meeting notes in two sentences. '
        + _FILLER_JSON + b'"}]}'
    )


OVERLOAD_HEADERS = {**OPENAI_JSON, "x-mock-reply": GOOD_REPLY}


def classify(status: int | None, headers: dict, body: bytes, err: str | None) -> str:
    if err is not None or status is None:
        return "error"
    if status == 200:
        try:
            ok = headers.get("x-warden-decision") == "allow" and json.loads(body)["choices"][0]["message"]["content"] == GOOD_REPLY
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        return "served" if ok else "error"
    if status in (429, 503):
        return "shed" if headers.get("retry-after", "").strip().isdigit() else "shed-without-retry-after"
    if headers.get("x-warden-decision") == "block" or _err_code(body) == "content_filter":
        return "refused"
    return "error"


def _err_code(body: bytes) -> str | None:
    try:
        e = json.loads(body).get("error")
        return (e.get("code") or e.get("type")) if isinstance(e, dict) else None
    except (ValueError, AttributeError):
        return None


class RawPool:
    """A lean HTTP/1.1 keep-alive client on asyncio streams (httpx's async client costs more
    CPU per request than the load this has to offer, on cores shared with warden). At most
    `max_conns` connections; a request waits for one past that (the wait counts in its latency,
    which runs from its scheduled time)."""

    def __init__(self, addr: tuple[str, int], max_conns: int):
        self.addr = addr
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.sem = asyncio.Semaphore(max_conns)
        host = f"{addr[0]}:{addr[1]}"
        self.head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in OVERLOAD_HEADERS.items())
        ).encode()

    async def close(self) -> None:
        for _, w in self.idle:
            w.close()
        self.idle.clear()

    async def post(self, body: bytes) -> tuple[int, dict, bytes]:
        data = self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with self.sem:
            for attempt in range(2):
                reused = bool(self.idle)
                if reused:
                    r, w = self.idle.pop()
                else:
                    r, w = await asyncio.wait_for(asyncio.open_connection(*self.addr), 10)
                try:
                    w.write(data)
                    await w.drain()
                    status, headers, payload = await asyncio.wait_for(self._read(r), 30)
                except (ConnectionError, asyncio.IncompleteReadError, OSError):
                    w.close()
                    if reused and attempt == 0:
                        continue  # a keep-alive connection the server had closed
                    raise
                except BaseException:
                    w.close()
                    raise
                if headers.get("connection", "").lower() == "close":
                    w.close()
                else:
                    self.idle.append((r, w))
                return status, headers, payload
        raise RuntimeError("unreachable")

    @staticmethod
    async def _read(r: asyncio.StreamReader) -> tuple[int, dict, bytes]:
        head = await r.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await r.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                n = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
                if n == 0:
                    await r.readuntil(b"\r\n")
                    break
                body += (await r.readexactly(n + 2))[:-2]
        else:
            body = await r.read()
            headers["connection"] = "close"
        return status, headers, body


async def _one(pool: RawPool, k: int, scheduled: float, out: list) -> None:
    status, headers, body, err = None, {}, b"", None
    sent = time.monotonic()
    try:
        status, headers, body = await pool.post(overload_body(k))
    except Exception as e:  # noqa: BLE001
        err = repr(e)[:160]
    done = time.monotonic()
    out.append({
        "k": k, "kind": classify(status, headers, body, err), "status": status, "err": err,
        "latency_s": done - scheduled, "service_s": done - sent, "send_lag_s": sent - scheduled,
        "code": _err_code(body) if status not in (None, 200) else None,
    })


async def closed_loop(addr: tuple[str, int], conns: int, seconds: float, base: int) -> list[dict]:
    out: list[dict] = []
    pool = RawPool(addr, conns)
    end = time.monotonic() + seconds
    counter = [base]

    async def worker() -> None:
        while time.monotonic() < end:
            counter[0] += 1
            await _one(pool, counter[0], time.monotonic(), out)

    await asyncio.gather(*(worker() for _ in range(conns)))
    await pool.close()
    return out


OPEN_LOOP_MAX_CONNS = 2048


async def open_loop(addr: tuple[str, int], rate: float, seconds: float, base: int) -> tuple[list[dict], float]:
    """Requests at fixed times (rate per second), whatever came back; latency from the
    scheduled time, so a late generator (or a wait for a connection) does not hide queueing."""
    out: list[dict] = []
    n = int(rate * seconds)
    pool = RawPool(addr, OPEN_LOOP_MAX_CONNS)
    tasks = []
    t0 = time.monotonic()
    for i in range(n):
        at = t0 + i / rate
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(pool, base + i, at, out)))
    issued_s = time.monotonic() - t0
    await asyncio.gather(*tasks)
    await pool.close()
    return out, issued_s


def summarise(rs: list[dict], seconds: float) -> dict:
    kinds = Counter(r["kind"] for r in rs)
    lat = [r["latency_s"] for r in rs]
    return {
        "n": len(rs),
        "per_s": round(len(rs) / seconds, 1),
        "kinds": dict(kinds),
        "p50_s": pct(lat, 50),
        "p99_s": pct(lat, 99),
        "served_p99_s": pct([r["latency_s"] for r in rs if r["kind"] == "served"], 99),
        "served_p50_s": pct([r["latency_s"] for r in rs if r["kind"] == "served"], 50),
        "shed_p50_s": pct([r["latency_s"] for r in rs if r["kind"] == "shed"], 50),
        "shed_p99_s": pct([r["latency_s"] for r in rs if r["kind"] == "shed"], 99),
        "shed_service_p99_s": pct([r["service_s"] for r in rs if r["kind"] == "shed"], 99),
        "send_lag_p99_s": pct([r["send_lag_s"] for r in rs], 99),
        "statuses": dict(Counter(str(r["status"]) for r in rs)),
        "codes": dict(Counter(str(r["code"]) for r in rs if r["code"])),
        "errors": Counter(r["err"] for r in rs if r["err"]).most_common(3),
    }


def idle_check(url: str, ks: list[int]) -> list[tuple[int, str, int]]:
    """Each prompt k, sent alone: (k, kind, status)."""
    out = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for k in ks:
            r = c.post("/v1/chat/completions", content=overload_body(k), headers=OVERLOAD_HEADERS)
            out.append((k, classify(r.status_code, dict(r.headers), r.content, None), r.status_code))
    return out


def run_overload(w: BenchWarden) -> dict:
    res: dict = {"prompt_kb": OVERLOAD_PROMPT_KB, "factor": OVERLOAD_FACTOR, "warden_nice": OVERLOAD_NICE}
    pre = idle_check(w.url, [-1, -2, -3, -4, -5])
    res["idle_precheck"] = pre
    if any(kind != "served" for _, kind, _ in pre):
        raise RuntimeError(f"the overload prompt is not served when idle: {pre}")
    # Idle latency: one at a time.
    one = asyncio.run(closed_loop(w.addr, 1, 3, 10_000))
    res["idle"] = summarise(one, 3)
    # Capacity: a closed loop of 4 connections.
    cap = asyncio.run(closed_loop(w.addr, 4, 6, 20_000))
    res["closed_loop_4"] = summarise(cap, 6)
    x = res["closed_loop_4"]["kinds"].get("served", 0) / 6
    log(f"overload: idle p50 {ms(res['idle']['p50_s'])} ms; closed loop (4) serves {x:.1f}/s")
    # Sustainable: the highest open-loop rate (steps of the closed-loop figure) with every
    # request served and p99 within SUSTAIN_P99_S.
    steps, sustainable, base = [], None, 100_000
    for f in (0.5, 0.7, 0.9, 1.1):
        rate = max(1.0, round(x * f, 1))
        rs, _ = asyncio.run(open_loop(w.addr, rate, 6, base))
        base += 100_000
        s = summarise(rs, 6)
        s["rate"] = rate
        steps.append(s)
        ok = s["kinds"].get("served", 0) == s["n"] and (s["p99_s"] or 0) <= SUSTAIN_P99_S
        log(f"overload: open loop {rate}/s: {s['kinds']} p99 {ms(s['p99_s'])} ms -> {'ok' if ok else 'past capacity'}")
        if not ok:
            break
        sustainable = rate
    res["steps"] = steps
    if sustainable is None:
        sustainable = steps[0]["rate"] / 2
    res["sustainable_per_s"] = sustainable
    # 10x, open loop, with /readyz and /healthz polled meanwhile.
    rate = sustainable * OVERLOAD_FACTOR
    polls: list[tuple[str, float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            for path in ("/readyz", "/healthz"):
                t0 = time.monotonic()
                try:
                    code = httpx.get(f"{w.admin}{path}", timeout=HEALTHZ_TIMEOUT_S).status_code
                except httpx.HTTPError:
                    code = 0
                polls.append((path, time.monotonic() - t0, code))
            stop.wait(0.2)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    log(f"overload: {OVERLOAD_FACTOR:g}x = {rate:.0f}/s for {OVERLOAD_S:g} s")
    records_before = len(parse_records(w.stderr_text()))
    rs, issued_s = asyncio.run(open_loop(w.addr, rate, OVERLOAD_S, 1_000_000))
    stop.set()
    poller.join()
    s = summarise(rs, OVERLOAD_S)
    s["raw"] = [[r["kind"], r["status"], round(r["latency_s"], 4), round(r["service_s"], 4)] for r in sorted(rs, key=lambda r: r["k"])]
    s["target_per_s"] = rate
    s["issued_in_s"] = round(issued_s, 2)
    hz = [p[1] for p in polls if p[0] == "/healthz"]
    s["healthz_p99_s"] = pct(hz, 99)
    s["healthz_max_s"] = max(hz) if hz else None
    s["readyz_statuses"] = dict(Counter(str(p[2]) for p in polls if p[0] == "/readyz"))
    # Warden's own time per request (its records' duration_ms), apart from the client's queues.
    recs = parse_records(w.stderr_text())[records_before:]
    by = lambda o: [r["duration_ms"] / 1000 for r in recs if r.get("outcome") == o and "duration_ms" in r]  # noqa: E731
    s["warden_outcomes"] = dict(Counter(r.get("outcome") for r in recs))
    s["warden_shed_p50_s"], s["warden_shed_p99_s"] = pct(by("shed"), 50), pct(by("shed"), 99)
    s["warden_answered_p99_s"] = pct(by("answered"), 99)
    s["shed_errors"] = Counter((r.get("error") or "")[:90] for r in recs if r.get("outcome") == "shed").most_common(4)
    # A refusal under load is false if the same prompt passes when the proxy is idle again.
    refused = [r["k"] for r in rs if r["kind"] == "refused"]
    time.sleep(3)
    recheck = idle_check(w.url, refused[:200]) if refused else []
    s["refused"] = len(refused)
    s["falsely_refused"] = sum(1 for _, kind, _ in recheck if kind == "served")
    s["refused_also_idle"] = sum(1 for _, kind, _ in recheck if kind == "refused")
    s["refused_rechecked"] = len(recheck)
    res["overload"] = s
    res["after"] = idle_check(w.url, [-6, -7, -8])
    return res


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def run_phase(name: str, logdir: Path, mock: Proc, hs, hostile_url: str, attacks: list[str], idle_s: float = 0) -> dict:
    w = BenchWarden(logdir, f"warden-{name}", mock.url, hostile_url)
    try:
        w.warm_up()
        time.sleep(1.0)
        start = w.mem()
        w.reset_peak()
        details: dict = {}
        errors: dict = {}
        with GoodLoad(w) as good:
            if attacks:
                def run(a: str) -> None:
                    try:
                        details[a] = ATTACKS[a][1](w, hs)
                    except Exception:  # noqa: BLE001 - reported, the run goes on
                        errors[a] = traceback.format_exc()[-2000:]

                ts = [threading.Thread(target=run, args=(a,)) for a in attacks]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                # Good clients get at least MIN_WINDOW_S, the attack's aftermath included.
                time.sleep(max(0.0, MIN_WINDOW_S - (time.monotonic() - good.t0)))
            else:
                time.sleep(idle_s)
        end = w.mem()
        alive = w.alive()
        out = {
            "rss_start_kb": start["VmRSS"],
            "hwm_since_start_kb": start["VmHWM"],
            "peak_kb": end["VmHWM"],
            "rss_end_kb": end["VmRSS"],
            "alive": alive,
            "good": good.summary(),
            "good_raw": good.raw(),
            "attacks": details,
            "errors": errors,
        }
        return out
    finally:
        w.stop()


def bar_failures(results: dict) -> list[str]:
    fails = []
    for name, r in results.get("phases", {}).items():
        if name in ("idle",):
            continue
        # The bar's memory figures are per attack; the mix's peak is reported, not judged.
        if name != "mix" and r["peak_kb"] / 1024 >= BAR_PEAK_MB:
            fails.append(f"{name}: peak RSS {r['peak_kb'] / 1024:.0f} MB >= {BAR_PEAK_MB} MB")
        g = r["good"]
        if g["good_over_bar"]:
            fails.append(f"{name}: {g['good_over_bar']} of {g['good_n']} good requests failed or took > {BAR_GOOD_S:g} s (max {ms(g['good_max_s'])} ms)")
        if g["healthz_over_bar"]:
            fails.append(f"{name}: {g['healthz_over_bar']} of {g['healthz_n']} /healthz failed or took > {BAR_HEALTHZ_S:g} s (max {ms(g['healthz_max_s'])} ms)")
        if not r["alive"]:
            fails.append(f"{name}: warden died")
        for a, err in r["errors"].items():
            fails.append(f"{name}: attack {a} raised: {err.strip().splitlines()[-1]}")
        a = r["attacks"]
        if name != "mix" and "models" in a and a["models"]["rss_growth_mb"] >= BAR_MODEL_GROWTH_MB:
            fails.append(f"{name}: RSS grew {a['models']['rss_growth_mb']:.0f} MB over 40 models")
        # Each 16 MB model is refused (400), or shed (429/503) when the proxy is saturated.
        if "models" in a and not set(a["models"]["statuses"]) <= {400, 429, 503}:
            fails.append(f"{name}: 16 MB models answered {a['models']['statuses']}")
        if "silent" in a:
            for side in ("proxy", "admin"):
                x = a["silent"][side]
                if x["closed_within_bar"] < x["n"]:
                    fails.append(f"{name}: {x['n'] - x['closed_within_bar']} silent {side} connections not closed within {BAR_SILENT_S:g} s")
        if "slowloris" in a and a["slowloris"]["cut_within_bar"] < a["slowloris"]["n"]:
            fails.append(f"{name}: {a['slowloris']['n'] - a['slowloris']['cut_within_bar']} slowloris heads not cut within {BAR_SILENT_S:g} s")
        if "stop-reading" in a and a["stop-reading"]["upstream_released_after_s"] is None:
            fails.append(f"{name}: the upstream of a client that stopped reading was not released")
        for k in ("long-line", "deltas"):
            if k in a and not a[k]["ended"]:
                fails.append(f"{name}: the {k} stream was not cut")
        if "key-runs" in a:
            for s in a["key-runs"]["streams"]:
                if not s.get("ended"):
                    fails.append(f"{name}: a key-run stream was not ended by warden within 60 s")
    o = results.get("overload", {}).get("overload")
    if o:
        if o["falsely_refused"]:
            fails.append(f"overload: {o['falsely_refused']} false refusals")
        other = {k: v for k, v in o["kinds"].items() if k not in ("served", "shed")}
        if other:
            fails.append(f"overload: answers other than served or shed: {other}")
    return fails


def print_tables(results: dict) -> None:
    p = results["phases"]
    out = []
    out.append(
        f"\n## Hostile traffic, default limits (tree {results['commit']}, warden built {results['warden_built']}; "
        f"run {results['date']}, {results['host']})\n"
    )
    if "idle" in p:
        i = p["idle"]
        out.append(
            f"Idle RSS (after warm-up): **{mb(i['rss_start_kb'])} MB** (peak since start {mb(i['hwm_since_start_kb'])} MB, "
            f"{mb(i['peak_kb'])} MB after {i['good']['seconds']:.0f} s of good clients)\n"
        )
    out.append(
        "| attack (fresh warden each) | RSS before, MB | peak RSS, MB | good ok | good p50 / p99 / max, ms "
        "| /healthz p99 / max, ms | how it ended |"
    )
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in p.items():
        if name == "idle":
            label = f"none ({r['good']['seconds']:.0f} s, same run)"
            how = ""
        elif name == "mix":
            label = "**all of them at once**"
            how = "; ".join(f"{a}: {'error' if a in r['errors'] else 'done'}" for a in ATTACKS)
        else:
            label = ATTACKS[name][0]
            how = attack_outcome(name, r["attacks"].get(name, {})) if name in r["attacks"] else f"ERROR: {r['errors'].get(name, '')[-200:]}"
        g = r["good"]
        succ = f"{g['good_ok']}/{g['good_n']}"
        out.append(
            f"| {label} | {mb(r['rss_start_kb'])} | {mb(r['peak_kb'])} | {succ} "
            f"| {ms(g['good_p50_s'])} / {ms(g['good_p99_s'])} / {ms(g['good_max_s'])} "
            f"| {ms(g['healthz_p99_s'])} / {ms(g['healthz_max_s'])} | {how} |"
        )
    if "idle" in p and "mix" in p:
        out.append("\n| good clients | requests | success | p50, ms | p99 whole / streamed, ms | p99, ms | /healthz p99, ms |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for label, key in (("without attacks", "idle"), ("with the attack mix", "mix")):
            g = p[key]["good"]
            out.append(
                f"| {label} | {g['good_n']} | {100 * (g['good_success'] or 0):.1f}% | {ms(g['good_p50_s'])} "
                f"| {ms(g['whole_p99_s'])} / {ms(g['stream_p99_s'])} | {ms(g['good_p99_s'])} | {ms(g['healthz_p99_s'])} |"
            )
    o = results.get("overload")
    if o and "overload" in o:
        s = o["overload"]
        k = s["kinds"]
        out.append(
            f"\n### Overload (policies/ with the classifier, {o['prompt_kb']} KB prompts, each distinct; warden at nice {o['warden_nice']})\n\n"
            f"Idle: p50 {ms(o['idle']['p50_s'])} ms. Closed loop of 4: {o['closed_loop_4']['per_s']}/s, "
            f"p99 {ms(o['closed_loop_4']['p99_s'])} ms. Peak RSS {mb(o.get('peak_kb'))} MB. Sustainable (open loop, all served, p99 <= {SUSTAIN_P99_S:g} s): "
            f"**{o['sustainable_per_s']}/s**; steps: "
            + ", ".join(f"{x['rate']}/s p99 {ms(x['p99_s'])} ms {x['kinds']}" for x in o["steps"])
            + "\n"
        )
        out.append("| at 10x | figure |")
        out.append("| --- | ---: |")
        rows = [
            ("offered (open loop)", f"{s['target_per_s']:.0f}/s for {OVERLOAD_S:g} s = {s['n']} requests (issued in {s['issued_in_s']} s)"),
            ("served (200, allow)", f"{k.get('served', 0)} ({100 * k.get('served', 0) / max(1, s['n']):.1f}%)"),
            ("shed (429/503 + Retry-After)", f"{k.get('shed', 0)} ({100 * k.get('shed', 0) / max(1, s['n']):.1f}%) statuses {s['statuses']}"),
            ("falsely refused (content_filter, passes idle)", f"**{s['falsely_refused']}** (refused under load: {s['refused']}; also refused idle: {s['refused_also_idle']})"),
            ("other errors", f"{sum(v for kk, v in k.items() if kk not in ('served', 'shed', 'refused'))} {s['errors'] or ''}"),
            ("p99 of a shed answer (client, from its scheduled time)", f"{ms(s['shed_p99_s'])} ms (p50 {ms(s['shed_p50_s'])} ms; from its send: p99 {ms(s['shed_service_p99_s'])} ms)"),
            ("p99 of a shed answer (warden's record)", f"{ms(s['warden_shed_p99_s'])} ms (p50 {ms(s['warden_shed_p50_s'])} ms)"),
            ("why shed (records)", "; ".join(f"{n}x {e}" for e, n in s["shed_errors"])),
            ("p50 / p99 of a served answer", f"{ms(s['served_p50_s'])} / {ms(s['served_p99_s'])} ms"),
            ("/healthz p99 / max during it", f"{ms(s['healthz_p99_s'])} / {ms(s['healthz_max_s'])} ms"),
            ("/readyz statuses", f"{s['readyz_statuses']}"),
            ("generator lateness p99", f"{ms(s['send_lag_p99_s'])} ms"),
        ]
        for a, b in rows:
            out.append(f"| {a} | {b} |")
    fails = results["bar_failures"]
    if "mix" in p:
        out.append(
            f"\nThe mix (every attack at once, one warden) is beyond the bar's per-attack memory figures: its peak was "
            f"{mb(p['mix']['peak_kb'])} MB (bar per attack: {BAR_PEAK_MB} MB)."
        )
    out.append("\n### The bar\n")
    out.append("All met." if not fails else "\n".join(f"- FAILED: {f}" for f in fails))
    print("\n".join(out))


def main() -> int:
    for b in ("warden", "mock-llm"):
        if not (RELEASE / b).is_file():
            print(f"{RELEASE / b} is missing: build it (benches/README.md) or set WARDEN_RELEASE_DIR", file=sys.stderr)
            return 2
    if not Path(os.environ["ORT_DYLIB_PATH"]).is_file():
        print(f"ORT_DYLIB_PATH={os.environ['ORT_DYLIB_PATH']} is missing: run scripts/setup-ort.sh", file=sys.stderr)
        return 2
    only = [x for x in os.environ.get("ONLY", "").split(",") if x]
    phases = ["idle", *ATTACKS, "mix", "overload"]
    phases = [x for x in phases if not only or x in only]
    started = time.monotonic()
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    results: dict = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ"),
        "commit": commit,
        "host": f"{os.cpu_count()} cores, {platform.machine()}, load {os.getloadavg()[0]:.1f}",
        "release_dir": str(RELEASE),
        "warden_built": dt.datetime.fromtimestamp((RELEASE / "warden").stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ"),
        "good_threads": GOOD_THREADS,
        "phases": {},
    }
    logdir = Path(tempfile.mkdtemp(prefix="warden-hostile-bench-"))
    log(f"logs in {logdir}")
    # Forked before any thread is started.
    mgr = HostileManager(ctx=mp.get_context("fork"))
    mgr.start()
    hs = mgr.Hostile()
    hostile_url = hs.url()
    mock = Proc("mock-llm", [str(RELEASE / "mock-llm"), "--listen", "127.0.0.1:0", "--fixtures", str(FIXTURES)], logdir)
    try:
        if any(x in phases for x in ("models", "mix")):
            model_bodies()
        for name in phases:
            if name == "overload":
                continue
            t0 = time.monotonic()
            log(f"phase {name} ...")
            attacks = [] if name == "idle" else list(ATTACKS) if name == "mix" else [name]
            results["phases"][name] = run_phase(name, logdir, mock, hs, hostile_url, attacks, idle_s=BASELINE_S)
            r = results["phases"][name]
            log(
                f"phase {name}: {time.monotonic() - t0:.0f} s, peak {mb(r['peak_kb'])} MB, "
                f"good {r['good']['good_ok']}/{r['good']['good_n']} p99 {ms(r['good']['good_p99_s'])} ms, "
                f"healthz max {ms(r['good']['healthz_max_s'])} ms {('errors: ' + str(list(r['errors']))) if r['errors'] else ''}"
            )
        if "overload" in phases:
            t0 = time.monotonic()
            log("phase overload ...")
            w = BenchWarden(logdir, "warden-overload", mock.url, hostile_url, nice=OVERLOAD_NICE)
            try:
                w.warm_up()
                results["overload"] = run_overload(w)
                results["overload"]["peak_kb"] = w.mem()["VmHWM"]
            except Exception:  # noqa: BLE001
                results["overload_error"] = traceback.format_exc()
                log(results["overload_error"])
            finally:
                w.stop()
            log(f"phase overload: {time.monotonic() - t0:.0f} s")
    finally:
        try:
            hs.stop()
        except Exception:  # noqa: BLE001
            pass
        mgr.shutdown()
        mock.stop()
    results["seconds"] = round(time.monotonic() - started, 1)
    results["bar_failures"] = bar_failures(results)
    if "overload_error" in results:
        results["bar_failures"].append("overload: the phase raised (see the JSON)")
    out_dir = REPO / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"hostile-{results['date']}.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    print_tables(results)
    print(f"\nRaw numbers: {path.relative_to(REPO)}; total {results['seconds']:.0f} s; logs in {logdir}")
    return 1 if results["bar_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
