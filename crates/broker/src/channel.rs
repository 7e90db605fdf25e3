//! Names of the Redis pub/sub channels and keys that belong to a user or a node.
//! Pure string work; no I/O.

use chat_proto::UserId;

/// The pub/sub channel of `user`: `{prefix}{id}`, the id in decimal as the original used it.
pub fn channel_of(prefix: &str, user: UserId) -> String {
    format!("{prefix}{}", user.0)
}

/// The user a channel belongs to, or `None` if the channel is not `{prefix}{decimal id}`.
pub fn user_of_channel(prefix: &str, channel: &str) -> Option<UserId> {
    let digits = channel.strip_prefix(prefix)?;
    // `i32::from_str` accepts a leading `+`; a channel we did not name ourselves is not ours.
    if digits.starts_with('+') {
        return None;
    }
    digits.parse::<i32>().ok().map(UserId)
}

/// The key that says which node holds `user`: `{prefix}user:{id}`.
pub(crate) fn user_key(prefix: &str, user: UserId) -> String {
    format!("{prefix}user:{}", user.0)
}

/// The prefix of every lease key; a node's lease key is this followed by its node id.
pub(crate) fn lease_prefix(prefix: &str) -> String {
    format!("{prefix}lease:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_round_trips() {
        for id in [0, 1, 42, -7, i32::MAX, i32::MIN] {
            let ch = channel_of("t:", UserId(id));
            assert_eq!(user_of_channel("t:", &ch), Some(UserId(id)));
        }
        assert_eq!(channel_of("", UserId(2)), "2");
        assert_eq!(user_of_channel("", "2"), Some(UserId(2)));
    }

    #[test]
    fn foreign_channels_are_ignored() {
        assert_eq!(user_of_channel("t:", "u:2"), None);
        assert_eq!(user_of_channel("t:", "t:"), None);
        assert_eq!(user_of_channel("t:", "t:x"), None);
        assert_eq!(user_of_channel("t:", "t:+2"), None);
        assert_eq!(user_of_channel("t:", "t:99999999999"), None);
        assert_eq!(user_of_channel("", "2 "), None);
    }

    #[test]
    fn keys_are_prefixed() {
        assert_eq!(user_key("p:", UserId(5)), "p:user:5");
        assert_eq!(lease_prefix("p:"), "p:lease:");
    }
}
