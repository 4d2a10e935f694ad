//! The fuzz corpora as regression tests: every committed input of every fuzz target
//! (`fuzz/corpus/<target>/`, hand-made seeds from the recorded provider answers and what the
//! fuzzer found) is replayed through the targets' own code (`fuzz/src/targets.rs`, included
//! here as a module), without a fuzzer or a nightly toolchain: no input may panic or break an
//! invariant the target asserts. `make fuzz` runs the fuzzer itself.

#[allow(dead_code)]
#[path = "../../../fuzz/src/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(name)
}

/// Replays every input of one target; fails naming each input that panicked.
fn replay(name: &str) {
    let (_, run) = targets::TARGETS.iter().find(|(n, _)| *n == name).expect("a target of that name");
    let dir = corpus(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz/corpus/{name} has no inputs");
    let failed: Vec<String> = files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("a corpus file");
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect();
    assert!(failed.is_empty(), "{} of {} inputs of fuzz/corpus/{name} fail: {failed:?}", failed.len(), files.len());
}

#[test]
fn every_target_has_a_corpus_and_a_binary() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, _) in targets::TARGETS {
        assert!(corpus(name).is_dir(), "fuzz/corpus/{name} is missing");
        assert!(
            root.join("fuzz_targets").join(format!("{name}.rs")).is_file(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
    }
    let dirs = std::fs::read_dir(root.join("corpus")).expect("fuzz/corpus").count();
    assert_eq!(dirs, targets::TARGETS.len(), "fuzz/corpus has a directory no target reads");
}

#[test]
fn sse_corpus() {
    replay("sse");
}

#[test]
fn body_corpus() {
    replay("body");
}

#[test]
fn request_corpus() {
    replay("request");
}

#[test]
fn completion_corpus() {
    replay("completion");
}

#[test]
fn stream_corpus() {
    replay("stream");
}

#[test]
fn jsontext_corpus() {
    replay("jsontext");
}

#[test]
fn normalize_corpus() {
    replay("normalize");
}
