//! Gemini API (`POST /v1beta/models/{model}:generateContent` and
//! `:streamGenerateContent`): `GenerateContentResponse` objects and Google's
//! error shape.
//!
//! Written the way Google's servers write JSON: whole answers and errors
//! pretty-printed with two-space indents, stream chunks on one line with a
//! space after each colon, `<`, `>` and `&` escaped as `\u003c`, `\u003e`,
//! `\u0026`. With `alt=sse` the stream is `data: {chunk}` events ending in
//! CRLF CRLF; without it, one JSON array of the chunks, sent piece by piece.
//!
//! Parts: thought parts (`x-mock-thinking`, `"thought": true`), the text, then
//! one `functionCall` part per `x-mock-tool-calls` entry.

use std::io;

use serde::Serialize as _;
use serde_json::ser::{Formatter, PrettyFormatter};
use serde_json::{json, Value};

use crate::body::{Event, Events};
use crate::reply::{chunk_chars, count_tokens};
use crate::{sse, Answer};

/// How `:streamGenerateContent` frames its chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFraming {
    /// `?alt=sse`: server-sent events.
    Sse,
    /// No `alt=sse`: a JSON array of chunks.
    JsonArray,
}

/// Writes `fragment` with `<`, `>`, `&`, U+2028 and U+2029 as `\uXXXX`.
fn write_html_safe<W: ?Sized + io::Write>(w: &mut W, fragment: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        let esc: &[u8] = match c {
            '<' => b"\\u003c",
            '>' => b"\\u003e",
            '&' => b"\\u0026",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            _ => continue,
        };
        w.write_all(&fragment.as_bytes()[start..i])?;
        w.write_all(esc)?;
        start = i + c.len_utf8();
    }
    w.write_all(&fragment.as_bytes()[start..])
}

/// One-line form: `{"a": 1,"b": [2]}`.
struct LineFormatter;

impl Formatter for LineFormatter {
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_html_safe(w, fragment)
    }
}

/// Pretty form with two-space indents.
struct PrettyGoogle<'a>(PrettyFormatter<'a>);

impl Formatter for PrettyGoogle<'_> {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_html_safe(w, fragment)
    }
}

fn to_line(v: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, LineFormatter);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| v.to_string())
}

fn to_pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, PrettyGoogle(PrettyFormatter::with_indent(b"  ")));
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_else(|_| v.to_string())
}

/// One piece of a candidate's content.
enum Part {
    Thought(String),
    Text(String),
    Calls(Vec<Value>),
}

impl Part {
    fn json(&self) -> Vec<Value> {
        match self {
            Part::Thought(t) => vec![json!({"text": t, "thought": true})],
            Part::Text(t) => vec![json!({"text": t})],
            Part::Calls(calls) => calls.clone(),
        }
    }
}

fn function_calls(a: &Answer<'_>) -> Vec<Value> {
    a.extras
        .tool_calls
        .iter()
        .map(|c| json!({"functionCall": {"name": c.name, "args": c.input().unwrap_or_default()}}))
        .collect()
}

/// A `GenerateContentResponse` with `parts`; `last` adds the finish reason.
/// `output_tokens` counts the candidate text so far (real chunks carry the
/// running count).
fn chunk(a: &Answer<'_>, parts: Vec<Value>, last: bool, output_tokens: u64) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}});
    if last {
        candidate["finishReason"] = Value::from("STOP");
    }
    candidate["index"] = Value::from(0);
    if last && !a.extras.tool_calls.is_empty() {
        candidate["finishMessage"] = Value::from("Model generated function call(s).");
    }
    let mut usage = json!({
        "promptTokenCount": a.prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": a.prompt_tokens + output_tokens + a.reasoning_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": a.prompt_tokens}],
    });
    if a.reasoning_tokens > 0 {
        usage["thoughtsTokenCount"] = Value::from(a.reasoning_tokens);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": a.model,
        "responseId": format!("mockresp{:0>15}", a.seq),
    })
}

fn parts(a: &Answer<'_>) -> Vec<Part> {
    let mut out = Vec::new();
    if let Some(t) = &a.extras.thinking {
        out.push(Part::Thought(t.clone()));
    }
    if a.extras.has_text() {
        out.push(Part::Text(a.text().to_owned()));
    }
    let calls = function_calls(a);
    if !calls.is_empty() {
        out.push(Part::Calls(calls));
    }
    out
}

/// Non-streamed `GenerateContentResponse` (pretty-printed).
pub(crate) fn generate_json(a: &Answer<'_>) -> Vec<u8> {
    let all: Vec<Value> = parts(a).iter().flat_map(Part::json).collect();
    let output = a.completion_tokens.saturating_sub(a.reasoning_tokens);
    to_pretty(&chunk(a, all, true, output)).into_bytes()
}

/// The chunks of a streamed answer: thought and text pieces of `chunk`
/// characters, function calls in one chunk, the finish reason on the last.
fn stream_chunks(a: &Answer<'_>) -> Vec<Value> {
    let mut pieces: Vec<(Vec<Value>, u64)> = Vec::new();
    let mut text_so_far = String::new();
    for part in parts(a) {
        match part {
            Part::Thought(t) => {
                for p in chunk_chars(&t, a.chunk) {
                    pieces.push((vec![json!({"text": p, "thought": true})], 0));
                }
            }
            Part::Text(t) => {
                for p in chunk_chars(&t, a.chunk) {
                    text_so_far.push_str(p);
                    pieces.push((vec![json!({"text": p})], count_tokens(&text_so_far)));
                }
            }
            Part::Calls(calls) => {
                let so_far = pieces.last().map_or(0, |p| p.1);
                pieces.push((calls, so_far + a.extras.tool_calls.len() as u64));
            }
        }
    }
    if pieces.is_empty() {
        pieces.push((vec![json!({"text": ""})], 0));
    }
    let n = pieces.len();
    pieces.into_iter().enumerate().map(|(i, (p, tokens))| chunk(a, p, i + 1 == n, tokens)).collect()
}

/// Streamed answer in the requested framing.
pub(crate) fn stream_events(a: &Answer<'_>, framing: StreamFraming) -> Vec<Event> {
    let mut ev = Events::default();
    let chunks = stream_chunks(a);
    match framing {
        StreamFraming::Sse => {
            for c in &chunks {
                ev.delta(sse::data_crlf(&to_line(c)));
            }
        }
        StreamFraming::JsonArray => {
            for (i, c) in chunks.iter().enumerate() {
                let sep = if i == 0 { "[" } else { "\n,\r\n" };
                ev.delta(format!("{sep}{}", to_pretty(c)));
            }
            ev.push("\n]".to_owned());
        }
    }
    ev.into_vec()
}

/// Google error object: `{"error":{"code","message","status"}}` (pretty).
pub(crate) fn error_json(code: u16, message: &str, status: &str) -> Vec<u8> {
    to_pretty(&json!({"error": {"code": code, "message": message, "status": status}})).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_json_forms() {
        let v = json!({"a": "x<y>&z", "b": [1, {"c": null}]});
        assert_eq!(to_line(&v), r#"{"a": "x\u003cy\u003e\u0026z","b": [1,{"c": null}]}"#);
        assert_eq!(
            to_pretty(&v),
            "{\n  \"a\": \"x\\u003cy\\u003e\\u0026z\",\n  \"b\": [\n    1,\n    {\n      \"c\": null\n    }\n  ]\n}"
        );
        let back: Value = serde_json::from_str(&to_line(&v)).expect("valid JSON");
        assert_eq!(back, v);
    }
}
