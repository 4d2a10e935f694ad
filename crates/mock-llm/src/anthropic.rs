//! Anthropic Messages-shaped answers and errors.
//!
//! Content blocks, in order: a `thinking` block (`x-mock-thinking`), a
//! `server_tool_use` web search and its `web_search_tool_result`
//! (`x-mock-server-tools`), the `text` block (with `citations` after a web
//! search), then one `tool_use` block per `x-mock-tool-calls` entry.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::body::{Event, Events};
use crate::reply::chunk_chars;
use crate::{sse, Answer};

/// The URL and title of the mock web search result.
const RESULT_URL: &str = "https://example.com/mock-search-result";
const RESULT_TITLE: &str = "Mock search result";

/// Most characters of the prompt used as the web search query.
const QUERY_CHARS: usize = 100;
/// Most characters of the reply quoted as a citation's `cited_text`.
const CITED_CHARS: usize = 150;

/// One content block, described once and rendered whole or streamed.
enum Block {
    Thinking { thinking: String, signature: String },
    ServerToolUse { id: String, input: Value },
    WebSearchResult { tool_use_id: String, content: Value },
    Text { text: String, citations: Option<Vec<Value>> },
    ToolUse { id: String, name: String, input: Map<String, Value>, raw: String },
}

fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn opaque(tag: &str, seq: u64) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("mock-{tag}-{seq}-{}", "x".repeat(48)))
}

fn blocks(a: &Answer<'_>) -> Vec<Block> {
    let x = a.extras;
    let mut out = Vec::new();
    if let Some(t) = &x.thinking {
        out.push(Block::Thinking { thinking: t.clone(), signature: opaque("signature", a.seq) });
    }
    let mut citations = None;
    if x.server_tools {
        let id = format!("srvtoolu_mock_{}", a.seq);
        let query = prefix_chars(a.prompt.trim(), QUERY_CHARS).to_owned();
        out.push(Block::ServerToolUse { id: id.clone(), input: json!({"query": query}) });
        out.push(Block::WebSearchResult {
            tool_use_id: id,
            content: json!([{
                "type": "web_search_result",
                "title": RESULT_TITLE,
                "url": RESULT_URL,
                "encrypted_content": opaque("content", a.seq),
                "page_age": "2 days ago",
            }]),
        });
        citations = Some(vec![json!({
            "type": "web_search_result_location",
            "cited_text": prefix_chars(a.text(), CITED_CHARS),
            "url": RESULT_URL,
            "title": RESULT_TITLE,
            "encrypted_index": opaque("index", a.seq),
        })]);
    }
    if x.has_text() {
        out.push(Block::Text { text: a.text().to_owned(), citations });
    }
    for (k, c) in x.tool_calls.iter().enumerate() {
        out.push(Block::ToolUse {
            id: format!("toolu_mock_{}_{k}", a.seq),
            name: c.name.clone(),
            input: c.input().unwrap_or_default(),
            raw: c.arguments.clone(),
        });
    }
    out
}

fn direct() -> Value {
    json!({"type": "direct"})
}

impl Block {
    /// The block as it appears in a whole `message`.
    fn whole(&self) -> Value {
        match self {
            Block::Thinking { thinking, signature } => {
                json!({"type": "thinking", "thinking": thinking, "signature": signature})
            }
            Block::ServerToolUse { id, input } => {
                json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": input, "caller": direct()})
            }
            Block::WebSearchResult { tool_use_id, content } => json!({
                "type": "web_search_tool_result",
                "tool_use_id": tool_use_id,
                "content": content,
                "caller": direct(),
            }),
            Block::Text { text, citations: None } => json!({"type": "text", "text": text}),
            Block::Text { text, citations: Some(c) } => json!({"citations": c, "type": "text", "text": text}),
            Block::ToolUse { id, name, input, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": input, "caller": direct()})
            }
        }
    }

