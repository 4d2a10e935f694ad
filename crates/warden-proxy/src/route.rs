//! The `route` stage: which API shape a request speaks, by method and path, and which upstream
//! it goes to.
//!
//! | path | shape | upstream |
//! | --- | --- | --- |
//! | `/v1/chat/completions` | OpenAI chat | `openai` |
//! | `/v1/completions` | OpenAI legacy completions | `openai` |
//! | `/v1/responses` | OpenAI Responses | `openai` |
//! | `/v1/embeddings` | OpenAI embeddings | `openai` |
//! | `/v1/messages` | Anthropic messages | `anthropic` |
//! | `/openai/deployments/{d}/{chat/completions, completions, embeddings, responses}` | OpenAI | `azure` |
//! | `/openai/v1/{chat/completions, completions, embeddings, responses}`, `/openai/responses` | OpenAI | `azure` |
//! | `/v1beta/models/{m}:generateContent`, `:streamGenerateContent` (also `/v1/models/...`) | Gemini | `gemini` |
//!
//! Percent-encoded unreserved characters are decoded before routing (`/v1/chat/%63ompletions`
//! is `/v1/chat/completions`), and the decoded path is what goes upstream, so the path that was
//! routed is the path the provider serves.

use crate::respond::ProxyError;
use crate::shape::{self, ErrorShape, RouteInfo, Shape};
use http::{HeaderMap, Method};
use std::borrow::Cow;
use warden_core::Provider;

/// A guarded request's route.
#[derive(Clone)]
pub struct Guarded {
    /// The API shape.
    pub shape: &'static dyn Shape,
    /// The upstream it goes to.
    pub provider: Provider,
    /// What the path says besides the shape.
    pub info: RouteInfo,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("shape", &self.shape.name()).field("provider", &self.provider).finish()
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Route {
    /// Inspected.
    Guarded(Guarded),
    /// Forwarded untouched to this provider's upstream (listed under `passthrough`).
    Passthrough(Provider),
}

/// The provider a request looks like, for answering in its shape even when the path is unknown.
pub fn provider_hint(path: &str, headers: &HeaderMap) -> Provider {
    if path.starts_with("/v1/messages")
        || headers.contains_key("anthropic-version")
        || headers.contains_key("x-api-key")
    {
        Provider::Anthropic
    } else if path.starts_with("/v1beta/")
        || path.contains(":generateContent")
        || headers.contains_key("x-goog-api-key")
    {
        Provider::Gemini
    } else if path.starts_with("/openai/") {
        Provider::Azure
    } else {
        Provider::OpenAi
    }
}

/// The error shape for answering a request that looks like `provider`'s.
pub fn error_shape(provider: Provider) -> ErrorShape {
    match provider {
        Provider::OpenAi | Provider::Azure => ErrorShape::OpenAi,
        Provider::Anthropic => ErrorShape::Anthropic,
        Provider::Gemini => ErrorShape::Gemini,
    }
}

fn listed(passthrough: &[String], path: &str) -> bool {
    passthrough.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

/// Decodes percent-encoded unreserved characters (RFC 3986: letters, digits, `-._~`), which
/// name the same resource encoded or not. Other escapes are left as they are.
pub fn decode_unreserved(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let b = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex.filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c)) {
                out.push(c as char);
                i += 3;
                continue;
            }
        }
        // The path is ASCII (a URI); copy the byte.
        out.push(b[i] as char);
        i += 1;
    }
    Cow::Owned(out)
}

/// Refuses paths that an upstream could resolve to another path than the one routed here: dot
/// segments (`/v1/models/../chat/completions`, also percent-encoded), encoded slashes or
/// backslashes, and empty segments. Otherwise a passthrough prefix could carry a guarded request
/// past the guard.
fn check_path(path: &str) -> Result<(), ProxyError> {
    let lower = path.to_ascii_lowercase();
    let bad = !path.starts_with('/')
        || lower.contains("%2f")
        || lower.contains("%5c")
        || path.contains('\\')
        || path[1..].split('/').any(|seg| seg.is_empty() && path.len() > 1)
        || lower.split('/').any(|seg| seg == "." || seg == "..");
    if bad {
        return Err(ProxyError::BadRequest(format!(
            "the path `{path}` has dot segments, empty segments or encoded slashes; send the plain path"
        )));
    }
    Ok(())
}

/// The OpenAI operation at the end of a path.
fn openai_op(op: &str) -> Option<&'static dyn Shape> {
    Some(match op {
        "chat/completions" => &shape::OPENAI_CHAT,
        "completions" => &shape::OPENAI_COMPLETIONS,
        "responses" => &shape::OPENAI_RESPONSES,
        "embeddings" => &shape::OPENAI_EMBEDDINGS,
        _ => return None,
    })
}

