//! Judging a text that arrives in pieces: the policy side of the stream guard.
//!
//! The proxy's stream guard owns the SSE events and decides what to release; for each text of a
//! streamed completion (one per choice, content block or tool call) it keeps a [`TextJudge`] and
//! asks it two things: what fired on the latest piece ([`TextJudge::push`]), and up to where the
//! text is safe to release ([`TextJudge::safe_until`]).
//!
//! Rules whose detector has a streaming form (phrases, patterns, invisible, the classifier and
//! steering, which judge finished sentences) are judged piece by piece and hold back only what
//! could still become a finding. Rules whose detector can only judge a whole text (schema, plugins) are
//! judged at the end; if they could block or redact (through their action or their `on_error`),
//! the text is held until then, because releasing it earlier would leak what they are meant to
//! stop. A rule that can at most flag holds nothing back.

use crate::set::{PolicySet, Target};
use warden_core::normalize::Normalizer;
use warden_core::{Action, Context, NormWindow, Phase, Role, RuleHit, ScanText, StreamScanner};

struct Judged {
    policy: String,
    rule: crate::set::Rule,
    scanner: Option<Box<dyn StreamScanner>>,
    /// The scanner reads the text's shared normalised window.
    normalized: bool,
}

/// Judges one streamed text against the completion rules that apply to the assistant role.
///
/// The text is normalised once, however many rules read it normalised (every phrase list), and
/// only the window some rule still needs is kept.
pub struct TextJudge {
    index: usize,
    rules: Vec<Judged>,
    /// The text from byte `text_base` on: all of it if a whole-text rule will judge it at the
    /// end, else what the caller has not let go of ([`TextJudge::forget_text_before`]).
    text: String,
    text_base: usize,
    /// A rule judges the whole text at the end: nothing of it may be forgotten.
    keep_all: bool,
    /// The shared normaliser (if any rule reads the normalised text), and how many normalised
    /// bytes it forgot.
    norm: Option<Normalizer>,
    norm_base: usize,
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
            .map(|(p, r)| {
                let scanner = r.detector.streaming();
                let normalized = scanner.as_ref().is_some_and(|s| s.reads_normalized());
                Judged { policy: p.name.clone(), rule: r.clone(), scanner, normalized }
            })
            .collect::<Vec<_>>();
        let norm = rules.iter().any(|j| j.normalized).then(Normalizer::new);
        let keep_all = rules.iter().any(|j| j.scanner.is_none());
        TextJudge {
            index,
            rules,
            text: String::new(),
            text_base: 0,
            keep_all,
            norm,
            norm_base: 0,
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

    /// The text received so far, from byte [`TextJudge::text_base`] on.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where [`TextJudge::text`] starts in the whole text.
    pub fn text_base(&self) -> usize {
        self.text_base
    }

    /// Whether a whole-text rule will judge the text at the end, so none of it is forgotten.
    pub fn keeps_all(&self) -> bool {
        self.keep_all
    }

    /// The length of the whole text received so far.
    pub fn text_len(&self) -> usize {
        self.text_base + self.text.len()
    }

    /// The caller needs nothing of the text before byte `at` any more (it was released): the
    /// judge forgets it, unless a whole-text rule will judge it at the end. Amortised: only once
    /// the dead part is at least 4 KiB and half of what is kept.
    pub fn forget_text_before(&mut self, at: usize) {
        if self.keep_all {
            return;
        }
        let mut rel = at.saturating_sub(self.text_base).min(self.text.len());
        while rel > 0 && !self.text.is_char_boundary(rel) {
            rel -= 1;
        }
        if rel >= 4096 && rel * 2 >= self.text.len() {
            self.text.drain(..rel);
            self.text_base += rel;
        }
    }

    /// Feeds the next piece of text; returns the rules that fired on it.
    pub fn push(&mut self, piece: &str) -> Vec<RuleHit> {
        if let Some(n) = self.norm.as_mut() {
            n.push(piece, self.text_base + self.text.len());
        }
        self.text.push_str(piece);
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let normalized = self.rules[i].normalized;
            let Some(scanner) = self.rules[i].scanner.as_mut() else { continue };
            let hits = match (&self.norm, normalized) {
                (Some(n), true) => {
                    scanner.push_normalized(piece, &NormWindow { normalized: n.normalized(), base: self.norm_base })
                }
                _ => scanner.push(piece),
            };
            let error = scanner.take_error().map(|e| e.0);
            if !hits.is_empty() || error.is_some() {
                let j = &self.rules[i];
                let f = j.rule.findings(self.index, hits);
                if !f.is_empty() || error.is_some() {
                    out.push(j.rule.hit(&j.policy, f, error));
                }
            }
        }
        self.forget();
        out
    }

