//! The diesel schema: the original's five tables under their original names
//! (`User`, `Friend`, `AllGroup`, `GroupUser`, `OfflineMessage`), with Rust-side
//! snake_case names. The DDL lives in `migrations/mysql` and `migrations/sqlite`;
//! this file must match both.

diesel::table! {
    /// Accounts. `password` is an argon2 PHC string; `state` is `online` or `offline`.
    #[sql_name = "User"]
    users (id) {
        /// Auto-increment key.
        id -> Integer,
        /// Unique, at most 50 characters.
        name -> Varchar,
        /// The argon2 PHC string.
        password -> Varchar,
        /// `online` or `offline`.
        state -> Varchar,
    }
}

diesel::table! {
    /// One row per (user, friend), one direction.
    #[sql_name = "Friend"]
    friends (userid, friendid) {
        /// The user whose list it is.
        userid -> Integer,
        /// The friend.
        friendid -> Integer,
    }
}

diesel::table! {
    /// Groups.
    #[sql_name = "AllGroup"]
    all_groups (id) {
        /// Auto-increment key.
        id -> Integer,
        /// Unique, at most 50 characters.
        groupname -> Varchar,
        /// At most 200 characters.
        groupdesc -> Varchar,
    }
}

diesel::table! {
    /// Group membership.
    #[sql_name = "GroupUser"]
    group_users (groupid, userid) {
        /// The group.
        groupid -> Integer,
        /// The member.
        userid -> Integer,
        /// `creator` or `normal`.
        grouprole -> Varchar,
    }
}

diesel::table! {
    /// Frames kept for users who were offline, in the order they were stored.
    #[sql_name = "OfflineMessage"]
    offline_messages (id) {
        /// Auto-increment key; increases with the order of storing.
        id -> BigInt,
        /// The recipient.
        userid -> Integer,
        /// The frame as JSON text.
        message -> Text,
        /// When it was stored, unix milliseconds.
        created_at -> BigInt,
    }
}

diesel::joinable!(friends -> users (friendid));
diesel::joinable!(group_users -> users (userid));
diesel::joinable!(group_users -> all_groups (groupid));
diesel::joinable!(offline_messages -> users (userid));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    friends,
    all_groups,
    group_users,
    offline_messages,
    conversations,
    messages,
    cursors,
    resume_tokens,
    session_cursors
);

diesel::table! {
    /// Conversations of the message log: `id` is chat-proto's `ConvId`; `lastseq` its counter.
    #[sql_name = "Conversation"]
    conversations (id) {
        /// `lo << 32 | hi` for two users, `-groupid` for a group.
        id -> BigInt,
        /// The lower user id (one-to-one only).
        userlo -> Nullable<Integer>,
        /// The higher user id (one-to-one only).
        userhi -> Nullable<Integer>,
        /// The group (group conversations only).
        groupid -> Nullable<Integer>,
        /// The newest seq handed out.
        lastseq -> BigInt,
    }
}

diesel::table! {
    /// The message log: one row per chat.
    #[sql_name = "Message"]
    messages (id) {
        /// Auto-increment key (the wire's `mid`).
        id -> BigInt,
        /// The conversation.
        conv -> BigInt,
        /// Its place in the conversation.
        seq -> BigInt,
        /// The sender.
        sender -> Integer,
        /// The sender's name when sent.
        sendername -> Varchar,
        /// The client's message id, if it gave one.
        cid -> Nullable<Varchar>,
        /// The text.
        body -> Text,
        /// Unix milliseconds.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Per user and conversation: the highest seq acknowledged.
    #[sql_name = "ConvCursor"]
    cursors (userid, conv) {
        /// The user.
        userid -> Integer,
        /// The conversation.
        conv -> BigInt,
        /// Acknowledged up to here.
        seq -> BigInt,
    }
}

diesel::table! {
    /// Resume tokens by their SHA-256, hex.
    #[sql_name = "ResumeToken"]
    resume_tokens (token) {
        /// SHA-256 of the token, hex.
        token -> Varchar,
        /// Whose.
        userid -> Integer,
        /// Unix milliseconds.
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// `userid` blocks `blockedid` (issue 21).
    #[sql_name = "Block"]
    blocks (userid, blockedid) {
        /// The user who blocks.
        userid -> Integer,
        /// The user blocked.
        blockedid -> Integer,
    }
}

diesel::table! {
    /// Per-user settings and the deletion mark; no row means the defaults.
    #[sql_name = "UserControl"]
    user_controls (userid) {
        /// The user.
        userid -> Integer,
        /// `anyone` or `friends`: who may write to the user.
        writers -> Varchar,
        /// When the account was deleted (unix ms); NULL while it lives.
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Friend requests waiting for an answer.
    #[sql_name = "FriendRequest"]
    friend_requests (fromid, toid) {
        /// Who asks.
        fromid -> Integer,
        /// Who is asked.
        toid -> Integer,
        /// Unix milliseconds.
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Admins of a group, named by its owner.
    #[sql_name = "GroupAdmin"]
    group_admins (groupid, userid) {
        /// The group.
        groupid -> Integer,
        /// The admin.
        userid -> Integer,
    }
}

// Only the pairs some query joins (each pair may be declared once).
diesel::allow_tables_to_appear_in_same_query!(blocks, users);
diesel::allow_tables_to_appear_in_same_query!(friend_requests, users);
diesel::allow_tables_to_appear_in_same_query!(user_controls, users);

diesel::table! {
    /// Per session (its resume token's hash) and conversation: the highest seq it
    /// acknowledged; conv 0 marks a session that keeps cursors of its own.
    #[sql_name = "SessionCursor"]
    session_cursors (token, conv) {
        /// SHA-256 of the session's resume token, hex.
        token -> Varchar,
        /// The conversation (0: the marker row).
        conv -> BigInt,
        /// Acknowledged up to here.
        seq -> BigInt,
    }
}

diesel::table! {
    /// Per user and conversation: how far the user has read (issue 20's MARK_READ).
    #[sql_name = "ReadMark"]
    read_marks (userid, conv) {
        /// The user.
        userid -> Integer,
        /// The conversation.
        conv -> BigInt,
        /// Read up to here.
        seq -> BigInt,
    }
}

// Deleting a group's read marks names its members by a subquery.
diesel::allow_tables_to_appear_in_same_query!(read_marks, group_users);
