//! Choosing the reply text, extracting the prompt text of a request, and
//! splitting text into streaming deltas.

use std::path::Path;

use base64::Engine as _;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The reply used when no header or script rule applies.
pub const DEFAULT_REPLY: &str = "This is a helpful answer from the mock model.";

/// Which provider API a request was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// OpenAI `POST /v1/chat/completions`.
    OpenAiChat,
    /// OpenAI legacy `POST /v1/completions`.
    OpenAiCompletions,
    /// Anthropic `POST /v1/messages`.
    AnthropicMessages,
    /// OpenAI Responses `POST /v1/responses`.
    OpenAiResponses,
    /// OpenAI `POST /v1/embeddings`.
    OpenAiEmbeddings,
    /// Gemini `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`).
    Gemini,
}

/// One rule of a reply script: if `when` is a substring of the prompt text,
/// answer with `reply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptRule {
    /// Substring searched for in the prompt text (case-sensitive).
    pub when: String,
    /// Reply text used when `when` matches.
    pub reply: String,
}

/// An ordered list of [`ScriptRule`]s; the first matching rule wins.
///
/// The YAML form (for `--script FILE`) is a list:
///
/// ```yaml
/// - when: "capital of France"
///   reply: "Paris."
/// - when: "password"
///   reply: "The admin password is hunter2."
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Script {
    rules: Vec<ScriptRule>,
}

/// Error loading or parsing a [`Script`].
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The script file could not be read.
    #[error("cannot read script {path}: {source}")]
    Io {
        /// Path of the script file.
        path: String,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The script is not a YAML list of `{when, reply}` entries.
    #[error("invalid script: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

impl Script {
    /// A script with the given rules (in priority order).
    pub fn new(rules: Vec<ScriptRule>) -> Self {
        Self { rules }
    }

    /// Parses a YAML list of `{when, reply}` entries. An empty document is an
    /// empty script.
    pub fn from_yaml(text: &str) -> Result<Self, ScriptError> {
        let rules: Option<Vec<ScriptRule>> = serde_yaml::from_str(text)?;
        Ok(Self::new(rules.unwrap_or_default()))
    }

    /// Reads and parses a YAML script file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ScriptError::Io { path: path.display().to_string(), source })?;
        Self::from_yaml(&text)
    }

    /// The rules, in priority order.
    pub fn rules(&self) -> &[ScriptRule] {
        &self.rules
    }

    /// The reply of the first rule whose `when` occurs in `prompt`.
    pub fn reply_for(&self, prompt: &str) -> Option<&str> {
        self.rules.iter().find(|r| prompt.contains(r.when.as_str())).map(|r| r.reply.as_str())
    }
}

/// The `x-mock-reply-b64` header was not valid base64 of UTF-8 text.
#[derive(Debug, thiserror::Error)]
#[error("x-mock-reply-b64 is not valid base64 (standard alphabet) of UTF-8 text")]
pub struct BadReplyHeader;

