//! The Broker over Redis (fred 10), one Redis or a Redis Cluster: a subscriber connection for
//! the users' channels, a second connection for PUBLISH and the presence keys, the node lease
//! that lets the claims of a dead node expire, and the receive loop that hands incoming frames
//! to the `Sink`. On a cluster the users' channels are sharded (SSUBSCRIBE / SPUBLISH), and a
//! topology watch re-subscribes channels whose slot moved (failover, resharding) and keeps the
//! slot map fresh: a reconnection looks for the cluster through its masters, not only the URL's nodes.
//! Not here: what a frame means (the service), the in-process broker (`local.rs`).
//!
//! Keys and channels (all under `channel_prefix`; the presence layout is [`Layout`]'s):
//! - `{prefix}{id}`: the pub/sub channel of user `id`;
//! - `{prefix}user:{id}`: the node id holding user `id` (no TTL; it is free once that node's lease is gone);
//! - `{prefix}lease:{node_id}`: exists, with a TTL of `lease`, while node `node_id` is alive.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use chat_ports::{Broker, BrokerError, Joined, Sink};
use chat_proto::UserId;
use fred::clients::SubscriberClient;
use fred::prelude::{
    Builder, Client, ClientLike, ClusterInterface, Config, EventInterface, KeysInterface, PubsubInterface,
    ReconnectPolicy, Server, Value,
};
use fred::types::ConnectHandle;
use fred::types::Message;
use fred::types::config::ClusterDiscoveryPolicy;
use tokio::sync::Notify;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::channel::{Layout, channel_of, user_of_channel};
use crate::scripts::{self, Script};

/// How long one Redis command may take before the call fails with `Unavailable`.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// An outer bound on one broker call, in case a command outlives fred's own timeout.
const CALL_TIMEOUT: Duration = Duration::from_millis(2_500);
/// Delay between reconnection attempts; attempts never stop.
const RECONNECT_DELAY_MS: u32 = 200;
/// How many users one RELEASE script call handles.
const RELEASE_BATCH: usize = 500;
/// The shortest lease accepted (renewal runs every lease/3).
const MIN_LEASE: Duration = Duration::from_millis(300);
/// How often a node on a Redis Cluster reads the slot map to notice slots that moved.
const TOPOLOGY_POLL: Duration = Duration::from_millis(500);

/// How to reach Redis and how this node names itself there.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A `redis://` URL, e.g. `redis://127.0.0.1:6379`, or a Redis Cluster's
    /// `redis-cluster://host:port?node=host:port&node=host:port` (any reachable nodes; the rest
    /// of the cluster is discovered). Connecting needs one of these; reconnecting does not (the
    /// masters of the last slot map are asked too).
    pub url: String,
    /// Prepended to every channel and key this broker uses (pub/sub ignores database numbers,
    /// so this is what keeps two clusters, or two test runs, apart on one Redis).
    pub channel_prefix: String,
    /// This node's id; must be unique per process start (a restarted node is a new node).
    pub node_id: String,
    /// How long this node's claims outlive it if it dies without a graceful shutdown.
    pub lease: Duration,
    /// Capacity of the buffer between fred's connection reader and the receive loop.
    pub receive_capacity: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        RedisConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            channel_prefix: String::new(),
            node_id: format!("node-{}-{started}", std::process::id()),
            lease: Duration::from_secs(10),
            receive_capacity: 4096,
        }
    }
}

/// What this node holds in Redis, and what it still owes it.
#[derive(Default)]
struct Presence {
    /// Users this node claimed and has not released.
    held: HashSet<UserId>,
    /// Users whose release failed; retried by the maintenance task until it succeeds.
    unreleased: HashSet<UserId>,
    /// Users with extension sessions here ([`Broker::join`]), and how many.
    joined: HashMap<UserId, u32>,
    /// Users whose count of sessions here Redis may not have (a failed call); set again by
    /// the maintenance task.
    unsynced: HashSet<UserId>,
}

/// Subscription bookkeeping that fred's own tracked-channel set cannot express.
#[derive(Default)]
struct Subscriptions {
    /// Users whose channel must not stay subscribed although fred may still track it
    /// (their UNSUBSCRIBE or SUBSCRIBE failed); unsubscribed again on reconnect and on each tick.
    stale: HashSet<UserId>,
    /// A re-subscription after a reconnect failed and must be tried again.
    resubscribe: bool,
}

/// State shared by the broker and its background tasks. It does not own the tasks, so dropping
/// the `RedisBroker` stops them.
struct Shared {
    client: Client,
    subscriber: SubscriberClient,
    prefix: String,
    node_id: String,
    /// Sharded pub/sub and bucketed presence keys (a Redis Cluster), or the classic ones.
    cluster: bool,
    layout: Layout,
    lease_ms: String,
    claim: Script,
    release: Script,
    renew: Script,
    join: Script,
    set_sessions: Script,
    presence_state: Script,
    track: Script,
    nodes: Script,
    orphans: Script,
    /// Serializes presence changes, so a retried release or a re-assertion never races a claim.
    presence: tokio::sync::Mutex<Presence>,
    /// Serializes (un)subscriptions with the resync after a reconnect.
    subscriptions: tokio::sync::Mutex<Subscriptions>,
    /// Woken when a claim found this node's lease missing: re-assert every held claim now.
    reassert: Notify,
}

