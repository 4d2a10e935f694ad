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
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::util::start;
use regex_automata::Anchored;
use std::sync::Arc;

/// A compiled list of regular expressions.
#[derive(Debug, Clone)]
pub struct PatternSet {
    set: RegexSet,
    each: Vec<Regex>,
    /// Per pattern, its lazy DFA for following a long match as it grows (`None` if the pattern
    /// cannot be run as one, e.g. a Unicode word boundary).
    grow: Arc<[Option<DFA>]>,
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
        let grow = patterns
            .iter()
            .map(|p| {
                DFA::builder()
                    .configure(
                        DFA::config()
                            .cache_capacity(GROW_CACHE_BYTES)
                            .skip_cache_capacity_check(true)
                            // `\b` runs on ASCII; on other bytes the DFA quits and the match ends there.
                            .unicode_word_boundary(true),
                    )
                    .build(p)
                    .ok()
            })
            .collect();
        Ok(Self { set, each, grow })
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

/// The most memory one growing match's lazy DFA may cache.
const GROW_CACHE_BYTES: usize = 64 << 10;

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

/// The streaming form: per pattern, where the next search starts, a match touching the end
/// (which may grow), or a long match being followed byte by byte.
///
/// Time and memory are linear and bounded: the scanner keeps only a window of the text (from
/// the earliest point a future match could start), and a match that keeps growing past
/// `max_len` (a key-like run of a megabyte) is reported at once and then followed by the
/// pattern's DFA one new byte at a time, never searched again from its start.
struct PatternStream {
    each: Vec<Regex>,
    grow: Arc<[Option<DFA>]>,
    max_len: usize,
    /// The window: the text from byte `base` of the whole text on.
    text: String,
    base: usize,
    /// Per pattern, absolute offsets: where the next search starts, and the start of a match
    /// touching the end.
    next: Vec<usize>,
    pending: Vec<Option<usize>>,
    growing: Vec<Option<Growing>>,
}

/// A long match followed by the pattern's DFA (anchored at its start) as the text grows.
struct Growing {
    /// Where the match ends so far (absolute), all of it reported.
    end: usize,
    /// How far the DFA has read (absolute).
    fed: usize,
    state: LazyStateID,
    cache: Cache,
}

impl PatternStream {
    fn len(&self) -> usize {
        self.base + self.text.len()
    }

    fn scan(&mut self, complete: bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let len = self.len();
        for i in 0..self.each.len() {
            if let Some(g) = self.growing[i].as_mut() {
                match follow(self.grow[i].as_ref(), g, &self.text, self.base, complete) {
                    Follow::Grew(from) => hits.push(Hit::new(self.each[i].as_str(), 1.0, from..g.end)),
                    Follow::Same => {}
                }
                // Ended (the DFA died), or no longer growing for `max_len` bytes: searches resume
                // where it ends.
                let ended = complete || g.state.is_dead() || g.state.is_quit() || g.fed - g.end > self.max_len;
                if !ended {
                    continue;
                }
                self.next[i] = g.end;
                self.growing[i] = None;
            }
            self.pending[i] = None;
            let mut at = self.next[i];
            while at <= len {
                let Some(m) = self.each[i].find_at(&self.text, at - self.base) else { break };
                let (start, end) = (m.start() + self.base, m.end() + self.base);
                if end == len && !complete {
                    if end - start > self.max_len {
                        if let Some(dfa) = self.grow[i].as_ref() {
                            // Too long to search again on every delta: report it, then follow it.
                            if let Some(g) = start_growing(dfa, &self.text[start - self.base..], start) {
                                hits.push(Hit::new(self.each[i].as_str(), 1.0, start..g.end));
                                self.growing[i] = Some(g);
                                break;
                            }
                        }
                        // No DFA for this pattern: the match is taken as it stands.
                        hits.push(Hit::new(self.each[i].as_str(), 1.0, start..end));
                        at = end;
                        break;
                    }
                    self.pending[i] = Some(start);
                    break;
                }
                hits.push(Hit::new(self.each[i].as_str(), 1.0, start..end));
                at = if end > start { end } else { self.base + next_char(&self.text, end - self.base) };
            }
            // Nothing can start before `len - max_len` any more (matches are at most max_len).
            let floor = self.base + floor_char(&self.text, (len - self.base).saturating_sub(self.max_len));
            if self.growing[i].is_none() {
                self.next[i] = match self.pending[i] {
                    Some(p) => p,
                    None => at.max(floor).min(len),
                };
            }
        }
        hits.sort_by_key(|h| h.span.start);
        self.trim();
        hits
    }

