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
    /// How many texts the shape knew as plain text (the rest, its JSON texts by their decoded
    /// strings and the swept fragments, are not judged by structural rules).
    pub known: usize,
    /// Where the texts for structural rules only begin: the raw JSON of each known JSON text
    /// (an answer that is a JSON document, tool-call arguments), which the other rules judge
    /// by its decoded strings.
    pub structure_from: usize,
}

impl Texts {
    /// The texts as the policy set takes them: all as assistant text.
    pub fn pairs(&self) -> Vec<(Role, &str)> {
        self.texts.iter().map(|t| (Role::Assistant, t.text.as_str())).collect()
    }
}

/// Collects the texts of a completion body: the shape's own texts, then its JSON texts (an
/// answer that is a JSON document, tool-call arguments) by their decoded strings, then the swept
/// fragments, then the raw JSON of those JSON texts for structural rules only (a JSON Schema
/// judges the document, the other rules the strings a client decodes from it).
pub fn texts(shape: &dyn Shape, json: &Value) -> Texts {
    let all = shape.completion_texts(json);
    let covered: HashSet<String> = all.iter().flat_map(|t| t.pointers()).map(str::to_string).collect();
    let (mut texts, decoded): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|t| !matches!(t.place, TextPlace::Json { .. }));
    let known = texts.len();
    let raw: Vec<CompletionText> = decoded
        .iter()
        .filter_map(|t| match &t.place {
            TextPlace::Json { pointer, raw, .. } => Some(CompletionText::string(raw, pointer.clone(), t.choice)),
            _ => None,
        })
        .collect();
    texts.extend(decoded);
    let (swept, keys) = sweep::sweep_completion(json, &covered, &|p| shape.choice_of(json, p));
    texts.extend(swept);
    let structure_from = texts.len();
    texts.extend(raw);
    Texts { texts, keys, known, structure_from }
}

impl Texts {
    /// How the texts divide for [`warden_policy::PolicySet::evaluate_split`].
    pub fn split(&self) -> warden_policy::Split {
        let keys_at = self.texts.iter().position(|t| matches!(t.place, TextPlace::Key(_)));
        warden_policy::Split { fragments_from: self.known, structure_from: self.structure_from, keys_at }
    }
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
                    // What a rule redacts in the keys is renamed too, in the same pass.
                    let mut spans: Vec<_> = blocking
                        .iter()
                        .flat_map(|h| h.findings.iter())
                        .filter(|f| f.segment == i)
                        .map(|f| f.span.clone())
                        .collect();
                    spans.extend(d.redactions(i));
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

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::Phase;
    use warden_policy::{PolicySet, Target};

    /// A JSON Schema rule judges a structured answer as the document it is (its raw JSON), while
    /// the other rules judge the strings a client decodes from it, and nothing else of the body
    /// (ids, the model, keys) is held against the schema.
    #[test]
    fn a_schema_rule_judges_a_json_answer_as_a_document() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.yaml"),
            r#"
name: shape
rules:
  - id: answer-shape
    phases: [completion]
    roles: [assistant]
    action: block
    schema: { inline: { type: object, required: [answer], properties: { answer: { type: string } }, additionalProperties: false } }
  - id: word
    phases: [completion]
    action: block
    phrases: { list: ["forbidden word"] }
"#,
        )
        .unwrap();
        let set = PolicySet::load(dir.path()).unwrap();
        let t = Target {
            provider: warden_core::Provider::OpenAi,
            route: "/v1/chat/completions",
            model: "m",
            tenant: "t",
            headers: &[],
        };
        let body = |content: &str| {
            serde_json::json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x",
                "choices":[{"index":0,"message":{"role":"assistant","content":content,"refusal":null},"finish_reason":"stop"}]})
        };
        for (content, blocked) in [
            (r#"{"answer":"ok"}"#, false),
            (r#"{"other":"ok"}"#, true),
            // The escape hides the phrase from the raw text, not from the decoded strings.
            (r#"{"answer":"forbidden w\u006frd"}"#, true),
        ] {
            let json = body(content);
            let texts = texts(&crate::shape::OPENAI_CHAT, &json);
            let d = set.evaluate_split(Phase::Completion, &t, &texts.pairs(), texts.split(), None);
            assert_eq!(d.action == Action::Block, blocked, "{content}: {:?}", d.hits);
        }
    }
}
