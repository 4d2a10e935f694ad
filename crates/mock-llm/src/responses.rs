//! OpenAI Responses API (`POST /v1/responses`): the `response` object and its
//! event stream.
//!
//! Output items, in order: a `reasoning` item with a summary
//! (`x-mock-reasoning`), a `message` item (its `output_text`, or a `refusal`
//! part for `x-mock-refusal`), then one `function_call` item per
//! `x-mock-tool-calls` entry. The stream is the API's: `response.created`,
//! `response.in_progress`, per item `output_item.added` ... `output_item.done`
//! with the part, text, summary and argument events in between, then
//! `response.completed` carrying the whole response again. Every event has
//! an `event:` line and a `sequence_number`.

use serde_json::{json, Value};

use crate::body::{Event, Events};
use crate::reply::chunk_chars;
use crate::{sse, Answer};

fn response_id(a: &Answer<'_>) -> String {
    format!("resp_mock_{}", a.seq)
}

/// One output item of the answer.
enum Item {
    Reasoning { id: String, summary: String },
    Message { id: String, text: String, refusal: bool },
    FunctionCall { id: String, call_id: String, name: String, arguments: String },
}

fn items(a: &Answer<'_>) -> Vec<Item> {
    let x = a.extras;
    let mut out = Vec::new();
    if let Some(r) = &x.reasoning {
        out.push(Item::Reasoning { id: format!("rs_mock_{}", a.seq), summary: r.clone() });
    }
    let id = format!("msg_mock_{}", a.seq);
    match &x.refusal {
        Some(r) => out.push(Item::Message { id, text: r.clone(), refusal: true }),
        None if x.has_text() => out.push(Item::Message { id, text: a.text().to_owned(), refusal: false }),
        None => {}
    }
    for (k, c) in x.tool_calls.iter().enumerate() {
        out.push(Item::FunctionCall {
            id: format!("fc_mock_{}_{k}", a.seq),
            call_id: format!("call_mock{}t{k}", a.seq),
            name: c.name.clone(),
            arguments: c.arguments.clone(),
        });
    }
    out
}

/// A message content part holding `text` (empty while streaming starts).
fn part(text: &str, refusal: bool) -> Value {
    if refusal {
        json!({"type": "refusal", "refusal": text})
    } else {
        json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
    }
}

impl Item {
    fn id(&self) -> &str {
        match self {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::FunctionCall { id, .. } => id,
        }
    }

    /// The item when complete (in `output`, `output_item.done`).
    fn done(&self) -> Value {
        match self {
            Item::Reasoning { id, summary } => {
                json!({"id": id, "type": "reasoning", "summary": [{"type": "summary_text", "text": summary}]})
            }
            Item::Message { id, text, refusal } => json!({
                "id": id,
                "type": "message",
                "status": "completed",
                "content": [part(text, *refusal)],
                "role": "assistant",
            }),
            Item::FunctionCall { id, call_id, name, arguments } => json!({
                "id": id,
                "type": "function_call",
                "status": "completed",
                "arguments": arguments,
                "call_id": call_id,
                "name": name,
            }),
        }
    }

