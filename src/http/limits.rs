//! Rate limits on the sign-in routes (`/auth/login`, `/auth/complete-new-password`,
//! `/auth/refresh`): per email and per client address, so neither guessing one account's password
//! from many addresses nor many accounts' from one address goes fast. Every attempt counts, good
//! or bad. Over the limit the answer is 429 with `Retry-After`.

use super::ApiError;
use crate::domain::Email;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;

/// Keys kept before idle ones are dropped (bounds memory under an address-spraying attack).
const MAX_TRACKED_KEYS: usize = 100_000;

/// The sign-in limits.
pub struct AuthLimits {
    by_email: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    trusted_proxies: usize,
}

impl AuthLimits {
    /// Allows `per_email` attempts a minute for one email and `per_address` for one client
    /// address (bursts of the same size). The client address is the TCP peer, or with
    /// `trusted_proxies` > 0 the entry that many hops from the right of `X-Forwarded-For`.
    pub fn new(per_email: NonZeroU32, per_address: NonZeroU32, trusted_proxies: u8) -> Self {
        Self {
            by_email: RateLimiter::keyed(Quota::per_minute(per_email)),
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            trusted_proxies: usize::from(trusted_proxies),
        }
    }

    /// Counts one attempt from `address`; 429 when over its limit.
    pub fn check_address(&self, address: IpAddr) -> Result<(), ApiError> {
        Self::tidy(&self.by_address);
        self.by_address.check_key(&address).map_err(|refused| too_many(&refused))
    }

    /// Counts one attempt for `email` (case-insensitive); 429 when over its limit.
    pub fn check_email(&self, email: &Email) -> Result<(), ApiError> {
        Self::tidy(&self.by_email);
        self.by_email.check_key(&email.as_str().to_lowercase()).map_err(|refused| too_many(&refused))
    }

    /// The address a request comes from (see [`AuthLimits::new`]).
    pub fn client_address(&self, parts: &Parts) -> IpAddr {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        if self.trusted_proxies == 0 {
            return peer;
        }
        let forwarded: Vec<IpAddr> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        forwarded.len().checked_sub(self.trusted_proxies).and_then(|i| forwarded.get(i).copied()).unwrap_or(peer)
    }

    fn tidy<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>) {
        if limiter.len() > MAX_TRACKED_KEYS {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn too_many(refused: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = refused.wait_time_from(DefaultClock::default().now());
    ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    #[test]
    fn an_email_is_limited_whatever_its_case_and_others_are_not() {
        let limits = AuthLimits::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(100).unwrap(), 0);
        let ada = Email::parse("ada@example.com").unwrap();
        limits.check_email(&ada).unwrap();
        limits.check_email(&Email::parse("ADA@example.com").unwrap_or(ada.clone())).unwrap();
        let refused = limits.check_email(&ada).unwrap_err();
        assert_eq!(refused.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        limits.check_email(&Email::parse("bob@example.com").unwrap()).unwrap();
    }

    #[test]
    fn the_client_address_skips_only_trusted_proxies() {
        let request = |xff: &str| {
            let (mut parts, ()) = Request::builder().header("x-forwarded-for", xff).body(()).unwrap().into_parts();
            parts.extensions.insert(axum::extract::ConnectInfo(SocketAddr::from(([10, 0, 0, 1], 443))));
            parts
        };
        let one = NonZeroU32::new(1).unwrap();
        let parts = request("203.0.113.9, 198.51.100.7");
        assert_eq!(AuthLimits::new(one, one, 0).client_address(&parts).to_string(), "10.0.0.1");
        assert_eq!(AuthLimits::new(one, one, 1).client_address(&parts).to_string(), "198.51.100.7");
        assert_eq!(AuthLimits::new(one, one, 2).client_address(&parts).to_string(), "203.0.113.9");
        assert_eq!(AuthLimits::new(one, one, 3).client_address(&parts).to_string(), "10.0.0.1");
    }
}
