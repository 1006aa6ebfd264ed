//! A provider's official API description (OpenAPI 3 or Swagger 2, as JSON),
//! compiled for the simulators: requests are routed by path template and
//! method, path and query parameters checked against their declared types,
//! JSON bodies validated against the operation's request schema, and
//! answers checkable against the response schemas.

use std::collections::BTreeMap;

use jsonschema::Validator;
use serde_json::{json, Value};

struct Operation {
    method: String,
    segments: Vec<String>,
    /// `METHOD /template`, the key faults and the log use.
    key: String,
    body: Option<Validator>,
    /// Top-level properties the request schema names (others are warned about).
    body_properties: Vec<String>,
    /// Declared parameters by place: name → type (`integer`, `boolean`, `string`…).
    path_params: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    /// Status → response schema.
    responses: BTreeMap<u16, Validator>,
}

/// One provider's API description, compiled.
pub(crate) struct Description {
    operations: Vec<Operation>,
}

/// A request matched to its operation.
#[derive(Debug)]
pub(crate) struct Route {
    pub key: String,
    /// Path parameters by name, percent-decoded.
    pub params: BTreeMap<String, String>,
}

/// Why a request has no operation.
#[derive(Debug, PartialEq)]
pub(crate) enum NoRoute {
    /// No such path: 404.
    Path,
    /// The path exists, not with this method: 405.
    Method,
}

/// What validation found: `rejection` makes the answer a 400; `problems`
/// (rejections and warnings) go to the request log.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    pub rejection: Option<String>,
    pub problems: Vec<String>,
}

impl Checked {
    fn reject(&mut self, reason: String) {
        self.problems.push(reason.clone());
        self.rejection.get_or_insert(reason);
    }
}

/// Descriptions leave out `"type": "object"` where they list properties;
/// OpenAPI implies it, JSON Schema does not (an array would pass).
fn objects_typed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let has_shape = map.contains_key("properties") || map.contains_key("required");
            if has_shape && !map.contains_key("type") && !map.contains_key("$ref") {
                map.insert("type".into(), json!("object"));
            }
            map.values_mut().for_each(objects_typed);
        }
        Value::Array(items) => items.iter_mut().for_each(objects_typed),
        _ => {}
    }
}

fn compile(schema: &Value, shared: &[(&str, &Value)], what: &str) -> Validator {
    // OpenAPI 3.0 and Swagger 2.0 schemas are (close to) draft 4;
    // `#/components/…` and `#/definitions/…` references resolve inside a
    // root that carries them.
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        for (key, value) in shared {
            map.insert((*key).into(), (*value).clone());
        }
    }
    objects_typed(&mut root);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&root)
        .unwrap_or_else(|e| panic!("embedded description: bad schema for {what}: {e}"))
}

/// Top-level property names a body schema declares (through `$ref`s and the
/// parts of an `allOf`).
fn property_names(schema: &Value, doc: &Value) -> Vec<String> {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(schema),
        None => schema,
    };
    let mut names: Vec<String> = resolved
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for part in resolved
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        names.extend(property_names(part, doc));
    }
    names
}

/// Declared parameters in `place` (`path`, `query`) with their types.
fn declared(params: &[Value], place: &str) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|p| p["in"] == place)
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            let kind = p["type"]
                .as_str()
                .or_else(|| p.pointer("/schema/type").and_then(Value::as_str));
            Some((name, kind.unwrap_or("string").to_owned()))
        })
        .collect()
}

/// Whether a raw parameter value is of the declared type.
fn typed(kind: &str, raw: &str) -> bool {
    match kind {
        "integer" => raw.parse::<i64>().is_ok(),
        "number" => raw.parse::<f64>().is_ok(),
        "boolean" => matches!(raw, "true" | "false" | "1" | "0"),
        _ => true,
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn matches(template: &[String], segments: &[&str]) -> Option<BTreeMap<String, String>> {
    if template.len() != segments.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (t, s) in template.iter().zip(segments) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                params.insert(name.to_owned(), percent_decode(s));
            }
            Some(_) => return None,
            None if t == s => {}
            None => return None,
        }
    }
    Some(params)
}

