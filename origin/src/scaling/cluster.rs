//! The Kubernetes side of scaling: read a workload's HorizontalPodAutoscaler and Deployment
//! scale, move the autoscaler's `minReplicas` floor, and scale a Deployment up at once.
//!
//! Every write is a JSON merge patch (`application/merge-patch+json`) carrying the
//! `resourceVersion` just read, so a concurrent writer makes the API server answer 409 instead
//! of one write silently undoing the other; a 409 is retried once on a fresh read. The floor
//! the autoscaler returns to is kept on the HPA itself, in the annotation [`BASE_ANNOTATION`],
//! written with the first raise and removed with the restore, so no state outside the cluster
//! is needed to undo a raise, and a restarted origin still knows it.
//!
//! The seam for tests is `kube::Client` itself: it takes any tower `Service`, so the tests
//! hand it a mock and check each request's path, verb, content type and body.

use std::fmt;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{HorizontalPodAutoscaler, MetricStatus, MetricTarget};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Annotation holding the autoscaler floor to return to.
pub const BASE_ANNOTATION: &str = "surge.dev/base-min-replicas";
/// Annotation naming what holds the floor up, for whoever reads the HPA with kubectl.
pub const RAISED_BY_ANNOTATION: &str = "surge.dev/raised-by";

/// A workload as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Deployment and HPA name.
    pub name: String,
    /// Replicas running (the Deployment's scale status).
    pub current: u32,
    /// The Deployment's replica count as last set (by the HPA or us).
    pub spec_replicas: u32,
    /// Replicas the HPA wants.
    pub desired: u32,
    /// The HPA's `minReplicas` now.
    pub min: u32,
    /// The HPA's `maxReplicas`.
    pub max: u32,
    /// The floor recorded before our first raise, if a raise is in place.
    pub base: Option<u32>,
    /// Targets and current values, e.g. `cpu: 45% / 60%`.
    pub metrics: Vec<String>,
    resource_version: Option<String>,
}

impl Workload {
    /// The floor the HPA returns to when nothing raises it.
    pub fn base_min(&self) -> u32 {
        self.base.unwrap_or(self.min)
    }
}

/// What went wrong talking to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The HPA or Deployment does not exist.
    #[error(
        "{kind} `{name}` not found in namespace `{namespace}`: create it (infrastructure/scaling/kubernetes) or fix SURGE_SCALING_WORKLOADS / SURGE_KUBE_NAMESPACE"
    )]
    NotFound {
        /// `HorizontalPodAutoscaler` or `Deployment`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The namespace looked in.
        namespace: String,
    },
    /// Someone else changed the object twice while we tried to patch it.
    #[error("{0}: the object kept changing under us (409 Conflict twice); retry the request")]
    Conflict(String),
    /// The origin's service account may not do this.
    #[error(
        "the Kubernetes API refused {0} (403): grant the origin's service account get/patch on horizontalpodautoscalers and deployments/scale (see infrastructure/scaling/kubernetes/base/rbac.yaml)"
    )]
    Forbidden(String),
    /// Anything else: unreachable API server, unexpected answer.
    #[error("Kubernetes API: {0}")]
    Failed(String),
}

/// Which object a call was about, for error messages.
#[derive(Clone, Copy)]
enum Kind {
    Hpa,
    Deployment,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Hpa => "HorizontalPodAutoscaler",
            Kind::Deployment => "Deployment",
        })
    }
}

/// The cluster client for one namespace.
#[derive(Clone)]
pub struct KubeCluster {
    hpas: Api<HorizontalPodAutoscaler>,
    deployments: Api<Deployment>,
    namespace: String,
}

