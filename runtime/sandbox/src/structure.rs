//! The structural pre-check: one streaming pass of `wasmparser` over the
//! component bytes, before anything is compiled. It reads the top-level
//! imports and exports (the world check in `component_check` works from
//! them) and counts what compile time and memory grow with, stopping at the
//! first count over its limit.
//!
//! Compiling is the expensive step an uploader controls: a 9 MB component
//! with a million empty functions took 171 s and 6.9 GB to compile. Checking
//! the counts costs milliseconds (no validation, no allocation per
//! function), so a bomb is refused before the compiler sees it. What the
//! counts cannot bound (a component just under every limit) is bounded by
//! the compile budget of the child-process compiler (`compiler.rs`).
use crate::error::SandboxError;
use serde::Serialize;
use wasmparser::{Encoding, Operator, Parser, Payload};

/// Structural limits on a component, checked before compiling. Every
/// default leaves room over the largest guests this project builds or runs,
/// measured with [`census`] (`tests/suite/bombs.rs` keeps the project's own guests
/// inside them):
///
/// | count | `reference.wasm` (Rust) | `js-reference.wasm` (componentize-js) | trivial componentize-py adapter | default limit |
/// |---|---|---|---|---|
/// | functions | 395 | 12 790 | 13 509 | 50 000 |
/// | code bytes | 168 403 | 9 209 396 | 6 588 779 | 32 MiB |
/// | largest function body | 7 153 | 171 628 | 426 843 | 2 MiB |
/// | most locals in a function | 30 | 118 | 271 | 5 000 |
/// | deepest control nesting | 64 | 456 | 781 | 5 000 |
/// | data segment bytes | 20 390 | 4 550 233 | 11 009 866 | 32 MiB |
/// | largest table (elements) | 105 | 7 783 | 5 766 | 100 000 |
/// | element segment items | 130 | 7 836 | 5 907 | 100 000 |
/// | globals | 7 | 2 | 874 | 10 000 |
/// | core modules | 3 | 3 | 14 | 64 |
/// | nested components | 1 | 1 | 2 | 16 |
/// | instances (core + component) | 26 | 18 | 76 | 256 |
/// | type definitions | 402 | 589 | 2 034 | 20 000 |
/// | imports + exports | 229 | 366 | 6 804 | 50 000 |
/// | canonical functions + aliases | 230 | 348 | 1 780 | 20 000 |
///
/// The memories' declared minimum sizes are checked against the sandbox's
/// `max_memory_bytes` instead (the guests declare 1 to 17 MB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentLimits {
    /// Functions defined in all core modules together. Compile time and
    /// memory grow with it even for empty functions (measured in process:
    /// 1M took 171 s and 6.9 GB, 200k 31 s and 1.5 GB). Default 50 000: 3.7x
    /// the largest guest.
    pub max_functions: u64,
    /// Bytes of all function bodies together. Default 32 MiB: 3.5x the JS
    /// guest (and the API's upload limit: it binds where that is raised).
    pub max_code_bytes: u64,
    /// Bytes of one function body, the unit cranelift compiles at once.
    /// Default 2 MiB: 4.9x the largest body of the guests (CPython's
    /// interpreter loop).
    pub max_function_bytes: u64,
    /// Locals of one function (the validator allows 50 000; register
    /// allocation grows with them). Default 5 000: 18x the largest guest.
    pub max_locals_per_function: u64,
    /// Nested blocks, loops and ifs in one function (a million nested blocks
    /// took 6 s and 1 GB to compile). Default 5 000: 6.4x the deepest guest
    /// (CPython's 781).
    pub max_control_depth: u64,
    /// Bytes of all data segments (memory images are built from them while
    /// compiling). Default 32 MiB: 2.9x the Python guest.
    pub max_data_bytes: u64,
    /// Initial (declared minimum) elements of any one table, allocated at
    /// every instantiation. Default 100 000: 12x the largest guest table.
    pub max_table_elements: u64,
    /// Items in all element segments together. Default 100 000: 12x.
    pub max_element_items: u64,
    /// Globals in all core modules together. Default 10 000: 11x.
    pub max_globals: u64,
    /// Core modules in the component, at any depth. Default 64: 4.6x the
    /// Python guest's 14 (the program, the WASI adapter, shims, libraries).
    pub max_core_modules: u64,
    /// Components nested inside the component, at any depth. Default 16.
    pub max_nested_components: u64,
    /// Core and component instances together. Default 256: 3.4x.
    pub max_instances: u64,
    /// Type definitions (core and component, including the declarations
    /// inside instance and component types). Default 20 000: 9.8x.
    pub max_types: u64,
    /// Imports and exports (core and component) together. Default 50 000:
    /// 7.3x.
    pub max_imports_exports: u64,
    /// Canonical functions and aliases together (each lift and lower becomes
    /// compiled trampolines). Default 20 000: 11x.
    pub max_canonicals_aliases: u64,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        ComponentLimits {
            max_functions: 50_000,
            max_code_bytes: 32 << 20,
            max_function_bytes: 2 << 20,
            max_locals_per_function: 5_000,
            max_control_depth: 5_000,
            max_data_bytes: 32 << 20,
            max_table_elements: 100_000,
            max_element_items: 100_000,
            max_globals: 10_000,
            max_core_modules: 64,
            max_nested_components: 16,
            max_instances: 256,
            max_types: 20_000,
            max_imports_exports: 50_000,
            max_canonicals_aliases: 20_000,
        }
    }
}

