//! Decision records as OpenTelemetry log records (`telemetry.records: true`): every record goes
//! to the collector as a log record with the event name `warden.decision`, the record's JSON as
//! its body, its trace context, and a few attributes to route on. A Collector then forwards them
//! to any store or SIEM, beyond the local audit trail.
//!
//! Like spans, records are batched off the request path; a slow or absent collector costs
//! dropped records (`warden_records_dropped_total`, logged once), never latency.

use crate::config::{process_env, Protocol, TelemetryConfig};
use crate::traces::Queue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::InstrumentationScope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{
    BatchLogProcessor, LogBatch, LogExporter, LogProcessor, SdkLogRecord, SdkLogger, SdkLoggerProvider,
};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Duration;

/// The running record pipeline.
pub struct Records {
    provider: SdkLoggerProvider,
    logger: SdkLogger,
}

impl Records {
    /// Starts it when `telemetry.records` asks for it; `dropped` counts what never arrives.
    pub fn start(config: &TelemetryConfig, dropped: Counter) -> Result<Option<Records>, String> {
        if !config.records_on(&process_env) {
            return Ok(None);
        }
        let protocol = config.protocol(&process_env)?;
        let endpoint = config.endpoint_for(protocol, "/v1/logs")?;
        let exporter = crate::traces::otlp_exporter!(
            opentelemetry_otlp::LogExporter,
            protocol,
            endpoint.as_deref(),
            config,
            "record"
        )?;
        let queue = Arc::new(Queue {
            pending: AtomicUsize::new(0),
            max: config.max_queue,
            dropped,
            warned: AtomicBool::new(false),
            what: "decision records sent as OTLP logs (warden_records_dropped_total)",
        });
        let processor = BatchLogProcessor::builder(Counted { inner: exporter, queue: Arc::clone(&queue) }).build();
        let provider = SdkLoggerProvider::builder()
            .with_log_processor(Bounded { inner: processor, queue })
            .with_resource(crate::traces::resource(config))
            .build();
        let logger = provider.logger_with_scope(
            InstrumentationScope::builder("warden.decision").with_version(env!("CARGO_PKG_VERSION")).build(),
        );
        tracing::info!("shipping decision records as OTLP logs");
        Ok(Some(Records { provider, logger }))
    }

    /// Sends one record: `line` is its JSON; `trace` its trace and span id (hex), when traced.
    pub fn emit(
        &self,
        line: &str,
        request_id: &str,
        decision: &'static str,
        outcome: &'static str,
        trace: Option<(String, String)>,
    ) {
        let mut r = self.logger.create_log_record();
        r.set_event_name("warden.decision");
        r.set_severity_number(Severity::Info);
        r.set_severity_text("INFO");
        r.set_timestamp(std::time::SystemTime::now());
        r.set_body(AnyValue::String(line.to_string().into()));
        r.add_attribute("warden.request_id", request_id.to_string());
        r.add_attribute("warden.decision", decision);
        r.add_attribute("warden.outcome", outcome);
        if let Some((t, s)) = trace {
            if let (Ok(t), Ok(s)) =
                (opentelemetry::trace::TraceId::from_hex(&t), opentelemetry::trace::SpanId::from_hex(&s))
            {
                r.set_trace_context(t, s, Some(opentelemetry::trace::TraceFlags::SAMPLED));
            }
        }
        self.logger.emit(r);
    }

    /// Exports what is queued and stops, waiting at most `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        if let Err(e) = self.provider.shutdown_with_timeout(timeout) {
            tracing::warn!("decision records were not all shipped at shutdown: {e}");
        }
    }
}

/// The batch processor behind a bound Warden counts.
#[derive(Debug)]
struct Bounded {
    inner: BatchLogProcessor,
    queue: Arc<Queue>,
}

impl LogProcessor for Bounded {
    fn emit(&self, data: &mut SdkLogRecord, scope: &InstrumentationScope) {
        if self.queue.admit() {
            self.inner.emit(data, scope);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the batches that fail.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queue: Arc<Queue>,
}

impl<E: LogExporter> LogExporter for Counted<E> {
    fn export(&self, batch: LogBatch<'_>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let n = batch.iter().count();
        let export = self.inner.export(batch);
        let queue = Arc::clone(&self.queue);
        async move {
            let result = export.await;
            queue.exported(n, &result);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