    /// Forgets the normalised text no rule needs any more (amortised: once the dead part is at
    /// least 4 KiB and half the window).
    fn forget(&mut self) {
        let Some(n) = self.norm.as_mut() else { return };
        let needed = self
            .rules
            .iter()
            .filter(|j| j.normalized)
            .filter_map(|j| j.scanner.as_ref())
            .map(|s| s.normalized_needed_from())
            .min()
            .unwrap_or(usize::MAX);
        let len = n.normalized().text().len();
        let dead = needed.saturating_sub(self.norm_base).min(len);
        if dead >= 4096 && dead * 2 >= len {
            self.norm_base += n.forget_before(dead);
        }
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
                Some(s) => {
                    let hits = match (&self.norm, j.normalized) {
                        (Some(n), true) => {
                            s.finish_normalized(&NormWindow { normalized: n.normalized(), base: self.norm_base })
                        }
                        _ => s.finish(),
                    };
                    (hits, s.take_error().map(|e| e.0))
                }
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
        let mut safe = self.text_len();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two phrase rules on one streamed text share one normaliser, which keeps a window, and
    /// both still fire where the whole-text evaluation does.
    #[test]
    fn phrase_rules_share_one_bounded_normalised_window() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("p.yaml"),
            r#"
name: t
rules:
  - id: one
    phases: [completion]
    action: flag
    phrases: { list: ["ｂｌｕｅ heron"] }
  - id: two
    phases: [completion]
    action: flag
    phrases: { list: ["silver kettle"] }
"#,
        )
        .unwrap();
        let set = PolicySet::load(dir.path()).unwrap();
        let t = Target { provider: warden_core::Provider::OpenAi, route: "/r", model: "m", tenant: "t", headers: &[] };
        let mut j = set.judge_stream(&t, 0);
        assert!(j.rules.iter().all(|r| r.normalized), "both phrase rules read the shared window");
        let unit = "some filler text BLUE\u{200B} HERON more filler, a Silver  Kettle. ";
        let mut fired = std::collections::BTreeMap::<String, Vec<std::ops::Range<usize>>>::new();
        let mut biggest = 0;
        for _ in 0..400 {
            for piece in unit.split_inclusive(' ') {
                for h in j.push(piece) {
                    fired.entry(h.rule.clone()).or_default().extend(h.findings.iter().map(|f| f.span.clone()));
                }
                biggest = biggest.max(j.norm.as_ref().unwrap().normalized().text().len());
            }
        }
        for h in j.finish() {
            fired.entry(h.rule.clone()).or_default().extend(h.findings.iter().map(|f| f.span.clone()));
        }
        let whole = set.evaluate(Phase::Completion, &t, &[(Role::Assistant, &unit.repeat(400))]);
        for h in &whole.hits {
            let spans: Vec<_> = h.findings.iter().map(|f| f.span.clone()).collect();
            assert_eq!(fired.get(&h.rule), Some(&spans), "rule {}", h.rule);
        }
        assert_eq!(whole.hits.len(), 2);
        assert!(biggest < 9000, "the shared window grew to {biggest} bytes");
    }
}
