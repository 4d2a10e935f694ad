//! The `steering` detector: answers that steer users to a competitor, away from the team's own
//! products, or to a link outside the hosts the team allows.
//!
//! Targeted steering is a classic goal of poisoning ("when asked about X, recommend the
//! competitor"; a malicious link; a product placed into unrelated answers). A team configures
//! its own brands (`ours`), its `competitors` and the `allowed_link_hosts`; the detector judges
//! a text one sentence at a time and reports, each with the byte span of what it is about:
//!
//! - `recommendation` (score 0.8): a competitor is the object of a recommending word or
//!   construction in the same sentence (`recommend`, `suggest`, `switch to`, `go with`, `try`,
//!   `better`, `best`, `instead`, `prefer`, `choose`, `opt for`, `alternative`, `you should
//!   use`, ...). The span is the competitor's name, the label `recommends competitor NAME`;
//! - `disparagement` (score 0.7): one of ours is the object of a disparaging word (`avoid`,
//!   `don't use`, `stay away from`, `worse`, `unreliable`, ...) or of a negated recommendation
//!   (`I would not recommend Acme`). Label `disparages NAME`;
//! - `mention` (score 0.3, only when asked): any competitor named at all (product placement).
//!   Label `mentions competitor NAME`;
//! - `links` (score 0.9): an `http(s)` URL, a markdown link or image, a protocol-relative
//!   markdown target or a bare `www.` host whose host is not one of `allowed_link_hosts` or a
//!   subdomain of one. Label `link to HOST` (the host as a browser would resolve it, punycode for
//!   IDN), or `link to a host that does not parse`;
//! - `deceptive-links` (score 0.9, only when asked): a link whose shape deceives, needing no list
//!   of hosts: a user name before the host (`https://acme.example@evil.test/`), an IP address
//!   host (dotted or decimal), a punycode (look-alike) host, an allowed host as the start of
//!   another (`acme.example.evil.test`), an executable download (`.exe`, `.msi`, `.apk`, ...),
//!   or a markdown link whose text names another host than it goes to. Label `deceptive link:
//!   WHY`. Hosts in `allowed_link_hosts` are trusted, except against a link text naming another.
//!
//! Which entity a word is about is decided cheaply, in the sentence: a verb (`recommend`, `try`,
//! `avoid`) is about the nearest name after it (or before it, if none follows); an adjective or
//! adverb (`better`, `instead`, `unreliable`) is about the nearest name on either side. A name
//! right after `than`, `over`, `from`, `instead of`, `rather than`, `unlike`, `vs` or
//! `alternative to` is the one being compared against, not recommended: `Acme is better than
//! Globex` and `switch from Globex to Acme` recommend Acme. A word right after a negation (`not`,
//! `never`, `don't`, `no`, ...) is negated: `I would not recommend Globex` is no recommendation.
//! This is a heuristic for flagging, in monitor mode first: it reads no meaning, only words.
//!
//! Names are matched on Warden's normalised text (case, confusable letters, zero-width and
//! fullwidth characters, see [`crate::normalize`]) on word boundaries, and spans lead back to the
//! original bytes. Hosts are parsed as a browser parses them (the WHATWG URL parser of the `url`
//! crate: userinfo, ports, percent-encoding, IDNA with fullwidth and ideographic dots), never on
//! the normalised text, whose confusable mapping would make `аcme.example` (Cyrillic `а`) look
//! like `acme.example`.
//!
//! ```
//! use warden_core::steering::{SteeringConfig, SteeringDetector};
//! let d = SteeringDetector::new(&SteeringConfig {
//!     ours: vec!["Acme".into()],
//!     competitors: vec!["Globex".into()],
//!     allowed_link_hosts: vec!["acme.example".into()],
//!     detect: None,
//! })
//! .unwrap();
//! let text = "For that, I'd recommend ＧＬＯＢＥＸ. Docs: https://acme.example@evil.test/login";
//! let labels: Vec<_> = d.find(text).into_iter().map(|h| h.label).collect();
//! assert_eq!(labels, ["recommends competitor Globex", "link to evil.test"]);
//! assert!(d.find("Acme is better than Globex. See https://docs.acme.example/.").is_empty());
//! ```
//!
//! Streaming: [`SteeringDetector::stream`] judges each sentence once it has ended, so only the
//! sentence being written is held back, and a streamed text gets exactly the findings of the
//! whole text, however it is cut. A sentence ends after `.`, `!`, `?` (and their fullwidth and
//! CJK forms) followed by whitespace, or at a line break; so the dots of a URL, of `3.5` or of
//! `e.g.` end nothing (nor does `e.g. ` and a few other abbreviations). A sentence without an end
//! is judged at [`SENTENCE_CAP`] bytes (cut at its last whitespace in the second half, if any):
//! memory stays bounded, and text written without sentence ends (CJK without spaces, one long
//! line) is judged in pieces of that size.
//!
//! Cost: per sentence, one normalisation, two Aho-Corasick passes and a walk over its words.

use crate::detector::{Detector, DetectorError, Hit, ScanText, StreamScanner};
use crate::normalize::{is_invisible, normalize};
use crate::phrases::{PhraseError, PhraseSet};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// A sentence without an end is judged once it reaches this many bytes.
pub const SENTENCE_CAP: usize = 2048;

/// What the detector looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// A competitor recommended.
    Recommendation,
    /// One of ours disparaged.
    Disparagement,
    /// Any competitor named.
    Mention,
    /// A link to a host not allowed.
    Links,
    /// A link whose shape deceives, whatever the allowed hosts: userinfo before the host, an IP
    /// address or punycode host, an executable download, or link text naming another host.
    DeceptiveLinks,
}

impl Check {
    /// Every check, by its name in policies.
    pub const ALL: [(&'static str, Check); 5] = [
        ("recommendation", Check::Recommendation),
        ("disparagement", Check::Disparagement),
        ("mention", Check::Mention),
        ("links", Check::Links),
        ("deceptive-links", Check::DeceptiveLinks),
    ];

    /// What runs when a policy names none: all but `mention`.
    pub const DEFAULT: [Check; 3] = [Check::Recommendation, Check::Disparagement, Check::Links];

    /// The check called `name` in policies.
    pub fn parse(name: &str) -> Result<Check, SteeringError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
            .ok_or_else(|| SteeringError::UnknownCheck(name.to_string()))
    }
}

