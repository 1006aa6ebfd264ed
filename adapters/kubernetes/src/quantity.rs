//! Kubernetes resource quantities (`500m`, `1.5`, `256Mi`, `1G`, `2e3`) as
//! numbers, so a plan's per-replica resources can be multiplied into a quota
//! and the quota's used figures reported as plain metrics.

/// The value of a quantity in base units (cores, bytes, counts).
pub fn parse(q: &str) -> Result<f64, String> {
    let q = q.trim();
    let bad = || format!("`{q}` is not a Kubernetes quantity (e.g. 500m, 2, 256Mi, 1Gi)");
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let mut value: f64 = number.parse().map_err(|_| bad())?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    value *= factor;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok(value)
}

/// CPU cores as a quantity: whole cores plain, otherwise millicores.
pub fn cpu(cores: f64) -> String {
    let milli = (cores * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// Bytes as a quantity: in Gi or Mi when exact, else plain bytes.
pub fn bytes(b: f64) -> String {
    let b = b.round() as u64;
    const MI: u64 = 1 << 20;
    const GI: u64 = 1 << 30;
    if b > 0 && b.is_multiple_of(GI) {
        format!("{}Gi", b / GI)
    } else if b > 0 && b.is_multiple_of(MI) {
        format!("{}Mi", b / MI)
    } else {
        b.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse("500m").unwrap(), 0.5);
        assert_eq!(parse("2").unwrap(), 2.0);
        assert_eq!(parse("256Mi").unwrap(), 268_435_456.0);
        assert_eq!(parse("1G").unwrap(), 1e9);
        assert_eq!(parse("2e3").unwrap(), 2000.0);
        assert!(parse("lots").is_err());
        assert!(parse("5Xi").is_err());
        assert!(parse("-1").is_err());
        assert_eq!(cpu(1.5), "1500m");
        assert_eq!(cpu(2.0), "2");
        assert_eq!(bytes(3.0 * 268_435_456.0), "768Mi");
        assert_eq!(bytes(2.0 * 1073741824.0), "2Gi");
        assert_eq!(bytes(1000.0), "1000");
    }
}
