//! cPanel's rules for a new account's username, checked before any WHM call
//! so a bad name fails fast as `invalid-input` with a message that says why.

/// Longest username cPanel accepts.
pub const MAX_LEN: usize = 16;

/// System and service accounts cPanel refuses (or that would collide with
/// one on a typical WHM server).
const RESERVED: &[&str] = &[
    "root",
    "cpanel",
    "admin",
    "mysql",
    "nobody",
    "postgres",
    "www",
    "all",
    "apache",
    "bin",
    "cpanelsolr",
    "cphulkd",
    "cpses",
    "daemon",
    "dovecot",
    "ftp",
    "mail",
    "mailman",
    "named",
    "operator",
    "shared",
    "sshd",
    "system",
    "virtfs",
    "whm",
];

/// `Ok` when `name` may be created as a cPanel account; otherwise the reason.
pub fn validate(name: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("username `{name}` is not valid for cPanel: {why}"));
    if name.is_empty() {
        return Err("username is required: cPanel accounts are named by their username".into());
    }
    if name.len() > MAX_LEN {
        return bad("it must be at most 16 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return bad("it may contain only lowercase letters and digits");
    }
    if name.starts_with("test") {
        return bad("cPanel does not allow usernames that start with `test`");
    }
    if RESERVED.contains(&name) {
        return bad("it is a reserved system name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_plain_names() {
        for ok in ["a", "alice", "bob2024", "abcdefghijklmnop", "tes", "atest"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        let cases = [
            ("", "required"),
            ("abcdefghijklmnopq", "at most 16"),
            ("1abc", "start with a lowercase letter"),
            ("Alice", "start with a lowercase letter"),
            ("aLice", "only lowercase letters and digits"),
            ("al_ice", "only lowercase letters and digits"),
            ("al-ice", "only lowercase letters and digits"),
            ("alice.b", "only lowercase letters and digits"),
            ("test", "`test`"),
            ("testing1", "`test`"),
            ("root", "reserved"),
            ("cpanel", "reserved"),
            ("admin", "reserved"),
            ("mysql", "reserved"),
            ("nobody", "reserved"),
            ("postgres", "reserved"),
            ("www", "reserved"),
        ];
        for (name, why) in cases {
            let err = validate(name).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
    }
}
