//! The admin listener: `/healthz`, `/readyz`, `/policies` (the active set: digest, policies,
//! rules), `/metrics` (Prometheus text) and `POST /admin/reload`. Bind it to a private address.

use crate::proxy::Shared;
use crate::respond::{full, json_response, ProxyBody};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The active policy set, as the `/policies` view shows it.
pub fn policy_view(shared: &Shared) -> serde_json::Value {
    let set = shared.policies.load();
    json!({
        "digest": set.digest(),
        "reloads": shared.reloads.load(Ordering::Relaxed),
        "reload_failures": shared.reload_failures.load(Ordering::Relaxed),
        "policies": set.policies().iter().map(|p| json!({
            "name": p.name,
            "mode": p.mode,
            "source": p.source,
            "tests": p.tests.len(),
            "rules": p.rules.iter().map(|r| json!({
                "id": r.id,
                "detector": r.detector.kind(),
                "action": r.action,
                "mode": r.mode,
                "phases": r.phases,
                "roles": r.roles,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

fn metrics(shared: &Shared) -> String {
    let set = shared.policies.load();
    let rules: usize = set.policies().iter().map(|p| p.rules.len()).sum();
    format!(
        "# HELP warden_policy_info The active policy set.\n# TYPE warden_policy_info gauge\n\
         warden_policy_info{{digest=\"{}\",policies=\"{}\",rules=\"{rules}\"}} 1\n\
         # HELP warden_policy_reloads_total Policy reloads that swapped in a new set.\n# TYPE warden_policy_reloads_total counter\n\
         warden_policy_reloads_total {}\n\
         # HELP warden_policy_reload_failures_total Policy reloads refused (the previous set kept serving).\n# TYPE warden_policy_reload_failures_total counter\n\
         warden_policy_reload_failures_total {}\n",
        set.digest(),
        set.policies().len(),
        shared.reloads.load(Ordering::Relaxed),
        shared.reload_failures.load(Ordering::Relaxed),
    )
}

async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => Response::new(full("ok\n")),
        // Ready unless saturated: a load balancer sends the next request elsewhere.
        (&Method::GET, "/readyz") => match shared.saturation() {
            None => Response::new(full("ok\n")),
            Some(reason) => {
                json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "ready": false, "reason": reason }))
            }
        },
        (&Method::GET, "/policies") => json_response(StatusCode::OK, &policy_view(&shared)),
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(full(metrics(&shared)));
            r.headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; version=0.0.4"));
            r
        }
        (&Method::POST, "/admin/reload") => match crate::reload(&shared).await {
            Ok(digest) => json_response(StatusCode::OK, &json!({ "reloaded": true, "digest": digest })),
            Err(errors) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "reloaded": false, "errors": errors, "digest": shared.policies.load().digest() }),
            ),
        },
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "admin paths: /healthz /readyz /policies /metrics, POST /admin/reload" }),
        ),
    })
}

/// Serves the admin endpoints until the task is dropped, with the main listener's connection
/// bounds (head, idle and write timeouts, accept back-off) and a small connection cap of its own.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut limits = shared.config.limits.clone();
    limits.max_connections = ADMIN_CONNECTIONS;
    let handler = move |req| handle(Arc::clone(&shared), req);
    crate::server::serve(listener, &limits, handler, std::future::pending()).await;
}

/// Connections the admin listener holds at once.
const ADMIN_CONNECTIONS: usize = 64;
