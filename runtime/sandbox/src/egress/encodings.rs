//! The encoded forms a secret value can take on the way through a server, a
//! guest or a log: what the [`super::scanner`] looks for. Each form is
//! produced here with upper-case hex digits; the scanner matches ASCII case
//! insensitively, so lower-case and mixed-case hex, percent-escapes and
//! `\u` escapes are found too.

/// How a secret was written where it was found (named in denial reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Raw,
    Reversed,
    Hex,
    PercentEncoded,
    JsonEscaped,
    /// HTML/XML character references (`&amp;`, `&quot;`, `&#39;`…), as
    /// error pages and XML APIs echo a value.
    HtmlEscaped,
    /// Percent-encoded twice (`%` as `%25`), as a login redirect's `next=`
    /// carries a path that was already encoded.
    DoublePercentEncoded,
    /// A run of standard base64 containing the value at any byte alignment.
    Base64,
    /// The same with the URL-safe alphabet (`-` and `_`).
    Base64Url,
}

impl Form {
    pub fn describe(self) -> &'static str {
        match self {
            Form::Raw => "as is",
            Form::Reversed => "reversed",
            Form::Hex => "hex-encoded",
            Form::PercentEncoded => "percent-encoded",
            Form::JsonEscaped => "JSON-escaped",
            Form::HtmlEscaped => "HTML-escaped",
            Form::DoublePercentEncoded => "percent-encoded twice",
            Form::Base64 => "base64-encoded",
            Form::Base64Url => "base64url-encoded",
        }
    }

    /// The alphabet a match of this form may be widened over (see
    /// [`Encoded::widen_left`]).
    pub fn base64_alphabet(self) -> Option<&'static [u8; 64]> {
        match self {
            Form::Base64 => Some(STD),
            Form::Base64Url => Some(URL),
            _ => None,
        }
    }
}

/// One encoded form of a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub form: Form,
    pub bytes: Vec<u8>,
    /// Base64 characters just outside the match that still carry bits of
    /// the value (they mix them with the neighbouring bytes): redacted with
    /// the match when present, with any `=` padding after them.
    pub widen_left: bool,
    pub widen_right: bool,
}

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Every form of `value` the scanner looks for, without duplicates.
pub fn all_forms(value: &str) -> Vec<Encoded> {
    let mut out: Vec<Encoded> = Vec::new();
    let mut add = |form, bytes: Vec<u8>, widen_left, widen_right| {
        if !bytes.is_empty() && !out.iter().any(|e| e.bytes.eq_ignore_ascii_case(&bytes)) {
            out.push(Encoded {
                form,
                bytes,
                widen_left,
                widen_right,
            });
        }
    };
    add(Form::Raw, value.as_bytes().to_vec(), false, false);
    add(
        Form::Reversed,
        value.chars().rev().collect::<String>().into_bytes(),
        false,
        false,
    );
    add(Form::Hex, hex(value.as_bytes()).into_bytes(), false, false);
    for keep in PERCENT_STYLES {
        for plus in [false, true] {
            add(
                Form::PercentEncoded,
                percent(value.as_bytes(), keep, plus),
                false,
                false,
            );
        }
    }
    for style in JSON_STYLES {
        add(Form::JsonEscaped, json(value, style), false, false);
    }
    for (quot, apos) in HTML_QUOTES {
        add(Form::HtmlEscaped, html(value, quot, apos), false, false);
    }
    for keep in [PERCENT_STYLES[0], PERCENT_STYLES[1]] {
        let once = percent(value.as_bytes(), keep, false);
        add(
            Form::DoublePercentEncoded,
            percent(&once, keep, false),
            false,
            false,
        );
    }
    for (form, alphabet) in [(Form::Base64, STD), (Form::Base64Url, URL)] {
        for core in base64_cores(value.as_bytes(), alphabet) {
            add(form, core.bytes, core.widen_left, core.widen_right);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for &b in bytes {
        push_hex(&mut out, b);
    }
    String::from_utf8(out).unwrap_or_default()
}

fn push_hex(out: &mut Vec<u8>, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.push(DIGITS[usize::from(b >> 4)]);
    out.push(DIGITS[usize::from(b & 15)]);
}

/// `\uXXXX`.
fn push_unicode_escape(out: &mut Vec<u8>, unit: u16) {
    out.extend_from_slice(b"\\u");
    push_hex(out, (unit >> 8) as u8);
    push_hex(out, unit as u8);
}

/// Which bytes besides ASCII letters and digits stay literal: RFC 3986
/// (`rawurlencode`, Rust/Go path escaping), PHP `urlencode`/WHATWG forms,
/// JavaScript `encodeURIComponent`, Python `quote` (keeps `/`), and none
/// (every byte escaped).
const PERCENT_STYLES: [&[u8]; 5] = [b"-._~", b"-._*", b"-_.!~*'()", b"-._~/", b""];

fn percent(bytes: &[u8], keep: &[u8], plus_for_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if plus_for_space && b == b' ' {
            out.push(b'+');
        } else if (b.is_ascii_alphanumeric() && !keep.is_empty()) || keep.contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            push_hex(&mut out, b);
        }
    }
    out
}

