//! `mock-llm`: a fake LLM provider server, faithful to what OpenAI, Azure
//! OpenAI, Anthropic and Gemini send.
//!
//! Used as the upstream of the Warden proxy in integration tests, the demo
//! and load benchmarks. It speaks HTTP/1.1 and h2c (prior knowledge) and
//! answers with the providers' response shapes (the official `openai` and
//! `anthropic` SDKs parse them), streamed or not, built from the API
//! references and recorded real responses (`SHAPES.md` in this crate lists
//! the sources, shape by shape). Headers plant text, tool calls, reasoning or
//! whole raw bodies where an attack test needs them.
//!
//! # Routes
//!
//! - `POST /v1/chat/completions`: OpenAI chat completions.
//! - `POST /v1/completions`: OpenAI legacy completions.
//! - `POST /v1/responses`: OpenAI Responses API.
//! - `POST /v1/embeddings`: OpenAI embeddings.
//! - `POST /v1/messages`: Anthropic Messages.
//! - `POST /v1beta/models/{model}:generateContent`: Gemini; also
//!   `:streamGenerateContent` (`?alt=sse`: server-sent events; without it a
//!   JSON array of chunks), and the same under `/v1/models/`.
//! - Azure OpenAI: `POST /openai/deployments/{deployment}/chat/completions`,
//!   `.../completions` and `.../embeddings` (`?api-version=...` required,
//!   as Azure answers 404 without it), and `POST /openai/v1/chat/completions`,
//!   `/openai/v1/completions`, `/openai/v1/responses`, `/openai/v1/embeddings`.
//!   Chat answers add Azure's `prompt_filter_results` and
//!   `content_filter_results`.
//! - `GET /v1/models`: OpenAI model list (one model, `mock-1`).
//! - `GET /healthz`: `ok`.
//! - `GET /mock/last-request`: the last request received on a POST route, as
//!   `{"path", "headers": {lowercased name: value}, "body": <JSON or string>}`
//!   (404 before the first one).
//!
//! A POST body with `"stream": true` is answered as server-sent events
//! (Gemini: the `:streamGenerateContent` method instead).
//!
//! # Request headers
//!
//! Reply text (first that applies):
//! - `x-mock-reply: TEXT`: the reply, as is;
//! - `x-mock-reply-b64: BASE64`: the reply, base64 (standard) of UTF-8;
//! - a [`Script`] rule whose `when` occurs in the prompt text;
//! - [`DEFAULT_REPLY`].
//!
//! Every header below that carries text also has a `-b64` form (standard
//! base64 of UTF-8), e.g. `x-mock-reasoning-b64`, for text a header value
//! cannot hold. Parts that a shape has no place for are ignored.
//!
//! More choices (OpenAI chat and legacy `n`):
//! - choice 0 gets the reply; choice `i > 0` gets `x-mock-reply-{i}: TEXT`
//!   if given, else the reply with ` (variant i)` appended.
//!
//! Parts beyond the text:
//! - `x-mock-reasoning: TEXT`: OpenAI chat `reasoning_content` (DeepSeek/vLLM
//!   style, streamed as `delta.reasoning_content` before the content);
//!   Responses: a `reasoning` item with that summary.
//! - `x-mock-thinking: TEXT`: Anthropic `thinking` block (with `signature`)
//!   before the text; Gemini: a `thought: true` part.
//! - `x-mock-tool-calls: JSON`: a JSON array of `{"name", "arguments"}`, where
//!   `arguments` is a string of JSON, sent exactly as given (escapes such as
//!   `\u0059` stay escapes, and streamed argument deltas of `x-mock-chunk`
//!   characters may cut them): OpenAI `tool_calls` (`finish_reason:
//!   tool_calls`), Responses `function_call` items, Anthropic `tool_use`
//!   blocks (`arguments` must then be an object), Gemini `functionCall`
//!   parts. Without `x-mock-reply`/`x-mock-reply-b64` the answer holds the
//!   calls alone (OpenAI `content: null`).
//! - `x-mock-tool-order: interleaved | sequential`: how the argument deltas
//!   of parallel OpenAI chat tool calls are streamed (default interleaved:
//!   one piece of each call in turn; sequential: one call after the other,
//!   as OpenAI's recorded streams do).
//! - `x-mock-refusal: TEXT`: OpenAI chat `message.refusal` (streamed as
//!   `delta.refusal`) with `content: null`; Responses: a `refusal` part.
//! - `x-mock-server-tools: 1`: Anthropic web search: a `server_tool_use`
//!   block, its `web_search_tool_result`, and `citations` on the text block
//!   (streamed with `citations_delta`).
//!
//! Request body fields honoured: `model`, `stream`,
//! `stream_options.include_usage`, `n`, chat `logprobs: true` with
//! `top_logprobs: K` (0-20), legacy `logprobs: N` (0-5), Responses
//! `instructions` (and other settings echoed in the `response` object),
//! embeddings `input`, `dimensions`, `encoding_format`.
//!
//! Raw replay (for attack tests that plant a trigger in any field):
//! - `x-mock-raw-b64: BASE64`: the answer body is exactly these decoded
//!   bytes. Bytes that look like server-sent events (after an optional BOM
//!   they start with `data:`, `event:`, `id:`, `retry:` or `:`) are served as
//!   `text/event-stream`, one piece per event (cut at blank lines), so
//!   `x-mock-delay-ms` and `x-mock-byte-split` apply; anything else as
//!   `application/json`.
//! - `x-mock-replay: NAME`: the same with the bytes of file `NAME` (a plain
//!   file name: no `/` or `..`) in the fixtures directory ([`Options::fixtures`];
//!   `mock-llm --fixtures DIR`, default `$MOCK_FIXTURES`). `.sse` files are
//!   event streams, `.json` files JSON, others are sniffed as above.
//! - `x-mock-status: N`: the HTTP status of a raw or replayed answer
//!   (default 200; an error without one of the two headers above).
//!
//! Streaming:
//! - `x-mock-chunk: N`: characters per text delta (default 8), also per
//!   reasoning, thinking and tool-argument delta, and per logprobs token;
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
//! 400 in the provider's error shape (Gemini: Google's
//! `{"error":{"code","message","status"}}`).
//!
//! # In-process use
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let options = mock_llm::Options { fixtures: Some("tests/fixtures".into()), ..Default::default() };
//! tokio::spawn(mock_llm::serve_with(listener, options));
//! // ... point the client at http://{addr}
//! # let _ = addr; Ok(()) }
//! ```

