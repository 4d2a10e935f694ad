//! Policy unit tests: `warden test`.
//!
//! Each policy may carry `tests:` (or a sibling `x.test.yaml`): an input and the decision
//! expected from that policy alone, with its real detectors. Like `opa test`, every test passes or
//! fails with a readable difference, and the exit code tells CI.

use crate::model::{ActionName, ProviderName, TestSpec};
use crate::set::{Policy, PolicySet, Target};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden_core::{Action, Phase, Provider, Role};

/// The result of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// The policy tested.
    pub policy: String,
    /// Its file.
    pub file: PathBuf,
    /// The test's name.
    pub name: String,
    /// Whether the decision matched.
    pub passed: bool,
    /// `expected: ...\n     got: ...` when it did not.
    pub diff: Option<String>,
    /// Time spent evaluating.
    pub elapsed: Duration,
}

fn action_of(a: ActionName) -> Action {
    a.into()
}

fn describe(action: Action, rules: &[String]) -> String {
    format!("{} [{}]", action.as_str(), rules.join(", "))
}

/// Runs one test against its policy alone.
pub fn run_one(policy: &Policy, digest: &str, t: &TestSpec) -> TestOutcome {
    let single = PolicySet::new(vec![policy.clone()], digest.to_string());
    let phase: Phase = t.phase.map_or(Phase::Prompt, Into::into);
    let provider = match t.provider {
        Some(ProviderName::Anthropic) => Provider::Anthropic,
        Some(ProviderName::Azure) => Provider::Azure,
        Some(ProviderName::Gemini) => Provider::Gemini,
        Some(ProviderName::Openai) | None => Provider::OpenAi,
    };
    let route = provider.chat_route();
    let default_role = if phase == Phase::Prompt { Role::User } else { Role::Assistant };
    let texts: Vec<(Role, &str)> = match &t.text {
        Some(text) => vec![(default_role, text.as_str())],
        None => t.messages.iter().map(|m| (m.role.into(), m.content.as_str())).collect(),
    };
    let headers: Vec<(&str, &str)> = t.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let target =
        Target { provider, route, model: &t.model, tenant: t.tenant.as_deref().unwrap_or("test"), headers: &headers };
    let started = Instant::now();
    let d = single.evaluate(phase, &target, &texts);
    let elapsed = started.elapsed();
    let mut fired: Vec<String> = d.hits.iter().map(|h| h.rule.clone()).collect();
    fired.sort();
    fired.dedup();
    let want_action = action_of(t.expect.action);
    let mut want_rules = t.expect.rules.clone();
    if let Some(r) = want_rules.as_mut() {
        r.sort();
        r.dedup();
    }
    let passed = d.action == want_action && want_rules.as_ref().is_none_or(|r| *r == fired);
    let diff = (!passed).then(|| {
        let want = match &want_rules {
            Some(r) => describe(want_action, r),
            None => want_action.as_str().to_string(),
        };
        let got = if want_rules.is_some() {
            describe(d.action, &fired)
        } else {
            format!("{} (rules: {})", d.action.as_str(), fired.join(", "))
        };
        format!("expected: {want}\n     got: {got}")
    });
    TestOutcome {
        policy: policy.name.clone(),
        file: policy.source.clone(),
        name: t.name.clone(),
        passed,
        diff,
        elapsed,
    }
}

/// Runs every test of every policy whose `policy/test name` contains `filter` (all if `None`).
pub fn run_all(set: &PolicySet, filter: Option<&str>) -> Vec<TestOutcome> {
    set.policies()
        .iter()
        .flat_map(|p| p.tests.iter().map(move |t| (p, t)))
        .filter(|(p, t)| filter.is_none_or(|f| format!("{}/{}", p.name, t.name).contains(f)))
        .map(|(p, t)| run_one(p, set.digest(), t))
        .collect()
}