/// How `"` and `'` are written: Python's `html.escape`, PHP's
/// `htmlspecialchars` with `ENT_QUOTES`, Go's `html.EscapeString`, XML.
const HTML_QUOTES: [(&str, &str); 4] = [
    ("&quot;", "&#x27;"),
    ("&quot;", "&#039;"),
    ("&#34;", "&#39;"),
    ("&quot;", "&apos;"),
];

fn html(value: &str, quot: &str, apos: &str) -> Vec<u8> {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str(quot),
            '\'' => out.push_str(apos),
            c => out.push(c),
        }
    }
    out.into_bytes()
}

#[derive(Clone, Copy)]
enum JsonStyle {
    /// serde_json, Python `ensure_ascii=False`: only `"`, `\` and controls.
    Minimal,
    /// The same with `/` as `\/` (PHP's `json_encode`, PHP-style escaping).
    Slash,
    /// PHP's default: `\/` and every non-ASCII character as `\uXXXX`.
    Php,
    /// Go's `encoding/json`: `<`, `>`, `&`, U+2028 and U+2029 as `\u`.
    Go,
    /// Every character but ASCII letters and digits as `\uXXXX`.
    AllUnicode,
}

const JSON_STYLES: [JsonStyle; 5] = [
    JsonStyle::Minimal,
    JsonStyle::Slash,
    JsonStyle::Php,
    JsonStyle::Go,
    JsonStyle::AllUnicode,
];

fn json(value: &str, style: JsonStyle) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 8);
    let mut units = [0u16; 2];
    let mut utf8 = [0u8; 4];
    for c in value.chars() {
        let as_unicode = match style {
            JsonStyle::Minimal | JsonStyle::Slash => false,
            JsonStyle::Php => !c.is_ascii(),
            JsonStyle::Go => matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}'),
            JsonStyle::AllUnicode => !c.is_ascii_alphanumeric(),
        };
        if as_unicode || ((c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t' | '\u{8}' | '\u{c}'))
        {
            for &mut u in c.encode_utf16(&mut units) {
                push_unicode_escape(&mut out, u);
            }
            continue;
        }
        let escaped: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '/' if !matches!(style, JsonStyle::Minimal | JsonStyle::Go) => b"\\/",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            c => c.encode_utf8(&mut utf8).as_bytes(),
        };
        out.extend_from_slice(escaped);
    }
    out
}

struct Core {
    bytes: Vec<u8>,
    widen_left: bool,
    widen_right: bool,
}

/// The base64 characters that depend on `value` alone, for each of the three
/// alignments it can have inside a longer encoded blob (HTTP Basic's
/// `base64(user:password)`, a JSON document encoded whole): `value` preceded
/// by 0, 1 or 2 bytes. Character `j` covers bits `6j..6j+6` of the stream;
/// it is stable when those bits all belong to the value.
fn base64_cores(value: &[u8], alphabet: &[u8; 64]) -> Vec<Core> {
    let mut cores = Vec::with_capacity(3);
    for offset in 0..3usize {
        let mut stream = vec![0u8; offset];
        stream.extend_from_slice(value);
        let encoded = base64_unpadded(&stream, alphabet);
        let first_bit = 8 * offset;
        let end_bit = 8 * (offset + value.len());
        let start = first_bit.div_ceil(6);
        let end = end_bit / 6;
        if end <= start {
            continue;
        }
        cores.push(Core {
            bytes: encoded[start..end].to_vec(),
            widen_left: 6 * start > first_bit,
            widen_right: 6 * end < end_bit,
        });
    }
    cores
}

