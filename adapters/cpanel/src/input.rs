//! Reading a service's fields and params: which WHM account it is, its
//! domain, and the free-form params (`password`, `contactemail`, `reason`).
use panel1_sdk::{invalid_input, AdapterError, ServiceSpec};

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

/// The WHM username of an existing service: its remote id, else the
/// requested username.
pub fn account_of(spec: &ServiceSpec) -> Result<String, AdapterError> {
    let user = field(&spec.remote_id)
        .or_else(|| field(&spec.username))
        .ok_or_else(|| invalid_input("service has neither a remote id nor a username"))?;
    if user.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid_input(format!(
            "`{}` is not a cPanel username",
            user.escape_debug()
        )));
    }
    Ok(user.to_string())
}

/// A sanity-checked primary domain, lowercased, without a trailing dot.
pub fn domain(raw: &str) -> Result<String, String> {
    let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| {
        Err(format!(
            "domain `{}` is not valid: {why}",
            raw.escape_debug()
        ))
    };
    if d.is_empty() {
        return Err("domain is required: a cPanel account needs its main domain".into());
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

/// A contact e-mail as `createacct`'s `contactemail` needs it (cPanel's
/// description declares an e-mail format): one `@`, a local part without
/// spaces or control characters, a valid domain after the `@` (lowercased).
/// Deliberately no full RFC 5322: quoted local parts are not worth a refusal
/// from WHM later.
pub fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim();
    let bad = |why: &str| {
        Err(format!(
            "contact e-mail `{}` is not valid: {why}",
            e.escape_debug()
        ))
    };
    let Some((local, host)) = e.split_once('@') else {
        return bad("it has no `@`");
    };
    if host.contains('@') {
        return bad("it has more than one `@`");
    }
    if local.is_empty() {
        return bad("nothing before the `@`");
    }
    if local.len() > 64 {
        return bad("the part before the `@` is longer than 64 characters");
    }
    if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("spaces or control characters before the `@`");
    }
    if host.is_empty() {
        return bad("nothing after the `@`");
    }
    let host = domain(host)
        .map_err(|why| format!("contact e-mail `{}` is not valid: {why}", e.escape_debug()))?;
    Ok(format!("{local}@{host}"))
}

#[cfg(test)]
mod tests {
    use super::{domain, email};

    #[test]
    fn domains() {
        assert_eq!(domain("Example.COM."), Ok("example.com".into()));
        assert_eq!(
            domain(" shop.example.co.uk "),
            Ok("shop.example.co.uk".into())
        );
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
        assert_eq!(email(" Ops@Example.COM "), Ok("Ops@example.com".into()));
        assert_eq!(
            email("first.last+tag@mail.example.co.uk"),
            Ok("first.last+tag@mail.example.co.uk".into())
        );
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "a@b@example.com",
            "o ps@example.com",
            "ops\u{7}@example.com",
            "ops@localhost",
            "ops@exa mple.com",
            "ops@10.0.0.1",
            "ops@example.com,root@evil.example",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
        let e = email("ops@localhost").unwrap_err();
        assert!(
            e.starts_with("contact e-mail `ops@localhost` is not valid"),
            "{e}"
        );
    }
}
