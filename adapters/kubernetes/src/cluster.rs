//! The Kubernetes API client, and the one place that reads the API server's
//! answers. Authentication is a service account's bearer token (the
//! `kubernetes-token` secret, sent by placeholder) or, when no token is
//! bound, the client identity the host presents in the TLS handshake.
//!
//! Every answer becomes JSON, one of the refusals the caller judges
//! ([`Answer::Missing`] 404, [`Answer::Conflict`] 409, [`Answer::Terminating`]
//! for a namespace being deleted), or a typed error: transport trouble, 5xx,
//! 408 and 429 are `transient`; 401 and 403 `auth-failed`; 400 and 422
//! `invalid-input`; anything else `permanent`.
use crate::settings::Settings;
use panel1_sdk::deadline::Deadline;
use panel1_sdk::http::{
    looks_like_html, path_template, snippet, transport_error, HttpError, Request, TransportHints,
};
use panel1_sdk::*;
use serde_json::Value;

/// The secret holding a service account token, bound to the API server.
pub const TOKEN_SECRET: &str = "kubernetes-token";
/// The secret holding a client certificate and key (PEM), bound to the API
/// server; used when no token is bound.
pub const IDENTITY_SECRET: &str = "kubernetes-client-identity";
/// The secret holding the cluster CA certificate (PEM, no key), bound to the
/// API server: the host verifies the server against it. Read by the host
/// only; the adapter never uses it.
pub const CA_SECRET: &str = "kubernetes-ca";
/// Panel1's field manager for server-side apply.
pub const FIELD_MANAGER: &str = "panel1";

#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 2xx: the JSON body.
    Ok(Value),
    /// 404: the Status message.
    Missing(String),
    /// 409 (`AlreadyExists` or `Conflict`): the Status message.
    Conflict(String),
    /// 403 because the namespace is being deleted: nothing can be created
    /// in it until it is gone.
    Terminating(String),
}

pub struct Cluster {
    settings: Settings,
    deadline: Deadline,
    token: bool,
}

impl Cluster {
    pub fn connect(ctx: &CallContext) -> Result<Cluster, AdapterError> {
        Ok(Cluster {
            settings: Settings::load()?,
            deadline: Deadline::new(ctx),
            token: secrets::names().iter().any(|n| n == TOKEN_SECRET),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    /// How this call authenticates, for logs and test-connection.
    pub fn auth_kind(&self) -> &'static str {
        if self.token {
            "bearer token"
        } else {
            "client certificate"
        }
    }

    /// Call and require a 2xx.
    pub fn ok(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdapterError> {
        let what = format!("{method} {}", template(path));
        match self.call(method, path, body, "application/json")? {
            Answer::Ok(v) => Ok(v),
            Answer::Missing(m) => Err(not_found(format!("Kubernetes {what}: {m}"))),
            Answer::Conflict(m) => Err(conflict(format!("Kubernetes {what}: {m}"))),
            Answer::Terminating(m) => {
                Err(transient(format!("Kubernetes {what}: {m}"), Some(2_000)))
            }
        }
    }

    /// GET an object; `None` when it does not exist.
    pub fn get(&self, path: &str) -> Result<Option<Value>, AdapterError> {
        match self.call("GET", path, None, "application/json")? {
            Answer::Ok(v) => Ok(Some(v)),
            Answer::Missing(_) => Ok(None),
            other => Err(permanent(format!(
                "Kubernetes GET {}: unexpected {other:?}",
                template(path)
            ))),
        }
    }

    /// Server-side apply of `object` at `path` (the object's own URL) as
    /// Panel1's field manager, forcing ownership of the fields it sets: a
    /// retry converges on the same object.
    pub fn apply(&self, path: &str, object: &Value) -> Result<Value, AdapterError> {
        let url = format!("{path}?fieldManager={FIELD_MANAGER}&force=true");
        let what = format!("apply {}", template(path));
        match self.call("PATCH", &url, Some(object), "application/apply-patch+yaml")? {
            Answer::Ok(v) => Ok(v),
            Answer::Terminating(m) => Err(transient(
                format!("Kubernetes {what}: {m} (the namespace must finish terminating first)"),
                Some(2_000),
            )),
            Answer::Missing(m) => Err(not_found(format!("Kubernetes {what}: {m}"))),
            Answer::Conflict(m) => Err(transient(format!("Kubernetes {what}: {m}"), None)),
        }
    }

    /// A JSON merge patch (RFC 7386).
    pub fn merge(&self, path: &str, patch: &Value) -> Result<Answer, AdapterError> {
        let url = format!("{path}?fieldManager={FIELD_MANAGER}");
        self.call("PATCH", &url, Some(patch), "application/merge-patch+json")
    }

    /// Call; 404, 409 and a terminating namespace come back for the caller
    /// to judge, everything else typed.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Answer, AdapterError> {
        let what = format!("{method} {}", template(path));
        let left = self.deadline.remaining_ms();
        let timeout = self
            .deadline
            .request_timeout(self.settings.timeout_ms)
            .ok_or_else(|| {
                transient(
                    format!("Kubernetes {what}: no time left in the call ({left} ms)"),
                    None,
                )
            })?;
        let url = format!(
            "https://{}:{}{path}",
            self.settings.host, self.settings.port
        );
        let mut request = Request::new(method, url)
            .header("accept", "application/json")
            .timeout_ms(timeout);
        if self.token {
            request = request.bearer_secret(TOKEN_SECRET)?;
        }
        if let Some(b) = body {
            request = request
                .header("content-type", content_type)
                .body(serde_json::to_vec(b).unwrap_or_default());
        }
        let response = match request.send() {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&what, e);
                log::warn(
                    "kubernetes call",
                    &[("call", &what), ("outcome", kind_name(&err))],
                );
                return Err(err);
            }
        };
        let answer = classify(
            &what,
            response.status,
            response.header("content-type"),
            response.retry_after_ms(),
            &response.body,
            self.auth_kind(),
        );
        let outcome = match &answer {
            Ok(Answer::Ok(_)) => "ok",
            Ok(Answer::Missing(_)) => "404",
            Ok(Answer::Conflict(_)) => "409",
            Ok(Answer::Terminating(_)) => "terminating",
            Err(e) => kind_name(e),
        };
        log::info(
            "kubernetes call",
            &[
                ("call", &what),
                ("http_status", &response.status.to_string()),
                ("outcome", outcome),
            ],
        );
        answer
    }

