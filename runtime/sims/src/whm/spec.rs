//! Request validation against cPanel's parameter schemas (spec/whm-api1.json,
//! extracted from the official OpenAPI files by spec/extract.py).

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use jsonschema::Validator;
use serde::Deserialize;
use serde_json::Value;

/// The embedded spec: nothing outside the crate is read at run time.
pub const SPEC_JSON: &str = include_str!("../../spec/whm-api1.json");

#[derive(Deserialize)]
struct RawSpec {
    meta_parameters: Vec<RawParam>,
    functions: BTreeMap<String, RawFunction>,
}

#[derive(Deserialize)]
struct RawFunction {
    #[serde(default)]
    hand_written: bool,
    parameters: Vec<RawParam>,
    response_schema: Value,
}

#[derive(Deserialize)]
struct RawParam {
    name: String,
    #[serde(default)]
    required: bool,
    schema: Value,
}

struct Param {
    name: String,
    required: bool,
    validator: Validator,
}

struct Function {
    hand_written: bool,
    params: Vec<Param>,
    response: Validator,
}

struct Spec {
    meta: Vec<Param>,
    functions: HashMap<String, Function>,
}

fn compile(schema: &Value, what: &str) -> Validator {
    // Draft 2020-12 is OpenAPI 3.1+'s dialect; formats stay annotations (the
    // spec uses private ones such as "megabytes").
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .unwrap_or_else(|e| panic!("spec/whm-api1.json: bad schema for {what}: {e}"))
}

fn params(raw: Vec<RawParam>, function: &str) -> Vec<Param> {
    raw.into_iter()
        .map(|p| Param {
            validator: compile(&p.schema, &format!("{function}.{}", p.name)),
            name: p.name,
            required: p.required,
        })
        .collect()
}

static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let raw: RawSpec = serde_json::from_str(SPEC_JSON).expect("spec/whm-api1.json parses");
    let functions = raw
        .functions
        .into_iter()
        .map(|(name, f)| {
            let function = Function {
                hand_written: f.hand_written,
                response: compile(&f.response_schema, &format!("{name} response")),
                params: params(f.parameters, &name),
            };
            (name, function)
        })
        .collect();
    Spec {
        meta: params(raw.meta_parameters, "meta"),
        functions,
    }
});

/// The functions the simulator knows, sorted.
pub fn functions() -> Vec<&'static str> {
    let mut names: Vec<&str> = SPEC.functions.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// Whether `function`'s entry was written by hand rather than extracted.
pub fn is_hand_written(function: &str) -> Option<bool> {
    SPEC.functions.get(function).map(|f| f.hand_written)
}

pub(crate) fn is_known(function: &str) -> bool {
    SPEC.functions.contains_key(function)
}

/// What validation found. `rejection` is the API 1 reason when the request
/// must fail; `problems` feeds the request log (rejections and warnings).
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub rejection: Option<String>,
    pub problems: Vec<String>,
}

impl Checked {
    fn reject(&mut self, reason: String) {
        self.problems.push(reason.clone());
        if self.rejection.is_none() {
            self.rejection = Some(reason);
        }
    }
}

/// The JSON values a query string may stand for: numbers first when it parses
/// as one, then the string itself, and null for the empty string.
fn candidates(raw: &str) -> Vec<Value> {
    let mut out = Vec::with_capacity(3);
    if let Ok(i) = raw.parse::<i64>() {
        out.push(Value::from(i));
    } else if let Some(n) = raw
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        out.push(Value::Number(n));
    }
    out.push(Value::String(raw.to_owned()));
    if raw.is_empty() {
        out.push(Value::Null);
    }
    out
}

