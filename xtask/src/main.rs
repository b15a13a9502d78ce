//! Project automation (`cargo xtask …`):
//!
//! - `setup`: installs what the test suite needs, skipping what is present (Debian packages,
//!   rustup targets).
//! - `test`: `setup`, then the whole suite: wasm32 builds of the shared and edge crates, the
//!   benches in quick mode, doc tests, and the unit, property and real-service integration
//!   tests (nextest when installed, else `cargo test`).
//! - `run`: starts Surge locally (the origin with embedded defaults).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Surge project automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the tests need (idempotent).
    Setup,
    /// Run the whole test suite (runs `setup` first).
    Test,
    /// Start Surge locally.
    Run,
}

/// A failed step, with what to do about it.
struct Failure(String);

type Step = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup(),
        Task::Test => setup().and_then(|()| test()),
        Task::Run => run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

fn status(command: &mut Command) -> Step {
    let shown = format!("{command:?}");
    println!("xtask: $ {shown}");
    let status = command
        .status()
        .map_err(|e| Failure(format!("cannot start {shown}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failure(format!("{shown} failed ({status})")))
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Debian packages the suite needs: (program that proves it is installed, package).
const APT_PACKAGES: [(&str, &str); 3] = [
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("psql", "postgresql-client"),
];

/// Rust targets the suite builds for.
const TARGETS: [&str; 2] = ["wasm32-unknown-unknown", "wasm32-wasip2"];

fn postgres_server_present() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().join("bin/pg_ctl").is_file())
    })
}

fn setup() -> Step {
    let mut missing: Vec<&str> = APT_PACKAGES
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|(_, package)| *package)
        .collect();
    if !postgres_server_present() {
        missing.push("postgresql");
    }
    if !missing.is_empty() {
        if !is_root() {
            return Err(Failure(format!(
                "missing Debian packages {missing:?}: run `sudo apt-get install -y {}` and retry",
                missing.join(" ")
            )));
        }
        status(Command::new("apt-get").args(["update", "-qq"]))?;
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| Failure(format!("rustup is needed to add wasm targets: {e}")))?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    let wanted: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !wanted.is_empty() {
        status(Command::new("rustup").args(["target", "add"]).args(&wanted))?;
    }
    println!("xtask: setup complete");
    Ok(())
}

fn test() -> Step {
    for target in TARGETS {
        status(cargo().args([
            "build",
            "-p",
            "surge-shared",
            "-p",
            "surge-edge",
            "--target",
            target,
        ]))?;
    }
    status(cargo().args(["bench", "-p", "surge-bench", "--", "--test"]))?;
    status(cargo().args(["test", "--workspace", "--doc"]))?;
    // The main suite runs last so its summary closes the output.
    if on_path("cargo-nextest") {
        status(cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]))?;
    } else {
        status(cargo().args(["test", "--workspace", "--lib", "--bins", "--tests"]))?;
    }
    Ok(())
}

fn run() -> Step {
    println!("xtask: starting surge-origin with embedded defaults (Ctrl-C stops it)");
    status(cargo().args(["run", "--release", "-p", "surge-origin"]))
}
