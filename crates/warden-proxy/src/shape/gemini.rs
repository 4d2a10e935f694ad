//! Google Gemini: `POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse` (also under `/v1/`).
//!
//! Request: `systemInstruction` (system), `contents[].parts[].text` (user, or assistant for role
//! `model`), function call arguments and responses (swept), function descriptions. Inline media
//! and file references are not read (unseen), nor is `cachedContent` (provider state).
//!
//! Completion, per candidate: the parts' text (thoughts apart); the rest is swept. A stream is
//! SSE only: without `alt=sse` Gemini streams one JSON array, which cannot be judged piece by
//! piece, so Warden refuses it with a 400 that says to add `alt=sse`. A blocked prompt gets what
//! Gemini itself answers to one: `promptFeedback.blockReason`, no candidates. A cut stream ends
//! with a chunk whose candidates have `finishReason: "SAFETY"` and no parts.

use super::errors::filter_detail;
use super::{
    choice_in, index_of, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces, Piece,
    ResponseInfo, RouteInfo, Shape, StreamMemo, TextKey, Unseen, UnseenKind,
};
use crate::sse::encode;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit};

/// Google Gemini.
pub struct Gemini;

const SKIP: &[&str] = &[
    "/model",
    "/contents/*/role",
    "/contents/*/parts/*/inlineData/mimeType",
    "/contents/*/parts/*/inline_data/mime_type",
    "/contents/*/parts/*/fileData/mimeType",
    "/contents/*/parts/*/thoughtSignature",
    "/generationConfig/*",
    "/generation_config/*",
    "/safetySettings/*/*",
    "/safety_settings/*/*",
    "/cachedContent",
    "/cached_content",
    "/toolConfig/functionCallingConfig/mode",
];

fn text_parts(parts: &[Value], ptr: &str, role: Role, out: &mut Vec<warden_core::Segment>, unseen: &mut Vec<Unseen>) {
    for (j, p) in parts.iter().enumerate() {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            out.push(seg(role, t, format!("{ptr}/{j}/text")));
        }
        let media = ["inlineData", "inline_data"].iter().any(|k| {
            p.get(*k).is_some_and(|d| {
                let m = d.get("mimeType").or_else(|| d.get("mime_type")).and_then(Value::as_str).unwrap_or("");
                !super::sweep::is_text_media(m)
            })
        }) || p.get("fileData").is_some()
            || p.get("file_data").is_some();
        if media {
            unseen.push(Unseen { kind: UnseenKind::Media, pointer: format!("{ptr}/{j}") });
        }
    }
}

