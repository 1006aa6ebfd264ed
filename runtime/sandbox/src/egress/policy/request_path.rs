//! The one canonical form of a request's path and query, computed once
//! before any rule is matched. The sender sends exactly this form, so the
//! path a server receives is the path the policy checked.
//!
//! Servers disagree on how they read a path (Tomcat strips `;params` per
//! segment so `..;` climbs, nginx merges `//`, IIS reads `\` as `/`, decodes
//! `%u002e` and may decode twice, some frameworks fold the fullwidth dot
//! `．` to `.`). Rather than guess each reading, every form on which two
//! readers could disagree is refused:
//!
//! - refused in the path: `%2F` and `%5C` (encoded separators), a raw `\`,
//!   `%25` (an encoded `%`: a second decoding yields another path), invalid
//!   escapes (`%u002e`, `%zz`, a trailing `%`), NUL and control characters
//!   (raw or encoded), non-ASCII bytes (raw or encoded), empty segments
//!   (`//`) except a trailing `/`, characters that must be percent-encoded
//!   (space, `"`, `<`, `>`, `[`, `]`, `^`, `` ` ``, `|`), a fragment, and any
//!   segment a server could read as `.` or `..`: after decoding, cutting at
//!   `;`, `?` or `#` and trimming trailing spaces, only dots remain (`..`,
//!   `%2e%2e`, `..;x`, `..%3B`, `.%20`, `...`).
//! - normalised in the path: escapes of unreserved characters are decoded
//!   (`%7E` → `~`, `%41` → `A`); other escapes keep their byte, with
//!   upper-case hex (`%3b` → `%3B`).
//! - the query is kept as sent; only raw control characters, spaces and NUL
//!   (`%00`) are refused there.
//!
//! `{` and `}` stay allowed raw: they are how a secret placeholder
//! (`{{secret:name}}`) stands in a URL.

/// Why a request target was refused; the text is the operator's denial reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    #[error("path must start with `/`")]
    NotOriginForm,
    #[error("request target has a fragment (`#`)")]
    Fragment,
    #[error("path has an encoded slash (%2F)")]
    EncodedSlash,
    #[error("path has an encoded backslash (%5C)")]
    EncodedBackslash,
    #[error("path has a backslash (`\\`), which some servers read as `/`")]
    Backslash,
    #[error(
        "path has an encoded percent sign (%25): a server decoding twice would see another path"
    )]
    EncodedPercent,
    #[error("request target has a NUL byte")]
    Nul,
    #[error("request target has a control character or space (byte 0x{0:02X})")]
    Control(u8),
    #[error("path has an invalid percent escape (`{0}`)")]
    InvalidEscape(String),
    #[error("path has a non-ASCII byte (0x{0:02X}); percent-encode it")]
    NonAscii(u8),
    #[error("path has an encoded non-ASCII byte (%{0:02X}): servers may fold look-alikes such as the fullwidth dot to `.`")]
    EncodedNonAscii(u8),
    #[error("path has a character that must be percent-encoded (`{0}`)")]
    MustBeEncoded(char),
    #[error("path has an empty segment (`//`), which some servers merge")]
    EmptySegment,
    #[error("path has a dot segment (`{0}`)")]
    DotSegment(String),
}

/// A request target in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// The path, starting with `/`.
    pub path: String,
    /// The query, without its `?`, as sent.
    pub query: Option<String>,
}

