//! Wire types of the chat protocol, shared by server and client.
//!
//! This crate knows the JSON shapes of ORIGINAL.md §(a) and of our opt-in
//! extension (docs/PROTOCOL.md). It does no I/O and knows nothing of framing:
//! `chat-net` cuts the byte stream into frames, this crate turns one frame
//! into a typed [`Request`] and typed replies into compact JSON.

mod ids;
mod reply;
mod request;

pub use ids::{ConvId, GroupId, Peer, UserId};
pub use reply::{
    Ack, ChatPush, ErrorCode, FriendEntry, GroupChatPush, GroupEntry, LoginOk, MemberEntry, Notice,
    PeerReads, ReadState, Role, Unread, ack_error, ack_with_resume, blocked_ack, encode, event, find_user_ok,
    history_ack, list_ack, ping, presence_push, reads_ack, receipt_push, reg_ok, requests_ack, typing_push,
};
pub use request::{DecodeError, HistoryFrom, Request, decode_request};

/// Numeric message ids. 1–10 are the original's `EnMsgType`; 11–20 and 30–58 are the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgId {
    /// Client asks to log in.
    Login = 1,
    /// Server answers a login.
    LoginAck = 2,
    /// Client logs out (no reply in the original).
    Loginout = 3,
    /// Client registers a new account.
    Reg = 4,
    /// Server answers a registration.
    RegAck = 5,
    /// One-to-one chat, client to server and forwarded to the recipient.
    OneChat = 6,
    /// Add a friend (no reply in the original).
    AddFriend = 7,
    /// Create a group (no reply in the original).
    CreateGroup = 8,
    /// Join a group (no reply in the original).
    AddGroup = 9,
    /// Group chat, client to server and forwarded to the members.
    GroupChat = 10,
    /// Extension: the outcome of a request that has no ack of its own.
    Ack = 11,
    /// Extension: server asks an extension client whether it is alive.
    Ping = 12,
    /// Extension: client answers a ping.
    Pong = 13,
    /// Extension: server tells an extension client something about the connection.
    Notice = 14,
    /// Extension: client asks for its friend and group lists again.
    List = 15,
    /// Extension: server answers LIST with the lists.
    ListAck = 16,
    /// Extension: a reconnecting client takes up its session with a resume token.
    Resume = 17,
    /// Extension: the client has received a conversation's messages up to a seq.
    Received = 18,
    /// Extension: client asks for a page of a conversation's history.
    History = 19,
    /// Extension: server answers HISTORY.
    HistoryAck = 20,
    /// Extension (users in control): block a user.
    Block = 30,
    /// Extension: unblock a user.
    Unblock = 31,
    /// Extension: the blocked users and the "who may write to me" setting.
    Blocked = 32,
    /// Extension: server answers BLOCKED.
    BlockedAck = 33,
    /// Extension: who may write to me (`anyone` or `friends`).
    SetWriters = 34,
    /// Extension: ask a user to be friends.
    FriendRequest = 35,
    /// Extension: accept or decline a friend request.
    FriendAnswer = 36,
    /// Extension: end a friendship (both ways).
    RemoveFriend = 37,
    /// Extension: the friend requests waiting for me and those I sent.
    FriendRequests = 38,
    /// Extension: server answers FRIEND_REQUESTS.
    FriendRequestsAck = 39,
    /// Extension: leave a group.
    LeaveGroup = 40,
    /// Extension: remove a member from a group (owner and admins).
    Kick = 41,
    /// Extension: rename a group or change its description (owner and admins).
    EditGroup = 42,
    /// Extension: delete a group (owner).
    DeleteGroup = 43,
    /// Extension: name or unname a group admin (owner).
    SetAdmin = 44,
    /// Extension: change my password.
    ChangePassword = 45,
    /// Extension: delete my account.
    DeleteAccount = 46,
    /// Extension: server tells a client that something changed (a friend request, a member
    /// removed, a group renamed, ...).
    Event = 47,
    /// Extension: client looks a user up by exact name.
    FindUser = 50,
    /// Extension: server answers FIND_USER.
    FindUserAck = 51,
    /// Extension: client ends every session of its user, and their resume tokens.
    LogoutAll = 52,
    /// Extension: server tells a client that a user whose friend it is came online or went offline.
    Presence = 53,
    /// Extension: client has read a conversation up to a seq.
    MarkRead = 54,
    /// Extension: server tells a client that a conversation was read (or received) up to a seq.
    Receipt = 55,
    /// Extension: client asks for each member's read mark and cursor in a conversation.
    Reads = 56,
    /// Extension: server answers READS.
    ReadsAck = 57,
    /// Extension: a user is typing (or paused), client to server and forwarded.
    Typing = 58,
}

