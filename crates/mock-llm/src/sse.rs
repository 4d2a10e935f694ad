//! Server-sent event framing, one function per framing the providers use.

use serde_json::Value;

/// `data: {json}\n\n` (OpenAI chat and legacy completions).
pub(crate) fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// `event: NAME\ndata: {json}\n\n` (Anthropic Messages, OpenAI Responses).
pub(crate) fn named(name: &str, v: &Value) -> String {
    format!("event: {name}\ndata: {v}\n\n")
}

/// `data: {json}\r\n\r\n` (Gemini: lines end in CRLF).
pub(crate) fn data_crlf(json: &str) -> String {
    format!("data: {json}\r\n\r\n")
}

/// The OpenAI end-of-stream marker.
pub(crate) const DONE: &str = "data: [DONE]\n\n";
