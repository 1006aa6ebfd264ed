use std::time::Duration;

/// Delay before attempt `attempt + 1`: exponential (1 s, 2 s, 4 s … capped at
/// 10 min) with ±20 % jitter so retries of many tasks spread out; or exactly what
/// the provider asked for with `retry-after`.
pub fn retry_delay(attempt: u32, retry_after_ms: Option<u64>) -> Duration {
    let base_ms = 1000u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(600_000);
    let jitter = rand::random_range(0.8..1.2);
    let backoff = Duration::from_millis((base_ms as f64 * jitter) as u64);
    // The provider knows best when it will be ready again.
    retry_after_ms.map(Duration::from_millis).unwrap_or(backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_with_jitter_and_a_cap() {
        for _ in 0..100 {
            let d1 = retry_delay(1, None).as_millis();
            assert!((800..=1200).contains(&d1), "{d1}");
            let d4 = retry_delay(4, None).as_millis();
            assert!((6400..=9600).contains(&d4), "{d4}");
            assert!(retry_delay(40, None).as_millis() <= 720_000);
        }
    }

    #[test]
    fn honors_retry_after() {
        assert_eq!(retry_delay(1, Some(30_000)), Duration::from_secs(30));
        assert_eq!(retry_delay(8, Some(500)), Duration::from_millis(500));
    }
}
