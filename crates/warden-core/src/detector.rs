//! The [`Detector`] trait: anything that inspects text and returns hits.
//!
//! Detectors differ in cost. Phrases, patterns and invisible characters run inline in
//! microseconds ([`Cost::Inline`]); the classifier and plugins will cost more and run on a bounded
//! pool ([`Cost::Pooled`]), which the evaluator schedules after the cheap ones so that a cheap block
//! ends the evaluation first. A detector may also offer a streaming form ([`StreamScanner`]) that
//! keeps state across the deltas of a streamed completion.

use crate::decision::Action;
use crate::exchange::{Phase, Role};
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
    /// The action the detector itself asks for (a plugin's verdict); `None` leaves it to the
    /// rule. The rule's `action` caps it either way.
    pub action: Option<Action>,
}

impl Hit {
    /// A hit that leaves the action to its rule.
    pub fn new(label: impl Into<String>, score: f32, span: Range<usize>) -> Self {
        Self { label: label.into(), score, span, action: None }
    }

    /// The same hit, asking for `action` (capped by the rule's).
    pub fn asking(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }
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

/// Where a text comes from: what detectors that judge in context (plugins) are told.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The phase the text belongs to.
    pub phase: Phase,
    /// Who wrote it.
    pub role: Role,
    /// The model named in the request.
    pub model: &'a str,
    /// The tenant.
    pub tenant: &'a str,
}

impl Default for Context<'_> {
    fn default() -> Self {
        Self { phase: Phase::Prompt, role: Role::User, model: "", tenant: "" }
    }
}

/// One text to scan, with its normalised form computed at most once and shared by every
/// detector that wants it.
pub struct ScanText<'a> {
    text: &'a str,
    context: Context<'a>,
    normalized: OnceCell<Normalized>,
}

impl<'a> ScanText<'a> {
    /// Wraps a text (a user's prompt, by default); nothing is computed yet.
    pub fn new(text: &'a str) -> Self {
        Self { text, context: Context::default(), normalized: OnceCell::new() }
    }

    /// The same text, placed in `context`.
    pub fn with_context(mut self, context: Context<'a>) -> Self {
        self.context = context;
        self
    }

    /// The original text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Where the text comes from.
    pub fn context(&self) -> &Context<'a> {
        &self.context
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

    /// The sha256 of the artefact it runs (a classifier's model, a plugin's WebAssembly), for the
    /// audit trail: which exact model or plugin decided. Default: none (the policy files say it).
    fn artefact(&self) -> Option<&str> {
        None
    }

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

/// The normalised form of a streamed text, as far as it has arrived, shared by every rule that
/// reads it: the judge of a text normalises each piece once (see
/// [`StreamScanner::reads_normalized`]).
pub struct NormWindow<'a> {
    /// The normalised text from absolute normalised offset `base` on (earlier bytes no scanner
    /// needed any more were forgotten), with its map to original offsets.
    pub normalized: &'a Normalized,
    /// Where `normalized` starts in the whole normalised text.
    pub base: usize,
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

    /// Takes the failure, if the detector failed on the text so far (a model error): the rule's
    /// `on_error` then decides. Detectors that cannot fail keep the default.
    fn take_error(&mut self) -> Option<DetectorError> {
        None
    }

    /// Whether the scanner reads the normalised text. If so, the judge of a text normalises each
    /// piece once for every such scanner and feeds them [`StreamScanner::push_normalized`] and
    /// [`StreamScanner::finish_normalized`] instead of `push` and `finish`.
    fn reads_normalized(&self) -> bool {
        false
    }

    /// Feeds the next piece; `window` already holds its normalised form at its end.
    fn push_normalized(&mut self, piece: &str, window: &NormWindow<'_>) -> Vec<Hit> {
        let _ = window;
        self.push(piece)
    }

    /// The text has ended (see [`StreamScanner::push_normalized`]).
    fn finish_normalized(&mut self, window: &NormWindow<'_>) -> Vec<Hit> {
        let _ = window;
        self.finish()
    }

    /// The absolute normalised offset before which the scanner needs nothing of the window any
    /// more: the judge forgets what every scanner is done with.
    fn normalized_needed_from(&self) -> usize {
        usize::MAX
    }
}
