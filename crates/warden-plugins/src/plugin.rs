//! One loaded plugin and one call into it.

use crate::host::{Host, MAX_MEMORY_BYTES, TICK};
use std::sync::Arc;
use std::time::Duration;
use warden_core::stats::PluginFailure;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Linker;
use wasmtime::{ResourceLimiter, Store, Trap};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../plugins/wit/warden-plugin.wit",
        world: "detector",
    });
}

use bindings::{Detector, DetectorPre};
pub use bindings::{Input, Phase, Role};

/// What a plugin answered, checked: spans lie inside the text, on character boundaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Allow,
    /// Let through and record the reason.
    Flag(String),
    /// Refuse, with the reason.
    Block(String),
    /// Replace these byte ranges.
    Redact(Vec<std::ops::Range<usize>>),
}

/// Why a plugin could not be loaded or gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PluginError {
    /// The file is not a usable plugin.
    #[error("{0}")]
    Load(String),
    /// The call trapped, ran out of time or memory, or answered something invalid.
    #[error("{0}")]
    Call(String),
}

/// The longest reason kept from a plugin (it goes into records and logs); longer ones are cut.
pub const MAX_REASON_BYTES: usize = 256;

/// The most spans one redact verdict may name.
pub const MAX_SPANS: usize = 10_000;

/// A plugin's reason, cut to [`MAX_REASON_BYTES`] on a character boundary.
fn clip(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}

/// What one call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The guest's linear memory cap, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock time for one call (counted in epoch ticks of 2 ms).
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { memory_bytes: 16 << 20, timeout: Duration::from_millis(50) }
    }
}

impl Limits {
    /// Checks the limits against what the host can give.
    pub fn check(&self) -> Result<(), String> {
        if self.memory_bytes == 0 || self.memory_bytes > MAX_MEMORY_BYTES {
            return Err(format!("memory_mb must be between 1 and {}", MAX_MEMORY_BYTES >> 20));
        }
        if self.timeout.is_zero() || self.timeout > Duration::from_secs(10) {
            return Err("timeout_ms must be between 1 and 10000".into());
        }
        Ok(())
    }
}

/// A store's data: the memory cap, what all the plugin's memories hold, and whether the cap was
/// hit.
struct State {
    memory_cap: usize,
    memory_used: usize,
    memory_denied: bool,
}

impl ResourceLimiter for State {
    /// The cap is for the whole call: every memory of every core module counts.
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_cap {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        8
    }
}

/// One plugin, compiled and linked (with nothing: the world imports nothing), ready to
/// instantiate afresh for every call.
pub struct Plugin {
    host: Arc<Host>,
    name: String,
    sha256: String,
    pre: DetectorPre<State>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.name).field("sha256", &self.sha256).finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(
        host: Arc<Host>,
        name: &str,
        sha256: String,
        component: wasmtime::component::Component,
    ) -> Result<Self, PluginError> {
        let engine = host.engine();
        // The world's own types appear as type imports bound to themselves; nothing supplies
        // them at instantiation, so only other kinds of import are refused.
        let imports: Vec<String> = component
            .component_type()
            .imports(engine)
            .filter(|(_, item)| !matches!(item.ty, ComponentItem::Type(_)))
            .map(|(n, _)| n.to_string())
            .collect();
        if !imports.is_empty() {
            return Err(PluginError::Load(format!(
                "`{name}` imports {}, but a plugin may import nothing (no WASI, no host calls): \
                 build it without WASI (see plugins/README.md)",
                imports.join(", ")
            )));
        }
        let linker = Linker::<State>::new(engine);
        let pre = linker.instantiate_pre(&component).and_then(DetectorPre::new).map_err(|e| {
            PluginError::Load(format!(
                "`{name}` does not implement the plugin world {}: {e:#}; build it against plugins/wit/",
                crate::WORLD
            ))
        })?;
        Ok(Self { host, name: name.to_string(), sha256, pre })
    }

    /// The name it was loaded under (its file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sha256 of its bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Calls `evaluate` on a fresh instance within `limits`. A trap, a timeout, an exhausted
    /// memory cap or an invalid answer is an error naming which.
    pub fn evaluate(&self, input: &Input, limits: &Limits) -> Result<Verdict, PluginError> {
        let engine = self.host.engine();
        let mut store =
            Store::new(engine, State { memory_cap: limits.memory_bytes, memory_used: 0, memory_denied: false });
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        let ticks = limits.timeout.as_millis().div_ceil(TICK.as_millis()).max(1) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        let result = self.pre.instantiate(&mut store).and_then(|d: Detector| d.call_evaluate(&mut store, input));
        match result {
            Ok(v) => self.check(v, &input.text),
            Err(e) => Err(PluginError::Call(self.describe(&e, store.data(), limits))),
        }
    }

    fn describe(&self, e: &wasmtime::Error, state: &State, limits: &Limits) -> String {
        let name = &self.name;
        let kind = match e.downcast_ref::<Trap>() {
            _ if state.memory_denied => PluginFailure::Memory,
            Some(Trap::Interrupt) => PluginFailure::Timeout,
            Some(_) => PluginFailure::Trap,
            None => PluginFailure::Other,
        };
        warden_core::stats::plugin_failed(kind);
        if state.memory_denied {
            return format!("plugin `{name}` exceeded its memory cap of {} MiB", limits.memory_bytes >> 20);
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!("plugin `{name}` exceeded its time limit of {} ms", limits.timeout.as_millis())
            }
            Some(t) => format!("plugin `{name}` trapped: {t}"),
            None => format!("plugin `{name}` failed: {e:#}"),
        }
    }

    fn check(&self, v: bindings::Verdict, text: &str) -> Result<Verdict, PluginError> {
        let len = text.len();
        Ok(match v {
            bindings::Verdict::Allow => Verdict::Allow,
            bindings::Verdict::Flag(r) => Verdict::Flag(clip(r)),
            bindings::Verdict::Block(r) => Verdict::Block(clip(r)),
            bindings::Verdict::Redact(spans) if spans.len() > MAX_SPANS => {
                warden_core::stats::plugin_failed(PluginFailure::InvalidAnswer);
                return Err(PluginError::Call(format!(
                    "plugin `{}` answered redact with {} spans; at most {MAX_SPANS} are accepted",
                    self.name,
                    spans.len()
                )))
            }
            bindings::Verdict::Redact(spans) => Verdict::Redact(
                spans
                    .into_iter()
                    .map(|s| {
                        let (a, b) = (s.start as usize, s.end as usize);
                        if a < b && b <= len && text.is_char_boundary(a) && text.is_char_boundary(b) {
                            Ok(a..b)
                        } else {
                            warden_core::stats::plugin_failed(PluginFailure::InvalidAnswer);
                            Err(PluginError::Call(format!(
                                "plugin `{}` answered redact with span {a}..{b}, outside the text of {len} bytes or not on a character boundary",
                                self.name
                            )))
                        }
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}
