//! `mock-llm`: a fake OpenAI- and Anthropic-shaped LLM server.
//!
//! Used as the upstream of the Warden proxy in integration tests, the demo
//! and load benchmarks. It speaks HTTP/1.1 and h2c (prior knowledge) and
//! answers with faithful response shapes (the official `openai` and
//! `anthropic` SDKs parse them), streamed (SSE) or not.
//!
//! # Routes
//!
//! - `POST /v1/chat/completions`: OpenAI chat completions.
//! - `POST /v1/completions`: OpenAI legacy completions.
//! - `POST /v1/messages`: Anthropic Messages.
//! - `GET /v1/models`: OpenAI model list (one model, `mock-1`).
//! - `GET /healthz`: `ok`.
//! - `GET /mock/last-request`: the last request received on a POST route, as
//!   `{"path", "headers": {lowercased name: value}, "body": <JSON or string>}`
//!   (404 before the first one).
//!
//! A POST body with `"stream": true` is answered as server-sent events.
//!
//! # Request headers
//!
//! Reply text (first that applies):
//! - `x-mock-reply: TEXT`: the reply, as is;
//! - `x-mock-reply-b64: BASE64`: the reply, base64 (standard) of UTF-8;
//! - a [`Script`] rule whose `when` occurs in the prompt text;
//! - [`DEFAULT_REPLY`].
//!
//! Streaming:
//! - `x-mock-chunk: N`: characters per text delta (default 8);
//! - `x-mock-delay-ms: N`: sleep between deltas (default 0);
//! - `x-mock-byte-split: N`: also write the byte stream in pieces of N bytes,
//!   1 ms apart (pieces may end mid-line or mid-character).
//!
//! Faults and encoding:
//! - `x-mock-fault: 500`: HTTP 500 with the provider's error shape;
//! - `x-mock-fault: reset-mid-stream`: send the head and about half of the
//!   answer (half of the deltas, or half of a Content-Length body), then
//!   abort the connection;
//! - `x-mock-fault: stall`: never answer;
//! - `x-mock-gzip: 1`: gzip the non-streamed answer (`content-encoding: gzip`).
//!
//! Invalid control header values and malformed JSON bodies are answered with
//! 400 in the provider's error shape.
//!
//! # In-process use
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(mock_llm::serve(listener, mock_llm::Script::default()));
//! // ... point the client at http://{addr}
//! # let _ = addr; Ok(()) }
//! ```

mod anthropic;
mod body;
mod faults;
mod openai;
pub mod reply;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use body::MockBody;
pub use faults::DEFAULT_CHUNK_CHARS;
pub use reply::{Api, Script, ScriptError, ScriptRule, DEFAULT_REPLY};

use faults::{Controls, Fault};

/// Names of the request headers that control the mock.
pub mod headers {
    /// Reply text, used as is.
    pub const REPLY: &str = "x-mock-reply";
    /// Reply text as standard base64 of UTF-8.
    pub const REPLY_B64: &str = "x-mock-reply-b64";
    /// Characters per streamed text delta.
    pub const CHUNK: &str = "x-mock-chunk";
    /// Milliseconds to sleep between streamed deltas.
    pub const DELAY_MS: &str = "x-mock-delay-ms";
    /// Write the body in pieces of this many bytes.
    pub const BYTE_SPLIT: &str = "x-mock-byte-split";
    /// Fault to inject: `500`, `reset-mid-stream` or `stall`.
    pub const FAULT: &str = "x-mock-fault";
    /// `1` to gzip the non-streamed answer.
    pub const GZIP: &str = "x-mock-gzip";
}

/// How long `x-mock-fault: stall` waits before giving up.
const STALL: Duration = Duration::from_secs(3600);

