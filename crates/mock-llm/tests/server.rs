//! In-process tests: start the server on 127.0.0.1:0 and talk raw HTTP/1.1.

use std::io::Read as _;
use std::net::SocketAddr;
use std::time::Duration;

use mock_llm::{Script, ScriptRule};
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

/// Parses SSE text into (event name, data) pairs.
fn sse_events(text: &str) -> Vec<(Option<String>, String)> {
    text.split("\n\n")
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
        json!({"model": "m", "stream": true, "n": 2, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let resp =
        request(addr, "POST", "/v1/chat/completions", &[("x-mock-reply", "abcdef"), ("x-mock-chunk", "3")], &body)
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
    let expected: Vec<(u64, String)> =
        [(0, ""), (1, ""), (0, "abc"), (1, "abc"), (0, "def"), (1, "def"), (0, "-"), (1, "-")]
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