impl NormalPath {
    /// `path[?query]`: what goes on the request line.
    pub fn request_target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// Is the path `prefix` or below it, segment by segment? A prefix ending
    /// in `/` covers what is under it; `/api` covers `/api` and `/api/…`,
    /// never `/apiadmin`.
    pub fn is_within(&self, prefix: &str) -> bool {
        if prefix.ends_with('/') {
            return self.path.starts_with(prefix);
        }
        match self.path.strip_prefix(prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Normalise `path_and_query` (an origin-form request target) or say why not.
pub fn normalize(path_and_query: &str) -> Result<NormalPath, PathRefusal> {
    if path_and_query.contains('#') {
        return Err(PathRefusal::Fragment);
    }
    let (raw_path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if let Some(q) = query {
        check_query(q)?;
    }
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    if !raw_path.starts_with('/') {
        return Err(PathRefusal::NotOriginForm);
    }
    let path = decode_path(raw_path.as_bytes())?;
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if segment.is_empty() && i != last {
            return Err(PathRefusal::EmptySegment);
        }
        if reads_as_dots(segment) {
            return Err(PathRefusal::DotSegment(shorten(segment)));
        }
    }
    Ok(NormalPath {
        path,
        query: query.map(str::to_string),
    })
}

fn check_query(query: &str) -> Result<(), PathRefusal> {
    for b in query.bytes() {
        match b {
            0 => return Err(PathRefusal::Nul),
            0x01..=0x20 | 0x7F => return Err(PathRefusal::Control(b)),
            _ => {}
        }
    }
    if query.contains("%00") {
        return Err(PathRefusal::Nul);
    }
    Ok(())
}

/// RFC 3986 unreserved characters: decoding their escapes changes nothing
/// for any server, so the canonical form holds them raw.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters a path may carry raw: unreserved, sub-delims, `:`, `@`, `/`,
/// and `{` `}` for secret placeholders.
fn is_plain_path_char(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'{'
                | b'}'
        )
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode_path(raw: &[u8]) -> Result<String, PathRefusal> {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let escape = || String::from_utf8_lossy(&raw[i..(i + 3).min(raw.len())]).into_owned();
            let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex_value),
                raw.get(i + 2).copied().and_then(hex_value),
            ) else {
                return Err(PathRefusal::InvalidEscape(escape()));
            };
            let v = hi << 4 | lo;
            match v {
                0 => return Err(PathRefusal::Nul),
                0x01..=0x1F | 0x7F => return Err(PathRefusal::Control(v)),
                b'/' => return Err(PathRefusal::EncodedSlash),
                b'\\' => return Err(PathRefusal::EncodedBackslash),
                b'%' => return Err(PathRefusal::EncodedPercent),
                0x80.. => return Err(PathRefusal::EncodedNonAscii(v)),
                _ if is_unreserved(v) => out.push(v as char),
                _ => out.push_str(&format!("%{v:02X}")),
            }
            i += 3;
            continue;
        }
        match b {
            0 => return Err(PathRefusal::Nul),
            0x01..=0x20 | 0x7F => return Err(PathRefusal::Control(b)),
            b'\\' => return Err(PathRefusal::Backslash),
            0x80.. => return Err(PathRefusal::NonAscii(b)),
            _ if is_plain_path_char(b) => out.push(b as char),
            _ => return Err(PathRefusal::MustBeEncoded(b as char)),
        }
        i += 1;
    }
    Ok(out)
}

/// Could a server read this (already canonical) segment as `.` or `..`?
/// It decodes what is left encoded, drops `;params` (Tomcat, Spring, Jetty)
/// or a `?`/`#` a second parse would find, and trims trailing spaces
/// (Windows); if only dots remain, the segment climbs.
fn reads_as_dots(segment: &str) -> bool {
    let decoded = decode_escapes_lossy(segment);
    let name = decoded.split([';', '?', '#']).next().unwrap_or("");
    let name = name.trim_end_matches(' ');
    !name.is_empty() && name.bytes().all(|b| b == b'.')
}

