//! Request validation against Plesk's own OpenAPI description
//! (`spec/plesk/plesk-swagger-openapi3.json`, embedded): the route (path
//! template and method), integer path parameters, and the JSON body against
//! the operation's request schema. Answers can be checked against the
//! response schemas ([`check_response`]).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use jsonschema::Validator;
use serde_json::{json, Value};

/// The embedded description: nothing outside the crate is read at run time.
pub const SPEC_JSON: &str = include_str!("../../spec/plesk/plesk-swagger-openapi3.json");

struct Operation {
    method: String,
    segments: Vec<String>,
    /// `METHOD /template`, the key faults and the log use.
    key: String,
    body: Option<Validator>,
    /// Top-level properties the request schema names (unknown ones are warned about).
    body_properties: Vec<String>,
    query_params: Vec<String>,
    /// Status → response schema.
    responses: BTreeMap<u16, Validator>,
}

struct Spec {
    operations: Vec<Operation>,
}

/// The description leaves out `"type": "object"` where it lists
/// properties; OpenAPI implies it, JSON Schema does not (an array would pass).
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

fn compile(schema: &Value, components: &Value, what: &str) -> Validator {
    // OpenAPI 3.0 schemas are (close to) draft 4; `#/components/...`
    // references resolve inside a root that carries the components.
    let mut root = schema.clone();
    if let Value::Object(map) = &mut root {
        map.insert("components".into(), components.clone());
    }
    objects_typed(&mut root);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&root)
        .unwrap_or_else(|e| panic!("spec/plesk: bad schema for {what}: {e}"))
}

fn property_names(schema: &Value, components: &Value) -> Vec<String> {
    let resolved = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/components/")
            .and_then(|p| components.pointer(&format!("/{p}")))
            .unwrap_or(schema),
        None => schema,
    };
    resolved
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

static SPEC: LazyLock<Spec> = LazyLock::new(|| {
    let doc: Value = serde_json::from_str(SPEC_JSON).expect("spec/plesk parses");
    let components = doc["components"].clone();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let method = method.to_ascii_uppercase();
            let key = format!("{method} {path}");
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let names = |place: &str| {
                params
                    .iter()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            };
            let body_schema = op.pointer("/requestBody/content/application~1json/schema");
            let responses = op["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(status, r)| {
                    let schema = r.pointer("/content/application~1json/schema")?;
                    let status = status.parse().ok()?;
                    Some((
                        status,
                        compile(schema, &components, &format!("{key} {status}")),
                    ))
                })
                .collect();
            operations.push(Operation {
                segments: path
                    .trim_matches('/')
                    .split('/')
                    .map(str::to_owned)
                    .collect(),
                body: body_schema.map(|s| compile(s, &components, &key)),
                body_properties: body_schema
                    .map(|s| property_names(s, &components))
                    .unwrap_or_default(),
                query_params: names("query"),
                responses,
                method,
                key,
            });
        }
    }
    Spec { operations }
});

/// A request matched to its operation.
#[derive(Debug)]
pub(crate) struct Route {
    pub key: String,
    /// Path parameters by name (`id`, `name`, `key`).
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

/// Find the operation for `method` and `path` (below `/api/v2`).
pub(crate) fn route(method: &str, path: &str) -> Result<Route, NoRoute> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let mut path_known = false;
    for op in &SPEC.operations {
        let Some(params) = matches(&op.segments, &segments) else {
            continue;
        };
        path_known = true;
        if op.method == method {
            return Ok(Route {
                key: op.key.clone(),
                params,
            });
        }
    }
    Err(if path_known {
        NoRoute::Method
    } else {
        NoRoute::Path
    })
}

fn matches(template: &[String], segments: &[&str]) -> Option<BTreeMap<String, String>> {
    if template.len() != segments.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (t, s) in template.iter().zip(segments) {
        match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            Some(name) if !s.is_empty() => {
                let value = percent_decode(s);
                params.insert(name.to_owned(), value);
            }
            Some(_) => return None,
            None if t == s => {}
            None => return None,
        }
    }
    Some(params)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn operation(key: &str) -> Option<&'static Operation> {
    SPEC.operations.iter().find(|o| o.key == key)
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

