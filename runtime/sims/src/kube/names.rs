//! Name rules kube-apiserver applies: RFC 1123 labels and subdomains,
//! RFC 1035 labels (Services), label keys and values; with its messages.

use serde_json::{json, Value};

use super::errors::Cause;
use super::kinds::NameRule;

const LABEL_1123: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const LABEL_1035: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const LABEL_KEY: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// RFC 1123 label shape, without the length limit.
fn label_1123_shape(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || *c == b'-')
}

pub(crate) fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(label_1123_shape)
}

/// Problems with an object's name under `rule` (field `metadata.name`).
pub(crate) fn check_name(rule: NameRule, name: &str, field: &str) -> Vec<Cause> {
    let v = json!(name);
    let (ok, shape, max) = match rule {
        NameRule::Label1123 => (label_1123_shape(name), LABEL_1123, 63),
        NameRule::Label1035 => (
            label_1123_shape(name) && name.as_bytes()[0].is_ascii_lowercase(),
            LABEL_1035,
            63,
        ),
        NameRule::Subdomain => (name.split('.').all(label_1123_shape), SUBDOMAIN, 253),
    };
    let mut causes = Vec::new();
    if name.len() > max {
        causes.push(Cause::invalid(
            field,
            &v,
            format!("must be no more than {max} characters"),
        ));
    }
    if !ok {
        causes.push(Cause::invalid(field, &v, shape));
    }
    causes
}

fn label_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Problems with a `labels` map at `field` (`metadata.labels`).
pub(crate) fn check_labels(labels: Option<&Value>, field: &str) -> Vec<Cause> {
    let Some(map) = labels.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut causes = Vec::new();
    for (key, value) in map {
        let key_ok = match key.split_once('/') {
            Some((prefix, name)) => is_subdomain(prefix) && label_name_part(name),
            None => label_name_part(key),
        };
        if !key_ok {
            causes.push(Cause::invalid(field, &json!(key), LABEL_KEY));
        }
        if let Some(v) = value.as_str() {
            if !(v.is_empty() || label_name_part(v)) {
                causes.push(Cause::invalid(field, value, LABEL_VALUE));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(check_name(NameRule::Label1123, "t1-web", "metadata.name").is_empty());
        assert!(check_name(NameRule::Label1123, "1abc", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Label1123, "Web", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Label1123, "a.b", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Label1123, &"a".repeat(64), "metadata.name").is_empty());
        assert!(!check_name(NameRule::Label1035, "1abc", "metadata.name").is_empty());
        assert!(check_name(NameRule::Label1035, "web", "metadata.name").is_empty());
        assert!(check_name(NameRule::Subdomain, "web.v2", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Subdomain, "web_v2", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Subdomain, "-web", "metadata.name").is_empty());
        assert!(!check_name(NameRule::Subdomain, "", "metadata.name").is_empty());
        assert!(is_subdomain("panel1.dev"));
        let labels = json!({"app": "web", "panel1.dev/tenant": "t1", "empty": ""});
        assert!(check_labels(Some(&labels), "metadata.labels").is_empty());
        let bad = json!({"bad key": "x", "ok": "has space"});
        assert_eq!(check_labels(Some(&bad), "metadata.labels").len(), 2);
    }
}