impl Shape for Gemini {
    fn name(&self) -> &'static str {
        "gemini.generate_content"
    }

    fn operation(&self) -> &'static str {
        "generate_content"
    }

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        info.id_from(data.get("responseId"));
        info.model_from(data.get("modelVersion"));
        let usage = data.get("usageMetadata");
        info.tokens_from(
            usage.and_then(|u| u.get("promptTokenCount")),
            usage.and_then(|u| u.get("candidatesTokenCount")),
        );
        super::finish_of_choices(info, data.get("candidates"), "finishReason");
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::Gemini
    }

    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        if !body.is_object() {
            return Err(DecodeError("the request body must be a JSON object".into()));
        }
        let stream = route.path_streams;
        if stream && !route.query.as_deref().unwrap_or("").split('&').any(|kv| kv == "alt=sse") {
            return Err(DecodeError(
                "streamGenerateContent must be called with `?alt=sse`: Warden judges a stream event by event, and \
                 Gemini's default stream is one JSON array that cannot be judged until it ends"
                    .into(),
            ));
        }
        let mut out = Vec::new();
        let mut unseen = Vec::new();
        for key in ["systemInstruction", "system_instruction"] {
            match body.get(key) {
                Some(Value::String(s)) => out.push(seg(Role::System, s, format!("/{key}"))),
                Some(si) => {
                    if let Some(parts) = si.get("parts").and_then(Value::as_array) {
                        text_parts(parts, &format!("/{key}/parts"), Role::System, &mut out, &mut unseen);
                    }
                }
                None => {}
            }
        }
        match body.get("contents") {
            Some(Value::Array(contents)) => {
                for (i, c) in contents.iter().enumerate() {
                    let role = match c.get("role").and_then(Value::as_str) {
                        Some("model") => Role::Assistant,
                        Some("function") | Some("tool") => Role::Tool,
                        _ => Role::User,
                    };
                    if let Some(parts) = c.get("parts").and_then(Value::as_array) {
                        text_parts(parts, &format!("/contents/{i}/parts"), role, &mut out, &mut unseen);
                    }
                }
            }
            _ => return Err(DecodeError("`contents` is required and must be an array".into())),
        }
        if let Some(tools) = body.get("tools").and_then(Value::as_array) {
            for (k, t) in tools.iter().enumerate() {
                for list in ["functionDeclarations", "function_declarations"] {
                    if let Some(fs) = t.get(list).and_then(Value::as_array) {
                        for (n, f) in fs.iter().enumerate() {
                            if let Some(d) = f.get("description").and_then(Value::as_str) {
                                out.push(seg(Role::System, d, format!("/tools/{k}/{list}/{n}/description")));
                            }
                        }
                    }
                }
            }
        }
        for key in ["cachedContent", "cached_content"] {
            if body.get(key).is_some() {
                unseen.push(Unseen { kind: UnseenKind::ProviderState, pointer: format!("/{key}") });
            }
        }
        let model = route.path_model.clone().unwrap_or_default();
        Ok(DecodedRequest { model, stream, segments: out, unseen })
    }

    fn request_skip(&self) -> &'static [&'static str] {
        SKIP
    }

    fn completion_texts(&self, body: &Value) -> Vec<CompletionText> {
        let mut out = Vec::new();
        let Some(cands) = body.get("candidates").and_then(Value::as_array) else { return out };
        for (k, c) in cands.iter().enumerate() {
            let choice = Some(index_of(c, k));
            if let Some(parts) = c.pointer("/content/parts").and_then(Value::as_array) {
                // `response.text` joins the parts: so are they judged.
                let parts: Vec<(String, String)> = parts
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| {
                        Some((format!("/candidates/{k}/content/parts/{j}/text"), p.get("text")?.as_str()?.to_string()))
                    })
                    .collect();
                out.extend(CompletionText::of_parts(parts, choice));
            }
        }
        out
    }

    fn choice_of(&self, body: &Value, pointer: &str) -> Option<usize> {
        choice_in(body, "candidates", pointer)
    }

    fn withhold(&self, body: &mut Value, choices: &BTreeSet<Option<usize>>, hit: &RuleHit) {
        let Some(list) = body.get_mut("candidates").and_then(Value::as_array_mut) else { return };
        for (k, c) in list.iter_mut().enumerate() {
            let index = index_of(c, k);
            if choices.contains(&None) || choices.contains(&Some(index)) {
                *c = withheld_candidate(index, hit);
            }
        }
    }

    fn stream_pieces(&self, _event: Option<&str>, data: &Value) -> EventPieces {
        let mut pieces = Vec::new();
        if let Some(cands) = data.get("candidates").and_then(Value::as_array) {
            for (k, c) in cands.iter().enumerate() {
                let choice = index_of(c, k);
                let Some(parts) = c.pointer("/content/parts").and_then(Value::as_array) else { continue };
                for (j, p) in parts.iter().enumerate() {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        let field =
                            if p.get("thought").and_then(Value::as_bool) == Some(true) { "thought" } else { "text" };
                        pieces.push(Piece::delta(
                            TextKey::new(choice, field),
                            format!("/candidates/{k}/content/parts/{j}/text"),
                            t,
                        ));
                    }
                }
            }
        }
        let known = ["candidates", "usageMetadata", "promptFeedback", "error", "modelVersion"]
            .iter()
            .any(|k| data.get(*k).is_some());
        EventPieces { pieces, known, last: false }
    }

    fn remember(&self, memo: &mut StreamMemo, data: &Value) {
        if memo.first.is_none() {
            memo.first = Some(data.clone());
        }
        if let Some(cs) = data.get("candidates").and_then(Value::as_array) {
            for (k, c) in cs.iter().enumerate() {
                memo.choices.insert(index_of(c, k));
            }
        }
    }

    fn cut_stream(&self, memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes> {
        let mut indices: Vec<usize> = memo.choices.iter().copied().collect();
        if indices.is_empty() {
            indices.push(0);
        }
        let mut chunk =
            json!({ "candidates": indices.iter().map(|&i| withheld_candidate(i, hit)).collect::<Vec<_>>() });
        if let Some(v) = memo.first.as_ref().and_then(|f| f.get("modelVersion")) {
            chunk["modelVersion"] = v.clone();
        }
        if let Some(v) = memo.first.as_ref().and_then(|f| f.get("responseId")) {
            chunk["responseId"] = v.clone();
        }
        vec![encode(None, &chunk.to_string())]
    }
}

fn withheld_candidate(index: usize, hit: &RuleHit) -> Value {
    json!({
        "index": index,
        "content": { "role": "model", "parts": [] },
        "finishReason": "SAFETY",
        "finishMessage": super::errors::refusal_message("completion", hit),
        "safetyRatings": [],
        "warden": filter_detail(hit)["warden"].clone(),
    })
}