fn count(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn target_text(target: &MetricTarget) -> String {
    if let Some(u) = target.average_utilization {
        format!("{u}%")
    } else if let Some(v) = &target.average_value {
        v.0.clone()
    } else if let Some(v) = &target.value {
        v.0.clone()
    } else {
        "?".into()
    }
}

fn current_text(status: Option<&MetricStatus>, name: &str) -> String {
    let Some(status) = status else {
        return "?".into();
    };
    let current = match status.type_.as_str() {
        "Resource" => status
            .resource
            .as_ref()
            .filter(|r| r.name == name)
            .map(|r| &r.current),
        "Pods" => status.pods.as_ref().map(|p| &p.current),
        "Object" => status.object.as_ref().map(|o| &o.current),
        "External" => status.external.as_ref().map(|e| &e.current),
        _ => None,
    };
    match current {
        Some(c) => {
            if let Some(u) = c.average_utilization {
                format!("{u}%")
            } else if let Some(v) = &c.average_value {
                v.0.clone()
            } else if let Some(v) = &c.value {
                v.0.clone()
            } else {
                "?".into()
            }
        }
        None => "?".into(),
    }
}

/// `cpu: 45% / 60%` for each metric the HPA scales on.
fn metrics_of(hpa: &HorizontalPodAutoscaler) -> Vec<String> {
    let specs = hpa
        .spec
        .as_ref()
        .and_then(|s| s.metrics.clone())
        .unwrap_or_default();
    let statuses = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_metrics.clone())
        .unwrap_or_default();
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let (name, target) = match spec.type_.as_str() {
                "Resource" => spec
                    .resource
                    .as_ref()
                    .map(|r| (r.name.clone(), target_text(&r.target))),
                "Pods" => spec
                    .pods
                    .as_ref()
                    .map(|p| (p.metric.name.clone(), target_text(&p.target))),
                "Object" => spec
                    .object
                    .as_ref()
                    .map(|o| (o.metric.name.clone(), target_text(&o.target))),
                "External" => spec
                    .external
                    .as_ref()
                    .map(|e| (e.metric.name.clone(), target_text(&e.target))),
                _ => None,
            }
            .unwrap_or_else(|| (spec.type_.clone(), "?".into()));
            let current = current_text(statuses.get(i), &name);
            format!("{name}: {current} / {target}")
        })
        .collect()
}

