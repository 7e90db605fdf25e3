//! The admin HTTP listener: `GET /metrics` (Prometheus text), `/healthz` (the process
//! answers) and `/readyz` (the node can take users: every dependency answers and it is not
//! shutting down). A transport of its own beside the chat port, in a crate of its own so that
//! the HTTP stack (hyper) stays out of the TCP path and the console client.
//!
//! It knows no chat: the server binary hands it the [`Metrics`], the checks (database,
//! Redis) and the token that turns it not-ready at shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chat_metrics::Metrics;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// A readiness check: `Ok` when the dependency answers, else one line saying why not.
pub type Check = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Refreshes the metrics sampled from elsewhere (the broker's lag total, the pool) before a scrape.
pub type Refresh = Box<dyn Fn(&Metrics) + Send + Sync>;

/// How long one readiness check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Admin connections served at once (scrapers and probes; more wait in the backlog).
const MAX_CONNECTIONS: usize = 64;
/// The longest an admin connection may live (a stuck scraper does not hold a slot).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// What the admin listener serves.
pub struct Admin {
    metrics: Arc<Metrics>,
    checks: Vec<(&'static str, Check)>,
    draining: CancellationToken,
    refresh: Option<Refresh>,
}

impl Admin {
    /// Serves `metrics`; `/readyz` answers not-ready once `draining` is cancelled.
    pub fn new(metrics: Arc<Metrics>, draining: CancellationToken) -> Admin {
        Admin { metrics, checks: Vec::new(), draining, refresh: None }
    }

    /// Adds a readiness check named `name` (it appears in `/readyz`'s answer when it fails).
    pub fn check(mut self, name: &'static str, check: Check) -> Admin {
        self.checks.push((name, check));
        self
    }

    /// Runs `refresh` before each scrape.
    pub fn refresh(mut self, refresh: Refresh) -> Admin {
        self.refresh = Some(refresh);
        self
    }

    /// Whether the node is ready; if not, one line per reason.
    pub async fn ready(&self) -> Result<(), String> {
        if self.draining.is_cancelled() {
            self.metrics.ready.set(0);
            return Err("shutting down".into());
        }
        let results = futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
            match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(format!("{name}: {why}")),
                Err(_) => Err(format!("{name}: no answer within {CHECK_TIMEOUT:?}")),
            }
        }))
        .await;
        let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
        // Checked again: a shutdown may have started while the checks ran.
        if self.draining.is_cancelled() {
            self.metrics.ready.set(0);
            return Err("shutting down".into());
        }
        self.metrics.ready.set(i64::from(failed.is_empty()));
        if failed.is_empty() { Ok(()) } else { Err(failed.join("\n")) }
    }

    async fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
        }
        match req.uri().path() {
            "/metrics" => {
                // Sets `chat_ready`, so a scrape sees readiness without a separate probe.
                let _ = self.ready().await;
                if let Some(refresh) = &self.refresh {
                    refresh(&self.metrics);
                }
                let mut response = text(StatusCode::OK, self.metrics.render());
                if let Ok(value) = Metrics::CONTENT_TYPE.parse() {
                    response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
                }
                response
            }
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match self.ready().await {
                Ok(()) => text(StatusCode::OK, "ready\n".into()),
                Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n")),
            },
            _ => text(StatusCode::NOT_FOUND, "not found; try /metrics, /healthz or /readyz\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves HTTP/1.1 on `listener` until `shutdown` fires.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = shutdown.cancelled() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.respond(&req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Ok(Err(e)) = tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                debug!(error = %e, "admin connection failed");
            }
            drop(permit);
        });
    }
}
