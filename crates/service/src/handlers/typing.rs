//! TYPING (58): forwarded, never stored, never answered (but refused like any request when
//! the conversation is not the user's). Rate-limited per session and conversation.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chat_proto::{Peer, UserId};

use crate::dispatch::{Conn, Reply};
use crate::{Service, ServiceError};

/// At most one "typing" forwarded per session and conversation in this time.
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(2);
/// Groups larger than this get no typing (each forward costs a push per member).
pub(crate) const TYPING_MAX_MEMBERS: usize = 100;
/// Conversations a session remembers typing in (older ones are forgotten first).
const TYPING_REMEMBERED: usize = 64;

/// A session's typing, per conversation: when it last forwarded "typing", and whether a
/// "paused" may follow (only after a forwarded "typing").
#[derive(Default)]
pub(crate) struct TypingState {
    last: HashMap<Peer, (Instant, bool)>,
}

impl TypingState {
    /// Whether this typing (`true`) or paused may be forwarded now.
    fn due(&self, peer: Peer, typing: bool, now: Instant) -> bool {
        match (self.last.get(&peer), typing) {
            (None, typing) => typing,
            (Some(&(at, _)), true) => now.duration_since(at) >= TYPING_EVERY,
            (Some(&(_, open)), false) => open,
        }
    }

    /// It was forwarded.
    fn forwarded(&mut self, peer: Peer, typing: bool, now: Instant) {
        if self.last.len() >= TYPING_REMEMBERED && !self.last.contains_key(&peer) {
            self.last.retain(|_, (at, _)| now.duration_since(*at) < TYPING_EVERY);
            if self.last.len() >= TYPING_REMEMBERED {
                self.last.clear();
            }
        }
        match self.last.get_mut(&peer) {
            Some(entry) if !typing => entry.1 = false,
            _ => {
                self.last.insert(peer, (now, true));
            }
        }
    }
}

impl Service {
    /// TYPING: tells the other user, or the group's other members, that the session's user is
    /// typing (or paused). Not to users who block it or (one-to-one) refuse its chats, not in
    /// groups of more than [`TYPING_MAX_MEMBERS`]; extras within [`TYPING_EVERY`] are dropped.
    pub(crate) async fn typing(
        &self,
        conn: &mut Conn,
        peer: Peer,
        typing: bool,
    ) -> Result<Reply, ServiceError> {
        let me = conn.user()?.clone();
        let now = Instant::now();
        if !conn.typing.due(peer, typing, now) {
            return Ok(Reply::Silent);
        }
        self.readable(&me, peer).await?;
        let to: Vec<UserId> = match peer {
            Peer::User(other) if other == me.id => Vec::new(),
            Peer::User(other) if self.may_tell(me.id, other).await? => vec![other],
            Peer::User(_) => Vec::new(),
            Peer::Group(group) => {
                let members = self.members(group).await?;
                if members.len() > TYPING_MAX_MEMBERS {
                    Vec::new()
                } else {
                    let blockers = self.control.blockers_of(me.id).await?;
                    members.iter().copied().filter(|m| *m != me.id && !blockers.contains(m)).collect()
                }
            }
        };
        conn.typing.forwarded(peer, typing, now);
        let group = match peer {
            Peer::Group(group) => Some(group),
            Peer::User(_) => None,
        };
        self.push_to(&to, &chat_proto::typing_push(group, me.id, typing), None).await;
        Ok(Reply::Silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_proto::GroupId;

    #[test]
    fn typing_is_rate_limited_and_paused_follows_typing() {
        let mut state = TypingState::default();
        let (a, g) = (Peer::User(UserId(2)), Peer::Group(GroupId(5)));
        let t0 = Instant::now();
        assert!(!state.due(a, false, t0), "paused before any typing is not forwarded");
        assert!(state.due(a, true, t0));
        state.forwarded(a, true, t0);
        assert!(!state.due(a, true, t0 + Duration::from_millis(1999)), "one typing per 2 s");
        assert!(state.due(g, true, t0), "per conversation");
        assert!(state.due(a, false, t0 + Duration::from_millis(10)));
        state.forwarded(a, false, t0 + Duration::from_millis(10));
        assert!(!state.due(a, false, t0 + Duration::from_millis(20)), "one paused per typing");
        assert!(!state.due(a, true, t0 + Duration::from_millis(30)), "paused does not reset the limit");
        assert!(state.due(a, true, t0 + TYPING_EVERY));
        for i in 0..200 {
            state.forwarded(Peer::User(UserId(100 + i)), true, t0);
        }
        assert!(state.last.len() <= TYPING_REMEMBERED, "bounded");
    }
}