/// The [`Broker`] over Redis. Create it with [`RedisBroker::connect`], end it with
/// [`RedisBroker::shutdown`]; dropping it without a shutdown behaves like a crash (the
/// connections close and the claims expire with the lease).
pub struct RedisBroker {
    shared: Arc<Shared>,
    lagged: Arc<AtomicU64>,
    lease: Duration,
    stop_renewing: CancellationToken,
    stop_all: CancellationToken,
    tasks: TaskTracker,
    maintenance: Mutex<Option<JoinHandle<()>>>,
    connections: Mutex<Vec<ConnectHandle>>,
    shut_down: AtomicBool,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(format!("{what}: {e}"))
}

/// Runs one Redis call under the outer time bound, mapping every failure to `Unavailable`.
async fn bounded<T>(
    what: &str,
    call: impl Future<Output = Result<T, fred::error::Error>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(what, e)),
        Err(_) => Err(unavailable(what, "timed out")),
    }
}

/// Fails at once while a connection is down, instead of queueing behind the reconnection.
fn ensure_connected(client: &impl ClientLike, which: &str) -> Result<(), BrokerError> {
    if client.is_connected() {
        Ok(())
    } else {
        Err(BrokerError::Unavailable(format!("the Redis {which} connection is down")))
    }
}

/// The URL without its credentials, for error messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl RedisBroker {
    /// Connects to Redis, takes this node's lease, and starts the receive loop (frames go to
    /// `sink`) and the lease renewal. Fails with `Unavailable` if Redis cannot be reached now;
    /// once connected, the broker reconnects by itself for ever.
    pub async fn connect(config: RedisConfig, sink: Arc<dyn Sink>) -> Result<Arc<RedisBroker>, BrokerError> {
        if config.node_id.is_empty() {
            return Err(BrokerError::Unavailable("the Redis broker needs a non-empty node id".to_owned()));
        }
        let lease = config.lease.max(MIN_LEASE);
        let url = redacted(&config.url);
        let mut fred_config =
            Config::from_url(&config.url).map_err(|e| unavailable(&format!("invalid Redis URL {url}"), e))?;
        let cluster = fred_config.server.is_clustered();
        if cluster {
            // Reconnect through any node known: the URL's and every master of the last slot map
            // (fred's default asks the URL's nodes only, so a dead seed would be the end).
            fred_config
                .server
                .set_cluster_discovery_policy(ClusterDiscoveryPolicy::UseCache)
                .map_err(|e| unavailable("cannot configure the Redis Cluster discovery", e))?;
        }

        let mut builder = Builder::from_config(fred_config);
        builder
            .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS))
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                // Names the connections after the fred client id, so CLIENT LIST shows whose they are.
                c.auto_client_setname = true;
                c.unresponsive.max_timeout = Some(COMMAND_TIMEOUT * 2);
                c.unresponsive.interval = Duration::from_millis(500);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = config.receive_capacity.max(1);
            });
        let client = builder.build().map_err(|e| unavailable("cannot configure the Redis client", e))?;
        let subscriber = builder
            .build_subscriber_client()
            .map_err(|e| unavailable("cannot configure the Redis subscriber", e))?;

        // Take the receivers before connecting, so no message and no reconnect event is missed.
        let messages = subscriber.message_rx();
        let events = Events {
            sub_reconnects: subscriber.reconnect_rx(),
            client_reconnects: client.reconnect_rx(),
            sub_errors: subscriber.error_rx(),
            client_errors: client.error_rx(),
        };

        let mut connections = Vec::with_capacity(2);
        let not_reachable = |e| unavailable(&format!("Redis is not reachable at {url}"), e);
        connections.push(client.init().await.map_err(not_reachable)?);
        match subscriber.init().await {
            Ok(handle) => connections.push(handle),
            Err(e) => {
                abort_all(&mut connections);
                return Err(not_reachable(e));
            }
        }

        let shared = match Self::load_scripts(&client).await {
            Ok([claim, release, renew, join, set_sessions, presence_state, track, nodes, orphans]) => {
                Arc::new(Shared {
                    cluster,
                    layout: Layout::new(&config.channel_prefix, cluster),
                    lease_ms: lease.as_millis().to_string(),
                    prefix: config.channel_prefix,
                    node_id: config.node_id,
                    client,
                    subscriber,
                    claim,
                    release,
                    renew,
                    join,
                    set_sessions,
                    presence_state,
                    track,
                    nodes,
                    orphans,
                    presence: tokio::sync::Mutex::new(Presence::default()),
                    subscriptions: tokio::sync::Mutex::new(Subscriptions::default()),
                    reassert: Notify::new(),
                })
            }
            Err(e) => {
                abort_all(&mut connections);
                return Err(e);
            }
        };
        if let Err(e) = shared.renew_lease().await {
            abort_all(&mut connections);
            return Err(e);
        }
        // Announcements from other nodes (fred tracks the channel, so it is re-subscribed after a reconnect).
        let events_channel = events_channel(&shared.prefix);
        if let Err(e) = shared.subscribe_channels(vec![events_channel]).await {
            abort_all(&mut connections);
            return Err(e);
        }

        let lagged = Arc::new(AtomicU64::new(0));
        let stop_renewing = CancellationToken::new();
        let stop_all = CancellationToken::new();
        let tasks = TaskTracker::new();
        tasks.spawn(receive_loop(
            messages,
            shared.prefix.clone(),
            Arc::clone(&sink),
            Arc::clone(&lagged),
            stop_all.clone(),
        ));
        if cluster {
            tasks.spawn(topology_loop(Arc::clone(&shared), Arc::clone(&sink), stop_all.clone()));
        }
        tasks.spawn(event_loop(events, Arc::clone(&shared), Arc::clone(&sink), stop_all.clone()));
        let maintenance =
            tasks.spawn(maintenance_loop(Arc::clone(&shared), sink, lease / 3, stop_renewing.clone()));
        info!(node = %shared.node_id, redis = %url, cluster, "connected to Redis");

        Ok(Arc::new(RedisBroker {
            shared,
            lagged,
            lease,
            stop_renewing,
            stop_all,
            tasks,
            maintenance: Mutex::new(Some(maintenance)),
            connections: Mutex::new(connections),
            shut_down: AtomicBool::new(false),
        }))
    }

    /// CLAIM, RELEASE, RENEW, JOIN, SET_SESSIONS, PRESENCE, TRACK, NODES and ORPHANS, loaded.
    async fn load_scripts(client: &Client) -> Result<[Script; 9], BrokerError> {
        let load = |lua| bounded("cannot load a Lua script into Redis", Script::load(client, lua));
        Ok([
            load(scripts::CLAIM).await?,
            load(scripts::RELEASE).await?,
            load(scripts::RENEW).await?,
            load(scripts::JOIN).await?,
            load(scripts::SET_SESSIONS).await?,
            load(scripts::PRESENCE).await?,
            load(scripts::TRACK).await?,
            load(scripts::NODES).await?,
            load(scripts::ORPHANS).await?,
        ])
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// The lease in effect (the configured one, raised to the minimum of 300 ms).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How many incoming messages were dropped because the receive loop fell behind
    /// (`receive_capacity` was exceeded), since the start.
    pub fn lagged_total(&self) -> u64 {
        self.lagged.load(Ordering::Relaxed)
    }

    /// The name (CLIENT SETNAME) of the subscriber connection, as CLIENT LIST shows it.
    pub fn subscriber_name(&self) -> String {
        self.shared.subscriber.id().to_owned()
    }

    /// The node id stored as `user`'s holder, if any. Raw: that node's lease may have expired.
    pub async fn holder(&self, user: UserId) -> Result<Option<String>, BrokerError> {
        let shared = &self.shared;
        ensure_connected(&shared.client, "command")?;
        bounded(
            "cannot read a presence key",
            shared.client.get::<Option<String>, _>(shared.layout.user_key(user)),
        )
        .await
    }

    /// Releases all these users (those held by this node), in few round trips.
    pub async fn release_all(&self, users: &[UserId]) -> Result<(), BrokerError> {
        self.shared.release_users(users).await
    }

    /// Graceful stop: stops renewing the lease, releases every user this node holds, deletes the
    /// lease, unsubscribes, and closes both connections. Each step is time-bounded; failures are
    /// logged (the lease expires by itself if Redis is unreachable). Calling it twice is harmless.
    pub async fn shutdown(&self) {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let shared = &self.shared;
        self.stop_renewing.cancel();
        let maintenance = self.maintenance.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(task) = maintenance {
            // The task may be mid-renewal; it must not re-create the lease after we delete it.
            if tokio::time::timeout(CALL_TIMEOUT, task).await.is_err() {
                warn!(node = %shared.node_id, "lease renewal did not stop in time");
            }
        }

        let held: Vec<UserId> = shared.presence.lock().await.held.iter().copied().collect();
        if let Err(e) = shared.release_users(&held).await {
            warn!(node = %shared.node_id, error = %e, users = held.len(), "shutdown: cannot release users; they expire with the lease");
        }
        if let Err(e) = shared.leave_all().await {
            warn!(node = %shared.node_id, error = %e, "shutdown: cannot end the sessions; they expire with the lease");
        }
        let deletes = shared.layout.buckets().map(|bucket| {
            bounded("cannot delete the lease", shared.client.del::<i64, _>(shared.lease_key(bucket)))
        });
        if let Err(e) = futures::future::try_join_all(deletes).await {
            warn!(node = %shared.node_id, error = %e, "shutdown: cannot delete the lease; it expires by itself");
        }
        if let Err(e) = bounded("unsubscribe", shared.subscriber.unsubscribe_all()).await {
            debug!(node = %shared.node_id, error = %e, "shutdown: unsubscribe failed");
        }
        if let Err(e) = bounded("quit", shared.subscriber.quit()).await {
            debug!(node = %shared.node_id, error = %e, "shutdown: subscriber quit failed");
        }
        if let Err(e) = bounded("quit", shared.client.quit()).await {
            debug!(node = %shared.node_id, error = %e, "shutdown: client quit failed");
        }

        self.stop_all.cancel();
        abort_all(&mut self.connections.lock().unwrap_or_else(PoisonError::into_inner));
        self.tasks.close();
        if tokio::time::timeout(CALL_TIMEOUT, self.tasks.wait()).await.is_err() {
            warn!(node = %shared.node_id, "shutdown: broker tasks did not stop in time");
        }
        info!(node = %shared.node_id, "disconnected from Redis");
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        // Without a shutdown this is a crash: stop the tasks and drop the connections, and let
        // the lease expire. The router tasks hold the sockets; aborting them closes the sockets.
        self.stop_renewing.cancel();
        self.stop_all.cancel();
        abort_all(self.connections.get_mut().unwrap_or_else(PoisonError::into_inner));
    }
}

