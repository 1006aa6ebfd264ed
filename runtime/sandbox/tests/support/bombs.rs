//! Compile bombs, generated with wasm-encoder: components that are small to
//! upload and costly to compile. Shared with the `panel1` binary's tests.
#![allow(dead_code)]
use wasm_encoder::{
    CodeSection, Component, ComponentExportKind, ComponentExportSection, ComponentInstanceSection,
    ConstExpr, DataSection, Function, FunctionSection, InstanceSection, Instruction, MemorySection,
    MemoryType, Module, ModuleArg, ModuleSection, RefType, TableSection, TableType, TypeSection,
    ValType,
};

/// The adapter interface name the world check looks for.
pub const ADAPTER_EXPORT: &str = "panel1:provisioning/adapter@0.1.0";

/// A component holding `modules`, `instances` core instances of the first
/// one, and (if `adapter`) an empty instance exported under the adapter
/// interface's name, so the world check by name passes and only the
/// structural limits (or the compile budget) stand in the way.
pub fn component(modules: &[Module], instances: u32, adapter: bool) -> Vec<u8> {
    let mut c = Component::new();
    for m in modules {
        c.section(&ModuleSection(m));
    }
    if instances > 0 {
        let mut inst = InstanceSection::new();
        for _ in 0..instances {
            inst.instantiate(0, Vec::<(&str, ModuleArg)>::new());
        }
        c.section(&inst);
    }
    if adapter {
        let mut inst = ComponentInstanceSection::new();
        inst.export_items(Vec::<(&str, ComponentExportKind, u32)>::new());
        c.section(&inst);
        let mut exports = ComponentExportSection::new();
        exports.export(ADAPTER_EXPORT, ComponentExportKind::Instance, 0, None);
        c.section(&exports);
    }
    c.finish()
}

/// A module with `n` functions of type `() -> ()`, each with `body`.
fn functions(n: u32, body: &[u8]) -> Module {
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut funcs = FunctionSection::new();
    let mut code = CodeSection::new();
    for _ in 0..n {
        funcs.function(0);
        code.raw(body);
    }
    let mut m = Module::new();
    m.section(&types).section(&funcs).section(&code);
    m
}

/// `n` empty functions (the bomb: 1M of them took 171 s and 6.9 GB).
pub fn empty_functions(n: u32) -> Vec<u8> {
    // No locals, `end`.
    component(&[functions(n, &[0x00, 0x0b])], 0, true)
}

/// One function with `depth` nested blocks.
pub fn nested_blocks(depth: u32) -> Vec<u8> {
    let mut f = Function::new([]);
    for _ in 0..depth {
        f.instruction(&Instruction::Block(wasm_encoder::BlockType::Empty));
    }
    for _ in 0..depth {
        f.instruction(&Instruction::End);
    }
    f.instruction(&Instruction::End);
    component(&[functions(1, &f.into_raw_body())], 0, true)
}

/// One function declaring `n` i64 locals.
pub fn many_locals(n: u32) -> Vec<u8> {
    let mut f = Function::new([(n, ValType::I64)]);
    f.instruction(&Instruction::End);
    component(&[functions(1, &f.into_raw_body())], 0, true)
}

/// One memory of `pages` 64 KiB pages, with one active data segment of
/// `bytes` bytes.
pub fn data(pages: u64, bytes: usize) -> Vec<u8> {
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut data = DataSection::new();
    if bytes > 0 {
        data.active(0, &ConstExpr::i32_const(0), vec![0x2a; bytes]);
    }
    let mut m = Module::new();
    m.section(&memories).section(&data);
    component(&[m], 0, true)
}

/// One funcref table of `elements` initial elements.
pub fn table(elements: u64) -> Vec<u8> {
    let mut tables = TableSection::new();
    tables.table(TableType {
        element_type: RefType::FUNCREF,
        table64: false,
        minimum: elements,
        maximum: None,
        shared: false,
    });
    let mut m = Module::new();
    m.section(&tables);
    component(&[m], 0, true)
}

/// `n` (empty) core modules.
pub fn modules(n: usize) -> Vec<u8> {
    component(&vec![Module::new(); n], 0, true)
}

/// `n` instances of one empty module.
pub fn instances(n: u32) -> Vec<u8> {
    component(&[Module::new()], n, true)
}

/// A module with `n` function types.
pub fn types(n: u32) -> Vec<u8> {
    let mut types = TypeSection::new();
    for i in 0..n {
        // Distinct types: i params.
        types
            .ty()
            .function(vec![ValType::I32; (i % 64) as usize], []);
    }
    let mut m = Module::new();
    m.section(&types);
    component(&[m], 0, true)
}

/// A well-formed component with no adapter export.
pub fn no_adapter_export() -> Vec<u8> {
    component(&[functions(3, &[0x00, 0x0b])], 1, false)
}

/// Inside every structural limit, but slow and hungry to compile: `n`
/// functions of `ops` arithmetic instructions each (e.g. 40 000 x 400).
pub fn expensive(n: u32, ops: u32) -> Vec<u8> {
    let mut f = Function::new([(4, ValType::I32)]);
    for i in 0..ops {
        f.instruction(&Instruction::LocalGet(i % 4));
        f.instruction(&Instruction::I32Const(i as i32));
        f.instruction(&Instruction::I32Add);
        f.instruction(&Instruction::LocalSet((i + 1) % 4));
    }
    f.instruction(&Instruction::End);
    component(&[functions(n, &f.into_raw_body())], 0, true)
}
