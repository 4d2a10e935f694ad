//! Counters the costly detectors keep about themselves (classifier cache, plugin failures),
//! process-wide. The metrics endpoint reads them when it is scraped; nothing here formats or
//! exports anything.

use std::sync::atomic::{AtomicU64, Ordering};

/// Classifier results served from the model's result cache.
pub static CLASSIFIER_CACHE_HITS: AtomicU64 = AtomicU64::new(0);
/// Classifier results that ran the model.
pub static CLASSIFIER_CACHE_MISSES: AtomicU64 = AtomicU64::new(0);

/// Why a plugin call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginFailure {
    /// It ran past its time limit.
    Timeout,
    /// It asked for more memory than its cap.
    Memory,
    /// It trapped (unreachable, out-of-bounds access...).
    Trap,
    /// It answered something invalid (a span outside the text, too many spans).
    InvalidAnswer,
    /// Any other failure of the call.
    Other,
}

impl PluginFailure {
    /// Every kind, in the order of [`PluginFailure::index`].
    pub const ALL: [PluginFailure; 5] = [
        PluginFailure::Timeout,
        PluginFailure::Memory,
        PluginFailure::Trap,
        PluginFailure::InvalidAnswer,
        PluginFailure::Other,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginFailure::Timeout => "timeout",
            PluginFailure::Memory => "memory",
            PluginFailure::Trap => "trap",
            PluginFailure::InvalidAnswer => "invalid_answer",
            PluginFailure::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

static PLUGIN_FAILURES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Counts one failed plugin call.
pub fn plugin_failed(kind: PluginFailure) {
    PLUGIN_FAILURES[kind.index()].fetch_add(1, Ordering::Relaxed);
}

/// Failed plugin calls of `kind` since the process started.
pub fn plugin_failures(kind: PluginFailure) -> u64 {
    PLUGIN_FAILURES[kind.index()].load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_counts_apart() {
        let before: Vec<u64> = PluginFailure::ALL.iter().map(|k| plugin_failures(*k)).collect();
        plugin_failed(PluginFailure::Trap);
        plugin_failed(PluginFailure::Trap);
        plugin_failed(PluginFailure::Timeout);
        let after: Vec<u64> = PluginFailure::ALL.iter().map(|k| plugin_failures(*k)).collect();
        assert_eq!(after[0] - before[0], 1);
        assert_eq!(after[2] - before[2], 2);
        assert_eq!(after[1] - before[1], 0);
    }
}
