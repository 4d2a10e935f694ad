//! Criterion benchmarks of Warden's inline guard: normalisation, the 10,000-phrase Aho-Corasick
//! scan (whole text and streamed) and one prompt through the repository's own policies.
//!
//! `cargo bench -p warden-benches --bench phrases` (see `benches/README.md`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use warden_benches::{chunks, phrases, prompt, text};
use warden_core::normalize::normalize;
use warden_core::phrases::PhraseSet;
use warden_core::{Action, Phase, Provider, Role, StreamScanner};
use warden_policy::{PolicySet, Target};

const MB: usize = 1 << 20;
const PHRASES: usize = 10_000;
const DELTA: usize = 16;

/// 1 MB of mixed text with a trigger planted about every 64 KB.
fn corpus() -> String {
    text(MB, 64 << 10, 42)
}

fn phrase_set() -> PhraseSet {
    PhraseSet::new(phrases(PHRASES, 1), false).expect("the generated phrases compile")
}

fn long_group<'a>(
    c: &'a mut Criterion,
    name: &str,
    bytes: usize,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Bytes(bytes as u64));
    g
}

/// (a) Normalisation alone (NFKD, case fold, confusables, offset map).
fn bench_normalize(c: &mut Criterion) {
    let t = corpus();
    let mut g = long_group(c, "normalize", t.len());
    g.bench_function("1MB_mixed", |b| b.iter(|| normalize(black_box(&t))));
    g.finish();
}

/// (b) Whole-text scan with 10,000 phrases: the automaton alone on pre-normalised text, and the
/// full `find` (normalise, then scan).
fn bench_scan(c: &mut Criterion) {
    let t = corpus();
    let set = phrase_set();
    let n = normalize(&t);
    let hits = set.find(&t);
    assert_eq!(hits, set.find_normalized(&t, &n));
    eprintln!(
        "phrases: {} phrases, corpus {} bytes ({} normalised, {:.1}% non-ASCII bytes), {} hits",
        set.len(),
        t.len(),
        n.text().len(),
        100.0 * t.bytes().filter(|b| !b.is_ascii()).count() as f64 / t.len() as f64,
        hits.len()
    );
    let mut g = long_group(c, "phrases_10k", t.len());
    g.bench_function("raw", |b| b.iter(|| set.find_normalized(black_box(&t), black_box(&n))));
    g.bench_function("with_normalisation", |b| b.iter(|| set.find(black_box(&t))));
    g.finish();

    let list = phrases(PHRASES, 1);
    let mut g = c.benchmark_group("phrases_compile");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    g.bench_function("10k", |b| b.iter(|| PhraseSet::new(black_box(&list).iter().cloned(), false).unwrap()));
    g.finish();
}

/// (c) The stream scanner fed 16-byte deltas, asking `safe_until` after each as the stream guard
/// does.
fn bench_stream(c: &mut Criterion) {
    let t = corpus();
    let set = Arc::new(phrase_set());
    let deltas = chunks(&t, DELTA);
    let whole = set.find(&t).len();
    let streamed = {
        let mut s = set.stream();
        let mut n = deltas.iter().map(|d| s.push(d).len()).sum::<usize>();
        n += s.finish().len();
        n
    };
    // The stream reports overlapping matches too, so it finds at least what the whole scan does.
    assert!(streamed >= whole, "stream found {streamed}, whole text {whole}");
    let mut g = long_group(c, "phrases_10k_stream", t.len());
    g.measurement_time(Duration::from_secs(7));
    g.bench_function(BenchmarkId::new("deltas", format!("{DELTA}B")), |b| {
        b.iter(|| {
            let mut s = set.stream();
            let mut hits = 0;
            let mut safe = 0;
            for d in &deltas {
                hits += s.push(black_box(d)).len();
                safe = s.safe_until();
            }
            hits += s.finish().len();
            (hits, safe)
        })
    });
    g.finish();
}

/// (d) One 1 KB user prompt through the repository's `policies/` (prompt phase): the
/// per-request guard cost.
fn bench_policy(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let set = PolicySet::load(std::path::Path::new(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    let target = Target::new(Provider::OpenAi, "/v1/chat/completions", "mock-1", "bench");
    let clean = prompt(1024, 5);
    // The same prompt with an obfuscated trigger at the end: the enforce rule blocks it.
    let mut triggered = clean.clone();
    triggered.truncate(1024 - "|ＤＥＰＬＯＹＭＥＮＴ|".len());
    triggered.push_str("|ＤＥＰＬＯＹＭＥＮＴ|");
    // Nothing blocks the clean prompt (the classifier may flag this word salad as a jailbreak:
    // it is full of "assistant", "model", "system" and "user"). It runs once: later iterations
    // of the same text hit its cache, as a repeated prompt would.
    assert!(set.evaluate(Phase::Prompt, &target, &[(Role::User, &clean)]).action < Action::Block);
    assert_eq!(set.evaluate(Phase::Prompt, &target, &[(Role::User, &triggered)]).action, Action::Block);

    let mut g = c.benchmark_group("policy_prompt_1KB");
    g.sample_size(50).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(clean.len() as u64));
    g.bench_function("clean", |b| b.iter(|| set.evaluate(Phase::Prompt, &target, &[(Role::User, black_box(&clean))])));
    g.bench_function("trigger", |b| {
        b.iter(|| set.evaluate(Phase::Prompt, &target, &[(Role::User, black_box(&triggered))]))
    });
    g.finish();
}

criterion_group!(benches, bench_normalize, bench_scan, bench_stream, bench_policy);
criterion_main!(benches);
