//! What the audit trail keeps of the texts of a request, by `audit.privacy`: `hash` (the
//! default) keeps the sha256 of each text; `excerpt` adds the matched spans with 32 bytes of
//! context each side; `full` keeps the texts. The decision record line in the logs never holds
//! any of it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warden_audit::config::Privacy;
use warden_core::{Decision, Segment};

/// Bytes of context kept each side of a matched span (`excerpt`).
const CONTEXT: usize = 32;

fn sha(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// The prompt's texts as the trail keeps them.
pub fn prompt(privacy: Privacy, segments: &[Segment], d: &Decision) -> Value {
    let texts: Vec<Value> = segments
        .iter()
        .map(|s| match privacy {
            Privacy::Full => json!({"role": s.role, "origin": s.origin, "text": s.text}),
            _ => json!({"role": s.role, "origin": s.origin, "sha256": sha(s.text.as_bytes())}),
        })
        .collect();
    let mut out = json!({ "prompt": texts });
    if privacy == Privacy::Excerpt {
        out["excerpts"] = excerpts(segments, d);
    }
    out
}

/// The matched spans of `d` with a little context.
fn excerpts(segments: &[Segment], d: &Decision) -> Value {
    let mut out = Vec::new();
    for h in &d.hits {
        for f in h.findings.iter().take(16) {
            let Some(s) = segments.get(f.segment) else { continue };
            let t = &s.text;
            let (a, b) = (floor(t, f.span.start.saturating_sub(CONTEXT)), ceil(t, f.span.end + CONTEXT));
            out.push(json!({"rule": format!("{}/{}", h.policy, h.rule), "segment": f.segment, "span": [f.span.start, f.span.end], "excerpt": &t[a..b]}));
        }
    }
    Value::Array(out)
}

/// The trail's `policy_set` line: the set a digest names, with every rule's detector and the
/// sha256 of the model or plugin it runs. Written at start and whenever a new set is loaded, so
/// a request line's `policy_digest` says exactly which files, models and plugins decided.
pub fn policy_set(set: &warden_policy::PolicySet) -> Value {
    let policies: Vec<Value> = set
        .policies()
        .iter()
        .map(|p| {
            let rules: Vec<Value> = p
                .rules
                .iter()
                .map(|r| json!({"id": r.id, "detector": r.detector.kind(), "action": r.action, "mode": r.mode, "artefact_sha256": r.detector.artefact()}))
                .collect();
            json!({"name": p.name, "mode": p.mode, "source": p.source, "rules": rules})
        })
        .collect();
    json!({"policy_digest": set.digest(), "policies": policies})
}

/// A whole completion as the client got it: its sha256, and with `full` its texts.
pub fn completion(privacy: Privacy, body: &[u8], texts: impl FnOnce() -> Vec<String>) -> Value {
    let mut out = json!({ "completion_sha256": sha(body) });
    if privacy == Privacy::Full {
        out["completion"] = json!(texts());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::{Action, Finding, Mode, Phase, Role, RuleHit};

    fn seg(text: &str) -> Segment {
        Segment { role: Role::User, text: text.into(), origin: "/messages/0/content".into() }
    }

    #[test]
    fn hash_mode_keeps_no_text_and_excerpt_mode_only_the_match() {
        let text = format!("{}SECRET-TRIGGER{}", "a".repeat(100), "b".repeat(100));
        let segments = vec![seg(&text)];
        let mut d = Decision::allow(Phase::Prompt, "x");
        d.push(RuleHit {
            policy: "p".into(),
            rule: "r".into(),
            detector: "phrases",
            action: Action::Block,
            applied: Action::Block,
            mode: Mode::Enforce,
            findings: vec![Finding {
                detector: "phrases",
                label: "t".into(),
                score: 1.0,
                segment: 0,
                span: 100..114,
                action: None,
            }],
            error: None,
        });
        let hashed = prompt(Privacy::Hash, &segments, &d).to_string();
        assert!(!hashed.contains("SECRET") && hashed.contains(&sha(text.as_bytes())), "{hashed}");
        let ex = prompt(Privacy::Excerpt, &segments, &d);
        let e = ex["excerpts"][0]["excerpt"].as_str().unwrap();
        assert_eq!(e, format!("{}SECRET-TRIGGER{}", "a".repeat(32), "b".repeat(32)));
        assert!(prompt(Privacy::Full, &segments, &d).to_string().contains(&text));
    }
}
