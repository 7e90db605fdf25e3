//! The throttle port over Redis (one Redis or a Redis Cluster): one counter key per limited
//! thing, `{prefix}throttle:{key}`, counted by INCR with its window set by the first count
//! (one Lua script, so a counter never exists without its expiry). A connection of its own,
//! apart from the broker's, so that logins are throttled the same way whatever the broker
//! is busy with. Not here: what is counted (the service's `limits.rs`).

use std::time::Duration;

use async_trait::async_trait;
use chat_ports::{BrokerError, Throttle};
use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, LuaInterface, ReconnectPolicy};
use tracing::info;

/// How long one Redis command may take before the call fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Delay between reconnection attempts; attempts never stop.
const RECONNECT_DELAY_MS: u32 = 200;

/// KEYS[1] = the counter; ARGV[1] = the window in ms. Returns the count.
const HIT: &str = r#"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"#;

/// Expiring counters in Redis, shared by every node using the same Redis and prefix.
pub struct RedisThrottle {
    client: Client,
    prefix: String,
}

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("throttle: {e}"))
}

impl RedisThrottle {
    /// Connects to `url` (a `redis://` or `redis-cluster://` URL); keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisThrottle, BrokerError> {
        let config = Config::from_url(url).map_err(unavailable)?;
        let mut builder = Builder::from_config(config);
        builder
            .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS))
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
            })
            .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT);
        let client = builder.build().map_err(unavailable)?;
        // The connection task lives as long as the client; fred reconnects it by itself.
        let _connection = client.init().await.map_err(unavailable)?;
        info!("throttle counters in Redis");
        Ok(RedisThrottle { client, prefix: format!("{prefix}throttle:") })
    }

    fn ready(&self) -> Result<(), BrokerError> {
        if self.client.is_connected() {
            Ok(())
        } else {
            Err(BrokerError::Unavailable("throttle: the Redis connection is down".into()))
        }
    }

    /// Closes the connection.
    pub async fn shutdown(&self) {
        let _ = self.client.quit().await;
    }
}

#[async_trait]
impl Throttle for RedisThrottle {
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, BrokerError> {
        self.ready()?;
        let ms = window.as_millis().max(1).to_string();
        let n: i64 = self
            .client
            .eval(HIT, vec![format!("{}{key}", self.prefix)], vec![ms])
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn count(&self, key: &str) -> Result<u64, BrokerError> {
        self.ready()?;
        let n: Option<i64> = self.client.get(format!("{}{key}", self.prefix)).await.map_err(unavailable)?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }

    async fn clear(&self, key: &str) -> Result<(), BrokerError> {
        self.ready()?;
        let _: i64 = self.client.del(format!("{}{key}", self.prefix)).await.map_err(unavailable)?;
        Ok(())
    }
}
