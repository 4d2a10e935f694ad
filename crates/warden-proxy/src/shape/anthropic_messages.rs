//! Anthropic messages: `POST /v1/messages`.
//!
//! Request: `system` (a string or blocks), message contents (a string or blocks: text, thinking,
//! tool_use inputs, tool_result, documents and search results, where RAG poisoning arrives), tool
//! descriptions. Images and non-text documents are not read (reported as unseen); base64 text
//! documents are decoded by the sweep.
//!
//! Completion: text and thinking blocks are the known texts; every other block (tool_use and
//! server tool use inputs, web search, web fetch, code execution and MCP results, citations) is
//! swept as assistant text. Streamed: `text_delta`, `thinking_delta` and the text or thinking a
//! `content_block_start` begins with are deltas of their block's text; `input_json_delta` is JSON
//! text judged decoded; everything else of every event (`message_start` content, blocks given
//! whole, `citations_delta`) is swept.

use super::errors::refusal_message;
use super::{
    model_and_stream, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces, Piece, PieceKind,
    ResponseInfo, RouteInfo, Shape, StreamMemo, TextKey, Unseen, UnseenKind,
};
use crate::sse::encode;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit, Segment};

/// Anthropic messages.
pub struct AnthropicMessages;

const SKIP: &[&str] = &[
    "/model",
    "/messages/*/role",
    "/messages/*/content/*/type",
    "/messages/*/content/*/id",
    "/messages/*/content/*/tool_use_id",
    "/messages/*/content/*/signature",
    "/messages/*/content/*/cache_control/*",
    "/messages/*/content/*/source/type",
    "/messages/*/content/*/source/media_type",
    "/messages/*/content/*/content/*/type",
    "/messages/*/content/*/content/*/encrypted_content",
    "/system/*/type",
    "/system/*/cache_control/*",
    "/tools/*/type",
    "/tools/*/cache_control/*",
    "/tool_choice/type",
    "/thinking/type",
    "/metadata/user_id",
    "/service_tier",
];

/// The texts of one content block at `ptr`, as written by `role`. Tool results and documents are
/// `tool` text whoever sent them: that is where indirect injection arrives.
fn block_segments(b: &Value, ptr: &str, role: Role, out: &mut Vec<Segment>, unseen: &mut Vec<Unseen>) {
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
        Some("image") => unseen.push(Unseen { kind: UnseenKind::Media, pointer: ptr.to_string() }),
        Some("tool_result") => match b.get("content") {
            Some(Value::String(s)) => out.push(seg(Role::Tool, s, format!("{ptr}/content"))),
            Some(Value::Array(inner)) => {
                for (k, ib) in inner.iter().enumerate() {
                    block_segments(ib, &format!("{ptr}/content/{k}"), Role::Tool, out, unseen);
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
                            block_segments(ib, &format!("{ptr}/source/content/{k}"), Role::Tool, out, unseen);
                        }
                    }
                    _ => {}
                },
                Some("base64") => {
                    let media = b.pointer("/source/media_type").and_then(Value::as_str).unwrap_or("");
                    if !super::sweep::is_text_media(media) {
                        unseen.push(Unseen { kind: UnseenKind::Media, pointer: ptr.to_string() });
                    }
                }
                Some(_) => unseen.push(Unseen { kind: UnseenKind::Media, pointer: ptr.to_string() }),
                None => {}
            }
            if let Some(Value::Array(inner)) = b.get("content") {
                for (k, ib) in inner.iter().enumerate() {
                    block_segments(ib, &format!("{ptr}/content/{k}"), Role::Tool, out, unseen);
                }
            }
        }
        Some("container_upload") => unseen.push(Unseen { kind: UnseenKind::Media, pointer: ptr.to_string() }),
        // tool_use inputs, server tool results and the rest are swept (strings and keys).
        _ => {}
    }
}