/// The last request received on a POST route.
struct LastRequest {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Shared server state.
struct State {
    script: Script,
    last: Mutex<Option<LastRequest>>,
    seq: AtomicU64,
}

/// Everything the response builders need for one answer.
pub(crate) struct Answer<'a> {
    /// Per-server sequence number, used in ids.
    pub seq: u64,
    /// Unix seconds.
    pub created: u64,
    /// The request's model (or `mock-1`).
    pub model: &'a str,
    /// Reply text.
    pub text: &'a str,
    /// Number of choices (OpenAI `n`).
    pub n: usize,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
}

/// Serves the mock API on `listener` until the returned future is dropped
/// (e.g. the spawned task is aborted).
///
/// Each connection is served on its own task, as HTTP/1.1 or h2c (detected
/// from the connection preface). Transient accept errors (connection reset,
/// too many open files, ...) are retried; any other accept error is returned.
pub async fn serve(listener: TcpListener, script: Script) -> std::io::Result<()> {
    let state = Arc::new(State { script, last: Mutex::new(None), seq: AtomicU64::new(1) });
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            if let Err(e) = builder.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("connection ended with error: {e}");
            }
        });
    }
}

fn is_transient_accept_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock | TimedOut)
        || matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
}

/// Binds `addr`, prints `listening on http://IP:PORT` to stdout (flushed), and
/// serves forever. This is what the `mock-llm` binary runs.
pub async fn run(addr: &str, script: Script) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")?;
        out.flush()?;
    }
    serve(listener, script).await
}

/// Starts the server in-process on `127.0.0.1:0` (for tests): returns the
/// bound address and the serving task (abort it to stop the server).
pub async fn spawn(script: Script) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(serve(listener, script))))
}

/// Provider-neutral error categories.
#[derive(Clone, Copy)]
enum ErrKind {
    InvalidRequest,
    NotFound,
    Server,
    Timeout,
}

fn error_response(api: Api, status: StatusCode, kind: ErrKind, message: &str) -> Response<MockBody> {
    let body = match api {
        Api::AnthropicMessages => {
            let k = match kind {
                ErrKind::InvalidRequest => "invalid_request_error",
                ErrKind::NotFound => "not_found_error",
                ErrKind::Server => "api_error",
                ErrKind::Timeout => "timeout_error",
            };
            anthropic::error_json(message, k)
        }
        Api::OpenAiChat | Api::OpenAiCompletions => {
            let (k, code) = match kind {
                ErrKind::InvalidRequest => ("invalid_request_error", None),
                ErrKind::NotFound => ("invalid_request_error", Some("not_found")),
                ErrKind::Server => ("server_error", None),
                ErrKind::Timeout => ("server_error", Some("timeout")),
            };
            openai::error_json(message, k, code)
        }
    };
    json_response(status, body)
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text_response(status: StatusCode, body: &'static str) -> Response<MockBody> {
    let mut resp = Response::new(MockBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<MockBody> {
    let api = match req.uri().path() {
        "/v1/chat/completions" => Some(Api::OpenAiChat),
        "/v1/completions" => Some(Api::OpenAiCompletions),
        "/v1/messages" => Some(Api::AnthropicMessages),
        _ => None,
    };
    if let Some(api) = api {
        if req.method() != Method::POST {
            return error_response(
                api,
                StatusCode::METHOD_NOT_ALLOWED,
                ErrKind::InvalidRequest,
                "method not allowed; use POST",
            );
        }
        return completion(&state, api, req).await;
    }
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text_response(StatusCode::OK, "ok"),
        (&Method::GET, "/v1/models") => json_response(StatusCode::OK, openai::models_json()),
        (&Method::GET, "/mock/last-request") => last_request(&state),
        (_, path) => error_response(
            Api::OpenAiChat,
            StatusCode::NOT_FOUND,
            ErrKind::NotFound,
            &format!("unknown route: {} {path}", req.method()),
        ),
    }
}

fn last_request(state: &State) -> Response<MockBody> {
    let guard = match state.last.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let Some(last) = guard.as_ref() else {
        return error_response(Api::OpenAiChat, StatusCode::NOT_FOUND, ErrKind::NotFound, "no request received yet");
    };
    let mut headers = serde_json::Map::new();
    for (name, value) in &last.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match headers.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    let body = serde_json::from_slice::<Value>(&last.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&last.body).into_owned()));
    let v = serde_json::json!({
        "path": last.path,
        "headers": headers,
        "body": body,
    });
    drop(guard);
    json_response(StatusCode::OK, v.to_string())
}

