//! What the costly detectors (the classifier, plugins) share about the things they load: where
//! Warden keeps files between runs, and loading each distinct file only once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

/// Warden's cache directory: `$WARDEN_CACHE`, else `$HOME/.cache/warden`; `None` when neither
/// is set. ONNX Runtime and compiled plugins live under it (and the Makefile's cargo target).
pub fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("WARDEN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/warden")))
}

/// Loaded things by the digest of their bytes, held weakly: loading the same bytes again while
/// the first is still in use (a policy reload, two rules naming one file) returns it instead of
/// building it twice, and what nothing uses any more is forgotten.
#[derive(Debug)]
pub struct ByDigest<T> {
    loaded: Mutex<HashMap<String, Weak<T>>>,
}

impl<T> Default for ByDigest<T> {
    fn default() -> Self {
        Self { loaded: Mutex::new(HashMap::new()) }
    }
}

impl<T> ByDigest<T> {
    /// The thing loaded from bytes with `digest`, or a new one from `load`. Loads run one at a
    /// time, so two callers never build the same thing twice.
    pub fn get_or_load<E>(&self, digest: &str, load: impl FnOnce() -> Result<T, E>) -> Result<Arc<T>, E> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = loaded.get(digest).and_then(Weak::upgrade) {
            return Ok(t);
        }
        let t = Arc::new(load()?);
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.insert(digest.to_string(), Arc::downgrade(&t));
        Ok(t)
    }
}
