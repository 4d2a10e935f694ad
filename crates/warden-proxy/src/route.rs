//! The `route` stage: which API a request speaks, by method and path.

use crate::adapter::Api;
use crate::respond::ProxyError;
use http::{HeaderMap, Method};
use warden_core::Provider;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Inspected.
    Guarded(Api),
    /// Forwarded untouched to this provider's upstream (listed under `passthrough`).
    Passthrough(Provider),
}

/// The provider a request looks like, for answering in its shape even when the path is unknown:
/// `/v1/messages*` or an `anthropic-version` / `x-api-key` header means Anthropic.
pub fn provider_hint(path: &str, headers: &HeaderMap) -> Provider {
    if path.starts_with("/v1/messages")
        || headers.contains_key("anthropic-version")
        || headers.contains_key("x-api-key")
    {
        Provider::Anthropic
    } else {
        Provider::OpenAi
    }
}

fn listed(passthrough: &[String], path: &str) -> bool {
    passthrough.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

/// Refuses paths that an upstream could resolve to another path than the one routed here: dot
/// segments (`/v1/models/../chat/completions`, also percent-encoded), encoded slashes or
/// backslashes, and empty segments. Otherwise a passthrough prefix could carry a guarded request
/// past the guard.
fn check_path(path: &str) -> Result<(), ProxyError> {
    let lower = path.to_ascii_lowercase();
    let decoded = lower.replace("%2e", ".");
    let bad = !path.starts_with('/')
        || lower.contains("%2f")
        || lower.contains("%5c")
        || path.contains('\\')
        || path[1..].split('/').any(|seg| seg.is_empty() && path.len() > 1)
        || decoded.split('/').any(|seg| seg == "." || seg == "..");
    if bad {
        return Err(ProxyError::BadRequest(format!(
            "the path `{path}` has dot segments, empty segments or encoded slashes; send the plain path"
        )));
    }
    Ok(())
}

/// Resolves a request. Guarded paths need POST; unknown paths are refused (an unguarded path is
/// a hole) unless listed as passthrough.
pub fn resolve(method: &Method, path: &str, headers: &HeaderMap, passthrough: &[String]) -> Result<Route, ProxyError> {
    check_path(path)?;
    let api = match path {
        "/v1/chat/completions" => Some(Api::OpenAiChat),
        "/v1/completions" => Some(Api::OpenAiCompletions),
        "/v1/messages" => Some(Api::AnthropicMessages),
        _ => None,
    };
    match api {
        Some(api) if method == Method::POST => Ok(Route::Guarded(api)),
        Some(_) => Err(ProxyError::MethodNotAllowed(method.to_string(), path.to_string())),
        None if listed(passthrough, path) => Ok(Route::Passthrough(provider_hint(path, headers))),
        None => Err(ProxyError::NotFound(path.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let h = HeaderMap::new();
        assert_eq!(resolve(&Method::POST, "/v1/messages", &h, &[]).unwrap(), Route::Guarded(Api::AnthropicMessages));
        assert!(matches!(
            resolve(&Method::GET, "/v1/chat/completions", &h, &[]),
            Err(ProxyError::MethodNotAllowed(..))
        ));
        assert!(matches!(resolve(&Method::GET, "/v1/models", &h, &[]), Err(ProxyError::NotFound(_))));
        let pass = vec!["/v1/models*".to_string()];
        assert_eq!(
            resolve(&Method::GET, "/v1/models/gpt-4o", &h, &pass).unwrap(),
            Route::Passthrough(Provider::OpenAi)
        );
    }
}
