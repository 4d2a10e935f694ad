//! The classifier as a detector: one rule's labels and thresholds over a model, on whole texts
//! (a long one window by window, see [`crate::windows`]) and, for streamed completions, sentence
//! by sentence.

use crate::model::Model;
use crate::windows::{ends_sentence, windows};
use std::sync::Arc;
use warden_core::normalize::normalize;
use warden_core::{Cost, Detector, DetectorError, Hit, ScanText, StreamScanner};

/// A streamed text is judged in windows that end at a sentence end, or at this many bytes.
const MAX_WINDOW: usize = crate::windows::WINDOW_BYTES;

/// A model and the labels a rule acts on, each with the probability at which it fires.
#[derive(Debug, Clone)]
pub struct ClassifierDetector {
    model: Arc<Model>,
    /// (index in the model's labels, threshold).
    labels: Arc<[(usize, f32)]>,
    /// Texts of fewer words are not scored.
    min_words: usize,
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
        Ok(Self { model, labels: idx.into(), min_words: 0 })
    }

    /// The same detector, scoring only texts of at least `n` words (see [`words`]): a short
    /// chat turn ("Say hello.", "summarise the document") has so few features that the model's
    /// priors decide its score, and short attacks are the phrase lists' to catch. A long text's
    /// windows and a stream's sentences (read after the text before them) are counted as they
    /// are scored.
    pub fn with_min_words(mut self, n: usize) -> Self {
        self.min_words = n;
        self
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The hits on `text` (original bytes; `normalized` is its normal form, if already made),
    /// whose first byte is byte `base` of the whole text. A long text is scored per window
    /// ([`windows`]); each label's score is its highest over the windows and its hit spans that
    /// window, so the finding points at the sentences that scored.
    ///
    /// A text of one word (an enum value such as a role or a finish reason, an id, base64) is not
    /// prose and is not scored: a model of prose reads such a fragment as noise (`assistant`
    /// alone scores 0.96 as bias), and the inline detectors judge it anyway. Words are counted
    /// as the model's tokenizer cuts them (runs of letters, digits and `_`), so words joined by
    /// hyphens or dots instead of spaces still count.
    fn hits(&self, text: &str, normalized: Option<&str>, base: usize) -> Result<Vec<Hit>, DetectorError> {
        if words(text) < self.min_words.max(2) {
            return Ok(Vec::new());
        }
        let ranges = windows(text);
        let owned: Vec<String>;
        let inputs: Vec<&str> = match (normalized, ranges.len()) {
            (Some(n), 1) => vec![n],
            _ => {
                owned = ranges.iter().map(|r| normalize(&text[r.clone()]).text().to_string()).collect();
                owned.iter().map(String::as_str).collect()
            }
        };
        let probs = self.model.classify_many(&inputs).map_err(|e| DetectorError(e.to_string()))?;
        let mut hits = Vec::new();
        for &(label, th) in self.labels.iter() {
            let (w, score) = probs.iter().enumerate().map(|(w, p)| (w, p[label])).fold((0, f32::MIN), |best, cur| {
                if cur.1 > best.1 {
                    cur
                } else {
                    best
                }
            });
            if score >= th {
                let r = &ranges[w];
                hits.push(Hit::new(self.model.labels()[label].clone(), score, base + r.start..base + r.end));
            }
        }
        Ok(hits)
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

    /// One verdict for the whole text, the highest over its windows; a hit spans the window that
    /// scored it.
    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        self.hits(input.text(), Some(input.normalized().text()), 0)
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        Some(Box::new(SentenceScanner {
            detector: self.clone(),
            text: String::new(),
            context: String::new(),
            judged: 0,
            failed: None,
        }))
    }
}

/// Judges a streamed text one completed sentence (or [`MAX_WINDOW`] bytes) at a time, so that
/// only the sentence being written is held back. Each new sentence is scored alone and after the
/// end of the text before it ([`CONTEXT`] bytes at most, already judged and released), as a
/// whole text's windows share a sentence with the one before; a label fires at the lower score.
struct SentenceScanner {
    detector: ClassifierDetector,
    /// The sentence being written: the text after the last judged byte (a window, never the
    /// whole text).
    text: String,
    /// The last judged sentences, at most [`CONTEXT`] bytes, from a sentence start.
    context: String,
    /// Bytes of the whole text already judged (and forgotten).
    judged: usize,
    /// A failure not yet taken by the judge (see [`StreamScanner::take_error`]).
    failed: Option<DetectorError>,
}

impl SentenceScanner {
    /// Judges the first `len` bytes of the window (whole sentences), then forgets them.
    fn judge(&mut self, len: usize) -> Vec<Hit> {
        let window: String = self.text.drain(..len).collect();
        let base = self.judged;
        self.judged += len;
        if window.trim().is_empty() {
            self.context.push_str(&window);
            return Vec::new();
        }
        let context = std::mem::take(&mut self.context);
        let seen = context.clone() + &window;
        self.context = tail(&seen, CONTEXT).to_string();
        let alone = self.detector.hits(&window, None, base);
        if context.is_empty() {
            return self.taken(alone);
        }
        // A label fires only where the sentence scores high both alone and after the text before
        // it, at the lower of the two: the context keeps a short sentence from scoring on the
        // model's priors, and the sentence alone keeps a finding of the text before from being
        // reported again on the next one.
        let with = self.detector.hits(&seen, None, base - context.len());
        let both = alone.and_then(|a| {
            with.map(|w| {
                a.into_iter()
                    .filter_map(|mut h| {
                        let other = w.iter().find(|x| x.label == h.label)?;
                        h.score = h.score.min(other.score);
                        Some(h)
                    })
                    .collect()
            })
        });
        self.taken(both)
    }

    /// The hits, or none if the model failed (the failure is kept for the judge).
    fn taken(&mut self, hits: Result<Vec<Hit>, DetectorError>) -> Vec<Hit> {
        match hits {
            Ok(h) => h,
            Err(e) => {
                self.failed = Some(e);
                Vec::new()
            }
        }
    }
}

/// The words of `text` as the model's tokenizer sees them: runs of letters, digits and `_`.
fn words(text: &str) -> usize {
    let mut n = 0;
    let mut inside = false;
    for c in text.chars() {
        let w = c.is_alphanumeric() || c == '_';
        n += usize::from(w && !inside);
        inside = w;
    }
    n
}

/// How much of the judged text a streamed sentence is scored after.
const CONTEXT: usize = crate::windows::WINDOW_BYTES / 2;

/// The end of `s`, at most `max` bytes, starting after a sentence end if there is one in it (else
/// at a character boundary).
fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    let t = &s[cut..];
    match t.char_indices().find(|&(_, c)| ends_sentence(c)) {
        Some((i, c)) if i + c.len_utf8() < t.len() => &t[i + c.len_utf8()..],
        _ => t,
    }
}

/// The end of the last complete sentence in `s`, if any.
fn sentence_end(s: &str) -> Option<usize> {
    s.char_indices().rfind(|&(_, c)| ends_sentence(c)).map(|(i, c)| i + c.len_utf8())
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