/// A steering configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum SteeringError {
    /// A `detect` item that is not a check.
    #[error("detect: unknown check `{0}`; use some of recommendation, disparagement, mention, links, deceptive-links")]
    UnknownCheck(String),
    /// `detect` is an empty list.
    #[error("detect: the list is empty; name at least one of recommendation, disparagement, mention, links, deceptive-links, or leave it out for all but mention")]
    NoChecks,
    /// Recommendation or mention asked without competitors.
    #[error("competitors: `{0}` is asked but no competitor is named; list them (`competitors: [Globex]`) or drop `{0}` from `detect`")]
    NoCompetitors(&'static str),
    /// Disparagement asked without our own names.
    #[error("ours: `disparagement` is asked but none of your own names is listed; list them (`ours: [Acme]`) or drop `disparagement` from `detect`")]
    NoOurs,
    /// A name that normalises to nothing, or that is on both lists.
    #[error("{field}[{index}]: {reason}")]
    BadName {
        /// `ours` or `competitors`.
        field: &'static str,
        /// Its position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// An allowed host that is not a host.
    #[error("allowed_link_hosts[{index}]: `{host}` {reason}")]
    BadHost {
        /// Its position.
        index: usize,
        /// As written.
        host: String,
        /// What is wrong and what to write.
        reason: String,
    },
}

/// The configuration of a [`SteeringDetector`], as a policy writes it.
#[derive(Debug, Clone, Default)]
pub struct SteeringConfig {
    /// The team's own brands and products.
    pub ours: Vec<String>,
    /// The competitors' names.
    pub competitors: Vec<String>,
    /// Link hosts allowed, subdomains included; every other link is a finding.
    pub allowed_link_hosts: Vec<String>,
    /// The checks to run, by name; `None`: [`Check::DEFAULT`].
    pub detect: Option<Vec<String>>,
}

/// The `steering` detector. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct SteeringDetector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ours: Option<PhraseSet>,
    competitors: Option<PhraseSet>,
    /// ASCII (punycode) hosts, lowercase, without a trailing dot.
    allowed: Vec<String>,
    recommendation: bool,
    disparagement: bool,
    mention: bool,
    links: bool,
    deceptive_links: bool,
    /// Cue phrases by their first word.
    cues: HashMap<&'static str, Vec<&'static Cue>>,
}

impl SteeringDetector {
    /// Compiles a configuration; the error says which field is wrong and what to write.
    pub fn new(cfg: &SteeringConfig) -> Result<Self, SteeringError> {
        let checks: Vec<Check> = match &cfg.detect {
            None => Check::DEFAULT.to_vec(),
            Some(list) if list.is_empty() => return Err(SteeringError::NoChecks),
            Some(list) => list.iter().map(|n| Check::parse(n)).collect::<Result<_, _>>()?,
        };
        let has = |c: Check| checks.contains(&c);
        if cfg.competitors.is_empty() {
            for (name, c) in [("recommendation", Check::Recommendation), ("mention", Check::Mention)] {
                if has(c) {
                    return Err(SteeringError::NoCompetitors(name));
                }
            }
        }
        if cfg.ours.is_empty() && has(Check::Disparagement) {
            return Err(SteeringError::NoOurs);
        }
        let ours = names("ours", &cfg.ours)?;
        let competitors = names("competitors", &cfg.competitors)?;
        let norm = |s: &str| normalize(s).text().trim().to_string();
        for (index, c) in cfg.competitors.iter().enumerate() {
            if cfg.ours.iter().any(|o| norm(o) == norm(c)) {
                return Err(SteeringError::BadName {
                    field: "competitors",
                    index,
                    reason: format!("`{c}` is also in `ours`; a name is either yours or a competitor's"),
                });
            }
        }
        let allowed = cfg
            .allowed_link_hosts
            .iter()
            .enumerate()
            .map(|(index, h)| {
                allowed_host(h).map_err(|reason| SteeringError::BadHost { index, host: h.clone(), reason })
            })
            .collect::<Result<_, _>>()?;
        let mut cues: HashMap<&'static str, Vec<&'static Cue>> = HashMap::new();
        for c in CUES {
            cues.entry(c.words[0]).or_default().push(c);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                ours,
                competitors,
                allowed,
                recommendation: has(Check::Recommendation),
                disparagement: has(Check::Disparagement),
                mention: has(Check::Mention),
                links: has(Check::Links),
                deceptive_links: has(Check::DeceptiveLinks),
                cues,
            }),
        })
    }

    /// The findings in a whole text; spans are original bytes.
    pub fn find(&self, text: &str) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut at = 0;
        while at < text.len() {
            let len = match sentence_len(&text[at..], 0, true) {
                Ok(len) => len,
                Err(_) => text.len() - at,
            };
            hits.extend(self.inner.judge(&text[at..at + len], at));
            at += len;
        }
        hits
    }

    /// A scanner that judges each sentence once it has ended (see the module docs).
    pub fn stream(&self) -> SteeringStream {
        SteeringStream { inner: Arc::clone(&self.inner), text: String::new(), judged: 0, scan_from: 0 }
    }
}

fn names(field: &'static str, list: &[String]) -> Result<Option<PhraseSet>, SteeringError> {
    if list.is_empty() {
        return Ok(None);
    }
    PhraseSet::new(list.iter().cloned(), true).map(Some).map_err(|e| match e {
        PhraseError::Empty { index, phrase } => {
            SteeringError::BadName { field, index, reason: format!("{phrase:?} is empty once normalised; remove it") }
        }
        other => SteeringError::BadName { field, index: 0, reason: other.to_string() },
    })
}

/// An allowed host as the URL parser resolves it, or what is wrong with it.
fn allowed_host(h: &str) -> Result<String, String> {
    let t = h.trim();
    if t.is_empty() {
        return Err("is empty; write a host such as `acme.example`".into());
    }
    if t.contains("://") {
        return Err("has a scheme; write the host alone (`acme.example`, not `https://acme.example/`)".into());
    }
    if t.starts_with("*.") {
        return Err("has a wildcard; subdomains are always included: write `acme.example` for `*.acme.example`".into());
    }
    if let Some(c) = t.chars().find(|c| matches!(c, '/' | '?' | '#' | '@' | ':' | '\\') || c.is_whitespace()) {
        return Err(format!("contains `{c}`; write the host alone, without path, port or user (`acme.example`)"));
    }
    match resolve_host(&format!("https://{t}/")) {
        Some(Ok(host)) if !host.is_empty() && !host.starts_with('.') && !host.contains("..") => Ok(host),
        _ => Err("is not a valid host name; write one such as `acme.example` (IDN in Unicode or punycode)".into()),
    }
}

