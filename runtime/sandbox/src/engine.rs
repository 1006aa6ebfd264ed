//! The sandbox: one wasmtime engine (pooling allocator, fuel, epochs), one
//! linker with every host capability, and the cache of loaded adapters keyed
//! by content hash.
use crate::adapter_cache::AdapterCache;
use crate::artifacts::ArtifactStore;
use crate::bindings::{self, ProvisioningPre};
use crate::call::{self, CallEnv, CallReport, CallRequest, InputError};
use crate::codegen::{codegen_config, CodeGen};
use crate::compiler::{self, Compiler};
use crate::component_check::World;
use crate::component_check::{self, sha256_hex};
use crate::egress::resolver::{Resolver, SystemResolver};
use crate::egress::tape::HttpTape;
use crate::error::SandboxError;
use crate::host_state::{HostContext, HostState};
use crate::loader::{AdapterExports, LoadedAdapter};
use crate::structure::{self, ComponentLimits};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine-wide settings (per-call limits live in `Limits`).
#[derive(Clone)]
pub struct SandboxConfig {
    /// Instances that can exist at once (pooling allocator slots). Each slot
    /// reserves address space, not memory.
    pub max_concurrent_instances: u32,
    /// Epoch tick: the granularity of wall-clock deadlines.
    pub epoch_tick: Duration,
    /// Host-side DNS for outbound requests.
    pub resolver: Arc<dyn Resolver>,
    /// Largest linear memory a single memory may reach (the per-call limit on
    /// the sum of memories is enforced separately and is usually lower).
    pub max_memory_bytes: usize,
    /// Wasm stack for guest code; deep recursion traps past it.
    pub max_wasm_stack: usize,
    /// Per memory slot, bytes kept resident (and reset in place) between
    /// instances instead of being returned to the kernel.
    pub keep_resident_bytes: usize,
    /// Structural limits checked before compiling (see `ComponentLimits`).
    pub component_limits: ComponentLimits,
    /// Where components are compiled: in process (default) or in a child
    /// process under a time and memory budget (the `panel1` binary).
    pub compiler: Compiler,
    /// Cranelift (default) or Winch; a child compiler must be started with
    /// the same (see `panel1 internal compile-component --codegen`).
    pub codegen: CodeGen,
    /// Compiled adapters kept for reuse (least recently used evicted).
    /// Default 64.
    pub max_cached_adapters: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_concurrent_instances: 256,
            epoch_tick: Duration::from_millis(5),
            resolver: Arc::new(SystemResolver),
            max_memory_bytes: 1 << 30,
            max_wasm_stack: 512 << 10,
            keep_resident_bytes: 64 << 20,
            component_limits: ComponentLimits::default(),
            compiler: Compiler::InProcess,
            codegen: CodeGen::Cranelift,
            max_cached_adapters: 64,
        }
    }
}

/// Increments the engine's epoch every tick until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("panel1-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct Sandbox {
    engine: Engine,
    linker: Linker<HostState>,
    config: SandboxConfig,
    tls: Arc<rustls::ClientConfig>,
    cache: AdapterCache,
    _ticker: EpochTicker,
}

