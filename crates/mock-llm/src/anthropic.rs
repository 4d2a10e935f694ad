//! Anthropic Messages-shaped answers and errors.

use serde_json::{json, Value};

use crate::body::Event;
use crate::Answer;

/// `event: NAME\ndata: {json}\n\n`
fn named_event(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

/// Non-streamed `message` object.
pub(crate) fn message_json(a: &Answer<'_>) -> Vec<u8> {
    json!({
        "id": format!("msg_mock_{}", a.seq),
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [{"type": "text", "text": a.text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens},
    })
    .to_string()
    .into_bytes()
}

/// Streamed Messages events: `message_start`, `content_block_start`, `ping`,
/// `content_block_delta`*, `content_block_stop`, `message_delta`,
/// `message_stop`.
pub(crate) fn message_events(a: &Answer<'_>, deltas: &[&str]) -> Vec<Event> {
    let mut events = Vec::with_capacity(deltas.len() + 6);
    events.push(Event::new(named_event(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_mock_{}", a.seq),
                "type": "message",
                "role": "assistant",
                "model": a.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
            },
        }),
    )));
    events.push(Event::new(named_event(
        "content_block_start",
        &json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }),
    )));
    events.push(Event::new(named_event("ping", &json!({"type": "ping"}))));
    for (k, d) in deltas.iter().enumerate() {
        events.push(Event::delta(
            named_event(
                "content_block_delta",
                &json!({
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": d},
                }),
            ),
            k > 0,
        ));
    }
    events.push(Event::new(named_event("content_block_stop", &json!({"type": "content_block_stop", "index": 0}))));
    events.push(Event::new(named_event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": null},
            "usage": {"output_tokens": a.completion_tokens},
        }),
    )));
    events.push(Event::new(named_event("message_stop", &json!({"type": "message_stop"}))));
    events
}

/// Anthropic error object: `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error_json(message: &str, kind: &str) -> Vec<u8> {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    })
    .to_string()
    .into_bytes()
}
