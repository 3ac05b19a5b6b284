//! The web portal and REST API: sign-up, login, dashboard, live machine pages,
//! series explorer with CSV export, devices, users and roles, API keys, plan
//! usage. Server-rendered HTML (maud) with htmx and uPlot served from the
//! binary; live updates pushed over SSE from NATS.
//!
//! Invariants:
//! - every handler gets its tenant from the session or API key ([`auth::Principal`]),
//!   never from the request; objects of another tenant answer 404;
//! - every state-changing form carries the session's CSRF token;
//! - errors are RFC 9457 problem+json on `/api`, plain pages elsewhere.
//!
//! Boundary: the portal reads telemetry through the same `TelemetryStore` the
//! ingest service writes, and tenants through the same registry.

pub mod alarm_pages;
pub mod alarms;
pub mod api;
pub mod auth;
pub mod demo;
pub mod i18n;
pub mod live;
pub mod oee;
pub mod openapi;
pub mod pages;
pub mod partners;
pub mod problem;
pub mod supply;
pub mod supply_pages;
pub mod tenancy;
pub mod usage;
pub mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
use fc_core::Shutdown;
use fc_registry::Registry;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// Portal settings (`[portal]` in the config file, `FC_PORTAL__*` in the environment).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Listen address; port 0 picks a free port.
    pub listen_addr: String,
    /// Mark cookies `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// Login attempts per e-mail and client address per minute.
    pub login_attempts_per_minute: u32,
    /// Login attempts per client address per minute, whatever the e-mail.
    pub login_attempts_per_address_per_minute: u32,
    /// Login attempts per minute across the portal.
    pub login_attempts_global_per_minute: u32,
    /// Sign-ups per client address per hour.
    pub signups_per_ip_per_hour: u32,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the
    /// client; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Live views (`/machines/{machine}/live`) one session may hold open.
    pub live_views_per_session: u32,
    /// Live views one tenant may hold open, all sessions together.
    pub live_views_per_tenant: u32,
    /// How often an open live view re-checks its session (logout, expiry, role).
    pub live_session_check_ms: u64,
    /// Password hashes or checks (argon2id) that run at once.
    pub password_hash_concurrency: u32,
    /// Password hashes or checks that may wait for a slot; more are refused with 503.
    pub password_hash_queue: u32,
    /// gRPC listen address of `Tenancy` (internal) and `Admin` (operator); port 0 picks a free port.
    pub grpc_addr: String,
    /// Directory of `registry.redb` and `admin.token`; empty: `./data` (under
    /// `factorychain up`, the top-level `data_dir`).
    pub data_dir: String,
    /// Admin bearer token; when empty, one is generated into `<data_dir>/admin.token`.
    pub admin_token: String,
    /// Where tenants, users and credentials are kept.
    pub registry: RegistryConfig,
    /// This service's identity, and the issuer key internal callers are checked against.
    pub service_auth: fc_rpc::service_auth::Config,
    /// Ingest's `Query`: the portal's charts, tables and series API read telemetry there.
    pub telemetry_url: String,
    /// The settlement service's gRPC port (`factorychain.v1.Settlement`).
    pub settlement_url: String,
    /// The monitor's gRPC port (`factorychain.v1.Monitor`): alarm rules and alarms.
    pub monitor_url: String,
    /// `/healthz`, `/readyz`, `/metrics` of the `fc-portal` process (under `up`,
    /// ingest's `http_addr` serves them for the whole process).
    pub ops_addr: String,
}

/// Registry backend settings (`[portal.registry]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// "embedded" (default, `<data_dir>/registry.redb`) or "scylla" (the cluster of `scylla`).
    pub backend: String,
    /// The cluster and keyspace, for `backend = "scylla"`.
    pub scylla: fc_store::scylla::ScyllaConfig,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { backend: "embedded".into(), scylla: fc_store::scylla::ScyllaConfig::default() }
    }
}

/// Opens the configured registry backend.
pub async fn open_registry(config: &Config) -> Result<Registry, StartError> {
    match config.registry.backend.as_str() {
        "scylla" => {
            let s = &config.registry.scylla;
            let kv = fc_registry::scylla::ScyllaKv::connect(&s.nodes, &s.keyspace, s.replication_factor)
                .await
                .map_err(|e| StartError::Config(format!("portal.registry (scylla): {e}")))?;
            Ok(Registry::with_backend(Box::new(kv)))
        }
        "embedded" => {
            let dir = config.data_dir();
            std::fs::create_dir_all(&dir).map_err(|e| StartError::Config(format!("{}: {e}", dir.display())))?;
            Registry::open(dir.join("registry.redb")).map_err(|e| StartError::Config(format!("portal registry: {e}")))
        }
        other => Err(StartError::Config(format!("portal.registry.backend: {other:?} is not embedded or scylla"))),
    }
}

