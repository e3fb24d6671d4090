//! DynamoDB's clock as the direct request path sees it: every response's
//! `Date` header, read against the midpoint of its round trip, gives the
//! offset between DynamoDB's clock and this host's, and [`super::sign`]
//! signs with local time plus that offset. DynamoDB refuses signatures
//! more than five minutes off its clock (`InvalidSignatureException:
//! Signature expired`), so without this a gateway whose clock drifted
//! would fail every batch until its clock is fixed. The SDK path does the
//! same with aws-runtime's `ServiceClockSkewInterceptor`; this mirrors it
//! (every response refreshes the offset, milliseconds, the round trip's
//! midpoint as the server's moment).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use hyper::header::HeaderValue;

/// An offset beyond this is logged (the SDK's clock-skew threshold): it
/// would put signatures near DynamoDB's five-minute limit.
pub const NOTABLE_SKEW: Duration = Duration::from_secs(4 * 60);
/// A round trip longer than this says too little about when the server
/// wrote its `Date` (the SDK's limit).
const MAX_TRUSTED_ROUND_TRIP: Duration = Duration::from_secs(15 * 60);

/// The learned offset of DynamoDB's clock; shared by every clone of the
/// signer.
#[derive(Debug, Default)]
pub struct ServerClock {
    /// DynamoDB's clock minus ours, in milliseconds.
    skew_ms: AtomicI64,
}

impl ServerClock {
    /// DynamoDB's time now, as far as its responses tell.
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.skew_ms())
    }

    /// DynamoDB's clock minus ours, in milliseconds.
    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::Relaxed)
    }

    /// Learns from one response: its `Date` header, and when the request
    /// was sent and the response headers arrived (local clock). A missing
    /// or unparseable `Date`, or a round trip too long to place it, leaves
    /// the offset as it was.
    pub fn observe(&self, date: Option<&HeaderValue>, sent: SystemTime, received: SystemTime) {
        let Some(server) = date
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok())
        else {
            return;
        };
        let elapsed = received.duration_since(sent).unwrap_or_default();
        if elapsed > MAX_TRUSTED_ROUND_TRIP {
            return;
        }
        let midpoint = sent + elapsed / 2;
        let skew = match server.duration_since(midpoint) {
            Ok(ahead) => i64::try_from(ahead.as_millis()).unwrap_or(i64::MAX),
            Err(behind) => i64::try_from(behind.duration().as_millis()).map_or(i64::MIN, |m| -m),
        };
        let before = self.skew_ms.swap(skew, Ordering::Relaxed);
        let notable = |ms: i64| ms.unsigned_abs() > NOTABLE_SKEW.as_millis() as u64;
        match (notable(before), notable(skew)) {
            (false, true) => tracing::warn!(
                skew_seconds = skew / 1000,
                "this host's clock is {} s {} DynamoDB's (its responses' Date header); \
                 requests are signed with DynamoDB's time until the clocks agree",
                skew.unsigned_abs() / 1000,
                if skew > 0 { "behind" } else { "ahead of" }
            ),
            (true, false) => tracing::info!(
                skew_ms = skew,
                "this host's clock agrees with DynamoDB's again"
            ),
            _ => {}
        }
    }
}

/// `t` moved by `ms` milliseconds (either way); `t` itself if that leaves
/// SystemTime's range.
fn shift(t: SystemTime, ms: i64) -> SystemTime {
    let by = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        t.checked_add(by)
    } else {
        t.checked_sub(by)
    }
    .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(t: SystemTime) -> HeaderValue {
        HeaderValue::from_str(&httpdate::fmt_http_date(t)).expect("ascii")
    }

    #[test]
    fn the_offset_is_the_server_date_against_the_round_trips_midpoint() {
        let clock = ServerClock::default();
        let sent = at(1_800_000_000);
        let received = sent + Duration::from_millis(400);
        // The server is an hour ahead; it wrote its Date mid-way.
        clock.observe(Some(&date(at(1_800_003_600))), sent, received);
        assert_eq!(clock.skew_ms(), 3_600_000 - 200);
        // An hour behind.
        clock.observe(Some(&date(at(1_799_996_400))), sent, received);
        assert_eq!(clock.skew_ms(), -3_600_000 - 200);
        let now = SystemTime::now();
        let shifted = clock.now();
        let off = now.duration_since(shifted).expect("behind").as_secs();
        assert!((3_600..=3_601).contains(&off), "{off}");
    }

    #[test]
    fn every_response_refreshes_the_offset() {
        let clock = ServerClock::default();
        let sent = at(1_800_000_000);
        clock.observe(Some(&date(at(1_800_000_900))), sent, sent);
        assert_eq!(clock.skew_ms(), 900_000);
        clock.observe(Some(&date(sent)), sent, sent);
        assert_eq!(clock.skew_ms(), 0, "clocks agreeing again clears it");
    }

    #[test]
    fn unusable_dates_and_slow_round_trips_leave_the_offset_alone() {
        let clock = ServerClock::default();
        let sent = at(1_800_000_000);
        clock.observe(Some(&date(at(1_800_000_600))), sent, sent);
        assert_eq!(clock.skew_ms(), 600_000);
        clock.observe(None, sent, sent);
        clock.observe(Some(&HeaderValue::from_static("yesterday")), sent, sent);
        clock.observe(
            Some(&date(at(1_700_000_000))),
            sent,
            sent + Duration::from_secs(16 * 60),
        );
        assert_eq!(clock.skew_ms(), 600_000);
    }

    #[test]
    fn shifting_moves_either_way() {
        assert_eq!(shift(at(10), -5_000), at(5));
        assert_eq!(shift(at(10), 5_000), at(15));
    }
}