impl ComponentLimits {
    /// No structural limit at all (measuring, trusted input).
    pub fn unlimited() -> Self {
        ComponentLimits {
            max_functions: u64::MAX,
            max_code_bytes: u64::MAX,
            max_function_bytes: u64::MAX,
            max_locals_per_function: u64::MAX,
            max_control_depth: u64::MAX,
            max_data_bytes: u64::MAX,
            max_table_elements: u64::MAX,
            max_element_items: u64::MAX,
            max_globals: u64::MAX,
            max_core_modules: u64::MAX,
            max_nested_components: u64::MAX,
            max_instances: u64::MAX,
            max_types: u64::MAX,
            max_imports_exports: u64::MAX,
            max_canonicals_aliases: u64::MAX,
        }
    }
}

/// What the pass counted: totals, and the largest value seen for the
/// per-item measures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Census {
    pub functions: u64,
    pub code_bytes: u64,
    pub largest_function_bytes: u64,
    pub most_locals: u64,
    pub deepest_control: u64,
    pub data_bytes: u64,
    pub largest_table_elements: u64,
    pub element_items: u64,
    pub globals: u64,
    pub core_modules: u64,
    pub nested_components: u64,
    pub instances: u64,
    pub types: u64,
    pub imports_exports: u64,
    pub canonicals_aliases: u64,
    /// Sum of the declared minimum sizes of every memory, in bytes.
    pub memory_minimum_bytes: u64,
}

/// The top-level interface of the component and its census.
#[derive(Debug, Clone, Default)]
pub struct ComponentStructure {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub census: Census,
}

fn invalid(msg: String) -> SandboxError {
    SandboxError::InvalidComponent(msg)
}

/// Adds to a count and fails once it passes its limit.
fn bump(count: &mut u64, by: u64, limit: u64, what: &str) -> Result<(), SandboxError> {
    *count = count.saturating_add(by);
    if *count > limit {
        return Err(invalid(format!(
            "structural limit: {what} is over the limit of {limit} (found at least {count}); \
             refused before compiling"
        )));
    }
    Ok(())
}

/// Raises a maximum and fails if the new value passes its limit.
fn widen(max: &mut u64, value: u64, limit: u64, what: &str) -> Result<(), SandboxError> {
    *max = (*max).max(value);
    if value > limit {
        return Err(invalid(format!(
            "structural limit: {what} is {value}, over the limit of {limit}; refused before compiling"
        )));
    }
    Ok(())
}

fn malformed(e: wasmparser::BinaryReaderError) -> SandboxError {
    invalid(format!("malformed component: {e}"))
}

/// Count everything (no limit) and read the top-level interface.
pub fn census(bytes: &[u8]) -> Result<ComponentStructure, SandboxError> {
    scan(bytes, &ComponentLimits::unlimited(), u64::MAX)
}