impl Shape for AnthropicMessages {
    fn name(&self) -> &'static str {
        "anthropic.messages"
    }

    fn operation(&self) -> &'static str {
        "chat"
    }

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        // Whole: the message. Streamed: `message_start` holds the message, `message_delta` the
        // stop reason and the output tokens.
        let m = data.get("message").filter(|m| m.is_object()).unwrap_or(data);
        if m.get("type").and_then(Value::as_str) == Some("message") {
            info.id_from(m.get("id"));
            info.model_from(m.get("model"));
            info.finish_from(0, m.get("stop_reason"));
        }
        if let Some(d) = data.get("delta").filter(|_| data.get("type").and_then(Value::as_str) == Some("message_delta"))
        {
            info.finish_from(0, d.get("stop_reason"));
        }
        let usage = m.get("usage").or_else(|| data.get("usage"));
        info.tokens_from(usage.and_then(|u| u.get("input_tokens")), usage.and_then(|u| u.get("output_tokens")));
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::Anthropic
    }

    fn decode(&self, body: &Value, _route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        let (model, stream) = model_and_stream(body)?;
        let mut out = Vec::new();
        let mut unseen = Vec::new();
        match body.get("system") {
            Some(Value::String(s)) => out.push(seg(Role::System, s, "/system".into())),
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    block_segments(b, &format!("/system/{j}"), Role::System, &mut out, &mut unseen);
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
            let role =
                Role::from_provider(m.get("role").and_then(Value::as_str).unwrap_or("user")).unwrap_or(Role::User);
            match m.get("content") {
                Some(Value::String(s)) => out.push(seg(role, s, format!("/messages/{i}/content"))),
                Some(Value::Array(blocks)) => {
                    for (j, b) in blocks.iter().enumerate() {
                        block_segments(b, &format!("/messages/{i}/content/{j}"), role, &mut out, &mut unseen);
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
            }
        }
        Ok(DecodedRequest { model, stream, segments: out, unseen })
    }

    fn request_skip(&self) -> &'static [&'static str] {
        SKIP
    }

    fn completion_texts(&self, body: &Value) -> Vec<CompletionText> {
        // A client reads the text blocks joined (`get_final_text`), and so are they judged.
        let mut out = Vec::new();
        let blocks = body.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
        for field in ["text", "thinking"] {
            let parts: Vec<(String, String)> = blocks
                .iter()
                .enumerate()
                .filter(|(_, b)| b.get("type").and_then(Value::as_str) == Some(field))
                .filter_map(|(j, b)| Some((format!("/content/{j}/{field}"), b.get(field)?.as_str()?.to_string())))
                .collect();
            out.extend(CompletionText::of_parts(parts, Some(0)));
        }
        out
    }

    fn choice_of(&self, _body: &Value, _pointer: &str) -> Option<usize> {
        Some(0)
    }

    fn withhold(&self, body: &mut Value, _choices: &BTreeSet<Option<usize>>, hit: &RuleHit) {
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

    fn stream_pieces(&self, event: Option<&str>, data: &Value) -> EventPieces {
        let kind = data.get("type").and_then(Value::as_str).or(event);
        let idx = data.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        let mut pieces = Vec::new();
        let known = matches!(
            kind,
            Some(
                "message_start"
                    | "content_block_start"
                    | "content_block_delta"
                    | "content_block_stop"
                    | "message_delta"
                    | "message_stop"
                    | "ping"
                    | "error"
            )
        );
        match kind {
            // The text and thinking of every block continue one text each (the SDK joins them),
            // and so does what `message_start` seeds them with.
            Some("message_start") => {
                if let Some(blocks) = data.pointer("/message/content").and_then(Value::as_array) {
                    for (j, b) in blocks.iter().enumerate() {
                        for field in ["text", "thinking"] {
                            if b.get("type").and_then(Value::as_str) == Some(field) {
                                if let Some(t) = b.get(field).and_then(Value::as_str) {
                                    pieces.push(Piece::delta(
                                        TextKey::new(0, field),
                                        format!("/message/content/{j}/{field}"),
                                        t,
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            Some("content_block_start") => {
                let block = data.get("content_block");
                let block_type = block.and_then(|b| b.get("type")?.as_str());
                for field in ["text", "thinking"] {
                    if block_type == Some(field) {
                        if let Some(t) = block.and_then(|b| b.get(field)?.as_str()) {
                            pieces.push(Piece::delta(TextKey::new(0, field), format!("/content_block/{field}"), t));
                        }
                    }
                }
            }
            Some("content_block_delta") => {
                let delta = data.get("delta");
                let (field, kind) = match delta.and_then(|d| d.get("type")?.as_str()) {
                    Some("text_delta") => ("text", PieceKind::Delta),
                    Some("thinking_delta") => ("thinking", PieceKind::Delta),
                    Some("input_json_delta") => ("partial_json", PieceKind::JsonDelta),
                    _ => ("", PieceKind::Delta),
                };
                if let Some(t) = delta.and_then(|d| d.get(field)?.as_str()).filter(|_| !field.is_empty()) {
                    let key = match kind {
                        PieceKind::JsonDelta => TextKey::new(idx, "input"),
                        _ => TextKey::new(0, field),
                    };
                    pieces.push(Piece { key, pointer: format!("/delta/{field}"), text: t.to_string(), kind });
                }
            }
            _ => {}
        }
        EventPieces { pieces, known, last: kind == Some("message_stop") }
    }

    fn streams_at(&self, pointer: &str) -> bool {
        pointer.starts_with("/delta/")
            && !matches!(pointer, "/delta/type" | "/delta/signature" | "/delta/stop_reason" | "/delta/stop_sequence")
            && !pointer.starts_with("/delta/citation")
    }

    fn cut_stream(&self, _memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes> {
        let data = json!({
            "type": "error",
            "error": { "type": "invalid_request_error", "message": refusal_message("completion", hit) },
        });
        vec![encode(Some("error"), &data.to_string())]
    }
}
