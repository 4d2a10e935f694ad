//! Loading a policy directory: read every `*.yaml` / `*.yml` file in the tree (except the
//! `schema/` folder), check it against the JSON Schema, parse, resolve and verify the files it
//! references, compile the detectors, attach the tests, and report every problem at once, each
//! naming its file, line and field.

use crate::model::{
    AssetSpec, ClassifierSpec, LabelsSpec, PluginSpec, PolicyFile, RuleSpec, SteeringSpec, TestFile, TestSpec,
};
use crate::schema::{self, FileKind};
use crate::set::{Matcher, Policy, PolicySet, Rule};
use crate::sign::{self, VerifyingKey};
use crate::yamlpos::Positions;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use warden_classifier::{ClassifierDetector, Model};
use warden_core::invisible::InvisibleDetector;
use warden_core::patterns::{PatternDetector, PatternSet, DEFAULT_MAX_LEN};
use warden_core::phrases::{PhraseDetector, PhraseSet};
use warden_core::steering::{SteeringConfig, SteeringDetector};
use warden_core::{Detector, Phase, Role};
use warden_plugins::{Host, Limits, PluginDetector};

/// One problem in a policy set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file at fault, relative to the policy directory.
    pub file: PathBuf,
    /// Line and column (1-based), when known.
    pub pos: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some((l, c)) => write!(f, "{}:{l}:{c}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
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

/// How to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// If set, the directory must carry a valid signature by this key (see [`crate::sign`]).
    pub verify_key: Option<VerifyingKey>,
}

fn file_name(p: &Path) -> &str {
    p.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

fn is_yaml(p: &Path) -> bool {
    let n = file_name(p);
    n.ends_with(".yaml") || n.ends_with(".yml")
}

fn is_test_file(p: &Path) -> bool {
    let n = file_name(p);
    n.ends_with(".test.yaml") || n.ends_with(".test.yml")
}

/// The policy file a test file belongs to: `x.test.yaml` -> `x.yaml` (or `x.yml`).
fn policy_of_test(p: &Path) -> [PathBuf; 2] {
    let n = file_name(p);
    let stem = n.trim_end_matches(".yaml").trim_end_matches(".yml").trim_end_matches(".test");
    [p.with_file_name(format!("{stem}.yaml")), p.with_file_name(format!("{stem}.yml"))]
}

/// Every file under `dir`, sorted, skipping hidden entries.
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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

/// The policy set's digest: a sha256 over every file of the directory (relative path and
/// content, from its manifest), which names the exact policy files behind a decision. Hidden files
/// (the signature) are not part of it.
fn digest_of(manifest: &std::collections::BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (rel, sha) in manifest {
        h.update((rel.len() as u64).to_le_bytes());
        h.update(rel.as_bytes());
        h.update(sha.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Reads a phrase file: one phrase a line; blank lines and lines starting with `#` are skipped;
/// surrounding whitespace is trimmed.
pub fn parse_phrase_file(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect()
}

/// Reads an asset and checks its pin.
fn read_asset(base: &Path, a: &AssetSpec, field: &str) -> Result<Vec<u8>, String> {
    let path = base.join(a.path());
    let data = std::fs::read(&path).map_err(|e| format!("{field}: cannot read `{}`: {e}", a.path()))?;
    if let Some(want) = a.sha256() {
        let got = hex::encode(Sha256::digest(&data));
        if got != want {
            return Err(format!(
                "{field}: `{}` has sha256 {got}, but the policy pins {want}; the file changed: review it, then update the pin",
                a.path()
            ));
        }
    }
    Ok(data)
}

struct Parsed<T> {
    spec: T,
    positions: Positions,
}

/// Parses a YAML file and checks it against the schema.
fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    kind: FileKind,
    err: &mut dyn FnMut(Option<(usize, usize)>, String),
) -> Option<Parsed<T>> {
    let value: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = e.location().map(|l| (l.line(), l.column()));
            err(pos, format!("not valid YAML: {e}"));
            return None;
        }
    };
    let schema_errors = schema::check(kind, text, &value);
    if !schema_errors.is_empty() {
        for e in schema_errors {
            err((e.line > 0).then_some((e.line, e.col)), e.message);
        }
        return None;
    }
    match serde_json::from_value::<T>(value) {
        Ok(spec) => Some(Parsed { spec, positions: Positions::of(text) }),
        Err(e) => {
            err(None, e.to_string());
            None
        }
    }
}

impl PolicySet {
    /// Loads and compiles every policy under `dir`. Fails with every problem found.
    pub fn load(dir: &Path) -> Result<PolicySet, LoadErrors> {
        Self::load_with(dir, &LoadOptions::default())
    }

    /// Like [`PolicySet::load`], with options (a signature to verify).
    pub fn load_with(dir: &Path, opts: &LoadOptions) -> Result<PolicySet, LoadErrors> {
        let fail = |m: String| LoadErrors(vec![LoadError { file: dir.to_path_buf(), pos: None, message: m }]);
        // One manifest (every file's sha256) serves the signature check and the digest.
        let manifest = sign::manifest(dir)
            .map_err(|e| fail(format!("cannot read the policy directory: {e}; check --policies")))?;
        if let Some(key) = &opts.verify_key {
            sign::verify_manifest(dir, key, &manifest).map_err(fail)?;
        }
        let digest = digest_of(&manifest);
        let mut files = Vec::new();
        walk(dir, &mut files).map_err(|e| fail(format!("cannot read the policy directory: {e}; check --policies")))?;
        let schema_dir = dir.join("schema");
        let files: Vec<PathBuf> = files.into_iter().filter(|f| is_yaml(f) && !f.starts_with(&schema_dir)).collect();

        let mut errors = Vec::new();
        let shown = |f: &Path| f.strip_prefix(dir).unwrap_or(f).to_path_buf();

        // Sibling test files first, so that each policy is compiled with its tests.
        let mut extra_tests: HashMap<PathBuf, Vec<TestSpec>> = HashMap::new();
        for file in files.iter().filter(|f| is_test_file(f)) {
            let mut err = |pos, message| errors.push(LoadError { file: shown(file), pos, message });
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    err(None, format!("cannot read: {e}"));
                    continue;
                }
            };
            let Some(parsed) = parse::<TestFile>(&text, FileKind::Tests, &mut err) else { continue };
            match policy_of_test(file).into_iter().find(|p| p.exists()) {
                Some(p) => extra_tests.entry(p).or_default().extend(parsed.spec.tests),
                None => err(None, "a test file needs its policy beside it (`x.test.yaml` tests `x.yaml`)".into()),
            }
        }

        let mut policies = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for file in files.iter().filter(|f| !is_test_file(f)) {
            let rel = shown(file);
            let mut err = |pos, message| errors.push(LoadError { file: rel.clone(), pos, message });
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    err(None, format!("cannot read: {e}"));
                    continue;
                }
            };
            let Some(Parsed { mut spec, positions }) = parse::<PolicyFile>(&text, FileKind::Policy, &mut err) else {
                continue;
            };
            if !names.insert(spec.name.clone()) {
                err(
                    positions.value("/name").map(|p| (p.line, p.col)),
                    format!("name: policy name `{}` is used by another file; names must be unique", spec.name),
                );
            }
            spec.tests.extend(extra_tests.remove(file).unwrap_or_default());
            let base = file.parent().unwrap_or(dir);
            match compile_policy(spec, base, rel.clone(), &positions) {
                Ok(p) => policies.push(p),
                Err(msgs) => msgs.into_iter().for_each(|(pos, m)| err(pos, m)),
            }
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        Ok(PolicySet::new(policies, digest))
    }
}

