//! The configuration file (`warden serve --config FILE`), YAML. Every field has a default;
//! command-line flags override the file. Unknown fields are errors.
//!
//! ```yaml
//! listen: 127.0.0.1:8080
//! policies: policies/
//! upstreams:
//!   openai:    { url: https://api.openai.com, api_key_env: OPENAI_API_KEY }     # api_key_env: optional
//!   anthropic: { url: https://api.anthropic.com }
//!   gemini:    { url: https://generativelanguage.googleapis.com }
//!   azure:     { url: https://my-resource.openai.azure.com }   # optional: Azure OpenAI routes
//! coverage:                      # what Warden does with what it cannot read or does not know
//!   unreadable: flag             # images, audio, files in a prompt: allow | flag | refuse
//!   provider_state: flag         # earlier turns kept by the provider (previous_response_id...)
//!   unknown_events: judge        # stream events of an unknown type: judge | drop | cut
//! passthrough: [/v1/models]     # unguarded paths forwarded as they are; others get 404
//! tenant_header: x-warden-tenant
//! verify_key: policy.pub         # optional: refuse an unsigned or tampered policy directory
//! admin_listen: 127.0.0.1:9090   # the admin listener (`off` to disable): /healthz, /readyz, /metrics,
//!                                #   GET /admin/policies, POST /admin/reload
//! admin_token_env: WARDEN_ADMIN_TOKEN  # the bearer token the admin listener requires when bound to a
//!                                #   non-loopback address (read from this variable; never logged)
//! upstream_probe:                # optional: /readyz is unready while this probe fails
//!   { provider: openai, path: /v1/models, interval_ms: 10000, timeout_ms: 2000 }
//! audit: { dir: /var/lib/warden/audit, fsync: batch }  # the audit trail (warden_audit::config)
//! telemetry:                     # traces (see warden_telemetry::config for every field)
//!   endpoint: http://127.0.0.1:4318
//!   protocol: http/protobuf
//! watch_policies: true           # reload when a policy file changes
//! limits:
//!   max_body_bytes: 4194304
//!   max_decompressed_bytes: 16777216
//!   max_response_bytes: 33554432
//!   max_header_bytes: 65536
//!   header_read_timeout_ms: 10000
//!   body_read_timeout_ms: 30000
//!   connect_timeout_ms: 5000
//!   response_timeout_ms: 120000
//!   stream_idle_timeout_ms: 60000
//!   total_timeout_ms: 600000
//!   write_timeout_ms: 30000        # a client that stops reading is cut
//!   idle_timeout_ms: 60000         # keep-alive connections with nothing in flight
//!   max_stream_bytes: 67108864     # one stream, from the upstream
//!   max_event_bytes: 8388608       # one SSE event
//!   max_identifier_bytes: 256      # `model`
//!   max_segments: 16384            # strings in one request
//!   max_text_bytes: 33554432       # text in one request
//!   max_connections: 4096          # client connections
//!   max_upstream_connections: 1024 # upstream requests in flight
//!   max_in_flight: 1024            # requests in flight; past it, 503 (shed)
//!   detector_queue: 64             # requests waiting for the detector pool; past it, 503 (shed)
//! ```
//!
//! Every size, count and time has a bound: a client or an upstream that sends too much, too
//! slowly or too fast gets a provider-shaped error, and the proxy keeps serving the others.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The policy directory.
    pub policies: PathBuf,
    /// Where requests go.
    pub upstreams: Upstreams,
    /// Paths forwarded without inspection. Everything not guarded and not listed gets 404.
    pub passthrough: Vec<String>,
    /// The request header that names the tenant; without it, the tenant is a hash of the API key.
    /// It is trusted as sent: where clients could forge it, a gateway in front must set or strip
    /// it, or a client could pick a tenant that a policy does not select.
    pub tenant_header: String,
    /// Sizes and timeouts.
    pub limits: Limits,
    /// A public key file: the policy directory must be signed by it (see `warden sign`).
    pub verify_key: Option<PathBuf>,
    /// Where the admin listener serves `/healthz`, `/readyz`, `/metrics`, `GET /admin/policies`
    /// and `POST /admin/reload` (`127.0.0.1:9090`; `off` turns it off). On a non-loopback address
    /// it requires the bearer token of `admin_token_env`.
    #[serde(deserialize_with = "admin_address")]
    pub admin_listen: Option<SocketAddr>,
    /// The variable holding the admin listener's bearer token.
    pub admin_token_env: String,
    /// Traces.
    pub telemetry: warden_telemetry::TelemetryConfig,
    /// An optional upstream health probe: while it fails, `/readyz` is unready.
    pub upstream_probe: Option<UpstreamProbe>,
    /// The audit trail (off without `audit.dir` or `--audit-dir`).
    pub audit: warden_audit::AuditConfig,
    /// Reload the policies when a file in the directory changes (SIGHUP and `POST /admin/reload`
    /// always work).
    pub watch_policies: bool,
    /// What Warden does with what it cannot read or does not know.
    pub coverage: Coverage,
}