/// Decode `%XX` escapes (the segment holds only valid ASCII escapes here).
fn decode_escapes_lossy(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = bytes
            .get(i + 1)
            .copied()
            .and_then(hex_value)
            .zip(bytes.get(i + 2).copied().and_then(hex_value));
        match (bytes[i], pair) {
            (b'%', Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// At most 64 characters of untrusted text for a denial reason.
pub fn shorten(text: &str) -> String {
    let mut out: String = text.chars().take(64).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(target: &str) -> String {
        normalize(target)
            .unwrap_or_else(|e| panic!("{target}: {e}"))
            .request_target()
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(normal("/api/x"), "/api/x");
        assert_eq!(normal(""), "/");
        assert_eq!(normal("?a=1"), "/?a=1");
        assert_eq!(normal("/api/%7euser/%41b%2d"), "/api/~user/Ab-");
        assert_eq!(normal("/api/a%2eb"), "/api/a.b");
        assert_eq!(normal("/api/a%3bb%20c"), "/api/a%3Bb%20c");
        assert_eq!(normal("/api/x/"), "/api/x/");
        assert_eq!(normal("/api/v1.2/.well-known"), "/api/v1.2/.well-known");
        assert_eq!(normal("/api/cars;color=red"), "/api/cars;color=red");
        assert_eq!(normal("/api/{{secret:token}}/x"), "/api/{{secret:token}}/x");
        // The query is not a path: kept exactly, escapes and all.
        assert_eq!(
            normal("/api/x?next=/../admin&q=%2F%25%zz%0A"),
            "/api/x?next=/../admin&q=%2F%25%zz%0A"
        );
    }

    #[test]
    fn refused_forms_say_why() {
        use PathRefusal::*;
        let cases: &[(&str, PathRefusal)] = &[
            ("api/x", NotOriginForm),
            ("*", NotOriginForm),
            ("/api/x#frag", Fragment),
            ("/api/..%2Fadmin", EncodedSlash),
            ("/api/%2f", EncodedSlash),
            ("/api/..%5cadmin", EncodedBackslash),
            ("/api/..\\admin", Backslash),
            ("/api/%252e%252e/admin", EncodedPercent),
            ("/api/%25u002e", EncodedPercent),
            ("/api/%00", Nul),
            ("/api/x?a=%00", Nul),
            ("/api/x?a=\0", Nul),
            ("/api/%0a", Control(0x0A)),
            ("/api/%7F", Control(0x7F)),
            ("/api/a b", Control(b' ')),
            ("/api/x?a=\r\n", Control(b'\r')),
            ("/api/%u002e%u002e/admin", InvalidEscape("%u0".into())),
            ("/api/%zz", InvalidEscape("%zz".into())),
            ("/api/x%", InvalidEscape("%".into())),
            ("/api/x%4", InvalidEscape("%4".into())),
            ("/api/\u{ff0e}\u{ff0e}/admin", NonAscii(0xEF)),
            ("/api/%ef%bc%8e%ef%bc%8e/admin", EncodedNonAscii(0xEF)),
            ("/api/%c0%ae%c0%ae/admin", EncodedNonAscii(0xC0)),
            ("/api/a|b", MustBeEncoded('|')),
            ("/api/a\"b", MustBeEncoded('"')),
            ("/api/[x]", MustBeEncoded('[')),
            ("/api//x", EmptySegment),
            ("//api/x", EmptySegment),
            ("/api/../admin", DotSegment("..".into())),
            ("/api/./x", DotSegment(".".into())),
            ("/api/x/..", DotSegment("..".into())),
            ("/api/%2e%2e/admin", DotSegment("..".into())),
            ("/api/.%2E/admin", DotSegment("..".into())),
            ("/api/..;/admin", DotSegment("..;".into())),
            ("/api/.;/admin", DotSegment(".;".into())),
            (
                "/api/..;jsessionid=x/admin",
                DotSegment("..;jsessionid=x".into()),
            ),
            ("/api/..%3b/admin", DotSegment("..%3B".into())),
            ("/api/..%3F/admin", DotSegment("..%3F".into())),
            ("/api/..%23/admin", DotSegment("..%23".into())),
            ("/api/..%20/admin", DotSegment("..%20".into())),
            ("/api/.../admin", DotSegment("...".into())),
        ];
        for (target, why) in cases {
            assert_eq!(normalize(target).as_ref(), Err(why), "{target:?}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        let p = |s: &str| normalize(s).unwrap();
        assert!(p("/api/x").is_within("/api/"));
        assert!(p("/api/").is_within("/api/"));
        assert!(!p("/api").is_within("/api/"));
        assert!(!p("/apix").is_within("/api/"));
        assert!(p("/api").is_within("/api"));
        assert!(p("/api?x=1").is_within("/api"));
        assert!(p("/api/x").is_within("/api"));
        assert!(!p("/apiadmin").is_within("/api"));
        assert!(!p("/api;x/admin").is_within("/api"));
        assert!(p("/api/%7Ex/y").is_within("/api/~x"));
    }

    #[test]
    fn long_segments_are_shortened_in_reasons() {
        let long = format!("/{}", ".".repeat(10_000));
        match normalize(&long) {
            Err(PathRefusal::DotSegment(s)) => assert!(s.chars().count() <= 65),
            other => panic!("{other:?}"),
        }
    }
}
