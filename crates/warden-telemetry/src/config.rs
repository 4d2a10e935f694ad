//! The `telemetry:` section of the configuration, and how it combines with the standard
//! `OTEL_*` variables.
//!
//! ```yaml
//! telemetry:
//!   traces: auto                  # auto | on | off. auto: on when an endpoint is set, here or in
//!                                 # OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
//!   endpoint: http://127.0.0.1:4318   # http/protobuf: a base URL (/v1/traces is added when it
//!                                     # has no path); grpc: the collector's address
//!   protocol: http/protobuf       # or grpc
//!   headers: { x-tenant: ops }    # sent to the collector (never logged)
//!   timeout_ms: 10000             # one export; past it the batch is dropped and counted
//!   service_name: warden
//!   sampler: parentbased_always_on    # the OTEL_TRACES_SAMPLER names
//!   sampler_arg: 1.0
//!   max_queue: 2048               # spans waiting for export; past it, spans are dropped and counted
//!   capture_content: false        # prompt and completion texts in spans (never credentials)
//!   records: false                # also ship every decision record as an OTLP log record
//! ```
//!
//! A field set here wins over its variable; a field left out takes the variable
//! (`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `..._PROTOCOL`, `..._HEADERS`, `..._TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`), then the
//! default. `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn traces off whatever the
//! file says.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The `telemetry:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Whether spans are exported.
    pub traces: Switch,
    /// The collector (see the module docs for the two protocols).
    pub endpoint: Option<String>,
    /// `http/protobuf` or `grpc`.
    pub protocol: Option<String>,
    /// Headers (or gRPC metadata) sent with every export.
    pub headers: BTreeMap<String, String>,
    /// Time allowed for one export, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `service.name` of the resource.
    pub service_name: Option<String>,
    /// The sampler, by its `OTEL_TRACES_SAMPLER` name.
    pub sampler: Option<String>,
    /// The sampler's argument (a ratio for the `traceidratio` samplers).
    pub sampler_arg: Option<f64>,
    /// Spans waiting for export at most.
    pub max_queue: usize,
    /// Put the prompt and completion texts into spans (`gen_ai.input.messages`,
    /// `gen_ai.output.messages`). Off by default: telemetry then holds no text.
    pub capture_content: bool,
    /// Ship every decision record as an OTLP log record (event `warden.decision`) to the same
    /// collector, so that it can forward them to any store. Off by default.
    pub records: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            traces: Switch::Auto,
            endpoint: None,
            protocol: None,
            headers: BTreeMap::new(),
            timeout_ms: None,
            service_name: None,
            sampler: None,
            sampler_arg: None,
            max_queue: 2048,
            capture_content: false,
            records: false,
        }
    }
}

/// On, off, or on when configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    /// On when an endpoint is configured (in the file or the environment).
    Auto,
    /// On (the default endpoint is `http://localhost:4318`).
    On,
    /// Off.
    Off,
}

/// The wire protocol to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
    /// OTLP over gRPC (port 4317).
    Grpc,
}