fn check_value(param: &Param, raw: &str, checked: &mut Checked) {
    let candidates = candidates(raw);
    if candidates.iter().any(|c| param.validator.is_valid(c)) {
        return;
    }
    // The validator's message quotes the value: not for secrets, which end
    // up in the reason and the log.
    let why = match param.validator.validate(&candidates[0]) {
        Err(_) if crate::common::log::is_secret(&param.name) => {
            "not allowed by the spec".to_owned()
        }
        Err(e) => e.to_string(),
        Ok(()) => "not allowed by the spec".to_owned(),
    };
    checked.reject(invalid_value(&param.name, why.trim_end_matches('.')));
}

/// `The parameter “name” is required.`
pub fn missing_param(name: &str) -> String {
    format!("The parameter “{name}” is required.")
}

/// `Invalid value for “name”: why.`
pub fn invalid_value(name: &str, why: &str) -> String {
    format!("Invalid value for “{name}”: {why}.")
}

/// Check `params` against `function`'s parameters and the generic API 1 ones.
/// Unknown parameters are only warned about: real WHM ignores them.
pub(crate) fn check(function: &str, params: &BTreeMap<String, String>) -> Checked {
    let mut checked = Checked::default();
    let Some(spec) = SPEC.functions.get(function) else {
        return checked;
    };
    for param in &spec.params {
        match params.get(&param.name) {
            Some(raw) => check_value(param, raw, &mut checked),
            None if param.required => checked.reject(missing_param(&param.name)),
            None => {}
        }
    }
    for param in &SPEC.meta {
        // api.version is judged by the caller (a missing one means API 0).
        if param.name == "api.version" {
            continue;
        }
        if let Some(raw) = params.get(&param.name) {
            check_value(param, raw, &mut checked);
        }
    }
    for name in params.keys() {
        let known = spec
            .params
            .iter()
            .chain(&SPEC.meta)
            .any(|p| &p.name == name);
        if !known {
            checked
                .problems
                .push(format!("warning: unknown parameter “{name}” (ignored)"));
        }
    }
    checked
}

/// Validate a whole API 1 answer against the spec's 200 response schema.
/// Returns one line per violation (`/json/pointer: message`); empty = valid.
pub fn check_response(function: &str, body: &Value) -> Vec<String> {
    let Some(spec) = SPEC.functions.get(function) else {
        return vec![format!("unknown function {function}")];
    };
    spec.response
        .iter_errors(body)
        .map(|e| format!("{}: {}", e.instance_path, e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_function_compiles_and_create_user_session_is_hand_written() {
        // The published functions and the hand-written ones, the four the
        // transfer sessions added among them.
        assert_eq!(functions().len(), 22);
        assert_eq!(is_hand_written("create_user_session"), Some(true));
        assert_eq!(
            is_hand_written("create_remote_root_transfer_session"),
            Some(true)
        );
        assert_eq!(is_hand_written("start_background_pkgacct"), Some(true));
        assert_eq!(is_hand_written("createacct"), Some(false));
    }

    #[test]
    fn coercion_accepts_numbers_unlimited_and_empty_null() {
        for v in ["0", "500", "unlimited", ""] {
            let c = check("createacct", &q(&[("username", "bob"), ("bwlimit", v)]));
            assert!(c.rejection.is_none(), "bwlimit={v}: {:?}", c.problems);
        }
        let c = check(
            "createacct",
            &q(&[("username", "bob"), ("bwlimit", "lots")]),
        );
        assert!(c
            .rejection
            .unwrap()
            .starts_with("Invalid value for “bwlimit”: "));
        let c = check(
            "createacct",
            &q(&[("username", "bob"), ("quota", "1000000")]),
        );
        assert!(c.rejection.unwrap().contains("999999"));
    }

    #[test]
    fn strings_that_look_like_numbers_are_still_strings() {
        let c = check("suspendacct", &q(&[("user", "1234"), ("reason", "42")]));
        assert!(c.rejection.is_none(), "{:?}", c.problems);
    }

    #[test]
    fn removeacct_wants_username() {
        let c = check("removeacct", &q(&[("user", "bob")]));
        assert_eq!(
            c.rejection.as_deref(),
            Some("The parameter “username” is required.")
        );
    }
}
