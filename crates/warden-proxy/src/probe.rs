//! The optional upstream health probe (`upstream_probe` in the config): a task that asks one
//! upstream `GET path` every interval, and keeps why it last failed for `/readyz`.

use crate::config::UpstreamProbe;
use crate::proxy::Shared;
use http::{HeaderMap, Method};
use std::sync::Arc;
use std::time::Duration;
use warden_core::Provider;

/// Checks the probe's settings.
pub fn validate(p: &UpstreamProbe) -> Result<Provider, String> {
    let provider = Provider::from_name(&p.provider).ok_or_else(|| {
        format!("upstream_probe.provider `{}` is not one of openai, anthropic, gemini, azure", p.provider)
    })?;
    if !p.path.starts_with('/') {
        return Err(format!("upstream_probe.path `{}` must start with /", p.path));
    }
    if p.interval_ms == 0 || p.timeout_ms == 0 {
        return Err("upstream_probe.interval_ms and timeout_ms must be above 0".into());
    }
    Ok(provider)
}

/// Starts the probe task, if one is configured.
pub fn spawn(shared: Arc<Shared>) -> Result<(), String> {
    let Some(p) = shared.config.upstream_probe.clone() else { return Ok(()) };
    let provider = validate(&p)?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(p.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let no_headers = HeaderMap::new();
        loop {
            tick.tick().await;
            let send = shared.upstreams.send(provider, Method::GET, &p.path, &no_headers, Default::default(), &[]);
            let failure = match tokio::time::timeout(Duration::from_millis(p.timeout_ms), send).await {
                Err(_) => Some(format!("the {provider} upstream did not answer {} within {} ms", p.path, p.timeout_ms)),
                Ok(Err(e)) => Some(format!("the {provider} upstream probe failed: {e}")),
                Ok(Ok(r)) if r.status().is_server_error() => {
                    Some(format!("the {provider} upstream answered {} to {}", r.status(), p.path))
                }
                Ok(Ok(_)) => None,
            };
            let mut last = shared.probe_failure.write();
            if failure.is_some() != last.is_some() {
                match &failure {
                    Some(f) => tracing::warn!("upstream probe failing, /readyz is unready: {f}"),
                    None => tracing::info!("upstream probe passes again"),
                }
            }
            *last = failure;
        }
    });
    Ok(())
}
