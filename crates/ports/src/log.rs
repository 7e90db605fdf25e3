//! The message log port: every chat, one-to-one or group, stored once with its
//! place (`seq`) in its conversation, the recipients' cursors, resume tokens,
//! and retention. The service's delivery guarantee rests on it (ARCHITECTURE.md,
//! "The message log"); adapters are `chat-model` (SQL) and [`crate::memory`].

use async_trait::async_trait;
use chat_proto::{ConvId, HistoryFrom, UserId};

use crate::StoreError;

/// A chat to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its conversation. The caller has checked that its users (or its group) exist; the
    /// conversation's first message creates it.
    pub conv: ConvId,
    /// Who sent it (the session's user).
    pub sender: UserId,
    /// The sender's name, as pushes carry it.
    pub sender_name: String,
    /// The client's own id for it: a second message with the same sender and `cid` is a duplicate.
    pub cid: Option<String>,
    /// The text.
    pub body: String,
    /// When the server accepted it, unix milliseconds.
    pub created_at: i64,
}

/// A message as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedMessage {
    /// Its id, unique in the log; within a conversation it grows with `seq`.
    pub mid: i64,
    /// Its conversation.
    pub conv: ConvId,
    /// Its place in the conversation: 1, 2, 3, … with no gaps (until retention removes old ones).
    pub seq: i64,
    /// Who sent it.
    pub sender: UserId,
    /// The sender's name.
    pub sender_name: String,
    /// The text.
    pub body: String,
    /// When it was accepted, unix milliseconds.
    pub created_at: i64,
}

/// What [`Log::append`] did with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The stored message: the new one, or for a duplicate the one stored first.
    pub message: LoggedMessage,
    /// The sender had sent this `cid` before: nothing new was stored.
    pub duplicate: bool,
}

/// One conversation of a user: how far it goes and how far the user acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvState {
    /// The conversation.
    pub conv: ConvId,
    /// Its newest seq (0: no message yet).
    pub last_seq: i64,
    /// The user's cursor: everything up to it was acknowledged (0: nothing).
    pub cursor: i64,
}

/// One user's marks in a conversation (issue 20): how far it read, how far it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Marks {
    /// The conversation.
    pub conv: ConvId,
    /// The user.
    pub user: UserId,
    /// Its read mark (0: none).
    pub read: i64,
    /// Its cursor (0: none).
    pub recv: i64,
}

/// The message log, cursors and resume tokens.
#[async_trait]
pub trait Log: Send + Sync + 'static {
    /// Appends `batch` in one transaction, in order: each new message gets the next seq of
    /// its conversation. A message whose `(sender, cid)` was stored before (or earlier in
    /// the batch) is a duplicate and stores nothing. The answer is in `batch`'s order.
    async fn append(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;

    /// `user`'s conversations (one-to-one ones with any message, and their groups'),
    /// with the newest seq and the user's cursor.
    async fn conversations(&self, user: UserId) -> Result<Vec<ConvState>, StoreError>;

    /// The newest seq of `conv` (0 if it has none or does not exist).
    async fn last_seq(&self, conv: ConvId) -> Result<i64, StoreError>;

    /// Messages with a seq above the given one in each conversation, by `mid` (oldest
    /// first), at most `limit`. Conversations not listed are not read.
    async fn after(&self, from: &[(ConvId, i64)], limit: usize) -> Result<Vec<LoggedMessage>, StoreError>;

    /// How many messages from others than `user` each conversation holds above the given seq
    /// (conversations with none may be left out).
    async fn unread(&self, user: UserId, from: &[(ConvId, i64)]) -> Result<Vec<(ConvId, u64)>, StoreError>;

    /// A page of `conv`: the newest `limit` messages, or those just before or after a `mid`;
    /// oldest first either way.
    async fn history(
        &self,
        conv: ConvId,
        from: HistoryFrom,
        limit: usize,
    ) -> Result<Vec<LoggedMessage>, StoreError>;

    /// Moves cursors forward (never back): `(user, conv, seq)`.
    async fn save_cursors(&self, cursors: &[(UserId, ConvId, i64)]) -> Result<(), StoreError>;

    /// Keeps a resume token (its hash) for `user` until `expires_at` (unix ms).
    async fn put_token(&self, hash: &str, user: UserId, expires_at: i64) -> Result<(), StoreError>;

    /// The user of an unexpired token, if any; `now` in unix ms.
    async fn token_user(&self, hash: &str, now: i64) -> Result<Option<UserId>, StoreError>;

    /// Forgets a token (logout), and the session's own cursors.
    async fn drop_token(&self, hash: &str) -> Result<(), StoreError>;

    /// Forgets every token of `user` and their sessions' cursors ("log out everywhere").
    async fn drop_tokens_of(&self, user: UserId) -> Result<(), StoreError>;

    /// Moves sessions' own cursors forward (never back): `(token hash, conv, seq)`. Conv 0
    /// is the marker that a session keeps cursors of its own (written at its login).
    async fn save_session_cursors(&self, cursors: &[(String, ConvId, i64)]) -> Result<(), StoreError>;

    /// The periodic flush: users' cursors and sessions' own cursors moved forward together,
    /// in one transaction where the backend can (one commit, not two). Cursors are written
    /// lazily by design (a crash costs redelivery of what they had not saved yet), so a
    /// backend may commit them without waiting for the disk.
    async fn save_all_cursors(
        &self,
        users: &[(UserId, ConvId, i64)],
        sessions: &[(String, ConvId, i64)],
    ) -> Result<(), StoreError> {
        self.save_cursors(users).await?;
        self.save_session_cursors(sessions).await
    }

    /// A session's own cursors (its token's hash), without the marker; `None` if it has
    /// none (a token of a release that kept only the user's cursors).
    async fn session_cursors(&self, hash: &str) -> Result<Option<Vec<(ConvId, i64)>>, StoreError>;

    /// `user` has read `conv` up to `seq` (issue 20): the read mark becomes
    /// `max(mark, min(seq, last seq))`, never lower. Returns the mark before and after (0: none).
    async fn mark_read(&self, user: UserId, conv: ConvId, seq: i64) -> Result<(i64, i64), StoreError>;

    /// `user`'s read marks, every conversation it marked.
    async fn read_marks(&self, user: UserId) -> Result<Vec<(ConvId, i64)>, StoreError>;

    /// The read mark and cursor of each `(user, conversation)` asked: one entry per pair with
    /// either (the other is 0; pairs with neither are left out), in no particular order.
    async fn marks(&self, pairs: &[(UserId, ConvId)]) -> Result<Vec<Marks>, StoreError>;

    /// The distinct senders of `conv`'s messages with a seq in `(after, upto]`.
    async fn senders(&self, conv: ConvId, after: i64, upto: i64) -> Result<Vec<UserId>, StoreError>;

    /// Retention: deletes messages accepted before `older_than` (unix ms), and in each
    /// conversation all but the newest `keep_per_conv`; forgets tokens expired by `now`.
    /// Returns how many messages went.
    async fn purge(&self, older_than: i64, keep_per_conv: i64, now: i64) -> Result<u64, StoreError>;
}