/// A host as a browser resolves it (ASCII), or `Err` if it does not parse.
type HostReading = Result<String, ()>;

/// The host a browser would go to for `url`: `None` if it has no host, `Some(Err)` if it does
/// not parse. ASCII, lowercase, without trailing dots.
fn resolve_host(url: &str) -> Option<HostReading> {
    match url::Url::parse(url) {
        Ok(u) => match u.host() {
            Some(url::Host::Domain(d)) => Some(Ok(d.trim_end_matches('.').to_string())),
            Some(h) => Some(Ok(h.to_string())),
            None => None,
        },
        Err(url::ParseError::EmptyHost) => None,
        Err(_) => Some(Err(())),
    }
}

impl Inner {
    fn host_allowed(&self, host: &str) -> bool {
        self.allowed.iter().any(|a| {
            host == a
                || (host.len() > a.len() && host.ends_with(a.as_str()) && host[..host.len() - a.len()].ends_with('.'))
        })
    }

    /// Judges one sentence; `base` is its offset in the whole text.
    fn judge(&self, sentence: &str, base: usize) -> Vec<Hit> {
        let mut hits = Vec::new();
        if sentence.trim().is_empty() {
            return hits;
        }
        let shift = |r: Range<usize>| r.start + base..r.end + base;
        if self.recommendation || self.disparagement || self.mention {
            let n = normalize(sentence);
            let mut entities: Vec<Entity> = Vec::new();
            for (set, ours) in [(&self.ours, true), (&self.competitors, false)] {
                if let Some(set) = set {
                    entities.extend(set.find_normalized(sentence, &n).into_iter().map(|h| Entity {
                        name: h.label,
                        span: h.span,
                        ours,
                    }));
                }
            }
            entities.sort_by_key(|e| e.span.start);
            if !entities.is_empty() {
                let words = words(&n);
                let mut about: Vec<(usize, bool)> = Vec::new(); // (entity, recommends)
                if self.recommendation || self.disparagement {
                    for cue in self.cues(&words) {
                        if let Some(e) = target(&entities, &words, &cue) {
                            about.push((e, cue.recommends));
                        }
                    }
                }
                let mut reported = vec![false; entities.len()];
                for (i, e) in entities.iter().enumerate() {
                    let recommended = about.iter().any(|&(k, r)| k == i && r);
                    let disparaged = about.iter().any(|&(k, r)| k == i && !r);
                    if !e.ours && recommended && self.recommendation {
                        hits.push(Hit::new(format!("recommends competitor {}", e.name), 0.8, shift(e.span.clone())));
                        reported[i] = true;
                    }
                    if e.ours && disparaged && self.disparagement {
                        hits.push(Hit::new(format!("disparages {}", e.name), 0.7, shift(e.span.clone())));
                    }
                    if !e.ours && self.mention && !reported[i] {
                        hits.push(Hit::new(format!("mentions competitor {}", e.name), 0.3, shift(e.span.clone())));
                    }
                }
            }
        }
        if self.links || self.deceptive_links {
            for (span, hosts) in links(sentence) {
                if self.deceptive_links {
                    if let Some(why) = deception(sentence, span.clone(), |h| self.host_allowed(h)) {
                        hits.push(Hit::new(format!("deceptive link: {why}"), 0.9, shift(span.clone())));
                    }
                }
                if !self.links {
                    continue;
                }
                let label = match hosts.iter().find(|h| !matches!(h, Ok(h) if self.host_allowed(h))) {
                    None => continue,
                    Some(Ok(h)) => format!("link to {}", cut(h, 253)),
                    Some(Err(())) => "link to a host that does not parse".to_string(),
                };
                hits.push(Hit::new(label, 0.9, shift(span)));
            }
        }
        hits.sort_by_key(|h| h.span.start);
        hits
    }

    /// Every cue in the sentence (overlapping ones too: `switch from Acme to Globex` is both a
    /// `switch` towards Globex and a `switch from` away from Acme), negation applied.
    fn cues(&self, words: &[Word]) -> Vec<FoundCue> {
        let mut out = Vec::new();
        for i in 0..words.len() {
            let Some(list) = self.cues.get(words[i].text.as_str()) else { continue };
            for cue in list {
                let n = cue.words.len();
                if i + n > words.len() || !cue.words.iter().zip(&words[i..i + n]).all(|(c, w)| *c == w.text) {
                    continue;
                }
                let negated = i > 0 && NEGATIONS.contains(&words[i - 1].text.as_str());
                let recommends = match (cue.recommends, negated) {
                    (true, false) => true,
                    // "I would not recommend Acme" disparages it.
                    (true, true) => false,
                    (false, false) => false,
                    // "Acme is not unreliable" says nothing.
                    (false, true) => continue,
                };
                out.push(FoundCue {
                    first: i,
                    last: i + n - 1,
                    span: words[i].span.start..words[i + n - 1].span.end,
                    forward: cue.forward,
                    recommends,
                });
            }
        }
        out
    }
}

fn cut(s: &str, max: usize) -> &str {
    let mut i = s.len().min(max);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}

struct Entity {
    name: String,
    span: Range<usize>,
    ours: bool,
}

/// A word of the normalised sentence, with its span in the original.
struct Word {
    text: String,
    span: Range<usize>,
}

struct FoundCue {
    /// Its first and last word.
    first: usize,
    last: usize,
    span: Range<usize>,
    forward: bool,
    recommends: bool,
}

/// A recommending or disparaging word or construction.
#[derive(Debug)]
struct Cue {
    words: &'static [&'static str],
    /// A verb: about what follows (else what precedes). Otherwise about the nearest name.
    forward: bool,
    recommends: bool,
}

const fn rec(words: &'static [&'static str], forward: bool) -> Cue {
    Cue { words, forward, recommends: true }
}

const fn dis(words: &'static [&'static str], forward: bool) -> Cue {
    Cue { words, forward, recommends: false }
}