fn base64_unpadded(bytes: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

/// Standard padded base64 (the test fixtures' and the bench's reference).
#[cfg(test)]
pub fn base64_padded(bytes: &[u8]) -> String {
    let mut s = base64_unpadded(bytes, STD);
    while !s.len().is_multiple_of(4) {
        s.push(b'=');
    }
    String::from_utf8(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(forms: &[Encoded], form: Form) -> Vec<String> {
        forms
            .iter()
            .filter(|e| e.form == form)
            .map(|e| String::from_utf8(e.bytes.clone()).unwrap())
            .collect()
    }

    #[test]
    fn base64_matches_a_reference_encoding() {
        assert_eq!(base64_padded(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_padded(b"ab"), "YWI=");
        assert_eq!(base64_padded(b"a"), "YQ==");
    }

    #[test]
    fn every_base64_alignment_has_a_core_found_in_real_blobs() {
        let secret = b"p4ss/w0rd?>";
        let cores = find(&all_forms("p4ss/w0rd?>"), Form::Base64);
        assert_eq!(cores.len(), 3);
        for prefix in ["", "u:", "us:", "use:", "user:"] {
            let mut blob = prefix.as_bytes().to_vec();
            blob.extend_from_slice(secret);
            blob.extend_from_slice(b"&trailer");
            let text = base64_padded(&blob);
            assert!(
                cores.iter().any(|c| text.contains(c.as_str())),
                "no core of {cores:?} in {text} (prefix {prefix:?})"
            );
        }
    }

    #[test]
    fn percent_and_json_styles() {
        let forms = all_forms("a b/é\"");
        let pct = find(&forms, Form::PercentEncoded);
        assert!(pct.contains(&"a%20b%2F%C3%A9%22".to_string()), "{pct:?}");
        assert!(pct.contains(&"a+b%2F%C3%A9%22".to_string()), "{pct:?}");
        assert!(pct.contains(&"a%20b/%C3%A9%22".to_string()), "{pct:?}");
        assert!(
            pct.contains(&"%61%20%62%2F%C3%A9%22".to_string()),
            "{pct:?}"
        );
        let json = find(&forms, Form::JsonEscaped);
        assert!(json.contains(&"a b/é\\\"".to_string()), "{json:?}");
        assert!(json.contains(&"a b\\/é\\\"".to_string()), "{json:?}");
        assert!(json.contains(&"a b\\/\\u00E9\\\"".to_string()), "{json:?}");
        assert!(json.contains(&"a\\u0020b\\u002F\\u00E9\\u0022".to_string()));
        assert_eq!(find(&forms, Form::Reversed), vec!["\"é/b a".to_string()]);
        assert_eq!(find(&forms, Form::Hex), vec!["6120622FC3A922".to_string()]);
    }

    #[test]
    fn html_and_double_percent_styles() {
        let forms = all_forms("p&ss'w<d\"");
        let html = find(&forms, Form::HtmlEscaped);
        assert!(
            html.contains(&"p&amp;ss&#x27;w&lt;d&quot;".to_string()),
            "{html:?}"
        );
        assert!(
            html.contains(&"p&amp;ss&#39;w&lt;d&#34;".to_string()),
            "{html:?}"
        );
        assert!(
            html.contains(&"p&amp;ss&apos;w&lt;d&quot;".to_string()),
            "{html:?}"
        );
        let twice = find(&all_forms("a b/c"), Form::DoublePercentEncoded);
        assert!(twice.contains(&"a%2520b%252Fc".to_string()), "{twice:?}");
    }

    #[test]
    fn an_alphanumeric_value_has_few_distinct_forms() {
        let forms = all_forms("abcdef123456");
        // Raw, reversed, hex, the every-byte percent form and three base64
        // cores: the other percent (once or twice), JSON and HTML forms, and
        // the URL-safe base64 ones, are the same text here.
        assert_eq!(forms.len(), 7, "{forms:?}");
    }
}