fn abort_all(handles: &mut Vec<ConnectHandle>) {
    for handle in handles.drain(..) {
        handle.abort();
    }
}

impl Shared {
    fn channel(&self, user: UserId) -> String {
        channel_of(&self.prefix, user)
    }

    /// Sets this node's lease again; `Ok(false)` if it had vanished (Redis lost its data, or this
    /// node was cut off for longer than the lease).
    async fn renew_lease(&self) -> Result<bool, BrokerError> {
        ensure_connected(&self.client, "command")?;
        let renewals = self.layout.buckets().map(|bucket| {
            bounded(
                "cannot renew the node lease",
                self.renew.run(
                    &self.client,
                    vec![self.lease_key(bucket)],
                    vec![self.node_id.clone(), self.lease_ms.clone()],
                ),
            )
        });
        let had = futures::future::try_join_all(renewals).await?;
        Ok(had.iter().all(|had| *had == 1))
    }

    /// This node's lease key in presence bucket `bucket`.
    fn lease_key(&self, bucket: u32) -> String {
        self.layout.lease_key(bucket, &self.node_id)
    }

    /// Runs CLAIM for `user`: its key and this node's lease in the user's bucket (one slot).
    async fn run_claim(&self, user: UserId) -> Result<i64, fred::error::Error> {
        let bucket = self.layout.bucket(user);
        self.claim
            .run(
                &self.client,
                vec![self.layout.user_key(user), self.lease_key(bucket), self.layout.sessions_key(user)],
                vec![self.node_id.clone(), self.layout.lease_prefix(bucket), self.lease_ms.clone()],
            )
            .await
    }

