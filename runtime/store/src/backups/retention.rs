//! Which backups a policy keeps: grandfather-father-son over the times the
//! backups were taken (UTC). For each of daily, weekly (ISO weeks) and
//! monthly, walking from the newest backup back, the newest backup of each
//! period is kept until N periods *that have a backup* are counted (the
//! rule restic's `--keep-daily` uses): a gap in the backups (a failing
//! provider, a suspended schedule) never costs more backups than asked for.
//! A backup kept by any of the three is kept. Pure: dates in, keep-set out.
use chrono::{DateTime, Datelike, Utc};
use std::collections::HashSet;
use std::hash::Hash;

/// How many periods of each kind to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

/// Most periods of each kind a policy may keep (the API's and the table's
/// bounds).
pub const MAX_DAILY: u32 = 366;
pub const MAX_WEEKLY: u32 = 260;
pub const MAX_MONTHLY: u32 = 120;

impl Retention {
    /// Within the bounds, and keeping something.
    pub fn check(&self) -> Result<(), String> {
        if self.daily > MAX_DAILY || self.weekly > MAX_WEEKLY || self.monthly > MAX_MONTHLY {
            return Err(format!(
                "at most {MAX_DAILY} daily, {MAX_WEEKLY} weekly, {MAX_MONTHLY} monthly"
            ));
        }
        if self.daily + self.weekly + self.monthly == 0 {
            return Err("keeps nothing: set daily, weekly or monthly to at least 1".into());
        }
        Ok(())
    }
}

/// The ids of `backups` (id, taken at) that `rule` keeps. Order of the
/// input does not matter; of two backups taken at the same instant the
/// greater id counts as the newer.
pub fn keep<I: Copy + Ord + Hash>(backups: &[(I, DateTime<Utc>)], rule: Retention) -> HashSet<I> {
    let mut newest_first: Vec<(I, DateTime<Utc>)> = backups.to_vec();
    newest_first.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
    let mut kept = HashSet::new();
    let day = |t: &DateTime<Utc>| (t.year(), t.ordinal());
    let week = |t: &DateTime<Utc>| {
        let w = t.iso_week();
        (w.year(), w.week())
    };
    let month = |t: &DateTime<Utc>| (t.year(), t.month());
    keep_newest_per_period(&newest_first, rule.daily, day, &mut kept);
    keep_newest_per_period(&newest_first, rule.weekly, week, &mut kept);
    keep_newest_per_period(&newest_first, rule.monthly, month, &mut kept);
    kept
}

