//! Slows down password guessing: after [`LoginLimiter::MAX_FAILURES`] failed
//! sign-ins for one username within a window, that username is locked for a while.
//! Counted per username whether or not it exists, so the lock tells nothing.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub struct LoginLimiter {
    state: Mutex<HashMap<String, Attempts>>,
    lock_for: Duration,
}

struct Attempts {
    failures: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl LoginLimiter {
    pub const MAX_FAILURES: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(300);
    const MAX_TRACKED: usize = 100_000;

    pub fn new(lock_for: Duration) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            lock_for,
        }
    }

    /// `Some(seconds)` while the username is locked.
    pub fn locked(&self, username: &str) -> Option<u64> {
        let now = Instant::now();
        let state = self.state.lock();
        let until = state.get(username)?.locked_until?;
        (until > now).then(|| (until - now).as_secs().max(1))
    }

    pub fn failed(&self, username: &str) {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.len() >= Self::MAX_TRACKED {
            state.retain(|_, a| {
                now.duration_since(a.first) < Self::WINDOW
                    || a.locked_until.is_some_and(|u| u > now)
            });
        }
        let a = state.entry(username.to_owned()).or_insert(Attempts {
            failures: 0,
            first: now,
            locked_until: None,
        });
        if now.duration_since(a.first) >= Self::WINDOW || a.locked_until.is_some_and(|u| u <= now) {
            *a = Attempts {
                failures: 0,
                first: now,
                locked_until: None,
            };
        }
        a.failures += 1;
        if a.failures >= Self::MAX_FAILURES {
            a.locked_until = Some(now + self.lock_for);
        }
    }

    pub fn succeeded(&self, username: &str) {
        self.state.lock().remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures() {
        let l = LoginLimiter::new(Duration::from_secs(60));
        for _ in 0..4 {
            l.failed("ann");
            assert!(l.locked("ann").is_none());
        }
        l.failed("ann");
        assert!(l.locked("ann").unwrap() <= 60);
        assert!(l.locked("bob").is_none());
    }
}
