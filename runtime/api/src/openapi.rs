//! The OpenAPI document's shared parts: the security scheme, the error
//! answers every operation can give (added here by what the operation takes,
//! so a new route states them the day it is added), and the constraints
//! that come from code rather than from one handler's annotation.
use crate::problem;
use panel1_sandbox::Limits;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Panel1",
        description = "Provisioning for hosting platforms: tenants connect servers through sandboxed WebAssembly adapters and Panel1 provisions, suspends, unsuspends and terminates services on them as tasks.\n\nAuthenticate with `Authorization: Bearer <key>`. Every POST honors `Idempotency-Key`. Errors are `application/problem+json` with a stable `type`. Text must be UTF-8 without NUL (U+0000) anywhere: in a path, a query or a JSON string or key (422)."
    ),
    modifiers(&Security),
    components(schemas(problem::Problem, problem::FieldError))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A Panel1 API key (`p1_…`)"))
                    .build(),
            ),
        );
    }
}

/// What each error status means, for the operations that can answer it.
const ANSWERS: &[(&str, &str)] = &[
    ("400", "The body is not valid JSON"),
    ("401", "Missing or invalid API key"),
    ("403", "The key lacks the scope or kind this needs"),
    ("404", "No such object (or not the caller's)"),
    ("409", "Conflicts with the object's state, or the Idempotency-Key's first request is still running"),
    ("408", "The body was not received within the body read timeout"),
    ("413", "The body is over the size limit"),
    ("415", "The body's Content-Type is not one this operation reads"),
    ("422", "A field, parameter or header is invalid (named in `errors`), or the Idempotency-Key was used with another request"),
    ("429", "Rate limited (per key, or per address after failed authentications); see Retry-After"),
    ("503", "The database is unreachable or restarting; retry after Retry-After (a keyed POST is safe to retry)"),
];

/// Adds the error answers an operation can give, judged by what it takes:
/// a key (401/403/429, and 503: every key is checked in the database), path
/// parameters (404, 422), query parameters (422), a body
/// (400/408/413/415/422), POST (409/422 through Idempotency-Key).
pub struct ErrorAnswers;

impl Modify for ErrorAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.delete, false),
                (&mut item.put, false),
                (&mut item.patch, false),
            ];
            for (op, is_post) in ops {
                if let Some(op) = op.as_mut() {
                    add_answers(path, op, is_post);
                }
            }
        }
    }
}

fn add_answers(path: &str, op: &mut Operation, is_post: bool) {
    let mut statuses: Vec<&str> = Vec::new();
    let params = op.parameters.as_deref().unwrap_or_default();
    let takes = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    let authenticated = op.security.is_some();
    if authenticated {
        statuses.extend(["401", "403", "429", "503"]);
    }
    if takes(ParameterIn::Path) {
        statuses.extend(["404", "422"]);
    }
    if takes(ParameterIn::Query) || takes(ParameterIn::Header) {
        statuses.push("422");
    }
    // Every POST may carry a body (read, so limited) and an Idempotency-Key.
    if is_post {
        statuses.extend(["408", "409", "413", "422"]);
    }
    if op.request_body.is_some() {
        statuses.extend(["400", "408", "413", "415", "422"]);
    }
    for status in statuses {
        if op.responses.responses.contains_key(status) {
            continue;
        }
        let description = ANSWERS
            .iter()
            .find(|(s, _)| *s == status)
            .map_or("Error", |(_, d)| d);
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                problem::PROBLEM_JSON,
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build();
        op.responses
            .responses
            .insert(status.to_string(), RefOr::T(response));
    }
    if is_post && authenticated && path.starts_with("/v1/") {
        let header = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Replays the first answer for a repeat of the same request (24 h)",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[\\x20-\\x7E]+$")),
            ))
            .build();
        op.parameters.get_or_insert_with(Vec::new).push(header);
    }
}

/// A server's limits may only lower the defaults: the maxima are the
/// defaults of this build.
pub struct LimitMaxima;

impl Modify for LimitMaxima {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let defaults = Limits::default();
        let maxima = [
            ("fuel", defaults.fuel),
            ("memory_bytes", defaults.memory_bytes),
            ("timeout_ms", defaults.timeout_ms),
            ("http_max_requests", defaults.http_max_requests.into()),
        ];
        let Some(RefOr::T(Schema::Object(limits))) = openapi
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut("LimitsInput"))
        else {
            return;
        };
        for (name, max) in maxima {
            if let Some(RefOr::T(Schema::Object(p))) = limits.properties.get_mut(name) {
                p.minimum = Some(1.into());
                p.maximum = Some(max.into());
            }
        }
    }
}

/// A string that is one of `values` (query filters over a Postgres enum).
pub fn one_of(values: &[&str]) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
}

/// `[a-zA-Z0-9.-]` host names, `*.` wildcards, `:port`, `[v6]`: what
/// `servers::check_destination` accepts, at least one.
pub fn destinations() -> ArrayBuilder {
    ArrayBuilder::new().min_items(Some(1)).items(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some("^[A-Za-z0-9.*:\\[\\]-]+$")),
    )
}

/// An object of string values, at most `max` entries.
pub fn string_map(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String)))
        .max_properties(Some(max))
}