    /// The block as `content_block_start` announces it (empty content).
    fn start(&self) -> Value {
        match self {
            Block::Thinking { .. } => json!({"type": "thinking", "thinking": "", "signature": ""}),
            Block::ServerToolUse { id, .. } => {
                json!({"type": "server_tool_use", "id": id, "name": "web_search", "input": {}, "caller": direct()})
            }
            Block::WebSearchResult { .. } => self.whole(),
            Block::Text { citations: None, .. } => json!({"type": "text", "text": ""}),
            Block::Text { citations: Some(_), .. } => json!({"citations": [], "type": "text", "text": ""}),
            Block::ToolUse { id, name, .. } => {
                json!({"type": "tool_use", "id": id, "name": name, "input": {}, "caller": direct()})
            }
        }
    }

    /// The `delta` objects that fill the block, `chunk` characters at a time.
    fn deltas(&self, chunk: usize) -> Vec<Value> {
        let json_deltas = |raw: &str| {
            let mut out = vec![json!({"type": "input_json_delta", "partial_json": ""})];
            out.extend(
                chunk_chars(raw, chunk).into_iter().map(|p| json!({"type": "input_json_delta", "partial_json": p})),
            );
            out
        };
        match self {
            Block::Thinking { thinking, signature } => {
                let mut out: Vec<Value> = chunk_chars(thinking, chunk)
                    .into_iter()
                    .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                    .collect();
                out.push(json!({"type": "signature_delta", "signature": signature}));
                out
            }
            Block::ServerToolUse { input, .. } => json_deltas(&input.to_string()),
            Block::WebSearchResult { .. } => Vec::new(),
            Block::Text { text, citations } => {
                let mut out: Vec<Value> =
                    citations.iter().flatten().map(|c| json!({"type": "citations_delta", "citation": c})).collect();
                out.extend(chunk_chars(text, chunk).into_iter().map(|p| json!({"type": "text_delta", "text": p})));
                out
            }
            Block::ToolUse { raw, .. } => json_deltas(raw),
        }
    }
}

fn stop_reason(a: &Answer<'_>) -> &'static str {
    if a.extras.tool_calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    }
}

fn usage(a: &Answer<'_>) -> Value {
    let mut u = json!({"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens});
    if a.extras.server_tools {
        u["server_tool_use"] = json!({"web_search_requests": 1, "web_fetch_requests": 0});
    }
    u
}

/// The cumulative `usage` of `message_delta`.
fn message_delta_usage(a: &Answer<'_>) -> Value {
    let mut u = json!({"output_tokens": a.completion_tokens});
    if a.extras.server_tools {
        u["server_tool_use"] = json!({"web_search_requests": 1, "web_fetch_requests": 0});
    }
    u
}

/// Non-streamed `message` object.
pub(crate) fn message_json(a: &Answer<'_>) -> Vec<u8> {
    let content: Vec<Value> = blocks(a).iter().map(Block::whole).collect();
    json!({
        "id": format!("msg_mock_{}", a.seq),
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": content,
        "stop_reason": stop_reason(a),
        "stop_sequence": null,
        "usage": usage(a),
    })
    .to_string()
    .into_bytes()
}

/// Streamed Messages events: `message_start`, then per block
/// `content_block_start`, `content_block_delta`*, `content_block_stop` (a
/// `ping` after the first start), then `message_delta`, `message_stop`.
pub(crate) fn message_events(a: &Answer<'_>) -> Vec<Event> {
    let mut ev = Events::default();
    ev.push(sse::named(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_mock_{}", a.seq),
                "type": "message",
                "role": "assistant",
                "model": a.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
            },
        }),
    ));
    for (index, block) in blocks(a).iter().enumerate() {
        ev.push(sse::named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block.start()}),
        ));
        if index == 0 {
            ev.push(sse::named("ping", &json!({"type": "ping"})));
        }
        for delta in block.deltas(a.chunk) {
            ev.delta(sse::named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        ev.push(sse::named("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
    }
    ev.push(sse::named(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(a), "stop_sequence": null},
            "usage": message_delta_usage(a),
        }),
    ));
    ev.push(sse::named("message_stop", &json!({"type": "message_stop"})));
    ev.into_vec()
}

/// Anthropic error object: `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error_json(message: &str, kind: &str) -> Vec<u8> {
    json!({
        "type": "error",
        "error": {"type": kind, "message": message},
    })
    .to_string()
    .into_bytes()
}
