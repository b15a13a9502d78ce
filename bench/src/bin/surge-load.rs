//! `surge-load`: runs an election-day scenario against the edge or the origin and reports
//! latency (from each request's intended start), errors, cache status mix and throughput;
//! compares a run with a baseline; searches for the maximum sustainable rate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use surge_bench::load::capacity::{CapacitySettings, capacity};
use surge_bench::load::compare::{compare, table};
use surge_bench::load::credentials::Credentials;
use surge_bench::load::k6;
use surge_bench::load::model::ModelInputs;
use surge_bench::load::report::Report;
use surge_bench::load::runner::{RunSettings, run};
use surge_bench::load::scenario::Scenario;
use surge_bench::load::threshold::{Threshold, broken};
use surge_bench::simulate::surge::Surge;
use surge_bench::simulate::{Strategy, chart, simulate, table as surge_table};

#[derive(Parser)]
#[command(
    name = "surge-load",
    about = "Load generator for Surge's election-day scenarios"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Target {
    /// Scenario file (TOML), e.g. bench/scenarios/election-day.toml.
    #[arg(long)]
    scenario: PathBuf,
    /// Base URL of the edge or the origin.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Multiply the scenario's rates (open) or users (closed), e.g. 0.01 for one machine.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Multiply every duration of the scenario, e.g. 0.01 for a minute-long peak.
    #[arg(long, default_value_t = 1.0)]
    time_scale: f64,
    /// Closed model: virtual users (after --scale).
    #[arg(long)]
    users: Option<u32>,
    /// Closed model: think time between a user's requests (after --time-scale).
    #[arg(long, value_parser = humantime::parse_duration)]
    think_time: Option<Duration>,
    /// Closed model: time over which users start.
    #[arg(long, value_parser = humantime::parse_duration)]
    ramp_up: Option<Duration>,
    /// Closed model: run time.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Seed of the step and placeholder draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Spread requests over N client addresses (CF-Connecting-IP) for runs through
    /// `wrangler dev`; Cloudflare itself overwrites the header.
    #[arg(long)]
    client_ips: Option<u32>,
    /// Voter credentials (CSV `voter_id,code`, as `surge-origin voters issue --out` writes):
    /// each virtual user logs in with its own.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Pass/fail criteria, e.g. 'p99<1000ms', 'errors<0.1%', 'p99{step=cast_vote}<800ms'
    /// (dropped arrivals count as errors).
    #[arg(long = "threshold")]
    thresholds: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario; exit 1 when a threshold breaks.
    Run {
        #[command(flatten)]
        target: Target,
        /// Write the JSON report here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the HTML report here.
        #[arg(long)]
        html: Option<PathBuf>,
        /// No live progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Compare a report with a baseline; exit 1 on a regression beyond the tolerance.
    Compare {
        /// The baseline report (JSON).
        baseline: PathBuf,
        /// The current report (JSON).
        current: PathBuf,
        /// Allowed worsening, in %.
        #[arg(long, default_value_t = 10.0)]
        tolerance: f64,
    },
    /// Step the arrival rate up until a threshold breaks; report the maximum sustainable rate.
    Capacity {
        #[command(flatten)]
        target: Target,
        /// First rate (requests/s).
        #[arg(long, default_value_t = 100.0)]
        start: f64,
        /// Added per step.
        #[arg(long, default_value_t = 100.0)]
        step: f64,
        /// Highest rate tried.
        #[arg(long, default_value_t = 100_000.0)]
        max: f64,
        /// Time at each rate.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        stage: Duration,
    },
    /// How many origin pods, Redis shards and Postgres servers a peak needs (see
    /// bench/RESULTS.md for the formula and the measured defaults).
    CapacityModel {
        #[command(flatten)]
        inputs: ModelInputs,
    },
    /// Write the scenario as a k6 script (same steps, weights, think time, stages, thresholds
    /// and credentials file) for distributed runs: `k6 run`, or the k6-operator TestRun in
    /// infrastructure/load/.
    ExportK6 {
        #[command(flatten)]
        target: Target,
        /// Where to write the script.
        #[arg(long)]
        out: PathBuf,
    },
    /// Replay a traffic curve (bench/surges/*.toml) through the HPA v2 algorithm under the
    /// scaling strategies; print minutes over capacity, peak pods and pod-hours.
    Simulate {
        /// Surge file (TOML), e.g. bench/surges/election-day.toml.
        #[arg(long)]
        scenario: PathBuf,
        /// Strategies to compare (repeat the flag; all three by default).
        #[arg(long, value_enum)]
        strategy: Vec<Strategy>,
        /// Time from pod creation to ready (overrides the file's `pods.start`).
        #[arg(long, value_parser = humantime::parse_duration)]
        pod_start: Option<Duration>,
        /// Requests/s one pod serves within the SLA (overrides `pods.rps`; measure it with
        /// `surge-load capacity`).
        #[arg(long)]
        pod_rps: Option<f64>,
        /// Write the HTML chart here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

fn load_scenario(target: &Target) -> Result<Scenario, String> {
    let path = &target.scenario;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Scenario::from_toml(&text)
        .and_then(|s| s.scaled(target.scale))
        .and_then(|s| s.time_scaled(target.time_scale))
        .and_then(|s| {
            s.closed_overrides(
                target.users,
                target.think_time,
                target.ramp_up,
                target.duration,
            )
        })
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn settings(target: &Target, progress: bool) -> Result<RunSettings, String> {
    let credentials = match &target.credentials {
        None => Credentials::default(),
        Some(path) => Credentials::read(path)?,
    };
    Ok(RunSettings {
        target: target.target.clone(),
        timeout: target.timeout,
        progress,
        seed: target.seed,
        client_ips: target.client_ips,
        credentials: std::sync::Arc::new(credentials),
    })
}

fn parse_thresholds(texts: &[String]) -> Result<Vec<Threshold>, String> {
    texts.iter().map(|t| Threshold::parse(t)).collect()
}

fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a surge-load report: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn main_result(cli: Cli) -> Result<bool, String> {
    match cli.command {
        Command::Run {
            target,
            out,
            html,
            quiet,
        } => {
            let scenario = load_scenario(&target)?;
            let thresholds = parse_thresholds(&target.thresholds)?;
            let settings = settings(&target, !quiet)?;
            let report = run(&scenario, &settings).await.map_err(|e| e.to_string())?;
            print!("{}", report.table());
            if let Some(path) = out {
                let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
                write(&path, &json)?;
            }
            if let Some(path) = html {
                write(&path, &report.html())?;
            }
            let failed = broken(&thresholds, &report)?;
            for line in &failed {
                println!("threshold broken: {line}");
            }
            Ok(failed.is_empty())
        }
        Command::Compare {
            baseline,
            current,
            tolerance,
        } => {
            let rows = compare(&read_report(&baseline)?, &read_report(&current)?, tolerance);
            print!("{}", table(&rows, tolerance));
            Ok(rows.iter().all(|r| !r.regression))
        }
        Command::Capacity {
            target,
            start,
            step,
            max,
            stage,
        } => {
            let scenario = load_scenario(&target)?;
            let thresholds = parse_thresholds(&target.thresholds)?;
            if thresholds.is_empty() {
                return Err("capacity needs at least one --threshold to know when to stop".into());
            }
            let settings = settings(&target, false)?;
            let search = CapacitySettings {
                start,
                step,
                max,
                stage,
            };
            let result = capacity(&scenario, &settings, &search, &thresholds).await?;
            print!("{}", result.table());
            Ok(result.max_sustainable.is_some())
        }
        Command::CapacityModel { inputs } => {
            inputs.validate()?;
            print!("{}", inputs.solve().table());
            Ok(true)
        }
        Command::ExportK6 { target, out } => {
            let scenario = load_scenario(&target)?;
            let thresholds = parse_thresholds(&target.thresholds)?;
            let credentials = match &target.credentials {
                None => None,
                Some(path) => {
                    // Checked here, and absolute: k6 resolves `open()` from the script.
                    Credentials::read(path)?;
                    let full = std::fs::canonicalize(path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    Some(full.display().to_string())
                }
            };
            let js = k6::script(
                &scenario,
                &thresholds,
                &k6::Export {
                    target: target.target.clone(),
                    credentials,
                    timeout: target.timeout,
                    client_ips: target.client_ips,
                },
            );
            write(&out, &js)?;
            println!("wrote {} (run: k6 run {})", out.display(), out.display());
            Ok(true)
        }
        Command::Simulate {
            scenario,
            strategy,
            pod_start,
            pod_rps,
            html,
        } => {
            let text = std::fs::read_to_string(&scenario)
                .map_err(|e| format!("cannot read {}: {e}", scenario.display()))?;
            let mut surge =
                Surge::from_toml(&text).map_err(|e| format!("{}: {e}", scenario.display()))?;
            if let Some(start) = pod_start {
                surge.pods.start = start;
            }
            if let Some(rps) = pod_rps {
                if !(rps.is_finite() && rps > 0.0) {
                    return Err(format!("--pod-rps {rps}: give a positive rate"));
                }
                surge.pods.rps = rps;
            }
            let strategies = if strategy.is_empty() {
                Strategy::ALL.to_vec()
            } else {
                strategy
            };
            let outcomes: Vec<_> = strategies.iter().map(|&s| simulate(&surge, s)).collect();
            print!("{}", surge_table(&surge, &outcomes));
            if let Some(path) = html {
                write(&path, &chart::html(&surge, &outcomes))?;
            }
            Ok(true)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match main_result(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("surge-load: {e}");
            ExitCode::from(2)
        }
    }
}
