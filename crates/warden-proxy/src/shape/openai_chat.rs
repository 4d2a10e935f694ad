//! OpenAI chat completions: `POST /v1/chat/completions` (and Azure OpenAI's
//! `/openai/deployments/{d}/chat/completions`, `/openai/v1/chat/completions`).
//!
//! Request: message contents (a string, or parts), tool-call and legacy function-call arguments
//! (JSON text, judged decoded), tool and function definitions. Images, audio and files are not
//! read (reported as unseen), except text files, which the sweep decodes.
//!
//! Completion, per choice: `message.content` (a string or parts), `refusal`, tool-call and
//! function-call arguments (decoded), `reasoning_content` / `reasoning` (vLLM, DeepSeek,
//! OpenRouter), `audio.transcript`, and the logprob tokens joined into one text (so a key
//! split over tokens is found, and rewritten in them). Streamed, the same fields of each delta.

use super::errors::filter_detail;
use super::{
    choice_in, index_of, model_and_stream, seg, CompletionText, DecodeError, DecodedRequest, ErrorShape, EventPieces,
    Piece, PieceKind, ResponseInfo, RouteInfo, Shape, StreamMemo, TextKey, Unseen, UnseenKind,
};
use crate::sse::encode;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use warden_core::{Role, RuleHit, Segment};

/// The prefix of a request segment origin whose text is the decoded strings of JSON text (tool
/// arguments); a redaction is written back into the raw JSON.
pub const JSON_ORIGIN: &str = "json:";

/// OpenAI chat completions.
pub struct OpenAiChat;

/// Request fields that carry no text: ids, roles, enums, options.
const SKIP: &[&str] = &[
    "/model",
    "/messages/*/role",
    "/messages/*/tool_call_id",
    "/messages/*/tool_calls/*/id",
    "/messages/*/tool_calls/*/type",
    "/messages/*/content/*/type",
    "/messages/*/content/*/image_url/detail",
    "/messages/*/content/*/input_audio/data",
    "/messages/*/content/*/input_audio/format",
    "/messages/*/content/*/file/file_id",
    "/messages/*/audio/id",
    "/tools/*/type",
    "/tool_choice",
    "/tool_choice/type",
    "/response_format/type",
    "/stream_options/*",
    "/metadata/*",
    "/user",
    "/service_tier",
    "/reasoning_effort",
    "/modalities/*",
    "/audio/voice",
    "/audio/format",
    "/prompt_cache_key",
    "/safety_identifier",
    "/verbosity",
    "/prediction/type",
];

/// The media parts of one message's content that Warden cannot read.
fn unseen_parts(parts: &[Value], ptr: &str, out: &mut Vec<Unseen>) {
    for (j, p) in parts.iter().enumerate() {
        let media = match p.get("type").and_then(Value::as_str) {
            Some("image_url") | Some("input_audio") => true,
            Some("file") => !p
                .pointer("/file/file_data")
                .and_then(Value::as_str)
                .and_then(super::sweep::data_url)
                .is_some_and(|(m, _)| super::sweep::is_text_media(m)),
            _ => false,
        };
        if media {
            out.push(Unseen { kind: UnseenKind::Media, pointer: format!("{ptr}/{j}") });
        }
    }
}

/// What a chat or legacy completion (whole, or one chunk) says of itself: `id`, `model`,
/// `usage.prompt_tokens` / `completion_tokens` and each choice's `finish_reason`.
pub fn choices_response_info(data: &Value, info: &mut ResponseInfo) {
    info.id_from(data.get("id"));
    info.model_from(data.get("model"));
    let usage = data.get("usage");
    info.tokens_from(usage.and_then(|u| u.get("prompt_tokens")), usage.and_then(|u| u.get("completion_tokens")));
    super::finish_of_choices(info, data.get("choices"), "finish_reason");
}

/// A segment for JSON text (tool arguments): its decoded strings.
pub fn json_segment(role: Role, raw: &str, origin: String) -> Segment {
    let decoded = warden_core::jsontext::JsonText::decode(raw);
    Segment { role, text: decoded.text().to_string(), origin: format!("{JSON_ORIGIN}{origin}") }
}

