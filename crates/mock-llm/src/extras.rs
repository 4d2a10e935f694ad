//! The parts of an answer beyond the reply text, read from `x-mock-*`
//! headers: reasoning, thinking, tool calls, refusals, server tools, and the
//! texts of the extra choices of an OpenAI `n` request.
//!
//! Every text header also has a `-b64` form (standard base64 of UTF-8), for
//! text a header value cannot carry (newlines, control characters).

use base64::Engine as _;
use http::HeaderMap;
use serde_json::{Map, Value};

use crate::headers;

/// One tool call the mock model makes (`x-mock-tool-calls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolCall {
    /// Function name.
    pub name: String,
    /// The arguments exactly as given: a string of JSON, sent as is (escapes
    /// such as `\u0059` stay escapes, and are split across deltas).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON object (Anthropic `input`, Gemini `args`).
    pub(crate) fn input(&self) -> Option<Map<String, Value>> {
        match serde_json::from_str::<Value>(&self.arguments) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    }
}

/// In which order the argument deltas of parallel tool calls are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ToolOrder {
    /// Round robin by call index: every call starts, then one argument piece
    /// of each call in turn (the default: the harder case for a client).
    Interleaved,
    /// One call after the other, as OpenAI's recorded streams do.
    Sequential,
}

/// The optional parts of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extras {
    /// `x-mock-reasoning`: chat `reasoning_content`, Responses reasoning summary.
    pub reasoning: Option<String>,
    /// `x-mock-thinking`: Anthropic thinking block, Gemini thought part.
    pub thinking: Option<String>,
    /// `x-mock-tool-calls`.
    pub tool_calls: Vec<ToolCall>,
    /// `x-mock-tool-order`.
    pub tool_order: ToolOrder,
    /// `x-mock-refusal`: the model refuses (OpenAI `refusal`).
    pub refusal: Option<String>,
    /// `x-mock-server-tools: 1`: Anthropic web search blocks and citations.
    pub server_tools: bool,
    /// Whether the reply text came from `x-mock-reply`/`x-mock-reply-b64`:
    /// with tool calls, a text part is sent only then (otherwise the message
    /// holds the tool calls alone, as a model that only calls tools does).
    pub explicit_reply: bool,
}

impl Extras {
    /// Reads the extras; an invalid value is an error message (answered with
    /// a 400 in the provider's shape).
    pub(crate) fn from_headers(h: &HeaderMap) -> Result<Self, String> {
        let tool_calls = match text_header(h, headers::TOOL_CALLS)? {
            None => Vec::new(),
            Some(json) => parse_tool_calls(&json)?,
        };
        let tool_order = match text_header(h, headers::TOOL_ORDER)?.as_deref().map(str::trim) {
            None | Some("" | "interleaved") => ToolOrder::Interleaved,
            Some("sequential") => ToolOrder::Sequential,
            Some(other) => {
                return Err(format!(
                    "{}: unknown order {other:?} (expected interleaved or sequential)",
                    headers::TOOL_ORDER
                ))
            }
        };
        let server_tools = match text_header(h, headers::SERVER_TOOLS)?.as_deref().map(str::trim) {
            None | Some("" | "0" | "false" | "no") => false,
            Some("1" | "true" | "yes" | "web_search") => true,
            Some(other) => {
                return Err(format!("{}: expected 1 or 0, got {other:?}", headers::SERVER_TOOLS));
            }
        };
        Ok(Self {
            reasoning: text_header(h, headers::REASONING)?,
            thinking: text_header(h, headers::THINKING)?,
            tool_calls,
            tool_order,
            refusal: text_header(h, headers::REFUSAL)?,
            server_tools,
            explicit_reply: h.contains_key(headers::REPLY) || h.contains_key(headers::REPLY_B64),
        })
    }

    /// Whether the answer carries a text part next to its tool calls.
    pub(crate) fn has_text(&self) -> bool {
        self.tool_calls.is_empty() || self.explicit_reply
    }

    /// Checks that every tool call's arguments are a JSON object, as the
    /// Anthropic and Gemini shapes need.
    pub(crate) fn check_object_arguments(&self) -> Result<(), String> {
        for (i, call) in self.tool_calls.iter().enumerate() {
            if call.input().is_none() {
                return Err(format!(
                    "{}: call {i} ({}): `arguments` must be a JSON object for this API, got {:?}",
                    headers::TOOL_CALLS,
                    call.name,
                    call.arguments
                ));
            }
        }
        Ok(())
    }
}

/// The text of a header `NAME` (lossy UTF-8, as is), or of `NAME-b64`
/// (standard base64 of UTF-8).
pub(crate) fn text_header(h: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    if let Some(v) = h.get(name) {
        return Ok(Some(String::from_utf8_lossy(v.as_bytes()).into_owned()));
    }
    let b64 = format!("{name}-b64");
    match h.get(b64.as_str()) {
        None => Ok(None),
        Some(v) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes().trim_ascii())
                .map_err(|e| format!("{b64}: not valid base64 (standard alphabet): {e}"))?;
            String::from_utf8(raw).map(Some).map_err(|_| format!("{b64}: the decoded bytes are not UTF-8"))
        }
    }
}

