//! Conversions from PostgreSQL's text output format to domain values: whole numbers,
//! timestamps (`timestamp`, `timestamptz`, `date`) and money. No allocation, no panics.

use std::str::FromStr;

use contracts::Money;
use rust_decimal::Decimal;

use crate::error::MapReason;

/// A whole number, e.g. `ord_qty`.
pub fn int(text: &str) -> Result<i64, MapReason> {
    text.trim().parse().map_err(|_| MapReason::BadNumber)
}

/// Money from a numeric amount and an ISO 4217 currency column.
pub fn money(amount: &str, currency: &str) -> Result<Money, MapReason> {
    let amount =
        Decimal::from_str(amount.trim()).map_err(|_| MapReason::BadMoney { source: None })?;
    Money::new(amount, currency).map_err(|e| MapReason::BadMoney { source: Some(e) })
}

/// µs since the Unix epoch from `YYYY-MM-DD[ HH:MM:SS[.ffffff]][±HH[:MM[:SS]]]`. A value without
/// an offset (legacy `timestamp` columns) is read as UTC, as the legacy schema stores it.
pub fn timestamp_micros(text: &str) -> Result<i64, MapReason> {
    parse_timestamp(text.trim().as_bytes()).ok_or(MapReason::BadTimestamp)
}

fn digits(bytes: &[u8], at: usize, n: usize) -> Option<i64> {
    let slice = bytes.get(at..at + n)?;
    slice.iter().try_fold(0i64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

fn parse_timestamp(b: &[u8]) -> Option<i64> {
    // Year: 4 or more digits.
    let year_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(4..=6).contains(&year_len) {
        return None;
    }
    let year = digits(b, 0, year_len)?;
    let mut i = year_len;
    if b.get(i) != Some(&b'-') || b.get(i + 3) != Some(&b'-') {
        return None;
    }
    let (month, day) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
    i += 6;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut micros = days_from_civil(year, month, day) * 86_400_000_000;
    if i == b.len() {
        return Some(micros);
    }
    if b[i] != b' ' && b[i] != b'T' {
        return None;
    }
    let (h, m, s) = (
        digits(b, i + 1, 2)?,
        digits(b, i + 4, 2)?,
        digits(b, i + 7, 2)?,
    );
    if b.get(i + 3) != Some(&b':') || b.get(i + 6) != Some(&b':') || h > 24 || m > 59 || s > 60 {
        return None;
    }
    micros += ((h * 60 + m) * 60 + s) * 1_000_000;
    i += 9;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut frac = 0i64;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 6 {
                frac = frac * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            frac *= 10;
        }
        micros += frac;
    }
    if let Some(&sign) = b.get(i).filter(|c| **c == b'+' || **c == b'-') {
        let oh = digits(b, i + 1, 2)?;
        i += 3;
        let mut offset = oh * 3600;
        for unit in [60, 1] {
            if b.get(i) == Some(&b':') {
                offset += digits(b, i + 1, 2)? * unit;
                i += 3;
            }
        }
        micros -= if sign == b'+' { offset } else { -offset } * 1_000_000;
    }
    (i == b.len()).then_some(micros)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's timestamp text forms convert to the right instant, offsets included.
    #[test]
    fn timestamps() {
        let ok = |s: &str| timestamp_micros(s).unwrap_or_else(|_| panic!("{s}"));
        assert_eq!(ok("1970-01-01 00:00:00"), 0);
        assert_eq!(ok("1970-01-01"), 0);
        assert_eq!(ok("2026-12-03 17:08:20.123456"), 1_796_317_700_123_456);
        assert_eq!(ok("2026-12-03 17:08:20.5"), 1_796_317_700_500_000);
        assert_eq!(ok("2026-12-03 18:08:20.5+01"), 1_796_317_700_500_000);
        assert_eq!(ok("2026-12-03 11:38:20.5-05:30"), 1_796_317_700_500_000);
        assert_eq!(ok("1969-12-31 23:59:59.999999"), -1);
        assert_eq!(ok("2024-02-29 00:00:00"), 1_709_164_800_000_000);
        for bad in [
            "",
            "infinity",
            "2026-13-01",
            "2023-02-29",
            "2026-12-03 17:08",
            "2026-12-03 17:08:20.",
            "0001-01-01 00:00:00 BC",
            "2026-12-03 17:08:20+1",
        ] {
            assert!(timestamp_micros(bad).is_err(), "{bad}");
        }
    }

    /// Amounts and counts: exact, or an error saying which kind of value was bad.
    #[test]
    fn numbers_and_money() {
        assert_eq!(int("42").ok(), Some(42));
        assert_eq!(int("4.2").map_err(|e| e.code()), Err("bad_number"));
        assert_eq!(
            money("129.50", "EUR")
                .map(|m| m.amount().to_string())
                .ok()
                .as_deref(),
            Some("129.5000")
        );
        assert_eq!(
            money("abc", "EUR").map_err(|e| e.code()).err(),
            Some("bad_money")
        );
        assert_eq!(
            money("1", "€").map_err(|e| e.code()).err(),
            Some("bad_money")
        );
    }
}