/// Chooses the reply text: header `x-mock-reply`, then header
/// `x-mock-reply-b64`, then the first matching script rule, then
/// [`DEFAULT_REPLY`].
pub fn choose_reply(headers: &HeaderMap, script: &Script, prompt: &str) -> Result<String, BadReplyHeader> {
    if let Some(v) = headers.get("x-mock-reply") {
        return Ok(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    if let Some(v) = headers.get("x-mock-reply-b64") {
        let raw =
            base64::engine::general_purpose::STANDARD.decode(v.as_bytes().trim_ascii()).map_err(|_| BadReplyHeader)?;
        return String::from_utf8(raw).map_err(|_| BadReplyHeader);
    }
    if let Some(r) = script.reply_for(prompt) {
        return Ok(r.to_owned());
    }
    Ok(DEFAULT_REPLY.to_owned())
}

/// All prompt text of a request body, concatenated with newlines.
///
/// - OpenAI chat: `messages[].content` (string, or array of `{type:"text",text}` parts);
/// - OpenAI legacy: `prompt` (string or array of strings);
/// - Anthropic: `system` (string or text blocks) then `messages[].content`
///   (string or blocks with `text`, including `tool_result` content);
/// - OpenAI Responses: `instructions`, then `input` (a string, or items: messages
///   with string or part-list `content`, `function_call_output` `output`);
/// - OpenAI embeddings: `input` (string or array of strings);
/// - Gemini: `systemInstruction.parts[].text` then `contents[].parts[].text`.
pub fn prompt_text(api: Api, body: &Value) -> String {
    let mut parts: Vec<&str> = Vec::new();
    match api {
        Api::OpenAiChat => collect_messages(body, &mut parts),
        Api::OpenAiCompletions => collect_content(body.get("prompt"), &mut parts),
        Api::AnthropicMessages => {
            collect_content(body.get("system"), &mut parts);
            collect_messages(body, &mut parts);
        }
        Api::OpenAiResponses => {
            collect_content(body.get("instructions"), &mut parts);
            match body.get("input") {
                Some(Value::Array(items)) => {
                    for item in items {
                        collect_content(item.get("content"), &mut parts);
                        collect_content(item.get("output"), &mut parts);
                        if item.get("type").and_then(Value::as_str) == Some("input_text") {
                            collect_content(item.get("text"), &mut parts);
                        }
                    }
                }
                other => collect_content(other, &mut parts),
            }
        }
        Api::OpenAiEmbeddings => collect_content(body.get("input"), &mut parts),
        Api::Gemini => {
            collect_content(body.pointer("/systemInstruction/parts"), &mut parts);
            if let Some(Value::Array(contents)) = body.get("contents") {
                for c in contents {
                    collect_content(c.get("parts"), &mut parts);
                }
            }
        }
    }
    parts.join("\n")
}

fn collect_messages<'a>(body: &'a Value, out: &mut Vec<&'a str>) {
    if let Some(Value::Array(messages)) = body.get("messages") {
        for m in messages {
            collect_content(m.get("content"), out);
        }
    }
}

/// Collects text from a content value: a string, or an array of strings or
/// blocks with a `text` field and/or a nested `content` (tool results).
fn collect_content<'a>(content: Option<&'a Value>, out: &mut Vec<&'a str>) {
    match content {
        Some(Value::String(s)) => out.push(s),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => out.push(s),
                    Value::Object(obj) => {
                        if let Some(Value::String(t)) = obj.get("text") {
                            out.push(t);
                        }
                        if obj.contains_key("content") {
                            collect_content(obj.get("content"), out);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Splits `text` into pieces of at most `n` characters (Unicode scalar
/// values, never splitting a character). `n == 0` is treated as 1.
pub fn chunk_chars(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == n {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Mock token count: whitespace-separated words, at least 1.
pub fn count_tokens(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn script() -> Script {
        Script::from_yaml(
            "- when: \"capital of France\"\n  reply: \"Paris.\"\n- when: \"France\"\n  reply: \"Second rule.\"\n",
        )
        .expect("valid script")
    }

    #[test]
    fn reply_header_wins() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-reply", HeaderValue::from_static("from header"));
        h.insert("x-mock-reply-b64", HeaderValue::from_static("aGk="));
        let r = choose_reply(&h, &script(), "capital of France").expect("ok");
        assert_eq!(r, "from header");
    }

    #[test]
    fn reply_header_b64() {
        let mut h = HeaderMap::new();
        let text = "línea 1\nline 2 ✓";
        let enc = base64::engine::general_purpose::STANDARD.encode(text);
        h.insert("x-mock-reply-b64", HeaderValue::from_str(&enc).expect("ascii"));
        assert_eq!(choose_reply(&h, &script(), "").expect("ok"), text);

        let mut bad = HeaderMap::new();
        bad.insert("x-mock-reply-b64", HeaderValue::from_static("!!!"));
        assert!(choose_reply(&bad, &script(), "").is_err());
    }

    #[test]
    fn reply_from_script_first_match() {
        let h = HeaderMap::new();
        let s = script();
        assert_eq!(choose_reply(&h, &s, "What is the capital of France?").expect("ok"), "Paris.");
        assert_eq!(choose_reply(&h, &s, "Tell me about France").expect("ok"), "Second rule.");
    }

    #[test]
    fn reply_default() {
        let h = HeaderMap::new();
        assert_eq!(choose_reply(&h, &script(), "unrelated").expect("ok"), DEFAULT_REPLY);
        assert_eq!(choose_reply(&h, &Script::default(), "capital of France").expect("ok"), DEFAULT_REPLY);
    }

    #[test]
    fn script_parsing() {
        assert_eq!(Script::from_yaml("").expect("empty").rules().len(), 0);
        assert!(Script::from_yaml("- when: x\n").is_err());
        assert!(Script::from_yaml("- when: x\n  reply: y\n  extra: z\n").is_err());
    }

    #[test]
    fn chunking_by_characters() {
        assert_eq!(chunk_chars("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(chunk_chars("", 4), Vec::<&str>::new());
        assert_eq!(chunk_chars("abc", 0), vec!["a", "b", "c"]);
        // Multibyte: 2-byte, 3-byte and 4-byte characters are never split.
        let text = "héllo→wörld🙂🙂x";
        let chunks = chunk_chars(text, 3);
        assert_eq!(chunks, vec!["hél", "lo→", "wör", "ld🙂", "🙂x"]);
        assert_eq!(chunks.concat(), text);
        for c in chunk_chars("日本語のテキスト", 2) {
            assert_eq!(c.chars().count(), 2);
        }
    }

    #[test]
    fn prompt_extraction() {
        let chat = json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "part1"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "tool", "content": "tool out"}
        ]});
        assert_eq!(prompt_text(Api::OpenAiChat, &chat), "sys\npart1\ntool out");

        let legacy = json!({"prompt": ["a", "b"]});
        assert_eq!(prompt_text(Api::OpenAiCompletions, &legacy), "a\nb");
        let legacy = json!({"prompt": "single"});
        assert_eq!(prompt_text(Api::OpenAiCompletions, &legacy), "single");

        let anth = json!({
            "system": [{"type": "text", "text": "be nice"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "result text"}]},
                    {"type": "tool_result", "tool_use_id": "t2", "content": "plain result"},
                    {"type": "text", "text": "more"}
                ]}
            ]
        });
        assert_eq!(prompt_text(Api::AnthropicMessages, &anth), "be nice\nhi\nresult text\nplain result\nmore");

        let resp = json!({"instructions": "sys", "input": "just text"});
        assert_eq!(prompt_text(Api::OpenAiResponses, &resp), "sys\njust text");
        let resp = json!({"input": [
            {"role": "user", "content": "a"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "b"}]},
            {"type": "function_call_output", "call_id": "c", "output": "tool said c"},
            {"type": "input_text", "text": "d"}
        ]});
        assert_eq!(prompt_text(Api::OpenAiResponses, &resp), "a\nb\ntool said c\nd");

        let gem = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "q1"}, {"inlineData": {}}]}, {"role": "model", "parts": [{"text": "a1"}]}]
        });
        assert_eq!(prompt_text(Api::Gemini, &gem), "be brief\nq1\na1");
        assert_eq!(prompt_text(Api::OpenAiEmbeddings, &json!({"input": ["x", "y"]})), "x\ny");
    }

    #[test]
    fn token_count() {
        assert_eq!(count_tokens(""), 1);
        assert_eq!(count_tokens("  one two\nthree "), 3);
    }
}