/// Check a routed request's path parameters, query and body.
pub(crate) fn check(
    route: &Route,
    query: &BTreeMap<String, String>,
    content_type: Option<&str>,
    body: &[u8],
) -> (Checked, Option<Value>) {
    let mut checked = Checked::default();
    let Some(op) = operation(&route.key) else {
        return (checked, None);
    };
    // Every `{id}` of this API is an integer; `{name}` and `{key}` are strings.
    if let Some(id) = route.params.get("id") {
        if !op.key.starts_with("POST /cli/")
            && !op.key.starts_with("GET /cli/")
            && id.parse::<i64>().is_err()
        {
            checked.reject(format!("path parameter `id` = `{id}` is not an integer"));
        }
    }
    for name in query.keys() {
        if !op.query_params.contains(name) {
            checked.problems.push(format!(
                "warning: unknown query parameter `{name}` (ignored)"
            ));
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
        let secret = path.split('/').any(crate::common::log::is_secret);
        let message = if secret {
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

/// Check an answer against the description's schema for `key` and
/// `status`. One line per violation; empty = valid.
pub fn check_response(key: &str, status: u16, body: &Value) -> Vec<String> {
    let Some(op) = operation(key) else {
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
pub(crate) fn answers_list(key: &str) -> bool {
    let Some(op) = operation(key) else {
        return false;
    };
    op.responses
        .iter()
        .find(|(s, _)| (200..300).contains(*s))
        .is_some_and(|(_, v)| v.is_valid(&json!([])) && !v.is_valid(&json!({})))
}

/// Every operation key the description has, sorted.
pub fn operations() -> Vec<String> {
    let mut keys: Vec<String> = SPEC.operations.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_params() {
        assert_eq!(operations().len(), 49);
        let r = route("PUT", "/domains/7/status").unwrap();
        assert_eq!(r.key, "PUT /domains/{id}/status");
        assert_eq!(r.params["id"], "7");
        assert_eq!(route("PATCH", "/domains/7").unwrap_err(), NoRoute::Method);
        assert_eq!(route("GET", "/nope").unwrap_err(), NoRoute::Path);
        assert_eq!(
            route("POST", "/cli/subscription/call").unwrap().key,
            "POST /cli/{id}/call"
        );
    }

    #[test]
    fn bodies_are_checked_against_the_description() {
        let r = route("POST", "/clients").unwrap();
        let ok = json!({"name": "A", "login": "a", "password": "secret12", "email": "a@b.c", "type": "customer"});
        let (c, v) = check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            ok.to_string().as_bytes(),
        );
        assert!(c.rejection.is_none(), "{:?}", c.problems);
        assert!(v.is_some());
        let bad = json!({"name": "A", "login": "a", "email": "a@b.c", "type": "boss"});
        let (c, _) = check(
            &r,
            &BTreeMap::new(),
            Some("application/json"),
            bad.to_string().as_bytes(),
        );
        assert!(c.problems.len() >= 2, "{:?}", c.problems);
        let (c, _) = check(&r, &BTreeMap::new(), Some("text/plain"), b"x");
        assert!(c.rejection.unwrap().contains("application/json"));
        let r = route("GET", "/clients/abc").unwrap();
        let (c, _) = check(&r, &BTreeMap::new(), None, b"");
        assert!(c.rejection.unwrap().contains("not an integer"));
    }

    #[test]
    fn responses_are_checked() {
        assert!(check_response("GET /clients", 200, &json!([])).is_empty());
        assert!(!check_response("GET /clients", 200, &json!({})).is_empty());
        assert!(answers_list("GET /clients"));
        assert!(!answers_list("GET /server"));
    }
}
