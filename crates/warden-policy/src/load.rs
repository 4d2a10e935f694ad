//! Loading a policy directory: read every `*.yaml` / `*.yml` file in the tree (except tests and
//! the `schema/` folder), parse, resolve the files they reference, compile the detectors, and
//! report every problem at once, each naming its file.

use crate::model::{PolicyFile, RuleSpec};
use crate::set::{Matcher, Policy, PolicySet, Rule};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden_core::invisible::InvisibleDetector;
use warden_core::patterns::{PatternDetector, PatternSet, DEFAULT_MAX_LEN};
use warden_core::phrases::{PhraseDetector, PhraseSet};
use warden_core::{Detector, Phase, Role};

/// One problem in a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file at fault.
    pub file: PathBuf,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.message)
    }
}

/// Every problem found while loading a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in the policy set:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

fn is_policy_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".test.yaml")
        && !name.ends_with(".test.yml")
        && !name.starts_with('.')
}

/// Every file under `dir`, sorted, skipping hidden entries.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if e.file_type()?.is_dir() {
            walk(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// The sha256 over every file of the directory (relative path and content), which names the exact
/// policy files behind a decision.
pub fn digest_dir(dir: &Path) -> std::io::Result<String> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    let mut h = Sha256::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        let data = std::fs::read(&f)?;
        h.update((rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(&data);
    }
    Ok(hex::encode(h.finalize()))
}

/// Reads a phrase file: one phrase a line; blank lines and lines starting with `#` are skipped;
/// surrounding whitespace is trimmed.
pub fn read_phrase_file(path: &Path) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect())
}

impl PolicySet {
    /// Loads and compiles every policy under `dir`. Fails with every problem found.
    pub fn load(dir: &Path) -> Result<PolicySet, LoadErrors> {
        let fail = |m: String| LoadErrors(vec![LoadError { file: dir.to_path_buf(), message: m }]);
        let mut files = Vec::new();
        walk(dir, &mut files).map_err(|e| fail(format!("cannot read the policy directory: {e}; check --policies")))?;
        let digest = digest_dir(dir).map_err(|e| fail(format!("cannot read the policy directory: {e}")))?;
        let schema_dir = dir.join("schema");
        let mut errors = Vec::new();
        let mut policies = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for file in files.iter().filter(|f| is_policy_file(f) && !f.starts_with(&schema_dir)) {
            let shown = file.strip_prefix(dir).unwrap_or(file).to_path_buf();
            let mut err = |message: String| errors.push(LoadError { file: shown.clone(), message });
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    err(format!("cannot read: {e}"));
                    continue;
                }
            };
            let spec: PolicyFile = match serde_yaml::from_str(&text) {
                Ok(s) => s,
                Err(e) => {
                    err(e.to_string());
                    continue;
                }
            };
            if !names.insert(spec.name.clone()) {
                err(format!("policy name `{}` is used by another file; names must be unique", spec.name));
            }
            let base = file.parent().unwrap_or(dir);
            match compile_policy(spec, base, shown.clone()) {
                Ok(p) => policies.push(p),
                Err(msgs) => msgs.into_iter().for_each(&mut err),
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        Ok(PolicySet::new(policies, digest))
    }
}

fn compile_policy(spec: PolicyFile, base: &Path, source: PathBuf) -> Result<Policy, Vec<String>> {
    let mut errs = Vec::new();
    let matcher = Matcher::new(&spec.matches).map_err(|e| vec![e])?;
    let mut ids = HashSet::new();
    let mut rules = Vec::new();
    if spec.rules.is_empty() {
        errs.push("`rules` is empty: a policy needs at least one rule".to_string());
    }
    for r in spec.rules {
        if !ids.insert(r.id.clone()) {
            errs.push(format!("rule `{}`: the id is used twice in this policy", r.id));
            continue;
        }
        match compile_rule(&r, base) {
            Ok(detector) => rules.push(Rule {
                id: r.id.clone(),
                description: r.description.clone(),
                phases: r
                    .phases
                    .as_ref()
                    .map_or_else(|| vec![Phase::Prompt, Phase::Completion], |v| v.iter().map(|&p| p.into()).collect()),
                roles: r.roles.as_ref().map_or_else(
                    || vec![Role::System, Role::User, Role::Assistant, Role::Tool],
                    |v| v.iter().map(|&p| p.into()).collect(),
                ),
                action: r.action.into(),
                on_error: r.on_error,
                mode: r.mode.unwrap_or(spec.mode).into(),
                detector,
            }),
            Err(e) => errs.push(format!("rule `{}`: {e}", r.id)),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Policy { name: spec.name, description: spec.description, mode: spec.mode.into(), matcher, rules, source })
}

fn compile_rule(r: &RuleSpec, base: &Path) -> Result<Arc<dyn Detector>, String> {
    let count = [r.phrases.is_some(), r.patterns.is_some(), r.invisible.is_some()].iter().filter(|b| **b).count();
    if count != 1 {
        return Err(format!("a rule needs exactly one detector (phrases, patterns or invisible), found {count}"));
    }
    if let Some(p) = &r.phrases {
        let mut phrases = p.list.clone();
        for f in &p.files {
            let path = base.join(f);
            let more =
                read_phrase_file(&path).map_err(|e| format!("phrases: cannot read `{}`: {e}", path.display()))?;
            phrases.extend(more);
        }
        let set = PhraseSet::new(phrases, p.word_boundary).map_err(|e| format!("phrases: {e}"))?;
        return Ok(Arc::new(PhraseDetector::new(set)));
    }
    if let Some(p) = &r.patterns {
        if p.list.is_empty() {
            return Err("patterns: the list is empty".into());
        }
        let set = PatternSet::new(&p.list).map_err(|e| format!("patterns: {e}"))?;
        return Ok(Arc::new(PatternDetector::new(set, p.max_len.unwrap_or(DEFAULT_MAX_LEN))));
    }
    let classes = r.invisible.as_ref().and_then(|i| i.classes.as_deref());
    Ok(Arc::new(InvisibleDetector::new(classes).map_err(|e| format!("invisible: {e}"))?))
}