fn internal(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Internal(format!("{what}: {e}"))
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_concurrent_instances)
            .total_core_instances(config.max_concurrent_instances * 8)
            .total_memories(config.max_concurrent_instances * 4)
            .total_tables(config.max_concurrent_instances * 8)
            .total_stacks(config.max_concurrent_instances)
            .max_memory_size(config.max_memory_bytes)
            .max_core_instances_per_component(64)
            .max_memories_per_component(16)
            .max_tables_per_component(64)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            // Reset only the pages a call dirtied (PAGEMAP_SCAN, Linux 6.7+)
            // and keep them resident: the next instance in the slot takes no
            // page faults. Falls back to madvise elsewhere.
            .pagemap_scan(Enabled::Auto)
            .linear_memory_keep_resident(config.keep_resident_bytes)
            .table_keep_resident(1 << 20);
        let mut wasm = codegen_config(config.codegen);
        wasm.max_wasm_stack(config.max_wasm_stack)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| internal("creating the wasmtime engine", e))?;

        let mut linker: Linker<HostState> = Linker::new(&engine);
        // WASI 0.2 imports resolve through semver (a guest built against
        // 0.2.3 links to the host's 0.2.12).
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| internal("linking WASI", e))?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| internal("linking wasi:http", e))?;
        use bindings::panel1::provisioning as p1;
        p1::types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| internal("linking types", e))?;
        p1::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| internal("linking secrets", e))?;
        p1::secrets_reveal::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| internal("linking secrets-reveal", e))?;
        p1::config::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| internal("linking config", e))?;
        p1::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| internal("linking log", e))?;

        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick);
        Ok(Sandbox {
            engine,
            linker,
            tls: crate::egress::default_tls_config(),
            cache: AdapterCache::new(config.max_cached_adapters),
            config,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiler this sandbox's code comes from (part of an artifact's
    /// key).
    pub fn codegen(&self) -> CodeGen {
        self.config.codegen
    }

    fn cached(&self, hash: &str) -> Option<Arc<LoadedAdapter>> {
        self.cache.get(hash)
    }

    /// How many compiled adapters are kept for reuse.
    pub fn cached_adapters(&self) -> usize {
        self.cache.len()
    }

    /// Check the component's structure and world, then compile it (or
    /// return the cached adapter with the same content hash). Nothing is
    /// compiled before the structural limits and the world check pass.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedAdapter>, SandboxError> {
        component_check::ensure_component_bytes(bytes)?;
        let hash = sha256_hex(bytes);
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let world = self.precheck(bytes)?;
        let component = self.compile(bytes)?;
        self.finish_load(component, world, bytes)
    }

    /// Like [`Sandbox::load`], but through a precompiled-artifact store: a
    /// verified artifact is memory-mapped instead of compiled; a missing one
    /// is compiled by the configured compiler and stored.
    pub fn load_with_artifacts(
        &self,
        bytes: &[u8],
        artifacts: &ArtifactStore,
    ) -> Result<Arc<LoadedAdapter>, SandboxError> {
        component_check::ensure_component_bytes(bytes)?;
        let hash = sha256_hex(bytes);
        if let Some(hit) = self.cached(&hash) {
            return Ok(hit);
        }
        let world = self.precheck(bytes)?;
        let component = match artifacts.load(&self.engine, self.config.codegen, &hash) {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => {
                // Missing or failed verification: compile from the source
                // bytes and (re)write the artifact.
                let component = self.compile(bytes)?;
                artifacts
                    .store(&self.engine, self.config.codegen, &hash, &component)
                    .map_err(|e| internal("writing the precompiled artifact", e))?;
                component
            }
        };
        self.finish_load(component, world, bytes)
    }

    /// The structural limits and the world (exports and imports), read from
    /// the bytes in one pass, before any compiling.
    fn precheck(&self, bytes: &[u8]) -> Result<World, SandboxError> {
        let structure = structure::scan(
            bytes,
            &self.config.component_limits,
            self.config.max_memory_bytes as u64,
        )?;
        component_check::check_world(structure)
    }

    fn compile(&self, bytes: &[u8]) -> Result<Component, SandboxError> {
        match &self.config.compiler {
            Compiler::InProcess => compiler::compile_in_process(&self.engine, bytes),
            Compiler::ChildProcess(child) => child.compile(&self.engine, bytes),
        }
    }

    fn finish_load(
        &self,
        component: Component,
        world: World,
        bytes: &[u8],
    ) -> Result<Arc<LoadedAdapter>, SandboxError> {
        let report = world.report(bytes);
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
        // Type-check every adapter export against the world once, here;
        // calls then use the resolved indices (see `call::invoke`).
        let typecheck = match report.world_version.as_str() {
            "0.2.0" => bindings::v2::ProvisioningPre::new(pre.clone()).map(drop),
            _ => ProvisioningPre::new(pre.clone()).map(drop),
        };
        typecheck.map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
        let exports =
            AdapterExports::resolve(&component, &report.world_version).ok_or_else(|| {
                SandboxError::InvalidComponent("adapter exports could not be resolved".into())
            })?;
        let loaded = Arc::new(LoadedAdapter {
            report,
            component,
            pre,
            exports,
        });
        self.cache
            .insert(loaded.report.sha256.clone(), loaded.clone());
        Ok(loaded)
    }

    /// Run one operation in a fresh store. Guest failures come back inside
    /// the report; only malformed input is an `Err` (nothing ran).
    pub async fn call(
        &self,
        adapter: &LoadedAdapter,
        context: Arc<HostContext>,
        request: &CallRequest,
    ) -> Result<CallReport, InputError> {
        self.call_with_tape(adapter, context, request, None).await
    }

    /// [`Sandbox::call`] with its HTTP exchanges recorded, or answered from
    /// a replay set instead of the network (policy and secret checks still
    /// run as live).
    pub async fn call_with_tape(
        &self,
        adapter: &LoadedAdapter,
        context: Arc<HostContext>,
        request: &CallRequest,
        tape: Option<HttpTape>,
    ) -> Result<CallReport, InputError> {
        let env = CallEnv {
            engine: &self.engine,
            resolver: self.config.resolver.clone(),
            tls: self.tls.clone(),
            epoch_tick: self.config.epoch_tick,
            tape,
        };
        call::run(env, adapter, context, request).await
    }
}