impl MsgId {
    /// The msgid for a number, if it is one we know.
    pub fn from_number(n: i64) -> Option<MsgId> {
        Some(match n {
            1 => MsgId::Login,
            2 => MsgId::LoginAck,
            3 => MsgId::Loginout,
            4 => MsgId::Reg,
            5 => MsgId::RegAck,
            6 => MsgId::OneChat,
            7 => MsgId::AddFriend,
            8 => MsgId::CreateGroup,
            9 => MsgId::AddGroup,
            10 => MsgId::GroupChat,
            11 => MsgId::Ack,
            12 => MsgId::Ping,
            13 => MsgId::Pong,
            14 => MsgId::Notice,
            15 => MsgId::List,
            16 => MsgId::ListAck,
            17 => MsgId::Resume,
            18 => MsgId::Received,
            19 => MsgId::History,
            20 => MsgId::HistoryAck,
            30 => MsgId::Block,
            31 => MsgId::Unblock,
            32 => MsgId::Blocked,
            33 => MsgId::BlockedAck,
            34 => MsgId::SetWriters,
            35 => MsgId::FriendRequest,
            36 => MsgId::FriendAnswer,
            37 => MsgId::RemoveFriend,
            38 => MsgId::FriendRequests,
            39 => MsgId::FriendRequestsAck,
            40 => MsgId::LeaveGroup,
            41 => MsgId::Kick,
            42 => MsgId::EditGroup,
            43 => MsgId::DeleteGroup,
            44 => MsgId::SetAdmin,
            45 => MsgId::ChangePassword,
            46 => MsgId::DeleteAccount,
            47 => MsgId::Event,
            50 => MsgId::FindUser,
            51 => MsgId::FindUserAck,
            52 => MsgId::LogoutAll,
            53 => MsgId::Presence,
            54 => MsgId::MarkRead,
            55 => MsgId::Receipt,
            56 => MsgId::Reads,
            57 => MsgId::ReadsAck,
            58 => MsgId::Typing,
            _ => return None,
        })
    }

    /// The number on the wire.
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl serde::Serialize for MsgId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.number())
    }
}

/// The original's errmsg for a bad id or password (errno 1 on LOGIN_MSG_ACK).
pub const ERRMSG_LOGIN_INVALID: &str = "id or password is invalid!";
/// The original's errmsg for a user already online (errno 2 on LOGIN_MSG_ACK).
pub const ERRMSG_ACCOUNT_IN_USE: &str = "this account is using, input another!";
/// The original's errmsg for a failed registration (errno 1 on REG_MSG_ACK).
pub const ERRMSG_REG_FAILED: &str = "注册失败!";

/// Longest user or group name, in characters (the original's VARCHAR(50)).
pub const MAX_NAME_CHARS: usize = 50;
/// Longest group description, in characters (the original's VARCHAR(200)).
pub const MAX_DESC_CHARS: usize = 200;
/// Longest password, in characters.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Longest client message id (`cid`), in bytes.
pub const MAX_CID_BYTES: usize = 64;
/// Most conversations one RESUME or RECEIVED may acknowledge.
pub const MAX_ACKS: usize = 10_000;

/// The server's clock in the original's `YYYY-MM-DD HH:MM:SS` form is made by the
/// server; this is the format string both sides use.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