/// One streaming pass over `bytes`: the first count over `limits` is an
/// `InvalidComponent` naming the limit and the value found. Memories whose
/// declared minimum sizes add up to more than `max_memory_bytes` can never be
/// instantiated and are refused too.
pub fn scan(
    bytes: &[u8],
    limits: &ComponentLimits,
    max_memory_bytes: u64,
) -> Result<ComponentStructure, SandboxError> {
    let mut out = ComponentStructure::default();
    let c = &mut out.census;
    let l = limits;
    // Kinds of the units being parsed: the outer component, then any nested
    // module or component. Imports/exports at depth 1 are the host's.
    let mut units: Vec<Encoding> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(malformed)?;
        let top = units.len() == 1;
        match payload {
            Payload::Version { encoding, .. } => {
                if units.is_empty() && encoding != Encoding::Component {
                    return Err(invalid("not a component".into()));
                }
                units.push(encoding);
            }
            Payload::End(_) => {
                units.pop();
            }
            Payload::ModuleSection { .. } => {
                bump(&mut c.core_modules, 1, l.max_core_modules, "core modules")?
            }
            Payload::ComponentSection { .. } => bump(
                &mut c.nested_components,
                1,
                l.max_nested_components,
                "nested components",
            )?,
            Payload::InstanceSection(s) => bump(
                &mut c.instances,
                s.count().into(),
                l.max_instances,
                "instances",
            )?,
            Payload::ComponentInstanceSection(s) => bump(
                &mut c.instances,
                s.count().into(),
                l.max_instances,
                "instances",
            )?,
            Payload::TypeSection(s) => {
                for group in s {
                    let n = group.map_err(malformed)?.types().len() as u64;
                    bump(&mut c.types, n, l.max_types, "type definitions")?;
                }
            }
            Payload::CoreTypeSection(s) => {
                for ty in s {
                    let n = core_type_size(&ty.map_err(malformed)?);
                    bump(&mut c.types, n, l.max_types, "type definitions")?;
                }
            }
            Payload::ComponentTypeSection(s) => {
                for ty in s {
                    let n = component_type_size(&ty.map_err(malformed)?);
                    bump(&mut c.types, n, l.max_types, "type definitions")?;
                }
            }
            Payload::ImportSection(s) => {
                for import in s.into_imports() {
                    let import = import.map_err(malformed)?;
                    bump(
                        &mut c.imports_exports,
                        1,
                        l.max_imports_exports,
                        "imports and exports",
                    )?;
                    if let wasmparser::TypeRef::Memory(m) = import.ty {
                        add_memory(c, &m, max_memory_bytes)?;
                    }
                }
            }
            Payload::ExportSection(s) => bump(
                &mut c.imports_exports,
                s.count().into(),
                l.max_imports_exports,
                "imports and exports",
            )?,
            Payload::ComponentImportSection(s) => {
                bump(
                    &mut c.imports_exports,
                    s.count().into(),
                    l.max_imports_exports,
                    "imports and exports",
                )?;
                for import in s {
                    let import = import.map_err(malformed)?;
                    if top {
                        out.imports.push(import.name.name.to_string());
                    }
                }
            }
            Payload::ComponentExportSection(s) => {
                bump(
                    &mut c.imports_exports,
                    s.count().into(),
                    l.max_imports_exports,
                    "imports and exports",
                )?;
                for export in s {
                    let export = export.map_err(malformed)?;
                    if top {
                        out.exports.push(export.name.name.to_string());
                    }
                }
            }
            Payload::ComponentCanonicalSection(s) => bump(
                &mut c.canonicals_aliases,
                s.count().into(),
                l.max_canonicals_aliases,
                "canonical functions and aliases",
            )?,
            Payload::ComponentAliasSection(s) => bump(
                &mut c.canonicals_aliases,
                s.count().into(),
                l.max_canonicals_aliases,
                "canonical functions and aliases",
            )?,
            Payload::FunctionSection(s) => bump(
                &mut c.functions,
                s.count().into(),
                l.max_functions,
                "functions (all core modules together)",
            )?,
            Payload::GlobalSection(s) => {
                bump(&mut c.globals, s.count().into(), l.max_globals, "globals")?
            }
            Payload::TableSection(s) => {
                for table in s {
                    let initial = table.map_err(malformed)?.ty.initial;
                    widen(
                        &mut c.largest_table_elements,
                        initial,
                        l.max_table_elements,
                        "a table's initial size (elements)",
                    )?;
                }
            }
            Payload::MemorySection(s) => {
                for memory in s {
                    add_memory(c, &memory.map_err(malformed)?, max_memory_bytes)?;
                }
            }
            Payload::ElementSection(s) => {
                for element in s {
                    let n = match element.map_err(malformed)?.items {
                        wasmparser::ElementItems::Functions(f) => f.count(),
                        wasmparser::ElementItems::Expressions(_, e) => e.count(),
                    };
                    bump(
                        &mut c.element_items,
                        n.into(),
                        l.max_element_items,
                        "element segment items",
                    )?;
                }
            }
            Payload::DataSection(s) => {
                for data in s {
                    let n = data.map_err(malformed)?.data.len() as u64;
                    bump(&mut c.data_bytes, n, l.max_data_bytes, "data segment bytes")?;
                }
            }
            Payload::CodeSectionEntry(body) => scan_body(&body, c, l)?,
            _ => {}
        }
    }
    Ok(out)
}

