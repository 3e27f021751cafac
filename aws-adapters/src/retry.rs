//! Retrying throttled calls: exponential backoff with full jitter, bounded.
//!
//! The SDK's own retry (standard mode, see [`crate::clients`]) already retries
//! throttling of single calls a few times. This is for the calls where a few is
//! not enough: API Gateway allows 5 `CreateApiKey` per second per account, so when
//! a whole room signs up in the same minute, each call must keep trying (spread
//! out by jitter, so retries do not collide again) until its turn comes.

use std::future::Future;
use std::time::Duration;

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Backoff {
    /// For API Gateway's key calls: up to 12 attempts, 200 ms doubling to 4 s,
    /// about 25 s at worst — inside the portal Lambda's timeout, and enough for
    /// a room of a hundred people signing up at the same moment (100 keys at 5/s).
    pub const GATEWAY: Backoff = Backoff {
        first: Duration::from_millis(200),
        max_delay: Duration::from_secs(4),
        max_attempts: 12,
    };

    /// For DynamoDB transaction conflicts (two writes on one attendee's totals).
    pub const TRANSACTION: Backoff = Backoff {
        first: Duration::from_millis(20),
        max_delay: Duration::from_millis(500),
        max_attempts: 8,
    };

    /// The delay before retry number `retry` (0-based): uniform in
    /// `[0, min(max_delay, first * 2^retry)]` ("full jitter").
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = self
            .first
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let ms = cap.as_millis() as u64;
        Duration::from_millis(if ms == 0 {
            0
        } else {
            rand::random_range(0..=ms)
        })
    }
}

/// Calls `op` until it succeeds, fails with an error `retryable` says is not
/// worth retrying, or runs out of attempts (then answers the last error).
pub async fn retry<T, E, F, Fut>(
    backoff: Backoff,
    retryable: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && attempt + 1 < backoff.max_attempts => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn delays_grow_capped_and_jittered() {
        let b = Backoff::GATEWAY;
        for retry in 0..40 {
            let d = b.delay(retry);
            let cap = (200u64 << retry.min(20)).min(4000);
            assert!(d.as_millis() as u64 <= cap, "retry {retry}: {d:?}");
        }
        // Jitter: many draws at one step are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| b.delay(3)).collect();
        assert!(draws.len() > 5);
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
        max_attempts: 12,
    };

    #[tokio::test]
    async fn retries_throttling_until_success_and_stops_on_other_errors() {
        let calls = AtomicU32::new(0);
        let out: Result<u32, &str> = retry(
            FAST,
            |e| *e == "throttled",
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 5 {
                    Err("throttled")
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(out, Ok(5));

        let calls = AtomicU32::new(0);
        let out: Result<u32, &str> = retry(
            FAST,
            |e| *e == "throttled",
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("denied")
            },
        )
        .await;
        assert_eq!((out, calls.load(Ordering::SeqCst)), (Err("denied"), 1));

        let calls = AtomicU32::new(0);
        let out: Result<u32, &str> = retry(
            FAST,
            |_| true,
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("throttled")
            },
        )
        .await;
        assert_eq!((out, calls.load(Ordering::SeqCst)), (Err("throttled"), 12));
    }
}
