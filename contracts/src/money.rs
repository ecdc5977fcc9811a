//! Money (Avro `decimal(18,4)` plus an ISO 4217 currency) and timestamps (`timestamp-micros`).

use rust_decimal::Decimal;

/// Digits after the decimal point of every amount in the contracts.
pub const MONEY_SCALE: u32 = 4;
/// Total digits of every amount in the contracts.
pub const MONEY_PRECISION: u32 = 18;
const MAX_UNSCALED: i128 = 10i128.pow(MONEY_PRECISION);

/// A point in time as the contracts carry it: µs since the Unix epoch (Avro `timestamp-micros`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimestampMicros(pub i64);

/// Why an amount cannot be money in the contracts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// More than [`MONEY_SCALE`] significant decimals: writing it would lose cents.
    #[error("amount has more than {MONEY_SCALE} significant decimals")]
    TooManyDecimals,
    /// More than [`MONEY_PRECISION`] digits in all.
    #[error("amount has more than {MONEY_PRECISION} digits")]
    TooLarge,
    /// The currency is not three upper-case ASCII letters.
    #[error("currency is not an ISO 4217 code (three upper-case letters)")]
    BadCurrency,
}

/// An amount of money in a currency, exactly (no floating point).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    pub(crate) currency: String,
}

impl Money {
    /// Money from an amount and an ISO 4217 code; refuses what the contract cannot carry exactly.
    pub fn new(amount: Decimal, currency: &str) -> Result<Money, MoneyError> {
        let currency = currency.trim_end();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(MoneyError::BadCurrency);
        }
        let mut amount = amount;
        if amount.scale() > MONEY_SCALE {
            let rounded = amount.round_dp(MONEY_SCALE);
            if rounded != amount {
                return Err(MoneyError::TooManyDecimals);
            }
            amount = rounded;
        }
        amount.rescale(MONEY_SCALE);
        if amount.scale() != MONEY_SCALE || amount.mantissa().abs() >= MAX_UNSCALED {
            return Err(MoneyError::TooLarge);
        }
        Ok(Money {
            amount,
            currency: currency.to_owned(),
        })
    }

    /// Zero in the given currency (the currency is taken as is).
    pub fn zero(currency: &str) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(MONEY_SCALE);
        Money {
            amount,
            currency: currency.to_owned(),
        }
    }

    /// The amount, with scale [`MONEY_SCALE`].
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The ISO 4217 currency code.
    pub fn currency(&self) -> &str {
        &self.currency
    }

    /// The unscaled amount as 8 bytes of big-endian two's complement.
    ///
    /// Always 8 bytes (valid Avro: any length is), because apache-avro's reader refuses a
    /// `decimal(18,_)` held in fewer bytes than 18 digits can need.
    pub(crate) fn unscaled_bytes(&self) -> [u8; 8] {
        // new() guarantees |mantissa| < 10^18 < 2^63.
        (self.amount.mantissa() as i64).to_be_bytes()
    }

    /// Money from the Avro decimal bytes (two's complement, big-endian) and a currency.
    pub(crate) fn from_unscaled_bytes(bytes: &[u8], currency: String) -> Option<Money> {
        if bytes.is_empty() || bytes.len() > 16 {
            return None;
        }
        let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
        let mut buf = [fill; 16];
        buf[16 - bytes.len()..].copy_from_slice(bytes);
        let unscaled = i128::from_be_bytes(buf);
        let amount = Decimal::try_from_i128_with_scale(unscaled, MONEY_SCALE).ok()?;
        Some(Money { amount, currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    /// Short two's-complement forms (as other writers may send) decode with their sign.
    #[test]
    fn short_forms_decode() {
        let m = |b: &[u8]| Money::from_unscaled_bytes(b, "EUR".into()).map(|m| m.amount());
        assert_eq!(m(&[0xff]), Some(dec("-0.0001")));
        assert_eq!(m(&[0x00, 0x80]), Some(dec("0.0128")));
        assert_eq!(m(&[]), None);
    }

    /// Amounts survive the trip through the Avro decimal bytes exactly, sign included.
    #[test]
    fn unscaled_bytes_round_trip() {
        for s in [
            "0",
            "0.01",
            "-0.01",
            "127.99",
            "-128",
            "12.8",
            "99999999999999.9999",
            "-99999999999999.9999",
        ] {
            let m = Money::new(dec(s), "EUR").expect(s);
            let back = Money::from_unscaled_bytes(&m.unscaled_bytes(), "EUR".into()).expect(s);
            assert_eq!(back, m, "{s}");
            assert_eq!(back.amount(), dec(s), "{s}");
        }
    }

    /// Money refuses to lose cents, to overflow the precision, or to take a non-ISO currency.
    #[test]
    fn refuses_what_the_contract_cannot_carry() {
        assert_eq!(
            Money::new(dec("1.00001"), "EUR"),
            Err(MoneyError::TooManyDecimals)
        );
        assert!(Money::new(dec("1.00010"), "EUR").is_ok());
        assert_eq!(
            Money::new(dec("100000000000000"), "EUR"),
            Err(MoneyError::TooLarge)
        );
        assert_eq!(Money::new(dec("1"), "eur"), Err(MoneyError::BadCurrency));
        assert_eq!(Money::new(dec("1"), "EURO"), Err(MoneyError::BadCurrency));
    }
}