/// Parses `[{"name": "f", "arguments": "{\"a\":1}"}, ...]`. `arguments` may
/// also be given as a JSON object (it is then serialised), or left out (`{}`).
fn parse_tool_calls(json: &str) -> Result<Vec<ToolCall>, String> {
    let name = headers::TOOL_CALLS;
    let v: Value = serde_json::from_str(json).map_err(|e| format!("{name}: not valid JSON: {e}"))?;
    let Value::Array(items) = v else {
        return Err(format!("{name}: expected a JSON array of {{\"name\", \"arguments\"}} objects"));
    };
    if items.is_empty() {
        return Err(format!("{name}: the array is empty; leave the header out for no tool calls"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(obj) = item else {
                return Err(format!("{name}: item {i} is not an object"));
            };
            if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "name" | "arguments")) {
                return Err(format!("{name}: item {i}: unknown field `{key}` (expected name, arguments)"));
            }
            let fname = match obj.get("name") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => return Err(format!("{name}: item {i}: `name` must be a non-empty string")),
            };
            let arguments = match obj.get("arguments") {
                None => "{}".to_owned(),
                Some(Value::String(s)) => s.clone(),
                Some(v @ (Value::Object(_) | Value::Array(_))) => v.to_string(),
                Some(_) => return Err(format!("{name}: item {i}: `arguments` must be a string of JSON")),
            };
            Ok(ToolCall { name: fname, arguments })
        })
        .collect()
}

/// The reply text of each of `n` choices: choice 0 gets `reply`; choice
/// `i > 0` gets header `x-mock-reply-{i}` (or `x-mock-reply-{i}-b64`) if
/// given, else `reply` with ` (variant i)` appended.
pub(crate) fn choice_texts(h: &HeaderMap, reply: &str, n: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(n);
    out.push(reply.to_owned());
    for i in 1..n {
        let text = match text_header(h, &format!("{}-{i}", headers::REPLY))? {
            Some(t) => t,
            None => format!("{reply} (variant {i})"),
        };
        out.push(text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_str(v).expect("header value"));
        }
        h
    }

    #[test]
    fn tool_calls_keep_raw_arguments() {
        let h = headers(&[(
            "x-mock-tool-calls",
            r#"[{"name":"get","arguments":"{\"q\":\"\\u0059es\"}"},{"name":"two","arguments":{"a":1}},{"name":"three"}]"#,
        )]);
        let e = Extras::from_headers(&h).expect("valid");
        assert_eq!(e.tool_calls[0].arguments, r#"{"q":"\u0059es"}"#);
        assert_eq!(e.tool_calls[0].input().and_then(|m| m.get("q").cloned()), Some(Value::from("Yes")));
        assert_eq!(e.tool_calls[1].arguments, r#"{"a":1}"#);
        assert_eq!(e.tool_calls[2].arguments, "{}");
        assert!(!e.has_text());
        assert_eq!(e.tool_order, ToolOrder::Interleaved);
    }

    #[test]
    fn bad_tool_calls_are_errors() {
        for bad in
            ["{}", "[]", "[1]", r#"[{"arguments":"{}"}]"#, r#"[{"name":"f","arguments":3}]"#, r#"[{"name":"f","x":1}]"#]
        {
            assert!(Extras::from_headers(&headers(&[("x-mock-tool-calls", bad)])).is_err(), "{bad}");
        }
        let e = Extras::from_headers(&headers(&[("x-mock-tool-calls", r#"[{"name":"f","arguments":"[1]"}]"#)]))
            .expect("a string is accepted as is");
        assert!(e.check_object_arguments().is_err());
    }

    #[test]
    fn text_headers_and_b64() {
        let h = headers(&[("x-mock-reasoning-b64", "bGluZSAxCmxpbmUgMg=="), ("x-mock-refusal", "No.")]);
        let e = Extras::from_headers(&h).expect("valid");
        assert_eq!(e.reasoning.as_deref(), Some("line 1\nline 2"));
        assert_eq!(e.refusal.as_deref(), Some("No."));
        assert!(Extras::from_headers(&headers(&[("x-mock-thinking-b64", "!!")])).is_err());
        assert!(Extras::from_headers(&headers(&[("x-mock-server-tools", "maybe")])).is_err());
    }

    #[test]
    fn choices_get_variants() {
        let h = headers(&[("x-mock-reply-2", "two")]);
        assert_eq!(choice_texts(&h, "r", 3).expect("ok"), vec!["r", "r (variant 1)", "two"]);
    }
}
