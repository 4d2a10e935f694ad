//! In-process tests: start the server on 127.0.0.1:0 and talk raw HTTP/1.1.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use mock_llm::{Options, Script, ScriptRule};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    /// De-chunked body.
    body: Vec<u8>,
    /// Whether the body ended cleanly (terminating chunk, or full length).
    complete: bool,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

async fn start() -> SocketAddr {
    let script =
        Script::new(vec![ScriptRule { when: "capital of France".into(), reply: "Paris is the capital.".into() }]);
    let (addr, _task) = mock_llm::spawn(script).await.expect("spawn");
    addr
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n", body.len());
    if !body.is_empty() {
        req.push_str("content-type: application/json\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await.expect("response within 10s");
    // A reset may surface as an error after some bytes were read.
    let _ = read;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> RawResponse {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("end of head");
    let head = std::str::from_utf8(&raw[..head_end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line.split(' ').nth(1).expect("status code").parse().expect("numeric status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let (body, complete) = if chunked {
        dechunk(rest)
    } else {
        let len: Option<usize> = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("numeric content-length"));
        match len {
            Some(len) => (rest[..rest.len().min(len)].to_vec(), rest.len() >= len),
            None => (rest.to_vec(), true),
        }
    };
    RawResponse { status, headers, body, complete }
}

/// Decodes a chunked body; `complete` is true only if the 0-size chunk was seen.
fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size_str = std::str::from_utf8(&data[..eol]).expect("chunk size");
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).expect("hex chunk size");
        data = &data[eol + 2..];
        if size == 0 {
            return (out, true);
        }
        if data.len() < size + 2 {
            out.extend_from_slice(&data[..data.len().min(size)]);
            return (out, false);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Parses SSE text into (event name, data) pairs (CRLF line ends are read as LF).
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, data)
        })
        .collect()
}

#[tokio::test]
async fn openai_chat_stream_event_sequence() {
    let addr = start().await;
    let body = json!({
        "model": "gpt-test",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello there"}],
    })
    .to_string();
    let resp = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-reply", "héllo wörld, streamed"), ("x-mock-chunk", "5")],
        &body,
    )
    .await;
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    let events = sse_events(&resp.text());
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(name, d)| {
            assert!(name.is_none());
            serde_json::from_str(d).expect("chunk JSON")
        })
        .collect();
    // role chunk, 5 deltas (22 chars / 5), finish chunk, usage chunk
    assert_eq!(chunks.len(), 1 + 5 + 1 + 1, "{chunks:#?}");
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["model"], "gpt-test");
        assert_eq!(c["system_fingerprint"], "fp_mock");
        assert!(c["id"].as_str().expect("id").starts_with("chatcmpl-mock-"));
    }
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    let text: String =
        chunks[1..6].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().expect("content")).collect();
    assert_eq!(text, "héllo wörld, streamed");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"].as_str(), Some("héllo"));
    assert_eq!(chunks[6]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[7]["choices"], json!([]));
    assert_eq!(chunks[7]["usage"], json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
}

#[tokio::test]
async fn openai_chat_stream_n_interleaves() {
    let addr = start().await;
    let body =
        json!({"model": "m", "stream": true, "n": 3, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let resp = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-reply", "abcdef"), ("x-mock-reply-1", "uvwxyz"), ("x-mock-chunk", "3")],
        &body,
    )
    .await;
    let events = sse_events(&resp.text());
    let idx: Vec<(u64, String)> = events[..events.len() - 1]
        .iter()
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).expect("json");
            let c = &v["choices"][0];
            (c["index"].as_u64().expect("index"), c["delta"]["content"].as_str().unwrap_or("-").to_owned())
        })
        .collect();
    // Role chunks, then one delta per choice per round (choice 2, the
    // longest, alone at the end), then the finish chunks.
    let expected: Vec<(u64, String)> = [
        (0, ""),
        (1, ""),
        (2, ""),
        (0, "abc"),
        (1, "uvw"),
        (2, "abc"),
        (0, "def"),
        (1, "xyz"),
        (2, "def"),
        (2, " (v"),
        (2, "ari"),
        (2, "ant"),
        (2, " 2)"),
        (0, "-"),
        (1, "-"),
        (2, "-"),
    ]
    .iter()
    .map(|(i, s)| (*i, (*s).to_owned()))
    .collect();
    assert_eq!(idx, expected);
}

