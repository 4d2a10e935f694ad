//! The Anthropic shape: `/v1/messages`.

use super::{string_leaves, CompletionText, DecodeError, Piece};
use serde_json::{json, Value};
use warden_core::{Role, RuleHit, Segment};

fn seg(role: Role, text: &str, origin: String) -> Segment {
    Segment { role, text: text.to_string(), origin }
}

/// The texts of one content block at `ptr`, as written by `role`. Tool results and text
/// documents are `tool` text whoever sent them: that is where indirect injection arrives.
fn block_segments(b: &Value, ptr: &str, role: Role, out: &mut Vec<Segment>) {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(t) = b.get("text").and_then(Value::as_str) {
                out.push(seg(role, t, format!("{ptr}/text")));
            }
        }
        Some("thinking") => {
            if let Some(t) = b.get("thinking").and_then(Value::as_str) {
                out.push(seg(role, t, format!("{ptr}/thinking")));
            }
        }
        Some("tool_use") => {
            if let Some(input) = b.get("input") {
                string_leaves(input, &format!("{ptr}/input"), Role::Assistant, out);
            }
        }
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => out.push(seg(Role::Tool, s, format!("{ptr}/content"))),
            Some(Value::Array(inner)) => {
                for (k, ib) in inner.iter().enumerate() {
                    block_segments(ib, &format!("{ptr}/content/{k}"), Role::Tool, out);
                }
            }
            _ => {}
        },
        // Retrieved documents and search results: where RAG poisoning arrives.
        Some("document") | Some("search_result") => {
            for field in ["title", "context", "source"] {
                if let Some(t) = b.get(field).and_then(Value::as_str) {
                    out.push(seg(Role::Tool, t, format!("{ptr}/{field}")));
                }
            }
            match b.pointer("/source/type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(t) = b.pointer("/source/data").and_then(Value::as_str) {
                        out.push(seg(Role::Tool, t, format!("{ptr}/source/data")));
                    }
                }
                Some("content") => match b.pointer("/source/content") {
                    Some(Value::String(t)) => out.push(seg(Role::Tool, t, format!("{ptr}/source/content"))),
                    Some(Value::Array(inner)) => {
                        for (k, ib) in inner.iter().enumerate() {
                            block_segments(ib, &format!("{ptr}/source/content/{k}"), Role::Tool, out);
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
            if let Some(Value::Array(inner)) = b.get("content") {
                for (k, ib) in inner.iter().enumerate() {
                    block_segments(ib, &format!("{ptr}/content/{k}"), Role::Tool, out);
                }
            }
        }
        _ => {}
    }
}

/// The texts of a Messages request: `system` (string or blocks), message contents (string or
/// blocks: text, tool_use inputs, tool_result, text documents), tool descriptions.
pub fn segments(body: &Value) -> Result<Vec<Segment>, DecodeError> {
    let mut out = Vec::new();
    match body.get("system") {
        Some(Value::String(s)) => out.push(seg(Role::System, s, "/system".into())),
        Some(Value::Array(blocks)) => {
            for (j, b) in blocks.iter().enumerate() {
                block_segments(b, &format!("/system/{j}"), Role::System, &mut out);
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(DecodeError("`system` must be a string or an array of content blocks".into())),
    }
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError("messages: field required (an array)".into()))?;
    for (i, m) in messages.iter().enumerate() {
        let role = Role::from_provider(m.get("role").and_then(Value::as_str).unwrap_or("user")).unwrap_or(Role::User);
        match m.get("content") {
            Some(Value::String(s)) => out.push(seg(role, s, format!("/messages/{i}/content"))),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    block_segments(b, &format!("/messages/{i}/content/{j}"), role, &mut out);
                }
            }
            _ => {
                return Err(DecodeError(format!(
                    "messages.{i}.content: must be a string or an array of content blocks"
                )))
            }
        }
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        for (k, t) in tools.iter().enumerate() {
            if let Some(d) = t.get("description").and_then(Value::as_str) {
                out.push(seg(Role::System, d, format!("/tools/{k}/description")));
            }
            if let Some(schema) = t.get("input_schema") {
                string_leaves(schema, &format!("/tools/{k}/input_schema"), Role::System, &mut out);
            }
        }
    }
    Ok(out)
}

/// The texts of a whole message: text and thinking blocks, tool_use inputs.
pub fn completion_texts(body: &Value) -> Vec<CompletionText> {
    let mut segs = Vec::new();
    if let Some(blocks) = body.get("content").and_then(Value::as_array) {
        for (j, b) in blocks.iter().enumerate() {
            block_segments(b, &format!("/content/{j}"), Role::Assistant, &mut segs);
        }
    }
    segs.into_iter().map(|segment| CompletionText { segment, choice: 0 }).collect()
}

/// A refusal message naming the rule.
pub fn refusal_message(what: &str, hit: &RuleHit) -> String {
    format!("Warden blocked the {what}: policy `{}`, rule `{}` ({} detector)", hit.policy, hit.rule, hit.detector)
}

/// Withholds a whole message's content: no blocks, `stop_reason: "refusal"`.
pub fn withhold(body: &mut Value, hit: &RuleHit) {
    if let Some(o) = body.as_object_mut() {
        o.insert("content".into(), json!([]));
        o.insert("stop_reason".into(), json!("refusal"));
        o.insert("stop_sequence".into(), Value::Null);
        o.insert(
            "warden".into(),
            json!({ "filtered": true, "policy": hit.policy, "rule": hit.rule, "detector": hit.detector }),
        );
    }
}

/// The text pieces of one streamed event.
pub fn stream_pieces(event: Option<&str>, data: &Value) -> Vec<Piece> {
    let kind = data.get("type").and_then(Value::as_str).or(event);
    if kind != Some("content_block_delta") {
        // A content_block_start may carry initial text too.
        if kind == Some("content_block_start") {
            let idx = data.get("index").and_then(Value::as_u64).unwrap_or(0);
            if let Some(t) = data.pointer("/content_block/text").and_then(Value::as_str) {
                if !t.is_empty() {
                    return vec![Piece {
                        key: format!("b{idx}"),
                        choice: 0,
                        pointer: "/content_block/text".into(),
                        text: t.into(),
                    }];
                }
            }
        }
        return Vec::new();
    }
    let idx = data.get("index").and_then(Value::as_u64).unwrap_or(0);
    let field = match data.pointer("/delta/type").and_then(Value::as_str) {
        Some("text_delta") => "text",
        Some("thinking_delta") => "thinking",
        Some("input_json_delta") => "partial_json",
        _ => return Vec::new(),
    };
    match data.pointer(&format!("/delta/{field}")).and_then(Value::as_str) {
        Some(t) => {
            vec![Piece { key: format!("b{idx}"), choice: 0, pointer: format!("/delta/{field}"), text: t.into() }]
        }
        None => Vec::new(),
    }
}

/// The event that ends a cut stream.
pub fn cut_event(hit: &RuleHit) -> Value {
    json!({
        "type": "error",
        "error": { "type": "invalid_request_error", "message": refusal_message("completion", hit) },
    })
}
