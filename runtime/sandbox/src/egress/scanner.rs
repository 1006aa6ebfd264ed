//! One scanner per call for every encoded form of every secret of the call
//! (see [`super::encodings`]): a single Aho–Corasick automaton, matched ASCII
//! case-insensitively, used on responses before the guest reads them, on
//! requests before they leave, and on everything the call reports (result,
//! errors, logs, HTTP records) before it leaves the sandbox.
//!
//! Matching is ASCII case-insensitive: patterns are lower-cased once, and
//! the text is lower-cased into a copy before the search (byte positions do
//! not change). That covers hex and percent-escapes in any case and header
//! names (which HTTP lower-cases), and redacts a case-changed copy of a
//! secret, which still gives most of it away. (The crate's own
//! case-insensitive mode turns its SIMD prefilter off: 20x slower.)
use super::encodings::{all_forms, Form};
use super::secrets::{placeholder, Secret};
use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use std::borrow::Cow;
use std::ops::Range;

/// Secrets shorter than this (in bytes) are not scanned for: a shorter value
/// (`1234`, `admin`) would match ordinary text everywhere and redact it.
/// They are still injected only toward their bound destinations, and sticky
/// binding still confines the rest of a call that used one. Six keeps the
/// passwords people do use (`hunter2`, `s3cret`) in every scan, at the
/// price of redacting a word that happens to equal one.
pub const MIN_SCANNED_SECRET_BYTES: usize = 6;

/// What a redacted span becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// `{{secret:NAME}}`: in responses, so the guest can send it back.
    Placeholder,
    /// `[REDACTED:NAME]`: in what the call reports.
    Redacted,
}

/// Where a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub span: Range<usize>,
    /// Index into the secrets the scanner was built from.
    pub secret: usize,
    pub form: Form,
}

struct PatternInfo {
    secret: usize,
    form: Form,
    widen_left: bool,
    widen_right: bool,
}

pub struct SecretScanner {
    automaton: Option<AhoCorasick>,
    patterns: Vec<PatternInfo>,
    names: Vec<String>,
}

impl std::fmt::Debug for SecretScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretScanner")
            .field("secrets", &self.names)
            .field("patterns", &self.patterns.len())
            .finish()
    }
}

impl SecretScanner {
    pub fn new(secrets: &[Secret]) -> SecretScanner {
        let mut patterns = Vec::new();
        let mut bytes: Vec<Vec<u8>> = Vec::new();
        for (index, secret) in secrets.iter().enumerate() {
            if secret.value.len() < MIN_SCANNED_SECRET_BYTES {
                continue;
            }
            for encoded in all_forms(&secret.value) {
                let lower = encoded.bytes.to_ascii_lowercase();
                if bytes.contains(&lower) {
                    continue;
                }
                patterns.push(PatternInfo {
                    secret: index,
                    form: encoded.form,
                    widen_left: encoded.widen_left,
                    widen_right: encoded.widen_right,
                });
                bytes.push(lower);
            }
        }
        let automaton = if bytes.is_empty() {
            None
        } else {
            // An NFA builds in about a tenth of a DFA's time (which the
            // crate would pick for this few patterns) and, with the SIMD
            // prefilter doing most of the work, searches about as fast.
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .kind(Some(AhoCorasickKind::NoncontiguousNFA))
                .build(&bytes)
                .ok()
        };
        SecretScanner {
            automaton,
            patterns,
            names: secrets.iter().map(|s| s.name.clone()).collect(),
        }
    }

    /// Nothing to look for (no secret long enough to scan).
    pub fn is_empty(&self) -> bool {
        self.automaton.is_none()
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    pub fn name(&self, secret: usize) -> &str {
        self.names.get(secret).map(String::as_str).unwrap_or("?")
    }

    /// Every place in `hay` holding a secret, in order. After each match the
    /// search resumes one byte past its start, so a match starting inside
    /// another is found too: the spans cover everything any pattern matched.
    pub fn find(&self, hay: &[u8]) -> Vec<Hit> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let lower = hay.to_ascii_lowercase();
        let mut hits = Vec::new();
        let mut at = 0;
        while at < hay.len() {
            let Some(m) = ac.find(Input::new(&lower).span(at..hay.len())) else {
                break;
            };
            let info = &self.patterns[m.pattern().as_usize()];
            let mut span = m.range();
            if let Some(alphabet) = info.form.base64_alphabet() {
                span = widen(hay, span, alphabet, info.widen_left, info.widen_right);
            }
            at = m.start() + 1;
            // Overlapping or touching matches become one span (named after
            // the first secret): the list stays as short as the number of
            // separate places, however often a hostile body repeats a value.
            if let Some(last) = hits
                .last_mut()
                .filter(|h: &&mut Hit| span.start <= h.span.end)
            {
                last.span.start = last.span.start.min(span.start);
                last.span.end = last.span.end.max(span.end);
                continue;
            }
            hits.push(Hit {
                span,
                secret: info.secret,
                form: info.form,
            });
        }
        hits
    }