#[tokio::test]
async fn anthropic_stream_event_sequence() {
    let addr = start().await;
    let body = json!({
        "model": "claude-test",
        "max_tokens": 100,
        "stream": true,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    })
    .to_string();
    let resp = request(addr, "POST", "/v1/messages", &[("x-mock-chunk", "4")], &body).await;
    assert_eq!(resp.status, 200);
    assert!(resp.complete);
    let events = sse_events(&resp.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().expect("event name")).collect();
    let reply = "Paris is the capital.";
    let n_deltas = reply.chars().count().div_ceil(4);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", n_deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    let data: Vec<Value> = events
        .iter()
        .map(|(n, d)| {
            let v: Value = serde_json::from_str(d).expect("json");
            assert_eq!(v["type"].as_str(), n.as_deref());
            v
        })
        .collect();
    let start = &data[0]["message"];
    assert_eq!(start["model"], "claude-test");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert!(start["stop_reason"].is_null());
    // "You are terse.\nWhat is the capital of France?" = 9 words
    assert_eq!(start["usage"], json!({"input_tokens": 9, "output_tokens": 1}));
    let text: String = data[3..3 + n_deltas]
        .iter()
        .map(|v| {
            assert_eq!(v["delta"]["type"], "text_delta");
            v["delta"]["text"].as_str().expect("text")
        })
        .collect();
    assert_eq!(text, reply);
    let md = &data[data.len() - 2];
    assert_eq!(md["delta"]["stop_reason"], "end_turn");
    assert_eq!(md["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn non_streamed_shapes() {
    let addr = start().await;
    let chat = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[],
        &json!({"model": "gpt-x", "n": 2, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await;
    assert_eq!(chat.status, 200);
    let v = chat.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-x");
    assert_eq!(v["choices"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["choices"][1]["index"], 1);
    assert_eq!(v["choices"][0]["message"]["content"], mock_llm::DEFAULT_REPLY);
    assert!(v["choices"][0]["message"]["refusal"].is_null());
    assert_eq!(v["usage"]["total_tokens"], 1 + 9);

    let legacy = request(
        addr,
        "POST",
        "/v1/completions",
        &[("x-mock-reply", "done")],
        &json!({"model": "davinci", "prompt": ["a b", "c"]}).to_string(),
    )
    .await;
    let v = legacy.json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "done");
    assert_eq!(v["usage"]["prompt_tokens"], 3);

    let anth = request(
        addr,
        "POST",
        "/v1/messages",
        &[],
        &json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "capital of France"}]})
            .to_string(),
    )
    .await;
    let v = anth.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Paris is the capital.");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["id"].as_str().expect("id").starts_with("msg_mock_"));
}

#[tokio::test]
async fn misc_routes_and_errors() {
    let addr = start().await;
    let r = request(addr, "GET", "/healthz", &[], "").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let r = request(addr, "GET", "/v1/models", &[], "").await;
    assert_eq!(r.json()["data"][0]["id"], "mock-1");
    let r = request(addr, "GET", "/nope", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"].is_string());

    let r = request(addr, "POST", "/v1/chat/completions", &[], "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = request(addr, "POST", "/v1/messages", &[], "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"type": "error", "error": {"type": "invalid_request_error", "message": r.json()["error"]["message"]}})
    );

    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-fault", "500")], "{}").await;
    assert_eq!(r.status, 500);
    assert_eq!(
        r.json(),
        json!({"error": {"message": "mock upstream failure", "type": "server_error", "param": null, "code": null}})
    );
    let r = request(addr, "POST", "/v1/messages", &[("x-mock-fault", "500")], "{}").await;
    assert_eq!(r.json(), json!({"type": "error", "error": {"type": "api_error", "message": "mock upstream failure"}}));
}

#[tokio::test]
async fn last_request_is_recorded() {
    let addr = start().await;
    let r = request(addr, "GET", "/mock/last-request", &[], "").await;
    assert_eq!(r.status, 404);
    request(
        addr,
        "POST",
        "/v1/messages",
        &[("authorization", "Bearer sk-test"), ("accept-encoding", "gzip")],
        r#"{"model":"m","messages":[{"role":"user","content":"[REDACTED]"}]}"#,
    )
    .await;
    let v = request(addr, "GET", "/mock/last-request", &[], "").await.json();
    assert_eq!(v["path"], "/v1/messages");
    assert_eq!(v["headers"]["authorization"], "Bearer sk-test");
    assert_eq!(v["headers"]["accept-encoding"], "gzip");
    assert_eq!(v["body"]["messages"][0]["content"], "[REDACTED]");

    request(addr, "POST", "/v1/completions", &[], "not json at all").await;
    let v = request(addr, "GET", "/mock/last-request", &[], "").await.json();
    assert_eq!(v["body"], "not json at all");
}

#[tokio::test]
async fn gzip_answer() {
    let addr = start().await;
    let r = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-gzip", "1"), ("x-mock-reply", "zipped")],
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let mut out = String::new();
    flate2::read::GzDecoder::new(&r.body[..]).read_to_string(&mut out).expect("gunzip");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["choices"][0]["message"]["content"], "zipped");
}

#[tokio::test]
async fn byte_split_reassembles() {
    let addr = start().await;
    let body = r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#;
    let r = request(
        addr,
        "POST",
        "/v1/messages",
        &[("x-mock-byte-split", "7"), ("x-mock-reply", "日本語のテキストです")],
        body,
    )
    .await;
    assert!(r.complete);
    let events = sse_events(&r.text());
    assert_eq!(events.last().and_then(|e| e.0.as_deref()), Some("message_stop"));
    let text: String = events
        .iter()
        .filter(|(n, _)| n.as_deref() == Some("content_block_delta"))
        .map(|(_, d)| {
            let v: Value = serde_json::from_str(d).expect("json");
            v["delta"]["text"].as_str().expect("text").to_owned()
        })
        .collect();
    assert_eq!(text, "日本語のテキストです");
}

#[tokio::test]
async fn reset_mid_stream_is_not_a_clean_end() {
    let addr = start().await;
    let streamed = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-fault", "reset-mid-stream"), ("x-mock-chunk", "2"), ("x-mock-reply", "abcdefghij")],
        r#"{"model":"m","stream":true,"messages":[]}"#,
    )
    .await;
    assert_eq!(streamed.status, 200);
    assert!(!streamed.complete, "stream must not end cleanly");
    let events = sse_events(&streamed.text());
    // role chunk + 2 of 5 deltas
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(!streamed.text().contains("[DONE]"));

    let plain = request(
        addr,
        "POST",
        "/v1/chat/completions",
        &[("x-mock-fault", "reset-mid-stream")],
        r#"{"model":"m","messages":[]}"#,
    )
    .await;
    assert_eq!(plain.status, 200);
    assert!(!plain.complete, "body must be shorter than content-length");
    assert!(!plain.body.is_empty());
}

