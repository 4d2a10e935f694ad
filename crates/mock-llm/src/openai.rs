//! OpenAI-shaped answers: chat completions (also served for Azure OpenAI),
//! legacy completions, the model list and errors.
//!
//! Chat answers carry, when asked by header or body: `n` distinct choices,
//! `logprobs`, `reasoning_content` (DeepSeek/vLLM style), `tool_calls` and
//! `refusal`, whole and streamed the way the API streams them.

use serde_json::{json, Map, Value};

use crate::body::{Event, Events};
use crate::extras::ToolOrder;
use crate::reply::chunk_chars;
use crate::{azure, logprobs, sse, Answer};

fn usage(a: &Answer<'_>) -> Value {
    let mut u = json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    });
    if a.reasoning_tokens > 0 {
        u["completion_tokens_details"] = json!({"reasoning_tokens": a.reasoning_tokens});
    }
    u
}

/// Adds `"usage": null` to intermediate chunks when usage was requested, as
/// the real API does.
fn with_null_usage(mut v: Value, a: &Answer<'_>) -> Value {
    if a.include_usage {
        if let Value::Object(m) = &mut v {
            m.insert("usage".into(), Value::Null);
        }
    }
    v
}

fn tool_call_id(a: &Answer<'_>, choice: usize, k: usize) -> String {
    format!("call_mock{}c{choice}t{k}", a.seq)
}

/// `finish_reason` of every choice.
fn finish_reason(a: &Answer<'_>) -> &'static str {
    if a.extras.tool_calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    }
}

/// The `message` of choice `i` of a non-streamed chat completion.
fn chat_message(a: &Answer<'_>, i: usize, text: &str) -> Value {
    let x = a.extras;
    let content = if x.refusal.is_some() || !x.has_text() { Value::Null } else { Value::from(text) };
    let mut m = Map::new();
    m.insert("role".into(), "assistant".into());
    m.insert("content".into(), content);
    m.insert("refusal".into(), x.refusal.clone().map_or(Value::Null, Value::String));
    m.insert("annotations".into(), json!([]));
    if let Some(r) = &x.reasoning {
        m.insert("reasoning_content".into(), Value::from(r.as_str()));
    }
    if !x.tool_calls.is_empty() {
        let calls: Vec<Value> = x
            .tool_calls
            .iter()
            .enumerate()
            .map(|(k, c)| {
                json!({
                    "id": tool_call_id(a, i, k),
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                })
            })
            .collect();
        m.insert("tool_calls".into(), Value::Array(calls));
    }
    Value::Object(m)
}

/// The `logprobs` of choice `i` of a non-streamed chat completion.
fn chat_logprobs(a: &Answer<'_>, text: &str) -> Value {
    let Some(top) = a.logprobs else {
        return Value::Null;
    };
    match &a.extras.refusal {
        Some(r) => json!({"content": null, "refusal": logprobs::chat_entries(&chunk_chars(r, a.chunk), top)}),
        None if !a.extras.has_text() => json!({"content": [], "refusal": null}),
        None => json!({"content": logprobs::chat_entries(&chunk_chars(text, a.chunk), top), "refusal": null}),
    }
}

/// Non-streamed `chat.completion` object.
pub(crate) fn chat_json(a: &Answer<'_>) -> Vec<u8> {
    let choices: Vec<Value> = a
        .texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut c = json!({
                "index": i,
                "message": chat_message(a, i, text),
                "logprobs": chat_logprobs(a, text),
                "finish_reason": finish_reason(a),
            });
            if a.azure {
                let filters = if a.extras.has_text() { azure::choice_filter_results() } else { json!({}) };
                c["content_filter_results"] = filters;
            }
            c
        })
        .collect();
    let mut v = json!({
        "id": format!("chatcmpl-mock-{}", a.seq),
        "object": "chat.completion",
        "created": a.created,
        "model": a.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
        "usage": usage(a),
    });
    if a.azure {
        v["prompt_filter_results"] = azure::prompt_filter_results();
    }
    v.to_string().into_bytes()
}

/// One streamed choice update: its delta and logprobs.
struct ChoiceDelta {
    delta: Value,
    logprobs: Value,
    /// Carries generated text (Azure attaches filter results to these).
    is_text: bool,
}