/// A health probe of one upstream: `GET {url}{path}` every `interval_ms`. Any answer below 500
/// counts as healthy (a 401 still proves the upstream is there); no answer within `timeout_ms`,
/// a connection error or a 5xx makes `/readyz` unready until the next probe succeeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamProbe {
    /// `openai`, `anthropic`, `gemini` or `azure`.
    pub provider: String,
    /// The path probed.
    #[serde(default = "probe_path")]
    pub path: String,
    /// Time between probes.
    #[serde(default = "probe_interval")]
    pub interval_ms: u64,
    /// Time one probe may take.
    #[serde(default = "probe_timeout")]
    pub timeout_ms: u64,
}

fn probe_path() -> String {
    "/v1/models".into()
}
fn probe_interval() -> u64 {
    10_000
}
fn probe_timeout() -> u64 {
    2_000
}

/// What Warden does with content it cannot read: a recorded policy decision, never a silence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Coverage {
    /// Images, audio and non-text files in a prompt.
    pub unreadable: Unseen,
    /// Conversation state kept by the provider (`previous_response_id`, `conversation`, a stored
    /// prompt, `cachedContent`): earlier turns Warden never saw.
    pub provider_state: Unseen,
    /// Stream events of a type the API shape does not know.
    pub unknown_events: UnknownEvents,
}

impl Default for Coverage {
    fn default() -> Self {
        Self { unreadable: Unseen::Flag, provider_state: Unseen::Flag, unknown_events: UnknownEvents::Judge }
    }
}

/// What to do with a request holding something Warden cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unseen {
    /// Forward it; the record lists what was not read.
    Allow,
    /// Forward it and flag the prompt decision (the record lists what was not read).
    Flag,
    /// Refuse the request with a 400 that says what could not be read.
    Refuse,
}

/// What to do with a stream event of a type the shape does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownEvents {
    /// Judge its strings like any other event's and pass it.
    Judge,
    /// Drop it (counted in the record).
    Drop,
    /// End the stream, as a block would.
    Cut,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            policies: PathBuf::from("policies"),
            upstreams: Upstreams::default(),
            passthrough: Vec::new(),
            tenant_header: "x-warden-tenant".into(),
            limits: Limits::default(),
            verify_key: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            admin_token_env: "WARDEN_ADMIN_TOKEN".into(),
            telemetry: warden_telemetry::TelemetryConfig::default(),
            upstream_probe: None,
            audit: warden_audit::AuditConfig::default(),
            watch_policies: true,
            coverage: Coverage::default(),
        }
    }
}

/// One upstream per API shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// For `/v1/chat/completions` and `/v1/completions`.
    pub openai: Upstream,
    /// For `/v1/messages`.
    pub anthropic: Upstream,
    /// For the Gemini routes (`/v1beta/models/...`).
    pub gemini: Upstream,
    /// For the Azure OpenAI routes (`/openai/...`); without it they are refused with a 502 that
    /// says to set it.
    pub azure: Option<Upstream>,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            openai: Upstream { url: "https://api.openai.com".into(), api_key_env: None },
            anthropic: Upstream { url: "https://api.anthropic.com".into(), api_key_env: None },
            gemini: Upstream { url: "https://generativelanguage.googleapis.com".into(), api_key_env: None },
            azure: None,
        }
    }
}

