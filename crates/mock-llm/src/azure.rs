//! What Azure OpenAI adds to the OpenAI chat shape: content filter results
//! for the prompt and for each choice, and its own "not found" error.

use serde_json::{json, Value};

fn safe() -> Value {
    json!({"filtered": false, "severity": "safe"})
}

fn not_detected() -> Value {
    json!({"filtered": false, "detected": false})
}

/// Top-level `prompt_filter_results` (one prompt, nothing filtered).
pub(crate) fn prompt_filter_results() -> Value {
    json!([{
        "prompt_index": 0,
        "content_filter_results": {
            "hate": safe(),
            "jailbreak": not_detected(),
            "self_harm": safe(),
            "sexual": safe(),
            "violence": safe(),
        },
    }])
}

/// A choice's `content_filter_results` for generated text (nothing filtered).
pub(crate) fn choice_filter_results() -> Value {
    json!({
        "hate": safe(),
        "protected_material_code": not_detected(),
        "protected_material_text": not_detected(),
        "self_harm": safe(),
        "sexual": safe(),
        "violence": safe(),
    })
}

/// The first chunk of an Azure stream: no choices, empty id/model/object,
/// only the prompt's filter results.
pub(crate) fn prompt_filter_chunk() -> Value {
    json!({
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    })
}

/// Azure's answer to a deployments path without `api-version`:
/// 404 `{"error":{"code":"404","message":"Resource not found"}}`.
pub(crate) fn resource_not_found_json() -> Vec<u8> {
    json!({"error": {"code": "404", "message": "Resource not found"}}).to_string().into_bytes()
}