async fn completion(state: &State, api: Api, req: Request<Incoming>) -> Response<MockBody> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return error_response(
                api,
                StatusCode::BAD_REQUEST,
                ErrKind::InvalidRequest,
                &format!("cannot read request body: {e}"),
            )
        }
    };
    {
        let record =
            LastRequest { path: parts.uri.path().to_owned(), headers: parts.headers.clone(), body: body.clone() };
        let mut guard = match state.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Some(record);
    }
    let bad_request = |msg: &str| error_response(api, StatusCode::BAD_REQUEST, ErrKind::InvalidRequest, msg);

    let controls = match Controls::from_headers(&parts.headers) {
        Ok(c) => c,
        Err(msg) => return bad_request(&msg),
    };
    let json: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("request body must be a JSON object"),
        Err(e) => return bad_request(&format!("malformed JSON request body: {e}")),
    };
    match controls.fault {
        Fault::Stall => {
            tokio::time::sleep(STALL).await;
            return error_response(api, StatusCode::GATEWAY_TIMEOUT, ErrKind::Timeout, "mock stalled");
        }
        Fault::ServerError => {
            return error_response(api, StatusCode::INTERNAL_SERVER_ERROR, ErrKind::Server, "mock upstream failure")
        }
        Fault::ResetMidStream | Fault::None => {}
    }

    let prompt = reply::prompt_text(api, &json);
    let text = match reply::choose_reply(&parts.headers, &state.script, &prompt) {
        Ok(t) => t,
        Err(e) => return bad_request(&e.to_string()),
    };
    let n = match api {
        Api::AnthropicMessages => 1,
        _ => json.get("n").and_then(Value::as_u64).map_or(1, |n| n.clamp(1, 128) as usize),
    };
    let answer = Answer {
        seq: state.seq.fetch_add(1, Ordering::Relaxed),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model: json.get("model").and_then(Value::as_str).unwrap_or("mock-1"),
        text: &text,
        n,
        prompt_tokens: reply::count_tokens(&prompt),
        completion_tokens: reply::count_tokens(&text),
        include_usage: json.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
    };
    let reset = controls.fault == Fault::ResetMidStream;

    if json.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let deltas = reply::chunk_chars(&text, controls.chunk);
        let events = match api {
            Api::OpenAiChat => openai::chat_events(&answer, &deltas),
            Api::OpenAiCompletions => openai::completion_events(&answer, &deltas),
            Api::AnthropicMessages => anthropic::message_events(&answer, &deltas),
        };
        let mut resp = Response::new(MockBody::events(events, controls.delay, controls.byte_split, reset));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return resp;
    }

    let body = match api {
        Api::OpenAiChat => openai::chat_json(&answer),
        Api::OpenAiCompletions => openai::completion_json(&answer),
        Api::AnthropicMessages => anthropic::message_json(&answer),
    };
    let body = if controls.gzip {
        match gzip(&body) {
            Ok(b) => b,
            Err(e) => {
                return error_response(
                    api,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrKind::Server,
                    &format!("gzip failed: {e}"),
                )
            }
        }
    } else {
        body
    };
    let body = Bytes::from(body);
    let len = body.len();
    let mock_body = if reset {
        MockBody::truncated(body, len / 2, controls.byte_split)
    } else if let Some(n) = controls.byte_split {
        MockBody::split(body, n)
    } else {
        MockBody::full(body)
    };
    let mut resp = Response::new(mock_body);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if controls.gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}
