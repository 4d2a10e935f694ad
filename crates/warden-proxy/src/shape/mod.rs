//! API shapes: everything the spine needs to know about one provider API, behind one trait.
//!
//! Each guarded API (OpenAI chat completions, legacy completions, Responses, embeddings, Anthropic
//! messages, Gemini; Azure OpenAI speaks the OpenAI shapes) is one file that implements
//! [`Shape`]. The proxy ([`crate::proxy`]), the stream guard ([`crate::stream_guard`]) and the
//! responder call the trait only, so a new API is one new file and a line in [`crate::route`].
//!
//! A shape names the fields it *knows* (with their roles, and which are JSON inside a string).
//! After them, everything else is judged too, on both sides ([`sweep`]):
//! - request: every other string value *and object key*, as `tool` text, except the few fields a
//!   shape lists by exact JSON pointer as carrying no text ([`Shape::request_skip`]);
//! - completion, whole or one stream event: every other string and key, as assistant text.
//!
//! So a field a provider adds tomorrow, or one a shape does not know, is inspected, not trusted.
//! What cannot be read at all (an image, a file, provider-side conversation state) is reported
//! as [`Unseen`], and the config decides whether that is allowed, flagged or refused.

pub mod anthropic_messages;
pub mod errors;
pub mod gemini;
pub mod openai_chat;
pub mod openai_completions;
pub mod openai_embeddings;
pub mod openai_responses;
pub mod sweep;

use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeSet;
use std::ops::Range;
use warden_core::jsontext::JsonText;
use warden_core::{Role, RuleHit, Segment};

pub use errors::ErrorShape;

/// What the route tells a shape about a request besides its body.
#[derive(Debug, Clone, Default)]
pub struct RouteInfo {
    /// The model named by the path (Gemini `models/{model}:...`, an Azure deployment), if any.
    pub path_model: Option<String>,
    /// The query string, if any.
    pub query: Option<String>,
    /// The path asks for a stream (Gemini `:streamGenerateContent`).
    pub path_streams: bool,
}

/// The request body does not have the shape's form.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Something in a request that Warden cannot read: judged by policy, not silently skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unseen {
    /// What it is: `image`, `audio`, `file`, or `provider_state` (earlier turns kept by the provider).
    pub kind: UnseenKind,
    /// Where it is in the body.
    pub pointer: String,
}

/// The kinds of [`Unseen`] content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnseenKind {
    /// An image, audio or a file that is not text: Warden does not read media.
    Media,
    /// Conversation state kept by the provider (`previous_response_id`, `conversation`, a stored
    /// prompt): earlier turns Warden never saw.
    ProviderState,
}

/// What the decode stage reads from a request body.
#[derive(Debug, Default)]
pub struct DecodedRequest {
    /// The model (from the body, else from the path), or empty.
    pub model: String,
    /// Whether the answer will be streamed.
    pub stream: bool,
    /// The texts, in body order.
    pub segments: Vec<Segment>,
    /// What could not be read.
    pub unseen: Vec<Unseen>,
}

/// Where the text of a completion lives in the body, so a redaction can be written back.
#[derive(Debug, Clone)]
pub enum TextPlace {
    /// Consecutive string values joined into one text (one string, or logprob tokens): each
    /// pointer with the byte range of the text it holds.
    Strings(Vec<(String, Range<usize>)>),
    /// A string that holds JSON text (tool-call arguments): the text is its decoded strings.
    Json {
        /// Where the string is.
        pointer: String,
        /// The raw JSON text.
        raw: String,
        /// The decoded view.
        decoded: Box<JsonText>,
    },
    /// An object key (`pointer` is the key's value): a redaction renames the key.
    Key(String),
}

/// One text of a whole completion.
#[derive(Debug, Clone)]
pub struct CompletionText {
    /// The text judged.
    pub text: String,
    /// Where it is.
    pub place: TextPlace,
    /// The choice it belongs to (OpenAI `choices[].index`, Gemini candidate), or `None` when it
    /// is outside every choice (then a block withholds every choice).
    pub choice: Option<usize>,
}

impl CompletionText {
    /// A plain string at `pointer`.
    pub fn string(text: &str, pointer: String, choice: Option<usize>) -> Self {
        let place = TextPlace::Strings(vec![(pointer, 0..text.len())]);
        CompletionText { text: text.to_string(), place, choice }
    }

