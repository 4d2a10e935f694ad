//! The classifier as a detector: one rule's labels and thresholds over a model, on whole texts
//! and, for streamed completions, sentence by sentence.

use crate::model::Model;
use std::sync::Arc;
use warden_core::normalize::normalize;
use warden_core::{Cost, Detector, DetectorError, Hit, ScanText, StreamScanner};

/// A streamed text is judged in windows that end at a sentence end, or at this many bytes.
const MAX_WINDOW: usize = 1024;

/// A model and the labels a rule acts on, each with the probability at which it fires.
#[derive(Debug, Clone)]
pub struct ClassifierDetector {
    model: Arc<Model>,
    /// (index in the model's labels, threshold).
    labels: Arc<[(usize, f32)]>,
}

impl ClassifierDetector {
    /// A detector firing on each `(label, threshold)`; a label the model lacks is an error that
    /// lists the labels it has.
    pub fn new(model: Arc<Model>, labels: &[(String, f32)]) -> Result<Self, String> {
        let mut idx = Vec::with_capacity(labels.len());
        for (name, th) in labels {
            let i = model.labels().iter().position(|l| l == name).ok_or_else(|| {
                format!(
                    "label `{name}` is not one of the model's labels ({}); see its warden.labels metadata",
                    model.labels().join(", ")
                )
            })?;
            if !(0.0..=1.0).contains(th) {
                return Err(format!("threshold {th} for label `{name}` is outside 0..1"));
            }
            idx.push((i, *th));
        }
        if idx.is_empty() {
            return Err("name at least one label".into());
        }
        Ok(Self { model, labels: idx.into() })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    fn hits(&self, normalized: &str, span: std::ops::Range<usize>) -> Result<Vec<Hit>, DetectorError> {
        let probs = self.model.classify(normalized).map_err(|e| DetectorError(e.to_string()))?;
        Ok(self
            .labels
            .iter()
            .filter(|&&(i, th)| probs[i] >= th)
            .map(|&(i, _)| Hit::new(self.model.labels()[i].clone(), probs[i], span.clone()))
            .collect())
    }
}

impl Detector for ClassifierDetector {
    fn kind(&self) -> &'static str {
        "classifier"
    }

    fn artefact(&self) -> Option<&str> {
        Some(self.model.digest())
    }

    fn cost(&self) -> Cost {
        Cost::Pooled
    }

    /// One verdict for the whole text; a hit spans it all.
    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        self.hits(input.normalized().text(), 0..input.text().len())
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        Some(Box::new(SentenceScanner { detector: self.clone(), text: String::new(), judged: 0, failed: None }))
    }
}

/// Judges a streamed text one completed sentence (or [`MAX_WINDOW`] bytes) at a time, so that
/// only the sentence being written is held back.
struct SentenceScanner {
    detector: ClassifierDetector,
    /// The sentence being written: the text after the last judged byte (a window, never the
    /// whole text).
    text: String,
    /// Bytes of the whole text already judged (and forgotten).
    judged: usize,
    /// A failure not yet taken by the judge (see [`StreamScanner::take_error`]).
    failed: Option<DetectorError>,
}

impl SentenceScanner {
    /// Judges the first `len` bytes of the window (whole sentences), then forgets them.
    fn judge(&mut self, len: usize) -> Vec<Hit> {
        let window: String = self.text.drain(..len).collect();
        let span = self.judged..self.judged + len;
        self.judged += len;
        if window.trim().is_empty() {
            return Vec::new();
        }
        match self.detector.hits(normalize(&window).text(), span) {
            Ok(h) => h,
            Err(e) => {
                self.failed = Some(e);
                Vec::new()
            }
        }
    }
}

/// The end of the last complete sentence in `s`, if any.
fn sentence_end(s: &str) -> Option<usize> {
    s.char_indices()
        .rfind(|&(_, c)| matches!(c, '.' | '!' | '?' | '\n' | '。' | '！' | '？'))
        .map(|(i, c)| i + c.len_utf8())
}

impl StreamScanner for SentenceScanner {
    fn push(&mut self, piece: &str) -> Vec<Hit> {
        // Only the new piece can hold the end of a sentence: the window before it had none.
        let before = self.text.len();
        self.text.push_str(piece);
        let end = match sentence_end(piece) {
            Some(e) => Some(before + e),
            None if self.text.len() >= MAX_WINDOW => Some(self.text.len()),
            None => None,
        };
        end.map_or_else(Vec::new, |e| self.judge(e))
    }

    fn finish(&mut self) -> Vec<Hit> {
        self.judge(self.text.len())
    }

    fn safe_until(&self) -> usize {
        self.judged
    }

    fn take_error(&mut self) -> Option<DetectorError> {
        self.failed.take()
    }
}
