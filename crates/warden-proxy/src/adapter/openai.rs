//! The OpenAI shape: `/v1/chat/completions` and `/v1/completions`.

use super::{string_leaves, CompletionText, DecodeError, Piece};
use serde_json::{json, Value};
use warden_core::{Role, RuleHit, Segment};

fn seg(role: Role, text: &str, origin: String) -> Segment {
    Segment { role, text: text.to_string(), origin }
}

/// The texts of a chat request: message contents (string or text parts), tool-call arguments,
/// and tool descriptions (a poisoned tool definition is an instruction too).
pub fn chat_segments(body: &Value) -> Result<Vec<Segment>, DecodeError> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| DecodeError("`messages` is required and must be an array".into()))?;
    let mut out = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role_name = m.get("role").and_then(Value::as_str).unwrap_or("user");
        // An unknown role is inspected as a user message: rules for users are the broadest.
        let role = Role::from_provider(role_name).unwrap_or(Role::User);
        match m.get("content") {
            Some(Value::String(s)) => out.push(seg(role, s, format!("/messages/{i}/content"))),
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        out.push(seg(role, t, format!("/messages/{i}/content/{j}/text")));
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => return Err(DecodeError(format!("`messages[{i}].content` must be a string or an array"))),
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for (k, c) in calls.iter().enumerate() {
                if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                    out.push(seg(Role::Assistant, a, format!("/messages/{i}/tool_calls/{k}/function/arguments")));
                }
            }
        }
        if let Some(a) = m.pointer("/function_call/arguments").and_then(Value::as_str) {
            out.push(seg(Role::Assistant, a, format!("/messages/{i}/function_call/arguments")));
        }
    }
    // Tool and function definitions are instructions too: a poisoned description or parameter
    // schema steers the model like a system prompt.
    for (list, inner) in [("tools", "/function"), ("functions", "")] {
        if let Some(defs) = body.get(list).and_then(Value::as_array) {
            for (k, t) in defs.iter().enumerate() {
                if let Some(f) = t.pointer(inner) {
                    for field in ["description", "parameters"] {
                        if let Some(v) = f.get(field) {
                            string_leaves(v, &format!("/{list}/{k}{inner}/{field}"), Role::System, &mut out);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The texts of a legacy completions request: `prompt` (string or list of strings) and `suffix`.
/// Token-id prompts cannot be inspected, so they are refused.
pub fn completion_prompt_segments(body: &Value) -> Result<Vec<Segment>, DecodeError> {
    let mut out = Vec::new();
    match body.get("prompt") {
        Some(Value::String(s)) => out.push(seg(Role::User, s, "/prompt".into())),
        Some(Value::Array(a)) => {
            for (i, p) in a.iter().enumerate() {
                match p {
                    Value::String(s) => out.push(seg(Role::User, s, format!("/prompt/{i}"))),
                    _ => {
                        return Err(DecodeError(
                            "`prompt` must be a string or a list of strings: token-id prompts cannot be inspected by Warden".into(),
                        ))
                    }
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(DecodeError("`prompt` must be a string or a list of strings".into())),
    }
    if let Some(s) = body.get("suffix").and_then(Value::as_str) {
        out.push(seg(Role::User, s, "/suffix".into()));
    }
    Ok(out)
}

fn choice_index(c: &Value, fallback: usize) -> usize {
    c.get("index").and_then(Value::as_u64).map_or(fallback, |i| i as usize)
}

/// The texts of a whole completion: each choice's content (or legacy `text`) and tool-call
/// arguments.
pub fn completion_texts(body: &Value) -> Vec<CompletionText> {
    let mut out = Vec::new();
    let Some(choices) = body.get("choices").and_then(Value::as_array) else { return out };
    for (k, c) in choices.iter().enumerate() {
        let choice = choice_index(c, k);
        let mut segs = Vec::new();
        if let Some(t) = c.pointer("/message/content").and_then(Value::as_str) {
            segs.push(seg(Role::Assistant, t, format!("/choices/{k}/message/content")));
        }
        if let Some(t) = c.pointer("/message/refusal").and_then(Value::as_str) {
            segs.push(seg(Role::Assistant, t, format!("/choices/{k}/message/refusal")));
        }
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            segs.push(seg(Role::Assistant, t, format!("/choices/{k}/text")));
        }
        if let Some(calls) = c.pointer("/message/tool_calls").and_then(Value::as_array) {
            for (j, call) in calls.iter().enumerate() {
                if let Some(a) = call.pointer("/function/arguments") {
                    string_leaves(
                        a,
                        &format!("/choices/{k}/message/tool_calls/{j}/function/arguments"),
                        Role::Assistant,
                        &mut segs,
                    );
                }
            }
        }
        out.extend(segs.into_iter().map(|segment| CompletionText { segment, choice }));
    }
    out
}

/// What the refusal says about the rule behind it, in Azure's `innererror` style. It names the
/// policy, rule and detector, not what matched: the phrase lists stay private (an attacker learns
/// nothing to probe them with); the decision record has the rest.
pub fn filter_detail(hit: &RuleHit) -> Value {
    json!({
        "code": "ResponsibleAIPolicyViolation",
        "warden": { "policy": hit.policy, "rule": hit.rule, "detector": hit.detector }
    })
}

/// Withholds the content of the blocked choices of a whole completion and marks them
/// `finish_reason: "content_filter"`.
pub fn withhold(body: &mut Value, blocked_choices: &[usize], hit: &RuleHit) {
    let Some(choices) = body.get_mut("choices").and_then(Value::as_array_mut) else { return };
    for (k, c) in choices.iter_mut().enumerate() {
        if !blocked_choices.contains(&choice_index(c, k)) {
            continue;
        }
        if let Some(m) = c.get_mut("message").and_then(Value::as_object_mut) {
            m.insert("content".into(), Value::String(String::new()));
            m.remove("tool_calls");
            m.remove("function_call");
        }
        if let Some(o) = c.as_object_mut() {
            if o.contains_key("text") {
                o.insert("text".into(), Value::String(String::new()));
            }
            o.insert("finish_reason".into(), Value::String("content_filter".into()));
            o.insert(
                "content_filter_results".into(),
                json!({ "warden": { "filtered": true, "detail": filter_detail(hit) } }),
            );
        }
    }
}

/// The text pieces of one streamed chunk (`data: {...}`).
pub fn stream_pieces(data: &Value) -> Vec<Piece> {
    let mut out = Vec::new();
    let Some(choices) = data.get("choices").and_then(Value::as_array) else { return out };
    for (k, c) in choices.iter().enumerate() {
        let choice = choice_index(c, k);
        if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str) {
            out.push(Piece {
                key: format!("c{choice}"),
                choice,
                pointer: format!("/choices/{k}/delta/content"),
                text: t.into(),
            });
        }
        if let Some(t) = c.pointer("/delta/refusal").and_then(Value::as_str) {
            out.push(Piece {
                key: format!("c{choice}.refusal"),
                choice,
                pointer: format!("/choices/{k}/delta/refusal"),
                text: t.into(),
            });
        }
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            out.push(Piece {
                key: format!("c{choice}"),
                choice,
                pointer: format!("/choices/{k}/text"),
                text: t.into(),
            });
        }
        if let Some(calls) = c.pointer("/delta/tool_calls").and_then(Value::as_array) {
            for (j, call) in calls.iter().enumerate() {
                let idx = call.get("index").and_then(Value::as_u64).unwrap_or(j as u64);
                if let Some(a) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    out.push(Piece {
                        key: format!("c{choice}.t{idx}"),
                        choice,
                        pointer: format!("/choices/{k}/delta/tool_calls/{j}/function/arguments"),
                        text: a.into(),
                    });
                }
            }
        }
    }
    out
}

/// The last chunk of a cut stream: each open choice ends with `finish_reason: "content_filter"`.
/// `first` is the first chunk seen (for `id`, `created`, `model`, `object`).
pub fn cut_chunk(first: Option<&Value>, choices: &[usize], legacy: bool, hit: &RuleHit) -> Value {
    let get = |k: &str| first.and_then(|f| f.get(k)).cloned().unwrap_or(Value::Null);
    let object = if legacy { "text_completion" } else { "chat.completion.chunk" };
    let choices: Vec<Value> = choices
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
