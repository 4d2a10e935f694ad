//! Every policy example in the documentation validates against the committed schema: the docs
//! cannot drift from the format.

use serde_json::Value;
use std::path::Path;
use warden_policy::schema::{check, FileKind};

/// The ```yaml blocks of a Markdown file, and the ```yaml blocks of `//!` doc comments.
fn yaml_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        let l = line.strip_prefix("//! ").or_else(|| line.strip_prefix("//!")).unwrap_or(line);
        match (&mut cur, l.trim_start()) {
            (None, t) if t.starts_with("```yaml") => cur = Some(String::new()),
            (Some(_), t) if t.starts_with("```") => out.push(cur.take().unwrap_or_default()),
            (Some(b), _) => {
                b.push_str(l);
                b.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_policy_example_in_the_docs_validates() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for doc in ["README.md", "crates/warden-policy/src/model.rs"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for block in yaml_blocks(&text) {
            let value: Value = serde_yaml::from_str(&block).unwrap_or_else(|e| panic!("{doc}: not YAML: {e}\n{block}"));
            // Policy examples are the blocks with a name and rules; config examples are others.
            let kind = if value.get("rules").is_some() {
                FileKind::Policy
            } else if value.get("tests").is_some() && value.get("name").is_none() {
                FileKind::Tests
            } else {
                continue;
            };
            let errors = check(kind, &block, &value);
            assert!(errors.is_empty(), "{doc}: an example does not validate: {errors:?}\n{block}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} examples found");
}
