//! Made-up log probabilities in the two OpenAI shapes: the chat shape (one
//! entry per token, with `bytes` and a `top_logprobs` list) and the legacy
//! completions shape (parallel lists, `top_logprobs` as dicts).
//!
//! A "token" here is one streamed delta (`x-mock-chunk` characters), so the
//! entries of a whole answer and of its streamed deltas are the same. The
//! numbers are deterministic: token `k` has logprob `-(0.0125 + 0.25 * (k % 5))`,
//! and its alternatives are common English tokens, each less likely.

use serde_json::{json, Map, Value};

/// Alternative tokens offered in `top_logprobs`, in order (20: the API's maximum).
const ALTERNATIVES: [&str; 20] = [
    " the", ",", " a", ".", " and", " to", " of", " is", "\n", " I", " it", " that", " in", " you", " for", " on",
    " with", " as", " this", " be",
];

/// The most `top_logprobs` alternatives the chat API accepts.
pub(crate) const MAX_TOP_CHAT: u64 = 20;
/// The most `logprobs` alternatives the legacy completions API accepts.
pub(crate) const MAX_TOP_LEGACY: u64 = 5;

fn logprob(k: usize) -> f64 {
    -(0.0125 + 0.25 * (k % 5) as f64)
}

/// `top` (token, logprob) pairs at position `k`: the token itself first, then
/// alternatives with lower logprobs.
fn top_pairs(token: &str, k: usize, top: usize) -> Vec<(&str, f64)> {
    let mut out = Vec::with_capacity(top);
    if top == 0 {
        return out;
    }
    out.push((token, logprob(k)));
    let mut j = 0;
    for alt in ALTERNATIVES.iter().filter(|a| **a != token) {
        if out.len() == top {
            break;
        }
        j += 1;
        out.push((alt, logprob(k) - 1.5 * j as f64));
    }
    out
}

/// One chat `logprobs.content[]` entry for `token` at position `k`.
pub(crate) fn chat_entry(token: &str, k: usize, top: usize) -> Value {
    let tops: Vec<Value> = top_pairs(token, k, top)
        .into_iter()
        .map(|(t, lp)| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()}))
        .collect();
    json!({"token": token, "logprob": logprob(k), "bytes": token.as_bytes(), "top_logprobs": tops})
}

/// The chat entries of `tokens`, numbered from 0.
pub(crate) fn chat_entries(tokens: &[&str], top: usize) -> Vec<Value> {
    tokens.iter().enumerate().map(|(k, t)| chat_entry(t, k, top)).collect()
}

/// A legacy completions `logprobs` object for `tokens`, the first numbered
/// `first` and starting at character `offset` of prompt + completion.
pub(crate) fn legacy(tokens: &[&str], first: usize, offset: usize, top: usize) -> Value {
    let mut text_offset = Vec::with_capacity(tokens.len());
    let mut at = offset;
    for t in tokens {
        text_offset.push(at);
        at += t.chars().count();
    }
    let token_logprobs: Vec<f64> = (0..tokens.len()).map(|i| logprob(first + i)).collect();
    let top_logprobs: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let m: Map<String, Value> =
                top_pairs(t, first + i, top).into_iter().map(|(t, lp)| (t.to_owned(), Value::from(lp))).collect();
            Value::Object(m)
        })
        .collect();
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_entry_shape() {
        let e = chat_entry("hé", 1, 3);
        assert_eq!(e["token"], "hé");
        assert_eq!(e["bytes"], json!([104, 195, 169]));
        assert!((e["logprob"].as_f64().unwrap_or(0.0) + 0.2625).abs() < 1e-12, "{e}");
        let tops = e["top_logprobs"].as_array().expect("array");
        assert_eq!(tops.len(), 3);
        assert_eq!(tops[0]["token"], "hé");
        assert!(tops[1]["logprob"].as_f64() < tops[0]["logprob"].as_f64());
        assert_eq!(chat_entry(",", 0, 2)["top_logprobs"][1]["token"], " the");
        assert_eq!(chat_entry(" the", 0, 2)["top_logprobs"][1]["token"], ",");
        assert_eq!(chat_entry("x", 0, 0)["top_logprobs"], json!([]));
    }

    #[test]
    fn legacy_offsets_count_characters() {
        let v = legacy(&["日本", "語"], 0, 4, 2);
        assert_eq!(v["text_offset"], json!([4, 6]));
        assert_eq!(v["tokens"], json!(["日本", "語"]));
        assert_eq!(v["top_logprobs"][0].as_object().map(Map::len), Some(2));
        assert_eq!(v["token_logprobs"].as_array().map(Vec::len), Some(2));
    }
}
