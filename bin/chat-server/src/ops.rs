//! Wiring of the admin listener: what /readyz checks (the database, Redis) and which
//! metrics are sampled at each scrape. The listener itself is `chat-admin`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use chat_admin::{Admin, Check};
use chat_broker::RedisBroker;
use chat_metrics::Metrics;
use chat_ports::Store;
use chat_proto::UserId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::settings::Settings;

/// Binds the admin listener if `admin_listen` is set, with its checks.
pub async fn admin(
    settings: &Settings,
    metrics: Arc<Metrics>,
    draining: CancellationToken,
    store: &Arc<dyn Store>,
    pool: chat_model::PoolProbe,
    redis: Option<Arc<RedisBroker>>,
) -> anyhow::Result<Option<(TcpListener, Arc<Admin>)>> {
    let Some(addr) = &settings.admin_listen else { return Ok(None) };
    let addr: SocketAddr = addr.parse().with_context(|| format!("admin_listen: bad address {addr}"))?;
    let listener =
        TcpListener::bind(addr).await.with_context(|| format!("cannot listen for admin HTTP on {addr}"))?;
    let store = store.clone();
    // A read through the pool: the database answers and a connection can be had.
    let database: Check = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.user_exists(UserId(0)).await.map(drop).map_err(|e| e.to_string()) })
    });
    let mut admin = Admin::new(metrics, draining).check("database", database);
    let lagged = redis.clone();
    admin = admin.refresh(Box::new(move |m: &Metrics| {
        let ((in_use, waiting), (checkouts, waited)) = (pool.in_use_and_waiting(), pool.checkouts_and_wait());
        m.db_pool_in_use.set(i64::try_from(in_use).unwrap_or(i64::MAX));
        m.db_pool_waiting.set(i64::try_from(waiting).unwrap_or(i64::MAX));
        Metrics::sample(&m.db_pool_checkouts, checkouts);
        Metrics::sample_seconds(&m.db_pool_wait_seconds, waited);
        if let Some(redis) = &lagged {
            Metrics::sample(&m.redis_lagged, redis.lagged_total());
        }
    }));
    if let Some(redis) = redis {
        let probe = redis.clone();
        // A GET on the command connection: Redis answers.
        let check: Check = Arc::new(move || {
            let redis = probe.clone();
            Box::pin(async move { redis.holder(UserId(0)).await.map(drop).map_err(|e| e.to_string()) })
        });
        admin = admin.check("redis", check);
    }
    info!(%addr, "admin HTTP listening (/metrics, /healthz, /readyz)");
    Ok(Some((listener, Arc::new(admin))))
}

/// TLS on the client port, if a certificate and key are configured.
pub fn tls(
    settings: &Settings,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Option<Arc<chat_tls::TlsTransport>>> {
    let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) else { return Ok(None) };
    let config = chat_tls::server_config(cert.as_ref(), key.as_ref())?;
    let refusal = chat_proto::encode(&chat_proto::Notice::new(
        chat_proto::ErrorCode::BadRequest,
        "this port speaks TLS: connect with TLS (chat-client --tls)",
    ));
    let failures = metrics.tls_handshake_failures.clone();
    let transport = chat_tls::TlsTransport::new(config, refusal.into(), Box::new(move || failures.inc()));
    Ok(Some(Arc::new(transport)))
}
