//! A strong initial password, made in the guest from the host's CSPRNG when
//! the request brings none. It goes only into createacct's POST body: never
//! into a URL, a log line, an error or a result.

/// Length of a generated password.
pub const LENGTH: usize = 24;

const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
const DIGITS: &[u8] = b"23456789";
/// Symbols that need no quoting in a shell, a form or a URL.
const SYMBOLS: &[u8] = b"-_.!@#%^*+=";

fn alphabet() -> Vec<u8> {
    [LOWER, UPPER, DIGITS, SYMBOLS].concat()
}

/// A password of [`LENGTH`] characters with every character class, drawn
/// from `random` without modulo bias; `None` if `random` ran out first.
pub fn from_random(random: &[u8]) -> Option<String> {
    let alphabet = alphabet();
    let n = alphabet.len();
    // Accept a byte only below the largest multiple of n (no bias).
    let limit = 256 - 256 % n;
    let chars: Vec<u8> = random
        .iter()
        .map(|&b| usize::from(b))
        .filter(|&b| b < limit)
        .map(|b| alphabet[b % n])
        .take(LENGTH)
        .collect();
    let has = |class: &[u8]| chars.iter().any(|c| class.contains(c));
    let complete = chars.len() == LENGTH && [LOWER, UPPER, DIGITS, SYMBOLS].into_iter().all(has);
    complete.then(|| String::from_utf8(chars).unwrap_or_default())
}

/// A fresh password from the host's random source.
pub fn generate() -> String {
    loop {
        if let Some(p) = from_random(&panel1_sdk::random::bytes(4 * LENGTH)) {
            return p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_every_class_and_the_full_length() {
        // A deterministic spread of bytes stands in for the CSPRNG.
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let p = from_random(&bytes).unwrap();
        assert_eq!(p.len(), LENGTH);
        assert!(p.chars().any(|c| c.is_ascii_lowercase()));
        assert!(p.chars().any(|c| c.is_ascii_uppercase()));
        assert!(p.chars().any(|c| c.is_ascii_digit()));
        assert!(p.chars().any(|c| SYMBOLS.contains(&(c as u8))));
    }

    #[test]
    fn refuses_short_or_one_sided_input() {
        assert_eq!(from_random(&[1, 2, 3]), None);
        // All the same byte: one class only.
        assert_eq!(from_random(&[0; 100]), None);
        // Bytes above the unbiased limit are skipped, not folded.
        assert_eq!(from_random(&[255; 100]), None);
    }
}
