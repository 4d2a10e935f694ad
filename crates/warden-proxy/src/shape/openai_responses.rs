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
    ResponseInfo, RouteInfo, Shape, StreamMemo, TextKey, Unseen, UnseenKind,
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

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        // A whole answer is the response object; stream events carry it as `response`.
        let r = match data.get("response") {
            Some(r) if r.is_object() => r,
            _ if data.get("object").and_then(Value::as_str) == Some("response") => data,
            _ => return,
        };
        info.id_from(r.get("id"));
        info.model_from(r.get("model"));
        let usage = r.get("usage");
        info.tokens_from(usage.and_then(|u| u.get("input_tokens")), usage.and_then(|u| u.get("output_tokens")));
        let reason = r.get("incomplete_details").and_then(|d| d.get("reason")).filter(|v| v.is_string());
        match reason {
            Some(reason) => info.finish_from(0, Some(reason)),
            None if r.get("status").and_then(Value::as_str).is_some_and(|s| s != "in_progress" && s != "queued") => {
                info.finish_from(0, r.get("status"))
            }
            None => {}
        }
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
        // What a client reads joined (`output_text` joins every text part of every message)
        // is judged joined: the texts, the refusals, the reasoning summaries, the logprob tokens.
        let mut out = Vec::new();
        let Some(items) = body.get("output").and_then(Value::as_array) else { return out };
        let mut joined: [Vec<(String, String)>; 4] = Default::default();
        for (k, it) in items.iter().enumerate() {
            let ptr = format!("/output/{k}");
            if let Some(a) = it.get("arguments").and_then(Value::as_str) {
                out.push(CompletionText::json(a, format!("{ptr}/arguments"), Some(0)));
            }
            for list in ["content", "summary"] {
                let Some(parts) = it.get(list).and_then(Value::as_array) else { continue };
                for (j, p) in parts.iter().enumerate() {
                    for (n, field) in ["text", "refusal"].into_iter().enumerate() {
                        if let Some(t) = p.get(field).and_then(Value::as_str) {
                            let slot = if list == "summary" { 2 } else { n };
                            joined[slot].push((format!("{ptr}/{list}/{j}/{field}"), t.to_string()));
                        }
                    }
                    for (n, e) in p.get("logprobs").and_then(Value::as_array).into_iter().flatten().enumerate() {
                        if let Some(t) = e.get("token").and_then(Value::as_str) {
                            joined[3].push((format!("{ptr}/{list}/{j}/logprobs/{n}/token"), t.to_string()));
                        }
                    }
                }
            }
        }
        for (i, parts) in joined.into_iter().enumerate() {
            if i == 3 {
                if !parts.is_empty() {
                    out.push(CompletionText::joined(parts, Some(0)));
                }
            } else {
                out.extend(CompletionText::of_parts(parts, Some(0)));
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
        let mut pieces = Vec::new();
        let delta = |field: String| data.get("delta").and_then(Value::as_str).map(|t| (field, t));
        // One text per kind across items and parts: a client joins them (`output_text`).
        let text = match kind {
            "response.output_text.delta" => delta("text".to_string()),
            "response.refusal.delta" => delta("refusal".to_string()),
            "response.reasoning_text.delta" => delta("reasoning".to_string()),
            "response.reasoning_summary_text.delta" => delta("summary".to_string()),
            _ => None,
        };
        if let Some((field, t)) = text {
            pieces.push(Piece::delta(TextKey::new(0, field), "/delta".into(), t));
        }
        // A part added with text already in it starts that text (the SDK's snapshot does).
        if kind == "response.content_part.added" {
            if let Some(t) = data.pointer("/part/text").and_then(Value::as_str).filter(|t| !t.is_empty()) {
                pieces.push(Piece::delta(TextKey::new(0, "text"), "/part/text".into(), t));
            }
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
        // Logprob tokens: the deltas' continue one text; every other event's lists (the `.done`
        // copies, `response.completed`) are each judged joined, held to the end of the stream.
        let mut lists = Vec::new();
        logprob_lists(data, "", &mut lists);
        for (ptr, tokens) in lists {
            let key = if kind == "response.output_text.delta" {
                TextKey::new(0, "logprobs")
            } else {
                TextKey::new(
                    0,
                    format!("logprobs@{}{ptr}", data.get("sequence_number").and_then(Value::as_u64).unwrap_or(0)),
                )
            };
            for (n, t) in tokens {
                pieces.push(Piece::delta(key.clone(), format!("{ptr}/{n}/token"), &t));
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

    /// The `delta` of any `*.delta` event (known or not: `custom_tool_call_input.delta`,
    /// `code_interpreter_call_code.delta`...) continues one text.
    fn streams_at(&self, pointer: &str) -> bool {
        pointer == "/delta"
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

/// Every `logprobs` list of token entries under `v`: its pointer and (index, token) pairs.
fn logprob_lists(v: &Value, ptr: &str, out: &mut Vec<(String, Vec<(usize, String)>)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{ptr}/{}", super::pointer_key(k));
                if let (true, Value::Array(entries)) = (k == "logprobs", x) {
                    let tokens: Vec<(usize, String)> = entries
                        .iter()
                        .enumerate()
                        .filter_map(|(n, e)| Some((n, e.get("token")?.as_str()?.to_string())))
                        .collect();
                    if !tokens.is_empty() {
                        out.push((p.clone(), tokens));
                    }
                }
                logprob_lists(x, &p, out);
            }
        }
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| logprob_lists(x, &format!("{ptr}/{i}"), out)),
        _ => {}
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
