//! Check 1: `info` answers (network-free, with an empty context, as the
//! registry runs it), names itself, lists the operations it supports, and
//! its `config_schema` is a JSON Schema that compiles; the profile's server
//! config validates against it.
use super::harness::{describe, guest_log, ok_result, Harness};
use super::report::{Check, Row};
use panel1_sandbox::{HostContext, Operation};
use serde_json::Value;

/// What `info` said, as far as the suite needs it.
#[derive(Debug, Clone)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub operations: Vec<Operation>,
}

impl Info {
    pub fn supports(&self, op: Operation) -> bool {
        self.operations.contains(&op)
    }
}

/// Why `info`'s answer breaks the contract.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InfoError {
    #[error("`name` is empty")]
    NoName,
    #[error("`operations` is empty: the adapter lists nothing it supports")]
    NoOperations,
    #[error("`operations` lists `{0}`, which is not an operation of the world")]
    UnknownOperation(String),
    #[error("`config_schema` is not JSON: {0}")]
    SchemaNotJson(String),
    #[error("`config_schema` is not a valid JSON Schema: {0}")]
    SchemaInvalid(String),
    #[error("the {provider} profile's config does not validate against `config_schema`: {errors}")]
    ConfigRejected { provider: String, errors: String },
}

/// Parse `info`'s result into [`Info`], or say what is wrong with it.
pub fn parse(result: &Value) -> Result<Info, InfoError> {
    let name = result["name"].as_str().unwrap_or("").trim().to_string();
    if name.is_empty() {
        return Err(InfoError::NoName);
    }
    let mut operations = Vec::new();
    for op in result["operations"].as_array().into_iter().flatten() {
        let text = op.as_str().unwrap_or_default();
        let parsed: Operation = text
            .parse()
            .map_err(|_| InfoError::UnknownOperation(text.to_string()))?;
        operations.push(parsed);
    }
    if operations.is_empty() {
        return Err(InfoError::NoOperations);
    }
    Ok(Info {
        name,
        version: result["version"].as_str().unwrap_or("").to_string(),
        operations,
    })
}

/// Compile the schema text; with a profile, validate its config.
pub fn check_schema(text: &str, config: Option<(&str, &Value)>) -> Result<(), InfoError> {
    let schema: Value =
        serde_json::from_str(text).map_err(|e| InfoError::SchemaNotJson(e.to_string()))?;
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| InfoError::SchemaInvalid(e.to_string()))?;
    if let Some((provider, config)) = config {
        let errors: Vec<String> = validator
            .iter_errors(config)
            .map(|e| format!("/config{}: {e}", e.instance_path))
            .collect();
        if !errors.is_empty() {
            return Err(InfoError::ConfigRejected {
                provider: provider.to_string(),
                errors: errors.join("; "),
            });
        }
    }
    Ok(())
}

/// Run `info` (with an empty context, as the registry does) and parse it;
/// `Err` is the reason check 1 failed.
pub async fn run(h: &mut Harness<'_>) -> Result<(Info, String), String> {
    let report = h
        .call(
            &HostContext::default(),
            Operation::Info,
            Value::Null,
            "conformance-info",
            1,
        )
        .await
        .map_err(|e| e.to_string())?;
    let Some(result) = ok_result(&report) else {
        let logged = guest_log(&report, 5);
        let clue = if logged.is_empty() {
            String::new()
        } else {
            format!("; the adapter logged first: {logged}")
        };
        return Err(format!("`info` failed: {}{clue}", describe(&report)));
    };
    let schema = result["config_schema"].as_str().unwrap_or("").to_string();
    let info = parse(result).map_err(|e| e.to_string())?;
    Ok((info, schema))
}

/// Check 1's row once `info` answered: the schema compiled and, with a
/// profile (its provider name and config), the config validated.
pub fn judge(info: &Info, schema: &str, config: Option<(&str, &Value)>) -> Row {
    let named = format!(
        "`{}` {}, {} operations",
        info.name,
        info.version,
        info.operations.len()
    );
    match check_schema(schema, config) {
        Err(e) => Row::fail(Check::Info, format!("{named}; {e}")),
        Ok(()) => Row::pass(
            Check::Info,
            match config {
                Some((provider, _)) => format!(
                    "{named}; config schema compiles; the {provider} profile's config validates"
                ),
                None => format!("{named}; config schema compiles; no profile config to validate"),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn info_must_name_itself_and_list_known_operations() {
        let ok = parse(&json!({"name": "x", "version": "1", "operations": ["provision"]})).unwrap();
        assert!(ok.supports(Operation::Provision) && !ok.supports(Operation::Suspend));
        assert_eq!(
            parse(&json!({"name": " ", "operations": ["provision"]})).unwrap_err(),
            InfoError::NoName
        );
        assert_eq!(
            parse(&json!({"name": "x", "operations": []})).unwrap_err(),
            InfoError::NoOperations
        );
        assert!(matches!(
            parse(&json!({"name": "x", "operations": ["fly"]})).unwrap_err(),
            InfoError::UnknownOperation(op) if op == "fly"
        ));
    }

    #[test]
    fn the_schema_compiles_and_judges_the_config() {
        let schema = r#"{"type":"object","required":["host"],"properties":{"host":{"type":"string"}},"additionalProperties":false}"#;
        assert_eq!(check_schema(schema, None), Ok(()));
        assert_eq!(
            check_schema(schema, Some(("p", &json!({"host": "h"})))),
            Ok(())
        );
        let err = check_schema(schema, Some(("p", &json!({"port": 1})))).unwrap_err();
        assert!(err.to_string().contains("host"), "{err}");
        assert!(matches!(
            check_schema("{not json", None),
            Err(InfoError::SchemaNotJson(_))
        ));
        assert!(matches!(
            check_schema(r#"{"type": 12}"#, None),
            Err(InfoError::SchemaInvalid(_))
        ));
    }
}
