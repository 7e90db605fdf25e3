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

/// Where the presence keys live. On a single Redis: `{prefix}user:{id}` and
/// `{prefix}lease:{node}`, as always. On a Redis Cluster a Lua script may only touch keys of
/// one slot, and CLAIM reads the holder's lease beside the user's key; so users are spread over
/// [`CLUSTER_BUCKETS`] buckets by id, each bucket's keys share one hash tag
/// (`{{prefix}p{bucket}}`), and a node keeps one lease key in every bucket.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: String,
    cluster: bool,
}

/// How many presence buckets (hash tags) a Redis Cluster spreads users over: enough to land
/// on every master of a cluster of a few dozen, few enough that renewing a lease in each one
/// every lease/3 costs nothing (64 small scripts).
pub(crate) const CLUSTER_BUCKETS: u32 = 64;

impl Layout {
    pub(crate) fn new(prefix: &str, cluster: bool) -> Layout {
        Layout { prefix: prefix.to_owned(), cluster }
    }

    /// The buckets a node keeps a lease in: just one on a single Redis.
    pub(crate) fn buckets(&self) -> std::ops::Range<u32> {
        0..if self.cluster { CLUSTER_BUCKETS } else { 1 }
    }

    /// The bucket of `user`'s presence key.
    pub(crate) fn bucket(&self, user: UserId) -> u32 {
        if self.cluster { user.0.rem_euclid(CLUSTER_BUCKETS as i32) as u32 } else { 0 }
    }

    /// What every key of `bucket` starts with (a hash tag on a cluster).
    fn head(&self, bucket: u32) -> String {
        if self.cluster { format!("{{{}p{bucket}}}", self.prefix) } else { self.prefix.clone() }
    }

    /// The key that says which node holds `user`.
    pub(crate) fn user_key(&self, user: UserId) -> String {
        format!("{}user:{}", self.head(self.bucket(user)), user.0)
    }

    /// The hash that counts `user`'s extension sessions per node (beside its key, one slot).
    pub(crate) fn sessions_key(&self, user: UserId) -> String {
        format!("{}sessions:{}", self.head(self.bucket(user)), user.0)
    }

    /// What was last announced of `user`'s presence (beside its key, one slot).
    pub(crate) fn presence_key(&self, user: UserId) -> String {
        format!("{}presence:{}", self.head(self.bucket(user)), user.0)
    }

    /// The set of nodes that hold (or held) users, for the sweep after a node's death.
    pub(crate) fn nodes_key(&self) -> String {
        format!("{{{}nodes}}all", self.prefix)
    }

    /// The set of users node `node` holds (beside [`Layout::nodes_key`], one slot).
    pub(crate) fn node_users_key(&self, node: &str) -> String {
        format!("{{{}nodes}}users:{node}", self.prefix)
    }

    /// The prefix of the lease keys in `bucket`; a node's lease key there is this followed by its id.
    pub(crate) fn lease_prefix(&self, bucket: u32) -> String {
        format!("{}lease:", self.head(bucket))
    }

    /// Node `node`'s lease key in `bucket`.
    pub(crate) fn lease_key(&self, bucket: u32, node: &str) -> String {
        format!("{}{node}", self.lease_prefix(bucket))
    }
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
        let single = Layout::new("p:", false);
        assert_eq!(single.user_key(UserId(5)), "p:user:5");
        assert_eq!(single.lease_key(0, "n1"), "p:lease:n1");
        assert_eq!(single.buckets(), 0..1);
    }

    /// On a cluster a user's key and every lease of its bucket hash to one slot, whatever the prefix.
    #[test]
    fn a_users_key_and_its_buckets_leases_share_a_slot() {
        for prefix in ["", "p:", "a{b", "a}b", "{x}"] {
            let layout = Layout::new(prefix, true);
            assert_eq!(layout.buckets(), 0..CLUSTER_BUCKETS);
            for id in [0, 1, 63, 64, -1, i32::MIN, i32::MAX] {
                let user = UserId(id);
                let bucket = layout.bucket(user);
                assert!(bucket < CLUSTER_BUCKETS);
                let slot = fred::util::redis_keyslot(layout.user_key(user).as_bytes());
                assert_eq!(slot, fred::util::redis_keyslot(layout.lease_key(bucket, "node-1").as_bytes()));
                assert_eq!(slot, fred::util::redis_keyslot(layout.lease_key(bucket, "n{2}").as_bytes()));
            }
        }
        // The buckets do spread: 64 tags land on more than one slot range of a 3-master cluster.
        let layout = Layout::new("p:", true);
        let slots: std::collections::BTreeSet<u16> = layout
            .buckets()
            .map(|b| fred::util::redis_keyslot(layout.lease_key(b, "n").as_bytes()) / 5462)
            .collect();
        assert_eq!(slots.len(), 3);
    }
}
