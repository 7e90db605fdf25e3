//! The Lua scripts that make presence atomic in Redis (claim, release, lease renewal), and
//! running them by EVALSHA with a fallback to EVAL after Redis lost its script cache.
//! The meaning of the results is interpreted by `redis.rs`.

use fred::prelude::{Client, LuaInterface};

/// Claims a user for a node, for one session that shares with no other (an original-protocol
/// client's).
///
/// KEYS[1] = the user's key, KEYS[2] = this node's lease key, KEYS[3] = the user's sessions
/// hash (node → count of extension sessions, see [`JOIN`]);
/// ARGV[1] = this node's id, ARGV[2] = the lease-key prefix, ARGV[3] = the lease in ms.
/// Returns 0 if another node with a live lease holds the user (by its key, or by sessions in
/// the hash), 1 if this node holds it now, 2 if it holds it now but its own lease key was
/// missing (Redis lost its data, or this node was cut off longer than its lease): the caller
/// should re-assert its other claims.
pub(crate) const CLAIM: &str = r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. holder) == 1 then
  return 0
end
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  if fields[i] ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. fields[i]) == 1 then
    return 0
  end
end
local had_lease = redis.call('EXISTS', KEYS[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1])
if had_lease == 1 then
  return 1
end
return 2
"#;

/// Adds one extension session of a user on a node (several sessions per user, on any nodes).
///
/// KEYS[1] = the user's key, KEYS[2] = this node's lease key, KEYS[3] = the user's sessions hash;
/// ARGV[1] = this node's id, ARGV[2] = the lease-key prefix, ARGV[3] = the lease in ms,
/// ARGV[4] = the most sessions the user may have.
/// The hash counts each node's sessions; fields of nodes whose lease expired are dropped. The
/// user's key keeps naming a live node that holds the user, so that nodes of the previous
/// release (which know only that key) refuse their logins.
/// Returns 0 if a node that does not share holds the user (an original-protocol session, or
/// a node of the previous release), 3 if the user has the most sessions already, else 1 (2 if
/// this node's lease key was missing, as in [`CLAIM`]), plus 10 if other nodes hold sessions.
pub(crate) const JOIN: &str = r#"
local me = ARGV[1]
local total, others = 0, 0
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local node, n = fields[i], tonumber(fields[i + 1])
  if node ~= me and redis.call('EXISTS', ARGV[2] .. node) == 0 then
    redis.call('HDEL', KEYS[3], node)
  else
    total = total + n
    if node ~= me then
      others = others + n
    end
  end
end
local holder = redis.call('GET', KEYS[1])
local held = holder and holder ~= me and redis.call('EXISTS', ARGV[2] .. holder) == 1
if held and redis.call('HEXISTS', KEYS[3], holder) == 0 then
  return 0
end
if total >= tonumber(ARGV[4]) then
  return 3
end
local had_lease = redis.call('EXISTS', KEYS[2])
redis.call('SET', KEYS[2], me, 'PX', ARGV[3])
redis.call('HINCRBY', KEYS[3], me, 1)
if not held then
  redis.call('SET', KEYS[1], me)
end
local r = 1
if had_lease == 0 then
  r = 2
end
if others > 0 then
  r = r + 10
end
return r
"#;

/// Sets how many extension sessions of a user a node has (a session ended, a retry, or the
/// re-assertion after the lease vanished).
///
/// KEYS[1] = the user's key, KEYS[2] = the user's sessions hash;
/// ARGV[1] = this node's id, ARGV[2] = the lease-key prefix, ARGV[3] = the node's count.
/// With a count of 0 the node's field goes, and if the user's key names this node it is
/// handed to another live node with sessions, or deleted. With a count above 0 the user's
/// key is taken if free. Returns how many sessions the user has left on live nodes, or -1 if
/// a node that does not share took the user meanwhile (the sessions here must end).
pub(crate) const SET_SESSIONS: &str = r#"
local me = ARGV[1]
local count = tonumber(ARGV[3])
local holder = redis.call('GET', KEYS[1])
local held = holder and holder ~= me and redis.call('EXISTS', ARGV[2] .. holder) == 1
if count > 0 then
  if held and redis.call('HEXISTS', KEYS[2], holder) == 0 then
    redis.call('HDEL', KEYS[2], me)
    return -1
  end
  redis.call('HSET', KEYS[2], me, count)
  if not held then
    redis.call('SET', KEYS[1], me)
  end
else
  redis.call('HDEL', KEYS[2], me)
end
local left, other = 0, nil
local fields = redis.call('HGETALL', KEYS[2])
for i = 1, #fields, 2 do
  local node = fields[i]
  if node == me or redis.call('EXISTS', ARGV[2] .. node) == 1 then
    left = left + tonumber(fields[i + 1])
    if node ~= me then
      other = node
    end
  end
end
if count <= 0 and holder == me then
  if other then
    redis.call('SET', KEYS[1], other)
  else
    redis.call('DEL', KEYS[1])
  end
end
return left
"#;

