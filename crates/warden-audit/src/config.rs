//! The `audit:` section of the configuration.
//!
//! ```yaml
//! audit:
//!   dir: /var/lib/warden/audit      # or `warden serve --audit-dir DIR`; no dir: no trail
//!   records: all                    # all | findings (only requests with a finding; failures always)
//!   privacy: hash                   # hash (sha256 of each text) | excerpt (the matched spans) | full
//!   fsync: batch                    # always (before the answer is released) | batch | never
//!   batch_records: 256              # fsync: batch: after this many records...
//!   batch_ms: 50                    # ...or this long, whichever comes first
//!   queue: 4096                     # records waiting for the writer
//!   backpressure: block             # block (the request waits for room) | shed (counted, checkpointed)
//!   on_failure: closed              # closed (refuse requests with 503 while the trail cannot be written) | open
//!   segment_bytes: 67108864         # rotate a segment past this size...
//!   segment_secs: 86400             # ...or this age
//!   checkpoint_records: 1000        # a signed checkpoint every N records...
//!   checkpoint_secs: 10             # ...or T seconds (when something was written)
//!   key_file: audit.key             # ed25519 private key (warden keygen); without it, checkpoints are unsigned
//!   retain_days: 200                # delete segments older than this (0: keep all); recorded in the chain
//!   retain_bytes: 0                 # and beyond this total size (0: no bound)
//! ```

use serde::Deserialize;
use std::path::PathBuf;

/// The `audit:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The trail's directory; none: no trail.
    pub dir: Option<PathBuf>,
    /// Which requests are recorded.
    pub records: Records,
    /// How much text a record holds.
    pub privacy: Privacy,
    /// When records reach the disk.
    pub fsync: Fsync,
    /// `fsync: batch`: records per fsync at most.
    pub batch_records: usize,
    /// `fsync: batch`: milliseconds between fsyncs at most.
    pub batch_ms: u64,
    /// Records waiting for the writer at most.
    pub queue: usize,
    /// What a request does when the queue is full.
    pub backpressure: Backpressure,
    /// What requests get while the trail cannot be written.
    pub on_failure: OnFailure,
    /// Segment size that starts a new segment.
    pub segment_bytes: u64,
    /// Segment age (seconds) that starts a new segment.
    pub segment_secs: u64,
    /// Records between signed checkpoints.
    pub checkpoint_records: u64,
    /// Seconds between signed checkpoints (if anything was written).
    pub checkpoint_secs: u64,
    /// The ed25519 private key that signs checkpoints.
    pub key_file: Option<PathBuf>,
    /// Segments older than this many days are deleted (0: never).
    pub retain_days: u64,
    /// Oldest segments are deleted while the trail is larger than this (0: no bound).
    pub retain_bytes: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            dir: None,
            records: Records::All,
            privacy: Privacy::Hash,
            fsync: Fsync::Batch,
            batch_records: 256,
            batch_ms: 50,
            queue: 4096,
            backpressure: Backpressure::Block,
            on_failure: OnFailure::Closed,
            segment_bytes: 64 << 20,
            segment_secs: 86_400,
            checkpoint_records: 1000,
            checkpoint_secs: 10,
            key_file: None,
            retain_days: 0,
            retain_bytes: 0,
        }
    }
}

/// Which requests are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Records {
    /// Every request.
    All,
    /// Requests with a finding, and every failure.
    Findings,
}

/// How much text a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Privacy {
    /// The sha256 of each text.
    Hash,
    /// The matched spans with a little context, and the hashes.
    Excerpt,
    /// The texts.
    Full,
}

/// When records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// Before the answer is released: a client that got an answer has its record on disk.
    Always,
    /// Every `batch_records` records or `batch_ms`.
    Batch,
    /// Left to the operating system.
    Never,
}

/// What a request does when the writer's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backpressure {
    /// Waits for room.
    Block,
    /// Drops its record; the drop is counted and named in the next checkpoint.
    Shed,
}

/// What requests get while the trail cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// 503 in the provider's shape: nothing is served that cannot be recorded.
    Closed,
    /// Served; the failure shows in logs, metrics and `/readyz`.
    Open,
}

impl AuditConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("batch_records", self.batch_records as u64),
            ("batch_ms", self.batch_ms),
            ("queue", self.queue as u64),
            ("segment_bytes", self.segment_bytes),
            ("segment_secs", self.segment_secs),
            ("checkpoint_records", self.checkpoint_records),
            ("checkpoint_secs", self.checkpoint_secs),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("audit.{name} must be above 0"));
            }
        }
        Ok(())
    }
}