/// The deltas of one choice, after its role delta and before its finish:
/// reasoning, then content or refusal, then tool calls.
fn choice_deltas(a: &Answer<'_>, choice: usize, text: &str) -> Vec<ChoiceDelta> {
    let x = a.extras;
    let mut out = Vec::new();
    if let Some(r) = &x.reasoning {
        for piece in chunk_chars(r, a.chunk) {
            out.push(ChoiceDelta { delta: json!({"reasoning_content": piece}), logprobs: Value::Null, is_text: false });
        }
    }
    let (field, body) = match &x.refusal {
        Some(r) => ("refusal", Some(r.as_str())),
        None if x.has_text() => ("content", Some(text)),
        None => ("content", None),
    };
    if let Some(body) = body {
        for (k, piece) in chunk_chars(body, a.chunk).into_iter().enumerate() {
            let logprobs = match a.logprobs {
                None => Value::Null,
                Some(top) => {
                    let entry = vec![logprobs::chat_entry(piece, k, top)];
                    if field == "refusal" {
                        json!({"content": null, "refusal": entry})
                    } else {
                        json!({"content": entry, "refusal": null})
                    }
                }
            };
            let mut delta = Map::new();
            delta.insert(field.into(), Value::from(piece));
            out.push(ChoiceDelta { delta: Value::Object(delta), logprobs, is_text: true });
        }
    }
    // Per call: the start (index, id, type, name, empty arguments), then
    // argument pieces of the raw string.
    let calls: Vec<Vec<Value>> = x
        .tool_calls
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut seq = vec![json!({"tool_calls": [{
                "index": k,
                "id": tool_call_id(a, choice, k),
                "type": "function",
                "function": {"name": c.name, "arguments": ""},
            }]})];
            for piece in chunk_chars(&c.arguments, a.chunk) {
                seq.push(json!({"tool_calls": [{"index": k, "function": {"arguments": piece}}]}));
            }
            seq
        })
        .collect();
    let ordered: Vec<Value> = match x.tool_order {
        ToolOrder::Sequential => calls.into_iter().flatten().collect(),
        ToolOrder::Interleaved => round_robin(calls),
    };
    out.extend(ordered.into_iter().map(|delta| ChoiceDelta { delta, logprobs: Value::Null, is_text: false }));
    out
}

/// Takes one item from each list in turn until all are empty.
fn round_robin<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let mut iters: Vec<std::vec::IntoIter<T>> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let mut any = false;
        for it in &mut iters {
            if let Some(v) = it.next() {
                out.push(v);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// The role delta that opens a choice.
fn role_delta(a: &Answer<'_>) -> (Value, Value) {
    let x = a.extras;
    let (delta, lp) = if x.refusal.is_some() {
        (json!({"role": "assistant", "content": null, "refusal": ""}), json!({"content": null, "refusal": []}))
    } else if !x.has_text() {
        (json!({"role": "assistant", "content": null}), json!({"content": [], "refusal": null}))
    } else {
        (json!({"role": "assistant", "content": ""}), json!({"content": [], "refusal": null}))
    };
    (delta, if a.logprobs.is_some() { lp } else { Value::Null })
}

/// Streamed `chat.completion.chunk` events, ending with `data: [DONE]`.
///
/// Order: (Azure: the prompt filter chunk), the role delta of every choice,
/// then the deltas round by round (one per choice per round), the finish
/// chunk of every choice, (`include_usage`: a chunk with `choices: []` and
/// the usage), `[DONE]`.
pub(crate) fn chat_events(a: &Answer<'_>) -> Vec<Event> {
    let id = format!("chatcmpl-mock-{}", a.seq);
    let chunk = |i: usize, delta: Value, logprobs: Value, finish: Value, filters: Option<Value>| {
        let mut choice = json!({
            "index": i,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish,
        });
        if let Some(f) = filters {
            choice["content_filter_results"] = f;
        }
        with_null_usage(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": a.created,
                "model": a.model,
                "system_fingerprint": "fp_mock",
                "choices": [choice],
            }),
            a,
        )
    };
    let filters = |is_text: bool| a.azure.then(|| if is_text { azure::choice_filter_results() } else { json!({}) });
    let mut ev = Events::default();
    if a.azure {
        ev.push(sse::data(&azure::prompt_filter_chunk()));
    }
    let (role, role_lp) = role_delta(a);
    for i in 0..a.texts.len() {
        ev.push(sse::data(&chunk(i, role.clone(), role_lp.clone(), Value::Null, filters(false))));
    }
    let per_choice: Vec<Vec<ChoiceDelta>> =
        a.texts.iter().enumerate().map(|(i, text)| choice_deltas(a, i, text)).collect();
    let rounds = per_choice.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..rounds {
        let mut first = true;
        for (i, deltas) in per_choice.iter().enumerate() {
            let Some(d) = deltas.get(k) else { continue };
            let data = sse::data(&chunk(i, d.delta.clone(), d.logprobs.clone(), Value::Null, filters(d.is_text)));
            if first {
                ev.delta(data);
                first = false;
            } else {
                ev.delta_same_round(data);
            }
        }
    }
    for i in 0..a.texts.len() {
        ev.push(sse::data(&chunk(i, json!({}), Value::Null, Value::from(finish_reason(a)), filters(false))));
    }
    if a.include_usage {
        let v = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": a.created,
            "model": a.model,
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": usage(a),
        });
        ev.push(sse::data(&v));
    }
    ev.push(sse::DONE.to_owned());
    ev.into_vec()
}