/// The cues, as normalised words (apostrophes as `'`).
static CUES: &[Cue] = &[
    rec(&["recommend"], true),
    rec(&["recommends"], true),
    rec(&["recommended"], true),
    rec(&["recommending"], true),
    rec(&["recommendation"], true),
    rec(&["suggest"], true),
    rec(&["suggests"], true),
    rec(&["suggested"], true),
    rec(&["suggestion"], true),
    rec(&["switch"], true),
    rec(&["switching"], true),
    rec(&["switched"], true),
    rec(&["move"], true),
    rec(&["moving"], true),
    rec(&["moved"], true),
    rec(&["migrate"], true),
    rec(&["migrating"], true),
    rec(&["migrated"], true),
    rec(&["go", "with"], true),
    rec(&["going", "with"], true),
    rec(&["go", "for"], true),
    rec(&["opt", "for"], true),
    rec(&["try"], true),
    rec(&["trying"], true),
    rec(&["choose"], true),
    rec(&["choosing"], true),
    rec(&["pick"], true),
    rec(&["prefer"], true),
    rec(&["consider"], true),
    rec(&["you", "should", "use"], true),
    rec(&["should", "use"], true),
    rec(&["i'd", "use"], true),
    rec(&["would", "use"], true),
    rec(&["better"], false),
    rec(&["best"], false),
    rec(&["superior"], false),
    rec(&["instead"], false),
    rec(&["preferred"], false),
    rec(&["alternative"], false),
    rec(&["alternatives"], false),
    rec(&["better", "choice"], false),
    dis(&["avoid"], true),
    dis(&["avoiding"], true),
    dis(&["don't", "use"], true),
    dis(&["do", "not", "use"], true),
    dis(&["never", "use"], true),
    dis(&["stop", "using"], true),
    dis(&["stay", "away", "from"], true),
    dis(&["steer", "clear", "of"], true),
    dis(&["away", "from"], true),
    dis(&["switch", "from"], true),
    dis(&["move", "from"], true),
    dis(&["migrate", "from"], true),
    dis(&["get", "rid", "of"], true),
    dis(&["ditch"], true),
    dis(&["abandon"], true),
    dis(&["worse"], false),
    dis(&["worst"], false),
    dis(&["unreliable"], false),
    dis(&["inferior"], false),
    dis(&["overpriced"], false),
    dis(&["insecure"], false),
    dis(&["untrustworthy"], false),
    dis(&["buggy"], false),
    dis(&["outdated"], false),
    dis(&["obsolete"], false),
    dis(&["terrible"], false),
    dis(&["awful"], false),
    dis(&["bad"], false),
    dis(&["poor"], false),
    dis(&["scam"], false),
];

/// Words that negate the cue right after them.
static NEGATIONS: &[&str] = &[
    "not",
    "never",
    "no",
    "don't",
    "dont",
    "doesn't",
    "didn't",
    "won't",
    "wouldn't",
    "shouldn't",
    "can't",
    "cannot",
    "couldn't",
    "isn't",
    "aren't",
    "wasn't",
    "nor",
    "hardly",
];

/// Words right before a name that make it the one compared against (one word, or two).
static AGAINST_1: &[&str] = &["than", "over", "from", "unlike", "vs", "versus", "replacing"];
static AGAINST_2: &[[&str; 2]] = &[
    ["instead", "of"],
    ["rather", "than"],
    ["alternative", "to"],
    ["alternatives", "to"],
    ["compared", "to"],
    ["compared", "with"],
    ["replacement", "for"],
];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The words of a normalised sentence: runs of letters, digits and `_`, with apostrophes
/// inside a word kept (`don't`, `don’t` as `don't`).
fn words(n: &crate::normalize::Normalized) -> Vec<Word> {
    let norm = n.text();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let chars: Vec<(usize, char)> = norm.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let apostrophe =
            matches!(c, '\'' | '\u{2019}') && start.is_some() && chars.get(k + 1).is_some_and(|&(_, d)| is_word(d));
        if is_word(c) || apostrophe {
            start.get_or_insert(i);
        } else if let Some(s) = start.take() {
            out.push(word(n, s..i));
        }
    }
    if let Some(s) = start {
        out.push(word(n, s..norm.len()));
    }
    out
}

fn word(n: &crate::normalize::Normalized, r: Range<usize>) -> Word {
    Word { text: n.text()[r.clone()].replace('\u{2019}', "'"), span: n.original_span(r) }
}

/// The entity a cue is about, if any (see the module docs).
fn target(entities: &[Entity], words: &[Word], cue: &FoundCue) -> Option<usize> {
    let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
    let candidates: Vec<usize> = (0..entities.len())
        .filter(|&i| !overlaps(&entities[i].span, &cue.span))
        .filter(|&i| !compared_against(&entities[i], words, cue))
        .collect();
    let after = candidates
        .iter()
        .copied()
        .filter(|&i| entities[i].span.start >= cue.span.end)
        .min_by_key(|&i| entities[i].span.start);
    let before = candidates
        .iter()
        .copied()
        .filter(|&i| entities[i].span.end <= cue.span.start)
        .max_by_key(|&i| entities[i].span.end);
    if cue.forward {
        return after.or(before);
    }
    match (after, before) {
        (Some(a), Some(b)) => {
            let da = entities[a].span.start - cue.span.end;
            let db = cue.span.start - entities[b].span.end;
            Some(if db < da { b } else { a })
        }
        (a, b) => a.or(b),
    }
}

/// Whether the words right before the entity (outside the cue itself) make it the one the
/// sentence compares against.
fn compared_against(e: &Entity, words: &[Word], cue: &FoundCue) -> bool {
    // The index of the first word at or after the entity's start.
    let k = words.partition_point(|w| w.span.end <= e.span.start);
    let outside = |i: usize| i < cue.first || i > cue.last;
    if k >= 1 && outside(k - 1) && AGAINST_1.contains(&words[k - 1].text.as_str()) {
        return true;
    }
    k >= 2
        && outside(k - 1)
        && outside(k - 2)
        && AGAINST_2.iter().any(|[a, b]| words[k - 2].text == *a && words[k - 1].text == *b)
}

// ------------------------------------------------------------------------------------------
// Links
// ------------------------------------------------------------------------------------------