impl Description {
    /// Compile an OpenAPI 3 (`requestBody`, `components`) or Swagger 2
    /// (`in: body` parameter, `definitions`) description. Panics on a broken
    /// one: descriptions are embedded and tested.
    pub fn load(json: &str) -> Description {
        let doc: Value = serde_json::from_str(json).expect("the embedded description parses");
        let shared: Vec<(&str, &Value)> = ["components", "definitions"]
            .into_iter()
            .filter_map(|k| doc.get(k).map(|v| (k, v)))
            .collect();
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let method = method.to_ascii_uppercase();
                let key = format!("{method} {path}");
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                let body_schema = op
                    .pointer("/requestBody/content/application~1json/schema")
                    .or_else(|| {
                        params
                            .iter()
                            .find(|p| p["in"] == "body")
                            .and_then(|p| p.get("schema"))
                    });
                let responses = op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(status, r)| {
                        let schema = r
                            .pointer("/content/application~1json/schema")
                            .or_else(|| r.get("schema"))?;
                        let status = status.parse().ok()?;
                        Some((status, compile(schema, &shared, &format!("{key} {status}"))))
                    })
                    .collect();
                operations.push(Operation {
                    segments: path
                        .trim_matches('/')
                        .split('/')
                        .map(str::to_owned)
                        .collect(),
                    body: body_schema.map(|s| compile(s, &shared, &key)),
                    body_properties: body_schema
                        .map(|s| property_names(s, &doc))
                        .unwrap_or_default(),
                    path_params: declared(&params, "path"),
                    query_params: declared(&params, "query"),
                    responses,
                    method,
                    key,
                });
            }
        }
        Description { operations }
    }

    fn operation(&self, key: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.key == key)
    }

    /// Every operation key, sorted.
    pub fn operations(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.operations.iter().map(|o| o.key.clone()).collect();
        keys.sort();
        keys
    }

    /// Find the operation for `method` and `path` (below the API's prefix).
    pub fn route(&self, method: &str, path: &str) -> Result<Route, NoRoute> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut path_known = false;
        // Literal segments win over templates (`/volumes/create` over `/volumes/{name}`).
        let mut best: Option<(usize, Route)> = None;
        for op in &self.operations {
            let Some(params) = matches(&op.segments, &segments) else {
                continue;
            };
            path_known = true;
            if op.method == method && best.as_ref().is_none_or(|(n, _)| params.len() < *n) {
                best = Some((
                    params.len(),
                    Route {
                        key: op.key.clone(),
                        params,
                    },
                ));
            }
        }
        match best {
            Some((_, route)) => Ok(route),
            None if path_known => Err(NoRoute::Method),
            None => Err(NoRoute::Path),
        }
    }

    /// Check a routed request's path parameters, query and body.
    pub fn check(
        &self,
        route: &Route,
        query: &BTreeMap<String, String>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (Checked, Option<Value>) {
        let mut checked = Checked::default();
        let Some(op) = self.operation(&route.key) else {
            return (checked, None);
        };
        for (name, raw) in &route.params {
            let kind = op
                .path_params
                .get(name)
                .map(String::as_str)
                .unwrap_or("string");
            if !typed(kind, raw) {
                checked.reject(format!("path parameter `{name}` = `{raw}` is not {kind}"));
            }
        }
        for (name, raw) in query {
            match op.query_params.get(name) {
                Some(kind) if !typed(kind, raw) => {
                    checked.reject(format!("query parameter `{name}` = `{raw}` is not {kind}"))
                }
                Some(_) => {}
                None => checked.problems.push(format!(
                    "warning: unknown query parameter `{name}` (ignored)"
                )),
            }
        }
        let Some(validator) = &op.body else {
            if !body.is_empty() {
                checked
                    .problems
                    .push("warning: a body where the operation takes none (ignored)".into());
            }
            return (checked, None);
        };
        let json_type = content_type.is_some_and(|c| {
            let c = c.to_ascii_lowercase();
            c.starts_with("application/json") || c.contains("+json")
        });
        if !json_type {
            checked.reject(format!(
                "the request body must be application/json, not `{}`",
                content_type.unwrap_or("none")
            ));
            return (checked, None);
        }
        let value: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                checked.reject(format!("the request body is not JSON: {e}"));
                return (checked, None);
            }
        };
        for error in validator.iter_errors(&value) {
            // Messages quote values; a secret's path says which field without it.
            let path = error.instance_path.to_string();
            let message = if path.split('/').any(super::log::is_secret) {
                format!("{path}: not allowed by the description")
            } else {
                format!("{path}: {error}")
            };
            checked.reject(message);
        }
        if let Some(map) = value.as_object() {
            for name in map.keys() {
                if !op.body_properties.is_empty() && !op.body_properties.contains(name) {
                    checked
                        .problems
                        .push(format!("warning: unknown property `{name}` (ignored)"));
                }
            }
        }
        (checked, Some(value))
    }

    /// Check an answer against the schema for `key` and `status`. One line
    /// per violation; empty = valid.
    pub fn check_response(&self, key: &str, status: u16, body: &Value) -> Vec<String> {
        let Some(op) = self.operation(key) else {
            return vec![format!("unknown operation {key}")];
        };
        let Some(validator) = op.responses.get(&status) else {
            return vec![format!("{key} does not answer {status}")];
        };
        validator
            .iter_errors(body)
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect()
    }

    /// Whether the 2xx answer of `key` is a JSON array (for the wrong-body fault).
    pub fn answers_list(&self, key: &str) -> bool {
        let Some(op) = self.operation(key) else {
            return false;
        };
        op.responses
            .iter()
            .find(|(s, _)| (200..300).contains(*s))
            .is_some_and(|(_, v)| v.is_valid(&json!([])) && !v.is_valid(&json!({})))
    }
}