fn keep_newest_per_period<I: Copy + Eq + Hash, P: PartialEq>(
    newest_first: &[(I, DateTime<Utc>)],
    n: u32,
    period: impl Fn(&DateTime<Utc>) -> P,
    kept: &mut HashSet<I>,
) {
    let mut last: Option<P> = None;
    let mut counted = 0;
    for (id, at) in newest_first {
        if counted == n {
            return;
        }
        let p = period(at);
        if last.as_ref() != Some(&p) {
            kept.insert(*id);
            counted += 1;
            last = Some(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rule(daily: u32, weekly: u32, monthly: u32) -> Retention {
        Retention {
            daily,
            weekly,
            monthly,
        }
    }

    fn sorted(s: HashSet<u32>) -> Vec<u32> {
        let mut v: Vec<u32> = s.into_iter().collect();
        v.sort();
        v
    }

    #[test]
    fn several_a_day_keep_the_newest_of_each_day() {
        let b = [
            (1, t("2026-03-01T01:00:00Z")),
            (2, t("2026-03-01T13:00:00Z")),
            (3, t("2026-03-02T01:00:00Z")),
            (4, t("2026-03-02T23:59:59Z")),
            (5, t("2026-03-03T00:00:00Z")),
        ];
        assert_eq!(sorted(keep(&b, rule(2, 0, 0))), [4, 5]);
        assert_eq!(sorted(keep(&b, rule(3, 0, 0))), [2, 4, 5]);
        // Input order does not matter.
        let mut r = b;
        r.reverse();
        assert_eq!(sorted(keep(&r, rule(3, 0, 0))), [2, 4, 5]);
    }

    #[test]
    fn gaps_count_only_days_that_have_a_backup() {
        // Nothing between the 2nd and the 20th: the last 3 days *with* a
        // backup are the 20th, the 2nd and the 1st.
        let b = [
            (1, t("2026-03-01T02:00:00Z")),
            (2, t("2026-03-02T02:00:00Z")),
            (3, t("2026-03-20T02:00:00Z")),
        ];
        assert_eq!(sorted(keep(&b, rule(3, 0, 0))), [1, 2, 3]);
        assert_eq!(sorted(keep(&b, rule(1, 0, 0))), [3]);
    }

    #[test]
    fn zero_of_a_kind_keeps_none_of_it() {
        let b = [
            (1, t("2026-03-01T02:00:00Z")),
            (2, t("2026-03-02T02:00:00Z")),
        ];
        assert!(keep(&b, rule(0, 0, 0)).is_empty());
        assert!(keep::<u32>(&[], rule(7, 4, 12)).is_empty());
        // Weekly only: both days are in ISO week 9 of 2026 (Sun 1 Mar is
        // still week 9, Mon 2 Mar starts week 10).
        assert_eq!(sorted(keep(&b, rule(0, 2, 0))), [1, 2]);
        assert_eq!(sorted(keep(&b, rule(0, 1, 0))), [2]);
    }

    #[test]
    fn weeks_are_iso_weeks_and_months_calendar_months() {
        // 2025-12-29 (Mon) to 2026-01-04 (Sun) is ISO week 1 of 2026.
        let b = [
            (1, t("2025-12-28T10:00:00Z")), // week 52 of 2025, December
            (2, t("2025-12-29T10:00:00Z")), // week 1 of 2026, December
            (3, t("2026-01-04T10:00:00Z")), // week 1 of 2026, January
            (4, t("2026-01-05T10:00:00Z")), // week 2, January
        ];
        assert_eq!(sorted(keep(&b, rule(0, 3, 0))), [1, 3, 4]);
        assert_eq!(sorted(keep(&b, rule(0, 0, 2))), [2, 4]);
        assert_eq!(sorted(keep(&b, rule(0, 0, 5))), [2, 4]);
    }

    #[test]
    fn the_three_kinds_add_up() {
        // Daily backups over ~3 months: 7 daily + 4 weekly + 3 monthly.
        let start = t("2026-01-01T03:00:00Z");
        let b: Vec<(u32, DateTime<Utc>)> = (0..90)
            .map(|d| (d, start + chrono::Duration::days(d as i64)))
            .collect();
        let k = keep(&b, rule(7, 4, 3));
        // The 7 newest days (83..=89), the newest of the 4 newest weeks
        // (89 is Tue 31 Mar, week 14: 89; week 13: Sun 29 Mar = 87; week
        // 12: 80; week 11: 73), the newest of 3 months (Mar 89, Feb 58,
        // Jan 30).
        assert_eq!(sorted(k), [30, 58, 73, 80, 83, 84, 85, 86, 87, 88, 89]);
    }

    #[test]
    fn equal_times_break_ties_by_id() {
        let at = t("2026-03-01T02:00:00Z");
        assert_eq!(sorted(keep(&[(1, at), (2, at)], rule(1, 0, 0))), [2]);
    }

    #[test]
    fn bounds() {
        assert!(rule(7, 4, 12).check().is_ok());
        assert!(rule(0, 0, 0).check().is_err());
        assert!(rule(367, 0, 0).check().is_err());
        assert!(rule(0, 261, 0).check().is_err());
        assert!(rule(0, 0, 121).check().is_err());
    }
}