fn guarded(path: &str, query: Option<&str>) -> Option<Guarded> {
    let info = |path_model: Option<&str>, path_streams: bool| RouteInfo {
        path_model: path_model.map(str::to_string),
        query: query.map(str::to_string),
        path_streams,
    };
    if path == "/v1/messages" {
        return Some(Guarded {
            shape: &shape::ANTHROPIC_MESSAGES,
            provider: Provider::Anthropic,
            info: info(None, false),
        });
    }
    if let Some(op) = path.strip_prefix("/v1/") {
        if let Some(shape) = openai_op(op) {
            return Some(Guarded { shape, provider: Provider::OpenAi, info: info(None, false) });
        }
    }
    // Azure OpenAI.
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        let (deployment, op) = rest.split_once('/')?;
        let shape = openai_op(op)?;
        return Some(Guarded { shape, provider: Provider::Azure, info: info(Some(deployment), false) });
    }
    if let Some(op) = path.strip_prefix("/openai/v1/").or_else(|| path.strip_prefix("/openai/")) {
        let shape = openai_op(op)?;
        return Some(Guarded { shape, provider: Provider::Azure, info: info(None, false) });
    }
    // Gemini.
    let models = path.strip_prefix("/v1beta/models/").or_else(|| path.strip_prefix("/v1/models/"))?;
    let (model, method) = models.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    let streams = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    Some(Guarded { shape: &shape::GEMINI, provider: Provider::Gemini, info: info(Some(model), streams) })
}

/// The route template of a guarded path, for `http.route` and span names: the Azure deployment
/// and the Gemini model are replaced by `{deployment}` and `{model}`.
pub fn template(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        if let Some((_, op)) = rest.split_once('/') {
            return format!("/openai/deployments/{{deployment}}/{op}");
        }
    }
    for prefix in ["/v1beta/models/", "/v1/models/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            if let Some((_, method)) = rest.rsplit_once(':') {
                return format!("{prefix}{{model}}:{method}");
            }
        }
    }
    path.to_string()
}

/// Resolves a request. Guarded paths need POST; unknown paths are refused (an unguarded path is
/// a hole) unless listed as passthrough. `path` is the decoded path ([`decode_unreserved`]).
pub fn resolve(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    passthrough: &[String],
) -> Result<Route, ProxyError> {
    check_path(path)?;
    match guarded(path, query) {
        Some(g) if method == Method::POST => Ok(Route::Guarded(g)),
        Some(_) => Err(ProxyError::MethodNotAllowed(method.to_string(), path.to_string())),
        None if listed(passthrough, path) => Ok(Route::Passthrough(provider_hint(path, headers))),
        None => Err(ProxyError::NotFound(path.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(path: &str) -> Option<(&'static str, Provider)> {
        match resolve(&Method::POST, path, None, &HeaderMap::new(), &[]) {
            Ok(Route::Guarded(g)) => Some((g.shape.name(), g.provider)),
            _ => None,
        }
    }

    #[test]
    fn routes() {
        let h = HeaderMap::new();
        assert_eq!(shape_of("/v1/messages"), Some(("anthropic.messages", Provider::Anthropic)));
        assert_eq!(shape_of("/v1/responses"), Some(("openai.responses", Provider::OpenAi)));
        assert_eq!(shape_of("/v1/embeddings"), Some(("openai.embeddings", Provider::OpenAi)));
        assert_eq!(shape_of("/openai/deployments/gpt4/chat/completions"), Some(("openai.chat", Provider::Azure)));
        assert_eq!(shape_of("/openai/v1/responses"), Some(("openai.responses", Provider::Azure)));
        assert_eq!(
            shape_of("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(("gemini.generate_content", Provider::Gemini))
        );
        assert_eq!(shape_of("/v1beta/models/gemini-2.5-flash:countTokens"), None);
        assert!(matches!(
            resolve(&Method::GET, "/v1/chat/completions", None, &h, &[]),
            Err(ProxyError::MethodNotAllowed(..))
        ));
        assert!(matches!(resolve(&Method::GET, "/v1/models", None, &h, &[]), Err(ProxyError::NotFound(_))));
        let pass = vec!["/v1/models*".to_string()];
        assert!(matches!(
            resolve(&Method::GET, "/v1/models/gpt-4o", None, &h, &pass).unwrap(),
            Route::Passthrough(Provider::OpenAi)
        ));
    }

    #[test]
    fn templates_hide_deployments_and_models() {
        assert_eq!(template("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(
            template("/openai/deployments/prod-4o/chat/completions"),
            "/openai/deployments/{deployment}/chat/completions"
        );
        assert_eq!(
            template("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            "/v1beta/models/{model}:streamGenerateContent"
        );
    }

    #[test]
    fn encoded_unreserved_characters_route_like_plain_ones() {
        assert_eq!(decode_unreserved("/v1/chat/%63ompletions"), "/v1/chat/completions");
        assert_eq!(decode_unreserved("/v1/%6D%65ssages"), "/v1/messages");
        assert_eq!(decode_unreserved("/a%2Fb%20c%"), "/a%2Fb%20c%");
        assert_eq!(shape_of(&decode_unreserved("/v1/chat/%63ompletions")), Some(("openai.chat", Provider::OpenAi)));
        assert!(check_path(&decode_unreserved("/v1/models/%2e%2e/chat/completions")).is_err());
    }
}
