//! The body of a fulfillment: `{"iridium": 1, "magnesite": 0}`.
//!
//! Parsed in one pass straight from the request bytes, without building a JSON
//! tree, because this runs on every request of the hot path. Every way a body can
//! be wrong has its own [`AmountsError`], so the 400 names the problem.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The largest amount of one resource a single fulfillment may carry.
pub const MAX_AMOUNT: u32 = 1000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amounts {
    pub iridium: u32,
    pub magnesite: u32,
}

/// Why a body was refused. `code` is the machine-readable name in the 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountsError {
    EmptyBody,
    MalformedJson(String),
    NotAnObject,
    UnknownResource(String),
    DuplicateResource(&'static str),
    InvalidAmount(&'static str),
    AmountTooLarge(&'static str),
    NothingFulfilled,
}

impl AmountsError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyBody => "empty_body",
            Self::MalformedJson(_) => "malformed_json",
            Self::NotAnObject => "not_an_object",
            Self::UnknownResource(_) => "unknown_resource",
            Self::DuplicateResource(_) => "duplicate_resource",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::AmountTooLarge(_) => "amount_too_large",
            Self::NothingFulfilled => "nothing_fulfilled",
        }
    }
}

impl fmt::Display for AmountsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyBody => write!(f, "the request body is empty; expected a JSON object such as {{\"iridium\": 1, \"magnesite\": 1}}"),
            Self::MalformedJson(e) => write!(f, "the request body is not valid JSON: {e}"),
            Self::NotAnObject => write!(f, "the request body must be a JSON object such as {{\"iridium\": 1, \"magnesite\": 1}}"),
            Self::UnknownResource(name) => {
                let shown: String = name.chars().take(40).collect();
                write!(f, "unknown resource {shown:?}; only \"iridium\" and \"magnesite\" can be fulfilled")
            }
            Self::DuplicateResource(r) => write!(f, "resource \"{r}\" appears more than once"),
            Self::InvalidAmount(r) => write!(f, "amount of \"{r}\" must be a non-negative integer or a string of digits"),
            Self::AmountTooLarge(r) => write!(f, "amount of \"{r}\" is over the limit of {MAX_AMOUNT}"),
            Self::NothingFulfilled => write!(f, "at least one of \"iridium\" and \"magnesite\" must be positive"),
        }
    }
}

impl std::error::Error for AmountsError {}

impl Amounts {
    /// Parses a request body, whatever its Content-Type said.
    pub fn parse(body: &[u8]) -> Result<Amounts, AmountsError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(AmountsError::EmptyBody);
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = de
            .deserialize_any(BodyVisitor)
            .and_then(|r| de.end().map(|_| r))
            .map_err(|e| AmountsError::MalformedJson(e.to_string()))?;
        let amounts = parsed?;
        if amounts.iridium == 0 && amounts.magnesite == 0 {
            return Err(AmountsError::NothingFulfilled);
        }
        Ok(amounts)
    }
}

type Outcome = Result<Amounts, AmountsError>;

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Outcome;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Outcome, A::Error> {
        let mut out = Amounts::default();
        let (mut seen_i, mut seen_m) = (false, false);
        let mut problem: Option<AmountsError> = None;
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            let (name, slot, seen) = match field {
                Field::Iridium => ("iridium", &mut out.iridium, &mut seen_i),
                Field::Magnesite => ("magnesite", &mut out.magnesite, &mut seen_m),
                Field::Other(name) => {
                    map.next_value::<IgnoredAny>()?;
                    problem.get_or_insert(AmountsError::UnknownResource(name));
                    continue;
                }
            };
            let value = map.next_value_seed(AmountSeed(name))?;
            if std::mem::replace(seen, true) {
                problem.get_or_insert(AmountsError::DuplicateResource(name));
            }
            match value {
                Ok(v) => *slot = v,
                Err(e) => {
                    problem.get_or_insert(e);
                }
            }
        }
        Ok(match problem {
            Some(p) => Err(p),
            None => Ok(out),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Outcome, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err(AmountsError::NotAnObject))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
    fn visit_str<E>(self, _: &str) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
    fn visit_unit<E>(self) -> Result<Outcome, E> {
        Ok(Err(AmountsError::NotAnObject))
    }
}

