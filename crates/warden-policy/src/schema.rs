//! The policy format's JSON Schema (`policies/schema/policy.schema.json`), checked on every load.
//!
//! Errors name the line and column in the YAML file, the field (`rules[2].action`) and what is
//! allowed, so that a policy author can fix a file without reading this code.

use crate::yamlpos::{field_name, Positions};
use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use jsonschema::Validator;
use serde_json::Value;
use std::sync::OnceLock;

/// The schema, as committed in `policies/schema/policy.schema.json`.
pub const POLICY_SCHEMA: &str = include_str!("../../../policies/schema/policy.schema.json");

/// Which kind of file is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A policy.
    Policy,
    /// A sibling `*.test.yaml`.
    Tests,
}

struct Compiled {
    schema: Value,
    policy: Validator,
    tests: Validator,
}

fn compiled() -> &'static Compiled {
    static C: OnceLock<Compiled> = OnceLock::new();
    C.get_or_init(|| {
        let schema: Value = serde_json::from_str(POLICY_SCHEMA).expect("the committed policy schema is valid JSON");
        let policy = jsonschema::validator_for(&schema).expect("the committed policy schema compiles");
        let mut tests_schema = schema.clone();
        tests_schema["$ref"] = Value::String("#/$defs/test_file".into());
        if let Some(o) = tests_schema.as_object_mut() {
            for k in ["properties", "required", "additionalProperties", "type"] {
                o.remove(k);
            }
        }
        let tests = jsonschema::validator_for(&tests_schema).expect("the committed test-file schema compiles");
        Compiled { schema, policy, tests }
    })
}

/// For a `oneOf`/`anyOf` failure, the error of the branch that matched the value's type: that is
/// the one the author meant ("sha256 is not 64 hex digits", not "no branch matched").
fn branch_error<'a>(e: &'a ValidationError<'a>) -> Option<&'a ValidationError<'a>> {
    let context = match e.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => context,
        _ => return None,
    };
    context
        .iter()
        .filter(|branch| !branch.iter().any(|b| matches!(b.kind(), ValidationErrorKind::Type { .. })))
        .flat_map(|branch| branch.iter())
        .next()
}

/// Places one error in the file and says it in words.
fn place(schema: &Value, pos: &Positions, value: &Value, e: &ValidationError<'_>) -> SchemaError {
    if let Some(inner) = branch_error(e) {
        return place(schema, pos, value, inner);
    }
    let path = e.instance_path().as_str().to_string();
    let (at, field, message) = match e.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            let member = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
            let allowed = allowed_properties(schema, e.schema_path().as_str());
            let hint =
                if allowed.is_empty() { String::new() } else { format!("; allowed here: {}", allowed.join(", ")) };
            (
                pos.key(&member).or_else(|| pos.value(&path)),
                field_name(&member),
                format!("unknown field `{name}`{hint}"),
            )
        }
        ValidationErrorKind::Enum { options } => {
            let allowed: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect())
                .unwrap_or_default();
            let got = value.pointer(&path).map_or_else(String::new, |v| v.to_string());
            (pos.value(&path), field_name(&path), format!("{got} is not allowed; use one of: {}", allowed.join(", ")))
        }
        _ => (pos.value(&path), field_name(&path), e.to_string()),
    };
    let (line, col) = at.map_or((0, 0), |p| (p.line, p.col));
    SchemaError { line, col, message: format!("{field}: {message}") }
}

/// The properties the schema allows at `schema_path` (the path of an `additionalProperties`
/// keyword), following `$ref`s.
fn allowed_properties(schema: &Value, schema_path: &str) -> Vec<String> {
    let parent = schema_path.strip_suffix("/additionalProperties").unwrap_or(schema_path);
    let mut node = schema;
    for seg in parent.split('/').skip(1) {
        if seg == "$ref" {
            continue;
        }
        node = match node
            .get(seg)
            .or_else(|| node.get("$ref").and_then(|r| resolve(schema, r)).and_then(|n| n.get(seg)))
        {
            Some(n) => n,
            None => return Vec::new(),
        };
    }
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        if let Some(n) = resolve(schema, &Value::String(r.into())) {
            node = n;
        }
    }
    // Sorted: the map's order depends on serde_json's `preserve_order`, which another crate of
    // the build may turn on.
    let mut keys: Vec<String> =
        node.get("properties").and_then(Value::as_object).map(|o| o.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

fn resolve<'a>(schema: &'a Value, r: &Value) -> Option<&'a Value> {
    r.as_str().and_then(|r| r.strip_prefix('#')).and_then(|p| schema.pointer(p))
}

/// A schema violation, placed in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// 1-based line (0 if unknown).
    pub line: usize,
    /// 1-based column (0 if unknown).
    pub col: usize,
    /// `FIELD: what is wrong`.
    pub message: String,
}

/// Checks a parsed file against the schema; errors are sorted by position.
pub fn check(kind: FileKind, text: &str, value: &Value) -> Vec<SchemaError> {
    let c = compiled();
    let validator = match kind {
        FileKind::Policy => &c.policy,
        FileKind::Tests => &c.tests,
    };
    let errors: Vec<_> = validator.iter_errors(value).collect();
    if errors.is_empty() {
        return Vec::new();
    }
    let pos = Positions::of(text);
    let mut out: Vec<SchemaError> = errors.iter().map(|e| place(&c.schema, &pos, value, e)).collect();
    out.sort_by(|a, b| (a.line, a.col, &a.message).cmp(&(b.line, b.col, &b.message)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        let v: Value = serde_yaml::from_str(text).unwrap();
        check(FileKind::Policy, text, &v).into_iter().map(|e| format!("{}:{}: {}", e.line, e.col, e.message)).collect()
    }

    #[test]
    fn unknown_field_points_at_the_key_and_lists_what_is_allowed() {
        let e = errs("name: x\nrules:\n  - id: a\n    action: block\n    phrase: { list: [p] }\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(
            e[0],
            "5:5: rules[0].phrase: unknown field `phrase`; allowed here: action, classifier, description, id, \
             invisible, mode, on_error, patterns, phases, phrases, plugin, roles, schema, steering, threshold"
        );
    }

    #[test]
    fn bad_enum_names_the_allowed_values_and_the_place() {
        let e = errs("name: x\nrules:\n  - id: a\n    action: explode\n    invisible: {}\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("4:13: rules[0].action: "), "{}", e[0]);
        assert_eq!(e[0], "4:13: rules[0].action: \"explode\" is not allowed; use one of: allow, flag, redact, block");
    }
}