    /// A string holding JSON text at `pointer`, judged by its decoded strings.
    pub fn json(raw: &str, pointer: String, choice: Option<usize>) -> Self {
        let decoded = JsonText::decode(raw);
        CompletionText {
            text: decoded.text().to_string(),
            place: TextPlace::Json { pointer, raw: raw.to_string(), decoded: Box::new(decoded) },
            choice,
        }
    }

    /// Strings joined into one text (logprob tokens of one choice), so that a phrase or key split
    /// over several of them is still found.
    pub fn joined(parts: Vec<(String, String)>, choice: Option<usize>) -> Self {
        let mut text = String::new();
        let mut places = Vec::with_capacity(parts.len());
        for (pointer, s) in parts {
            let start = text.len();
            text.push_str(&s);
            places.push((pointer, start..text.len()));
        }
        CompletionText { text, place: TextPlace::Strings(places), choice }
    }

    /// The text a client reads from several strings joined (content parts, text blocks): one
    /// text, so that a phrase split over parts is found. A single string that is a JSON
    /// document (structured output) is judged by its decoded strings instead, as the client
    /// parses it. `None` if there are no parts.
    pub fn of_parts(parts: Vec<(String, String)>, choice: Option<usize>) -> Option<Self> {
        match parts.as_slice() {
            [] => None,
            [(pointer, text)] if is_json_document(text) => Some(CompletionText::json(text, pointer.clone(), choice)),
            _ => Some(CompletionText::joined(parts, choice)),
        }
    }

    /// The pointers of the body's strings this text covers.
    pub fn pointers(&self) -> Vec<&str> {
        match &self.place {
            TextPlace::Strings(p) => p.iter().map(|(p, _)| p.as_str()).collect(),
            TextPlace::Json { pointer, .. } | TextPlace::Key(pointer) => vec![pointer.as_str()],
        }
    }
}

/// Which streamed text a piece continues.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TextKey {
    /// The choice (OpenAI), candidate (Gemini), output item (Responses) or content block
    /// (Anthropic) the text belongs to.
    pub choice: usize,
    /// Which text of it: `content`, `tool.1`, `reasoning`, `logprobs`...
    pub field: String,
}

impl TextKey {
    /// A key.
    pub fn new(choice: usize, field: impl Into<String>) -> Self {
        TextKey { choice, field: field.into() }
    }
}

/// How a streamed piece relates to the text it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// The next part of a text that goes on in later events.
    Delta,
    /// The next part of JSON text that goes on in later events (tool-call arguments): judged by
    /// its decoded strings.
    JsonDelta,
    /// A whole text, given at once (a `*.done` event, a block given whole, a swept field).
    Whole,
    /// A whole string holding JSON text.
    WholeJson,
}

/// A piece of text inside one stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// Which text it continues (for [`PieceKind::Delta`] and [`PieceKind::JsonDelta`]).
    pub key: TextKey,
    /// Where the piece is in the event's JSON (a pointer to a string value).
    pub pointer: String,
    /// The raw string value.
    pub text: String,
    /// How it relates to its text.
    pub kind: PieceKind,
}

impl Piece {
    /// A delta of plain text.
    pub fn delta(key: TextKey, pointer: String, text: &str) -> Self {
        Piece { key, pointer, text: text.to_string(), kind: PieceKind::Delta }
    }
}

/// What a shape makes of one stream event.
#[derive(Debug, Default)]
pub struct EventPieces {
    /// The known text pieces (the sweep adds every other string).
    pub pieces: Vec<Piece>,
    /// The shape knows this event type (an unknown one is handled by `coverage.unknown_events`).
    pub known: bool,
    /// The event ends the stream (nothing is expected after it).
    pub last: bool,
}

/// What the stream guard remembers of a stream for the shape's end-of-stream cut.
#[derive(Debug, Default, Clone)]
pub struct StreamMemo {
    /// The first event's data (OpenAI: `id`, `created`, `model`).
    pub first: Option<Value>,
    /// The choices (candidates, output items) seen.
    pub choices: BTreeSet<usize>,
    /// The latest snapshot of the whole answer a shape keeps (Responses: the `response` object).
    pub snapshot: Option<Value>,
    /// The next sequence number (Responses).
    pub sequence: u64,
}

/// What an answer says of itself, for the upstream span and the metrics: filled from the whole
/// body, or event by event from a stream. Bounded: strings are cut at [`ResponseInfo::MAX_STR`]
/// bytes and at most [`ResponseInfo::MAX_CHOICES`] finish reasons are kept.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct ResponseInfo {
    /// The provider's id of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Prompt tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Why each choice ended, by choice (empty strings for choices not ended yet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finish_reasons: Vec<String>,
}

