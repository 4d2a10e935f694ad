//! The `respond` stage's vocabulary: response bodies, errors in the provider's own shape, and
//! prompt refusals.
//!
//! Clients already handle their provider's errors, so Warden answers in them: an OpenAI client
//! gets `{"error": {"message", "type", "param", "code"}}`, an Anthropic client gets
//! `{"type": "error", "error": {"type", "message"}}`. A blocked prompt is a 400 with
//! `code: "content_filter"` (OpenAI, as Azure OpenAI's content filter answers) or an
//! `invalid_request_error` (Anthropic).

use crate::shape::ErrorShape;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use serde_json::Value;
use std::time::Duration;
use warden_core::RuleHit;

/// The body type of every response Warden sends.
pub type ProxyBody = BoxBody<Bytes, std::io::Error>;

/// A body that holds `guard` (a slot, a counter) until hyper drops it: when the body has been
/// sent, or the client went away.
pub fn holding<G: Send + Sync + Unpin + 'static>(body: ProxyBody, guard: G) -> ProxyBody {
    Holding { body, _guard: guard }.boxed()
}

struct Holding<G> {
    body: ProxyBody,
    _guard: G,
}

impl<G: Unpin> hyper::body::Body for Holding<G> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: &Value) -> Response<ProxyBody> {
    let mut r = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Why a request could not be served. Each variant says what the client (or operator) can do.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No guarded or passthrough route has this path.
    #[error("unknown path `{0}`: Warden guards POST /v1/chat/completions, /v1/completions, /v1/responses, /v1/embeddings, /v1/messages, the Azure OpenAI paths under /openai/ and Gemini's /v1beta/models/{{model}}:generateContent; other paths must be listed under `passthrough` in the config")]
    NotFound(String),
    /// The path is guarded but the method is not POST.
    #[error("method {0} is not allowed on {1}; use POST")]
    MethodNotAllowed(String, String),
    /// The body is larger than the configured limit.
    #[error("the request body is larger than {0} bytes (limits.max_body_bytes / max_decompressed_bytes)")]
    TooLarge(usize),
    /// The body's type or encoding cannot be inspected.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// The client was too slow to send its body.
    #[error("the request body did not arrive within {0:?} (limits.body_read_timeout_ms)")]
    ClientTimeout(Duration),
    /// The upstream could not be reached or broke the exchange.
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer in time.
    #[error("{0}")]
    GatewayTimeout(String),
    /// The request holds more than a limit allows (strings, text); the message names the limit.
    #[error("{0}")]
    TooMuch(String),
    /// Warden is at capacity: the request was shed before any judgement, and may be retried.
    #[error("{0}")]
    Overloaded(String),
}

/// What a shed answer's `Retry-After` says, in seconds.
pub const RETRY_AFTER_S: &str = "1";

impl ProxyError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::NotFound(_) => StatusCode::NOT_FOUND,
            ProxyError::MethodNotAllowed(..) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ProxyError::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooMuch(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short machine-readable code (OpenAI `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(_) => "invalid_request",
            ProxyError::NotFound(_) => "unknown_url",
            ProxyError::MethodNotAllowed(..) => "method_not_allowed",
            ProxyError::TooLarge(_) => "request_too_large",
            ProxyError::UnsupportedMedia(_) => "unsupported_media_type",
            ProxyError::ClientTimeout(_) => "request_timeout",
            ProxyError::BadGateway(_) => "upstream_error",
            ProxyError::GatewayTimeout(_) => "upstream_timeout",
            ProxyError::TooMuch(_) => "request_too_large",
            ProxyError::Overloaded(_) => "overloaded",
        }
    }

    /// The error in the provider's shape.
    pub fn to_response(&self, shape: ErrorShape) -> Response<ProxyBody> {
        let status = self.status();
        let mut r = json_response(status, &shape.error_body(status, self.code(), &self.to_string()));
        if matches!(self, ProxyError::Overloaded(_)) {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
        }
        r
    }
}

/// The answer to a request that failed before a decision: the error in the provider's shape,
/// `x-warden-decision: error`, and on HTTP/1.1 `Connection: close` (the request body may be
/// unread, so the connection cannot be reused safely).
pub fn error_response(e: &ProxyError, shape: ErrorShape, http1: bool) -> Response<ProxyBody> {
    let mut r = e.to_response(shape);
    r.headers_mut().insert(crate::proxy::DECISION_HEADER, HeaderValue::from_static("error"));
    if http1 {
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// The refusal of a blocked prompt, in the shape's family's form.
pub fn prompt_refusal(shape: ErrorShape, hit: &RuleHit) -> Response<ProxyBody> {
    let (status, body) = shape.prompt_refusal(hit);
    json_response(status, &body)
}
