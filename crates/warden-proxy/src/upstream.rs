//! The `forward` stage: a pooled HTTP client to the providers (rustls for HTTPS, with the
//! system's roots), header hygiene, credential pass-through or injection, and timeouts.

use crate::config::{Config, Limits};
use crate::respond::ProxyError;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warden_core::Provider;

/// Headers that belong to one connection, not to the exchange (RFC 9110 section 7.6.1), and
/// headers Warden sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Copies `from` without hop-by-hop headers (including those named in `Connection`) or `extra`.
pub fn filter_headers(from: &HeaderMap, extra: &[&str]) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(from.len());
    for (k, v) in from {
        let n = k.as_str();
        if HOP_BY_HOP.contains(&n) || extra.contains(&n) || named.iter().any(|x| x == n) {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

struct Target {
    base: String,
    key: Option<HeaderValue>,
}

/// The headers that carry a client's credentials, for every provider: all are replaced when
/// Warden injects its own key.
const CREDENTIALS: &[&str] = &["authorization", "x-api-key", "api-key", "x-goog-api-key"];

/// The header a provider takes its key in, and how the key is written there.
fn credential(provider: Provider, key: &str) -> (&'static str, String) {
    match provider {
        Provider::OpenAi => ("authorization", format!("Bearer {key}")),
        Provider::Anthropic => ("x-api-key", key.to_string()),
        Provider::Azure => ("api-key", key.to_string()),
        Provider::Gemini => ("x-goog-api-key", key.to_string()),
    }
}

/// The upstream providers and the shared connection pool.
pub struct Upstreams {
    client: reqwest::Client,
    /// One permit per upstream request in flight (`limits.max_upstream_connections`).
    slots: Arc<Semaphore>,
    max_slots: usize,
    slot_wait: Duration,
    openai: Target,
    anthropic: Target,
    gemini: Target,
    azure: Option<Target>,
    response_timeout: Duration,
}

fn target(u: &crate::config::Upstream, provider: Provider) -> Result<Target, String> {
    let url = &u.url;
    let base = url.trim_end_matches('/').to_string();
    reqwest::Url::parse(&base).map_err(|e| format!("upstreams.{provider}.url `{url}` is not a URL: {e}"))?;
    let key = match &u.api_key_env {
        None => None,
        Some(var) => {
            let k = std::env::var(var).map_err(|_| {
                format!("upstreams.{provider}.api_key_env names `{var}`, but that environment variable is not set")
            })?;
            let (_, v) = credential(provider, &k);
            let mut hv =
                HeaderValue::from_str(&v).map_err(|_| format!("the key in `{var}` is not a valid header value"))?;
            hv.set_sensitive(true);
            Some(hv)
        }
    };
    Ok(Target { base, key })
}

impl Upstreams {
    /// Builds the client. Fails with a message naming the config field at fault.
    pub fn new(config: &Config) -> Result<Self, String> {
        let l = &config.limits;
        let client = reqwest::Client::builder()
            .connect_timeout(Limits::ms(l.connect_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // Never follow a redirect: it would re-send the guarded body, and the credentials,
            // to a host nobody configured (even Warden's own admin listener).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the upstream client: {e}"))?;
        let u = &config.upstreams;
        Ok(Self {
            client,
            slots: Arc::new(Semaphore::new(l.max_upstream_connections.clamp(1, 1 << 24))),
            max_slots: l.max_upstream_connections.clamp(1, 1 << 24),
            slot_wait: Limits::ms(l.connect_timeout_ms.min(1_000)),
            openai: target(&u.openai, Provider::OpenAi)?,
            anthropic: target(&u.anthropic, Provider::Anthropic)?,
            gemini: target(&u.gemini, Provider::Gemini)?,
            azure: u.azure.as_ref().map(|a| target(a, Provider::Azure)).transpose()?,
            response_timeout: Limits::ms(l.response_timeout_ms),
        })
    }

    /// The base URL of `provider`'s upstream (for the CLIENT span's `server.address`).
    pub fn base(&self, provider: Provider) -> &str {
        match provider {
            Provider::OpenAi => &self.openai.base,
            Provider::Anthropic => &self.anthropic.base,
            Provider::Gemini => &self.gemini.base,
            Provider::Azure => self.azure.as_ref().map_or("", |t| t.base.as_str()),
        }
    }

    /// Sends a request to the provider's upstream and waits for the response head.
    /// Unreachable: 502; no head within `response_timeout_ms`: 504; a redirect: 502 (never
    /// followed); no free upstream slot within a second: 503 (shed).
    ///
    /// The answer holds one of `limits.max_upstream_connections` slots until it is dropped.
    pub async fn send(
        &self,
        provider: Provider,
        method: Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        body: Bytes,
        extra_headers: &[(HeaderName, HeaderValue)],
    ) -> Result<UpstreamResponse, ProxyError> {
        let slot = match tokio::time::timeout(self.slot_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                return Err(ProxyError::Overloaded(format!(
                    "all {} upstream connections are busy (limits.max_upstream_connections); retry shortly",
                    self.slots_max()
                )))
            }
        };
        let t = match provider {
            Provider::OpenAi => &self.openai,
            Provider::Anthropic => &self.anthropic,
            Provider::Gemini => &self.gemini,
            Provider::Azure => self.azure.as_ref().ok_or_else(|| {
                ProxyError::BadGateway(
                    "no Azure OpenAI upstream is configured: set `upstreams.azure.url` to your resource's endpoint"
                        .into(),
                )
            })?,
        };
        let mut headers = filter_headers(client_headers, &["accept-encoding", "content-encoding"]);
        // Ask for plain text: a compressed answer would have to be decoded before inspection.
        headers.insert(http::header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if let Some(k) = &t.key {
            for h in CREDENTIALS {
                headers.remove(*h);
            }
            let (name, _) = credential(provider, "");
            headers.insert(HeaderName::from_static(name), k.clone());
        }
        for (k, v) in extra_headers {
            headers.insert(k.clone(), v.clone());
        }
        let url = format!("{}{}", t.base, path_and_query);
        let req = self.client.request(method, &url).headers(headers).body(body);
        match tokio::time::timeout(self.response_timeout, req.send()).await {
            Err(_) => Err(ProxyError::GatewayTimeout(format!(
                "the {provider} upstream did not answer within {:?} (limits.response_timeout_ms)",
                self.response_timeout
            ))),
            Ok(Err(e)) if e.is_timeout() => {
                Err(ProxyError::GatewayTimeout(format!("the {provider} upstream timed out: {}", describe(&e))))
            }
            Ok(Err(e)) => {
                Err(ProxyError::BadGateway(format!("the {provider} upstream could not be reached: {}", describe(&e))))
            }
            Ok(Ok(r)) if r.status().is_redirection() => {
                let to = r.headers().get(http::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                Err(ProxyError::BadGateway(format!(
                    "the {provider} upstream answered {} (a redirect{}), which Warden does not follow: \
                     a redirect would send the request and its credentials to a host that is not configured; \
                     point upstreams.{provider}.url at the final address",
                    r.status(),
                    if to.is_empty() {
                        String::new()
                    } else {
                        format!(" to `{}`", to.chars().take(200).collect::<String>())
                    },
                )))
            }
            Ok(Ok(r)) => Ok(UpstreamResponse { inner: r, _slot: slot }),
        }
    }

    fn slots_max(&self) -> usize {
        self.max_slots
    }
}

/// An upstream answer, holding its upstream slot until it is dropped.
pub struct UpstreamResponse {
    inner: reqwest::Response,
    _slot: OwnedSemaphorePermit,
}

impl std::ops::Deref for UpstreamResponse {
    type Target = reqwest::Response;
    fn deref(&self) -> &reqwest::Response {
        &self.inner
    }
}

impl std::ops::DerefMut for UpstreamResponse {
    fn deref_mut(&mut self) -> &mut reqwest::Response {
        &mut self.inner
    }
}

/// An upstream error with its causes, for the client and the record. The upstream's URL is left
/// out: it would tell clients the internal address and could carry credentials
/// (`https://user:pass@host`); the operator knows it from the config.
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(&format!(" ({})", u.as_str()), "").replace(u.as_str(), "the upstream");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert("connection", "x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("authorization", "Bearer k".parse().unwrap());
        h.insert("openai-organization", "org".parse().unwrap());
        let out = filter_headers(&h, &[]);
        assert!(out.get("x-secret-hop").is_none() && out.get("transfer-encoding").is_none());
        assert!(out.get("authorization").is_some() && out.get("openai-organization").is_some());
    }
}
