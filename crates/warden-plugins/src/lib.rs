//! The WebAssembly plugin detector: rules that run a user-written component in wasmtime.
//!
//! The contract is `plugins/wit/warden-plugin.wit` (`warden:plugin@0.1.0`, world `detector`):
//! Warden calls the component's one export, `evaluate(input) -> verdict`, with the text, its
//! phase and role, the model, the tenant and the rule's `config` as JSON. The world imports
//! nothing, so a plugin cannot reach files, clocks or the network: that is the sandbox by
//! construction. Each call gets a fresh instance (from a pre-instantiated component on the
//! pooling allocator), a memory cap and a time limit (an epoch deadline), so no state survives
//! from one call to the next and a trap cannot poison later calls.
//!
//! - [`Host`]: the one wasmtime engine of the process, its epoch clock and the compiled
//!   components, kept in memory by sha256 and on disk as precompiled artefacts.
//! - [`Plugin`]: one loaded component, checked against the world, ready to instantiate.
//! - [`PluginDetector`]: a plugin with a rule's config and limits, as a [`warden_core::Detector`].

mod detector;
mod host;
mod plugin;

pub use detector::PluginDetector;
pub use host::{Host, HostConfig, MAX_CONCURRENT_CALLS};
pub use plugin::{Input, Limits, Phase, Plugin, PluginError, Role, Verdict};

/// The WIT package and world every plugin must target.
pub const WORLD: &str = "warden:plugin/detector@0.1.0";
