//! The `patterns` detector: regular expressions for shapes a phrase list cannot hold (API keys,
//! private keys, URLs). Matched on the original text, so spans are exact.
//!
//! A `RegexSet` first tells which patterns match at all (one pass); only those are run again to
//! find spans. A pattern can match text of any length, so it has no streaming form: in a streamed
//! completion the stream guard holds the text of rules that could block or redact until the end.
//!
//! ```
//! use warden_core::patterns::PatternSet;
//! let set = PatternSet::new(&["sk-[A-Za-z0-9]{20,}".to_string()]).unwrap();
//! let hits = set.find("key: sk-abcdefghijklmnopqrstuvwx");
//! assert_eq!(hits[0].span, 5..32);
//! ```

use crate::detector::{Detector, DetectorError, Hit, ScanText};
use regex::{Regex, RegexSet};

/// A compiled list of regular expressions.
#[derive(Debug, Clone)]
pub struct PatternSet {
    set: RegexSet,
    each: Vec<Regex>,
}

impl PatternSet {
    /// Compiles the patterns (Rust `regex` syntax). The error names the pattern that failed.
    pub fn new(patterns: &[String]) -> Result<Self, regex::Error> {
        let each = patterns.iter().map(|p| Regex::new(p)).collect::<Result<Vec<_>, _>>()?;
        let set = RegexSet::new(patterns)?;
        Ok(Self { set, each })
    }

    /// Every non-overlapping match of every pattern, ordered by position.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .set
            .matches(text)
            .into_iter()
            .flat_map(|i| {
                self.each[i].find_iter(text).map(move |m| Hit {
                    label: self.each[i].as_str().to_string(),
                    score: 1.0,
                    span: m.start()..m.end(),
                })
            })
            .collect();
        hits.sort_by_key(|h| (h.span.start, std::cmp::Reverse(h.span.end)));
        hits
    }
}

/// The `patterns` detector.
#[derive(Debug, Clone)]
pub struct PatternDetector {
    set: PatternSet,
}

impl PatternDetector {
    /// Wraps a compiled set.
    pub fn new(set: PatternSet) -> Self {
        Self { set }
    }
}

impl Detector for PatternDetector {
    fn kind(&self) -> &'static str {
        "patterns"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        Ok(self.set.find(input.text()))
    }
}
