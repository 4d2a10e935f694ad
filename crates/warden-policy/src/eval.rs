//! Measuring a policy set on labelled texts: `warden eval`.
//!
//! Each row (`{"text", "label"}` in JSON Lines, optionally `"family"` and `"role"`) goes through
//! the real policy set, whole or, for completions, in the streaming form with random chunking, as
//! the proxy would judge it. The report says per label how many rows were caught (any rule fired:
//! flag, redact or block), how many blocked, which rules fired, and how long a decision took; for
//! the benign label, caught is the false-positive rate. A [`Gate`] holds committed figures and
//! fails when a run is worse than them, so that CI notices a weakened rule or a noisier model.

use crate::set::{PolicySet, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Instant;
use warden_core::{Action, Phase, Provider, Role};

/// The label whose caught rows are false positives.
pub const BENIGN: &str = "benign";

/// One labelled text.
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    /// The text, as a client (or the model) would send it.
    pub text: String,
    /// Its label: `benign`, or what it is (`injection`, `toxic`, ...).
    pub label: String,
    /// A finer kind (how it was made or where it came from), reported separately.
    #[serde(default)]
    pub family: Option<String>,
    /// The role the text is sent as, overriding [`Options::role`].
    #[serde(default)]
    pub role: Option<String>,
}

/// Reads JSON Lines rows; an error names the line and says what a row needs.
pub fn read_rows(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(line).map_err(|e| {
            format!("line {}: {e}; each line must be a JSON object with \"text\" and \"label\" strings", n + 1)
        })?;
        if let Some(r) = &row.role {
            Role::from_provider(r).ok_or_else(|| {
                format!("line {}: role `{r}` is not one of system, developer, user, assistant, tool", n + 1)
            })?;
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err("no rows: the file has no JSON lines".into());
    }
    Ok(rows)
}

/// How the rows are judged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Options {
    /// The phase the texts are judged in.
    pub phase: Phase,
    /// The role of each text (unless its row names one).
    pub role: Role,
    /// Judge completions in the streaming form, cut into random pieces.
    pub stream: bool,
    /// The seed of the random chunking.
    pub seed: u64,
    /// The model name the policies select on.
    pub model: String,
}

/// Figures for one label (or one family).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counts {
    /// Rows.
    pub rows: usize,
    /// Rows on which a rule fired (flag, redact or block).
    pub caught: usize,
    /// Rows blocked.
    pub blocked: usize,
    /// `caught / rows`: recall for an attack label, the false-positive rate for `benign`.
    pub rate: f64,
    /// `blocked / rows`.
    pub block_rate: f64,
}

impl Counts {
    fn add(&mut self, action: Action) {
        self.rows += 1;
        self.caught += usize::from(action != Action::Allow);
        self.blocked += usize::from(action == Action::Block);
        self.rate = self.caught as f64 / self.rows as f64;
        self.block_rate = self.blocked as f64 / self.rows as f64;
    }
}

/// Decision latency over all rows, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Slowest.
    pub max_us: u64,
    /// Total time over total text, per 1 KB.
    pub per_kb_us: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// How the rows were judged.
    pub options: Options,
    /// The policy set's digest.
    pub policy_digest: String,
    /// Per label.
    pub labels: BTreeMap<String, Counts>,
    /// Per `label/family`, for rows that name a family.
    pub families: BTreeMap<String, Counts>,
    /// Per label, how often each `policy/rule` fired.
    pub rules: BTreeMap<String, BTreeMap<String, usize>>,
    /// Per label, how many rows ended in each action (`allow`, `flag`, `redact`, `block`).
    pub confusion: BTreeMap<String, BTreeMap<String, usize>>,
    /// Decision time.
    pub latency: Latency,
}

/// A small deterministic generator for the chunk sizes (splitmix64).
struct Chunker(u64);