impl ResponseInfo {
    /// The longest id or model kept.
    pub const MAX_STR: usize = 256;
    /// The most choices whose finish reason is kept.
    pub const MAX_CHOICES: usize = 16;

    /// Takes `id` from `v` if it is a string.
    pub fn id_from(&mut self, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.id = Some(cut(s));
        }
    }

    /// Takes `model` from `v` if it is a string.
    pub fn model_from(&mut self, v: Option<&Value>) {
        if let Some(s) = v.and_then(Value::as_str) {
            self.model = Some(cut(s));
        }
    }

    /// Takes the token counts from `v` if they are numbers.
    pub fn tokens_from(&mut self, input: Option<&Value>, output: Option<&Value>) {
        if let Some(n) = input.and_then(Value::as_u64) {
            self.input_tokens = Some(n);
        }
        if let Some(n) = output.and_then(Value::as_u64) {
            self.output_tokens = Some(n);
        }
    }

    /// Sets the finish reason of choice `choice` if `v` is a string.
    pub fn finish_from(&mut self, choice: usize, v: Option<&Value>) {
        let Some(s) = v.and_then(Value::as_str) else { return };
        if choice >= Self::MAX_CHOICES {
            return;
        }
        if self.finish_reasons.len() <= choice {
            self.finish_reasons.resize(choice + 1, String::new());
        }
        self.finish_reasons[choice] = cut(s);
    }
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(ResponseInfo::MAX_STR);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The finish reasons of an array of choices (`choices`, `candidates`), by their `index` field.
pub fn finish_of_choices(info: &mut ResponseInfo, list: Option<&Value>, field: &str) {
    for (i, c) in list.and_then(Value::as_array).into_iter().flatten().enumerate().take(ResponseInfo::MAX_CHOICES * 4) {
        info.finish_from(index_of(c, i), c.get(field));
    }
}

/// One provider API. Each method says when the spine calls it.
pub trait Shape: Send + Sync + 'static {
    /// A short name for records and telemetry (`openai.chat`, `anthropic.messages`).
    fn name(&self) -> &'static str;

    /// The GenAI operation name (`chat`, `text_completion`, `embeddings`, `generate_content`).
    fn operation(&self) -> &'static str;

    /// The family of error bodies and refusals it answers with.
    fn errors(&self) -> ErrorShape;

    /// decode: the request's model, stream flag, texts with their roles and JSON pointers, and
    /// what cannot be read. Called once per request, before the prompt is judged. The sweep of
    /// every other string is added by the caller.
    fn decode(&self, body: &Value, route: &RouteInfo) -> Result<DecodedRequest, DecodeError>;

    /// Request fields that carry no text anyone reads, by exact pointer (`*` stands for one array
    /// index or object key): the request sweep skips them. Default: none.
    fn request_skip(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether the answer holds text to judge (embeddings are vectors: no). Default: yes.
    fn judges_completion(&self) -> bool {
        true
    }

    /// guard(completion), whole: the known texts of a completion body. The caller sweeps every
    /// other string and key, with [`Shape::choice_of`] telling their choice.
    fn completion_texts(&self, body: &Value) -> Vec<CompletionText>;

    /// The choice a swept string at `pointer` of a whole completion, or of one stream event,
    /// belongs to. Default: none (a block there withholds every choice, or cuts the stream).
    fn choice_of(&self, _body: &Value, _pointer: &str) -> Option<usize> {
        None
    }

    /// guard(completion), whole: withholds the given choices (`None` in the set: all of them)
    /// of a blocked completion, leaving none of their text in any field.
    fn withhold(&self, body: &mut Value, choices: &BTreeSet<Option<usize>>, hit: &RuleHit);

    /// stream guard: the known text pieces of one event (`event` is its `event:` field). Called
    /// for every event whose data is JSON; the guard sweeps every other string as a whole text.
    fn stream_pieces(&self, event: Option<&str>, data: &Value) -> EventPieces;

    /// stream guard: whether a swept string at `pointer` of a stream event sits where text
    /// streams (inside a delta), so that it continues the same field of earlier events: it is
    /// then judged joined with them, and held like any delta. Elsewhere a swept string is judged
    /// whole. Default: nowhere.
    fn streams_at(&self, _pointer: &str) -> bool {
        false
    }

    /// stream guard, `n > 1`: blanks choice `choice` out of an event (its entry left with no
    /// text, so the others' positions stay), returning whether anything changed. Default:
    /// nothing (the shape cannot withhold one choice: a block cuts the whole stream).
    fn blank_stream_choice(&self, _data: &mut Value, _choice: usize) -> bool {
        false
    }

    /// stream guard, `n > 1`: the event that ends one withheld choice while the others go on
    /// (OpenAI: its `finish_reason: "content_filter"` chunk), or `None` if the shape cannot
    /// withhold one choice alone. Default: `None`.
    fn end_stream_choice(&self, _memo: &StreamMemo, _choice: usize, _hit: &RuleHit) -> Option<Bytes> {
        None
    }

    /// stream guard: notes what the cut will need from an event, before it is judged. Default:
    /// keeps the first event.
    fn remember(&self, memo: &mut StreamMemo, data: &Value) {
        if memo.first.is_none() {
            memo.first = Some(data.clone());
        }
    }

    /// stream guard: the events that end a cut stream, in the provider's own shape, naming the
    /// rule. Called once, after a block.
    fn cut_stream(&self, memo: &StreamMemo, hit: &RuleHit) -> Vec<Bytes>;

    /// telemetry: what a whole answer, or one stream event (`event` is its `event:` field),
    /// says of itself: id, model, tokens, finish reasons. Called after the answer or event is
    /// judged; never changes it. Default: `id` and `model` at the top level.
    fn response_info(&self, _event: Option<&str>, data: &Value, info: &mut ResponseInfo) {
        info.id_from(data.get("id"));
        info.model_from(data.get("model"));
    }

    /// stream guard: the event sent when the upstream fails mid-stream. Default: the family's.
    fn stream_error(&self, message: &str) -> Bytes {
        self.errors().stream_error(message)
    }
}