#[tokio::test]
async fn stall_never_answers() {
    let addr = start().await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-mock-fault: stall\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(r.is_err(), "stall must not answer");
}

#[tokio::test]
async fn delay_between_deltas() {
    let addr = start().await;
    let t = std::time::Instant::now();
    let r = request(
        addr,
        "POST",
        "/v1/completions",
        &[("x-mock-delay-ms", "40"), ("x-mock-reply", "aaaabbbbcccc"), ("x-mock-chunk", "4")],
        r#"{"model":"m","stream":true,"prompt":"p"}"#,
    )
    .await;
    assert!(r.complete);
    assert!(t.elapsed() >= Duration::from_millis(80), "{:?}", t.elapsed());
    let events = sse_events(&r.text());
    // 3 deltas + finish chunk + [DONE]
    assert_eq!(events.len(), 5);
    let last: Value = serde_json::from_str(&events[3].1).expect("json");
    assert_eq!(last["choices"][0]["text"], "");
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
}

// ---------------------------------------------------------------------------
// Helpers for the shapes below.

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &Value) -> RawResponse {
    request(addr, "POST", path, headers, &body.to_string()).await
}

/// The JSON of each `data:` event, `[DONE]` left out.
fn data_events(resp: &RawResponse) -> Vec<Value> {
    sse_events(&resp.text())
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .map(|(_, d)| serde_json::from_str(&d).expect("event JSON"))
        .collect()
}

/// (event name, JSON) of each event; the name must match the JSON `type`.
fn named_events(resp: &RawResponse) -> Vec<(String, Value)> {
    sse_events(&resp.text())
        .into_iter()
        .map(|(n, d)| {
            let name = n.expect("event: line");
            let v: Value = serde_json::from_str(&d).expect("event JSON");
            assert_eq!(v["type"].as_str(), Some(name.as_str()), "{v}");
            (name, v)
        })
        .collect()
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt-test", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// `{"q":"\u0059es"}` as sent: the escape stays an escape.
const ESCAPED_ARGS: &str = r#"{"q":"\u0059es"}"#;
const TOOL_CALLS: &str =
    r#"[{"name":"lookup","arguments":"{\"q\":\"\\u0059es\"}"},{"name":"add","arguments":"{\"a\":1}"}]"#;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mock-llm-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

// ---------------------------------------------------------------------------
// Raw replay.

#[tokio::test]
async fn raw_replay_serves_the_exact_bytes() {
    let addr = start().await;
    // Not SSE: served whole as JSON, byte for byte (even invalid JSON), with
    // the requested status; the request body need not be JSON.
    let raw = b"{\"choices\":[{\"message\":{\"content\":\"trig\\u0067er\"}}]} trailing";
    let enc = B64.encode(raw);
    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-raw-b64", &enc)], "not json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("content-length"), Some(raw.len().to_string().as_str()));
    assert_eq!(r.body, raw);
    let r = request(addr, "POST", "/v1/messages", &[("x-mock-raw-b64", &enc), ("x-mock-status", "429")], "{}").await;
    assert_eq!((r.status, r.body.as_slice()), (429, &raw[..]));

    // SSE (after a BOM), CRLF and LF events and a comment: one piece per
    // event, so the delay applies between events; bytes unchanged.
    let sse =
        "\u{feff}: keep-alive\r\n\r\nevent: a\r\ndata: {\"x\":\"1\"}\r\n\r\ndata: {\"x\":\"2\"}\n\ndata: [DONE]\n\n";
    let enc = B64.encode(sse);
    let t = std::time::Instant::now();
    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-raw-b64", &enc), ("x-mock-delay-ms", "40")], "{}")
        .await;
    assert!(t.elapsed() >= Duration::from_millis(120), "3 pauses between 4 events: {:?}", t.elapsed());
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert_eq!(r.text(), sse);
    let r = request(addr, "POST", "/v1/responses", &[("x-mock-raw-b64", &enc), ("x-mock-byte-split", "3")], "{}").await;
    assert_eq!(r.text(), sse, "byte-split pieces reassemble exactly");

    // Mistakes are loud.
    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-raw-b64", "!!!")], "{}").await;
    assert_eq!(r.status, 400);
    let r = post(addr, "/v1/chat/completions", &[("x-mock-status", "503")], &chat_body(false)).await;
    assert_eq!(r.status, 400, "x-mock-status alone is a mistake");
    assert!(r.json()["error"]["message"].as_str().expect("message").contains("x-mock-status"));
    let r =
        request(addr, "POST", "/v1/chat/completions", &[("x-mock-raw-b64", &enc), ("x-mock-fault", "500")], "").await;
    assert_eq!(r.status, 500, "faults still apply to raw answers");
}