impl Chunker {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Cuts `text` into pieces of 1 to 24 bytes, at character boundaries.
    fn pieces<'t>(&mut self, text: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < text.len() {
            let mut end = (start + 1 + (self.next() % 24) as usize).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            out.push(&text[start..end]);
            start = end;
        }
        out
    }
}

/// The decision's action and the rules that fired, for one row.
fn judge(set: &PolicySet, options: &Options, row: &Row, chunker: &mut Chunker) -> (Action, Vec<String>) {
    let role = row.role.as_deref().and_then(Role::from_provider).unwrap_or(options.role);
    let provider = Provider::OpenAi;
    let target = Target::new(provider, provider.chat_route(), &options.model, "eval");
    let hits = if options.stream {
        let mut judge = set.judge_stream(&target, 0);
        let mut hits = Vec::new();
        for piece in chunker.pieces(&row.text) {
            hits.extend(judge.push(piece));
        }
        hits.extend(judge.finish());
        hits
    } else {
        set.evaluate(options.phase, &target, &[(role, row.text.as_str())]).hits
    };
    let action = hits.iter().map(|h| h.applied).max().unwrap_or(Action::Allow);
    let mut rules: Vec<String> = hits.iter().map(|h| format!("{}/{}", h.policy, h.rule)).collect();
    rules.sort();
    rules.dedup();
    (action, rules)
}

/// Checks that `options` can be run: the streaming form is the completion's.
pub fn check_options(options: &Options) -> Result<(), String> {
    if options.stream && options.phase != Phase::Completion {
        return Err("--stream judges completions: add --phase completion".into());
    }
    Ok(())
}

/// Runs every row through `set`; `progress` is called after each row.
pub fn run(set: &PolicySet, options: &Options, rows: &[Row], mut progress: impl FnMut()) -> Report {
    let mut chunker = Chunker(options.seed);
    let mut labels: BTreeMap<String, Counts> = BTreeMap::new();
    let mut families: BTreeMap<String, Counts> = BTreeMap::new();
    let mut rules: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut times = Vec::with_capacity(rows.len());
    let mut bytes = 0usize;
    let mut total_us = 0f64;
    for row in rows {
        let started = Instant::now();
        let (action, fired) = judge(set, options, row, &mut chunker);
        let us = started.elapsed().as_secs_f64() * 1e6;
        times.push(us as u64);
        total_us += us;
        bytes += row.text.len();
        labels.entry(row.label.clone()).or_default().add(action);
        if let Some(f) = &row.family {
            families.entry(format!("{}/{f}", row.label)).or_default().add(action);
        }
        let per_rule = rules.entry(row.label.clone()).or_default();
        for r in fired {
            *per_rule.entry(r).or_default() += 1;
        }
        *confusion.entry(row.label.clone()).or_default().entry(action.as_str().to_string()).or_default() += 1;
        progress();
    }
    times.sort_unstable();
    let pct = |p: f64| times.get(((times.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0);
    let latency = Latency {
        p50_us: pct(0.5),
        p90_us: pct(0.9),
        p99_us: pct(0.99),
        max_us: times.last().copied().unwrap_or(0),
        per_kb_us: if bytes == 0 { 0.0 } else { total_us / (bytes as f64 / 1024.0) },
    };
    Report {
        options: options.clone(),
        policy_digest: set.digest().to_string(),
        labels,
        families,
        rules,
        confusion,
        latency,
    }
}

/// Committed figures a run must not fall below: per label, the least recall (`rate` of an attack
/// label) or the most false positives (`rate` and `block_rate` of `benign`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Gate {
    /// The options the figures were measured with; a run with others is refused.
    pub options: Options,
    /// Per label: `rate` and `block_rate` as measured.
    pub labels: BTreeMap<String, GateFigures>,
    /// How far a figure may move the wrong way before the gate fails (0: not at all).
    #[serde(default)]
    pub slack: f64,
}

/// The committed figures of one label.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GateFigures {
    /// Rows the figures were measured on; a different count means the data changed.
    pub rows: usize,
    /// Caught rate.
    pub rate: f64,
    /// Block rate.
    pub block_rate: f64,
}

