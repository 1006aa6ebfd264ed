//! Request rate limits: per key (token buckets, GCRA via `governor`), and
//! per client address for failed authentications. Over either: 429 with
//! `Retry-After`.
use crate::problem::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(per_second: u32, burst: u32) -> RateLimits {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        RateLimits {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check(&self, key: Uuid) -> Result<(), ApiError> {
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
        })?;
        // Forget idle keys now and then so the map stays small.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        Ok(())
    }
}

/// Failed authentications per client address: after `max` in a window of
/// `window`, the address gets 429 for the rest of the window, whatever key
/// it sends (so guessing on cannot tell a right key from a wrong one).
/// IPv6 clients are counted per /64, the block one host usually has.
pub struct FailedAuthLimit {
    max: u32,
    window: Duration,
    /// Address → (start of its window, failures in it).
    by_addr: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses remembered before expired windows are swept out.
const SWEEP_AT: usize = 10_000;

impl FailedAuthLimit {
    pub fn new(max: u32, window: Duration) -> FailedAuthLimit {
        FailedAuthLimit {
            max: max.max(1),
            window,
            by_addr: Mutex::new(HashMap::new()),
        }
    }

    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
                }
            },
        }
    }

    /// Refuse an address that has failed too often in its current window.
    pub fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        let map = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&Self::key(ip)) {
            Some((start, n)) if *n >= self.max && start.elapsed() < self.window => {
                let left = self.window.saturating_sub(start.elapsed());
                Err(ApiError::RateLimited {
                    retry_after_secs: left.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
            _ => Ok(()),
        }
    }

    /// Count a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let mut map = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, (start, _)| start.elapsed() < window);
        }
        let entry = map
            .entry(Self::key(ip))
            .or_insert_with(|| (Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_max_failures_until_its_window_ends() {
        let limit = FailedAuthLimit::new(3, Duration::from_millis(200));
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(ip).is_ok());
            limit.failed(ip);
        }
        assert!(matches!(
            limit.check(ip),
            Err(ApiError::RateLimited {
                retry_after_secs: 1
            })
        ));
        assert!(limit.check("192.0.2.8".parse().unwrap()).is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limit.check(ip).is_ok(), "a new window");
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let limit = FailedAuthLimit::new(2, Duration::from_secs(60));
        limit.failed("2001:db8:1:2::1".parse().unwrap());
        limit.failed("2001:db8:1:2:ffff::9".parse().unwrap());
        assert!(limit.check("2001:db8:1:2::77".parse().unwrap()).is_err());
        assert!(limit.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }
}
