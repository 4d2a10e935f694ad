"""Real OTLP receivers for the telemetry tests, run as child processes, and a collector that
never answers.

- `OtelTap`: oteltap (OTLP/HTTP protobuf only), which prints one JSON object per span on stdout
  (no resource, so no `service.name`);
- `Rotel`: the rotel collector (OTLP gRPC and HTTP), whose debug exporter prints a text dump of
  what it receives, resource attributes included; parsed here;
- `BlackHole`: a TCP listener that accepts connections and never reads or answers.

Each receiver collects the spans it prints into `spans` (a reader thread) as `Span` objects of one
shape whatever the receiver, keeps its raw stdout lines in `lines`, and has `wait_for(predicate)`.
Every instance is registered in `STARTED` and stopped by `stop_all()` (called by the tests'
fixture, and at exit).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from helpers import terminate
from hostile_upstream import free_port

READY_TIMEOUT_S = 30.0
# How long a span may take from its end in warden to a receiver's stdout: warden's batch delay
# is 0.5 s; the rest is room for a loaded 2-core machine. A liveness bound, not a speed claim.
SPAN_TIMEOUT_S = 20.0

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}

STARTED: list["Receiver | BlackHole"] = []


@dataclass
class Event:
    name: str
    attrs: dict[str, Any]


@dataclass
class Span:
    """One span as a receiver printed it: ids in lowercase hex (`parent_id` is "" for a root),
    `kind` as a word (`SERVER`, `CLIENT`, `INTERNAL`), attribute values as Python values (ints,
    floats, bools, strings, lists)."""

    trace_id: str = ""
    span_id: str = ""
    parent_id: str = ""
    name: str = ""
    kind: str = ""
    status: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    # The resource's attributes (rotel only; None from oteltap, which does not print them).
    resource: dict[str, Any] | None = None

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]


def _wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before it listened on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {READY_TIMEOUT_S}s")


class Receiver:
    """A receiver process whose stdout a thread reads, line by line, into spans."""

    name = "receiver"

    def __init__(self, argv: list[str], ports: list[int], env: dict[str, str] | None = None):
        self.argv = argv
        self.lines: list[str] = []
        self.spans: list[Span] = []
        self._lock = threading.Lock()
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        STARTED.append(self)
        threading.Thread(target=self._read, name=f"{self.name}-stdout", daemon=True).start()
        try:
            for port in ports:
                _wait_port(port, self.p, self.name)
        except RuntimeError as e:
            self.stop()
            raise RuntimeError(f"{e}\nargv: {argv}\n--- output ---\n{self.text()}") from None

    def _read(self) -> None:
        assert self.p.stdout is not None
        for raw in self.p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self.lines.append(line)
                self._parse(line)

    def _parse(self, line: str) -> None:
        raise NotImplementedError

    def text(self) -> str:
        """Everything the receiver printed so far."""
        with self._lock:
            return "\n".join(self.lines)

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[Span]], Any], timeout: float = SPAN_TIMEOUT_S, what: str = "spans") -> Any:
        """Polls `predicate(spans so far)` until it returns something truthy, and returns that."""
        deadline = time.monotonic() + timeout
        while True:
            got = predicate(self.snapshot())
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: timed out after {timeout}s waiting for {what}; it has "
                    f"{len(self.spans)} spans: {[(s.name, s.trace_id) for s in self.snapshot()][-20:]}"
                )
            time.sleep(0.05)

    def trace(self, trace_id: str) -> list[Span]:
        return [s for s in self.snapshot() if s.trace_id == trace_id]

    def wait_for_server_span(self, trace_id: str, timeout: float = SPAN_TIMEOUT_S) -> Span:
        """The SERVER span of `trace_id`. It ends after its children, and spans are exported in
        the order they end, so once it is here every span of the request is too."""

        def found(spans: list[Span]) -> Span | None:
            return next((s for s in spans if s.trace_id == trace_id and s.kind == "SERVER"), None)

        return self.wait_for(found, timeout, what=f"the SERVER span of trace {trace_id}")

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self) -> None:
        terminate(self.p, grace=10)
        if self in STARTED:
            STARTED.remove(self)


# --------------------------------------------------------------------------------------------
# oteltap: OTLP/HTTP protobuf, one JSON span per line
# --------------------------------------------------------------------------------------------


def _otlp_json_value(v: dict) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_otlp_json_value(x) for x in v["arrayValue"].get("values", [])]
    if "kvlistValue" in v:
        return {kv["key"]: _otlp_json_value(kv["value"]) for kv in v["kvlistValue"].get("values", [])}
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _otlp_json_attrs(attrs: list[dict]) -> dict[str, Any]:
    return {a["key"]: _otlp_json_value(a.get("value", {})) for a in attrs or []}


class OtelTap(Receiver):
    """oteltap on a free loopback port; `endpoint` is the base URL to give warden."""

    name = "oteltap"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        # Log records it received (OTLP/JSON LogRecord objects), apart from the spans.
        self.logs: list[dict] = []
        exe = Path(sys.executable).parent / "oteltap"
        super().__init__([str(exe), "--port", str(self.port)], [self.port])

    def _parse(self, line: str) -> None:
        if not line.startswith("{"):
            return
        s = json.loads(line)
        if "kind" not in s:
            # A log record (Warden's decision records, telemetry.records: true), not a span.
            self.logs.append(s)
            return
        status = s.get("status", {}).get("code", 0)
        self.spans.append(
            Span(
                trace_id=s.get("traceId", ""),
                span_id=s.get("spanId", ""),
                parent_id=s.get("parentSpanId", ""),
                name=s.get("name", ""),
                kind=KINDS.get(s.get("kind", 0), str(s.get("kind"))),
                status={0: "UNSET", 1: "OK", 2: "ERROR"}.get(status, str(status)),
                attrs=_otlp_json_attrs(s.get("attributes")),
                events=[Event(e.get("name", ""), _otlp_json_attrs(e.get("attributes"))) for e in s.get("events", [])],
            )
        )


# --------------------------------------------------------------------------------------------
# rotel: OTLP gRPC + HTTP, a text dump on stdout
# --------------------------------------------------------------------------------------------


def rotel_agent() -> Path:
    import rotel

    return Path(rotel.__file__).parent / "rotel-agent"


def _rotel_value(text: str) -> Any:
    """`Str(x)`, `Int(3)`, `Double(0.5)`, `Bool(true)`, `Slice(Str(a), Str(b))`."""
    m = re.fullmatch(r"(\w+)\((.*)\)", text, re.S)
    if not m:
        return text
    kind, inner = m.groups()
    if kind == "Str":
        return inner
    if kind == "Int":
        return int(inner)
    if kind == "Double":
        return float(inner)
    if kind == "Bool":
        return inner == "true"
    if kind == "Slice":
        items, depth, start = [], 0, 0
        for i, ch in enumerate(inner):
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(inner[start:i].strip())
                start = i + 1
        if inner.strip():
            items.append(inner[start:].strip())
        return [_rotel_value(x) for x in items]
    return inner


class Rotel(Receiver):
    """The rotel collector with its debug exporter: `grpc_endpoint` and `http_endpoint` are the
    URLs to give warden. Spans are filled in as their lines arrive (a predicate may see one
    half-read, and then again complete)."""

    name = "rotel"

    def __init__(self) -> None:
        self.grpc_port, self.http_port = free_port(), free_port()
        self.grpc_endpoint = f"http://127.0.0.1:{self.grpc_port}"
        self.http_endpoint = f"http://127.0.0.1:{self.http_port}"
        self._resource: dict[str, Any] = {}
        self._section = ""
        self._span: Span | None = None
        self._event: Event | None = None
        argv = [
            str(rotel_agent()), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "blackhole",
            "--debug-log", "traces",
            "--debug-log-verbosity", "detailed",
        ]
        super().__init__(argv, [self.grpc_port, self.http_port], env={"NO_COLOR": "1"})

    _FIELD = re.compile(r"^\s{4}(Trace ID|Parent ID|ID|Name|Kind|Status code)\s*: ?(.*)$")
    _ATTR = re.compile(r"^\s*-> ([^:]+): (.*)$")

    def _parse(self, line: str) -> None:
        if line.startswith("ResourceSpans #"):
            self._resource, self._section, self._span, self._event = {}, "", None, None
        elif line.startswith("Resource attributes:"):
            self._section = "resource"
        elif line.startswith("ScopeSpans #") or line.startswith("InstrumentationScope"):
            self._section = ""
        elif line.startswith("Span #"):
            self._span = Span(resource=self._resource)
            self._event, self._section = None, "span"
            self.spans.append(self._span)
        elif line.startswith("Attributes:"):
            self._section = "attrs"
        elif line.startswith("Events:"):
            self._section = "events"
        elif line.startswith("Links:"):
            self._section = "links"
        elif line.startswith("SpanEvent #") and self._span is not None:
            self._event = Event("", {})
            self._span.events.append(self._event)
        elif (m := self._FIELD.match(line)) and self._span is not None and self._section == "span":
            key, value = m.group(1), m.group(2).strip()
            if key == "Trace ID":
                self._span.trace_id = value
            elif key == "Parent ID":
                self._span.parent_id = value
            elif key == "ID":
                self._span.span_id = value
            elif key == "Name":
                self._span.name = value
            elif key == "Kind":
                self._span.kind = value.removeprefix("SPAN_KIND_")
            elif key == "Status code":
                self._span.status = value.removeprefix("STATUS_CODE_")
        elif m := self._ATTR.match(line):
            key, value = m.group(1).strip(), m.group(2)
            if self._section == "resource":
                self._resource[key] = _rotel_value(value)
            elif self._section == "attrs" and self._span is not None:
                self._span.attrs[key] = _rotel_value(value)
            elif self._section == "events" and self._event is not None:
                if key == "Name":
                    self._event.name = value
                elif line.startswith(" " * 10):
                    self._event.attrs[key] = _rotel_value(value)


# --------------------------------------------------------------------------------------------
# A collector that accepts and never answers
# --------------------------------------------------------------------------------------------


class BlackHole:
    """A loopback TCP listener that accepts every connection and never reads or writes: an
    exporter's request hangs until its own timeout. `endpoint` is its URL."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="blackhole-accept", daemon=True)
        self._thread.start()
        STARTED.append(self)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for c in self.accepted:
            c.close()
        if self in STARTED:
            STARTED.remove(self)


def stop_all() -> None:
    for r in list(STARTED):
        r.stop()


atexit.register(stop_all)