    /// Occurrences in the concatenation of `segments` (with nothing between
    /// them), clipped to each segment: a secret split across two adjacent
    /// header values or log lines is found in both halves.
    pub fn find_across(&self, segments: &[&[u8]]) -> Vec<Vec<Hit>> {
        let mut per_segment = vec![Vec::new(); segments.len()];
        if self.is_empty() {
            return per_segment;
        }
        let joined = segments.concat();
        let mut starts = Vec::with_capacity(segments.len());
        let mut offset = 0;
        for s in segments {
            starts.push(offset);
            offset += s.len();
        }
        for hit in self.find(&joined) {
            for (i, s) in segments.iter().enumerate() {
                let seg = starts[i]..starts[i] + s.len();
                let from = hit.span.start.max(seg.start);
                let to = hit.span.end.min(seg.end);
                if from < to {
                    per_segment[i].push(Hit {
                        span: from - seg.start..to - seg.start,
                        secret: hit.secret,
                        form: hit.form,
                    });
                }
            }
        }
        per_segment
    }

    /// `hay` with every occurrence replaced by a marker.
    pub fn redact<'a>(&self, hay: &'a [u8], marker: Marker) -> Cow<'a, [u8]> {
        self.apply(hay, &self.find(hay), marker)
    }

    pub fn redact_str<'a>(&self, text: &'a str, marker: Marker) -> Cow<'a, str> {
        match self.redact(text.as_bytes(), marker) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(bytes) => Cow::Owned(into_string(bytes)),
        }
    }

    /// Replace the spans of `hits` (merged where they overlap or touch) by
    /// one marker per distinct secret in each merged span.
    pub fn apply<'a>(&self, hay: &'a [u8], hits: &[Hit], marker: Marker) -> Cow<'a, [u8]> {
        if hits.is_empty() {
            return Cow::Borrowed(hay);
        }
        let mut sorted: Vec<&Hit> = hits.iter().collect();
        sorted.sort_by_key(|h| (h.span.start, h.span.end));
        let mut out = Vec::with_capacity(hay.len());
        let mut copied = 0;
        let mut i = 0;
        while i < sorted.len() {
            let start = sorted[i].span.start.max(copied);
            let mut end = sorted[i].span.end;
            let mut secrets = vec![sorted[i].secret];
            i += 1;
            while i < sorted.len() && sorted[i].span.start <= end {
                end = end.max(sorted[i].span.end);
                if !secrets.contains(&sorted[i].secret) {
                    secrets.push(sorted[i].secret);
                }
                i += 1;
            }
            let end = end.min(hay.len());
            if start >= end {
                continue;
            }
            out.extend_from_slice(&hay[copied..start]);
            for s in secrets {
                out.extend_from_slice(self.marker(s, marker).as_bytes());
            }
            copied = end;
        }
        out.extend_from_slice(&hay[copied..]);
        Cow::Owned(out)
    }

    pub fn marker(&self, secret: usize, marker: Marker) -> String {
        match marker {
            Marker::Placeholder => placeholder(self.name(secret)),
            Marker::Redacted => format!("[REDACTED:{}]", self.name(secret)),
        }
    }

    /// Redact strings that were adjacent in the original (log lines, header
    /// values, a JSON document's strings): each is scanned alone and as part
    /// of the concatenation of all of them.
    pub fn redact_strings(&self, strings: &[&str], marker: Marker) -> Option<Vec<String>> {
        if self.is_empty() {
            return None;
        }
        let segments: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
        let hits = self.find_across(&segments);
        if hits.iter().all(Vec::is_empty) {
            return None;
        }
        Some(
            strings
                .iter()
                .zip(&hits)
                .map(|(s, h)| into_string(self.apply(s.as_bytes(), h, marker).into_owned()))
                .collect(),
        )
    }
}

/// Extend a base64 match over the characters that mix the secret's first
/// and last bits with its neighbours', and over `=` padding.
fn widen(
    hay: &[u8],
    mut span: Range<usize>,
    alphabet: &[u8; 64],
    left: bool,
    right: bool,
) -> Range<usize> {
    if left && span.start > 0 && alphabet.contains(&hay[span.start - 1]) {
        span.start -= 1;
    }
    if right && span.end < hay.len() && alphabet.contains(&hay[span.end]) {
        span.end += 1;
    }
    let mut padding = 0;
    while padding < 2 && span.end < hay.len() && hay[span.end] == b'=' {
        span.end += 1;
        padding += 1;
    }
    span
}

