//! The process-wide wasmtime engine, its epoch ticker and the on-disk cache
//! of compiled components.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::{PluginHostOptions, PluginSource};

/// How often the epoch advances: the granularity of deadlines, and how often
/// a guest that computes for long yields its thread to other requests.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of each freed instance's memory stays mapped for the next one:
/// enough for a guest with a 128 KiB stack (13.6 us per call, as with 2 MiB),
/// little enough that the warm slots the pool keeps stay cheap (RSS after the
/// registry benchmark: 27.5 MiB at 512 KiB, 36.9 MiB at 2 MiB).
const KEEP_RESIDENT: usize = 512 << 10;

/// One engine per process: component model, async (fibers, not the
/// experimental async component model, which made every call ~6x slower),
/// epoch interruption, and the pooling allocator so a fresh instance per call
/// is cheap.
pub(crate) fn new_engine(options: &PluginHostOptions) -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    let slots = options.max_instances;
    pool.total_component_instances(slots)
        .total_core_instances(slots * 4)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_memory_size(options.memory_limit as usize)
        // Reset a freed slot's first pages with memset instead of giving them
        // back to the kernel: a fresh instance per call otherwise pays a page
        // fault for every page its stack and heap touch.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .decommit_batch_size(16);

    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advances the engine's epoch until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("berth-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread at startup");
}

/// The sha256 of a component, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compiles `source`, or loads its compiled form from `cache_dir`. The cache key
/// is the component's sha256 and the engine's compatibility fingerprint, so a
/// restart does not recompile and a new wasmtime or setting never loads a
/// stale artifact. A cache that cannot be read or written only costs time.
pub(crate) fn compile(engine: &Engine, source: &PluginSource, cache_dir: Option<&Path>) -> anyhow::Result<Component> {
    let Some(dir) = cache_dir else {
        return Ok(Component::new(engine, source.wasm())?);
    };
    let path = cache_path(engine, source.sha256(), dir);
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` into our own
        // cache directory; wasmtime checks its header and engine fingerprint.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(err) => tracing::warn!(path = %path.display(), "ignoring unusable compiled component: {err:#}"),
        }
    }
    let component = Component::new(engine, source.wasm())?;
    if let Err(err) = store_compiled(&component, dir, &path) {
        tracing::warn!(path = %path.display(), "could not cache the compiled component: {err:#}");
    }
    Ok(component)
}

fn cache_path(engine: &Engine, sha256: &str, dir: &Path) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
}

/// Writes through a temporary file and a rename, so that a concurrent start
/// never reads half a file.
fn store_compiled(component: &Component, dir: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    write_atomically(path, &component.serialize()?)?;
    Ok(())
}

/// Writes `content` to `path` through a temporary file beside it and a
/// rename, creating the directory; a reader sees the old file or the new.
pub fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, content)?;
    file.persist(path)?;
    Ok(())
}

/// Where compiled components are cached when the configuration says nothing:
/// `$XDG_CACHE_HOME/berth/components`, else `~/.cache/berth/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("berth").join("components"))
}