impl Config {
    /// The data directory (`data_dir`, `./data` when empty).
    pub fn data_dir(&self) -> std::path::PathBuf {
        if self.data_dir.is_empty() { "./data".into() } else { self.data_dir.clone().into() }
    }

    /// `trusted_proxies` as ranges; every entry that is not an address or CIDR range is named.
    pub fn trusted_proxy_ranges(&self) -> Result<Vec<auth::IpRange>, StartError> {
        let (ranges, bad): (Vec<_>, Vec<_>) = self.trusted_proxies.iter().map(|r| r.parse::<auth::IpRange>()).partition(Result::is_ok);
        if bad.is_empty() {
            Ok(ranges.into_iter().flatten().collect())
        } else {
            let bad: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
            Err(StartError::Config(format!("portal.trusted_proxies: {}", bad.join("; "))))
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: "127.0.0.1:8080".into(),
            secure_cookies: false,
            max_body_bytes: 64 * 1024,
            login_attempts_per_minute: 5,
            login_attempts_per_address_per_minute: 20,
            login_attempts_global_per_minute: 600,
            signups_per_ip_per_hour: 10,
            trusted_proxies: Vec::new(),
            live_views_per_session: 8,
            live_views_per_tenant: 200,
            live_session_check_ms: 5_000,
            password_hash_concurrency: 2,
            password_hash_queue: 16,
            grpc_addr: "127.0.0.1:50053".into(),
            data_dir: String::new(),
            admin_token: String::new(),
            registry: RegistryConfig::default(),
            service_auth: fc_rpc::service_auth::Config::default(),
            telemetry_url: "http://127.0.0.1:50051".into(),
            settlement_url: "http://127.0.0.1:50052".into(),
            monitor_url: "http://127.0.0.1:50054".into(),
            ops_addr: "127.0.0.1:9465".into(),
        }
    }
}

/// What the handlers share.
pub struct PortalState {
    /// Tenants, users, devices, keys.
    pub registry: Arc<Registry>,
    /// Telemetry, read through ingest's `Query` (ingest owns the store and
    /// charges each tenant's read budget).
    pub telemetry: fc_query_api::QueryClient,
    /// NATS, for live views.
    pub nats: async_nats::Client,
    /// Publishes revocations and plan changes to the other services.
    pub changes: tenancy::Changes,
    /// Supplier settlement (ledger, designs, orders, payments): the settlement
    /// service's internal API, acting for the signed-in organisation.
    pub settlement: fc_settlement_api::SettlementClient,
    /// Alarm rules and alarms: the monitor's internal API, acting for the tenant.
    pub monitor: fc_monitor_api::MonitorClient,
    /// Settings.
    pub config: Config,
    /// Login throttling per (e-mail, client address), per client address and in all.
    pub login_limiter: auth::LoginThrottle,
    /// Sign-up throttling per client address.
    pub signup_limiter: auth::Throttle,
    /// The bound on argon2id work (sign-up, login, invitation acceptance).
    pub hashing: auth::PasswordHashing,
    /// Live-view fan-out.
    pub hub: Arc<live::Hub>,
    /// Open live views, against their caps.
    pub live_views: Arc<live::LiveViews>,
    /// `config.trusted_proxies`, parsed.
    pub trusted_proxies: Vec<auth::IpRange>,
    /// Fires at shutdown (ends live views).
    pub shutdown: Shutdown,
}

impl PortalState {
    /// Checks that a bank file can name the account, and saves it in the
    /// organisation's profile (tenancy, the portal's own; settlement reads it
    /// when the buyer exports a bank file).
    pub fn set_bank_account(&self, org: &str, bank: fc_registry::BankAccount) -> Result<(), problem::Problem> {
        fc_settlement_api::bank_party(&bank).validate("bank").map_err(|e| fc_core::ServiceError::invalid("bank", e))?;
        self.registry.set_org_bank(org, bank)?;
        Ok(())
    }
}

