//! The routing rules as pure decisions over operators' loads (CH-03, CH-04, CH-06).
//!
//! No store, no clock: the writer reads the loads inside its transaction, asks here whom to
//! offer a chat to, and records the answer. Keeping the rules pure makes them testable as
//! tables.

use crate::store::chat::{OperatorLoad, OperatorStatus};

/// Whether an operator may receive a new chat: active, and below the capacity
/// (`Settings.chat.simultaneousChats`) counting active chats and exclusive assignments
/// across all queues (CH-06).
pub fn has_room(load: &OperatorLoad, capacity: u32) -> bool {
    load.status == OperatorStatus::Active && load.in_work < capacity
}

/// leastBusy (CH-04): the operator with room and the fewest chats in work; on a tie the one
/// who has gone longest without taking a chat (never counts as longest), then by name so the
/// choice is deterministic. Returns an index into `loads`.
pub fn least_busy(loads: &[OperatorLoad], capacity: u32) -> Option<usize> {
    loads
        .iter()
        .enumerate()
        .filter(|(_, l)| has_room(l, capacity))
        .min_by(|(_, a), (_, b)| {
            (a.in_work, a.last_assigned_at, &a.name).cmp(&(b.in_work, b.last_assigned_at, &b.name))
        })
        .map(|(i, _)| i)
}

/// toAll (CH-03): every operator with room.
pub fn to_all(loads: &[OperatorLoad], capacity: u32) -> impl Iterator<Item = &OperatorLoad> {
    loads.iter().filter(move |l| has_room(l, capacity))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;

    fn load(name: &str, active: bool, in_work: u32, last: Option<i64>) -> OperatorLoad {
        OperatorLoad {
            name: name.into(),
            status: if active {
                OperatorStatus::Active
            } else {
                OperatorStatus::Inactive
            },
            in_work,
            last_assigned_at: last.map(|s| DateTime::<Utc>::from_timestamp(s, 0).expect("ts")),
        }
    }

    fn pick(loads: &[OperatorLoad], capacity: u32) -> Option<&str> {
        least_busy(loads, capacity).map(|i| loads[i].name.as_str())
    }

    #[test]
    fn least_busy_picks_the_operator_with_the_fewest_chats_in_work() {
        // REQ: CH-04
        let loads = [load("ann", true, 1, None), load("bob", true, 0, Some(100))];
        assert_eq!(pick(&loads, 2), Some("bob"));
    }

    #[test]
    fn least_busy_tie_goes_to_longest_idle() {
        // REQ: CH-04
        let loads = [
            load("ann", true, 1, Some(200)),
            load("bob", true, 1, Some(100)),
            load("cid", true, 1, Some(300)),
        ];
        assert_eq!(pick(&loads, 2), Some("bob"));
        let never = [load("ann", true, 0, Some(1)), load("bob", true, 0, None)];
        assert_eq!(
            pick(&never, 2),
            Some("bob"),
            "never took a chat = longest idle"
        );
    }

    #[test]
    fn inactive_and_full_operators_get_nothing() {
        // REQ: CH-04, CH-06
        let loads = [load("ann", false, 0, None), load("bob", true, 2, None)];
        assert_eq!(pick(&loads, 2), None);
        assert_eq!(to_all(&loads, 2).count(), 0);
        assert_eq!(pick(&loads, 3), Some("bob"), "capacity is the setting");
    }

    #[test]
    fn to_all_offers_everyone_with_room() {
        // REQ: CH-03, CH-06
        let loads = [
            load("ann", true, 0, None),
            load("bob", true, 2, None),
            load("cid", true, 1, None),
            load("dan", false, 0, None),
        ];
        let names: Vec<&str> = to_all(&loads, 2).map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["ann", "cid"]);
    }
}
