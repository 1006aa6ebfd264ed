//! Label selectors (`labelSelector=`) and the few field selectors every
//! resource supports (`fieldSelector=metadata.name=x`), parsed as
//! kube-apiserver parses them: comma-separated requirements, all of which
//! must hold.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Greater(i64),
    Less(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector(Vec<Requirement>);

fn name_part_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn key_ok(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            super::names::is_subdomain(prefix) && name_part_ok(name) && !name.contains('/')
        }
        None => name_part_ok(key),
    }
}

fn value_ok(v: &str) -> bool {
    v.is_empty() || name_part_ok(v)
}

fn bad(what: impl std::fmt::Display) -> String {
    format!("unable to parse requirement: {what}")
}

/// Split on commas outside parentheses.
fn top_level(s: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err(bad("unbalanced parentheses"));
        }
    }
    if depth != 0 {
        return Err(bad("unbalanced parentheses"));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

fn checked_key(key: &str) -> Result<String, String> {
    let key = key.trim();
    if key_ok(key) {
        Ok(key.to_owned())
    } else {
        Err(bad(format_args!("invalid label key \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")))
    }
}

fn checked_value(v: &str) -> Result<String, String> {
    let v = v.trim();
    if value_ok(v) {
        Ok(v.to_owned())
    } else {
        Err(bad(format_args!("invalid label value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")))
    }
}

fn set_requirement(text: &str, open: usize) -> Result<Requirement, String> {
    let head: Vec<&str> = text[..open].split_whitespace().collect();
    let [key, word] = head[..] else {
        return Err(bad(format_args!(
            "found '(', expected: key in|notin (…) in \"{text}\""
        )));
    };
    let Some(inner) = text[open + 1..].trim_end().strip_suffix(')') else {
        return Err(bad("found end of input, expected: ')'"));
    };
    let values = inner
        .split(',')
        .map(checked_value)
        .collect::<Result<Vec<_>, _>>()?;
    if inner.trim().is_empty() {
        return Err(bad(
            "for 'in', 'notin' operators, values set can't be empty",
        ));
    }
    let op = match word {
        "in" => Op::In(values),
        "notin" => Op::NotIn(values),
        other => return Err(bad(format_args!("found '{other}', expected: in, notin"))),
    };
    Ok(Requirement {
        key: checked_key(key)?,
        op,
    })
}

fn requirement(text: &str) -> Result<Requirement, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("found end of input, expected: identifier"));
    }
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Requirement {
            key: checked_key(key)?,
            op: Op::NotExists,
        });
    }
    if let Some(open) = text.find('(') {
        return set_requirement(text, open);
    }
    let split = |op: &str| {
        text.split_once(op)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    };
    let (key, op) = if let Some((k, v)) = split("!=") {
        (k, Op::NotEquals(checked_value(&v)?))
    } else if let Some((k, v)) = split("==") {
        (k, Op::Equals(checked_value(&v)?))
    } else if let Some((k, v)) = split("=") {
        (k, Op::Equals(checked_value(&v)?))
    } else if let Some((k, v)) = split(">") {
        let n = v
            .trim()
            .parse()
            .map_err(|_| bad("for 'gt', 'lt' operators, the value must be an integer"))?;
        (k, Op::Greater(n))
    } else if let Some((k, v)) = split("<") {
        let n = v
            .trim()
            .parse()
            .map_err(|_| bad("for 'gt', 'lt' operators, the value must be an integer"))?;
        (k, Op::Less(n))
    } else {
        (text.to_owned(), Op::Exists)
    };
    Ok(Requirement {
        key: checked_key(&key)?,
        op,
    })
}

impl Selector {
    /// Parse a `labelSelector`; `Err` is the 400 message.
    pub fn parse(text: &str) -> Result<Selector, String> {
        if text.trim().is_empty() {
            return Ok(Selector::default());
        }
        top_level(text)?
            .into_iter()
            .map(requirement)
            .collect::<Result<Vec<_>, _>>()
            .map(Selector)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object with these `metadata.labels` matches.
    pub fn matches(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| {
            let v = get(&r.key);
            match &r.op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Equals(x) => v == Some(x.as_str()),
                Op::NotEquals(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| xs.iter().all(|x| x != v)),
                Op::Greater(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v > *n),
                Op::Less(n) => v
                    .and_then(|v| v.parse::<i64>().ok())
                    .is_some_and(|v| v < *n),
            }
        })
    }
}

/// A `fieldSelector`: `field=value`, `field==value` or `field!=value`
/// terms over the fields `supported` names (JSON pointers by field).
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(text: &str, supported: &[&str]) -> Result<FieldSelector, String> {
        let mut terms = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !supported.contains(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector(terms))
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or("");
            (actual == value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front", "panel1.dev/tenant": "t1", "n": "7"});
        let m = |s: &str| Selector::parse(s).unwrap().matches(Some(&labels));
        assert!(m(""));
        assert!(m("app"));
        assert!(m("!db"));
        assert!(!m("!app"));
        assert!(m("app=web"));
        assert!(m("app==web,tier=front"));
        assert!(!m("app=web,tier=back"));
        assert!(m("app!=db"));
        assert!(m("tier in (front, back)"));
        assert!(!m("tier notin (front,back)"));
        assert!(m("db notin (x)"));
        assert!(m("panel1.dev/tenant=t1"));
        assert!(m("n>5"));
        assert!(!m("n<5"));
        assert!(m(" app = web , tier in (front) "));
        assert!(!Selector::parse("app").unwrap().matches(None));
        for bad in [
            "app=web,",
            "a b",
            "tier in front",
            "tier in (front",
            "x in ()",
            "=v",
            "-a=b",
            "a=b c",
            "k in (a))",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn field_selectors() {
        let ns = json!({"metadata": {"name": "t1"}, "status": {"phase": "Active"}});
        let ok = ["metadata.name", "status.phase"];
        assert!(FieldSelector::parse("metadata.name=t1", &ok)
            .unwrap()
            .matches(&ns));
        assert!(!FieldSelector::parse("metadata.name!=t1", &ok)
            .unwrap()
            .matches(&ns));
        assert!(FieldSelector::parse("status.phase==Active", &ok)
            .unwrap()
            .matches(&ns));
        assert!(FieldSelector::parse("spec.x=1", &ok).is_err());
        assert!(FieldSelector::parse("metadata.name", &ok).is_err());
    }
}
