//! What the guard concluded: [`Action`], [`Finding`], [`RuleHit`] and [`Decision`].

use crate::exchange::Phase;
use serde::Serialize;
use std::ops::Range;

/// What to do with a request or a completion, weakest first: the strongest action of all the
/// rules that fired wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through untouched.
    #[default]
    Allow,
    /// Let it through and record the finding.
    Flag,
    /// Replace what matched with `[REDACTED]` and let the rest through.
    Redact,
    /// Refuse, in the provider's own error shape.
    Block,
}

impl Action {
    /// `allow`, `flag`, `redact` or `block`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Flag => "flag",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// Whether a policy (or rule) acts on what it finds or only records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Act.
    #[default]
    Enforce,
    /// Shadow: compute everything, record what would have been done, but only flag.
    Monitor,
}

impl Mode {
    /// The action actually applied for a rule whose configured action is `action`.
    pub fn apply(self, action: Action) -> Action {
        match self {
            Mode::Enforce => action,
            Mode::Monitor => action.min(Action::Flag),
        }
    }
}

/// What one detector saw, placed in the exchange.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// The detector kind (`phrases`, `patterns`, `invisible`, ...).
    pub detector: &'static str,
    /// What matched: the phrase as listed, the pattern, the class.
    pub label: String,
    /// 0..=1.
    pub score: f32,
    /// Index of the segment in the exchange (prompt), or of the text stream (completion).
    pub segment: usize,
    /// Byte span in that segment's text.
    pub span: Range<usize>,
    /// The action the detector asked for (a plugin's verdict), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

impl Finding {
    /// Whether a redaction of its rule replaces this finding's span: yes unless the detector
    /// asked for less (a plugin that flags one text and redacts spans of another).
    pub fn redacts(&self) -> bool {
        self.action.is_none_or(|a| a >= Action::Redact)
    }
}

/// One rule that fired (or failed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// The policy's name.
    pub policy: String,
    /// The rule's id.
    pub rule: String,
    /// The detector kind.
    pub detector: &'static str,
    /// The action the rule is configured with.
    pub action: Action,
    /// The action applied after the mode (monitor caps at flag).
    pub applied: Action,
    /// The rule's effective mode.
    pub mode: Mode,
    /// What the detector found.
    pub findings: Vec<Finding>,
    /// Set when the detector failed and `on_error` decided the action.
    pub error: Option<String>,
}

/// The outcome for one phase of one exchange.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Which phase.
    pub phase: Phase,
    /// The strongest applied action.
    pub action: Action,
    /// Every rule that fired, in evaluation order.
    pub hits: Vec<RuleHit>,
    /// Time spent evaluating, in microseconds.
    pub elapsed_us: u64,
    /// The digest of the policy set that decided.
    pub policy_digest: String,
    /// Microseconds each detector kind spent (`phrases`, `classifier`, `plugin`...), summed over
    /// its rules and texts; kinds that did not run are absent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timings: Vec<(&'static str, u64)>,
}

impl Decision {
    /// A decision with nothing found.
    pub fn allow(phase: Phase, policy_digest: impl Into<String>) -> Self {
        Self {
            phase,
            action: Action::Allow,
            hits: Vec::new(),
            elapsed_us: 0,
            policy_digest: policy_digest.into(),
            timings: Vec::new(),
        }
    }

    /// Adds a hit and raises the action if it is stronger.
    pub fn push(&mut self, hit: RuleHit) {
        self.action = self.action.max(hit.applied);
        self.hits.push(hit);
    }

    /// Adds `us` microseconds to the time `detector` spent.
    pub fn timed(&mut self, detector: &'static str, us: u64) {
        match self.timings.iter_mut().find(|(d, _)| *d == detector) {
            Some((_, t)) => *t += us,
            None => self.timings.push((detector, us)),
        }
    }

    /// The first hit that blocks, which a refusal names.
    pub fn blocking_hit(&self) -> Option<&RuleHit> {
        self.hits.iter().find(|h| h.applied == Action::Block)
    }

    /// The spans to redact in text `segment`, merged and sorted.
    pub fn redactions(&self, segment: usize) -> Vec<Range<usize>> {
        let spans = self
            .hits
            .iter()
            .filter(|h| h.applied == Action::Redact)
            .flat_map(|h| h.findings.iter())
            .filter(|f| f.segment == segment && f.redacts())
            .map(|f| f.span.clone());
        merge_spans(spans)
    }
}

/// Sorts and merges overlapping or touching spans.
pub fn merge_spans(spans: impl IntoIterator<Item = Range<usize>>) -> Vec<Range<usize>> {
    let mut v: Vec<Range<usize>> = spans.into_iter().filter(|r| !r.is_empty()).collect();
    v.sort_by_key(|r| r.start);
    let mut out: Vec<Range<usize>> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The text written in place of what is redacted.
pub const REDACTED: &str = "[REDACTED]";

/// Replaces each of the sorted, disjoint `spans` of `text` with [`REDACTED`].
pub fn redact(text: &str, spans: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in spans {
        out.push_str(&text[at..r.start]);
        out.push_str(REDACTED);
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_wins_and_monitor_caps() {
        assert!(Action::Block > Action::Redact && Action::Redact > Action::Flag && Action::Flag > Action::Allow);
        assert_eq!(Mode::Monitor.apply(Action::Block), Action::Flag);
        assert_eq!(Mode::Monitor.apply(Action::Allow), Action::Allow);
        assert_eq!(Mode::Enforce.apply(Action::Redact), Action::Redact);
    }

    #[test]
    fn redacts_merged_spans() {
        let spans = merge_spans([4..6, 0..2, 5..8]);
        assert_eq!(spans, [0..2, 4..8]);
        assert_eq!(redact("abcdefghij", &spans), "[REDACTED]cd[REDACTED]ij");
    }
}