/// An upstream provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Base URL (scheme, host, optional port and path prefix); the request path is appended.
    pub url: String,
    /// If set, the name of an environment variable holding an API key that replaces the
    /// client's own credentials upstream. The key itself never appears in the config or logs.
    #[serde(default)]
    pub api_key_env: Option<String>,
}

/// Sizes and timeouts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body as sent (413 above).
    pub max_body_bytes: usize,
    /// Largest request body once decompressed (413 above).
    pub max_decompressed_bytes: usize,
    /// Largest non-streamed upstream answer (502 above).
    pub max_response_bytes: usize,
    /// Largest request head (HTTP/1 buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Time a client has to send its request head, counted from accept for a connection's first
    /// request: a silent connection is closed.
    pub header_read_timeout_ms: u64,
    /// Time a client has to send its request body (408 above).
    pub body_read_timeout_ms: u64,
    /// Time to connect to the upstream (502 above).
    pub connect_timeout_ms: u64,
    /// Time from sending the request to the upstream's response head (504 above).
    pub response_timeout_ms: u64,
    /// Longest silence between two pieces of an upstream answer (504, or an error event).
    pub stream_idle_timeout_ms: u64,
    /// Longest a whole exchange may take.
    pub total_timeout_ms: u64,
    /// How many requests may run costly detectors (classifier, plugins) at once; the rest wait
    /// their turn. 0: one per CPU core. At most 32.
    pub detector_workers: usize,
    /// Time one phase of a request may spend in costly detectors, counted from when it gets its
    /// detector permit (time queued for one is not counted); after it, rules not yet run count
    /// as failed (their `on_error` decides), so a request with thousands of messages cannot hold
    /// the detector pool.
    pub detector_budget_ms: u64,
    /// Requests that may wait for a detector permit at once; a request past it is shed (503).
    pub detector_queue: usize,
    /// Longest a request waits for a detector permit before it is shed (503): under load a
    /// request is told to come back, never refused as if its text were bad.
    pub detector_queue_timeout_ms: u64,
    /// Detector time one stream may use in all (its events are judged as they come); past it,
    /// the stream is cut with the provider's error event.
    pub stream_detector_budget_ms: u64,
    /// Upstream bytes one stream may carry; past it, the stream is cut with the provider's error
    /// event. An eighth of it bounds the tool-call arguments one stream may carry (they are
    /// kept whole until the stream ends, decoded, to be judged).
    pub max_stream_bytes: usize,
    /// Largest single SSE event (and so line) from the upstream; past it, the stream is cut.
    pub max_event_bytes: usize,
    /// Distinct texts (choices, content blocks, tool calls) one stream may open; past it, the
    /// stream is cut.
    pub max_stream_texts: usize,
    /// Longest `model` (and other identifier) a request may name (400 above).
    pub max_identifier_bytes: usize,
    /// Most strings one request body may hold (413 above).
    pub max_segments: usize,
    /// Most text, in bytes, one request may hold in all its strings (413 above).
    pub max_text_bytes: usize,
    /// Longest a client may leave a response unread (its socket or stream not draining); then
    /// the answer is cut and the upstream released.
    pub write_timeout_ms: u64,
    /// A keep-alive connection (HTTP/1.1 or HTTP/2) with no request in flight for this long is
    /// closed.
    pub idle_timeout_ms: u64,
    /// HTTP/2: how often an idle connection is pinged, and how long the answer may take.
    pub http2_keepalive_interval_ms: u64,
    /// HTTP/2: how long a keep-alive ping's answer may take before the connection is closed.
    pub http2_keepalive_timeout_ms: u64,
    /// HTTP/2: streams one connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// Client connections open at once; past it, new connections are closed at once.
    pub max_connections: usize,
    /// Upstream requests in flight at once (streams included); a request waits up to a second
    /// (at most `connect_timeout_ms`) for one, then is shed (503).
    pub max_upstream_connections: usize,
    /// Requests in flight at once; past it, requests are shed (503) at once.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_decompressed_bytes: 16 << 20,
            max_response_bytes: 32 << 20,
            max_header_bytes: 64 << 10,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            connect_timeout_ms: 5_000,
            response_timeout_ms: 120_000,
            stream_idle_timeout_ms: 60_000,
            total_timeout_ms: 600_000,
            detector_workers: 0,
            detector_budget_ms: 2_000,
            detector_queue: 64,
            detector_queue_timeout_ms: 1_000,
            stream_detector_budget_ms: 10_000,
            max_stream_bytes: 64 << 20,
            max_event_bytes: 8 << 20,
            max_stream_texts: 4_096,
            max_identifier_bytes: 256,
            max_segments: 16_384,
            max_text_bytes: 32 << 20,
            write_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            http2_keepalive_interval_ms: 20_000,
            http2_keepalive_timeout_ms: 10_000,
            http2_max_concurrent_streams: 64,
            max_connections: 4_096,
            max_upstream_connections: 1_024,
            max_in_flight: 1_024,
        }
    }
}

