//! WHM parameters, encoded for a query string or an
//! `application/x-www-form-urlencoded` body.
//!
//! A secret placeholder is written verbatim: the host finds it, substitutes
//! the value and escapes it for the form itself. Escaping it here would hide
//! it from the host.

#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Placeholder(String),
}

/// Ordered `name=value` pairs.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, Value)>);

impl Params {
    pub fn new() -> Params {
        Params::default()
    }

    /// A plain value (percent-encoded).
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Params {
        self.0.push((name.to_string(), Value::Text(value.into())));
        self
    }

    /// A plain value, when present.
    pub fn opt(self, name: &str, value: Option<&str>) -> Params {
        match value {
            Some(v) => self.text(name, v),
            None => self,
        }
    }

    /// A secret placeholder from `secrets::placeholder` (written verbatim).
    pub fn placeholder(mut self, name: &str, placeholder: String) -> Params {
        self.0
            .push((name.to_string(), Value::Placeholder(placeholder)));
        self
    }

    /// `a=1&b=2`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.0 {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(&escape(name));
            out.push('=');
            match value {
                Value::Text(v) => out.push_str(&escape(v)),
                Value::Placeholder(p) => out.push_str(p),
            }
        }
        out
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_text_and_keeps_placeholders() {
        let p = Params::new()
            .text("user", "alice")
            .text("reason", "Unpaid: 2 invoices & more")
            .opt("plan", None)
            .opt("api.chunk.size", Some("10"))
            .placeholder("password", "{{secret:pw}}".into());
        assert_eq!(
            p.encode(),
            "user=alice&reason=Unpaid%3A%202%20invoices%20%26%20more&api.chunk.size=10&password={{secret:pw}}"
        );
        assert_eq!(escape("é/?#"), "%C3%A9%2F%3F%23");
        assert_eq!(Params::new().encode(), "");
    }
}
