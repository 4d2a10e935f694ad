//! The `invisible` detector: characters that render as nothing but carry or reorder text.
//!
//! Zero-width characters split a trigger so that a naive filter misses it; bidi controls
//! (Trojan Source) make text read differently from how it is processed; Unicode tag characters
//! (U+E0000..U+E007F) smuggle whole ASCII instructions that a human reviewer cannot see. Phrase
//! matching already ignores them; this detector reports them, one hit per run of adjacent invisible
//! characters, labelled by class (`zero-width`, `bidi-control`, `tag-character`,
//! `variation-selector`). Redacting a hit removes the run.
//!
//! ```
//! use warden_core::invisible::find_invisible;
//! let hits = find_invisible("ig\u{200B}nore \u{202E}txt.exe");
//! assert_eq!(hits.len(), 2);
//! assert_eq!(hits[0].label, "zero-width");
//! assert_eq!(hits[1].label, "bidi-control");
//! ```

use crate::detector::{Detector, DetectorError, Hit, ScanText, StreamScanner};
use crate::normalize::invisible_class;

/// Finds runs of invisible characters in `text`. Spans are byte offsets.
pub fn find_invisible(text: &str) -> Vec<Hit> {
    find_from(text, 0)
}

fn find_from(text: &str, base: usize) -> Vec<Hit> {
    let mut hits: Vec<Hit> = Vec::new();
    for (i, c) in text.char_indices() {
        let Some(class) = invisible_class(c) else { continue };
        let (s, e) = (base + i, base + i + c.len_utf8());
        match hits.last_mut() {
            Some(last) if last.span.end == s => {
                last.span.end = e;
                // A run with a stronger class is labelled by it (tags > bidi > others).
                if rank(class) > rank(&last.label) {
                    last.label = class.to_string();
                }
            }
            _ => hits.push(Hit::new(class, 1.0, s..e)),
        }
    }
    hits
}

fn rank(class: &str) -> u8 {
    match class {
        "tag-character" => 3,
        "bidi-control" => 2,
        "zero-width" => 1,
        _ => 0,
    }
}

/// The classes [`find_invisible`] reports.
pub const CLASSES: &[&str] = &["zero-width", "bidi-control", "tag-character", "variation-selector"];

/// The `invisible` detector, optionally limited to some classes (zero-width joiners are part of
/// emoji sequences, tag characters have almost no honest use in a prompt).
#[derive(Debug, Clone, Default)]
pub struct InvisibleDetector {
    classes: Option<Vec<&'static str>>,
}

impl InvisibleDetector {
    /// Reports only runs labelled with one of `classes` (see [`CLASSES`]); `None` reports all.
    /// Unknown class names are an error naming the known ones.
    pub fn new(classes: Option<&[String]>) -> Result<Self, String> {
        let Some(list) = classes else { return Ok(Self { classes: None }) };
        let mut v = Vec::new();
        for c in list {
            match CLASSES.iter().find(|k| **k == c) {
                Some(k) => v.push(*k),
                None => return Err(format!("unknown invisible class `{c}`; use one of {}", CLASSES.join(", "))),
            }
        }
        Ok(Self { classes: Some(v) })
    }

    fn keep(&self, mut hits: Vec<Hit>) -> Vec<Hit> {
        if let Some(c) = &self.classes {
            hits.retain(|h| c.contains(&h.label.as_str()));
        }
        hits
    }
}

impl Detector for InvisibleDetector {
    fn kind(&self) -> &'static str {
        "invisible"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        Ok(self.keep(find_invisible(input.text())))
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        Some(Box::new(InvisibleStream { fed: 0, detector: self.clone() }))
    }
}

/// Characters arrive whole, so each delta is judged on its own.
struct InvisibleStream {
    fed: usize,
    detector: InvisibleDetector,
}

impl StreamScanner for InvisibleStream {
    fn push(&mut self, piece: &str) -> Vec<Hit> {
        let hits = self.detector.keep(find_from(piece, self.fed));
        self.fed += piece.len();
        hits
    }

    fn finish(&mut self) -> Vec<Hit> {
        Vec::new()
    }

    fn safe_until(&self) -> usize {
        self.fed
    }
}
