//! # warden-telemetry: what Warden tells its operators
//!
//! - [`traces`]: OpenTelemetry spans over OTLP (HTTP/protobuf or gRPC), batched off the request
//!   path, with the W3C trace context continued from the caller and carried to the upstream;
//! - [`metrics`]: the Prometheus metrics of the admin listener;
//! - [`logs`]: the `tracing` set-up (text or JSON), with decision records that no log filter
//!   drops;
//! - [`names`]: the attribute and event names Warden writes, after the OpenTelemetry GenAI
//!   semantic conventions where they have one.
//!
//! The proxy decides what goes into a span; this crate only knows how to start, fill, export and
//! count. Nothing here sees a request body, and no function takes a header value other than the
//! trace context.
#![deny(missing_docs)]

pub mod config;
pub mod logs;
pub mod metrics;
pub mod names;
pub mod records;
pub mod traces;

pub use config::TelemetryConfig;
pub use metrics::Metrics;
pub use opentelemetry::trace::SpanKind;
pub use opentelemetry::{Array, KeyValue, StringValue, Value};
pub use traces::{SpanCx, Traces};

use std::time::Duration;

/// Traces (when on) and metrics, shared by every request.
pub struct Telemetry {
    /// The metrics.
    pub metrics: Metrics,
    traces: Option<Traces>,
    records: Option<records::Records>,
    /// Whether spans may carry prompt and completion texts.
    pub capture_content: bool,
}

impl Telemetry {
    /// Starts what `config` and the environment ask for. Call it inside the Tokio runtime.
    pub fn start(config: &TelemetryConfig) -> Result<Self, String> {
        let metrics = Metrics::new();
        let traces = Traces::start(config, metrics.spans_dropped.clone())?;
        let records = records::Records::start(config, metrics.records_dropped.clone())?;
        Ok(Telemetry { metrics, traces, records, capture_content: config.capture_content })
    }

    /// Metrics only, no traces (tests, tools).
    pub fn metrics_only() -> Self {
        Telemetry { metrics: Metrics::new(), traces: None, records: None, capture_content: false }
    }

    /// The trace pipeline, when traces are on.
    pub fn traces(&self) -> Option<&Traces> {
        self.traces.as_ref()
    }

    /// The decision-record pipeline, when `telemetry.records` is on.
    pub fn records(&self) -> Option<&records::Records> {
        self.records.as_ref()
    }

    /// Starts the SERVER span of a request, continuing the caller's trace from `headers`.
    pub fn server_span(&self, name: String, headers: &http::HeaderMap) -> SpanCx {
        match &self.traces {
            Some(t) => SpanCx::start(t.tracer(), name, SpanKind::Server, &t.extract(headers)),
            None => SpanCx::none(),
        }
    }

    /// Starts a child of `parent`.
    pub fn child(&self, parent: &SpanCx, name: impl Into<std::borrow::Cow<'static, str>>, kind: SpanKind) -> SpanCx {
        parent.child(self.traces.as_ref().map(|t| t.tracer()), name, kind)
    }

    /// Exports what is queued, waiting at most `timeout`; call once, at shutdown.
    pub fn shutdown(&self, timeout: Duration) {
        if let Some(r) = &self.records {
            r.shutdown(timeout);
        }
        if let Some(t) = &self.traces {
            t.shutdown(timeout);
        }
    }
}
