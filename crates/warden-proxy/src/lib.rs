//! # warden-proxy: the guarded reverse proxy
//!
//! An application points its OpenAI, Azure OpenAI, Anthropic or Gemini client's base URL at Warden; Warden inspects the
//! prompt, forwards it, inspects the completion (streamed or not) and answers. One request passes
//! these stages, one module each:
//!
//! | stage | module |
//! | --- | --- |
//! | listen | [`server`] (HTTP/1.1 and h2c; connection count, head, idle and write time) |
//! | layers | [`layers`] (request id, record, admission and load shedding, total deadline) |
//! | route | [`route`] (path to API shape and upstream) |
//! | decode | [`body`] (size, time, type, encoding), [`shape`] (one file per API shape: JSON to segments, and back) |
//! | guard(prompt) | `warden_policy::PolicySet::evaluate`, called from [`proxy`] |
//! | forward | [`upstream`] |
//! | guard(completion) | [`completion`] for whole answers, [`stream_guard`] (with [`sse`]) for streams |
//! | respond | [`respond`] (provider-shaped errors and refusals) |
//! | record | [`record`] (started by its layer, emitted when the request is over), [`telemetry`] (its spans, metrics and log lines) |
//!
//! [`proxy::handle`] runs them in that order; [`run`] starts everything.
#![deny(missing_docs)]

pub mod admin;
pub mod body;
pub mod channel;
pub mod completion;
pub mod config;
pub mod evidence;
pub mod json;
pub mod layers;
pub mod probe;
pub mod proxy;
pub mod record;
pub mod respond;
pub mod route;
pub mod server;
pub mod shape;
pub mod sse;
pub mod stream_guard;
pub mod telemetry;
pub mod upstream;
pub mod watch;

use arc_swap::ArcSwap;
use proxy::Shared;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;
use warden_policy::{LoadOptions, PolicySet};

pub use config::Config;

/// Loads the policies and builds the shared state. Errors say what to fix. A policy set that
/// cannot be loaded does not stop Warden: it starts unready, refusing every guarded request
/// (503) and saying why on `/readyz`, until a reload succeeds. Call it inside the Tokio runtime
/// (the trace exporter starts on it).
pub fn prepare(config: Config) -> Result<Arc<Shared>, String> {
    config.limits.validate()?;
    // One TLS crypto provider for the process (ring: builds fast, no cmake).
    let _ = rustls_provider::install();
    let verify_key = match &config.verify_key {
        Some(p) => Some(warden_policy::sign::read_verifying_key(p)?),
        None => None,
    };
    let load_options = LoadOptions { verify_key };
    let (policies, not_loaded) = match PolicySet::load_with(&config.policies, &load_options) {
        Ok(set) => (set, None),
        Err(e) => {
            tracing::error!(
                "the policy set at {} cannot be loaded; Warden starts unready and refuses every guarded request until it can:\n{e}",
                config.policies.display()
            );
            (PolicySet::new(Vec::new(), "none".into()), Some(e.to_string()))
        }
    };
    let upstreams = upstream::Upstreams::new(&config)?;
    if let Some(p) = &config.upstream_probe {
        probe::validate(p)?;
    }
    let telemetry = Arc::new(warden_telemetry::Telemetry::start(&config.telemetry)?);
    let audit = match &config.audit.dir {
        Some(_) => Some(Arc::new(warden_audit::Trail::open(&config.audit)?)),
        None => None,
    };
    if let Some(t) = &audit {
        t.append_kind("policy_set", evidence::policy_set(&policies).to_string());
    }
    let rules: usize = policies.policies().iter().map(|p| p.rules.len()).sum();
    telemetry.metrics.policy_set(policies.digest(), policies.policies().len(), rules);
    // Each worker runs one plugin instance at a time; the plugin host has room for 64 calls.
    let workers = match config.limits.detector_workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    }
    .min(32);
    Ok(Arc::new(Shared {
        detector_pool: Arc::new(tokio::sync::Semaphore::new(workers)),
        detector_waiting: std::sync::atomic::AtomicUsize::new(0),
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.limits.max_in_flight.clamp(1, 1 << 24))),
        config,
        policies: ArcSwap::from_pointee(policies),
        upstreams,
        telemetry,
        not_loaded: parking_lot::RwLock::new(not_loaded),
        probe_failure: parking_lot::RwLock::new(None),
        audit,
        load_options,
    }))
}

