//! Errors and refusals in each provider family's own shape, which its clients already handle:
//!
//! - OpenAI (and Azure OpenAI): `{"error": {"message", "type", "param", "code"}}`; a blocked prompt
//!   is a 400 with `code: "content_filter"` and an `innererror` naming the rule, as Azure OpenAI's
//!   content filter answers.
//! - Anthropic: `{"type": "error", "error": {"type", "message"}}`.
//! - Gemini: `{"error": {"code", "message", "status"}}`; a blocked prompt is what Gemini itself
//!   answers: 200 with `promptFeedback.blockReason` and no candidates.

use crate::sse::encode;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};
use warden_core::RuleHit;

/// A family of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// OpenAI and Azure OpenAI.
    OpenAi,
    /// Anthropic.
    Anthropic,
    /// Google Gemini.
    Gemini,
}

/// A refusal message naming the rule (not what matched: the lists stay private).
pub fn refusal_message(what: &str, hit: &RuleHit) -> String {
    format!("Warden blocked the {what}: policy `{}`, rule `{}` ({} detector)", hit.policy, hit.rule, hit.detector)
}

/// What a refusal says about the rule behind it, in Azure's `innererror` style.
pub fn filter_detail(hit: &RuleHit) -> Value {
    json!({
        "code": "ResponsibleAIPolicyViolation",
        "warden": { "policy": hit.policy, "rule": hit.rule, "detector": hit.detector }
    })
}

/// Google's `status` names for HTTP statuses.
fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 411 | 415 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "UNIMPLEMENTED",
        408 | 504 => "DEADLINE_EXCEEDED",
        413 => "OUT_OF_RANGE",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ if status.is_server_error() => "INTERNAL",
        _ => "FAILED_PRECONDITION",
    }
}

impl ErrorShape {
    /// An error body; `code` is a short machine-readable code (OpenAI `error.code`).
    pub fn error_body(self, status: StatusCode, code: &str, message: &str) -> Value {
        match self {
            ErrorShape::OpenAi => {
                let kind = if status.is_server_error() { "server_error" } else { "invalid_request_error" };
                json!({ "error": { "message": message, "type": kind, "param": null, "code": code } })
            }
            ErrorShape::Anthropic => {
                let kind = match status {
                    StatusCode::NOT_FOUND => "not_found_error",
                    StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
                    StatusCode::GATEWAY_TIMEOUT => "timeout_error",
                    StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
                    StatusCode::SERVICE_UNAVAILABLE => "overloaded_error",
                    s if s.is_server_error() => "api_error",
                    _ => "invalid_request_error",
                };
                json!({ "type": "error", "error": { "type": kind, "message": message } })
            }
            ErrorShape::Gemini => json!({
                "error": { "code": status.as_u16(), "message": message, "status": google_status(status) }
            }),
        }
    }

    /// The answer to a blocked prompt.
    pub fn prompt_refusal(self, hit: &RuleHit) -> (StatusCode, Value) {
        let message = refusal_message("prompt", hit);
        match self {
            ErrorShape::OpenAi => (
                StatusCode::BAD_REQUEST,
                json!({
                    "error": {
                        "message": message,
                        "type": "invalid_request_error",
                        "param": "prompt",
                        "code": "content_filter",
                        "status": 400,
                        "innererror": filter_detail(hit),
                    }
                }),
            ),
            ErrorShape::Anthropic => (
                StatusCode::BAD_REQUEST,
                json!({ "type": "error", "error": { "type": "invalid_request_error", "message": message } }),
            ),
            ErrorShape::Gemini => (
                StatusCode::OK,
                json!({
                    "promptFeedback": {
                        "blockReason": "OTHER",
                        "blockReasonMessage": message,
                        "safetyRatings": [],
                    },
                    "warden": filter_detail(hit)["warden"].clone(),
                }),
            ),
        }
    }

    /// An error event for a stream that failed upstream.
    pub fn stream_error(self, message: &str) -> Bytes {
        match self {
            ErrorShape::OpenAi => encode(
                None,
                &json!({ "error": { "message": message, "type": "server_error", "param": null, "code": "upstream_error" } })
                    .to_string(),
            ),
            ErrorShape::Anthropic => encode(
                Some("error"),
                &json!({ "type": "error", "error": { "type": "api_error", "message": message } }).to_string(),
            ),
            ErrorShape::Gemini => encode(
                None,
                &json!({ "error": { "code": 502, "message": message, "status": "UNAVAILABLE" } }).to_string(),
            ),
        }
    }
}