    fn transport_error(&self, what: &str, e: HttpError) -> AdapterError {
        let at = format!("{}:{}", self.settings.host, self.settings.port);
        let hints = TransportHints {
            egress: &format!(
                "the server's egress rules must allow https://{at}/ and the `{TOKEN_SECRET}` secret (or `{IDENTITY_SECRET}`) must be bound to it"
            ),
            tls: &format!(
                "bind the cluster CA certificate (PEM, the kubeconfig's certificate-authority-data) as the `{CA_SECRET}` secret to {at}, or pin it on the egress rule (`https://{at}/ sha256:<hex>`) when the API server sends it in its chain"
            ),
            identity: &format!(
                "bind the `{IDENTITY_SECRET}` secret (a client certificate and key the cluster trusts, PEM) to {at}, or a `{TOKEN_SECRET}`"
            ),
        };
        transport_error(&format!("Kubernetes {what} (talking to {at})"), e, &hints)
    }
}

/// `/apis/apps/v1/namespaces/p1-a/deployments/web?x` →
/// `/apis/apps/v1/namespaces/{id}/deployments/{id}`, for logs.
pub fn template(path: &str) -> String {
    path_template(
        path,
        &[
            "namespaces",
            "deployments",
            "services",
            "ingresses",
            "resourcequotas",
            "limitranges",
            "persistentvolumeclaims",
        ],
        &[
            "deployments",
            "services",
            "ingresses",
            "resourcequotas",
            "limitranges",
            "persistentvolumeclaims",
            "scale",
        ],
    )
}

