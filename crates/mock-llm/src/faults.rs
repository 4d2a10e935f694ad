//! Per-request controls read from `x-mock-*` headers: faults, streaming
//! granularity, delays, compression and the status of replayed answers.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::headers;

/// Default number of characters per streamed text delta.
pub const DEFAULT_CHUNK_CHARS: usize = 8;

/// A fault to inject, from the `x-mock-fault` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault: answer normally.
    None,
    /// `500`: HTTP 500 in the provider's error shape.
    ServerError,
    /// `reset-mid-stream`: send about half the answer, then abort the
    /// connection.
    ResetMidStream,
    /// `stall`: never answer.
    Stall,
}

/// The `x-mock-*` controls of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Controls {
    pub fault: Fault,
    /// Characters per text delta (`x-mock-chunk`).
    pub chunk: usize,
    /// Sleep between deltas (`x-mock-delay-ms`).
    pub delay: Duration,
    /// Write the body in pieces of this many bytes (`x-mock-byte-split`).
    pub byte_split: Option<usize>,
    /// Gzip the non-streamed answer (`x-mock-gzip`).
    pub gzip: bool,
    /// Status of a raw or replayed answer (`x-mock-status`).
    pub status: Option<StatusCode>,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            fault: Fault::None,
            chunk: DEFAULT_CHUNK_CHARS,
            delay: Duration::ZERO,
            byte_split: None,
            gzip: false,
            status: None,
        }
    }
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| format!("{name}: header value is not ASCII")),
    }
}

fn header_num(h: &HeaderMap, name: &str) -> Result<Option<u64>, String> {
    match header_str(h, name)? {
        None => Ok(None),
        Some(s) => {
            s.parse::<u64>().map(Some).map_err(|_| format!("{name}: expected a non-negative integer, got {s:?}"))
        }
    }
}

impl Controls {
    /// Reads the controls; an invalid value is an error message (answered
    /// with a 400 so test mistakes are loud).
    pub(crate) fn from_headers(h: &HeaderMap) -> Result<Self, String> {
        let mut c = Controls::default();
        if let Some(f) = header_str(h, headers::FAULT)? {
            c.fault = match f.to_ascii_lowercase().as_str() {
                "" | "none" => Fault::None,
                "500" => Fault::ServerError,
                "reset-mid-stream" => Fault::ResetMidStream,
                "stall" => Fault::Stall,
                other => {
                    return Err(format!(
                        "{}: unknown fault {other:?} (expected 500, reset-mid-stream or stall)",
                        headers::FAULT
                    ))
                }
            };
        }
        if let Some(n) = header_num(h, headers::CHUNK)? {
            if n == 0 {
                return Err(format!("{}: must be at least 1", headers::CHUNK));
            }
            c.chunk = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(ms) = header_num(h, headers::DELAY_MS)? {
            c.delay = Duration::from_millis(ms);
        }
        if let Some(n) = header_num(h, headers::BYTE_SPLIT)? {
            if n == 0 {
                return Err(format!("{}: must be at least 1", headers::BYTE_SPLIT));
            }
            c.byte_split = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(g) = header_str(h, headers::GZIP)? {
            c.gzip = matches!(g.to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        }
        if let Some(n) = header_num(h, headers::STATUS)? {
            let status = u16::try_from(n)
                .ok()
                .filter(|n| (100..=599).contains(n))
                .and_then(|n| StatusCode::from_u16(n).ok())
                .ok_or_else(|| format!("{}: expected an HTTP status from 100 to 599, got {n}", headers::STATUS))?;
            c.status = Some(status);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn parse_controls() {
        assert_eq!(Controls::from_headers(&HeaderMap::new()).expect("ok"), Controls::default());
        let mut h = HeaderMap::new();
        h.insert("x-mock-fault", HeaderValue::from_static("reset-mid-stream"));
        h.insert("x-mock-chunk", HeaderValue::from_static("3"));
        h.insert("x-mock-delay-ms", HeaderValue::from_static("5"));
        h.insert("x-mock-byte-split", HeaderValue::from_static("7"));
        h.insert("x-mock-gzip", HeaderValue::from_static("1"));
        let c = Controls::from_headers(&h).expect("ok");
        assert_eq!(c.fault, Fault::ResetMidStream);
        assert_eq!(c.chunk, 3);
        assert_eq!(c.delay, Duration::from_millis(5));
        assert_eq!(c.byte_split, Some(7));
        assert!(c.gzip);

        let mut bad = HeaderMap::new();
        bad.insert("x-mock-fault", HeaderValue::from_static("explode"));
        assert!(Controls::from_headers(&bad).is_err());
        let mut bad = HeaderMap::new();
        bad.insert("x-mock-chunk", HeaderValue::from_static("0"));
        assert!(Controls::from_headers(&bad).is_err());

        let mut h = HeaderMap::new();
        h.insert("x-mock-status", HeaderValue::from_static("429"));
        assert_eq!(Controls::from_headers(&h).expect("ok").status, Some(StatusCode::TOO_MANY_REQUESTS));
        for bad in ["99", "600", "abc"] {
            let mut h = HeaderMap::new();
            h.insert("x-mock-status", HeaderValue::from_static(bad));
            assert!(Controls::from_headers(&h).is_err(), "{bad}");
        }
    }
}
