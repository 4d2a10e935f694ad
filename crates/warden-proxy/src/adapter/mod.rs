//! Provider adapters: the `decode` stage. Each turns a provider's JSON into the provider-neutral
//! [`Exchange`] segments, finds the completion's texts (whole or streamed), and writes the
//! guard's changes back in the provider's own shape.
//!
//! Every text is located by a JSON pointer, so a redaction is written back exactly where the text
//! was, and everything else in the body is left as it came.
//!
//! The known places (messages, system prompts, tool results, tool definitions) are read with their
//! roles. Then every *other* string of the request is swept up as `tool` text ([`sweep`]), except
//! a short list of keys that carry no text the model reads (ids, roles, the model name, base64
//! data): a field a provider adds tomorrow, or one this adapter does not know, cannot carry a
//! trigger past the guard.

pub mod anthropic;
pub mod openai;

use serde_json::Value;
use std::collections::HashSet;
use warden_core::{Provider, Role, Segment};

/// A guarded API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/completions`.
    OpenAiCompletions,
    /// `POST /v1/messages`.
    AnthropicMessages,
}

impl Api {
    /// The API shape.
    pub fn provider(self) -> Provider {
        match self {
            Api::OpenAiChat | Api::OpenAiCompletions => Provider::OpenAi,
            Api::AnthropicMessages => Provider::Anthropic,
        }
    }
}

/// The request body does not have the provider's shape.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// What the decode stage reads from a request body.
#[derive(Debug)]
pub struct DecodedRequest {
    /// `model`, or empty.
    pub model: String,
    /// `stream`.
    pub stream: bool,
    /// The texts, in body order.
    pub segments: Vec<Segment>,
}

/// One text of a completion: which choice (OpenAI) or content block it belongs to.
#[derive(Debug, Clone)]
pub struct CompletionText {
    /// Where the text is.
    pub segment: Segment,
    /// The OpenAI choice index (0 for Anthropic).
    pub choice: usize,
}

/// A piece of streamed text inside one SSE event.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Which text it continues: `c0` (choice 0 content), `c0.t1` (choice 0, tool call 1), `b2`
    /// (Anthropic content block 2)...
    pub key: String,
    /// The OpenAI choice index (0 for Anthropic).
    pub choice: usize,
    /// Where the piece is in the event's JSON.
    pub pointer: String,
    /// The text.
    pub text: String,
}

/// Decodes a request body.
pub fn decode_request(api: Api, body: &Value) -> Result<DecodedRequest, DecodeError> {
    let obj = body.as_object().ok_or_else(|| DecodeError("the request body must be a JSON object".into()))?;
    let model = match obj.get("model") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(DecodeError("`model` must be a string".into())),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(DecodeError("`stream` must be a boolean".into())),
    };
    let mut segments = match api {
        Api::OpenAiChat => openai::chat_segments(body)?,
        Api::OpenAiCompletions => openai::completion_prompt_segments(body)?,
        Api::AnthropicMessages => anthropic::segments(body)?,
    };
    let covered: HashSet<String> = segments.iter().map(|s| s.origin.clone()).collect();
    sweep(body, "", &covered, &mut segments);
    Ok(DecodedRequest { model, stream, segments })
}

/// The texts of a whole (non-streamed) completion.
pub fn completion_texts(api: Api, body: &Value) -> Vec<CompletionText> {
    match api {
        Api::OpenAiChat | Api::OpenAiCompletions => openai::completion_texts(body),
        Api::AnthropicMessages => anthropic::completion_texts(body),
    }
}

/// The streamed text pieces an SSE event carries.
pub fn stream_pieces(api: Api, event: Option<&str>, data: &Value) -> Vec<Piece> {
    match api {
        Api::OpenAiChat | Api::OpenAiCompletions => openai::stream_pieces(data),
        Api::AnthropicMessages => anthropic::stream_pieces(event, data),
    }
}

/// Keys whose string values are not text a model reads.
const NOT_TEXT: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "tool_call_id",
    "tool_use_id",
    "media_type",
    "stop",
    "stop_sequences",
    "user",
    "service_tier",
    "reasoning_effort",
    "signature",
    "cache_control",
    "metadata",
    "image_url",
    "input_audio",
    "file",
    "stream_options",
    "logit_bias",
    "modalities",
    "voice",
    "encrypted_content",
];

/// Adds, as `tool` text, every string under `v` that no known place covered, skipping [`NOT_TEXT`]
/// keys and base64 payloads.
pub fn sweep(v: &Value, pointer: &str, covered: &HashSet<String>, out: &mut Vec<Segment>) {
    match v {
        Value::String(s) if !s.is_empty() && !covered.contains(pointer) => {
            out.push(Segment { role: Role::Tool, text: s.clone(), origin: pointer.to_string() })
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                sweep(x, &format!("{pointer}/{i}"), covered, out);
            }
        }
        Value::Object(o) => {
            let base64 = o.get("type").and_then(Value::as_str) == Some("base64");
            for (k, x) in o {
                if NOT_TEXT.contains(&k.as_str()) || (base64 && k == "data") {
                    continue;
                }
                sweep(x, &format!("{pointer}/{}", pointer_key(k)), covered, out);
            }
        }
        _ => {}
    }
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn pointer_key(k: &str) -> String {
    k.replace('~', "~0").replace('/', "~1")
}

/// Adds a segment for every string leaf under `v` (tool inputs are JSON objects).
pub fn string_leaves(v: &Value, pointer: &str, role: Role, out: &mut Vec<Segment>) {
    match v {
        Value::String(s) => out.push(Segment { role, text: s.clone(), origin: pointer.to_string() }),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                string_leaves(x, &format!("{pointer}/{i}"), role, out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                string_leaves(x, &format!("{pointer}/{}", pointer_key(k)), role, out);
            }
        }
        _ => {}
    }
}

/// Replaces the string at `pointer` (if there is one).
pub fn set_string(body: &mut Value, pointer: &str, text: String) -> bool {
    match body.pointer_mut(pointer) {
        Some(v @ Value::String(_)) => {
            *v = Value::String(text);
            true
        }
        _ => false,
    }
}