/// Classify one answer from the API server; `auth` names how the call
/// authenticated, for the message of a refusal.
pub fn classify(
    what: &str,
    status: u16,
    content_type: Option<&str>,
    retry_after_ms: Option<u64>,
    body: &[u8],
    auth: &str,
) -> Result<Answer, AdapterError> {
    let at = format!("Kubernetes {what}: HTTP {status}");
    let doc = serde_json::from_slice::<Value>(body).ok();
    // A `Status` object: what went wrong, in the API server's words.
    let is_status = doc
        .as_ref()
        .and_then(|d| d.get("kind"))
        .and_then(Value::as_str)
        == Some("Status");
    let field = |k: &str| -> Option<String> {
        doc.as_ref()
            .filter(|_| is_status)
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
            .map(|m| m.chars().take(300).collect())
    };
    let message = field("message");
    let reason = field("reason").unwrap_or_default();
    let said = |base: String| match &message {
        Some(m) => format!("{base}: {m}"),
        None => base,
    };
    if status == 429 || status == 408 || (500..=599).contains(&status) {
        return Err(transient(
            said(format!("{at}, retry later")),
            retry_after_ms,
        ));
    }
    if status == 401 {
        return Err(auth_failed(said(format!(
            "{at}: the {auth} was refused (expired or revoked?)"
        ))));
    }
    if status == 403 {
        if let Some(m) = message
            .as_deref()
            .filter(|m| m.contains("being terminated"))
        {
            return Ok(Answer::Terminating(m.to_string()));
        }
        // Not every 403 is about permissions: a quota or an admission
        // webhook refusing the object is the object's fault.
        if let Some(m) = message.as_deref().filter(|m| m.contains("exceeded quota")) {
            return Err(invalid_input(format!(
                "{at}: the objects do not fit the quota: {m}"
            )));
        }
        if let Some(m) = message
            .as_deref()
            .filter(|m| m.contains("admission webhook"))
        {
            return Err(permanent(format!(
                "{at}: refused by an admission webhook: {m}"
            )));
        }
        return Err(auth_failed(said(format!(
            "{at}: the {auth} lacks a permission (RBAC)"
        ))));
    }
    if looks_like_html(content_type, body) {
        return Err(if status < 400 {
            auth_failed(format!(
                "{at}: an HTML login page, not the Kubernetes API (a proxy asking for credentials?)"
            ))
        } else {
            permanent(format!("{at}: an HTML page, not the Kubernetes API"))
        });
    }
    match (status, message) {
        (200..=299, _) => match doc {
            Some(d) if d.is_object() => Ok(Answer::Ok(d)),
            None if body.iter().all(u8::is_ascii_whitespace) => Ok(Answer::Ok(Value::Null)),
            Some(d) => Err(permanent(format!(
                "{at}: not a Kubernetes object: {}",
                snippet(d.to_string().as_bytes(), 100)
            ))),
            None => Err(permanent(format!(
                "{at}: not JSON: {:?}",
                snippet(body, 100)
            ))),
        },
        (404, Some(m)) => Ok(Answer::Missing(m)),
        (409, Some(m)) => Ok(Answer::Conflict(m)),
        (410, m) => Err(invalid_input(format!(
            "{at}: the listing expired ({}); start again without a cursor",
            m.unwrap_or_else(|| "Expired".into())
        ))),
        (400 | 422, Some(m)) => Err(invalid_input(format!("{at} {reason}: {m}"))),
        (_, m) => Err(permanent(match m {
            Some(m) => format!("{at} {reason}: {m}"),
            None => format!(
                "{at}: not the API server's answer ({:?})",
                snippet(body, 100)
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> Vec<u8> {
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": reason, "message": message, "code": code})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn answers() {
        let ct = Some("application/json");
        let c = |code, body: &[u8]| classify("x", code, ct, None, body, "bearer token");
        assert_eq!(
            c(200, br#"{"kind":"Namespace"}"#).unwrap(),
            Answer::Ok(serde_json::json!({"kind": "Namespace"}))
        );
        assert_eq!(
            c(404, &status(404, "NotFound", "namespaces \"a\" not found")).unwrap(),
            Answer::Missing("namespaces \"a\" not found".into())
        );
        assert!(matches!(
            c(409, &status(409, "AlreadyExists", "exists")).unwrap(),
            Answer::Conflict(_)
        ));
        assert!(matches!(
            c(
                403,
                &status(
                    403,
                    "Forbidden",
                    "unable to create new content in namespace a because it is being terminated"
                )
            )
            .unwrap(),
            Answer::Terminating(_)
        ));
        let kind = |code, body: &[u8]| kind_name(&c(code, body).unwrap_err()).to_string();
        assert_eq!(
            kind(401, &status(401, "Unauthorized", "Unauthorized")),
            "auth-failed"
        );
        assert_eq!(
            kind(403, &status(403, "Forbidden", "cannot list")),
            "auth-failed"
        );
        assert_eq!(
            kind(403, &status(403, "Forbidden", "exceeded quota: panel1")),
            "invalid-input"
        );
        assert_eq!(
            kind(
                403,
                &status(403, "Forbidden", "admission webhook \"x\" denied")
            ),
            "permanent"
        );
        assert_eq!(
            kind(422, &status(422, "Invalid", "spec.replicas")),
            "invalid-input"
        );
        assert_eq!(
            kind(410, &status(410, "Expired", "too old")),
            "invalid-input"
        );
        assert_eq!(kind(503, b""), "transient");
        assert_eq!(kind(200, b"[]"), "permanent");
        assert_eq!(kind(418, b"{}"), "permanent");
        assert_eq!(
            kind_name(&classify("x", 200, Some("text/html"), None, b"<html>", "t").unwrap_err()),
            "auth-failed"
        );
    }

    #[test]
    fn templates() {
        assert_eq!(
            template("/apis/apps/v1/namespaces/p1-a/deployments/web?fieldManager=panel1"),
            "/apis/apps/v1/namespaces/{id}/deployments/{id}"
        );
        assert_eq!(template("/api/v1/namespaces?limit=5"), "/api/v1/namespaces");
        assert_eq!(
            template("/apis/apps/v1/namespaces/a/deployments/web/scale"),
            "/apis/apps/v1/namespaces/{id}/deployments/{id}/scale"
        );
    }
}