    /// Runs SET_SESSIONS for `user` with this node's `count` of its sessions.
    async fn run_set_sessions(&self, user: UserId, count: u32) -> Result<i64, fred::error::Error> {
        let bucket = self.layout.bucket(user);
        self.set_sessions
            .run(
                &self.client,
                vec![self.layout.user_key(user), self.layout.sessions_key(user)],
                vec![self.node_id.clone(), self.layout.lease_prefix(bucket), count.to_string()],
            )
            .await
    }

    async fn join(&self, user: UserId, max: u32) -> Result<Joined, BrokerError> {
        ensure_connected(&self.client, "command")?;
        let mut presence = self.presence.lock().await;
        let bucket = self.layout.bucket(user);
        let run = self.join.run(
            &self.client,
            vec![self.layout.user_key(user), self.lease_key(bucket), self.layout.sessions_key(user)],
            vec![
                self.node_id.clone(),
                self.layout.lease_prefix(bucket),
                self.lease_ms.clone(),
                max.to_string(),
            ],
        );
        match bounded("cannot claim a session", run).await {
            Ok(0) => Ok(Joined::InUse),
            Ok(3) => Ok(Joined::Limit),
            Ok(code) => {
                let count = presence.joined.entry(user).or_default();
                *count += 1;
                if *count == 1 {
                    self.track(user, true).await;
                }
                if code % 10 == 2 {
                    warn!(node = %self.node_id, "the node lease had vanished; re-asserting this node's claims");
                    self.reassert.notify_one();
                }
                Ok(Joined::Yes { others: code >= 10 })
            }
            Err(e) => {
                // The script may have run although we got no answer: set the count again later.
                presence.unsynced.insert(user);
                Err(e)
            }
        }
    }

    async fn leave(&self, user: UserId) -> Result<u32, BrokerError> {
        let mut presence = self.presence.lock().await;
        let count = match presence.joined.get_mut(&user) {
            Some(count) => {
                *count = count.saturating_sub(1);
                *count
            }
            None => 0,
        };
        if count == 0 {
            presence.joined.remove(&user);
            self.track(user, false).await;
        }
        let result = match ensure_connected(&self.client, "command") {
            Ok(()) => bounded("cannot end a session", self.run_set_sessions(user, count)).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(left) => Ok(u32::try_from(left).unwrap_or(0)),
            Err(e) => {
                presence.unsynced.insert(user);
                Err(e)
            }
        }
    }

    /// Keeps `user` in (or out of) this node's set of users, for the sweep after its death.
    /// Best effort: a user left in the set is only looked at once more.
    async fn track(&self, user: UserId, holds: bool) {
        let run = self.track.run(
            &self.client,
            vec![self.layout.nodes_key(), self.layout.node_users_key(&self.node_id)],
            vec![self.node_id.clone(), user.0.to_string(), if holds { "1" } else { "0" }.to_owned()],
        );
        if let Err(e) = bounded("cannot track a user", run).await {
            debug!(node = %self.node_id, error = %e, "tracking a user failed");
        }
    }

    /// Users of nodes whose lease expired, a batch at a time, each handed to one caller.
    async fn orphans(&self) -> Result<Vec<UserId>, BrokerError> {
        ensure_connected(&self.client, "command")?;
        let nodes = bounded(
            "cannot list nodes",
            self.nodes.run_list(&self.client, vec![self.layout.nodes_key()], vec![]),
        )
        .await?;
        let mut users = Vec::new();
        for node in nodes.into_iter().filter(|n| *n != self.node_id) {
            let alive: i64 =
                bounded("cannot read a lease", self.client.exists(self.layout.lease_key(0, &node))).await?;
            if alive > 0 {
                continue;
            }
            let taken = self.orphans.run_list(
                &self.client,
                vec![self.layout.nodes_key(), self.layout.node_users_key(&node)],
                vec![node.clone()],
            );
            let taken = bounded("cannot take a dead node's users", taken).await?;
            users.extend(taken.iter().filter_map(|u| u.parse().ok().map(UserId)));
        }
        Ok(users)
    }

