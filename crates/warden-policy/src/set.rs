//! A compiled policy set: selecting the policies that match a request and evaluating their
//! rules on whole texts.

use crate::model::{MatchSpec, OnErrorName, ProviderName, TestSpec};
use globset::{Candidate, Glob, GlobMatcher, GlobSet, GlobSetBuilder};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use warden_core::{Action, Context, Decision, Detector, Finding, Hit, Mode, Phase, Provider, Role, RuleHit, ScanText};

/// Who a request is for: what policies select on.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The API shape.
    pub provider: Provider,
    /// The request path.
    pub route: &'a str,
    /// The model name.
    pub model: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// Request headers (name, value), for policies that match on them.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Target<'a> {
    /// A target without headers.
    pub fn new(provider: Provider, route: &'a str, model: &'a str, tenant: &'a str) -> Self {
        Self { provider, route, model, tenant, headers: &[] }
    }
}

/// Which traffic a policy applies to.
#[derive(Debug, Clone)]
pub struct Matcher {
    providers: Option<Vec<Provider>>,
    models: Option<GlobSet>,
    tenants: Option<GlobSet>,
    routes: Option<Vec<String>>,
    headers: Vec<(String, GlobMatcher)>,
}

fn globs(field: &str, list: &Option<Vec<String>>) -> Result<Option<GlobSet>, String> {
    let Some(list) = list else { return Ok(None) };
    let mut b = GlobSetBuilder::new();
    for g in list {
        b.add(Glob::new(g).map_err(|e| format!("match.{field}: bad glob `{g}`: {e}"))?);
    }
    b.build().map(Some).map_err(|e| format!("match.{field}: {e}"))
}