/// A memory's declared minimum, added to the sum of them all: a component
/// whose memories cannot fit in the largest memory a call may have can never
/// run, however long it compiles.
fn add_memory(
    c: &mut Census,
    m: &wasmparser::MemoryType,
    max_memory_bytes: u64,
) -> Result<(), SandboxError> {
    let page = 1u64 << m.page_size_log2.unwrap_or(16).min(63);
    let bytes = m.initial.saturating_mul(page);
    c.memory_minimum_bytes = c.memory_minimum_bytes.saturating_add(bytes);
    if c.memory_minimum_bytes > max_memory_bytes {
        return Err(invalid(format!(
            "structural limit: the memories' declared minimum sizes add up to {} bytes, over the \
             sandbox's memory limit of {max_memory_bytes} bytes; refused before compiling",
            c.memory_minimum_bytes
        )));
    }
    Ok(())
}

/// Body size, locals and control nesting of one function. Reading the
/// operators is the only per-instruction work of the pass (tens of ms for
/// the 10 MiB of code of the JS guest).
fn scan_body(
    body: &wasmparser::FunctionBody<'_>,
    c: &mut Census,
    l: &ComponentLimits,
) -> Result<(), SandboxError> {
    let size = body.range().len() as u64;
    bump(
        &mut c.code_bytes,
        size,
        l.max_code_bytes,
        "code bytes (all function bodies together)",
    )?;
    widen(
        &mut c.largest_function_bytes,
        size,
        l.max_function_bytes,
        "a function body's size (bytes)",
    )?;
    let mut locals_reader = body.get_locals_reader().map_err(malformed)?;
    let mut locals = 0u64;
    for _ in 0..locals_reader.get_count() {
        let (n, _) = locals_reader.read().map_err(malformed)?;
        locals = locals.saturating_add(n.into());
        // Checked per group so a huge count fails before the next read.
        widen(
            &mut c.most_locals,
            locals,
            l.max_locals_per_function,
            "a function's locals",
        )?;
    }
    let mut ops = body.get_operators_reader().map_err(malformed)?;
    let mut depth = 0u64;
    while !ops.eof() {
        match ops.read().map_err(malformed)? {
            Operator::Block { .. }
            | Operator::Loop { .. }
            | Operator::If { .. }
            | Operator::Try { .. }
            | Operator::TryTable { .. } => {
                depth += 1;
                widen(
                    &mut c.deepest_control,
                    depth,
                    l.max_control_depth,
                    "control nesting depth in a function",
                )?;
            }
            Operator::End | Operator::Delegate { .. } => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn core_type_size(ty: &wasmparser::CoreType<'_>) -> u64 {
    match ty {
        wasmparser::CoreType::Rec(group) => group.types().len() as u64,
        wasmparser::CoreType::Module(decls) => 1 + decls.len() as u64,
    }
}

fn component_type_size(ty: &wasmparser::ComponentType<'_>) -> u64 {
    use wasmparser::{ComponentType, ComponentTypeDeclaration, InstanceTypeDeclaration};
    match ty {
        ComponentType::Component(decls) => {
            1 + decls
                .iter()
                .map(|d| match d {
                    ComponentTypeDeclaration::Type(t) => component_type_size(t),
                    ComponentTypeDeclaration::CoreType(t) => core_type_size(t),
                    _ => 1,
                })
                .sum::<u64>()
        }
        ComponentType::Instance(decls) => {
            1 + decls
                .iter()
                .map(|d| match d {
                    InstanceTypeDeclaration::Type(t) => component_type_size(t),
                    InstanceTypeDeclaration::CoreType(t) => core_type_size(t),
                    _ => 1,
                })
                .sum::<u64>()
        }
        _ => 1,
    }
}
