//! One loaded classifier model: its labels, a pool of sessions and a result cache.

use moka::sync::Cache;
use ort::session::Session;
use ort::value::Tensor;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use warden_core::cache::ByDigest;
use warden_core::stats;

/// How many results a model remembers (each about 100 bytes).
const CACHE_ENTRIES: u64 = 65_536;

/// Why a model could not be loaded or run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClassifierError {
    /// ONNX Runtime is missing or failed to start.
    #[error("{0}")]
    Runtime(String),
    /// The model file is not a usable Warden classifier.
    #[error("{0}")]
    Model(String),
    /// Inference failed.
    #[error("{0}")]
    Run(String),
}

/// A text classifier: text in, one probability per label out.
pub struct Model {
    name: String,
    digest: String,
    labels: Vec<String>,
    input: String,
    output: String,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    cache: Cache<[u8; 32], Arc<[f32]>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// The text as the model sees it: Warden's normal form (case folded, compatibility forms,
/// look-alikes mapped, invisible characters dropped, whitespace collapsed), without NUL, trimmed.
/// The trainer (`tools/classifier/train.py`) prepares its texts the same way.
pub fn prepare(normalized: &str) -> String {
    normalized.replace('\0', "").trim().to_string()
}

impl Model {
    /// Loads a model from its bytes (`name` is for messages). The same bytes loaded twice (a
    /// policy reload, two rules) share one model, its sessions and its cache.
    pub fn load(name: &str, bytes: &[u8]) -> Result<Arc<Model>, ClassifierError> {
        static LOADED: LazyLock<ByDigest<Model>> = LazyLock::new(ByDigest::default);
        let digest = hex::encode(Sha256::digest(bytes));
        LOADED.get_or_load(&digest, || Self::build(name, digest.clone(), bytes))
    }

    fn build(name: &str, digest: String, bytes: &[u8]) -> Result<Model, ClassifierError> {
        let env = crate::runtime::environment()?;
        let bad = |m: String| ClassifierError::Model(format!("`{name}`: {m}"));
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        let mut sessions = Vec::with_capacity(workers);
        for _ in 0..workers {
            sessions.push(session(env, bytes).map_err(|e| bad(format!("not a loadable ONNX model: {e}")))?);
        }
        let first = &sessions[0];
        let labels_json =
            first.metadata().ok().and_then(|m| m.custom("warden.labels")).ok_or_else(|| {
                bad("has no `warden.labels` metadata; train it with tools/classifier/train.py".into())
            })?;
        let labels: Vec<String> = serde_json::from_str(&labels_json)
            .map_err(|e| bad(format!("`warden.labels` is not a JSON list of names: {e}")))?;
        let input = match first.inputs() {
            [one] => one.name().to_string(),
            other => {
                return Err(bad(format!("takes {} inputs; a Warden classifier takes one string input", other.len())))
            }
        };
        let output = first
            .outputs()
            .iter()
            .map(|o| o.name().to_string())
            .find(|n| n == "probabilities")
            .ok_or_else(|| bad("has no `probabilities` output".into()))?;
        let model = Model {
            name: name.to_string(),
            digest,
            labels,
            input,
            output,
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            cache: Cache::new(CACHE_ENTRIES),
        };
        // One run now, so that a model whose output does not fit its labels fails at load.
        model.run(vec![String::new()])?;
        Ok(model)
    }

    /// The file name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sha256 of its bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Its labels, in the order of [`Model::classify`]'s probabilities.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The probability of each label for a text already in Warden's normal form; remembered.
    pub fn classify(&self, normalized: &str) -> Result<Arc<[f32]>, ClassifierError> {
        Ok(self.classify_many(&[normalized])?.pop().expect("one result per text"))
    }

    /// [`Model::classify`] for several texts (a document's windows): the ones not remembered run
    /// as one batch, which costs one call into ONNX Runtime rather than one per text and gives
    /// the same numbers as single runs.
    pub fn classify_many(&self, normalized: &[&str]) -> Result<Vec<Arc<[f32]>>, ClassifierError> {
        let texts: Vec<String> = normalized.iter().map(|t| prepare(t)).collect();
        let keys: Vec<[u8; 32]> = texts.iter().map(|t| Sha256::digest(t.as_bytes()).into()).collect();
        let mut out: Vec<Option<Arc<[f32]>>> = keys.iter().map(|k| self.cache.get(k)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| out[i].is_none()).collect();
        let hits = (texts.len() - missing.len()) as u64;
        stats::CLASSIFIER_CACHE_HITS.fetch_add(hits, Ordering::Relaxed);
        stats::CLASSIFIER_CACHE_MISSES.fetch_add(missing.len() as u64, Ordering::Relaxed);
        if !missing.is_empty() {
            let batch: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
            for (&i, probs) in missing.iter().zip(self.run(batch)?) {
                self.cache.insert(keys[i], Arc::clone(&probs));
                out[i] = Some(probs);
            }
        }
        Ok(out.into_iter().map(|p| p.expect("every text scored")).collect())
    }

    /// Runs the model on prepared texts (one batch), on the next free session.
    fn run(&self, texts: Vec<String>) -> Result<Vec<Arc<[f32]>>, ClassifierError> {
        let fail = |e: String| ClassifierError::Run(format!("classifier `{}` failed: {e}", self.name));
        let rows = texts.len();
        let input = Tensor::from_string_array(([rows, 1usize], &texts[..])).map_err(|e| fail(e.to_string()))?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        // Take the first idle session from a rotating start; if all are busy, wait for one.
        let mut guard = (0..n).find_map(|i| self.sessions[(start + i) % n].try_lock().ok());
        if guard.is_none() {
            guard = Some(self.sessions[start % n].lock().unwrap_or_else(|p| p.into_inner()));
        }
        let mut session = guard.expect("a session");
        let outputs = session.run(ort::inputs![self.input.as_str() => input]).map_err(|e| fail(e.to_string()))?;
        let (shape, data) =
            outputs[self.output.as_str()].try_extract_tensor::<f32>().map_err(|e| fail(e.to_string()))?;
        let width = self.labels.len();
        if data.len() != width * rows {
            return Err(fail(format!(
                "it gave {} probabilities (shape {shape:?}) for {rows} texts of {width} labels",
                data.len()
            )));
        }
        Ok(data.chunks(width).map(Into::into).collect())
    }
}

fn session(env: &ort::environment::Environment, bytes: &[u8]) -> ort::Result<Session> {
    // Builder errors carry the builder, which is not Send; keep only the message.
    let plain = |e: ort::Error<ort::session::builder::SessionBuilder>| ort::Error::new(e.to_string());
    Session::builder(env)?
        .with_intra_threads(1)
        .map_err(plain)?
        .with_inter_threads(1)
        .map_err(plain)?
        .commit_from_memory(bytes)
}
