//! The process's wasmtime engine: configuration, the epoch clock behind time limits, and the
//! cache of compiled components.

use crate::plugin::{Plugin, PluginError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use warden_core::cache::ByDigest;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// How often the epoch clock ticks; time limits are counted in these ticks.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// The largest memory cap a rule may ask for; the pooling allocator reserves slots this big.
pub const MAX_MEMORY_BYTES: usize = 512 << 20;

/// How many plugin calls may run at once across the process. Warden's detector pool stays
/// below it; the pooling allocator has room for four times as many instances, since a component
/// may hold several core modules.
pub const MAX_CONCURRENT_CALLS: usize = 64;

/// Pooling allocator slots (component instances; core instances, memories and tables are
/// sized from it).
const POOL_SLOTS: u32 = MAX_CONCURRENT_CALLS as u32 * 4;

/// Host settings.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    /// Where precompiled components are kept between runs (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
}

impl HostConfig {
    /// The default: `$WARDEN_CACHE/plugins`, else `$HOME/.cache/warden/plugins`.
    pub fn from_env() -> Self {
        Self { cache_dir: warden_core::cache::cache_dir().map(|b| b.join("plugins")) }
    }
}

/// The wasmtime engine and the components compiled on it.
pub struct Host {
    engine: Engine,
    config: HostConfig,
    /// Loaded plugins by the sha256 of their bytes, so a reload reuses what is compiled.
    loaded: ByDigest<Plugin>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("config", &self.config).finish_non_exhaustive()
    }
}

fn engine_config(pooling: bool) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.cranelift_opt_level(OptLevel::Speed);
    if pooling {
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(POOL_SLOTS)
            .total_core_instances(POOL_SLOTS * 2)
            .total_memories(POOL_SLOTS * 2)
            .total_tables(POOL_SLOTS * 2)
            .max_memory_size(MAX_MEMORY_BYTES)
            // Keep a little of each slot's memory mapped between instances: cheaper reuse.
            .linear_memory_keep_resident(64 << 10);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    c
}

impl Host {
    /// The process's host, created on first use with [`HostConfig::from_env`].
    pub fn global() -> &'static Arc<Host> {
        static HOST: OnceLock<Arc<Host>> = OnceLock::new();
        HOST.get_or_init(|| Arc::new(Host::new(HostConfig::from_env())))
    }

    /// A host with its own engine and epoch clock. The pooling allocator is used when the
    /// machine lets it reserve its slots, else instances are allocated on demand.
    pub fn new(config: HostConfig) -> Host {
        let engine = match Engine::new(&engine_config(true)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "plugin pooling allocator unavailable; allocating instances on demand");
                Engine::new(&engine_config(false)).expect("the plain wasmtime configuration is valid")
            }
        };
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("warden-plugin-clock".into())
            .spawn(move || loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => return,
                }
            })
            .expect("spawn the plugin epoch clock");
        Host { engine, config, loaded: ByDigest::default() }
    }

    /// The engine.
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a plugin from its bytes (`name` is for messages), checking that it is a component
    /// of the `warden:plugin` world that imports nothing. Compiled code is reused from memory
    /// or from the disk cache when the same bytes were seen before.
    pub fn load(self: &Arc<Self>, name: &str, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        self.loaded.get_or_load(&sha256, || {
            let component = self.compile(name, &sha256, bytes)?;
            Plugin::new(Arc::clone(self), name, sha256.clone(), component)
        })
    }

    /// Compiles, or deserialises a precompiled artefact from the cache directory.
    fn compile(&self, name: &str, sha256: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        if wasmparser_is_core_module(bytes) {
            return Err(PluginError::Load(format!(
                "`{name}` is a core WebAssembly module, not a component: wrap it with \
                 `wasm-tools component new` (see plugins/README.md)"
            )));
        }
        let cached = self.config.cache_dir.as_ref().map(|d| cache_path(d, sha256));
        if let Some(artefact) = cached.as_deref().and_then(|p| read_trusted(p, name)) {
            // SAFETY: a precompiled artefact is native code that runs outside the sandbox, so
            // it is only read when the directory and the file belong to this user and nobody
            // else can write them (`read_trusted`): then only this user, who could as well
            // replace Warden's binary, could have written it, and Warden writes it only with
            // `Component::serialize` under the sha256 of the component's source. wasmtime
            // checks the engine configuration and version on load and refuses an artefact
            // that does not fit. It is read into memory rather than mapped, so that a file
            // truncated while Warden runs cannot fault the process.
            match unsafe { Component::deserialize(&self.engine, &artefact) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::info!(plugin = name, error = %e, "precompiled plugin not reusable; compiling"),
            }
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::Load(format!("`{name}` is not a valid WebAssembly component: {e:#}")))?;
        if let Some(path) = cached {
            if let Err(e) = store_artefact(&path, &component) {
                tracing::warn!(plugin = name, error = %e, "cannot cache the compiled plugin");
            }
        }
        Ok(component)
    }
}

/// Whether the bytes are a core module (version 1) rather than a component.
fn wasmparser_is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

fn cache_path(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(format!("{sha256}.cwasm"))
}

fn store_artefact(path: &Path, component: &Component) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().expect("cache files live in a directory");
    create_private_dir(dir)?;
    if !private(dir) {
        return Err(std::io::Error::other(format!(
            "{} is writable by other users or not owned by this one; not caching there",
            dir.display()
        )));
    }
    let data = component.serialize().map_err(std::io::Error::other)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    // `create_new` refuses an existing file or symlink at the temporary path.
    let mut f = private_file_options().open(&tmp)?;
    f.write_all(&data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The artefact's bytes, if the directory and the file are this user's and no one else can write
/// them; otherwise `None` (and the component is compiled afresh).
fn read_trusted(path: &Path, name: &str) -> Option<Vec<u8>> {
    let dir = path.parent()?;
    if !path.exists() {
        return None;
    }
    if !(private(dir) && private(path)) {
        tracing::warn!(
            plugin = name,
            path = %path.display(),
            "ignoring a precompiled plugin that other users could have written; compiling it instead"
        );
        return None;
    }
    std::fs::read(path).ok()
}

/// Whether `p` (not following a symlink) belongs to this user and is not group- or
/// world-writable.
#[cfg(unix)]
fn private(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        !m.file_type().is_symlink() && m.uid() == me && m.mode() & 0o022 == 0
    })
}

#[cfg(not(unix))]
fn private(_: &Path) -> bool {
    false
}

#[cfg(unix)]
fn private_file_options() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true).mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    o
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}
