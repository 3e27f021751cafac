//! The overlay: groups synced to the journal and not yet in redb, oldest first,
//! which reads merge with redb's blocks.
//!
//! The writer numbers records in commit order, so ids ascend across groups and
//! within each: lookups are binary searches over a queue of groups, and a
//! group enters and leaves as one shared vector (no allocation or tree node per
//! record on the hot path).

use std::collections::VecDeque;
use std::sync::Arc;

use hq_core::domain::Fulfillment;
use uuid::Uuid;

/// The records of one group, in id order.
pub(crate) type Records = Arc<Vec<Fulfillment>>;

#[derive(Default)]
pub(crate) struct Overlay {
    /// (group sequence, records), in sequence (and id) order.
    groups: VecDeque<(u64, Records)>,
    len: usize,
}

impl Overlay {
    /// Adds the newest group; its ids are above every id already here.
    pub(crate) fn push(&mut self, seq: u64, records: Records) {
        self.len += records.len();
        self.groups.push_back((seq, records));
    }

    /// Drops the groups up to and including `seq` (now in redb).
    pub(crate) fn applied(&mut self, seq: u64) {
        while let Some((s, records)) = self.groups.front() {
            if *s > seq {
                break;
            }
            self.len -= records.len();
            self.groups.pop_front();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn clear(&mut self) {
        self.groups.clear();
        self.len = 0;
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<&Fulfillment> {
        // The last group whose first id is not above `id`.
        let i = self
            .groups
            .partition_point(|(_, g)| g.first().is_some_and(|f| f.id <= id));
        let (_, group) = self.groups.get(i.checked_sub(1)?)?;
        let at = group.binary_search_by_key(&id, |f| f.id).ok()?;
        group.get(at)
    }

    /// The records with ids above `after` (all with `None`), in id order.
    pub(crate) fn after(&self, after: Option<Uuid>) -> impl Iterator<Item = &Fulfillment> {
        self.groups
            .iter()
            .flat_map(|(_, g)| g.iter())
            .skip_while(move |f| after.is_some_and(|a| f.id <= a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hq_core::domain::{Amounts, KeyId, Username};

    fn group(ids: &[u128]) -> Records {
        Arc::new(
            ids.iter()
                .map(|&i| Fulfillment {
                    id: Uuid::from_u128(i),
                    username: Username::parse("ann").unwrap(),
                    key_id: KeyId("k".into()),
                    at: 0,
                    amounts: Amounts {
                        iridium: 1,
                        magnesite: 0,
                    },
                    request_id: "r".into(),
                    trace_id: None,
                })
                .collect(),
        )
    }

    fn ids<'a>(it: impl Iterator<Item = &'a Fulfillment>) -> Vec<u128> {
        it.map(|f| f.id.as_u128()).collect()
    }

    #[test]
    fn finds_lists_and_drops_by_group() {
        let mut o = Overlay::default();
        o.push(1, group(&[10, 12, 14]));
        o.push(2, group(&[20]));
        o.push(3, group(&[30, 31]));
        assert_eq!(o.len(), 6);
        for id in [10, 12, 14, 20, 30, 31] {
            assert_eq!(o.get(Uuid::from_u128(id)).map(|f| f.id.as_u128()), Some(id));
        }
        for id in [1, 11, 15, 25, 32] {
            assert!(o.get(Uuid::from_u128(id)).is_none(), "{id}");
        }
        assert_eq!(ids(o.after(None)), vec![10, 12, 14, 20, 30, 31]);
        assert_eq!(
            ids(o.after(Some(Uuid::from_u128(13)))),
            vec![14, 20, 30, 31]
        );
        assert_eq!(ids(o.after(Some(Uuid::from_u128(20)))), vec![30, 31]);
        o.applied(2);
        assert_eq!((o.len(), ids(o.after(None))), (2, vec![30, 31]));
        assert!(o.get(Uuid::from_u128(12)).is_none());
        o.applied(3);
        assert!(o.is_empty());
    }
}
