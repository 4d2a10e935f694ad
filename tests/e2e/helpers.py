"""Helpers shared by the end-to-end tests: processes (mock-llm, warden), request bodies,
mock control headers, SSE parsing and assertions on the providers' error shapes.

Imported by conftest.py and the test modules (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

import anthropic
import httpx2 as httpx
import openai
from google import genai

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
# Recorded real provider responses; mock-llm serves them by name (`x-mock-replay: FILE`).
FIXTURES = REPO / "tests" / "fixtures" / "recorded"

# Generous: a debug build on a loaded 2-core machine.
READY_TIMEOUT_S = 30.0
RECORD_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 15.0

# The limits of the test config: small, so that stall and size tests are fast.
LIMITS = {
    "max_body_bytes": 65536,
    "max_decompressed_bytes": 262144,
    "response_timeout_ms": 1500,
    "stream_idle_timeout_ms": 1500,
    "body_read_timeout_ms": 2000,
    "max_header_bytes": 16384,
    "connect_timeout_ms": 1000,
    "total_timeout_ms": 20000,
}

MODEL = "gpt-test"
CLAUDE = "claude-test"
GEMINI = "gemini-test"
AZURE_DEPLOYMENT = "gpt-test-deployment"
AZURE_API_VERSION = "2024-10-21"
ANTHROPIC_VERSION = "2023-06-01"


# --------------------------------------------------------------------------------------------
# Binaries and processes
# --------------------------------------------------------------------------------------------


def target_dir() -> Path:
    t = os.environ.get("CARGO_TARGET_DIR")
    return Path(t) if t else Path.home() / ".cache" / "warden" / "target"


def warden_bin() -> Path:
    return Path(os.environ.get("WARDEN_BIN") or target_dir() / "debug" / "warden")


def mock_llm_bin() -> Path:
    return Path(os.environ.get("MOCK_LLM_BIN") or target_dir() / "debug" / "mock-llm")


# Every process started by the suite that is still running (for failure reports and teardown).
LIVE: list["Proc"] = []


def terminate(p: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM, then SIGKILL if `p` is still there after `grace` seconds."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


class Proc:
    """A child process that prints `listening on http://IP:PORT` on stdout once ready.

    Its stderr goes to a file (a pipe nobody reads would fill and block the process)."""

    def __init__(self, name: str, argv: list[str], logdir: Path, env: dict[str, str] | None = None):
        self.name = name
        self.argv = argv
        self.stderr_path = logdir / f"{name}.stderr.log"
        self._stderr = open(self.stderr_path, "wb")
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        lines: queue.Queue[str | None] = queue.Queue()
        self._lines = lines

        def read_stdout() -> None:
            assert self.p.stdout is not None
            for raw in self.p.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=read_stdout, name=f"{name}-stdout", daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        self.url = ""
        while not self.url:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self.stop()
                raise RuntimeError(
                    f"{name} did not print `listening on ...` within {READY_TIMEOUT_S}s\n"
                    f"argv: {argv}\n--- stderr ---\n{self.stderr_text()}"
                ) from None
            if line is None:
                code = self.p.wait(timeout=5)
                raise RuntimeError(
                    f"{name} exited with code {code} before it was ready\n"
                    f"argv: {argv}\n--- stderr ---\n{self.stderr_text()}"
                )
            m = re.match(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1).rstrip("/")
        LIVE.append(self)

    @property
    def addr(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def stderr_text(self) -> str:
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> None:
        terminate(self.p)
        self._stderr.close()
        if self in LIVE:
            LIVE.remove(self)


class Mock(Proc):
    """mock-llm."""

    def __init__(self, logdir: Path, name: str = "mock-llm"):
        argv = [str(mock_llm_bin()), "--listen", "127.0.0.1:0", "--fixtures", str(FIXTURES)]
        super().__init__(name, argv, logdir)
        self.http = httpx.Client(base_url=self.url, timeout=HTTP_TIMEOUT_S)

    def last_request(self) -> dict | None:
        """The last POST the mock received, or None if there was none yet."""
        r = self.http.get("/mock/last-request")
        if r.status_code == 404:
            return None
        r.raise_for_status()
        return r.json()

    def received(self, marker: str) -> bool:
        """Whether the last POST the mock received contains `marker`."""
        last = self.last_request()
        return last is not None and marker in json.dumps(last, ensure_ascii=False)

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        super().stop()


RECORD_RE = re.compile(r"warden::record: (\{.*\})\s*$")


def parse_records(text: str) -> list[dict]:
    """The `warden::record` JSON lines in a warden log (text or json log format)."""
    out = []
    for line in text.splitlines():
        m = RECORD_RE.search(line)
        if m:
            out.append(json.loads(m.group(1)))
            continue
        if line.startswith("{") and '"warden::record"' in line:
            entry = json.loads(line)
            if entry.get("target") == "warden::record":
                out.append(json.loads(entry["fields"]["message"]))
    return out


class Warden(Proc):
    """A warden instance, with clients pointed at it."""

    def __init__(
        self,
        logdir: Path,
        name: str,
        upstream: str,
        policies: Path = POLICIES,
        config: dict | None = None,
        env: dict[str, str] | None = None,
    ):
        # OpenAI and Anthropic come from the command line; Gemini and Azure from the config.
        cfg = {
            # A port of its own (the default, 9090, would be shared by every instance).
            "admin_listen": "127.0.0.1:0",
            "passthrough": ["/v1/models"],
            "limits": dict(LIMITS),
            "upstreams": {"gemini": {"url": upstream}, "azure": {"url": upstream}},
        }
        for k, v in (config or {}).items():
            if k in ("limits", "upstreams"):
                cfg[k].update(v)
            else:
                cfg[k] = v
        config_path = logdir / f"{name}.config.yaml"
        # JSON is YAML.
        config_path.write_text(json.dumps(cfg, indent=2))
        argv = [
            str(warden_bin()), "serve",
            "--config", str(config_path),
            "--listen", "127.0.0.1:0",
            "--policies", str(policies),
            "--upstream-openai", upstream,
            "--upstream-anthropic", upstream,
        ]
        super().__init__(name, argv, logdir, env={"WARDEN_LOG": "info", **(env or {})})
        # The admin listener's address, printed right after the proxy's.
        self.admin_url = ""
        if cfg.get("admin_listen") not in (None, "off"):
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not self.admin_url and time.monotonic() < deadline:
                try:
                    line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if line is None:
                    break
                m = re.match(r"admin listening on (http://\S+)", line)
                if m:
                    self.admin_url = m.group(1).rstrip("/")
        # Every request id this instance answered with, through any client made here.
        self.request_ids: list[str] = []
        self.http = self.client()

    def _seen(self, r: httpx.Response) -> None:
        rid = r.headers.get("x-warden-request-id")
        if rid:
            self.request_ids.append(rid)

    def client(self, **kw: Any) -> httpx.Client:
        """An HTTP client to this warden that remembers the request ids it sees."""
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return httpx.Client(base_url=self.url, event_hooks={"response": [self._seen]}, **kw)

    def openai(self, **kw: Any) -> openai.OpenAI:
        kw.setdefault("api_key", "sk-test")
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        kw.setdefault("base_url", f"{self.url}/v1")
        return openai.OpenAI(http_client=self.client(), **kw)

    def anthropic(self, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("api_key", "sk-ant-test")
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return anthropic.Anthropic(base_url=self.url, http_client=self.client(), **kw)

    def azure(self, **kw: Any) -> openai.AzureOpenAI:
        """An Azure OpenAI client (`/openai/deployments/...`, the `api-key` header)."""
        kw.setdefault("api_key", "az-test")
        kw.setdefault("api_version", AZURE_API_VERSION)
        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return openai.AzureOpenAI(azure_endpoint=self.url, http_client=self.client(), **kw)

    def genai(self) -> genai.Client:
        """A google-genai client (Gemini Developer API shape) pointed at this warden."""
        return genai_client(self.url, self.client())

    def records(self) -> list[dict]:
        return parse_records(self.stderr_text())

    def record(self, request_id: str, timeout: float = RECORD_TIMEOUT_S) -> dict:
        """The record of `request_id`, waiting for it (a streamed answer is recorded when the
        stream ends). Asserts there is exactly one."""
        assert request_id, "no request id"
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.records() if r.get("request_id") == request_id]
            if found:
                assert len(found) == 1, f"{len(found)} records for {request_id}: {found}"
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no warden::record line for {request_id} within {timeout}s\n"
                    f"--- {self.name} stderr (tail) ---\n{tail(self.stderr_text())}"
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        super().stop()


def genai_client(base_url: str, http: httpx.Client | None = None) -> genai.Client:
    """A google-genai client whose requests go to `base_url` (no retries)."""
    from google.genai import types

    opts = types.HttpOptions(
        base_url=base_url,
        api_version="v1beta",
        timeout=int(HTTP_TIMEOUT_S * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
        httpx_client=http,
    )
    return genai.Client(api_key="g-test", http_options=opts)


def tail(text: str, n: int = 60) -> str:
    return "\n".join(text.splitlines()[-n:])


def raw_http(addr: tuple[str, int], request: bytes, timeout: float = HTTP_TIMEOUT_S) -> tuple[int, bytes]:
    """Sends `request` as is on a new connection (no client-side URL normalisation) and reads
    the answer until the server closes; returns (status, whole answer). Send `Connection: close`."""
    import socket

    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(request)
        answer = b""
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            answer += piece
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), answer[:200]
    return int(status_line.split()[1]), answer


def closed_port_url() -> str:
    """The URL of a local port nothing listens on."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------


