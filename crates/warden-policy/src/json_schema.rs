//! The `schema` detector: structured output must be JSON valid against a JSON Schema.
//!
//! A model asked for JSON that answers with something else (prose, a different shape, an extra
//! field carrying a link) is a finding. The text may be bare JSON or one fenced code block
//! (```` ```json ... ``` ````), as models often answer. It judges whole texts only: in a stream,
//! rules that could block hold the answer until it ends.

use jsonschema::Validator;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use warden_core::{Detector, DetectorError, Hit, ScanText};

/// Checks texts against a compiled JSON Schema.
#[derive(Clone)]
pub struct JsonSchemaDetector {
    validator: Arc<Validator>,
}

impl fmt::Debug for JsonSchemaDetector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsonSchemaDetector")
    }
}

impl JsonSchemaDetector {
    /// Compiles a schema; the error says why it is not a valid schema.
    pub fn new(schema: &Value) -> Result<Self, String> {
        let validator =
            jsonschema::validator_for(schema).map_err(|e| format!("schema: not a valid JSON Schema: {e}"))?;
        Ok(Self { validator: Arc::new(validator) })
    }
}

/// The JSON inside a text: the text itself, or the body of its one fenced code block.
fn json_body(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.split_once('\n').map_or("", |(_, body)| body);
        return rest.trim_end().strip_suffix("```").unwrap_or(rest).trim();
    }
    t
}

impl Detector for JsonSchemaDetector {
    fn kind(&self) -> &'static str {
        "schema"
    }

    fn scan(&self, input: &ScanText<'_>) -> Result<Vec<Hit>, DetectorError> {
        let text = input.text();
        let whole = 0..text.len();
        let value: Value = match serde_json::from_str(json_body(text)) {
            Ok(v) => v,
            Err(e) => return Ok(vec![Hit::new(format!("not JSON: {e}"), 1.0, whole)]),
        };
        Ok(self
            .validator
            .iter_errors(&value)
            .take(1)
            .map(|e| {
                let at = e.instance_path().as_str().to_string();
                let at = if at.is_empty() { "/".to_string() } else { at };
                Hit::new(format!("at {at}: {e}"), 1.0, whole.clone())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shape_is_checked() {
        let d = JsonSchemaDetector::new(&json!({"type":"object","required":["answer"],"additionalProperties":false,
            "properties":{"answer":{"type":"string"}}}))
        .unwrap();
        let scan = |t: &str| d.scan(&ScanText::new(t)).unwrap();
        assert!(scan(r#"{"answer":"42"}"#).is_empty());
        assert!(scan("```json\n{\"answer\":\"42\"}\n```").is_empty());
        assert!(scan("The answer is 42.")[0].label.starts_with("not JSON"));
        let h = scan(r#"{"answer":"42","link":"http://evil"}"#);
        assert!(h[0].label.contains("link"), "{}", h[0].label);
    }
}
