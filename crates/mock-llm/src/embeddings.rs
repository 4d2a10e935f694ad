//! OpenAI embeddings (`POST /v1/embeddings`, also Azure's deployments path).
//!
//! Each input gets a deterministic unit vector derived from its text (the same
//! text always gets the same vector), as floats or, with
//! `encoding_format: "base64"` (what the `openai` Python SDK asks for by
//! default), as base64 of little-endian `f32`s.

use base64::Engine as _;
use serde_json::{json, Value};

use crate::reply::count_tokens;

/// Vector length when the request gives no `dimensions` (that of
/// `text-embedding-3-small` and `text-embedding-ada-002`).
pub(crate) const DEFAULT_DIMENSIONS: usize = 1536;
/// The largest `dimensions` accepted.
const MAX_DIMENSIONS: u64 = 8192;

/// The texts to embed: `input` as a string, a list of strings, a list of
/// token ids, or a list of token id lists (tokens are embedded as their
/// decimal text).
pub(crate) fn inputs(body: &Value) -> Result<Vec<String>, String> {
    let tokens = |v: &[Value]| -> Option<String> {
        v.iter().map(|t| t.as_u64().map(|n| n.to_string())).collect::<Option<Vec<_>>>().map(|t| t.join(" "))
    };
    match body.get("input") {
        None | Some(Value::Null) => Err("'input' is a required property".into()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if items.is_empty() => Err("'input' must not be empty".into()),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            tokens(items).map(|t| vec![t]).ok_or_else(|| "'input' token ids must be non-negative integers".into())
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                Value::Array(t) => tokens(t).ok_or_else(|| format!("'input'[{i}]: token ids must be integers")),
                _ => Err(format!("'input'[{i}] must be a string or a list of token ids")),
            })
            .collect(),
        Some(_) => Err("'input' must be a string or a list of strings".into()),
    }
}

/// The requested vector length.
pub(crate) fn dimensions(body: &Value) -> Result<usize, String> {
    match body.get("dimensions") {
        None | Some(Value::Null) => Ok(DEFAULT_DIMENSIONS),
        Some(v) => match v.as_u64() {
            Some(n @ 1..=MAX_DIMENSIONS) => Ok(n as usize),
            _ => Err(format!("'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}")),
        },
    }
}

/// Whether the request asks for base64 vectors (`float` is the default).
pub(crate) fn wants_base64(body: &Value) -> Result<bool, String> {
    match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => Ok(false),
        Some("base64") => Ok(true),
        Some(other) => Err(format!("'encoding_format' must be float or base64, got {other:?}")),
    }
}

/// A deterministic unit vector for `text` (FNV-1a seed, splitmix64 stream).
pub(crate) fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state =
        text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let raw: Vec<f64> = (0..dims).map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).collect();
    let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

/// The `list` of embeddings for `texts`.
pub(crate) fn embeddings_json(model: &str, texts: &[String], dims: usize, base64: bool) -> Vec<u8> {
    let data: Vec<Value> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let v = vector(t, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                // The shortest decimal of each f32 (`0.0023064255`), as the API writes them.
                Value::from(
                    v.iter().map(|f| f.to_string().parse::<f64>().unwrap_or(f64::from(*f))).collect::<Vec<f64>>(),
                )
            };
            json!({"object": "embedding", "embedding": embedding, "index": i})
        })
        .collect();
    let tokens: u64 = texts.iter().map(|t| count_tokens(t)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_and_vectors() {
        assert_eq!(inputs(&json!({"input": "a"})).expect("ok"), vec!["a"]);
        assert_eq!(inputs(&json!({"input": ["a", "b"]})).expect("ok"), vec!["a", "b"]);
        assert_eq!(inputs(&json!({"input": [1, 2]})).expect("ok"), vec!["1 2"]);
        assert_eq!(inputs(&json!({"input": [[1], [2, 3]]})).expect("ok"), vec!["1", "2 3"]);
        assert!(inputs(&json!({})).is_err());
        assert!(inputs(&json!({"input": [{}]})).is_err());
        assert!(dimensions(&json!({"dimensions": 0})).is_err());
        let v = vector("hello", 64);
        assert_eq!(v, vector("hello", 64));
        assert_ne!(v, vector("hellp", 64));
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