/// Prompt characters before the completion (legacy `text_offset` counts
/// from the start of the prompt).
fn prompt_chars(a: &Answer<'_>) -> usize {
    a.prompt.chars().count()
}

/// Non-streamed legacy `text_completion` object.
pub(crate) fn completion_json(a: &Answer<'_>) -> Vec<u8> {
    let choices: Vec<Value> = a
        .texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let lp = match a.logprobs {
                None => Value::Null,
                Some(top) => logprobs::legacy(&chunk_chars(text, a.chunk), 0, prompt_chars(a), top),
            };
            json!({
                "text": text,
                "index": i,
                "logprobs": lp,
                "finish_reason": "stop",
            })
        })
        .collect();
    let v = json!({
        "id": format!("cmpl-mock-{}", a.seq),
        "object": "text_completion",
        "created": a.created,
        "model": a.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
        "usage": usage(a),
    });
    v.to_string().into_bytes()
}

/// Streamed legacy `text_completion` events, ending with `data: [DONE]`.
pub(crate) fn completion_events(a: &Answer<'_>) -> Vec<Event> {
    let id = format!("cmpl-mock-{}", a.seq);
    let chunk = |i: usize, text: &str, logprobs: Value, finish: Value| {
        with_null_usage(
            json!({
                "id": id,
                "object": "text_completion",
                "created": a.created,
                "model": a.model,
                "system_fingerprint": "fp_mock",
                "choices": [{
                    "text": text,
                    "index": i,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                }],
            }),
            a,
        )
    };
    let per_choice: Vec<Vec<&str>> = a.texts.iter().map(|t| chunk_chars(t, a.chunk)).collect();
    let mut offsets = vec![prompt_chars(a); a.texts.len()];
    let rounds = per_choice.iter().map(Vec::len).max().unwrap_or(0);
    let mut ev = Events::default();
    for k in 0..rounds {
        let mut first = true;
        for (i, deltas) in per_choice.iter().enumerate() {
            let Some(d) = deltas.get(k) else { continue };
            let lp = match a.logprobs {
                None => Value::Null,
                Some(top) => logprobs::legacy(&[d], k, offsets[i], top),
            };
            offsets[i] += d.chars().count();
            let data = sse::data(&chunk(i, d, lp, Value::Null));
            if first {
                ev.delta(data);
                first = false;
            } else {
                ev.delta_same_round(data);
            }
        }
    }
    for i in 0..a.texts.len() {
        ev.push(sse::data(&chunk(i, "", Value::Null, Value::from("stop"))));
    }
    if a.include_usage {
        let v = json!({
            "id": id,
            "object": "text_completion",
            "created": a.created,
            "model": a.model,
            "system_fingerprint": "fp_mock",
            "choices": [],
            "usage": usage(a),
        });
        ev.push(sse::data(&v));
    }
    ev.push(sse::DONE.to_owned());
    ev.into_vec()
}

/// `GET /v1/models` answer.
pub(crate) fn models_json() -> Vec<u8> {
    json!({
        "object": "list",
        "data": [{"id": "mock-1", "object": "model", "created": 0, "owned_by": "mock"}],
    })
    .to_string()
    .into_bytes()
}

/// OpenAI error object: `{"error":{"message","type","param":null,"code"}}`.
pub(crate) fn error_json(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    json!({
        "error": {"message": message, "type": kind, "param": null, "code": code},
    })
    .to_string()
    .into_bytes()
}
