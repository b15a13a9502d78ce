//! `surge-origin`: starts the origin service with configuration from the environment (and
//! `SURGE_CONFIG`), and says what it started and where; `surge-origin voters …` registers
//! voters in the configured database.

use std::future::IntoFuture;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use surge_origin::config::Config;
use surge_origin::domain::voters::code::CodeHasher;
use surge_origin::domain::voters::{self, CodesFile};
use surge_origin::http;
use surge_origin::startup::{self, open_database};
use surge_origin::telemetry::otel;
use surge_shared::admin::{ImportVotersRequest, MAX_VOTERS_PER_REQUEST};

/// Surge's origin: without a command, serves (settings from the environment and
/// `SURGE_CONFIG`; see README.md).
/// jemalloc, for its heap profiles (`POST /performance/apm/heap`); sampling is configured at
/// build time (`.cargo/config.toml`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "surge-origin", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Registers voters in the database named by DATABASE_URL (and DATABASE_SHARD_URLS).
    Voters {
        #[command(subcommand)]
        action: VotersCommand,
    },
    /// Reads and validates the configuration (environment and SURGE_CONFIG), prints it with
    /// secrets redacted, and exits: 0 when it is valid, 2 with the variable at fault
    /// otherwise. Connects to nothing.
    CheckConfig,
}

#[derive(Subcommand)]
enum VotersCommand {
    /// Registers COUNT new voters for an election and writes their codes to a new file
    /// (mode 0600, CSV `voter_id,code`). Codes are shown only there: only hashes are stored.
    Issue {
        /// The election they may vote in.
        #[arg(long)]
        election: i64,
        /// How many voters.
        #[arg(long)]
        count: usize,
        /// The codes file to create (never replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Imports an existing registry: one JSON object per line, `{"voter_id": "…",
    /// "elections": [1], "code": "…"}`; voters without a code get one, written to --out.
    Import {
        /// The registry export (JSON lines).
        #[arg(long)]
        file: PathBuf,
        /// Where codes issued now go (needed when an entry has no code).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command()
        .after_help("`surge-origin --help` lists every setting.")
        .after_long_help(surge_origin::settings::catalogue::help())
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("surge-origin: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match otel::init(&config.region) {
        Ok(telemetry) => telemetry,
        Err(message) => {
            eprintln!("surge-origin: configuration error: {message}");
            return ExitCode::from(2);
        }
    };
    let code = match cli.command {
        None => serve(config, &telemetry).await,
        Some(Command::CheckConfig) => {
            println!("surge-origin: the configuration is valid\n{config:#?}");
            ExitCode::SUCCESS
        }
        Some(Command::Voters { action }) => match run_voters(&config, action).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("surge-origin voters: {e}");
                ExitCode::from(2)
            }
        },
    };
    // Spans still queued go to the collector before the process ends.
    telemetry.shutdown();
    code
}

