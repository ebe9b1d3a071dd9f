//! UTC dates from the system clock, for provenance records (no time-zone database needed).

/// Now as (year, month, day, hour, minute, second) in UTC.
pub fn utc_now() -> (i64, i64, i64, i64, i64, i64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let (y, m, d, ..) = utc_now();
    format!("{y:04}-{m:02}-{d:02}")
}

/// Now (UTC) as RFC 3339, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now_rfc3339() -> String {
    let (y, m, d, h, mi, s) = utc_now();
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}
