//! Criterion benchmarks of the costly detectors: the ONNX classifier (per text, cold and from
//! its cache) and a WebAssembly plugin call (a fresh instance per call, as in production).
//!
//! `cargo bench -p warden-benches --bench detectors` (see `benches/README.md`). Needs ONNX
//! Runtime and the example plugins: `make bench` sets both up.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warden_benches::prompt;
use warden_classifier::{ClassifierDetector, Model};
use warden_core::{Detector, ScanText};
use warden_plugins::{Host, HostConfig, Input, Limits, Phase, Role};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn classifier(c: &mut Criterion) {
    let bytes = std::fs::read(repo().join("policies/models/guard-classifier.onnx")).expect("the model");
    let model = Model::load("guard-classifier.onnx", &bytes).expect("ONNX Runtime: run scripts/setup-ort.sh");
    let det = ClassifierDetector::new(Arc::clone(&model), &[("injection".into(), 0.9)]).unwrap();
    let text = prompt(1024, 7);
    let mut g = c.benchmark_group("classifier");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    // A different text each iteration, so the cache never answers: the model's own cost,
    // normalisation included.
    let n = AtomicU64::new(0);
    g.bench_function("1 KB prompt, uncached", |b| {
        b.iter(|| {
            let t = format!("{} {}", n.fetch_add(1, Ordering::Relaxed), text);
            black_box(det.scan(&ScanText::new(&t)).unwrap())
        })
    });
    // The same text as one window (how every text was scored before sentence windows): what the
    // windows add.
    g.bench_function("1 KB prompt, uncached, scored whole", |b| {
        b.iter(|| {
            let t = format!("{} {}", n.fetch_add(1, Ordering::Relaxed), text);
            black_box(model.classify(warden_core::normalize::normalize(&t).text()).unwrap())
        })
    });
    // A 4 KB document (a tool result, a RAG page): per window, the windows in one batch.
    let doc = prompt(4096, 11);
    g.bench_function("4 KB document, uncached", |b| {
        b.iter(|| {
            let t = format!("{} {}", n.fetch_add(1, Ordering::Relaxed), doc);
            black_box(det.scan(&ScanText::new(&t)).unwrap())
        })
    });
    g.bench_function("1 KB prompt, cached (a repeated system prompt or document)", |b| {
        b.iter(|| black_box(det.scan(&ScanText::new(&text)).unwrap()))
    });
    g.finish();
}

fn plugin(c: &mut Criterion) {
    let host = Arc::new(Host::new(HostConfig { cache_dir: None }));
    let wasm = std::fs::read(repo().join("plugins/build/link-guard.wasm")).expect("run scripts/build-plugins.sh");
    let p = host.load("link-guard", &wasm).unwrap();
    let input = Input {
        phase: Phase::Completion,
        role: Role::Assistant,
        text: format!("{} see https://evil.test/x", prompt(1024, 7)),
        model: "gpt-4o".into(),
        tenant: "t".into(),
        config: r#"{"allowed_hosts": ["docs.python.org"]}"#.into(),
    };
    let mut g = c.benchmark_group("plugin");
    g.sample_size(50).measurement_time(Duration::from_secs(5));
    g.bench_function("link-guard on 1 KB, fresh instance per call", |b| {
        b.iter(|| black_box(p.evaluate(&input, &Limits::default()).unwrap()))
    });
    g.bench_function("compile link-guard (no disk cache)", |b| {
        b.iter(|| {
            let h = Arc::new(Host::new(HostConfig { cache_dir: None }));
            black_box(h.load("link-guard", &wasm).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, classifier, plugin);
criterion_main!(benches);