impl Matcher {
    /// Compiles a `match:` block.
    pub fn new(spec: &MatchSpec) -> Result<Self, String> {
        Ok(Self {
            providers: spec.providers.as_ref().map(|v| {
                v.iter()
                    .map(|p| match p {
                        ProviderName::Openai => Provider::OpenAi,
                        ProviderName::Anthropic => Provider::Anthropic,
                        ProviderName::Azure => Provider::Azure,
                        ProviderName::Gemini => Provider::Gemini,
                    })
                    .collect()
            }),
            models: globs("models", &spec.models)?,
            tenants: globs("tenants", &spec.tenants)?,
            routes: spec.routes.clone(),
            headers: spec
                .headers
                .iter()
                .flatten()
                .map(|(name, g)| {
                    Glob::new(g)
                        .map(|g| (name.to_ascii_lowercase(), g.compile_matcher()))
                        .map_err(|e| format!("match.headers.{name}: bad glob `{g}`: {e}"))
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether the policy applies as far as provider, route, model and tenant tell (what a
    /// selection can remember), with the model and tenant prepared once for many policies.
    /// [`Matcher::headers_match`] completes it per request.
    fn matches_static(&self, t: &Target<'_>, model: &Candidate<'_>, tenant: &Candidate<'_>) -> bool {
        self.providers.as_ref().is_none_or(|p| p.contains(&t.provider))
            && self.models.as_ref().is_none_or(|g| g.is_match_candidate(model))
            && self.tenants.as_ref().is_none_or(|g| g.is_match_candidate(tenant))
            && self.routes.as_ref().is_none_or(|r| r.iter().any(|r| r == t.route))
    }

    /// Whether the request's headers satisfy the `match.headers` globs.
    /// Whether the policy matches on request headers.
    pub fn has_header_matchers(&self) -> bool {
        !self.headers.is_empty()
    }

    fn headers_match(&self, t: &Target<'_>) -> bool {
        self.headers
            .iter()
            .all(|(name, g)| t.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case(name) && g.is_match(v)))
    }
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique within its policy.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// The phases it inspects.
    pub phases: Vec<Phase>,
    /// The roles it inspects.
    pub roles: Vec<Role>,
    /// What it does on a finding.
    pub action: Action,
    /// What a detector failure means.
    pub on_error: OnErrorName,
    /// Its effective mode (its own, else its policy's).
    pub mode: Mode,
    /// Findings scoring below it are ignored.
    pub threshold: f32,
    /// The detector.
    pub detector: Arc<dyn Detector>,
}

impl Rule {
    /// The action applied when the detector fails.
    pub fn error_action(&self) -> Action {
        self.mode.apply(match self.on_error {
            OnErrorName::Block => Action::Block,
            OnErrorName::Flag => Action::Flag,
            OnErrorName::Allow => Action::Allow,
        })
    }

    /// The detector's hits on text `segment` as findings, those scoring below the threshold
    /// dropped.
    pub fn findings(&self, segment: usize, hits: Vec<Hit>) -> Vec<Finding> {
        let detector = self.detector.kind();
        hits.into_iter()
            .filter(|h| h.score >= self.threshold)
            .map(|h| Finding { detector, label: h.label, score: h.score, segment, span: h.span, action: h.action })
            .collect()
    }

    /// A hit for this rule with the given findings or error. When the detector asked for an
    /// action (a plugin's verdict), the strongest it asked for applies, capped by the rule's.
    pub fn hit(&self, policy: &str, findings: Vec<Finding>, error: Option<String>) -> RuleHit {
        let asked = findings.iter().map(|f| f.action.unwrap_or(self.action)).max().unwrap_or(self.action);
        let found = if findings.is_empty() { Action::Allow } else { self.mode.apply(asked.min(self.action)) };
        // A failure on one text never weakens what was found on the others.
        let applied = if error.is_some() { found.max(self.error_action()) } else { found };
        RuleHit {
            policy: policy.to_string(),
            rule: self.id.clone(),
            detector: self.detector.kind(),
            action: self.action,
            applied,
            mode: self.mode,
            findings,
            error,
        }
    }
}

/// A compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its mode.
    pub mode: Mode,
    /// Which traffic it applies to.
    pub matcher: Matcher,
    /// Its rules, in file order.
    pub rules: Vec<Rule>,
    /// Its unit tests (inline and from a sibling `*.test.yaml`).
    pub tests: Vec<TestSpec>,
    /// The file it came from, relative to the policy directory.
    pub source: PathBuf,
}

/// How the texts given to [`PolicySet::evaluate_split`] divide: whole documents first (every
/// rule judges them), then fragments from `fragments_from` (swept fields, identifiers, keys:
/// structural rules skip them), then from `structure_from` texts for structural rules only (the
/// raw JSON of an answer whose decoded strings are among the documents).
#[derive(Debug, Clone, Copy)]
pub struct Split {
    /// The first fragment.
    pub fragments_from: usize,
    /// The first text for structural rules only.
    pub structure_from: usize,
    /// The text that holds the body's object keys, one per line, if any: identifiers, not prose,
    /// so only inline detectors (phrases, patterns, invisible characters) judge it. A model of
    /// prose reads a list of keys as noise: `model messages role content` scores 0.76 as a
    /// jailbreak with the default classifier, and would flag every request.
    pub keys_at: Option<usize>,
}

/// How many selections a policy set remembers before it forgets them all. Model and tenant names
/// come from clients, so the cache is bounded.
const SELECTION_CACHE_CAP: usize = 4096;

/// A selection: the (policy, rule) indices that apply, cheap detectors first.
type Selection = Arc<[(u32, u32)]>;

/// Remembered selections, by a keyed 128-bit hash of phase, provider, route, model and tenant
/// (never the strings themselves: they come from clients). Header matchers are checked per
/// request.
#[derive(Debug, Default)]
struct SelectionCache {
    map: RwLock<HashMap<u128, Selection>>,
    hasher: Hash128,
}

/// A keyed 128-bit hash (two independent `RandomState`s): nobody can aim for a collision, and
/// none happens by chance.
#[derive(Debug, Default)]
struct Hash128(std::hash::RandomState, std::hash::RandomState);

impl Hash128 {
    fn hash(&self, v: impl std::hash::Hash + Copy) -> u128 {
        use std::hash::BuildHasher;
        (u128::from(self.0.hash_one(v)) << 64) | u128::from(self.1.hash_one(v))
    }
}

/// Every policy of a directory, compiled, with the digest of the files behind it.
#[derive(Debug)]
pub struct PolicySet {
    policies: Vec<Policy>,
    digest: String,
    selections: SelectionCache,
    clean: CleanCache,
}

/// Short fragments (swept fields, identifiers, object keys) that every rule judged without a
/// finding, for one selection of rules: `chat.completion`, `assistant` or a body's keys repeat in
/// every answer and need not be judged again. Keyed by a keyed hash (`RandomState`, so nobody
/// can aim for a collision); bounded, and emptied when full. A set is rebuilt on reload, and
/// its cache with it.
#[derive(Debug, Default)]
struct CleanCache {
    seen: RwLock<std::collections::HashSet<u128>>,
    hasher: Hash128,
}

/// Fragments longer than this are not remembered as clean.
const CLEAN_MAX_LEN: usize = 256;
/// How many clean fragments a set remembers before it starts over.
const CLEAN_MAX_ENTRIES: usize = 65_536;

impl CleanCache {
    fn key(&self, phase: Phase, target: &Target<'_>, role: Role, text: &str) -> u128 {
        self.hasher.hash((
            phase.as_str(),
            target.provider.as_str(),
            target.route,
            target.model,
            target.tenant,
            role.as_str(),
            text,
        ))
    }
}

impl Clone for PolicySet {
    fn clone(&self) -> Self {
        Self::new(self.policies.clone(), self.digest.clone())
    }
}

impl PolicySet {
    /// A set from compiled policies.
    pub fn new(policies: Vec<Policy>, digest: String) -> Self {
        Self { policies, digest, selections: SelectionCache::default(), clean: CleanCache::default() }
    }

    /// The policies, in load order.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The sha256 of the policy files.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The (policy, rule) indices that apply, ignoring header matchers; remembered.
    fn selection(&self, phase: Phase, target: &Target<'_>) -> Selection {
        let key = self.selections.hasher.hash((
            phase.as_str(),
            target.provider.as_str(),
            target.route,
            target.model,
            target.tenant,
        ));
        if let Some(hit) = self.selections.map.read().ok().and_then(|m| m.get(&key).cloned()) {
            return hit;
        }
        let (model, tenant) = (Candidate::new(target.model), Candidate::new(target.tenant));
        let mut v: Vec<(u32, u32)> = Vec::new();
        for (pi, p) in self.policies.iter().enumerate() {
            if !p.matcher.matches_static(target, &model, &tenant) {
                continue;
            }
            for (ri, r) in p.rules.iter().enumerate() {
                if r.phases.contains(&phase) {
                    v.push((pi as u32, ri as u32));
                }
            }
        }
        v.sort_by_key(|&(pi, ri)| self.policies[pi as usize].rules[ri as usize].detector.cost());
        let v: Selection = v.into();
        if let Ok(mut m) = self.selections.map.write() {
            if m.len() >= SELECTION_CACHE_CAP {
                m.clear();
            }
            m.insert(key, Arc::clone(&v));
        }
        v
    }

    /// Whether a costly detector ([`warden_core::Cost::Pooled`]: classifier, plugin) applies to
    /// `phase` of a request to `target`.
    pub fn has_costly(&self, phase: Phase, target: &Target<'_>) -> bool {
        self.select(phase, target).iter().any(|(_, r)| r.detector.cost() > warden_core::Cost::Inline)
    }

    /// The rules that apply to `phase` of a request to `target`, cheap detectors first.
    pub fn select<'s>(&'s self, phase: Phase, target: &Target<'_>) -> Vec<(&'s Policy, &'s Rule)> {
        self.selection(phase, target)
            .iter()
            .map(|&(pi, ri)| (&self.policies[pi as usize], ri))
            .filter(|(p, _)| p.matcher.headers_match(target))
            .map(|(p, ri)| (p, &p.rules[ri as usize]))
            .collect()
    }

    /// Evaluates the rules for `phase` on whole texts. A finding's `segment` is the index of its
    /// text in `texts`. Every inline rule runs, so every finding is kept; once a rule blocks,
    /// costly ([`warden_core::Cost::Pooled`]) detectors are skipped, since the outcome cannot
    /// change.
    pub fn evaluate(&self, phase: Phase, target: &Target<'_>, texts: &[(Role, &str)]) -> Decision {
        self.evaluate_within(phase, target, texts, None)
    }

    /// Like [`PolicySet::evaluate`], but once `deadline` has passed, costly detectors are not
    /// started any more: each rule left gets an error, which its `on_error` decides. A request
    /// with many texts thus cannot hold the detector pool for long.
    pub fn evaluate_within(
        &self,
        phase: Phase,
        target: &Target<'_>,
        texts: &[(Role, &str)],
        deadline: Option<Instant>,
    ) -> Decision {
        self.evaluate_parts(phase, target, texts, texts.len(), deadline)
    }

    /// Like [`PolicySet::evaluate_within`], where the texts from index `fragments_from` on are
    /// fragments of a body (swept fields, identifiers, keys) rather than whole documents: rules
    /// whose detector judges a document's structure ([`is_structural`]: JSON Schema) skip them.
    pub fn evaluate_parts(
        &self,
        phase: Phase,
        target: &Target<'_>,
        texts: &[(Role, &str)],
        fragments_from: usize,
        deadline: Option<Instant>,
    ) -> Decision {
        let split = Split { fragments_from, structure_from: texts.len(), keys_at: None };
        self.evaluate_split(phase, target, texts, split, deadline)
    }

    /// Like [`PolicySet::evaluate_parts`], with texts for structural rules only at the end (see
    /// [`Split`]).
    pub fn evaluate_split(
        &self,
        phase: Phase,
        target: &Target<'_>,
        texts: &[(Role, &str)],
        split: Split,
        deadline: Option<Instant>,
    ) -> Decision {
        let Split { fragments_from, structure_from, keys_at } = split;
        let started = Instant::now();
        let mut decision = Decision::allow(phase, &self.digest);
        // Fragments judged clean before under the same rules are not judged again. A policy that
        // matches on headers makes the rules depend on more than the key says: no cache then.
        let cacheable = !self.policies.iter().any(|p| p.matcher.has_header_matchers());
        let keys: Vec<Option<u128>> = texts
            .iter()
            .enumerate()
            .map(|(i, &(role, t))| {
                (cacheable && (fragments_from..structure_from).contains(&i) && t.len() <= CLEAN_MAX_LEN)
                    .then(|| self.clean.key(phase, target, role, t))
            })
            .collect();
        let known_clean: Vec<bool> = {
            let seen = self.clean.seen.read().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| k.is_some_and(|k| seen.contains(&k))).collect()
        };
        let mut complete = true;
        let scans: Vec<ScanText<'_>> = texts
            .iter()
            .map(|&(role, t)| {
                ScanText::new(t).with_context(Context { phase, role, model: target.model, tenant: target.tenant })
            })
            .collect();
        for (policy, rule) in self.select(phase, target) {
            if decision.action == Action::Block && rule.detector.cost() > warden_core::Cost::Inline {
                complete = false;
                break;
            }
            let mut findings = Vec::new();
            let mut error = None;
            let structural = is_structural(rule);
            let rule_started = Instant::now();
            for (i, (role, _)) in texts.iter().enumerate() {
                let judged = match structural {
                    true => i < fragments_from || i >= structure_from,
                    false => i < structure_from,
                };
                if !rule.roles.contains(role) || !judged || known_clean[i] {
                    continue;
                }
                if keys_at == Some(i) && rule.detector.cost() > warden_core::Cost::Inline {
                    continue;
                }
                if rule.detector.cost() > warden_core::Cost::Inline && deadline.is_some_and(|d| Instant::now() >= d) {
                    error.get_or_insert_with(|| {
                        "the request's time for costly detectors (limits.detector_budget_ms) ran out".to_string()
                    });
                    break;
                }
                match rule.detector.scan(&scans[i]) {
                    Ok(hits) => findings.extend(rule.findings(i, hits)),
                    // The first failure is kept; the other texts are still judged.
                    Err(e) => {
                        error.get_or_insert(e.0);
                    }
                }
            }
            decision.timed(rule.detector.kind(), rule_started.elapsed().as_micros() as u64);
            if error.is_some() || !findings.is_empty() {
                decision.push(rule.hit(&policy.name, findings, error));
            }
        }
        if complete && decision.hits.iter().all(|h| h.error.is_none()) {
            let found: std::collections::HashSet<usize> =
                decision.hits.iter().flat_map(|h| h.findings.iter().map(|f| f.segment)).collect();
            let fresh: Vec<u128> = keys
                .iter()
                .enumerate()
                .filter(|(i, k)| k.is_some() && !known_clean[*i] && !found.contains(i))
                .filter_map(|(_, k)| *k)
                .collect();
            if !fresh.is_empty() {
                let mut seen = self.clean.seen.write().unwrap_or_else(|e| e.into_inner());
                if seen.len() + fresh.len() > CLEAN_MAX_ENTRIES {
                    seen.clear();
                }
                seen.extend(fresh);
            }
        }
        decision.elapsed_us = started.elapsed().as_micros() as u64;
        decision
    }
}

/// Whether a rule judges the structure of a whole document (JSON Schema), so that it means
/// nothing on a fragment of a body.
pub fn is_structural(rule: &Rule) -> bool {
    rule.detector.kind() == "schema"
}