enum Field {
    Iridium,
    Magnesite,
    Other(String),
}

/// Reads an object key without allocating for the two names we know.
struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a resource name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "iridium" => Field::Iridium,
            "magnesite" => Field::Magnesite,
            other => Field::Other(other.chars().take(64).collect()),
        })
    }
}

/// Reads one amount: a non-negative integer, or a string of digits.
struct AmountSeed(&'static str);

impl<'de> DeserializeSeed<'de> for AmountSeed {
    type Value = Result<u32, AmountsError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl AmountSeed {
    fn bounded(&self, v: u64) -> Result<u32, AmountsError> {
        if v > MAX_AMOUNT as u64 {
            Err(AmountsError::AmountTooLarge(self.0))
        } else {
            Ok(v as u32)
        }
    }
    fn invalid(&self) -> Result<u32, AmountsError> {
        Err(AmountsError::InvalidAmount(self.0))
    }
}

impl<'de> Visitor<'de> for AmountSeed {
    type Value = Result<u32, AmountsError>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an amount")
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(self.bounded(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v < 0 {
            self.invalid()
        } else {
            self.bounded(v as u64)
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        // Fractions, exponents and integers too large for u64 all arrive here.
        Ok(self.invalid())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(self.invalid());
        }
        let significant = v.trim_start_matches('0');
        if significant.len() > 4 {
            return Ok(Err(AmountsError::AmountTooLarge(self.0)));
        }
        Ok(self.bounded(significant.parse::<u64>().unwrap_or(0)))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self.invalid())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self.invalid())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.invalid())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Amounts {
        Amounts::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
    }
    fn err(body: &str) -> &'static str {
        Amounts::parse(body.as_bytes()).expect_err(body).code()
    }

    #[test]
    fn accepts_what_the_attendees_send() {
        assert_eq!(
            ok(r#"{"iridium": 1, "magnesite": 1}"#),
            Amounts {
                iridium: 1,
                magnesite: 1
            }
        );
        assert_eq!(
            ok(r#"{"iridium": 1, "magnesite": 0}"#),
            Amounts {
                iridium: 1,
                magnesite: 0
            }
        );
        assert_eq!(
            ok(r#"{"magnesite": "7"}"#),
            Amounts {
                iridium: 0,
                magnesite: 7
            }
        );
        assert_eq!(ok(r#" {"iridium":"0001000"} "#).iridium, 1000);
        assert_eq!(ok(r#"{"iridium":1000}"#).iridium, 1000);
    }

    #[test]
    fn names_every_problem() {
        assert_eq!(err(""), "empty_body");
        assert_eq!(err("  \n"), "empty_body");
        assert_eq!(err("{"), "malformed_json");
        assert_eq!(err("{\"iridium\":1} x"), "malformed_json");
        assert_eq!(err("[1]"), "not_an_object");
        assert_eq!(err("\"iridium\""), "not_an_object");
        assert_eq!(err("null"), "not_an_object");
        assert_eq!(err("42"), "not_an_object");
        assert_eq!(err(r#"{"gold":1}"#), "unknown_resource");
        assert_eq!(err(r#"{"iridium":1,"iridium":2}"#), "duplicate_resource");
        assert_eq!(err(r#"{"iridium":-1}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":1.5}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":1.0}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":1e2}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":"1.5"}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":"-1"}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":""}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":true}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":null}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":[1]}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":{"a":1}}"#), "invalid_amount");
        assert_eq!(err(r#"{"iridium":1001}"#), "amount_too_large");
        assert_eq!(
            err(r#"{"iridium":"99999999999999999999999"}"#),
            "amount_too_large"
        );
        assert_eq!(
            err(r#"{"iridium":99999999999999999999999}"#),
            "invalid_amount"
        );
        assert_eq!(err(r#"{"iridium":0,"magnesite":"0"}"#), "nothing_fulfilled");
        assert_eq!(err("{}"), "nothing_fulfilled");
    }

    #[test]
    fn long_unknown_names_are_cut_in_the_message() {
        let body = format!("{{\"{}\":1}}", "a".repeat(5000));
        let e = Amounts::parse(body.as_bytes()).unwrap_err();
        assert!(e.to_string().len() < 200);
    }
}