type Placed = (Option<(usize, usize)>, String);

fn compile_policy(spec: PolicyFile, base: &Path, source: PathBuf, pos: &Positions) -> Result<Policy, Vec<Placed>> {
    let at = |ptr: &str| pos.value(ptr).map(|p| (p.line, p.col));
    let mut errs: Vec<Placed> = Vec::new();
    let matcher = Matcher::new(&spec.matches).map_err(|e| vec![(at("/match"), e)])?;
    let mut ids = HashSet::new();
    let mut rules = Vec::new();
    for (i, r) in spec.rules.iter().enumerate() {
        if !ids.insert(r.id.clone()) {
            errs.push((
                at(&format!("/rules/{i}/id")),
                format!("rules[{i}].id: `{}` is used twice in this policy", r.id),
            ));
            continue;
        }
        match compile_rule(r, base) {
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
                // A classifier applies its thresholds per label itself.
                threshold: if r.classifier.is_some() { 0.0 } else { r.threshold.unwrap_or(0.0) },
                detector,
            }),
            Err(e) => errs.push((at(&format!("/rules/{i}")), format!("rules[{i}] `{}`: {e}", r.id))),
        }
    }
    for (i, t) in spec.tests.iter().enumerate() {
        if t.messages.is_empty() == t.text.is_none() {
            errs.push((
                at(&format!("/tests/{i}")),
                format!("tests[{i}] `{}`: give either `messages` or `text`", t.name),
            ));
        }
        for r in t.expect.rules.iter().flatten() {
            if !ids.contains(r) {
                errs.push((
                    at(&format!("/tests/{i}/expect")),
                    format!("tests[{i}] `{}`: expects rule `{r}`, which this policy does not have", t.name),
                ));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(Policy {
        name: spec.name,
        description: spec.description,
        mode: spec.mode.into(),
        matcher,
        rules,
        tests: spec.tests,
        source,
    })
}

fn compile_rule(r: &RuleSpec, base: &Path) -> Result<Arc<dyn Detector>, String> {
    let count = [
        r.phrases.is_some(),
        r.patterns.is_some(),
        r.invisible.is_some(),
        r.schema.is_some(),
        r.classifier.is_some(),
        r.plugin.is_some(),
        r.steering.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        return Err(format!(
            "a rule needs exactly one detector (phrases, patterns, invisible, schema, classifier, plugin or \
             steering), found {count}"
        ));
    }
    if let Some(c) = &r.classifier {
        return compile_classifier(c, r.threshold, base);
    }
    if let Some(p) = &r.plugin {
        return compile_plugin(p, base);
    }
    if let Some(s) = &r.steering {
        return compile_steering(s);
    }
    if let Some(p) = &r.phrases {
        let mut phrases = p.list.clone();
        for (k, f) in p.files.iter().enumerate() {
            let data = read_asset(base, f, &format!("phrases.files[{k}]"))?;
            let text =
                String::from_utf8(data).map_err(|_| format!("phrases.files[{k}]: `{}` is not UTF-8", f.path()))?;
            phrases.extend(parse_phrase_file(&text));
        }
        let set = PhraseSet::new(phrases, p.word_boundary).map_err(|e| format!("phrases: {e}"))?;
        return Ok(Arc::new(PhraseDetector::new(set)));
    }
    if let Some(p) = &r.patterns {
        let set = PatternSet::new(&p.list).map_err(|e| format!("patterns: {e}"))?;
        return Ok(Arc::new(PatternDetector::new(set, p.max_len.unwrap_or(DEFAULT_MAX_LEN))));
    }
    if let Some(s) = &r.schema {
        let schema = match (&s.file, &s.inline) {
            (Some(f), None) => {
                let data = read_asset(base, f, "schema.file")?;
                serde_json::from_slice(&data).map_err(|e| format!("schema.file: `{}` is not JSON: {e}", f.path()))?
            }
            (None, Some(v)) => v.clone(),
            _ => return Err("schema: give either `file` or `inline`".into()),
        };
        return Ok(Arc::new(crate::json_schema::JsonSchemaDetector::new(&schema)?));
    }
    let classes = r.invisible.as_ref().and_then(|i| i.classes.as_deref());
    Ok(Arc::new(InvisibleDetector::new(classes).map_err(|e| format!("invisible: {e}"))?))
}

/// The threshold of a classifier label listed without one.
const DEFAULT_CLASSIFIER_THRESHOLD: f32 = 0.5;

fn compile_classifier(c: &ClassifierSpec, threshold: Option<f32>, base: &Path) -> Result<Arc<dyn Detector>, String> {
    let data = read_asset(base, &c.model, "classifier.model")?;
    let model = Model::load(c.model.path(), &data).map_err(|e| format!("classifier.model: {e}"))?;
    let labels: Vec<(String, f32)> = match &c.labels {
        LabelsSpec::List(l) => {
            l.iter().map(|n| (n.clone(), threshold.unwrap_or(DEFAULT_CLASSIFIER_THRESHOLD))).collect()
        }
        LabelsSpec::Thresholds(m) => m.iter().map(|(n, t)| (n.clone(), *t)).collect(),
    };
    let detector = ClassifierDetector::new(model, &labels).map_err(|e| format!("classifier.labels: {e}"))?;
    Ok(Arc::new(detector.with_min_words(c.min_words)))
}

fn compile_steering(s: &SteeringSpec) -> Result<Arc<dyn Detector>, String> {
    let config = SteeringConfig {
        ours: s.ours.clone(),
        competitors: s.competitors.clone(),
        allowed_link_hosts: s.allowed_link_hosts.clone(),
        detect: s.detect.clone(),
    };
    Ok(Arc::new(SteeringDetector::new(&config).map_err(|e| format!("steering.{e}"))?))
}

fn compile_plugin(p: &PluginSpec, base: &Path) -> Result<Arc<dyn Detector>, String> {
    if !base.join(p.file.path()).is_file() {
        return Err(format!(
            "plugin.file: unknown plugin `{}`: no such file (paths are relative to the policy file; \
             the example plugins are built by scripts/build-plugins.sh)",
            p.file.path()
        ));
    }
    let data = read_asset(base, &p.file, "plugin.file")?;
    let plugin = Host::global().load(p.file.path(), &data).map_err(|e| format!("plugin.file: {e}"))?;
    let defaults = Limits::default();
    let limits = Limits {
        memory_bytes: p.memory_mb.map_or(defaults.memory_bytes, |m| m << 20),
        timeout: p.timeout_ms.map_or(defaults.timeout, Duration::from_millis),
    };
    limits.check().map_err(|e| format!("plugin: {e}"))?;
    let config = p.config.as_ref().map_or_else(|| "{}".to_string(), |v| v.to_string());
    Ok(Arc::new(PluginDetector::new(plugin, config, limits)))
}
