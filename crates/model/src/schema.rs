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

diesel::allow_tables_to_appear_in_same_query!(users, friends, all_groups, group_users, offline_messages);
