//! `surge-origin`: starts the origin service with configuration from the environment.

use std::process::ExitCode;
use std::sync::Arc;

use surge_origin::api::{self, AppState};
use surge_origin::config::Config;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_vars(|name| std::env::var(name).ok()) {
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
    let admin = if config.admin_token.is_some() {
        "on"
    } else {
        "off (set SURGE_ADMIN_TOKEN)"
    };
    println!(
        "surge-origin: region {} listening on http://{} — health /healthz, admin API {admin}",
        config.region, config.listen
    );
    let app = api::router(Arc::new(AppState { config }));
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
