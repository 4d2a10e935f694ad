//! The OpenAI Responses API: `POST /v1/responses` (and Azure OpenAI's `/openai/v1/responses`).
//!
//! Request: `instructions` (system), `input` (a string, or items: messages with text parts,
//! function calls (arguments decoded), function call outputs, reasoning summaries), tool
//! descriptions. Images, audio and files are not read, and neither is conversation state kept by
//! the provider (`previous_response_id`, `conversation`, a stored `prompt`, `item_reference`):
//! both are reported as unseen, and the config decides.
//!
//! Completion: the `output` items (message text and refusals, their logprob tokens, function-call
//! arguments, reasoning summaries and text); the sweep takes everything else. Streamed, the same
//! text arrives several times: as `*.delta` events (judged as deltas), then again whole in
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done` and
//! `response.completed`. Every copy is judged (the whole ones as whole texts, so a redaction
//! lands the same way in each), and a block cuts the stream with `response.incomplete`,
//! `incomplete_details.reason: "content_filter"`: the provider's own way of ending a filtered
//! response, which the SDKs surface as a normal end.

use super::errors::filter_detail;
use super::openai_chat::json_segment;
use super::{
    model_and_stream, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces, Piece, PieceKind,
    RouteInfo, Shape, StreamMemo, TextKey, Unseen, UnseenKind,
};
use crate::sse::encode;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit};

/// The OpenAI Responses API.
pub struct OpenAiResponses;

const SKIP: &[&str] = &[
    "/model",
    "/input/*/role",
    "/input/*/type",
    "/input/*/id",
    "/input/*/call_id",
    "/input/*/status",
    "/input/*/encrypted_content",
    "/input/*/content/*/type",
    "/input/*/content/*/detail",
    "/input/*/content/*/file_id",
    "/tools/*/type",
    "/include/*",
    "/metadata/*",
    "/service_tier",
    "/reasoning/effort",
    "/reasoning/summary",
    "/text/format/type",
    "/text/verbosity",
    "/tool_choice",
    "/tool_choice/type",
    "/truncation",
    "/user",
    "/previous_response_id",
    "/conversation",
    "/conversation/id",
    "/prompt/id",
    "/prompt/version",
    "/prompt_cache_key",
    "/safety_identifier",
];

/// Event types of the Responses stream this shape knows.
const KNOWN: &[&str] = &[
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.output_text.annotation.added",
    "response.refusal.delta",
    "response.refusal.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_part.done",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "error",
];

fn content_parts(
    parts: &[Value],
    ptr: &str,
    role: Role,
    out: &mut Vec<warden_core::Segment>,
    unseen: &mut Vec<Unseen>,
) {
    for (j, p) in parts.iter().enumerate() {
        match p.get("type").and_then(Value::as_str) {
            Some("input_text") | Some("output_text") | Some("text") | Some("summary_text") | Some("reasoning_text") => {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push(seg(role, t, format!("{ptr}/{j}/text")));
                }
            }
            Some("refusal") => {
                if let Some(t) = p.get("refusal").and_then(Value::as_str) {
                    out.push(seg(role, t, format!("{ptr}/{j}/refusal")));
                }
            }
            Some("input_image") | Some("input_audio") => {
                unseen.push(Unseen { kind: UnseenKind::Media, pointer: format!("{ptr}/{j}") })
            }
            Some("input_file") => {
                let text = p
                    .get("file_data")
                    .and_then(Value::as_str)
                    .and_then(super::sweep::data_url)
                    .is_some_and(|(m, _)| super::sweep::is_text_media(m));
                if !text {
                    unseen.push(Unseen { kind: UnseenKind::Media, pointer: format!("{ptr}/{j}") });
                }
            }
            _ => {}
        }
    }
}

/// Whole-text pieces for the function-call arguments inside a response object or an item.
fn argument_pieces(v: &Value, ptr: &str, out: &mut Vec<Piece>) {
    let item = |it: &Value, p: String, out: &mut Vec<Piece>| {
        if let Some(a) = it.get("arguments").and_then(Value::as_str) {
            out.push(Piece {
                key: TextKey::new(0, "whole"),
                pointer: format!("{p}/arguments"),
                text: a.to_string(),
                kind: PieceKind::WholeJson,
            });
        }
    };
    if let Some(items) = v.get("output").and_then(Value::as_array) {
        for (k, it) in items.iter().enumerate() {
            item(it, format!("{ptr}/output/{k}"), out);
        }
    } else {
        item(v, ptr.to_string(), out);
    }
}

impl Shape for OpenAiResponses {
    fn name(&self) -> &'static str {
        "openai.responses"
    }

    fn operation(&self) -> &'static str {
        "responses"
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::OpenAi
    }

    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        let (model, stream) = model_and_stream(body)?;
        let mut out = Vec::new();
        let mut unseen = Vec::new();
        match body.get("instructions") {
            Some(Value::String(s)) => out.push(seg(Role::System, s, "/instructions".into())),
            None | Some(Value::Null) => {}
            Some(_) => return Err(DecodeError("`instructions` must be a string".into())),
        }
        match body.get("input") {
            Some(Value::String(s)) => out.push(seg(Role::User, s, "/input".into())),
            Some(Value::Array(items)) => {
                for (i, it) in items.iter().enumerate() {
                    let ptr = format!("/input/{i}");
                    let kind = it.get("type").and_then(Value::as_str).unwrap_or("message");
                    match kind {
                        "message" => {
                            let role = it
                                .get("role")
                                .and_then(Value::as_str)
                                .and_then(Role::from_provider)
                                .unwrap_or(Role::User);
                            match it.get("content") {
                                Some(Value::String(s)) => out.push(seg(role, s, format!("{ptr}/content"))),
                                Some(Value::Array(parts)) => {
                                    content_parts(parts, &format!("{ptr}/content"), role, &mut out, &mut unseen)
                                }
                                _ => {}
                            }
                        }
                        "function_call" | "custom_tool_call" => {
                            if let Some(a) = it.get("arguments").and_then(Value::as_str) {
                                out.push(json_segment(Role::Assistant, a, format!("{ptr}/arguments")));
                            }
                        }
                        "function_call_output" | "custom_tool_call_output" => match it.get("output") {
                            Some(Value::String(s)) => out.push(seg(Role::Tool, s, format!("{ptr}/output"))),
                            Some(Value::Array(parts)) => {
                                content_parts(parts, &format!("{ptr}/output"), Role::Tool, &mut out, &mut unseen)
                            }
                            _ => {}
                        },
                        "reasoning" => {
                            for field in ["summary", "content"] {
                                if let Some(Value::Array(parts)) = it.get(field) {
                                    content_parts(
                                        parts,
                                        &format!("{ptr}/{field}"),
                                        Role::Assistant,
                                        &mut out,
                                        &mut unseen,
                                    );
                                }
                            }
                        }
                        "item_reference" => {
                            unseen.push(Unseen { kind: UnseenKind::ProviderState, pointer: ptr.clone() })
                        }
                        // Other items (tool calls and their results) are swept as tool text.
                        _ => {}
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => return Err(DecodeError("`input` must be a string or an array of input items".into())),
        }
        if let Some(tools) = body.get("tools").and_then(Value::as_array) {
            for (k, t) in tools.iter().enumerate() {
                if let Some(d) = t.get("description").and_then(Value::as_str) {
                    out.push(seg(Role::System, d, format!("/tools/{k}/description")));
                }
            }
        }
        for field in ["previous_response_id", "conversation", "prompt"] {
            if body.get(field).is_some_and(|v| !v.is_null()) {
                unseen.push(Unseen { kind: UnseenKind::ProviderState, pointer: format!("/{field}") });
            }
        }
        let model = if model.is_empty() { route.path_model.clone().unwrap_or_default() } else { model };
        Ok(DecodedRequest { model, stream, segments: out, unseen })
    }

    fn request_skip(&self) -> &'static [&'static str] {
        SKIP
    }

    fn completion_texts(&self, body: &Value) -> Vec<CompletionText> {
        let mut out = Vec::new();
        let Some(items) = body.get("output").and_then(Value::as_array) else { return out };
        for (k, it) in items.iter().enumerate() {
            let ptr = format!("/output/{k}");
            if let Some(a) = it.get("arguments").and_then(Value::as_str) {
                out.push(CompletionText::json(a, format!("{ptr}/arguments"), Some(0)));
            }
            for list in ["content", "summary"] {
                let Some(parts) = it.get(list).and_then(Value::as_array) else { continue };
                for (j, p) in parts.iter().enumerate() {
                    for field in ["text", "refusal"] {
                        if let Some(t) = p.get(field).and_then(Value::as_str) {
                            out.push(CompletionText::string(t, format!("{ptr}/{list}/{j}/{field}"), Some(0)));
                        }
                    }
                    if let Some(lp) = p.get("logprobs").and_then(Value::as_array) {
                        let parts: Vec<(String, String)> = lp
                            .iter()
                            .enumerate()
                            .filter_map(|(n, e)| {
                                Some((
                                    format!("{ptr}/{list}/{j}/logprobs/{n}/token"),
                                    e.get("token")?.as_str()?.to_string(),
                                ))
                            })
                            .collect();
                        if !parts.is_empty() {
                            out.push(CompletionText::joined(parts, Some(0)));
                        }
                    }
                }
            }
        }
        out
    }

    fn choice_of(&self, _body: &Value, _pointer: &str) -> Option<usize> {
        Some(0)
    }

    fn withhold(&self, body: &mut Value, _choices: &BTreeSet<Option<usize>>, hit: &RuleHit) {
        withhold_response(body, hit);
    }

    fn stream_pieces(&self, event: Option<&str>, data: &Value) -> EventPieces {
        let kind = data.get("type").and_then(Value::as_str).or(event).unwrap_or("");
        let oi = data.get("output_index").and_then(Value::as_u64).unwrap_or(0) as usize;
        let ci = data.get("content_index").and_then(Value::as_u64).unwrap_or(0);
        let mut pieces = Vec::new();
        let delta = |field: String| data.get("delta").and_then(Value::as_str).map(|t| (field, t));
        let text = match kind {
            "response.output_text.delta" => delta(format!("text.{ci}")),
            "response.refusal.delta" => delta(format!("refusal.{ci}")),
            "response.reasoning_text.delta" => delta(format!("reasoning.{ci}")),
            "response.reasoning_summary_text.delta" => {
                let si = data.get("summary_index").and_then(Value::as_u64).unwrap_or(0);
                delta(format!("summary.{si}"))
            }
            _ => None,
        };
        if let Some((field, t)) = text {
            pieces.push(Piece::delta(TextKey::new(oi, field), "/delta".into(), t));
        }
        if kind == "response.function_call_arguments.delta" {
            if let Some(t) = data.get("delta").and_then(Value::as_str) {
                pieces.push(Piece {
                    key: TextKey::new(oi, "arguments"),
                    pointer: "/delta".into(),
                    text: t.to_string(),
                    kind: PieceKind::JsonDelta,
                });
            }
        }
        if kind == "response.output_text.delta" {
            if let Some(lp) = data.get("logprobs").and_then(Value::as_array) {
                for (n, e) in lp.iter().enumerate() {
                    if let Some(t) = e.get("token").and_then(Value::as_str) {
                        pieces.push(Piece::delta(
                            TextKey::new(oi, format!("logprobs.{ci}")),
                            format!("/logprobs/{n}/token"),
                            t,
                        ));
                    }
                }
            }
        }
        if kind == "response.function_call_arguments.done" {
            if let Some(a) = data.get("arguments").and_then(Value::as_str) {
                pieces.push(Piece {
                    key: TextKey::new(oi, "whole"),
                    pointer: "/arguments".into(),
                    text: a.to_string(),
                    kind: PieceKind::WholeJson,
                });
            }
        }
        if let Some(item) = data.get("item") {
            argument_pieces(item, "/item", &mut pieces);
        }
        if let Some(r) = data.get("response") {
            argument_pieces(r, "/response", &mut pieces);
        }
        let last = matches!(kind, "response.completed" | "response.incomplete" | "response.failed");
        EventPieces { pieces, known: KNOWN.contains(&kind), last }
    }

    fn stream_choice_of(&self, _data: &Value, _pointer: &str) -> Option<usize> {
        Some(0)
    }

    fn remember(&self, memo: &mut StreamMemo, data: &Value) {
        if let Some(r) = data.get("response") {
            memo.snapshot = Some(r.clone());
        }
        if let Some(n) = data.get("sequence_number").and_then(Value::as_u64) {
            memo.sequence = n + 1;
        }
        memo.choices.insert(0);
    }

    fn cut_stream(&self, memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes> {
        let mut response = memo.snapshot.clone().unwrap_or_else(|| json!({ "object": "response" }));
        withhold_response(&mut response, hit);
        let data = json!({ "type": "response.incomplete", "sequence_number": memo.sequence, "response": response });
        vec![encode(Some("response.incomplete"), &data.to_string())]
    }
}

/// A response withheld by a block: no output, `status: "incomplete"` with
/// `incomplete_details.reason: "content_filter"`, and the rule named under `warden`.
fn withhold_response(body: &mut Value, hit: &RuleHit) {
    if let Some(o) = body.as_object_mut() {
        o.insert("output".into(), json!([]));
        o.insert("status".into(), json!("incomplete"));
        o.insert("incomplete_details".into(), json!({ "reason": "content_filter" }));
        o.remove("output_text");
        o.insert("warden".into(), json!({ "filtered": true, "detail": filter_detail(hit) }));
    }
}