impl Gate {
    /// The figures of `report`, as a gate.
    pub fn from_report(report: &Report, slack: f64) -> Gate {
        let labels = report
            .labels
            .iter()
            .map(|(l, c)| {
                (l.clone(), GateFigures { rows: c.rows, rate: round(c.rate), block_rate: round(c.block_rate) })
            })
            .collect();
        Gate { options: report.options.clone(), labels, slack }
    }

    /// Every way `report` is worse than the gate, one line each (empty: it passes).
    pub fn check(&self, report: &Report) -> Vec<String> {
        let mut fails = Vec::new();
        if report.options.phase != self.options.phase
            || report.options.role != self.options.role
            || report.options.stream != self.options.stream
        {
            fails.push(format!(
                "the gate was measured with --phase {} --role {}{}; run with the same options",
                self.options.phase.as_str(),
                self.options.role.as_str(),
                if self.options.stream { " --stream" } else { "" }
            ));
            return fails;
        }
        for (label, want) in &self.labels {
            let Some(got) = report.labels.get(label) else {
                fails.push(format!("{label}: no rows in the data (the gate has {})", want.rows));
                continue;
            };
            if got.rows != want.rows {
                fails.push(format!(
                    "{label}: {} rows, the gate was measured on {}; the data changed: measure again with --write-gate",
                    got.rows, want.rows
                ));
                continue;
            }
            let (got_rate, got_block) = (round(got.rate), round(got.block_rate));
            if label == BENIGN {
                if got_rate > want.rate + self.slack {
                    fails.push(format!("benign: false positives rose to {got_rate:.4} (gate {:.4})", want.rate));
                }
                if got_block > want.block_rate + self.slack {
                    fails.push(format!("benign: blocked rose to {got_block:.4} (gate {:.4})", want.block_rate));
                }
            } else {
                if got_rate < want.rate - self.slack {
                    fails.push(format!("{label}: recall fell to {got_rate:.4} (gate {:.4})", want.rate));
                }
                if got_block < want.block_rate - self.slack {
                    fails.push(format!("{label}: blocked fell to {got_block:.4} (gate {:.4})", want.block_rate));
                }
            }
        }
        fails
    }
}

