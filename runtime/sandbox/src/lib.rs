//! The Panel1 adapter sandbox: loads untrusted adapter components, checks
//! them, and runs one operation per fresh store under fuel, memory, epoch and
//! wall-clock limits, with host capabilities (egress-checked HTTP, secrets by
//! placeholder, config, log) as the guest's only door to the world.
//!
//! Nothing here knows about SQL or HTTP servers: bytes in, typed call, result
//! and metrics out.

mod adapter_cache;
mod artifacts;
mod bindings;
mod call;
mod call_backups;
mod checkpoints;
mod codegen;
mod compiler;
mod component_check;
mod egress;
mod engine;
mod error;
mod host;
mod host_budget;
mod host_state;
mod limiter;
mod loader;
mod log_buffer;
mod operation_schema;
mod output_size;
mod payload;
mod redact;
mod structure;
mod table_usage;

pub use artifacts::{ArtifactError, ArtifactKey, ArtifactStore};
pub use call::{CallReport, CallRequest, Outcome};
pub use checkpoints::RUNTIME_EVENT_INTERVAL;
pub use codegen::{CodeGen, UnknownCodeGen};
pub use compiler::{
    compile_child_main, compiler_engine, ChildCompiler, CompileBudget, Compiler, EXIT_INTERNAL,
    EXIT_INVALID,
};
pub use component_check::{Capability, ComponentReport, SUPPORTED_WORLD_VERSIONS};
pub use egress::address::{classify_ip, AddressClass};
pub use egress::policy::{EgressPolicy, EgressRule, RuleParseError};
pub use egress::replay::{ReplayMiss, ReplaySet, Served};
pub use egress::resolver::{Resolver, StaticResolver, SystemResolver};
pub use egress::scanner::{Marker, SecretScanner, MIN_SCANNED_SECRET_BYTES};
pub use egress::tape::{
    Fixture, FixtureContext, FixtureError, HttpTape, RecordedBody, RecordedExchange,
    RecordedRequest, RecordedResponse, Recording, Sanitizer, SecretSlot, FIXTURE_FORMAT,
    FIXTURE_VERSION, RECORDED_BODY_MAX,
};
pub use egress::HttpExchange;
pub use engine::{Sandbox, SandboxConfig};
pub use error::SandboxError;
pub use host_budget::HostMemoryExceeded;
pub use host_state::{Grants, HostContext, SecretBinding};
pub use loader::LoadedAdapter;
pub use log_buffer::{LogEntry, LogLevel};
pub use operation_schema::OPERATIONS_SCHEMA;
pub use panel1_types::{Limits, Operation, SandboxErrorKind};
pub use structure::{census, Census, ComponentLimits, ComponentStructure};
