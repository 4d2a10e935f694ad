//! Judging a text that arrives in pieces: the policy side of the stream guard.
//!
//! The proxy's stream guard owns the SSE events and decides what to release; for each text of a
//! streamed completion (one per choice, content block or tool call) it keeps a [`TextJudge`] and
//! asks it two things: what fired on the latest piece ([`TextJudge::push`]), and up to where the
//! text is safe to release ([`TextJudge::safe_until`]).
//!
//! Rules whose detector has a streaming form (phrases, patterns, invisible, the classifier, which
//! judges finished sentences) are judged piece by piece and hold back only what could still
//! become a finding. Rules whose detector can only judge a whole text (schema, plugins) are
//! judged at the end; if they could block or redact (through their action or their `on_error`),
//! the text is held until then, because releasing it earlier would leak what they are meant to
//! stop. A rule that can at most flag holds nothing back.

use crate::set::{PolicySet, Target};
use warden_core::{Action, Context, Phase, Role, RuleHit, ScanText, StreamScanner};

struct Judged {
    policy: String,
    rule: crate::set::Rule,
    scanner: Option<Box<dyn StreamScanner>>,
}

/// Judges one streamed text against the completion rules that apply to the assistant role.
pub struct TextJudge {
    index: usize,
    rules: Vec<Judged>,
    text: String,
    model: String,
    tenant: String,
}

impl PolicySet {
    /// A judge for one streamed completion text; `index` is recorded as the findings' segment.
    pub fn judge_stream(&self, target: &Target<'_>, index: usize) -> TextJudge {
        let rules = self
            .select(Phase::Completion, target)
            .into_iter()
            .filter(|(_, r)| r.roles.contains(&Role::Assistant))
            .map(|(p, r)| Judged { policy: p.name.clone(), rule: r.clone(), scanner: r.detector.streaming() })
            .collect();
        TextJudge {
            index,
            rules,
            text: String::new(),
            model: target.model.to_string(),
            tenant: target.tenant.to_string(),
        }
    }
}

impl TextJudge {
    /// Whether any rule applies (if not, the guard can pass the stream through untouched).
    pub fn is_idle(&self) -> bool {
        self.rules.is_empty()
    }

    /// The text received so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Feeds the next piece of text; returns the rules that fired on it.
    pub fn push(&mut self, piece: &str) -> Vec<RuleHit> {
        self.text.push_str(piece);
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let Some(scanner) = self.rules[i].scanner.as_mut() else { continue };
            let hits = scanner.push(piece);
            let error = scanner.take_error().map(|e| e.0);
            if !hits.is_empty() || error.is_some() {
                let j = &self.rules[i];
                let f = j.rule.findings(self.index, hits);
                if !f.is_empty() || error.is_some() {
                    out.push(j.rule.hit(&j.policy, f, error));
                }
            }
        }
        out
    }

    /// The text has ended: settles pending matches and runs the whole-text rules.
    pub fn finish(&mut self) -> Vec<RuleHit> {
        let mut results = Vec::new();
        let scan = ScanText::new(&self.text).with_context(Context {
            phase: Phase::Completion,
            role: Role::Assistant,
            model: &self.model,
            tenant: &self.tenant,
        });
        for j in &mut self.rules {
            results.push(match j.scanner.as_mut() {
                Some(s) => (s.finish(), s.take_error().map(|e| e.0)),
                None => match j.rule.detector.scan(&scan) {
                    Ok(h) => (h, None),
                    Err(e) => (Vec::new(), Some(e.0)),
                },
            });
        }
        let mut out = Vec::new();
        for (j, (hits, error)) in self.rules.iter().zip(results) {
            let f = j.rule.findings(self.index, hits);
            if !f.is_empty() || error.is_some() {
                out.push(j.rule.hit(&j.policy, f, error));
            }
        }
        out
    }

    /// The byte offset in the text before which nothing can be blocked or redacted any more.
    pub fn safe_until(&self) -> usize {
        let mut safe = self.text.len();
        for j in &self.rules {
            // A rule that can at most flag holds nothing back: what it finds is recorded, and
            // nothing it could find would change what the client gets.
            if j.rule.mode.apply(j.rule.action.max(j.rule.error_action())) < Action::Redact {
                continue;
            }
            match &j.scanner {
                Some(s) => safe = safe.min(s.safe_until()),
                // A whole-text rule that could block or redact holds everything until the end.
                None => return 0,
            }
        }
        safe
    }
}
