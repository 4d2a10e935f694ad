//! OpenAI-shaped answers: chat completions, legacy completions, model list and
//! errors.

use serde_json::{json, Value};

use crate::body::Event;
use crate::Answer;

/// `data: {json}\n\n`
fn data_event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

fn usage(a: &Answer<'_>) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens,
        "total_tokens": a.prompt_tokens + a.completion_tokens,
    })
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

/// Non-streamed `chat.completion` object.
pub(crate) fn chat_json(a: &Answer<'_>) -> Vec<u8> {
    let choices: Vec<Value> = (0..a.n)
        .map(|i| {
            json!({
                "index": i,
                "message": {"role": "assistant", "content": a.text, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            })
        })
        .collect();
    let v = json!({
        "id": format!("chatcmpl-mock-{}", a.seq),
        "object": "chat.completion",
        "created": a.created,
        "model": a.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
        "usage": usage(a),
    });
    v.to_string().into_bytes()
}

/// Streamed `chat.completion.chunk` events, ending with `data: [DONE]`.
pub(crate) fn chat_events(a: &Answer<'_>, deltas: &[&str]) -> Vec<Event> {
    let id = format!("chatcmpl-mock-{}", a.seq);
    let chunk = |choices: Value| {
        with_null_usage(
            json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": a.created,
                "model": a.model,
                "system_fingerprint": "fp_mock",
                "choices": choices,
            }),
            a,
        )
    };
    let mut events = Vec::with_capacity(a.n * (deltas.len() + 2) + 2);
    for i in 0..a.n {
        let v = chunk(json!([{
            "index": i,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": null,
        }]));
        events.push(Event::new(data_event(&v)));
    }
    for (k, d) in deltas.iter().enumerate() {
        for i in 0..a.n {
            let v = chunk(json!([{
                "index": i,
                "delta": {"content": d},
                "logprobs": null,
                "finish_reason": null,
            }]));
            events.push(Event::delta(data_event(&v), k > 0 && i == 0));
        }
    }
    for i in 0..a.n {
        let v = chunk(json!([{
            "index": i,
            "delta": {},
            "logprobs": null,
            "finish_reason": "stop",
        }]));
        events.push(Event::new(data_event(&v)));
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
        events.push(Event::new(data_event(&v)));
    }
    events.push(Event::new(DONE.to_owned()));
    events
}

/// Non-streamed legacy `text_completion` object.
pub(crate) fn completion_json(a: &Answer<'_>) -> Vec<u8> {
    let choices: Vec<Value> = (0..a.n)
        .map(|i| {
            json!({
                "text": a.text,
                "index": i,
                "logprobs": null,
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
pub(crate) fn completion_events(a: &Answer<'_>, deltas: &[&str]) -> Vec<Event> {
    let id = format!("cmpl-mock-{}", a.seq);
    let chunk = |i: usize, text: &str, finish: Value| {
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
                    "logprobs": null,
                    "finish_reason": finish,
                }],
            }),
            a,
        )
    };
    let mut events = Vec::with_capacity(a.n * (deltas.len() + 1) + 2);
    for (k, d) in deltas.iter().enumerate() {
        for i in 0..a.n {
            let v = chunk(i, d, Value::Null);
            events.push(Event::delta(data_event(&v), k > 0 && i == 0));
        }
    }
    for i in 0..a.n {
        let v = chunk(i, "", Value::from("stop"));
        events.push(Event::new(data_event(&v)));
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
        events.push(Event::new(data_event(&v)));
    }
    events.push(Event::new(DONE.to_owned()));
    events
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