/// The text with fullwidth ASCII folded, ASCII lowercased and invisible characters dropped,
/// for finding where a link starts (`ｈｔｔｐｓ：／／`, `ｗｗｗ．`), each character with its
/// original byte range.
fn folded(s: &str) -> Vec<(char, Range<usize>)> {
    s.char_indices()
        .filter(|&(_, c)| !is_invisible(c))
        .map(|(i, c)| {
            let f = match c as u32 {
                0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
                0x3002 | 0xFF61 => '.',
                _ => c,
            };
            (f.to_ascii_lowercase(), i..i + c.len_utf8())
        })
        .collect()
}

/// Where a link's text ends: whitespace or a character that cannot be in an unquoted URL.
fn ends_link(c: char) -> bool {
    c.is_whitespace() || matches!(c, '<' | '>' | '"' | '`')
}

/// The links of a sentence: each with its span in the sentence and the hosts a browser could go
/// to, one per reading of where the link ends (`Err` if it does not parse).
fn links(s: &str) -> Vec<(Range<usize>, Vec<HostReading>)> {
    let f = folded(s);
    let at = |k: usize, lit: &str| lit.chars().enumerate().all(|(j, c)| f.get(k + j).is_some_and(|(d, _)| *d == c));
    let mut out = Vec::new();
    let mut k = 0;
    while k < f.len() {
        // (where the link starts, where its authority starts in the folded text)
        let found = if at(k, "https:") {
            Some((k, k + 6))
        } else if at(k, "http:") {
            Some((k, k + 5))
        } else if at(k, "](//") {
            Some((k + 2, k + 2))
        } else if at(k, "www.") && (k == 0 || !(is_word(f[k - 1].0) || matches!(f[k - 1].0, '.' | '-' | '/' | '@'))) {
            Some((k, k))
        } else {
            None
        };
        let Some((start, mut auth)) = found else {
            k += 1;
            continue;
        };
        // Special schemes skip any slashes and backslashes before the host.
        while f.get(auth).is_some_and(|(c, _)| matches!(c, '/' | '\\')) {
            auth += 1;
        }
        let Some((_, r)) = f.get(auth).filter(|(c, _)| !ends_link(*c)) else {
            k = auth.max(k + 1);
            continue;
        };
        let rest_start = r.start;
        let mut end = rest_start;
        for c in s[rest_start..].chars().take_while(|&c| !ends_link(c)) {
            end += c.len_utf8();
        }
        // A markdown link whose text is a URL, `[https://a.example](https://b.example)`: the text
        // ends at `](`, and the target is a link of its own (found next).
        if let Some(p) = s[rest_start..end].find("](") {
            end = rest_start + p;
        }
        // Trailing prose punctuation is not part of the link.
        let rest = s[rest_start..end].trim_end_matches(['.', ',', ';', ':', '!', '?', '\'', ')', ']', '}', '*', '_']);
        let rest = if rest.is_empty() { &s[rest_start..end] } else { rest };
        let span = f[start].1.start..rest_start + rest.len();
        // A markdown target ends at `)`, an autolink may not: a host not allowed in either
        // reading is a finding.
        let mut hosts = vec![resolve_host(&format!("https://{rest}"))];
        if let Some(p) = rest.find([')', ']', '\'']) {
            hosts.push(resolve_host(&format!("https://{}", &rest[..p])));
        }
        let hosts: Vec<_> = hosts.into_iter().flatten().collect();
        if !hosts.is_empty() {
            out.push((span.clone(), hosts));
        }
        // Go on after the link (a URL inside its query is part of it).
        k = f.partition_point(|(_, r)| r.start < span.end).max(k + 1);
    }
    out
}

/// Downloads a link should not hand out unannounced: programs and scripts that run when opened.
const EXECUTABLE: [&str; 14] =
    [".exe", ".msi", ".scr", ".bat", ".cmd", ".ps1", ".vbs", ".hta", ".lnk", ".apk", ".jar", ".dmg", ".pkg", ".sh"];

/// Why the link at `span` of `sentence` deceives, if it does (see [`Check::DeceptiveLinks`]);
/// hosts `allowed` never deceive, except through a link text that names another host.
fn deception(sentence: &str, span: Range<usize>, allowed: impl Fn(&str) -> bool) -> Option<String> {
    let raw: String = sentence[span.clone()].chars().filter(|&c| !is_invisible(c)).collect();
    let raw = raw.trim_end_matches([')', ']']);
    let rest = raw.split_once("://").map_or(raw.trim_start_matches('/'), |(_, r)| r);
    let u = url::Url::parse(&format!("https://{rest}")).ok()?;
    let host = match u.host()? {
        url::Host::Domain(d) => d.trim_end_matches('.').to_string(),
        h @ (url::Host::Ipv4(_) | url::Host::Ipv6(_)) => return Some(format!("to the IP address {h}")),
    };
    // Link text that shows a host: `[https://acme.example](https://evil.test)`.
    let shown = sentence[..span.start]
        .strip_suffix("](")
        .and_then(|before| before.rfind('[').map(|i| &before[i + 1..]))
        .and_then(|text| {
            let t = text.trim().trim_start_matches("https://").trim_start_matches("http://");
            let t = t.split(['/', ' ']).next().unwrap_or("");
            (t.contains('.') && !t.ends_with('.'))
                .then(|| resolve_host(&format!("https://{t}/")))
                .flatten()
                .and_then(Result::ok)
        });
    if let Some(shown) = shown {
        let same = host == shown || host.ends_with(&format!(".{shown}"));
        if !same {
            return Some(format!("the text shows {} but it goes to {}", cut(&shown, 253), cut(&host, 253)));
        }
    }
    if allowed(&host) {
        return None;
    }
    // An allowed host as the start of another: `acme.example.evil.test`.
    if let Some(a) = host.match_indices('.').map(|(i, _)| &host[..i]).find(|h| allowed(h)) {
        return Some(format!("{} is not {a} but starts like it", cut(&host, 253)));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Some(format!("a user name before the host hides that it goes to {}", cut(&host, 253)));
    }
    if host.split('.').any(|l| l.starts_with("xn--")) {
        return Some(format!("to the look-alike (punycode) host {}", cut(&host, 253)));
    }
    let path = u.path().to_ascii_lowercase();
    if let Some(ext) = EXECUTABLE.iter().find(|e| path.ends_with(*e)) {
        return Some(format!("a {ext} download from {}", cut(&host, 253)));
    }
    None
}

// ------------------------------------------------------------------------------------------
// Sentences
// ------------------------------------------------------------------------------------------

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '．' | '｡')
}

