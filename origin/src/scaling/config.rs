//! The scaling hooks' settings: how to reach the cluster, which workloads to manage, the
//! tick, the paths warmed at an event's start and the predictive floor.

use std::time::Duration;

use crate::settings::{ConfigError, Settings, fail};

/// How the origin reaches the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeAccess {
    /// The pod's service account (`SURGE_KUBE=in-cluster`).
    InCluster,
    /// `KUBECONFIG` or `~/.kube/config`, current context (`SURGE_KUBE=kubeconfig`).
    Kubeconfig,
}

/// Predictive scaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictiveConfig {
    /// The workload whose floor the forecast sets (`SURGE_PREDICTIVE_WORKLOAD`, default the
    /// first managed workload).
    pub workload: String,
    /// Requests/s one pod serves within the SLA, measured with `surge-load capacity`
    /// (`SURGE_POD_CAPACITY_RPS`; predictive scaling is off without it).
    pub per_pod_rps: f64,
    /// How far ahead to forecast (`SURGE_LOOK_AHEAD_MINUTES`, default 15).
    pub look_ahead_minutes: usize,
}

/// The scaling hooks' settings; scaling is off without `SURGE_KUBE`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingConfig {
    /// How to reach the API server.
    pub access: KubeAccess,
    /// Namespace of the workloads (`SURGE_KUBE_NAMESPACE`, default `surge`).
    pub namespace: String,
    /// Deployments managed, each with an HPA of the same name (`SURGE_SCALING_WORKLOADS`,
    /// default `api-gateway,auth-service,voting-service`).
    pub workloads: Vec<String>,
    /// How often scheduled events, expiries and the forecast are applied
    /// (`SURGE_SCALING_TICK`, default 15s).
    pub tick: Duration,
    /// Paths warmed when an event with `warm_cache` starts (`SURGE_WARM_URLS`, default
    /// `/api/elections`).
    pub warm_urls: Vec<String>,
    /// The forecast floor, when `SURGE_POD_CAPACITY_RPS` is set.
    pub predictive: Option<PredictiveConfig>,
}

fn is_kube_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Reads the scaling settings; `None` unless `SURGE_KUBE` asks for a cluster.
pub fn read(s: &Settings<'_>) -> Result<Option<ScalingConfig>, ConfigError> {
    let access = match s.get("SURGE_KUBE")?.as_deref() {
        None | Some("off") => return Ok(None),
        Some("in-cluster") => KubeAccess::InCluster,
        Some("kubeconfig") => KubeAccess::Kubeconfig,
        Some(other) => {
            return Err(fail(
                "SURGE_KUBE",
                format!(
                    "{other:?}: use `in-cluster` (inside a pod), `kubeconfig` (KUBECONFIG or ~/.kube/config) or `off`"
                ),
            ));
        }
    };
    let namespace = s
        .get("SURGE_KUBE_NAMESPACE")?
        .unwrap_or_else(|| "surge".into());
    if !is_kube_name(&namespace) {
        return Err(fail(
            "SURGE_KUBE_NAMESPACE",
            format!(
                "{namespace:?} is not a Kubernetes namespace name (lower-case letters, digits, '-')"
            ),
        ));
    }
    let workloads = s.list(
        "SURGE_SCALING_WORKLOADS",
        "api-gateway,auth-service,voting-service",
    )?;
    if let Some(bad) = workloads.iter().find(|w| !is_kube_name(w)) {
        return Err(fail(
            "SURGE_SCALING_WORKLOADS",
            format!(
                "{bad:?} is not a Deployment name; list names separated by commas, e.g. api-gateway,voting-service"
            ),
        ));
    }
    let tick = s.duration(
        "SURGE_SCALING_TICK",
        Duration::from_secs(15),
        Duration::from_millis(100),
        Duration::from_secs(300),
    )?;
    let warm_urls = s.list("SURGE_WARM_URLS", "/api/elections")?;
    if let Some(bad) = warm_urls
        .iter()
        .find(|u| !u.starts_with('/') || u.contains(' '))
    {
        return Err(fail(
            "SURGE_WARM_URLS",
            format!("{bad:?}: list paths of this origin starting with '/', separated by commas"),
        ));
    }
    let predictive = match s.get("SURGE_POD_CAPACITY_RPS")? {
        None => None,
        Some(text) => {
            let per_pod_rps: f64 = text
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    fail(
                        "SURGE_POD_CAPACITY_RPS",
                        format!("{text:?}: give the requests/s one pod sustains (a positive number, e.g. 2500)"),
                    )
                })?;
            let workload = s
                .get("SURGE_PREDICTIVE_WORKLOAD")?
                .unwrap_or_else(|| workloads[0].clone());
            if !workloads.contains(&workload) {
                return Err(fail(
                    "SURGE_PREDICTIVE_WORKLOAD",
                    format!(
                        "{workload:?} is not one of SURGE_SCALING_WORKLOADS ({})",
                        workloads.join(", ")
                    ),
                ));
            }
            let look_ahead_minutes = s.number("SURGE_LOOK_AHEAD_MINUTES", 15, 1, 1440)?;
            Some(PredictiveConfig {
                workload,
                per_pod_rps,
                look_ahead_minutes,
            })
        }
    };
    Ok(Some(ScalingConfig {
        access,
        namespace,
        workloads,
        tick,
        warm_urls,
        predictive,
    }))
}