mod anthropic;
mod azure;
mod body;
mod embeddings;
mod extras;
mod faults;
mod gemini;
mod logprobs;
mod openai;
mod replay;
pub mod reply;
mod responses;
mod route;
mod sse;

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
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

use body::{Event, MockBody};
pub use faults::DEFAULT_CHUNK_CHARS;
pub use reply::{Api, Script, ScriptError, ScriptRule, DEFAULT_REPLY};

use extras::Extras;
use faults::{Controls, Fault};
use route::{Route, RouteError};

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
    /// Reasoning text (chat `reasoning_content`, Responses reasoning summary).
    pub const REASONING: &str = "x-mock-reasoning";
    /// Thinking text (Anthropic thinking block, Gemini thought part).
    pub const THINKING: &str = "x-mock-thinking";
    /// Tool calls: a JSON array of `{"name", "arguments"}`.
    pub const TOOL_CALLS: &str = "x-mock-tool-calls";
    /// `interleaved` (default) or `sequential` streaming of parallel tool calls.
    pub const TOOL_ORDER: &str = "x-mock-tool-order";
    /// Refusal text (OpenAI `refusal`).
    pub const REFUSAL: &str = "x-mock-refusal";
    /// `1` for Anthropic web search blocks and citations.
    pub const SERVER_TOOLS: &str = "x-mock-server-tools";
    /// The answer body, as standard base64.
    pub const RAW_B64: &str = "x-mock-raw-b64";
    /// A fixture file name to answer with.
    pub const REPLAY: &str = "x-mock-replay";
    /// HTTP status of a raw or replayed answer.
    pub const STATUS: &str = "x-mock-status";
}

/// How long `x-mock-fault: stall` waits before giving up.
const STALL: Duration = Duration::from_secs(3600);

/// Server settings.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Reply script.
    pub script: Script,
    /// Directory of the files `x-mock-replay` may name (`None`: replay
    /// requests are answered 400).
    pub fixtures: Option<PathBuf>,
}

