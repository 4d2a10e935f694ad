//! The log set-up: `tracing` to stderr, text (coloured on a terminal) or JSON lines.
//!
//! Lines written while a request is served carry its span, `request{request_id=… trace_id=…}`
//! (in JSON: the `span` and `spans` fields), so every line of a request can be found by either
//! id. `WARDEN_LOG` filters the logs (`info` by default, `warn`, `warden_proxy=debug`...).
//!
//! Decision records (target `warden::record`) go through a layer of their own that no
//! `WARDEN_LOG` setting switches off: they are evidence, not chatter.

use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The target of decision records.
pub const RECORD_TARGET: &str = "warden::record";
/// The target of the access log (one line per request).
pub const ACCESS_TARGET: &str = "warden::access";

/// Installs the global subscriber. `format` is `text` or `json`.
pub fn init(format: &str) -> Result<(), String> {
    let json = match format {
        "json" => true,
        "text" => false,
        other => return Err(format!("--log-format must be text or json, not `{other}`")),
    };
    let filter = EnvFilter::try_from_env("WARDEN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // The records have their own layer: the log filter never sees them.
    let logs_filter = filter.add_directive(format!("{RECORD_TARGET}=off").parse().expect("a valid directive"));
    let records_filter = Targets::new().with_target(RECORD_TARGET, LevelFilter::INFO);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry();
    let result = if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_filter(logs_filter))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_writer(std::io::stderr)
                    .with_filter(records_filter),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(logs_filter),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr)
                    .with_filter(records_filter),
            )
            .try_init()
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}
