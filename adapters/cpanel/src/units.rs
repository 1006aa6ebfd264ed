//! WHM's disk figures ("12M", "1.5G", "unlimited", or a bare number of MiB)
//! to bytes.

const KIB: f64 = 1024.0;

/// A disk amount as WHM reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Disk {
    Unlimited,
    Bytes(f64),
}

/// Parse a WHM disk figure. A bare number is MiB (WHM's unit for
/// `diskused`/`disklimit`); `None` when it is not a figure at all.
pub fn parse_disk(text: &str) -> Option<Disk> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("unlimited") {
        return Some(Disk::Unlimited);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "K" | "KB" | "KIB" => KIB,
        "" | "M" | "MB" | "MIB" => KIB * KIB,
        "G" | "GB" | "GIB" => KIB * KIB * KIB,
        "T" | "TB" | "TIB" => KIB * KIB * KIB * KIB,
        _ => return None,
    };
    Some(Disk::Bytes(value * factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_whm_figures() {
        let mib = 1024.0 * 1024.0;
        assert_eq!(parse_disk("12M"), Some(Disk::Bytes(12.0 * mib)));
        assert_eq!(parse_disk("0M"), Some(Disk::Bytes(0.0)));
        assert_eq!(parse_disk("500"), Some(Disk::Bytes(500.0 * mib)));
        assert_eq!(parse_disk(" 1.5G "), Some(Disk::Bytes(1.5 * 1024.0 * mib)));
        assert_eq!(parse_disk("512K"), Some(Disk::Bytes(512.0 * 1024.0)));
        assert_eq!(parse_disk("2 MB"), Some(Disk::Bytes(2.0 * mib)));
        assert_eq!(parse_disk("1T"), Some(Disk::Bytes(mib * mib)));
        assert_eq!(parse_disk("unlimited"), Some(Disk::Unlimited));
        assert_eq!(parse_disk("Unlimited"), Some(Disk::Unlimited));
        for bad in ["", "M", "lots", "12X", "-1M", "1.2.3M"] {
            assert_eq!(parse_disk(bad), None, "{bad}");
        }
    }
}