/// Markers are ASCII and matches start and end on character boundaries of
/// valid UTF-8, so this is lossless; lossy only if that ever changed.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::encodings::base64_padded;

    const VALUE: &str = "s3cr\"t&=/ k€y";

    fn scanner() -> SecretScanner {
        SecretScanner::new(&[
            Secret {
                name: "short".into(),
                value: "1234".into(),
                destinations: vec![],
            },
            Secret {
                name: "api-token".into(),
                value: VALUE.into(),
                destinations: vec![],
            },
        ])
    }

    fn leaks(text: &str) -> bool {
        text.contains(VALUE)
            || text
                .to_ascii_lowercase()
                .contains(&hex_of(VALUE).to_lowercase())
    }

    fn hex_of(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn every_form_is_found_and_redacted() {
        let s = scanner();
        let rev: String = VALUE.chars().rev().collect();
        let json = serde_json::to_string(VALUE).unwrap();
        let cases = [
            format!("raw {VALUE} end"),
            format!("upper {} end", VALUE.to_uppercase()),
            format!("rev {rev} end"),
            format!("hex {} end", hex_of(VALUE)),
            format!("HEX {} end", hex_of(VALUE).to_uppercase()),
            "pct s3cr%22t%26%3d%2f%20k%e2%82%acy end".to_string(),
            "form s3cr%22t%26%3D%2F+k%E2%82%ACy end".to_string(),
            format!("json {json} end"),
            format!("php {} end", json.replace('/', "\\/")),
            "phpu s3cr\\\"t&=\\/ k\\u20acy end".to_string(),
            format!("b64 {} end", base64_padded(VALUE.as_bytes())),
            format!(
                "b64url {} end",
                base64_padded(VALUE.as_bytes()).replace(['+', '/'], "-_")
            ),
            format!(
                "basic {} end",
                base64_padded(format!("admin:{VALUE}").as_bytes())
            ),
            format!(
                "basic2 {} end",
                base64_padded(format!("ab:{VALUE}x").as_bytes())
            ),
            format!(
                "basic3 {} end",
                base64_padded(format!("a:{VALUE}xy").as_bytes())
            ),
        ];
        for case in cases {
            let hits = s.find(case.as_bytes());
            assert!(!hits.is_empty(), "not found: {case}");
            assert!(hits.iter().all(|h| h.secret == 1));
            let clean = s.redact_str(&case, Marker::Redacted);
            assert!(clean.contains("[REDACTED:api-token]"), "{case} -> {clean}");
            assert!(clean.ends_with(" end"), "over-redacted: {case} -> {clean}");
            assert!(!leaks(&clean), "{case} -> {clean}");
        }
    }

    #[test]
    fn base64_matches_are_widened_over_mixed_characters_and_padding() {
        let s = scanner();
        let blob = base64_padded(format!("ab:{VALUE}x").as_bytes());
        let clean = s.redact_str(&blob, Marker::Redacted).into_owned();
        // What is left encodes only the neighbouring bytes `ab:` and `x`.
        assert_eq!(clean, "YWI6[REDACTED:api-token]eA==");
        let blob = base64_padded(format!("a:{VALUE}xy").as_bytes());
        let clean = s.redact_str(&blob, Marker::Redacted).into_owned();
        assert!(clean.starts_with("YT[REDACTED:api-token]"), "{clean}");
    }

    #[test]
    fn short_secrets_are_not_scanned() {
        let s = scanner();
        assert_eq!(s.redact_str("pin 1234", Marker::Redacted), "pin 1234");
        assert!(SecretScanner::new(&[]).is_empty());
    }

    #[test]
    fn a_six_byte_secret_is_scanned_in_its_forms() {
        let s = SecretScanner::new(&[Secret {
            name: "pw".into(),
            value: "hunter".into(),
            destinations: vec![],
        }]);
        for text in ["pw=hunter", "pw=HUNTER", "pw=68756e746572", "pw=retnuh"] {
            assert_eq!(
                s.redact_str(text, Marker::Redacted),
                "pw=[REDACTED:pw]",
                "{text}"
            );
        }
        // One byte less is not scanned.
        let s = SecretScanner::new(&[Secret {
            name: "pw".into(),
            value: "hunte".into(),
            destinations: vec![],
        }]);
        assert!(s.is_empty());
    }

    #[test]
    fn splits_across_adjacent_segments_are_redacted_in_both() {
        let s = scanner();
        let (a, b) = VALUE.split_at(5);
        let first = format!("x-part {a}");
        let out = s
            .redact_strings(&[&first, b, "other"], Marker::Placeholder)
            .expect("found across");
        assert_eq!(out[0], "x-part {{secret:api-token}}");
        assert_eq!(out[1], "{{secret:api-token}}");
        assert_eq!(out[2], "other");
        assert!(s.redact_strings(&["a", "b"], Marker::Placeholder).is_none());
    }

    #[test]
    fn overlapping_and_repeated_occurrences_all_go() {
        let s = scanner();
        let text = format!("{VALUE}{VALUE}{}", hex_of(VALUE));
        let clean = s.redact_str(&text, Marker::Redacted);
        assert!(!leaks(&clean), "{clean}");
        assert_eq!(clean, "[REDACTED:api-token]");
    }
}
