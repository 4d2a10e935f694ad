//! The admin listener (default `127.0.0.1:9090`):
//!
//! | path | what |
//! | --- | --- |
//! | `GET /healthz` | the process answers |
//! | `GET /readyz` | ready: the policy set (with its models and plugins) is loaded, the upstream probe (if configured) passes and the proxy is not saturated; else 503 with the reason |
//! | `GET /metrics` | Prometheus text ([`warden_telemetry::metrics`]) |
//! | `GET /admin/policies` | the active set: digest, policies, rules (also at `/policies`) |
//! | `POST /admin/reload` | reloads the policy directory |
//!
//! Bound to a loopback address it is open. Bound to any other address, every path but
//! `/healthz` and `/readyz` (which a load balancer probes) requires `Authorization: Bearer
//! TOKEN`, the token read from the variable `admin_token_env` names (compared in constant time);
//! Warden refuses to start exposed without one.

use crate::config::Config;
use crate::proxy::Shared;
use crate::respond::{full, json_response, ProxyBody};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

/// The active policy set, as `/admin/policies` shows it.
pub fn policy_view(shared: &Shared) -> serde_json::Value {
    let set = shared.policies.load();
    let m = &shared.telemetry.metrics;
    json!({
        "digest": set.digest(),
        "loaded": shared.unready().is_none(),
        "reloads": m.reloads.get(),
        "reload_failures": m.reload_failures.get(),
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

/// Refuses an admin listener on a non-loopback address without a token.
pub fn check_exposure(config: &Config, addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() || token(config).is_some() {
        return Ok(());
    }
    Err(format!(
        "the admin listener is bound to {addr}, which is not a loopback address, and ${} is not set: \
         set a bearer token there (it is then required on every admin path but /healthz and /readyz), \
         or bind admin_listen to 127.0.0.1",
        config.admin_token_env
    ))
}

fn token(config: &Config) -> Option<String> {
    std::env::var(&config.admin_token_env).ok().filter(|t| !t.trim().is_empty())
}

/// Whether `req` may use a protected path.
fn authorized(expected: Option<&[u8]>, req: &http::Request<Incoming>) -> bool {
    let Some(expected) = expected else { return true };
    let given = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(expected))
}

fn metrics(shared: &Shared) -> Response<ProxyBody> {
    let m = &shared.telemetry.metrics;
    m.in_flight.set(shared.in_flight_now() as i64);
    if let Some(a) = &shared.audit {
        let s = a.stats();
        m.audit(s.records, s.shed, s.failures, a.failure().is_some());
    }
    let mut r = Response::new(full(m.encode()));
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(warden_telemetry::Metrics::CONTENT_TYPE));
    r
}

async fn handle(
    shared: Arc<Shared>,
    expected: Option<Arc<[u8]>>,
    req: http::Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = req.uri().path();
    let open = matches!(path, "/healthz" | "/readyz");
    if !open && !authorized(expected.as_deref(), &req) {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "this admin path needs `Authorization: Bearer TOKEN` (the token of admin_token_env)" }),
        );
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    Ok(match (req.method(), path) {
        (&Method::GET, "/healthz") => Response::new(full("ok\n")),
        // Ready when the policies are loaded and the proxy is not saturated: a load balancer
        // sends the next request elsewhere otherwise.
        (&Method::GET, "/readyz") => {
            let audit = || shared.audit.as_ref().and_then(|a| a.failure());
            match shared
                .unready()
                .or_else(audit)
                .or_else(|| shared.probe_failure.read().clone())
                .or_else(|| shared.saturation())
            {
                None => Response::new(full("ok\n")),
                Some(reason) => {
                    json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({ "ready": false, "reason": reason }))
                }
            }
        }
        (&Method::GET, "/admin/policies" | "/policies") => json_response(StatusCode::OK, &policy_view(&shared)),
        (&Method::GET, "/metrics") => metrics(&shared),
        (&Method::POST, "/admin/reload") => match crate::reload(&shared).await {
            Ok(digest) => json_response(StatusCode::OK, &json!({ "reloaded": true, "digest": digest })),
            Err(errors) => json_response(
                StatusCode::UNPROCESSABLE_ENTITY,
                &json!({ "reloaded": false, "errors": errors, "digest": shared.policies.load().digest() }),
            ),
        },
        _ => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "admin paths: GET /healthz /readyz /metrics /admin/policies, POST /admin/reload" }),
        ),
    })
}

/// Serves the admin endpoints until the task is dropped, with the main listener's connection
/// bounds (head, idle and write timeouts, accept back-off) and a small connection cap of its own.
/// A token is required when the listener is not on a loopback address.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut limits = shared.config.limits.clone();
    limits.max_connections = ADMIN_CONNECTIONS;
    let exposed = listener.local_addr().map(|a| !a.ip().is_loopback()).unwrap_or(true);
    let expected: Option<Arc<[u8]>> =
        if exposed { token(&shared.config).map(|t| Arc::from(t.trim().as_bytes())) } else { None };
    let handler = move |req| handle(Arc::clone(&shared), expected.clone(), req);
    crate::server::serve(listener, &limits, handler, std::future::pending()).await;
}

/// Connections the admin listener holds at once.
const ADMIN_CONNECTIONS: usize = 64;