/// The last request received on a POST route.
struct LastRequest {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// Shared server state.
struct State {
    options: Options,
    last: Mutex<Option<LastRequest>>,
    seq: AtomicU64,
}

/// Everything the response builders need for one answer.
pub(crate) struct Answer<'a> {
    /// Per-server sequence number, used in ids.
    pub seq: u64,
    /// Unix seconds.
    pub created: u64,
    /// The request's model (or `mock-1`; Gemini: the path's model).
    pub model: &'a str,
    /// Reply text of each choice (more than one only for OpenAI `n`).
    pub texts: Vec<String>,
    /// All prompt text of the request.
    pub prompt: &'a str,
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// Tokens of the reasoning or thinking text (0 without).
    pub reasoning_tokens: u64,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// Characters per streamed delta (and per logprobs token).
    pub chunk: usize,
    /// Reasoning, tool calls, refusal, ... from headers.
    pub extras: &'a Extras,
    /// Requested alternatives per token: chat `top_logprobs` (when
    /// `logprobs: true`), legacy `logprobs`.
    pub logprobs: Option<usize>,
    /// Azure OpenAI: add content filter results.
    pub azure: bool,
    /// The request body (the Responses API echoes some of its settings).
    pub request: &'a Value,
}

impl Answer<'_> {
    /// The reply text of choice 0.
    pub(crate) fn text(&self) -> &str {
        self.texts.first().map_or("", String::as_str)
    }
}

/// Serves the mock API on `listener` with `script` and no fixtures
/// directory; see [`serve_with`].
pub async fn serve(listener: TcpListener, script: Script) -> std::io::Result<()> {
    serve_with(listener, Options { script, ..Options::default() }).await
}

/// Serves the mock API on `listener` until the returned future is dropped
/// (e.g. the spawned task is aborted).
///
/// Each connection is served on its own task, as HTTP/1.1 or h2c (detected
/// from the connection preface). Transient accept errors (connection reset,
/// too many open files, ...) are retried; any other accept error is returned.
pub async fn serve_with(listener: TcpListener, options: Options) -> std::io::Result<()> {
    let state = Arc::new(State { options, last: Mutex::new(None), seq: AtomicU64::new(1) });
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

/// [`run_with`] with `script` and no fixtures directory.
pub async fn run(addr: &str, script: Script) -> std::io::Result<()> {
    run_with(addr, Options { script, ..Options::default() }).await
}

/// Binds `addr`, prints `listening on http://IP:PORT` to stdout (flushed), and
/// serves forever. This is what the `mock-llm` binary runs.
pub async fn run_with(addr: &str, options: Options) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{local}")?;
        out.flush()?;
    }
    serve_with(listener, options).await
}

/// [`spawn_with`] with `script` and no fixtures directory.
pub async fn spawn(script: Script) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    spawn_with(Options { script, ..Options::default() }).await
}

