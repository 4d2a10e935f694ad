//! Warden's fuzz targets: the code lives in [`targets`], shared with the corpus replay test
//! (`crates/warden-proxy/tests/fuzz_corpora.rs`); each binary in `fuzz_targets/` only calls it.
//! Run them with `make fuzz` (see the README's testing section).

pub mod targets;