/// Four decimals: what the gate file keeps, so that a float's last bits do not fail a run.
fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The report as tables, for a person.
pub fn render(report: &Report) -> String {
    use std::fmt::Write;
    let o = &report.options;
    let mut s = String::new();
    let form = if o.stream { "streamed in random pieces" } else { "whole" };
    let _ = writeln!(
        s,
        "phase {}, role {}, {form}; policy set {}\n",
        o.phase.as_str(),
        o.role.as_str(),
        &report.policy_digest[..12.min(report.policy_digest.len())]
    );
    let _ = writeln!(s, "{:<28} {:>6} {:>7} {:>8} {:>8} {:>8}", "label", "rows", "caught", "rate", "blocked", "rate");
    let line = |s: &mut String, name: &str, c: &Counts| {
        let what = if name.split('/').next() == Some(BENIGN) { "(FP)" } else { "" };
        let _ = writeln!(
            s,
            "{:<28} {:>6} {:>7} {:>7.2}% {:>8} {:>7.2}% {what}",
            name,
            c.rows,
            c.caught,
            c.rate * 100.0,
            c.blocked,
            c.block_rate * 100.0
        );
    };
    for (l, c) in &report.labels {
        line(&mut s, l, c);
    }
    if !report.families.is_empty() {
        let _ = writeln!(s, "\nper family");
        for (f, c) in &report.families {
            line(&mut s, f, c);
        }
    }
    let _ = writeln!(s, "\nconfusion (rows = label, columns = action)");
    let _ = writeln!(s, "{:<28} {:>7} {:>7} {:>7} {:>7}", "", "allow", "flag", "redact", "block");
    for (l, m) in &report.confusion {
        let n = |a: &str| m.get(a).copied().unwrap_or(0);
        let _ = writeln!(s, "{:<28} {:>7} {:>7} {:>7} {:>7}", l, n("allow"), n("flag"), n("redact"), n("block"));
    }
    let _ = writeln!(s, "\nrules that fired (rows)");
    for (l, m) in &report.rules {
        if m.is_empty() {
            continue;
        }
        let mut v: Vec<_> = m.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let list: Vec<String> = v.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let _ = writeln!(s, "  {l}: {}", list.join(", "));
    }
    let t = &report.latency;
    let _ = writeln!(
        s,
        "\nlatency per decision: p50 {} µs, p90 {} µs, p99 {} µs, max {} µs; {:.0} µs per 1 KB",
        t.p50_us, t.p90_us, t.p99_us, t.max_us, t.per_kb_us
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(benign: (usize, usize), attack: (usize, usize)) -> Report {
        let counts = |(rows, caught): (usize, usize)| Counts {
            rows,
            caught,
            blocked: caught,
            rate: caught as f64 / rows as f64,
            block_rate: caught as f64 / rows as f64,
        };
        Report {
            options: Options { phase: Phase::Prompt, role: Role::User, stream: false, seed: 1, model: "m".into() },
            policy_digest: "d".into(),
            labels: [("benign".to_string(), counts(benign)), ("injection".to_string(), counts(attack))].into(),
            families: BTreeMap::new(),
            rules: BTreeMap::new(),
            confusion: BTreeMap::new(),
            latency: Latency::default(),
        }
    }

    #[test]
    fn a_gate_passes_its_own_run_and_better_ones_and_fails_worse_ones() {
        let gate = Gate::from_report(&report((100, 1), (50, 40)), 0.0);
        assert!(gate.check(&report((100, 1), (50, 40))).is_empty());
        assert!(gate.check(&report((100, 0), (50, 45))).is_empty(), "better figures pass");
        let fails = gate.check(&report((100, 1), (50, 39)));
        assert_eq!(fails.len(), 2, "{fails:?}");
        assert!(fails[0].contains("injection: recall fell to 0.7800"), "{fails:?}");
        let fails = gate.check(&report((100, 2), (50, 40)));
        assert!(fails[0].contains("benign: false positives rose"), "{fails:?}");
        let fails = gate.check(&report((99, 1), (50, 40)));
        assert!(fails[0].contains("the data changed"), "{fails:?}");
    }

    #[test]
    fn slack_allows_small_moves_and_other_options_are_refused() {
        let gate = Gate::from_report(&report((100, 1), (50, 40)), 0.05);
        assert!(gate.check(&report((100, 3), (50, 39))).is_empty());
        let mut other = report((100, 1), (50, 40));
        other.options.role = Role::Tool;
        assert!(gate.check(&other)[0].contains("--role user"));
    }

    #[test]
    fn chunks_cover_the_text_at_character_boundaries_and_repeat_with_the_seed() {
        let text = "héllo wörld, ünïcode ✓ and more text to cut into many pieces";
        let a: Vec<&str> = Chunker(7).pieces(text);
        assert_eq!(a.concat(), text);
        assert!(a.len() > 3);
        assert_eq!(a, Chunker(7).pieces(text));
    }

    #[test]
    fn rows_need_text_and_label_and_a_known_role() {
        assert!(read_rows("{\"text\": \"x\"}\n").unwrap_err().contains("line 1"));
        assert!(read_rows("{\"text\": \"x\", \"label\": \"benign\", \"role\": \"robot\"}")
            .unwrap_err()
            .contains("robot"));
        assert_eq!(read_rows("\n{\"text\": \"x\", \"label\": \"benign\"}\n").unwrap().len(), 1);
        assert!(read_rows("\n").is_err());
    }
}
