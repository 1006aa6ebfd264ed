//! Kubernetes resource quantities (`500m`, `256Mi`, `1.5`, `2e3`): which
//! strings are valid, and their value for comparisons.

use serde_json::Value;

/// What kube-apiserver says about a malformed quantity.
pub(crate) const QUANTITY_RULE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

fn suffix_factor(suffix: &str) -> Option<f64> {
    let binary = |p: i32| 1024f64.powi(p);
    Some(match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        exp => {
            let digits = exp.strip_prefix(['e', 'E'])?;
            let n: i32 = digits.parse().ok()?;
            10f64.powi(n)
        }
    })
}

/// The value of a quantity string, `None` when it is not one.
pub(crate) fn parse(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let value = value * suffix_factor(suffix)?;
    Some(if text.starts_with('-') { -value } else { value })
}

/// The value of a quantity given as a JSON string or number.
pub(crate) fn of(value: &Value) -> Option<f64> {
    match value {
        Value::String(s) => parse(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1"), Some(1.0));
        assert_eq!(parse("256Mi"), Some(268_435_456.0));
        assert_eq!(parse("1Gi"), Some(1_073_741_824.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("1.5"), Some(1.5));
        assert_eq!(parse("-1"), Some(-1.0));
        for bad in [
            "", "MB", "512MB", "1.2.3", "abc", "1 Gi", "Gi", ".", "1e", "1Mii",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(of(&serde_json::json!(2)), Some(2.0));
        assert_eq!(of(&serde_json::json!(true)), None);
    }
}