/// The shapes Warden guards.
pub static OPENAI_CHAT: openai_chat::OpenAiChat = openai_chat::OpenAiChat;
/// `POST /v1/completions`.
pub static OPENAI_COMPLETIONS: openai_completions::OpenAiCompletions = openai_completions::OpenAiCompletions;
/// `POST /v1/responses`.
pub static OPENAI_RESPONSES: openai_responses::OpenAiResponses = openai_responses::OpenAiResponses;
/// `POST /v1/embeddings`.
pub static OPENAI_EMBEDDINGS: openai_embeddings::OpenAiEmbeddings = openai_embeddings::OpenAiEmbeddings;
/// `POST /v1/messages`.
pub static ANTHROPIC_MESSAGES: anthropic_messages::AnthropicMessages = anthropic_messages::AnthropicMessages;
/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
pub static GEMINI: gemini::Gemini = gemini::Gemini;

/// Whether `text` is a JSON object or array (structured output a client parses).
pub fn is_json_document(text: &str) -> bool {
    let t = text.trim_start();
    (t.starts_with('{') || t.starts_with('[')) && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Segment for `text` at `origin`.
pub fn seg(role: Role, text: &str, origin: String) -> Segment {
    Segment { role, text: text.to_string(), origin }
}

/// The `model` and `stream` fields most shapes share. `model` must be a string if present,
/// `stream` a boolean.
pub fn model_and_stream(body: &Value) -> Result<(String, bool), DecodeError> {
    let obj = body.as_object().ok_or_else(|| DecodeError("the request body must be a JSON object".into()))?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(DecodeError("`model` must be a string".into())),
    };
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(DecodeError("`stream` must be a boolean".into())),
    };
    Ok((model, stream))
}

/// Escapes a key for a JSON pointer (RFC 6901).
pub fn pointer_key(k: &str) -> String {
    if k.contains(['~', '/']) {
        k.replace('~', "~0").replace('/', "~1")
    } else {
        k.to_string()
    }
}

/// The `index` field of an array entry, else its position.
pub fn index_of(v: &Value, fallback: usize) -> usize {
    v.get("index").and_then(Value::as_u64).map_or(fallback, |i| i as usize)
}

/// The first number after `prefix` in `pointer` (`/choices/3/...` with prefix `/choices/`: 3).
pub fn index_after(pointer: &str, prefix: &str) -> Option<usize> {
    pointer.strip_prefix(prefix)?.split('/').next()?.parse().ok()
}

/// The choice a string at `pointer` belongs to, when choices are the entries of the array
/// `list` (`"choices"`, `"candidates"`): the entry's `index` field, else its position.
pub fn choice_in(body: &Value, list: &str, pointer: &str) -> Option<usize> {
    let k = index_after(pointer, &format!("/{list}/"))?;
    Some(body.get(list).and_then(|l| l.get(k)).map_or(k, |c| index_of(c, k)))
}
