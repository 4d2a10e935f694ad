//! The classifier detector: an ONNX text classifier run by ONNX Runtime (through `ort`).
//!
//! A model is a string-input pipeline (scikit-learn TF-IDF + logistic regression converted with
//! skl2onnx; see `tools/classifier/`) that maps one text to one probability per label. Its labels
//! are in the model's own metadata (`warden.labels`), so a policy that names a label the model
//! does not have is refused at load. The text is normalised first with Warden's normaliser (case
//! fold, compatibility forms, look-alike letters, invisible characters), the same way the trainer
//! did, so obfuscation does not hide text from the model.
//!
//! - [`runtime`]: finding and loading the ONNX Runtime library (never bundled: the set-up script
//!   fetches it from PyPI).
//! - [`Model`]: one loaded model, a small pool of sessions and a result cache keyed by the
//!   normalised text (a system prompt or a RAG document repeats across many requests).
//! - [`ClassifierDetector`]: a model with a rule's per-label thresholds, as a
//!   [`warden_core::Detector`], with a streaming form that judges completed sentences.

mod detector;
mod model;
pub mod runtime;
pub mod windows;

pub use detector::ClassifierDetector;
pub use model::{ClassifierError, Model};