    /// The item as `output_item.added` announces it.
    fn added(&self) -> Value {
        match self {
            Item::Reasoning { id, .. } => json!({"id": id, "type": "reasoning", "summary": []}),
            Item::Message { id, .. } => {
                json!({"id": id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"})
            }
            Item::FunctionCall { id, call_id, name, .. } => json!({
                "id": id,
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": call_id,
                "name": name,
            }),
        }
    }
}

fn usage(a: &Answer<'_>) -> Value {
    json!({
        "input_tokens": a.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": a.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": a.reasoning_tokens},
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
}

/// The `response` object; `done` selects the completed form (output and
/// usage) over the in-progress one (as in `response.created`).
fn response(a: &Answer<'_>, items: &[Item], done: bool) -> Value {
    let req = a.request;
    let echo = |key: &str| req.get(key).cloned().unwrap_or(Value::Null);
    let output: Vec<Value> = if done { items.iter().map(Item::done).collect() } else { Vec::new() };
    json!({
        "id": response_id(a),
        "object": "response",
        "created_at": a.created,
        "status": if done { "completed" } else { "in_progress" },
        "background": false,
        "completed_at": if done { Value::from(a.created) } else { Value::Null },
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions"),
        "max_output_tokens": echo("max_output_tokens"),
        "max_tool_calls": null,
        "model": a.model,
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls").cloned().unwrap_or(Value::Bool(true)),
        "previous_response_id": echo("previous_response_id"),
        "reasoning": {
            "effort": req.pointer("/reasoning/effort").cloned().unwrap_or(Value::Null),
            "summary": req.pointer("/reasoning/summary").cloned().unwrap_or(Value::Null),
        },
        "service_tier": "default",
        "store": req.get("store").cloned().unwrap_or(Value::Bool(true)),
        "temperature": req.get("temperature").cloned().unwrap_or(Value::from(1.0)),
        "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice").cloned().unwrap_or(Value::from("auto")),
        "tools": req.get("tools").cloned().unwrap_or(json!([])),
        "top_logprobs": 0,
        "top_p": req.get("top_p").cloned().unwrap_or(Value::from(1.0)),
        "truncation": "disabled",
        "usage": if done { usage(a) } else { Value::Null },
        "user": null,
        "metadata": req.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Non-streamed `response` object.
pub(crate) fn response_json(a: &Answer<'_>) -> Vec<u8> {
    response(a, &items(a), true).to_string().into_bytes()
}

/// Numbers the events of one stream.
struct Stream {
    ev: Events,
    seq: u64,
}

impl Stream {
    /// Appends event `name` with `fields` (plus `type` and `sequence_number`).
    fn emit(&mut self, name: &str, fields: Value, delta: bool) {
        let mut v = json!({"type": name});
        if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
            m.extend(f);
            m.insert("sequence_number".into(), Value::from(self.seq));
        }
        self.seq += 1;
        let data = sse::named(name, &v);
        if delta {
            self.ev.delta(data);
        } else {
            self.ev.push(data);
        }
    }
}

/// Streamed Responses events, from `response.created` to `response.completed`.
pub(crate) fn response_events(a: &Answer<'_>) -> Vec<Event> {
    let items = items(a);
    let mut s = Stream { ev: Events::default(), seq: 0 };
    s.emit("response.created", json!({"response": response(a, &items, false)}), false);
    s.emit("response.in_progress", json!({"response": response(a, &items, false)}), false);
    for (oi, item) in items.iter().enumerate() {
        let id = item.id();
        s.emit("response.output_item.added", json!({"output_index": oi, "item": item.added()}), false);
        match item {
            Item::Reasoning { summary, .. } => {
                let at = json!({"item_id": id, "output_index": oi, "summary_index": 0});
                let with = |extra: Value| merge(&at, extra);
                s.emit(
                    "response.reasoning_summary_part.added",
                    with(json!({"part": {"type": "summary_text", "text": ""}})),
                    false,
                );
                for piece in chunk_chars(summary, a.chunk) {
                    s.emit("response.reasoning_summary_text.delta", with(json!({"delta": piece})), true);
                }
                s.emit("response.reasoning_summary_text.done", with(json!({"text": summary})), false);
                s.emit(
                    "response.reasoning_summary_part.done",
                    with(json!({"part": {"type": "summary_text", "text": summary}})),
                    false,
                );
            }
            Item::Message { text, refusal, .. } => {
                let at = json!({"item_id": id, "output_index": oi, "content_index": 0});
                let with = |extra: Value| merge(&at, extra);
                s.emit("response.content_part.added", with(json!({"part": part("", *refusal)})), false);
                for piece in chunk_chars(text, a.chunk) {
                    if *refusal {
                        s.emit("response.refusal.delta", with(json!({"delta": piece})), true);
                    } else {
                        s.emit("response.output_text.delta", with(json!({"delta": piece, "logprobs": []})), true);
                    }
                }
                if *refusal {
                    s.emit("response.refusal.done", with(json!({"refusal": text})), false);
                } else {
                    s.emit("response.output_text.done", with(json!({"text": text, "logprobs": []})), false);
                }
                s.emit("response.content_part.done", with(json!({"part": part(text, *refusal)})), false);
            }
            Item::FunctionCall { name, arguments, .. } => {
                let at = json!({"item_id": id, "output_index": oi});
                for piece in chunk_chars(arguments, a.chunk) {
                    s.emit("response.function_call_arguments.delta", merge(&at, json!({"delta": piece})), true);
                }
                s.emit(
                    "response.function_call_arguments.done",
                    merge(&at, json!({"name": name, "arguments": arguments})),
                    false,
                );
            }
        }
        s.emit("response.output_item.done", json!({"output_index": oi, "item": item.done()}), false);
    }
    s.emit("response.completed", json!({"response": response(a, &items, true)}), false);
    s.ev.into_vec()
}

/// `base` with the fields of `extra` added after its own.
fn merge(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    v
}
