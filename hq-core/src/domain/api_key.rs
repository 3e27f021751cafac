use serde::{Deserialize, Serialize};

use crate::clock::{Millis, DAY_MS};

/// Keys live 30 days, as the original portal's "Days Left Before Expiration" said.
pub const KEY_LIFETIME_DAYS: i64 = 30;
/// API Gateway accepts keys of at least 20 characters; HQ issues 40.
pub const KEY_LEN: usize = 40;

/// An API key value. Not `Display`: the only way to print it is to mean it
/// (`expose`), so it does not slip into logs.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// 40 characters from the OS CSPRNG over an alphabet of 62 (≈238 bits).
    pub fn generate() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        use rand::TryRngCore;
        Self(Alphanumeric.sample_string(&mut rand::rngs::OsRng.unwrap_err(), KEY_LEN))
    }

    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// A public, loggable name of a key: what logs, records and the admin API show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(pub String);

impl KeyId {
    pub fn generate() -> Self {
        let b: [u8; 6] = rand::random();
        Self(format!(
            "key-{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key an attendee holds, as stored with their account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub id: KeyId,
    pub value: ApiKey,
    pub created_at: Millis,
    pub expires_at: Millis,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
    Expired,
}

impl KeyRecord {
    pub fn issue(now: Millis) -> Self {
        Self {
            id: KeyId::generate(),
            value: ApiKey::generate(),
            created_at: now,
            expires_at: now + KEY_LIFETIME_DAYS * DAY_MS,
            revoked: false,
        }
    }

    pub fn status(&self, now: Millis) -> KeyStatus {
        if self.revoked {
            KeyStatus::Revoked
        } else if now >= self.expires_at {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// Whole days left, rounded up, so a fresh key shows 30 and the last hours show 1.
    pub fn days_left(&self, now: Millis) -> i64 {
        let left = self.expires_at - now;
        if left <= 0 {
            0
        } else {
            (left + DAY_MS - 1) / DAY_MS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_40_alphanumerics_and_distinct() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_eq!(a.expose().len(), KEY_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "ApiKey(..)");
    }

    #[test]
    fn days_left_and_status() {
        let k = KeyRecord::issue(0);
        assert_eq!(k.days_left(0), 30);
        assert_eq!(k.days_left(1), 30);
        assert_eq!(k.days_left(DAY_MS), 29);
        assert_eq!(k.days_left(30 * DAY_MS - 1), 1);
        assert_eq!(k.days_left(30 * DAY_MS), 0);
        assert_eq!(k.status(30 * DAY_MS), KeyStatus::Expired);
        assert_eq!(k.status(0), KeyStatus::Active);
    }
}