/// Reads a variable as the OpenTelemetry SDKs do (an empty value counts as unset).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl TelemetryConfig {
    /// Whether traces are exported, given the environment.
    pub fn traces_on(&self, env: Env<'_>) -> bool {
        let truthy = |n: &str| env(n).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if truthy("OTEL_SDK_DISABLED") || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return false;
        }
        match self.traces {
            Switch::On => true,
            Switch::Off => false,
            Switch::Auto => {
                self.endpoint.is_some()
                    || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                    || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            }
        }
    }

    /// Whether decision records are shipped as OTLP logs: `records: true`, with a collector
    /// configured (as for traces), unless `OTEL_SDK_DISABLED=true` or `OTEL_LOGS_EXPORTER=none`.
    pub fn records_on(&self, env: Env<'_>) -> bool {
        let truthy = |n: &str| env(n).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        self.records
            && !truthy("OTEL_SDK_DISABLED")
            && env("OTEL_LOGS_EXPORTER").is_none_or(|v| v.trim() != "none")
            && (self.traces == Switch::On
                || self.endpoint.is_some()
                || env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT").is_some()
                || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some())
    }

    /// The protocol: the file's, else `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else HTTP/protobuf.
    pub fn protocol(&self, env: Env<'_>) -> Result<Protocol, String> {
        let (name, where_) = match &self.protocol {
            Some(p) => (p.clone(), "telemetry.protocol"),
            None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
                Some(p) => (p, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"),
                None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
                    Some(p) => (p, "OTEL_EXPORTER_OTLP_PROTOCOL"),
                    None => return Ok(Protocol::HttpProtobuf),
                },
            },
        };
        match name.trim() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            other => Err(format!("{where_} is `{other}`; Warden exports traces over `http/protobuf` or `grpc`")),
        }
    }

    /// The endpoint given to the exporter: the file's (for HTTP, `/v1/traces` added to a URL
    /// with no path), or `None` to let the exporter read the variables.
    pub fn endpoint(&self, protocol: Protocol) -> Result<Option<String>, String> {
        self.endpoint_for(protocol, "/v1/traces")
    }

    /// The endpoint of a signal (`/v1/traces`, `/v1/logs`): for HTTP, the file's base URL with
    /// the signal's path (a URL ending in `/v1/traces` gets its path swapped; any other path is
    /// used as is).
    pub fn endpoint_for(&self, protocol: Protocol, signal: &str) -> Result<Option<String>, String> {
        let Some(e) = self.endpoint.as_deref().map(str::trim) else { return Ok(None) };
        let uri: http::Uri = e
            .parse()
            .map_err(|err| format!("telemetry.endpoint `{e}` is not a URL ({err}); write http://HOST:PORT"))?;
        if uri.scheme().is_none() || uri.host().is_none() {
            return Err(format!("telemetry.endpoint `{e}` needs a scheme and a host: http://HOST:PORT"));
        }
        Ok(Some(match protocol {
            Protocol::HttpProtobuf if matches!(uri.path(), "" | "/") => {
                format!("{}{signal}", e.trim_end_matches('/'))
            }
            Protocol::HttpProtobuf if uri.path() == "/v1/traces" => {
                format!("{}{signal}", e.trim_end_matches("/v1/traces"))
            }
            _ => e.to_string(),
        }))
    }

    /// The service name, unless the environment names one (then the SDK's detectors take it).
    pub fn service_name(&self, env: Env<'_>) -> Option<String> {
        if let Some(s) = &self.service_name {
            return Some(s.clone());
        }
        let in_attributes = env("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.split(',').any(|kv| kv.trim_start().starts_with("service.name=")));
        (env("OTEL_SERVICE_NAME").is_none() && !in_attributes).then(|| "warden".to_string())
    }

    /// Checks what can be checked before starting.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(r) = self.sampler_arg {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("telemetry.sampler_arg is {r}; a ratio between 0 and 1"));
            }
        }
        if let Some(s) = &self.sampler {
            if crate::traces::sampler(s, self.sampler_arg).is_none() {
                return Err(format!(
                    "telemetry.sampler `{s}` is not one of always_on, always_off, traceidratio, \
                     parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
                ));
            }
        }
        if self.max_queue == 0 {
            return Err("telemetry.max_queue must be at least 1".into());
        }
        for k in self.headers.keys() {
            http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("telemetry.headers: `{k}` is not a valid header name"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.to_string())
    }

    #[test]
    fn auto_follows_the_endpoint_variables_and_disabled_wins() {
        let c = TelemetryConfig::default();
        assert!(!c.traces_on(&env_of(&[])));
        assert!(c.traces_on(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
        assert!(c.traces_on(&env_of(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/v1/traces")])));
        let on = TelemetryConfig { traces: Switch::On, ..Default::default() };
        assert!(on.traces_on(&env_of(&[])));
        assert!(!on.traces_on(&env_of(&[("OTEL_SDK_DISABLED", "TRUE")])));
        assert!(!on.traces_on(&env_of(&[("OTEL_TRACES_EXPORTER", "none")])));
        let with_endpoint = TelemetryConfig { endpoint: Some("http://c:4318".into()), ..Default::default() };
        assert!(with_endpoint.traces_on(&env_of(&[])));
        let off = TelemetryConfig { traces: Switch::Off, ..with_endpoint };
        assert!(!off.traces_on(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
    }

    #[test]
    fn records_ship_only_when_asked_and_a_collector_is_configured() {
        let asked = TelemetryConfig { records: true, ..Default::default() };
        assert!(!asked.records_on(&env_of(&[])));
        assert!(asked.records_on(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])));
        assert!(!asked
            .records_on(&env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_LOGS_EXPORTER", "none")])));
        let not_asked = TelemetryConfig { endpoint: Some("http://c:4318".into()), ..Default::default() };
        assert!(!not_asked.records_on(&env_of(&[])));
    }

    #[test]
    fn protocol_from_the_file_then_the_signal_variable_then_the_general_one() {
        let c = TelemetryConfig::default();
        assert_eq!(c.protocol(&env_of(&[])).unwrap(), Protocol::HttpProtobuf);
        let env = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(c.protocol(&env).unwrap(), Protocol::Grpc);
        let env =
            env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"), ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")]);
        assert_eq!(c.protocol(&env).unwrap(), Protocol::HttpProtobuf);
        let file = TelemetryConfig { protocol: Some("grpc".into()), ..Default::default() };
        assert_eq!(file.protocol(&env).unwrap(), Protocol::Grpc);
        let err = c.protocol(&env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && err.contains("http/json"), "{err}");
    }

    #[test]
    fn an_http_base_url_gets_the_traces_path() {
        let c = |e: &str| TelemetryConfig { endpoint: Some(e.into()), ..Default::default() };
        assert_eq!(c("http://h:4318").endpoint(Protocol::HttpProtobuf).unwrap().unwrap(), "http://h:4318/v1/traces");
        assert_eq!(c("http://h:4318/").endpoint(Protocol::HttpProtobuf).unwrap().unwrap(), "http://h:4318/v1/traces");
        assert_eq!(
            c("http://h:4318/custom").endpoint(Protocol::HttpProtobuf).unwrap().unwrap(),
            "http://h:4318/custom"
        );
        assert_eq!(c("http://h:4317").endpoint(Protocol::Grpc).unwrap().unwrap(), "http://h:4317");
        assert!(c("h:4318").endpoint(Protocol::HttpProtobuf).is_err());
        assert_eq!(TelemetryConfig::default().endpoint(Protocol::Grpc).unwrap(), None);
        // Decision records go to the same collector's logs path.
        assert_eq!(
            c("http://h:4318").endpoint_for(Protocol::HttpProtobuf, "/v1/logs").unwrap().unwrap(),
            "http://h:4318/v1/logs"
        );
        assert_eq!(
            c("http://h:4318/v1/traces").endpoint_for(Protocol::HttpProtobuf, "/v1/logs").unwrap().unwrap(),
            "http://h:4318/v1/logs"
        );
    }

    #[test]
    fn the_service_name_defaults_to_warden_unless_the_environment_names_one() {
        let c = TelemetryConfig::default();
        assert_eq!(c.service_name(&env_of(&[])).as_deref(), Some("warden"));
        assert_eq!(c.service_name(&env_of(&[("OTEL_SERVICE_NAME", "edge")])), None);
        assert_eq!(c.service_name(&env_of(&[("OTEL_RESOURCE_ATTRIBUTES", "a=b, service.name=edge")])), None);
        let named = TelemetryConfig { service_name: Some("gw".into()), ..Default::default() };
        assert_eq!(named.service_name(&env_of(&[("OTEL_SERVICE_NAME", "edge")])).as_deref(), Some("gw"));
    }

    #[test]
    fn bad_values_are_named() {
        let c = TelemetryConfig { sampler: Some("sometimes".into()), ..Default::default() };
        assert!(c.validate().unwrap_err().contains("sometimes"));
        let c = TelemetryConfig { sampler_arg: Some(2.0), ..Default::default() };
        assert!(c.validate().unwrap_err().contains("sampler_arg"));
        let c = TelemetryConfig { max_queue: 0, ..Default::default() };
        assert!(c.validate().is_err());
    }
}
