use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::domain::KeyRecord;

/// A username that passed the rules: 3–32 characters of ASCII letters, digits,
/// `-`, `_` and `.`. Parse, don't validate: holding one proves it is well formed,
/// which also makes it safe in logs, keys of stores and HTML attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if !(3..=32).contains(&n) {
            return Err("username must be 3 to 32 characters long".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("username may contain only letters, digits, '-', '_' and '.'".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by username can be searched with a plain `&str` (same Eq/Ord/Hash).
impl std::borrow::Borrow<str> for Username {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Username::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password that meets the policy (at least 8 characters, at most 1024 so
/// hashing cannot be abused). Deliberately not `Debug`-printable.
pub struct Password(String);

impl Password {
    pub fn parse(s: &str) -> Result<Self, String> {
        let n = s.chars().count();
        if n < 8 {
            return Err("password must be at least 8 characters long".into());
        }
        if s.len() > 1024 {
            return Err("password must be at most 1024 bytes long".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A session bearer token as handed to the client. Only its SHA-256 is stored,
/// so a copy of the data dir does not hand out live sessions.
pub struct SessionToken(pub String);

impl SessionToken {
    pub fn generate() -> Self {
        use base64::Engine;
        let bytes: [u8; 32] = rand::random();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }
}

/// An attendee account as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
    pub created_at: Millis,
    #[serde(default)]
    pub key: Option<KeyRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["abc", "a.b-c_d", "X1234567890123456789012345678901"] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "", "a b", "<script>", "ünï", "a/b", &"x".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(2000)).is_err());
    }
}
