//! Per-client rate limits on the HTTP source: a keyed GCRA (governor) that
//! meters **events**, not requests, so one NDJSON request of 5,000 events
//! costs what 5,000 single-event requests cost.
//!
//! Sits after authentication and before the router: a refused request is
//! answered 429 with `Retry-After` and stores nothing, while other clients'
//! buckets are untouched. A client is its API key's name when the request
//! carries a valid key (and `key_by = "auto"`), otherwise its IP address;
//! an IPv6 client is its /64, because one host usually owns a whole /64.
//!
//! Each request is charged one event before its body is read (a flooding
//! client is refused without reading or decoding anything), and the rest
//! of its events once they are decoded. A request with more events than
//! the burst could never pass: it gets 413 instead of a 429 that would
//! make it retry forever.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};

use crate::config::ClientKeyBy;

/// Who a rate-limit bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// An API key, by its configured name.
    Key(Arc<str>),
    /// An IPv4 address, or the /64 prefix of an IPv6 address.
    Ip(IpAddr),
}

impl ClientId {
    /// The bucket of a request from `peer` that carried the key named `key`.
    pub fn of(key_by: ClientKeyBy, key: Option<&Arc<str>>, peer: IpAddr) -> Self {
        match (key_by, key) {
            (ClientKeyBy::Auto, Some(name)) => ClientId::Key(name.clone()),
            _ => ClientId::Ip(match peer {
                IpAddr::V4(v4) => IpAddr::V4(v4),
                IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => IpAddr::V4(v4),
                    None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
                },
            }),
        }
    }
}

/// Why a client's events are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// Over the rate: retry after this long.
    #[error("this client is over its rate limit; retry in {}s", retry_after_secs(*.0))]
    Limited(Duration),
    /// More events in one request than the burst allows.
    #[error(
        "{events} events in one request exceed http.rate_limit.burst ({burst}); split the request"
    )]
    TooMany { events: u32, burst: u32 },
}

type Keyed<C> =
    RateLimiter<ClientId, HashMapStateStore<ClientId>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Buckets of every client seen recently.
#[derive(Debug)]
pub struct ClientRateLimiter<C: Clock = DefaultClock> {
    limiter: Keyed<C>,
    burst: NonZeroU32,
}

impl ClientRateLimiter<DefaultClock> {
    /// `per_second` events sustained, `burst` at once, per client.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_clock(per_second, burst, DefaultClock::default())
    }
}

impl<C: Clock> ClientRateLimiter<C> {
    /// As [`ClientRateLimiter::new`], on an injected clock (tests).
    pub fn with_clock(per_second: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: RateLimiter::hashmap_with_clock(quota, clock),
            burst,
        }
    }

    /// Charges `events` to `client`; nothing is charged when refused.
    pub fn charge(&self, client: &ClientId, events: u32) -> Result<(), RateError> {
        let Some(n) = NonZeroU32::new(events) else {
            return Ok(());
        };
        match self.limiter.check_key_n(client, n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(RateError::Limited(
                not_until.wait_time_from(self.limiter.clock().now()),
            )),
            Err(_) => Err(RateError::TooMany {
                events,
                burst: self.burst.get(),
            }),
        }
    }

    /// Charges the rest of a request of `total` events whose first event
    /// was charged before its body was read. A request larger than the
    /// burst is refused as [`RateError::TooMany`] even when the remainder
    /// would fit: as a whole it never could.
    pub fn charge_rest(&self, client: &ClientId, total: usize) -> Result<(), RateError> {
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        if total > self.burst.get() {
            return Err(RateError::TooMany {
                events: total,
                burst: self.burst.get(),
            });
        }
        self.charge(client, total.saturating_sub(1))
    }

    /// Forgets clients whose buckets are full again, so the map holds only
    /// recently active clients (called periodically).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Clients currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    #[test]
    fn events_are_metered_per_client() {
        let clock = FakeRelativeClock::default();
        let l = ClientRateLimiter::with_clock(nz(10), nz(20), clock.clone());
        let a = ClientId::Key(Arc::from("a"));
        let b = ClientId::Key(Arc::from("b"));
        assert_eq!(l.charge(&a, 20), Ok(()));
        let Err(RateError::Limited(wait)) = l.charge(&a, 1) else {
            panic!("a is over its burst");
        };
        assert_eq!(wait, Duration::from_millis(100));
        // Another client is unaffected.
        assert_eq!(l.charge(&b, 15), Ok(()));
        // One second refills ten events for a.
        clock.advance(Duration::from_secs(1));
        assert_eq!(l.charge(&a, 10), Ok(()));
        assert!(matches!(l.charge(&a, 1), Err(RateError::Limited(_))));
        assert_eq!(
            l.charge(&a, 21),
            Err(RateError::TooMany {
                events: 21,
                burst: 20
            })
        );
        assert_eq!(l.charge(&a, 0), Ok(()));
        // burst + 1 events, the first already charged: still too many as a whole.
        clock.advance(Duration::from_secs(10));
        assert_eq!(l.charge(&a, 1), Ok(()));
        assert_eq!(
            l.charge_rest(&a, 21),
            Err(RateError::TooMany {
                events: 21,
                burst: 20
            })
        );
        assert_eq!(l.charge_rest(&a, 20), Ok(()));
    }

    #[test]
    fn idle_clients_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let l = ClientRateLimiter::with_clock(nz(10), nz(10), clock.clone());
        for i in 0..100u8 {
            let _ = l.charge(&ClientId::Ip(IpAddr::from([10, 0, 0, i])), 5);
        }
        assert_eq!(l.tracked(), 100);
        clock.advance(Duration::from_secs(1));
        l.forget_idle();
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn ipv6_clients_are_their_64_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let a = ClientId::of(ClientKeyBy::Ip, None, ip("2001:db8:1:2::1"));
        let b = ClientId::of(ClientKeyBy::Ip, None, ip("2001:db8:1:2:ffff::9"));
        let c = ClientId::of(ClientKeyBy::Ip, None, ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            ClientId::of(ClientKeyBy::Auto, None, ip("::ffff:10.0.0.1")),
            ClientId::Ip(ip("10.0.0.1"))
        );
        let key = Arc::from("k");
        assert_eq!(
            ClientId::of(ClientKeyBy::Auto, Some(&key), ip("10.0.0.1")),
            ClientId::Key(key.clone())
        );
        assert_eq!(
            ClientId::of(ClientKeyBy::Ip, Some(&key), ip("10.0.0.1")),
            ClientId::Ip(ip("10.0.0.1"))
        );
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}
