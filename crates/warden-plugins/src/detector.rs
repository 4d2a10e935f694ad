//! A plugin as a detector: one rule's use of a plugin, with its config and limits.

use crate::plugin::{Input, Limits, Phase, Plugin, Role, Verdict};
use std::sync::Arc;
use warden_core::{Action, Cost, Detector, DetectorError, Hit, ScanText};

/// A plugin, the config a rule gives it (JSON text) and the limits of one call.
#[derive(Debug)]
pub struct PluginDetector {
    plugin: Arc<Plugin>,
    config: String,
    limits: Limits,
}

impl PluginDetector {
    /// A detector calling `plugin` with `config` (JSON) within `limits`.
    pub fn new(plugin: Arc<Plugin>, config: String, limits: Limits) -> Self {
        Self { plugin, config, limits }
    }

    /// The plugin.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }
}

impl Detector for PluginDetector {
    fn kind(&self) -> &'static str {
        "plugin"
    }

    fn artefact(&self) -> Option<&str> {
        Some(self.plugin.sha256())
    }

    fn cost(&self) -> Cost {
        Cost::Pooled
    }

    /// Turns the plugin's verdict into hits that ask for its action: `flag` and `block` give
    /// one hit over the whole text labelled with the reason, `redact` one hit per span.
    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        let ctx = input.context();
        let text = input.text();
        let call = Input {
            phase: match ctx.phase {
                warden_core::Phase::Prompt => Phase::Prompt,
                warden_core::Phase::Completion => Phase::Completion,
            },
            role: match ctx.role {
                warden_core::Role::System => Role::System,
                warden_core::Role::User => Role::User,
                warden_core::Role::Assistant => Role::Assistant,
                warden_core::Role::Tool => Role::Tool,
            },
            text: text.to_string(),
            model: ctx.model.to_string(),
            tenant: ctx.tenant.to_string(),
            config: self.config.clone(),
        };
        let whole = 0..text.len();
        match self.plugin.evaluate(&call, &self.limits) {
            Ok(Verdict::Allow) => Ok(Vec::new()),
            Ok(Verdict::Flag(reason)) => Ok(vec![Hit::new(reason, 1.0, whole).asking(Action::Flag)]),
            Ok(Verdict::Block(reason)) => Ok(vec![Hit::new(reason, 1.0, whole).asking(Action::Block)]),
            Ok(Verdict::Redact(spans)) => Ok(spans
                .into_iter()
                .map(|s| Hit::new(format!("{}: redact", self.plugin.name()), 1.0, s).asking(Action::Redact))
                .collect()),
            Err(e) => Err(DetectorError(e.to_string())),
        }
    }
}
