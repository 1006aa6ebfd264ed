//! The edge: every string a request carries (query, path, JSON body) passes
//! through these extractors before a handler sees it. Text Postgres cannot
//! store — NUL (U+0000) in `text` or in a `jsonb` string — and text that is
//! not UTF-8 is refused here with a 422 naming the field, so no handler can
//! hand it to the database (where it used to be a 500).
//!
//! Handlers never take axum's `Query`, `Path` or `Json` extractors directly
//! (`clippy.toml` of this crate disallows them outside this module).
mod json;
mod path;
mod query;

pub use json::{parse_json, ApiJson, OptionalApiJson};
pub use path::ApiPath;
pub use query::ApiQuery;

use crate::problem::FieldError;

/// Why a string cannot be stored, if it cannot.
pub fn unstorable(value: &str) -> Option<&'static str> {
    // Postgres `text` ends at NUL and `jsonb` refuses `\u0000`; every other
    // code point a Rust string can hold is storable.
    value
        .contains('\0')
        .then_some("must not contain NUL (U+0000)")
}

/// The storable-text rule for one named input.
pub fn check_text(field: &str, value: &str) -> Result<(), FieldError> {
    match unstorable(value) {
        None => Ok(()),
        Some(why) => Err(FieldError {
            field: field.to_string(),
            message: why.to_string(),
        }),
    }
}

/// A field name fit to echo back: control characters escaped.
fn printable(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_unicode().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_anything_else_is_storable() {
        assert!(check_text("a", "plain ünïcode \u{7f} \u{ffff}").is_ok());
        let e = check_text("reason", "a\0b").unwrap_err();
        assert_eq!(e.field, "reason");
        assert!(e.message.contains("NUL"));
        assert_eq!(printable("a\0b"), "a\\u{0}b");
    }
}
