//! The `patterns` detector: regular expressions for shapes a phrase list cannot hold (API keys,
//! private keys, URLs). Matched on the original text, so spans are exact.
//!
//! A `RegexSet` first tells which patterns match at all (one pass); only those are run again to
//! find spans.
//!
//! Streaming: a match is taken as final once at least one character follows it. The scanner
//! holds back any match still touching the end of the text (it may grow), and the last `max_len`
//! bytes: text that could be the beginning of a match that does not match *yet*. So `max_len` is
//! the longest prefix of a match that does not match on its own: for `sk-[A-Za-z0-9]{20,}` that
//! is 22 bytes, however long the key; for a pattern that needs an end marker, the whole match.
//! Default 256. A pattern whose matches need more than `max_len` bytes before they first match may
//! be missed in a stream.
//!
//! ```
//! use warden_core::patterns::PatternSet;
//! let set = PatternSet::new(&["sk-[A-Za-z0-9]{20,}".to_string()]).unwrap();
//! let hits = set.find("key: sk-abcdefghijklmnopqrstuvwx");
//! assert_eq!(hits[0].span, 5..32);
//! ```

use crate::detector::{Detector, DetectorError, Hit, ScanText, StreamScanner};
use regex::{Regex, RegexSet};

/// A compiled list of regular expressions.
#[derive(Debug, Clone)]
pub struct PatternSet {
    set: RegexSet,
    each: Vec<Regex>,
}

impl PatternSet {
    /// Compiles the patterns (Rust `regex` syntax). The error names the pattern that failed;
    /// a pattern that matches the empty string is refused (it would match everywhere).
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut each = Vec::with_capacity(patterns.len());
        for p in patterns {
            let re = Regex::new(p).map_err(|e| format!("pattern `{p}`: {e}"))?;
            if re.is_match("") {
                return Err(format!("pattern `{p}` matches the empty string; it would fire on every text"));
            }
            each.push(re);
        }
        let set = RegexSet::new(patterns).map_err(|e| e.to_string())?;
        Ok(Self { set, each })
    }

    /// Every non-overlapping match of every pattern, ordered by position.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .set
            .matches(text)
            .into_iter()
            .flat_map(|i| {
                self.each[i].find_iter(text).map(move |m| Hit::new(self.each[i].as_str(), 1.0, m.start()..m.end()))
            })
            .collect();
        hits.sort_by_key(|h| (h.span.start, std::cmp::Reverse(h.span.end)));
        hits
    }
}

/// The longest match a streaming pattern rule expects by default, in bytes.
pub const DEFAULT_MAX_LEN: usize = 256;

/// The `patterns` detector.
#[derive(Debug, Clone)]
pub struct PatternDetector {
    set: PatternSet,
    max_len: usize,
}

impl PatternDetector {
    /// Wraps a compiled set; `max_len` bounds what a stream holds back.
    pub fn new(set: PatternSet, max_len: usize) -> Self {
        Self { set, max_len: max_len.max(1) }
    }
}

/// The streaming form: one resume point per pattern.
struct PatternStream {
    each: Vec<Regex>,
    max_len: usize,
    text: String,
    /// Per pattern: where the next search starts, and the start of a match touching the end.
    next: Vec<usize>,
    pending: Vec<Option<usize>>,
}

impl PatternStream {
    fn scan(&mut self, complete: bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let len = self.text.len();
        for (i, re) in self.each.iter().enumerate() {
            self.pending[i] = None;
            let mut at = self.next[i];
            while at <= len {
                let Some(m) = re.find_at(&self.text, at) else { break };
                if m.end() == len && !complete {
                    self.pending[i] = Some(m.start());
                    break;
                }
                hits.push(Hit::new(re.as_str(), 1.0, m.start()..m.end()));
                at = if m.end() > m.start() { m.end() } else { next_char(&self.text, m.end()) };
            }
            // Nothing can start before `len - max_len` any more (matches are at most max_len).
            let floor = floor_char(&self.text, len.saturating_sub(self.max_len));
            self.next[i] = match self.pending[i] {
                Some(p) => p,
                None => at.max(floor).min(len),
            };
        }
        hits.sort_by_key(|h| h.span.start);
        hits
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn next_char(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(i + 1, |c| i + c.len_utf8())
}

impl StreamScanner for PatternStream {
    fn push(&mut self, piece: &str) -> Vec<Hit> {
        self.text.push_str(piece);
        self.scan(false)
    }

    fn finish(&mut self) -> Vec<Hit> {
        self.scan(true)
    }

    fn safe_until(&self) -> usize {
        let len = self.text.len();
        let mut safe = floor_char(&self.text, len.saturating_sub(self.max_len));
        for p in self.pending.iter().flatten() {
            safe = safe.min(*p);
        }
        safe
    }
}

impl Detector for PatternDetector {
    fn kind(&self) -> &'static str {
        "patterns"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        Ok(self.set.find(input.text()))
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        let n = self.set.each.len();
        Some(Box::new(PatternStream {
            each: self.set.each.clone(),
            max_len: self.max_len,
            text: String::new(),
            next: vec![0; n],
            pending: vec![None; n],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the chunking, the stream reports the whole-text matches, and never one that
        /// starts before a point it called safe.
        #[test]
        fn stream_agrees_with_whole_text(
            words in proptest::collection::vec("(sk-[a-z0-9]{20,30}|[a-z ]{1,9}|AKIA[A-Z0-9]{16})", 1..8),
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let text = words.join(" ");
            let set = PatternSet::new(&["sk-[a-z0-9]{20,}".into(), "AKIA[A-Z0-9]{16}".into()]).unwrap();
            let d = PatternDetector::new(set.clone(), 64);
            let whole = set.find(&text);
            let mut s = d.streaming().unwrap();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            points.sort();
            let (mut got, mut prev, mut safe) = (Vec::new(), 0, 0);
            for p in points.into_iter().chain(std::iter::once(text.len())) {
                for h in s.push(&text[prev..p]) {
                    prop_assert!(h.span.start >= safe, "{:?} starts before safe point {}", h, safe);
                    got.push(h);
                }
                safe = s.safe_until();
                prev = p;
            }
            got.extend(s.finish());
            let spans = |v: &[Hit]| { let mut x: Vec<_> = v.iter().map(|h| h.span.clone()).collect(); x.sort_by_key(|r| r.start); x };
            prop_assert_eq!(spans(&got), spans(&whole));
        }
    }
}