impl Limits {
    /// As a [`Duration`].
    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Refuses limits Warden cannot honour: texts are mapped with 32-bit offsets, so no text may
    /// reach 4 GiB, and a bound of 0 would refuse everything.
    pub fn validate(&self) -> Result<(), String> {
        const MAX: usize = 1 << 31;
        for (name, v) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_decompressed_bytes", self.max_decompressed_bytes),
            ("max_response_bytes", self.max_response_bytes),
            ("max_stream_bytes", self.max_stream_bytes),
            ("max_event_bytes", self.max_event_bytes),
            ("max_text_bytes", self.max_text_bytes),
        ] {
            if v == 0 || v > MAX {
                return Err(format!("limits.{name} is {v}; it must be between 1 and {MAX} (2 GiB)"));
            }
        }
        for (name, v) in [
            ("max_segments", self.max_segments),
            ("max_stream_texts", self.max_stream_texts),
            ("max_identifier_bytes", self.max_identifier_bytes),
            ("max_connections", self.max_connections),
            ("max_upstream_connections", self.max_upstream_connections),
            ("max_in_flight", self.max_in_flight),
        ] {
            if v == 0 {
                return Err(format!("limits.{name} is 0, which would refuse everything; raise it"));
            }
        }
        Ok(())
    }
}

/// The configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
}

impl Config {
    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let mut c: Config = serde_yaml::from_str(&text)
            .map_err(|e| ConfigError::Invalid { path: path.into(), message: e.to_string() })?;
        // Relative paths are relative to the config file.
        if let Some(dir) = path.parent() {
            if c.policies.is_relative() {
                c.policies = dir.join(&c.policies);
            }
            if let Some(k) = c.verify_key.as_mut().filter(|k| k.is_relative()) {
                *k = dir.join(&*k);
            }
        }
        Ok(c)
    }
}

/// `admin_listen`: an address, or `off`.
fn admin_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let s = Option::<String>::deserialize(d)?.unwrap_or_default();
    match s.trim() {
        "off" | "" => Ok(None),
        a => a.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("admin_listen `{a}` is not an address (HOST:PORT) or `off`"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_errors() {
        let e = serde_yaml::from_str::<Config>("listen: 127.0.0.1:1\nlimts: {}\n").unwrap_err();
        assert!(e.to_string().contains("limts"), "{e}");
    }

    #[test]
    fn limits_past_what_offsets_can_map_are_refused() {
        assert!(Limits::default().validate().is_ok());
        let l = Limits { max_stream_bytes: 5 << 30, ..Limits::default() };
        assert!(l.validate().unwrap_err().contains("max_stream_bytes"));
        let l = Limits { max_in_flight: 0, ..Limits::default() };
        assert!(l.validate().unwrap_err().contains("max_in_flight"));
    }

    #[test]
    fn partial_limits_keep_defaults() {
        let c: Config = serde_yaml::from_str("limits: { max_body_bytes: 10 }").unwrap();
        assert_eq!(c.limits.max_body_bytes, 10);
        assert_eq!(c.limits.connect_timeout_ms, Limits::default().connect_timeout_ms);
    }
}
