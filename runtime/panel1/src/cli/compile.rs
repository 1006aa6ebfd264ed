//! Compiling adapters out of process: the budget flags, the sandbox
//! configuration every `panel1` command builds its sandbox with, and the
//! hidden `panel1 internal compile-component` the sandbox runs as its
//! compiler child.
use clap::{Args, Subcommand};
use panel1_sandbox::{ChildCompiler, CodeGen, CompileBudget, Compiler, SandboxConfig};
use std::time::Duration;

/// The compile budget of one component (each compile runs in a child
/// process that is stopped past it).
#[derive(Args, Clone, Debug)]
pub struct CompileArgs {
    /// Wall-clock time allowed to compile one component, in milliseconds
    /// [default: 60000].
    #[arg(long, env = "PANEL1_COMPILE_TIMEOUT_MS", value_name = "MS")]
    pub compile_timeout_ms: Option<u64>,
    /// Memory (resident) allowed to compile one component, in MiB [default:
    /// 2048].
    #[arg(long, env = "PANEL1_COMPILE_MEMORY_MB", value_name = "MIB")]
    pub compile_memory_mb: Option<u64>,
}

impl CompileArgs {
    pub fn budget(&self) -> CompileBudget {
        budget(self.compile_timeout_ms, self.compile_memory_mb)
    }
}

/// The default budget with the given overrides.
pub fn budget(timeout_ms: Option<u64>, memory_mb: Option<u64>) -> CompileBudget {
    let mut budget = CompileBudget::default();
    if let Some(ms) = timeout_ms {
        budget.timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(mb) = memory_mb {
        budget.memory_bytes = mb.max(1) << 20;
    }
    budget
}

/// The sandbox configuration of every `panel1` command: components compile
/// in a child process (this same binary, through /proc/self/exe, so the
/// artifact always comes from the same build) under `budget`, with
/// `codegen` (the child is told the same, or its artifact would not load).
pub fn sandbox_config(budget: CompileBudget, codegen: CodeGen) -> SandboxConfig {
    let child = ChildCompiler::new(
        "/proc/self/exe",
        vec![
            "internal".into(),
            "compile-component".into(),
            "--codegen".into(),
            codegen.as_str().into(),
        ],
        budget,
    );
    SandboxConfig {
        compiler: Compiler::ChildProcess(child),
        codegen,
        ..SandboxConfig::default()
    }
}

/// Internal commands the binary runs as its own helper processes.
#[derive(Subcommand)]
pub enum InternalCommand {
    /// Compile the component on stdin and write the serialized artifact to
    /// stdout (the sandbox's compiler child).
    CompileComponent {
        #[arg(long, default_value = "cranelift")]
        codegen: CodeGen,
    },
}

/// Runs before the async runtime starts: the child needs none.
pub fn run_internal(cmd: &InternalCommand) -> u8 {
    match cmd {
        InternalCommand::CompileComponent { codegen } => {
            panel1_sandbox::compile_child_main(*codegen).clamp(0, 255) as u8
        }
    }
}
