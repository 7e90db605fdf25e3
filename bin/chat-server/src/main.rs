//! `chat-server`: one chat-cluster node. Reads the configuration, opens the
//! store and the broker, serves clients until SIGINT/SIGTERM, then shuts down
//! in order. Everything below this file receives typed values.

mod adopt;
mod check;
mod logs;
mod ops;
mod settings;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use chat_broker::{LocalHub, RedisBroker, RedisConfig};
use chat_net::NetConfig;
use chat_ports::Broker;
use chat_proto::{ErrorCode, Notice, encode};
use chat_service::{Delivery, HashCost, Service, ServiceConfig, Sessions};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use settings::{Cli, Command, Settings};

/// jemalloc, whose background thread gives pages freed after a burst (thousands of logins
/// and logouts) back to the system; glibc's malloc kept them. See ARCHITECTURE.md.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Some(Command::CheckConfig)) {
        return check::run(&settings);
    }
    logs::init(&settings);
    for warning in settings.warnings() {
        warn!("{warning}");
    }
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        warn!(error = %e, "cannot start jemalloc's background purging");
    }
    // worker_threads: 0 = one per core. One worker avoids cross-thread wake-ups, the
    // cheapest per message when nodes share few cores (see bench/RESULTS.md). Always the
    // multi-thread runtime: the migration harness needs it.
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if settings.worker_threads > 0 {
        builder.worker_threads(settings.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chat-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Some(Command::Migrate) => migrate(&settings).await,
            Some(Command::AdoptOriginal(args)) => adopt::run(&settings, &args).await,
            Some(Command::Serve) | None => serve(settings).await,
            Some(Command::CheckConfig) => Ok(()),
        }
    });
    // Tasks still blocked on a dead peer must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("chat-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    chat_model::migrate(&settings.database_url).await.context("migration failed")?;
    info!(database = %redact(&settings.database_url), "migrations applied");
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listener = chat_net::listen(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr().context("listener has no address")?;
    let ws_listener = match &settings.ws_listen {
        Some(ws) => {
            Some(chat_net::listen(ws).await.with_context(|| format!("cannot listen for WebSocket on {ws}"))?)
        }
        None => None,
    };

    let db = chat_model::connect(&settings.database_url, settings.database_pool)
        .await
        .with_context(|| format!("cannot open the database {}", redact(&settings.database_url)))?;
    let metrics = Arc::new(chat_metrics::Metrics::new());
    let sessions = Sessions::with_metrics(settings.outbound_queue, metrics.clone());
    let delivery = Delivery::new(sessions, db.store.clone(), db.log.clone());

    let node_name = settings.node_name.clone().unwrap_or_else(|| addr.to_string());
    let (broker, redis): (Arc<dyn Broker>, Option<Arc<RedisBroker>>) = match &settings.redis_url {
        Some(url) => {
            let config = RedisConfig {
                url: url.clone(),
                channel_prefix: settings.channel_prefix.clone(),
                node_id: unique_node_id(&node_name),
                lease: Duration::from_secs(settings.lease_secs),
                receive_capacity: settings.redis_receive_capacity,
            };
            let redis = RedisBroker::connect(config, delivery.clone())
                .await
                .with_context(|| format!("cannot connect to Redis at {}", redact(url)))?;
            (redis.clone(), Some(redis))
        }
        None => (LocalHub::new().node(delivery.clone()), None),
    };

    let service_config = ServiceConfig {
        hash_cost: HashCost {
            memory_kib: settings.hash_memory_kib,
            iterations: settings.hash_iterations,
            parallelism: settings.hash_parallelism,
        },
        hash_concurrency: settings.hash_concurrency,
        max_message_bytes: settings.max_message_bytes,
        pending_limit: settings.outbound_queue,
        rate_per_sec: settings.rate_per_sec,
        rate_burst: settings.rate_burst,
        abuse_limit: settings.abuse_limit.max(1),
        login_failures_per_conn: settings.login_failures_per_conn.max(1),
        login_failures_per_user: settings.login_failures_per_user.max(1),
        login_failures_per_addr: settings.login_failures_per_addr.max(1),
        login_lockout: secs(settings.login_lockout_secs),
        max_connections_per_ip: settings.max_connections_per_ip,
        unauth_per_ip: settings.unauth_per_ip,
        unauth_pressure: settings.unauth_pressure,
        login_timeout_pressed: secs(settings.login_timeout_pressed_secs),
        registrations_per_ip: settings.registrations_per_ip,
        registration_window: secs(settings.registration_window_secs),
        limits_exempt: settings.proxy_from(),
        max_group_members: settings.max_group_members,
        offline_in_ack: settings.offline_in_ack,
        cursor_flush: secs(settings.cursor_flush_secs),
        retention: secs(settings.retention_days * 24.0 * 3600.0),
        retention_per_conversation: settings.retention_per_conversation.max(1),
        purge_interval: secs(settings.purge_interval_secs),
        resume_ttl: secs(settings.resume_ttl_secs),
        history_page_max: settings.history_page_max,
        batch_max_messages: settings.batch_max_messages,
        commit_linger: Duration::from_secs_f64(settings.commit_linger_ms / 1000.0),
        login_timeout: secs(settings.login_timeout_secs),
        ping_interval: secs(settings.ping_interval_secs),
        max_sessions_per_user: settings.max_sessions_per_user,
        presence_debounce: Duration::from_secs_f64(settings.presence_debounce_secs.max(0.0)),
        ..ServiceConfig::default()
    };
    // Idle checks run often enough to honour the shortest of the timeouts closely.
    let shortest = service_config.login_timeout.min(service_config.ping_interval);
    let idle_check = (shortest.min(service_config.login_timeout_pressed) / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(5));
    let tls = ops::tls(&settings, &metrics)?;
    // Turns /readyz not-ready at SIGTERM, before `shutdown` stops the listener.
    let draining = CancellationToken::new();
    let admin =
        ops::admin(&settings, metrics, draining.clone(), &db.store, db.pool.clone(), redis.clone()).await?;
    let mut service = Service::new(db.store, db.log, db.control, broker, delivery, service_config)
        .map_err(|e| anyhow::anyhow!(e))?;
    // In a cluster, failed logins and registrations are counted in Redis, shared by the nodes.
    let throttle = match &settings.redis_url {
        Some(url) => Some(Arc::new(
            chat_broker::RedisThrottle::connect(url, &settings.channel_prefix)
                .await
                .with_context(|| format!("cannot connect to Redis at {} (throttle)", redact(url)))?,
        )),
        None => None,
    };
    if let Some(throttle) = &throttle {
        service = service.with_throttle(throttle.clone());
    }
    let service = Arc::new(service);
    let net = NetConfig {
        max_frame: settings.max_frame_bytes,
        outbound_queue: settings.outbound_queue,
        max_connections: settings.max_connections,
        idle_check,
        keepalive: Some(secs(settings.keepalive_secs)),
        refusal: Some(encode(&Notice::new(ErrorCode::Closing, "server is full; try again later")).into()),
        proxy: settings.proxy_protocol.then(|| chat_net::ProxyConfig {
            from: settings.proxy_from(),
            wait: chat_net::proxy::HEADER_WAIT,
        }),
        ..NetConfig::default()
    };

    if let Some(ws) = &ws_listener {
        let ws_addr = ws.local_addr().context("WebSocket listener has no address")?;
        info!(addr = %ws_addr, "WebSocket listening (web client at http://{ws_addr}/, endpoint /ws)");
    }
    info!(
        %addr,
        node = %node_name,
        database = %redact(&settings.database_url),
        broker = if redis.is_some() { "redis" } else { "in-process (single node)" },
        tls = tls.is_some(),
        proxy_protocol = settings.proxy_protocol,
        node_protocol = chat_service::NODE_PROTOCOL,
        "chat-server listening on {addr}"
    );

    let shutdown = CancellationToken::new();
    tokio::spawn(signals(draining, secs0(settings.unready_delay_secs), shutdown.clone()));
    if let Some((admin_listener, admin)) = admin {
        tokio::spawn(chat_admin::serve(admin_listener, admin, CancellationToken::new()));
    }
    let websocket = ws_listener.map(|ws| {
        let transport = chat_ws::WsTransport::new(chat_ws::WsConfig {
            max_frame: settings.max_frame_bytes,
            allowed_origins: settings.ws_allowed_origins.clone(),
        });
        let config = NetConfig { refusal: Some(chat_ws::FULL.into()), ..net.clone() };
        chat_net::serve_with(ws, Arc::new(transport), service.clone(), config, shutdown.clone())
    });
    let tcp: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match tls {
        Some(tls) => Box::pin(chat_net::serve_with(listener, tls, service.clone(), net, shutdown.clone())),
        None => Box::pin(chat_net::serve(listener, service.clone(), net, shutdown.clone())),
    };
    // Both listeners feed the one service; the node is done when both have drained.
    let serving = async {
        match websocket {
            Some(ws) => drop(tokio::join!(tcp, ws)),
            None => tcp.await,
        }
    };
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(Duration::from_secs(settings.shutdown_timeout_secs)).await;
    };
    tokio::select! {
        () = serving => info!("all connections closed"),
        () = deadline => warn!("shutdown timeout: closing the remaining connections"),
    }
    // Whatever did not log out by itself: only this node's users; their cursors first.
    service.flush_cursors().await;
    service.mark_all_offline().await;
    if let Some(redis) = redis {
        redis.shutdown().await;
    }
    if let Some(throttle) = throttle {
        throttle.shutdown().await;
    }
    info!("stopped");
    Ok(())
}

