//! Finding and loading ONNX Runtime.
//!
//! `ort` loads the library at run time (`load-dynamic`): Warden links nothing at build time, and
//! the library comes from the PyPI wheel `onnxruntime==1.31.1`, which `scripts/setup-ort.sh`
//! fetches. Loading a missing library would panic inside `ort`, so the path is checked first and
//! a missing library is an error that says how to get it.

use crate::model::ClassifierError;
use ort::environment::Environment;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The ONNX Runtime version the `ort` binding is built for.
pub const ORT_VERSION: &str = "1.31.1";

/// Where the library is: `ORT_DYLIB_PATH`, else where `scripts/setup-ort.sh` puts it
/// (`$WARDEN_CACHE` or `~/.cache/warden`, then `onnxruntime-1.31.1/libonnxruntime.so.1.31.1`).
pub fn library_path() -> Result<PathBuf, ClassifierError> {
    let path = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) => PathBuf::from(p),
        None => warden_core::cache::cache_dir()
            .unwrap_or_default()
            .join(format!("onnxruntime-{ORT_VERSION}/libonnxruntime.so.{ORT_VERSION}")),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(ClassifierError::Runtime(format!(
            "ONNX Runtime not found at {}: run scripts/setup-ort.sh (make does it) and set ORT_DYLIB_PATH \
             to the libonnxruntime.so.{ORT_VERSION} it prints",
            path.display()
        )))
    }
}

/// The process's ONNX Runtime environment, loaded on first use. A failure is not remembered:
/// once the library is installed, the next policy load (a reload) succeeds without a restart.
pub(crate) fn environment() -> Result<&'static Environment, ClassifierError> {
    static ENV: OnceLock<Environment> = OnceLock::new();
    static LOADING: Mutex<()> = Mutex::new(());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let _one_at_a_time = LOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(env) = ENV.get() {
        return Ok(env);
    }
    let path = library_path()?;
    let builder = ort::init_from(&path)
        .map_err(|e| ClassifierError::Runtime(format!("cannot load ONNX Runtime from {}: {e}", path.display())))?;
    let env = builder
        .with_name("warden")
        .build()
        .map_err(|e| ClassifierError::Runtime(format!("cannot start ONNX Runtime from {}: {e}", path.display())))?;
    Ok(ENV.get_or_init(|| env))
}
