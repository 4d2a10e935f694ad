//! guard(completion) for a whole (non-streamed) answer: which texts are judged, and how the
//! decision is written back.
//!
//! Every text the shape knows is judged, then every other string and object key of the body
//! (the sweep). On a block, the choices of every text a rule blocks are withheld (all of them if
//! the text is outside any choice, or a detector failed), a blocked text outside the choices is
//! blanked, and the other choices still get their redactions. An unchanged answer goes to the
//! client byte for byte (the caller keeps the original bytes).

use crate::shape::sweep::{self, KeyText};
use crate::shape::{CompletionText, Shape, TextPlace};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use warden_core::{Action, Decision, Role, RuleHit};

/// The texts of a whole completion, in judging order: the shape's own first.
pub struct Texts {
    /// Every text.
    pub texts: Vec<CompletionText>,
    /// The object keys (the last text, if any), for writing redactions back.
    pub keys: KeyText,
    /// How many texts the shape knew (the rest are swept fragments).
    pub known: usize,
}

impl Texts {
    /// The texts as the policy set takes them: all as assistant text.
    pub fn pairs(&self) -> Vec<(Role, &str)> {
        self.texts.iter().map(|t| (Role::Assistant, t.text.as_str())).collect()
    }
}

/// Collects the texts of a completion body.
pub fn texts(shape: &dyn Shape, json: &Value) -> Texts {
    let mut texts = shape.completion_texts(json);
    let known = texts.len();
    let covered: HashSet<String> = texts.iter().flat_map(|t| t.pointers()).map(str::to_string).collect();
    let (swept, keys) = sweep::sweep_completion(json, &covered, &|p| shape.choice_of(json, p));
    texts.extend(swept);
    Texts { texts, keys, known }
}

/// Writes a completion decision into the body: withheld choices, blanked texts, redactions.
pub fn apply(shape: &dyn Shape, json: &mut Value, all: &Texts, d: &Decision) {
    let (texts, keys) = (&all.texts, &all.keys);
    let mut choices: BTreeSet<Option<usize>> = BTreeSet::new();
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    let blocking: Vec<&RuleHit> = d.hits.iter().filter(|h| h.applied == Action::Block).collect();
    for h in &blocking {
        if h.findings.is_empty() {
            // A detector failure blocks every choice.
            choices.insert(None);
        }
        for f in &h.findings {
            blocked.insert(f.segment);
            choices.insert(texts.get(f.segment).and_then(|t| t.choice));
        }
    }
    if let Some(first) = blocking.first() {
        shape.withhold(json, &choices, first);
    }
    for (i, t) in texts.iter().enumerate() {
        if blocked.contains(&i) {
            match &t.place {
                // A blocked key is renamed to [REDACTED] where it stands.
                TextPlace::Key(_) => {
                    let spans: Vec<_> = blocking
                        .iter()
                        .flat_map(|h| h.findings.iter())
                        .filter(|f| f.segment == i)
                        .map(|f| f.span.clone())
                        .collect();
                    keys.write_back(json, &warden_core::decision::merge_spans(spans));
                }
                _ => sweep::blank(json, t),
            }
            continue;
        }
        // Texts of a withheld choice are gone; write_completion leaves a string that no longer
        // holds its original text alone, so redactions elsewhere still land.
        let spans = d.redactions(i);
        sweep::write_completion(json, t, &spans, Some(keys));
    }
}
