//! A real Prometheus (the Debian package `cargo xtask setup` installs) on 127.0.0.1: it
//! scrapes the given `/metrics` targets every second and evaluates the project's recording and
//! alert rules (the `spec` of `infrastructure/monitoring/prometheus-rules.yaml`, with every
//! group evaluated every second so a test sees results quickly).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::net::{free_port, is_listening, wait_until};
use crate::process::{ChildGuard, tail, which};
use crate::{HarnessError, Result};

/// A running Prometheus; dropping it stops the server.
pub struct Prometheus {
    _child: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The rule groups of a PrometheusRule manifest: its `spec:` block, as a rules file, each
/// group's `interval` set to `interval`.
pub fn rules_file(manifest: &str, interval: &str) -> String {
    manifest
        .lines()
        .skip_while(|l| l.trim_end() != "spec:")
        .skip(1)
        .map(|l| {
            let l = l.strip_prefix("  ").unwrap_or(l);
            match l.trim_start().strip_prefix("interval:") {
                Some(_) => format!(
                    "{}interval: {interval}",
                    &l[..l.len() - l.trim_start().len()]
                ),
                None => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`, serving `GET /metrics`) with the
    /// target labels `labels`, and evaluating the rules of the PrometheusRule at `rules`.
    pub fn start(
        targets: &[String],
        labels: &[(&str, &str)],
        rules: Option<&Path>,
    ) -> Result<Self> {
        let program = which("prometheus").ok_or(HarnessError::Missing {
            program: "prometheus".into(),
            hint: "apt-get install prometheus (cargo xtask setup does)",
        })?;
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut rule_files = String::new();
        if let Some(rules) = rules {
            let manifest = std::fs::read_to_string(rules)?;
            let path = dir.path().join("rules.yml");
            std::fs::write(&path, rules_file(&manifest, "1s"))?;
            rule_files = format!("rule_files:\n  - {}\n", path.display());
        }
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}: \"{v}\""))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{rule_files}scrape_configs:\n  - job_name: surge-origin\n    static_configs:\n      - targets: [{}]\n        labels: {{{}}}\n",
            targets.join(", "),
            labels.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let log = dir.path().join("prometheus.log");
        let child = ChildGuard::spawn(
            Command::new(program)
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--web.enable-lifecycle"),
            &log,
        )?;
        wait_until(
            "prometheus",
            Duration::from_secs(30),
            || {
                Ok(is_listening(port)
                    && ureq::get(&format!("http://127.0.0.1:{port}/-/ready"))
                        .call()
                        .is_ok())
            },
            || tail(&log, 20),
        )?;
        Ok(Self {
            _child: child,
            port,
            _dir: dir,
        })
    }

    /// Its base URL (the web UI and the HTTP API).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET /api/v1/query` for `promql`: the API's whole answer (`status`, `data`, and on
    /// failure `error`).
    pub fn query(&self, promql: &str) -> Result<Value> {
        let mut response = ureq::get(&format!("{}/api/v1/query", self.url()))
            .query("query", promql)
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .map_err(|e| HarnessError::Command {
                command: format!("query {promql}"),
                output: e.to_string(),
            })?;
        let text = response.body_mut().read_to_string().unwrap_or_default();
        serde_json::from_str(&text).map_err(|e| HarnessError::Command {
            command: format!("query {promql}"),
            output: format!("{e}: {text}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rules_file_is_the_manifest_spec_with_the_given_interval() {
        let manifest = "apiVersion: v1\nkind: PrometheusRule\nspec:\n  groups:\n    - name: a\n      interval: 30s\n      rules:\n        - record: x\n          expr: up\n";
        assert_eq!(
            super::rules_file(manifest, "1s"),
            "groups:\n  - name: a\n    interval: 1s\n    rules:\n      - record: x\n        expr: up"
        );
    }
}