#[tokio::test]
async fn fixture_replay_reads_plain_names_from_the_fixtures_dir() {
    let dir = temp_dir("fixtures");
    let sse = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n";
    std::fs::write(dir.join("start.sse"), sse).expect("write fixture");
    std::fs::write(dir.join("whole.json"), "{\"id\":\"x\"}").expect("write fixture");
    std::fs::write(dir.join("sniffed.txt"), "data: 1\n\n").expect("write fixture");
    let options = Options { fixtures: Some(dir.clone()), ..Options::default() };
    let (addr, _task) = mock_llm::spawn_with(options).await.expect("spawn");

    let r = request(addr, "POST", "/v1/messages", &[("x-mock-replay", "start.sse")], "").await;
    assert_eq!((r.status, r.header("content-type"), r.text().as_str()), (200, Some("text/event-stream"), sse));
    let r =
        request(addr, "POST", "/v1/chat/completions", &[("x-mock-replay", "whole.json"), ("x-mock-status", "201")], "")
            .await;
    assert_eq!(
        (r.status, r.header("content-type"), r.text().as_str()),
        (201, Some("application/json"), "{\"id\":\"x\"}")
    );
    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-replay", "sniffed.txt")], "").await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));

    for bad in ["../start.sse", "sub/start.sse", "..", "missing.sse"] {
        let r = request(addr, "POST", "/v1/messages", &[("x-mock-replay", bad)], "").await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["type"], "error", "Anthropic error shape on the Anthropic route");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Without a fixtures directory, replay requests are refused.
    let addr = start().await;
    let r = request(addr, "POST", "/v1/chat/completions", &[("x-mock-replay", "start.sse")], "").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().expect("message").contains("--fixtures"));
}

// ---------------------------------------------------------------------------
// OpenAI chat completions.

#[tokio::test]
async fn chat_n_choices_are_distinct() {
    let addr = start().await;
    let body = json!({"model": "m", "n": 3, "messages": [{"role": "user", "content": "hi"}]});
    let v =
        post(addr, "/v1/chat/completions", &[("x-mock-reply", "base"), ("x-mock-reply-2", "two")], &body).await.json();
    let texts: Vec<&str> = v["choices"]
        .as_array()
        .expect("choices")
        .iter()
        .map(|c| c["message"]["content"].as_str().expect("text"))
        .collect();
    assert_eq!(texts, ["base", "base (variant 1)", "two"]);
    assert_eq!(v["choices"][2]["index"], 2);
}

#[tokio::test]
async fn chat_logprobs_whole_and_streamed() {
    let addr = start().await;
    let h = [("x-mock-reply", "héllo wörld"), ("x-mock-chunk", "4")];
    let mut body = chat_body(false);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(3);
    let v = post(addr, "/v1/chat/completions", &h, &body).await.json();
    let lp = &v["choices"][0]["logprobs"];
    assert!(lp["refusal"].is_null());
    let entries = lp["content"].as_array().expect("content logprobs");
    let tokens: Vec<&str> = entries.iter().map(|e| e["token"].as_str().expect("token")).collect();
    assert_eq!(tokens, ["héll", "o wö", "rld"]);
    for e in entries {
        let token = e["token"].as_str().expect("token");
        let bytes: Vec<u8> =
            e["bytes"].as_array().expect("bytes").iter().map(|b| b.as_u64().expect("byte") as u8).collect();
        assert_eq!(bytes, token.as_bytes(), "bytes are the token's UTF-8");
        assert!(e["logprob"].as_f64().expect("logprob") < 0.0);
        let top = e["top_logprobs"].as_array().expect("top");
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["token"], e["token"]);
        assert!(top.iter().all(|t| t["bytes"].is_array() && t["logprob"].is_number()));
    }

    body["stream"] = json!(true);
    let chunks = data_events(&post(addr, "/v1/chat/completions", &h, &body).await);
    assert_eq!(chunks[0]["choices"][0]["logprobs"], json!({"content": [], "refusal": null}));
    let deltas = &chunks[1..chunks.len() - 1];
    assert_eq!(deltas.len(), 3);
    for (d, want) in deltas.iter().zip(&tokens) {
        let c = &d["choices"][0];
        assert_eq!(c["delta"]["content"].as_str(), Some(*want));
        assert_eq!(c["logprobs"]["content"][0]["token"].as_str(), Some(*want));
        assert_eq!(c["logprobs"]["content"][0]["top_logprobs"].as_array().map(Vec::len), Some(3));
    }
    assert!(chunks[chunks.len() - 1]["choices"][0]["logprobs"].is_null());

    body["top_logprobs"] = json!(21);
    assert_eq!(post(addr, "/v1/chat/completions", &h, &body).await.status, 400);
}

#[tokio::test]
async fn chat_reasoning_content_before_the_content() {
    let addr = start().await;
    let h = [("x-mock-reply", "Answer."), ("x-mock-reasoning", "First think, then answer."), ("x-mock-chunk", "6")];
    let v = post(addr, "/v1/chat/completions", &h, &chat_body(false)).await.json();
    let m = &v["choices"][0]["message"];
    assert_eq!(
        (m["content"].as_str(), m["reasoning_content"].as_str()),
        (Some("Answer."), Some("First think, then answer."))
    );
    assert_eq!(v["usage"]["completion_tokens_details"]["reasoning_tokens"], 4);
    assert_eq!(v["usage"]["completion_tokens"], 1 + 4);

    let chunks = data_events(&post(addr, "/v1/chat/completions", &h, &chat_body(true)).await);
    let kinds: Vec<(&str, &str)> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| {
            let d = &c["choices"][0]["delta"];
            match (d["reasoning_content"].as_str(), d["content"].as_str()) {
                (Some(r), None) => ("reasoning", r),
                (None, Some(t)) => ("content", t),
                _ => panic!("unexpected delta {d}"),
            }
        })
        .collect();
    let reasoning: String = kinds.iter().take_while(|k| k.0 == "reasoning").map(|k| k.1).collect();
    let content: String = kinds.iter().skip_while(|k| k.0 == "reasoning").map(|k| k.1).collect();
    assert_eq!(reasoning, "First think, then answer.");
    assert_eq!(content, "Answer.");
    assert!(kinds.iter().skip_while(|k| k.0 == "reasoning").all(|k| k.0 == "content"), "reasoning comes first");
}