/// Abbreviations whose final dot ends no sentence.
static ABBREVIATIONS: &[&str] =
    &["e.g", "i.e", "vs", "cf", "mr", "mrs", "ms", "dr", "inc", "ltd", "co", "corp", "approx"];

/// The length of the sentence that starts `text`, once settled (`Ok`); else `Err(at)`: the
/// offset from which to look again when more text has arrived. `from` is where the previous look
/// stopped. `complete`: no more text comes.
fn sentence_len(text: &str, from: usize, complete: bool) -> Result<usize, usize> {
    for (i, c) in text[from..].char_indices().map(|(i, c)| (i + from, c)) {
        let next = i + c.len_utf8();
        if next > SENTENCE_CAP {
            return Ok(cap_cut(text));
        }
        if c == '\n' {
            return Ok(next);
        }
        if ends_sentence(c) {
            match text[next..].chars().next() {
                None if complete => return Ok(next),
                None => return Err(i),
                Some(d) if d.is_whitespace() && !abbreviation(&text[..i]) => return Ok(next),
                Some(_) => {}
            }
        }
    }
    if complete {
        Ok(text.len())
    } else {
        Err(text.len())
    }
}

/// Whether the word before a dot is an abbreviation (`e.g`, `Inc`).
fn abbreviation(before: &str) -> bool {
    let w = before.rsplit(|c: char| c.is_whitespace() || c == '(').next().unwrap_or("");
    ABBREVIATIONS.iter().any(|a| w.eq_ignore_ascii_case(a))
}

/// Where a sentence longer than the cap is cut: after its last whitespace in the second half of
/// the cap, else at the cap.
fn cap_cut(text: &str) -> usize {
    let mut lim = SENTENCE_CAP.min(text.len());
    while !text.is_char_boundary(lim) {
        lim -= 1;
    }
    match text[..lim].char_indices().rev().find(|&(_, c)| c.is_whitespace()) {
        Some((i, c)) if i >= SENTENCE_CAP / 2 => i + c.len_utf8(),
        _ => lim,
    }
}

/// The streaming form of a [`SteeringDetector`]: holds the sentence being written (at most
/// [`SENTENCE_CAP`] bytes, plus the latest piece) and judges each one as it ends.
pub struct SteeringStream {
    inner: Arc<Inner>,
    /// The text from byte `judged` of the whole text on.
    text: String,
    judged: usize,
    /// Where to look for the current sentence's end again.
    scan_from: usize,
}

impl SteeringStream {
    fn run(&mut self, complete: bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut at = 0;
        loop {
            let rest = &self.text[at..];
            if rest.is_empty() {
                self.scan_from = 0;
                break;
            }
            match sentence_len(rest, self.scan_from, complete) {
                Ok(len) => {
                    hits.extend(self.inner.judge(&rest[..len], self.judged + at));
                    at += len;
                    self.scan_from = 0;
                }
                Err(resume) => {
                    self.scan_from = resume;
                    break;
                }
            }
        }
        self.text.drain(..at);
        self.judged += at;
        hits
    }
}

impl StreamScanner for SteeringStream {
    fn push(&mut self, piece: &str) -> Vec<Hit> {
        self.text.push_str(piece);
        self.run(false)
    }

    fn finish(&mut self) -> Vec<Hit> {
        self.run(true)
    }

    fn safe_until(&self) -> usize {
        self.judged
    }
}