/// A running portal.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<PortalState>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Wait for the server to stop (after shutdown fired).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Errors that stop the portal from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// Could not bind.
    #[error("portal bind {addr}: {source}")]
    Bind {
        /// Address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Build the router (exposed for tests).
pub fn router(state: Arc<PortalState>) -> Router {
    let max = state.config.max_body_bytes;
    Router::new()
        .merge(pages::routes())
        .merge(partners::routes())
        .merge(supply::routes())
        .merge(supply_pages::routes())
        .merge(alarms::routes())
        .merge(alarm_pages::routes())
        .merge(oee::routes())
        .nest("/api", api::routes().route("/openapi.json", get(openapi::json)))
        .route(
            "/static/htmx.min.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "public, max-age=86400")],
                    include_str!("../static/htmx.min.js"),
                )
            }),
        )
        .route(
            "/static/uPlot.iife.min.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript"), (header::CACHE_CONTROL, "public, max-age=86400")],
                    include_str!("../static/uPlot.iife.min.js"),
                )
            }),
        )
        .route(
            "/static/uPlot.min.css",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "public, max-age=86400")],
                    include_str!("../static/uPlot.min.css"),
                )
            }),
        )
        .route("/static/portal.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], include_str!("../static/portal.js")) }))
        .layer(DefaultBodyLimit::max(max))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(record_metrics))
        .layer(axum::middleware::from_fn(trace_http))
        .with_state(state)
}

/// With traces on (docs/operations.md, Traces): each request runs in a server span
/// named after its method and route, the child of the caller's `traceparent`;
/// the settlement calls and ledger appends it makes are inside it.
async fn trace_http(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if !fc_rpc::trace::enabled() {
        return next.run(req).await;
    }
    let route =
        req.extensions().get::<axum::extract::MatchedPath>().map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!("http", otel.name = %format!("{} {route}", req.method()), otel.kind = "server", http.method = %req.method(), http.route = %route);
    let headers = req.headers();
    fc_rpc::trace::set_parent(&span, |k| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned));
    tracing::Instrument::instrument(next.run(req), span).await
}

/// `portal_http_requests_total{route,method,status}` and
/// `portal_http_request_duration_seconds{route}`; `route` is the matched route
/// pattern (bounded), never the raw path.
async fn record_metrics(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched".to_string(), |m| m.as_str().to_string());
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::PATCH => "PATCH",
        axum::http::Method::DELETE => "DELETE",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = match res.status().as_u16() {
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("portal_http_requests_total", "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!("portal_http_request_duration_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    res
}

async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, header::HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, header::HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    res
}

/// Start the portal.
pub async fn serve(config: Config, registry: Arc<Registry>, nats: async_nats::Client, shutdown: Shutdown) -> Result<Running, StartError> {
    let trusted_proxies = config.trusted_proxy_ranges()?;
    let credential = config.service_auth.credential().map_err(|e| StartError::Config(format!("portal.service_auth: {e}")))?;
    let telemetry = fc_query_api::QueryClient::new(&config.telemetry_url, credential.clone(), std::time::Duration::from_secs(30))
        .map_err(|e| StartError::Config(format!("portal.telemetry_url: {e}")))?;
    // Design files stream through: a call may take as long as an upload does.
    let settlement =
        fc_settlement_api::SettlementClient::new(&config.settlement_url, credential.clone(), std::time::Duration::from_secs(600))
            .map_err(|e| StartError::Config(format!("portal.settlement_url: {e}")))?;
    let monitor = fc_monitor_api::MonitorClient::new(&config.monitor_url, credential, std::time::Duration::from_secs(30))
        .map_err(|e| StartError::Config(format!("portal.monitor_url: {e}")))?;
    let listener = tokio::net::TcpListener::bind(&config.listen_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.listen_addr.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: config.listen_addr.clone(), source })?;
    let state = Arc::new(PortalState {
        login_limiter: auth::LoginThrottle::per_minute(
            config.login_attempts_per_minute,
            config.login_attempts_per_address_per_minute,
            config.login_attempts_global_per_minute,
        ),
        signup_limiter: auth::Throttle::per_hour(config.signups_per_ip_per_hour),
        hashing: auth::PasswordHashing::new(config.password_hash_concurrency, config.password_hash_queue),
        trusted_proxies,
        hub: Arc::new(live::Hub::new(nats.clone())),
        live_views: Arc::default(),
        registry,
        telemetry,
        changes: tenancy::Changes::new(nats.clone()),
        nats,
        settlement,
        monitor,
        config,
        shutdown: shutdown.clone(),
    });
    let app = router(state.clone());
    let pruning = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = pruning.shutdown.wait() => return,
                _ = tick.tick() => {
                    pruning.login_limiter.prune();
                    pruning.signup_limiter.prune();
                }
            }
        }
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
        {
            tracing::error!(error = %e, "portal server failed");
        }
    });
    tracing::info!(%addr, "portal ready");
    Ok(Running { addr, state, task })
}

