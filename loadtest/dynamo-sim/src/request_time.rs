//! The simulator's clock and DynamoDB's five-minute signature window: a
//! request whose `X-Amz-Date` is more than five minutes off the
//! simulator's clock is refused with `InvalidSignatureException` and
//! DynamoDB's message, before anything else about it is looked at.
//! (Signatures themselves are not checked.) `faults.clock_offset_s` moves
//! the simulator's clock, which also shows in every response's `Date`
//! header, so a client's clock-skew handling can be tested on one host.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::ApiError;

/// How far a request's signing time may be from the server's clock.
pub const WINDOW_SECS: i64 = 5 * 60;

/// The simulator's time: the host's moved by `offset_s` seconds.
pub fn now(offset_s: i64) -> SystemTime {
    let by = Duration::from_secs(offset_s.unsigned_abs());
    let t = SystemTime::now();
    if offset_s >= 0 {
        t.checked_add(by)
    } else {
        t.checked_sub(by)
    }
    .unwrap_or(t)
}

/// Seconds since the epoch of `t` (0 before it).
pub fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Refuses a request signed at `x_amz_date` when that is more than five
/// minutes from `now_secs`. A missing or unreadable date is let through:
/// the simulator checks no signatures, only their time.
pub fn check(x_amz_date: Option<&str>, now_secs: i64) -> Result<(), ApiError> {
    let Some(signed) = x_amz_date.and_then(parse_amz_date) else {
        return Ok(());
    };
    // The dates are written only for a refusal: formatting them for every
    // request cost about 5,000 instructions per BatchWriteItem call.
    let dates = || (amz_date(signed), amz_date(now_secs));
    if signed < now_secs - WINDOW_SECS {
        let ((signed_s, now_s), limit) = (dates(), amz_date(now_secs - WINDOW_SECS));
        return Err(ApiError::InvalidSignature(format!(
            "Signature expired: {signed_s} is now earlier than {limit} ({now_s} - 5 min.)"
        )));
    }
    if signed > now_secs + WINDOW_SECS {
        let ((signed_s, now_s), limit) = (dates(), amz_date(now_secs + WINDOW_SECS));
        return Err(ApiError::InvalidSignature(format!(
            "Signature not yet current: {signed_s} is still later than {limit} ({now_s} + 5 min.)"
        )));
    }
    Ok(())
}

/// Seconds since the epoch of a `YYYYMMDDTHHMMSSZ` date.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3_600 + mm * 60 + ss)
}

/// `YYYYMMDDTHHMMSSZ` of `secs` since the epoch.
pub fn amz_date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

// Howard Hinnant's civil-date algorithms (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_round_trip_through_the_epoch() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(amz_date(0), "19700101T000000Z");
        // 2000-02-29 (a leap day of a century leap year) 12:34:56.
        assert_eq!(parse_amz_date("20000229T123456Z"), Some(951_827_696));
        for secs in [0, 951_827_696, 1_798_675_200, 4_102_444_799, 1_234_567_890] {
            assert_eq!(parse_amz_date(&amz_date(secs)), Some(secs), "{secs}");
        }
        for bad in [
            "",
            "20260101T000000",
            "2026-01-01T00:00:00Z",
            "20261301T000000Z",
            "20260101T250000Z",
            "2026010+T000000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn signatures_outside_five_minutes_are_refused_with_dynamodbs_messages() {
        let now = parse_amz_date("20261128T120000Z").expect("date");
        assert!(check(Some("20261128T115500Z"), now).is_ok());
        assert!(check(Some("20261128T120500Z"), now).is_ok());
        assert!(check(None, now).is_ok());
        assert!(check(Some("garbage"), now).is_ok());
        let Err(ApiError::InvalidSignature(m)) = check(Some("20261128T115459Z"), now) else {
            panic!("expired signature accepted");
        };
        assert_eq!(
            m,
            "Signature expired: 20261128T115459Z is now earlier than 20261128T115500Z \
             (20261128T120000Z - 5 min.)"
        );
        let Err(ApiError::InvalidSignature(m)) = check(Some("20261128T130000Z"), now) else {
            panic!("future signature accepted");
        };
        assert_eq!(
            m,
            "Signature not yet current: 20261128T130000Z is still later than 20261128T120500Z \
             (20261128T120000Z + 5 min.)"
        );
    }

    #[test]
    fn the_offset_moves_the_clock() {
        let host = epoch_secs(SystemTime::now());
        let ahead = epoch_secs(now(3_600)) - host;
        let behind = epoch_secs(now(-3_600)) - host;
        assert!((3_600..=3_601).contains(&ahead), "{ahead}");
        assert!((-3_600..=-3_599).contains(&behind), "{behind}");
    }
}
