//! `surge-origin`: starts the origin service with configuration from the environment (and
//! `SURGE_CONFIG`), and says what it started and where.

use std::net::SocketAddr;
use std::process::ExitCode;

use surge_origin::api;
use surge_origin::config::Config;
use surge_origin::state::AppState;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("surge-origin: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "surge-origin: cannot listen on {} (SURGE_LISTEN): {e}",
                config.listen
            );
            return ExitCode::from(2);
        }
    };
    let state = match AppState::start(config).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("surge-origin: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let config = &state.config;
    let admin = if config.admin_token.is_some() {
        "on"
    } else {
        "off (set SURGE_ADMIN_TOKEN)"
    };
    let store = match &config.database {
        Some(db) => format!(
            "postgres ({} replica{})",
            db.replicas.len(),
            if db.replicas.len() == 1 { "" } else { "s" }
        ),
        None => "embedded demo store (set DATABASE_URL for Postgres)".into(),
    };
    let l2 = if config.redis.is_some() {
        "redis"
    } else {
        "none (set REDIS_URL)"
    };
    let cdn = if config.cloudflare.is_some() {
        "cloudflare"
    } else {
        "none (set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ZONE_ID)"
    };
    println!(
        "surge-origin: region {} listening on http://{}\n  data: {store}\n  L2: {l2}\n  CDN purge: {cdn}\n  admin API: {admin}\n  try: http://{}/elections/1",
        config.region, config.listen, config.listen
    );
    if config.cookie_keys.is_empty() {
        println!("  note: SURGE_COOKIE_KEYS is not set; logins are signed with a per-process key");
    }
    let app = api::router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Ctrl-C locally, SIGTERM from Kubernetes: stop accepting, finish what is in flight.
    let shutdown = async {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("surge-origin: server error: {e}");
            ExitCode::FAILURE
        }
    }
}
