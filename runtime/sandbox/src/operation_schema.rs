//! The published JSON Schema of every operation's input and result
//! (`schema/operations.schema.json`; `panel1 adapter schema` prints it):
//! what `adapter run --input`, scenario steps and task payloads take, and
//! what an adapter's success becomes. The tests hold it to the parser and
//! to the result builders, so the document cannot drift from the code.

/// JSON Schema 2020-12; `$defs/<operation>.input` and `.output`.
pub const OPERATIONS_SCHEMA: &str = include_str!("../schema/operations.schema.json");

#[cfg(test)]
mod tests;