def marker() -> str:
    """A unique string to find a request again (at the mock, in a body)."""
    return f"marker{uuid.uuid4().hex}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def mock_headers(
    reply: str | None = None,
    chunk: int | None = None,
    delay_ms: int | None = None,
    byte_split: int | None = None,
    fault: str | None = None,
    gzip: bool = False,
) -> dict[str, str]:
    """The x-mock-* control headers (the reply goes base64, so any text is allowed)."""
    h: dict[str, str] = {}
    if reply is not None:
        h["x-mock-reply-b64"] = b64(reply)
    if chunk is not None:
        h["x-mock-chunk"] = str(chunk)
    if delay_ms is not None:
        h["x-mock-delay-ms"] = str(delay_ms)
    if byte_split is not None:
        h["x-mock-byte-split"] = str(byte_split)
    if fault is not None:
        h["x-mock-fault"] = fault
    if gzip:
        h["x-mock-gzip"] = "1"
    return h


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def chat_body(text: str = "Say hello.", stream: bool = False, **kw: Any) -> dict:
    body = {"model": MODEL, "messages": user(text), **kw}
    if stream:
        body["stream"] = True
    return body


def messages_body(text: str = "Say hello.", stream: bool = False, **kw: Any) -> dict:
    body = {"model": CLAUDE, "max_tokens": 256, "messages": user(text), **kw}
    if stream:
        body["stream"] = True
    return body


