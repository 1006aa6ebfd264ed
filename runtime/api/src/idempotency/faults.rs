//! TEST ONLY: crash points for the exactly-once tests. Inert unless the
//! process was started with `PANEL1_TEST_FAULTS=<point>@<n>`, which aborts
//! the process (no unwinding, no answer, as a SIGKILL would) at the n-th
//! time a keyed POST reaches `<point>`: `before-commit` (the effect and the
//! answer written, the transaction still open) or `after-commit` (committed,
//! not yet answered).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

pub const VAR: &str = "PANEL1_TEST_FAULTS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeCommit,
    AfterCommit,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::BeforeCommit => "before-commit",
            Point::AfterCommit => "after-commit",
        }
    }
}

/// The armed point and after how many passes it fires.
static ARMED: LazyLock<Option<(Point, u64)>> = LazyLock::new(|| {
    let spec = std::env::var(VAR).ok()?;
    let parsed = parse(&spec);
    if parsed.is_none() {
        tracing::warn!(spec, "{VAR} not understood; no fault armed");
    }
    parsed
});
static PASSES: AtomicU64 = AtomicU64::new(0);

fn parse(spec: &str) -> Option<(Point, u64)> {
    let (point, n) = spec.split_once('@')?;
    let point = [Point::BeforeCommit, Point::AfterCommit]
        .into_iter()
        .find(|p| p.name() == point)?;
    Some((point, n.parse().ok().filter(|n| *n > 0)?))
}

/// Abort here if this is the armed point's n-th pass.
pub fn at(point: Point) {
    let Some((armed, n)) = *ARMED else { return };
    if armed == point && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == n {
        eprintln!("{VAR}: aborting at {} (pass {n})", point.name());
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_points_and_counts() {
        assert_eq!(parse("after-commit@3"), Some((Point::AfterCommit, 3)));
        assert_eq!(parse("before-commit@1"), Some((Point::BeforeCommit, 1)));
        assert_eq!(parse("after-commit@0"), None);
        assert_eq!(parse("mid-air@1"), None);
        assert_eq!(parse("after-commit"), None);
    }
}
