//! Check 9: no secret value in any output. Every report of the run is
//! serialized (outcome, log lines with fields, HTTP exchanges) and searched,
//! with each exchange's URL percent-decoded too, for each secret value in
//! the forms it could take there (as is, percent- or form-encoded, escaped
//! inside a JSON string).
use super::report::{Check, Row};
use panel1_sandbox::{CallReport, Operation};

/// The forms `secret` may take in a report's text.
pub fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let escaped = json
        .get(1..json.len().saturating_sub(1))
        .unwrap_or_default();
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let form = percent.replace("%20", "+");
    for f in [escaped.to_string(), percent, form] {
        if !f.is_empty() && !out.contains(&f) {
            out.push(f);
        }
    }
    out
}

/// `%XX` and `+` decoded (invalid escapes kept as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The texts of one report that are searched.
fn texts(report: &CallReport) -> Vec<String> {
    let mut texts = vec![serde_json::to_string(report).unwrap_or_default()];
    texts.extend(report.http.iter().map(|x| percent_decode(&x.url)));
    texts
}

/// Search every report for every secret. `secrets` are the values the run
/// gave the adapter (empty without a profile: nothing to find).
pub fn check(reports: &[(Operation, CallReport)], secrets: &[String]) -> Row {
    let check = Check::NoSecretInOutput;
    let needles: Vec<(usize, String)> = secrets
        .iter()
        .enumerate()
        .flat_map(|(i, s)| forms(s).into_iter().map(move |f| (i, f)))
        .collect();
    for (n, (op, report)) in reports.iter().enumerate() {
        for text in texts(report) {
            if let Some((i, _)) = needles.iter().find(|(_, f)| text.contains(f.as_str())) {
                // Never print the secret itself.
                return Row::fail(
                    check,
                    format!(
                        "secret #{} of the run appears in the report of call {} (`{op}`)",
                        i + 1,
                        n + 1
                    ),
                );
            }
        }
    }
    Row::pass(
        check,
        format!(
            "{} reports searched for {} secret value(s) in {} forms: none found",
            reports.len(),
            secrets.len(),
            needles.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_forms_are_searched() {
        let f = forms("a b/\"c");
        assert!(f.contains(&"a b/\\\"c".to_string()), "{f:?}");
        assert!(f.contains(&"a%20b%2F%22c".to_string()), "{f:?}");
        assert!(f.contains(&"a+b%2F%22c".to_string()), "{f:?}");
        assert_eq!(forms("plain").len(), 1);
    }

    #[test]
    fn urls_are_decoded() {
        assert_eq!(percent_decode("a%41+b%zz%"), "aA b%zz%");
    }
}
