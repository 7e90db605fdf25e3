//! What the console says about read receipts and typing (issue 20), briefly: the names of
//! the users it has seen (so that `[bob read up to 17]` needs no request), and what it told
//! already (so that a burst of typing is one line and a receipt is told once).
//!
//! Pure: the console feeds it frames and the time and prints what it returns.

use std::collections::HashMap;
use std::time::Duration;

use chat_proto::{GroupId, Peer, UserId};
use tokio::time::Instant;

use crate::format::clean;
use crate::incoming::Lists;

/// A "typing" not refreshed within this long has ended (senders refresh every 3 s).
pub const TYPING_SHOWN_FOR: Duration = Duration::from_secs(6);

/// Names seen, and what was told.
#[derive(Debug, Default)]
pub struct Notes {
    names: HashMap<UserId, String>,
    /// Per typer and conversation: until when its "typing" counts as told.
    typing: HashMap<(UserId, Option<GroupId>), Instant>,
    /// Per reader and conversation: the highest read seq told.
    read: HashMap<(UserId, Peer), i64>,
}

impl Notes {
    /// `id` is called `name`.
    pub fn learn(&mut self, id: UserId, name: &str) {
        if !name.is_empty() {
            self.names.insert(id, name.to_owned());
        }
    }

    /// The names in the friend and group lists.
    pub fn learn_lists(&mut self, lists: &Lists) {
        for f in &lists.friends {
            self.learn(f.id, &f.name);
        }
        for m in lists.groups.iter().flat_map(|g| &g.members) {
            self.learn(m.id, &m.name);
        }
    }

    /// `id`'s name if known, else `user <id>`.
    pub fn name(&self, id: UserId) -> String {
        self.names.get(&id).cloned().unwrap_or_else(|| format!("user {id}"))
    }

    /// A RECEIPT for `me`: a line for another user's "read" that moved past what was told.
    /// "recv" receipts and the user's own marks (from its other devices) are not told.
    pub fn receipt(
        &mut self,
        me: UserId,
        peer: Peer,
        reader: UserId,
        seq: i64,
        read: bool,
    ) -> Option<String> {
        if !read || reader == me {
            return None;
        }
        let told = self.read.entry((reader, peer)).or_insert(0);
        if seq <= *told {
            return None;
        }
        *told = seq;
        self.typing.retain(|(typer, _), _| *typer != reader);
        let who = clean(&self.name(reader));
        Some(match peer {
            Peer::User(_) => format!("[{who} read up to {seq}]"),
            Peer::Group(group) => format!("[{who} read up to {seq} in group {group}]"),
        })
    }

    /// A TYPING: a line at the start of a burst; nothing while it is refreshed, nothing for
    /// "paused" (the line says no more than that the user was typing).
    pub fn typing(
        &mut self,
        id: UserId,
        group: Option<GroupId>,
        typing: bool,
        now: Instant,
    ) -> Option<String> {
        if !typing {
            self.typing.remove(&(id, group));
            return None;
        }
        let until = now + TYPING_SHOWN_FOR;
        let told = self.typing.insert((id, group), until).is_some_and(|was| was > now);
        if told {
            return None;
        }
        let who = clean(&self.name(id));
        Some(match group {
            None => format!("{who} is typing…"),
            Some(group) => format!("{who} is typing in group {group}…"),
        })
    }

    /// A chat from `id` ends its typing.
    pub fn spoke(&mut self, id: UserId) {
        self.typing.retain(|(typer, _), _| *typer != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_are_told_once_and_briefly() {
        let mut n = Notes::default();
        let (me, bob) = (UserId(1), UserId(2));
        n.learn(bob, "bob");
        assert_eq!(n.receipt(me, Peer::User(bob), bob, 17, true).as_deref(), Some("[bob read up to 17]"));
        assert_eq!(n.receipt(me, Peer::User(bob), bob, 17, true), None, "told once");
        assert_eq!(n.receipt(me, Peer::User(bob), bob, 18, false), None, "recv is not told");
        assert_eq!(n.receipt(me, Peer::User(bob), me, 20, true), None, "nor my own devices' marks");
        assert_eq!(
            n.receipt(me, Peer::Group(GroupId(5)), UserId(9), 3, true).as_deref(),
            Some("[user 9 read up to 3 in group 5]")
        );
    }

    #[test]
    fn typing_is_one_line_per_burst() {
        let mut n = Notes::default();
        let bob = UserId(2);
        n.learn(bob, "bob");
        let t0 = Instant::now();
        assert_eq!(n.typing(bob, None, true, t0).as_deref(), Some("bob is typing…"));
        assert_eq!(n.typing(bob, None, true, t0 + Duration::from_secs(3)), None, "refreshed");
        assert_eq!(n.typing(bob, None, true, t0 + Duration::from_secs(8)), None, "still refreshed in time");
        assert!(n.typing(bob, None, true, t0 + Duration::from_secs(17)).is_some(), "expired: a new burst");
        assert_eq!(n.typing(bob, None, false, t0 + Duration::from_secs(18)), None);
        assert!(n.typing(bob, None, true, t0 + Duration::from_secs(19)).is_some(), "after paused");
        n.spoke(bob);
        assert_eq!(
            n.typing(bob, Some(GroupId(5)), true, t0 + Duration::from_secs(20)).as_deref(),
            Some("bob is typing in group 5…")
        );
    }
}
