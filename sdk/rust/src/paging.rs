//! Panel1's paging (opaque cursor + limit) over a provider's offset paging
//! or a list it returns whole. The cursor is the 1-based start of the next
//! page, as text; a cursor this module did not issue is `invalid-input`.

/// Page size when the caller asks for 0.
pub const DEFAULT_LIMIT: u64 = 100;
/// Largest page asked of a provider in one call.
pub const MAX_LIMIT: u64 = 1000;

/// The 1-based start a cursor stands for (1 without a cursor).
pub fn start_of(cursor: Option<&str>) -> Result<u64, String> {
    match cursor.map(str::trim) {
        None | Some("") => Ok(1),
        Some(c) => match c.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(format!(
                "cursor `{c}` was not issued by this adapter (expected a positive number)"
            )),
        },
    }
}

/// The page size for a requested limit.
pub fn size_of(limit: u32) -> u64 {
    match u64::from(limit) {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// The cursor after a page that started at `start` and returned `returned`
/// items; `total` is the provider's record count when it gave one. `None` = last page.
pub fn next_cursor(start: u64, size: u64, returned: usize, total: Option<u64>) -> Option<String> {
    let returned = returned as u64;
    if returned == 0 {
        return None;
    }
    let next = start + returned;
    let more = match total {
        Some(total) => next <= total,
        // Without a total, a full page may be followed by another.
        None => returned >= size,
    };
    more.then(|| next.to_string())
}

/// The `[from, to)` window of a page over a list the provider returned whole.
pub fn window(start: u64, size: u64, len: usize) -> (usize, usize) {
    let from = (start - 1).min(len as u64) as usize;
    let to = (start - 1).saturating_add(size).min(len as u64) as usize;
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(start_of(None), Ok(1));
        assert_eq!(start_of(Some("")), Ok(1));
        assert_eq!(start_of(Some("21")), Ok(21));
        assert!(start_of(Some("0")).is_err());
        assert!(start_of(Some("-3")).is_err());
        assert!(start_of(Some("abc")).is_err());
    }

    #[test]
    fn sizes_are_bounded() {
        assert_eq!(size_of(0), DEFAULT_LIMIT);
        assert_eq!(size_of(10), 10);
        assert_eq!(size_of(u32::MAX), MAX_LIMIT);
    }

    #[test]
    fn next_page_math() {
        // 25 accounts, pages of 10: 1..10, 11..20, 21..25.
        assert_eq!(next_cursor(1, 10, 10, Some(25)), Some("11".into()));
        assert_eq!(next_cursor(11, 10, 10, Some(25)), Some("21".into()));
        assert_eq!(next_cursor(21, 10, 5, Some(25)), None);
        // Exactly full last page.
        assert_eq!(next_cursor(11, 10, 10, Some(20)), None);
        assert_eq!(next_cursor(1, 10, 0, Some(0)), None);
        // No total: a short page is the last.
        assert_eq!(next_cursor(1, 10, 10, None), Some("11".into()));
        assert_eq!(next_cursor(11, 10, 3, None), None);
    }

    #[test]
    fn windows_over_whole_lists() {
        assert_eq!(window(1, 10, 25), (0, 10));
        assert_eq!(window(21, 10, 25), (20, 25));
        assert_eq!(window(30, 10, 25), (25, 25));
        assert_eq!(window(u64::MAX, u64::MAX, 3), (3, 3));
    }
}