/// The `fc-portal` process: the tenancy port and the portal, with its own
/// health, readiness and metrics on `ops_addr`.
pub struct Process {
    /// The tenancy and admin port.
    pub tenancy: tenancy::Grpc,
    /// The portal.
    pub portal: Running,
    /// Where `/healthz`, `/readyz`, `/metrics` listen.
    pub ops_addr: SocketAddr,
    ops: tokio::task::JoinHandle<()>,
}

impl Process {
    /// Wait until every part stopped (after shutdown fired).
    pub async fn wait(self) {
        self.portal.wait().await;
        self.tenancy.wait().await;
        let _ = self.ops.await;
    }
}

/// Starts the `fc-portal` process's parts; `bus` is the platform's NATS.
pub async fn serve_process(config: Config, bus: &fc_bus::BusConfig, shutdown: Shutdown) -> Result<Process, Box<dyn std::error::Error>> {
    let ops_listener = tokio::net::TcpListener::bind(&config.ops_addr)
        .await
        .map_err(|source| StartError::Bind { addr: config.ops_addr.clone(), source })?;
    let ops_addr = ops_listener.local_addr()?;
    let registry = Arc::new(open_registry(&config).await?);
    let nats = fc_bus::connect_client(bus, "portal").await?;
    let tenancy = tenancy::serve(&config, registry.clone(), nats.clone(), shutdown.clone()).await?;
    let portal = serve(config, registry, nats.clone(), shutdown.clone()).await?;
    let ready: fc_rpc::ops::Readiness = Arc::new(move || match nats.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        _ => Err("NATS is unreachable".into()),
    });
    let ops = tokio::spawn(fc_rpc::ops::serve(ops_listener, ready, shutdown));
    Ok(Process { tenancy, portal, ops_addr, ops })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The portal's modules depend on each other without a cycle (the REST
    /// handlers, the pages and the settlement routes once formed one): `web`,
    /// `usage` and `auth` are leaves, `openapi` alone knows every handler module.
    #[test]
    fn the_handler_modules_form_no_cycle() {
        let modules = ["api", "auth", "live", "openapi", "pages", "partners", "supply", "supply_pages", "tenancy", "usage", "web"];
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
        let uses = |m: &str| -> Vec<&'static str> {
            let text = std::fs::read_to_string(dir.join(format!("{m}.rs"))).expect("module source");
            let text = text.split("#[cfg(test)]").next().unwrap_or_default().to_string();
            modules
                .iter()
                .copied()
                .filter(|other| *other != m)
                .filter(|other| {
                    text.contains(&format!("crate::{other}::"))
                        || text.contains(&format!("crate::{other};"))
                        || text
                            .lines()
                            .any(|l| l.starts_with("use crate::{") && l.contains(&format!(" {other}")) || l.contains(&format!("{{{other}")))
                })
                .collect()
        };
        let graph: std::collections::HashMap<&str, Vec<&str>> = modules.iter().map(|m| (*m, uses(m))).collect();
        assert!(graph["openapi"].contains(&"api"), "the scan sees dependencies: {graph:?}");
        // Depth-first search for a back edge.
        fn visit<'a>(m: &'a str, g: &std::collections::HashMap<&'a str, Vec<&'a str>>, path: &mut Vec<&'a str>, done: &mut Vec<&'a str>) {
            if done.contains(&m) {
                return;
            }
            assert!(!path.contains(&m), "a cycle: {} -> {m}", path.join(" -> "));
            path.push(m);
            for next in &g[m] {
                visit(next, g, path, done);
            }
            path.pop();
            done.push(m);
        }
        let mut done = Vec::new();
        for m in modules {
            visit(m, &graph, &mut Vec::new(), &mut done);
        }
    }

    #[test]
    fn example_config_documents_the_portal_defaults() {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/factorychain.example.toml");
        let mut table = fc_core::config::read_table(&path).expect("example config parses");
        let section = match table.remove("portal") {
            Some(toml::Value::Table(t)) => t,
            other => panic!("the example has no [portal] table: {other:?}"),
        };
        let cfg: Config = fc_core::config::load_table(Some(section), "FC_PORTAL__", Vec::new()).expect("the [portal] table parses");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn bad_trusted_proxies_are_all_named() {
        let cfg = Config {
            trusted_proxies: vec!["10.0.0.0/8".into(), "proxy.example".into(), "::1".into(), "10.0.0.0/40".into()],
            ..Config::default()
        };
        let err = cfg.trusted_proxy_ranges().unwrap_err().to_string();
        assert!(err.contains("proxy.example") && err.contains("10.0.0.0/40") && !err.contains("::1"), "{err}");
        assert_eq!(
            Config { trusted_proxies: vec!["10.0.0.0/8".into(), "::1".into()], ..Config::default() }.trusted_proxy_ranges().unwrap().len(),
            2
        );
    }
}
