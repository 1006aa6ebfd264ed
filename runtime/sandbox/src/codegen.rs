//! Which compiler turns a component into native code, and the engine
//! settings that shape that code.
//!
//! Cranelift (the default) optimizes; Winch, wasmtime's baseline compiler,
//! compiles in one pass, several times faster, into slower code. Both
//! instrument fuel and epoch checks, so a call's limits hold either way
//! (`tests/suite/winch.rs` trips them). Winch is for development loops (`panel1
//! adapter run --compiler winch`): the server and workers compile with
//! Cranelift, the tier wasmtime hardens and fuzzes most.
use std::fmt;
use std::str::FromStr;
use wasmtime::{Config, Strategy};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CodeGen {
    #[default]
    Cranelift,
    Winch,
}

impl CodeGen {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeGen::Cranelift => "cranelift",
            CodeGen::Winch => "winch",
        }
    }
}

impl fmt::Display for CodeGen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown compiler `{0}`: expected cranelift or winch")]
pub struct UnknownCodeGen(String);

impl FromStr for CodeGen {
    type Err = UnknownCodeGen;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cranelift" => Ok(CodeGen::Cranelift),
            "winch" => Ok(CodeGen::Winch),
            other => Err(UnknownCodeGen(other.to_string())),
        }
    }
}

/// The engine settings that shape compiled code (compiler, features, fuel
/// and epoch instrumentation, memory images). The sandbox's engine adds its
/// instance pool and stack limit; the child-process compiler uses these
/// alone, so its artifacts load into the sandbox's engine (wasmtime refuses
/// an artifact built with other settings, and the artifact store keys by
/// them).
pub(crate) fn codegen_config(codegen: CodeGen) -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .memory_init_cow(true)
        .strategy(match codegen {
            CodeGen::Cranelift => Strategy::Cranelift,
            CodeGen::Winch => Strategy::Winch,
        });
    wasm
}