/// Reloads the policy directory off the request path and swaps it in atomically; requests in
/// flight finish on the set they started with. A bad set is refused, the old one keeps serving.
pub async fn reload(shared: &Arc<Shared>) -> Result<String, String> {
    let dir = shared.config.policies.clone();
    let opts = shared.load_options.clone();
    let loaded = tokio::task::spawn_blocking(move || PolicySet::load_with(&dir, &opts))
        .await
        .map_err(|e| format!("the reload task failed: {e}"))?;
    let metrics = &shared.telemetry.metrics;
    match loaded {
        Ok(set) => {
            let digest = set.digest().to_string();
            let first = shared.not_loaded.write().take().is_some();
            if first || digest != shared.policies.load().digest() {
                let rules: usize = set.policies().iter().map(|p| p.rules.len()).sum();
                metrics.policy_set(&digest, set.policies().len(), rules);
                if let Some(t) = &shared.audit {
                    t.append_kind("policy_set", evidence::policy_set(&set).to_string());
                }
                shared.policies.store(Arc::new(set));
                metrics.reloads.inc();
                tracing::info!(policy_digest = %digest, "policies reloaded");
            }
            Ok(digest)
        }
        Err(e) => {
            metrics.reload_failures.inc();
            match shared.not_loaded.read().is_some() {
                true => tracing::error!("the policy set still cannot be loaded; nothing is served until it can:\n{e}"),
                false => tracing::error!("policy reload refused, the previous set keeps serving:\n{e}"),
            }
            Err(e.to_string())
        }
    }
}

/// Binds, calls `ready` with the bound address (and `admin_ready` with the admin listener's),
/// and serves until SIGINT or SIGTERM. SIGHUP reloads the policies.
pub async fn run(
    config: Config,
    ready: impl FnOnce(SocketAddr),
    admin_ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let listen = config.listen;
    server::raise_fd_limit(&config.limits);
    let shared = prepare(config)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e} (set --listen or `listen:` in the config)"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, policy_digest = %shared.policies.load().digest(), "warden listening");
    let mut admin_addr_bound = None;
    if let Some(admin) = shared.config.admin_listen {
        let l = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|e| format!("cannot listen on {admin} for the admin endpoints: {e} (admin_listen)"))?;
        let admin_addr = l.local_addr().map_err(|e| e.to_string())?;
        admin::check_exposure(&shared.config, admin_addr)?;
        tracing::info!(addr = %admin_addr, "admin listening");
        tokio::spawn(admin::serve(l, Arc::clone(&shared)));
        admin_addr_bound = Some(admin_addr);
    }
    if shared.config.watch_policies {
        watch::spawn(Arc::clone(&shared))?;
    }
    probe::spawn(Arc::clone(&shared))?;
    ready(addr);
    if let Some(a) = admin_addr_bound {
        admin_ready(a);
    }
    spawn_reload_on_sighup(Arc::clone(&shared));
    let limits = shared.config.limits.clone();
    let telemetry = Arc::clone(&shared.telemetry);
    let audit = shared.audit.clone();
    let svc = layers::proxy_service(shared);
    server::serve(listener, &limits, move |req| svc.clone().oneshot(req), shutdown_signal()).await;
    // Spans still queued are exported before exit (bounded: a dead collector cannot hold it).
    tokio::task::spawn_blocking(move || {
        // The trail's last records and a final checkpoint, then the spans.
        if let Some(a) = audit {
            a.close(std::time::Duration::from_secs(5));
        }
        telemetry.shutdown(std::time::Duration::from_secs(5))
    })
    .await
    .ok();
    Ok(())
}

fn spawn_reload_on_sighup(shared: Arc<Shared>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
        while hup.recv().await.is_some() {
            let _ = reload(&shared).await;
        }
    });
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

mod rustls_provider {
    /// Installs ring as the process-wide rustls provider (once; later calls are no-ops).
    pub fn install() -> Result<(), ()> {
        rustls::crypto::ring::default_provider().install_default().map_err(|_| ())
    }
}
