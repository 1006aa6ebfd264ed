//! Request limits every API process shares (migrations/0012): a token
//! bucket per key (GCRA) and a count of failed authentications per client
//! address. Both are decided in Postgres, in the same round trip as the
//! key's lookup (`panel1_admit`), so two processes behind one balancer hold
//! one limit, not two (settings: `ApiConfig`). Over either: 429 with
//! `Retry-After`.
use crate::problem::ApiError;
use std::net::IpAddr;

/// The block an address is counted in: itself for IPv4 (and IPv4-mapped
/// IPv6), its /64 for IPv6 (the block one host usually has).
pub fn client_block(ip: IpAddr) -> IpAddr {
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

/// The 429 for a wait of `secs` (rounded up, at least 1 s).
pub fn too_many(secs: f64) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: secs.ceil().max(1.0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_counted_per_64_and_mapped_v4_as_v4() {
        let a = client_block("2001:db8:1:2::1".parse().unwrap());
        assert_eq!(a, client_block("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_ne!(a, client_block("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            client_block("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_wait_rounds_up_to_whole_seconds() {
        assert!(matches!(
            too_many(0.01),
            ApiError::RateLimited {
                retry_after_secs: 1
            }
        ));
        assert!(matches!(
            too_many(2.2),
            ApiError::RateLimited {
                retry_after_secs: 3
            }
        ));
    }
}