/// Starts the server in-process on `127.0.0.1:0` (for tests): returns the
/// bound address and the serving task (abort it to stop the server).
pub async fn spawn_with(options: Options) -> std::io::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((addr, tokio::spawn(serve_with(listener, options))))
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
        Api::Gemini => {
            let s = match kind {
                ErrKind::InvalidRequest => "INVALID_ARGUMENT",
                ErrKind::NotFound => "NOT_FOUND",
                ErrKind::Server => "INTERNAL",
                ErrKind::Timeout => "DEADLINE_EXCEEDED",
            };
            gemini::error_json(status.as_u16(), message, s)
        }
        Api::OpenAiChat | Api::OpenAiCompletions | Api::OpenAiResponses | Api::OpenAiEmbeddings => {
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
    match route::resolve(req.uri().path(), req.uri().query()) {
        Some(Ok(route)) => {
            if req.method() != Method::POST {
                return error_response(
                    route.api,
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrKind::InvalidRequest,
                    "method not allowed; use POST",
                );
            }
            return completion(&state, route, req).await;
        }
        Some(Err(RouteError::AzureNoApiVersion)) => {
            return json_response(StatusCode::NOT_FOUND, azure::resource_not_found_json());
        }
        Some(Err(RouteError::GeminiUnknownMethod(m))) => {
            return error_response(
                Api::Gemini,
                StatusCode::NOT_FOUND,
                ErrKind::NotFound,
                &format!("method `{m}` is not served by mock-llm (use generateContent or streamGenerateContent)"),
            );
        }
        None => {}
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

/// The answer of an `x-mock-fault` that replaces the whole answer (`stall`,
/// `500`), if one was asked for.
async fn fault_answer(api: Api, fault: Fault) -> Option<Response<MockBody>> {
    match fault {
        Fault::Stall => {
            tokio::time::sleep(STALL).await;
            Some(error_response(api, StatusCode::GATEWAY_TIMEOUT, ErrKind::Timeout, "mock stalled"))
        }
        Fault::ServerError => {
            Some(error_response(api, StatusCode::INTERNAL_SERVER_ERROR, ErrKind::Server, "mock upstream failure"))
        }
        Fault::ResetMidStream | Fault::None => None,
    }
}

/// A streamed answer: `events` with the stream controls applied.
fn stream_response(
    status: StatusCode,
    content_type: &'static str,
    events: Vec<Event>,
    controls: &Controls,
) -> Response<MockBody> {
    let reset = controls.fault == Fault::ResetMidStream;
    let mut resp = Response::new(MockBody::events(events, controls.delay, controls.byte_split, reset));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A whole answer with a Content-Length: gzipped, split or cut short as the
/// controls ask.
fn whole_response(
    api: Api,
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
    controls: &Controls,
) -> Response<MockBody> {
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
    let mock_body = if controls.fault == Fault::ResetMidStream {
        MockBody::truncated(body, len / 2, controls.byte_split)
    } else if let Some(n) = controls.byte_split {
        MockBody::split(body, n)
    } else {
        MockBody::full(body)
    };
    let mut resp = Response::new(mock_body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if controls.gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// Parses a body field that must be a whole number in `0..=max` (absent or
/// null: `None`).
fn bounded_u64(json: &Value, field: &str, max: u64) -> Result<Option<usize>, String> {
    match json.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= max => Ok(Some(n as usize)),
            _ => Err(format!("'{field}' must be an integer from 0 to {max}, got {v}")),
        },
    }
}

/// The requested logprobs alternatives, per API.
fn requested_logprobs(api: Api, json: &Value) -> Result<Option<usize>, String> {
    match api {
        Api::OpenAiChat => {
            let top = bounded_u64(json, "top_logprobs", logprobs::MAX_TOP_CHAT)?;
            Ok(json.get("logprobs").and_then(Value::as_bool).unwrap_or(false).then(|| top.unwrap_or(0)))
        }
        Api::OpenAiCompletions => bounded_u64(json, "logprobs", logprobs::MAX_TOP_LEGACY),
        _ => Ok(None),
    }
}

async fn completion(state: &State, route: Route, req: Request<Incoming>) -> Response<MockBody> {
    let api = route.api;
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

    // Raw replay: the body may be anything; only the faults still apply.
    match replay::requested(&parts.headers) {
        Err(msg) => return bad_request(&msg),
        Ok(Some(source)) => {
            if let Some(resp) = fault_answer(api, controls.fault).await {
                return resp;
            }
            let replay = match replay::load(source, state.options.fixtures.as_deref()) {
                Ok(r) => r,
                Err(msg) => return bad_request(&msg),
            };
            let status = controls.status.unwrap_or(StatusCode::OK);
            return match replay.kind {
                replay::Kind::Sse => {
                    stream_response(status, "text/event-stream", replay::events(&replay.bytes), &controls)
                }
                replay::Kind::Json => whole_response(api, status, "application/json", replay.bytes.to_vec(), &controls),
            };
        }
        Ok(None) => {}
    }
    if controls.status.is_some() {
        return bad_request(&format!(
            "{} applies only to {} and {} answers",
            headers::STATUS,
            headers::RAW_B64,
            headers::REPLAY
        ));
    }

    let json: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return bad_request("request body must be a JSON object"),
        Err(e) => return bad_request(&format!("malformed JSON request body: {e}")),
    };
    if let Some(resp) = fault_answer(api, controls.fault).await {
        return resp;
    }
    let body_model = json.get("model").and_then(Value::as_str);
    let model = match (api, route.path_model.as_deref(), body_model) {
        (Api::Gemini, Some(m), _) => m,
        (_, _, Some(m)) => m,
        (_, Some(m), None) => m,
        (_, None, None) => "mock-1",
    };

    if api == Api::OpenAiEmbeddings {
        let answer = embeddings::inputs(&json).and_then(|texts| {
            let dims = embeddings::dimensions(&json)?;
            let b64 = embeddings::wants_base64(&json)?;
            Ok(embeddings::embeddings_json(model, &texts, dims, b64))
        });
        return match answer {
            Ok(body) => whole_response(api, StatusCode::OK, "application/json", body, &controls),
            Err(msg) => bad_request(&msg),
        };
    }

    let extras = match Extras::from_headers(&parts.headers) {
        Ok(x) => x,
        Err(msg) => return bad_request(&msg),
    };
    if matches!(api, Api::AnthropicMessages | Api::Gemini) {
        if let Err(msg) = extras.check_object_arguments() {
            return bad_request(&msg);
        }
    }
    let logprobs = match requested_logprobs(api, &json) {
        Ok(l) => l,
        Err(msg) => return bad_request(&msg),
    };

    let prompt = reply::prompt_text(api, &json);
    let text = match reply::choose_reply(&parts.headers, &state.options.script, &prompt) {
        Ok(t) => t,
        Err(e) => return bad_request(&e.to_string()),
    };
    let n = match api {
        Api::OpenAiChat | Api::OpenAiCompletions => {
            json.get("n").and_then(Value::as_u64).map_or(1, |n| n.clamp(1, 128) as usize)
        }
        _ => 1,
    };
    let texts = match extras::choice_texts(&parts.headers, &text, n) {
        Ok(t) => t,
        Err(msg) => return bad_request(&msg),
    };

    let thinking = match api {
        Api::OpenAiChat | Api::OpenAiResponses => extras.reasoning.as_deref(),
        Api::AnthropicMessages | Api::Gemini => extras.thinking.as_deref(),
        _ => None,
    };
    let reasoning_tokens = thinking.map_or(0, reply::count_tokens);
    let refusal = if matches!(api, Api::OpenAiChat | Api::OpenAiResponses) { extras.refusal.as_deref() } else { None };
    let visible = match refusal {
        Some(r) => reply::count_tokens(r),
        None if extras.has_text() || api == Api::OpenAiCompletions => reply::count_tokens(&text),
        None => 0,
    };
    let tool_tokens: u64 = extras.tool_calls.iter().map(|c| reply::count_tokens(&c.arguments)).sum();
    let answer = Answer {
        seq: state.seq.fetch_add(1, Ordering::Relaxed),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        model,
        texts,
        prompt: &prompt,
        prompt_tokens: reply::count_tokens(&prompt),
        completion_tokens: visible + tool_tokens + reasoning_tokens,
        reasoning_tokens,
        include_usage: json.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false),
        chunk: controls.chunk,
        extras: &extras,
        logprobs,
        azure: route.azure,
        request: &json,
    };

    let streamed = match api {
        Api::Gemini => route.gemini_stream,
        _ => json.get("stream").and_then(Value::as_bool).unwrap_or(false).then_some(gemini::StreamFraming::Sse),
    };
    if let Some(framing) = streamed {
        let (content_type, events) = match api {
            Api::OpenAiChat => ("text/event-stream", openai::chat_events(&answer)),
            Api::OpenAiCompletions => ("text/event-stream", openai::completion_events(&answer)),
            Api::AnthropicMessages => ("text/event-stream", anthropic::message_events(&answer)),
            Api::OpenAiResponses => ("text/event-stream", responses::response_events(&answer)),
            Api::Gemini => match framing {
                gemini::StreamFraming::Sse => ("text/event-stream", gemini::stream_events(&answer, framing)),
                gemini::StreamFraming::JsonArray => ("application/json", gemini::stream_events(&answer, framing)),
            },
            Api::OpenAiEmbeddings => return bad_request("embeddings cannot be streamed"),
        };
        return stream_response(StatusCode::OK, content_type, events, &controls);
    }

    let body = match api {
        Api::OpenAiChat => openai::chat_json(&answer),
        Api::OpenAiCompletions => openai::completion_json(&answer),
        Api::AnthropicMessages => anthropic::message_json(&answer),
        Api::OpenAiResponses => responses::response_json(&answer),
        Api::Gemini => gemini::generate_json(&answer),
        Api::OpenAiEmbeddings => return bad_request("unreachable: embeddings are answered above"),
    };
    whole_response(api, StatusCode::OK, "application/json", body, &controls)
}

fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}