/// Waits for SIGINT or SIGTERM, turns the node not-ready (`draining`), waits `unready_delay`
/// so that load balancers polling /readyz stop sending new users, then starts the shutdown.
async fn signals(draining: CancellationToken, unready_delay: Duration, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => info!("SIGINT: shutting down"),
        _ = term.recv() => info!("SIGTERM: shutting down"),
    }
    draining.cancel();
    if !unready_delay.is_zero() {
        info!(delay = ?unready_delay, "not ready; draining before the listener closes");
        tokio::time::sleep(unready_delay).await;
    }
    shutdown.cancel();
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

/// As [`secs`], where zero is allowed.
fn secs0(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// A node id unique to this process start, so a restarted node never inherits stale claims.
fn unique_node_id(name: &str) -> String {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("{name}/{}/{millis}", std::process::id())
}

/// A URL with its password replaced, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let Some((creds, host)) = rest.rsplit_once('@') else { return url.to_owned() };
    let user = creds.split(':').next().unwrap_or("");
    format!("{scheme}://{user}:***@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("mysql://chat:secret@127.0.0.1:3306/chat"), "mysql://chat:***@127.0.0.1:3306/chat");
        assert_eq!(redact("sqlite://data/chat.db"), "sqlite://data/chat.db");
    }
}