#[tokio::test]
async fn chat_tool_calls_whole_and_split_mid_escape() {
    let addr = start().await;
    let v = post(addr, "/v1/chat/completions", &[("x-mock-tool-calls", TOOL_CALLS)], &chat_body(false)).await.json();
    let c = &v["choices"][0];
    assert_eq!(c["finish_reason"], "tool_calls");
    assert!(c["message"]["content"].is_null(), "tool calls alone: content null");
    let calls = c["message"]["tool_calls"].as_array().expect("tool_calls");
    assert_eq!(calls.len(), 2);
    assert!(calls[0]["id"].as_str().expect("id").starts_with("call_"));
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"], json!({"name": "lookup", "arguments": ESCAPED_ARGS}));

    // Streamed, 5 characters per argument delta: the \u0059 escape is cut.
    let h = [("x-mock-tool-calls", TOOL_CALLS), ("x-mock-chunk", "5")];
    let chunks = data_events(&post(addr, "/v1/chat/completions", &h, &chat_body(true)).await);
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": null}));
    assert_eq!(chunks[chunks.len() - 1]["choices"][0]["finish_reason"], "tool_calls");
    let parts: Vec<&Value> =
        chunks[1..chunks.len() - 1].iter().map(|c| &c["choices"][0]["delta"]["tool_calls"][0]).collect();
    let order: Vec<u64> = parts.iter().map(|p| p["index"].as_u64().expect("index")).collect();
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 0], "interleaved by index");
    assert!(parts[0]["id"].as_str().expect("id").starts_with("call_"));
    assert_eq!(parts[0]["type"], "function");
    assert_eq!(parts[0]["function"], json!({"name": "lookup", "arguments": ""}));
    let pieces: Vec<&str> = parts
        .iter()
        .filter(|p| p["index"] == 0 && p.get("id").is_none())
        .map(|p| p["function"]["arguments"].as_str().expect("piece"))
        .collect();
    assert_eq!(pieces, [r#"{"q":"#, r#""\u00"#, r#"59es""#, "}"]);
    assert_eq!(pieces.concat(), ESCAPED_ARGS);

    let h = [("x-mock-tool-calls", TOOL_CALLS), ("x-mock-chunk", "5"), ("x-mock-tool-order", "sequential")];
    let chunks = data_events(&post(addr, "/v1/chat/completions", &h, &chat_body(true)).await);
    let order: Vec<u64> = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| c["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64().expect("index"))
        .collect();
    assert_eq!(order, [0, 0, 0, 0, 0, 1, 1, 1]);

    // With an explicit reply the text comes first, then the calls.
    let h = [("x-mock-tool-calls", TOOL_CALLS), ("x-mock-reply", "Looking it up.")];
    let v = post(addr, "/v1/chat/completions", &h, &chat_body(false)).await.json();
    assert_eq!(v["choices"][0]["message"]["content"], "Looking it up.");
    let r = post(addr, "/v1/chat/completions", &[("x-mock-tool-calls", "[{\"arguments\":\"{}\"}]")], &chat_body(false))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn chat_refusal_whole_and_streamed() {
    let addr = start().await;
    let h = [("x-mock-refusal", "I can't help with that."), ("x-mock-chunk", "6")];
    let v = post(addr, "/v1/chat/completions", &h, &chat_body(false)).await.json();
    let m = &v["choices"][0]["message"];
    assert!(m["content"].is_null());
    assert_eq!(m["refusal"], "I can't help with that.");
    let chunks = data_events(&post(addr, "/v1/chat/completions", &h, &chat_body(true)).await);
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": null, "refusal": ""}));
    let refusal: String = chunks[1..chunks.len() - 1]
        .iter()
        .map(|c| {
            let d = &c["choices"][0]["delta"];
            assert!(d.get("content").is_none(), "{d}");
            d["refusal"].as_str().expect("refusal delta").to_owned()
        })
        .collect();
    assert_eq!(refusal, "I can't help with that.");
}

// ---------------------------------------------------------------------------
// OpenAI legacy completions.

#[tokio::test]
async fn legacy_completions_logprobs_and_n() {
    let addr = start().await;
    let h = [("x-mock-reply", "hello there"), ("x-mock-chunk", "4")];
    let body = json!({"model": "davinci", "prompt": "Say", "logprobs": 2, "n": 2});
    let v = post(addr, "/v1/completions", &h, &body).await.json();
    let lp = &v["choices"][0]["logprobs"];
    assert_eq!(lp["tokens"], json!(["hell", "o th", "ere"]));
    assert_eq!(lp["text_offset"], json!([3, 7, 11]), "offsets count from the start of the prompt");
    assert_eq!(lp["token_logprobs"].as_array().map(Vec::len), Some(3));
    let tops = lp["top_logprobs"].as_array().expect("top_logprobs");
    assert!(tops.iter().all(|t| t.as_object().map(serde_json::Map::len) == Some(2)));
    assert!(tops[0].get("hell").is_some_and(Value::is_number));
    assert_eq!(v["choices"][1]["text"], "hello there (variant 1)");

    let mut body = body;
    body["stream"] = json!(true);
    let chunks = data_events(&post(addr, "/v1/completions", &h, &body).await);
    let mut text = [String::new(), String::new()];
    let mut offsets: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
    for c in &chunks {
        let ch = &c["choices"][0];
        let i = ch["index"].as_u64().expect("index") as usize;
        text[i].push_str(ch["text"].as_str().expect("text"));
        if let Some(o) = ch["logprobs"]["text_offset"].as_array() {
            assert_eq!(ch["logprobs"]["tokens"][0], ch["text"]);
            offsets[i].extend(o.iter().map(|x| x.as_u64().expect("offset")));
        }
    }
    assert_eq!(text, ["hello there".to_owned(), "hello there (variant 1)".to_owned()]);
    assert_eq!(offsets[0], [3, 7, 11]);
    assert_eq!(offsets[1].len(), 6);

    let r = post(addr, "/v1/completions", &h, &json!({"model": "d", "prompt": "x", "logprobs": 6})).await;
    assert_eq!(r.status, 400);
}

// ---------------------------------------------------------------------------
// Anthropic Messages.

#[tokio::test]
async fn anthropic_thinking_search_and_tool_use() {
    let addr = start().await;
    let tools = r#"[{"name":"lookup","arguments":"{\"q\":\"\\u0059es\"}"}]"#;
    let h = [
        ("x-mock-thinking", "Let me think."),
        ("x-mock-server-tools", "1"),
        ("x-mock-tool-calls", tools),
        ("x-mock-reply", "Paris is the capital."),
        ("x-mock-chunk", "4"),
    ];
    let body = json!({"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "capital of France?"}]});
    let v = post(addr, "/v1/messages", &h, &body).await.json();
    let types: Vec<&str> =
        v["content"].as_array().expect("content").iter().map(|b| b["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["thinking", "server_tool_use", "web_search_tool_result", "text", "tool_use"]);
    let c = &v["content"];
    assert_eq!(c[0]["thinking"], "Let me think.");
    assert!(!c[0]["signature"].as_str().expect("signature").is_empty());
    assert_eq!(c[1]["name"], "web_search");
    assert_eq!(c[1]["input"], json!({"query": "capital of France?"}));
    assert_eq!(c[2]["tool_use_id"], c[1]["id"]);
    let result = &c[2]["content"][0];
    assert_eq!(result["type"], "web_search_result");
    for field in ["title", "url", "encrypted_content", "page_age"] {
        assert!(result[field].is_string(), "{field}");
    }
    assert_eq!(c[3]["citations"][0]["type"], "web_search_result_location");
    assert_eq!(c[3]["citations"][0]["url"], result["url"]);
    assert_eq!(c[4]["input"], json!({"q": "Yes"}));
    assert!(c[4]["id"].as_str().expect("id").starts_with("toolu_"));
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["server_tool_use"]["web_search_requests"], 1);

    let mut body = body;
    body["stream"] = json!(true);
    let events = named_events(&post(addr, "/v1/messages", &h, &body).await);
    let starts: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, v)| v["content_block"]["type"].as_str().expect("type"))
        .collect();
    assert_eq!(starts, types);
    let deltas = |index: u64| -> Vec<&Value> {
        events
            .iter()
            .filter(|(n, v)| n == "content_block_delta" && v["index"] == index)
            .map(|(_, v)| &v["delta"])
            .collect()
    };
    // Thinking: thinking_delta pieces, then the signature just before the stop.
    let d0 = deltas(0);
    let thinking: String =
        d0.iter().filter(|d| d["type"] == "thinking_delta").map(|d| d["thinking"].as_str().expect("t")).collect();
    assert_eq!(thinking, "Let me think.");
    assert_eq!(d0.last().map(|d| d["type"].clone()), Some(json!("signature_delta")));
    let at = |name: &str, index: u64| events.iter().position(|(n, v)| n == name && v["index"] == index).expect("event");
    assert_eq!(at("content_block_stop", 0), at("content_block_start", 1) - 1);
    // Search: the query as input_json_delta pieces; the result block has no deltas.
    let query: String = deltas(1).iter().map(|d| d["partial_json"].as_str().expect("json")).collect();
    assert_eq!(serde_json::from_str::<Value>(&query).expect("query JSON"), json!({"query": "capital of France?"}));
    assert!(deltas(2).is_empty());
    // Text: starts with empty citations, a citations_delta, then the text.
    let text_start = &events[at("content_block_start", 3)].1["content_block"];
    assert_eq!(text_start, &json!({"citations": [], "type": "text", "text": ""}));
    let d3 = deltas(3);
    assert_eq!(d3[0]["type"], "citations_delta");
    assert_eq!(d3[0]["citation"]["type"], "web_search_result_location");
    let text: String = d3[1..].iter().map(|d| d["text"].as_str().expect("text_delta")).collect();
    assert_eq!(text, "Paris is the capital.");
    // Tool use: an empty first piece, then the raw arguments 4 characters at a time.
    let d4: Vec<&str> = deltas(4).iter().map(|d| d["partial_json"].as_str().expect("json")).collect();
    assert_eq!(d4, ["", r#"{"q""#, r#":"\u"#, "0059", r#"es"}"#]);
    let md = &events[events.len() - 2].1;
    assert_eq!(md["delta"]["stop_reason"], "tool_use");

    let r = post(addr, "/v1/messages", &[("x-mock-tool-calls", r#"[{"name":"f","arguments":"[1]"}]"#)], &body).await;
    assert_eq!(r.status, 400, "Anthropic tool input must be an object");
}

// ---------------------------------------------------------------------------
// OpenAI Responses API.

#[tokio::test]
async fn responses_whole_and_streamed() {
    let addr = start().await;
    let tools = r#"[{"name":"lookup","arguments":"{\"q\":1}"}]"#;
    let h = [
        ("x-mock-reply", "Hi there!"),
        ("x-mock-reasoning", "Greet back."),
        ("x-mock-tool-calls", tools),
        ("x-mock-chunk", "50"),
    ];
    let body = json!({"model": "gpt-r", "instructions": "Be kind.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hello"}]}]});
    let v = post(addr, "/v1/responses", &h, &body).await.json();
    assert!(v["id"].as_str().expect("id").starts_with("resp_"));
    assert_eq!((v["object"].as_str(), v["status"].as_str()), (Some("response"), Some("completed")));
    assert_eq!(v["instructions"], "Be kind.");
    assert_eq!(v["model"], "gpt-r");
    let out = v["output"].as_array().expect("output");
    assert_eq!(
        out.iter().map(|o| o["type"].as_str().expect("type")).collect::<Vec<_>>(),
        ["reasoning", "message", "function_call"]
    );
    assert_eq!(out[0]["summary"], json!([{"type": "summary_text", "text": "Greet back."}]));
    assert_eq!(out[1]["role"], "assistant");
    assert_eq!(
        out[1]["content"],
        json!([{"type": "output_text", "annotations": [], "logprobs": [], "text": "Hi there!"}])
    );
    assert_eq!((out[2]["name"].as_str(), out[2]["arguments"].as_str()), (Some("lookup"), Some(r#"{"q":1}"#)));
    assert!(out[2]["call_id"].as_str().expect("call_id").starts_with("call_"));
    let u = &v["usage"];
    // "Be kind.\nhello" = 3 tokens; output: 2 text + 1 arguments + 2 reasoning.
    assert_eq!(
        (u["input_tokens"].as_u64(), u["output_tokens"].as_u64(), u["total_tokens"].as_u64()),
        (Some(3), Some(5), Some(8))
    );
    assert_eq!(u["output_tokens_details"]["reasoning_tokens"], 2);
    assert_eq!(u["input_tokens_details"]["cached_tokens"], 0);

    let mut body = body;
    body["stream"] = json!(true);
    let events = named_events(&post(addr, "/v1/responses", &h, &body).await);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, e)) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "sequence numbers count from 0");
    }
    let created = &events[0].1["response"];
    assert_eq!(
        (created["status"].as_str(), created["output"].clone(), created["usage"].clone()),
        (Some("in_progress"), json!([]), Value::Null)
    );
    let delta = &events[10].1;
    assert_eq!(delta["item_id"], events[8].1["item"]["id"]);
    assert_eq!((delta["output_index"].as_u64(), delta["content_index"].as_u64()), (Some(1), Some(0)));
    assert_eq!((delta["delta"].as_str(), delta["logprobs"].clone()), (Some("Hi there!"), json!([])));
    assert_eq!(events[11].1["text"], "Hi there!");
    assert_eq!(events[12].1["part"]["text"], "Hi there!");
    assert_eq!(events[13].1["item"]["status"], "completed");
    assert_eq!(events[15].1["delta"], r#"{"q":1}"#);
    assert_eq!(events[16].1["arguments"], r#"{"q":1}"#);
    let completed = &events[18].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["id"], created["id"]);
    let types: Vec<&str> =
        completed["output"].as_array().expect("output").iter().map(|o| o["type"].as_str().expect("t")).collect();
    assert_eq!(types, ["reasoning", "message", "function_call"]);
    assert_eq!(completed["output"][1]["content"][0]["text"], "Hi there!");
}

// ---------------------------------------------------------------------------
// OpenAI embeddings.

#[tokio::test]
async fn embeddings_float_and_base64() {
    let addr = start().await;
    let v = post(addr, "/v1/embeddings", &[], &json!({"model": "emb", "input": ["one", "two words"], "dimensions": 4}))
        .await
        .json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "emb");
    assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let data = v["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    assert_eq!((data[1]["object"].as_str(), data[1]["index"].as_u64()), (Some("embedding"), Some(1)));
    let floats: Vec<f64> =
        data[0]["embedding"].as_array().expect("floats").iter().map(|x| x.as_f64().expect("f")).collect();
    assert_eq!(floats.len(), 4);
    assert!((floats.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-4, "unit length");

    let v = post(
        addr,
        "/v1/embeddings",
        &[],
        &json!({"model": "emb", "input": "one", "dimensions": 4, "encoding_format": "base64"}),
    )
    .await
    .json();
    let raw = B64.decode(v["data"][0]["embedding"].as_str().expect("base64")).expect("valid base64");
    let decoded: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let as_f32: Vec<f32> = floats.iter().map(|x| *x as f32).collect();
    assert_eq!(decoded, as_f32, "same text, same vector, in both encodings");
    let text =
        post(addr, "/v1/embeddings", &[], &json!({"model": "emb", "input": "one", "dimensions": 4})).await.text();
    let first = text.split("\"embedding\":[").nth(1).and_then(|t| t.split(',').next()).expect("first float");
    assert!(first.len() <= 12, "floats are written as short f32 decimals, as the API does: {first}");

    let v = post(addr, "/v1/embeddings", &[], &json!({"model": "emb", "input": "x"})).await.json();
    assert_eq!(v["data"][0]["embedding"].as_array().map(Vec::len), Some(1536));
    assert_eq!(post(addr, "/v1/embeddings", &[], &json!({"model": "emb"})).await.status, 400);
}

// ---------------------------------------------------------------------------
// Gemini.

#[tokio::test]
async fn gemini_generate_and_stream() {
    let addr = start().await;
    let body = json!({
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "say hi"}]}],
    });
    let h = [("x-mock-reply", "a<b & c>d"), ("x-mock-chunk", "4")];
    let r = post(addr, "/v1beta/models/gemini-2.5-flash:generateContent", &h, &body).await;
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("{\n  \"candidates\": ["), "pretty-printed as Google does");
    assert!(r.text().contains(r"a\u003cb \u0026 c\u003ed"), "HTML-safe escapes as Google does");
    let v = r.json();
    let cand = &v["candidates"][0];
    assert_eq!(cand["content"], json!({"parts": [{"text": "a<b & c>d"}], "role": "model"}));
    assert_eq!((cand["finishReason"].as_str(), cand["index"].as_u64()), (Some("STOP"), Some(0)));
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 3);
    assert_eq!(v["modelVersion"], "gemini-2.5-flash");
    assert!(v["responseId"].is_string());

    let r = post(addr, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", &h, &body).await;
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.text().starts_with("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": "));
    assert!(r.text().ends_with("}\r\n\r\n"), "events end in CRLF CRLF");
    let chunks = data_events(&r);
    assert_eq!(chunks.len(), 3);
    let text: String =
        chunks.iter().map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().expect("text")).collect();
    assert_eq!(text, "a<b & c>d");
    assert!(chunks[..2].iter().all(|c| c["candidates"][0].get("finishReason").is_none()));
    assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
    assert!(chunks.iter().all(|c| c["responseId"] == chunks[0]["responseId"]));

    let r = post(addr, "/v1/models/gemini-2.5-flash:streamGenerateContent", &h, &body).await;
    assert_eq!(r.header("content-type"), Some("application/json"));
    let arr = r.json();
    assert_eq!(arr.as_array().map(Vec::len), Some(3), "without alt=sse: one JSON array of the chunks");
    assert_eq!(arr[2]["candidates"][0]["finishReason"], "STOP");

    let r = post(addr, "/v1beta/models/g:generateContent", &[("x-mock-fault", "500")], &body).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), json!({"error": {"code": 500, "message": "mock upstream failure", "status": "INTERNAL"}}));
    let r = request(addr, "POST", "/v1beta/models/g:generateContent", &[], "{bad").await;
    assert_eq!((r.status, r.json()["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let r = post(addr, "/v1beta/models/g:countTokens", &[], &body).await;
    assert_eq!((r.status, r.json()["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
}

// ---------------------------------------------------------------------------
// Azure OpenAI.

#[tokio::test]
async fn azure_paths_add_content_filter_results() {
    let addr = start().await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let path = "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21";
    let v = post(addr, path, &[("x-mock-reply", "Hello.")], &body).await.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "my-gpt", "the deployment stands in for a missing model");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello.");
    let pf = &v["prompt_filter_results"][0];
    assert_eq!(pf["prompt_index"], 0);
    assert_eq!(pf["content_filter_results"]["jailbreak"], json!({"filtered": false, "detected": false}));
    assert_eq!(v["choices"][0]["content_filter_results"]["hate"], json!({"filtered": false, "severity": "safe"}));

    let mut stream_body = body.clone();
    stream_body["stream"] = json!(true);
    let chunks = data_events(&post(addr, path, &[("x-mock-reply", "Hello.")], &stream_body).await);
    assert_eq!(chunks[0]["choices"], json!([]), "the prompt filter chunk comes first, without choices");
    assert_eq!((chunks[0]["id"].as_str(), chunks[0]["object"].as_str()), (Some(""), Some("")));
    assert!(chunks[0]["prompt_filter_results"].is_array());
    assert_eq!(chunks[1]["choices"][0]["content_filter_results"], json!({}));
    assert_eq!(chunks[2]["choices"][0]["delta"]["content"], "Hello.");
    assert_eq!(chunks[2]["choices"][0]["content_filter_results"]["violence"]["severity"], "safe");

    let r = post(addr, "/openai/deployments/my-gpt/chat/completions", &[], &body).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": {"code": "404", "message": "Resource not found"}}));

    let v = post(addr, "/openai/v1/chat/completions", &[], &json!({"model": "gpt-4o", "messages": []})).await.json();
    assert_eq!(v["model"], "gpt-4o");
    assert!(v["prompt_filter_results"].is_array());
    let v = post(
        addr,
        "/openai/deployments/emb/embeddings?api-version=2024-10-21",
        &[],
        &json!({"input": "x", "dimensions": 2}),
    )
    .await
    .json();
    assert_eq!((v["model"].as_str(), v["data"][0]["embedding"].as_array().map(Vec::len)), (Some("emb"), Some(2)));
}

#[tokio::test]
async fn reset_mid_stream_cuts_the_new_shapes_too() {
    let addr = start().await;
    let h = [("x-mock-fault", "reset-mid-stream"), ("x-mock-chunk", "2"), ("x-mock-reply", "abcdefgh")];
    let r = post(addr, "/v1/responses", &h, &json!({"model": "m", "input": "x", "stream": true})).await;
    assert_eq!(r.status, 200);
    assert!(!r.complete, "stream must not end cleanly");
    let names: Vec<String> = sse_events(&r.text()).into_iter().filter_map(|(n, _)| n).collect();
    assert_eq!(names.iter().filter(|n| *n == "response.output_text.delta").count(), 2, "half of 4 deltas: {names:?}");
    assert!(!names.iter().any(|n| n == "response.completed"));
}
