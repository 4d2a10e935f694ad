//! Policy-set costs: compiling a policy directory, and what selection adds to a decision when
//! many policies are loaded.
//!
//! `cargo bench -p warden-benches --bench policy`
//!
//! - `compile/default-pack`: `PolicySet::load` of the repo's `policies/` (read, schema check,
//!   compile every detector). Reload pays this, off the request path.
//! - `compile/100-policies-10k-phrases`: 100 policy files of 100 phrases each.
//! - `decide/...`: one 1 KB prompt through `evaluate`, with 1 policy loaded, with 100 loaded of
//!   which 1 matches the request's model (the cost of selection alone), and with 100 that all match.
//! - `select/100-policies`: selection alone.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_core::{Phase, Provider, Role};
use warden_policy::{PolicySet, Target};

/// A small deterministic generator (xorshift), so every run benches the same phrases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu", "amber", "basalt", "cobalt", "dune", "ember", "fjord", "granite", "harbor",
];

fn phrase(rng: &mut Rng) -> String {
    let n = 2 + (rng.next() % 3) as usize;
    (0..n).map(|_| WORDS[(rng.next() % WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
        + &format!(" {}", rng.next() % 10_000)
}

/// Writes `n` policies of `phrases_each` phrases into a fresh directory. With `models`, policy i
/// only matches models `team-i-*`.
fn write_set(dir: &Path, n: usize, phrases_each: usize, models: bool) {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    for i in 0..n {
        let list: Vec<String> = (0..phrases_each).map(|_| format!("{:?}", phrase(&mut rng))).collect();
        let matcher = if models { format!("match: {{ models: [\"team-{i}-*\"] }}\n") } else { String::new() };
        let text = format!(
            "name: p{i}\n{matcher}rules:\n  - id: phrases\n    action: block\n    phrases: {{ list: [{}] }}\n  - id: hidden\n    phases: [prompt]\n    action: flag\n    invisible: {{}}\n",
            list.join(", ")
        );
        std::fs::write(dir.join(format!("p{i}.yaml")), text).expect("write a bench policy");
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a bench directory");
    d
}

fn prompt_1kb() -> String {
    let mut rng = Rng(42);
    let mut s = String::new();
    while s.len() < 1024 {
        s.push_str(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
        s.push(' ');
    }
    s
}

fn benches(c: &mut Criterion) {
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let big = temp_dir("10k");
    write_set(&big, 100, 100, false);
    let selective = temp_dir("selective");
    write_set(&selective, 100, 100, true);
    let one = temp_dir("one");
    write_set(&one, 1, 100, false);

    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("default-pack", |b| b.iter(|| PolicySet::load(black_box(&pack)).expect("the pack loads")));
    g.bench_function("100-policies-10k-phrases", |b| b.iter(|| PolicySet::load(black_box(&big)).expect("loads")));
    g.finish();

    let text = prompt_1kb();
    let texts = [(Role::System, "You are a helpful assistant."), (Role::User, text.as_str())];
    let sets = [
        ("1-policy", PolicySet::load(&one).expect("loads"), "team-0-x"),
        ("100-policies-1-matching", PolicySet::load(&selective).expect("loads"), "team-7-x"),
        ("100-policies-all-matching", PolicySet::load(&big).expect("loads"), "team-7-x"),
    ];
    let mut g = c.benchmark_group("decide");
    g.measurement_time(Duration::from_secs(5));
    for (name, set, model) in &sets {
        let target = Target::new(Provider::OpenAi, "/v1/chat/completions", model, "t");
        g.bench_function(*name, |b| b.iter(|| set.evaluate(Phase::Prompt, black_box(&target), black_box(&texts))));
    }
    g.finish();

    let target = Target::new(Provider::OpenAi, "/v1/chat/completions", "team-7-x", "t");
    c.bench_function("select/100-policies", |b| b.iter(|| sets[1].1.select(Phase::Prompt, black_box(&target)).len()));

    for d in [big, selective, one] {
        let _ = std::fs::remove_dir_all(d);
    }
}

criterion_group!(policy, benches);
criterion_main!(policy);