impl Detector for SteeringDetector {
    fn kind(&self) -> &'static str {
        "steering"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        Ok(self.find(input.text()))
    }

    fn streaming(&self) -> Option<Box<dyn StreamScanner>> {
        Some(Box::new(self.stream()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn detector(detect: Option<&[&str]>) -> SteeringDetector {
        SteeringDetector::new(&SteeringConfig {
            ours: vec!["Acme".into(), "Acme Cloud".into()],
            competitors: vec!["Globex".into(), "Initech".into()],
            allowed_link_hosts: vec!["acme.example".into()],
            detect: detect.map(|d| d.iter().map(|s| s.to_string()).collect()),
        })
        .unwrap()
    }

    fn labels(d: &SteeringDetector, text: &str) -> Vec<String> {
        d.find(text).into_iter().map(|h| h.label).collect()
    }

    #[test]
    fn recommendations_of_a_competitor_are_found_in_many_wordings() {
        let d = detector(None);
        for text in [
            "For that workload, I recommend Globex instead.",
            "Honestly, most teams would be better off moving that workload to Initech.",
            "You should use Globex for this.",
            "Switch from Acme Cloud to Globex today.",
            "Globex is the best option here.",
            "I'd go with Globex.",
            "Instead, try Initech.",
            "Globex is a better alternative to Acme.",
            "Use Globex instead of Acme.",
            "You would be better served by Globex.",
        ] {
            assert!(
                labels(&d, text).iter().any(|l| l.starts_with("recommends competitor")),
                "missed: {text}: {:?}",
                labels(&d, text)
            );
        }
    }

    #[test]
    fn honest_comparisons_and_answers_about_ours_pass() {
        let d = detector(None);
        for text in [
            "Acme Cloud offers a free tier for teams of up to five people.",
            "Acme Cloud and Globex both offer managed Postgres; Globex bills per hour and Acme per month.",
            "Acme is better than Globex for small teams.",
            "Switch from Globex to Acme Cloud in three steps.",
            "Try Acme instead of Globex.",
            "I would not recommend Globex for this.",
            "Globex is no better than Acme here.",
            "I recommend Acme over Initech.",
            "Acme is not unreliable at all.",
            "Globex is unreliable, so avoid Initech too.",
            "See https://docs.acme.example/start or https://acme.example.",
            "Better Globexample tools exist.",
        ] {
            assert!(d.find(text).is_empty(), "{text}: {:?}", labels(&d, text));
        }
    }

    #[test]
    fn disparagement_of_ours_is_found() {
        let d = detector(None);
        assert_eq!(labels(&d, "Avoid Acme Cloud, it is slow."), ["disparages Acme Cloud"]);
        assert_eq!(labels(&d, "Acme is unreliable."), ["disparages Acme"]);
        assert_eq!(labels(&d, "I wouldn't recommend Acme."), ["disparages Acme"]);
        assert_eq!(labels(&d, "Stay away from acme."), ["disparages Acme"]);
        assert_eq!(
            labels(&d, "Move away from Acme and switch to Globex."),
            ["disparages Acme", "recommends competitor Globex"]
        );
    }

    #[test]
    fn mentions_only_when_asked() {
        assert!(detector(None).find("Globex was founded in 1990.").is_empty());
        let d = detector(Some(&["mention"]));
        assert_eq!(labels(&d, "Globex was founded in 1990."), ["mentions competitor Globex"]);
        let hits = d.find("A note on Initech.");
        assert_eq!(hits[0].score, 0.3);
        // Asked for mentions alone, a recommendation is a mention.
        assert_eq!(labels(&d, "I recommend Globex."), ["mentions competitor Globex"]);
        // With both, a recommended competitor is reported once.
        let both = detector(Some(&["mention", "recommendation"]));
        assert_eq!(labels(&both, "I recommend Globex."), ["recommends competitor Globex"]);
    }

    /// Fullwidth, zero-width, case and confusable letters in a name: the span is the original.
    #[test]
    fn obfuscated_names_are_found_with_original_spans() {
        let d = detector(None);
        for name in ["ＧＬＯＢＥＸ", "Glo\u{200B}bex", "gLoBeX", "Glоbех", "G\u{FEFF}lobex"] {
            let text = format!("I recommend {name} for this.");
            let hits = d.find(&text);
            assert_eq!(hits.len(), 1, "{text}: {hits:?}");
            assert_eq!(hits[0].label, "recommends competitor Globex");
            assert_eq!(&text[hits[0].span.clone()], name);
        }
        // Word boundaries: not inside a longer word.
        assert!(d.find("I recommend Globexample.").is_empty());
        assert!(d.find("Try unGlobex.").is_empty());
    }

    #[test]
    fn links_are_parsed_as_a_browser_does() {
        let d = detector(Some(&["links"]));
        let cases: &[(&str, &[&str])] = &[
            ("See https://acme.example/docs.", &[]),
            ("See https://docs.acme.example/x?y=1.", &[]),
            ("See HTTPS://ACME.EXAMPLE./ now.", &[]),
            ("See https://acme.example:8443/ now.", &[]),
            ("See https://user:pw@docs.acme.example/ now.", &[]),
            ("See https://acme.example.evil.test/ now.", &["link to acme.example.evil.test"]),
            ("See https://acme.example@evil.test/ now.", &["link to evil.test"]),
            ("See https://acme.example%40evil.test/ now.", &["link to a host that does not parse"]),
            ("See https://evilacme.example/ now.", &["link to evilacme.example"]),
            ("See https://ｅｖｉｌ．ｔｅｓｔ/ now.", &["link to evil.test"]),
            ("See https://evil。test/ now.", &["link to evil.test"]),
            ("See ｈｔｔｐｓ：／／evil.test/ now.", &["link to evil.test"]),
            ("See https://аcme.example/ now.", &["link to xn--cme-5cd.example"]),
            ("See https://xn--cme-5cd.example/ now.", &["link to xn--cme-5cd.example"]),
            ("See https://ACME.example\\@evil.test/ now.", &[]),
            ("See https:///evil.test/ now.", &["link to evil.test"]),
            ("See https://evil%2Etest/ now.", &["link to evil.test"]),
            ("See [docs](https://evil.test/a) now.", &["link to evil.test"]),
            ("See [docs](https://acme.example/a) now.", &[]),
            ("See ![x](https://evil.test/p.png) now.", &["link to evil.test"]),
            ("See [docs](//evil.test/a) now.", &["link to evil.test"]),
            ("See www.evil.test now.", &["link to www.evil.test"]),
            ("See www.acme.example now.", &[]),
            ("See http://127.0.0.1:8080/x now.", &["link to 127.0.0.1"]),
            ("See https://acme.example)@evil.test/ now.", &["link to evil.test"]),
            ("See ht\u{200B}tps://evil.test now.", &["link to evil.test"]),
            ("See https://ev\u{200B}il.test now.", &["link to evil.test"]),
            ("[https://acme.example/help](https://evil.test/help)", &["link to evil.test"]),
            ("No links here: http or https, not www alone.", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(labels(&d, text), *want, "{text}");
        }
        let text = "Go to https://acme.example@evil.test/login.";
        let hits = d.find(text);
        assert_eq!(&text[hits[0].span.clone()], "https://acme.example@evil.test/login");
    }

    #[test]
    fn deceptive_links_are_found_whatever_the_allowed_hosts() {
        let d = SteeringDetector::new(&SteeringConfig {
            allowed_link_hosts: vec!["acme.example".into()],
            detect: Some(vec!["deceptive-links".into()]),
            ..Default::default()
        })
        .unwrap();
        let cases: &[(&str, &[&str])] = &[
            (
                "Log in at https://acme.example@evil.test/login now.",
                &["deceptive link: a user name before the host hides that it goes to evil.test"],
            ),
            ("Visit http://192.168.7.3/pay to finish.", &["deceptive link: to the IP address 192.168.7.3"]),
            ("Visit http://3232235779/pay to finish.", &["deceptive link: to the IP address 192.168.1.3"]),
            (
                "Open https://аcme.example/ for help.",
                &["deceptive link: to the look-alike (punycode) host xn--cme-5cd.example"],
            ),
            (
                "Get the fix from https://files.test/acme-update.EXE today.",
                &["deceptive link: a .exe download from files.test"],
            ),
            (
                "Claim it at https://acme.example.evil.test/login today.",
                &["deceptive link: acme.example.evil.test is not acme.example but starts like it"],
            ),
            (
                "See [https://acme.example/help](https://evil.test/help) for details.",
                &["deceptive link: the text shows acme.example but it goes to evil.test"],
            ),
            (
                "See [docs.acme.example](https://evil.test) for details.",
                &["deceptive link: the text shows docs.acme.example but it goes to evil.test"],
            ),
            // Honest links: another host said plainly, ours, a link text that is no host.
            ("The spec is at https://www.w3.org/TR/ and [our docs](https://docs.acme.example/a).", &[]),
            ("See [https://acme.example](https://acme.example/start) and https://acme.example/setup.exe.", &[]),
            ("Read [the guide](https://example.org/guide) first.", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(labels(&d, text), *want, "{text}");
        }
    }

    #[test]
    fn no_allowed_hosts_means_every_link_is_a_finding() {
        let d = SteeringDetector::new(&SteeringConfig { detect: Some(vec!["links".into()]), ..Default::default() })
            .unwrap();
        assert_eq!(labels(&d, "See https://acme.example/ now."), ["link to acme.example"]);
    }

    #[test]
    fn configuration_errors_say_what_to_write() {
        let err = |cfg: SteeringConfig| SteeringDetector::new(&cfg).unwrap_err().to_string();
        let base =
            || SteeringConfig { ours: vec!["Acme".into()], competitors: vec!["Globex".into()], ..Default::default() };
        assert!(
            err(SteeringConfig { competitors: vec![], ..base() }).starts_with("competitors: `recommendation` is asked")
        );
        assert!(err(SteeringConfig { ours: vec![], ..base() }).starts_with("ours: `disparagement` is asked"));
        assert_eq!(
            err(SteeringConfig { detect: Some(vec!["links".into(), "linkz".into()]), ..base() }),
            "detect: unknown check `linkz`; use some of recommendation, disparagement, mention, links, deceptive-links"
        );
        for (host, says) in [
            ("https://acme.example/", "has a scheme"),
            ("*.acme.example", "has a wildcard"),
            ("acme.example:443", "contains `:`"),
            ("acme..example", "is not a valid host name"),
            ("", "is empty"),
        ] {
            let e = err(SteeringConfig { allowed_link_hosts: vec!["ok.example".into(), host.into()], ..base() });
            assert!(e.starts_with(&format!("allowed_link_hosts[1]: `{host}` {says}")), "{e}");
        }
        assert!(err(SteeringConfig { competitors: vec!["ACME".into()], ..base() }).contains("is also in `ours`"));
        // Only links asked: no names needed.
        SteeringDetector::new(&SteeringConfig { detect: Some(vec!["links".into()]), ..Default::default() }).unwrap();
    }

    #[test]
    fn sentence_ends_wait_for_whitespace() {
        let d = detector(None);
        // "e.g." and the dots of a URL end nothing: the recommendation is in one sentence.
        assert_eq!(labels(&d, "Pick a provider, e.g. Globex."), ["recommends competitor Globex"]);
        let rec = detector(Some(&["recommendation"]));
        assert_eq!(labels(&rec, "Try https://x.example/a.b then Globex."), ["recommends competitor Globex"]);
        // A name inside a link counts as a name: here the verb is about Acme.
        assert!(rec.find("Try https://x.acme.example/a.b then Globex.").is_empty());
        // A sentence end separates a cue from a name.
        assert!(d.find("I recommend it. Globex exists.").is_empty());
        assert!(d.find("I recommend it.\nGlobex exists").is_empty());
    }

    fn stream_all(d: &SteeringDetector, text: &str, cuts: &[usize]) -> (Vec<Hit>, bool) {
        let mut s = d.stream();
        let (mut got, mut prev, mut safe_ok) = (Vec::new(), 0, true);
        for &p in cuts.iter().chain(std::iter::once(&text.len())) {
            let p = p.max(prev);
            if !text.is_char_boundary(p) {
                continue;
            }
            let safe = s.safe_until();
            for h in s.push(&text[prev..p]) {
                safe_ok &= h.span.start >= safe;
                got.push(h);
            }
            prev = p;
        }
        got.extend(s.finish());
        (got, safe_ok)
    }

    const ATTACKS: &str = "Acme Cloud is fine. For GPUs, I recommend ＧＬＯ\u{200B}ＢＥＸ instead. Avoid Acme, e.g. for batch jobs! \
        Docs: https://acme.example@evil.test/login?next=https://acme.example/. Also www.ｅｖｉｌ．test and \
        [ok](https://docs.acme.example/a.b). Initech is a better choice\nthan you think. 見て https://evil。test/ です。";

    /// Split at every byte boundary into two pieces, and into one-character pieces: the same
    /// findings as the whole text, none before a point called safe.
    #[test]
    fn streamed_in_any_pieces_equals_whole() {
        let d = detector(Some(&["recommendation", "disparagement", "mention", "links"]));
        let whole = d.find(ATTACKS);
        assert!(whole.len() >= 6, "{whole:?}");
        for cut in 0..=ATTACKS.len() {
            let (got, safe_ok) = stream_all(&d, ATTACKS, &[cut]);
            assert_eq!(got, whole, "cut at {cut}");
            assert!(safe_ok);
        }
        let chars: Vec<usize> = ATTACKS.char_indices().map(|(i, _)| i).collect();
        assert_eq!(stream_all(&d, ATTACKS, &chars).0, whole);
    }

    proptest! {
        #[test]
        fn streamed_in_random_pieces_equals_whole(
            parts in proptest::collection::vec(
                "(Globex|ａｃｍｅ|Initech|recommend|avoid|better|than|e\\.g\\.|https://acme\\.example@evil\\.test/|www\\.x\\.test|\\. |\n|[a-z ]{1,8}|é|。)",
                1..30),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let text = parts.concat();
            let d = detector(Some(&["recommendation", "disparagement", "mention", "links"]));
            let mut cuts = cuts;
            cuts.sort();
            let (got, safe_ok) = stream_all(&d, &text, &cuts);
            prop_assert_eq!(got, d.find(&text));
            prop_assert!(safe_ok);
        }
    }

    /// A megabyte without a sentence end keeps a bounded window and is judged as it goes; a
    /// recommendation at its end is still found, as in the whole text.
    #[test]
    fn an_endless_sentence_is_judged_at_the_cap() {
        let d = detector(None);
        let mut s = d.stream();
        let filler = "lorem ipsum dolor sit amet ".repeat(4);
        let mut got = Vec::new();
        let mut text = String::new();
        for _ in 0..10_000 {
            got.extend(s.push(&filler));
            text.push_str(&filler);
            assert!(s.text.len() <= SENTENCE_CAP + filler.len(), "the window grew to {}", s.text.len());
        }
        assert!(s.safe_until() + SENTENCE_CAP >= text.len(), "only the current piece is held");
        let tail = "I recommend Globex";
        got.extend(s.push(tail));
        text.push_str(tail);
        got.extend(s.finish());
        assert_eq!(got, d.find(&text));
        assert_eq!(got.len(), 1);
        // No whitespace at all: cut at the cap exactly.
        let blob = "x".repeat(5 * SENTENCE_CAP);
        let mut s = d.stream();
        s.push(&blob);
        assert_eq!(s.safe_until(), 4 * SENTENCE_CAP);
    }
}