/// Registers voters through the configured store, `MAX_VOTERS_PER_REQUEST` at a time.
async fn run_voters(config: &Config, action: VotersCommand) -> Result<(), String> {
    let Some(settings) = &config.database else {
        return Err(
            "DATABASE_URL is not set: the embedded store lives in the server's memory, so register voters there with POST /performance/voters/issue".into(),
        );
    };
    let pepper = config
        .domain
        .voter_pepper
        .clone()
        .ok_or("SURGE_VOTER_PEPPER is not set")?;
    let hasher = CodeHasher::new(pepper);
    let (entries, out) = match action {
        VotersCommand::Issue {
            election,
            count,
            out,
        } => {
            if election <= 0 || count == 0 {
                return Err("--election must be a positive id and --count at least 1".into());
            }
            let mut entries = Vec::with_capacity(count);
            while entries.len() < count {
                let n = (count - entries.len()).min(MAX_VOTERS_PER_REQUEST);
                entries.extend(
                    voters::new_voters(election, n)
                        .map_err(|e| e.message)?
                        .voters,
                );
            }
            (entries, Some(out))
        }
        VotersCommand::Import { file, out } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let entries =
                voters::parse_json_lines(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            if out.is_none() && entries.iter().any(|e| e.code.is_none()) {
                return Err(
                    "some voters have no code: give --out FILE for the codes issued to them".into(),
                );
            }
            (entries, out)
        }
    };
    let mut codes = match &out {
        Some(path) => Some(create_codes_file(path)?),
        None => None,
    };
    let (store, _db) = open_database(settings, config.domain.vote_batch)
        .await
        .map_err(|e| e.to_string())?;
    let (mut registered, mut existing, mut issued) = (0, 0, 0);
    for chunk in entries.chunks(MAX_VOTERS_PER_REQUEST) {
        let request = ImportVotersRequest {
            voters: chunk.to_vec(),
        };
        let report = voters::register(&store, &hasher, &request)
            .await
            .map_err(|e| format!("after {registered} voters registered: {e}"))?;
        if let Some(file) = codes.as_mut() {
            file.append(&report.issued)
                .map_err(|e| format!("cannot write the codes file: {e}"))?;
        }
        registered += report.registered;
        existing += report.existing.len();
        issued += report.issued.len();
    }
    println!(
        "surge-origin voters: {registered} registered, {existing} already registered (unchanged), {issued} codes issued{}",
        out.map(|p| format!(" into {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

fn create_codes_file(path: &Path) -> Result<CodesFile, String> {
    CodesFile::create(path).map_err(|e| {
        format!(
            "cannot create {} ({e}); codes files are never replaced: choose a new name",
            path.display()
        )
    })
}

async fn bind(address: SocketAddr, var: &str) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(address).await {
        Ok(l) => Some(l),
        Err(e) => {
            eprintln!("surge-origin: cannot listen on {address} ({var}): {e}");
            None
        }
    }
}

async fn serve(config: Config, telemetry: &otel::Telemetry) -> ExitCode {
    let Some(listener) = bind(config.listen, "SURGE_LISTEN").await else {
        return ExitCode::from(2);
    };
    let Some(admin_listener) = bind(config.admin_listen, "SURGE_ADMIN_LISTEN").await else {
        return ExitCode::from(2);
    };
    let metrics_listener = match config.metrics_listen {
        None => None,
        Some(address) => match bind(address, "SURGE_METRICS_LISTEN").await {
            Some(listener) => Some(listener),
            None => return ExitCode::from(2),
        },
    };
    if let Some(endpoint) = telemetry.exporting {
        tracing::info!(endpoint, "exporting spans over OTLP");
    }
    let state = match startup::start(config, telemetry.trees.clone()).await {
        Ok(state) => state,
        Err(e) => {
            eprintln!("surge-origin: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let config = &state.config;
    let admin = if config.admin_token.is_some() {
        format!("on at http://{}/performance", config.admin_listen)
    } else {
        "off (set SURGE_ADMIN_TOKEN)".to_string()
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
    if std::io::stdout().is_terminal() {
        println!(
            "surge-origin: region {} listening on http://{}\n  data: {store}\n  L2: {l2}\n  CDN purge: {cdn}\n  admin API: {admin}\n  try: http://{}/elections/1",
            config.region, config.listen, config.listen
        );
    } else {
        tracing::info!(region = %config.region, listen = %config.listen, data = %store, l2, cdn, admin = %admin, "listening");
    }
    if config.domain.cookie_keys.is_empty() {
        tracing::warn!("SURGE_COOKIE_KEYS is not set; logins are signed with a per-process key");
    }
    let app = http::router(state.clone());
    let admin_app =
        http::admin_router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    // Ctrl-C locally, SIGTERM from Kubernetes: not ready at once, keep serving for the drain
    // period while load balancers stop sending, then stop accepting and finish what is in
    // flight.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let draining = state.clone();
    tokio::spawn(async move {
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
        draining.lifecycle.start_draining();
        tracing::info!(drain = ?draining.config.drain, "stopping: not ready, draining");
        tokio::time::sleep(draining.config.drain).await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let public = tokio::spawn(http::serve::serve(
        listener,
        app,
        config.public_http,
        std::sync::Arc::new(http::hit::FreshHits(state.clone())),
        until_stopped(stopped.clone()),
    ));
    if let Some(listener) = metrics_listener {
        let app = http::metrics_router(state.clone());
        let stopping = until_stopped(stopped.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stopping)
                .await
            {
                tracing::error!("metrics listener: {e}");
            }
        });
    }
    let admin = tokio::spawn(
        axum::serve(admin_listener, admin_app)
            .with_graceful_shutdown(until_stopped(stopped))
            .into_future(),
    );
    // Ready once the start-up warm has filled the cache through the public routes.
    if !state.config.start_warm.is_empty() {
        let report = surge_origin::cache::warm::warm(
            &state.config.warm_target(),
            state.config.start_warm.clone(),
            8,
        )
        .await;
        for failure in &report.failed {
            tracing::warn!(url = %failure.url, error = %failure.error, "start-up warm");
        }
    }
    state.lifecycle.set_ready();
    let served = match tokio::try_join!(public, admin) {
        Ok(((), Ok(()))) => true,
        Ok(((), Err(e))) => {
            eprintln!("surge-origin: server error: {e}");
            false
        }
        Err(e) => {
            eprintln!("surge-origin: server task failed: {e}");
            false
        }
    };
    // Nothing a vote asked for is lost to the shutdown: its results purge goes out now.
    state.vote_purges.flush(&state.purger).await;
    // The last seconds of SLA counts go to the store too, and the last minute's request
    // count to the forecast's history.
    state.sla.flush().await;
    if let Some(store) = &state.rate_store {
        surge_origin::scaling::history::hand_in_last(&state.rates, store.as_ref()).await;
    }
    if served {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
