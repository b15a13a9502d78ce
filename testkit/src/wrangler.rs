//! The edge Worker under the real Workers runtime: `wrangler dev --local` (workerd) on a free
//! loopback port, with its own state directory, variables, and an injected `cf` object
//! (`CLOUDFLARE_CF_FETCH_PATH`) so geo tests can pose as a country.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::net::{free_port, wait_until};
use crate::process::{ChildGuard, tail};
use crate::{HarnessError, Result};

/// How long the first start may take (it may build the Worker).
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// The repository root (the directory holding `wrangler.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A running `wrangler dev`.
pub struct WranglerDev {
    child: ChildGuard,
    port: u16,
    dir: TempDir,
}

impl WranglerDev {
    /// Starts the Worker with `vars` (`--var NAME:VALUE`) and, if given, `cf` (JSON: country,
    /// continent, …) as every request's `cf` object; waits for `/__surge/health`.
    pub fn start(vars: &[(&str, &str)], cf: Option<&str>) -> Result<Self> {
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        if !wrangler.is_file() {
            return Err(HarnessError::Missing {
                program: wrangler.display().to_string(),
                hint: "run `cargo xtask setup` (npm ci)",
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("surge-wrangler-")
            .tempdir()?;
        let cf_path = dir.path().join("cf.json");
        std::fs::write(
            &cf_path,
            cf.unwrap_or(r#"{"country":"DE","continent":"EU","colo":"FRA"}"#),
        )?;
        let port = free_port()?;
        let inspector = free_port()?;
        let mut command = Command::new(&wrangler);
        command
            .current_dir(&root)
            .args(["dev", "--local", "--ip", "127.0.0.1"])
            .args([
                "--port",
                &port.to_string(),
                "--inspector-port",
                &inspector.to_string(),
            ])
            .arg("--persist-to")
            .arg(dir.path().join("state"))
            .arg("--show-interactive-dev-session=false")
            // The cf file must win: CLOUDFLARE_CF_FETCH_ENABLED=false would replace it with
            // miniflare's placeholder (a US client). A fresh file is never re-fetched.
            .env_remove("CLOUDFLARE_CF_FETCH_ENABLED")
            .env("CLOUDFLARE_CF_FETCH_PATH", &cf_path)
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_LOG_PATH", dir.path().join("logs"));
        for (name, value) in vars {
            command.arg("--var").arg(format!("{name}:{value}"));
        }
        let log = dir.path().join("wrangler.log");
        let child = ChildGuard::spawn_group(&mut command, &log)?;
        let dev = Self { child, port, dir };
        let health = dev.url("/__surge/health");
        wait_until(
            "wrangler dev",
            READY_TIMEOUT,
            || {
                Ok(ureq::get(&health)
                    .config()
                    .timeout_global(Some(Duration::from_secs(2)))
                    .build()
                    .call()
                    .is_ok())
            },
            || tail(&log, 30),
        )?;
        Ok(dev)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The last lines of wrangler's output.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("wrangler.log"), 40)
    }

    /// Stops it now.
    pub fn stop(&mut self) {
        self.child.kill();
    }
}