/// Records a user's presence as their sessions say it is now, atomically with counting them:
/// online while they have a session on a live node (the hash's counts of nodes with a live
/// lease, plus one for a live holder of the user's key that is not in the hash: an exclusive
/// claim, or a node of the previous release), else offline. Reading the count and recording
/// the state in two steps let a login on another node slip in between, and a user with a
/// session stayed recorded (and announced) offline.
///
/// KEYS[1] = the user's presence-state key, KEYS[2] = the user's key, KEYS[3] = the user's
/// sessions hash; ARGV[1] = the lease-key prefix.
/// Returns 1 (online) or 0 (offline) if that differs from what was recorded (a missing key
/// counts as offline), else -1.
pub(crate) const PRESENCE: &str = r#"
local total = 0
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  if redis.call('EXISTS', ARGV[1] .. fields[i]) == 1 then
    total = total + tonumber(fields[i + 1])
  end
end
local holder = redis.call('GET', KEYS[2])
if holder and redis.call('EXISTS', ARGV[1] .. holder) == 1 and redis.call('HEXISTS', KEYS[3], holder) == 0 then
  total = total + 1
end
local now = '0'
if total > 0 then
  now = '1'
end
local old = redis.call('GET', KEYS[1]) or '0'
if old == now then
  return -1
end
redis.call('SET', KEYS[1], now)
return tonumber(now)
"#;

/// Keeps the users a node holds in a set, so that another node can tell their friends when the
/// node dies (see [`ORPHANS`]).
///
/// KEYS[1] = the set of nodes, KEYS[2] = this node's set of users (one hash tag, one slot);
/// ARGV[1] = this node's id, ARGV[2] = the user, ARGV[3] = "1" (holds) or "0" (no longer).
pub(crate) const TRACK: &str = r#"
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('SADD', KEYS[1], ARGV[1])
else
  redis.call('SREM', KEYS[2], ARGV[2])
end
return 1
"#;

/// The nodes that ever held users and may still have some in their set.
///
/// KEYS[1] = the set of nodes. Returns its members.
pub(crate) const NODES: &str = r#"
return redis.call('SMEMBERS', KEYS[1])
"#;

/// Takes up to 100 users off a dead node's set, each for one caller only; forgets the node once
/// its set is empty.
///
/// KEYS[1] = the set of nodes, KEYS[2] = the dead node's set of users; ARGV[1] = its id.
pub(crate) const ORPHANS: &str = r#"
local users = redis.call('SPOP', KEYS[2], 100)
if #users == 0 then
  redis.call('SREM', KEYS[1], ARGV[1])
end
return users
"#;

/// Releases users held by a node.
///
/// KEYS = the users' keys; ARGV[1] = this node's id.
/// Deletes each key that holds this node's id; returns how many it deleted.
pub(crate) const RELEASE: &str = r#"
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"#;

/// Renews a node's lease.
///
/// KEYS[1] = the lease key; ARGV[1] = the node id, ARGV[2] = the lease in ms.
/// Returns 1 if the lease existed, 0 if it had to be created again.
pub(crate) const RENEW: &str = r#"
local had = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return had
"#;

/// A script and the SHA1 Redis gave it when it was loaded.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    lua: &'static str,
    sha: String,
}

impl Script {
    /// Loads `lua` into Redis's script cache (SCRIPT LOAD) and remembers its SHA1.
    pub(crate) async fn load(client: &Client, lua: &'static str) -> Result<Self, fred::error::Error> {
        let sha: String = client.script_load(lua).await?;
        Ok(Self { lua, sha })
    }

    /// As [`Script::run`], for a script that answers a list of strings.
    pub(crate) async fn run_list(
        &self,
        client: &Client,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Vec<String>, fred::error::Error> {
        match client.evalsha::<Vec<String>, _, _, _>(self.sha.as_str(), keys.clone(), args.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(self.lua, keys, args).await,
            other => other,
        }
    }

    /// Runs the script by EVALSHA; if Redis forgot it (a restart flushes the cache), by EVAL,
    /// which caches it again.
    pub(crate) async fn run(
        &self,
        client: &Client,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<i64, fred::error::Error> {
        match client.evalsha::<i64, _, _, _>(self.sha.as_str(), keys.clone(), args.clone()).await {
            Err(e) if e.details().starts_with("NOSCRIPT") => client.eval(self.lua, keys, args).await,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fred::prelude::{Builder, ClientLike, Config, KeysInterface};

    /// After Redis forgot a script (a restart flushes the cache), `run` falls back to EVAL.
    /// Simulated with a SHA1 Redis never saw, so the shared Redis's cache is left alone.
    #[tokio::test]
    async fn unknown_sha_falls_back_to_eval() {
        let url =
            std::env::var("CHAT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let missing = |e: fred::error::Error| -> ! {
            panic!("this test needs Redis at {url} (CHAT_TEST_REDIS_URL): {e}; run deploy/redis-setup.sh")
        };
        let config = Config::from_url(&url).unwrap_or_else(|e| missing(e));
        let client = Builder::from_config(config).build().unwrap_or_else(|e| missing(e));
        client.init().await.unwrap_or_else(|e| missing(e));

        let key = format!("chat-broker-test:{}:scripts:lease", std::process::id());
        let forgotten = Script { lua: RENEW, sha: "0".repeat(40) };
        let args = || vec!["node".to_owned(), "5000".to_owned()];
        assert_eq!(forgotten.run(&client, vec![key.clone()], args()).await.expect("EVAL fallback"), 0);
        let loaded = Script::load(&client, RENEW).await.expect("SCRIPT LOAD");
        assert_eq!(loaded.run(&client, vec![key.clone()], args()).await.expect("EVALSHA"), 1);

        let _: i64 = client.del(key).await.expect("DEL");
        let _ = client.quit().await;
    }
}