impl KubeCluster {
    /// A client for `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            hpas: Api::namespaced(client.clone(), namespace),
            deployments: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }

    /// Connects as configured: inside a pod with its service account, or from a kubeconfig
    /// (`KUBECONFIG` or `~/.kube/config`, current context).
    pub async fn connect(in_cluster: bool, namespace: &str) -> Result<Self, ClusterError> {
        let config = if in_cluster {
            kube::Config::incluster().map_err(|e| {
                ClusterError::Failed(format!(
                    "in-cluster config: {e} (SURGE_KUBE=in-cluster works only inside a pod)"
                ))
            })?
        } else {
            kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    ClusterError::Failed(format!(
                        "kubeconfig: {e} (set KUBECONFIG to a readable kubeconfig file)"
                    ))
                })?
        };
        let client = kube::Client::try_from(config)
            .map_err(|e| ClusterError::Failed(format!("client: {e}")))?;
        Ok(Self::new(client, namespace))
    }

    /// The namespace managed.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn error(&self, kind: Kind, name: &str, e: kube::Error) -> ClusterError {
        match e {
            kube::Error::Api(status) if status.code == 404 => ClusterError::NotFound {
                kind: match kind {
                    Kind::Hpa => "HorizontalPodAutoscaler",
                    Kind::Deployment => "Deployment",
                },
                name: name.to_string(),
                namespace: self.namespace.clone(),
            },
            kube::Error::Api(status) if status.code == 409 => {
                ClusterError::Conflict(format!("{kind} {name}"))
            }
            kube::Error::Api(status) if status.code == 403 => {
                ClusterError::Forbidden(format!("{kind} {name}: {}", status.message))
            }
            other => ClusterError::Failed(format!("{kind} {name}: {other}")),
        }
    }

    /// Reads the HPA and the Deployment's scale.
    pub async fn workload(&self, name: &str) -> Result<Workload, ClusterError> {
        let hpa = self
            .hpas
            .get(name)
            .await
            .map_err(|e| self.error(Kind::Hpa, name, e))?;
        let scale = self
            .deployments
            .get_scale(name)
            .await
            .map_err(|e| self.error(Kind::Deployment, name, e))?;
        let spec = hpa.spec.as_ref();
        let status = hpa.status.as_ref();
        let base = hpa
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BASE_ANNOTATION))
            .and_then(|v| v.parse().ok());
        Ok(Workload {
            name: name.to_string(),
            current: count(scale.status.as_ref().map(|s| s.replicas)),
            spec_replicas: count(scale.spec.as_ref().and_then(|s| s.replicas)),
            desired: count(status.map(|s| s.desired_replicas)),
            min: count(spec.and_then(|s| s.min_replicas)).max(1),
            max: count(spec.map(|s| s.max_replicas)),
            base,
            metrics: metrics_of(&hpa),
            resource_version: hpa.metadata.resource_version.clone(),
        })
    }

    /// Sets the HPA floor to `floor` (clamped to `1..=max`): a floor above the base records
    /// the base and `raised_by`; the base itself removes both annotations. Returns the
    /// workload as it was before, or `None` when nothing had to change.
    pub async fn set_floor(
        &self,
        name: &str,
        floor: u32,
        raised_by: &[String],
    ) -> Result<Option<Workload>, ClusterError> {
        let mut conflicts = 0;
        loop {
            let before = self.workload(name).await?;
            let base = before.base_min();
            let floor = floor.max(base).min(before.max.max(1));
            let raised = floor > base;
            let label = raised_by.join(",");
            let recorded = before.base.is_some();
            if before.min == floor && recorded == raised {
                return Ok(None);
            }
            let annotations = if raised {
                json!({ BASE_ANNOTATION: base.to_string(), RAISED_BY_ANNOTATION: label })
            } else {
                json!({ BASE_ANNOTATION: null, RAISED_BY_ANNOTATION: null })
            };
            let patch = json!({
                "metadata": {
                    "resourceVersion": before.resource_version,
                    "annotations": annotations,
                },
                "spec": { "minReplicas": floor },
            });
            match self
                .hpas
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(Some(before)),
                Err(e) => match self.error(Kind::Hpa, name, e) {
                    ClusterError::Conflict(_) if conflicts == 0 => conflicts += 1,
                    other => return Err(other),
                },
            }
        }
    }

    /// Raises the Deployment to at least `replicas` now (never lowers it); the HPA then holds
    /// it there through its floor. Returns whether it changed anything.
    pub async fn scale_up(&self, name: &str, replicas: u32) -> Result<bool, ClusterError> {
        let scale = self
            .deployments
            .get_scale(name)
            .await
            .map_err(|e| self.error(Kind::Deployment, name, e))?;
        let now = count(scale.spec.as_ref().and_then(|s| s.replicas));
        if now >= replicas {
            return Ok(false);
        }
        let patch = json!({ "spec": { "replicas": replicas } });
        self.deployments
            .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| self.error(Kind::Deployment, name, e))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::Value;
    use tower_test::mock::{self, Handle};

    const NS: &str = "surge";

    fn hpa(name: &str, min: i32, max: i32, base: Option<u32>, version: &str) -> Value {
        let mut annotations = serde_json::Map::new();
        if let Some(b) = base {
            annotations.insert(BASE_ANNOTATION.into(), json!(b.to_string()));
        }
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": name, "namespace": NS, "resourceVersion": version, "annotations": annotations },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": name },
                "minReplicas": min,
                "maxReplicas": max,
                "metrics": [{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 60 } } }]
            },
            "status": {
                "currentReplicas": 4,
                "desiredReplicas": 5,
                "currentMetrics": [{ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": 45 } } }]
            }
        })
    }

    fn scale(name: &str, replicas: i32) -> Value {
        json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": { "name": name, "namespace": NS },
            "spec": { "replicas": replicas },
            "status": { "replicas": replicas }
        })
    }

    fn status(code: u16, reason: &str) -> (u16, Value) {
        (
            code,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{reason} (from the mock)"), "reason": reason, "code": code
            }),
        )
    }

    fn cluster() -> (KubeCluster, Handle<Request<Body>, Response<Body>>) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (KubeCluster::new(kube::Client::new(service, NS), NS), handle)
    }

    /// Expects one request: checks verb, path, content type; answers `reply`; returns the body.
    async fn expect(
        handle: &mut Handle<Request<Body>, Response<Body>>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        reply: (u16, Value),
    ) -> Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method, "verb of {path}");
        assert_eq!(request.uri().path(), path);
        assert_eq!(
            request
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            content_type,
            "content type of {method} {path}"
        );
        let bytes = request.into_body().collect_bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        send.send_response(
            Response::builder()
                .status(StatusCode::from_u16(reply.0).expect("status"))
                .header("content-type", "application/json")
                .body(Body::from(reply.1.to_string().into_bytes()))
                .expect("response"),
        );
        body
    }

    const HPA_PATH: &str =
        "/apis/autoscaling/v2/namespaces/surge/horizontalpodautoscalers/voting-service";
    const SCALE_PATH: &str = "/apis/apps/v1/namespaces/surge/deployments/voting-service/scale";
    const MERGE: Option<&str> = Some("application/merge-patch+json");

    #[tokio::test]
    async fn reads_a_workload_from_its_hpa_and_scale() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                (200, hpa("voting-service", 3, 50, None, "7")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 4)),
            )
            .await;
        });
        let w = cluster.workload("voting-service").await.expect("workload");
        mock.await.expect("mock");
        assert_eq!(
            (w.current, w.desired, w.min, w.max, w.base),
            (4, 5, 3, 50, None)
        );
        assert_eq!(w.metrics, vec!["cpu: 45% / 60%".to_string()]);
    }

    #[tokio::test]
    async fn raising_the_floor_records_the_base_with_a_merge_patch() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                (200, hpa("voting-service", 3, 50, None, "7")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 4)),
            )
            .await;
            expect(
                &mut handle,
                Method::PATCH,
                HPA_PATH,
                MERGE,
                (200, hpa("voting-service", 20, 50, Some(3), "8")),
            )
            .await
        });
        let before = cluster
            .set_floor("voting-service", 20, &["event:election-night".into()])
            .await
            .expect("patched");
        let body = mock.await.expect("mock");
        assert_eq!(before.map(|w| w.min), Some(3));
        assert_eq!(
            body,
            json!({
                "metadata": {
                    "resourceVersion": "7",
                    "annotations": { BASE_ANNOTATION: "3", RAISED_BY_ANNOTATION: "event:election-night" }
                },
                "spec": { "minReplicas": 20 }
            })
        );
    }

    #[tokio::test]
    async fn restoring_returns_to_the_recorded_base_and_drops_the_annotations() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                (200, hpa("voting-service", 20, 50, Some(3), "8")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 20)),
            )
            .await;
            expect(
                &mut handle,
                Method::PATCH,
                HPA_PATH,
                MERGE,
                (200, hpa("voting-service", 3, 50, None, "9")),
            )
            .await
        });
        cluster
            .set_floor("voting-service", 0, &[])
            .await
            .expect("patched");
        let body = mock.await.expect("mock");
        assert_eq!(body["spec"], json!({ "minReplicas": 3 }));
        assert_eq!(
            body["metadata"]["annotations"],
            json!({ BASE_ANNOTATION: null, RAISED_BY_ANNOTATION: null })
        );
    }

    #[tokio::test]
    async fn a_floor_above_the_hpa_max_is_clamped_and_an_unchanged_floor_is_not_patched() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                (200, hpa("voting-service", 3, 10, None, "7")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 4)),
            )
            .await;
            let first = expect(
                &mut handle,
                Method::PATCH,
                HPA_PATH,
                MERGE,
                (200, hpa("voting-service", 10, 10, Some(3), "8")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                (200, hpa("voting-service", 10, 10, Some(3), "8")),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 10)),
            )
            .await;
            first
        });
        cluster
            .set_floor("voting-service", 99, &["emergency:1".into()])
            .await
            .expect("patched");
        let again = cluster
            .set_floor("voting-service", 99, &["emergency:1".into()])
            .await
            .expect("read");
        let body = mock.await.expect("mock");
        assert_eq!(body["spec"]["minReplicas"], json!(10));
        assert_eq!(again, None, "no second patch");
    }

    #[tokio::test]
    async fn scale_up_patches_the_scale_subresource_and_never_lowers() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 4)),
            )
            .await;
            let body = expect(
                &mut handle,
                Method::PATCH,
                SCALE_PATH,
                MERGE,
                (200, scale("voting-service", 30)),
            )
            .await;
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                (200, scale("voting-service", 30)),
            )
            .await;
            body
        });
        assert!(
            cluster
                .scale_up("voting-service", 30)
                .await
                .expect("scaled")
        );
        assert!(!cluster.scale_up("voting-service", 12).await.expect("read"));
        assert_eq!(
            mock.await.expect("mock"),
            json!({ "spec": { "replicas": 30 } })
        );
    }

    #[tokio::test]
    async fn a_missing_workload_is_a_named_not_found() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                HPA_PATH,
                None,
                status(404, "NotFound"),
            )
            .await;
        });
        let e = cluster.workload("voting-service").await.expect_err("404");
        mock.await.expect("mock");
        assert_eq!(
            e,
            ClusterError::NotFound {
                kind: "HorizontalPodAutoscaler",
                name: "voting-service".into(),
                namespace: NS.into()
            }
        );
        assert!(e.to_string().contains("SURGE_SCALING_WORKLOADS"), "{e}");
    }

    #[tokio::test]
    async fn a_conflict_is_retried_once_on_a_fresh_read_then_reported() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            for version in ["7", "8"] {
                expect(
                    &mut handle,
                    Method::GET,
                    HPA_PATH,
                    None,
                    (200, hpa("voting-service", 3, 50, None, version)),
                )
                .await;
                expect(
                    &mut handle,
                    Method::GET,
                    SCALE_PATH,
                    None,
                    (200, scale("voting-service", 4)),
                )
                .await;
                let body = expect(
                    &mut handle,
                    Method::PATCH,
                    HPA_PATH,
                    MERGE,
                    status(409, "Conflict"),
                )
                .await;
                assert_eq!(
                    body["metadata"]["resourceVersion"],
                    json!(version),
                    "each try sends what it read"
                );
            }
        });
        let e = cluster
            .set_floor("voting-service", 20, &["forecast".into()])
            .await
            .expect_err("409 twice");
        mock.await.expect("mock");
        assert!(matches!(e, ClusterError::Conflict(_)), "{e:?}");
        assert!(e.to_string().contains("retry"), "{e}");
    }

    #[tokio::test]
    async fn forbidden_says_which_rbac_to_grant() {
        let (cluster, mut handle) = cluster();
        let mock = tokio::spawn(async move {
            expect(
                &mut handle,
                Method::GET,
                SCALE_PATH,
                None,
                status(403, "Forbidden"),
            )
            .await;
        });
        let e = cluster
            .scale_up("voting-service", 30)
            .await
            .expect_err("403");
        mock.await.expect("mock");
        assert!(matches!(e, ClusterError::Forbidden(_)), "{e:?}");
        assert!(e.to_string().contains("deployments/scale"), "{e}");
    }
}
