//! # warden-audit: the evidence
//!
//! An append-only JSON Lines trail of every decision, in a directory: each line holds the hash
//! of the line before it ([`chain`]), so an edited, deleted, inserted or reordered record breaks
//! the chain; signed checkpoints (ed25519, the keys of `warden keygen`) in the chain and in a
//! sidecar file make a rewritten chain, a cut tail or a deleted last segment show too.
//!
//! - [`writer`]: the [`Trail`]: one writer thread fed by a bounded queue, group commit,
//!   `fsync: always | batch | never`, rotation, checkpoints, retention, back-pressure;
//! - [`recover`]: at start, a torn last line is moved aside and the chain resumes with a gap line;
//! - [`verify`]: every link and checkpoint, with the file and line of each break;
//! - [`export`]: filtered JSON Lines, CSV or OTLP/JSON logs, and the operator's `tail`;
//! - [`config`]: the `audit:` section.
//!
//! The trail never holds a key or an `Authorization` header; texts are hashed unless the
//! configuration asks for excerpts or full text. It tells that a record was changed; it does not
//! stop someone who can write the directory from deleting all of it, which is why checkpoints
//! should also leave the machine (the records go out as OTLP logs too).
#![deny(missing_docs)]

pub mod chain;
pub mod config;
pub mod export;
pub mod recover;
pub mod verify;
pub mod writer;

pub use config::AuditConfig;
pub use writer::{Appended, Stats, Trail};
