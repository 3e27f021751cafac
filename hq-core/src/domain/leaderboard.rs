//! Per-attendee running totals and the leaderboard built from them.
//!
//! Totals are kept up to date with every accepted fulfillment (in the same write),
//! so the leaderboard costs one read per attendee, however many records exist.

use serde::{Deserialize, Serialize};

use crate::clock::{minute_of, rfc3339, Millis};
use crate::domain::{Amounts, Username};

/// The leaderboard's per-minute chart covers the last hour.
pub const WINDOW_MINUTES: usize = 60;

/// Running totals of one attendee. `minutes` holds `(minute since the epoch,
/// fulfillments in it)` for recent minutes, oldest first; stores may keep it
/// elsewhere (the embedded store keeps one row per minute) and fill it on read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserTotals {
    pub username: Username,
    pub total: u64,
    pub iridium: u64,
    pub magnesite: u64,
    pub last_fulfilled_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minutes: Vec<(i64, u32)>,
}

impl UserTotals {
    pub fn new(username: Username) -> Self {
        Self {
            username,
            total: 0,
            iridium: 0,
            magnesite: 0,
            last_fulfilled_at: None,
            minutes: Vec::new(),
        }
    }

    /// Counts one accepted fulfillment in the totals, not in `minutes`.
    pub fn count(&mut self, amounts: Amounts, at: Millis) {
        self.total += 1;
        self.iridium += amounts.iridium as u64;
        self.magnesite += amounts.magnesite as u64;
        self.last_fulfilled_at = Some(self.last_fulfilled_at.map_or(at, |l| l.max(at)));
    }

    /// Counts one accepted fulfillment, including its minute; keeps only the window.
    pub fn add(&mut self, amounts: Amounts, at: Millis) {
        self.count(amounts, at);
        let m = minute_of(at);
        match self.minutes.iter_mut().rev().find(|(sm, _)| *sm == m) {
            Some((_, c)) => *c += 1,
            None => {
                self.minutes.push((m, 1));
                self.minutes.sort_unstable_by_key(|(sm, _)| *sm);
            }
        }
        let newest = self.minutes.last().map_or(m, |(sm, _)| *sm);
        self.minutes
            .retain(|(sm, _)| *sm > newest - WINDOW_MINUTES as i64);
    }

    /// Counts per minute for the hour ending with the minute of `now`, oldest first.
    pub fn per_minute(&self, now: Millis) -> Vec<u32> {
        let first = minute_of(now) - (WINDOW_MINUTES as i64 - 1);
        let mut out = vec![0; WINDOW_MINUTES];
        for &(m, c) in &self.minutes {
            if let Some(slot) = usize::try_from(m - first).ok().and_then(|i| out.get_mut(i)) {
                *slot += c;
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderboardEntry {
    pub rank: usize,
    pub username: Username,
    pub total: u64,
    pub iridium: u64,
    pub magnesite: u64,
    pub last_fulfilled_at: Option<String>,
    pub per_minute: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Leaderboard {
    pub generated_at: String,
    pub entries: Vec<LeaderboardEntry>,
}

impl Leaderboard {
    /// Ranks by total, then by who got there first, then by name.
    pub fn build(mut totals: Vec<UserTotals>, now: Millis) -> Self {
        totals.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then(a.last_fulfilled_at.cmp(&b.last_fulfilled_at))
                .then(a.username.cmp(&b.username))
        });
        let entries = totals
            .into_iter()
            .enumerate()
            .map(|(i, t)| LeaderboardEntry {
                rank: i + 1,
                per_minute: t.per_minute(now),
                last_fulfilled_at: t.last_fulfilled_at.map(rfc3339),
                username: t.username,
                total: t.total,
                iridium: t.iridium,
                magnesite: t.magnesite,
            })
            .collect();
        Self {
            generated_at: rfc3339(now),
            entries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn per_minute_window_slides() {
        let mut t = UserTotals::new(u("ann"));
        let a = Amounts {
            iridium: 1,
            magnesite: 2,
        };
        t.add(a, 0);
        t.add(a, 30_000);
        t.add(a, 60_000 * 59);
        let pm = t.per_minute(60_000 * 59 + 1);
        assert_eq!(pm.len(), 60);
        assert_eq!(pm[0], 2);
        assert_eq!(pm[59], 1);
        // An hour later minute 0 has left the window.
        let pm = t.per_minute(60_000 * 60);
        assert_eq!(pm[0..58].iter().sum::<u32>(), 0);
        assert_eq!(pm[58], 1);
        t.add(a, 60_000 * 60);
        assert_eq!(t.per_minute(60_000 * 60)[59], 1);
        assert_eq!((t.total, t.iridium, t.magnesite), (4, 4, 8));
    }

    #[test]
    fn ranking() {
        let mut a = UserTotals::new(u("ann"));
        let mut b = UserTotals::new(u("bob"));
        let c = UserTotals::new(u("cat"));
        a.add(
            Amounts {
                iridium: 1,
                magnesite: 0,
            },
            10,
        );
        b.add(
            Amounts {
                iridium: 1,
                magnesite: 0,
            },
            5,
        );
        b.add(
            Amounts {
                iridium: 1,
                magnesite: 0,
            },
            6,
        );
        let lb = Leaderboard::build(vec![c, a, b], 100);
        let names: Vec<_> = lb.entries.iter().map(|e| e.username.as_str()).collect();
        assert_eq!(names, ["bob", "ann", "cat"]);
        assert_eq!(lb.entries[0].rank, 1);
    }
}