    /// Sets again the counts Redis may not have, and (`all`) every count after the lease
    /// vanished; a user a node that does not share took meanwhile goes to the sink.
    async fn sync_sessions(&self, sink: &dyn Sink, all: bool) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().await;
        let mut users: Vec<UserId> = presence.unsynced.iter().copied().collect();
        if all {
            users.extend(presence.joined.keys().copied());
        }
        for user in users {
            let count = presence.joined.get(&user).copied().unwrap_or(0);
            let result = bounded("cannot set a session count", self.run_set_sessions(user, count)).await?;
            presence.unsynced.remove(&user);
            if result < 0 {
                presence.joined.remove(&user);
                warn!(node = %self.node_id, user = user.0, "lost a user's sessions while this node's lease was gone; ending them here");
                sink.claim_lost(user);
            }
        }
        Ok(())
    }

    /// Ends every extension session of this node (shutdown).
    async fn leave_all(&self) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().await;
        let users: Vec<UserId> = presence.joined.keys().copied().collect();
        for user in users {
            presence.joined.remove(&user);
            if let Err(e) = bounded("cannot end a session", self.run_set_sessions(user, 0)).await {
                presence.unsynced.insert(user);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn claim(&self, user: UserId) -> Result<bool, BrokerError> {
        ensure_connected(&self.client, "command")?;
        let mut presence = self.presence.lock().await;
        // A release still owed for an earlier session of this user is superseded by this claim.
        presence.unreleased.remove(&user);
        let result = bounded("cannot claim a user", self.run_claim(user)).await;
        match result {
            Ok(0) => Ok(false),
            Ok(1) => {
                if presence.held.insert(user) {
                    self.track(user, true).await;
                }
                Ok(true)
            }
            Ok(_) => {
                if presence.held.insert(user) {
                    self.track(user, true).await;
                }
                warn!(node = %self.node_id, "the node lease had vanished; re-asserting this node's claims");
                self.reassert.notify_one();
                Ok(true)
            }
            Err(e) => {
                // The script may have run although we got no answer: make sure the claim does
                // not linger, unless the user was already held here before.
                if !presence.held.contains(&user) {
                    presence.unreleased.insert(user);
                }
                Err(e)
            }
        }
    }

    async fn release_users(&self, users: &[UserId]) -> Result<(), BrokerError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut presence = self.presence.lock().await;
        for user in users {
            if presence.held.remove(user) {
                self.track(*user, false).await;
            }
        }
        let result = self.release_batches(users).await;
        if result.is_err() {
            presence.unreleased.extend(users.iter().copied());
        }
        result
    }

    async fn release_batches(&self, users: &[UserId]) -> Result<(), BrokerError> {
        ensure_connected(&self.client, "command")?;
        // One script call touches one bucket (one slot on a cluster).
        let mut by_bucket: std::collections::BTreeMap<u32, Vec<UserId>> = Default::default();
        for user in users {
            by_bucket.entry(self.layout.bucket(*user)).or_default().push(*user);
        }
        for users in by_bucket.values() {
            for batch in users.chunks(RELEASE_BATCH) {
                let keys = batch.iter().map(|u| self.layout.user_key(*u)).collect();
                bounded(
                    "cannot release users",
                    self.release.run(&self.client, keys, vec![self.node_id.clone()]),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Claims every held user again after the lease vanished. A user another node took in the
    /// meantime is dropped from `held`, logged, and handed to the sink (that node's session
    /// wins; the one here ends).
    async fn reassert_claims(&self, sink: &dyn Sink) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().await;
        let held: Vec<UserId> = presence.held.iter().copied().collect();
        for user in held {
            let result = bounded("cannot re-assert a claim", self.run_claim(user)).await?;
            if result == 0 {
                presence.held.remove(&user);
                warn!(node = %self.node_id, user = user.0, "lost a claim while this node's lease was gone; another node holds the user now, ending the session here");
                sink.claim_lost(user);
            }
        }
        Ok(())
    }

    /// Retries the releases that failed earlier.
    async fn retry_releases(&self) -> Result<(), BrokerError> {
        let mut presence = self.presence.lock().await;
        if presence.unreleased.is_empty() {
            return Ok(());
        }
        let users: Vec<UserId> = presence.unreleased.iter().copied().collect();
        self.release_batches(&users).await?;
        for user in &users {
            presence.unreleased.remove(user);
        }
        debug!(node = %self.node_id, users = users.len(), "retried releases succeeded");
        Ok(())
    }

    /// Waits until Redis has processed every command sent before on the subscriber connection.
    ///
    /// fred 10.1 resolves `subscribe`/`unsubscribe` as soon as the command is queued (it drops
    /// Redis's acknowledgements as out-of-band frames), so on its own a returned `subscribe` does
    /// not mean the channel is live. Redis answers commands on one connection in order, so the
    /// reply to a PING sent after them is the confirmation.
    ///
    /// On a cluster the PING goes to each master the change went to: the subscriber holds one
    /// connection per master.
    async fn confirm_subscriptions(&self, channels: &[String]) -> Result<(), BrokerError> {
        const WHAT: &str = "cannot confirm a subscription change";
        if !self.cluster {
            return bounded(WHAT, self.subscriber.ping::<Value>(None)).await.map(drop);
        }
        let client = self.subscriber.to_client();
        let masters: HashSet<Server> = match self.subscriber.cached_cluster_state() {
            Some(state) => channels
                .iter()
                .filter_map(|c| state.get_server(fred::util::redis_keyslot(c.as_bytes())).cloned())
                .collect(),
            None => {
                return Err(BrokerError::Unavailable(format!("{WHAT}: the cluster's slot map is unknown")));
            }
        };
        let pings = masters.into_iter().map(|master| {
            let client = client.with_cluster_node(master);
            async move { bounded(WHAT, client.ping::<Value>(None)).await }
        });
        futures::future::try_join_all(pings).await.map(drop)
    }

    /// SUBSCRIBE (one Redis) or SSUBSCRIBE (a cluster, one command per slot, as Redis asks),
    /// confirmed. fred tracks the channels, so they are subscribed again after a reconnect.
    async fn subscribe_channels(&self, channels: Vec<String>) -> Result<(), BrokerError> {
        if channels.is_empty() {
            return Ok(());
        }
        if !self.cluster {
            bounded("cannot subscribe", self.subscriber.subscribe(channels.clone())).await?;
            return self.confirm_subscriptions(&channels).await;
        }
        // fred waits for SSUBSCRIBE's own reply (to follow MOVED), so no PING is needed.
        let groups = by_slot(channels);
        let subscribed =
            groups.into_values().map(|group| bounded("cannot subscribe", self.subscriber.ssubscribe(group)));
        futures::future::try_join_all(subscribed).await.map(drop)
    }

    /// UNSUBSCRIBE or SUNSUBSCRIBE, confirmed. Never with an empty list: that means "all channels".
    async fn unsubscribe_channels(&self, channels: Vec<String>) -> Result<(), BrokerError> {
        if channels.is_empty() {
            return Ok(());
        }
        if !self.cluster {
            bounded("cannot unsubscribe", self.subscriber.unsubscribe(channels.clone())).await?;
            return self.confirm_subscriptions(&channels).await;
        }
        let groups = by_slot(channels.clone());
        let unsubscribed = groups
            .into_values()
            .map(|group| bounded("cannot unsubscribe", self.subscriber.sunsubscribe(group)));
        futures::future::try_join_all(unsubscribed).await?;
        self.confirm_subscriptions(&channels).await
    }

    /// The channels fred will subscribe again after a reconnect.
    fn tracked_channels(&self) -> Vec<String> {
        let tracked = if self.cluster {
            self.subscriber.tracked_shard_channels()
        } else {
            self.subscriber.tracked_channels()
        };
        tracked.iter().map(|c| c.to_string()).collect()
    }

    async fn subscribe(&self, user: UserId) -> Result<(), BrokerError> {
        ensure_connected(&self.subscriber, "subscriber")?;
        let mut subs = self.subscriptions.lock().await;
        subs.stale.remove(&user);
        let result = self.subscribe_channels(vec![self.channel(user)]).await;
        if result.is_err() {
            // Redis may have subscribed although we got no confirmation.
            subs.stale.insert(user);
        }
        result
    }

    async fn unsubscribe(&self, user: UserId) -> Result<(), BrokerError> {
        let mut subs = self.subscriptions.lock().await;
        let result = match ensure_connected(&self.subscriber, "subscriber") {
            Ok(()) => self.unsubscribe_channels(vec![self.channel(user)]).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // fred may still track the channel and would subscribe it again after a reconnect,
            // or Redis may not have seen the UNSUBSCRIBE: retried by `resync_subscriptions`.
            subs.stale.insert(user);
        }
        result
    }

    /// Brings the subscriber connection in line with what the node wants: drops the stale
    /// channels and, if `resubscribe` (a reconnect, or an earlier failure), subscribes every
    /// tracked channel again.
    async fn resync_subscriptions(&self, resubscribe: bool) {
        let mut subs = self.subscriptions.lock().await;
        if !subs.stale.is_empty() {
            // Never call unsubscribe with an empty list: that means "all channels".
            let channels: Vec<String> = subs.stale.iter().map(|u| self.channel(*u)).collect();
            match self.unsubscribe_channels(channels).await {
                Ok(()) => subs.stale.clear(),
                Err(e) => {
                    debug!(node = %self.node_id, error = %e, "dropping stale subscriptions failed; will retry")
                }
            }
        }
        if resubscribe || subs.resubscribe {
            // Not fred's `resubscribe_all`: with nothing tracked it sends SUBSCRIBE and PSUBSCRIBE
            // without arguments, which Redis rejects, and the stray error replies then answer
            // later (un)subscriptions before Redis really confirmed them.
            let channels = self.tracked_channels();
            let count = channels.len();
            match self.subscribe_channels(channels).await {
                Ok(()) => {
                    subs.resubscribe = false;
                    debug!(node = %self.node_id, channels = count, "re-subscribed");
                }
                Err(e) => {
                    subs.resubscribe = true;
                    warn!(node = %self.node_id, error = %e, "re-subscribing after a reconnect failed; will retry");
                }
            }
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn claim(&self, user: UserId) -> Result<bool, BrokerError> {
        self.shared.claim(user).await
    }

    async fn release(&self, user: UserId) -> Result<(), BrokerError> {
        self.shared.release_users(&[user]).await
    }

    async fn join(&self, user: UserId, max: u32) -> Result<Joined, BrokerError> {
        self.shared.join(user, max).await
    }

    async fn leave(&self, user: UserId) -> Result<u32, BrokerError> {
        self.shared.leave(user).await
    }

    async fn orphans(&self) -> Result<Vec<UserId>, BrokerError> {
        self.shared.orphans().await
    }

    async fn presence(&self, user: UserId) -> Result<Option<bool>, BrokerError> {
        let shared = &self.shared;
        ensure_connected(&shared.client, "command")?;
        let bucket = shared.layout.bucket(user);
        let run = shared.presence_state.run(
            &shared.client,
            vec![
                shared.layout.presence_key(user),
                shared.layout.user_key(user),
                shared.layout.sessions_key(user),
            ],
            vec![shared.layout.lease_prefix(bucket)],
        );
        let changed: i64 = bounded("cannot record presence", run).await?;
        Ok((changed >= 0).then_some(changed == 1))
    }

    async fn subscribe(&self, user: UserId) -> Result<(), BrokerError> {
        self.shared.subscribe(user).await
    }

    async fn unsubscribe(&self, user: UserId) -> Result<(), BrokerError> {
        self.shared.unsubscribe(user).await
    }

    async fn publish(&self, user: UserId, frame: Bytes) -> Result<bool, BrokerError> {
        let shared = &self.shared;
        ensure_connected(&shared.client, "command")?;
        let channel = shared.channel(user);
        let receivers: i64 = if shared.cluster {
            bounded("cannot publish", shared.client.spublish(channel, frame)).await?
        } else {
            bounded("cannot publish", shared.client.publish(channel, frame)).await?
        };
        Ok(receivers > 0)
    }

    async fn announce(&self, event: Bytes) -> Result<(), BrokerError> {
        let shared = &self.shared;
        ensure_connected(&shared.client, "command")?;
        let channel = events_channel(&shared.prefix);
        let _: i64 = if shared.cluster {
            bounded("cannot announce", shared.client.spublish(channel, event)).await?
        } else {
            bounded("cannot announce", shared.client.publish(channel, event)).await?
        };
        Ok(())
    }
}

/// The channel every node listens on for announcements (not a user channel: it is no number).
fn events_channel(prefix: &str) -> String {
    format!("{prefix}events")
}

/// Channels grouped by hash slot: SSUBSCRIBE takes the channels of one slot only.
fn by_slot(channels: Vec<String>) -> std::collections::BTreeMap<u16, Vec<String>> {
    let mut groups: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for channel in channels {
        groups.entry(fred::util::redis_keyslot(channel.as_bytes())).or_default().push(channel);
    }
    groups
}

/// Who owns which slots, as this node last read it.
fn slot_owners(subscriber: &SubscriberClient) -> Option<Vec<(u16, u16, Server)>> {
    let state = subscriber.cached_cluster_state()?;
    Some(state.slots().iter().map(|r| (r.start, r.end, r.primary.clone())).collect())
}

/// On a Redis Cluster, every [`TOPOLOGY_POLL`]: reads the slot map again (the subscriber's and
/// the command connection's: their masters are where a reconnection looks for the cluster), and when a slot
/// changed owner (a replica promoted, a resharding) subscribes every channel again and has the
/// sessions read the log. A master that loses a slot drops its sharded subscribers' channels in
/// it (it sends them SUNSUBSCRIBE, which fred does not report), and whatever was published to the
/// slot meanwhile reached no one; both are mended here. Re-subscribing a live channel is harmless.
async fn topology_loop(shared: Arc<Shared>, sink: Arc<dyn Sink>, stop: CancellationToken) {
    let mut known = slot_owners(&shared.subscriber);
    let mut tick = tokio::time::interval(TOPOLOGY_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = bounded("cannot read the cluster's slot map", shared.subscriber.sync_cluster()).await
        {
            debug!(node = %shared.node_id, error = %e, "reading the slot map failed; retrying");
            continue;
        }
        // The command connection's slot map too: its masters are where a reconnect looks for
        // the cluster (`ClusterDiscoveryPolicy::UseCache`). Not while it reconnects: the call
        // would only queue behind the reconnection.
        if shared.client.is_connected()
            && let Err(e) = bounded("cannot read the cluster's slot map", shared.client.sync_cluster()).await
        {
            debug!(node = %shared.node_id, error = %e, "reading the command connection's slot map failed");
        }
        let now = slot_owners(&shared.subscriber);
        if now.is_none() || now == known {
            continue;
        }
        info!(node = %shared.node_id, "Redis Cluster slots changed owner; re-subscribing and catching up from the log");
        known = now;
        shared.resync_subscriptions(true).await;
        sink.resync();
    }
}

/// Messages [`receive_loop`] handles per wake-up at most.
const DRAIN_PER_TURN: usize = 4096;

/// Reads fred's message broadcast and hands each frame to the sink. A lag (the buffer of
/// `receive_capacity` overflowed) loses messages: it is counted and logged, and reading goes on.
///
/// Each wake-up drains everything queued with `try_recv`, which, unlike `recv`, spends no
/// share of tokio's cooperative budget. With `recv` alone this loop handled 128 messages per
/// turn while fred's reader, decoding whole socket reads per budget unit, queued thousands:
/// under a burst (groups of 50 at 3,000 msgs/s) the buffer overflowed although the node had
/// the CPU to keep up.
async fn receive_loop(
    mut messages: Receiver<Message>,
    prefix: String,
    sink: Arc<dyn Sink>,
    lagged: Arc<AtomicU64>,
    stop: CancellationToken,
) {
    let events = events_channel(&prefix);
    let handle = |message: Message| {
        if *message.channel == *events {
            if let Some(event) = message.value.into_bytes() {
                sink.event(event);
            }
            return;
        }
        let Some(user) = user_of_channel(&prefix, &message.channel) else {
            debug!(channel = %message.channel, "message on a foreign channel ignored");
            return;
        };
        match message.value.into_bytes() {
            Some(frame) => sink.deliver(user, frame),
            None => warn!(user = user.0, "message with a non-string payload ignored"),
        }
    };
    let count_lag = |skipped: u64| {
        let total = lagged.fetch_add(skipped, Ordering::Relaxed) + skipped;
        warn!(skipped, total, "Redis receive loop lagged; messages were dropped");
        // Dropped here, not lost: they are in the message log, and the sessions read it.
        sink.resync();
    };
    'receiving: loop {
        let received = tokio::select! {
            () = stop.cancelled() => break,
            received = messages.recv() => received,
        };
        match received {
            Ok(message) => handle(message),
            Err(RecvError::Lagged(skipped)) => count_lag(skipped),
            Err(RecvError::Closed) => break,
        }
        // Bounded, so other tasks on this worker still get a turn while fred's reader, on
        // another worker, keeps the queue full.
        for _ in 0..DRAIN_PER_TURN {
            match messages.try_recv() {
                Ok(message) => handle(message),
                Err(TryRecvError::Lagged(skipped)) => count_lag(skipped),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => break 'receiving,
            }
        }
    }
    debug!("Redis receive loop stopped");
}

/// The connection events the broker reacts to.
struct Events {
    sub_reconnects: Receiver<fred::prelude::Server>,
    client_reconnects: Receiver<fred::prelude::Server>,
    sub_errors: Receiver<(fred::error::Error, Option<fred::prelude::Server>)>,
    client_errors: Receiver<(fred::error::Error, Option<fred::prelude::Server>)>,
}

/// Re-subscribes after each reconnection of the subscriber (what fred's `manage_subscriptions`
/// does, plus dropping stale channels first, under the subscriptions lock),
/// and logs connection errors once per outage.
async fn event_loop(mut events: Events, shared: Arc<Shared>, sink: Arc<dyn Sink>, stop: CancellationToken) {
    let mut sub_down = false;
    let mut client_down = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            event = events.sub_reconnects.recv() => match event {
                Ok(_) => {
                    if sub_down {
                        info!(node = %shared.node_id, "Redis subscriber reconnected");
                        sub_down = false;
                    }
                    shared.resync_subscriptions(true).await;
                    // Redis may have restarted empty: put the lease and this node's claims back now,
                    // not at the next renewal, so no second login slips in meanwhile.
                    shared.reassert.notify_one();
                    // Whatever was published while we were away went nowhere: read it from the log.
                    sink.resync();
                }
                Err(RecvError::Lagged(_)) => {
                    shared.resync_subscriptions(true).await;
                    sink.resync();
                }
                Err(RecvError::Closed) => break,
            },
            event = events.sub_errors.recv() => match event {
                Ok((e, _)) => log_connection_error(&shared.node_id, "subscriber", &mut sub_down, &e),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            event = events.client_errors.recv() => match event {
                Ok((e, _)) => log_connection_error(&shared.node_id, "command", &mut client_down, &e),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
            // Not `is_connected` after an error: fred still says connected right after "lost".
            event = events.client_reconnects.recv() => match event {
                Ok(_) if client_down => {
                    info!(node = %shared.node_id, "Redis command connection reconnected");
                    client_down = false;
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

fn log_connection_error(node: &str, which: &str, down: &mut bool, e: &fred::error::Error) {
    if *down {
        debug!(node, connection = which, error = %e, "Redis still unreachable");
    } else {
        warn!(node, connection = which, error = %e, "Redis connection lost; reconnecting");
        *down = true;
    }
}

/// Every `period`: renews the lease (re-asserting the claims if it had vanished), retries the
/// releases and unsubscriptions that failed. Failures are logged and the node keeps serving.
async fn maintenance_loop(
    shared: Arc<Shared>,
    sink: Arc<dyn Sink>,
    period: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut failing = false;
    let mut reassert = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
            () = shared.reassert.notified() => reassert = true,
            // Claims to put back after an outage are retried at once, not a lease period later.
            () = tokio::time::sleep(Duration::from_millis(RECONNECT_DELAY_MS.into())), if reassert && failing => {}
        }
        let result = async {
            if !shared.renew_lease().await? {
                reassert = true;
            }
            if reassert {
                shared.reassert_claims(sink.as_ref()).await?;
                shared.sync_sessions(sink.as_ref(), true).await?;
                reassert = false;
            }
            shared.sync_sessions(sink.as_ref(), false).await?;
            shared.retry_releases().await
        }
        .await;
        match result {
            Ok(()) if failing => {
                info!(node = %shared.node_id, "lease renewal works again");
                failing = false;
            }
            Ok(()) => {}
            Err(e) if !failing => {
                warn!(node = %shared.node_id, error = %e, "lease renewal failed; still serving, retrying");
                failing = true;
            }
            Err(e) => debug!(node = %shared.node_id, error = %e, "lease renewal still failing"),
        }
        if shared.subscriber.is_connected() {
            shared.resync_subscriptions(false).await;
        }
    }
}