OPENAI_JSON = {"content-type": "application/json", "authorization": "Bearer sk-test"}
ANTHROPIC_JSON = {
    "content-type": "application/json",
    "x-api-key": "sk-ant-test",
    "anthropic-version": ANTHROPIC_VERSION,
}


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """Parses a whole SSE body into (event, data) pairs."""
    out = []
    text = raw.decode("utf-8").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        out.append((event, "\n".join(data)))
    return out


# --------------------------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------------------------


def assert_openai_error(r: httpx.Response, status: int, code: str | None = None) -> dict:
    """`r` is an OpenAI-shaped error: {"error": {"message", "type", "code", ...}}."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    err = body.get("error")
    assert isinstance(err, dict), f"not the OpenAI error shape: {body}"
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("type"), str) and err["type"], body
    assert "code" in err, body
    if code is not None:
        assert err["code"] == code, body
    return err


def assert_anthropic_error(r: httpx.Response, status: int, kind: str | None = None) -> dict:
    """`r` is an Anthropic-shaped error: {"type": "error", "error": {"type", "message"}}."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    body = r.json()
    assert body.get("type") == "error", f"not the Anthropic error shape: {body}"
    err = body.get("error")
    assert isinstance(err, dict), body
    assert isinstance(err.get("message"), str) and err["message"], body
    assert isinstance(err.get("type"), str) and err["type"], body
    if kind is not None:
        assert err["type"] == kind, body
    return err


def assert_serves_normally(w: Warden) -> None:
    """A clean chat request through `w` succeeds (the proxy is still healthy)."""
    r = w.http.post("/v1/chat/completions", json=chat_body("Still there?"), headers=OPENAI_JSON)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"]
    assert r.headers["x-warden-decision"] == "allow"


def assert_prefix(received: str, allowed: str) -> None:
    """No character beyond `allowed` reached the client."""
    assert allowed.startswith(received), (
        f"the client received text beyond what precedes the trigger:\n"
        f"  received: {received!r}\n  allowed prefix of: {allowed!r}"
    )


def tenant_of(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def rule_ids(decision: dict | None) -> list[str]:
    return [r["id"] for r in (decision or {}).get("rules", [])]


def openai_chat_deltas(stream: Iterable[Any]) -> tuple[list[str], list[str | None]]:
    """The text deltas, one by one, and the finish reasons from an OpenAI SDK chat stream."""
    deltas, finishes = [], []
    for chunk in stream:
        for c in chunk.choices:
            if c.delta is not None and c.delta.content:
                deltas.append(c.delta.content)
            if c.finish_reason is not None:
                finishes.append(c.finish_reason)
    return deltas, finishes


def collect_openai_chat_stream(stream: Iterable[Any]) -> tuple[str, list[str | None]]:
    """Text and finish reasons from an OpenAI SDK chat stream."""
    deltas, finishes = openai_chat_deltas(stream)
    return "".join(deltas), finishes
