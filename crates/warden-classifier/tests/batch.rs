//! A document's windows run as one batch: the batch must give the trainer's single-text numbers.
//! A test binary of its own, so that no other test has filled the model's cache first and every
//! text really runs in the batch.

use std::path::PathBuf;
use warden_classifier::Model;
use warden_core::normalize::normalize;

#[derive(serde::Deserialize)]
struct Row {
    text: String,
    probabilities: std::collections::BTreeMap<String, f32>,
}

#[test]
fn a_batch_gives_the_trainers_single_text_probabilities() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let bytes = std::fs::read(root.join("policies/models/guard-classifier.onnx")).unwrap();
    let m = Model::load("guard-classifier.onnx", &bytes).expect("run scripts/setup-ort.sh first");
    let fixture = std::fs::read_to_string(root.join("crates/warden-classifier/tests/fixtures/parity.jsonl")).unwrap();
    let rows: Vec<Row> = fixture.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let normalized: Vec<String> = rows.iter().map(|r| normalize(&r.text).text().to_string()).collect();
    let batch = m.classify_many(&normalized.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
    assert_eq!(batch.len(), rows.len());
    for (row, got) in rows.iter().zip(&batch) {
        for (i, label) in m.labels().iter().enumerate() {
            let want = row.probabilities[label];
            assert!((got[i] - want).abs() < 1e-4, "{label}: got {} want {want} for {:?}", got[i], &row.text);
        }
    }
}