impl Shape for OpenAiChat {
    fn name(&self) -> &'static str {
        "openai.chat"
    }

    fn operation(&self) -> &'static str {
        "chat"
    }

    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        choices_response_info(data, info);
    }

    fn errors(&self) -> ErrorShape {
        ErrorShape::OpenAi
    }

    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError> {
        let (model, stream) = model_and_stream(body)?;
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| DecodeError("`messages` is required and must be an array".into()))?;
        let mut out = Vec::new();
        let mut unseen = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            let role_name = m.get("role").and_then(Value::as_str).unwrap_or("user");
            // An unknown role is inspected as a user message: rules for users are the broadest.
            let role = Role::from_provider(role_name).unwrap_or(Role::User);
            match m.get("content") {
                Some(Value::String(s)) => out.push(seg(role, s, format!("/messages/{i}/content"))),
                Some(Value::Array(parts)) => {
                    for (j, p) in parts.iter().enumerate() {
                        for field in ["text", "refusal"] {
                            if let Some(t) = p.get(field).and_then(Value::as_str) {
                                out.push(seg(role, t, format!("/messages/{i}/content/{j}/{field}")));
                            }
                        }
                    }
                    unseen_parts(parts, &format!("/messages/{i}/content"), &mut unseen);
                }
                Some(Value::Null) | None => {}
                Some(_) => return Err(DecodeError(format!("`messages[{i}].content` must be a string or an array"))),
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for (k, c) in calls.iter().enumerate() {
                    if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                        let p = format!("/messages/{i}/tool_calls/{k}/function/arguments");
                        out.push(json_segment(Role::Assistant, a, p));
                    }
                }
            }
            if let Some(a) = m.pointer("/function_call/arguments").and_then(Value::as_str) {
                out.push(json_segment(Role::Assistant, a, format!("/messages/{i}/function_call/arguments")));
            }
            if m.get("audio").is_some_and(|a| a.get("id").is_some()) {
                unseen.push(Unseen { kind: UnseenKind::Media, pointer: format!("/messages/{i}/audio") });
            }
        }
        // Tool and function definitions are instructions too: a poisoned description steers the
        // model like a system prompt. (Parameter schemas and their keys are swept.)
        for (list, inner) in [("tools", "/function"), ("functions", "")] {
            if let Some(defs) = body.get(list).and_then(Value::as_array) {
                for (k, t) in defs.iter().enumerate() {
                    if let Some(d) = t.pointer(&format!("{inner}/description")).and_then(Value::as_str) {
                        out.push(seg(Role::System, d, format!("/{list}/{k}{inner}/description")));
                    }
                }
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
        let Some(choices) = body.get("choices").and_then(Value::as_array) else { return out };
        for (k, c) in choices.iter().enumerate() {
            let choice = Some(index_of(c, k));
            let base = format!("/choices/{k}/message");
            let Some(m) = c.get("message") else { continue };
            let parts: Vec<(String, String)> = match m.get("content") {
                Some(Value::String(t)) => vec![(format!("{base}/content"), t.clone())],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .filter_map(|(j, p)| {
                        Some((format!("{base}/content/{j}/text"), p.get("text")?.as_str()?.to_string()))
                    })
                    .collect(),
                _ => Vec::new(),
            };
            out.extend(CompletionText::of_parts(parts, choice));
            for field in ["refusal", "reasoning_content", "reasoning"] {
                if let Some(t) = m.get(field).and_then(Value::as_str) {
                    out.push(CompletionText::string(t, format!("{base}/{field}"), choice));
                }
            }
            if let Some(t) = m.pointer("/audio/transcript").and_then(Value::as_str) {
                out.push(CompletionText::string(t, format!("{base}/audio/transcript"), choice));
            }
            if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                for (j, call) in calls.iter().enumerate() {
                    if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                        out.push(CompletionText::json(a, format!("{base}/tool_calls/{j}/function/arguments"), choice));
                    }
                }
            }
            if let Some(a) = m.pointer("/function_call/arguments").and_then(Value::as_str) {
                out.push(CompletionText::json(a, format!("{base}/function_call/arguments"), choice));
            }
            logprob_texts(c, &format!("/choices/{k}"), choice, &mut out);
        }
        out
    }

    fn choice_of(&self, body: &Value, pointer: &str) -> Option<usize> {
        choice_in(body, "choices", pointer)
    }

    fn withhold(&self, body: &mut Value, choices: &BTreeSet<Option<usize>>, hit: &RuleHit) {
        withhold_choices(
            body,
            choices,
            hit,
            json!({ "message": { "role": "assistant", "content": "", "refusal": null } }),
        );
    }

    fn stream_pieces(&self, _event: Option<&str>, data: &Value) -> EventPieces {
        let mut pieces = Vec::new();
        let known = data.get("choices").is_some() || data.get("error").is_some();
        if let Some(choices) = data.get("choices").and_then(Value::as_array) {
            for (k, c) in choices.iter().enumerate() {
                let choice = index_of(c, k);
                let base = format!("/choices/{k}/delta");
                // `get` chains, not `pointer`: this runs for every chunk.
                let delta = c.get("delta");
                for field in ["content", "refusal", "reasoning_content", "reasoning"] {
                    match delta.and_then(|d| d.get(field)) {
                        Some(Value::String(t)) => {
                            pieces.push(Piece::delta(TextKey::new(choice, field), format!("{base}/{field}"), t))
                        }
                        // Content given as parts continues the same text.
                        Some(Value::Array(parts)) => {
                            for (j, p) in parts.iter().enumerate() {
                                if let Some(t) = p.get("text").and_then(Value::as_str) {
                                    let ptr = format!("{base}/{field}/{j}/text");
                                    pieces.push(Piece::delta(TextKey::new(choice, field), ptr, t));
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(t) = delta.and_then(|d| d.get("audio")?.get("transcript")?.as_str()) {
                    pieces.push(Piece::delta(TextKey::new(choice, "audio"), format!("{base}/audio/transcript"), t));
                }
                if let Some(calls) = delta.and_then(|d| d.get("tool_calls")?.as_array()) {
                    for (j, call) in calls.iter().enumerate() {
                        let idx = index_of(call, j);
                        if let Some(a) = call.get("function").and_then(|f| f.get("arguments")?.as_str()) {
                            pieces.push(Piece {
                                key: TextKey::new(choice, format!("tool.{idx}")),
                                pointer: format!("{base}/tool_calls/{j}/function/arguments"),
                                text: a.to_string(),
                                kind: PieceKind::JsonDelta,
                            });
                        }
                    }
                }
                if let Some(a) = delta.and_then(|d| d.get("function_call")?.get("arguments")?.as_str()) {
                    pieces.push(Piece {
                        key: TextKey::new(choice, "function_call"),
                        pointer: format!("{base}/function_call/arguments"),
                        text: a.to_string(),
                        kind: PieceKind::JsonDelta,
                    });
                }
                logprob_pieces(c, &format!("/choices/{k}"), choice, &mut pieces);
            }
        }
        EventPieces { pieces, known, last: false }
    }

    fn streams_at(&self, pointer: &str) -> bool {
        let Some(rest) = pointer.strip_prefix("/choices/").and_then(|r| r.split_once("/delta/")).map(|(_, r)| r) else {
            return false;
        };
        // Identifiers given once are judged whole.
        let fixed = match rest.strip_prefix("tool_calls/") {
            Some(call) => call.split_once('/').is_some_and(|(_, f)| matches!(f, "id" | "type" | "function/name")),
            None => rest == "role",
        };
        !fixed
    }

    fn remember(&self, memo: &mut StreamMemo, data: &Value) {
        remember_choices(memo, data);
    }

    fn blank_stream_choice(&self, data: &mut Value, choice: usize) -> bool {
        blank_choice(data, choice, false)
    }

    fn end_stream_choice(&self, memo: &StreamMemo, choice: usize, hit: &RuleHit) -> Option<Bytes> {
        let one = StreamMemo { choices: [choice].into(), ..memo.clone() };
        Some(encode(None, &cut_chunk(&one, false, hit).to_string()))
    }

    fn cut_stream(&self, memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes> {
        vec![encode(None, &cut_chunk(memo, false, hit).to_string()), encode(None, "[DONE]")]
    }
}

/// Rebuilds every withheld choice (`None` in `choices`: all) of an OpenAI-shaped body as `empty`
/// plus `index`, `logprobs: null`, `finish_reason: "content_filter"` and the rule: nothing of
/// the choice's text survives in any field.
pub fn withhold_choices(body: &mut Value, choices: &BTreeSet<Option<usize>>, hit: &RuleHit, empty: Value) {
    let Some(list) = body.get_mut("choices").and_then(Value::as_array_mut) else { return };
    for (k, c) in list.iter_mut().enumerate() {
        let index = index_of(c, k);
        if !choices.contains(&None) && !choices.contains(&Some(index)) {
            continue;
        }
        let mut new = empty.clone();
        new["index"] = json!(index);
        new["logprobs"] = Value::Null;
        new["finish_reason"] = json!("content_filter");
        new["content_filter_results"] = json!({ "warden": { "filtered": true, "detail": filter_detail(hit) } });
        *c = new;
    }
}

/// Blanks the entries of choice `choice` in a stream chunk: an empty delta (or text) with no
/// logprobs, so the entries of the other choices keep their positions. Returns whether any was
/// there.
pub fn blank_choice(data: &mut Value, choice: usize, legacy: bool) -> bool {
    let Some(list) = data.get_mut("choices").and_then(Value::as_array_mut) else { return false };
    let mut changed = false;
    for (k, c) in list.iter_mut().enumerate() {
        if index_of(c, k) != choice {
            continue;
        }
        *c = if legacy {
            json!({ "index": choice, "text": "", "logprobs": null, "finish_reason": null })
        } else {
            json!({ "index": choice, "delta": {}, "logprobs": null, "finish_reason": null })
        };
        changed = true;
    }
    changed
}

/// Keeps the first chunk and every choice index seen (OpenAI shapes).
pub fn remember_choices(memo: &mut StreamMemo, data: &Value) {
    if memo.first.is_none() {
        memo.first = Some(data.clone());
    }
    if let Some(cs) = data.get("choices").and_then(Value::as_array) {
        for (k, c) in cs.iter().enumerate() {
            memo.choices.insert(index_of(c, k));
        }
    }
}

/// The logprob tokens of a choice (chat `logprobs.content` / `logprobs.refusal`, legacy
/// `logprobs.tokens`), each list joined into one text.
pub fn logprob_texts(c: &Value, base: &str, choice: Option<usize>, out: &mut Vec<CompletionText>) {
    for (list, field) in [("content", Some("token")), ("refusal", Some("token")), ("tokens", None)] {
        let Some(entries) = c.pointer(&format!("/logprobs/{list}")).and_then(Value::as_array) else { continue };
        let parts: Vec<(String, String)> = entries
            .iter()
            .enumerate()
            .filter_map(|(j, e)| {
                let (v, p) = match field {
                    Some(f) => (e.get(f)?, format!("{base}/logprobs/{list}/{j}/{f}")),
                    None => (e, format!("{base}/logprobs/{list}/{j}")),
                };
                Some((p, v.as_str()?.to_string()))
            })
            .collect();
        if !parts.is_empty() {
            out.push(CompletionText::joined(parts, choice));
        }
    }
}

/// The logprob tokens of a streamed choice, as deltas of one text per list.
pub fn logprob_pieces(c: &Value, base: &str, choice: usize, out: &mut Vec<Piece>) {
    for (list, field) in [("content", Some("token")), ("refusal", Some("token")), ("tokens", None)] {
        let Some(entries) = c.get("logprobs").and_then(|l| l.get(list)?.as_array()) else { continue };
        for (j, e) in entries.iter().enumerate() {
            let (v, p) = match field {
                Some(f) => (e.get(f), format!("{base}/logprobs/{list}/{j}/{f}")),
                None => (Some(e), format!("{base}/logprobs/{list}/{j}")),
            };
            if let Some(t) = v.and_then(Value::as_str) {
                out.push(Piece::delta(TextKey::new(choice, format!("logprobs.{list}")), p, t));
            }
        }
    }
}

/// After a logprob token at `pointer` was rewritten: its `bytes` follow the new token and its
/// alternatives (which would repeat the old one) are dropped. Other pointers are left alone.
pub fn fix_logprob_siblings(body: &mut Value, pointer: &str) {
    if let Some(parent) = pointer.strip_suffix("/token") {
        if !parent.contains("/logprobs/") {
            return;
        }
        let token = body.pointer(pointer).and_then(Value::as_str).map(|t| t.as_bytes().to_vec());
        if let Some(Value::Object(o)) = body.pointer_mut(parent) {
            if let (Some(b), Some(t)) = (o.get_mut("bytes"), token) {
                if b.is_array() {
                    *b = json!(t);
                }
            }
            if o.contains_key("top_logprobs") {
                o.insert("top_logprobs".into(), json!([]));
            }
        }
    } else if let Some((list, j)) = pointer.rsplit_once("/logprobs/tokens/") {
        // Legacy completions: the alternatives of token j are `top_logprobs[j]`.
        if let Some(v) = body.pointer_mut(&format!("{list}/logprobs/top_logprobs/{j}")) {
            *v = json!({});
        }
    }
}

/// The last chunk of a cut stream: each open choice ends with `finish_reason: "content_filter"`.
pub fn cut_chunk(memo: &StreamMemo, legacy: bool, hit: &RuleHit) -> Value {
    let get = |k: &str| memo.first.as_ref().and_then(|f| f.get(k)).cloned().unwrap_or(Value::Null);
    let object = if legacy { "text_completion" } else { "chat.completion.chunk" };
    let mut indices: Vec<usize> = memo.choices.iter().copied().collect();
    if indices.is_empty() {
        indices.push(0);
    }
    let choices: Vec<Value> = indices
        .iter()
        .map(|&i| {
            let mut c = if legacy {
                json!({ "index": i, "text": "", "logprobs": null, "finish_reason": "content_filter" })
            } else {
                json!({ "index": i, "delta": {}, "logprobs": null, "finish_reason": "content_filter" })
            };
            c["content_filter_results"] = json!({ "warden": { "filtered": true, "detail": filter_detail(hit) } });
            c
        })
        .collect();
    json!({ "id": get("id"), "object": object, "created": get("created"), "model": get("model"), "choices": choices })
}
