//! Building the application from a configuration, serving it, and stopping it gracefully.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use parq_core::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;

use crate::backends;
pub use crate::backends::StartError;
use crate::clientaddr::TrustedProxies;
use crate::config::{Config, ConfigError};
use crate::demo::{self, DemoInfo};
use crate::http::MAX_BODY;
use crate::idempotency::{self, Records};
use crate::live::{self, Hub};
use crate::metrics::Metrics;
use crate::middleware;
use crate::passkeys::Keyring;
use crate::problem::{Problem, ProblemCode};
use crate::ratelimit::Limits;
use crate::routes;
use crate::state::{AppState, Inner};
use crate::web::WebConfig;

/// The application: state and router, not yet listening.
#[derive(Clone)]
pub struct App {
    state: AppState,
    records: Records,
    hub: Hub,
    sockets: socketioxide::layer::SocketIoLayer,
    demo_loaded: Option<demo::Loaded>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("state", &self.state).finish_non_exhaustive()
    }
}

impl App {
    /// Builds the backends the configuration names, the engine over them and, when enabled,
    /// the demo city.
    pub async fn new(config: Config) -> Result<App, StartError> {
        let configured = config.pass_keyring()?;
        let b = backends::select(&config).await?;
        if let Some(pg) = &b.postgres
            && let Some(message) = backends::postgres::check_schema(&pg.pool, &pg.schema).await?
        {
            return Err(ConfigError::Invalid { key: "store_schema".into(), message }.into());
        }
        b.gateway.prepare().await?;
        let keyring = pass_keyring(configured, &b).await?;
        tracing::info!(
            signing_key = keyring.signing_id(),
            verifying_keys = ?keyring.keys().iter().filter(|k| k.active()).map(|k| k.id).collect::<Vec<_>>(),
            "pass keys"
        );
        let mut builder = Engine::builder(b.store.clone(), b.gateway.as_dyn())
            .notifier(b.notifier.clone())
            .passes(keyring.pass_keyring());
        if let Some(lock) = &b.lock {
            builder = builder.lock(lock.clone());
        }
        let engine = builder.build();
        let web = WebConfig::load(&config)?;
        let (op_key, gate_key) = (config.operator_key.clone(), config.gate_key.clone());
        let demo = match (config.demo_enabled(), &b.sqlite) {
            (false, _) => None,
            // In a file: made on the first start only.
            (true, Some(lite)) => {
                let (info, loaded) =
                    demo::load_once(&engine, &b.accounts, &lite.db, op_key, gate_key).await?;
                Some((info, loaded))
            }
            (true, None) => {
                Some((demo::load(&engine, &b.accounts, op_key, gate_key).await?, demo::Loaded::Created))
            }
        };
        let (demo, demo_loaded) = match demo {
            Some((info, loaded)) => (Some(info), Some(loaded)),
            None => (None, None),
        };
        let records = idempotency::records(&b);
        let state = AppState(Arc::new(Inner {
            engine,
            accounts: b.accounts.clone(),
            // In the SQLite file every lookup is a read of the file; elsewhere (memory, or
            // PostgreSQL shared by replicas) each request reads the accounts as before.
            auth_cache: crate::auth_cache::AuthCache::new(
                (b.names.accounts == "sqlite").then_some(crate::auth_cache::TTL),
            ),
            test_gateway: b.gateway.test(),
            limits: Limits::new(
                config.rate_ip,
                config.rate_user,
                config.rate_key,
                config.rate_burst,
                backends::limits(&config)?,
            ),
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies)
                .map_err(|message| ConfigError::Invalid { key: "trusted_proxies".into(), message })?,
            backends: b,
            config,
            metrics: Metrics::default(),
            web,
            demo,
            openapi: crate::openapi::document(),
        }));
        let (sockets, hub) = live::layer(&state);
        Ok(App { state, records, hub, sockets, demo_loaded })
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// What the demo made, when it ran.
    pub fn demo(&self) -> Option<&DemoInfo> {
        self.state.demo.as_ref()
    }

    /// Whether the demo was made at this start or kept from an earlier one.
    pub fn demo_loaded(&self) -> Option<demo::Loaded> {
        self.demo_loaded
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// The router with every middleware.
    pub fn router(&self) -> Router {
        let s = self.state.clone();
        routes::router()
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed)
            // For the idempotency layer of the routes whose responses it records.
            .layer(Extension(self.records.clone()))
            .layer(from_fn_with_state(s.clone(), middleware::authenticate))
            .layer(from_fn_with_state(s.clone(), middleware::observe))
            .layer(CatchPanicLayer::custom(on_panic))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            // Outermost: `/socket.io/` is answered here; its connections are limited per
            // address and authenticated by the namespace's own middleware.
            .layer(self.sockets.clone())
            .with_state(s)
    }
}

