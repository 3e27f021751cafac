//! Time helpers: one place that says what "now" and "RFC 3339" mean.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, the unit every stored timestamp uses.
pub type Millis = i64;

pub fn now_millis() -> Millis {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as Millis
}

/// RFC 3339 UTC with milliseconds, as the JSON API shows timestamps.
pub fn rfc3339(ms: Millis) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let t = t
        .replace_nanosecond((ms.rem_euclid(1000) as u32) * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The whole minute (minutes since the epoch) a timestamp falls in.
pub fn minute_of(ms: Millis) -> i64 {
    ms.div_euclid(60_000)
}

pub const DAY_MS: Millis = 86_400_000;
