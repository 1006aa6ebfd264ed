//! Reading a service's fields and params, and checking the values every
//! hosting provider needs in the same shape: domains and e-mail addresses.
//! Checked before any call, so a bad request never reaches the provider and
//! fails as `invalid-input` with the field named.
use crate::ServiceSpec;

/// A non-empty, trimmed param of the service.
pub fn param<'a>(spec: &'a ServiceSpec, key: &str) -> Option<&'a str> {
    spec.params
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.trim())
        .filter(|v| !v.is_empty())
}

/// A non-empty, trimmed optional field.
pub fn field(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A sanity-checked domain name, lowercased, without a trailing dot
/// (IDNs in punycode).
pub fn domain(raw: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        Err(format!(
            "domain `{}` is not valid: {why}",
            raw.escape_debug()
        ))
    };
    if d.is_empty() {
        return Err("domain is required".into());
    }
    if d.len() > 253 {
        return bad("longer than 253 characters");
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return bad("it needs at least two labels, like example.com");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return bad("each label must be 1-63 characters");
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return bad("only letters, digits, `-` and `.` are allowed (use punycode for IDNs)");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label may not start or end with `-`");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return bad("an IP address is not a domain");
    }
    Ok(d)
}

/// An e-mail address as providers accept it: `local@domain`, a local part
/// of printable ASCII without spaces, quotes or angle brackets (at most 64
/// characters), and a valid domain. Returned trimmed, the domain lowercased.
pub fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim();
    let bad = |why: &str| {
        Err(format!(
            "e-mail address `{}` is not valid: {why}",
            e.escape_debug()
        ))
    };
    let Some((local, host)) = e.rsplit_once('@') else {
        return bad("it has no `@`");
    };
    if local.is_empty() || local.len() > 64 {
        return bad("the part before `@` must be 1-64 characters");
    }
    let allowed = |c: char| c.is_ascii_graphic() && !"@\"<>()[]\\,;:".contains(c);
    if !local.chars().all(allowed)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return bad("the part before `@` may hold letters, digits and !#$%&'*+-/=?^_`{|}~. only");
    }
    match domain(host) {
        Ok(h) => Ok(format!("{local}@{h}")),
        Err(_) => bad("the part after `@` is not a domain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(domain("Example.COM."), Ok("example.com".into()));
        assert_eq!(
            domain("xn--bcher-kva.example"),
            Ok("xn--bcher-kva.example".into())
        );
        for bad in [
            "",
            "localhost",
            "exa mple.com",
            "-a.com",
            "a-.com",
            "a..com",
            "a.com/x",
            "user@a.com",
            "10.0.0.1",
            "bücher.de",
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
        assert!(domain(&format!("{}.com", "a".repeat(64))).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            email(" Ops+billing@Example.COM "),
            Ok("Ops+billing@example.com".into())
        );
        assert_eq!(
            email("a.b@shop.example.co.uk"),
            Ok("a.b@shop.example.co.uk".into())
        );
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@b@c",
            "\"q\"@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@exa mple.com",
            "<a@example.com>",
            "ops\u{7}@example.com",
            "ops@10.0.0.1",
            "ops@example.com,root@evil.example",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
