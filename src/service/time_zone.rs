//! IANA time zones: reading a zone's name, and local calendar boundaries (hours, days,
//! weeks, months) as instants, daylight-saving days included (23 or 25 hours).

use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike,
};
use chrono_tz::Tz;

use crate::error::Error;

/// Longest zone name accepted.
const MAX_NAME: usize = 64;

/// The zone named `name` (`UTC`, `Europe/Berlin`, …).
pub fn parse(name: &str) -> Result<Tz, Error> {
    if name.len() > MAX_NAME {
        return Err(Error::BadFilter(
            "a time zone name is at most 64 bytes".into(),
        ));
    }
    Tz::from_str(name).map_err(|_| {
        Error::BadFilter(format!(
            "unknown time zone {name:?}: give an IANA name such as UTC or Europe/Berlin"
        ))
    })
}

/// A calendar unit of local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Hour,
    Day,
    /// Weeks start on Monday (ISO 8601).
    Week,
    Month,
}

/// The instant (epoch ms) a local wall-clock time begins in `tz`: a time skipped by a
/// daylight-saving jump reads as the first instant after the gap.
fn instant(tz: Tz, local: NaiveDateTime) -> i64 {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp_millis(),
        LocalResult::Ambiguous(first, _) => first.timestamp_millis(),
        LocalResult::None => {
            // Walk forward a minute at a time to the end of the gap (gaps are at most hours).
            let mut probe = local;
            for _ in 0..(26 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.timestamp_millis();
                }
            }
            local.and_utc().timestamp_millis()
        }
    }
}

/// The start (epoch ms) of the `unit` of local time in `tz` that holds the instant `ms`.
pub fn floor(tz: Tz, unit: Unit, ms: i64) -> i64 {
    let Some(utc) = DateTime::from_timestamp_millis(ms) else {
        return ms;
    };
    let local = utc.with_timezone(&tz);
    if unit == Unit::Hour {
        // An hour is the stretch between two local o'clocks; with whole-hour offsets this
        // is the UTC hour, and a repeated local hour (autumn) is two buckets.
        return ms - i64::from(local.minute()) * 60_000 - ms.rem_euclid(60_000);
    }
    let date = local.date_naive();
    let first = match unit {
        Unit::Day | Unit::Hour => date,
        Unit::Week => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
        Unit::Month => NaiveDate::from_ymd_opt(date.year(), date.month(), 1).unwrap_or(date),
    };
    instant(tz, first.and_time(chrono::NaiveTime::MIN))
}

/// The start of the `unit` after the one that begins at `start` (as given by [`floor`]).
pub fn next(tz: Tz, unit: Unit, start: i64) -> i64 {
    match unit {
        Unit::Hour => floor(tz, unit, start + 3_600_000),
        Unit::Day => floor(tz, unit, start + 26 * 3_600_000),
        Unit::Week => floor(tz, unit, start + 7 * 86_400_000 + 2 * 3_600_000),
        Unit::Month => floor(tz, unit, start + 32 * 86_400_000),
    }
}