    /// Drops the text no pattern can look at again, keeping one character before the earliest
    /// search point (for `\b` and `^`, which look behind).
    fn trim(&mut self) {
        let mut keep = self.len();
        for i in 0..self.each.len() {
            keep = keep.min(match &self.growing[i] {
                Some(g) => g.end,
                None => self.pending[i].unwrap_or(self.next[i]),
            });
        }
        let rel = floor_char(&self.text, (keep - self.base).saturating_sub(1));
        // Amortised: only when the dead part is worth the copy.
        if rel >= 4096 && rel * 2 >= self.text.len() {
            self.text.drain(..rel);
            self.base += rel;
        }
    }
}

enum Follow {
    /// The match grew: it now also covers from the given offset to `end`.
    Grew(usize),
    Same,
}

/// The DFA state after reading `text` (a match's bytes, from its start at `start`), or `None`
/// if the DFA gave up (a cache error or a quit byte).
fn start_growing(dfa: &DFA, text: &str, start: usize) -> Option<Growing> {
    let mut cache = dfa.create_cache();
    let state = dfa.start_state(&mut cache, &start::Config::new().anchored(Anchored::Yes)).ok()?;
    let mut g = Growing { end: start, fed: start, state, cache };
    for (i, &b) in text.as_bytes().iter().enumerate() {
        g.state = dfa.next_state(&mut g.cache, g.state, b).ok()?;
        if g.state.is_match() {
            // Matches are reported one byte late: the match ends before this byte.
            g.end = start + i;
        }
        if g.state.is_dead() || g.state.is_quit() {
            return None;
        }
    }
    g.fed = start + text.len();
    Some(g)
}

/// Feeds the DFA the bytes of the window past what it has read.
fn follow(dfa: Option<&DFA>, g: &mut Growing, text: &str, base: usize, complete: bool) -> Follow {
    let Some(dfa) = dfa else { return Follow::Same };
    let before = g.end;
    for &b in &text.as_bytes()[g.fed - base..] {
        if g.state.is_dead() || g.state.is_quit() {
            break;
        }
        g.state = match dfa.next_state(&mut g.cache, g.state, b) {
            Ok(s) => s,
            Err(_) => break,
        };
        if g.state.is_match() {
            g.end = g.fed;
        }
        g.fed += 1;
    }
    if complete && !g.state.is_dead() && !g.state.is_quit() {
        if let Ok(s) = dfa.next_eoi_state(&mut g.cache, g.state) {
            if s.is_match() {
                g.end = g.fed;
            }
        }
    }
    if g.end > before {
        Follow::Grew(before)
    } else {
        Follow::Same
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
        let len = self.len();
        let mut safe = self.base + floor_char(&self.text, self.text.len().saturating_sub(self.max_len));
        for p in self.pending.iter().flatten() {
            safe = safe.min(*p);
        }
        for g in self.growing.iter().flatten() {
            // What the match covers is reported; what follows may still join it.
            safe = safe.min(g.end.min(len));
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
            grow: Arc::clone(&self.set.grow),
            max_len: self.max_len,
            text: String::new(),
            base: 0,
            next: vec![0; n],
            pending: vec![None; n],
            growing: (0..n).map(|_| None).collect(),
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

        /// Matches longer than `max_len` (followed by the DFA as they grow) are reported in
        /// pieces that together cover exactly the whole-text matches, never before a safe point.
        #[test]
        fn long_matches_are_followed_not_searched_again(
            words in proptest::collection::vec("(sk-[a-z0-9]{40,200}|[a-z ]{1,9}|AKIA[A-Z0-9]{16})", 1..6),
            cuts in proptest::collection::vec(0usize..1200, 0..12),
        ) {
            let text = words.join(" ");
            let set = PatternSet::new(&["sk-[a-z0-9]{20,}".into(), "AKIA[A-Z0-9]{16}".into()]).unwrap();
            let d = PatternDetector::new(set.clone(), 24);
            let mut s = d.streaming().unwrap();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            points.sort();
            let (mut got, mut prev, mut safe) = (Vec::new(), 0, 0);
            for p in points.into_iter().chain(std::iter::once(text.len())) {
                for h in s.push(&text[prev..p]) {
                    prop_assert!(h.span.start >= safe, "{:?} starts before safe point {}", h, safe);
                    got.push(h.span);
                }
                safe = s.safe_until();
                prev = p;
            }
            got.extend(s.finish().into_iter().map(|h| h.span));
            let whole: Vec<_> = set.find(&text).into_iter().map(|h| h.span).collect();
            prop_assert_eq!(crate::decision::merge_spans(got), crate::decision::merge_spans(whole));
        }
    }

    /// A pattern with word boundaries is followed as it grows too (the DFA handles `\b` on
    /// ASCII), and ends where the run ends.
    #[test]
    fn a_long_match_with_word_boundaries_is_followed() {
        let set = PatternSet::new(&[r"\bsk-[a-z]{20,}\b".into()]).unwrap();
        assert!(set.grow[0].is_some(), "the pattern builds as a DFA");
        let text = format!("x sk-{} tail, and sk-{}é", "a".repeat(2000), "b".repeat(500));
        let d = PatternDetector::new(set.clone(), 32);
        let mut s = d.streaming().unwrap();
        let mut got = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let mut end = (at + 50).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            got.extend(s.push(&text[at..end]).into_iter().map(|h| h.span));
            at = end;
        }
        got.extend(s.finish().into_iter().map(|h| h.span));
        let whole: Vec<_> = set.find(&text).into_iter().map(|h| h.span).collect();
        assert_eq!(crate::decision::merge_spans(got), crate::decision::merge_spans(whole));
    }

    /// A megabyte-long key-like run, fed in small deltas, keeps a bounded window and is reported
    /// as it grows (so a redaction covers all of it and a block fires at once).
    #[test]
    fn an_endless_key_like_run_keeps_a_bounded_window() {
        let set = PatternSet::new(&["sk-[A-Za-z0-9]{20,}".into()]).unwrap();
        let d = PatternDetector::new(set, 256);
        let mut s = PatternStream {
            each: d.set.each.clone(),
            grow: Arc::clone(&d.set.grow),
            max_len: 256,
            text: String::new(),
            base: 0,
            next: vec![0],
            pending: vec![None],
            growing: vec![None],
        };
        let mut covered = Vec::new();
        covered.extend(s.push("here: sk-").into_iter().map(|h| h.span));
        let delta = "abcdefghij".repeat(30);
        for _ in 0..3_500 {
            covered.extend(s.push(&delta).into_iter().map(|h| h.span));
            assert!(s.text.len() < 16 << 10, "the window grew to {} bytes", s.text.len());
        }
        covered.extend(s.push(" done").into_iter().map(|h| h.span));
        covered.extend(s.finish().into_iter().map(|h| h.span));
        let len = 9 + 3_500 * delta.len();
        assert_eq!(crate::decision::merge_spans(covered), vec![6..len]);
    }
}
