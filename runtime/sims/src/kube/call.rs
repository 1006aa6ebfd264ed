//! What a request brings besides its route: query parameters, body and
//! headers, read the way kube-apiserver reads them (the field manager, dry
//! run, field validation, the media type of the body).

use std::collections::BTreeMap;

use super::errors::KubeError;
use super::write::FieldValidation;

pub(crate) struct Call<'a> {
    pub query: &'a BTreeMap<String, String>,
    /// `Content-Type`, as sent.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub user_agent: Option<&'a str>,
}

/// The body kinds a write may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    Json,
    /// `application/yaml` (read as JSON, see `write::parse_object`).
    Yaml,
    Apply,
    MergePatch,
    StrategicMergePatch,
    JsonPatch,
    Other,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    pub fn media(&self) -> Media {
        let Some(ct) = self.content_type else {
            return Media::Json;
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "" | "application/json" => Media::Json,
            "application/yaml" => Media::Yaml,
            "application/apply-patch+yaml" => Media::Apply,
            "application/merge-patch+json" => Media::MergePatch,
            "application/strategic-merge-patch+json" => Media::StrategicMergePatch,
            "application/json-patch+json" => Media::JsonPatch,
            _ => Media::Other,
        }
    }

    /// The content type for an unsupported-media answer.
    pub fn content_type_shown(&self) -> &str {
        self.content_type.unwrap_or("")
    }

    /// `fieldManager`, or what kube-apiserver derives from the user agent
    /// (`kubectl/v1.31.0 (linux/amd64)` → `kubectl`).
    pub fn manager(&self) -> String {
        if let Some(m) = self.param("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_owned();
        }
        self.user_agent
            .and_then(|ua| ua.split('/').next())
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .unwrap_or("unknown")
            .to_owned()
    }

    /// `dryRun=All`: validate and answer, store nothing.
    pub fn dry_run(&self) -> Result<bool, KubeError> {
        match self.param("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(KubeError::bad_request(format!(
                "Invalid dry run value: {other}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation`. Without one the simulator is strict, stricter
    /// than kube-apiserver's default (`Warn`, which drops unknown fields):
    /// an unknown field is refused, so an adapter's typo is caught.
    pub fn field_validation(&self) -> Result<FieldValidation, KubeError> {
        match self.param("fieldValidation") {
            None | Some("") | Some("Strict") => Ok(FieldValidation::Strict),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(KubeError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    pub fn force(&self) -> bool {
        self.param("force") == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_kube_apiserver() {
        let q: BTreeMap<String, String> = BTreeMap::new();
        let call = Call {
            query: &q,
            content_type: Some("application/apply-patch+yaml; charset=utf-8"),
            body: b"",
            user_agent: Some("kubectl/v1.31.0 (linux/amd64)"),
        };
        assert_eq!(call.media(), Media::Apply);
        assert_eq!(call.manager(), "kubectl");
        assert!(!call.dry_run().unwrap());
        assert!(!call.force());
        let q: BTreeMap<String, String> = [
            ("fieldManager", "panel1"),
            ("dryRun", "Some"),
            ("force", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let call = Call {
            query: &q,
            content_type: Some("text/plain"),
            body: b"",
            user_agent: None,
        };
        assert_eq!(call.media(), Media::Other);
        assert_eq!(call.manager(), "panel1");
        assert_eq!(call.dry_run().unwrap_err().code, 400);
        assert!(call.force());
    }
}
