//! The [`Detector`] trait: anything that inspects text and returns hits.
//!
//! Detectors differ in cost. Phrases, patterns and invisible characters run inline in
//! microseconds ([`Cost::Inline`]); the classifier and plugins will cost more and run on a bounded
//! pool ([`Cost::Pooled`]), which the evaluator schedules after the cheap ones so that a cheap block
//! ends the evaluation first. A detector may also offer a streaming form ([`StreamScanner`]) that
//! keeps state across the deltas of a streamed completion.

use crate::normalize::{normalize, Normalized};
use std::cell::OnceCell;
use std::fmt;
use std::ops::Range;

/// What a detector saw in one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// What matched: the phrase as listed, the pattern, the class of invisible character.
    pub label: String,
    /// A score in 0..=1; inline detectors that match exactly report 1.
    pub score: f32,
    /// The byte span in the original text (what `redact` replaces).
    pub span: Range<usize>,
}

/// A detector failed to give an answer (a trap, a model error, a timeout). The rule's `on_error`
/// decides what that means.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DetectorError(pub String);

/// How expensive a detector is to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cost {
    /// Microseconds, on the request's own task.
    Inline,
    /// Milliseconds, on a bounded worker pool the request awaits.
    Pooled,
}

/// One text to scan, with its normalised form computed at most once and shared by every
/// detector that wants it.
pub struct ScanText<'a> {
    text: &'a str,
    normalized: OnceCell<Normalized>,
}

impl<'a> ScanText<'a> {
    /// Wraps a text; nothing is computed yet.
    pub fn new(text: &'a str) -> Self {
        Self { text, normalized: OnceCell::new() }
    }

    /// The original text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The normalised text and its offset map, computed on first use.
    pub fn normalized(&self) -> &Normalized {
        self.normalized.get_or_init(|| normalize(self.text))
    }
}

/// Inspects text. Implementations must be cheap to share across threads.
pub trait Detector: Send + Sync + fmt::Debug {
    /// The detector's kind as written in policies: `phrases`, `patterns`, `invisible`, ...
    fn kind(&self) -> &'static str;

    /// What running it costs; the evaluator runs [`Cost::Inline`] detectors first.
    fn cost(&self) -> Cost {
        Cost::Inline
    }

    /// Scans one whole text.
    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError>;

    /// A scanner for a text that arrives in pieces, or `None` if this detector can only judge a
    /// whole text (the stream guard then holds the stream until it ends, for rules that could
    /// block or redact).
    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        None
    }
}

/// The streaming form of a detector: fed the deltas of one text in order.
pub trait StreamScanner: Send {
    /// Feeds the next piece; returns the hits completed by it. Spans are byte offsets in the
    /// whole text fed so far.
    fn push(&mut self, piece: &str) -> Vec<Hit>;

    /// The text has ended; returns any hits that were waiting for more text.
    fn finish(&mut self) -> Vec<Hit>;

    /// The byte offset in the whole text before which no future hit can start. The stream guard
    /// may release everything before it and must hold everything after it.
    fn safe_until(&self) -> usize;
}