/// The pass keyring: the configured one; else, with the store on PostgreSQL (shared by
/// replicas), none, and the server refuses to start; in an SQLite file, the one kept there
/// (made on the first start); in memory, a fresh one for this process.
async fn pass_keyring(configured: Option<Keyring>, b: &backends::Backends) -> Result<Keyring, StartError> {
    if let Some(k) = configured {
        return Ok(k);
    }
    if b.postgres.is_some() {
        return Err(ConfigError::Invalid {
            key: "pass_keys".into(),
            message: "is required with the store on PostgreSQL: every replica must sign and accept the same \
                      passes. Make a keyring once with `parq keys generate --out pass-keys.toml`, and give that \
                      same file to every replica as PARQ_PASS_KEYS_FILE=/path/to/pass-keys.toml (or \
                      pass_keys_file in the configuration file)"
                .into(),
        }
        .into());
    }
    if let Some(lite) = &b.sqlite {
        let document =
            lite.db.pass_keyring(|| Keyring::generate().map(|k| k.to_document()).unwrap_or_default()).await?;
        return Keyring::parse(&document).map_err(|e| {
            ConfigError::Invalid {
                key: "pass_keys".into(),
                message: format!(
                    "the keyring kept in {} {}; restore the file from a backup, or configure pass_keys",
                    lite.path.display(),
                    e.0
                ),
            }
            .into()
        });
    }
    Ok(Keyring::generate()?)
}

async fn not_found(uri: Uri) -> Problem {
    Problem::not_found(format!("no route {}", uri.path()))
}

async fn method_not_allowed() -> Problem {
    Problem::new(ProblemCode::MethodNotAllowed, "this route does not take that method")
}

fn on_panic(err: Box<dyn Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "a handler panicked");
    Problem::new(ProblemCode::Internal, "the server failed on this request; it has been logged")
        .into_response()
}

/// A server running in the background.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The application.
    pub app: App,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    sweeper: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
}

impl Running {
    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking connections, lets requests in flight finish (up to the configured grace),
    /// and stops the workers.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let grace = Duration::from_secs(self.app.state.config.shutdown_grace_secs);
        let mut server = self.server;
        match tokio::time::timeout(grace, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "server stopped with an error"),
            Ok(Err(e)) => tracing::error!(error = %e, "server task failed"),
            Err(_) => {
                tracing::warn!(?grace, "requests still running after the grace period; stopping anyway");
                server.abort();
            }
        }
        let _ = self.sweeper.await;
        for w in self.workers {
            let _ = w.await;
        }
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}

/// Builds the app from `config`, listens on `config.bind`, and starts the workers.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let bind = config.bind.clone();
    // Configuration and backends first: a bad setting is reported as such, whatever the port.
    let app = App::new(config).await?;
    let listener =
        TcpListener::bind(&bind).await.map_err(|source| StartError::Bind { addr: bind.clone(), source })?;
    serve(app, listener).await
}

/// Serves `app` on `listener` and starts the workers.
pub async fn serve(app: App, listener: TcpListener) -> Result<Running, StartError> {
    let addr =
        listener.local_addr().map_err(|source| StartError::Bind { addr: "listener".into(), source })?;
    let (stop, mut stopped) = watch::channel(false);
    let router = app.router();
    let mut until = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = until.wait_for(|s| *s).await;
            })
            .await
    });
    let mut workers =
        backends::spawn_workers(&app.state.backends, &app.state.engine, &app.state.config, stopped.clone());
    workers.push(tokio::spawn(live::relay(app.hub.clone(), stopped.clone())));
    let state = app.state.clone();
    let sweeper = tokio::spawn(async move {
        let every = Duration::from_secs(state.config.sweep_interval_secs);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopped.wait_for(|s| *s) => break,
            }
            match state.engine.sweep(state.config.sweep_batch).await {
                Ok(r) => {
                    state.metrics.swept(r.expired, r.failed);
                    if r.expired + r.settled + r.no_shows + r.failed > 0 {
                        tracing::info!(
                            expired = r.expired,
                            settled = r.settled,
                            no_shows = r.no_shows,
                            failed = r.failed,
                            "sweep"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "sweep failed; the next one retries"),
            }
        }
    });
    Ok(Running { addr, app, stop, server, sweeper, workers })
}
